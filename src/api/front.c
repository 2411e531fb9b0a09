/*
 * front.c - the front of the HTTPS server: it accepts the TCP connections, terminates TLS
 * (GnuTLS), checks the framing of each request (frame.c) and hands the plaintext to
 * libmicrohttpd over a socket pair (MHD_add_connection). A request the library would refuse
 * with an HTML page of its own, the front refuses with a problem document.
 *
 * Each front thread runs an epoll loop over its connections, edge-triggered: pump() makes
 * every step it can (read the client, check, write the library's side, read the library's
 * answer, send it) until none is left. One request at a time goes to the library: the next
 * is checked and passed once the library has answered the one before and its answer has been
 * read (the completion callback counts answers and wakes the connection's thread), so that a
 * refusal never interleaves with an answer, and an answer the library began is never followed
 * by a refusal.
 *
 * Deadlines and limits stay the library's and the watchdog's (daemon.c): the connection is
 * handed over at accept, before the handshake, so the header deadline covers the handshake,
 * and when the library's side closes, the front closes the client's.
 */
#include "api/server_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>

#include "api/frame.h"
#include "base/buf.h"
#include "base/clock.h"
#include "base/json.h"
#include "base/log.h"
#include "base/mem.h"
#include "crypto/crypto.h"

#define OUT_CAP 16384   /* the library's answer in hand, sent a TLS record at a time */
#define IN_FIRST 16384  /* the first size of a connection's input buffer */
#define IP_BUCKETS 1024 /* buckets of the connections-per-address table */
#define EVENTS_BATCH 64 /* events taken from epoll at once */
#define ROUNDS_MAX 256  /* steps one pump makes before it lets other connections run */
#define LINGER_MS 1000  /* how long a closing connection's late input is read and dropped */
#define TICK_MS 250     /* how often a thread looks at lingering connections */
#define ACCEPT_BATCH 32 /* connections one wake-up accepts at most */

enum ev_kind { EV_LISTEN, EV_WAKE, EV_MHD, EV_CLIENT, EV_PEER };

struct fconn;

struct ev {
    enum ev_kind kind;
    struct fconn *c;
};

struct fthread {
    struct cu_front *fr;
    pthread_t th;
    bool started;
    int ep, efd;
    struct MHD_Daemon *d; /* the thread's own HTTP daemon, run from its loop */
    bool mhd_due;         /* bytes were written to the daemon's side since it last ran */
    atomic_bool kick;     /* a connection of the daemon's was resumed */
    struct ev lev, wev, mev;
    pthread_mutex_t mu;  /* guards woken */
    struct fconn *woken; /* connections to pump: their request was answered */
    struct fconn *conns; /* every open connection of the thread (its own) */
    struct fconn *grave; /* closed in this batch of events: released after it */
    size_t nconns;
};

/* One client connection, from accept to close. refs: the thread's, the library's (from the
 * link in on_connection to its close notification), and one per place in a woken list. */
struct fconn {
    struct fthread *t;
    struct fconn *prev, *next; /* in t->conns */
    struct fconn *wnext;       /* in t->woken */
    struct fconn *gnext;       /* in t->grave */
    bool woken;                /* under t->mu */
    atomic_int refs;
    atomic_uint_fast64_t answered; /* requests the library has completed */
    struct fconn *lnext;           /* in the pending links, under link_mu */
    bool pending;                  /* under link_mu: not yet taken by the library */
    int link_fd;                   /* the library's end of the pair */
    int cfd, pfd;
    gnutls_session_t tls;
    bool tls_ready;
    struct ev cev, pev;
    bool handshaken, client_eof, peer_eof, peer_shut, closed, awaiting;
    bool refusing, owed, problem_sent, lingering;
    int64_t linger_until;
    int64_t head_since;  /* when the first byte of a head still incomplete came, or 0 */
    uint64_t resp_bytes; /* read from the library since the current head was passed */
    uint8_t *in;
    size_t in_len, in_cap, ok; /* ok: checked bytes at the start of in, not yet written */
    uint8_t out[OUT_CAP];
    size_t out_len, out_off;
    struct cu_frame frame;
    uint8_t addr[17]; /* family and address, the key of the per-address count */
    bool counted;     /* in the connection counts */
};

/* Connections open from one address. */
struct ipcount {
    struct ipcount *next;
    uint8_t addr[17];
    unsigned n;
};

struct cu_front {
    struct cu_app *app;
    int lfd;
    atomic_bool accepting, stop;
    atomic_uint open; /* connections open, against max_connections */
    pthread_mutex_t ip_mu;
    struct ipcount *ips[IP_BUCKETS]; /* against per_ip_connections */
    gnutls_certificate_credentials_t cred;
    gnutls_priority_t prio;
    bool have_cred, have_prio;
    size_t in_max;
    unsigned nthreads;
    struct fthread *t;
};

/* Connections handed to the library whose socket context has not taken them yet. */
static pthread_mutex_t link_mu = PTHREAD_MUTEX_INITIALIZER;
static struct fconn *links;

static void conn_put(struct fconn *c)
{
    if (atomic_fetch_sub(&c->refs, 1) == 1)
        cu_free(c);
}

/* ---- the library's side: linking a connection to its socket context ---- */

void cu_front_link(struct conn *k, int fd)
{
    pthread_mutex_lock(&link_mu);
    for (struct fconn **pp = &links; *pp != NULL; pp = &(*pp)->lnext) {
        if ((*pp)->link_fd == fd) {
            struct fconn *c = *pp;
            *pp = c->lnext;
            c->pending = false;
            if (k != NULL)
                k->front = c; /* the link's reference passes to k */
            else
                conn_put(c);
            break;
        }
    }
    pthread_mutex_unlock(&link_mu);
}

void cu_front_unlink(struct conn *k)
{
    if (k != NULL && k->front != NULL) {
        conn_put(k->front);
        k->front = NULL;
    }
}

static void wake(struct fconn *c)
{
    struct fthread *t = c->t;
    bool first = false;
    pthread_mutex_lock(&t->mu);
    if (!c->woken) {
        c->woken = true;
        atomic_fetch_add(&c->refs, 1);
        first = t->woken == NULL;
        c->wnext = t->woken;
        t->woken = c;
    }
    pthread_mutex_unlock(&t->mu);
    /* From the thread's own daemon (the usual case) the loop runs the list after the daemon
     * returns; from elsewhere it is woken. */
    if (first && !pthread_equal(pthread_self(), t->th)) {
        uint64_t one = 1;
        (void)!write(t->efd, &one, sizeof(one));
    }
}

void cu_front_answered(struct conn *k)
{
    if (k == NULL || k->front == NULL)
        return;
    atomic_fetch_add(&k->front->answered, 1);
    wake(k->front);
}

struct fconn *cu_front_hold(struct conn *k)
{
    if (k == NULL || k->front == NULL)
        return NULL;
    atomic_fetch_add(&k->front->refs, 1);
    return k->front;
}

void cu_front_resumed(struct fconn *f)
{
    if (f == NULL)
        return;
    atomic_store(&f->t->kick, true);
    wake(f);
    conn_put(f);
}

/* ---- connection limits: max_connections and per_ip_connections ---- */

static size_t ip_bucket(const uint8_t addr[17])
{
    uint32_t h = 2166136261u;
    for (int i = 0; i < 17; i++)
        h = (h ^ addr[i]) * 16777619u;
    return h % IP_BUCKETS;
}

/* Counts c's connection, or false (nothing counted) when a limit is reached. */
static bool limits_take(struct cu_front *fr, struct fconn *c)
{
    const struct cu_config *cfg = &fr->app->cfg;
    if (atomic_fetch_add(&fr->open, 1) >= cfg->server.max_connections) {
        atomic_fetch_sub(&fr->open, 1);
        return false;
    }
    if (cfg->server.per_ip_connections > 0) {
        size_t b = ip_bucket(c->addr);
        struct ipcount *e;
        pthread_mutex_lock(&fr->ip_mu);
        for (e = fr->ips[b]; e != NULL && memcmp(e->addr, c->addr, 17) != 0; e = e->next)
            ;
        if (e == NULL && (e = cu_calloc(1, sizeof(*e))) != NULL) {
            memcpy(e->addr, c->addr, 17);
            e->next = fr->ips[b];
            fr->ips[b] = e;
        }
        bool ok = e != NULL && e->n < cfg->server.per_ip_connections;
        if (ok)
            e->n++;
        pthread_mutex_unlock(&fr->ip_mu);
        if (!ok) {
            atomic_fetch_sub(&fr->open, 1);
            return false;
        }
    }
    c->counted = true;
    return true;
}

static void limits_release(struct cu_front *fr, struct fconn *c)
{
    if (!c->counted)
        return;
    c->counted = false;
    atomic_fetch_sub(&fr->open, 1);
    if (fr->app->cfg.server.per_ip_connections == 0)
        return;
    size_t b = ip_bucket(c->addr);
    pthread_mutex_lock(&fr->ip_mu);
    for (struct ipcount **pp = &fr->ips[b]; *pp != NULL; pp = &(*pp)->next) {
        if (memcmp((*pp)->addr, c->addr, 17) == 0) {
            struct ipcount *e = *pp;
            if (--e->n == 0) {
                *pp = e->next;
                cu_free(e);
            }
            break;
        }
    }
    pthread_mutex_unlock(&fr->ip_mu);
}

/* ---- a connection's steps ---- */

static void wipe_free(uint8_t *p, size_t n)
{
    if (p != NULL) {
        cu_crypto_wipe(p, n);
        cu_free(p);
    }
}

static void conn_close(struct fconn *c)
{
    struct fthread *t = c->t;
    if (c->closed)
        return;
    c->closed = true;
    limits_release(t->fr, c);
    if (c->tls_ready)
        gnutls_deinit(c->tls);
    close(c->cfd);
    close(c->pfd);
    pthread_mutex_lock(&link_mu);
    if (c->pending) {
        for (struct fconn **pp = &links; *pp != NULL; pp = &(*pp)->lnext) {
            if (*pp == c) {
                *pp = c->lnext;
                break;
            }
        }
        c->pending = false;
        conn_put(c);
    }
    pthread_mutex_unlock(&link_mu);
    wipe_free(c->in, c->in_cap);
    c->in = NULL;
    c->in_len = c->in_cap = c->ok = 0;
    cu_crypto_wipe(c->out, sizeof(c->out));
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        t->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    t->nconns--;
    c->gnext = t->grave; /* the thread's reference, released after this batch of events */
    t->grave = c;
}

/* Ends the connection: close_notify and a half-close, then the client's late input is read
 * and dropped for a moment, so that its unread bytes do not turn the close into a reset that
 * could lose the last answer. */
static void conn_finish(struct fconn *c)
{
    if (!c->handshaken || c->client_eof) {
        conn_close(c);
        return;
    }
    (void)gnutls_bye(c->tls, GNUTLS_SHUT_WR);
    (void)shutdown(c->cfd, SHUT_WR);
    c->lingering = true;
    c->linger_until = cu_daemon_mono_ms() + LINGER_MS;
}

static bool linger_read(struct fconn *c)
{
    uint8_t junk[4096];
    for (;;) {
        ssize_t r = read(c->cfd, junk, sizeof(junk));
        if (r > 0)
            continue;
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return false;
        conn_close(c);
        return true;
    }
}

static bool grow_in(struct fconn *c)
{
    size_t cap = c->in_cap == 0 ? IN_FIRST : c->in_cap * 2;
    if (cap > c->t->fr->in_max)
        cap = c->t->fr->in_max;
    if (cap <= c->in_cap)
        return false;
    uint8_t *n = cu_malloc(cap);
    if (n == NULL)
        return false;
    if (c->in_len > 0)
        memcpy(n, c->in, c->in_len);
    wipe_free(c->in, c->in_cap);
    c->in = n;
    c->in_cap = cap;
    return true;
}

static bool client_read(struct fconn *c)
{
    if (!c->handshaken || c->client_eof || c->refusing)
        return false;
    if (c->in_len == c->in_cap && !grow_in(c))
        return false;
    /* A client that sends its requests and then a FIN without close_notify still gets its
     * answers: GnuTLS would take the FIN as a fatal premature end and refuse to send, so the
     * socket is looked at first when GnuTLS holds nothing decrypted. */
    if (gnutls_record_check_pending(c->tls) == 0) {
        uint8_t b;
        ssize_t p = recv(c->cfd, &b, 1, MSG_PEEK);
        if (p == 0) {
            c->client_eof = true;
            return true;
        }
        if (p < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return false;
    }
    ssize_t r = gnutls_record_recv(c->tls, c->in + c->in_len, c->in_cap - c->in_len);
    if (r > 0) {
        c->in_len += (size_t)r;
        return true;
    }
    if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED)
        return false;
    if (r == 0 || gnutls_error_is_fatal((int)r)) {
        c->client_eof = true;
        return true;
    }
    return true; /* a warning alert: read on */
}

static void start_refusal(struct fconn *c)
{
    c->refusing = true;
    /* At a head, every request before has been answered and its answer read: the refusal is
     * owed. Inside a body, only when the library has not answered that request (checked
     * again when its side closes). */
    c->owed = !c->frame.in_body || atomic_load(&c->answered) < c->frame.heads;
}

static bool check_input(struct fconn *c)
{
    if (c->refusing || c->awaiting || c->frame.status != 0 || c->ok == c->in_len)
        return false;
    bool end;
    uint64_t heads = c->frame.heads;
    size_t k = cu_frame_scan(&c->frame, c->in + c->ok, c->in_len - c->ok, &end);
    c->ok += k;
    if (c->frame.heads != heads) {
        c->resp_bytes = 0;
        c->head_since = 0;
    }
    /* The header deadline of a request on a kept-alive connection counts from its first byte
     * (the library's deadline only starts when the front passes the head whole). */
    if (c->frame.status == 0 && !end && cu_frame_at_head(&c->frame) && c->ok < c->in_len &&
        c->head_since == 0)
        c->head_since = cu_daemon_mono_ms();
    if (end)
        c->awaiting = true;
    if (c->frame.status != 0)
        start_refusal(c);
    return k > 0 || end || c->frame.status != 0;
}

static bool peer_write(struct fconn *c)
{
    if (c->ok == 0 || c->peer_shut || c->peer_eof)
        return false;
    ssize_t w = write(c->pfd, c->in, c->ok);
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return false;
    if (w <= 0) {
        /* The library's side takes no more: it answered early (a refused credential, a body
         * too large) and closed. What the client still sends is dropped, but the answer
         * waiting in the pair is read on (peer_eof comes from the read side alone), or a
         * request whose body is still on its way would lose it. */
        c->peer_shut = true;
        /* the checked bytes go as if written, so the framing never reads them twice */
        size_t rest = c->in_len - c->ok;
        memmove(c->in, c->in + c->ok, rest);
        cu_crypto_wipe(c->in + rest, c->ok);
        c->in_len = rest;
        c->ok = 0;
        return true;
    }
    c->t->mhd_due = true;
    size_t rest = c->in_len - (size_t)w;
    memmove(c->in, c->in + w, rest);
    cu_crypto_wipe(c->in + rest, (size_t)w);
    c->in_len = rest;
    c->ok -= (size_t)w;
    return true;
}

static bool peer_read(struct fconn *c)
{
    if (c->peer_eof || c->out_len != 0)
        return false;
    ssize_t r = read(c->pfd, c->out, sizeof(c->out));
    if (r > 0) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        c->out_len = (size_t)r;
        c->out_off = 0;
        c->resp_bytes += (uint64_t)r;
        /* The interim answer to Expect: 100-continue is no answer to the request. */
        if (c->resp_bytes == (uint64_t)r && (size_t)r >= sizeof(cont) - 1 &&
            memcmp(c->out, cont, sizeof(cont) - 1) == 0)
            c->resp_bytes -= sizeof(cont) - 1;
        return true;
    }
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return false;
    c->peer_eof = true;
    return true;
}

static bool client_write(struct fconn *c)
{
    if (!c->handshaken || c->out_off == c->out_len)
        return false;
    ssize_t r = gnutls_record_send(c->tls, c->out + c->out_off, c->out_len - c->out_off);
    if (r > 0) {
        c->out_off += (size_t)r;
        if (c->out_off == c->out_len) {
            cu_crypto_wipe(c->out, c->out_len);
            c->out_len = c->out_off = 0;
        }
        return true;
    }
    if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED)
        return false;
    conn_close(c); /* the client is gone */
    return true;
}

/* The client's address as custodia keeps it (for the rare line that names it). */
static void kept_ip_of(struct cu_app *app, const struct fconn *c, char out[64])
{
    char ip[64] = "unknown";
    if (c->addr[0] == AF_INET || c->addr[0] == AF_INET6)
        inet_ntop(c->addr[0], c->addr + 1, ip, sizeof(ip));
    cu_app_kept_ip(app, ip, out);
}

/* The problem document of a refused request, in c->out (its answer so far has been sent). */
static void put_problem(struct fconn *c)
{
    const struct cu_frame *f = &c->frame;
    char id[CU_REQUEST_ID_BYTES];
    const char *reason, *code, *title; /* the status line's reason; the problem's type, title */
    char kept_ip[64];
    struct cu_buf body, all;
    enum cu_err rc;

    switch (f->status) {
    case 431:
        reason = "Request Header Fields Too Large";
        code = cu_err_problem_code(CU_E_TOO_LARGE);
        title = cu_err_title(CU_E_TOO_LARGE);
        break;
    case 505:
        reason = title = "HTTP Version Not Supported";
        code = "http_version_not_supported";
        break;
    default:
        reason = "Bad Request";
        code = cu_err_problem_code(CU_E_INVALID);
        title = cu_err_title(CU_E_INVALID);
        break;
    }
    cu_server_request_id(id);
    cu_buf_init(&body, 4096);
    cu_buf_init(&all, sizeof(c->out));
    rc = cu_buf_printf(&body, "{\"type\":\"%s%s\",\"title\":\"%s\",\"status\":%d,\"detail\":",
                       CU_PROBLEM_PREFIX, code, title, f->status);
    if (rc == CU_OK)
        rc = cu_json_escape(&body, f->detail, strlen(f->detail));
    if (rc == CU_OK)
        rc = cu_buf_printf(&body, ",\"request_id\":\"%s\"}\n", id);
    if (rc == CU_OK)
        rc = cu_buf_printf(&all,
                           "HTTP/1.1 %d %s\r\nContent-Type: application/problem+json\r\n"
                           "Content-Length: %zu\r\nConnection: close\r\n",
                           f->status, reason, body.len);
    for (size_t i = 0; rc == CU_OK && i < cu_security_headers_n; i++)
        rc =
            cu_buf_printf(&all, "%s: %s\r\n", cu_security_headers[i][0], cu_security_headers[i][1]);
    if (rc == CU_OK)
        rc = cu_buf_printf(&all, "X-Request-Id: %s\r\n\r\n", id);
    if (rc == CU_OK)
        rc = cu_buf_append(&all, body.data, body.len);
    if (rc == CU_OK && all.len <= sizeof(c->out)) {
        memcpy(c->out, all.data, all.len);
        c->out_len = all.len;
        c->out_off = 0;
    }
    cu_buf_free(&body);
    cu_buf_free(&all);
    cu_metrics_conn_event(c->t->fr->app->metrics, CU_CONN_MALFORMED);
    kept_ip_of(c->t->fr->app, c, kept_ip);
    cu_log(CU_LOG_INFO, "http.malformed", CU_LS("request_id", id), CU_LI("status", f->status),
           CU_LS("detail", f->detail), CU_LS("remote_ip", kept_ip));
}

/* What follows from the state reached: the library's turn is over, a half-close to pass on,
 * the refusal to send, the end. True when the connection is closing. */
static bool settle(struct fconn *c, bool *progress)
{
    /* The library's side is half-closed on a refusal, or once the client has closed and
     * nothing it sent can still pass (the requests it pipelined before its close are passed
     * first, each after the answer to the one before). */
    if ((c->refusing || (c->client_eof && !c->awaiting)) && c->ok == 0 && !c->peer_shut &&
        !c->peer_eof) {
        (void)shutdown(c->pfd, SHUT_WR);
        c->peer_shut = true;
        c->t->mhd_due = true;
        *progress = true;
    }
    if (c->awaiting && c->ok == 0 && c->out_len == 0 &&
        atomic_load(&c->answered) >= c->frame.heads) {
        /* Its answer was written before it was counted: once the pair reads empty, all of it
         * has been read. */
        if (!peer_read(c)) {
            c->awaiting = false;
            *progress = true;
        } else {
            *progress = true;
        }
    }
    if (c->peer_eof && c->out_len == 0) {
        if (c->refusing && c->owed && !c->problem_sent &&
            (!c->frame.in_body || c->resp_bytes == 0)) {
            c->problem_sent = true;
            put_problem(c);
            *progress = true;
            return false;
        }
        conn_finish(c);
        return true;
    }
    return false;
}

static void pump(struct fconn *c)
{
    int round;
    for (round = 0; round < ROUNDS_MAX && !c->closed; round++) {
        bool progress = false;
        if (c->lingering) {
            (void)linger_read(c);
            return;
        }
        if (!c->handshaken) {
            int r = gnutls_handshake(c->tls);
            if (r == GNUTLS_E_SUCCESS) {
                c->handshaken = true;
                progress = true;
            } else if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
                /* more of the handshake to come */
            } else if (gnutls_error_is_fatal(r)) {
                cu_metrics_conn_event(c->t->fr->app->metrics, CU_CONN_TLS_FAILED);
                conn_close(c);
                return;
            } else {
                progress = true; /* a warning alert: go on */
            }
        }
        progress |= client_read(c);
        progress |= check_input(c);
        progress |= peer_write(c);
        progress |= peer_read(c);
        progress |= client_write(c);
        if (c->closed || settle(c, &progress) || c->closed)
            return;
        if (!progress)
            return;
    }
    if (!c->closed && round == ROUNDS_MAX)
        wake(c); /* more to do: after the others have had their turn */
}

/* ---- accepting ---- */

static bool set_nodelay(int fd)
{
    int one = 1;
    return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == 0;
}

/* The client's address as the key of the per-address count. */
static void address_of(const struct sockaddr_storage *ss, struct fconn *c)
{
    memset(c->addr, 0, sizeof(c->addr));
    c->addr[0] = (uint8_t)ss->ss_family;
    if (ss->ss_family == AF_INET)
        memcpy(c->addr + 1, &((const struct sockaddr_in *)(const void *)ss)->sin_addr, 4);
    else if (ss->ss_family == AF_INET6)
        memcpy(c->addr + 1, &((const struct sockaddr_in6 *)(const void *)ss)->sin6_addr, 16);
}

static bool tls_init(struct cu_front *fr, struct fconn *c)
{
    static const gnutls_datum_t http11 = {(unsigned char *)"http/1.1", 8};
    if (gnutls_init(&c->tls, GNUTLS_SERVER | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL) < 0)
        return false;
    c->tls_ready = true;
    if (gnutls_priority_set(c->tls, fr->prio) < 0 ||
        gnutls_credentials_set(c->tls, GNUTLS_CRD_CERTIFICATE, fr->cred) < 0)
        return false;
    gnutls_certificate_server_set_request(c->tls, GNUTLS_CERT_IGNORE);
    (void)gnutls_alpn_set_protocols(c->tls, &http11, 1, 0);
    gnutls_transport_set_int(c->tls, c->cfd);
    return true;
}

static void conn_open(struct fthread *t, int fd, const struct sockaddr_storage *ss, socklen_t sl)
{
    struct cu_front *fr = t->fr;
    int sp[2];
    struct fconn *c = cu_calloc(1, sizeof(*c));

    if (c == NULL) {
        close(fd);
        return;
    }
    /* The limits first: a flood at them costs an accept and a close, nothing more. */
    address_of(ss, c);
    if (!limits_take(fr, c)) {
        cu_metrics_conn_event(fr->app->metrics, CU_CONN_REFUSED);
        close(fd);
        cu_free(c);
        return;
    }
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp) != 0) {
        limits_release(fr, c);
        close(fd);
        cu_free(c);
        return;
    }
    c->t = t;
    atomic_init(&c->refs, 1);
    c->cfd = fd;
    c->pfd = sp[0];
    c->link_fd = sp[1];
    c->cev = (struct ev){EV_CLIENT, c};
    c->pev = (struct ev){EV_PEER, c};
    /* The pool keeps 8 KiB for the answer's head and the library's own records. */
    cu_frame_init(&c->frame, fr->app->cfg.server.max_header_bytes + 4096,
                  cu_daemon_pool_bytes(&fr->app->cfg) - 8192);
    (void)set_nodelay(fd);
    c->next = t->conns;
    if (t->conns != NULL)
        t->conns->prev = c;
    t->conns = c;
    t->nconns++;
    if (!tls_init(fr, c)) {
        close(sp[1]);
        conn_close(c);
        return;
    }
    struct epoll_event ce = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                             .data.ptr = &c->cev};
    struct epoll_event pe = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                             .data.ptr = &c->pev};
    if (epoll_ctl(t->ep, EPOLL_CTL_ADD, fd, &ce) != 0 ||
        epoll_ctl(t->ep, EPOLL_CTL_ADD, c->pfd, &pe) != 0) {
        close(sp[1]);
        conn_close(c);
        return;
    }
    pthread_mutex_lock(&link_mu);
    atomic_fetch_add(&c->refs, 1);
    c->pending = true;
    c->lnext = links;
    links = c;
    pthread_mutex_unlock(&link_mu);
    /* The library takes its end (and closes it, also when it refuses it). */
    if (MHD_add_connection(t->d, sp[1], (const struct sockaddr *)ss, sl) != MHD_YES) {
        cu_metrics_conn_event(fr->app->metrics, CU_CONN_REFUSED);
        conn_close(c);
        return;
    }
    t->mhd_due = true;
    pump(c);
}

static void accept_some(struct fthread *t)
{
    struct cu_front *fr = t->fr;
    bool accepted = false;
    for (int i = 0; i < ACCEPT_BATCH && atomic_load(&fr->accepting); i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        memset(&ss, 0, sizeof(ss));
        int fd = accept4(fr->lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            conn_open(t, fd, &ss, sl);
            accepted = true;
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            static atomic_llong last;
            int64_t now = cu_daemon_mono_ms();
            if (now - atomic_exchange(&last, now) > 1000)
                cu_log(CU_LOG_WARN, "http.accept_failed", CU_LS("error", strerror(errno)),
                       CU_LS("hint", "raise the open-file limit or lower max_connections"));
            struct timespec ts = {0, 10L * 1000 * 1000};
            nanosleep(&ts, NULL); /* the listener stays readable: give others a moment */
        }
        break;
    }
    /* The kernel wakes the first thread waiting on the listener: this one goes to the back of
     * the line, so that connections spread over the threads rather than pile on one. */
    if (accepted && atomic_load(&fr->accepting)) {
        struct epoll_event le = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.ptr = &t->lev};
        (void)epoll_ctl(t->ep, EPOLL_CTL_DEL, fr->lfd, NULL);
        (void)epoll_ctl(t->ep, EPOLL_CTL_ADD, fr->lfd, &le);
    }
}

/* ---- the threads ---- */

static void release_grave(struct fthread *t)
{
    while (t->grave != NULL) {
        struct fconn *c = t->grave;
        t->grave = c->gnext;
        conn_put(c);
    }
}

static void run_woken(struct fthread *t)
{
    uint64_t v;
    (void)!read(t->efd, &v, sizeof(v));
    pthread_mutex_lock(&t->mu);
    struct fconn *list = t->woken;
    t->woken = NULL;
    pthread_mutex_unlock(&t->mu);
    if (atomic_exchange(&t->kick, false))
        t->mhd_due = true;
    /* A connection stays marked woken (its link untouched by wake) until it is taken. */
    while (list != NULL) {
        struct fconn *c = list;
        pthread_mutex_lock(&t->mu);
        list = c->wnext;
        c->woken = false;
        pthread_mutex_unlock(&t->mu);
        if (!c->closed)
            pump(c);
        conn_put(c);
    }
    if (atomic_exchange(&t->kick, false))
        t->mhd_due = true;
}

/* Closes the connections whose linger is over, and those whose head is late (counted and
 * logged as the watchdog's are). */
static void expire(struct fthread *t)
{
    struct cu_app *app = t->fr->app;
    int64_t now = cu_daemon_mono_ms();
    int64_t head_ms = 1000LL * app->cfg.server.header_timeout;
    for (struct fconn *c = t->conns, *next; c != NULL; c = next) {
        next = c->next;
        if (c->lingering && now > c->linger_until) {
            conn_close(c);
        } else if (!c->lingering && c->head_since != 0 && now - c->head_since > head_ms) {
            cu_metrics_conn_event(app->metrics, CU_CONN_HEADER_DEADLINE);
            cu_log(CU_LOG_INFO, "http.deadline_closed", CU_LS("phase", "header"),
                   CU_LI("late_ms", now - c->head_since - head_ms));
            conn_close(c);
        }
    }
}

/* Runs the thread's daemon on what it has been given, then the connections whose requests it
 * answered, as long as that gives it more (a pipelined request), a few times at most. */
static void run_daemon(struct fthread *t)
{
    for (int i = 0; i < 8 && t->d != NULL && t->mhd_due; i++) {
        t->mhd_due = false;
        (void)MHD_run(t->d);
        run_woken(t);
    }
}

/* How long the thread may sleep: not at all while its daemon has work left (the bounded loop
 * of run_daemon stopped short, a resume is pending, a wake-up is queued). */
static int wait_ms(struct fthread *t)
{
    MHD_UNSIGNED_LONG_LONG ms;
    pthread_mutex_lock(&t->mu);
    bool queued = t->woken != NULL;
    pthread_mutex_unlock(&t->mu);
    if (t->mhd_due || queued || atomic_load(&t->kick))
        return 0;
    if (t->d != NULL && MHD_get_timeout(t->d, &ms) == MHD_YES && ms < TICK_MS)
        return (int)ms;
    return TICK_MS;
}

static void *thread_main(void *arg)
{
    struct fthread *t = arg;
    struct cu_front *fr = t->fr;
    struct epoll_event evs[EVENTS_BATCH];
    int64_t last_tick = cu_daemon_mono_ms(), stop_at = 0;

    pthread_setname_np(pthread_self(), "cu-front");
    for (;;) {
        if (atomic_load(&fr->stop)) {
            int64_t now = cu_daemon_mono_ms();
            if (stop_at == 0) {
                /* The daemon closes its side of every connection; the front then sends what
                 * it had answered and closes the clients'. */
                stop_at = now + 2000;
                MHD_stop_daemon(t->d);
                t->d = NULL;
                run_woken(t);
            }
            if (t->nconns == 0 || now > stop_at)
                break;
        }
        int n = epoll_wait(t->ep, evs, EVENTS_BATCH, wait_ms(t));
        for (int i = 0; i < n; i++) {
            struct ev *e = evs[i].data.ptr;
            if (e->kind == EV_LISTEN)
                accept_some(t);
            else if (e->kind == EV_WAKE)
                run_woken(t);
            else if (e->kind == EV_MHD)
                t->mhd_due = true;
            else if (!e->c->closed)
                pump(e->c);
        }
        if (n == 0) {
            t->mhd_due = true; /* the daemon's timeouts */
            run_woken(t);      /* and what was queued while the thread was busy */
        }
        run_daemon(t);
        release_grave(t);
        int64_t now = cu_daemon_mono_ms();
        if (now - last_tick >= TICK_MS) {
            last_tick = now;
            expire(t);
            release_grave(t);
        }
    }
    while (t->conns != NULL)
        conn_close(t->conns);
    run_woken(t); /* gives back the references of what was still queued */
    release_grave(t);
    return NULL;
}

/* ---- start and stop ---- */

static enum cu_err listen_on(struct cu_front *fr)
{
    const struct cu_config *cfg = &fr->app->cfg;
    struct sockaddr_storage ss;
    socklen_t sl;
    int one = 1;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, cfg->server.listen_address, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(cfg->server.port);
        sl = sizeof(*v4);
    } else if (inet_pton(AF_INET6, cfg->server.listen_address, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(cfg->server.port);
        sl = sizeof(*v6);
    } else {
        return CU_E_CONFIG;
    }
    fr->lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fr->lfd < 0)
        return CU_E_IO;
    (void)setsockopt(fr->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fr->lfd, (struct sockaddr *)&ss, sl) != 0 || listen(fr->lfd, SOMAXCONN) != 0) {
        cu_log(CU_LOG_ERROR, "server.listen_failed", CU_LS("error", strerror(errno)));
        return CU_E_IO;
    }
    return CU_OK;
}

static enum cu_err tls_setup(struct cu_front *fr, char *cert, char *key)
{
    gnutls_datum_t c = {(unsigned char *)cert, (unsigned)strlen(cert)};
    gnutls_datum_t k = {(unsigned char *)key, (unsigned)strlen(key)};
    const char *where = NULL;
    int r = gnutls_certificate_allocate_credentials(&fr->cred);
    if (r < 0)
        return CU_E_TLS;
    fr->have_cred = true;
    r = gnutls_certificate_set_x509_key_mem2(fr->cred, &c, &k, GNUTLS_X509_FMT_PEM, NULL, 0);
    if (r < 0) {
        cu_log(CU_LOG_ERROR, "tls.key_refused", CU_LS("error", gnutls_strerror(r)));
        return CU_E_TLS;
    }
    r = gnutls_priority_init(&fr->prio, fr->app->cfg.server.tls_priorities, &where);
    if (r < 0) {
        cu_log(CU_LOG_ERROR, "tls.priorities_refused", CU_LS("error", gnutls_strerror(r)),
               CU_LS("at", where != NULL ? where : ""));
        return CU_E_TLS;
    }
    fr->have_prio = true;
    return CU_OK;
}

/* Each connection takes three descriptors (the client's and the pair): the soft limit is
 * raised as far as the hard one allows for max_connections of them. */
static void raise_file_limit(const struct cu_config *cfg)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)cfg->server.max_connections * 3 + 512;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want)
        return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
    (void)setrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < want)
        cu_log(CU_LOG_WARN, "server.file_limit_low", CU_LI("limit", rl.rlim_cur),
               CU_LI("wanted", want),
               CU_LS("hint", "raise the hard open-file limit (LimitNOFILE=) or lower "
                             "[server] max_connections"));
}

void cu_front_free(struct cu_front *fr)
{
    if (fr == NULL)
        return;
    atomic_store(&fr->accepting, false);
    atomic_store(&fr->stop, true);
    for (unsigned i = 0; i < fr->nthreads; i++) {
        struct fthread *t = &fr->t[i];
        if (t->started) {
            uint64_t one = 1;
            (void)!write(t->efd, &one, sizeof(one));
            pthread_join(t->th, NULL);
        } else if (t->d != NULL) {
            MHD_stop_daemon(t->d);
        }
        if (t->ep >= 0)
            close(t->ep);
        if (t->efd >= 0)
            close(t->efd);
        pthread_mutex_destroy(&t->mu);
    }
    for (size_t b = 0; b < IP_BUCKETS; b++) {
        while (fr->ips[b] != NULL) {
            struct ipcount *e = fr->ips[b];
            fr->ips[b] = e->next;
            cu_free(e);
        }
    }
    pthread_mutex_destroy(&fr->ip_mu);
    if (fr->lfd >= 0)
        close(fr->lfd);
    if (fr->have_prio)
        gnutls_priority_deinit(fr->prio);
    if (fr->have_cred)
        gnutls_certificate_free_credentials(fr->cred);
    cu_free(fr->t);
    cu_free(fr);
}

/* A thread's epoll set: the listener, its wake-up, its daemon's own epoll set. */
static bool thread_setup(struct cu_front *fr, struct fthread *t)
{
    const union MHD_DaemonInfo *di;
    t->lev = (struct ev){EV_LISTEN, NULL};
    t->wev = (struct ev){EV_WAKE, NULL};
    t->mev = (struct ev){EV_MHD, NULL};
    t->ep = epoll_create1(EPOLL_CLOEXEC);
    t->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    t->d = cu_daemon_start(fr->app);
    if (t->ep < 0 || t->efd < 0 || t->d == NULL)
        return false;
    di = MHD_get_daemon_info(t->d, MHD_DAEMON_INFO_EPOLL_FD);
    struct epoll_event le = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.ptr = &t->lev};
    struct epoll_event we = {.events = EPOLLIN, .data.ptr = &t->wev};
    struct epoll_event me = {.events = EPOLLIN, .data.ptr = &t->mev};
    return di != NULL && epoll_ctl(t->ep, EPOLL_CTL_ADD, fr->lfd, &le) == 0 &&
           epoll_ctl(t->ep, EPOLL_CTL_ADD, t->efd, &we) == 0 &&
           epoll_ctl(t->ep, EPOLL_CTL_ADD, di->epoll_fd, &me) == 0;
}

enum cu_err cu_front_start(struct cu_app *app, char *cert, char *key, struct cu_front **out)
{
    struct cu_front *fr = cu_calloc(1, sizeof(*fr));
    enum cu_err rc;

    *out = NULL;
    if (fr == NULL)
        return CU_E_NOMEM;
    fr->app = app;
    fr->lfd = -1;
    pthread_mutex_init(&fr->ip_mu, NULL);
    fr->in_max = app->cfg.server.max_header_bytes + 4096 + IN_FIRST;
    fr->nthreads = app->threads > 0 ? app->threads : 1;
    fr->t = cu_calloc(fr->nthreads, sizeof(*fr->t));
    if (fr->t == NULL) {
        fr->nthreads = 0;
        cu_front_free(fr);
        return CU_E_NOMEM;
    }
    for (unsigned i = 0; i < fr->nthreads; i++) {
        fr->t[i].ep = fr->t[i].efd = -1;
        fr->t[i].fr = fr;
        pthread_mutex_init(&fr->t[i].mu, NULL);
    }
    raise_file_limit(&app->cfg);
    rc = tls_setup(fr, cert, key);
    if (rc == CU_OK)
        rc = listen_on(fr);
    atomic_store(&fr->accepting, true);
    for (unsigned i = 0; rc == CU_OK && i < fr->nthreads; i++) {
        struct fthread *t = &fr->t[i];
        if (!thread_setup(fr, t) || pthread_create(&t->th, NULL, thread_main, t) != 0) {
            rc = CU_E_INTERNAL;
            break;
        }
        t->started = true;
    }
    if (rc != CU_OK) {
        cu_front_free(fr);
        return rc;
    }
    *out = fr;
    return CU_OK;
}

void cu_front_quiesce(struct cu_front *fr)
{
    if (fr == NULL)
        return;
    atomic_store(&fr->accepting, false);
    for (unsigned i = 0; i < fr->nthreads; i++)
        (void)epoll_ctl(fr->t[i].ep, EPOLL_CTL_DEL, fr->lfd, NULL);
}
