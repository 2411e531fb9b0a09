/*
 * store.c - `custodia store copy --to URL [--dir DIR]`: copies an embedded installation (the
 * data directory's SQLite database) into an empty PostgreSQL database, table by table in one
 * read snapshot of the source, 1,000 rows a transaction, with progress on a terminal; then
 * proves the copy: every table holds as many rows as the source's, the audit chain verifies on
 * the copy, and so do the ledger's invariants. It refuses a target that holds any table. The
 * data directory is left as it was: once the copy is proven, point [store] at the database.
 *
 * The statements are made at run time from the schema's own table and column names (the store
 * contract's dynamic statements), never from input.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "audit/checkpoint.h"
#include "base/buf.h"
#include "base/log.h"
#include "base/mem.h"
#include "cli/cli.h"
#include "ledger/ledger.h"
#include "store/store.h"

/* Every table of the schema but schema_migrations, in an order that keeps the foreign keys
 * (a row's parent is copied before it). A table of the target's schema missing here stops the
 * copy before it is called proven. */
static const char *const tables[] = {
    "api_keys",
    "audit_log",
    "audit_head",
    "audit_checkpoints",
    "staff",
    "credentials",
    "staff_secrets",
    "recovery_codes",
    "sessions",
    "auth_challenges",
    "lockouts",
    "auth_events",
    "customers",
    "customer_fields",
    "customer_index",
    "customer_secrets",
    "unmask_usage",
    "approvals",
    "approval_votes",
    "approval_secrets",
    "events",
    "ledger_accounts",
    "ledger_transfers",
    "ledger_pending",
    "ledger_head",
    "ledger_customer_limits",
    "ledger_decisions",
    "ledger_idempotency",
    "monitor_head",
    "monitor_events",
    "alerts",
    "alert_comments",
    "monitor_list_items",
    "monitor_snoozes",
    "rule_sets",
    "notify_outbox",
    "cases",
    "case_observables",
    "case_alerts",
    "case_tasks",
    "case_timeline",
    "case_steps",
    "case_reports",
    "self_freezes",
    "drill_customers",
    "forgotten_devices",
    "monitor_idempotency",
};
#define NTABLES (sizeof(tables) / sizeof(tables[0]))

/* The tables a migration fills with their one row: the source's row replaces it. */
static bool singleton(const char *t)
{
    return strcmp(t, "audit_head") == 0 || strcmp(t, "ledger_head") == 0 ||
           strcmp(t, "monitor_head") == 0;
}

/* Rows a transaction of the target. */
#define COPY_BATCH 1000

static int usage(FILE *f)
{
    return cu_cli_usage(
        f, "usage: custodia store copy --to postgres://... [--dir DIR]\n"
           "Copies the data directory's embedded database into an empty PostgreSQL database and\n"
           "proves the copy (row counts, the audit chain, the ledger's invariants). Stop the\n"
           "server first. The directory is left as it is: then set [store] backend = postgres\n"
           "and url in its custodia.conf.\n");
}

static bool name_ok(const char *n)
{
    size_t len = strlen(n);
    return len > 0 && len < 64 && strspn(n, "abcdefghijklmnopqrstuvwxyz0123456789_") == len;
}

struct copy {
    struct cu_db *src, *dst;
    bool tty;
    int64_t rows; /* copied in all */
};

/* insert_sql(st, table, out): "INSERT INTO table (c1, ...) VALUES ($1, ...)" from the
 * source's columns. */
static enum cu_err insert_sql(struct cu_stmt *st, const char *table, struct cu_buf *out)
{
    int n = cu_stmt_columns(st);
    enum cu_err rc = cu_buf_printf(out, "INSERT INTO %s (", table);

    for (int i = 0; rc == CU_OK && i < n; i++) {
        const char *c = cu_stmt_column_name(st, i);
        if (!name_ok(c))
            return CU_E_CORRUPT;
        rc = cu_buf_printf(out, "%s%s", i ? ", " : "", c);
    }
    if (rc == CU_OK)
        rc = cu_buf_append_str(out, ") VALUES (");
    for (int i = 0; rc == CU_OK && i < n; i++)
        rc = cu_buf_printf(out, "%s$%d", i ? ", " : "", i + 1);
    if (rc == CU_OK)
        rc = cu_buf_append(out, ")", 2); /* with the NUL */
    return rc;
}

/* copy_table(cp, table, n): the source's rows of table into the target; *n how many. */
static enum cu_err copy_table(struct copy *cp, const char *table, int64_t *n)
{
    char sql[128];
    struct cu_stmt *sel = NULL, *ins = NULL;
    struct cu_val *vals = NULL;
    struct cu_buf isql;
    bool row = false;
    int64_t in_txn = 0;
    int cols = 0;
    enum cu_err rc;

    *n = 0;
    cu_buf_init(&isql, 65536);
    snprintf(sql, sizeof sql, "SELECT * FROM %s", table);
    rc = cu_db_prepare_dynamic(cp->src, sql, &sel);
    if (rc == CU_OK)
        rc = cu_stmt_start(sel, NULL, 0);
    if (rc == CU_OK && (rc = cu_db_begin(cp->dst, CU_TXN_WRITE)) == CU_OK && singleton(table)) {
        snprintf(sql, sizeof sql, "DELETE FROM %s", table);
        struct cu_stmt *del = NULL;
        rc = cu_db_prepare_dynamic(cp->dst, sql, &del);
        if (rc == CU_OK && (rc = cu_stmt_start(del, NULL, 0)) == CU_OK)
            while ((rc = cu_stmt_next(del, &row)) == CU_OK && row)
                ;
        cu_stmt_free(del);
    }
    while (rc == CU_OK && (rc = cu_stmt_next(sel, &row)) == CU_OK && row) {
        if (vals == NULL) {
            cols = cu_stmt_columns(sel);
            vals = cu_calloc((size_t)cols, sizeof(*vals));
            rc = vals ? insert_sql(sel, table, &isql) : CU_E_NOMEM;
            if (rc == CU_OK)
                rc = cu_db_prepare_dynamic(cp->dst, (const char *)isql.data, &ins);
            if (rc != CU_OK)
                break;
        }
        for (int i = 0; i < cols; i++) {
            size_t len = 0;
            switch (cu_stmt_type(sel, i)) {
            case CU_VAL_INT:
                vals[i] = CU_VI(cu_stmt_int(sel, i));
                break;
            case CU_VAL_BLOB: {
                const void *b = cu_stmt_blob(sel, i, &len);
                vals[i] = CU_VB(b ? b : "", len);
                break;
            }
            case CU_VAL_TEXT: {
                const char *t = cu_stmt_text(sel, i, &len);
                vals[i] = CU_VTN(t, len);
                break;
            }
            default:
                vals[i] = CU_VNULL;
                break;
            }
        }
        bool r2 = false;
        rc = cu_stmt_start(ins, vals, (size_t)cols);
        while (rc == CU_OK && (rc = cu_stmt_next(ins, &r2)) == CU_OK && r2)
            ;
        cu_stmt_done(ins);
        if (rc != CU_OK)
            break;
        (*n)++;
        cp->rows++;
        if (++in_txn == COPY_BATCH) {
            in_txn = 0;
            rc = cu_db_commit(cp->dst);
            if (rc == CU_OK)
                rc = cu_db_begin(cp->dst, CU_TXN_WRITE);
            if (cp->tty)
                fprintf(stderr, "\r  %-24s %12lld rows", table, (long long)*n);
        }
    }
    cu_stmt_free(sel);
    cu_stmt_free(ins);
    if (rc == CU_OK)
        rc = cu_db_commit(cp->dst);
    cu_db_rollback(cp->dst);
    cu_free(vals);
    cu_buf_free(&isql);
    return rc;
}

static enum cu_err count_rows(struct cu_db *db, const char *table, int64_t *n)
{
    char sql[128];
    struct cu_stmt *st = NULL;
    bool row = false;
    enum cu_err rc;

    *n = -1;
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM %s", table);
    rc = cu_db_prepare_dynamic(db, sql, &st);
    if (rc == CU_OK)
        rc = cu_stmt_start(st, NULL, 0);
    if (rc == CU_OK && (rc = cu_stmt_next(st, &row)) == CU_OK && row)
        *n = cu_stmt_int(st, 0);
    cu_stmt_free(st);
    return rc;
}

/* target_tables(db, count, unknown, cap): how many tables the target's schema holds, and the
 * first one this copy does not know (none: ""). Standard SQL's information schema. */
static enum cu_err target_tables(struct cu_db *db, int64_t *count, char *unknown, size_t cap)
{
    static const char sql[] = "SELECT table_name FROM information_schema.tables WHERE "
                              "table_schema = current_schema() ORDER BY table_name";
    struct cu_stmt *st = NULL;
    bool row = false;
    enum cu_err rc = cu_db_query(db, sql, NULL, 0, &st);

    *count = 0;
    unknown[0] = '\0';
    while (rc == CU_OK && (rc = cu_stmt_next(st, &row)) == CU_OK && row) {
        const char *t = cu_stmt_text(st, 0, NULL);
        bool known = strcmp(t, "schema_migrations") == 0;
        for (size_t i = 0; i < NTABLES && !known; i++)
            known = strcmp(tables[i], t) == 0;
        if (!known && !unknown[0])
            snprintf(unknown, cap, "%s", t);
        (*count)++;
    }
    cu_stmt_done(st);
    return rc;
}

static int copy_to(const char *dir, const char *url)
{
    struct cu_cli_ctx ctx;
    struct cu_store *target = NULL;
    struct cu_store_opts o = {.backend = "postgres",
                              .url = url,
                              .busy_timeout_ms = 10000,
                              .pool_connections = 2,
                              .create = false};
    char err[CU_STORE_ERR_BYTES], unknown[64];
    struct copy cp = {.tty = isatty(STDERR_FILENO) == 1};
    int64_t ntables = 0;
    int code = cu_cli_open(cu_cli_data_dir(dir), &ctx, true);
    enum cu_err rc;

    if (code != CU_EXIT_OK)
        return code;
    code = CU_EXIT_FAIL;
    if (strcmp(cu_store_backend(ctx.store), "sqlite") != 0) {
        cu_cli_error("the data directory's store is already %s: store copy copies an embedded "
                     "one",
                     cu_store_backend(ctx.store));
        goto out;
    }
    if (!cu_store_has_backend("postgres")) {
        cu_cli_error("--to: this custodia is built without the PostgreSQL backend");
        goto out;
    }
    if (cu_store_open(&o, &target, err) != CU_OK) {
        cu_cli_error("%s", err);
        goto out;
    }
    if (cu_store_acquire(target, &cp.dst) != CU_OK ||
        target_tables(cp.dst, &ntables, unknown, sizeof unknown) != CU_OK) {
        cu_cli_error("the target database could not be read");
        goto out;
    }
    if (ntables > 0) {
        cu_cli_error("the target database is not empty (%lld tables); store copy fills an empty "
                     "one",
                     (long long)ntables);
        goto out;
    }
    cu_store_release(cp.dst);
    cp.dst = NULL;
    if (cu_store_migrate(target, err) != CU_OK) {
        cu_cli_error("%s", err);
        goto out;
    }
    if (cu_store_acquire(ctx.store, &cp.src) != CU_OK ||
        cu_store_acquire(target, &cp.dst) != CU_OK ||
        target_tables(cp.dst, &ntables, unknown, sizeof unknown) != CU_OK) {
        cu_cli_error("the databases could not be opened");
        goto out;
    }
    if (unknown[0]) {
        cu_cli_error("the target's schema has a table this copy does not know (%s): not copying",
                     unknown);
        goto out;
    }
    /* one snapshot of the source for the whole copy */
    if ((rc = cu_db_begin(cp.src, CU_TXN_READ)) != CU_OK) {
        cu_cli_error("the source could not be read: %s", cu_err_str(rc));
        goto out;
    }
    for (size_t i = 0; i < NTABLES; i++) {
        int64_t n = 0, in_dst = 0, in_src = 0;
        rc = copy_table(&cp, tables[i], &n);
        if (rc == CU_OK)
            rc = count_rows(cp.src, tables[i], &in_src);
        if (rc == CU_OK)
            rc = count_rows(cp.dst, tables[i], &in_dst);
        if (cp.tty)
            fprintf(stderr, "\r  %-24s %12lld rows\n", tables[i], (long long)n);
        if (rc != CU_OK) {
            cu_cli_error("copying %s failed: %s", tables[i], cu_err_str(rc));
            goto out;
        }
        if (in_src != in_dst || in_dst != n) {
            cu_cli_error("%s: the source holds %lld rows, the copy %lld", tables[i],
                         (long long)in_src, (long long)in_dst);
            goto out;
        }
    }
    cu_db_rollback(cp.src);
    if ((rc = cu_db_copied(cp.dst)) != CU_OK) {
        cu_cli_error("the copy's keys could not be set: %s", cu_err_str(rc));
        goto out;
    }
    /* the proof: the audit chain and the ledger's invariants, on the copy */
    struct cu_audit_verify_report vr;
    struct cu_ledger_check_report lr;
    if ((rc = cu_audit_verify(ctx.audit, cp.dst, 1, NULL, NULL, &vr)) != CU_OK || !vr.ok) {
        cu_cli_error("the copy's audit log does not verify: %s",
                     rc != CU_OK ? cu_err_str(rc) : vr.problem);
        goto out;
    }
    if ((rc = cu_ledger_check(cp.dst, &lr)) != CU_OK || lr.violations > 0) {
        cu_cli_error("the copy's ledger does not check: %s",
                     rc != CU_OK ? cu_err_str(rc) : lr.first);
        goto out;
    }
    printf("store copy: %lld rows in %zu tables copied and proven: every table as many rows as "
           "the source's, the audit chain (%lld records, %lld checkpoints) verifies, the ledger "
           "(%lld transfers) checks.\n"
           "Next: stop using this directory's database; set [store] backend = postgres and url "
           "in %s/custodia.conf, then start the server.\n",
           (long long)cp.rows, NTABLES, (long long)vr.records, (long long)vr.checkpoints,
           (long long)lr.transfers, ctx.cfg.data_dir);
    cu_log(CU_LOG_INFO, "store.copied", CU_LI("rows", cp.rows), CU_LI("tables", (int64_t)NTABLES));
    code = CU_EXIT_OK;
out:
    if (cp.src)
        cu_db_rollback(cp.src);
    cu_store_release(cp.src);
    cu_store_release(cp.dst);
    cu_store_close(target);
    cu_cli_close(&ctx);
    return code;
}

int cu_cli_store(int argc, char **argv)
{
    static const struct option opts[] = {
        {"dir", required_argument, NULL, 'd'},
        {"to", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *dir = NULL, *to = NULL;
    int c;

    if (cu_cli_asks_help(argc, argv))
        return usage(stdout);
    if (argc < 2)
        return usage(stderr);
    if (strcmp(argv[1], "copy") != 0)
        return usage(stderr);
    optind = 2;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h')
            return usage(stdout);
        if (c == 'd')
            dir = optarg;
        else if (c == 't')
            to = optarg;
        else
            return usage(stderr);
    }
    if (optind < argc || to == NULL)
        return usage(stderr);
    if (strncmp(to, "postgres://", 11) != 0 && strncmp(to, "postgresql://", 13) != 0) {
        cu_cli_error("--to: a postgres:// or postgresql:// URL");
        return CU_EXIT_USAGE;
    }
    return copy_to(dir, to);
}
