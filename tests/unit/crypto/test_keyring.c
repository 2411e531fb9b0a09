/*
 * test_keyring.c - the root key file: create and load, refusing to overwrite, refusing unsafe
 * permissions, precise errors for malformed files (file:line, never the key material), and
 * deterministic sub-key derivation; adding and retiring KEKs (every other key kept byte for
 * byte, mode 0600, atomic replacement surviving a crash, concurrent rotations taking turns).
 *
 * It is over 800 lines because the root key file's every refusal (format, modes, locks,
 * rotation and retirement) has a case of its own.
 */
#include "cu_test.h"

#include <stdbool.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "base/clock.h"
#include "base/mem.h"
#include "crypto/crypto.h"
#include "crypto/keyring.h"

#define TIME "2026-11-24T08:48:42.123Z"

static char dir[1024];
static char path[1200];
static char k1[CU_B64URL_LEN(CU_KEY_BYTES) + 1]; /* 32 bytes of 0x11 */
static char k2[CU_B64URL_LEN(CU_KEY_BYTES) + 1]; /* 32 bytes of 0x22 */
static char k3[CU_B64URL_LEN(CU_KEY_BYTES) + 1]; /* 32 bytes of 0x33 */
static char short_key[CU_B64URL_LEN(31) + 1];    /* 31 bytes of 0x44 */

static void encode_fill(uint8_t fill, size_t n, char *out, size_t cap)
{
    uint8_t bin[CU_KEY_BYTES];

    memset(bin, fill, n);
    assert_int_equal(cu_b64url_encode(bin, n, out, cap), CU_OK);
}

static int group_setup(void **state)
{
    (void)state;
    if (cu_crypto_init() != CU_OK) {
        return -1;
    }
    encode_fill(0x11, 32, k1, sizeof k1);
    encode_fill(0x22, 32, k2, sizeof k2);
    encode_fill(0x33, 32, k3, sizeof k3);
    encode_fill(0x44, 31, short_key, sizeof short_key);
    return 0;
}

static int setup(void **state)
{
    (void)state;
    cu_test_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/root.key", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    cu_test_rmrf(dir);
    return 0;
}

/* write_key_file(text): writes text to path with mode 0600. */
static void write_key_file(const char *text)
{
    cu_test_write_file(path, text);
    assert_int_equal(chmod(path, 0600), 0);
}

/* read_text(p, buf, cap): the contents of p. */
static void read_text(const char *p, char *buf, size_t cap)
{
    FILE *f = fopen(p, "r");
    size_t n;

    assert_non_null(f);
    n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
}

static void test_create_load_round_trip(void **state)
{
    char err[CU_KEYRING_ERR_BYTES];
    struct cu_keyring *kr = NULL;
    struct stat st;
    char text[1024];

    (void)state;
    assert_int_equal(cu_keyring_create(path, err), CU_OK);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    read_text(path, text, sizeof text);
    assert_non_null(strstr(text, "\ncustodia-keyring 1\nmaster "));
    assert_non_null(strstr(text, "\nkek 1 "));
    assert_non_null(strstr(text, "\ncurrent 1\n"));

    assert_int_equal(cu_keyring_load(path, &kr, err), CU_OK);
    assert_non_null(kr);
    assert_int_equal(cu_keyring_current_kek(kr), 1);
    assert_non_null(cu_keyring_kek(kr, 1));
    assert_int_equal(cu_secret_len(cu_keyring_kek(kr, 1)), CU_KEY_BYTES);
    assert_null(cu_keyring_kek(kr, 2));
    cu_keyring_free(kr);
    cu_keyring_free(NULL);
}

static void test_two_files_differ(void **state)
{
    char err[CU_KEYRING_ERR_BYTES];
    char other[1300];
    struct cu_keyring *a = NULL;
    struct cu_keyring *b = NULL;

    (void)state;
    snprintf(other, sizeof other, "%s/other.key", dir);
    assert_int_equal(cu_keyring_create(path, err), CU_OK);
    assert_int_equal(cu_keyring_create(other, err), CU_OK);
    assert_int_equal(cu_keyring_load(path, &a, err), CU_OK);
    assert_int_equal(cu_keyring_load(other, &b, err), CU_OK);
    assert_false(cu_crypto_memeq(cu_secret_data(cu_keyring_kek(a, 1)),
                                 cu_secret_data(cu_keyring_kek(b, 1)), CU_KEY_BYTES));
    cu_keyring_free(a);
    cu_keyring_free(b);
}

static void test_refuses_overwrite(void **state)
{
    char err[CU_KEYRING_ERR_BYTES];
    char before[1024];
    char after[1024];

    (void)state;
    assert_int_equal(cu_keyring_create(path, err), CU_OK);
    read_text(path, before, sizeof before);
    assert_int_equal(cu_keyring_create(path, err), CU_E_EXISTS);
    assert_non_null(strstr(err, path));
    read_text(path, after, sizeof after);
    assert_string_equal(before, after);
}

static void test_create_through_symlink_refused(void **state)
{
    char err[CU_KEYRING_ERR_BYTES];
    char target[1300];
    struct stat st;

    (void)state;
    snprintf(target, sizeof target, "%s/target", dir);
    assert_int_equal(symlink(target, path), 0);
    assert_int_not_equal(cu_keyring_create(path, err), CU_OK);
    assert_int_not_equal(stat(target, &st), 0); /* nothing was written through the link */
}

static void unsafe_mode(mode_t mode, const char *shown)
{
    char err[CU_KEYRING_ERR_BYTES];
    struct cu_keyring *kr = NULL;
    char text[1024];

    assert_int_equal(cu_keyring_create(path, err), CU_OK);
    assert_int_equal(chmod(path, mode), 0);
    assert_int_equal(cu_keyring_load(path, &kr, err), CU_E_PERM);
    assert_null(kr);
    assert_non_null(strstr(err, shown));
    assert_non_null(strstr(err, "chmod 600"));
    read_text(path, text, sizeof text);
    strstr(text, "master ")[7 + 12] = '\0';
    assert_null(strstr(err, strstr(text, "master ") + 7)); /* no piece of the master key */
}

static void test_mode_0640_refused(void **state)
{
    (void)state;
    unsafe_mode(0640, "mode 0640");
}

static void test_mode_0604_refused(void **state)
{
    (void)state;
    unsafe_mode(0604, "mode 0604");
}

static void test_mode_0620_refused(void **state)
{
    (void)state;
    unsafe_mode(0620, "mode 0620");
}

static void test_missing_file(void **state)
{
    char err[CU_KEYRING_ERR_BYTES];
    struct cu_keyring *kr = NULL;

    (void)state;
    assert_int_equal(cu_keyring_load(path, &kr, err), CU_E_IO);
    assert_null(kr);
    assert_non_null(strstr(err, path));
}

static void test_symlink_and_directory_refused(void **state)
{
    char err[CU_KEYRING_ERR_BYTES];
    char real[1300];
    struct cu_keyring *kr = NULL;

    (void)state;
    snprintf(real, sizeof real, "%s/real.key", dir);
    assert_int_equal(cu_keyring_create(real, err), CU_OK);
    assert_int_equal(symlink(real, path), 0);
    assert_int_equal(cu_keyring_load(path, &kr, err), CU_E_IO);
    assert_int_equal(cu_keyring_load(dir, &kr, err), CU_E_IO);
    assert_null(kr);
}

static void test_hand_written_file(void **state)
{
    char err[CU_KEYRING_ERR_BYTES];
    char text[2048];
    struct cu_keyring *kr = NULL;
    const struct cu_secret *kek;
    uint8_t want[CU_KEY_BYTES];

    (void)state;
    snprintf(text, sizeof text,
             "# a comment\n\n   # an indented comment\ncustodia-keyring 1\r\nmaster %s\n"
             "kek 1 %s %s\nkek  7\t" TIME " %s\n\ncurrent 7\n",
             k1, TIME, k2, k3);
    write_key_file(text);
    assert_int_equal(cu_keyring_load(path, &kr, err), CU_OK);
    assert_int_equal(cu_keyring_current_kek(kr), 7);
    kek = cu_keyring_kek(kr, 7);
    assert_non_null(kek);
    memset(want, 0x33, sizeof want);
    assert_memory_equal(cu_secret_data(kek), want, CU_KEY_BYTES);
    memset(want, 0x22, sizeof want);
    assert_memory_equal(cu_secret_data(cu_keyring_kek(kr, 1)), want, CU_KEY_BYTES);
    assert_null(cu_keyring_kek(kr, 2));
    cu_keyring_free(kr);
}

/* A malformed file: the text, the line the error must name, and a phrase of the message. */
struct bad_case {
    const char *name;
    char text[1600];
    unsigned line; /* 0: the message names the file without a line */
    const char *phrase;
};

static void check_bad(const struct bad_case *c)
{
    char err[CU_KEYRING_ERR_BYTES];
    char where[1300];
    struct cu_keyring *kr = NULL;

    write_key_file(c->text);
    if (c->line != 0) {
        snprintf(where, sizeof where, "%s:%u: ", path, c->line);
    } else {
        snprintf(where, sizeof where, "%s: ", path);
    }
    if (cu_keyring_load(path, &kr, err) != CU_E_CORRUPT || strstr(err, where) == NULL ||
        strstr(err, c->phrase) == NULL) {
        fail_msg("case '%s': got '%s'", c->name, err);
    }
    assert_null(kr);
    /* never a piece of any key in the message */
    assert_null(strstr(err, "ERERERER"));
    assert_null(strstr(err, "IiIiIiIi"));
    assert_null(strstr(err, "MzMzMzMz"));
    assert_null(strstr(err, "RERERERE"));
    assert_null(strstr(err, "SECRETSECRET"));
}

static void test_malformed_files(void **state)
{
    struct bad_case *cases = calloc(24, sizeof *cases);
    size_t n = 0;

    (void)state;
    assert_non_null(cases);
#define CASE(nm, ln, ph, ...)                                                                      \
    do {                                                                                           \
        cases[n].name = (nm);                                                                      \
        cases[n].line = (ln);                                                                      \
        cases[n].phrase = (ph);                                                                    \
        snprintf(cases[n].text, sizeof cases[n].text, __VA_ARGS__);                                \
        n++;                                                                                       \
    } while (0)
    CASE("bad magic", 1, "custodia-keyring 1", "custodia-keys 1\nmaster %s\n", k1);
    CASE("key before magic", 2, "custodia-keyring 1", "# c\nmaster %s\n", k1);
    CASE("format 2", 1, "format version", "custodia-keyring 2\nmaster %s\n", k1);
    CASE("second magic", 2, "second", "custodia-keyring 1\ncustodia-keyring 1\n");
    CASE("bad base64", 2, "base64url", "custodia-keyring 1\nmaster SECRETSECRET+/%s\n", k1);
    CASE("short master", 2, "32 bytes", "custodia-keyring 1\nmaster %s\n", short_key);
    CASE("long master", 2, "32 bytes", "custodia-keyring 1\nmaster %s%s\n", k1, "AAAA");
    CASE("two masters", 3, "second master", "custodia-keyring 1\nmaster %s\nmaster %s\n", k1, k2);
    CASE("short kek", 3, "32 bytes", "custodia-keyring 1\nmaster %s\nkek 1 " TIME " %s\n", k1,
         short_key);
    CASE("duplicate version", 4, "second kek",
         "custodia-keyring 1\nmaster %s\nkek 1 " TIME " %s\nkek 1 " TIME " %s\ncurrent 1\n", k1, k2,
         k3);
    CASE("current names missing version", 5, "version 2",
         "custodia-keyring 1\nmaster %s\nkek 1 " TIME " %s\n\ncurrent 2\n", k1, k2);
    CASE("unknown directive", 4, "unknown directive",
         "custodia-keyring 1\nmaster %s\nkek 1 " TIME " %s\nfrobnicate SECRETSECRET\n", k1, k2);
    CASE("key alone on a line", 3, "unknown directive", "custodia-keyring 1\nmaster %s\n%s\n", k1,
         k2);
    CASE("version 0", 3, "kek version", "custodia-keyring 1\nmaster %s\nkek 0 " TIME " %s\n", k1,
         k2);
    CASE("version too big", 3, "kek version",
         "custodia-keyring 1\nmaster %s\nkek 2147483649 " TIME " %s\n", k1, k2);
    CASE("version not a number", 3, "kek version",
         "custodia-keyring 1\nmaster %s\nkek 1x " TIME " %s\n", k1, k2);
    CASE("bad time", 3, "RFC 3339", "custodia-keyring 1\nmaster %s\nkek 1 yesterday %s\n", k1, k2);
    CASE("kek missing key", 3, "expected 'kek", "custodia-keyring 1\nmaster %s\nkek 1 " TIME "\n",
         k1);
    CASE("too many fields", 2, "too many fields", "custodia-keyring 1\nmaster %s a b c d\n", k1);
    CASE("two currents", 5, "second current",
         "custodia-keyring 1\nmaster %s\nkek 1 " TIME " %s\ncurrent 1\ncurrent 1\n", k1, k2);
    CASE("no master", 0, "no master line", "custodia-keyring 1\nkek 1 " TIME " %s\ncurrent 1\n",
         k2);
    CASE("no current", 0, "no current line", "custodia-keyring 1\nmaster %s\nkek 1 " TIME " %s\n",
         k1, k2);
    CASE("empty", 0, "custodia-keyring 1", "# nothing here\n");
    CASE("long line", 2, "longer than 512", "custodia-keyring 1\n# %0600d\n", 0);
#undef CASE
    for (size_t i = 0; i < n; i++) {
        check_bad(&cases[i]);
    }
    free(cases);
}

static void test_nul_byte_refused(void **state)
{
    char err[CU_KEYRING_ERR_BYTES];
    struct cu_keyring *kr = NULL;
    FILE *f = fopen(path, "w");

    (void)state;
    assert_non_null(f);
    fprintf(f, "custodia-keyring 1\nmaster %s", k1);
    fputc('\0', f);
    fprintf(f, "\nkek 1 " TIME " %s\ncurrent 1\n", k2);
    fclose(f);
    assert_int_equal(chmod(path, 0600), 0);
    assert_int_equal(cu_keyring_load(path, &kr, err), CU_E_CORRUPT);
    assert_non_null(strstr(err, ":2: "));
}

static void test_kek_limit(void **state)
{
    char err[CU_KEYRING_ERR_BYTES];
    struct cu_keyring *kr = NULL;
    FILE *f = fopen(path, "w");

    (void)state;
    assert_non_null(f);
    fprintf(f, "custodia-keyring 1\nmaster %s\n", k1);
    for (unsigned v = 1; v <= 1025; v++) {
        fprintf(f, "kek %u " TIME " %s\n", v, k2);
    }
    fprintf(f, "current 1\n");
    fclose(f);
    assert_int_equal(chmod(path, 0600), 0);
    assert_int_equal(cu_keyring_load(path, &kr, err), CU_E_CORRUPT);
    assert_non_null(strstr(err, ":1027: "));
    assert_non_null(strstr(err, "1024"));
}

static void load_fixed(struct cu_keyring **kr)
{
    char err[CU_KEYRING_ERR_BYTES];
    char text[1024];

    snprintf(text, sizeof text, "custodia-keyring 1\nmaster %s\nkek 1 %s %s\ncurrent 1\n", k1, TIME,
             k2);
    write_key_file(text);
    assert_int_equal(cu_keyring_load(path, kr, err), CU_OK);
}

static void test_derive(void **state)
{
    struct cu_keyring *kr = NULL;
    struct cu_keyring *again = NULL;
    struct cu_secret *a = NULL;
    struct cu_secret *b = NULL;
    struct cu_secret *c = NULL;
    struct cu_secret *d = NULL;

    (void)state;
    load_fixed(&kr);
    load_fixed(&again);
    assert_int_equal(cu_keyring_derive(kr, "apikey__", 1, &a), CU_OK);
    assert_int_equal(cu_keyring_derive(again, "apikey__", 1, &b), CU_OK);
    assert_int_equal(cu_secret_len(a), CU_KEY_BYTES);
    assert_memory_equal(cu_secret_data(a), cu_secret_data(b), CU_KEY_BYTES);
    assert_int_equal(cu_keyring_derive(kr, "blindidx", 1, &c), CU_OK);
    assert_memory_not_equal(cu_secret_data(a), cu_secret_data(c), CU_KEY_BYTES);
    assert_int_equal(cu_keyring_derive(kr, "apikey__", 2, &d), CU_OK);
    assert_memory_not_equal(cu_secret_data(a), cu_secret_data(d), CU_KEY_BYTES);
    /* the sub-key is neither the master secret nor a KEK */
    assert_memory_not_equal(cu_secret_data(a), cu_secret_data(cu_keyring_kek(kr, 1)), CU_KEY_BYTES);
    cu_secret_free(a);
    cu_secret_free(b);
    cu_secret_free(c);
    cu_secret_free(d);
    cu_keyring_free(kr);
    cu_keyring_free(again);
}

static void test_derive_purpose_length(void **state)
{
    struct cu_keyring *kr = NULL;
    struct cu_secret *s = NULL;

    (void)state;
    load_fixed(&kr);
    assert_int_equal(cu_keyring_derive(kr, "apikey", 1, &s), CU_E_INVALID);
    assert_null(s);
    assert_int_equal(cu_keyring_derive(kr, "apikey___", 1, &s), CU_E_INVALID);
    assert_int_equal(cu_keyring_derive(kr, "", 1, &s), CU_E_INVALID);
    assert_null(s);
    cu_keyring_free(kr);
}

/* Every allocation failure while loading unwinds cleanly (ASan and valgrind check the
 * leaks) and reports CU_E_NOMEM. */
static void test_load_allocation_failures(void **state)
{
    char err[CU_KEYRING_ERR_BYTES];
    struct cu_keyring *kr = NULL;
    enum cu_err rc = CU_E_NOMEM;
    long k;

    (void)state;
    load_fixed(&kr);
    cu_keyring_free(kr);
    kr = NULL;
    for (k = 1; k < 100 && rc == CU_E_NOMEM; k++) {
        cu_mem_fail_at(k);
        rc = cu_keyring_load(path, &kr, err);
        cu_mem_fail_at(0);
        if (rc == CU_E_NOMEM) {
            assert_null(kr);
        }
    }
    assert_int_equal(rc, CU_OK);
    assert_true(k > 2);
    cu_keyring_free(kr);
}

/* file_exists(p): whether anything, even a dangling symbolic link, is at p. */
static bool file_exists(const char *p)
{
    struct stat st;

    return lstat(p, &st) == 0;
}

/* temp_of(out, cap): the temporary file beside path that a rewrite uses. */
static void temp_of(char *out, size_t cap)
{
    snprintf(out, cap, "%s.tmp", path);
}

/* write_two_keks(): master 0x11.., kek 1 = 0x22.., kek 7 = 0x33.. (current), made at TIME. */
static void write_two_keks(void)
{
    char text[1024];

    snprintf(text, sizeof text,
             "custodia-keyring 1\nmaster %s\nkek 1 " TIME " %s\nkek 7 " TIME " %s\ncurrent 7\n", k1,
             k2, k3);
    write_key_file(text);
}

/* assert_fill(kr, version, fill): KEK version holds 32 bytes of fill. */
static void assert_fill(const struct cu_keyring *kr, uint32_t version, uint8_t fill)
{
    uint8_t want[CU_KEY_BYTES];

    memset(want, fill, sizeof want);
    assert_non_null(cu_keyring_kek(kr, version));
    assert_memory_equal(cu_secret_data(cu_keyring_kek(kr, version)), want, CU_KEY_BYTES);
}

static void test_add_kek_preserves_keys(void **state)
{
    char err[CU_KEYRING_ERR_BYTES];
    char text[2048];
    char line[200];
    char tmp[1300];
    struct cu_keyring *before = NULL;
    struct cu_keyring *kr = NULL;
    struct cu_secret *sub_before = NULL;
    struct cu_secret *sub_after = NULL;
    struct cu_kek_info info[4];
    uint8_t v8[CU_KEY_BYTES];
    int64_t made = 0;
    uint32_t v = 0;
    size_t n = 0;

    (void)state;
    write_two_keks();
    assert_int_equal(cu_keyring_load(path, &before, err), CU_OK);
    assert_int_equal(cu_clock_parse(TIME, &made), CU_OK);
    cu_clock_set_fake(made + 86400000);
    assert_int_equal(cu_keyring_add_kek(path, &v, err), CU_OK);
    cu_clock_use_real();
    assert_int_equal(v, 8); /* after the highest version, not after the count */
    assert_int_equal(cu_keyring_load(path, &kr, err), CU_OK);
    assert_int_equal(cu_keyring_current_kek(kr), 8);

    /* the master secret, byte for byte in the file and in what is derived from it */
    read_text(path, text, sizeof text);
    snprintf(line, sizeof line, "\nmaster %s\n", k1);
    assert_non_null(strstr(text, line));
    assert_int_equal(cu_keyring_derive(before, "apikey__", 1, &sub_before), CU_OK);
    assert_int_equal(cu_keyring_derive(kr, "apikey__", 1, &sub_after), CU_OK);
    assert_memory_equal(cu_secret_data(sub_before), cu_secret_data(sub_after), CU_KEY_BYTES);
    /* the old KEKs and their creation times */
    assert_fill(kr, 1, 0x22);
    assert_fill(kr, 7, 0x33);
    assert_int_equal(cu_keyring_kek_info(kr, info, 4, &n), CU_OK);
    assert_int_equal(n, 3);
    assert_int_equal(info[0].version, 1);
    assert_int_equal(info[0].created_ms, made);
    assert_false(info[0].current);
    assert_int_equal(info[1].version, 7);
    assert_int_equal(info[1].created_ms, made);
    assert_false(info[1].current);
    assert_int_equal(info[2].version, 8);
    assert_int_equal(info[2].created_ms, made + 86400000);
    assert_true(info[2].current);
    /* the new KEK is fresh */
    memcpy(v8, cu_secret_data(cu_keyring_kek(kr, 8)), CU_KEY_BYTES);
    assert_memory_not_equal(v8, cu_secret_data(cu_keyring_kek(kr, 7)), CU_KEY_BYTES);
    temp_of(tmp, sizeof tmp);
    assert_false(file_exists(tmp));
    cu_keyring_free(kr);
    kr = NULL;

    /* a second rotation keeps the first one's KEK too */
    assert_int_equal(cu_keyring_add_kek(path, &v, err), CU_OK);
    assert_int_equal(v, 9);
    assert_int_equal(cu_keyring_load(path, &kr, err), CU_OK);
    assert_memory_equal(cu_secret_data(cu_keyring_kek(kr, 8)), v8, CU_KEY_BYTES);
    assert_fill(kr, 1, 0x22);
    assert_int_equal(cu_keyring_current_kek(kr), 9);
    cu_crypto_wipe(v8, sizeof v8);
    cu_secret_free(sub_before);
    cu_secret_free(sub_after);
    cu_keyring_free(before);
    cu_keyring_free(kr);
}

static void test_add_kek_keeps_mode_0600(void **state)
{
    char err[CU_KEYRING_ERR_BYTES];
    struct stat st;
    mode_t old_mask;
    uint32_t v = 0;

    (void)state;
    assert_int_equal(cu_keyring_create(path, err), CU_OK);
    old_mask = umask(0277); /* would give a new file 0400 */
    assert_int_equal(cu_keyring_add_kek(path, &v, err), CU_OK);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    umask(0); /* would give 0666 if the code relied on the umask */
    assert_int_equal(cu_keyring_add_kek(path, &v, err), CU_OK);
    umask(old_mask);
    assert_int_equal(v, 3);
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(st.st_uid, geteuid());
}

/* A rewrite that crashed before its rename leaves the temporary file behind. */
static void test_leftover_temp_file(void **state)
{
    char err[CU_KEYRING_ERR_BYTES];
    char tmp[1300];
    char target[1300];
    char before[1024];
    char text[2048];
    struct cu_keyring *kr = NULL;
    uint32_t v = 0;

    (void)state;
    write_two_keks();
    read_text(path, before, sizeof before);
    temp_of(tmp, sizeof tmp);
    cu_test_write_file(tmp, "custodia-keyring 1\nmaster half-writ"); /* a torn write */
    assert_int_equal(cu_keyring_load(path, &kr, err), CU_OK);
    assert_int_equal(cu_keyring_current_kek(kr), 7);
    cu_keyring_free(kr);
    kr = NULL;
    read_text(path, text, sizeof text);
    assert_string_equal(text, before);

    /* the next rotation clears it and succeeds */
    assert_int_equal(cu_keyring_add_kek(path, &v, err), CU_OK);
    assert_false(file_exists(tmp));
    assert_int_equal(cu_keyring_load(path, &kr, err), CU_OK);
    assert_int_equal(cu_keyring_current_kek(kr), 8);
    assert_fill(kr, 7, 0x33);
    cu_keyring_free(kr);

    /* a symbolic link planted at the temporary name is removed, never written through */
    snprintf(target, sizeof target, "%s/target", dir);
    assert_int_equal(symlink(target, tmp), 0);
    assert_int_equal(cu_keyring_add_kek(path, &v, err), CU_OK);
    assert_int_equal(v, 9);
    assert_false(file_exists(target));
    assert_false(file_exists(tmp));
}

static void test_retire_kek(void **state)
{
    char err[CU_KEYRING_ERR_BYTES];
    char before[1024];
    char text[1024];
    struct cu_keyring *kr = NULL;
    struct cu_kek_info info[2];
    struct stat st;
    size_t n = 0;
    uint32_t v = 0;

    (void)state;
    write_two_keks();
    read_text(path, before, sizeof before);
    assert_int_equal(cu_keyring_retire_kek(path, 7, err), CU_E_INVALID);
    assert_non_null(strstr(err, "current"));
    assert_int_equal(cu_keyring_retire_kek(path, 2, err), CU_E_INVALID);
    assert_non_null(strstr(err, "no kek version 2"));
    assert_int_equal(cu_keyring_retire_kek(path, 0, err), CU_E_INVALID);
    read_text(path, text, sizeof text);
    assert_string_equal(text, before);

    assert_int_equal(cu_keyring_retire_kek(path, 1, err), CU_OK);
    assert_int_equal(cu_keyring_load(path, &kr, err), CU_OK);
    assert_null(cu_keyring_kek(kr, 1));
    assert_fill(kr, 7, 0x33);
    assert_int_equal(cu_keyring_kek_info(kr, info, 2, &n), CU_OK);
    assert_int_equal(n, 1);
    assert_int_equal(info[0].version, 7);
    assert_true(info[0].current);
    read_text(path, text, sizeof text);
    assert_null(strstr(text, k2)); /* the retired key is gone from the file */
    assert_non_null(strstr(text, k1));
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    cu_keyring_free(kr);
    assert_int_equal(cu_keyring_retire_kek(path, 1, err), CU_E_INVALID);

    /* the only KEK is the current one: it cannot go; after a rotation it can */
    assert_int_equal(cu_keyring_retire_kek(path, 7, err), CU_E_INVALID);
    assert_int_equal(cu_keyring_add_kek(path, &v, err), CU_OK);
    assert_int_equal(cu_keyring_retire_kek(path, 7, err), CU_OK);
}

static void test_rewrite_refuses_bad_file(void **state)
{
    char err[CU_KEYRING_ERR_BYTES];
    char before[1024];
    char text[1024];
    char tmp[1300];
    char real[1300];
    uint32_t v = 99;

    (void)state;
    temp_of(tmp, sizeof tmp);
    assert_int_equal(cu_keyring_add_kek(path, &v, err), CU_E_IO); /* missing */
    assert_int_equal(v, 0);
    assert_false(file_exists(path));

    write_two_keks();
    assert_int_equal(chmod(path, 0640), 0);
    assert_int_equal(cu_keyring_add_kek(path, &v, err), CU_E_PERM);
    assert_int_equal(cu_keyring_retire_kek(path, 1, err), CU_E_PERM);

    snprintf(before, sizeof before, "custodia-keyring 1\nmaster %s\nkek 1 " TIME " %s\n", k1, k2);
    write_key_file(before); /* no current line */
    assert_int_equal(cu_keyring_add_kek(path, &v, err), CU_E_CORRUPT);
    assert_non_null(strstr(err, "no current line"));
    read_text(path, text, sizeof text);
    assert_string_equal(text, before);
    assert_false(file_exists(tmp));

    assert_int_equal(unlink(path), 0);
    snprintf(real, sizeof real, "%s/real.key", dir);
    assert_int_equal(cu_keyring_create(real, err), CU_OK);
    assert_int_equal(symlink(real, path), 0);
    assert_int_equal(cu_keyring_add_kek(path, &v, err), CU_E_IO);
}

static void test_add_kek_limits(void **state)
{
    char err[CU_KEYRING_ERR_BYTES];
    char text[1024];
    FILE *f = fopen(path, "w");
    uint32_t v = 0;

    (void)state;
    assert_non_null(f);
    fprintf(f, "custodia-keyring 1\nmaster %s\n", k1);
    for (unsigned i = 1; i <= 1024; i++) {
        fprintf(f, "kek %u " TIME " %s\n", i, k2);
    }
    fprintf(f, "current 1\n");
    fclose(f);
    assert_int_equal(chmod(path, 0600), 0);
    assert_int_equal(cu_keyring_add_kek(path, &v, err), CU_E_TOO_LARGE);
    assert_non_null(strstr(err, "1024"));
    assert_int_equal(cu_keyring_retire_kek(path, 1024, err), CU_OK);
    assert_int_equal(cu_keyring_add_kek(path, &v, err), CU_OK);
    assert_int_equal(v, 1024);

    snprintf(text, sizeof text,
             "custodia-keyring 1\nmaster %s\nkek 2147483648 " TIME " %s\ncurrent 2147483648\n", k1,
             k2);
    write_key_file(text);
    assert_int_equal(cu_keyring_add_kek(path, &v, err), CU_E_TOO_LARGE);
}

static void test_kek_info_capacity(void **state)
{
    char err[CU_KEYRING_ERR_BYTES];
    struct cu_keyring *kr = NULL;
    struct cu_kek_info info[1] = {{.version = 77}};
    size_t n = 0;

    (void)state;
    write_two_keks();
    assert_int_equal(cu_keyring_load(path, &kr, err), CU_OK);
    assert_int_equal(cu_keyring_kek_info(kr, info, 1, &n), CU_E_TOO_LARGE);
    assert_int_equal(n, 2);
    assert_int_equal(info[0].version, 77); /* untouched */
    assert_int_equal(cu_keyring_kek_info(kr, NULL, 0, &n), CU_E_TOO_LARGE);
    assert_int_equal(n, 2);
    cu_keyring_free(kr);
}

/* Rotations running at the same time take turns: none loses another's KEK. */
static void test_concurrent_add_kek(void **state)
{
    char err[CU_KEYRING_ERR_BYTES];
    struct cu_keyring *kr = NULL;
    struct cu_kek_info info[64];
    pid_t kids[3];
    size_t n = 0;

    (void)state;
    assert_int_equal(cu_keyring_create(path, err), CU_OK);
    for (int i = 0; i < 3; i++) {
        kids[i] = fork();
        assert_true(kids[i] >= 0);
        if (kids[i] == 0) {
            int bad = 0;
            uint32_t v = 0;

            for (int j = 0; j < 10; j++) {
                bad += cu_keyring_add_kek(path, &v, err) != CU_OK;
            }
            _exit(bad);
        }
    }
    for (int i = 0; i < 3; i++) {
        int status = 0;

        assert_int_equal(waitpid(kids[i], &status, 0), kids[i]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    assert_int_equal(cu_keyring_load(path, &kr, err), CU_OK);
    assert_int_equal(cu_keyring_kek_info(kr, info, 64, &n), CU_OK);
    assert_int_equal(n, 31);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(info[i].version, i + 1);
    }
    assert_int_equal(cu_keyring_current_kek(kr), 31);
    cu_keyring_free(kr);
}

/* Every allocation failure while rewriting leaves the file as it was and no temporary file. */
static void test_rewrite_allocation_failures(void **state)
{
    char err[CU_KEYRING_ERR_BYTES];
    char before[1024];
    char text[1024];
    char tmp[1300];
    enum cu_err rc = CU_E_NOMEM;
    uint32_t v = 0;
    long k;

    (void)state;
    write_two_keks();
    read_text(path, before, sizeof before);
    temp_of(tmp, sizeof tmp);
    for (k = 1; k < 200 && rc == CU_E_NOMEM; k++) {
        cu_mem_fail_at(k);
        rc = cu_keyring_add_kek(path, &v, err);
        cu_mem_fail_at(0);
        if (rc == CU_E_NOMEM) {
            read_text(path, text, sizeof text);
            assert_string_equal(text, before);
            assert_false(file_exists(tmp));
        }
    }
    assert_int_equal(rc, CU_OK);
    assert_true(k > 10);
    assert_int_equal(v, 8);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_load_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_files_differ, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_overwrite, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_through_symlink_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mode_0640_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mode_0604_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mode_0620_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_symlink_and_directory_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hand_written_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nul_byte_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kek_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_derive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_derive_purpose_length, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_allocation_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_add_kek_preserves_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_add_kek_keeps_mode_0600, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leftover_temp_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retire_kek, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rewrite_refuses_bad_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_add_kek_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kek_info_capacity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_add_kek, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rewrite_allocation_failures, setup, teardown),
    };

    return cmocka_run_group_tests(tests, group_setup, NULL);
}
