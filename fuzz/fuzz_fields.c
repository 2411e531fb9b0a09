/*
 * fuzz_fields.c - the customer field normalisers and masks (vault/fields.c), which see every
 * personal value a client sends. The first byte picks the field, the rest is the value.
 */
#include <stdint.h>
#include <string.h>

#include "vault/fields.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char out[1024], masked[1100], why[CU_FIELD_WHY_BYTES];
    size_t nf = 0, n = 0;
    const struct cu_field_def *fs = cu_fields(&nf);

    if (size < 1 || nf == 0)
        return 0;
    const struct cu_field_def *f = &fs[data[0] % nf];
    if (cu_field_normalize(f, (const char *)data + 1, size - 1, out, sizeof(out), &n, why) ==
        CU_OK) {
        if (strlen(out) != n)
            __builtin_trap();
        cu_field_mask(f, out, masked, sizeof(masked));
    }
    return 0;
}
