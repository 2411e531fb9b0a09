/*
 * unmask.h - the per-staff limit on unmasked reads ([access] unmask_limit_per_hour): how many
 * customers one staff member saw in full over the last hour, kept in the store (so it holds
 * across restarts and nodes) and taken inside the unit of work of the read, where the single
 * writer orders every take.
 *
 * The hour slides: the count is this clock hour's plus the share of the previous clock hour's
 * that still lies within the last 60 minutes (the previous hour's count, weighted by how much
 * of it is left).
 */
#ifndef CU_ACCESS_UNMASK_H
#define CU_ACCESS_UNMASK_H

#include <stdbool.h>
#include <stdint.h>

#include "base/err.h"
#include "store/store.h"

#define CU_UNMASK_HOUR_MS 3600000LL

/* What a take found. */
struct cu_unmask_take {
    bool granted;  /* the customers may be shown in full: they are counted */
    bool alert;    /* refused, for the first time in this clock hour: raise the alert */
    uint64_t used; /* the staff member's count over the last hour, before this take */
};

/* cu_unmask_take(db, staff_id, now_ms, n, limit, out): inside a unit of work, on its
 * connection: whether staff_id may see n (>= 1) more customers in full within limit (>= 1)
 * over the hour ending at now_ms; when so they are counted. The first refusal of a clock hour
 * sets out->alert (once an hour for each staff member). Drops the staff member's rows older
 * than the previous clock hour. */
CU_WUR enum cu_err cu_unmask_take(struct cu_db *db, const char *staff_id, int64_t now_ms,
                                  unsigned n, unsigned limit, struct cu_unmask_take *out);

#endif
