/*
 * rulesets.c - rule sets kept in the store, put in force through four-eyes approval, and
 * backtests of a rule set over the stored events (monitor.h; docs/monitoring.md, "Rule sets"
 * and "Backtests").
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "base/clock.h"
#include "base/json.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/text.h"
#include "crypto/crypto.h"
#include "monitor/monitor_int.h"

/* ---- the store ---- */

static void sha_hex(const char *text, size_t len, char out[2 * CU_HASH_BYTES + 1])
{
    uint8_t h[CU_HASH_BYTES];
    cu_crypto_sha256(text, len, h);
    cu_hex_encode(h, sizeof(h), out);
}

enum cu_err cu_monitor_count(struct cu_db *db, const char *sql, const struct cu_val *p, size_t n,
                             int64_t *out)
{
    struct cu_stmt *st = NULL;
    bool row = false;
    enum cu_err rc = cu_db_query(db, sql, p, n, &st);
    *out = 0;
    if (rc == CU_OK && (rc = cu_stmt_next(st, &row)) == CU_OK && row)
        *out = cu_stmt_int(st, 0);
    cu_stmt_done(st);
    return rc;
}

enum cu_err cu_rulesets_propose(struct cu_monitor *m, struct cu_work *w, struct cu_db *db,
                                const char *text, size_t len, const char *note, size_t nrules,
                                int64_t *version, char sha[2 * CU_HASH_BYTES + 1])
{
    static const char max_sql[] = "SELECT COALESCE(MAX(version), 0) FROM rule_sets";
    static const char sql[] =
        "INSERT INTO rule_sets (version, created_at, created_by, sha256, body, note, status) "
        "VALUES ($1, $2, $3, $4, $5, $6, 'proposed')";
    const struct cu_work_ctx *ctx = cu_work_context_of(w);
    char by[CU_WORK_ACTOR_TYPE_BYTES + CU_WORK_ID_BYTES + 1], target[32];
    enum cu_err rc = cu_monitor_count(db, max_sql, NULL, 0, version);

    (void)m;
    if (rc != CU_OK)
        return rc;
    ++*version;
    sha_hex(text, len, sha);
    cu_work_actor_text(ctx, by, sizeof(by));
    {
        const struct cu_val p[] = {CU_VI(*version), CU_VI(ctx->now_ms), CU_VT(by),
                                   CU_VT(sha),      CU_VTN(text, len),  CU_VT(note)};
        rc = cu_db_exec(db, sql, p, CU_NVALS(p));
    }
    if (rc == CU_E_EXISTS)
        return CU_E_BUSY; /* another node took the number: run again */
    if (rc != CU_OK)
        return rc;
    snprintf(target, sizeof(target), "ruleset:%lld", (long long)*version);
    return cu_work_audit(w, "monitor.ruleset_propose", target, "success",
                         json_pack("{s:s, s:I, s:I}", "sha256", sha, "rules", (json_int_t)nrules,
                                   "note_length", (json_int_t)strlen(note)));
}

/* A stored version's columns, as listed and shown. */
#define COLUMNS "version, created_at, created_by, sha256, note, status, activated_at, activated_by"

static enum cu_err row_json(struct cu_stmt *st, struct cu_buf *out)
{
    static const char *const keys[] = {NULL, NULL, "created_by", "sha256", "note", "status"};
    enum cu_err rc = cu_buf_printf(out, "{\"version\":%lld", (long long)cu_stmt_int(st, 0));

    if (rc == CU_OK)
        rc = cu_json_put_time(out, "created_at", cu_stmt_int(st, 1));
    for (int c = 2; rc == CU_OK && c <= 5; c++) {
        size_t n = 0;
        const char *t = cu_stmt_text(st, c, &n);
        rc = cu_buf_printf(out, ",\"%s\":", keys[c]);
        if (rc == CU_OK)
            rc = cu_json_escape(out, t, n);
    }
    if (rc == CU_OK)
        rc = cu_stmt_null(st, 6) ? cu_buf_append_str(out, ",\"activated_at\":null")
                                 : cu_json_put_time(out, "activated_at", cu_stmt_int(st, 6));
    if (rc == CU_OK) {
        size_t n = 0;
        const char *t = cu_stmt_null(st, 7) ? NULL : cu_stmt_text(st, 7, &n);
        rc = cu_buf_append_str(out, ",\"activated_by\":");
        if (rc == CU_OK)
            rc = t ? cu_json_escape(out, t, n) : cu_buf_append_str(out, "null");
    }
    return rc;
}

static enum cu_err in_force_json(struct cu_monitor *m, struct cu_buf *out)
{
    int64_t live, shadow;
    cu_monitor_in_force(m, &live, &shadow);
    /* 0: the set of [monitor] rules (or shadow_rules); -1: no shadow set */
    enum cu_err rc = cu_buf_append_str(out, "\"in_force\":{\"live\":");
    if (rc == CU_OK)
        rc = live > 0 ? cu_buf_printf(out, "%lld", (long long)live)
                      : cu_buf_append_str(out, "\"configuration\"");
    if (rc == CU_OK)
        rc = cu_buf_append_str(out, ",\"shadow\":");
    if (rc == CU_OK)
        rc = shadow > 0    ? cu_buf_printf(out, "%lld", (long long)shadow)
             : shadow == 0 ? cu_buf_append_str(out, "\"configuration\"")
                           : cu_buf_append_str(out, "null");
    if (rc == CU_OK)
        rc = cu_buf_append_str(out, "}");
    return rc;
}

enum cu_err cu_rulesets_list_json(struct cu_monitor *m, struct cu_db *db, struct cu_buf *out)
{
    static const char sql[] = "SELECT " COLUMNS " FROM rule_sets ORDER BY version DESC LIMIT $1";
    const struct cu_val p[] = {CU_VI(CU_RULESETS_PAGE)};
    struct cu_stmt *st = NULL;
    bool row = false, first = true;
    enum cu_err rc = cu_buf_append_str(out, "{");

    if (rc == CU_OK)
        rc = in_force_json(m, out);
    if (rc == CU_OK)
        rc = cu_buf_append_str(out, ",\"items\":[");
    if (rc == CU_OK)
        rc = cu_db_query(db, sql, p, CU_NVALS(p), &st);
    while (rc == CU_OK && (rc = cu_stmt_next(st, &row)) == CU_OK && row) {
        if (!first)
            rc = cu_buf_append_str(out, ",");
        first = false;
        if (rc == CU_OK)
            rc = row_json(st, out);
        if (rc == CU_OK)
            rc = cu_buf_append_str(out, "}");
    }
    cu_stmt_done(st);
    if (rc == CU_OK)
        rc = cu_buf_append_str(out, "]}");
    return rc;
}

enum cu_err cu_rulesets_get_json(struct cu_db *db, int64_t version, struct cu_buf *out)
{
    static const char sql[] = "SELECT " COLUMNS ", body FROM rule_sets WHERE version = $1";
    const struct cu_val p[] = {CU_VI(version)};
    struct cu_stmt *st = NULL;
    bool row = false;
    enum cu_err rc = cu_db_query(db, sql, p, CU_NVALS(p), &st);

    if (rc == CU_OK)
        rc = cu_stmt_next(st, &row);
    if (rc == CU_OK && !row)
        rc = CU_E_NOT_FOUND;
    if (rc == CU_OK)
        rc = row_json(st, out);
    if (rc == CU_OK) {
        size_t n = 0;
        const char *t = cu_stmt_text(st, 8, &n);
        rc = cu_buf_append_str(out, ",\"rules\":");
        if (rc == CU_OK)
            rc = cu_json_escape(out, t, n);
    }
    if (rc == CU_OK)
        rc = cu_buf_append_str(out, "}");
    cu_stmt_done(st);
    return rc;
}

enum cu_err cu_rulesets_body(struct cu_db *db, int64_t version, char status[16], char **text,
                             size_t *len)
{
    static const char sql[] = "SELECT status, body FROM rule_sets WHERE version = $1";
    const struct cu_val p[] = {CU_VI(version)};
    struct cu_stmt *st = NULL;
    bool row = false;
    enum cu_err rc = cu_db_query(db, sql, p, CU_NVALS(p), &st);

    *text = NULL;
    if (rc == CU_OK)
        rc = cu_stmt_next(st, &row);
    if (rc == CU_OK && !row)
        rc = CU_E_NOT_FOUND;
    if (rc == CU_OK) {
        size_t n = 0;
        const char *s = cu_stmt_text(st, 0, &n);
        const char *b = cu_stmt_text(st, 1, len);
        cu_text_copy(status, 16, s, n);
        if ((*text = cu_malloc(*len + 1)) == NULL) {
            rc = CU_E_NOMEM;
        } else {
            memcpy(*text, b, *len);
            (*text)[*len] = '\0';
        }
    }
    cu_stmt_done(st);
    return rc;
}

enum cu_err cu_rulesets_activate(struct cu_monitor *m, struct cu_work *w, struct cu_db *db,
                                 int64_t version, const char *as, struct cu_monitor_swap **swap,
                                 char why[CU_RULES_ERR_BYTES])
{
    static const char retire_sql[] = "UPDATE rule_sets SET status = 'retired' WHERE status = $1";
    static const char set_sql[] = "UPDATE rule_sets SET status = $2, activated_at = $3, "
                                  "activated_by = $4 WHERE version = $1";
    const struct cu_work_ctx *ctx = cu_work_context_of(w);
    bool shadow = strcmp(as, "shadow") == 0, retire = strcmp(as, "retired") == 0;
    char status[16], by[CU_WORK_ACTOR_TYPE_BYTES + CU_WORK_ID_BYTES + 1], target[32];
    char sha[2 * CU_HASH_BYTES + 1];
    struct cu_monitor_sets want;
    char *text = NULL;
    size_t len = 0;
    enum cu_err rc;

    *swap = NULL;
    why[0] = '\0';
    if ((rc = cu_rulesets_body(db, version, status, &text, &len)) != CU_OK)
        return rc;
    memset(&want, 0, sizeof(want));
    if (retire) {
        /* only a shadow set leaves force this way: the live one is replaced by another */
        if (strcmp(status, "shadow") != 0) {
            snprintf(why, CU_RULES_ERR_BYTES, "%s",
                     strcmp(status, "live") == 0
                         ? "the version is in force: put another in force in its place"
                         : "only the shadow set in force is retired");
            rc = CU_E_EXISTS;
        }
        want.shadow = CU_MONITOR_SHADOW_NONE;
    } else if (strcmp(status, shadow ? "shadow" : "live") == 0) {
        snprintf(why, CU_RULES_ERR_BYTES, "the version is the %s set already", as);
        rc = CU_E_EXISTS;
    } else if (shadow && strcmp(status, "live") == 0) {
        snprintf(why, CU_RULES_ERR_BYTES, "the version is the live set: it cannot be its shadow");
        rc = CU_E_EXISTS;
    } else if (shadow) {
        want.shadow = CU_MONITOR_SHADOW_SET;
        want.shadow_text = text;
        want.shadow_len = len;
        want.shadow_version = version;
    } else {
        want.live = text;
        want.live_len = len;
        want.live_version = version;
        /* a shadow set made live leaves the shadow slot empty */
        want.shadow =
            strcmp(status, "shadow") == 0 ? CU_MONITOR_SHADOW_NONE : CU_MONITOR_SHADOW_KEEP;
    }
    if (rc == CU_OK)
        rc = cu_monitor_swap_prepare(m, db, &want, ctx->now_ms, swap, why);
    if (rc == CU_OK && !retire) {
        const struct cu_val p[] = {CU_VT(shadow ? "shadow" : "live")};
        rc = cu_db_exec(db, retire_sql, p, CU_NVALS(p));
    }
    cu_work_actor_text(ctx, by, sizeof(by));
    if (rc == CU_OK) {
        const struct cu_val p[] = {CU_VI(version), CU_VT(retire ? "retired" : as),
                                   CU_VI(ctx->now_ms), CU_VT(by)};
        rc = cu_db_exec(db, set_sql, p, CU_NVALS(p));
    }
    if (rc == CU_OK)
        rc = cu_monitor_config_bump(db); /* the other nodes follow */
    if (rc == CU_OK)
        rc = cu_monitor_wake(m, db);
    if (rc == CU_OK) {
        sha_hex(text, len, sha);
        snprintf(target, sizeof(target), "ruleset:%lld", (long long)version);
        rc = cu_work_audit(w, retire ? "monitor.ruleset_retire" : "monitor.ruleset_activate",
                           target, "success", json_pack("{s:s, s:s}", "as", as, "sha256", sha));
    }
    cu_free(text);
    if (rc != CU_OK) {
        cu_monitor_swap_free(*swap);
        *swap = NULL;
    }
    return rc;
}

/* ---- backtests ---- */

struct bt {
    uint64_t read, events, warmup, changed, rule_errors, unrecorded;
    uint64_t decided[5], stored[5];
    uint64_t matrix[2][5]; /* [attack][decision], from the alerts' resolutions */
    uint64_t *fired;
};

static int decision_of(const char *s, size_t n)
{
    for (int d = 0; d < 5; d++)
        if (strlen(cu_decision_name((enum cu_decision)d)) == n &&
            memcmp(cu_decision_name((enum cu_decision)d), s, n) == 0)
            return d;
    return -1;
}

static enum cu_err bt_report(const struct cu_ruleset *rs, const struct bt *b,
                             const struct cu_backtest_opts *o, int64_t took_ms, struct cu_buf *out)
{
    uint64_t tp = 0, fp = 0, attack = 0, legit = 0;
    enum cu_err rc = cu_buf_append_str(out, "{");

    if (rc == CU_OK)
        rc = o->version > 0 ? cu_buf_printf(out, "\"version\":%lld", (long long)o->version)
                            : cu_buf_append_str(out, "\"version\":null");
    if (rc == CU_OK)
        rc = cu_json_put_time(out, "from", o->from);
    if (rc == CU_OK)
        rc = cu_json_put_time(out, "to", o->to);
    if (rc == CU_OK)
        rc = cu_buf_printf(out,
                           ",\"events\":%llu,\"warmup_events\":%llu,\"changed\":%llu,"
                           "\"rule_errors\":%llu,\"unrecorded\":%llu,\"took_ms\":%lld",
                           (unsigned long long)b->events, (unsigned long long)b->warmup,
                           (unsigned long long)b->changed, (unsigned long long)b->rule_errors,
                           (unsigned long long)b->unrecorded, (long long)took_ms);
    for (int k = 0; rc == CU_OK && k < 2; k++) {
        rc = cu_buf_printf(out, ",\"%s\":{", k ? "stored_decisions" : "decisions");
        for (int d = 0; rc == CU_OK && d < 5; d++)
            rc = cu_buf_printf(out, "%s\"%s\":%llu", d ? "," : "",
                               cu_decision_name((enum cu_decision)d),
                               (unsigned long long)(k ? b->stored[d] : b->decided[d]));
        if (rc == CU_OK)
            rc = cu_buf_append_str(out, "}");
    }
    if (rc == CU_OK)
        rc = cu_buf_append_str(out, ",\"rules\":[");
    for (size_t i = 0; rc == CU_OK && i < cu_rules_count(rs); i++)
        rc = cu_buf_printf(out, "%s{\"name\":\"%s\",\"fired\":%llu}", i ? "," : "",
                           cu_rules_name(rs, i), (unsigned long long)b->fired[i]);
    for (int d = 0; d < 5; d++) {
        legit += b->matrix[0][d];
        attack += b->matrix[1][d];
        if (d >= CU_DEC_STEP_UP) {
            tp += b->matrix[1][d];
            fp += b->matrix[0][d];
        }
    }
    if (rc == CU_OK)
        rc = cu_buf_printf(out, "],\"labels\":{\"legit\":%llu,\"attack\":%llu},\"confusion\":{",
                           (unsigned long long)legit, (unsigned long long)attack);
    for (int a = 0; rc == CU_OK && a < 2; a++) {
        rc = cu_buf_printf(out, "%s\"%s\":{", a ? "," : "", a ? "attack" : "legit");
        for (int d = 0; rc == CU_OK && d < 5; d++)
            rc = cu_buf_printf(out, "%s\"%s\":%llu", d ? "," : "",
                               cu_decision_name((enum cu_decision)d),
                               (unsigned long long)b->matrix[a][d]);
        if (rc == CU_OK)
            rc = cu_buf_append_str(out, "}");
    }
    if (rc == CU_OK)
        rc = cu_buf_append_str(out, "}");
    /* flagged: step_up, hold or deny; null without labels to count */
    if (rc == CU_OK)
        rc = tp + fp ? cu_buf_printf(out, ",\"precision\":%.4f", (double)tp / (double)(tp + fp))
                     : cu_buf_append_str(out, ",\"precision\":null");
    if (rc == CU_OK)
        rc = attack ? cu_buf_printf(out, ",\"recall\":%.4f", (double)tp / (double)attack)
                    : cu_buf_append_str(out, ",\"recall\":null");
    if (rc == CU_OK)
        rc = cu_buf_append_str(out, "}");
    return rc;
}

enum cu_err cu_monitor_backtest(struct cu_monitor *m, struct cu_db *db,
                                const struct cu_backtest_opts *o, struct cu_buf *out,
                                char err[CU_RULES_ERR_BYTES])
{
    static const char sql[] =
        "SELECT e.at, e.body, e.decision, a.resolution FROM monitor_events e LEFT JOIN alerts a "
        "ON a.decision_id = e.decision_id WHERE e.at >= $1 AND e.at <= $2 ORDER BY e.seq";
    const struct cu_val p[] = {CU_VI(o->from - CU_BACKTEST_WARMUP_MS), CU_VI(o->to)};
    struct cu_ruleset *rs = NULL;
    struct cu_mon_engine eng;
    struct cu_mon_parse_opts po;
    struct cu_mon_event *ev = NULL;
    struct cu_stmt *st = NULL;
    struct bt b;
    bool row = false, eng_ready = false;
    int64_t t0 = cu_clock_now_ms();
    char perr[CU_MON_ERR_BYTES];
    enum cu_err rc;

    err[0] = '\0';
    memset(&b, 0, sizeof(b));
    if (o->to < o->from || o->to - o->from > CU_BACKTEST_RANGE_MAX_MS) {
        snprintf(err, CU_RULES_ERR_BYTES, "'to' must follow 'from', by at most 90 days");
        return CU_E_INVALID;
    }
    /* each backtest holds a state of its own and a long read: a few at a time */
    if (atomic_fetch_add(&m->backtests, 1) >= CU_BACKTEST_CONCURRENT) {
        atomic_fetch_sub(&m->backtests, 1);
        snprintf(err, CU_RULES_ERR_BYTES, "a backtest is running: try again once it ends");
        return CU_E_BUSY;
    }
    rc = cu_rules_compile(o->text, o->len, o->version > 0 ? "ruleset" : "rules", &m->types, &rs,
                          err);
    if (rc != CU_OK) {
        atomic_fetch_sub(&m->backtests, 1);
        return rc;
    }
    if ((b.fired = cu_calloc(cu_rules_count(rs) + 1, sizeof(*b.fired))) == NULL ||
        (ev = cu_malloc(sizeof(*ev))) == NULL)
        rc = CU_E_NOMEM;
    if (rc == CU_OK)
        rc = cu_monitor_fill_lists(db, rs, t0);
    if (rc == CU_OK && (rc = cu_mon_engine_init(&eng, rs, NULL)) == CU_OK)
        eng_ready = true;
    memset(&po, 0, sizeof(po));
    po.types = &m->types;
    if (rc == CU_OK)
        rc = cu_db_query(db, sql, p, CU_NVALS(p), &st);
    while (rc == CU_OK && (rc = cu_stmt_next(st, &row)) == CU_OK && row) {
        size_t n = 0, dn = 0, ln = 0;
        int64_t at = cu_stmt_int(st, 0);
        const char *body = cu_stmt_text(st, 1, &n), *dec = cu_stmt_text(st, 2, &dn);
        const char *label = cu_stmt_null(st, 3) ? NULL : cu_stmt_text(st, 3, &ln);
        struct cu_verdict v;
        int sd;
        if (++b.read > CU_BACKTEST_EVENTS_MAX) {
            snprintf(err, CU_RULES_ERR_BYTES,
                     "more than %d events to read (the range and the 30 days before it): narrow "
                     "the range",
                     CU_BACKTEST_EVENTS_MAX);
            rc = CU_E_TOO_LARGE;
            break;
        }
        if (cu_mon_event_parse(body, n, &po, ev, perr) != CU_OK)
            continue; /* a custom type since removed, or an erased customer's emptied event */
        if (at < o->from) {
            /* before the range: the windows' history, not decided */
            b.warmup++;
            if (cu_mon_state_add(eng.st, ev) != CU_OK)
                b.unrecorded++;
            continue;
        }
        if (++b.events > CU_BACKTEST_EVENTS_MAX) {
            snprintf(err, CU_RULES_ERR_BYTES, "more than %d events in the range: narrow it",
                     CU_BACKTEST_EVENTS_MAX);
            rc = CU_E_TOO_LARGE;
            break;
        }
        if (cu_mon_engine_decide(&eng, ev, &v, NULL) != CU_OK)
            b.unrecorded++; /* the verdict stands; the state missed the event */
        b.decided[v.decision]++;
        b.rule_errors += v.nerrors;
        for (size_t i = 0; i < v.nfired; i++)
            b.fired[v.fired[i].rule]++;
        if ((sd = decision_of(dec, dn)) >= 0) {
            b.stored[sd]++;
            b.changed += sd != (int)v.decision;
        }
        /* an alert resolved is the event's label: true_positive an attack, false_positive not */
        if (label != NULL && (ln == 13 || ln == 14))
            b.matrix[ln == 13 && memcmp(label, "true_positive", 13) == 0][v.decision]++;
    }
    cu_stmt_done(st);
    if (rc == CU_OK)
        rc = bt_report(rs, &b, o, cu_clock_now_ms() - t0, out);
    if (eng_ready)
        cu_mon_engine_fini(&eng);
    if (ev != NULL)
        sodium_memzero(ev, sizeof(*ev));
    cu_free(ev);
    cu_free(b.fired);
    cu_rules_free(rs);
    atomic_fetch_sub(&m->backtests, 1);
    return rc;
}
