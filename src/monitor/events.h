/*
 * events.h - the events units of work emit (a deposit, a transfer ...), kept in the events
 * table in commit order for monitoring and reports (docs/ledger.md, "Events").
 */
#ifndef CU_MONITOR_EVENTS_H
#define CU_MONITOR_EVENTS_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "store/store.h"
#include "store/work.h"

/* cu_events_sink(): the committer's event sink: each event of a unit a row of the events
 * table (time, type, subject, request id, body), in the unit's savepoint. */
struct cu_work_event_sink cu_events_sink(void);

/* One stored event. */
struct cu_event {
    int64_t seq, at;
    char type[32];
    char customer[32];
    char request_id[64];
    char *body; /* canonical JSON text (owned) */
};

/* cu_events_list(db, customer, after, limit, out, n): events after seq `after` in order, only
 * those about customer when it is not NULL; *out freed with cu_events_free. */
CU_WUR enum cu_err cu_events_list(struct cu_db *db, const char *customer, int64_t after,
                                  size_t limit, struct cu_event **out, size_t *n);
void cu_events_free(struct cu_event *e, size_t n);

#endif
