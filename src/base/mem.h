/*
 * mem.h - checked allocation.
 *
 * Every allocation in custodia goes through these functions. They return NULL on failure
 * (never abort), check size multiplications for overflow, and can be told to fail the Nth
 * allocation so tests can prove that every failure path unwinds cleanly.
 */
#ifndef CU_BASE_MEM_H
#define CU_BASE_MEM_H

#include <stdbool.h>
#include <stddef.h>

#include "base/err.h"

/* cu_malloc(n): n bytes (n == 0 gives a valid 1-byte block), or NULL. Caller frees with
 * cu_free(). */
CU_WUR void *cu_malloc(size_t n);

/* cu_calloc(count, size): zeroed count*size bytes, or NULL also when the product
 * overflows. Caller frees with cu_free(). */
CU_WUR void *cu_calloc(size_t count, size_t size);

/* cu_reallocarray(p, count, size): resize p to count*size bytes; NULL (p untouched) on
 * failure or overflow. Caller frees with cu_free(). */
CU_WUR void *cu_reallocarray(void *p, size_t count, size_t size);

/* cu_strdup(s): a copy of s, or NULL. Caller frees with cu_free(). */
CU_WUR char *cu_strdup(const char *s);

/* cu_strndup(s, n): a NUL-terminated copy of at most n bytes of s, or NULL. Caller frees
 * with cu_free(). */
CU_WUR char *cu_strndup(const char *s, size_t n);

/* cu_free(p): frees p; cu_free(NULL) does nothing. */
void cu_free(void *p);

/* cu_mem_wipe_block(p): zeroes the whole heap block p (every usable byte of it, which may be
 * more than was asked for) and returns how many bytes that was; NULL gives 0. For memory
 * that a library frees and may have held personal data. */
size_t cu_mem_wipe_block(void *p);

/* cu_mul_ok(a, b, out): true and *out = a*b when the product fits in size_t. */
bool cu_mul_ok(size_t a, size_t b, size_t *out);

/* cu_add_ok(a, b, out): true and *out = a+b when the sum fits in size_t. */
bool cu_add_ok(size_t a, size_t b, size_t *out);

/* cu_mem_fail_at(n): fault injection for tests. The nth allocation from now (1 = the next)
 * and every one after it fail until cu_mem_fail_at(0) turns it off. Process-wide. */
void cu_mem_fail_at(long n);

/* cu_mem_fail_reached(): whether the allocation cu_mem_fail_at(n) named has been reached (so
 * that it and every one since failed); false when injection is off. */
bool cu_mem_fail_reached(void);

#endif
