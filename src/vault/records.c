/*
 * records.c - customer records: create, get, patch, list, erase, and a customer's state for
 * other services; each personal field sealed under the customer's DEK.
 *
 * Layout (docs/internals/vault.md): a row in customers holds the plain fields and the
 * customer's keys (envelope.h); each personal field is a row in customer_fields holding the
 * field sealed under the DEK with associated data "customers|<field>|<customer id>", base64url
 * (cu_envelope_seal); fields with a blind index also have a row in customer_index (index.c).
 */
#include "vault/vault_int.h"

#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/text.h"

/* ---- sealed fields ---- */

/* cu_vault_field_put(v, db, dek, dek_version, id, f, value, why): seals value under the DEK
 * and writes (or replaces) the field's row and its blind index. CU_E_EXISTS with why when a
 * unique value is taken. */
enum cu_err cu_vault_field_put(struct cu_vault *v, struct cu_db *db, const struct cu_secret *dek,
                               uint32_t dek_version, const char *id, const struct cu_field_def *f,
                               const char *value, char why[CU_VAULT_WHY_BYTES])
{
    static const char up[] = "INSERT INTO customer_fields (customer_id, field, value) VALUES "
                             "($1, $2, $3) ON CONFLICT (customer_id, field) DO UPDATE SET "
                             "value = excluded.value";
    char ad[CU_ENVELOPE_AD_BYTES], text[CU_ENVELOPE_TEXT_BYTES];
    enum cu_err rc = cu_envelope_ad("customers", f->name, id, ad);

    if (rc == CU_OK)
        rc = cu_envelope_seal(v->keys, dek, dek_version, ad, value, strlen(value), text);
    if (rc == CU_OK) {
        const struct cu_val p[] = {CU_VT(id), CU_VT(f->name), CU_VT(text)};
        rc = cu_db_exec(db, up, p, CU_NVALS(p));
    }
    if (rc == CU_OK && f->blind_index)
        rc = cu_vault_index_put(v, db, id, f, value, why);
    return rc;
}

/* Opens a sealed field's text into *out (cu_malloc'd, NUL-terminated; the caller wipes and
 * frees it). A failure is logged as an alert naming the customer and the field. */
static enum cu_err field_open(const struct cu_secret *dek, uint32_t dek_version, const char *id,
                              const char *field, const char *text, size_t tlen, char **out)
{
    char ad[CU_ENVELOPE_AD_BYTES], *plain = cu_malloc(tlen + 1);
    size_t pn = 0;
    enum cu_err rc = plain != NULL ? cu_envelope_ad("customers", field, id, ad) : CU_E_NOMEM;

    if (rc == CU_OK)
        rc = cu_envelope_open(dek, dek_version, ad, text, tlen, plain, tlen, &pn);
    if (rc == CU_OK) {
        plain[pn] = '\0';
        *out = plain;
        plain = NULL;
    } else if (rc != CU_E_NOMEM) {
        cu_log(CU_LOG_ERROR, "vault.field_open_failed", CU_LS("customer", id),
               CU_LS("field", field), CU_LS("error", cu_err_str(rc)), CU_LB("alert", true));
    }
    cu_free(plain);
    return rc;
}

static enum cu_err field_drop(struct cu_db *db, const char *id, const struct cu_field_def *f)
{
    static const char sql[] = "DELETE FROM customer_fields WHERE customer_id = $1 AND field = $2";
    const struct cu_val p[] = {CU_VT(id), CU_VT(f->name)};
    enum cu_err rc = cu_db_exec(db, sql, p, CU_NVALS(p));
    return rc == CU_OK ? cu_vault_index_drop(db, id, f->name) : rc;
}

/* ---- create ---- */

static void new_id(char id[CU_CUSTOMER_ID_BYTES])
{
    uint8_t raw[8];
    cu_crypto_random(raw, sizeof(raw));
    memcpy(id, "cus_", 5); /* the NUL is overwritten by the hex digits */
    cu_hex_encode(raw, sizeof(raw), id + 4);
}

static enum cu_err insert_customer(struct cu_db *db, const struct cu_vault_input *in,
                                   const char *id, const struct cu_envelope_wrapped *w, int64_t now)
{
    static const char sql[] =
        "INSERT INTO customers (id, status, country, language, tags, dek_wrapped, dek_version, "
        "kek_version, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8, $8)";
    json_t *empty = in->tags ? NULL : json_array();
    char *tags = json_dumps(in->tags ? in->tags : empty, JSON_COMPACT);
    const char *country = cu_vault_input_value(in, "country");
    const char *lang = cu_vault_input_value(in, "language");
    enum cu_err rc = tags != NULL ? CU_OK : CU_E_NOMEM;

    json_decref(empty);
    if (rc == CU_OK) {
        const struct cu_val p[] = {CU_VT(id),
                                   CU_VT(in->status ? in->status : "active"),
                                   country ? CU_VT(country) : CU_VNULL,
                                   lang ? CU_VT(lang) : CU_VNULL,
                                   CU_VT(tags),
                                   CU_VB(w->data, w->len),
                                   CU_VI(w->kek_version),
                                   CU_VI(now)};
        rc = cu_db_exec(db, sql, p, CU_NVALS(p));
    }
    free(tags);
    return rc;
}

/* cu_vault_create(v, db, input, out, why): validates input (a JSON object of known field names,
 * at least one, plus "tags" and "status"), makes a DEK, encrypts the personal fields, writes
 * the blind indexes, and fills out. CU_E_INVALID / CU_E_TOO_LARGE with why naming the field
 * and the rule, or saying that input names no field; CU_E_EXISTS (why names the field) when a
 * unique value is taken. */
enum cu_err cu_vault_create(struct cu_vault *v, struct cu_db *db, const json_t *input,
                            struct cu_customer *out, char why[CU_VAULT_WHY_BYTES])
{
    struct cu_vault_input in;
    struct cu_envelope_wrapped w;
    struct cu_secret *dek = NULL;
    int64_t now = cu_clock_now_ms();
    size_t nf = 0;
    const struct cu_field_def *fs = cu_fields(&nf);
    enum cu_err rc = cu_vault_input_parse(input, false, &in, why);

    memset(out, 0, sizeof(*out));
    if (rc == CU_OK && !cu_vault_input_names_a_field(&in)) {
        snprintf(why, CU_VAULT_WHY_BYTES,
                 "the body names no field: a new customer needs at least one of its fields "
                 "(tags and status alone are not enough)");
        rc = CU_E_INVALID;
    }
    if (rc == CU_OK) {
        new_id(out->id);
        rc = cu_envelope_dek_new(v->keys, out->id, &dek, &w);
    }
    if (rc == CU_OK)
        rc = insert_customer(db, &in, out->id, &w, now);
    for (size_t i = 0; rc == CU_OK && i < nf; i++) {
        if (in.values[i] != NULL && fs[i].personal)
            rc = cu_vault_field_put(v, db, dek, 1, out->id, &fs[i], in.values[i], why);
    }
    cu_secret_free(dek);
    if (rc == CU_OK) {
        snprintf(out->status, sizeof(out->status), "%s", in.status ? in.status : "active");
        out->tags = in.tags ? json_deep_copy(in.tags) : json_array();
        out->created_at = out->updated_at = now;
        memcpy(out->values, in.values, sizeof(in.values));
        memset(in.values, 0, sizeof(in.values));
    }
    cu_vault_input_clear(&in);
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
        c->values[cu_vault_field_index(f)] = cu_strndup(s, n);
}

static enum cu_err customer_from_row(struct cu_stmt *st, struct cu_customer *c)
{
    json_error_t jerr;
    size_t n = 0;
    const char *s;
    enum cu_err rc = CU_OK;

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
    if (c->tags == NULL) {
        cu_log(CU_LOG_ERROR, "vault.record_corrupt", CU_LS("customer", c->id),
               CU_LS("column", "tags"), CU_LB("alert", true));
        rc = CU_E_CORRUPT;
    }
    return rc;
}

/* Opens the personal field on the current row of st (columns 10 and 11) with the DEK. */
static enum cu_err open_row_field(struct cu_stmt *st, const struct cu_secret *dek,
                                  uint32_t dek_version, struct cu_customer *c)
{
    size_t fl = 0, tl = 0;
    const char *field = cu_stmt_text(st, 10, &fl), *text = cu_stmt_text(st, 11, &tl);
    const struct cu_field_def *f = cu_field_find(field);
    enum cu_err rc = CU_OK;

    if (f == NULL || !f->personal) {
        /* The name is the stored one, cut to the longest a field may have: never a value. */
        char name[CU_FIELD_NAME_MAX + 1];
        cu_text_copy(name, sizeof(name), field, fl);
        cu_log(CU_LOG_ERROR, "vault.record_corrupt", CU_LS("customer", c->id), CU_LS("field", name),
               CU_LB("alert", true));
        rc = CU_E_CORRUPT;
    } else {
        size_t i = cu_vault_field_index(f);
        cu_free(c->values[i]);
        c->values[i] = NULL;
        rc = field_open(dek, dek_version, c->id, f->name, text, tl, &c->values[i]);
    }
    return rc;
}

/* Unwraps the DEK on the current row of st and opens every field row that follows. */
static enum cu_err open_row_fields(struct cu_vault *v, struct cu_stmt *st, bool row,
                                   struct cu_customer *c)
{
    size_t wl = 0;
    const void *w = cu_stmt_blob(st, 5, &wl);
    uint32_t dek_version = (uint32_t)cu_stmt_int(st, 6);
    struct cu_secret *dek = cu_envelope_dek_borrow();
    enum cu_err rc = dek != NULL ? cu_envelope_dek_unwrap(v->keys, c->id, w, wl, dek) : CU_E_NOMEM;

    while (rc == CU_OK && row && !cu_stmt_null(st, 10)) {
        rc = open_row_field(st, dek, dek_version, c);
        if (rc == CU_OK)
            rc = cu_stmt_next(st, &row);
    }
    cu_envelope_dek_return(dek);
    return rc;
}

/* cu_vault_get(v, db, id, decrypt, out): one customer; the personal fields decrypted when
 * decrypt. CU_E_NOT_FOUND for an unknown id. CU_E_CRYPTO or CU_E_KEY_MISSING (logged as an
 * alert) when stored data fails to open: never garbage. */
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
    struct cu_stmt *st = NULL;
    bool row = false;
    enum cu_err rc = cu_db_query(db, decrypt ? full_sql : plain_sql, p, CU_NVALS(p), &st);

    memset(out, 0, sizeof(*out));
    if (rc == CU_OK)
        rc = cu_stmt_next(st, &row);
    if (rc == CU_OK && !row)
        rc = CU_E_NOT_FOUND;
    if (rc == CU_OK)
        rc = customer_from_row(st, out);
    if (rc == CU_OK && decrypt && !cu_stmt_null(st, 5))
        rc = open_row_fields(v, st, row, out);
    cu_stmt_done(st);
    if (rc != CU_OK)
        cu_customer_clear(out);
    return rc;
}

/* cu_vault_customer_state(v, db, id, status): the customer's status ("active", "suspended",
 * "closed" or "erased") into status, reading no personal field: for a service that acts for a
 * customer (identity: may they sign in?) without reading the vault's tables. CU_E_NOT_FOUND
 * for an unknown id. */
enum cu_err cu_vault_customer_state(struct cu_vault *v, struct cu_db *db, const char *id,
                                    char status[CU_VAULT_STATUS_BYTES])
{
    static const char sql[] = "SELECT status FROM customers WHERE id = $1";
    const struct cu_val p[] = {CU_VT(id)};
    struct cu_stmt *st = NULL;
    bool row = false;
    enum cu_err rc = cu_db_query(db, sql, p, CU_NVALS(p), &st);

    (void)v;
    status[0] = '\0';
    if (rc == CU_OK)
        rc = cu_stmt_next(st, &row);
    if (rc == CU_OK && !row)
        rc = CU_E_NOT_FOUND;
    if (rc == CU_OK) {
        size_t n = 0;
        const char *s = cu_stmt_text(st, 0, &n);
        cu_text_copy(status, CU_VAULT_STATUS_BYTES, s, n);
    }
    cu_stmt_done(st);
    return rc;
}

/* ---- patch ---- */

static bool same(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* Applies the personal-field changes of in to customer cur (whose values are decrypted). */
static enum cu_err patch_fields(struct cu_vault *v, struct cu_db *db, struct cu_vault_input *in,
                                struct cu_customer *cur, json_t *changed,
                                char why[CU_VAULT_WHY_BYTES])
{
    struct cu_secret *dek = cu_envelope_dek_borrow();
    uint32_t dv = 0;
    size_t nf = 0;
    const struct cu_field_def *fs = cu_fields(&nf);
    enum cu_err rc =
        dek != NULL ? cu_envelope_dek_load(v->keys, db, cur->id, dek, &dv) : CU_E_NOMEM;

    for (size_t i = 0; rc == CU_OK && i < nf; i++) {
        char *nv = in->clear[i] ? NULL : in->values[i];
        if ((nv == NULL && !in->clear[i]) || same(nv, cur->values[i]))
            continue;
        if (fs[i].personal)
            rc = nv ? cu_vault_field_put(v, db, dek, dv, cur->id, &fs[i], nv, why)
                    : field_drop(db, cur->id, &fs[i]);
        json_array_append_new(changed, json_string(fs[i].name));
        if (cur->values[i] != NULL) {
            cu_crypto_wipe(cur->values[i], strlen(cur->values[i]));
            cu_free(cur->values[i]);
        }
        cur->values[i] = nv;
        in->values[i] = NULL;
    }
    cu_envelope_dek_return(dek);
    return rc;
}

static enum cu_err update_plain(struct cu_db *db, struct cu_vault_input *in,
                                struct cu_customer *cur, json_t *changed, int64_t now)
{
    static const char sql[] = "UPDATE customers SET status = $2, country = $3, language = $4, "
                              "tags = $5, updated_at = $6 WHERE id = $1";
    const struct cu_field_def *fc = cu_field_find("country"), *fl = cu_field_find("language");
    const char *country = cur->values[cu_vault_field_index(fc)];
    const char *lang = cur->values[cu_vault_field_index(fl)];
    char *tags = NULL;
    enum cu_err rc = CU_OK;

    if (in->status != NULL && strcmp(in->status, cur->status) != 0) {
        snprintf(cur->status, sizeof(cur->status), "%s", in->status);
        json_array_append_new(changed, json_string("status"));
    }
    if (in->tags != NULL && !json_equal(in->tags, cur->tags)) {
        json_decref(cur->tags);
        cur->tags = json_deep_copy(in->tags);
        json_array_append_new(changed, json_string("tags"));
    }
    if ((tags = json_dumps(cur->tags, JSON_COMPACT)) == NULL)
        rc = CU_E_NOMEM;
    if (rc == CU_OK) {
        const struct cu_val p[] = {CU_VT(cur->id),
                                   CU_VT(cur->status),
                                   country ? CU_VT(country) : CU_VNULL,
                                   lang ? CU_VT(lang) : CU_VNULL,
                                   CU_VT(tags),
                                   CU_VI(now)};
        rc = cu_db_exec(db, sql, p, CU_NVALS(p));
        cur->updated_at = now;
    }
    free(tags);
    return rc;
}

/* cu_vault_patch(v, db, id, input, out, changed, why): sets the fields in input (JSON null
 * removes a field), re-indexes, and fills out with the result; changed gets the names of the
 * fields that changed (a JSON array, caller decrefs). Errors as cu_vault_create, and
 * CU_E_NOT_FOUND for an unknown or erased customer. */
enum cu_err cu_vault_patch(struct cu_vault *v, struct cu_db *db, const char *id,
                           const json_t *input, struct cu_customer *out, json_t **changed,
                           char why[CU_VAULT_WHY_BYTES])
{
    struct cu_vault_input in;
    json_t *ch = json_array();
    enum cu_err rc = cu_vault_input_parse(input, true, &in, why);

    memset(out, 0, sizeof(*out));
    *changed = NULL;
    if (rc == CU_OK && ch == NULL)
        rc = CU_E_NOMEM;
    if (rc == CU_OK)
        rc = cu_vault_get(v, db, id, true, out);
    if (rc == CU_OK && strcmp(out->status, "erased") == 0)
        rc = CU_E_NOT_FOUND;
    if (rc == CU_OK)
        rc = patch_fields(v, db, &in, out, ch, why);
    if (rc == CU_OK && (json_array_size(ch) > 0 || in.status != NULL || in.tags != NULL))
        rc = update_plain(db, &in, out, ch, cu_clock_now_ms());
    cu_vault_input_clear(&in);
    if (rc == CU_OK) {
        *changed = ch;
        ch = NULL;
    } else {
        cu_customer_clear(out);
    }
    json_decref(ch);
    return rc;
}

/* ---- list ---- */

/* cu_vault_list(v, db, after, limit, out, n): up to limit (1..1000) customers ordered by id
 * after the id `after` (NULL for the first page), personal fields not decrypted. Caller frees
 * with cu_customers_free(*out, *n). */
enum cu_err cu_vault_list(struct cu_vault *v, struct cu_db *db, const char *after, size_t limit,
                          struct cu_customer **out, size_t *n)
{
    static const char sql[] =
        "SELECT " CUSTOMER_COLUMNS " FROM customers WHERE id > $1 ORDER BY id LIMIT $2";
    const struct cu_val p[] = {CU_VT(after ? after : ""), CU_VI(limit)};
    struct cu_customer *cs = NULL;
    struct cu_stmt *st = NULL;
    size_t count = 0;
    bool row = false;
    enum cu_err rc = limit >= 1 && limit <= 1000 ? CU_OK : CU_E_INVALID;

    (void)v;
    if (rc == CU_OK && (cs = cu_calloc(limit, sizeof(*cs))) == NULL)
        rc = CU_E_NOMEM;
    if (rc == CU_OK)
        rc = cu_db_query(db, sql, p, CU_NVALS(p), &st);
    while (rc == CU_OK && count < limit && (rc = cu_stmt_next(st, &row)) == CU_OK && row)
        rc = customer_from_row(st, &cs[count++]);
    cu_stmt_done(st);
    if (rc == CU_OK) {
        *out = cs;
        *n = count;
        cs = NULL;
    }
    cu_customers_free(cs, count);
    return rc;
}

/* ---- erase ---- */

/* cu_vault_erase(v, db, id, by): crypto-shreds the customer: destroys the wrapped DEK and
 * every personal field and blind-index entry, keeps a tombstone (id, erased time, by whom).
 * CU_E_NOT_FOUND for an unknown or already erased customer. */
enum cu_err cu_vault_erase(struct cu_vault *v, struct cu_db *db, const char *id, const char *by)
{
    static const char del_f[] = "DELETE FROM customer_fields WHERE customer_id = $1";
    static const char tomb[] =
        "UPDATE customers SET status = 'erased', country = NULL, language = NULL, tags = '[]', "
        "erased_at = $2, erased_by = $3, updated_at = $2 WHERE id = $1";
    const struct cu_val p[] = {CU_VT(id)};
    const struct cu_val t[] = {CU_VT(id), CU_VI(cu_clock_now_ms()), CU_VT(by)};
    enum cu_err rc = cu_envelope_destroy(&cu_vault_customer_keys, db, id);

    (void)v;
    if (rc == CU_OK)
        rc = cu_db_exec(db, tomb, t, CU_NVALS(t));
    if (rc == CU_OK)
        rc = cu_db_exec(db, del_f, p, CU_NVALS(p));
    if (rc == CU_OK)
        rc = cu_vault_index_drop(db, id, NULL);
    return rc;
}
