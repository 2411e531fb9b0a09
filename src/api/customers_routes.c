/*
 * customers_routes.c - the customer routes: create, read (masked unless the key may unmask),
 * change, search by a blind-indexed field, list, and erase. Every change runs in the request's
 * unit of work and is audited there with the names of the fields it touched, never their
 * values; every read is audited, and an unmasked read names the fields it revealed. The answer
 * is sent only once the unit, with its records, is committed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "access/unmask.h"
#include "api/gate.h"
#include "api/handlers.h"
#include "cases/cases.h"
#include "monitor/monitor.h"
#include "vault/fields.h"
#include "api/metrics.h"
#include "api/server.h"
#include "base/json.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/text.h"
#include "ledger/ledger.h"

static bool valid_customer_id(const char *id)
{
    if (strlen(id) != CU_CUSTOMER_ID_BYTES - 1 || strncmp(id, "cus_", 4) != 0)
        return false;
    for (const char *p = id + 4; *p; p++) {
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    }
    return true;
}

/* Every decision here is on the customer (gate.h): a read the policy allows only masked stays
 * masked whatever else the principal holds, and unmasking is decided on each customer. */

/* How a customer of a list or a search is shown: left out, masked, or in full. */
enum shown { SHOWN_NOT = 0, SHOWN_MASKED, SHOWN_FULL };

static enum shown shown_of(struct cu_req *req, const struct cu_customer *c)
{
    enum cu_access_effect e = cu_req_effect_on(req, CU_SCOPE_CUSTOMERS_READ, c);
    if (e == CU_ACCESS_ALLOW &&
        cu_req_effect_on(req, CU_SCOPE_CUSTOMERS_UNMASK, c) == CU_ACCESS_ALLOW)
        return SHOWN_FULL;
    return e == CU_ACCESS_ALLOW || e == CU_ACCESS_ALLOW_MASKED ? SHOWN_MASKED : SHOWN_NOT;
}

/* The attributes a customer will have once a creation or a change is stored: the stored ones
 * (none for a creation, which starts active) with those the body sets over them, as the
 * policy reads them. A value the vault will refuse is taken as it is: its refusal follows. */
struct body_attrs {
    struct cu_customer_attrs a;
    char country[3];
};

static void body_attrs_of(const json_t *body, const struct cu_customer *base,
                          struct body_attrs *out)
{
    json_t *v = json_object_get(body, "country"), *t;
    size_t i;

    memset(out, 0, sizeof(*out));
    if (base != NULL)
        cu_customer_attrs_of(base, &out->a);
    else
        out->a.r.status = "active";
    out->a.r.tags = out->a.tags;
    if (json_is_null(v)) {
        out->a.r.country = NULL;
    } else if (json_is_string(v)) {
        const char *cc = json_string_value(v);
        for (i = 0; i < 2 && cc[i]; i++)
            out->country[i] = (char)(cc[i] >= 'a' && cc[i] <= 'z' ? cc[i] - 32 : cc[i]);
        out->a.r.country = json_string_length(v) == 2 ? out->country : cc;
    }
    v = json_object_get(body, "status");
    if (json_is_string(v))
        out->a.r.status = json_string_value(v);
    v = json_object_get(body, "tags");
    if (json_is_array(v)) {
        out->a.r.ntags = 0;
        json_array_foreach(v, i, t)
        {
            if (out->a.r.ntags < CU_VAULT_MAX_TAGS && json_is_string(t))
                out->a.tags[out->a.r.ntags++] = json_string_value(t);
        }
    }
}

/* The target of a customer's audit records. */
struct target {
    char text[CU_CUSTOMER_ID_BYTES + 10];
};

static struct target target_of(const char *id)
{
    struct target t;
    memcpy(t.text, "customer:", 9);
    cu_text_copy(t.text + 9, sizeof(t.text) - 9, id, strnlen(id, CU_CUSTOMER_ID_BYTES - 1));
    return t;
}

/* field_names(cs, n, only): the fields any of n customers holds, in field order: "fields" of a
 * creation (only NULL), or the personal ones of those shown in full (only: how each customer
 * is shown), "revealed" of a search. */
static json_t *field_names(const struct cu_customer *cs, size_t n, const unsigned char *only)
{
    size_t nf = 0;
    const struct cu_field_def *fs = cu_fields(&nf);
    json_t *a = json_array();
    for (size_t i = 0; a != NULL && i < nf; i++) {
        bool held = false;
        for (size_t k = 0; k < n && !held; k++)
            held = (only == NULL || (fs[i].personal && only[k] == SHOWN_FULL)) &&
                   cs[k].values[i] != NULL;
        if (held)
            json_array_append_new(a, json_string(fs[i].name));
    }
    return a;
}

/* The details of a read's audit record, as canonical JSON text (keys in order, names in field
 * order): {"reason":…,"revealed":[...]} for an unmasked read, {"masked":true,"reason":…,
 * "unmask_limited":true} otherwise (reason when the request gave one, unmask_limited when the
 * per-staff limit masked it); NULL when memory runs out (the unit then fails). Written
 * directly: every read makes one. */
static char *read_details(const struct cu_customer *c, bool unmask, const char *reason,
                          bool limited)
{
    size_t nf = 0;
    const struct cu_field_def *fs = cu_fields(&nf);
    struct cu_buf b;
    bool first = true;
    enum cu_err rc;

    cu_buf_init(&b, CU_AUDIT_DETAILS_MAX);
    rc = cu_buf_append_str(&b, unmask ? "{" : "{\"masked\":true");
    if (rc == CU_OK && reason != NULL) {
        rc = cu_buf_append_str(&b, unmask ? "\"reason\":" : ",\"reason\":");
        if (rc == CU_OK)
            rc = cu_json_escape(&b, reason, strlen(reason));
        if (rc == CU_OK && unmask)
            rc = cu_buf_append(&b, ",", 1);
    }
    if (rc == CU_OK && unmask)
        rc = cu_buf_append_str(&b, "\"revealed\":[");
    for (size_t i = 0; unmask && rc == CU_OK && i < nf; i++) {
        if (c->values[i] == NULL || !fs[i].personal)
            continue;
        if (!first)
            rc = cu_buf_append(&b, ",", 1);
        if (rc == CU_OK)
            rc = cu_json_escape(&b, fs[i].name, strlen(fs[i].name));
        first = false;
    }
    if (rc == CU_OK)
        rc = cu_buf_append_str(&b, unmask ? "]}" : limited ? ",\"unmask_limited\":true}" : "}");
    if (rc != CU_OK) {
        cu_buf_free(&b);
        return NULL;
    }
    return cu_buf_steal(&b);
}

/* Maps a vault error to the response: input problems name the field, stored-data problems
 * keep their stable type and say nothing more. */
static enum cu_err vault_fail(struct cu_resp *resp, enum cu_err rc, const char *why)
{
    if (rc == CU_E_INVALID || rc == CU_E_TOO_LARGE)
        return cu_resp_fail(resp, CU_E_INVALID, "%s", why);
    if (rc == CU_E_EXISTS)
        return cu_resp_fail(resp, rc, "%s", why);
    if (rc == CU_E_NOT_FOUND)
        return cu_resp_fail(resp, rc, "no customer has this id");
    if (rc == CU_E_CRYPTO || rc == CU_E_KEY_MISSING || rc == CU_E_CORRUPT)
        return cu_resp_fail(resp, rc, "the customer's stored data could not be opened");
    return cu_resp_fail(resp, rc, "the customer could not be processed");
}

/* A lookup finds at most this many customers (a blind index may repeat only for phone and
 * national id). */
#define SEARCH_MAX 10

/* Unmasking on purpose: a reason where [access] unmask_reason asks for one, and the per-staff
 * limit of [access] unmask_limit_per_hour, both of which can mask what the policy would show
 * in full. A read that may show a customer in full runs in a unit of its own, so that the
 * limit is taken by the single writer, in order, and the answer follows what it found. */
#define REASON_MAX 200

struct reveal {
    const char *reason;     /* the Custodia-Reason header, or NULL */
    const char *masked_why; /* static, for Custodia-Masked: why what could be shown in full
                               was masked; NULL: nothing was */
    size_t limited;         /* customers masked by the limit */
};

/* reveal_begin(req, resp, rv): the request's reason: none, or one of 1 to REASON_MAX bytes of
 * UTF-8 without control characters (else a 400). */
static enum cu_err reveal_begin(struct cu_req *req, struct cu_resp *resp, struct reveal *rv)
{
    const char *r = cu_req_header(req, "Custodia-Reason");
    size_t n = r != NULL ? strlen(r) : 0;

    memset(rv, 0, sizeof(*rv));
    if (r == NULL)
        return CU_OK;
    bool ok = n > 0 && n <= REASON_MAX && cu_utf8_valid(r, n);
    for (size_t i = 0; ok && i < n; i++)
        ok = (unsigned char)r[i] >= 0x20 && r[i] != 0x7f;
    if (!ok)
        return cu_resp_fail(resp, CU_E_INVALID,
                            "header Custodia-Reason must be 1 to %d bytes of UTF-8 text without "
                            "control characters",
                            REASON_MAX);
    rv->reason = r;
    return CU_OK;
}

/* The staff member behind the request: the one signed in, or the owner of the API key; NULL
 * for the installation's keys and customers. Unmasked reads are theirs: the reason they must
 * give and the hourly limit they are charged. */
static const char *staff_behind(const struct cu_principal *p)
{
    if (p->kind == CU_PRINCIPAL_STAFF)
        return p->id;
    if (p->kind == CU_PRINCIPAL_APIKEY && p->key.owner[0] != '\0' &&
        strcmp(p->key.owner, CU_APIKEY_INSTALLATION) != 0)
        return p->key.owner;
    return NULL;
}

static bool reason_needed(const struct cu_req *req)
{
    const char *mode = req->app->cfg.access.unmask_reason;
    if (strcmp(mode, "none") == 0)
        return false;
    return strcmp(mode, "all") == 0 || staff_behind(&req->principal) != NULL;
}

/* Raised once an hour for a staff member who reached the limit, after the unit commits. */
static void limit_alert(void *arg, struct cu_db *db)
{
    struct cu_req *req = arg;
    (void)db;
    cu_log(CU_LOG_ERROR, "access.unmask_limit", CU_LS("staff", staff_behind(&req->principal)),
           CU_LS("by", req->principal.id),
           CU_LI("limit_per_hour", req->app->cfg.access.unmask_limit_per_hour));
}

/* reveal_apply(req, w, db, rv, shown, n): in the unit, over what the policy decided (shown):
 * without a reason where one is needed, or past the limit, every customer shown in full is
 * masked instead; the limit's alert is recorded in w. */
static enum cu_err reveal_apply(struct cu_req *req, struct cu_work *w, struct cu_db *db,
                                struct reveal *rv, unsigned char *shown, size_t n)
{
    unsigned limit = req->app->cfg.access.unmask_limit_per_hour;
    const char *staff = staff_behind(&req->principal);
    struct cu_unmask_take take;
    size_t full = 0;
    enum cu_err rc;

    rv->masked_why = NULL;
    rv->limited = 0;
    for (size_t i = 0; i < n; i++)
        full += shown[i] == SHOWN_FULL;
    if (full == 0)
        return CU_OK;
    if (rv->reason == NULL && reason_needed(req)) {
        rv->masked_why = "reason-required";
    } else if (staff != NULL && limit > 0) {
        rc = cu_unmask_take(db, staff, cu_work_context_of(w)->now_ms, (unsigned)full, limit, &take);
        if (rc != CU_OK)
            return rc;
        if (take.granted)
            return CU_OK;
        rv->masked_why = "limit-reached";
        rv->limited = full;
        if (take.alert) {
            rc = cu_work_audit(w, "access.unmask_limit", staff, "denied",
                               json_pack("{s:I, s:I}", "limit_per_hour", (json_int_t)limit, "used",
                                         (json_int_t)take.used));
            if (rc == CU_OK)
                rc = cu_work_emit(w, "access.unmask_limit",
                                  json_pack("{s:s, s:I}", "staff_id", staff, "limit_per_hour",
                                            (json_int_t)limit));
            if (rc == CU_OK)
                rc = cu_work_after(w, limit_alert, req);
            if (rc != CU_OK)
                return rc;
        }
    } else {
        return CU_OK;
    }
    for (size_t i = 0; i < n; i++)
        if (shown[i] == SHOWN_FULL)
            shown[i] = SHOWN_MASKED;
    return CU_OK;
}

/* The answer's header when something was masked on purpose. */
static void reveal_header(struct cu_req *req, struct cu_resp *resp, const struct reveal *rv)
{
    if (rv->masked_why != NULL)
        cu_resp_header(resp, "Custodia-Masked", rv->masked_why);
    if (rv->limited > 0)
        cu_metrics_guard_event(req->app->metrics, CU_GUARD_UNMASK_LIMITED, rv->limited);
}

/* A customer change, from the handler through its unit of work to its answer. */
struct change {
    struct cu_req *req;
    struct cu_resp *resp;
    json_t *body;
    struct cu_customer c;
    json_t *changed;
    char why[CU_VAULT_WHY_BYTES];
    struct cu_gate_result gate; /* the unit's decision on the customer */
    enum shown shown;           /* how the answer shows the customer */
    struct reveal rv;           /* a PATCH's read: its reason, and what masked it */
    void *memo;                 /* monitoring's decision about a PATCH, kept across runs */
    bool denied;                /* monitoring denied it */
    char decision[CU_DECISION_ID_BYTES];
};

static void change_clear(void *p)
{
    struct change *j = p;
    cu_monitor_memo_free(j->memo);
    json_decref(j->body);
    json_decref(j->changed);
    cu_customer_clear(&j->c);
}

/* change_new(req, resp, body): the change of req, reading its JSON body when body is true;
 * NULL with the problem set in resp. */
static struct change *change_new(struct cu_req *req, struct cu_resp *resp, bool body)
{
    struct change *j = cu_req_alloc(req, sizeof(*j), change_clear);

    if (j == NULL) {
        cu_resp_fail(resp, CU_E_NOMEM, "out of memory");
        return NULL;
    }
    memset(&j->c, 0, sizeof(j->c));
    j->req = req;
    j->resp = resp;
    if (body && cu_req_json(req, resp, &j->body) != CU_OK)
        return NULL;
    return j;
}

/* A change run again (the committer re-runs a unit that lost a race) starts afresh. */
static void change_reset(struct change *j)
{
    json_decref(j->changed);
    j->changed = NULL;
    cu_customer_clear(&j->c);
    j->why[0] = '\0';
    memset(&j->gate, 0, sizeof(j->gate));
    j->shown = SHOWN_NOT;
}

/* The failure of a change's apply: busy is left to the committer's retry, the rest reported. */
static enum cu_err change_fail(struct change *j, enum cu_err rc)
{
    return rc == CU_E_BUSY ? rc : vault_fail(j->resp, rc, j->why);
}

/* Answers with one customer. */
static enum cu_err answer_customer(struct cu_resp *resp, int status, const struct cu_customer *c,
                                   bool unmask)
{
    struct cu_buf *b = cu_resp_json_begin(resp, status);
    return cu_resp_json_end(resp, cu_customer_write(c, unmask, b));
}

/* Answers with a page of customers: {"items": [...], "next_after": id or null}, each shown
 * as shown[i] says (left out, masked or in full). */
static enum cu_err answer_list(struct cu_resp *resp, const struct cu_customer *cs, size_t n,
                               const unsigned char *shown, const char *next_after)
{
    struct cu_buf *b = cu_resp_json_begin(resp, 200);
    enum cu_err rc = cu_buf_append_str(b, "{\"items\":[");
    bool first = true;

    for (size_t i = 0; rc == CU_OK && i < n; i++) {
        if (shown[i] == SHOWN_NOT)
            continue;
        if (!first)
            rc = cu_buf_append(b, ",", 1);
        first = false;
        if (rc == CU_OK)
            rc = cu_customer_write(&cs[i], shown[i] == SHOWN_FULL, b);
    }
    if (rc == CU_OK)
        rc = cu_buf_append_str(b, "],\"next_after\":");
    if (rc == CU_OK)
        rc = next_after ? cu_json_escape(b, next_after, strlen(next_after))
                        : cu_buf_append_str(b, "null");
    if (rc == CU_OK)
        rc = cu_buf_append(b, "}", 1);
    return cu_resp_json_end(resp, rc);
}

static enum cu_err create_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct change *j = arg;
    enum cu_err rc;

    change_reset(j);
    rc = cu_vault_create(j->req->app->vault, db, j->body, &j->c, j->why);
    if (rc == CU_OK)
        rc = cu_work_audit(w, "customer.create", target_of(j->c.id).text, "success",
                           json_pack("{s:o}", "fields", field_names(&j->c, 1, NULL)));
    return rc == CU_OK ? CU_OK : change_fail(j, rc);
}

static enum cu_err create_answer(struct cu_req *req, struct cu_resp *resp, void *arg)
{
    struct change *j = arg;
    return answer_customer(resp, 201, &j->c, cu_req_unmask_on(req, &j->c));
}

/* A creation is decided on the customer it makes: its country, status and tags. */
enum cu_err cu_handle_customers_create(struct cu_req *req, struct cu_resp *resp)
{
    struct change *j = change_new(req, resp, true);
    struct body_attrs to;

    if (j == NULL)
        return resp->err;
    body_attrs_of(j->body, NULL, &to);
    if (cu_req_gate_on(req, resp, CU_SCOPE_CUSTOMERS_WRITE, &to.a.r, NULL) != CU_OK)
        return resp->err;
    return cu_req_change(req, create_apply, create_answer, j);
}

/* A read of one customer, or a search's: the customers read, how the policy lets each be
 * shown (pre), and how the unit decided to show them (shown). */
struct show {
    struct cu_req *req;
    struct cu_resp *resp;
    const char *field; /* the field a search goes by; NULL: a read of one customer */
    struct cu_customer cs[SEARCH_MAX];
    size_t n;
    unsigned char pre[SEARCH_MAX], shown[SEARCH_MAX];
    struct reveal rv;
};

static void show_clear(void *p)
{
    struct show *j = p;
    for (size_t i = 0; i < j->n; i++)
        cu_customer_clear(&j->cs[i]);
}

/* read_record(w, c, full, rv): the customer.read record of a read of c. */
static enum cu_err read_record(struct cu_work *w, const struct cu_customer *c, bool full,
                               const struct reveal *rv)
{
    char *details = read_details(c, full, rv->reason, rv->limited > 0);
    return details != NULL
               ? cu_work_audit_text(w, "customer.read", target_of(c->id).text, "success", details)
               : CU_E_NOMEM;
}

/* search_record(w, j): the customer.search record. It names every customer answered and, for
 * those unmasked, the fields revealed and their ids when some others were masked; with one
 * customer answered, it is that customer's record (target), as a GET's would be. Customers
 * left out are counted (withheld). */
static enum cu_err search_record(struct cu_work *w, const struct show *j)
{
    size_t returned = 0, full = 0;
    const char *only = "";
    json_t *found = json_array(), *opened = NULL, *revealed = NULL, *details;

    for (size_t i = 0; i < j->n; i++) {
        returned += j->shown[i] != SHOWN_NOT;
        full += j->shown[i] == SHOWN_FULL;
    }
    if (full > 0 && full < returned)
        opened = json_array();
    if (full > 0)
        revealed = field_names(j->cs, j->n, j->shown);
    for (size_t i = 0; i < j->n; i++) {
        if (j->shown[i] == SHOWN_NOT)
            continue;
        only = j->cs[i].id;
        if (found != NULL)
            json_array_append_new(found, json_string(j->cs[i].id));
        if (j->shown[i] == SHOWN_FULL && opened != NULL)
            json_array_append_new(opened, json_string(j->cs[i].id));
    }
    details = json_pack("{s:s, s:I, s:b, s:o, s:o*, s:o*, s:s*}", "by", j->field, "found",
                        (json_int_t)returned, "unmasked", full > 0, "customers", found, "revealed",
                        revealed, "unmasked_customers", opened, "reason", j->rv.reason);
    if (details != NULL && j->n > returned)
        json_object_set_new(details, "withheld", json_integer((json_int_t)(j->n - returned)));
    if (details != NULL && j->rv.limited > 0)
        json_object_set_new(details, "unmask_limited", json_true());
    if (details == NULL)
        return CU_E_NOMEM;
    return cu_work_audit(w, "customer.search", returned == 1 ? target_of(only).text : "", "success",
                         details);
}

static enum cu_err show_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct show *j = arg;
    enum cu_err rc;

    memcpy(j->shown, j->pre, sizeof(j->shown));
    rc = reveal_apply(j->req, w, db, &j->rv, j->shown, j->n);
    if (rc == CU_OK)
        rc = j->field == NULL ? read_record(w, &j->cs[0], j->shown[0] == SHOWN_FULL, &j->rv)
                              : search_record(w, j);
    return rc == CU_E_BUSY ? rc : rc == CU_OK ? CU_OK : vault_fail(j->resp, rc, "");
}

static enum cu_err show_answer(struct cu_req *req, struct cu_resp *resp, void *arg)
{
    struct show *j = arg;
    reveal_header(req, resp, &j->rv);
    if (j->field == NULL)
        return answer_customer(resp, 200, &j->cs[0], j->shown[0] == SHOWN_FULL);
    return answer_list(resp, j->cs, j->n, j->shown, NULL);
}

static struct show *show_new(struct cu_req *req, struct cu_resp *resp)
{
    struct show *j = cu_req_alloc(req, sizeof(*j), show_clear);
    if (j == NULL) {
        cu_resp_fail(resp, CU_E_NOMEM, "out of memory");
        return NULL;
    }
    memset(j, 0, sizeof(*j));
    j->req = req;
    j->resp = resp;
    return j;
}

enum cu_err cu_handle_customer_get(struct cu_req *req, struct cu_resp *resp)
{
    struct show *j;
    struct cu_db *db = NULL;
    enum cu_access_effect read = CU_ACCESS_DENY;
    enum cu_err rc;

    if (!valid_customer_id(req->params[0]))
        return cu_resp_fail(resp, CU_E_INVALID, "the id must be cus_ and 16 hex digits");
    j = show_new(req, resp);
    if (j == NULL || reveal_begin(req, resp, &j->rv) != CU_OK)
        return resp->err;
    rc = cu_req_db(req, &db);
    if (rc == CU_OK)
        rc = cu_vault_get(req->app->vault, db, req->params[0], true, &j->cs[0]);
    if (rc != CU_OK)
        return vault_fail(resp, rc, "");
    j->n = 1;
    if (cu_req_gate(req, resp, CU_SCOPE_CUSTOMERS_READ, &j->cs[0], &read) != CU_OK)
        return resp->err;
    j->pre[0] = read == CU_ACCESS_ALLOW && cu_req_effect_on(req, CU_SCOPE_CUSTOMERS_UNMASK,
                                                            &j->cs[0]) == CU_ACCESS_ALLOW
                    ? SHOWN_FULL
                    : SHOWN_MASKED;
    /* The server sends the answer only once the read's audit record is committed. */
    return cu_req_change(req, show_apply, show_answer, j);
}

/* may_change(j, w, db): the write decided, in the unit, on the customer as stored now and as
 * the change leaves it (a change may not move a customer out of, or into, what the principal
 * may not change); a denial is recorded in w (j->gate). */
static enum cu_err may_change(struct change *j, struct cu_work *w, struct cu_db *db)
{
    struct cu_req *req = j->req;
    struct cu_customer now;
    struct cu_customer_attrs before;
    struct body_attrs after;
    struct cu_access_decision d;
    enum cu_err rc;

    memset(&now, 0, sizeof(now));
    rc = cu_vault_get(req->app->vault, db, req->params[0], false, &now);
    if (rc == CU_OK) {
        cu_customer_attrs_of(&now, &before);
        body_attrs_of(j->body, &now, &after);
        if (cu_req_decide_on(req, CU_SCOPE_CUSTOMERS_WRITE, &before.r, &d) != CU_OK ||
            cu_req_decide_on(req, CU_SCOPE_CUSTOMERS_WRITE, &after.a.r, &d) != CU_OK)
            rc = cu_work_gate_refuse(req, w, &d, target_of(now.id).text, &j->gate);
    }
    cu_customer_clear(&now);
    /* no customer, nothing to protect: the change itself says what is wrong (its body first,
     * then that the customer does not exist) */
    return rc == CU_E_NOT_FOUND ? CU_OK : rc;
}

/* A PATCH changes the customer and answers with what is stored now, which is a read: personal
 * fields only for a caller that may read them (on the customer as changed), masked unless it
 * may unmask, and audited as GET audits them, in the same unit of work as the change. */
static enum cu_err patch_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct change *j = arg;
    struct cu_req *req = j->req;
    enum cu_err rc;

    change_reset(j);
    rc = may_change(j, w, db);
    if (rc != CU_OK || j->gate.refused)
        return rc == CU_OK ? CU_OK : change_fail(j, rc);
    /* monitoring, before the change: the fields the body changes, as a profile_changed */
    {
        const char *fields[CU_MON_FIELDS_MAX];
        const char *k;
        json_t *v;
        size_t n = 0;
        enum cu_decision dec = CU_DEC_ALLOW;
        json_object_foreach(j->body, k, v)
        {
            (void)v;
            if (n < CU_MON_FIELDS_MAX)
                fields[n++] = k;
        }
        rc = cu_monitor_note(req->app->monitor, w, db, "profile_changed", req->params[0], fields, n,
                             &j->memo, &dec, j->decision);
        if (rc != CU_OK)
            return change_fail(j, rc);
        j->denied = dec == CU_DEC_DENY;
        if (j->denied)
            return cu_work_audit(
                w, "customer.update", target_of(req->params[0]).text, "denied",
                json_pack("{s:s, s:s}", "reason", "monitoring", "decision", j->decision));
    }
    rc = cu_vault_patch(req->app->vault, db, req->params[0], j->body, &j->c, &j->changed, j->why);
    if (rc == CU_OK && json_array_size(j->changed) > 0)
        rc = cu_work_audit(w, "customer.update", target_of(j->c.id).text, "success",
                           json_pack("{s:O}", "changed", j->changed));
    if (rc == CU_OK) {
        unsigned char shown = (unsigned char)shown_of(req, &j->c);
        rc = reveal_apply(req, w, db, &j->rv, &shown, 1);
        j->shown = (enum shown)shown;
    }
    if (rc == CU_OK && j->shown != SHOWN_NOT)
        rc = read_record(w, &j->c, j->shown == SHOWN_FULL, &j->rv);
    return rc == CU_OK ? CU_OK : change_fail(j, rc);
}

static enum cu_err patch_answer(struct cu_req *req, struct cu_resp *resp, void *arg)
{
    struct change *j = arg;
    (void)req;
    if (j->gate.refused)
        return cu_gate_refused_answer(resp, &j->gate);
    if (j->denied) {
        resp->type = "change_denied";
        return cu_resp_fail(resp, CU_E_FORBIDDEN,
                            "the change was refused by monitoring (decision %s)", j->decision);
    }
    reveal_header(req, resp, &j->rv);
    if (j->shown == SHOWN_NOT)
        cu_customer_drop_personal(&j->c);
    return answer_customer(resp, 200, &j->c, j->shown == SHOWN_FULL);
}

enum cu_err cu_handle_customer_patch(struct cu_req *req, struct cu_resp *resp)
{
    struct change *j;

    if (!valid_customer_id(req->params[0]))
        return cu_resp_fail(resp, CU_E_INVALID, "the id must be cus_ and 16 hex digits");
    j = change_new(req, resp, true);
    if (j == NULL || reveal_begin(req, resp, &j->rv) != CU_OK)
        return resp->err;
    return cu_req_change(req, patch_apply, patch_answer, j);
}

/* GET /v1/customers?email=… (or phone, national_id, external_ref): exact lookup. Each
 * customer found is decided on: one the principal may not read is left out (the answer does
 * not tell it exists), one it may not unmask is masked. */
static enum cu_err search(struct cu_req *req, struct cu_resp *resp, const char *field,
                          const char *value)
{
    char why[CU_VAULT_WHY_BYTES] = "", ids[SEARCH_MAX][CU_CUSTOMER_ID_BYTES];
    struct show *j = show_new(req, resp);
    struct cu_db *db = NULL;
    size_t n = 0;
    enum cu_err rc;

    if (j == NULL || reveal_begin(req, resp, &j->rv) != CU_OK)
        return resp->err;
    j->field = field;
    rc = cu_req_db(req, &db);
    if (rc == CU_OK)
        rc = cu_vault_find(req->app->vault, db, field, value, ids, SEARCH_MAX, &n, why);
    while (rc == CU_OK && j->n < n &&
           (rc = cu_vault_get(req->app->vault, db, ids[j->n], true, &j->cs[j->n])) == CU_OK)
        j->n++;
    if (rc != CU_OK)
        return vault_fail(resp, rc, why);
    for (size_t i = 0; i < j->n; i++)
        j->pre[i] = (unsigned char)shown_of(req, &j->cs[i]);
    return cu_req_change(req, show_apply, show_answer, j);
}

/* The fields a search may go by, in the order a refusal names them. */
static const char *const search_by[] = {"email", "phone", "national_id", "external_ref"};
#define SEARCH_BY (sizeof(search_by) / sizeof(search_by[0]))

/* lookup_field(req, resp, field, value): the one search field the query names (*field NULL
 * when it names none) and its value. CU_E_INVALID with the detail set when it names two or
 * more (they are named; a search goes by exactly one) or the one it names is empty. */
static enum cu_err lookup_field(struct cu_req *req, struct cu_resp *resp, const char **field,
                                const char **value)
{
    char names[sizeof("email, phone, national_id, external_ref")] = ""; /* all of them */
    size_t count = 0;

    *field = *value = NULL;
    for (size_t i = 0; i < SEARCH_BY; i++) {
        const char *v = cu_req_query(req, search_by[i]);
        size_t used = strlen(names);
        if (v == NULL)
            continue;
        snprintf(names + used, sizeof(names) - used, "%s%s", used ? ", " : "", search_by[i]);
        count++;
        *field = search_by[i];
        *value = v;
    }
    if (count > 1)
        return cu_resp_fail(resp, CU_E_INVALID,
                            "a search goes by exactly one of email, phone, national_id and "
                            "external_ref; this one names %zu: %s",
                            count, names);
    if (count == 1 && **value == '\0')
        return cu_resp_fail(resp, CU_E_INVALID, "query argument '%s' is empty", *field);
    return CU_OK;
}

enum cu_err cu_handle_customers_list(struct cu_req *req, struct cu_resp *resp)
{
    const char *after = NULL, *field = NULL, *value = NULL;
    struct cu_customer *cs = NULL;
    struct cu_db *db = NULL;
    size_t limit = 100;
    size_t n = 0;
    enum cu_err rc = lookup_field(req, resp, &field, &value);

    if (rc != CU_OK)
        return rc;
    if (field != NULL)
        return search(req, resp, field, value);
    rc = cu_req_page(req, resp, valid_customer_id, "a customer id", &after, &limit);
    if (rc != CU_OK)
        return rc;
    rc = cu_req_db(req, &db);
    if (rc == CU_OK)
        rc = cu_vault_list(req->app->vault, db, after, limit, &cs, &n);
    if (rc != CU_OK) {
        cu_customers_free(cs, n);
        return cu_resp_fail(resp, rc, "the customers could not be listed");
    }
    /* Each row is decided on its customer: one the principal may not read is left out. The
     * page is of the customers scanned, so next_after follows the last one scanned (a page may
     * hold fewer items than the limit, or none, and still have a next). A list is masked: it
     * decrypts nothing. */
    unsigned char *shown = cu_calloc(n > 0 ? n : 1, 1);
    size_t returned = 0;
    if (shown == NULL) {
        cu_customers_free(cs, n);
        return cu_resp_fail(resp, CU_E_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        shown[i] = cu_req_effect_on(req, CU_SCOPE_CUSTOMERS_READ, &cs[i]) == CU_ACCESS_DENY
                       ? SHOWN_NOT
                       : SHOWN_MASKED;
        returned += shown[i] != SHOWN_NOT;
    }
    rc = answer_list(resp, cs, n, shown, n == limit ? cs[n - 1].id : NULL);
    cu_customers_free(cs, n);
    cu_free(shown);
    if (rc == CU_OK) {
        json_t *details = json_pack("{s:I}", "count", (json_int_t)returned);
        if (details != NULL && n > returned)
            json_object_set_new(details, "withheld", json_integer((json_int_t)(n - returned)));
        rc = details != NULL ? cu_req_audit(req, "customer.list", "", "success", details)
                             : CU_E_NOMEM;
    }
    return rc;
}

/* After the erasure is durable, on the writer's connection: the store's purge, so that the
 * erased customer's old pages leave the write-ahead log; if a reader holds the log, the server
 * retries until a purge succeeds (/v1/health says "erasure_purge":"pending" meanwhile). */
static void erase_purge(void *arg, struct cu_db *db)
{
    struct change *j = arg;
    if (cu_db_purge(db) == CU_OK)
        return;
    cu_app_purge_deferred(j->req->app);
    cu_log(CU_LOG_WARN, "vault.purge_deferred", CU_LS("customer", j->req->params[0]));
}

/* external_ref_of(v, db, id, out, cap): the customer's external_ref ("" when none). */
static enum cu_err external_ref_of(struct cu_vault *v, struct cu_db *db, const char *id, char *out,
                                   size_t cap)
{
    const struct cu_field_def *fields = NULL;
    size_t n = 0, at = SIZE_MAX;
    struct cu_customer c;
    enum cu_err rc;

    out[0] = '\0';
    fields = cu_fields(&n);
    for (size_t i = 0; i < n && at == SIZE_MAX; i++)
        if (strcmp(fields[i].name, "external_ref") == 0)
            at = i;
    memset(&c, 0, sizeof(c));
    rc = cu_vault_get(v, db, id, true, &c);
    if (rc == CU_OK && at < CU_VAULT_MAX_FIELDS && c.values[at] != NULL)
        snprintf(out, cap, "%s", c.values[at]);
    cu_customer_clear(&c);
    return rc;
}

/* An erasure destroys the customer's key and data and what sign-in keeps of them, and reads
 * back what is left (the erased record), in one unit of work. */
static enum cu_err erase_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct change *j = arg;
    struct cu_req *req = j->req;
    const char *id = req->params[0];
    enum cu_err rc;

    change_reset(j);
    rc = cu_work_gate(req, w, db, id, CU_SCOPE_CUSTOMERS_ERASE, &j->gate);
    if (rc != CU_OK || j->gate.refused)
        return rc == CU_OK ? CU_OK : change_fail(j, rc);
    /* accounts that are not closed hold (or may yet hold) the customer's money: it must go
     * somewhere before the customer is forgotten */
    int64_t open = 0;
    rc = cu_ledger_open_accounts(db, id, &open);
    if (rc == CU_OK && open > 0)
        return cu_resp_fail(j->resp, CU_E_EXISTS,
                            "the customer has %lld account%s not closed: pay out and close %s "
                            "first (POST /v1/accounts/{id}/close)",
                            (long long)open, open == 1 ? "" : "s", open == 1 ? "it" : "them");
    if (rc != CU_OK)
        return change_fail(j, rc);
    /* the reference outside systems post the customer's events under, before it is erased */
    char ref[CU_MON_REF_MAX + 1] = "";
    rc = external_ref_of(req->app->vault, db, id, ref, sizeof(ref));
    if (rc == CU_OK)
        rc = cu_vault_erase(req->app->vault, db, id, req->principal.id);
    if (rc == CU_OK)
        rc = cu_identity_forget(db, CU_SUBJECT_CUSTOMER, id);
    if (rc == CU_OK && req->app->monitor != NULL)
        rc = cu_monitor_forget(req->app->monitor, w, db, id, ref);
    if (rc == CU_OK)
        rc = cu_cases_forget(db, id);
    sodium_memzero(ref, sizeof(ref));
    if (rc == CU_OK)
        rc = cu_work_audit(w, "customer.erase", target_of(id).text, "success", NULL);
    if (rc == CU_OK)
        rc = cu_vault_get(req->app->vault, db, id, false, &j->c);
    if (rc == CU_OK)
        rc = cu_work_after(w, erase_purge, j);
    return rc == CU_OK ? CU_OK : change_fail(j, rc);
}

static enum cu_err erase_answer(struct cu_req *req, struct cu_resp *resp, void *arg)
{
    struct change *j = arg;
    (void)req;
    if (j->gate.refused)
        return cu_gate_refused_answer(resp, &j->gate);
    return answer_customer(resp, 200, &j->c, false);
}

enum cu_err cu_handle_customer_erase(struct cu_req *req, struct cu_resp *resp)
{
    struct change *j;

    if (!valid_customer_id(req->params[0]))
        return cu_resp_fail(resp, CU_E_INVALID, "the id must be cus_ and 16 hex digits");
    j = change_new(req, resp, false);
    if (j == NULL)
        return resp->err;
    return cu_req_change(req, erase_apply, erase_answer, j);
}
