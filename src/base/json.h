/*
 * json.h - helpers over jansson.
 *
 * Parsing is strict: duplicate keys are rejected, the input has a size cap, and the top level
 * must be an object. Field getters enforce type, presence and a length limit and name the
 * offending field in their error message so an API can say exactly what was wrong.
 */
#ifndef CU_BASE_JSON_H
#define CU_BASE_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "base/err.h"

/* Bytes for an error message from these helpers. */
#define CU_JSON_ERR_BYTES 256

/* cu_json_setup(): makes jansson zero every block it frees (the trees of parsed request bodies
 * hold personal data). Call once, first thing in main, before any other jansson call. */
void cu_json_setup(void);

/* cu_json_parse_object(data, len, out, err): parses len bytes of data as one JSON object
 * (duplicate keys rejected, no trailing data). On error writes a message naming the line and
 * column into err (CU_JSON_ERR_BYTES) and returns CU_E_INVALID. Caller frees *out with
 * json_decref(). */
CU_WUR enum cu_err cu_json_parse_object(const char *data, size_t len, json_t **out,
                                        char err[CU_JSON_ERR_BYTES]);

/* cu_json_only_keys(obj, allowed, n, bad): CU_OK when every key of obj is in allowed[0..n);
 * otherwise CU_E_INVALID and *bad points at the first unknown key (owned by obj). */
CU_WUR enum cu_err cu_json_only_keys(const json_t *obj, const char *const *allowed, size_t n,
                                     const char **bad);

/* cu_json_get_string(obj, key, required, maxlen, out, err): *out = the string at key (owned by
 * obj), or NULL when absent and not required. CU_E_INVALID when missing and required, not a
 * string, empty, or containing a NUL; CU_E_TOO_LARGE when longer than maxlen bytes. err names
 * the key. */
CU_WUR enum cu_err cu_json_get_string(const json_t *obj, const char *key, bool required,
                                      size_t maxlen, const char **out, char err[CU_JSON_ERR_BYTES]);

/* cu_json_get_int(obj, key, required, min, max, out, err): *out = the integer at key (left as
 * is when absent and not required). CU_E_INVALID when missing and required, not an integer,
 * or outside [min, max]; err names the key. */
CU_WUR enum cu_err cu_json_get_int(const json_t *obj, const char *key, bool required, int64_t min,
                                   int64_t max, int64_t *out, char err[CU_JSON_ERR_BYTES]);

/* cu_json_get_bool(obj, key, required, out, err): *out = the boolean at key. */
CU_WUR enum cu_err cu_json_get_bool(const json_t *obj, const char *key, bool required, bool *out,
                                    char err[CU_JSON_ERR_BYTES]);

/* cu_utf8_valid(s, n): whether the n bytes at s are well-formed UTF-8 (no overlong forms,
 * surrogates or code points past U+10FFFF). */
bool cu_utf8_valid(const char *s, size_t n);

/* cu_utf8_cut(s, max): the length of s cut to at most max bytes without splitting a UTF-8
 * sequence (s is valid UTF-8), so that a cut value stays valid text. */
size_t cu_utf8_cut(const char *s, size_t max);

/* cu_json_dump(v): compact JSON text for v, or NULL on allocation failure. Caller frees with
 * free() (jansson's allocator). */
CU_WUR char *cu_json_dump(const json_t *v);

/* cu_json_escape(b, s, n): appends the JSON string literal (with quotes) for the n bytes at s
 * to b; invalid UTF-8 bytes and control characters are escaped or replaced. */
struct cu_buf;
CU_WUR enum cu_err cu_json_escape(struct cu_buf *b, const char *s, size_t n);

/* The longest member name cu_json_put_key writes. */
#define CU_JSON_KEY_MAX 64

/* cu_json_put_key(b, key, first): appends "key": to b, after a comma unless first, for JSON
 * written directly into a buffer. key is a member name chosen by the code (plain ASCII that
 * needs no escaping, shorter than CU_JSON_KEY_MAX), never text from outside. */
CU_WUR enum cu_err cu_json_put_key(struct cu_buf *b, const char *key, bool first);

/* cu_json_put_string(b, key, value): appends ,"key":"value" to b, value escaped as
 * cu_json_escape does; on error b is as it was. */
CU_WUR enum cu_err cu_json_put_string(struct cu_buf *b, const char *key, const char *value);

/* cu_json_put_time(b, key, ms): appends ,"key":"<ms as RFC 3339 UTC>" to b; on error b is as
 * it was. */
CU_WUR enum cu_err cu_json_put_time(struct cu_buf *b, const char *key, int64_t ms);

/* cu_json_canonical(v, b): appends v to b as canonical JSON: compact, object keys sorted
 * bytewise, strings escaped as cu_json_escape does, integers in decimal. The audit log
 * hashes the text, so the same value always gives the same bytes. CU_E_INVALID for nesting
 * deeper than 32 levels; on error b is as it was. */
CU_WUR enum cu_err cu_json_canonical(const json_t *v, struct cu_buf *b);

/* cu_json_escape_chars(dst, cap, s, n, used): the allocation-free core of cu_json_escape
 * (log.c uses it too): writes the escaped body of a JSON string literal (no quotes, no NUL)
 * for as many whole characters of the n bytes at s as fit in cap bytes at dst, sets *used to
 * the input bytes consumed (n when all fit) and returns the bytes written. */
size_t cu_json_escape_chars(char *dst, size_t cap, const char *s, size_t n, size_t *used);

#endif
