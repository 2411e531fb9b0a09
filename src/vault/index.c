/*
 * index.c - blind indexes: the keyed BLAKE2b (sub-key "vaultidx") of "<field>" 0x00
 * "<normalised value>" in customer_index, so a customer is found by an exact value without
 * decrypting anything; a unique field's hash cannot repeat (a partial unique index).
 */
#include "vault/vault_int.h"

#include <stdio.h>
#include <string.h>

#include "base/text.h"

static void blind_hash(const struct cu_vault *v, const struct cu_field_def *f, const char *value,
                       uint8_t out[CU_HASH_BYTES])
{
    uint8_t buf[CU_VAULT_VALUE_MAX + 64];
    size_t nl = strlen(f->name), vl = strlen(value);

    CU_ASSERT(nl + 1 + vl <= sizeof(buf));
    memcpy(buf, f->name, nl);
    buf[nl] = 0;
    memcpy(buf + nl + 1, value, vl);
    cu_crypto_keyed_hash(v->index_key, buf, nl + 1 + vl, out);
    cu_crypto_wipe(buf, sizeof(buf));
}

/* cu_vault_index_put(v, db, id, f, value, why): replaces the blind index of the customer's
 * field f (which has one) with that of value. CU_E_EXISTS with why when f is unique and
 * another customer has the value. */
enum cu_err cu_vault_index_put(struct cu_vault *v, struct cu_db *db, const char *id,
                               const struct cu_field_def *f, const char *value,
                               char why[CU_VAULT_WHY_BYTES])
{
    static const char ins[] = "INSERT INTO customer_index (field, hash, customer_id, is_unique) "
                              "VALUES ($1, $2, $3, $4)";
    uint8_t h[CU_HASH_BYTES];
    enum cu_err rc = cu_vault_index_drop(db, id, f->name);

    CU_ASSERT(f->blind_index);
    blind_hash(v, f, value, h);
    if (rc == CU_OK) {
        const struct cu_val p[] = {CU_VT(f->name), CU_VB(h, sizeof(h)), CU_VT(id),
                                   CU_VI(f->unique)};
        rc = cu_db_exec(db, ins, p, CU_NVALS(p));
    }
    if (rc == CU_E_EXISTS)
        cu_vault_why(why, f->name, "another customer already has this value");
    return rc;
}

/* cu_vault_index_drop(db, id, field): deletes the blind index of the customer's field, or of
 * every field when field is NULL. */
enum cu_err cu_vault_index_drop(struct cu_db *db, const char *id, const char *field)
{
    static const char one[] = "DELETE FROM customer_index WHERE customer_id = $1 AND field = $2";
    static const char all[] = "DELETE FROM customer_index WHERE customer_id = $1";
    const struct cu_val p[] = {CU_VT(id), field ? CU_VT(field) : CU_VNULL};
    return field ? cu_db_exec(db, one, p, 2) : cu_db_exec(db, all, p, 1);
}

/* cu_vault_find(v, db, field, value, ids, cap, n, why): the ids of the customers whose field
 * (one with a blind index) has value after normalisation, at most cap. */
enum cu_err cu_vault_find(struct cu_vault *v, struct cu_db *db, const char *field,
                          const char *value, char (*ids)[CU_CUSTOMER_ID_BYTES], size_t cap,
                          size_t *n, char why[CU_VAULT_WHY_BYTES])
{
    static const char sql[] =
        "SELECT customer_id FROM customer_index WHERE field = $1 AND hash = $2 ORDER BY "
        "customer_id LIMIT $3";
    const struct cu_field_def *f = cu_field_find(field);
    char reason[CU_FIELD_WHY_BYTES], norm[CU_VAULT_VALUE_MAX];
    uint8_t h[CU_HASH_BYTES];
    struct cu_stmt *st = NULL;
    size_t nl = 0;
    bool row = false;
    enum cu_err rc = CU_OK;

    *n = 0;
    if (f == NULL || !f->blind_index) {
        snprintf(why, CU_VAULT_WHY_BYTES, "'%.64s' cannot be searched", field);
        rc = CU_E_INVALID;
        goto out;
    }
    rc = cu_field_normalize(f, value, strlen(value), norm, sizeof(norm), &nl, reason);
    if (rc != CU_OK) {
        cu_vault_why(why, f->name, rc == CU_E_TOO_LARGE ? "too long" : reason);
        goto out;
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
out:
    return rc;
}
