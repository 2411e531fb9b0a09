/*
 * lists.c - the lists staff manage by API and the snoozes of rules for one customer
 * (monitor.h; docs/monitoring.md, "Lists and snoozes").
 *
 * The store holds them (monitor_list_items, monitor_snoozes); the rule sets in force hold a
 * copy in memory, read by the committer's thread only. A change is made in a unit of work with
 * its audit record, and the copy follows once the unit is durable (an effect of the unit), so
 * that the rules never see what was not committed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "access/policy.h"
#include "base/clock.h"
#include "base/json.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/text.h"
#include "crypto/crypto.h"
#include "monitor/monitor_int.h"

/* ---- the copy of the managed lists' names ---- */

static void managed_add(struct cu_monitor *m, const struct cu_ruleset *rs)
{
    for (size_t i = 0; rs != NULL && i < cu_rules_lists(rs); i++) {
        bool managed = false, addresses = false, seen = false;
        const char *name = cu_rules_list_name(rs, i, &managed, &addresses);
        for (size_t k = 0; managed && k < m->nmanaged && !seen; k++)
            seen = strcmp(m->managed[k], name) == 0;
        if (managed && !seen && m->nmanaged < sizeof(m->managed) / sizeof(m->managed[0])) {
            snprintf(m->managed[m->nmanaged], sizeof(m->managed[0]), "%s", name);
            m->managed_addresses[m->nmanaged++] = addresses;
        }
    }
}

void cu_monitor_managed_update(struct cu_monitor *m)
{
    pthread_mutex_lock(&m->mu);
    m->nmanaged = 0;
    managed_add(m, m->rs);
    managed_add(m, m->shadow);
    pthread_mutex_unlock(&m->mu);
}

/* managed(m, name, addresses): whether a set in force declares the managed list name. */
static bool managed(struct cu_monitor *m, const char *name, bool *addresses)
{
    bool found = false;
    pthread_mutex_lock(&m->mu);
    for (size_t k = 0; k < m->nmanaged && !found; k++)
        if (strcmp(m->managed[k], name) == 0) {
            found = true;
            if (addresses)
                *addresses = m->managed_addresses[k];
        }
    pthread_mutex_unlock(&m->mu);
    return found;
}

/* ---- what the audit log may say ---- */

/* for_audit(m, kind, text, out): text as the audit log keeps it: a vault customer's id as it is,
 * anything else (an address, a device, a company's reference) as its keyed hash, so that the
 * log carries no personal data (in clear only for a service made without a hash: tests). */
static void for_audit(const struct cu_monitor *m, const char *kind, const char *text,
                      char out[CU_MON_REF_MAX + 1])
{
    uint8_t h[8];
    if (m->audit_hash == NULL || (strncmp(text, "cus_", 4) == 0 && strlen(text) == 20)) {
        snprintf(out, CU_MON_REF_MAX + 1, "%s", text);
        return;
    }
    m->audit_hash(m->audit_hash_arg, kind, text, h);
    out[0] = 'h';
    out[1] = ':';
    cu_hex_encode(h, sizeof(h), out + 2);
}

/* ---- after the commit: the copy follows the store ---- */

static bool mark(char (*set)[CU_MON_REF_MAX + 1], size_t cap, size_t *n, const char *s,
                 size_t width)
{
    for (size_t i = 0; i < *n; i++)
        if (strncmp(set[i], s, width) == 0)
            return true;
    if (*n >= cap)
        return false;
    snprintf(set[(*n)++], width, "%s", s);
    return true;
}

static void dirty_list(struct cu_monitor *m, const char *name)
{
    bool ok = false;
    for (size_t i = 0; i < m->ndirty_lists && !ok; i++)
        ok = strcmp(m->dirty_lists[i], name) == 0;
    if (!ok && m->ndirty_lists < CU_MONITOR_DIRTY_MAX)
        snprintf(m->dirty_lists[m->ndirty_lists++], sizeof(m->dirty_lists[0]), "%s", name);
    else if (!ok)
        m->dirty_all = true;
}

static void dirty_customer(struct cu_monitor *m, const char *customer)
{
    if (!mark(m->dirty_customers, CU_MONITOR_DIRTY_MAX, &m->ndirty_customers, customer,
              sizeof(m->dirty_customers[0])))
        m->dirty_all = true;
}

/* read_items(db, name, now, items, n): the items of the managed list name in force at now, as
 * the store holds them (malloc'd; free_items). */
static enum cu_err read_items(struct cu_db *db, const char *name, int64_t now, char ***items,
                              size_t *n)
{
    static const char sql[] = "SELECT value FROM monitor_list_items WHERE list = $1 AND "
                              "(expires_at IS NULL OR expires_at > $2) ORDER BY value LIMIT $3";
    const struct cu_val p[] = {CU_VT(name), CU_VI(now), CU_VI(CU_RULES_LIST_ITEMS_MAX)};
    struct cu_stmt *st = NULL;
    bool row = false;
    enum cu_err rc;

    *n = 0;
    if ((*items = cu_calloc(CU_RULES_LIST_ITEMS_MAX, sizeof(**items))) == NULL)
        return CU_E_NOMEM;
    rc = cu_db_query(db, sql, p, CU_NVALS(p), &st);
    while (rc == CU_OK && *n < CU_RULES_LIST_ITEMS_MAX && (rc = cu_stmt_next(st, &row)) == CU_OK &&
           row) {
        size_t len = 0;
        const char *v = cu_stmt_text(st, 0, &len);
        char *item = cu_malloc(len + 1);
        if (item == NULL) {
            rc = CU_E_NOMEM;
            break;
        }
        memcpy(item, v, len);
        item[len] = '\0';
        (*items)[(*n)++] = item;
    }
    cu_stmt_done(st);
    return rc;
}

static void free_items(char **items, size_t n)
{
    for (size_t i = 0; items != NULL && i < n; i++)
        cu_free(items[i]);
    cu_free(items);
}

/* set_items(rs, name, items, n): rs's managed list name made these items (CU_OK when rs has no
 * such list); items its kind refuses are left out and logged. */
static enum cu_err set_items(struct cu_ruleset *rs, const char *name, char **items, size_t n)
{
    size_t skipped = 0;
    enum cu_err rc = cu_rules_list_set(rs, name, (const char *const *)items, n, &skipped);
    if (rc == CU_E_NOT_FOUND)
        return CU_OK;
    if (rc == CU_OK && skipped > 0) /* items stored for a list of another kind (an earlier set's) */
        cu_log(CU_LOG_WARN, "monitor.list_items_skipped", CU_LS("list", name),
               CU_LI("items", (int64_t)skipped));
    return rc;
}

enum cu_err cu_monitor_fill_lists(struct cu_db *db, struct cu_ruleset *rs, int64_t now)
{
    enum cu_err rc = CU_OK;
    for (size_t i = 0; rc == CU_OK && i < cu_rules_lists(rs); i++) {
        bool is_managed = false;
        const char *name = cu_rules_list_name(rs, i, &is_managed, NULL);
        char **items = NULL;
        size_t n = 0;
        if (!is_managed)
            continue;
        if ((rc = read_items(db, name, now, &items, &n)) == CU_OK)
            rc = set_items(rs, name, items, n);
        free_items(items, n);
    }
    return rc;
}

/* load_list(m, db, name, now): the managed list name of each set in force read again. */
static enum cu_err load_list(struct cu_monitor *m, struct cu_db *db, const char *name, int64_t now)
{
    char **items = NULL;
    size_t n = 0;
    enum cu_err rc = read_items(db, name, now, &items, &n);

    if (rc == CU_OK && m->rs != NULL)
        rc = set_items(m->rs, name, items, n);
    if (rc == CU_OK && m->shadow != NULL)
        rc = set_items(m->shadow, name, items, n);
    free_items(items, n);
    return rc;
}

static int snooze_cmp(const struct cu_snooze *a, const char *customer, const char *rule)
{
    int c = strcmp(a->customer, customer);
    return c != 0 ? c : rule ? strcmp(a->rule, rule) : 0;
}

/* lower(m, customer): the first snooze of customer or after it. */
static size_t lower(const struct cu_monitor *m, const char *customer)
{
    size_t lo = 0, hi = m->nsnoozes;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(m->snoozes[mid].customer, customer) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* load_snoozes(m, db, customer, now): the customer's snoozes read again (all customers'
 * when customer is NULL). */
static enum cu_err load_snoozes(struct cu_monitor *m, struct cu_db *db, const char *customer,
                                int64_t now)
{
    static const char one_sql[] = "SELECT customer, rule, until FROM monitor_snoozes WHERE "
                                  "customer = $1 AND until > $2 ORDER BY rule";
    static const char all_sql[] = "SELECT customer, rule, until FROM monitor_snoozes WHERE "
                                  "until > $1 ORDER BY customer, rule";
    struct cu_stmt *st = NULL;
    bool row = false;
    size_t at;
    enum cu_err rc;

    if (customer != NULL) {
        size_t hi;
        at = lower(m, customer);
        for (hi = at; hi < m->nsnoozes && strcmp(m->snoozes[hi].customer, customer) == 0; hi++)
            ;
        if (hi > at) {
            memmove(m->snoozes + at, m->snoozes + hi, (m->nsnoozes - hi) * sizeof(*m->snoozes));
            m->nsnoozes -= hi - at;
        }
        const struct cu_val p[] = {CU_VT(customer), CU_VI(now)};
        rc = cu_db_query(db, one_sql, p, CU_NVALS(p), &st);
    } else {
        at = m->nsnoozes = 0;
        const struct cu_val p[] = {CU_VI(now)};
        rc = cu_db_query(db, all_sql, p, CU_NVALS(p), &st);
    }
    while (rc == CU_OK && (rc = cu_stmt_next(st, &row)) == CU_OK && row) {
        struct cu_snooze s;
        size_t n = 0;
        const char *t;
        if (m->nsnoozes == m->capsnoozes) {
            size_t cap = m->capsnoozes ? m->capsnoozes * 2 : 64;
            struct cu_snooze *v = cu_reallocarray(m->snoozes, cap, sizeof(*v));
            if (v == NULL) {
                rc = CU_E_NOMEM;
                break;
            }
            m->snoozes = v;
            m->capsnoozes = cap;
        }
        t = cu_stmt_text(st, 0, &n);
        cu_text_copy(s.customer, sizeof(s.customer), t, n);
        t = cu_stmt_text(st, 1, &n);
        cu_text_copy(s.rule, sizeof(s.rule), t, n);
        s.until = cu_stmt_int(st, 2);
        /* rows come in order: those of one customer go where the customer's were */
        if (m->nsnoozes > at)
            memmove(m->snoozes + at + 1, m->snoozes + at, (m->nsnoozes - at) * sizeof(*m->snoozes));
        m->snoozes[at++] = s;
        m->nsnoozes++;
    }
    cu_stmt_done(st);
    return rc;
}

enum cu_err cu_monitor_load(struct cu_monitor *m, struct cu_db *db, int64_t now)
{
    enum cu_err rc = load_snoozes(m, db, NULL, now);
    for (size_t k = 0; rc == CU_OK && k < m->nmanaged; k++)
        rc = load_list(m, db, m->managed[k], now);
    m->ndirty_lists = m->ndirty_customers = 0;
    m->dirty_all = false;
    return rc;
}

/* refresh(arg, db): the copy made to follow what the durable unit changed. */
static void refresh(void *arg, struct cu_db *db)
{
    struct cu_monitor *m = arg;
    int64_t now = cu_clock_now_ms();
    enum cu_err rc = CU_OK;

    /* the snoozes whose time passed leave memory (the store's go at the housekeeping) */
    size_t k = 0;
    for (size_t i = 0; i < m->nsnoozes; i++)
        if (m->snoozes[i].until > now)
            m->snoozes[k++] = m->snoozes[i];
    m->nsnoozes = k;
    if (m->dirty_all) {
        rc = cu_monitor_load(m, db, now);
    } else {
        for (size_t i = 0; rc == CU_OK && i < m->ndirty_lists; i++)
            rc = load_list(m, db, m->dirty_lists[i], now);
        for (size_t i = 0; rc == CU_OK && i < m->ndirty_customers; i++)
            rc = load_snoozes(m, db, m->dirty_customers[i], now);
        if (rc == CU_OK)
            m->ndirty_lists = m->ndirty_customers = 0;
    }
    if (rc != CU_OK) {
        /* read again at the next change, all of it */
        m->dirty_all = true;
        cu_log(CU_LOG_ERROR, "monitor.lists_reload_failed", CU_LS("error", cu_err_str(rc)));
    }
}

void cu_monitor_snoozed(const struct cu_monitor *m, const char *customer, int64_t now,
                        struct cu_rule_mask *skip, struct cu_rule_mask *shadow_skip,
                        const char **names, size_t *n, size_t cap)
{
    memset(skip, 0, sizeof(*skip));
    memset(shadow_skip, 0, sizeof(*shadow_skip));
    *n = 0;
    for (size_t i = lower(m, customer);
         i < m->nsnoozes && snooze_cmp(&m->snoozes[i], customer, NULL) == 0; i++) {
        int r = m->snoozes[i].until > now ? cu_rules_find(m->rs, m->snoozes[i].rule) : -1;
        int s = m->snoozes[i].until > now && m->shadow
                    ? cu_rules_find(m->shadow, m->snoozes[i].rule)
                    : -1;
        if (r >= 0) {
            skip->bits[r / 64] |= 1ull << (r % 64);
            if (*n < cap)
                names[(*n)++] = m->snoozes[i].rule;
        }
        if (s >= 0)
            shadow_skip->bits[s / 64] |= 1ull << (s % 64);
    }
}

/* ---- changes, in a unit of work ---- */

/* value_ok(addresses, v, why): whether v may be an item of a list of that kind. */
static bool value_ok(bool addresses, const char *v, char why[CU_MON_ERR_BYTES])
{
    struct cu_cidr c;
    const char *w = NULL;
    size_t n = strlen(v);

    if (n == 0 || n > CU_MON_ATTR_VALUE_MAX || !cu_mon_ref_ok(v, n)) {
        snprintf(why, CU_MON_ERR_BYTES,
                 "field 'value' must be 1 to %d bytes of text without control characters",
                 CU_MON_ATTR_VALUE_MAX);
        return false;
    }
    if (addresses && cu_cidr_parse(v, n, &c, &w) != CU_OK) {
        snprintf(why, CU_MON_ERR_BYTES,
                 "field 'value' must be an address or a block (CIDR) in this list: %s",
                 w ? w : "not an address");
        return false;
    }
    return true;
}

/* after(m, w, db): the lists and snoozes read again once w is durable, here; and, for the
 * other nodes on the database, the change counted in monitor_head.config, which their tails
 * follow (cu_monitor_follow). */
static enum cu_err after(struct cu_monitor *m, struct cu_work *w, struct cu_db *db)
{
    enum cu_err rc = cu_monitor_config_bump(db);
    if (rc == CU_OK)
        rc = cu_monitor_wake(m, db);
    return rc == CU_OK ? cu_work_after(w, refresh, m) : rc;
}

enum cu_err cu_monitor_config_bump(struct cu_db *db)
{
    return cu_db_exec(db, "UPDATE monitor_head SET config = config + 1 WHERE id = 1", NULL, 0);
}

enum cu_err cu_monitor_list_add(struct cu_monitor *m, struct cu_work *w, struct cu_db *db,
                                const char *list, const char *value, int64_t expires_at,
                                const char *note, char why[CU_MON_ERR_BYTES])
{
    static const char count_sql[] = "SELECT COUNT(*) FROM monitor_list_items WHERE list = $1 AND "
                                    "value <> $2";
    static const char sql[] =
        "INSERT INTO monitor_list_items (list, value, added_at, added_by, expires_at, note) VALUES "
        "($1, $2, $3, $4, $5, $6) ON CONFLICT (list, value) DO UPDATE SET added_at = $3, "
        "added_by = $4, expires_at = $5, note = $6";
    const struct cu_work_ctx *ctx = cu_work_context_of(w);
    char by[CU_WORK_ACTOR_TYPE_BYTES + CU_WORK_ID_BYTES + 1], target[CU_MON_NAME_MAX + 8];
    char shown[CU_MON_REF_MAX + 1];
    bool addresses = false;
    int64_t n = 0;
    enum cu_err rc;

    why[0] = '\0';
    if (!managed(m, list, &addresses)) {
        snprintf(why, CU_MON_ERR_BYTES,
                 "no rule set in force declares a managed list '%.32s' (list NAME managed)", list);
        return CU_E_NOT_FOUND;
    }
    if (!value_ok(addresses, value, why))
        return CU_E_INVALID;
    if (expires_at != 0 && expires_at <= ctx->now_ms) {
        snprintf(why, CU_MON_ERR_BYTES, "field 'expires_at' must be in the future");
        return CU_E_INVALID;
    }
    {
        const struct cu_val p[] = {CU_VT(list), CU_VT(value)};
        rc = cu_monitor_count(db, count_sql, p, CU_NVALS(p), &n);
    }
    if (rc != CU_OK)
        return rc;
    if (n >= CU_RULES_LIST_ITEMS_MAX) {
        snprintf(why, CU_MON_ERR_BYTES, "the list holds %d items, its most",
                 CU_RULES_LIST_ITEMS_MAX);
        return CU_E_TOO_LARGE;
    }
    cu_work_actor_text(ctx, by, sizeof(by));
    {
        const struct cu_val p[] = {CU_VT(list),
                                   CU_VT(value),
                                   CU_VI(ctx->now_ms),
                                   CU_VT(by),
                                   expires_at ? CU_VI(expires_at) : CU_VNULL,
                                   CU_VT(note ? note : "")};
        if ((rc = cu_db_exec(db, sql, p, CU_NVALS(p))) != CU_OK)
            return rc;
    }
    dirty_list(m, list);
    if ((rc = after(m, w, db)) != CU_OK)
        return rc;
    for_audit(m, "list_value", value, shown);
    snprintf(target, sizeof(target), "list:%s", list);
    /* the note is staff's free text: the record keeps its length */
    return cu_work_audit(w, "monitor.list_add", target, "success",
                         json_pack("{s:s, s:I, s:I}", "value", shown, "expires_at",
                                   (json_int_t)expires_at, "note_length",
                                   (json_int_t)(note ? strlen(note) : 0)));
}

/* removed(m, w, db, sql, k1, k2, action, target, key, value, kind): deletes the row (k1, k2)
 * with sql, and audits it as action on target with key: value as for_audit shows it (kind).
 * CU_E_NOT_FOUND when there was none. */
static enum cu_err removed(struct cu_monitor *m, struct cu_work *w, struct cu_db *db,
                           const char *sql, const char *k1, const char *k2, const char *action,
                           const char *target, const char *key, const char *value, const char *kind)
{
    const struct cu_val p[] = {CU_VT(k1), CU_VT(k2)};
    char shown[CU_MON_REF_MAX + 1];
    enum cu_err rc = cu_db_exec(db, sql, p, CU_NVALS(p));

    if (rc == CU_OK && cu_db_changes(db) == 0)
        return CU_E_NOT_FOUND;
    if (rc == CU_OK)
        rc = after(m, w, db);
    if (rc != CU_OK)
        return rc;
    for_audit(m, kind, value, shown);
    return cu_work_audit(w, action, target, "success", json_pack("{s:s}", key, shown));
}

enum cu_err cu_monitor_list_remove(struct cu_monitor *m, struct cu_work *w, struct cu_db *db,
                                   const char *list, const char *value)
{
    static const char sql[] = "DELETE FROM monitor_list_items WHERE list = $1 AND value = $2";
    char target[CU_MON_NAME_MAX + 8];
    snprintf(target, sizeof(target), "list:%s", list);
    dirty_list(m, list); /* read again after the commit, whatever this gives */
    return removed(m, w, db, sql, list, value, "monitor.list_remove", target, "value", value,
                   "list_value");
}

/* rule_known(m, rule): whether a set in force has the rule (the committer's thread). */
static bool rule_known(const struct cu_monitor *m, const char *rule)
{
    return cu_rules_find(m->rs, rule) >= 0 || (m->shadow && cu_rules_find(m->shadow, rule) >= 0);
}

enum cu_err cu_monitor_snooze(struct cu_monitor *m, struct cu_work *w, struct cu_db *db,
                              const char *customer, const char *rule, int64_t until,
                              const char *reason, char why[CU_MON_ERR_BYTES])
{
    static const char count_sql[] = "SELECT COUNT(*) FROM monitor_snoozes WHERE until > $1 AND "
                                    "NOT (customer = $2 AND rule = $3)";
    static const char sql[] =
        "INSERT INTO monitor_snoozes (customer, rule, until, created_at, created_by, reason) "
        "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (customer, rule) DO UPDATE SET until = $3, "
        "created_at = $4, created_by = $5, reason = $6";
    const struct cu_work_ctx *ctx = cu_work_context_of(w);
    char by[CU_WORK_ACTOR_TYPE_BYTES + CU_WORK_ID_BYTES + 1], target[CU_MON_NAME_MAX + 8];
    char shown[CU_MON_REF_MAX + 1];
    int64_t n = 0;
    enum cu_err rc;

    why[0] = '\0';
    if (!rule_known(m, rule)) {
        snprintf(why, CU_MON_ERR_BYTES, "no rule set in force has a rule '%.32s'", rule);
        return CU_E_NOT_FOUND;
    }
    if (until <= ctx->now_ms || until > ctx->now_ms + CU_MONITOR_SNOOZE_MAX_MS) {
        snprintf(why, CU_MON_ERR_BYTES,
                 "field 'until' must be in the future, and at most 365 days ahead");
        return CU_E_INVALID;
    }
    {
        const struct cu_val p[] = {CU_VI(ctx->now_ms), CU_VT(customer), CU_VT(rule)};
        rc = cu_monitor_count(db, count_sql, p, CU_NVALS(p), &n);
    }
    if (rc != CU_OK)
        return rc;
    if (n >= CU_MONITOR_SNOOZES_MAX) {
        snprintf(why, CU_MON_ERR_BYTES, "%d snoozes are in force, the most",
                 CU_MONITOR_SNOOZES_MAX);
        return CU_E_TOO_LARGE;
    }
    cu_work_actor_text(ctx, by, sizeof(by));
    {
        const struct cu_val p[] = {CU_VT(customer),    CU_VT(rule), CU_VI(until),
                                   CU_VI(ctx->now_ms), CU_VT(by),   CU_VT(reason)};
        if ((rc = cu_db_exec(db, sql, p, CU_NVALS(p))) != CU_OK)
            return rc;
    }
    dirty_customer(m, customer);
    if ((rc = after(m, w, db)) != CU_OK)
        return rc;
    for_audit(m, "ref", customer, shown);
    snprintf(target, sizeof(target), "rule:%s", rule);
    return cu_work_audit(w, "monitor.snooze", target, "success",
                         json_pack("{s:s, s:I, s:I}", "customer", shown, "until", (json_int_t)until,
                                   "reason_length", (json_int_t)strlen(reason)));
}

enum cu_err cu_monitor_unsnooze(struct cu_monitor *m, struct cu_work *w, struct cu_db *db,
                                const char *customer, const char *rule)
{
    static const char sql[] = "DELETE FROM monitor_snoozes WHERE customer = $1 AND rule = $2";
    char target[CU_MON_NAME_MAX + 8];
    snprintf(target, sizeof(target), "rule:%s", rule);
    dirty_customer(m, customer);
    return removed(m, w, db, sql, customer, rule, "monitor.unsnooze", target, "customer", customer,
                   "ref");
}

enum cu_err cu_monitor_housekeep(struct cu_monitor *m, struct cu_work *w, struct cu_db *db,
                                 int64_t *n)
{
    static const char lists_sql[] = "SELECT DISTINCT list FROM monitor_list_items WHERE "
                                    "expires_at IS NOT NULL AND expires_at <= $1 ORDER BY list";
    static const char items_sql[] = "DELETE FROM monitor_list_items WHERE expires_at IS NOT NULL "
                                    "AND expires_at <= $1";
    static const char snoozes_sql[] = "DELETE FROM monitor_snoozes WHERE until <= $1";
    static const char keys_sql[] = "DELETE FROM monitor_idempotency WHERE created_at <= $1";
    const int64_t now = cu_work_context_of(w)->now_ms;
    const struct cu_val p[] = {CU_VI(now)};
    struct cu_stmt *st = NULL;
    bool row = false;
    int64_t items = 0, snoozes = 0;
    enum cu_err rc = cu_db_query(db, lists_sql, p, CU_NVALS(p), &st);

    *n = 0;
    while (rc == CU_OK && (rc = cu_stmt_next(st, &row)) == CU_OK && row) {
        char name[CU_MON_NAME_MAX + 1];
        size_t len = 0;
        const char *t = cu_stmt_text(st, 0, &len);
        cu_text_copy(name, sizeof(name), t, len);
        dirty_list(m, name);
    }
    cu_stmt_done(st);
    if (rc == CU_OK && (rc = cu_db_exec(db, items_sql, p, CU_NVALS(p))) == CU_OK)
        items = cu_db_changes(db);
    if (rc == CU_OK && (rc = cu_db_exec(db, snoozes_sql, p, CU_NVALS(p))) == CU_OK)
        snoozes = cu_db_changes(db);
    /* the idempotency keys of posted events, after a day (a retry comes within minutes) */
    if (rc == CU_OK) {
        const struct cu_val k[] = {CU_VI(now - CU_MONITOR_KEYS_MS)};
        rc = cu_db_exec(db, keys_sql, k, CU_NVALS(k));
    }
    if (rc != CU_OK || items + snoozes == 0)
        return rc;
    /* the snoozes in memory lapse by their time; the lists are read again */
    if ((rc = after(m, w, db)) != CU_OK)
        return rc;
    *n = items + snoozes;
    return cu_work_audit(
        w, "monitor.expired", "monitor", "success",
        json_pack("{s:I, s:I}", "list_items", (json_int_t)items, "snoozes", (json_int_t)snoozes));
}

/* ---- reads, on any thread ---- */

enum cu_err cu_monitor_lists_json(struct cu_monitor *m, struct cu_db *db, struct cu_buf *out)
{
    static const char sql[] = "SELECT COUNT(*) FROM monitor_list_items WHERE list = $1 AND "
                              "(expires_at IS NULL OR expires_at > $2)";
    char names[2 * CU_RULES_LISTS_MAX][CU_MON_NAME_MAX + 1];
    bool addr[2 * CU_RULES_LISTS_MAX];
    size_t k;
    enum cu_err rc = cu_buf_append_str(out, "{\"items\":[");

    pthread_mutex_lock(&m->mu);
    k = m->nmanaged;
    memcpy(names, m->managed, k * sizeof(names[0]));
    memcpy(addr, m->managed_addresses, k * sizeof(addr[0]));
    pthread_mutex_unlock(&m->mu);
    for (size_t i = 0; rc == CU_OK && i < k; i++) {
        const struct cu_val p[] = {CU_VT(names[i]), CU_VI(cu_clock_now_ms())};
        struct cu_stmt *st = NULL;
        bool row = false;
        int64_t n = 0;
        if ((rc = cu_db_query(db, sql, p, CU_NVALS(p), &st)) == CU_OK &&
            (rc = cu_stmt_next(st, &row)) == CU_OK && row)
            n = cu_stmt_int(st, 0);
        cu_stmt_done(st);
        if (rc == CU_OK)
            rc = cu_buf_printf(out, "%s{\"name\":\"%s\",\"kind\":\"%s\",\"items\":%lld}",
                               i ? "," : "", names[i], addr[i] ? "addresses" : "values",
                               (long long)n);
    }
    if (rc == CU_OK)
        rc = cu_buf_append_str(out, "]}");
    return rc;
}

enum cu_err cu_monitor_list_json(struct cu_monitor *m, struct cu_db *db, const char *list,
                                 struct cu_buf *out)
{
    static const char sql[] =
        "SELECT value, added_at, added_by, expires_at, note FROM monitor_list_items WHERE list "
        "= $1 AND (expires_at IS NULL OR expires_at > $2) ORDER BY value LIMIT $3";
    const struct cu_val p[] = {CU_VT(list), CU_VI(cu_clock_now_ms()),
                               CU_VI(CU_RULES_LIST_ITEMS_MAX)};
    bool addresses = false, row = false, first = true;
    struct cu_stmt *st = NULL;
    enum cu_err rc;

    if (!managed(m, list, &addresses))
        return CU_E_NOT_FOUND;
    rc = cu_buf_printf(out, "{\"name\":\"%s\",\"kind\":\"%s\",\"items\":[", list,
                       addresses ? "addresses" : "values");
    if (rc == CU_OK)
        rc = cu_db_query(db, sql, p, CU_NVALS(p), &st);
    while (rc == CU_OK && (rc = cu_stmt_next(st, &row)) == CU_OK && row) {
        size_t n = 0;
        const char *t;
        rc = cu_buf_append_str(out, first ? "{\"value\":" : ",{\"value\":");
        first = false;
        t = cu_stmt_text(st, 0, &n);
        if (rc == CU_OK)
            rc = cu_json_escape(out, t, n);
        if (rc == CU_OK)
            rc = cu_json_put_time(out, "added_at", cu_stmt_int(st, 1));
        t = cu_stmt_text(st, 2, &n);
        if (rc == CU_OK)
            rc = cu_buf_append_str(out, ",\"added_by\":");
        if (rc == CU_OK)
            rc = cu_json_escape(out, t, n);
        if (rc == CU_OK)
            rc = cu_stmt_null(st, 3) ? cu_buf_append_str(out, ",\"expires_at\":null")
                                     : cu_json_put_time(out, "expires_at", cu_stmt_int(st, 3));
        t = cu_stmt_text(st, 4, &n);
        if (rc == CU_OK)
            rc = cu_buf_append_str(out, ",\"note\":");
        if (rc == CU_OK)
            rc = cu_json_escape(out, t, n);
        if (rc == CU_OK)
            rc = cu_buf_append_str(out, "}");
    }
    cu_stmt_done(st);
    if (rc == CU_OK)
        rc = cu_buf_append_str(out, "]}");
    return rc;
}

enum cu_err cu_monitor_snoozes_json(struct cu_db *db, const char *customer, struct cu_buf *out)
{
    static const char one_sql[] =
        "SELECT customer, rule, until, created_at, created_by, reason FROM monitor_snoozes WHERE "
        "customer = $1 AND until > $2 ORDER BY rule LIMIT $3";
    static const char all_sql[] =
        "SELECT customer, rule, until, created_at, created_by, reason FROM monitor_snoozes WHERE "
        "until > $2 AND $1 = '' ORDER BY customer, rule LIMIT $3";
    const struct cu_val p[] = {CU_VT(customer ? customer : ""), CU_VI(cu_clock_now_ms()),
                               CU_VI(CU_MONITOR_SNOOZES_PAGE)};
    struct cu_stmt *st = NULL;
    bool row = false, first = true;
    enum cu_err rc = cu_buf_append_str(out, "{\"items\":[");

    if (rc == CU_OK)
        rc = cu_db_query(db, customer ? one_sql : all_sql, p, CU_NVALS(p), &st);
    while (rc == CU_OK && (rc = cu_stmt_next(st, &row)) == CU_OK && row) {
        static const char *const keys[] = {"customer", "rule", NULL, NULL, "created_by", "reason"};
        rc = cu_buf_append_str(out, first ? "{" : ",{");
        first = false;
        for (int c = 0; rc == CU_OK && c < 6; c++) {
            size_t n = 0;
            const char *t;
            if (c == 2 || c == 3) {
                rc = cu_json_put_time(out, c == 2 ? "until" : "created_at", cu_stmt_int(st, c));
                continue;
            }
            t = cu_stmt_text(st, c, &n);
            rc = cu_buf_printf(out, "%s\"%s\":", c ? "," : "", keys[c]);
            if (rc == CU_OK)
                rc = cu_json_escape(out, t, n);
        }
        if (rc == CU_OK)
            rc = cu_buf_append_str(out, "}");
    }
    cu_stmt_done(st);
    if (rc == CU_OK)
        rc = cu_buf_append_str(out, "]}");
    return rc;
}

/* ---- an erased customer ---- */

/* strip(m, db, key, id): the stored events kept under key (the customer's id, or a reference
 * of theirs an outside system posted) made anonymous and kept under id. */
static enum cu_err strip(struct cu_monitor *m, struct cu_db *db, const char *key, const char *id)
{
    static const char rows_sql[] = "SELECT seq, body FROM monitor_events WHERE customer = $1 AND "
                                   "seq > $2 ORDER BY seq LIMIT 256";
    static const char body_sql[] =
        "UPDATE monitor_events SET body = $2, customer = $3 WHERE seq = $1";
    struct cu_mon_parse_opts o;
    struct cu_mon_event *ev = cu_malloc(sizeof(*ev));
    struct cu_buf b;
    int64_t after = 0;
    size_t k;
    enum cu_err rc = CU_OK;

    if (ev == NULL)
        return CU_E_NOMEM;
    memset(&o, 0, sizeof(o));
    o.types = &m->types;
    cu_buf_init(&b, (size_t)CU_MON_EVENT_MAX * 2);
    /* each stored event keeps what the windows count by the customer (type, time, amount) and
     * loses where, on what and to whom: address, device, place, payee, fields, attributes */
    do {
        int64_t seqs[256];
        char *bodies[256];
        struct cu_stmt *st = NULL;
        bool row = false;
        const struct cu_val p[] = {CU_VT(key), CU_VI(after)};
        k = 0;
        rc = cu_db_query(db, rows_sql, p, CU_NVALS(p), &st);
        while (rc == CU_OK && k < 256 && (rc = cu_stmt_next(st, &row)) == CU_OK && row) {
            size_t n = 0;
            const char *t = cu_stmt_text(st, 1, &n);
            char err[CU_MON_ERR_BYTES];
            seqs[k] = after = cu_stmt_int(st, 0);
            bodies[k] = NULL;
            if (cu_mon_event_parse(t, n, &o, ev, err) != CU_OK) {
                /* one no longer readable (a custom type removed): nothing of it is kept */
                if ((bodies[k] = cu_strdup("{}")) == NULL)
                    rc = CU_E_NOMEM;
            } else {
                ev->has &= CU_EVF_AMOUNT | CU_EVF_CHANNEL;
                ev->nattrs = 0;
                ev->nfields = 0;
                snprintf(ev->customer, sizeof(ev->customer), "%s", id);
                cu_buf_reset(&b);
                if ((rc = cu_mon_event_write(ev, &m->types, &b)) == CU_OK &&
                    (bodies[k] = cu_strdup(cu_buf_cstr(&b))) == NULL)
                    rc = CU_E_NOMEM;
            }
            k++;
        }
        cu_stmt_done(st);
        for (size_t i = 0; i < k; i++) {
            if (rc == CU_OK && bodies[i] != NULL) {
                const struct cu_val q[] = {CU_VI(seqs[i]), CU_VT(bodies[i]), CU_VT(id)};
                rc = cu_db_exec(db, body_sql, q, CU_NVALS(q));
            }
            cu_free(bodies[i]);
        }
    } while (rc == CU_OK && k == 256);
    cu_buf_free(&b);
    sodium_memzero(ev, sizeof(*ev));
    cu_free(ev);
    return rc;
}

enum cu_err cu_monitor_forget(struct cu_monitor *m, struct cu_work *w, struct cu_db *db,
                              const char *customer, const char *ref)
{
    static const char comments_sql[] = "DELETE FROM alert_comments WHERE alert_id IN (SELECT id "
                                       "FROM alerts WHERE customer = $1)";
    static const char alerts_sql[] = "UPDATE alerts SET customer = $2 WHERE customer = $1";
    static const char snoozes_sql[] = "DELETE FROM monitor_snoozes WHERE customer = $1";
    /* every notice, whatever its state: none is sent, retried or replayed after the erasure
     * (a delivery in flight finds its row gone and records nothing) */
    static const char outbox_sql[] = "DELETE FROM notify_outbox WHERE customer = $1";
    const char *keys[2] = {customer, NULL};
    enum cu_err rc = CU_OK;

    if (customer == NULL)
        return CU_E_INVALID;
    if (ref != NULL && ref[0] && strcmp(ref, customer) != 0)
        keys[1] = ref;

    for (int i = 0; rc == CU_OK && i < 2; i++) {
        const struct cu_val c[] = {CU_VT(keys[i] ? keys[i] : ""), CU_VT(customer)};
        if (keys[i] == NULL)
            continue;
        rc = strip(m, db, keys[i], customer);
        /* staff's notes on its alerts, its snoozes' reasons, its notices */
        if (rc == CU_OK)
            rc = cu_db_exec(db, comments_sql, c, 1);
        if (rc == CU_OK && i == 1)
            rc = cu_db_exec(db, alerts_sql, c, 2);
        if (rc == CU_OK)
            rc = cu_db_exec(db, snoozes_sql, c, 1);
        if (rc == CU_OK)
            rc = cu_db_exec(db, outbox_sql, c, 1);
        if (rc == CU_OK)
            dirty_customer(m, keys[i]);
    }
    /* the snoozes in memory follow once the erasure is durable */
    return rc == CU_OK ? after(m, w, db) : rc;
}
