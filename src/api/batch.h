/*
 * batch.h - group commit for audit records that stand alone (reads, refusals, sign-in
 * failures): requests hand their record to one writer thread and wait; the writer appends
 * every record that is waiting in one transaction, so one commit (and one fsync) serves many
 * requests. A request is answered only after its record is committed, or fails with it.
 */
#ifndef CU_API_BATCH_H
#define CU_API_BATCH_H

#include "audit/audit.h"
#include "base/err.h"
#include "store/store.h"

struct cu_audit_batcher;

/* cu_audit_batcher_new(a, st, out): starts the writer thread. Caller frees with
 * cu_audit_batcher_free, after no request can use it any more. */
CU_WUR enum cu_err cu_audit_batcher_new(struct cu_audit *a, struct cu_store *st,
                                        struct cu_audit_batcher **out);

/* cu_audit_batcher_free(b): writes what is waiting, stops the thread, frees b; NULL does
 * nothing. */
void cu_audit_batcher_free(struct cu_audit_batcher *b);

/* cu_audit_batcher_append(b, ev): appends ev in the writer's next transaction and returns
 * once it is committed (CU_OK) or has failed (the error; nothing of it was written). ev and
 * what it points to must stay valid until then. */
CU_WUR enum cu_err cu_audit_batcher_append(struct cu_audit_batcher *b,
                                           const struct cu_audit_event *ev);

#endif
