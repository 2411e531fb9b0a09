/*
 * test_lane.c - the password-hashing lane: jobs run once each, in the order they came, on
 * the lane's own threads, several at once; a job that waited past max_wait is told so;
 * stopping runs what is queued and refuses what comes after.
 */
#include "cu_test.h"

#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "base/lane.h"

#define JOBS 64

struct record {
    pthread_mutex_t mu;
    int order[JOBS]; /* job numbers, in the order they ran */
    int n;
    int runs[JOBS];
    int expired[JOBS];
    pthread_t ran_on[JOBS];
    useconds_t sleep_us;  /* how long each job takes */
    pthread_mutex_t gate; /* held by the test to keep jobs from finishing */
    int running;          /* jobs inside fn now */
    int most_running;
};

struct job {
    struct cu_lane_job slot;
    struct record *rec;
    int id;
};

static void run(void *arg, bool expired)
{
    struct job *j = arg;
    struct record *r = j->rec;

    pthread_mutex_lock(&r->mu);
    r->order[r->n++] = j->id;
    r->runs[j->id]++;
    r->expired[j->id] = expired;
    r->ran_on[j->id] = pthread_self();
    r->running++;
    if (r->running > r->most_running)
        r->most_running = r->running;
    pthread_mutex_unlock(&r->mu);
    pthread_mutex_lock(&r->gate);
    pthread_mutex_unlock(&r->gate);
    if (r->sleep_us)
        usleep(r->sleep_us);
    pthread_mutex_lock(&r->mu);
    r->running--;
    pthread_mutex_unlock(&r->mu);
}

static void record_init(struct record *r)
{
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->mu, NULL);
    pthread_mutex_init(&r->gate, NULL);
}

/* One thread: every job runs once, in order, off the caller's thread, none expired. */
static void test_order_and_once(void **state)
{
    static struct job jobs[JOBS];
    struct record r;
    struct cu_lane *l = NULL;

    (void)state;
    record_init(&r);
    assert_int_equal(cu_lane_new("cu-test", 1, 60000, &l), CU_OK);
    pthread_mutex_lock(&r.gate); /* the first job holds the thread; the rest queue */
    for (int i = 0; i < JOBS; i++) {
        jobs[i] = (struct job){.rec = &r, .id = i};
        assert_int_equal(cu_lane_submit(l, &jobs[i].slot, run, &jobs[i]), CU_OK);
    }
    assert_true(cu_lane_queued(l) >= JOBS - 1);
    pthread_mutex_unlock(&r.gate);
    cu_lane_stop(l);
    assert_int_equal(r.n, JOBS);
    for (int i = 0; i < JOBS; i++) {
        assert_int_equal(r.order[i], i);
        assert_int_equal(r.runs[i], 1);
        assert_int_equal(r.expired[i], 0);
        assert_false(pthread_equal(r.ran_on[i], pthread_self()));
    }
    assert_int_equal(cu_lane_queued(l), 0);
    cu_lane_free(l);
}

static bool running(struct record *r)
{
    pthread_mutex_lock(&r->mu);
    bool yes = r->running > 0;
    pthread_mutex_unlock(&r->mu);
    return yes;
}

/* Jobs that waited longer than max_wait are told so; the first, taken at once, is not. */
static void test_expiry(void **state)
{
    static struct job jobs[3];
    struct record r;
    struct cu_lane *l = NULL;

    (void)state;
    record_init(&r);
    assert_int_equal(cu_lane_new("cu-test", 1, 1000, &l), CU_OK);
    pthread_mutex_lock(&r.gate);
    for (int i = 0; i < 3; i++) {
        jobs[i] = (struct job){.rec = &r, .id = i};
        assert_int_equal(cu_lane_submit(l, &jobs[i].slot, run, &jobs[i]), CU_OK);
        for (int k = 0; i == 0 && k < 5000 && !running(&r); k++)
            usleep(1000); /* the first is taken before the others come */
    }
    usleep(2100 * 1000); /* the queued two wait more than twice max_wait */
    pthread_mutex_unlock(&r.gate);
    cu_lane_free(l);
    assert_int_equal(r.n, 3);
    assert_int_equal(r.expired[0], 0);
    assert_int_equal(r.expired[1], 1);
    assert_int_equal(r.expired[2], 1);
}

/* Four threads run jobs at once; after stop, submits are refused and nothing more runs. */
static void test_parallel_and_stop(void **state)
{
    static struct job jobs[8], late;
    struct record r;
    struct cu_lane *l = NULL;

    (void)state;
    record_init(&r);
    r.sleep_us = 50 * 1000;
    assert_int_equal(cu_lane_new("cu-test", 4, 60000, &l), CU_OK);
    for (int i = 0; i < 8; i++) {
        jobs[i] = (struct job){.rec = &r, .id = i};
        assert_int_equal(cu_lane_submit(l, &jobs[i].slot, run, &jobs[i]), CU_OK);
    }
    cu_lane_stop(l);
    assert_int_equal(r.n, 8);
    assert_true(r.most_running > 1);
    assert_true(r.most_running <= 4);
    late = (struct job){.rec = &r, .id = 8};
    assert_int_equal(cu_lane_submit(l, &late.slot, run, &late), CU_E_UNAVAILABLE);
    cu_lane_stop(l); /* again: nothing */
    assert_int_equal(r.n, 8);
    cu_lane_free(l);
    cu_lane_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_and_once),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_parallel_and_stop),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
