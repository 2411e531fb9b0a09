/*
 * rules.c - `custodia rules check FILE...`: compiles rule files offline (docs/rules.md) and
 * prints what each holds, or the first error of each as FILE:LINE:COLUMN: what was expected.
 * `custodia rules test EVENTS.jsonl`: replays an event file through a rule set on a fresh
 * in-memory state (docs/monitoring.md, "Backtests"). Neither reads a data directory.
 * `custodia rules backtest --from T --to T`: the same over a data directory's stored events
 * (read only), with the alerts' resolutions as labels.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/json.h"
#include "base/mem.h"
#include "cli/cli.h"
#include "monitor/engine.h"
#include "monitor/monitor.h"
#include "monitor/event.h"
#include "monitor/rules.h"

static int usage(FILE *f)
{
    return cu_cli_usage(
        f, "usage: custodia rules check [--types A,B...] FILE...\n"
           "       custodia rules test [--rules FILE] [--decisions OUT.jsonl] [--types A,B...]\n"
           "                           EVENTS.jsonl\n"
           "check compiles each rule file (docs/rules.md) and prints its rules, or its first\n"
           "error as FILE:LINE:COLUMN: message; exits 0 when every file compiles, else 1.\n"
           "test replays an event file (one event a line, in time order; a line may carry a\n"
           "\"label\": \"legit\" or an attack's name) through a rule set (the default pack\n"
           "without --rules) on a fresh in-memory state, and prints how often each rule fired,\n"
           "the decisions, and with labels precision, recall and the confusion matrix.\n"
           "--decisions writes one JSON line per input line, in order. Exits 1 when a line\n"
           "is not an event.\n"
           "       custodia rules backtest --from TIME --to TIME [--rules FILE | --version N]\n"
           "                               [--dir DIR]\n"
           "backtest replays the data directory's stored events of the range (RFC 3339 times,\n"
           "at most 90 days apart) through a rule set (a file, a stored version, else the one\n"
           "in force) on a fresh state, and prints the report as JSON: decisions, rules fired,\n"
           "decisions changed, and the alerts' resolutions as labels (docs/monitoring.md).\n"
           "--types declares custom event types besides the built-in ones.\n");
}

/* backtest(argc, argv): `custodia rules backtest`. */
static int backtest(int argc, char **argv)
{
    const char *dir = NULL, *from = NULL, *to = NULL, *rules = NULL, *version = NULL;
    struct cu_backtest_opts o;
    struct cu_monitor_opts mo;
    struct cu_monitor *m = NULL;
    struct cu_cli_ctx ctx;
    struct cu_db *db = NULL;
    struct cu_buf out;
    char err[CU_RULES_ERR_BYTES] = "", status[16], cfg_rules[CU_CONFIG_PATH_BYTES];
    char *text = NULL;
    size_t len = 0;
    int code;
    enum cu_err rc = CU_OK;

    for (int i = 2; i < argc; i += 2) {
        const char **slot = strcmp(argv[i], "--dir") == 0       ? &dir
                            : strcmp(argv[i], "--from") == 0    ? &from
                            : strcmp(argv[i], "--to") == 0      ? &to
                            : strcmp(argv[i], "--rules") == 0   ? &rules
                            : strcmp(argv[i], "--version") == 0 ? &version
                                                                : NULL;
        if (slot == NULL || i + 1 >= argc)
            return usage(stderr);
        *slot = argv[i + 1];
    }
    memset(&o, 0, sizeof(o));
    if (from == NULL || to == NULL || (rules && version) ||
        cu_clock_parse(from, &o.from) != CU_OK || cu_clock_parse(to, &o.to) != CU_OK) {
        cu_cli_error("--from and --to are RFC 3339 times; --rules and --version exclude each "
                     "other");
        return CU_EXIT_USAGE;
    }
    if (version != NULL && ((o.version = strtoll(version, NULL, 10)) < 1)) {
        cu_cli_error("--version: a stored rule set's version (1, 2 ...)");
        return CU_EXIT_USAGE;
    }
    if ((code = cu_cli_open(cu_cli_data_dir(dir), &ctx, false)) != CU_EXIT_OK)
        return code;
    memset(&mo, 0, sizeof(mo));
    mo.types =
        strcmp(ctx.cfg.monitor.event_types, "none") != 0 ? ctx.cfg.monitor.event_types : NULL;
    if (cu_monitor_new(&mo, &m, err) != CU_OK || cu_store_acquire(ctx.store, &db) != CU_OK) {
        cu_cli_error("%s", err[0] ? err : "the store could not be read");
        cu_monitor_free(m);
        cu_cli_close(&ctx);
        return CU_EXIT_FAIL;
    }
    if (rules != NULL) {
        rc = cu_rules_read(rules, &text, &len, err);
    } else {
        if (o.version == 0) {
            /* the set in force: the stored live version, else [monitor] rules */
            static const char sql[] = "SELECT version FROM rule_sets WHERE status = 'live'";
            struct cu_stmt *st = NULL;
            bool row = false;
            rc = cu_db_query(db, sql, NULL, 0, &st);
            if (rc == CU_OK && (rc = cu_stmt_next(st, &row)) == CU_OK && row)
                o.version = cu_stmt_int(st, 0);
            cu_stmt_done(st);
        }
        if (rc == CU_OK && o.version > 0) {
            rc = cu_rulesets_body(db, o.version, status, &text, &len);
            if (rc == CU_E_NOT_FOUND)
                snprintf(err, sizeof(err), "no rule set has version %lld", (long long)o.version);
        } else if (rc == CU_OK && strcmp(ctx.cfg.monitor.rules, "builtin") != 0) {
            if (cu_config_path(&ctx.cfg, ctx.cfg.monitor.rules, cfg_rules, sizeof(cfg_rules)) !=
                CU_OK)
                rc = CU_E_INVALID;
            else
                rc = cu_rules_read(cfg_rules, &text, &len, err);
        } else if (rc == CU_OK) {
            text = cu_strdup(cu_rules_default_pack);
            len = cu_rules_default_pack_len;
            rc = text ? CU_OK : CU_E_NOMEM;
        }
    }
    o.text = text;
    o.len = len;
    cu_buf_init(&out, (size_t)64 << 20);
    if (rc == CU_OK)
        rc = cu_monitor_backtest(m, db, &o, &out, err);
    if (rc == CU_OK) {
        printf("%s\n", cu_buf_cstr(&out));
    } else {
        cu_cli_error("%s", err[0] ? err : cu_err_str(rc));
        code = rc == CU_E_INVALID || rc == CU_E_NOT_FOUND || rc == CU_E_TOO_LARGE ? CU_EXIT_USAGE
                                                                                  : CU_EXIT_FAIL;
    }
    cu_buf_free(&out);
    cu_free(text);
    cu_store_release(db);
    cu_monitor_free(m);
    cu_cli_close(&ctx);
    return rc == CU_OK ? CU_EXIT_OK : code;
}

static int add_types(struct cu_mon_types *t, const char *list)
{
    char *copy = cu_strdup(list), *save = NULL;
    char err[CU_MON_ERR_BYTES];
    int code = CU_EXIT_OK;
    if (!copy)
        return CU_EXIT_FAIL;
    for (char *s = strtok_r(copy, ",", &save); s && code == CU_EXIT_OK;
         s = strtok_r(NULL, ",", &save))
        if (cu_mon_types_add(t, s, err) != CU_OK) {
            cu_cli_error("--types: %s", err);
            code = CU_EXIT_USAGE;
        }
    cu_free(copy);
    return code;
}

struct replay {
    struct cu_mon_engine eng;
    const struct cu_ruleset *rs;
    FILE *decisions;
    uint64_t lines, refused, late, rule_errors;
    uint64_t decided[5];
    uint64_t *fired;
    uint64_t matrix[2][5]; /* [attack][decision] */
    uint64_t labelled;
    int64_t last_ms;
};

static int replay_line(struct replay *r, const struct cu_mon_parse_opts *o, const char *line,
                       size_t len, struct cu_buf *out)
{
    struct cu_mon_event ev;
    struct cu_verdict v;
    char err[CU_MON_ERR_BYTES];

    r->lines++;
    cu_buf_reset(out);
    if (cu_mon_event_parse(line, len, o, &ev, err) != CU_OK) {
        r->refused++;
        fprintf(stderr, "line %llu: %s\n", (unsigned long long)r->lines, err);
        if (r->decisions) {
            if (cu_buf_printf(out, "{\"line\":%llu,\"error\":", (unsigned long long)r->lines) !=
                    CU_OK ||
                cu_json_escape(out, err, strlen(err)) != CU_OK ||
                cu_buf_append_str(out, "}\n") != CU_OK)
                return CU_EXIT_FAIL;
            fputs(cu_buf_cstr(out), r->decisions);
        }
        return CU_EXIT_OK;
    }
    if (r->lines > 1 && ev.time_ms < r->last_ms)
        r->late++;
    else
        r->last_ms = ev.time_ms;
    if (cu_mon_engine_decide(&r->eng, &ev, &v, NULL) != CU_OK) {
        cu_cli_error("line %llu: out of memory", (unsigned long long)r->lines);
        return CU_EXIT_FAIL;
    }
    r->decided[v.decision]++;
    r->rule_errors += v.nerrors;
    for (size_t i = 0; i < v.nfired; i++)
        r->fired[v.fired[i].rule]++;
    if (ev.has & CU_EVF_LABEL) {
        r->matrix[strcmp(ev.label, "legit") != 0][v.decision]++;
        r->labelled++;
    }
    if (r->decisions) {
        if (cu_buf_printf(out, "{\"line\":%llu,", (unsigned long long)r->lines) != CU_OK ||
            cu_mon_verdict_json(r->rs, &v, out) != CU_OK || cu_buf_append_str(out, "}\n") != CU_OK)
            return CU_EXIT_FAIL;
        fputs(cu_buf_cstr(out), r->decisions);
    }
    return CU_EXIT_OK;
}

static void replay_report(const struct replay *r, double secs)
{
    printf("events: %llu read, %llu refused, %llu out of time order, in %.2f s (%.0f events/s)\n",
           (unsigned long long)r->lines, (unsigned long long)r->refused,
           (unsigned long long)r->late, secs, secs > 0 ? (double)r->lines / secs : 0.0);
    printf("decisions:");
    for (int d = 0; d < 5; d++)
        printf(" %s %llu", cu_decision_name((enum cu_decision)d),
               (unsigned long long)r->decided[d]);
    printf("\n");
    if (r->rule_errors)
        printf("rule failures at run time: %llu\n", (unsigned long long)r->rule_errors);
    printf("rules fired:\n");
    for (size_t i = 0; i < cu_rules_count(r->rs); i++)
        printf("  %-34s %llu\n", cu_rules_name(r->rs, i), (unsigned long long)r->fired[i]);
    if (r->labelled == 0)
        return;
    uint64_t legit = 0, attack = 0, tp = 0, fp = 0;
    for (int d = 0; d < 5; d++) {
        legit += r->matrix[0][d];
        attack += r->matrix[1][d];
        if (d >= 2) { /* flagged: step_up, hold or deny */
            tp += r->matrix[1][d];
            fp += r->matrix[0][d];
        }
    }
    printf("labels: %llu legitimate, %llu attack\n", (unsigned long long)legit,
           (unsigned long long)attack);
    printf("confusion (label by decision):%-9s", "");
    for (int d = 0; d < 5; d++)
        printf(" %9s", cu_decision_name((enum cu_decision)d));
    printf("\n");
    for (int a = 0; a < 2; a++) {
        printf("  %-37s", a ? "attack" : "legit");
        for (int d = 0; d < 5; d++)
            printf(" %9llu", (unsigned long long)r->matrix[a][d]);
        printf("\n");
    }
    printf("flagged (step_up, hold or deny): precision %.4f, recall %.4f\n",
           tp + fp ? (double)tp / (double)(tp + fp) : 0.0,
           attack ? (double)tp / (double)attack : 0.0);
}

static int rules_test(const struct cu_mon_types *types, const char *rules_path,
                      const char *decisions_path, const char *events_path)
{
    struct cu_ruleset *rs = NULL;
    struct replay r;
    char err[CU_RULES_ERR_BYTES];
    char *line = NULL;
    size_t cap = 0;
    FILE *in = NULL;
    struct cu_buf out;
    int code = CU_EXIT_OK;
    ssize_t got;

    memset(&r, 0, sizeof(r));
    cu_buf_init(&out, 1 << 20);
    if (cu_rules_load(rules_path, types, &rs, err) != CU_OK) {
        fprintf(stderr, "%s\n", err);
        return CU_EXIT_FAIL;
    }
    r.rs = rs;
    if ((r.fired = cu_calloc(cu_rules_count(rs) + 1, sizeof(*r.fired))) == NULL ||
        cu_mon_engine_init(&r.eng, rs, NULL) != CU_OK) {
        cu_cli_error("out of memory");
        code = CU_EXIT_FAIL;
        goto out;
    }
    if ((in = strcmp(events_path, "-") == 0 ? stdin : fopen(events_path, "rb")) == NULL) {
        cu_cli_error("%s: cannot open: %s", events_path, strerror(errno));
        code = CU_EXIT_FAIL;
        goto out;
    }
    if (decisions_path && (r.decisions = fopen(decisions_path, "wb")) == NULL) {
        cu_cli_error("%s: cannot write: %s", decisions_path, strerror(errno));
        code = CU_EXIT_FAIL;
        goto out;
    }
    /* times lie in the past (a day ahead of this machine's clock allowed): one event dated
     * far ahead would otherwise move the windows of its keys away from the rest */
    struct cu_mon_parse_opts o = {types, true, 0, cu_clock_now_ms() + 86400000LL};
    uint64_t t0 = cu_clock_mono_ns();
    while (code == CU_EXIT_OK && (got = getline(&line, &cap, in)) >= 0) {
        size_t n = (size_t)got;
        if (n > 0 && line[n - 1] == '\n')
            n--;
        if (n > 0 && line[n - 1] == '\r')
            n--;
        code = replay_line(&r, &o, line, n, &out);
    }
    if (ferror(in)) {
        cu_cli_error("%s: cannot read", events_path);
        code = CU_EXIT_FAIL;
    }
    if (code == CU_EXIT_OK) {
        replay_report(&r, (double)(cu_clock_mono_ns() - t0) / 1e9);
        if (r.refused > 0)
            code = CU_EXIT_FAIL;
    }
out:
    if (r.decisions && fclose(r.decisions) != 0 && code == CU_EXIT_OK) {
        cu_cli_error("%s: cannot write", decisions_path);
        code = CU_EXIT_FAIL;
    }
    if (in && in != stdin)
        fclose(in);
    free(line);
    cu_buf_free(&out);
    if (r.eng.st)
        cu_mon_engine_fini(&r.eng);
    cu_free(r.fired);
    cu_rules_free(rs);
    return code;
}

int cu_cli_rules(int argc, char **argv)
{
    struct cu_mon_types types;
    int code = CU_EXIT_OK, first = 2;

    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0 ||
            (i == 1 && strcmp(argv[i], "help") == 0))
            return usage(stdout);
    if (argc >= 2 && strcmp(argv[1], "backtest") == 0)
        return backtest(argc, argv);
    if (argc < 2 || (strcmp(argv[1], "check") != 0 && strcmp(argv[1], "test") != 0))
        return usage(stderr);
    bool test = strcmp(argv[1], "test") == 0;
    const char *rules_path = NULL, *decisions_path = NULL;
    cu_mon_types_init(&types);
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--dir") == 0) { /* accepted as by every command; not read */
            if (i + 1 >= argc)
                return usage(stderr);
            argv[i] = argv[i + 1] = NULL;
            i++;
        }
    }
    for (; first < argc && (argv[first] == NULL || strncmp(argv[first], "--", 2) == 0); first++) {
        if (argv[first] == NULL)
            continue;
        if (first + 1 >= argc)
            return usage(stderr);
        if (strcmp(argv[first], "--types") == 0) {
            if ((code = add_types(&types, argv[first + 1])) != CU_EXIT_OK)
                return code;
        } else if (test && strcmp(argv[first], "--rules") == 0) {
            rules_path = argv[first + 1];
        } else if (test && strcmp(argv[first], "--decisions") == 0) {
            decisions_path = argv[first + 1];
        } else {
            return usage(stderr);
        }
        first++;
    }
    if (first >= argc || (test && first + 1 != argc))
        return usage(stderr);
    if (test)
        return rules_test(&types, rules_path, decisions_path, argv[first]);
    for (int i = first; i < argc; i++) {
        struct cu_ruleset *rs = NULL;
        const struct cu_feature *f = NULL;
        char err[CU_RULES_ERR_BYTES];
        if (argv[i] == NULL)
            continue;
        if (cu_rules_load(argv[i], &types, &rs, err) != CU_OK) {
            fprintf(stderr, "%s\n", err);
            code = CU_EXIT_FAIL;
        } else {
            size_t nf = cu_rules_features(rs, &f);
            printf("%s: ok: %zu rule%s reading %zu feature%s\n", argv[i], cu_rules_count(rs),
                   cu_rules_count(rs) == 1 ? "" : "s", nf, nf == 1 ? "" : "s");
            for (size_t r = 0; r < cu_rules_count(rs); r++)
                printf("  %s: %s\n", cu_rules_name(rs, r), cu_rules_reason(rs, r));
        }
        cu_rules_free(rs);
    }
    return code;
}
