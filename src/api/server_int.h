/*
 * server_int.h - what the files of the HTTPS server share (server.c: the request path;
 * daemon.c: the libmicrohttpd glue and the deadlines; jobs.c: the background work). Not for
 * use outside them.
 */
#ifndef CU_API_SERVER_INT_H
#define CU_API_SERVER_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <microhttpd.h>

#include "api/server.h"

struct fconn;
struct cu_front;

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
    struct fconn *front;      /* the front's connection (front.c), or NULL */
};

/* The smallest connection memory pool: above 32 KiB, libmicrohttpd maps it (cu_daemon_start). */
#define MIN_CONNECTION_POOL ((size_t)36 * 1024)

/* daemon.c */

/* Where handlers read a request's headers and query arguments: libmicrohttpd's connection. */
extern const struct cu_req_source cu_daemon_source;

/* cu_daemon_mono_ms(): the monotonic clock in milliseconds. */
int64_t cu_daemon_mono_ms(void);

/* cu_daemon_conn_set(k, phase, deadline_ms): what k waits for and until when (0: no deadline);
 * NULL does nothing. */
void cu_daemon_conn_set(struct conn *k, enum conn_phase phase, int64_t deadline_ms);

/* cu_daemon_conn_of(c): the context of c's connection, or NULL when it could not be made. */
struct conn *cu_daemon_conn_of(struct MHD_Connection *c);

/* cu_daemon_watch_start(app): starts the watchdog; false (logged) when its thread cannot
 * start: the server must not then serve, since nothing would enforce the deadlines.
 * cu_daemon_watch_stop(): stops it (again: nothing). */
bool cu_daemon_watch_start(struct cu_app *app);
void cu_daemon_watch_stop(void);

/* cu_daemon_remote_ip(c, out, outlen): the client's address as text ("unknown" when the
 * library does not say). */
void cu_daemon_remote_ip(struct MHD_Connection *c, char *out, size_t outlen);

/* cu_daemon_read_pem(cfg, rel, out): a PEM file of the data directory, whole. Caller frees with
 * cu_daemon_wipe_free. */
CU_WUR enum cu_err cu_daemon_read_pem(const struct cu_config *cfg, const char *rel, char **out);
void cu_daemon_wipe_free(char *p);

/* cu_daemon_pool_bytes(cfg): the memory pool of each of the library's connections. */
size_t cu_daemon_pool_bytes(const struct cu_config *cfg);

/* cu_daemon_start(app): an HTTP daemon with the options of [server], serving
 * cu_server_on_request on the connections the front hands it, run by the front thread that
 * owns it (front.c); NULL when it cannot start. */
struct MHD_Daemon *cu_daemon_start(struct cu_app *app);

/* front.c: the TLS front. cu_front_start(app, cert, key, out) listens on [server]
 * listen_address and port, terminates TLS with cert and key (PEM; copied) and hands each
 * connection to the HTTP daemon of the thread that accepted it (one per [server] threads,
 * each made by cu_daemon_start). cu_front_quiesce(fr) stops accepting; cu_front_free(fr)
 * stops the daemons, sends what they answered, closes every connection and frees fr (NULL:
 * nothing).
 * From libmicrohttpd's callbacks: cu_front_link(k, fd) gives the connection of the socket fd
 * its front connection (k NULL: none can be kept); cu_front_unlink(k) lets it go;
 * cu_front_answered(k) says a request of k's was answered. */
CU_WUR enum cu_err cu_front_start(struct cu_app *app, char *cert, char *key, struct cu_front **out);
void cu_front_quiesce(struct cu_front *fr);
void cu_front_free(struct cu_front *fr);
void cu_front_link(struct conn *k, int fd);
void cu_front_unlink(struct conn *k);
void cu_front_answered(struct conn *k);
/* Around MHD_resume_connection, which in the front's external mode does not wake the daemon's
 * thread: f = cu_front_hold(k) (before: the connection may be gone right after), then
 * cu_front_resumed(f) has its thread run its daemon. NULL: nothing. */
struct fconn *cu_front_hold(struct conn *k);
void cu_front_resumed(struct fconn *f);

/* server.c: the security headers of every answer; a fresh request id. */
extern const char *const cu_security_headers[][2];
extern const size_t cu_security_headers_n;
void cu_server_request_id(char out[CU_REQUEST_ID_BYTES]);

/* server.c: libmicrohttpd's access handler and completion callback. */
enum MHD_Result cu_server_on_request(void *cls, struct MHD_Connection *c, const char *url,
                                     const char *method, const char *version,
                                     const char *upload_data, size_t *upload_size, void **con_cls);
void cu_server_on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                            enum MHD_RequestTerminationCode toe);

/* authn.c: cu_authn_request(req, resp, route): reads "Bearer <token>": an API key or a session
 * token; fills the principal, puts it in the request's unit of work, and checks it may use the
 * route (cu_access_decide), or fails resp (with the refusal audited in the unit). */
CU_WUR enum cu_err cu_authn_request(struct cu_req *req, struct cu_resp *resp,
                                    const struct cu_route *route);

/* cu_authn_preset(req, resp, route, p): the principal of an approved action run by custodia
 * (p, loaded as stored now, with the approved permission), put in the unit and checked
 * against the route as cu_authn_request checks a credential's. */
CU_WUR enum cu_err cu_authn_preset(struct cu_req *req, struct cu_resp *resp,
                                   const struct cu_route *route, const struct cu_principal *p);

/* cu_authn_hold_session(req): for a request made with a session, adds to its unit of work the
 * check that the session is still live when the unit commits (once; the touch authentication
 * added checks it too). CU_OK for other principals. */
CU_WUR enum cu_err cu_authn_hold_session(struct cu_req *req);

/* jobs.c: cu_jobs_start(app) starts the background thread (logged when it cannot);
 * cu_jobs_stop() stops it and waits for it. */
void cu_jobs_start(struct cu_app *app);
void cu_jobs_stop(void);

#endif
