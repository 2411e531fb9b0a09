/*
 * reports.c - customers' reports in their cases, and what the customer's own security page
 * keeps: their own freezes and the devices they forgot (cases.h).
 */
#include "cases/cases.h"

#include <stdio.h>
#include <string.h>

#include "base/json.h"
#include "base/mem.h"
#include "base/text.h"

enum cu_err cu_case_report_add(struct cu_work *w, struct cu_db *db, const char *case_id,
                               const char *report, const char *customer, const char *alert,
                               const char *concerns)
{
    static const char sql[] = "INSERT INTO case_reports (id, customer, case_id, alert_id, "
                              "concerns, created_at) VALUES ($1, $2, $3, $4, $5, $6)";
    const struct cu_val p[] = {CU_VT(report),   CU_VT(customer),
                               CU_VT(case_id),  CU_VT(alert),
                               CU_VT(concerns), CU_VI(cu_work_context_of(w)->now_ms)};
    char target[CU_CASE_ID_BYTES + 8];
    enum cu_err rc = cu_db_exec(db, sql, p, CU_NVALS(p));

    if (rc == CU_OK)
        rc = cu_case_timeline_add(w, db, case_id, "report",
                                  json_pack("{s:s, s:s, s:o?}", "report", report, "alert", alert,
                                            "concerns", json_loads(concerns, 0, NULL)));
    snprintf(target, sizeof(target), "case:%s", case_id);
    if (rc == CU_OK)
        rc = cu_work_audit(w, "case.report", target, "success",
                           json_pack("{s:s, s:s}", "report", report, "alert", alert));
    return rc;
}

enum cu_err cu_case_reports_of(struct cu_db *db, const char *customer, struct cu_case_report **out,
                               size_t *n)
{
    static const char sql[] =
        "SELECT r.id, r.case_id, c.stage, r.concerns, r.created_at, r.answered_at, r.answer FROM "
        "case_reports r JOIN cases c ON c.id = r.case_id WHERE r.customer = $1 ORDER BY "
        "r.created_at DESC, r.id DESC LIMIT $2";
    const struct cu_val p[] = {CU_VT(customer), CU_VI(CU_REPORTS_PER_CUSTOMER)};
    struct cu_case_report *v = cu_calloc(CU_REPORTS_PER_CUSTOMER, sizeof(*v));
    struct cu_stmt *st = NULL;
    bool row = false;
    enum cu_err rc = v ? cu_db_query(db, sql, p, CU_NVALS(p), &st) : CU_E_NOMEM;

    *n = 0;
    *out = NULL;
    while (rc == CU_OK && *n < CU_REPORTS_PER_CUSTOMER && (rc = cu_stmt_next(st, &row)) == CU_OK &&
           row) {
        struct cu_case_report *r = &v[(*n)++];
        cu_stmt_text_copy(st, 0, r->id, sizeof(r->id));
        cu_stmt_text_copy(st, 1, r->case_id, sizeof(r->case_id));
        cu_stmt_text_copy(st, 2, r->stage, sizeof(r->stage));
        cu_stmt_text_copy(st, 3, r->concerns, sizeof(r->concerns));
        r->created_at = cu_stmt_int(st, 4);
        r->answered_at = cu_stmt_null(st, 5) ? 0 : cu_stmt_int(st, 5);
        cu_stmt_text_copy(st, 6, r->answer, sizeof(r->answer));
    }
    cu_stmt_done(st);
    if (rc != CU_OK) {
        cu_free(v);
        *n = 0;
        return rc;
    }
    *out = v;
    return CU_OK;
}

enum cu_err cu_case_report_answer(struct cu_work *w, struct cu_db *db, const char *case_id,
                                  const char *report, const char *text, char customer[32],
                                  char why[CU_CASE_WHY_BYTES])
{
    static const char get[] = "SELECT customer FROM case_reports WHERE id = $1 AND case_id = $2";
    static const char set[] = "UPDATE case_reports SET answer = $3, answered_at = $4, "
                              "answered_by = $5 WHERE id = $1 AND case_id = $2";
    char actor[CU_CASE_ACTOR_BYTES], target[CU_CASE_ID_BYTES + 8];
    size_t len = strnlen(text, CU_REPORT_ANSWER_MAX + 1);
    struct cu_stmt *st = NULL;
    struct cu_case c;
    bool row = false;
    enum cu_err rc;

    customer[0] = '\0';
    if (len == 0 || len > CU_REPORT_ANSWER_MAX || !cu_utf8_valid(text, len)) {
        snprintf(why, CU_CASE_WHY_BYTES, "an answer is text of 1 to %d bytes",
                 CU_REPORT_ANSWER_MAX);
        return len > CU_REPORT_ANSWER_MAX ? CU_E_TOO_LARGE : CU_E_INVALID;
    }
    if ((rc = cu_case_get(db, case_id, true, &c)) != CU_OK)
        return rc;
    const struct cu_val p[] = {CU_VT(report), CU_VT(case_id)};
    rc = cu_db_query(db, get, p, CU_NVALS(p), &st);
    if (rc == CU_OK)
        rc = cu_stmt_next(st, &row);
    if (rc == CU_OK && row)
        cu_stmt_text_copy(st, 0, customer, 32);
    cu_stmt_done(st);
    if (rc == CU_OK && !row) {
        snprintf(why, CU_CASE_WHY_BYTES, "the case has no report %.24s", report);
        return CU_E_NOT_FOUND;
    }
    cu_case_actor(w, actor);
    const struct cu_val q[] = {CU_VT(report), CU_VT(case_id), CU_VT(text),
                               CU_VI(cu_work_context_of(w)->now_ms), CU_VT(actor)};
    if (rc == CU_OK)
        rc = cu_db_exec(db, set, q, CU_NVALS(q));
    if (rc == CU_OK)
        rc = cu_case_timeline_add(w, db, case_id, "answer",
                                  json_pack("{s:s, s:s}", "report", report, "text", text));
    snprintf(target, sizeof(target), "case:%s", case_id);
    if (rc == CU_OK)
        rc = cu_work_audit(w, "case.answer", target, "success",
                           json_pack("{s:s, s:I}", "report", report, "bytes", (json_int_t)len));
    return rc;
}

const char *cu_case_report_status(const char *stage)
{
    enum cu_case_stage s;
    if (!cu_case_stage_parse(stage, &s) || s == CU_STAGE_DETECTED)
        return "received";
    return cu_case_stage_open(s) ? "investigating" : "resolved";
}

/* ---- freezes and devices ---- */

enum cu_err cu_self_freeze_set(struct cu_db *db, const char *customer, int64_t now)
{
    static const char sql[] =
        "INSERT INTO self_freezes (customer, frozen_at, unfreeze_at) VALUES ($1, $2, NULL) "
        "ON CONFLICT (customer) DO UPDATE SET frozen_at = $2, unfreeze_at = NULL";
    const struct cu_val p[] = {CU_VT(customer), CU_VI(now)};
    return cu_db_exec(db, sql, p, CU_NVALS(p));
}

enum cu_err cu_self_freeze_get(struct cu_db *db, const char *customer, int64_t *frozen_at,
                               int64_t *unfreeze_at)
{
    static const char sql[] = "SELECT frozen_at, unfreeze_at FROM self_freezes WHERE customer = $1";
    const struct cu_val p[] = {CU_VT(customer)};
    struct cu_stmt *st = NULL;
    bool row = false;
    enum cu_err rc = cu_db_query(db, sql, p, 1, &st);

    *frozen_at = *unfreeze_at = 0;
    if (rc == CU_OK)
        rc = cu_stmt_next(st, &row);
    if (rc == CU_OK && !row)
        rc = CU_E_NOT_FOUND;
    if (rc == CU_OK) {
        *frozen_at = cu_stmt_int(st, 0);
        *unfreeze_at = cu_stmt_null(st, 1) ? 0 : cu_stmt_int(st, 1);
    }
    cu_stmt_done(st);
    return rc;
}

enum cu_err cu_self_unfreeze_at(struct cu_db *db, const char *customer, int64_t at)
{
    static const char sql[] = "UPDATE self_freezes SET unfreeze_at = $2 WHERE customer = $1";
    const struct cu_val p[] = {CU_VT(customer), CU_VI(at)};
    enum cu_err rc = cu_db_exec(db, sql, p, CU_NVALS(p));
    return rc == CU_OK && cu_db_changes(db) == 0 ? CU_E_NOT_FOUND : rc;
}

enum cu_err cu_self_unfreeze_due(struct cu_db *db, int64_t now, char (*out)[32], size_t max,
                                 size_t *n)
{
    static const char sql[] = "SELECT customer FROM self_freezes WHERE unfreeze_at IS NOT NULL "
                              "AND unfreeze_at <= $1 ORDER BY unfreeze_at LIMIT $2";
    const struct cu_val p[] = {CU_VI(now), CU_VI(max)};
    struct cu_stmt *st = NULL;
    bool row = false;
    enum cu_err rc = cu_db_query(db, sql, p, CU_NVALS(p), &st);

    *n = 0;
    while (rc == CU_OK && *n < max && (rc = cu_stmt_next(st, &row)) == CU_OK && row)
        cu_stmt_text_copy(st, 0, out[(*n)++], 32);
    cu_stmt_done(st);
    return rc;
}

enum cu_err cu_self_freeze_clear(struct cu_db *db, const char *customer)
{
    static const char sql[] = "DELETE FROM self_freezes WHERE customer = $1";
    const struct cu_val p[] = {CU_VT(customer)};
    return cu_db_exec(db, sql, p, 1);
}

enum cu_err cu_device_forget(struct cu_db *db, const char *customer, const char *device,
                             int64_t now)
{
    static const char sql[] =
        "INSERT INTO forgotten_devices (customer, device, at) VALUES ($1, $2, $3) "
        "ON CONFLICT (customer, device) DO UPDATE SET at = $3";
    const struct cu_val p[] = {CU_VT(customer), CU_VT(device), CU_VI(now)};
    return cu_db_exec(db, sql, p, CU_NVALS(p));
}

enum cu_err cu_cases_forget(struct cu_db *db, const char *customer)
{
    static const char *const sql[] = {
        "DELETE FROM self_freezes WHERE customer = $1",
        "DELETE FROM forgotten_devices WHERE customer = $1",
        "UPDATE case_reports SET answer = NULL WHERE customer = $1",
    };
    const struct cu_val p[] = {CU_VT(customer)};
    enum cu_err rc = CU_OK;
    for (size_t i = 0; rc == CU_OK && i < sizeof sql / sizeof sql[0]; i++)
        rc = cu_db_exec(db, sql[i], p, 1);
    return rc;
}

enum cu_err cu_device_forgotten(struct cu_db *db, const char *customer, json_t *out)
{
    static const char sql[] =
        "SELECT device, at FROM forgotten_devices WHERE customer = $1 ORDER BY device LIMIT 1000";
    const struct cu_val p[] = {CU_VT(customer)};
    struct cu_stmt *st = NULL;
    bool row = false;
    enum cu_err rc = cu_db_query(db, sql, p, 1, &st);

    while (rc == CU_OK && (rc = cu_stmt_next(st, &row)) == CU_OK && row) {
        char device[CU_CASE_VALUE_MAX + 1];
        cu_stmt_text_copy(st, 0, device, sizeof(device));
        if (json_object_set_new(out, device, json_integer(cu_stmt_int(st, 1))) != 0)
            rc = CU_E_NOMEM;
    }
    cu_stmt_done(st);
    return rc;
}

enum cu_err cu_self_unfreeze_claim(struct cu_db *db, const char *customer, int64_t now,
                                   bool *claimed)
{
    static const char sql[] = "DELETE FROM self_freezes WHERE customer = $1 AND unfreeze_at IS "
                              "NOT NULL AND unfreeze_at <= $2";
    const struct cu_val p[] = {CU_VT(customer), CU_VI(now)};
    enum cu_err rc = cu_db_exec(db, sql, p, CU_NVALS(p));
    *claimed = rc == CU_OK && cu_db_changes(db) > 0;
    return rc;
}
