/*
 * cases.c - incident cases (cases.h): the stage machine, cases from alerts, what staff do with
 * them, and their timeline.
 */
#include "cases/cases.h"

#include <stdio.h>
#include <string.h>

#include "base/json.h"
#include "base/mem.h"
#include "base/text.h"
#include "crypto/crypto.h"
#include "ledger/ledger.h"
#include "monitor/alerts.h"

#define COLUMNS                                                                                    \
    "c.id, c.created_at, c.updated_at, c.last_alert_at, c.title, c.severity, c.stage, "            \
    "c.assignee, c.customer, c.source, c.drill, c.closed_at, c.closed_by, "                        \
    "(SELECT COUNT(*) FROM case_alerts a WHERE a.case_id = c.id)"

/* The cases a run of a unit audited already (the first change of each is audited). */
#define AUDITED_MAX CU_WORK_RECORDS_MAX

struct cu_cases {
    struct cu_cases_opts o;
    const struct cu_work *run_w;
    unsigned run_retries;
    uint64_t run_txn;
    size_t naudited;
    char audited[AUDITED_MAX][CU_CASE_ID_BYTES];
};

static const char *const stage_names[CU_STAGE__COUNT] = {
    "detected", "assessing", "contained", "eradicated", "recovered", "closed", "false_positive"};

static const char *const severity_names[] = {"low", "medium", "high", "critical"};

static const char *const observable_kinds[] = {"customer", "ip", "device", "payee", "account"};

const char *cu_case_stage_name(enum cu_case_stage s)
{
    return (unsigned)s < CU_STAGE__COUNT ? stage_names[s] : "?";
}

bool cu_case_stage_parse(const char *name, enum cu_case_stage *out)
{
    for (int i = 0; i < CU_STAGE__COUNT; i++)
        if (strcmp(name, stage_names[i]) == 0) {
            *out = (enum cu_case_stage)i;
            return true;
        }
    return false;
}

bool cu_case_stage_open(enum cu_case_stage s)
{
    return s < CU_STAGE_CLOSED;
}

enum cu_err cu_case_move_check(enum cu_case_stage from, enum cu_case_stage to, int severity,
                               bool has_resolution, bool has_review, char why[CU_CASE_WHY_BYTES])
{
    if (!cu_case_stage_open(from)) {
        snprintf(why, CU_CASE_WHY_BYTES, "the case is %s: it moves no more",
                 cu_case_stage_name(from));
        return CU_E_EXISTS;
    }
    if (to == from) {
        snprintf(why, CU_CASE_WHY_BYTES, "the case is %s already", cu_case_stage_name(from));
        return CU_E_EXISTS;
    }
    if (to != CU_STAGE_FALSE_POSITIVE && to != from + 1) {
        snprintf(why, CU_CASE_WHY_BYTES,
                 "a case at %s moves to %s (or false_positive), not to %s: no stage is %s",
                 cu_case_stage_name(from), cu_case_stage_name(from + 1), cu_case_stage_name(to),
                 to < from ? "gone back to" : "skipped");
        return CU_E_EXISTS;
    }
    if (!cu_case_stage_open(to) && !has_resolution) {
        snprintf(why, CU_CASE_WHY_BYTES, "a case moving to %s needs a resolution",
                 cu_case_stage_name(to));
        return CU_E_INVALID;
    }
    if (to == CU_STAGE_CLOSED && severity >= 2 && !has_review) {
        snprintf(why, CU_CASE_WHY_BYTES,
                 "closing a case of severity %s needs a review: cause, actions and changes",
                 cu_case_severity_name(severity));
        return CU_E_INVALID;
    }
    return CU_OK;
}

int cu_case_severity_parse(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(name, severity_names[i]) == 0)
            return i;
    return -1;
}

const char *cu_case_severity_name(int s)
{
    return s >= 0 && s < 4 ? severity_names[s] : "?";
}

bool cu_case_observable_kind_known(const char *kind)
{
    for (size_t i = 0; i < sizeof observable_kinds / sizeof observable_kinds[0]; i++)
        if (strcmp(kind, observable_kinds[i]) == 0)
            return true;
    return false;
}

bool cu_case_observable_valid(const char *kind, const char *value)
{
    size_t n = strnlen(value, CU_CASE_VALUE_MAX + 1);

    if (!cu_case_observable_kind_known(kind) || n == 0 || n > CU_CASE_VALUE_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)value[i] <= 0x20 || (unsigned char)value[i] >= 0x7f)
            return false;
    if (strcmp(kind, "account") == 0)
        return cu_ledger_id_valid(value, "acc_");
    return true;
}

bool cu_case_id_valid(const char *id)
{
    return cu_ledger_id_valid(id, "cas_");
}

enum cu_err cu_cases_new(const struct cu_cases_opts *o, struct cu_cases **out)
{
    struct cu_cases *cs = cu_calloc(1, sizeof(*cs));
    if (cs == NULL)
        return CU_E_NOMEM;
    cs->o = *o;
    *out = cs;
    return CU_OK;
}

void cu_cases_free(struct cu_cases *cs)
{
    cu_free(cs);
}

void cu_case_actor(const struct cu_work *w, char out[CU_CASE_ACTOR_BYTES])
{
    const struct cu_work_ctx *ctx = cu_work_context_of(w);
    if (ctx->actor_id[0])
        snprintf(out, CU_CASE_ACTOR_BYTES, "%.15s:%.64s", ctx->actor_type, ctx->actor_id);
    else
        snprintf(out, CU_CASE_ACTOR_BYTES, "%.15s",
                 ctx->actor_type[0] ? ctx->actor_type : "system");
}

/* ---- rows ---- */

static void from_row(struct cu_stmt *st, struct cu_case *c)
{
    memset(c, 0, sizeof(*c));
    cu_stmt_text_copy(st, 0, c->id, sizeof(c->id));
    c->created_at = cu_stmt_int(st, 1);
    c->updated_at = cu_stmt_int(st, 2);
    c->last_alert_at = cu_stmt_int(st, 3);
    cu_stmt_text_copy(st, 4, c->title, sizeof(c->title));
    cu_stmt_text_copy(st, 5, c->severity, sizeof(c->severity));
    cu_stmt_text_copy(st, 6, c->stage, sizeof(c->stage));
    cu_stmt_text_copy(st, 7, c->assignee, sizeof(c->assignee));
    cu_stmt_text_copy(st, 8, c->customer, sizeof(c->customer));
    cu_stmt_text_copy(st, 9, c->source, sizeof(c->source));
    c->drill = cu_stmt_int(st, 10) != 0;
    c->closed_at = cu_stmt_null(st, 11) ? 0 : cu_stmt_int(st, 11);
    cu_stmt_text_copy(st, 12, c->closed_by, sizeof(c->closed_by));
    c->alerts = cu_stmt_int(st, 13);
}

enum cu_err cu_case_get(struct cu_db *db, const char *id, bool lock, struct cu_case *out)
{
    static const char sql[] = "SELECT " COLUMNS " FROM cases c WHERE c.id = $1";
    static const char lock_sql[] = "SELECT id FROM cases WHERE id = $1 FOR UPDATE";
    const struct cu_val p[] = {CU_VT(id)};
    struct cu_stmt *st = NULL;
    bool row = false;
    enum cu_err rc = CU_OK;

    if (lock) { /* the row lock first (a statement of one table: FOR UPDATE takes no count) */
        rc = cu_db_query(db, lock_sql, p, 1, &st);
        if (rc == CU_OK)
            rc = cu_stmt_next(st, &row);
        cu_stmt_done(st);
        if (rc == CU_OK && !row)
            rc = CU_E_NOT_FOUND;
        if (rc != CU_OK)
            return rc;
        st = NULL;
    }
    rc = cu_db_query(db, sql, p, 1, &st);
    if (rc == CU_OK)
        rc = cu_stmt_next(st, &row);
    if (rc == CU_OK && !row)
        rc = CU_E_NOT_FOUND;
    if (rc == CU_OK)
        from_row(st, out);
    cu_stmt_done(st);
    return rc;
}

enum cu_err cu_cases_list(struct cu_db *db, const struct cu_case_filter *f, const char *after,
                          size_t limit, struct cu_case **out, size_t *n)
{
    static const char sql[] =
        "SELECT " COLUMNS " FROM cases c WHERE "
        "($1 = '' OR ($1 = 'open' AND c.stage NOT IN ('closed', 'false_positive')) OR c.stage = "
        "$1) AND ($2 = '' OR c.severity = $2) AND ($3 = '' OR c.assignee = $3 OR ($3 = '-' AND "
        "c.assignee = '')) AND "
        "($4 = '' OR c.customer = $4) AND ($5 = 1 OR c.drill = 0) AND "
        "($6 = '' OR EXISTS (SELECT 1 FROM case_observables o WHERE o.case_id = c.id AND "
        "o.kind = $6 AND o.value = $7)) AND "
        "($8 = '' OR c.updated_at < $9 OR (c.updated_at = $9 AND c.id < $8)) "
        "ORDER BY c.updated_at DESC, c.id DESC LIMIT $10";
    struct cu_case cur, *v = NULL;
    struct cu_stmt *st = NULL;
    size_t cap = 0;
    bool row = false;
    enum cu_err rc = CU_OK;

    *out = NULL;
    *n = 0;
    if (after != NULL && after[0] && (rc = cu_case_get(db, after, false, &cur)) != CU_OK)
        return rc;
    const char *assignee = f->assignee && strcmp(f->assignee, "none") == 0 ? "-" : f->assignee;
    const struct cu_val p[] = {CU_VT(f->stage ? f->stage : ""),
                               CU_VT(f->severity ? f->severity : ""),
                               CU_VT(assignee ? assignee : ""),
                               CU_VT(f->customer ? f->customer : ""),
                               CU_VI(f->drills ? 1 : 0),
                               CU_VT(f->obs_kind ? f->obs_kind : ""),
                               CU_VT(f->obs_value ? f->obs_value : ""),
                               CU_VT(after ? after : ""),
                               CU_VI(after && after[0] ? cur.updated_at : 0),
                               CU_VI(limit)};
    rc = cu_db_query(db, sql, p, CU_NVALS(p), &st);
    while (rc == CU_OK && (rc = cu_stmt_next(st, &row)) == CU_OK && row) {
        if (*n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            struct cu_case *nv = cu_reallocarray(v, nc, sizeof(*v));
            if (nv == NULL) {
                rc = CU_E_NOMEM;
                break;
            }
            v = nv;
            cap = nc;
        }
        from_row(st, &v[(*n)++]);
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

/* ---- the timeline and audit ---- */

enum cu_err cu_case_timeline_add(struct cu_work *w, struct cu_db *db, const char *id,
                                 const char *kind, json_t *body)
{
    static const char bump[] =
        "UPDATE cases SET seq = seq + 1, updated_at = $2 WHERE id = $1 RETURNING seq";
    static const char ins[] = "INSERT INTO case_timeline (case_id, seq, at, actor, kind, body) "
                              "VALUES ($1, $2, $3, $4, $5, $6)";
    int64_t now = cu_work_context_of(w)->now_ms, seq = 0;
    char actor[CU_CASE_ACTOR_BYTES];
    struct cu_stmt *st = NULL;
    bool row = false;
    char *text;
    enum cu_err rc;

    if (body == NULL)
        return CU_E_NOMEM;
    text = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(body);
    if (text == NULL)
        return CU_E_NOMEM;
    const struct cu_val pb[] = {CU_VT(id), CU_VI(now)};
    rc = cu_db_query(db, bump, pb, CU_NVALS(pb), &st);
    if (rc == CU_OK)
        rc = cu_stmt_next(st, &row);
    if (rc == CU_OK && !row)
        rc = CU_E_NOT_FOUND;
    if (rc == CU_OK)
        seq = cu_stmt_int(st, 0);
    cu_stmt_done(st);
    cu_case_actor(w, actor);
    if (rc == CU_OK) {
        const struct cu_val p[] = {CU_VT(id),    CU_VI(seq),  CU_VI(now),
                                   CU_VT(actor), CU_VT(kind), CU_VT(text)};
        rc = cu_db_exec(db, ins, p, CU_NVALS(p));
    }
    free(text);
    return rc;
}

enum cu_err cu_case_touch(struct cu_work *w, struct cu_db *db, const char *id)
{
    static const char sql[] = "UPDATE cases SET updated_at = $2 WHERE id = $1";
    const struct cu_val p[] = {CU_VT(id), CU_VI(cu_work_context_of(w)->now_ms)};
    enum cu_err rc = cu_db_exec(db, sql, p, CU_NVALS(p));
    return rc == CU_OK && cu_db_changes(db) == 0 ? CU_E_NOT_FOUND : rc;
}

static enum cu_err audit(struct cu_work *w, const char *action, const char *id, json_t *details)
{
    char target[CU_CASE_ID_BYTES + 8];
    if (details == NULL)
        return CU_E_NOMEM;
    snprintf(target, sizeof(target), "case:%s", id);
    return cu_work_audit(w, action, target, "success", details);
}

/* ---- opening, and alerts ---- */

static enum cu_err insert_case(struct cu_work *w, struct cu_db *db, const char *title,
                               const char *severity, const char *customer, const char *source,
                               bool drill, char id[CU_CASE_ID_BYTES])
{
    static const char sql[] =
        "INSERT INTO cases (id, created_at, updated_at, last_alert_at, title, severity, stage, "
        "assignee, customer, source, drill, seq) VALUES ($1, $2, $2, $2, $3, $4, 'detected', '', "
        "$5, $6, $7, 0)";
    uint8_t raw[8];
    enum cu_err rc = CU_E_EXISTS;

    for (int tries = 0; rc == CU_E_EXISTS && tries < 4; tries++) {
        cu_crypto_random(raw, sizeof(raw));
        char hex[17];
        cu_hex_encode(raw, sizeof(raw), hex);
        snprintf(id, CU_CASE_ID_BYTES, "cas_%s", hex);
        const struct cu_val p[] = {CU_VT(id),           CU_VI(cu_work_context_of(w)->now_ms),
                                   CU_VT(title),        CU_VT(severity),
                                   CU_VT(customer),     CU_VT(source),
                                   CU_VI(drill ? 1 : 0)};
        rc = cu_db_exec(db, sql, p, CU_NVALS(p));
    }
    return rc;
}

static enum cu_err add_observable(struct cu_db *db, int64_t now, const char *id, const char *kind,
                                  const char *value, bool *added)
{
    static const char sql[] =
        "INSERT INTO case_observables (case_id, kind, value, added_at) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (case_id, kind, value) DO NOTHING";
    const struct cu_val p[] = {CU_VT(id), CU_VT(kind), CU_VT(value), CU_VI(now)};
    enum cu_err rc = cu_db_exec(db, sql, p, CU_NVALS(p));
    if (added)
        *added = rc == CU_OK && cu_db_changes(db) > 0;
    return rc;
}

enum cu_err cu_case_count(struct cu_db *db, const char *sql, const char *id, int64_t *n)
{
    const struct cu_val p[] = {CU_VT(id)};
    struct cu_stmt *st = NULL;
    bool row = false;
    enum cu_err rc = cu_db_query(db, sql, p, 1, &st);
    if (rc == CU_OK)
        rc = cu_stmt_next(st, &row);
    *n = rc == CU_OK && row ? cu_stmt_int(st, 0) : 0;
    cu_stmt_done(st);
    return rc;
}

#define COUNT_OBSERVABLES "SELECT COUNT(*) FROM case_observables WHERE case_id = $1"

static bool valid_text(const char *s, size_t max)
{
    size_t n = strnlen(s, max + 1);
    return n > 0 && n <= max && cu_utf8_valid(s, n);
}

enum cu_err cu_case_open(struct cu_work *w, struct cu_db *db, const char *title,
                         const char *severity, const char *customer, const char *source, bool drill,
                         struct cu_case *out)
{
    char id[CU_CASE_ID_BYTES];
    int64_t now = cu_work_context_of(w)->now_ms;
    enum cu_err rc;

    if (!valid_text(title, CU_CASE_TITLE_MAX) || cu_case_severity_parse(severity) < 0)
        return CU_E_INVALID;
    if (customer[0] && !cu_case_observable_valid("customer", customer))
        return CU_E_INVALID;
    rc = insert_case(w, db, title, severity, customer, source, drill, id);
    if (rc == CU_OK && customer[0])
        rc = add_observable(db, now, id, "customer", customer, NULL);
    if (rc == CU_OK)
        rc = cu_case_timeline_add(
            w, db, id, "opened",
            json_pack("{s:s, s:s, s:s}", "title", title, "severity", severity, "source", source));
    if (rc == CU_OK)
        rc = audit(
            w, "case.open", id,
            json_pack("{s:s, s:s, s:b}", "severity", severity, "source", source, "drill", drill));
    if (rc == CU_OK && out)
        rc = cu_case_get(db, id, false, out);
    return rc;
}

/* audit_once(cs, w, id): whether this run of w should audit its change of case id (its first
 * one, while w has room for a record beside the unit's own). */
static bool audit_once(struct cu_cases *cs, struct cu_work *w, struct cu_db *db, const char *id)
{
    bool same =
        cs->run_w == w && cs->run_retries == cu_work_retries(w) && cs->run_txn == cu_db_txn_id(db);
    if (!same) {
        cs->run_w = w;
        cs->run_retries = cu_work_retries(w);
        cs->run_txn = cu_db_txn_id(db);
        cs->naudited = 0;
    }
    for (size_t i = 0; i < cs->naudited; i++)
        if (strcmp(cs->audited[i], id) == 0)
            return false;
    if (cs->naudited == AUDITED_MAX || cu_work_audit_room(w) < 2)
        return false;
    snprintf(cs->audited[cs->naudited++], CU_CASE_ID_BYTES, "%s", id);
    return true;
}

/* grouped(cs, db, a, now, out): the open case this alert joins, "" when none. */
static enum cu_err grouped(const struct cu_cases *cs, struct cu_db *db,
                           const struct cu_case_alert *a, int64_t now, char out[CU_CASE_ID_BYTES])
{
    static const char sql[] =
        "SELECT c.id FROM cases c JOIN case_observables o ON o.case_id = c.id "
        "WHERE c.stage NOT IN ('closed', 'false_positive') AND c.last_alert_at >= $1 AND "
        "c.drill = $2 AND ((o.kind = 'customer' AND o.value = $3) OR (o.kind = 'ip' AND "
        "o.value = $4) OR (o.kind = 'device' AND o.value = $5) OR (o.kind = 'payee' AND "
        "o.value = $6)) ORDER BY c.last_alert_at DESC, c.id LIMIT 1";
    unsigned by = cs->o.group_by;
    struct cu_stmt *st = NULL;
    bool row = false;
    enum cu_err rc;

    out[0] = '\0';
    if (cs->o.group_ms <= 0 || by == 0)
        return CU_OK;
    /* "" matches no observable: a kind not grouped by, or one the alert lacks */
    const char *cus =
        (by & CU_CASES_BY_CUSTOMER) && cu_case_observable_valid("customer", a->customer)
            ? a->customer
            : "";
    const char *ip = (by & CU_CASES_BY_IP) && cu_case_observable_valid("ip", a->ip) ? a->ip : "";
    const char *dev =
        (by & CU_CASES_BY_DEVICE) && cu_case_observable_valid("device", a->device) ? a->device : "";
    const char *pay =
        (by & CU_CASES_BY_PAYEE) && cu_case_observable_valid("payee", a->payee) ? a->payee : "";
    const struct cu_val p[] = {CU_VI(now - cs->o.group_ms),
                               CU_VI(a->drill ? 1 : 0),
                               CU_VT(cus),
                               CU_VT(ip),
                               CU_VT(dev),
                               CU_VT(pay)};
    rc = cu_db_query(db, sql, p, CU_NVALS(p), &st);
    if (rc == CU_OK)
        rc = cu_stmt_next(st, &row);
    if (rc == CU_OK && row)
        cu_stmt_text_copy(st, 0, out, CU_CASE_ID_BYTES);
    cu_stmt_done(st);
    return rc;
}

enum cu_err cu_cases_on_alert(struct cu_cases *cs, struct cu_work *w, struct cu_db *db,
                              const struct cu_case_alert *a, char case_id[CU_CASE_ID_BYTES],
                              int *before)
{
    bool opened_case = false, *opened = &opened_case;
    const char *source = a->source ? a->source : a->drill ? "drill" : "alert";
    static const char link[] = "INSERT INTO case_alerts (alert_id, case_id, decision_id, "
                               "severity, at) VALUES ($1, $2, $3, $4, $5)";
    static const char seen[] = "UPDATE cases SET last_alert_at = $2 WHERE id = $1";
    static const char raise[] = "UPDATE cases SET severity = $2 WHERE id = $1";
    int64_t now = cu_work_context_of(w)->now_ms;
    int sev = cu_case_severity_parse(a->severity);
    struct cu_case c;
    char title[CU_CASE_TITLE_MAX + 1];
    enum cu_err rc;

    *opened = false;
    if (sev < 0)
        sev = 1;
    rc = grouped(cs, db, a, now, case_id);
    if (rc == CU_OK && case_id[0] == '\0') {
        const char *customer = cu_case_observable_valid("customer", a->customer) ? a->customer : "";
        if (a->source && strcmp(a->source, "report") == 0)
            snprintf(title, sizeof(title), "A customer's report of suspicious activity");
        else
            snprintf(title, sizeof(title), "%.24s: %.170s", a->type,
                     a->rules[0] ? a->rules : "alert");
        rc = insert_case(w, db, title, cu_case_severity_name(sev), customer, source, a->drill,
                         case_id);
        if (rc == CU_OK)
            rc = cu_case_timeline_add(w, db, case_id, "opened",
                                      json_pack("{s:s, s:s, s:s}", "title", title, "severity",
                                                cu_case_severity_name(sev), "source", source));
        *opened = rc == CU_OK;
    }
    *before = -1;
    if (rc == CU_OK && !*opened && (rc = cu_case_get(db, case_id, true, &c)) == CU_OK) {
        enum cu_case_stage now_at;
        if (cu_case_stage_parse(c.stage, &now_at) && !cu_case_stage_open(now_at))
            return CU_E_BUSY; /* closed while this unit waited for it: run again, opening one */
        *before = cu_case_severity_parse(c.severity);
    }
    if (rc == CU_OK && !*opened && *before < sev) {
        const struct cu_val p[] = {CU_VT(case_id), CU_VT(cu_case_severity_name(sev))};
        rc = cu_db_exec(db, raise, p, CU_NVALS(p));
        if (rc == CU_OK)
            rc = cu_case_timeline_add(w, db, case_id, "severity",
                                      json_pack("{s:s, s:s, s:s}", "from", c.severity, "to",
                                                cu_case_severity_name(sev), "alert", a->alert_id));
    }
    if (rc == CU_OK) {
        const struct cu_val p[] = {CU_VT(a->alert_id), CU_VT(case_id), CU_VT(a->decision_id),
                                   CU_VT(cu_case_severity_name(sev)), CU_VI(now)};
        rc = cu_db_exec(db, link, p, CU_NVALS(p));
    }
    if (rc == CU_OK) {
        const struct cu_val p[] = {CU_VT(case_id), CU_VI(now)};
        rc = cu_db_exec(db, seen, p, CU_NVALS(p));
    }
    /* what the alert is about becomes the case's */
    const char *const kinds[] = {"customer", "ip", "device", "payee"};
    const char *const values[] = {a->customer, a->ip, a->device, a->payee};
    int64_t have = 0;
    if (rc == CU_OK)
        rc = cu_case_count(db, COUNT_OBSERVABLES, case_id, &have);
    for (size_t i = 0; rc == CU_OK && i < 4 && have < CU_CASE_OBSERVABLES_MAX; i++) {
        bool added = false;
        if (values[i] && cu_case_observable_valid(kinds[i], values[i]))
            rc = add_observable(db, now, case_id, kinds[i], values[i], &added);
        have += added;
    }
    if (rc == CU_OK)
        rc = cu_case_timeline_add(
            w, db, case_id, "alert",
            json_pack("{s:s, s:s, s:s, s:s, s:s}", "alert", a->alert_id, "decision", a->decision_id,
                      "severity", cu_case_severity_name(sev), "rules", a->rules, "type", a->type));
    if (rc == CU_OK && audit_once(cs, w, db, case_id))
        rc = audit(w, *opened ? "case.open" : "case.alert", case_id,
                   json_pack("{s:s, s:s, s:s, s:b}", "alert", a->alert_id, "severity",
                             cu_case_severity_name(sev), "source", source, "drill", a->drill));
    return rc;
}

/* ---- what staff do ---- */

/* changing(db, id, out, why): the case, locked, and open. */
static enum cu_err changing(struct cu_db *db, const char *id, struct cu_case *out,
                            char why[CU_CASE_WHY_BYTES])
{
    enum cu_case_stage s;
    enum cu_err rc = cu_case_get(db, id, true, out);

    if (rc == CU_OK && cu_case_stage_parse(out->stage, &s) && !cu_case_stage_open(s)) {
        snprintf(why, CU_CASE_WHY_BYTES, "the case is %s: it changes no more", out->stage);
        return CU_E_EXISTS;
    }
    return rc;
}

static enum cu_err done(struct cu_db *db, const char *id, struct cu_case *out, enum cu_err rc)
{
    if (rc == CU_OK && out)
        rc = cu_case_get(db, id, false, out);
    return rc;
}

enum cu_err cu_case_assign(struct cu_work *w, struct cu_db *db, const char *id,
                           const char *assignee, struct cu_case *out, char why[CU_CASE_WHY_BYTES])
{
    static const char sql[] = "UPDATE cases SET assignee = $2 WHERE id = $1";
    struct cu_case c;
    enum cu_err rc;

    if (!cu_ledger_id_valid(assignee, "stf_")) {
        snprintf(why, CU_CASE_WHY_BYTES, "the assignee must be a staff member's id (stf_…)");
        return CU_E_INVALID;
    }
    rc = changing(db, id, &c, why);
    const struct cu_val p[] = {CU_VT(id), CU_VT(assignee)};
    if (rc == CU_OK)
        rc = cu_db_exec(db, sql, p, CU_NVALS(p));
    if (rc == CU_OK)
        rc = cu_case_timeline_add(w, db, id, "assigned",
                                  json_pack("{s:s, s:s?}", "assignee", assignee, "was",
                                            c.assignee[0] ? c.assignee : NULL));
    if (rc == CU_OK)
        rc = audit(w, "case.assign", id, json_pack("{s:s}", "assignee", assignee));
    return done(db, id, out, rc);
}

enum cu_err cu_case_set_severity(struct cu_work *w, struct cu_db *db, const char *id,
                                 const char *severity, struct cu_case *out,
                                 char why[CU_CASE_WHY_BYTES])
{
    static const char sql[] = "UPDATE cases SET severity = $2 WHERE id = $1";
    struct cu_case c;
    enum cu_err rc;

    if (cu_case_severity_parse(severity) < 0) {
        snprintf(why, CU_CASE_WHY_BYTES, "the severity must be low, medium, high or critical");
        return CU_E_INVALID;
    }
    rc = changing(db, id, &c, why);
    const struct cu_val p[] = {CU_VT(id), CU_VT(severity)};
    if (rc == CU_OK)
        rc = cu_db_exec(db, sql, p, CU_NVALS(p));
    if (rc == CU_OK)
        rc = cu_case_timeline_add(w, db, id, "severity",
                                  json_pack("{s:s, s:s}", "from", c.severity, "to", severity));
    if (rc == CU_OK)
        rc = audit(w, "case.severity", id,
                   json_pack("{s:s, s:s}", "from", c.severity, "to", severity));
    return done(db, id, out, rc);
}

/* review_ok(review, why): an object of exactly cause, actions and changes, each text. */
static bool review_ok(const json_t *review, char why[CU_CASE_WHY_BYTES])
{
    static const char *const keys[] = {"cause", "actions", "changes"};
    const char *bad = NULL;

    if (!json_is_object(review) || cu_json_only_keys(review, keys, 3, &bad) != CU_OK) {
        snprintf(why, CU_CASE_WHY_BYTES,
                 "the review must be an object of cause, actions and "
                 "changes%s%.64s",
                 bad ? ": unknown field " : "", bad ? bad : "");
        return false;
    }
    for (size_t i = 0; i < 3; i++) {
        const char *s = json_string_value(json_object_get(review, keys[i]));
        if (s == NULL || !valid_text(s, CU_CASE_TEXT_MAX)) {
            snprintf(why, CU_CASE_WHY_BYTES, "the review's %s must be text of 1 to %d bytes",
                     keys[i], CU_CASE_TEXT_MAX);
            return false;
        }
    }
    return true;
}

/* resolve_alerts(w, db, id, true_positive, n): the case's unresolved alerts resolved with it. */
static enum cu_err resolve_alerts(struct cu_work *w, struct cu_db *db, const char *id,
                                  bool true_positive, int64_t *n)
{
    static const char sql[] = "SELECT alert_id FROM case_alerts WHERE case_id = $1 ORDER BY at";
    const struct cu_val p[] = {CU_VT(id)};
    struct cu_stmt *st = NULL;
    char(*ids)[CU_ALERT_ID_BYTES] = NULL;
    size_t k = 0, cap = 0;
    bool row = false;
    enum cu_err rc = cu_db_query(db, sql, p, 1, &st);

    *n = 0;
    while (rc == CU_OK && (rc = cu_stmt_next(st, &row)) == CU_OK && row) {
        if (k == cap) {
            size_t nc = cap ? cap * 2 : 16;
            void *nv = cu_reallocarray(ids, nc, sizeof(*ids));
            if (nv == NULL) {
                rc = CU_E_NOMEM;
                break;
            }
            ids = nv;
            cap = nc;
        }
        cu_stmt_text_copy(st, 0, ids[k++], CU_ALERT_ID_BYTES);
    }
    cu_stmt_done(st);
    for (size_t i = 0; rc == CU_OK && i < k; i++) {
        bool changed = false;
        rc = cu_alert_settle(w, db, ids[i], true_positive, &changed);
        *n += changed;
    }
    cu_free(ids);
    return rc;
}

enum cu_err cu_case_move(struct cu_work *w, struct cu_db *db, const char *id, const char *stage,
                         const char *resolution, const json_t *review, struct cu_case *out,
                         char why[CU_CASE_WHY_BYTES])
{
    static const char sql[] = "UPDATE cases SET stage = $2 WHERE id = $1";
    static const char fin[] = "UPDATE cases SET stage = $2, resolution = $3, review = $4, "
                              "closed_at = $5, closed_by = $6 WHERE id = $1";
    enum cu_case_stage from, to;
    char actor[CU_CASE_ACTOR_BYTES];
    struct cu_case c;
    int64_t settled = 0;
    char *rtext = NULL;
    enum cu_err rc;

    if (!cu_case_stage_parse(stage, &to)) {
        snprintf(why, CU_CASE_WHY_BYTES,
                 "the stage must be one of detected, assessing, contained, eradicated, "
                 "recovered, closed, false_positive");
        return CU_E_INVALID;
    }
    if (resolution && !valid_text(resolution, CU_CASE_TEXT_MAX)) {
        snprintf(why, CU_CASE_WHY_BYTES, "the resolution must be text of 1 to %d bytes",
                 CU_CASE_TEXT_MAX);
        return CU_E_INVALID;
    }
    if (review && !review_ok(review, why))
        return CU_E_INVALID;
    if ((rc = cu_case_get(db, id, true, &c)) != CU_OK)
        return rc;
    if (!cu_case_stage_parse(c.stage, &from))
        return CU_E_CORRUPT;
    rc = cu_case_move_check(from, to, cu_case_severity_parse(c.severity), resolution != NULL,
                            review != NULL, why);
    if (rc != CU_OK)
        return rc;
    if (cu_case_stage_open(to)) {
        if (resolution || review) {
            snprintf(why, CU_CASE_WHY_BYTES, "a resolution and a review are for closing a case");
            return CU_E_INVALID;
        }
        const struct cu_val p[] = {CU_VT(id), CU_VT(stage)};
        rc = cu_db_exec(db, sql, p, CU_NVALS(p));
    } else {
        if (review && (rtext = json_dumps(review, JSON_COMPACT | JSON_SORT_KEYS)) == NULL)
            return CU_E_NOMEM;
        cu_case_actor(w, actor);
        const struct cu_val p[] = {CU_VT(id),
                                   CU_VT(stage),
                                   resolution ? CU_VT(resolution) : CU_VNULL,
                                   rtext ? CU_VT(rtext) : CU_VNULL,
                                   CU_VI(cu_work_context_of(w)->now_ms),
                                   CU_VT(actor)};
        rc = cu_db_exec(db, fin, p, CU_NVALS(p));
        free(rtext);
        if (rc == CU_OK)
            rc = resolve_alerts(w, db, id, to == CU_STAGE_CLOSED, &settled);
        /* what still waited to be confirmed is not done on a final case */
        static const char skip[] =
            "UPDATE case_steps SET status = 'skipped', done_at = $2, done_by = $3 WHERE case_id "
            "= $1 AND status = 'waiting'";
        const struct cu_val q[] = {CU_VT(id), CU_VI(cu_work_context_of(w)->now_ms), CU_VT(actor)};
        if (rc == CU_OK)
            rc = cu_db_exec(db, skip, q, CU_NVALS(q));
    }
    if (rc == CU_OK)
        rc = cu_case_timeline_add(w, db, id, "stage",
                                  json_pack("{s:s, s:s, s:s?, s:O?}", "from", c.stage, "to", stage,
                                            "resolution", resolution, "review", review));
    if (rc == CU_OK)
        rc = audit(w, "case.stage", id,
                   json_pack("{s:s, s:s, s:b, s:I}", "from", c.stage, "to", stage, "review",
                             review != NULL, "alerts_resolved", (json_int_t)settled));
    return done(db, id, out, rc);
}

enum cu_err cu_case_note(struct cu_work *w, struct cu_db *db, const char *id, const char *body,
                         char why[CU_CASE_WHY_BYTES])
{
    struct cu_case c;
    enum cu_err rc;

    if (!valid_text(body, CU_CASE_TEXT_MAX)) {
        snprintf(why, CU_CASE_WHY_BYTES, "a note is text of 1 to %d bytes", CU_CASE_TEXT_MAX);
        return strlen(body) > CU_CASE_TEXT_MAX ? CU_E_TOO_LARGE : CU_E_INVALID;
    }
    /* a final case still takes notes (what was learned later) */
    rc = cu_case_get(db, id, true, &c);
    if (rc == CU_OK)
        rc = cu_case_timeline_add(w, db, id, "note", json_pack("{s:s}", "text", body));
    if (rc == CU_OK)
        rc = audit(w, "case.note", id, json_pack("{s:I}", "bytes", (json_int_t)strlen(body)));
    return rc;
}

enum cu_err cu_case_task_add(struct cu_work *w, struct cu_db *db, const char *id, const char *title,
                             const char *assignee, int64_t *n, char why[CU_CASE_WHY_BYTES])
{
    static const char ins[] =
        "INSERT INTO case_tasks (case_id, n, title, status, assignee, created_at, created_by) "
        "VALUES ($1, $2, $3, 'open', $4, $5, $6)";
    char actor[CU_CASE_ACTOR_BYTES];
    struct cu_case c;
    enum cu_err rc;

    if (!valid_text(title, CU_CASE_TITLE_MAX)) {
        snprintf(why, CU_CASE_WHY_BYTES, "a task's title is text of 1 to %d bytes",
                 CU_CASE_TITLE_MAX);
        return CU_E_INVALID;
    }
    if (assignee[0] && !cu_ledger_id_valid(assignee, "stf_")) {
        snprintf(why, CU_CASE_WHY_BYTES, "the assignee must be a staff member's id (stf_…)");
        return CU_E_INVALID;
    }
    rc = changing(db, id, &c, why);
    *n = 0;
    if (rc == CU_OK)
        rc = cu_case_count(db, "SELECT COUNT(*) FROM case_tasks WHERE case_id = $1", id, n);
    ++*n;
    if (rc == CU_OK && *n > CU_CASE_TASKS_MAX) {
        snprintf(why, CU_CASE_WHY_BYTES, "a case has at most %d tasks", CU_CASE_TASKS_MAX);
        return CU_E_TOO_LARGE;
    }
    cu_case_actor(w, actor);
    if (rc == CU_OK) {
        const struct cu_val q[] = {CU_VT(id),
                                   CU_VI(*n),
                                   CU_VT(title),
                                   CU_VT(assignee),
                                   CU_VI(cu_work_context_of(w)->now_ms),
                                   CU_VT(actor)};
        rc = cu_db_exec(db, ins, q, CU_NVALS(q));
    }
    if (rc == CU_OK)
        rc = cu_case_timeline_add(w, db, id, "task",
                                  json_pack("{s:I, s:s, s:s?}", "task", (json_int_t)*n, "title",
                                            title, "assignee", assignee[0] ? assignee : NULL));
    if (rc == CU_OK)
        rc = audit(w, "case.task", id,
                   json_pack("{s:I, s:s}", "task", (json_int_t)*n, "status", "open"));
    return rc;
}

enum cu_err cu_case_task_set(struct cu_work *w, struct cu_db *db, const char *id, int64_t n,
                             const char *status, char why[CU_CASE_WHY_BYTES])
{
    static const char sql[] = "UPDATE case_tasks SET status = $3, done_at = $4, done_by = $5 "
                              "WHERE case_id = $1 AND n = $2 AND status = 'open'";
    char actor[CU_CASE_ACTOR_BYTES];
    struct cu_case c;
    enum cu_err rc;

    if (strcmp(status, "done") != 0 && strcmp(status, "cancelled") != 0) {
        snprintf(why, CU_CASE_WHY_BYTES, "a task's status becomes done or cancelled");
        return CU_E_INVALID;
    }
    rc = changing(db, id, &c, why);
    cu_case_actor(w, actor);
    const struct cu_val p[] = {CU_VT(id), CU_VI(n), CU_VT(status),
                               CU_VI(cu_work_context_of(w)->now_ms), CU_VT(actor)};
    if (rc == CU_OK)
        rc = cu_db_exec(db, sql, p, CU_NVALS(p));
    if (rc == CU_OK && cu_db_changes(db) == 0) {
        snprintf(why, CU_CASE_WHY_BYTES, "the case has no open task %lld", (long long)n);
        return CU_E_NOT_FOUND;
    }
    if (rc == CU_OK)
        rc = cu_case_timeline_add(w, db, id, "task",
                                  json_pack("{s:I, s:s}", "task", (json_int_t)n, "status", status));
    if (rc == CU_OK)
        rc = audit(w, "case.task", id,
                   json_pack("{s:I, s:s}", "task", (json_int_t)n, "status", status));
    return rc;
}

enum cu_err cu_case_observable_add(struct cu_work *w, struct cu_db *db, const char *id,
                                   const char *kind, const char *value, char why[CU_CASE_WHY_BYTES])
{
    struct cu_case c;
    bool added = false;
    int64_t have = 0;
    enum cu_err rc;

    if (!cu_case_observable_kind_known(kind)) {
        snprintf(why, CU_CASE_WHY_BYTES,
                 "an observable's kind is customer, ip, device, payee or account");
        return CU_E_INVALID;
    }
    if (!cu_case_observable_valid(kind, value)) {
        snprintf(why, CU_CASE_WHY_BYTES,
                 "an observable's value is 1 to %d printable bytes without spaces%s",
                 CU_CASE_VALUE_MAX, strcmp(kind, "account") == 0 ? ", an account's id" : "");
        return CU_E_INVALID;
    }
    rc = changing(db, id, &c, why);
    if (rc == CU_OK)
        rc = cu_case_count(db, COUNT_OBSERVABLES, id, &have);
    if (rc == CU_OK && have >= CU_CASE_OBSERVABLES_MAX) {
        snprintf(why, CU_CASE_WHY_BYTES, "a case has at most %d observables",
                 CU_CASE_OBSERVABLES_MAX);
        return CU_E_TOO_LARGE;
    }
    if (rc == CU_OK)
        rc = add_observable(db, cu_work_context_of(w)->now_ms, id, kind, value, &added);
    if (rc == CU_OK && added)
        rc = cu_case_timeline_add(w, db, id, "observable",
                                  json_pack("{s:s, s:s}", "kind", kind, "value", value));
    if (rc == CU_OK && added)
        rc = audit(w, "case.observable", id, json_pack("{s:s}", "kind", kind));
    return rc;
}

enum cu_err cu_case_drill_customer(struct cu_db *db, const char *customer, bool *drill)
{
    static const char sql[] = "SELECT 1 FROM drill_customers WHERE customer = $1";
    const struct cu_val p[] = {CU_VT(customer)};
    struct cu_stmt *st = NULL;
    enum cu_err rc;

    *drill = false;
    if (customer[0] == '\0')
        return CU_OK;
    rc = cu_db_query(db, sql, p, 1, &st);
    if (rc == CU_OK)
        rc = cu_stmt_next(st, drill);
    cu_stmt_done(st);
    return rc;
}
