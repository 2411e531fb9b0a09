/*
 * handlers.h - the request handlers that the route table (routes.c) names, one group per
 * service. Each validates its input fully, runs its service calls in one store transaction
 * with the audit record of what it did, and answers JSON.
 */
#ifndef CU_API_HANDLERS_H
#define CU_API_HANDLERS_H

#include "access/approval.h"
#include "api/http.h"

/* routes.c */
enum cu_err cu_handle_health(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_metrics(struct cu_req *req, struct cu_resp *resp);

/* apikeys_routes.c */
enum cu_err cu_handle_apikeys_list(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_apikeys_create(struct cu_req *req, struct cu_resp *resp);

/* approvals_routes.c: four-eyes approval (docs/api.md, "Approvals"). cu_approval_request
 * makes the pending request of an action the policy holds for approval, in place of its
 * handler. */
enum cu_err cu_approval_request(struct cu_req *req, struct cu_resp *resp);
/* cu_approval_json(a): a request as the API shows it, without its action. */
json_t *cu_approval_json(const struct cu_approval *a);
enum cu_err cu_handle_approvals_list(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_approval_get(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_approval_approve(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_approval_reject(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_approval_cancel(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_approval_result(struct cu_req *req, struct cu_resp *resp);
/* cu_approvals_housekeep(app, now): expires pending requests past their time and runs the
 * approved ones a stopped run left (the background thread, every few seconds). */
void cu_approvals_housekeep(struct cu_app *app, int64_t now);
enum cu_err cu_handle_apikey_get(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_apikey_revoke(struct cu_req *req, struct cu_resp *resp);

/* audit_routes.c */
enum cu_err cu_handle_audit_list(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_audit_checkpoint(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_audit_proof(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_audit_consistency(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_audit_public_key(struct cu_req *req, struct cu_resp *resp);

/* customers_routes.c */
enum cu_err cu_handle_customers_create(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_customers_list(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_customer_get(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_customer_patch(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_customer_erase(struct cu_req *req, struct cu_resp *resp);

/* auth_routes.c: sign-in, and what a signed-in customer or staff member does for themselves */
enum cu_err cu_handle_auth_login(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_auth_mfa(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_auth_step_up(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_auth_logout(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_me(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_me_password(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_me_totp_begin(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_me_totp_confirm(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_me_recovery_codes(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_me_sessions(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_me_sessions_revoke(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_me_session_revoke(struct cu_req *req, struct cu_resp *resp);

/* staff_routes.c: staff administration, and credentials of customers */
enum cu_err cu_handle_staff_create(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_staff_list(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_staff_get(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_staff_patch(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_access_explain(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_staff_password(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_staff_lockout_clear(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_customer_password(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_customer_credentials(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_customer_lockout_clear(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_customer_sessions_revoke(struct cu_req *req, struct cu_resp *resp);

/* ledger_routes.c: accounts, movements and the change stream (docs/api.md) */
enum cu_err cu_handle_accounts_open(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_customer_limits(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_customer_accounts(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_account_get(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_account_entries(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_account_freeze(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_account_unfreeze(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_account_close(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_transfers_create(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_transfers_batch(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_transfers_list(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_transfer_get(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_transfer_post(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_transfer_void(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_transfer_reverse(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_deposits_create(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_withdrawals_create(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_ledger_changes(struct cu_req *req, struct cu_resp *resp);

/* monitor_routes.c: events posted for a decision, and the decisions (docs/api.md) */
enum cu_err cu_handle_events_create(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_decision_get(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_alerts_list(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_alert_get(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_alert_assign(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_alert_comment(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_alert_resolve(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_cases_list(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_cases_create(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_case_get(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_case_export(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_case_assign(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_case_severity(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_case_stage(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_case_note(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_case_task_add(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_case_task_set(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_case_observable(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_case_step_confirm(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_case_step_decline(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_me_security(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_me_device_forget(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_me_reports_create(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_me_freeze(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_me_unfreeze(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_case_report_answer(struct cu_req *req, struct cu_resp *resp);
/* cu_case_respond(req, resp, id, status): the case's document as the answer (cases_routes.c). */
enum cu_err cu_case_respond(struct cu_req *req, struct cu_resp *resp, const char *id, int status);
enum cu_err cu_handle_notifications_list(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_notification_get(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_notification_replay(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_security_tips(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_monitor_lists(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_monitor_list(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_monitor_list_add(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_monitor_list_remove(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_monitor_snoozes(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_monitor_snooze(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_monitor_unsnooze(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_rulesets_list(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_ruleset_get(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_ruleset_propose(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_ruleset_activate(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_ruleset_retire(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_backtest(struct cu_req *req, struct cu_resp *resp);

#endif
