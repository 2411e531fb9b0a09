/*
 * sign.h - Ed25519 signatures, for the audit log's signed checkpoints.
 *
 * A signer holds a key pair made from a 32-byte seed (derived from the keyring, so the key
 * survives restarts without being stored) in guarded memory.
 */
#ifndef CU_CRYPTO_SIGN_H
#define CU_CRYPTO_SIGN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "crypto/crypto.h"

#define CU_SIGN_PUBLIC_BYTES 32
#define CU_SIGN_BYTES 64

struct cu_signer;

/* cu_signer_new(seed, out): the key pair of a CU_KEY_BYTES seed. Caller frees *out with
 * cu_signer_free(). CU_E_INVALID when the seed has the wrong length. */
CU_WUR enum cu_err cu_signer_new(const struct cu_secret *seed, struct cu_signer **out);

/* cu_signer_free(s): wipes and frees s; NULL does nothing. */
void cu_signer_free(struct cu_signer *s);

/* cu_signer_public_key(s, out): the public key. */
void cu_signer_public_key(const struct cu_signer *s, uint8_t out[CU_SIGN_PUBLIC_BYTES]);

/* cu_signer_sign(s, msg, len, sig): the detached Ed25519 signature of msg. */
void cu_signer_sign(const struct cu_signer *s, const void *msg, size_t len,
                    uint8_t sig[CU_SIGN_BYTES]);

/* cu_crypto_verify(pub, msg, len, sig): whether sig is pub's signature of msg. */
bool cu_crypto_verify(const uint8_t pub[CU_SIGN_PUBLIC_BYTES], const void *msg, size_t len,
                      const uint8_t sig[CU_SIGN_BYTES]);

/* cu_b64_encode(bin, n, out, outlen): standard base64 with padding (RFC 4648 section 4) into
 * out, which must hold CU_B64_LEN(n) + 1 bytes; CU_E_TOO_LARGE when it does not. */
#define CU_B64_LEN(n) ((((n) + 2) / 3) * 4)
CU_WUR enum cu_err cu_b64_encode(const void *bin, size_t n, char *out, size_t outlen);

/* cu_b64_decode(text, len, out, outcap, outlen): strict standard base64 with padding;
 * CU_E_INVALID on anything else, CU_E_TOO_LARGE past outcap. */
CU_WUR enum cu_err cu_b64_decode(const char *text, size_t len, uint8_t *out, size_t outcap,
                                 size_t *outlen);

#endif
