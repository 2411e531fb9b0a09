/*
 * alerts.h - the alerts queue (docs/monitoring.md, "Alerts"): one alert for each decision
 * whose rules named `alert`, opened in the decision's unit of work, worked by staff (assigned,
 * commented, resolved as a true or a false positive), each change in a unit of its own with
 * its audit record. The resolutions are the labels backtests read.
 */
#ifndef CU_MONITOR_ALERTS_H
#define CU_MONITOR_ALERTS_H

#include <stdbool.h>
#include <stdint.h>

#include "base/err.h"
#include "monitor/event.h"
#include "store/store.h"
#include "store/work.h"

#define CU_ALERT_ID_BYTES 21    /* "alr_" and 16 hex digits, NUL */
#define CU_ALERT_RULES_MAX 1024 /* the names of the rules that fired, separated by spaces */
#define CU_ALERT_COMMENT_MAX 2000
#define CU_ALERTS_PAGE_MAX 500

struct cu_alert {
    char id[CU_ALERT_ID_BYTES];
    char decision_id[CU_ALERT_ID_BYTES];
    char customer[CU_MON_REF_MAX + 1];
    char type[CU_MON_NAME_MAX + 1];
    char severity[12];
    char rules[CU_ALERT_RULES_MAX + 1];
    char status[12];     /* "open", "assigned", "resolved" */
    char assignee[64];   /* a staff member's id, or "" */
    char resolution[16]; /* "true_positive", "false_positive", or "" */
    char resolved_by[96];
    int64_t created_at, updated_at, resolved_at;
};

/* cu_alert_open(db, w, decision_id, customer, type, severity, rules): opens the alert of a
 * decision, in w's savepoint on db (the decision's unit). */
CU_WUR enum cu_err cu_alert_open(struct cu_db *db, const struct cu_work *w, const char *decision_id,
                                 const char *customer, const char *type, const char *severity,
                                 const char *rules);

/* cu_alerts_list(db, status, after, limit, out, n): alerts newest first, of that status (NULL:
 * any), after the alert `after` (NULL: from the newest); *out cu_free'd by the caller. */
CU_WUR enum cu_err cu_alerts_list(struct cu_db *db, const char *status, const char *after,
                                  size_t limit, struct cu_alert **out, size_t *n);

/* cu_alert_get(db, id, out): one alert. CU_E_NOT_FOUND. */
CU_WUR enum cu_err cu_alert_get(struct cu_db *db, const char *id, struct cu_alert *out);

/* One comment of an alert. */
struct cu_alert_comment {
    int64_t at;
    char author[96];
    char *body; /* owned */
};

/* cu_alert_comments(db, id, out, n): an alert's comments in order (at most 1,000);
 * cu_alert_comments_free. */
CU_WUR enum cu_err cu_alert_comments(struct cu_db *db, const char *id,
                                     struct cu_alert_comment **out, size_t *n);
void cu_alert_comments_free(struct cu_alert_comment *c, size_t n);

/* What staff do with an alert, in w on db (each audited: alert.assign, alert.comment,
 * alert.resolve), the actor taken from w's context. out: the alert as it is after.
 * CU_E_NOT_FOUND; CU_E_EXISTS for a resolved alert (it is not changed again). */
CU_WUR enum cu_err cu_alert_assign(struct cu_work *w, struct cu_db *db, const char *id,
                                   const char *assignee, struct cu_alert *out);
CU_WUR enum cu_err cu_alert_comment(struct cu_work *w, struct cu_db *db, const char *id,
                                    const char *body, struct cu_alert *out);
CU_WUR enum cu_err cu_alert_resolve(struct cu_work *w, struct cu_db *db, const char *id,
                                    bool true_positive, struct cu_alert *out);

/* cu_alert_settle(w, db, id, true_positive, changed): resolves the alert with the case it
 * belongs to, unless it is resolved already (*changed says), without a record of its own: the
 * case's closing record counts them (cases/cases.h). */
CU_WUR enum cu_err cu_alert_settle(struct cu_work *w, struct cu_db *db, const char *id,
                                   bool true_positive, bool *changed);

/* cu_alert_id_valid(id): "alr_" and 16 lower-case hex digits. */
bool cu_alert_id_valid(const char *id);

#endif
