/*
 * cases.h - incident cases (docs/cases.md): what staff work when something happens. An alert
 * from monitoring joins the open case that shares one of its observables (the customer, the
 * address, the device, the payee: [cases] group_by) and saw an alert within [cases]
 * group_minutes, or opens a case of its own, in the decision's unit of work. A case has a
 * severity, an assignee, a stage, tasks, notes, observables (linking the cases that share
 * them), the alerts and decisions behind it, the steps of the playbooks run on it, and a
 * timeline of everything done; every change is a unit of work with its audit record.
 *
 * Stages, in order: detected, assessing, contained, eradicated, recovered, closed. A case
 * moves one stage forward at a time (none is skipped and none is gone back to), or from any
 * open stage to false_positive. closed and false_positive are final and need a resolution;
 * closing a case of severity high or critical also needs a written review (what caused it,
 * what was done, what changes).
 */
#ifndef CU_CASES_CASES_H
#define CU_CASES_CASES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "base/buf.h"
#include "base/err.h"
#include "store/store.h"
#include "store/work.h"

#define CU_CASE_ID_BYTES 21         /* "cas_" and 16 hex digits, NUL */
#define CU_CASE_TITLE_MAX 200       /* bytes of a title */
#define CU_CASE_TEXT_MAX 4000       /* a note, a resolution, each part of a review */
#define CU_CASE_VALUE_MAX 96        /* an observable's value */
#define CU_CASE_ACTOR_BYTES 96      /* "staff:stf_…", "system" */
#define CU_CASES_PAGE_MAX 500       /* cases a list returns at most */
#define CU_CASE_TASKS_MAX 200       /* tasks of one case */
#define CU_CASE_OBSERVABLES_MAX 500 /* observables of one case */
#define CU_CASE_TIMELINE_SHOWN 2000 /* entries a case's document carries (the newest) */
#define CU_CASE_WHY_BYTES 256

enum cu_case_stage {
    CU_STAGE_DETECTED,
    CU_STAGE_ASSESSING,
    CU_STAGE_CONTAINED,
    CU_STAGE_ERADICATED,
    CU_STAGE_RECOVERED,
    CU_STAGE_CLOSED,
    CU_STAGE_FALSE_POSITIVE,
    CU_STAGE__COUNT
};

const char *cu_case_stage_name(enum cu_case_stage s);
bool cu_case_stage_parse(const char *name, enum cu_case_stage *out);
/* cu_case_stage_open(s): whether a case at s is still worked (not closed or false_positive). */
bool cu_case_stage_open(enum cu_case_stage s);

/* cu_case_move_check(from, to, severity, has_resolution, has_review, why): whether a case at
 * from, of that severity (0 low .. 3 critical), may move to `to` with what it is given: CU_OK;
 * CU_E_EXISTS with why for a move the stage machine refuses (a skipped stage, a stage gone
 * back to, a final case); CU_E_INVALID with why for a resolution or a review missing. */
CU_WUR enum cu_err cu_case_move_check(enum cu_case_stage from, enum cu_case_stage to, int severity,
                                      bool has_resolution, bool has_review,
                                      char why[CU_CASE_WHY_BYTES]);

/* Severities are monitoring's: "low", "medium", "high", "critical". */
int cu_case_severity_parse(const char *name); /* 0..3, or -1 */
const char *cu_case_severity_name(int s);

/* Observable kinds. */
bool cu_case_observable_kind_known(const char *kind); /* customer ip device payee account */
/* cu_case_observable_valid(kind, value): value is 1..CU_CASE_VALUE_MAX bytes of printable
 * ASCII without spaces, of the kind's shape (a customer "cus_…", an account "acc_…"). */
bool cu_case_observable_valid(const char *kind, const char *value);

bool cu_case_id_valid(const char *id);

struct cu_case {
    char id[CU_CASE_ID_BYTES];
    int64_t created_at, updated_at, last_alert_at, closed_at;
    char title[CU_CASE_TITLE_MAX + 1];
    char severity[12];
    char stage[16];
    char assignee[64];
    char customer[CU_CASE_VALUE_MAX + 1];
    char source[12]; /* alert, report, staff, drill */
    bool drill;
    char closed_by[CU_CASE_ACTOR_BYTES];
    int64_t alerts; /* how many alerts it has (cu_case_get, cu_cases_list) */
};

struct cu_cases;

/* Grouping: the observables an alert joins a case by. */
#define CU_CASES_BY_CUSTOMER 1u
#define CU_CASES_BY_IP 2u
#define CU_CASES_BY_DEVICE 4u
#define CU_CASES_BY_PAYEE 8u

struct cu_cases_opts {
    int64_t group_ms;  /* an alert joins a case that saw one this recently; 0: never joins */
    unsigned group_by; /* CU_CASES_BY_* */
};

CU_WUR enum cu_err cu_cases_new(const struct cu_cases_opts *o, struct cu_cases **out);
void cu_cases_free(struct cu_cases *cs);

/* What monitoring tells of an alert it opened (in the decision's unit). */
struct cu_case_alert {
    const char *alert_id, *decision_id;
    const char *customer; /* the event's customer reference (may be "") */
    const char *type;     /* the event's type */
    const char *severity;
    const char *rules; /* the names of the rules that fired, separated by spaces */
    const char *ip;    /* the address as custodia keeps it (a pseudonym when hashed), or "" */
    const char *device, *payee;
    bool drill;         /* the customer is a drill customer */
    const char *source; /* what opens a case: NULL for "alert" ("drill" for a drill's) */
};

/* cu_cases_on_alert(cs, w, db, a, case_id, before): the alert joins the open case it groups
 * with, or opens one (stage detected), in w on db: the case's observables and severity grow,
 * its timeline says so, and the first change of each case in a run of w is audited
 * (case.open, case.alert) while w has room for one record beside the unit's own. case_id
 * tells which case; *before its severity before the alert (0..3), -1 when the alert opened it. */
CU_WUR enum cu_err cu_cases_on_alert(struct cu_cases *cs, struct cu_work *w, struct cu_db *db,
                                     const struct cu_case_alert *a, char case_id[CU_CASE_ID_BYTES],
                                     int *before);

/* cu_case_open(w, db, title, severity, customer, source, drill, out): a new case (stage
 * detected), audited (case.open). customer may be "". */
CU_WUR enum cu_err cu_case_open(struct cu_work *w, struct cu_db *db, const char *title,
                                const char *severity, const char *customer, const char *source,
                                bool drill, struct cu_case *out);

/* cu_case_get(db, id, lock, out): one case (lock: FOR UPDATE). CU_E_NOT_FOUND. */
CU_WUR enum cu_err cu_case_get(struct cu_db *db, const char *id, bool lock, struct cu_case *out);

struct cu_case_filter {
    const char *stage;    /* a stage, "open" (any open stage), or NULL */
    const char *severity; /* NULL: any */
    const char *assignee; /* a staff id, "none", or NULL */
    const char *customer;
    const char *obs_kind, *obs_value; /* cases with this observable; NULL: any */
    bool drills;                      /* drill cases too */
};

/* cu_cases_list(db, f, after, limit, out, n): cases most recently changed first, after the
 * case `after` (CU_E_NOT_FOUND when it names none); *out cu_free'd. */
CU_WUR enum cu_err cu_cases_list(struct cu_db *db, const struct cu_case_filter *f,
                                 const char *after, size_t limit, struct cu_case **out, size_t *n);

/* What staff do with a case, in w on db, each audited (case.assign, case.severity,
 * case.stage, case.note, case.task, case.observable) and in its timeline; the actor is w's.
 * CU_E_NOT_FOUND for an unknown case; CU_E_EXISTS (why says) for a final case or a move the
 * stage machine refuses; CU_E_INVALID (why says) for bad input. out (may be NULL): the case
 * after. */
CU_WUR enum cu_err cu_case_assign(struct cu_work *w, struct cu_db *db, const char *id,
                                  const char *assignee, struct cu_case *out,
                                  char why[CU_CASE_WHY_BYTES]);
CU_WUR enum cu_err cu_case_set_severity(struct cu_work *w, struct cu_db *db, const char *id,
                                        const char *severity, struct cu_case *out,
                                        char why[CU_CASE_WHY_BYTES]);
/* resolution: required for closed and false_positive; review: an object {cause, actions,
 * changes} of non-empty strings, required to close a high or critical case. Closing resolves
 * the case's open alerts (true_positive for closed, false_positive for false_positive). */
CU_WUR enum cu_err cu_case_move(struct cu_work *w, struct cu_db *db, const char *id,
                                const char *stage, const char *resolution, const json_t *review,
                                struct cu_case *out, char why[CU_CASE_WHY_BYTES]);
CU_WUR enum cu_err cu_case_note(struct cu_work *w, struct cu_db *db, const char *id,
                                const char *body, char why[CU_CASE_WHY_BYTES]);
CU_WUR enum cu_err cu_case_task_add(struct cu_work *w, struct cu_db *db, const char *id,
                                    const char *title, const char *assignee, int64_t *n,
                                    char why[CU_CASE_WHY_BYTES]);
/* status: "done" or "cancelled" (an open task only). */
CU_WUR enum cu_err cu_case_task_set(struct cu_work *w, struct cu_db *db, const char *id, int64_t n,
                                    const char *status, char why[CU_CASE_WHY_BYTES]);
CU_WUR enum cu_err cu_case_observable_add(struct cu_work *w, struct cu_db *db, const char *id,
                                          const char *kind, const char *value,
                                          char why[CU_CASE_WHY_BYTES]);

/* cu_case_timeline_add(w, db, id, kind, body): appends to the case's timeline (body: a JSON
 * object, stolen), without an audit record of its own: for the services that act on a case
 * and audit what they do (playbooks, reports). The case must be locked by w already or
 * changed in it (cu_case_get with lock). */
CU_WUR enum cu_err cu_case_timeline_add(struct cu_work *w, struct cu_db *db, const char *id,
                                        const char *kind, json_t *body);

/* cu_case_touch(w, db, id): the case's updated_at is w's time (and it is locked). */
CU_WUR enum cu_err cu_case_touch(struct cu_work *w, struct cu_db *db, const char *id);

/* cu_case_document(db, id, out): the case as one JSON object (docs/cases.md, "The case
 * document"): its fields, review, alerts, observables with the other cases sharing each,
 * tasks, steps, reports, and the newest CU_CASE_TIMELINE_SHOWN timeline entries. */
CU_WUR enum cu_err cu_case_document(struct cu_db *db, const char *id, json_t **out);

/* cu_case_html(doc, out): the document as a self-contained HTML report (no script, no
 * external resource; every value escaped). */
CU_WUR enum cu_err cu_case_html(const json_t *doc, struct cu_buf *out);

/* cu_case_drill_customer(db, customer, drill): whether customer is a drill's (drill_customers,
 * made by custodia drill run). */
CU_WUR enum cu_err cu_case_drill_customer(struct cu_db *db, const char *customer, bool *drill);

/* ---- customers' reports (POST /v1/me/reports) ---- */

#define CU_REPORT_ID_BYTES 21   /* "rpt_" and 16 hex digits, NUL */
#define CU_REPORT_TEXT_MAX 1000 /* bytes of a report's text (a secret of the customer's) */
#define CU_REPORT_ANSWER_MAX 2000
#define CU_REPORTS_PER_CUSTOMER 30 /* kept of one customer */

struct cu_case_report {
    char id[CU_REPORT_ID_BYTES];
    char case_id[CU_CASE_ID_BYTES];
    char stage[16];     /* its case's */
    char concerns[128]; /* JSON text: {} or {"transfer": …} or {"session": …} */
    int64_t created_at, answered_at;
    char answer[CU_REPORT_ANSWER_MAX + 1];
};

/* cu_case_report_add(w, db, case_id, report, customer, alert, concerns): the report in its
 * case (a row, a timeline entry, an audit record case.report). */
CU_WUR enum cu_err cu_case_report_add(struct cu_work *w, struct cu_db *db, const char *case_id,
                                      const char *report, const char *customer, const char *alert,
                                      const char *concerns);
/* cu_case_reports_of(db, customer, out, n): the customer's reports, newest first (at most
 * CU_REPORTS_PER_CUSTOMER); *out cu_free'd. */
CU_WUR enum cu_err cu_case_reports_of(struct cu_db *db, const char *customer,
                                      struct cu_case_report **out, size_t *n);
/* cu_case_report_answer(w, db, case_id, report, text, customer, why): the staff's answer the
 * customer reads (replacing an earlier one), audited (case.answer, its length only); *customer
 * gets the report's customer. CU_E_NOT_FOUND when the case has no such report. */
CU_WUR enum cu_err cu_case_report_answer(struct cu_work *w, struct cu_db *db, const char *case_id,
                                         const char *report, const char *text, char customer[32],
                                         char why[CU_CASE_WHY_BYTES]);
/* cu_case_report_status(stage): what the customer is told of its report's case: "received",
 * "investigating" or "resolved". */
const char *cu_case_report_status(const char *stage);

/* ---- customers' own freezes and devices ---- */

/* cu_self_freeze_set(db, customer, now): the customer froze their accounts (any unfreeze asked
 * for is called off). */
CU_WUR enum cu_err cu_self_freeze_set(struct cu_db *db, const char *customer, int64_t now);
/* cu_self_freeze_get(db, customer, frozen_at, unfreeze_at): CU_E_NOT_FOUND when the customer
 * has not frozen their accounts; *unfreeze_at 0 when no unfreeze waits. */
CU_WUR enum cu_err cu_self_freeze_get(struct cu_db *db, const char *customer, int64_t *frozen_at,
                                      int64_t *unfreeze_at);
/* cu_self_unfreeze_at(db, customer, at): the unfreeze waits until at (CU_E_NOT_FOUND: not
 * frozen by the customer). */
CU_WUR enum cu_err cu_self_unfreeze_at(struct cu_db *db, const char *customer, int64_t at);
/* cu_self_unfreeze_due(db, now, out, max, n): customers whose unfreeze is due. */
CU_WUR enum cu_err cu_self_unfreeze_due(struct cu_db *db, int64_t now, char (*out)[32], size_t max,
                                        size_t *n);
CU_WUR enum cu_err cu_self_freeze_clear(struct cu_db *db, const char *customer);

/* cu_device_forget(db, customer, device, now): a device the customer forgot, now;
 * cu_device_forgotten(db, customer, out): the devices they forgot, as members device: time (ms)
 * of the JSON object out. */
CU_WUR enum cu_err cu_device_forget(struct cu_db *db, const char *customer, const char *device,
                                    int64_t now);
CU_WUR enum cu_err cu_device_forgotten(struct cu_db *db, const char *customer, json_t *out);

/* cu_self_unfreeze_claim(db, customer, now, claimed): the customer's due unfreeze taken (its row
 * deleted) by this unit: *claimed false when another took it, or a freeze called it off. */
CU_WUR enum cu_err cu_self_unfreeze_claim(struct cu_db *db, const char *customer, int64_t now,
                                          bool *claimed);

/* cu_cases_forget(db, customer): an erasure: the customer's own freezes, forgotten devices, and
 * the staff's answers to their reports go (the reports' text, a secret of the customer's, goes
 * with the customer's key). */
CU_WUR enum cu_err cu_cases_forget(struct cu_db *db, const char *customer);

/* cu_case_count(db, sql, id, n): the count a "SELECT COUNT(*) … WHERE case_id = $1" of this
 * module's gives for case id (0 on an error). */
CU_WUR enum cu_err cu_case_count(struct cu_db *db, const char *sql, const char *id, int64_t *n);

/* cu_case_actor(w, out): w's actor as cases write it ("staff:stf_…", "apikey:key_…",
 * "system"). */
void cu_case_actor(const struct cu_work *w, char out[CU_CASE_ACTOR_BYTES]);

#endif
