/*
 * work.c - the unit of work and the group committer.
 *
 * A unit keeps its records, events and effects in fixed arrays (every list has a maximum). What
 * was added before the unit was submitted (a read's record, a refusal's) is its base and
 * survives a re-run; what apply adds is undone with the savepoint when the unit fails or is
 * run again.
 *
 * The committer's queue is a list under one lock. The writer thread takes up to
 * group_units_max units at a time (no waiting to fill a group: units that arrive while a
 * group commits make the next one, so groups grow with the load), runs them in one write
 * transaction on its own connection, commits once, runs the effects of the units that
 * committed, and then calls every done callback, outside the lock.
 */
#include "store/work.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/json.h"
#include "base/log.h"
#include "base/mem.h"

struct effect {
    cu_work_effect_fn fn;
    void *arg;
};

struct change {
    cu_work_fn apply;
    void *arg;
};

struct cu_work {
    struct cu_work_ctx ctx;
    struct change changes[CU_WORK_CHANGES_MAX];
    size_t nchanges;
    struct cu_work_record recs[CU_WORK_RECORDS_MAX];
    size_t nrecs, recs_base;
    struct cu_work_event *evs; /* grown as events come, up to CU_WORK_EVENTS_MAX */
    size_t nevs, evs_base, evs_cap;
    struct effect effects[CU_WORK_EFFECTS_MAX];
    size_t neffects, effects_base;
    unsigned retries;
    bool readonly; /* cu_work_set_readonly: writes nothing, asks for no record or event */
    /* while the committer has it */
    cu_work_done_fn done;
    void *done_arg;
    enum cu_err rc;
    struct cu_work *next;
};

const unsigned cu_committer_size_le[CU_COMMITTER_SIZE_BUCKETS] = {1, 2, 4, 8, 16, 64, 256, 1024};
const unsigned cu_committer_latency_le_us[CU_COMMITTER_LATENCY_BUCKETS] = {
    250, 500, 1000, 2000, 5000, 10000, 50000, 250000};

/* The writer's nice value, when the process may set it (docs/internals/work.md). */
#define COMMITTER_NICE (-10)

struct cu_committer {
    struct cu_store *st;
    struct cu_db *db; /* the writer's connection, from the pool, held until free */
    struct cu_committer_opts opts;
    pthread_mutex_t mu;
    pthread_cond_t work; /* the writer waits here for units */
    struct cu_work *head, **tail;
    bool stop;
    bool joined;
    pthread_t thread;
    struct cu_committer_stats stats; /* under mu */
};

/* ---- the unit ---- */

/* cu_work_new(ctx, out): a unit for ctx (copied; NULL: the system acting now). Caller frees
 * with cu_work_free. */
enum cu_err cu_work_new(const struct cu_work_ctx *ctx, struct cu_work **out)
{
    struct cu_work *w = cu_calloc(1, sizeof(*w));

    *out = NULL;
    if (w == NULL)
        return CU_E_NOMEM;
    if (ctx != NULL) {
        w->ctx = *ctx;
    } else {
        snprintf(w->ctx.actor_type, sizeof(w->ctx.actor_type), "system");
        w->ctx.now_ms = cu_clock_now_ms();
    }
    *out = w;
    return CU_OK;
}

static void record_clear(struct cu_work_record *r)
{
    cu_free(r->target);
    cu_free(r->details);
    memset(r, 0, sizeof(*r));
}

/* rewind(w): drops what apply added, back to what w held when it was submitted. */
static void rewind_unit(struct cu_work *w)
{
    while (w->nrecs > w->recs_base)
        record_clear(&w->recs[--w->nrecs]);
    while (w->nevs > w->evs_base) {
        struct cu_work_event *e = &w->evs[--w->nevs];
        cu_free(e->body);
        e->body = NULL;
    }
    w->neffects = w->effects_base;
}

/* cu_work_free(w): frees w and what it owns; NULL does nothing. Not while the committer has
 * it. */
void cu_work_free(struct cu_work *w)
{
    if (w == NULL)
        return;
    w->recs_base = w->evs_base = 0;
    rewind_unit(w);
    cu_free(w->evs);
    cu_free(w);
}

/* cu_work_context(w): who acts and from where (owned by w; may be changed until w is
 * submitted). cu_work_context_of: the same, read-only. */
struct cu_work_ctx *cu_work_context(struct cu_work *w)
{
    return &w->ctx;
}

const struct cu_work_ctx *cu_work_context_of(const struct cu_work *w)
{
    return &w->ctx;
}

/* cu_work_add(w, apply, arg): a change the unit makes; the changes run in the order added, in
 * the unit's one savepoint (authentication may add one, the handler another). arg must stay
 * valid until the done callback. CU_E_INVALID past CU_WORK_CHANGES_MAX. */
enum cu_err cu_work_add(struct cu_work *w, cu_work_fn apply, void *arg)
{
    CU_ASSERT(apply != NULL);
    if (w->nchanges >= CU_WORK_CHANGES_MAX)
        return CU_E_INVALID;
    w->changes[w->nchanges].apply = apply;
    w->changes[w->nchanges].arg = arg;
    w->nchanges++;
    return CU_OK;
}

/* cu_work_add_first(w, apply, arg): cu_work_add, the change running before those added so far
 * (a check that must see the state before the unit's own changes: a session still live). */
enum cu_err cu_work_add_first(struct cu_work *w, cu_work_fn apply, void *arg)
{
    CU_ASSERT(apply != NULL);
    if (w->nchanges >= CU_WORK_CHANGES_MAX)
        return CU_E_INVALID;
    memmove(&w->changes[1], &w->changes[0], w->nchanges * sizeof(w->changes[0]));
    w->changes[0].apply = apply;
    w->changes[0].arg = arg;
    w->nchanges++;
    return CU_OK;
}

/* cu_work_pending(w): whether w has something to commit: a change, a record or an event. */
bool cu_work_pending(const struct cu_work *w)
{
    return w->nchanges > 0 || w->nrecs > 0 || w->nevs > 0;
}

/* canonical_text(v, out): v (an object, consumed) as canonical JSON text of at most
 * CU_WORK_DETAILS_MAX bytes; NULL v gives NULL. */
static enum cu_err canonical_text(json_t *v, char **out)
{
    struct cu_buf b;
    enum cu_err rc = CU_OK;

    *out = NULL;
    if (v == NULL)
        return CU_OK;
    cu_buf_init(&b, CU_WORK_DETAILS_MAX);
    if (!json_is_object(v))
        rc = CU_E_INVALID;
    if (rc == CU_OK)
        rc = cu_json_canonical(v, &b);
    if (rc == CU_OK && (*out = cu_buf_steal(&b)) == NULL)
        rc = CU_E_NOMEM;
    cu_buf_free(&b);
    json_decref(v);
    return rc;
}

/* cu_work_audit_text(w, action, target, outcome, details): cu_work_audit with the details as
 * canonical JSON text of an object, taken over (malloc'd; NULL: none, or the allocation that
 * failed, which gives CU_E_NOMEM). */
enum cu_err cu_work_audit_text(struct cu_work *w, const char *action, const char *target,
                               const char *outcome, char *details)
{
    struct cu_work_record *r;
    size_t tn = target ? strlen(target) : 0;

    CU_ASSERT(action != NULL && outcome != NULL);
    if (tn > CU_WORK_TARGET_MAX || (details && strlen(details) > CU_WORK_DETAILS_MAX)) {
        cu_free(details);
        return CU_E_TOO_LARGE;
    }
    if (w->nrecs >= CU_WORK_RECORDS_MAX) {
        cu_log(CU_LOG_ERROR, "work.records_full", CU_LS("action", action));
        cu_free(details);
        return CU_E_INVALID;
    }
    r = &w->recs[w->nrecs];
    r->target = cu_malloc(tn + 1);
    if (r->target == NULL) {
        cu_free(details);
        return CU_E_NOMEM;
    }
    memcpy(r->target, target ? target : "", tn + 1);
    r->action = action;
    r->outcome = outcome;
    r->details = details;
    w->nrecs++;
    return CU_OK;
}

/* cu_work_audit(w, action, target, outcome, details): asks for an audit record of w, committed
 * with it. action and outcome are static strings; target is copied; details (an object, or
 * NULL) is consumed. CU_E_TOO_LARGE for a target or details over their limits, CU_E_INVALID for
 * details that are not an object or a unit already holding CU_WORK_RECORDS_MAX records,
 * CU_E_NOMEM: nothing is added. */
enum cu_err cu_work_audit(struct cu_work *w, const char *action, const char *target,
                          const char *outcome, json_t *details)
{
    char *text = NULL;
    enum cu_err rc = canonical_text(details, &text);

    if (rc != CU_OK)
        return rc;
    return cu_work_audit_text(w, action, target, outcome, text);
}

/* cu_work_records(w, n): the records asked for so far (owned by w). */
const struct cu_work_record *cu_work_records(const struct cu_work *w, size_t *n)
{
    *n = w->nrecs;
    return w->recs;
}

/* cu_work_emit_text(w, type, subject, body): an event of w with its body as canonical JSON text
 * of an object, taken over (malloc'd; NULL: the allocation failed, CU_E_NOMEM). */
enum cu_err cu_work_emit_text(struct cu_work *w, const char *type, const char *subject, char *body)
{
    CU_ASSERT(type != NULL);
    if (body == NULL)
        return CU_E_NOMEM;
    if (strlen(body) > CU_WORK_DETAILS_MAX) {
        cu_free(body);
        return CU_E_TOO_LARGE;
    }
    if (w->nevs >= CU_WORK_EVENTS_MAX) {
        cu_free(body);
        cu_log(CU_LOG_ERROR, "work.events_full", CU_LS("type", type));
        return CU_E_INVALID;
    }
    if (w->nevs == w->evs_cap) {
        size_t cap = w->evs_cap ? w->evs_cap * 2 : 8;
        struct cu_work_event *evs;
        if (cap > CU_WORK_EVENTS_MAX)
            cap = CU_WORK_EVENTS_MAX;
        evs = cu_reallocarray(w->evs, cap, sizeof(*evs));
        if (evs == NULL) {
            cu_free(body);
            return CU_E_NOMEM;
        }
        w->evs = evs;
        w->evs_cap = cap;
    }
    w->evs[w->nevs].type = type;
    w->evs[w->nevs].body = body;
    snprintf(w->evs[w->nevs].subject, sizeof(w->evs[w->nevs].subject), "%s",
             subject ? subject : "");
    w->nevs++;
    return CU_OK;
}

/* cu_work_emit(w, type, body): an event of w (type static, body an object, consumed). Errors as
 * cu_work_audit's. */
enum cu_err cu_work_emit(struct cu_work *w, const char *type, json_t *body)
{
    char *text = NULL;
    enum cu_err rc;

    CU_ASSERT(type != NULL);
    if (body == NULL)
        return CU_E_INVALID;
    rc = canonical_text(body, &text);
    if (rc != CU_OK)
        return rc;
    return cu_work_emit_text(w, type, NULL, text);
}

/* cu_work_events(w, n): the events emitted so far (owned by w). */
const struct cu_work_event *cu_work_events(const struct cu_work *w, size_t *n)
{
    *n = w->nevs;
    return w->evs;
}

/* cu_work_after(w, fn, arg): runs fn(arg) once w is durable. CU_E_INVALID past
 * CU_WORK_EFFECTS_MAX. */
enum cu_err cu_work_after(struct cu_work *w, cu_work_effect_fn fn, void *arg)
{
    CU_ASSERT(fn != NULL);
    if (w->neffects >= CU_WORK_EFFECTS_MAX)
        return CU_E_INVALID;
    w->effects[w->neffects].fn = fn;
    w->effects[w->neffects].arg = arg;
    w->neffects++;
    return CU_OK;
}

/* cu_work_set_readonly(w): w writes nothing shared (work.h). */
void cu_work_set_readonly(struct cu_work *w)
{
    w->readonly = true;
}

/* cu_work_retries(w): how many times the committer ran w again after CU_E_BUSY. */
unsigned cu_work_retries(const struct cu_work *w)
{
    return w->retries;
}

void cu_work_actor_text(const struct cu_work_ctx *ctx, char *out, size_t cap)
{
    if (ctx->actor_id[0])
        snprintf(out, cap, "%s:%s", ctx->actor_type, ctx->actor_id);
    else
        snprintf(out, cap, "%s", ctx->actor_type);
}

size_t cu_work_audit_room(const struct cu_work *w)
{
    return CU_WORK_RECORDS_MAX - w->nrecs;
}

/* ---- the committer ---- */

/* run_once(c, w, broken): one run of w under a savepoint. *broken when the transaction itself
 * failed (a savepoint could not be opened, kept or undone): the whole group must go. */
static enum cu_err run_once(struct cu_committer *c, struct cu_work *w, bool *broken)
{
    struct cu_db *db = c->db;
    enum cu_err rc = cu_db_savepoint(db), rc2;

    if (rc != CU_OK) {
        *broken = true;
        return rc;
    }
    for (size_t i = 0; rc == CU_OK && i < w->nchanges; i++)
        rc = w->changes[i].apply(w, db, w->changes[i].arg);
    /* a unit that said it writes nothing ran in a group that may not hold the chain's lock */
    if (rc == CU_OK && w->readonly && (w->nrecs > 0 || w->nevs > 0)) {
        cu_log(CU_LOG_ERROR, "work.readonly_wrote",
               CU_LS("detail", "a read-only unit asked for an audit record or an event"));
        rc = CU_E_INVALID;
    }
    if (rc == CU_OK && w->nrecs > 0)
        rc = c->opts.audit.append
                 ? c->opts.audit.append(c->opts.audit.arg, db, w, w->recs, w->nrecs)
                 : CU_E_AUDIT;
    if (rc == CU_OK && w->nevs > 0 && c->opts.events.append != NULL)
        rc = c->opts.events.append(c->opts.events.arg, db, w, w->evs, w->nevs);
    rc2 = rc == CU_OK ? cu_db_savepoint_release(db) : cu_db_savepoint_rollback(db);
    if (rc2 != CU_OK) {
        *broken = true;
        return rc2;
    }
    return rc;
}

/* run_unit(c, w, broken): runs w, again after CU_E_BUSY up to retries_max times. */
static enum cu_err run_unit(struct cu_committer *c, struct cu_work *w, bool *broken)
{
    enum cu_err rc;

    for (unsigned tries = 0;; tries++) {
        rc = run_once(c, w, broken);
        if (rc != CU_OK)
            rewind_unit(w);
        if (rc != CU_E_BUSY || *broken || tries >= c->opts.retries_max)
            break;
        w->retries++;
        pthread_mutex_lock(&c->mu);
        c->stats.retries++;
        pthread_mutex_unlock(&c->mu);
    }
    return rc;
}

/* backoff(attempt): a short pause before a group runs again after losing a race. */
static void backoff(unsigned attempt)
{
    struct timespec ts = {0, (long)(1000000L << (attempt < 6 ? attempt : 6))};
    nanosleep(&ts, NULL);
}

/* bucket(le, n, v): the first bucket whose bound holds v, or n (above them all). */
static size_t bucket(const unsigned *le, size_t n, uint64_t v)
{
    size_t i = 0;
    while (i < n && v > le[i])
        i++;
    return i;
}

/* account(c, n, units_ok, failed, latency_us, committed): the group's figures. */
static void account(struct cu_committer *c, size_t n, size_t ok, uint64_t latency_us,
                    bool committed)
{
    size_t sb = bucket(cu_committer_size_le, CU_COMMITTER_SIZE_BUCKETS, n);
    size_t lb = bucket(cu_committer_latency_le_us, CU_COMMITTER_LATENCY_BUCKETS, latency_us);

    pthread_mutex_lock(&c->mu);
    c->stats.groups++;
    c->stats.commits += committed;
    c->stats.units += ok;
    c->stats.failed += n - ok;
    for (size_t i = sb; i < CU_COMMITTER_SIZE_BUCKETS; i++)
        c->stats.size_count[i]++;
    c->stats.size_sum += n;
    for (size_t i = lb; committed && i < CU_COMMITTER_LATENCY_BUCKETS; i++)
        c->stats.latency_count[i]++;
    if (committed)
        c->stats.latency_sum_us += latency_us;
    pthread_mutex_unlock(&c->mu);
}

/* run_group(c, units, n): the units in one transaction, each unit's rc set. */
static void run_group(struct cu_committer *c, struct cu_work **units, size_t n)
{
    struct cu_db *db = c->db;
    uint64_t t0 = 0;
    size_t ok = 0;
    bool committed = false;
    enum cu_err rc = CU_OK;

    /* A group of read-only units (another node's events fed into this node's state) takes no
     * lock: it would make the other nodes' groups wait for one that writes nothing. */
    bool lock = false;
    for (size_t i = 0; i < n && !lock; i++)
        lock = !units[i]->readonly;
    for (unsigned attempt = 0;; attempt++) {
        bool broken = false;
        rc = cu_db_begin(db, CU_TXN_WRITE);
        t0 = cu_clock_mono_ns();
        if (rc == CU_OK && lock && c->opts.audit.lock != NULL &&
            (rc = c->opts.audit.lock(c->opts.audit.arg, db)) != CU_OK)
            cu_db_rollback(db);
        for (size_t i = 0; rc == CU_OK && i < n && !broken; i++)
            units[i]->rc = run_unit(c, units[i], &broken);
        if (rc == CU_OK && broken) {
            rc = CU_E_STORE;
            cu_db_rollback(db);
        } else if (rc == CU_OK) {
            rc = cu_db_commit(db); /* rolls back when it fails */
        }
        if (rc != CU_E_BUSY || attempt >= c->opts.retries_max)
            break;
        /* The whole group lost a race (its BEGIN or its COMMIT): run it all again. */
        for (size_t i = 0; i < n; i++) {
            rewind_unit(units[i]);
            units[i]->retries++;
        }
        pthread_mutex_lock(&c->mu);
        c->stats.retries += n;
        pthread_mutex_unlock(&c->mu);
        backoff(attempt);
    }
    committed = rc == CU_OK;
    if (!committed) {
        cu_log(CU_LOG_ERROR, "work.group_failed", CU_LI("units", n),
               CU_LS("error", cu_err_str(rc)));
        for (size_t i = 0; i < n; i++) {
            if (units[i]->rc == CU_OK)
                units[i]->rc = rc;
            rewind_unit(units[i]);
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (units[i]->rc != CU_OK)
            continue;
        ok++;
        for (size_t k = 0; k < units[i]->neffects; k++)
            units[i]->effects[k].fn(units[i]->effects[k].arg, db);
    }
    account(c, n, ok, (cu_clock_mono_ns() - t0) / 1000u, committed);
}

static void *writer_main(void *arg)
{
    struct cu_committer *c = arg;
    // NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers, not of structs
    struct cu_work **units = cu_calloc(c->opts.group_units_max, sizeof(*units));

    pthread_setname_np(pthread_self(), "cu-commit");             /* as top -H and ps -L show it */
    CU_ASSERT_MSG(units != NULL, "the committer's group array"); /* made before the thread */
    /* Every write waits for this thread: it runs ahead of the request threads where the
     * process may raise a thread's priority (root, or CAP_SYS_NICE as a service manager can
     * grant); elsewhere it runs at theirs. */
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), COMMITTER_NICE) != 0)
        cu_log_msg(CU_LOG_INFO, "work.committer_priority_unchanged");
    pthread_mutex_lock(&c->mu);
    for (;;) {
        size_t n = 0;
        while (c->head == NULL && !c->stop)
            pthread_cond_wait(&c->work, &c->mu);
        if (c->head == NULL)
            break;
        while (c->head != NULL && n < c->opts.group_units_max) {
            units[n++] = c->head;
            c->head = c->head->next;
        }
        if (c->head == NULL)
            c->tail = &c->head;
        c->stats.queued -= n;
        pthread_mutex_unlock(&c->mu);
        run_group(c, units, n);
        for (size_t i = 0; i < n; i++) {
            struct cu_work *w = units[i];
            w->next = NULL;
            w->done(w->done_arg, w->rc); /* w may be gone once done returns */
        }
        pthread_mutex_lock(&c->mu);
    }
    pthread_mutex_unlock(&c->mu);
    cu_free(units);
    return NULL;
}

/* cu_committer_new(st, opts, out): starts the writer thread on a connection of its own. Caller
 * frees with cu_committer_free. */
enum cu_err cu_committer_new(struct cu_store *st, const struct cu_committer_opts *opts,
                             struct cu_committer **out)
{
    struct cu_committer *c = cu_calloc(1, sizeof(*c));
    struct cu_work **probe = NULL;
    enum cu_err rc = CU_E_NOMEM;

    *out = NULL;
    if (c == NULL)
        return rc;
    c->st = st;
    if (opts != NULL)
        c->opts = *opts;
    if (c->opts.group_units_max == 0)
        c->opts.group_units_max = CU_COMMITTER_GROUP_DEFAULT;
    if (c->opts.retries_max == 0)
        c->opts.retries_max = CU_COMMITTER_RETRIES_DEFAULT;
    c->tail = &c->head;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->work, NULL);
    /* The writer allocates its group array; check now that it can, so it never fails there. */
    // NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers, not of structs
    probe = cu_calloc(c->opts.group_units_max, sizeof(*probe));
    if (probe == NULL)
        goto out;
    cu_free(probe);
    rc = cu_store_acquire(st, &c->db);
    if (rc != CU_OK)
        goto out;
    if (pthread_create(&c->thread, NULL, writer_main, c) != 0) {
        rc = CU_E_INTERNAL;
        goto out;
    }
    *out = c;
    c = NULL;
out:
    if (c != NULL) {
        c->joined = true;
        cu_committer_free(c);
    }
    return rc;
}

/* cu_committer_stop(c): commits what is waiting (every done callback of an accepted unit has
 * returned when this does) and stops the thread; later submissions fail with
 * CU_E_UNAVAILABLE. Again, or NULL: nothing. Not concurrently with itself or _free. */
void cu_committer_stop(struct cu_committer *c)
{
    if (c == NULL || c->joined)
        return;
    pthread_mutex_lock(&c->mu);
    c->stop = true;
    pthread_cond_signal(&c->work);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    c->joined = true;
}

/* cu_committer_free(c): stops c as cu_committer_stop does and frees it; NULL does nothing. */
void cu_committer_free(struct cu_committer *c)
{
    if (c == NULL)
        return;
    cu_committer_stop(c);
    cu_store_release(c->db);
    pthread_cond_destroy(&c->work);
    pthread_mutex_destroy(&c->mu);
    cu_free(c);
}

/* cu_committer_submit(c, w, done, arg): hands w to the next group and returns at once. CU_OK:
 * done(arg, rc) is called exactly once, on the writer thread; w must stay valid (and unchanged)
 * until then. CU_E_UNAVAILABLE (stopped): done is not called. */
enum cu_err cu_committer_submit(struct cu_committer *c, struct cu_work *w, cu_work_done_fn done,
                                void *arg)
{
    CU_ASSERT(done != NULL);
    w->done = done;
    w->done_arg = arg;
    w->rc = CU_OK;
    w->next = NULL;
    w->recs_base = w->nrecs;
    w->evs_base = w->nevs;
    w->effects_base = w->neffects;
    pthread_mutex_lock(&c->mu);
    if (c->stop) {
        pthread_mutex_unlock(&c->mu);
        return CU_E_UNAVAILABLE;
    }
    *c->tail = w;
    c->tail = &w->next;
    c->stats.queued++;
    pthread_cond_signal(&c->work);
    pthread_mutex_unlock(&c->mu);
    return CU_OK;
}

/* What a caller of cu_committer_run waits on. */
struct sync_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    enum cu_err rc;
    bool done;
};

static void wake(void *arg, enum cu_err rc)
{
    struct sync_wait *s = arg;
    pthread_mutex_lock(&s->mu);
    s->rc = rc;
    s->done = true;
    pthread_cond_signal(&s->cv); /* under the lock: the waiter's frame goes once it is released */
    pthread_mutex_unlock(&s->mu);
}

/* cu_committer_run(c, w): submits w and waits for its outcome (for the CLI, background jobs and
 * tests; a request thread suspends instead). CU_E_UNAVAILABLE when c is stopped. */
enum cu_err cu_committer_run(struct cu_committer *c, struct cu_work *w)
{
    struct sync_wait s = {.rc = CU_OK, .done = false};
    enum cu_err rc;

    pthread_mutex_init(&s.mu, NULL);
    pthread_cond_init(&s.cv, NULL);
    rc = cu_committer_submit(c, w, wake, &s);
    if (rc != CU_OK)
        goto out;
    pthread_mutex_lock(&s.mu);
    while (!s.done)
        pthread_cond_wait(&s.cv, &s.mu);
    pthread_mutex_unlock(&s.mu);
    rc = s.rc;
out:
    pthread_cond_destroy(&s.cv);
    pthread_mutex_destroy(&s.mu);
    return rc;
}

/* cu_committer_stats(c, out): a snapshot of what c has done. */
struct cu_store *cu_committer_store(struct cu_committer *c)
{
    return c->st;
}

void cu_committer_stats(struct cu_committer *c, struct cu_committer_stats *out)
{
    pthread_mutex_lock(&c->mu);
    *out = c->stats;
    pthread_mutex_unlock(&c->mu);
}
