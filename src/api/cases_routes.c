/*
 * cases_routes.c - incident cases over HTTPS (docs/api.md, "Cases"): list, open, read, export
 * (cases.read, cases.write), work them (cases.write), and confirm or decline the waiting steps
 * of their playbooks (cases.contain). Every read and change is audited.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/handlers.h"
#include "api/http.h"
#include "api/server.h"
#include "base/clock.h"
#include "base/json.h"
#include "base/mem.h"
#include "cases/cases.h"
#include "crypto/crypto.h"
#include "cases/playbook.h"
#include "ledger/ledger.h"
#include "notify/notify.h"

static enum cu_err unknown(struct cu_resp *resp)
{
    resp->type = "unknown_case";
    return cu_resp_fail(resp, CU_E_NOT_FOUND, "no case has this id");
}

static json_t *summary_json(const struct cu_case *c)
{
    char t[CU_RFC3339_BYTES], u[CU_RFC3339_BYTES];
    cu_clock_format(c->created_at, t);
    cu_clock_format(c->updated_at, u);
    return json_pack("{s:s, s:s, s:s, s:s, s:s?, s:s?, s:s, s:b, s:I, s:s, s:s}", "id", c->id,
                     "title", c->title, "severity", c->severity, "stage", c->stage, "assignee",
                     c->assignee[0] ? c->assignee : NULL, "customer",
                     c->customer[0] ? c->customer : NULL, "source", c->source, "drill", c->drill,
                     "alerts_count", (json_int_t)c->alerts, "created_at", t, "updated_at", u);
}

enum cu_err cu_handle_cases_list(struct cu_req *req, struct cu_resp *resp)
{
    const char *stage = cu_req_query(req, "stage"), *sev = cu_req_query(req, "severity"),
               *assignee = cu_req_query(req, "assignee"), *customer = cu_req_query(req, "customer"),
               *obs = cu_req_query(req, "observable"), *after = cu_req_query(req, "after"),
               *lim = cu_req_query(req, "limit"), *drills = cu_req_query(req, "drills");
    struct cu_case_filter f = {stage, sev, assignee, customer, NULL, NULL, false};
    char kind[16], value[CU_CASE_VALUE_MAX + 1];
    enum cu_case_stage s;
    struct cu_case *v = NULL;
    struct cu_db *db = NULL;
    size_t n = 0;
    long limit = 100;
    char *end = NULL;
    enum cu_err rc;

    if (stage && strcmp(stage, "open") != 0 && !cu_case_stage_parse(stage, &s))
        return cu_resp_fail(resp, CU_E_INVALID,
                            "stage must be open, detected, assessing, contained, eradicated, "
                            "recovered, closed or false_positive");
    if (sev && cu_case_severity_parse(sev) < 0)
        return cu_resp_fail(resp, CU_E_INVALID, "severity must be low, medium, high or critical");
    if (assignee && strcmp(assignee, "none") != 0 && !cu_ledger_id_valid(assignee, "stf_"))
        return cu_resp_fail(resp, CU_E_INVALID, "assignee must be a staff member's id or none");
    if (customer && !cu_case_observable_valid("customer", customer))
        return cu_resp_fail(resp, CU_E_INVALID, "customer must be a customer's reference");
    if (obs) {
        const char *colon = strchr(obs, ':');
        size_t k = colon ? (size_t)(colon - obs) : 0;
        if (k == 0 || k >= sizeof(kind) || strlen(colon + 1) > CU_CASE_VALUE_MAX)
            return cu_resp_fail(resp, CU_E_INVALID, "observable must be KIND:VALUE");
        memcpy(kind, obs, k);
        kind[k] = '\0';
        snprintf(value, sizeof(value), "%s", colon + 1);
        if (!cu_case_observable_valid(kind, value))
            return cu_resp_fail(resp, CU_E_INVALID,
                                "observable must be KIND:VALUE, KIND one of customer, ip, device, "
                                "payee, account");
        f.obs_kind = kind;
        f.obs_value = value;
    }
    if (drills && strcmp(drills, "true") != 0 && strcmp(drills, "false") != 0)
        return cu_resp_fail(resp, CU_E_INVALID, "drills must be true or false");
    f.drills = drills && strcmp(drills, "true") == 0;
    if (after && !cu_case_id_valid(after))
        return cu_resp_fail(resp, CU_E_INVALID, "after must be a case's id (cas_…)");
    if (lim) {
        limit = strtol(lim, &end, 10);
        if (end == lim || *end || limit < 1 || limit > CU_CASES_PAGE_MAX)
            return cu_resp_fail(resp, CU_E_INVALID, "limit must be a whole number from 1 to %d",
                                CU_CASES_PAGE_MAX);
    }
    rc = cu_req_db(req, &db);
    if (rc == CU_OK)
        rc = cu_cases_list(db, &f, after, (size_t)limit, &v, &n);
    if (rc == CU_E_NOT_FOUND)
        return cu_resp_fail(resp, CU_E_INVALID, "after names no case");
    if (rc != CU_OK)
        return cu_resp_fail(resp, rc, "the cases could not be read");
    json_t *items = json_array();
    for (size_t i = 0; items && i < n; i++)
        json_array_append_new(items, summary_json(&v[i]));
    json_t *out = json_pack("{s:o, s:s?}", "items", items ? items : json_array(), "next_after",
                            n == (size_t)limit ? v[n - 1].id : NULL);
    cu_free(v);
    rc = cu_req_audit(req, "case.list", "cases", "success",
                      json_pack("{s:I}", "cases", (json_int_t)n));
    if (rc != CU_OK) {
        json_decref(out);
        return cu_resp_fail(resp, rc, "the cases could not be read");
    }
    return cu_resp_json(resp, 200, out);
}

/* report_texts(app, db, doc): each customer's report in doc with its text, opened from the
 * customer's secrets ("text" null once the customer is erased). */
static enum cu_err report_texts(struct cu_app *app, struct cu_db *db, json_t *doc)
{
    json_t *reports = json_object_get(doc, "reports"), *r;
    char text[CU_REPORT_TEXT_MAX + 1], name[32];
    size_t i;

    json_array_foreach(reports, i, r)
    {
        const char *id = json_string_value(json_object_get(r, "report"));
        const char *cus = json_string_value(json_object_get(r, "customer"));
        size_t len = 0;
        if (id == NULL || cus == NULL || strlen(id) != CU_REPORT_ID_BYTES - 1)
            continue;
        snprintf(name, sizeof(name), "report_%s", id + 4);
        enum cu_err rc =
            cu_vault_secret_get(app->vault, db, cus, name, text, sizeof(text) - 1, &len);
        if (rc == CU_E_NOMEM || rc == CU_E_STORE || rc == CU_E_BUSY)
            return rc;
        /* one that cannot be opened (logged as an alert by the vault) reads as null */
        text[rc == CU_OK ? len : 0] = '\0';
        json_object_set_new(r, "text", rc == CU_OK ? json_stringn(text, len) : json_null());
        cu_crypto_wipe(text, sizeof(text));
    }
    return CU_OK;
}

/* document(req, resp, id, status, action): the case's document as the answer. */
static enum cu_err document(struct cu_req *req, struct cu_resp *resp, const char *id, int status,
                            const char *action)
{
    struct cu_db *db = NULL;
    json_t *doc = NULL;
    char target[CU_CASE_ID_BYTES + 8];
    enum cu_err rc = cu_req_db(req, &db);

    if (rc == CU_OK)
        rc = cu_case_document(db, id, &doc);
    /* the customers' words only to a reader of the case (GET, audited case.read), never in the
     * answer to a change */
    if (rc == CU_OK && action != NULL)
        rc = report_texts(req->app, db, doc);
    if (rc == CU_E_NOT_FOUND)
        return unknown(resp);
    if (rc != CU_OK) {
        json_decref(doc);
        return cu_resp_fail(resp, rc, "the case could not be read");
    }
    if (action) {
        snprintf(target, sizeof(target), "case:%s", id);
        if ((rc = cu_req_audit(req, action, target, "success", NULL)) != CU_OK) {
            json_decref(doc);
            return cu_resp_fail(resp, rc, "the case could not be read");
        }
    }
    return cu_resp_json(resp, status, doc);
}

enum cu_err cu_case_respond(struct cu_req *req, struct cu_resp *resp, const char *id, int status)
{
    return document(req, resp, id, status, NULL);
}

enum cu_err cu_handle_case_get(struct cu_req *req, struct cu_resp *resp)
{
    if (!cu_case_id_valid(req->params[0]))
        return unknown(resp);
    return document(req, resp, req->params[0], 200, "case.read");
}

enum cu_err cu_handle_case_export(struct cu_req *req, struct cu_resp *resp)
{
    const char *format = cu_req_query(req, "format");
    struct cu_db *db = NULL;
    json_t *doc = NULL;
    char target[CU_CASE_ID_BYTES + 8];
    enum cu_err rc;

    if (!cu_case_id_valid(req->params[0]))
        return unknown(resp);
    if (format == NULL)
        format = "json";
    if (strcmp(format, "json") != 0 && strcmp(format, "html") != 0)
        return cu_resp_fail(resp, CU_E_INVALID, "format must be json or html");
    rc = cu_req_db(req, &db);
    if (rc == CU_OK)
        rc = cu_case_document(db, req->params[0], &doc);
    if (rc == CU_E_NOT_FOUND)
        return unknown(resp);
    if (rc != CU_OK)
        return cu_resp_fail(resp, rc, "the case could not be read");
    snprintf(target, sizeof(target), "case:%.20s", req->params[0]);
    rc = cu_req_audit(req, "case.export", target, "success", json_pack("{s:s}", "format", format));
    char *disp = cu_req_alloc(req, 96, NULL);
    if (rc == CU_OK && disp == NULL)
        rc = CU_E_NOMEM;
    if (rc != CU_OK) {
        json_decref(doc);
        return cu_resp_fail(resp, rc, "the case could not be exported");
    }
    snprintf(disp, 96, "attachment; filename=\"%.20s.%.4s\"", req->params[0], format);
    cu_resp_header(resp, "Content-Disposition", disp);
    if (format[0] == 'j')
        return cu_resp_json(resp, 200, doc);
    rc = cu_case_html(doc, &resp->body);
    json_decref(doc);
    if (rc != CU_OK)
        return cu_resp_fail(resp, rc, "the case could not be exported");
    resp->status = 200;
    resp->content_type = "text/html; charset=utf-8";
    cu_resp_header(resp, "Content-Security-Policy",
                   "default-src 'none'; style-src 'unsafe-inline'");
    return CU_OK;
}

/* ---- changes ---- */

enum case_action {
    CA_OPEN,
    CA_ASSIGN,
    CA_SEVERITY,
    CA_STAGE,
    CA_NOTE,
    CA_TASK_ADD,
    CA_TASK_SET,
    CA_OBSERVABLE,
    CA_STEP_CONFIRM,
    CA_STEP_DECLINE,
};

struct case_job {
    struct cu_req *req;
    struct cu_resp *resp;
    enum case_action what;
    json_t *body;
    const char *a, *b, *c; /* the fields, by action */
    const json_t *review;
    int64_t n;
    char id[CU_CASE_ID_BYTES];
    int status; /* of the answer */
};

static void job_clear(void *p)
{
    json_decref(((struct case_job *)p)->body);
}

/* staff_known(app, db, id): CU_OK when id is a staff member's, CU_E_NOT_FOUND when not (or
 * not a staff id at all). */
static enum cu_err staff_known(struct cu_app *app, struct cu_db *db, const char *id)
{
    struct cu_staff_info s;
    enum cu_err rc;

    if (!cu_ledger_id_valid(id, "stf_"))
        return CU_E_NOT_FOUND;
    rc = cu_identity_staff_get(app->identity, db, id, &s);
    cu_crypto_wipe(&s, sizeof(s));
    return rc;
}

static enum cu_err case_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct case_job *j = arg;
    struct cu_app *app = j->req->app;
    char why[CU_CASE_WHY_BYTES] = "";
    struct cu_case c;
    int before = -1;
    enum cu_err rc = CU_OK;

    switch (j->what) {
    case CA_OPEN:
        rc = cu_case_open(w, db, j->a, j->b, j->c ? j->c : "", "staff", false, &c);
        if (rc == CU_OK) {
            snprintf(j->id, sizeof(j->id), "%s", c.id);
            rc = cu_app_case_changed(app, w, db, c.id, -1, NULL, NULL, true);
        }
        break;
    case CA_ASSIGN:
    case CA_TASK_ADD:
        if (j->what == CA_TASK_ADD && (j->b == NULL || j->b[0] == '\0')) {
            rc = cu_case_task_add(w, db, j->id, j->a, "", &j->n, why);
            break;
        }
        /* the assignee is a staff member who exists */
        rc = staff_known(app, db, j->what == CA_ASSIGN ? j->a : j->b);
        if (rc == CU_E_NOT_FOUND) {
            j->resp->type = "unknown_staff";
            return cu_resp_fail(j->resp, CU_E_INVALID, "no staff member has the assignee's id");
        }
        if (rc == CU_OK && j->what == CA_ASSIGN)
            rc = cu_case_assign(w, db, j->id, j->a, NULL, why);
        else if (rc == CU_OK)
            rc = cu_case_task_add(w, db, j->id, j->a, j->b, &j->n, why);
        break;
    case CA_SEVERITY:
        rc = cu_case_get(db, j->id, true, &c);
        before = rc == CU_OK ? cu_case_severity_parse(c.severity) : -1;
        if (rc == CU_OK)
            rc = cu_case_set_severity(w, db, j->id, j->a, NULL, why);
        if (rc == CU_OK)
            rc = cu_app_case_changed(app, w, db, j->id, before, NULL, NULL, true);
        break;
    case CA_STAGE:
        rc = cu_case_move(w, db, j->id, j->a, j->b, j->review, NULL, why);
        break;
    case CA_NOTE:
        rc = cu_case_note(w, db, j->id, j->a, why);
        break;
    case CA_TASK_SET:
        rc = cu_case_task_set(w, db, j->id, j->n, j->a, why);
        break;
    case CA_OBSERVABLE:
        rc = cu_case_observable_add(w, db, j->id, j->a, j->b, why);
        break;
    case CA_STEP_CONFIRM:
    case CA_STEP_DECLINE:
        rc = cu_playbook_step_decide(w, db, j->id, j->n, j->what == CA_STEP_CONFIRM,
                                     cu_app_playbook_effects(app), why);
        break;
    }
    if (rc == CU_OK || rc == CU_E_BUSY)
        return rc;
    if (rc == CU_E_NOT_FOUND && why[0]) {
        j->resp->type = j->what == CA_TASK_SET ? "unknown_task" : "unknown_step";
        return cu_resp_fail(j->resp, rc, "%s", why);
    }
    if (rc == CU_E_NOT_FOUND)
        return j->what == CA_STEP_CONFIRM || j->what == CA_STEP_DECLINE
                   ? (j->resp->type = "unknown_step",
                      cu_resp_fail(j->resp, rc, "the case has no step %lld", (long long)j->n))
                   : unknown(j->resp);
    if (rc == CU_E_EXISTS) {
        j->resp->type = j->what == CA_STAGE ? "stage_refused" : "case_final";
        return cu_resp_fail(j->resp, rc, "%s", why[0] ? why : "the case cannot change so");
    }
    if ((rc == CU_E_INVALID || rc == CU_E_TOO_LARGE) && why[0])
        return cu_resp_fail(j->resp, rc, "%s", why);
    return cu_resp_fail(j->resp, rc, "the case could not be changed");
}

static enum cu_err case_answer(struct cu_req *req, struct cu_resp *resp, void *arg)
{
    struct case_job *j = arg;
    cu_notify_wake(req->app->notify);
    return document(req, resp, j->id, j->status, NULL);
}

static enum cu_err get_text(struct cu_resp *resp, const json_t *body, const char *key,
                            bool required, size_t max, const char **out)
{
    char err[CU_JSON_ERR_BYTES];
    enum cu_err rc = cu_json_get_string(body, key, required, max, out, err);
    if (rc != CU_OK)
        return cu_resp_fail(resp, rc, "%s", err);
    if (*out && !cu_utf8_valid(*out, strlen(*out)))
        return cu_resp_fail(resp, CU_E_INVALID, "field '%s' must be UTF-8 text", key);
    return CU_OK;
}

static enum cu_err start(struct cu_req *req, struct cu_resp *resp, enum case_action what)
{
    static const char *const keys[][3] = {
        [CA_OPEN] = {"title", "severity", "customer"},
        [CA_ASSIGN] = {"assignee"},
        [CA_SEVERITY] = {"severity"},
        [CA_STAGE] = {"stage", "resolution", "review"},
        [CA_NOTE] = {"text"},
        [CA_TASK_ADD] = {"title", "assignee"},
        [CA_TASK_SET] = {"status"},
        [CA_OBSERVABLE] = {"kind", "value"},
    };
    static const size_t nkeys[] = {
        [CA_OPEN] = 3,         [CA_ASSIGN] = 1,      [CA_SEVERITY] = 1, [CA_STAGE] = 3,
        [CA_NOTE] = 1,         [CA_TASK_ADD] = 2,    [CA_TASK_SET] = 1, [CA_OBSERVABLE] = 2,
        [CA_STEP_CONFIRM] = 0, [CA_STEP_DECLINE] = 0};
    struct case_job *j = cu_req_alloc(req, sizeof(*j), job_clear);
    const char *bad = NULL;
    enum cu_err rc = CU_OK;

    if (j == NULL)
        return cu_resp_fail(resp, CU_E_NOMEM, "the case could not be changed");
    j->req = req;
    j->resp = resp;
    j->what = what;
    j->status = what == CA_OPEN ? 201 : 200;
    if (what != CA_OPEN) {
        if (!cu_case_id_valid(req->params[0]))
            return unknown(resp);
        snprintf(j->id, sizeof(j->id), "%.20s", req->params[0]);
    }
    if (what == CA_TASK_SET || what == CA_STEP_CONFIRM || what == CA_STEP_DECLINE) {
        char *end = NULL;
        long long n = strtoll(req->params[1], &end, 10);
        if (end == req->params[1] || *end || n < 1 || n > 100000) {
            resp->type = what == CA_TASK_SET ? "unknown_task" : "unknown_step";
            return cu_resp_fail(resp, CU_E_NOT_FOUND, "no %s has this number",
                                what == CA_TASK_SET ? "task" : "step");
        }
        j->n = n;
    }
    if (what == CA_STEP_CONFIRM || what == CA_STEP_DECLINE)
        return cu_req_change(req, case_apply, case_answer, j);
    if ((rc = cu_req_json(req, resp, &j->body)) != CU_OK)
        return resp->err ? resp->err : rc;
    if (cu_json_only_keys(j->body, keys[what], nkeys[what], &bad) != CU_OK)
        return cu_resp_fail(resp, CU_E_INVALID, "unknown field '%.64s'", bad);
    switch (what) {
    case CA_OPEN:
        rc = get_text(resp, j->body, "title", true, CU_CASE_TITLE_MAX, &j->a);
        if (rc == CU_OK)
            rc = get_text(resp, j->body, "severity", true, 16, &j->b);
        if (rc == CU_OK)
            rc = get_text(resp, j->body, "customer", false, 31, &j->c);
        if (rc == CU_OK && cu_case_severity_parse(j->b) < 0)
            return cu_resp_fail(resp, CU_E_INVALID,
                                "field 'severity' must be low, medium, high or critical");
        if (rc == CU_OK && j->c && !cu_case_observable_valid("customer", j->c))
            return cu_resp_fail(resp, CU_E_INVALID, "field 'customer' must be a customer's id");
        break;
    case CA_ASSIGN:
        rc = get_text(resp, j->body, "assignee", true, 64, &j->a);
        break;
    case CA_SEVERITY:
        rc = get_text(resp, j->body, "severity", true, 16, &j->a);
        break;
    case CA_STAGE:
        rc = get_text(resp, j->body, "stage", true, 32, &j->a);
        if (rc == CU_OK)
            rc = get_text(resp, j->body, "resolution", false, CU_CASE_TEXT_MAX, &j->b);
        j->review = json_object_get(j->body, "review");
        if (rc == CU_OK && j->review && !json_is_object(j->review))
            return cu_resp_fail(resp, CU_E_INVALID,
                                "field 'review' must be an object of cause, actions and changes");
        break;
    case CA_NOTE:
        rc = get_text(resp, j->body, "text", true, CU_CASE_TEXT_MAX, &j->a);
        break;
    case CA_TASK_ADD:
        rc = get_text(resp, j->body, "title", true, CU_CASE_TITLE_MAX, &j->a);
        if (rc == CU_OK)
            rc = get_text(resp, j->body, "assignee", false, 64, &j->b);
        break;
    case CA_TASK_SET:
        rc = get_text(resp, j->body, "status", true, 16, &j->a);
        break;
    case CA_OBSERVABLE:
        rc = get_text(resp, j->body, "kind", true, 16, &j->a);
        if (rc == CU_OK)
            rc = get_text(resp, j->body, "value", true, CU_CASE_VALUE_MAX, &j->b);
        break;
    default:
        break;
    }
    if (rc != CU_OK)
        return rc;
    return cu_req_change(req, case_apply, case_answer, j);
}

enum cu_err cu_handle_cases_create(struct cu_req *req, struct cu_resp *resp)
{
    return start(req, resp, CA_OPEN);
}
enum cu_err cu_handle_case_assign(struct cu_req *req, struct cu_resp *resp)
{
    return start(req, resp, CA_ASSIGN);
}
enum cu_err cu_handle_case_severity(struct cu_req *req, struct cu_resp *resp)
{
    return start(req, resp, CA_SEVERITY);
}
enum cu_err cu_handle_case_stage(struct cu_req *req, struct cu_resp *resp)
{
    return start(req, resp, CA_STAGE);
}
enum cu_err cu_handle_case_note(struct cu_req *req, struct cu_resp *resp)
{
    return start(req, resp, CA_NOTE);
}
enum cu_err cu_handle_case_task_add(struct cu_req *req, struct cu_resp *resp)
{
    return start(req, resp, CA_TASK_ADD);
}
enum cu_err cu_handle_case_task_set(struct cu_req *req, struct cu_resp *resp)
{
    return start(req, resp, CA_TASK_SET);
}
enum cu_err cu_handle_case_observable(struct cu_req *req, struct cu_resp *resp)
{
    return start(req, resp, CA_OBSERVABLE);
}
enum cu_err cu_handle_case_step_confirm(struct cu_req *req, struct cu_resp *resp)
{
    return start(req, resp, CA_STEP_CONFIRM);
}
enum cu_err cu_handle_case_step_decline(struct cu_req *req, struct cu_resp *resp)
{
    return start(req, resp, CA_STEP_DECLINE);
}
