/*
 * test_seal.c - the ciphertext format: round trips with both algorithms, the exact layout and
 * sizes, and that every kind of tampering (any byte, the key id, the associated data, the key,
 * truncation) makes opening fail without writing to the output.
 */
#include "cu_test.h"

#include "base/mem.h"
#include "crypto/crypto.h"
#include "crypto/seal.h"

#define KEY_ID 0x01020304u
#define AD "users|email|42"
#define PT "alice@example.com"
#define CAP 256

static struct cu_secret *key;

static int setup(void **state)
{
    (void)state;
    if (cu_crypto_init() != CU_OK) {
        return -1;
    }
    key = cu_secret_new(CU_KEY_BYTES);
    if (key == NULL) {
        return -1;
    }
    cu_crypto_random(cu_secret_data(key), CU_KEY_BYTES);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    cu_secret_free(key);
    return 0;
}

/* seal_str(alg, pt, ad, out): seals the strings pt and ad under key/KEY_ID; returns the
 * sealed length. */
static size_t seal_str(enum cu_aead alg, const char *pt, const char *ad, uint8_t *out)
{
    size_t n = 0;

    assert_int_equal(cu_crypto_seal(key, KEY_ID, alg, (const uint8_t *)pt, strlen(pt),
                                    (const uint8_t *)ad, strlen(ad), out, CAP, &n),
                     CU_OK);
    assert_int_equal(n, cu_crypto_sealed_len(alg, strlen(pt)));
    return n;
}

/* open_str(ct, n, ad, out, outlen): opens with key/KEY_ID and the string ad. */
static enum cu_err open_str(const uint8_t *ct, size_t n, const char *ad, uint8_t *out,
                            size_t *outlen)
{
    return cu_crypto_open(key, KEY_ID, ct, n, (const uint8_t *)ad, strlen(ad), out, CAP, outlen);
}

static void round_trip(enum cu_aead alg)
{
    uint8_t ct[CAP];
    uint8_t pt[CAP];
    size_t n = seal_str(alg, PT, AD, ct);
    size_t ptlen = 0;

    assert_int_equal(open_str(ct, n, AD, pt, &ptlen), CU_OK);
    assert_int_equal(ptlen, strlen(PT));
    assert_memory_equal(pt, PT, ptlen);
}

static void test_round_trip_xchacha(void **state)
{
    (void)state;
    round_trip(CU_AEAD_XCHACHA20POLY1305);
}

static void test_round_trip_aes(void **state)
{
    (void)state;
    if (!cu_crypto_aead_available(CU_AEAD_AES256GCM)) {
        skip(); /* no AES-NI on this CPU */
    }
    round_trip(CU_AEAD_AES256GCM);
}

static void test_layout_and_sizes(void **state)
{
    uint8_t ct[CAP];
    uint32_t id = 0;
    size_t n;

    (void)state;
    assert_int_equal(cu_crypto_sealed_len(CU_AEAD_XCHACHA20POLY1305, 0), 6 + 24 + 16);
    assert_int_equal(cu_crypto_sealed_len(CU_AEAD_XCHACHA20POLY1305, 17), 6 + 24 + 17 + 16);
    assert_int_equal(cu_crypto_sealed_len(CU_AEAD_AES256GCM, 17), 6 + 12 + 17 + 16);
    assert_int_equal(cu_crypto_sealed_len((enum cu_aead)9, 17), 0);

    n = seal_str(CU_AEAD_XCHACHA20POLY1305, PT, AD, ct);
    assert_int_equal(n, 63);
    assert_int_equal(ct[0], CU_SEAL_VERSION);
    assert_int_equal(ct[1], CU_AEAD_XCHACHA20POLY1305);
    assert_memory_equal(ct + 2, "\x01\x02\x03\x04", 4); /* key id, big-endian */
    assert_int_equal(cu_crypto_sealed_key_id(ct, n, &id), CU_OK);
    assert_int_equal(id, KEY_ID);
}

static void test_empty_plaintext(void **state)
{
    uint8_t ct[CAP];
    uint8_t pt[1] = {0x77};
    size_t n = seal_str(CU_AEAD_XCHACHA20POLY1305, "", AD, ct);
    size_t ptlen = 99;

    (void)state;
    assert_int_equal(n, 46);
    assert_int_equal(
        cu_crypto_open(key, KEY_ID, ct, n, (const uint8_t *)AD, strlen(AD), pt, 0, &ptlen), CU_OK);
    assert_int_equal(ptlen, 0);
    assert_int_equal(pt[0], 0x77);
}

static void test_nonce_is_fresh(void **state)
{
    uint8_t a[CAP];
    uint8_t b[CAP];
    size_t n = seal_str(CU_AEAD_XCHACHA20POLY1305, PT, AD, a);

    (void)state;
    assert_int_equal(seal_str(CU_AEAD_XCHACHA20POLY1305, PT, AD, b), n);
    assert_memory_not_equal(a + 6, b + 6, 24);
    assert_memory_not_equal(a + 30, b + 30, n - 30);
}

/* The error each position answers when one of its bits flips. */
static enum cu_err expected_for(size_t i)
{
    if (i < 2) {
        return CU_E_CORRUPT; /* version, algorithm */
    }
    if (i < 6) {
        return CU_E_KEY_MISSING; /* the header names another key id */
    }
    return CU_E_CRYPTO;
}

static void tamper_every_byte(enum cu_aead alg)
{
    uint8_t ct[CAP];
    uint8_t out[CAP];
    uint8_t sentinel[CAP];
    size_t n = seal_str(alg, PT, AD, ct);

    memset(sentinel, 0xa5, sizeof sentinel);
    for (size_t i = 0; i < n; i++) {
        for (unsigned bit = 0; bit < 8; bit++) {
            size_t outlen = 99;

            memset(out, 0xa5, sizeof out);
            ct[i] ^= (uint8_t)(1u << bit);
            assert_int_equal(open_str(ct, n, AD, out, &outlen), expected_for(i));
            ct[i] ^= (uint8_t)(1u << bit);
            assert_int_equal(outlen, 0);
            assert_memory_equal(out, sentinel, sizeof out); /* nothing written on failure */
        }
    }
}

static void test_tamper_every_byte_xchacha(void **state)
{
    (void)state;
    tamper_every_byte(CU_AEAD_XCHACHA20POLY1305);
}

static void test_tamper_every_byte_aes(void **state)
{
    (void)state;
    if (!cu_crypto_aead_available(CU_AEAD_AES256GCM)) {
        skip(); /* no AES-NI on this CPU */
    }
    tamper_every_byte(CU_AEAD_AES256GCM);
}

static void test_wrong_key_id(void **state)
{
    uint8_t ct[CAP];
    uint8_t out[CAP];
    size_t n = seal_str(CU_AEAD_XCHACHA20POLY1305, PT, AD, ct);
    size_t outlen = 0;

    (void)state;
    /* the caller holds another key version than the one the value names */
    assert_int_equal(cu_crypto_open(key, KEY_ID + 1, ct, n, (const uint8_t *)AD, strlen(AD), out,
                                    sizeof out, &outlen),
                     CU_E_KEY_MISSING);
    /* the header is rewritten to name another id, and the caller passes that id: the id is
     * authenticated, so this still fails */
    ct[5] ^= 0x01;
    assert_int_equal(cu_crypto_open(key, KEY_ID ^ 0x01, ct, n, (const uint8_t *)AD, strlen(AD), out,
                                    sizeof out, &outlen),
                     CU_E_CRYPTO);
}

static void test_swapped_associated_data(void **state)
{
    uint8_t ct[CAP];
    uint8_t out[CAP];
    size_t n = seal_str(CU_AEAD_XCHACHA20POLY1305, PT, AD, ct);
    size_t outlen = 0;

    (void)state;
    assert_int_equal(open_str(ct, n, "users|email|43", out, &outlen), CU_E_CRYPTO);
    assert_int_equal(open_str(ct, n, "users|phone|42", out, &outlen), CU_E_CRYPTO);
    assert_int_equal(open_str(ct, n, "", out, &outlen), CU_E_CRYPTO);
    assert_int_equal(open_str(ct, n, AD, out, &outlen), CU_OK);
}

static void test_wrong_key(void **state)
{
    struct cu_secret *other = cu_secret_new(CU_KEY_BYTES);
    uint8_t ct[CAP];
    uint8_t out[CAP];
    size_t n = seal_str(CU_AEAD_XCHACHA20POLY1305, PT, AD, ct);
    size_t outlen = 0;

    (void)state;
    assert_non_null(other);
    cu_crypto_random(cu_secret_data(other), CU_KEY_BYTES);
    assert_int_equal(cu_crypto_open(other, KEY_ID, ct, n, (const uint8_t *)AD, strlen(AD), out,
                                    sizeof out, &outlen),
                     CU_E_CRYPTO);
    cu_secret_free(other);
}

static void test_truncated(void **state)
{
    uint8_t ct[CAP];
    uint8_t out[CAP];
    size_t n = seal_str(CU_AEAD_XCHACHA20POLY1305, PT, AD, ct);
    size_t outlen = 0;
    uint32_t id = 0;

    (void)state;
    /* shorter than header + nonce + tag: malformed */
    for (size_t len = 0; len < 46; len++) {
        assert_int_equal(open_str(ct, len, AD, out, &outlen), CU_E_CORRUPT);
        assert_int_equal(cu_crypto_sealed_key_id(ct, len, &id), CU_E_CORRUPT);
    }
    /* long enough to parse, but bytes are missing: authentication fails */
    for (size_t len = 46; len < n; len++) {
        assert_int_equal(open_str(ct, len, AD, out, &outlen), CU_E_CRYPTO);
    }
}

static void test_unknown_version_or_algorithm(void **state)
{
    uint8_t ct[CAP];
    size_t n = seal_str(CU_AEAD_XCHACHA20POLY1305, PT, AD, ct);
    uint32_t id = 0;

    (void)state;
    ct[0] = 2;
    assert_int_equal(cu_crypto_sealed_key_id(ct, n, &id), CU_E_CORRUPT);
    ct[0] = CU_SEAL_VERSION;
    ct[1] = 0;
    assert_int_equal(cu_crypto_sealed_key_id(ct, n, &id), CU_E_CORRUPT);
    ct[1] = 3;
    assert_int_equal(cu_crypto_sealed_key_id(ct, n, &id), CU_E_CORRUPT);
}

static void test_outcap_too_small(void **state)
{
    uint8_t ct[CAP];
    uint8_t out[CAP];
    size_t need = cu_crypto_sealed_len(CU_AEAD_XCHACHA20POLY1305, strlen(PT));
    size_t n = 0;

    (void)state;
    assert_int_equal(cu_crypto_seal(key, KEY_ID, CU_AEAD_XCHACHA20POLY1305, (const uint8_t *)PT,
                                    strlen(PT), (const uint8_t *)AD, strlen(AD), ct, need - 1, &n),
                     CU_E_TOO_LARGE);
    n = seal_str(CU_AEAD_XCHACHA20POLY1305, PT, AD, ct);
    memset(out, 0xa5, sizeof out);
    assert_int_equal(cu_crypto_open(key, KEY_ID, ct, n, (const uint8_t *)AD, strlen(AD), out,
                                    strlen(PT) - 1, &n),
                     CU_E_TOO_LARGE);
    assert_int_equal(out[0], 0xa5);
}

static void test_bad_algorithm(void **state)
{
    uint8_t ct[CAP];
    size_t n = 0;

    (void)state;
    assert_int_equal(cu_crypto_seal(key, KEY_ID, (enum cu_aead)7, (const uint8_t *)PT, strlen(PT),
                                    NULL, 0, ct, sizeof ct, &n),
                     CU_E_INVALID);
}

static void test_aead_parse(void **state)
{
    enum cu_aead alg = CU_AEAD_AES256GCM;

    (void)state;
    assert_int_equal(cu_crypto_aead_parse("xchacha20poly1305", &alg), CU_OK);
    assert_int_equal(alg, CU_AEAD_XCHACHA20POLY1305);
    assert_int_equal(cu_crypto_aead_parse("aes256gcm", &alg), CU_OK);
    assert_int_equal(alg, CU_AEAD_AES256GCM);
    assert_int_equal(cu_crypto_aead_parse("AES256GCM", &alg), CU_E_INVALID);
    assert_int_equal(cu_crypto_aead_parse("chacha20poly1305", &alg), CU_E_INVALID);
    assert_int_equal(cu_crypto_aead_parse("", &alg), CU_E_INVALID);
    assert_true(cu_crypto_aead_available(CU_AEAD_XCHACHA20POLY1305));
}

/* Values and associated data past the stack buffers take the heap path. */
static void test_large_values(void **state)
{
    size_t ptlen = 5000;
    size_t adlen = 3000;
    size_t cap = cu_crypto_sealed_len(CU_AEAD_XCHACHA20POLY1305, ptlen);
    uint8_t *pt = malloc(ptlen);
    uint8_t *ad = malloc(adlen);
    uint8_t *ct = malloc(cap);
    uint8_t *back = malloc(ptlen);
    size_t n = 0;

    (void)state;
    assert_true(pt && ad && ct && back);
    cu_crypto_random(pt, ptlen);
    cu_crypto_random(ad, adlen);
    assert_int_equal(
        cu_crypto_seal(key, 9, CU_AEAD_XCHACHA20POLY1305, pt, ptlen, ad, adlen, ct, cap, &n),
        CU_OK);
    assert_int_equal(cu_crypto_open(key, 9, ct, n, ad, adlen, back, ptlen, &n), CU_OK);
    assert_int_equal(n, ptlen);
    assert_memory_equal(back, pt, ptlen);
    ad[adlen - 1] ^= 1;
    assert_int_equal(cu_crypto_open(key, 9, ct, cap, ad, adlen, back, ptlen, &n), CU_E_CRYPTO);
    free(pt);
    free(ad);
    free(ct);
    free(back);
}

static void test_limits(void **state)
{
    size_t big = 16u * 1024 * 1024 + 1;
    uint8_t *pt = calloc(1, big);
    uint8_t *ad = calloc(1, 64 * 1024 + 1);
    uint8_t ct[CAP];
    size_t n = 0;

    (void)state;
    assert_true(pt && ad);
    assert_int_equal(
        cu_crypto_seal(key, 1, CU_AEAD_XCHACHA20POLY1305, pt, big, NULL, 0, ct, SIZE_MAX, &n),
        CU_E_TOO_LARGE);
    assert_int_equal(cu_crypto_seal(key, 1, CU_AEAD_XCHACHA20POLY1305, pt, 1, ad, 64 * 1024 + 1, ct,
                                    sizeof ct, &n),
                     CU_E_TOO_LARGE);
    assert_int_equal(
        cu_crypto_seal(key, 1, CU_AEAD_XCHACHA20POLY1305, pt, 1, ad, 64 * 1024, ct, sizeof ct, &n),
        CU_OK);
    free(pt);
    free(ad);
}

/* Every allocation failure on the heap path is reported, and nothing is written. */
static void test_allocation_failure(void **state)
{
    size_t len = 2000;
    size_t cap = cu_crypto_sealed_len(CU_AEAD_XCHACHA20POLY1305, len);
    uint8_t *pt = calloc(1, len);
    uint8_t *ad = calloc(1, len);
    uint8_t *ct = malloc(cap);
    uint8_t *back = malloc(len);
    size_t n = 0;

    (void)state;
    assert_true(pt && ad && ct && back);
    cu_mem_fail_at(1);
    assert_int_equal(
        cu_crypto_seal(key, 1, CU_AEAD_XCHACHA20POLY1305, pt, len, ad, len, ct, cap, &n),
        CU_E_NOMEM);
    cu_mem_fail_at(0);
    assert_int_equal(
        cu_crypto_seal(key, 1, CU_AEAD_XCHACHA20POLY1305, pt, len, ad, len, ct, cap, &n), CU_OK);
    for (long k = 1; k <= 2; k++) {
        memset(back, 0xa5, len);
        cu_mem_fail_at(k);
        assert_int_equal(cu_crypto_open(key, 1, ct, cap, ad, len, back, len, &n), CU_E_NOMEM);
        cu_mem_fail_at(0);
        assert_int_equal(back[0], 0xa5);
    }
    free(pt);
    free(ad);
    free(ct);
    free(back);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_xchacha),
        cmocka_unit_test(test_round_trip_aes),
        cmocka_unit_test(test_layout_and_sizes),
        cmocka_unit_test(test_empty_plaintext),
        cmocka_unit_test(test_nonce_is_fresh),
        cmocka_unit_test(test_tamper_every_byte_xchacha),
        cmocka_unit_test(test_tamper_every_byte_aes),
        cmocka_unit_test(test_wrong_key_id),
        cmocka_unit_test(test_swapped_associated_data),
        cmocka_unit_test(test_wrong_key),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_unknown_version_or_algorithm),
        cmocka_unit_test(test_outcap_too_small),
        cmocka_unit_test(test_bad_algorithm),
        cmocka_unit_test(test_aead_parse),
        cmocka_unit_test(test_large_values),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_allocation_failure),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
