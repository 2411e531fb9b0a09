/*
 * app.c - the running service as one object: what the data directory opened (configuration,
 * keyring, store, audit log, committer) and the services made over it (API keys, the KEK
 * source that follows the root key file, the vault, sign-in), and how client addresses are
 * kept wherever custodia keeps one.
 */
#include "api/server.h"

#include "api/bucket.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"
#include "cases/cases.h"
#include "cases/playbook.h"
#include "ledger/ledger.h"
#include "crypto/crypto.h"
#include "monitor/monitor.h"
#include "notify/notify.h"
#include "notify/outbox.h"

#include <sodium.h>

/* The request threads: [server] threads, else eight a core (at most 256). */
static unsigned pool_size(const struct cu_config *cfg)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (cfg->server.threads > 0)
        return cfg->server.threads;
    return n > 0 && n <= 32 ? (unsigned)n * 8 : n > 32 ? 256 : 8;
}

/* pseudonym(arg, kind, text, out): 8 bytes of the audit log's keyed hash of text, for the
 * addresses monitoring keeps (docs/monitoring.md, "Addresses"). */
static void pseudonym(void *arg, const char *kind, const char *text, uint8_t out[8])
{
    const struct cu_app *app = arg;
    char h[CU_AUDIT_HASHED_BYTES];

    if (cu_audit_hash_value(app->audit, kind, text, h) != CU_OK) {
        /* only out of memory: a fixed value makes every address one, which counts too much
         * rather than too little */
        memset(out, 0, 8);
        return;
    }
    crypto_generichash(out, 8, (const unsigned char *)h, strlen(h), NULL, 0);
    sodium_memzero(h, sizeof(h));
}

/* ---- what monitoring's actions do (docs/monitoring.md, "Actions") ---- */

static bool fx_is_customer(void *arg, struct cu_db *db, const char *customer)
{
    struct cu_app *app = arg;
    char status[CU_VAULT_STATUS_BYTES];
    return strncmp(customer, "cus_", 4) == 0 &&
           cu_vault_customer_state(app->vault, db, customer, status) == CU_OK &&
           strcmp(status, "erased") != 0;
}

static enum cu_err fx_freeze(void *arg, struct cu_work *w, struct cu_db *db, const char *customer,
                             const char *reason, int64_t until, int64_t *n)
{
    struct cu_app *app = arg;
    return cu_ledger_freeze_customer(app->ledger, w, db, customer, reason, until, n);
}

static enum cu_err fx_lock(void *arg, struct cu_work *w, struct cu_db *db, const char *customer,
                           int64_t until)
{
    (void)arg;
    return cu_identity_lock_customer(db, customer, cu_work_context_of(w)->now_ms, until);
}

static enum cu_err fx_revoke(void *arg, struct cu_work *w, struct cu_db *db, const char *customer,
                             int64_t *n)
{
    struct cu_app *app = arg;
    return cu_identity_session_revoke_all(app->identity, w, db, CU_SUBJECT_CUSTOMER, customer, n);
}

/* notice_value(in, out, cap): in as a template may show it (ids, codes, numbers: what is
 * outside [A-Za-z0-9_.:+-] becomes '_'), at most 64 bytes; "-" when empty. */
static void notice_value(const char *in, char *out, size_t cap)
{
    size_t k = 0;

    for (const char *p = in; *p && k + 1 < cap && k < 64; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  strchr("_.:+-", c) != NULL;
        out[k++] = c;
        if (!ok)
            out[k - 1] = '_';
    }
    if (k == 0 && cap > 1)
        out[k++] = '-';
    out[k] = '\0';
}

/* fx_notify: a decision's notify_customer: the template's variables from the decision and its
 * event (ids, codes and amounts, never a name or an address); the worker renders it. */
static enum cu_err fx_notify(void *arg, struct cu_work *w, struct cu_db *db, const char *customer,
                             const struct cu_monitor_notice *nt)
{
    struct cu_app *app = arg;
    const struct cu_mon_event *ev = nt->event;
    const char *t = nt->template_name;
    char a[72], b[72];
    json_t *d;

    if (strcmp(t, "new_sign_in") == 0) {
        notice_value(ev->device, a, sizeof(a));
        notice_value(ev->country, b, sizeof(b));
        d = json_pack("{s:s, s:s}", "device", a, "country", b);
    } else if (strcmp(t, "password_changed") == 0) {
        d = json_object();
    } else if (strcmp(t, "second_factor_changed") == 0) {
        notice_value(ev->nfields > 0 ? ev->fields[0] : "", a, sizeof(a));
        d = json_pack("{s:s, s:s}", "factor", a, "change", "changed");
    } else if (strcmp(t, "new_payee") == 0) {
        notice_value(ev->payee, a, sizeof(a));
        d = json_pack("{s:s}", "payee", a);
    } else if (strcmp(t, "large_transfer") == 0) {
        notice_value(ev->currency, a, sizeof(a));
        d = json_pack("{s:s, s:I, s:s}", "transfer", nt->decision, "amount", (json_int_t)ev->amount,
                      "currency", a);
    } else if (strcmp(t, "accounts_frozen") == 0) {
        if (nt->frozen <= 0)
            return CU_OK; /* nothing was frozen (already so, or no freeze): nothing to tell */
        d = json_pack("{s:I}", "accounts", (json_int_t)nt->frozen);
    } else if (strcmp(t, "staff_alert") == 0) {
        d = json_pack("{s:s, s:s, s:s}", "alert", nt->alert, "severity", nt->severity, "rule",
                      nt->rule);
    } else {
        d = json_pack("{s:s, s:s}", "decision", nt->decision, "event_type", nt->event_type);
    }
    char *text = d ? json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(d);
    if (!text)
        return CU_E_NOMEM;
    enum cu_err rc = strlen(text) > CU_OUTBOX_DATA_MAX
                         ? CU_E_TOO_LARGE
                         : cu_notify_queue(app->notify, w, db, customer, t, text);
    free(text);
    return rc;
}

/* ---- cases and playbooks (docs/cases.md, docs/playbooks.md) ---- */

/* staff_case(app, w, db, c): the on-call staff told that the case is at high or above. */
static enum cu_err staff_case(struct cu_app *app, struct cu_work *w, struct cu_db *db,
                              const struct cu_case *c)
{
    json_t *d =
        json_pack("{s:s, s:s, s:s}", "case", c->id, "severity", c->severity, "stage", c->stage);
    char *text = d ? json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    enum cu_err rc =
        text ? cu_notify_queue(app->notify, w, db, "", "staff_case", text) : CU_E_NOMEM;
    json_decref(d);
    free(text);
    return rc;
}

/* pb_run: what a playbook's step does (cases/playbook.h), on the case's customer in w. */
static enum cu_err pb_run(void *arg, struct cu_work *w, struct cu_db *db, const struct cu_case *c,
                          const char *customer, enum cu_pb_action action, const char *argument,
                          int64_t ms, json_t **result)
{
    struct cu_app *app = arg;
    int64_t now = cu_work_context_of(w)->now_ms, n = 0;
    char reason[CU_CASE_ID_BYTES + 8], t[CU_RFC3339_BYTES];
    enum cu_err rc = CU_OK;

    *result = NULL;
    if (action != CU_PB_PAGE_ONCALL && !fx_is_customer(app, db, customer)) {
        *result = json_pack("{s:s}", "error", "the case's customer is not a customer of the vault");
        return CU_E_NOT_FOUND;
    }
    /* the audited steps need their records (a password reset two: the password, the sessions),
     * and two stay: the playbook's own and the unit's */
    size_t records = action == CU_PB_FORCE_PASSWORD_RESET ? 2
                     : action == CU_PB_FREEZE_ACCOUNTS || action == CU_PB_HOLD_TRANSFERS ||
                             action == CU_PB_REVOKE_SESSIONS
                         ? 1
                         : 0;
    if (records && cu_work_audit_room(w) < records + 2)
        return CU_E_UNAVAILABLE;
    if ((action == CU_PB_NOTIFY_CUSTOMER || action == CU_PB_PAGE_ONCALL) &&
        cu_notify_channels(app->notify) == 0) {
        *result = json_pack("{s:s}", "error", "no notification channel is configured ([notify])");
        return CU_E_CONFIG;
    }
    switch (action) {
    case CU_PB_FREEZE_ACCOUNTS:
        snprintf(reason, sizeof(reason), "case:%s", c->id);
        rc = cu_ledger_freeze_customer(app->ledger, w, db, customer, reason, now + ms, &n);
        cu_clock_format(now + ms, t);
        if (rc == CU_OK)
            *result = json_pack("{s:I, s:s}", "accounts", (json_int_t)n, "until", t);
        break;
    case CU_PB_HOLD_TRANSFERS:
        rc = cu_ledger_hold_customer(app->ledger, w, db, customer, &n);
        if (rc == CU_OK)
            *result = json_pack("{s:I}", "transfers", (json_int_t)n);
        break;
    case CU_PB_REVOKE_SESSIONS:
        rc =
            cu_identity_session_revoke_all(app->identity, w, db, CU_SUBJECT_CUSTOMER, customer, &n);
        if (rc == CU_OK)
            *result = json_pack("{s:I}", "sessions", (json_int_t)n);
        break;
    case CU_PB_LOCK_SIGN_IN:
        rc = cu_identity_lock_customer(db, customer, now, now + ms);
        cu_clock_format(now + ms, t);
        if (rc == CU_OK)
            *result = json_pack("{s:s}", "until", t);
        break;
    case CU_PB_FORCE_PASSWORD_RESET: {
        bool cleared = false;
        rc = cu_identity_password_force_reset(app->identity, w, db, customer, &cleared, &n);
        if (rc == CU_OK)
            *result =
                json_pack("{s:b, s:I}", "password_cleared", cleared, "sessions", (json_int_t)n);
        break;
    }
    case CU_PB_NOTIFY_CUSTOMER: {
        json_t *d;
        if (strcmp(argument, "accounts_frozen") == 0) {
            if ((rc = cu_ledger_customer_frozen(db, customer, &n)) == CU_OK && n == 0) {
                *result = json_pack("{s:s}", "error", "none of the customer's accounts is frozen");
                return CU_E_EXISTS;
            }
            d = json_pack("{s:I}", "accounts", (json_int_t)n);
        } else
            d = json_pack("{s:s, s:s}", "decision", c->id, "event_type", "case");
        char *text = rc == CU_OK && d ? json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        json_decref(d);
        if (rc == CU_OK)
            rc = text ? cu_notify_queue(app->notify, w, db, customer, argument, text) : CU_E_NOMEM;
        free(text);
        if (rc == CU_OK)
            *result = json_pack("{s:s, s:b}", "template", argument, "queued", true);
        break;
    }
    case CU_PB_PAGE_ONCALL:
        rc = staff_case(app, w, db, c);
        if (rc == CU_OK)
            *result = json_pack("{s:s, s:b}", "template", "staff_case", "queued", true);
        break;
    default:
        return CU_E_INTERNAL;
    }
    if (rc == CU_OK && *result == NULL)
        return CU_E_NOMEM;
    return rc;
}

const struct cu_playbook_effects *cu_app_playbook_effects(struct cu_app *app)
{
    app->pb_fx.run = pb_run;
    app->pb_fx.arg = app;
    return &app->pb_fx;
}

/* cu_app_case_changed(app, w, db, id, before): after a case's severity may have grown (from
 * before, -1 for a new case): the on-call staff told when it reached high, and the playbooks
 * whose severity it reached (or whose rule is in rules) run. */
enum cu_err cu_app_case_changed(struct cu_app *app, struct cu_work *w, struct cu_db *db,
                                const char *id, int before, const char *customer, const char *rules,
                                bool staff)
{
    struct cu_case c;
    size_t ran = 0;
    enum cu_err rc = cu_case_get(db, id, false, &c);
    int sev = rc == CU_OK ? cu_case_severity_parse(c.severity) : -1;

    if (rc == CU_OK && sev >= 2 && before < 2)
        rc = staff_case(app, w, db, &c);
    if (rc == CU_OK)
        rc = cu_playbooks_run(app->playbooks, w, db, id, customer, rules, staff,
                              cu_app_playbook_effects(app), &ran);
    return rc;
}

/* fx_alert: an alert joins its case, in the decision's unit (and the case's playbooks run). */
static enum cu_err fx_alert(void *arg, struct cu_work *w, struct cu_db *db,
                            const struct cu_monitor_alert *a)
{
    struct cu_app *app = arg;
    const struct cu_mon_event *ev = a->event;
    char id[CU_CASE_ID_BYTES];
    bool drill = false;
    int before = -1;
    enum cu_err rc = cu_case_drill_customer(db, ev->customer, &drill);

    const struct cu_case_alert ca = {a->alert,    a->decision, ev->customer, a->event_type,
                                     a->severity, a->rules,    a->ip,        ev->device,
                                     ev->payee,   drill,       NULL};
    if (rc == CU_OK)
        rc = cu_cases_on_alert(app->cases, w, db, &ca, id, &before);
    if (rc == CU_OK)
        rc = cu_app_case_changed(app, w, db, id, before, ev->customer, a->rules, false);
    return rc;
}

static bool rule_alerts(void *arg, const char *rule)
{
    return cu_monitor_rule_alerts(arg, rule);
}

/* cases_new(app, cfg, why): the cases service and the playbooks of [cases]. */
static enum cu_err cases_new(struct cu_app *app, const struct cu_config *cfg,
                             char why[CU_APP_WHY_BYTES])
{
    struct cu_cases_opts o = {(int64_t)cfg->cases.group_minutes * 60000, 0};
    char path[CU_CONFIG_PATH_BYTES], err[CU_PLAYBOOK_ERR_BYTES];
    enum cu_err rc;

    if (strstr(cfg->cases.group_by, "customer"))
        o.group_by |= CU_CASES_BY_CUSTOMER;
    if (strstr(cfg->cases.group_by, "ip"))
        o.group_by |= CU_CASES_BY_IP;
    if (strstr(cfg->cases.group_by, "device"))
        o.group_by |= CU_CASES_BY_DEVICE;
    if (strstr(cfg->cases.group_by, "payee"))
        o.group_by |= CU_CASES_BY_PAYEE;
    if ((rc = cu_cases_new(&o, &app->cases)) != CU_OK)
        return rc;
    if (strcmp(cfg->cases.playbooks, "none") == 0)
        return CU_OK;
    if (cu_config_path(cfg, cfg->cases.playbooks, path, sizeof(path)) != CU_OK) {
        snprintf(why, CU_APP_WHY_BYTES, "[cases] playbooks: the path is too long");
        return CU_E_CONFIG;
    }
    rc = cu_playbooks_load(path, rule_alerts, app->monitor, &app->playbooks, err);
    if (rc != CU_OK) {
        snprintf(why, CU_APP_WHY_BYTES, "[cases] playbooks: %.480s", err);
        return rc == CU_E_NOMEM ? rc : CU_E_CONFIG;
    }
    cu_log(CU_LOG_INFO, "cases.playbooks_loaded", CU_LS("file", path),
           CU_LI("playbooks", (int64_t)cu_playbooks_count(app->playbooks)));
    return CU_OK;
}

/* monitor_new(app, cfg, why): the monitoring service with the rule sets of [monitor]. */
static enum cu_err monitor_new(struct cu_app *app, const struct cu_config *cfg,
                               char why[CU_APP_WHY_BYTES])
{
    char rules[CU_CONFIG_PATH_BYTES], shadow[CU_CONFIG_PATH_BYTES], err[CU_RULES_ERR_BYTES];
    struct cu_monitor_opts o;
    enum cu_err rc;

    memset(&o, 0, sizeof(o));
    if (strcmp(cfg->monitor.rules, "builtin") != 0) {
        if (cu_config_path(cfg, cfg->monitor.rules, rules, sizeof(rules)) != CU_OK) {
            snprintf(why, CU_APP_WHY_BYTES, "[monitor] rules: the path is too long");
            return CU_E_CONFIG;
        }
        o.rules_path = rules;
    }
    if (strcmp(cfg->monitor.shadow_rules, "none") != 0) {
        if (cu_config_path(cfg, cfg->monitor.shadow_rules, shadow, sizeof(shadow)) != CU_OK) {
            snprintf(why, CU_APP_WHY_BYTES, "[monitor] shadow_rules: the path is too long");
            return CU_E_CONFIG;
        }
        o.shadow_path = shadow;
    }
    o.types = strcmp(cfg->monitor.event_types, "none") != 0 ? cfg->monitor.event_types : NULL;
    o.future_ms = (int64_t)cfg->monitor.future_seconds * 1000;
    o.past_ms = (int64_t)cfg->monitor.past_days * 86400000;
    if (cfg->audit.hash_source_ip) {
        o.pseudonym = pseudonym;
        o.pseudonym_arg = app;
    }
    o.audit_hash = pseudonym; /* list values and references in audit records: always hashed */
    o.audit_hash_arg = app;
    rc = cu_monitor_new(&o, &app->monitor, err);
    if (rc != CU_OK) {
        snprintf(why, CU_APP_WHY_BYTES, "[monitor] %.480s", err);
        return rc == CU_E_NOMEM ? rc : CU_E_CONFIG;
    }
    /* its actions on customers, in the deciding unit */
    struct cu_monitor_effects fx = {.freeze = fx_freeze,
                                    .lock = fx_lock,
                                    .revoke = fx_revoke,
                                    .notify = fx_notify,
                                    .alert = fx_alert,
                                    .is_customer = fx_is_customer,
                                    .arg = app};
    cu_monitor_set_effects(app->monitor, &fx);
    /* each new transfer decided in its movement's unit (docs/monitoring.md, "In the ledger") */
    struct cu_ledger_hook hook = cu_monitor_ledger_hook(app->monitor);
    cu_ledger_set_hook(app->ledger, &hook);
    /* and each customer's sign-in in its step's unit ("At sign-in") */
    struct cu_identity_hook ihook = cu_monitor_signin_hook(app->monitor);
    cu_identity_set_hook(app->identity, &ihook);
    cu_log(CU_LOG_INFO, "monitor.ready", CU_LS("rules", o.rules_path ? rules : "builtin"),
           CU_LS("shadow_rules", o.shadow_path ? shadow : "none"));
    return CU_OK;
}

/* services_new(app, parts, why): the KEK source, the vault and sign-in. */
static enum cu_err services_new(struct cu_app *app, const struct cu_app_parts *parts,
                                char why[CU_APP_WHY_BYTES])
{
    const struct cu_config *cfg = parts->cfg;
    char key_path[CU_CONFIG_PATH_BYTES];
    enum cu_aead alg = CU_AEAD_XCHACHA20POLY1305;
    struct cu_identity_opts io = *parts->identity;
    enum cu_err rc;

    /* The KEKs follow the root key file, so that `keys rotate` and `keys retire` take effect
     * without a restart (docs/operations.md, "Keys"). */
    if (cu_config_path(cfg, cfg->keys.root_key_file, key_path, sizeof(key_path)) != CU_OK) {
        snprintf(why, CU_APP_WHY_BYTES, "[keys] root_key_file: the path is too long");
        return CU_E_CONFIG;
    }
    rc = cu_kek_source_keyring_file(parts->keyring, key_path, CU_KEK_FILE_CHECK_MS, &app->kek);
    if (rc != CU_OK) {
        snprintf(why, CU_APP_WHY_BYTES, "the key source could not start: %s", cu_err_str(rc));
        return rc;
    }
    if (cu_crypto_aead_parse(cfg->keys.algorithm, &alg) != CU_OK ||
        !cu_crypto_aead_available(alg) ||
        cu_vault_new(parts->keyring, app->kek, alg, &app->vault) != CU_OK) {
        snprintf(why, CU_APP_WHY_BYTES,
                 "[keys] algorithm: %s is not available on this CPU, or the vault could not "
                 "start",
                 cfg->keys.algorithm);
        return CU_E_UNAVAILABLE;
    }
    if (cu_ledger_new(NULL, &app->ledger) != CU_OK) {
        snprintf(why, CU_APP_WHY_BYTES, "the ledger could not start");
        return CU_E_NOMEM;
    }
    if (cu_approvals_new(app->kek, alg, &app->approvals) != CU_OK) {
        snprintf(why, CU_APP_WHY_BYTES, "the approval service could not start");
        return CU_E_NOMEM;
    }
    io.audit = parts->audit; /* keyed hashes of logins in its records */
    rc = cu_identity_new(parts->keyring, app->kek, alg, app->vault, &io, &app->identity);
    if (rc != CU_OK)
        snprintf(why, CU_APP_WHY_BYTES,
                 "[identity] the sign-in service could not start: %s (is the common-password "
                 "list %s readable? see [identity] common_passwords)",
                 cu_err_str(rc), io.common_passwords ? io.common_passwords : "");
    return rc;
}

/* policies_new(app, cfg, why): the access policy, written with the built-in roles alone when
 * the file is missing. */
static enum cu_err policies_new(struct cu_app *app, const struct cu_config *cfg,
                                char why[CU_APP_WHY_BYTES])
{
    char path[CU_CONFIG_PATH_BYTES], msg[512];
    struct cu_policy_error err;
    enum cu_err rc;

    if (cu_config_path(cfg, cfg->access.policy, path, sizeof(path)) != CU_OK) {
        snprintf(why, CU_APP_WHY_BYTES, "[access] policy: the path is too long");
        return CU_E_CONFIG;
    }
    /* Only the default file is made when missing (a data directory from before policies): a
     * configured one that is missing is a mistake to report, not a policy to invent. */
    rc = strcmp(cfg->access.policy, "access.policy") == 0 ? cu_access_policy_write_default(path)
                                                          : CU_E_EXISTS;
    if (rc == CU_OK) {
        cu_log(CU_LOG_WARN, "access.policy_created", CU_LS("file", path),
               CU_LS("reason", "the file was missing: the built-in roles alone decide"));
    } else if (rc != CU_E_EXISTS) {
        snprintf(why, CU_APP_WHY_BYTES, "[access] policy: %.400s could not be written: %s", path,
                 cu_err_str(rc));
        return rc;
    }
    rc = cu_access_policies_new(path, &app->policies, &err);
    if (rc != CU_OK) {
        cu_policy_error_format(&err, msg, sizeof msg);
        snprintf(why, CU_APP_WHY_BYTES, "[access] policy: %.480s", msg);
        return rc == CU_E_NOMEM ? rc : CU_E_CONFIG;
    }
    const struct cu_policy *p = cu_access_policy_get(app->policies);
    cu_log(CU_LOG_INFO, "access.policy_loaded", CU_LS("file", path),
           CU_LS("sha256", cu_policy_digest(p)));
    cu_access_policy_put(app->policies, p);
    if (strcmp(cfg->access.dry_run_policy, "none") == 0)
        return CU_OK;
    /* the dry run: decided beside the policy in force, never enforced; a file that cannot be
     * used is a mistake to report, as a configured policy's is */
    if (cu_config_path(cfg, cfg->access.dry_run_policy, path, sizeof(path)) != CU_OK) {
        snprintf(why, CU_APP_WHY_BYTES, "[access] dry_run_policy: the path is too long");
        return CU_E_CONFIG;
    }
    rc = cu_access_policies_new(path, &app->dry_policies, &err);
    if (rc != CU_OK) {
        cu_policy_error_format(&err, msg, sizeof msg);
        snprintf(why, CU_APP_WHY_BYTES, "[access] dry_run_policy: %.470s", msg);
        return rc == CU_E_NOMEM ? rc : CU_E_CONFIG;
    }
    p = cu_access_policy_get(app->dry_policies);
    cu_log(CU_LOG_INFO, "access.dry_run_policy_loaded", CU_LS("file", path),
           CU_LS("sha256", cu_policy_digest(p)));
    cu_access_policy_put(app->dry_policies, p);
    return CU_OK;
}

enum cu_err cu_app_new(const struct cu_app_parts *parts, struct cu_app **out,
                       char why[CU_APP_WHY_BYTES])
{
    struct cu_app *app = cu_calloc(1, sizeof(*app));
    enum cu_err rc = CU_E_NOMEM;

    *out = NULL;
    why[0] = '\0';
    if (app == NULL || cu_apikey_service_new(parts->keyring, &app->apikeys) != CU_OK) {
        snprintf(why, CU_APP_WHY_BYTES, "out of memory");
        goto out;
    }
    memcpy(&app->cfg, parts->cfg, sizeof(app->cfg));
    app->keyring = parts->keyring;
    app->store = parts->store;
    app->audit = parts->audit;
    app->committer = parts->committer;
    app->started_at_ms = cu_clock_now_ms();
    app->threads = pool_size(parts->cfg);
    rc = services_new(app, parts, why);
    if (rc == CU_OK)
        rc = policies_new(app, parts->cfg, why);
    if (rc == CU_OK) {
        char nwhy[CU_NOTIFY_WHY_BYTES];
        rc = cu_notify_new(parts->cfg, app->vault, &app->notify, nwhy);
        if (rc != CU_OK)
            snprintf(why, CU_APP_WHY_BYTES, "%s", nwhy);
    }
    if (rc == CU_OK)
        rc = monitor_new(app, parts->cfg, why);
    if (rc == CU_OK)
        rc = cases_new(app, parts->cfg, why);
    if (rc != CU_OK)
        goto out;
    cu_log(CU_LOG_INFO, "identity.ready",
           CU_LI("password_hash_slots", cu_hasher_slots(cu_identity_hasher(app->identity))),
           CU_LI("password_memory_kib", parts->cfg->identity.password_memory_kib));
    *out = app;
    app = NULL;
out:
    cu_app_free(app);
    return rc;
}

void cu_app_free(struct cu_app *app)
{
    if (app == NULL)
        return;
    /* The committer is the caller's; every unit of the server has been answered once
     * cu_server_run returns, so none still uses the services below. */
    cu_notify_free(app->notify); /* stops its worker first: it reads the vault */
    cu_apikey_service_free(app->apikeys);
    cu_metrics_free(app->metrics);
    cu_limiter_free(app->auth_limiter);
    cu_buckets_free(app->rate_ip);
    cu_buckets_free(app->rate_principal);
    cu_buckets_free(app->rate_writes);
    cu_buckets_free(app->rate_signin);
    cu_identity_free(app->identity);
    cu_vault_free(app->vault);
    cu_approvals_free(app->approvals);
    cu_ledger_free(app->ledger);
    cu_monitor_free(app->monitor);
    cu_playbooks_free(app->playbooks);
    cu_cases_free(app->cases);
    cu_kek_source_free(app->kek);
    cu_access_policies_free(app->policies);
    cu_access_policies_free(app->dry_policies);
    cu_free(app);
}

void cu_app_kept_ip(const struct cu_app *app, const char *ip, char out[64])
{
    char h[CU_AUDIT_HASHED_BYTES];
    out[0] = '\0';
    if (ip == NULL || ip[0] == '\0')
        return;
    if (!app->cfg.audit.hash_source_ip) {
        snprintf(out, 64, "%s", ip);
        return;
    }
    if (cu_audit_hash_value(app->audit, "ip", ip, h) == CU_OK)
        snprintf(out, 64, "%s", h);
}
