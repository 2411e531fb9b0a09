/*
 * test_batch.c - the audit group-commit writer: a submitted record's callback is called once,
 * with CU_OK once the record is committed; a store failure reaches the callback as the error
 * with nothing written (fail closed), and the writer goes on afterwards; a record the log
 * refuses fails alone; stopping writes what is waiting and refuses what comes after; waiting
 * appends from several threads mix with submits.
 */
#include "cu_test.h"

#include <pthread.h>

#include <jansson.h>

#include "api/batch.h"
#include "crypto/crypto.h"

#define MANY 200
#define THREADS 4
#define PER_THREAD 50

struct fixture {
    char base[256];
    struct cu_keyring *kr;
    struct cu_store *st;
    struct cu_db *conn;
    struct cu_audit *audit;
    struct cu_audit_batcher *b;
};

/* What the callbacks saw: how often each record's callback ran and with what. */
struct tally {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int calls[MANY];
    enum cu_err rc[MANY];
    int total;
};

struct slot {
    struct tally *t;
    int i;
};

static const struct cu_audit_opts opts = {
    .origin = "test.example/batch",
    .hash_source_ip = true,
    .checkpoint_records = 100000,
    .checkpoint_seconds = 3600,
};

static const struct cu_audit_event good = {.actor_type = "system",
                                           .action = "test.batch",
                                           .target = "thing:1",
                                           .outcome = "success",
                                           .request_id = "r",
                                           .source_ip = "192.0.2.7"};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    char dir[340], key[340], db[340], err[CU_STORE_ERR_BYTES];
    assert_non_null(f);
    assert_int_equal(cu_crypto_init(), CU_OK);
    cu_test_tmpdir(f->base, sizeof(f->base));
    snprintf(dir, sizeof(dir), "%s/d", f->base);
    assert_non_null(getenv("CU_BINARY"));
    assert_int_equal(cu_test_run((char *const[]){getenv("CU_BINARY"), "init", "--dir", dir, NULL}),
                     0);
    snprintf(key, sizeof(key), "%s/d/root.key", f->base);
    snprintf(db, sizeof(db), "%s/d/custodia.db", f->base);
    assert_int_equal(cu_keyring_load(key, &f->kr, err), CU_OK);
    struct cu_store_opts o = {
        .backend = "sqlite", .path = db, .busy_timeout_ms = 5000, .synchronous_full = false};
    assert_int_equal(cu_store_open(&o, &f->st, err), CU_OK);
    assert_int_equal(cu_store_db(f->st, &f->conn), CU_OK);
    assert_int_equal(cu_audit_new(f->kr, &opts, &f->audit), CU_OK);
    assert_int_equal(cu_audit_batcher_new(f->audit, f->st, &f->b), CU_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    cu_audit_batcher_free(f->b);
    cu_audit_free(f->audit);
    cu_store_close(f->st);
    cu_keyring_free(f->kr);
    cu_test_rmrf(f->base);
    free(f);
    return 0;
}

static int64_t head(struct fixture *f)
{
    int64_t seq = 0;
    uint8_t h[CU_MERKLE_HASH_BYTES];
    assert_int_equal(cu_audit_head(f->conn, &seq, h), CU_OK);
    return seq;
}

static void tally_init(struct tally *t)
{
    memset(t, 0, sizeof(*t));
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
}

static void tally_destroy(struct tally *t)
{
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
}

static void done(void *arg, enum cu_err rc)
{
    struct slot *s = arg;
    pthread_mutex_lock(&s->t->mu);
    s->t->calls[s->i]++;
    s->t->rc[s->i] = rc;
    s->t->total++;
    pthread_cond_broadcast(&s->t->cv);
    pthread_mutex_unlock(&s->t->mu);
}

/* Waits until n callbacks have run. */
static void wait_total(struct tally *t, int n)
{
    pthread_mutex_lock(&t->mu);
    while (t->total < n)
        pthread_cond_wait(&t->cv, &t->mu);
    pthread_mutex_unlock(&t->mu);
}

/* Starts a tally and submits MANY good records, each with its slot. */
static void submit_many(struct fixture *f, struct tally *t, struct slot slots[MANY])
{
    tally_init(t);
    for (int i = 0; i < MANY; i++) {
        slots[i] = (struct slot){t, i};
        assert_int_equal(cu_audit_batcher_submit(f->b, &good, done, &slots[i]), CU_OK);
    }
}

static void test_submit_commits(void **state)
{
    struct fixture *f = *state;
    struct tally t;
    struct slot slots[MANY];
    int64_t before = head(f);

    submit_many(f, &t, slots);
    wait_total(&t, MANY);
    for (int i = 0; i < MANY; i++) {
        assert_int_equal(t.calls[i], 1);
        assert_int_equal(t.rc[i], CU_OK);
    }
    assert_int_equal(head(f), before + MANY);
    tally_destroy(&t);
}

static void test_store_failure_fails_closed(void **state)
{
    struct fixture *f = *state;
    struct tally t;
    struct slot s = {&t, 0}, s2 = {&t, 1};
    int failed = 0;

    for (long n = 1; n <= 4; n++) {
        int64_t before = head(f);
        tally_init(&t);
        cu_store_fail_next(f->st, n);
        assert_int_equal(cu_audit_batcher_submit(f->b, &good, done, &s), CU_OK);
        wait_total(&t, 1);
        cu_store_fail_next(f->st, 0);
        assert_int_equal(t.calls[0], 1);
        if (t.rc[0] == CU_OK) {
            assert_int_equal(head(f), before + 1);
        } else {
            assert_int_equal(t.rc[0], CU_E_STORE);
            assert_int_equal(head(f), before);
            failed++;
        }
        /* The writer goes on after a failed batch. */
        assert_int_equal(cu_audit_batcher_submit(f->b, &good, done, &s2), CU_OK);
        wait_total(&t, 2);
        assert_int_equal(t.calls[0], 1);
        assert_int_equal(t.calls[1], 1);
        assert_int_equal(t.rc[1], CU_OK);
        tally_destroy(&t);
    }
    assert_true(failed >= 3);
}

static void test_refused_record_fails_alone(void **state)
{
    struct fixture *f = *state;
    struct tally t;
    struct slot slots[3];
    char target[CU_AUDIT_FIELD_MAX + 10];
    struct cu_audit_event bad = good;
    int64_t before = head(f);

    memset(target, 't', sizeof(target) - 1);
    target[sizeof(target) - 1] = '\0';
    bad.target = target;
    tally_init(&t);
    for (int i = 0; i < 3; i++) {
        slots[i] = (struct slot){&t, i};
        assert_int_equal(cu_audit_batcher_submit(f->b, i == 1 ? &bad : &good, done, &slots[i]),
                         CU_OK);
    }
    wait_total(&t, 3);
    assert_int_equal(t.rc[0], CU_OK);
    assert_true(t.rc[1] == CU_E_INVALID || t.rc[1] == CU_E_TOO_LARGE);
    assert_int_equal(t.rc[2], CU_OK);
    assert_int_equal(head(f), before + 2);
    tally_destroy(&t);
}

static void test_stop_writes_waiting_then_refuses(void **state)
{
    struct fixture *f = *state;
    struct tally t;
    struct slot slots[MANY];
    int64_t before = head(f);

    submit_many(f, &t, slots);
    cu_audit_batcher_stop(f->b);
    /* Every callback has returned once stop has. */
    assert_int_equal(t.total, MANY);
    for (int i = 0; i < MANY; i++)
        assert_int_equal(t.calls[i], 1);
    assert_int_equal(head(f), before + MANY);
    assert_int_equal(cu_audit_batcher_submit(f->b, &good, done, &slots[0]), CU_E_UNAVAILABLE);
    assert_int_equal(cu_audit_batcher_append(f->b, &good), CU_E_UNAVAILABLE);
    cu_audit_batcher_stop(f->b);
    assert_int_equal(t.calls[0], 1);
    assert_int_equal(head(f), before + MANY);
    tally_destroy(&t);
}

struct appender {
    struct cu_audit_batcher *b;
    int failures;
};

static void *append_many(void *arg)
{
    struct appender *a = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        if (cu_audit_batcher_append(a->b, &good) != CU_OK)
            a->failures++;
    }
    return NULL;
}

static void test_appends_and_submits_mix(void **state)
{
    struct fixture *f = *state;
    pthread_t th[THREADS];
    struct appender a[THREADS];
    struct tally t;
    struct slot slots[MANY];
    int64_t before = head(f);

    tally_init(&t);
    for (int i = 0; i < THREADS; i++) {
        a[i] = (struct appender){f->b, 0};
        assert_int_equal(pthread_create(&th[i], NULL, append_many, &a[i]), 0);
    }
    for (int i = 0; i < MANY; i++) {
        slots[i] = (struct slot){&t, i};
        assert_int_equal(cu_audit_batcher_submit(f->b, &good, done, &slots[i]), CU_OK);
    }
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(a[i].failures, 0);
    }
    wait_total(&t, MANY);
    assert_int_equal(head(f), before + MANY + THREADS * PER_THREAD);
    tally_destroy(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_submit_commits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_failure_fails_closed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_record_fails_alone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_writes_waiting_then_refuses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_appends_and_submits_mix, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
