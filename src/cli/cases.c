/*
 * cases.c - `custodia case …`: incident cases from the shell (docs/cases.md): list, show and
 * export read (the export audited), the rest change a case as the operator, each change a
 * unit of work with its audit record, as through the API. `custodia playbooks check FILE`
 * checks a playbook file against a rule set (docs/playbooks.md).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/json.h"
#include "base/mem.h"
#include "cases/cases.h"
#include "cases/playbook.h"
#include "cli/cli.h"
#include "monitor/event.h"
#include "monitor/rules.h"

static int usage(FILE *f)
{
    return cu_cli_usage(
        f, "usage: custodia case list [--stage STAGE|open] [--customer ID] [--drills] [--dir DIR]\n"
           "       custodia case show ID [--dir DIR]\n"
           "       custodia case export ID [--format json|html] [--out FILE] [--dir DIR]\n"
           "       custodia case assign ID STAFF_ID [--dir DIR]\n"
           "       custodia case severity ID low|medium|high|critical [--dir DIR]\n"
           "       custodia case stage ID STAGE [--resolution TEXT] [--review FILE] [--dir DIR]\n"
           "       custodia case note ID TEXT [--dir DIR]\n"
           "       custodia case task ID TITLE [--dir DIR]\n"
           "       custodia case task-done ID N [--cancel] [--dir DIR]\n"
           "       custodia case observable ID KIND VALUE [--dir DIR]\n"
           "Stages: detected, assessing, contained, eradicated, recovered, closed,\n"
           "false_positive; one forward at a time, or to false_positive. Closing needs\n"
           "--resolution, and at high or critical --review FILE: a JSON object of cause,\n"
           "actions and changes. Every change and export is audited as the operator's.\n");
}

static int playbooks_usage(FILE *f)
{
    return cu_cli_usage(f,
                        "usage: custodia playbooks check FILE [--rules RULES]\n"
                        "Checks a playbook file (docs/playbooks.md) against the built-in rule\n"
                        "pack, or the rule file RULES: every mistake with its line and column.\n");
}

static int fail_rc(const char *id, enum cu_err rc, const char *why)
{
    if (rc == CU_E_NOT_FOUND && !(why && why[0]))
        cu_cli_error("%s: no case has this id", id);
    else
        cu_cli_error("%s: %s", id, why && why[0] ? why : cu_err_str(rc));
    return CU_EXIT_FAIL;
}

static int list(struct cu_cli_ctx *ctx, const struct cu_case_filter *f)
{
    char after[CU_CASE_ID_BYTES] = "", t[CU_RFC3339_BYTES];
    struct cu_db *db = NULL;
    size_t n = 0;
    enum cu_err rc = cu_store_acquire(ctx->store, &db);

    printf("%-20s %-24s %-8s %-14s %-6s %-20s %-20s %s\n", "ID", "UPDATED", "SEVERITY", "STAGE",
           "ALERTS", "CUSTOMER", "ASSIGNEE", "TITLE");
    do {
        struct cu_case *v = NULL;
        if (rc == CU_OK)
            rc = cu_cases_list(db, f, after, CU_CASES_PAGE_MAX, &v, &n);
        for (size_t i = 0; rc == CU_OK && i < n; i++) {
            cu_clock_format(v[i].updated_at, t);
            printf("%-20s %-24s %-8s %-14s %6lld %-20s %-20s %s\n", v[i].id, t, v[i].severity,
                   v[i].stage, (long long)v[i].alerts, v[i].customer[0] ? v[i].customer : "-",
                   v[i].assignee[0] ? v[i].assignee : "-", v[i].title);
            snprintf(after, sizeof(after), "%s", v[i].id);
        }
        cu_free(v);
    } while (rc == CU_OK && n == CU_CASES_PAGE_MAX);
    cu_store_release(db);
    if (rc != CU_OK) {
        cu_cli_error("cannot list the cases: %s", cu_err_str(rc));
        return CU_EXIT_FAIL;
    }
    return CU_EXIT_OK;
}

/* A change, run as one unit of work. */
struct change {
    const char *verb, *id, *a, *b;
    const json_t *review;
    int64_t n;
    bool cancel;
    char why[CU_CASE_WHY_BYTES];
};

static enum cu_err change_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct change *c = arg;
    const char *v = c->verb;

    c->why[0] = '\0';
    if (strcmp(v, "assign") == 0)
        return cu_case_assign(w, db, c->id, c->a, NULL, c->why);
    if (strcmp(v, "severity") == 0)
        return cu_case_set_severity(w, db, c->id, c->a, NULL, c->why);
    if (strcmp(v, "stage") == 0)
        return cu_case_move(w, db, c->id, c->a, c->b, c->review, NULL, c->why);
    if (strcmp(v, "note") == 0)
        return cu_case_note(w, db, c->id, c->a, c->why);
    if (strcmp(v, "task") == 0)
        return cu_case_task_add(w, db, c->id, c->a, "", &c->n, c->why);
    if (strcmp(v, "task-done") == 0)
        return cu_case_task_set(w, db, c->id, c->n, c->cancel ? "cancelled" : "done", c->why);
    if (strcmp(v, "observable") == 0)
        return cu_case_observable_add(w, db, c->id, c->a, c->b, c->why);
    if (strcmp(v, "export") == 0) {
        char target[CU_CASE_ID_BYTES + 8];
        struct cu_case cs;
        enum cu_err rc = cu_case_get(db, c->id, false, &cs);
        snprintf(target, sizeof(target), "case:%s", c->id);
        return rc != CU_OK
                   ? rc
                   : cu_work_audit(w, "case.export", target, "success",
                                   json_pack("{s:s, s:s}", "format", c->a, "by", "operator"));
    }
    return CU_E_INTERNAL;
}

/* show(ctx, id, format, f, out): the case's document (or HTML report) written to f (out: its
 * name, closed here; NULL: stdout). */
static int show(struct cu_cli_ctx *ctx, const char *id, const char *format, FILE *f,
                const char *out)
{
    struct cu_db *db = NULL;
    json_t *doc = NULL;
    struct cu_buf b;
    enum cu_err rc = cu_store_acquire(ctx->store, &db);
    int code = CU_EXIT_OK;

    if (rc == CU_OK)
        rc = cu_case_document(db, id, &doc);
    cu_store_release(db);
    if (rc != CU_OK) {
        if (out) {
            fclose(f);
            remove(out);
        }
        return fail_rc(id, rc, NULL);
    }
    cu_buf_init(&b, 64 << 20);
    if (strcmp(format, "html") == 0)
        rc = cu_case_html(doc, &b);
    else {
        char *text = json_dumps(doc, JSON_INDENT(2));
        rc = text ? cu_buf_append_str(&b, text) : CU_E_NOMEM;
        if (rc == CU_OK)
            rc = cu_buf_append_str(&b, "\n");
        free(text);
    }
    json_decref(doc);
    if (rc != CU_OK)
        code = fail_rc(id, rc, NULL);
    else {
        bool ok = fwrite(b.data, 1, b.len, f) == b.len;
        if (out) {
            ok = fclose(f) == 0 && ok;
            f = NULL;
        }
        if (!ok) {
            cu_cli_error("%s: cannot write", out ? out : "stdout");
            code = CU_EXIT_FAIL;
        } else if (out)
            fprintf(stderr, "custodia: %s written (%zu bytes)\n", out, b.len);
    }
    if (out && f)
        fclose(f);
    if (out && code != CU_EXIT_OK)
        remove(out); /* no file is left that looks like an export */
    cu_buf_free(&b);
    return code;
}

static json_t *read_review(const char *path)
{
    json_error_t e;
    json_t *r = json_load_file(path, JSON_REJECT_DUPLICATES, &e);
    if (r == NULL)
        cu_cli_error("--review %s: %s (line %d)", path, e.text, e.line);
    return r;
}

int cu_cli_case(int argc, char **argv)
{
    static const struct option opts[] = {{"dir", required_argument, NULL, 'd'},
                                         {"stage", required_argument, NULL, 's'},
                                         {"customer", required_argument, NULL, 'c'},
                                         {"drills", no_argument, NULL, 'D'},
                                         {"format", required_argument, NULL, 'f'},
                                         {"out", required_argument, NULL, 'o'},
                                         {"resolution", required_argument, NULL, 'r'},
                                         {"review", required_argument, NULL, 'R'},
                                         {"cancel", no_argument, NULL, 'C'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    static const struct {
        const char *verb;
        int args;
    } verbs[] = {{"list", 0},  {"show", 1}, {"export", 1}, {"assign", 2},    {"severity", 2},
                 {"stage", 2}, {"note", 2}, {"task", 2},   {"task-done", 2}, {"observable", 3}};
    const char *verb = argc > 1 ? argv[1] : "", *dir = NULL, *format = "json", *out = NULL,
               *review_path = NULL;
    struct cu_case_filter f = {0};
    struct change ch;
    struct cu_cli_ctx ctx;
    int c, code, want = -1;

    memset(&ch, 0, sizeof(ch));
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
        if (strcmp(verb, verbs[i].verb) == 0)
            want = verbs[i].args;
    if (want < 0)
        return usage(cu_cli_is_help(verb) || cu_cli_asks_help(argc, argv) ? stdout : stderr);
    optind = 2;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h')
            return usage(stdout);
        if (c == 'd')
            dir = optarg;
        else if (c == 's' && want == 0)
            f.stage = optarg;
        else if (c == 'c' && want == 0)
            f.customer = optarg;
        else if (c == 'D' && want == 0)
            f.drills = true;
        else if (c == 'f' && strcmp(verb, "export") == 0)
            format = optarg;
        else if (c == 'o' && strcmp(verb, "export") == 0)
            out = optarg;
        else if (c == 'r' && strcmp(verb, "stage") == 0)
            ch.b = optarg;
        else if (c == 'R' && strcmp(verb, "stage") == 0)
            review_path = optarg;
        else if (c == 'C' && strcmp(verb, "task-done") == 0)
            ch.cancel = true;
        else
            return usage(stderr);
    }
    if (argc - optind != want)
        return usage(stderr);
    if (want > 0 && !cu_case_id_valid(argv[optind])) {
        cu_cli_error("%.40s: not a case's id (cas_ and 16 hex digits)", argv[optind]);
        return CU_EXIT_USAGE;
    }
    if (strcmp(format, "json") != 0 && strcmp(format, "html") != 0) {
        cu_cli_error("--format: json or html, not %.40s", format);
        return CU_EXIT_USAGE;
    }
    if (strcmp(verb, "task-done") == 0) {
        char *end = NULL;
        ch.n = strtoll(argv[optind + 1], &end, 10);
        if (end == argv[optind + 1] || *end || ch.n < 1) {
            cu_cli_error("%.40s: not a task's number", argv[optind + 1]);
            return CU_EXIT_USAGE;
        }
    }
    json_t *review = review_path ? read_review(review_path) : NULL;
    if (review_path && review == NULL)
        return CU_EXIT_USAGE;
    bool writes = want >= 2 || strcmp(verb, "export") == 0;
    code = cu_cli_open(cu_cli_data_dir(dir), &ctx, writes);
    if (code != CU_EXIT_OK) {
        json_decref(review);
        return code;
    }
    if (want == 0)
        code = list(&ctx, &f);
    else if (strcmp(verb, "show") == 0)
        code = show(&ctx, argv[optind], "json", stdout, NULL);
    else {
        /* the file first: an export that cannot be written is not audited as made */
        FILE *of = out ? fopen(out, "wx") : stdout;
        if (of == NULL) {
            cu_cli_error("%s: cannot create (it must not exist): %s", out, strerror(errno));
            json_decref(review);
            cu_cli_close(&ctx);
            return CU_EXIT_FAIL;
        }
        ch.verb = verb;
        ch.id = argv[optind];
        ch.a = strcmp(verb, "export") == 0 ? format : want >= 2 ? argv[optind + 1] : NULL;
        if (want == 3)
            ch.b = argv[optind + 2];
        ch.review = review;
        enum cu_err rc = cu_cli_run(&ctx, "operator", change_apply, &ch);
        if (rc != CU_OK)
            code = fail_rc(ch.id, rc, ch.why);
        else if (strcmp(verb, "export") == 0) {
            code = show(&ctx, ch.id, format, of, out);
            of = NULL;
        } else if (strcmp(verb, "task") == 0)
            fprintf(stderr, "custodia: task %lld added to %s\n", (long long)ch.n, ch.id);
        else
            fprintf(stderr, "custodia: %s: %s done\n", ch.id, verb);
        if (out && of) {
            fclose(of);
            remove(out); /* not exported: no file left that looks like one */
        }
    }
    json_decref(review);
    cu_cli_close(&ctx);
    return code;
}

int cu_cli_playbooks(int argc, char **argv)
{
    const char *verb = argc > 1 ? argv[1] : "", *rules = NULL, *file = NULL;
    char err[CU_PLAYBOOK_ERR_BYTES], rerr[CU_RULES_ERR_BYTES];
    struct cu_mon_types types;
    struct cu_ruleset *rs = NULL;
    struct cu_playbooks *pb = NULL;
    enum cu_err rc;

    if (strcmp(verb, "check") != 0)
        return playbooks_usage(cu_cli_is_help(verb) || cu_cli_asks_help(argc, argv) ? stdout
                                                                                    : stderr);
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return playbooks_usage(stdout);
        if (strcmp(argv[i], "--rules") == 0 && i + 1 < argc)
            rules = argv[++i];
        else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
            i++; /* every command takes it; checking a file needs no data directory */
        else if (argv[i][0] != '-' && file == NULL)
            file = argv[i];
        else
            return playbooks_usage(stderr);
    }
    if (file == NULL)
        return playbooks_usage(stderr);
    cu_mon_types_init(&types);
    if (cu_rules_load(rules, &types, &rs, rerr) != CU_OK) {
        fprintf(stderr, "%s\n", rerr);
        return CU_EXIT_FAIL;
    }
    rc = cu_playbooks_load(file, cu_rules_alerting, rs, &pb, err);
    if (rc == CU_OK)
        printf("%s: %zu playbook%s, OK\n", file, cu_playbooks_count(pb),
               cu_playbooks_count(pb) == 1 ? "" : "s");
    else
        fprintf(stderr, "%s\n", err);
    cu_playbooks_free(pb);
    cu_rules_free(rs);
    return rc == CU_OK ? CU_EXIT_OK : CU_EXIT_FAIL;
}
