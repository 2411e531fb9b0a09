/*
 * test_mem.c - checked allocation: zero sizes, overflow refusal, and fault injection that
 * fails exactly the Nth allocation and every one after it, also across threads.
 */
#include "cu_test.h"

#include <pthread.h>
#include <stdint.h>

#include "base/mem.h"

static int teardown(void **state)
{
    cu_mem_fail_at(0);
    return 0;
}

static void test_zero_sizes(void **state)
{
    void *p = cu_malloc(0);
    void *q = cu_calloc(0, 8);

    assert_non_null(p);
    assert_non_null(q);
    p = cu_reallocarray(p, 0, 4);
    assert_non_null(p);
    cu_free(p);
    cu_free(q);
    cu_free(NULL);
}

static void test_calloc_zeroes_and_refuses_overflow(void **state)
{
    unsigned char *p = cu_calloc(16, 4);

    assert_non_null(p);
    for (int i = 0; i < 64; i++) {
        assert_int_equal(p[i], 0);
    }
    cu_free(p);
    assert_null(cu_calloc(SIZE_MAX / 2, 3));
}

static void test_reallocarray_keeps_block_on_failure(void **state)
{
    char *p = cu_malloc(4);
    char *q;

    assert_non_null(p);
    memcpy(p, "abc", 4);
    assert_null(cu_reallocarray(p, SIZE_MAX / 4, 8));
    assert_string_equal(p, "abc");
    cu_mem_fail_at(1);
    assert_null(cu_reallocarray(p, 100, 1));
    cu_mem_fail_at(0);
    assert_string_equal(p, "abc");
    q = cu_reallocarray(p, 1000, 2);
    assert_non_null(q);
    assert_string_equal(q, "abc");
    cu_free(q);
}

static void test_strdup_strndup(void **state)
{
    char *a = cu_strdup("hello");
    char *b = cu_strndup("hello", 3);
    char *c = cu_strndup("hi", 10);

    assert_string_equal(a, "hello");
    assert_string_equal(b, "hel");
    assert_string_equal(c, "hi");
    cu_free(a);
    cu_free(b);
    cu_free(c);
}

static void test_mul_add_ok(void **state)
{
    size_t out = 0;

    assert_true(cu_mul_ok(1000, 1000, &out));
    assert_int_equal(out, 1000000);
    assert_false(cu_mul_ok(SIZE_MAX / 2 + 1, 2, &out));
    assert_true(cu_add_ok(SIZE_MAX - 1, 1, &out));
    assert_true(out == SIZE_MAX);
    assert_false(cu_add_ok(SIZE_MAX, 1, &out));
}

static void test_fail_at_nth_and_after(void **state)
{
    void *p[3];

    cu_mem_fail_at(3);
    p[0] = cu_malloc(8);
    p[1] = cu_strdup("x");
    p[2] = cu_calloc(1, 1);
    assert_non_null(p[0]);
    assert_non_null(p[1]);
    assert_null(p[2]);
    assert_null(cu_malloc(1));
    assert_null(cu_strndup("abc", 2));
    assert_null(cu_reallocarray(NULL, 1, 1));
    cu_mem_fail_at(0);
    p[2] = cu_malloc(1);
    assert_non_null(p[2]);
    for (int i = 0; i < 3; i++) {
        cu_free(p[i]);
    }
    cu_mem_fail_at(1);
    assert_null(cu_malloc(1));
    cu_mem_fail_at(-5); /* negative means off */
    p[0] = cu_malloc(1);
    assert_non_null(p[0]);
    cu_free(p[0]);
}

#define THREADS 4
#define PER_THREAD 1000

static void *alloc_many(void *arg)
{
    long *ok = arg;

    for (int i = 0; i < PER_THREAD; i++) {
        void *p = cu_malloc(16);

        if (p != NULL) {
            (*ok)++;
            cu_free(p);
        }
    }
    return NULL;
}

/* With the countdown at N, exactly N-1 allocations succeed however threads interleave. */
static void test_fail_at_is_exact_across_threads(void **state)
{
    pthread_t t[THREADS];
    long ok[THREADS] = {0}, total = 0;

    cu_mem_fail_at(2001);
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_create(&t[i], NULL, alloc_many, &ok[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        total += ok[i];
    }
    cu_mem_fail_at(0);
    assert_int_equal(total, 2000);
}

/* A block handed back by a library is zeroed whole, including the bytes malloc rounded up. */
static void test_wipe_block(void **state)
{
    (void)state;
    unsigned char *p = malloc(40);
    assert_non_null(p);
    memset(p, 0xA5, 40);
    size_t n = cu_mem_wipe_block(p);
    assert_true(n >= 40);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(p[i], 0);
    free(p);
    assert_int_equal(cu_mem_wipe_block(NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_zero_sizes, teardown),
        cmocka_unit_test_teardown(test_wipe_block, teardown),
        cmocka_unit_test_teardown(test_calloc_zeroes_and_refuses_overflow, teardown),
        cmocka_unit_test_teardown(test_reallocarray_keeps_block_on_failure, teardown),
        cmocka_unit_test_teardown(test_strdup_strndup, teardown),
        cmocka_unit_test_teardown(test_mul_add_ok, teardown),
        cmocka_unit_test_teardown(test_fail_at_nth_and_after, teardown),
        cmocka_unit_test_teardown(test_fail_at_is_exact_across_threads, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
