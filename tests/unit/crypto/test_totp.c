/*
 * test_totp.c - one-time passwords: every vector of RFC 4226 (HOTP) and RFC 6238 (TOTP, the
 * SHA-1 rows through cu_totp_code, the SHA-256 and SHA-512 rows through the same liboath call
 * with its hash flags, which the test reaches by including totp.c) from
 * $CU_TEST_DATA/vectors; the verification window, replays and malformed codes; RFC 4648
 * base32; the enrolment URI and its percent-encoding; the QR code's SVG, redrawn module by
 * module; and agreement with the oathtool client (package oathtool), which must be installed.
 */
#include "cu_test.h"

#include <pthread.h>
#include <stdbool.h>
#include <time.h>

#include "crypto/totp.c"

#include "base/buf.h"
#include "base/mem.h"

#define RFC_SEED "12345678901234567890"
#define RFC_SEED_B32 "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
#define OATHTOOL "/usr/bin/oathtool"

static const uint8_t *rfc_seed = (const uint8_t *)RFC_SEED;

static int setup(void **state)
{
    (void)state;
    return cu_totp_init() == CU_OK ? 0 : -1;
}

/* open_vectors(name): the vector file $CU_TEST_DATA/vectors/name, open for reading. */
static FILE *open_vectors(const char *name)
{
    const char *data = getenv("CU_TEST_DATA");
    char path[4096];
    FILE *f;
    int n;

    assert_non_null(data); /* tests/meson.build sets it; a missing file is a failure */
    n = snprintf(path, sizeof path, "%s/vectors/%s", data, name);
    assert_true(n > 0 && (size_t)n < sizeof path);
    f = fopen(path, "r");
    if (f == NULL) {
        fail_msg("cannot open %s", path);
    }
    return f;
}

static void test_hotp_rfc4226(void **state)
{
    FILE *f = open_vectors("hotp-rfc4226.tsv");
    char line[256], want[16], got[16];
    unsigned long long counter;
    size_t rows = 0;

    (void)state;
    while (fgets(line, sizeof line, f) != NULL) {
        if (line[0] == '#' || line[0] == '\n') {
            continue;
        }
        assert_int_equal(sscanf(line, "%llu\t%15s", &counter, want), 2);
        assert_int_equal(cu_hotp_code(rfc_seed, 20, counter, 6, got), CU_OK);
        assert_string_equal(got, want);
        rows++;
    }
    fclose(f);
    assert_int_equal(rows, 10);
}

/* The seeds of RFC 6238 Appendix B: the ASCII digits repeated to the hash's length. */
static void rfc6238_seed(const char *alg, uint8_t *seed, size_t *n, int *flags)
{
    *n = strcmp(alg, "sha1") == 0 ? 20 : strcmp(alg, "sha256") == 0 ? 32 : 64;
    *flags = strcmp(alg, "sha1") == 0     ? 0
             : strcmp(alg, "sha256") == 0 ? OATH_TOTP_HMAC_SHA256
                                          : OATH_TOTP_HMAC_SHA512;
    assert_true(strcmp(alg, "sha1") == 0 || strcmp(alg, "sha256") == 0 ||
                strcmp(alg, "sha512") == 0);
    for (size_t i = 0; i < *n; i++) {
        seed[i] = (uint8_t)('0' + (i + 1) % 10);
    }
}

static void test_totp_rfc6238(void **state)
{
    FILE *f = open_vectors("totp-rfc6238.tsv");
    char line[256], alg[16], want[16], got[16];
    size_t rows = 0, sha1_rows = 0;
    long long t;

    (void)state;
    while (fgets(line, sizeof line, f) != NULL) {
        uint8_t seed[64];
        size_t n;
        int flags;

        if (line[0] == '#' || line[0] == '\n') {
            continue;
        }
        assert_int_equal(sscanf(line, "%lld\t%15s\t%15s", &t, alg, want), 3);
        rfc6238_seed(alg, seed, &n, &flags);
        assert_int_equal(totp_code(seed, n, t, 8, flags, got), CU_OK);
        assert_string_equal(got, want);
        if (flags == 0) {
            assert_int_equal(cu_totp_code(seed, n, t, 8, got), CU_OK);
            assert_string_equal(got, want);
            /* The 6-digit code is the last 6 digits of the 8-digit one. */
            assert_int_equal(cu_totp_code(seed, n, t, 6, got), CU_OK);
            assert_string_equal(got, want + 2);
            sha1_rows++;
        }
        rows++;
    }
    fclose(f);
    assert_int_equal(rows, 18);
    assert_int_equal(sha1_rows, 6);
}

static void test_code_arguments(void **state)
{
    char out[16];

    (void)state;
    assert_int_equal(cu_hotp_code(rfc_seed, 20, 0, 5, out), CU_E_INVALID);
    assert_int_equal(cu_hotp_code(rfc_seed, 20, 0, 9, out), CU_E_INVALID);
    assert_int_equal(cu_hotp_code(rfc_seed, 0, 0, 6, out), CU_E_INVALID);
    assert_int_equal(cu_hotp_code(rfc_seed, 20, 0, 7, out), CU_OK);
    assert_int_equal(strlen(out), 7);
    assert_int_equal(cu_totp_code(rfc_seed, 20, -1, 6, out), CU_E_INVALID);
    assert_int_equal(cu_totp_code(rfc_seed, 20, 59, 5, out), CU_E_INVALID);
    assert_int_equal(cu_totp_code(rfc_seed, 20, 0, 6, out), CU_OK);
    assert_string_equal(out, "755224"); /* step 0 is HOTP counter 0 */
}

/* code_at(step): the 6-digit code of the RFC seed at a step. */
static void code_at(int64_t step, char out[8])
{
    assert_int_equal(cu_hotp_code(rfc_seed, 20, (uint64_t)step, 6, out), CU_OK);
}

static void test_verify_window(void **state)
{
    const int64_t t = 1111111111, now = t / 30;
    char code[8];
    int64_t step = -7;

    (void)state;
    for (int64_t d = -1; d <= 1; d++) {
        code_at(now + d, code);
        step = -7;
        assert_int_equal(cu_totp_verify(rfc_seed, 20, t, code, 6, -1, &step), CU_OK);
        assert_int_equal(step, now + d);
    }
    for (int64_t d = -3; d <= 3; d += 1) {
        if (d >= -1 && d <= 1) {
            continue;
        }
        code_at(now + d, code);
        step = -7;
        assert_int_equal(cu_totp_verify(rfc_seed, 20, t, code, 6, -1, &step), CU_E_INVALID);
        assert_int_equal(step, -7);
    }
    /* The first and last second of a step. */
    code_at(now, code);
    assert_int_equal(cu_totp_verify(rfc_seed, 20, now * 30, code, 6, -1, &step), CU_OK);
    assert_int_equal(cu_totp_verify(rfc_seed, 20, now * 30 + 29, code, 6, -1, &step), CU_OK);
    assert_int_equal(step, now);
    /* Near the epoch there is no step -1. */
    code_at(0, code);
    assert_int_equal(cu_totp_verify(rfc_seed, 20, 5, code, 6, -1, &step), CU_OK);
    assert_int_equal(step, 0);
    assert_int_equal(cu_totp_verify(rfc_seed, 20, -5, code, 6, -1, &step), CU_E_INVALID);
}

static void test_verify_replay(void **state)
{
    const int64_t t = 1234567890, now = t / 30;
    char code[8];
    int64_t step = -1;

    (void)state;
    code_at(now, code);
    assert_int_equal(cu_totp_verify(rfc_seed, 20, t, code, 6, -1, &step), CU_OK);
    assert_int_equal(step, now);
    /* The same code again, even a few seconds later, is a replay. */
    assert_int_equal(cu_totp_verify(rfc_seed, 20, t, code, 6, step, &step), CU_E_EXISTS);
    assert_int_equal(cu_totp_verify(rfc_seed, 20, t + 20, code, 6, now, &step), CU_E_EXISTS);
    /* So is an earlier step's code once a later one was used. */
    code_at(now - 1, code);
    assert_int_equal(cu_totp_verify(rfc_seed, 20, t, code, 6, now, &step), CU_E_EXISTS);
    /* The next step's code still works, and moves last_step on. */
    code_at(now + 1, code);
    assert_int_equal(cu_totp_verify(rfc_seed, 20, t, code, 6, now, &step), CU_OK);
    assert_int_equal(step, now + 1);
    assert_int_equal(cu_totp_verify(rfc_seed, 20, t, code, 6, now + 1, &step), CU_E_EXISTS);
    /* A wrong code is wrong, not a replay. */
    memcpy(code, code[0] == '0' ? "1" : "0", 1);
    assert_int_equal(cu_totp_verify(rfc_seed, 20, t, code, 6, now + 1, &step), CU_E_INVALID);
}

/* With the RFC seed, steps 153567 and 153569 share the code 468457 (found by a search over
 * the first million steps): at step 153568 both are in the window, and the later one counts. */
static void test_verify_prefers_latest(void **state)
{
    const int64_t t = 153568 * 30;
    char a[8], b[8];
    int64_t step = -1;

    (void)state;
    code_at(153567, a);
    code_at(153569, b);
    assert_string_equal(a, "468457");
    assert_string_equal(b, "468457");
    assert_int_equal(cu_totp_verify(rfc_seed, 20, t, a, 6, -1, &step), CU_OK);
    assert_int_equal(step, 153569);
    assert_int_equal(cu_totp_verify(rfc_seed, 20, t, a, 6, 153567, &step), CU_OK);
    assert_int_equal(step, 153569);
    assert_int_equal(cu_totp_verify(rfc_seed, 20, t, a, 6, 153569, &step), CU_E_EXISTS);
}

static void test_verify_malformed(void **state)
{
    const int64_t t = 1234567890;
    const char *bad[] = {"12345",  "1234567", "12a456", " 12345",      "12345 ",
                         "+12345", "-12345",  "",       "１２３４５６"};
    char good[8];
    int64_t step = -7;

    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(cu_totp_verify(rfc_seed, 20, t, bad[i], strlen(bad[i]), -1, &step),
                         CU_E_INVALID);
    }
    code_at(t / 30, good);
    /* The length is the caller's: a right code with a wrong length fails. */
    assert_int_equal(cu_totp_verify(rfc_seed, 20, t, good, 5, -1, &step), CU_E_INVALID);
    assert_int_equal(cu_totp_verify(rfc_seed, 20, t,
                                    "123\0"
                                    "56",
                                    6, -1, &step),
                     CU_E_INVALID);
    assert_int_equal(cu_totp_verify(rfc_seed, 20, t, NULL, 0, -1, &step), CU_E_INVALID);
    assert_int_equal(cu_totp_verify(rfc_seed, 0, t, good, 6, -1, &step), CU_E_INVALID);
    assert_int_equal(step, -7);
    assert_int_equal(cu_totp_verify(rfc_seed, 20, t, good, 6, -1, &step), CU_OK);
}

static void test_base32(void **state)
{
    static const struct {
        const char *in, *out;
    } rfc4648[] = {{"", ""},
                   {"f", "MY"},
                   {"fo", "MZXQ"},
                   {"foo", "MZXW6"},
                   {"foob", "MZXW6YQ"},
                   {"fooba", "MZXW6YTB"},
                   {"foobar", "MZXW6YTBOI"}};
    char out[CU_TOTP_BASE32_BYTES];

    (void)state;
    for (size_t i = 0; i < sizeof rfc4648 / sizeof rfc4648[0]; i++) {
        assert_int_equal(
            cu_totp_base32((const uint8_t *)rfc4648[i].in, strlen(rfc4648[i].in), out, sizeof out),
            CU_OK);
        assert_string_equal(out, rfc4648[i].out);
    }
    assert_int_equal(cu_totp_base32(rfc_seed, 20, out, sizeof out), CU_OK);
    assert_string_equal(out, RFC_SEED_B32);
    assert_int_equal(cu_totp_base32(rfc_seed, 20, out, 33), CU_OK);
    assert_int_equal(cu_totp_base32(rfc_seed, 20, out, 32), CU_E_TOO_LARGE);
    assert_string_equal(out, "");
}

/* Every byte value in every position, against liboath's encoder with its padding removed. */
static void test_base32_matches_liboath(void **state)
{
    uint8_t secret[CU_TOTP_SECRET_BYTES];
    char ours[CU_TOTP_BASE32_BYTES];

    (void)state;
    for (int round = 0; round < 300; round++) {
        size_t n = (size_t)round % (CU_TOTP_SECRET_BYTES + 1);
        char *theirs = NULL;
        size_t len = 0;

        cu_crypto_random(secret, sizeof secret);
        if (round < 256) {
            memset(secret, round, sizeof secret);
            n = CU_TOTP_SECRET_BYTES;
        }
        assert_int_equal(cu_totp_base32(secret, n, ours, sizeof ours), CU_OK);
        assert_int_equal(oath_base32_encode((const char *)secret, n, &theirs, &len), OATH_OK);
        while (len > 0 && theirs[len - 1] == '=') {
            len--;
        }
        assert_int_equal(strlen(ours), len);
        assert_memory_equal(ours, theirs, len);
        free(theirs);
    }
}

static void test_uri(void **state)
{
    char out[CU_TOTP_URI_BYTES];

    (void)state;
    assert_int_equal(cu_totp_uri(rfc_seed, "ACME Co", "alice+mfa@example.com", out, sizeof out),
                     CU_OK);
    assert_string_equal(out, "otpauth://totp/ACME%20Co:alice%2Bmfa%40example.com"
                             "?secret=" RFC_SEED_B32 "&issuer=ACME%20Co"
                             "&algorithm=SHA1&digits=6&period=30");
    assert_int_equal(
        cu_totp_uri(rfc_seed, "B\xc3\xa4nk/EU", "a:b&c=d?e#f g~h_i.j-k", out, sizeof out), CU_OK);
    assert_string_equal(out, "otpauth://totp/B%C3%A4nk%2FEU:a%3Ab%26c%3Dd%3Fe%23f%20g~h_i.j-k"
                             "?secret=" RFC_SEED_B32 "&issuer=B%C3%A4nk%2FEU"
                             "&algorithm=SHA1&digits=6&period=30");
    /* Too small: nothing of the secret is left behind. */
    assert_int_equal(cu_totp_uri(rfc_seed, "ACME", "alice", out, 60), CU_E_TOO_LARGE);
    assert_string_equal(out, "");
    assert_null(memmem(out, 60, "GEZDGNBV", 8));
    assert_int_equal(cu_totp_uri(rfc_seed, "ACME", "alice", out, 1), CU_E_TOO_LARGE);
    assert_int_equal(cu_totp_uri(rfc_seed, "ACME", "alice", out, 111), CU_E_TOO_LARGE);
    assert_int_equal(cu_totp_uri(rfc_seed, "ACME", "alice", out, 112), CU_OK);
    assert_int_equal(strlen(out), 111);
}

/* redraw(svg, width, modules): parses the path of the SVG into modules (width * width, 1 for
 * dark), checking the document's shape and that every run lies inside the symbol. */
static void redraw(const char *svg, int width, unsigned char *modules)
{
    char head[200];
    const char *d;
    int size = width + 8;

    snprintf(head, sizeof head,
             "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %d %d\" "
             "shape-rendering=\"crispEdges\">",
             size, size);
    assert_true(strncmp(svg, head, strlen(head)) == 0);
    d = strstr(svg, "<path fill=\"#000\" d=\"");
    assert_non_null(d);
    assert_null(strstr(d + 1, "<path")); /* one path */
    d += strlen("<path fill=\"#000\" d=\"");
    memset(modules, 0, (size_t)width * (size_t)width);
    while (*d == 'M') {
        int x, y, run, back, used = 0;

        assert_int_equal(sscanf(d, "M%d %dh%dv1h-%dz%n", &x, &y, &run, &back, &used), 4);
        assert_true(used > 0 && run == back && run > 0);
        assert_true(x >= 4 && y >= 4 && x + run <= width + 4 && y < width + 4);
        for (int i = 0; i < run; i++) {
            unsigned char *m = &modules[(y - 4) * width + x - 4 + i];

            assert_int_equal(*m, 0);
            *m = 1;
        }
        d += used;
    }
    assert_string_equal(d, "\"/></svg>\n");
}

static void test_qr_svg(void **state)
{
    char uri[CU_TOTP_URI_BYTES];
    struct cu_buf b;
    QRcode *qr;
    unsigned char *modules;

    (void)state;
    assert_int_equal(cu_totp_uri(rfc_seed, "ACME Co", "alice@example.com", uri, sizeof uri), CU_OK);
    cu_buf_init(&b, 64 * 1024);
    assert_int_equal(cu_totp_qr_svg(uri, &b), CU_OK);
    assert_true(strncmp(cu_buf_cstr(&b), "<svg", 4) == 0);
    assert_non_null(strstr(cu_buf_cstr(&b), "<path"));
    assert_true(b.len < 16 * 1024); /* compact */

    qr = QRcode_encodeString(uri, 0, QR_ECLEVEL_M, QR_MODE_8, 1);
    assert_non_null(qr);
    modules = cu_malloc((size_t)qr->width * (size_t)qr->width);
    assert_non_null(modules);
    redraw(cu_buf_cstr(&b), qr->width, modules);
    for (int i = 0; i < qr->width * qr->width; i++) {
        assert_int_equal(modules[i], qr->data[i] & 1);
    }
    cu_free(modules);
    QRcode_free(qr);
    cu_buf_free(&b);
}

static void test_qr_svg_limits(void **state)
{
    char *big = cu_malloc(5001);
    struct cu_buf b;

    (void)state;
    /* Over the cap: the buffer keeps what it held. */
    cu_buf_init(&b, 300);
    assert_int_equal(cu_buf_append_str(&b, "before"), CU_OK);
    assert_int_equal(cu_totp_qr_svg("otpauth://totp/x:y?secret=AAAA", &b), CU_E_TOO_LARGE);
    assert_int_equal(b.len, 6);
    assert_string_equal(cu_buf_cstr(&b), "before");
    cu_buf_free(&b);
    /* Over what a QR code holds. */
    assert_non_null(big);
    memset(big, 'x', 5000);
    big[5000] = '\0';
    cu_buf_init(&b, 1024 * 1024);
    assert_int_equal(cu_totp_qr_svg(big, &b), CU_E_TOO_LARGE);
    assert_int_equal(b.len, 0);
    cu_buf_free(&b);
    cu_free(big);
}

static void test_secret_new(void **state)
{
    uint8_t a[CU_TOTP_SECRET_BYTES], b[CU_TOTP_SECRET_BYTES], zero[CU_TOTP_SECRET_BYTES] = {0};

    (void)state;
    cu_totp_secret_new(a);
    cu_totp_secret_new(b);
    assert_memory_not_equal(a, b, sizeof a);
    assert_memory_not_equal(a, zero, sizeof a);
}

static void *init_thread(void *arg)
{
    *(enum cu_err *)arg = cu_totp_init();
    return NULL;
}

static void test_init_from_threads(void **state)
{
    pthread_t th[4];
    enum cu_err rc[4];

    (void)state;
    for (int i = 0; i < 4; i++) {
        rc[i] = CU_E_INTERNAL;
        assert_int_equal(pthread_create(&th[i], NULL, init_thread, &rc[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(rc[i], CU_OK);
    }
}

/* oathtool_code(b32, t, out): the code oathtool prints for the base32 secret at time t. */
static void oathtool_code(const char *b32, long long t, char out[16])
{
    char cmd[256];
    FILE *p;
    int n;

    n = snprintf(cmd, sizeof cmd, OATHTOOL " --totp -b -N @%lld %s", t, b32);
    assert_true(n > 0 && (size_t)n < sizeof cmd);
    p = popen(cmd, "r");
    assert_non_null(p);
    assert_non_null(fgets(out, 16, p));
    assert_int_equal(pclose(p), 0);
    out[strcspn(out, "\n")] = '\0';
}

/* The real client agrees: oathtool is part of the test's dependencies, so its absence is a
 * failure, not a skip. */
static void test_matches_oathtool(void **state)
{
    const long long times[] = {0, 59, 1111111109, 1234567890, 2000000000, (long long)time(NULL)};
    uint8_t secret[CU_TOTP_SECRET_BYTES];
    char b32[CU_TOTP_BASE32_BYTES], theirs[16], ours[16];

    (void)state;
    if (access(OATHTOOL, X_OK) != 0) {
        fail_msg(OATHTOOL " is missing: install the oathtool package (scripts/deps.sh)");
    }
    for (int round = 0; round < 2; round++) {
        if (round == 0) {
            memcpy(secret, RFC_SEED, sizeof secret);
        } else {
            cu_totp_secret_new(secret);
        }
        assert_int_equal(cu_totp_base32(secret, sizeof secret, b32, sizeof b32), CU_OK);
        for (size_t i = 0; i < sizeof times / sizeof times[0]; i++) {
            int64_t step = -1;

            oathtool_code(b32, times[i], theirs);
            assert_int_equal(cu_totp_code(secret, sizeof secret, times[i], 6, ours), CU_OK);
            assert_string_equal(ours, theirs);
            assert_int_equal(cu_totp_verify(secret, sizeof secret, times[i], theirs, 6, -1, &step),
                             CU_OK);
            assert_int_equal(step, times[i] / 30);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hotp_rfc4226),
        cmocka_unit_test(test_totp_rfc6238),
        cmocka_unit_test(test_code_arguments),
        cmocka_unit_test(test_verify_window),
        cmocka_unit_test(test_verify_replay),
        cmocka_unit_test(test_verify_prefers_latest),
        cmocka_unit_test(test_verify_malformed),
        cmocka_unit_test(test_base32),
        cmocka_unit_test(test_base32_matches_liboath),
        cmocka_unit_test(test_uri),
        cmocka_unit_test(test_qr_svg),
        cmocka_unit_test(test_qr_svg_limits),
        cmocka_unit_test(test_secret_new),
        cmocka_unit_test(test_init_from_threads),
        cmocka_unit_test(test_matches_oathtool),
    };

    return cmocka_run_group_tests(tests, setup, NULL);
}
