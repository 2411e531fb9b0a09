/*
 * session.c - sessions: a token ("css_" + 32 random bytes in base64url) shown once, stored as
 * a keyed BLAKE2b hash, with an assurance level, the time of its last strong sign-in, an idle
 * and an absolute expiry, and the device it was made on.
 *
 * Checking a session is a read; its last-seen time moves at most once a minute, so that a
 * busy session does not turn every request into a write. Idle expiry is therefore exact to
 * within that minute.
 */
#include "identity/identity_int.h"

#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "base/json.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/text.h"

#define PREFIX_LEN 4
#define LAST_SEEN_GRAIN_MS 60000

void cu_identity_token_new(const char *prefix, char out[CU_SESSION_TOKEN_BYTES])
{
    uint8_t raw[CU_TOKEN_BYTES];
    cu_crypto_random(raw, sizeof(raw));
    memcpy(out, prefix, PREFIX_LEN);
    if (cu_b64url_encode(raw, sizeof(raw), out + PREFIX_LEN, CU_SESSION_TOKEN_BYTES - PREFIX_LEN) !=
        CU_OK)
        CU_ASSERT_MSG(0, "a session token fits its buffer");
    cu_crypto_wipe(raw, sizeof(raw));
}

bool cu_identity_token_shape_ok(const char *prefix, const char *token, size_t len)
{
    if (len != CU_SESSION_TOKEN_LEN || memcmp(token, prefix, PREFIX_LEN) != 0)
        return false;
    for (size_t i = PREFIX_LEN; i < len; i++) {
        char c = token[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    }
    return true;
}

/* Copies s into out (cap bytes), cut at a character boundary. */
static void cut(char *out, size_t cap, const char *s)
{
    size_t n = s ? cu_utf8_cut(s, cap - 1) : 0;
    memcpy(out, s ? s : "", n);
    out[n] = '\0';
}

enum cu_err cu_identity_session_create(struct cu_identity *idn, struct cu_db *db,
                                       enum cu_subject_kind kind, const char *id, enum cu_aal aal,
                                       const struct cu_auth_ctx *ctx, struct cu_session_info *info,
                                       char token[CU_SESSION_TOKEN_BYTES])
{
    static const char sql[] =
        "INSERT INTO sessions (id, token_hash, subject_kind, subject_id, aal, created_at, "
        "last_seen_at, auth_at, expires_at, revoked_at, ip, user_agent, device_id) VALUES ($1, "
        "$2, $3, $4, $5, $6, $6, $6, $7, NULL, $8, $9, $10)";
    uint8_t raw[8], hash[CU_HASH_BYTES];
    int64_t now = cu_clock_now_ms();
    enum cu_err rc;

    memset(info, 0, sizeof(*info));
    cu_crypto_random(raw, sizeof(raw));
    memcpy(info->id, "ses_", 4);
    cu_hex_encode(raw, sizeof(raw), info->id + 4);
    info->kind = kind;
    cut(info->subject_id, sizeof(info->subject_id), id);
    info->aal = aal;
    info->created_at = info->last_seen_at = info->auth_at = now;
    info->expires_at = now + idn->opts.session_absolute_ms;
    info->idle_expires_at = now + idn->opts.session_idle_ms;
    cut(info->ip, sizeof(info->ip), ctx ? ctx->ip : NULL);
    cut(info->user_agent, sizeof(info->user_agent), ctx ? ctx->user_agent : NULL);
    cut(info->device_id, sizeof(info->device_id), ctx ? ctx->device_id : NULL);
    cu_identity_token_new("css_", token);
    cu_crypto_keyed_hash(idn->token_key, token, CU_SESSION_TOKEN_LEN, hash);
    const struct cu_val p[] = {CU_VT(info->id),
                               CU_VB(hash, sizeof(hash)),
                               CU_VT(cu_subject_kind_name(kind)),
                               CU_VT(id),
                               CU_VI(aal),
                               CU_VI(now),
                               CU_VI(info->expires_at),
                               CU_VT(info->ip),
                               CU_VT(info->user_agent),
                               CU_VT(info->device_id)};
    rc = cu_db_exec(db, sql, p, CU_NVALS(p));
    if (rc != CU_OK)
        cu_crypto_wipe(token, CU_SESSION_TOKEN_BYTES);
    return rc;
}

#define SESSION_COLUMNS                                                                            \
    "id, subject_kind, subject_id, aal, created_at, last_seen_at, auth_at, expires_at, "           \
    "revoked_at, ip, user_agent, device_id"

static void session_from_row(const struct cu_identity *idn, struct cu_stmt *st,
                             struct cu_session_info *s)
{
    size_t n = 0;
    const char *t;

    memset(s, 0, sizeof(*s));
    t = cu_stmt_text(st, 0, &n);
    cu_text_copy(s->id, sizeof(s->id), t, n);
    t = cu_stmt_text(st, 1, &n);
    s->kind = n == 5 && memcmp(t, "staff", 5) == 0 ? CU_SUBJECT_STAFF : CU_SUBJECT_CUSTOMER;
    t = cu_stmt_text(st, 2, &n);
    cu_text_copy(s->subject_id, sizeof(s->subject_id), t, n);
    s->aal = cu_stmt_int(st, 3) == 2 ? CU_AAL2 : CU_AAL1;
    s->created_at = cu_stmt_int(st, 4);
    s->last_seen_at = cu_stmt_int(st, 5);
    s->auth_at = cu_stmt_int(st, 6);
    s->expires_at = cu_stmt_int(st, 7);
    s->revoked_at = cu_stmt_null(st, 8) ? 0 : cu_stmt_int(st, 8);
    s->idle_expires_at = s->last_seen_at + idn->opts.session_idle_ms;
    if (s->idle_expires_at > s->expires_at)
        s->idle_expires_at = s->expires_at;
    t = cu_stmt_text(st, 9, &n);
    cu_text_copy(s->ip, sizeof(s->ip), t, n);
    t = cu_stmt_text(st, 10, &n);
    cu_text_copy(s->user_agent, sizeof(s->user_agent), t, n);
    t = cu_stmt_text(st, 11, &n);
    cu_text_copy(s->device_id, sizeof(s->device_id), t, n);
}

static bool session_live(const struct cu_session_info *s, int64_t now)
{
    return s->revoked_at == 0 && now < s->expires_at && now < s->idle_expires_at;
}

enum cu_err cu_identity_session_touch(struct cu_identity *idn, struct cu_db *db, const char *id,
                                      int64_t now, bool touch)
{
    /* One statement both holds the session (its row stays locked until the unit commits, so a
     * revocation cannot slip between) and, when touch, moves its last-seen time on. */
    static const char sql[] =
        "UPDATE sessions SET last_seen_at = CASE WHEN $3 = 1 AND last_seen_at < $2 THEN $2 ELSE "
        "last_seen_at END WHERE id = $1 AND revoked_at IS NULL AND expires_at > $2 AND "
        "last_seen_at > $4";
    const struct cu_val p[] = {CU_VT(id), CU_VI(now), CU_VI(touch ? 1 : 0),
                               CU_VI(now - idn->opts.session_idle_ms)};
    enum cu_err rc = cu_db_exec(db, sql, p, CU_NVALS(p));
    return rc == CU_OK && cu_db_changes(db) != 1 ? CU_E_UNAUTHENTICATED : rc;
}

enum cu_err cu_identity_session_check(struct cu_identity *idn, struct cu_db *db, const char *token,
                                      size_t len, struct cu_session_info *out, bool *touch)
{
    static const char sql[] =
        "SELECT " SESSION_COLUMNS ", token_hash FROM sessions WHERE token_hash = $1";
    uint8_t hash[CU_HASH_BYTES];
    struct cu_stmt *q = NULL;
    bool row = false;
    int64_t now = cu_clock_now_ms();
    enum cu_err rc;

    memset(out, 0, sizeof(*out));
    *touch = false;
    if (!cu_identity_token_shape_ok("css_", token, len))
        return CU_E_UNAUTHENTICATED;
    cu_crypto_keyed_hash(idn->token_key, token, len, hash);
    const struct cu_val p[] = {CU_VB(hash, sizeof(hash))};
    rc = cu_db_query(db, sql, p, CU_NVALS(p), &q);
    if (rc == CU_OK)
        rc = cu_stmt_next(q, &row);
    if (rc == CU_OK && !row)
        rc = CU_E_UNAUTHENTICATED;
    if (rc == CU_OK) {
        size_t hl = 0;
        const void *stored = cu_stmt_blob(q, 12, &hl);
        if (hl != sizeof(hash) || !cu_crypto_memeq(stored, hash, sizeof(hash)))
            rc = CU_E_UNAUTHENTICATED;
        else
            session_from_row(idn, q, out);
    }
    cu_stmt_done(q);
    if (rc == CU_OK && !session_live(out, now))
        rc = CU_E_UNAUTHENTICATED;
    if (rc == CU_OK && now - out->last_seen_at >= LAST_SEEN_GRAIN_MS) {
        *touch = true;
        out->last_seen_at = now;
        out->idle_expires_at = now + idn->opts.session_idle_ms;
        if (out->idle_expires_at > out->expires_at)
            out->idle_expires_at = out->expires_at;
    }
    return rc;
}

bool cu_identity_session_fresh(const struct cu_identity *idn, const struct cu_session_info *s,
                               bool has_totp, int64_t now)
{
    if (now - s->auth_at > idn->opts.step_up_ms || now < s->auth_at)
        return false;
    return !has_totp || s->aal == CU_AAL2;
}

enum cu_err cu_identity_sessions_list(struct cu_identity *idn, struct cu_db *db,
                                      enum cu_subject_kind kind, const char *id,
                                      struct cu_session_info **out, size_t *n)
{
    static const char sql[] = "SELECT " SESSION_COLUMNS " FROM sessions WHERE subject_kind = $1 "
                              "AND subject_id = $2 AND revoked_at IS NULL AND expires_at > $3 "
                              "ORDER BY created_at DESC, id LIMIT 100";
    int64_t now = cu_clock_now_ms();
    const struct cu_val p[] = {CU_VT(cu_subject_kind_name(kind)), CU_VT(id), CU_VI(now)};
    struct cu_session_info *items = cu_calloc(100, sizeof(*items));
    struct cu_stmt *st = NULL;
    size_t count = 0;
    bool row = false;
    enum cu_err rc = items ? cu_db_query(db, sql, p, CU_NVALS(p), &st) : CU_E_NOMEM;

    while (rc == CU_OK && count < 100 && (rc = cu_stmt_next(st, &row)) == CU_OK && row) {
        session_from_row(idn, st, &items[count]);
        if (session_live(&items[count], now))
            count++;
    }
    cu_stmt_done(st);
    if (rc != CU_OK) {
        cu_free(items);
        return rc;
    }
    *out = items;
    *n = count;
    return CU_OK;
}

enum cu_err cu_identity_sessions_revoke_all(struct cu_db *db, enum cu_subject_kind kind,
                                            const char *id, const char *keep, int64_t now,
                                            int64_t *count)
{
    static const char sql[] = "UPDATE sessions SET revoked_at = $3 WHERE subject_kind = $1 AND "
                              "subject_id = $2 AND revoked_at IS NULL AND id <> $4";
    const struct cu_val p[] = {CU_VT(cu_subject_kind_name(kind)), CU_VT(id), CU_VI(now),
                               CU_VT(keep ? keep : "")};
    enum cu_err rc = cu_db_exec(db, sql, p, CU_NVALS(p));
    *count = rc == CU_OK ? cu_db_changes(db) : 0;
    return rc;
}

/* revoke(w, db, kind, id, session_id, count): cu_identity_session_revoke, counting. */
static enum cu_err revoke(struct cu_work *w, struct cu_db *db, enum cu_subject_kind kind,
                          const char *id, const char *session_id, int64_t *count)
{
    static const char one[] = "UPDATE sessions SET revoked_at = $4 WHERE id = $3 AND "
                              "subject_kind = $1 AND subject_id = $2 AND revoked_at IS NULL AND "
                              "expires_at > $4";
    int64_t now = cu_clock_now_ms();
    enum cu_err rc;

    *count = 0;
    if (session_id != NULL) {
        const struct cu_val p[] = {CU_VT(cu_subject_kind_name(kind)), CU_VT(id), CU_VT(session_id),
                                   CU_VI(now)};
        rc = cu_db_exec(db, one, p, CU_NVALS(p));
        *count = rc == CU_OK ? cu_db_changes(db) : 0;
        if (rc == CU_OK && *count != 1)
            rc = CU_E_NOT_FOUND;
    } else {
        rc = cu_identity_sessions_revoke_all(db, kind, id, NULL, now, count);
    }
    if (rc == CU_OK)
        rc = cu_identity_audit_add(w, "session.revoked", session_id ? session_id : id, "success",
                                   json_pack("{s:s, s:s, s:I}", "subject_kind",
                                             cu_subject_kind_name(kind), "subject_id", id,
                                             "sessions", (json_int_t)*count));
    return rc;
}

enum cu_err cu_identity_session_revoke(struct cu_identity *idn, struct cu_work *w, struct cu_db *db,
                                       enum cu_subject_kind kind, const char *id,
                                       const char *session_id)
{
    int64_t count;
    (void)idn;
    return revoke(w, db, kind, id, session_id, &count);
}

enum cu_err cu_identity_session_revoke_all(struct cu_identity *idn, struct cu_work *w,
                                           struct cu_db *db, enum cu_subject_kind kind,
                                           const char *id, int64_t *count)
{
    (void)idn;
    return revoke(w, db, kind, id, NULL, count);
}

enum cu_err cu_identity_password_force_reset(struct cu_identity *idn, struct cu_work *w,
                                             struct cu_db *db, const char *id, bool *cleared,
                                             int64_t *sessions)
{
    static const char sql[] =
        "UPDATE credentials SET password_hash = NULL, updated_at = $3 WHERE subject_kind = $1 AND "
        "subject_id = $2 AND password_hash IS NOT NULL";
    const struct cu_val p[] = {CU_VT(cu_subject_kind_name(CU_SUBJECT_CUSTOMER)), CU_VT(id),
                               CU_VI(cu_work_context_of(w)->now_ms)};
    enum cu_err rc = cu_db_exec(db, sql, p, CU_NVALS(p));

    *cleared = rc == CU_OK && cu_db_changes(db) > 0;
    *sessions = 0;
    if (rc == CU_OK)
        rc = cu_identity_session_revoke_all(idn, w, db, CU_SUBJECT_CUSTOMER, id, sessions);
    if (rc == CU_OK && *cleared)
        rc = cu_identity_audit_add(w, "password.reset_forced", id, "success", NULL);
    return rc;
}
