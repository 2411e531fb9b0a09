/*
 * crypto.c - the primitives the rest of custodia builds on: libsodium initialisation, random
 * bytes, guarded secret memory (struct cu_secret), constant-time comparison, keyed BLAKE2b,
 * SHA-256 through OpenSSL (which uses the CPU's SHA extensions), base64url and hex.
 *
 * A cu_secret is a small descriptor from cu_malloc (so fault injection reaches it) pointing at
 * sodium_malloc memory: surrounded by guard pages, locked against swapping, wiped on free.
 */
#include "crypto/crypto.h"

#include <sodium.h>
/* SHA256_Init and friends are deprecated in OpenSSL 3.0 in favour of EVP, but stay, and are
 * twice as fast on short inputs (see cu_crypto_sha256). */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "base/mem.h"

struct cu_secret {
    size_t len;
    uint8_t *data; /* sodium_malloc'd, len bytes (at least 1 allocated) */
};

/* cu_crypto_init(): initialises libsodium; call once before anything else here.
 * CU_E_INTERNAL if it cannot. Safe to call more than once. */
enum cu_err cu_crypto_init(void)
{
    return sodium_init() >= 0 ? CU_OK : CU_E_INTERNAL;
}

/* cu_crypto_random(buf, n): fills buf with n random bytes from the OS CSPRNG. */
void cu_crypto_random(void *buf, size_t n)
{
    randombytes_buf(buf, n);
}

/* cu_crypto_memeq(a, b, n): true when the n bytes at a and b are equal; constant time. */
bool cu_crypto_memeq(const void *a, const void *b, size_t n)
{
    return n == 0 || sodium_memcmp(a, b, n) == 0;
}

/* cu_crypto_wipe(p, n): zeroes n bytes at p in a way the compiler cannot remove. */
void cu_crypto_wipe(void *p, size_t n)
{
    if (p != NULL) {
        sodium_memzero(p, n);
    }
}

/* cu_secret_new(len): len zeroed bytes of guarded memory, or NULL. Caller frees with
 * cu_secret_free(). */
struct cu_secret *cu_secret_new(size_t len)
{
    struct cu_secret *s = cu_malloc(sizeof *s);

    if (s == NULL) {
        return NULL;
    }
    s->data = sodium_malloc(len == 0 ? 1 : len);
    if (s->data == NULL) {
        cu_free(s);
        return NULL;
    }
    sodium_memzero(s->data, len == 0 ? 1 : len);
    s->len = len;
    return s;
}

/* cu_secret_free(s): wipes and frees s; NULL does nothing. */
void cu_secret_free(struct cu_secret *s)
{
    if (s == NULL) {
        return;
    }
    sodium_free(s->data); /* wipes before releasing */
    cu_free(s);
}

/* cu_secret_data(s), cu_secret_len(s): the bytes of s (owned by s) and their count. */
uint8_t *cu_secret_data(const struct cu_secret *s)
{
    return s->data;
}

size_t cu_secret_len(const struct cu_secret *s)
{
    return s->len;
}

/* cu_crypto_keyed_hash(key, msg, len, out): keyed BLAKE2b-256 of msg under key (which must be
 * CU_KEY_BYTES long) into out (CU_HASH_BYTES). Used for token hashes and blind indexes. */
void cu_crypto_keyed_hash(const struct cu_secret *key, const void *msg, size_t len,
                          uint8_t out[CU_HASH_BYTES])
{
    int r;

    CU_ASSERT(key != NULL && key->len == CU_KEY_BYTES);
    r = crypto_generichash(out, CU_HASH_BYTES, msg, len, key->data, key->len);
    CU_ASSERT(r == 0);
}

/* cu_crypto_sha256(msg, len, out): SHA-256 of msg (OpenSSL, for speed). */
void cu_crypto_sha256(const void *msg, size_t len, uint8_t out[CU_HASH_BYTES])
{
    /* The low-level calls, not EVP_Digest or SHA256(): in OpenSSL 3.0 both fetch the
     * algorithm and allocate a context on every call, which halves the rate on the short
     * inputs the audit log hashes. Same SHA-NI code underneath. */
    SHA256_CTX c;
    CU_ASSERT(SHA256_Init(&c) == 1 && SHA256_Update(&c, msg, len) == 1 &&
              SHA256_Final(out, &c) == 1);
}

/* cu_b64url_encode(bin, n, out, outlen): unpadded base64url of n bytes into out, which must
 * hold CU_B64URL_LEN(n) + 1 bytes; CU_E_TOO_LARGE when it does not. */
enum cu_err cu_b64url_encode(const void *bin, size_t n, char *out, size_t outlen)
{
    if (n > SIZE_MAX / 2 || outlen < CU_B64URL_LEN(n) + 1) {
        return CU_E_TOO_LARGE;
    }
    sodium_bin2base64(out, outlen, bin, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    return CU_OK;
}

/* cu_b64url_decode(text, len, out, outcap, outlen): decodes unpadded base64url; CU_E_INVALID
 * on any character outside the alphabet, padding, or trailing bits; CU_E_TOO_LARGE when the
 * result would pass outcap. */
enum cu_err cu_b64url_decode(const char *text, size_t len, uint8_t *out, size_t outcap,
                             size_t *outlen)
{
    size_t want = (len / 4) * 3 + (len % 4 == 0 ? 0 : len % 4 - 1);
    size_t got = 0;
    unsigned high = 0;

    *outlen = 0;
    if (len % 4 == 1) {
        return CU_E_INVALID; /* no byte count encodes to this length */
    }
    /* libsodium 1.0.18 decodes some bytes above 0x7f as if they were base64 characters (found
     * by fuzz/fuzz_b64url.c): refuse them first, without a branch on the text. */
    for (size_t i = 0; i < len; i++) {
        high |= (unsigned char)text[i] >> 7;
    }
    if (high != 0) {
        return CU_E_INVALID;
    }
    if (want > outcap) {
        return CU_E_TOO_LARGE;
    }
    /* With no ignore set and a NULL end pointer, libsodium fails on any character outside
     * the alphabet, on padding, on unconsumed input and on non-zero trailing bits. */
    if (sodium_base642bin(out, outcap, text, len, NULL, &got, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        got != want) {
        return CU_E_INVALID;
    }
    *outlen = got;
    return CU_OK;
}

/* One more than the value of each base64url character; 0 for every other byte. */
static const uint8_t b64url_value[256] = {
    ['A'] = 1,  ['B'] = 2,  ['C'] = 3,  ['D'] = 4,  ['E'] = 5,  ['F'] = 6,  ['G'] = 7,  ['H'] = 8,
    ['I'] = 9,  ['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16,
    ['Q'] = 17, ['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23, ['X'] = 24,
    ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30, ['e'] = 31, ['f'] = 32,
    ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36, ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40,
    ['o'] = 41, ['p'] = 42, ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48,
    ['w'] = 49, ['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56,
    ['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62, ['-'] = 63, ['_'] = 64,
};

enum cu_err cu_b64url_decode_public(const char *text, size_t len, uint8_t *out, size_t outcap,
                                    size_t *outlen)
{
    const uint8_t *t = (const uint8_t *)text;
    size_t want = (len / 4) * 3 + (len % 4 == 0 ? 0 : len % 4 - 1), o = 0, i = 0;

    *outlen = 0;
    if (len % 4 == 1)
        return CU_E_INVALID;
    if (want > outcap)
        return CU_E_TOO_LARGE;
    /* Whole groups of four characters make three bytes. */
    for (; i + 4 <= len; i += 4) {
        unsigned a = b64url_value[t[i]], b = b64url_value[t[i + 1]], c = b64url_value[t[i + 2]],
                 d = b64url_value[t[i + 3]];
        if (a == 0 || b == 0 || c == 0 || d == 0)
            return CU_E_INVALID;
        uint32_t v = ((a - 1) << 18) | ((b - 1) << 12) | ((c - 1) << 6) | (d - 1);
        out[o++] = (uint8_t)(v >> 16);
        out[o++] = (uint8_t)(v >> 8);
        out[o++] = (uint8_t)v;
    }
    /* Two or three characters left make one or two bytes; the bits past them must be zero
     * (the canonical encoding). */
    if (i < len) {
        unsigned a = b64url_value[t[i]], b = b64url_value[t[i + 1]],
                 c = len - i == 3 ? b64url_value[t[i + 2]] : 1;
        if (a == 0 || b == 0 || c == 0)
            return CU_E_INVALID;
        uint32_t v = ((a - 1) << 18) | ((b - 1) << 12) | ((c - 1) << 6);
        out[o++] = (uint8_t)(v >> 16);
        if (len - i == 3)
            out[o++] = (uint8_t)(v >> 8);
        if ((len - i == 2 && (v & 0xffffu) != 0) || (len - i == 3 && (v & 0xffu) != 0))
            return CU_E_INVALID;
    }
    *outlen = o;
    return CU_OK;
}

/* cu_hex_encode(bin, n, out): lower-case hex of n bytes into out (2n + 1 bytes). */
void cu_hex_encode(const void *bin, size_t n, char *out)
{
    CU_ASSERT(n < SIZE_MAX / 2);
    sodium_bin2hex(out, 2 * n + 1, bin, n); /* constant time: fine for secrets too */
}
