/*
 * sqlite.c - the SQLite backend of the store (struct cu_store_ops cu_store_sqlite_ops).
 *
 * Every connection opens the database file in WAL mode with foreign keys, secure_delete and
 * defensive mode on, untrusted schema and double-quoted strings off, and the configured
 * synchronous level and busy timeout. The service SQL's `$N` placeholders become `?N` at
 * prepare time. SQLite's result codes map to CU_E_EXISTS (uniqueness), CU_E_BUSY (locks) and
 * CU_E_STORE; each failure is logged with SQLite's message, never with bound values. A new
 * database file is made 0600 before SQLite opens it, and SQLite gives its -wal and -shm files
 * the same mode.
 */
#include "store/store.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <pthread.h>

#include <sqlite3.h>

#include "base/log.h"
#include "base/mem.h"

extern const struct cu_migration cu_sqlite_migrations[];
extern const size_t cu_sqlite_migrations_count;

/* The write-ahead log's checkpointer: a thread with a connection of its own that copies the
 * log back into the database when a commit leaves it WAL_CHECKPOINT_PAGES long, so the one
 * writer every request waits for never does it (SQLite's automatic checkpoint runs in the
 * committing connection). PASSIVE: it never blocks a writer or a reader. */
struct sq_ckpt {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool want, stop, started;
    pthread_t thread;
};

/* Log pages after which a commit asks for a checkpoint (SQLite's own default). */
#define WAL_CHECKPOINT_PAGES 1000
/* Log pages after which the committing connection checkpoints what the thread has not. */
#define WAL_CHECKPOINT_PAGES_MAX 8000

struct sq_state {
    char *path;
    int busy_ms;
    bool sync_full;
    bool create;
    struct sq_ckpt ckpt;
};

/* Bytes for the journal mode name PRAGMA journal_mode reports. */
#define JOURNAL_MODE_BYTES 16

enum { TX_BEGIN_WRITE, TX_BEGIN_READ, TX_COMMIT, TX_ROLLBACK, TX_COUNT };

static const char *const tx_sql[TX_COUNT] = {"BEGIN IMMEDIATE", "BEGIN DEFERRED", "COMMIT",
                                             "ROLLBACK"};

struct sq_conn {
    sqlite3 *db;
    sqlite3_stmt *tx[TX_COUNT]; /* prepared once per connection */
    int busy_ms;                /* the store's busy timeout, which sq_purge shortens */
};

/* How long a purge waits for readers to leave the write-ahead log. It holds the write lock
 * meanwhile, so it must not wait as long as a writer may: a purge that gives up is retried. */
#define PURGE_WAIT_MS 250

/* sq_err(db, rc, op): maps a SQLite result code to a cu_err and logs SQLite's message. */
static enum cu_err sq_err(sqlite3 *db, int rc, const char *op)
{
    enum cu_err e = CU_E_STORE;
    enum cu_log_level level = CU_LOG_WARN;

    switch (rc & 0xff) {
    case SQLITE_CONSTRAINT:
        if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
            e = CU_E_EXISTS;
            level = CU_LOG_INFO; /* an expected outcome the caller handles */
        }
        break;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        e = CU_E_BUSY;
        break;
    case SQLITE_TOOBIG:
        e = CU_E_TOO_LARGE;
        break;
    case SQLITE_FULL:
        e = CU_E_STORE_FULL;
        break;
    case SQLITE_CANTOPEN:
        e = CU_E_IO;
        break;
    default:
        break;
    }
    cu_log(level, "store.sqlite_error", CU_LS("op", op), CU_LI("code", rc),
           CU_LS("error", db ? sqlite3_errmsg(db) : sqlite3_errstr(rc)));
    return e;
}

/* translate(s): rewrites `$N` placeholders as `?N` in place, leaving string literals, quoted
 * identifiers and comments alone (cu_store_next_placeholder, which aborts on `?` or a `$` not
 * followed by a digit: service SQL is written by us, so either is a bug). */
static void translate(char *s)
{
    for (char *p = s; (p = (char *)cu_store_next_placeholder(p)) != NULL; p++)
        *p = '?';
}

/* strip_for_update(s): removes a trailing "FOR UPDATE" (the store contract's row lock, which
 * SQLite does not parse). Every write transaction here holds the database's write lock from its
 * BEGIN IMMEDIATE, so the rows such a query reads are already safe from other writers until
 * the commit: the lock asked for is held, only more widely. */
static void strip_for_update(char *s)
{
    size_t n = strlen(s);
    static const char tail[] = "FOR UPDATE";

    while (n > 0 && isspace((unsigned char)s[n - 1]))
        n--;
    if (n >= sizeof tail - 1 && memcmp(s + n - (sizeof tail - 1), tail, sizeof tail - 1) == 0)
        s[n - (sizeof tail - 1)] = '\0';
}

/* journal_cb: sqlite3_exec callback that keeps the journal mode PRAGMA reports. */
static int journal_cb(void *arg, int ncol, char **vals, char **names)
{
    char *mode = arg;

    if (ncol > 0 && vals[0])
        snprintf(mode, JOURNAL_MODE_BYTES, "%s", vals[0]);
    return 0;
}

/* configure(c, s, err, errlen): the per-connection settings. */
static enum cu_err configure(struct sq_conn *c, const struct sq_state *s, char *err, size_t errlen)
{
    char mode[JOURNAL_MODE_BYTES] = "";
    /* cache_size: 32 MiB per connection instead of SQLite's 2 MiB, so the indexes of
     * random keys (ids, blind-index hashes) stay in memory as tables grow. temp_store: the
     * statement journals of the savepoints each unit of a group runs in stay in memory; in
     * a file they were a write of every page a unit touched, a third of the group
     * committer's time under transfers (docs/performance.md). */
    const char *pragmas = s->sync_full ? "PRAGMA foreign_keys=ON; PRAGMA secure_delete=ON; "
                                         "PRAGMA trusted_schema=OFF; PRAGMA synchronous=FULL; "
                                         "PRAGMA cache_size=-32768; PRAGMA temp_store=MEMORY;"
                                       : "PRAGMA foreign_keys=ON; PRAGMA secure_delete=ON; "
                                         "PRAGMA trusted_schema=OFF; PRAGMA synchronous=NORMAL; "
                                         "PRAGMA cache_size=-32768; PRAGMA temp_store=MEMORY;";
    enum cu_err rc = CU_OK;
    int src;

    /* SQLite falls back to read-only on a write-protected file; writes would fail later. */
    if (sqlite3_db_readonly(c->db, "main") == 1) {
        snprintf(err, errlen, "%s: the database file is not writable", s->path);
        rc = CU_E_PERM;
        goto out;
    }
    sqlite3_busy_timeout(c->db, s->busy_ms);
    c->busy_ms = s->busy_ms;
    sqlite3_db_config(c->db, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)NULL);
    sqlite3_db_config(c->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, (int *)NULL);
    sqlite3_db_config(c->db, SQLITE_DBCONFIG_DQS_DML, 0, (int *)NULL);
    sqlite3_db_config(c->db, SQLITE_DBCONFIG_DQS_DDL, 0, (int *)NULL);
    sqlite3_db_config(c->db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, (int *)NULL);
    src = sqlite3_exec(c->db, "PRAGMA journal_mode=WAL", journal_cb, mode, NULL);
    if (src == SQLITE_OK)
        src = sqlite3_exec(c->db, pragmas, NULL, NULL, NULL);
    if (src != SQLITE_OK) {
        snprintf(err, errlen, "%s: cannot set up the database: %s", s->path, sqlite3_errmsg(c->db));
        rc = sq_err(c->db, src, "configure");
    } else if (strcmp(mode, "wal") != 0) {
        snprintf(err, errlen, "%s: cannot switch to WAL mode (journal mode is '%s')", s->path,
                 mode);
        rc = CU_E_STORE;
    }
out:
    return rc;
}

/* prepare_tx(c, err, errlen): prepares BEGIN, COMMIT and ROLLBACK once per connection. */
static enum cu_err prepare_tx(struct sq_conn *c, const struct sq_state *s, char *err, size_t errlen)
{
    enum cu_err rc = CU_OK;

    for (int i = 0; i < TX_COUNT && rc == CU_OK; i++) {
        int src =
            sqlite3_prepare_v3(c->db, tx_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &c->tx[i], NULL);

        if (src != SQLITE_OK) {
            snprintf(err, errlen, "%s: %s", s->path, sqlite3_errmsg(c->db));
            rc = sq_err(c->db, src, "prepare");
        }
    }
    return rc;
}

static void sq_disconnect(void *conn)
{
    struct sq_conn *c = conn;
    int src;

    if (!c)
        return;
    for (int i = 0; i < TX_COUNT; i++)
        sqlite3_finalize(c->tx[i]);
    src = sqlite3_close(c->db);
    if (src != SQLITE_OK) {
        cu_log(CU_LOG_ERROR, "store.sqlite_close_failed", CU_LS("error", sqlite3_errstr(src)));
        sqlite3_close_v2(c->db);
    }
    cu_free(c);
}

/* wal_hook: after each commit; asks the checkpointer for a checkpoint once the log is long.
 * The log starts again from its beginning only when a write begins after a checkpoint that
 * copied all of it, which a checkpoint running beside a busy writer never does; so past
 * WAL_CHECKPOINT_PAGES_MAX the committing connection checkpoints what is left itself (little,
 * the thread having copied the rest) and the log's file stays bounded. */
static int wal_hook(void *arg, sqlite3 *db, const char *name, int pages)
{
    struct sq_ckpt *k = arg;
    if (pages >= WAL_CHECKPOINT_PAGES_MAX) {
        int logged = 0, moved = 0;
        (void)sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, &logged, &moved);
    } else if (pages >= WAL_CHECKPOINT_PAGES) {
        pthread_mutex_lock(&k->mu);
        k->want = true;
        pthread_cond_signal(&k->cv);
        pthread_mutex_unlock(&k->mu);
    }
    return SQLITE_OK;
}

static enum cu_err sq_connect(void *state, void **conn, char *err, size_t errlen)
{
    const struct sq_state *s = state;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;
    struct sq_conn *c = cu_calloc(1, sizeof *c);
    enum cu_err rc = CU_E_NOMEM;
    int src;

    if (!c) {
        snprintf(err, errlen, "%s: out of memory", s->path);
        goto out;
    }
    flags |= s->create ? SQLITE_OPEN_CREATE : 0;
    src = sqlite3_open_v2(s->path, &c->db, flags, NULL);
    if (src != SQLITE_OK) {
        snprintf(err, errlen, "%s: cannot open the database: %s", s->path,
                 c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(src));
        rc = sq_err(c->db, src, "open");
        goto out;
    }
    rc = configure(c, s, err, errlen);
    if (rc == CU_OK)
        rc = prepare_tx(c, s, err, errlen);
    if (rc != CU_OK)
        goto out;
    /* The hook replaces SQLite's automatic checkpoint; without the thread it stays. */
    if (s->ckpt.started)
        sqlite3_wal_hook(c->db, wal_hook, (void *)&((struct sq_state *)state)->ckpt);
    *conn = c;
    c = NULL;
out:
    sq_disconnect(c);
    return rc;
}

/* precreate(path, err, errlen): makes the database file 0600 if it does not exist yet. */
static enum cu_err precreate(const char *path, char *err, size_t errlen)
{
    char buf[128];
    enum cu_err rc = CU_OK;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

    if (fd < 0) {
        rc = errno == EACCES || errno == EPERM ? CU_E_PERM : CU_E_IO;
        snprintf(err, errlen, "%s: cannot create the database: %s", path,
                 strerror_r(errno, buf, sizeof buf));
    } else {
        close(fd);
    }
    return rc;
}

static void *ckpt_main(void *arg)
{
    struct sq_state *s = arg;
    struct sq_ckpt *k = &s->ckpt;
    char err[CU_STORE_ERR_BYTES];
    struct sq_conn *c = NULL;
    void *conn = NULL;

    pthread_setname_np(pthread_self(), "cu-wal");
    pthread_mutex_lock(&k->mu);
    for (;;) {
        while (!k->want && !k->stop)
            pthread_cond_wait(&k->cv, &k->mu);
        if (k->stop)
            break;
        k->want = false;
        pthread_mutex_unlock(&k->mu);
        if (!c && sq_connect(s, &conn, err, sizeof err) == CU_OK)
            c = conn;
        if (c) {
            int logged = 0, moved = 0;
            int src =
                sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &logged, &moved);
            if (src != SQLITE_OK && src != SQLITE_BUSY)
                cu_log(CU_LOG_WARN, "store.wal_checkpoint_failed",
                       CU_LS("error", sqlite3_errstr(src)));
        }
        pthread_mutex_lock(&k->mu);
    }
    pthread_mutex_unlock(&k->mu);
    sq_disconnect(c);
    return NULL;
}

static void ckpt_start(struct sq_state *s)
{
    struct sq_ckpt *k = &s->ckpt;

    if (pthread_mutex_init(&k->mu, NULL) != 0)
        return;
    if (pthread_cond_init(&k->cv, NULL) != 0) {
        pthread_mutex_destroy(&k->mu);
        return;
    }
    /* Set before the thread runs, so its own connection takes the hook too. */
    k->started = true;
    if (pthread_create(&k->thread, NULL, ckpt_main, s) != 0) {
        k->started = false;
        pthread_cond_destroy(&k->cv);
        pthread_mutex_destroy(&k->mu);
    }
}

static void ckpt_stop(struct sq_state *s)
{
    struct sq_ckpt *k = &s->ckpt;

    if (!k->started)
        return;
    pthread_mutex_lock(&k->mu);
    k->stop = true;
    pthread_cond_signal(&k->cv);
    pthread_mutex_unlock(&k->mu);
    pthread_join(k->thread, NULL);
    pthread_cond_destroy(&k->cv);
    pthread_mutex_destroy(&k->mu);
    k->started = false;
}

static void sq_close(void *state)
{
    struct sq_state *s = state;

    if (!s)
        return;
    ckpt_stop(s);
    cu_free(s->path);
    cu_free(s);
}

/* Process-wide settings, made once before SQLite initialises: memory statistics off, since
 * keeping them takes a global mutex on every allocation of every connection. */
static pthread_once_t sq_once = PTHREAD_ONCE_INIT;

static void sq_configure(void)
{
    (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

/* sq_open: checks the file (making it when opts->create) and that a connection works. */
static enum cu_err sq_open(const struct cu_store_opts *opts, void **state, char *err, size_t errlen)
{
    struct sq_state *s = NULL;
    void *conn = NULL;
    struct stat sb;
    enum cu_err rc = CU_E_CONFIG;

    if (!opts->path || !opts->path[0]) {
        snprintf(err, errlen, "sqlite: no database path given");
        goto out;
    }
    pthread_once(&sq_once, sq_configure);
    if (!sqlite3_threadsafe()) {
        snprintf(err, errlen, "%s: SQLite is built without thread support", opts->path);
        goto out;
    }
    rc = CU_E_NOMEM;
    s = cu_calloc(1, sizeof *s);
    if (!s || !(s->path = cu_strdup(opts->path))) {
        snprintf(err, errlen, "%s: out of memory", opts->path);
        goto out;
    }
    s->busy_ms = opts->busy_timeout_ms > INT_MAX ? INT_MAX : (int)opts->busy_timeout_ms;
    s->sync_full = opts->synchronous_full;
    s->create = opts->create;
    if (opts->create) {
        rc = precreate(opts->path, err, errlen);
    } else if (stat(opts->path, &sb) != 0) {
        snprintf(err, errlen, "%s: no such database file", opts->path);
        rc = CU_E_IO;
    } else {
        rc = CU_OK;
    }
    if (rc == CU_OK)
        rc = sq_connect(s, &conn, err, errlen);
    if (rc != CU_OK)
        goto out;
    sq_disconnect(conn);
    ckpt_start(s);
    *state = s;
    s = NULL;
out:
    sq_close(s);
    return rc;
}

static enum cu_err sq_exec_script(void *conn, const char *sql, char *err, size_t errlen)
{
    struct sq_conn *c = conn;
    char *msg = NULL;
    enum cu_err rc = CU_OK;
    int src = sqlite3_exec(c->db, sql, NULL, NULL, &msg);

    if (src != SQLITE_OK) {
        snprintf(err, errlen, "%s", msg ? msg : sqlite3_errstr(src));
        rc = sq_err(c->db, src, "exec_script");
    }
    sqlite3_free(msg);
    return rc;
}

/* run_tx(c, which): steps one of the transaction statements. */
static enum cu_err run_tx(struct sq_conn *c, int which)
{
    enum cu_err rc = CU_OK;
    int src = sqlite3_step(c->tx[which]);

    if (src != SQLITE_DONE)
        rc = sq_err(c->db, src, tx_sql[which]);
    sqlite3_reset(c->tx[which]);
    return rc;
}

static enum cu_err sq_begin(void *conn, enum cu_txn_mode mode)
{
    return run_tx(conn, mode == CU_TXN_WRITE ? TX_BEGIN_WRITE : TX_BEGIN_READ);
}

static enum cu_err sq_commit(void *conn)
{
    return run_tx(conn, TX_COMMIT);
}

static void sq_rollback(void *conn)
{
    struct sq_conn *c = conn;

    /* SQLite rolls back by itself after some errors (SQLITE_FULL, SQLITE_IOERR ...). */
    if (!sqlite3_get_autocommit(c->db))
        (void)run_tx(c, TX_ROLLBACK);
}

static enum cu_err sq_prepare(void *conn, const char *sql, void **out)
{
    struct sq_conn *c = conn;
    sqlite3_stmt *stmt = NULL;
    const char *tail = NULL;
    enum cu_err rc = CU_E_NOMEM;
    char *text = cu_strdup(sql);
    int src;

    if (!text)
        goto out;
    translate(text);
    strip_for_update(text);
    src = sqlite3_prepare_v3(c->db, text, -1, SQLITE_PREPARE_PERSISTENT, &stmt, &tail);
    if (src != SQLITE_OK) {
        rc = sq_err(c->db, src, "prepare");
        goto out;
    }
    CU_ASSERT_MSG(stmt != NULL, "empty SQL");
    while (isspace((unsigned char)*tail))
        tail++;
    CU_ASSERT_MSG(*tail == '\0', "one statement per call; scripts go to migrations");
    *out = stmt;
    rc = CU_OK;
out:
    cu_free(text);
    return rc;
}

static void sq_finalize(void *stmt)
{
    sqlite3_finalize(stmt);
}

static enum cu_err sq_bind(void *stmt, int idx, const struct cu_val *v)
{
    sqlite3_stmt *s = stmt;
    int src = SQLITE_MISUSE;

    switch (v->type) {
    case CU_VAL_NULL:
        src = sqlite3_bind_null(s, idx);
        break;
    case CU_VAL_INT:
        src = sqlite3_bind_int64(s, idx, v->i);
        break;
    case CU_VAL_TEXT:
        src = sqlite3_bind_text64(s, idx, v->n ? v->p : "", v->n, SQLITE_TRANSIENT, SQLITE_UTF8);
        break;
    case CU_VAL_BLOB:
        src = v->n ? sqlite3_bind_blob64(s, idx, v->p, v->n, SQLITE_TRANSIENT)
                   : sqlite3_bind_zeroblob(s, idx, 0);
        break;
    default:
        CU_ASSERT(!"unknown cu_val type");
    }
    return src == SQLITE_OK ? CU_OK : sq_err(sqlite3_db_handle(s), src, "bind");
}

static enum cu_err sq_step(void *stmt, bool *row)
{
    int src = sqlite3_step(stmt);

    *row = src == SQLITE_ROW;
    return src == SQLITE_ROW || src == SQLITE_DONE ? CU_OK
                                                   : sq_err(sqlite3_db_handle(stmt), src, "step");
}

static int64_t sq_col_int(void *stmt, int col)
{
    return sqlite3_column_int64(stmt, col);
}

static const char *sq_col_text(void *stmt, int col, size_t *len)
{
    const char *s = (const char *)sqlite3_column_text(stmt, col);

    *len = (size_t)sqlite3_column_bytes(stmt, col);
    return s;
}

static const void *sq_col_blob(void *stmt, int col, size_t *len)
{
    const void *p = sqlite3_column_blob(stmt, col);

    *len = (size_t)sqlite3_column_bytes(stmt, col);
    return p;
}

static bool sq_col_null(void *stmt, int col)
{
    return sqlite3_column_type(stmt, col) == SQLITE_NULL;
}

static int sq_col_count(void *stmt)
{
    return sqlite3_column_count(stmt);
}

static enum cu_val_type sq_col_type(void *stmt, int col)
{
    switch (sqlite3_column_type(stmt, col)) {
    case SQLITE_INTEGER:
        return CU_VAL_INT;
    case SQLITE_BLOB:
        return CU_VAL_BLOB;
    case SQLITE_NULL:
        return CU_VAL_NULL;
    default:
        return CU_VAL_TEXT; /* text, and reals, which the services never store */
    }
}

static const char *sq_col_name(void *stmt, int col)
{
    return sqlite3_column_name(stmt, col);
}

static void sq_reset(void *stmt)
{
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
}

/* sq_purge: with secure_delete on, deleted content is zeroed in the pages that held it, but
 * the write-ahead log still holds the old pages until a checkpoint copies the log back and
 * TRUNCATE empties it. */
static enum cu_err sq_purge(void *conn)
{
    struct sq_conn *c = conn;
    int logged = 0, moved = 0;
    sqlite3_busy_timeout(c->db, c->busy_ms < PURGE_WAIT_MS ? c->busy_ms : PURGE_WAIT_MS);
    int rc = sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, &logged, &moved);
    sqlite3_busy_timeout(c->db, c->busy_ms);
    if (rc == SQLITE_BUSY)
        return CU_E_BUSY;
    return rc == SQLITE_OK ? CU_OK : sq_err(c->db, rc, "purge");
}

static int64_t sq_changes(void *conn)
{
    struct sq_conn *c = conn;

    return sqlite3_changes64(c->db);
}

static const struct cu_migration *sq_migrations(size_t *n)
{
    *n = cu_sqlite_migrations_count;
    return cu_sqlite_migrations;
}

const struct cu_store_ops cu_store_sqlite_ops = {
    .name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .connect = sq_connect,
    .disconnect = sq_disconnect,
    .exec_script = sq_exec_script,
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .prepare = sq_prepare,
    .finalize = sq_finalize,
    .bind = sq_bind,
    .step = sq_step,
    .col_int = sq_col_int,
    .col_text = sq_col_text,
    .col_blob = sq_col_blob,
    .col_null = sq_col_null,
    .col_count = sq_col_count,
    .col_type = sq_col_type,
    .col_name = sq_col_name,
    .reset = sq_reset,
    .changes = sq_changes,
    .migrations = sq_migrations,
    .purge = sq_purge,
    .schema_migrations_sql = "CREATE TABLE IF NOT EXISTS schema_migrations ("
                             "version INTEGER NOT NULL PRIMARY KEY, "
                             "name TEXT NOT NULL, "
                             "applied_at INTEGER NOT NULL) STRICT",
};
