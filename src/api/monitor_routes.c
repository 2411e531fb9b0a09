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
#include <sodium.h>
#include <string.h>

#include "api/handlers.h"
#include "api/http.h"
#include "api/server.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"
#include "monitor/monitor.h"
#include "vault/vault.h"

#define EXTERNAL_REF_MAX 64 /* a vault customer's external_ref (vault/fields.c) */

struct event_job {
    struct cu_req *req;
    struct cu_resp *resp;
    struct cu_mon_event ev;
    struct cu_monitor_decision d;
    char location[64];
};

static void event_job_clear(void *p)
{
    struct event_job *j = p;
    cu_monitor_decision_clear(&j->d);
    sodium_memzero(&j->ev, sizeof(j->ev)); /* the address as sent */
}

static enum cu_err event_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct event_job *j = arg;
    enum cu_err rc = cu_monitor_decide(j->req->app->monitor, w, db, &j->ev, "api", &j->d);

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
    snprintf(j->location, sizeof(j->location), "/v1/decisions/%s", j->d.id);
    cu_resp_header(resp, "Location", j->location);
    return cu_resp_json_end(resp, cu_monitor_answer(&j->d, b));
}

/* vault_key(req, resp, ev): a vault customer's events share one key, its id: an event whose
 * customer is the external_ref of exactly one vault customer is kept under that customer's
 * id (the reference itself is then not stored). */
static enum cu_err vault_key(struct cu_req *req, struct cu_resp *resp, struct cu_mon_event *ev)
{
    char ids[2][CU_CUSTOMER_ID_BYTES], why[CU_VAULT_WHY_BYTES];
    struct cu_db *db = NULL;
    size_t n = 0;
    enum cu_err rc;

    if (strlen(ev->customer) > EXTERNAL_REF_MAX || strncmp(ev->customer, "cus_", 4) == 0)
        return CU_OK;
    if ((rc = cu_req_db(req, &db)) != CU_OK)
        return cu_resp_fail(resp, rc, "the event could not be decided");
    rc = cu_vault_find(req->app->vault, db, "external_ref", ev->customer, ids, 2, &n, why);
    if (rc == CU_E_INVALID)
        return CU_OK; /* not a reference the vault could hold */
    if (rc != CU_OK)
        return cu_resp_fail(resp, rc, "the event could not be decided");
    if (n == 1)
        snprintf(ev->customer, sizeof(ev->customer), "%s", ids[0]);
    return CU_OK;
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
    if ((rc = vault_key(req, resp, &j->ev)) != CU_OK)
        return rc;
    j->req = req;
    j->resp = resp;
    return cu_req_change(req, event_apply, event_answer, j);
}

static bool valid_decision_id(const char *s)
{
    if (strncmp(s, "dec_", 4) != 0 || strlen(s) != CU_DECISION_ID_BYTES - 1)
        return false;
    for (s += 4; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
            return false;
    return true;
}

enum cu_err cu_handle_decision_get(struct cu_req *req, struct cu_resp *resp)
{
    struct cu_db *db = NULL;
    struct cu_buf *b;
    enum cu_err rc;

    if (!valid_decision_id(req->params[0])) {
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
    snprintf(target, sizeof(target), "decision:%s", req->params[0]);
    return cu_req_audit(req, "monitor.decision_read", target, "success", NULL);
}
