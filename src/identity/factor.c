/*
 * factor.c - second factors: TOTP enrolment and use, and recovery codes.
 *
 * A TOTP secret is sealed under the subject's key ("totp_pending" while enrolment waits for a
 * first code, then "totp"). The last step a code was accepted for is kept with the
 * credentials, and moves only forward inside the write transaction that accepts a code, so a
 * code works once even when two requests race with it.
 *
 * Recovery codes are ten characters of a 32-letter alphabet (50 bits), shown as "xxxxx-xxxxx";
 * the store keeps a keyed BLAKE2b of the subject and the code, and marks a code used.
 */
#include "identity/identity_int.h"

#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/text.h"

static const char code_alphabet[] = "0123456789abcdefghjkmnpqrstvwxyz";
#define CODE_CHARS 10

static void recovery_code_new(char out[CU_RECOVERY_CODE_BYTES])
{
    uint8_t raw[CODE_CHARS];
    size_t j = 0;
    cu_crypto_random(raw, sizeof(raw));
    for (size_t i = 0; i < CODE_CHARS; i++) {
        if (i == 5)
            out[j++] = '-';
        out[j++] = code_alphabet[raw[i] & 31];
    }
    out[j] = '\0';
    cu_crypto_wipe(raw, sizeof(raw));
}

/* The canonical form of a typed recovery code: lower case, separators dropped, letters that
 * look alike mapped (o to 0, i and l to 1). CU_E_INVALID when it is not ten alphabet letters. */
static enum cu_err recovery_code_normalize(const char *in, char out[CODE_CHARS + 1])
{
    size_t n = 0;
    for (size_t i = 0; i < 64 && in[i] != '\0'; i++) {
        char c = in[i];
        if (c == '-' || c == ' ')
            continue;
        c = cu_ascii_lower(c);
        c = (char)(c == 'o' ? '0' : (c == 'i' || c == 'l') ? '1' : c);
        if (c == '\0' || strchr(code_alphabet, c) == NULL || n == CODE_CHARS)
            return CU_E_INVALID;
        out[n++] = c;
    }
    out[n] = '\0';
    return n == CODE_CHARS ? CU_OK : CU_E_INVALID;
}

static void recovery_hash(const struct cu_identity *idn, enum cu_subject_kind kind, const char *id,
                          const char *norm, uint8_t out[CU_HASH_BYTES])
{
    char msg[128];
    int n = snprintf(msg, sizeof(msg), "%s|%s|%s", cu_subject_kind_name(kind), id, norm);
    cu_crypto_keyed_hash(idn->code_key, msg, (size_t)n, out);
    cu_crypto_wipe(msg, sizeof(msg));
}

enum cu_err
cu_identity_recovery_codes_replace(struct cu_identity *idn, struct cu_db *db,
                                   enum cu_subject_kind kind, const char *id,
                                   char codes[CU_RECOVERY_CODES][CU_RECOVERY_CODE_BYTES])
{
    static const char del[] = "DELETE FROM recovery_codes WHERE subject_kind = $1 AND "
                              "subject_id = $2";
    static const char ins[] = "INSERT INTO recovery_codes (subject_kind, subject_id, code_hash, "
                              "created_at, used_at) VALUES ($1, $2, $3, $4, NULL)";
    const struct cu_val d[] = {CU_VT(cu_subject_kind_name(kind)), CU_VT(id)};
    enum cu_err rc = cu_db_exec(db, del, d, CU_NVALS(d));

    for (size_t i = 0; rc == CU_OK && i < CU_RECOVERY_CODES; i++) {
        char norm[CODE_CHARS + 1];
        uint8_t h[CU_HASH_BYTES];
        recovery_code_new(codes[i]);
        if (recovery_code_normalize(codes[i], norm) != CU_OK)
            CU_ASSERT_MSG(0, "a fresh recovery code is well formed");
        recovery_hash(idn, kind, id, norm, h);
        cu_crypto_wipe(norm, sizeof(norm));
        const struct cu_val p[] = {CU_VT(cu_subject_kind_name(kind)), CU_VT(id),
                                   CU_VB(h, sizeof(h)), CU_VI(cu_clock_now_ms())};
        rc = cu_db_exec(db, ins, p, CU_NVALS(p));
    }
    if (rc != CU_OK)
        cu_crypto_wipe(codes, (size_t)CU_RECOVERY_CODES * CU_RECOVERY_CODE_BYTES);
    return rc;
}

static bool all_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
    }
    return true;
}

static enum cu_err totp_use(struct cu_identity *idn, struct cu_db *db, enum cu_subject_kind kind,
                            const char *id, const char *code)
{
    static const char adv[] = "UPDATE credentials SET totp_last_step = $3, updated_at = $4 "
                              "WHERE subject_kind = $1 AND subject_id = $2 AND totp_last_step < $3";
    uint8_t secret[CU_TOTP_SECRET_BYTES];
    struct cred c;
    size_t n = 0;
    int64_t step = 0, now = cu_clock_now_ms();
    enum cu_err rc = cu_identity_cred_load(db, kind, id, &c);

    if (rc == CU_OK && !c.totp_enabled)
        rc = CU_E_BAD_CREDENTIALS;
    if (rc == CU_OK)
        rc = cu_identity_secret_get(idn, db, kind, id, "totp", secret, sizeof(secret), &n);
    if (rc == CU_OK && n != sizeof(secret))
        rc = CU_E_CORRUPT;
    if (rc == CU_OK) {
        rc = cu_totp_verify(secret, n, now / 1000, code, strlen(code), c.totp_last_step, &step);
        if (rc == CU_E_INVALID || rc == CU_E_EXISTS)
            rc = CU_E_BAD_CREDENTIALS;
    }
    cu_crypto_wipe(secret, sizeof(secret));
    cu_identity_cred_wipe(&c);
    const struct cu_val p[] = {CU_VT(cu_subject_kind_name(kind)), CU_VT(id), CU_VI(step),
                               CU_VI(now)};
    if (rc == CU_OK)
        rc = cu_db_exec(db, adv, p, CU_NVALS(p));
    /* Another request took this step first: a replay. */
    if (rc == CU_OK && cu_db_changes(db) != 1)
        rc = CU_E_BAD_CREDENTIALS;
    return rc;
}

static enum cu_err recovery_use(struct cu_identity *idn, struct cu_db *db,
                                enum cu_subject_kind kind, const char *id, const char *code)
{
    static const char use[] = "UPDATE recovery_codes SET used_at = $4 WHERE subject_kind = $1 "
                              "AND subject_id = $2 AND code_hash = $3 AND used_at IS NULL";
    char norm[CODE_CHARS + 1];
    uint8_t h[CU_HASH_BYTES];
    enum cu_err rc = recovery_code_normalize(code, norm);

    if (rc != CU_OK)
        return CU_E_BAD_CREDENTIALS;
    recovery_hash(idn, kind, id, norm, h);
    cu_crypto_wipe(norm, sizeof(norm));
    const struct cu_val p[] = {CU_VT(cu_subject_kind_name(kind)), CU_VT(id), CU_VB(h, sizeof(h)),
                               CU_VI(cu_clock_now_ms())};
    rc = cu_db_exec(db, use, p, CU_NVALS(p));
    if (rc == CU_OK && cu_db_changes(db) != 1)
        rc = CU_E_BAD_CREDENTIALS;
    return rc;
}

enum cu_err cu_identity_second_factor_use(struct cu_identity *idn, struct cu_db *db,
                                          enum cu_subject_kind kind, const char *id,
                                          const char *code, const char **method)
{
    size_t n = strnlen(code, 65);
    if (n == CU_TOTP_DIGITS && all_digits(code, n)) {
        *method = "totp";
        return totp_use(idn, db, kind, id, code);
    }
    *method = "recovery_code";
    return recovery_use(idn, db, kind, id, code);
}

enum cu_err cu_identity_totp_begin(struct cu_identity *idn, struct cu_work *w, struct cu_db *db,
                                   enum cu_subject_kind kind, const char *id, const char *account,
                                   char *uri, size_t urilen, struct cu_buf *svg)
{
    uint8_t secret[CU_TOTP_SECRET_BYTES];
    enum cu_err rc;

    cu_totp_secret_new(secret);
    rc = cu_identity_secret_put(idn, db, kind, id, "totp_pending", secret, sizeof(secret));
    if (rc == CU_OK)
        rc = cu_totp_uri(secret, idn->totp_issuer, account, uri, urilen);
    if (rc == CU_OK)
        rc = cu_totp_qr_svg(uri, svg);
    if (rc == CU_OK)
        rc = cu_identity_audit_add(w, "mfa.totp_enrolment_started", id, "success",
                                   json_pack("{s:s}", "subject_kind", cu_subject_kind_name(kind)));
    cu_crypto_wipe(secret, sizeof(secret));
    if (rc != CU_OK)
        cu_crypto_wipe(uri, urilen);
    return rc;
}

static enum cu_err totp_activate(struct cu_db *db, enum cu_subject_kind kind, const char *id,
                                 int64_t step)
{
    static const char sql[] =
        "INSERT INTO credentials (subject_kind, subject_id, password_hash, password_changed_at, "
        "totp_enabled_at, totp_last_step, created_at, updated_at) VALUES ($1, $2, NULL, NULL, $3, "
        "$4, $3, $3) ON CONFLICT (subject_kind, subject_id) DO UPDATE SET totp_enabled_at = $3, "
        "totp_last_step = $4, updated_at = $3";
    const struct cu_val p[] = {CU_VT(cu_subject_kind_name(kind)), CU_VT(id),
                               CU_VI(cu_clock_now_ms()), CU_VI(step)};
    return cu_db_exec(db, sql, p, CU_NVALS(p));
}

enum cu_err cu_identity_totp_confirm(struct cu_identity *idn, struct cu_work *w, struct cu_db *db,
                                     enum cu_subject_kind kind, const char *id, const char *code,
                                     const char *keep_session,
                                     char codes[CU_RECOVERY_CODES][CU_RECOVERY_CODE_BYTES])
{
    uint8_t secret[CU_TOTP_SECRET_BYTES];
    size_t n = 0;
    int64_t step = -1, revoked = 0, now = cu_clock_now_ms();
    enum cu_err rc;

    rc = cu_identity_secret_get(idn, db, kind, id, "totp_pending", secret, sizeof(secret), &n);
    if (rc == CU_OK && n != sizeof(secret))
        rc = CU_E_CORRUPT;
    if (rc == CU_OK) {
        rc = cu_totp_verify(secret, n, now / 1000, code, strlen(code), -1, &step);
        if (rc == CU_E_INVALID || rc == CU_E_EXISTS)
            rc = CU_E_BAD_CREDENTIALS;
    }
    if (rc == CU_OK)
        rc = cu_identity_secret_put(idn, db, kind, id, "totp", secret, sizeof(secret));
    cu_crypto_wipe(secret, sizeof(secret));
    if (rc == CU_OK)
        rc = cu_identity_secret_drop(db, kind, id, "totp_pending");
    if (rc == CU_OK)
        rc = totp_activate(db, kind, id, step);
    if (rc == CU_OK)
        rc = cu_identity_recovery_codes_replace(idn, db, kind, id, codes);
    if (rc == CU_OK)
        rc = cu_identity_sessions_revoke_all(db, kind, id, keep_session, now, &revoked);
    if (rc == CU_OK)
        rc = cu_identity_audit_add(w, "mfa.totp_enabled", id, "success",
                                   json_pack("{s:s, s:I}", "subject_kind",
                                             cu_subject_kind_name(kind), "sessions_revoked",
                                             (json_int_t)revoked));
    if (rc != CU_OK)
        cu_crypto_wipe(codes, (size_t)CU_RECOVERY_CODES * CU_RECOVERY_CODE_BYTES);
    return rc;
}

enum cu_err cu_identity_recovery_regenerate(struct cu_identity *idn, struct cu_work *w,
                                            struct cu_db *db, enum cu_subject_kind kind,
                                            const char *id,
                                            char codes[CU_RECOVERY_CODES][CU_RECOVERY_CODE_BYTES])
{
    struct cred c;
    enum cu_err rc = cu_identity_cred_load(db, kind, id, &c);
    if (rc == CU_OK && !c.totp_enabled)
        rc = CU_E_INVALID;
    cu_identity_cred_wipe(&c);
    if (rc == CU_OK)
        rc = cu_identity_recovery_codes_replace(idn, db, kind, id, codes);
    if (rc == CU_OK)
        rc = cu_identity_audit_add(w, "mfa.recovery_codes_regenerated", id, "success",
                                   json_pack("{s:s}", "subject_kind", cu_subject_kind_name(kind)));
    if (rc != CU_OK)
        cu_crypto_wipe(codes, (size_t)CU_RECOVERY_CODES * CU_RECOVERY_CODE_BYTES);
    return rc;
}
