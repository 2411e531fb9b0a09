/*
 * store.c - the backend-independent half of the store.
 *
 * It is over 800 lines because the pool, the statement cache, transactions, savepoints and
 * the migration runner all work on the connection's private layout, kept in this file alone.
 *
 * A cu_store holds a backend (struct cu_store_ops and its state) and the connections made on
 * it: a bounded pool (cu_store_acquire, for request threads and the committer), and one per
 * thread for the CLI (cu_store_db), found through a pthread key of the store, so several stores
 * can be open in one process. A thread that exits gives its connection back (the key's
 * destructor); cu_store_close disconnects the rest. Each connection caches its prepared statements
 * in an open-addressing table keyed by the address of the SQL text, and keeps a copy of the text to
 * catch callers that pass SQL which is not a string literal. The migration runner lives here
 * too: it is the same for every backend, which only supplies the scripts and the DDL of the
 * schema_migrations table.
 */
#include "store/store.h"

#include <ctype.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/config.h"
#include "base/log.h"
#include "base/text.h"
#include "base/mem.h"

/* Statements cached per connection: the table starts at STMT_SLOTS_MIN slots and doubles
 * while at most half full, up to STMT_MAX statements (far above what the services write, so
 * hitting it means SQL built at run time). */
#define STMT_SLOTS_MIN 32
#define STMT_MAX 1024

struct cu_stmt {
    struct cu_db *db;
    void *impl;      /* the backend's statement */
    const char *key; /* the caller's SQL pointer */
    char *text;      /* a copy of the SQL, to check the key still names it */
    bool active;     /* between cu_db_query and cu_stmt_done */
    bool finished;   /* stepped past the last row: never step again (it would rerun) */
    bool locks;      /* ends with FOR UPDATE: only inside a write transaction */
};

struct cu_db {
    struct cu_store *st;
    void *conn;
    bool in_txn;
    enum cu_txn_mode mode; /* of the open transaction */
    int depth;             /* savepoints open in it */
    bool pooled;           /* taken with cu_store_acquire: cu_store_release gives it back */
    int active;            /* statements not yet done */
    int64_t changes;       /* rows changed by the last cu_db_exec */
    uint64_t txns;         /* transactions begun on it */
    struct cu_stmt **slots;
    size_t nslots; /* a power of two */
    size_t nstmts;
    struct cu_db *next;
};

struct cu_store {
    const struct cu_store_ops *ops;
    void *state;
    char *label; /* the database path, for messages */
    pthread_mutex_t lock;
    struct cu_db *dbs; /* every connection, under lock */
    pthread_key_t key; /* this thread's connection */
    bool has_lock, has_key;
    atomic_long fail_next;
    atomic_int fail_rc; /* what the injected fault returns */
    /* The pool (cu_store_acquire), under lock: idle connections, and how many exist. */
    pthread_cond_t pool_cv;
    bool has_cv;
    struct cu_db *idle;
    unsigned pooled, pool_max;
    unsigned pool_wait_ms;
    struct cu_db *lead;   /* cu_store_lead's own connection (one thread only) */
    struct cu_db *listen; /* cu_store_wait's */
};

static const struct cu_store_ops *const backends[] = {
    &cu_store_sqlite_ops,
#ifdef CU_HAVE_POSTGRES
    &cu_store_postgres_ops,
#endif
};

static const char *const sql_max_version =
    "SELECT COALESCE(MAX(version), 0) FROM schema_migrations";
static const char *const sql_recorded =
    "SELECT version, name FROM schema_migrations ORDER BY version";
static const char *const sql_record =
    "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)";

static const struct cu_store_ops *find_backend(const char *name)
{
    const struct cu_store_ops *ops = NULL;

    if (!name)
        name = "sqlite";
    for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++) {
        if (strcmp(backends[i]->name, name) == 0)
            ops = backends[i];
    }
    return ops;
}

/* cu_store_opts_of(cfg, path, pathlen, o): the options [store] gives. */
enum cu_err cu_store_opts_of(const struct cu_config *cfg, char *path, size_t pathlen,
                             struct cu_store_opts *o)
{
    *o = (struct cu_store_opts){
        .backend = cfg->store.backend,
        .path = path,
        .url = strcmp(cfg->store.url, "env") == 0 ? "" : cfg->store.url,
        .busy_timeout_ms = cfg->store.busy_timeout_ms,
        .synchronous_full = strcmp(cfg->store.synchronous, "full") == 0,
        .pool_connections = cfg->store.connections + 1,
        .create = false,
    };
    return cu_config_path(cfg, cfg->store.path, path, pathlen) == CU_OK ? CU_OK : CU_E_CONFIG;
}

/* cu_store_next_placeholder(p): the next `$N` outside literals, identifiers and comments. */
const char *cu_store_next_placeholder(const char *p)
{
    enum { CODE, QUOTE, IDENT, LINE, BLOCK } m = CODE;

    for (; *p; p++) {
        switch (m) {
        case CODE:
            if (*p == '\'') {
                m = QUOTE;
            } else if (*p == '"') {
                m = IDENT;
            } else if (p[0] == '-' && p[1] == '-') {
                m = LINE;
                p++;
            } else if (p[0] == '/' && p[1] == '*') {
                m = BLOCK;
                p++;
            } else if (*p == '$') {
                CU_ASSERT_MSG(isdigit((unsigned char)p[1]), "placeholders are $1, $2 ...");
                return p;
            } else {
                CU_ASSERT_MSG(*p != '?', "write $N placeholders, not ?");
            }
            break;
        case QUOTE:
            m = *p == '\'' ? CODE : m;
            break;
        case IDENT:
            m = *p == '"' ? CODE : m;
            break;
        case LINE:
            m = *p == '\n' ? CODE : m;
            break;
        case BLOCK:
            if (p[0] == '*' && p[1] == '/') {
                m = CODE;
                p++;
            }
            break;
        }
    }
    return NULL;
}

/* cu_store_has_backend(name): whether this build has the backend called name. */
bool cu_store_has_backend(const char *name)
{
    return name && find_backend(name) != NULL;
}

/* fault_rc(st): what an injected fault returns (never CU_OK: a fault fails). */
static enum cu_err fault_rc(struct cu_store *st)
{
    enum cu_err rc = (enum cu_err)atomic_load(&st->fail_rc);
    return rc == CU_OK ? CU_E_STORE : rc;
}

/* fault_fires(st): counts one statement against cu_store_fail_next; true on the nth. */
static bool fault_fires(struct cu_store *st)
{
    long v = atomic_load(&st->fail_next);

    /* On failure the exchange reloads v; loop until we counted or the counter is off. */
    while (v > 0 && !atomic_compare_exchange_weak(&st->fail_next, &v, v - 1))
        ;
    if (v == 1)
        cu_log(CU_LOG_WARN, "store.fault_injected", CU_LS("backend", st->ops->name),
               CU_LS("error", cu_err_str((enum cu_err)atomic_load(&st->fail_rc))));
    return v == 1;
}

static size_t slot_of(const char *key, size_t nslots)
{
    uint64_t h = (uint64_t)(uintptr_t)key * UINT64_C(0x9E3779B97F4A7C15);

    return (size_t)(h >> 32) & (nslots - 1);
}

static void stmt_free(const struct cu_store_ops *ops, struct cu_stmt *s)
{
    if (!s)
        return;
    ops->finalize(s->impl);
    cu_free(s->text);
    cu_free(s);
}

static void db_free(struct cu_db *db)
{
    const struct cu_store_ops *ops;

    if (!db)
        return;
    ops = db->st->ops;
    cu_db_rollback(db);
    for (size_t i = 0; i < db->nslots; i++)
        stmt_free(ops, db->slots[i]);
    cu_free(db->slots);
    if (db->conn)
        ops->disconnect(db->conn);
    cu_free(db);
}

/* db_release(p): the key's destructor, run when a thread that used the store exits. */
static void db_release(void *p)
{
    struct cu_db *db = p;
    struct cu_store *st = db->st;

    pthread_mutex_lock(&st->lock);
    for (struct cu_db **pp = &st->dbs; *pp; pp = &(*pp)->next) {
        if (*pp == db) {
            *pp = db->next;
            break;
        }
    }
    pthread_mutex_unlock(&st->lock);
    db_free(db);
}

static void store_free(struct cu_store *st)
{
    struct cu_db *db;

    if (!st)
        return;
    if (st->has_key)
        pthread_key_delete(st->key);
    if (st->has_lock)
        pthread_mutex_lock(&st->lock);
    while ((db = st->dbs) != NULL) {
        st->dbs = db->next;
        db_free(db);
    }
    while ((db = st->idle) != NULL) {
        st->idle = db->next;
        db_free(db);
    }
    db_free(st->lead);
    st->lead = NULL;
    db_free(st->listen);
    st->listen = NULL;
    if (st->has_cv)
        pthread_cond_destroy(&st->pool_cv);
    if (st->has_lock) {
        pthread_mutex_unlock(&st->lock);
        pthread_mutex_destroy(&st->lock);
    }
    if (st->state)
        st->ops->close(st->state);
    cu_free(st->label);
    cu_free(st);
}

/* store_new(ops, opts, out): the store object with its lock and key, before the backend
 * opens. */
static enum cu_err store_new(const struct cu_store_ops *ops, const struct cu_store_opts *opts,
                             struct cu_store **out)
{
    enum cu_err rc = CU_E_NOMEM;
    struct cu_store *st = cu_calloc(1, sizeof *st);

    if (!st)
        goto out;
    st->ops = ops;
    atomic_init(&st->fail_next, 0);
    atomic_init(&st->fail_rc, (int)CU_E_STORE);
    st->label =
        ops->describe ? ops->describe(opts) : cu_strdup(opts->path ? opts->path : ops->name);
    if (!st->label)
        goto out;
    if (pthread_mutex_init(&st->lock, NULL) != 0)
        goto out;
    st->has_lock = true;
    if (pthread_key_create(&st->key, db_release) != 0)
        goto out;
    st->has_key = true;
    if (pthread_cond_init(&st->pool_cv, NULL) != 0)
        goto out;
    st->has_cv = true;
    st->pool_max = opts->pool_connections ? opts->pool_connections : CU_STORE_POOL_DEFAULT;
    st->pool_wait_ms = opts->busy_timeout_ms;
    *out = st;
    st = NULL;
    rc = CU_OK;
out:
    store_free(st);
    return rc;
}

/* cu_store_open(opts, out, err): opens the store with the backend opts->backend. Does not
 * migrate. On error err (CU_STORE_ERR_BYTES) names the file and the reason. Caller frees *out
 * with cu_store_close(). */
enum cu_err cu_store_open(const struct cu_store_opts *opts, struct cu_store **out,
                          char err[CU_STORE_ERR_BYTES])
{
    enum cu_err rc;
    struct cu_store *st = NULL;
    const struct cu_store_ops *ops = find_backend(opts->backend);

    *out = NULL;
    err[0] = '\0';
    if (!ops) {
        snprintf(err, CU_STORE_ERR_BYTES, "unknown store backend '%s'", opts->backend);
        rc = CU_E_CONFIG;
        goto out;
    }
    rc = store_new(ops, opts, &st);
    if (rc != CU_OK) {
        snprintf(err, CU_STORE_ERR_BYTES, "%s: cannot open store: %s",
                 opts->path && !ops->describe ? opts->path : ops->name, cu_err_str(rc));
        goto out;
    }
    rc = ops->open(opts, &st->state, err, CU_STORE_ERR_BYTES);
    if (rc != CU_OK)
        goto out;
    *out = st;
    st = NULL;
out:
    store_free(st);
    return rc;
}

/* cu_store_close(st): closes every connection and the store; NULL does nothing. No thread may
 * use the store afterwards. */
void cu_store_close(struct cu_store *st)
{
    store_free(st);
}

/* cu_store_backend(st): the backend name, e.g. "sqlite". */
const char *cu_store_backend(const struct cu_store *st)
{
    return st->ops->name;
}

/* cache_slot(slots, nslots, key): the slot holding key, or the empty slot where it goes. */
static struct cu_stmt **cache_slot(struct cu_stmt **slots, size_t nslots, const char *key)
{
    size_t i = slot_of(key, nslots);

    while (slots[i] && slots[i]->key != key)
        i = (i + 1) & (nslots - 1);
    return &slots[i];
}

/* cache_resize(db, n): moves the statement table to n slots (a power of two, more than the
 * statements held), or makes the first table; on CU_E_NOMEM the table is unchanged. */
static enum cu_err cache_resize(struct cu_db *db, size_t n)
{
    // NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers, not of structs
    struct cu_stmt **slots = cu_calloc(n, sizeof *slots);

    if (slots) {
        for (size_t i = 0; i < db->nslots; i++) {
            if (db->slots[i])
                *cache_slot(slots, n, db->slots[i]->key) = db->slots[i];
        }
        cu_free(db->slots);
        db->slots = slots;
        db->nslots = n;
    }
    return slots ? CU_OK : CU_E_NOMEM;
}

static enum cu_err db_new(struct cu_store *st, struct cu_db **out)
{
    enum cu_err rc = CU_E_NOMEM;
    char err[CU_STORE_ERR_BYTES] = "";
    struct cu_db *db = cu_calloc(1, sizeof *db);

    if (!db)
        goto out;
    db->st = st;
    rc = cache_resize(db, STMT_SLOTS_MIN);
    if (rc != CU_OK)
        goto out;
    rc = st->ops->connect(st->state, &db->conn, err, sizeof err);
    if (rc != CU_OK) {
        cu_log(CU_LOG_ERROR, "store.connect_failed", CU_LS("error", err));
        goto out;
    }
    *out = db;
    db = NULL;
out:
    db_free(db);
    return rc;
}

/* cu_store_db(st, out): this thread's connection to st, made on first use (owned by st). */
enum cu_err cu_store_db(struct cu_store *st, struct cu_db **out)
{
    enum cu_err rc = CU_OK;
    struct cu_db *db = pthread_getspecific(st->key);

    if (db)
        goto out;
    rc = db_new(st, &db);
    if (rc != CU_OK)
        goto out;
    if (pthread_setspecific(st->key, db) != 0) {
        db_free(db);
        db = NULL;
        rc = CU_E_NOMEM;
        goto out;
    }
    pthread_mutex_lock(&st->lock);
    db->next = st->dbs;
    st->dbs = db;
    pthread_mutex_unlock(&st->lock);
out:
    *out = db;
    return rc;
}

/* cu_store_acquire(st, out): a connection from the pool, made when none is idle and fewer than
 * the pool's size exist; otherwise waits for one to be released, up to the busy timeout
 * (CU_E_BUSY). Give it back with cu_store_release. */
enum cu_err cu_store_acquire(struct cu_store *st, struct cu_db **out)
{
    enum cu_err rc = CU_OK;
    struct timespec until;
    struct cu_db *db = NULL;

    *out = NULL;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += st->pool_wait_ms / 1000;
    until.tv_nsec += (long)(st->pool_wait_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&st->lock);
    while (st->idle == NULL && st->pooled >= st->pool_max && rc == CU_OK) {
        if (pthread_cond_timedwait(&st->pool_cv, &st->lock, &until) != 0)
            rc = CU_E_BUSY;
    }
    if (rc == CU_OK && st->idle != NULL) {
        db = st->idle;
        st->idle = db->next;
        db->next = NULL;
    } else if (rc == CU_OK) {
        st->pooled++; /* reserved: the connection is made outside the lock */
    }
    pthread_mutex_unlock(&st->lock);
    if (rc == CU_E_BUSY)
        cu_log(CU_LOG_WARN, "store.pool_exhausted", CU_LI("connections", st->pool_max));
    if (rc == CU_OK && db == NULL) {
        rc = db_new(st, &db);
        if (rc == CU_OK) {
            db->pooled = true;
        } else {
            pthread_mutex_lock(&st->lock);
            st->pooled--;
            pthread_cond_signal(&st->pool_cv);
            pthread_mutex_unlock(&st->lock);
        }
    }
    *out = db;
    return rc;
}

/* cu_store_release(db): gives a connection from cu_store_acquire back to its pool, rolling back
 * a transaction left open; NULL does nothing. */
void cu_store_release(struct cu_db *db)
{
    struct cu_store *st;

    if (db == NULL)
        return;
    CU_ASSERT_MSG(db->pooled, "release of a connection not from the pool");
    CU_ASSERT_MSG(db->active == 0, "release with a statement not done");
    st = db->st;
    cu_db_rollback(db);
    pthread_mutex_lock(&st->lock);
    db->next = st->idle;
    st->idle = db;
    pthread_cond_signal(&st->pool_cv);
    pthread_mutex_unlock(&st->lock);
}

/* ends_for_update(sql): whether sql ends with FOR UPDATE (the contract's row lock). */
static bool ends_for_update(const char *sql)
{
    static const char tail[] = "FOR UPDATE";
    size_t n = strlen(sql);

    /* The same trimming as the SQLite backend's strip_for_update, so what one strips the other
     * polices. */
    while (n > 0 && isspace((unsigned char)sql[n - 1]))
        n--;
    return n >= sizeof tail - 1 && memcmp(sql + n - (sizeof tail - 1), tail, sizeof tail - 1) == 0;
}

/* stmt_prepare(db, sql, slot, out): prepares sql and caches it in the free slot. */
static enum cu_err stmt_prepare(struct cu_db *db, const char *sql, struct cu_stmt **slot,
                                struct cu_stmt **out)
{
    enum cu_err rc = CU_E_NOMEM;
    struct cu_stmt *s = cu_calloc(1, sizeof *s);

    if (!s)
        goto out;
    s->db = db;
    s->key = sql;
    s->locks = ends_for_update(sql);
    s->text = cu_strdup(sql);
    if (!s->text)
        goto out;
    rc = db->st->ops->prepare(db->conn, sql, &s->impl);
    if (rc != CU_OK)
        goto out;
    *slot = s;
    db->nstmts++;
    *out = s;
    s = NULL;
out:
    if (s) {
        cu_free(s->text);
        cu_free(s);
    }
    return rc;
}

/* stmt_get(db, sql, out): the cached statement for the SQL at address sql, prepared on first
 * use. */
static enum cu_err stmt_get(struct cu_db *db, const char *sql, struct cu_stmt **out)
{
    enum cu_err rc = CU_OK;
    struct cu_stmt **slot = cache_slot(db->slots, db->nslots, sql);

    if (*slot) {
        /* The same address with other text: SQL built at run time. */
        CU_ASSERT_MSG(strcmp((*slot)->text, sql) == 0, "store SQL must be a literal");
        *out = *slot;
        goto out;
    }
    if ((db->nstmts + 1) * 2 > db->nslots) {
        if (db->nstmts >= STMT_MAX) {
            cu_log(CU_LOG_ERROR, "store.stmt_cache_full", CU_LI("statements", db->nstmts));
            rc = CU_E_INTERNAL;
            goto out;
        }
        rc = cache_resize(db, db->nslots * 2);
        if (rc != CU_OK)
            goto out;
        slot = cache_slot(db->slots, db->nslots, sql);
    }
    rc = stmt_prepare(db, sql, slot, out);
out:
    return rc;
}

/* run_query(db, sql, params, n, out): cu_db_query without fault injection. */
static enum cu_err run_query(struct cu_db *db, const char *sql, const struct cu_val *params,
                             size_t n, struct cu_stmt **out)
{
    const struct cu_store_ops *ops = db->st->ops;
    struct cu_stmt *s = NULL;
    enum cu_err rc;

    CU_ASSERT(n <= INT_MAX);
    rc = stmt_get(db, sql, &s);
    if (rc != CU_OK)
        goto out;
    CU_ASSERT_MSG(!s->active, "statement run again before cu_stmt_done");
    CU_ASSERT_MSG(!s->locks || (db->in_txn && db->mode == CU_TXN_WRITE),
                  "FOR UPDATE outside a write transaction");
    for (size_t i = 0; i < n && rc == CU_OK; i++)
        rc = ops->bind(s->impl, (int)i + 1, &params[i]);
    if (rc != CU_OK) {
        ops->reset(s->impl);
        goto out;
    }
    s->active = true;
    s->finished = false;
    db->active++;
    *out = s;
out:
    return rc;
}

/* cu_db_begin(db, mode), cu_db_commit(db), cu_db_rollback(db): explicit transactions. A
 * failed commit rolls back. Rollback outside a transaction does nothing. */
enum cu_err cu_db_begin(struct cu_db *db, enum cu_txn_mode mode)
{
    enum cu_err rc;

    CU_ASSERT_MSG(!db->in_txn, "nested transaction");
    rc = db->st->ops->begin(db->conn, mode);
    if (rc == CU_OK) {
        db->in_txn = true;
        db->mode = mode;
        db->depth = 0;
        db->txns++;
    }
    return rc;
}

enum cu_err cu_db_commit(struct cu_db *db)
{
    enum cu_err rc;

    CU_ASSERT_MSG(db->in_txn, "commit outside a transaction");
    CU_ASSERT_MSG(db->active == 0, "commit with a statement not done");
    if (fault_fires(db->st))
        rc = fault_rc(db->st);
    else
        rc = db->st->ops->commit(db->conn);
    if (rc != CU_OK)
        db->st->ops->rollback(db->conn);
    db->in_txn = false;
    return rc;
}

void cu_db_rollback(struct cu_db *db)
{
    if (!db->in_txn)
        return;
    db->st->ops->rollback(db->conn);
    db->in_txn = false;
}

/* The savepoints, by depth: literals, so they go through the statement cache like any SQL. */
static const char *const sql_savepoint[CU_DB_SAVEPOINTS_MAX] = {
    "SAVEPOINT cu_sp1", "SAVEPOINT cu_sp2", "SAVEPOINT cu_sp3", "SAVEPOINT cu_sp4"};
static const char *const sql_release[CU_DB_SAVEPOINTS_MAX] = {
    "RELEASE SAVEPOINT cu_sp1", "RELEASE SAVEPOINT cu_sp2", "RELEASE SAVEPOINT cu_sp3",
    "RELEASE SAVEPOINT cu_sp4"};
static const char *const sql_rollback_to[CU_DB_SAVEPOINTS_MAX] = {
    "ROLLBACK TO SAVEPOINT cu_sp1", "ROLLBACK TO SAVEPOINT cu_sp2", "ROLLBACK TO SAVEPOINT cu_sp3",
    "ROLLBACK TO SAVEPOINT cu_sp4"};

/* sp_exec(db, sql): runs a savepoint statement (no fault injection: the faults a test asks for
 * are the service statements'). */
static enum cu_err sp_exec(struct cu_db *db, const char *sql)
{
    struct cu_stmt *s = NULL;
    bool row = true;
    enum cu_err rc = run_query(db, sql, NULL, 0, &s);

    while (rc == CU_OK && row)
        rc = cu_stmt_next(s, &row);
    cu_stmt_done(s);
    return rc;
}

/* cu_db_savepoint(db): opens a savepoint inside the write transaction (at most
 * CU_DB_SAVEPOINTS_MAX deep). */
enum cu_err cu_db_savepoint(struct cu_db *db)
{
    enum cu_err rc;

    CU_ASSERT_MSG(db->in_txn && db->mode == CU_TXN_WRITE, "savepoint outside a write transaction");
    CU_ASSERT_MSG(db->depth < CU_DB_SAVEPOINTS_MAX, "savepoints nested too deep");
    rc = sp_exec(db, sql_savepoint[db->depth]);
    if (rc == CU_OK)
        db->depth++;
    return rc;
}

/* cu_db_savepoint_release(db): keeps what was done since the innermost savepoint, as part of
 * the enclosing transaction, and closes it. */
enum cu_err cu_db_savepoint_release(struct cu_db *db)
{
    enum cu_err rc;

    CU_ASSERT_MSG(db->in_txn && db->depth > 0, "release without a savepoint");
    rc = sp_exec(db, sql_release[db->depth - 1]);
    if (rc == CU_OK)
        db->depth--;
    return rc;
}

/* cu_db_savepoint_rollback(db): undoes what was done since the innermost savepoint and closes
 * it. An error means the transaction itself is broken: roll it back. */
enum cu_err cu_db_savepoint_rollback(struct cu_db *db)
{
    enum cu_err rc;

    CU_ASSERT_MSG(db->in_txn && db->depth > 0, "rollback without a savepoint");
    rc = sp_exec(db, sql_rollback_to[db->depth - 1]);
    if (rc == CU_OK)
        rc = sp_exec(db, sql_release[db->depth - 1]);
    if (rc == CU_OK)
        db->depth--;
    return rc;
}

/* cu_db_txn_id(db): which transaction of db this is (a count of those begun). */
uint64_t cu_db_txn_id(const struct cu_db *db)
{
    return db->txns;
}

/* cu_db_in_txn(db): whether a transaction is open on db. */
bool cu_db_in_txn(const struct cu_db *db)
{
    return db->in_txn;
}

/* cu_db_exec(db, sql, params, n): runs a statement that returns no rows. CU_E_EXISTS on a
 * uniqueness violation, CU_E_BUSY on a lock timeout, CU_E_STORE otherwise. */
enum cu_err cu_db_exec(struct cu_db *db, const char *sql, const struct cu_val *params, size_t n)
{
    struct cu_stmt *s = NULL;
    bool row = true;
    enum cu_err rc;

    if (fault_fires(db->st)) {
        rc = fault_rc(db->st);
        goto out;
    }
    rc = run_query(db, sql, params, n, &s);
    while (rc == CU_OK && row)
        rc = cu_stmt_next(s, &row);
    if (rc == CU_OK)
        db->changes = db->st->ops->changes(db->conn);
out:
    cu_stmt_done(s);
    return rc;
}

/* cu_db_changes(db): rows changed by the last cu_db_exec. */
enum cu_err cu_db_purge(struct cu_db *db)
{
    CU_ASSERT_MSG(!db->in_txn && db->active == 0, "purge outside a transaction");
    return db->st->ops->purge(db->conn);
}

int64_t cu_db_changes(struct cu_db *db)
{
    return db->changes;
}

/* cu_db_query(db, sql, params, n, out): runs a query; read rows with cu_stmt_next and the
 * column getters, then call cu_stmt_done. *out is owned by db. */
enum cu_err cu_db_query(struct cu_db *db, const char *sql, const struct cu_val *params, size_t n,
                        struct cu_stmt **out)
{
    *out = NULL;
    if (fault_fires(db->st))
        return fault_rc(db->st);
    return run_query(db, sql, params, n, out);
}

/* cu_stmt_next(st, row): advances to the next row; *row false at the end. */
enum cu_err cu_stmt_next(struct cu_stmt *st, bool *row)
{
    enum cu_err rc = CU_OK;

    CU_ASSERT_MSG(st->active, "cu_stmt_next after cu_stmt_done");
    *row = false;
    if (!st->finished)
        rc = st->db->st->ops->step(st->impl, row);
    st->finished = !*row;
    return rc;
}

/* Column getters for the current row, columns numbered from 0. Text and blobs stay valid
 * until the next cu_stmt_next or cu_stmt_done. cu_stmt_text returns "" for NULL. */
int64_t cu_stmt_int(struct cu_stmt *st, int col)
{
    return st->db->st->ops->col_int(st->impl, col);
}

const char *cu_stmt_text(struct cu_stmt *st, int col, size_t *len)
{
    size_t scratch = 0;
    size_t *n = len ? len : &scratch;
    const char *s = st->db->st->ops->col_text(st->impl, col, n);

    if (!s) {
        s = "";
        *n = 0;
    }
    return s;
}

void cu_stmt_text_copy(struct cu_stmt *st, int col, char *out, size_t cap)
{
    size_t n = 0;
    const char *s = cu_stmt_text(st, col, &n);
    cu_text_copy(out, cap, s, n);
}

const void *cu_stmt_blob(struct cu_stmt *st, int col, size_t *len)
{
    size_t scratch = 0;
    size_t *n = len ? len : &scratch;
    const void *p = st->db->st->ops->col_blob(st->impl, col, n);

    if (!p)
        *n = 0;
    return p;
}

bool cu_stmt_null(struct cu_stmt *st, int col)
{
    return st->db->st->ops->col_null(st->impl, col);
}

int cu_stmt_columns(struct cu_stmt *st)
{
    return st->db->st->ops->col_count(st->impl);
}

enum cu_val_type cu_stmt_type(struct cu_stmt *st, int col)
{
    return st->db->st->ops->col_type(st->impl, col);
}

const char *cu_stmt_column_name(struct cu_stmt *st, int col)
{
    const char *n = st->db->st->ops->col_name(st->impl, col);
    return n ? n : "";
}

/* cu_db_prepare_dynamic(db, sql, out): a statement outside the cache (store copy alone). */
enum cu_err cu_db_prepare_dynamic(struct cu_db *db, const char *sql, struct cu_stmt **out)
{
    enum cu_err rc = CU_E_NOMEM;
    struct cu_stmt *s = cu_calloc(1, sizeof *s);

    *out = NULL;
    if (!s || !(s->text = cu_strdup(sql)))
        goto out;
    s->db = db;
    s->key = s->text;
    s->locks = ends_for_update(sql);
    rc = db->st->ops->prepare(db->conn, s->text, &s->impl);
    if (rc == CU_OK) {
        *out = s;
        s = NULL;
    }
out:
    if (s) {
        cu_free(s->text);
        cu_free(s);
    }
    return rc;
}

/* cu_stmt_start(st, params, n): binds and starts a statement of cu_db_prepare_dynamic. */
enum cu_err cu_stmt_start(struct cu_stmt *st, const struct cu_val *params, size_t n)
{
    const struct cu_store_ops *ops = st->db->st->ops;
    enum cu_err rc = CU_OK;

    CU_ASSERT_MSG(!st->active, "statement run again before cu_stmt_done");
    CU_ASSERT(n <= INT_MAX);
    if (fault_fires(st->db->st))
        return fault_rc(st->db->st);
    for (size_t i = 0; i < n && rc == CU_OK; i++)
        rc = ops->bind(st->impl, (int)i + 1, &params[i]);
    if (rc != CU_OK) {
        ops->reset(st->impl);
        return rc;
    }
    st->active = true;
    st->finished = false;
    st->db->active++;
    return CU_OK;
}

/* cu_stmt_free(st): finalizes a statement of cu_db_prepare_dynamic. */
void cu_stmt_free(struct cu_stmt *st)
{
    if (!st)
        return;
    cu_stmt_done(st);
    stmt_free(st->db->st->ops, st);
}

enum cu_err cu_db_copied(struct cu_db *db)
{
    CU_ASSERT_MSG(!db->in_txn && db->active == 0, "copied outside a transaction");
    return db->st->ops->copied ? db->st->ops->copied(db->conn) : CU_OK;
}

/* cu_stmt_done(st): finishes the statement and keeps it prepared for reuse; NULL does
 * nothing. */
void cu_stmt_done(struct cu_stmt *st)
{
    if (!st || !st->active)
        return;
    st->db->st->ops->reset(st->impl);
    st->active = false;
    st->db->active--;
}

/* cu_store_lead(st, key, held): whether this process holds the store-wide lock key. */
enum cu_err cu_store_lead(struct cu_store *st, int64_t key, bool *held)
{
    enum cu_err rc = CU_OK;

    *held = st->ops->lead == NULL; /* one process per database: it leads */
    if (st->ops->lead == NULL)
        return CU_OK;
    if (st->lead == NULL)
        rc = db_new(st, &st->lead);
    if (rc == CU_OK)
        rc = st->ops->lead(st->lead->conn, key, held);
    if (rc != CU_OK)
        *held = false;
    return rc;
}

static bool channel_ok(const char *channel)
{
    size_t n = strlen(channel);
    return n > 0 && n <= 32 && strspn(channel, "abcdefghijklmnopqrstuvwxyz_") == n;
}

/* cu_db_notify(db, channel): wakes the waiters on channel once the transaction commits. */
enum cu_err cu_db_notify(struct cu_db *db, const char *channel)
{
    CU_ASSERT_MSG(channel_ok(channel), "a channel is [a-z_]{1,32}");
    CU_ASSERT_MSG(db->in_txn && db->mode == CU_TXN_WRITE, "notify outside a write transaction");
    return db->st->ops->notify ? db->st->ops->notify(db->conn, channel) : CU_OK;
}

/* cu_store_wait(st, channel, timeout_ms, woke): waits for a commit that notified channel. */
enum cu_err cu_store_wait(struct cu_store *st, const char *channel, unsigned timeout_ms, bool *woke)
{
    enum cu_err rc = CU_OK;

    CU_ASSERT_MSG(channel_ok(channel), "a channel is [a-z_]{1,32}");
    *woke = false;
    if (st->ops->wait == NULL) {
        struct timespec ts = {.tv_sec = timeout_ms / 1000,
                              .tv_nsec = (long)(timeout_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        return CU_OK;
    }
    if (st->listen == NULL)
        rc = db_new(st, &st->listen);
    if (rc == CU_OK)
        rc = st->ops->wait(st->listen->conn, channel, timeout_ms, woke);
    return rc;
}

/* cu_store_fail_next(st, n): fault injection for tests; the nth statement from now run on any
 * connection of st fails with CU_E_STORE (0 turns it off). */
void cu_store_fail_next(struct cu_store *st, long n)
{
    cu_store_fail_next_with(st, n, CU_E_STORE);
}

/* cu_store_fail_next_with(st, n, rc): cu_store_fail_next, failing with rc (CU_E_BUSY,
 * CU_E_STORE_FULL …). */
void cu_store_fail_next_with(struct cu_store *st, long n, enum cu_err rc)
{
    atomic_store(&st->fail_rc, (int)rc);
    atomic_store(&st->fail_next, n > 0 ? n : 0);
}

/* ---- schema migrations ---------------------------------------------------------------- */

/* ensure_table(st, db, err): creates schema_migrations if it does not exist. */
static enum cu_err ensure_table(struct cu_store *st, struct cu_db *db, char *err)
{
    char msg[CU_STORE_ERR_BYTES / 2] = "";
    enum cu_err rc =
        st->ops->exec_script(db->conn, st->ops->schema_migrations_sql, msg, sizeof msg);

    if (rc != CU_OK)
        snprintf(err, CU_STORE_ERR_BYTES, "%s: cannot create schema_migrations: %s", st->label,
                 msg);
    return rc;
}

/* read_version(db, out): the highest version recorded in schema_migrations. */
static enum cu_err read_version(struct cu_db *db, int *out)
{
    struct cu_stmt *s = NULL;
    bool row = false;
    enum cu_err rc = cu_db_query(db, sql_max_version, NULL, 0, &s);

    if (rc == CU_OK)
        rc = cu_stmt_next(s, &row);
    if (rc == CU_OK && row) {
        int64_t v = cu_stmt_int(s, 0);

        *out = v >= 0 && v <= INT_MAX ? (int)v : INT_MAX;
    }
    cu_stmt_done(s);
    return rc;
}

/* check_recorded(st, db, m, cur, err): migrations 1..cur are recorded, each under its name. */
static enum cu_err check_recorded(struct cu_store *st, struct cu_db *db,
                                  const struct cu_migration *m, int cur, char *err)
{
    struct cu_stmt *s = NULL;
    bool row = true;
    int expect = 1;
    enum cu_err rc = cu_db_query(db, sql_recorded, NULL, 0, &s);

    while (rc == CU_OK && (rc = cu_stmt_next(s, &row)) == CU_OK && row) {
        const char *name = cu_stmt_text(s, 1, NULL);

        if (cu_stmt_int(s, 0) != expect || expect > cur) {
            rc = CU_E_CORRUPT;
            break;
        }
        if (strcmp(name, m[expect - 1].name) != 0) {
            snprintf(err, CU_STORE_ERR_BYTES,
                     "%s: migration %d is recorded as '%s' but this custodia knows it as '%s'; "
                     "the database was made by a different build",
                     st->label, expect, name, m[expect - 1].name);
            rc = CU_E_CORRUPT;
            break;
        }
        expect++;
    }
    if (rc == CU_E_CORRUPT && !err[0])
        snprintf(err, CU_STORE_ERR_BYTES, "%s: migration %d is missing from schema_migrations",
                 st->label, expect);
    cu_stmt_done(s);
    return rc;
}

/* apply_one(st, db, mg, err): runs migration mg and records it. */
static enum cu_err apply_one(struct cu_store *st, struct cu_db *db, const struct cu_migration *mg,
                             char *err)
{
    char msg[CU_STORE_ERR_BYTES / 2] = "";
    struct cu_val row[] = {CU_VI(mg->version), CU_VT(mg->name), CU_VI(cu_clock_now_ms())};
    enum cu_err rc = st->ops->exec_script(db->conn, mg->sql, msg, sizeof msg);

    if (rc != CU_OK) {
        snprintf(err, CU_STORE_ERR_BYTES, "migration %s failed: %s", mg->name, msg);
        goto out;
    }
    rc = cu_db_exec(db, sql_record, row, CU_NVALS(row));
    if (rc != CU_OK)
        snprintf(err, CU_STORE_ERR_BYTES, "migration %s failed: cannot record it: %s", mg->name,
                 cu_err_str(rc));
    else
        cu_log(CU_LOG_INFO, "store.migration_applied", CU_LS("name", mg->name));
out:
    return rc;
}

/* migrate_txn(st, db, m, n, from, err): the body of the migration transaction. */
static enum cu_err migrate_txn(struct cu_store *st, struct cu_db *db, const struct cu_migration *m,
                               size_t n, int *from, char *err)
{
    enum cu_err rc = ensure_table(st, db, err);

    if (rc == CU_OK && (rc = read_version(db, from)) != CU_OK)
        snprintf(err, CU_STORE_ERR_BYTES, "%s: cannot read the schema version: %s", st->label,
                 cu_err_str(rc));
    if (rc != CU_OK)
        goto out;
    if ((size_t)*from > n) {
        snprintf(err, CU_STORE_ERR_BYTES,
                 "%s: database schema version %d is newer than this custodia (knows up to %zu); "
                 "use a newer custodia or restore a backup",
                 st->label, *from, n);
        rc = CU_E_SCHEMA_NEWER;
        goto out;
    }
    rc = check_recorded(st, db, m, *from, err);
    for (size_t i = (size_t)*from; i < n && rc == CU_OK; i++)
        rc = apply_one(st, db, &m[i], err);
out:
    return rc;
}

/* cu_store_migrate_with(st, m, n, err): cu_store_migrate with an explicit list (for tests). */
enum cu_err cu_store_migrate_with(struct cu_store *st, const struct cu_migration *m, size_t n,
                                  char err[CU_STORE_ERR_BYTES])
{
    struct cu_db *db = NULL;
    int from = 0;
    enum cu_err rc;

    err[0] = '\0';
    CU_ASSERT(n <= INT_MAX);
    for (size_t i = 0; i < n; i++)
        CU_ASSERT_MSG(m[i].version == (int)i + 1, "migrations numbered 1, 2, 3 ...");
    rc = cu_store_db(st, &db);
    if (rc != CU_OK)
        goto out;
    CU_ASSERT_MSG(!db->in_txn, "migrate inside a transaction");
    rc = cu_db_begin(db, CU_TXN_WRITE);
    if (rc == CU_OK && st->ops->migrate_lock != NULL)
        rc = st->ops->migrate_lock(db->conn);
    if (rc == CU_OK && (rc = migrate_txn(st, db, m, n, &from, err)) == CU_OK)
        rc = cu_db_commit(db);
    cu_db_rollback(db);
    if (rc == CU_OK && (size_t)from < n)
        cu_log(CU_LOG_INFO, "store.migrated", CU_LI("from", from), CU_LI("to", n));
out:
    if (rc != CU_OK && !err[0])
        snprintf(err, CU_STORE_ERR_BYTES, "%s: migration failed: %s", st->label, cu_err_str(rc));
    return rc;
}

/* cu_store_migrate(st, err): applies the backend's pending migrations in one transaction and
 * records each in schema_migrations. If any fails nothing is applied. CU_E_SCHEMA_NEWER when
 * the database records a version this build does not know. */
enum cu_err cu_store_migrate(struct cu_store *st, char err[CU_STORE_ERR_BYTES])
{
    size_t n = 0;
    const struct cu_migration *m = st->ops->migrations(&n);

    return cu_store_migrate_with(st, m, n, err);
}

/* cu_store_schema_version(st, out): the highest migration applied (0 for a new database). */
enum cu_err cu_store_schema_version(struct cu_store *st, int *out)
{
    char err[CU_STORE_ERR_BYTES] = "";
    struct cu_db *db = NULL;
    enum cu_err rc = cu_store_db(st, &db);

    *out = 0;
    if (rc == CU_OK)
        rc = ensure_table(st, db, err);
    if (rc == CU_OK)
        rc = read_version(db, out);
    return rc;
}

/* cu_store_check(st, err): whether the store answers and its schema is current; for the
 * health endpoint. */
enum cu_err cu_store_check(struct cu_store *st, char err[CU_STORE_ERR_BYTES])
{
    struct cu_db *db = NULL;
    size_t known = 0;
    int v = 0;
    enum cu_err rc = cu_store_db(st, &db);

    err[0] = '\0';
    (void)st->ops->migrations(&known);
    /* One read-only query: it proves the store answers and gives the schema version (health
     * must never write, so a missing table means "not migrated"). */
    if (rc == CU_OK && read_version(db, &v) != CU_OK) {
        snprintf(err, CU_STORE_ERR_BYTES, "%s: no schema_migrations table; it is not migrated",
                 st->label);
        return CU_E_STORE;
    }
    if (rc != CU_OK) {
        snprintf(err, CU_STORE_ERR_BYTES, "%s: store does not answer: %s", st->label,
                 cu_err_str(rc));
    } else if ((size_t)v > known) {
        snprintf(err, CU_STORE_ERR_BYTES,
                 "%s: database schema version %d is newer than this custodia (knows up to %zu)",
                 st->label, v, known);
        rc = CU_E_SCHEMA_NEWER;
    } else if ((size_t)v < known) {
        snprintf(err, CU_STORE_ERR_BYTES,
                 "%s: database schema version %d, this custodia needs %zu; it is not migrated",
                 st->label, v, known);
        rc = CU_E_STORE;
    }
    return rc;
}
