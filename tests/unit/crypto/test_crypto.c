/*
 * test_crypto.c - the primitives: base64url (RFC 4648 vectors, strict rejection), hex,
 * constant-time comparison, keyed BLAKE2b, SHA-256 known answers and guarded secrets.
 */
#include "cu_test.h"

#include "base/mem.h"
#include "crypto/crypto.h"

struct b64_vector {
    const char *bin;
    size_t n;
    const char *text;
};

/* RFC 4648 section 10, without padding, plus bytes that need the URL alphabet. */
static const struct b64_vector vectors[] = {
    {"", 0, ""},
    {"f", 1, "Zg"},
    {"fo", 2, "Zm8"},
    {"foo", 3, "Zm9v"},
    {"foob", 4, "Zm9vYg"},
    {"fooba", 5, "Zm9vYmE"},
    {"foobar", 6, "Zm9vYmFy"},
    {"\xfb\xff", 2, "-_8"},
    {"\x00\x00\x00", 3, "AAAA"},
};

static int setup(void **state)
{
    (void)state;
    return cu_crypto_init() == CU_OK ? 0 : -1;
}

static void test_b64url_encode_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
        char out[16];

        assert_int_equal(strlen(vectors[i].text), CU_B64URL_LEN(vectors[i].n));
        assert_int_equal(cu_b64url_encode(vectors[i].bin, vectors[i].n, out, sizeof out), CU_OK);
        assert_string_equal(out, vectors[i].text);
    }
}

static void test_b64url_encode_too_small(void **state)
{
    char out[5];

    (void)state;
    /* "foo" needs 4 characters and the NUL: 5 fits, 4 does not */
    assert_int_equal(cu_b64url_encode("foo", 3, out, 5), CU_OK);
    assert_int_equal(cu_b64url_encode("foo", 3, out, 4), CU_E_TOO_LARGE);
    assert_int_equal(cu_b64url_encode("foob", 4, out, sizeof out), CU_E_TOO_LARGE);
}

static void test_b64url_decode_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
        uint8_t out[16];
        size_t n = 99;

        assert_int_equal(
            cu_b64url_decode(vectors[i].text, strlen(vectors[i].text), out, sizeof out, &n), CU_OK);
        assert_int_equal(n, vectors[i].n);
        assert_memory_equal(out, vectors[i].bin, n);
    }
}

static void test_b64url_decode_rejects(void **state)
{
    static const char *bad[] = {
        "Z",        /* a length no byte count encodes to */
        "Zh",       /* non-zero trailing bits ("Zg" is canonical) */
        "Zm9",      /* same, two bytes */
        "Zm9v=",    /* padding */
        "Zm9vYg==", /* padding */
        "Zm+v",     /* standard alphabet */
        "Zm/v",     /* standard alphabet */
        "Zm9 v",    /* whitespace */
        "Zm9v\n",   /* trailing newline */
        " Zm9v",    /* leading space */
        "Zm9v.",    /* punctuation */
    };

    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint8_t out[16];
        size_t n = 99;

        assert_int_equal(cu_b64url_decode(bad[i], strlen(bad[i]), out, sizeof out, &n),
                         CU_E_INVALID);
        assert_int_equal(n, 0);
    }
}

static void test_b64url_decode_embedded_nul(void **state)
{
    uint8_t out[16];
    size_t n = 0;

    (void)state;
    /* the length says 8: the NUL in the middle is a character outside the alphabet */
    assert_int_equal(cu_b64url_decode("Zm9v\0Zm9", 8, out, sizeof out, &n), CU_E_INVALID);
}

static void test_b64url_decode_cap(void **state)
{
    uint8_t out[6];
    size_t n = 0;

    (void)state;
    assert_int_equal(cu_b64url_decode("Zm9vYmFy", 8, out, 6, &n), CU_OK);
    assert_int_equal(n, 6);
    assert_int_equal(cu_b64url_decode("Zm9vYmFy", 8, out, 5, &n), CU_E_TOO_LARGE);
    assert_int_equal(cu_b64url_decode("Zm9vYmE", 7, out, 4, &n), CU_E_TOO_LARGE);
}

static void test_b64url_round_trip_all_lengths(void **state)
{
    uint8_t bin[64];
    char text[CU_B64URL_LEN(64) + 1];
    uint8_t back[64];

    (void)state;
    cu_crypto_random(bin, sizeof bin);
    for (size_t n = 0; n <= sizeof bin; n++) {
        size_t got = 0;

        assert_int_equal(cu_b64url_encode(bin, n, text, sizeof text), CU_OK);
        assert_int_equal(strlen(text), CU_B64URL_LEN(n));
        assert_int_equal(cu_b64url_decode(text, strlen(text), back, sizeof back, &got), CU_OK);
        assert_int_equal(got, n);
        assert_memory_equal(back, bin, n);
    }
}

static void test_hex(void **state)
{
    char out[7];

    (void)state;
    cu_hex_encode("\x00\xab\xff", 3, out);
    assert_string_equal(out, "00abff");
    cu_hex_encode("", 0, out);
    assert_string_equal(out, "");
}

static void test_memeq(void **state)
{
    uint8_t a[32];
    uint8_t b[32];

    (void)state;
    cu_crypto_random(a, sizeof a);
    memcpy(b, a, sizeof b);
    assert_true(cu_crypto_memeq(a, b, sizeof a));
    for (size_t i = 0; i < sizeof b; i++) {
        b[i] ^= 0x80;
        assert_false(cu_crypto_memeq(a, b, sizeof a));
        b[i] ^= 0x80;
    }
    assert_true(cu_crypto_memeq(a, b, 0));
}

static void test_wipe(void **state)
{
    uint8_t buf[16];
    static const uint8_t zero[16];

    (void)state;
    memset(buf, 0x5a, sizeof buf);
    cu_crypto_wipe(buf, sizeof buf);
    assert_memory_equal(buf, zero, sizeof buf);
}

static void test_random_differs(void **state)
{
    uint8_t a[32];
    uint8_t b[32];

    (void)state;
    cu_crypto_random(a, sizeof a);
    cu_crypto_random(b, sizeof b);
    assert_memory_not_equal(a, b, sizeof a);
}

static struct cu_secret *key_of(uint8_t fill)
{
    struct cu_secret *k = cu_secret_new(CU_KEY_BYTES);

    assert_non_null(k);
    memset(cu_secret_data(k), fill, CU_KEY_BYTES);
    return k;
}

static void test_keyed_hash(void **state)
{
    struct cu_secret *k1 = key_of(1);
    struct cu_secret *k2 = key_of(2);
    uint8_t h1[CU_HASH_BYTES];
    uint8_t h1again[CU_HASH_BYTES];
    uint8_t h2[CU_HASH_BYTES];
    uint8_t hmsg[CU_HASH_BYTES];
    char hex[2 * CU_HASH_BYTES + 1];

    (void)state;
    cu_crypto_keyed_hash(k1, "alice@example.com", 17, h1);
    cu_crypto_keyed_hash(k1, "alice@example.com", 17, h1again);
    cu_crypto_keyed_hash(k2, "alice@example.com", 17, h2);
    cu_crypto_keyed_hash(k1, "alice@example.org", 17, hmsg);
    /* keyed BLAKE2b with a 32-byte digest (Python: hashlib.blake2b(m, key=k, digest_size=32)) */
    cu_hex_encode(h1, sizeof h1, hex);
    assert_string_equal(hex, "b13743456ab07003a5b10763f4d7aa63cbc344f6b8ecdbd1b363bbac3bf9d945");
    assert_memory_equal(h1, h1again, CU_HASH_BYTES);
    assert_memory_not_equal(h1, h2, CU_HASH_BYTES);
    assert_memory_not_equal(h1, hmsg, CU_HASH_BYTES);
    cu_secret_free(k1);
    cu_secret_free(k2);
}

static void test_sha256_known_answers(void **state)
{
    uint8_t out[CU_HASH_BYTES];
    char hex[2 * CU_HASH_BYTES + 1];

    (void)state;
    cu_crypto_sha256("abc", 3, out);
    cu_hex_encode(out, sizeof out, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    cu_crypto_sha256("", 0, out);
    cu_hex_encode(out, sizeof out, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void test_secret_alloc_free(void **state)
{
    struct cu_secret *s = cu_secret_new(48);
    static const uint8_t zero[48];

    (void)state;
    assert_non_null(s);
    assert_int_equal(cu_secret_len(s), 48);
    assert_memory_equal(cu_secret_data(s), zero, 48);
    memset(cu_secret_data(s), 0xee, 48); /* the whole length is writable */
    cu_secret_free(s);
    cu_secret_free(NULL);

    s = cu_secret_new(0);
    assert_non_null(s);
    assert_int_equal(cu_secret_len(s), 0);
    cu_secret_free(s);
}

static void test_secret_alloc_failure(void **state)
{
    (void)state;
    cu_mem_fail_at(1);
    assert_null(cu_secret_new(32));
    cu_mem_fail_at(0);
}

/* The fast decoder for public text accepts and rejects exactly what the constant-time one
 * does, and decodes to the same bytes: all lengths round-trip, and 20,000 random strings over
 * the alphabet plus junk agree. */
static void test_b64url_public_matches(void **state)
{
    static const char chars[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/ .";
    uint8_t bin[64], a[64], b[64];
    char text[128];
    size_t na = 0, nb = 0;
    (void)state;
    for (size_t n = 0; n <= 48; n++) {
        cu_crypto_random(bin, n);
        assert_int_equal(cu_b64url_encode(bin, n, text, sizeof(text)), CU_OK);
        assert_int_equal(cu_b64url_decode_public(text, strlen(text), a, sizeof(a), &na), CU_OK);
        assert_int_equal(na, n);
        assert_memory_equal(a, bin, n);
    }
    assert_int_equal(cu_b64url_decode_public("AB", 2, a, sizeof(a), &na), CU_E_INVALID);
    assert_int_equal(cu_b64url_decode_public("AA==", 4, a, sizeof(a), &na), CU_E_INVALID);
    assert_int_equal(cu_b64url_decode_public("AAAAA", 5, a, sizeof(a), &na), CU_E_INVALID);
    assert_int_equal(cu_b64url_decode_public("AAAA", 4, a, 2, &na), CU_E_TOO_LARGE);
    for (int i = 0; i < 20000; i++) {
        uint8_t r[40];
        size_t len = 0;
        cu_crypto_random(r, sizeof(r));
        len = r[0] % 24;
        for (size_t k = 0; k < len; k++) {
            /* mostly alphabet characters, sometimes junk */
            size_t idx = r[1 + k] % (r[k + 1] < 16 ? sizeof(chars) - 1 : 64);
            text[k] = chars[idx];
        }
        enum cu_err ra = cu_b64url_decode(text, len, a, sizeof(a), &na);
        enum cu_err rb = cu_b64url_decode_public(text, len, b, sizeof(b), &nb);
        assert_int_equal(ra, rb);
        if (ra == CU_OK) {
            assert_int_equal(na, nb);
            assert_memory_equal(a, b, na);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64url_public_matches),
        cmocka_unit_test(test_b64url_encode_vectors),
        cmocka_unit_test(test_b64url_encode_too_small),
        cmocka_unit_test(test_b64url_decode_vectors),
        cmocka_unit_test(test_b64url_decode_rejects),
        cmocka_unit_test(test_b64url_decode_embedded_nul),
        cmocka_unit_test(test_b64url_decode_cap),
        cmocka_unit_test(test_b64url_round_trip_all_lengths),
        cmocka_unit_test(test_hex),
        cmocka_unit_test(test_memeq),
        cmocka_unit_test(test_wipe),
        cmocka_unit_test(test_random_differs),
        cmocka_unit_test(test_keyed_hash),
        cmocka_unit_test(test_sha256_known_answers),
        cmocka_unit_test(test_secret_alloc_free),
        cmocka_unit_test(test_secret_alloc_failure),
    };

    return cmocka_run_group_tests(tests, setup, NULL);
}
