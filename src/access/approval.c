/*
 * approval.c - four-eyes requests in the store: made, voted on, run once, closed. Payloads and
 * results are sealed under a DEK of the request's own (vault/envelope.h), with associated data
 * "approvals|<column>|<id>", and kept as base64url text.
 */
#include "access/approval.h"

#include <stdio.h>
#include <string.h>

#include "base/mem.h"
#include "base/text.h"
#include "crypto/crypto.h"

const struct cu_envelope_kind cu_approval_keys = CU_ENVELOPE_KIND(
    "approval", "approval_dek", "approvals", "id", "1", "approval_secrets", "approval_id");

struct cu_approvals {
    struct cu_envelope *env;
    enum cu_aead alg;
};

static const char *const status_names[] = {"pending",  "approved",  "executed", "failed",
                                           "rejected", "cancelled", "expired"};
#define NSTATUS (sizeof(status_names) / sizeof(status_names[0]))

const char *cu_approval_status_name(enum cu_approval_status s)
{
    return (size_t)s < NSTATUS ? status_names[s] : NULL;
}

bool cu_approval_status_parse(const char *name, enum cu_approval_status *out)
{
    for (size_t i = 0; i < NSTATUS; i++)
        if (strcmp(name, status_names[i]) == 0) {
            *out = (enum cu_approval_status)i;
            return true;
        }
    return false;
}

enum cu_err cu_approvals_new(struct cu_kek_source *kek, enum cu_aead alg, struct cu_approvals **out)
{
    struct cu_approvals *s = cu_calloc(1, sizeof(*s));
    enum cu_err rc;

    *out = NULL;
    if (s == NULL)
        return CU_E_NOMEM;
    s->alg = alg;
    rc = cu_envelope_new(&cu_approval_keys, kek, alg, &s->env);
    if (rc != CU_OK) {
        cu_free(s);
        return rc;
    }
    *out = s;
    return CU_OK;
}

void cu_approvals_free(struct cu_approvals *s)
{
    if (s == NULL)
        return;
    cu_envelope_free(s->env);
    cu_free(s);
}

struct cu_envelope *cu_approvals_envelope(struct cu_approvals *s)
{
    return s->env;
}

enum cu_err cu_approval_rewrap(struct cu_kek_source *kek, struct cu_db *db, size_t batch,
                               size_t *done)
{
    struct cu_envelope *env = NULL;
    /* re-wrapping seals no value, so the algorithm is not used */
    enum cu_err rc = cu_envelope_new(&cu_approval_keys, kek, CU_AEAD_XCHACHA20POLY1305, &env);

    *done = 0;
    if (rc == CU_OK)
        rc = cu_envelope_rewrap(env, db, batch, done);
    cu_envelope_free(env);
    return rc;
}

enum cu_err cu_approval_kek_usage(struct cu_db *db, uint32_t version, int64_t *count)
{
    return cu_envelope_kek_usage(&cu_approval_keys, db, version, count);
}

/* ---- sealing ---- */

/* Seals len bytes under dek for column of request id, into a base64url text (cu_free). */
static enum cu_err seal_text(const struct cu_approvals *s, const struct cu_secret *dek,
                             const char *column, const char *id, const void *plain, size_t len,
                             char **text)
{
    char ad[CU_ENVELOPE_AD_BYTES];
    size_t cap = cu_crypto_sealed_len(s->alg, len), outlen = 0;
    uint8_t *ct = NULL;
    enum cu_err rc = cu_envelope_ad("approvals", column, id, ad);

    *text = NULL;
    if (rc != CU_OK)
        return rc;
    ct = cu_malloc(cap);
    *text = ct != NULL ? cu_malloc(CU_B64URL_LEN(cap) + 1) : NULL;
    if (*text == NULL) {
        cu_free(ct);
        return CU_E_NOMEM;
    }
    rc = cu_crypto_seal(dek, 1, s->alg, plain, len, (const uint8_t *)ad, strlen(ad), ct, cap,
                        &outlen);
    if (rc == CU_OK)
        rc = cu_b64url_encode(ct, outlen, *text, CU_B64URL_LEN(cap) + 1);
    cu_free(ct);
    if (rc != CU_OK) {
        cu_free(*text);
        *text = NULL;
    }
    return rc;
}

/* Opens the sealed text of column of request id under its DEK, into out (appended). */
static enum cu_err open_text(struct cu_approvals *s, struct cu_db *db, const char *column,
                             const char *id, const char *text, size_t tlen, struct cu_buf *out)
{
    char ad[CU_ENVELOPE_AD_BYTES];
    size_t cap = tlen / 4 * 3 + 3, ctlen = 0, plen = 0;
    uint8_t *ct = NULL;
    char *at = NULL;
    struct cu_secret *dek = cu_envelope_dek_borrow();
    uint32_t version = 0;
    enum cu_err rc = dek != NULL ? cu_envelope_ad("approvals", column, id, ad) : CU_E_NOMEM;

    if (rc == CU_OK)
        rc = cu_envelope_dek_load(s->env, db, id, dek, &version);
    if (rc == CU_OK && (ct = cu_malloc(cap)) == NULL)
        rc = CU_E_NOMEM;
    if (rc == CU_OK)
        rc = cu_b64url_decode(text, tlen, ct, cap, &ctlen) == CU_OK ? CU_OK : CU_E_CORRUPT;
    if (rc == CU_OK && (at = cu_malloc(ctlen + 1)) == NULL)
        rc = CU_E_NOMEM;
    if (rc == CU_OK)
        rc = cu_crypto_open(dek, version, ct, ctlen, (const uint8_t *)ad, strlen(ad), (uint8_t *)at,
                            ctlen, &plen);
    if (rc == CU_OK)
        rc = cu_buf_append(out, at, plen);
    if (at != NULL)
        cu_crypto_wipe(at, ctlen + 1);
    cu_free(at);
    cu_free(ct);
    cu_envelope_dek_return(dek);
    return rc;
}

/* ---- rows ---- */

#define COLUMNS                                                                                    \
    "id, permission, method, path, requester_kind, requester, requester_owner, aal, needed, "      \
    "status, created_at, expires_at, decided_at, result_status, result_detail, "                   \
    "result IS NOT NULL"

static void text_col(struct cu_stmt *st, int col, char *out, size_t cap)
{
    size_t len = 0;
    const char *s = cu_stmt_text(st, col, &len);
    cu_text_copy(out, cap, s, len);
}

static void from_row(struct cu_stmt *st, struct cu_approval *a)
{
    char status[16];

    memset(a, 0, sizeof(*a));
    text_col(st, 0, a->id, sizeof(a->id));
    text_col(st, 1, a->permission, sizeof(a->permission));
    text_col(st, 2, a->method, sizeof(a->method));
    text_col(st, 3, a->path, sizeof(a->path));
    text_col(st, 4, a->requester_kind, sizeof(a->requester_kind));
    text_col(st, 5, a->requester, sizeof(a->requester));
    text_col(st, 6, a->requester_owner, sizeof(a->requester_owner));
    a->aal = (int)cu_stmt_int(st, 7);
    a->needed = (unsigned)cu_stmt_int(st, 8);
    text_col(st, 9, status, sizeof(status));
    if (!cu_approval_status_parse(status, &a->status))
        a->status = CU_APPROVAL_FAILED; /* never run what cannot be read */
    a->created_at = cu_stmt_int(st, 10);
    a->expires_at = cu_stmt_int(st, 11);
    a->decided_at = cu_stmt_null(st, 12) ? 0 : cu_stmt_int(st, 12);
    a->result_status = cu_stmt_null(st, 13) ? 0 : (int)cu_stmt_int(st, 13);
    if (!cu_stmt_null(st, 14))
        text_col(st, 14, a->result_detail, sizeof(a->result_detail));
    a->has_result = cu_stmt_int(st, 15) != 0;
}

static enum cu_err load_votes(struct cu_db *db, struct cu_approval *a)
{
    static const char sql[] = "SELECT staff_id, vote, at FROM approval_votes WHERE approval_id = "
                              "$1 ORDER BY at, staff_id";
    const struct cu_val p[] = {CU_VT(a->id)};
    struct cu_stmt *st = NULL;
    bool row = false;
    enum cu_err rc = cu_db_query(db, sql, p, CU_NVALS(p), &st);

    a->nvotes = 0;
    while (rc == CU_OK && (rc = cu_stmt_next(st, &row)) == CU_OK && row &&
           a->nvotes < CU_APPROVAL_VOTERS_MAX) {
        struct cu_approval_vote *v = &a->votes[a->nvotes++];
        char vote[16];
        text_col(st, 0, v->staff_id, sizeof(v->staff_id));
        text_col(st, 1, vote, sizeof(vote));
        v->approve = strcmp(vote, "approve") == 0;
        v->at = cu_stmt_int(st, 2);
    }
    cu_stmt_done(st);
    return rc;
}

enum cu_err cu_approval_get(struct cu_db *db, const char *id, struct cu_approval *out)
{
    static const char sql[] = "SELECT " COLUMNS " FROM approvals WHERE id = $1";
    const struct cu_val p[] = {CU_VT(id)};
    struct cu_stmt *st = NULL;
    bool row = false;
    enum cu_err rc = cu_db_query(db, sql, p, CU_NVALS(p), &st);

    if (rc == CU_OK)
        rc = cu_stmt_next(st, &row);
    if (rc == CU_OK && !row)
        rc = CU_E_NOT_FOUND;
    if (rc == CU_OK)
        from_row(st, out);
    cu_stmt_done(st);
    return rc == CU_OK ? load_votes(db, out) : rc;
}

enum cu_err cu_approval_list(struct cu_db *db, const enum cu_approval_status *status,
                             const char *after, size_t limit, struct cu_approval **items, size_t *n)
{
    static const char sql[] = "SELECT " COLUMNS " FROM approvals WHERE id > $1 AND ($2 = '' OR "
                              "status = $2) ORDER BY id LIMIT $3";
    const char *want = status != NULL ? cu_approval_status_name(*status) : "";
    const struct cu_val p[] = {CU_VT(after != NULL ? after : ""), CU_VT(want ? want : ""),
                               CU_VI(limit)};
    struct cu_stmt *st = NULL;
    bool row = false;
    enum cu_err rc;

    *n = 0;
    *items = limit > 0 ? cu_calloc(limit, sizeof(**items)) : NULL;
    if (*items == NULL)
        return limit > 0 ? CU_E_NOMEM : CU_OK;
    rc = cu_db_query(db, sql, p, CU_NVALS(p), &st);
    while (rc == CU_OK && (rc = cu_stmt_next(st, &row)) == CU_OK && row && *n < limit)
        from_row(st, &(*items)[(*n)++]);
    cu_stmt_done(st);
    if (rc != CU_OK) {
        cu_free(*items);
        *items = NULL;
        *n = 0;
    }
    return rc;
}

enum cu_err cu_approval_create(struct cu_approvals *s, struct cu_db *db, struct cu_approval *a,
                               const uint8_t digest[32], const char *payload, size_t len)
{
    static const char sql[] =
        "INSERT INTO approvals (id, permission, method, path, digest, requester_kind, requester, "
        "requester_owner, aal, needed, status, created_at, expires_at, dek_wrapped, "
        "kek_version, payload) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'pending', $11, "
        "$12, $13, $14, $15)";
    uint8_t raw[8];
    struct cu_secret *dek = NULL;
    struct cu_envelope_wrapped w;
    char *sealed = NULL;
    enum cu_err rc;

    if (len > CU_APPROVAL_PAYLOAD_MAX)
        return CU_E_TOO_LARGE;
    cu_crypto_random(raw, sizeof(raw));
    memcpy(a->id, "apr_", 4);
    cu_hex_encode(raw, sizeof(raw), a->id + 4);
    a->status = CU_APPROVAL_PENDING;
    a->nvotes = 0;
    rc = cu_envelope_dek_new(s->env, a->id, &dek, &w);
    if (rc == CU_OK)
        rc = seal_text(s, dek, "payload", a->id, payload, len, &sealed);
    cu_secret_free(dek);
    if (rc == CU_OK) {
        const struct cu_val p[] = {
            CU_VT(a->id),         CU_VT(a->permission),      CU_VT(a->method),
            CU_VT(a->path),       CU_VB(digest, 32),         CU_VT(a->requester_kind),
            CU_VT(a->requester),  CU_VT(a->requester_owner), CU_VI(a->aal),
            CU_VI(a->needed),     CU_VI(a->created_at),      CU_VI(a->expires_at),
            CU_VB(w.data, w.len), CU_VI(w.kek_version),      CU_VT(sealed)};
        rc = cu_db_exec(db, sql, p, CU_NVALS(p));
    }
    cu_free(sealed);
    return rc;
}

enum cu_err cu_approval_set_status(struct cu_db *db, const char *id, enum cu_approval_status from,
                                   enum cu_approval_status to, int64_t now)
{
    static const char sql[] = "UPDATE approvals SET status = $3, decided_at = $4 WHERE id = $1 "
                              "AND status = $2";
    const struct cu_val p[] = {CU_VT(id), CU_VT(cu_approval_status_name(from)),
                               CU_VT(cu_approval_status_name(to)), CU_VI(now)};
    struct cu_approval a;
    enum cu_err rc = cu_db_exec(db, sql, p, CU_NVALS(p));

    if (rc == CU_OK && cu_db_changes(db) != 1)
        rc = cu_approval_get(db, id, &a) == CU_E_NOT_FOUND ? CU_E_NOT_FOUND : CU_E_EXISTS;
    return rc;
}

enum cu_err cu_approval_close(struct cu_db *db, const char *id)
{
    static const char sql[] = "UPDATE approvals SET payload = NULL, result = NULL WHERE id = $1";
    const struct cu_val p[] = {CU_VT(id)};
    enum cu_err rc = cu_db_exec(db, sql, p, CU_NVALS(p));

    if (rc == CU_OK) {
        rc = cu_envelope_destroy(&cu_approval_keys, db, id);
        if (rc == CU_E_NOT_FOUND) /* closed already */
            rc = CU_OK;
    }
    return rc;
}

enum cu_err cu_approval_vote(struct cu_db *db, const char *id, const char *staff_id, bool approve,
                             int64_t now, cu_approval_voter_fn still, void *arg,
                             struct cu_approval *out)
{
    static const char vote_sql[] =
        "INSERT INTO approval_votes (approval_id, staff_id, vote, at) VALUES ($1, $2, $3, $4)";
    enum cu_err rc = cu_approval_get(db, id, out);
    size_t yes = 0;

    if (rc != CU_OK)
        return rc;
    if (out->status != CU_APPROVAL_PENDING)
        return CU_E_EXISTS;
    if (out->expires_at <= now) {
        /* seen as expired; the server's housekeeping marks it so (a failing unit keeps
         * nothing) */
        out->status = CU_APPROVAL_EXPIRED;
        return CU_E_EXISTS;
    }
    for (size_t i = 0; i < out->nvotes; i++)
        if (strcmp(out->votes[i].staff_id, staff_id) == 0)
            return CU_E_EXISTS;
    const struct cu_val p[] = {CU_VT(id), CU_VT(staff_id), CU_VT(approve ? "approve" : "reject"),
                               CU_VI(now)};
    rc = cu_db_exec(db, vote_sql, p, CU_NVALS(p));
    if (rc != CU_OK)
        return rc;
    rc = load_votes(db, out);
    for (size_t i = 0; rc == CU_OK && i < out->nvotes; i++)
        yes += out->votes[i].approve && (strcmp(out->votes[i].staff_id, staff_id) == 0 ||
                                         still == NULL || still(arg, db, out->votes[i].staff_id));
    if (rc == CU_OK && !approve) {
        rc = cu_approval_set_status(db, id, CU_APPROVAL_PENDING, CU_APPROVAL_REJECTED, now);
        if (rc == CU_OK)
            rc = cu_approval_close(db, id);
        out->status = CU_APPROVAL_REJECTED;
        out->decided_at = now;
    } else if (rc == CU_OK && yes >= out->needed) {
        rc = cu_approval_set_status(db, id, CU_APPROVAL_PENDING, CU_APPROVAL_APPROVED, now);
        out->status = CU_APPROVAL_APPROVED;
        out->decided_at = now;
    }
    return rc;
}

/* Opens the sealed value a statement (sql, of one column, for $1 = id) reads, into out. */
static enum cu_err open_column(struct cu_approvals *s, struct cu_db *db, const char *sql,
                               const char *column, const char *id, struct cu_buf *out)
{
    const struct cu_val p[] = {CU_VT(id)};
    struct cu_stmt *st = NULL;
    bool row = false;
    size_t len = 0;
    enum cu_err rc = cu_db_query(db, sql, p, CU_NVALS(p), &st);

    if (rc == CU_OK)
        rc = cu_stmt_next(st, &row);
    if (rc == CU_OK && !row)
        rc = CU_E_NOT_FOUND;
    if (rc == CU_OK) {
        const char *text = cu_stmt_text(st, 0, &len);
        rc = open_text(s, db, column, id, text, len, out);
    }
    cu_stmt_done(st);
    return rc;
}

enum cu_err cu_approval_payload(struct cu_approvals *s, struct cu_db *db, const char *id,
                                struct cu_buf *out)
{
    static const char sql[] = "SELECT payload FROM approvals WHERE id = $1 AND payload IS NOT NULL";
    return open_column(s, db, sql, "payload", id, out);
}

enum cu_err cu_approval_finish(struct cu_approvals *s, struct cu_db *db, const char *id, int status,
                               const char *detail, const char *body, size_t len)
{
    static const char sql[] = "UPDATE approvals SET result_status = $2, result_detail = $3, "
                              "result = $4, payload = NULL WHERE id = $1";
    struct cu_secret *dek = NULL;
    char *sealed = NULL;
    uint32_t version = 0;
    enum cu_err rc = CU_OK;

    if (body != NULL && len > 0 && len <= CU_APPROVAL_RESULT_MAX) {
        dek = cu_envelope_dek_borrow();
        rc = dek != NULL ? cu_envelope_dek_load(s->env, db, id, dek, &version) : CU_E_NOMEM;
        if (rc == CU_OK)
            rc = seal_text(s, dek, "result", id, body, len, &sealed);
        cu_envelope_dek_return(dek);
    }
    if (rc == CU_OK) {
        const struct cu_val p[] = {CU_VT(id), CU_VI(status), CU_VT(detail),
                                   sealed != NULL ? CU_VT(sealed) : CU_VNULL};
        rc = cu_db_exec(db, sql, p, CU_NVALS(p));
    }
    if (rc == CU_OK && sealed == NULL)
        rc = cu_approval_close(db, id);
    cu_free(sealed);
    return rc;
}

enum cu_err cu_approval_result_take(struct cu_approvals *s, struct cu_db *db, const char *id,
                                    struct cu_buf *out)
{
    static const char sql[] = "SELECT result FROM approvals WHERE id = $1 AND result IS NOT NULL";
    enum cu_err rc = open_column(s, db, sql, "result", id, out);
    return rc == CU_OK ? cu_approval_close(db, id) : rc;
}

enum cu_err cu_approval_drop_results(struct cu_db *db, int64_t before, int64_t *n)
{
    /* the request's key goes with the answer, as cu_approval_close destroys it (no secret is
     * kept beside it) */
    static const char sql[] = "UPDATE approvals SET result = NULL, payload = NULL, dek_wrapped = "
                              "NULL, kek_version = NULL WHERE result IS NOT NULL AND decided_at "
                              "<= $1";
    const struct cu_val p[] = {CU_VI(before)};
    enum cu_err rc = cu_db_exec(db, sql, p, CU_NVALS(p));

    *n = rc == CU_OK ? cu_db_changes(db) : 0;
    return rc;
}

enum cu_err cu_approval_due(struct cu_db *db, int64_t now, char (*expired)[CU_APPROVAL_ID_BYTES],
                            size_t cap, size_t *n, char (*approved)[CU_APPROVAL_ID_BYTES],
                            size_t acap, size_t *an, int64_t before)
{
    static const char sql[] = "SELECT id FROM approvals WHERE status = $1 AND expires_at <= $2 "
                              "ORDER BY expires_at LIMIT $3";
    static const char run_sql[] = "SELECT id FROM approvals WHERE status = $1 AND decided_at <= "
                                  "$3 ORDER BY decided_at LIMIT $2";
    struct cu_stmt *st = NULL;
    bool row = false;
    const struct cu_val p[] = {CU_VT("pending"), CU_VI(now), CU_VI(cap)};
    const struct cu_val q[] = {CU_VT("approved"), CU_VI(acap), CU_VI(before)};
    enum cu_err rc = cu_db_query(db, sql, p, CU_NVALS(p), &st);

    *n = 0;
    *an = 0;
    while (rc == CU_OK && (rc = cu_stmt_next(st, &row)) == CU_OK && row && *n < cap)
        text_col(st, 0, expired[(*n)++], CU_APPROVAL_ID_BYTES);
    cu_stmt_done(st);
    st = NULL;
    if (rc == CU_OK)
        rc = cu_db_query(db, run_sql, q, CU_NVALS(q), &st);
    while (rc == CU_OK && (rc = cu_stmt_next(st, &row)) == CU_OK && row && *an < acap)
        text_col(st, 0, approved[(*an)++], CU_APPROVAL_ID_BYTES);
    cu_stmt_done(st);
    return rc;
}
