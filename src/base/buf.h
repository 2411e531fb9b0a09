/*
 * buf.h - capped growable byte buffers.
 *
 * A cu_buf grows as data is appended but never beyond its cap: an append that would pass the
 * cap fails with CU_E_TOO_LARGE and leaves the buffer as it was. Everything that an outsider
 * controls the size of is gathered in one. The data is always NUL-terminated.
 */
#ifndef CU_BASE_BUF_H
#define CU_BASE_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "base/err.h"

struct cu_buf {
    char *data;  /* NULL until the first append */
    size_t len;  /* bytes used, not counting the terminating NUL */
    size_t size; /* bytes allocated */
    size_t max;  /* the cap on len */
};

/* cu_buf_init(b, max): an empty buffer that may hold up to max bytes. */
void cu_buf_init(struct cu_buf *b, size_t max);

/* cu_buf_reserve(b, extra): room for extra more bytes at once; a hint (on failure b is as it
 * was, and appends report the error). */
void cu_buf_reserve(struct cu_buf *b, size_t extra);

/* cu_buf_extend(b, n, at): appends n bytes of room and points *at at them for the caller to
 * fill (at once, before any other change to b). Errors as cu_buf_append. */
CU_WUR enum cu_err cu_buf_extend(struct cu_buf *b, size_t n, char **at);

/* cu_buf_append(b, p, n): appends n bytes at p. CU_E_TOO_LARGE past the cap, CU_E_NOMEM
 * when allocation fails; on error b is unchanged. */
CU_WUR enum cu_err cu_buf_append(struct cu_buf *b, const void *p, size_t n);

/* cu_buf_append_str(b, s): appends the string s without its NUL. */
CU_WUR enum cu_err cu_buf_append_str(struct cu_buf *b, const char *s);

/* cu_buf_printf(b, fmt, ...): appends formatted text. */
CU_WUR enum cu_err cu_buf_printf(struct cu_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* cu_buf_vprintf(b, fmt, ap): appends formatted text. */
CU_WUR enum cu_err cu_buf_vprintf(struct cu_buf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/* cu_buf_cstr(b): the contents as a NUL-terminated string ("" when empty); owned by b. */
const char *cu_buf_cstr(const struct cu_buf *b);

/* cu_buf_reset(b): empties b and keeps its memory. */
void cu_buf_reset(struct cu_buf *b);

/* cu_buf_steal(b): hands the data to the caller (who frees it with cu_free) and leaves b
 * empty; returns NULL if nothing was ever appended. */
char *cu_buf_steal(struct cu_buf *b);

/* cu_buf_free(b): releases the memory (wiping it first) and leaves b empty; safe twice. */
void cu_buf_free(struct cu_buf *b);

#endif
