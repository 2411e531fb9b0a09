/*
 * me_security_routes.c - the customer's own security page (docs/api.md, "The customer's
 * security page"): GET /v1/me/security, DELETE /v1/me/devices/{device}, POST /v1/me/reports,
 * POST /v1/me/freeze and POST /v1/me/unfreeze, for a customer's own session; and the staff's
 * answer to a report, POST /v1/cases/{id}/reports/{report}/answer (cases.write).
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
#include "ledger/ledger.h"
#include "monitor/alerts.h"
#include "monitor/monitor.h"
#include "notify/notify.h"
#include "notify/outbox.h"

#define SELF_REASON CU_LEDGER_SELF_FREEZE
#define RECENT 20 /* sign-ins, events and notices the page shows */

static bool customer_session(const struct cu_req *req)
{
    return req->principal.session.id[0] && req->principal.session.kind == CU_SUBJECT_CUSTOMER;
}

static enum cu_err not_customer(struct cu_resp *resp)
{
    return cu_resp_fail(resp, CU_E_FORBIDDEN, "this is a customer's own page: sign in as one");
}

static json_t *time_or_null(int64_t ms)
{
    char t[CU_RFC3339_BYTES];
    if (ms <= 0)
        return json_null();
    cu_clock_format(ms, t);
    return json_string(t);
}

/* at_ms(t): an RFC 3339 time written by cu_clock_format, in ms (0 when it is not one). */
static int64_t at_ms(const char *t)
{
    int64_t ms = 0;
    return t && cu_clock_parse(t, &ms) == CU_OK ? ms : 0;
}

static json_t *report_json(const struct cu_case_report *r)
{
    return json_pack("{s:s, s:o, s:s, s:o?, s:s?, s:o}", "id", r->id, "created_at",
                     time_or_null(r->created_at), "status", cu_case_report_status(r->stage),
                     "concerns", json_loads(r->concerns, 0, NULL), "answer",
                     r->answer[0] ? r->answer : NULL, "answered_at", time_or_null(r->answered_at));
}

/* frozen_json(db, customer, out): {"accounts", "by_you", "unfreeze_at"}. */
static enum cu_err frozen_json(struct cu_db *db, const char *customer, json_t **out)
{
    int64_t n = 0, at = 0, un = 0;
    enum cu_err rc = cu_ledger_customer_frozen(db, customer, &n);
    enum cu_err self = rc == CU_OK ? cu_self_freeze_get(db, customer, &at, &un) : rc;

    if (rc == CU_OK && self != CU_OK && self != CU_E_NOT_FOUND)
        rc = self;
    *out = rc == CU_OK ? json_pack("{s:I, s:b, s:o}", "frozen_accounts", (json_int_t)n, "by_you",
                                   self == CU_OK, "unfreeze_at", time_or_null(un))
                       : NULL;
    return rc != CU_OK ? rc : *out ? CU_OK : CU_E_NOMEM;
}

enum cu_err cu_handle_me_security(struct cu_req *req, struct cu_resp *resp)
{
    struct cu_app *app = req->app;
    const char *me = req->principal.id;
    struct cu_session_info *ss = NULL;
    struct cu_outbox_item *ns = NULL;
    struct cu_case_report *rs = NULL;
    size_t nss = 0, nns = 0, nrs = 0;
    struct cu_db *db = NULL;
    json_t *sign_ins = json_array(), *events = json_array(), *frozen = NULL;
    enum cu_err rc;

    if (!customer_session(req)) {
        json_decref(sign_ins);
        json_decref(events);
        return not_customer(resp);
    }
    rc = sign_ins && events ? cu_req_db(req, &db) : CU_E_NOMEM;
    if (rc == CU_OK)
        rc = cu_identity_sessions_list(app->identity, db, CU_SUBJECT_CUSTOMER, me, &ss, &nss);
    if (rc == CU_OK)
        rc = cu_monitor_recent(db, me, true, RECENT, sign_ins);
    if (rc == CU_OK)
        rc = cu_monitor_recent(db, me, false, RECENT, events);
    if (rc == CU_OK)
        rc = cu_outbox_list(db, NULL, me, "", RECENT, &ns, &nns);
    if (rc == CU_OK)
        rc = cu_case_reports_of(db, me, &rs, &nrs);
    if (rc == CU_OK)
        rc = frozen_json(db, me, &frozen);
    json_t *forgot = json_object();
    if (rc == CU_OK)
        rc = forgot ? cu_device_forgotten(db, me, forgot) : CU_E_NOMEM;
    /* a forgotten device's sign-ins before it was forgotten are not listed */
    for (size_t k = json_array_size(sign_ins); rc == CU_OK && k > 0; k--) {
        json_t *si = json_array_get(sign_ins, k - 1);
        const char *d = json_string_value(json_object_get(si, "device"));
        json_t *f = d ? json_object_get(forgot, d) : NULL;
        if (f && at_ms(json_string_value(json_object_get(si, "at"))) <= json_integer_value(f))
            json_array_remove(sign_ins, k - 1);
    }
    json_decref(forgot);
    json_t *sessions = json_array(), *devices = json_object(), *notes = json_array(),
           *reports = json_array();
    for (size_t i = 0; rc == CU_OK && i < nss; i++) {
        const struct cu_session_info *s = &ss[i];
        json_array_append_new(sessions,
                              json_pack("{s:s, s:o, s:o, s:s?, s:b}", "id", s->id, "created_at",
                                        time_or_null(s->created_at), "last_seen_at",
                                        time_or_null(s->last_seen_at), "device",
                                        s->device_id[0] ? s->device_id : NULL, "current",
                                        strcmp(s->id, req->principal.session.id) == 0));
        if (s->device_id[0] && !json_object_get(devices, s->device_id))
            json_object_set_new(devices, s->device_id,
                                json_pack("{s:s, s:o}", "device", s->device_id, "last_seen_at",
                                          time_or_null(s->last_seen_at)));
    }
    /* a device is one the customer uses: a live session's, or a recent sign-in's */
    size_t i;
    json_t *e;
    json_array_foreach(sign_ins, i, e)
    {
        const char *d = json_string_value(json_object_get(e, "device"));
        if (d && !json_object_get(devices, d))
            json_object_set_new(
                devices, d,
                json_pack("{s:s, s:O}", "device", d, "last_seen_at", json_object_get(e, "at")));
    }
    for (size_t k = 0; rc == CU_OK && k < nns; k++)
        json_array_append_new(notes, json_pack("{s:o, s:s, s:s, s:s}", "at",
                                               time_or_null(ns[k].created_at), "template",
                                               ns[k].template_name, "channel", ns[k].channel,
                                               "status", ns[k].status));
    for (size_t k = 0; rc == CU_OK && k < nrs; k++)
        json_array_append_new(reports, report_json(&rs[k]));
    cu_free(ss);
    cu_free(ns);
    cu_free(rs);
    json_t *dev_list = json_array();
    const char *key;
    json_object_foreach(devices, key, e)
    {
        json_array_append(dev_list, e);
    }
    json_decref(devices);
    if (rc != CU_OK) {
        json_decref(sign_ins);
        json_decref(events);
        json_decref(frozen);
        json_decref(sessions);
        json_decref(notes);
        json_decref(reports);
        json_decref(dev_list);
        return cu_resp_fail(resp, rc, "your security page could not be read");
    }
    return cu_resp_json(resp, 200,
                        json_pack("{s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "customer", me,
                                  "sessions", sessions, "devices", dev_list, "sign_ins", sign_ins,
                                  "events", events, "notifications", notes, "reports", reports,
                                  "freeze", frozen));
}

/* ---- changes ---- */

enum me_action { ME_FORGET, ME_REPORT, ME_FREEZE, ME_UNFREEZE, ME_ANSWER };

struct me_job {
    struct cu_req *req;
    struct cu_resp *resp;
    enum me_action what;
    json_t *body;
    const char *text, *transfer, *sign_in;
    char device[CU_DEVICE_ID_MAX + 1];
    char report[CU_REPORT_ID_BYTES];
    char concerns[128];
    int64_t n, unfreeze_at;
    int status;
};

static void me_job_clear(void *p)
{
    json_decref(((struct me_job *)p)->body);
}

static enum cu_err queue(struct cu_app *app, struct cu_work *w, struct cu_db *db,
                         const char *customer, const char *tpl, json_t *data)
{
    char *text = data ? json_dumps(data, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    enum cu_err rc = text ? cu_notify_queue(app->notify, w, db, customer, tpl, text) : CU_E_NOMEM;
    json_decref(data);
    free(text);
    return rc;
}

static enum cu_err forget_apply(struct me_job *j, struct cu_work *w, struct cu_db *db)
{
    struct cu_app *app = j->req->app;
    const char *me = j->req->principal.id;
    struct cu_session_info *ss = NULL;
    size_t n = 0;
    enum cu_err rc = cu_identity_sessions_list(app->identity, db, CU_SUBJECT_CUSTOMER, me, &ss, &n);

    j->n = 0;
    /* each end is audited: as many as the unit has room for (more than a dozen live sessions
     * on one device is not a phone's; the next call ends the rest) */
    j->unfreeze_at = 0; /* here: the device's sessions left for the next call */
    for (size_t i = 0; rc == CU_OK && i < n; i++)
        if (strcmp(ss[i].device_id, j->device) == 0 && cu_work_audit_room(w) >= 3) {
            rc =
                cu_identity_session_revoke(app->identity, w, db, CU_SUBJECT_CUSTOMER, me, ss[i].id);
            j->n++;
        } else if (strcmp(ss[i].device_id, j->device) == 0)
            j->unfreeze_at++;
    cu_free(ss);
    if (rc == CU_OK)
        rc = cu_device_forget(db, me, j->device, cu_work_context_of(w)->now_ms);
    char target[64];
    snprintf(target, sizeof(target), "customer:%.40s", me);
    if (rc == CU_OK)
        rc = cu_work_audit(w, "customer.device_forget", target, "success",
                           json_pack("{s:I}", "sessions", (json_int_t)j->n));
    return rc;
}

/* concerns(j, db, why): what the report concerns, checked to be the customer's own. */
static enum cu_err concerns(struct me_job *j, struct cu_db *db)
{
    const char *me = j->req->principal.id;
    char owner[64] = "";
    enum cu_err rc = CU_OK;

    snprintf(j->concerns, sizeof(j->concerns), "{}");
    if (j->transfer) {
        struct cu_ledger_transfer t;
        struct cu_ledger_account a, b;
        memset(&t, 0, sizeof(t));
        rc = cu_ledger_transfer_get(db, j->transfer, &t);
        bool mine =
            rc == CU_OK &&
            ((cu_ledger_account_get(db, t.debit, &a) == CU_OK && strcmp(a.customer, me) == 0) ||
             (cu_ledger_account_get(db, t.credit, &b) == CU_OK && strcmp(b.customer, me) == 0));
        cu_ledger_transfer_clear(&t);
        if (rc == CU_E_NOT_FOUND || (rc == CU_OK && !mine)) {
            j->resp->type = "unknown_transfer";
            return cu_resp_fail(j->resp, CU_E_INVALID,
                                "field 'transfer': none of your transfers has this id");
        }
        snprintf(j->concerns, sizeof(j->concerns), "{\"transfer\":\"%s\"}", j->transfer);
    } else if (j->sign_in) {
        char type[40] = "";
        rc = cu_monitor_decision_customer(db, j->sign_in, owner, sizeof(owner), type, sizeof(type));
        if (rc == CU_E_NOT_FOUND ||
            (rc == CU_OK && (strcmp(owner, me) != 0 || strncmp(type, "login_", 6) != 0))) {
            j->resp->type = "unknown_sign_in";
            return cu_resp_fail(j->resp, CU_E_INVALID,
                                "field 'sign_in': none of your sign-ins has this id");
        }
        snprintf(j->concerns, sizeof(j->concerns), "{\"sign_in\":\"%s\"}", j->sign_in);
    }
    return rc;
}

static enum cu_err report_apply(struct me_job *j, struct cu_work *w, struct cu_db *db)
{
    struct cu_app *app = j->req->app;
    const char *me = j->req->principal.id;
    struct cu_case_report *rs = NULL;
    char case_id[CU_CASE_ID_BYTES], alert[CU_ALERT_ID_BYTES], secret[32];
    uint8_t raw[8];
    size_t n = 0;
    bool drill = false;
    int before = -1;
    enum cu_err rc = cu_case_reports_of(db, me, &rs, &n);

    cu_free(rs);
    if (rc == CU_OK && n >= CU_REPORTS_PER_CUSTOMER) {
        j->resp->type = "too_many_reports";
        return cu_resp_fail(j->resp, CU_E_EXISTS,
                            "you have sent %d reports: please contact us by phone",
                            CU_REPORTS_PER_CUSTOMER);
    }
    if (rc == CU_OK)
        rc = concerns(j, db);
    if (rc != CU_OK)
        return rc;
    cu_crypto_random(raw, sizeof(raw));
    char hex[17];
    cu_hex_encode(raw, sizeof(raw), hex);
    snprintf(j->report, sizeof(j->report), "rpt_%s", hex);
    snprintf(alert, sizeof(alert), "alr_%s", j->report + 4);
    snprintf(secret, sizeof(secret), "report_%s", j->report + 4);
    rc = cu_case_drill_customer(db, me, &drill);
    if (rc == CU_OK)
        rc = cu_alert_open(db, w, j->report, me, "customer_report", "medium", "customer_report");
    const struct cu_case_alert ca = {
        alert, j->report, me,    "customer_report", "medium", "customer_report", "",
        "",    "",        drill, "report"};
    if (rc == CU_OK)
        rc = cu_cases_on_alert(app->cases, w, db, &ca, case_id, &before);
    /* the text is a secret of the customer's: it goes with an erasure */
    if (rc == CU_OK)
        rc = cu_vault_secret_put(app->vault, db, me, secret, j->text, strlen(j->text));
    if (rc == CU_OK)
        rc = cu_case_report_add(w, db, case_id, j->report, me, alert, j->concerns);
    if (rc == CU_OK)
        rc = queue(app, w, db, me, "report_received", json_pack("{s:s}", "reference", j->report));
    if (rc == CU_OK)
        rc = cu_app_case_changed(app, w, db, case_id, before, me, NULL, false);
    return rc;
}

static enum cu_err freeze_apply(struct me_job *j, struct cu_work *w, struct cu_db *db)
{
    struct cu_app *app = j->req->app;
    const char *me = j->req->principal.id;
    int64_t now = cu_work_context_of(w)->now_ms;
    char target[64];
    enum cu_err rc = cu_ledger_freeze_customer(app->ledger, w, db, me, SELF_REASON, 0, &j->n);

    if (rc == CU_OK)
        rc = cu_self_freeze_set(db, me, now);
    if (rc == CU_OK && j->n > 0)
        rc = queue(app, w, db, me, "accounts_frozen",
                   json_pack("{s:I}", "accounts", (json_int_t)j->n));
    snprintf(target, sizeof(target), "customer:%.40s", me);
    if (rc == CU_OK)
        rc = cu_work_audit(w, "customer.self_freeze", target, "success",
                           json_pack("{s:I}", "accounts", (json_int_t)j->n));
    return rc;
}

static enum cu_err unfreeze_apply(struct me_job *j, struct cu_work *w, struct cu_db *db)
{
    struct cu_app *app = j->req->app;
    const char *me = j->req->principal.id;
    int64_t now = cu_work_context_of(w)->now_ms, at = 0, un = 0;
    int64_t wait = (int64_t)app->cfg.cases.self_unfreeze_minutes * 60000;
    char target[64];
    enum cu_err rc = cu_self_freeze_get(db, me, &at, &un);

    if (rc == CU_E_NOT_FOUND) {
        j->resp->type = "not_frozen_by_you";
        return cu_resp_fail(
            j->resp, CU_E_EXISTS,
            "your accounts are not frozen by you: a freeze by the company is lifted "
            "by its staff");
    }
    if (rc != CU_OK)
        return rc;
    snprintf(target, sizeof(target), "customer:%.40s", me);
    if (un > 0) { /* asked already: it waits as it was */
        j->unfreeze_at = un;
        j->status = 202;
        return CU_OK;
    }
    if (wait == 0) {
        rc = cu_ledger_unfreeze_customer(app->ledger, w, db, me, SELF_REASON, &j->n);
        if (rc == CU_OK)
            rc = cu_self_freeze_clear(db, me);
        j->status = 200;
        if (rc == CU_OK)
            rc = cu_work_audit(w, "customer.self_unfreeze", target, "success",
                               json_pack("{s:I}", "accounts", (json_int_t)j->n));
        return rc;
    }
    j->unfreeze_at = now + wait;
    j->status = 202;
    rc = cu_self_unfreeze_at(db, me, j->unfreeze_at);
    /* the customer is told at once, so that one who did not ask freezes again in time */
    char at_text[CU_RFC3339_BYTES];
    cu_clock_format(j->unfreeze_at, at_text);
    if (rc == CU_OK)
        rc = queue(app, w, db, me, "unfreeze_requested", json_pack("{s:s}", "at", at_text));
    if (rc == CU_OK)
        rc = cu_work_audit(w, "customer.self_unfreeze_asked", target, "success",
                           json_pack("{s:I}", "unfreeze_at", (json_int_t)j->unfreeze_at));
    return rc;
}

static enum cu_err answer_apply(struct me_job *j, struct cu_work *w, struct cu_db *db)
{
    char customer[32], why[CU_CASE_WHY_BYTES] = "";
    enum cu_err rc =
        cu_case_report_answer(w, db, j->req->params[0], j->req->params[1], j->text, customer, why);
    if (rc == CU_E_NOT_FOUND && why[0]) {
        j->resp->type = "unknown_report";
        return cu_resp_fail(j->resp, rc, "%s", why);
    }
    if (rc == CU_E_NOT_FOUND) {
        j->resp->type = "unknown_case";
        return cu_resp_fail(j->resp, rc, "no case has this id");
    }
    if ((rc == CU_E_INVALID || rc == CU_E_TOO_LARGE) && why[0])
        return cu_resp_fail(j->resp, rc, "%s", why);
    return rc;
}

static enum cu_err me_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct me_job *j = arg;
    enum cu_err rc = j->what == ME_FORGET     ? forget_apply(j, w, db)
                     : j->what == ME_REPORT   ? report_apply(j, w, db)
                     : j->what == ME_FREEZE   ? freeze_apply(j, w, db)
                     : j->what == ME_UNFREEZE ? unfreeze_apply(j, w, db)
                                              : answer_apply(j, w, db);
    if (rc == CU_OK || rc == CU_E_BUSY || j->resp->err)
        return rc;
    return cu_resp_fail(j->resp, rc, "the change could not be made");
}

static enum cu_err me_answer(struct cu_req *req, struct cu_resp *resp, void *arg)
{
    struct me_job *j = arg;
    struct cu_db *db = NULL;
    json_t *frozen = NULL;
    enum cu_err rc = CU_OK;

    cu_notify_wake(req->app->notify);
    switch (j->what) {
    case ME_FORGET:
        return cu_resp_json(resp, 200,
                            json_pack("{s:s, s:I, s:I}", "device", j->device, "sessions_ended",
                                      (json_int_t)j->n, "sessions_left",
                                      (json_int_t)j->unfreeze_at));
    case ME_REPORT: {
        char t[CU_RFC3339_BYTES];
        cu_clock_format(cu_clock_now_ms(), t);
        return cu_resp_json(resp, 201,
                            json_pack("{s:s, s:s, s:s, s:o, s:n, s:n}", "id", j->report,
                                      "created_at", t, "status", "received", "concerns",
                                      json_loads(j->concerns, 0, NULL), "answer", "answered_at"));
    }
    case ME_FREEZE:
    case ME_UNFREEZE:
        rc = cu_req_db(req, &db);
        if (rc == CU_OK)
            rc = frozen_json(db, req->principal.id, &frozen);
        if (rc != CU_OK)
            return cu_resp_fail(resp, rc, "the change was made but cannot be read");
        return cu_resp_json(resp, j->what == ME_FREEZE ? 200 : j->status, frozen);
    case ME_ANSWER:
    default: /* the case's document, as every change of a case answers */
        return cu_case_respond(req, resp, req->params[0], 200);
    }
}

static enum cu_err me_start(struct cu_req *req, struct cu_resp *resp, enum me_action what)
{
    struct me_job *j = cu_req_alloc(req, sizeof(*j), me_job_clear);
    char err[CU_JSON_ERR_BYTES];
    const char *bad = NULL;
    enum cu_err rc;

    if (j == NULL)
        return cu_resp_fail(resp, CU_E_NOMEM, "the change could not be made");
    if (what != ME_ANSWER && !customer_session(req))
        return not_customer(resp);
    j->req = req;
    j->resp = resp;
    j->what = what;
    j->status = 200;
    if (what == ME_FORGET) {
        const char *d = req->params[0];
        size_t n = strlen(d);
        bool ok = n > 0 && n <= CU_DEVICE_ID_MAX;
        for (size_t i = 0; ok && i < n; i++)
            ok = (unsigned char)d[i] > 0x20 && (unsigned char)d[i] < 0x7f;
        if (!ok)
            return cu_resp_fail(resp, CU_E_INVALID, "a device is 1 to %d printable bytes",
                                CU_DEVICE_ID_MAX);
        snprintf(j->device, sizeof(j->device), "%s", d);
    }
    if (what == ME_REPORT || what == ME_ANSWER) {
        static const char *const rkeys[] = {"text", "transfer", "sign_in"};
        if (what == ME_ANSWER &&
            (!cu_case_id_valid(req->params[0]) || !cu_ledger_id_valid(req->params[1], "rpt_"))) {
            resp->type = cu_case_id_valid(req->params[0]) ? "unknown_report" : "unknown_case";
            return cu_resp_fail(resp, CU_E_NOT_FOUND, "no %s has this id",
                                cu_case_id_valid(req->params[0]) ? "report" : "case");
        }
        if ((rc = cu_req_json(req, resp, &j->body)) != CU_OK)
            return resp->err ? resp->err : rc;
        if (cu_json_only_keys(j->body, rkeys, what == ME_REPORT ? 3 : 1, &bad) != CU_OK)
            return cu_resp_fail(resp, CU_E_INVALID, "unknown field '%.64s'", bad);
        rc = cu_json_get_string(j->body, "text", true,
                                what == ME_REPORT ? CU_REPORT_TEXT_MAX : CU_REPORT_ANSWER_MAX,
                                &j->text, err);
        if (rc != CU_OK)
            return cu_resp_fail(resp, rc, "%s", err);
        if (!cu_utf8_valid(j->text, strlen(j->text)))
            return cu_resp_fail(resp, CU_E_INVALID, "field 'text' must be UTF-8 text");
        if (what == ME_REPORT) {
            if (cu_json_get_string(j->body, "transfer", false, 32, &j->transfer, err) != CU_OK ||
                cu_json_get_string(j->body, "sign_in", false, 32, &j->sign_in, err) != CU_OK)
                return cu_resp_fail(resp, CU_E_INVALID, "%s", err);
            if (j->transfer && j->sign_in)
                return cu_resp_fail(resp, CU_E_INVALID,
                                    "a report concerns one transfer or one sign-in, not both");
            if (j->transfer && !cu_ledger_id_valid(j->transfer, "trf_"))
                return cu_resp_fail(resp, CU_E_INVALID, "field 'transfer' must be a transfer's id");
            if (j->sign_in && !cu_ledger_id_valid(j->sign_in, "dec_"))
                return cu_resp_fail(resp, CU_E_INVALID,
                                    "field 'sign_in' must be a sign-in's id (dec_…, as your "
                                    "security page lists them)");
        }
    }
    return cu_req_change(req, me_apply, me_answer, j);
}

enum cu_err cu_handle_me_device_forget(struct cu_req *req, struct cu_resp *resp)
{
    return me_start(req, resp, ME_FORGET);
}
enum cu_err cu_handle_me_reports_create(struct cu_req *req, struct cu_resp *resp)
{
    return me_start(req, resp, ME_REPORT);
}
enum cu_err cu_handle_me_freeze(struct cu_req *req, struct cu_resp *resp)
{
    return me_start(req, resp, ME_FREEZE);
}
enum cu_err cu_handle_me_unfreeze(struct cu_req *req, struct cu_resp *resp)
{
    return me_start(req, resp, ME_UNFREEZE);
}
enum cu_err cu_handle_case_report_answer(struct cu_req *req, struct cu_resp *resp)
{
    return me_start(req, resp, ME_ANSWER);
}

/* cu_app_self_unfreezes(app, w, db): the customers' unfreezes that are due, lifted (the
 * leading node's job, api/jobs.c). */
enum cu_err cu_app_self_unfreezes(struct cu_app *app, struct cu_work *w, struct cu_db *db)
{
    char due[16][32], target[64];
    size_t n = 0;
    enum cu_err rc = cu_self_unfreeze_due(db, cu_work_context_of(w)->now_ms, due, 16, &n);

    for (size_t i = 0; rc == CU_OK && i < n && cu_work_audit_room(w) >= 3; i++) {
        int64_t k = 0;
        bool claimed = false;
        /* taken first: a freeze that called it off meanwhile, or another node, wins */
        rc = cu_self_unfreeze_claim(db, due[i], cu_work_context_of(w)->now_ms, &claimed);
        if (rc != CU_OK || !claimed)
            continue;
        rc = cu_ledger_unfreeze_customer(app->ledger, w, db, due[i], SELF_REASON, &k);
        snprintf(target, sizeof(target), "customer:%.40s", due[i]);
        if (rc == CU_OK)
            rc = cu_work_audit(w, "customer.self_unfreeze", target, "success",
                               json_pack("{s:I}", "accounts", (json_int_t)k));
    }
    return rc;
}
