/*
 * access.c - `custodia access check FILE`: validates an access policy offline, as the server
 * would read it, and says where it is wrong; `custodia access explain`: how the data
 * directory's policy decides a permission for a principal, as POST /v1/access/explain says it
 * (docs/access.md). Neither changes anything.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access/access.h"
#include "access/policy.h"
#include "api/gate.h"
#include "api/server.h"
#include "base/clock.h"
#include "base/json.h"
#include "base/log.h"
#include "cli/cli.h"

static int usage(FILE *f)
{
    return cu_cli_usage(
        f, "usage: custodia access check FILE\n"
           "       custodia access explain --principal ID --permission PERM [--customer ID]\n"
           "                               [--ip ADDR] [--at TIME] [--aal 1|2] [--dir DIR]\n"
           "check: checks an access policy (docs/access.md): prints what it holds and exits 0,\n"
           "or prints FILE:LINE:COLUMN: reason and exits 1.\n"
           "explain: prints how the data directory's policy decides PERM for the staff member\n"
           "(stf_...) or API key (ak_...) ID, as POST /v1/access/explain answers; exits 0 when\n"
           "allowed (also masked), 3 when denied or when approval is needed.\n");
}

static int check(const char *path)
{
    struct cu_policy *p = NULL;
    struct cu_policy_error err;
    struct cu_policy_counts n;
    char msg[512];
    enum cu_err rc = cu_policy_load(path, &p, &err);

    if (rc != CU_OK) {
        cu_policy_error_format(&err, msg, sizeof msg);
        fprintf(stderr, "%s\n", msg);
        return CU_EXIT_FAIL;
    }
    cu_policy_count(p, &n);
    printf("ok: %zu roles (%zu built in, %zu redefined), %zu permits, %zu grants, %zu forbids, "
           "%zu approvals; sha256 %s\n",
           n.roles, n.builtin_roles, n.redefined_roles, n.permits, n.grants, n.forbids, n.approvals,
           cu_policy_digest(p));
    cu_policy_free(p);
    return CU_EXIT_OK;
}

/* Exit code of an explanation that does not allow. */
#define EXIT_DENIED 3

static int explain(const char *dir, struct cu_explain_in *in, const char *perm)
{
    struct cu_cli_ctx ctx;
    struct cu_app *app = NULL;
    struct cu_db *db = NULL;
    struct cu_access_why why;
    const char *err = NULL;
    const struct cu_policy *p = NULL;
    int code = cu_cli_open(cu_cli_data_dir(dir), &ctx, false);
    enum cu_err rc;

    if (code != CU_EXIT_OK)
        return code;
    /* the answer is what it prints: not the service's start-up lines (its warnings stay) */
    if (ctx.cfg.log.level < CU_LOG_WARN)
        cu_log_set_level(CU_LOG_WARN);
    code = cu_cli_app_new(&ctx, &app);
    if (code != CU_EXIT_OK) {
        cu_cli_close(&ctx);
        return code;
    }
    p = cu_access_policy_get(app->policies);
    rc = cu_store_acquire(ctx.store, &db);
    if (rc == CU_OK)
        rc = cu_explain(app, db, p, in, &why, &err);
    cu_store_release(db);
    if (rc == CU_OK) {
        json_t *j = cu_explain_json(in->principal, perm, &why, p);
        char *text = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
        if (text != NULL)
            printf("%s\n", text);
        else
            rc = CU_E_NOMEM;
        free(text);
        json_decref(j);
        code = rc != CU_OK ? CU_EXIT_FAIL
               : why.effect == CU_ACCESS_ALLOW || why.effect == CU_ACCESS_ALLOW_MASKED
                   ? CU_EXIT_OK
                   : EXIT_DENIED;
    } else {
        cu_cli_error("%s", err ? err : cu_err_str(rc));
        code = rc == CU_E_INVALID ? CU_EXIT_USAGE : CU_EXIT_FAIL;
    }
    cu_access_policy_put(app->policies, p);
    cu_cli_app_free(app);
    cu_cli_close(&ctx);
    return code;
}

static int explain_main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"principal", required_argument, NULL, 'p'},
        {"permission", required_argument, NULL, 'x'},
        {"customer", required_argument, NULL, 'c'},
        {"ip", required_argument, NULL, 'i'},
        {"at", required_argument, NULL, 't'},
        {"aal", required_argument, NULL, 'a'},
        {"dir", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct cu_explain_in in = {.at_ms = cu_clock_now_ms(), .aal = 2};
    const char *dir = NULL, *perm = NULL;
    int c;

    optind = 2;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h')
            return usage(stdout);
        if (c == 'p' && strlen(optarg) < 32)
            in.principal = optarg;
        else if (c == 'x')
            perm = optarg;
        else if (c == 'c' && strlen(optarg) < 32)
            in.customer = optarg;
        else if (c == 'i' && cu_ip_parse(optarg, &in.ip) == CU_OK)
            in.has_ip = true;
        else if (c == 't' && cu_clock_parse(optarg, &in.at_ms) == CU_OK)
            continue;
        else if (c == 'a' && (strcmp(optarg, "1") == 0 || strcmp(optarg, "2") == 0))
            in.aal = optarg[0] - '0';
        else if (c == 'd')
            dir = optarg;
        else {
            if (c == 'i' || c == 't' || c == 'a' || c == 'p' || c == 'c')
                cu_cli_error("--%s: not a valid value: %s",
                             c == 'i'   ? "ip"
                             : c == 't' ? "at"
                             : c == 'a' ? "aal"
                             : c == 'p' ? "principal"
                                        : "customer",
                             optarg);
            return usage(stderr);
        }
    }
    if (optind < argc || in.principal == NULL || perm == NULL)
        return usage(stderr);
    in.permission = cu_apikey_scope_parse(perm, strlen(perm));
    if (in.permission == 0) {
        cu_cli_error("--permission: unknown permission '%s' (docs/access.md lists them)", perm);
        return CU_EXIT_USAGE;
    }
    return explain(dir, &in, perm);
}

int cu_cli_access(int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0))
        return usage(stdout);
    if (argc == 3 && strcmp(argv[1], "check") == 0)
        return check(argv[2]);
    if (argc >= 2 && strcmp(argv[1], "explain") == 0)
        return explain_main(argc, argv);
    return usage(stderr);
}
