/*
 * sign.c - Ed25519 signatures (libsodium) for the audit log's signed checkpoints, and the
 * standard padded base64 that the C2SP signed-note format writes them in.
 *
 * A signer keeps its 64-byte libsodium secret key (seed || public key) in a cu_secret, so it
 * lives in guarded, locked memory and is wiped when the signer is freed; the public key is
 * kept beside it in ordinary memory. Base64 decoding is strict: exactly one encoding of each
 * byte string is accepted, which keeps signed text canonical.
 */
#include "crypto/sign.h"

#include <string.h>

#include <sodium.h>

#include "base/mem.h"

struct cu_signer {
    struct cu_secret *sk; /* crypto_sign_SECRETKEYBYTES */
    uint8_t pk[CU_SIGN_PUBLIC_BYTES];
};

_Static_assert(CU_SIGN_PUBLIC_BYTES == crypto_sign_PUBLICKEYBYTES, "Ed25519 public key size");
_Static_assert(CU_SIGN_BYTES == crypto_sign_BYTES, "Ed25519 signature size");
_Static_assert(CU_KEY_BYTES == crypto_sign_SEEDBYTES, "Ed25519 seed size");

/* cu_signer_new(seed, out): the key pair of a CU_KEY_BYTES seed. Caller frees *out with
 * cu_signer_free(). CU_E_INVALID when the seed has the wrong length. */
enum cu_err cu_signer_new(const struct cu_secret *seed, struct cu_signer **out)
{
    enum cu_err rc = CU_E_NOMEM;
    struct cu_signer *s = NULL;

    *out = NULL;
    if (seed == NULL || cu_secret_len(seed) != CU_KEY_BYTES) {
        rc = CU_E_INVALID;
        goto out;
    }
    s = cu_calloc(1, sizeof *s);
    if (s == NULL) {
        goto out;
    }
    s->sk = cu_secret_new(crypto_sign_SECRETKEYBYTES);
    if (s->sk == NULL) {
        goto out;
    }
    if (crypto_sign_seed_keypair(s->pk, cu_secret_data(s->sk), cu_secret_data(seed)) != 0) {
        rc = CU_E_INTERNAL;
        goto out;
    }
    *out = s;
    s = NULL;
    rc = CU_OK;
out:
    cu_signer_free(s);
    return rc;
}

/* cu_signer_free(s): wipes and frees s; NULL does nothing. */
void cu_signer_free(struct cu_signer *s)
{
    if (s == NULL) {
        return;
    }
    cu_secret_free(s->sk);
    cu_free(s);
}

/* cu_signer_public_key(s, out): the public key. */
void cu_signer_public_key(const struct cu_signer *s, uint8_t out[CU_SIGN_PUBLIC_BYTES])
{
    memcpy(out, s->pk, CU_SIGN_PUBLIC_BYTES);
}

/* cu_signer_sign(s, msg, len, sig): the detached Ed25519 signature of msg. */
void cu_signer_sign(const struct cu_signer *s, const void *msg, size_t len,
                    uint8_t sig[CU_SIGN_BYTES])
{
    int r = crypto_sign_detached(sig, NULL, msg, len, cu_secret_data(s->sk));

    CU_ASSERT(r == 0);
}

/* cu_crypto_verify(pub, msg, len, sig): whether sig is pub's signature of msg. */
bool cu_crypto_verify(const uint8_t pub[CU_SIGN_PUBLIC_BYTES], const void *msg, size_t len,
                      const uint8_t sig[CU_SIGN_BYTES])
{
    return crypto_sign_verify_detached(sig, msg, len, pub) == 0;
}

/* cu_b64_encode(bin, n, out, outlen): standard base64 with padding (RFC 4648 section 4) into
 * out, which must hold CU_B64_LEN(n) + 1 bytes; CU_E_TOO_LARGE when it does not. */
enum cu_err cu_b64_encode(const void *bin, size_t n, char *out, size_t outlen)
{
    if (n > SIZE_MAX / 2 || outlen < CU_B64_LEN(n) + 1) {
        return CU_E_TOO_LARGE;
    }
    sodium_bin2base64(out, outlen, bin, n, sodium_base64_VARIANT_ORIGINAL);
    return CU_OK;
}

/* cu_b64_decode(text, len, out, outcap, outlen): strict standard base64 with padding;
 * CU_E_INVALID on anything else, CU_E_TOO_LARGE past outcap. */
enum cu_err cu_b64_decode(const char *text, size_t len, uint8_t *out, size_t outcap, size_t *outlen)
{
    size_t pad = 0;
    size_t want;
    size_t got = 0;

    *outlen = 0;
    if (len % 4 != 0) {
        return CU_E_INVALID; /* padded base64 always comes in groups of four */
    }
    while (pad < 2 && pad < len && text[len - 1 - pad] == '=') {
        pad++;
    }
    want = len / 4 * 3 - pad;
    if (want > outcap) {
        return CU_E_TOO_LARGE;
    }
    /* With no ignore set and a NULL end pointer, libsodium fails on any character outside
     * the alphabet, on missing or misplaced padding, on unconsumed input and on non-zero
     * trailing bits. */
    if (sodium_base642bin(out, outcap, text, len, NULL, &got, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        got != want) {
        return CU_E_INVALID;
    }
    *outlen = got;
    return CU_OK;
}
