/*
 * crypto.h - primitives over libsodium and OpenSSL: init, random bytes, secret memory,
 * constant-time comparison, keyed hashing, SHA-256 and base64url.
 *
 * src/crypto/ is the only part of custodia that includes <sodium.h>. Secrets live in
 * struct cu_secret (sodium_malloc memory: guarded, locked, wiped on free).
 */
#ifndef CU_CRYPTO_CRYPTO_H
#define CU_CRYPTO_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define CU_KEY_BYTES 32   /* symmetric keys: KEKs, DEKs, sub-keys */
#define CU_HASH_BYTES 32  /* keyed BLAKE2b-256 and SHA-256 outputs */
#define CU_TOKEN_BYTES 32 /* random bytes in an API key or session token */

/* Length of the unpadded base64url text for n bytes, without NUL. */
#define CU_B64URL_LEN(n) ((((n) / 3) * 4) + ((n) % 3 == 0 ? 0 : (n) % 3 + 1))

/* cu_crypto_init(): initialises libsodium; call once before anything else here.
 * CU_E_INTERNAL if it cannot. Safe to call more than once. */
CU_WUR enum cu_err cu_crypto_init(void);

/* cu_crypto_random(buf, n): fills buf with n random bytes from the OS CSPRNG. */
void cu_crypto_random(void *buf, size_t n);

/* cu_crypto_memeq(a, b, n): true when the n bytes at a and b are equal; constant time. */
bool cu_crypto_memeq(const void *a, const void *b, size_t n);

/* cu_crypto_wipe(p, n): zeroes n bytes at p in a way the compiler cannot remove. */
void cu_crypto_wipe(void *p, size_t n);

/* A secret held in guarded memory. */
struct cu_secret;

/* cu_secret_new(len): len zeroed bytes of guarded memory, or NULL. Caller frees with
 * cu_secret_free(). */
CU_WUR struct cu_secret *cu_secret_new(size_t len);

/* cu_secret_free(s): wipes and frees s; NULL does nothing. */
void cu_secret_free(struct cu_secret *s);

/* cu_secret_data(s), cu_secret_len(s): the bytes of s (owned by s) and their count. */
uint8_t *cu_secret_data(const struct cu_secret *s);
size_t cu_secret_len(const struct cu_secret *s);

/* cu_crypto_keyed_hash(key, msg, len, out): keyed BLAKE2b-256 of msg under key (which must be
 * CU_KEY_BYTES long) into out (CU_HASH_BYTES). Used for token hashes and blind indexes. */
void cu_crypto_keyed_hash(const struct cu_secret *key, const void *msg, size_t len,
                          uint8_t out[CU_HASH_BYTES]);

/* cu_crypto_sha256(msg, len, out): SHA-256 of msg (OpenSSL, for speed). */
void cu_crypto_sha256(const void *msg, size_t len, uint8_t out[CU_HASH_BYTES]);

/* cu_b64url_encode(bin, n, out, outlen): unpadded base64url of n bytes into out, which must
 * hold CU_B64URL_LEN(n) + 1 bytes; CU_E_TOO_LARGE when it does not. */
CU_WUR enum cu_err cu_b64url_encode(const void *bin, size_t n, char *out, size_t outlen);

/* cu_b64url_decode(text, len, out, outcap, outlen): decodes unpadded base64url; CU_E_INVALID
 * on any character outside the alphabet, padding, or trailing bits; CU_E_TOO_LARGE when the
 * result would pass outcap. */
CU_WUR enum cu_err cu_b64url_decode(const char *text, size_t len, uint8_t *out, size_t outcap,
                                    size_t *outlen);

/* cu_b64url_decode_public(text, len, out, outcap, outlen): cu_b64url_decode with the same
 * strictness, by table lookup: about ten times faster, but its timing depends on the text, so
 * only for text that is not secret (ciphertexts, hashes), never for key material. */
CU_WUR enum cu_err cu_b64url_decode_public(const char *text, size_t len, uint8_t *out,
                                           size_t outcap, size_t *outlen);

/* cu_hex_encode(bin, n, out): lower-case hex of n bytes into out (2n + 1 bytes). */
void cu_hex_encode(const void *bin, size_t n, char *out);

#endif
