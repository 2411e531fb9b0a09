/*
 * fuzz_b64url.c - base64url decoding of stored and presented values (crypto/crypto.c): the
 * fast decoder for public text must agree with the constant-time one.
 */
#include <stdint.h>
#include <string.h>

#include "crypto/crypto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t a[1024], b[1024];
    size_t na = 0, nb = 0;
    enum cu_err ra, rb;

    if (size > 1300)
        return 0;
    ra = cu_b64url_decode_public((const char *)data, size, a, sizeof(a), &na);
    rb = cu_b64url_decode((const char *)data, size, b, sizeof(b), &nb);
    if ((ra == CU_OK) != (rb == CU_OK) || (ra == CU_OK && (na != nb || memcmp(a, b, na) != 0)))
        __builtin_trap();
    return 0;
}
