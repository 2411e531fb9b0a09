/*
 * server.c - the HTTPS daemon around libmicrohttpd.
 *
 * Request path: MHD parses with limits (header memory, idle timeout, connection caps); the
 * access handler gathers the body into a capped buffer, then on the last call matches the
 * route, authenticates the bearer key, checks the scope, runs the handler and queues the
 * response with the security headers. The completion callback counts the request in the
 * metrics and writes one access-log line.
 *
 * A response that needs a stand-alone audit record committed first (cu_resp_audit: reads) does
 * not hold its thread while it waits: the connection is suspended, the record goes to the
 * group-commit writer, and the writer's callback resumes the connection once the record is
 * committed or has failed; the next call of the handler then queues the response, or the
 * audit_unavailable problem in its place (fail closed).
 *
 * libmicrohttpd 0.9.75 closes keep-alive connections when a response is queued on the first
 * call for a request, so a normal response is queued on a later call; only a body announced as
 * too large is refused at once, which also closes the connection (the body is never read).
 */
#include "api/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>
#include <pthread.h>

#include "cu_version.h"

#include "api/lane.h"
#include "audit/checkpoint.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/text.h"
#include "crypto/crypto.h"

/* What the server keeps for one request, from the first call of the handler to completion. */
struct request {
    struct cu_req req;
    struct cu_resp resp;
    uint64_t start_ns;
    size_t route_idx;
    bool too_large;
    bool answered;
    size_t sent_bytes;            /* the body's length, once handed to libmicrohttpd */
    size_t discarded;             /* body bytes read and dropped after the cap was passed */
    char allow[64];               /* the Allow header of a 405 */
    const struct cu_route *route; /* set by admit */
    enum cu_err refused;          /* why admit refused it, or CU_OK */
    bool auditing;                /* suspended until resp.audit is committed */
    atomic_bool hashed;           /* the lane ran the handler; the response waits to be queued */
    struct cu_lane_job job;       /* its place on the lane, while there */
    struct cu_audit_event ev;     /* resp.audit's record, while the writer has it */
    atomic_int audit_rc;          /* its outcome, set before the connection is resumed */
};

static const struct cu_route *routes;
static size_t nroutes;

/* ---- connections: the deadlines of a request's head and body ---- */

/* What a connection's deadline is for. */
enum conn_phase {
    PHASE_HEAD = 1, /* the TLS handshake, request line and headers (server.header_timeout) */
    PHASE_BODY,     /* the body (server.body_timeout) */
    PHASE_SERVER,   /* the server is at work or answering: no deadline */
};

/* What the server keeps for one connection (libmicrohttpd's socket context), from its accept
 * to its close. The watchdog shuts a connection down when its deadline passes: the library
 * then reads the end of the stream and closes it, on its own thread. */
struct conn {
    struct conn *prev, *next; /* in the registry, under watch.mu */
    int fd;
    atomic_int phase;         /* enum conn_phase */
    atomic_llong deadline_ms; /* monotonic; 0: none */
    bool shut;                /* the watchdog shut it down (under watch.mu) */
    const char *target_error; /* why the raw request target is refused, or NULL */
};

/* The registry of open connections and the thread that enforces their deadlines. */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct conn *head;
    struct cu_app *app;
    pthread_t thread;
    bool running, stop;
} watch = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, NULL, 0, false, false};

/* How often the watchdog looks at the deadlines. */
#define WATCH_TICK_MS 200

static int64_t mono_ms(void)
{
    return (int64_t)(cu_clock_mono_ns() / 1000000u);
}

static void conn_set(struct conn *k, enum conn_phase phase, int64_t deadline_ms)
{
    if (k == NULL)
        return;
    atomic_store(&k->phase, (int)phase);
    atomic_store(&k->deadline_ms, deadline_ms);
}

static struct conn *conn_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci != NULL ? ci->socket_context : NULL;
}

/* The most connections one tick reports (the rest are shut down too, and counted). */
#define WATCH_REPORT_MAX 32

struct watch_report {
    bool head;
    int64_t late_ms;
};

/* Shuts down, under watch.mu, the connections whose deadline has passed, and notes each in
 * out (up to WATCH_REPORT_MAX); returns how many it shut down. Logging waits until the lock is
 * released: a log write may block, and every accept and close takes watch.mu. */
static size_t enforce_deadlines(int64_t now, struct watch_report *out, size_t *heads)
{
    size_t n = 0;
    *heads = 0;
    for (struct conn *k = watch.head; k != NULL; k = k->next) {
        int64_t d = atomic_load(&k->deadline_ms);
        if (d == 0 || now <= d || k->shut)
            continue;
        /* Read before the shutdown, which wakes the connection's thread to complete it. */
        bool head = atomic_load(&k->phase) == PHASE_HEAD;
        k->shut = true;
        (void)shutdown(k->fd, SHUT_RDWR);
        *heads += head;
        if (n < WATCH_REPORT_MAX)
            out[n] = (struct watch_report){head, now - d};
        n++;
    }
    return n;
}

static void report_deadlines(const struct watch_report *rep, size_t n, size_t heads)
{
    for (size_t i = 0; i < heads; i++)
        cu_metrics_conn_event(watch.app->metrics, CU_CONN_HEADER_DEADLINE);
    for (size_t i = heads; i < n; i++)
        cu_metrics_conn_event(watch.app->metrics, CU_CONN_BODY_DEADLINE);
    for (size_t i = 0; i < n && i < WATCH_REPORT_MAX; i++)
        cu_log(CU_LOG_INFO, "http.deadline_closed", CU_LS("phase", rep[i].head ? "header" : "body"),
               CU_LI("late_ms", rep[i].late_ms));
    if (n > WATCH_REPORT_MAX)
        cu_log(CU_LOG_INFO, "http.deadline_closed_more",
               CU_LI("connections", n - WATCH_REPORT_MAX));
}

static void *watch_main(void *arg)
{
    (void)arg;
    pthread_setname_np(pthread_self(), "cu-deadline");
    pthread_mutex_lock(&watch.mu);
    while (!watch.stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += WATCH_TICK_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&watch.cv, &watch.mu, &ts);
        if (watch.stop)
            break;
        struct watch_report rep[WATCH_REPORT_MAX];
        size_t heads = 0, n = enforce_deadlines(mono_ms(), rep, &heads);
        if (n == 0)
            continue;
        pthread_mutex_unlock(&watch.mu);
        report_deadlines(rep, n, heads);
        pthread_mutex_lock(&watch.mu);
    }
    pthread_mutex_unlock(&watch.mu);
    return NULL;
}

/* Starts the watchdog; false (logged) when its thread cannot start: the server must not then
 * serve, since nothing would enforce the deadlines. */
static bool watch_start(struct cu_app *app)
{
    watch.app = app;
    watch.stop = false;
    watch.running = pthread_create(&watch.thread, NULL, watch_main, NULL) == 0;
    if (!watch.running)
        cu_log_msg(CU_LOG_ERROR, "http.watchdog_not_started");
    return watch.running;
}

static void watch_stop(void)
{
    if (!watch.running)
        return;
    pthread_mutex_lock(&watch.mu);
    watch.stop = true;
    pthread_cond_signal(&watch.cv);
    pthread_mutex_unlock(&watch.mu);
    pthread_join(watch.thread, NULL);
    watch.running = false;
}

/* ---- where handlers read headers and query arguments from ---- */

static const char *mhd_header(void *arg, const char *name)
{
    return MHD_lookup_connection_value(arg, MHD_HEADER_KIND, name);
}

static const char *mhd_query(void *arg, const char *name)
{
    return MHD_lookup_connection_value(arg, MHD_GET_ARGUMENT_KIND, name);
}

struct each_ctx {
    bool (*fn)(void *cls, const char *name, const char *value);
    void *cls;
};

static enum MHD_Result mhd_each_value(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
    struct each_ctx *e = cls;
    (void)kind;
    return e->fn(e->cls, key, value) ? MHD_YES : MHD_NO;
}

static void mhd_each(void *arg, bool query, bool (*fn)(void *, const char *, const char *),
                     void *cls)
{
    struct each_ctx e = {fn, cls};
    MHD_get_connection_values(arg, query ? MHD_GET_ARGUMENT_KIND : MHD_HEADER_KIND, mhd_each_value,
                              &e);
}

static const struct cu_req_source mhd_source = {mhd_header, mhd_query, mhd_each};

static void request_free(struct request *r)
{
    json_decref(r->resp.audit.details);
    free(r->resp.audit.details_text);
    cu_buf_free(&r->req.body);
    cu_buf_free(&r->resp.body);
    cu_free(r);
}

static void remote_ip(struct MHD_Connection *c, char *out, size_t outlen)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    snprintf(out, outlen, "unknown");
    if (ci == NULL || ci->client_addr == NULL)
        return;
    if (ci->client_addr->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)ci->client_addr)->sin_addr,
                  out, (socklen_t)outlen);
    else if (ci->client_addr->sa_family == AF_INET6)
        inet_ntop(AF_INET6,
                  &((const struct sockaddr_in6 *)(const void *)ci->client_addr)->sin6_addr, out,
                  (socklen_t)outlen);
}

/* Request ids: 8 random bytes drawn once per thread, then a per-thread counter, so ids are
 * unique across threads and restarts without a system call per request. */
static void request_id(char out[CU_REQUEST_ID_BYTES])
{
    static _Thread_local uint8_t prefix[8];
    static _Thread_local uint64_t counter;
    uint8_t raw[16];
    if (counter == 0)
        cu_crypto_random(prefix, sizeof(prefix));
    counter++;
    memcpy(raw, prefix, sizeof(prefix));
    for (int i = 0; i < 8; i++)
        raw[8 + i] = (uint8_t)(counter >> (56 - 8 * i));
    cu_hex_encode(raw, sizeof(raw), out);
}

/* Not an enum cu_err: the one refusal that has its own status (431) but the problem type of
 * CU_E_TOO_LARGE. */
#define CU_E_HEADERS_TOO_LARGE ((enum cu_err)(CU_E__COUNT + 1))

/* The smallest connection memory pool: above 32 KiB, libmicrohttpd maps it (start_daemon). */
#define MIN_CONNECTION_POOL ((size_t)36 * 1024)

/* A request read from source (with its argument arg), for method and url. Caller frees with
 * request_free. */
static struct request *request_new(struct cu_app *app, const struct cu_req_source *source,
                                   void *arg, const char *url, const char *method)
{
    struct request *r = cu_calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->start_ns = cu_clock_mono_ns();
    r->route_idx = nroutes;
    r->req.app = app;
    r->req.source = source;
    r->req.source_arg = arg;
    r->req.path = url;
    r->req.method_name = method;
    r->req.method = cu_method_parse(method);
    r->req.content_type = cu_req_header(&r->req, "Content-Type");
    request_id(r->req.id);
    cu_buf_init(&r->req.body, app->cfg.server.max_body_bytes);
    cu_buf_init(&r->resp.body, 16u << 20);
    r->resp.status = 200;
    return r;
}

static enum MHD_Result add_headers(struct MHD_Response *mr, const struct request *r)
{
    static const char *const security[][2] = {
        {"Strict-Transport-Security", "max-age=31536000"},
        {"X-Content-Type-Options", "nosniff"},
        {"X-Frame-Options", "DENY"},
        {"Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"},
        {"Referrer-Policy", "no-referrer"},
        {"Cross-Origin-Resource-Policy", "same-origin"},
        {"Cache-Control", "no-store"},
    };
    enum MHD_Result ok = MHD_YES;
    for (size_t i = 0; i < sizeof(security) / sizeof(security[0]); i++)
        ok &= MHD_add_response_header(mr, security[i][0], security[i][1]);
    ok &= MHD_add_response_header(mr, "X-Request-Id", r->req.id);
    if (r->resp.content_type)
        ok &= MHD_add_response_header(mr, "Content-Type", r->resp.content_type);
    for (size_t i = 0; i < r->resp.nheaders; i++)
        ok &= MHD_add_response_header(mr, r->resp.headers[i][0], r->resp.headers[i][1]);
    return ok ? MHD_YES : MHD_NO;
}

/* A body handed to libmicrohttpd: wiped and freed when the library is done with it, since it
 * may hold personal data (an unmasked customer) or secrets (a new API key). */
struct sent_body {
    char *data;
    size_t size;
};

static void sent_body_free(void *cls)
{
    struct sent_body *s = cls;
    if (s->data != NULL)
        explicit_bzero(s->data, s->size);
    cu_free(s->data);
    cu_free(s);
}

/* The response for r's body, which it takes over (no copy). */
static struct MHD_Response *response_of(struct request *r)
{
    struct sent_body *s;
    struct MHD_Response *mr;
    if (r->resp.fallback != NULL) {
        r->sent_bytes = strlen(r->resp.fallback);
        return MHD_create_response_from_buffer(r->sent_bytes, (void *)r->resp.fallback,
                                               MHD_RESPMEM_PERSISTENT);
    }
    s = cu_calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    r->sent_bytes = r->resp.body.len;
    s->size = r->resp.body.len;
    s->data = cu_buf_steal(&r->resp.body);
    mr = MHD_create_response_from_buffer_with_free_callback_cls(
        s->size, s->data ? s->data : (void *)"", sent_body_free, s);
    if (mr == NULL)
        sent_body_free(s);
    return mr;
}

static enum MHD_Result queue(struct MHD_Connection *c, struct request *r)
{
    struct MHD_Response *mr = response_of(r);
    enum MHD_Result ret;
    if (mr == NULL)
        return MHD_NO;
    ret = add_headers(mr, r);
    if (ret == MHD_YES)
        ret = MHD_queue_response(c, (unsigned)r->resp.status, mr);
    MHD_destroy_response(mr);
    r->answered = true;
    return ret;
}

static void fill_event(const struct cu_req *req, struct cu_audit_event *ev, const char *action,
                       const char *target, const char *outcome, const json_t *details)
{
    static const char *const kinds[] = {
        [CU_PRINCIPAL_NONE] = "anonymous",
        [CU_PRINCIPAL_APIKEY] = "apikey",
        [CU_PRINCIPAL_STAFF] = "staff",
        [CU_PRINCIPAL_CUSTOMER] = "customer",
    };
    ev->actor_type = kinds[req->principal.kind];
    ev->actor_id = req->principal.kind == CU_PRINCIPAL_NONE ? "" : req->principal.id;
    ev->action = action;
    ev->target = target;
    ev->outcome = outcome;
    ev->request_id = req->id;
    ev->source_ip = req->remote_ip;
    ev->details = details;
    ev->details_text = NULL;
}

static enum cu_err audit_result(struct cu_app *app, enum cu_err rc, const char *action)
{
    if (rc == CU_OK) {
        atomic_store(&app->audit_failing, false);
        return CU_OK;
    }
    /* A record the audit log refused (a field over its limit) is a bug in the caller, not a
     * log that cannot be written: it fails the request but does not fail health. */
    if (rc != CU_E_INVALID && rc != CU_E_TOO_LARGE)
        atomic_store(&app->audit_failing, true);
    cu_log(CU_LOG_ERROR, "audit.unavailable", CU_LS("action", action),
           CU_LS("error", cu_err_str(rc)));
    return CU_E_AUDIT;
}

enum cu_err cu_app_audit(struct cu_req *req, struct cu_db *db, const char *action,
                         const char *target, const char *outcome, json_t *details)
{
    struct cu_audit_event ev;
    fill_event(req, &ev, action, target, outcome, details);
    enum cu_err rc = cu_audit_append(req->app->audit, db, &ev, NULL);
    json_decref(details);
    return audit_result(req->app, rc, action);
}

/* Commits a stand-alone record through the group-commit writer and waits for it, or in a
 * transaction of its own when there is no writer or it has stopped (the end of a shutdown). */
static enum cu_err commit_alone(struct cu_app *app, const struct cu_audit_event *ev)
{
    enum cu_err rc = CU_E_UNAVAILABLE;
    if (app->batcher != NULL)
        rc = cu_audit_batcher_append(app->batcher, ev);
    if (rc == CU_E_UNAVAILABLE)
        rc = cu_audit_record_event(app->audit, app->store, ev);
    return rc;
}

void cu_app_kept_ip(const struct cu_app *app, const char *ip, char out[64])
{
    char h[CU_AUDIT_HASHED_BYTES];
    out[0] = '\0';
    if (ip == NULL || ip[0] == '\0')
        return;
    if (!app->cfg.audit.hash_source_ip) {
        snprintf(out, 64, "%s", ip);
        return;
    }
    if (cu_audit_hash_value(app->audit, "ip", ip, h) == CU_OK)
        snprintf(out, 64, "%s", h);
}

static enum cu_err identity_audit(void *arg, struct cu_db *db, const char *action,
                                  const char *target, const char *outcome, json_t *details)
{
    return cu_app_audit(arg, db, action, target, outcome, details);
}

struct cu_identity_audit cu_app_identity_audit(struct cu_req *req)
{
    struct cu_identity_audit a = {identity_audit, req, req->app->audit};
    return a;
}

enum cu_err cu_app_audit_alone(struct cu_req *req, const char *action, const char *target,
                               const char *outcome, json_t *details)
{
    struct cu_audit_event ev;
    fill_event(req, &ev, action, target, outcome, details);
    enum cu_err rc = commit_alone(req->app, &ev);
    json_decref(details);
    return audit_result(req->app, rc, action);
}

/* Audits a refused request. The refusal stands whatever happens to its record: if the audit
 * log cannot be written, health says so and the log has the error. */
static void audit_refusal(struct cu_req *req, const char *action, const char *target,
                          const char *outcome, json_t *details)
{
    if (cu_app_audit_alone(req, action, target, outcome, details) != CU_OK)
        return;
}

/* A failed authentication: audited (the answer stays 401 even if the audit log is down;
 * health says so), unless the client has failed too often this minute, when it is answered
 * 429 and counted for the summary its next audited failure carries. */
static enum cu_err auth_failed_as(struct request *r, const char *method, bool counted,
                                  const char *reason, const char *detail)
{
    uint64_t held = 0;
    struct cu_app *app = r->req.app;
    if (counted && cu_limiter_fail(app->auth_limiter, r->req.remote_ip, cu_clock_now_ms(), &held) ==
                       CU_LIMIT_SUPPRESS) {
        cu_resp_header(&r->resp, "Retry-After", "60");
        return cu_resp_fail(&r->resp, CU_E_RATE_LIMITED,
                            "too many failed authentications from this address; retry later");
    }
    audit_refusal(&r->req, "auth.failed", "", "failure",
                  json_pack("{s:s, s:s, s:I}", "method", method, "reason", reason,
                            "held_back_before", (json_int_t)held));
    return cu_resp_fail(&r->resp, CU_E_UNAUTHENTICATED, "%s", detail);
}

static enum cu_err auth_failed(struct request *r, const char *reason, const char *detail)
{
    return auth_failed_as(r, "apikey", true, reason, detail);
}

static enum cu_err auth_apikey(struct request *r, const char *token)
{
    struct cu_principal *p = &r->req.principal;
    struct cu_db *db = NULL;
    enum cu_err rc = cu_store_db(r->req.app->store, &db);

    if (rc == CU_OK)
        rc = cu_apikey_authenticate(r->req.app->apikeys, db, token, strlen(token), &p->key);
    if (rc == CU_E_UNAUTHENTICATED)
        return auth_failed(r, "unknown, revoked or expired key",
                           "the API key is unknown, revoked or expired");
    if (rc != CU_OK)
        return cu_resp_fail(&r->resp, rc, "the credential could not be checked");
    p->kind = CU_PRINCIPAL_APIKEY;
    snprintf(p->id, sizeof(p->id), "%s", p->key.id);
    p->scopes = p->key.scopes;
    return CU_OK;
}

static enum cu_err auth_session(struct request *r, const char *token)
{
    struct cu_app *app = r->req.app;
    struct cu_principal *p = &r->req.principal;
    bool active = false;
    enum cu_err rc =
        cu_identity_session_check(app->identity, app->store, token, strlen(token), &p->session);

    if (rc == CU_OK)
        rc = cu_identity_subject_state(app->identity, app->store, p->session.kind,
                                       p->session.subject_id, &p->scopes, &active, &p->has_totp);
    if (rc == CU_OK && !active)
        rc = CU_E_UNAUTHENTICATED;
    /* A session that ended (expired, revoked, its account gone) is what a company's app
     * server sends for many customers from one address: it is not counted against the
     * address, as unknown and malformed tokens are. */
    if (rc == CU_E_UNAUTHENTICATED || rc == CU_E_NOT_FOUND)
        return auth_failed_as(r, "session", p->session.id[0] == '\0',
                              p->session.id[0] ? "session ended" : "unknown session",
                              "the session is unknown, expired or revoked; sign in again");
    if (rc != CU_OK)
        return cu_resp_fail(&r->resp, rc, "the credential could not be checked");
    p->kind = p->session.kind == CU_SUBJECT_STAFF ? CU_PRINCIPAL_STAFF : CU_PRINCIPAL_CUSTOMER;
    snprintf(p->id, sizeof(p->id), "%s", p->session.subject_id);
    return CU_OK;
}

static enum cu_err deny(struct request *r, const struct cu_route *route, const char *reason)
{
    audit_refusal(&r->req, "access.denied", route->pattern, "denied",
                  json_pack("{s:s, s:s}", "method", r->req.method_name, "reason", reason));
    return cu_resp_fail(&r->resp, CU_E_FORBIDDEN, "%s", reason);
}

/* Whether the authenticated principal may use the route: the kind of principal, a second
 * factor where one is due, a recent sign-in where the route demands one, and the scope. */
static enum cu_err authorize(struct request *r, const struct cu_route *route)
{
    struct cu_app *app = r->req.app;
    const struct cu_principal *p = &r->req.principal;
    bool session = p->kind == CU_PRINCIPAL_STAFF || p->kind == CU_PRINCIPAL_CUSTOMER;

    if ((route->flags & CU_ROUTE_SESSION) && !session)
        return deny(r, route, "this route is for a signed-in customer or staff member");
    if (route->scope != 0 && p->kind == CU_PRINCIPAL_CUSTOMER)
        return deny(r, route, "this route is not open to customers");
    if (session && !p->has_totp && !(route->flags & CU_ROUTE_ENROL) &&
        (p->kind == CU_PRINCIPAL_STAFF || app->cfg.identity.customer_mfa_required))
        return cu_resp_fail(&r->resp, CU_E_MFA_ENROL,
                            "enrol a second factor first: POST /v1/me/mfa/totp");
    if (session && route->scope != 0 && p->session.aal != CU_AAL2)
        return cu_resp_fail(&r->resp, CU_E_STEP_UP,
                            "this route needs a session signed in with a second factor: "
                            "POST /v1/auth/step-up");
    if (session && (route->flags & CU_ROUTE_FRESH) &&
        !cu_identity_session_fresh(app->identity, &p->session, p->has_totp, cu_clock_now_ms()))
        return cu_resp_fail(&r->resp, CU_E_STEP_UP,
                            "this operation needs a recent sign-in: POST /v1/auth/step-up");
    if (route->scope != 0 && (p->scopes & route->scope) != route->scope) {
        audit_refusal(&r->req, "access.denied", route->pattern, "denied",
                      json_pack("{s:s, s:s}", "method", r->req.method_name, "scope",
                                cu_apikey_scope_name(route->scope)));
        return cu_resp_fail(&r->resp, CU_E_FORBIDDEN, "the %s lacks the scope %s",
                            p->kind == CU_PRINCIPAL_APIKEY ? "API key" : "staff member",
                            cu_apikey_scope_name(route->scope));
    }
    return CU_OK;
}

/* Reads "Bearer <token>": an API key or a session token; fills the principal and checks it
 * may use the route, or fails the response. */
static enum cu_err authenticate(struct request *r, const struct cu_route *route)
{
    const char *h = cu_req_header(&r->req, "Authorization");
    enum cu_err rc;

    cu_resp_header(&r->resp, "WWW-Authenticate", "Bearer realm=\"custodia\"");
    if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
        return auth_failed(r, h == NULL ? "no credential" : "not a bearer token",
                           "this route needs a credential: Authorization: Bearer <API key or "
                           "session token>");
    rc = strncmp(h + 7, "css_", 4) == 0 ? auth_session(r, h + 7) : auth_apikey(r, h + 7);
    if (rc != CU_OK)
        return rc;
    r->resp.nheaders = 0;
    return authorize(r, route);
}

/* Routes and authenticates a request as soon as its headers are in, before any body is
 * read: CU_OK and r->route set, or an error with the problem prepared in r->resp. */
static enum cu_err admit(struct request *r)
{
    unsigned allowed = 0;
    enum cu_method m = r->req.method == CU_HEAD ? CU_GET : r->req.method;
    const struct cu_route *route =
        cu_route_match(routes, nroutes, m, r->req.path, &r->req, &allowed);

    if (route == NULL && allowed == 0)
        return cu_resp_fail(&r->resp, CU_E_NOT_FOUND, "no route for %s", r->req.path);
    if (route == NULL) {
        cu_methods_format(allowed, r->allow, sizeof(r->allow));
        cu_resp_header(&r->resp, "Allow", r->allow);
        return cu_resp_fail(&r->resp, CU_E_METHOD, "%s is not allowed here; allowed: %s",
                            r->req.method_name, r->allow);
    }
    r->route = route;
    r->route_idx = (size_t)(route - routes);
    return route->scope != 0 || (route->flags & CU_ROUTE_SESSION) ? authenticate(r, route) : CU_OK;
}

/* The group-commit writer's callback for resp.audit: keeps the outcome and resumes the
 * connection, whose thread may then answer and free r at once. */
static void audit_committed(void *arg, enum cu_err rc)
{
    struct request *r = arg;
    atomic_store(&r->audit_rc, (int)rc);
    MHD_resume_connection(r->req.conn);
}

/* Hands resp.audit's record to the writer, the connection being suspended (audit_committed
 * resumes it). When the writer has stopped (shutdown) the record is written here. */
static void submit_audit(struct request *r)
{
    struct cu_app *app = r->req.app;
    const struct cu_pending_audit *a = &r->resp.audit;
    enum cu_err rc = CU_E_UNAVAILABLE;

    fill_event(&r->req, &r->ev, a->action, a->target, a->outcome, a->details);
    r->ev.details_text = a->details_text;
    r->auditing = true;
    if (app->batcher != NULL)
        rc = cu_audit_batcher_submit(app->batcher, &r->ev, audit_committed, r);
    if (rc != CU_OK)
        audit_committed(r, rc == CU_E_UNAVAILABLE ? commit_alone(app, &r->ev) : rc);
}

/* Suspends the connection until resp.audit is committed (audit_committed resumes it). The
 * connection is suspended before the record is handed over, so that the callback can never
 * resume it first. When the writer has stopped (shutdown) the record is written here. */
static enum MHD_Result audit_first(struct MHD_Connection *c, struct request *r)
{
    r->auditing = true;
    MHD_suspend_connection(c);
    submit_audit(r);
    return MHD_YES;
}

static void fail(struct request *r, enum cu_err rc)
{
    if (r->resp.err == CU_OK)
        r->resp.err = rc;
    if (rc == CU_E_NOMEM || rc == CU_E_STORE || rc == CU_E_INTERNAL)
        cu_log(CU_LOG_ERROR, "request.failed", CU_LS("request_id", r->req.id),
               CU_LS("error", cu_err_str(rc)));
    cu_problem_render(&r->resp, &r->req);
}

/* Runs the handler of an admitted request (or renders the refusal admit prepared). */
static void dispatch(struct request *r)
{
    enum cu_err rc = r->refused;
    if (rc == CU_OK)
        rc = r->route->handler(&r->req, &r->resp);
    if (rc != CU_OK)
        fail(r, rc);
}

/* A request that hashes a password, on a lane thread: runs its handler (or, when it waited in
 * the queue past identity.password_hash_wait_ms, refuses it as a busy hasher would), then has
 * its audit record committed or its connection resumed to answer. */
static void hash_job(void *arg, bool expired)
{
    struct request *r = arg;
    if (expired) {
        cu_resp_header(&r->resp, "Retry-After", "1");
        fail(r, cu_resp_fail(&r->resp, CU_E_UNAVAILABLE,
                             "too many password hashes at once; retry shortly"));
    } else {
        dispatch(r);
    }
    if (r->resp.audit.action != NULL && r->resp.err == CU_OK) {
        submit_audit(r);
        return;
    }
    atomic_store(&r->hashed, true);
    MHD_resume_connection(r->req.conn);
}

/* Suspends the connection and hands the request to the lane, so that its hash holds no request
 * thread; on a lane that is stopping, runs it here. */
static enum MHD_Result to_lane(struct MHD_Connection *c, struct request *r)
{
    MHD_suspend_connection(c);
    if (cu_lane_submit(r->req.app->lane, &r->job, hash_job, r) != CU_OK)
        hash_job(r, false);
    return MHD_YES;
}

/* Answers a request resumed after its audit record was committed or failed: the response the
 * handler prepared, or, when the record could not be written, the audit_unavailable problem
 * in its place (rendering it wipes the prepared body; the handler's headers go too). */
static void settle_audit(struct request *r, enum cu_err rc)
{
    r->auditing = false;
    rc = audit_result(r->req.app, rc, r->resp.audit.action);
    if (rc != CU_OK) {
        r->resp.nheaders = 0;
        fail(r, cu_resp_fail(&r->resp, rc, "the request could not be audited"));
    }
}

static enum MHD_Result answer_audited(struct MHD_Connection *c, struct request *r)
{
    settle_audit(r, (enum cu_err)atomic_load(&r->audit_rc));
    return queue(c, r);
}

/* ---- the request head: what libmicrohttpd lets through and a careful server refuses ---- */

/* The most query arguments a request may carry. */
#define QUERY_ARGS_MAX 32

/* What one pass over a request's headers found. */
struct head_survey {
    size_t total;            /* bytes of names and values, plus 4 a header */
    unsigned content_length; /* how many of each header that must not repeat */
    unsigned transfer_encoding;
    unsigned host;
    unsigned authorization;
    unsigned content_type;
    unsigned connection;
    bool bad_name;  /* a name that is not an RFC 9110 token (a space before ':') */
    bool folded;    /* a framing header's name with more after it: a folded line */
    bool bad_value; /* a value holding a control byte other than a tab */
};

static bool is_token_char(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

static bool survey_header(void *cls, const char *key, const char *value)
{
    static const struct {
        const char *name;
        size_t off;
    } unique[] = {
        {"Content-Length", offsetof(struct head_survey, content_length)},
        {"Transfer-Encoding", offsetof(struct head_survey, transfer_encoding)},
        {"Host", offsetof(struct head_survey, host)},
        {"Authorization", offsetof(struct head_survey, authorization)},
        {"Content-Type", offsetof(struct head_survey, content_type)},
        {"Connection", offsetof(struct head_survey, connection)},
    };
    struct head_survey *h = cls;
    h->total += strlen(key) + (value ? strlen(value) : 0) + 4;
    if (key[0] == '\0')
        h->bad_name = true;
    for (const unsigned char *p = (const unsigned char *)key; *p != '\0'; p++)
        h->bad_name |= !is_token_char(*p);
    for (const unsigned char *p = (const unsigned char *)value; p != NULL && *p != '\0'; p++)
        h->bad_value |= (*p < 0x20 && *p != '\t') || *p == 0x7f;
    /* libmicrohttpd 0.9.75 appends a folded line (obs-fold) to the header's name, not its
     * value: "Transfer-Encoding:\r\n chunked" arrives as a header "Transfer-Encodingchunked",
     * and the framing it carried is silently lost. */
    for (size_t i = 0; i < sizeof(unique) / sizeof(unique[0]); i++) {
        size_t n = strlen(unique[i].name);
        if (strcasecmp(key, unique[i].name) == 0)
            (*(unsigned *)(void *)((char *)h + unique[i].off))++;
        else if (strncasecmp(key, unique[i].name, n) == 0)
            h->folded = true;
    }
    return true;
}

/* The query arguments' names, to find one that repeats. */
struct query_survey {
    const char *names[QUERY_ARGS_MAX];
    size_t n;
    bool too_many;
    const char *repeated; /* the first name seen twice */
};

static bool survey_query(void *cls, const char *key, const char *value)
{
    struct query_survey *q = cls;
    (void)value;
    /* libmicrohttpd looks names up ignoring case: LIMIT and limit are one argument. */
    for (size_t i = 0; i < q->n && q->repeated == NULL; i++) {
        if (strcasecmp(q->names[i], key) == 0)
            q->repeated = q->names[i];
    }
    if (q->n == QUERY_ARGS_MAX) {
        q->too_many = true;
        return false;
    }
    q->names[q->n++] = key;
    return true;
}

/* Why a raw request target (as sent, before percent-decoding) is refused, or NULL: a byte
 * that is not visible ASCII, a '%' not followed by two hex digits, one that encodes a control
 * byte (libmicrohttpd decodes %00 into a NUL that cuts the path short), or an encoded slash or
 * backslash in the path. */
static const char *target_error(const char *t)
{
    bool in_path = true;
    for (const unsigned char *p = (const unsigned char *)t; *p != '\0'; p++) {
        in_path &= *p != '?';
        if (*p <= 0x20 || *p >= 0x7f)
            return "the request target holds a byte that is not visible ASCII";
        if (*p != '%')
            continue;
        int hi = cu_hex_digit((char)p[1]), lo = hi < 0 ? -1 : cu_hex_digit((char)p[2]);
        if (hi < 0 || lo < 0)
            return "the request target holds a '%' that is not followed by two hex digits";
        if (hi * 16 + lo < 0x20 || hi * 16 + lo == 0x7f)
            return "the request target encodes a control byte";
        /* Decoded before routing, %2F would add a path segment a front end never saw. */
        if (in_path && (hi * 16 + lo == '/' || hi * 16 + lo == '\\'))
            return "the request path encodes a slash or a backslash";
        p += 2;
    }
    return NULL;
}

/* Whether the request head is one a careful server answers: CU_OK, or CU_E_HEADERS_TOO_LARGE,
 * or CU_E_INVALID with the detail set in r->resp. Refused: a target with a control byte, a
 * header name that is not a token, a framing header folded over two lines, a control byte in
 * a header value, a repeated Content-Length, Transfer-Encoding, Host, Authorization,
 * Content-Type or Connection, Content-Length together with Transfer-Encoding (RFC 9112
 * section 6.1: the framing is ambiguous, a smuggling risk behind a proxy), a transfer coding
 * other than chunked, Transfer-Encoding outside HTTP/1.1, an HTTP/1.1 request without Host,
 * and a query argument repeated (names compared ignoring case, as libmicrohttpd looks them
 * up). */
static enum cu_err head_error(struct request *r, const char *target_err, const char *version)
{
    const struct cu_req_source *src = r->req.source;
    struct head_survey h = {0};
    struct query_survey q = {.n = 0};
    const char *te;

    src->each(r->req.source_arg, false, survey_header, &h);
    if (h.total > r->req.app->cfg.server.max_header_bytes)
        return CU_E_HEADERS_TOO_LARGE;
    if (target_err != NULL)
        return cu_resp_fail(&r->resp, CU_E_INVALID, "%s", target_err);
    if (h.bad_name)
        return cu_resp_fail(&r->resp, CU_E_INVALID,
                            "a header name is not a token (no spaces before the colon)");
    if (h.folded)
        return cu_resp_fail(&r->resp, CU_E_INVALID,
                            "a framing header is folded over two lines (obs-fold)");
    if (h.bad_value)
        return cu_resp_fail(&r->resp, CU_E_INVALID, "a header value holds a control byte");
    if (h.content_length > 1 || h.transfer_encoding > 1 || h.host > 1 || h.authorization > 1 ||
        h.content_type > 1 || h.connection > 1)
        return cu_resp_fail(&r->resp, CU_E_INVALID,
                            "Content-Length, Transfer-Encoding, Host, Authorization, "
                            "Content-Type and Connection may each appear once");
    if (h.content_length > 0 && h.transfer_encoding > 0)
        return cu_resp_fail(&r->resp, CU_E_INVALID,
                            "a request must not carry both Content-Length and Transfer-Encoding");
    te = cu_req_header(&r->req, "Transfer-Encoding");
    if (te != NULL && strcasecmp(te, "chunked") != 0)
        return cu_resp_fail(&r->resp, CU_E_INVALID, "the only transfer coding taken is chunked");
    if (te != NULL && strcmp(version, MHD_HTTP_VERSION_1_1) != 0)
        return cu_resp_fail(&r->resp, CU_E_INVALID,
                            "Transfer-Encoding is for HTTP/1.1 only (RFC 9112 section 6.1)");
    if (h.host == 0 && strcmp(version, MHD_HTTP_VERSION_1_0) != 0)
        return cu_resp_fail(&r->resp, CU_E_INVALID, "an HTTP/1.1 request needs a Host header");
    src->each(r->req.source_arg, true, survey_query, &q);
    if (q.too_many)
        return cu_resp_fail(&r->resp, CU_E_INVALID, "more than %d query arguments", QUERY_ARGS_MAX);
    if (q.repeated != NULL)
        return cu_resp_fail(&r->resp, CU_E_INVALID, "the query argument '%.64s' is repeated",
                            q.repeated);
    return CU_OK;
}

/* Prepares the problem for a request refused before its body is read; the connection closes. */
static void render_refusal(struct request *r, enum cu_err rc)
{
    if (rc == CU_E_HEADERS_TOO_LARGE) {
        cu_resp_fail(&r->resp, CU_E_TOO_LARGE,
                     "the request headers are larger than the limit "
                     "of %zu bytes",
                     r->req.app->cfg.server.max_header_bytes);
        cu_problem_render(&r->resp, &r->req);
        r->resp.status = MHD_HTTP_REQUEST_HEADER_FIELDS_TOO_LARGE;
    } else {
        fail(r, rc);
    }
    cu_resp_header(&r->resp, "Connection", "close");
}

/* Answers at once, on the first call, with the problem for rc; the connection closes. */
static enum MHD_Result refuse_now(struct MHD_Connection *c, struct request *r, enum cu_err rc)
{
    render_refusal(r, rc);
    return queue(c, r);
}

static void render_too_large(struct request *r)
{
    r->too_large = true;
    cu_resp_fail(&r->resp, CU_E_TOO_LARGE, "the body is larger than the limit of %zu bytes",
                 r->req.body.max);
    cu_problem_render(&r->resp, &r->req);
    cu_resp_header(&r->resp, "Connection", "close");
}

static enum MHD_Result refuse_too_large(struct MHD_Connection *c, struct request *r)
{
    render_too_large(r);
    return queue(c, r);
}

/* Gathers body bytes. A body without a declared length that outgrows the cap is drained
 * (libmicrohttpd cannot answer in the middle of an upload) and refused with 413 at its end;
 * one that goes on past eight times the cap has the connection closed instead. */
static enum MHD_Result take_body(struct request *r, const char *data, size_t *size)
{
    size_t n = *size;
    *size = 0;
    if (r->too_large) {
        r->discarded += n;
        return r->discarded / 8 > r->req.body.max ? MHD_NO : MHD_YES;
    }
    enum cu_err rc = cu_buf_append(&r->req.body, data, n);
    if (rc == CU_E_TOO_LARGE) {
        r->too_large = true;
        r->discarded = r->req.body.len + n;
        cu_buf_free(&r->req.body);
        return MHD_YES;
    }
    return rc == CU_OK ? MHD_YES : MHD_NO;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **con_cls)
{
    struct cu_app *app = cls;
    struct request *r = *con_cls;

    if (r == NULL) {
        struct conn *k = conn_of(c);
        r = request_new(app, &mhd_source, c, url, method);
        if (r == NULL)
            return MHD_NO;
        r->req.conn = c;
        remote_ip(c, r->req.remote_ip, sizeof(r->req.remote_ip));
        cu_app_kept_ip(app, r->req.remote_ip, r->req.kept_ip);
        *con_cls = r;
        atomic_fetch_add(&app->inflight, 1);
        const char *cl = cu_req_header(&r->req, "Content-Length");
        bool body = (cl != NULL && strcmp(cl, "0") != 0) ||
                    cu_req_header(&r->req, "Transfer-Encoding") != NULL;
        conn_set(k, body ? PHASE_BODY : PHASE_SERVER,
                 body ? mono_ms() + 1000LL * app->cfg.server.body_timeout : 0);
        /* Without its context the connection has no deadlines and its target was not checked:
         * refused rather than served unchecked. */
        enum cu_err bad = k == NULL ? cu_resp_fail(&r->resp, CU_E_UNAVAILABLE,
                                                   "the server is short of memory; retry")
                                    : head_error(r, k->target_error, version);
        if (bad != CU_OK)
            return refuse_now(c, r, bad);
        r->refused = admit(r);
        /* A refused request with a body is answered now, so its body is never read (the
         * connection then closes); one without waits, to keep the connection alive. */
        if (r->refused != CU_OK && body)
            return refuse_now(c, r, r->refused);
        if (cl != NULL) {
            char *end = NULL;
            errno = 0;
            unsigned long long n = strtoull(cl, &end, 10);
            if (errno != 0 || end == cl || *end != '\0' || n > r->req.body.max)
                return refuse_too_large(c, r);
        }
        return MHD_YES;
    }
    if (r->answered) {
        *upload_size = 0;
        return MHD_YES;
    }
    if (r->auditing)
        return answer_audited(c, r);
    if (atomic_load(&r->hashed)) {
        atomic_store(&r->hashed, false);
        return queue(c, r);
    }
    if (*upload_size != 0)
        return take_body(r, upload_data, upload_size);
    conn_set(conn_of(c), PHASE_SERVER, 0);
    if (r->too_large)
        return refuse_too_large(c, r);
    if (r->refused == CU_OK && (r->route->flags & CU_ROUTE_HASH) && r->req.app->lane != NULL)
        return to_lane(c, r);
    dispatch(r);
    if (r->resp.audit.action != NULL && r->resp.err == CU_OK)
        return audit_first(c, r);
    return queue(c, r);
}

/* The request path of cu_server_serve once the head is accepted: the body, the handler (a
 * password hash too, on this thread) and the commit of its stand-alone audit record. */
static void serve_admitted(struct request *r, const struct cu_server_input *in)
{
    struct cu_app *app = r->req.app;
    if (in->body_len > r->req.body.max ||
        (in->body_len > 0 && r->refused == CU_OK &&
         cu_buf_append(&r->req.body, in->body, in->body_len) != CU_OK)) {
        render_too_large(r);
        return;
    }
    dispatch(r);
    if (r->resp.audit.action == NULL || r->resp.err != CU_OK)
        return;
    fill_event(&r->req, &r->ev, r->resp.audit.action, r->resp.audit.target, r->resp.audit.outcome,
               r->resp.audit.details);
    r->ev.details_text = r->resp.audit.details_text;
    settle_audit(r, commit_alone(app, &r->ev));
}

enum cu_err cu_server_serve(struct cu_app *app, const struct cu_server_input *in, int *status,
                            struct cu_buf *out)
{
    struct request *r;
    enum cu_err rc;

    if (routes == NULL)
        routes = cu_routes(&nroutes);
    r = request_new(app, in->source, in->source_arg, in->path, in->method);
    if (r == NULL)
        return CU_E_NOMEM;
    snprintf(r->req.remote_ip, sizeof(r->req.remote_ip), "%s",
             in->remote_ip != NULL ? in->remote_ip : "127.0.0.1");
    cu_app_kept_ip(app, r->req.remote_ip, r->req.kept_ip);
    rc = head_error(r, target_error(in->target), in->version);
    if (rc != CU_OK) {
        render_refusal(r, rc);
    } else {
        r->refused = admit(r);
        if (r->refused != CU_OK && in->body_len > 0)
            render_refusal(r, r->refused);
        else
            serve_admitted(r, in);
    }
    *status = r->resp.status;
    rc = CU_OK;
    if (r->resp.fallback != NULL)
        rc = cu_buf_append_str(out, r->resp.fallback);
    else if (r->resp.body.len > 0)
        rc = cu_buf_append(out, r->resp.body.data, r->resp.body.len);
    request_free(r);
    return rc;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct cu_app *app = cls;
    struct request *r = *con_cls;
    /* The connection may carry a next request: its line must come within the idle timeout,
     * and its headers within the header timeout after that (uri_seen). */
    conn_set(conn_of(c), PHASE_HEAD,
             mono_ms() + 1000LL * (app->cfg.server.idle_timeout + app->cfg.server.header_timeout));
    if (r == NULL)
        return;
    uint64_t ns = cu_clock_mono_ns() - r->start_ns;
    int status = r->answered ? r->resp.status : 0;
    cu_metrics_observe(app->metrics, r->route_idx, status, ns);
    if (app->cfg.server.access_log)
        cu_log(CU_LOG_INFO, "http.request", CU_LS("request_id", r->req.id),
               CU_LS("method", r->req.method_name), CU_LS("path", r->req.path),
               CU_LI("status", status), CU_LI("duration_us", ns / 1000),
               CU_LI("bytes", r->answered ? r->sent_bytes : 0), CU_LS("remote_ip", r->req.kept_ip),
               CU_LS("principal",
                     r->req.principal.kind != CU_PRINCIPAL_NONE ? r->req.principal.id : NULL),
               CU_LB("completed", toe == MHD_REQUEST_TERMINATED_COMPLETED_OK));
    request_free(r);
    *con_cls = NULL;
    atomic_fetch_sub(&app->inflight, 1);
}

/* A connection opens (its context joins the registry, with the deadline of its handshake and
 * first request head) or closes (it leaves it, before libmicrohttpd closes its socket). */
static void on_connection(void *cls, struct MHD_Connection *c, void **socket_ctx,
                          enum MHD_ConnectionNotificationCode toe)
{
    struct cu_app *app = cls;
    struct conn *k = *socket_ctx;
    if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        if (k == NULL)
            return;
        pthread_mutex_lock(&watch.mu);
        if (k->prev != NULL)
            k->prev->next = k->next;
        else
            watch.head = k->next;
        if (k->next != NULL)
            k->next->prev = k->prev;
        pthread_mutex_unlock(&watch.mu);
        cu_free(k);
        *socket_ctx = NULL;
        return;
    }
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    int one = 1;
    if (ci == NULL)
        return;
    (void)setsockopt(ci->connect_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    k = cu_calloc(1, sizeof(*k));
    if (k == NULL) {
        cu_log_msg(CU_LOG_WARN, "http.connection_untimed");
        return;
    }
    k->fd = ci->connect_fd;
    conn_set(k, PHASE_HEAD, mono_ms() + 1000LL * app->cfg.server.header_timeout);
    pthread_mutex_lock(&watch.mu);
    k->next = watch.head;
    if (watch.head != NULL)
        watch.head->prev = k;
    watch.head = k;
    pthread_mutex_unlock(&watch.mu);
    *socket_ctx = k;
}

/* A request line has arrived (its headers have not): its raw target is checked, since the
 * handler only sees it percent-decoded, and the head must be complete within the header
 * timeout. Returns the request's initial context: none. */
static void *uri_seen(void *cls, const char *uri, struct MHD_Connection *c)
{
    struct cu_app *app = cls;
    struct conn *k = conn_of(c);
    if (k != NULL) {
        int64_t d = mono_ms() + 1000LL * app->cfg.server.header_timeout;
        int64_t cur = atomic_load(&k->deadline_ms);
        k->target_error = target_error(uri);
        conn_set(k, PHASE_HEAD, cur != 0 && cur < d ? cur : d);
    }
    return NULL;
}

/* libmicrohttpd's messages. It answers a request it cannot parse itself (an HTML page, then
 * it closes the connection), before any handler sees it: such refusals are counted. */
static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
    static const char refused[] = "Error processing request (HTTP response code is ";
    struct cu_app *app = cls;
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    if (strncmp(msg, refused, sizeof(refused) - 1) == 0) {
        cu_metrics_conn_event(app->metrics, CU_CONN_MALFORMED);
        cu_log(CU_LOG_INFO, "http.malformed",
               CU_LI("status", strtol(msg + sizeof(refused) - 1, NULL, 10)));
        return;
    }
    cu_log(CU_LOG_WARN, "http.library", CU_LS("detail", msg));
}

/* Reads a PEM file into memory (the key file into guarded memory is not needed: GnuTLS
 * copies it when the daemon starts, and we wipe our copy right after). */
static enum cu_err read_pem(const struct cu_config *cfg, const char *rel, char **out)
{
    char path[CU_CONFIG_PATH_BYTES];
    struct cu_buf b;
    char chunk[4096];
    enum cu_err rc = cu_config_path(cfg, rel, path, sizeof(path));
    int fd;

    if (rc != CU_OK)
        return rc;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        cu_log(CU_LOG_ERROR, "tls.read_failed", CU_LS("file", path),
               CU_LS("error", strerror(errno)));
        return CU_E_IO;
    }
    cu_buf_init(&b, 1u << 20);
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n < 0 ? CU_E_IO : CU_OK;
            break;
        }
        rc = cu_buf_append(&b, chunk, (size_t)n);
        if (rc != CU_OK)
            break;
    }
    close(fd);
    cu_crypto_wipe(chunk, sizeof(chunk));
    if (rc == CU_OK && b.len == 0)
        rc = CU_E_TLS;
    if (rc != CU_OK) {
        cu_log(CU_LOG_ERROR, "tls.read_failed", CU_LS("file", path),
               CU_LS("error", cu_err_str(rc)));
        cu_buf_free(&b);
        return rc;
    }
    *out = cu_buf_steal(&b);
    return CU_OK;
}

static void wipe_free(char *p)
{
    if (p != NULL) {
        cu_crypto_wipe(p, strlen(p));
        cu_free(p);
    }
}

static enum cu_err listen_addr(const struct cu_config *cfg, struct sockaddr_storage *ss, bool *ipv6)
{
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
    memset(ss, 0, sizeof(*ss));
    *ipv6 = false;
    if (inet_pton(AF_INET, cfg->server.listen_address, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(cfg->server.port);
        return CU_OK;
    }
    if (inet_pton(AF_INET6, cfg->server.listen_address, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(cfg->server.port);
        *ipv6 = true;
        return CU_OK;
    }
    return CU_E_CONFIG;
}

static struct MHD_Daemon *start_daemon(struct cu_app *app, const char *cert, const char *key)
{
    const struct cu_config *cfg = &app->cfg;
    struct sockaddr_storage ss;
    bool ipv6;
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_TLS | MHD_USE_ITC |
                     MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    /* Each connection's memory pool holds its requests' headers (the bearer token) and body
     * chunks (personal data). The library zeroes it between requests, but frees it unwiped
     * when the connection closes if it came from malloc, which it does for pools of 32 KiB or
     * less; a larger pool is mapped and unmapped, so nothing of it stays in the heap. */
    size_t mem = cfg->server.max_header_bytes + 16384;
    if (mem < MIN_CONNECTION_POOL)
        mem = MIN_CONNECTION_POOL;

    if (listen_addr(cfg, &ss, &ipv6) != CU_OK)
        return NULL;
    if (ipv6)
        flags |= MHD_USE_IPv6;
    return MHD_start_daemon(
        flags, cfg->server.port, NULL, NULL, on_request, app, MHD_OPTION_EXTERNAL_LOGGER,
        mhd_logger, app, MHD_OPTION_URI_LOG_CALLBACK, uri_seen, app, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&ss, MHD_OPTION_THREAD_POOL_SIZE, app->threads,
        MHD_OPTION_CONNECTION_LIMIT, cfg->server.max_connections,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, cfg->server.per_ip_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, cfg->server.idle_timeout, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        mem, MHD_OPTION_HTTPS_MEM_KEY, key, MHD_OPTION_HTTPS_MEM_CERT, cert,
        MHD_OPTION_HTTPS_PRIORITIES, cfg->server.tls_priorities, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, app, MHD_OPTION_NOTIFY_CONNECTION, on_connection, app,
        /* Not strict: in strict mode libmicrohttpd answers a missing Host or a space in the
         * target with an HTML page of its own; head_error and uri_seen check both and answer
         * with a problem document. */
        MHD_OPTION_STRICT_FOR_CLIENT, 0, MHD_OPTION_END);
}

/* Once a minute: forgets quiet lockout counters, expired challenges and long-dead sessions. */
static void prune_identity(struct cu_app *app)
{
    struct cu_db *db = NULL;
    enum cu_err rc = app->identity ? cu_store_db(app->store, &db) : CU_OK;
    if (app->identity == NULL)
        return;
    if (rc == CU_OK)
        rc = cu_db_begin(db, CU_TXN_WRITE);
    if (rc == CU_OK) {
        rc = cu_identity_prune(app->identity, db);
        rc = rc == CU_OK ? cu_db_commit(db) : (cu_db_rollback(db), rc);
    }
    if (rc != CU_OK)
        cu_log(CU_LOG_WARN, "identity.prune_failed", CU_LS("error", cu_err_str(rc)));
}

/* The checkpointer: a thread that makes an audit checkpoint when one is due (every
 * [audit] checkpoint_records records or checkpoint_seconds seconds), checking once a second,
 * and does the identity service's housekeeping once a minute. */
struct checkpointer {
    struct cu_app *app;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    bool running;
};

/* Retries the purge an erasure could not finish (a reader held the write-ahead log): until it
 * succeeds, the log may still hold the erased customer's old pages. */
void cu_app_purge_deferred(struct cu_app *app)
{
    atomic_fetch_add(&app->purge_wanted, 1);
}

bool cu_app_purge_pending(struct cu_app *app)
{
    return atomic_load(&app->purge_done) != atomic_load(&app->purge_wanted);
}

static bool retry_purge(struct cu_app *app)
{
    struct cu_db *db = NULL;
    /* The purges owed before this one starts are what it covers: an erasure whose own purge
     * fails meanwhile stays owed, and health says "pending" until a purge has succeeded. */
    unsigned long long owed = atomic_load(&app->purge_wanted);
    if (cu_store_db(app->store, &db) != CU_OK || cu_db_purge(db) != CU_OK)
        return false;
    atomic_store(&app->purge_done, owed);
    cu_log_msg(CU_LOG_INFO, "vault.purged");
    return true;
}

static void *checkpointer_main(void *arg)
{
    struct checkpointer *c = arg;
    unsigned ticks = 0, purge_at = 0, purge_every = 1;
    pthread_setname_np(pthread_self(), "cu-checkpoint");
    pthread_mutex_lock(&c->mu);
    while (!c->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&c->cv, &c->mu, &ts);
        if (c->stop)
            break;
        pthread_mutex_unlock(&c->mu);
        bool made = false;
        enum cu_err rc = cu_audit_checkpoint_make(c->app->audit, c->app->store, false, &made, NULL);
        if (rc != CU_OK)
            cu_log(CU_LOG_ERROR, "audit.checkpoint_failed", CU_LS("error", cu_err_str(rc)));
        /* Each try holds writers back up to 250 ms: back off, from 1 s to 30 s, while a long
         * reader (an export) keeps the log. */
        if (cu_app_purge_pending(c->app) && ticks >= purge_at) {
            purge_every = retry_purge(c->app) ? 1 : (purge_every * 2 > 30 ? 30 : purge_every * 2);
            purge_at = ticks + purge_every;
        }
        if (++ticks % 60 == 0)
            prune_identity(c->app);
        pthread_mutex_lock(&c->mu);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

static void checkpointer_start(struct checkpointer *c, struct cu_app *app)
{
    memset(c, 0, sizeof(*c));
    c->app = app;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    c->running = pthread_create(&c->thread, NULL, checkpointer_main, c) == 0;
    if (!c->running)
        cu_log_msg(CU_LOG_ERROR, "audit.checkpointer_not_started");
}

static void checkpointer_stop(struct checkpointer *c)
{
    if (c->running) {
        pthread_mutex_lock(&c->mu);
        c->stop = true;
        pthread_cond_signal(&c->cv);
        pthread_mutex_unlock(&c->mu);
        pthread_join(c->thread, NULL);
    }
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
}

void cu_server_stop_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGHUP);
    sigaddset(set, SIGQUIT);
}

static const char *signal_name(int sig)
{
    switch (sig) {
    case SIGTERM:
        return "SIGTERM";
    case SIGINT:
        return "SIGINT";
    case SIGHUP:
        return "SIGHUP";
    default:
        return "SIGQUIT";
    }
}

/* Whether a stop signal is already pending (it arrived before the server started). */
static bool stop_pending(void)
{
    sigset_t pending, stop;
    cu_server_stop_signals(&stop);
    if (sigpending(&pending) != 0)
        return false;
    for (int sig = 1; sig < NSIG; sig++) {
        if (sigismember(&stop, sig) == 1 && sigismember(&pending, sig) == 1)
            return true;
    }
    return false;
}

/* Waits for a stop signal, which the caller blocked before starting any thread and keeps
 * blocked (a later signal stays pending and cannot cut the stop short). */
static int wait_for_signal(void)
{
    sigset_t set;
    int sig = 0;
    cu_server_stop_signals(&set);
    while (sigwait(&set, &sig) != 0)
        ;
    return sig;
}

/* Waits up to ms milliseconds for the requests in flight to complete. */
static void wait_inflight(struct cu_app *app, int ms)
{
    for (int i = 0; i < ms / 10 && atomic_load(&app->inflight) > 0; i++) {
        struct timespec ts = {0, 10L * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* Stops accepting, lets requests in flight finish, then stops the daemon. libmicrohttpd must
 * not be stopped with a connection suspended: stopping the audit writer first has every
 * record it was handed committed or failed and its connection resumed, and a later request
 * writes its record itself. */
static void drain(struct cu_app *app, struct MHD_Daemon *d)
{
    (void)MHD_quiesce_daemon(d);
    wait_inflight(app, 10000);
    cu_lane_stop(app->lane); /* runs what is queued; their records go to the writer */
    cu_audit_batcher_stop(app->batcher);
    wait_inflight(app, 1000);
    MHD_stop_daemon(d);
    watch_stop();
}

/* Threads for the password-hashing lane: two per hash slot, so that a thread waiting on the
 * store (a sign-in's write) leaves its slot to another. */
static unsigned lane_threads(const struct cu_app *app)
{
    return 2 * cu_hasher_slots(cu_identity_hasher(app->identity));
}

enum cu_err cu_server_run(struct cu_app *app)
{
    char *cert = NULL, *key = NULL;
    struct MHD_Daemon *d = NULL;
    enum cu_err rc;

    routes = cu_routes(&nroutes);
    rc = cu_metrics_new(routes, nroutes, &app->metrics);
    if (rc == CU_OK)
        rc = cu_limiter_new(app->cfg.server.auth_failures_per_minute, &app->auth_limiter);
    if (rc == CU_OK)
        rc = cu_audit_batcher_new(app->audit, app->store, &app->batcher);
    if (rc == CU_OK)
        rc = cu_lane_new(lane_threads(app), app->cfg.identity.password_hash_wait_ms, &app->lane);
    if (rc == CU_OK)
        rc = read_pem(&app->cfg, app->cfg.server.tls_cert, &cert);
    if (rc == CU_OK)
        rc = read_pem(&app->cfg, app->cfg.server.tls_key, &key);
    if (rc != CU_OK)
        goto out;

    signal(SIGPIPE, SIG_IGN);
    if (!watch_start(app)) {
        rc = CU_E_INTERNAL;
        goto out;
    }
    /* A stop asked for while the data directory opened (a long migration) is honoured before
     * the port opens, rather than after a moment of accepted traffic. */
    if (stop_pending()) {
        cu_log_msg(CU_LOG_INFO, "server.stopped_before_start");
        goto out;
    }
    d = start_daemon(app, cert, key);
    wipe_free(key);
    key = NULL;
    if (d == NULL) {
        cu_log(CU_LOG_ERROR, "server.start_failed",
               CU_LS("address", app->cfg.server.listen_address),
               CU_LI("port", app->cfg.server.port),
               CU_LS("hint", "is the port in use, or the TLS certificate or key unreadable?"));
        rc = CU_E_IO;
        goto out;
    }
    if (!cu_log_buffer_start())
        cu_log_msg(CU_LOG_WARN, "log.unbuffered");
    cu_log(CU_LOG_INFO, "server.started", CU_LS("address", app->cfg.server.listen_address),
           CU_LI("port", app->cfg.server.port), CU_LI("threads", app->threads),
           CU_LS("version", CU_VERSION));
    struct checkpointer cp;
    /* An erasure whose purge was still pending when the server last stopped is finished now
     * (a purge of a log with nothing to erase costs one checkpoint); if a reader holds the
     * log, the checkpointer retries. */
    struct cu_db *main_db = NULL;
    if (cu_store_db(app->store, &main_db) != CU_OK || cu_db_purge(main_db) != CU_OK) {
        cu_app_purge_deferred(app);
        cu_log_msg(CU_LOG_WARN, "vault.purge_deferred");
    }
    checkpointer_start(&cp, app);
    int sig = wait_for_signal();
    cu_log(CU_LOG_INFO, "server.stopping", CU_LS("signal", signal_name(sig)),
           CU_LI("in_flight", atomic_load(&app->inflight)));
    drain(app, d);
    cu_lane_free(app->lane);
    app->lane = NULL;
    cu_audit_batcher_free(app->batcher); /* after the last request is done with it */
    app->batcher = NULL;
    checkpointer_stop(&cp);
    cu_log(CU_LOG_INFO, "server.stopped", CU_LI("in_flight", atomic_load(&app->inflight)));
    cu_log_buffer_stop();
out:
    watch_stop();
    cu_lane_free(app->lane);
    app->lane = NULL;
    cu_audit_batcher_free(app->batcher);
    app->batcher = NULL;
    wipe_free(key);
    cu_free(cert);
    return rc;
}
