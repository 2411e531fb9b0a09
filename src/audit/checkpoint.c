/*
 * checkpoint.c - checkpoints, proofs and verification of the audit log.
 *
 * Checkpoints: the latest checkpoint stores the frontier of its tree (the roots of its perfect
 * subtrees), so the next one only reads the records since, checks that they chain, and signs
 * the new root. Proofs: the subtrees a proof names are found with the recursions of RFC 6962
 * section 2.1 over leaf ranges, and each range's root is computed by streaming its leaves from
 * the store, so a proof costs O(n) time and O(log n) memory whatever the log's size.
 * Verification walks the whole log once.
 */
#include "audit/checkpoint.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"
#include "crypto/crypto.h"

static uint64_t popcount64(uint64_t x)
{
    return (uint64_t)__builtin_popcountll(x);
}

/* Restores a builder from the frontier stored with a checkpoint, and checks that it gives the
 * checkpoint's root (root, rlen), so a damaged frontier can never lead to a wrong signature. */
static enum cu_err builder_restore(struct cu_merkle_builder *b, int64_t size, const void *frontier,
                                   size_t len, const void *root, size_t rlen)
{
    cu_merkle_hash got;
    cu_merkle_builder_init(b);
    if (size < 0 || len != popcount64((uint64_t)size) * CU_MERKLE_HASH_BYTES ||
        rlen != CU_MERKLE_HASH_BYTES)
        return CU_E_CORRUPT;
    memcpy(b->stack, frontier, len);
    b->size = (uint64_t)size;
    cu_merkle_builder_root(b, got);
    if (memcmp(got, root, CU_MERKLE_HASH_BYTES) != 0) {
        cu_log(CU_LOG_ERROR, "audit.frontier_corrupt", CU_LI("tree_size", size),
               CU_LB("alert", true));
        return CU_E_CORRUPT;
    }
    return CU_OK;
}

static void leaf_of(const void *record_hash, cu_merkle_hash out)
{
    cu_merkle_leaf_hash(record_hash, CU_MERKLE_HASH_BYTES, out);
}

/* Adds the leaves of records (after, upto] to b; checks that each record's prev_hash is the
 * previous record's hash when prev is given (updated as it goes). */
static enum cu_err add_range(struct cu_db *db, int64_t after, int64_t upto,
                             struct cu_merkle_builder *b, uint8_t *prev)
{
    static const char sql[] =
        "SELECT seq, prev_hash, hash FROM audit_log WHERE seq > $1 AND seq <= $2 ORDER BY seq";
    const struct cu_val p[] = {CU_VI(after), CU_VI(upto)};
    struct cu_stmt *st = NULL;
    int64_t expect = after + 1;
    bool row = false;
    enum cu_err rc = cu_db_query(db, sql, p, CU_NVALS(p), &st);

    while (rc == CU_OK && (rc = cu_stmt_next(st, &row)) == CU_OK && row) {
        size_t pl = 0, hl = 0;
        const void *ph = cu_stmt_blob(st, 1, &pl), *h = cu_stmt_blob(st, 2, &hl);
        cu_merkle_hash leaf;
        if (cu_stmt_int(st, 0) != expect || hl != CU_MERKLE_HASH_BYTES ||
            (prev != NULL &&
             (pl != CU_MERKLE_HASH_BYTES || memcmp(ph, prev, CU_MERKLE_HASH_BYTES) != 0))) {
            rc = CU_E_CORRUPT;
            break;
        }
        if (prev != NULL)
            memcpy(prev, h, CU_MERKLE_HASH_BYTES);
        leaf_of(h, leaf);
        cu_merkle_builder_add(b, leaf);
        expect++;
    }
    cu_stmt_done(st);
    if (rc == CU_OK && expect != upto + 1)
        rc = CU_E_CORRUPT;
    return rc;
}

static enum cu_err row_to_checkpoint(struct cu_stmt *st, struct cu_audit_checkpoint *out)
{
    size_t n = 0;
    const void *root = cu_stmt_blob(st, 1, &n);
    const char *note;

    memset(out, 0, sizeof(*out));
    out->tree_size = cu_stmt_int(st, 0);
    if (n != CU_MERKLE_HASH_BYTES)
        return CU_E_CORRUPT;
    memcpy(out->root, root, n);
    out->created_at = cu_stmt_int(st, 2);
    note = cu_stmt_text(st, 3, &n);
    if (n >= sizeof(out->note))
        return CU_E_CORRUPT;
    memcpy(out->note, note, n);
    out->note[n] = '\0';
    return CU_OK;
}

enum cu_err cu_audit_checkpoint_get(struct cu_db *db, int64_t size, struct cu_audit_checkpoint *out)
{
    static const char latest[] = "SELECT tree_size, root, created_at, note FROM audit_checkpoints "
                                 "ORDER BY tree_size DESC LIMIT 1";
    static const char one[] = "SELECT tree_size, root, created_at, note FROM audit_checkpoints "
                              "WHERE tree_size = $1";
    const struct cu_val p[] = {CU_VI(size)};
    struct cu_stmt *st = NULL;
    bool row = false;
    enum cu_err rc = size == 0 ? cu_db_query(db, latest, NULL, 0, &st)
                               : cu_db_query(db, one, p, CU_NVALS(p), &st);
    if (rc == CU_OK)
        rc = cu_stmt_next(st, &row);
    if (rc == CU_OK)
        rc = row ? row_to_checkpoint(st, out) : CU_E_NOT_FOUND;
    cu_stmt_done(st);
    return rc;
}

/* The latest checkpoint's size, time and builder (an empty tree when there is none). */
static enum cu_err latest_state(struct cu_db *db, int64_t *size, int64_t *at,
                                struct cu_merkle_builder *b)
{
    static const char sql[] = "SELECT tree_size, created_at, frontier, root FROM "
                              "audit_checkpoints ORDER BY tree_size DESC LIMIT 1";
    struct cu_stmt *st = NULL;
    bool row = false;
    enum cu_err rc = cu_db_query(db, sql, NULL, 0, &st);

    *size = 0;
    *at = 0;
    cu_merkle_builder_init(b);
    if (rc == CU_OK)
        rc = cu_stmt_next(st, &row);
    if (rc == CU_OK && row) {
        size_t n = 0, rn = 0;
        const void *f = cu_stmt_blob(st, 2, &n), *root = cu_stmt_blob(st, 3, &rn);
        *size = cu_stmt_int(st, 0);
        *at = cu_stmt_int(st, 1);
        rc = builder_restore(b, *size, f, n, root, rn);
    }
    cu_stmt_done(st);
    return rc;
}

/* The hash of record seq (seq >= 1). */
static enum cu_err record_hash_at(struct cu_db *db, int64_t seq, uint8_t out[CU_MERKLE_HASH_BYTES])
{
    static const char sql[] = "SELECT hash FROM audit_log WHERE seq = $1";
    const struct cu_val p[] = {CU_VI(seq)};
    struct cu_stmt *st = NULL;
    bool row = false;
    size_t n = 0;
    enum cu_err rc = cu_db_query(db, sql, p, CU_NVALS(p), &st);
    if (rc == CU_OK)
        rc = cu_stmt_next(st, &row);
    if (rc == CU_OK && row) {
        const void *h = cu_stmt_blob(st, 0, &n);
        if (n == CU_MERKLE_HASH_BYTES)
            memcpy(out, h, n);
    }
    if (rc == CU_OK && (!row || n != CU_MERKLE_HASH_BYTES))
        rc = CU_E_CORRUPT;
    cu_stmt_done(st);
    return rc;
}

static enum cu_err store_checkpoint(struct cu_audit *a, struct cu_db *db,
                                    const struct cu_merkle_builder *b,
                                    struct cu_audit_checkpoint *cp)
{
    static const char sql[] = "INSERT INTO audit_checkpoints (tree_size, root, created_at, note, "
                              "frontier) VALUES ($1, $2, $3, $4, $5)";
    const char *origin = cu_audit_opts_of(a)->origin;
    enum cu_err rc;

    memset(cp, 0, sizeof(*cp));
    cp->tree_size = (int64_t)b->size;
    cp->created_at = cu_clock_now_ms();
    cu_merkle_builder_root(b, cp->root);
    rc = cu_note_checkpoint(origin, b->size, cp->root, cu_audit_signer(a), origin, cp->note);
    if (rc != CU_OK)
        return rc;
    const struct cu_val p[] = {
        CU_VI(cp->tree_size),
        CU_VB(cp->root, CU_MERKLE_HASH_BYTES),
        CU_VI(cp->created_at),
        CU_VT(cp->note),
        CU_VB(b->stack, popcount64(b->size) * CU_MERKLE_HASH_BYTES),
    };
    return cu_db_exec(db, sql, p, CU_NVALS(p));
}

/* Whether a checkpoint is due for a log of head records whose latest checkpoint covers size,
 * made at time at. */
static bool due(const struct cu_audit *a, bool force, int64_t head, int64_t size, int64_t at)
{
    const struct cu_audit_opts *o = cu_audit_opts_of(a);
    if (head <= size)
        return false;
    return force || head - size >= (int64_t)o->checkpoint_records ||
           cu_clock_now_ms() - at >= (int64_t)o->checkpoint_seconds * 1000;
}

static enum cu_err make_in_txn(struct cu_audit *a, struct cu_db *db, bool force, bool *made,
                               struct cu_audit_checkpoint *cp)
{
    struct cu_merkle_builder b;
    uint8_t head_hash[CU_MERKLE_HASH_BYTES], prev[CU_MERKLE_HASH_BYTES];
    int64_t head = 0, size = 0, at = 0;
    enum cu_err rc = cu_audit_head(db, &head, head_hash);

    if (rc == CU_OK)
        rc = latest_state(db, &size, &at, &b);
    if (rc != CU_OK || !due(a, force, head, size, at))
        return rc;
    memset(prev, 0, sizeof(prev));
    if (size > 0)
        rc = record_hash_at(db, size, prev);
    if (rc == CU_OK)
        rc = add_range(db, size, head, &b, prev);
    if (rc == CU_OK && memcmp(prev, head_hash, sizeof(prev)) != 0)
        rc = CU_E_CORRUPT;
    if (rc == CU_E_CORRUPT)
        cu_log(CU_LOG_ERROR, "audit.checkpoint_refused", CU_LI("from", size), CU_LI("to", head),
               CU_LS("reason", "the records since the last checkpoint do not chain"));
    if (rc == CU_OK)
        rc = store_checkpoint(a, db, &b, cp);
    if (rc == CU_OK)
        *made = true;
    return rc;
}

/* The latest checkpoint's tree size (0 when there is none). */
static enum cu_err latest_size(struct cu_db *db, int64_t *size)
{
    static const char sql[] = "SELECT MAX(tree_size) FROM audit_checkpoints";
    struct cu_stmt *st = NULL;
    bool row = false;
    enum cu_err rc = cu_db_query(db, sql, NULL, 0, &st);

    *size = 0;
    if (rc == CU_OK)
        rc = cu_stmt_next(st, &row);
    if (rc == CU_OK && row && !cu_stmt_null(st, 0))
        *size = cu_stmt_int(st, 0);
    cu_stmt_done(st);
    return rc;
}

/* The reading half of a checkpoint, in a read snapshot outside the writer: the tree of every
 * record up to the head, built on from the latest checkpoint, the records since checked to
 * chain. j->ready says it was built; j->due whether one is due at all. */
static enum cu_err prepare(struct cu_audit *a, struct cu_db *db, struct cu_audit_checkpoint_job *j)
{
    uint8_t prev[CU_MERKLE_HASH_BYTES];
    int64_t at = 0;
    enum cu_err rc = cu_db_begin(db, CU_TXN_READ);

    if (rc == CU_OK)
        rc = cu_audit_head(db, &j->upto, j->upto_hash);
    if (rc == CU_OK)
        rc = latest_state(db, &j->from, &at, &j->tree);
    if (rc == CU_OK)
        j->due = due(a, j->force, j->upto, j->from, at);
    memset(prev, 0, sizeof(prev));
    if (rc == CU_OK && j->due && j->from > 0)
        rc = record_hash_at(db, j->from, prev);
    if (rc == CU_OK && j->due)
        rc = add_range(db, j->from, j->upto, &j->tree, prev);
    if (rc == CU_OK && j->due && memcmp(prev, j->upto_hash, sizeof(prev)) != 0)
        rc = CU_E_CORRUPT;
    if (rc == CU_E_CORRUPT)
        cu_log(CU_LOG_ERROR, "audit.checkpoint_refused", CU_LI("from", j->from),
               CU_LI("to", j->upto),
               CU_LS("reason", "the records since the last checkpoint do not chain"));
    cu_db_rollback(db);
    j->ready = rc == CU_OK && j->due;
    return rc;
}

/* The writing half: stores the prepared tree when the latest checkpoint is still the one it
 * was built on and its last record still has the hash that was read; else (another checkpoint
 * came between, or nothing was prepared) builds it here, in the writer. */
static enum cu_err store_prepared(struct cu_audit_checkpoint_job *j, struct cu_db *db)
{
    uint8_t hash[CU_MERKLE_HASH_BYTES];
    int64_t size = 0;
    enum cu_err rc = latest_size(db, &size);

    if (rc != CU_OK)
        return rc;
    if (size != j->from)
        return make_in_txn(j->audit, db, j->force, &j->made, &j->cp);
    rc = record_hash_at(db, j->upto, hash);
    if (rc == CU_OK && memcmp(hash, j->upto_hash, sizeof(hash)) != 0)
        rc = CU_E_CORRUPT;
    if (rc == CU_OK)
        rc = store_checkpoint(j->audit, db, &j->tree, &j->cp);
    if (rc == CU_OK)
        j->made = true;
    return rc;
}

enum cu_err cu_audit_checkpoint_apply(struct cu_work *w, struct cu_db *db, void *job)
{
    struct cu_audit_checkpoint_job *j = job;
    (void)w;
    j->made = false;
    if (j->ready)
        return store_prepared(j, db);
    return make_in_txn(j->audit, db, j->force, &j->made, &j->cp);
}

enum cu_err cu_audit_checkpoint_make(struct cu_audit *a, struct cu_committer *c, bool force,
                                     bool *made, struct cu_audit_checkpoint *out)
{
    struct cu_audit_checkpoint_job j;
    struct cu_work *w = NULL;
    struct cu_db *db = NULL;
    enum cu_err rc = CU_OK;

    memset(&j, 0, sizeof(j));
    j.audit = a;
    j.force = force;
    *made = false;
    /* Reading and hashing the records since the last checkpoint is the long part: it runs
     * here, in a read snapshot, so the writer every request waits for only stores the result.
     * Without a free read connection the writer does it all. */
    if (cu_store_acquire(cu_committer_store(c), &db) == CU_OK) {
        rc = prepare(a, db, &j);
        cu_store_release(db);
        if (rc != CU_OK || !j.due)
            return rc;
    }
    rc = cu_work_new(NULL, &w);
    if (rc == CU_OK)
        rc = cu_work_add(w, cu_audit_checkpoint_apply, &j);
    if (rc == CU_OK)
        rc = cu_committer_run(c, w);
    cu_work_free(w);
    if (rc == CU_OK && j.made) {
        *made = true;
        cu_log(CU_LOG_INFO, "audit.checkpoint", CU_LI("tree_size", j.cp.tree_size));
        if (out != NULL)
            *out = j.cp;
    }
    return rc;
}

/* ---- proofs ---- */

struct range {
    uint64_t start, len; /* leaves [start, start + len) */
};

struct ranges {
    struct range r[CU_MERKLE_MAX_PROOF];
    size_t n;
};

static uint64_t split_point(uint64_t n)
{
    uint64_t k = 1;
    while (k << 1 < n)
        k <<= 1;
    return k;
}

static void push(struct ranges *rs, uint64_t start, uint64_t len)
{
    CU_ASSERT(rs->n < CU_MERKLE_MAX_PROOF);
    rs->r[rs->n].start = start;
    rs->r[rs->n].len = len;
    rs->n++;
}

/* RFC 6962 PATH(m, D[start:start+n]) as leaf ranges, deepest first. */
// NOLINTNEXTLINE(misc-no-recursion): depth is at most 64, one level per bit of the size
static void path_ranges(uint64_t m, uint64_t start, uint64_t n, struct ranges *rs)
{
    if (n <= 1)
        return;
    uint64_t k = split_point(n);
    if (m < k) {
        path_ranges(m, start, k, rs);
        push(rs, start + k, n - k);
    } else {
        path_ranges(m - k, start + k, n - k, rs);
        push(rs, start, k);
    }
}

/* RFC 6962 SUBPROOF(m, D[start:start+n], b) as leaf ranges. */
// NOLINTNEXTLINE(misc-no-recursion): depth is at most 64, one level per bit of the size
static void subproof_ranges(uint64_t m, uint64_t start, uint64_t n, bool b, struct ranges *rs)
{
    if (m == n) {
        if (!b)
            push(rs, start, n);
        return;
    }
    uint64_t k = split_point(n);
    if (m <= k) {
        subproof_ranges(m, start, k, b, rs);
        push(rs, start + k, n - k);
    } else {
        subproof_ranges(m - k, start + k, n - k, false, rs);
        push(rs, start, k);
    }
}

static enum cu_err range_root(struct cu_db *db, const struct range *r, cu_merkle_hash out)
{
    struct cu_merkle_builder b;
    enum cu_err rc;
    cu_merkle_builder_init(&b);
    rc = add_range(db, (int64_t)r->start, (int64_t)(r->start + r->len), &b, NULL);
    if (rc == CU_OK)
        cu_merkle_builder_root(&b, out);
    return rc;
}

static enum cu_err ranges_to_proof(struct cu_db *db, const struct ranges *rs, cu_merkle_hash *proof,
                                   size_t *len)
{
    enum cu_err rc = CU_OK;
    for (size_t i = 0; rc == CU_OK && i < rs->n; i++)
        rc = range_root(db, &rs->r[i], proof[i]);
    *len = rc == CU_OK ? rs->n : 0;
    return rc;
}

static enum cu_err log_length(struct cu_db *db, int64_t *n)
{
    uint8_t h[CU_MERKLE_HASH_BYTES];
    return cu_audit_head(db, n, h);
}

enum cu_err cu_audit_inclusion(struct cu_db *db, int64_t seq, int64_t size, cu_merkle_hash leaf,
                               cu_merkle_hash *proof, size_t *len)
{
    struct ranges rs = {.n = 0};
    uint8_t h[CU_MERKLE_HASH_BYTES];
    int64_t n = 0;
    enum cu_err rc = log_length(db, &n);

    if (rc != CU_OK)
        return rc;
    if (seq < 1 || seq > size || size > n)
        return CU_E_INVALID;
    rc = record_hash_at(db, seq, h);
    if (rc != CU_OK)
        return rc;
    leaf_of(h, leaf);
    path_ranges((uint64_t)(seq - 1), 0, (uint64_t)size, &rs);
    return ranges_to_proof(db, &rs, proof, len);
}

enum cu_err cu_audit_consistency(struct cu_db *db, int64_t from, int64_t to, cu_merkle_hash *proof,
                                 size_t *len)
{
    struct ranges rs = {.n = 0};
    int64_t n = 0;
    enum cu_err rc = log_length(db, &n);

    if (rc != CU_OK)
        return rc;
    if (from < 1 || from > to || to > n)
        return CU_E_INVALID;
    if (from < to)
        subproof_ranges((uint64_t)from, 0, (uint64_t)to, true, &rs);
    return ranges_to_proof(db, &rs, proof, len);
}

/* ---- verification ---- */

struct walk {
    const struct cu_audit *a;
    struct cu_audit_verify_report *rep;
    struct cu_merkle_builder b;
    uint8_t prev[CU_MERKLE_HASH_BYTES];
    int64_t expect; /* the next sequence number */
    struct cu_audit_checkpoint *cps;
    size_t ncps, next_cp;
};

static void broken(struct walk *w, int64_t seq, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Records the first break found; later ones are consequences and are not reported. */
static void broken(struct walk *w, int64_t seq, const char *fmt, ...)
{
    va_list ap;
    if (!w->rep->ok)
        return;
    w->rep->ok = false;
    w->rep->bad_seq = seq;
    va_start(ap, fmt);
    vsnprintf(w->rep->problem, sizeof(w->rep->problem), fmt, ap);
    va_end(ap);
}

static enum cu_err load_checkpoints(struct cu_db *db, struct walk *w)
{
    static const char sql[] =
        "SELECT tree_size, root, created_at, note FROM audit_checkpoints ORDER BY tree_size";
    struct cu_stmt *st = NULL;
    size_t cap = 0;
    bool row = false;
    enum cu_err rc = cu_db_query(db, sql, NULL, 0, &st);

    while (rc == CU_OK && (rc = cu_stmt_next(st, &row)) == CU_OK && row) {
        if (w->ncps == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            struct cu_audit_checkpoint *n = cu_reallocarray(w->cps, ncap, sizeof(*n));
            if (n == NULL) {
                rc = CU_E_NOMEM;
                break;
            }
            w->cps = n;
            cap = ncap;
        }
        rc = row_to_checkpoint(st, &w->cps[w->ncps]);
        if (rc == CU_E_CORRUPT) {
            broken(w, cu_stmt_int(st, 0), "checkpoint of size %lld is malformed",
                   (long long)cu_stmt_int(st, 0));
            rc = CU_OK;
        }
        w->ncps++;
    }
    cu_stmt_done(st);
    return rc;
}

/* Whether a checkpoint's note is signed by the audit key and states its size and root. */
static bool note_ok(const struct walk *w, const struct cu_audit_checkpoint *cp)
{
    uint8_t pub[CU_SIGN_PUBLIC_BYTES];
    char name[CU_NOTE_NAME_MAX + 1], origin[CU_NOTE_NAME_MAX + 1];
    size_t n = strcspn(cp->note, "\n");
    cu_merkle_hash root;
    uint64_t size = 0;

    if (n == 0 || n > CU_NOTE_NAME_MAX)
        return false;
    memcpy(name, cp->note, n);
    name[n] = '\0';
    cu_signer_public_key(cu_audit_signer(w->a), pub);
    return cu_note_open_checkpoint(cp->note, strlen(cp->note), name, pub, origin, &size, root) ==
               CU_OK &&
           size == (uint64_t)cp->tree_size && memcmp(root, cp->root, sizeof(root)) == 0;
}

/* Checks the checkpoints whose tree the walk has just completed. */
static void check_checkpoints(struct walk *w)
{
    while (w->next_cp < w->ncps && w->cps[w->next_cp].tree_size <= (int64_t)w->b.size) {
        const struct cu_audit_checkpoint *cp = &w->cps[w->next_cp++];
        cu_merkle_hash root;
        if (cp->tree_size < (int64_t)w->b.size)
            continue; /* before --from: its root cannot be recomputed here */
        cu_merkle_builder_root(&w->b, root);
        if (memcmp(root, cp->root, sizeof(root)) != 0)
            broken(w, cp->tree_size,
                   "root mismatch: the checkpoint of size %lld does not match "
                   "the records",
                   (long long)cp->tree_size);
        else if (!note_ok(w, cp))
            broken(w, cp->tree_size,
                   "bad signature: the checkpoint of size %lld is not signed by "
                   "this log's key",
                   (long long)cp->tree_size);
        w->rep->checkpoints++;
    }
}

/* Checks one row of the walk's query (the columns of walk_records) against the chain. */
static void check_row(struct walk *w, struct cu_stmt *st)
{
    uint8_t h[CU_MERKLE_HASH_BYTES];
    struct cu_audit_text f[CU_AUDIT_TEXT_FIELDS];
    int64_t seq = cu_stmt_int(st, 0);
    size_t pl = 0, hl = 0;
    cu_merkle_hash leaf;

    if (seq > w->expect) {
        broken(w, w->expect, "gap: record %lld is missing", (long long)w->expect);
        return;
    }
    for (int i = 0; i < CU_AUDIT_TEXT_FIELDS; i++)
        f[i].p = cu_stmt_text(st, 2 + i, &f[i].n);
    const uint8_t *prev = cu_stmt_blob(st, 10, &pl), *hash = cu_stmt_blob(st, 11, &hl);
    if (pl != sizeof(h) || hl != sizeof(h) ||
        cu_audit_hash_parts(prev, seq, cu_stmt_int(st, 1), f, h) != CU_OK ||
        memcmp(h, hash, sizeof(h)) != 0) {
        broken(w, seq, "hash mismatch: record %lld does not match its hash (it was changed)",
               (long long)seq);
        return;
    }
    if (memcmp(prev, w->prev, sizeof(w->prev)) != 0) {
        broken(w, seq,
               "chain break: record %lld does not follow the record before it "
               "(records removed, swapped or inserted)",
               (long long)seq);
        return;
    }
    memcpy(w->prev, hash, sizeof(w->prev));
    leaf_of(hash, leaf);
    cu_merkle_builder_add(&w->b, leaf);
    w->expect++;
    w->rep->records++;
    check_checkpoints(w);
}

/* Sets the walk up to start at seq from: the tree and hash of the records before it. */
static enum cu_err start_at(struct cu_db *db, struct walk *w, int64_t from)
{
    static const char sql[] = "SELECT tree_size, frontier, root FROM audit_checkpoints "
                              "WHERE tree_size < $1 ORDER BY tree_size DESC LIMIT 1";
    const struct cu_val p[] = {CU_VI(from)};
    struct cu_stmt *st = NULL;
    int64_t size = 0;
    bool row = false;
    enum cu_err rc;

    cu_merkle_builder_init(&w->b);
    memset(w->prev, 0, sizeof(w->prev));
    w->expect = from;
    if (from <= 1)
        return CU_OK;
    rc = cu_db_query(db, sql, p, CU_NVALS(p), &st);
    if (rc == CU_OK)
        rc = cu_stmt_next(st, &row);
    if (rc == CU_OK && row) {
        size_t n = 0, rn = 0;
        const void *f = cu_stmt_blob(st, 1, &n), *root = cu_stmt_blob(st, 2, &rn);
        size = cu_stmt_int(st, 0);
        rc = builder_restore(&w->b, size, f, n, root, rn);
    }
    cu_stmt_done(st);
    if (rc == CU_OK)
        rc = add_range(db, size, from - 1, &w->b, NULL);
    if (rc == CU_OK)
        rc = record_hash_at(db, from - 1, w->prev);
    while (w->next_cp < w->ncps && w->cps[w->next_cp].tree_size < from)
        w->next_cp++;
    return rc;
}

/* Streams the records from w->expect on, in order, through check_row. */
static enum cu_err walk_records(struct cu_db *db, struct walk *w, int64_t total,
                                cu_audit_progress_fn progress, void *ctx)
{
    static const char sql[] =
        "SELECT seq, time_ms, actor_type, actor_id, action, target, outcome, request_id, "
        "source, details, prev_hash, hash FROM audit_log WHERE seq >= $1 ORDER BY seq";
    const struct cu_val p[] = {CU_VI(w->expect)};
    struct cu_stmt *st = NULL;
    bool row = false;
    enum cu_err rc = cu_db_query(db, sql, p, CU_NVALS(p), &st);

    while (rc == CU_OK && w->rep->ok && (rc = cu_stmt_next(st, &row)) == CU_OK && row) {
        check_row(w, st);
        if (progress != NULL && w->rep->records % 65536 == 0)
            progress(ctx, w->rep->records, total);
    }
    cu_stmt_done(st);
    if (progress != NULL && rc == CU_OK)
        progress(ctx, w->rep->records, total);
    return rc;
}

/* After the walk: the head must be the last record, and no checkpoint may reach past it. */
static void check_end(struct walk *w, int64_t head, const uint8_t *head_hash)
{
    int64_t last = w->expect - 1;
    if (!w->rep->ok)
        return;
    if (head > last)
        broken(w, last + 1, "gap: record %lld and after are missing (the head says more)",
               (long long)last + 1);
    else if (head < last || memcmp(head_hash, w->prev, CU_MERKLE_HASH_BYTES) != 0)
        broken(w, last, "head mismatch: the chain's head does not name record %lld",
               (long long)last);
    else if (w->next_cp < w->ncps)
        broken(w, last + 1, "gap: a checkpoint covers records after %lld that are missing",
               (long long)last);
}

enum cu_err cu_audit_open_note(const struct cu_audit *a, const char *note, size_t len,
                               struct cu_audit_checkpoint *out)
{
    uint8_t pub[CU_SIGN_PUBLIC_BYTES];
    char name[CU_NOTE_NAME_MAX + 1], origin[CU_NOTE_NAME_MAX + 1];
    size_t n = strcspn(note, "\n");
    uint64_t size = 0;

    memset(out, 0, sizeof(*out));
    if (n == 0 || n > CU_NOTE_NAME_MAX || len >= sizeof(out->note) || n >= len)
        return CU_E_INVALID;
    memcpy(name, note, n);
    name[n] = '\0';
    cu_signer_public_key(cu_audit_signer(a), pub);
    enum cu_err rc = cu_note_open_checkpoint(note, len, name, pub, origin, &size, out->root);
    if (rc == CU_OK && (size == 0 || size > INT64_MAX))
        rc = CU_E_INVALID;
    if (rc != CU_OK)
        return rc;
    out->tree_size = (int64_t)size;
    memcpy(out->note, note, len);
    out->note[len] = '\0';
    return CU_OK;
}

/* Adds a checkpoint kept elsewhere to the walk's list, in size order. */
static enum cu_err add_kept(struct walk *w, const struct cu_audit_checkpoint *kept)
{
    struct cu_audit_checkpoint *n = cu_reallocarray(w->cps, w->ncps + 1, sizeof(*n));
    size_t i;
    if (n == NULL)
        return CU_E_NOMEM;
    w->cps = n;
    for (i = w->ncps; i > 0 && w->cps[i - 1].tree_size > kept->tree_size; i--)
        w->cps[i] = w->cps[i - 1];
    w->cps[i] = *kept;
    w->ncps++;
    return CU_OK;
}

enum cu_err cu_audit_verify(const struct cu_audit *a, struct cu_db *db, int64_t from,
                            cu_audit_progress_fn progress, void *ctx,
                            struct cu_audit_verify_report *rep)
{
    return cu_audit_verify_against(a, db, from, NULL, progress, ctx, rep);
}

enum cu_err cu_audit_verify_against(const struct cu_audit *a, struct cu_db *db, int64_t from,
                                    const struct cu_audit_checkpoint *kept,
                                    cu_audit_progress_fn progress, void *ctx,
                                    struct cu_audit_verify_report *rep)
{
    uint8_t head_hash[CU_MERKLE_HASH_BYTES];
    struct walk w = {.a = a, .rep = rep};
    int64_t head = 0;
    enum cu_err rc;

    memset(rep, 0, sizeof(*rep));
    rep->ok = true;
    if (from < 1)
        from = 1;
    rc = cu_db_begin(db, CU_TXN_READ);
    if (rc != CU_OK)
        return rc;
    rc = cu_audit_head(db, &head, head_hash);
    if (rc == CU_OK)
        rc = load_checkpoints(db, &w);
    if (rc == CU_OK && kept != NULL)
        rc = add_kept(&w, kept);
    if (rc == CU_OK && from > head + 1)
        rc = CU_E_INVALID;
    if (rc == CU_OK)
        rc = start_at(db, &w, from);
    if (rc == CU_E_CORRUPT) {
        broken(&w, from - 1, "chain break before record %lld", (long long)from);
        rc = CU_OK;
    }
    if (rc == CU_OK && rep->ok)
        rc = walk_records(db, &w, head - from + 1, progress, ctx);
    if (rc == CU_OK)
        check_end(&w, head, head_hash);
    cu_db_rollback(db);
    cu_free(w.cps);
    return rc;
}
