/*
 * rules.h - the rule language (docs/rules.md): a rule file's parser and type checker, its
 * compiled form, and the evaluation of its rules against one event.
 *
 *   thresholds review 30, step_up 50, hold 70, deny 90
 *   list blocked_networks = ["203.0.113.0/24", "2001:db8::/32"]
 *
 *   rule large_transfer_at_night
 *     when event.type == "transfer" and event.amount >= 500000
 *          and customer.hour_share(event.time) < 0.02
 *     then score 40, step_up, reason "large transfer at an hour this customer never uses"
 *
 * A rule set is compiled once; evaluating it walks small expression trees in memory. The
 * features the rules read (window counts, baselines ...) are listed once per rule set, the
 * same feature in two rules listed once, and asked of a provider (the monitoring state) at
 * most once per event. Errors name the file, line and column and what was expected.
 */
#ifndef CU_MONITOR_RULES_H
#define CU_MONITOR_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "monitor/event.h"

#define CU_RULES_FILE_MAX (1 << 20)    /* bytes of one rule file */
#define CU_RULES_MAX 256               /* rules in a set */
#define CU_RULES_NODES_MAX 128         /* expression nodes in one rule */
#define CU_RULES_FEATURES_MAX 256      /* distinct features in a set */
#define CU_RULES_LISTS_MAX 64          /* lists in a set */
#define CU_RULES_LIST_ITEMS_MAX 4096   /* items of one list */
#define CU_RULES_REASON_MAX 200        /* bytes of a rule's reason */
#define CU_RULES_STEPS_MAX 4096        /* evaluation steps of one rule for one event */
#define CU_RULES_EVENT_STEPS_MAX 65536 /* of all rules together for one event */
#define CU_RULES_ERR_BYTES 320
#define CU_WINDOW_MIN_MS 60000LL             /* 1 minute */
#define CU_WINDOW_MAX_MS (30LL * 86400000LL) /* 30 days */

/* Decisions, weakest first. */
enum cu_decision { CU_DEC_ALLOW, CU_DEC_REVIEW, CU_DEC_STEP_UP, CU_DEC_HOLD, CU_DEC_DENY };

const char *cu_decision_name(enum cu_decision d);

/* Actions a rule may name beside its decision. */
enum {
    CU_ACT_FREEZE_ACCOUNT = 1u << 0, /* with a duration */
    CU_ACT_LOCK_LOGIN = 1u << 1,     /* with a duration */
    CU_ACT_REVOKE_SESSIONS = 1u << 2,
    CU_ACT_NOTIFY_CUSTOMER = 1u << 3,
    CU_ACT_ALERT = 1u << 4, /* with a severity */
};

enum cu_severity { CU_SEV_LOW, CU_SEV_MEDIUM, CU_SEV_HIGH, CU_SEV_CRITICAL };

/* The notices a rule may queue with notify_customer [TEMPLATE] (docs/rules.md; the templates
 * of docs/notifications.md that go to customers): bit i of a verdict's notify_templates is
 * cu_rules_notify_template(i). notify_customer alone is security_notice, bit 0. */
#define CU_RULES_NOTIFY_TEMPLATES 7
const char *cu_rules_notify_template(unsigned i);

const char *cu_severity_name(enum cu_severity s);

/* What a window or a baseline is kept by. */
enum cu_key {
    CU_KEY_CUSTOMER,
    CU_KEY_IP,
    CU_KEY_IP_BLOCK, /* the /24 of an IPv4 address, the /64 of an IPv6 one */
    CU_KEY_DEVICE,
    CU_KEY_PAYEE,
    CU_KEY_COUNTRY,
    CU_KEY_ALL, /* every event together */
    CU_KEY_COUNT
};

const char *cu_key_name(enum cu_key k);

enum cu_feature_kind {
    CU_FEAT_COUNT,       /* events of key in window (this one included) */
    CU_FEAT_SUM,         /* their amounts */
    CU_FEAT_DISTINCT,    /* distinct values of field among them */
    CU_FEAT_HOUR_SHARE,  /* the share of the customer's past events in this event's hour */
    CU_FEAT_AMOUNT_Z,    /* this amount's z-score among the customer's past amounts */
    CU_FEAT_EVENTS,      /* the customer's past events */
    CU_FEAT_FIRST_SEEN,  /* whether field's value is new for the customer */
    CU_FEAT_KNOWN_FOR,   /* ms since the customer first used field's value (0: new) */
    CU_FEAT_SINCE,       /* ms since the customer's last event of types, before this one */
    CU_FEAT_SINCE_FIELD, /* ms since the last profile_changed naming field_name */
    CU_FEAT_AGE,         /* ms since the customer's first event */
    CU_FEAT_TRAVEL_KMH,  /* speed from the customer's last located event */
    CU_FEAT_TRAVEL_KM,   /* distance from it */
    CU_FEAT_ANOMALY,     /* the anomaly score in [0, 1] */
};

/* One feature a rule set reads. */
struct cu_feature {
    enum cu_feature_kind kind;
    enum cu_key key;                      /* COUNT, SUM, DISTINCT */
    enum cu_key field;                    /* DISTINCT, FIRST_SEEN */
    int64_t window_ms;                    /* COUNT, SUM, DISTINCT */
    uint64_t types;                       /* a bit per event type; 0: every type */
    char field_name[CU_MON_NAME_MAX + 1]; /* SINCE_FIELD */
};

/* cu_feature_same(a, b): whether two features are the same one (member by member). */
bool cu_feature_same(const struct cu_feature *a, const struct cu_feature *b);

/* The provider of feature values: value(arg, i, &v) sets v for feature i of the set and
 * returns false when the value is missing (no history, no location ...). */
struct cu_feature_source {
    bool (*value)(void *arg, size_t i, double *v);
    void *arg;
};

struct cu_ruleset;

/* cu_rules_compile(text, len, name, types, out, err): parses and checks a rule file (name is
 * what errors call it). CU_E_INVALID with "name:line:column: what was expected" in err. */
CU_WUR enum cu_err cu_rules_compile(const char *text, size_t len, const char *name,
                                    const struct cu_mon_types *types, struct cu_ruleset **out,
                                    char err[CU_RULES_ERR_BYTES]);
void cu_rules_free(struct cu_ruleset *rs);

/* cu_rules_load(path, types, out, err): the rule file at path read (at most
 * CU_RULES_FILE_MAX bytes) and compiled, or the built-in pack when path is NULL. CU_E_IO
 * (CU_E_TOO_LARGE) with err naming the file when it cannot be read (is too long); the
 * compiler's errors otherwise. */
CU_WUR enum cu_err cu_rules_load(const char *path, const struct cu_mon_types *types,
                                 struct cu_ruleset **out, char err[CU_RULES_ERR_BYTES]);

/* cu_rules_read(path, text, len, err): a rule file's text (at most CU_RULES_FILE_MAX bytes,
 * malloc'd and NUL-ended: the caller frees it), with cu_rules_load's errors. */
CU_WUR enum cu_err cu_rules_read(const char *path, char **text, size_t *len,
                                 char err[CU_RULES_ERR_BYTES]);

size_t cu_rules_count(const struct cu_ruleset *rs);
const char *cu_rules_name(const struct cu_ruleset *rs, size_t i);

/* cu_rules_alert_of(rs, i): the severity of rule i's alert (an enum cu_severity), -1 when it
 * raises none. */
int cu_rules_alert_of(const struct cu_ruleset *rs, size_t i);
/* cu_rules_alerting(rs, name): whether rs (a struct cu_ruleset *) has a rule of that name that
 * raises an alert; the shape a playbook file's check asks for (cases/playbook.h). */
bool cu_rules_alerting(void *rs, const char *name);
size_t cu_rules_features(const struct cu_ruleset *rs, const struct cu_feature **out);

/* The default rule pack (config/rules/default.rules), built in. */
extern const char cu_rules_default_pack[];
extern const size_t cu_rules_default_pack_len;

/* A rule that fired. */
struct cu_fired {
    uint16_t rule;
    int16_t score;
};

/* The outcome of one event. */
struct cu_verdict {
    enum cu_decision decision;
    int score;
    unsigned actions;          /* CU_ACT_* */
    unsigned notify_templates; /* with CU_ACT_NOTIFY_CUSTOMER: which notices (bits as above) */
    int64_t freeze_ms, lock_ms;
    enum cu_severity severity; /* of the strongest alert */
    size_t nfired;
    struct cu_fired fired[CU_RULES_MAX];
    size_t nerrors; /* rules that failed at run time (division by zero, steps) */
    uint16_t errors[8];
};

/* cu_rules_eval(rs, ev, src, out): runs every rule on ev. A rule that fails at run time is
 * counted in out->nerrors and skipped; the others decide. */
void cu_rules_eval(const struct cu_ruleset *rs, const struct cu_mon_event *ev,
                   const struct cu_feature_source *src, struct cu_verdict *out);

/* What the rules that fired read: each feature once, with its value (or missing), in the
 * order first read. */
#define CU_READS_MAX 32
struct cu_reads {
    size_t n;
    bool more; /* they read more than CU_READS_MAX */
    uint16_t feature[CU_READS_MAX];
    double value[CU_READS_MAX];
    bool missing[CU_READS_MAX];
};

/* cu_rules_eval_reads(rs, ev, src, out, reads): cu_rules_eval, noting in reads (when not NULL)
 * the features the rules that fired read. */
void cu_rules_eval_reads(const struct cu_ruleset *rs, const struct cu_mon_event *ev,
                         const struct cu_feature_source *src, struct cu_verdict *out,
                         struct cu_reads *reads);

/* Rules not to run for one event (snoozed for its customer): bit i for rule i. */
struct cu_rule_mask {
    uint64_t bits[CU_RULES_MAX / 64];
};

/* cu_rules_eval_masked(rs, ev, src, out, reads, skip): cu_rules_eval_reads without the rules
 * in skip (NULL: none). */
void cu_rules_eval_masked(const struct cu_ruleset *rs, const struct cu_mon_event *ev,
                          const struct cu_feature_source *src, struct cu_verdict *out,
                          struct cu_reads *reads, const struct cu_rule_mask *skip);

/* cu_rules_find(rs, name): the index of the rule named, or -1. */
int cu_rules_find(const struct cu_ruleset *rs, const char *name);

/* Lists: cu_rules_lists(rs) of them; cu_rules_list_name(rs, i, managed, addresses) the name of
 * list i (NULL past the end), whether it is managed (`list NAME managed [addresses]`: filled
 * from the store) and whether it holds addresses and blocks only. */
size_t cu_rules_lists(const struct cu_ruleset *rs);
const char *cu_rules_list_name(const struct cu_ruleset *rs, size_t i, bool *managed,
                               bool *addresses);

/* cu_rules_list_set(rs, name, items, n, skipped): the items of the managed list named, replacing
 * what it held (one thread: the one that evaluates rs); an item longer than
 * CU_MON_ATTR_VALUE_MAX or, in an address list, one that is no address or block, is left out
 * and counted in *skipped. CU_E_NOT_FOUND when rs has no managed list of that name;
 * CU_E_TOO_LARGE past CU_RULES_LIST_ITEMS_MAX. Nothing changes on an error. */
CU_WUR enum cu_err cu_rules_list_set(struct cu_ruleset *rs, const char *name,
                                     const char *const *items, size_t n, size_t *skipped);

/* cu_rules_feature_text(rs, i): feature i as the rule file first wrote it (white space made
 * single spaces, at most 120 bytes and "..."), e.g. count(customer, 15m, "login_failed"). */
const char *cu_rules_feature_text(const struct cu_ruleset *rs, size_t i);

/* cu_rules_reason(rs, i): rule i's reason. */
const char *cu_rules_reason(const struct cu_ruleset *rs, size_t i);

#endif
