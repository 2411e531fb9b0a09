/*
 * ledger.c - `custodia ledger check`: verifies the ledger's invariants on the data directory's
 * store (docs/ledger.md, "Checking the ledger"): postings sum to zero per currency, stored
 * balances equal the journal's sums, no available balance is below its limit, pending
 * transfers are consistent, the journal's sequence has no gap, and every movement has its
 * audit record. It reads in one snapshot and changes nothing; it may run beside the server.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "ledger/ledger.h"
#include "store/store.h"

static int usage(FILE *f)
{
    return cu_cli_usage(f,
                        "usage: custodia ledger check [--dir DIR]\n"
                        "Checks the ledger's invariants (docs/ledger.md); prints what it checked\n"
                        "and exits 0, or prints the first violation and how many there are and\n"
                        "exits 1.\n");
}

static int check(const char *dir)
{
    struct cu_cli_ctx ctx;
    struct cu_ledger_check_report r;
    struct cu_db *db = NULL;
    int code = cu_cli_open(cu_cli_data_dir(dir), &ctx, false);
    enum cu_err rc;

    if (code != CU_EXIT_OK)
        return code;
    rc = cu_store_acquire(ctx.store, &db);
    if (rc == CU_OK)
        rc = cu_ledger_check(db, &r);
    cu_store_release(db);
    if (rc != CU_OK) {
        cu_cli_error("the ledger could not be read: %s", cu_err_str(rc));
        code = CU_EXIT_FAIL;
    } else if (r.violations > 0) {
        printf("ledger: %zu violation%s; the first: %s\n", r.violations,
               r.violations == 1 ? "" : "s", r.first);
        code = CU_EXIT_FAIL;
    } else {
        printf("ledger: ok: %lld accounts, %lld transfers in %lld movements (%lld pending); "
               "every balance is its journal's sum, each currency sums to zero, every movement "
               "has its audit record\n",
               (long long)r.accounts, (long long)r.transfers, (long long)r.movements,
               (long long)r.pending);
    }
    cu_cli_close(&ctx);
    return code;
}

int cu_cli_ledger(int argc, char **argv)
{
    static const struct option opts[] = {
        {"dir", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *dir = NULL;
    int c;

    if (argc < 2)
        return usage(stderr);
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
        return usage(stdout);
    if (strcmp(argv[1], "check") != 0)
        return usage(stderr);
    optind = 2;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h')
            return usage(stdout);
        if (c != 'd')
            return usage(stderr);
        dir = optarg;
    }
    if (optind < argc)
        return usage(stderr);
    return check(dir);
}
