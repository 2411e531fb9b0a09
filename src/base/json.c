/*
 * json.c - strict JSON helpers over jansson, and the JSON string escaper.
 *
 * Parsing refuses duplicate keys, trailing data and any top level but an object. Getters
 * check type, presence and limits and write an error naming the field, so an API handler can
 * turn a bad request into a precise problem detail in one line. The escaper (used here for
 * cu_buf output and by log.c for its stack-buffered lines) always yields valid JSON: it
 * escapes quotes, backslashes and control characters and replaces each byte that is not
 * part of well-formed UTF-8 with U+FFFD.
 */
#include "base/json.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/mem.h"
#include "base/text.h"

/* Through cu_malloc, so that fault injection reaches jansson's allocations too. */
static void *json_alloc(size_t n)
{
    return cu_malloc(n);
}

static void json_release(void *p)
{
    cu_mem_wipe_block(p);
    free(p);
}

/* cu_json_setup(): jansson's frees zero the block first. */
void cu_json_setup(void)
{
    json_set_alloc_funcs(json_alloc, json_release);
}

/* set_err(err, fmt, ...): formats into err when the caller gave one. */
__attribute__((format(printf, 2, 3))) static void set_err(char *err, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(err, CU_JSON_ERR_BYTES, fmt, ap);
    va_end(ap);
}

/* cu_json_parse_object(data, len, out, err): parses len bytes as one JSON object. Caller
 * frees *out with json_decref(). */
enum cu_err cu_json_parse_object(const char *data, size_t len, json_t **out,
                                 char err[CU_JSON_ERR_BYTES])
{
    enum cu_err rc = CU_OK;
    json_error_t jerr;
    json_t *v;

    *out = NULL;
    v = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
    if (v == NULL) {
        /* jansson ends most messages with " near '<text>'", a piece of the input, which may be
         * personal data or a secret: the reason and the position are enough. */
        char *near = strstr(jerr.text, " near ");
        if (near != NULL)
            *near = '\0';
        set_err(err, "invalid JSON at line %d column %d: %s", jerr.line, jerr.column, jerr.text);
        rc = CU_E_INVALID;
        goto out;
    }
    if (!json_is_object(v)) {
        set_err(err, "invalid JSON at line 1 column 1: the top level must be an object");
        json_decref(v);
        rc = CU_E_INVALID;
        goto out;
    }
    *out = v;
out:
    return rc;
}

/* key_allowed(key, allowed, n): whether key is one of allowed[0..n). */
static bool key_allowed(const char *key, const char *const *allowed, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(key, allowed[i]) == 0) {
            return true;
        }
    }
    return false;
}

/* cu_json_only_keys(obj, allowed, n, bad): CU_OK when every key of obj is in allowed[0..n);
 * otherwise CU_E_INVALID and *bad points at the first unknown key (owned by obj). */
enum cu_err cu_json_only_keys(const json_t *obj, const char *const *allowed, size_t n,
                              const char **bad)
{
    enum cu_err rc = CU_OK;
    void *it;

    *bad = NULL;
    if (!json_is_object(obj)) {
        rc = CU_E_INVALID;
        goto out;
    }
    /* jansson's iterator API takes a non-const object but does not modify it. */
    for (it = json_object_iter((json_t *)obj); it != NULL;
         it = json_object_iter_next((json_t *)obj, it)) {
        const char *key = json_object_iter_key(it);

        if (!key_allowed(key, allowed, n)) {
            *bad = key;
            rc = CU_E_INVALID;
            goto out;
        }
    }
out:
    return rc;
}

/* lookup(obj, key, required, v, err): *v = the member at key or NULL. CU_E_INVALID when it
 * is absent but required (or obj is not an object). */
static enum cu_err lookup(const json_t *obj, const char *key, bool required, json_t **v, char *err)
{
    enum cu_err rc = CU_OK;

    *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
    if (*v == NULL && required) {
        set_err(err, "field '%s' is required", key);
        rc = CU_E_INVALID;
    }
    return rc;
}

/* cu_json_get_string(obj, key, required, maxlen, out, err): *out = the string at key (owned
 * by obj), or NULL when absent and not required. */
enum cu_err cu_json_get_string(const json_t *obj, const char *key, bool required, size_t maxlen,
                               const char **out, char err[CU_JSON_ERR_BYTES])
{
    enum cu_err rc;
    json_t *v;
    size_t len;

    *out = NULL;
    rc = lookup(obj, key, required, &v, err);
    if (rc != CU_OK || v == NULL) {
        goto out;
    }
    rc = CU_E_INVALID;
    if (!json_is_string(v)) {
        set_err(err, "field '%s' must be a string of at most %zu bytes", key, maxlen);
        goto out;
    }
    len = json_string_length(v);
    if (len == 0) {
        set_err(err, "field '%s' must not be empty", key);
    } else if (memchr(json_string_value(v), '\0', len) != NULL) {
        set_err(err, "field '%s' must not contain a NUL character", key);
    } else if (len > maxlen) {
        set_err(err, "field '%s' must be a string of at most %zu bytes", key, maxlen);
        rc = CU_E_TOO_LARGE;
    } else {
        *out = json_string_value(v);
        rc = CU_OK;
    }
out:
    return rc;
}

/* cu_json_get_int(obj, key, required, min, max, out, err): *out = the integer at key (left
 * as is when absent and not required). */
enum cu_err cu_json_get_int(const json_t *obj, const char *key, bool required, int64_t min,
                            int64_t max, int64_t *out, char err[CU_JSON_ERR_BYTES])
{
    enum cu_err rc;
    json_int_t i;
    json_t *v;

    rc = lookup(obj, key, required, &v, err);
    if (rc != CU_OK || v == NULL) {
        goto out;
    }
    i = json_is_integer(v) ? json_integer_value(v) : 0;
    if (!json_is_integer(v) || i < min || i > max) {
        set_err(err, "field '%s' must be an integer from %" PRId64 " to %" PRId64, key, min, max);
        rc = CU_E_INVALID;
        goto out;
    }
    *out = (int64_t)i;
out:
    return rc;
}

/* cu_json_get_bool(obj, key, required, out, err): *out = the boolean at key (left as is
 * when absent and not required). */
enum cu_err cu_json_get_bool(const json_t *obj, const char *key, bool required, bool *out,
                             char err[CU_JSON_ERR_BYTES])
{
    enum cu_err rc;
    json_t *v;

    rc = lookup(obj, key, required, &v, err);
    if (rc != CU_OK || v == NULL) {
        goto out;
    }
    if (!json_is_boolean(v)) {
        set_err(err, "field '%s' must be true or false", key);
        rc = CU_E_INVALID;
        goto out;
    }
    *out = json_is_true(v);
out:
    return rc;
}

/* cu_json_dump(v): compact JSON text for v, or NULL on allocation failure. Caller frees with
 * free(). */
char *cu_json_dump(const json_t *v)
{
    return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
}

/* utf8_seq(s, n): the length (1..4) of the well-formed UTF-8 sequence at s, or 0 when the
 * byte at s does not start one (overlong forms, surrogates, past U+10FFFF, cut short). */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0], lo = 0x80, hi = 0xBF;
    size_t len;

    if (c < 0x80) {
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        lo = c == 0xE0 ? 0xA0 : lo;
        hi = c == 0xED ? 0x9F : hi;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        lo = c == 0xF0 ? 0x90 : lo;
        hi = c == 0xF4 ? 0x8F : hi;
    } else {
        return 0;
    }
    if (n < len || s[1] < lo || s[1] > hi) {
        return 0;
    }
    for (size_t i = 2; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            return 0;
        }
    }
    return len;
}

bool cu_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t l = utf8_seq(p + i, n - i);
        if (l == 0)
            return false;
        i += l;
    }
    return true;
}

/* escape_one(s, n, tmp, used): the escaped form of the character at s into tmp (at most 6
 * bytes); returns its length and sets *used to the input bytes it stands for. */
static size_t escape_one(const unsigned char *s, size_t n, char tmp[8], size_t *used)
{
    static const char hex[] = "0123456789abcdef";
    static const char replacement[3] = {'\xef', '\xbf', '\xbd'}; /* U+FFFD in UTF-8 */
    size_t len = utf8_seq(s, n);

    *used = len ? len : 1;
    if (len == 0) {
        memcpy(tmp, replacement, sizeof replacement);
        return sizeof replacement;
    }
    if (len > 1 || (s[0] >= 0x20 && s[0] != 0x7f && s[0] != '"' && s[0] != '\\')) {
        memcpy(tmp, s, len);
        return len;
    }
    tmp[0] = '\\';
    switch (s[0]) {
    case '"':
        tmp[1] = '"';
        return 2;
    case '\\':
        tmp[1] = '\\';
        return 2;
    case '\b':
        tmp[1] = 'b';
        return 2;
    case '\f':
        tmp[1] = 'f';
        return 2;
    case '\n':
        tmp[1] = 'n';
        return 2;
    case '\r':
        tmp[1] = 'r';
        return 2;
    case '\t':
        tmp[1] = 't';
        return 2;
    default:
        break;
    }
    tmp[1] = 'u';
    tmp[2] = '0';
    tmp[3] = '0';
    tmp[4] = hex[s[0] >> 4];
    tmp[5] = hex[s[0] & 0xf];
    return 6;
}

/* plain_char(c): whether byte c stands for itself inside a JSON string literal. */
static bool plain_char(unsigned char c)
{
    return c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
}

/* cu_json_escape_chars(dst, cap, s, n, used): writes the escaped body of a JSON string
 * literal (no quotes, no NUL) for as many whole characters of the n bytes at s as fit in cap
 * bytes at dst; *used = the input bytes consumed (n when everything fit). Returns the bytes
 * written. Never allocates. */
size_t cu_json_escape_chars(char *dst, size_t cap, const char *s, size_t n, size_t *used)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t in = 0, outlen = 0;

    while (in < n) {
        /* A run of printable ASCII other than the quote and the backslash goes as it is. */
        size_t run = 0;
        while (in + run < n && run < cap - outlen && plain_char(u[in + run]))
            run++;
        if (run > 0) {
            memcpy(dst + outlen, u + in, run);
            outlen += run;
            in += run;
            continue;
        }
        char tmp[8];
        size_t step, k = escape_one(u + in, n - in, tmp, &step);

        if (k > cap - outlen) {
            break;
        }
        memcpy(dst + outlen, tmp, k);
        outlen += k;
        in += step;
    }
    *used = in;
    return outlen;
}

/* cu_json_put_key(b, key, first): appends "key": to b, after a comma unless first, for JSON
 * written directly into a buffer. key is a member name chosen by the code (plain ASCII that
 * needs no escaping, shorter than CU_JSON_KEY_MAX), never text from outside. */
enum cu_err cu_json_put_key(struct cu_buf *b, const char *key, bool first)
{
    size_t kl = strnlen(key, CU_JSON_KEY_MAX), n = (first ? 0 : 1) + kl + 3;
    char *at = NULL;
    enum cu_err rc;

    CU_ASSERT(kl < CU_JSON_KEY_MAX);
    rc = cu_buf_extend(b, n, &at);
    if (rc == CU_OK) {
        if (!first)
            *at++ = ',';
        *at++ = '"';
        memcpy(at, key, kl);
        at[kl] = '"';
        at[kl + 1] = ':';
    }
    return rc;
}

/* cu_json_put_string(b, key, value): appends ,"key":"value" to b, value escaped as
 * cu_json_escape does; on error b is as it was. */
enum cu_err cu_json_put_string(struct cu_buf *b, const char *key, const char *value)
{
    size_t old = b->len;
    enum cu_err rc = cu_json_put_key(b, key, false);

    if (rc == CU_OK)
        rc = cu_json_escape(b, value, strlen(value));
    if (rc != CU_OK && b->data != NULL) {
        b->len = old;
        b->data[old] = '\0';
    }
    return rc;
}

/* cu_json_put_time(b, key, ms): appends ,"key":"<ms as RFC 3339 UTC>" to b; on error b is as
 * it was. */
enum cu_err cu_json_put_time(struct cu_buf *b, const char *key, int64_t ms)
{
    char t[CU_RFC3339_BYTES];
    cu_clock_format(ms, t);
    return cu_json_put_string(b, key, t);
}

/* cu_json_escape(b, s, n): appends the JSON string literal (with quotes) for the n bytes at
 * s to b; on error b is unchanged. */
enum cu_err cu_json_escape(struct cu_buf *b, const char *s, size_t n)
{
    size_t old_len = b->len, off = 0;
    const unsigned char *u = (const unsigned char *)s;
    enum cu_err rc;

    /* The opening quote and the run of characters that need no escape go in one append;
     * most strings are nothing but such a run, and end here with their closing quote. */
    while (off < n && plain_char(u[off]))
        off++;
    size_t whole = off == n ? 1 : 0;
    char *at = NULL;
    if (off > SIZE_MAX - 2)
        return CU_E_TOO_LARGE;
    rc = cu_buf_extend(b, off + 1 + whole, &at);
    if (rc != CU_OK)
        return rc;
    at[0] = '"';
    if (off > 0)
        memcpy(at + 1, s, off);
    if (whole) {
        at[off + 1] = '"';
        return CU_OK;
    }

    while (rc == CU_OK && off < n) {
        char chunk[256];
        size_t used, k = cu_json_escape_chars(chunk, sizeof chunk, s + off, n - off, &used);

        rc = cu_buf_append(b, chunk, k);
        off += used;
    }
    if (rc == CU_OK) {
        rc = cu_buf_append(b, "\"", 1);
    }
    if (rc != CU_OK && b->data != NULL) {
        b->len = old_len;
        b->data[old_len] = '\0';
    }
    return rc;
}

/* ---- canonical form ---- */

#define CANONICAL_DEPTH 32

struct key_ref {
    const char *key;
    size_t len;
    const json_t *value;
};

static int key_cmp(const void *a, const void *b)
{
    const struct key_ref *x = a, *y = b;
    int c = memcmp(x->key, y->key, x->len < y->len ? x->len : y->len);
    return c != 0 ? c : (x->len > y->len) - (x->len < y->len);
}

static enum cu_err put_int(struct cu_buf *b, json_int_t v)
{
    char digits[CU_I64_TEXT_BYTES];
    return cu_buf_append(b, digits, cu_text_i64(digits, (int64_t)v));
}

static enum cu_err canonical(const json_t *v, struct cu_buf *b, int depth);

// NOLINTNEXTLINE(misc-no-recursion): at most CANONICAL_DEPTH deep, checked by canonical
static enum cu_err canonical_object(const json_t *v, struct cu_buf *b, int depth)
{
    struct key_ref small[16], *keys = small;
    size_t n = json_object_size(v), i = 0;
    const char *k;
    const json_t *x;
    enum cu_err rc = CU_OK;

    if (n > sizeof(small) / sizeof(small[0]) && (keys = cu_calloc(n, sizeof(*keys))) == NULL)
        return CU_E_NOMEM;
    json_object_foreach((json_t *)v, k, x)
    {
        keys[i].key = k;
        keys[i].len = strlen(k);
        keys[i].value = x;
        i++;
    }
    qsort(keys, n, sizeof(*keys), key_cmp);
    rc = cu_buf_append(b, "{", 1);
    for (i = 0; rc == CU_OK && i < n; i++) {
        if (i > 0)
            rc = cu_buf_append(b, ",", 1);
        if (rc == CU_OK)
            rc = cu_json_escape(b, keys[i].key, keys[i].len);
        if (rc == CU_OK)
            rc = cu_buf_append(b, ":", 1);
        if (rc == CU_OK)
            rc = canonical(keys[i].value, b, depth + 1);
    }
    if (rc == CU_OK)
        rc = cu_buf_append(b, "}", 1);
    if (keys != small)
        cu_free(keys);
    return rc;
}

// NOLINTNEXTLINE(misc-no-recursion): at most CANONICAL_DEPTH deep, checked on entry
static enum cu_err canonical(const json_t *v, struct cu_buf *b, int depth)
{
    enum cu_err rc = CU_OK;

    if (depth > CANONICAL_DEPTH)
        return CU_E_INVALID;
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return canonical_object(v, b, depth);
    case JSON_ARRAY:
        rc = cu_buf_append(b, "[", 1);
        for (size_t i = 0; rc == CU_OK && i < json_array_size(v); i++) {
            if (i > 0)
                rc = cu_buf_append(b, ",", 1);
            if (rc == CU_OK)
                rc = canonical(json_array_get(v, i), b, depth + 1);
        }
        return rc == CU_OK ? cu_buf_append(b, "]", 1) : rc;
    case JSON_STRING:
        return cu_json_escape(b, json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
        return put_int(b, json_integer_value(v));
    case JSON_REAL: {
        /* Rare in records; jansson's shortest round-trip form. */
        char *t = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        if (t == NULL)
            return CU_E_NOMEM;
        rc = cu_buf_append_str(b, t);
        free(t);
        return rc;
    }
    case JSON_TRUE:
        return cu_buf_append(b, "true", 4);
    case JSON_FALSE:
        return cu_buf_append(b, "false", 5);
    case JSON_NULL:
        return cu_buf_append(b, "null", 4);
    }
    return CU_E_INVALID;
}

enum cu_err cu_json_canonical(const json_t *v, struct cu_buf *b)
{
    size_t old = b->len;
    enum cu_err rc = v != NULL ? canonical(v, b, 0) : CU_E_INVALID;
    if (rc != CU_OK && b->data != NULL) {
        b->len = old;
        b->data[old] = '\0';
    }
    return rc;
}

/* cu_utf8_cut(s, max): the length of s cut to at most max bytes without splitting a UTF-8
 * sequence (s is valid UTF-8), so a cut value stays valid text. */
size_t cu_utf8_cut(const char *s, size_t max)
{
    size_t n = strnlen(s, max);
    if (s[n] == '\0')
        return n;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    return n;
}
