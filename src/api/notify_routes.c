/*
 * notify_routes.c - the notification outbox over HTTPS (docs/api.md, "Notifications"):
 * GET /v1/notifications, GET /v1/notifications/{id} (notify.read) and
 * POST /v1/notifications/{id}/replay (notify.write). Reads and replays are audited.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/handlers.h"
#include "api/http.h"
#include "api/server.h"
#include "base/clock.h"
#include "base/mem.h"
#include "ledger/ledger.h"
#include "notify/notify.h"
#include "notify/outbox.h"

/* id_ok(s): a notice's id: "ntf_" and 16 hex digits, the shape of the ledger's ids. */
static bool id_ok(const char *s)
{
    return cu_ledger_id_valid(s, "ntf_");
}

static enum cu_err unknown(struct cu_resp *resp)
{
    resp->type = "unknown_notification";
    return cu_resp_fail(resp, CU_E_NOT_FOUND, "no notification has this id");
}

static json_t *item_json(const struct cu_outbox_item *it)
{
    char c[CU_RFC3339_BYTES], nx[CU_RFC3339_BYTES], s[CU_RFC3339_BYTES];
    bool waiting = strcmp(it->status, "pending") == 0 || strcmp(it->status, "sending") == 0;

    cu_clock_format(it->created_at, c);
    cu_clock_format(it->next_at, nx);
    cu_clock_format(it->sent_at, s);
    return json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:s, s:s?, s:I, s:s?, s:s?, s:s?, s:o?}", "id", it->id,
        "created_at", c, "channel", it->channel, "status", it->status, "template",
        it->template_name, "audience", it->customer[0] ? "customer" : "staff", "customer",
        it->customer[0] ? it->customer : NULL, "attempts", (json_int_t)it->attempts,
        "next_attempt_at", waiting ? nx : NULL, "sent_at", it->sent_at > 0 ? s : NULL, "last_error",
        it->last_error[0] ? it->last_error : NULL, "data", json_loads(it->data, 0, NULL));
}

enum cu_err cu_handle_notifications_list(struct cu_req *req, struct cu_resp *resp)
{
    const char *status = cu_req_query(req, "status"), *after = cu_req_query(req, "after"),
               *customer = cu_req_query(req, "customer"), *lim = cu_req_query(req, "limit");
    struct cu_outbox_item *v = NULL;
    struct cu_db *db = NULL;
    size_t n = 0;
    long limit = 100;
    char *end = NULL;
    enum cu_err rc;

    if (status != NULL && !cu_outbox_status_known(status))
        return cu_resp_fail(resp, CU_E_INVALID, "status must be pending, sending, sent or dead");
    if (after != NULL && !id_ok(after))
        return cu_resp_fail(resp, CU_E_INVALID, "after must be a notification's id (ntf_…)");
    if (customer != NULL && (strncmp(customer, "cus_", 4) != 0 || strlen(customer) > 31))
        return cu_resp_fail(resp, CU_E_INVALID, "customer must be a customer's id (cus_…)");
    if (lim != NULL) {
        limit = strtol(lim, &end, 10);
        if (end == lim || *end || limit < 1 || limit > CU_OUTBOX_LIST_MAX)
            return cu_resp_fail(resp, CU_E_INVALID, "limit must be a whole number from 1 to %d",
                                CU_OUTBOX_LIST_MAX);
    }
    rc = cu_req_db(req, &db);
    if (rc == CU_OK)
        rc = cu_outbox_list(db, status, customer, after, (size_t)limit, &v, &n);
    if (rc == CU_E_NOT_FOUND)
        return cu_resp_fail(resp, CU_E_INVALID, "after names no notification");
    if (rc != CU_OK)
        return cu_resp_fail(resp, rc, "the notifications could not be read");
    json_t *items = json_array();
    for (size_t i = 0; items != NULL && i < n; i++)
        json_array_append_new(items, item_json(&v[i]));
    json_t *out = json_pack("{s:o, s:s?}", "items", items ? items : json_array(), "next_after",
                            n == (size_t)limit ? v[n - 1].id : NULL);
    cu_free(v);
    rc = cu_req_audit(req, "notify.list", "notifications", "success",
                      json_pack("{s:I}", "notifications", (json_int_t)n));
    if (rc != CU_OK) {
        json_decref(out);
        return cu_resp_fail(resp, rc, "the notifications could not be read");
    }
    return cu_resp_json(resp, 200, out);
}

enum cu_err cu_handle_notification_get(struct cu_req *req, struct cu_resp *resp)
{
    struct cu_outbox_item it;
    struct cu_db *db = NULL;
    char target[CU_OUTBOX_ID_BYTES + 16];
    enum cu_err rc;

    if (!id_ok(req->params[0]))
        return unknown(resp);
    rc = cu_req_db(req, &db);
    if (rc == CU_OK)
        rc = cu_outbox_get(db, req->params[0], &it);
    if (rc == CU_E_NOT_FOUND)
        return unknown(resp);
    if (rc != CU_OK)
        return cu_resp_fail(resp, rc, "the notification could not be read");
    snprintf(target, sizeof(target), "notification:%s", it.id);
    rc = cu_req_audit(req, "notify.read", target, "success", NULL);
    if (rc != CU_OK)
        return cu_resp_fail(resp, rc, "the notification could not be read");
    return cu_resp_json(resp, 200, item_json(&it));
}

struct replay_job {
    struct cu_req *req;
    struct cu_resp *resp;
    struct cu_outbox_item it;
};

static enum cu_err replay_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct replay_job *j = arg;
    const char *id = j->req->params[0];
    char target[CU_OUTBOX_ID_BYTES + 16];
    enum cu_err rc = cu_outbox_replay(db, id, cu_work_context_of(w)->now_ms, &j->it);

    if (rc == CU_E_NOT_FOUND)
        return unknown(j->resp);
    if (rc == CU_E_EXISTS) {
        j->resp->type = "notification_in_flight";
        return cu_resp_fail(j->resp, rc, "the notification is %s: it is already on its way",
                            j->it.status);
    }
    if (rc != CU_OK)
        return rc == CU_E_BUSY
                   ? rc
                   : cu_resp_fail(j->resp, rc, "the notification could not be replayed");
    snprintf(target, sizeof(target), "notification:%.20s", id);
    return cu_work_audit(w, "notify.replay", target, "success",
                         json_pack("{s:s, s:s, s:s}", "was", j->it.status, "channel", j->it.channel,
                                   "template", j->it.template_name));
}

static enum cu_err replay_answer(struct cu_req *req, struct cu_resp *resp, void *arg)
{
    struct replay_job *j = arg;
    struct cu_db *db = NULL;
    enum cu_err rc = cu_req_db(req, &db);

    if (rc == CU_OK)
        rc = cu_outbox_get(db, j->it.id, &j->it);
    if (rc != CU_OK)
        return cu_resp_fail(resp, rc, "the notification was replayed but cannot be read");
    cu_notify_wake(req->app->notify);
    return cu_resp_json(resp, 202, item_json(&j->it));
}

enum cu_err cu_handle_notification_replay(struct cu_req *req, struct cu_resp *resp)
{
    struct replay_job *j = cu_req_alloc(req, sizeof(*j), NULL);

    if (j == NULL)
        return cu_resp_fail(resp, CU_E_NOMEM, "the notification could not be replayed");
    if (!id_ok(req->params[0]))
        return unknown(resp);
    j->req = req;
    j->resp = resp;
    return cu_req_change(req, replay_apply, replay_answer, j);
}
