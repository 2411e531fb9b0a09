/*
 * monitor.h - the monitoring service of the server (docs/monitoring.md): the rule set in
 * force (and one in shadow beside it), the state they decide over, and the decisions it
 * stores.
 *
 * Decisions are made inside a unit of work, on the committer's thread, which is the one
 * thread that touches the engine's state: cu_monitor_decide decides about an event, records
 * it in the state, and writes the event, the decision and the decision's audit record in the
 * unit's savepoint, so that the three commit together or not at all. A unit that runs again
 * (after CU_E_BUSY) keeps the decision its first run made: the state counts each event once.
 * An event whose unit then fails stays counted in memory until the next start rebuilds the
 * state (docs/monitoring.md, "What the state may count").
 */
#ifndef CU_MONITOR_MONITOR_H
#define CU_MONITOR_MONITOR_H

#include <stdbool.h>
#include <stdint.h>

#include "base/buf.h"
#include <jansson.h>

#include "base/err.h"
#include "identity/identity.h"
#include "ledger/ledger.h"
#include "monitor/event.h"
#include "monitor/rules.h"
#include "store/store.h"
#include "store/work.h"

#define CU_DECISION_ID_BYTES 21 /* "dec_" and 16 hex digits, NUL */

/* How the service keeps addresses: pseudonym(arg, kind, text, out) writes 8 bytes of a keyed
 * hash of text (kind "ip" for an address, "ip_net" for its network). */
struct cu_monitor_opts {
    const char *rules_path;  /* a rule file, or NULL: the built-in pack */
    const char *shadow_path; /* a rule file run in shadow, or NULL: none */
    const char *types;       /* custom event types, separated by spaces, or NULL */
    int64_t future_ms;       /* how far ahead of the clock a posted event's time may be */
    int64_t past_ms;         /* how far behind it */
    void (*pseudonym)(void *arg, const char *kind, const char *text, uint8_t out[8]);
    void *pseudonym_arg; /* NULL pseudonym: addresses are kept as they are */
    /* the keyed hash the audit records of lists and snoozes name values by (always, whatever
     * addresses are kept as); NULL: pseudonym */
    void (*audit_hash)(void *arg, const char *kind, const char *text, uint8_t out[8]);
    void *audit_hash_arg;
};

struct cu_monitor;

/* cu_monitor_new(opts, out, err): the service with an empty state. CU_E_INVALID (or CU_E_IO
 * for a file that cannot be read) with err saying what, naming the file, line and column. */
CU_WUR enum cu_err cu_monitor_new(const struct cu_monitor_opts *opts, struct cu_monitor **out,
                                  char err[CU_RULES_ERR_BYTES]);
void cu_monitor_free(struct cu_monitor *m);

/* What the service does to a customer when a decision's actions say so (docs/monitoring.md,
 * "Actions"), each inside the decision's unit w on db, so that it commits with the event, the
 * decision and the audit record, or not at all: an error fails the unit. customer is a vault
 * customer's id (the service asks only about those); *n gets what changed (accounts frozen,
 * sessions ended) where there is a count. until is a time (ms). NULL members: not applied. */
/* A notice a decision queues (notify_customer [TEMPLATE]), or the staff's of an alert of
 * severity high or critical (staff_alert, customer ""): the template, and what its data may be
 * taken from. */
struct cu_monitor_notice {
    const char *template_name; /* one of cu_rules_notify_template, or "staff_alert" */
    const char *decision;      /* the decision's id */
    const char *event_type;
    const struct cu_mon_event *event;
    int64_t frozen;                      /* accounts the decision froze */
    const char *alert, *severity, *rule; /* staff_alert: the alert, and its first rule */
};

/* An alert a decision opened, for the cases it joins (cases/cases.h): the alert, its decision,
 * the rules that fired (names separated by spaces), and the address as custodia keeps it (the
 * pseudonym when addresses are kept hashed; "" when the event has none). */
struct cu_monitor_alert {
    const char *alert, *decision, *event_type, *severity, *rules;
    const struct cu_mon_event *event;
    const char *ip;
    int64_t frozen; /* accounts the decision froze */
};

struct cu_monitor_effects {
    enum cu_err (*freeze)(void *arg, struct cu_work *w, struct cu_db *db, const char *customer,
                          const char *reason, int64_t until, int64_t *n);
    enum cu_err (*lock)(void *arg, struct cu_work *w, struct cu_db *db, const char *customer,
                        int64_t until);
    enum cu_err (*revoke)(void *arg, struct cu_work *w, struct cu_db *db, const char *customer,
                          int64_t *n);
    enum cu_err (*notify)(void *arg, struct cu_work *w, struct cu_db *db, const char *customer,
                          const struct cu_monitor_notice *notice);
    /* an alert was opened in w (its case, its playbooks) */
    enum cu_err (*alert)(void *arg, struct cu_work *w, struct cu_db *db,
                         const struct cu_monitor_alert *a);
    /* whether customer is a vault customer's id that may be acted on (not erased) */
    bool (*is_customer)(void *arg, struct cu_db *db, const char *customer);
    void *arg;
};

/* cu_monitor_set_effects(m, fx): how m applies actions (before any decision). */
void cu_monitor_set_effects(struct cu_monitor *m, const struct cu_monitor_effects *fx);

/* cu_monitor_recent(db, customer, sign_ins, limit, out): the customer's latest events (only
 * sign-ins when sign_ins), newest first, appended to the JSON array out as {"at", "type",
 * "decision", "device", "country", "id" (the decision's)} (device and country null when the
 * event has none): what the
 * customer's own security page shows, without scores, rules or addresses. */
CU_WUR enum cu_err cu_monitor_recent(struct cu_db *db, const char *customer, bool sign_ins,
                                     size_t limit, json_t *out);

/* cu_monitor_decision_customer(db, id, out, cap, type, tcap): the customer and the type of
 * decision id's event. CU_E_NOT_FOUND. */
CU_WUR enum cu_err cu_monitor_decision_customer(struct cu_db *db, const char *id, char *out,
                                                size_t cap, char *type, size_t tcap);

/* cu_monitor_rule_alerts(m, name): whether the rule set in force has a rule of that name that
 * raises an alert (a playbook's `when rule`). At start, before decisions run. */
bool cu_monitor_rule_alerts(const struct cu_monitor *m, const char *name);

/* cu_monitor_types(m): the event types it knows. */
const struct cu_mon_types *cu_monitor_types(const struct cu_monitor *m);

/* cu_monitor_check_time(m, ev, now_ms, err): CU_OK when ev's time is within the bounds a
 * posted event must keep, else CU_E_INVALID with err saying which. */
CU_WUR enum cu_err cu_monitor_check_time(const struct cu_monitor *m, const struct cu_mon_event *ev,
                                         int64_t now_ms, char err[CU_MON_ERR_BYTES]);

/* One decision: filled by the first run of cu_monitor_decide and kept for the runs after. */
struct cu_monitor_decision {
    bool recorded; /* the engine decided and the state counted the event: never again */
    bool decided;  /* and the texts below are made */
    bool pseudonymised;
    uint8_t key_ip[16]; /* the address's pseudonym, when pseudonymised */
    char id[CU_DECISION_ID_BYTES];
    struct cu_verdict v;
    struct cu_verdict shadow;
    bool has_shadow;
    struct cu_reads reads;
    int64_t took_us;  /* the engine's time for this event */
    int64_t at;       /* when it was decided (ms) */
    char *verdict;    /* the verdict as JSON members (decision, score, rules, actions ...) */
    char *shadow_doc; /* the shadow's verdict as a JSON object, or NULL */
    char *reads_doc;  /* what the rules read, a JSON object */
    char *event_doc;  /* the event as stored (canonical text) */
    /* the rules not run because they were snoozed for the event's customer */
    char snoozed[8][CU_MON_NAME_MAX + 1];
    size_t nsnoozed;
    /* what the actions did in this run of the unit (docs/monitoring.md, "Actions") */
    struct {
        bool customer;        /* the event's customer is a vault customer: actions apply */
        int64_t frozen_until; /* freeze_account: accounts frozen until then (ms), 0 none */
        int64_t frozen;       /* how many accounts it froze */
        int64_t locked_until; /* lock_login: sign-in locked until then (ms), 0 none */
        int64_t revoked;      /* revoke_sessions: sessions ended, -1 not applied */
        bool notified;        /* notify_customer: a notice queued */
        unsigned unapplied;   /* CU_ACT_* the unit had no room left to audit (a large batch) */
    } fx;
};

/* cu_monitor_decision_clear(d): frees what d holds and empties it. */
void cu_monitor_decision_clear(struct cu_monitor_decision *d);

/* cu_monitor_decide(m, w, db, ev, source, d): decides about ev (source: "api", "ledger",
 * "signin", "profile") and stores the event, the decision and an audit record in w on db.
 * Only on the committer's thread, inside w's apply. */
CU_WUR enum cu_err cu_monitor_decide(struct cu_monitor *m, struct cu_work *w, struct cu_db *db,
                                     const struct cu_mon_event *ev, const char *source,
                                     struct cu_monitor_decision *d);

/* cu_monitor_ledger_hook(m): the ledger's monitoring hook (ledger/ledger.h): each new
 * transfer with a customer on either side decided by m as an event of type transfer,
 * deposit or withdrawal (docs/monitoring.md, "In the ledger"), stored with its decision in
 * the movement's unit (whose audit record covers it). A step-up is asked of a customer's own
 * session below aal2; for a key or a staff member it holds the transfer for review. */
struct cu_ledger_hook cu_monitor_ledger_hook(struct cu_monitor *m);

/* cu_monitor_signin_hook(m): the sign-in's monitoring hook (identity/identity.h): each
 * customer's sign-in, failed sign-in and failed second factor decided by m (docs/monitoring.md,
 * "At sign-in"): deny refuses it, hold and step_up demand the second factor, lock_login locks
 * the account. */
struct cu_identity_hook cu_monitor_signin_hook(struct cu_monitor *m);

/* cu_monitor_note(m, w, db, type, customer, fields, n, memo, decision, id): a change of a
 * customer's own decided in w as an event of type ("profile_changed" with the n fields named,
 * "password_changed", "mfa_changed"; docs/monitoring.md, "Profile and credentials"), stored
 * with its decision (w's own audit record covers it). The decision and its id go to decision
 * and id (either may be NULL). memo: the caller's slot, kept across runs of w (freed with
 * cu_monitor_memo_free), or NULL. CU_E_INVALID for an unknown type or customer reference. */
CU_WUR enum cu_err cu_monitor_note(struct cu_monitor *m, struct cu_work *w, struct cu_db *db,
                                   const char *type, const char *customer,
                                   const char *const *fields, size_t n, void **memo,
                                   enum cu_decision *decision, char id[CU_DECISION_ID_BYTES]);
void cu_monitor_memo_free(void *memo);

/* cu_monitor_answer(d, out): the decision as POST /v1/events answers it: a JSON object. */
CU_WUR enum cu_err cu_monitor_answer(const struct cu_monitor_decision *d, struct cu_buf *out);

/* cu_monitor_decision_get(db, id, out): the stored decision as GET /v1/decisions/{id} shows
 * it, a JSON object appended to out. CU_E_NOT_FOUND when there is none. */
CU_WUR enum cu_err cu_monitor_decision_get(struct cu_db *db, const char *id, struct cu_buf *out);

/* How far back the state is rebuilt from stored events: the longest window (30 days) and two
 * months more for the baselines (the customer's hours, amounts, devices, countries, payees). */
#define CU_MONITOR_REBUILD_MS (90LL * 86400000LL)

/* What a rebuild did. */
struct cu_monitor_rebuilt {
    uint64_t events;     /* recorded in the state */
    uint64_t skipped;    /* stored events that no longer parse (a custom type removed) */
    uint64_t unrecorded; /* the state could not record (out of memory) */
    int64_t took_ms;
};

/* Bytes of a node's id (16 hex digits and the NUL). */
#define CU_MONITOR_NODE_BYTES 17

/* cu_monitor_node(m): this process's id, stored with each decision it makes. */
const char *cu_monitor_node(const struct cu_monitor *m);

/* cu_monitor_tail_start(m, st, committer, out): on several nodes sharing a database, a thread
 * that feeds the state with the events the other nodes decide: it reads the rows committed
 * after the last it saw, in seq order (which has no gaps and follows the commit order, so none
 * is missed), on a connection of the pool, and hands the others' events to the committer's
 * thread in a unit of work of their own, so the state is only ever touched there. Its own rows
 * it passes over (they were fed when decided). It looks when a commit notifies it (the
 * store's LISTEN/NOTIFY), and every CU_MONITOR_TAIL_MS in any case. Stop it with
 * cu_monitor_tail_stop before the committer. */
struct cu_monitor_tailer;
struct cu_committer;
#define CU_MONITOR_TAIL_MS 200
CU_WUR enum cu_err cu_monitor_tail_start(struct cu_monitor *m, struct cu_store *st,
                                         struct cu_committer *committer,
                                         struct cu_monitor_tailer **out);
void cu_monitor_tail_stop(struct cu_monitor_tailer *t);

/* cu_monitor_follow(m, db, now_ms): the rule sets in force, managed lists and snoozes made
 * what the store holds, after another node changed them (the tail calls it when
 * monitor_head.config moved). On the committer's thread, in a unit. */
CU_WUR enum cu_err cu_monitor_follow(struct cu_monitor *m, struct cu_db *db, int64_t now_ms);

/* cu_monitor_tail_seq(m): the last seq the state has seen (any thread). */
int64_t cu_monitor_tail_seq(const struct cu_monitor *m);

/* cu_monitor_rebuild(m, db, now_ms, out): feeds the state, empty, the stored events of the
 * last CU_MONITOR_REBUILD_MS in the order they were decided, so that windows and baselines
 * are as they were before a restart (docs/monitoring.md, "After a restart"). Before the
 * server takes requests: nothing else may touch the state meanwhile. */
CU_WUR enum cu_err cu_monitor_rebuild(struct cu_monitor *m, struct cu_db *db, int64_t now_ms,
                                      struct cu_monitor_rebuilt *out);

/* ---- managed lists and snoozes (docs/monitoring.md, "Lists and snoozes") ---- */

#define CU_MONITOR_NOTE_MAX 200       /* bytes of a list item's note, of a snooze's reason */
#define CU_MONITOR_SNOOZES_MAX 100000 /* snoozes in force */
#define CU_MONITOR_SNOOZES_PAGE 1000  /* snoozes one read lists */
#define CU_MONITOR_SNOOZE_MAX_MS (365LL * 86400000LL)
#define CU_MONITOR_KEYS_MS 86400000LL /* how long POST /v1/events' Idempotency-Keys are kept */

/* Changes, each in the unit w on db (the committer's thread, inside w's apply), audited in w; the
 * rules follow once w is durable. why says what was wrong on an error.
 *
 * cu_monitor_list_add(m, w, db, list, value, expires_at, note, why): adds value to (or changes
 * its expiry and note in) the managed list that a set in force declares `list NAME managed`
 * (CU_E_NOT_FOUND otherwise); expires_at 0: never. CU_E_INVALID for a value that is not 1 to
 * 128 bytes of text (an address or block in a list of addresses), an expiry not in the future;
 * CU_E_TOO_LARGE when the list holds CU_RULES_LIST_ITEMS_MAX items.
 * cu_monitor_list_remove(m, w, db, list, value): CU_E_NOT_FOUND when it is not there.
 * cu_monitor_snooze(m, w, db, customer, rule, until, reason, why): the rule (of a set in force:
 * CU_E_NOT_FOUND otherwise) is not run for the customer's events until `until` (in the future,
 * at most CU_MONITOR_SNOOZE_MAX_MS ahead: CU_E_INVALID); CU_E_TOO_LARGE past
 * CU_MONITOR_SNOOZES_MAX. cu_monitor_unsnooze: CU_E_NOT_FOUND when there is no such snooze.
 * cu_monitor_housekeep(m, w, db, n): removes the list items and snoozes whose time passed (n:
 * how many). */
CU_WUR enum cu_err cu_monitor_list_add(struct cu_monitor *m, struct cu_work *w, struct cu_db *db,
                                       const char *list, const char *value, int64_t expires_at,
                                       const char *note, char why[CU_MON_ERR_BYTES]);
CU_WUR enum cu_err cu_monitor_list_remove(struct cu_monitor *m, struct cu_work *w, struct cu_db *db,
                                          const char *list, const char *value);
CU_WUR enum cu_err cu_monitor_snooze(struct cu_monitor *m, struct cu_work *w, struct cu_db *db,
                                     const char *customer, const char *rule, int64_t until,
                                     const char *reason, char why[CU_MON_ERR_BYTES]);
CU_WUR enum cu_err cu_monitor_unsnooze(struct cu_monitor *m, struct cu_work *w, struct cu_db *db,
                                       const char *customer, const char *rule);
CU_WUR enum cu_err cu_monitor_housekeep(struct cu_monitor *m, struct cu_work *w, struct cu_db *db,
                                        int64_t *n);

/* Reads, on any thread, as JSON objects appended to out: the managed lists the sets in force
 * declare, with how many items each holds; one list's items (CU_E_NOT_FOUND when no set in
 * force declares it); the snoozes in force, of one customer or (customer NULL) the first
 * CU_MONITOR_SNOOZES_PAGE of all. */
CU_WUR enum cu_err cu_monitor_lists_json(struct cu_monitor *m, struct cu_db *db,
                                         struct cu_buf *out);
CU_WUR enum cu_err cu_monitor_list_json(struct cu_monitor *m, struct cu_db *db, const char *list,
                                        struct cu_buf *out);
CU_WUR enum cu_err cu_monitor_snoozes_json(struct cu_db *db, const char *customer,
                                           struct cu_buf *out);

/* cu_monitor_forget(m, w, db, customer, ref): what monitoring keeps of an erased vault customer
 * made anonymous, in the erasure's unit w (docs/monitoring.md, "An erased customer"): each stored
 * event of the customer's id, or of ref (the customer's external_ref as outside systems post
 * it; NULL or "" for none), keeps its type, time, amount and channel and loses its address,
 * device, place, payee, fields and attributes, under the id; staff's comments on the customer's
 * alerts, its snoozes and its notices not yet sent are deleted. The committer's thread (the
 * snoozes in memory follow the commit). */
CU_WUR enum cu_err cu_monitor_forget(struct cu_monitor *m, struct cu_work *w, struct cu_db *db,
                                     const char *customer, const char *ref);

/* ---- the rule sets in force (docs/monitoring.md, "Rule sets") ---- */

enum { CU_MONITOR_SHADOW_KEEP, CU_MONITOR_SHADOW_NONE, CU_MONITOR_SHADOW_SET };

/* What a change of the sets in force asks for: live (text of a stored version; NULL: the live
 * set stays), and the shadow set: kept, none, or the text given. */
struct cu_monitor_sets {
    const char *live;
    size_t live_len;
    int64_t live_version;
    int shadow; /* CU_MONITOR_SHADOW_* */
    const char *shadow_text;
    size_t shadow_len;
    int64_t shadow_version;
};

/* A change of the sets in force: prepared in a unit (the sets compiled, a state fed from the
 * stored events for them, the managed lists read), then put in force once the unit is durable,
 * with the events decided meanwhile fed too. */
struct cu_monitor_swap;

/* cu_monitor_swap_prepare(m, db, want, now, out, err): on the committer's thread, in a unit.
 * CU_E_INVALID with err ("ruleset:N:LINE:COLUMN: …") for a set that does not compile. */
CU_WUR enum cu_err cu_monitor_swap_prepare(struct cu_monitor *m, struct cu_db *db,
                                           const struct cu_monitor_sets *want, int64_t now,
                                           struct cu_monitor_swap **out,
                                           char err[CU_RULES_ERR_BYTES]);
/* cu_monitor_swap_commit(m, s, db): puts s in force (the committer's thread, once its unit is
 * durable, outside a transaction); a second call does nothing. */
CU_WUR enum cu_err cu_monitor_swap_commit(struct cu_monitor *m, struct cu_monitor_swap *s,
                                          struct cu_db *db);
void cu_monitor_swap_free(struct cu_monitor_swap *s);

/* cu_monitor_in_force(m, live_version, shadow_version): the stored versions in force (any
 * thread): live 0 when it is the set of [monitor] rules, shadow -1 when none and 0 when it is
 * [monitor] shadow_rules. */
void cu_monitor_in_force(struct cu_monitor *m, int64_t *live_version, int64_t *shadow_version);

/* Rule sets in the store (rulesets.c). Each version is the text of a rule file as proposed,
 * with its SHA-256, and a status: proposed, live, shadow or retired. */
#define CU_RULESETS_PAGE 100 /* versions one list shows, newest first */

/* cu_rulesets_propose(m, w, db, text, len, note, nrules, version, sha): stores a compiled text
 * as the next version, proposed (audited in w). */
CU_WUR enum cu_err cu_rulesets_propose(struct cu_monitor *m, struct cu_work *w, struct cu_db *db,
                                       const char *text, size_t len, const char *note,
                                       size_t nrules, int64_t *version, char sha[65]);
/* cu_rulesets_list_json(m, db, out): {"in_force": …, "items": [the newest versions]}. */
CU_WUR enum cu_err cu_rulesets_list_json(struct cu_monitor *m, struct cu_db *db,
                                         struct cu_buf *out);
/* cu_rulesets_get_json(db, version, out): one version with its text; CU_E_NOT_FOUND. */
CU_WUR enum cu_err cu_rulesets_get_json(struct cu_db *db, int64_t version, struct cu_buf *out);
/* cu_rulesets_body(db, version, status, text, len): a stored version's status and text
 * (malloc'd, NUL-ended; the caller frees it). CU_E_NOT_FOUND. */
CU_WUR enum cu_err cu_rulesets_body(struct cu_db *db, int64_t version, char status[16], char **text,
                                    size_t *len);
/* cu_rulesets_activate(m, w, db, version, as, swap, why): in the unit w, makes a stored version
 * the set in force (as "live"), its shadow ("shadow"), or takes the shadow set out of force
 * ("retired"); the set it replaces is retired. *swap is put in force once w is durable
 * (cu_monitor_swap_commit) and freed by the caller. CU_E_NOT_FOUND for an unknown version;
 * CU_E_EXISTS with why when its status forbids it; the compiler's errors. Audited in w. */
CU_WUR enum cu_err cu_rulesets_activate(struct cu_monitor *m, struct cu_work *w, struct cu_db *db,
                                        int64_t version, const char *as,
                                        struct cu_monitor_swap **swap,
                                        char why[CU_RULES_ERR_BYTES]);

/* Backtests: a rule set replayed over the stored events of a time range on a fresh state (the
 * 30 days before the range fed first, for the windows' history), with the managed lists as the
 * store holds them now and without snoozes; the decisions counted, compared with those stored,
 * and, for events whose alert was resolved, against that label (true_positive an attack,
 * false_positive legitimate). */
#define CU_BACKTEST_WARMUP_MS (30LL * 86400000LL)
#define CU_BACKTEST_RANGE_MAX_MS (90LL * 86400000LL)
#define CU_BACKTEST_EVENTS_MAX 2000000 /* read, the 30 days before the range included */
#define CU_BACKTEST_CONCURRENT 1       /* backtests at a time, each a state of its own */
struct cu_backtest_opts {
    const char *text; /* the rule set's text */
    size_t len;
    int64_t version;  /* its stored version, or 0 */
    int64_t from, to; /* ms, the events' own times, at most 90 days apart */
};
/* cu_monitor_backtest(m, db, o, out, err): the report as a JSON object appended to out (any
 * thread: it touches only what it makes). CU_E_INVALID (a range, a set that does not compile),
 * CU_E_TOO_LARGE (more than CU_BACKTEST_EVENTS_MAX events) or CU_E_BUSY (CU_BACKTEST_CONCURRENT
 * running already) with err. */
CU_WUR enum cu_err cu_monitor_backtest(struct cu_monitor *m, struct cu_db *db,
                                       const struct cu_backtest_opts *o, struct cu_buf *out,
                                       char err[CU_RULES_ERR_BYTES]);

/* What the service has done since it started (for /metrics). */
struct cu_monitor_stats {
    uint64_t decided[5];              /* by decision */
    uint64_t shadow_differs;          /* decisions the shadow set made otherwise */
    uint64_t rule_errors;             /* rules that failed at run time */
    uint64_t unrecorded;              /* events the state could not record (out of memory) */
    uint64_t decide_us_sum;           /* the engine's time, summed */
    uint64_t state_bytes, state_keys; /* the state's memory and keys after the last event */
    uint64_t state_dropped;           /* events whose new keys the key cap kept out */
};
void cu_monitor_stats(const struct cu_monitor *m, struct cu_monitor_stats *out);

/* cu_monitor_metrics(m, out): the figures above in the Prometheus text exposition. */
CU_WUR enum cu_err cu_monitor_metrics(const struct cu_monitor *m, struct cu_buf *out);

#endif
