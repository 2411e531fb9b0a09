/*
 * dbq.c - the integration tests' window on a data directory's database: `dbq DIR SQL [ARG…]`
 * runs one statement through the store interface the server uses (the backend and file the
 * directory's custodia.conf names, its `$1`, `$2` … placeholders bound to the ARGs as text)
 * and prints each row on a line, columns separated by '|', NULL as nothing, integers in
 * decimal, blobs in upper-case hex (as the sqlite3 shell prints them), so that the tests read
 * what the database holds without a backend's own client. Exit 0, or 1 with the store's error
 * on stderr.
 *
 * A test tool: its SQL comes from the command line, one statement a process, which is why it
 * may pass the store text that is not a string literal (the statement cache is keyed by the
 * text's address and sees it once).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/config.h"
#include "base/log.h"
#include "store/store.h"

#define ARGS_MAX 8

static void print_row(struct cu_stmt *st)
{
    int n = cu_stmt_columns(st);
    for (int i = 0; i < n; i++) {
        size_t len = 0;
        if (i > 0)
            putchar('|');
        switch (cu_stmt_type(st, i)) {
        case CU_VAL_NULL:
            break;
        case CU_VAL_INT:
            printf("%lld", (long long)cu_stmt_int(st, i));
            break;
        case CU_VAL_BLOB: {
            const unsigned char *b = cu_stmt_blob(st, i, &len);
            for (size_t k = 0; k < len; k++)
                printf("%02X", b[k]);
            break;
        }
        default: {
            const char *t = cu_stmt_text(st, i, &len);
            fwrite(t, 1, len, stdout);
            break;
        }
        }
    }
    putchar('\n');
}

int main(int argc, char **argv)
{
    char cfg_err[CU_CONFIG_ERR_BYTES], err[CU_STORE_ERR_BYTES], path[CU_CONFIG_PATH_BYTES];
    struct cu_val vals[ARGS_MAX];
    struct cu_config cfg;
    struct cu_store *store = NULL;
    struct cu_db *db = NULL;
    struct cu_stmt *st = NULL;
    bool row = true;
    size_t n = argc > 3 ? (size_t)argc - 3 : 0;
    enum cu_err rc;

    if (argc < 3 || n > ARGS_MAX) {
        fprintf(stderr, "usage: dbq DIR SQL [ARG...] (at most %d ARGs)\n", ARGS_MAX);
        return 2;
    }
    cu_log_set_level(CU_LOG_ERROR);
    if (cu_config_load(&cfg, argv[1], cfg_err) != CU_OK) {
        fprintf(stderr, "dbq: %s\n", cfg_err);
        return 1;
    }
    struct cu_store_opts o;
    if (cu_store_opts_of(&cfg, path, sizeof(path), &o) != CU_OK) {
        fprintf(stderr, "dbq: the store path is too long\n");
        return 1;
    }
    o.busy_timeout_ms = 10000;
    o.pool_connections = 1;
    for (size_t i = 0; i < n; i++)
        vals[i] = CU_VT(argv[3 + i]);
    rc = cu_store_open(&o, &store, err);
    if (rc == CU_OK)
        rc = cu_store_acquire(store, &db);
    if (rc == CU_OK)
        rc = cu_db_query(db, argv[2], vals, n, &st);
    while (rc == CU_OK && (rc = cu_stmt_next(st, &row)) == CU_OK && row)
        print_row(st);
    cu_stmt_done(st);
    cu_store_release(db);
    cu_store_close(store);
    if (rc != CU_OK) {
        fprintf(stderr, "dbq: %s%s%s\n", err, err[0] ? ": " : "", cu_err_str(rc));
        return 1;
    }
    return 0;
}
