/*
 * monitor_int.h - the monitoring service's insides, shared by its files: monitor.c (decisions,
 * the state, its rebuild) and lists.c (managed lists and snoozes).
 */
#ifndef CU_MONITOR_MONITOR_INT_H
#define CU_MONITOR_MONITOR_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "monitor/engine.h"
#include "monitor/monitor.h"

/* A rule snoozed for one customer until a time. */
struct cu_snooze {
    char customer[CU_MON_REF_MAX + 1];
    char rule[CU_MON_NAME_MAX + 1];
    int64_t until;
};

#define CU_MONITOR_DIRTY_MAX 64

/* Staff notices of high alerts: when each rule (by its number) last told them. */
#define CU_MONITOR_STAFF_SLOTS CU_RULES_MAX

struct cu_monitor {
    struct cu_mon_types types;
    int64_t staff_told[CU_MONITOR_STAFF_SLOTS]; /* on the committer's thread */
    struct cu_ruleset *rs, *shadow;
    struct cu_mon_engine eng;
    bool eng_ready;
    int64_t future_ms, past_ms;
    void (*pseudonym)(void *arg, const char *kind, const char *text, uint8_t out[8]);
    void *pseudonym_arg;
    atomic_ullong decided[5], shadow_differs, rule_errors, unrecorded, decide_us_sum;
    atomic_size_t state_bytes, state_keys; /* the state's, after the last event */
    atomic_ullong state_dropped;
    struct cu_monitor_effects fx;
    void (*audit_hash)(void *arg, const char *kind, const char *text, uint8_t out[8]);
    void *audit_hash_arg;
    /* committer's thread only: the snoozes in force, sorted by customer and rule; what changed
     * in the store and must be read again once its unit is durable (lists by name, customers
     * whose snoozes changed; all of them when more than CU_MONITOR_DIRTY_MAX) */
    struct cu_snooze *snoozes;
    size_t nsnoozes, capsnoozes;
    char dirty_lists[CU_MONITOR_DIRTY_MAX][CU_MON_NAME_MAX + 1];
    size_t ndirty_lists;
    char dirty_customers[CU_MONITOR_DIRTY_MAX][CU_MON_REF_MAX + 1];
    size_t ndirty_customers;
    bool dirty_all;
    /* the managed lists the sets in force declare, for any thread (under mu) */
    pthread_mutex_t mu;
    char managed[2 * CU_RULES_LISTS_MAX][CU_MON_NAME_MAX + 1];
    bool managed_addresses[2 * CU_RULES_LISTS_MAX];
    size_t nmanaged;
    /* the versions in force (under mu): 0 the set of [monitor] (live), -1 none (shadow) */
    int64_t live_version, shadow_version;
    uint64_t gen;         /* committer's thread: bumped each time the sets in force change */
    atomic_int backtests; /* running now (any thread) */
    /* several nodes: this process's id in the rows it decides, and the tail (monitor.c,
     * cu_monitor_tail): the last seq fed into the state or passed over (written on the
     * committer's thread, read by the tail's), the other nodes' events fed, and the lag of the
     * last one fed (its decision's time to the tail's, ms) */
    char node[CU_MONITOR_NODE_BYTES];
    atomic_llong tail_seq;
    atomic_ullong tail_fed;
    atomic_llong tail_lag_ms;
    int64_t state_seq; /* committer's thread: the last seq the state was fed from the store */
    /* committer's thread: the transaction that last woke the other nodes' tails */
    const struct cu_db *notified_db;
    uint64_t notified_txn;
};

/* lists.c */

/* cu_monitor_managed_update(m): the copy of the managed lists' names, after the sets changed. */
void cu_monitor_managed_update(struct cu_monitor *m);

/* cu_monitor_snoozed(m, customer, now, skip, shadow_skip, names, n, cap): the masks of the rules
 * snoozed for customer at now in the live and shadow sets, and the names of those (at most cap,
 * *n of them). */
void cu_monitor_snoozed(const struct cu_monitor *m, const char *customer, int64_t now,
                        struct cu_rule_mask *skip, struct cu_rule_mask *shadow_skip,
                        const char **names, size_t *n, size_t cap);

/* cu_monitor_count(db, sql, p, n, out): the integer a one-row query answers (0 for no row). */
CU_WUR enum cu_err cu_monitor_count(struct cu_db *db, const char *sql, const struct cu_val *p,
                                    size_t n, int64_t *out);

/* cu_monitor_fill_lists(db, rs, now): rs's managed lists as the store holds them (lists.c). */
CU_WUR enum cu_err cu_monitor_fill_lists(struct cu_db *db, struct cu_ruleset *rs, int64_t now);

/* cu_monitor_config_bump(db): counts a change of the lists, snoozes or rule sets in
 * monitor_head.config, in the changing unit, for the other nodes to follow. */
CU_WUR enum cu_err cu_monitor_config_bump(struct cu_db *db);

/* The channel of the tails (cu_db_notify), and cu_monitor_wake(m, db): the other nodes'
 * tails woken when this transaction commits (once a transaction). */
#define CU_MONITOR_CHANNEL "cu_monitor"
CU_WUR enum cu_err cu_monitor_wake(struct cu_monitor *m, struct cu_db *db);

/* cu_monitor_load(m, db, now): every managed list and snooze read from the store (at start). */
CU_WUR enum cu_err cu_monitor_load(struct cu_monitor *m, struct cu_db *db, int64_t now);

#endif
