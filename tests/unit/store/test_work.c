/*
 * test_work.c - the unit of work and the group committer over the SQLite backend: units share
 * commits, a failing unit rolls back alone, busy units run again (bounded), a group whose
 * commit fails fails every unit and the next group recovers, records reach the audit sink in
 * order and only once, effects run only after a durable commit, and a crash (SIGKILL) during
 * groups loses no acknowledged unit and leaves no half of one. Also the store contract the
 * committer stands on: savepoints, FOR UPDATE, and the connection pool.
 */
#include "cu_test.h"

#include <pthread.h>
#include <signal.h>

#include "base/clock.h"
#include "base/mem.h"
#include "store/store.h"
#include "store/work.h"

struct fx {
    char dir[256];
    char path[512];
    struct cu_store *st;
    struct cu_db *db; /* a pooled connection for the test's own reads */
};

static const char *const sql_items =
    "CREATE TABLE items (k INTEGER NOT NULL, part TEXT NOT NULL, PRIMARY KEY (k, part)) STRICT";
static const char *const sql_insert = "INSERT INTO items (k, part) VALUES ($1, $2)";
static const char *const sql_count = "SELECT COUNT(*) FROM items";
static const char *const sql_count_k = "SELECT COUNT(*) FROM items WHERE k = $1";

static enum cu_err open_at(const char *path, unsigned busy_ms, unsigned pool, struct cu_store **st)
{
    char err[CU_STORE_ERR_BYTES];
    struct cu_store_opts o = {.backend = "sqlite",
                              .path = path,
                              .busy_timeout_ms = busy_ms,
                              .synchronous_full = true,
                              .create = true,
                              .pool_connections = pool};

    return cu_store_open(&o, st, err);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    char err[CU_STORE_ERR_BYTES];

    assert_non_null(f);
    cu_test_tmpdir(f->dir, sizeof f->dir);
    snprintf(f->path, sizeof f->path, "%s/custodia.db", f->dir);
    assert_int_equal(open_at(f->path, 2000, 4, &f->st), CU_OK);
    assert_int_equal(cu_store_migrate(f->st, err), CU_OK);
    assert_int_equal(cu_store_acquire(f->st, &f->db), CU_OK);
    assert_int_equal(cu_db_exec(f->db, sql_items, NULL, 0), CU_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    cu_store_release(f->db);
    cu_store_close(f->st);
    cu_test_rmrf(f->dir);
    free(f);
    return 0;
}

static int64_t count_of(struct cu_db *db, const char *sql, int64_t k)
{
    struct cu_stmt *s = NULL;
    bool row = false;
    struct cu_val p[] = {CU_VI(k)};
    int64_t v;

    assert_int_equal(cu_db_query(db, sql, p, sql == sql_count_k ? 1 : 0, &s), CU_OK);
    assert_int_equal(cu_stmt_next(s, &row), CU_OK);
    assert_true(row);
    v = cu_stmt_int(s, 0);
    cu_stmt_done(s);
    return v;
}

/* ---- units the tests submit ---- */

struct job {
    int64_t k;
    enum cu_err fail_with; /* apply returns this after its first row (CU_OK: succeed) */
    bool two_parts;        /* insert (k,'a') and (k,'b') */
    unsigned runs;         /* how many times apply ran */
    bool record;           /* asks for an audit record inside apply */
    int effect_ran;
    enum cu_err rc;
    bool done;
    pthread_mutex_t *mu;
    pthread_cond_t *cv;
};

static enum cu_err job_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct job *j = arg;
    struct cu_val a[] = {CU_VI(j->k), CU_VT("a")}, b[] = {CU_VI(j->k), CU_VT("b")};
    enum cu_err rc;

    j->runs++;
    rc = cu_db_exec(db, sql_insert, a, 2);
    if (rc == CU_OK && j->record)
        rc = cu_work_audit(w, "item.create", "item", "success", json_pack("{s:I}", "k", j->k));
    if (rc == CU_OK && j->fail_with != CU_OK)
        return j->fail_with;
    if (rc == CU_OK && j->two_parts)
        rc = cu_db_exec(db, sql_insert, b, 2);
    return rc;
}

static void job_effect(void *arg, struct cu_db *db)
{
    struct job *j = arg;
    assert_false(cu_db_in_txn(db)); /* after the commit, outside any transaction */
    j->effect_ran++;
}

static void job_done(void *arg, enum cu_err rc)
{
    struct job *j = arg;
    pthread_mutex_lock(j->mu);
    j->rc = rc;
    j->done = true;
    pthread_cond_broadcast(j->cv);
    pthread_mutex_unlock(j->mu);
}

static pthread_mutex_t jobs_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t jobs_cv = PTHREAD_COND_INITIALIZER;

static void job_init(struct job *j, int64_t k)
{
    memset(j, 0, sizeof(*j));
    j->k = k;
    j->mu = &jobs_mu;
    j->cv = &jobs_cv;
}

static void job_wait(struct job *j)
{
    pthread_mutex_lock(j->mu);
    while (!j->done)
        pthread_cond_wait(j->cv, j->mu);
    pthread_mutex_unlock(j->mu);
}

/* A unit whose apply holds the writer until released, so that what is submitted meanwhile
 * makes one group. */
struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool entered, open;
};

static enum cu_err gate_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct gate *g = arg;
    (void)w;
    (void)db;
    pthread_mutex_lock(&g->mu);
    g->entered = true;
    pthread_cond_broadcast(&g->cv);
    while (!g->open)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
    return CU_OK;
}

static void gate_done(void *arg, enum cu_err rc)
{
    (void)arg;
    assert_int_equal(rc, CU_OK);
}

/* gate_close(c, g, w): submits the gate unit and waits until the writer is inside it. */
static void gate_close(struct cu_committer *c, struct gate *g, struct cu_work **w)
{
    memset(g, 0, sizeof(*g));
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    assert_int_equal(cu_work_new(NULL, w), CU_OK);
    assert_int_equal(cu_work_add(*w, gate_apply, g), CU_OK);
    assert_int_equal(cu_committer_submit(c, *w, gate_done, NULL), CU_OK);
    pthread_mutex_lock(&g->mu);
    while (!g->entered)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

static void gate_open(struct gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->open = true;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

/* An audit sink that keeps what it was given. */
struct sink {
    unsigned calls;
    size_t records;
    char last_action[64];
    char last_actor[64];
    enum cu_err fail_with;
};

static enum cu_err sink_append(void *arg, struct cu_db *db, const struct cu_work *w,
                               const struct cu_work_record *recs, size_t n)
{
    struct sink *s = arg;
    (void)db;
    s->calls++;
    if (s->fail_with != CU_OK)
        return s->fail_with;
    s->records += n;
    snprintf(s->last_action, sizeof s->last_action, "%s", recs[n - 1].action);
    snprintf(s->last_actor, sizeof s->last_actor, "%s", cu_work_context_of(w)->actor_id);
    return CU_OK;
}

static struct cu_committer *committer_with(struct fx *f, struct sink *s)
{
    struct cu_committer *c = NULL;
    struct cu_committer_opts o = {.retries_max = 3};

    if (s != NULL) {
        o.audit.append = sink_append;
        o.audit.arg = s;
    }
    assert_int_equal(cu_committer_new(f->st, &o, &c), CU_OK);
    return c;
}

#define GROUPED 100

/* N units handed over while the writer is busy commit in fewer than N commits, all kept. */
static void test_units_share_commits(void **state)
{
    struct fx *f = *state;
    struct cu_committer *c = committer_with(f, NULL);
    struct cu_committer_stats stats;
    struct job jobs[GROUPED];
    struct cu_work *ws[GROUPED], *gw = NULL;
    struct gate g;

    gate_close(c, &g, &gw);
    for (int i = 0; i < GROUPED; i++) {
        job_init(&jobs[i], i + 1);
        assert_int_equal(cu_work_new(NULL, &ws[i]), CU_OK);
        assert_int_equal(cu_work_add(ws[i], job_apply, &jobs[i]), CU_OK);
        assert_int_equal(cu_committer_submit(c, ws[i], job_done, &jobs[i]), CU_OK);
    }
    gate_open(&g);
    for (int i = 0; i < GROUPED; i++) {
        job_wait(&jobs[i]);
        assert_int_equal(jobs[i].rc, CU_OK);
        cu_work_free(ws[i]);
    }
    cu_committer_stats(c, &stats);
    assert_int_equal(count_of(f->db, sql_count, 0), GROUPED);
    /* the gate's group, then one group of the hundred */
    assert_int_equal(stats.commits, 2);
    assert_true(stats.commits < GROUPED);
    assert_int_equal(stats.units, GROUPED + 1);
    assert_int_equal(stats.size_sum, GROUPED + 1);
    assert_int_equal(stats.queued, 0);
    cu_committer_free(c);
    cu_work_free(gw);
}

/* A unit failing in the middle of a group rolls back alone; the others commit. */
static void test_failing_unit_alone(void **state)
{
    struct fx *f = *state;
    struct cu_committer *c = committer_with(f, NULL);
    struct job jobs[3];
    struct cu_work *ws[3], *gw = NULL;
    struct gate g;

    gate_close(c, &g, &gw);
    for (int i = 0; i < 3; i++) {
        job_init(&jobs[i], 10 + i);
        jobs[i].two_parts = true;
        assert_int_equal(cu_work_new(NULL, &ws[i]), CU_OK);
        assert_int_equal(cu_work_add(ws[i], job_apply, &jobs[i]), CU_OK);
    }
    jobs[1].fail_with = CU_E_EXISTS; /* after its first row */
    for (int i = 0; i < 3; i++)
        assert_int_equal(cu_committer_submit(c, ws[i], job_done, &jobs[i]), CU_OK);
    gate_open(&g);
    for (int i = 0; i < 3; i++)
        job_wait(&jobs[i]);
    assert_int_equal(jobs[0].rc, CU_OK);
    assert_int_equal(jobs[1].rc, CU_E_EXISTS);
    assert_int_equal(jobs[2].rc, CU_OK);
    assert_int_equal(jobs[1].runs, 1); /* not a race: not run again */
    assert_int_equal(count_of(f->db, sql_count_k, 10), 2);
    assert_int_equal(count_of(f->db, sql_count_k, 11), 0);
    assert_int_equal(count_of(f->db, sql_count_k, 12), 2);
    for (int i = 0; i < 3; i++)
        cu_work_free(ws[i]);
    cu_committer_free(c);
    cu_work_free(gw);
}

/* A busy statement runs the unit again, once; its records are asked for once. */
static void test_busy_runs_again(void **state)
{
    struct fx *f = *state;
    struct sink s = {0};
    struct cu_committer *c = committer_with(f, &s);
    struct cu_committer_stats stats;
    struct cu_work *w = NULL;
    struct job j;

    job_init(&j, 20);
    j.record = true;
    assert_int_equal(cu_work_new(NULL, &w), CU_OK);
    assert_int_equal(cu_work_add(w, job_apply, &j), CU_OK);
    /* the base record, asked for before submission, survives the re-run */
    assert_int_equal(cu_work_audit(w, "item.read", "item", "success", NULL), CU_OK);
    cu_store_fail_next_with(f->st, 1, CU_E_BUSY); /* the apply's INSERT, first run */
    assert_int_equal(cu_committer_run(c, w), CU_OK);
    assert_int_equal(j.runs, 2);
    assert_int_equal(cu_work_retries(w), 1);
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.records, 2);
    assert_string_equal(s.last_action, "item.create");
    assert_int_equal(count_of(f->db, sql_count_k, 20), 1);
    cu_committer_stats(c, &stats);
    assert_int_equal(stats.retries, 1);
    cu_work_free(w);
    cu_committer_free(c);
}

/* A unit busy every time gives up after retries_max runs again, with CU_E_BUSY. */
static void test_busy_bounded(void **state)
{
    struct fx *f = *state;
    struct cu_committer *c = committer_with(f, NULL);
    struct cu_work *w = NULL;
    struct job j;

    job_init(&j, 30);
    j.fail_with = CU_E_BUSY;
    assert_int_equal(cu_work_new(NULL, &w), CU_OK);
    assert_int_equal(cu_work_add(w, job_apply, &j), CU_OK);
    assert_int_equal(cu_committer_run(c, w), CU_E_BUSY);
    assert_int_equal(j.runs, 4);
    assert_int_equal(count_of(f->db, sql_count_k, 30), 0);
    cu_work_free(w);
    cu_committer_free(c);
}

/* A group whose commit fails (a full disk) fails every unit of it, keeps nothing and runs no
 * effect; the next group commits. */
static void test_commit_failure_fails_group(void **state)
{
    struct fx *f = *state;
    struct cu_committer *c = committer_with(f, NULL);
    struct job jobs[3], after;
    struct cu_work *ws[3], *gw = NULL, *w = NULL;
    struct gate g;

    gate_close(c, &g, &gw);
    for (int i = 0; i < 3; i++) {
        job_init(&jobs[i], 40 + i);
        assert_int_equal(cu_work_new(NULL, &ws[i]), CU_OK);
        assert_int_equal(cu_work_add(ws[i], job_apply, &jobs[i]), CU_OK);
        assert_int_equal(cu_work_after(ws[i], job_effect, &jobs[i]), CU_OK);
        assert_int_equal(cu_committer_submit(c, ws[i], job_done, &jobs[i]), CU_OK);
    }
    /* the gate's group commits (statement 1), then the three INSERTs (2-4), then the commit */
    cu_store_fail_next_with(f->st, 5, CU_E_STORE_FULL);
    gate_open(&g);
    for (int i = 0; i < 3; i++) {
        job_wait(&jobs[i]);
        assert_int_equal(jobs[i].rc, CU_E_STORE_FULL);
        assert_int_equal(jobs[i].effect_ran, 0);
        assert_int_equal(count_of(f->db, sql_count_k, 40 + i), 0);
        cu_work_free(ws[i]);
    }
    job_init(&after, 50);
    assert_int_equal(cu_work_new(NULL, &w), CU_OK);
    assert_int_equal(cu_work_add(w, job_apply, &after), CU_OK);
    assert_int_equal(cu_work_after(w, job_effect, &after), CU_OK);
    assert_int_equal(cu_committer_run(c, w), CU_OK);
    assert_int_equal(after.effect_ran, 1);
    assert_int_equal(count_of(f->db, sql_count_k, 50), 1);
    cu_work_free(w);
    cu_committer_free(c);
    cu_work_free(gw);
}

/* Records go to the sink with the unit's actor; a failing sink fails the unit (fail closed);
 * a unit with records and no sink fails with CU_E_AUDIT. */
static void test_audit_sink(void **state)
{
    struct fx *f = *state;
    struct sink s = {0};
    struct cu_committer *c = committer_with(f, &s), *bare = NULL;
    struct cu_work_ctx ctx = {.now_ms = 1};
    struct cu_work *w = NULL;
    struct job j;

    snprintf(ctx.actor_type, sizeof ctx.actor_type, "staff");
    snprintf(ctx.actor_id, sizeof ctx.actor_id, "stf_1");
    job_init(&j, 60);
    j.record = true;
    assert_int_equal(cu_work_new(&ctx, &w), CU_OK);
    assert_int_equal(cu_work_add(w, job_apply, &j), CU_OK);
    assert_int_equal(cu_committer_run(c, w), CU_OK);
    assert_string_equal(s.last_actor, "stf_1");
    cu_work_free(w);

    s.fail_with = CU_E_AUDIT;
    job_init(&j, 61);
    j.record = true;
    assert_int_equal(cu_work_new(&ctx, &w), CU_OK);
    assert_int_equal(cu_work_add(w, job_apply, &j), CU_OK);
    assert_int_equal(cu_committer_run(c, w), CU_E_AUDIT);
    assert_int_equal(count_of(f->db, sql_count_k, 61), 0);
    cu_work_free(w);
    cu_committer_free(c);

    bare = committer_with(f, NULL);
    assert_int_equal(cu_work_new(&ctx, &w), CU_OK);
    assert_int_equal(cu_work_audit(w, "item.read", "", "success", NULL), CU_OK);
    assert_true(cu_work_pending(w));
    assert_int_equal(cu_committer_run(bare, w), CU_E_AUDIT);
    cu_work_free(w);
    cu_committer_free(bare);
}

static unsigned locks_taken;

static enum cu_err count_lock(void *arg, struct cu_db *db)
{
    (void)arg;
    (void)db;
    locks_taken++;
    return CU_OK;
}

static enum cu_err read_only_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    bool *ask_record = arg;
    (void)db;
    return *ask_record ? cu_work_audit(w, "item.read", "", "success", NULL) : CU_OK;
}

/* A group of read-only units takes no lock of the audit chain (another node's events fed into
 * this node's state must not make the other nodes' groups wait); one that writes does; a
 * read-only unit that asks for an audit record fails. */
static void test_read_only_units(void **state)
{
    struct fx *f = *state;
    struct sink s = {0};
    struct cu_committer *c = NULL;
    struct cu_committer_opts o = {.retries_max = 3};
    struct cu_work *w = NULL;
    struct job j;
    bool ask = false;

    o.audit.append = sink_append;
    o.audit.arg = &s;
    o.audit.lock = count_lock;
    assert_int_equal(cu_committer_new(f->st, &o, &c), CU_OK);
    locks_taken = 0;
    assert_int_equal(cu_work_new(NULL, &w), CU_OK);
    cu_work_set_readonly(w);
    assert_int_equal(cu_work_add(w, read_only_apply, &ask), CU_OK);
    assert_int_equal(cu_committer_run(c, w), CU_OK);
    cu_work_free(w);
    assert_int_equal(locks_taken, 0);
    job_init(&j, 70);
    assert_int_equal(cu_work_new(NULL, &w), CU_OK);
    assert_int_equal(cu_work_add(w, job_apply, &j), CU_OK);
    assert_int_equal(cu_committer_run(c, w), CU_OK);
    cu_work_free(w);
    assert_int_equal(locks_taken, 1);
    ask = true;
    assert_int_equal(cu_work_new(NULL, &w), CU_OK);
    cu_work_set_readonly(w);
    assert_int_equal(cu_work_add(w, read_only_apply, &ask), CU_OK);
    assert_int_equal(cu_committer_run(c, w), CU_E_INVALID);
    cu_work_free(w);
    assert_int_equal(s.records, 0);
    cu_committer_free(c);
}

/* The limits of a unit: records, events, effects, target and details sizes. */
static void test_unit_limits(void **state)
{
    struct cu_work *w = NULL;
    char big[CU_WORK_TARGET_MAX + 2];
    (void)state;

    assert_int_equal(cu_work_new(NULL, &w), CU_OK);
    assert_false(cu_work_pending(w));
    assert_string_equal(cu_work_context_of(w)->actor_type, "system");
    memset(big, 't', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(cu_work_audit(w, "a", big, "success", NULL), CU_E_TOO_LARGE);
    assert_int_equal(cu_work_audit(w, "a", "", "success", json_string("x")), CU_E_INVALID);
    for (int i = 0; i < CU_WORK_RECORDS_MAX; i++)
        assert_int_equal(cu_work_audit(w, "a", "t", "success", json_object()), CU_OK);
    assert_int_equal(cu_work_audit(w, "a", "t", "success", NULL), CU_E_INVALID);
    for (int i = 0; i < CU_WORK_EVENTS_MAX; i++)
        assert_int_equal(cu_work_emit(w, "login_failed", json_pack("{s:i}", "n", i)), CU_OK);
    assert_int_equal(cu_work_emit(w, "login_failed", json_object()), CU_E_INVALID);
    for (int i = 0; i < CU_WORK_EFFECTS_MAX; i++)
        assert_int_equal(cu_work_after(w, job_effect, NULL), CU_OK);
    assert_int_equal(cu_work_after(w, job_effect, NULL), CU_E_INVALID);
    size_t n = 0;
    const struct cu_work_event *evs = cu_work_events(w, &n);
    assert_int_equal(n, CU_WORK_EVENTS_MAX);
    assert_string_equal(evs[3].body, "{\"n\":3}");
    cu_work_free(w);
}

/* A stopped committer refuses units; what was accepted before the stop is committed. */
static void test_stop_commits_waiting(void **state)
{
    struct fx *f = *state;
    struct cu_committer *c = committer_with(f, NULL);
    struct job jobs[20];
    struct cu_work *ws[20], *w = NULL;

    for (int i = 0; i < 20; i++) {
        job_init(&jobs[i], 70 + i);
        assert_int_equal(cu_work_new(NULL, &ws[i]), CU_OK);
        assert_int_equal(cu_work_add(ws[i], job_apply, &jobs[i]), CU_OK);
        assert_int_equal(cu_committer_submit(c, ws[i], job_done, &jobs[i]), CU_OK);
    }
    cu_committer_stop(c);
    for (int i = 0; i < 20; i++) {
        assert_true(jobs[i].done);
        assert_int_equal(jobs[i].rc, CU_OK);
        cu_work_free(ws[i]);
    }
    assert_int_equal(cu_work_new(NULL, &w), CU_OK);
    assert_int_equal(cu_committer_run(c, w), CU_E_UNAVAILABLE);
    cu_work_free(w);
    cu_committer_free(c);
    assert_int_equal(count_of(f->db, sql_count, 0), 20);
}

/* ---- the crash ---- */

#define CRASH_THREADS 4

struct crash_arg {
    struct cu_committer *c;
    int fd;
    int base;
};

/* A child's submitter: units of two rows each, one after another; each acknowledged unit's k
 * goes to the pipe once its done callback said it is durable. */
static void *crash_submitter(void *p)
{
    struct crash_arg *a = p;
    for (int64_t i = 0;; i++) {
        struct cu_work *w = NULL;
        struct job j;
        job_init(&j, a->base + i * CRASH_THREADS);
        j.two_parts = true;
        if (cu_work_new(NULL, &w) != CU_OK)
            _exit(3);
        assert_int_equal(cu_work_add(w, job_apply, &j), CU_OK);
        if (cu_committer_run(a->c, w) == CU_OK && write(a->fd, &j.k, sizeof j.k) != sizeof j.k)
            _exit(4);
        cu_work_free(w);
    }
    return NULL;
}

/* The child: opens the store on its own and commits until killed. */
static void crash_child(const char *path, int fd)
{
    struct cu_store *st = NULL;
    struct cu_committer *c = NULL;
    struct crash_arg args[CRASH_THREADS];
    pthread_t t[CRASH_THREADS];

    if (open_at(path, 2000, 4, &st) != CU_OK || cu_committer_new(st, NULL, &c) != CU_OK)
        _exit(2);
    for (int i = 0; i < CRASH_THREADS; i++) {
        args[i] = (struct crash_arg){c, fd, 1000 + i};
        pthread_create(&t[i], NULL, crash_submitter, &args[i]);
    }
    for (;;)
        pause();
}

/* SIGKILL during groups: every acknowledged unit has both its rows, and no unit has one. */
static void test_crash_loses_nothing_acknowledged(void **state)
{
    struct fx *f = *state;
    int p[2];
    int64_t acked[20000];
    size_t nacked = 0;
    pid_t pid;
    int status = 0;

    assert_int_equal(pipe(p), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        crash_child(f->path, p[1]);
    }
    close(p[1]);
    /* let it commit a few hundred units (at most 20 s, for valgrind), reading
     * acknowledgements as they come, and kill it in the middle of its groups */
    uint64_t until = cu_clock_mono_ns() + 20000000000u;
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    while (cu_clock_mono_ns() < until && nacked < 400) {
        ssize_t r = read(p[0], &acked[nacked], sizeof acked[0]);
        if (r == (ssize_t)sizeof acked[0])
            nacked++;
        else
            usleep(100);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    assert_true(WIFSIGNALED(status));
    for (;;) { /* what was written to the pipe before the kill */
        ssize_t r = nacked < 20000 ? read(p[0], &acked[nacked], sizeof acked[0]) : 0;
        if (r != (ssize_t)sizeof acked[0])
            break;
        nacked++;
    }
    close(p[0]);
    assert_true(nacked > 10);

    /* a fresh open, as after a restart */
    struct cu_store *st = NULL;
    struct cu_db *db = NULL;
    assert_int_equal(open_at(f->path, 2000, 2, &st), CU_OK);
    assert_int_equal(cu_store_acquire(st, &db), CU_OK);
    for (size_t i = 0; i < nacked; i++)
        assert_int_equal(count_of(db, sql_count_k, acked[i]), 2);
    struct cu_stmt *s = NULL;
    bool row = false;
    static const char half[] =
        "SELECT COUNT(*) FROM (SELECT k FROM items GROUP BY k HAVING COUNT(*) <> 2)";
    assert_int_equal(cu_db_query(db, half, NULL, 0, &s), CU_OK);
    assert_int_equal(cu_stmt_next(s, &row), CU_OK);
    assert_int_equal(cu_stmt_int(s, 0), 0);
    cu_stmt_done(s);
    assert_true(count_of(db, sql_count, 0) >= (int64_t)(2 * nacked));
    cu_store_release(db);
    cu_store_close(st);
}

/* ---- the store contract ---- */

/* Savepoints: a rolled-back one undoes only its own work, nested ones unwind in order. */
static void test_savepoints(void **state)
{
    struct fx *f = *state;
    struct cu_val a[] = {CU_VI(90), CU_VT("a")}, b[] = {CU_VI(90), CU_VT("b")},
                  c[] = {CU_VI(90), CU_VT("c")};

    assert_int_equal(cu_db_begin(f->db, CU_TXN_WRITE), CU_OK);
    assert_int_equal(cu_db_exec(f->db, sql_insert, a, 2), CU_OK);
    assert_int_equal(cu_db_savepoint(f->db), CU_OK);
    assert_int_equal(cu_db_exec(f->db, sql_insert, b, 2), CU_OK);
    assert_int_equal(cu_db_savepoint(f->db), CU_OK);
    assert_int_equal(cu_db_exec(f->db, sql_insert, c, 2), CU_OK);
    assert_int_equal(cu_db_savepoint_rollback(f->db), CU_OK); /* c goes */
    assert_int_equal(cu_db_savepoint_release(f->db), CU_OK);  /* b stays */
    assert_int_equal(cu_db_commit(f->db), CU_OK);
    assert_int_equal(count_of(f->db, sql_count_k, 90), 2);
}

/* FOR UPDATE: the row lock of the contract reads the rows inside a write transaction. */
static void test_for_update(void **state)
{
    struct fx *f = *state;
    static const char lock[] = "SELECT COUNT(*) FROM items WHERE k = $1 FOR UPDATE";
    struct cu_val a[] = {CU_VI(91), CU_VT("a")};
    struct cu_stmt *s = NULL;
    bool row = false;

    assert_int_equal(cu_db_begin(f->db, CU_TXN_WRITE), CU_OK);
    assert_int_equal(cu_db_exec(f->db, sql_insert, a, 2), CU_OK);
    assert_int_equal(cu_db_query(f->db, lock, a, 1, &s), CU_OK);
    assert_int_equal(cu_stmt_next(s, &row), CU_OK);
    assert_true(row);
    assert_int_equal(cu_stmt_int(s, 0), 1);
    cu_stmt_done(s);
    assert_int_equal(cu_db_commit(f->db), CU_OK);
}

/* The pool: at most its size at once; the next waits for a release, or gives up with
 * CU_E_BUSY after the busy timeout. */
static void test_pool_bounded(void **state)
{
    struct fx *f = *state;
    struct cu_store *st = NULL;
    struct cu_db *dbs[2] = {NULL, NULL}, *more = NULL;
    uint64_t t0;
    (void)state;

    assert_int_equal(open_at(f->path, 200, 2, &st), CU_OK);
    assert_int_equal(cu_store_acquire(st, &dbs[0]), CU_OK);
    assert_int_equal(cu_store_acquire(st, &dbs[1]), CU_OK);
    t0 = cu_clock_mono_ns();
    assert_int_equal(cu_store_acquire(st, &more), CU_E_BUSY);
    assert_null(more);
    assert_true(cu_clock_mono_ns() - t0 >= 150000000u);
    cu_store_release(dbs[1]);
    assert_int_equal(cu_store_acquire(st, &more), CU_OK);
    assert_ptr_equal(more, dbs[1]); /* the idle one, not a new one */
    cu_store_release(more);
    cu_store_release(dbs[0]);
    cu_store_close(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_units_share_commits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failing_unit_alone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_busy_runs_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_busy_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_failure_fails_group, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_sink, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_only_units, setup, teardown),
        cmocka_unit_test(test_unit_limits),
        cmocka_unit_test_setup_teardown(test_stop_commits_waiting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_loses_nothing_acknowledged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_savepoints, setup, teardown),
        cmocka_unit_test_setup_teardown(test_for_update, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pool_bounded, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
