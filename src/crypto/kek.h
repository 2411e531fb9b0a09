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

/* cu_kek_source_keyring_file(first, path, check_ms, out): the root-key-file source of a long-
 * running process, which follows changes to the file: KEKs come from first (the keyring loaded
 * from path at start, which must outlive the source) until the file at path changes, and then
 * from the file as reloaded. The file is looked at (one stat) at most every check_ms
 * milliseconds, on whichever thread wraps or unwraps, and at once when a wrapped DEK names a
 * version the keyring in use lacks; it is loaded again only when its identity (inode, size,
 * modification time) changed. A reload is taken only when it is a later state of the same
 * file (cu_keyring_compare: CU_KEYRING_NEWER); a file that no longer loads, holds another
 * master secret or changed the key of a version is refused with an error in the log, and the
 * keyring in use stays. So `custodia keys rotate` and `keys retire` take effect in a running
 * server within check_ms, without a restart. Keyrings in use are never freed before the
 * source (a thread may still hold one): after CU_KEK_RELOADS_MAX reloads, further ones are
 * refused and the log asks for a restart. Caller frees *out with cu_kek_source_free(). */
#define CU_KEK_RELOADS_MAX 64

/* How often, at most, `custodia serve` looks at the root key file (its check_ms). */
#define CU_KEK_FILE_CHECK_MS 1000
CU_WUR enum cu_err cu_kek_source_keyring_file(const struct cu_keyring *first, const char *path,
                                              unsigned check_ms, struct cu_kek_source **out);

/* Builds the associated data for a wrap under KEK version into ad (cap bytes, NUL-terminated);
 * arg is the caller's. */
typedef void (*cu_kek_ad_fn)(const void *arg, uint32_t version, char *ad, size_t cap);

/* Bytes of associated data cu_kek_wrap_versioned offers its cu_kek_ad_fn. */
#define CU_KEK_AD_MAX 160

/* cu_kek_wrap_versioned(s, dek, dek_len, make_ad, arg, out, cap, out_len, version): wraps the
 * DEK under the current KEK with associated data that names that KEK's version (make_ad
 * builds it); *version is that version. If the source moves to a newer KEK between reading the
 * version and wrapping (a reloaded root key file), it wraps again, so the version in the
 * associated data is always the one the wrapped value names. CU_E_UNAVAILABLE if the version
 * kept moving. */
CU_WUR enum cu_err cu_kek_wrap_versioned(struct cu_kek_source *s, const uint8_t *dek,
                                         size_t dek_len, cu_kek_ad_fn make_ad, const void *arg,
                                         uint8_t *out, size_t cap, size_t *out_len,
                                         uint32_t *version);

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
