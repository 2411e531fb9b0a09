/*
 * kek.h - the source of key-encryption keys (KEKs): wraps and unwraps data-encryption keys
 * (DEKs) without the caller seeing a KEK.
 *
 * A source is a const table of operations (struct cu_kek_source_ops) and its state. The root
 * key file is the one source today (cu_kek_source_keyring); a PKCS#11 HSM or an external KMS
 * plugs in behind the same table (docs/internals/keys.md). A wrapped DEK names the KEK
 * version that wrapped it, so it can be unwrapped after the current version has moved on.
 */
#ifndef CU_CRYPTO_KEK_H
#define CU_CRYPTO_KEK_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "crypto/keyring.h"

/* Bytes of the wrapped form of a 32-byte DEK from the root key file source:
 * header(6) + nonce(24) + DEK(32) + tag(16). */
#define CU_KEK_WRAPPED_KEYRING_BYTES 78

/* Bytes of the wrapped form of a 32-byte DEK: the most any source may produce, so buffers and
 * stored columns of this size fit every source. */
#define CU_KEK_WRAPPED_MAX 256

struct cu_kek_source;

/* The operations of a KEK source; each gets the state given to cu_kek_source_new. They keep
 * the contracts of the cu_kek_* functions below, which call them. */
struct cu_kek_source_ops {
    const char *name; /* short, for logs and `keys status`, e.g. "keyring" */
    enum cu_err (*wrap)(void *state, const uint8_t *dek, size_t dek_len, const uint8_t *ad,
                        size_t ad_len, uint8_t *out, size_t cap, size_t *out_len);
    enum cu_err (*unwrap)(void *state, const uint8_t *wrapped, size_t len, const uint8_t *ad,
                          size_t ad_len, uint8_t *dek, size_t cap, size_t *dek_len);
    uint32_t (*current_version)(void *state);
    enum cu_err (*wrapped_version)(void *state, const uint8_t *wrapped, size_t len,
                                   uint32_t *version);
    void (*free)(void *state); /* may be NULL when there is nothing to free */
};

/* cu_kek_source_new(ops, state, out): a source running ops (which must outlive it) on state,
 * which it owns from now on: cu_kek_source_free passes it to ops->free. Every operation but
 * free must be set. On failure (CU_E_NOMEM) state is not freed. Caller frees *out with
 * cu_kek_source_free(). */
CU_WUR enum cu_err cu_kek_source_new(const struct cu_kek_source_ops *ops, void *state,
                                     struct cu_kek_source **out);

/* cu_kek_source_keyring(kr, out): the root-key-file source: wrap = cu_crypto_seal with the
 * current KEK (key id = KEK version, algorithm XChaCha20-Poly1305), unwrap = open with the KEK
 * the wrapped value names (CU_E_KEY_MISSING if the keyring lacks it). kr must outlive the
 * source; the source may be used from several threads at once. Caller frees *out with
 * cu_kek_source_free(). */
CU_WUR enum cu_err cu_kek_source_keyring(const struct cu_keyring *kr, struct cu_kek_source **out);

/* cu_kek_wrap(s, dek, dek_len, ad, ad_len, out, cap, out_len): wraps the DEK under the current
 * KEK, binding ad (which must be given again to unwrap). CU_E_TOO_LARGE when cap is too small
 * (CU_KEK_WRAPPED_MAX is enough for a 32-byte DEK). */
CU_WUR enum cu_err cu_kek_wrap(struct cu_kek_source *s, const uint8_t *dek, size_t dek_len,
                               const uint8_t *ad, size_t ad_len, uint8_t *out, size_t cap,
                               size_t *out_len);

/* cu_kek_unwrap(s, wrapped, len, ad, ad_len, dek, cap, dek_len): the DEK in wrapped, into dek
 * (cap bytes; the caller wipes it after use). CU_E_KEY_MISSING when the KEK version it names
 * is not available, CU_E_CRYPTO when it or ad was altered, CU_E_CORRUPT when malformed,
 * CU_E_TOO_LARGE when cap is too small. On failure nothing is written to dek. */
CU_WUR enum cu_err cu_kek_unwrap(struct cu_kek_source *s, const uint8_t *wrapped, size_t len,
                                 const uint8_t *ad, size_t ad_len, uint8_t *dek, size_t cap,
                                 size_t *dek_len);

/* cu_kek_current_version(s): the version of the KEK that new wraps use. */
uint32_t cu_kek_current_version(const struct cu_kek_source *s);

/* cu_kek_wrapped_version(s, wrapped, len, version): the KEK version that wrapped names,
 * without unwrapping it. CU_E_CORRUPT when wrapped is malformed. */
CU_WUR enum cu_err cu_kek_wrapped_version(const struct cu_kek_source *s, const uint8_t *wrapped,
                                          size_t len, uint32_t *version);

/* cu_kek_source_name(s): the source's name (static storage), e.g. "keyring". */
const char *cu_kek_source_name(const struct cu_kek_source *s);

/* cu_kek_source_free(s): frees s and its state; NULL does nothing. */
void cu_kek_source_free(struct cu_kek_source *s);

#endif
