/*
 * audit.c - appending to the audit log and reading it back.
 *
 * An append reads the chain's head (audit_head, one row), computes the record's hash over the
 * previous hash and the record's canonical encoding, inserts the record and moves the head,
 * all inside the caller's write transaction. The head row serialises appends in any database,
 * so the chain has no forks. The canonical encoding is length-prefixed binary, so no two
 * different records encode alike; docs/internals/audit.md specifies it byte by byte.
 */
#include "audit/audit.h"

#include <stdio.h>
#include <string.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/json.h"
#include "base/log.h"
#include "base/mem.h"
#include "crypto/crypto.h"

#define CANON_MAGIC "custodia-audit-v1"

struct cu_audit {
    struct cu_audit_opts opts;
    char origin[CU_AUDIT_FIELD_MAX + 1];
    struct cu_secret *hash_key;
    struct cu_signer *signer;
};

static bool origin_ok(const char *o)
{
    size_t n = o ? strlen(o) : 0;
    if (n == 0 || n > 128)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)o[i];
        if (c <= ' ' || c == '+' || c >= 0x7f)
            return false;
    }
    return true;
}

enum cu_err cu_audit_new(const struct cu_keyring *kr, const struct cu_audit_opts *opts,
                         struct cu_audit **out)
{
    struct cu_secret *seed = NULL;
    struct cu_audit *a;
    enum cu_err rc;

    if (!origin_ok(opts->origin) || opts->checkpoint_records == 0 || opts->checkpoint_seconds == 0)
        return CU_E_INVALID;
    a = cu_calloc(1, sizeof(*a));
    if (a == NULL)
        return CU_E_NOMEM;
    a->opts = *opts;
    snprintf(a->origin, sizeof(a->origin), "%s", opts->origin);
    a->opts.origin = a->origin;
    rc = cu_keyring_derive(kr, "auditidx", 1, &a->hash_key);
    if (rc == CU_OK)
        rc = cu_keyring_derive(kr, "auditsig", 1, &seed);
    if (rc == CU_OK)
        rc = cu_signer_new(seed, &a->signer);
    cu_secret_free(seed);
    if (rc != CU_OK) {
        cu_audit_free(a);
        return rc;
    }
    *out = a;
    return CU_OK;
}

void cu_audit_free(struct cu_audit *a)
{
    if (a == NULL)
        return;
    cu_secret_free(a->hash_key);
    cu_signer_free(a->signer);
    cu_free(a);
}

const struct cu_audit_opts *cu_audit_opts_of(const struct cu_audit *a)
{
    return &a->opts;
}

const struct cu_signer *cu_audit_signer(const struct cu_audit *a)
{
    return a->signer;
}

enum cu_err cu_audit_hash_value(const struct cu_audit *a, const char *kind, const char *value,
                                char out[CU_AUDIT_HASHED_BYTES])
{
    uint8_t h[CU_HASH_BYTES];
    struct cu_buf b;

    size_t kl = strlen(kind), vl = strlen(value);
    /* No cap of our own: every byte of the value goes into the hash, so values never collide. */
    cu_buf_init(&b, kl + vl + 2);
    memcpy(out, "hk:", 4);
    enum cu_err rc = cu_buf_append(&b, kind, kl);
    if (rc == CU_OK)
        rc = cu_buf_append(&b, "", 1);
    if (rc == CU_OK)
        rc = cu_buf_append(&b, value, vl);
    if (rc == CU_OK)
        cu_crypto_keyed_hash(a->hash_key, b.data, b.len, h);
    cu_buf_free(&b);
    if (rc == CU_OK)
        rc = cu_b64url_encode(h, sizeof(h), out + 3, CU_AUDIT_HASHED_BYTES - 3);
    return rc;
}

/* canonical(seq, time_ms, fields, dst, cap, len): appends the canonical encoding to dst (cap
 * bytes) after the *len bytes already there; false when it does not fit.
 * docs/internals/audit.md:
 *   "custodia-audit-v1" 0x00 || seq (8, big-endian) || time_ms (8, big-endian, two's
 *   complement) || for each of actor_type, actor_id, action, target, outcome, request_id,
 *   source, details: length (4, big-endian) || bytes. */
static bool canonical(int64_t seq, int64_t time_ms, const struct cu_audit_text *fields,
                      uint8_t *dst, size_t cap, size_t *len)
{
    size_t n = *len;
    if (n + sizeof(CANON_MAGIC) + 16 > cap)
        return false;
    memcpy(dst + n, CANON_MAGIC, sizeof(CANON_MAGIC));
    n += sizeof(CANON_MAGIC);
    for (int i = 0; i < 8; i++)
        dst[n++] = (uint8_t)((uint64_t)seq >> (56 - 8 * i));
    for (int i = 0; i < 8; i++)
        dst[n++] = (uint8_t)((uint64_t)time_ms >> (56 - 8 * i));
    for (size_t f = 0; f < CU_AUDIT_TEXT_FIELDS; f++) {
        size_t l = fields[f].n;
        if (l > UINT32_MAX || n + 4 + l > cap)
            return false;
        dst[n++] = (uint8_t)(l >> 24);
        dst[n++] = (uint8_t)(l >> 16);
        dst[n++] = (uint8_t)(l >> 8);
        dst[n++] = (uint8_t)l;
        memcpy(dst + n, fields[f].p, l);
        n += l;
    }
    *len = n;
    return true;
}

/* Room for the largest record: prev hash, magic, two integers, eight 4-byte lengths (32 bytes) and
 * fields of which seven are at most CU_AUDIT_FIELD_MAX bytes and details at most
 * CU_AUDIT_DETAILS_MAX. */
#define CANON_MAX                                                                                  \
    (CU_MERKLE_HASH_BYTES + sizeof(CANON_MAGIC) + 16 + 32 + (size_t)7 * CU_AUDIT_FIELD_MAX +       \
     CU_AUDIT_DETAILS_MAX)

enum cu_err cu_audit_hash_parts(const uint8_t prev[CU_MERKLE_HASH_BYTES], int64_t seq,
                                int64_t time_ms, const struct cu_audit_text *fields,
                                uint8_t out[CU_MERKLE_HASH_BYTES])
{
    uint8_t flat[CANON_MAX];
    size_t len = CU_MERKLE_HASH_BYTES;

    memcpy(flat, prev, CU_MERKLE_HASH_BYTES);
    if (!canonical(seq, time_ms, fields, flat, sizeof(flat), &len))
        return CU_E_TOO_LARGE;
    cu_crypto_sha256(flat, len, out);
    return CU_OK;
}

enum cu_err cu_audit_record_hash(const uint8_t prev[CU_MERKLE_HASH_BYTES],
                                 const struct cu_audit_record *r, uint8_t out[CU_MERKLE_HASH_BYTES])
{
    const char *d = r->details ? r->details : "";
    const struct cu_audit_text f[CU_AUDIT_TEXT_FIELDS] = {
        {r->actor_type, strlen(r->actor_type)}, {r->actor_id, strlen(r->actor_id)},
        {r->action, strlen(r->action)},         {r->target, strlen(r->target)},
        {r->outcome, strlen(r->outcome)},       {r->request_id, strlen(r->request_id)},
        {r->source, strlen(r->source)},         {d, strlen(d)},
    };
    return cu_audit_hash_parts(prev, r->seq, r->time_ms, f, out);
}

/* Copies an event string into a record field; CU_E_INVALID when it does not fit, holds a
 * control character or is not UTF-8 (records are for people, and JSON, to read). */
static enum cu_err copy_field(char *dst, size_t cap, const char *src)
{
    size_t n = src ? strlen(src) : 0;
    if (n >= cap)
        return CU_E_INVALID;
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)src[i] < 0x20 || src[i] == 0x7f)
            return CU_E_INVALID;
    }
    if (src != NULL && !cu_utf8_valid(src, n))
        return CU_E_INVALID;
    memcpy(dst, src ? src : "", n + 1);
    return CU_OK;
}

static bool outcome_ok(const char *o)
{
    return o &&
           (strcmp(o, "success") == 0 || strcmp(o, "failure") == 0 || strcmp(o, "denied") == 0);
}

static enum cu_err record_from_event(const struct cu_audit *a, const struct cu_audit_event *ev,
                                     struct cu_audit_record *r)
{
    enum cu_err rc = CU_OK;
    memset(r, 0, sizeof(*r));
    if (!outcome_ok(ev->outcome) || ev->action == NULL || ev->action[0] == '\0' ||
        (ev->details != NULL && (!json_is_object(ev->details) || ev->details_text != NULL)))
        return CU_E_INVALID;
    rc = copy_field(r->actor_type, sizeof(r->actor_type), ev->actor_type);
    if (rc == CU_OK)
        rc = copy_field(r->actor_id, sizeof(r->actor_id), ev->actor_id);
    if (rc == CU_OK)
        rc = copy_field(r->action, sizeof(r->action), ev->action);
    if (rc == CU_OK)
        rc = copy_field(r->target, sizeof(r->target), ev->target);
    if (rc == CU_OK)
        rc = copy_field(r->outcome, sizeof(r->outcome), ev->outcome);
    if (rc == CU_OK)
        rc = copy_field(r->request_id, sizeof(r->request_id), ev->request_id);
    if (rc == CU_OK && ev->source_ip && ev->source_ip[0] && a->opts.hash_source_ip)
        rc = cu_audit_hash_value(a, "ip", ev->source_ip, r->source);
    else if (rc == CU_OK)
        rc = copy_field(r->source, sizeof(r->source), ev->source_ip);
    if (rc != CU_OK)
        return rc;
    /* Canonical JSON, capped; the text is malloc'd (cu_buf's allocator is malloc), as
     * cu_audit_record_clear frees it with free(). */
    struct cu_buf text;
    cu_buf_init(&text, CU_AUDIT_DETAILS_MAX);
    if (ev->details_text != NULL) {
        size_t n = strnlen(ev->details_text, CU_AUDIT_DETAILS_MAX + 1);
        rc = n >= 2 && n <= CU_AUDIT_DETAILS_MAX && ev->details_text[0] == '{' &&
                     ev->details_text[n - 1] == '}' && cu_utf8_valid(ev->details_text, n)
                 ? cu_buf_append(&text, ev->details_text, n)
                 : CU_E_INVALID;
    } else if (ev->details != NULL) {
        rc = cu_json_canonical(ev->details, &text);
    } else {
        rc = cu_buf_append(&text, "{}", 2);
    }
    if (rc != CU_OK) {
        cu_buf_free(&text);
        return rc == CU_E_TOO_LARGE ? CU_E_INVALID : rc;
    }
    r->details = cu_buf_steal(&text);
    return CU_OK;
}

/* read_head(db, lock, seq, hash): the chain's head; with lock, its row is locked until the
 * transaction ends (the store's FOR UPDATE), so that appends serialise in any database. */
static enum cu_err read_head(struct cu_db *db, bool lock, int64_t *seq,
                             uint8_t hash[CU_MERKLE_HASH_BYTES])
{
    static const char sql[] = "SELECT seq, hash FROM audit_head WHERE id = 1";
    static const char sql_lock[] = "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE";
    struct cu_stmt *st = NULL;
    bool row = false;
    size_t n = 0;
    enum cu_err rc = cu_db_query(db, lock ? sql_lock : sql, NULL, 0, &st);
    if (rc == CU_OK)
        rc = cu_stmt_next(st, &row);
    if (rc == CU_OK && !row)
        rc = CU_E_CORRUPT;
    if (rc == CU_OK) {
        const void *h = cu_stmt_blob(st, 1, &n);
        *seq = cu_stmt_int(st, 0);
        if (n != CU_MERKLE_HASH_BYTES)
            rc = CU_E_CORRUPT;
        else
            memcpy(hash, h, n);
    }
    cu_stmt_done(st);
    return rc;
}

enum cu_err cu_audit_head(struct cu_db *db, int64_t *seq, uint8_t hash[CU_MERKLE_HASH_BYTES])
{
    return read_head(db, false, seq, hash);
}

/* Moves the chain's head from seq `from` to the record (seq, hash). */
static enum cu_err move_head(struct cu_db *db, int64_t seq, const uint8_t *hash, int64_t from)
{
    static const char head[] =
        "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1 AND seq = $3";
    const struct cu_val h[] = {CU_VI(seq), CU_VB(hash, CU_MERKLE_HASH_BYTES), CU_VI(from)};
    enum cu_err rc = cu_db_exec(db, head, h, CU_NVALS(h));
    if (rc == CU_OK && cu_db_changes(db) != 1)
        rc = CU_E_CORRUPT; /* the head moved under us: only a broken store allows that */
    return rc;
}

static enum cu_err insert_row(struct cu_db *db, const struct cu_audit_record *r)
{
    static const char ins[] =
        "INSERT INTO audit_log (seq, time_ms, actor_type, actor_id, action, target, outcome, "
        "request_id, source, details, prev_hash, hash) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";
    const struct cu_val p[] = {
        CU_VI(r->seq),
        CU_VI(r->time_ms),
        CU_VT(r->actor_type),
        CU_VT(r->actor_id),
        CU_VT(r->action),
        CU_VT(r->target),
        CU_VT(r->outcome),
        CU_VT(r->request_id),
        CU_VT(r->source),
        CU_VT(r->details),
        CU_VB(r->prev_hash, CU_MERKLE_HASH_BYTES),
        CU_VB(r->hash, CU_MERKLE_HASH_BYTES),
    };
    return cu_db_exec(db, ins, p, CU_NVALS(p));
}

static enum cu_err insert_record(struct cu_db *db, const struct cu_audit_record *r)
{
    enum cu_err rc = insert_row(db, r);
    return rc == CU_OK ? move_head(db, r->seq, r->hash, r->seq - 1) : rc;
}

enum cu_err cu_audit_append(struct cu_audit *a, struct cu_db *db, const struct cu_audit_event *ev,
                            int64_t *seq)
{
    struct cu_audit_record r;
    int64_t last = 0;
    enum cu_err rc;

    CU_ASSERT_MSG(cu_db_in_txn(db), "audit appends go inside the caller's write transaction");
    rc = record_from_event(a, ev, &r);
    if (rc == CU_OK)
        rc = read_head(db, true, &last, r.prev_hash);
    if (rc == CU_OK) {
        r.seq = last + 1;
        r.time_ms = cu_clock_now_ms();
        rc = cu_audit_record_hash(r.prev_hash, &r, r.hash);
    }
    if (rc == CU_OK)
        rc = insert_record(db, &r);
    if (rc == CU_OK && seq != NULL)
        *seq = r.seq;
    if (rc != CU_OK)
        cu_log(CU_LOG_ERROR, "audit.append_failed", CU_LS("action", ev->action),
               CU_LS("error", cu_err_str(rc)));
    cu_audit_record_clear(&r);
    return rc;
}

enum cu_err cu_audit_append_many(struct cu_audit *a, struct cu_db *db,
                                 const struct cu_audit_event *const *evs, size_t n,
                                 enum cu_err *rcs)
{
    struct cu_audit_record r;
    uint8_t prev[CU_MERKLE_HASH_BYTES];
    int64_t first = 0, last = 0;
    enum cu_err rc;

    CU_ASSERT_MSG(cu_db_in_txn(db), "audit appends go inside the caller's write transaction");
    rc = read_head(db, true, &first, prev);
    last = first;
    for (size_t i = 0; rc == CU_OK && i < n; i++) {
        rcs[i] = record_from_event(a, evs[i], &r);
        if (rcs[i] == CU_OK) {
            memcpy(r.prev_hash, prev, sizeof(prev));
            r.seq = last + 1;
            r.time_ms = cu_clock_now_ms();
            rc = cu_audit_record_hash(r.prev_hash, &r, r.hash);
            if (rc == CU_OK)
                rc = insert_row(db, &r);
            if (rc == CU_OK) {
                memcpy(prev, r.hash, sizeof(prev));
                last = r.seq;
            }
            rcs[i] = rc;
        }
        if (rcs[i] != CU_OK)
            cu_log(CU_LOG_ERROR, "audit.append_failed", CU_LS("action", evs[i]->action),
                   CU_LS("error", cu_err_str(rcs[i])));
        cu_audit_record_clear(&r);
    }
    if (rc == CU_OK && last != first)
        rc = move_head(db, last, prev, first);
    return rc;
}

/* The unit-of-work sink: a unit's records, all or none (the committer's savepoint undoes the
 * others when one is refused). */
static enum cu_err sink_append(void *arg, struct cu_db *db, const struct cu_work *w,
                               const struct cu_work_record *recs, size_t n)
{
    struct cu_audit *a = arg;
    const struct cu_work_ctx *ctx = cu_work_context_of(w);
    struct cu_audit_event evs[CU_WORK_RECORDS_MAX];
    const struct cu_audit_event *evp[CU_WORK_RECORDS_MAX];
    enum cu_err rcs[CU_WORK_RECORDS_MAX];
    enum cu_err rc;

    CU_ASSERT(n <= CU_WORK_RECORDS_MAX);
    for (size_t i = 0; i < n; i++) {
        evs[i] = (struct cu_audit_event){
            .actor_type = ctx->actor_type,
            .actor_id = ctx->actor_id,
            .action = recs[i].action,
            .target = recs[i].target,
            .outcome = recs[i].outcome,
            .request_id = ctx->request_id,
            .source_ip = ctx->source_ip,
            .details_text = recs[i].details,
        };
        evp[i] = &evs[i];
    }
    rc = cu_audit_append_many(a, db, evp, n, rcs);
    for (size_t i = 0; rc == CU_OK && i < n; i++)
        rc = rcs[i];
    /* A record the log refuses is the caller's bug (a field over its limit) and a busy store
     * is a race the committer runs again; any other failure is the log's: fail closed. */
    if (rc != CU_OK && rc != CU_E_BUSY && rc != CU_E_INVALID && rc != CU_E_TOO_LARGE)
        rc = CU_E_AUDIT;
    return rc;
}

/* cu_audit_sink(a): the audit sink of the group committer (store/work.h): appends a unit's
 * records with its actor, request id and source address, in the unit's savepoint. The sink
 * holds a, which must outlive the committer. */
/* sink_lock: the chain's head locked first in each group (see struct cu_work_audit_sink). */
static enum cu_err sink_lock(void *arg, struct cu_db *db)
{
    int64_t seq = 0;
    uint8_t hash[CU_MERKLE_HASH_BYTES];

    (void)arg;
    return read_head(db, true, &seq, hash);
}

struct cu_work_audit_sink cu_audit_sink(struct cu_audit *a)
{
    struct cu_work_audit_sink s = {sink_append, a, sink_lock};
    return s;
}

void cu_audit_record_clear(struct cu_audit_record *r)
{
    free(r->details); /* json_dumps and cu_strdup both use malloc */
    r->details = NULL;
}

void cu_audit_records_free(struct cu_audit_record *rs, size_t n)
{
    if (rs == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        cu_audit_record_clear(&rs[i]);
    cu_free(rs);
}

#define RECORD_COLUMNS                                                                             \
    "seq, time_ms, actor_type, actor_id, action, target, outcome, request_id, source, details, "   \
    "prev_hash, hash"

static void text_col(struct cu_stmt *st, int col, char *dst, size_t cap)
{
    size_t n = 0;
    const char *s = cu_stmt_text(st, col, &n);
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, s, n);
    dst[n] = '\0';
}

static enum cu_err record_from_row(struct cu_stmt *st, struct cu_audit_record *r)
{
    size_t n = 0;
    const void *p;
    memset(r, 0, sizeof(*r));
    r->seq = cu_stmt_int(st, 0);
    r->time_ms = cu_stmt_int(st, 1);
    text_col(st, 2, r->actor_type, sizeof(r->actor_type));
    text_col(st, 3, r->actor_id, sizeof(r->actor_id));
    text_col(st, 4, r->action, sizeof(r->action));
    text_col(st, 5, r->target, sizeof(r->target));
    text_col(st, 6, r->outcome, sizeof(r->outcome));
    text_col(st, 7, r->request_id, sizeof(r->request_id));
    text_col(st, 8, r->source, sizeof(r->source));
    p = cu_stmt_text(st, 9, &n);
    r->details = malloc(n + 1);
    if (r->details == NULL)
        return CU_E_NOMEM;
    memcpy(r->details, p, n);
    r->details[n] = '\0';
    p = cu_stmt_blob(st, 10, &n);
    if (n == CU_MERKLE_HASH_BYTES)
        memcpy(r->prev_hash, p, n);
    p = cu_stmt_blob(st, 11, &n);
    if (n == CU_MERKLE_HASH_BYTES)
        memcpy(r->hash, p, n);
    return CU_OK;
}

enum cu_err cu_audit_get(struct cu_db *db, int64_t seq, struct cu_audit_record *r)
{
    static const char sql[] = "SELECT " RECORD_COLUMNS " FROM audit_log WHERE seq = $1";
    const struct cu_val p[] = {CU_VI(seq)};
    struct cu_stmt *st = NULL;
    bool row = false;
    enum cu_err rc = cu_db_query(db, sql, p, CU_NVALS(p), &st);
    memset(r, 0, sizeof(*r));
    if (rc == CU_OK)
        rc = cu_stmt_next(st, &row);
    if (rc == CU_OK)
        rc = row ? record_from_row(st, r) : CU_E_NOT_FOUND;
    cu_stmt_done(st);
    return rc;
}

/* Two statements, newest first and oldest first; filters that are not set match anything. */
#define LIST_REST                                                                                  \
    " AND ($1 = '' OR actor_id = $1) AND ($2 = '' OR action = $2) AND ($3 = '' OR target = $3) "   \
    "AND time_ms >= $4 AND time_ms < $5 AND seq < $6 AND seq > $7 "
#define LIST_SQL(lead, order)                                                                      \
    "SELECT " RECORD_COLUMNS " FROM audit_log WHERE " lead LIST_REST "ORDER BY seq " order         \
    " LIMIT $8"

/* One statement per leading filter, so that the planner can walk the index of the most
 * selective one (target, then actor, then action) in seq order; "$n = $n" keeps the others as
 * plain conditions. Eight literal statements, never SQL built at run time. */
static const char *list_sql(const struct cu_audit_filter *f, bool newest_first)
{
    static const char *const sql[4][2] = {
        {LIST_SQL("target = $3", "ASC"), LIST_SQL("target = $3", "DESC")},
        {LIST_SQL("actor_id = $1", "ASC"), LIST_SQL("actor_id = $1", "DESC")},
        {LIST_SQL("action = $2", "ASC"), LIST_SQL("action = $2", "DESC")},
        {LIST_SQL("1 = 1", "ASC"), LIST_SQL("1 = 1", "DESC")},
    };
    int lead = f->target && *f->target       ? 0
               : f->actor_id && *f->actor_id ? 1
               : f->action && *f->action     ? 2
                                             : 3;
    return sql[lead][newest_first ? 1 : 0];
}

enum cu_err cu_audit_list(struct cu_db *db, const struct cu_audit_filter *f, bool newest_first,
                          size_t limit, struct cu_audit_record **out, size_t *n)
{
    struct cu_audit_record *rs = NULL;
    struct cu_stmt *st = NULL;
    size_t count = 0;
    bool row = false;
    enum cu_err rc;

    if (limit == 0 || limit > 1000)
        return CU_E_INVALID;
    rs = cu_calloc(limit, sizeof(*rs));
    if (rs == NULL)
        return CU_E_NOMEM;
    const struct cu_val p[] = {
        CU_VT(f->actor_id ? f->actor_id : ""),
        CU_VT(f->action ? f->action : ""),
        CU_VT(f->target ? f->target : ""),
        CU_VI(f->since_ms),
        CU_VI(f->until_ms ? f->until_ms : INT64_MAX),
        CU_VI(f->before ? f->before : INT64_MAX),
        CU_VI(f->after),
        CU_VI(limit),
    };
    rc = cu_db_query(db, list_sql(f, newest_first), p, CU_NVALS(p), &st);
    while (rc == CU_OK && count < limit && (rc = cu_stmt_next(st, &row)) == CU_OK && row)
        rc = record_from_row(st, &rs[count++]);
    cu_stmt_done(st);
    if (rc != CU_OK) {
        cu_audit_records_free(rs, count);
        return rc;
    }
    *out = rs;
    *n = count;
    return CU_OK;
}

json_t *cu_audit_record_json(const struct cu_audit_record *r)
{
    char time[CU_RFC3339_BYTES], prev[2 * CU_MERKLE_HASH_BYTES + 1], hash[sizeof(prev)];
    json_error_t jerr;
    json_t *details = json_loads(r->details ? r->details : "{}", 0, &jerr);

    cu_clock_format(r->time_ms, time);
    cu_hex_encode(r->prev_hash, CU_MERKLE_HASH_BYTES, prev);
    cu_hex_encode(r->hash, CU_MERKLE_HASH_BYTES, hash);
    return json_pack("{s:I, s:s, s:{s:s, s:s}, s:s, s:s, s:s, s:s, s:s, s:o, s:s, s:s}", "seq",
                     (json_int_t)r->seq, "time", time, "actor", "type", r->actor_type, "id",
                     r->actor_id, "action", r->action, "target", r->target, "outcome", r->outcome,
                     "request_id", r->request_id, "source", r->source, "details",
                     details ? details : json_object(), "prev_hash", prev, "hash", hash);
}
