/*
 * staff.c - staff members: the people who operate custodia through the console and the API.
 *
 * Like a customer, each staff member has a DEK wrapped by the current KEK (associated data
 * "staff_dek|<id>|<KEK version>"); their e-mail and name are sealed under it ("staff|<field>|
 * <id>"), and a keyed BLAKE2b of the normalised e-mail is the index sign-in finds them by.
 * Their scopes are the API-key scopes: a staff session may do what a key with those scopes may.
 */
#include "identity/identity_int.h"

#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "base/json.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/text.h"
#include "identity/apikey.h"
#include "vault/fields.h"

#define AD_BYTES 96
_Static_assert(AD_BYTES <= CU_KEK_AD_MAX, "a DEK's associated data fits the KEK source's");
#define FIELD_SEALED_MAX (CU_STAFF_NAME_MAX * 4 + 64)
#define FIELD_TEXT_MAX (CU_B64URL_LEN(FIELD_SEALED_MAX) + 1)
#define STAFF_COLUMNS "id, email, name, scopes, status, dek_wrapped, created_at, updated_at"

static void why_set(char why[CU_IDENTITY_WHY_BYTES], const char *msg)
{
    snprintf(why, CU_IDENTITY_WHY_BYTES, "%s", msg);
}

/* The normalised e-mail (the vault's rules for customer e-mails). */
static enum cu_err email_normalize(const char *in, char out[CU_EMAIL_MAX + 1],
                                   char why[CU_IDENTITY_WHY_BYTES])
{
    char fwhy[CU_FIELD_WHY_BYTES];
    size_t n = 0;
    enum cu_err rc =
        cu_field_normalize(cu_field_find("email"), in, strlen(in), out, CU_EMAIL_MAX + 1, &n, fwhy);
    if (rc != CU_OK)
        snprintf(why, CU_IDENTITY_WHY_BYTES, "field 'email': %s", fwhy);
    return rc;
}

static void email_hash(const struct cu_identity *idn, const char *email, uint8_t out[CU_HASH_BYTES])
{
    cu_crypto_keyed_hash(idn->staff_index, email, strlen(email), out);
}

static bool name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > CU_STAFF_NAME_MAX || !cu_utf8_valid(name, n))
        return false;
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
            return false;
    }
    return true;
}

static enum cu_err seal_text(struct cu_identity *idn, const struct cu_secret *dek, const char *id,
                             const char *field, const char *value, char text[FIELD_TEXT_MAX])
{
    uint8_t sealed[FIELD_SEALED_MAX];
    char ad[AD_BYTES];
    size_t n = 0;
    enum cu_err rc;

    snprintf(ad, sizeof(ad), "staff|%s|%s", field, id);
    rc = cu_crypto_seal(dek, 1, idn->alg, (const uint8_t *)value, strlen(value),
                        (const uint8_t *)ad, strlen(ad), sealed, sizeof(sealed), &n);
    return rc == CU_OK ? cu_b64url_encode(sealed, n, text, FIELD_TEXT_MAX) : rc;
}

static enum cu_err open_text(const struct cu_secret *dek, const char *id, const char *field,
                             const char *text, size_t tlen, char *out, size_t cap)
{
    uint8_t sealed[FIELD_SEALED_MAX];
    char ad[AD_BYTES];
    size_t n = 0, pn = 0;
    enum cu_err rc = cu_b64url_decode_public(text, tlen, sealed, sizeof(sealed), &n);

    if (rc != CU_OK)
        return CU_E_CORRUPT;
    snprintf(ad, sizeof(ad), "staff|%s|%s", field, id);
    rc = cu_crypto_open(dek, 1, sealed, n, (const uint8_t *)ad, strlen(ad), (uint8_t *)out, cap - 1,
                        &pn);
    if (rc == CU_OK)
        out[pn] = '\0';
    return rc;
}

/* The associated data of a staff member's wrapped DEK (a cu_kek_ad_fn). */
static void dek_ad(const void *id, uint32_t version, char *ad, size_t cap)
{
    snprintf(ad, cap, "staff_dek|%s|%u", (const char *)id, (unsigned)version);
}

static enum cu_err wrap_dek(struct cu_kek_source *kek, const char *id, const struct cu_secret *dek,
                            uint8_t *out, size_t *len, uint32_t *version)
{
    return cu_kek_wrap_versioned(kek, cu_secret_data(dek), CU_KEY_BYTES, dek_ad, id, out,
                                 CU_KEK_WRAPPED_MAX, len, version);
}

static enum cu_err unwrap_dek(struct cu_kek_source *kek, const char *id, const void *w, size_t wl,
                              struct cu_secret *dek)
{
    char ad[AD_BYTES];
    uint32_t version = 0;
    size_t n = 0;
    enum cu_err rc = cu_kek_wrapped_version(kek, w, wl, &version);
    dek_ad(id, version, ad, sizeof(ad));
    if (rc == CU_OK)
        rc = cu_kek_unwrap(kek, w, wl, (const uint8_t *)ad, strlen(ad), cu_secret_data(dek),
                           CU_KEY_BYTES, &n);
    if (rc == CU_OK && n != CU_KEY_BYTES)
        rc = CU_E_CORRUPT;
    if (rc != CU_OK)
        cu_log(CU_LOG_ERROR, "identity.dek_unwrap_failed", CU_LS("staff", id),
               CU_LS("error", cu_err_str(rc)), CU_LB("alert", true));
    return rc;
}

enum cu_err cu_identity_staff_dek_load(struct cu_identity *idn, struct cu_db *db, const char *id,
                                       struct cu_secret **out)
{
    static const char sql[] = "SELECT dek_wrapped FROM staff WHERE id = $1";
    const struct cu_val p[] = {CU_VT(id)};
    struct cu_secret *dek = cu_secret_new(CU_KEY_BYTES);
    struct cu_stmt *st = NULL;
    bool row = false;
    enum cu_err rc = dek ? cu_db_query(db, sql, p, CU_NVALS(p), &st) : CU_E_NOMEM;

    if (rc == CU_OK)
        rc = cu_stmt_next(st, &row);
    if (rc == CU_OK && !row)
        rc = CU_E_NOT_FOUND;
    if (rc == CU_OK) {
        size_t wl = 0;
        const void *w = cu_stmt_blob(st, 0, &wl);
        rc = unwrap_dek(idn->kek, id, w, wl, dek);
    }
    cu_stmt_done(st);
    if (rc != CU_OK) {
        cu_secret_free(dek);
        return rc;
    }
    *out = dek;
    return CU_OK;
}

uint64_t cu_identity_scopes_parse(const char *s, size_t len)
{
    uint64_t bits = 0;
    size_t i = 0;
    while (i < len) {
        size_t n = 0;
        while (i + n < len && s[i + n] != ' ')
            n++;
        bits |= cu_apikey_scope_parse(s + i, n);
        i += n + 1;
    }
    return bits;
}

static enum cu_err insert_staff(struct cu_identity *idn, struct cu_db *db, struct cu_staff_info *s,
                                const uint8_t hash[CU_HASH_BYTES])
{
    static const char sql[] =
        "INSERT INTO staff (id, email_hash, email, name, scopes, status, dek_wrapped, "
        "kek_version, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 'active', $6, $7, $8, "
        "$8)";
    struct cu_secret *dek = cu_secret_new(CU_KEY_BYTES);
    /* Bound below even when a step failed, so they must be strings from the start. */
    char email_ct[FIELD_TEXT_MAX] = "", name_ct[FIELD_TEXT_MAX] = "", scope_text[512] = "";
    uint8_t w[CU_KEK_WRAPPED_MAX];
    size_t wl = 0;
    uint32_t kv = 0;
    enum cu_err rc = dek ? CU_OK : CU_E_NOMEM;

    if (rc == CU_OK) {
        cu_crypto_random(cu_secret_data(dek), CU_KEY_BYTES);
        rc = wrap_dek(idn->kek, s->id, dek, w, &wl, &kv);
    }
    if (rc == CU_OK)
        rc = seal_text(idn, dek, s->id, "email", s->email, email_ct);
    if (rc == CU_OK)
        rc = seal_text(idn, dek, s->id, "name", s->name, name_ct);
    if (rc == CU_OK)
        rc = cu_apikey_scopes_format(s->scopes, scope_text, sizeof(scope_text));
    const struct cu_val p[] = {CU_VT(s->id),   CU_VB(hash, CU_HASH_BYTES), CU_VT(email_ct),
                               CU_VT(name_ct), CU_VT(scope_text),          CU_VB(w, wl),
                               CU_VI(kv),      CU_VI(s->created_at)};
    if (rc == CU_OK)
        rc = cu_db_exec(db, sql, p, CU_NVALS(p));
    cu_secret_free(dek);
    return rc;
}

enum cu_err cu_identity_staff_add(struct cu_identity *idn, struct cu_db *db, const char *email,
                                  const char *name, uint64_t scopes, struct cu_staff_info *out,
                                  char why[CU_IDENTITY_WHY_BYTES])
{
    uint8_t hash[CU_HASH_BYTES], raw[8];
    enum cu_err rc;

    memset(out, 0, sizeof(*out));
    rc = email_normalize(email, out->email, why);
    if (rc != CU_OK)
        return rc;
    if (!name_ok(name)) {
        why_set(why, "field 'name' must be 1 to 128 characters of UTF-8 text");
        return CU_E_INVALID;
    }
    if ((scopes & ~cu_apikey_all_scopes()) != 0) {
        why_set(why, "field 'scopes' holds an unknown scope");
        return CU_E_INVALID;
    }
    snprintf(out->name, sizeof(out->name), "%s", name);
    cu_crypto_random(raw, sizeof(raw));
    memcpy(out->id, "stf_", 4);
    cu_hex_encode(raw, sizeof(raw), out->id + 4);
    out->scopes = scopes;
    snprintf(out->status, sizeof(out->status), "active");
    out->created_at = out->updated_at = cu_clock_now_ms();
    email_hash(idn, out->email, hash);
    rc = insert_staff(idn, db, out, hash);
    if (rc == CU_E_EXISTS)
        why_set(why, "field 'email': another staff member has this e-mail address");
    return rc;
}

/* Fills s from a row of STAFF_COLUMNS, decrypting e-mail and name. */
static enum cu_err staff_from_row(struct cu_identity *idn, struct cu_stmt *st,
                                  struct cu_secret *dek, struct cu_staff_info *s)
{
    size_t n = 0, el = 0, nl = 0, wl = 0;
    const char *t = cu_stmt_text(st, 0, &n);
    enum cu_err rc;

    memset(s, 0, sizeof(*s));
    cu_text_copy(s->id, sizeof(s->id), t, n);
    t = cu_stmt_text(st, 3, &n);
    s->scopes = cu_identity_scopes_parse(t, n);
    t = cu_stmt_text(st, 4, &n);
    cu_text_copy(s->status, sizeof(s->status), t, n);
    s->created_at = cu_stmt_int(st, 6);
    s->updated_at = cu_stmt_int(st, 7);
    const void *w = cu_stmt_blob(st, 5, &wl);
    rc = unwrap_dek(idn->kek, s->id, w, wl, dek);
    const char *email = cu_stmt_text(st, 1, &el), *name = cu_stmt_text(st, 2, &nl);
    if (rc == CU_OK)
        rc = open_text(dek, s->id, "email", email, el, s->email, sizeof(s->email));
    if (rc == CU_OK)
        rc = open_text(dek, s->id, "name", name, nl, s->name, sizeof(s->name));
    cu_crypto_wipe(cu_secret_data(dek), CU_KEY_BYTES);
    return rc;
}

/* Adds what the credentials row says (password set, TOTP on). */
static enum cu_err staff_creds(struct cu_db *db, struct cu_staff_info *s)
{
    struct cred c;
    enum cu_err rc = cu_identity_cred_load(db, CU_SUBJECT_STAFF, s->id, &c);
    s->has_password = c.has_password;
    s->totp_enabled = c.totp_enabled;
    cu_identity_cred_wipe(&c);
    return rc;
}

static enum cu_err staff_query_one(struct cu_identity *idn, struct cu_db *db, const char *sql,
                                   const struct cu_val *p, struct cu_staff_info *out)
{
    struct cu_secret *dek = cu_secret_new(CU_KEY_BYTES);
    struct cu_stmt *st = NULL;
    bool row = false;
    enum cu_err rc = dek ? cu_db_query(db, sql, p, 1, &st) : CU_E_NOMEM;

    if (rc == CU_OK)
        rc = cu_stmt_next(st, &row);
    if (rc == CU_OK && !row)
        rc = CU_E_NOT_FOUND;
    if (rc == CU_OK)
        rc = staff_from_row(idn, st, dek, out);
    cu_stmt_done(st);
    cu_secret_free(dek);
    if (rc == CU_OK)
        rc = staff_creds(db, out);
    return rc;
}

enum cu_err cu_identity_staff_get(struct cu_identity *idn, struct cu_db *db, const char *id,
                                  struct cu_staff_info *out)
{
    static const char sql[] = "SELECT " STAFF_COLUMNS " FROM staff WHERE id = $1";
    const struct cu_val p[] = {CU_VT(id)};
    return staff_query_one(idn, db, sql, p, out);
}

enum cu_err cu_identity_staff_find(struct cu_identity *idn, struct cu_db *db, const char *email,
                                   struct cu_staff_info *out)
{
    static const char sql[] = "SELECT " STAFF_COLUMNS " FROM staff WHERE email_hash = $1";
    char norm[CU_EMAIL_MAX + 1], why[CU_IDENTITY_WHY_BYTES];
    uint8_t hash[CU_HASH_BYTES];

    if (email_normalize(email, norm, why) != CU_OK)
        return CU_E_NOT_FOUND;
    email_hash(idn, norm, hash);
    const struct cu_val p[] = {CU_VB(hash, sizeof(hash))};
    return staff_query_one(idn, db, sql, p, out);
}

enum cu_err cu_identity_staff_list(struct cu_identity *idn, struct cu_db *db, const char *after,
                                   size_t limit, struct cu_staff_info **out, size_t *n)
{
    static const char sql[] =
        "SELECT " STAFF_COLUMNS " FROM staff WHERE id > $1 ORDER BY id LIMIT $2";
    const struct cu_val p[] = {CU_VT(after ? after : ""), CU_VI(limit)};
    struct cu_staff_info *items = NULL;
    struct cu_secret *dek = NULL;
    struct cu_stmt *st = NULL;
    size_t count = 0;
    bool row = false;
    enum cu_err rc = limit >= 1 && limit <= 1000 ? CU_OK : CU_E_INVALID;

    if (rc == CU_OK && (items = cu_calloc(limit, sizeof(*items))) == NULL)
        rc = CU_E_NOMEM;
    if (rc == CU_OK && (dek = cu_secret_new(CU_KEY_BYTES)) == NULL)
        rc = CU_E_NOMEM;
    if (rc == CU_OK)
        rc = cu_db_query(db, sql, p, CU_NVALS(p), &st);
    while (rc == CU_OK && count < limit && (rc = cu_stmt_next(st, &row)) == CU_OK && row)
        rc = staff_from_row(idn, st, dek, &items[count++]);
    cu_stmt_done(st);
    cu_secret_free(dek);
    for (size_t i = 0; rc == CU_OK && i < count; i++)
        rc = staff_creds(db, &items[i]);
    if (rc != CU_OK) {
        if (items != NULL)
            cu_crypto_wipe(items, limit * sizeof(*items));
        cu_free(items);
        return rc;
    }
    *out = items;
    *n = count;
    return CU_OK;
}

enum cu_err cu_identity_staff_set(struct cu_identity *idn, struct cu_db *db, const char *id,
                                  uint64_t scopes, const char *status)
{
    static const char sql[] = "UPDATE staff SET scopes = $2, status = $3, updated_at = $4 "
                              "WHERE id = $1";
    struct cu_staff_info s;
    char scope_text[512] = ""; /* bound below even when a check failed */
    int64_t now = cu_clock_now_ms(), revoked = 0;
    enum cu_err rc;

    memset(&s, 0, sizeof(s));
    rc = cu_identity_staff_get(idn, db, id, &s);
    if (rc == CU_OK && status != NULL && strcmp(status, "active") != 0 &&
        strcmp(status, "disabled") != 0)
        rc = CU_E_INVALID;
    if (rc == CU_OK && (scopes & ~cu_apikey_all_scopes()) != 0)
        rc = CU_E_INVALID;
    if (rc == CU_OK)
        rc = cu_apikey_scopes_format(scopes ? scopes : s.scopes, scope_text, sizeof(scope_text));
    const struct cu_val p[] = {CU_VT(id), CU_VT(scope_text), CU_VT(status ? status : s.status),
                               CU_VI(now)};
    if (rc == CU_OK)
        rc = cu_db_exec(db, sql, p, CU_NVALS(p));
    if (rc == CU_OK && status != NULL && strcmp(status, "disabled") == 0)
        rc = cu_identity_sessions_revoke_all(db, CU_SUBJECT_STAFF, id, NULL, now, &revoked);
    cu_crypto_wipe(&s, sizeof(s));
    return rc;
}

enum cu_err cu_identity_staff_rewrap(struct cu_kek_source *kek, struct cu_db *db, size_t batch,
                                     size_t *done)
{
    static const char sel[] = "SELECT id, dek_wrapped FROM staff WHERE kek_version <> $1 "
                              "ORDER BY id LIMIT $2";
    static const char upd[] = "UPDATE staff SET dek_wrapped = $2, kek_version = $3 WHERE id = $1";
    uint32_t current = cu_kek_current_version(kek);
    const struct cu_val p[] = {CU_VI(current), CU_VI(batch)};
    struct cu_secret *dek = cu_secret_new(CU_KEY_BYTES);
    struct cu_stmt *st = NULL;
    char id[CU_SUBJECT_ID_BYTES];
    bool row = false;
    enum cu_err rc = dek ? CU_OK : CU_E_NOMEM;

    *done = 0;
    /* One at a time: the statement is re-run after each update, so no list is kept. */
    while (rc == CU_OK && *done < batch) {
        uint8_t w[CU_KEK_WRAPPED_MAX];
        size_t wl = 0, l = 0;
        uint32_t kv = 0;
        rc = cu_db_query(db, sel, p, CU_NVALS(p), &st);
        if (rc == CU_OK)
            rc = cu_stmt_next(st, &row);
        if (rc == CU_OK && row) {
            const char *s = cu_stmt_text(st, 0, &l);
            cu_text_copy(id, sizeof(id), s, l);
            const void *old = cu_stmt_blob(st, 1, &wl);
            rc = unwrap_dek(kek, id, old, wl, dek);
        }
        cu_stmt_done(st);
        if (rc != CU_OK || !row)
            break;
        rc = wrap_dek(kek, id, dek, w, &wl, &kv);
        const struct cu_val u[] = {CU_VT(id), CU_VB(w, wl), CU_VI(kv)};
        if (rc == CU_OK)
            rc = cu_db_exec(db, upd, u, CU_NVALS(u));
        if (rc == CU_OK)
            (*done)++;
    }
    cu_secret_free(dek);
    return rc;
}

enum cu_err cu_identity_staff_kek_usage(struct cu_db *db, uint32_t version, int64_t *count)
{
    static const char sql[] = "SELECT count(*) FROM staff WHERE kek_version = $1";
    const struct cu_val p[] = {CU_VI(version)};
    struct cu_stmt *st = NULL;
    bool row = false;
    enum cu_err rc = cu_db_query(db, sql, p, CU_NVALS(p), &st);
    if (rc == CU_OK)
        rc = cu_stmt_next(st, &row);
    *count = rc == CU_OK && row ? cu_stmt_int(st, 0) : 0;
    cu_stmt_done(st);
    return rc;
}
