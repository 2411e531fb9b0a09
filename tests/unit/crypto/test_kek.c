/*
 * test_kek.c - KEK sources: wrapping and unwrapping DEKs with the root key file source,
 * associated data binding, unwrapping across a KEK rotation, a retired KEK reported as
 * missing, the version a wrapped DEK names, and a custom source behind the ops table.
 */
#include "cu_test.h"

#include "base/mem.h"
#include "crypto/crypto.h"
#include "crypto/kek.h"
#include "crypto/keyring.h"
#include "crypto/seal.h"

static const uint8_t ad[] = "customers|dek|c_0001";
static const uint8_t other_ad[] = "customers|dek|c_0002";

static char dir[1024];
static char path[1200];
static struct cu_keyring *kr;
static struct cu_kek_source *src;
static uint8_t dek[CU_KEY_BYTES];

static int group_setup(void **state)
{
    (void)state;
    return cu_crypto_init() == CU_OK ? 0 : -1;
}

static int setup(void **state)
{
    char err[CU_KEYRING_ERR_BYTES];

    (void)state;
    cu_test_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/root.key", dir);
    assert_int_equal(cu_keyring_create(path, err), CU_OK);
    assert_int_equal(cu_keyring_load(path, &kr, err), CU_OK);
    assert_int_equal(cu_kek_source_keyring(kr, &src), CU_OK);
    cu_crypto_random(dek, sizeof dek);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    cu_kek_source_free(src);
    src = NULL;
    cu_keyring_free(kr);
    kr = NULL;
    cu_test_rmrf(dir);
    return 0;
}

/* reload(): the keyring and source again from the file, as a restarted service sees them. */
static void reload(void)
{
    char err[CU_KEYRING_ERR_BYTES];

    cu_kek_source_free(src);
    cu_keyring_free(kr);
    assert_int_equal(cu_keyring_load(path, &kr, err), CU_OK);
    assert_int_equal(cu_kek_source_keyring(kr, &src), CU_OK);
}

/* wrap(out, len): wraps dek under ad with the current source. */
static void wrap(uint8_t out[CU_KEK_WRAPPED_MAX], size_t *len)
{
    assert_int_equal(cu_kek_wrap(src, dek, sizeof dek, ad, sizeof ad, out, CU_KEK_WRAPPED_MAX, len),
                     CU_OK);
}

static void test_round_trip(void **state)
{
    uint8_t w[CU_KEK_WRAPPED_MAX];
    uint8_t w2[CU_KEK_WRAPPED_MAX];
    uint8_t got[CU_KEY_BYTES];
    size_t wlen = 0;
    size_t w2len = 0;
    size_t glen = 0;

    (void)state;
    assert_string_equal(cu_kek_source_name(src), "keyring");
    assert_int_equal(cu_kek_current_version(src), 1);
    wrap(w, &wlen);
    assert_int_equal(wlen, CU_KEK_WRAPPED_KEYRING_BYTES);
    assert_int_equal(wlen, cu_crypto_sealed_len(CU_AEAD_XCHACHA20POLY1305, CU_KEY_BYTES));
    assert_int_equal(w[1], CU_AEAD_XCHACHA20POLY1305);
    assert_null(memmem(w, wlen, dek, sizeof dek)); /* the DEK is not in the clear */
    assert_int_equal(cu_kek_unwrap(src, w, wlen, ad, sizeof ad, got, sizeof got, &glen), CU_OK);
    assert_int_equal(glen, CU_KEY_BYTES);
    assert_memory_equal(got, dek, CU_KEY_BYTES);
    wrap(w2, &w2len); /* a fresh nonce each time */
    assert_memory_not_equal(w, w2, wlen);
}

static void test_ad_and_tampering_fail(void **state)
{
    uint8_t w[CU_KEK_WRAPPED_MAX];
    uint8_t got[CU_KEY_BYTES];
    size_t wlen = 0;
    size_t glen = 99;

    (void)state;
    wrap(w, &wlen);
    memset(got, 0xAA, sizeof got);
    assert_int_equal(cu_kek_unwrap(src, w, wlen, other_ad, sizeof other_ad, got, sizeof got, &glen),
                     CU_E_CRYPTO);
    assert_int_equal(glen, 0);
    for (size_t i = 0; i < sizeof got; i++) {
        assert_int_equal(got[i], 0xAA); /* nothing written on failure */
    }
    assert_int_equal(cu_kek_unwrap(src, w, wlen, NULL, 0, got, sizeof got, &glen), CU_E_CRYPTO);
    w[wlen - 1] ^= 1;
    assert_int_equal(cu_kek_unwrap(src, w, wlen, ad, sizeof ad, got, sizeof got, &glen),
                     CU_E_CRYPTO);
    w[wlen - 1] ^= 1;
    w[5] ^= 1; /* v1 becomes v0, which the keyring lacks */
    assert_int_equal(cu_kek_unwrap(src, w, wlen, ad, sizeof ad, got, sizeof got, &glen),
                     CU_E_KEY_MISSING);
    w[5] ^= 1;
    assert_int_equal(cu_kek_unwrap(src, w, 10, ad, sizeof ad, got, sizeof got, &glen),
                     CU_E_CORRUPT);
    assert_int_equal(cu_kek_unwrap(src, w, wlen, ad, sizeof ad, got, sizeof got - 1, &glen),
                     CU_E_TOO_LARGE);
}

static void test_small_output_buffer(void **state)
{
    uint8_t w[CU_KEK_WRAPPED_MAX];
    size_t wlen = 7;

    (void)state;
    assert_int_equal(cu_kek_wrap(src, dek, sizeof dek, ad, sizeof ad, w,
                                 CU_KEK_WRAPPED_KEYRING_BYTES - 1, &wlen),
                     CU_E_TOO_LARGE);
    assert_int_equal(wlen, 0);
}

static void test_rotation(void **state)
{
    char err[CU_KEYRING_ERR_BYTES];
    uint8_t old[CU_KEK_WRAPPED_MAX];
    uint8_t fresh[CU_KEK_WRAPPED_MAX];
    uint8_t got[CU_KEY_BYTES];
    size_t olen = 0;
    size_t flen = 0;
    size_t glen = 0;
    uint32_t v = 0;

    (void)state;
    wrap(old, &olen);
    assert_int_equal(cu_kek_wrapped_version(src, old, olen, &v), CU_OK);
    assert_int_equal(v, 1);

    assert_int_equal(cu_keyring_add_kek(path, &v, err), CU_OK);
    assert_int_equal(v, 2);
    reload();
    assert_int_equal(cu_kek_current_version(src), 2);
    /* the DEK wrapped under v1 still unwraps */
    assert_int_equal(cu_kek_unwrap(src, old, olen, ad, sizeof ad, got, sizeof got, &glen), CU_OK);
    assert_memory_equal(got, dek, CU_KEY_BYTES);
    /* new wraps use v2 */
    wrap(fresh, &flen);
    assert_int_equal(cu_kek_wrapped_version(src, fresh, flen, &v), CU_OK);
    assert_int_equal(v, 2);
    assert_int_equal(cu_kek_wrapped_version(src, old, olen, &v), CU_OK);
    assert_int_equal(v, 1);
    old[5] ^= 3; /* names v2 now: the key id is authenticated, so it fails to open */
    assert_int_equal(cu_kek_unwrap(src, old, olen, ad, sizeof ad, got, sizeof got, &glen),
                     CU_E_CRYPTO);
    old[5] ^= 3;

    /* re-wrap the old DEK under v2, retire v1: the old wrapping is now useless */
    assert_int_equal(cu_kek_unwrap(src, fresh, flen, ad, sizeof ad, got, sizeof got, &glen), CU_OK);
    assert_int_equal(cu_keyring_retire_kek(path, 1, err), CU_OK);
    reload();
    assert_int_equal(cu_kek_unwrap(src, old, olen, ad, sizeof ad, got, sizeof got, &glen),
                     CU_E_KEY_MISSING);
    assert_int_equal(glen, 0);
    assert_int_equal(cu_kek_unwrap(src, fresh, flen, ad, sizeof ad, got, sizeof got, &glen), CU_OK);
    assert_memory_equal(got, dek, CU_KEY_BYTES);
}

static void test_wrapped_version_malformed(void **state)
{
    uint8_t w[CU_KEK_WRAPPED_MAX];
    size_t wlen = 0;
    uint32_t v = 0;

    (void)state;
    wrap(w, &wlen);
    assert_int_equal(cu_kek_wrapped_version(src, w, 5, &v), CU_E_CORRUPT);
    w[0] = 9; /* unknown format version */
    assert_int_equal(cu_kek_wrapped_version(src, w, wlen, &v), CU_E_CORRUPT);
}

/* A source of our own behind the ops table: XORs with a fixed byte, counts its calls. */
struct fake {
    int calls;
    int *freed;
};

static enum cu_err fake_wrap(void *state, const uint8_t *in, size_t len, const uint8_t *a,
                             size_t alen, uint8_t *out, size_t cap, size_t *out_len)
{
    struct fake *f = state;

    (void)a;
    (void)alen;
    f->calls++;
    if (cap < len + 1) {
        return CU_E_TOO_LARGE;
    }
    out[0] = 42; /* its version */
    for (size_t i = 0; i < len; i++) {
        out[i + 1] = in[i] ^ 0x5A;
    }
    *out_len = len + 1;
    return CU_OK;
}

static enum cu_err fake_unwrap(void *state, const uint8_t *w, size_t len, const uint8_t *a,
                               size_t alen, uint8_t *out, size_t cap, size_t *out_len)
{
    struct fake *f = state;

    (void)a;
    (void)alen;
    f->calls++;
    if (len < 1 || w[0] != 42) {
        return CU_E_KEY_MISSING;
    }
    if (cap < len - 1) {
        return CU_E_TOO_LARGE;
    }
    for (size_t i = 1; i < len; i++) {
        out[i - 1] = w[i] ^ 0x5A;
    }
    *out_len = len - 1;
    return CU_OK;
}

static uint32_t fake_current(void *state)
{
    (void)state;
    return 42;
}

static enum cu_err fake_version(void *state, const uint8_t *w, size_t len, uint32_t *version)
{
    (void)state;
    if (len < 1) {
        return CU_E_CORRUPT;
    }
    *version = w[0];
    return CU_OK;
}

static void fake_free(void *state)
{
    struct fake *f = state;

    (*f->freed)++;
    free(f);
}

static const struct cu_kek_source_ops fake_ops = {
    .name = "fake",
    .wrap = fake_wrap,
    .unwrap = fake_unwrap,
    .current_version = fake_current,
    .wrapped_version = fake_version,
    .free = fake_free,
};

static void test_custom_source(void **state)
{
    struct cu_kek_source *s = NULL;
    struct fake *f = calloc(1, sizeof *f);
    int freed = 0;
    uint8_t w[CU_KEK_WRAPPED_MAX];
    uint8_t got[CU_KEY_BYTES];
    size_t wlen = 0;
    size_t glen = 0;
    uint32_t v = 0;

    (void)state;
    assert_non_null(f);
    f->freed = &freed;
    assert_int_equal(cu_kek_source_new(&fake_ops, f, &s), CU_OK);
    assert_string_equal(cu_kek_source_name(s), "fake");
    assert_int_equal(cu_kek_current_version(s), 42);
    assert_int_equal(cu_kek_wrap(s, dek, sizeof dek, ad, sizeof ad, w, sizeof w, &wlen), CU_OK);
    assert_int_equal(cu_kek_wrapped_version(s, w, wlen, &v), CU_OK);
    assert_int_equal(v, 42);
    assert_int_equal(cu_kek_unwrap(s, w, wlen, ad, sizeof ad, got, sizeof got, &glen), CU_OK);
    assert_memory_equal(got, dek, CU_KEY_BYTES);
    assert_int_equal(f->calls, 2);
    cu_kek_source_free(s);
    assert_int_equal(freed, 1);
    cu_kek_source_free(NULL);
}

static void test_allocation_failure(void **state)
{
    struct cu_kek_source *s = NULL;
    enum cu_err rc = CU_E_NOMEM;
    long k;

    (void)state;
    for (k = 1; k < 10 && rc == CU_E_NOMEM; k++) {
        cu_mem_fail_at(k);
        rc = cu_kek_source_keyring(kr, &s);
        cu_mem_fail_at(0);
        if (rc == CU_E_NOMEM) {
            assert_null(s);
        }
    }
    assert_int_equal(rc, CU_OK);
    assert_true(k > 2); /* at least one allocation failed first */
    cu_kek_source_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ad_and_tampering_fail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_small_output_buffer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrapped_version_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_custom_source, setup, teardown),
        cmocka_unit_test_setup_teardown(test_allocation_failure, setup, teardown),
    };

    return cmocka_run_group_tests(tests, group_setup, NULL);
}
