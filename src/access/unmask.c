/*
 * unmask.c - the per-staff count of unmasked reads (unmask.h), in table unmask_usage: one row
 * per staff member and clock hour.
 */
#include "access/unmask.h"

#include <string.h>

/* used(db, staff_id, hour, now_ms, out, alerted): the count over the hour ending at now_ms,
 * and whether this clock hour's alert was raised. */
static enum cu_err used(struct cu_db *db, const char *staff_id, int64_t hour, int64_t now_ms,
                        uint64_t *out, bool *alerted)
{
    static const char sql[] =
        "SELECT hour, count, alerted FROM unmask_usage WHERE staff_id = $1 AND hour >= $2";
    const struct cu_val p[] = {CU_VT(staff_id), CU_VI(hour - 1)};
    int64_t cur = 0, prev = 0;
    struct cu_stmt *st = NULL;
    bool row = false;
    enum cu_err rc = cu_db_query(db, sql, p, CU_NVALS(p), &st);

    *alerted = false;
    while (rc == CU_OK && (rc = cu_stmt_next(st, &row)) == CU_OK && row) {
        int64_t h = cu_stmt_int(st, 0), c = cu_stmt_int(st, 1);
        if (c < 0)
            c = 0;
        if (h == hour) {
            cur = c;
            *alerted = cu_stmt_int(st, 2) != 0;
        } else if (h == hour - 1) {
            prev = c;
        }
    }
    cu_stmt_done(st);
    if (rc != CU_OK)
        return rc;
    /* the share of the previous hour still within the last 60 minutes, rounded up so that
     * the window never counts less than it saw */
    int64_t left = CU_UNMASK_HOUR_MS - (now_ms - hour * CU_UNMASK_HOUR_MS);
    *out = (uint64_t)cur + (uint64_t)((prev * left + CU_UNMASK_HOUR_MS - 1) / CU_UNMASK_HOUR_MS);
    return CU_OK;
}

enum cu_err cu_unmask_take(struct cu_db *db, const char *staff_id, int64_t now_ms, unsigned n,
                           unsigned limit, struct cu_unmask_take *out)
{
    static const char count_sql[] =
        "INSERT INTO unmask_usage (staff_id, hour, count, alerted) VALUES ($1, $2, $3, 0) "
        "ON CONFLICT (staff_id, hour) DO UPDATE SET count = unmask_usage.count + $3";
    static const char alert_sql[] =
        "INSERT INTO unmask_usage (staff_id, hour, count, alerted) VALUES ($1, $2, 0, 1) "
        "ON CONFLICT (staff_id, hour) DO UPDATE SET alerted = 1";
    static const char prune_sql[] = "DELETE FROM unmask_usage WHERE staff_id = $1 AND hour < $2";
    int64_t hour = now_ms / CU_UNMASK_HOUR_MS;
    bool alerted = false;
    enum cu_err rc;

    memset(out, 0, sizeof(*out));
    if (n == 0 || limit == 0 || now_ms < 0)
        return CU_E_INVALID;
    rc = used(db, staff_id, hour, now_ms, &out->used, &alerted);
    if (rc != CU_OK)
        return rc;
    out->granted = out->used + n <= limit;
    if (out->granted) {
        const struct cu_val p[] = {CU_VT(staff_id), CU_VI(hour), CU_VI(n)};
        rc = cu_db_exec(db, count_sql, p, CU_NVALS(p));
    } else if (!alerted) {
        const struct cu_val p[] = {CU_VT(staff_id), CU_VI(hour)};
        out->alert = true;
        rc = cu_db_exec(db, alert_sql, p, CU_NVALS(p));
    }
    if (rc == CU_OK) {
        const struct cu_val p[] = {CU_VT(staff_id), CU_VI(hour - 1)};
        rc = cu_db_exec(db, prune_sql, p, CU_NVALS(p));
    }
    return rc;
}
