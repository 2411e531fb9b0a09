/*
 * alerts.c - the alerts queue (alerts.h).
 */
#include "monitor/alerts.h"

#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "base/mem.h"
#include "base/text.h"
#include "ledger/ledger.h"

#define COLUMNS                                                                                    \
    "id, decision_id, customer, type, severity, rules, status, assignee, resolution, "             \
    "resolved_by, created_at, updated_at, resolved_at"

bool cu_alert_id_valid(const char *id)
{
    return cu_ledger_id_valid(id, "alr_"); /* the same shape as the ledger's ids */
}

enum cu_err cu_alert_open(struct cu_db *db, const struct cu_work *w, const char *decision_id,
                          const char *customer, const char *type, const char *severity,
                          const char *rules)
{
    static const char sql[] =
        "INSERT INTO alerts (id, created_at, decision_id, customer, type, severity, rules, "
        "status, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'open', $2)";
    char id[CU_ALERT_ID_BYTES];

    /* the decision's own digits: one alert a decision, whatever runs again */
    snprintf(id, sizeof(id), "alr_%s", strlen(decision_id) > 4 ? decision_id + 4 : "");
    const struct cu_val p[] = {CU_VT(id),          CU_VI(cu_work_context_of(w)->now_ms),
                               CU_VT(decision_id), CU_VT(customer),
                               CU_VT(type),        CU_VT(severity),
                               CU_VT(rules)};
    return cu_db_exec(db, sql, p, CU_NVALS(p));
}

static void from_row(struct cu_stmt *st, struct cu_alert *a)
{
    memset(a, 0, sizeof(*a));
    cu_stmt_text_copy(st, 0, a->id, sizeof(a->id));
    cu_stmt_text_copy(st, 1, a->decision_id, sizeof(a->decision_id));
    cu_stmt_text_copy(st, 2, a->customer, sizeof(a->customer));
    cu_stmt_text_copy(st, 3, a->type, sizeof(a->type));
    cu_stmt_text_copy(st, 4, a->severity, sizeof(a->severity));
    cu_stmt_text_copy(st, 5, a->rules, sizeof(a->rules));
    cu_stmt_text_copy(st, 6, a->status, sizeof(a->status));
    cu_stmt_text_copy(st, 7, a->assignee, sizeof(a->assignee));
    cu_stmt_text_copy(st, 8, a->resolution, sizeof(a->resolution));
    cu_stmt_text_copy(st, 9, a->resolved_by, sizeof(a->resolved_by));
    a->created_at = cu_stmt_int(st, 10);
    a->updated_at = cu_stmt_int(st, 11);
    a->resolved_at = cu_stmt_null(st, 12) ? 0 : cu_stmt_int(st, 12);
}

enum cu_err cu_alerts_list(struct cu_db *db, const char *status, const char *after, size_t limit,
                           struct cu_alert **out, size_t *n)
{
    static const char sql[] =
        "SELECT " COLUMNS " FROM alerts WHERE ($1 = '' OR status = $1) AND ($2 = '' OR "
        "created_at < (SELECT created_at FROM alerts WHERE id = $2) OR (created_at = (SELECT "
        "created_at FROM alerts WHERE id = $2) AND id < $2)) ORDER BY created_at DESC, id DESC "
        "LIMIT $3";
    const struct cu_val p[] = {CU_VT(status ? status : ""), CU_VT(after ? after : ""),
                               CU_VI(limit)};
    struct cu_stmt *st = NULL;
    struct cu_alert *v;
    bool row = false;
    enum cu_err rc;

    *out = NULL;
    *n = 0;
    if (limit == 0 || limit > CU_ALERTS_PAGE_MAX)
        return CU_E_INVALID;
    if ((v = cu_calloc(limit, sizeof(*v))) == NULL)
        return CU_E_NOMEM;
    rc = cu_db_query(db, sql, p, CU_NVALS(p), &st);
    while (rc == CU_OK && *n < limit && (rc = cu_stmt_next(st, &row)) == CU_OK && row)
        from_row(st, &v[(*n)++]);
    cu_stmt_done(st);
    if (rc != CU_OK) {
        cu_free(v);
        *n = 0;
        return rc;
    }
    *out = v;
    return CU_OK;
}

static enum cu_err get(struct cu_db *db, const char *id, bool lock, struct cu_alert *out)
{
    static const char sql[] = "SELECT " COLUMNS " FROM alerts WHERE id = $1";
    static const char sql_lock[] = "SELECT " COLUMNS " FROM alerts WHERE id = $1 FOR UPDATE";
    const struct cu_val p[] = {CU_VT(id)};
    struct cu_stmt *st = NULL;
    bool row = false;
    enum cu_err rc = cu_db_query(db, lock ? sql_lock : sql, p, 1, &st);

    if (rc == CU_OK)
        rc = cu_stmt_next(st, &row);
    if (rc == CU_OK && !row)
        rc = CU_E_NOT_FOUND;
    if (rc == CU_OK)
        from_row(st, out);
    cu_stmt_done(st);
    return rc;
}

enum cu_err cu_alert_get(struct cu_db *db, const char *id, struct cu_alert *out)
{
    return get(db, id, false, out);
}

enum cu_err cu_alert_comments(struct cu_db *db, const char *id, struct cu_alert_comment **out,
                              size_t *n)
{
    static const char sql[] =
        "SELECT at, author, body FROM alert_comments WHERE alert_id = $1 ORDER BY at LIMIT 1000";
    const struct cu_val p[] = {CU_VT(id)};
    struct cu_stmt *st = NULL;
    size_t cap = 0;
    bool row = false;
    enum cu_err rc = cu_db_query(db, sql, p, 1, &st);

    *out = NULL;
    *n = 0;
    while (rc == CU_OK && (rc = cu_stmt_next(st, &row)) == CU_OK && row) {
        size_t len = 0;
        const char *b;
        if (*n == cap) {
            size_t nc = cap ? cap * 2 : 8;
            struct cu_alert_comment *g = cu_reallocarray(*out, nc, sizeof(**out));
            if (g == NULL) {
                rc = CU_E_NOMEM;
                break;
            }
            *out = g;
            cap = nc;
        }
        struct cu_alert_comment *c = &(*out)[*n];
        c->at = cu_stmt_int(st, 0);
        cu_stmt_text_copy(st, 1, c->author, sizeof(c->author));
        b = cu_stmt_text(st, 2, &len);
        if ((c->body = cu_malloc(len + 1)) == NULL) {
            rc = CU_E_NOMEM;
            break;
        }
        memcpy(c->body, b, len);
        c->body[len] = '\0';
        (*n)++;
    }
    cu_stmt_done(st);
    if (rc != CU_OK) {
        cu_alert_comments_free(*out, *n);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

void cu_alert_comments_free(struct cu_alert_comment *c, size_t n)
{
    for (size_t i = 0; c != NULL && i < n; i++)
        cu_free(c[i].body);
    cu_free(c);
}

static void actor_of(const struct cu_work *w, char out[96])
{
    const struct cu_work_ctx *ctx = cu_work_context_of(w);
    if (ctx->actor_id[0])
        snprintf(out, 96, "%.15s:%.64s", ctx->actor_type, ctx->actor_id);
    else
        snprintf(out, 96, "%.15s", ctx->actor_type);
}

static enum cu_err audit(struct cu_work *w, const char *action, const struct cu_alert *a,
                         json_t *details)
{
    char target[CU_ALERT_ID_BYTES + 8];
    snprintf(target, sizeof(target), "alert:%s", a->id);
    if (details == NULL)
        return CU_E_NOMEM;
    return cu_work_audit(w, action, target, "success", details);
}

/* change(w, db, id, out): the alert, locked, and not resolved. */
static enum cu_err change(struct cu_db *db, const char *id, struct cu_alert *out)
{
    enum cu_err rc = get(db, id, true, out);
    if (rc == CU_OK && strcmp(out->status, "resolved") == 0)
        return CU_E_EXISTS;
    return rc;
}

enum cu_err cu_alert_assign(struct cu_work *w, struct cu_db *db, const char *id,
                            const char *assignee, struct cu_alert *out)
{
    static const char sql[] =
        "UPDATE alerts SET assignee = $2, status = 'assigned', updated_at = $3 WHERE id = $1";
    int64_t now = cu_work_context_of(w)->now_ms;
    enum cu_err rc = change(db, id, out);
    const struct cu_val p[] = {CU_VT(id), CU_VT(assignee), CU_VI(now)};

    if (rc == CU_OK)
        rc = cu_db_exec(db, sql, p, CU_NVALS(p));
    if (rc != CU_OK)
        return rc;
    snprintf(out->assignee, sizeof(out->assignee), "%s", assignee);
    snprintf(out->status, sizeof(out->status), "assigned");
    out->updated_at = now;
    return audit(w, "alert.assign", out, json_pack("{s:s}", "assignee", assignee));
}

enum cu_err cu_alert_comment(struct cu_work *w, struct cu_db *db, const char *id, const char *body,
                             struct cu_alert *out)
{
    static const char ins[] =
        "INSERT INTO alert_comments (alert_id, at, author, body) VALUES ($1, $2, $3, $4)";
    static const char up[] = "UPDATE alerts SET updated_at = $2 WHERE id = $1";
    int64_t now = cu_work_context_of(w)->now_ms;
    char author[96];
    enum cu_err rc;

    if (strlen(body) > CU_ALERT_COMMENT_MAX)
        return CU_E_TOO_LARGE;
    rc = get(db, id, true, out); /* a resolved alert takes comments still: its review */
    actor_of(w, author);
    const struct cu_val p[] = {CU_VT(id), CU_VI(now), CU_VT(author), CU_VT(body)};
    const struct cu_val q[] = {CU_VT(id), CU_VI(now)};
    if (rc == CU_OK)
        rc = cu_db_exec(db, ins, p, CU_NVALS(p));
    if (rc == CU_OK)
        rc = cu_db_exec(db, up, q, CU_NVALS(q));
    if (rc != CU_OK)
        return rc;
    out->updated_at = now;
    /* the comment's text stays with the alert: staff's notes may name the customer */
    return audit(w, "alert.comment", out, json_pack("{s:I}", "bytes", (json_int_t)strlen(body)));
}

enum cu_err cu_alert_resolve(struct cu_work *w, struct cu_db *db, const char *id,
                             bool true_positive, struct cu_alert *out)
{
    static const char sql[] = "UPDATE alerts SET status = 'resolved', resolution = $2, "
                              "resolved_at = $3, resolved_by = $4, updated_at = $3 WHERE id = $1";
    const char *res = true_positive ? "true_positive" : "false_positive";
    int64_t now = cu_work_context_of(w)->now_ms;
    char by[96];
    enum cu_err rc = change(db, id, out);

    actor_of(w, by);
    const struct cu_val p[] = {CU_VT(id), CU_VT(res), CU_VI(now), CU_VT(by)};
    if (rc == CU_OK)
        rc = cu_db_exec(db, sql, p, CU_NVALS(p));
    if (rc != CU_OK)
        return rc;
    snprintf(out->status, sizeof(out->status), "resolved");
    snprintf(out->resolution, sizeof(out->resolution), "%s", res);
    snprintf(out->resolved_by, sizeof(out->resolved_by), "%s", by);
    out->resolved_at = out->updated_at = now;
    return audit(w, "alert.resolve", out, json_pack("{s:s}", "resolution", res));
}

enum cu_err cu_alert_settle(struct cu_work *w, struct cu_db *db, const char *id, bool true_positive,
                            bool *changed)
{
    static const char sql[] =
        "UPDATE alerts SET status = 'resolved', resolution = $2, resolved_at = $3, resolved_by = "
        "$4, updated_at = $3 WHERE id = $1 AND status <> 'resolved'";
    char by[96];

    actor_of(w, by);
    const struct cu_val p[] = {CU_VT(id), CU_VT(true_positive ? "true_positive" : "false_positive"),
                               CU_VI(cu_work_context_of(w)->now_ms), CU_VT(by)};
    enum cu_err rc = cu_db_exec(db, sql, p, CU_NVALS(p));
    *changed = rc == CU_OK && cu_db_changes(db) > 0;
    return rc;
}
