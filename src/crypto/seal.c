/*
 * seal.c - authenticated encryption of small values (fields, wrapped keys) in custodia's
 * ciphertext format:
 *
 *   version(1) | algorithm(1) | key_id(4, big-endian) | nonce | ciphertext+tag(16)
 *
 * The AEAD's associated data is the 6 header bytes followed by the caller's associated data,
 * so the version, the algorithm and the key id are authenticated with everything else. Nonces
 * are random: 24 bytes for XChaCha20-Poly1305, 12 for AES-256-GCM (libsodium's AES-NI code).
 * docs/internals/ciphertext.md describes the format and its failure modes.
 */
#include "crypto/seal.h"

#include <string.h>

#include <sodium.h>

#include "base/mem.h"

#define SEAL_TAG_BYTES 16
#define SEAL_MAX_PLAINTEXT ((size_t)16 * 1024 * 1024) /* values, not files */
#define SEAL_MAX_AD ((size_t)64 * 1024)
#define SEAL_STACK_AD 1024 /* AD up to this size is assembled on the stack */
#define SEAL_STACK_PT 1024 /* plaintext up to this size is decrypted via the stack */

/* nonce_bytes(alg): the nonce length of alg, 0 for an unknown algorithm. */
static size_t nonce_bytes(int alg)
{
    switch (alg) {
    case CU_AEAD_XCHACHA20POLY1305:
        return crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
    case CU_AEAD_AES256GCM:
        return crypto_aead_aes256gcm_NPUBBYTES;
    default:
        return 0;
    }
}

/* cu_crypto_aead_parse(name, out): "xchacha20poly1305" or "aes256gcm" to an algorithm. */
enum cu_err cu_crypto_aead_parse(const char *name, enum cu_aead *out)
{
    enum cu_err rc = CU_OK;

    if (name != NULL && strcmp(name, "xchacha20poly1305") == 0) {
        *out = CU_AEAD_XCHACHA20POLY1305;
    } else if (name != NULL && strcmp(name, "aes256gcm") == 0) {
        *out = CU_AEAD_AES256GCM;
    } else {
        rc = CU_E_INVALID;
    }
    return rc;
}

/* cu_crypto_aead_available(alg): whether this CPU can run alg. */
bool cu_crypto_aead_available(enum cu_aead alg)
{
    switch (alg) {
    case CU_AEAD_XCHACHA20POLY1305:
        return true;
    case CU_AEAD_AES256GCM:
        return crypto_aead_aes256gcm_is_available() == 1;
    default:
        return false;
    }
}

/* cu_crypto_sealed_len(alg, ptlen): the size of the sealed form of ptlen bytes. */
size_t cu_crypto_sealed_len(enum cu_aead alg, size_t ptlen)
{
    size_t overhead = CU_SEAL_HEADER_BYTES + nonce_bytes((int)alg) + SEAL_TAG_BYTES;

    if (nonce_bytes((int)alg) == 0) {
        return 0;
    }
    return ptlen > SIZE_MAX - overhead ? SIZE_MAX : ptlen + overhead;
}

/* build_ad(header, ad, adlen, stack, heap, out): points *out at header || ad, in stack when it
 * fits (stack holds CU_SEAL_HEADER_BYTES + SEAL_STACK_AD bytes), else in a new *heap that the
 * caller frees with cu_free. */
static enum cu_err build_ad(const uint8_t *header, const uint8_t *ad, size_t adlen, uint8_t *stack,
                            uint8_t **heap, const uint8_t **out)
{
    uint8_t *dst = stack;

    *heap = NULL;
    if (adlen > SEAL_MAX_AD) {
        return CU_E_TOO_LARGE;
    }
    if (adlen > SEAL_STACK_AD) {
        *heap = cu_malloc(CU_SEAL_HEADER_BYTES + adlen);
        if (*heap == NULL) {
            return CU_E_NOMEM;
        }
        dst = *heap;
    }
    memcpy(dst, header, CU_SEAL_HEADER_BYTES);
    if (adlen > 0) {
        memcpy(dst + CU_SEAL_HEADER_BYTES, ad, adlen);
    }
    *out = dst;
    return CU_OK;
}

/* put_header(out, alg, key_id): writes the 6 header bytes. */
static void put_header(uint8_t *out, enum cu_aead alg, uint32_t key_id)
{
    out[0] = CU_SEAL_VERSION;
    out[1] = (uint8_t)alg;
    out[2] = (uint8_t)(key_id >> 24);
    out[3] = (uint8_t)(key_id >> 16);
    out[4] = (uint8_t)(key_id >> 8);
    out[5] = (uint8_t)key_id;
}

/* aead_encrypt(alg, ...): the libsodium call for alg; c receives ptlen + 16 bytes. */
static void aead_encrypt(enum cu_aead alg, uint8_t *c, const uint8_t *pt, size_t ptlen,
                         const uint8_t *ad, size_t adlen, const uint8_t *nonce, const uint8_t *k)
{
    unsigned long long clen = 0;
    int r;

    if (alg == CU_AEAD_AES256GCM) {
        r = crypto_aead_aes256gcm_encrypt(c, &clen, pt, ptlen, ad, adlen, NULL, nonce, k);
    } else {
        r = crypto_aead_xchacha20poly1305_ietf_encrypt(c, &clen, pt, ptlen, ad, adlen, NULL, nonce,
                                                       k);
    }
    CU_ASSERT(r == 0 && clen == ptlen + SEAL_TAG_BYTES);
}

/* cu_crypto_seal(key, key_id, alg, pt, ptlen, ad, adlen, out, outcap, outlen): encrypts pt
 * under key (CU_KEY_BYTES) with a fresh random nonce. CU_E_TOO_LARGE when outcap is smaller
 * than cu_crypto_sealed_len(); CU_E_INVALID for an unknown or unavailable algorithm. */
enum cu_err cu_crypto_seal(const struct cu_secret *key, uint32_t key_id, enum cu_aead alg,
                           const uint8_t *pt, size_t ptlen, const uint8_t *ad, size_t adlen,
                           uint8_t *out, size_t outcap, size_t *outlen)
{
    uint8_t stack_ad[CU_SEAL_HEADER_BYTES + SEAL_STACK_AD];
    uint8_t header[CU_SEAL_HEADER_BYTES];
    uint8_t *heap_ad = NULL;
    const uint8_t *full_ad = NULL;
    size_t nlen = nonce_bytes((int)alg);
    enum cu_err rc;

    CU_ASSERT(key != NULL && cu_secret_len(key) == CU_KEY_BYTES);
    *outlen = 0;
    if (nlen == 0 || !cu_crypto_aead_available(alg)) {
        rc = CU_E_INVALID;
        goto out;
    }
    if (ptlen > SEAL_MAX_PLAINTEXT || outcap < cu_crypto_sealed_len(alg, ptlen)) {
        rc = CU_E_TOO_LARGE;
        goto out;
    }
    put_header(header, alg, key_id);
    rc = build_ad(header, ad, adlen, stack_ad, &heap_ad, &full_ad);
    if (rc != CU_OK) {
        goto out;
    }
    memcpy(out, header, CU_SEAL_HEADER_BYTES);
    randombytes_buf(out + CU_SEAL_HEADER_BYTES, nlen);
    aead_encrypt(alg, out + CU_SEAL_HEADER_BYTES + nlen, pt, ptlen, full_ad,
                 CU_SEAL_HEADER_BYTES + adlen, out + CU_SEAL_HEADER_BYTES, cu_secret_data(key));
    *outlen = cu_crypto_sealed_len(alg, ptlen);
out:
    cu_free(heap_ad);
    return rc;
}

/* cu_crypto_sealed_key_id(ct, ctlen, out): reads the key id from a sealed value without
 * opening it, so the caller can pick the key. CU_E_CORRUPT when ct is too short or has an
 * unknown version or algorithm. */
enum cu_err cu_crypto_sealed_key_id(const uint8_t *ct, size_t ctlen, uint32_t *out)
{
    if (ctlen < CU_SEAL_HEADER_BYTES || ct[0] != CU_SEAL_VERSION || nonce_bytes(ct[1]) == 0 ||
        ctlen < cu_crypto_sealed_len((enum cu_aead)ct[1], 0)) {
        return CU_E_CORRUPT;
    }
    *out = (uint32_t)ct[2] << 24 | (uint32_t)ct[3] << 16 | (uint32_t)ct[4] << 8 | ct[5];
    return CU_OK;
}

/* aead_decrypt(alg, ...): the libsodium call for alg; 0 on success. libsodium zeroes m when
 * authentication fails, so m must be scratch space, never the caller's buffer. */
static int aead_decrypt(enum cu_aead alg, uint8_t *m, const uint8_t *c, size_t clen,
                        const uint8_t *ad, size_t adlen, const uint8_t *nonce, const uint8_t *k)
{
    unsigned long long mlen = 0;

    if (alg == CU_AEAD_AES256GCM) {
        return crypto_aead_aes256gcm_decrypt(m, &mlen, NULL, c, clen, ad, adlen, nonce, k);
    }
    return crypto_aead_xchacha20poly1305_ietf_decrypt(m, &mlen, NULL, c, clen, ad, adlen, nonce, k);
}

/* open_checked(key, ct, ctlen, full_ad, full_adlen, out, ptlen): decrypts a ct whose header
 * has been checked, through scratch memory, copying to out only when authentication holds. */
static enum cu_err open_checked(const struct cu_secret *key, const uint8_t *ct, size_t ctlen,
                                const uint8_t *full_ad, size_t full_adlen, uint8_t *out,
                                size_t ptlen)
{
    enum cu_aead alg = (enum cu_aead)ct[1];
    size_t nlen = nonce_bytes(ct[1]);
    uint8_t stack_pt[SEAL_STACK_PT];
    uint8_t *scratch = stack_pt;
    enum cu_err rc = CU_OK;

    if (ptlen > SEAL_STACK_PT) {
        scratch = cu_malloc(ptlen);
        if (scratch == NULL) {
            return CU_E_NOMEM;
        }
    }
    if (aead_decrypt(alg, scratch, ct + CU_SEAL_HEADER_BYTES + nlen,
                     ctlen - CU_SEAL_HEADER_BYTES - nlen, full_ad, full_adlen,
                     ct + CU_SEAL_HEADER_BYTES, cu_secret_data(key)) != 0) {
        rc = CU_E_CRYPTO;
    } else if (ptlen > 0) {
        memcpy(out, scratch, ptlen);
    }
    sodium_memzero(scratch, ptlen);
    if (scratch != stack_pt) {
        cu_free(scratch);
    }
    return rc;
}

/* cu_crypto_open(key, key_id, ct, ctlen, ad, adlen, out, outcap, outlen): decrypts ct that
 * must have been sealed under key_id with key and ad. CU_E_CRYPTO when authentication fails,
 * CU_E_KEY_MISSING when ct names another key id, CU_E_CORRUPT when malformed, CU_E_TOO_LARGE
 * when outcap is too small. On failure nothing is written to out. */
enum cu_err cu_crypto_open(const struct cu_secret *key, uint32_t key_id, const uint8_t *ct,
                           size_t ctlen, const uint8_t *ad, size_t adlen, uint8_t *out,
                           size_t outcap, size_t *outlen)
{
    uint8_t stack_ad[CU_SEAL_HEADER_BYTES + SEAL_STACK_AD];
    uint8_t *heap_ad = NULL;
    const uint8_t *full_ad = NULL;
    uint32_t named = 0;
    size_t ptlen = 0;
    enum cu_err rc;

    CU_ASSERT(key != NULL && cu_secret_len(key) == CU_KEY_BYTES);
    *outlen = 0;
    rc = cu_crypto_sealed_key_id(ct, ctlen, &named);
    if (rc != CU_OK) {
        goto out;
    }
    if (named != key_id) {
        rc = CU_E_KEY_MISSING;
        goto out;
    }
    ptlen = ctlen - cu_crypto_sealed_len((enum cu_aead)ct[1], 0);
    if (ptlen > SEAL_MAX_PLAINTEXT || ptlen > outcap) {
        rc = CU_E_TOO_LARGE;
        goto out;
    }
    if (!cu_crypto_aead_available((enum cu_aead)ct[1])) {
        rc = CU_E_INVALID;
        goto out;
    }
    rc = build_ad(ct, ad, adlen, stack_ad, &heap_ad, &full_ad);
    if (rc != CU_OK) {
        goto out;
    }
    rc = open_checked(key, ct, ctlen, full_ad, CU_SEAL_HEADER_BYTES + adlen, out, ptlen);
    if (rc == CU_OK) {
        *outlen = ptlen;
    }
out:
    cu_free(heap_ad);
    return rc;
}
