/*
 * test_migrate.c - the migration runner: a fresh database gets every migration and records
 * it, a second run does nothing, a failing migration leaves the database exactly as it was,
 * a database from a newer custodia or a different build is refused untouched, concurrent
 * runs apply each migration once, and cu_store_check tells a current schema from a stale one.
 */
#include "cu_test.h"

#include <pthread.h>

#include "base/clock.h"
#include "store/store.h"

struct fx {
    char dir[256];
    char path[512];
    struct cu_store *st;
    struct cu_db *db;
};

static const struct cu_migration good[] = {
    {1, "0001_a", "CREATE TABLE a (id INTEGER NOT NULL PRIMARY KEY) STRICT;"},
    {2, "0002_b",
     "-- a comment\nCREATE TABLE b (id INTEGER NOT NULL PRIMARY KEY) STRICT;\n"
     "INSERT INTO b (id) VALUES (1);\n"},
};

/* Migration 2 creates one table, then fails on the second statement of its script. */
static const struct cu_migration bad2[] = {
    {1, "0001_a", "CREATE TABLE a (id INTEGER NOT NULL PRIMARY KEY) STRICT;"},
    {2, "0002_broken",
     "CREATE TABLE x (id INTEGER NOT NULL PRIMARY KEY) STRICT;\n"
     "CREATE TABLE y (id INTEGR NOT NULL PRIMARY KEY) STRICT;\n"},
};

/* Migrations 1 and 2 as in good, then a third that fails. */
static const struct cu_migration bad3[] = {
    {1, "0001_a", "CREATE TABLE a (id INTEGER NOT NULL PRIMARY KEY) STRICT;"},
    {2, "0002_b",
     "-- a comment\nCREATE TABLE b (id INTEGER NOT NULL PRIMARY KEY) STRICT;\n"
     "INSERT INTO b (id) VALUES (1);\n"},
    {3, "0003_c", "CREATE TABLE c (id INTEGER) STRICT; INSERT INTO nowhere VALUES (1);"},
};

static const struct cu_migration renamed[] = {
    {1, "0001_other", "CREATE TABLE a (id INTEGER NOT NULL PRIMARY KEY) STRICT;"},
    {2, "0002_b", "CREATE TABLE b (id INTEGER NOT NULL PRIMARY KEY) STRICT;"},
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    char err[CU_STORE_ERR_BYTES];
    struct cu_store_opts o = {.backend = "sqlite", .busy_timeout_ms = 10000, .create = true};

    assert_non_null(f);
    o.path = f->path;
    cu_test_tmpdir(f->dir, sizeof f->dir);
    snprintf(f->path, sizeof f->path, "%s/custodia.db", f->dir);
    assert_int_equal(cu_store_open(&o, &f->st, err), CU_OK);
    assert_int_equal(cu_store_db(f->st, &f->db), CU_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    cu_store_close(f->st);
    cu_test_rmrf(f->dir);
    cu_clock_use_real();
    free(f);
    return 0;
}

static int64_t query_int(struct cu_db *db, const char *sql)
{
    struct cu_stmt *s = NULL;
    bool row = false;
    int64_t v;

    assert_int_equal(cu_db_query(db, sql, NULL, 0, &s), CU_OK);
    assert_int_equal(cu_stmt_next(s, &row), CU_OK);
    assert_true(row);
    v = cu_stmt_int(s, 0);
    cu_stmt_done(s);
    return v;
}

static void append_rows(struct cu_db *db, const char *sql, char *out, size_t len)
{
    struct cu_stmt *s = NULL;
    bool row = false;

    assert_int_equal(cu_db_query(db, sql, NULL, 0, &s), CU_OK);
    while (cu_stmt_next(s, &row) == CU_OK && row) {
        size_t used = strlen(out);

        snprintf(out + used, len - used, "%s\n", cu_stmt_text(s, 0, NULL));
    }
    cu_stmt_done(s);
}

/* snapshot(db, out, len): the schema and the recorded migrations, as text. */
static void snapshot(struct cu_db *db, char *out, size_t len)
{
    static const char *const schema = "SELECT type || ' ' || name || ' ' || COALESCE(sql, '') "
                                      "FROM sqlite_schema ORDER BY name";
    static const char *const has = "SELECT COUNT(*) FROM sqlite_schema WHERE "
                                   "name = 'schema_migrations'";
    static const char *const rows =
        "SELECT version || ' ' || name || ' ' || applied_at FROM schema_migrations "
        "ORDER BY version";

    out[0] = '\0';
    append_rows(db, schema, out, len);
    if (query_int(db, has) == 1)
        append_rows(db, rows, out, len);
    assert_true(strlen(out) + 1 < len);
}

static bool has_table(struct cu_db *db, const char *name)
{
    static const char *const sql =
        "SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table' AND name = $1";
    struct cu_stmt *s = NULL;
    bool row = false, found;

    assert_int_equal(cu_db_query(db, sql, &CU_VT(name), 1, &s), CU_OK);
    assert_int_equal(cu_stmt_next(s, &row), CU_OK);
    found = cu_stmt_int(s, 0) == 1;
    cu_stmt_done(s);
    return found;
}

static void test_fresh_database_gets_every_migration(void **state)
{
    static const char *const sql =
        "SELECT version, name, applied_at FROM schema_migrations ORDER BY version";
    struct fx *f = *state;
    char err[CU_STORE_ERR_BYTES];
    size_t n = 0;
    const struct cu_migration *m = cu_store_sqlite_ops.migrations(&n);
    struct cu_stmt *s = NULL;
    bool row = false;
    int v = -1;
    size_t i = 0;

    assert_true(n >= 1);
    assert_int_equal(cu_store_schema_version(f->st, &v), CU_OK);
    assert_int_equal(v, 0);
    cu_clock_set_fake(INT64_C(1767225600000));
    assert_int_equal(cu_store_migrate(f->st, err), CU_OK);
    assert_string_equal(err, "");
    assert_int_equal(cu_store_schema_version(f->st, &v), CU_OK);
    assert_int_equal(v, (int)n);
    assert_int_equal(cu_db_query(f->db, sql, NULL, 0, &s), CU_OK);
    while (cu_stmt_next(s, &row) == CU_OK && row) {
        assert_true(i < n);
        assert_int_equal(cu_stmt_int(s, 0), m[i].version);
        assert_string_equal(cu_stmt_text(s, 1, NULL), m[i].name);
        assert_int_equal(cu_stmt_int(s, 2), INT64_C(1767225600000));
        i++;
    }
    cu_stmt_done(s);
    assert_int_equal(i, n);
    assert_true(has_table(f->db, "api_keys"));
    /* schema_migrations is STRICT: a text version is refused. */
    assert_int_equal(cu_db_exec(f->db,
                                "INSERT INTO schema_migrations (version, name, applied_at) "
                                "VALUES ('ten', 'x', 0)",
                                NULL, 0),
                     CU_E_STORE);
}

static void test_second_run_is_noop(void **state)
{
    struct fx *f = *state;
    char err[CU_STORE_ERR_BYTES], before[8192], after[8192];

    cu_clock_set_fake(INT64_C(1767225600000));
    assert_int_equal(cu_store_migrate_with(f->st, good, 2, err), CU_OK);
    assert_int_equal(query_int(f->db, "SELECT COUNT(*) FROM b"), 1);
    snapshot(f->db, before, sizeof before);
    cu_clock_advance(60000);
    assert_int_equal(cu_store_migrate_with(f->st, good, 2, err), CU_OK);
    snapshot(f->db, after, sizeof after);
    assert_string_equal(before, after);
    assert_int_equal(query_int(f->db, "SELECT COUNT(*) FROM b"), 1);
}

static void test_failure_on_fresh_database_changes_nothing(void **state)
{
    struct fx *f = *state;
    char err[CU_STORE_ERR_BYTES], before[8192], after[8192];

    snapshot(f->db, before, sizeof before);
    assert_string_equal(before, "");
    assert_int_not_equal(cu_store_migrate_with(f->st, bad2, 2, err), CU_OK);
    assert_non_null(strstr(err, "migration 0002_broken failed: "));
    assert_non_null(strstr(err, "INTEGR"));
    snapshot(f->db, after, sizeof after);
    assert_string_equal(after, ""); /* not a, not x, not even schema_migrations */
    assert_false(cu_db_in_txn(f->db));
}

static void test_failure_keeps_earlier_runs(void **state)
{
    struct fx *f = *state;
    char err[CU_STORE_ERR_BYTES], before[8192], after[8192];
    int v = -1;

    assert_int_equal(cu_store_migrate_with(f->st, good, 1, err), CU_OK);
    snapshot(f->db, before, sizeof before);
    assert_int_equal(cu_store_migrate_with(f->st, bad3, 3, err), CU_E_STORE);
    assert_non_null(strstr(err, "migration 0003_c failed: "));
    assert_non_null(strstr(err, "nowhere"));
    snapshot(f->db, after, sizeof after);
    assert_string_equal(before, after);
    assert_false(has_table(f->db, "b"));
    assert_int_equal(cu_store_schema_version(f->st, &v), CU_OK);
    assert_int_equal(v, 1);
    /* Once fixed, the same database migrates. */
    assert_int_equal(cu_store_migrate_with(f->st, good, 2, err), CU_OK);
    assert_true(has_table(f->db, "b"));
}

/* Any statement of the run failing (fault injection) leaves the database as it was. */
static void test_injected_failures_roll_back(void **state)
{
    struct fx *f = *state;
    char err[CU_STORE_ERR_BYTES], before[8192], after[8192];
    enum cu_err rc = CU_E_STORE;
    long k;

    assert_int_equal(cu_store_migrate_with(f->st, good, 1, err), CU_OK);
    snapshot(f->db, before, sizeof before);
    for (k = 1; k < 50 && rc != CU_OK; k++) {
        cu_store_fail_next(f->st, k);
        rc = cu_store_migrate_with(f->st, good, 2, err);
        cu_store_fail_next(f->st, 0);
        if (rc != CU_OK) {
            assert_int_equal(rc, CU_E_STORE);
            assert_true(err[0] != '\0');
            snapshot(f->db, after, sizeof after);
            assert_string_equal(before, after);
        }
    }
    assert_int_equal(rc, CU_OK);
    assert_true(k > 3); /* the runner did fail at several points first */
    assert_true(has_table(f->db, "b"));
}

static void test_newer_schema_refused(void **state)
{
    struct fx *f = *state;
    char err[CU_STORE_ERR_BYTES], before[8192], after[8192];

    assert_int_equal(cu_store_migrate_with(f->st, good, 2, err), CU_OK);
    snapshot(f->db, before, sizeof before);
    assert_int_equal(cu_store_migrate_with(f->st, good, 1, err), CU_E_SCHEMA_NEWER);
    assert_non_null(strstr(err, f->path));
    assert_non_null(strstr(err, "schema version 2 is newer than this custodia (knows up to 1)"));
    snapshot(f->db, after, sizeof after);
    assert_string_equal(before, after);
    assert_false(cu_db_in_txn(f->db));
}

static void test_newer_than_build_refused(void **state)
{
    struct fx *f = *state;
    static const char *const future = "INSERT INTO schema_migrations (version, name, applied_at) "
                                      "VALUES (9999, '9999_future', 0)";
    char err[CU_STORE_ERR_BYTES];

    assert_int_equal(cu_store_migrate(f->st, err), CU_OK);
    assert_int_equal(cu_db_exec(f->db, future, NULL, 0), CU_OK);
    assert_int_equal(cu_store_migrate(f->st, err), CU_E_SCHEMA_NEWER);
    assert_non_null(strstr(err, "9999"));
    assert_int_equal(cu_store_check(f->st, err), CU_E_SCHEMA_NEWER);
    assert_non_null(strstr(err, f->path));
}

static void test_renamed_migration_refused(void **state)
{
    struct fx *f = *state;
    char err[CU_STORE_ERR_BYTES], before[8192], after[8192];

    assert_int_equal(cu_store_migrate_with(f->st, good, 1, err), CU_OK);
    snapshot(f->db, before, sizeof before);
    assert_int_equal(cu_store_migrate_with(f->st, renamed, 1, err), CU_E_CORRUPT);
    assert_non_null(strstr(err, "0001_a"));
    assert_non_null(strstr(err, "0001_other"));
    /* Also when migrations are pending above it: none of them runs. */
    assert_int_equal(cu_store_migrate_with(f->st, renamed, 2, err), CU_E_CORRUPT);
    snapshot(f->db, after, sizeof after);
    assert_string_equal(before, after);
}

static void test_missing_record_refused(void **state)
{
    struct fx *f = *state;
    char err[CU_STORE_ERR_BYTES];

    assert_int_equal(cu_store_migrate_with(f->st, good, 2, err), CU_OK);
    assert_int_equal(cu_db_exec(f->db, "DELETE FROM schema_migrations WHERE version = 1", NULL, 0),
                     CU_OK);
    assert_int_equal(cu_store_migrate_with(f->st, bad3, 3, err), CU_E_CORRUPT);
    assert_non_null(strstr(err, "migration 1 is missing"));
    assert_false(has_table(f->db, "c"));
}

struct runner {
    struct cu_store *st;
    enum cu_err rc;
};

static void *run_migrate(void *p)
{
    struct runner *r = p;
    char err[CU_STORE_ERR_BYTES];

    r->rc = cu_store_migrate_with(r->st, good, 2, err);
    return NULL;
}

static void test_concurrent_runs_apply_once(void **state)
{
    struct fx *f = *state;
    struct runner r[3];
    pthread_t t[3];

    for (int i = 0; i < 3; i++) {
        r[i] = (struct runner){f->st, CU_E_INTERNAL};
        assert_int_equal(pthread_create(&t[i], NULL, run_migrate, &r[i]), 0);
    }
    for (int i = 0; i < 3; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_int_equal(r[i].rc, CU_OK);
    }
    assert_int_equal(query_int(f->db, "SELECT COUNT(*) FROM schema_migrations"), 2);
    assert_int_equal(query_int(f->db, "SELECT COUNT(*) FROM b"), 1);
}

static void test_check(void **state)
{
    struct fx *f = *state;
    char err[CU_STORE_ERR_BYTES];

    assert_int_not_equal(cu_store_check(f->st, err), CU_OK);
    assert_non_null(strstr(err, "not migrated"));
    assert_non_null(strstr(err, f->path));
    assert_int_equal(cu_store_migrate(f->st, err), CU_OK);
    assert_int_equal(cu_store_check(f->st, err), CU_OK);
    assert_string_equal(err, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fresh_database_gets_every_migration, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_run_is_noop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failure_on_fresh_database_changes_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_failure_keeps_earlier_runs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_injected_failures_roll_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_than_build_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_renamed_migration_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_record_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_runs_apply_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check, setup, teardown),
    };

    alarm(240);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
