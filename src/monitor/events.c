/*
 * events.c - the events table (events.h).
 */
#include "monitor/events.h"

#include <stdio.h>
#include <string.h>

#include "base/mem.h"

static enum cu_err append(void *arg, struct cu_db *db, const struct cu_work *w,
                          const struct cu_work_event *evs, size_t n)
{
    static const char sql[] = "INSERT INTO events (at, type, customer, request_id, body) "
                              "VALUES ($1, $2, $3, $4, $5)";
    const struct cu_work_ctx *ctx = cu_work_context_of(w);
    enum cu_err rc = CU_OK;

    (void)arg;
    for (size_t i = 0; rc == CU_OK && i < n; i++) {
        const struct cu_val p[] = {CU_VI(ctx->now_ms), CU_VT(evs[i].type),
                                   evs[i].subject[0] ? CU_VT(evs[i].subject) : CU_VNULL,
                                   CU_VT(ctx->request_id), CU_VT(evs[i].body)};
        rc = cu_db_exec(db, sql, p, CU_NVALS(p));
    }
    return rc;
}

struct cu_work_event_sink cu_events_sink(void)
{
    struct cu_work_event_sink s = {append, NULL};
    return s;
}

static void copy_col(struct cu_stmt *st, int col, char *out, size_t cap)
{
    size_t len = 0;
    const char *s = cu_stmt_null(st, col) ? "" : cu_stmt_text(st, col, &len);
    snprintf(out, cap, "%.*s", (int)len, s);
}

enum cu_err cu_events_list(struct cu_db *db, const char *customer, int64_t after, size_t limit,
                           struct cu_event **out, size_t *n)
{
    static const char sql[] = "SELECT seq, at, type, customer, request_id, body FROM events "
                              "WHERE seq > $1 AND ($2 = '' OR customer = $2) ORDER BY seq LIMIT $3";
    const struct cu_val p[] = {CU_VI(after), CU_VT(customer ? customer : ""), CU_VI(limit)};
    struct cu_stmt *st = NULL;
    struct cu_event *v;
    bool row = false;
    enum cu_err rc;

    *out = NULL;
    *n = 0;
    if (limit == 0 || limit > 1000)
        return CU_E_INVALID;
    if ((v = cu_calloc(limit, sizeof(*v))) == NULL)
        return CU_E_NOMEM;
    rc = cu_db_query(db, sql, p, CU_NVALS(p), &st);
    while (rc == CU_OK && *n < limit && (rc = cu_stmt_next(st, &row)) == CU_OK && row) {
        struct cu_event *e = &v[(*n)++];
        size_t len = 0;
        const char *b;
        e->seq = cu_stmt_int(st, 0);
        e->at = cu_stmt_int(st, 1);
        copy_col(st, 2, e->type, sizeof(e->type));
        copy_col(st, 3, e->customer, sizeof(e->customer));
        copy_col(st, 4, e->request_id, sizeof(e->request_id));
        b = cu_stmt_text(st, 5, &len);
        if ((e->body = cu_malloc(len + 1)) == NULL) {
            rc = CU_E_NOMEM;
            break;
        }
        memcpy(e->body, b, len);
        e->body[len] = '\0';
    }
    cu_stmt_done(st);
    if (rc != CU_OK) {
        cu_events_free(v, *n);
        *n = 0;
        return rc;
    }
    *out = v;
    return CU_OK;
}

void cu_events_free(struct cu_event *e, size_t n)
{
    for (size_t i = 0; e != NULL && i < n; i++)
        cu_free(e[i].body);
    cu_free(e);
}
