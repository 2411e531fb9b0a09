/*
 * buf.c - capped growable byte buffers.
 *
 * Growth is geometric (doubling from 64 bytes) but never allocates more than max+1 bytes,
 * so the cap bounds memory as well as length. Growth moves the data to a fresh block and
 * wipes the old one, and cu_buf_free wipes before freeing, so bytes that passed through a
 * buffer (request bodies, replies) do not linger in freed heap memory.
 */
#include "base/buf.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "base/mem.h"

#define BUF_MIN_SIZE 64

/* cu_buf_init(b, max): an empty buffer that may hold up to max bytes. */
void cu_buf_init(struct cu_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->size = 0;
    b->max = max;
}

/* grow_size(b, need): the block size to allocate for need bytes plus the NUL. */
static size_t grow_size(const struct cu_buf *b, size_t need)
{
    size_t limit = b->max == SIZE_MAX ? SIZE_MAX : b->max + 1;
    size_t size = b->size ? b->size : BUF_MIN_SIZE;

    while (size < need + 1 && size <= limit / 2) {
        size *= 2;
    }
    if (size < need + 1 || size > limit) {
        size = limit;
    }
    return size;
}

/* reserve(b, extra): makes room for len+extra bytes plus the NUL. CU_E_TOO_LARGE past the
 * cap, CU_E_NOMEM when allocation fails; b is unchanged on error. */
static enum cu_err reserve(struct cu_buf *b, size_t extra)
{
    enum cu_err rc = CU_OK;
    size_t need, size;
    char *p;

    if (!cu_add_ok(b->len, extra, &need) || need > b->max || need == SIZE_MAX) {
        rc = CU_E_TOO_LARGE;
        goto out;
    }
    if (b->data != NULL && need < b->size) {
        goto out;
    }
    size = grow_size(b, need);
    p = cu_malloc(size);
    if (p == NULL) {
        rc = CU_E_NOMEM;
        goto out;
    }
    if (b->data != NULL) {
        memcpy(p, b->data, b->len);
        explicit_bzero(b->data, b->size);
        cu_free(b->data);
    }
    p[b->len] = '\0';
    b->data = p;
    b->size = size;
out:
    return rc;
}

/* cu_buf_reserve(b, extra): makes room for extra more bytes at once, so that appends up to
 * them copy no more. A hint: on failure (the cap, memory) b is unchanged and appends report
 * the error themselves. */
void cu_buf_reserve(struct cu_buf *b, size_t extra)
{
    (void)reserve(b, extra);
}

/* cu_buf_extend(b, n, at): appends n bytes of room and sets *at to them, for the caller to
 * fill at once; on error b is unchanged. */
enum cu_err cu_buf_extend(struct cu_buf *b, size_t n, char **at)
{
    enum cu_err rc = reserve(b, n);

    if (rc == CU_OK) {
        *at = b->data + b->len;
        b->len += n;
        b->data[b->len] = '\0';
    }
    return rc;
}

/* cu_buf_append(b, p, n): appends n bytes at p; on error b is unchanged. */
enum cu_err cu_buf_append(struct cu_buf *b, const void *p, size_t n)
{
    enum cu_err rc = reserve(b, n);

    if (rc == CU_OK && n > 0) {
        memcpy(b->data + b->len, p, n);
        b->len += n;
        b->data[b->len] = '\0';
    }
    return rc;
}

/* cu_buf_append_str(b, s): appends the string s without its NUL. */
enum cu_err cu_buf_append_str(struct cu_buf *b, const char *s)
{
    return cu_buf_append(b, s, strlen(s));
}

/* cu_buf_printf(b, fmt, ...): appends formatted text. */
enum cu_err cu_buf_printf(struct cu_buf *b, const char *fmt, ...)
{
    enum cu_err rc;
    va_list ap;

    va_start(ap, fmt);
    rc = cu_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

/* format_into(b, fmt, ap): vsnprintf into the free space of b; the length the text needs,
 * or -1 on an encoding error. Does not change b->len. */
__attribute__((format(printf, 2, 0))) static int format_into(struct cu_buf *b, const char *fmt,
                                                             va_list ap)
{
    va_list cp;
    int n;

    va_copy(cp, ap);
    if (b->data == NULL) {
        n = vsnprintf(NULL, 0, fmt, cp);
    } else {
        n = vsnprintf(b->data + b->len, b->size - b->len, fmt, cp);
    }
    va_end(cp);
    return n;
}

/* cu_buf_vprintf(b, fmt, ap): appends formatted text; on error b is unchanged. */
enum cu_err cu_buf_vprintf(struct cu_buf *b, const char *fmt, va_list ap)
{
    enum cu_err rc = CU_OK;
    int n = format_into(b, fmt, ap);

    if (n < 0) {
        rc = CU_E_INVALID;
        goto out;
    }
    if (b->data == NULL || (size_t)n >= b->size - b->len) {
        rc = reserve(b, (size_t)n);
        if (rc != CU_OK) {
            goto out;
        }
        n = format_into(b, fmt, ap);
        CU_ASSERT(n >= 0 && (size_t)n < b->size - b->len);
    }
    b->len += (size_t)n;
out:
    if (b->data != NULL) {
        b->data[b->len] = '\0'; /* undo a truncated first attempt */
    }
    return rc;
}

/* cu_buf_cstr(b): the contents as a NUL-terminated string ("" when empty); owned by b. */
const char *cu_buf_cstr(const struct cu_buf *b)
{
    return b->data != NULL ? b->data : "";
}

/* cu_buf_reset(b): empties b (wiping what it held) and keeps its memory. */
void cu_buf_reset(struct cu_buf *b)
{
    if (b->data != NULL) {
        explicit_bzero(b->data, b->len);
        b->data[0] = '\0';
    }
    b->len = 0;
}

/* cu_buf_steal(b): hands the data to the caller (who frees it with cu_free) and leaves b
 * empty; returns NULL if nothing was ever appended. */
char *cu_buf_steal(struct cu_buf *b)
{
    char *p = b->data;

    b->data = NULL;
    b->len = 0;
    b->size = 0;
    return p;
}

/* cu_buf_free(b): releases the memory (wiping it first) and leaves b empty; safe twice. */
void cu_buf_free(struct cu_buf *b)
{
    if (b->data != NULL) {
        explicit_bzero(b->data, b->size);
        cu_free(b->data);
    }
    b->data = NULL;
    b->len = 0;
    b->size = 0;
}
