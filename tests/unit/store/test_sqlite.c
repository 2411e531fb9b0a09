/*
 * test_sqlite.c - the store interface over the SQLite backend: opening and creating files,
 * value round trips, placeholder translation, error mapping, transactions, the statement
 * cache, connection settings, concurrent readers and writers on their own connections, and
 * fault injection.
 */
#include "cu_test.h"

#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "base/clock.h"
#include "base/mem.h"
#include "store/store.h"

struct fx {
    char dir[256];
    char path[512];
    struct cu_store *st;
    struct cu_db *db;
};

static const char *const sql_items =
    "CREATE TABLE items (id INTEGER NOT NULL PRIMARY KEY, name TEXT UNIQUE, n INTEGER, "
    "data BLOB, tag TEXT NOT NULL DEFAULT '') STRICT";
static const char *const sql_insert =
    "INSERT INTO items (id, name, n, data) VALUES ($1, $2, $3, $4)";
static const char *const sql_count = "SELECT COUNT(*) FROM items";

static enum cu_err open_at(const char *path, bool create, unsigned busy_ms, struct cu_store **st)
{
    char err[CU_STORE_ERR_BYTES];
    struct cu_store_opts o = {.backend = "sqlite",
                              .path = path,
                              .busy_timeout_ms = busy_ms,
                              .synchronous_full = false,
                              .create = create};

    return cu_store_open(&o, st, err);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    char err[CU_STORE_ERR_BYTES];

    assert_non_null(f);
    cu_test_tmpdir(f->dir, sizeof f->dir);
    snprintf(f->path, sizeof f->path, "%s/custodia.db", f->dir);
    assert_int_equal(open_at(f->path, true, 10000, &f->st), CU_OK);
    assert_int_equal(cu_store_migrate(f->st, err), CU_OK);
    assert_int_equal(cu_store_db(f->st, &f->db), CU_OK);
    assert_int_equal(cu_db_exec(f->db, sql_items, NULL, 0), CU_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    cu_store_close(f->st);
    cu_test_rmrf(f->dir);
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

static void insert_item(struct cu_db *db, int64_t id, const char *name, enum cu_err want)
{
    struct cu_val v[] = {CU_VI(id), name ? CU_VT(name) : CU_VNULL, CU_VI(id * 10), CU_VNULL};

    assert_int_equal(cu_db_exec(db, sql_insert, v, CU_NVALS(v)), want);
}

static void test_open_missing_file_fails(void **state)
{
    char dir[256], path[512], err[CU_STORE_ERR_BYTES];
    struct cu_store *st = (struct cu_store *)1;
    struct cu_store_opts o = {.backend = "sqlite", .path = path, .create = false};

    cu_test_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/missing.db", dir);
    assert_int_equal(cu_store_open(&o, &st, err), CU_E_IO);
    assert_null(st);
    assert_non_null(strstr(err, path));
    assert_int_equal(access(path, F_OK), -1);
    o.backend = "oracle";
    assert_int_equal(cu_store_open(&o, &st, err), CU_E_CONFIG);
    assert_non_null(strstr(err, "oracle"));
    cu_test_rmrf(dir);
}

static void test_open_not_a_database(void **state)
{
    char dir[256], path[512], err[CU_STORE_ERR_BYTES];
    struct cu_store *st = NULL;
    struct cu_store_opts o = {.backend = "sqlite", .path = path, .create = false};

    cu_test_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/junk.db", dir);
    cu_test_write_file(path, "this is not an SQLite database, not even close to one....\n");
    assert_int_not_equal(cu_store_open(&o, &st, err), CU_OK);
    assert_null(st);
    assert_non_null(strstr(err, path));
    cu_test_rmrf(dir);
}

static void test_open_read_only_file_fails(void **state)
{
    struct fx *f = *state;
    char err[CU_STORE_ERR_BYTES];
    struct cu_store *st = NULL;
    struct cu_store_opts o = {.backend = "sqlite", .path = f->path};

    assert_int_equal(chmod(f->path, 0400), 0);
    if (geteuid() != 0) {
        assert_int_equal(cu_store_open(&o, &st, err), CU_E_PERM);
        assert_null(st);
        assert_non_null(strstr(err, f->path));
    } else {
        /* Root writes through any mode, so check as an unprivileged user, in a child: the
         * file is theirs, readable and not writable. */
        char dir[sizeof(f->path)];
        snprintf(dir, sizeof(dir), "%s", f->path);
        *strrchr(dir, '/') = '\0';
        assert_int_equal(chmod(dir, 0755), 0);
        assert_int_equal(chown(f->path, 65534, 65534), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            bool ok = setgid(65534) == 0 && setuid(65534) == 0 &&
                      cu_store_open(&o, &st, err) == CU_E_PERM && st == NULL &&
                      strstr(err, f->path) != NULL;
            _exit(ok ? 0 : 1);
        }
        int status = 0;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        assert_int_equal(chown(f->path, 0, 0), 0);
        assert_int_equal(chmod(dir, 0700), 0);
    }
    assert_int_equal(chmod(f->path, 0600), 0);
}

static void test_create_is_private_and_migrated(void **state)
{
    struct fx *f = *state;
    struct stat sb;
    int v = -1;

    assert_int_equal(stat(f->path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_string_equal(cu_store_backend(f->st), "sqlite");
    assert_int_equal(cu_store_schema_version(f->st, &v), CU_OK);
    assert_true(v >= 1);
    assert_int_equal(query_int(f->db, "SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table' "
                                      "AND name = 'api_keys'"),
                     1);
}

static void test_value_roundtrip(void **state)
{
    struct fx *f = *state;
    static const char *const ins = "INSERT INTO items (id, name, n, data) VALUES ($1, $2, $3, $4)";
    static const char *const sel = "SELECT name, n, data, id FROM items WHERE id = $1";
    const char *utf8 = "Zo\xc3\xab \xe2\x9c\x93 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x94\x92";
    const unsigned char blob[] = {0x00, 0x01, 0x00, 0xff, 0x00};
    struct cu_val a[] = {CU_VI(1), CU_VT(utf8), CU_VI(INT64_MIN), CU_VB(blob, sizeof blob)};
    struct cu_val b[] = {CU_VI(2), CU_VNULL, CU_VI(INT64_MAX), CU_VNULL};
    struct cu_val c[] = {CU_VI(3), CU_VTN("", 0), CU_VNULL, CU_VB("", 0)};
    struct cu_stmt *s = NULL;
    bool row = false;
    size_t len = 99;
    const void *p;

    assert_int_equal(cu_db_exec(f->db, ins, a, CU_NVALS(a)), CU_OK);
    assert_int_equal(cu_db_exec(f->db, ins, b, CU_NVALS(b)), CU_OK);
    assert_int_equal(cu_db_exec(f->db, ins, c, CU_NVALS(c)), CU_OK);

    assert_int_equal(cu_db_query(f->db, sel, &CU_VI(1), 1, &s), CU_OK);
    assert_int_equal(cu_stmt_next(s, &row), CU_OK);
    assert_true(row);
    assert_string_equal(cu_stmt_text(s, 0, &len), utf8);
    assert_int_equal(len, strlen(utf8));
    assert_int_equal(cu_stmt_int(s, 1), INT64_MIN);
    p = cu_stmt_blob(s, 2, &len);
    assert_int_equal(len, sizeof blob);
    assert_memory_equal(p, blob, sizeof blob);
    assert_false(cu_stmt_null(s, 2));
    assert_int_equal(cu_stmt_next(s, &row), CU_OK);
    assert_false(row);
    cu_stmt_done(s);

    assert_int_equal(cu_db_query(f->db, sel, &CU_VI(2), 1, &s), CU_OK);
    assert_int_equal(cu_stmt_next(s, &row), CU_OK);
    assert_true(row);
    assert_true(cu_stmt_null(s, 0));
    assert_string_equal(cu_stmt_text(s, 0, &len), "");
    assert_int_equal(len, 0);
    assert_int_equal(cu_stmt_int(s, 1), INT64_MAX);
    assert_true(cu_stmt_null(s, 2));
    assert_null(cu_stmt_blob(s, 2, &len));
    assert_int_equal(len, 0);
    cu_stmt_done(s);

    /* Empty text and an empty blob are values, not NULL. */
    assert_int_equal(cu_db_query(f->db, sel, &CU_VI(3), 1, &s), CU_OK);
    assert_int_equal(cu_stmt_next(s, &row), CU_OK);
    assert_true(row);
    assert_false(cu_stmt_null(s, 0));
    assert_true(cu_stmt_null(s, 1));
    assert_false(cu_stmt_null(s, 2));
    cu_stmt_blob(s, 2, &len);
    assert_int_equal(len, 0);
    cu_stmt_done(s);
}

static void test_placeholder_translation(void **state)
{
    struct fx *f = *state;
    static const char *const sql =
        "SELECT '$1 ?', $2, $1 /* $3 ? */, $2 + $1 AS \"x$1?\" -- $4 ?\n";
    struct cu_val v[] = {CU_VI(10), CU_VI(20)};
    struct cu_stmt *s = NULL;
    bool row = false;

    assert_int_equal(cu_db_query(f->db, sql, v, CU_NVALS(v), &s), CU_OK);
    assert_int_equal(cu_stmt_next(s, &row), CU_OK);
    assert_true(row);
    assert_string_equal(cu_stmt_text(s, 0, NULL), "$1 ?");
    assert_int_equal(cu_stmt_int(s, 1), 20);
    assert_int_equal(cu_stmt_int(s, 2), 10);
    assert_int_equal(cu_stmt_int(s, 3), 30);
    cu_stmt_done(s);

    /* The quote inside a literal ('') does not end it. */
    static const char *const esc = "SELECT 'it''s $1', $1";
    assert_int_equal(cu_db_query(f->db, esc, &CU_VT("v"), 1, &s), CU_OK);
    assert_int_equal(cu_stmt_next(s, &row), CU_OK);
    assert_string_equal(cu_stmt_text(s, 0, NULL), "it's $1");
    assert_string_equal(cu_stmt_text(s, 1, NULL), "v");
    cu_stmt_done(s);
}

/* expect_abort(fn, arg): runs fn in a child process and checks that it aborted. */
static void expect_abort(void (*fn)(const char *), const char *arg)
{
    int status = 0;
    pid_t pid = fork();

    assert_true(pid >= 0);
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stderr)) /* the assertion message is expected */
            _exit(1);
        fn(arg);
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
}

/* child_db(dir): a connection to a database of the child's own (not the parent's file: SQLite
 * connections and locks do not survive fork). */
static struct cu_db *child_db(const char *dir)
{
    char path[512];
    struct cu_store *st = NULL;
    struct cu_db *db = NULL;

    snprintf(path, sizeof path, "%s/child.db", dir);
    if (open_at(path, true, 1000, &st) != CU_OK || cu_store_db(st, &db) != CU_OK)
        _exit(1);
    return db;
}

static void misuse_question_mark(const char *dir)
{
    struct cu_db *db = child_db(dir);

    if (cu_db_exec(db, "SELECT ?", &CU_VI(1), 1) != CU_OK)
        _exit(1);
}

static void misuse_active_again(const char *dir)
{
    static const char *const sql = "SELECT 1";
    struct cu_db *db = child_db(dir);
    struct cu_stmt *s = NULL;

    if (cu_db_query(db, sql, NULL, 0, &s) != CU_OK)
        _exit(1);
    if (cu_db_query(db, sql, NULL, 0, &s) != CU_OK)
        _exit(1);
}

static void misuse_nested_begin(const char *dir)
{
    struct cu_db *db = child_db(dir);

    if (cu_db_begin(db, CU_TXN_READ) != CU_OK)
        _exit(1);
    if (cu_db_begin(db, CU_TXN_READ) != CU_OK)
        _exit(1);
}

static void test_misuse_aborts(void **state)
{
    struct fx *f = *state;

    expect_abort(misuse_question_mark, f->dir);
    expect_abort(misuse_active_again, f->dir);
    expect_abort(misuse_nested_begin, f->dir);
}

static void test_constraint_errors(void **state)
{
    struct fx *f = *state;
    static const char *const notnull = "INSERT INTO items (id, tag) VALUES (8, NULL)";
    static const char *const strict = "INSERT INTO items (id, n) VALUES (9, 'not a number')";

    insert_item(f->db, 1, "alice", CU_OK);
    insert_item(f->db, 2, "alice", CU_E_EXISTS); /* UNIQUE */
    insert_item(f->db, 1, "bob", CU_E_EXISTS);   /* PRIMARY KEY */
    assert_int_equal(cu_db_exec(f->db, notnull, NULL, 0), CU_E_STORE);
    assert_int_equal(cu_db_exec(f->db, strict, NULL, 0), CU_E_STORE);
    assert_int_equal(query_int(f->db, sql_count), 1);
}

static void test_rollback_discards(void **state)
{
    struct fx *f = *state;

    insert_item(f->db, 1, "kept", CU_OK);
    assert_false(cu_db_in_txn(f->db));
    assert_int_equal(cu_db_begin(f->db, CU_TXN_WRITE), CU_OK);
    assert_true(cu_db_in_txn(f->db));
    insert_item(f->db, 2, "gone", CU_OK);
    insert_item(f->db, 3, "gone too", CU_OK);
    assert_int_equal(query_int(f->db, sql_count), 3);
    cu_db_rollback(f->db);
    assert_false(cu_db_in_txn(f->db));
    cu_db_rollback(f->db); /* outside a transaction: nothing */
    assert_int_equal(query_int(f->db, sql_count), 1);
}

static void test_commit_persists_across_reopen(void **state)
{
    struct fx *f = *state;
    static const char *const sel = "SELECT name FROM items WHERE id = $1";
    struct cu_stmt *s = NULL;
    bool row = false;

    assert_int_equal(cu_db_begin(f->db, CU_TXN_WRITE), CU_OK);
    insert_item(f->db, 7, "seven", CU_OK);
    assert_int_equal(cu_db_commit(f->db), CU_OK);
    assert_false(cu_db_in_txn(f->db));
    cu_store_close(f->st);

    assert_int_equal(open_at(f->path, false, 1000, &f->st), CU_OK);
    assert_int_equal(cu_store_db(f->st, &f->db), CU_OK);
    assert_int_equal(cu_db_query(f->db, sel, &CU_VI(7), 1, &s), CU_OK);
    assert_int_equal(cu_stmt_next(s, &row), CU_OK);
    assert_true(row);
    assert_string_equal(cu_stmt_text(s, 0, NULL), "seven");
    cu_stmt_done(s);
}

/* A statement stepped past its last row is not run again by another cu_stmt_next. */
static void test_no_rerun_after_end(void **state)
{
    struct fx *f = *state;
    static const char *const ins = "INSERT INTO items (id, n) VALUES ($1, 5) RETURNING n";
    struct cu_stmt *s = NULL;
    bool row = false;

    assert_int_equal(cu_db_query(f->db, ins, &CU_VI(1), 1, &s), CU_OK);
    assert_int_equal(cu_stmt_next(s, &row), CU_OK);
    assert_true(row);
    assert_int_equal(cu_stmt_int(s, 0), 5);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(cu_stmt_next(s, &row), CU_OK);
        assert_false(row);
    }
    cu_stmt_done(s);
    assert_int_equal(query_int(f->db, sql_count), 1);
    /* cu_db_exec runs a RETURNING statement to its end, once. */
    assert_int_equal(cu_db_exec(f->db, ins, &CU_VI(2), 1), CU_OK);
    assert_int_equal(cu_db_changes(f->db), 1);
    assert_int_equal(query_int(f->db, sql_count), 2);
}

static void test_changes(void **state)
{
    struct fx *f = *state;
    static const char *const upd = "UPDATE items SET n = n + 1 WHERE id <= $1";

    for (int i = 1; i <= 4; i++)
        insert_item(f->db, i, NULL, CU_OK);
    assert_int_equal(cu_db_exec(f->db, upd, &CU_VI(3), 1), CU_OK);
    assert_int_equal(cu_db_changes(f->db), 3);
    assert_int_equal(query_int(f->db, sql_count), 4); /* a query does not change it */
    assert_int_equal(cu_db_changes(f->db), 3);
    assert_int_equal(cu_db_exec(f->db, upd, &CU_VI(0), 1), CU_OK);
    assert_int_equal(cu_db_changes(f->db), 0);
}

static void test_statement_cache(void **state)
{
    struct fx *f = *state;
    static const char *const sel = "SELECT n FROM items WHERE id = $1";
    static char texts[100][48];
    struct cu_stmt *first = NULL, *s = NULL;
    bool row = false;

    for (int i = 1; i <= 20; i++)
        insert_item(f->db, i, NULL, CU_OK);
    for (int round = 0; round < 3; round++) {
        for (int i = 1; i <= 20; i++) {
            assert_int_equal(cu_db_query(f->db, sel, &CU_VI(i), 1, &s), CU_OK);
            if (!first)
                first = s;
            assert_ptr_equal(s, first); /* prepared once, reused */
            assert_int_equal(cu_stmt_next(s, &row), CU_OK);
            assert_true(row);
            assert_int_equal(cu_stmt_int(s, 0), i * 10);
            cu_stmt_done(s);
        }
    }
    /* Many distinct statements: the cache grows and keeps answering right. */
    for (int i = 0; i < 100; i++)
        snprintf(texts[i], sizeof texts[i], "SELECT %d + $1", i);
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 100; i++) {
            assert_int_equal(cu_db_query(f->db, texts[i], &CU_VI(round), 1, &s), CU_OK);
            assert_int_equal(cu_stmt_next(s, &row), CU_OK);
            assert_int_equal(cu_stmt_int(s, 0), i + round);
            cu_stmt_done(s);
        }
    }
    cu_stmt_done(NULL);
}

/* Past the cache's limit new statements fail, but the cached ones keep working. */
static void test_statement_cache_limit(void **state)
{
    struct fx *f = *state;
    static char texts[5000][24];
    enum cu_err rc = CU_OK;
    int n;

    for (n = 0; n < 5000 && rc == CU_OK; n++) {
        snprintf(texts[n], sizeof texts[n], "SELECT %d", n);
        rc = cu_db_exec(f->db, texts[n], NULL, 0);
    }
    assert_int_equal(rc, CU_E_INTERNAL);
    assert_true(n > 256);
    assert_int_equal(query_int(f->db, texts[0]), 0);
    assert_int_equal(query_int(f->db, texts[n - 2]), n - 2);
    assert_int_equal(cu_db_exec(f->db, texts[n - 1], NULL, 0), CU_E_INTERNAL);
}

static void test_connection_settings(void **state)
{
    struct fx *f = *state;
    static const char *const jm = "PRAGMA journal_mode";
    static const char *const child =
        "CREATE TABLE child (id INTEGER NOT NULL PRIMARY KEY, item INTEGER NOT NULL "
        "REFERENCES items (id)) STRICT";
    static const char *const add = "INSERT INTO child (id, item) VALUES ($1, $2)";
    struct cu_val orphan[] = {CU_VI(1), CU_VI(42)};
    struct cu_stmt *s = NULL;
    bool row = false;

    assert_int_equal(cu_db_query(f->db, jm, NULL, 0, &s), CU_OK);
    assert_int_equal(cu_stmt_next(s, &row), CU_OK);
    assert_string_equal(cu_stmt_text(s, 0, NULL), "wal");
    cu_stmt_done(s);
    assert_int_equal(query_int(f->db, "PRAGMA foreign_keys"), 1);
    assert_int_equal(query_int(f->db, "PRAGMA secure_delete"), 1);
    assert_int_equal(query_int(f->db, "PRAGMA trusted_schema"), 0);
    assert_int_equal(query_int(f->db, "PRAGMA synchronous"), 1); /* NORMAL, as opened */

    /* Foreign keys are enforced, not just declared. */
    assert_int_equal(cu_db_exec(f->db, child, NULL, 0), CU_OK);
    assert_int_equal(cu_db_exec(f->db, add, orphan, CU_NVALS(orphan)), CU_E_STORE);
    /* Double-quoted strings are identifiers, as in PostgreSQL. */
    assert_int_equal(cu_db_exec(f->db, "SELECT \"no such column\"", NULL, 0), CU_E_STORE);
}

static void test_synchronous_full(void **state)
{
    struct fx *f = *state;
    char err[CU_STORE_ERR_BYTES];
    struct cu_store *st = NULL;
    struct cu_db *db = NULL;
    struct cu_store_opts o = {.backend = "sqlite", .path = f->path, .synchronous_full = true};

    assert_int_equal(cu_store_open(&o, &st, err), CU_OK);
    assert_int_equal(cu_store_db(st, &db), CU_OK);
    assert_int_equal(query_int(db, "PRAGMA synchronous"), 2);
    cu_store_close(st);
}

/* ---- concurrency ---------------------------------------------------------------------- */

struct readers {
    struct cu_store *st;
    pthread_barrier_t started, read_old, committed;
    int64_t before[3], in_txn_after[3], after[3];
    uint64_t read_ns[3];
    enum cu_err rc[3];
};

struct reader_arg {
    struct readers *r;
    int i;
};

static void *reader(void *p)
{
    struct reader_arg *a = p;
    struct readers *r = a->r;
    struct cu_db *db = NULL;
    enum cu_err rc = cu_store_db(r->st, &db);
    uint64_t t0;

    pthread_barrier_wait(&r->started);
    t0 = cu_clock_mono_ns();
    if (rc == CU_OK)
        rc = cu_db_begin(db, CU_TXN_READ);
    if (rc == CU_OK)
        r->before[a->i] = query_int(db, sql_count);
    r->read_ns[a->i] = cu_clock_mono_ns() - t0;
    pthread_barrier_wait(&r->read_old);
    pthread_barrier_wait(&r->committed);
    if (rc == CU_OK) {
        r->in_txn_after[a->i] = query_int(db, sql_count); /* still the old snapshot */
        rc = cu_db_commit(db);
    }
    if (rc == CU_OK)
        r->after[a->i] = query_int(db, sql_count);
    r->rc[a->i] = rc;
    return NULL;
}

static void test_readers_during_write(void **state)
{
    struct fx *f = *state;
    struct readers r = {.st = f->st};
    struct reader_arg args[3];
    pthread_t t[3];

    for (int i = 1; i <= 5; i++)
        insert_item(f->db, i, NULL, CU_OK);
    pthread_barrier_init(&r.started, NULL, 4);
    pthread_barrier_init(&r.read_old, NULL, 4);
    pthread_barrier_init(&r.committed, NULL, 4);
    for (int i = 0; i < 3; i++) {
        args[i] = (struct reader_arg){&r, i};
        assert_int_equal(pthread_create(&t[i], NULL, reader, &args[i]), 0);
    }
    assert_int_equal(cu_db_begin(f->db, CU_TXN_WRITE), CU_OK);
    for (int i = 6; i <= 15; i++)
        insert_item(f->db, i, NULL, CU_OK);
    pthread_barrier_wait(&r.started); /* the write lock is held while they read */
    pthread_barrier_wait(&r.read_old);
    assert_int_equal(cu_db_commit(f->db), CU_OK);
    pthread_barrier_wait(&r.committed);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_int_equal(r.rc[i], CU_OK);
        assert_int_equal(r.before[i], 5);
        assert_int_equal(r.in_txn_after[i], 5);
        assert_int_equal(r.after[i], 15);
        /* Busy timeout is 10 s: a reader that waited on the writer would take that long. */
        assert_true(r.read_ns[i] < UINT64_C(2000000000));
    }
    pthread_barrier_destroy(&r.started);
    pthread_barrier_destroy(&r.read_old);
    pthread_barrier_destroy(&r.committed);
}

#define WRITERS 4
#define INCREMENTS 150

struct writer_arg {
    struct cu_store *st;
    enum cu_err rc;
};

static void *writer(void *p)
{
    static const char *const get = "SELECT n FROM items WHERE id = 1";
    static const char *const set = "UPDATE items SET n = $1 WHERE id = 1";
    struct writer_arg *a = p;
    struct cu_db *db = NULL;
    enum cu_err rc = cu_store_db(a->st, &db);

    for (int i = 0; i < INCREMENTS && rc == CU_OK; i++) {
        struct cu_stmt *s = NULL;
        bool row = false;
        int64_t n = -1;

        rc = cu_db_begin(db, CU_TXN_WRITE);
        if (rc == CU_OK)
            rc = cu_db_query(db, get, NULL, 0, &s);
        if (rc == CU_OK && (rc = cu_stmt_next(s, &row)) == CU_OK && row)
            n = cu_stmt_int(s, 0);
        cu_stmt_done(s);
        if (rc == CU_OK)
            rc = cu_db_exec(db, set, &CU_VI(n + 1), 1);
        if (rc == CU_OK)
            rc = cu_db_commit(db);
        cu_db_rollback(db);
    }
    a->rc = rc;
    return NULL;
}

static void test_concurrent_writers(void **state)
{
    struct fx *f = *state;
    static const char *const zero = "INSERT INTO items (id, n) VALUES (1, 0)";
    struct writer_arg a[WRITERS];
    pthread_t t[WRITERS];

    assert_int_equal(cu_db_exec(f->db, zero, NULL, 0), CU_OK);
    for (int i = 0; i < WRITERS; i++) {
        a[i] = (struct writer_arg){f->st, CU_E_INTERNAL};
        assert_int_equal(pthread_create(&t[i], NULL, writer, &a[i]), 0);
    }
    for (int i = 0; i < WRITERS; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_int_equal(a[i].rc, CU_OK);
    }
    assert_int_equal(query_int(f->db, "SELECT n FROM items WHERE id = 1"), WRITERS * INCREMENTS);
}

/* Two stores open on one file in one thread have separate connections: one holds the write
 * lock, the other times out with CU_E_BUSY. */
static void test_two_stores_busy(void **state)
{
    struct fx *f = *state;
    struct cu_store *other = NULL;
    struct cu_db *db2 = NULL;
    uint64_t t0;

    assert_int_equal(open_at(f->path, false, 100, &other), CU_OK);
    assert_int_equal(cu_store_db(other, &db2), CU_OK);
    assert_ptr_not_equal(db2, f->db);
    assert_int_equal(cu_db_begin(f->db, CU_TXN_WRITE), CU_OK);
    insert_item(f->db, 1, "held", CU_OK);
    t0 = cu_clock_mono_ns();
    assert_int_equal(cu_db_begin(db2, CU_TXN_WRITE), CU_E_BUSY);
    assert_true(cu_clock_mono_ns() - t0 >= UINT64_C(90000000));
    assert_false(cu_db_in_txn(db2));
    assert_int_equal(query_int(db2, sql_count), 0); /* reads still work */
    assert_int_equal(cu_db_commit(f->db), CU_OK);
    assert_int_equal(query_int(db2, sql_count), 1);
    cu_store_close(other);
}

static void *use_and_exit(void *p)
{
    struct cu_db *db = NULL;

    if (cu_store_db(p, &db) == CU_OK)
        (void)query_int(db, sql_count);
    return db;
}

/* A thread's connection is its own and is released when it exits (valgrind checks the
 * release). */
static void test_thread_connections(void **state)
{
    struct fx *f = *state;
    struct cu_db *again = NULL;
    pthread_t t;
    void *theirs = NULL;

    assert_int_equal(pthread_create(&t, NULL, use_and_exit, f->st), 0);
    assert_int_equal(pthread_join(t, &theirs), 0);
    assert_non_null(theirs);
    assert_ptr_not_equal(theirs, f->db);
    assert_int_equal(cu_store_db(f->st, &again), CU_OK);
    assert_ptr_equal(again, f->db);
}

/* ---- fault injection ------------------------------------------------------------------ */

static void test_fault_injection(void **state)
{
    struct fx *f = *state;
    struct cu_stmt *s = NULL;

    cu_store_fail_next(f->st, 2);
    insert_item(f->db, 1, "a", CU_OK);
    insert_item(f->db, 2, "b", CU_E_STORE);
    insert_item(f->db, 3, "c", CU_OK);
    assert_int_equal(query_int(f->db, sql_count), 2);

    cu_store_fail_next(f->st, 1);
    assert_int_equal(cu_db_query(f->db, sql_count, NULL, 0, &s), CU_E_STORE);
    assert_null(s);

    /* A failed commit rolls back. */
    assert_int_equal(cu_db_begin(f->db, CU_TXN_WRITE), CU_OK);
    insert_item(f->db, 4, "d", CU_OK);
    cu_store_fail_next(f->st, 1);
    assert_int_equal(cu_db_commit(f->db), CU_E_STORE);
    assert_false(cu_db_in_txn(f->db));
    assert_int_equal(query_int(f->db, sql_count), 2);

    cu_store_fail_next(f->st, 3);
    cu_store_fail_next(f->st, 0);
    for (int i = 10; i < 15; i++)
        insert_item(f->db, i, NULL, CU_OK);
}

/* Every allocation failure while opening, migrating and querying unwinds cleanly. */
static void test_allocation_failures(void **state)
{
    char dir[256], path[512], err[CU_STORE_ERR_BYTES];
    bool done = false;

    cu_test_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/alloc.db", dir);
    for (long n = 1; n < 1000 && !done; n++) {
        struct cu_store *st = NULL;
        struct cu_db *db = NULL;
        struct cu_store_opts o = {.backend = "sqlite", .path = path, .create = true};
        enum cu_err rc;

        cu_mem_fail_at(n);
        rc = cu_store_open(&o, &st, err);
        if (rc == CU_OK)
            rc = cu_store_migrate(st, err);
        if (rc == CU_OK)
            rc = cu_store_db(st, &db);
        if (rc == CU_OK)
            rc = cu_db_exec(db, "SELECT COUNT(*) FROM api_keys", NULL, 0);
        cu_mem_fail_at(0);
        if (rc == CU_OK)
            done = true;
        else
            assert_int_equal(rc, CU_E_NOMEM);
        cu_store_close(st);
    }
    assert_true(done);
    cu_test_rmrf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_missing_file_fails),
        cmocka_unit_test(test_open_not_a_database),
        cmocka_unit_test_setup_teardown(test_open_read_only_file_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_is_private_and_migrated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_value_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_placeholder_translation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_misuse_aborts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_constraint_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollback_discards, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_persists_across_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_rerun_after_end, setup, teardown),
        cmocka_unit_test_setup_teardown(test_changes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_statement_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_statement_cache_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_settings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_synchronous_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_readers_during_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_writers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_stores_busy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_thread_connections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fault_injection, setup, teardown),
        cmocka_unit_test(test_allocation_failures),
    };

    alarm(240);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
