/*
 * test_buf.c - capped buffers: appends up to the cap and not one byte past it, memory never
 * above max+1, errors leave the buffer as it was, printf growth, steal/reset/free, and every
 * allocation failure unwinds.
 */
#include "cu_test.h"

#include "base/buf.h"
#include "base/mem.h"

static int teardown(void **state)
{
    cu_mem_fail_at(0);
    return 0;
}

static void test_empty(void **state)
{
    struct cu_buf b;

    cu_buf_init(&b, 10);
    assert_null(b.data);
    assert_string_equal(cu_buf_cstr(&b), "");
    assert_null(cu_buf_steal(&b));
    cu_buf_free(&b);
    cu_buf_free(&b);
}

static void test_append_to_cap_exactly(void **state)
{
    struct cu_buf b;

    cu_buf_init(&b, 10);
    assert_int_equal(cu_buf_append(&b, "hello", 5), CU_OK);
    assert_int_equal(cu_buf_append_str(&b, "world"), CU_OK);
    assert_string_equal(cu_buf_cstr(&b), "helloworld");
    assert_int_equal(b.len, 10);
    assert_true(b.size <= 11);
    assert_int_equal(cu_buf_append(&b, "!", 1), CU_E_TOO_LARGE);
    assert_string_equal(cu_buf_cstr(&b), "helloworld");
    assert_int_equal(b.len, 10);
    assert_int_equal(cu_buf_append(&b, "", 0), CU_OK);
    cu_buf_free(&b);
    cu_buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
}

static void test_growth_never_passes_max_plus_one(void **state)
{
    struct cu_buf b;
    char chunk[100];

    memset(chunk, 'x', sizeof chunk);
    cu_buf_init(&b, 1000);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(cu_buf_append(&b, chunk, sizeof chunk), CU_OK);
        assert_true(b.size <= 1001);
        assert_true(b.size > b.len);
    }
    assert_int_equal(b.len, 1000);
    assert_int_equal(cu_buf_append(&b, chunk, 1), CU_E_TOO_LARGE);
    assert_int_equal(strlen(cu_buf_cstr(&b)), 1000);
    cu_buf_free(&b);
}

static void test_huge_append_refused(void **state)
{
    struct cu_buf b;

    cu_buf_init(&b, SIZE_MAX);
    assert_int_equal(cu_buf_append(&b, "a", 1), CU_OK);
    assert_int_equal(cu_buf_append(&b, "b", SIZE_MAX), CU_E_TOO_LARGE);
    assert_string_equal(cu_buf_cstr(&b), "a");
    cu_buf_free(&b);
}

static void test_printf_grows(void **state)
{
    struct cu_buf b;
    char want[2000];

    cu_buf_init(&b, 4096);
    assert_int_equal(cu_buf_printf(&b, "%s-%d", "n", 42), CU_OK);
    assert_string_equal(cu_buf_cstr(&b), "n-42");
    memset(want, 'y', sizeof want - 1);
    want[sizeof want - 1] = '\0';
    assert_int_equal(cu_buf_printf(&b, "%s", want), CU_OK);
    assert_int_equal(b.len, 4 + 1999);
    assert_memory_equal(cu_buf_cstr(&b) + 4, want, 1999);
    assert_int_equal(cu_buf_printf(&b, "%s", ""), CU_OK);
    assert_int_equal(b.len, 2003);
    cu_buf_free(&b);
}

static void test_printf_too_large_leaves_buffer(void **state)
{
    struct cu_buf b;

    cu_buf_init(&b, 8);
    assert_int_equal(cu_buf_printf(&b, "abc"), CU_OK);
    assert_int_equal(cu_buf_printf(&b, "%d", 123456), CU_E_TOO_LARGE);
    assert_string_equal(cu_buf_cstr(&b), "abc");
    assert_int_equal(b.len, 3);
    assert_int_equal(cu_buf_printf(&b, "%d", 12345), CU_OK);
    assert_string_equal(cu_buf_cstr(&b), "abc12345");
    cu_buf_free(&b);
}

static void test_reset_steal(void **state)
{
    struct cu_buf b;
    char *s;

    cu_buf_init(&b, 100);
    assert_int_equal(cu_buf_append_str(&b, "secret"), CU_OK);
    cu_buf_reset(&b);
    assert_string_equal(cu_buf_cstr(&b), "");
    assert_int_equal(b.len, 0);
    assert_non_null(b.data);
    assert_int_equal(cu_buf_append_str(&b, "kept"), CU_OK);
    s = cu_buf_steal(&b);
    assert_string_equal(s, "kept");
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.max, 100);
    cu_free(s);
    assert_int_equal(cu_buf_append_str(&b, "again"), CU_OK);
    assert_string_equal(cu_buf_cstr(&b), "again");
    cu_buf_free(&b);
}

/* run_ops(b): a sequence that allocates several times; the first error is returned. */
static enum cu_err run_ops(struct cu_buf *b)
{
    enum cu_err rc = cu_buf_append_str(b, "start ");

    for (int i = 0; i < 20 && rc == CU_OK; i++) {
        rc = cu_buf_printf(b, "item %d of a fairly long line of text; ", i);
    }
    return rc;
}

static void test_every_allocation_failure_unwinds(void **state)
{
    enum cu_err rc = CU_E_NOMEM;

    for (long n = 1; rc == CU_E_NOMEM; n++) {
        struct cu_buf b;
        size_t len_before;

        cu_buf_init(&b, 1 << 20);
        cu_mem_fail_at(n);
        rc = run_ops(&b);
        cu_mem_fail_at(0);
        len_before = b.len;
        assert_true(rc == CU_OK || rc == CU_E_NOMEM);
        assert_int_equal(strlen(cu_buf_cstr(&b)), len_before);
        if (rc == CU_OK) {
            assert_int_equal(strncmp(cu_buf_cstr(&b), "start item 0", 12), 0);
        }
        cu_buf_free(&b);
        assert_true(n < 100);
    }
}

/* Reserved room is used without moving the data; a reserve past the cap changes nothing. */
static void test_reserve(void **state)
{
    struct cu_buf b;
    (void)state;
    cu_buf_init(&b, 1000);
    cu_buf_reserve(&b, 500);
    assert_non_null(b.data);
    const char *at = b.data;
    for (int i = 0; i < 50; i++)
        assert_int_equal(cu_buf_append(&b, "0123456789", 10), CU_OK);
    assert_ptr_equal(b.data, at);
    assert_int_equal(b.len, 500);
    size_t size = b.size;
    cu_buf_reserve(&b, 501);
    assert_int_equal(b.size, size);
    assert_int_equal(b.len, 500);
    assert_int_equal(cu_buf_append(&b, "x", 1), CU_OK);
    /* extend: room filled by the caller, NUL-terminated; past the cap, nothing changes */
    char *room = NULL;
    assert_int_equal(cu_buf_extend(&b, 3, &room), CU_OK);
    memcpy(room, "abc", 3);
    assert_int_equal(b.len, 504);
    assert_string_equal(cu_buf_cstr(&b) + 501, "abc");
    assert_int_equal(cu_buf_extend(&b, 497, &room), CU_E_TOO_LARGE);
    assert_int_equal(b.len, 504);
    cu_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reserve),
        cmocka_unit_test_teardown(test_empty, teardown),
        cmocka_unit_test_teardown(test_append_to_cap_exactly, teardown),
        cmocka_unit_test_teardown(test_growth_never_passes_max_plus_one, teardown),
        cmocka_unit_test_teardown(test_huge_append_refused, teardown),
        cmocka_unit_test_teardown(test_printf_grows, teardown),
        cmocka_unit_test_teardown(test_printf_too_large_leaves_buffer, teardown),
        cmocka_unit_test_teardown(test_reset_steal, teardown),
        cmocka_unit_test_teardown(test_every_allocation_failure_unwinds, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
