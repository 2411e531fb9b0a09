/*
 * mem.c - checked allocation with fault injection.
 *
 * Thin wrappers over the C allocator that never abort, refuse size products that overflow,
 * and consult one atomic countdown so a test can make the Nth allocation (and all after it)
 * fail. When fault injection is off the cost is one relaxed atomic load per allocation.
 */
#include "base/mem.h"

#include <malloc.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* 0: off. 1: every allocation fails. k > 1: k-1 more allocations succeed, then they fail. */
static atomic_long fail_countdown;

/* should_fail(): consumes one step of the countdown; true when this allocation must fail. */
static bool should_fail(void)
{
    long v = atomic_load_explicit(&fail_countdown, memory_order_relaxed);

    for (;;) {
        if (v == 0) {
            return false;
        }
        if (v == 1) {
            return true;
        }
        if (atomic_compare_exchange_weak_explicit(&fail_countdown, &v, v - 1, memory_order_relaxed,
                                                  memory_order_relaxed)) {
            return false;
        }
    }
}

/* cu_mem_fail_at(n): the nth allocation from now and every one after it fail; 0 turns it
 * off. */
void cu_mem_fail_at(long n)
{
    atomic_store_explicit(&fail_countdown, n > 0 ? n : 0, memory_order_relaxed);
}

/* cu_mem_fail_reached(): whether the allocation cu_mem_fail_at(n) named has been reached. */
bool cu_mem_fail_reached(void)
{
    return atomic_load_explicit(&fail_countdown, memory_order_relaxed) == 1;
}

/* cu_mul_ok(a, b, out): true and *out = a*b when the product fits in size_t. */
bool cu_mul_ok(size_t a, size_t b, size_t *out)
{
    return !__builtin_mul_overflow(a, b, out);
}

/* cu_add_ok(a, b, out): true and *out = a+b when the sum fits in size_t. */
bool cu_add_ok(size_t a, size_t b, size_t *out)
{
    return !__builtin_add_overflow(a, b, out);
}

/* cu_malloc(n): n bytes (n == 0 gives a valid 1-byte block), or NULL. */
void *cu_malloc(size_t n)
{
    if (should_fail()) {
        return NULL;
    }
    return malloc(n ? n : 1);
}

/* cu_calloc(count, size): zeroed count*size bytes, or NULL also on overflow. */
void *cu_calloc(size_t count, size_t size)
{
    size_t total;

    if (!cu_mul_ok(count, size, &total) || should_fail()) {
        return NULL;
    }
    return calloc(total ? total : 1, 1);
}

/* cu_reallocarray(p, count, size): resize p to count*size bytes; NULL (p untouched) on
 * failure or overflow. */
void *cu_reallocarray(void *p, size_t count, size_t size)
{
    size_t total;

    if (!cu_mul_ok(count, size, &total) || should_fail()) {
        return NULL;
    }
    /* realloc(p, 0) may free p; keep the "valid 1-byte block" promise of cu_malloc. */
    return realloc(p, total ? total : 1);
}

/* cu_strdup(s): a copy of s, or NULL. */
char *cu_strdup(const char *s)
{
    return cu_strndup(s, strlen(s));
}

/* cu_strndup(s, n): a NUL-terminated copy of at most n bytes of s, or NULL. */
char *cu_strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = cu_malloc(len + 1);

    if (p != NULL) {
        memcpy(p, s, len);
        p[len] = '\0';
    }
    return p;
}

/* cu_free(p): frees p; cu_free(NULL) does nothing. */
void cu_free(void *p)
{
    free(p);
}

/* cu_mem_wipe_block(p): zeroes every usable byte of the heap block p; returns how many. */
size_t cu_mem_wipe_block(void *p)
{
    if (p == NULL)
        return 0;
    size_t n = malloc_usable_size(p);
    explicit_bzero(p, n);
    return n;
}
