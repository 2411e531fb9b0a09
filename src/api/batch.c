/*
 * batch.c - the audit group-commit writer.
 *
 * Records handed over wait in a list under one lock, each with the callback that gets its
 * outcome. The writer takes the whole list, appends each record in one write transaction,
 * commits, and then calls every callback with its record's result, outside the lock. A record
 * the audit log refuses (CU_E_INVALID: a field over its limit) fails alone, since
 * cu_audit_append checks before it writes; a store error fails the whole batch, which is
 * rolled back, and every record gets the error (fail closed). A caller that waits
 * (cu_audit_batcher_append) hands over a callback that wakes it.
 */
#include "api/batch.h"

#include <pthread.h>
#include <stdbool.h>

#include "base/log.h"
#include "base/mem.h"

struct waiter {
    const struct cu_audit_event *ev;
    cu_audit_done_fn done;
    void *arg;
    enum cu_err rc;
    struct waiter *next;
};

struct cu_audit_batcher {
    struct cu_audit *audit;
    struct cu_store *store;
    pthread_mutex_t mu;
    pthread_cond_t work; /* the writer waits here for records */
    struct waiter *head, **tail;
    bool stop;
    bool joined; /* the writer thread has been joined (only the stopping thread reads it) */
    pthread_t thread;
};

/* Appends a batch in one transaction; fills each waiter's rc. */
static void write_batch(struct cu_audit_batcher *b, struct waiter *list)
{
    struct cu_db *db = NULL;
    enum cu_err rc = cu_store_db(b->store, &db);

    size_t n = 0, i = 0;
    for (struct waiter *w = list; w != NULL; w = w->next)
        n++;
    const struct cu_audit_event **evs = cu_calloc(n, sizeof(const struct cu_audit_event *));
    enum cu_err *rcs = cu_calloc(n, sizeof(*rcs));
    if (rc == CU_OK && (evs == NULL || rcs == NULL))
        rc = CU_E_NOMEM;
    if (rc == CU_OK)
        rc = cu_db_begin(db, CU_TXN_WRITE);
    for (struct waiter *w = list; rc == CU_OK && w != NULL; w = w->next)
        evs[i++] = w->ev;
    /* One read and one move of the chain's head for the whole batch. */
    if (rc == CU_OK)
        rc = cu_audit_append_many(b->audit, db, evs, n, rcs);
    i = 0;
    for (struct waiter *w = list; rc == CU_OK && w != NULL; w = w->next)
        w->rc = rcs[i++];
    cu_free(evs);
    cu_free(rcs);
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
    pthread_setname_np(pthread_self(), "cu-audit"); /* as top -H and ps -L show it */
    pthread_mutex_lock(&b->mu);
    for (;;) {
        while (b->head == NULL && !b->stop)
            pthread_cond_wait(&b->work, &b->mu);
        if (b->head == NULL)
            break;
        struct waiter *list = b->head;
        b->head = NULL;
        b->tail = &b->head;
        pthread_mutex_unlock(&b->mu);
        write_batch(b, list);
        for (struct waiter *w = list, *next; w != NULL; w = next) {
            next = w->next;
            w->done(w->arg, w->rc);
            cu_free(w);
        }
        pthread_mutex_lock(&b->mu);
    }
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

/* cu_audit_batcher_new(a, st, out): starts the writer thread. Caller frees with
 * cu_audit_batcher_free, after no request can use it any more. */
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
    if (pthread_create(&b->thread, NULL, writer_main, b) != 0) {
        pthread_cond_destroy(&b->work);
        pthread_mutex_destroy(&b->mu);
        cu_free(b);
        return CU_E_INTERNAL;
    }
    *out = b;
    return CU_OK;
}

/* cu_audit_batcher_stop(b): writes what is waiting (every callback of an accepted submit has
 * returned when this does) and stops the writer thread; appends and submits then fail with
 * CU_E_UNAVAILABLE. Calling it again, or on NULL, does nothing. Not concurrently with itself
 * or cu_audit_batcher_free. */
void cu_audit_batcher_stop(struct cu_audit_batcher *b)
{
    if (b == NULL || b->joined)
        return;
    pthread_mutex_lock(&b->mu);
    b->stop = true;
    pthread_cond_signal(&b->work);
    pthread_mutex_unlock(&b->mu);
    pthread_join(b->thread, NULL);
    b->joined = true;
}

/* cu_audit_batcher_free(b): stops b as cu_audit_batcher_stop does and frees it; NULL does
 * nothing. */
void cu_audit_batcher_free(struct cu_audit_batcher *b)
{
    if (b == NULL)
        return;
    cu_audit_batcher_stop(b);
    pthread_cond_destroy(&b->work);
    pthread_mutex_destroy(&b->mu);
    cu_free(b);
}

/* cu_audit_batcher_submit(b, ev, done, arg): hands ev to the writer's next transaction and
 * returns at once. CU_OK: done(arg, rc) is then called exactly once, on the writer thread,
 * when the record is committed or has failed, and ev and what it points to must stay valid
 * until that call. CU_E_UNAVAILABLE when b is stopped, CU_E_NOMEM: done is never called. */
enum cu_err cu_audit_batcher_submit(struct cu_audit_batcher *b, const struct cu_audit_event *ev,
                                    cu_audit_done_fn done, void *arg)
{
    struct waiter *w = cu_calloc(1, sizeof(*w));
    if (w == NULL)
        return CU_E_NOMEM;
    w->ev = ev;
    w->done = done;
    w->arg = arg;
    pthread_mutex_lock(&b->mu);
    if (b->stop) {
        pthread_mutex_unlock(&b->mu);
        cu_free(w);
        return CU_E_UNAVAILABLE;
    }
    *b->tail = w;
    b->tail = &w->next;
    pthread_cond_signal(&b->work);
    pthread_mutex_unlock(&b->mu);
    return CU_OK;
}

/* What a caller of cu_audit_batcher_append waits on. */
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

/* cu_audit_batcher_append(b, ev): appends ev in the writer's next transaction and returns
 * once it is committed (CU_OK) or has failed (the error; nothing of it was written);
 * CU_E_UNAVAILABLE at once when b is stopped. ev and what it points to must stay valid until
 * then. */
enum cu_err cu_audit_batcher_append(struct cu_audit_batcher *b, const struct cu_audit_event *ev)
{
    struct sync_wait s = {.rc = CU_OK, .done = false};
    enum cu_err rc;

    pthread_mutex_init(&s.mu, NULL);
    pthread_cond_init(&s.cv, NULL);
    rc = cu_audit_batcher_submit(b, ev, wake, &s);
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
