/*
 * approvals_routes.c - four-eyes approval over the API (docs/api.md, "Approvals"; the store's
 * side is access/approval.h).
 *
 * An action whose permission the policy marks `approve` reaches cu_approval_request instead of
 * its handler: the request, bound to a digest of the exact action, is stored pending and the
 * requester is answered 202 with its id. Staff members other than the requester (and other
 * than the owner of a requesting key), signed in with a second factor and holding the
 * permission, approve or reject it; the needed-th approval runs it at once, as the requester
 * stands now, through the request path (cu_server_execute), its unit of work holding the change
 * from approved to executed so that it runs exactly once. Every step is audited.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "access/access.h"
#include "access/approval.h"
#include "api/gate.h"
#include "api/handlers.h"
#include "api/http.h"
#include "api/server.h"
#include "base/clock.h"
#include "base/json.h"
#include "base/log.h"
#include "base/mem.h"
#include "crypto/crypto.h"

/* A run left approved this long is taken up by the housekeeping (a run that stopped). */
#define STALE_RUN_MS 60000
#define HOUSEKEEP_BATCH 32

static bool valid_id(const char *id)
{
    if (strlen(id) != CU_APPROVAL_ID_BYTES - 1 || strncmp(id, "apr_", 4) != 0)
        return false;
    for (const char *p = id + 4; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

struct target {
    char text[160]; /* "approval:" and an id (a path parameter, at most 127 bytes) */
};

static struct target target_of(const char *id)
{
    struct target t;
    snprintf(t.text, sizeof(t.text), "approval:%s", id);
    return t;
}

static json_t *time_or_null(int64_t ms)
{
    char t[CU_RFC3339_BYTES];
    if (ms == 0)
        return json_null();
    cu_clock_format(ms, t);
    return json_string(t);
}

json_t *cu_approval_json(const struct cu_approval *a)
{
    json_t *votes = json_array();
    size_t yes = 0;

    for (size_t i = 0; i < a->nvotes; i++) {
        yes += a->votes[i].approve;
        json_array_append_new(votes, json_pack("{s:s, s:s, s:o}", "staff_id", a->votes[i].staff_id,
                                               "vote", a->votes[i].approve ? "approve" : "reject",
                                               "at", time_or_null(a->votes[i].at)));
    }
    json_t *result =
        a->result_status == 0
            ? json_null()
            : json_pack("{s:i, s:s?, s:b}", "status", a->result_status, "detail",
                        a->result_detail[0] ? a->result_detail : NULL, "waiting", a->has_result);
    return json_pack("{s:s, s:s, s:s, s:s, s:{s:s, s:s, s:s?}, s:s, s:i, s:i, s:o, s:o, s:o, "
                     "s:o, s:o}",
                     "id", a->id, "permission", a->permission, "method", a->method, "path", a->path,
                     "requester", "kind", a->requester_kind, "id", a->requester, "owner",
                     a->requester_owner[0] ? a->requester_owner : NULL, "status",
                     cu_approval_status_name(a->status), "needed", (int)a->needed, "approvals",
                     (int)yes, "votes", votes, "created_at", time_or_null(a->created_at),
                     "expires_at", time_or_null(a->expires_at), "decided_at",
                     time_or_null(a->decided_at), "result", result);
}

/* ---- who may do what ---- */

/* The principal asked for it (or owns the key that did). */
static bool is_requester_side(const struct cu_principal *p, const struct cu_approval *a)
{
    return strcmp(p->id, a->requester) == 0 ||
           (a->requester_owner[0] != '\0' && strcmp(p->id, a->requester_owner) == 0);
}

/* The principal could hold the request's permission once approved: one who may approve it (a
 * staff member) or see it. */
static bool holds_permission(struct cu_req *req, const struct cu_approval *a)
{
    struct cu_access_subject s;
    struct cu_access_ctx ctx;
    uint64_t perm = cu_apikey_scope_parse(a->permission, strlen(a->permission));

    cu_req_access_ctx(req, &ctx);
    if (perm == 0 || ctx.policy == NULL || !cu_access_subject_of(&req->principal, &s))
        return false;
    s.approved = perm;
    struct cu_access_env e = {.now_ms = ctx.now_ms, .has_ip = ctx.has_ip, .ip = ctx.ip};
    return cu_policy_could(ctx.policy, &s, perm, &e);
}

static bool may_see(struct cu_req *req, const struct cu_approval *a)
{
    return is_requester_side(&req->principal, a) || holds_permission(req, a);
}

/* ---- a new request ---- */

struct request_job {
    struct cu_req *req;
    struct cu_resp *resp;
    struct cu_approval a;
    uint8_t digest[CU_HASH_BYTES];
    char *payload; /* canonical JSON: {"body", "ip", "query"} */
    size_t len;
    char location[64];
};

static void request_job_clear(void *p)
{
    struct request_job *j = p;
    if (j->payload != NULL) {
        cu_crypto_wipe(j->payload, j->len);
        free(j->payload); /* jansson's */
    }
}

struct query_pairs {
    json_t *arr;
    bool bad; /* an argument that is not UTF-8: kept, it would not be the action asked for */
};

static bool query_pair(void *cls, const char *name, const char *value)
{
    struct query_pairs *q = cls;
    json_t *pair = json_pack("[s, s?]", name, value);
    if (pair == NULL || json_array_append_new(q->arr, pair) != 0) {
        q->bad = true;
        return false;
    }
    return true;
}

/* The action as it will be run: its query arguments and body, canonical (keys sorted, no
 * space), and the digest that binds the request to it and to its requester. */
static enum cu_err action_of(struct cu_req *req, struct cu_resp *resp, struct request_job *j)
{
    json_t *body = NULL, *query = json_array();
    struct query_pairs q = {query, query == NULL};
    enum cu_err rc = CU_OK;
    char *action = NULL;

    if (!q.bad && req->source != NULL && req->source->each != NULL)
        req->source->each(req->source_arg, true, query_pair, &q);
    if (q.bad)
        rc = cu_resp_fail(resp, CU_E_INVALID,
                          "the query arguments of an action that needs approval must be UTF-8");
    if (rc == CU_OK && req->body.len > 0)
        rc = cu_req_json(req, resp, &body);
    if (rc != CU_OK) {
        json_decref(query);
        return rc;
    }
    json_t *act = json_pack("{s:o, s:o}", "body", body ? body : json_null(), "query", query);
    action = act ? json_dumps(act, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    if (action != NULL) {
        crypto_hash_sha256_state h;
        uint8_t sep = '\n';
        crypto_hash_sha256_init(&h);
        crypto_hash_sha256_update(&h, (const uint8_t *)req->method_name, strlen(req->method_name));
        crypto_hash_sha256_update(&h, &sep, 1);
        crypto_hash_sha256_update(&h, (const uint8_t *)req->path, strlen(req->path));
        crypto_hash_sha256_update(&h, &sep, 1);
        crypto_hash_sha256_update(&h, (const uint8_t *)action, strlen(action));
        crypto_hash_sha256_update(&h, &sep, 1);
        crypto_hash_sha256_update(&h, (const uint8_t *)req->principal.id,
                                  strlen(req->principal.id));
        crypto_hash_sha256_final(&h, j->digest);
        json_object_set_new(act, "ip", json_string(req->remote_ip));
        j->payload = json_dumps(act, JSON_COMPACT | JSON_SORT_KEYS);
        cu_crypto_wipe(action, strlen(action));
        free(action);
    }
    json_decref(act);
    if (j->payload == NULL)
        return cu_resp_fail(resp, CU_E_NOMEM, "the request could not be kept");
    j->len = strlen(j->payload);
    if (j->len > CU_APPROVAL_PAYLOAD_MAX)
        return cu_resp_fail(resp, CU_E_TOO_LARGE,
                            "an action that needs approval may carry at most %d bytes of query "
                            "and body",
                            CU_APPROVAL_PAYLOAD_MAX);
    return CU_OK;
}

static enum cu_err request_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct request_job *j = arg;
    char expires[CU_RFC3339_BYTES];
    enum cu_err rc =
        cu_approval_create(j->req->app->approvals, db, &j->a, j->digest, j->payload, j->len);

    if (rc == CU_E_EXISTS)
        return cu_resp_fail(j->resp, rc,
                            "an identical request is pending already (GET /v1/approvals)");
    if (rc == CU_OK) {
        cu_clock_format(j->a.expires_at, expires);
        rc = cu_work_audit(w, "approval.request", target_of(j->a.id).text, "success",
                           json_pack("{s:s, s:s, s:s, s:i, s:s}", "permission", j->a.permission,
                                     "method", j->a.method, "path", j->a.path, "needed",
                                     (int)j->a.needed, "expires_at", expires));
    }
    if (rc != CU_OK && rc != CU_E_BUSY)
        rc = cu_resp_fail(j->resp, rc, "the request could not be kept");
    return rc;
}

static enum cu_err request_answer(struct cu_req *req, struct cu_resp *resp, void *arg)
{
    struct request_job *j = arg;
    snprintf(j->location, sizeof(j->location), "/v1/approvals/%s", j->a.id);
    cu_resp_header(resp, "Location", j->location);
    cu_log(CU_LOG_INFO, "approval.requested", CU_LS("request_id", req->id),
           CU_LS("approval", j->a.id), CU_LS("permission", j->a.permission),
           CU_LS("by", req->principal.id));
    return cu_resp_json(resp, 202, cu_approval_json(&j->a));
}

enum cu_err cu_approval_request(struct cu_req *req, struct cu_resp *resp)
{
    struct request_job *j = cu_req_alloc(req, sizeof(*j), request_job_clear);
    const struct cu_principal *p = &req->principal;
    const char *perm = cu_apikey_scope_name(req->route_permission);
    enum cu_err rc;

    if (j == NULL)
        return cu_resp_fail(resp, CU_E_NOMEM, "the request could not be kept");
    if (perm == NULL || strlen(req->path) > CU_APPROVAL_PATH_MAX ||
        strlen(req->method_name) >= sizeof(j->a.method))
        return cu_resp_fail(resp, CU_E_INVALID, "this request cannot be held for approval");
    rc = action_of(req, resp, j);
    if (rc != CU_OK)
        return resp->err ? resp->err : rc;
    j->req = req;
    j->resp = resp;
    snprintf(j->a.permission, sizeof(j->a.permission), "%s", perm);
    snprintf(j->a.method, sizeof(j->a.method), "%s", req->method_name);
    snprintf(j->a.path, sizeof(j->a.path), "%s", req->path);
    snprintf(j->a.requester_kind, sizeof(j->a.requester_kind), "%s",
             p->kind == CU_PRINCIPAL_STAFF ? "staff" : "apikey");
    snprintf(j->a.requester, sizeof(j->a.requester), "%s", p->id);
    if (p->kind == CU_PRINCIPAL_APIKEY && strcmp(p->key.owner, CU_APIKEY_INSTALLATION) != 0)
        snprintf(j->a.requester_owner, sizeof(j->a.requester_owner), "%s", p->key.owner);
    j->a.aal = p->kind == CU_PRINCIPAL_STAFF ? (int)p->session.aal : 0;
    j->a.needed = req->approvals_needed;
    j->a.created_at = cu_clock_now_ms();
    j->a.expires_at = j->a.created_at + req->approval_ms;
    return cu_req_change(req, request_apply, request_answer, j);
}

/* ---- reading ---- */

enum cu_err cu_handle_approvals_list(struct cu_req *req, struct cu_resp *resp)
{
    const char *after = NULL, *want = cu_req_query(req, "status");
    enum cu_approval_status status = CU_APPROVAL_PENDING;
    struct cu_approval *items = NULL;
    struct cu_db *db = NULL;
    size_t n = 0, limit = 100, shown = 0;
    enum cu_err rc;

    if (want != NULL && !cu_approval_status_parse(want, &status))
        return cu_resp_fail(resp, CU_E_INVALID,
                            "query 'status' must be pending, approved, executed, failed, "
                            "rejected, cancelled or expired");
    rc = cu_req_page(req, resp, valid_id, "a request id (apr_ and 16 hex digits)", &after, &limit);
    if (rc != CU_OK)
        return rc;
    rc = cu_req_db(req, &db);
    if (rc == CU_OK)
        rc = cu_approval_list(db, want != NULL ? &status : NULL, after, limit, &items, &n);
    json_t *arr = json_array();
    for (size_t i = 0; rc == CU_OK && i < n; i++) {
        /* only what the principal asked for or could approve */
        if (!may_see(req, &items[i]))
            continue;
        if ((rc = cu_approval_get(db, items[i].id, &items[i])) == CU_OK) {
            json_array_append_new(arr, cu_approval_json(&items[i]));
            shown++;
        }
    }
    if (rc == CU_OK)
        rc = cu_req_audit(req, "approval.list", "", "success",
                          json_pack("{s:I}", "count", (json_int_t)shown));
    json_t *v = rc == CU_OK ? json_pack("{s:o, s:s?}", "items", arr, "next_after",
                                        n == limit ? items[n - 1].id : NULL)
                            : NULL;
    if (rc != CU_OK)
        json_decref(arr);
    cu_free(items);
    if (rc != CU_OK)
        return cu_resp_fail(resp, rc, "the requests could not be listed");
    return cu_resp_json(resp, 200, v);
}

/* Reads request id for the principal: CU_E_NOT_FOUND also when it may not see it. */
static enum cu_err visible(struct cu_req *req, struct cu_resp *resp, struct cu_db *db,
                           struct cu_approval *a)
{
    enum cu_err rc;

    if (!valid_id(req->params[0]))
        return cu_resp_fail(resp, CU_E_INVALID, "the request id must be apr_ and 16 hex digits");
    rc = cu_approval_get(db, req->params[0], a);
    if (rc == CU_OK && !may_see(req, a))
        rc = CU_E_NOT_FOUND;
    if (rc == CU_E_NOT_FOUND)
        return cu_resp_fail(resp, rc, "no request you asked for or could approve has this id");
    if (rc != CU_OK)
        return cu_resp_fail(resp, rc, "the request could not be read");
    return CU_OK;
}

enum cu_err cu_handle_approval_get(struct cu_req *req, struct cu_resp *resp)
{
    struct cu_approval a;
    struct cu_db *db = NULL;
    struct cu_buf payload;
    enum cu_err rc = cu_req_db(req, &db);
    json_t *v = NULL;

    memset(&a, 0, sizeof(a));
    cu_buf_init(&payload, CU_APPROVAL_PAYLOAD_MAX);
    if (rc != CU_OK)
        return cu_resp_fail(resp, rc, "the request could not be read");
    rc = visible(req, resp, db, &a);
    if (rc != CU_OK)
        return rc;
    v = cu_approval_json(&a);
    /* the action itself, while it is kept (until it runs or ends): for the approvers to see
     * what they approve (staff members: a key never approves) and for the requester */
    bool shown =
        req->principal.kind == CU_PRINCIPAL_STAFF || is_requester_side(&req->principal, &a);
    rc = shown ? cu_approval_payload(req->app->approvals, db, a.id, &payload) : CU_E_NOT_FOUND;
    if (rc == CU_OK) {
        json_t *act = json_loadb(payload.data, payload.len, 0, NULL);
        json_object_del(act, "ip");
        json_object_set_new(v, "action", act ? act : json_null());
    } else if (rc == CU_E_NOT_FOUND) {
        json_object_set_new(v, "action", json_null());
        rc = CU_OK;
    }
    cu_buf_free(&payload);
    if (rc == CU_OK)
        rc = cu_req_audit(req, "approval.read", target_of(a.id).text, "success", NULL);
    if (rc != CU_OK) {
        json_decref(v);
        return cu_resp_fail(resp, rc, "the request could not be read");
    }
    return cu_resp_json(resp, 200, v);
}

/* ---- running an approved request ---- */

/* The stored query of an action, served to the handler as the client's would be. */
struct exec_source {
    const json_t *query;
    bool has_body;
};

static const char *exec_header(void *arg, const char *name)
{
    struct exec_source *s = arg;
    return s->has_body && strcasecmp(name, "Content-Type") == 0 ? "application/json" : NULL;
}

static const char *exec_query(void *arg, const char *name)
{
    struct exec_source *s = arg;
    size_t i;
    const json_t *pair;
    json_array_foreach(s->query, i, pair)
    {
        const char *n = json_string_value(json_array_get(pair, 0));
        if (n != NULL && strcmp(n, name) == 0)
            return json_string_value(json_array_get(pair, 1));
    }
    return NULL;
}

static void exec_each(void *arg, bool query, bool (*fn)(void *cls, const char *n, const char *v),
                      void *cls)
{
    struct exec_source *s = arg;
    size_t i;
    const json_t *pair;
    if (!query) {
        if (s->has_body)
            (void)fn(cls, "Content-Type", "application/json");
        return;
    }
    json_array_foreach(s->query, i, pair)
    {
        const char *n = json_string_value(json_array_get(pair, 0));
        if (n != NULL && !fn(cls, n, json_string_value(json_array_get(pair, 1))))
            return;
    }
}

static const struct cu_req_source exec_source_fns = {exec_header, exec_query, exec_each};

struct run {
    struct cu_app *app;
    struct cu_approval a;
    bool ran;
    bool executed; /* this run's mark committed */
    int status;
    char detail[CU_APPROVAL_DETAIL_BYTES];
    struct cu_buf out;
};

/* First in the action's unit: approved -> executed, so that it runs once. */
static enum cu_err mark_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct run *r = arg;
    enum cu_err rc;

    if (!r->ran)
        return CU_OK;
    rc = cu_approval_set_status(db, r->a.id, CU_APPROVAL_APPROVED, CU_APPROVAL_EXECUTED,
                                cu_clock_now_ms());
    if (rc == CU_OK)
        rc = cu_work_audit(w, "approval.executed", target_of(r->a.id).text, "success",
                           json_pack("{s:s, s:s, s:s}", "permission", r->a.permission, "method",
                                     r->a.method, "path", r->a.path));
    return rc;
}

/* After the run: what the requester was answered, kept for them, or the failure. */
static enum cu_err finish_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct run *r = arg;
    struct cu_approval now;
    enum cu_err rc = cu_approval_get(db, r->a.id, &now);

    if (rc != CU_OK)
        return rc;
    if (now.status == CU_APPROVAL_EXECUTED && r->executed)
        return cu_approval_finish(r->app->approvals, db, r->a.id, r->status, "", r->out.data,
                                  r->out.len);
    if (now.status != CU_APPROVAL_APPROVED)
        return CU_OK; /* another run took it */
    rc = cu_approval_set_status(db, r->a.id, CU_APPROVAL_APPROVED, CU_APPROVAL_FAILED,
                                cu_clock_now_ms());
    if (rc == CU_OK)
        rc = cu_approval_finish(r->app->approvals, db, r->a.id, r->status, r->detail, NULL, 0);
    if (rc == CU_OK)
        rc = cu_work_audit(w, "approval.failed", target_of(r->a.id).text, "failure",
                           json_pack("{s:i, s:s}", "status", r->status, "detail", r->detail));
    return rc;
}

static enum cu_err run_unit(struct cu_app *app, cu_work_fn fn, void *arg)
{
    struct cu_work *w = NULL;
    enum cu_err rc = cu_work_new(NULL, &w);
    if (rc == CU_OK)
        rc = cu_work_add(w, fn, arg);
    if (rc == CU_OK)
        rc = app->committer != NULL ? cu_committer_run(app->committer, w) : CU_E_UNAVAILABLE;
    cu_work_free(w);
    return rc;
}

/* The requester as stored now, with the approval's permission approved; or why not. */
static enum cu_err run_principal(struct run *r, struct cu_db *db, struct cu_principal *p,
                                 const char **unusable)
{
    const struct cu_policy *policy = cu_access_policy_get(r->app->policies);
    const char *why = NULL;
    enum cu_err rc =
        cu_principal_load(r->app, db, policy, r->a.requester, cu_clock_now_ms(), p, unusable, &why);
    cu_access_policy_put(r->app->policies, policy);
    if (rc == CU_E_NOT_FOUND) {
        *unusable = "the requester no longer exists";
        rc = CU_OK;
    }
    p->approved = cu_apikey_scope_parse(r->a.permission, strlen(r->a.permission));
    if (p->kind == CU_PRINCIPAL_STAFF) {
        p->session.kind = CU_SUBJECT_STAFF;
        p->session.aal = (enum cu_aal)r->a.aal;
        p->session.auth_at = r->a.created_at;
        snprintf(p->session.subject_id, sizeof(p->session.subject_id), "%s", p->id);
    }
    return rc;
}

/* Runs approved request id once, as its requester stands now; the outcome is stored. */
static enum cu_err run_approved(struct cu_app *app, const char *id)
{
    struct run *r = cu_calloc(1, sizeof(*r));
    struct cu_principal *p = cu_calloc(1, sizeof(*p));
    struct cu_buf payload;
    struct cu_db *db = NULL;
    json_t *act = NULL;
    char *body = NULL;
    const char *unusable = NULL;
    enum cu_err rc = r != NULL && p != NULL ? cu_store_acquire(app->store, &db) : CU_E_NOMEM;

    cu_buf_init(&payload, CU_APPROVAL_PAYLOAD_MAX);
    if (r != NULL) {
        r->app = app;
        cu_buf_init(&r->out, CU_APPROVAL_RESULT_MAX);
    }
    if (rc == CU_OK)
        rc = cu_approval_get(db, id, &r->a);
    if (rc == CU_OK && r->a.status != CU_APPROVAL_APPROVED)
        rc = CU_E_EXISTS;
    if (rc == CU_OK)
        rc = cu_approval_payload(app->approvals, db, id, &payload);
    if (rc == CU_OK)
        rc = run_principal(r, db, p, &unusable);
    cu_store_release(db);
    if (rc == CU_OK && (act = json_loadb(payload.data, payload.len, 0, NULL)) == NULL)
        rc = CU_E_CORRUPT;
    /* a key with an allow-list runs the action only while the address it was asked from is
     * still on the list */
    if (rc == CU_OK && unusable == NULL && p->kind == CU_PRINCIPAL_APIKEY) {
        const char *ip = json_string_value(json_object_get(act, "ip"));
        struct cu_ip addr;
        bool known = ip != NULL && cu_ip_parse(ip, &addr) == CU_OK, allows = false;
        if (cu_cidr_list_allows(p->key.networks, known ? &addr : NULL, &allows) != CU_OK || !allows)
            unusable = "the address it was asked from is no longer on the API key's allow-list";
    }
    if (rc == CU_OK && unusable != NULL) {
        r->status = 403;
        snprintf(r->detail, sizeof(r->detail), "the action was not run: %s", unusable);
    } else if (rc == CU_OK) {
        const json_t *b = json_object_get(act, "body");
        struct exec_source src = {json_object_get(act, "query"), b != NULL && !json_is_null(b)};
        body = src.has_body ? json_dumps(b, JSON_COMPACT) : NULL;
        const char *ip = json_string_value(json_object_get(act, "ip"));
        struct cu_server_input in = {.method = r->a.method,
                                     .target = r->a.path,
                                     .path = r->a.path,
                                     .version = "HTTP/1.1",
                                     .source = &exec_source_fns,
                                     .source_arg = &src,
                                     .body = body,
                                     .body_len = body ? strlen(body) : 0,
                                     .remote_ip = ip};
        struct cu_server_exec x = {p, mark_apply, r, &r->ran};
        if (src.has_body && body == NULL)
            rc = CU_E_NOMEM;
        if (rc == CU_OK)
            rc = cu_server_execute(app, &in, &x, &r->status, &r->out, r->detail, sizeof(r->detail));
        r->executed = r->ran && r->status < 400;
    }
    if (rc == CU_OK)
        rc = run_unit(app, finish_apply, r);
    if (rc == CU_OK)
        cu_log(CU_LOG_INFO, "approval.ran", CU_LS("approval", id), CU_LI("status", r->status),
               CU_LS("outcome", r->executed ? "executed" : "failed"));
    else if (rc != CU_E_EXISTS)
        cu_log(CU_LOG_ERROR, "approval.run_failed", CU_LS("approval", id),
               CU_LS("error", cu_err_str(rc)));
    if (body != NULL) {
        cu_crypto_wipe(body, strlen(body));
        free(body);
    }
    json_decref(act);
    cu_buf_free(&payload);
    if (r != NULL)
        cu_buf_free(&r->out);
    if (p != NULL)
        cu_crypto_wipe(p, sizeof(*p));
    cu_free(p);
    cu_free(r);
    return rc;
}

/* ---- voting ---- */

struct vote_job {
    struct cu_req *req;
    struct cu_resp *resp;
    bool approve;
    struct cu_approval a;
};

/* An earlier approval counts while its approver is active and could still hold the
 * permission (decided now, without an address: theirs is not known). */
static bool voter_counts(void *arg, struct cu_db *db, const char *staff_id)
{
    struct vote_job *j = arg;
    struct cu_principal *p = cu_calloc(1, sizeof(*p));
    struct cu_access_subject s;
    const char *unusable = NULL, *why = NULL;
    int64_t now = cu_clock_now_ms();
    uint64_t perm = cu_apikey_scope_parse(j->a.permission, strlen(j->a.permission));
    bool counts = false;

    if (p != NULL && perm != 0 && j->req->policy != NULL &&
        cu_principal_load(j->req->app, db, j->req->policy, staff_id, now, p, &unusable, &why) ==
            CU_OK &&
        unusable == NULL && p->kind == CU_PRINCIPAL_STAFF && cu_access_subject_of(p, &s)) {
        struct cu_access_env e = {.now_ms = now};
        s.approved = perm;
        counts = cu_policy_could(j->req->policy, &s, perm, &e);
    }
    cu_free(p);
    return counts;
}

static enum cu_err vote_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct vote_job *j = arg;
    const char *id = j->req->params[0];
    enum cu_err rc = CU_OK;

    /* voter_counts reads the permission from j->a, which the vote fills before it counts */
    if (rc == CU_OK)
        rc = cu_approval_vote(db, id, j->req->principal.id, j->approve, cu_clock_now_ms(),
                              voter_counts, j, &j->a);
    if (rc == CU_E_EXISTS)
        return j->a.status == CU_APPROVAL_PENDING
                   ? cu_resp_fail(j->resp, rc, "you have voted on this request already")
               : j->a.status == CU_APPROVAL_EXPIRED
                   ? cu_resp_fail(j->resp, rc, "the request has expired; it will never run")
                   : cu_resp_fail(j->resp, rc, "the request is %s; it takes no more votes",
                                  cu_approval_status_name(j->a.status));
    if (rc == CU_OK)
        rc = cu_work_audit(w, j->approve ? "approval.approve" : "approval.reject",
                           target_of(id).text, "success",
                           json_pack("{s:s, s:s}", "permission", j->a.permission, "status",
                                     cu_approval_status_name(j->a.status)));
    if (rc != CU_OK && rc != CU_E_BUSY)
        rc = cu_resp_fail(j->resp, rc, "the vote could not be recorded");
    return rc;
}

static enum cu_err vote_answer(struct cu_req *req, struct cu_resp *resp, void *arg)
{
    struct vote_job *j = arg;
    struct cu_db *db = NULL;
    enum cu_err rc = CU_OK;

    /* the needed-th approval runs the action now, on this thread */
    if (j->a.status == CU_APPROVAL_APPROVED) {
        (void)run_approved(req->app, j->a.id);
        rc = cu_store_acquire(req->app->store, &db);
        if (rc == CU_OK)
            rc = cu_approval_get(db, j->a.id, &j->a);
        cu_store_release(db);
    }
    if (rc != CU_OK)
        return cu_resp_fail(resp, rc, "the vote was recorded, but the request could not be read");
    return cu_resp_json(resp, 200, cu_approval_json(&j->a));
}

static enum cu_err vote(struct cu_req *req, struct cu_resp *resp, bool approve)
{
    struct vote_job *j = cu_req_alloc(req, sizeof(*j), NULL);
    const struct cu_principal *p = &req->principal;

    if (j == NULL)
        return cu_resp_fail(resp, CU_E_NOMEM, "the vote could not be recorded");
    if (!valid_id(req->params[0]))
        return cu_resp_fail(resp, CU_E_INVALID, "the request id must be apr_ and 16 hex digits");
    if (p->kind != CU_PRINCIPAL_STAFF)
        return cu_resp_fail(resp, CU_E_FORBIDDEN,
                            "requests are approved or rejected by staff members, signed in");
    if (p->session.aal != CU_AAL2)
        return cu_resp_fail(resp, CU_E_STEP_UP,
                            "approving needs a session signed in with a second factor: "
                            "POST /v1/auth/step-up");
    /* who may vote does not change while the request waits: decided before its unit */
    struct cu_db *db = NULL;
    enum cu_err rc = cu_req_db(req, &db);
    if (rc != CU_OK)
        return cu_resp_fail(resp, rc, "the request could not be read");
    rc = visible(req, resp, db, &j->a);
    if (rc != CU_OK)
        return rc;
    if (is_requester_side(p, &j->a)) {
        if (cu_req_audit_refusal(
                req, approve ? "approval.approve" : "approval.reject", target_of(j->a.id).text,
                json_pack("{s:s}", "reason", "the requester's own request")) != CU_OK)
            return cu_resp_fail(resp, CU_E_AUDIT, "the refusal could not be audited");
        return cu_resp_fail(resp, CU_E_FORBIDDEN,
                            "a request cannot be approved or rejected by the one who asked for "
                            "it (or by the owner of the key that did)");
    }
    if (!holds_permission(req, &j->a))
        return cu_resp_fail(resp, CU_E_FORBIDDEN,
                            "only a staff member who holds %s may approve or reject this request",
                            j->a.permission);
    j->req = req;
    j->resp = resp;
    j->approve = approve;
    return cu_req_change(req, vote_apply, vote_answer, j);
}

enum cu_err cu_handle_approval_approve(struct cu_req *req, struct cu_resp *resp)
{
    return vote(req, resp, true);
}

enum cu_err cu_handle_approval_reject(struct cu_req *req, struct cu_resp *resp)
{
    return vote(req, resp, false);
}

/* ---- the requester's side ---- */

struct own_job {
    struct cu_req *req;
    struct cu_resp *resp;
    struct cu_approval a;
    struct cu_buf result;
};

static void own_job_clear(void *p)
{
    struct own_job *j = p;
    cu_buf_free(&j->result);
}

/* The request of the path, which the principal must have asked for (or own the key that did). */
static enum cu_err own(struct own_job *j, struct cu_db *db)
{
    enum cu_err rc = cu_approval_get(db, j->req->params[0], &j->a);
    if (rc == CU_OK && !is_requester_side(&j->req->principal, &j->a))
        rc = may_see(j->req, &j->a) ? CU_E_FORBIDDEN : CU_E_NOT_FOUND;
    if (rc == CU_E_NOT_FOUND)
        return cu_resp_fail(j->resp, rc, "no request you asked for or could approve has this id");
    if (rc == CU_E_FORBIDDEN)
        return cu_resp_fail(j->resp, rc, "only the requester may do this");
    return rc;
}

static enum cu_err cancel_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct own_job *j = arg;
    enum cu_err rc = own(j, db);
    int64_t now = cu_clock_now_ms();

    if (rc == CU_OK)
        rc = cu_approval_set_status(db, j->a.id, CU_APPROVAL_PENDING, CU_APPROVAL_CANCELLED, now);
    if (rc == CU_E_EXISTS)
        return cu_resp_fail(j->resp, rc, "the request is %s; only a pending one can be cancelled",
                            cu_approval_status_name(j->a.status));
    if (rc == CU_OK)
        rc = cu_approval_close(db, j->a.id);
    if (rc == CU_OK) {
        j->a.status = CU_APPROVAL_CANCELLED;
        j->a.decided_at = now;
        rc = cu_work_audit(w, "approval.cancel", target_of(j->a.id).text, "success",
                           json_pack("{s:s}", "permission", j->a.permission));
    }
    if (rc != CU_OK && rc != CU_E_BUSY && j->resp->err == CU_OK)
        rc = cu_resp_fail(j->resp, rc, "the request could not be cancelled");
    return rc;
}

static enum cu_err own_answer(struct cu_req *req, struct cu_resp *resp, void *arg)
{
    struct own_job *j = arg;
    (void)req;
    return cu_resp_json(resp, 200, cu_approval_json(&j->a));
}

static struct own_job *own_job_new(struct cu_req *req, struct cu_resp *resp)
{
    struct own_job *j = NULL;
    if (!valid_id(req->params[0])) {
        cu_resp_fail(resp, CU_E_INVALID, "the request id must be apr_ and 16 hex digits");
        return NULL;
    }
    j = cu_req_alloc(req, sizeof(*j), own_job_clear);
    if (j == NULL) {
        cu_resp_fail(resp, CU_E_NOMEM, "out of memory");
        return NULL;
    }
    j->req = req;
    j->resp = resp;
    cu_buf_init(&j->result, CU_APPROVAL_RESULT_MAX);
    return j;
}

enum cu_err cu_handle_approval_cancel(struct cu_req *req, struct cu_resp *resp)
{
    struct own_job *j = own_job_new(req, resp);
    return j != NULL ? cu_req_change(req, cancel_apply, own_answer, j) : resp->err;
}

static enum cu_err result_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct own_job *j = arg;
    enum cu_err rc = own(j, db);

    if (rc == CU_OK && j->a.requester_owner[0] != '\0' &&
        strcmp(j->req->principal.id, j->a.requester) != 0)
        /* the owner of the requesting key may cancel, but the answer is the key's */
        return cu_resp_fail(j->resp, CU_E_FORBIDDEN, "only the requester may read the answer");
    if (rc == CU_OK)
        rc = cu_approval_result_take(j->req->app->approvals, db, j->a.id, &j->result);
    if (rc == CU_E_NOT_FOUND && j->resp->err == CU_OK)
        return cu_resp_fail(j->resp, rc,
                            j->a.status == CU_APPROVAL_EXECUTED
                                ? "the answer was given already (it is given once)"
                                : "the request has no answer: it has not run, or it failed");
    if (rc == CU_OK)
        rc = cu_work_audit(w, "approval.result", target_of(j->a.id).text, "success",
                           json_pack("{s:i}", "status", j->a.result_status));
    if (rc != CU_OK && rc != CU_E_BUSY && j->resp->err == CU_OK)
        rc = cu_resp_fail(j->resp, rc, "the answer could not be read");
    return rc;
}

static enum cu_err result_answer(struct cu_req *req, struct cu_resp *resp, void *arg)
{
    struct own_job *j = arg;
    json_t *body = json_loadb(j->result.data, j->result.len, 0, NULL);
    (void)req;
    if (body == NULL)
        body = json_stringn(j->result.data, j->result.len);
    return cu_resp_json(resp, 200,
                        json_pack("{s:s, s:i, s:o}", "id", j->a.id, "status", j->a.result_status,
                                  "body", body ? body : json_null()));
}

enum cu_err cu_handle_approval_result(struct cu_req *req, struct cu_resp *resp)
{
    struct own_job *j = own_job_new(req, resp);
    return j != NULL ? cu_req_change(req, result_apply, result_answer, j) : resp->err;
}

/* ---- housekeeping ---- */

struct expire_job {
    char id[CU_APPROVAL_ID_BYTES];
};

static enum cu_err expire_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct expire_job *j = arg;
    enum cu_err rc = cu_approval_set_status(db, j->id, CU_APPROVAL_PENDING, CU_APPROVAL_EXPIRED,
                                            cu_clock_now_ms());
    if (rc == CU_E_EXISTS || rc == CU_E_NOT_FOUND)
        return CU_OK; /* decided meanwhile */
    if (rc == CU_OK)
        rc = cu_approval_close(db, j->id);
    if (rc == CU_OK)
        rc = cu_work_audit(w, "approval.expired", target_of(j->id).text, "success", NULL);
    return rc;
}

static enum cu_err drop_results_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    int64_t n = 0;
    enum cu_err rc = cu_approval_drop_results(db, *(const int64_t *)arg, &n);
    if (rc == CU_OK && n > 0)
        rc = cu_work_audit(w, "approval.results_dropped", "approvals", "success",
                           json_pack("{s:I}", "count", (json_int_t)n));
    return rc;
}

void cu_approvals_housekeep(struct cu_app *app, int64_t now)
{
    int64_t before = now - CU_APPROVAL_RESULT_KEEP_MS;
    char expired[HOUSEKEEP_BATCH][CU_APPROVAL_ID_BYTES],
        stale[HOUSEKEEP_BATCH][CU_APPROVAL_ID_BYTES];
    size_t n = 0, sn = 0;
    struct cu_db *db = NULL;
    enum cu_err rc = cu_store_acquire(app->store, &db);

    if (rc == CU_OK)
        rc = cu_approval_due(db, now, expired, HOUSEKEEP_BATCH, &n, stale, HOUSEKEEP_BATCH, &sn,
                             now - STALE_RUN_MS);
    cu_store_release(db);
    for (size_t i = 0; rc == CU_OK && i < n; i++) {
        struct expire_job j;
        snprintf(j.id, sizeof(j.id), "%s", expired[i]);
        rc = run_unit(app, expire_apply, &j);
    }
    for (size_t i = 0; rc == CU_OK && i < sn; i++)
        (void)run_approved(app, stale[i]);
    /* once an hour (the background thread alone calls this) */
    static int64_t dropped_at;
    if (rc == CU_OK && now - dropped_at >= 3600LL * 1000) {
        rc = run_unit(app, drop_results_apply, &before);
        dropped_at = now;
    }
    if (rc != CU_OK)
        cu_log(CU_LOG_WARN, "approval.housekeeping_failed", CU_LS("error", cu_err_str(rc)));
}
