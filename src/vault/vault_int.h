/*
 * vault_int.h - what the files of the vault share: the vault's layout, where customers keep
 * their keys (the envelope kind), the parsed input of a create or a patch, and the helpers of
 * one file that another uses. Not for use outside src/vault/.
 *
 *   vault.c     the vault's life cycle; customers' keys: KEK re-wrap, usage, DEK rotation
 *   records.c   customer records: create, get, patch, list, erase, state; sealed fields
 *   input.c     the JSON body of a create or a patch, parsed and normalised
 *   index.c     blind indexes and lookup by them
 *   secrets.c   a customer's named secrets
 *   customer.c  struct cu_customer: clearing it and its API form in JSON
 *   envelope.c  the keys of any subject (its own header, used by identity too)
 */
#ifndef CU_VAULT_INT_H
#define CU_VAULT_INT_H

#include "vault/envelope.h"
#include "vault/vault.h"

#define CU_VAULT_VALUE_MAX 512 /* the longest normalised field value, with room */
_Static_assert(CU_VAULT_VALUE_MAX <= CU_ENVELOPE_VALUE_MAX, "a field fits a sealed value");
_Static_assert(CU_VAULT_SECRET_MAX == CU_ENVELOPE_SECRET_MAX, "a customer secret is a subject's");
_Static_assert(CU_CUSTOMER_ID_BYTES - 1 <= CU_ENVELOPE_ID_MAX, "a customer id is a subject id");

struct cu_vault {
    struct cu_secret *index_key; /* the blind index's, sub-key "vaultidx" */
    struct cu_envelope *keys;    /* the customers' DEKs, through the KEK source */
};

/* vault.c */

/* Where customers keep their keys: customers.dek_wrapped, kek_version and dek_version, and the
 * table customer_secrets. */
extern const struct cu_envelope_kind cu_vault_customer_keys;

/* cu_vault_why(why, field, reason): "field '<field>': <reason>" into why. */
void cu_vault_why(char why[CU_VAULT_WHY_BYTES], const char *field, const char *reason);

/* cu_vault_field_index(f): f's position in cu_fields(), its index in cu_customer.values. */
size_t cu_vault_field_index(const struct cu_field_def *f);

/* records.c */

/* cu_vault_field_put(v, db, dek, dek_version, id, f, value, why): seals value under the DEK
 * and writes (or replaces) the field's row and its blind index. CU_E_EXISTS with why when a
 * unique value is taken. */
CU_WUR enum cu_err cu_vault_field_put(struct cu_vault *v, struct cu_db *db,
                                      const struct cu_secret *dek, uint32_t dek_version,
                                      const char *id, const struct cu_field_def *f,
                                      const char *value, char why[CU_VAULT_WHY_BYTES]);

/* input.c */

/* The parsed input of a create or patch. values[i]: NULL (not given), NULL with clear[i]
 * (given as null: remove), or the normalised value (cu_malloc'd). */
struct cu_vault_input {
    char *values[CU_VAULT_MAX_FIELDS];
    bool clear[CU_VAULT_MAX_FIELDS];
    const char *status; /* static storage */
    json_t *tags;       /* borrowed from the input */
};

/* cu_vault_input_parse(obj, patch, in, why): validates and normalises obj (a JSON object of
 * field names, "tags" and "status"; JSON null removes a field when patch) into in. On error
 * in is left empty and why says which field broke which rule. */
CU_WUR enum cu_err cu_vault_input_parse(const json_t *obj, bool patch, struct cu_vault_input *in,
                                        char why[CU_VAULT_WHY_BYTES]);

/* cu_vault_input_clear(in): wipes and frees the values in owns and leaves in empty, so that
 * clearing it again does nothing. */
void cu_vault_input_clear(struct cu_vault_input *in);

/* cu_vault_input_names_a_field(in): whether in sets at least one customer field (tags and
 * status are not fields: a record of nothing but them describes no one). */
bool cu_vault_input_names_a_field(const struct cu_vault_input *in);

/* cu_vault_input_value(in, name): the normalised value in gives the field name, or NULL. */
const char *cu_vault_input_value(const struct cu_vault_input *in, const char *name);

/* index.c */

/* cu_vault_index_put(v, db, id, f, value, why): replaces the blind index of the customer's
 * field f (which has one) with that of value. CU_E_EXISTS with why when f is unique and
 * another customer has the value. */
CU_WUR enum cu_err cu_vault_index_put(struct cu_vault *v, struct cu_db *db, const char *id,
                                      const struct cu_field_def *f, const char *value,
                                      char why[CU_VAULT_WHY_BYTES]);

/* cu_vault_index_drop(db, id, field): deletes the blind index of the customer's field, or of
 * every field when field is NULL. */
CU_WUR enum cu_err cu_vault_index_drop(struct cu_db *db, const char *id, const char *field);

#endif
