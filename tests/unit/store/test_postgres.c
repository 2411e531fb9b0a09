/*
 * test_postgres.c - the store contract (docs/internals/store.md) over the PostgreSQL backend,
 * against the server CU_TEST_PG names (scripts/pgtest.sh starts a private one for make check):
 * opening and its errors, which never show a password; migrations; value round trips;
 * uniqueness, savepoints and rollbacks; rows changed; row locks and their timeout; a
 * consistent snapshot for reads; a session the server ends, made again at the next
 * transaction; identity columns; the purge; fault injection; one process leading; a commit
 * waking the processes that wait on its channel. Each case has a
 * database of its own. Without CU_TEST_PG every case is skipped, and says so.
 */
#include "cu_test.h"

#include <pthread.h>

#include <libpq-fe.h>

#include "base/clock.h"
#include "base/log.h"
#include "store/store.h"

struct fx {
    char name[64];
    char url[512];
    struct cu_store *st;
    struct cu_db *db;
};

static const char *const sql_items =
    "CREATE TABLE items (id BIGINT NOT NULL PRIMARY KEY, name TEXT UNIQUE, n BIGINT, "
    "data BYTEA, tag TEXT NOT NULL DEFAULT '')";
static const char *const sql_insert =
    "INSERT INTO items (id, name, n, data) VALUES ($1, $2, $3, $4)";
static const char *const sql_count = "SELECT COUNT(*) FROM items";

/* admin(sql): runs sql on the server's maintenance database. */
static void admin(const char *sql)
{
    char url[512];
    PGconn *c;
    PGresult *r;

    snprintf(url, sizeof url, "%s/postgres", getenv("CU_TEST_PG"));
    c = PQconnectdb(url);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
}

static enum cu_err open_url(const char *url, unsigned busy_ms, struct cu_store **st, char *err)
{
    struct cu_store_opts o = {
        .backend = "postgres", .url = url, .busy_timeout_ms = busy_ms, .pool_connections = 4};

    return cu_store_open(&o, st, err);
}

static int setup(void **state)
{
    static unsigned n;
    struct fx *f = calloc(1, sizeof *f);
    char err[CU_STORE_ERR_BYTES], sql[128];

    assert_non_null(f);
    if (!getenv("CU_TEST_PG")) {
        *state = f;
        return 0;
    }
    snprintf(f->name, sizeof f->name, "cu_unit_%d_%u", (int)getpid(), ++n);
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", f->name);
    admin(sql);
    snprintf(f->url, sizeof f->url, "%s/%s", getenv("CU_TEST_PG"), f->name);
    assert_int_equal(open_url(f->url, 300, &f->st, err), CU_OK);
    assert_int_equal(cu_store_migrate(f->st, err), CU_OK);
    assert_int_equal(cu_store_db(f->st, &f->db), CU_OK);
    assert_int_equal(cu_db_exec(f->db, sql_items, NULL, 0), CU_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    char sql[128];

    if (f->st) {
        cu_store_close(f->st);
        snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", f->name);
        admin(sql);
    }
    free(f);
    return 0;
}

/* need_server(): skips the case, and says why, without a server to run on. */
#define need_server()                                                                              \
    do {                                                                                           \
        if (!getenv("CU_TEST_PG")) {                                                               \
            print_message("CU_TEST_PG is not set: no PostgreSQL server to test on\n");             \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

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

static void insert_item(struct cu_db *db, int64_t id, const char *name, enum cu_err want)
{
    struct cu_val v[] = {CU_VI(id), name ? CU_VT(name) : CU_VNULL, CU_VI(id * 10), CU_VNULL};

    assert_int_equal(cu_db_exec(db, sql_insert, v, CU_NVALS(v)), want);
}

static void test_open_errors_hide_the_password(void **state)
{
    char err[CU_STORE_ERR_BYTES];
    struct cu_store *st = (struct cu_store *)1;

    need_server();
    /* nothing listens on port 1 */
    assert_int_equal(
        open_url("postgresql://u:s3cret-pw@127.0.0.1:1/db?connect_timeout=2", 100, &st, err),
        CU_E_STORE);
    assert_null(st);
    assert_non_null(strstr(err, "cannot connect"));
    assert_non_null(strstr(err, "'db' on 127.0.0.1:1"));
    assert_null(strstr(err, "s3cret-pw"));
    /* a string libpq cannot read */
    assert_int_equal(open_url("host=127.0.0.1 password=s3cret-pw nosuchoption=1", 100, &st, err),
                     CU_E_CONFIG);
    assert_null(strstr(err, "s3cret-pw"));
    /* libpq's own message for a URL it cannot read quotes it: never shown */
    assert_int_equal(open_url("postgresql://u:s3cret-pw@[::1:5432/db", 100, &st, err), CU_E_CONFIG);
    assert_non_null(strstr(err, "[store] url"));
    assert_null(strstr(err, "s3cret-pw"));
    /* a database that does not exist */
    {
        char url[512];
        snprintf(url, sizeof url, "%s/cu_no_such_database", getenv("CU_TEST_PG"));
        assert_int_equal(open_url(url, 100, &st, err), CU_E_STORE);
        assert_non_null(strstr(err, "cu_no_such_database"));
    }
}

static void test_migrated_and_checked(void **state)
{
    struct fx *f = *state;
    char err[CU_STORE_ERR_BYTES];
    int v = 0;

    need_server();
    assert_int_equal(cu_store_schema_version(f->st, &v), CU_OK);
    assert_true(v >= 1);
    assert_int_equal(cu_store_check(f->st, err), CU_OK);
    assert_string_equal(cu_store_backend(f->st), "postgres");
    /* migrating again changes nothing */
    assert_int_equal(cu_store_migrate(f->st, err), CU_OK);
    /* a schema from a newer custodia is refused */
    assert_int_equal(cu_db_exec(f->db,
                                "INSERT INTO schema_migrations (version, name, applied_at) "
                                "VALUES (999, '0999_future', 0)",
                                NULL, 0),
                     CU_OK);
    assert_int_equal(cu_store_check(f->st, err), CU_E_SCHEMA_NEWER);
    assert_int_equal(cu_store_migrate(f->st, err), CU_E_SCHEMA_NEWER);
    assert_non_null(strstr(err, "newer"));
    /* the label names the database, never the URL's user or password */
    assert_non_null(strstr(err, f->name));
}

static void test_value_roundtrip(void **state)
{
    struct fx *f = *state;
    static const unsigned char blob[] = {0, 1, 2, 0xff, 0, 0x5c, 0x78};
    const char *utf8 = "Zo\xc3\xab, \xe6\x97\xa5\xe6\x9c\xac, it's \"quoted\" \\x00";
    struct cu_stmt *s = NULL;
    bool row = false;
    size_t n = 0;

    need_server();
    struct cu_val v1[] = {CU_VI(1), CU_VT(utf8), CU_VI(INT64_MIN), CU_VB(blob, sizeof blob)};
    assert_int_equal(cu_db_exec(f->db, sql_insert, v1, 4), CU_OK);
    struct cu_val v2[] = {CU_VI(2), CU_VT(""), CU_VI(INT64_MAX), CU_VB("", 0)};
    assert_int_equal(cu_db_exec(f->db, sql_insert, v2, 4), CU_OK);
    struct cu_val v3[] = {CU_VI(3), CU_VNULL, CU_VNULL, CU_VNULL};
    assert_int_equal(cu_db_exec(f->db, sql_insert, v3, 4), CU_OK);

    assert_int_equal(
        cu_db_query(f->db, "SELECT id, name, n, data, n > 0 FROM items ORDER BY id", NULL, 0, &s),
        CU_OK);
    assert_int_equal(cu_stmt_next(s, &row), CU_OK);
    assert_true(row);
    assert_int_equal(cu_stmt_type(s, 0), CU_VAL_INT);
    assert_string_equal(cu_stmt_text(s, 1, &n), utf8);
    assert_int_equal(n, strlen(utf8));
    assert_int_equal(cu_stmt_type(s, 1), CU_VAL_TEXT);
    assert_true(cu_stmt_int(s, 2) == INT64_MIN);
    assert_int_equal(cu_stmt_type(s, 3), CU_VAL_BLOB);
    const unsigned char *b = cu_stmt_blob(s, 3, &n);
    assert_int_equal(n, sizeof blob);
    assert_memory_equal(b, blob, sizeof blob);
    /* a second read of the same value gives the same bytes, and read as text it ends in a
     * NUL, as SQLite's do */
    assert_int_equal(cu_stmt_blob(s, 3, &n), b);
    assert_int_equal(cu_stmt_text(s, 3, &n)[n], '\0');
    assert_int_equal(cu_stmt_int(s, 4), 0); /* a boolean: false */
    assert_int_equal(cu_stmt_next(s, &row), CU_OK);
    assert_true(row);
    assert_string_equal(cu_stmt_text(s, 1, &n), "");
    assert_false(cu_stmt_null(s, 1));
    assert_true(cu_stmt_int(s, 2) == INT64_MAX);
    (void)cu_stmt_blob(s, 3, &n);
    assert_int_equal(n, 0);
    assert_false(cu_stmt_null(s, 3));
    assert_int_equal(cu_stmt_int(s, 4), 1);
    assert_int_equal(cu_stmt_next(s, &row), CU_OK);
    assert_true(row);
    assert_true(cu_stmt_null(s, 1));
    assert_int_equal(cu_stmt_type(s, 1), CU_VAL_NULL);
    assert_string_equal(cu_stmt_text(s, 1, NULL), "");
    assert_int_equal(cu_stmt_int(s, 2), 0);
    assert_true(cu_stmt_null(s, 3));
    assert_int_equal(cu_stmt_next(s, &row), CU_OK);
    assert_false(row);
    cu_stmt_done(s);
    /* an aggregate of integers is an integer */
    assert_int_equal(query_int(f->db, "SELECT SUM(id) FROM items"), 6);
    assert_int_equal(query_int(f->db, sql_count), 3);
    /* text with a NUL byte cannot be stored, and says so */
    struct cu_val bad[] = {CU_VI(4), CU_VTN("a\0b", 3), CU_VI(1), CU_VNULL};
    assert_int_equal(cu_db_exec(f->db, sql_insert, bad, 4), CU_E_INVALID);
}

static void test_unique_and_savepoints(void **state)
{
    struct fx *f = *state;

    need_server();
    assert_int_equal(cu_db_begin(f->db, CU_TXN_WRITE), CU_OK);
    insert_item(f->db, 1, "one", CU_OK);
    assert_int_equal(cu_db_savepoint(f->db), CU_OK);
    insert_item(f->db, 2, "two", CU_OK);
    assert_int_equal(cu_db_savepoint_release(f->db), CU_OK);
    /* a failed statement is undone with its savepoint, and the transaction goes on */
    assert_int_equal(cu_db_savepoint(f->db), CU_OK);
    insert_item(f->db, 3, "three", CU_OK);
    insert_item(f->db, 4, "one", CU_E_EXISTS);
    assert_int_equal(cu_db_savepoint_rollback(f->db), CU_OK);
    insert_item(f->db, 5, "five", CU_OK);
    assert_int_equal(cu_db_commit(f->db), CU_OK);
    assert_int_equal(query_int(f->db, sql_count), 3);
    assert_int_equal(query_int(f->db, "SELECT COUNT(*) FROM items WHERE id = 3"), 0);
    /* a transaction whose statement failed cannot commit */
    assert_int_equal(cu_db_begin(f->db, CU_TXN_WRITE), CU_OK);
    insert_item(f->db, 6, "six", CU_OK);
    insert_item(f->db, 7, "one", CU_E_EXISTS);
    assert_int_not_equal(cu_db_commit(f->db), CU_OK);
    assert_int_equal(query_int(f->db, "SELECT COUNT(*) FROM items WHERE id = 6"), 0);
    /* a rollback discards */
    assert_int_equal(cu_db_begin(f->db, CU_TXN_WRITE), CU_OK);
    insert_item(f->db, 8, "eight", CU_OK);
    cu_db_rollback(f->db);
    assert_int_equal(query_int(f->db, sql_count), 3);
}

static void test_changes_and_identity(void **state)
{
    struct fx *f = *state;
    struct cu_stmt *s = NULL;
    bool row = false;
    int64_t a, b;

    need_server();
    for (int i = 1; i <= 5; i++)
        insert_item(f->db, i, NULL, CU_OK);
    assert_int_equal(cu_db_exec(f->db, "UPDATE items SET n = n + 1 WHERE id > $1",
                                (struct cu_val[]){CU_VI(2)}, 1),
                     CU_OK);
    assert_int_equal(cu_db_changes(f->db), 3);
    assert_int_equal(
        cu_db_exec(f->db, "DELETE FROM items WHERE id = $1", (struct cu_val[]){CU_VI(99)}, 1),
        CU_OK);
    assert_int_equal(cu_db_changes(f->db), 0);
    /* a key the database makes is learnt with RETURNING */
    assert_int_equal(cu_db_query(f->db,
                                 "INSERT INTO events (at, type, customer, request_id, body) "
                                 "VALUES ($1, 'x', NULL, 'r', '{}') RETURNING seq",
                                 (struct cu_val[]){CU_VI(1)}, 1, &s),
                     CU_OK);
    assert_int_equal(cu_stmt_next(s, &row), CU_OK);
    assert_true(row);
    a = cu_stmt_int(s, 0);
    cu_stmt_done(s);
    assert_int_equal(cu_db_query(f->db,
                                 "INSERT INTO events (at, type, customer, request_id, body) "
                                 "VALUES ($1, 'x', NULL, 'r', '{}') RETURNING seq",
                                 (struct cu_val[]){CU_VI(2)}, 1, &s),
                     CU_OK);
    assert_int_equal(cu_stmt_next(s, &row), CU_OK);
    b = cu_stmt_int(s, 0);
    cu_stmt_done(s);
    assert_true(b > a);
}

struct locker {
    struct fx *f;
    enum cu_err rc;
};

static void *lock_from_other(void *p)
{
    struct locker *l = p;
    struct cu_db *db = NULL;
    struct cu_stmt *s = NULL;

    assert_int_equal(cu_store_acquire(l->f->st, &db), CU_OK);
    assert_int_equal(cu_db_begin(db, CU_TXN_WRITE), CU_OK);
    l->rc = cu_db_query(db, "SELECT n FROM items WHERE id = 1 FOR UPDATE", NULL, 0, &s);
    if (l->rc == CU_OK) {
        bool row = false;
        l->rc = cu_stmt_next(s, &row);
        cu_stmt_done(s);
    }
    cu_db_rollback(db);
    cu_store_release(db);
    return NULL;
}

static void test_row_lock_times_out(void **state)
{
    struct fx *f = *state;
    struct locker l = {.f = f, .rc = CU_OK};
    struct cu_stmt *s = NULL;
    bool row = false;
    pthread_t t;

    need_server();
    insert_item(f->db, 1, "one", CU_OK);
    assert_int_equal(cu_db_begin(f->db, CU_TXN_WRITE), CU_OK);
    assert_int_equal(cu_db_query(f->db, "SELECT n FROM items WHERE id = 1 FOR UPDATE", NULL, 0, &s),
                     CU_OK);
    assert_int_equal(cu_stmt_next(s, &row), CU_OK);
    assert_true(row);
    cu_stmt_done(s);
    /* another connection waits for the row past the busy timeout (300 ms): CU_E_BUSY */
    assert_int_equal(pthread_create(&t, NULL, lock_from_other, &l), 0);
    pthread_join(t, NULL);
    assert_int_equal(l.rc, CU_E_BUSY);
    cu_db_rollback(f->db);
    /* once released, the row can be locked */
    assert_int_equal(pthread_create(&t, NULL, lock_from_other, &l), 0);
    pthread_join(t, NULL);
    assert_int_equal(l.rc, CU_OK);
}

static void test_read_snapshot(void **state)
{
    struct fx *f = *state;
    struct cu_db *other = NULL;

    need_server();
    insert_item(f->db, 1, "one", CU_OK);
    assert_int_equal(cu_store_acquire(f->st, &other), CU_OK);
    assert_int_equal(cu_db_begin(f->db, CU_TXN_READ), CU_OK);
    assert_int_equal(query_int(f->db, sql_count), 1);
    insert_item(other, 2, "two", CU_OK);
    /* the reader's snapshot does not see the other's commit */
    assert_int_equal(query_int(f->db, sql_count), 1);
    /* and it cannot write */
    insert_item(f->db, 3, "three", CU_E_STORE);
    cu_db_rollback(f->db);
    assert_int_equal(query_int(f->db, sql_count), 2);
    cu_store_release(other);
}

static void test_session_made_again(void **state)
{
    struct fx *f = *state;
    char sql[256];

    need_server();
    insert_item(f->db, 1, "one", CU_OK);
    assert_int_equal(query_int(f->db, sql_count), 1);
    assert_int_equal(cu_db_begin(f->db, CU_TXN_WRITE), CU_OK);
    insert_item(f->db, 2, "two", CU_OK);
    /* the server ends every session of the database, as a restart would */
    snprintf(sql, sizeof sql,
             "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '%s'",
             f->name);
    admin(sql);
    insert_item(f->db, 3, "three", CU_E_STORE);
    /* nothing runs outside the lost transaction: no statement, and no commit */
    insert_item(f->db, 5, "five", CU_E_STORE);
    assert_int_not_equal(cu_db_commit(f->db), CU_OK);
    assert_int_equal(query_int(f->db, "SELECT COUNT(*) FROM items WHERE id IN (2, 3, 5)"), 0);
    /* the next transaction makes the session again, and prepares its statements again */
    assert_int_equal(cu_db_begin(f->db, CU_TXN_WRITE), CU_OK);
    insert_item(f->db, 4, "four", CU_OK);
    assert_int_equal(cu_db_commit(f->db), CU_OK);
    assert_int_equal(query_int(f->db, sql_count), 2);
}

static void test_purge_and_faults(void **state)
{
    struct fx *f = *state;

    need_server();
    insert_item(f->db, 1, "one", CU_OK);
    assert_int_equal(cu_db_purge(f->db), CU_OK);
    cu_store_fail_next_with(f->st, 1, CU_E_STORE_FULL);
    insert_item(f->db, 2, "two", CU_E_STORE_FULL);
    insert_item(f->db, 3, "three", CU_OK);
    assert_int_equal(query_int(f->db, sql_count), 2);
}

static void test_one_leads(void **state)
{
    struct fx *f = *state;
    struct cu_store *other = NULL;
    char err[CU_STORE_ERR_BYTES], sql[256];
    bool held = false;

    need_server();
    assert_int_equal(open_url(f->url, 300, &other, err), CU_OK);
    assert_int_equal(cu_store_lead(f->st, 42, &held), CU_OK);
    assert_true(held);
    assert_int_equal(cu_store_lead(f->st, 42, &held), CU_OK);
    assert_true(held); /* and again: still the holder */
    assert_int_equal(cu_store_lead(other, 42, &held), CU_OK);
    assert_false(held);
    assert_int_equal(cu_store_lead(other, 43, &held), CU_OK);
    assert_true(held); /* another lock is another matter */
    /* the holder's session ends (as when its process dies): it says it lost the lock, and the
     * other takes it */
    snprintf(sql, sizeof sql,
             "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND "
             "objid = 42 AND granted");
    admin(sql);
    assert_int_not_equal(cu_store_lead(f->st, 42, &held), CU_OK);
    assert_false(held);
    assert_int_equal(cu_store_lead(other, 42, &held), CU_OK);
    assert_true(held);
    assert_int_equal(cu_store_lead(f->st, 42, &held), CU_OK);
    assert_false(held);
    cu_store_close(other);
}

static void test_notify_wakes(void **state)
{
    struct fx *f = *state;
    struct cu_store *other = NULL;
    char err[CU_STORE_ERR_BYTES];
    bool woke = false;

    need_server();
    assert_int_equal(open_url(f->url, 300, &other, err), CU_OK);
    /* the first wait starts listening and says to look */
    assert_int_equal(cu_store_wait(other, "cu_test", 50, &woke), CU_OK);
    assert_true(woke);
    assert_int_equal(cu_store_wait(other, "cu_test", 50, &woke), CU_OK);
    assert_false(woke); /* nothing came */
    /* a notification rolled back wakes nobody */
    assert_int_equal(cu_db_begin(f->db, CU_TXN_WRITE), CU_OK);
    assert_int_equal(cu_db_notify(f->db, "cu_test"), CU_OK);
    cu_db_rollback(f->db);
    assert_int_equal(cu_store_wait(other, "cu_test", 100, &woke), CU_OK);
    assert_false(woke);
    /* one committed does, once; another channel does not */
    assert_int_equal(cu_db_begin(f->db, CU_TXN_WRITE), CU_OK);
    assert_int_equal(cu_db_notify(f->db, "cu_test"), CU_OK);
    assert_int_equal(cu_db_notify(f->db, "cu_test"), CU_OK);
    assert_int_equal(cu_db_notify(f->db, "cu_other"), CU_OK);
    assert_int_equal(cu_db_commit(f->db), CU_OK);
    int64_t t0 = cu_clock_mono_ns();
    assert_int_equal(cu_store_wait(other, "cu_test", 5000, &woke), CU_OK);
    assert_true(woke);
    assert_true(cu_clock_mono_ns() - t0 < INT64_C(2000000000)); /* not the timeout */
    assert_int_equal(cu_store_wait(other, "cu_test", 50, &woke), CU_OK);
    assert_false(woke);
    cu_store_close(other);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_errors_hide_the_password, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrated_and_checked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_value_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unique_and_savepoints, setup, teardown),
        cmocka_unit_test_setup_teardown(test_changes_and_identity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_row_lock_times_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_made_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_purge_and_faults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_leads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_notify_wakes, setup, teardown),
    };

    cu_log_set_level(CU_LOG_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
