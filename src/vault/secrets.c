/*
 * secrets.c - a customer's named secrets that are not personal fields (a TOTP secret): kept
 * by the envelope module under the customer's DEK, in customer_secrets with associated data
 * "customer_secrets|<name>|<customer id>"; never returned by cu_vault_get, destroyed by
 * erasure, re-sealed by DEK rotation.
 */
#include "vault/vault_int.h"

/* cu_vault_secret_put(v, db, id, name, data, len): stores (or replaces) a secret.
 * CU_E_NOT_FOUND for an unknown or erased customer, CU_E_INVALID for a bad name,
 * CU_E_TOO_LARGE for a secret longer than CU_VAULT_SECRET_MAX. */
enum cu_err cu_vault_secret_put(struct cu_vault *v, struct cu_db *db, const char *id,
                                const char *name, const void *data, size_t len)
{
    return cu_envelope_secret_put(v->keys, db, id, name, data, len);
}

/* cu_vault_secret_get(v, db, id, name, out, cap, len): opens a secret into out (cap bytes,
 * at least its length), *len its length. CU_E_NOT_FOUND when there is none. The caller wipes
 * out after use. */
enum cu_err cu_vault_secret_get(struct cu_vault *v, struct cu_db *db, const char *id,
                                const char *name, void *out, size_t cap, size_t *len)
{
    return cu_envelope_secret_get(v->keys, db, id, name, out, cap, len);
}

/* cu_vault_secret_drop(db, id, name): deletes a secret; CU_OK whether or not it existed. */
enum cu_err cu_vault_secret_drop(struct cu_db *db, const char *id, const char *name)
{
    return cu_envelope_secret_drop(&cu_vault_customer_keys, db, id, name);
}
