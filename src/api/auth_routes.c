/*
 * auth_routes.c - sign-in (password, then a second factor), step-up and sign-out, and what a
 * signed-in customer or staff member does for themselves under /v1/me: their sessions, their
 * password, their TOTP and their recovery codes.
 *
 * Bodies that carry a password or a code are wiped, with the JSON that was parsed from them,
 * as soon as the handler is done with them. A sign-in never says whether the account exists:
 * an unknown login, a wrong password and a disabled account get the same 401 after the same
 * work; only a lockout (which unknown logins get too) answers 429 with Retry-After.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "api/bucket.h"
#include "api/handlers.h"
#include "monitor/monitor.h"
#include "api/metrics.h"
#include "api/server.h"
#include "base/clock.h"
#include "base/json.h"
#include "base/log.h"
#include "base/mem.h"
#include "crypto/crypto.h"
#include "crypto/totp.h"

/* Overwrites the secrets in obj (jansson's own copies) and the request body they came from,
 * keeping obj (the other strings of a sign-in's context point into it). */
static void wipe_body_secrets(struct cu_req *req, json_t *obj)
{
    static const char *const keys[] = {"password", "current_password", "new_password", "code",
                                       "challenge"};
    for (size_t i = 0; obj != NULL && i < sizeof(keys) / sizeof(keys[0]); i++) {
        json_t *v = json_object_get(obj, keys[i]);
        if (json_is_string(v))
            cu_crypto_wipe((char *)json_string_value(v), json_string_length(v));
    }
    if (req->body.data != NULL)
        cu_crypto_wipe(req->body.data, req->body.len);
}

static void wipe_secrets(struct cu_req *req, json_t *obj)
{
    wipe_body_secrets(req, obj);
    json_decref(obj);
}

/* A sign-in step or a change of one's own credentials, from the handler through its unit of
 * work to its answer. The body stays until the request ends (the context's strings point into
 * it), its secrets wiped as soon as the check is done. */
struct auth_job {
    struct cu_req *req;
    struct cu_resp *resp;
    json_t *body;
    void *memo; /* monitoring's decision about a customer's credential change, across runs */
    union {
        struct cu_identity_login login;
        struct cu_identity_mfa mfa;
        struct cu_identity_step_up step;
        struct {
            struct cu_identity_verify verify;
            struct cu_identity_password pw;
        } change;
        struct {
            char code[65];
            char codes[CU_RECOVERY_CODES][CU_RECOVERY_CODE_BYTES];
        } factor;
        struct {
            char account[CU_EMAIL_MAX + 1];
            char uri[CU_TOTP_URI_BYTES];
        } begin;
    } u;
    struct cu_buf svg;
    char why[CU_IDENTITY_WHY_BYTES];
    enum { U_OTHER, U_LOGIN, U_MFA } which; /* the member of u in use, for its clear */
};

static void auth_job_clear(void *p)
{
    struct auth_job *j = p;
    cu_monitor_memo_free(j->memo);
    if (j->which == U_LOGIN)
        cu_identity_login_clear(&j->u.login); /* and the monitoring hook's decision */
    else if (j->which == U_MFA)
        cu_identity_mfa_clear(&j->u.mfa);
    wipe_secrets(j->req, j->body);
    if (j->svg.data != NULL)
        cu_crypto_wipe(j->svg.data, j->svg.len);
    cu_buf_free(&j->svg);
    cu_crypto_wipe(&j->u, sizeof(j->u));
}

static struct auth_job *auth_job_new(struct cu_req *req, struct cu_resp *resp)
{
    struct auth_job *j = cu_req_alloc(req, sizeof(*j), auth_job_clear);
    if (j == NULL) {
        cu_resp_fail(resp, CU_E_NOMEM, "out of memory");
        return NULL;
    }
    j->req = req;
    j->resp = resp;
    cu_buf_init(&j->svg, 64u << 10);
    return j;
}

/* Parses the body as an object with only the allowed keys. */
static enum cu_err body_of(struct cu_req *req, struct cu_resp *resp, const char *const *allowed,
                           size_t n, json_t **out)
{
    const char *bad = NULL;
    enum cu_err rc = cu_req_json(req, resp, out);
    if (rc != CU_OK)
        return rc;
    if (cu_json_only_keys(*out, allowed, n, &bad) != CU_OK) {
        rc = cu_resp_fail(resp, CU_E_INVALID, "unknown field '%.64s'", bad);
        wipe_secrets(req, *out);
        *out = NULL;
    }
    return rc;
}

static enum cu_err get_string(json_t *body, struct cu_resp *resp, const char *key, bool required,
                              size_t max, const char **out)
{
    char err[CU_JSON_ERR_BYTES];
    enum cu_err rc = cu_json_get_string(body, key, required, max, out, err);
    if (rc != CU_OK)
        return cu_resp_fail(resp, rc == CU_E_TOO_LARGE ? CU_E_INVALID : rc, "%s", err);
    return CU_OK;
}

static void format_time(int64_t ms, char out[CU_RFC3339_BYTES])
{
    cu_clock_format(ms, out);
}

static json_t *session_json(const struct cu_session_info *s, const char *current)
{
    char created[CU_RFC3339_BYTES], seen[CU_RFC3339_BYTES], auth[CU_RFC3339_BYTES];
    char expires[CU_RFC3339_BYTES], idle[CU_RFC3339_BYTES];
    format_time(s->created_at, created);
    format_time(s->last_seen_at, seen);
    format_time(s->auth_at, auth);
    format_time(s->expires_at, expires);
    format_time(s->idle_expires_at, idle);
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:b}", "id", s->id,
                     "subject_kind", cu_subject_kind_name(s->kind), "subject_id", s->subject_id,
                     "aal", s->aal == CU_AAL2 ? "aal2" : "aal1", "created_at", created,
                     "last_seen_at", seen, "authenticated_at", auth, "expires_at", expires,
                     "idle_expires_at", idle, "ip", s->ip, "user_agent", s->user_agent, "current",
                     current != NULL && strcmp(current, s->id) == 0);
}

/* The User-Agent header when it is valid UTF-8 (it is stored and shown as JSON), else "". */
static const char *safe_user_agent(struct cu_req *req)
{
    const char *ua = cu_req_header(req, "User-Agent");
    return ua != NULL && cu_utf8_valid(ua, strlen(ua)) ? ua : "";
}

/* Whether the request carries an API key that may report its end user's address: one with
 * customers.credentials, which a company's sign-in service holds. */
static bool trusted_reporter(struct cu_req *req)
{
    const char *h = cu_req_header(req, "Authorization");
    struct cu_apikey_info info;
    struct cu_principal p;
    struct cu_access_subject s;
    struct cu_access_ctx ctx;
    struct cu_db *db = NULL;
    if (h == NULL || strncmp(h, "Bearer ", 7) != 0 || cu_req_db(req, &db) != CU_OK ||
        cu_apikey_authenticate(req->app->apikeys, db, h + 7, strlen(h + 7), &info) != CU_OK)
        return false;
    /* as the access policy decides it, so a forbid on the key holds here too */
    memset(&p, 0, sizeof(p));
    p.kind = CU_PRINCIPAL_APIKEY;
    snprintf(p.id, sizeof(p.id), "%s", info.id);
    p.scopes = info.scopes;
    cu_req_access_ctx(req, &ctx);
    if (ctx.policy == NULL || !cu_access_subject_of(&p, &s))
        return (info.scopes & CU_SCOPE_CUSTOMERS_CREDENTIALS) != 0;
    struct cu_access_env e = {.now_ms = ctx.now_ms, .has_ip = ctx.has_ip, .ip = ctx.ip};
    return cu_policy_decide(ctx.policy, &s, CU_SCOPE_CUSTOMERS_CREDENTIALS, NULL, &e, NULL) ==
           CU_ACCESS_ALLOW;
}

/* The request's side of a sign-in: a company's sign-in service (an API key with
 * customers.credentials in Authorization) may report its end user's address and agent; the
 * device id is the client's own claim; else the connection's address and agent are used. */
static enum cu_err auth_ctx(struct cu_req *req, struct cu_resp *resp, json_t *body,
                            struct cu_auth_ctx *ctx)
{
    const char *ip = NULL, *ua = NULL, *dev = NULL;
    unsigned char addr[16];
    enum cu_err rc = get_string(body, resp, "client_ip", false, 45, &ip);

    if (rc == CU_OK && ip != NULL && inet_pton(AF_INET, ip, addr) != 1 &&
        inet_pton(AF_INET6, ip, addr) != 1)
        rc = cu_resp_fail(resp, CU_E_INVALID, "field 'client_ip' must be an IPv4 or IPv6 address");
    if (rc == CU_OK)
        rc = get_string(body, resp, "user_agent", false, CU_USER_AGENT_MAX, &ua);
    if (rc == CU_OK)
        rc = get_string(body, resp, "device_id", false, CU_DEVICE_ID_MAX, &dev);
    if (rc != CU_OK)
        return rc;
    if ((ip != NULL || ua != NULL) && !trusted_reporter(req))
        return cu_resp_fail(resp, CU_E_FORBIDDEN,
                            "fields 'client_ip' and 'user_agent' may only be reported with an "
                            "API key holding customers.credentials");
    if (ip != NULL)
        cu_app_kept_ip(req->app, ip, req->kept_reported);
    ctx->ip = ip ? req->kept_reported : req->kept_ip;
    ctx->raw_ip = ip ? ip : req->remote_ip;
    ctx->user_agent = ua ? ua : safe_user_agent(req);
    ctx->device_id = dev;
    return CU_OK;
}

static enum cu_err kind_of(json_t *body, struct cu_resp *resp, enum cu_subject_kind *kind)
{
    const char *k = NULL;
    enum cu_err rc = get_string(body, resp, "kind", false, 16, &k);
    *kind = CU_SUBJECT_CUSTOMER;
    if (rc == CU_OK && k != NULL && strcmp(k, "staff") == 0)
        *kind = CU_SUBJECT_STAFF;
    else if (rc == CU_OK && k != NULL && strcmp(k, "customer") != 0)
        rc = cu_resp_fail(resp, CU_E_INVALID, "field 'kind' must be customer or staff");
    return rc;
}

/* Renders a failed sign-in step. */
static enum cu_err auth_fail(struct cu_resp *resp, enum cu_err rc, int64_t retry_ms)
{
    if (rc == CU_E_BAD_CREDENTIALS)
        return cu_resp_fail(resp, rc, "the login, password or code is not right");
    if (rc == CU_E_RATE_LIMITED) {
        retry_ms = retry_ms < 1000 ? 1000 : retry_ms;
        cu_resp_retry_after(resp, (retry_ms + 999) / 1000);
        return cu_resp_fail(resp, rc, "too many failed sign-ins on this account; retry in %lld s",
                            (long long)((retry_ms + 999) / 1000));
    }
    if (rc == CU_E_UNAVAILABLE) {
        cu_resp_header(resp, "Retry-After", "1");
        return cu_resp_fail(resp, rc, "too many sign-ins at once; retry shortly");
    }
    if (rc == CU_E_AUDIT)
        return cu_resp_fail(resp, rc, "the sign-in could not be audited");
    return cu_resp_fail(resp, rc, "the sign-in could not be completed");
}

/* The answer to a sign-in step: a session, or a challenge for the second factor. */
static enum cu_err login_answer(struct cu_app *app, struct cu_resp *resp,
                                struct cu_login_result *res)
{
    json_t *v;
    if (res->status == CU_LOGIN_MFA_REQUIRED)
        v = json_pack("{s:s, s:s, s:[s, s], s:I}", "status", "mfa_required", "challenge",
                      res->challenge, "methods", "totp", "recovery_code", "expires_in",
                      (json_int_t)app->cfg.identity.mfa_challenge_seconds);
    else
        v = json_pack("{s:s, s:s, s:o, s:b}", "status", "signed_in", "token", res->token, "session",
                      session_json(&res->session, NULL), "mfa_enrolment_required",
                      res->mfa_enrolment_required);
    cu_crypto_wipe(res->token, sizeof(res->token));
    cu_crypto_wipe(res->challenge, sizeof(res->challenge));
    return cu_resp_json(resp, 200, v);
}

/* apply_fail(j, rc, what): a change's own failure, reported (cu_resp_change_failed). */
static enum cu_err apply_fail(struct auth_job *j, enum cu_err rc, const char *what)
{
    return cu_resp_change_failed(j->resp, rc, what);
}

static enum cu_err login_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct auth_job *j = arg;
    return apply_fail(j, cu_identity_login_record(j->req->app->identity, w, db, &j->u.login),
                      "the sign-in could not be completed");
}

static enum cu_err login_done(struct cu_req *req, struct cu_resp *resp, void *arg)
{
    struct auth_job *j = arg;
    struct cu_identity_login *op = &j->u.login;
    if (op->result != CU_OK)
        return auth_fail(resp, op->result, op->out.retry_after_ms);
    return login_answer(req->app, resp, &op->out);
}

/* A sign-in: its check (the account, the password's hash) runs here, on the hashing lane; the
 * outcome (a session, a challenge, or a failure counted toward the lockout) is recorded in the
 * request's unit of work, and answered once it is durable. */
/* The sign-in attempts for one login name ([limits] signin_*), from any address: the name as
 * a digest (it may be long, and the table keeps no personal data). */
static enum cu_err signin_limit(struct cu_req *req, struct cu_resp *resp, enum cu_subject_kind kind,
                                const char *login)
{
    uint8_t d[CU_HASH_BYTES];
    char key[3 + 2 * 16 + 1], lower[CU_EMAIL_MAX + 8];
    size_t n = 0;
    int64_t retry = 0;

    n = (size_t)snprintf(lower, sizeof(lower), "%d:", (int)kind);
    for (const char *c = login; *c && n + 1 < sizeof(lower); c++)
        lower[n++] = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
    lower[n] = '\0';
    cu_crypto_sha256(lower, n, d);
    snprintf(key, sizeof(key), "in:");
    cu_hex_encode(d, 16, key + 3);
    if (cu_buckets_take(req->app->rate_signin, key, cu_clock_now_ms(), &retry))
        return CU_OK;
    cu_metrics_guard_event(req->app->metrics, CU_GUARD_RATE_SIGNIN, 1);
    cu_resp_retry_after(resp, retry);
    return cu_resp_fail(resp, CU_E_RATE_LIMITED,
                        "too many sign-in attempts for this login; retry in %lld s",
                        (long long)retry);
}

enum cu_err cu_handle_auth_login(struct cu_req *req, struct cu_resp *resp)
{
    static const char *const allowed[] = {"login",     "password",   "kind",
                                          "client_ip", "user_agent", "device_id"};
    struct auth_job *j = auth_job_new(req, resp);
    struct cu_identity_login *op = j != NULL ? &j->u.login : NULL;
    if (j != NULL)
        j->which = U_LOGIN;
    const char *login = NULL, *pw = NULL;
    struct cu_db *db = NULL;
    enum cu_err rc = j != NULL ? body_of(req, resp, allowed, 6, &j->body) : resp->err;

    if (rc != CU_OK)
        return rc;
    rc = get_string(j->body, resp, "login", true, CU_EMAIL_MAX, &login);
    if (rc == CU_OK)
        rc = get_string(j->body, resp, "password", true, CU_PWHASH_MAX_PASSWORD_BYTES, &pw);
    if (rc == CU_OK)
        rc = kind_of(j->body, resp, &op->kind);
    if (rc == CU_OK)
        rc = signin_limit(req, resp, op->kind, login);
    if (rc == CU_OK)
        rc = auth_ctx(req, resp, j->body, &op->ctx);
    if (rc == CU_OK)
        rc = cu_req_db(req, &db);
    if (rc == CU_OK) {
        snprintf(op->login, sizeof(op->login), "%s", login);
        rc = cu_identity_login_read(req->app->identity, db, op);
        /* No read connection is held while the password is hashed. */
        cu_store_release(req->view);
        req->view = NULL;
        if (rc == CU_OK)
            rc = cu_identity_login_verify(req->app->identity, op, pw, strlen(pw));
        if (rc != CU_OK)
            rc = auth_fail(resp, rc, 0);
    }
    wipe_body_secrets(req, j->body);
    if (rc != CU_OK)
        return resp->err ? resp->err : rc;
    return cu_req_change(req, login_apply, login_done, j);
}

static enum cu_err mfa_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct auth_job *j = arg;
    return apply_fail(j, cu_identity_mfa_record(j->req->app->identity, w, db, &j->u.mfa),
                      "the sign-in could not be completed");
}

static enum cu_err mfa_done(struct cu_req *req, struct cu_resp *resp, void *arg)
{
    struct auth_job *j = arg;
    struct cu_identity_mfa *op = &j->u.mfa;
    if (op->result != CU_OK)
        return auth_fail(resp, op->result, op->out.retry_after_ms);
    return login_answer(req->app, resp, &op->out);
}

enum cu_err cu_handle_auth_mfa(struct cu_req *req, struct cu_resp *resp)
{
    static const char *const allowed[] = {"challenge", "code", "client_ip", "user_agent",
                                          "device_id"};
    struct auth_job *j = auth_job_new(req, resp);
    const char *challenge = NULL, *code = NULL;
    enum cu_err rc = j != NULL ? body_of(req, resp, allowed, 5, &j->body) : resp->err;

    if (rc != CU_OK)
        return rc;
    j->which = U_MFA;
    rc = get_string(j->body, resp, "challenge", true, 64, &challenge);
    if (rc == CU_OK)
        rc = get_string(j->body, resp, "code", true, 64, &code);
    if (rc == CU_OK)
        rc = auth_ctx(req, resp, j->body, &j->u.mfa.ctx);
    if (rc == CU_OK) {
        rc = cu_identity_mfa_check(req->app->identity, &j->u.mfa, challenge, code);
        if (rc != CU_OK)
            rc = auth_fail(resp, rc, 0);
    }
    wipe_body_secrets(req, j->body);
    if (rc != CU_OK)
        return resp->err ? resp->err : rc;
    return cu_req_change(req, mfa_apply, mfa_done, j);
}

static enum cu_err step_up_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct auth_job *j = arg;
    return apply_fail(j, cu_identity_step_up_record(j->req->app->identity, w, db, &j->u.step),
                      "the sign-in could not be completed");
}

static enum cu_err step_up_done(struct cu_req *req, struct cu_resp *resp, void *arg)
{
    struct auth_job *j = arg;
    if (j->u.step.result != CU_OK)
        return auth_fail(resp, j->u.step.result, 0);
    req->principal.session = j->u.step.session;
    return cu_resp_json(resp, 200,
                        json_pack("{s:o}", "session", session_json(&j->u.step.session, NULL)));
}

enum cu_err cu_handle_auth_step_up(struct cu_req *req, struct cu_resp *resp)
{
    static const char *const allowed[] = {"code", "password"};
    struct cu_principal *p = &req->principal;
    struct auth_job *j = auth_job_new(req, resp);
    const char *code = NULL, *pw = NULL;
    struct cu_db *db = NULL;
    enum cu_err rc = j != NULL ? body_of(req, resp, allowed, 2, &j->body) : resp->err;

    if (rc != CU_OK)
        return rc;
    rc = get_string(j->body, resp, "code", false, 64, &code);
    if (rc == CU_OK)
        rc = get_string(j->body, resp, "password", false, CU_PWHASH_MAX_PASSWORD_BYTES, &pw);
    if (rc == CU_OK)
        rc = cu_req_db(req, &db);
    if (rc == CU_OK) {
        struct cu_identity_step_up *op = &j->u.step;
        op->session = p->session;
        op->ctx = (struct cu_auth_ctx){
            .ip = req->kept_ip, .raw_ip = req->remote_ip, .user_agent = safe_user_agent(req)};
        rc = cu_identity_step_up_check(req->app->identity, db, op, pw, pw ? strlen(pw) : 0, code);
        if (rc == CU_E_INVALID)
            rc = cu_resp_fail(resp, rc,
                              p->has_totp ? "this account steps up with a code: give 'code'"
                                          : "this account steps up with its password: give "
                                            "'password'");
        else if (rc != CU_OK)
            rc = auth_fail(resp, rc, 0);
    }
    wipe_body_secrets(req, j->body);
    if (rc != CU_OK)
        return rc;
    return cu_req_change(req, step_up_apply, step_up_done, j);
}

/* Ends one session or all of the signed-in subject's (req->params[0] names one, or NULL). */
static enum cu_err revoke_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct auth_job *j = arg;
    const struct cu_principal *p = &j->req->principal;
    const char *one = j->u.factor.code[0] != '\0' ? j->u.factor.code : NULL;
    enum cu_err rc =
        cu_identity_session_revoke(j->req->app->identity, w, db, p->session.kind, p->id, one);
    if (rc == CU_E_NOT_FOUND && one != NULL && strcmp(one, p->session.id) != 0)
        return cu_resp_fail(j->resp, rc, "no live session of yours has this id");
    return apply_fail(
        j, rc, one != NULL ? "the session could not be ended" : "the sessions could not be ended");
}

static enum cu_err end_sessions(struct cu_req *req, struct cu_resp *resp, const char *session_id)
{
    struct auth_job *j = auth_job_new(req, resp);
    if (j == NULL)
        return resp->err;
    if (session_id != NULL)
        snprintf(j->u.factor.code, sizeof(j->u.factor.code), "%s", session_id);
    return cu_req_change(req, revoke_apply, cu_answer_no_content, j);
}

enum cu_err cu_handle_auth_logout(struct cu_req *req, struct cu_resp *resp)
{
    return end_sessions(req, resp, req->principal.session.id);
}

/* ---- /v1/me ---- */

static json_t *credentials_json(const struct cu_credential_info *c)
{
    char changed[CU_RFC3339_BYTES] = "", locked[CU_RFC3339_BYTES] = "";
    if (c->has_password)
        format_time(c->password_changed_at, changed);
    if (c->locked_until)
        format_time(c->locked_until, locked);
    return json_pack("{s:b, s:s?, s:b, s:i, s:i, s:s?}", "password", c->has_password,
                     "password_changed_at", c->has_password ? changed : NULL, "totp",
                     c->totp_enabled, "recovery_codes_left", c->recovery_codes_left,
                     "failed_sign_ins", (int)c->failures, "locked_until",
                     c->locked_until ? locked : NULL);
}

enum cu_err cu_handle_me(struct cu_req *req, struct cu_resp *resp)
{
    const struct cu_principal *p = &req->principal;
    struct cu_credential_info ci;
    struct cu_db *db = NULL;
    enum cu_err rc = cu_req_db(req, &db);

    if (rc == CU_OK)
        rc = cu_identity_credential_info(req->app->identity, db, p->session.kind, p->id, &ci);
    if (rc != CU_OK)
        return cu_resp_fail(resp, rc, "the account could not be read");
    bool enrol = !p->has_totp &&
                 (p->kind == CU_PRINCIPAL_STAFF || req->app->cfg.identity.customer_mfa_required);
    /* Scopes as everywhere else: an array of names (empty for a customer). */
    return cu_resp_json(resp, 200,
                        json_pack("{s:s, s:s, s:o, s:o, s:o, s:b}", "kind",
                                  cu_subject_kind_name(p->session.kind), "id", p->id, "scopes",
                                  cu_resp_scopes(p->scopes), "session",
                                  session_json(&p->session, p->session.id), "credentials",
                                  credentials_json(&ci), "mfa_enrolment_required", enrol));
}

static enum cu_err password_fail(struct cu_resp *resp, enum cu_err rc, const char *why)
{
    if (rc == CU_E_INVALID || rc == CU_E_TOO_LARGE)
        return cu_resp_fail(resp, CU_E_INVALID, "%s", why);
    if (rc == CU_E_NOT_FOUND)
        return cu_resp_fail(resp, rc, "no active account has this id");
    if (rc == CU_E_UNAVAILABLE)
        return auth_fail(resp, rc, 0);
    return cu_resp_fail(resp, rc, "the password could not be set");
}

/* A password change: a wrong current password is counted toward the lockout (and answered
 * 401); a right one sets the new password, in the same unit of work. */
static enum cu_err change_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct auth_job *j = arg;
    struct cu_identity *idn = j->req->app->identity;
    const struct cu_principal *p = &j->req->principal;
    enum cu_err rc = cu_identity_verify_record(idn, w, db, &j->u.change.verify);
    if (rc == CU_OK && j->u.change.verify.result == CU_OK)
        rc = cu_identity_password_record(idn, w, db, &j->u.change.pw);
    /* a customer's own password changed: an event for monitoring, in the same unit */
    if (rc == CU_OK && j->u.change.verify.result == CU_OK && p->kind == CU_PRINCIPAL_CUSTOMER)
        rc = cu_monitor_note(j->req->app->monitor, w, db, "password_changed", p->id, NULL, 0,
                             &j->memo, NULL, NULL);
    if (rc == CU_E_NOT_FOUND)
        return cu_resp_fail(j->resp, rc, "no active account has this id");
    return apply_fail(j, rc, "the password could not be set");
}

static enum cu_err change_done(struct cu_req *req, struct cu_resp *resp, void *arg)
{
    struct auth_job *j = arg;
    if (j->u.change.verify.result == CU_E_RATE_LIMITED)
        return auth_fail(resp, CU_E_RATE_LIMITED, j->u.change.verify.retry_after_ms);
    if (j->u.change.verify.result != CU_OK)
        return cu_resp_fail(resp, CU_E_BAD_CREDENTIALS, "the current password is not right");
    return cu_answer_no_content(req, resp, arg);
}

enum cu_err cu_handle_me_password(struct cu_req *req, struct cu_resp *resp)
{
    static const char *const allowed[] = {"current_password", "new_password"};
    const struct cu_principal *p = &req->principal;
    struct auth_job *j = auth_job_new(req, resp);
    const char *cur = NULL, *pw = NULL;
    struct cu_db *db = NULL;
    enum cu_err rc = j != NULL ? body_of(req, resp, allowed, 2, &j->body) : resp->err;

    if (rc != CU_OK)
        return rc;
    rc = get_string(j->body, resp, "current_password", true, CU_PWHASH_MAX_PASSWORD_BYTES, &cur);
    if (rc == CU_OK)
        rc = get_string(j->body, resp, "new_password", true, 4096, &pw);
    if (rc == CU_OK)
        rc = cu_req_db(req, &db);
    if (rc == CU_OK) {
        struct cu_identity_verify *v = &j->u.change.verify;
        v->kind = p->session.kind;
        snprintf(v->id, sizeof(v->id), "%s", p->id);
        v->ctx = (struct cu_auth_ctx){
            .ip = req->kept_ip, .raw_ip = req->remote_ip, .user_agent = safe_user_agent(req)};
        j->u.change.pw.kind = p->session.kind;
        snprintf(j->u.change.pw.id, sizeof(j->u.change.pw.id), "%s", p->id);
        /* A wrong current password counts toward the account's lockout. The reads are made
         * first, and the read connection given back before the two hashes. */
        rc = strlen(cur) == 0 ? CU_E_INVALID : cu_identity_verify_read(req->app->identity, db, v);
        if (rc == CU_OK)
            rc = cu_identity_password_read(req->app->identity, db, &j->u.change.pw);
        cu_store_release(req->view);
        req->view = NULL;
        if (rc == CU_OK)
            rc = cu_identity_verify_hash(req->app->identity, v, cur, strlen(cur));
        if (rc == CU_E_NOT_FOUND)
            rc = password_fail(resp, rc, "");
        else if (rc != CU_OK)
            rc = auth_fail(resp, rc, 1000);
    }
    /* The new password is checked and hashed whether or not the current one was right, so
     * the time of the answer does not tell a right guess; a wrong one is answered 401 by the
     * unit whatever the new password was. */
    if (rc == CU_OK) {
        struct cu_identity_password *op = &j->u.change.pw;
        snprintf(op->keep_session, sizeof(op->keep_session), "%s", p->session.id);
        rc = cu_identity_password_prepare(req->app->identity, op, pw, strlen(pw),
                                          op->email[0] ? op->email : NULL, j->why);
        if (rc != CU_OK && !j->u.change.verify.ok)
            rc = CU_OK; /* the unit records the wrong guess and answers 401 */
        else if (rc != CU_OK)
            rc = password_fail(resp, rc, j->why);
    }
    wipe_body_secrets(req, j->body);
    if (rc != CU_OK)
        return rc;
    return cu_req_change(req, change_apply, change_done, j);
}

static enum cu_err begin_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct auth_job *j = arg;
    const struct cu_principal *p = &j->req->principal;
    cu_buf_free(&j->svg);
    cu_buf_init(&j->svg, 64u << 10);
    return apply_fail(j,
                      cu_identity_totp_begin(j->req->app->identity, w, db, p->session.kind, p->id,
                                             j->u.begin.account, j->u.begin.uri,
                                             sizeof(j->u.begin.uri), &j->svg),
                      "enrolment could not be started");
}

static enum cu_err begin_done(struct cu_req *req, struct cu_resp *resp, void *arg)
{
    struct auth_job *j = arg;
    (void)req;
    if (cu_buf_append(&j->svg, "", 1) != CU_OK)
        return cu_resp_fail(resp, CU_E_NOMEM, "enrolment could not be started");
    return cu_resp_json(resp, 200,
                        json_pack("{s:s, s:s, s:s}", "otpauth_uri", j->u.begin.uri, "qr_svg",
                                  j->svg.data, "confirm_with", "POST /v1/me/mfa/totp/confirm"));
}

enum cu_err cu_handle_me_totp_begin(struct cu_req *req, struct cu_resp *resp)
{
    const struct cu_principal *p = &req->principal;
    struct auth_job *j = auth_job_new(req, resp);
    struct cu_db *db = NULL;
    bool active = false;
    enum cu_err rc = j != NULL ? cu_req_db(req, &db) : resp->err;

    /* The account name an authenticator app shows: the e-mail, else the id. */
    if (rc == CU_OK)
        rc = cu_identity_account_name(req->app->identity, db, p->session.kind, p->id,
                                      j->u.begin.account, sizeof(j->u.begin.account), &active);
    if (rc != CU_OK)
        return resp->err ? resp->err : cu_resp_fail(resp, rc, "the account could not be read");
    return cu_req_change(req, begin_apply, begin_done, j);
}

static json_t *codes_json(char codes[CU_RECOVERY_CODES][CU_RECOVERY_CODE_BYTES])
{
    json_t *a = json_array();
    for (size_t i = 0; i < CU_RECOVERY_CODES; i++)
        json_array_append_new(a, json_string(codes[i]));
    cu_crypto_wipe(codes, (size_t)CU_RECOVERY_CODES * CU_RECOVERY_CODE_BYTES);
    return a;
}

static enum cu_err confirm_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct auth_job *j = arg;
    const struct cu_principal *p = &j->req->principal;
    enum cu_err rc = cu_identity_totp_confirm(j->req->app->identity, w, db, p->session.kind, p->id,
                                              j->u.factor.code, p->session.id, j->u.factor.codes);
    if (rc == CU_OK && p->kind == CU_PRINCIPAL_CUSTOMER)
        rc = cu_monitor_note(j->req->app->monitor, w, db, "mfa_changed", p->id, NULL, 0, &j->memo,
                             NULL, NULL);
    if (rc == CU_E_NOT_FOUND)
        return cu_resp_fail(j->resp, rc, "no enrolment is pending: POST /v1/me/mfa/totp first");
    if (rc != CU_OK && rc != CU_E_BUSY)
        return auth_fail(j->resp, rc, 0);
    return rc;
}

static enum cu_err confirm_done(struct cu_req *req, struct cu_resp *resp, void *arg)
{
    struct auth_job *j = arg;
    (void)req;
    return cu_resp_json(resp, 200,
                        json_pack("{s:b, s:o, s:s}", "totp", 1, "recovery_codes",
                                  codes_json(j->u.factor.codes), "note",
                                  "each recovery code works once; they are not shown "
                                  "again"));
}

enum cu_err cu_handle_me_totp_confirm(struct cu_req *req, struct cu_resp *resp)
{
    static const char *const allowed[] = {"code"};
    struct auth_job *j = auth_job_new(req, resp);
    const char *code = NULL;
    enum cu_err rc = j != NULL ? body_of(req, resp, allowed, 1, &j->body) : resp->err;

    if (rc != CU_OK)
        return rc;
    rc = get_string(j->body, resp, "code", true, 64, &code);
    if (rc == CU_OK)
        snprintf(j->u.factor.code, sizeof(j->u.factor.code), "%s", code);
    wipe_body_secrets(req, j->body);
    if (rc != CU_OK)
        return rc;
    return cu_req_change(req, confirm_apply, confirm_done, j);
}

static enum cu_err codes_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct auth_job *j = arg;
    const struct cu_principal *p = &j->req->principal;
    enum cu_err rc = cu_identity_recovery_regenerate(j->req->app->identity, w, db, p->session.kind,
                                                     p->id, j->u.factor.codes);
    if (rc == CU_E_INVALID)
        return cu_resp_fail(j->resp, rc, "recovery codes come with TOTP: enrol it first");
    return apply_fail(j, rc, "the recovery codes could not be made");
}

static enum cu_err codes_done(struct cu_req *req, struct cu_resp *resp, void *arg)
{
    struct auth_job *j = arg;
    (void)req;
    return cu_resp_json(resp, 200,
                        json_pack("{s:o}", "recovery_codes", codes_json(j->u.factor.codes)));
}

enum cu_err cu_handle_me_recovery_codes(struct cu_req *req, struct cu_resp *resp)
{
    struct auth_job *j = auth_job_new(req, resp);
    if (j == NULL)
        return resp->err;
    return cu_req_change(req, codes_apply, codes_done, j);
}

enum cu_err cu_handle_me_sessions(struct cu_req *req, struct cu_resp *resp)
{
    const struct cu_principal *p = &req->principal;
    struct cu_session_info *items = NULL;
    struct cu_db *db = NULL;
    size_t n = 0;
    enum cu_err rc = cu_req_db(req, &db);

    if (rc == CU_OK)
        rc = cu_identity_sessions_list(req->app->identity, db, p->session.kind, p->id, &items, &n);
    if (rc != CU_OK)
        return cu_resp_fail(resp, rc, "the sessions could not be listed");
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, session_json(&items[i], p->session.id));
    cu_free(items);
    return cu_resp_json(resp, 200, json_pack("{s:o}", "items", a));
}

enum cu_err cu_handle_me_sessions_revoke(struct cu_req *req, struct cu_resp *resp)
{
    return end_sessions(req, resp, NULL);
}

enum cu_err cu_handle_me_session_revoke(struct cu_req *req, struct cu_resp *resp)
{
    if (strlen(req->params[0]) != CU_SESSION_ID_BYTES - 1 ||
        strncmp(req->params[0], "ses_", 4) != 0)
        return cu_resp_fail(resp, CU_E_INVALID, "the id must be ses_ and 16 hex digits");
    return end_sessions(req, resp, req->params[0]);
}
