/*
 * test_postgres.c - the store contract (docs/internals/store.md) over the PostgreSQL backend,
 * against the server CU_TEST_PG names (scripts/pgtest.sh starts a private one for make check):
 * opening and its errors, which never show a password; migrations; value round trips;
 * uniqueness, savepoints and rollbacks; rows changed; row locks and their timeout; a
 * consistent snapshot for reads; a session the server ends, made again at the next
 * transaction; a COMMIT whose answer is lost, resolved by asking the server; identity columns; the
 * purge; fault injection; one process leading; a commit waking the processes that wait on its
 * channel. Each case has a database of its own. Without CU_TEST_PG every case is skipped, and says
 * so.
 */
#include "cu_test.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

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
    cu_store_release(db); /* rolls back */
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

/* ---- a proxy that loses a COMMIT's answer ----
 * Between libpq and the server, on a loopback port of its own. It relays every session as it
 * is, until it is armed: then the first client message that holds the statement COMMIT either
 * reaches the server, which commits, and the session is cut before the answer comes back
 * (PROXY_AFTER), or is cut before it reaches the server (PROXY_BEFORE). One cut disarms it. */
enum proxy_cut { PROXY_NONE, PROXY_AFTER, PROXY_BEFORE };

#define PROXY_PAIRS 8

struct proxy {
    int lfd, port, server_port;
    atomic_int armed; /* an enum proxy_cut */
    atomic_bool stop;
    pthread_t th;
    int fds[PROXY_PAIRS][2]; /* client, server; -1 when free */
};

static bool holds_commit(const char *b, size_t n)
{
    static const char stmt[] = "COMMIT"; /* with its NUL: the whole statement */

    for (size_t i = 0; i + sizeof stmt <= n; i++)
        if (memcmp(b + i, stmt, sizeof stmt) == 0)
            return true;
    return false;
}

static int connect_port(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

static void proxy_drop(struct proxy *p, int i)
{
    close(p->fds[i][0]);
    close(p->fds[i][1]);
    p->fds[i][0] = p->fds[i][1] = -1;
}

static void *proxy_main(void *arg)
{
    struct proxy *p = arg;
    char buf[65536];

    while (!atomic_load(&p->stop)) {
        struct pollfd pf[1 + 2 * PROXY_PAIRS];
        int map[1 + 2 * PROXY_PAIRS][2], n = 1;

        pf[0] = (struct pollfd){.fd = p->lfd, .events = POLLIN};
        for (int i = 0; i < PROXY_PAIRS; i++)
            for (int side = 0; side < 2 && p->fds[i][0] >= 0; side++) {
                pf[n] = (struct pollfd){.fd = p->fds[i][side], .events = POLLIN};
                map[n][0] = i;
                map[n++][1] = side;
            }
        if (poll(pf, (nfds_t)n, 50) <= 0)
            continue;
        if (pf[0].revents & POLLIN) {
            int cfd = accept(p->lfd, NULL, NULL),
                sfd = cfd >= 0 ? connect_port(p->server_port) : -1;
            int slot = -1;

            for (int i = 0; i < PROXY_PAIRS && slot < 0; i++)
                if (p->fds[i][0] < 0)
                    slot = i;
            if (cfd >= 0 && sfd >= 0 && slot >= 0) {
                p->fds[slot][0] = cfd;
                p->fds[slot][1] = sfd;
            } else {
                if (cfd >= 0)
                    close(cfd);
                if (sfd >= 0)
                    close(sfd);
            }
        }
        for (int k = 1; k < n; k++) {
            int i = map[k][0], side = map[k][1];
            ssize_t got;

            if (!(pf[k].revents & (POLLIN | POLLHUP | POLLERR)) || p->fds[i][0] < 0)
                continue;
            got = read(p->fds[i][side], buf, sizeof buf);
            if (got <= 0) {
                proxy_drop(p, i);
                continue;
            }
            int cut =
                side == 0 && holds_commit(buf, (size_t)got) ? atomic_load(&p->armed) : PROXY_NONE;
            if (cut == PROXY_BEFORE || write(p->fds[i][!side], buf, (size_t)got) != got) {
                atomic_store(&p->armed, PROXY_NONE);
                proxy_drop(p, i);
                continue;
            }
            if (cut == PROXY_AFTER) {
                /* the server commits and answers; the answer never comes through */
                (void)poll(NULL, 0, 300);
                atomic_store(&p->armed, PROXY_NONE);
                proxy_drop(p, i);
            }
        }
    }
    for (int i = 0; i < PROXY_PAIRS; i++)
        if (p->fds[i][0] >= 0)
            proxy_drop(p, i);
    return NULL;
}

static void proxy_start(struct proxy *p)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof a;
    const char *colon = strrchr(getenv("CU_TEST_PG"), ':');

    memset(p, 0, sizeof *p);
    for (int i = 0; i < PROXY_PAIRS; i++)
        p->fds[i][0] = p->fds[i][1] = -1;
    assert_non_null(colon);
    char *end = NULL;
    long port = strtol(colon + 1, &end, 10);
    assert_true(end != colon + 1 && *end == '\0' && port > 0 && port < 65536);
    p->server_port = (int)port;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    p->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(p->lfd >= 0);
    assert_int_equal(bind(p->lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(p->lfd, 8), 0);
    assert_int_equal(getsockname(p->lfd, (struct sockaddr *)&a, &len), 0);
    p->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&p->th, NULL, proxy_main, p), 0);
}

static void proxy_stop(struct proxy *p)
{
    atomic_store(&p->stop, true);
    pthread_join(p->th, NULL);
    close(p->lfd);
}

/* A COMMIT whose answer is lost with its session may have committed or not: the backend asks
 * the server on a new session (txid_status) and reports what happened, not a failure. */
static void test_lost_commit_answer(void **state)
{
    struct fx *f = *state;
    struct proxy px;
    struct cu_store *st = NULL;
    struct cu_db *db = NULL;
    char err[CU_STORE_ERR_BYTES], url[600];

    need_server();
    proxy_start(&px);
    snprintf(url, sizeof url, "postgresql://custodia@127.0.0.1:%d/%s", px.port, f->name);
    assert_int_equal(open_url(url, 300, &st, err), CU_OK);
    assert_int_equal(cu_store_db(st, &db), CU_OK);
    /* the answer is lost after the server committed: the commit is reported as done */
    assert_int_equal(cu_db_begin(db, CU_TXN_WRITE), CU_OK);
    insert_item(db, 1, "one", CU_OK);
    atomic_store(&px.armed, PROXY_AFTER);
    assert_int_equal(cu_db_commit(db), CU_OK);
    assert_int_equal(atomic_load(&px.armed), PROXY_NONE); /* the cut did happen */
    assert_int_equal(query_int(f->db, "SELECT COUNT(*) FROM items WHERE id = 1"), 1);
    /* the COMMIT never reached the server: the transaction died with its session */
    assert_int_equal(cu_db_begin(db, CU_TXN_WRITE), CU_OK);
    insert_item(db, 2, "two", CU_OK);
    atomic_store(&px.armed, PROXY_BEFORE);
    assert_int_equal(cu_db_commit(db), CU_E_STORE);
    assert_int_equal(atomic_load(&px.armed), PROXY_NONE);
    assert_int_equal(query_int(f->db, "SELECT COUNT(*) FROM items WHERE id = 2"), 0);
    /* and the session made again goes on */
    assert_int_equal(cu_db_begin(db, CU_TXN_WRITE), CU_OK);
    insert_item(db, 3, "three", CU_OK);
    assert_int_equal(cu_db_commit(db), CU_OK);
    assert_int_equal(query_int(f->db, sql_count), 2);
    cu_store_close(st);
    proxy_stop(&px);
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
        cmocka_unit_test_setup_teardown(test_lost_commit_answer, setup, teardown),
    };

    cu_log_set_level(CU_LOG_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
