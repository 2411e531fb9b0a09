/*
 * vault.c - customer records with field-level envelope encryption.
 *
 * Layout (docs/internals/vault.md): a row in customers holds the plain fields, the wrapped
 * DEK and the KEK version that wraps it; each personal field is a row in customer_fields
 * holding cu_crypto_seal(DEK, plaintext, AD = "customers|<field>|<customer id>") in base64url;
 * fields with a blind index also have a row in customer_index with the keyed BLAKE2b of
 * "<field>" 0x00 "<normalised value>". The DEK is wrapped with AD "dek|<customer id>|<KEK
 * version>", so a wrapped DEK copied to another customer does not open.
 */
#include "vault/vault.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "base/json.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/text.h"
#include "crypto/crypto.h"

#define AD_BYTES 96
#define VALUE_MAX 512 /* the longest normalised field value, with room */
#define SEALED_MAX (VALUE_MAX + 64)
#define SEALED_TEXT_MAX (CU_B64URL_LEN(SEALED_MAX) + 1)
_Static_assert(sizeof("customers||") + CU_FIELD_NAME_MAX + CU_CUSTOMER_ID_BYTES <= AD_BYTES,
               "a field's associated data fits");
_Static_assert(AD_BYTES <= CU_KEK_AD_MAX, "a DEK's associated data fits the KEK source's");
_Static_assert(sizeof("dek||4294967295") + CU_CUSTOMER_ID_BYTES <= AD_BYTES,
               "a DEK's associated data fits");

struct cu_vault {
    struct cu_secret *index_key;
    struct cu_kek_source *kek;
    enum cu_aead alg;
};

static const char *const statuses[] = {"active", "suspended", "closed"};

enum cu_err cu_vault_new(const struct cu_keyring *kr, struct cu_kek_source *kek, enum cu_aead alg,
                         struct cu_vault **out)
{
    struct cu_vault *v = cu_calloc(1, sizeof(*v));
    enum cu_err rc;
    if (v == NULL)
        return CU_E_NOMEM;
    v->kek = kek;
    v->alg = alg;
    rc = cu_keyring_derive(kr, "vaultidx", 1, &v->index_key);
    if (rc != CU_OK) {
        cu_free(v);
        return rc;
    }
    *out = v;
    return CU_OK;
}

void cu_vault_free(struct cu_vault *v)
{
    if (v == NULL)
        return;
    cu_secret_free(v->index_key);
    cu_free(v);
}

static void drop_value(struct cu_customer *c, size_t i)
{
    if (c->values[i] != NULL) {
        cu_crypto_wipe(c->values[i], strlen(c->values[i]));
        cu_free(c->values[i]);
        c->values[i] = NULL;
    }
}

void cu_customer_clear(struct cu_customer *c)
{
    for (size_t i = 0; i < CU_VAULT_MAX_FIELDS; i++)
        drop_value(c, i);
    json_decref(c->tags);
    c->tags = NULL;
}

void cu_customer_drop_personal(struct cu_customer *c)
{
    size_t nf = 0;
    const struct cu_field_def *fs = cu_fields(&nf);
    for (size_t i = 0; i < nf; i++) {
        if (fs[i].personal)
            drop_value(c, i);
    }
}

void cu_customers_free(struct cu_customer *cs, size_t n)
{
    if (cs == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        cu_customer_clear(&cs[i]);
    cu_free(cs);
}

static void why_set(char why[CU_VAULT_WHY_BYTES], const char *field, const char *reason)
{
    snprintf(why, CU_VAULT_WHY_BYTES, "field '%s': %s", field, reason);
}

/* ---- keys ---- */

/* The associated data are built by copying, not by snprintf: a read builds nine of them. */
static void dek_ad(const char *id, uint32_t kek_version, char ad[AD_BYTES])
{
    size_t il = strnlen(id, CU_CUSTOMER_ID_BYTES - 1);
    memcpy(ad, "dek|", 4);
    memcpy(ad + 4, id, il);
    ad[4 + il] = '|';
    ad[5 + il + cu_text_i64(ad + 5 + il, kek_version)] = '\0';
}

static void field_ad(const char *id, const char *field, char ad[AD_BYTES])
{
    size_t fl = strnlen(field, CU_FIELD_NAME_MAX), il = strnlen(id, CU_CUSTOMER_ID_BYTES - 1);
    memcpy(ad, "customers|", 10);
    memcpy(ad + 10, field, fl);
    ad[10 + fl] = '|';
    memcpy(ad + 11 + fl, id, il);
    ad[11 + fl + il] = '\0';
}

/* dek_ad_for(id, version, ad, cap): dek_ad as a cu_kek_ad_fn. */
static void dek_ad_for(const void *id, uint32_t version, char *ad, size_t cap)
{
    CU_ASSERT(cap >= AD_BYTES);
    dek_ad(id, version, ad);
}

static enum cu_err wrap_dek(struct cu_vault *v, const char *id, const struct cu_secret *dek,
                            uint8_t *out, size_t cap, size_t *len, uint32_t *version)
{
    return cu_kek_wrap_versioned(v->kek, cu_secret_data(dek), cu_secret_len(dek), dek_ad_for, id,
                                 out, cap, len, version);
}

/* Unwraps a customer's DEK into dek (guarded memory of CU_KEY_BYTES, reused by callers that
 * unwrap many). */
static enum cu_err unwrap_into(struct cu_vault *v, const char *id, const void *wrapped, size_t len,
                               struct cu_secret *dek)
{
    char ad[AD_BYTES];
    uint32_t version = 0;
    size_t n = 0;
    enum cu_err rc = cu_kek_wrapped_version(v->kek, wrapped, len, &version);

    if (rc == CU_OK) {
        dek_ad(id, version, ad);
        rc = cu_kek_unwrap(v->kek, wrapped, len, (const uint8_t *)ad, strlen(ad),
                           cu_secret_data(dek), CU_KEY_BYTES, &n);
    }
    if (rc == CU_OK && n != CU_KEY_BYTES)
        rc = CU_E_CORRUPT;
    if (rc != CU_OK)
        cu_log(CU_LOG_ERROR, "vault.dek_unwrap_failed", CU_LS("customer", id),
               CU_LS("error", cu_err_str(rc)), CU_LB("alert", true));
    return rc;
}

/* One guarded DEK buffer per thread for the read path: guarded memory costs mmap, mprotect
 * and munmap, whose TLB shootdowns dominate a read when every read allocates one. The buffer
 * is wiped after every use and freed when its thread ends. */
static pthread_key_t dek_key;
static pthread_once_t dek_once = PTHREAD_ONCE_INIT;

static void dek_free(void *p)
{
    cu_secret_free(p);
}

static void dek_key_make(void)
{
    CU_ASSERT(pthread_key_create(&dek_key, dek_free) == 0);
}

static struct cu_secret *thread_dek(void)
{
    struct cu_secret *d;
    pthread_once(&dek_once, dek_key_make);
    d = pthread_getspecific(dek_key);
    if (d == NULL && (d = cu_secret_new(CU_KEY_BYTES)) != NULL &&
        pthread_setspecific(dek_key, d) != 0) {
        cu_secret_free(d);
        d = NULL;
    }
    return d;
}

static void thread_dek_wipe(struct cu_secret *d)
{
    if (d != NULL)
        cu_crypto_wipe(cu_secret_data(d), cu_secret_len(d));
}

/* ---- fields ---- */

static size_t field_index(const struct cu_field_def *f)
{
    size_t n = 0;
    const struct cu_field_def *all = cu_fields(&n);
    return (size_t)(f - all);
}

static void blind_hash(const struct cu_vault *v, const struct cu_field_def *f, const char *value,
                       uint8_t out[CU_HASH_BYTES])
{
    uint8_t buf[VALUE_MAX + 64];
    size_t nl = strlen(f->name), vl = strlen(value);
    CU_ASSERT(nl + 1 + vl <= sizeof(buf));
    memcpy(buf, f->name, nl);
    buf[nl] = 0;
    memcpy(buf + nl + 1, value, vl);
    cu_crypto_keyed_hash(v->index_key, buf, nl + 1 + vl, out);
    cu_crypto_wipe(buf, sizeof(buf));
}

static enum cu_err seal_field(struct cu_vault *v, const struct cu_secret *dek, int64_t dek_version,
                              const char *id, const struct cu_field_def *f, const char *value,
                              char text[SEALED_TEXT_MAX])
{
    uint8_t sealed[SEALED_MAX];
    char ad[AD_BYTES];
    size_t n = 0;
    enum cu_err rc;

    field_ad(id, f->name, ad);
    rc = cu_crypto_seal(dek, (uint32_t)dek_version, v->alg, (const uint8_t *)value, strlen(value),
                        (const uint8_t *)ad, strlen(ad), sealed, sizeof(sealed), &n);
    if (rc == CU_OK)
        rc = cu_b64url_encode(sealed, n, text, SEALED_TEXT_MAX);
    return rc;
}

static enum cu_err open_field(const struct cu_secret *dek, int64_t dek_version, const char *id,
                              const char *field, const char *text, size_t tlen, char **out)
{
    uint8_t sealed[SEALED_MAX];
    char ad[AD_BYTES], *plain = NULL;
    size_t n = 0, pn = 0;
    enum cu_err rc = cu_b64url_decode_public(text, tlen, sealed, sizeof(sealed), &n);

    if (rc != CU_OK)
        rc = CU_E_CORRUPT;
    if (rc == CU_OK && (plain = cu_malloc(n + 1)) == NULL)
        rc = CU_E_NOMEM;
    if (rc == CU_OK) {
        field_ad(id, field, ad);
        rc = cu_crypto_open(dek, (uint32_t)dek_version, sealed, n, (const uint8_t *)ad, strlen(ad),
                            (uint8_t *)plain, n, &pn);
    }
    if (rc != CU_OK) {
        cu_free(plain);
        cu_log(CU_LOG_ERROR, "vault.field_open_failed", CU_LS("customer", id),
               CU_LS("field", field), CU_LS("error", cu_err_str(rc)), CU_LB("alert", true));
        return rc;
    }
    plain[pn] = '\0';
    *out = plain;
    return CU_OK;
}

/* Writes (or replaces) a field's ciphertext and its blind index. */
static enum cu_err put_field(struct cu_vault *v, struct cu_db *db, const struct cu_secret *dek,
                             int64_t dek_version, const char *id, const struct cu_field_def *f,
                             const char *value, char why[CU_VAULT_WHY_BYTES])
{
    static const char up[] = "INSERT INTO customer_fields (customer_id, field, value) VALUES "
                             "($1, $2, $3) ON CONFLICT (customer_id, field) DO UPDATE SET "
                             "value = excluded.value";
    static const char del_ix[] = "DELETE FROM customer_index WHERE customer_id = $1 AND field = $2";
    static const char ins_ix[] = "INSERT INTO customer_index (field, hash, customer_id, is_unique) "
                                 "VALUES ($1, $2, $3, $4)";
    char text[SEALED_TEXT_MAX];
    uint8_t h[CU_HASH_BYTES];
    enum cu_err rc = seal_field(v, dek, dek_version, id, f, value, text);

    if (rc == CU_OK) {
        const struct cu_val p[] = {CU_VT(id), CU_VT(f->name), CU_VT(text)};
        rc = cu_db_exec(db, up, p, CU_NVALS(p));
    }
    if (rc != CU_OK || !f->blind_index)
        return rc;
    const struct cu_val d[] = {CU_VT(id), CU_VT(f->name)};
    rc = cu_db_exec(db, del_ix, d, CU_NVALS(d));
    blind_hash(v, f, value, h);
    const struct cu_val p[] = {CU_VT(f->name), CU_VB(h, sizeof(h)), CU_VT(id), CU_VI(f->unique)};
    if (rc == CU_OK)
        rc = cu_db_exec(db, ins_ix, p, CU_NVALS(p));
    if (rc == CU_E_EXISTS)
        why_set(why, f->name, "another customer already has this value");
    return rc;
}

static enum cu_err drop_field(struct cu_db *db, const char *id, const struct cu_field_def *f)
{
    static const char del_f[] = "DELETE FROM customer_fields WHERE customer_id = $1 AND field = $2";
    static const char del_ix[] = "DELETE FROM customer_index WHERE customer_id = $1 AND field = $2";
    const struct cu_val p[] = {CU_VT(id), CU_VT(f->name)};
    enum cu_err rc = cu_db_exec(db, del_f, p, CU_NVALS(p));
    return rc == CU_OK ? cu_db_exec(db, del_ix, p, CU_NVALS(p)) : rc;
}

/* ---- input ---- */

/* The parsed input of a create or patch. values[i]: NULL (not given), "" with clear[i] (given
 * as null: remove), or the normalised value (cu_malloc'd). */
struct input {
    char *values[CU_VAULT_MAX_FIELDS];
    bool clear[CU_VAULT_MAX_FIELDS];
    const char *status;
    json_t *tags; /* borrowed from the input */
};

/* input_clear(in): wipes and frees the values in owns and leaves in empty, so that clearing it
 * again (parse_input clears on error, and so do its callers) does nothing. */
static void input_clear(struct input *in)
{
    for (size_t i = 0; i < CU_VAULT_MAX_FIELDS; i++) {
        if (in->values[i] != NULL) {
            cu_crypto_wipe(in->values[i], strlen(in->values[i]));
            cu_free(in->values[i]);
            in->values[i] = NULL;
        }
        in->clear[i] = false;
    }
    in->status = NULL;
    in->tags = NULL;
}

static enum cu_err parse_tags(json_t *tags, char why[CU_VAULT_WHY_BYTES])
{
    size_t i;
    json_t *t;
    if (!json_is_array(tags) || json_array_size(tags) > CU_VAULT_MAX_TAGS) {
        why_set(why, "tags", "must be an array of at most 16 tags");
        return CU_E_INVALID;
    }
    json_array_foreach(tags, i, t)
    {
        const char *s = json_string_value(t);
        size_t n = s ? strlen(s) : 0;
        bool ok = n >= 1 && n <= CU_VAULT_TAG_MAX;
        for (size_t k = 0; ok && k < n; k++)
            ok = (s[k] >= 'a' && s[k] <= 'z') || (s[k] >= '0' && s[k] <= '9') || s[k] == '-' ||
                 s[k] == '_';
        if (!ok) {
            why_set(why, "tags", "each tag is 1 to 32 of a-z, 0-9, '-' and '_'");
            return CU_E_INVALID;
        }
    }
    return CU_OK;
}

static enum cu_err parse_status(json_t *v, const char **out, char why[CU_VAULT_WHY_BYTES])
{
    const char *s = json_string_value(v);
    for (size_t i = 0; s != NULL && i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        if (strcmp(s, statuses[i]) == 0) {
            *out = statuses[i];
            return CU_OK;
        }
    }
    why_set(why, "status", "must be active, suspended or closed");
    return CU_E_INVALID;
}

static enum cu_err parse_field(const struct cu_field_def *f, json_t *v, bool allow_null,
                               struct input *in, char why[CU_VAULT_WHY_BYTES])
{
    char reason[CU_FIELD_WHY_BYTES], buf[VALUE_MAX];
    size_t i = field_index(f), n = 0;
    enum cu_err rc;

    if (json_is_null(v) && allow_null) {
        in->clear[i] = true;
        return CU_OK;
    }
    if (!json_is_string(v)) {
        why_set(why, f->name, "must be a string");
        return CU_E_INVALID;
    }
    rc = cu_field_normalize(f, json_string_value(v), json_string_length(v), buf, sizeof(buf), &n,
                            reason);
    if (rc == CU_E_TOO_LARGE) {
        char msg[64];
        snprintf(msg, sizeof(msg), "longer than %zu bytes", f->max_bytes);
        why_set(why, f->name, msg);
    } else if (rc != CU_OK) {
        why_set(why, f->name, reason);
    }
    if (rc == CU_OK && (in->values[i] = cu_strndup(buf, n)) == NULL)
        rc = CU_E_NOMEM;
    cu_crypto_wipe(buf, sizeof(buf));
    return rc;
}

static enum cu_err parse_input(const json_t *obj, bool patch, struct input *in,
                               char why[CU_VAULT_WHY_BYTES])
{
    const char *key;
    json_t *v;
    enum cu_err rc = CU_OK;

    memset(in, 0, sizeof(*in));
    if (!json_is_object(obj)) {
        snprintf(why, CU_VAULT_WHY_BYTES, "the body must be a JSON object");
        return CU_E_INVALID;
    }
    json_object_foreach((json_t *)obj, key, v)
    {
        const struct cu_field_def *f = cu_field_find(key);
        if (strcmp(key, "tags") == 0) {
            rc = parse_tags(v, why);
            in->tags = v;
        } else if (strcmp(key, "status") == 0) {
            rc = parse_status(v, &in->status, why);
        } else if (f == NULL) {
            snprintf(why, CU_VAULT_WHY_BYTES, "unknown field '%.64s'", key);
            rc = CU_E_INVALID;
        } else {
            rc = parse_field(f, v, patch, in, why);
        }
        if (rc != CU_OK)
            break;
    }
    if (rc != CU_OK)
        input_clear(in);
    return rc;
}

/* ---- create ---- */

static void new_id(char id[CU_CUSTOMER_ID_BYTES])
{
    uint8_t raw[8];
    cu_crypto_random(raw, sizeof(raw));
    memcpy(id, "cus_", 5); /* the NUL is overwritten by the hex digits */
    cu_hex_encode(raw, sizeof(raw), id + 4);
}

/* names_a_field(in): whether in sets at least one customer field (tags and status are not
 * fields: a record of nothing but them describes no one). */
static bool names_a_field(const struct input *in)
{
    for (size_t i = 0; i < CU_VAULT_MAX_FIELDS; i++) {
        if (in->values[i] != NULL)
            return true;
    }
    return false;
}

static const char *plain_value(const struct input *in, const char *name)
{
    const struct cu_field_def *f = cu_field_find(name);
    return f ? in->values[field_index(f)] : NULL;
}

static enum cu_err insert_customer(struct cu_vault *v, struct cu_db *db, const struct input *in,
                                   const char *id, const struct cu_secret *dek, int64_t now)
{
    static const char sql[] =
        "INSERT INTO customers (id, status, country, language, tags, dek_wrapped, dek_version, "
        "kek_version, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8, $8)";
    uint8_t wrapped[CU_KEK_WRAPPED_MAX];
    size_t wl = 0;
    uint32_t kv = 0;
    json_t *empty = in->tags ? NULL : json_array();
    char *tags = json_dumps(in->tags ? in->tags : empty, JSON_COMPACT);
    enum cu_err rc = tags ? wrap_dek(v, id, dek, wrapped, sizeof(wrapped), &wl, &kv) : CU_E_NOMEM;
    json_decref(empty);
    const char *country = plain_value(in, "country"), *lang = plain_value(in, "language");

    if (rc == CU_OK) {
        const struct cu_val p[] = {CU_VT(id),
                                   CU_VT(in->status ? in->status : "active"),
                                   country ? CU_VT(country) : CU_VNULL,
                                   lang ? CU_VT(lang) : CU_VNULL,
                                   CU_VT(tags),
                                   CU_VB(wrapped, wl),
                                   CU_VI(kv),
                                   CU_VI(now)};
        rc = cu_db_exec(db, sql, p, CU_NVALS(p));
    }
    free(tags);
    return rc;
}

enum cu_err cu_vault_create(struct cu_vault *v, struct cu_db *db, const json_t *input,
                            struct cu_customer *out, char why[CU_VAULT_WHY_BYTES])
{
    struct input in;
    struct cu_secret *dek = NULL;
    int64_t now = cu_clock_now_ms();
    size_t nf = 0;
    const struct cu_field_def *fs = cu_fields(&nf);
    enum cu_err rc = parse_input(input, false, &in, why);

    memset(out, 0, sizeof(*out));
    if (rc == CU_OK && !names_a_field(&in)) {
        snprintf(why, CU_VAULT_WHY_BYTES,
                 "the body names no field: a new customer needs at least one of its fields "
                 "(tags and status alone are not enough)");
        rc = CU_E_INVALID;
    }
    if (rc != CU_OK) {
        input_clear(&in);
        return rc;
    }
    new_id(out->id);
    if ((dek = cu_secret_new(CU_KEY_BYTES)) == NULL)
        rc = CU_E_NOMEM;
    if (rc == CU_OK) {
        cu_crypto_random(cu_secret_data(dek), CU_KEY_BYTES);
        rc = insert_customer(v, db, &in, out->id, dek, now);
    }
    for (size_t i = 0; rc == CU_OK && i < nf; i++) {
        if (in.values[i] != NULL && fs[i].personal)
            rc = put_field(v, db, dek, 1, out->id, &fs[i], in.values[i], why);
    }
    cu_secret_free(dek);
    if (rc == CU_OK) {
        snprintf(out->status, sizeof(out->status), "%s", in.status ? in.status : "active");
        out->tags = in.tags ? json_deep_copy(in.tags) : json_array();
        out->created_at = out->updated_at = now;
        memcpy(out->values, in.values, sizeof(in.values));
        memset(in.values, 0, sizeof(in.values));
    }
    input_clear(&in);
    return rc;
}

/* ---- read ---- */

#define CUSTOMER_COLUMNS                                                                           \
    "id, status, country, language, tags, dek_wrapped, dek_version, created_at, updated_at, "      \
    "erased_at"

static void set_plain(struct cu_customer *c, const char *name, struct cu_stmt *st, int col)
{
    const struct cu_field_def *f = cu_field_find(name);
    size_t n = 0;
    const char *s = cu_stmt_text(st, col, &n);
    if (f != NULL && !cu_stmt_null(st, col))
        c->values[field_index(f)] = cu_strndup(s, n);
}

static enum cu_err customer_from_row(struct cu_stmt *st, struct cu_customer *c)
{
    json_error_t jerr;
    size_t n = 0;
    const char *s;

    memset(c, 0, sizeof(*c));
    s = cu_stmt_text(st, 0, &n);
    cu_text_copy(c->id, sizeof(c->id), s, n);
    s = cu_stmt_text(st, 1, &n);
    cu_text_copy(c->status, sizeof(c->status), s, n);
    set_plain(c, "country", st, 2);
    set_plain(c, "language", st, 3);
    s = cu_stmt_text(st, 4, &n);
    /* Most customers have no tags: skip the parser for them. */
    c->tags = n == 2 && memcmp(s, "[]", 2) == 0 ? json_array() : json_loadb(s, n, 0, &jerr);
    c->created_at = cu_stmt_int(st, 7);
    c->updated_at = cu_stmt_int(st, 8);
    c->erased_at = cu_stmt_null(st, 9) ? 0 : cu_stmt_int(st, 9);
    if (c->tags != NULL)
        return CU_OK;
    cu_log(CU_LOG_ERROR, "vault.record_corrupt", CU_LS("customer", c->id), CU_LS("column", "tags"),
           CU_LB("alert", true));
    return CU_E_CORRUPT;
}

/* Opens the personal field on the current row of st (columns 10 and 11) with the DEK. */
static enum cu_err open_row_field(struct cu_stmt *st, const struct cu_secret *dek,
                                  int64_t dek_version, struct cu_customer *c)
{
    size_t fl = 0, tl = 0;
    const char *field = cu_stmt_text(st, 10, &fl), *text = cu_stmt_text(st, 11, &tl);
    const struct cu_field_def *f = cu_field_find(field);

    if (f == NULL || !f->personal) {
        /* The name is the stored one, cut to the longest a field may have: never a value. */
        char name[CU_FIELD_NAME_MAX + 1];
        cu_text_copy(name, sizeof(name), field, fl);
        cu_log(CU_LOG_ERROR, "vault.record_corrupt", CU_LS("customer", c->id), CU_LS("field", name),
               CU_LB("alert", true));
        return CU_E_CORRUPT;
    }
    size_t i = field_index(f);
    cu_free(c->values[i]);
    c->values[i] = NULL;
    return open_field(dek, dek_version, c->id, f->name, text, tl, &c->values[i]);
}

enum cu_err cu_vault_get(struct cu_vault *v, struct cu_db *db, const char *id, bool decrypt,
                         struct cu_customer *out)
{
    /* With decrypt, the customer and its fields come from one statement, so from one snapshot:
     * a DEK rotated between two statements would otherwise meet fields sealed under the other
     * DEK. A customer without fields (erased) gives one row with field NULL. */
    static const char plain_sql[] = "SELECT " CUSTOMER_COLUMNS " FROM customers WHERE id = $1";
    static const char full_sql[] =
        "SELECT c.id, c.status, c.country, c.language, c.tags, c.dek_wrapped, c.dek_version, "
        "c.created_at, c.updated_at, c.erased_at, f.field, f.value FROM customers c "
        "LEFT JOIN customer_fields f ON f.customer_id = c.id WHERE c.id = $1";
    const struct cu_val p[] = {CU_VT(id)};
    struct cu_secret *dek = NULL;
    struct cu_stmt *st = NULL;
    int64_t dek_version = 0;
    bool row = false;
    enum cu_err rc = cu_db_query(db, decrypt ? full_sql : plain_sql, p, CU_NVALS(p), &st);

    memset(out, 0, sizeof(*out));
    if (rc == CU_OK)
        rc = cu_stmt_next(st, &row);
    if (rc == CU_OK && !row)
        rc = CU_E_NOT_FOUND;
    if (rc == CU_OK)
        rc = customer_from_row(st, out);
    if (rc == CU_OK && decrypt && !cu_stmt_null(st, 5)) {
        size_t wl = 0;
        const void *w = cu_stmt_blob(st, 5, &wl);
        dek_version = cu_stmt_int(st, 6);
        dek = thread_dek();
        rc = dek ? unwrap_into(v, out->id, w, wl, dek) : CU_E_NOMEM;
        while (rc == CU_OK && row && !cu_stmt_null(st, 10)) {
            rc = open_row_field(st, dek, dek_version, out);
            if (rc == CU_OK)
                rc = cu_stmt_next(st, &row);
        }
    }
    cu_stmt_done(st);
    thread_dek_wipe(dek);
    if (rc != CU_OK)
        cu_customer_clear(out);
    return rc;
}

/* ---- patch ---- */

/* Reads and unwraps a customer's DEK into dek (reused memory). */
static enum cu_err load_dek_into(struct cu_vault *v, struct cu_db *db, const char *id,
                                 struct cu_secret *dek, int64_t *version);

static enum cu_err load_dek(struct cu_vault *v, struct cu_db *db, const char *id,
                            struct cu_secret **dek, int64_t *version)
{
    struct cu_secret *d = cu_secret_new(CU_KEY_BYTES);
    enum cu_err rc = d ? load_dek_into(v, db, id, d, version) : CU_E_NOMEM;
    if (rc != CU_OK) {
        cu_secret_free(d);
        return rc;
    }
    *dek = d;
    return CU_OK;
}

static enum cu_err load_dek_into(struct cu_vault *v, struct cu_db *db, const char *id,
                                 struct cu_secret *dek, int64_t *version)
{
    static const char sql[] =
        "SELECT dek_wrapped, dek_version FROM customers WHERE id = $1 AND dek_wrapped IS NOT NULL";
    const struct cu_val p[] = {CU_VT(id)};
    struct cu_stmt *st = NULL;
    bool row = false;
    enum cu_err rc = cu_db_query(db, sql, p, CU_NVALS(p), &st);
    if (rc == CU_OK)
        rc = cu_stmt_next(st, &row);
    if (rc == CU_OK && !row)
        rc = CU_E_NOT_FOUND;
    if (rc == CU_OK) {
        size_t wl = 0;
        const void *w = cu_stmt_blob(st, 0, &wl);
        *version = cu_stmt_int(st, 1);
        rc = unwrap_into(v, id, w, wl, dek);
    }
    cu_stmt_done(st);
    return rc;
}

static bool same(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* Applies the personal-field changes of in to customer cur (whose values are decrypted). */
static enum cu_err patch_fields(struct cu_vault *v, struct cu_db *db, struct input *in,
                                struct cu_customer *cur, json_t *changed,
                                char why[CU_VAULT_WHY_BYTES])
{
    struct cu_secret *dek = NULL;
    int64_t dv = 0;
    size_t nf = 0;
    const struct cu_field_def *fs = cu_fields(&nf);
    enum cu_err rc = load_dek(v, db, cur->id, &dek, &dv);

    for (size_t i = 0; rc == CU_OK && i < nf; i++) {
        char *nv = in->clear[i] ? NULL : in->values[i];
        if ((nv == NULL && !in->clear[i]) || same(nv, cur->values[i]))
            continue;
        if (fs[i].personal)
            rc = nv ? put_field(v, db, dek, dv, cur->id, &fs[i], nv, why)
                    : drop_field(db, cur->id, &fs[i]);
        json_array_append_new(changed, json_string(fs[i].name));
        if (cur->values[i] != NULL) {
            cu_crypto_wipe(cur->values[i], strlen(cur->values[i]));
            cu_free(cur->values[i]);
        }
        cur->values[i] = nv;
        in->values[i] = NULL;
    }
    cu_secret_free(dek);
    return rc;
}

static enum cu_err update_plain(struct cu_db *db, struct input *in, struct cu_customer *cur,
                                json_t *changed, int64_t now)
{
    static const char sql[] = "UPDATE customers SET status = $2, country = $3, language = $4, "
                              "tags = $5, updated_at = $6 WHERE id = $1";
    const struct cu_field_def *fc = cu_field_find("country"), *fl = cu_field_find("language");
    const char *country = cur->values[field_index(fc)], *lang = cur->values[field_index(fl)];
    enum cu_err rc;

    if (in->status != NULL && strcmp(in->status, cur->status) != 0) {
        snprintf(cur->status, sizeof(cur->status), "%s", in->status);
        json_array_append_new(changed, json_string("status"));
    }
    if (in->tags != NULL && !json_equal(in->tags, cur->tags)) {
        json_decref(cur->tags);
        cur->tags = json_deep_copy(in->tags);
        json_array_append_new(changed, json_string("tags"));
    }
    char *tags = json_dumps(cur->tags, JSON_COMPACT);
    if (tags == NULL)
        return CU_E_NOMEM;
    const struct cu_val p[] = {CU_VT(cur->id),
                               CU_VT(cur->status),
                               country ? CU_VT(country) : CU_VNULL,
                               lang ? CU_VT(lang) : CU_VNULL,
                               CU_VT(tags),
                               CU_VI(now)};
    rc = cu_db_exec(db, sql, p, CU_NVALS(p));
    free(tags);
    cur->updated_at = now;
    return rc;
}

enum cu_err cu_vault_patch(struct cu_vault *v, struct cu_db *db, const char *id,
                           const json_t *input, struct cu_customer *out, json_t **changed,
                           char why[CU_VAULT_WHY_BYTES])
{
    struct input in;
    json_t *ch = json_array();
    enum cu_err rc = parse_input(input, true, &in, why);

    memset(out, 0, sizeof(*out));
    *changed = NULL;
    if (rc == CU_OK)
        rc = cu_vault_get(v, db, id, true, out);
    if (rc == CU_OK && strcmp(out->status, "erased") == 0)
        rc = CU_E_NOT_FOUND;
    if (rc == CU_OK)
        rc = patch_fields(v, db, &in, out, ch, why);
    if (rc == CU_OK && (json_array_size(ch) > 0 || in.status != NULL || in.tags != NULL))
        rc = update_plain(db, &in, out, ch, cu_clock_now_ms());
    input_clear(&in);
    if (rc != CU_OK) {
        json_decref(ch);
        cu_customer_clear(out);
        return rc;
    }
    *changed = ch;
    return CU_OK;
}

/* ---- find, list ---- */

enum cu_err cu_vault_find(struct cu_vault *v, struct cu_db *db, const char *field,
                          const char *value, char (*ids)[CU_CUSTOMER_ID_BYTES], size_t cap,
                          size_t *n, char why[CU_VAULT_WHY_BYTES])
{
    static const char sql[] =
        "SELECT customer_id FROM customer_index WHERE field = $1 AND hash = $2 ORDER BY "
        "customer_id LIMIT $3";
    const struct cu_field_def *f = cu_field_find(field);
    char reason[CU_FIELD_WHY_BYTES], norm[VALUE_MAX];
    uint8_t h[CU_HASH_BYTES];
    struct cu_stmt *st = NULL;
    size_t nl = 0;
    bool row = false;
    enum cu_err rc;

    *n = 0;
    if (f == NULL || !f->blind_index) {
        snprintf(why, CU_VAULT_WHY_BYTES, "'%.64s' cannot be searched", field);
        return CU_E_INVALID;
    }
    rc = cu_field_normalize(f, value, strlen(value), norm, sizeof(norm), &nl, reason);
    if (rc != CU_OK) {
        why_set(why, f->name, rc == CU_E_TOO_LARGE ? "too long" : reason);
        return rc;
    }
    blind_hash(v, f, norm, h);
    cu_crypto_wipe(norm, sizeof(norm));
    const struct cu_val p[] = {CU_VT(f->name), CU_VB(h, sizeof(h)), CU_VI(cap)};
    rc = cu_db_query(db, sql, p, CU_NVALS(p), &st);
    while (rc == CU_OK && *n < cap && (rc = cu_stmt_next(st, &row)) == CU_OK && row) {
        size_t l = 0;
        const char *s = cu_stmt_text(st, 0, &l);
        cu_text_copy(ids[*n], CU_CUSTOMER_ID_BYTES, s, l);
        (*n)++;
    }
    cu_stmt_done(st);
    return rc;
}

enum cu_err cu_vault_list(struct cu_vault *v, struct cu_db *db, const char *after, size_t limit,
                          struct cu_customer **out, size_t *n)
{
    static const char sql[] =
        "SELECT " CUSTOMER_COLUMNS " FROM customers WHERE id > $1 ORDER BY id LIMIT $2";
    struct cu_customer *cs;
    struct cu_stmt *st = NULL;
    size_t count = 0;
    bool row = false;
    enum cu_err rc;

    (void)v;
    if (limit == 0 || limit > 1000)
        return CU_E_INVALID;
    cs = cu_calloc(limit, sizeof(*cs));
    if (cs == NULL)
        return CU_E_NOMEM;
    const struct cu_val p[] = {CU_VT(after ? after : ""), CU_VI(limit)};
    rc = cu_db_query(db, sql, p, CU_NVALS(p), &st);
    while (rc == CU_OK && count < limit && (rc = cu_stmt_next(st, &row)) == CU_OK && row)
        rc = customer_from_row(st, &cs[count++]);
    cu_stmt_done(st);
    if (rc != CU_OK) {
        cu_customers_free(cs, count);
        return rc;
    }
    *out = cs;
    *n = count;
    return CU_OK;
}

/* ---- erase, rotation ---- */

enum cu_err cu_vault_erase(struct cu_vault *v, struct cu_db *db, const char *id, const char *by)
{
    static const char del_f[] = "DELETE FROM customer_fields WHERE customer_id = $1";
    static const char del_ix[] = "DELETE FROM customer_index WHERE customer_id = $1";
    static const char del_s[] = "DELETE FROM customer_secrets WHERE customer_id = $1";
    static const char tomb[] =
        "UPDATE customers SET status = 'erased', country = NULL, language = NULL, tags = '[]', "
        "dek_wrapped = NULL, kek_version = NULL, erased_at = $2, erased_by = $3, updated_at = $2 "
        "WHERE id = $1 AND dek_wrapped IS NOT NULL";
    const struct cu_val p[] = {CU_VT(id)};
    const struct cu_val t[] = {CU_VT(id), CU_VI(cu_clock_now_ms()), CU_VT(by)};
    enum cu_err rc = cu_db_exec(db, tomb, t, CU_NVALS(t));

    (void)v;
    if (rc == CU_OK && cu_db_changes(db) != 1)
        rc = CU_E_NOT_FOUND;
    if (rc == CU_OK)
        rc = cu_db_exec(db, del_f, p, CU_NVALS(p));
    if (rc == CU_OK)
        rc = cu_db_exec(db, del_ix, p, CU_NVALS(p));
    if (rc == CU_OK)
        rc = cu_db_exec(db, del_s, p, CU_NVALS(p));
    return rc;
}

enum cu_err cu_vault_rewrap(struct cu_vault *v, struct cu_db *db, size_t batch, size_t *done)
{
    static const char sel[] = "SELECT id, dek_wrapped FROM customers WHERE dek_wrapped IS NOT "
                              "NULL AND kek_version <> $1 ORDER BY id LIMIT $2";
    static const char upd[] =
        "UPDATE customers SET dek_wrapped = $2, kek_version = $3 WHERE id = $1";
    uint32_t current = cu_kek_current_version(v->kek);
    char(*ids)[CU_CUSTOMER_ID_BYTES] = cu_calloc(batch ? batch : 1, CU_CUSTOMER_ID_BYTES);
    struct cu_stmt *st = NULL;
    size_t n = 0;
    bool row = false;
    enum cu_err rc = ids ? CU_OK : CU_E_NOMEM;
    const struct cu_val p[] = {CU_VI(current), CU_VI(batch)};

    *done = 0;
    if (rc == CU_OK)
        rc = cu_db_query(db, sel, p, CU_NVALS(p), &st);
    while (rc == CU_OK && n < batch && (rc = cu_stmt_next(st, &row)) == CU_OK && row) {
        size_t l = 0;
        const char *s = cu_stmt_text(st, 0, &l);
        cu_text_copy(ids[n++], CU_CUSTOMER_ID_BYTES, s, l);
    }
    cu_stmt_done(st);
    /* One guarded buffer for the whole batch: guarded memory costs system calls. */
    struct cu_secret *dek = rc == CU_OK && n > 0 ? cu_secret_new(CU_KEY_BYTES) : NULL;
    if (n > 0 && dek == NULL)
        rc = CU_E_NOMEM;
    for (size_t i = 0; rc == CU_OK && i < n; i++) {
        int64_t dv = 0;
        uint8_t w[CU_KEK_WRAPPED_MAX];
        size_t wl = 0;
        uint32_t kv = 0;
        rc = load_dek_into(v, db, ids[i], dek, &dv);
        if (rc == CU_OK)
            rc = wrap_dek(v, ids[i], dek, w, sizeof(w), &wl, &kv);
        const struct cu_val u[] = {CU_VT(ids[i]), CU_VB(w, wl), CU_VI(kv)};
        if (rc == CU_OK)
            rc = cu_db_exec(db, upd, u, CU_NVALS(u));
    }
    cu_secret_free(dek);
    if (rc == CU_OK)
        *done = n;
    cu_free(ids);
    return rc;
}

/* ---- secrets ---- */

#define SECRET_NAME_MAX 32
#define SECRETS_PER_CUSTOMER 16

static bool secret_name_ok(const char *name)
{
    size_t n = strlen(name);
    return n > 0 && n <= SECRET_NAME_MAX && strspn(name, "abcdefghijklmnopqrstuvwxyz_") == n;
}

static void secret_ad(const char *id, const char *name, char ad[AD_BYTES])
{
    snprintf(ad, AD_BYTES, "customer_secrets|%s|%s", name, id);
}

static enum cu_err secret_write(struct cu_vault *v, struct cu_db *db, const struct cu_secret *dek,
                                int64_t dek_version, const char *id, const char *name,
                                const void *data, size_t len)
{
    static const char up[] = "INSERT INTO customer_secrets (customer_id, name, value) VALUES "
                             "($1, $2, $3) ON CONFLICT (customer_id, name) DO UPDATE SET "
                             "value = excluded.value";
    uint8_t sealed[CU_VAULT_SECRET_MAX + 64];
    char ad[AD_BYTES], text[CU_B64URL_LEN(CU_VAULT_SECRET_MAX + 64) + 1] = "";
    size_t n = 0;
    enum cu_err rc;

    secret_ad(id, name, ad);
    rc = cu_crypto_seal(dek, (uint32_t)dek_version, v->alg, data, len, (const uint8_t *)ad,
                        strlen(ad), sealed, sizeof(sealed), &n);
    if (rc == CU_OK)
        rc = cu_b64url_encode(sealed, n, text, sizeof(text));
    const struct cu_val p[] = {CU_VT(id), CU_VT(name), CU_VT(text)};
    if (rc == CU_OK)
        rc = cu_db_exec(db, up, p, CU_NVALS(p));
    return rc;
}

static enum cu_err secret_open(const struct cu_secret *dek, int64_t dek_version, const char *id,
                               const char *name, const char *text, size_t tlen, void *out,
                               size_t cap, size_t *len)
{
    uint8_t sealed[CU_VAULT_SECRET_MAX + 64];
    char ad[AD_BYTES];
    size_t n = 0;
    enum cu_err rc = cu_b64url_decode_public(text, tlen, sealed, sizeof(sealed), &n);

    if (rc != CU_OK)
        rc = CU_E_CORRUPT;
    if (rc == CU_OK) {
        secret_ad(id, name, ad);
        rc = cu_crypto_open(dek, (uint32_t)dek_version, sealed, n, (const uint8_t *)ad, strlen(ad),
                            out, cap, len);
    }
    if (rc != CU_OK)
        cu_log(CU_LOG_ERROR, "vault.secret_open_failed", CU_LS("customer", id),
               CU_LS("secret", name), CU_LS("error", cu_err_str(rc)), CU_LB("alert", true));
    return rc;
}

enum cu_err cu_vault_secret_put(struct cu_vault *v, struct cu_db *db, const char *id,
                                const char *name, const void *data, size_t len)
{
    struct cu_secret *dek = NULL;
    int64_t dv = 0;
    enum cu_err rc = secret_name_ok(name) && len <= CU_VAULT_SECRET_MAX ? CU_OK : CU_E_INVALID;

    if (rc == CU_OK)
        rc = load_dek(v, db, id, &dek, &dv);
    if (rc == CU_OK)
        rc = secret_write(v, db, dek, dv, id, name, data, len);
    cu_secret_free(dek);
    return rc;
}

enum cu_err cu_vault_secret_get(struct cu_vault *v, struct cu_db *db, const char *id,
                                const char *name, void *out, size_t cap, size_t *len)
{
    static const char sql[] =
        "SELECT value FROM customer_secrets WHERE customer_id = $1 AND name = $2";
    const struct cu_val p[] = {CU_VT(id), CU_VT(name)};
    struct cu_secret *dek = NULL;
    struct cu_stmt *st = NULL;
    int64_t dv = 0;
    bool row = false;
    enum cu_err rc = load_dek(v, db, id, &dek, &dv);

    if (rc == CU_OK)
        rc = cu_db_query(db, sql, p, CU_NVALS(p), &st);
    if (rc == CU_OK)
        rc = cu_stmt_next(st, &row);
    if (rc == CU_OK && !row)
        rc = CU_E_NOT_FOUND;
    if (rc == CU_OK) {
        size_t tl = 0;
        const char *text = cu_stmt_text(st, 0, &tl);
        rc = secret_open(dek, dv, id, name, text, tl, out, cap, len);
    }
    cu_stmt_done(st);
    cu_secret_free(dek);
    return rc;
}

enum cu_err cu_vault_secret_drop(struct cu_db *db, const char *id, const char *name)
{
    static const char sql[] = "DELETE FROM customer_secrets WHERE customer_id = $1 AND name = $2";
    const struct cu_val p[] = {CU_VT(id), CU_VT(name)};
    return cu_db_exec(db, sql, p, CU_NVALS(p));
}

/* Re-seals every secret of a customer from the old DEK to the new one. */
static enum cu_err reseal_secrets(struct cu_vault *v, struct cu_db *db, const char *id,
                                  const struct cu_secret *old, int64_t old_version,
                                  const struct cu_secret *dek, int64_t version)
{
    static const char sql[] = "SELECT name, value FROM customer_secrets WHERE customer_id = $1 "
                              "ORDER BY name";
    const struct cu_val p[] = {CU_VT(id)};
    struct {
        char name[SECRET_NAME_MAX + 1];
        uint8_t data[CU_VAULT_SECRET_MAX];
        size_t len;
    } *s = cu_calloc(SECRETS_PER_CUSTOMER, sizeof(*s));
    struct cu_stmt *st = NULL;
    size_t n = 0;
    bool row = false;
    enum cu_err rc = s ? cu_db_query(db, sql, p, CU_NVALS(p), &st) : CU_E_NOMEM;

    while (rc == CU_OK && (rc = cu_stmt_next(st, &row)) == CU_OK && row) {
        size_t nl = 0, tl = 0;
        const char *name = cu_stmt_text(st, 0, &nl), *text = cu_stmt_text(st, 1, &tl);
        if (n == SECRETS_PER_CUSTOMER || nl > SECRET_NAME_MAX) {
            rc = CU_E_CORRUPT;
            break;
        }
        cu_text_copy(s[n].name, sizeof(s[n].name), name, nl);
        rc = secret_open(old, old_version, id, s[n].name, text, tl, s[n].data, sizeof(s[n].data),
                         &s[n].len);
        n++;
    }
    cu_stmt_done(st);
    for (size_t i = 0; rc == CU_OK && i < n; i++)
        rc = secret_write(v, db, dek, version, id, s[i].name, s[i].data, s[i].len);
    if (s != NULL) {
        cu_crypto_wipe(s, SECRETS_PER_CUSTOMER * sizeof(*s));
        cu_free(s);
    }
    return rc;
}

enum cu_err cu_vault_rotate_dek(struct cu_vault *v, struct cu_db *db, const char *id)
{
    static const char upd[] = "UPDATE customers SET dek_wrapped = $2, dek_version = $3, "
                              "kek_version = $4, updated_at = $5 WHERE id = $1";
    struct cu_customer c;
    struct cu_secret *old = NULL, *dek = NULL;
    char why[CU_VAULT_WHY_BYTES];
    uint8_t w[CU_KEK_WRAPPED_MAX];
    size_t wl = 0, nf = 0;
    uint32_t kv = 0;
    int64_t dv = 0;
    const struct cu_field_def *fs = cu_fields(&nf);
    enum cu_err rc = cu_vault_get(v, db, id, true, &c);

    if (rc == CU_OK && strcmp(c.status, "erased") == 0)
        rc = CU_E_NOT_FOUND;
    if (rc == CU_OK)
        rc = load_dek(v, db, id, &old, &dv);
    if (rc == CU_OK && (dek = cu_secret_new(CU_KEY_BYTES)) == NULL)
        rc = CU_E_NOMEM;
    if (rc == CU_OK) {
        cu_crypto_random(cu_secret_data(dek), CU_KEY_BYTES);
        rc = wrap_dek(v, id, dek, w, sizeof(w), &wl, &kv);
    }
    for (size_t i = 0; rc == CU_OK && i < nf; i++) {
        if (fs[i].personal && c.values[i] != NULL)
            rc = put_field(v, db, dek, dv + 1, id, &fs[i], c.values[i], why);
    }
    if (rc == CU_OK)
        rc = reseal_secrets(v, db, id, old, dv, dek, dv + 1);
    if (rc == CU_OK) {
        const struct cu_val p[] = {CU_VT(id), CU_VB(w, wl), CU_VI(dv + 1), CU_VI(kv),
                                   CU_VI(cu_clock_now_ms())};
        rc = cu_db_exec(db, upd, p, CU_NVALS(p));
    }
    cu_secret_free(old);
    cu_secret_free(dek);
    cu_customer_clear(&c);
    return rc;
}

enum cu_err cu_vault_kek_usage(struct cu_db *db, uint32_t version, int64_t *count)
{
    static const char sql[] = "SELECT count(*) FROM customers WHERE kek_version = $1 AND "
                              "dek_wrapped IS NOT NULL";
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

/* ---- JSON ---- */

/* Appends ,"key": (or "key": when first) to b; key is a field or member name, plain ASCII
 * shorter than CU_FIELD_NAME_MAX, so it needs no escaping. */
static enum cu_err put_key(struct cu_buf *b, const char *key, bool first)
{
    size_t kl = strnlen(key, CU_FIELD_NAME_MAX), n = (first ? 0 : 1) + kl + 3;
    char *at = NULL;
    enum cu_err rc = cu_buf_extend(b, n, &at);
    if (rc == CU_OK) {
        if (!first)
            *at++ = ',';
        *at++ = '"';
        memcpy(at, key, kl);
        at[kl] = '"';
        at[kl + 1] = ':';
    }
    return rc;
}

static enum cu_err put_string(struct cu_buf *b, const char *key, const char *value)
{
    enum cu_err rc = put_key(b, key, false);
    return rc == CU_OK ? cu_json_escape(b, value, strlen(value)) : rc;
}

static enum cu_err put_time(struct cu_buf *b, const char *key, int64_t ms)
{
    char t[CU_RFC3339_BYTES];
    cu_clock_format(ms, t);
    return put_string(b, key, t);
}

/* cu_customer_write(c, unmask, b): appends the API form of c to b as one JSON object. It is
 * written directly, not built as a jansson tree and dumped: a customer read is answered
 * thousands of times a second and the tree cost more than the field decrypts. */
enum cu_err cu_customer_write(const struct cu_customer *c, bool unmask, struct cu_buf *b)
{
    size_t nf = 0, old = b->len;
    const struct cu_field_def *fs = cu_fields(&nf);
    enum cu_err rc = cu_buf_append(b, "{", 1);

    if (rc == CU_OK)
        rc = put_key(b, "id", true);
    if (rc == CU_OK)
        rc = cu_json_escape(b, c->id, strlen(c->id));
    if (rc == CU_OK)
        rc = put_string(b, "status", c->status);
    if (rc == CU_OK)
        rc = put_key(b, "tags", false);
    if (rc == CU_OK)
        rc = cu_buf_append(b, "[", 1);
    for (size_t i = 0; rc == CU_OK && i < json_array_size(c->tags); i++) {
        const json_t *t = json_array_get(c->tags, i);
        if (i > 0)
            rc = cu_buf_append(b, ",", 1);
        if (rc == CU_OK)
            rc = cu_json_escape(b, json_string_value(t) ? json_string_value(t) : "",
                                json_string_length(t));
    }
    if (rc == CU_OK)
        rc = cu_buf_append(b, "]", 1);
    if (rc == CU_OK)
        rc = put_time(b, "created_at", c->created_at);
    if (rc == CU_OK)
        rc = put_time(b, "updated_at", c->updated_at);
    if (rc == CU_OK)
        rc = c->erased_at ? put_time(b, "erased_at", c->erased_at) : put_key(b, "erased_at", false);
    if (rc == CU_OK && c->erased_at == 0)
        rc = cu_buf_append(b, "null", 4);
    if (rc == CU_OK)
        rc = put_key(b, "masked", false);
    if (rc == CU_OK)
        rc = unmask ? cu_buf_append(b, "false", 5) : cu_buf_append(b, "true", 4);
    for (size_t i = 0; rc == CU_OK && i < nf; i++) {
        char masked[VALUE_MAX + 16];
        if (c->values[i] == NULL)
            continue;
        if (unmask || fs[i].mask == CU_MASK_NONE) {
            rc = put_string(b, fs[i].name, c->values[i]);
        } else {
            cu_field_mask(&fs[i], c->values[i], masked, sizeof(masked));
            rc = put_string(b, fs[i].name, masked);
            cu_crypto_wipe(masked, sizeof(masked));
        }
    }
    if (rc == CU_OK)
        rc = cu_buf_append(b, "}", 1);
    if (rc != CU_OK && b->data != NULL) {
        cu_crypto_wipe(b->data + old, b->len - old);
        b->len = old;
        b->data[old] = '\0';
    }
    return rc;
}
