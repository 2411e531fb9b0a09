/*
 * text.h - ASCII case mapping, the one place for it: by table, so no arithmetic on char needs
 * narrowing back. Only ASCII letters change; every other byte (UTF-8 included) is kept. And
 * the copy of a counted string into a fixed buffer, which hot paths (rows read from the
 * store) did with snprintf and "%.*s" at many times the cost. And hex digits' values.
 */
#ifndef CU_BASE_TEXT_H
#define CU_BASE_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* cu_ascii_lower(c): c lower-cased if it is an ASCII capital, else c. */
static inline char cu_ascii_lower(char c)
{
    static const char lower_of[] = "abcdefghijklmnopqrstuvwxyz";
    if (c < 'A' || c > 'Z')
        return c;
    return lower_of[c - 'A'];
}

/* cu_tchar(c): whether byte c may appear in an HTTP token (RFC 9110 section 5.6.2). */
static inline bool cu_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* cu_hex_digit(c): the value of hex digit c (either case), or -1 when c is none. */
static inline int cu_hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* cu_ascii_upper(c): c upper-cased if it is an ASCII small letter, else c. */
static inline char cu_ascii_upper(char c)
{
    static const char upper_of[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    if (c < 'a' || c > 'z')
        return c;
    return upper_of[c - 'a'];
}

/* cu_text_copy(dst, cap, src, n): the n bytes at src, cut to cap - 1, as a string in dst
 * (cap > 0); src may be NULL when n is 0. */
static inline void cu_text_copy(char *dst, size_t cap, const char *src, size_t n)
{
    if (n > cap - 1)
        n = cap - 1;
    if (n > 0)
        memcpy(dst, src, n);
    dst[n] = '\0';
}

/* Room for any int64_t in decimal, sign included, without a NUL. */
#define CU_I64_TEXT_BYTES 20

/* cu_text_i64(out, v): writes v in decimal at out (no NUL) and returns the length; for hot
 * paths (log lines, canonical JSON) where snprintf costs more than the rest of the line. */
static inline size_t cu_text_i64(char out[CU_I64_TEXT_BYTES], int64_t v)
{
    char rev[CU_I64_TEXT_BYTES];
    size_t n = 0, k = 0;
    /* The magnitude as unsigned, so the most negative value needs no special case. */
    uint64_t m = v < 0 ? 0u - (uint64_t)v : (uint64_t)v;
    do {
        rev[n++] = (char)('0' + m % 10u);
        m /= 10u;
    } while (m > 0);
    if (v < 0)
        out[k++] = '-';
    while (n > 0)
        out[k++] = rev[--n];
    return k;
}

#endif
