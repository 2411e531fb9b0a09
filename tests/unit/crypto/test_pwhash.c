/*
 * test_pwhash.c - Argon2id password hashes: round trips, wrong passwords, the dummy hash for
 * accounts that do not exist, malformed stored hashes, the rehash flag, parameter and length
 * limits, and the semaphore (a caller that finds the only slot taken by another thread gets
 * CU_E_BUSY after its wait, and one whose slot frees in time proceeds). The test includes
 * pwhash.c to take and give back slots itself. Parameters are libsodium's minimum memory and
 * one pass, so the test stays quick under valgrind.
 */
#include "cu_test.h"

#include <pthread.h>
#include <time.h>

#include "crypto/pwhash.c"

#include "base/clock.h"
#include "crypto/crypto.h"

#define PW "correct horse battery staple"

static const struct cu_pwhash_params tiny = {.opslimit = 1, .memlimit = 8192};

static int setup(void **state)
{
    (void)state;
    return cu_crypto_init() == CU_OK ? 0 : -1;
}

/* new_hasher(params, max, wait_ms): a hasher the test must free. */
static struct cu_hasher *new_hasher(const struct cu_pwhash_params *params, unsigned max,
                                    unsigned wait_ms)
{
    struct cu_hasher *h = NULL;

    assert_int_equal(cu_hasher_new(params, max, wait_ms, &h), CU_OK);
    assert_non_null(h);
    return h;
}

/* verify_str(h, stored, pw, ok, rehash): cu_hasher_verify with a string password. */
static enum cu_err verify_str(struct cu_hasher *h, const char *stored, const char *pw, bool *ok,
                              bool *rehash)
{
    return cu_hasher_verify(h, stored, pw, strlen(pw), ok, rehash);
}

static void test_round_trip(void **state)
{
    struct cu_hasher *h = new_hasher(&tiny, 1, 1000);
    char out[CU_PWHASH_STR_BYTES], again[CU_PWHASH_STR_BYTES];
    bool ok = false, rehash = true;

    (void)state;
    assert_int_equal(cu_hasher_hash(h, PW, strlen(PW), out), CU_OK);
    assert_true(strncmp(out, "$argon2id$v=19$m=8,t=1,p=1$", 27) == 0);
    assert_int_equal(verify_str(h, out, PW, &ok, &rehash), CU_OK);
    assert_true(ok);
    assert_false(rehash);
    assert_int_equal(verify_str(h, out, PW, &ok, NULL), CU_OK); /* rehash may be NULL */
    assert_true(ok);
    /* A fresh salt each time. */
    assert_int_equal(cu_hasher_hash(h, PW, strlen(PW), again), CU_OK);
    assert_string_not_equal(out, again);
    cu_hasher_free(h);
}

static void test_wrong_password(void **state)
{
    struct cu_hasher *h = new_hasher(&tiny, 1, 1000);
    char out[CU_PWHASH_STR_BYTES];
    bool ok = true;

    (void)state;
    assert_int_equal(cu_hasher_hash(h, PW, strlen(PW), out), CU_OK);
    assert_int_equal(verify_str(h, out, "correct horse battery stapler", &ok, NULL), CU_OK);
    assert_false(ok);
    ok = true;
    assert_int_equal(cu_hasher_verify(h, out, PW, strlen(PW) - 1, &ok, NULL), CU_OK);
    assert_false(ok);
    cu_hasher_free(h);
}

/* With no stored hash the answer is always no, yet the check runs (it needs a slot). */
static void test_stored_null(void **state)
{
    struct cu_hasher *h = new_hasher(&tiny, 1, 0);
    bool ok = true, rehash = true;

    (void)state;
    assert_int_equal(verify_str(h, NULL, PW, &ok, &rehash), CU_OK);
    assert_false(ok);
    assert_false(rehash);
    /* Not even the dummy's own text as a "password" gets in. */
    assert_int_equal(verify_str(h, NULL, h->dummy, &ok, NULL), CU_OK);
    assert_false(ok);
    assert_true(strncmp(h->dummy, "$argon2id$v=19$m=8,t=1,p=1$", 27) == 0);
    assert_int_equal(slot_take(h), CU_OK);
    assert_int_equal(verify_str(h, NULL, PW, &ok, NULL), CU_E_BUSY);
    slot_give(h);
    cu_hasher_free(h);
}

static void test_malformed_stored(void **state)
{
    struct cu_hasher *h = new_hasher(&tiny, 1, 1000);
    char out[CU_PWHASH_STR_BYTES], cut[CU_PWHASH_STR_BYTES], longer[300];
    const char *bad[] = {"",
                         "garbage",
                         "$argon2id$",
                         "$argon2id$v=19$m=8,t=1,p=1$AAAA$AAAA",
                         "$argon2id$v=19$m=x,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
                         cut,
                         longer};
    bool ok, rehash;

    (void)state;
    assert_int_equal(cu_hasher_hash(h, PW, strlen(PW), out), CU_OK);
    snprintf(cut, sizeof cut, "%.*s", (int)strlen(out) - 5, out);
    memset(longer, 'A', sizeof longer - 1);
    memcpy(longer, out, strlen(out)); /* a valid prefix running past the size of a hash */
    longer[sizeof longer - 1] = '\0';
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ok = rehash = true;
        assert_int_equal(verify_str(h, bad[i], PW, &ok, &rehash), CU_OK);
        assert_false(ok);
        assert_false(rehash);
    }
    cu_hasher_free(h);
}

static void test_rehash_flag(void **state)
{
    struct cu_pwhash_params more_mem = {.opslimit = 1, .memlimit = 16384};
    struct cu_pwhash_params more_ops = {.opslimit = 2, .memlimit = 8192};
    struct cu_hasher *h = new_hasher(&tiny, 1, 1000);
    char old[CU_PWHASH_STR_BYTES];
    bool ok = false, rehash = false;

    (void)state;
    assert_int_equal(cu_pwhash_raw(&more_mem, PW, strlen(PW), old), CU_OK);
    assert_int_equal(verify_str(h, old, PW, &ok, &rehash), CU_OK);
    assert_true(ok);
    assert_true(rehash);
    assert_int_equal(cu_pwhash_raw(&more_ops, PW, strlen(PW), old), CU_OK);
    ok = rehash = false;
    assert_int_equal(verify_str(h, old, PW, &ok, &rehash), CU_OK);
    assert_true(ok);
    assert_true(rehash);
    /* An Argon2i hash with the same numbers still verifies and asks to become Argon2id. */
    assert_int_equal(
        crypto_pwhash_str_alg(old, PW, strlen(PW), 3, 8192, crypto_pwhash_ALG_ARGON2I13), 0);
    ok = rehash = false;
    assert_int_equal(verify_str(h, old, PW, &ok, &rehash), CU_OK);
    assert_true(ok);
    assert_true(rehash);
    /* The same parameters: no rehash. */
    assert_int_equal(cu_pwhash_raw(&tiny, PW, strlen(PW), old), CU_OK);
    assert_int_equal(verify_str(h, old, PW, &ok, &rehash), CU_OK);
    assert_true(ok);
    assert_false(rehash);
    cu_hasher_free(h);
}

static void test_params_out_of_range(void **state)
{
    const struct cu_pwhash_params bad[] = {
        {.opslimit = 0, .memlimit = 8192},
        {.opslimit = (uint64_t)crypto_pwhash_OPSLIMIT_MAX + 1, .memlimit = 8192},
        {.opslimit = 1, .memlimit = 8191},
        {.opslimit = 1, .memlimit = 0},
        {.opslimit = 1, .memlimit = SIZE_MAX},
    };
    struct cu_hasher *h = (struct cu_hasher *)&h;
    char out[CU_PWHASH_STR_BYTES];

    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(cu_hasher_new(&bad[i], 1, 0, &h), CU_E_INVALID);
        assert_null(h);
        assert_int_equal(cu_pwhash_raw(&bad[i], PW, strlen(PW), out), CU_E_INVALID);
    }
    assert_int_equal(cu_hasher_new(NULL, 1, 0, &h), CU_E_INVALID);
    assert_int_equal(cu_pwhash_raw(NULL, PW, strlen(PW), out), CU_E_INVALID);
}

static void test_password_length_limits(void **state)
{
    struct cu_hasher *h = new_hasher(&tiny, 1, 1000);
    char out[CU_PWHASH_STR_BYTES];
    char *big = cu_malloc(CU_PWHASH_MAX_PASSWORD_BYTES + 1);
    bool ok = true;

    (void)state;
    assert_non_null(big);
    memset(big, 'x', CU_PWHASH_MAX_PASSWORD_BYTES + 1);
    assert_int_equal(cu_hasher_hash(h, big, 0, out), CU_E_INVALID);
    assert_int_equal(cu_hasher_hash(h, big, CU_PWHASH_MAX_PASSWORD_BYTES + 1, out), CU_E_INVALID);
    assert_int_equal(cu_pwhash_raw(&tiny, big, 0, out), CU_E_INVALID);
    assert_int_equal(cu_pwhash_raw(&tiny, big, CU_PWHASH_MAX_PASSWORD_BYTES + 1, out),
                     CU_E_INVALID);
    assert_int_equal(cu_hasher_hash(h, big, 1, out), CU_OK);
    assert_int_equal(cu_hasher_hash(h, big, CU_PWHASH_MAX_PASSWORD_BYTES, out), CU_OK);
    assert_int_equal(cu_hasher_verify(h, out, big, CU_PWHASH_MAX_PASSWORD_BYTES, &ok, NULL), CU_OK);
    assert_true(ok);
    /* A password too long to have been hashed matches nothing. */
    assert_int_equal(cu_hasher_verify(h, out, big, CU_PWHASH_MAX_PASSWORD_BYTES + 1, &ok, NULL),
                     CU_OK);
    assert_false(ok);
    ok = true;
    assert_int_equal(cu_hasher_verify(h, out, big, 0, &ok, NULL), CU_OK);
    assert_false(ok);
    cu_free(big);
    cu_hasher_free(h);
}

/* A thread that holds one slot of a hasher until told to give it back. */
struct holder {
    struct cu_hasher *h;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool holding;
    bool release;
    unsigned hold_ms; /* 0: until release is set; else give back after this long */
};

static void *holder_run(void *arg)
{
    struct holder *t = arg;

    CU_ASSERT(slot_take(t->h) == CU_OK); /* cmocka's asserts belong to the main thread */
    pthread_mutex_lock(&t->mu);
    t->holding = true;
    pthread_cond_broadcast(&t->cv);
    while (t->hold_ms == 0 && !t->release) {
        pthread_cond_wait(&t->cv, &t->mu);
    }
    pthread_mutex_unlock(&t->mu);
    if (t->hold_ms > 0) {
        struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)t->hold_ms * 1000000L};
        nanosleep(&ts, NULL);
    }
    slot_give(t->h);
    return NULL;
}

/* holder_start(t, th): starts the holder and returns once it holds its slot. */
static void holder_start(struct holder *t, pthread_t *th)
{
    assert_int_equal(pthread_mutex_init(&t->mu, NULL), 0);
    assert_int_equal(pthread_cond_init(&t->cv, NULL), 0);
    assert_int_equal(pthread_create(th, NULL, holder_run, t), 0);
    pthread_mutex_lock(&t->mu);
    while (!t->holding) {
        pthread_cond_wait(&t->cv, &t->mu);
    }
    pthread_mutex_unlock(&t->mu);
}

/* holder_stop(t, th): tells the holder to give its slot back and joins it. */
static void holder_stop(struct holder *t, pthread_t th)
{
    pthread_mutex_lock(&t->mu);
    t->release = true;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
    assert_int_equal(pthread_join(th, NULL), 0);
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
}

static void test_busy_when_slot_held(void **state)
{
    struct holder t = {.h = new_hasher(&tiny, 1, 50)};
    char out[CU_PWHASH_STR_BYTES];
    bool ok = true;
    pthread_t th;
    uint64_t t0;

    (void)state;
    holder_start(&t, &th);
    t0 = cu_clock_mono_ns();
    assert_int_equal(cu_hasher_hash(t.h, PW, strlen(PW), out), CU_E_BUSY);
    assert_true(cu_clock_mono_ns() - t0 >= 45 * 1000000ull); /* it did wait */
    assert_string_equal(out, "");
    assert_int_equal(verify_str(t.h, NULL, PW, &ok, NULL), CU_E_BUSY);
    assert_false(ok);
    holder_stop(&t, th);
    assert_int_equal(cu_hasher_hash(t.h, PW, strlen(PW), out), CU_OK);
    cu_hasher_free(t.h);
}

static void test_waiter_gets_freed_slot(void **state)
{
    struct holder t = {.h = new_hasher(&tiny, 1, 10000), .hold_ms = 100};
    char out[CU_PWHASH_STR_BYTES];
    pthread_t th;

    (void)state;
    holder_start(&t, &th);
    assert_int_equal(cu_hasher_hash(t.h, PW, strlen(PW), out), CU_OK);
    holder_stop(&t, th);
    cu_hasher_free(t.h);
}

/* Several threads hashing through two slots: all finish, and the count of running hashes,
 * sampled after each, never passed two. */
struct worker {
    struct cu_hasher *h;
    enum cu_err rc;
};

static unsigned peak;
static pthread_mutex_t peak_mu = PTHREAD_MUTEX_INITIALIZER;

static void *worker_run(void *arg)
{
    struct worker *w = arg;
    char out[CU_PWHASH_STR_BYTES];

    for (int i = 0; i < 4 && w->rc == CU_OK; i++) {
        w->rc = cu_hasher_hash(w->h, PW, strlen(PW), out);
        pthread_mutex_lock(&w->h->mu);
        pthread_mutex_lock(&peak_mu);
        if (w->h->busy > peak) {
            peak = w->h->busy;
        }
        pthread_mutex_unlock(&peak_mu);
        pthread_mutex_unlock(&w->h->mu);
    }
    return NULL;
}

static void test_concurrent_hashes(void **state)
{
    struct cu_hasher *h = new_hasher(&tiny, 2, 60000);
    struct worker w[4];
    pthread_t th[4];

    (void)state;
    for (int i = 0; i < 4; i++) {
        w[i] = (struct worker){.h = h, .rc = CU_OK};
        assert_int_equal(pthread_create(&th[i], NULL, worker_run, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(w[i].rc, CU_OK);
    }
    assert_true(peak <= 2);
    assert_int_equal(h->busy, 0);
    cu_hasher_free(h);
}

static void test_slots(void **state)
{
    struct cu_pwhash_params huge = {.opslimit = 1, .memlimit = crypto_pwhash_MEMLIMIT_MAX};
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    struct cu_hasher *h = new_hasher(&tiny, 0, 0);

    (void)state;
    assert_true(cu_hasher_slots(h) >= 1);
    assert_true(cores < 1 || cu_hasher_slots(h) <= (unsigned)cores);
    cu_hasher_free(h);
    h = new_hasher(&tiny, 3, 0);
    assert_int_equal(cu_hasher_slots(h), 3);
    cu_hasher_free(h);
    /* Hashes bigger than the memory there is still get one slot. */
    assert_int_equal(auto_slots(huge.memlimit), 1);
    assert_true(auto_slots(8192) >= 1);
    cu_hasher_free(NULL);
}

/* Slots are numbered from 0, a freed number is reused, and a hash in slot i runs on core i. */
static void test_slot_numbers_and_pinning(void **state)
{
    struct cu_hasher *h = new_hasher(&tiny, 2, 0);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    cpu_set_t before, saved, now;

    (void)state;
    assert_int_equal(pthread_getaffinity_np(pthread_self(), sizeof(before), &before), 0);
    assert_int_equal(slot_take(h), CU_OK);
    assert_int_equal(my_slot, 0);
    pthread_mutex_lock(&h->mu);
    assert_int_equal(slot_number(h), 1); /* what a second taker would get */
    assert_int_equal(slot_number(h), -1);
    h->used &= ~(uint64_t)2;
    pthread_mutex_unlock(&h->mu);
    bool pinned = pin(h, &saved);
    assert_int_equal(pinned, cores >= 2);
    if (pinned) {
        assert_int_equal(sched_getcpu(), 0);
        assert_int_equal(pthread_getaffinity_np(pthread_self(), sizeof(now), &now), 0);
        assert_int_equal(CPU_COUNT(&now), 1);
    }
    unpin(pinned, &saved);
    assert_int_equal(pthread_getaffinity_np(pthread_self(), sizeof(now), &now), 0);
    assert_true(CPU_EQUAL(&now, &before));
    slot_give(h);
    assert_int_equal(my_slot, -1);
    assert_true(h->used == 0 && h->busy == 0);
    cu_hasher_free(h);
}

static void test_allocation_failure(void **state)
{
    struct cu_hasher *h = (struct cu_hasher *)&h;

    (void)state;
    cu_mem_fail_at(1);
    assert_int_equal(cu_hasher_new(&tiny, 1, 0, &h), CU_E_NOMEM);
    cu_mem_fail_at(0);
    assert_null(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_wrong_password),
        cmocka_unit_test(test_stored_null),
        cmocka_unit_test(test_malformed_stored),
        cmocka_unit_test(test_rehash_flag),
        cmocka_unit_test(test_params_out_of_range),
        cmocka_unit_test(test_password_length_limits),
        cmocka_unit_test(test_busy_when_slot_held),
        cmocka_unit_test(test_waiter_gets_freed_slot),
        cmocka_unit_test(test_slot_numbers_and_pinning),
        cmocka_unit_test(test_concurrent_hashes),
        cmocka_unit_test(test_slots),
        cmocka_unit_test(test_allocation_failure),
    };

    return cmocka_run_group_tests(tests, setup, NULL);
}
