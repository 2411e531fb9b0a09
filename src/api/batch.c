/*
 * batch.c - the audit group-commit writer.
 *
 * Waiting requests form a list under one lock. The writer takes the whole list, appends each
 * record in one write transaction, commits, and then marks every waiter done with its result
 * and wakes them all. A record the audit log refuses (CU_E_INVALID: a field over its limit)
 * fails alone, since cu_audit_append checks before it writes; a store error fails the whole
 * batch, which is rolled back, and every waiter gets the error (fail closed).
 */
#include "api/batch.h"

#include <pthread.h>
#include <stdbool.h>

#include "base/log.h"
#include "base/mem.h"

struct waiter {
    const struct cu_audit_event *ev;
    enum cu_err rc;
    bool done;
    struct waiter *next;
};

struct cu_audit_batcher {
    struct cu_audit *audit;
    struct cu_store *store;
    pthread_mutex_t mu;
    pthread_cond_t work; /* the writer waits here for records */
    pthread_cond_t done; /* requests wait here for their commit */
    struct waiter *head, **tail;
    bool stop;
    pthread_t thread;
};

/* Appends a batch in one transaction; fills each waiter's rc. */
static void write_batch(struct cu_audit_batcher *b, struct waiter *list)
{
    struct cu_db *db = NULL;
    enum cu_err rc = cu_store_db(b->store, &db);

    if (rc == CU_OK)
        rc = cu_db_begin(db, CU_TXN_WRITE);
    for (struct waiter *w = list; rc == CU_OK && w != NULL; w = w->next) {
        w->rc = cu_audit_append(b->audit, db, w->ev, NULL);
        if (w->rc != CU_OK && w->rc != CU_E_INVALID && w->rc != CU_E_TOO_LARGE)
            rc = w->rc;
    }
    if (rc == CU_OK)
        rc = cu_db_commit(db);
    else if (db != NULL)
        cu_db_rollback(db);
    for (struct waiter *w = list; w != NULL; w = w->next) {
        if (rc != CU_OK)
            w->rc = rc;
    }
}

static void *writer_main(void *arg)
{
    struct cu_audit_batcher *b = arg;
    pthread_mutex_lock(&b->mu);
    for (;;) {
        while (b->head == NULL && !b->stop)
            pthread_cond_wait(&b->work, &b->mu);
        if (b->head == NULL && b->stop)
            break;
        struct waiter *list = b->head;
        b->head = NULL;
        b->tail = &b->head;
        pthread_mutex_unlock(&b->mu);
        write_batch(b, list);
        pthread_mutex_lock(&b->mu);
        for (struct waiter *w = list, *next; w != NULL; w = next) {
            next = w->next; /* read before done: the waiter's frame may go once it is set */
            w->done = true;
        }
        pthread_cond_broadcast(&b->done);
    }
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

enum cu_err cu_audit_batcher_new(struct cu_audit *a, struct cu_store *st,
                                 struct cu_audit_batcher **out)
{
    struct cu_audit_batcher *b = cu_calloc(1, sizeof(*b));
    if (b == NULL)
        return CU_E_NOMEM;
    b->audit = a;
    b->store = st;
    b->tail = &b->head;
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->work, NULL);
    pthread_cond_init(&b->done, NULL);
    if (pthread_create(&b->thread, NULL, writer_main, b) != 0) {
        pthread_cond_destroy(&b->done);
        pthread_cond_destroy(&b->work);
        pthread_mutex_destroy(&b->mu);
        cu_free(b);
        return CU_E_INTERNAL;
    }
    *out = b;
    return CU_OK;
}

void cu_audit_batcher_free(struct cu_audit_batcher *b)
{
    if (b == NULL)
        return;
    pthread_mutex_lock(&b->mu);
    b->stop = true;
    pthread_cond_signal(&b->work);
    pthread_mutex_unlock(&b->mu);
    pthread_join(b->thread, NULL);
    pthread_cond_destroy(&b->done);
    pthread_cond_destroy(&b->work);
    pthread_mutex_destroy(&b->mu);
    cu_free(b);
}

enum cu_err cu_audit_batcher_append(struct cu_audit_batcher *b, const struct cu_audit_event *ev)
{
    struct waiter w = {.ev = ev, .rc = CU_OK, .done = false, .next = NULL};
    pthread_mutex_lock(&b->mu);
    if (b->stop) {
        pthread_mutex_unlock(&b->mu);
        return CU_E_UNAVAILABLE;
    }
    *b->tail = &w;
    b->tail = &w.next;
    pthread_cond_signal(&b->work);
    while (!w.done)
        pthread_cond_wait(&b->done, &b->mu);
    pthread_mutex_unlock(&b->mu);
    return w.rc;
}
