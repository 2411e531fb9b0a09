/*
 * lane.c - a worker lane: a queue under one lock and a few threads that take jobs from its
 * head. A job runs outside the lock.
 */
#include "base/lane.h"

#include <pthread.h>
#include <stdio.h>

#include "base/clock.h"
#include "base/mem.h"

#define LANE_THREADS_MAX 64

struct cu_lane {
    pthread_mutex_t mu;
    pthread_cond_t work;
    struct cu_lane_job *head, **tail;
    unsigned queued;
    bool stop;
    bool joined;
    uint64_t max_wait_ns;
    unsigned nthreads;
    char name[16];
    pthread_t threads[LANE_THREADS_MAX];
};

static void *lane_main(void *arg)
{
    struct cu_lane *l = arg;
    pthread_setname_np(pthread_self(), l->name);
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (l->head == NULL && !l->stop)
            pthread_cond_wait(&l->work, &l->mu);
        struct cu_lane_job *j = l->head;
        if (j == NULL)
            break;
        l->head = j->next;
        if (l->head == NULL)
            l->tail = &l->head;
        l->queued--;
        pthread_mutex_unlock(&l->mu);
        bool expired = cu_clock_mono_ns() - j->queued_ns > l->max_wait_ns;
        j->fn(j->arg, expired); /* j may be gone once fn returns */
        pthread_mutex_lock(&l->mu);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

/* cu_lane_new(name, threads, max_wait_ms, out): starts the lane's threads. */
enum cu_err cu_lane_new(const char *name, unsigned threads, unsigned max_wait_ms,
                        struct cu_lane **out)
{
    struct cu_lane *l = cu_calloc(1, sizeof(*l));
    *out = NULL;
    if (l == NULL)
        return CU_E_NOMEM;
    if (threads < 1)
        threads = 1;
    if (threads > LANE_THREADS_MAX)
        threads = LANE_THREADS_MAX;
    snprintf(l->name, sizeof(l->name), "%s", name);
    l->tail = &l->head;
    l->max_wait_ns = (uint64_t)max_wait_ms * 1000000u;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->work, NULL);
    for (; l->nthreads < threads; l->nthreads++) {
        if (pthread_create(&l->threads[l->nthreads], NULL, lane_main, l) != 0) {
            cu_lane_free(l);
            return CU_E_INTERNAL;
        }
    }
    *out = l;
    return CU_OK;
}

/* cu_lane_submit(l, job, fn, arg): queues the job; CU_E_UNAVAILABLE once stopping. */
enum cu_err cu_lane_submit(struct cu_lane *l, struct cu_lane_job *job, cu_lane_fn fn, void *arg)
{
    job->fn = fn;
    job->arg = arg;
    job->next = NULL;
    job->queued_ns = cu_clock_mono_ns();
    pthread_mutex_lock(&l->mu);
    if (l->stop) {
        pthread_mutex_unlock(&l->mu);
        return CU_E_UNAVAILABLE;
    }
    *l->tail = job;
    l->tail = &job->next;
    l->queued++;
    pthread_cond_signal(&l->work);
    pthread_mutex_unlock(&l->mu);
    return CU_OK;
}

/* cu_lane_queued(l): jobs waiting. */
unsigned cu_lane_queued(struct cu_lane *l)
{
    pthread_mutex_lock(&l->mu);
    unsigned n = l->queued;
    pthread_mutex_unlock(&l->mu);
    return n;
}

/* cu_lane_stop(l): refuses new jobs, lets the threads run what is queued, joins them. */
void cu_lane_stop(struct cu_lane *l)
{
    if (l == NULL || l->joined)
        return;
    pthread_mutex_lock(&l->mu);
    l->stop = true;
    pthread_cond_broadcast(&l->work);
    pthread_mutex_unlock(&l->mu);
    for (unsigned i = 0; i < l->nthreads; i++)
        pthread_join(l->threads[i], NULL);
    l->joined = true;
}

/* cu_lane_free(l): stops and frees l. */
void cu_lane_free(struct cu_lane *l)
{
    if (l == NULL)
        return;
    cu_lane_stop(l);
    pthread_cond_destroy(&l->work);
    pthread_mutex_destroy(&l->mu);
    cu_free(l);
}
