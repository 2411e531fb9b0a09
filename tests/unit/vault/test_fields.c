/*
 * test_fields.c - the customer record's fields: the table, every field's normaliser round
 * trips (non-ASCII names included), every rule's rejection with its reason, size limits at
 * the boundary, idempotence, calendar dates against a faked clock, the display masks, and a
 * fuzz-like loop that feeds random bytes to every field.
 *
 * It is over 800 lines because it is table-driven: every field's normaliser, validator and
 * mask has its valid and invalid inputs listed here.
 */
#include "cu_test.h"

#include <stdbool.h>

#include "base/clock.h"
#include "vault/fields.h"

#define OUT_BYTES 512

/* The reasons, as the API will show them after the field's name. */
#define WHY_EMPTY "must not be empty"
#define WHY_UTF8 "must be valid UTF-8"
#define WHY_CONTROL "must not contain control characters or line breaks"
#define WHY_IDN                                                                                    \
    "must be an ASCII e-mail address: internationalised (non-ASCII) addresses are not "            \
    "supported yet"
#define WHY_EMAIL "must be an e-mail address (local@domain)"
#define WHY_LOCAL                                                                                  \
    "the part before @ must be 1 to 64 of a-z, 0-9 and !#$%&'*+-/=?^_`{|}~, with single dots "     \
    "between them"
#define WHY_DOMAIN                                                                                 \
    "the part after @ must be a domain name: labels of a-z, 0-9 and - joined by dots, ending in "  \
    "a letters-only top-level domain"
#define WHY_PHONE "must be an E.164 phone number: + and 8 to 15 digits, the first not 0"
#define WHY_DATE_SHAPE "must be a date written YYYY-MM-DD"
#define WHY_DATE_REAL "must be a real calendar date"
#define WHY_DATE_1900 "must be on or after 1900-01-01"
#define WHY_DATE_FUTURE "must not be in the future"
#define WHY_COUNTRY "must be an ISO 3166-1 alpha-2 country code: two letters, e.g. GB"
#define WHY_COUNTRY_UNASSIGNED "must be an assigned ISO 3166-1 alpha-2 country code"
#define WHY_LANGUAGE                                                                               \
    "must be a language tag: 2-3 letter language, optional 4-letter script and 2-letter or "       \
    "3-digit region (en, en-GB, zh-Hant-TW)"
#define WHY_REF "must be 1 to 64 of A-Z, a-z, 0-9, '.', '_', ':' and '-'"
#define WHY_NATIONAL_ID "must be 4 to 32 letters A-Z and digits (spaces and dashes are ignored)"

static int teardown(void **state)
{
    cu_clock_use_real();
    return 0;
}

static const struct cu_field_def *field(const char *name)
{
    const struct cu_field_def *f = cu_field_find(name);

    assert_non_null(f);
    return f;
}

/* valid_utf8(s, n): an independent check, straight from Unicode's table of well-formed
 * byte sequences (Table 3-7). */
static bool valid_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        unsigned char c = s[i], lo = 0x80, hi = 0xBF;
        size_t k;

        if (c <= 0x7F) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            k = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            k = 2;
            lo = c == 0xE0 ? 0xA0 : 0x80;
            hi = c == 0xED ? 0x9F : 0xBF;
        } else if (c >= 0xF0 && c <= 0xF4) {
            k = 3;
            lo = c == 0xF0 ? 0x90 : 0x80;
            hi = c == 0xF4 ? 0x8F : 0xBF;
        } else {
            return false;
        }
        if (i + k >= n || s[i + 1] < lo || s[i + 1] > hi) {
            return false;
        }
        for (size_t j = 2; j <= k; j++) {
            if ((s[i + j] & 0xC0) != 0x80) {
                return false;
            }
        }
        i += k + 1;
    }
    return true;
}

/* normalize(f, in, len, out, n, why): cu_field_normalize with an OUT_BYTES buffer. */
static enum cu_err normalize(const struct cu_field_def *f, const char *in, size_t len, char *out,
                             size_t *n, char *why)
{
    return cu_field_normalize(f, in, len, out, OUT_BYTES, n, why);
}

/* accepts(name, in, want): in normalises to want, and want normalises to itself. */
static void accepts(const char *name, const char *in, const char *want)
{
    char out[OUT_BYTES], again[OUT_BYTES], why[CU_FIELD_WHY_BYTES];
    size_t n, n2;
    enum cu_err rc = normalize(field(name), in, strlen(in), out, &n, why);

    if (rc != CU_OK) {
        fail_msg("%s: \"%s\" refused: %s (%s)", name, in, cu_err_str(rc), why);
    }
    assert_string_equal(out, want);
    assert_int_equal(n, strlen(want));
    assert_string_equal(why, "");
    assert_int_equal(normalize(field(name), out, n, again, &n2, why), CU_OK);
    assert_string_equal(again, out);
    assert_int_equal(n2, n);
}

/* rejects_len(name, in, len, rc, reason): the len bytes at in are refused with rc and reason,
 * and nothing of them is left in the output buffer. */
static void rejects_len(const char *name, const char *in, size_t len, enum cu_err want,
                        const char *reason)
{
    char out[OUT_BYTES], why[CU_FIELD_WHY_BYTES];
    size_t n = 99;
    enum cu_err rc;

    memset(out, 'x', sizeof out);
    rc = normalize(field(name), in, len, out, &n, why);
    if (rc != want) {
        fail_msg("%s: \"%.*s\" gave %s, want %s (%s)", name, (int)len, in, cu_err_str(rc),
                 cu_err_str(want), why);
    }
    assert_string_equal(why, reason);
    assert_int_equal(n, 0);
    assert_string_equal(out, "");
}

static void rejects(const char *name, const char *in, const char *reason)
{
    rejects_len(name, in, strlen(in), CU_E_INVALID, reason);
}

/* repeat(buf, c, n): n copies of c, NUL-terminated; returns buf. */
static char *repeat(char *buf, char c, size_t n)
{
    memset(buf, c, n);
    buf[n] = '\0';
    return buf;
}

static void fake_today(const char *rfc3339)
{
    int64_t ms;

    assert_int_equal(cu_clock_parse(rfc3339, &ms), CU_OK);
    cu_clock_set_fake(ms);
}

/* ---- the table ------------------------------------------------------------------------- */

static void test_table_matches_schema(void **state)
{
    static const struct cu_field_def want[] = {
        {"given_name", CU_FT_TEXT, true, false, false, 100, CU_MASK_INITIAL},
        {"family_name", CU_FT_TEXT, true, false, false, 100, CU_MASK_INITIAL},
        {"email", CU_FT_EMAIL, true, true, true, 254, CU_MASK_EMAIL},
        {"phone", CU_FT_PHONE, true, true, false, 16, CU_MASK_PHONE},
        {"birth_date", CU_FT_DATE, true, false, false, 10, CU_MASK_YEAR},
        {"national_id", CU_FT_NATIONAL_ID, true, true, false, 32, CU_MASK_LAST4},
        {"address_line1", CU_FT_TEXT, true, false, false, 200, CU_MASK_HIDDEN},
        {"address_line2", CU_FT_TEXT, true, false, false, 200, CU_MASK_HIDDEN},
        {"city", CU_FT_TEXT, true, false, false, 100, CU_MASK_HIDDEN},
        {"postal_code", CU_FT_TEXT, true, false, false, 20, CU_MASK_HIDDEN},
        {"region", CU_FT_TEXT, true, false, false, 100, CU_MASK_HIDDEN},
        {"country", CU_FT_COUNTRY, false, false, false, 2, CU_MASK_NONE},
        {"language", CU_FT_LANGUAGE, false, false, false, 35, CU_MASK_NONE},
        {"external_ref", CU_FT_REF, true, true, true, 64, CU_MASK_NONE},
    };
    size_t n = 0;
    const struct cu_field_def *fs = cu_fields(&n);

    assert_int_equal(n, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(fs[i].name, want[i].name);
        assert_true(strlen(fs[i].name) < CU_FIELD_NAME_MAX);
        assert_int_equal(fs[i].type, want[i].type);
        assert_int_equal(fs[i].personal, want[i].personal);
        assert_int_equal(fs[i].blind_index, want[i].blind_index);
        assert_int_equal(fs[i].unique, want[i].unique);
        assert_int_equal(fs[i].max_bytes, want[i].max_bytes);
        assert_int_equal(fs[i].mask, want[i].mask);
        assert_ptr_equal(cu_field_find(want[i].name), &fs[i]);
    }
}

static void test_unknown_fields_not_found(void **state)
{
    assert_null(cu_field_find("nickname"));
    assert_null(cu_field_find(""));
    assert_null(cu_field_find("Email")); /* names are exact */
    assert_null(cu_field_find("email "));
    assert_null(cu_field_find("status")); /* not a normalised field */
    assert_null(cu_field_find(NULL));
}

/* ---- TEXT ------------------------------------------------------------------------------ */

static void test_text_round_trips(void **state)
{
    accepts("given_name", "Jane", "Jane");
    accepts("given_name", "  \xC3\x9cmit\t", "\xC3\x9cmit"); /* Ümit */
    accepts("given_name", "\xC2\xA0Zo\xC3\xAB\xC2\xA0 \r\n", "Zo\xC3\xAB");
    accepts("given_name",
            "Jos\xC3\xA9 Mar\xC3\xAD"
            "a",
            "Jos\xC3\xA9 Mar\xC3\xAD"
            "a");
    accepts("given_name", "\xE5\xB1\xB1\xE7\x94\xB0", "\xE5\xB1\xB1\xE7\x94\xB0"); /* 山田 */
    accepts("family_name", "McDONALD", "McDONALD");                                /* case kept */
    accepts("family_name", "van  der Berg", "van  der Berg"); /* inner runs kept */
    accepts("family_name", "O'Brien-Smith", "O'Brien-Smith");
    accepts("family_name", "\xC5\x81ukasiewicz", "\xC5\x81ukasiewicz"); /* Łukasiewicz */
    accepts("address_line1", "221B Baker Street", "221B Baker Street");
    accepts("address_line2",
            "Flat\xC2\xA0"
            "2",
            "Flat\xC2\xA0"
            "2"); /* inner NBSP kept */
    accepts("city", "S\xC3\xA3o Paulo", "S\xC3\xA3o Paulo");
    accepts("postal_code", " sw1a 1aa ", "sw1a 1aa");
    accepts("region", "\xF0\x9F\x8C\xB8 Bloom", "\xF0\x9F\x8C\xB8 Bloom"); /* 4-byte form */
    accepts("region", "\xF4\x8F\xBF\xBF", "\xF4\x8F\xBF\xBF");             /* U+10FFFF */
}

static void test_text_rejections(void **state)
{
    rejects("given_name", "", WHY_EMPTY);
    rejects("given_name", " \t\r\n\xC2\xA0 ", WHY_EMPTY);
    rejects("given_name", "Ja\xC3", WHY_UTF8); /* truncated */
    rejects("given_name",
            "\x80"
            "abc",
            WHY_UTF8);                                        /* stray continuation */
    rejects("given_name", "a\xC0\xAF", WHY_UTF8);             /* overlong '/' */
    rejects("given_name", "a\xE0\x80\xAF", WHY_UTF8);         /* overlong, 3 bytes */
    rejects("given_name", "a\xF0\x80\x80\xAF", WHY_UTF8);     /* overlong, 4 bytes */
    rejects("given_name", "a\xED\xA0\x80", WHY_UTF8);         /* surrogate U+D800 */
    rejects("given_name", "a\xED\xBF\xBF", WHY_UTF8);         /* surrogate U+DFFF */
    rejects("given_name", "a\xF4\x90\x80\x80", WHY_UTF8);     /* U+110000 */
    rejects("given_name", "a\xF8\x88\x80\x80\x80", WHY_UTF8); /* 5-byte form */
    rejects("given_name", "a\xFF", WHY_UTF8);
    rejects("given_name", "Ja\tne", WHY_CONTROL);
    rejects("given_name", "Ja\nne", WHY_CONTROL);
    rejects("given_name", "Ja\x01ne", WHY_CONTROL);
    rejects("given_name", "Ja\x1Bne", WHY_CONTROL);
    rejects("given_name", "Jane\x7F", WHY_CONTROL);                    /* DEL */
    rejects("given_name", "Ja\xC2\x80ne", WHY_CONTROL);                /* U+0080 */
    rejects("given_name", "Ja\xC2\x85ne", WHY_CONTROL);                /* NEL */
    rejects("given_name", "Ja\xC2\x9Fne", WHY_CONTROL);                /* U+009F */
    rejects("address_line1", "Line\xE2\x80\xA8two", WHY_CONTROL);      /* U+2028 */
    rejects("address_line1", "Line\xE2\x80\xA9two", WHY_CONTROL);      /* U+2029 */
    rejects_len("given_name", "Ja\0ne", 5, CU_E_INVALID, WHY_CONTROL); /* NUL inside */
}

static void test_text_limits(void **state)
{
    static const char *const text_fields[] = {"given_name",    "family_name", "address_line1",
                                              "address_line2", "city",        "postal_code",
                                              "region"};
    char buf[600], why[CU_FIELD_WHY_BYTES];

    for (size_t i = 0; i < sizeof text_fields / sizeof text_fields[0]; i++) {
        const struct cu_field_def *f = field(text_fields[i]);

        accepts(f->name, repeat(buf, 'a', f->max_bytes), buf);
        snprintf(why, sizeof why, "must be at most %zu bytes", f->max_bytes);
        rejects_len(f->name, repeat(buf, 'a', f->max_bytes + 1), f->max_bytes + 1, CU_E_TOO_LARGE,
                    why);
    }
    /* The limit is on bytes of the normalised value: 50 "Ü" fit in 100, 51 do not. */
    for (int i = 0; i < 51; i++) {
        memcpy(buf + 2 * i, "\xC3\x9C", 2);
    }
    buf[100] = '\0';
    accepts("given_name", buf, buf);
    buf[100] = '\xC3';
    rejects_len("given_name", buf, 102, CU_E_TOO_LARGE, "must be at most 100 bytes");
}

static void test_input_cap_leaves_room_for_white_space(void **state)
{
    char buf[300], want[101];

    /* given_name: max 100, so the raw input may have 2 * 100 + 32 = 232 bytes. */
    repeat(want, 'a', 100);
    memset(buf, ' ', 232);
    memcpy(buf + 66, want, 100);
    buf[232] = '\0';
    accepts("given_name", buf, want);
    rejects_len("given_name", buf, 233, CU_E_TOO_LARGE, "must be at most 100 bytes");
}

static void test_small_output_buffer_is_too_large(void **state)
{
    char out[32], why[CU_FIELD_WHY_BYTES];
    size_t n;

    assert_int_equal(cu_field_normalize(field("given_name"), "Jane", 4, out, 4, &n, why),
                     CU_E_TOO_LARGE);
    assert_string_equal(why, "must be at most 3 bytes");
    assert_string_equal(out, "");
    assert_int_equal(cu_field_normalize(field("given_name"), "Jane", 4, out, 5, &n, why), CU_OK);
    assert_string_equal(out, "Jane");
    assert_int_equal(cu_field_normalize(field("given_name"), "Jane", 4, NULL, 0, &n, why),
                     CU_E_TOO_LARGE);
    /* "00" shrinks to "+" as it is written: 17 input bytes fit max_bytes + 1. */
    assert_int_equal(cu_field_normalize(field("phone"), "00441234567890123", 17, out, 17, &n, why),
                     CU_OK);
    assert_string_equal(out, "+441234567890123");
    /* why may be NULL when the caller does not want a reason. */
    assert_int_equal(cu_field_normalize(field("email"), "x", 1, out, sizeof out, &n, NULL),
                     CU_E_INVALID);
}

/* ---- EMAIL ----------------------------------------------------------------------------- */

static void test_email_round_trips(void **state)
{
    accepts("email", " Jane.Doe@Example.COM ", "jane.doe@example.com");
    accepts("email", "jane@example.com", "jane@example.com");
    accepts("email", "O'Neil+Tag@Mail.Example.co.UK", "o'neil+tag@mail.example.co.uk");
    accepts("email", "x@a-b.io", "x@a-b.io");
    accepts("email", "1@2.de", "1@2.de");
    accepts("email", "a!#$%&'*+-/=?^_`{|}~z@example.org", "a!#$%&'*+-/=?^_`{|}~z@example.org");
    accepts("email", "\xC2\xA0jane@xn--bcher-kva.example\t", "jane@xn--bcher-kva.example");
}

static void test_email_rejections(void **state)
{
    char buf[400];

    rejects("email", "jane", WHY_EMAIL);
    rejects("email", "jane@example.com@x.com", WHY_EMAIL);
    rejects("email", "@example.com", WHY_LOCAL);
    rejects("email", ".jane@example.com", WHY_LOCAL);
    rejects("email", "jane.@example.com", WHY_LOCAL);
    rejects("email", "ja..ne@example.com", WHY_LOCAL);
    rejects("email", "ja ne@example.com", WHY_LOCAL);
    rejects("email", "\"jane\"@example.com", WHY_LOCAL);
    rejects("email", "jane(x)@example.com", WHY_LOCAL);
    rejects("email", "ja\tne@example.com", WHY_LOCAL);
    snprintf(buf, sizeof buf, "%s@example.com", repeat((char[80]){0}, 'a', 65));
    rejects("email", buf, WHY_LOCAL);
    snprintf(buf, sizeof buf, "%s@example.com", repeat((char[80]){0}, 'a', 64));
    accepts("email", buf, buf);
    rejects("email", "jane@", WHY_DOMAIN);
    rejects("email", "jane@example", WHY_DOMAIN);
    rejects("email", "jane@-example.com", WHY_DOMAIN);
    rejects("email", "jane@example-.com", WHY_DOMAIN);
    rejects("email", "jane@exa_mple.com", WHY_DOMAIN);
    rejects("email", "jane@example..com", WHY_DOMAIN);
    rejects("email", "jane@.example.com", WHY_DOMAIN);
    rejects("email", "jane@example.com.", WHY_DOMAIN);
    rejects("email", "jane@example.c0m", WHY_DOMAIN);
    rejects("email", "jane@example.c-m", WHY_DOMAIN);
    rejects("email", "jane@[192.0.2.1]", WHY_DOMAIN);
    snprintf(buf, sizeof buf, "jane@%s.com", repeat((char[80]){0}, 'd', 64));
    rejects("email", buf, WHY_DOMAIN);
    snprintf(buf, sizeof buf, "jane@%s.com", repeat((char[80]){0}, 'd', 63));
    accepts("email", buf, buf);
    rejects("email", "j\xC3\xB6ns@example.com", WHY_IDN);
    rejects("email", "jane@ex\xC3\xA4mple.com", WHY_IDN);
    rejects("email", "jane@\xFF.com", WHY_IDN);
}

static void test_email_limits(void **state)
{
    char local[65], a[64], b[64], c[64], buf[300];

    /* 64 + 1 + (63 + 1 + 63 + 1 + 57 + 1 + 3) = 254 bytes. */
    repeat(local, 'l', 64);
    repeat(a, 'a', 63);
    repeat(b, 'b', 63);
    repeat(c, 'c', 57);
    snprintf(buf, sizeof buf, "%s@%s.%s.%s.com", local, a, b, c);
    assert_int_equal(strlen(buf), 254);
    accepts("email", buf, buf);
    repeat(c, 'c', 58);
    snprintf(buf, sizeof buf, "%s@%s.%s.%s.com", local, a, b, c);
    rejects_len("email", buf, 255, CU_E_TOO_LARGE, "must be at most 254 bytes");
}

/* ---- PHONE ----------------------------------------------------------------------------- */

static void test_phone_round_trips(void **state)
{
    accepts("phone", "+441234567123", "+441234567123");
    accepts("phone", "+44 20 7946 0958", "+442079460958");
    accepts("phone", "0044 (20) 7946-0958", "+442079460958");
    accepts("phone", "(00) 44 20 7946 0958", "+442079460958");
    accepts("phone", "+1 (555) 123-4567", "+15551234567");
    accepts("phone", "+1.555.123.4567", "+15551234567");
    accepts("phone", " 00 1 555 123 4567\t", "+15551234567");
    accepts("phone", "+12345678", "+12345678");               /* 8 digits */
    accepts("phone", "+123456789012345", "+123456789012345"); /* 15 digits, 16 bytes */
}

static void test_phone_rejections(void **state)
{
    char buf[40];

    rejects("phone", "020 7946 0958", WHY_PHONE);       /* national form, no country code */
    rejects("phone", "+0441234567", WHY_PHONE);         /* country code cannot start with 0 */
    rejects("phone", "000441234567", WHY_PHONE);        /* "00" then 0 */
    rejects("phone", "+1234567", WHY_PHONE);            /* 7 digits */
    rejects("phone", "+44 20 7946 0958 x1", WHY_PHONE); /* extension */
    rejects("phone", "+44/20/79460958", WHY_PHONE);
    rejects("phone",
            "+44\xC2\xA0"
            "2079460958",
            WHY_PHONE);
    rejects("phone", "++442079460958", WHY_PHONE);
    rejects("phone", "+", WHY_PHONE);
    rejects("phone", "-().", WHY_EMPTY);
    snprintf(buf, sizeof buf, "+%s", repeat((char[20]){0}, '1', 16));
    rejects_len("phone", buf, 17, CU_E_TOO_LARGE, "must be at most 16 bytes");
}

/* ---- DATE ------------------------------------------------------------------------------ */

static void test_date_round_trips(void **state)
{
    fake_today("2025-06-15T08:00:00Z");
    accepts("birth_date", "1984-05-06", "1984-05-06");
    accepts("birth_date", " 1984-05-06\n", "1984-05-06");
    accepts("birth_date", "1900-01-01", "1900-01-01");
    accepts("birth_date", "1999-12-31", "1999-12-31");
}

static void test_date_leap_days(void **state)
{
    fake_today("2025-06-15T08:00:00Z");
    accepts("birth_date", "2000-02-29", "2000-02-29"); /* divisible by 400 */
    accepts("birth_date", "1904-02-29", "1904-02-29");
    accepts("birth_date", "2024-02-29", "2024-02-29");
    rejects("birth_date", "1900-02-29", WHY_DATE_REAL); /* divisible by 100 */
    rejects("birth_date", "2023-02-29", WHY_DATE_REAL);
    rejects("birth_date", "2024-02-30", WHY_DATE_REAL);
    accepts("birth_date", "2023-02-28", "2023-02-28");
}

static void test_date_rejections(void **state)
{
    fake_today("2025-06-15T08:00:00Z");
    rejects("birth_date", "1984-13-01", WHY_DATE_REAL);
    rejects("birth_date", "1984-00-10", WHY_DATE_REAL);
    rejects("birth_date", "1984-04-31", WHY_DATE_REAL);
    rejects("birth_date", "1984-05-00", WHY_DATE_REAL);
    rejects("birth_date", "1984-05-32", WHY_DATE_REAL);
    rejects("birth_date", "1984-5-6", WHY_DATE_SHAPE);
    rejects("birth_date", "84-05-06", WHY_DATE_SHAPE);
    rejects("birth_date", "1984/05/06", WHY_DATE_SHAPE);
    rejects("birth_date", "19840506", WHY_DATE_SHAPE);
    rejects("birth_date", "1984-05-0a", WHY_DATE_SHAPE);
    rejects("birth_date", "+984-05-06", WHY_DATE_SHAPE);
    rejects("birth_date", "06/05/1984", WHY_DATE_SHAPE);
    rejects("birth_date", "1899-12-31", WHY_DATE_1900);
    rejects("birth_date", "0000-01-01", WHY_DATE_1900);
    rejects_len("birth_date", "1984-05-06T00:00Z", 17, CU_E_TOO_LARGE, "must be at most 10 bytes");
}

static void test_date_future_uses_the_clock(void **state)
{
    fake_today("2024-03-10T12:00:00Z");
    accepts("birth_date", "2024-03-10", "2024-03-10");
    rejects("birth_date", "2024-03-11", WHY_DATE_FUTURE);
    rejects("birth_date", "2025-01-01", WHY_DATE_FUTURE);
    rejects("birth_date", "9999-12-31", WHY_DATE_FUTURE);
    /* Today is the UTC date: the next day becomes acceptable at UTC midnight. */
    fake_today("2024-03-10T23:59:59.999Z");
    rejects("birth_date", "2024-03-11", WHY_DATE_FUTURE);
    cu_clock_advance(1);
    accepts("birth_date", "2024-03-11", "2024-03-11");
    /* A clock in the past moves "today" with it. */
    fake_today("1950-01-01T00:00:00Z");
    rejects("birth_date", "1984-05-06", WHY_DATE_FUTURE);
}

/* ---- COUNTRY --------------------------------------------------------------------------- */

static void test_country_round_trips(void **state)
{
    accepts("country", "GB", "GB");
    accepts("country", " gb ", "GB");
    accepts("country", "De", "DE");
    accepts("country", "us", "US");
    accepts("country", "ax", "AX"); /* first letters and last of the list */
    accepts("country", "AD", "AD");
    accepts("country", "ZW", "ZW");
}

static void test_country_rejections(void **state)
{
    rejects("country", "UK", WHY_COUNTRY_UNASSIGNED); /* exceptionally reserved, not assigned */
    rejects("country", "EU", WHY_COUNTRY_UNASSIGNED);
    rejects("country", "XK", WHY_COUNTRY_UNASSIGNED); /* user-assigned */
    rejects("country", "AA", WHY_COUNTRY_UNASSIGNED);
    rejects("country", "ZZ", WHY_COUNTRY_UNASSIGNED);
    rejects("country", "G1", WHY_COUNTRY);
    rejects("country", "G", WHY_COUNTRY);
    rejects("country", "\xC3\x9C", WHY_COUNTRY);
    rejects_len("country", "GBR", 3, CU_E_TOO_LARGE, "must be at most 2 bytes");
}

static void test_country_list_has_249_codes(void **state)
{
    char in[3] = {0}, out[OUT_BYTES], why[CU_FIELD_WHY_BYTES];
    size_t n, assigned = 0;

    for (char a = 'A'; a <= 'Z'; a++) {
        for (char b = 'A'; b <= 'Z'; b++) {
            enum cu_err rc;

            in[0] = a;
            in[1] = (char)(b - 'A' + 'a'); /* mixed case on the way in */
            rc = normalize(field("country"), in, 2, out, &n, why);
            assert_true(rc == CU_OK || rc == CU_E_INVALID);
            assigned += rc == CU_OK;
        }
    }
    assert_int_equal(assigned, 249);
}

/* ---- LANGUAGE -------------------------------------------------------------------------- */

static void test_language_round_trips(void **state)
{
    accepts("language", "en", "en");
    accepts("language", "EN-gb", "en-GB");
    accepts("language", "zh-hant-tw", "zh-Hant-TW");
    accepts("language", "ZH-HANT", "zh-Hant");
    accepts("language", "es-419", "es-419");
    accepts("language", "yue-hk", "yue-HK");
    accepts("language", "sr-latn", "sr-Latn");
    accepts("language", " pt-BR ", "pt-BR");
}

static void test_language_rejections(void **state)
{
    char buf[40];

    rejects("language", "e", WHY_LANGUAGE);
    rejects("language", "engl", WHY_LANGUAGE);
    rejects("language", "en_GB", WHY_LANGUAGE);
    rejects("language", "en-", WHY_LANGUAGE);
    rejects("language", "-en", WHY_LANGUAGE);
    rejects("language", "en--GB", WHY_LANGUAGE);
    rejects("language", "en-GB-x", WHY_LANGUAGE);
    rejects("language", "en-GB-oed", WHY_LANGUAGE);
    rejects("language", "en-Latn-Cyrl", WHY_LANGUAGE);
    rejects("language", "en-US-Latn", WHY_LANGUAGE); /* script after region */
    rejects("language", "en-GBR", WHY_LANGUAGE);
    rejects("language", "en-12", WHY_LANGUAGE);
    rejects("language", "en-1234", WHY_LANGUAGE);
    rejects("language", "e1", WHY_LANGUAGE);
    rejects("language", "x-private", WHY_LANGUAGE);
    rejects("language", "d\xC3\xA9", WHY_LANGUAGE);
    /* The grammar allows at most 12 bytes, so 35 bytes is a bad tag, 36 too large. */
    rejects("language", repeat(buf, 'a', 35), WHY_LANGUAGE);
    rejects_len("language", repeat(buf, 'a', 36), 36, CU_E_TOO_LARGE, "must be at most 35 bytes");
}

/* ---- REF and NATIONAL_ID --------------------------------------------------------------- */

static void test_ref(void **state)
{
    char buf[80];

    accepts("external_ref", "CRM:00042_a.b-C", "CRM:00042_a.b-C"); /* case kept */
    accepts("external_ref", " ref-1\t", "ref-1");
    accepts("external_ref", repeat(buf, 'R', 64), buf);
    rejects_len("external_ref", repeat(buf, 'R', 65), 65, CU_E_TOO_LARGE,
                "must be at most 64 bytes");
    rejects("external_ref", "a b", WHY_REF);
    rejects("external_ref", "ref/1", WHY_REF);
    rejects("external_ref", "ref#1", WHY_REF);
    rejects("external_ref",
            "r\xC3\xA9"
            "f",
            WHY_REF);
    rejects("external_ref", "  ", WHY_EMPTY);
}

static void test_national_id(void **state)
{
    char buf[80], want[40];

    accepts("national_id", "ab 12-34 56", "AB123456");
    accepts("national_id", " 123-45-6789 ", "123456789");
    accepts("national_id", "qq123456c", "QQ123456C");
    accepts("national_id", "AB12", "AB12");
    rejects("national_id", "12 3", WHY_NATIONAL_ID);
    rejects("national_id", "AB/1234", WHY_NATIONAL_ID);
    rejects("national_id", "AB.1234", WHY_NATIONAL_ID);
    rejects("national_id",
            "\xC3\x84"
            "B1234",
            WHY_NATIONAL_ID);
    rejects("national_id", "- -", WHY_EMPTY);
    accepts("national_id", repeat(buf, '7', 32), buf);
    rejects_len("national_id", repeat(buf, '7', 33), 33, CU_E_TOO_LARGE,
                "must be at most 32 bytes");
    /* Separators do not count against the limit. */
    snprintf(buf, sizeof buf, "%s-%s-%s-%s", "AAAAAAAA", "BBBBBBBB", "CCCCCCCC", "DDDDDDDD");
    snprintf(want, sizeof want, "%s", "AAAAAAAABBBBBBBBCCCCCCCCDDDDDDDD");
    accepts("national_id", buf, want);
}

/* ---- reasons --------------------------------------------------------------------------- */

static void test_reasons_never_echo_the_value(void **state)
{
    static const struct {
        const char *field, *in;
    } cases[] = {
        {"given_name", "Zqx7secret\x01"},
        {"given_name", "Zqx7secret\xC0"},
        {"email", "Zqx7secret"},
        {"email", "Zqx7secret@@example.com"},
        {"email", "zqx7secret@zqx7secret"},
        {"email", "zqx7secret\xC3\xA9@x.com"},
        {"phone", "+Zqx7secret"},
        {"birth_date", "Zqx7secre"},
        {"country", "Zq"},
        {"language", "Zqx7secret"},
        {"external_ref", "Zqx7secret/"},
        {"national_id", "Zqx7secret/"},
        {"address_line1", "Zqx7secret\n12"},
    };
    char out[OUT_BYTES], why[CU_FIELD_WHY_BYTES], big[300];
    size_t n;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(
            normalize(field(cases[i].field), cases[i].in, strlen(cases[i].in), out, &n, why),
            CU_E_INVALID);
        assert_true(why[0] != '\0');
        assert_null(strstr(why, "x7secre"));
        assert_null(strstr(why, "X7SECRE"));
    }
    memset(big, 'Z', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(normalize(field("city"), big, strlen(big), out, &n, why), CU_E_TOO_LARGE);
    assert_null(strstr(why, "ZZ"));
}

/* ---- masks ----------------------------------------------------------------------------- */

static void masks(const char *name, const char *value, const char *want)
{
    char out[OUT_BYTES];

    memset(out, 'x', sizeof out);
    cu_field_mask(field(name), value, out, sizeof out);
    assert_string_equal(out, want);
    assert_true(strlen(out) <= strlen(value) + 8);
}

static void test_mask_examples(void **state)
{
    masks("email", "jane@example.com", "j***@example.com");
    masks("email", "abc@b.io", "a***@b.io");
    /* Less than half of a value: a short local part, id or number shows less, or nothing. */
    masks("email", "a@b.io", "***@b.io");
    masks("email", "ab@b.io", "***@b.io");
    masks("email", "\xC3\x9c\xC3\x9c@b.io", "***@b.io"); /* two characters, four bytes */
    masks("phone", "+441234567123", "+44*******123");    /* 5 of 12 digits */
    masks("phone", "+4412345678", "+44******78");        /* 4 of 10 */
    masks("phone", "+12345678", "+12*****8");            /* 3 of 8 */
    masks("phone", "+1234567", "+12****7");              /* 3 of 7 */
    masks("phone", "+12345", "+12***");                  /* 2 of 5 */
    masks("phone", "+123456789012345", "+12**********345");
    masks("national_id", "AB123456C", "****456C"); /* 4 of 9 */
    masks("national_id", "AB123456", "****456");   /* 3 of 8 */
    masks("national_id", "AB1234", "****34");      /* 2 of 6 */
    masks("national_id", "12345", "****45");
    masks("national_id", "1234", "****");
    masks("national_id", "AB1", "****");
    masks("birth_date", "1984-05-06", "1984-**-**");
    masks("given_name", "\xC3\x9cmit", "\xC3\x9c***"); /* Ümit -> Ü*** */
    masks("given_name", "Jane", "J***");
    masks("family_name", "\xE5\xB1\xB1\xE7\x94\xB0", "\xE5\xB1\xB1***"); /* 山田 -> 山*** */
    masks("family_name", "\xF0\x9F\x8C\xB8x", "\xF0\x9F\x8C\xB8***");
    masks("address_line1", "221B Baker Street", "***");
    masks("address_line2", "Flat 2", "***");
    masks("city", "London", "***");
    masks("postal_code", "SW1A 1AA", "***");
    masks("region", "Greater London", "***");
    masks("country", "GB", "GB");
    masks("language", "zh-Hant-TW", "zh-Hant-TW");
    masks("external_ref", "CRM:00042", "CRM:00042");
}

static void test_mask_of_malformed_values_shows_nothing(void **state)
{
    masks("email", "no-at-sign", "***");
    masks("email", "@example.com", "***");
    masks("phone", "12345", "***");
    masks("phone", "+12", "***");
    masks("phone", "+123", "***");
    masks("phone", "+1234", "***");
    masks("birth_date", "May 1984", "***");
    masks("given_name", "", "***");
    masks("given_name", "\xFFx", "***");
}

static void test_mask_truncates_on_character_boundary(void **state)
{
    char out[8];

    memset(out, 'x', sizeof out);
    cu_field_mask(field("given_name"), "\xC3\x9cmit", out, 2);
    assert_string_equal(out, ""); /* "Ü" needs 2 bytes plus the NUL */
    cu_field_mask(field("given_name"), "\xC3\x9cmit", out, 3);
    assert_string_equal(out, "\xC3\x9c");
    cu_field_mask(field("given_name"), "\xC3\x9cmit", out, 4);
    assert_string_equal(out, "\xC3\x9c*");
    cu_field_mask(field("email"), "jane@example.com", out, sizeof out);
    assert_string_equal(out, "j***@ex");
    out[0] = 'x';
    cu_field_mask(field("email"), "jane@example.com", out, 0); /* nothing written */
    assert_int_equal(out[0], 'x');
    cu_field_mask(field("family_name"), "\xE5\xB1\xB1\xE7\x94\xB0", out, 3);
    assert_string_equal(out, "");
}

/* ---- fuzz-like ------------------------------------------------------------------------- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;

static uint32_t rnd(uint32_t below)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545F4914F6CDD1DULL) >> 32) % below;
}

/* Pieces that the normalisers care about, so that random strings hit their branches. */
static const char *const pieces[] = {
    " ",
    "\t",
    "\r\n",
    "\xC2\xA0",
    "-",
    "+",
    "(",
    ")",
    ".",
    "@",
    ":",
    "_",
    "0",
    "00",
    "1",
    "9",
    "a",
    "Z",
    "en",
    "GB",
    "Hant",
    "419",
    "com",
    "\xC3\x9c",
    "\xE5\xB1\xB1",
    "\xF0\x9F\x8C\xB8",
    "\xC0",
    "\x80",
    "\xED\xA0\x80",
    "\xE2\x80\xA8",
    "\x01",
    "\x7F",
    "\xC2\x85",
    "1984-",
    "02-29",
    "!",
    "'",
    "/",
};

static const char *const seeds[] = {
    "Jane",
    "\xC3\x9cmit",
    "jane.doe@example.com",
    "+441234567123",
    "0044 20 7946",
    "1984-05-06",
    "2000-02-29",
    "gb",
    "zh-hant-tw",
    "es-419",
    "CRM:42_x",
    "ab 12-34 56",
    "",
};

static size_t random_input(char *buf, size_t cap)
{
    size_t n = 0;
    int mode = (int)rnd(3);

    if (mode == 0) { /* raw bytes */
        n = rnd((uint32_t)cap);
        for (size_t i = 0; i < n; i++) {
            buf[i] = (char)rnd(256);
        }
        return n;
    }
    if (mode == 1) { /* a valid-looking seed */
        const char *s = seeds[rnd(sizeof seeds / sizeof seeds[0])];

        n = strlen(s);
        memcpy(buf, s, n);
    }
    for (uint32_t k = rnd(mode == 1 ? 4 : 24); k > 0; k--) { /* then pieces, mutations */
        const char *p = pieces[rnd(sizeof pieces / sizeof pieces[0])];
        size_t pl = strlen(p), at = rnd((uint32_t)n + 1);

        if (at < n && rnd(4) == 0) { /* delete one byte */
            memmove(buf + at, buf + at + 1, n - at - 1);
            n--;
        } else if (n + pl <= cap) {
            memmove(buf + at + pl, buf + at, n - at);
            memcpy(buf + at, p, pl);
            n += pl;
        }
    }
    return n;
}

/* plain_ascii(in, len): printable ASCII with something other than spaces: any TEXT field
 * must take it when it fits. */
static bool plain_ascii(const char *in, size_t len)
{
    bool visible = false;

    for (size_t i = 0; i < len; i++) {
        if (in[i] < 0x20 || in[i] > 0x7E) {
            return false;
        }
        visible = visible || in[i] != ' ';
    }
    return visible;
}

/* check_one(f, in, len): normalises and checks the outcome; true when accepted. */
static bool check_one(const struct cu_field_def *f, const char *in, size_t len)
{
    char out[OUT_BYTES], again[OUT_BYTES], masked[OUT_BYTES], why[CU_FIELD_WHY_BYTES];
    size_t n = 99, n2;
    enum cu_err rc = normalize(f, in, len, out, &n, why);

    if (f->type == CU_FT_TEXT && len <= f->max_bytes && plain_ascii(in, len)) {
        assert_int_equal(rc, CU_OK);
    }
    if (rc != CU_OK) {
        assert_true(rc == CU_E_INVALID || rc == CU_E_TOO_LARGE);
        assert_true(why[0] != '\0');
        assert_int_equal(n, 0);
        assert_string_equal(out, "");
        if (strcmp(why, WHY_UTF8) == 0) {
            assert_false(valid_utf8((const unsigned char *)in, len));
        }
        return false;
    }
    assert_int_equal(n, strlen(out));
    assert_true(n >= 1 && n <= f->max_bytes);
    assert_true(valid_utf8((const unsigned char *)out, n));
    assert_int_equal(normalize(f, out, n, again, &n2, why), CU_OK);
    assert_string_equal(again, out);
    cu_field_mask(f, out, masked, sizeof masked);
    assert_true(strlen(masked) <= n + 8);
    assert_true(valid_utf8((const unsigned char *)masked, strlen(masked)));
    return true;
}

static void test_random_bytes_never_break_a_field(void **state)
{
    size_t nf;
    const struct cu_field_def *fs = cu_fields(&nf);
    char buf[300];

    fake_today("2025-06-15T08:00:00Z");
    print_message("fuzz seed %llx\n", (unsigned long long)rng_state);
    for (size_t i = 0; i < nf; i++) {
        int accepted = 0;

        for (int round = 0; round < 20000; round++) {
            size_t len = random_input(buf, sizeof buf);

            accepted += check_one(&fs[i], buf, len);
        }
        print_message("%-14s %5d of 20000 accepted\n", fs[i].name, accepted);
        assert_true(accepted >= 20); /* the loop reaches the accepting paths too */
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_table_matches_schema, teardown),
        cmocka_unit_test_teardown(test_unknown_fields_not_found, teardown),
        cmocka_unit_test_teardown(test_text_round_trips, teardown),
        cmocka_unit_test_teardown(test_text_rejections, teardown),
        cmocka_unit_test_teardown(test_text_limits, teardown),
        cmocka_unit_test_teardown(test_input_cap_leaves_room_for_white_space, teardown),
        cmocka_unit_test_teardown(test_small_output_buffer_is_too_large, teardown),
        cmocka_unit_test_teardown(test_email_round_trips, teardown),
        cmocka_unit_test_teardown(test_email_rejections, teardown),
        cmocka_unit_test_teardown(test_email_limits, teardown),
        cmocka_unit_test_teardown(test_phone_round_trips, teardown),
        cmocka_unit_test_teardown(test_phone_rejections, teardown),
        cmocka_unit_test_teardown(test_date_round_trips, teardown),
        cmocka_unit_test_teardown(test_date_leap_days, teardown),
        cmocka_unit_test_teardown(test_date_rejections, teardown),
        cmocka_unit_test_teardown(test_date_future_uses_the_clock, teardown),
        cmocka_unit_test_teardown(test_country_round_trips, teardown),
        cmocka_unit_test_teardown(test_country_rejections, teardown),
        cmocka_unit_test_teardown(test_country_list_has_249_codes, teardown),
        cmocka_unit_test_teardown(test_language_round_trips, teardown),
        cmocka_unit_test_teardown(test_language_rejections, teardown),
        cmocka_unit_test_teardown(test_ref, teardown),
        cmocka_unit_test_teardown(test_national_id, teardown),
        cmocka_unit_test_teardown(test_reasons_never_echo_the_value, teardown),
        cmocka_unit_test_teardown(test_mask_examples, teardown),
        cmocka_unit_test_teardown(test_mask_of_malformed_values_shows_nothing, teardown),
        cmocka_unit_test_teardown(test_mask_truncates_on_character_boundary, teardown),
        cmocka_unit_test_teardown(test_random_bytes_never_break_a_field, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
