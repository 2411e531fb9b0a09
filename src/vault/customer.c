/*
 * customer.c - a customer as the vault hands it out (struct cu_customer): clearing what it
 * holds, dropping its personal fields for a caller that may not read them, and its API form
 * in JSON, masked unless the caller may unmask.
 */
#include "vault/vault_int.h"

#include <string.h>

#include "base/json.h"
#include "base/mem.h"

static void drop_value(struct cu_customer *c, size_t i)
{
    if (c->values[i] != NULL) {
        cu_crypto_wipe(c->values[i], strlen(c->values[i]));
        cu_free(c->values[i]);
        c->values[i] = NULL;
    }
}

/* cu_customer_clear(c): wipes and frees what c holds. */
void cu_customer_clear(struct cu_customer *c)
{
    for (size_t i = 0; i < CU_VAULT_MAX_FIELDS; i++)
        drop_value(c, i);
    json_decref(c->tags);
    c->tags = NULL;
}

/* cu_customer_drop_personal(c): wipes and frees c's personal fields only, for an answer to a
 * caller that may not read them. */
void cu_customer_drop_personal(struct cu_customer *c)
{
    size_t nf = 0;
    const struct cu_field_def *fs = cu_fields(&nf);
    for (size_t i = 0; i < nf; i++) {
        if (fs[i].personal)
            drop_value(c, i);
    }
}

/* cu_customers_free(cs, n): clears and frees an array from cu_vault_list. */
void cu_customers_free(struct cu_customer *cs, size_t n)
{
    if (cs == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        cu_customer_clear(&cs[i]);
    cu_free(cs);
}

static enum cu_err put_tags(struct cu_buf *b, const json_t *tags)
{
    enum cu_err rc = cu_json_put_key(b, "tags", false);

    if (rc == CU_OK)
        rc = cu_buf_append(b, "[", 1);
    for (size_t i = 0; rc == CU_OK && i < json_array_size(tags); i++) {
        const json_t *t = json_array_get(tags, i);
        if (i > 0)
            rc = cu_buf_append(b, ",", 1);
        if (rc == CU_OK)
            rc = cu_json_escape(b, json_string_value(t) ? json_string_value(t) : "",
                                json_string_length(t));
    }
    return rc == CU_OK ? cu_buf_append(b, "]", 1) : rc;
}

/* Each present field of c, masked unless unmask. */
static enum cu_err put_fields(struct cu_buf *b, const struct cu_customer *c, bool unmask)
{
    size_t nf = 0;
    const struct cu_field_def *fs = cu_fields(&nf);
    enum cu_err rc = CU_OK;

    for (size_t i = 0; rc == CU_OK && i < nf; i++) {
        char masked[CU_VAULT_VALUE_MAX + 16];
        if (c->values[i] == NULL)
            continue;
        if (unmask || fs[i].mask == CU_MASK_NONE) {
            rc = cu_json_put_string(b, fs[i].name, c->values[i]);
        } else {
            cu_field_mask(&fs[i], c->values[i], masked, sizeof(masked));
            rc = cu_json_put_string(b, fs[i].name, masked);
            cu_crypto_wipe(masked, sizeof(masked));
        }
    }
    return rc;
}

/* cu_customer_write(c, unmask, b): appends the API form of c to b as a JSON object: id,
 * status, tags, times, masked, and each present field, masked unless unmask (fields whose
 * value was not decrypted are left out). On error (the buffer's cap, memory) b is as before. */
enum cu_err cu_customer_write(const struct cu_customer *c, bool unmask, struct cu_buf *b)
{
    /* Written directly, not built as a jansson tree and dumped: a customer read is answered
     * thousands of times a second and the tree cost more than the field decrypts. */
    size_t old = b->len;
    enum cu_err rc = cu_buf_append(b, "{", 1);

    if (rc == CU_OK)
        rc = cu_json_put_key(b, "id", true);
    if (rc == CU_OK)
        rc = cu_json_escape(b, c->id, strlen(c->id));
    if (rc == CU_OK)
        rc = cu_json_put_string(b, "status", c->status);
    if (rc == CU_OK)
        rc = put_tags(b, c->tags);
    if (rc == CU_OK)
        rc = cu_json_put_time(b, "created_at", c->created_at);
    if (rc == CU_OK)
        rc = cu_json_put_time(b, "updated_at", c->updated_at);
    if (rc == CU_OK && c->erased_at != 0)
        rc = cu_json_put_time(b, "erased_at", c->erased_at);
    if (rc == CU_OK && c->erased_at == 0)
        rc = cu_json_put_key(b, "erased_at", false);
    if (rc == CU_OK && c->erased_at == 0)
        rc = cu_buf_append(b, "null", 4);
    if (rc == CU_OK)
        rc = cu_json_put_key(b, "masked", false);
    if (rc == CU_OK)
        rc = unmask ? cu_buf_append(b, "false", 5) : cu_buf_append(b, "true", 4);
    if (rc == CU_OK)
        rc = put_fields(b, c, unmask);
    if (rc == CU_OK)
        rc = cu_buf_append(b, "}", 1);
    if (rc != CU_OK && b->data != NULL) {
        cu_crypto_wipe(b->data + old, b->len - old);
        b->len = old;
        b->data[old] = '\0';
    }
    return rc;
}
