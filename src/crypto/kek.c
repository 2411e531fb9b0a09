/*
 * kek.c - KEK sources: the dispatch through struct cu_kek_source_ops, and the root key file
 * source.
 *
 * The root key file source wraps a DEK by sealing it (src/crypto/seal.c) with the current KEK
 * of a loaded keyring, the KEK version as key id, XChaCha20-Poly1305 as algorithm. The key id
 * sits in the authenticated header of the sealed value, so unwrapping picks the KEK by that
 * version and a value whose version was altered fails to open. The source only reads the
 * keyring, which never changes once loaded, so it needs no lock.
 */
#include "crypto/kek.h"

#include "base/mem.h"
#include "crypto/seal.h"

#define KEK_KEYRING_ALG CU_AEAD_XCHACHA20POLY1305

_Static_assert(CU_KEK_WRAPPED_KEYRING_BYTES <= CU_KEK_WRAPPED_MAX, "every source fits the maximum");

struct cu_kek_source {
    const struct cu_kek_source_ops *ops;
    void *state;
};

/* The state of the root key file source. */
struct keyring_state {
    const struct cu_keyring *kr;
};

/* cu_kek_source_new(ops, state, out): a source running ops (which must outlive it) on state,
 * which it owns from now on: cu_kek_source_free passes it to ops->free. Every operation but
 * free must be set. On failure (CU_E_NOMEM) state is not freed. Caller frees *out with
 * cu_kek_source_free(). */
enum cu_err cu_kek_source_new(const struct cu_kek_source_ops *ops, void *state,
                              struct cu_kek_source **out)
{
    struct cu_kek_source *s = NULL;

    CU_ASSERT_MSG(ops != NULL && ops->name != NULL && ops->wrap != NULL && ops->unwrap != NULL &&
                      ops->current_version != NULL && ops->wrapped_version != NULL,
                  "a KEK source needs every operation but free");
    *out = NULL;
    s = cu_malloc(sizeof *s);
    if (s == NULL) {
        return CU_E_NOMEM;
    }
    s->ops = ops;
    s->state = state;
    *out = s;
    return CU_OK;
}

/* keyring_wrap(state, ...): seals the DEK with the current KEK. */
static enum cu_err keyring_wrap(void *state, const uint8_t *dek, size_t dek_len, const uint8_t *ad,
                                size_t ad_len, uint8_t *out, size_t cap, size_t *out_len)
{
    const struct cu_keyring *kr = ((struct keyring_state *)state)->kr;
    uint32_t version = cu_keyring_current_kek(kr);
    const struct cu_secret *kek = cu_keyring_kek(kr, version);

    CU_ASSERT(kek != NULL); /* a loaded keyring always has its current KEK */
    return cu_crypto_seal(kek, version, KEK_KEYRING_ALG, dek, dek_len, ad, ad_len, out, cap,
                          out_len);
}

/* keyring_unwrap(state, ...): opens the DEK with the KEK whose version the value names. */
static enum cu_err keyring_unwrap(void *state, const uint8_t *wrapped, size_t len,
                                  const uint8_t *ad, size_t ad_len, uint8_t *dek, size_t cap,
                                  size_t *dek_len)
{
    const struct cu_keyring *kr = ((struct keyring_state *)state)->kr;
    const struct cu_secret *kek = NULL;
    uint32_t version = 0;
    enum cu_err rc;

    *dek_len = 0;
    rc = cu_crypto_sealed_key_id(wrapped, len, &version);
    if (rc != CU_OK) {
        return rc;
    }
    kek = cu_keyring_kek(kr, version);
    if (kek == NULL) {
        return CU_E_KEY_MISSING;
    }
    return cu_crypto_open(kek, version, wrapped, len, ad, ad_len, dek, cap, dek_len);
}

/* keyring_current_version(state): the keyring's current KEK version. */
static uint32_t keyring_current_version(void *state)
{
    return cu_keyring_current_kek(((struct keyring_state *)state)->kr);
}

/* keyring_wrapped_version(state, wrapped, len, version): the key id of the sealed value. */
static enum cu_err keyring_wrapped_version(void *state, const uint8_t *wrapped, size_t len,
                                           uint32_t *version)
{
    (void)state;
    return cu_crypto_sealed_key_id(wrapped, len, version);
}

/* keyring_free(state): frees the state; the keyring belongs to the caller. */
static void keyring_free(void *state)
{
    cu_free(state);
}

static const struct cu_kek_source_ops keyring_ops = {
    .name = "keyring",
    .wrap = keyring_wrap,
    .unwrap = keyring_unwrap,
    .current_version = keyring_current_version,
    .wrapped_version = keyring_wrapped_version,
    .free = keyring_free,
};

/* cu_kek_source_keyring(kr, out): the root-key-file source: wrap = cu_crypto_seal with the
 * current KEK (key id = KEK version, algorithm XChaCha20-Poly1305), unwrap = open with the KEK
 * the wrapped value names (CU_E_KEY_MISSING if the keyring lacks it). kr must outlive the
 * source; the source may be used from several threads at once. Caller frees *out with
 * cu_kek_source_free(). */
enum cu_err cu_kek_source_keyring(const struct cu_keyring *kr, struct cu_kek_source **out)
{
    struct keyring_state *st = NULL;
    enum cu_err rc;

    CU_ASSERT(kr != NULL);
    *out = NULL;
    st = cu_malloc(sizeof *st);
    if (st == NULL) {
        return CU_E_NOMEM;
    }
    st->kr = kr;
    rc = cu_kek_source_new(&keyring_ops, st, out);
    if (rc != CU_OK) {
        cu_free(st);
    }
    return rc;
}

/* cu_kek_wrap(s, dek, dek_len, ad, ad_len, out, cap, out_len): wraps the DEK under the current
 * KEK, binding ad (which must be given again to unwrap). CU_E_TOO_LARGE when cap is too small
 * (CU_KEK_WRAPPED_MAX is enough for a 32-byte DEK). */
enum cu_err cu_kek_wrap(struct cu_kek_source *s, const uint8_t *dek, size_t dek_len,
                        const uint8_t *ad, size_t ad_len, uint8_t *out, size_t cap, size_t *out_len)
{
    *out_len = 0;
    return s->ops->wrap(s->state, dek, dek_len, ad, ad_len, out, cap, out_len);
}

/* cu_kek_unwrap(s, wrapped, len, ad, ad_len, dek, cap, dek_len): the DEK in wrapped, into dek
 * (cap bytes; the caller wipes it after use). CU_E_KEY_MISSING when the KEK version it names
 * is not available, CU_E_CRYPTO when it or ad was altered, CU_E_CORRUPT when malformed,
 * CU_E_TOO_LARGE when cap is too small. On failure nothing is written to dek. */
enum cu_err cu_kek_unwrap(struct cu_kek_source *s, const uint8_t *wrapped, size_t len,
                          const uint8_t *ad, size_t ad_len, uint8_t *dek, size_t cap,
                          size_t *dek_len)
{
    *dek_len = 0;
    return s->ops->unwrap(s->state, wrapped, len, ad, ad_len, dek, cap, dek_len);
}

/* cu_kek_current_version(s): the version of the KEK that new wraps use. */
uint32_t cu_kek_current_version(const struct cu_kek_source *s)
{
    return s->ops->current_version(s->state);
}

/* cu_kek_wrapped_version(s, wrapped, len, version): the KEK version that wrapped names,
 * without unwrapping it. CU_E_CORRUPT when wrapped is malformed. */
enum cu_err cu_kek_wrapped_version(const struct cu_kek_source *s, const uint8_t *wrapped,
                                   size_t len, uint32_t *version)
{
    return s->ops->wrapped_version(s->state, wrapped, len, version);
}

/* cu_kek_source_name(s): the source's name (static storage), e.g. "keyring". */
const char *cu_kek_source_name(const struct cu_kek_source *s)
{
    return s->ops->name;
}

/* cu_kek_source_free(s): frees s and its state; NULL does nothing. */
void cu_kek_source_free(struct cu_kek_source *s)
{
    if (s == NULL) {
        return;
    }
    if (s->ops->free != NULL) {
        s->ops->free(s->state);
    }
    cu_free(s);
}
