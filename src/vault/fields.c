/*
 * fields.c - the customer record's fields: the table, the normalisers, the validators and
 * the display masks.
 *
 * Every value takes the same path: a cap on the raw input, white space trimmed at both ends,
 * a per-type transform into the caller's buffer (case folding, separators dropped), the
 * field's size limit, then a per-type validator that reads only the normalised bytes. The
 * transforms are idempotent, so a stored value normalises to itself. The byte-level rules
 * are specified in docs/internals/vault.md ("Fields and normalisation"); keep the two in
 * step. A reason written here never contains the value: it may be personal data.
 */
#include "vault/fields.h"

#include "base/text.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"

static const struct cu_field_def fields[] = {
    /* name, type, personal, blind_index, unique, max_bytes, mask */
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

#define NFIELDS (sizeof fields / sizeof fields[0])

/* ISO 3166-1 alpha-2: the 249 officially assigned codes, sorted (for bsearch). */
static const char countries[][3] = {
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ",
    "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS",
    "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN",
    "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE", "DJ", "DK", "DM", "DO", "DZ", "EC", "EE",
    "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA", "GB", "GD", "GE", "GF",
    "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM",
    "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM",
    "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC",
    "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK",
    "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA",
    "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG",
    "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW",
    "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS",
    "ST", "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO",
    "TR", "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI",
    "VN", "VU", "WF", "WS", "YE", "YT", "ZA", "ZM", "ZW",
};

_Static_assert(sizeof countries / sizeof countries[0] == 249, "ISO 3166-1 has 249 codes");

/* cu_fields(n): the fields, in a fixed order (their index is their id); *n gets the count.
 * Static. */
const struct cu_field_def *cu_fields(size_t *n)
{
    if (n != NULL) {
        *n = NFIELDS;
    }
    return fields;
}

/* cu_field_find(name): the field called name, or NULL (unknown fields are rejected). */
const struct cu_field_def *cu_field_find(const char *name)
{
    const struct cu_field_def *found = NULL;

    for (size_t i = 0; name != NULL && found == NULL && i < NFIELDS; i++) {
        /* The first byte tells most names apart before a call to strcmp (hot: every field of
         * every customer read is looked up by the name stored with it). */
        if (fields[i].name[0] == name[0] && strcmp(fields[i].name, name) == 0) {
            found = &fields[i];
        }
    }
    return found;
}

/* ---- bytes ------------------------------------------------------------------------------ */

/* ASCII classes and case, independent of the locale. */
static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_lower(char c)
{
    return c >= 'a' && c <= 'z';
}

static bool is_upper(char c)
{
    return c >= 'A' && c <= 'Z';
}

static bool is_ascii_byte(char c)
{
    return (unsigned char)c < 0x80;
}

static bool is_alnum(char c)
{
    return is_lower(c) || is_upper(c) || is_digit(c);
}

/* all_of(p, n, pred): true when every one of the n bytes at p satisfies pred. */
static bool all_of(const char *p, size_t n, bool (*pred)(char))
{
    size_t i = 0;

    while (i < n && pred(p[i])) {
        i++;
    }
    return i == n;
}

/* say(why, reason): writes reason into why (CU_FIELD_WHY_BYTES) when why is not NULL. */
static void say(char *why, const char *reason)
{
    if (why != NULL) {
        snprintf(why, CU_FIELD_WHY_BYTES, "%s", reason);
    }
}

/* A write cursor over a caller's buffer of cap bytes (NUL included). What does not fit is
 * dropped and full is set; the buffer stays NUL-terminated. */
struct sink {
    char *p;
    size_t cap;
    size_t len;
    bool full;
};

static void sink_init(struct sink *s, char *p, size_t cap)
{
    s->p = p;
    s->cap = cap;
    s->len = 0;
    s->full = cap == 0;
    if (cap > 0) {
        p[0] = '\0';
    }
}

static void sink_put(struct sink *s, const char *b, size_t n)
{
    size_t room = s->cap == 0 ? 0 : s->cap - 1 - s->len;

    if (n > room) {
        s->full = true;
        n = room;
    }
    if (n > 0) {
        memcpy(s->p + s->len, b, n);
        s->len += n;
        s->p[s->len] = '\0';
    }
}

static void sink_putc(struct sink *s, char c)
{
    sink_put(s, &c, 1);
}

/* ---- UTF-8 and white space -------------------------------------------------------------- */

/* utf8_next(p, n, cp): the length (1-4) of the well-formed UTF-8 sequence that starts p
 * (n > 0 bytes), its code point in *cp; 0 when malformed: a stray continuation byte, a
 * truncated sequence, an overlong form, a surrogate or a code point past U+10FFFF. */
static size_t utf8_next(const char *p, size_t n, uint32_t *cp)
{
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    const unsigned char *u = (const unsigned char *)p;
    size_t len = u[0] < 0x80 ? 1 : u[0] < 0xC0 ? 0 : u[0] < 0xE0 ? 2 : u[0] < 0xF0 ? 3 : 4;
    uint32_t c = len == 1 ? u[0] : u[0] & (0x7Fu >> len); /* payload bits of the lead */
    bool ok = len > 0 && len <= n && u[0] < 0xF8;

    for (size_t i = 1; ok && i < len; i++) {
        ok = (u[i] & 0xC0) == 0x80;
        c = c << 6 | (u[i] & 0x3Fu);
    }
    ok = ok && c >= min_cp[len] && (c < 0xD800 || c > 0xDFFF) && c <= 0x10FFFF;
    *cp = c;
    return ok ? len : 0;
}

/* utf8_cut(p, n): the longest prefix length of the n bytes at p that does not end inside a
 * multi-byte sequence (for truncation). */
static size_t utf8_cut(const char *p, size_t n)
{
    const unsigned char *u = (const unsigned char *)p;
    size_t lead = n, need = 0;

    while (lead > 0 && n - lead < 4 && (u[lead - 1] & 0xC0) == 0x80) {
        lead--;
    }
    if (lead > 0 && u[lead - 1] >= 0xC0) { /* u[lead - 1] starts the last sequence */
        need = u[lead - 1] < 0xE0 ? 2 : u[lead - 1] < 0xF0 ? 3 : 4;
    }
    return need > 0 && need > n - (lead - 1) ? lead - 1 : n;
}

static bool is_ascii_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* space_front(p, n) / space_back(p, n): bytes of one white-space character (ASCII space,
 * tab, CR, LF, or U+00A0 as C2 A0) at the start / end of p, or 0. */
static bool is_nbsp(const char *p)
{
    return (unsigned char)p[0] == 0xC2 && (unsigned char)p[1] == 0xA0;
}

static size_t space_front(const char *p, size_t n)
{
    size_t k = 0;

    if (n >= 1 && is_ascii_space(p[0])) {
        k = 1;
    } else if (n >= 2 && is_nbsp(p)) {
        k = 2;
    }
    return k;
}

static size_t space_back(const char *p, size_t n)
{
    size_t k = 0;

    if (n >= 1 && is_ascii_space(p[n - 1])) {
        k = 1;
    } else if (n >= 2 && is_nbsp(p + n - 2)) {
        k = 2;
    }
    return k;
}

/* trim(in, len): moves *in and shortens *len past white space at both ends. */
static void trim(const char **in, size_t *len)
{
    size_t k;

    while ((k = space_front(*in, *len)) > 0) {
        *in += k;
        *len -= k;
    }
    while ((k = space_back(*in, *len)) > 0) {
        *len -= k;
    }
}

/* ---- transforms: trimmed input -> normalised bytes --------------------------------------- */

static void copy_transform(const char *in, size_t n, struct sink *s)
{
    sink_put(s, in, n);
}

static void lower_transform(const char *in, size_t n, struct sink *s)
{
    for (size_t i = 0; i < n; i++) {
        sink_putc(s, cu_ascii_lower(in[i]));
    }
}

static void upper_transform(const char *in, size_t n, struct sink *s)
{
    for (size_t i = 0; i < n; i++) {
        sink_putc(s, cu_ascii_upper(in[i]));
    }
}

static bool is_phone_separator(char c)
{
    return c == ' ' || c == '-' || c == '.' || c == '(' || c == ')';
}

/* Separators dropped; when the first two remaining characters are "00" they become '+'. */
static void phone_transform(const char *in, size_t n, struct sink *s)
{
    size_t i = 0, j, zeros = 0;

    for (j = 0; j < n && zeros < 2; j++) {
        if (is_phone_separator(in[j])) {
            continue;
        }
        if (in[j] != '0') {
            break;
        }
        zeros++;
    }
    if (zeros == 2) {
        sink_putc(s, '+');
        i = j;
    }
    for (; i < n; i++) {
        if (!is_phone_separator(in[i])) {
            sink_putc(s, in[i]);
        }
    }
}

/* Upper-cased, spaces and dashes dropped. */
static void national_id_transform(const char *in, size_t n, struct sink *s)
{
    for (size_t i = 0; i < n; i++) {
        if (in[i] != ' ' && in[i] != '-') {
            sink_putc(s, cu_ascii_upper(in[i]));
        }
    }
}

/* Canonical case by subtag: the first lower-case, a later 4-letter one title-case (script),
 * a later 2-letter one upper-case (region), any other lower-case. */
static void language_transform(const char *in, size_t n, struct sink *s)
{
    size_t start = 0;

    while (start <= n) {
        size_t k = 0;

        while (start + k < n && in[start + k] != '-') {
            k++;
        }
        for (size_t i = 0; i < k; i++) {
            bool upper = start > 0 && (k == 2 || (k == 4 && i == 0));

            if (upper)
                sink_putc(s, cu_ascii_upper(in[start + i]));
            else
                sink_putc(s, cu_ascii_lower(in[start + i]));
        }
        if (start + k < n) {
            sink_putc(s, '-');
        }
        start += k + 1;
    }
}

/* ---- validators: normalised bytes -> acceptable or a reason ----------------------------- */

/* Valid UTF-8 without C0 or C1 controls (DEL included), U+2028 or U+2029. */
static bool text_ok(const char *v, size_t n, char *why)
{
    bool ok = true;
    size_t i = 0;
    uint32_t cp;

    while (ok && i < n) {
        size_t k = utf8_next(v + i, n - i, &cp);

        if (k == 0) {
            say(why, "must be valid UTF-8");
            ok = false;
        } else if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) || cp == 0x2028 || cp == 0x2029) {
            say(why, "must not contain control characters or line breaks");
            ok = false;
        }
        i += k;
    }
    return ok;
}

static bool is_email_atext(char c)
{
    return is_lower(c) || is_digit(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* The local part: 1-64 of atext and '.', no dot at either end, no two dots together. */
static bool email_local_ok(const char *p, size_t n)
{
    bool ok = n >= 1 && n <= 64 && p[0] != '.' && p[n - 1] != '.';

    for (size_t i = 0; ok && i < n; i++) { /* p[0] is no dot, so a dot has i > 0 */
        ok = is_email_atext(p[i]) || (p[i] == '.' && p[i - 1] != '.');
    }
    return ok;
}

static bool is_label_char(char c)
{
    return is_lower(c) || is_digit(c) || c == '-';
}

/* The domain: 1-253 bytes of labels (1-63 of [a-z0-9-], no '-' at either end) joined by
 * dots, at least two labels, the last one letters only. */
static bool email_domain_ok(const char *p, size_t n)
{
    bool ok = n >= 1 && n <= 253;
    size_t start = 0, k = 0, labels = 0;

    while (ok && start <= n) {
        k = 0;
        while (start + k < n && p[start + k] != '.') {
            k++;
        }
        ok = k >= 1 && k <= 63 && p[start] != '-' && p[start + k - 1] != '-' &&
             all_of(p + start, k, is_label_char);
        labels++;
        start += k + 1;
    }
    return ok && labels >= 2 && all_of(p + n - k, k, is_lower);
}

static bool email_ok(const char *v, size_t n, char *why)
{
    const char *at = memchr(v, '@', n);
    size_t local = at != NULL ? (size_t)(at - v) : 0;
    bool ok = false;

    if (!all_of(v, n, is_ascii_byte)) {
        say(why, "must be an ASCII e-mail address: internationalised (non-ASCII) addresses are "
                 "not supported yet");
    } else if (at == NULL || memchr(at + 1, '@', n - local - 1) != NULL) {
        say(why, "must be an e-mail address (local@domain)");
    } else if (!email_local_ok(v, local)) {
        say(why, "the part before @ must be 1 to 64 of a-z, 0-9 and !#$%&'*+-/=?^_`{|}~, "
                 "with single dots between them");
    } else if (!email_domain_ok(at + 1, n - local - 1)) {
        say(why, "the part after @ must be a domain name: labels of a-z, 0-9 and - joined by "
                 "dots, ending in a letters-only top-level domain");
    } else {
        ok = true;
    }
    return ok;
}

/* '+', then 8 to 15 digits, the first not 0. */
static bool phone_ok(const char *v, size_t n, char *why)
{
    bool ok = n >= 9 && n <= 16 && v[0] == '+' && v[1] != '0' && all_of(v + 1, n - 1, is_digit);

    if (!ok) {
        say(why, "must be an E.164 phone number: + and 8 to 15 digits, the first not 0");
    }
    return ok;
}

static int two_digits(const char *p)
{
    return (p[0] - '0') * 10 + (p[1] - '0');
}

static int days_in_month(int y, int m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

    return m == 2 && leap ? 29 : days[m - 1];
}

/* YYYY-MM-DD, a real date, from 1900-01-01 to today (UTC, from the injectable clock). Once
 * the shape is checked, dates compare as strings. */
static bool date_ok(const char *v, size_t n, char *why)
{
    char today[CU_RFC3339_BYTES];
    bool ok = false;
    int y, m, d;

    if (n != 10 || !all_of(v, 4, is_digit) || v[4] != '-' || !all_of(v + 5, 2, is_digit) ||
        v[7] != '-' || !all_of(v + 8, 2, is_digit)) {
        say(why, "must be a date written YYYY-MM-DD");
        goto out;
    }
    y = two_digits(v) * 100 + two_digits(v + 2);
    m = two_digits(v + 5);
    d = two_digits(v + 8);
    cu_clock_format(cu_clock_now_ms(), today);
    if (m < 1 || m > 12 || d < 1 || d > days_in_month(y, m)) {
        say(why, "must be a real calendar date");
    } else if (memcmp(v, "1900-01-01", 10) < 0) {
        say(why, "must be on or after 1900-01-01");
    } else if (memcmp(v, today, 10) > 0) {
        say(why, "must not be in the future");
    } else {
        ok = true;
    }
out:
    return ok;
}

static int country_cmp(const void *a, const void *b)
{
    return memcmp(a, b, 2);
}

/* Two upper-case letters that are an assigned ISO 3166-1 alpha-2 code. */
static bool country_ok(const char *v, size_t n, char *why)
{
    bool ok = false;

    if (n != 2 || !all_of(v, 2, is_upper)) {
        say(why, "must be an ISO 3166-1 alpha-2 country code: two letters, e.g. GB");
    } else if (bsearch(v, countries, sizeof countries / sizeof countries[0], sizeof countries[0],
                       country_cmp) == NULL) {
        say(why, "must be an assigned ISO 3166-1 alpha-2 country code");
    } else {
        ok = true;
    }
    return ok;
}

static bool is_title4(const char *p)
{
    return is_upper(p[0]) && all_of(p + 1, 3, is_lower);
}

/* language[-Script][-REGION] in canonical case: language 2-3 lower-case letters, Script 4
 * letters title-case, REGION 2 upper-case letters or 3 digits. */
static bool language_ok(const char *v, size_t n, char *why)
{
    int stage = 0; /* 0: want language; 1: script or region or end; 2: region or end; 3: end */
    size_t pos = 0;
    bool ok = true;

    while (ok && pos <= n) {
        size_t k = 0;

        while (pos + k < n && v[pos + k] != '-') {
            k++;
        }
        if (stage == 0 && (k == 2 || k == 3) && all_of(v + pos, k, is_lower)) {
            stage = 1;
        } else if (stage == 1 && k == 4 && is_title4(v + pos)) {
            stage = 2;
        } else if ((stage == 1 || stage == 2) && ((k == 2 && all_of(v + pos, 2, is_upper)) ||
                                                  (k == 3 && all_of(v + pos, 3, is_digit)))) {
            stage = 3;
        } else {
            ok = false;
        }
        pos += k + 1;
    }
    if (!ok) {
        say(why, "must be a language tag: 2-3 letter language, optional 4-letter script and "
                 "2-letter or 3-digit region (en, en-GB, zh-Hant-TW)");
    }
    return ok;
}

static bool is_ref_char(char c)
{
    return is_alnum(c) || c == '.' || c == '_' || c == ':' || c == '-';
}

/* 1 to 64 of [A-Za-z0-9._:-]. */
static bool ref_ok(const char *v, size_t n, char *why)
{
    bool ok = n >= 1 && n <= 64 && all_of(v, n, is_ref_char);

    if (!ok) {
        say(why, "must be 1 to 64 of A-Z, a-z, 0-9, '.', '_', ':' and '-'");
    }
    return ok;
}

static bool is_upper_or_digit(char c)
{
    return is_upper(c) || is_digit(c);
}

/* 4 to 32 of [A-Z0-9]. */
static bool national_id_ok(const char *v, size_t n, char *why)
{
    bool ok = n >= 4 && n <= 32 && all_of(v, n, is_upper_or_digit);

    if (!ok) {
        say(why, "must be 4 to 32 letters A-Z and digits (spaces and dashes are ignored)");
    }
    return ok;
}

/* ---- normalise -------------------------------------------------------------------------- */

struct kind {
    void (*transform)(const char *in, size_t n, struct sink *s);
    bool (*valid)(const char *v, size_t n, char *why);
};

static const struct kind kinds[] = {
    [CU_FT_TEXT] = {copy_transform, text_ok},
    [CU_FT_EMAIL] = {lower_transform, email_ok},
    [CU_FT_PHONE] = {phone_transform, phone_ok},
    [CU_FT_DATE] = {copy_transform, date_ok},
    [CU_FT_COUNTRY] = {upper_transform, country_ok},
    [CU_FT_LANGUAGE] = {language_transform, language_ok},
    [CU_FT_REF] = {copy_transform, ref_ok},
    [CU_FT_NATIONAL_ID] = {national_id_transform, national_id_ok},
};

/* input_cap(f): the most raw bytes accepted for f: room for white space and separators. */
static size_t input_cap(const struct cu_field_def *f)
{
    return f->max_bytes > (SIZE_MAX - 32) / 2 ? SIZE_MAX : 2 * f->max_bytes + 32;
}

static void say_too_large(char *why, size_t max)
{
    if (why != NULL) {
        snprintf(why, CU_FIELD_WHY_BYTES, "must be at most %zu bytes", max);
    }
}

/* cu_field_normalize(f, in, len, out, outcap, outlen, why): normalises the len bytes at in
 * for field f into out (outcap bytes; NUL-terminated; *outlen its length) and validates the
 * result. CU_E_INVALID with a reason in why (CU_FIELD_WHY_BYTES, naming the rule broken,
 * never echoing the value) when it is not acceptable; CU_E_TOO_LARGE when the normalised
 * value passes f->max_bytes (or does not fit outcap), or the input passes 2 * f->max_bytes + 32
 * bytes (room for white space and separators such as "+1 (555) 123-4567"). */
enum cu_err cu_field_normalize(const struct cu_field_def *f, const char *in, size_t len, char *out,
                               size_t outcap, size_t *outlen, char why[CU_FIELD_WHY_BYTES])
{
    enum cu_err rc = CU_OK;
    struct sink s;

    CU_ASSERT(f != NULL && (in != NULL || len == 0) && (out != NULL || outcap == 0));
    CU_ASSERT(outlen != NULL && (size_t)f->type < sizeof kinds / sizeof kinds[0]);
    say(why, "");
    sink_init(&s, out, outcap);
    if (len > input_cap(f)) {
        rc = CU_E_TOO_LARGE;
        say_too_large(why, f->max_bytes);
        goto out;
    }
    trim(&in, &len);
    kinds[f->type].transform(in, len, &s);
    if (s.full || s.len > f->max_bytes) {
        rc = CU_E_TOO_LARGE;
        say_too_large(why, s.len > f->max_bytes || outcap == 0 ? f->max_bytes : outcap - 1);
    } else if (s.len == 0) {
        rc = CU_E_INVALID;
        say(why, "must not be empty");
    } else if (!kinds[f->type].valid(s.p, s.len, why)) {
        rc = CU_E_INVALID;
    }
out:
    if (rc != CU_OK && outcap > 0) {
        memset(out, 0, s.len + 1); /* no half-normalised personal data left behind */
        s.len = 0;
    }
    *outlen = s.len;
    return rc;
}

/* ---- masks ------------------------------------------------------------------------------ */

static void put_stars(struct sink *s, size_t k)
{
    for (size_t i = 0; i < k; i++) {
        sink_putc(s, '*');
    }
}

/* j***@example.com; ***@example.com when the local part has 2 characters or fewer (its first
 * would be half of it or all). */
static void mask_email(const char *v, size_t n, struct sink *s)
{
    const char *at = memchr(v, '@', n);
    uint32_t cp;
    size_t first = n > 0 ? utf8_next(v, n, &cp) : 0;
    size_t local = at != NULL ? (size_t)(at - v) : 0;

    if (at == NULL || first == 0 || first > local) {
        sink_put(s, "***", 3);
        return;
    }
    size_t second = first < local ? utf8_next(v + first, local - first, &cp) : 0;
    if (second > 0 && first + second < local)
        sink_put(s, v, first);
    sink_put(s, "***", 3);
    sink_put(s, at, n - local);
}

/* +44*******123: '+', the first 2 digits, a star per hidden digit, then up to the last 3, so
 * that less than half the digits show (+12*****8 for 8 digits); *** for 4 digits or fewer. */
static void mask_phone(const char *v, size_t n, struct sink *s)
{
    size_t digits = n > 0 ? n - 1 : 0;
    if (digits < 5 || v[0] != '+' || !all_of(v + 1, digits, is_digit)) {
        sink_put(s, "***", 3);
        return;
    }
    size_t shown = (digits - 1) / 2, last = shown - 2 > 3 ? 3 : shown - 2;
    sink_put(s, v, 3);
    put_stars(s, digits - 2 - last);
    sink_put(s, v + n - last, last);
}

/* ****1234: stars, then the last 4 characters (UTF-8 aware), but less than half of them:
 * ****45 for 5 or 6 characters, ****456 for 7 or 8, only stars for 4 or fewer. */
static void mask_last4(const char *v, size_t n, struct sink *s)
{
    size_t total = 0, start = n, chars = 0;

    for (size_t i = 0; i < n; i++) {
        if (((unsigned char)v[i] & 0xC0) != 0x80)
            total++;
    }
    size_t show = total > 4 ? (total - 1) / 2 : 0;
    if (show > 4)
        show = 4;
    while (start > 0 && chars < show) {
        start--;
        if (((unsigned char)v[start] & 0xC0) != 0x80) {
            chars++;
        }
    }
    sink_put(s, "****", 4);
    if (show > 0) {
        sink_put(s, v + start, n - start);
    }
}

/* 1984-**-**: the year only. */
static void mask_year(const char *v, size_t n, struct sink *s)
{
    if (n < 4 || !all_of(v, 4, is_digit) || (n > 4 && v[4] != '-')) {
        sink_put(s, "***", 3);
    } else {
        sink_put(s, v, 4);
        sink_put(s, "-**-**", 6);
    }
}

/* J***: the first character (UTF-8 aware), then three stars. */
static void mask_initial(const char *v, size_t n, struct sink *s)
{
    uint32_t cp;
    size_t first = n > 0 ? utf8_next(v, n, &cp) : 0;

    sink_put(s, v, first);
    sink_put(s, "***", 3);
}

/* cu_field_mask(f, value, out, outcap): the masked form of a normalised value for display,
 * NUL-terminated in out (never longer than the value plus 8 bytes; truncated to outcap). */
void cu_field_mask(const struct cu_field_def *f, const char *value, char *out, size_t outcap)
{
    size_t n;
    struct sink s;

    CU_ASSERT(f != NULL && value != NULL && (out != NULL || outcap == 0));
    n = strlen(value);
    sink_init(&s, out, outcap);
    switch (f->mask) {
    case CU_MASK_NONE:
        sink_put(&s, value, n);
        break;
    case CU_MASK_EMAIL:
        mask_email(value, n, &s);
        break;
    case CU_MASK_PHONE:
        mask_phone(value, n, &s);
        break;
    case CU_MASK_LAST4:
        mask_last4(value, n, &s);
        break;
    case CU_MASK_YEAR:
        mask_year(value, n, &s);
        break;
    case CU_MASK_INITIAL:
        mask_initial(value, n, &s);
        break;
    default: /* CU_MASK_HIDDEN, and anything unknown shows nothing */
        sink_put(&s, "***", 3);
        break;
    }
    if (s.full && outcap > 0) {
        out[utf8_cut(out, s.len)] = '\0';
    }
}
