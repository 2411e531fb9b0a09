/*
 * test_sign.c - Ed25519 signers: the RFC 8032 section 7.1 test vectors 1 and 2 (key pair from
 * the seed, signature), verification rejecting any flipped bit of message, signature or key,
 * seed length checks and allocation failures; padded base64 (RFC 4648 vectors) and its strict
 * rejection of everything that is not the one canonical encoding.
 */
#include "cu_test.h"

#include "base/mem.h"
#include "crypto/crypto.h"
#include "crypto/sign.h"

struct rfc8032_vector {
    const char *seed;
    const char *pub;
    const char *msg; /* hex */
    const char *sig;
};

/* RFC 8032 section 7.1, TEST 1 and TEST 2 (SECRET KEY is the 32-byte seed). */
static const struct rfc8032_vector rfc8032[] = {
    {"9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
     "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"},
    {"4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
     "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"},
};

static int setup(void **state)
{
    (void)state;
    return cu_crypto_init() == CU_OK ? 0 : -1;
}

/* unhex(hex, out): decodes lower-case hex; returns the byte count. */
static size_t unhex(const char *hex, uint8_t *out)
{
    size_t n = strlen(hex) / 2;

    for (size_t i = 0; i < n; i++) {
        unsigned int b = 0;

        assert_int_equal(sscanf(hex + 2 * i, "%2x", &b), 1);
        out[i] = (uint8_t)b;
    }
    return n;
}

/* signer_from_hex(seed_hex): a signer for a hex seed. Caller frees. */
static struct cu_signer *signer_from_hex(const char *seed_hex)
{
    struct cu_secret *seed = cu_secret_new(CU_KEY_BYTES);
    struct cu_signer *s = NULL;

    assert_non_null(seed);
    assert_int_equal(unhex(seed_hex, cu_secret_data(seed)), CU_KEY_BYTES);
    assert_int_equal(cu_signer_new(seed, &s), CU_OK);
    cu_secret_free(seed);
    assert_non_null(s);
    return s;
}

static void test_rfc8032_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof rfc8032 / sizeof rfc8032[0]; i++) {
        struct cu_signer *s = signer_from_hex(rfc8032[i].seed);
        uint8_t pub[CU_SIGN_PUBLIC_BYTES], sig[CU_SIGN_BYTES], msg[8];
        char hex[2 * CU_SIGN_BYTES + 1];
        size_t n = unhex(rfc8032[i].msg, msg);

        cu_signer_public_key(s, pub);
        cu_hex_encode(pub, sizeof pub, hex);
        assert_string_equal(hex, rfc8032[i].pub);
        cu_signer_sign(s, msg, n, sig);
        cu_hex_encode(sig, sizeof sig, hex);
        assert_string_equal(hex, rfc8032[i].sig);
        assert_true(cu_crypto_verify(pub, msg, n, sig));
        cu_signer_free(s);
    }
}

static void test_verify_rejects_flipped_bits(void **state)
{
    struct cu_signer *s = signer_from_hex(rfc8032[1].seed);
    uint8_t pub[CU_SIGN_PUBLIC_BYTES], sig[CU_SIGN_BYTES];
    uint8_t msg[] = "checkpoint 42";

    (void)state;
    cu_signer_public_key(s, pub);
    cu_signer_sign(s, msg, sizeof msg, sig);
    assert_true(cu_crypto_verify(pub, msg, sizeof msg, sig));
    for (size_t bit = 0; bit < 8 * sizeof msg; bit++) {
        msg[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        assert_false(cu_crypto_verify(pub, msg, sizeof msg, sig));
        msg[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    for (size_t bit = 0; bit < 8 * sizeof sig; bit++) {
        sig[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        assert_false(cu_crypto_verify(pub, msg, sizeof msg, sig));
        sig[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    for (size_t bit = 0; bit < 8 * sizeof pub; bit++) {
        pub[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        assert_false(cu_crypto_verify(pub, msg, sizeof msg, sig));
        pub[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    assert_false(cu_crypto_verify(pub, msg, sizeof msg - 1, sig)); /* truncated message */
    assert_true(cu_crypto_verify(pub, msg, sizeof msg, sig));
    cu_signer_free(s);
}

static void test_signer_new_wrong_seed_length(void **state)
{
    struct cu_secret *seed = cu_secret_new(CU_KEY_BYTES - 1);
    struct cu_signer *s = (struct cu_signer *)1;

    (void)state;
    assert_non_null(seed);
    assert_int_equal(cu_signer_new(seed, &s), CU_E_INVALID);
    assert_null(s);
    cu_secret_free(seed);
    cu_signer_free(NULL);
}

static void test_signer_new_alloc_failures(void **state)
{
    struct cu_secret *seed = cu_secret_new(CU_KEY_BYTES);
    enum cu_err rc = CU_E_NOMEM;

    (void)state;
    assert_non_null(seed);
    for (long i = 1; rc == CU_E_NOMEM; i++) {
        struct cu_signer *s = NULL;

        cu_mem_fail_at(i);
        rc = cu_signer_new(seed, &s);
        cu_mem_fail_at(0);
        if (rc == CU_E_NOMEM) {
            assert_null(s);
        }
        cu_signer_free(s);
    }
    assert_int_equal(rc, CU_OK);
    cu_secret_free(seed);
}

struct b64_vector {
    const char *bin;
    size_t n;
    const char *text;
};

/* RFC 4648 section 10, plus bytes that differ between the standard and URL alphabets. */
static const struct b64_vector vectors[] = {
    {"", 0, ""},
    {"f", 1, "Zg=="},
    {"fo", 2, "Zm8="},
    {"foo", 3, "Zm9v"},
    {"foob", 4, "Zm9vYg=="},
    {"fooba", 5, "Zm9vYmE="},
    {"foobar", 6, "Zm9vYmFy"},
    {"\xfb\xff", 2, "+/8="},
    {"\x00\x00\x00", 3, "AAAA"},
};

static void test_b64_encode_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
        char out[16];

        assert_int_equal(strlen(vectors[i].text), CU_B64_LEN(vectors[i].n));
        assert_int_equal(cu_b64_encode(vectors[i].bin, vectors[i].n, out, sizeof out), CU_OK);
        assert_string_equal(out, vectors[i].text);
    }
}

static void test_b64_encode_too_small(void **state)
{
    char out[9];

    (void)state;
    /* "foob" needs 8 characters and the NUL: 9 fits, 8 does not */
    assert_int_equal(cu_b64_encode("foob", 4, out, 9), CU_OK);
    assert_string_equal(out, "Zm9vYg==");
    assert_int_equal(cu_b64_encode("foob", 4, out, 8), CU_E_TOO_LARGE);
    assert_int_equal(cu_b64_encode("", 0, out, 0), CU_E_TOO_LARGE);
}

static void test_b64_decode_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
        uint8_t out[8];
        size_t n = 99;
        const char *t = vectors[i].text;

        assert_int_equal(cu_b64_decode(t, strlen(t), out, sizeof out, &n), CU_OK);
        assert_int_equal(n, vectors[i].n);
        assert_memory_equal(out, vectors[i].bin, n);
    }
}

static void test_b64_decode_rejects(void **state)
{
    static const char *bad[] = {
        "Zg",         /* missing padding */
        "Zg=",        /* short padding */
        "Zm8",        /* missing padding */
        "Zm9vYg",     /* missing padding */
        "Zg===",      /* too much padding */
        "Zm9v====",   /* a whole group of padding */
        "====",       /* padding only */
        "=Zm9",       /* padding first */
        "Zm=v",       /* padding inside */
        "Zh==",       /* non-zero trailing bits ("Zg==" is canonical) */
        "Zm9=",       /* non-zero trailing bits ("Zm8=" is canonical) */
        "Zm9v\n",     /* newline */
        "Zm9 v",      /* space */
        " Zm9v",      /* leading space */
        "Zm9vYg==\n", /* trailing newline */
        "-_8=",       /* URL alphabet */
        "Zm9v*A==",   /* outside the alphabet */
        "Z",          /* impossible length */
    };
    uint8_t out[16];

    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t n = 99;

        assert_int_equal(cu_b64_decode(bad[i], strlen(bad[i]), out, sizeof out, &n), CU_E_INVALID);
        assert_int_equal(n, 0);
    }
    /* an embedded NUL is not skipped */
    assert_int_equal(cu_b64_decode("Zm9v\0AAA", 8, out, sizeof out, &(size_t){0}), CU_E_INVALID);
}

static void test_b64_decode_capacity(void **state)
{
    uint8_t out[6];
    size_t n = 99;

    (void)state;
    assert_int_equal(cu_b64_decode("Zm9vYmFy", 8, out, 6, &n), CU_OK);
    assert_int_equal(n, 6);
    assert_int_equal(cu_b64_decode("Zm9vYmFy", 8, out, 5, &n), CU_E_TOO_LARGE);
    assert_int_equal(n, 0);
    assert_int_equal(cu_b64_decode("Zm9vYg==", 8, out, 4, &n), CU_OK);
    assert_int_equal(n, 4);
    assert_int_equal(cu_b64_decode("Zm9vYg==", 8, out, 3, &n), CU_E_TOO_LARGE);
}

static void test_b64_round_trip_all_lengths(void **state)
{
    uint8_t bin[70], back[70];
    char text[CU_B64_LEN(70) + 1];

    (void)state;
    cu_crypto_random(bin, sizeof bin);
    for (size_t n = 0; n <= sizeof bin; n++) {
        size_t got = 0;

        assert_int_equal(cu_b64_encode(bin, n, text, sizeof text), CU_OK);
        assert_int_equal(strlen(text), CU_B64_LEN(n));
        assert_int_equal(cu_b64_decode(text, strlen(text), back, sizeof back, &got), CU_OK);
        assert_int_equal(got, n);
        assert_memory_equal(back, bin, n);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc8032_vectors),
        cmocka_unit_test(test_verify_rejects_flipped_bits),
        cmocka_unit_test(test_signer_new_wrong_seed_length),
        cmocka_unit_test(test_signer_new_alloc_failures),
        cmocka_unit_test(test_b64_encode_vectors),
        cmocka_unit_test(test_b64_encode_too_small),
        cmocka_unit_test(test_b64_decode_vectors),
        cmocka_unit_test(test_b64_decode_rejects),
        cmocka_unit_test(test_b64_decode_capacity),
        cmocka_unit_test(test_b64_round_trip_all_lengths),
    };

    return cmocka_run_group_tests(tests, setup, NULL);
}
