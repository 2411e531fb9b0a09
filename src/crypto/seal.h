/*
 * seal.h - authenticated encryption of small values in custodia's ciphertext format.
 *
 *   version(1) | algorithm(1) | key_id(4, big-endian) | nonce | ciphertext+tag
 *
 * The header bytes (version, algorithm, key id) are authenticated together with the caller's
 * associated data, so changing any of them, the nonce, the ciphertext or the associated data
 * makes cu_crypto_open fail. docs/internals/ciphertext.md describes the format.
 */
#ifndef CU_CRYPTO_SEAL_H
#define CU_CRYPTO_SEAL_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "crypto/crypto.h"

#define CU_SEAL_VERSION 1
#define CU_SEAL_HEADER_BYTES 6

enum cu_aead {
    CU_AEAD_XCHACHA20POLY1305 = 1, /* 24-byte nonce, 16-byte tag; the default */
    CU_AEAD_AES256GCM = 2,         /* 12-byte nonce, 16-byte tag; needs AES-NI */
};

/* cu_crypto_aead_parse(name, out): "xchacha20poly1305" or "aes256gcm" to an algorithm. */
CU_WUR enum cu_err cu_crypto_aead_parse(const char *name, enum cu_aead *out);

/* cu_crypto_aead_available(alg): whether this CPU can run alg. */
bool cu_crypto_aead_available(enum cu_aead alg);

/* cu_crypto_sealed_len(alg, ptlen): the size of the sealed form of ptlen bytes. */
size_t cu_crypto_sealed_len(enum cu_aead alg, size_t ptlen);

/* cu_crypto_seal(key, key_id, alg, pt, ptlen, ad, adlen, out, outcap, outlen): encrypts pt
 * under key (CU_KEY_BYTES) with a fresh random nonce. CU_E_TOO_LARGE when outcap is smaller
 * than cu_crypto_sealed_len(); CU_E_INVALID for an unknown or unavailable algorithm. */
CU_WUR enum cu_err cu_crypto_seal(const struct cu_secret *key, uint32_t key_id, enum cu_aead alg,
                                  const uint8_t *pt, size_t ptlen, const uint8_t *ad, size_t adlen,
                                  uint8_t *out, size_t outcap, size_t *outlen);

/* cu_crypto_sealed_key_id(ct, ctlen, out): reads the key id from a sealed value without
 * opening it, so the caller can pick the key. CU_E_CORRUPT when ct is too short or has an
 * unknown version or algorithm. */
CU_WUR enum cu_err cu_crypto_sealed_key_id(const uint8_t *ct, size_t ctlen, uint32_t *out);

/* cu_crypto_open(key, key_id, ct, ctlen, ad, adlen, out, outcap, outlen): decrypts ct that
 * must have been sealed under key_id with key and ad. CU_E_CRYPTO when authentication fails,
 * CU_E_KEY_MISSING when ct names another key id, CU_E_CORRUPT when malformed, CU_E_TOO_LARGE
 * when outcap is too small. On failure nothing is written to out. */
CU_WUR enum cu_err cu_crypto_open(const struct cu_secret *key, uint32_t key_id, const uint8_t *ct,
                                  size_t ctlen, const uint8_t *ad, size_t adlen, uint8_t *out,
                                  size_t outcap, size_t *outlen);

#endif
