/*
 * server.c - the HTTPS daemon around libmicrohttpd.
 *
 * Request path: MHD parses with limits (header memory, idle timeout, connection caps); on the
 * first call the head is checked and the request routed and authenticated (authn.c); the
 * access handler gathers the body into a capped buffer, then on the last call runs the handler
 * (on the hashing lane for routes that hash) and queues the response with the security
 * headers. The completion callback counts the request in the metrics and writes one
 * access-log line.
 *
 * Every request has a unit of work (store/work.h, docs/internals/work.md). When it holds
 * something to commit (a change, an audit record), the request does not hold its thread while
 * it waits: the connection is suspended, the unit goes to the group committer, and the
 * committer's callback resumes the connection once the unit is durable or has failed; the next
 * call of the handler then builds the answer, or the unit's problem in its place (fail
 * closed).
 *
 * libmicrohttpd 0.9.75 closes keep-alive connections when a response is queued on the first
 * call for a request, so a normal response is queued on a later call; only a body announced as
 * too large is refused at once, which also closes the connection (the body is never read).
 */
#include "api/server_int.h"
#include "api/handlers.h"

#include "api/head.h"

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

#include "api/bucket.h"
#include "base/lane.h"
#include "audit/checkpoint.h"
#include "base/clock.h"
#include "base/json.h"
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
    bool committing;              /* suspended until its unit of work is committed or failed */
    atomic_bool hashed;           /* the lane ran the handler; the response waits to be queued */
    struct cu_lane_job job;       /* its place on the lane, while there */
    atomic_int unit_rc;           /* the unit's outcome, set before the connection is resumed */
    const struct cu_principal *preset; /* an approved action's requester (cu_server_execute) */
};

static const struct cu_route *routes;
static size_t nroutes;

static void request_free(struct request *r)
{
    cu_store_release(r->req.view);
    cu_work_free(r->req.work);
    if (r->req.policy != NULL)
        cu_access_policy_put(r->req.app->policies, r->req.policy);
    for (size_t i = 0; i < r->req.nowned; i++) {
        if (r->req.owned[i].clear != NULL)
            r->req.owned[i].clear(r->req.owned[i].p);
        cu_free(r->req.owned[i].p);
    }
    /* Bodies may hold passwords (the request) and what is shown once (the answer). */
    if (r->req.body.data != NULL)
        cu_crypto_wipe(r->req.body.data, r->req.body.len);
    if (r->resp.body.data != NULL)
        cu_crypto_wipe(r->resp.body.data, r->resp.body.len);
    cu_buf_free(&r->req.body);
    cu_buf_free(&r->resp.body);
    cu_free(r);
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

/* A request read from source (with its argument arg), for method and url, from the client at
 * ip, with its unit of work (anonymous until authenticated). Caller frees with request_free. */
static struct request *request_new(struct cu_app *app, const struct cu_req_source *source,
                                   void *arg, const char *url, const char *method, const char *ip)
{
    struct request *r = cu_calloc(1, sizeof(*r));
    struct cu_work_ctx ctx;

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
    snprintf(r->req.remote_ip, sizeof(r->req.remote_ip), "%s", ip);
    cu_rate_client(r->req.remote_ip, r->req.rate_client);
    cu_app_kept_ip(app, r->req.remote_ip, r->req.kept_ip);
    cu_buf_init(&r->req.body, app->cfg.server.max_body_bytes);
    cu_buf_init(&r->resp.body, 16u << 20);
    r->resp.status = 200;
    memset(&ctx, 0, sizeof(ctx));
    snprintf(ctx.request_id, sizeof(ctx.request_id), "%s", r->req.id);
    snprintf(ctx.actor_type, sizeof(ctx.actor_type), "anonymous");
    snprintf(ctx.source_ip, sizeof(ctx.source_ip), "%s", r->req.remote_ip);
    snprintf(ctx.kept_ip, sizeof(ctx.kept_ip), "%s", r->req.kept_ip);
    /* The agent as given when it is UTF-8, cut at a character's edge to fit. */
    const char *ua = cu_req_header(&r->req, "User-Agent");
    if (ua != NULL && cu_utf8_valid(ua, strlen(ua)))
        cu_text_copy(ctx.user_agent, sizeof(ctx.user_agent), ua,
                     cu_utf8_cut(ua, sizeof(ctx.user_agent) - 1));
    ctx.now_ms = cu_clock_now_ms();
    if (cu_work_new(&ctx, &r->req.work) != CU_OK) {
        request_free(r);
        return NULL;
    }
    return r;
}

const char *const cu_security_headers[][2] = {
    {"Strict-Transport-Security", "max-age=31536000"},
    {"X-Content-Type-Options", "nosniff"},
    {"X-Frame-Options", "DENY"},
    {"Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"},
    {"Referrer-Policy", "no-referrer"},
    {"Cross-Origin-Resource-Policy", "same-origin"},
    {"Cache-Control", "no-store"},
};
const size_t cu_security_headers_n = sizeof(cu_security_headers) / sizeof(cu_security_headers[0]);

void cu_server_request_id(char out[CU_REQUEST_ID_BYTES])
{
    request_id(out);
}

static enum MHD_Result add_headers(struct MHD_Response *mr, const struct request *r)
{
    enum MHD_Result ok = MHD_YES;
    for (size_t i = 0; i < cu_security_headers_n; i++)
        ok &= MHD_add_response_header(mr, cu_security_headers[i][0], cu_security_headers[i][1]);
    ok &= MHD_add_response_header(mr, "X-Request-Id", r->req.id);
    /* A stopping server closes kept-alive connections after their answer, so that they bring
     * no new requests while it drains. */
    bool closes = false;
    for (size_t i = 0; i < r->resp.nheaders; i++)
        closes |= strcasecmp(r->resp.headers[i][0], "Connection") == 0;
    if (atomic_load(&r->req.app->draining) && !closes)
        ok &= MHD_add_response_header(mr, "Connection", "close");
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

/* What a unit's outcome says of the audit log, for health: a unit with records that committed
 * shows the log writable; one that failed for the store or the log shows it failing. */
static void note_outcome(struct cu_app *app, const struct cu_work *w, enum cu_err rc)
{
    size_t n = 0;
    (void)cu_work_records(w, &n);
    /* A failed unit has lost the records its change added (the committer rewound them): a
     * failure of the log or the store says the log is failing whatever the unit holds now. */
    if (rc == CU_OK) {
        if (n > 0)
            atomic_store(&app->audit_failing, false);
        return;
    }
    if (rc == CU_E_AUDIT || rc == CU_E_STORE || rc == CU_E_STORE_FULL || rc == CU_E_IO) {
        atomic_store(&app->audit_failing, true);
        cu_log(CU_LOG_ERROR, "audit.unavailable", CU_LS("error", cu_err_str(rc)));
    }
}

/* A request past a rate limit ([limits]): 429 with Retry-After, counted, not audited. */
static enum cu_err rate_limited(struct request *r, enum cu_guard_event ev, int64_t retry_s,
                                const char *whose)
{
    cu_metrics_guard_event(r->req.app->metrics, ev, 1);
    cu_resp_retry_after(&r->resp, retry_s);
    return cu_resp_fail(&r->resp, CU_E_RATE_LIMITED, "too many requests %s; retry in %lld s", whose,
                        (long long)retry_s);
}

/* The limits of an authenticated principal: all its requests, and those that change. */
static enum cu_err principal_limits(struct request *r)
{
    const struct cu_principal *p = &r->req.principal;
    struct cu_app *app = r->req.app;
    char key[CU_SUBJECT_ID_BYTES + 8];
    int64_t now = cu_clock_now_ms(), retry = 0;
    bool writes = r->req.method == CU_POST || r->req.method == CU_PUT ||
                  r->req.method == CU_PATCH || r->req.method == CU_DELETE;

    if (p->kind == CU_PRINCIPAL_NONE)
        return CU_OK;
    snprintf(key, sizeof(key), "%d:%s", (int)p->kind, p->id);
    if (!cu_buckets_take(app->rate_principal, key, now, &retry))
        return rate_limited(r, CU_GUARD_RATE_PRINCIPAL, retry, "by this principal");
    if (writes && !cu_buckets_take(app->rate_writes, key, now, &retry))
        return rate_limited(r, CU_GUARD_RATE_WRITES, retry,
                            "that change something, by this principal");
    return CU_OK;
}

/* Routes and authenticates a request as soon as its headers are in, before any body is
 * read: CU_OK and r->route set, or an error with the problem prepared in r->resp. The
 * client address's rate limit comes first, the principal's once it is known. */
static enum cu_err admit(struct request *r)
{
    unsigned allowed = 0;
    int64_t retry = 0;
    enum cu_method m = r->req.method == CU_HEAD ? CU_GET : r->req.method;

    if (r->preset == NULL &&
        !cu_buckets_take(r->req.app->rate_ip, r->req.rate_client, cu_clock_now_ms(), &retry))
        return rate_limited(r, CU_GUARD_RATE_IP, retry, "from this address");
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
    if (route->permission == 0 && !(route->flags & (CU_ROUTE_SESSION | CU_ROUTE_SIGNED)))
        return CU_OK;
    enum cu_err rc = r->preset != NULL ? cu_authn_preset(&r->req, &r->resp, route, r->preset)
                                       : cu_authn_request(&r->req, &r->resp, route);
    if (rc == CU_OK && r->preset == NULL)
        rc = principal_limits(r);
    /* The body may take long to come (up to body_timeout): the read connection authentication
     * took goes back to the pool meanwhile; the handler takes one again if it reads. */
    cu_store_release(r->req.view);
    r->req.view = NULL;
    return rc;
}

/* Whether the request's unit of work must be committed before it is answered: it holds a
 * change or a record, and the request succeeded (or was refused: its record stands). */
static bool wants_commit(const struct request *r)
{
    return cu_work_pending(r->req.work) && (r->resp.err == CU_OK || r->req.refusal);
}

/* The committer's callback: keeps the unit's outcome and resumes the connection, whose thread
 * may then answer and free r at once. */
static void unit_done(void *arg, enum cu_err rc)
{
    struct request *r = arg;
    struct fconn *f = cu_front_hold(cu_daemon_conn_of(r->req.conn));
    atomic_store(&r->unit_rc, (int)rc);
    MHD_resume_connection(r->req.conn);
    cu_front_resumed(f);
}

/* Hands the request's unit to the committer, the connection being suspended (unit_done
 * resumes it). The read connection goes back to the pool meanwhile. */
static void submit_unit(struct request *r)
{
    struct cu_app *app = r->req.app;
    enum cu_err rc = CU_E_UNAVAILABLE;

    cu_store_release(r->req.view);
    r->req.view = NULL;
    r->committing = true;
    if (!r->req.refusal && (rc = cu_authn_hold_session(&r->req)) != CU_OK) {
        unit_done(r, rc);
        return;
    }
    rc = CU_E_UNAVAILABLE;
    if (app->committer != NULL)
        rc = cu_committer_submit(app->committer, r->req.work, unit_done, r);
    if (rc != CU_OK)
        unit_done(r, rc);
}

/* Suspends the connection until the unit is committed (unit_done resumes it). The connection
 * is suspended before the unit is handed over, so that the callback can never resume it
 * first. */
static enum MHD_Result commit_first(struct MHD_Connection *c, struct request *r)
{
    r->committing = true;
    MHD_suspend_connection(c);
    submit_unit(r);
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
        rc = r->req.approvals_needed > 0 ? cu_approval_request(&r->req, &r->resp)
                                         : r->route->handler(&r->req, &r->resp);
    if (rc != CU_OK)
        fail(r, rc);
}

static void commit_here(struct request *r);

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
    if (wants_commit(r) && !atomic_load(&r->req.app->draining)) {
        submit_unit(r);
        return;
    }
    if (wants_commit(r))
        commit_here(r);
    struct fconn *f = cu_front_hold(cu_daemon_conn_of(r->req.conn));
    atomic_store(&r->hashed, true);
    MHD_resume_connection(r->req.conn);
    cu_front_resumed(f);
}

/* Suspends the connection and hands the request to the lane, so that its hash holds no request
 * thread; on a lane that is stopping, runs it here. */
static enum MHD_Result to_lane(struct MHD_Connection *c, struct request *r)
{
    cu_store_release(r->req.view); /* none is held while the request waits for the lane */
    r->req.view = NULL;
    MHD_suspend_connection(c);
    if (cu_lane_submit(r->req.app->lane, &r->job, hash_job, r) != CU_OK)
        hash_job(r, false);
    return MHD_YES;
}

/* Settles a request whose unit was committed (rc CU_OK) or failed: on success the answer of
 * its change builds the response; on failure the problem its change set stands when the
 * change itself failed, else the unit's problem replaces what the handler prepared (its
 * headers go too). A refusal stands either way. */
static void settle(struct request *r, enum cu_err rc)
{
    r->committing = false;
    note_outcome(r->req.app, r->req.work, rc);
    if (r->req.refusal)
        return;
    if (rc == CU_OK) {
        if (r->req.answer != NULL &&
            (rc = r->req.answer(&r->req, &r->resp, r->req.answer_arg)) != CU_OK)
            fail(r, rc);
        return;
    }
    if (r->resp.err != rc) {
        r->resp.nheaders = 0;
        r->resp.err = CU_OK;
        r->resp.detail[0] = '\0';
        (void)cu_resp_unit_failed(&r->resp, rc);
    }
    fail(r, rc);
}

/* Commits the request's unit on this thread, waiting for the committer (the paths that cannot
 * suspend: an answer on the first call, and cu_server_serve). */
static void commit_here(struct request *r)
{
    struct cu_app *app = r->req.app;
    enum cu_err rc = r->req.refusal ? CU_OK : cu_authn_hold_session(&r->req);

    cu_store_release(r->req.view);
    r->req.view = NULL;
    if (rc == CU_OK)
        rc = app->committer != NULL ? cu_committer_run(app->committer, r->req.work)
                                    : CU_E_UNAVAILABLE;
    settle(r, rc);
}

static enum MHD_Result answer_committed(struct MHD_Connection *c, struct request *r)
{
    settle(r, (enum cu_err)atomic_load(&r->unit_rc));
    return queue(c, r);
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
    /* Answered on the first call, which cannot suspend: the refusal's record is committed on
     * this thread (a refused request with a body is rare, and limited per address). */
    if (wants_commit(r))
        commit_here(r);
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

enum MHD_Result cu_server_on_request(void *cls, struct MHD_Connection *c, const char *url,
                                     const char *method, const char *version,
                                     const char *upload_data, size_t *upload_size, void **con_cls)
{
    struct cu_app *app = cls;
    struct request *r = *con_cls;

    if (r == NULL) {
        struct conn *k = cu_daemon_conn_of(c);
        char ip[64];
        cu_daemon_remote_ip(c, ip, sizeof(ip));
        r = request_new(app, &cu_daemon_source, c, url, method, ip);
        if (r == NULL)
            return MHD_NO;
        r->req.conn = c;
        *con_cls = r;
        atomic_fetch_add(&app->inflight, 1);
        const char *cl = cu_req_header(&r->req, "Content-Length");
        bool body = (cl != NULL && strcmp(cl, "0") != 0) ||
                    cu_req_header(&r->req, "Transfer-Encoding") != NULL;
        cu_daemon_conn_set(k, body ? PHASE_BODY : PHASE_SERVER,
                           body ? cu_daemon_mono_ms() + 1000LL * app->cfg.server.body_timeout : 0);
        /* Without its context the connection has no deadlines and its target was not checked:
         * refused rather than served unchecked. */
        enum cu_err bad = k == NULL ? cu_resp_fail(&r->resp, CU_E_UNAVAILABLE,
                                                   "the server is short of memory; retry")
                                    : cu_head_error(&r->req, &r->resp, k->target_error, version);
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
    if (r->committing)
        return answer_committed(c, r);
    if (atomic_load(&r->hashed)) {
        atomic_store(&r->hashed, false);
        return queue(c, r);
    }
    if (*upload_size != 0)
        return take_body(r, upload_data, upload_size);
    cu_daemon_conn_set(cu_daemon_conn_of(c), PHASE_SERVER, 0);
    if (r->too_large)
        return refuse_too_large(c, r);
    if (r->refused == CU_OK && (r->route->flags & CU_ROUTE_HASH) && r->req.app->lane != NULL)
        return to_lane(c, r);
    dispatch(r);
    if (wants_commit(r) && !atomic_load(&app->draining))
        return commit_first(c, r);
    if (wants_commit(r))
        commit_here(r);
    return queue(c, r);
}

/* The request path of cu_server_serve once the head is accepted: the body, the handler (a
 * password hash too, on this thread) and the commit of its unit of work. */
static void serve_admitted(struct request *r, const struct cu_server_input *in)
{
    if (in->body_len > r->req.body.max ||
        (in->body_len > 0 && r->refused == CU_OK &&
         cu_buf_append(&r->req.body, in->body, in->body_len) != CU_OK)) {
        render_too_large(r);
        return;
    }
    dispatch(r);
    if (wants_commit(r))
        commit_here(r);
}

/* The status and body the client of r would get, for the paths without a client; frees r. */
static enum cu_err answer_out(struct request *r, int *status, struct cu_buf *out)
{
    enum cu_err rc = CU_OK;

    *status = r->resp.status;
    if (r->resp.fallback != NULL)
        rc = cu_buf_append_str(out, r->resp.fallback);
    else if (r->resp.body.len > 0)
        rc = cu_buf_append(out, r->resp.body.data, r->resp.body.len);
    request_free(r);
    return rc;
}

enum cu_err cu_server_serve(struct cu_app *app, const struct cu_server_input *in, int *status,
                            struct cu_buf *out)
{
    struct request *r;
    enum cu_err rc;

    if (routes == NULL)
        routes = cu_routes(&nroutes);
    r = request_new(app, in->source, in->source_arg, in->path, in->method,
                    in->remote_ip != NULL ? in->remote_ip : "127.0.0.1");
    if (r == NULL)
        return CU_E_NOMEM;
    rc = cu_head_error(&r->req, &r->resp, cu_head_target_error(in->target), in->version);
    if (rc != CU_OK) {
        render_refusal(r, rc);
    } else {
        r->refused = admit(r);
        if (r->refused != CU_OK && in->body_len > 0)
            render_refusal(r, r->refused);
        else
            serve_admitted(r, in);
    }
    return answer_out(r, status, out);
}

enum cu_err cu_server_execute(struct cu_app *app, const struct cu_server_input *in,
                              const struct cu_server_exec *x, int *status, struct cu_buf *out,
                              char *detail, size_t cap)
{
    struct request *r;
    enum cu_err rc;

    if (routes == NULL)
        routes = cu_routes(&nroutes);
    r = request_new(app, in->source, in->source_arg, in->path, in->method,
                    in->remote_ip != NULL ? in->remote_ip : "127.0.0.1");
    if (r == NULL)
        return CU_E_NOMEM;
    r->preset = x->principal;
    r->refused = admit(r);
    if (r->refused == CU_OK && r->req.approvals_needed > 0)
        /* approved for another permission than the one the route needs now */
        r->refused =
            cu_resp_fail(&r->resp, CU_E_FORBIDDEN, "the action needs an approval it does not have");
    if (r->refused == CU_OK && (rc = cu_work_add_first(r->req.work, x->mark, x->mark_arg)) != CU_OK)
        r->refused = cu_resp_fail(&r->resp, rc, "the approved action could not be run");
    if (r->refused == CU_OK && in->body_len > 0 &&
        cu_buf_append(&r->req.body, in->body, in->body_len) != CU_OK)
        r->refused = cu_resp_fail(&r->resp, CU_E_TOO_LARGE, "the approved body is too large");
    dispatch(r);
    *x->ran = r->refused == CU_OK && r->resp.err == CU_OK && !r->req.refusal;
    if (wants_commit(r))
        commit_here(r);
    snprintf(detail, cap, "%s", r->resp.err != CU_OK ? r->resp.detail : "");
    return answer_out(r, status, out);
}

void cu_server_on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                            enum MHD_RequestTerminationCode toe)
{
    struct cu_app *app = cls;
    struct request *r = *con_cls;
    /* The connection may carry a next request: its line must come within the idle timeout,
     * and its headers within the header timeout after that (uri_seen). */
    struct conn *k = cu_daemon_conn_of(c);
    cu_daemon_conn_set(k, PHASE_HEAD,
                       cu_daemon_mono_ms() + 1000LL * (app->cfg.server.idle_timeout +
                                                       app->cfg.server.header_timeout));
    /* The front passes the connection's next request once this answer is out. */
    cu_front_answered(k);
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
 * not be stopped with a connection suspended: from now on a request commits its unit on its
 * own thread instead of suspending (a connection accepted before the stop may yet bring one);
 * once the lane has run what it holds, an empty unit run through the committer comes out
 * after every unit handed over before, so every suspended connection has been resumed. */
static void drain(struct cu_app *app, struct cu_front *fr)
{
    struct cu_work *flush = NULL;

    atomic_store(&app->draining, true);
    cu_front_quiesce(fr);
    wait_inflight(app, 10000);
    cu_lane_stop(app->lane); /* runs what is queued; their units go to the committer */
    if (cu_work_new(NULL, &flush) != CU_OK || cu_committer_run(app->committer, flush) != CU_OK)
        cu_log_msg(CU_LOG_ERROR, "server.drain_incomplete");
    cu_work_free(flush);
    wait_inflight(app, 1000);
    cu_front_free(fr);
    cu_daemon_watch_stop();
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
    struct cu_front *fr = NULL;
    enum cu_err rc;

    routes = cu_routes(&nroutes);
    rc = cu_metrics_new(routes, nroutes, &app->metrics);
    if (rc == CU_OK)
        rc = cu_limiter_new(app->cfg.server.auth_failures_per_minute, &app->auth_limiter);
    if (rc == CU_OK)
        rc = cu_buckets_new(app->cfg.limits.ip_per_minute, app->cfg.limits.ip_burst, &app->rate_ip);
    if (rc == CU_OK)
        rc = cu_buckets_new(app->cfg.limits.principal_per_minute, app->cfg.limits.principal_burst,
                            &app->rate_principal);
    if (rc == CU_OK)
        rc = cu_buckets_new(app->cfg.limits.writes_per_minute, app->cfg.limits.writes_burst,
                            &app->rate_writes);
    if (rc == CU_OK)
        rc = cu_buckets_new(app->cfg.limits.signin_per_minute, app->cfg.limits.signin_burst,
                            &app->rate_signin);
    if (rc == CU_OK && app->committer == NULL)
        rc = CU_E_INTERNAL; /* cu_app_new takes it */
    if (rc == CU_OK)
        rc = cu_lane_new("cu-hash", lane_threads(app), app->cfg.identity.password_hash_wait_ms,
                         &app->lane);
    /* A step-up holds a read connection while it hashes (sign-ins and password changes give
     * theirs back first): with fewer connections than hashing threads, a burst of step-ups
     * could leave reads none. */
    if (rc == CU_OK && app->cfg.store.connections < lane_threads(app) + 4)
        cu_log(CU_LOG_WARN, "store.connections_few",
               CU_LI("connections", app->cfg.store.connections),
               CU_LI("hashing_threads", lane_threads(app)),
               CU_LS("hint", "raise [store] connections above the hashing threads + 4"));
    if (rc == CU_OK)
        rc = cu_daemon_read_pem(&app->cfg, app->cfg.server.tls_cert, &cert);
    if (rc == CU_OK)
        rc = cu_daemon_read_pem(&app->cfg, app->cfg.server.tls_key, &key);
    if (rc != CU_OK)
        goto out;

    signal(SIGPIPE, SIG_IGN);
    if (!cu_daemon_watch_start(app)) {
        rc = CU_E_INTERNAL;
        goto out;
    }
    /* A stop asked for while the data directory opened (a long migration) is honoured before
     * the port opens, rather than after a moment of accepted traffic. */
    if (stop_pending()) {
        cu_log_msg(CU_LOG_INFO, "server.stopped_before_start");
        goto out;
    }
    rc = cu_front_start(app, cert, key, &fr);
    cu_daemon_wipe_free(key);
    key = NULL;
    if (rc != CU_OK) {
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
    /* An erasure whose purge was still pending when the server last stopped is finished now
     * (a purge of a log with nothing to erase costs one checkpoint); if a reader holds the
     * log, the checkpointer retries. */
    struct cu_db *main_db = NULL;
    enum cu_err prc = cu_store_acquire(app->store, &main_db);
    if (prc == CU_OK)
        prc = cu_db_purge(main_db);
    cu_store_release(main_db);
    if (prc != CU_OK) {
        cu_app_purge_deferred(app);
        cu_log_msg(CU_LOG_WARN, "vault.purge_deferred");
    }
    cu_jobs_start(app);
    int sig = wait_for_signal();
    cu_log(CU_LOG_INFO, "server.stopping", CU_LS("signal", signal_name(sig)),
           CU_LI("in_flight", atomic_load(&app->inflight)));
    drain(app, fr);
    cu_lane_free(app->lane);
    app->lane = NULL;
    cu_jobs_stop();
    cu_log(CU_LOG_INFO, "server.stopped", CU_LI("in_flight", atomic_load(&app->inflight)));
    cu_log_buffer_stop();
out:
    cu_daemon_watch_stop();
    cu_lane_free(app->lane);
    app->lane = NULL;
    cu_daemon_wipe_free(key);
    cu_free(cert);
    return rc;
}
