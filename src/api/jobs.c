/*
 * jobs.c - the server's background work, on one thread: an audit checkpoint when one is due,
 * the purge an erasure could not finish, the access policy's reloads, the expiry of approval
 * requests (and the run of approved ones a stop interrupted), the ledger's expiries, the ends of
 * freezes and old idempotency keys, and the identity service's housekeeping.
 */
#include "api/server_int.h"

#include <pthread.h>

#include <string.h>
#include <time.h>

#include "api/handlers.h"
#include "audit/checkpoint.h"
#include "base/clock.h"
#include "base/log.h"
#include "ledger/ledger.h"
#include "monitor/monitor.h"
#include "cases/cases.h"
#include "notify/outbox.h"

static enum cu_err prune_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    (void)w;
    return cu_identity_prune(arg, db);
}

/* Once a minute, in a unit of work of the system's: forgets quiet lockout counters, expired
 * challenges and long-dead sessions. */
static void prune_identity(struct cu_app *app)
{
    struct cu_work *w = NULL;
    enum cu_err rc = app->identity != NULL ? cu_work_new(NULL, &w) : CU_OK;

    if (app->identity == NULL)
        return;
    if (rc == CU_OK)
        rc = cu_work_add(w, prune_apply, app->identity);
    if (rc == CU_OK)
        rc = cu_committer_run(app->committer, w);
    cu_work_free(w);
    if (rc != CU_OK)
        cu_log(CU_LOG_WARN, "identity.prune_failed", CU_LS("error", cu_err_str(rc)));
}

/* The ledger's housekeeping, in a unit of work of the system's each: the funds of pending
 * transfers whose timeout passed come back, freezes whose end passed end, and idempotency
 * keys older than [ledger] idempotency_hours are forgotten. */
struct ledger_job {
    struct cu_app *app;
    int what; /* 0 expire, 1 unfreeze, 2 forget keys */
    size_t done;
};

static enum cu_err ledger_job_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    static const char forget_sql[] = "DELETE FROM ledger_idempotency WHERE created_at < $1";
    struct ledger_job *j = arg;
    int64_t now = cu_work_context_of(w)->now_ms;

    j->done = 0;
    if (j->what == 0)
        return cu_ledger_expire(j->app->ledger, w, db, now, 1000, &j->done);
    if (j->what == 1)
        return cu_ledger_unfreeze_due(j->app->ledger, w, db, now, 1000, &j->done);
    const struct cu_val p[] = {
        CU_VI(now - (int64_t)j->app->cfg.ledger.idempotency_hours * 3600000)};
    enum cu_err rc = cu_db_exec(db, forget_sql, p, CU_NVALS(p));
    j->done = rc == CU_OK ? (size_t)cu_db_changes(db) : 0;
    return rc;
}

static void ledger_housekeep(struct cu_app *app, bool keys)
{
    for (int what = 0; what < (keys ? 3 : 2) && app->ledger != NULL; what++) {
        struct ledger_job j = {app, what, 0};
        struct cu_work *w = NULL;
        enum cu_err rc = cu_work_new(NULL, &w);
        if (rc == CU_OK)
            rc = cu_work_add(w, ledger_job_apply, &j);
        if (rc == CU_OK)
            rc = cu_committer_run(app->committer, w);
        cu_work_free(w);
        if (rc != CU_OK)
            cu_log(CU_LOG_WARN, "ledger.housekeeping_failed",
                   CU_LS("job", what == 0   ? "expire"
                                : what == 1 ? "unfreeze"
                                            : "forget_keys"),
                   CU_LS("error", cu_err_str(rc)));
        else if (j.done > 0 && what < 2)
            cu_log(CU_LOG_INFO, what == 0 ? "ledger.expired" : "ledger.unfrozen",
                   CU_LI("count", (int64_t)j.done));
    }
}

/* Customers' own unfreezes whose cool-down ended ([cases] self_unfreeze_minutes). */
static enum cu_err unfreeze_job_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    return cu_app_self_unfreezes(arg, w, db);
}

static void self_unfreezes(struct cu_app *app)
{
    struct cu_work *w = NULL;
    struct cu_db *db = NULL;
    char due[1][32];
    size_t n = 0;
    /* a look first, outside a unit: most seconds have nothing due */
    enum cu_err rc = cu_store_acquire(app->store, &db);

    if (rc == CU_OK)
        rc = cu_self_unfreeze_due(db, cu_clock_now_ms(), due, 1, &n);
    cu_store_release(db);
    if (rc != CU_OK || n == 0)
        return;
    rc = cu_work_new(NULL, &w);

    if (rc == CU_OK)
        rc = cu_work_add(w, unfreeze_job_apply, app);
    if (rc == CU_OK)
        rc = cu_committer_run(app->committer, w);
    cu_work_free(w);
    if (rc != CU_OK)
        cu_log(CU_LOG_WARN, "cases.self_unfreeze_failed", CU_LS("error", cu_err_str(rc)));
}

/* The notification outbox's housekeeping: sent notices older than [notify] keep_days go. */
static enum cu_err outbox_job_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct cu_app *app = arg;
    int64_t n = 0, now = cu_work_context_of(w)->now_ms;
    enum cu_err rc = cu_outbox_forget(db, now - (int64_t)app->cfg.notify.keep_days * 86400000, &n);

    if (rc == CU_OK && n > 0)
        rc = cu_work_audit(w, "notify.forget", "notifications", "success",
                           json_pack("{s:I, s:I}", "sent_notices", (json_int_t)n, "older_than_days",
                                     (json_int_t)app->cfg.notify.keep_days));
    return rc;
}

static void outbox_housekeep(struct cu_app *app)
{
    struct cu_work *w = NULL;
    enum cu_err rc = cu_work_new(NULL, &w);

    if (rc == CU_OK)
        rc = cu_work_add(w, outbox_job_apply, app);
    if (rc == CU_OK)
        rc = cu_committer_run(app->committer, w);
    cu_work_free(w);
    if (rc != CU_OK)
        cu_log(CU_LOG_WARN, "notify.housekeeping_failed", CU_LS("error", cu_err_str(rc)));
}

/* Monitoring's housekeeping: list items and snoozes whose time passed are removed, in a unit
 * of the system's, and the rules follow. */
static enum cu_err monitor_job_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct ledger_job *j = arg;
    int64_t n = 0;
    enum cu_err rc = cu_monitor_housekeep(j->app->monitor, w, db, &n);
    j->done = (size_t)n;
    return rc;
}

static void monitor_housekeep(struct cu_app *app)
{
    struct ledger_job j = {app, 0, 0};
    struct cu_work *w = NULL;
    enum cu_err rc;

    if (app->monitor == NULL)
        return;
    rc = cu_work_new(NULL, &w);
    if (rc == CU_OK)
        rc = cu_work_add(w, monitor_job_apply, &j);
    if (rc == CU_OK)
        rc = cu_committer_run(app->committer, w);
    cu_work_free(w);
    if (rc != CU_OK)
        cu_log(CU_LOG_WARN, "monitor.housekeeping_failed", CU_LS("error", cu_err_str(rc)));
    else if (j.done > 0)
        cu_log(CU_LOG_INFO, "monitor.expired", CU_LI("count", (int64_t)j.done));
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
    enum cu_err rc = cu_store_acquire(app->store, &db);
    if (rc == CU_OK)
        rc = cu_db_purge(db);
    cu_store_release(db);
    if (rc != CU_OK)
        return false;
    atomic_store(&app->purge_done, owed);
    cu_log_msg(CU_LOG_INFO, "vault.purged");
    return true;
}

/* The audit record of a policy taken or refused by a reload, as a unit of the system's. */
struct policy_note {
    const char *action;
    const char *digest;
    const char *error;
};

static enum cu_err policy_note_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    const struct policy_note *n = arg;
    (void)db;
    return cu_work_audit(w, n->action, "access:policy", n->error ? "failure" : "success",
                         n->error ? json_pack("{s:s}", "error", n->error)
                                  : json_pack("{s:s}", "sha256", n->digest));
}

/* reload_policy(app, h, dry): takes a new version of the access policy file (or of the dry-run
 * policy's, dry) when it parses; logs and audits what happened. A bad version is reported once
 * and leaves the policy in force. */
static void reload_policy(struct cu_app *app, struct cu_access_policies *h, bool dry)
{
    struct cu_policy_error err;
    struct policy_note note = {0};
    struct cu_work *w = NULL;
    char msg[512];
    bool changed = false;
    enum cu_err rc = cu_access_policies_reload(h, &changed, &err);
    const struct cu_policy *p = NULL;

    if (rc == CU_OK && !changed)
        return;
    if (rc != CU_OK) {
        cu_policy_error_format(&err, msg, sizeof msg);
        cu_log(CU_LOG_ERROR, dry ? "access.dry_run_policy_rejected" : "access.policy_rejected",
               CU_LS("error", msg),
               CU_LS("kept", dry ? "the dry run in force" : "the policy in force"));
        note.action = dry ? "access.dry_run_policy_reject" : "access.policy_reject";
        note.error = msg;
    } else {
        p = cu_access_policy_get(h);
        cu_log(CU_LOG_INFO, dry ? "access.dry_run_policy_loaded" : "access.policy_loaded",
               CU_LS("file", cu_policy_source(p)), CU_LS("sha256", cu_policy_digest(p)));
        note.action = dry ? "access.dry_run_policy_load" : "access.policy_load";
        note.digest = cu_policy_digest(p);
    }
    if (cu_work_new(NULL, &w) == CU_OK && cu_work_add(w, policy_note_apply, &note) == CU_OK &&
        cu_committer_run(app->committer, w) == CU_OK) {
        /* recorded */
    } else {
        cu_log_msg(CU_LOG_ERROR, "access.policy_not_audited");
    }
    cu_work_free(w);
    cu_access_policy_put(h, p);
}

/* The store-wide lock of the work that runs on one node at a time ("custodia" in ASCII). */
#define JOBS_LOCK INT64_C(0x637573746f646961)

/* leading(app, was): whether this node runs the shared jobs this round (cu_store_lead), with a
 * log line when that changes. */
static bool leading(struct cu_app *app, bool was)
{
    bool held = false;
    enum cu_err rc = cu_store_lead(app->store, JOBS_LOCK, &held);

    if (held && !was)
        cu_log(CU_LOG_INFO, "jobs.leading", CU_LS("store", cu_store_backend(app->store)));
    else if (!held && was)
        cu_log(CU_LOG_WARN, "jobs.standby",
               CU_LS("why", rc == CU_OK ? "another node leads" : cu_err_str(rc)));
    return held;
}

static void *checkpointer_main(void *arg)
{
    struct checkpointer *c = arg;
    unsigned ticks = 0, purge_at = 0, purge_every = 1;
    bool lead = false;
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
        /* What writes for every node (checkpoints, expiries, housekeeping) runs on the one that
         * leads; what is this node's own (its purge owed, its policy files) runs here. */
        lead = leading(c->app, lead);
        bool made = false;
        enum cu_err rc =
            lead ? cu_audit_checkpoint_make(c->app->audit, c->app->committer, false, &made, NULL)
                 : CU_OK;
        if (rc != CU_OK)
            cu_log(CU_LOG_ERROR, "audit.checkpoint_failed", CU_LS("error", cu_err_str(rc)));
        /* Each try holds writers back up to 250 ms: back off, from 1 s to 30 s, while a long
         * reader (an export) keeps the log. */
        if (cu_app_purge_pending(c->app) && ticks >= purge_at) {
            purge_every = retry_purge(c->app) ? 1 : (purge_every * 2 > 30 ? 30 : purge_every * 2);
            purge_at = ticks + purge_every;
        }
        if (c->app->policies != NULL)
            reload_policy(c->app, c->app->policies, false);
        if (c->app->dry_policies != NULL)
            reload_policy(c->app, c->app->dry_policies, true);
        if (lead && c->app->approvals != NULL && ticks % 5 == 0)
            cu_approvals_housekeep(c->app, cu_clock_now_ms());
        if (lead)
            ledger_housekeep(c->app, ticks % 60 == 30);
        if (lead && ticks % 5 == 2)
            monitor_housekeep(c->app);
        if (lead && ticks % 5 == 3)
            outbox_housekeep(c->app);
        if (lead)
            self_unfreezes(c->app);
        if (++ticks % 60 == 0 && lead)
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

static struct checkpointer jobs;

/* cu_jobs_start(app): starts the background thread (logged when it cannot start). */
void cu_jobs_start(struct cu_app *app)
{
    checkpointer_start(&jobs, app);
}

/* cu_jobs_stop(): stops it and waits for it. */
void cu_jobs_stop(void)
{
    checkpointer_stop(&jobs);
}
