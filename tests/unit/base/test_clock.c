/*
 * test_clock.c - the fake clock, RFC 3339 formatting, and strict RFC 3339 parsing: round
 * trips, offsets, fractions, leap years, and malformed inputs refused.
 */
#include "cu_test.h"

#include <time.h>

#include "base/clock.h"

static int teardown(void **state)
{
    cu_clock_use_real();
    return 0;
}

static void test_fake_clock(void **state)
{
    int64_t real = cu_clock_now_ms();

    assert_true(real > 1600000000000LL); /* after 2020 */
    cu_clock_set_fake(1000);
    assert_int_equal(cu_clock_now_ms(), 1000);
    cu_clock_advance(234);
    assert_int_equal(cu_clock_now_ms(), 1234);
    cu_clock_use_real();
    assert_true(cu_clock_now_ms() >= real);
}

static void test_mono_never_goes_back(void **state)
{
    uint64_t a = cu_clock_mono_ns(), b;

    cu_clock_set_fake(0); /* faking the wall clock does not touch the monotonic one */
    b = cu_clock_mono_ns();
    assert_true(b >= a);
}

static void test_format_known_values(void **state)
{
    static const struct {
        int64_t ms;
        const char *text;
    } cases[] = {
        {0, "1970-01-01T00:00:00.000Z"},
        {-1, "1969-12-31T23:59:59.999Z"},
        {-1000, "1969-12-31T23:59:59.000Z"},
        {1700000000123LL, "2023-11-14T22:13:20.123Z"},
        {951782400000LL, "2000-02-29T00:00:00.000Z"},
        {253402300799999LL, "9999-12-31T23:59:59.999Z"},
        {INT64_MAX, "9999-12-31T23:59:59.999Z"}, /* clamped */
        {INT64_MIN, "0000-01-01T00:00:00.000Z"}, /* clamped */
    };
    char out[CU_RFC3339_BYTES];

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cu_clock_format(cases[i].ms, out);
        assert_string_equal(out, cases[i].text);
    }
}

/* The formatter computes the calendar itself; the C library's gmtime_r is the oracle. */
static void test_format_matches_gmtime(void **state)
{
    char out[CU_RFC3339_BYTES], want[CU_RFC3339_BYTES + 16];
    uint64_t x = 88172645463325252ULL;

    for (int i = 0; i < 200000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64 */
        int64_t ms = -62167219200000LL + (int64_t)(x % 315569520000000ULL);
        int64_t frac = ((ms % 1000) + 1000) % 1000;
        time_t t = (time_t)((ms - frac) / 1000);
        struct tm tm;
        assert_non_null(gmtime_r(&t, &tm));
        snprintf(want, sizeof(want), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)frac);
        cu_clock_format(ms, out);
        assert_string_equal(out, want);
    }
}

static void test_round_trip(void **state)
{
    char out[CU_RFC3339_BYTES];
    int64_t ms = -62167219200000LL, back;

    /* from year 0 to past 9000 in uneven steps, so every month and leap rule is crossed */
    for (; ms < 253402300799999LL; ms += 7919LL * 86400 * 1000 / 3 + 1) {
        cu_clock_format(ms, out);
        assert_int_equal(cu_clock_parse(out, &back), CU_OK);
        assert_int_equal(back, ms);
    }
}

static void test_parse_offsets_and_fractions(void **state)
{
    static const struct {
        const char *text;
        int64_t ms;
    } cases[] = {
        {"2023-11-14T22:13:20Z", 1700000000000LL},
        {"2023-11-14t22:13:20z", 1700000000000LL},
        {"2023-11-14T22:13:20.1Z", 1700000000100LL},
        {"2023-11-14T22:13:20.12Z", 1700000000120LL},
        {"2023-11-14T22:13:20.123456789Z", 1700000000123LL}, /* truncated, not rounded */
        {"2023-11-14T22:13:20.999999Z", 1700000000999LL},
        {"2023-11-15T03:43:20+05:30", 1700000000000LL},
        {"2023-11-14T14:13:20-08:00", 1700000000000LL},
        {"2023-11-14T22:13:20-00:00", 1700000000000LL},
        {"2023-11-14T22:13:20.5+00:00", 1700000000500LL},
        {"2024-02-29T00:00:00Z", 1709164800000LL},
        {"2000-02-29T00:00:00Z", 951782400000LL},
        {"1969-12-31T23:59:59Z", -1000LL},
    };
    int64_t ms;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(cu_clock_parse(cases[i].text, &ms), CU_OK);
        assert_int_equal(ms, cases[i].ms);
    }
}

static void test_parse_rejects_malformed(void **state)
{
    static const char *const bad[] = {
        "",
        "2023-11-14",                /* date only */
        "2023-11-14T22:13:20",       /* no offset */
        "2023-11-14 22:13:20Z",      /* space instead of T */
        "2023-11-14T22:13Z",         /* no seconds */
        "23-11-14T22:13:20Z",        /* two-digit year */
        "2023-1-14T22:13:20Z",       /* one-digit month */
        "2023-00-14T22:13:20Z",      /* month 0 */
        "2023-13-14T22:13:20Z",      /* month 13 */
        "2023-11-00T22:13:20Z",      /* day 0 */
        "2023-11-31T22:13:20Z",      /* November has 30 days */
        "2023-02-29T00:00:00Z",      /* not a leap year */
        "1900-02-29T00:00:00Z",      /* century, not a leap year */
        "2023-11-14T24:00:00Z",      /* hour 24 */
        "2023-11-14T22:60:00Z",      /* minute 60 */
        "2023-11-14T22:13:60Z",      /* leap second refused */
        "2023-11-14T22:13:20.Z",     /* empty fraction */
        "2023-11-14T22:13:20,5Z",    /* comma fraction */
        "2023-11-14T22:13:20+0530",  /* offset without colon */
        "2023-11-14T22:13:20+05",    /* offset without minutes */
        "2023-11-14T22:13:20+24:00", /* offset hour 24 */
        "2023-11-14T22:13:20+05:60", /* offset minute 60 */
        "2023-11-14T22:13:20Zjunk",  /* trailing data */
        "2023-11-14T22:13:20Z ",     /* trailing space */
        " 2023-11-14T22:13:20Z",     /* leading space */
        "+2023-11-14T22:13:20Z",     /* signed year */
        "2023-11-14T22:13:2aZ",      /* letter in seconds */
    };
    int64_t ms = 42;

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (cu_clock_parse(bad[i], &ms) != CU_E_INVALID) {
            fail_msg("accepted \"%s\"", bad[i]);
        }
    }
    assert_int_equal(cu_clock_parse(NULL, &ms), CU_E_INVALID);
}

/* The parser's own calendar arithmetic agrees with timegm on every day from 1900 to 2200
 * (leap years, centuries, and the years before 1970 included), at a varying time of day. */
static void test_parse_agrees_with_timegm(void **state)
{
    (void)state;
    for (int64_t day = -25567; day < 84000; day++) { /* 1900-01-01 .. 2199 */
        time_t t = (time_t)(day * 86400 + (day * 7919) % 86400);
        struct tm tm;
        char text[96];
        int64_t ms = 0;
        assert_non_null(gmtime_r(&t, &tm));
        snprintf(text, sizeof(text), "%04d-%02d-%02dT%02d:%02d:%02d.250Z", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        assert_int_equal(cu_clock_parse(text, &ms), CU_OK);
        assert_int_equal(ms, (int64_t)timegm(&tm) * 1000 + 250);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_fake_clock, teardown),
        cmocka_unit_test_teardown(test_mono_never_goes_back, teardown),
        cmocka_unit_test_teardown(test_format_known_values, teardown),
        cmocka_unit_test(test_parse_agrees_with_timegm),
        cmocka_unit_test_teardown(test_format_matches_gmtime, teardown),
        cmocka_unit_test_teardown(test_round_trip, teardown),
        cmocka_unit_test_teardown(test_parse_offsets_and_fractions, teardown),
        cmocka_unit_test_teardown(test_parse_rejects_malformed, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
