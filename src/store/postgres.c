/*
 * postgres.c - the PostgreSQL backend of the store (struct cu_store_ops cu_store_postgres_ops).
 *
 * It keeps the contract of docs/internals/store.md on libpq:
 * - A connection is made from [store] url (a postgres:// URL or key=value pairs; empty: the
 *   standard PG* variables and service file), with a 10 s connect timeout unless the string
 *   sets one. Each session sets lock_timeout to the store's busy timeout, and turns
 *   synchronous_commit back on if the server's default had it off: a commit is durable when it
 *   returns.
 * - Statements are prepared on the server (named cuN, per connection) at their first run,
 *   with the types of the values first bound to them (integers bigint, text text, blobs bytea;
 *   a NULL leaves its type to the server). Results come in text form: integers are parsed,
 *   bytea is decoded from hex.
 * - Every statement's rows are read whole (PQexecPrepared), so a service may run another
 *   statement while it reads the rows of the first, as it can on SQLite. Scans that may be
 *   long read in pages (LIMIT) for that reason.
 * - Errors map by SQLSTATE: unique violations to CU_E_EXISTS; serialisation failures,
 *   deadlocks and lock timeouts to CU_E_BUSY (the committer runs the unit again); a full disk
 *   to CU_E_STORE_FULL; a value over a limit to CU_E_TOO_LARGE; the rest to CU_E_STORE. The
 *   log names the SQLSTATE, the constraint, table and column, and the server's message except
 *   for data exceptions (class 22), whose message may quote a value.
 * - A connection the server dropped is made again at the next transaction's BEGIN; its
 *   statements are prepared again (a generation count tells which).
 */
#include "store/store.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "base/log.h"
#include "base/mem.h"

extern const struct cu_migration cu_postgres_migrations[];
extern const size_t cu_postgres_migrations_count;

/* PostgreSQL's type ids (pg_type.h, stable across versions). */
#define OID_BOOL 16
#define OID_BYTEA 17
#define OID_INT8 20
#define OID_INT2 21
#define OID_INT4 23
#define OID_TEXT 25
#define OID_OID 26
#define OID_NUMERIC 1700

/* The oldest server this backend runs on: identity columns (10), EXECUTE FUNCTION (11). */
#define PG_MIN_VERSION 110000

/* Bytes of a formatted 64-bit integer with its sign and NUL. */
#define INT_TEXT_BYTES 24

struct pg_state {
    char *conninfo;
    int busy_ms;
};

struct pg_conn {
    PGconn *pc;
    const struct pg_state *s;
    unsigned gen;     /* bumped at each new session: statements prepared before are gone */
    unsigned next_id; /* names of prepared statements */
    int64_t changes;  /* rows the last statement changed */
    bool leading;     /* this session holds cu_store_lead's advisory lock lead_key */
    bool listening;   /* this session has run LISTEN (cu_store_wait) */
    bool in_txn;      /* between a BEGIN that succeeded and its COMMIT or ROLLBACK: a session
                         lost meanwhile is never made again before the transaction ends, so
                         nothing after the loss runs outside it */
    int64_t lead_key;
    char xid[24]; /* the open write transaction's id (txid_current), asked after a lost COMMIT */
};

/* One bound parameter: its value kept until the statement runs. */
struct pg_param {
    enum cu_val_type type;
    char *buf; /* text (NUL-terminated), blob bytes, or the integer's text */
    size_t len, cap;
};

struct pg_stmt {
    struct pg_conn *c;
    char *sql;
    char name[16];
    bool utility; /* SAVEPOINT, RELEASE, ROLLBACK TO: run as simple queries */
    unsigned gen; /* the session it is prepared in (0: not prepared) */
    int nparams;  /* the highest $N in the text */
    Oid *types;   /* the server's type of each parameter, once prepared */
    struct pg_param *params;
    const char **values; /* for PQexecPrepared */
    int *lengths, *formats;
    PGresult *res;           /* the rows of the current run */
    int row;                 /* the current row, -1 before the first */
    unsigned char **decoded; /* bytea values of the current row, decoded on demand */
    size_t *decoded_len;
    int ndecoded;
};

/* pg_redact(conninfo, buf, n): a description of a connection string for messages: database,
 * host and port, never the password or anything else. */
static void pg_redact(const char *conninfo, char *buf, size_t n)
{
    char *msg = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo ? conninfo : "", &msg);
    const char *db = NULL, *host = NULL, *port = NULL;

    if (opts) {
        for (PQconninfoOption *o = opts; o->keyword; o++) {
            if (!o->val || !o->val[0])
                continue;
            if (strcmp(o->keyword, "dbname") == 0)
                db = o->val;
            else if (strcmp(o->keyword, "host") == 0 ||
                     (!host && strcmp(o->keyword, "hostaddr") == 0))
                host = o->val;
            else if (strcmp(o->keyword, "port") == 0)
                port = o->val;
        }
    }
    if (!db)
        db = getenv("PGDATABASE");
    if (!host)
        host = getenv("PGHOST");
    if (!port)
        port = getenv("PGPORT");
    snprintf(buf, n, "postgres database '%s' on %s%s%s", db ? db : "(default)",
             host ? host : "(default host)", port ? ":" : "", port ? port : "");
    PQconninfoFree(opts);
    PQfreemem(msg);
}

/* pg_describe(opts): the store's label for messages (cu_store_ops.describe). */
static char *pg_describe(const struct cu_store_opts *opts)
{
    char buf[256];

    pg_redact(opts->url, buf, sizeof buf);
    return cu_strdup(buf);
}

/* is_busy(state): SQLSTATEs after which the unit may run again. */
static bool is_busy(const char *state)
{
    return strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 ||
           strcmp(state, "55P03") == 0 || strcmp(state, "53300") == 0;
}

/* pg_err(c, res, op): maps a failed result (or a connection failure when res is NULL) to a
 * cu_err and logs it. */
static enum cu_err pg_err(struct pg_conn *c, const PGresult *res, const char *op)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *cons = res ? PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME) : NULL;
    const char *table = res ? PQresultErrorField(res, PG_DIAG_TABLE_NAME) : NULL;
    const char *column = res ? PQresultErrorField(res, PG_DIAG_COLUMN_NAME) : NULL;
    enum cu_log_level level = CU_LOG_WARN;
    enum cu_err e = CU_E_STORE;

    if (!state)
        state = "";
    if (strcmp(state, "23505") == 0) {
        e = CU_E_EXISTS;
        level = CU_LOG_INFO; /* an expected outcome the caller handles */
    } else if (is_busy(state)) {
        e = CU_E_BUSY;
    } else if (strcmp(state, "53100") == 0) {
        e = CU_E_STORE_FULL;
    } else if (strncmp(state, "54", 2) == 0 || strcmp(state, "22001") == 0) {
        e = CU_E_TOO_LARGE;
    }
    /* A data exception's message may quote the value (invalid input syntax for type ...). */
    if (strncmp(state, "22", 2) == 0)
        msg = "a data exception (the value is not logged)";
    char first[200];
    if (!msg || !res) {
        /* libpq's own (a lost connection): its first line */
        const char *m = c->pc ? PQerrorMessage(c->pc) : "no connection";
        snprintf(first, sizeof first, "%.*s", (int)strcspn(m, "\n"), m);
        msg = first;
    }
    cu_log(level, "store.postgres_error", CU_LS("op", op), CU_LS("sqlstate", state),
           CU_LS("error", msg ? msg : "unknown"), CU_LS("constraint", cons ? cons : ""),
           CU_LS("table", table ? table : ""), CU_LS("column", column ? column : ""));
    return e;
}

/* notice_cb: the server's notices ("relation already exists, skipping" ...) would go to
 * stderr, which is the JSON log: they are dropped. */
static void notice_cb(void *arg, const PGresult *res)
{
    (void)arg;
    (void)res;
}

/* simple(c, sql, op): runs a statement without parameters or rows. */
static enum cu_err simple(struct pg_conn *c, const char *sql, const char *op)
{
    PGresult *res = PQexec(c->pc, sql);
    enum cu_err rc = CU_OK;

    if (!res || PQresultStatus(res) != PGRES_COMMAND_OK)
        rc = pg_err(c, res, op);
    PQclear(res);
    return rc;
}

/* session(c, err, errlen): the settings of a new session. */
static enum cu_err session(struct pg_conn *c, char *err, size_t errlen)
{
    char sql[96];
    PGresult *res = NULL;
    enum cu_err rc = CU_E_STORE;

    PQsetNoticeReceiver(c->pc, notice_cb, NULL);
    if (PQserverVersion(c->pc) < PG_MIN_VERSION) {
        snprintf(err, errlen, "PostgreSQL %d is too old: custodia needs 11 or newer",
                 PQserverVersion(c->pc) / 10000);
        rc = CU_E_CONFIG;
        goto out;
    }
    if (PQsetClientEncoding(c->pc, "UTF8") != 0) {
        snprintf(err, errlen, "cannot set the client encoding to UTF8");
        goto out;
    }
    /* 0 would be no timeout at all in PostgreSQL; here it means not to wait */
    snprintf(sql, sizeof sql, "SET lock_timeout = %d", c->s->busy_ms > 0 ? c->s->busy_ms : 1);
    if (simple(c, sql, "session") != CU_OK) {
        snprintf(err, errlen, "cannot set lock_timeout");
        goto out;
    }
    res = PQexec(c->pc, "SELECT current_setting('synchronous_commit')");
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        snprintf(err, errlen, "cannot read synchronous_commit");
        goto out;
    }
    /* A commit must be durable when it returns: off would acknowledge what a crash loses. */
    if (strcmp(PQgetvalue(res, 0, 0), "off") == 0 &&
        simple(c, "SET synchronous_commit = on", "session") != CU_OK) {
        snprintf(err, errlen, "cannot turn synchronous_commit on");
        goto out;
    }
    c->gen++;
    c->leading = false; /* a new session holds no lock, and listens to nothing */
    c->listening = false;
    rc = CU_OK;
out:
    PQclear(res);
    return rc;
}

/* connect_pc(s, err, errlen): a new libpq connection, or NULL with err set. */
static PGconn *connect_pc(const struct pg_state *s, char *err, size_t errlen)
{
    /* Later keywords override earlier ones, and dbname expands the string: so the string's own
     * connect_timeout and application_name win over these defaults. */
    const char *const keys[] = {"connect_timeout", "fallback_application_name", "dbname", NULL};
    const char *const vals[] = {"10", "custodia", s->conninfo, NULL};
    PGconn *pc = PQconnectdbParams(keys, vals, 1);

    if (!pc) {
        snprintf(err, errlen, "postgres: out of memory");
    } else if (PQstatus(pc) != CONNECTION_OK) {
        char where[160];
        const char *m = PQerrorMessage(pc);
        size_t n = strcspn(m, "\n");

        pg_redact(s->conninfo, where, sizeof where);
        snprintf(err, errlen, "%s: cannot connect: %.*s", where, (int)(n > 300 ? 300 : n), m);
        PQfinish(pc);
        pc = NULL;
    }
    return pc;
}

static void pg_disconnect(void *conn)
{
    struct pg_conn *c = conn;

    if (!c)
        return;
    PQfinish(c->pc);
    cu_free(c);
}

static enum cu_err pg_connect(void *state, void **conn, char *err, size_t errlen)
{
    const struct pg_state *s = state;
    struct pg_conn *c = cu_calloc(1, sizeof *c);
    enum cu_err rc = CU_E_NOMEM;

    if (!c) {
        snprintf(err, errlen, "postgres: out of memory");
        goto out;
    }
    c->s = s;
    rc = CU_E_STORE;
    c->pc = connect_pc(s, err, errlen);
    if (!c->pc)
        goto out;
    rc = session(c, err, errlen);
    if (rc != CU_OK)
        goto out;
    *conn = c;
    c = NULL;
out:
    pg_disconnect(c);
    return rc;
}

/* revive(c): makes a dropped connection again (statements are prepared again in the new
 * session). */
static enum cu_err revive(struct pg_conn *c)
{
    char err[CU_STORE_ERR_BYTES] = "";

    if (c->pc && PQstatus(c->pc) == CONNECTION_OK)
        return CU_OK;
    if (c->in_txn)
        return CU_E_STORE; /* the transaction is gone with its session: it must end first */
    if (c->pc) {
        PQreset(c->pc);
    } else {
        c->pc = connect_pc(c->s, err, sizeof err);
    }
    if (!c->pc || PQstatus(c->pc) != CONNECTION_OK) {
        cu_log(CU_LOG_WARN, "store.postgres_unreachable", CU_LS("error", "cannot reconnect"));
        return CU_E_STORE;
    }
    if (session(c, err, sizeof err) != CU_OK) {
        cu_log(CU_LOG_WARN, "store.postgres_session_failed", CU_LS("error", err));
        PQfinish(c->pc);
        c->pc = NULL; /* the next use connects afresh */
        return CU_E_STORE;
    }
    cu_log(CU_LOG_INFO, "store.postgres_reconnected", CU_LI("session", c->gen));
    return CU_OK;
}

static void pg_close(void *state)
{
    struct pg_state *s = state;

    if (!s)
        return;
    cu_free(s->conninfo);
    cu_free(s);
}

/* pg_open: checks that a connection works. */
static enum cu_err pg_open(const struct cu_store_opts *opts, void **state, char *err, size_t errlen)
{
    struct pg_state *s = cu_calloc(1, sizeof *s);
    char *msg = NULL;
    PQconninfoOption *parsed = NULL;
    void *conn = NULL;
    enum cu_err rc = CU_E_NOMEM;

    if (!s || !(s->conninfo = cu_strdup(opts->url ? opts->url : ""))) {
        snprintf(err, errlen, "postgres: out of memory");
        goto out;
    }
    parsed = PQconninfoParse(s->conninfo, &msg);
    if (!parsed) {
        /* libpq's message quotes the string, password and all: it is not repeated */
        snprintf(err, errlen,
                 "[store] url: not a PostgreSQL connection string (check its quoting, "
                 "percent-encoding and key names)");
        rc = CU_E_CONFIG;
        goto out;
    }
    s->busy_ms = opts->busy_timeout_ms > INT_MAX ? INT_MAX : (int)opts->busy_timeout_ms;
    rc = pg_connect(s, &conn, err, errlen);
    if (rc != CU_OK)
        goto out;
    pg_disconnect(conn);
    *state = s;
    s = NULL;
out:
    PQconninfoFree(parsed);
    PQfreemem(msg);
    pg_close(s);
    return rc;
}

static enum cu_err pg_exec_script(void *conn, const char *sql, char *err, size_t errlen)
{
    struct pg_conn *c = conn;
    PGresult *res = PQexec(c->pc, sql);
    enum cu_err rc = CU_OK;

    if (!res || PQresultStatus(res) != PGRES_COMMAND_OK) {
        const char *m = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
        snprintf(err, errlen, "%s", m ? m : PQerrorMessage(c->pc));
        rc = pg_err(c, res, "exec_script");
    }
    PQclear(res);
    return rc;
}

/* begin(c, mode): BEGIN, and for a write its transaction id in the same round trip. */
static enum cu_err begin(struct pg_conn *c, enum cu_txn_mode mode)
{
    /* READ: one snapshot for every statement of the transaction. WRITE: READ COMMITTED
     * whatever the server's default, with the row locks the services take (FOR UPDATE). */
    static const char *const write_sql =
        "BEGIN ISOLATION LEVEL READ COMMITTED READ WRITE; SELECT txid_current()::text";
    PGresult *res;
    enum cu_err rc = CU_OK;

    if (mode != CU_TXN_WRITE)
        return simple(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", "begin");
    res = PQexec(c->pc, write_sql);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 ||
        PQgetlength(res, 0, 0) >= (int)sizeof c->xid) {
        rc = pg_err(c, res, "begin");
        if (c->pc && PQtransactionStatus(c->pc) != PQTRANS_IDLE)
            (void)simple(c, "ROLLBACK", "rollback");
    } else {
        snprintf(c->xid, sizeof c->xid, "%s", PQgetvalue(res, 0, 0));
    }
    PQclear(res);
    return rc;
}

static enum cu_err pg_begin(void *conn, enum cu_txn_mode mode)
{
    struct pg_conn *c = conn;
    enum cu_err rc;

    c->in_txn = false;
    c->xid[0] = '\0';
    rc = revive(c);
    if (rc == CU_OK)
        rc = begin(c, mode);
    /* A session the server ended while idle shows only when used: nothing has run yet, so
     * make it again and begin once more. */
    if (rc != CU_OK && c->pc && PQstatus(c->pc) != CONNECTION_OK && revive(c) == CU_OK)
        rc = begin(c, mode);
    c->in_txn = rc == CU_OK;
    return rc;
}

/* Asking after a lost COMMIT: for at most OUTCOME_MS in all (the committer's thread, which
 * every write of the node waits for, is the one asking), each time on a session of its own
 * made with a short connect_timeout and a statement_timeout, while the server cannot be reached
 * or says "in progress" (its session may not have seen the loss yet). */
#define OUTCOME_MS 3000
#define OUTCOME_PAUSE_MS 100

/* ask(s, xid, status, cap): txid_status(xid) on a new session: true when it answered. */
static bool ask(const struct pg_state *s, const char *xid, char *status, size_t cap)
{
    /* dbname expands the string first; these then override its own timeouts */
    const char *const keys[] = {"dbname", "connect_timeout", "fallback_application_name", NULL};
    const char *const vals[] = {s->conninfo, "2", "custodia", NULL};
    char sql[128];
    PGconn *pc = PQconnectdbParams(keys, vals, 1);
    PGresult *res = NULL;
    bool ok = false;

    /* xid is the text of txid_current(), digits only: it may be written into the statement */
    snprintf(sql, sizeof sql, "SET statement_timeout = 1000; SELECT txid_status(%s)", xid);
    if (pc && PQstatus(pc) == CONNECTION_OK && (res = PQexec(pc, sql)) != NULL &&
        PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
        snprintf(status, cap, "%s", PQgetisnull(res, 0, 0) ? "" : PQgetvalue(res, 0, 0));
        ok = true;
    }
    PQclear(res);
    PQfinish(pc);
    return ok;
}

/* outcome(c, xid): whether the write transaction xid, whose COMMIT was sent and whose answer
 * was lost with the session, committed: CU_OK when the server says so, CU_E_STORE when it says
 * it did not or cannot say in time (logged as unknown). The lost session is made again at the
 * next BEGIN, as after any loss. */
static enum cu_err outcome(struct pg_conn *c, const char *xid)
{
    struct timespec t0, now;

    for (const char *p = xid; *p; p++)
        if (*p < '0' || *p > '9')
            return CU_E_STORE;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        char st[24] = "";
        if (ask(c->s, xid, st, sizeof st)) {
            if (strcmp(st, "committed") == 0) {
                cu_log(CU_LOG_WARN, "store.postgres_commit_confirmed", CU_LS("xid", xid));
                return CU_OK;
            }
            if (strcmp(st, "aborted") == 0) {
                cu_log(CU_LOG_WARN, "store.postgres_commit_lost", CU_LS("xid", xid),
                       CU_LS("error", "the transaction was rolled back with its session"));
                return CU_E_STORE;
            }
            if (!st[0])
                break; /* too old to say */
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        long ms = (long)(now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000;
        if (ms + OUTCOME_PAUSE_MS >= OUTCOME_MS)
            break;
        (void)poll(NULL, 0, OUTCOME_PAUSE_MS);
    }
    cu_log(CU_LOG_ERROR, "store.postgres_commit_unknown", CU_LS("xid", xid),
           CU_LS("error", "the COMMIT's answer was lost and its outcome cannot be read"));
    return CU_E_STORE;
}

static enum cu_err pg_commit(void *conn)
{
    struct pg_conn *c = conn;
    PGresult *res = NULL;
    enum cu_err rc = CU_OK;
    char xid[sizeof c->xid];

    /* a COMMIT outside a transaction (its session lost and made again) would answer COMMIT */
    if (!c->pc || !c->in_txn || PQtransactionStatus(c->pc) != PQTRANS_INTRANS) {
        cu_log(CU_LOG_WARN, "store.postgres_error", CU_LS("op", "commit"),
               CU_LS("error", "the transaction is not open: its session was lost"));
        c->in_txn = false;
        return CU_E_STORE;
    }
    memcpy(xid, c->xid, sizeof xid);
    res = PQexec(c->pc, "COMMIT");
    c->in_txn = false;
    if ((!res || PQresultStatus(res) != PGRES_COMMAND_OK) && PQstatus(c->pc) != CONNECTION_OK &&
        xid[0]) {
        /* The COMMIT was sent and the session lost before its answer: it may have committed.
         * Ask the server rather than report a failure that is perhaps a success. */
        (void)pg_err(c, res, "commit");
        rc = outcome(c, xid);
    } else if (!res || PQresultStatus(res) != PGRES_COMMAND_OK) {
        rc = pg_err(c, res, "commit");
    } else if (strcmp(PQcmdStatus(res), "COMMIT") != 0) {
        /* A transaction that had failed answers COMMIT with ROLLBACK. */
        cu_log(CU_LOG_WARN, "store.postgres_error", CU_LS("op", "commit"),
               CU_LS("error", "the transaction had failed and was rolled back"));
        rc = CU_E_STORE;
    }
    PQclear(res);
    return rc;
}

static void pg_rollback(void *conn)
{
    struct pg_conn *c = conn;

    c->in_txn = false;
    if (c->pc && PQstatus(c->pc) == CONNECTION_OK && PQtransactionStatus(c->pc) != PQTRANS_IDLE)
        (void)simple(c, "ROLLBACK", "rollback");
}

/* count_params(sql): the highest $N outside literals, identifiers and comments. */
static int count_params(const char *sql)
{
    long top = 0;

    for (const char *p = sql; (p = cu_store_next_placeholder(p)) != NULL; p++) {
        char *end = NULL;
        long v = strtol(p + 1, &end, 10);

        CU_ASSERT_MSG(v > 0 && v <= 65535, "placeholder out of range");
        top = v > top ? v : top;
    }
    return (int)top;
}

/* drop_decoded(s): frees the bytea values decoded for the current row. */
static void drop_decoded(struct pg_stmt *s)
{
    for (int i = 0; i < s->ndecoded; i++) {
        if (s->decoded[i]) {
            cu_free(s->decoded[i]);
            s->decoded[i] = NULL;
        }
    }
}

static void pg_finalize(void *stmt)
{
    struct pg_stmt *s = stmt;

    if (!s)
        return;
    drop_decoded(s);
    cu_free(s->decoded);
    cu_free(s->decoded_len);
    PQclear(s->res);
    for (int i = 0; i < s->nparams; i++)
        cu_free(s->params[i].buf);
    cu_free(s->params);
    cu_free(s->values);
    cu_free(s->lengths);
    cu_free(s->formats);
    cu_free(s->types);
    cu_free(s->sql);
    cu_free(s);
}

static bool starts_with_word(const char *s, const char *w)
{
    size_t n = strlen(w);

    while (isspace((unsigned char)*s))
        s++;
    return strncmp(s, w, n) == 0 && (s[n] == '\0' || isspace((unsigned char)s[n]));
}

static enum cu_err pg_prepare(void *conn, const char *sql, void **out)
{
    struct pg_conn *c = conn;
    struct pg_stmt *s = cu_calloc(1, sizeof *s);
    enum cu_err rc = CU_E_NOMEM;

    if (!s || !(s->sql = cu_strdup(sql)))
        goto out;
    s->c = c;
    s->row = -1;
    s->nparams = count_params(sql);
    s->utility =
        s->nparams == 0 && (starts_with_word(sql, "SAVEPOINT") ||
                            starts_with_word(sql, "RELEASE") || starts_with_word(sql, "ROLLBACK"));
    if (s->nparams > 0) {
        s->params = cu_calloc((size_t)s->nparams, sizeof *s->params);
        s->values = cu_calloc((size_t)s->nparams, sizeof *s->values);
        s->lengths = cu_calloc((size_t)s->nparams, sizeof *s->lengths);
        s->formats = cu_calloc((size_t)s->nparams, sizeof *s->formats);
        s->types = cu_calloc((size_t)s->nparams, sizeof *s->types);
        if (!s->params || !s->values || !s->lengths || !s->formats || !s->types)
            goto out;
    }
    snprintf(s->name, sizeof s->name, "cu%u", ++c->next_id);
    *out = s;
    s = NULL;
    rc = CU_OK;
out:
    pg_finalize(s);
    return rc;
}

/* keep(p, data, n): copies n bytes (and a NUL) into the parameter's buffer. */
static enum cu_err keep(struct pg_param *p, const void *data, size_t n)
{
    if (n + 1 > p->cap) {
        size_t cap = n + 1 < 64 ? 64 : n + 1;
        char *b = cu_reallocarray(p->buf, cap, 1);

        if (!b)
            return CU_E_NOMEM;
        p->buf = b;
        p->cap = cap;
    }
    if (n)
        memcpy(p->buf, data, n);
    p->buf[n] = '\0';
    p->len = n;
    return CU_OK;
}

static enum cu_err pg_bind(void *stmt, int idx, const struct cu_val *v)
{
    struct pg_stmt *s = stmt;
    struct pg_param *p;
    char num[INT_TEXT_BYTES];
    int n;

    if (idx < 1 || idx > s->nparams) {
        cu_log(CU_LOG_ERROR, "store.postgres_error", CU_LS("op", "bind"),
               CU_LS("error", "more values than placeholders"));
        return CU_E_INTERNAL;
    }
    p = &s->params[idx - 1];
    p->type = v->type;
    switch (v->type) {
    case CU_VAL_NULL:
        return CU_OK;
    case CU_VAL_INT:
        n = snprintf(num, sizeof num, "%" PRId64, v->i);
        return keep(p, num, (size_t)n);
    case CU_VAL_TEXT:
        /* PostgreSQL's text cannot hold NUL; the services never store it. */
        if (v->n && memchr(v->p, '\0', v->n)) {
            cu_log(CU_LOG_WARN, "store.postgres_error", CU_LS("op", "bind"),
                   CU_LS("error", "text with a NUL byte"));
            return CU_E_INVALID;
        }
        return keep(p, v->p, v->n);
    case CU_VAL_BLOB:
        return keep(p, v->p, v->n);
    default:
        CU_ASSERT(!"unknown cu_val type");
    }
    return CU_E_INTERNAL;
}

/* server_prepare(s): prepares the statement in this session, with the types of the values
 * bound now, and learns the type the server gave each parameter. */
static enum cu_err server_prepare(struct pg_stmt *s)
{
    struct pg_conn *c = s->c;
    PGresult *res;
    enum cu_err rc = CU_OK;

    for (int i = 0; i < s->nparams; i++) {
        switch (s->params[i].type) {
        case CU_VAL_INT:
            s->types[i] = OID_INT8;
            break;
        case CU_VAL_TEXT:
            s->types[i] = OID_TEXT;
            break;
        case CU_VAL_BLOB:
            s->types[i] = OID_BYTEA;
            break;
        default:
            s->types[i] = 0; /* the server infers it */
            break;
        }
    }
    res = PQprepare(c->pc, s->name, s->sql, s->nparams, s->types);
    if (!res || PQresultStatus(res) != PGRES_COMMAND_OK) {
        rc = pg_err(c, res, "prepare");
        goto out;
    }
    PQclear(res);
    res = PQdescribePrepared(c->pc, s->name);
    if (!res || PQresultStatus(res) != PGRES_COMMAND_OK) {
        rc = pg_err(c, res, "describe");
        goto out;
    }
    for (int i = 0; i < s->nparams && i < PQnparams(res); i++)
        s->types[i] = PQparamtype(res, i);
    s->gen = c->gen;
out:
    PQclear(res);
    return rc;
}

/* run(s): runs the statement with its bound values and keeps its rows. */
static enum cu_err run(struct pg_stmt *s)
{
    struct pg_conn *c = s->c;
    ExecStatusType st;
    enum cu_err rc = CU_OK;

    /* Outside a transaction the statement may make the connection again (revive refuses
     * inside one). */
    if ((!c->pc || PQstatus(c->pc) != CONNECTION_OK) && (rc = revive(c)) != CU_OK)
        return rc;
    if (s->utility) {
        s->res = PQexec(c->pc, s->sql);
    } else {
        if (s->gen != c->gen && (rc = server_prepare(s)) != CU_OK)
            return rc;
        for (int i = 0; i < s->nparams; i++) {
            const struct pg_param *p = &s->params[i];

            s->values[i] = p->type == CU_VAL_NULL ? NULL : p->buf;
            s->lengths[i] = (int)p->len;
            /* bytea travels raw; everything else as text the server parses */
            s->formats[i] = s->types[i] == OID_BYTEA ? 1 : 0;
        }
        s->res = PQexecPrepared(c->pc, s->name, s->nparams, s->values, s->lengths, s->formats, 0);
    }
    st = s->res ? PQresultStatus(s->res) : PGRES_FATAL_ERROR;
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        rc = pg_err(c, s->res, "step");
        PQclear(s->res);
        s->res = NULL;
        return rc;
    }
    {
        const char *n = PQcmdTuples(s->res);
        c->changes = n && n[0] ? strtoll(n, NULL, 10) : 0;
    }
    if (PQnfields(s->res) > s->ndecoded) {
        size_t nf = (size_t)PQnfields(s->res);
        unsigned char **d = cu_reallocarray(s->decoded, nf, sizeof *d);
        size_t *dl = d ? cu_reallocarray(s->decoded_len, nf, sizeof *dl) : NULL;

        if (d)
            s->decoded = d;
        if (dl)
            s->decoded_len = dl;
        if (!d || !dl) {
            PQclear(s->res);
            s->res = NULL;
            return CU_E_NOMEM;
        }
        for (size_t i = (size_t)s->ndecoded; i < nf; i++)
            d[i] = NULL;
        s->ndecoded = (int)nf;
    }
    s->row = -1;
    return CU_OK;
}

static enum cu_err pg_step(void *stmt, bool *row)
{
    struct pg_stmt *s = stmt;
    enum cu_err rc;

    *row = false;
    if (!s->res && (rc = run(s)) != CU_OK)
        return rc;
    drop_decoded(s);
    s->row++;
    *row = s->row < PQntuples(s->res);
    return CU_OK;
}

static bool pg_col_null(void *stmt, int col)
{
    struct pg_stmt *s = stmt;

    return !s->res || s->row < 0 || s->row >= PQntuples(s->res) || col < 0 ||
           col >= PQnfields(s->res) || PQgetisnull(s->res, s->row, col);
}

static int64_t pg_col_int(void *stmt, int col)
{
    struct pg_stmt *s = stmt;
    const char *v;

    if (pg_col_null(stmt, col))
        return 0;
    v = PQgetvalue(s->res, s->row, col);
    if (PQftype(s->res, col) == OID_BOOL)
        return v[0] == 't';
    errno = 0;
    char *end = NULL;
    long long x = strtoll(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0') {
        /* not a 64-bit integer (an aggregate past 2^63, a fraction): a bug of the SQL, never
         * read as a number */
        cu_log(CU_LOG_ERROR, "store.postgres_error", CU_LS("op", "col_int"),
               CU_LS("error", "a column read as an integer is not a 64-bit integer"));
        return 0;
    }
    return (int64_t)x;
}

/* decoded(s, col, len): the current row's bytea value, decoded once. */
static const void *decoded(struct pg_stmt *s, int col, size_t *len)
{
    if (!s->decoded[col]) {
        size_t n = 0;
        unsigned char *raw =
            PQunescapeBytea((const unsigned char *)PQgetvalue(s->res, s->row, col), &n);
        /* a copy with a NUL after it, as a value read from SQLite has */
        s->decoded[col] = raw ? cu_malloc(n + 1) : NULL;
        if (s->decoded[col]) {
            memcpy(s->decoded[col], raw, n);
            s->decoded[col][n] = '\0';
            s->decoded_len[col] = n;
        }
        PQfreemem(raw);
        if (!s->decoded[col]) {
            *len = 0;
            return NULL;
        }
    }
    *len = s->decoded_len[col];
    return s->decoded[col];
}

static const char *pg_col_text(void *stmt, int col, size_t *len)
{
    struct pg_stmt *s = stmt;

    *len = 0;
    if (pg_col_null(stmt, col))
        return NULL;
    if (PQftype(s->res, col) == OID_BYTEA)
        return decoded(s, col, len);
    *len = (size_t)PQgetlength(s->res, s->row, col);
    return PQgetvalue(s->res, s->row, col);
}

static const void *pg_col_blob(void *stmt, int col, size_t *len)
{
    return pg_col_text(stmt, col, len);
}

static int pg_col_count(void *stmt)
{
    struct pg_stmt *s = stmt;

    return s->res ? PQnfields(s->res) : 0;
}

static enum cu_val_type pg_col_type(void *stmt, int col)
{
    struct pg_stmt *s = stmt;

    if (pg_col_null(stmt, col))
        return CU_VAL_NULL;
    switch (PQftype(s->res, col)) {
    case OID_BOOL:
    case OID_INT2:
    case OID_INT4:
    case OID_INT8:
    case OID_OID:
    case OID_NUMERIC:
        return CU_VAL_INT;
    case OID_BYTEA:
        return CU_VAL_BLOB;
    default:
        return CU_VAL_TEXT;
    }
}

static const char *pg_col_name(void *stmt, int col)
{
    struct pg_stmt *s = stmt;

    return s->res && col >= 0 && col < PQnfields(s->res) ? PQfname(s->res, col) : NULL;
}

/* pg_migrate_lock: one migration at a time among the processes starting on the database. */
static enum cu_err pg_migrate_lock(void *conn)
{
    struct pg_conn *c = conn;
    PGresult *res = PQexec(c->pc, "SELECT pg_advisory_xact_lock(7163747573746)");
    enum cu_err rc = CU_OK;

    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK)
        rc = pg_err(c, res, "migrate_lock");
    PQclear(res);
    return rc;
}

/* pg_copied: every identity column's sequence set to the largest value copied in. */
static enum cu_err pg_copied(void *conn)
{
    return simple(conn,
                  "DO $$ DECLARE r record; m bigint; BEGIN "
                  "FOR r IN SELECT table_name, column_name FROM information_schema.columns "
                  "WHERE table_schema = current_schema() AND is_identity = 'YES' LOOP "
                  "EXECUTE format('SELECT COALESCE(MAX(%I), 0) FROM %I', r.column_name, "
                  "r.table_name) INTO m; "
                  "IF m > 0 THEN PERFORM setval(pg_get_serial_sequence(quote_ident(r.table_name), "
                  "r.column_name), m); END IF; END LOOP; END $$",
                  "copied");
}

static void pg_reset(void *stmt)
{
    struct pg_stmt *s = stmt;

    drop_decoded(s);
    PQclear(s->res);
    s->res = NULL;
    s->row = -1;
    for (int i = 0; i < s->nparams; i++)
        s->params[i].type = CU_VAL_NULL;
}

static int64_t pg_changes(void *conn)
{
    struct pg_conn *c = conn;

    return c->changes;
}

/* pg_purge: PostgreSQL keeps no secure delete. VACUUM removes the dead rows of the tables that
 * hold a customer's data from what the database can read back; the bytes may stay in its
 * files and write-ahead log until they are overwritten. What protects an erased customer is
 * the destroyed key: their fields were sealed under it (docs/operations.md, "Erasure"). */
static enum cu_err pg_purge(void *conn)
{
    struct pg_conn *c = conn;

    if (!c->pc || PQstatus(c->pc) != CONNECTION_OK)
        return CU_E_STORE;
    return simple(c,
                  "VACUUM customers, customer_fields, customer_index, customer_secrets, events, "
                  "monitor_events, sessions, auth_events, credentials, recovery_codes, "
                  "auth_challenges, lockouts",
                  "purge");
}

/* pg_lead: a session advisory lock on this connection, taken when free; once held, a query
 * proves the session (and so the lock) is still there. */
static enum cu_err pg_lead(void *conn, int64_t key, bool *held)
{
    struct pg_conn *c = conn;
    char num[INT_TEXT_BYTES];
    const char *vals[1] = {num};
    PGresult *res;
    enum cu_err rc = CU_OK;

    *held = false;
    if (PQstatus(c->pc) != CONNECTION_OK && (rc = revive(c)) != CU_OK)
        return rc;
    if (c->leading && c->lead_key == key) {
        res = PQexec(c->pc, "SELECT 1");
        if (res && PQresultStatus(res) == PGRES_TUPLES_OK) {
            *held = true;
        } else {
            c->leading = false;
            rc = pg_err(c, res, "lead");
        }
        PQclear(res);
        return rc;
    }
    snprintf(num, sizeof num, "%" PRId64, key);
    res = PQexecParams(c->pc, "SELECT pg_try_advisory_lock($1::bigint)", 1, NULL, vals, NULL, NULL,
                       0);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
        rc = pg_err(c, res, "lead");
    else if ((*held = PQgetvalue(res, 0, 0)[0] == 't') && !c->leading) {
        c->leading = true; /* the first lock this session took is the one it checks */
        c->lead_key = key;
    }
    PQclear(res);
    return rc;
}

/* pg_notify: NOTIFY channel, delivered at the commit (one per transaction and channel). */
static enum cu_err pg_notify(void *conn, const char *channel)
{
    struct pg_conn *c = conn;
    const char *vals[1] = {channel};
    PGresult *res = PQexecParams(c->pc, "SELECT pg_notify($1, '')", 1, NULL, vals, NULL, NULL, 0);
    enum cu_err rc = CU_OK;

    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK)
        rc = pg_err(c, res, "notify");
    PQclear(res);
    return rc;
}

/* drain(c): takes the notifications libpq has read; whether there were any. */
static bool drain(struct pg_conn *c)
{
    bool any = false;
    PGnotify *n;

    while ((n = PQnotifies(c->pc)) != NULL) {
        any = true;
        PQfreemem(n);
    }
    return any;
}

/* pg_wait: LISTEN once per session, then the socket until a notification or the timeout. */
static enum cu_err pg_wait(void *conn, const char *channel, unsigned timeout_ms, bool *woke)
{
    struct pg_conn *c = conn;
    enum cu_err rc = CU_OK;
    struct pollfd pfd;

    *woke = false;
    if (PQstatus(c->pc) != CONNECTION_OK && (rc = revive(c)) != CU_OK)
        return rc;
    if (!c->listening) {
        char sql[48];
        snprintf(sql, sizeof sql, "LISTEN %s", channel); /* [a-z_]{1,32}: checked by the caller */
        if ((rc = simple(c, sql, "listen")) != CU_OK)
            return rc;
        c->listening = true;
        *woke = true; /* what was committed before listening is for the caller to read */
        return CU_OK;
    }
    if (PQconsumeInput(c->pc) == 0)
        return pg_err(c, NULL, "wait");
    if ((*woke = drain(c)))
        return CU_OK;
    pfd.fd = PQsocket(c->pc);
    pfd.events = POLLIN;
    pfd.revents = 0;
    if (pfd.fd < 0)
        return CU_E_STORE;
    if (poll(&pfd, 1, (int)timeout_ms) > 0) {
        if (PQconsumeInput(c->pc) == 0)
            return pg_err(c, NULL, "wait");
        *woke = drain(c);
    }
    return CU_OK;
}

static const struct cu_migration *pg_migrations(size_t *n)
{
    *n = cu_postgres_migrations_count;
    return cu_postgres_migrations;
}

const struct cu_store_ops cu_store_postgres_ops = {
    .name = "postgres",
    .describe = pg_describe,
    .open = pg_open,
    .close = pg_close,
    .connect = pg_connect,
    .disconnect = pg_disconnect,
    .exec_script = pg_exec_script,
    .begin = pg_begin,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .prepare = pg_prepare,
    .finalize = pg_finalize,
    .bind = pg_bind,
    .step = pg_step,
    .col_int = pg_col_int,
    .col_text = pg_col_text,
    .col_blob = pg_col_blob,
    .col_null = pg_col_null,
    .col_count = pg_col_count,
    .col_type = pg_col_type,
    .col_name = pg_col_name,
    .reset = pg_reset,
    .changes = pg_changes,
    .migrations = pg_migrations,
    .purge = pg_purge,
    .lead = pg_lead,
    .notify = pg_notify,
    .wait = pg_wait,
    .copied = pg_copied,
    .migrate_lock = pg_migrate_lock,
    .schema_migrations_sql = "CREATE TABLE IF NOT EXISTS schema_migrations ("
                             "version BIGINT NOT NULL PRIMARY KEY, "
                             "name TEXT NOT NULL, "
                             "applied_at BIGINT NOT NULL)",
};
