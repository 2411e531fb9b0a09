/*
 * cu_test.h - what every unit test includes: cmocka in the order it needs, and small helpers
 * for temporary directories and files.
 */
#ifndef CU_TEST_H
#define CU_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

/* cu_test_tmpdir(buf, len): makes a fresh private directory under $TMPDIR (or /tmp) and
 * writes its path into buf. Fails the test if it cannot. */
static inline void cu_test_tmpdir(char *buf, size_t len)
{
    const char *base = getenv("TMPDIR");
    int n = snprintf(buf, len, "%s/cu-test-XXXXXX", base && *base ? base : "/tmp");
    assert_true(n > 0 && (size_t)n < len);
    assert_non_null(mkdtemp(buf));
}

/* cu_test_rmrf(path): removes a directory tree made by a test. */
static inline void cu_test_rmrf(const char *path)
{
    char cmd[4200];
    int n = snprintf(cmd, sizeof cmd, "rm -rf -- '%s'", path);
    assert_true(n > 0 && (size_t)n < sizeof cmd);
    assert_int_equal(system(cmd), 0);
}

/* cu_test_write_file(path, text): writes text to path, replacing it. */
static inline void cu_test_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

#endif
