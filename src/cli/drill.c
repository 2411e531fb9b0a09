/*
 * drill.c - `custodia drill run PLAYBOOK`: an incident drill (docs/playbooks.md, "Drills").
 * It makes a drill customer (marked in drill_customers, with one empty account: no real
 * customer and no money is ever touched), sends a synthetic sign-in from a device never seen
 * through monitoring, and follows the incident: the case its alert opens (or, when no rule in
 * force fires on it, an alert the drill injects naming the playbook's rule), the playbook's
 * steps (those that wait are confirmed by the drill, as the operator), and the notices queued,
 * until they are delivered. It reports the time to detect, to contain and to notify, and every
 * step or notice that failed; exit status 0 when none did.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/server.h"
#include "base/clock.h"
#include "base/json.h"
#include "base/mem.h"
#include "cases/cases.h"
#include "cases/playbook.h"
#include "cli/cli.h"
#include "crypto/crypto.h"
#include "ledger/ledger.h"
#include "monitor/alerts.h"
#include "monitor/monitor.h"
#include "notify/notify.h"
#include "notify/outbox.h"

static int usage(FILE *f)
{
    return cu_cli_usage(
        f, "usage: custodia drill run PLAYBOOK [--timeout SECONDS] [--json] [--dir DIR]\n"
           "Runs an incident drill end to end on a drill customer it makes and marks (no\n"
           "real customer, no money): a synthetic sign-in, its alert and case, the playbook\n"
           "PLAYBOOK of [cases] playbooks (steps that wait are confirmed by the drill), and\n"
           "the notices, waited for up to --timeout seconds (default 30). Reports the time to\n"
           "detect, to contain and to notify, and every step that failed. Audited.\n"
           "Exit status 0 when nothing failed, 1 otherwise.\n");
}

struct drill {
    struct cu_app *app;
    size_t playbook;
    const char *playbook_name;
    char customer[32];
    char account[CU_LEDGER_ID_BYTES];
    char decision[CU_DECISION_ID_BYTES];
    char case_id[CU_CASE_ID_BYTES];
    bool injected;
    int64_t step;
    char why[CU_CASE_WHY_BYTES];
};

/* setup: the drill customer, marked, with an empty account. */
static enum cu_err setup_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    static const char mark[] =
        "INSERT INTO drill_customers (customer, created_at, playbook) VALUES ($1, $2, $3)";
    struct drill *d = arg;
    struct cu_customer c;
    struct cu_ledger_account a;
    char email[64], vwhy[CU_VAULT_WHY_BYTES], detail[256];
    uint8_t raw[6];
    json_t *in;
    enum cu_err rc;

    cu_crypto_random(raw, sizeof(raw));
    char hex[13];
    cu_hex_encode(raw, sizeof(raw), hex);
    snprintf(email, sizeof(email), "drill-%s@drill.invalid", hex);
    in = json_pack("{s:s, s:s, s:[s]}", "email", email, "given_name", "Drill", "tags", "drill");
    rc = in ? cu_vault_create(d->app->vault, db, in, &c, vwhy) : CU_E_NOMEM;
    json_decref(in);
    if (rc != CU_OK)
        return rc;
    snprintf(d->customer, sizeof(d->customer), "%s", c.id);
    cu_customer_clear(&c);
    const struct cu_val p[] = {CU_VT(d->customer), CU_VI(cu_work_context_of(w)->now_ms),
                               CU_VT(d->playbook_name)};
    rc = cu_db_exec(db, mark, p, CU_NVALS(p));
    const struct cu_ledger_account_in ai = {d->customer, "EUR", 0, 0, 0};
    if (rc == CU_OK)
        rc = cu_ledger_account_create(d->app->ledger, w, db, &ai, &a, detail);
    if (rc == CU_OK)
        snprintf(d->account, sizeof(d->account), "%s", a.id);
    char target[64];
    snprintf(target, sizeof(target), "customer:%s", d->customer);
    if (rc == CU_OK)
        rc = cu_work_audit(w, "drill.start", target, "success",
                           json_pack("{s:s}", "playbook", d->playbook_name));
    return rc;
}

/* detect: the synthetic sign-in through monitoring, in its own unit (as a request would). */
static enum cu_err detect_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    static const char find[] = "SELECT case_id FROM case_alerts WHERE decision_id = $1";
    struct drill *d = arg;
    struct cu_monitor_decision md;
    struct cu_mon_event ev;
    struct cu_mon_parse_opts o = {cu_monitor_types(d->app->monitor), false, 0, 0};
    char text[512], t[CU_RFC3339_BYTES], err[CU_MON_ERR_BYTES];
    uint8_t raw[4];
    char hex[9];
    enum cu_err rc;

    cu_crypto_random(raw, sizeof(raw));
    cu_hex_encode(raw, sizeof(raw), hex);
    cu_clock_format(cu_work_context_of(w)->now_ms, t);
    snprintf(text, sizeof(text),
             "{\"type\": \"login_succeeded\", \"customer\": \"%s\", \"time\": \"%s\", "
             "\"device\": \"drill-%s\", \"ip\": \"192.0.2.%u\", \"channel\": \"drill\"}",
             d->customer, t, hex, 1u + raw[0] % 250u);
    rc = cu_mon_event_parse(text, strlen(text), &o, &ev, err);
    if (rc != CU_OK)
        return rc;
    memset(&md, 0, sizeof(md));
    rc = cu_monitor_decide(d->app->monitor, w, db, &ev, "drill", &md);
    if (rc == CU_OK)
        snprintf(d->decision, sizeof(d->decision), "%s", md.id);
    cu_monitor_decision_clear(&md);
    /* the case its alert opened, if a rule fired */
    struct cu_stmt *st = NULL;
    bool row = false;
    const struct cu_val p[] = {CU_VT(d->decision)};
    if (rc == CU_OK)
        rc = cu_db_query(db, find, p, 1, &st);
    if (rc == CU_OK)
        rc = cu_stmt_next(st, &row);
    d->case_id[0] = '\0';
    if (rc == CU_OK && row) {
        size_t n = 0;
        const char *s = cu_stmt_text(st, 0, &n);
        snprintf(d->case_id, sizeof(d->case_id), "%.*s", (int)n, s);
    }
    cu_stmt_done(st);
    if (rc != CU_OK || d->case_id[0])
        return rc;
    /* no rule in force fired on it: the drill raises the alert of the playbook's rule */
    const char *rule = cu_playbooks_rule(d->app->playbooks, d->playbook);
    char alert[CU_ALERT_ID_BYTES];
    int before = -1;
    snprintf(alert, sizeof(alert), "alr_%s", d->decision + 4);
    d->injected = true;
    rc = cu_alert_open(db, w, d->decision, d->customer, "login_succeeded", "critical",
                       rule[0] ? rule : "drill");
    const struct cu_case_alert ca = {alert,       d->decision,
                                     d->customer, "login_succeeded",
                                     "critical",  rule[0] ? rule : "drill",
                                     "",          "",
                                     "",          true,
                                     "drill"};
    if (rc == CU_OK)
        rc = cu_cases_on_alert(d->app->cases, w, db, &ca, d->case_id, &before);
    if (rc == CU_OK)
        rc = cu_app_case_changed(d->app, w, db, d->case_id, before, d->customer, ca.rules, false);
    return rc;
}

/* run: the playbook itself, when the alert did not start it already. */
static enum cu_err run_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct drill *d = arg;
    enum cu_err rc = cu_playbooks_run_one(d->app->playbooks, w, db, d->case_id, d->playbook,
                                          cu_app_playbook_effects(d->app));
    return rc == CU_E_EXISTS ? CU_OK : rc;
}

/* end: the drill's outcome, in the audit log: the evidence that the plan was rehearsed. */
struct drill_end {
    const char *customer;
    json_t *details;
};

static enum cu_err end_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct drill_end *e = arg;
    char target[64];
    (void)db;
    snprintf(target, sizeof(target), "customer:%s", e->customer);
    return cu_work_audit(
        w, "drill.end", target,
        strcmp(json_string_value(json_object_get(e->details, "result")), "passed") == 0 ? "success"
                                                                                        : "failure",
        json_incref(e->details));
}

static enum cu_err confirm_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct drill *d = arg;
    return cu_playbook_step_decide(w, db, d->case_id, d->step, true,
                                   cu_app_playbook_effects(d->app), d->why);
}

/* steps(ctx, d, out, waiting, n): the case's steps of the playbook; the numbers of those that
 * wait in waiting. */
static enum cu_err steps(struct cu_cli_ctx *ctx, const struct drill *d, json_t **out,
                         int64_t waiting[CU_PLAYBOOK_STEPS_MAX * 2], size_t *n)
{
    struct cu_db *db = NULL;
    json_t *doc = NULL, *s;
    size_t i;
    enum cu_err rc = cu_store_acquire(ctx->store, &db);

    if (rc == CU_OK)
        rc = cu_case_document(db, d->case_id, &doc);
    cu_store_release(db);
    *n = 0;
    *out = json_array();
    if (rc != CU_OK || *out == NULL) {
        json_decref(doc);
        return rc != CU_OK ? rc : CU_E_NOMEM;
    }
    json_array_foreach(json_object_get(doc, "steps"), i, s)
    {
        const char *pb = json_string_value(json_object_get(s, "playbook"));
        const char *cus = json_string_value(json_object_get(s, "customer"));
        if (!pb || strcmp(pb, d->playbook_name) != 0 || (cus && strcmp(cus, d->customer) != 0))
            continue;
        json_array_append(*out, s);
        if (strcmp(json_string_value(json_object_get(s, "status")), "waiting") == 0 &&
            *n < (size_t)CU_PLAYBOOK_STEPS_MAX * 2)
            waiting[(*n)++] = json_integer_value(json_object_get(s, "step"));
    }
    json_decref(doc);
    return CU_OK;
}

/* notices(ctx, d, t0, out, done, last): the notices queued since t0 for the drill's customer or
 * naming its case; *done when none is pending or sending, *last the latest delivery. */
static enum cu_err notices(struct cu_cli_ctx *ctx, const struct drill *d, int64_t t0, json_t **out,
                           bool *done, int64_t *last)
{
    struct cu_outbox_item *v = NULL;
    struct cu_db *db = NULL;
    size_t n = 0;
    enum cu_err rc = cu_store_acquire(ctx->store, &db);

    if (rc == CU_OK)
        rc = cu_outbox_list(db, NULL, NULL, "", CU_OUTBOX_LIST_MAX, &v, &n);
    cu_store_release(db);
    *done = true;
    *last = 0;
    *out = json_array();
    for (size_t i = 0; rc == CU_OK && i < n; i++) {
        if (v[i].created_at < t0 ||
            (strcmp(v[i].customer, d->customer) != 0 && strstr(v[i].data, d->case_id) == NULL))
            continue;
        bool pending = strcmp(v[i].status, "pending") == 0 || strcmp(v[i].status, "sending") == 0;
        *done = *done && !pending;
        if (v[i].sent_at > *last)
            *last = v[i].sent_at;
        json_array_append_new(*out, json_pack("{s:s, s:s, s:s, s:s, s:I, s:s?}", "id", v[i].id,
                                              "template", v[i].template_name, "channel",
                                              v[i].channel, "status", v[i].status, "attempts",
                                              (json_int_t)v[i].attempts, "last_error",
                                              v[i].last_error[0] ? v[i].last_error : NULL));
    }
    cu_free(v);
    return rc;
}

static void pause_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int drill_run(struct cu_cli_ctx *ctx, struct cu_app *app, const char *name, long timeout,
                     bool as_json)
{
    struct drill d;
    int64_t waiting[CU_PLAYBOOK_STEPS_MAX * 2];
    size_t nwait = 0, confirmed = 0;
    json_t *st = NULL, *nt = NULL;
    bool delivered = false;
    int64_t last = 0;
    enum cu_err rc;

    memset(&d, 0, sizeof(d));
    d.app = app;
    d.playbook_name = name;
    int idx = cu_playbooks_find(app->playbooks, name);
    if (idx < 0) {
        cu_cli_error("%s: no playbook of that name in [cases] playbooks (%zu loaded)", name,
                     cu_playbooks_count(app->playbooks));
        return CU_EXIT_USAGE;
    }
    d.playbook = (size_t)idx;
    if ((rc = cu_cli_run(ctx, "operator", setup_apply, &d)) != CU_OK) {
        cu_cli_error("the drill customer could not be made: %s", cu_err_str(rc));
        return CU_EXIT_FAIL;
    }
    int64_t t0 = cu_clock_now_ms();
    rc = cu_cli_run(ctx, "operator", detect_apply, &d);
    int64_t t_detect = cu_clock_now_ms();
    if (rc == CU_OK)
        rc = cu_cli_run(ctx, "operator", run_apply, &d);
    if (rc == CU_OK)
        rc = steps(ctx, &d, &st, waiting, &nwait);
    /* what waits for a staff member's confirmation: confirmed by the drill */
    for (size_t i = 0; rc == CU_OK && i < nwait; i++) {
        d.step = waiting[i];
        rc = cu_cli_run(ctx, "operator", confirm_apply, &d);
        confirmed += rc == CU_OK;
    }
    int64_t t_contain = cu_clock_now_ms();
    if (rc == CU_OK) {
        json_decref(st);
        rc = steps(ctx, &d, &st, waiting, &nwait);
    }
    cu_notify_wake(app->notify);
    for (long waited = 0; rc == CU_OK; waited += 50) {
        json_decref(nt);
        rc = notices(ctx, &d, t0, &nt, &delivered, &last);
        if (rc != CU_OK || (delivered && json_array_size(nt) > 0) || waited >= timeout * 1000)
            break;
        pause_ms(50);
    }
    if (rc != CU_OK) {
        cu_cli_error("the drill stopped: %s%s%s", cu_err_str(rc), d.why[0] ? ": " : "", d.why);
        json_decref(st);
        json_decref(nt);
        return CU_EXIT_FAIL;
    }
    /* what failed */
    size_t i, failed = 0, sent = 0;
    json_t *e;
    json_array_foreach(st, i, e)
    {
        failed += strcmp(json_string_value(json_object_get(e, "status")), "done") != 0;
    }
    json_array_foreach(nt, i, e)
    {
        sent += strcmp(json_string_value(json_object_get(e, "status")), "sent") == 0;
    }
    size_t unsent = json_array_size(nt) - sent;
    /* a step that queued a notice, and no notice found: not delivered either */
    size_t told = 0;
    json_array_foreach(st, i, e)
    {
        const char *a = json_string_value(json_object_get(e, "action"));
        told += (strcmp(a, "notify_customer") == 0 || strcmp(a, "page_oncall") == 0) &&
                strcmp(json_string_value(json_object_get(e, "status")), "done") == 0;
    }
    if (told > json_array_size(nt))
        unsent += told - json_array_size(nt);
    bool ok = failed == 0 && unsent == 0 && json_array_size(st) > 0;
    json_t *report = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:b, s:I, s:I, s:o, s:I, s:o, s:o, s:I, s:s}", "playbook", name,
        "customer", d.customer, "account", d.account, "case", d.case_id, "decision", d.decision,
        "injected", d.injected, "detect_ms", (json_int_t)(t_detect - t0), "contain_ms",
        (json_int_t)(t_contain - t0), "notify_ms", sent ? json_integer(last - t0) : json_null(),
        "confirmed_by_drill", (json_int_t)confirmed, "steps", st, "notices", nt, "failed",
        (json_int_t)(failed + unsent), "result", ok ? "passed" : "failed");
    /* the drill's outcome, in the audit log */
    struct drill_end {
        const char *target;
        json_t *details;
    };
    if (report == NULL) {
        cu_cli_error("out of memory");
        return CU_EXIT_FAIL;
    }
    size_t not_done = failed + unsent;
    json_t *brief = json_pack("{s:s, s:s, s:O, s:O, s:O, s:I, s:s}", "playbook", name, "case",
                              d.case_id, "detect_ms", json_object_get(report, "detect_ms"),
                              "contain_ms", json_object_get(report, "contain_ms"), "notify_ms",
                              json_object_get(report, "notify_ms"), "failed", (json_int_t)not_done,
                              "result", ok ? "passed" : "failed");
    struct drill_end end = {d.customer, brief};
    rc = brief ? cu_cli_run(ctx, "operator", end_apply, &end) : CU_E_NOMEM;
    json_decref(brief);
    if (rc != CU_OK)
        cu_cli_error("the drill's outcome could not be audited: %s", cu_err_str(rc));
    if (as_json) {
        char *text = json_dumps(report, JSON_INDENT(2));
        printf("%s\n", text ? text : "{}");
        free(text);
    } else {
        printf("drill: playbook %s on drill customer %s (case %s)\n", name, d.customer, d.case_id);
        printf("  detected  %6lld ms  (%s)\n", (long long)(t_detect - t0),
               d.injected ? "no rule in force fired on the drill's sign-in: alert injected"
                          : "a rule in force fired on the drill's sign-in");
        printf("  contained %6lld ms  (%zu steps, %zu confirmed by the drill)\n",
               (long long)(t_contain - t0), json_array_size(st), confirmed);
        if (sent)
            printf("  notified  %6lld ms  (%zu of %zu notices delivered)\n", (long long)(last - t0),
                   sent, json_array_size(nt));
        else
            printf("  notified       -     (%zu notices, none delivered)\n", json_array_size(nt));
        json_array_foreach(st, i, e)
        {
            char *r = json_dumps(json_object_get(e, "result"), JSON_COMPACT | JSON_SORT_KEYS);
            printf("  step %lld %-20s %-8s %s\n",
                   (long long)json_integer_value(json_object_get(e, "step")),
                   json_string_value(json_object_get(e, "action")),
                   json_string_value(json_object_get(e, "status")), r ? r : "");
            free(r);
        }
        json_array_foreach(nt, i, e)
        {
            printf("  notice %s %-16s %-8s %s\n", json_string_value(json_object_get(e, "channel")),
                   json_string_value(json_object_get(e, "template")),
                   json_string_value(json_object_get(e, "status")),
                   json_is_string(json_object_get(e, "last_error"))
                       ? json_string_value(json_object_get(e, "last_error"))
                       : "");
        }
        printf("result: %s", ok ? "passed\n" : "failed");
        if (!ok)
            printf(" (%zu step%s not done, %zu notice%s not delivered%s)\n", failed,
                   failed == 1 ? "" : "s", unsent, unsent == 1 ? "" : "s",
                   json_array_size(st) ? "" : ", no step ran");
    }
    json_decref(report);
    return ok && rc == CU_OK ? CU_EXIT_OK : CU_EXIT_FAIL;
}

int cu_cli_drill(int argc, char **argv)
{
    static const struct option opts[] = {{"dir", required_argument, NULL, 'd'},
                                         {"timeout", required_argument, NULL, 't'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *verb = argc > 1 ? argv[1] : "", *dir = NULL;
    long timeout = 30;
    bool as_json = false;
    struct cu_cli_ctx ctx;
    struct cu_app *app = NULL;
    char *end = NULL;
    int c, code;

    if (strcmp(verb, "run") != 0)
        return usage(cu_cli_is_help(verb) || cu_cli_asks_help(argc, argv) ? stdout : stderr);
    optind = 2;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h')
            return usage(stdout);
        if (c == 'd')
            dir = optarg;
        else if (c == 'j')
            as_json = true;
        else if (c == 't') {
            timeout = strtol(optarg, &end, 10);
            if (end == optarg || *end || timeout < 0 || timeout > 3600) {
                cu_cli_error("--timeout: a number of seconds from 0 to 3600");
                return CU_EXIT_USAGE;
            }
        } else
            return usage(stderr);
    }
    if (argc - optind != 1)
        return usage(stderr);
    code = cu_cli_open(cu_cli_data_dir(dir), &ctx, true);
    if (code != CU_EXIT_OK)
        return code;
    code = cu_cli_app_new(&ctx, &app);
    if (code == CU_EXIT_OK && cu_notify_start(app->notify, ctx.store, ctx.committer) != CU_OK) {
        cu_cli_error("the notification worker could not start");
        code = CU_EXIT_FAIL;
    }
    if (code == CU_EXIT_OK)
        code = drill_run(&ctx, app, argv[optind], timeout, as_json);
    if (app)
        cu_notify_stop(app->notify);
    cu_cli_app_free(app);
    cu_cli_close(&ctx);
    return code;
}
