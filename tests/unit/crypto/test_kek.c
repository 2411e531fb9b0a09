/*
 * test_kek.c - KEK sources: wrapping and unwrapping DEKs with the root key file source,
 * associated data binding, unwrapping across a KEK rotation, a retired KEK reported as
 * missing, the version a wrapped DEK names, and a custom source behind the ops table; the
 * source that follows the root key file while a server runs (rotation and retirement taken
 * without a restart, a foreign or broken file refused); a wrap whose version moves meanwhile.
 */
#include "cu_test.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <stdio.h>
#include <unistd.h>

#include "base/log.h"
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

/* ---- the source that follows the file ---- */

/* wrap_with(s, out, len): wraps dek under ad with source s. */
static void wrap_with(struct cu_kek_source *s, uint8_t out[CU_KEK_WRAPPED_MAX], size_t *len)
{
    assert_int_equal(cu_kek_wrap(s, dek, sizeof dek, ad, sizeof ad, out, CU_KEK_WRAPPED_MAX, len),
                     CU_OK);
}

/* opens(s, w, wlen): the result of unwrapping w with s; on success, checks it gives dek. */
static enum cu_err opens(struct cu_kek_source *s, const uint8_t *w, size_t wlen)
{
    uint8_t got[CU_KEY_BYTES];
    size_t glen = 0;
    enum cu_err rc = cu_kek_unwrap(s, w, wlen, ad, sizeof ad, got, sizeof got, &glen);
    if (rc == CU_OK)
        assert_memory_equal(got, dek, CU_KEY_BYTES);
    return rc;
}

static uint32_t version_of(const uint8_t *w, size_t wlen)
{
    uint32_t v = 0;
    assert_int_equal(cu_kek_wrapped_version(src, w, wlen, &v), CU_OK);
    return v;
}

/* As a running server and `custodia keys rotate` in another process see it: the server's
 * source looks at the file only every hour, yet it unwraps a DEK the rotation re-wrapped
 * under the new KEK at once (a version it lacks makes it look), and wraps under it from then
 * on. */
static void test_file_source_follows_rotation(void **state)
{
    char err[CU_KEYRING_ERR_BYTES];
    struct cu_kek_source *server = NULL;
    uint8_t before[CU_KEK_WRAPPED_MAX], rewrapped[CU_KEK_WRAPPED_MAX], after[CU_KEK_WRAPPED_MAX];
    size_t blen = 0, rlen = 0, alen = 0;
    uint32_t v = 0;

    (void)state;
    assert_int_equal(cu_kek_source_keyring_file(kr, path, 3600 * 1000, &server), CU_OK);
    assert_string_equal(cu_kek_source_name(server), "keyring");
    wrap_with(server, before, &blen);
    assert_int_equal(version_of(before, blen), 1);

    /* The rotation, in another process with its own keyring. */
    struct cu_keyring *cli_kr = NULL;
    struct cu_kek_source *cli = NULL;
    assert_int_equal(cu_keyring_add_kek(path, &v, err), CU_OK);
    assert_int_equal(cu_keyring_load(path, &cli_kr, err), CU_OK);
    assert_int_equal(cu_kek_source_keyring(cli_kr, &cli), CU_OK);
    wrap_with(cli, rewrapped, &rlen);
    assert_int_equal(version_of(rewrapped, rlen), 2);
    cu_kek_source_free(cli);
    cu_keyring_free(cli_kr);

    assert_int_equal(cu_kek_current_version(server), 1); /* not looked at yet */
    assert_int_equal(opens(server, rewrapped, rlen), CU_OK);
    assert_int_equal(cu_kek_current_version(server), 2);
    wrap_with(server, after, &alen);
    assert_int_equal(version_of(after, alen), 2);
    assert_int_equal(opens(server, before, blen), CU_OK); /* KEK 1 is still in the file */
    cu_kek_source_free(server);
}

/* With check_ms 0 the file is looked at on every use: retiring KEK 1 takes it away from the
 * running source, and adding KEK 3 makes new wraps use it. */
static void test_file_source_follows_retirement(void **state)
{
    char err[CU_KEYRING_ERR_BYTES];
    struct cu_kek_source *server = NULL;
    uint8_t old[CU_KEK_WRAPPED_MAX], w[CU_KEK_WRAPPED_MAX];
    size_t olen = 0, wlen = 0;
    uint32_t v = 0;

    (void)state;
    assert_int_equal(cu_kek_source_keyring_file(kr, path, 0, &server), CU_OK);
    wrap_with(server, old, &olen);
    assert_int_equal(cu_keyring_add_kek(path, &v, err), CU_OK);
    assert_int_equal(cu_kek_current_version(server), 2);
    assert_int_equal(cu_keyring_retire_kek(path, 1, err), CU_OK);
    assert_int_equal(opens(server, old, olen), CU_E_KEY_MISSING);
    assert_int_equal(cu_keyring_add_kek(path, &v, err), CU_OK);
    wrap_with(server, w, &wlen);
    assert_int_equal(version_of(w, wlen), 3);
    assert_int_equal(opens(server, w, wlen), CU_OK);
    cu_kek_source_free(server);
}

/* replace_file(text): puts a file with text (mode 0600) in place of the root key file, as a
 * rewrite does: a new inode renamed over the old one. */
static void replace_file(const char *text)
{
    char tmp[1300];
    snprintf(tmp, sizeof tmp, "%s.new", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    assert_int_equal(rename(tmp, path), 0);
}

/* copy_file(from, to): a new file (mode 0600) with from's bytes. */
static void copy_file(const char *from, const char *to)
{
    char buf[16384];
    int in = open(from, O_RDONLY);
    int out = open(to, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(in >= 0 && out >= 0);
    ssize_t n = read(in, buf, sizeof buf);
    assert_true(n > 0 && (size_t)n < sizeof buf);
    assert_int_equal(write(out, buf, (size_t)n), n);
    close(in);
    close(out);
}

/* file_has(p, needle): whether the file at p contains needle. */
static bool file_has(const char *p, const char *needle)
{
    char buf[8192];
    FILE *f = fopen(p, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strstr(buf, needle) != NULL;
}

/* A file that is not a later state of the one in use is refused, loudly, and the keys in use
 * stay: another installation's root key file, a broken one, a missing one. When the right
 * file comes back, it is taken again. */
static void test_file_source_refuses_foreign_and_broken(void **state)
{
    char err[CU_KEYRING_ERR_BYTES], other[1300], logp[1300], saved[1300];
    struct cu_kek_source *server = NULL;
    uint8_t w[CU_KEK_WRAPPED_MAX];
    size_t wlen = 0;
    uint32_t v = 0;

    (void)state;
    snprintf(logp, sizeof logp, "%s/log", dir);
    int lfd = open(logp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(lfd >= 0);
    cu_log_set_fd(lfd);
    assert_int_equal(cu_kek_source_keyring_file(kr, path, 0, &server), CU_OK);
    wrap_with(server, w, &wlen);
    snprintf(saved, sizeof saved, "%s/saved.key", dir);
    assert_int_equal(link(path, saved), 0);

    snprintf(other, sizeof other, "%s/other.key", dir);
    assert_int_equal(cu_keyring_create(other, err), CU_OK); /* another master secret */
    assert_int_equal(rename(other, path), 0);
    assert_int_equal(opens(server, w, wlen), CU_OK);
    assert_int_equal(cu_kek_current_version(server), 1);
    assert_true(file_has(logp, "\"msg\":\"keys.reload_refused\""));

    replace_file("this is not a root key file\n");
    assert_int_equal(opens(server, w, wlen), CU_OK);
    assert_true(file_has(logp, "\"msg\":\"keys.reload_failed\""));

    assert_int_equal(unlink(path), 0);
    assert_int_equal(opens(server, w, wlen), CU_OK);

    assert_int_equal(link(saved, path), 0); /* the right file again, then a rotation */
    assert_int_equal(cu_keyring_add_kek(path, &v, err), CU_OK);
    assert_int_equal(cu_kek_current_version(server), 2);
    assert_true(file_has(logp, "\"msg\":\"keys.reloaded\""));
    uint8_t w2[CU_KEK_WRAPPED_MAX];
    size_t w2len = 0;
    wrap_with(server, w2, &w2len);
    char v2copy[1300], next[1300];
    snprintf(v2copy, sizeof v2copy, "%s/v2.key", dir);
    snprintf(next, sizeof next, "%s/next.key", dir);
    copy_file(path, v2copy);

    /* An older copy (a backup from before KEK 2) put back: refused, KEK 2 stays. */
    assert_int_equal(rename(saved, path), 0);
    assert_int_equal(opens(server, w2, w2len), CU_OK);
    assert_int_equal(cu_kek_current_version(server), 2);

    /* A later state with a mode the keyring refuses, then fixed by chmod alone: taken. */
    copy_file(v2copy, next);
    assert_int_equal(cu_keyring_add_kek(next, &v, err), CU_OK);
    assert_int_equal(v, 3);
    assert_int_equal(chmod(next, 0640), 0);
    assert_int_equal(rename(next, path), 0);
    assert_int_equal(opens(server, w2, w2len), CU_OK);
    assert_int_equal(cu_kek_current_version(server), 2);
    assert_int_equal(chmod(path, 0600), 0);
    assert_int_equal(cu_kek_current_version(server), 3);

    /* No key material in the log: not KEK 1 (base64url, as the file holds it). */
    char b64[CU_B64URL_LEN(CU_KEY_BYTES) + 1];
    assert_int_equal(
        cu_b64url_encode(cu_secret_data(cu_keyring_kek(kr, 1)), CU_KEY_BYTES, b64, sizeof b64),
        CU_OK);
    assert_true(file_has(path, b64)); /* the file does hold it, in that form */
    assert_false(file_has(logp, b64));
    cu_log_set_fd(2);
    close(lfd);
    cu_kek_source_free(server);
}

/* Threads wrapping and unwrapping through one file source while the file is rotated (and old
 * KEKs retired) under them: every DEK comes back, and every wrap names the version its data
 * was bound to. */
struct churn {
    struct cu_kek_source *s;
    atomic_bool stop;
    atomic_int failures;
    atomic_long rounds;
};

static void dek_ad_test(const void *arg, uint32_t version, char *out, size_t cap)
{
    snprintf(out, cap, "dek|%s|%u", (const char *)arg, (unsigned)version);
}

static void *churner(void *arg)
{
    struct churn *c = arg;
    uint8_t w[CU_KEK_WRAPPED_MAX], got[CU_KEY_BYTES];
    char a[CU_KEK_AD_MAX];
    while (!atomic_load(&c->stop)) {
        size_t wlen = 0, glen = 0;
        uint32_t v = 0;
        enum cu_err rc = cu_kek_wrap_versioned(c->s, dek, sizeof dek, dek_ad_test, "c_9", w,
                                               sizeof w, &wlen, &v);
        dek_ad_test("c_9", v, a, sizeof a);
        if (rc == CU_OK)
            rc =
                cu_kek_unwrap(c->s, w, wlen, (const uint8_t *)a, strlen(a), got, sizeof got, &glen);
        /* A KEK retired between the wrap and the unwrap may be missing (custodia keys retire
         * waits that out); anything else, such as data bound to another version than the one
         * the wrap names (CU_E_CRYPTO), is a failure. */
        if (rc == CU_OK ? glen != CU_KEY_BYTES || memcmp(got, dek, CU_KEY_BYTES) != 0
                        : rc != CU_E_KEY_MISSING)
            atomic_fetch_add(&c->failures, 1);
        atomic_fetch_add(&c->rounds, 1);
    }
    return NULL;
}

static void test_file_source_under_rotation(void **state)
{
    char err[CU_KEYRING_ERR_BYTES];
    struct churn c = {.stop = false, .failures = 0, .rounds = 0};
    pthread_t t[3];
    uint32_t v = 0;

    (void)state;
    assert_int_equal(cu_kek_source_keyring_file(kr, path, 0, &c.s), CU_OK);
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&t[i], NULL, churner, &c), 0);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(cu_keyring_add_kek(path, &v, err), CU_OK);
        if (i >= 2) /* retire the one before last: nothing wraps under it for long */
            assert_int_equal(cu_keyring_retire_kek(path, v - 2, err), CU_OK);
    }
    long before = atomic_load(&c.rounds);
    while (atomic_load(&c.rounds) < before + 30)
        usleep(1000);
    atomic_store(&c.stop, true);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(cu_kek_current_version(c.s), 9);
    assert_true(atomic_load(&c.rounds) > 30);
    assert_int_equal(atomic_load(&c.failures), 0);
    cu_kek_source_free(c.s);
}

/* A source whose current version moves while a wrap is under way (as the file source's does
 * when the file is reloaded between reading the version and wrapping). */
struct mover {
    uint32_t cur;
    int moves; /* how many more wraps find a newer version */
    char last_ad[CU_KEK_AD_MAX];
};

static enum cu_err mover_wrap(void *state, const uint8_t *in, size_t len, const uint8_t *a,
                              size_t alen, uint8_t *out, size_t cap, size_t *out_len)
{
    struct mover *m = state;
    if (m->moves > 0) {
        m->cur++;
        m->moves--;
    }
    assert_true(alen < sizeof m->last_ad && cap > len);
    memcpy(m->last_ad, a, alen);
    m->last_ad[alen] = '\0';
    out[0] = (uint8_t)m->cur;
    memcpy(out + 1, in, len);
    *out_len = len + 1;
    return CU_OK;
}

static uint32_t mover_current(void *state)
{
    return ((struct mover *)state)->cur;
}

static void mover_free(void *state)
{
    (void)state;
}

static const struct cu_kek_source_ops mover_ops = {
    .name = "mover",
    .wrap = mover_wrap,
    .unwrap = fake_unwrap,
    .current_version = mover_current,
    .wrapped_version = fake_version,
    .free = mover_free,
};

static void ad_for(const void *arg, uint32_t version, char *out, size_t cap)
{
    snprintf(out, cap, "%s|%u", (const char *)arg, (unsigned)version);
}

static void test_wrap_versioned(void **state)
{
    struct mover m = {.cur = 1, .moves = 1};
    struct cu_kek_source *s = NULL;
    uint8_t w[CU_KEK_WRAPPED_MAX];
    size_t wlen = 0;
    uint32_t v = 0;

    (void)state;
    assert_int_equal(cu_kek_source_new(&mover_ops, &m, &s), CU_OK);
    assert_int_equal(
        cu_kek_wrap_versioned(s, dek, sizeof dek, ad_for, "dek|c1", w, sizeof w, &wlen, &v), CU_OK);
    assert_int_equal(v, 2); /* the first wrap met version 2 while its data named 1: again */
    assert_int_equal(w[0], 2);
    assert_string_equal(m.last_ad, "dek|c1|2");

    m.moves = 1000; /* never settles */
    assert_int_equal(
        cu_kek_wrap_versioned(s, dek, sizeof dek, ad_for, "dek|c1", w, sizeof w, &wlen, &v),
        CU_E_UNAVAILABLE);
    assert_int_equal(wlen, 0);
    cu_kek_source_free(s);
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
        cmocka_unit_test_setup_teardown(test_file_source_follows_rotation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_source_follows_retirement, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_source_refuses_foreign_and_broken, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_wrap_versioned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_source_under_rotation, setup, teardown),
    };

    return cmocka_run_group_tests(tests, group_setup, NULL);
}
