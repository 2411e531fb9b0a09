/*
 * server.h - the HTTPS server: libmicrohttpd with GnuTLS, a thread pool over epoll, limits,
 * request ids, authentication, access log, metrics and a clean shutdown on SIGTERM/SIGINT.
 */
#ifndef CU_API_SERVER_H
#define CU_API_SERVER_H

#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>

#include "api/limit.h"
#include "access/approval.h"
#include "api/metrics.h"
#include "audit/audit.h"
#include "vault/vault.h"
#include "base/config.h"
#include "cases/playbook.h"
#include "crypto/keyring.h"
#include "identity/apikey.h"
#include "identity/identity.h"
#include "store/store.h"
#include "store/work.h"

/* The running service, shared by every request (read-only after start, but for counters). */
struct cu_app {
    struct cu_config cfg;
    struct cu_keyring *keyring;
    struct cu_store *store;
    struct cu_apikey_service *apikeys;
    struct cu_audit *audit;
    struct cu_committer *committer; /* the group committer of every unit of work */
    struct cu_lane *lane;           /* threads for requests that hash a password */
    struct cu_kek_source *kek;
    struct cu_vault *vault;
    struct cu_identity *identity;
    struct cu_approvals *approvals;   /* four-eyes requests (access/approval.h) */
    struct cu_ledger *ledger;         /* customers' accounts and transfers (ledger/ledger.h) */
    struct cu_monitor *monitor;       /* the monitoring engine and its decisions */
    struct cu_notify *notify;         /* notifications: queued in units, delivered by a worker */
    struct cu_cases *cases;           /* incident cases (cases/cases.h) */
    struct cu_playbooks *playbooks;   /* [cases] playbooks, or NULL (cases/playbook.h) */
    struct cu_playbook_effects pb_fx; /* what their steps do (app.c) */
    struct cu_metrics *metrics;
    struct cu_limiter *auth_limiter;         /* failed authentications per client */
    struct cu_buckets *rate_ip;              /* [limits]: requests per client address */
    struct cu_buckets *rate_principal;       /* per authenticated principal */
    struct cu_buckets *rate_writes;          /* changing requests per principal */
    struct cu_buckets *rate_signin;          /* sign-in attempts per login name */
    struct cu_access_policies *policies;     /* the access policy in force, followed */
    struct cu_access_policies *dry_policies; /* [access] dry_run_policy, or NULL */
    int64_t started_at_ms;
    unsigned threads;
    atomic_long inflight;           /* requests begun and not yet completed */
    atomic_bool draining;           /* stopping: requests commit on their thread, unsuspended */
    atomic_llong health_checked_ms; /* when the store was last checked for /v1/health */
    atomic_int health_rc;           /* and what the check found */
    atomic_bool audit_failing;      /* the last audit append failed */
    atomic_ullong purge_wanted;     /* erasures whose WAL purge failed (and the start's) */
    atomic_ullong purge_done;       /* of those, how many a later purge covered */
};

/* What the running service is made of: what the data directory opened (all borrowed; they
 * must outlive the app). */
struct cu_app_parts {
    const struct cu_config *cfg;
    struct cu_keyring *keyring;
    struct cu_store *store;
    struct cu_audit *audit;
    struct cu_committer *committer;          /* the one writer of the process */
    const struct cu_identity_opts *identity; /* its audit log is set to audit */
};

/* Bytes of the reason cu_app_new gives. */
#define CU_APP_WHY_BYTES 512

/* cu_app_new(parts, out, why): the service over the data directory: API keys, the KEK source
 * that follows the root key file, the vault and the sign-in service (what cu_server_run
 * serves). On error why says what could not start (and CU_E_CONFIG marks the configuration's
 * fault). Caller frees *out with cu_app_free. */
CU_WUR enum cu_err cu_app_new(const struct cu_app_parts *parts, struct cu_app **out,
                              char why[CU_APP_WHY_BYTES]);

/* cu_app_free(app): frees what cu_app_new made and what cu_server_run added (metrics, the
 * failure limiter); not the parts. NULL does nothing. */
void cu_app_free(struct cu_app *app);

/* cu_app_purge_deferred(app): notes that an erasure's purge of the write-ahead log failed (a
 * reader held it); the server retries until a purge succeeds. cu_app_purge_pending(app):
 * whether one is still owed (a retry in progress does not count as done). */
void cu_app_purge_deferred(struct cu_app *app);
bool cu_app_purge_pending(struct cu_app *app);

/* cu_app_playbook_effects(app): what playbook steps do on this server (app.c). */
const struct cu_playbook_effects *cu_app_playbook_effects(struct cu_app *app);

/* cu_app_case_changed(app, w, db, id, before, customer, rules, staff): after case id may have
 * reached a higher severity (before: its severity before, -1 for a new case) or a decision of
 * customer's with rules (names separated by spaces, or NULL) joined it: the on-call staff are
 * told when it reached high (staff_case), and the playbooks it now meets run, in w, on customer
 * (NULL: the case's own); staff: a staff member's change, whose playbook steps all wait for a
 * confirmation (cases.contain). */
CU_WUR enum cu_err cu_app_case_changed(struct cu_app *app, struct cu_work *w, struct cu_db *db,
                                       const char *id, int before, const char *customer,
                                       const char *rules, bool staff);

/* cu_app_self_unfreezes(app, w, db): the customers' own unfreezes that are due, lifted in w
 * (me_security_routes.c; the leading node's job). */
CU_WUR enum cu_err cu_app_self_unfreezes(struct cu_app *app, struct cu_work *w, struct cu_db *db);

/* cu_app_kept_ip(app, ip, out): ip as custodia keeps it wherever it keeps a client's address
 * (audit records, sign-in events, sessions, the access log): its keyed hash "hk:…" (the one
 * `custodia audit hash --kind ip` prints) when [audit] hash_source_ip is on, else ip itself.
 * "" for an empty ip, or when the hash cannot be made (nothing is kept rather than the clear
 * address). */
void cu_app_kept_ip(const struct cu_app *app, const char *ip, char out[64]);

/* cu_server_stop_signals(set): the signals that stop the server cleanly: SIGTERM, SIGINT,
 * SIGHUP and SIGQUIT. */
void cu_server_stop_signals(sigset_t *set);

/* cu_server_run(app): serves until a stop signal (cu_server_stop_signals; the caller must have
 * blocked them in every thread before starting any, and keep them blocked), then stops accepting,
 * lets requests in flight finish (up to 10 s), and returns CU_OK. Errors when the daemon cannot
 * start (the log says why). The caller owns app and frees it afterwards. */
CU_WUR enum cu_err cu_server_run(struct cu_app *app);

/* One request as libmicrohttpd would have parsed it, for cu_server_serve. */
struct cu_server_input {
    const char *method;                 /* "GET" */
    const char *target;                 /* as sent: path and query, before percent-decoding */
    const char *path;                   /* percent-decoded, without the query */
    const char *version;                /* "HTTP/1.1" */
    const struct cu_req_source *source; /* its headers and query arguments */
    void *source_arg;
    const char *body; /* may be NULL when body_len is 0 */
    size_t body_len;
    const char *remote_ip; /* NULL: 127.0.0.1 */
};

/* cu_server_serve(app, in, status, out): runs in through the request path the server runs,
 * but for the network, the deadlines and the threads: the checks of the head, routing,
 * authentication, authorisation, the handler (a password hash on the calling thread), and the
 * commit of its audit record before the answer. Sets *status and appends the body the client
 * would get to out. CU_OK, or CU_E_NOMEM / CU_E_TOO_LARGE when the answer could not be made
 * or kept. For the route fuzzer and tests; app is set up as for cu_server_run, but need not
 * be running. Not safe to call while cu_server_run serves. */
CU_WUR enum cu_err cu_server_serve(struct cu_app *app, const struct cu_server_input *in,
                                   int *status, struct cu_buf *out);

/* An approved action as custodia runs it (cu_server_execute). */
struct cu_server_exec {
    const struct cu_principal *principal; /* the requester as stored now, with approved bits */
    /* the change that marks the request executed, run first in the action's unit of work; it
     * must do nothing unless *ran is true when it runs */
    enum cu_err (*mark)(struct cu_work *w, struct cu_db *db, void *arg);
    void *mark_arg;
    bool *ran; /* set before the unit commits: the action succeeded and will commit */
};

/* cu_server_execute(app, in, x, status, out, detail, cap): runs in as x->principal through the
 * request path (no rate limit, no credential: the principal is given), on this thread, its
 * unit of work holding x->mark first. *status, the body (appended to out) and the problem's
 * detail ("" on success) are what the requester would have been answered. Safe to call while
 * the server serves (from a request's answer or the background thread). */
CU_WUR enum cu_err cu_server_execute(struct cu_app *app, const struct cu_server_input *in,
                                     const struct cu_server_exec *x, int *status,
                                     struct cu_buf *out, char *detail, size_t cap);

#endif
