/*
 * staff.c - staff members: the people who operate custodia through the console and the API.
 *
 * Like a customer, each staff member has a DEK wrapped by the current KEK, kept by the
 * envelope module as any subject's (vault/envelope.h; associated data "staff_dek|<id>|<KEK
 * version>", secrets in staff_secrets); their e-mail and name are sealed under it
 * ("staff|<field>|<id>", DEK version 1), and a keyed BLAKE2b of the normalised e-mail is the
 * index sign-in finds them by.
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

_Static_assert(CU_STAFF_NAME_MAX * 4 <= CU_ENVELOPE_VALUE_MAX, "a staff name fits a sealed value");
_Static_assert(CU_EMAIL_MAX <= CU_ENVELOPE_VALUE_MAX, "an e-mail fits a sealed value");
_Static_assert(CU_SUBJECT_ID_BYTES - 1 <= CU_ENVELOPE_ID_MAX, "a staff id is a subject id");
#define STAFF_COLUMNS                                                                              \
    "id, email, name, scopes, status, dek_wrapped, created_at, updated_at, roles, department, "    \
    "region, training_valid_until"
/* A staff member's DEK is never replaced, so its version is always 1. */
#define STAFF_DEK_VERSION 1

const struct cu_envelope_kind cu_identity_staff_keys =
    CU_ENVELOPE_KIND("staff", "staff_dek", "staff", "id", "1", "staff_secrets", "staff_id");

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

/* Seals a staff member's field under their DEK, associated data "staff|<field>|<id>". */
static enum cu_err seal_text(struct cu_identity *idn, const struct cu_secret *dek, const char *id,
                             const char *field, const char *value,
                             char text[CU_ENVELOPE_TEXT_BYTES])
{
    char ad[CU_ENVELOPE_AD_BYTES];
    enum cu_err rc = cu_envelope_ad("staff", field, id, ad);

    if (rc == CU_OK)
        rc = cu_envelope_seal(idn->staff_keys, dek, STAFF_DEK_VERSION, ad, value, strlen(value),
                              text);
    return rc;
}

/* Opens a field sealed by seal_text into out (cap bytes, NUL-terminated). */
static enum cu_err open_text(const struct cu_secret *dek, const char *id, const char *field,
                             const char *text, size_t tlen, char *out, size_t cap)
{
    char ad[CU_ENVELOPE_AD_BYTES];
    size_t n = 0;
    enum cu_err rc = cu_envelope_ad("staff", field, id, ad);

    if (rc == CU_OK)
        rc = cu_envelope_open(dek, STAFF_DEK_VERSION, ad, text, tlen, out, cap - 1, &n);
    if (rc == CU_OK)
        out[n] = '\0';
    return rc;
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
    struct cu_secret *dek = NULL;
    struct cu_envelope_wrapped w;
    char email_ct[CU_ENVELOPE_TEXT_BYTES], name_ct[CU_ENVELOPE_TEXT_BYTES], scope_text[512];
    enum cu_err rc = cu_envelope_dek_new(idn->staff_keys, s->id, &dek, &w);

    if (rc == CU_OK)
        rc = seal_text(idn, dek, s->id, "email", s->email, email_ct);
    if (rc == CU_OK)
        rc = seal_text(idn, dek, s->id, "name", s->name, name_ct);
    if (rc == CU_OK)
        rc = cu_apikey_scopes_format(s->scopes, scope_text, sizeof(scope_text));
    if (rc == CU_OK) {
        const struct cu_val p[] = {CU_VT(s->id),         CU_VB(hash, CU_HASH_BYTES),
                                   CU_VT(email_ct),      CU_VT(name_ct),
                                   CU_VT(scope_text),    CU_VB(w.data, w.len),
                                   CU_VI(w.kek_version), CU_VI(s->created_at)};
        rc = cu_db_exec(db, sql, p, CU_NVALS(p));
    }
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

/* Fills a from columns col.. of a row: roles, department, region, training_valid_until. */
static void access_from_row(struct cu_stmt *st, int col, struct cu_staff_access *a)
{
    size_t n = 0;
    const char *t = cu_stmt_text(st, col, &n);

    memset(a, 0, sizeof(*a));
    cu_text_copy(a->roles, sizeof(a->roles), t, n);
    if (!cu_stmt_null(st, col + 1)) {
        t = cu_stmt_text(st, col + 1, &n);
        cu_text_copy(a->department, sizeof(a->department), t, n);
    }
    if (!cu_stmt_null(st, col + 2)) {
        t = cu_stmt_text(st, col + 2, &n);
        cu_text_copy(a->region, sizeof(a->region), t, n);
    }
    a->training_valid_until = cu_stmt_null(st, col + 3) ? 0 : cu_stmt_int(st, col + 3);
}

enum cu_err cu_identity_roles_check(const char *roles, char why[CU_IDENTITY_WHY_BYTES])
{
    const char *s = roles;
    char seen[CU_ROLES_MAX][65];
    size_t count = 0;

    if (strlen(roles) >= CU_ROLES_BYTES) {
        why_set(why, "field 'roles': too many or too long");
        return CU_E_INVALID;
    }
    while (*s) {
        size_t n = 0;
        while (s[n] && s[n] != ' ') {
            char c = s[n];
            if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) {
                why_set(why, "field 'roles': a role is lower-case letters, digits and '_'");
                return CU_E_INVALID;
            }
            n++;
        }
        if (n == 0 || n > 64 || s[0] < 'a' || s[0] > 'z' || count >= CU_ROLES_MAX) {
            why_set(why, "field 'roles': 1 to 8 roles of 1 to 64 characters, starting with a "
                         "letter");
            return CU_E_INVALID;
        }
        for (size_t i = 0; i < count; i++)
            if (strlen(seen[i]) == n && memcmp(seen[i], s, n) == 0) {
                why_set(why, "field 'roles': a role given twice");
                return CU_E_INVALID;
            }
        memcpy(seen[count], s, n);
        seen[count++][n] = '\0';
        s += n;
        if (*s == ' ') {
            s++;
            if (*s == '\0') {
                why_set(why, "field 'roles': a trailing space");
                return CU_E_INVALID;
            }
        }
    }
    return CU_OK;
}

/* attr_ok(s): a department or region: up to 64 printable ASCII characters. */
static bool attr_ok(const char *s)
{
    size_t n = strlen(s);
    if (n >= CU_STAFF_ATTR_BYTES)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f)
            return false;
    return true;
}

enum cu_err cu_identity_staff_set_access(struct cu_identity *idn, struct cu_db *db, const char *id,
                                         const struct cu_staff_access *a,
                                         char why[CU_IDENTITY_WHY_BYTES])
{
    static const char sql[] = "UPDATE staff SET roles = $2, department = $3, region = $4, "
                              "training_valid_until = $5, updated_at = $6 WHERE id = $1";
    enum cu_err rc = cu_identity_roles_check(a->roles, why);

    (void)idn;
    if (rc != CU_OK)
        return rc;
    if (!attr_ok(a->department) || !attr_ok(a->region)) {
        why_set(why, "fields 'department' and 'region': up to 64 printable ASCII characters");
        return CU_E_INVALID;
    }
    if (a->training_valid_until < 0) {
        why_set(why, "field 'training_valid_until': a time after 1970");
        return CU_E_INVALID;
    }
    const struct cu_val p[] = {
        CU_VT(id),
        CU_VT(a->roles),
        a->department[0] ? CU_VT(a->department) : CU_VNULL,
        a->region[0] ? CU_VT(a->region) : CU_VNULL,
        a->training_valid_until ? CU_VI(a->training_valid_until) : CU_VNULL,
        CU_VI(cu_clock_now_ms()),
    };
    rc = cu_db_exec(db, sql, p, CU_NVALS(p));
    if (rc == CU_OK && cu_db_changes(db) != 1)
        rc = CU_E_NOT_FOUND;
    return rc;
}

enum cu_err cu_identity_staff_access(struct cu_db *db, const char *id, struct cu_staff_access *out)
{
    static const char sql[] = "SELECT roles, department, region, training_valid_until FROM staff "
                              "WHERE id = $1";
    const struct cu_val p[] = {CU_VT(id)};
    struct cu_stmt *st = NULL;
    bool row = false;
    enum cu_err rc = cu_db_query(db, sql, p, CU_NVALS(p), &st);

    memset(out, 0, sizeof(*out));
    if (rc == CU_OK)
        rc = cu_stmt_next(st, &row);
    if (rc == CU_OK && !row)
        rc = CU_E_NOT_FOUND;
    if (rc == CU_OK)
        access_from_row(st, 0, out);
    cu_stmt_done(st);
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
    access_from_row(st, 8, &s->access);
    const void *w = cu_stmt_blob(st, 5, &wl);
    rc = cu_envelope_dek_unwrap(idn->staff_keys, s->id, w, wl, dek);
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
    struct cu_secret *dek = cu_envelope_dek_borrow();
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
    cu_envelope_dek_return(dek);
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
    if (rc == CU_OK && (dek = cu_envelope_dek_borrow()) == NULL)
        rc = CU_E_NOMEM;
    if (rc == CU_OK)
        rc = cu_db_query(db, sql, p, CU_NVALS(p), &st);
    while (rc == CU_OK && count < limit && (rc = cu_stmt_next(st, &row)) == CU_OK && row)
        rc = staff_from_row(idn, st, dek, &items[count++]);
    cu_stmt_done(st);
    cu_envelope_dek_return(dek);
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

/* cu_identity_staff_rewrap(kek, db, batch, done): re-wraps up to batch staff DEKs not under
 * kek's current version; *done gets how many (for `custodia keys rotate`). */
enum cu_err cu_identity_staff_rewrap(struct cu_kek_source *kek, struct cu_db *db, size_t batch,
                                     size_t *done)
{
    struct cu_envelope *env = NULL;
    /* Re-wrapping seals no value, so the algorithm is not used. */
    enum cu_err rc = cu_envelope_new(&cu_identity_staff_keys, kek, CU_AEAD_XCHACHA20POLY1305, &env);

    *done = 0;
    if (rc == CU_OK)
        rc = cu_envelope_rewrap(env, db, batch, done);
    cu_envelope_free(env);
    return rc;
}

/* cu_identity_staff_kek_usage(db, version, count): staff DEKs wrapped by a KEK version. */
enum cu_err cu_identity_staff_kek_usage(struct cu_db *db, uint32_t version, int64_t *count)
{
    return cu_envelope_kek_usage(&cu_identity_staff_keys, db, version, count);
}
