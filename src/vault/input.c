/*
 * input.c - the JSON body of a customer create or patch, parsed: every member a known field
 * (normalised and validated by fields.c), "tags" or "status"; a refusal names the member and
 * the rule it broke, never the value.
 */
#include "vault/vault_int.h"

#include <stdio.h>
#include <string.h>

#include "base/mem.h"

static const char *const statuses[] = {"active", "suspended", "closed"};

/* cu_vault_input_clear(in): wipes and frees the values in owns and leaves in empty, so that
 * clearing it again does nothing. */
void cu_vault_input_clear(struct cu_vault_input *in)
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
    enum cu_err rc = CU_OK;

    if (!json_is_array(tags) || json_array_size(tags) > CU_VAULT_MAX_TAGS) {
        cu_vault_why(why, "tags", "must be an array of at most 16 tags");
        rc = CU_E_INVALID;
        goto out;
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
            cu_vault_why(why, "tags", "each tag is 1 to 32 of a-z, 0-9, '-' and '_'");
            rc = CU_E_INVALID;
            break;
        }
    }
out:
    return rc;
}

static enum cu_err parse_status(json_t *v, const char **out, char why[CU_VAULT_WHY_BYTES])
{
    const char *s = json_string_value(v);
    enum cu_err rc = CU_E_INVALID;

    for (size_t i = 0; s != NULL && rc != CU_OK && i < sizeof(statuses) / sizeof(statuses[0]);
         i++) {
        if (strcmp(s, statuses[i]) == 0) {
            *out = statuses[i];
            rc = CU_OK;
        }
    }
    if (rc != CU_OK)
        cu_vault_why(why, "status", "must be active, suspended or closed");
    return rc;
}

static enum cu_err parse_field(const struct cu_field_def *f, json_t *v, bool allow_null,
                               struct cu_vault_input *in, char why[CU_VAULT_WHY_BYTES])
{
    char reason[CU_FIELD_WHY_BYTES], buf[CU_VAULT_VALUE_MAX];
    size_t i = cu_vault_field_index(f), n = 0;
    enum cu_err rc = CU_OK;

    if (json_is_null(v) && allow_null) {
        in->clear[i] = true;
        goto out;
    }
    if (!json_is_string(v)) {
        cu_vault_why(why, f->name, "must be a string");
        rc = CU_E_INVALID;
        goto out;
    }
    rc = cu_field_normalize(f, json_string_value(v), json_string_length(v), buf, sizeof(buf), &n,
                            reason);
    if (rc == CU_E_TOO_LARGE) {
        char msg[64];
        snprintf(msg, sizeof(msg), "longer than %zu bytes", f->max_bytes);
        cu_vault_why(why, f->name, msg);
    } else if (rc != CU_OK) {
        cu_vault_why(why, f->name, reason);
    }
    if (rc == CU_OK && (in->values[i] = cu_strndup(buf, n)) == NULL)
        rc = CU_E_NOMEM;
    cu_crypto_wipe(buf, sizeof(buf));
out:
    return rc;
}

/* cu_vault_input_parse(obj, patch, in, why): validates and normalises obj (a JSON object of
 * field names, "tags" and "status"; JSON null removes a field when patch) into in. On error
 * in is left empty and why says which field broke which rule. */
enum cu_err cu_vault_input_parse(const json_t *obj, bool patch, struct cu_vault_input *in,
                                 char why[CU_VAULT_WHY_BYTES])
{
    const char *key;
    json_t *v;
    enum cu_err rc = CU_OK;

    memset(in, 0, sizeof(*in));
    if (!json_is_object(obj)) {
        snprintf(why, CU_VAULT_WHY_BYTES, "the body must be a JSON object");
        rc = CU_E_INVALID;
        goto out;
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
        cu_vault_input_clear(in);
out:
    return rc;
}

/* cu_vault_input_names_a_field(in): whether in sets at least one customer field (tags and
 * status are not fields: a record of nothing but them describes no one). */
bool cu_vault_input_names_a_field(const struct cu_vault_input *in)
{
    bool any = false;
    for (size_t i = 0; !any && i < CU_VAULT_MAX_FIELDS; i++)
        any = in->values[i] != NULL;
    return any;
}

/* cu_vault_input_value(in, name): the normalised value in gives the field name, or NULL. */
const char *cu_vault_input_value(const struct cu_vault_input *in, const char *name)
{
    const struct cu_field_def *f = cu_field_find(name);
    return f ? in->values[cu_vault_field_index(f)] : NULL;
}
