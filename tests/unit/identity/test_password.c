/*
 * test_password.c - the password policy against John the Ripper's list as Debian packages it
 * (/usr/share/john/password.lst, package john-data) and against a small list written here for
 * exact cases: common passwords with digits and symbols around them or written twice, length
 * in code points (12..256), malformed UTF-8 and control characters, the e-mail address and its
 * local part, too few distinct characters, and loading (comments, case, duplicates, a missing
 * file, an over-long line, allocation failures).
 */
#include "cu_test.h"

#include "base/mem.h"
#include "identity/password.h"

#define JOHN_LIST "/usr/share/john/password.lst"

#define WHY_COMMON "the password is too common"
#define WHY_SHORT "the password must be at least 12 characters"
#define WHY_LONG "the password must be at most 256 characters"
#define WHY_EMAIL "the password must not contain the e-mail address"
#define WHY_LOCAL "the password must not contain the part of the e-mail address before the @"
#define WHY_UTF8 "the password must be valid UTF-8"
#define WHY_CONTROL "the password must not contain control characters"
#define WHY_VARIETY "the password must use at least 5 different characters"

struct fixture {
    char dir[256];
    char small[300];
    struct cu_password_policy *john;
    struct cu_password_policy *mini;
};

static const char mini_text[] = "#!comment: a list for tests\n"
                                "#!comment:\n"
                                "# another comment\n"
                                "\n"
                                "Monkey\n"
                                "monkey\n"
                                "dragon\r\n"
                                "DRAGON\n"
                                "qwe\n"
                                "letmein\n"
                                "trustno1"; /* no newline at the end */

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);

    assert_non_null(f);
    cu_test_tmpdir(f->dir, sizeof f->dir);
    snprintf(f->small, sizeof f->small, "%s/mini.lst", f->dir);
    cu_test_write_file(f->small, mini_text);
    assert_int_equal(cu_password_policy_new(JOHN_LIST, &f->john), CU_OK);
    assert_int_equal(cu_password_policy_new(f->small, &f->mini), CU_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    cu_password_policy_free(f->john);
    cu_password_policy_free(f->mini);
    cu_test_rmrf(f->dir);
    free(f);
    return 0;
}

/* check(p, pw, email, want, why): cu_password_check on the string pw gives want and, when
 * want_why is not NULL, that reason; the reason never holds the password. */
static void check(const struct cu_password_policy *p, const char *pw, const char *email,
                  enum cu_err want, const char *want_why)
{
    char why[CU_PASSWORD_WHY_BYTES];
    enum cu_err rc;

    memset(why, 'x', sizeof why);
    rc = cu_password_check(p, pw, strlen(pw), email, why);
    if (rc != want || (want_why != NULL && strcmp(why, want_why) != 0)) {
        fail_msg("password #%zu bytes: got %d \"%s\", want %d \"%s\"", strlen(pw), (int)rc, why,
                 (int)want, want_why ? want_why : "");
    }
    assert_true(strlen(why) < sizeof why);
    if (rc == CU_OK) {
        assert_string_equal(why, "");
    } else if (strlen(pw) >= 4) {
        assert_null(strstr(why, pw));
    }
}

static void test_john_list_loaded(void **state)
{
    struct fixture *f = *state;
    size_t n = cu_password_policy_size(f->john);

    /* 3,546 passwords in the 2011 list; a few collapse when lower-cased. */
    assert_true(n > 3000 && n <= 3546);
}

static void test_common_with_john(void **state)
{
    struct fixture *f = *state;
    const char *common[] = {
        "password1234",    "Password1234!",    "sunshine1234",
        "iloveyou12345",   "PASSWORD123456",   "!!password!!",
        "2024sunshine!!!", "passwordpassword", "iloveyouiloveyou1",
    };

    (void)state;
    for (size_t i = 0; i < sizeof common / sizeof common[0]; i++) {
        check(f->john, common[i], NULL, CU_E_INVALID, WHY_COMMON);
    }
}

static void test_good_passwords(void **state)
{
    struct fixture *f = *state;
    const char *good[] = {
        "correct horse battery staple", "v3ry-long passphrase ok", "xq7#Lm2!vB9z",
        "Tr0ub4dor&3 and more",         "sunshine-over-the-fjord",
    };

    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        check(f->john, good[i], NULL, CU_OK, NULL);
        check(f->john, good[i], "someone@example.com", CU_OK, NULL);
    }
}

static void test_common_with_small_list(void **state)
{
    struct fixture *f = *state;

    /* Monkey/monkey and dragon/DRAGON (one with CRLF) are one entry each. */
    assert_int_equal(cu_password_policy_size(f->mini), 5);
    check(f->mini, "Monkey2024!!", NULL, CU_E_INVALID, WHY_COMMON);
    check(f->mini, "2024MONKEY!!", NULL, CU_E_INVALID, WHY_COMMON);
    check(f->mini, "   dragon   ", NULL, CU_E_INVALID, WHY_COMMON);
    check(f->mini, "monkeymonkey", NULL, CU_E_INVALID, WHY_COMMON);
    check(f->mini, "DragonDragonDragon", NULL, CU_E_INVALID, WHY_COMMON);
    check(f->mini, "monkeymonkey1", NULL, CU_E_INVALID, WHY_COMMON);
    check(f->mini, "letmein12345", NULL, CU_E_INVALID, WHY_COMMON);
    check(f->mini, "trustno1trustno1", NULL, CU_E_INVALID, WHY_COMMON);
    /* Comments are not entries. */
    check(f->mini, "#!comment: a list for tests", NULL, CU_OK, NULL);
    check(f->mini, "# another comment", NULL, CU_OK, NULL);
    /* A word inside other letters is not stripped down to the entry. */
    check(f->mini, "xmonkeyx1234", NULL, CU_OK, NULL);
    check(f->mini, "monkeydragon", NULL, CU_OK, NULL);
    check(f->mini, "monkeymonkeyx", NULL, CU_OK, NULL);
    check(f->mini, "~{|}monkey{|}~", NULL, CU_E_INVALID, WHY_COMMON);
    check(f->mini, "[`^_monkey\\]`", NULL, CU_E_INVALID, WHY_COMMON);
    check(f->mini, ":;<=>?@dragon", NULL, CU_E_INVALID, WHY_COMMON);
    /* Only whole entries count, not their beginnings. */
    check(f->mini, "1234letm!!!!", NULL, CU_OK, NULL);
    check(f->mini, "1234letmeinx", NULL, CU_OK, NULL);
    /* A stripped core under 4 characters is not looked up on its own. */
    check(f->mini, "123456789qwe", NULL, CU_OK, NULL);
    check(f->mini, "12345qwe!!?#", NULL, CU_OK, NULL);
}

/* repeat(units, nunits, n): n characters taken in turn from the strings units (each one
 * character of at most 4 bytes). Caller frees with cu_free(). */
static char *repeat(const char *const *units, size_t nunits, size_t n)
{
    char *s = cu_malloc(n * 4 + 1);
    size_t len = 0;

    assert_non_null(s);
    for (size_t i = 0; i < n; i++) {
        const char *u = units[i % nunits];

        memcpy(s + len, u, strlen(u));
        len += strlen(u);
    }
    s[len] = '\0';
    return s;
}

static void test_length(void **state)
{
    static const char *const ascii[] = {"a", "b", "c", "d", "e", "f", "g"};
    static const char *const two[] = {"\xc3\xa9", "\xc3\xbc", "\xc3\x9f", "\xc3\xb8"}; /* é ü ß ø */
    static const char *const mixed[] = {"\xc3\xa9", "\xd0\xb6", "\xe4\xb8\xad", "\xe2\x82\xac",
                                        "\xf0\x9f\x94\x91"}; /* é ж 中 € 🔑 */
    static const char *const four[] = {"\xf0\x9f\x94\x91", "\xf0\x9f\x90\x8d",
                                       "\xf0\x9f\x8d\x80"}; /* 🔑 🐍 🍀 */
    struct fixture *f = *state;
    char *s;

    s = repeat(ascii, 7, 11);
    check(f->john, s, NULL, CU_E_INVALID, WHY_SHORT);
    cu_free(s);
    s = repeat(ascii, 7, 12);
    check(f->john, s, NULL, CU_OK, NULL);
    cu_free(s);
    s = repeat(ascii, 7, 256);
    check(f->john, s, NULL, CU_OK, NULL);
    cu_free(s);
    s = repeat(ascii, 7, 257);
    check(f->john, s, NULL, CU_E_TOO_LARGE, WHY_LONG);
    cu_free(s);
    /* Characters, not bytes: 11 two-byte characters are too short, 256 of them are fine. */
    s = repeat(two, 4, 11);
    check(f->john, s, NULL, CU_E_INVALID, WHY_SHORT);
    cu_free(s);
    s = repeat(mixed, 5, 12);
    check(f->john, s, NULL, CU_OK, NULL);
    cu_free(s);
    s = repeat(mixed, 5, 256);
    check(f->john, s, NULL, CU_OK, NULL);
    cu_free(s);
    s = repeat(mixed, 5, 257);
    check(f->john, s, NULL, CU_E_TOO_LARGE, WHY_LONG);
    cu_free(s);
    s = repeat(four, 3, 256); /* 1,024 bytes */
    check(f->john, s, NULL, CU_OK, NULL);
    cu_free(s);
    s = repeat(four, 3, 257);
    check(f->john, s, NULL, CU_E_TOO_LARGE, WHY_LONG);
    cu_free(s);
    /* A long input is refused before it is looked at. */
    s = repeat(ascii, 7, 100000);
    check(f->john, s, NULL, CU_E_TOO_LARGE, WHY_LONG);
    cu_free(s);
}

static void test_email(void **state)
{
    struct fixture *f = *state;
    const char *email = "Alice.Smith@Example.com";
    char why[CU_PASSWORD_WHY_BYTES];

    /* The whole address, or only the part before the @: the reason says which. */
    check(f->john, "my alice.smith@example.com pw", email, CU_E_INVALID, WHY_EMAIL);
    check(f->john, "ALICE.SMITH-is-great", email, CU_E_INVALID, WHY_LOCAL);
    check(f->john, "x-alice.smith-x", email, CU_E_INVALID, WHY_LOCAL);
    check(f->john, "alice smith rules", email, CU_OK, NULL);
    check(f->john, "ALICE.SMITH-is-great", NULL, CU_OK, NULL);
    /* The first administrator's local part, which the reason names but never spells out. */
    check(f->john, "Admin-Keyboard-Tiger-9", "admin@custodia.localhost", CU_E_INVALID, WHY_LOCAL);
    assert_int_equal(
        cu_password_check(f->john, "Admin-Keyboard-Tiger-9", 22, "admin@custodia.localhost", why),
        CU_E_INVALID);
    assert_null(strstr(why, "admin"));
    assert_null(strstr(why, "custodia"));
    /* A local part under 4 characters is allowed inside; the whole address is not. */
    check(f->john, "bob-likes-long-words", "bob@x.io", CU_OK, NULL);
    check(f->john, "xx BOB@X.IO yy zz", "bob@x.io", CU_E_INVALID, WHY_EMAIL);
    check(f->john, "long words from jean", "jean@example.org", CU_E_INVALID, WHY_LOCAL);
    /* The local part counts characters: 4 two-byte letters. */
    check(f->john, "this is mine: \xc3\xa9\xc3\xa8\xc3\xaa\xc3\xab",
          "\xc3\xa9\xc3\xa8\xc3\xaa\xc3\xab@x.io", CU_E_INVALID, WHY_LOCAL);
    /* An address longer than the password may still have its local part inside. */
    check(f->john, "carol rides a bike",
          "carol@a-very-long-domain-name-that-goes-on-and-on.example.com", CU_E_INVALID, WHY_LOCAL);
    check(f->john, "some other words", "", CU_OK, NULL);
}

static void test_bad_utf8_and_controls(void **state)
{
    struct fixture *f = *state;
    const char *bad_utf8[] = {
        "good words \xff here",     "overlong \xc0\xaf slash",     "cut at the end \xe4\xb8",
        "surrogate \xed\xa0\x80 x", "past max \xf4\x90\x80\x80 x", "lone \x80 continuation",
    };
    const char *controls[] = {"tab\tinside words", "newline\ninside it", "escape \x1b[31m red",
                              "delete \x7f inside"};
    char why[CU_PASSWORD_WHY_BYTES];

    for (size_t i = 0; i < sizeof bad_utf8 / sizeof bad_utf8[0]; i++) {
        check(f->john, bad_utf8[i], NULL, CU_E_INVALID, WHY_UTF8);
    }
    for (size_t i = 0; i < sizeof controls / sizeof controls[0]; i++) {
        check(f->john, controls[i], NULL, CU_E_INVALID, WHY_CONTROL);
    }
    /* A NUL inside the given length is a control character too. */
    assert_int_equal(cu_password_check(f->john, "nul\0inside words", 16, NULL, why), CU_E_INVALID);
    assert_string_equal(why, WHY_CONTROL);
}

static void test_distinct_characters(void **state)
{
    struct fixture *f = *state;

    check(f->mini, "aaaaaaaaaaaaaaaa", NULL, CU_E_INVALID, WHY_VARIETY);
    check(f->mini, "abababababab", NULL, CU_E_INVALID, WHY_VARIETY);
    check(f->mini, "abcdabcdabcdabcd", NULL, CU_E_INVALID, WHY_VARIETY);
    check(f->mini, "abcdeabcdeab", NULL, CU_OK, NULL);
}

static void test_why_may_be_null(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(cu_password_check(f->john, "password1234", 12, NULL, NULL), CU_E_INVALID);
    assert_int_equal(cu_password_check(f->john, "correct horse battery staple", 28, NULL, NULL),
                     CU_OK);
}

/* write_line(path, n, eol): a list of one entry of n 'z's followed by eol. */
static void write_line(const char *path, size_t n, const char *eol)
{
    char line[400];

    assert_true(n + strlen(eol) < sizeof line);
    memset(line, 'z', n);
    snprintf(line + n, sizeof line - n, "%s", eol);
    cu_test_write_file(path, line);
}

static void test_load_errors(void **state)
{
    struct fixture *f = *state;
    struct cu_password_policy *p = (struct cu_password_policy *)&p;
    char path[320];

    snprintf(path, sizeof path, "%s/missing.lst", f->dir);
    assert_int_equal(cu_password_policy_new(path, &p), CU_E_IO);
    assert_null(p);
    assert_int_equal(cu_password_policy_new(f->dir, &p), CU_E_IO); /* a directory */
    assert_null(p);

    /* 256 bytes is the longest entry; 257 is refused, with or without CR, and so is a line
     * longer than the reading buffer. */
    snprintf(path, sizeof path, "%s/edge.lst", f->dir);
    write_line(path, 256, "\r\n");
    assert_int_equal(cu_password_policy_new(path, &p), CU_OK);
    assert_int_equal(cu_password_policy_size(p), 1);
    cu_password_policy_free(p);
    write_line(path, 256, "");
    assert_int_equal(cu_password_policy_new(path, &p), CU_OK);
    cu_password_policy_free(p);
    write_line(path, 257, "\n");
    assert_int_equal(cu_password_policy_new(path, &p), CU_E_TOO_LARGE);
    assert_null(p);
    write_line(path, 257, "\r\n");
    assert_int_equal(cu_password_policy_new(path, &p), CU_E_TOO_LARGE);
    write_line(path, 300, "\n");
    assert_int_equal(cu_password_policy_new(path, &p), CU_E_TOO_LARGE);
    assert_null(p);

    /* An empty list loads and finds nothing common. */
    cu_test_write_file(path, "#!comment: nothing\n\n");
    assert_int_equal(cu_password_policy_new(path, &p), CU_OK);
    assert_int_equal(cu_password_policy_size(p), 0);
    check(p, "password1234", NULL, CU_OK, NULL);
    cu_password_policy_free(p);
    cu_password_policy_free(NULL);
}

static void test_allocation_failure(void **state)
{
    struct fixture *f = *state;
    struct cu_password_policy *p = NULL;
    enum cu_err rc = CU_E_NOMEM;
    long k;

    for (k = 1; k < 100 && rc == CU_E_NOMEM; k++) {
        cu_mem_fail_at(k);
        rc = cu_password_policy_new(f->small, &p);
        cu_mem_fail_at(0);
        if (rc == CU_E_NOMEM) {
            assert_null(p);
        }
    }
    assert_int_equal(rc, CU_OK);
    assert_true(k > 2);
    assert_int_equal(cu_password_policy_size(p), 5);
    cu_password_policy_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_john_list_loaded),
        cmocka_unit_test(test_common_with_john),
        cmocka_unit_test(test_good_passwords),
        cmocka_unit_test(test_common_with_small_list),
        cmocka_unit_test(test_length),
        cmocka_unit_test(test_email),
        cmocka_unit_test(test_bad_utf8_and_controls),
        cmocka_unit_test(test_distinct_characters),
        cmocka_unit_test(test_why_may_be_null),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_allocation_failure),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
