/*
 * store.h - the storage interface every service uses.
 *
 * A store is opened once per process; each thread gets its own connection (cu_store_db) and
 * runs prepared statements on it inside explicit transactions. Services write portable SQL:
 * `$1`, `$2` … placeholders, INSERT … ON CONFLICT, RETURNING, typed columns; no rowid, no
 * INSERT OR REPLACE, no backend-specific functions. Each backend (struct cu_store_ops) keeps its
 * own migration files and translates placeholders as it needs. Statements are prepared once
 * per connection and cached by the address of their SQL text, so pass string literals.
 */
#ifndef CU_STORE_STORE_H
#define CU_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "base/err.h"

struct cu_store; /* an open store, shared by all threads */
struct cu_db;    /* one connection, used by one thread */
struct cu_stmt;  /* a prepared statement running on a cu_db */

/* Bytes for an error message from the store. */
#define CU_STORE_ERR_BYTES 512

struct cu_store_opts {
    const char *backend;       /* "sqlite" or "postgres" */
    const char *path;          /* sqlite: the database file */
    const char *url;           /* postgres: the connection string ("": the PG* variables) */
    unsigned busy_timeout_ms;  /* how long a writer waits for a lock */
    bool synchronous_full;     /* sqlite: synchronous=FULL (else NORMAL) */
    bool create;               /* create the database if it does not exist */
    unsigned pool_connections; /* cu_store_acquire's pool; 0: CU_STORE_POOL_DEFAULT */
};

/* The pool's size when the options leave it 0. */
#define CU_STORE_POOL_DEFAULT 8

/* How deep savepoints nest in one transaction. */
#define CU_DB_SAVEPOINTS_MAX 4

enum cu_txn_mode {
    CU_TXN_READ,  /* a consistent snapshot for reads */
    CU_TXN_WRITE, /* takes the write lock at BEGIN, so it cannot fail to upgrade later */
};

enum cu_val_type { CU_VAL_NULL, CU_VAL_INT, CU_VAL_TEXT, CU_VAL_BLOB };

/* A bound parameter. Text and blobs are borrowed for the duration of the call. */
struct cu_val {
    enum cu_val_type type;
    int64_t i;
    const void *p;
    size_t n;
};

#define CU_VNULL ((struct cu_val){.type = CU_VAL_NULL})
#define CU_VI(x) ((struct cu_val){.type = CU_VAL_INT, .i = (int64_t)(x)})
#define CU_VT(s) ((struct cu_val){.type = CU_VAL_TEXT, .p = (s), .n = strlen(s)})
#define CU_VTN(s, len) ((struct cu_val){.type = CU_VAL_TEXT, .p = (s), .n = (len)})
#define CU_VB(b, len) ((struct cu_val){.type = CU_VAL_BLOB, .p = (b), .n = (len)})
#define CU_NVALS(a) (sizeof(a) / sizeof((a)[0]))

/* A migration: a numbered script applied once, in order. */
struct cu_migration {
    int version;      /* 1, 2, 3 … with no gaps */
    const char *name; /* e.g. "0001_init" */
    const char *sql;  /* one or more statements */
};

/* The backend table: one per database engine, like curl's TLS backends. The generic layer
 * finalizes every statement it prepared on a connection before it disconnects it. */
struct cu_store_ops {
    const char *name;
    /* the store's label in messages (allocated), or NULL for opts->path; never a secret */
    char *(*describe)(const struct cu_store_opts *opts);
    enum cu_err (*open)(const struct cu_store_opts *opts, void **state, char *err, size_t errlen);
    void (*close)(void *state);
    enum cu_err (*connect)(void *state, void **conn, char *err, size_t errlen);
    void (*disconnect)(void *conn);
    enum cu_err (*exec_script)(void *conn, const char *sql, char *err, size_t errlen);
    enum cu_err (*begin)(void *conn, enum cu_txn_mode mode);
    enum cu_err (*commit)(void *conn);
    void (*rollback)(void *conn);
    enum cu_err (*prepare)(void *conn, const char *sql, void **stmt);
    void (*finalize)(void *stmt);
    enum cu_err (*bind)(void *stmt, int idx, const struct cu_val *v);
    enum cu_err (*step)(void *stmt, bool *row);
    int64_t (*col_int)(void *stmt, int col);
    const char *(*col_text)(void *stmt, int col, size_t *len);
    const void *(*col_blob)(void *stmt, int col, size_t *len);
    bool (*col_null)(void *stmt, int col);
    int (*col_count)(void *stmt);
    enum cu_val_type (*col_type)(void *stmt, int col);
    const char *(*col_name)(void *stmt, int col);
    void (*reset)(void *stmt);
    int64_t (*changes)(void *conn);
    const struct cu_migration *(*migrations)(size_t *n);
    const char *schema_migrations_sql; /* CREATE TABLE IF NOT EXISTS schema_migrations (…) */
    enum cu_err (*purge)(void *conn);  /* see cu_db_purge */
    /* see cu_store_lead; NULL: one process per database, which always leads */
    enum cu_err (*lead)(void *conn, int64_t key, bool *held);
    /* see cu_db_notify and cu_store_wait; NULL: one process, nobody else to wake */
    enum cu_err (*notify)(void *conn, const char *channel);
    enum cu_err (*wait)(void *conn, const char *channel, unsigned timeout_ms, bool *woke);
    /* after rows were copied in with their keys (custodia store copy): the keys the database
     * makes start after the largest copied; NULL: nothing to do */
    enum cu_err (*copied)(void *conn);
    /* NULL, or run first in the migration's transaction: several processes starting at once
     * migrate one after the other (PostgreSQL: a transaction advisory lock) */
    enum cu_err (*migrate_lock)(void *conn);
};

/* The SQLite backend (sqlite.c). */
extern const struct cu_store_ops cu_store_sqlite_ops;

#ifdef CU_HAVE_POSTGRES
/* The PostgreSQL backend (postgres.c), in builds with -Dpostgres enabled. */
extern const struct cu_store_ops cu_store_postgres_ops;
#endif

struct cu_config;

/* cu_store_opts_of(cfg, path, pathlen, o): the options [store] gives: backend, the SQLite file
 * (resolved against the data directory into path), the PostgreSQL connection string ("" for
 * env), busy timeout, synchronous mode, and a pool of [store] connections plus the
 * committer's own. create is false. CU_E_CONFIG when the path does not fit. */
CU_WUR enum cu_err cu_store_opts_of(const struct cu_config *cfg, char *path, size_t pathlen,
                                    struct cu_store_opts *o);

/* cu_store_next_placeholder(p): the next `$N` placeholder of the SQL text at p, outside
 * string literals, quoted identifiers and comments, or NULL at its end; for the backends,
 * which rewrite or count them. Aborts on `?` or a `$` not followed by a digit: service SQL is
 * written by us, so either is a bug. */
const char *cu_store_next_placeholder(const char *p);

/* cu_store_has_backend(name): whether this build has the backend called name. */
bool cu_store_has_backend(const char *name);

/* cu_store_open(opts, out, err): opens the store with the backend opts->backend. Does not
 * migrate. On error err (CU_STORE_ERR_BYTES) names the file and the reason. Caller frees *out
 * with cu_store_close(). */
CU_WUR enum cu_err cu_store_open(const struct cu_store_opts *opts, struct cu_store **out,
                                 char err[CU_STORE_ERR_BYTES]);

/* cu_store_close(st): closes every connection and the store; NULL does nothing. No thread may
 * use the store afterwards. */
void cu_store_close(struct cu_store *st);

/* cu_store_backend(st): the backend name, e.g. "sqlite". */
const char *cu_store_backend(const struct cu_store *st);

/* cu_store_db(st, out): this thread's connection to st, made on first use (owned by st). */
CU_WUR enum cu_err cu_store_db(struct cu_store *st, struct cu_db **out);

/* cu_store_migrate(st, err): applies the backend's pending migrations in one transaction and
 * records each in schema_migrations. If any fails nothing is applied. CU_E_SCHEMA_NEWER when
 * the database records a version this build does not know. */
CU_WUR enum cu_err cu_store_migrate(struct cu_store *st, char err[CU_STORE_ERR_BYTES]);

/* cu_store_migrate_with(st, m, n, err): cu_store_migrate with an explicit list (for tests). */
CU_WUR enum cu_err cu_store_migrate_with(struct cu_store *st, const struct cu_migration *m,
                                         size_t n, char err[CU_STORE_ERR_BYTES]);

/* cu_store_schema_version(st, out): the highest migration applied (0 for a new database). */
CU_WUR enum cu_err cu_store_schema_version(struct cu_store *st, int *out);

/* cu_store_check(st, err): whether the store answers and its schema is current; for the
 * health endpoint. */
CU_WUR enum cu_err cu_store_check(struct cu_store *st, char err[CU_STORE_ERR_BYTES]);

/* cu_store_acquire(st, out): a connection from the pool, made when none is idle and fewer than
 * the pool's size exist; otherwise waits for one to be released, up to the busy timeout
 * (CU_E_BUSY). Give it back with cu_store_release. */
CU_WUR enum cu_err cu_store_acquire(struct cu_store *st, struct cu_db **out);

/* cu_store_release(db): gives a connection from cu_store_acquire back to its pool, rolling back
 * a transaction left open; NULL does nothing. */
void cu_store_release(struct cu_db *db);

/* cu_db_savepoint(db): opens a savepoint inside the write transaction (at most
 * CU_DB_SAVEPOINTS_MAX deep). */
CU_WUR enum cu_err cu_db_savepoint(struct cu_db *db);

/* cu_db_savepoint_release(db): keeps what was done since the innermost savepoint, as part of
 * the enclosing transaction, and closes it. */
CU_WUR enum cu_err cu_db_savepoint_release(struct cu_db *db);

/* cu_db_savepoint_rollback(db): undoes what was done since the innermost savepoint and closes
 * it. An error means the transaction itself is broken: roll it back. */
CU_WUR enum cu_err cu_db_savepoint_rollback(struct cu_db *db);

/* cu_db_begin(db, mode), cu_db_commit(db), cu_db_rollback(db): explicit transactions. A
 * failed commit rolls back. Rollback outside a transaction does nothing. */
CU_WUR enum cu_err cu_db_begin(struct cu_db *db, enum cu_txn_mode mode);
CU_WUR enum cu_err cu_db_commit(struct cu_db *db);
void cu_db_rollback(struct cu_db *db);

/* cu_db_txn_id(db): which transaction of db is open (a count of those begun on it), so that
 * what is done once a transaction (a notification) is not done again. */
uint64_t cu_db_txn_id(const struct cu_db *db);

/* cu_db_in_txn(db): whether a transaction is open on db. */
bool cu_db_in_txn(const struct cu_db *db);

/* cu_db_exec(db, sql, params, n): runs a statement that returns no rows. CU_E_EXISTS on a
 * uniqueness violation, CU_E_BUSY on a lock timeout, CU_E_STORE otherwise. */
CU_WUR enum cu_err cu_db_exec(struct cu_db *db, const char *sql, const struct cu_val *params,
                              size_t n);

/* cu_db_changes(db): rows changed by the last cu_db_exec. */
int64_t cu_db_changes(struct cu_db *db);

/* cu_db_query(db, sql, params, n, out): runs a query; read rows with cu_stmt_next and the
 * column getters, then call cu_stmt_done. *out is owned by db. */
CU_WUR enum cu_err cu_db_query(struct cu_db *db, const char *sql, const struct cu_val *params,
                               size_t n, struct cu_stmt **out);

/* cu_stmt_next(st, row): advances to the next row; *row false at the end. */
CU_WUR enum cu_err cu_stmt_next(struct cu_stmt *st, bool *row);

/* Column getters for the current row, columns numbered from 0. Text and blobs stay valid
 * until the next cu_stmt_next or cu_stmt_done. cu_stmt_text returns "" for NULL. */
int64_t cu_stmt_int(struct cu_stmt *st, int col);
const char *cu_stmt_text(struct cu_stmt *st, int col, size_t *len);
const void *cu_stmt_blob(struct cu_stmt *st, int col, size_t *len);
bool cu_stmt_null(struct cu_stmt *st, int col);

/* cu_stmt_text_copy(st, col, out, cap): the text of a column ("" for NULL), cut to cap - 1
 * bytes, as a string in out (cap > 0). */
void cu_stmt_text_copy(struct cu_stmt *st, int col, char *out, size_t cap);

/* cu_stmt_columns(st): the number of columns of st's rows. cu_stmt_type(st, col): the type of
 * a column's value in the current row. For tools that print what they do not know (the tests'
 * query helper). */
int cu_stmt_columns(struct cu_stmt *st);
enum cu_val_type cu_stmt_type(struct cu_stmt *st, int col);

/* cu_stmt_column_name(st, col): the name of a column of st's rows (valid while st runs). */
const char *cu_stmt_column_name(struct cu_stmt *st, int col);

/* Statements whose text is made at run time, outside the cache: for `custodia store copy`
 * alone, whose SQL names the schema's own tables and columns (never anything from input).
 * cu_db_prepare_dynamic(db, sql, out) prepares one (the text is copied); cu_stmt_start(st,
 * params, n) runs it (then cu_stmt_next and cu_stmt_done, as after cu_db_query, as often as
 * wanted); cu_stmt_free(st) finalizes it, done or not, before its connection closes. */
CU_WUR enum cu_err cu_db_prepare_dynamic(struct cu_db *db, const char *sql, struct cu_stmt **out);
CU_WUR enum cu_err cu_stmt_start(struct cu_stmt *st, const struct cu_val *params, size_t n);
void cu_stmt_free(struct cu_stmt *st);

/* cu_db_copied(db): after rows were copied in with their own keys, outside a transaction: the
 * keys the database makes (identity columns) start after the largest copied. */
CU_WUR enum cu_err cu_db_copied(struct cu_db *db);

/* cu_stmt_done(st): finishes the statement and keeps it prepared for reuse; NULL does
 * nothing. */
void cu_stmt_done(struct cu_stmt *st);

/* cu_db_purge(db): makes data deleted by committed transactions unrecoverable from the
 * store's own files as far as the backend can (SQLite: secure_delete is always on, and this
 * checkpoints the write-ahead log into the database and truncates it). Outside a transaction;
 * for erasure. CU_E_BUSY when readers keep the log from being emptied (SQLite: after waiting
 * at most 250 ms, as the purge holds writers back meanwhile; try again later). */
CU_WUR enum cu_err cu_db_purge(struct cu_db *db);

/* cu_store_lead(st, key, held): whether this process holds the store-wide lock named by key,
 * taken when free: one holder among every process on the database, for the work that must run
 * on one node at a time (docs/internals/store.md, "Leading"). Call it again before each round
 * of that work: a holder whose connection died has lost the lock (another process may hold it
 * now), and says so. PostgreSQL: a session advisory lock on a connection of the store's own,
 * released when the process or that connection dies. SQLite: always held. One thread only. */
CU_WUR enum cu_err cu_store_lead(struct cu_store *st, int64_t key, bool *held);

/* cu_db_notify(db, channel): inside a write transaction, wakes every process waiting on
 * channel (cu_store_wait) once the transaction commits; nothing if it rolls back. channel is
 * [a-z_]{1,32}. SQLite: nothing (one process). */
CU_WUR enum cu_err cu_db_notify(struct cu_db *db, const char *channel);

/* cu_store_wait(st, channel, timeout_ms, woke): waits up to timeout_ms for a commit that
 * notified channel (on a connection of the store's own; the first call starts listening, so
 * notifications before it are not seen). *woke: whether one came. SQLite: sleeps timeout_ms.
 * One thread only. */
CU_WUR enum cu_err cu_store_wait(struct cu_store *st, const char *channel, unsigned timeout_ms,
                                 bool *woke);

/* cu_store_fail_next(st, n): fault injection for tests; the nth statement from now run on any
 * connection of st fails with CU_E_STORE (0 turns it off). */
void cu_store_fail_next(struct cu_store *st, long n);

/* cu_store_fail_next_with(st, n, rc): cu_store_fail_next, failing with rc (CU_E_BUSY,
 * CU_E_STORE_FULL …). */
void cu_store_fail_next_with(struct cu_store *st, long n, enum cu_err rc);

#endif
