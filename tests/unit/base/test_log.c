/*
 * test_log.c - JSON-lines logging: each line is one valid JSON object with ts, level, msg
 * and typed fields; levels filter; hostile strings stay valid JSON; long values are cut and
 * marked; overfull lines drop fields and say so; threads never interleave lines.
 */
#include "cu_test.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>

#include <jansson.h>

#include "base/clock.h"
#include "base/log.h"

#define FFFD "\xef\xbf\xbd"
#define ELLIPSIS "\xe2\x80\xa6"

static int pipefd[2];

static int setup(void **state)
{
    assert_int_equal(pipe(pipefd), 0);
    assert_int_equal(fcntl(pipefd[0], F_SETFL, O_NONBLOCK), 0);
    cu_log_set_fd(pipefd[1]);
    cu_log_set_level(CU_LOG_INFO);
    cu_clock_set_fake(1700000000123LL);
    return 0;
}

static int teardown(void **state)
{
    cu_log_set_fd(2);
    cu_log_set_level(CU_LOG_INFO);
    cu_clock_use_real();
    close(pipefd[0]);
    close(pipefd[1]);
    return 0;
}

/* read_line(): the one line waiting in the pipe, parsed; checks it ends in a newline and is
 * the only thing there. Caller frees with json_decref. */
static json_t *read_line(void)
{
    static char buf[16384];
    json_error_t jerr;
    ssize_t n = read(pipefd[0], buf, sizeof buf);
    json_t *v;

    assert_true(n > 0);
    assert_true(n <= 8192);
    assert_int_equal(buf[n - 1], '\n');
    assert_null(memchr(buf, '\n', (size_t)n - 1));
    v = json_loadb(buf, (size_t)n, 0, &jerr);
    if (v == NULL) {
        fail_msg("not JSON (%s): %.*s", jerr.text, (int)n, buf);
    }
    return v;
}

static void assert_pipe_empty(void)
{
    char c;

    assert_int_equal(read(pipefd[0], &c, 1), -1);
    assert_int_equal(errno, EAGAIN);
}

static const char *str(json_t *v, const char *key)
{
    json_t *s = json_object_get(v, key);

    assert_true(json_is_string(s));
    return json_string_value(s);
}

static void test_line_shape(void **state)
{
    json_t *v;

    cu_log(CU_LOG_WARN, "login_failed", CU_LS("ip", "192.0.2.1"), CU_LI("attempts", -3),
           CU_LI("big", INT64_MIN), CU_LB("locked", 1), CU_LB("mfa", 0), CU_LS("none", NULL));
    v = read_line();
    assert_string_equal(str(v, "ts"), "2023-11-14T22:13:20.123Z");
    assert_string_equal(str(v, "level"), "warn");
    assert_string_equal(str(v, "msg"), "login_failed");
    assert_string_equal(str(v, "ip"), "192.0.2.1");
    assert_int_equal(json_integer_value(json_object_get(v, "attempts")), -3);
    assert_true(json_integer_value(json_object_get(v, "big")) == INT64_MIN);
    assert_true(json_is_true(json_object_get(v, "locked")));
    assert_true(json_is_false(json_object_get(v, "mfa")));
    assert_true(json_is_null(json_object_get(v, "none")));
    assert_int_equal(json_object_size(v), 9);
    json_decref(v);
    assert_pipe_empty();

    cu_log_msg(CU_LOG_ERROR, "store_down");
    v = read_line();
    assert_string_equal(str(v, "level"), "error");
    assert_string_equal(str(v, "msg"), "store_down");
    assert_int_equal(json_object_size(v), 3);
    json_decref(v);
}

static void test_levels_filter(void **state)
{
    json_t *v;

    assert_false(cu_log_enabled(CU_LOG_DEBUG));
    assert_true(cu_log_enabled(CU_LOG_INFO));
    cu_log_msg(CU_LOG_DEBUG, "hidden");
    assert_pipe_empty();
    cu_log_set_level(CU_LOG_DEBUG);
    cu_log_msg(CU_LOG_DEBUG, "shown");
    v = read_line();
    assert_string_equal(str(v, "level"), "debug");
    json_decref(v);
    cu_log_set_level(CU_LOG_ERROR);
    cu_log_msg(CU_LOG_WARN, "hidden");
    assert_pipe_empty();
    cu_log_set_level(CU_LOG_OFF);
    cu_log_msg(CU_LOG_ERROR, "hidden");
    assert_false(cu_log_enabled(CU_LOG_ERROR));
    assert_false(cu_log_enabled(CU_LOG_OFF));
    assert_pipe_empty();
}

static void test_parse_level(void **state)
{
    enum cu_log_level l = CU_LOG_INFO;

    assert_true(cu_log_parse_level("debug", &l));
    assert_int_equal(l, CU_LOG_DEBUG);
    assert_true(cu_log_parse_level("warn", &l));
    assert_int_equal(l, CU_LOG_WARN);
    assert_true(cu_log_parse_level("off", &l));
    assert_int_equal(l, CU_LOG_OFF);
    assert_false(cu_log_parse_level("verbose", &l));
    assert_false(cu_log_parse_level("", &l));
    assert_false(cu_log_parse_level("INFO", &l));
    assert_false(cu_log_parse_level(NULL, &l));
    assert_int_equal(l, CU_LOG_OFF);
}

static void test_hostile_strings(void **state)
{
    json_t *v;

    cu_log(CU_LOG_INFO, "m\"sg\n", CU_LS("q", "a\"b\\c\r\n{\"x\":1}\x01"),
           CU_LS("bad", "ok\xff\xc0\xafz"), CU_LS("k\"ey", "v"));
    v = read_line();
    assert_string_equal(str(v, "msg"), "m\"sg\n");
    assert_string_equal(str(v, "q"), "a\"b\\c\r\n{\"x\":1}\x01");
    assert_string_equal(str(v, "bad"), "ok" FFFD FFFD FFFD "z");
    assert_string_equal(str(v, "k\"ey"), "v");
    json_decref(v);
}

static void test_long_value_cut_and_marked(void **state)
{
    char big[5000];
    const char *s;
    json_t *v;

    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    /* a 3-byte character straddling the 1024-byte cut is dropped whole, not mangled */
    memcpy(big + 1022, "\xe2\x82\xac", 3);
    cu_log(CU_LOG_INFO, "big", CU_LS("v", big), CU_LS("after", "x"));
    v = read_line();
    s = str(v, "v");
    assert_int_equal(strlen(s), 1022 + 3);
    assert_memory_equal(s + 1022, ELLIPSIS, 3);
    assert_null(strstr(s, FFFD));
    assert_string_equal(str(v, "after"), "x");
    json_decref(v);
    /* exactly 1024 bytes is not cut */
    big[1024] = '\0';
    memset(big, 'b', 1024);
    cu_log(CU_LOG_INFO, "edge", CU_LS("v", big));
    v = read_line();
    assert_int_equal(strlen(str(v, "v")), 1024);
    json_decref(v);
}

static void test_overfull_line_drops_fields(void **state)
{
    char ctl[1100];
    struct cu_log_field f[10];
    json_t *v;

    /* control characters escape to 6 bytes each: 1024 of them make a 6 KiB value */
    memset(ctl, '\x01', sizeof ctl - 1);
    ctl[sizeof ctl - 1] = '\0';
    for (int i = 0; i < 10; i++) {
        f[i] = CU_LS(i == 0 ? "small" : "ctl", i == 0 ? "kept" : ctl);
    }
    cu_log_fields(CU_LOG_INFO, "overfull", f, 10);
    v = read_line();
    assert_string_equal(str(v, "small"), "kept");
    assert_int_equal(strlen(str(v, "ctl")), 1024 + 3);
    assert_true(json_is_true(json_object_get(v, "log_truncated")));
    json_decref(v);
}

#define THREADS 4
#define LINES 200

static void *log_many(void *arg)
{
    char pad[600];

    memset(pad, 'p', sizeof pad - 1);
    pad[sizeof pad - 1] = '\0';
    for (int i = 0; i < LINES; i++) {
        cu_log(CU_LOG_INFO, "tick", CU_LI("thread", (intptr_t)arg), CU_LI("i", i),
               CU_LS("pad", pad));
    }
    return NULL;
}

static void test_threads_do_not_interleave(void **state)
{
    char dir[256], path[300], line[2048];
    pthread_t t[THREADS];
    int fd, count = 0;
    FILE *f;

    cu_test_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/log", dir);
    fd = open(path, O_CREAT | O_WRONLY | O_APPEND, 0600);
    assert_true(fd >= 0);
    cu_log_set_fd(fd);
    for (intptr_t i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_create(&t[i], NULL, log_many, (void *)i), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
    }
    cu_log_buffer_stop(); /* writes out what buffered mode holds; else does nothing */
    cu_log_set_fd(pipefd[1]);
    close(fd);
    f = fopen(path, "r");
    assert_non_null(f);
    while (fgets(line, sizeof line, f) != NULL) {
        json_error_t jerr;
        json_t *v = json_loads(line, 0, &jerr);

        if (v == NULL) {
            fail_msg("line %d not JSON: %s", count + 1, line);
        }
        assert_string_equal(str(v, "msg"), "tick");
        json_decref(v);
        count++;
    }
    fclose(f);
    assert_int_equal(count, THREADS * LINES);
    cu_test_rmrf(dir);
}

/* Buffered mode: info lines wait for the flusher (or a stop), a warning pushes everything
 * out at once, in order, and stopping writes out the rest. */
static void test_buffered_mode(void **state)
{
    char buf[4096];
    ssize_t n;

    assert_true(cu_log_buffer_start());
    cu_log(CU_LOG_INFO, "first", CU_LI("n", 1));
    cu_log(CU_LOG_INFO, "second", CU_LI("n", 2));
    cu_log(CU_LOG_WARN, "third", CU_LI("n", 3));
    n = read(pipefd[0], buf, sizeof buf - 1);
    assert_true(n > 0);
    buf[n] = '\0';
    char *a = strstr(buf, "\"first\""), *b = strstr(buf, "\"second\""),
         *c = strstr(buf, "\"third\"");
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    assert_true(a < b && b < c);
    cu_log(CU_LOG_INFO, "fourth", CU_LI("n", 4));
    cu_log_buffer_stop();
    json_t *v = read_line();
    assert_string_equal(str(v, "msg"), "fourth");
    json_decref(v);
    assert_pipe_empty();
    /* After stop, lines go out one by one again. */
    cu_log(CU_LOG_INFO, "fifth", CU_LI("n", 5));
    v = read_line();
    assert_string_equal(str(v, "msg"), "fifth");
    json_decref(v);
}

/* Threads writing through the buffer never interleave or lose lines. */
static void test_buffered_threads(void **state)
{
    assert_true(cu_log_buffer_start());
    test_threads_do_not_interleave(state);
    cu_log_buffer_stop();
}

/* Integers across the whole range come out as the same numbers (the log writes digits itself). */
static void test_integers_exact(void **state)
{
    static const int64_t values[] = {
        0, 1, -1, 9, 10, -10, 1234567890123LL, INT64_MAX, INT64_MIN, INT64_MIN + 1};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        cu_log(CU_LOG_INFO, "n", CU_LI("v", values[i]));
        json_t *v = read_line();
        assert_true(json_is_integer(json_object_get(v, "v")));
        assert_true(json_integer_value(json_object_get(v, "v")) == values[i]);
        json_decref(v);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_integers_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_line_shape, setup, teardown),
        cmocka_unit_test_setup_teardown(test_levels_filter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parse_level, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_strings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_value_cut_and_marked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overfull_line_drops_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads_do_not_interleave, setup, teardown),
        cmocka_unit_test_setup_teardown(test_buffered_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_buffered_threads, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
