/*
 * batch.h - group commit for audit records that stand alone (reads, refusals, sign-in
 * failures): requests hand their record to one writer thread; the writer appends every record
 * that is waiting in one transaction, so one commit (and one fsync) serves many requests. A
 * request is answered only after its record is committed, or fails with it. A request may wait
 * for its commit (cu_audit_batcher_append) or be told of it by a callback
 * (cu_audit_batcher_submit), so that it holds no thread meanwhile.
 */
#ifndef CU_API_BATCH_H
#define CU_API_BATCH_H

#include "audit/audit.h"
#include "base/err.h"
#include "store/store.h"

struct cu_audit_batcher;

/* cu_audit_done_fn(arg, rc): tells, on the writer thread, that a record handed over with
 * cu_audit_batcher_submit is committed (CU_OK) or has failed (the error; nothing of it was
 * written). It should return quickly: the next batch waits for it. */
typedef void (*cu_audit_done_fn)(void *arg, enum cu_err rc);

/* cu_audit_batcher_new(a, st, out): starts the writer thread. Caller frees with
 * cu_audit_batcher_free, after no request can use it any more. */
CU_WUR enum cu_err cu_audit_batcher_new(struct cu_audit *a, struct cu_store *st,
                                        struct cu_audit_batcher **out);

/* cu_audit_batcher_stop(b): writes what is waiting (every callback of an accepted submit has
 * returned when this does) and stops the writer thread; appends and submits then fail with
 * CU_E_UNAVAILABLE. Calling it again, or on NULL, does nothing. Not concurrently with itself
 * or cu_audit_batcher_free. */
void cu_audit_batcher_stop(struct cu_audit_batcher *b);

/* cu_audit_batcher_free(b): stops b as cu_audit_batcher_stop does and frees it; NULL does
 * nothing. */
void cu_audit_batcher_free(struct cu_audit_batcher *b);

/* cu_audit_batcher_append(b, ev): appends ev in the writer's next transaction and returns
 * once it is committed (CU_OK) or has failed (the error; nothing of it was written);
 * CU_E_UNAVAILABLE at once when b is stopped. ev and what it points to must stay valid until
 * then. */
CU_WUR enum cu_err cu_audit_batcher_append(struct cu_audit_batcher *b,
                                           const struct cu_audit_event *ev);

/* cu_audit_batcher_submit(b, ev, done, arg): hands ev to the writer's next transaction and
 * returns at once. CU_OK: done(arg, rc) is then called exactly once, on the writer thread,
 * when the record is committed or has failed, and ev and what it points to must stay valid
 * until that call. CU_E_UNAVAILABLE when b is stopped, CU_E_NOMEM: done is never called. */
CU_WUR enum cu_err cu_audit_batcher_submit(struct cu_audit_batcher *b,
                                           const struct cu_audit_event *ev, cu_audit_done_fn done,
                                           void *arg);

#endif
