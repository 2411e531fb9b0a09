/*
 * test_json.c - strict parsing (duplicates, trailing data, non-objects), field getters and
 * their messages, and the escaper: output always parses back as JSON, with invalid UTF-8
 * replaced by U+FFFD and valid UTF-8 kept; members written directly into a buffer.
 */
#include "cu_test.h"

#include "base/buf.h"
#include "base/json.h"
#include "base/mem.h"

#define FFFD "\xef\xbf\xbd"

static int teardown(void **state)
{
    cu_mem_fail_at(0);
    return 0;
}

static json_t *parse_ok(const char *text)
{
    char err[CU_JSON_ERR_BYTES];
    json_t *v = NULL;

    assert_int_equal(cu_json_parse_object(text, strlen(text), &v, err), CU_OK);
    assert_non_null(v);
    return v;
}

static void test_parse_object(void **state)
{
    json_t *v = parse_ok("{\"a\": 1, \"b\": \"x\"}");

    assert_int_equal(json_integer_value(json_object_get(v, "a")), 1);
    json_decref(v);
}

static void test_parse_refusals(void **state)
{
    static const struct {
        const char *text;
        const char *msg;
    } cases[] = {
        {"{\"a\": 1, \"a\": 2}", "invalid JSON at line 1 column "},
        {"{\"a\": 1}\n{}", "invalid JSON at line 2 column "},
        {"[1, 2]", "invalid JSON at line 1 column 1: the top level must be an object"},
        {"\"str\"", "invalid JSON at line 1 column "},
        {"", "invalid JSON at line 1 column "},
        {"{\"a\": \"x\\u0000y\"}", "invalid JSON at line 1 column "},
        {"{\"a\":\n  tru}", "invalid JSON at line 2 column "},
    };
    char err[CU_JSON_ERR_BYTES];
    json_t *v;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        v = (json_t *)1;
        err[0] = '\0';
        assert_int_equal(cu_json_parse_object(cases[i].text, strlen(cases[i].text), &v, err),
                         CU_E_INVALID);
        assert_null(v);
        if (strncmp(err, cases[i].msg, strlen(cases[i].msg)) != 0) {
            fail_msg("case %zu: \"%s\"", i, err);
        }
    }
    /* the message carries jansson's reason */
    assert_int_equal(cu_json_parse_object("{\"a\":1,\"a\":2}", 13, &v, err), CU_E_INVALID);
    assert_non_null(strstr(err, "duplicate"));
    /* only len bytes are read */
    v = NULL;
    assert_int_equal(cu_json_parse_object("{}garbage", 2, &v, err), CU_OK);
    json_decref(v);
}

static void test_only_keys(void **state)
{
    static const char *const allowed[] = {"name", "email"};
    json_t *v = parse_ok("{\"name\": \"a\", \"email\": \"b\"}");
    json_t *w = parse_ok("{\"name\": \"a\", \"role\": \"admin\"}");
    const char *bad = "x";

    assert_int_equal(cu_json_only_keys(v, allowed, 2, &bad), CU_OK);
    assert_null(bad);
    assert_int_equal(cu_json_only_keys(w, allowed, 2, &bad), CU_E_INVALID);
    assert_string_equal(bad, "role");
    json_decref(v);
    json_decref(w);
}

static void test_get_string(void **state)
{
    json_t *v = parse_ok("{\"name\": \"alice\", \"n\": 5, \"empty\": \"\","
                         "\"long\": \"abcdefghij\"}");
    char err[CU_JSON_ERR_BYTES];
    const char *s = "x";

    assert_int_equal(cu_json_get_string(v, "name", true, 64, &s, err), CU_OK);
    assert_string_equal(s, "alice");
    assert_int_equal(cu_json_get_string(v, "absent", false, 64, &s, err), CU_OK);
    assert_null(s);
    assert_int_equal(cu_json_get_string(v, "absent", true, 64, &s, err), CU_E_INVALID);
    assert_string_equal(err, "field 'absent' is required");
    assert_int_equal(cu_json_get_string(v, "n", true, 64, &s, err), CU_E_INVALID);
    assert_string_equal(err, "field 'n' must be a string of at most 64 bytes");
    assert_int_equal(cu_json_get_string(v, "empty", false, 64, &s, err), CU_E_INVALID);
    assert_string_equal(err, "field 'empty' must not be empty");
    assert_int_equal(cu_json_get_string(v, "long", true, 9, &s, err), CU_E_TOO_LARGE);
    assert_string_equal(err, "field 'long' must be a string of at most 9 bytes");
    assert_int_equal(cu_json_get_string(v, "long", true, 10, &s, err), CU_OK);
    json_decref(v);
    /* jansson refuses \u0000 while parsing, so a NUL can only come from code */
    v = json_pack("{s:s#}", "nul", "a\0b", (size_t)3);
    assert_non_null(v);
    assert_int_equal(cu_json_get_string(v, "nul", true, 64, &s, err), CU_E_INVALID);
    assert_string_equal(err, "field 'nul' must not contain a NUL character");
    json_decref(v);
}

static void test_get_int(void **state)
{
    json_t *v = parse_ok("{\"a\": 42, \"big\": 9223372036854775807, \"f\": 1.0, \"s\": \"1\"}");
    char err[CU_JSON_ERR_BYTES];
    int64_t i = 7;

    assert_int_equal(cu_json_get_int(v, "a", true, 0, 100, &i, err), CU_OK);
    assert_int_equal(i, 42);
    assert_int_equal(cu_json_get_int(v, "big", true, 0, INT64_MAX, &i, err), CU_OK);
    assert_true(i == INT64_MAX);
    i = 7;
    assert_int_equal(cu_json_get_int(v, "absent", false, 0, 100, &i, err), CU_OK);
    assert_int_equal(i, 7);
    assert_int_equal(cu_json_get_int(v, "absent", true, 0, 100, &i, err), CU_E_INVALID);
    assert_string_equal(err, "field 'absent' is required");
    assert_int_equal(cu_json_get_int(v, "a", true, 0, 41, &i, err), CU_E_INVALID);
    assert_string_equal(err, "field 'a' must be an integer from 0 to 41");
    assert_int_equal(cu_json_get_int(v, "a", true, 43, 50, &i, err), CU_E_INVALID);
    assert_int_equal(cu_json_get_int(v, "f", true, 0, 100, &i, err), CU_E_INVALID);
    assert_string_equal(err, "field 'f' must be an integer from 0 to 100");
    assert_int_equal(cu_json_get_int(v, "s", true, 0, 100, &i, err), CU_E_INVALID);
    assert_int_equal(i, 7);
    json_decref(v);
}

static void test_get_bool(void **state)
{
    json_t *v = parse_ok("{\"t\": true, \"f\": false, \"n\": 1, \"z\": null}");
    char err[CU_JSON_ERR_BYTES];
    bool b = false;

    assert_int_equal(cu_json_get_bool(v, "t", true, &b, err), CU_OK);
    assert_true(b);
    assert_int_equal(cu_json_get_bool(v, "f", true, &b, err), CU_OK);
    assert_false(b);
    b = true;
    assert_int_equal(cu_json_get_bool(v, "absent", false, &b, err), CU_OK);
    assert_true(b);
    assert_int_equal(cu_json_get_bool(v, "absent", true, &b, err), CU_E_INVALID);
    assert_int_equal(cu_json_get_bool(v, "n", true, &b, err), CU_E_INVALID);
    assert_string_equal(err, "field 'n' must be true or false");
    assert_int_equal(cu_json_get_bool(v, "z", false, &b, err), CU_E_INVALID);
    json_decref(v);
}

static void test_dump(void **state)
{
    json_t *v = parse_ok("{\"a\": [1, 2], \"b\": \"x\"}");
    json_t *s = json_string("plain");
    char *text = cu_json_dump(v);

    assert_string_equal(text, "{\"a\":[1,2],\"b\":\"x\"}");
    free(text);
    text = cu_json_dump(s);
    assert_string_equal(text, "\"plain\"");
    free(text);
    json_decref(v);
    json_decref(s);
}

/* escaped(s, n, out): cu_json_escape of n bytes at s, parsed back by jansson; checks the
 * literal is valid JSON and returns the decoded string in out (caller frees with cu_free). */
static char *escaped(const char *s, size_t n)
{
    struct cu_buf b;
    json_error_t jerr;
    json_t *v;
    char *out;

    cu_buf_init(&b, 1 << 16);
    assert_int_equal(cu_json_escape(&b, s, n), CU_OK);
    v = json_loadb(b.data, b.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (v == NULL) {
        fail_msg("not JSON: %s (%s)", cu_buf_cstr(&b), jerr.text);
    }
    assert_true(json_is_string(v));
    out = cu_strndup(json_string_value(v), json_string_length(v));
    assert_int_equal(strlen(out), json_string_length(v));
    json_decref(v);
    cu_buf_free(&b);
    return out;
}

static void expect_escape(const char *in, size_t n, const char *want)
{
    char *got = escaped(in, n);

    assert_string_equal(got, want);
    cu_free(got);
}

static void test_escape_literal_form(void **state)
{
    struct cu_buf b;

    cu_buf_init(&b, 100);
    assert_int_equal(cu_json_escape(&b, "a\"b\\c\n\t\x01\x7f", 9), CU_OK);
    assert_string_equal(cu_buf_cstr(&b), "\"a\\\"b\\\\c\\n\\t\\u0001\\u007f\"");
    cu_buf_reset(&b);
    assert_int_equal(cu_json_escape(&b, "", 0), CU_OK);
    assert_string_equal(cu_buf_cstr(&b), "\"\"");
    cu_buf_free(&b);
}

static void test_escape_utf8(void **state)
{
    expect_escape("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x91", 14,
                  "caf\xc3\xa9 \xe2\x82\xac "
                  "\xf0\x9f\x94\x91");
    expect_escape("a\xff"
                  "b",
                  3, "a" FFFD "b");
    expect_escape("\xc0\xaf", 2, FFFD FFFD);                   /* overlong '/' */
    expect_escape("\xe0\x80\xaf", 3, FFFD FFFD FFFD);          /* overlong 3-byte */
    expect_escape("\xed\xa0\x80", 3, FFFD FFFD FFFD);          /* UTF-16 surrogate */
    expect_escape("\xf4\x90\x80\x80", 4, FFFD FFFD FFFD FFFD); /* past U+10FFFF */
    expect_escape("ok\xe2\x82", 4, "ok" FFFD FFFD);            /* cut short at the end */
    expect_escape("\x80", 1, FFFD);                            /* lone continuation */
    expect_escape("\xf4\x8f\xbf\xbf", 4, "\xf4\x8f\xbf\xbf");  /* U+10FFFF itself is valid */
}

/* Every single byte and every pair of bytes escapes to valid JSON. */
static void test_escape_all_byte_pairs(void **state)
{
    struct cu_buf b;
    json_error_t jerr;

    cu_buf_init(&b, 64);
    for (int x = 0; x < 256; x++) {
        for (int y = 0; y < 256; y++) {
            char in[2] = {(char)x, (char)y};
            json_t *v;

            cu_buf_reset(&b);
            assert_int_equal(cu_json_escape(&b, in, 2), CU_OK);
            v = json_loadb(b.data, b.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
            if (v == NULL) {
                fail_msg("bytes %02x %02x gave %s", x, y, cu_buf_cstr(&b));
            }
            json_decref(v);
        }
    }
    cu_buf_free(&b);
}

static void test_escape_errors_leave_buffer(void **state)
{
    struct cu_buf b;
    char big[600];
    enum cu_err rc = CU_E_NOMEM;

    memset(big, '\n', sizeof big);
    cu_buf_init(&b, 100);
    assert_int_equal(cu_buf_append_str(&b, "x="), CU_OK);
    assert_int_equal(cu_json_escape(&b, big, sizeof big), CU_E_TOO_LARGE);
    assert_string_equal(cu_buf_cstr(&b), "x=");
    cu_buf_free(&b);
    for (long n = 1; rc == CU_E_NOMEM; n++) {
        cu_buf_init(&b, 1 << 16);
        cu_mem_fail_at(n);
        rc = cu_json_escape(&b, big, sizeof big);
        cu_mem_fail_at(0);
        assert_true(rc == CU_OK || (rc == CU_E_NOMEM && b.len == 0));
        cu_buf_free(&b);
    }
}

/* Members written directly: the first without a comma, strings escaped, times in RFC 3339;
 * past the cap the buffer stays as it was. */
static void test_put_members(void **state)
{
    struct cu_buf b;

    cu_buf_init(&b, 1 << 10);
    assert_int_equal(cu_buf_append_str(&b, "{"), CU_OK);
    assert_int_equal(cu_json_put_key(&b, "id", true), CU_OK);
    assert_int_equal(cu_buf_append_str(&b, "1"), CU_OK);
    assert_int_equal(cu_json_put_string(&b, "name", "Zo\xc3\xab \"Z\""), CU_OK);
    assert_int_equal(cu_json_put_time(&b, "at", 1767225600123LL), CU_OK);
    assert_int_equal(cu_buf_append_str(&b, "}"), CU_OK);
    assert_string_equal(
        cu_buf_cstr(&b),
        "{\"id\":1,\"name\":\"Zo\xc3\xab \\\"Z\\\"\",\"at\":\"2026-01-01T00:00:00.123Z\"}");
    cu_buf_free(&b);
    cu_buf_init(&b, 14);
    assert_int_equal(cu_buf_append_str(&b, "{"), CU_OK);
    assert_int_equal(cu_json_put_string(&b, "name", "long enough"), CU_E_TOO_LARGE);
    assert_string_equal(cu_buf_cstr(&b), "{");
    assert_int_equal(cu_json_put_time(&b, "at", 0), CU_E_TOO_LARGE);
    assert_int_equal(cu_json_put_key(&b, "a_long_key_too", false), CU_E_TOO_LARGE);
    assert_string_equal(cu_buf_cstr(&b), "{");
    cu_buf_free(&b);
}

static void test_escape_chars_stops_at_whole_characters(void **state)
{
    char out[8];
    size_t used;

    /* "\n" needs 2 bytes; with 3 bytes of room only "a" and "\n" fit, not the next "\n" */
    assert_int_equal(cu_json_escape_chars(out, 3, "a\n\n", 3, &used), 3);
    assert_int_equal(used, 2);
    assert_memory_equal(out, "a\\n", 3);
    /* a 4-byte character does not fit in 3 bytes */
    assert_int_equal(cu_json_escape_chars(out, 3, "\xf0\x9f\x94\x91", 4, &used), 0);
    assert_int_equal(used, 0);
    assert_int_equal(cu_json_escape_chars(out, 8, "abc", 3, &used), 3);
    assert_int_equal(used, 3);
    /* a run of plain characters stops at the room left, then at an escape */
    assert_int_equal(cu_json_escape_chars(out, 4, "abcdef", 6, &used), 4);
    assert_int_equal(used, 4);
    assert_memory_equal(out, "abcd", 4);
    /* ab \" c \\ take 7 bytes; DEL needs 6 more (\u007f), which do not fit */
    assert_int_equal(cu_json_escape_chars(out, 8, "ab\"c\\\x7f", 6, &used), 7);
    assert_int_equal(used, 5);
    assert_memory_equal(out, "ab\\\"c\\\\", 7);
}

/* The escaper against jansson's reading of the result, over every single byte and pair. */
static void test_escape_round_trips_through_jansson(void **state)
{
    for (unsigned a = 1; a < 256; a++) {
        for (unsigned b = 0; b < 256; b += 17) {
            char in[3] = {(char)a, (char)b, 0}, text[64];
            size_t n = b ? 2 : 1, used = 0;
            size_t k = cu_json_escape_chars(text + 1, sizeof(text) - 3, in, n, &used);
            text[0] = '"';
            text[k + 1] = '"';
            text[k + 2] = '\0';
            assert_int_equal(used, n);
            json_error_t jerr;
            json_t *v = json_loads(text, JSON_DECODE_ANY, &jerr);
            assert_non_null(v);
            if (cu_utf8_valid(in, n))
                assert_memory_equal(json_string_value(v), in, n);
            json_decref(v);
        }
    }
}

/* The canonical form equals jansson's compact, key-sorted dump for values both write alike
 * (the audit log's earlier records were made by jansson). */
static void test_canonical_matches_jansson(void **state)
{
    static const char *const docs[] = {
        "{}",
        "{\"b\": 1, \"a\": [true, false, null], \"ab\": \"x\", \"\": {}}",
        "{\"revealed\": [\"given_name\", \"email\", \"phone\"], \"n\": -9223372036854775808}",
        "{\"z\": {\"y\": {\"x\": [1, [2, [3]]]}}, \"\u00e9\": \"\u00fc\\n\\t\\\"\\\\\"}",
        "{\"big\": 9223372036854775807, \"zero\": 0, \"neg\": -1}",
        "{\"B\": 1, \"a\": 2, \"_\": 3, \"0\": 4}",
    };
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        json_error_t jerr;
        json_t *v = json_loads(docs[i], 0, &jerr);
        assert_non_null(v);
        char *want = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
        struct cu_buf b;
        cu_buf_init(&b, 4096);
        assert_int_equal(cu_json_canonical(v, &b), CU_OK);
        assert_string_equal(cu_buf_cstr(&b), want);
        free(want);
        cu_buf_free(&b);
        json_decref(v);
    }
    /* Where the two differ: control characters in lower-case hex, and DEL escaped. */
    json_t *ctl = json_pack("{s:s}", "c", "\x01\x1f\x7f");
    struct cu_buf b;
    cu_buf_init(&b, 4096);
    assert_int_equal(cu_json_canonical(ctl, &b), CU_OK);
    assert_string_equal(cu_buf_cstr(&b), "{\"c\":\"\\u0001\\u001f\\u007f\"}");
    cu_buf_free(&b);
    json_decref(ctl);
}

static void test_canonical_limits(void **state)
{
    struct cu_buf b;
    json_t *deep = json_array(), *at = deep;
    for (int i = 0; i < 40; i++) {
        json_t *next = json_array();
        json_array_append_new(at, next);
        at = next;
    }
    cu_buf_init(&b, 4096);
    assert_int_equal(cu_buf_append_str(&b, "x"), CU_OK);
    assert_int_equal(cu_json_canonical(deep, &b), CU_E_INVALID);
    assert_string_equal(cu_buf_cstr(&b), "x"); /* unchanged on error */
    json_decref(deep);

    json_t *wide = json_object();
    char key[16];
    for (int i = 40; i > 0; i--) { /* more keys than fit the sort's stack array */
        snprintf(key, sizeof(key), "k%02d", i);
        json_object_set_new(wide, key, json_integer(i));
    }
    cu_buf_reset(&b);
    assert_int_equal(cu_json_canonical(wide, &b), CU_OK);
    static const char head[] = "{\"k01\":1,\"k02\":2,";
    assert_int_equal(strncmp(cu_buf_cstr(&b), head, sizeof(head) - 1), 0);
    struct cu_buf small;
    cu_buf_init(&small, 20);
    assert_int_equal(cu_json_canonical(wide, &small), CU_E_TOO_LARGE);
    assert_int_equal(small.len, 0);
    cu_buf_free(&small);
    json_decref(wide);
    cu_buf_free(&b);
}

/* A refusal gives the reason and the position, never a piece of the input (jansson's "near"
 * text would quote it). */
static void test_parse_error_quotes_no_input(void **state)
{
    static const char *const bad[] = {
        "{\"given_name\": \"Jorunn\tQuill\"}", /* a raw tab inside a string */
        "{\"national_id\": Jorunn}",           /* a bare word */
        "{\"email\": \"jorunn@example.com\"} trailing",
        "{\"family_name\": \"\\udc00Jorunn\"}", /* a lone low surrogate */
    };
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *v = NULL;
        char err[CU_JSON_ERR_BYTES];
        assert_int_equal(cu_json_parse_object(bad[i], strlen(bad[i]), &v, err), CU_E_INVALID);
        assert_non_null(strstr(err, "line 1 column"));
        assert_null(strstr(err, "Jorunn"));
        assert_null(strstr(err, "trailing"));
        assert_null(strstr(err, " near "));
        assert_null(strstr(err, "dc00"));
    }
}

/* After cu_json_setup, jansson allocates with malloc and frees through the wiping release. */
static void test_setup_wipes_on_free(void **state)
{
    json_malloc_t m = NULL;
    json_free_t f = NULL;

    (void)state;
    cu_json_setup();
    json_get_alloc_funcs(&m, &f);
    assert_non_null(m);
    assert_non_null(f);
    assert_true(f != free);
    json_t *v = NULL;
    char err[CU_JSON_ERR_BYTES];
    assert_int_equal(cu_json_parse_object("{\"email\": \"jane@example.com\"}", 29, &v, err), CU_OK);
    assert_string_equal(json_string_value(json_object_get(v, "email")), "jane@example.com");
    json_decref(v); /* through f: valgrind and ASan check the blocks are freed once */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_parse_object, teardown),
        cmocka_unit_test_teardown(test_setup_wipes_on_free, teardown),
        cmocka_unit_test_teardown(test_parse_error_quotes_no_input, teardown),
        cmocka_unit_test_teardown(test_parse_refusals, teardown),
        cmocka_unit_test_teardown(test_only_keys, teardown),
        cmocka_unit_test_teardown(test_get_string, teardown),
        cmocka_unit_test_teardown(test_get_int, teardown),
        cmocka_unit_test_teardown(test_get_bool, teardown),
        cmocka_unit_test_teardown(test_dump, teardown),
        cmocka_unit_test_teardown(test_escape_literal_form, teardown),
        cmocka_unit_test_teardown(test_escape_utf8, teardown),
        cmocka_unit_test_teardown(test_escape_all_byte_pairs, teardown),
        cmocka_unit_test_teardown(test_escape_errors_leave_buffer, teardown),
        cmocka_unit_test_teardown(test_put_members, teardown),
        cmocka_unit_test_teardown(test_escape_chars_stops_at_whole_characters, teardown),
        cmocka_unit_test_teardown(test_escape_round_trips_through_jansson, teardown),
        cmocka_unit_test_teardown(test_canonical_matches_jansson, teardown),
        cmocka_unit_test_teardown(test_canonical_limits, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
