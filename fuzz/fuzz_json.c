/*
 * fuzz_json.c - request bodies: the strict JSON object parser every handler starts with
 * (duplicate keys refused, one object, nothing after it), and the unknown-key check.
 */
#include <stdint.h>
#include <string.h>

#include "base/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const allowed[] = {"login", "password", "kind", "scopes"};
    char err[CU_JSON_ERR_BYTES];
    const char *bad = NULL, *s = NULL;
    json_t *obj = NULL;

    if (cu_json_parse_object((const char *)data, size, &obj, err) != CU_OK)
        return 0;
    if (!json_is_object(obj))
        __builtin_trap();
    if (cu_json_only_keys(obj, allowed, 4, &bad) != CU_OK && bad == NULL)
        __builtin_trap(); /* a refusal names the key */
    if (cu_json_get_string(obj, "login", false, 254, &s, err) == CU_OK && s != NULL &&
        strlen(s) > 254)
        __builtin_trap();
    json_decref(obj);
    return 0;
}
