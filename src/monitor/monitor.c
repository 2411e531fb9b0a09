/*
 * monitor.c - the monitoring service of the server (monitor.h).
 */
#include "monitor/monitor.h"

#include <arpa/inet.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "base/clock.h"
#include "base/json.h"
#include "base/log.h"
#include "base/mem.h"
#include "crypto/crypto.h"
#include "access/policy.h"
#include "monitor/alerts.h"
#include "monitor/engine.h"
#include "monitor/monitor_int.h"

void cu_monitor_set_effects(struct cu_monitor *m, const struct cu_monitor_effects *fx)
{
    m->fx = *fx;
}

static enum cu_err add_types(struct cu_mon_types *t, const char *list, char err[CU_RULES_ERR_BYTES])
{
    char name[CU_MON_NAME_MAX + 2], why[CU_MON_ERR_BYTES];
    const char *p = list;

    while (p != NULL && *p) {
        size_t n = 0;
        while (*p == ' ')
            p++;
        while (p[n] && p[n] != ' ')
            n++;
        if (n == 0)
            break;
        if (n >= sizeof(name)) {
            snprintf(err, CU_RULES_ERR_BYTES, "event_types: a type is at most %d bytes",
                     CU_MON_NAME_MAX);
            return CU_E_INVALID;
        }
        memcpy(name, p, n);
        name[n] = '\0';
        if (cu_mon_types_add(t, name, why) != CU_OK) {
            snprintf(err, CU_RULES_ERR_BYTES, "event_types: %s", why);
            return CU_E_INVALID;
        }
        p += n;
    }
    return CU_OK;
}

enum cu_err cu_monitor_new(const struct cu_monitor_opts *opts, struct cu_monitor **out,
                           char err[CU_RULES_ERR_BYTES])
{
    struct cu_monitor *m = cu_calloc(1, sizeof(*m));
    enum cu_err rc = CU_E_NOMEM;

    *out = NULL;
    err[0] = '\0';
    if (m == NULL) {
        snprintf(err, CU_RULES_ERR_BYTES, "out of memory");
        return rc;
    }
    cu_mon_types_init(&m->types);
    pthread_mutex_init(&m->mu, NULL);
    m->future_ms = opts->future_ms;
    m->past_ms = opts->past_ms;
    m->pseudonym = opts->pseudonym;
    m->pseudonym_arg = opts->pseudonym_arg;
    m->audit_hash = opts->audit_hash ? opts->audit_hash : opts->pseudonym;
    m->audit_hash_arg = opts->audit_hash ? opts->audit_hash_arg : opts->pseudonym_arg;
    rc = add_types(&m->types, opts->types, err);
    if (rc == CU_OK)
        rc = cu_rules_load(opts->rules_path, &m->types, &m->rs, err);
    if (rc == CU_OK && opts->shadow_path != NULL)
        rc = cu_rules_load(opts->shadow_path, &m->types, &m->shadow, err);
    if (rc == CU_OK && (rc = cu_mon_engine_init(&m->eng, m->rs, m->shadow)) != CU_OK)
        snprintf(err, CU_RULES_ERR_BYTES, "out of memory");
    if (rc != CU_OK) {
        cu_monitor_free(m);
        return rc;
    }
    m->eng_ready = true;
    m->live_version = 0;
    m->shadow_version = m->shadow ? 0 : -1;
    cu_monitor_managed_update(m);
    {
        uint8_t raw[(CU_MONITOR_NODE_BYTES - 1) / 2];
        cu_crypto_random(raw, sizeof(raw));
        cu_hex_encode(raw, sizeof(raw), m->node);
    }
    atomic_init(&m->tail_seq, 0);
    atomic_init(&m->tail_fed, 0);
    atomic_init(&m->tail_lag_ms, 0);
    *out = m;
    return CU_OK;
}

const char *cu_monitor_node(const struct cu_monitor *m)
{
    return m->node;
}

int64_t cu_monitor_tail_seq(const struct cu_monitor *m)
{
    return atomic_load(&((struct cu_monitor *)m)->tail_seq);
}

enum cu_err cu_monitor_wake(struct cu_monitor *m, struct cu_db *db)
{
    enum cu_err rc;

    if (m->notified_db == db && m->notified_txn == cu_db_txn_id(db))
        return CU_OK;
    rc = cu_db_notify(db, CU_MONITOR_CHANNEL);
    if (rc == CU_OK) {
        m->notified_db = db;
        m->notified_txn = cu_db_txn_id(db);
    }
    return rc;
}

/* next_seq(db, out): the next event's seq, from monitor_head under its row lock (held until
 * the transaction ends: so seqs follow the commit order on every node, with no gaps). */
static enum cu_err next_seq(struct cu_db *db, int64_t *out)
{
    static const char sql[] = "SELECT seq FROM monitor_head WHERE id = 1 FOR UPDATE";
    static const char upd[] = "UPDATE monitor_head SET seq = $1 WHERE id = 1";
    struct cu_stmt *st = NULL;
    bool row = false;
    enum cu_err rc = cu_db_query(db, sql, NULL, 0, &st);
    if (rc == CU_OK)
        rc = cu_stmt_next(st, &row);
    if (rc == CU_OK && !row)
        rc = CU_E_CORRUPT;
    if (rc == CU_OK)
        *out = cu_stmt_int(st, 0) + 1;
    cu_stmt_done(st);
    if (rc == CU_OK) {
        const struct cu_val p[] = {CU_VI(*out)};
        rc = cu_db_exec(db, upd, p, CU_NVALS(p));
    }
    return rc;
}

void cu_monitor_free(struct cu_monitor *m)
{
    if (m == NULL)
        return;
    if (m->eng_ready)
        cu_mon_engine_fini(&m->eng);
    cu_rules_free(m->rs);
    cu_rules_free(m->shadow);
    cu_free(m->snoozes);
    pthread_mutex_destroy(&m->mu);
    cu_free(m);
}

const struct cu_mon_types *cu_monitor_types(const struct cu_monitor *m)
{
    return &m->types;
}

enum cu_err cu_monitor_check_time(const struct cu_monitor *m, const struct cu_mon_event *ev,
                                  int64_t now_ms, char err[CU_MON_ERR_BYTES])
{
    if (ev->time_ms > now_ms + m->future_ms) {
        snprintf(err, CU_MON_ERR_BYTES,
                 "field 'time' is more than %lld seconds ahead of the server's clock",
                 (long long)(m->future_ms / 1000));
        return CU_E_INVALID;
    }
    if (ev->time_ms < now_ms - m->past_ms) {
        snprintf(err, CU_MON_ERR_BYTES,
                 "field 'time' is more than %lld days in the past (older events go to "
                 "custodia rules test)",
                 (long long)(m->past_ms / 86400000));
        return CU_E_INVALID;
    }
    return CU_OK;
}

void cu_monitor_decision_clear(struct cu_monitor_decision *d)
{
    cu_free(d->verdict);
    cu_free(d->shadow_doc);
    cu_free(d->reads_doc);
    cu_free(d->event_doc);
    memset(d, 0, sizeof(*d));
}

/* pseudonymise(m, e): the state's key of e's address (key_ip) made its pseudonym, an address of
 * fd00::/8: one byte 0xfd, seven of a keyed hash of the network (the /24 of IPv4, the /64 of IPv6)
 * and eight of one of the address. Addresses of one network share the first half, so the windows by
 * network count on the pseudonyms as on the addresses. */
static void pseudonymise(const struct cu_monitor *m, struct cu_mon_event *e)
{
    uint8_t net[16], h[8], p[16];
    char hex[33];
    bool v4 = memcmp(e->ip_bin, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0;

    memset(net, 0, sizeof(net));
    memcpy(net, e->ip_bin, v4 ? 15 : 8);
    cu_hex_encode(net, sizeof(net), hex);
    m->pseudonym(m->pseudonym_arg, "ip_net", hex, h);
    p[0] = 0xfd;
    memcpy(p + 1, h, 7);
    cu_hex_encode(e->ip_bin, sizeof(e->ip_bin), hex);
    m->pseudonym(m->pseudonym_arg, "ip", hex, h);
    memcpy(p + 8, h, 8);
    memcpy(e->key_ip, p, sizeof(p));
    sodium_memzero(net, sizeof(net));
    sodium_memzero(hex, sizeof(hex));
}

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* A feature's value as a decision shows it: booleans as such, durations in seconds. */
static enum cu_err read_value(struct cu_buf *b, const struct cu_feature *f, double v)
{
    if (!isfinite(v))
        return cu_buf_append_str(b, "null");
    switch (f->kind) {
    case CU_FEAT_FIRST_SEEN:
        return cu_buf_append_str(b, v != 0 ? "true" : "false");
    case CU_FEAT_SINCE:
    case CU_FEAT_SINCE_FIELD:
    case CU_FEAT_AGE:
    case CU_FEAT_KNOWN_FOR:
        return cu_buf_printf(b, "%.3f", v / 1000.0);
    default: /* exact: integers as such, others to the last digit */
        if (v == trunc(v) && fabs(v) < 9007199254740992.0)
            return cu_buf_printf(b, "%lld", (long long)v);
        return cu_buf_printf(b, "%.17g", v);
    }
}

static enum cu_err reads_doc(const struct cu_ruleset *rs, const struct cu_reads *r,
                             struct cu_buf *b)
{
    const struct cu_feature *fs = NULL;
    enum cu_err rc = cu_buf_append_str(b, "{");

    (void)cu_rules_features(rs, &fs);
    for (size_t i = 0; rc == CU_OK && i < r->n; i++) {
        const char *t = cu_rules_feature_text(rs, r->feature[i]);
        if (i > 0)
            rc = cu_buf_append_str(b, ",");
        if (rc == CU_OK)
            rc = cu_json_escape(b, t, strlen(t));
        if (rc == CU_OK)
            rc = cu_buf_append_str(b, ":");
        if (rc == CU_OK)
            rc = r->missing[i] ? cu_buf_append_str(b, "null")
                               : read_value(b, &fs[r->feature[i]], r->value[i]);
    }
    if (rc == CU_OK)
        rc = cu_buf_append_str(b, "}");
    return rc;
}

/* Caps of a decision's texts, for the worst the compiler allows: every rule of a set firing
 * with a reason of CU_RULES_REASON_MAX bytes each escaped to 6, and CU_READS_MAX features. */
#define VERDICT_MAX ((size_t)CU_RULES_MAX * (CU_RULES_REASON_MAX * 6 + CU_MON_NAME_MAX + 64) + 1024)
#define AUDIT_RULES_MAX 64
#define READS_MAX ((size_t)CU_READS_MAX * (128 * 6 + 48) + 64)

/* record(m, w, ev, d): decides about ev and records it in the state, once: a run again keeps
 * what the first recorded, whatever became of the rest of that run. */
static void record(struct cu_monitor *m, struct cu_work *w, const struct cu_mon_event *ev,
                   struct cu_monitor_decision *d)
{
    struct cu_mon_event *e;
    uint8_t raw[8];
    struct cu_mon_state_stats ss;
    int64_t t0;

    d->pseudonymised = m->pseudonym != NULL && (ev->has & CU_EVF_IP);
    if ((e = cu_malloc(sizeof(*e))) == NULL)
        return;
    *e = *ev;
    if (d->pseudonymised) {
        pseudonymise(m, e);
        memcpy(d->key_ip, e->key_ip, sizeof(d->key_ip));
    }
    t0 = mono_us();
    struct cu_rule_mask skip, shadow_skip;
    const char *names[sizeof(d->snoozed) / sizeof(d->snoozed[0])];
    cu_monitor_snoozed(m, ev->customer, cu_work_context_of(w)->now_ms, &skip, &shadow_skip, names,
                       &d->nsnoozed, sizeof(names) / sizeof(names[0]));
    for (size_t i = 0; i < d->nsnoozed; i++)
        snprintf(d->snoozed[i], sizeof(d->snoozed[i]), "%s", names[i]);
    if (cu_mon_engine_decide_masked(&m->eng, e, &d->v, m->shadow ? &d->shadow : NULL, &d->reads,
                                    m->nsnoozes ? &skip : NULL,
                                    m->nsnoozes ? &shadow_skip : NULL) != CU_OK)
        atomic_fetch_add(&m->unrecorded, 1); /* the verdict stands; the state missed it */
    d->took_us = mono_us() - t0;
    sodium_memzero(e, sizeof(*e));
    cu_free(e);
    d->has_shadow = m->shadow != NULL;
    d->at = cu_work_context_of(w)->now_ms;
    cu_crypto_random(raw, sizeof(raw));
    memcpy(d->id, "dec_", 4);
    cu_hex_encode(raw, sizeof(raw), d->id + 4);
    d->recorded = true;
    atomic_fetch_add(&m->decided[d->v.decision], 1);
    atomic_fetch_add(&m->rule_errors, d->v.nerrors);
    atomic_fetch_add(&m->decide_us_sum, (unsigned long long)d->took_us);
    if (d->has_shadow && d->shadow.decision != d->v.decision)
        atomic_fetch_add(&m->shadow_differs, 1);
    /* the state's figures, read here on its own thread for /metrics */
    cu_mon_state_stats(m->eng.st, &ss);
    atomic_store(&m->state_bytes, ss.bytes);
    atomic_store(&m->state_dropped, ss.dropped);
    size_t keys = 0;
    for (int k = 0; k < CU_KEY_COUNT; k++)
        keys += ss.keys[k];
    atomic_store(&m->state_keys, keys);
}

/* The actions that act on the customer (the rest are the decision itself, and alerts). */
#define EFFECTS                                                                                    \
    (CU_ACT_FREEZE_ACCOUNT | CU_ACT_LOCK_LOGIN | CU_ACT_REVOKE_SESSIONS | CU_ACT_NOTIFY_CUSTOMER)

static int64_t after_ms(int64_t now, int64_t ms)
{
    return ms > INT64_MAX - now ? INT64_MAX : now + ms;
}

/* apply(m, w, db, ev, type, d, handled): the decision's actions on the customer, in w (each
 * run of the unit again: its changes went with the savepoint), except those in handled, which
 * the caller applies (and notes in d->fx). Only a vault customer is acted on. */
static enum cu_err apply(struct cu_monitor *m, struct cu_work *w, struct cu_db *db,
                         const struct cu_mon_event *ev, const char *type,
                         struct cu_monitor_decision *d, unsigned handled)
{
    const struct cu_monitor_effects *fx = &m->fx;
    unsigned todo = d->v.actions & EFFECTS & ~handled;
    int64_t now = cu_work_context_of(w)->now_ms;
    char reason[CU_DECISION_ID_BYTES + 32];
    enum cu_err rc = CU_OK;

    d->fx.frozen_until = d->fx.frozen = 0;
    d->fx.revoked = -1;
    d->fx.notified = false;
    d->fx.unapplied = 0;
    d->fx.locked_until = (handled & d->v.actions & CU_ACT_LOCK_LOGIN)
                             ? after_ms(now, d->v.lock_ms) /* the caller locks */
                             : 0;
    d->fx.customer = (d->v.actions & EFFECTS) && fx->is_customer != NULL &&
                     fx->is_customer(fx->arg, db, ev->customer);
    if (todo == 0 || !d->fx.customer)
        return CU_OK;
    snprintf(reason, sizeof(reason), CU_LEDGER_MONITOR_FREEZE, d->id);
    /* a freeze and an end of sessions are audited: each needs a record of the unit's, and one
     * stays for the unit's own; a unit without room (a batch freezing many customers) does not
     * apply them, and says so (the ledger then refuses the transfer) */
    if ((todo & CU_ACT_FREEZE_ACCOUNT) && fx->freeze != NULL && cu_work_audit_room(w) < 2)
        d->fx.unapplied |= CU_ACT_FREEZE_ACCOUNT;
    else if ((todo & CU_ACT_FREEZE_ACCOUNT) && fx->freeze != NULL) {
        int64_t until = after_ms(now, d->v.freeze_ms);
        rc = fx->freeze(fx->arg, w, db, ev->customer, reason, until, &d->fx.frozen);
        if (rc == CU_OK)
            d->fx.frozen_until = until;
    }
    if (rc == CU_OK && (todo & CU_ACT_LOCK_LOGIN) && fx->lock != NULL) {
        int64_t until = after_ms(now, d->v.lock_ms);
        if ((rc = fx->lock(fx->arg, w, db, ev->customer, until)) == CU_OK)
            d->fx.locked_until = until;
    }
    if (rc == CU_OK && (todo & CU_ACT_REVOKE_SESSIONS) && fx->revoke != NULL &&
        cu_work_audit_room(w) < 2)
        d->fx.unapplied |= CU_ACT_REVOKE_SESSIONS;
    else if (rc == CU_OK && (todo & CU_ACT_REVOKE_SESSIONS) && fx->revoke != NULL)
        rc = fx->revoke(fx->arg, w, db, ev->customer, &d->fx.revoked);
    /* the notices the rules named (security_notice when none was) */
    unsigned want = (todo & CU_ACT_NOTIFY_CUSTOMER) && fx->notify != NULL
                        ? (d->v.notify_templates ? d->v.notify_templates : 1u)
                        : 0;
    for (unsigned i = 0; rc == CU_OK && i < CU_RULES_NOTIFY_TEMPLATES; i++) {
        struct cu_monitor_notice nt = {
            cu_rules_notify_template(i), d->id, type, ev, d->fx.frozen, NULL, NULL, NULL};
        if ((want & (1u << i)) && (rc = fx->notify(fx->arg, w, db, ev->customer, &nt)) == CU_OK)
            d->fx.notified = true;
    }
    return rc;
}

/* applied_doc(d, b): what the actions did, as the member "applied" of the verdict. */
static enum cu_err applied_doc(const struct cu_monitor_decision *d, struct cu_buf *b)
{
    enum cu_err rc;
    bool first = true;

    if (!(d->v.actions & EFFECTS))
        return CU_OK;
    if (!d->fx.customer)
        return cu_buf_append_str(b, ",\"applied\":{\"skipped\":\"the event's customer is not a "
                                    "customer of the vault: nothing was done to it\"}");
    rc = cu_buf_append_str(b, ",\"applied\":{");
    if (rc == CU_OK && d->fx.frozen_until) {
        rc = cu_buf_printf(b, "\"freeze_account\":{\"accounts\":%lld", (long long)d->fx.frozen);
        if (rc == CU_OK)
            rc = cu_json_put_time(b, "until", d->fx.frozen_until);
        if (rc == CU_OK)
            rc = cu_buf_append_str(b, "}");
        first = false;
    }
    if (rc == CU_OK && d->fx.locked_until) {
        rc = cu_buf_printf(b, "%s\"lock_login\":{\"locked\":true", first ? "" : ",");
        if (rc == CU_OK)
            rc = cu_json_put_time(b, "until", d->fx.locked_until);
        if (rc == CU_OK)
            rc = cu_buf_append_str(b, "}");
        first = false;
    }
    if (rc == CU_OK && d->fx.revoked >= 0) {
        rc = cu_buf_printf(b, "%s\"revoke_sessions\":{\"sessions\":%lld}", first ? "" : ",",
                           (long long)d->fx.revoked);
        first = false;
    }
    if (rc == CU_OK && d->fx.notified) {
        rc = cu_buf_printf(b, "%s\"notify_customer\":{\"queued\":true}", first ? "" : ",");
        first = false;
    }
    if (rc == CU_OK && d->fx.unapplied)
        rc = cu_buf_printf(b, "%s\"unapplied\":[%s%s%s]", first ? "" : ",",
                           (d->fx.unapplied & CU_ACT_FREEZE_ACCOUNT) ? "\"freeze_account\"" : "",
                           (d->fx.unapplied & CU_ACT_FREEZE_ACCOUNT) &&
                                   (d->fx.unapplied & CU_ACT_REVOKE_SESSIONS)
                               ? ","
                               : "",
                           (d->fx.unapplied & CU_ACT_REVOKE_SESSIONS) ? "\"revoke_sessions\"" : "");
    if (rc == CU_OK)
        rc = cu_buf_append_str(b, "}");
    return rc;
}

static enum cu_err steal_into(struct cu_buf *b, enum cu_err rc, char **out)
{
    if (rc == CU_OK && (*out = cu_buf_steal(b)) == NULL)
        rc = CU_E_NOMEM;
    cu_buf_free(b);
    return rc;
}

/* documents(m, ev, d): the decision's texts (the verdict, the shadow's, what the rules read,
 * the event as stored), made again by a run that finds them missing. */
static enum cu_err documents(struct cu_monitor *m, const struct cu_mon_event *ev,
                             struct cu_monitor_decision *d)
{
    struct cu_mon_event *e;
    struct cu_buf b;
    enum cu_err rc;

    cu_free(d->verdict);
    cu_free(d->shadow_doc);
    cu_free(d->reads_doc);
    cu_free(d->event_doc);
    d->verdict = d->shadow_doc = d->reads_doc = d->event_doc = NULL;
    cu_buf_init(&b, VERDICT_MAX);
    rc = cu_mon_verdict_json(m->rs, &d->v, &b);
    if (rc == CU_OK)
        rc = applied_doc(d, &b);
    for (size_t i = 0; rc == CU_OK && i < d->nsnoozed; i++) {
        rc = cu_buf_append_str(&b, i ? "," : ",\"snoozed\":[");
        if (rc == CU_OK)
            rc = cu_json_escape(&b, d->snoozed[i], strlen(d->snoozed[i]));
        if (rc == CU_OK && i + 1 == d->nsnoozed)
            rc = cu_buf_append_str(&b, "]");
    }
    rc = steal_into(&b, rc, &d->verdict);
    if (rc == CU_OK && d->has_shadow) {
        cu_buf_init(&b, VERDICT_MAX + 2);
        rc = cu_buf_append_str(&b, "{");
        if (rc == CU_OK)
            rc = cu_mon_verdict_json(m->shadow, &d->shadow, &b);
        if (rc == CU_OK)
            rc = cu_buf_append_str(&b, "}");
        rc = steal_into(&b, rc, &d->shadow_doc);
    }
    if (rc == CU_OK) {
        cu_buf_init(&b, READS_MAX);
        rc = steal_into(&b, reads_doc(m->rs, &d->reads, &b), &d->reads_doc);
    }
    if (rc != CU_OK)
        return rc;
    if ((e = cu_malloc(sizeof(*e))) == NULL)
        return CU_E_NOMEM;
    *e = *ev;
    e->has &= ~(unsigned)CU_EVF_LABEL; /* a replay file's label is not stored */
    if (d->pseudonymised) {
        /* stored with the pseudonym in place of the address */
        memcpy(e->ip_bin, d->key_ip, sizeof(e->ip_bin));
        memcpy(e->key_ip, d->key_ip, sizeof(e->key_ip));
        if (inet_ntop(AF_INET6, d->key_ip, e->ip, sizeof(e->ip)) == NULL)
            rc = CU_E_INTERNAL;
    }
    if (rc == CU_OK) {
        cu_buf_init(&b, (size_t)CU_MON_EVENT_MAX * 2);
        rc = steal_into(&b, cu_mon_event_write(e, &m->types, &b), &d->event_doc);
    }
    sodium_memzero(e, sizeof(*e));
    cu_free(e);
    if (rc == CU_OK)
        d->decided = true;
    return rc;
}

/* decide(m, w, db, ev, source, d, audit): cu_monitor_decide; audit: with the decision's own
 * audit record (a movement's decisions are covered by the movement's record instead: a batch
 * of 1,000 transfers would need 1,000). The event and its decision are one row: each event
 * has one decision, and a movement's thousand cost a thousand inserts, not two. */
static enum cu_err decide(struct cu_monitor *m, struct cu_work *w, struct cu_db *db,
                          const struct cu_mon_event *ev, const char *source,
                          struct cu_monitor_decision *d, bool audit, unsigned handled)
{
    static const char sql[] =
        "INSERT INTO monitor_events (at, type, customer, body, decision_id, decided_at, source, "
        "decision, score, verdict, reads, shadow, took_us, request_id, seq, node) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)";
    const char *type =
        ev->type >= 0 && (size_t)ev->type < m->types.n ? m->types.name[ev->type] : "?";
    const struct cu_work_ctx *ctx = cu_work_context_of(w);
    char target[CU_DECISION_ID_BYTES + 16];
    json_t *rules, *details;
    enum cu_err rc;

    if (!d->recorded)
        record(m, w, ev, d);
    if (!d->recorded)
        return CU_E_NOMEM;
    if ((rc = apply(m, w, db, ev, type, d, handled)) != CU_OK)
        return rc; /* a freeze that fails fails the event with it */
    if ((!d->decided || (d->v.actions & EFFECTS)) && (rc = documents(m, ev, d)) != CU_OK)
        return rc;
    int64_t seq = 0;
    if ((rc = next_seq(db, &seq)) == CU_OK) {
        const struct cu_val p[] = {
            CU_VI(ev->time_ms),  CU_VT(type),
            CU_VT(ev->customer), CU_VT(d->event_doc),
            CU_VT(d->id),        CU_VI(d->at),
            CU_VT(source),       CU_VT(cu_decision_name(d->v.decision)),
            CU_VI(d->v.score),   CU_VT(d->verdict),
            CU_VT(d->reads_doc), d->shadow_doc ? CU_VT(d->shadow_doc) : CU_VNULL,
            CU_VI(d->took_us),   CU_VT(ctx->request_id),
            CU_VI(seq),          CU_VT(m->node)};
        /* not INSERT ... RETURNING: SQLite runs that with a statement journal, whose release
         * cost grows with the transaction (a third of a batch's time, measured) */
        rc = cu_db_exec(db, sql, p, CU_NVALS(p));
    }
    /* the other nodes' tails read it once it commits (a unit that fails takes its
     * notification with it; their next look finds what a later unit committed) */
    if (rc == CU_OK)
        rc = cu_monitor_wake(m, db);
    if (rc == CU_OK && (d->v.actions & CU_ACT_ALERT)) {
        /* the alert, in the same unit as its decision */
        char names[CU_ALERT_RULES_MAX + 1];
        size_t k = 0;
        names[0] = '\0';
        for (size_t i = 0; i < d->v.nfired && k < CU_ALERT_RULES_MAX; i++) {
            int n = snprintf(names + k, sizeof(names) - k, "%s%s", i ? " " : "",
                             cu_rules_name(m->rs, d->v.fired[i].rule));
            k = n < 0 ? k : k + (size_t)n;
        }
        rc =
            cu_alert_open(db, w, d->id, ev->customer, type, cu_severity_name(d->v.severity), names);
        /* and its case (with the case's playbooks), in the same unit */
        if (rc == CU_OK && m->fx.alert != NULL) {
            char alert[CU_ALERT_ID_BYTES], ip[48] = "";
            snprintf(alert, sizeof(alert), "alr_%s", d->id + 4);
            if (d->pseudonymised)
                inet_ntop(AF_INET6, d->key_ip, ip, sizeof(ip));
            else if (ev->has & CU_EVF_IP)
                snprintf(ip, sizeof(ip), "%s", ev->ip);
            const struct cu_monitor_alert info = {
                alert, d->id, type, cu_severity_name(d->v.severity), names, ev, ip, d->fx.frozen};
            rc = m->fx.alert(m->fx.arg, w, db, &info);
        }
        /* the on-call staff told of a high or critical one, in the same unit: naming the
         * rule whose alert is the strongest, and at most once a minute for each rule (a
         * burst of a thousand such decisions is one page; the alerts queue has them all) */
        size_t top = SIZE_MAX;
        for (size_t i = 0; i < d->v.nfired; i++) {
            int s = cu_rules_alert_of(m->rs, d->v.fired[i].rule);
            if (s >= 0 && (top == SIZE_MAX || s > cu_rules_alert_of(m->rs, d->v.fired[top].rule)))
                top = i;
        }
        int64_t now = cu_work_context_of(w)->now_ms;
        size_t slot = top == SIZE_MAX ? 0 : d->v.fired[top].rule % CU_MONITOR_STAFF_SLOTS;
        if (rc == CU_OK && d->v.severity >= CU_SEV_HIGH && m->fx.notify != NULL &&
            top != SIZE_MAX && (now - m->staff_told[slot] >= 60000 || now < m->staff_told[slot])) {
            char alert[CU_ALERT_ID_BYTES];
            snprintf(alert, sizeof(alert), "alr_%s", d->id + 4);
            struct cu_monitor_notice nt = {"staff_alert",
                                           d->id,
                                           type,
                                           ev,
                                           0,
                                           alert,
                                           cu_severity_name(d->v.severity),
                                           cu_rules_name(m->rs, d->v.fired[top].rule)};
            rc = m->fx.notify(m->fx.arg, w, db, "", &nt);
            if (rc == CU_OK)
                m->staff_told[slot] = now;
        }
    }
    if (rc == CU_E_EXISTS) { /* an id drawn twice: run again with another */
        uint8_t raw[8];
        cu_crypto_random(raw, sizeof(raw));
        cu_hex_encode(raw, sizeof(raw), d->id + 4);
        return CU_E_BUSY;
    }
    if (rc != CU_OK || !audit)
        return rc;
    if ((rules = json_array()) == NULL)
        return CU_E_NOMEM;
    /* the first AUDIT_RULES_MAX names (the record's details are bounded), and how many fired */
    for (size_t i = 0; i < d->v.nfired && i < AUDIT_RULES_MAX; i++)
        if (json_array_append_new(rules, json_string(cu_rules_name(m->rs, d->v.fired[i].rule))) !=
            0) {
            json_decref(rules);
            return CU_E_NOMEM;
        }
    snprintf(target, sizeof(target), "decision:%s", d->id);
    /* no customer reference, address or device: those stay in the decision, for readers of
     * decisions; the audit record says what was decided and where to find it */
    details = json_pack("{s:s, s:s, s:s, s:i, s:o, s:I}", "source", source, "type", type,
                        "decision", cu_decision_name(d->v.decision), "score", d->v.score, "rules",
                        rules, "rules_fired", (json_int_t)d->v.nfired);
    if (details == NULL)
        return CU_E_NOMEM;
    return cu_work_audit(w, "monitor.decide", target, "success", details);
}

enum cu_err cu_monitor_decide(struct cu_monitor *m, struct cu_work *w, struct cu_db *db,
                              const struct cu_mon_event *ev, const char *source,
                              struct cu_monitor_decision *d)
{
    return decide(m, w, db, ev, source, d, true, 0);
}

/* memo_decision(memo, local): the decision kept in *memo (made there when missing), or local
 * when there is no slot. NULL when out of memory. */
static struct cu_monitor_decision *memo_decision(void **memo, struct cu_monitor_decision *local)
{
    struct cu_monitor_decision *d = memo ? *memo : NULL;
    if (d != NULL)
        return d;
    if (memo == NULL) {
        memset(local, 0, sizeof(*local));
        return local;
    }
    if ((d = cu_calloc(1, sizeof(*d))) != NULL)
        *memo = d;
    return d;
}

/* set_origin(ev, ip, device): the address and the device an event came from, each when given
 * and well formed. */
static void set_origin(struct cu_mon_event *ev, const char *ip, const char *device)
{
    struct cu_ip a;
    if (ip != NULL && cu_ip_parse(ip, &a) == CU_OK) {
        snprintf(ev->ip, sizeof(ev->ip), "%.47s", ip); /* parsed: it fits */
        memcpy(ev->ip_bin, a.b, sizeof(ev->ip_bin));
        memcpy(ev->key_ip, a.b, sizeof(ev->key_ip));
        ev->has |= CU_EVF_IP;
    }
    if (device != NULL && strlen(device) <= CU_MON_REF_MAX &&
        cu_mon_ref_ok(device, strlen(device))) {
        snprintf(ev->device, sizeof(ev->device), "%s", device);
        ev->has |= CU_EVF_DEVICE;
    }
}

/* ---- the ledger's hook ---- */

/* ledger_event(m, ask, ev): the monitoring event of a transfer the ledger asks about. */
static void ledger_event(const struct cu_monitor *m, const struct cu_ledger_ask *ask,
                         const char *customer, struct cu_mon_event *ev)
{
    const struct cu_work_ctx *ctx = cu_work_context_of(ask->w);
    const struct cu_ledger_op *op = ask->op;
    bool session = strcmp(ctx->actor_type, "customer") == 0;

    (void)m;
    memset(ev, 0, sizeof(*ev));
    ev->type = strcmp(ask->debit->purpose, "cash_in") == 0     ? CU_EV_DEPOSIT
               : strcmp(ask->credit->purpose, "cash_out") == 0 ? CU_EV_WITHDRAWAL
                                                               : CU_EV_TRANSFER;
    ev->time_ms = ctx->now_ms;
    snprintf(ev->customer, sizeof(ev->customer), "%s", customer);
    /* the address and device of the customer's own session; an API key's or a staff member's
     * are theirs, not the customer's, and would put every customer in one window */
    if (session)
        set_origin(ev, ctx->source_ip, ctx->device_id);
    ev->amount = op->amount;
    snprintf(ev->currency, sizeof(ev->currency), "%s", op->currency ? op->currency : "");
    ev->has |= CU_EVF_AMOUNT;
    if (ev->type == CU_EV_TRANSFER) {
        snprintf(ev->payee, sizeof(ev->payee), "%s", ask->credit->id);
        ev->has |= CU_EVF_PAYEE;
    }
    snprintf(ev->channel, sizeof(ev->channel), "%s",
             ask->actor && ask->actor->channel ? ask->actor->channel : "system");
    ev->has |= CU_EVF_CHANNEL;
    if (op->code != NULL && strlen(op->code) <= CU_MON_ATTR_VALUE_MAX) {
        snprintf(ev->attrs[0].key, sizeof(ev->attrs[0].key), "code");
        snprintf(ev->attrs[0].value, sizeof(ev->attrs[0].value), "%s", op->code);
        ev->nattrs = 1;
    }
}

/* ledger_verdict(d, ask): what the ledger does with a decision. A step-up is asked of a
 * customer's own session below aal2; a session at aal2 has shown its second factor; a key or
 * a staff member cannot step up for the customer, so the transfer is held for review. */
static enum cu_ledger_verdict ledger_verdict(const struct cu_monitor_decision *d,
                                             const struct cu_ledger_ask *ask)
{
    const struct cu_work_ctx *ctx = cu_work_context_of(ask->w);
    switch (d->v.decision) {
    case CU_DEC_DENY:
        return CU_LEDGER_DENY;
    case CU_DEC_HOLD:
        return CU_LEDGER_HOLD;
    case CU_DEC_STEP_UP:
        if (strcmp(ctx->actor_type, "customer") != 0)
            return CU_LEDGER_HOLD;
        return ctx->aal >= 2 ? CU_LEDGER_LET : CU_LEDGER_STEP_UP;
    case CU_DEC_ALLOW:
    case CU_DEC_REVIEW:
        break;
    }
    return CU_LEDGER_LET;
}

static void ledger_reasons(const struct cu_monitor *m, const struct cu_monitor_decision *d,
                           char out[CU_LEDGER_REASONS_MAX + 1])
{
    size_t n = (size_t)snprintf(out, CU_LEDGER_REASONS_MAX + 1, "%s", d->id);
    for (size_t i = 0; i < d->v.nfired && n < CU_LEDGER_REASONS_MAX; i++)
        n += (size_t)snprintf(out + n, CU_LEDGER_REASONS_MAX + 1 - n, "%s %s", i ? "," : ":",
                              cu_rules_name(m->rs, d->v.fired[i].rule));
}

static enum cu_err ledger_decide(void *arg, struct cu_db *db, const struct cu_ledger_ask *ask,
                                 struct cu_ledger_hook_out *out)
{
    struct cu_monitor *m = arg;
    struct cu_monitor_decision *d, local;
    const char *customer = ask->debit->customer[0] ? ask->debit->customer : ask->credit->customer;
    struct cu_mon_event *ev;
    enum cu_err rc;

    out->verdict = CU_LEDGER_LET;
    if (customer[0] == '\0')
        return CU_OK; /* between the company's own accounts: no customer to watch */
    if ((d = memo_decision(ask->op->hook_memo, &local)) == NULL)
        return CU_E_NOMEM;
    if ((ev = cu_malloc(sizeof(*ev))) == NULL) {
        rc = CU_E_NOMEM;
    } else {
        ledger_event(m, ask, customer, ev);
        rc = decide(m, ask->w, db, ev, "ledger", d, false, 0);
        cu_free(ev);
    }
    if (rc == CU_OK) {
        out->verdict = ledger_verdict(d, ask);
        /* a freeze or an end of sessions the unit had no room to apply: the transfer is
         * refused instead */
        if (d->fx.unapplied & (CU_ACT_FREEZE_ACCOUNT | CU_ACT_REVOKE_SESSIONS))
            out->verdict = CU_LEDGER_DENY;
        out->frozen_until = d->fx.frozen_until;
        snprintf(out->decision, sizeof(out->decision), "%s", d->id);
        if (out->verdict != CU_LEDGER_LET || d->v.nfired > 0)
            ledger_reasons(m, d, out->reasons);
    }
    if (d == &local)
        cu_monitor_decision_clear(&local);
    return rc;
}

static void memo_free(void *memo)
{
    cu_monitor_decision_clear(memo);
    cu_free(memo);
}

struct cu_ledger_hook cu_monitor_ledger_hook(struct cu_monitor *m)
{
    struct cu_ledger_hook h = {ledger_decide, m, memo_free};
    return h;
}

/* ---- the sign-in hook ---- */

static enum cu_err signin_decide(void *arg, struct cu_work *w, struct cu_db *db,
                                 const struct cu_signin_event *sev, struct cu_signin_out *out)
{
    struct cu_monitor *m = arg;
    const struct cu_work_ctx *ctx = cu_work_context_of(w);
    const char *who = sev->id ? sev->id : sev->subject;
    struct cu_monitor_decision local, *d;
    struct cu_mon_event *ev;
    int type = cu_mon_types_find(&m->types, sev->type);
    enum cu_err rc;

    if (type < 0 || who == NULL || strlen(who) > CU_MON_REF_MAX || !cu_mon_ref_ok(who, strlen(who)))
        return CU_OK; /* not a step monitoring knows, or no key for it */
    if ((d = memo_decision(sev->memo, &local)) == NULL ||
        (ev = cu_calloc(1, sizeof(*ev))) == NULL) {
        if (d == &local)
            cu_monitor_decision_clear(&local);
        return CU_E_NOMEM;
    }
    ev->type = type;
    ev->time_ms = ctx->now_ms;
    snprintf(ev->customer, sizeof(ev->customer), "%s", who);
    if (sev->ctx)
        set_origin(ev, sev->ctx->raw_ip, sev->ctx->device_id);
    snprintf(ev->channel, sizeof(ev->channel), "signin");
    ev->has |= CU_EVF_CHANNEL;
    rc = decide(m, w, db, ev, "signin", d, false, CU_ACT_LOCK_LOGIN);
    sodium_memzero(ev, sizeof(*ev));
    cu_free(ev);
    if (rc == CU_OK) {
        snprintf(out->decision, sizeof(out->decision), "%s", d->id);
        out->verdict = d->v.decision == CU_DEC_DENY ? CU_SIGNIN_DENY
                       : d->v.decision == CU_DEC_HOLD || d->v.decision == CU_DEC_STEP_UP
                           ? CU_SIGNIN_MFA
                           : CU_SIGNIN_LET;
        out->lock_ms = (d->v.actions & CU_ACT_LOCK_LOGIN) ? d->v.lock_ms : 0;
    }
    if (d == &local)
        cu_monitor_decision_clear(&local);
    return rc;
}

enum cu_err cu_monitor_note(struct cu_monitor *m, struct cu_work *w, struct cu_db *db,
                            const char *type, const char *customer, const char *const *fields,
                            size_t n, void **memo, enum cu_decision *decision,
                            char id[CU_DECISION_ID_BYTES])
{
    const struct cu_work_ctx *ctx = cu_work_context_of(w);
    bool own = strcmp(ctx->actor_type, "customer") == 0;
    struct cu_monitor_decision local, *d;
    struct cu_mon_event *ev;
    int t = cu_mon_types_find(&m->types, type);
    enum cu_err rc;

    if (decision)
        *decision = CU_DEC_ALLOW;
    if (id)
        id[0] = '\0';
    if (t < 0 || strlen(customer) > CU_MON_REF_MAX || !cu_mon_ref_ok(customer, strlen(customer)))
        return CU_E_INVALID;
    if ((d = memo_decision(memo, &local)) == NULL || (ev = cu_calloc(1, sizeof(*ev))) == NULL) {
        if (d == &local)
            cu_monitor_decision_clear(&local);
        return CU_E_NOMEM;
    }
    ev->type = t;
    ev->time_ms = ctx->now_ms;
    snprintf(ev->customer, sizeof(ev->customer), "%s", customer);
    for (size_t i = 0; i < n && ev->nfields < CU_MON_FIELDS_MAX; i++)
        if (strlen(fields[i]) <= CU_MON_NAME_MAX)
            snprintf(ev->fields[ev->nfields++], sizeof(ev->fields[0]), "%s", fields[i]);
    /* the customer's own session's address and device; a staff member's or a key's are not
     * the customer's */
    if (own)
        set_origin(ev, ctx->source_ip, ctx->device_id);
    snprintf(ev->channel, sizeof(ev->channel), "%s", own ? "session" : "api");
    ev->has |= CU_EVF_CHANNEL;
    rc = decide(m, w, db, ev, "profile", d, false, 0);
    sodium_memzero(ev, sizeof(*ev));
    cu_free(ev);
    if (rc == CU_OK && decision)
        *decision = d->v.decision;
    if (rc == CU_OK && id)
        snprintf(id, CU_DECISION_ID_BYTES, "%s", d->id);
    if (d == &local)
        cu_monitor_decision_clear(&local);
    return rc;
}

void cu_monitor_memo_free(void *memo)
{
    if (memo != NULL)
        memo_free(memo);
}

struct cu_identity_hook cu_monitor_signin_hook(struct cu_monitor *m)
{
    struct cu_identity_hook h = {signin_decide, m, memo_free};
    return h;
}

enum cu_err cu_monitor_answer(const struct cu_monitor_decision *d, struct cu_buf *out)
{
    enum cu_err rc = cu_buf_append_str(out, "{\"id\":");
    if (rc == CU_OK)
        rc = cu_json_escape(out, d->id, strlen(d->id));
    if (rc == CU_OK)
        rc = cu_buf_printf(out, ",%s,\"took_us\":%lld}", d->verdict, (long long)d->took_us);
    return rc;
}

static enum cu_err put_raw(struct cu_buf *b, const char *key, struct cu_stmt *st, int col)
{
    size_t n = 0;
    const char *s;
    enum cu_err rc;
    if (cu_stmt_null(st, col))
        return CU_OK;
    s = cu_stmt_text(st, col, &n);
    rc = cu_buf_printf(b, ",\"%s\":", key);
    if (rc == CU_OK)
        rc = cu_buf_append(b, s, n);
    return rc;
}

enum cu_err cu_monitor_decision_get(struct cu_db *db, const char *id, struct cu_buf *out)
{
    static const char sql[] =
        "SELECT decided_at, source, customer, type, verdict, reads, shadow, took_us, seq, body "
        "FROM monitor_events WHERE decision_id = $1";
    const struct cu_val p[] = {CU_VT(id)};
    struct cu_stmt *st = NULL;
    bool row = false;
    size_t n = 0;
    const char *s;
    char buf[CU_MON_REF_MAX + 1];
    enum cu_err rc = cu_db_query(db, sql, p, 1, &st);

    if (rc == CU_OK)
        rc = cu_stmt_next(st, &row);
    if (rc == CU_OK && !row)
        rc = CU_E_NOT_FOUND;
    if (rc == CU_OK)
        rc = cu_buf_append_str(out, "{\"id\":");
    if (rc == CU_OK)
        rc = cu_json_escape(out, id, strlen(id));
    if (rc == CU_OK)
        rc = cu_json_put_time(out, "time", cu_stmt_int(st, 0));
    for (int col = 1; rc == CU_OK && col <= 3; col++) {
        static const char *const names[] = {NULL, "source", "customer", "type"};
        s = cu_stmt_text(st, col, &n);
        snprintf(buf, sizeof(buf), "%.*s", (int)n, s);
        rc = cu_json_put_string(out, names[col], buf);
    }
    if (rc == CU_OK) {
        s = cu_stmt_text(st, 4, &n);
        rc = cu_buf_append_str(out, ",");
        if (rc == CU_OK)
            rc = cu_buf_append(out, s, n);
    }
    if (rc == CU_OK)
        rc = put_raw(out, "reads", st, 5);
    if (rc == CU_OK)
        rc = put_raw(out, "shadow", st, 6);
    if (rc == CU_OK)
        rc = cu_buf_printf(out, ",\"took_us\":%lld,\"event_seq\":%lld",
                           (long long)cu_stmt_int(st, 7), (long long)cu_stmt_int(st, 8));
    if (rc == CU_OK)
        rc = put_raw(out, "event", st, 9);
    if (rc == CU_OK)
        rc = cu_buf_append_str(out, "}");
    cu_stmt_done(st);
    return rc;
}

void cu_monitor_stats(const struct cu_monitor *m, struct cu_monitor_stats *out)
{
    for (int i = 0; i < 5; i++)
        out->decided[i] = atomic_load(&m->decided[i]);
    out->shadow_differs = atomic_load(&m->shadow_differs);
    out->rule_errors = atomic_load(&m->rule_errors);
    out->unrecorded = atomic_load(&m->unrecorded);
    out->decide_us_sum = atomic_load(&m->decide_us_sum);
    out->state_bytes = atomic_load(&m->state_bytes);
    out->state_keys = atomic_load(&m->state_keys);
    out->state_dropped = atomic_load(&m->state_dropped);
}

/* feed(m, st, db, after_seq, since_ms, out, last_seq): the stored events after seq after_seq
 * and of times since since_ms, in the order decided, recorded in st; last_seq gets the last
 * one's seq (after_seq when none). */
static enum cu_err feed(const struct cu_monitor *m, struct cu_mon_state *st, struct cu_db *db,
                        int64_t after_seq, int64_t since_ms, struct cu_monitor_rebuilt *out,
                        int64_t *last_seq)
{
    static const char sql[] =
        "SELECT seq, body FROM monitor_events WHERE seq > $1 AND at >= $2 ORDER BY seq";
    const struct cu_val p[] = {CU_VI(after_seq), CU_VI(since_ms)};
    struct cu_mon_parse_opts o;
    struct cu_mon_event *ev = cu_malloc(sizeof(*ev));
    struct cu_stmt *st_ = NULL;
    char err[CU_MON_ERR_BYTES];
    bool row = false;
    enum cu_err rc;

    *last_seq = after_seq;
    if (ev == NULL)
        return CU_E_NOMEM;
    memset(&o, 0, sizeof(o));
    o.types = &m->types;
    rc = cu_db_query(db, sql, p, CU_NVALS(p), &st_);
    while (rc == CU_OK && (rc = cu_stmt_next(st_, &row)) == CU_OK && row) {
        size_t n = 0;
        const char *body = cu_stmt_text(st_, 1, &n);
        *last_seq = cu_stmt_int(st_, 0);
        /* a stored event is one the parser wrote; one it cannot read again (a custom type
         * since removed from [monitor] event_types) is skipped and counted */
        if (cu_mon_event_parse(body, n, &o, ev, err) != CU_OK) {
            out->skipped++;
            continue;
        }
        if (cu_mon_state_add(st, ev) != CU_OK)
            out->unrecorded++;
        out->events++;
    }
    cu_stmt_done(st_);
    sodium_memzero(ev, sizeof(*ev));
    cu_free(ev);
    return rc;
}

/* ---- changing the rule sets in force ---- */

struct cu_monitor_swap {
    struct cu_ruleset *rs, *shadow; /* the sets to be in force */
    bool own_rs, own_shadow;        /* made here (freed here until swapped in) */
    int64_t live_version, shadow_version;
    struct cu_mon_engine eng;
    bool eng_ready, done;
    int64_t last_seq;
    uint64_t gen; /* the sets' generation it was prepared against */
    struct cu_monitor_rebuilt fed;
};

static enum cu_err compile_version(const struct cu_monitor *m, const char *text, size_t len,
                                   int64_t version, struct cu_ruleset **out,
                                   char err[CU_RULES_ERR_BYTES])
{
    char name[32];
    snprintf(name, sizeof(name), "ruleset:%lld", (long long)version);
    return cu_rules_compile(text, len, name, &m->types, out, err);
}

enum cu_err cu_monitor_swap_prepare(struct cu_monitor *m, struct cu_db *db,
                                    const struct cu_monitor_sets *want, int64_t now,
                                    struct cu_monitor_swap **out, char err[CU_RULES_ERR_BYTES])
{
    struct cu_monitor_swap *s = cu_calloc(1, sizeof(*s));
    enum cu_err rc = CU_OK;

    *out = NULL;
    err[0] = '\0';
    if (s == NULL)
        return CU_E_NOMEM;
    s->gen = m->gen;
    if (want->live != NULL) {
        rc = compile_version(m, want->live, want->live_len, want->live_version, &s->rs, err);
        s->own_rs = rc == CU_OK;
        s->live_version = want->live_version;
    } else {
        s->rs = m->rs;
        s->live_version = m->live_version;
    }
    if (rc == CU_OK && want->shadow == CU_MONITOR_SHADOW_SET) {
        rc = compile_version(m, want->shadow_text, want->shadow_len, want->shadow_version,
                             &s->shadow, err);
        s->own_shadow = rc == CU_OK;
        s->shadow_version = want->shadow_version;
    } else if (want->shadow == CU_MONITOR_SHADOW_KEEP) {
        s->shadow = m->shadow;
        s->shadow_version = m->shadow_version;
    }
    /* the new sets' managed lists, as the store holds them in this unit */
    if (rc == CU_OK && s->own_rs)
        rc = cu_monitor_fill_lists(db, s->rs, now);
    if (rc == CU_OK && s->own_shadow)
        rc = cu_monitor_fill_lists(db, s->shadow, now);
    if (rc == CU_OK && (rc = cu_mon_engine_init(&s->eng, s->rs, s->shadow)) != CU_OK)
        snprintf(err, CU_RULES_ERR_BYTES, "out of memory");
    s->eng_ready = rc == CU_OK;
    /* the state the new sets decide over, from the stored events, as at a start */
    if (rc == CU_OK && (rc = feed(m, s->eng.st, db, 0, now - CU_MONITOR_REBUILD_MS, &s->fed,
                                  &s->last_seq)) != CU_OK)
        snprintf(err, CU_RULES_ERR_BYTES, "the stored events could not be read: %s",
                 cu_err_str(rc));
    if (rc != CU_OK) {
        cu_monitor_swap_free(s);
        return rc;
    }
    *out = s;
    return CU_OK;
}

/* commit_now(m, s, db): s put in force, prepared against the sets in force now. */
static enum cu_err commit_now(struct cu_monitor *m, struct cu_monitor_swap *s, struct cu_db *db)
{
    int64_t t0 = mono_us();
    enum cu_err rc;

    if (s->done)
        return CU_OK;
    /* what was decided since the state was fed (the units committed with the change) */
    rc = feed(m, s->eng.st, db, s->last_seq, 0, &s->fed, &s->last_seq);
    if (rc != CU_OK)
        return rc; /* the sets in force stay as they were */
    if (m->eng_ready)
        cu_mon_engine_fini(&m->eng);
    m->eng = s->eng;
    m->state_seq = s->last_seq;
    s->eng_ready = false;
    if (m->rs != s->rs && m->rs != s->shadow)
        cu_rules_free(m->rs);
    if (m->shadow != NULL && m->shadow != s->shadow && m->shadow != s->rs)
        cu_rules_free(m->shadow);
    m->rs = s->rs;
    m->shadow = s->shadow;
    s->own_rs = s->own_shadow = false;
    m->gen++;
    pthread_mutex_lock(&m->mu);
    m->live_version = s->live_version;
    m->shadow_version = s->shadow ? s->shadow_version : -1;
    pthread_mutex_unlock(&m->mu);
    cu_monitor_managed_update(m);
    /* the lists as changes committed with this one left them, and the snoozes by the new
     * rules' names; a failure leaves the lists filled in the unit, read again at the next
     * change */
    if (cu_monitor_load(m, db, cu_clock_now_ms()) != CU_OK) {
        m->dirty_all = true;
        cu_log(CU_LOG_ERROR, "monitor.lists_reload_failed", CU_LS("error", "after a rule change"));
    }
    s->done = true;
    s->fed.took_ms += (mono_us() - t0) / 1000;
    cu_log(CU_LOG_INFO, "monitor.rules_in_force", CU_LI("live_version", s->live_version),
           CU_LI("shadow_version", m->shadow_version), CU_LI("events", (long long)s->fed.events));
    return CU_OK;
}

static enum cu_err stored_sets(struct cu_monitor *m, struct cu_db *db, int64_t now,
                               struct cu_monitor_rebuilt *out, bool *done);

enum cu_err cu_monitor_swap_commit(struct cu_monitor *m, struct cu_monitor_swap *s,
                                   struct cu_db *db)
{
    if (!s->done && s->gen != m->gen) {
        /* another change went in force since this one was prepared (two in one group): what
         * this one kept of the sets then may be gone. The store holds what both made of the
         * statuses: the sets are put in force from it, afresh. */
        struct cu_monitor_rebuilt r;
        bool done = false;
        memset(&r, 0, sizeof(r));
        s->done = true;
        cu_log(CU_LOG_WARN, "monitor.rules_reloaded",
               CU_LS("why", "two rule changes went in force together: read again from the store"));
        return stored_sets(m, db, cu_clock_now_ms(), &r, &done);
    }
    return commit_now(m, s, db);
}

void cu_monitor_swap_free(struct cu_monitor_swap *s)
{
    if (s == NULL)
        return;
    if (s->eng_ready)
        cu_mon_engine_fini(&s->eng);
    if (s->own_rs)
        cu_rules_free(s->rs);
    if (s->own_shadow)
        cu_rules_free(s->shadow);
    cu_free(s);
}

void cu_monitor_in_force(struct cu_monitor *m, int64_t *live_version, int64_t *shadow_version)
{
    pthread_mutex_lock(&m->mu);
    *live_version = m->live_version;
    *shadow_version = m->shadow_version;
    pthread_mutex_unlock(&m->mu);
}

/* stored_sets(m, db, now, out): the rule sets the store holds in force, put in force here. */
static enum cu_err stored_sets(struct cu_monitor *m, struct cu_db *db, int64_t now,
                               struct cu_monitor_rebuilt *out, bool *done)
{
    static const char sql[] = "SELECT version, status, body FROM rule_sets WHERE status IN "
                              "('live', 'shadow') ORDER BY version";
    static const char took_sql[] = "SELECT COUNT(*) FROM rule_sets WHERE activated_at IS NOT NULL";
    struct cu_monitor_sets want;
    struct cu_stmt *st = NULL;
    struct cu_monitor_swap *s = NULL;
    char err[CU_RULES_ERR_BYTES];
    char *texts[2] = {NULL, NULL};
    size_t lens[2] = {0, 0};
    int64_t versions[2] = {0, 0};
    bool row = false;
    enum cu_err rc = cu_db_query(db, sql, NULL, 0, &st);

    *done = false;
    while (rc == CU_OK && (rc = cu_stmt_next(st, &row)) == CU_OK && row) {
        size_t n = 0;
        const char *status = cu_stmt_text(st, 1, &n);
        int k = n == 4 && memcmp(status, "live", 4) == 0 ? 0 : 1;
        const char *body = cu_stmt_text(st, 2, &lens[k]);
        versions[k] = cu_stmt_int(st, 0);
        cu_free(texts[k]);
        if ((texts[k] = cu_malloc(lens[k] + 1)) == NULL) {
            rc = CU_E_NOMEM;
            break;
        }
        memcpy(texts[k], body, lens[k]);
        texts[k][lens[k]] = '\0';
    }
    cu_stmt_done(st);
    /* once the store has put a set in force, it decides the shadow too: none when it holds
     * none (the configuration's shadow_rules are no longer read) */
    bool took = false;
    if (rc == CU_OK && (rc = cu_db_query(db, took_sql, NULL, 0, &st)) == CU_OK) {
        if ((rc = cu_stmt_next(st, &row)) == CU_OK && row)
            took = cu_stmt_int(st, 0) > 0;
        cu_stmt_done(st);
    }
    if (rc == CU_OK && (texts[0] || texts[1] || took)) {
        memset(&want, 0, sizeof(want));
        want.live = texts[0];
        want.live_len = lens[0];
        want.live_version = versions[0];
        want.shadow = texts[1] ? CU_MONITOR_SHADOW_SET
                      : took   ? CU_MONITOR_SHADOW_NONE
                               : CU_MONITOR_SHADOW_KEEP;
        want.shadow_text = texts[1];
        want.shadow_len = lens[1];
        want.shadow_version = versions[1];
        rc = cu_monitor_swap_prepare(m, db, &want, now, &s, err);
        if (rc == CU_E_INVALID)
            cu_log(CU_LOG_ERROR, "monitor.ruleset_invalid", CU_LS("error", err));
        if (rc == CU_OK && (rc = commit_now(m, s, db)) == CU_OK) {
            *out = s->fed;
            *done = true;
            if (s->last_seq > atomic_load(&m->tail_seq))
                atomic_store(&m->tail_seq, s->last_seq);
        }
        cu_monitor_swap_free(s);
    }
    cu_free(texts[0]);
    cu_free(texts[1]);
    return rc;
}

enum cu_err cu_monitor_follow(struct cu_monitor *m, struct cu_db *db, int64_t now_ms)
{
    static const char sql[] = "SELECT version, status FROM rule_sets WHERE status IN ('live', "
                              "'shadow')";
    int64_t live = 0, shadow = -1, in_live, in_shadow;
    struct cu_monitor_rebuilt out;
    struct cu_stmt *st = NULL;
    bool row = false, done = false;
    enum cu_err rc = cu_db_query(db, sql, NULL, 0, &st);

    while (rc == CU_OK && (rc = cu_stmt_next(st, &row)) == CU_OK && row) {
        size_t n = 0;
        const char *status = cu_stmt_text(st, 1, &n);
        if (n == 4 && memcmp(status, "live", 4) == 0)
            live = cu_stmt_int(st, 0);
        else
            shadow = cu_stmt_int(st, 0);
    }
    cu_stmt_done(st);
    if (rc != CU_OK)
        return rc;
    cu_monitor_in_force(m, &in_live, &in_shadow);
    /* another node put other sets in force (or took the shadow away): the same here, with
     * the lists and snoozes as they are now; else the lists and snoozes alone */
    if (live != in_live || shadow != in_shadow) {
        memset(&out, 0, sizeof(out));
        rc = stored_sets(m, db, now_ms, &out, &done);
        if (rc == CU_OK && done)
            cu_log(CU_LOG_INFO, "monitor.followed", CU_LS("what", "rule sets"),
                   CU_LI("live_version", live), CU_LI("shadow_version", shadow));
        if (rc != CU_OK || done)
            return rc;
    }
    return cu_monitor_load(m, db, now_ms);
}

enum cu_err cu_monitor_rebuild(struct cu_monitor *m, struct cu_db *db, int64_t now_ms,
                               struct cu_monitor_rebuilt *out)
{
    int64_t t0 = mono_us(), last = 0;
    bool done = false;
    enum cu_err rc;

    memset(out, 0, sizeof(*out));
    /* the tail of several nodes starts after what is fed here, and after the older events
     * the window leaves out (the head, read first: what commits meanwhile is fed below) */
    int64_t head = 0;
    if ((rc = cu_monitor_count(db, "SELECT seq FROM monitor_head WHERE id = 1", NULL, 0, &head)) !=
        CU_OK)
        return rc;
    atomic_store(&m->tail_seq, head);
    /* the rule sets the store holds in force replace those of [monitor]; they are fed there */
    if ((rc = stored_sets(m, db, now_ms, out, &done)) != CU_OK || done) {
        out->took_ms = (mono_us() - t0) / 1000;
        return rc;
    }
    /* the managed lists' items and the snoozes, as the store holds them */
    if ((rc = cu_monitor_load(m, db, now_ms)) != CU_OK)
        return rc;
    rc = feed(m, m->eng.st, db, 0, now_ms - CU_MONITOR_REBUILD_MS, out, &last);
    m->state_seq = last;
    atomic_store(&m->tail_seq, last > head ? last : head);
    out->took_ms = (mono_us() - t0) / 1000;
    return rc;
}

enum cu_err cu_monitor_metrics(const struct cu_monitor *m, struct cu_buf *out)
{
    struct cu_monitor_stats st;
    enum cu_err rc;

    cu_monitor_stats(m, &st);
    rc = cu_buf_printf(out, "# HELP custodia_monitor_decisions_total Events decided by the "
                            "rule set in force, by decision.\n"
                            "# TYPE custodia_monitor_decisions_total counter\n");
    for (int d = 0; rc == CU_OK && d < 5; d++)
        rc =
            cu_buf_printf(out, "custodia_monitor_decisions_total{decision=\"%s\"} %llu\n",
                          cu_decision_name((enum cu_decision)d), (unsigned long long)st.decided[d]);
    if (rc == CU_OK)
        rc = cu_buf_printf(
            out,
            "# HELP custodia_monitor_shadow_differences_total Decisions the shadow rule set "
            "([monitor] shadow_rules) made otherwise than the rule set in force.\n"
            "# TYPE custodia_monitor_shadow_differences_total counter\n"
            "custodia_monitor_shadow_differences_total %llu\n"
            "# HELP custodia_monitor_rule_errors_total Rules that failed at run time (division "
            "by zero, their cost bound); the decision completed with the others.\n"
            "# TYPE custodia_monitor_rule_errors_total counter\n"
            "custodia_monitor_rule_errors_total %llu\n"
            "# HELP custodia_monitor_unrecorded_total Events decided that the state could not "
            "record (out of memory; the key cap is custodia_monitor_state_dropped_total).\n"
            "# TYPE custodia_monitor_unrecorded_total counter\n"
            "custodia_monitor_unrecorded_total %llu\n"
            "# HELP custodia_monitor_state_bytes Memory the monitoring state holds.\n"
            "# TYPE custodia_monitor_state_bytes gauge\n"
            "custodia_monitor_state_bytes %llu\n"
            "# HELP custodia_monitor_state_keys Keys (customers, addresses, devices, payees, "
            "networks, countries) the monitoring state tracks.\n"
            "# TYPE custodia_monitor_state_keys gauge\n"
            "custodia_monitor_state_keys %llu\n"
            "# HELP custodia_monitor_state_dropped_total Events whose new keys were not tracked "
            "because the state held its most keys (8,000,000): their windows are blind to them.\n"
            "# TYPE custodia_monitor_state_dropped_total counter\n"
            "custodia_monitor_state_dropped_total %llu\n"
            "# HELP custodia_monitor_tail_events_total Events other nodes decided that this "
            "node fed into its state (several nodes on PostgreSQL).\n"
            "# TYPE custodia_monitor_tail_events_total counter\n"
            "custodia_monitor_tail_events_total %llu\n"
            "# HELP custodia_monitor_tail_lag_seconds From another node's decision to this "
            "node's state holding it, for the last such event.\n"
            "# TYPE custodia_monitor_tail_lag_seconds gauge\n"
            "custodia_monitor_tail_lag_seconds %lld.%03lld\n"
            "# HELP custodia_monitor_tail_seq The last event (by seq) this node's state has seen.\n"
            "# TYPE custodia_monitor_tail_seq gauge\n"
            "custodia_monitor_tail_seq %lld\n"
            "# HELP custodia_monitor_decide_seconds_total The engine's time deciding, summed.\n"
            "# TYPE custodia_monitor_decide_seconds_total counter\n"
            "custodia_monitor_decide_seconds_total %llu.%06llu\n",
            (unsigned long long)st.shadow_differs, (unsigned long long)st.rule_errors,
            (unsigned long long)st.unrecorded, (unsigned long long)st.state_bytes,
            (unsigned long long)st.state_keys, (unsigned long long)st.state_dropped,
            (unsigned long long)atomic_load(&((struct cu_monitor *)m)->tail_fed),
            (long long)(atomic_load(&((struct cu_monitor *)m)->tail_lag_ms) / 1000),
            (long long)(atomic_load(&((struct cu_monitor *)m)->tail_lag_ms) % 1000),
            (long long)atomic_load(&((struct cu_monitor *)m)->tail_seq),
            (unsigned long long)(st.decide_us_sum / 1000000),
            (unsigned long long)(st.decide_us_sum % 1000000));
    return rc;
}

bool cu_monitor_rule_alerts(const struct cu_monitor *m, const char *name)
{
    return cu_rules_alerting(m->rs, name);
}

enum cu_err cu_monitor_recent(struct cu_db *db, const char *customer, bool sign_ins, size_t limit,
                              json_t *out)
{
    static const char all[] = "SELECT at, type, body, decision, decision_id FROM monitor_events "
                              "WHERE customer = $1 ORDER BY seq DESC LIMIT $2";
    static const char logins[] =
        "SELECT at, type, body, decision, decision_id FROM monitor_events WHERE customer = $1 AND "
        "type IN ('login_succeeded', 'login_failed') ORDER BY seq DESC LIMIT $2";
    const struct cu_val p[] = {CU_VT(customer), CU_VI(limit)};
    struct cu_stmt *st = NULL;
    bool row = false;
    enum cu_err rc = cu_db_query(db, sign_ins ? logins : all, p, CU_NVALS(p), &st);

    while (rc == CU_OK && (rc = cu_stmt_next(st, &row)) == CU_OK && row) {
        size_t tn = 0, bn = 0, dn = 0, in = 0;
        const char *type = cu_stmt_text(st, 1, &tn), *body = cu_stmt_text(st, 2, &bn),
                   *dec = cu_stmt_text(st, 3, &dn), *id = cu_stmt_text(st, 4, &in);
        json_t *ev = json_loadb(body, bn, 0, NULL);
        char at[CU_RFC3339_BYTES];
        cu_clock_format(cu_stmt_int(st, 0), at);
        json_t *o =
            json_pack("{s:s#, s:s, s:s#, s:s#, s:O?, s:O?}", "id", id, in, "at", at, "type", type,
                      tn, "decision", dec, dn, "device", json_object_get(ev, "device"), "country",
                      json_object_get(ev, "country"));
        json_decref(ev);
        if (o == NULL || json_array_append_new(out, o) != 0)
            rc = CU_E_NOMEM;
    }
    cu_stmt_done(st);
    return rc;
}

enum cu_err cu_monitor_decision_customer(struct cu_db *db, const char *id, char *out, size_t cap,
                                         char *type, size_t tcap)
{
    static const char sql[] = "SELECT customer, type FROM monitor_events WHERE decision_id = $1";
    const struct cu_val p[] = {CU_VT(id)};
    struct cu_stmt *st = NULL;
    bool row = false;
    enum cu_err rc = cu_db_query(db, sql, p, 1, &st);

    if (rc == CU_OK)
        rc = cu_stmt_next(st, &row);
    if (rc == CU_OK && !row)
        rc = CU_E_NOT_FOUND;
    if (rc == CU_OK) {
        size_t n = 0;
        const char *c = cu_stmt_text(st, 0, &n);
        snprintf(out, cap, "%.*s", (int)n, c);
        c = cu_stmt_text(st, 1, &n);
        snprintf(type, tcap, "%.*s", (int)n, c);
    }
    cu_stmt_done(st);
    return rc;
}
