/*
 * notify_int.h - what notify.c and worker.c share (notify.h).
 */
#ifndef CU_NOTIFY_INT_H
#define CU_NOTIFY_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "notify/notify.h"

struct cu_notify {
    struct cu_config_notify_view {
        char webhook_url[512];
        char webhook_ca[CU_CONFIG_PATH_BYTES]; /* "" for the system's store */
        char email_url[512];
        char email_from[256];
        char email_user[128]; /* "" for none */
        char email_ca[CU_CONFIG_PATH_BYTES];
        char staff_email[256]; /* "" for none */
        bool loopback_http;
        unsigned timeout_ms, max_attempts, retry_base_ms, retry_max_ms, concurrency;
    } o;
    unsigned channels;
    uint8_t key[CU_NOTIFY_KEY_MAX];
    size_t keylen;
    char password[256]; /* the SMTP password, "" for none */
    struct cu_vault *vault;

    /* the worker */
    struct cu_store *st;
    struct cu_committer *committer;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop, started, woken;
    /* the unit (and its run, and transaction) whose notices already asked for a wake-up; only
     * ever touched on the committer's thread, where units run */
    const struct cu_work *woke_w;
    unsigned woke_run;
    uint64_t woke_txn;
    /* the notices that run of a unit queued already (customer and template): a batch of a
     * thousand transfers of one customer queues one notice of each kind, not a thousand */
    struct {
        char customer[32];
        char template_name[40];
    } queued[8];
    size_t nqueued;

    /* figures */
    atomic_ullong sent[2], failed[2], dead[2];
    atomic_ullong latency_count, latency_sum_ms;
    atomic_ullong latency_le[CU_NOTIFY_LATENCY_BUCKETS];
    atomic_llong pending, sending, dead_now; /* the outbox, as the worker last counted it */
    int64_t counted_at;                      /* the worker's own */
};

#endif
