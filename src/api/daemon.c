/*
 * daemon.c - the libmicrohttpd glue: the daemon's options, the connection registry and the
 * watchdog that enforces the deadlines of a request's head and body, where handlers read
 * headers and query arguments from, the client's address, and the library's own messages.
 */
#include "api/server_int.h"

#include <pthread.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"
#include "api/head.h"
#include "crypto/crypto.h"

/* ---- connections: the deadlines of a request's head and body ---- */

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

int64_t cu_daemon_mono_ms(void)
{
    return (int64_t)(cu_clock_mono_ns() / 1000000u);
}

void cu_daemon_conn_set(struct conn *k, enum conn_phase phase, int64_t deadline_ms)
{
    if (k == NULL)
        return;
    atomic_store(&k->phase, (int)phase);
    atomic_store(&k->deadline_ms, deadline_ms);
}

struct conn *cu_daemon_conn_of(struct MHD_Connection *c)
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
        size_t heads = 0, n = enforce_deadlines(cu_daemon_mono_ms(), rep, &heads);
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
bool cu_daemon_watch_start(struct cu_app *app)
{
    watch.app = app;
    watch.stop = false;
    watch.running = pthread_create(&watch.thread, NULL, watch_main, NULL) == 0;
    if (!watch.running)
        cu_log_msg(CU_LOG_ERROR, "http.watchdog_not_started");
    return watch.running;
}

void cu_daemon_watch_stop(void)
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

const struct cu_req_source cu_daemon_source = {mhd_header, mhd_query, mhd_each};

void cu_daemon_remote_ip(struct MHD_Connection *c, char *out, size_t outlen)
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
        cu_front_unlink(k);
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
    if (ci == NULL)
        return;
    k = cu_calloc(1, sizeof(*k));
    /* The front's connection is taken first, also when k could not be made. */
    cu_front_link(k, ci->connect_fd);
    if (k == NULL) {
        cu_log_msg(CU_LOG_WARN, "http.connection_untimed");
        return;
    }
    k->fd = ci->connect_fd;
    cu_daemon_conn_set(k, PHASE_HEAD,
                       cu_daemon_mono_ms() + 1000LL * app->cfg.server.header_timeout);
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
    struct conn *k = cu_daemon_conn_of(c);
    if (k != NULL) {
        int64_t d = cu_daemon_mono_ms() + 1000LL * app->cfg.server.header_timeout;
        int64_t cur = atomic_load(&k->deadline_ms);
        k->target_error = cu_head_target_error(uri);
        cu_daemon_conn_set(k, PHASE_HEAD, cur != 0 && cur < d ? cur : d);
    }
    return NULL;
}

/* libmicrohttpd's messages. The front refuses what the library would answer with a page of
 * its own; should the library still refuse a request itself (an HTML page, then it closes the
 * connection), it is counted and logged as a warning: the front's checks missed a case. The
 * library's connections are socket pairs with the front, not TCP: what it says of TCP options
 * on them (it tries them on every connection) is not worth a line. */
static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
    static const char refused[] = "Error processing request (HTTP response code is ";
    static const char *const socket_pair[] = {
        "Setting TCP_NODELAY option",
        "Setting TCP_CORK option",
        "Failed to push the data from buffers to the network",
    };
    struct cu_app *app = cls;
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    if (strncmp(msg, refused, sizeof(refused) - 1) == 0) {
        cu_metrics_conn_event(app->metrics, CU_CONN_MALFORMED);
        cu_log(CU_LOG_WARN, "http.library_refused",
               CU_LI("status", strtol(msg + sizeof(refused) - 1, NULL, 10)));
        return;
    }
    for (size_t i = 0; i < sizeof(socket_pair) / sizeof(socket_pair[0]); i++) {
        if (strncmp(msg, socket_pair[i], strlen(socket_pair[i])) == 0)
            return;
    }
    cu_log(CU_LOG_WARN, "http.library", CU_LS("detail", msg));
}

/* Reads a PEM file into memory (the key file into guarded memory is not needed: GnuTLS
 * copies it when the front starts, and we wipe our copy right after). */
enum cu_err cu_daemon_read_pem(const struct cu_config *cfg, const char *rel, char **out)
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

void cu_daemon_wipe_free(char *p)
{
    if (p != NULL) {
        cu_crypto_wipe(p, strlen(p));
        cu_free(p);
    }
}

size_t cu_daemon_pool_bytes(const struct cu_config *cfg)
{
    size_t mem = cfg->server.max_header_bytes + 16384;
    return mem < MIN_CONNECTION_POOL ? MIN_CONNECTION_POOL : mem;
}

struct MHD_Daemon *cu_daemon_start(struct cu_app *app)
{
    const struct cu_config *cfg = &app->cfg;
    /* Plain HTTP on the socket pairs of the front, which terminates TLS, enforces the
     * connection limits and runs the daemon from its own loop (front.c); ITC lets another
     * thread (the committer's callback) resume a suspended connection. */
    unsigned flags = MHD_USE_EPOLL | MHD_USE_ITC | MHD_USE_NO_LISTEN_SOCKET |
                     MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    /* Each connection's memory pool holds its requests' headers (the bearer token) and body
     * chunks (personal data). The library zeroes it between requests, but frees it unwiped
     * when the connection closes if it came from malloc, which it does for pools of 32 KiB or
     * less; a larger pool is mapped and unmapped, so nothing of it stays in the heap. It holds
     * a head of the most the front passes (max_header_bytes + 4 KiB) with room to spare. */
    size_t mem = cu_daemon_pool_bytes(cfg);

    return MHD_start_daemon(
        flags, 0, NULL, NULL, cu_server_on_request, app, MHD_OPTION_EXTERNAL_LOGGER, mhd_logger,
        app, MHD_OPTION_URI_LOG_CALLBACK, uri_seen, app, MHD_OPTION_CONNECTION_LIMIT,
        cfg->server.max_connections, MHD_OPTION_CONNECTION_TIMEOUT, cfg->server.idle_timeout,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, mem, MHD_OPTION_NOTIFY_COMPLETED,
        cu_server_on_completed, app, MHD_OPTION_NOTIFY_CONNECTION, on_connection, app,
        /* Not strict: in strict mode libmicrohttpd answers a missing Host or a space in the
         * target with an HTML page of its own; head_error and uri_seen check both and answer
         * with a problem document. */
        MHD_OPTION_STRICT_FOR_CLIENT, 0, MHD_OPTION_END);
}
