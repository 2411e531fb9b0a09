/*
 * playbook.h - playbooks (docs/playbooks.md): declarative containment plans, run on a case
 * when one of their rules fires in a decision that opens or joins it, or when the case
 * reaches their severity. Each step is automatic (run at once, in the unit of work that
 * triggered it: the same request as the decision) or waits for a staff member's confirmation
 * (POST /v1/cases/{id}/steps/{n}/confirm, under cases.contain, which the access policy may
 * hold for four-eyes approval). Every step and its result lands in the case's timeline; a
 * playbook runs once on a case.
 *
 *   # comment
 *   playbook account_takeover
 *     when rule ato_new_device_transfer     (one or more: any of them)
 *     when severity high                    (the case at high or above)
 *     step freeze_accounts 24h
 *     step revoke_sessions
 *     step notify_customer accounts_frozen
 *     step page_oncall
 *     step force_password_reset confirm
 *
 * Actions: freeze_accounts [DURATION], hold_transfers, revoke_sessions, lock_sign_in
 * [DURATION], force_password_reset, notify_customer [security_notice|accounts_frozen],
 * page_oncall. A duration is a number and s, m, h or d (at most 30d). Errors name the line
 * and the column.
 */
#ifndef CU_CASES_PLAYBOOK_H
#define CU_CASES_PLAYBOOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "base/err.h"
#include "cases/cases.h"
#include "store/store.h"
#include "store/work.h"

#define CU_PLAYBOOK_NAME_MAX 48
#define CU_PLAYBOOKS_MAX 64
#define CU_PLAYBOOK_STEPS_MAX 16
#define CU_PLAYBOOK_RULES_MAX 16
#define CU_PLAYBOOK_FILE_MAX (256 << 10)
#define CU_PLAYBOOK_ERR_BYTES 400

enum cu_pb_action {
    CU_PB_FREEZE_ACCOUNTS,
    CU_PB_HOLD_TRANSFERS,
    CU_PB_REVOKE_SESSIONS,
    CU_PB_LOCK_SIGN_IN,
    CU_PB_FORCE_PASSWORD_RESET,
    CU_PB_NOTIFY_CUSTOMER,
    CU_PB_PAGE_ONCALL,
    CU_PB__COUNT
};

const char *cu_pb_action_name(enum cu_pb_action a);
bool cu_pb_action_parse(const char *name, enum cu_pb_action *out);

struct cu_playbooks;

/* cu_playbooks_parse(text, len, name, rule_known, arg, out, err): the playbooks of a file's
 * text (name: for errors). rule_known(arg, rule) says whether a rule exists and alerts (NULL:
 * any name is taken). CU_E_INVALID with err "NAME:LINE:COLUMN: what is wrong";
 * CU_E_TOO_LARGE past CU_PLAYBOOK_FILE_MAX. */
CU_WUR enum cu_err cu_playbooks_parse(const char *text, size_t len, const char *name,
                                      bool (*rule_known)(void *arg, const char *rule), void *arg,
                                      struct cu_playbooks **out, char err[CU_PLAYBOOK_ERR_BYTES]);

/* cu_playbooks_load(path, rule_known, arg, out, err): cu_playbooks_parse of a file. */
CU_WUR enum cu_err cu_playbooks_load(const char *path,
                                     bool (*rule_known)(void *arg, const char *rule), void *arg,
                                     struct cu_playbooks **out, char err[CU_PLAYBOOK_ERR_BYTES]);

void cu_playbooks_free(struct cu_playbooks *pb);
size_t cu_playbooks_count(const struct cu_playbooks *pb);
/* cu_playbooks_name(pb, i): the i-th playbook's name, NULL past the end. */
const char *cu_playbooks_name(const struct cu_playbooks *pb, size_t i);
/* cu_playbooks_find(pb, name): the index of the playbook of that name, or -1. */
int cu_playbooks_find(const struct cu_playbooks *pb, const char *name);
/* cu_playbooks_rule(pb, i): a rule that triggers playbook i ("" when only its severity). */
const char *cu_playbooks_rule(const struct cu_playbooks *pb, size_t i);

/* What a step does, given by the server (api/app.c). run: the action on the case's customer
 * in w; CU_OK with *result (an object, or NULL) when done; CU_E_UNAVAILABLE when the unit
 * cannot take it now (a batch's unit without room for its audit record): the step then waits
 * for a confirmation; CU_E_BUSY, CU_E_NOMEM, CU_E_STORE, CU_E_AUDIT fail the unit; any other
 * error is the step's failure, in its result. */
struct cu_playbook_effects {
    enum cu_err (*run)(void *arg, struct cu_work *w, struct cu_db *db, const struct cu_case *c,
                       const char *customer, enum cu_pb_action action, const char *argument,
                       int64_t ms, json_t **result);
    void *arg;
};

/* cu_playbooks_run(pb, w, db, case_id, customer, rules, staff, fx, ran): runs, in w, every
 * playbook not yet run on the case for customer (the alert's, or "" for the case's own) whose
 * rule is one of rules (the names of the rules that fired, separated by spaces; NULL: none) or
 * whose severity the case has reached; *ran counts them. staff: a staff member's change (a
 * case opened or its severity raised) started them: every step then waits for a confirmation
 * under cases.contain, automatic or not. Each run is audited (case.playbook) while w has room
 * for a record beside the unit's own. */
CU_WUR enum cu_err cu_playbooks_run(const struct cu_playbooks *pb, struct cu_work *w,
                                    struct cu_db *db, const char *case_id, const char *customer,
                                    const char *rules, bool staff,
                                    const struct cu_playbook_effects *fx, size_t *ran);

/* cu_playbooks_run_one(pb, w, db, case_id, index, fx): runs playbook index on the case now
 * (a drill), once: CU_E_EXISTS when it ran on the case already. */
CU_WUR enum cu_err cu_playbooks_run_one(const struct cu_playbooks *pb, struct cu_work *w,
                                        struct cu_db *db, const char *case_id, size_t index,
                                        const struct cu_playbook_effects *fx);

/* cu_playbook_step_decide(w, db, case_id, n, confirm, fx, why): a waiting step confirmed (run
 * now, done or failed) or declined (skipped), audited (case.step). CU_E_NOT_FOUND for no
 * such step; CU_E_EXISTS (why) for a step that does not wait. */
CU_WUR enum cu_err cu_playbook_step_decide(struct cu_work *w, struct cu_db *db, const char *case_id,
                                           int64_t n, bool confirm,
                                           const struct cu_playbook_effects *fx,
                                           char why[CU_CASE_WHY_BYTES]);

/* cu_playbook_duration(text, ms): a duration "30s", "15m", "2h", "7d" (1s..30d). */
bool cu_playbook_duration(const char *text, int64_t *ms);

#endif
