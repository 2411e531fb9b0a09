/*
 * vault.h - the customer data vault: customer records whose personal fields are encrypted
 * field by field under a per-customer data-encryption key (DEK), itself wrapped by the
 * current key-encryption key (KEK); blind indexes for exact lookup; masking for display;
 * erasure by destroying the DEK (crypto-shredding). The keys are kept by the envelope module
 * (vault/envelope.h), which keeps staff members' keys the same way.
 *
 * Every function that reads or writes takes the caller's connection and runs inside the
 * caller's transaction, so a change, its audit record and its events commit together.
 * docs/internals/vault.md describes the storage layout and every associated-data string.
 */
#ifndef CU_VAULT_VAULT_H
#define CU_VAULT_VAULT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "base/buf.h"
#include "base/err.h"
#include "crypto/kek.h"
#include "crypto/keyring.h"
#include "crypto/seal.h"
#include "store/store.h"
#include "vault/fields.h"

#define CU_CUSTOMER_ID_BYTES 21 /* "cus_" + 16 hex digits + NUL */
#define CU_VAULT_MAX_FIELDS 16
#define CU_VAULT_MAX_TAGS 16
#define CU_VAULT_TAG_MAX 32
#define CU_VAULT_WHY_BYTES 200
#define CU_VAULT_STATUS_BYTES 16

/* A customer as the vault returns it. values[i] is the normalised plaintext of field i (see
 * cu_fields), NULL when absent or not decrypted; cu_customer_clear wipes and frees them. */
struct cu_customer {
    char id[CU_CUSTOMER_ID_BYTES];
    char status[CU_VAULT_STATUS_BYTES]; /* active, suspended, closed, erased */
    json_t *tags;                       /* array of strings */
    int64_t created_at, updated_at, erased_at;
    char *values[CU_VAULT_MAX_FIELDS];
};

struct cu_vault;

/* cu_vault_new(kr, kek, alg, out): the vault, with its blind-index key derived from kr and
 * DEKs wrapped through kek (which must outlive the vault). Caller frees with cu_vault_free. */
CU_WUR enum cu_err cu_vault_new(const struct cu_keyring *kr, struct cu_kek_source *kek,
                                enum cu_aead alg, struct cu_vault **out);

/* cu_vault_free(v): wipes and frees v; NULL does nothing. */
void cu_vault_free(struct cu_vault *v);

/* cu_vault_create(v, db, input, out, why): validates input (a JSON object of known field names,
 * at least one, plus "tags" and "status"), makes a DEK, encrypts the personal fields, writes
 * the blind indexes, and fills out. CU_E_INVALID / CU_E_TOO_LARGE with why naming the field
 * and the rule, or saying that input names no field; CU_E_EXISTS (why names the field) when a
 * unique value is taken. */
CU_WUR enum cu_err cu_vault_create(struct cu_vault *v, struct cu_db *db, const json_t *input,
                                   struct cu_customer *out, char why[CU_VAULT_WHY_BYTES]);

/* cu_vault_get(v, db, id, decrypt, out): one customer; the personal fields decrypted when
 * decrypt. CU_E_NOT_FOUND for an unknown id. CU_E_CRYPTO or CU_E_KEY_MISSING (logged as an
 * alert) when stored data fails to open: never garbage. */
CU_WUR enum cu_err cu_vault_get(struct cu_vault *v, struct cu_db *db, const char *id, bool decrypt,
                                struct cu_customer *out);

/* cu_vault_customer_state(v, db, id, status): the customer's status ("active", "suspended",
 * "closed" or "erased") into status, reading no personal field: for a service that acts for a
 * customer (identity: may they sign in?) without reading the vault's tables. CU_E_NOT_FOUND
 * for an unknown id. */
CU_WUR enum cu_err cu_vault_customer_state(struct cu_vault *v, struct cu_db *db, const char *id,
                                           char status[CU_VAULT_STATUS_BYTES]);

/* cu_vault_patch(v, db, id, input, out, changed, why): sets the fields in input (JSON null
 * removes a field), re-indexes, and fills out with the result; changed gets the names of the
 * fields that changed (a JSON array, caller decrefs). Errors as cu_vault_create, and
 * CU_E_NOT_FOUND for an unknown or erased customer. */
CU_WUR enum cu_err cu_vault_patch(struct cu_vault *v, struct cu_db *db, const char *id,
                                  const json_t *input, struct cu_customer *out, json_t **changed,
                                  char why[CU_VAULT_WHY_BYTES]);

/* cu_vault_find(v, db, field, value, ids, cap, n, why): the ids of the customers whose field
 * (one with a blind index) has value after normalisation, at most cap. */
CU_WUR enum cu_err cu_vault_find(struct cu_vault *v, struct cu_db *db, const char *field,
                                 const char *value, char (*ids)[CU_CUSTOMER_ID_BYTES], size_t cap,
                                 size_t *n, char why[CU_VAULT_WHY_BYTES]);

/* cu_vault_list(v, db, after, limit, out, n): up to limit (1..1000) customers ordered by id
 * after the id `after` (NULL for the first page), personal fields not decrypted. Caller frees
 * with cu_customers_free(*out, *n). */
CU_WUR enum cu_err cu_vault_list(struct cu_vault *v, struct cu_db *db, const char *after,
                                 size_t limit, struct cu_customer **out, size_t *n);

/* cu_vault_erase(v, db, id, by): crypto-shreds the customer: destroys the wrapped DEK and
 * every personal field and blind-index entry, keeps a tombstone (id, erased time, by whom).
 * CU_E_NOT_FOUND for an unknown or already erased customer. */
CU_WUR enum cu_err cu_vault_erase(struct cu_vault *v, struct cu_db *db, const char *id,
                                  const char *by);

/* cu_vault_rewrap(v, db, batch, done): re-wraps up to batch DEKs that are not wrapped by the
 * current KEK version; *done gets how many. For `custodia keys rotate`: call until 0. */
CU_WUR enum cu_err cu_vault_rewrap(struct cu_vault *v, struct cu_db *db, size_t batch,
                                   size_t *done);

/* cu_vault_rotate_dek(v, db, id): gives the customer a new DEK (the next DEK version) and
 * re-encrypts every personal field under it. CU_E_NOT_FOUND for an unknown or erased one. */
CU_WUR enum cu_err cu_vault_rotate_dek(struct cu_vault *v, struct cu_db *db, const char *id);

/* Secrets of a customer that are not personal fields (a TOTP secret), sealed under the
 * customer's DEK with associated data "customer_secrets|<name>|<id>": never returned by
 * cu_vault_get, destroyed by erasure, re-sealed by DEK rotation. name is 1..32 bytes of
 * [a-z0-9_] starting with a letter; a secret is at most CU_VAULT_SECRET_MAX bytes. */
#define CU_VAULT_SECRET_MAX 1024

/* cu_vault_secret_put(v, db, id, name, data, len): stores (or replaces) a secret.
 * CU_E_NOT_FOUND for an unknown or erased customer, CU_E_INVALID for a bad name,
 * CU_E_TOO_LARGE for a secret longer than CU_VAULT_SECRET_MAX. */
CU_WUR enum cu_err cu_vault_secret_put(struct cu_vault *v, struct cu_db *db, const char *id,
                                       const char *name, const void *data, size_t len);

/* cu_vault_secret_get(v, db, id, name, out, cap, len): opens a secret into out (cap bytes,
 * at least its length), *len its length. CU_E_NOT_FOUND when there is none. The caller wipes
 * out after use. */
CU_WUR enum cu_err cu_vault_secret_get(struct cu_vault *v, struct cu_db *db, const char *id,
                                       const char *name, void *out, size_t cap, size_t *len);

/* cu_vault_secret_drop(db, id, name): deletes a secret; CU_OK whether or not it existed. */
CU_WUR enum cu_err cu_vault_secret_drop(struct cu_db *db, const char *id, const char *name);

/* cu_vault_kek_usage(db, version, count): how many DEKs the KEK version wraps. */
CU_WUR enum cu_err cu_vault_kek_usage(struct cu_db *db, uint32_t version, int64_t *count);

/* cu_customer_write(c, unmask, b): appends the API form of c to b as a JSON object: id,
 * status, tags, times, masked, and each present field, masked unless unmask (fields whose
 * value was not decrypted are left out). On error (the buffer's cap, memory) b is as before. */
CU_WUR enum cu_err cu_customer_write(const struct cu_customer *c, bool unmask, struct cu_buf *b);

/* cu_customer_clear(c): wipes and frees what c holds. */
void cu_customer_clear(struct cu_customer *c);

/* cu_customer_drop_personal(c): wipes and frees c's personal fields only, for an answer to a
 * caller that may not read them. */
void cu_customer_drop_personal(struct cu_customer *c);

/* cu_customers_free(cs, n): clears and frees an array from cu_vault_list. */
void cu_customers_free(struct cu_customer *cs, size_t n);

#endif
