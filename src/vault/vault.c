/*
 * vault.c - the vault's life cycle and what it does with customers' keys: re-wrapping their
 * DEKs after a KEK rotation, counting them per KEK version, and giving one customer a new DEK.
 *
 * A customer's keys are kept by the envelope module (envelope.h) as those of any subject:
 * customers.dek_wrapped holds the DEK wrapped with associated data "dek|<id>|<KEK version>",
 * customers.dek_version the DEK's version (the key id of its sealed values), and
 * customer_secrets the named secrets ("customer_secrets|<name>|<id>"). The other files of the
 * vault are listed in vault_int.h; docs/internals/vault.md describes the layout.
 */
#include "vault/vault_int.h"

#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "base/mem.h"

const struct cu_envelope_kind cu_vault_customer_keys = CU_ENVELOPE_KIND(
    "customer", "dek", "customers", "id", "dek_version", "customer_secrets", "customer_id");

/* cu_vault_new(kr, kek, alg, out): the vault, with its blind-index key derived from kr and
 * DEKs wrapped through kek (which must outlive the vault). Caller frees with cu_vault_free. */
enum cu_err cu_vault_new(const struct cu_keyring *kr, struct cu_kek_source *kek, enum cu_aead alg,
                         struct cu_vault **out)
{
    struct cu_vault *v = cu_calloc(1, sizeof(*v));
    enum cu_err rc = v != NULL ? CU_OK : CU_E_NOMEM;

    if (rc == CU_OK)
        rc = cu_envelope_new(&cu_vault_customer_keys, kek, alg, &v->keys);
    if (rc == CU_OK)
        rc = cu_keyring_derive(kr, "vaultidx", 1, &v->index_key);
    if (rc == CU_OK) {
        *out = v;
        v = NULL;
    }
    cu_vault_free(v);
    return rc;
}

/* cu_vault_free(v): wipes and frees v; NULL does nothing. */
void cu_vault_free(struct cu_vault *v)
{
    if (v == NULL)
        return;
    cu_secret_free(v->index_key);
    cu_envelope_free(v->keys);
    cu_free(v);
}

/* cu_vault_why(why, field, reason): "field '<field>': <reason>" into why. */
void cu_vault_why(char why[CU_VAULT_WHY_BYTES], const char *field, const char *reason)
{
    snprintf(why, CU_VAULT_WHY_BYTES, "field '%s': %s", field, reason);
}

/* cu_vault_field_index(f): f's position in cu_fields(), its index in cu_customer.values. */
size_t cu_vault_field_index(const struct cu_field_def *f)
{
    size_t n = 0;
    const struct cu_field_def *all = cu_fields(&n);
    CU_ASSERT(f >= all && f < all + n);
    return (size_t)(f - all);
}

/* cu_vault_rewrap(v, db, batch, done): re-wraps up to batch DEKs that are not wrapped by the
 * current KEK version; *done gets how many. For `custodia keys rotate`: call until 0. */
enum cu_err cu_vault_rewrap(struct cu_vault *v, struct cu_db *db, size_t batch, size_t *done)
{
    return cu_envelope_rewrap(v->keys, db, batch, done);
}

/* cu_vault_kek_usage(db, version, count): how many DEKs the KEK version wraps. */
enum cu_err cu_vault_kek_usage(struct cu_db *db, uint32_t version, int64_t *count)
{
    return cu_envelope_kek_usage(&cu_vault_customer_keys, db, version, count);
}

/* Stores the customer's new DEK, of version dek_version, wrapped as w. */
static enum cu_err store_dek(struct cu_db *db, const char *id, const struct cu_envelope_wrapped *w,
                             uint32_t dek_version)
{
    static const char sql[] = "UPDATE customers SET dek_wrapped = $2, dek_version = $3, "
                              "kek_version = $4, updated_at = $5 WHERE id = $1";
    const struct cu_val p[] = {CU_VT(id), CU_VB(w->data, w->len), CU_VI(dek_version),
                               CU_VI(w->kek_version), CU_VI(cu_clock_now_ms())};
    return cu_db_exec(db, sql, p, CU_NVALS(p));
}

/* cu_vault_rotate_dek(v, db, id): gives the customer a new DEK (the next DEK version) and
 * re-encrypts every personal field under it. CU_E_NOT_FOUND for an unknown or erased one. */
enum cu_err cu_vault_rotate_dek(struct cu_vault *v, struct cu_db *db, const char *id)
{
    struct cu_customer c;
    struct cu_envelope_wrapped w;
    struct cu_secret *old = NULL, *dek = NULL;
    char why[CU_VAULT_WHY_BYTES];
    uint32_t dv = 0;
    size_t nf = 0;
    const struct cu_field_def *fs = cu_fields(&nf);
    enum cu_err rc = cu_vault_get(v, db, id, true, &c);

    if (rc == CU_OK && strcmp(c.status, "erased") == 0)
        rc = CU_E_NOT_FOUND;
    if (rc == CU_OK && (old = cu_envelope_dek_borrow()) == NULL)
        rc = CU_E_NOMEM;
    if (rc == CU_OK)
        rc = cu_envelope_dek_load(v->keys, db, id, old, &dv);
    if (rc == CU_OK)
        rc = cu_envelope_dek_new(v->keys, id, &dek, &w);
    for (size_t i = 0; rc == CU_OK && i < nf; i++) {
        if (fs[i].personal && c.values[i] != NULL)
            rc = cu_vault_field_put(v, db, dek, dv + 1, id, &fs[i], c.values[i], why);
    }
    if (rc == CU_OK)
        rc = cu_envelope_secrets_reseal(v->keys, db, id, old, dv, dek, dv + 1);
    if (rc == CU_OK)
        rc = store_dek(db, id, &w, dv + 1);
    cu_envelope_dek_return(old);
    cu_secret_free(dek);
    cu_customer_clear(&c);
    return rc;
}
