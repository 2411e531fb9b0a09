/*
 * monitor_routes.c - the monitoring routes (docs/api.md, "Events and decisions"): events that
 * outside systems post for a decision, and the decisions stored.
 *
 * An event is parsed by the monitoring event parser (strict: unknown fields, sizes, types),
 * its time checked against [monitor] future_seconds and past_days, and decided in the
 * request's unit of work on the committer's thread: the event, the decision and its audit
 * record commit together, and the answer is sent once they are durable.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sodium.h>
#include <string.h>

#include "api/handlers.h"
#include "audit/audit.h"
#include "api/http.h"
#include "api/server.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/text.h"
#include "base/json.h"
#include "ledger/ledger.h"
#include "monitor/alerts.h"
#include "monitor/monitor.h"
#include "vault/vault.h"

#define EXTERNAL_REF_MAX 64 /* a vault customer's external_ref (vault/fields.c) */

#define EVENT_KEY_MAX 64 /* an Idempotency-Key of POST /v1/events */

struct event_job {
    struct cu_req *req;
    struct cu_resp *resp;
    struct cu_mon_event ev;
    struct cu_monitor_decision d;
    char location[64];
    /* an Idempotency-Key: the key, whose it is, the event's digest; a retry's first answer */
    const char *key;
    char scope[96];
    uint8_t digest[crypto_generichash_BYTES];
    bool replay;
    char replay_id[CU_DECISION_ID_BYTES];
    char *replay_answer;
};

static void event_job_clear(void *p)
{
    struct event_job *j = p;
    cu_monitor_decision_clear(&j->d);
    cu_free(j->replay_answer);
    sodium_memzero(&j->ev, sizeof(j->ev)); /* the address as sent */
}

/* event_key(j, db, found): the first decision under j's Idempotency-Key, when there is one:
 * the same event answers it again (j->replay), another is refused (409). */
static enum cu_err event_key(struct event_job *j, struct cu_db *db, bool *found)
{
    static const char sql[] = "SELECT digest, decision_id FROM monitor_idempotency WHERE "
                              "principal = $1 AND key = $2";
    const struct cu_val p[] = {CU_VT(j->scope), CU_VT(j->key)};
    struct cu_stmt *st = NULL;
    bool row = false;
    bool same = false;
    enum cu_err rc = cu_db_query(db, sql, p, CU_NVALS(p), &st);

    *found = false;
    j->replay = false;
    if (rc == CU_OK && (rc = cu_stmt_next(st, &row)) == CU_OK && row) {
        size_t n = 0, dn = 0;
        const void *dg = cu_stmt_blob(st, 0, &n);
        const char *id = cu_stmt_text(st, 1, &dn);
        same = n == sizeof(j->digest) && memcmp(dg, j->digest, n) == 0;
        cu_text_copy(j->replay_id, sizeof(j->replay_id), id, dn);
        *found = true;
    }
    cu_stmt_done(st);
    if (rc != CU_OK || !*found)
        return rc;
    if (!same) {
        j->resp->type = "idempotency_key_reused";
        return cu_resp_fail(j->resp, CU_E_EXISTS,
                            "the Idempotency-Key was used for another event; use a new key");
    }
    /* the first answer again, as it was made */
    {
        static const char ans_sql[] =
            "SELECT verdict, took_us FROM monitor_events WHERE decision_id = $1";
        const struct cu_val q[] = {CU_VT(j->replay_id)};
        struct cu_buf b;
        cu_buf_init(&b, (size_t)4 << 20);
        rc = cu_db_query(db, ans_sql, q, CU_NVALS(q), &st);
        if (rc == CU_OK && (rc = cu_stmt_next(st, &row)) == CU_OK && !row)
            rc = CU_E_BUSY; /* claimed by a unit not yet committed elsewhere: run again */
        if (rc == CU_OK) {
            size_t n = 0;
            const char *v = cu_stmt_text(st, 0, &n);
            rc = cu_buf_append_str(&b, "{\"id\":");
            if (rc == CU_OK)
                rc = cu_json_escape(&b, j->replay_id, strlen(j->replay_id));
            if (rc == CU_OK)
                rc = cu_buf_append_str(&b, ",");
            if (rc == CU_OK)
                rc = cu_buf_append(&b, v, n);
            if (rc == CU_OK)
                rc = cu_buf_printf(&b, ",\"took_us\":%lld}", (long long)cu_stmt_int(st, 1));
        }
        cu_stmt_done(st);
        cu_free(j->replay_answer);
        j->replay_answer = NULL;
        if (rc == CU_OK && (j->replay_answer = cu_buf_steal(&b)) == NULL)
            rc = CU_E_NOMEM;
        cu_buf_free(&b);
    }
    if (rc == CU_OK)
        j->replay = true;
    return rc;
}

static enum cu_err event_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    /* the key claimed before the event is decided, so that a key another unit holds is seen
     * before the state counts this one */
    static const char claim_sql[] =
        "INSERT INTO monitor_idempotency (principal, key, digest, decision_id, created_at) VALUES "
        "($1, $2, $3, '', $4) ON CONFLICT (principal, key) DO NOTHING";
    static const char fill_sql[] =
        "UPDATE monitor_idempotency SET decision_id = $3 WHERE principal = $1 AND key = $2";
    struct event_job *j = arg;
    enum cu_err rc;

    if (j->key != NULL) {
        bool found = false;
        const struct cu_val p[] = {CU_VT(j->scope), CU_VT(j->key),
                                   CU_VB(j->digest, sizeof(j->digest)),
                                   CU_VI(cu_work_context_of(w)->now_ms)};
        rc = cu_db_exec(db, claim_sql, p, CU_NVALS(p));
        if (rc == CU_OK && cu_db_changes(db) == 0 && (rc = event_key(j, db, &found)) == CU_OK &&
            found)
            return CU_OK; /* the first answer again */
        if (rc != CU_OK)
            return rc == CU_E_BUSY || j->resp->err
                       ? rc
                       : cu_resp_fail(j->resp, rc, "the event could not be decided");
    }
    rc = cu_monitor_decide(j->req->app->monitor, w, db, &j->ev, "api", &j->d);
    if (rc == CU_OK && j->key != NULL) {
        const struct cu_val p[] = {CU_VT(j->scope), CU_VT(j->key), CU_VT(j->d.id)};
        rc = cu_db_exec(db, fill_sql, p, CU_NVALS(p));
    }
    if (rc != CU_OK && rc != CU_E_BUSY) {
        /* the event was well formed: what failed is the server's (its texts, memory, store) */
        cu_log(CU_LOG_ERROR, "monitor.decide_failed", CU_LS("error", cu_err_str(rc)));
        return cu_resp_fail(j->resp,
                            rc == CU_E_TOO_LARGE || rc == CU_E_INVALID ? CU_E_INTERNAL : rc,
                            "the event could not be decided");
    }
    return rc;
}

static enum cu_err event_answer(struct cu_req *req, struct cu_resp *resp, void *arg)
{
    struct event_job *j = arg;
    struct cu_buf *b = cu_resp_json_begin(resp, 201);

    (void)req;
    if (j->replay) {
        snprintf(j->location, sizeof(j->location), "/v1/decisions/%s", j->replay_id);
        cu_resp_header(resp, "Location", j->location);
        cu_resp_header(resp, "Idempotent-Replayed", "true");
        return cu_resp_json_end(resp, cu_buf_append_str(b, j->replay_answer));
    }
    snprintf(j->location, sizeof(j->location), "/v1/decisions/%s", j->d.id);
    cu_resp_header(resp, "Location", j->location);
    return cu_resp_json_end(resp, cu_monitor_answer(&j->d, b));
}

/* vault_key(req, resp, ev): a vault customer's events share one key, its id: an event whose
 * customer is the external_ref of exactly one vault customer is kept under that customer's
 * id (the reference itself is then not stored). */
static enum cu_err vault_key(struct cu_req *req, struct cu_resp *resp, char *customer, size_t cap)
{
    char ids[2][CU_CUSTOMER_ID_BYTES], why[CU_VAULT_WHY_BYTES];
    struct cu_db *db = NULL;
    size_t n = 0;
    enum cu_err rc;

    if (strlen(customer) > EXTERNAL_REF_MAX || strncmp(customer, "cus_", 4) == 0)
        return CU_OK;
    if ((rc = cu_req_db(req, &db)) != CU_OK)
        return cu_resp_fail(resp, rc, "the customer's reference could not be looked up");
    rc = cu_vault_find(req->app->vault, db, "external_ref", customer, ids, 2, &n, why);
    if (rc == CU_E_INVALID)
        return CU_OK; /* not a reference the vault could hold */
    if (rc != CU_OK)
        return cu_resp_fail(resp, rc, "the customer's reference could not be looked up");
    if (n == 1)
        snprintf(customer, cap, "%s", ids[0]);
    return CU_OK;
}

/* event_idempotency(req, resp, j): the optional Idempotency-Key (1 to 64 printable ASCII
 * characters without spaces), whose it is, and the digest of the event as parsed. */
static enum cu_err event_idempotency(struct cu_req *req, struct cu_resp *resp, struct event_job *j)
{
    const char *k = cu_req_header(req, "Idempotency-Key");
    size_t n = k ? strlen(k) : 0;
    bool ok = n >= 1 && n <= EVENT_KEY_MAX;
    struct cu_buf b;
    enum cu_err rc;

    if (k == NULL)
        return CU_OK;
    for (size_t i = 0; ok && i < n; i++)
        ok = k[i] > 0x20 && k[i] < 0x7f;
    if (!ok)
        return cu_resp_fail(resp, CU_E_INVALID,
                            "the header Idempotency-Key must be 1 to %d printable ASCII "
                            "characters without spaces",
                            EVENT_KEY_MAX);
    j->key = k;
    snprintf(j->scope, sizeof(j->scope), "%s:%s",
             req->principal.kind == CU_PRINCIPAL_STAFF ? "staff" : "apikey", req->principal.id);
    cu_buf_init(&b, (size_t)CU_MON_EVENT_MAX * 2);
    rc = cu_mon_event_write(&j->ev, cu_monitor_types(req->app->monitor), &b);
    /* keyed (the audit log's key), so that the stored digest says nothing of the event */
    if (rc == CU_OK) {
        char h[CU_AUDIT_HASHED_BYTES];
        rc = cu_audit_hash_value(req->app->audit, "event_key", cu_buf_cstr(&b), h);
        if (rc == CU_OK)
            crypto_generichash(j->digest, sizeof(j->digest), (const unsigned char *)h, strlen(h),
                               NULL, 0);
        sodium_memzero(h, sizeof(h));
    }
    if (b.data != NULL)
        sodium_memzero(b.data, b.len);
    cu_buf_free(&b);
    return rc == CU_OK ? CU_OK : cu_resp_fail(resp, rc, "the event could not be decided");
}

enum cu_err cu_handle_events_create(struct cu_req *req, struct cu_resp *resp)
{
    struct event_job *j = cu_req_alloc(req, sizeof(*j), event_job_clear);
    struct cu_monitor *m = req->app->monitor;
    struct cu_mon_parse_opts o;
    char err[CU_MON_ERR_BYTES];
    enum cu_err rc;

    if (j == NULL)
        return cu_resp_fail(resp, CU_E_NOMEM, "the event could not be decided");
    if ((rc = cu_req_json_body(req, resp)) != CU_OK)
        return rc;
    memset(&o, 0, sizeof(o));
    o.types = cu_monitor_types(m);
    rc = cu_mon_event_parse(req->body.data, req->body.len, &o, &j->ev, err);
    if (rc != CU_OK)
        return cu_resp_fail(resp, rc == CU_E_TOO_LARGE ? rc : CU_E_INVALID, "%s", err);
    if (cu_monitor_check_time(m, &j->ev, cu_clock_now_ms(), err) != CU_OK)
        return cu_resp_fail(resp, CU_E_INVALID, "%s", err);
    if ((rc = event_idempotency(req, resp, j)) != CU_OK)
        return rc;
    if ((rc = vault_key(req, resp, j->ev.customer, sizeof(j->ev.customer))) != CU_OK)
        return rc;
    j->req = req;
    j->resp = resp;
    return cu_req_change(req, event_apply, event_answer, j);
}

enum cu_err cu_handle_decision_get(struct cu_req *req, struct cu_resp *resp)
{
    struct cu_db *db = NULL;
    struct cu_buf *b;
    enum cu_err rc;

    if (!cu_ledger_id_valid(req->params[0], "dec_")) {
        resp->type = "unknown_decision";
        return cu_resp_fail(resp, CU_E_NOT_FOUND, "no decision has this id");
    }
    if ((rc = cu_req_db(req, &db)) != CU_OK)
        return cu_resp_fail(resp, rc, "the decision could not be read");
    b = cu_resp_json_begin(resp, 200);
    rc = cu_resp_json_end(resp, cu_monitor_decision_get(db, req->params[0], b));
    if (rc == CU_E_NOT_FOUND) {
        resp->type = "unknown_decision";
        return cu_resp_fail(resp, rc, "no decision has this id");
    }
    if (rc != CU_OK)
        return cu_resp_fail(resp, rc, "the decision could not be read");
    /* a decision shows a customer's references, devices and payees: its reads are audited */
    char target[CU_DECISION_ID_BYTES + 16];
    snprintf(target, sizeof(target), "decision:%.20s", req->params[0]);
    return cu_req_audit(req, "monitor.decision_read", target, "success", NULL);
}

/* ---- alerts ---- */

static json_t *alert_json(const struct cu_alert *a)
{
    char created[CU_RFC3339_BYTES], updated[CU_RFC3339_BYTES], resolved[CU_RFC3339_BYTES];
    json_t *rules = json_array();
    const char *p = a->rules;

    while (rules != NULL && *p) {
        size_t n = strcspn(p, " ");
        json_array_append_new(rules, json_stringn(p, n));
        p += n;
        p += *p == ' ';
    }
    cu_clock_format(a->created_at, created);
    cu_clock_format(a->updated_at, updated);
    cu_clock_format(a->resolved_at, resolved);
    return json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:o, s:s, s:s?, s:s?, s:s?, s:s?, s:s, s:s}", "id", a->id,
        "decision", a->decision_id, "customer", a->customer, "type", a->type, "severity",
        a->severity, "rules", rules ? rules : json_array(), "status", a->status, "assignee",
        a->assignee[0] ? a->assignee : NULL, "resolution", a->resolution[0] ? a->resolution : NULL,
        "resolved_by", a->resolved_by[0] ? a->resolved_by : NULL, "resolved_at",
        a->resolved_at ? resolved : NULL, "created_at", created, "updated_at", updated);
}

static enum cu_err unknown_alert(struct cu_resp *resp)
{
    resp->type = "unknown_alert";
    return cu_resp_fail(resp, CU_E_NOT_FOUND, "no alert has this id");
}

enum cu_err cu_handle_alerts_list(struct cu_req *req, struct cu_resp *resp)
{
    const char *status = cu_req_query(req, "status"), *after = cu_req_query(req, "after"),
               *lim = cu_req_query(req, "limit");
    struct cu_alert *v = NULL;
    struct cu_db *db = NULL;
    size_t n = 0;
    long limit = 100;
    char *end = NULL;
    enum cu_err rc;

    if (status != NULL && strcmp(status, "open") != 0 && strcmp(status, "assigned") != 0 &&
        strcmp(status, "resolved") != 0)
        return cu_resp_fail(resp, CU_E_INVALID, "status must be open, assigned or resolved");
    if (after != NULL && !cu_alert_id_valid(after))
        return cu_resp_fail(resp, CU_E_INVALID, "after must be an alert's id (alr_…)");
    if (lim != NULL) {
        limit = strtol(lim, &end, 10);
        if (end == lim || *end || limit < 1 || limit > CU_ALERTS_PAGE_MAX)
            return cu_resp_fail(resp, CU_E_INVALID, "limit must be a whole number from 1 to %d",
                                CU_ALERTS_PAGE_MAX);
    }
    rc = cu_req_db(req, &db);
    if (rc == CU_OK)
        rc = cu_alerts_list(db, status, after, (size_t)limit, &v, &n);
    if (rc != CU_OK)
        return cu_resp_fail(resp, rc, "the alerts could not be read");
    json_t *items = json_array();
    for (size_t i = 0; items != NULL && i < n; i++)
        json_array_append_new(items, alert_json(&v[i]));
    json_t *out = json_pack("{s:o, s:s?}", "items", items ? items : json_array(), "next_after",
                            n == (size_t)limit ? v[n - 1].id : NULL);
    cu_free(v);
    rc = cu_req_audit(req, "alert.list", "alerts", "success",
                      json_pack("{s:I}", "alerts", (json_int_t)n));
    if (rc != CU_OK) {
        json_decref(out);
        return cu_resp_fail(resp, rc, "the alerts could not be read");
    }
    return cu_resp_json(resp, 200, out);
}

enum cu_err cu_handle_alert_get(struct cu_req *req, struct cu_resp *resp)
{
    struct cu_alert a;
    struct cu_alert_comment *c = NULL;
    struct cu_db *db = NULL;
    char target[CU_ALERT_ID_BYTES + 8], at[CU_RFC3339_BYTES];
    size_t n = 0;
    enum cu_err rc;

    if (!cu_alert_id_valid(req->params[0]))
        return unknown_alert(resp);
    rc = cu_req_db(req, &db);
    if (rc == CU_OK)
        rc = cu_alert_get(db, req->params[0], &a);
    if (rc == CU_E_NOT_FOUND)
        return unknown_alert(resp);
    if (rc == CU_OK)
        rc = cu_alert_comments(db, req->params[0], &c, &n);
    if (rc != CU_OK)
        return cu_resp_fail(resp, rc, "the alert could not be read");
    json_t *v = alert_json(&a), *comments = json_array();
    for (size_t i = 0; comments != NULL && i < n; i++) {
        cu_clock_format(c[i].at, at);
        json_array_append_new(comments, json_pack("{s:s, s:s, s:s}", "at", at, "author",
                                                  c[i].author, "text", c[i].body));
    }
    cu_alert_comments_free(c, n);
    if (v != NULL)
        json_object_set_new(v, "comments", comments ? comments : json_array());
    snprintf(target, sizeof(target), "alert:%s", a.id);
    rc = cu_req_audit(req, "alert.read", target, "success", NULL);
    if (rc != CU_OK) {
        json_decref(v);
        return cu_resp_fail(resp, rc, "the alert could not be read");
    }
    return cu_resp_json(resp, 200, v);
}

enum alert_action { AL_ASSIGN, AL_COMMENT, AL_RESOLVE };

struct alert_job {
    struct cu_req *req;
    struct cu_resp *resp;
    enum alert_action what;
    json_t *body;
    const char *arg; /* the assignee, the comment */
    bool true_positive;
    struct cu_alert a;
};

static void alert_job_clear(void *p)
{
    json_decref(((struct alert_job *)p)->body);
}

static enum cu_err alert_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct alert_job *j = arg;
    const char *id = j->req->params[0];
    enum cu_err rc = j->what == AL_ASSIGN    ? cu_alert_assign(w, db, id, j->arg, &j->a)
                     : j->what == AL_COMMENT ? cu_alert_comment(w, db, id, j->arg, &j->a)
                                             : cu_alert_resolve(w, db, id, j->true_positive, &j->a);
    if (rc == CU_E_NOT_FOUND)
        return unknown_alert(j->resp);
    if (rc == CU_E_EXISTS) {
        j->resp->type = "alert_resolved";
        return cu_resp_fail(j->resp, rc, "the alert is resolved: it changes no more");
    }
    if (rc != CU_OK && rc != CU_E_BUSY)
        return cu_resp_fail(j->resp, rc, "the alert could not be changed");
    return rc;
}

static enum cu_err alert_answer(struct cu_req *req, struct cu_resp *resp, void *arg)
{
    struct alert_job *j = arg;
    (void)req;
    return cu_resp_json(resp, 200, alert_json(&j->a));
}

static enum cu_err alert_start(struct cu_req *req, struct cu_resp *resp, enum alert_action what)
{
    static const char *const keys[][1] = {{"assignee"}, {"text"}, {"resolution"}};
    struct alert_job *j = cu_req_alloc(req, sizeof(*j), alert_job_clear);
    char err[CU_JSON_ERR_BYTES];
    const char *bad = NULL, *v = NULL;
    enum cu_err rc;

    if (j == NULL)
        return cu_resp_fail(resp, CU_E_NOMEM, "the alert could not be changed");
    if (!cu_alert_id_valid(req->params[0]))
        return unknown_alert(resp);
    if ((rc = cu_req_json(req, resp, &j->body)) != CU_OK)
        return resp->err ? resp->err : rc;
    if (cu_json_only_keys(j->body, keys[what], 1, &bad) != CU_OK)
        return cu_resp_fail(resp, CU_E_INVALID, "unknown field '%.64s'", bad);
    if (cu_json_get_string(j->body, keys[what][0], true,
                           what == AL_COMMENT ? CU_ALERT_COMMENT_MAX : 64, &v, err) != CU_OK)
        return cu_resp_fail(resp, strstr(err, "at most") ? CU_E_TOO_LARGE : CU_E_INVALID, "%s",
                            err);
    if (what == AL_ASSIGN && !cu_ledger_id_valid(v, "stf_"))
        return cu_resp_fail(resp, CU_E_INVALID, "field 'assignee' must be a staff member's id");
    if (what == AL_COMMENT && (v[0] == '\0' || !cu_utf8_valid(v, strlen(v))))
        return cu_resp_fail(resp, CU_E_INVALID, "field 'text' must be non-empty text");
    if (what == AL_RESOLVE) {
        if (strcmp(v, "true_positive") != 0 && strcmp(v, "false_positive") != 0)
            return cu_resp_fail(resp, CU_E_INVALID,
                                "field 'resolution' must be true_positive or false_positive");
        j->true_positive = v[0] == 't';
    }
    j->arg = v;
    j->what = what;
    j->req = req;
    j->resp = resp;
    return cu_req_change(req, alert_apply, alert_answer, j);
}

enum cu_err cu_handle_alert_assign(struct cu_req *req, struct cu_resp *resp)
{
    return alert_start(req, resp, AL_ASSIGN);
}

enum cu_err cu_handle_alert_comment(struct cu_req *req, struct cu_resp *resp)
{
    return alert_start(req, resp, AL_COMMENT);
}

enum cu_err cu_handle_alert_resolve(struct cu_req *req, struct cu_resp *resp)
{
    return alert_start(req, resp, AL_RESOLVE);
}

/* ---- managed lists and snoozes ---- */

static enum cu_err unknown_list(struct cu_resp *resp, const char *why)
{
    resp->type = "unknown_list";
    return cu_resp_fail(resp, CU_E_NOT_FOUND, "%s",
                        why && why[0] ? why : "no rule set in force declares this managed list");
}

static bool name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > CU_MON_NAME_MAX || s[0] < 'a' || s[0] > 'z')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return false;
    return true;
}

enum cu_err cu_handle_monitor_lists(struct cu_req *req, struct cu_resp *resp)
{
    struct cu_db *db = NULL;
    struct cu_buf *b;
    enum cu_err rc = cu_req_db(req, &db);

    if (rc != CU_OK)
        return cu_resp_fail(resp, rc, "the lists could not be read");
    b = cu_resp_json_begin(resp, 200);
    if ((rc = cu_resp_json_end(resp, cu_monitor_lists_json(req->app->monitor, db, b))) != CU_OK)
        return cu_resp_fail(resp, rc, "the lists could not be read");
    return cu_req_audit(req, "monitor.lists_read", "lists", "success", NULL);
}

enum cu_err cu_handle_monitor_list(struct cu_req *req, struct cu_resp *resp)
{
    struct cu_db *db = NULL;
    struct cu_buf *b;
    char target[CU_MON_NAME_MAX + 8];
    enum cu_err rc;

    if (!name_ok(req->params[0]))
        return unknown_list(resp, NULL);
    if ((rc = cu_req_db(req, &db)) != CU_OK)
        return cu_resp_fail(resp, rc, "the list could not be read");
    b = cu_resp_json_begin(resp, 200);
    rc = cu_resp_json_end(resp, cu_monitor_list_json(req->app->monitor, db, req->params[0], b));
    if (rc == CU_E_NOT_FOUND)
        return unknown_list(resp, NULL);
    if (rc != CU_OK)
        return cu_resp_fail(resp, rc, "the list could not be read");
    snprintf(target, sizeof(target), "list:%.32s", req->params[0]);
    return cu_req_audit(req, "monitor.list_read", target, "success", NULL);
}

enum list_action { LS_ADD, LS_REMOVE, LS_SNOOZE, LS_UNSNOOZE };

struct list_job {
    struct cu_req *req;
    struct cu_resp *resp;
    enum list_action what;
    json_t *body;
    const char *value, *note, *rule;
    char customer[CU_MON_REF_MAX + 1];
    int64_t until;
};

static void list_job_clear(void *p)
{
    json_decref(((struct list_job *)p)->body);
}

static enum cu_err list_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct list_job *j = arg;
    struct cu_monitor *m = j->req->app->monitor;
    const char *list = j->what <= LS_REMOVE ? j->req->params[0] : NULL;
    char why[CU_MON_ERR_BYTES] = "";
    enum cu_err rc;

    switch (j->what) {
    case LS_ADD:
        rc = cu_monitor_list_add(m, w, db, list, j->value, j->until, j->note, why);
        break;
    case LS_REMOVE:
        rc = cu_monitor_list_remove(m, w, db, list, j->value);
        if (rc == CU_E_NOT_FOUND)
            snprintf(why, sizeof(why), "the list does not hold this value");
        break;
    case LS_SNOOZE:
        rc = cu_monitor_snooze(m, w, db, j->customer, j->rule, j->until, j->note, why);
        if (rc == CU_E_NOT_FOUND) {
            j->resp->type = "unknown_rule";
            return cu_resp_fail(j->resp, rc, "%s", why);
        }
        break;
    default:
        rc = cu_monitor_unsnooze(m, w, db, j->customer, j->rule);
        if (rc == CU_E_NOT_FOUND) {
            j->resp->type = "unknown_snooze";
            return cu_resp_fail(j->resp, rc, "the customer has no snooze of this rule");
        }
        break;
    }
    if (rc == CU_E_NOT_FOUND && j->what == LS_ADD)
        return unknown_list(j->resp, why);
    if (rc == CU_E_NOT_FOUND) {
        j->resp->type = "unknown_item";
        return cu_resp_fail(j->resp, rc, "%s", why);
    }
    if (rc == CU_E_TOO_LARGE) { /* full: a conflict with what is there, not a body too big */
        j->resp->type = j->what == LS_ADD ? "list_full" : "snoozes_full";
        return cu_resp_fail(j->resp, CU_E_EXISTS, "%s", why);
    }
    if (rc == CU_E_INVALID)
        return cu_resp_fail(j->resp, rc, "%s", why);
    if (rc != CU_OK && rc != CU_E_BUSY)
        return cu_resp_fail(j->resp, rc, "the change could not be made");
    return rc;
}

static enum cu_err list_answer(struct cu_req *req, struct cu_resp *resp, void *arg)
{
    struct list_job *j = arg;
    char until[CU_RFC3339_BYTES];
    (void)req;
    cu_clock_format(j->until, until);
    switch (j->what) {
    case LS_ADD:
        return cu_resp_json(resp, 201,
                            json_pack("{s:s, s:s, s:s?}", "list", req->params[0], "value", j->value,
                                      "expires_at", j->until ? until : NULL));
    case LS_SNOOZE:
        return cu_resp_json(
            resp, 201,
            json_pack("{s:s, s:s, s:s}", "customer", j->customer, "rule", j->rule, "until", until));
    default:
        return cu_resp_json(resp, 200, json_pack("{s:b}", "removed", 1));
    }
}

/* list_time(j, key, required, out): an RFC 3339 time of the body, or 0 when absent. */
static enum cu_err list_time(struct list_job *j, const char *key, bool required, int64_t *out)
{
    const char *t = NULL;
    char err[CU_JSON_ERR_BYTES];
    *out = 0;
    if (cu_json_get_string(j->body, key, required, 40, &t, err) != CU_OK)
        return cu_resp_fail(j->resp, CU_E_INVALID, "%s", err);
    if (t != NULL && cu_clock_parse(t, out) != CU_OK)
        return cu_resp_fail(j->resp, CU_E_INVALID, "field '%s' must be an RFC 3339 time", key);
    return CU_OK;
}

static enum cu_err list_start(struct cu_req *req, struct cu_resp *resp, enum list_action what)
{
    static const char *const add_keys[] = {"value", "expires_at", "note"};
    static const char *const remove_keys[] = {"value"};
    static const char *const snooze_keys[] = {"customer", "rule", "until", "reason"};
    static const char *const unsnooze_keys[] = {"customer", "rule"};
    static const char *const *const keys[] = {add_keys, remove_keys, snooze_keys, unsnooze_keys};
    static const size_t nkeys[] = {3, 1, 4, 2};
    struct list_job *j = cu_req_alloc(req, sizeof(*j), list_job_clear);
    char err[CU_JSON_ERR_BYTES];
    const char *bad = NULL, *customer = NULL;
    enum cu_err rc;

    if (j == NULL)
        return cu_resp_fail(resp, CU_E_NOMEM, "the change could not be made");
    if (what <= LS_REMOVE && !name_ok(req->params[0]))
        return unknown_list(resp, NULL);
    j->req = req;
    j->resp = resp;
    j->what = what;
    if ((rc = cu_req_json(req, resp, &j->body)) != CU_OK)
        return resp->err ? resp->err : rc;
    if (cu_json_only_keys(j->body, keys[what], nkeys[what], &bad) != CU_OK)
        return cu_resp_fail(resp, CU_E_INVALID, "unknown field '%.64s'", bad);
    if (what <= LS_REMOVE) {
        if (cu_json_get_string(j->body, "value", true, CU_MON_ATTR_VALUE_MAX, &j->value, err) !=
            CU_OK)
            return cu_resp_fail(resp, strstr(err, "at most") ? CU_E_TOO_LARGE : CU_E_INVALID, "%s",
                                err);
    } else {
        if (cu_json_get_string(j->body, "customer", true, CU_MON_REF_MAX, &customer, err) !=
                CU_OK ||
            cu_json_get_string(j->body, "rule", true, CU_MON_NAME_MAX, &j->rule, err) != CU_OK)
            return cu_resp_fail(resp, strstr(err, "at most") ? CU_E_TOO_LARGE : CU_E_INVALID, "%s",
                                err);
        if (!cu_mon_ref_ok(customer, strlen(customer)))
            return cu_resp_fail(resp, CU_E_INVALID,
                                "field 'customer' must be text without control characters");
        if (!name_ok(j->rule))
            return cu_resp_fail(resp, CU_E_INVALID, "field 'rule' must be a rule's name");
        snprintf(j->customer, sizeof(j->customer), "%s", customer);
        /* a vault customer's external_ref keys the customer's events by its id: so here */
        if ((rc = vault_key(req, resp, j->customer, sizeof(j->customer))) != CU_OK)
            return rc;
    }
    if (what == LS_ADD || what == LS_SNOOZE) {
        const char *key = what == LS_ADD ? "note" : "reason";
        if (cu_json_get_string(j->body, key, what == LS_SNOOZE, CU_MONITOR_NOTE_MAX, &j->note,
                               err) != CU_OK)
            return cu_resp_fail(resp, strstr(err, "at most") ? CU_E_TOO_LARGE : CU_E_INVALID, "%s",
                                err);
        if (j->note != NULL && !cu_utf8_valid(j->note, strlen(j->note)))
            return cu_resp_fail(resp, CU_E_INVALID, "field '%s' must be text", key);
        if (what == LS_SNOOZE && (j->note == NULL || j->note[0] == '\0'))
            return cu_resp_fail(resp, CU_E_INVALID, "field 'reason' must say why");
        if ((rc = list_time(j, what == LS_ADD ? "expires_at" : "until", what == LS_SNOOZE,
                            &j->until)) != CU_OK)
            return rc;
    }
    return cu_req_change(req, list_apply, list_answer, j);
}

enum cu_err cu_handle_monitor_list_add(struct cu_req *req, struct cu_resp *resp)
{
    return list_start(req, resp, LS_ADD);
}

enum cu_err cu_handle_monitor_list_remove(struct cu_req *req, struct cu_resp *resp)
{
    return list_start(req, resp, LS_REMOVE);
}

enum cu_err cu_handle_monitor_snooze(struct cu_req *req, struct cu_resp *resp)
{
    return list_start(req, resp, LS_SNOOZE);
}

enum cu_err cu_handle_monitor_unsnooze(struct cu_req *req, struct cu_resp *resp)
{
    return list_start(req, resp, LS_UNSNOOZE);
}

enum cu_err cu_handle_monitor_snoozes(struct cu_req *req, struct cu_resp *resp)
{
    const char *q = cu_req_query(req, "customer");
    char customer[CU_MON_REF_MAX + 1];
    struct cu_db *db = NULL;
    struct cu_buf *b;
    enum cu_err rc;

    if (q != NULL) {
        if (strlen(q) > CU_MON_REF_MAX || !cu_mon_ref_ok(q, strlen(q)))
            return cu_resp_fail(resp, CU_E_INVALID,
                                "customer must be 1 to %d bytes without control characters",
                                CU_MON_REF_MAX);
        snprintf(customer, sizeof(customer), "%s", q);
        if ((rc = vault_key(req, resp, customer, sizeof(customer))) != CU_OK)
            return rc;
    }
    if ((rc = cu_req_db(req, &db)) != CU_OK)
        return cu_resp_fail(resp, rc, "the snoozes could not be read");
    b = cu_resp_json_begin(resp, 200);
    if ((rc = cu_resp_json_end(resp, cu_monitor_snoozes_json(db, q ? customer : NULL, b))) != CU_OK)
        return cu_resp_fail(resp, rc, "the snoozes could not be read");
    return cu_req_audit(req, "monitor.snoozes_read", "snoozes", "success", NULL);
}

/* ---- rule sets and backtests ---- */

static bool version_of(const char *s, int64_t *out)
{
    char *end = NULL;
    long long v;
    if (s[0] < '1' || s[0] > '9' || strlen(s) > 12)
        return false;
    v = strtoll(s, &end, 10);
    if (*end != '\0' || v < 1)
        return false;
    *out = v;
    return true;
}

static enum cu_err unknown_ruleset(struct cu_resp *resp)
{
    resp->type = "unknown_ruleset";
    return cu_resp_fail(resp, CU_E_NOT_FOUND, "no rule set has this version");
}

enum cu_err cu_handle_rulesets_list(struct cu_req *req, struct cu_resp *resp)
{
    struct cu_db *db = NULL;
    struct cu_buf *b;
    enum cu_err rc = cu_req_db(req, &db);

    if (rc != CU_OK)
        return cu_resp_fail(resp, rc, "the rule sets could not be read");
    b = cu_resp_json_begin(resp, 200);
    if ((rc = cu_resp_json_end(resp, cu_rulesets_list_json(req->app->monitor, db, b))) != CU_OK)
        return cu_resp_fail(resp, rc, "the rule sets could not be read");
    return CU_OK;
}

enum cu_err cu_handle_ruleset_get(struct cu_req *req, struct cu_resp *resp)
{
    struct cu_db *db = NULL;
    struct cu_buf *b;
    int64_t v = 0;
    enum cu_err rc;

    if (!version_of(req->params[0], &v))
        return unknown_ruleset(resp);
    if ((rc = cu_req_db(req, &db)) != CU_OK)
        return cu_resp_fail(resp, rc, "the rule set could not be read");
    b = cu_resp_json_begin(resp, 200);
    rc = cu_resp_json_end(resp, cu_rulesets_get_json(db, v, b));
    if (rc == CU_E_NOT_FOUND)
        return unknown_ruleset(resp);
    if (rc != CU_OK)
        return cu_resp_fail(resp, rc, "the rule set could not be read");
    return CU_OK;
}

struct ruleset_job {
    struct cu_req *req;
    struct cu_resp *resp;
    json_t *body;
    const char *text, *note, *as;
    size_t len, nrules;
    int64_t version;
    char sha[65];
    struct cu_monitor_swap *swap;
    enum cu_err swapped; /* what putting it in force gave (after the commit) */
};

static void ruleset_job_clear(void *p)
{
    struct ruleset_job *j = p;
    cu_monitor_swap_free(j->swap);
    json_decref(j->body);
}

static enum cu_err propose_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct ruleset_job *j = arg;
    enum cu_err rc = cu_rulesets_propose(j->req->app->monitor, w, db, j->text, j->len, j->note,
                                         j->nrules, &j->version, j->sha);
    if (rc != CU_OK && rc != CU_E_BUSY)
        return cu_resp_fail(j->resp, rc, "the rule set could not be stored");
    return rc;
}

static enum cu_err propose_answer(struct cu_req *req, struct cu_resp *resp, void *arg)
{
    struct ruleset_job *j = arg;
    (void)req;
    return cu_resp_json(resp, 201,
                        json_pack("{s:I, s:s, s:s, s:I}", "version", (json_int_t)j->version,
                                  "sha256", j->sha, "status", "proposed", "rules",
                                  (json_int_t)j->nrules));
}

/* compiled(req, resp, text, len, nrules): whether the text compiles with the server's event
 * types; a 400 naming the line and column otherwise. */
static bool compiled(struct cu_req *req, struct cu_resp *resp, const char *text, size_t len,
                     size_t *nrules)
{
    struct cu_ruleset *rs = NULL;
    char err[CU_RULES_ERR_BYTES];
    if (cu_rules_compile(text, len, "rules", cu_monitor_types(req->app->monitor), &rs, err) !=
        CU_OK) {
        (void)cu_resp_fail(resp, CU_E_INVALID, "%s", err);
        return false;
    }
    *nrules = cu_rules_count(rs);
    cu_rules_free(rs);
    return true;
}

enum cu_err cu_handle_ruleset_propose(struct cu_req *req, struct cu_resp *resp)
{
    static const char *const keys[] = {"rules", "note"};
    struct ruleset_job *j = cu_req_alloc(req, sizeof(*j), ruleset_job_clear);
    char err[CU_JSON_ERR_BYTES];
    const char *bad = NULL;
    enum cu_err rc;

    if (j == NULL)
        return cu_resp_fail(resp, CU_E_NOMEM, "the rule set could not be stored");
    if ((rc = cu_req_json(req, resp, &j->body)) != CU_OK)
        return resp->err ? resp->err : rc;
    if (cu_json_only_keys(j->body, keys, 2, &bad) != CU_OK)
        return cu_resp_fail(resp, CU_E_INVALID, "unknown field '%.64s'", bad);
    if (cu_json_get_string(j->body, "rules", true, CU_RULES_FILE_MAX, &j->text, err) != CU_OK ||
        cu_json_get_string(j->body, "note", false, CU_MONITOR_NOTE_MAX, &j->note, err) != CU_OK)
        return cu_resp_fail(resp, strstr(err, "at most") ? CU_E_TOO_LARGE : CU_E_INVALID, "%s",
                            err);
    j->len = strlen(j->text);
    if (j->note == NULL)
        j->note = "";
    if (!cu_utf8_valid(j->note, strlen(j->note)))
        return cu_resp_fail(resp, CU_E_INVALID, "field 'note' must be text");
    if (!compiled(req, resp, j->text, j->len, &j->nrules))
        return resp->err;
    j->req = req;
    j->resp = resp;
    return cu_req_change(req, propose_apply, propose_answer, j);
}

static void swap_effect(void *arg, struct cu_db *db)
{
    struct ruleset_job *j = arg;
    j->swapped = cu_monitor_swap_commit(j->req->app->monitor, j->swap, db);
    if (j->swapped != CU_OK)
        cu_log(CU_LOG_ERROR, "monitor.rules_swap_failed", CU_LI("version", j->version),
               CU_LS("error", cu_err_str(j->swapped)));
}

static enum cu_err activate_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct ruleset_job *j = arg;
    char why[CU_RULES_ERR_BYTES];
    enum cu_err rc;

    cu_monitor_swap_free(j->swap); /* a run before this one's */
    j->swap = NULL;
    rc = cu_rulesets_activate(j->req->app->monitor, w, db, j->version, j->as, &j->swap, why);
    if (rc == CU_OK)
        rc = cu_work_after(w, swap_effect, j);
    if (rc == CU_E_NOT_FOUND)
        return unknown_ruleset(j->resp);
    if (rc == CU_E_EXISTS) {
        j->resp->type = "ruleset_state";
        return cu_resp_fail(j->resp, rc, "%s", why);
    }
    if (rc == CU_E_INVALID)
        return cu_resp_fail(j->resp, rc, "%s", why);
    if (rc != CU_OK && rc != CU_E_BUSY)
        return cu_resp_fail(j->resp, rc, "the rule set could not be put in force");
    return rc;
}

static enum cu_err activate_answer(struct cu_req *req, struct cu_resp *resp, void *arg)
{
    struct ruleset_job *j = arg;
    (void)req;
    if (j->swapped != CU_OK)
        return cu_resp_fail(resp, j->swapped,
                            "the change is stored, but the server could not put it in force: "
                            "it will at its next start");
    return cu_resp_json(
        resp, 200, json_pack("{s:I, s:s}", "version", (json_int_t)j->version, "status", j->as));
}

/* activate_start(req, resp, as): as NULL: from the body ("live" or "shadow"). Only ever run as
 * an approved action: putting rules in force is four-eyes whatever the policy says. */
static enum cu_err activate_start(struct cu_req *req, struct cu_resp *resp, const char *as)
{
    static const char *const keys[] = {"as"};
    struct ruleset_job *j = cu_req_alloc(req, sizeof(*j), ruleset_job_clear);
    char err[CU_JSON_ERR_BYTES];
    const char *bad = NULL;
    enum cu_err rc;

    if (j == NULL)
        return cu_resp_fail(resp, CU_E_NOMEM, "the rule set could not be put in force");
    if (!version_of(req->params[0], &j->version))
        return unknown_ruleset(resp);
    if (!(req->principal.approved & CU_SCOPE_RULES_ACTIVATE)) {
        resp->type = "approval_required";
        return cu_resp_fail(resp, CU_E_FORBIDDEN,
                            "putting monitoring rules in force needs another staff member's "
                            "approval: the access policy must hold `approve rules.activate by N "
                            "within D` (docs/access.md, \"Four-eyes approval\")");
    }
    if (as == NULL) {
        if ((rc = cu_req_json(req, resp, &j->body)) != CU_OK)
            return resp->err ? resp->err : rc;
        if (cu_json_only_keys(j->body, keys, 1, &bad) != CU_OK)
            return cu_resp_fail(resp, CU_E_INVALID, "unknown field '%.64s'", bad);
        if (cu_json_get_string(j->body, "as", true, 16, &as, err) != CU_OK)
            return cu_resp_fail(resp, CU_E_INVALID, "%s", err);
        if (strcmp(as, "live") != 0 && strcmp(as, "shadow") != 0)
            return cu_resp_fail(resp, CU_E_INVALID, "field 'as' must be live or shadow");
    }
    j->as = as;
    j->swapped = CU_OK;
    j->req = req;
    j->resp = resp;
    return cu_req_change(req, activate_apply, activate_answer, j);
}

enum cu_err cu_handle_ruleset_activate(struct cu_req *req, struct cu_resp *resp)
{
    return activate_start(req, resp, NULL);
}

enum cu_err cu_handle_ruleset_retire(struct cu_req *req, struct cu_resp *resp)
{
    return activate_start(req, resp, "retired");
}

enum cu_err cu_handle_backtest(struct cu_req *req, struct cu_resp *resp)
{
    static const char *const keys[] = {"version", "rules", "from", "to"};
    struct cu_backtest_opts o;
    char err[CU_RULES_ERR_BYTES], jerr[CU_JSON_ERR_BYTES], status[16];
    const char *bad = NULL, *from = NULL, *to = NULL, *text = NULL;
    struct cu_db *db = NULL;
    json_t *body = NULL;
    char *stored = NULL;
    struct cu_buf *b;
    int64_t version = 0;
    enum cu_err rc;

    if ((rc = cu_req_json(req, resp, &body)) != CU_OK)
        return resp->err ? resp->err : rc;
    memset(&o, 0, sizeof(o));
    if (cu_json_only_keys(body, keys, 4, &bad) != CU_OK)
        rc = cu_resp_fail(resp, CU_E_INVALID, "unknown field '%.64s'", bad);
    else if (cu_json_get_int(body, "version", false, 1, INT64_MAX, &version, jerr) != CU_OK ||
             cu_json_get_string(body, "rules", false, CU_RULES_FILE_MAX, &text, jerr) != CU_OK ||
             cu_json_get_string(body, "from", true, 40, &from, jerr) != CU_OK ||
             cu_json_get_string(body, "to", true, 40, &to, jerr) != CU_OK)
        rc = cu_resp_fail(resp, CU_E_INVALID, "%s", jerr);
    else if ((version > 0) == (text != NULL))
        rc = cu_resp_fail(resp, CU_E_INVALID,
                          "give either 'version' (a stored rule set) or "
                          "'rules' (a rule file's text)");
    else if (cu_clock_parse(from, &o.from) != CU_OK || cu_clock_parse(to, &o.to) != CU_OK)
        rc = cu_resp_fail(resp, CU_E_INVALID, "'from' and 'to' must be RFC 3339 times");
    if (rc == CU_OK && (rc = cu_req_db(req, &db)) != CU_OK)
        rc = cu_resp_fail(resp, rc, "the backtest could not be run");
    if (rc == CU_OK && version > 0) {
        size_t len = 0;
        rc = cu_rulesets_body(db, version, status, &stored, &len);
        if (rc == CU_E_NOT_FOUND)
            rc = unknown_ruleset(resp);
        else if (rc != CU_OK)
            rc = cu_resp_fail(resp, rc, "the backtest could not be run");
        o.text = stored;
        o.len = len;
    } else if (rc == CU_OK && text != NULL) {
        o.text = text;
        o.len = strlen(text);
    }
    o.version = version;
    if (rc == CU_OK) {
        b = cu_resp_json_begin(resp, 200);
        rc = cu_resp_json_end(resp, cu_monitor_backtest(req->app->monitor, db, &o, b, err));
        if (rc == CU_E_INVALID || rc == CU_E_TOO_LARGE)
            rc = cu_resp_fail(resp, CU_E_INVALID, "%s", err);
        else if (rc == CU_E_BUSY && err[0]) { /* another backtest, not the store */
            resp->type = "backtest_running";
            rc = cu_resp_fail(resp, CU_E_EXISTS, "%s", err);
        } else if (rc != CU_OK)
            rc = cu_resp_fail(resp, rc, "the backtest could not be run");
        else
            rc = cu_req_audit(req, "monitor.backtest", "monitor_events", "success",
                              json_pack("{s:I, s:I, s:I}", "version", (json_int_t)version, "from",
                                        (json_int_t)o.from, "to", (json_int_t)o.to));
    }
    cu_free(stored);
    json_decref(body);
    return rc;
}
