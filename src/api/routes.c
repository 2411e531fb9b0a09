/*
 * routes.c - the route table, and the handlers for health and metrics. The handlers of each
 * service live in their own file (apikeys_routes.c, audit_routes.c) and are declared in
 * handlers.h.
 */
#include <stdio.h>
#include <string.h>

#include "api/handlers.h"
#include "api/http.h"
#include "api/server.h"
#include "base/clock.h"
#include "base/json.h"
#include "base/log.h"
#include "base/mem.h"
#include "crypto/crypto.h"
#include "cu_version.h"
#include "monitor/monitor.h"
#include "notify/notify.h"

/* The store check behind health, run at most once per CU_HEALTH_CHECK_MS and shared by every
 * caller in between, so that an unauthenticated flood of health checks cannot turn into a
 * flood of database work. */
#define CU_HEALTH_CHECK_MS 1000

static enum cu_err store_health(struct cu_app *app, int64_t now_ms, int64_t *checked_ms)
{
    int64_t last = atomic_load(&app->health_checked_ms);
    char err[CU_STORE_ERR_BYTES];
    enum cu_err rc;

    if (last != 0 && now_ms - last < CU_HEALTH_CHECK_MS && now_ms >= last) {
        *checked_ms = last;
        return (enum cu_err)atomic_load(&app->health_rc);
    }
    rc = cu_store_check(app->store, err);
    if (rc != CU_OK)
        cu_log(CU_LOG_WARN, "health.store_failing", CU_LS("error", err));
    atomic_store(&app->health_rc, (int)rc);
    atomic_store(&app->health_checked_ms, now_ms);
    *checked_ms = now_ms;
    return rc;
}

enum cu_err cu_handle_health(struct cu_req *req, struct cu_resp *resp)
{
    struct cu_app *app = req->app;
    char now[CU_RFC3339_BYTES], checked[CU_RFC3339_BYTES];
    int64_t now_ms = cu_clock_now_ms(), checked_ms = 0;
    enum cu_err src = store_health(app, now_ms, &checked_ms);
    bool audit_ok = !atomic_load(&app->audit_failing), ok = src == CU_OK && audit_ok;

    cu_clock_format(now_ms, now);
    cu_clock_format(checked_ms, checked);
    /* Written by hand rather than through jansson: this is the route load balancers hit most,
     * and every value here is a fixed word, a version, a backend name, a time or a number. */
    resp->status = ok ? 200 : 503;
    resp->content_type = "application/json";
    return cu_buf_printf(
        &resp->body,
        "{\"status\":\"%s\",\"version\":\"%s\",\"store\":\"%s\","
        "\"store_backend\":\"%s\",\"store_checked_at\":\"%s\",\"audit\":\"%s\","
        "\"erasure_purge\":\"%s\",\"time\":\"%s\",\"uptime_seconds\":%lld,"
        "\"reasons\":[%s%s%s%s%s]}\n",
        ok ? "ok" : "failing", CU_VERSION, src == CU_OK ? "ok" : "failing",
        cu_store_backend(app->store), checked, audit_ok ? "ok" : "failing",
        cu_app_purge_pending(app) ? "pending" : "ok", now,
        (long long)((now_ms - app->started_at_ms) / 1000),
        src == CU_OK ? "" : "\"store: ", src == CU_OK ? "" : cu_err_problem_code(src),
        src == CU_OK ? "" : "\"", src != CU_OK && !audit_ok ? "," : "",
        audit_ok ? "" : "\"audit: the last append failed\"");
}

enum cu_err cu_handle_metrics(struct cu_req *req, struct cu_resp *resp)
{
    struct cu_committer_stats cs;
    enum cu_err rc;

    if (req->app->committer != NULL)
        cu_committer_stats(req->app->committer, &cs);
    rc = cu_metrics_render(req->app->metrics, &resp->body, req->app->started_at_ms,
                           req->app->committer != NULL ? &cs : NULL);
    if (rc == CU_OK && req->app->monitor != NULL)
        rc = cu_monitor_metrics(req->app->monitor, &resp->body);
    if (rc == CU_OK)
        rc = cu_notify_metrics(req->app->notify, &resp->body);
    resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
    resp->status = 200;
    return rc;
}

static const struct cu_route route_table[] = {
    {CU_GET, 0, "/v1/health", cu_handle_health, 0},
    {CU_GET, 0, "/metrics", cu_handle_metrics, CU_SCOPE_METRICS_READ},
    {CU_GET, 0, "/v1/apikeys", cu_handle_apikeys_list, CU_SCOPE_APIKEYS_READ},
    {CU_POST, 0, "/v1/apikeys", cu_handle_apikeys_create, CU_SCOPE_APIKEYS_WRITE},
    {CU_GET, 0, "/v1/apikeys/{id}", cu_handle_apikey_get, CU_SCOPE_APIKEYS_READ},
    {CU_DELETE, 0, "/v1/apikeys/{id}", cu_handle_apikey_revoke, CU_SCOPE_APIKEYS_WRITE},
    {CU_GET, CU_ROUTE_SIGNED, "/v1/approvals", cu_handle_approvals_list, 0},
    {CU_GET, CU_ROUTE_SIGNED, "/v1/approvals/{id}", cu_handle_approval_get, 0},
    {CU_POST, CU_ROUTE_SIGNED, "/v1/approvals/{id}/approve", cu_handle_approval_approve, 0},
    {CU_POST, CU_ROUTE_SIGNED, "/v1/approvals/{id}/reject", cu_handle_approval_reject, 0},
    {CU_POST, CU_ROUTE_SIGNED, "/v1/approvals/{id}/cancel", cu_handle_approval_cancel, 0},
    {CU_GET, CU_ROUTE_SIGNED, "/v1/approvals/{id}/result", cu_handle_approval_result, 0},
    {CU_POST, CU_ROUTE_CUSTOMER, "/v1/customers", cu_handle_customers_create,
     CU_SCOPE_CUSTOMERS_WRITE},
    {CU_GET, CU_ROUTE_CUSTOMER, "/v1/customers", cu_handle_customers_list, CU_SCOPE_CUSTOMERS_READ},
    {CU_GET, CU_ROUTE_CUSTOMER, "/v1/customers/{id}", cu_handle_customer_get,
     CU_SCOPE_CUSTOMERS_READ},
    {CU_PATCH, CU_ROUTE_CUSTOMER, "/v1/customers/{id}", cu_handle_customer_patch,
     CU_SCOPE_CUSTOMERS_WRITE},
    {CU_DELETE, CU_ROUTE_CUSTOMER, "/v1/customers/{id}", cu_handle_customer_erase,
     CU_SCOPE_CUSTOMERS_ERASE},
    {CU_GET, 0, "/v1/audit", cu_handle_audit_list, CU_SCOPE_AUDIT_READ},
    {CU_GET, 0, "/v1/audit/checkpoints/latest", cu_handle_audit_checkpoint, CU_SCOPE_AUDIT_READ},
    {CU_GET, 0, "/v1/audit/{seq}/proof", cu_handle_audit_proof, CU_SCOPE_AUDIT_READ},
    {CU_GET, 0, "/v1/audit/consistency", cu_handle_audit_consistency, CU_SCOPE_AUDIT_READ},
    {CU_GET, 0, "/v1/audit/public-key", cu_handle_audit_public_key, CU_SCOPE_AUDIT_READ},
    /* sign-in */
    {CU_POST, CU_ROUTE_PUBLIC | CU_ROUTE_HASH, "/v1/auth/login", cu_handle_auth_login, 0},
    {CU_POST, CU_ROUTE_PUBLIC, "/v1/auth/mfa", cu_handle_auth_mfa, 0},
    {CU_POST, CU_ROUTE_SESSION | CU_ROUTE_ENROL | CU_ROUTE_HASH, "/v1/auth/step-up",
     cu_handle_auth_step_up, 0},
    {CU_POST, CU_ROUTE_SESSION | CU_ROUTE_ENROL, "/v1/auth/logout", cu_handle_auth_logout, 0},
    {CU_GET, CU_ROUTE_SESSION | CU_ROUTE_ENROL, "/v1/auth/sessions", cu_handle_me_sessions, 0},
    /* the signed-in customer or staff member */
    {CU_GET, CU_ROUTE_SESSION | CU_ROUTE_ENROL, "/v1/me", cu_handle_me, 0},
    {CU_POST, CU_ROUTE_SESSION | CU_ROUTE_FRESH | CU_ROUTE_ENROL | CU_ROUTE_HASH, "/v1/me/password",
     cu_handle_me_password, 0},
    {CU_POST, CU_ROUTE_SESSION | CU_ROUTE_FRESH | CU_ROUTE_ENROL, "/v1/me/mfa/totp",
     cu_handle_me_totp_begin, 0},
    {CU_POST, CU_ROUTE_SESSION | CU_ROUTE_FRESH | CU_ROUTE_ENROL, "/v1/me/mfa/totp/confirm",
     cu_handle_me_totp_confirm, 0},
    {CU_POST, CU_ROUTE_SESSION | CU_ROUTE_FRESH, "/v1/me/recovery-codes",
     cu_handle_me_recovery_codes, 0},
    {CU_GET, CU_ROUTE_SESSION | CU_ROUTE_ENROL, "/v1/me/sessions", cu_handle_me_sessions, 0},
    {CU_DELETE, CU_ROUTE_SESSION | CU_ROUTE_ENROL, "/v1/me/sessions", cu_handle_me_sessions_revoke,
     0},
    /* the customer's own security page (me_security_routes.c) */
    {CU_GET, CU_ROUTE_SESSION | CU_ROUTE_ENROL, "/v1/me/security", cu_handle_me_security, 0},
    {CU_DELETE, CU_ROUTE_SESSION | CU_ROUTE_ENROL, "/v1/me/devices/{device}",
     cu_handle_me_device_forget, 0},
    {CU_POST, CU_ROUTE_SESSION | CU_ROUTE_ENROL, "/v1/me/reports", cu_handle_me_reports_create, 0},
    {CU_POST, CU_ROUTE_SESSION | CU_ROUTE_ENROL, "/v1/me/freeze", cu_handle_me_freeze, 0},
    {CU_POST, CU_ROUTE_SESSION | CU_ROUTE_FRESH | CU_ROUTE_ENROL, "/v1/me/unfreeze",
     cu_handle_me_unfreeze, 0},
    {CU_DELETE, CU_ROUTE_SESSION | CU_ROUTE_ENROL, "/v1/me/sessions/{id}",
     cu_handle_me_session_revoke, 0},
    /* credentials of customers, for the company's services and staff */
    {CU_PUT, CU_ROUTE_CUSTOMER | CU_ROUTE_HASH, "/v1/customers/{id}/password",
     cu_handle_customer_password, CU_SCOPE_CUSTOMERS_CREDENTIALS},
    {CU_GET, CU_ROUTE_CUSTOMER, "/v1/customers/{id}/credentials", cu_handle_customer_credentials,
     CU_SCOPE_CUSTOMERS_CREDENTIALS},
    {CU_DELETE, CU_ROUTE_CUSTOMER, "/v1/customers/{id}/lockout", cu_handle_customer_lockout_clear,
     CU_SCOPE_CUSTOMERS_CREDENTIALS},
    {CU_DELETE, CU_ROUTE_CUSTOMER, "/v1/customers/{id}/sessions",
     cu_handle_customer_sessions_revoke, CU_SCOPE_CUSTOMERS_CREDENTIALS},
    /* staff administration */
    {CU_POST, 0, "/v1/staff", cu_handle_staff_create, CU_SCOPE_STAFF_WRITE},
    {CU_GET, 0, "/v1/staff", cu_handle_staff_list, CU_SCOPE_STAFF_READ},
    {CU_GET, 0, "/v1/staff/{id}", cu_handle_staff_get, CU_SCOPE_STAFF_READ},
    {CU_PATCH, 0, "/v1/staff/{id}", cu_handle_staff_patch, CU_SCOPE_STAFF_WRITE},
    {CU_PUT, CU_ROUTE_HASH, "/v1/staff/{id}/password", cu_handle_staff_password,
     CU_SCOPE_STAFF_WRITE},
    {CU_DELETE, 0, "/v1/staff/{id}/lockout", cu_handle_staff_lockout_clear, CU_SCOPE_STAFF_WRITE},
    /* access control */
    {CU_POST, 0, "/v1/access/explain", cu_handle_access_explain, CU_SCOPE_ACCESS_READ},
    /* the ledger: accounts (decided on their customer), movements, the change stream */
    {CU_POST, CU_ROUTE_CUSTOMER, "/v1/customers/{id}/accounts", cu_handle_accounts_open,
     CU_SCOPE_ACCOUNTS_WRITE},
    {CU_PUT, CU_ROUTE_CUSTOMER, "/v1/customers/{id}/limits", cu_handle_customer_limits,
     CU_SCOPE_ACCOUNTS_WRITE},
    {CU_GET, CU_ROUTE_CUSTOMER | CU_ROUTE_OWN, "/v1/customers/{id}/accounts",
     cu_handle_customer_accounts, CU_SCOPE_ACCOUNTS_READ},
    {CU_GET, CU_ROUTE_CUSTOMER | CU_ROUTE_OWN, "/v1/accounts/{id}", cu_handle_account_get,
     CU_SCOPE_ACCOUNTS_READ},
    {CU_GET, CU_ROUTE_CUSTOMER | CU_ROUTE_OWN, "/v1/accounts/{id}/entries",
     cu_handle_account_entries, CU_SCOPE_ACCOUNTS_READ},
    {CU_POST, CU_ROUTE_CUSTOMER, "/v1/accounts/{id}/freeze", cu_handle_account_freeze,
     CU_SCOPE_ACCOUNTS_FREEZE},
    {CU_POST, CU_ROUTE_CUSTOMER, "/v1/accounts/{id}/unfreeze", cu_handle_account_unfreeze,
     CU_SCOPE_ACCOUNTS_UNFREEZE},
    {CU_POST, CU_ROUTE_CUSTOMER, "/v1/accounts/{id}/close", cu_handle_account_close,
     CU_SCOPE_ACCOUNTS_WRITE},
    {CU_POST, CU_ROUTE_OWN, "/v1/transfers", cu_handle_transfers_create, CU_SCOPE_TRANSFERS_WRITE},
    {CU_POST, 0, "/v1/transfers/batch", cu_handle_transfers_batch, CU_SCOPE_TRANSFERS_WRITE},
    {CU_GET, 0, "/v1/transfers", cu_handle_transfers_list, CU_SCOPE_TRANSFERS_READ},
    {CU_GET, CU_ROUTE_OWN, "/v1/transfers/{id}", cu_handle_transfer_get, CU_SCOPE_TRANSFERS_READ},
    {CU_POST, 0, "/v1/transfers/{id}/post", cu_handle_transfer_post, CU_SCOPE_TRANSFERS_WRITE},
    {CU_POST, 0, "/v1/transfers/{id}/void", cu_handle_transfer_void, CU_SCOPE_TRANSFERS_WRITE},
    {CU_POST, 0, "/v1/transfers/{id}/reverse", cu_handle_transfer_reverse,
     CU_SCOPE_TRANSFERS_WRITE},
    {CU_POST, 0, "/v1/deposits", cu_handle_deposits_create, CU_SCOPE_TRANSFERS_WRITE},
    {CU_POST, 0, "/v1/withdrawals", cu_handle_withdrawals_create, CU_SCOPE_TRANSFERS_WRITE},
    {CU_GET, 0, "/v1/ledger/changes", cu_handle_ledger_changes, CU_SCOPE_LEDGER_READ},
    /* monitoring: events posted for a decision, and the decisions */
    {CU_POST, 0, "/v1/events", cu_handle_events_create, CU_SCOPE_EVENTS_WRITE},
    {CU_GET, 0, "/v1/decisions/{id}", cu_handle_decision_get, CU_SCOPE_DECISIONS_READ},
    {CU_GET, 0, "/v1/alerts", cu_handle_alerts_list, CU_SCOPE_ALERTS_READ},
    {CU_GET, 0, "/v1/alerts/{id}", cu_handle_alert_get, CU_SCOPE_ALERTS_READ},
    {CU_POST, 0, "/v1/alerts/{id}/assign", cu_handle_alert_assign, CU_SCOPE_ALERTS_WRITE},
    {CU_POST, 0, "/v1/alerts/{id}/comments", cu_handle_alert_comment, CU_SCOPE_ALERTS_WRITE},
    {CU_POST, 0, "/v1/alerts/{id}/resolve", cu_handle_alert_resolve, CU_SCOPE_ALERTS_WRITE},
    /* incident cases (docs/cases.md) */
    {CU_GET, 0, "/v1/cases", cu_handle_cases_list, CU_SCOPE_CASES_READ},
    {CU_POST, 0, "/v1/cases", cu_handle_cases_create, CU_SCOPE_CASES_WRITE},
    {CU_GET, 0, "/v1/cases/{id}", cu_handle_case_get, CU_SCOPE_CASES_READ},
    {CU_GET, 0, "/v1/cases/{id}/export", cu_handle_case_export, CU_SCOPE_CASES_READ},
    {CU_POST, 0, "/v1/cases/{id}/assign", cu_handle_case_assign, CU_SCOPE_CASES_WRITE},
    {CU_POST, 0, "/v1/cases/{id}/severity", cu_handle_case_severity, CU_SCOPE_CASES_WRITE},
    {CU_POST, 0, "/v1/cases/{id}/stage", cu_handle_case_stage, CU_SCOPE_CASES_WRITE},
    {CU_POST, 0, "/v1/cases/{id}/notes", cu_handle_case_note, CU_SCOPE_CASES_WRITE},
    {CU_POST, 0, "/v1/cases/{id}/tasks", cu_handle_case_task_add, CU_SCOPE_CASES_WRITE},
    {CU_POST, 0, "/v1/cases/{id}/tasks/{n}", cu_handle_case_task_set, CU_SCOPE_CASES_WRITE},
    {CU_POST, 0, "/v1/cases/{id}/observables", cu_handle_case_observable, CU_SCOPE_CASES_WRITE},
    {CU_POST, 0, "/v1/cases/{id}/reports/{report}/answer", cu_handle_case_report_answer,
     CU_SCOPE_CASES_WRITE},
    {CU_POST, 0, "/v1/cases/{id}/steps/{n}/confirm", cu_handle_case_step_confirm,
     CU_SCOPE_CASES_CONTAIN},
    {CU_POST, 0, "/v1/cases/{id}/steps/{n}/decline", cu_handle_case_step_decline,
     CU_SCOPE_CASES_CONTAIN},
    {CU_GET, 0, "/v1/notifications", cu_handle_notifications_list, CU_SCOPE_NOTIFY_READ},
    {CU_GET, CU_ROUTE_PUBLIC, "/v1/security-tips", cu_handle_security_tips, 0},
    {CU_GET, 0, "/v1/notifications/{id}", cu_handle_notification_get, CU_SCOPE_NOTIFY_READ},
    {CU_POST, 0, "/v1/notifications/{id}/replay", cu_handle_notification_replay,
     CU_SCOPE_NOTIFY_WRITE},
    /* monitoring: managed lists and snoozes */
    {CU_GET, 0, "/v1/monitor/lists", cu_handle_monitor_lists, CU_SCOPE_MONITOR_READ},
    {CU_GET, 0, "/v1/monitor/lists/{name}", cu_handle_monitor_list, CU_SCOPE_MONITOR_READ},
    {CU_POST, 0, "/v1/monitor/lists/{name}/items", cu_handle_monitor_list_add,
     CU_SCOPE_LISTS_WRITE},
    {CU_POST, 0, "/v1/monitor/lists/{name}/remove", cu_handle_monitor_list_remove,
     CU_SCOPE_LISTS_WRITE},
    {CU_GET, 0, "/v1/monitor/snoozes", cu_handle_monitor_snoozes, CU_SCOPE_MONITOR_READ},
    {CU_POST, 0, "/v1/monitor/snoozes", cu_handle_monitor_snooze, CU_SCOPE_LISTS_WRITE},
    {CU_POST, 0, "/v1/monitor/snoozes/remove", cu_handle_monitor_unsnooze, CU_SCOPE_LISTS_WRITE},
    /* monitoring: rule sets in the store, and backtests */
    {CU_GET, 0, "/v1/monitor/rulesets", cu_handle_rulesets_list, CU_SCOPE_MONITOR_READ},
    {CU_GET, 0, "/v1/monitor/rulesets/{version}", cu_handle_ruleset_get, CU_SCOPE_MONITOR_READ},
    {CU_POST, 0, "/v1/monitor/rulesets", cu_handle_ruleset_propose, CU_SCOPE_RULES_WRITE},
    {CU_POST, 0, "/v1/monitor/rulesets/{version}/activate", cu_handle_ruleset_activate,
     CU_SCOPE_RULES_ACTIVATE},
    {CU_POST, 0, "/v1/monitor/rulesets/{version}/retire", cu_handle_ruleset_retire,
     CU_SCOPE_RULES_ACTIVATE},
    {CU_POST, 0, "/v1/monitor/backtests", cu_handle_backtest, CU_SCOPE_MONITOR_READ},
};

const struct cu_route *cu_routes(size_t *n)
{
    *n = sizeof(route_table) / sizeof(route_table[0]);
    return route_table;
}
