/*
 * authn.c - authentication of a request: its bearer credential (an API key, or a customer's or
 * staff member's session) becomes the request's principal, in its unit of work as the actor of
 * its records, and the one door (cu_access_decide) says whether it may use the route. Failures
 * are audited in the unit and answered whatever becomes of their record; a client that fails
 * too often this minute is answered 429 without a record (the next one it gets counts them).
 */
#include "api/server_int.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "base/clock.h"
#include "base/log.h"

/* The actor of a request's audit records: its principal, once authenticated. */
static void set_actor(struct cu_req *req)
{
    cu_access_actor(&req->principal, cu_work_context(req->work));
}

/* Audits a refused request in its unit of work. The refusal stands whatever happens to its
 * record: if the audit log cannot be written, health says so and the log has the error. */
static void audit_refusal(struct cu_req *req, const char *action, const char *target,
                          const char *outcome, json_t *details)
{
    if (cu_work_audit(req->work, action, target, outcome, details) == CU_OK)
        req->refusal = true;
}

/* A failed authentication: audited (the answer stays 401 even if the audit log is down;
 * health says so), unless the client has failed too often this minute, when it is answered
 * 429 and counted for the summary its next audited failure carries. */
static enum cu_err auth_failed_as(struct cu_req *req, struct cu_resp *resp, const char *method,
                                  bool counted, const char *reason, const char *detail)
{
    uint64_t held = 0;
    struct cu_app *app = req->app;
    if (counted && cu_limiter_fail(app->auth_limiter, req->rate_client, cu_clock_now_ms(), &held) ==
                       CU_LIMIT_SUPPRESS) {
        cu_resp_header(resp, "Retry-After", "60");
        return cu_resp_fail(resp, CU_E_RATE_LIMITED,
                            "too many failed authentications from this address; retry later");
    }
    audit_refusal(req, "auth.failed", "", "failure",
                  json_pack("{s:s, s:s, s:I}", "method", method, "reason", reason,
                            "held_back_before", (json_int_t)held));
    return cu_resp_fail(resp, CU_E_UNAUTHENTICATED, "%s", detail);
}

static enum cu_err auth_failed(struct cu_req *req, struct cu_resp *resp, const char *reason,
                               const char *detail)
{
    return auth_failed_as(req, resp, "apikey", true, reason, detail);
}

/* A key owned by a staff member holds at most what its owner may (their scopes and what their
 * roles can give), read afresh on every request: a disabled or removed owner's keys stop at
 * once, a demoted owner's lose what the owner lost. */
static enum cu_err key_owner(struct cu_req *req, struct cu_resp *resp, struct cu_db *db)
{
    struct cu_principal *p = &req->principal;
    struct cu_staff_access a;
    struct cu_access_ctx ctx;
    uint64_t scopes = 0;
    bool active = false, totp = false;
    enum cu_err rc;

    if (p->key.owner[0] == '\0' || strcmp(p->key.owner, CU_APIKEY_INSTALLATION) == 0)
        return CU_OK;
    rc = cu_identity_subject_state(req->app->identity, db, CU_SUBJECT_STAFF, p->key.owner, &scopes,
                                   &active, &totp);
    if (rc == CU_OK)
        rc = cu_identity_staff_access(db, p->key.owner, &a);
    if (rc == CU_E_NOT_FOUND || (rc == CU_OK && !active))
        return auth_failed(req, resp, "the key's owner is disabled or gone",
                           "the API key's owner is disabled or no longer exists");
    if (rc != CU_OK)
        return cu_resp_fail(resp, rc, "the credential could not be checked");
    cu_req_access_ctx(req, &ctx);
    p->capped = true;
    p->cap = scopes | cu_policy_roles_permissions(ctx.policy, a.roles);
    return CU_OK;
}

/* A key with an allow-list works only from the addresses in it (the address of the
 * connection's peer). */
static enum cu_err key_networks(struct cu_req *req, struct cu_resp *resp)
{
    struct cu_access_ctx ctx;
    bool allows = false;

    cu_req_access_ctx(req, &ctx);
    if (cu_cidr_list_allows(req->principal.key.networks, ctx.has_ip ? &ctx.ip : NULL, &allows) !=
        CU_OK)
        return cu_resp_fail(resp, CU_E_INTERNAL, "the key's allow-list could not be read");
    if (allows)
        return CU_OK;
    return auth_failed(req, resp, "the address is not on the key's allow-list",
                       "the API key may not be used from this address");
}

static enum cu_err auth_apikey(struct cu_req *req, struct cu_resp *resp, const char *token)
{
    struct cu_principal *p = &req->principal;
    struct cu_db *db = NULL;
    enum cu_err rc = cu_req_db(req, &db);

    if (rc == CU_OK)
        rc = cu_apikey_authenticate(req->app->apikeys, db, token, strlen(token), &p->key);
    if (rc == CU_E_UNAUTHENTICATED)
        return auth_failed(req, resp, "unknown, revoked or expired key",
                           "the API key is unknown, revoked or expired");
    if (rc != CU_OK)
        return cu_resp_fail(resp, rc, "the credential could not be checked");
    p->kind = CU_PRINCIPAL_APIKEY;
    snprintf(p->id, sizeof(p->id), "%s", p->key.id);
    p->scopes = p->key.scopes;
    snprintf(p->access.roles, sizeof(p->access.roles), "%s", p->key.roles);
    rc = key_owner(req, resp, db);
    return rc == CU_OK ? key_networks(req, resp) : rc;
}

/* The session's last-seen time moved on, in the request's unit of work; the session must
 * still be live when the unit runs (the clock now, not at the request's start). A refusal's
 * unit keeps its record even when the session ended meanwhile. */
static enum cu_err touch_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct cu_req *req = arg;
    enum cu_err rc = cu_identity_session_touch(req->app->identity, db, req->principal.session.id,
                                               cu_clock_now_ms(), true);
    (void)w;
    return rc == CU_E_UNAUTHENTICATED && req->refusal ? CU_OK : rc;
}

static enum cu_err hold_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct cu_req *req = arg;
    (void)w;
    return cu_identity_session_touch(req->app->identity, db, req->principal.session.id,
                                     cu_clock_now_ms(), false);
}

enum cu_err cu_authn_hold_session(struct cu_req *req)
{
    const struct cu_principal *p = &req->principal;
    bool session = p->kind == CU_PRINCIPAL_STAFF || p->kind == CU_PRINCIPAL_CUSTOMER;
    if (!session || req->session_held)
        return CU_OK;
    req->session_held = true;
    return cu_work_add_first(req->work, hold_apply, req);
}

static enum cu_err auth_session(struct cu_req *req, struct cu_resp *resp, const char *token)
{
    struct cu_app *app = req->app;
    struct cu_principal *p = &req->principal;
    struct cu_db *db = NULL;
    bool active = false, touch = false;
    enum cu_err rc = cu_req_db(req, &db);

    if (rc == CU_OK)
        rc =
            cu_identity_session_check(app->identity, db, token, strlen(token), &p->session, &touch);
    if (rc == CU_OK)
        rc = cu_identity_subject_state(app->identity, db, p->session.kind, p->session.subject_id,
                                       &p->scopes, &active, &p->has_totp);
    if (rc == CU_OK && p->session.kind == CU_SUBJECT_STAFF)
        rc = cu_identity_staff_access(db, p->session.subject_id, &p->access);
    if (rc == CU_OK && !active)
        rc = CU_E_UNAUTHENTICATED;
    /* A session that ended (expired, revoked, its account gone) is what a company's app
     * server sends for many customers from one address: it is not counted against the
     * address, as unknown and malformed tokens are. */
    if (rc == CU_E_UNAUTHENTICATED || rc == CU_E_NOT_FOUND)
        return auth_failed_as(req, resp, "session", p->session.id[0] == '\0',
                              p->session.id[0] ? "session ended" : "unknown session",
                              "the session is unknown, expired or revoked; sign in again");
    if (rc == CU_OK && touch) {
        rc = cu_work_add(req->work, touch_apply, req);
        req->session_held = rc == CU_OK;
    }
    if (rc != CU_OK)
        return cu_resp_fail(resp, rc, "the credential could not be checked");
    p->kind = p->session.kind == CU_SUBJECT_STAFF ? CU_PRINCIPAL_STAFF : CU_PRINCIPAL_CUSTOMER;
    snprintf(p->id, sizeof(p->id), "%s", p->session.subject_id);
    return CU_OK;
}

/* Whether the authenticated principal may use the route: the one door (cu_access_decide).
 * A denial is audited as access.denied, but for a second factor still due. */
/* The route's decision for the request's principal under ctx's policy. Four-eyes: an action
 * the policy marks 'approve' is decided as if approved, to refuse at once what approval would
 * not let through; *needed > 0 then says it needs approval (by so many, within *within). */
static enum cu_err decide_route(struct cu_req *req, const struct cu_route *route,
                                const struct cu_access_ctx *ctx, struct cu_access_decision *d,
                                unsigned *needed, int64_t *within)
{
    struct cu_principal *p = &req->principal;
    enum cu_err rc;

    *needed = 0;
    if (route->permission != 0 && !(p->approved & route->permission) &&
        (p->kind == CU_PRINCIPAL_STAFF || p->kind == CU_PRINCIPAL_APIKEY) &&
        cu_policy_approval(ctx->policy, route->permission, needed, within)) {
        p->approved |= route->permission;
        rc = cu_access_decide(p, route->permission, route->flags, ctx, d);
        p->approved &= ~route->permission;
        return rc;
    }
    return cu_access_decide(p, route->permission, route->flags, ctx, d);
}

static enum cu_access_effect effect_of(enum cu_err rc, const struct cu_access_decision *d,
                                       unsigned needed)
{
    return rc != CU_OK ? CU_ACCESS_DENY : needed > 0 ? CU_ACCESS_NEEDS_APPROVAL : d->effect;
}

/* At most this many dry-run differences are logged a minute (all are counted). */
#define DRY_RUN_LOGS_PER_MINUTE 100

/* The dry run ([access] dry_run_policy): the route decided again by the dry-run policy; a
 * different outcome is counted and logged, and changes nothing. */
static void dry_run(struct cu_req *req, const struct cu_route *route,
                    const struct cu_access_ctx *live, enum cu_access_effect had)
{
    static _Atomic int64_t minute;
    static atomic_int logged;
    struct cu_app *app = req->app;
    struct cu_access_decision d;
    unsigned needed = 0;
    int64_t within = 0;

    if (app->dry_policies == NULL || route->permission == 0)
        return;
    const struct cu_policy *dp = cu_access_policy_get(app->dry_policies);
    struct cu_access_ctx ctx = *live;
    ctx.policy = dp;
    enum cu_err rc = decide_route(req, route, &ctx, &d, &needed, &within);
    enum cu_access_effect would = effect_of(rc, &d, needed);
    cu_metrics_guard_event(app->metrics, CU_GUARD_DRY_RUN, 1);
    if (would != had) {
        enum cu_guard_event kind = had == CU_ACCESS_DENY     ? CU_GUARD_DRY_LOOSER
                                   : would == CU_ACCESS_DENY ? CU_GUARD_DRY_STRICTER
                                                             : CU_GUARD_DRY_OTHER;
        int64_t now = cu_clock_now_ms() / 60000, was = atomic_load(&minute);
        cu_metrics_guard_event(app->metrics, kind, 1);
        if (was != now && atomic_compare_exchange_strong(&minute, &was, now))
            atomic_store(&logged, 0);
        if (atomic_fetch_add(&logged, 1) < DRY_RUN_LOGS_PER_MINUTE)
            cu_log(CU_LOG_WARN, "access.dry_run_difference", CU_LS("request_id", req->id),
                   CU_LS("method", req->method_name), CU_LS("route", route->pattern),
                   CU_LS("principal", req->principal.id),
                   CU_LS("permission", cu_apikey_scope_name(route->permission)),
                   CU_LS("live", cu_access_effect_name(had)),
                   CU_LS("dry_run", cu_access_effect_name(would)),
                   CU_LS("dry_run_policy", cu_policy_digest(dp)),
                   CU_LS("why", would == CU_ACCESS_DENY ? d.reason : ""));
    }
    cu_access_policy_put(app->dry_policies, dp);
}

static enum cu_err authorize(struct cu_req *req, struct cu_resp *resp, const struct cu_route *route)
{
    struct cu_app *app = req->app;
    struct cu_access_decision d;
    struct cu_access_ctx ctx;
    unsigned needed = 0;
    int64_t within = 0;

    cu_req_access_ctx(req, &ctx);
    ctx.identity = app->identity;
    ctx.customer_mfa_required = app->cfg.identity.customer_mfa_required;
    enum cu_err rc = decide_route(req, route, &ctx, &d, &needed, &within);
    dry_run(req, route, &ctx, effect_of(rc, &d, needed));
    if (rc == CU_OK) {
        /* what needs approval is diverted to a pending request instead of its handler
         * (api/approvals_routes.c) */
        req->access = d.effect;
        req->route_permission = route->permission;
        req->approvals_needed = needed;
        req->approval_ms = within;
        return CU_OK;
    }
    if (d.audit)
        audit_refusal(
            req, "access.denied", route->pattern, "denied",
            d.missing != NULL
                ? json_pack("{s:s, s:s}", "method", req->method_name, "scope", d.missing)
                : json_pack("{s:s, s:s}", "method", req->method_name, "reason", d.reason));
    return cu_resp_fail(resp, d.err, "%s", d.reason);
}

enum cu_err cu_authn_preset(struct cu_req *req, struct cu_resp *resp, const struct cu_route *route,
                            const struct cu_principal *p)
{
    req->principal = *p;
    req->session_held = true; /* no session: the requester's ended long ago, maybe */
    set_actor(req);
    return authorize(req, resp, route);
}

/* cu_authn_request(req, resp, route): reads "Bearer <token>": an API key or a session token;
 * fills the principal, puts it in the request's unit of work, and checks it may use the route
 * (cu_access_decide), or fails resp (with the refusal audited in the unit). */
enum cu_err cu_authn_request(struct cu_req *req, struct cu_resp *resp, const struct cu_route *route)
{
    const char *h = cu_req_header(req, "Authorization");
    enum cu_err rc;

    cu_resp_header(resp, "WWW-Authenticate", "Bearer realm=\"custodia\"");
    if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
        return auth_failed(req, resp, h == NULL ? "no credential" : "not a bearer token",
                           "this route needs a credential: Authorization: Bearer <API key or "
                           "session token>");
    rc = strncmp(h + 7, "css_", 4) == 0 ? auth_session(req, resp, h + 7)
                                        : auth_apikey(req, resp, h + 7);
    if (rc != CU_OK)
        return rc;
    set_actor(req);
    resp->nheaders = 0;
    return authorize(req, resp, route);
}
