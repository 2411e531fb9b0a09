/*
 * access.c - `custodia access check FILE`: validates an access policy offline, as the server
 * would read it, and says where it is wrong (docs/access.md).
 */
#include <stdio.h>
#include <string.h>

#include "access/policy.h"
#include "cli/cli.h"

static int usage(FILE *f)
{
    return cu_cli_usage(f, "usage: custodia access check FILE\n"
                           "Checks an access policy (docs/access.md): prints what it holds and "
                           "exits 0,\nor prints FILE:LINE:COLUMN: reason and exits 1.\n");
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

int cu_cli_access(int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0))
        return usage(stdout);
    if (argc == 3 && strcmp(argv[1], "check") == 0)
        return check(argv[2]);
    return usage(stderr);
}
