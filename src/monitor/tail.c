/*
 * tail.c - several nodes: the events the other nodes decide, fed into this node's state
 * (monitor.h, cu_monitor_tail_start; docs/monitoring.md, "Several nodes").
 *
 * Every decided event is a row of monitor_events whose seq is the next value of monitor_head,
 * taken under its row lock in the deciding unit: seqs have no gaps and follow the commit order,
 * so a statement's snapshot always sees a prefix of them, and reading "seq > the last seen" in
 * order misses none. The tailer's thread reads those rows on a connection of the pool (only
 * committed rows, never a group's own), parses the other nodes' events, and hands them to the
 * committer's thread in a unit of work of their own, which feeds them into the state (the
 * state is only ever touched on that thread). Rows of this node pass over: they were fed when
 * decided. Rows a rule-set change already fed (the state it built from the stored events)
 * pass over too.
 *
 * Each round also reads monitor_head.config, which every change of the managed lists, the
 * snoozes and the rule sets counts in its unit: when it moved, a unit makes this node's lists,
 * snoozes and sets in force what the store holds (cu_monitor_follow).
 */
#include "monitor/monitor.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"
#include "monitor/monitor_int.h"

/* Rows read at a time, and other nodes' events fed in one unit. */
#define TAIL_BATCH 256

struct tail_batch {
    struct cu_monitor *m;
    struct cu_mon_event *evs;
    int64_t *seqs;
    int64_t *decided_at;
    size_t n;
    int64_t last; /* the last seq read, fed or passed over */
    bool fed;     /* a run of the unit already fed them (a second run must not) */
};

struct cu_monitor_tailer {
    struct cu_monitor *m;
    struct cu_store *st;
    struct cu_committer *committer;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop, started;
    struct tail_batch b;
    int64_t config_seen; /* monitor_head.config when the lists and sets were last followed */
};

/* follow_apply: on the committer's thread, in a unit: the lists, snoozes and rule sets as the
 * store holds them, after another node changed them. */
static enum cu_err follow_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    return cu_monitor_follow(arg, db, cu_work_context_of(w)->now_ms);
}

/* follow(t, db): when monitor_head.config moved, the changes followed. */
static enum cu_err follow(struct cu_monitor_tailer *t, struct cu_db *db)
{
    int64_t config = 0;
    struct cu_work *w = NULL;
    enum cu_err rc =
        cu_monitor_count(db, "SELECT config FROM monitor_head WHERE id = 1", NULL, 0, &config);

    if (rc != CU_OK || config == t->config_seen)
        return rc;
    rc = cu_work_new(NULL, &w);
    if (rc == CU_OK) {
        /* it writes the lists and sets in memory, not the store */
        cu_work_set_readonly(w);
        rc = cu_work_add(w, follow_apply, t->m);
    }
    if (rc == CU_OK)
        rc = cu_committer_run(t->committer, w);
    cu_work_free(w);
    if (rc == CU_OK)
        t->config_seen = config;
    return rc;
}

/* feed_apply: on the committer's thread, in the unit: the batch into the state. */
static enum cu_err feed_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct tail_batch *b = arg;
    struct cu_monitor *m = b->m;
    int64_t now = cu_work_context_of(w)->now_ms;

    (void)db;
    if (b->fed)
        return CU_OK;
    b->fed = true;
    for (size_t i = 0; i < b->n; i++) {
        if (b->seqs[i] <= m->state_seq)
            continue; /* a rule-set change fed it from the store already */
        if (cu_mon_state_add(m->eng.st, &b->evs[i]) != CU_OK)
            atomic_fetch_add(&m->unrecorded, 1);
        atomic_fetch_add(&m->tail_fed, 1);
        atomic_store(&m->tail_lag_ms, now > b->decided_at[i] ? now - b->decided_at[i] : 0);
    }
    return CU_OK;
}

/* read_batch(t, db, more): the rows after the tail, in order; the others' events parsed. */
static enum cu_err read_batch(struct cu_monitor_tailer *t, struct cu_db *db, bool *more)
{
    static const char sql[] = "SELECT seq, decided_at, CASE WHEN node = $2 THEN '' ELSE body END, "
                              "node = $2 FROM monitor_events WHERE seq > $1 ORDER BY seq LIMIT $3";
    struct cu_monitor *m = t->m;
    struct tail_batch *b = &t->b;
    const struct cu_val p[] = {CU_VI(atomic_load(&m->tail_seq)), CU_VT(m->node), CU_VI(TAIL_BATCH)};
    struct cu_mon_parse_opts o = {.types = &m->types};
    char err[CU_MON_ERR_BYTES];
    struct cu_stmt *st = NULL;
    bool row = false;
    size_t rows = 0;
    enum cu_err rc = cu_db_query(db, sql, p, CU_NVALS(p), &st);

    b->n = 0;
    b->last = atomic_load(&m->tail_seq);
    b->fed = false;
    while (rc == CU_OK && (rc = cu_stmt_next(st, &row)) == CU_OK && row) {
        size_t len = 0;
        const char *body = cu_stmt_text(st, 2, &len);
        rows++;
        b->last = cu_stmt_int(st, 0);
        if (cu_stmt_int(st, 3))
            continue; /* this node's own: fed when decided */
        if (cu_mon_event_parse(body, len, &o, &b->evs[b->n], err) != CU_OK)
            continue; /* a custom type this node does not declare: as a rebuild skips it */
        b->seqs[b->n] = b->last;
        b->decided_at[b->n] = cu_stmt_int(st, 1);
        b->n++;
    }
    cu_stmt_done(st);
    *more = rc == CU_OK && rows == TAIL_BATCH;
    return rc;
}

/* step(t, more): one read, and the unit that feeds what it found. */
static enum cu_err step(struct cu_monitor_tailer *t, bool *more)
{
    struct cu_db *db = NULL;
    struct cu_work *w = NULL;
    enum cu_err rc = cu_store_acquire(t->st, &db);

    *more = false;
    if (rc == CU_OK)
        rc = follow(t, db);
    if (rc == CU_OK)
        rc = read_batch(t, db, more);
    cu_store_release(db);
    if (rc == CU_OK && t->b.n > 0) {
        rc = cu_work_new(NULL, &w);
        if (rc == CU_OK) {
            cu_work_set_readonly(w); /* the state in memory only */
            rc = cu_work_add(w, feed_apply, &t->b);
        }
        if (rc == CU_OK)
            rc = cu_committer_run(t->committer, w);
        cu_work_free(w);
        /* fed on the committer's thread, whatever its group's commit did: the events are
         * other nodes' committed ones */
        if (t->b.fed)
            rc = CU_OK;
    }
    if (rc == CU_OK)
        atomic_store(&t->m->tail_seq, t->b.last);
    for (size_t i = 0; i < t->b.n; i++)
        sodium_memzero(&t->b.evs[i], sizeof(t->b.evs[i]));
    return rc;
}

static void *tail_main(void *arg)
{
    struct cu_monitor_tailer *t = arg;
    bool failing = false;

    pthread_setname_np(pthread_self(), "cu-tail");
    pthread_mutex_lock(&t->mu);
    while (!t->stop) {
        bool more = false;
        pthread_mutex_unlock(&t->mu);
        enum cu_err rc = step(t, &more);
        if (rc != CU_OK && !failing)
            cu_log(CU_LOG_WARN, "monitor.tail_failed", CU_LS("error", cu_err_str(rc)));
        else if (rc == CU_OK && failing)
            cu_log(CU_LOG_INFO, "monitor.tail_resumed", CU_LI("seq", t->b.last));
        failing = rc != CU_OK;
        if (!more && !failing) {
            /* woken by a commit that decided or changed something (LISTEN/NOTIFY), or after
             * CU_MONITOR_TAIL_MS in any case */
            bool woke = false;
            if (cu_store_wait(t->st, CU_MONITOR_CHANNEL, CU_MONITOR_TAIL_MS, &woke) != CU_OK)
                failing = true;
        }
        pthread_mutex_lock(&t->mu);
        if (!failing || t->stop)
            continue;
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 1; /* the database away: look again in a second */
        while (!t->stop && pthread_cond_timedwait(&t->cv, &t->mu, &until) != ETIMEDOUT)
            ;
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

static void tailer_free(struct cu_monitor_tailer *t)
{
    if (t == NULL)
        return;
    cu_free(t->b.evs);
    cu_free(t->b.seqs);
    cu_free(t->b.decided_at);
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    cu_free(t);
}

enum cu_err cu_monitor_tail_start(struct cu_monitor *m, struct cu_store *st,
                                  struct cu_committer *committer, struct cu_monitor_tailer **out)
{
    struct cu_monitor_tailer *t = cu_calloc(1, sizeof(*t));

    *out = NULL;
    if (t == NULL)
        return CU_E_NOMEM;
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    t->m = m;
    t->st = st;
    t->committer = committer;
    t->config_seen = -1; /* followed once at start: what changed since the rebuild */
    t->b.m = m;
    t->b.evs = cu_calloc(TAIL_BATCH, sizeof(*t->b.evs));
    t->b.seqs = cu_calloc(TAIL_BATCH, sizeof(*t->b.seqs));
    t->b.decided_at = cu_calloc(TAIL_BATCH, sizeof(*t->b.decided_at));
    if (t->b.evs == NULL || t->b.seqs == NULL || t->b.decided_at == NULL ||
        pthread_create(&t->thread, NULL, tail_main, t) != 0) {
        tailer_free(t);
        return CU_E_NOMEM;
    }
    t->started = true;
    cu_log(CU_LOG_INFO, "monitor.tail_started", CU_LS("node", m->node),
           CU_LI("seq", atomic_load(&m->tail_seq)));
    *out = t;
    return CU_OK;
}

void cu_monitor_tail_stop(struct cu_monitor_tailer *t)
{
    if (t == NULL)
        return;
    pthread_mutex_lock(&t->mu);
    t->stop = true;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
    if (t->started)
        pthread_join(t->thread, NULL);
    tailer_free(t);
}
