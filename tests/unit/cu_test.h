/*
 * cu_test.h - what every unit test includes: cmocka in the order it needs, an honest exit
 * status for skipped cases, and small helpers for temporary directories and files.
 */
#ifndef CU_TEST_H
#define CU_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <ftw.h>
#include <unistd.h>

#include <cmocka.h>

/*
 * Skipped cases. cmocka's skip() ends a case and prints "[  SKIPPED ] name", but the program
 * still exits 0, so meson (and `make check`) would count a program whose case could not run,
 * say for want of AES-NI, as passed. So this header wraps both macros:
 *
 *   skip()                    counts the skip in cu_test_skipped, then skips as cmocka does;
 *   cmocka_run_group_tests()  exits 1 when a case failed (not cmocka's count of failures, which
 *                             could be 77 or a multiple of 256), else 77 when a case was
 *                             skipped, which meson reports as SKIP, else 0.
 *
 * A failure wins over a skip. scripts/check.sh names the skipped cases from cmocka's
 * "[  SKIPPED ]" lines. Every unit test includes this header, never <cmocka.h> itself.
 */
static unsigned cu_test_skipped;

static inline int cu_test_group_status(int failed)
{
    if (failed != 0) {
        return 1;
    }
    return cu_test_skipped > 0 ? 77 : 0;
}

#undef skip
#define skip() (cu_test_skipped++, _skip(__FILE__, __LINE__))

#undef cmocka_run_group_tests
#define cmocka_run_group_tests(group_tests, group_setup, group_teardown)                           \
    cu_test_group_status(_cmocka_run_group_tests(#group_tests, group_tests,                        \
                                                 sizeof(group_tests) / sizeof((group_tests)[0]),   \
                                                 group_setup, group_teardown))

/* cu_test_tmpdir(buf, len): makes a fresh private directory under $TMPDIR (or /tmp) and
 * writes its path into buf. Fails the test if it cannot. */
static inline void cu_test_tmpdir(char *buf, size_t len)
{
    const char *base = getenv("TMPDIR");
    int n = snprintf(buf, len, "%s/cu-test-XXXXXX", base && *base ? base : "/tmp");
    assert_true(n > 0 && (size_t)n < len);
    assert_non_null(mkdtemp(buf));
}

static inline int cu_test_rmrf_one(const char *path, const struct stat *st, int flag,
                                   struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* cu_test_rmrf(path): removes a directory tree made by a test. */
static inline void cu_test_rmrf(const char *path)
{
    assert_int_equal(nftw(path, cu_test_rmrf_one, 16, FTW_DEPTH | FTW_PHYS), 0);
}

/* cu_test_run(argv): runs argv[0] (found on PATH) with the arguments argv[1..] and no shell,
 * its output sent to /dev/null; the exit status, or -1 when it did not exit normally. */
static inline int cu_test_run(char *const argv[])
{
    int status = 0;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0) {
            dup2(null, 1);
            dup2(null, 2);
        }
        execvp(argv[0], argv);
        _exit(127);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* cu_test_file_contains(path, needle): whether the file at path holds the bytes of needle
 * (false when it cannot be read). */
static inline bool cu_test_file_contains(const char *path, const char *needle)
{
    FILE *f = fopen(path, "rb");
    size_t n = strlen(needle), cap = 1 << 16, len = 0, got;
    char *buf;
    bool found = false;
    if (f == NULL)
        return false;
    buf = malloc(cap);
    assert_non_null(buf);
    while ((got = fread(buf + len, 1, cap - len, f)) > 0) {
        len += got;
        if (len == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
    }
    fclose(f);
    found = n > 0 && memmem(buf, len, needle, n) != NULL;
    free(buf);
    return found;
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
