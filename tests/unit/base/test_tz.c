/*
 * test_tz.c - time zones. cu_tz_local is compared with glibc's localtime_r, the oracle, which
 * only this test drives through TZ and tzset: for eight zones chosen for their quirks (DST in
 * each hemisphere, a 30-minute DST, +05:45, +12:45, DST abolished, UTC, a fixed Etc zone)
 * hourly over 2024-2027, by the second around every change in 2026, 2040 and 2100, through
 * 1900 and 1969, and at random instants within +-10^14 ms; the same again with the zones
 * compiled "slim" by zic, where the footer's POSIX TZ string decides everything after the last
 * change of rules; every zone of the system database, and of its slim build. Then hand-written
 * answers around the changes, POSIX TZ strings of every form (also against glibc), files
 * written by hand for versions 1 to 4, leap seconds and the instants before the first
 * transition, names refused, damaged and hostile files refused without a crash, allocation
 * failures, and threads sharing one zone.
 */
#include "cu_test.h"

#include <limits.h>
#include <pthread.h>
#include <sys/stat.h>
#include <time.h>

#include "base/clock.h"
#include "base/mem.h"
#include "base/tz.h"

#define SEC_MS 1000LL
#define HOUR_MS (3600 * SEC_MS)
#define RANGE_MS 100000000000000LL /* 10^14 ms, about 3170 years either side of 1970 */
#define SYSTEM_DIR_DEFAULT "/usr/share/zoneinfo"
#define ZIC "/usr/sbin/zic"
#define NAMES_MAX 4000

static const char *const zones[] = {
    "Europe/London",
    "America/New_York",
    "Australia/Lord_Howe",
    "Asia/Kathmandu",
    "Pacific/Chatham",
    "America/Sao_Paulo",
    "UTC",
    "Etc/GMT+5",
};
/* The changes of offset or DST each of zones[] has in 2026. */
static const int changes_2026[] = {2, 2, 2, 0, 2, 0, 0, 0};

static char system_dir[PATH_MAX]; /* the zone directory glibc reads: $TZDIR or the default */
static bool system_dir_from_env;
static char tmp[PATH_MAX];          /* a directory of files written by the tests */
static char slim_dir[PATH_MAX + 8]; /* the system's tzdata.zi compiled slim, or "" */
static unsigned long compared;      /* instants compared with glibc */

static uint64_t rng = 88172645463325252ULL;

static uint64_t next_random(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17; /* xorshift64 */
    return rng;
}

/* random_ms(lo, hi): an instant in [lo, hi). */
static int64_t random_ms(int64_t lo, int64_t hi)
{
    return lo + (int64_t)(next_random() % (uint64_t)(hi - lo));
}

static int64_t floor_div(int64_t a, int64_t b)
{
    return a / b - (a % b < 0);
}

/* utc_ms(y, mo, d, h, mi, s): the instant of a UTC date and time, by timegm. */
static int64_t utc_ms(int y, int mo, int d, int h, int mi, int s)
{
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = s};

    return (int64_t)timegm(&tm) * SEC_MS;
}

/* at(text): the instant of an RFC 3339 time. */
static int64_t at(const char *text)
{
    int64_t ms;

    assert_int_equal(cu_clock_parse(text, &ms), CU_OK);
    return ms;
}

/* use_dir(dir): points $TZDIR at dir, or back where it was for NULL. */
static void use_dir(const char *dir)
{
    if (dir != NULL) {
        assert_int_equal(setenv("TZDIR", dir, 1), 0);
    } else if (system_dir_from_env) {
        assert_int_equal(setenv("TZDIR", system_dir, 1), 0);
    } else {
        assert_int_equal(unsetenv("TZDIR"), 0);
    }
}

/* load_in(dir, name, err): zone name from dir (NULL: the system's), or NULL with the error in
 * err when it does not load; *rc gets the code. */
static struct cu_tz *load_in(const char *dir, const char *name, enum cu_err *rc, char *err,
                             size_t errlen)
{
    struct cu_tz *tz = (struct cu_tz *)&tz; /* not NULL, to see that a failure clears it */

    use_dir(dir);
    *rc = cu_tz_load(name, &tz, err, errlen);
    use_dir(NULL);
    if (*rc != CU_OK) {
        assert_null(tz);
    }
    return tz;
}

/* load_ok(dir, name): zone name from dir (NULL: the system's), which must load. */
static struct cu_tz *load_ok(const char *dir, const char *name)
{
    char err[256] = "";
    enum cu_err rc;
    struct cu_tz *tz = load_in(dir, name, &rc, err, sizeof err);

    if (rc != CU_OK) {
        fail_msg("%s did not load: %s (%s)", name, cu_err_str(rc), err);
    }
    assert_string_equal(cu_tz_name(tz), name);
    return tz;
}

/* oracle_zone_in(dir, spec): makes glibc's local time that of spec (":Zone" from dir, NULL
 * for the system's, or a POSIX TZ string). glibc reads the file in tzset, and again only when
 * TZ changes, so TZ goes through another value first. */
static void oracle_zone_in(const char *dir, const char *spec)
{
    assert_int_equal(setenv("TZ", "UTC0", 1), 0);
    tzset();
    use_dir(dir);
    assert_int_equal(setenv("TZ", spec, 1), 0);
    tzset();
    use_dir(NULL);
}

static void oracle_zone(const char *spec)
{
    oracle_zone_in(NULL, spec);
}

/* oracle(ms, out): glibc's local time at ms in the zone oracle_zone set. */
static void oracle(int64_t ms, struct cu_tz_local *out)
{
    time_t t = (time_t)floor_div(ms, SEC_MS);
    struct tm tm;

    assert_non_null(localtime_r(&t, &tm));
    *out = (struct cu_tz_local){.year = tm.tm_year + 1900,
                                .month = tm.tm_mon + 1,
                                .day = tm.tm_mday,
                                .hour = tm.tm_hour,
                                .minute = tm.tm_min,
                                .second = tm.tm_sec,
                                .wday = tm.tm_wday,
                                .offset_s = (int32_t)tm.tm_gmtoff,
                                .dst = tm.tm_isdst > 0};
}

static bool same_local(const struct cu_tz_local *a, const struct cu_tz_local *b)
{
    return a->year == b->year && a->month == b->month && a->day == b->day && a->hour == b->hour &&
           a->minute == b->minute && a->second == b->second && a->wday == b->wday &&
           a->offset_s == b->offset_s && a->dst == b->dst;
}

static void show(const struct cu_tz_local *l, char *out, size_t len)
{
    snprintf(out, len, "%04d-%02d-%02d %02d:%02d:%02d wday %d offset %d%s", l->year, l->month,
             l->day, l->hour, l->minute, l->second, l->wday, (int)l->offset_s,
             l->dst ? " dst" : "");
}

/* check_same(what, tz, ms): cu_tz_local and glibc agree at ms. */
static void check_same(const char *what, const struct cu_tz *tz, int64_t ms)
{
    struct cu_tz_local got, want;
    char g[96], w[96];

    cu_tz_local(tz, ms, &got);
    oracle(ms, &want);
    compared++;
    if (!same_local(&got, &want)) {
        show(&got, g, sizeof g);
        show(&want, w, sizeof w);
        fail_msg("%s at %lld ms: got %s, glibc %s", what, (long long)ms, g, w);
    }
}

/* check_range(what, tz, from, to, step): agreement at every step from from to before to. */
static void check_range(const char *what, const struct cu_tz *tz, int64_t from, int64_t to,
                        int64_t step)
{
    for (int64_t ms = from; ms < to; ms += step) {
        check_same(what, tz, ms);
    }
}

/* check_changes(what, tz, year): agreement at every second from two hours before to two hours
 * after each change of offset or DST that glibc shows in year; returns how many there were. */
static int check_changes(const char *what, const struct cu_tz *tz, int year)
{
    int64_t ms = utc_ms(year, 1, 1, 0, 0, 0), end = utc_ms(year + 1, 1, 1, 0, 0, 0);
    struct cu_tz_local a, b;
    int changes = 0;

    oracle(ms, &a);
    for (; ms < end; ms += HOUR_MS) {
        oracle(ms + HOUR_MS, &b);
        if (a.offset_s != b.offset_s || a.dst != b.dst) {
            check_range(what, tz, ms - 2 * HOUR_MS, ms + 3 * HOUR_MS, SEC_MS);
            changes++;
        }
        a = b;
    }
    return changes;
}

/* check_zone_fully(dir, idx): the full comparison of zones[idx] loaded from dir (NULL: the
 * system's). */
static void check_zone_fully(const char *dir, int idx)
{
    const char *name = zones[idx];
    struct cu_tz *tz = load_ok(dir, name);
    char spec[CU_TZ_NAME_MAX + 2];

    snprintf(spec, sizeof spec, ":%s", name);
    oracle_zone_in(dir, spec); /* glibc reads the same file */
    check_range(name, tz, utc_ms(2024, 1, 1, 0, 0, 0), utc_ms(2028, 1, 1, 0, 0, 0), HOUR_MS);
    assert_int_equal(check_changes(name, tz, 2026), changes_2026[idx]);
    assert_int_equal(check_changes(name, tz, 2040), changes_2026[idx]);
    assert_int_equal(check_changes(name, tz, 2100), changes_2026[idx]);
    check_range(name, tz, utc_ms(1900, 1, 1, 0, 0, 0), utc_ms(1901, 1, 1, 0, 0, 0), HOUR_MS);
    check_range(name, tz, utc_ms(1969, 1, 1, 0, 0, 0), utc_ms(1970, 1, 1, 0, 0, 0), HOUR_MS);
    (void)check_changes(name, tz, 1969);
    for (int i = 0; i < 20000; i++) {
        check_same(name, tz, random_ms(-RANGE_MS, RANGE_MS));
    }
    cu_tz_free(tz);
}

static void test_zones_match_glibc(void **state)
{
    for (int i = 0; i < (int)(sizeof zones / sizeof zones[0]); i++) {
        check_zone_fully(NULL, i);
    }
    assert_true(compared > 1000000);
}

/* make_slim(): compiles the system's tzdata.zi with zic -b slim into slim_dir, the form in
 * which transitions stop at the last change of rules and the footer does the rest; "" when zic
 * or tzdata.zi is missing. */
static void make_slim(void)
{
    char src[PATH_MAX + 16];
    struct stat st;

    snprintf(src, sizeof src, "%s/tzdata.zi", system_dir);
    slim_dir[0] = '\0';
    if (stat(ZIC, &st) != 0 || stat(src, &st) != 0) {
        return;
    }
    snprintf(slim_dir, sizeof slim_dir, "%s/slim", tmp);
    char *argv[] = {ZIC, "-b", "slim", "-d", slim_dir, src, NULL};
    assert_int_equal(cu_test_run(argv), 0);
}

static void test_slim_zones_match_glibc(void **state)
{
    if (slim_dir[0] == '\0') {
        skip(); /* no zic or no tzdata.zi to build slim files from */
    }
    for (int i = 0; i < (int)(sizeof zones / sizeof zones[0]); i++) {
        check_zone_fully(slim_dir, i);
    }
}

/* Zone names found under a directory. */
static char names[NAMES_MAX][CU_TZ_NAME_MAX + 1];
static size_t names_count;
static size_t names_root_len;

static int collect_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    const char *name = path + names_root_len + 1;
    char magic[4];
    FILE *f;

    (void)st;
    (void)ftw;
    if (flag != FTW_F || strlen(name) > CU_TZ_NAME_MAX || strchr(name, '.') != NULL) {
        return 0;
    }
    f = fopen(path, "rb");
    if (f != NULL && fread(magic, 1, 4, f) == 4 && memcmp(magic, "TZif", 4) == 0) {
        assert_true(names_count < NAMES_MAX);
        snprintf(names[names_count++], sizeof(names[0]), "%s", name);
    }
    if (f != NULL) {
        fclose(f);
    }
    return 0;
}

/* collect(dir): the names of the TZif files under dir, symbolic links followed. */
static void collect(const char *dir)
{
    names_count = 0;
    names_root_len = strlen(dir);
    assert_int_equal(nftw(dir, collect_one, 16, 0), 0);
}

/* check_sampled(what, tz): agreement with glibc at instants spread over 2020-2030, 1900-2100
 * and +-10^14 ms. */
static void check_sampled(const char *what, const struct cu_tz *tz)
{
    check_range(what, tz, utc_ms(2020, 1, 1, 0, 0, 0), utc_ms(2031, 1, 1, 0, 0, 0), 61 * HOUR_MS);
    for (int i = 0; i < 300; i++) {
        check_same(what, tz, random_ms(utc_ms(1900, 1, 1, 0, 0, 0), utc_ms(2100, 1, 1, 0, 0, 0)));
    }
    for (int i = 0; i < 50; i++) {
        check_same(what, tz, random_ms(-RANGE_MS, RANGE_MS));
    }
}

/* check_right(name): a "right/" zone, whose times count leap seconds, gives the local time of
 * the zone without them, from which it differs only in that. Only up to 2021: zic ends these
 * files at the leap-second table's expiry with an empty footer, so the last type stays. */
static void check_right(const char *name)
{
    struct cu_tz *right = load_ok(NULL, name), *plain;
    char err[256];
    enum cu_err rc;
    struct cu_tz_local a, b;

    plain = load_in(NULL, name + strlen("right/"), &rc, err, sizeof err);
    for (int i = 0; plain != NULL && i < 2000; i++) {
        int64_t ms = random_ms(utc_ms(1900, 1, 1, 0, 0, 0), utc_ms(2021, 1, 1, 0, 0, 0));

        cu_tz_local(right, ms, &a);
        cu_tz_local(plain, ms, &b);
        if (!same_local(&a, &b)) {
            fail_msg("%s differs from the zone without leap seconds at %lld ms", name,
                     (long long)ms);
        }
    }
    cu_tz_free(plain);
    cu_tz_free(right);
}

static void test_every_system_zone(void **state)
{
    size_t right = 0;

    collect(system_dir);
    assert_true(names_count > 300);
    for (size_t i = 0; i < names_count; i++) {
        char spec[CU_TZ_NAME_MAX + 2];

        if (strncmp(names[i], "right/", 6) == 0) {
            /* glibc would count leap seconds in time_t there; Unix time does not */
            check_right(names[i]);
            right++;
            continue;
        }
        struct cu_tz *tz = load_ok(NULL, names[i]);
        snprintf(spec, sizeof spec, ":%.64s", names[i]);
        oracle_zone(spec);
        check_sampled(names[i], tz);
        cu_tz_free(tz);
    }
    print_message("%zu zones (%zu with leap seconds), %lu instants\n", names_count, right,
                  compared);
}

static void test_every_slim_zone(void **state)
{
    if (slim_dir[0] == '\0') {
        skip(); /* no zic or no tzdata.zi to build slim files from */
    }
    collect(slim_dir);
    assert_true(names_count > 300);
    for (size_t i = 0; i < names_count; i++) {
        char spec[CU_TZ_NAME_MAX + 2];
        struct cu_tz *tz = load_ok(slim_dir, names[i]);

        snprintf(spec, sizeof spec, ":%.64s", names[i]);
        oracle_zone_in(slim_dir, spec); /* glibc reads the same file */
        check_sampled(names[i], tz);
        cu_tz_free(tz);
    }
}

/* A hand-written answer: the local time, offset and DST flag of a zone at an instant. */
struct known {
    const char *zone;
    const char *instant;
    const char *local; /* "YYYY-MM-DD hh:mm:ss" */
    int wday;
    int32_t offset_s;
    bool dst;
};

/* check_known(tz, k): cu_tz_local at k->instant says what k says. */
static void check_known(const struct cu_tz *tz, const struct known *k)
{
    struct cu_tz_local l;
    char got[32];

    cu_tz_local(tz, at(k->instant), &l);
    snprintf(got, sizeof got, "%04d-%02d-%02d %02d:%02d:%02d", l.year, l.month, l.day, l.hour,
             l.minute, l.second);
    if (strcmp(got, k->local) != 0 || l.wday != k->wday || l.offset_s != k->offset_s ||
        l.dst != k->dst) {
        fail_msg("%s at %s: got %s wday %d offset %d dst %d, want %s wday %d offset %d dst %d",
                 k->zone, k->instant, got, l.wday, (int)l.offset_s, l.dst, k->local, k->wday,
                 (int)k->offset_s, k->dst);
    }
}

static const struct known known[] = {
    /* London: BST from 01:00 UTC on the last Sunday of March to 01:00 UTC on the last of
     * October; in 1969 "British Standard Time", one hour ahead all year and not DST */
    {"Europe/London", "2026-03-29T00:59:59Z", "2026-03-29 00:59:59", 0, 0, false},
    {"Europe/London", "2026-03-29T01:00:00Z", "2026-03-29 02:00:00", 0, 3600, true},
    {"Europe/London", "2026-10-25T00:59:59Z", "2026-10-25 01:59:59", 0, 3600, true},
    {"Europe/London", "2026-10-25T01:00:00Z", "2026-10-25 01:00:00", 0, 0, false},
    {"Europe/London", "2026-10-25T01:00:00.999Z", "2026-10-25 01:00:00", 0, 0, false},
    {"Europe/London", "1969-06-01T00:00:00Z", "1969-06-01 01:00:00", 0, 3600, false},
    {"Europe/London", "1900-06-01T00:00:00Z", "1900-06-01 00:00:00", 5, 0, false},
    {"Europe/London", "2100-07-01T00:00:00Z", "2100-07-01 01:00:00", 4, 3600, true},
    {"Europe/London", "2100-12-31T23:59:59Z", "2100-12-31 23:59:59", 5, 0, false},
    /* New York: 02:00 local on the second Sunday of March, 02:00 on the first of November */
    {"America/New_York", "2026-03-08T06:59:59Z", "2026-03-08 01:59:59", 0, -18000, false},
    {"America/New_York", "2026-03-08T07:00:00Z", "2026-03-08 03:00:00", 0, -14400, true},
    {"America/New_York", "2026-11-01T05:59:59Z", "2026-11-01 01:59:59", 0, -14400, true},
    {"America/New_York", "2026-11-01T06:00:00Z", "2026-11-01 01:00:00", 0, -18000, false},
    /* Lord Howe: +10:30, and +11 in summer, changing at 02:00 local */
    {"Australia/Lord_Howe", "2026-04-04T14:59:59Z", "2026-04-05 01:59:59", 0, 39600, true},
    {"Australia/Lord_Howe", "2026-04-04T15:00:00Z", "2026-04-05 01:30:00", 0, 37800, false},
    {"Australia/Lord_Howe", "2026-10-03T15:29:59Z", "2026-10-04 01:59:59", 0, 37800, false},
    {"Australia/Lord_Howe", "2026-10-03T15:30:00Z", "2026-10-04 02:30:00", 0, 39600, true},
    /* Kathmandu: +05:30 until 1986, +05:45 since */
    {"Asia/Kathmandu", "1985-12-31T18:29:59Z", "1985-12-31 23:59:59", 2, 19800, false},
    {"Asia/Kathmandu", "1985-12-31T18:30:00Z", "1986-01-01 00:15:00", 3, 20700, false},
    {"Asia/Kathmandu", "2026-01-01T00:00:00Z", "2026-01-01 05:45:00", 4, 20700, false},
    /* Chatham: +12:45, +13:45 in summer, changing at 02:45 standard time */
    {"Pacific/Chatham", "2026-01-15T00:00:00Z", "2026-01-15 13:45:00", 4, 49500, true},
    {"Pacific/Chatham", "2026-04-04T13:59:59Z", "2026-04-05 03:44:59", 0, 49500, true},
    {"Pacific/Chatham", "2026-04-04T14:00:00Z", "2026-04-05 02:45:00", 0, 45900, false},
    {"Pacific/Chatham", "2026-09-26T13:59:59Z", "2026-09-27 02:44:59", 0, 45900, false},
    {"Pacific/Chatham", "2026-09-26T14:00:00Z", "2026-09-27 03:45:00", 0, 49500, true},
    /* Sao Paulo: the last DST ended on 2019-02-17 */
    {"America/Sao_Paulo", "2018-01-15T12:00:00Z", "2018-01-15 10:00:00", 1, -7200, true},
    {"America/Sao_Paulo", "2019-02-17T01:59:59Z", "2019-02-16 23:59:59", 6, -7200, true},
    {"America/Sao_Paulo", "2019-02-17T02:00:00Z", "2019-02-16 23:00:00", 6, -10800, false},
    {"America/Sao_Paulo", "2026-01-15T12:00:00Z", "2026-01-15 09:00:00", 4, -10800, false},
    /* UTC and Etc/GMT+5 (POSIX signs: five hours behind), far from 1970 too */
    {"UTC", "1970-01-01T00:00:00Z", "1970-01-01 00:00:00", 4, 0, false},
    {"UTC", "1969-12-31T23:59:59.999Z", "1969-12-31 23:59:59", 3, 0, false},
    {"UTC", "0001-01-01T00:00:00Z", "0001-01-01 00:00:00", 1, 0, false},
    {"UTC", "2000-02-29T12:00:00Z", "2000-02-29 12:00:00", 2, 0, false},
    {"UTC", "9999-12-31T23:59:59Z", "9999-12-31 23:59:59", 5, 0, false},
    {"Etc/GMT+5", "2026-01-01T00:00:00Z", "2025-12-31 19:00:00", 3, -18000, false},
    {"Etc/GMT+5", "2026-07-01T00:00:00Z", "2026-06-30 19:00:00", 2, -18000, false},
};

static void test_known_answers(void **state)
{
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        struct cu_tz *tz = load_ok(NULL, known[i].zone);

        check_known(tz, &known[i]);
        cu_tz_free(tz);
        if (slim_dir[0] != '\0') {
            tz = load_ok(slim_dir, known[i].zone);
            check_known(tz, &known[i]);
            cu_tz_free(tz);
        }
    }
}

/* Dates beyond year 9999 and before year 0, which RFC 3339 cannot write, against the day
 * count done here by repeated years; and the ends of int64_t, which must not crash. */
static void test_far_instants(void **state)
{
    struct cu_tz *utc = load_ok(NULL, "UTC"), *london = load_ok(NULL, "Europe/London");
    struct cu_tz_local l;

    cu_tz_local(utc, RANGE_MS, &l); /* 10^11 s */
    assert_true(l.year == 5138 && l.month == 11 && l.day == 16 && l.hour == 9 && l.minute == 46 &&
                l.second == 40);
    cu_tz_local(utc, -RANGE_MS, &l);
    assert_true(l.year == -1199 && l.month == 2 && l.day == 15 && l.hour == 14 && l.minute == 13 &&
                l.second == 20);
    /* London's local mean time before 1847: -0:01:15 */
    cu_tz_local(london, -RANGE_MS, &l);
    assert_true(l.year == -1199 && l.hour == 14 && l.minute == 12 && l.second == 5 &&
                l.offset_s == -75 && !l.dst);
    /* int64_t's ends: INT64_MAX ms is 292278994-08-17T07:12:55Z */
    cu_tz_local(utc, INT64_MAX, &l);
    assert_true(l.year == 292278994 && l.month == 8 && l.day == 17 && l.hour == 7 &&
                l.minute == 12 && l.second == 55);
    cu_tz_local(utc, INT64_MIN, &l);
    assert_true(l.year == -292275055 && l.month == 5 && l.day == 16 && l.hour == 16 &&
                l.minute == 47 && l.second == 4);
    cu_tz_local(london, INT64_MAX, &l);
    assert_true(l.year == 292278994 && l.offset_s == 3600 && l.dst);
    cu_tz_local(london, INT64_MIN, &l);
    assert_int_equal(l.offset_s, -75);
    cu_tz_free(utc);
    cu_tz_free(london);
}

/* UTC's civil dates against gmtime_r over +-10^14 ms. */
static void test_utc_matches_gmtime(void **state)
{
    struct cu_tz *utc = load_ok(NULL, "UTC");

    for (int i = 0; i < 200000; i++) {
        int64_t ms = random_ms(-RANGE_MS, RANGE_MS);
        time_t t = (time_t)floor_div(ms, SEC_MS);
        struct tm tm;
        struct cu_tz_local l;

        assert_non_null(gmtime_r(&t, &tm));
        cu_tz_local(utc, ms, &l);
        if (l.year != tm.tm_year + 1900 || l.month != tm.tm_mon + 1 || l.day != tm.tm_mday ||
            l.hour != tm.tm_hour || l.minute != tm.tm_min || l.second != tm.tm_sec ||
            l.wday != tm.tm_wday || l.offset_s != 0 || l.dst) {
            fail_msg("UTC at %lld ms", (long long)ms);
        }
    }
    cu_tz_free(utc);
}

/*
 * Zone files written here (RFC 8536 section 3): a header, the data block (for version 2 and
 * later a minimal 32-bit block first, whose type says +01:17:40 so that reading it shows), and
 * for version 2 and later the footer.
 */
#define SPEC_TIMES_MAX 8
#define SPEC_TYPES_MAX 4
#define SPEC_LEAPS_MAX 4
#define V1_DECOY_UTOFF 4660

struct spec {
    unsigned char version; /* 0, '2', '3', '4' */
    size_t times, types, leaps, isstd, isut, chars;
    int64_t at[SPEC_TIMES_MAX];
    uint8_t idx[SPEC_TIMES_MAX];
    int64_t utoff[SPEC_TYPES_MAX];
    uint8_t isdst[SPEC_TYPES_MAX], desig[SPEC_TYPES_MAX];
    uint8_t std[SPEC_TYPES_MAX], ut[SPEC_TYPES_MAX];
    char abbrs[32];
    int64_t leap_at[SPEC_LEAPS_MAX];
    int64_t leap_corr[SPEC_LEAPS_MAX];
    const char *footer; /* NULL: none */
};

struct bytes {
    unsigned char buf[1 << 16];
    size_t len;
};

static struct bytes file_bytes;

static void put(struct bytes *b, const void *p, size_t n)
{
    assert_true(b->len + n <= sizeof b->buf);
    memcpy(b->buf + b->len, p, n);
    b->len += n;
}

static void put_be(struct bytes *b, uint64_t v, size_t width)
{
    for (size_t i = 0; i < width; i++) {
        unsigned char c = (unsigned char)(v >> (8 * (width - 1 - i)));

        put(b, &c, 1);
    }
}

static void put_head(struct bytes *b, unsigned char version, const size_t counts[6])
{
    static const unsigned char zero[15];

    put(b, "TZif", 4);
    put(b, &version, 1);
    put(b, zero, sizeof zero);
    for (int i = 0; i < 6; i++) {
        put_be(b, counts[i], 4);
    }
}

static void put_block(struct bytes *b, const struct spec *s, size_t width)
{
    for (size_t i = 0; i < s->times; i++) {
        put_be(b, (uint64_t)s->at[i], width);
    }
    put(b, s->idx, s->times);
    for (size_t i = 0; i < s->types; i++) {
        put_be(b, (uint64_t)s->utoff[i], 4);
        put(b, &s->isdst[i], 1);
        put(b, &s->desig[i], 1);
    }
    put(b, s->abbrs, s->chars);
    for (size_t i = 0; i < s->leaps; i++) {
        put_be(b, (uint64_t)s->leap_at[i], width);
        put_be(b, (uint64_t)s->leap_corr[i], 4);
    }
    put(b, s->std, s->isstd);
    put(b, s->ut, s->isut);
}

/* build(s, b): the file s describes into b; returns where its second header starts (0 for
 * version 1). */
static size_t build(const struct spec *s, struct bytes *b)
{
    const size_t counts[6] = {s->isut, s->isstd, s->leaps, s->times, s->types, s->chars};
    const size_t minimal[6] = {0, 0, 0, 0, 1, 1};
    size_t head2 = 0;

    b->len = 0;
    if (s->version == 0) {
        put_head(b, 0, counts);
        put_block(b, s, 4);
        goto out;
    }
    put_head(b, s->version, minimal);
    put_be(b, V1_DECOY_UTOFF, 4);
    put(b, "\0\0\0", 3); /* isdst, desigidx, the abbreviation "" */
    head2 = b->len;
    put_head(b, s->version, counts);
    put_block(b, s, 8);
    if (s->footer != NULL) {
        put(b, "\n", 1);
        put(b, s->footer, strlen(s->footer));
        put(b, "\n", 1);
    }
out:
    return head2;
}

static void write_bytes(const char *name, const void *p, size_t n)
{
    char path[PATH_MAX + 80];
    FILE *f;

    snprintf(path, sizeof path, "%s/%s", tmp, name);
    f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* base_spec(s): a small valid version 2 zone, "GMT" and "BST" with three changes in 2026-2027
 * and London's footer after them. */
static void base_spec(struct spec *s)
{
    memset(s, 0, sizeof *s);
    s->version = '2';
    s->types = 2;
    s->utoff[1] = 3600;
    s->isdst[1] = 1;
    s->desig[1] = 4;
    memcpy(s->abbrs, "GMT\0BST", 8);
    s->chars = 8;
    s->times = 3;
    s->at[0] = at("2026-03-29T01:00:00Z") / SEC_MS;
    s->at[1] = at("2026-10-25T01:00:00Z") / SEC_MS;
    s->at[2] = at("2027-03-28T01:00:00Z") / SEC_MS;
    s->idx[0] = 1;
    s->idx[2] = 1;
    s->footer = "GMT0BST,M3.5.0/1,M10.5.0";
}

/* load_spec(s, rc, err): the zone file s describes, written as tmp/Built and loaded. */
static struct cu_tz *load_spec(const struct spec *s, enum cu_err *rc, char *err, size_t errlen)
{
    build(s, &file_bytes);
    write_bytes("Built", file_bytes.buf, file_bytes.len);
    return load_in(tmp, "Built", rc, err, errlen);
}

static struct cu_tz *load_spec_ok(const struct spec *s)
{
    char err[256];
    enum cu_err rc;
    struct cu_tz *tz = load_spec(s, &rc, err, sizeof err);

    if (rc != CU_OK) {
        fail_msg("a built file did not load: %s", err);
    }
    return tz;
}

/* offset_at(tz, instant): the offset in tz at an RFC 3339 instant, with 1 added for DST. */
static int offset_at(const struct cu_tz *tz, const char *instant)
{
    struct cu_tz_local l;

    cu_tz_local(tz, at(instant), &l);
    return (int)l.offset_s + l.dst;
}

static void test_built_versions(void **state)
{
    struct spec s;
    struct cu_tz *tz;

    /* Version 2, 3 and 4 read the 64-bit block: never the decoy of the 32-bit one. The footer
     * decides from the last transition on, the transitions before it. */
    for (int v = '2'; v <= '4'; v++) {
        base_spec(&s);
        s.version = (unsigned char)v;
        s.footer = v == '2' ? "GMT0BST,M3.5.0/1,M10.5.0" : "GMT0BST,M3.5.0/25,M10.5.0/-23";
        tz = load_spec_ok(&s);
        assert_int_equal(offset_at(tz, "2026-03-29T00:59:59Z"), 0);
        assert_int_equal(offset_at(tz, "2026-03-29T01:00:00Z"), 3601);
        assert_int_equal(offset_at(tz, "2026-10-25T01:00:00Z"), 0);
        /* from the last transition on: the footer, which in version 3 moves the changes a
         * day, even where it disagrees with that transition */
        assert_int_equal(offset_at(tz, "2027-03-28T01:00:00Z"), v == '2' ? 3601 : 0);
        assert_int_equal(offset_at(tz, "2027-10-31T00:59:59Z"), v == '2' ? 3601 : 0);
        assert_int_equal(offset_at(tz, "2027-10-31T01:00:00Z"), 0);
        assert_int_equal(offset_at(tz, "2028-03-26T01:00:00Z"), v == '2' ? 3601 : 0);
        assert_int_equal(offset_at(tz, "2028-03-27T01:00:00Z"), 3601);
        /* before the first: the first standard type */
        assert_int_equal(offset_at(tz, "1900-07-01T00:00:00Z"), 0);
        cu_tz_free(tz);
    }

    /* Version 1: 32-bit times, no footer; after the last transition its type stays. */
    base_spec(&s);
    s.version = 0;
    s.footer = NULL;
    tz = load_spec_ok(&s);
    assert_int_equal(offset_at(tz, "2026-03-29T01:00:00Z"), 3601);
    assert_int_equal(offset_at(tz, "2026-10-25T00:59:59Z"), 3601);
    assert_int_equal(offset_at(tz, "2026-10-25T01:00:00Z"), 0);
    assert_int_equal(offset_at(tz, "2027-12-01T00:00:00Z"), 3601);
    assert_int_equal(offset_at(tz, "2100-12-01T00:00:00Z"), 3601);
    cu_tz_free(tz);

    /* An empty footer: the last transition's type stays too. */
    base_spec(&s);
    s.footer = "";
    tz = load_spec_ok(&s);
    assert_int_equal(offset_at(tz, "2100-12-01T00:00:00Z"), 3601);
    cu_tz_free(tz);

    /* No transitions at all: the footer decides every instant. */
    base_spec(&s);
    s.times = 0;
    s.footer = "EST5EDT,M3.2.0,M11.1.0";
    s.utoff[0] = -18000;
    tz = load_spec_ok(&s);
    assert_int_equal(offset_at(tz, "1900-01-15T12:00:00Z"), -18000);
    assert_int_equal(offset_at(tz, "1900-07-15T12:00:00Z"), -14399);
    assert_int_equal(offset_at(tz, "2026-07-15T12:00:00Z"), -14399);
    cu_tz_free(tz);

    /* Trailing bytes after the footer are left for later versions, and ignored. */
    base_spec(&s);
    build(&s, &file_bytes);
    put(&file_bytes, "more\n", 5);
    write_bytes("Built", file_bytes.buf, file_bytes.len);
    tz = load_ok(tmp, "Built");
    assert_int_equal(offset_at(tz, "2026-03-29T01:00:00Z"), 3601);
    cu_tz_free(tz);
}

/* Before the first transition: the first standard-time type, even when type 0 is DST, and
 * type 0 when every type is DST. */
static void test_built_early_type(void **state)
{
    struct spec s;
    struct cu_tz *tz;

    base_spec(&s);
    s.types = 3;
    s.utoff[0] = 7200;
    s.isdst[0] = 1;
    s.utoff[1] = -3600;
    s.isdst[1] = 0;
    s.utoff[2] = 3600;
    s.desig[2] = 0;
    s.times = 1;
    s.idx[0] = 0;
    s.footer = "";
    tz = load_spec_ok(&s);
    assert_int_equal(offset_at(tz, "2026-03-29T00:59:59Z"), -3600);
    assert_int_equal(offset_at(tz, "2026-03-29T01:00:00Z"), 7201);
    cu_tz_free(tz);

    s.types = 2;
    s.isdst[1] = 1;
    tz = load_spec_ok(&s);
    assert_int_equal(offset_at(tz, "2026-03-29T00:59:59Z"), 7201);
    cu_tz_free(tz);
}

/* Leap seconds: with a leap-second table the transition times count them, and are taken back
 * to Unix time. */
static void test_built_leap_seconds(void **state)
{
    struct spec s;
    struct cu_tz *tz;

    base_spec(&s);
    s.leaps = 3;
    s.leap_at[0] = 78796800; /* 1972-07-01, the first leap second */
    s.leap_corr[0] = 1;
    s.leap_at[1] = 94694401; /* 1973-01-01 */
    s.leap_corr[1] = 2;
    s.leap_at[2] = 1700000000; /* the table's expiry: the correction repeated */
    s.leap_corr[2] = 2;
    s.at[0] = at("1990-03-25T01:00:00Z") / SEC_MS + 2;
    s.at[1] = at("1990-10-28T01:00:00Z") / SEC_MS + 2;
    s.at[2] = at("2030-03-31T01:00:00Z") / SEC_MS + 2;
    tz = load_spec_ok(&s);
    assert_int_equal(offset_at(tz, "1990-03-25T00:59:59Z"), 0);
    assert_int_equal(offset_at(tz, "1990-03-25T01:00:00Z"), 3601);
    assert_int_equal(offset_at(tz, "1990-10-28T00:59:59Z"), 3601);
    assert_int_equal(offset_at(tz, "1990-10-28T01:00:00Z"), 0);
    assert_int_equal(offset_at(tz, "2030-03-31T00:59:59Z"), 0);
    assert_int_equal(offset_at(tz, "2030-03-31T01:00:00Z"), 3601);
    cu_tz_free(tz);
}

static void test_right_zone(void **state)
{
    char path[PATH_MAX + 32];
    struct stat st;

    snprintf(path, sizeof path, "%s/right/Europe/London", system_dir);
    if (stat(path, &st) != 0) {
        skip(); /* the leap-second zones are not installed */
    }
    check_right("right/Europe/London");
}

/* A POSIX TZ string and its zone: a file with no transitions and the string as footer. */
static struct cu_tz *load_rule(const char *rule)
{
    struct spec s;

    base_spec(&s);
    s.times = 0;
    s.footer = rule;
    return load_spec_ok(&s);
}

/* Rules of every form whose changes are far from New Year, compared with glibc after 1970
 * (glibc applies a rule to the UTC year only, and to years before 1970 wrongly): the system
 * zones' footers, Jn and n days, the last week, times with seconds, and version 3's negative
 * hours and hours past 24. */
static const char *const rules_for_glibc[] = {
    "GMT0BST,M3.5.0/1,M10.5.0",
    "EST5EDT,M3.2.0,M11.1.0",
    "<+1030>-10:30<+11>-11,M10.1.0,M4.1.0",
    "<+1245>-12:45<+1345>,M9.5.0/2:45,M4.1.0/3:45",
    "IST-2IDT,M3.4.4/26,M10.5.0",
    "<-02>2<-01>,M3.5.0/-1,M10.5.0/0",
    "<-03>3<-02>,M3.5.0/-2,M10.5.0/-1",
    "XST5XDT,J60/2,J300/2",
    "XST5XDT,59/2,299/2",
    "XST5XDT,J60,J300",
    "XST5XDT4:30,M4.1.3/1:02:03,M9.3.6/23:59:59",
    "XST-5:45:30XDT,M4.5.1/100,M9.1.1/-100",
    "XST+12XDT,M10.1.0/-167,M3.3.0/167",
    "<-0330>3:30",
    "UTC0",
    "<+14>-14",
    "<-12>12",
};

static void test_rules_match_glibc(void **state)
{
    for (size_t i = 0; i < sizeof rules_for_glibc / sizeof rules_for_glibc[0]; i++) {
        const char *rule = rules_for_glibc[i];
        struct cu_tz *tz = load_rule(rule);
        int changes = 0;

        oracle_zone(rule);
        check_range(rule, tz, utc_ms(2024, 1, 1, 0, 0, 0), utc_ms(2028, 1, 1, 0, 0, 0),
                    3 * HOUR_MS);
        check_range(rule, tz, utc_ms(2150, 1, 1, 0, 0, 0), utc_ms(2151, 1, 1, 0, 0, 0),
                    3 * HOUR_MS);
        for (int y = 2026; y <= 2100; y += 37) {
            changes += check_changes(rule, tz, y);
        }
        assert_int_equal(changes, strchr(rule, ',') != NULL ? 6 : 0);
        cu_tz_free(tz);
    }
}

/* Rules near New Year and the defaults, by hand. */
static const struct known rule_known[] = {
    /* DST all year: each year's change to standard time at 25:00 on the last day is the next
     * year's change back at 00:00 on its first */
    {"XST5XDT,0/0,J365/25", "2026-01-01T02:00:00Z", "2025-12-31 22:00:00", 3, -14400, true},
    {"XST5XDT,0/0,J365/25", "2026-01-01T05:00:00Z", "2026-01-01 01:00:00", 4, -14400, true},
    {"XST5XDT,0/0,J365/25", "2026-07-01T00:00:00Z", "2026-06-30 20:00:00", 2, -14400, true},
    /* a change at 00:00 on January 1, which is December 31 in UTC */
    {"XST-3XDT-4,J1/0,J300/0", "2025-12-31T20:59:59Z", "2025-12-31 23:59:59", 3, 10800, false},
    {"XST-3XDT-4,J1/0,J300/0", "2025-12-31T21:00:00Z", "2026-01-01 01:00:00", 4, 14400, true},
    /* Jn never counts February 29 (J60 is March 1), n does (59 is February 29 in 2024) */
    {"XST0XDT,J60/0,J61/0", "2024-02-29T12:00:00Z", "2024-02-29 12:00:00", 4, 0, false},
    {"XST0XDT,J60/0,J61/0", "2024-03-01T12:00:00Z", "2024-03-01 13:00:00", 5, 3600, true},
    {"XST0XDT,59/0,60/0", "2024-02-29T12:00:00Z", "2024-02-29 13:00:00", 4, 3600, true},
    {"XST0XDT,59/0,60/0", "2024-03-01T12:00:00Z", "2024-03-01 12:00:00", 5, 0, false},
    {"XST0XDT,59/0,60/0", "2025-02-28T12:00:00Z", "2025-02-28 12:00:00", 5, 0, false},
    {"XST0XDT,59/0,60/0", "2025-03-01T12:00:00Z", "2025-03-01 13:00:00", 6, 3600, true},
    /* week 5 of a month with four Sundays (February 2026) is its fourth, the 22nd */
    {"XST0XDT,M2.5.0/0,M3.1.0/0", "2026-02-21T23:59:59Z", "2026-02-21 23:59:59", 6, 0, false},
    {"XST0XDT,M2.5.0/0,M3.1.0/0", "2026-02-22T00:00:00Z", "2026-02-22 01:00:00", 0, 3600, true},
    {"XST0XDT,M2.5.0/0,M3.1.0/0", "2026-02-28T22:59:59Z", "2026-02-28 23:59:59", 6, 3600, true},
    {"XST0XDT,M2.5.0/0,M3.1.0/0", "2026-02-28T23:00:00Z", "2026-02-28 23:00:00", 6, 0, false},
    /* negative times: the evening before */
    {"XST0XDT,M3.5.0/-2,M10.5.0/-1", "2026-03-28T21:59:59Z", "2026-03-28 21:59:59", 6, 0, false},
    {"XST0XDT,M3.5.0/-2,M10.5.0/-1", "2026-03-28T22:00:00Z", "2026-03-28 23:00:00", 6, 3600, true},
    {"XST0XDT,M3.5.0/-2,M10.5.0/-1", "2026-10-24T21:59:59Z", "2026-10-24 22:59:59", 6, 3600, true},
    {"XST0XDT,M3.5.0/-2,M10.5.0/-1", "2026-10-24T22:00:00Z", "2026-10-24 22:00:00", 6, 0, false},
    /* +-167 hours: nearly a week after and before */
    {"XST0XDT,M3.5.0/167,M10.5.0/-167", "2026-04-04T22:59:59Z", "2026-04-04 22:59:59", 6, 0, false},
    {"XST0XDT,M3.5.0/167,M10.5.0/-167", "2026-04-04T23:00:00Z", "2026-04-05 00:00:00", 0, 3600,
     true},
    {"XST0XDT,M3.5.0/167,M10.5.0/-167", "2026-10-17T23:59:59Z", "2026-10-18 00:59:59", 0, 3600,
     true},
    {"XST0XDT,M3.5.0/167,M10.5.0/-167", "2026-10-18T00:00:00Z", "2026-10-18 00:00:00", 0, 0, false},
    /* a DST name without a rule: the US rules, DST one hour ahead */
    {"XST5XDT", "2026-03-08T06:59:59Z", "2026-03-08 01:59:59", 0, -18000, false},
    {"XST5XDT", "2026-03-08T07:00:00Z", "2026-03-08 03:00:00", 0, -14400, true},
    /* DST's own offset */
    {"XST5XDT3,M3.2.0,M11.1.0", "2026-07-01T12:00:00Z", "2026-07-01 09:00:00", 3, -10800, true},
    /* before 1970: the last Sundays of March 1950 and 1900 (glibc gets these wrong) */
    {"GMT0BST,M3.5.0/1,M10.5.0", "1950-03-26T00:59:59Z", "1950-03-26 00:59:59", 0, 0, false},
    {"GMT0BST,M3.5.0/1,M10.5.0", "1950-03-26T01:00:00Z", "1950-03-26 02:00:00", 0, 3600, true},
    {"GMT0BST,M3.5.0/1,M10.5.0", "1900-03-25T00:59:59Z", "1900-03-25 00:59:59", 0, 0, false},
    {"GMT0BST,M3.5.0/1,M10.5.0", "1900-03-25T01:00:00Z", "1900-03-25 02:00:00", 0, 3600, true},
    {"GMT0BST,M3.5.0/1,M10.5.0", "1900-10-28T00:59:59Z", "1900-10-28 01:59:59", 0, 3600, true},
    {"GMT0BST,M3.5.0/1,M10.5.0", "1900-10-28T01:00:00Z", "1900-10-28 01:00:00", 0, 0, false},
    /* quoted names, one character long */
    {"<A>-1<B>,M3.5.0,M10.5.0", "2026-07-01T12:00:00Z", "2026-07-01 14:00:00", 3, 7200, true},
};

static void test_rules_known(void **state)
{
    for (size_t i = 0; i < sizeof rule_known / sizeof rule_known[0]; i++) {
        struct cu_tz *tz = load_rule(rule_known[i].zone);

        check_known(tz, &rule_known[i]);
        cu_tz_free(tz);
    }
}

/* expect_corrupt(what, rc, err): a file refused as corrupt, with a message naming the zone and
 * not the directory it is in. */
static void expect_corrupt(const char *what, enum cu_err rc, const char *err)
{
    if (rc != CU_E_CORRUPT) {
        fail_msg("%s: %s, not CU_E_CORRUPT (%s)", what, cu_err_str(rc), err);
    }
    assert_non_null(strstr(err, "\"Built\""));
    assert_null(strstr(err, tmp));
}

static void test_bad_footers(void **state)
{
    static const char *const bad[] = {
        "EST",                         /* no offset */
        "EST5EDT,M13.1.0,M11.1.0",     /* month 13 */
        "EST5EDT,M0.1.0,M11.1.0",      /* month 0 */
        "EST5EDT,M3.6.0,M11.1.0",      /* week 6 */
        "EST5EDT,M3.0.0,M11.1.0",      /* week 0 */
        "EST5EDT,M3.2.7,M11.1.0",      /* weekday 7 */
        "EST5EDT,M3.2,M11.1.0",        /* no weekday */
        "EST5EDT,J0,J100",             /* Jn starts at 1 */
        "EST5EDT,J366,J100",           /* and ends at 365 */
        "EST5EDT,366,100",             /* n ends at 365 */
        "EST5EDT,M3.2.0/168,M11.1.0",  /* past 167 hours */
        "EST5EDT,M3.2.0/-168,M11.1.0", /* before -167 */
        "EST5EDT,M3.2.0/1:60,M11.1.0", /* minute 60 */
        "EST5EDT,M3.2.0/1:00:60,M11.1.0",
        "EST25",                          /* offsets stop at 24 hours */
        "EST5:60",                        /* minute 60 */
        "EST5EDT25,M3.2.0,M11.1.0",       /* DST offset too */
        "EST5EDT,M3.2.0,M11.1.0junk",     /* trailing bytes */
        "EST5EDT,M3.2.0",                 /* no end */
        "EST5EDT,",                       /* no start */
        "EST5EDT,M3.2.0,",                /* empty end */
        "<AB",                            /* unclosed quote */
        "<>5",                            /* empty quoted name */
        "<A B>5",                         /* space in a quoted name */
        "ES5",                            /* two letters */
        "5",                              /* no name */
        "EST1234",                        /* four digits of hours */
        "EST5ED",                         /* two-letter DST name */
        "EST 5",                          /* space */
        "EST5EDT;M3.2.0,M11.1.0",         /* not a comma */
        "EST5EDT,M3.2.0/,M11.1.0",        /* empty time */
        "EST5EDT,M3.2.0/+-1,M11.1.0",     /* two signs */
        "EST5EDT,M3.2.0,M11.1.0,M12.1.0", /* three dates */
    };
    char err[256];
    enum cu_err rc;
    struct spec s;

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        base_spec(&s);
        s.footer = bad[i];
        assert_null(load_spec(&s, &rc, err, sizeof err));
        expect_corrupt(bad[i], rc, err);
    }
    /* longer than 255 bytes */
    char longest[300];
    memset(longest, 'A', sizeof longest - 1);
    longest[sizeof longest - 1] = '\0';
    memcpy(longest + sizeof longest - 3, "5", 2);
    base_spec(&s);
    s.footer = longest;
    assert_null(load_spec(&s, &rc, err, sizeof err));
    expect_corrupt("a long footer", rc, err);
    /* a control byte, a newline missing, no footer */
    base_spec(&s);
    s.footer = "GMT0BST,M3.5.0/1,M10.5.0\t";
    assert_null(load_spec(&s, &rc, err, sizeof err));
    expect_corrupt("a tab", rc, err);
    base_spec(&s);
    build(&s, &file_bytes);
    for (size_t cut = 1; cut <= strlen(s.footer) + 2; cut++) {
        write_bytes("Built", file_bytes.buf, file_bytes.len - cut);
        assert_null(load_in(tmp, "Built", &rc, err, sizeof err));
        expect_corrupt("a footer cut", rc, err);
    }
}

/* A valid file changed one way each, to something RFC 8536 forbids. */
static void test_bad_fields(void **state)
{
    char err[256];
    enum cu_err rc;
    struct spec s;
    const char *what;

    for (int c = 0;; c++) {
        base_spec(&s);
        if (c == 0) {
            what = "version 5";
            s.version = '5';
        } else if (c == 1) {
            what = "version '1' (version 1 is a NUL)";
            s.version = '1';
        } else if (c == 2) {
            what = "no types";
            s.types = 0;
            s.times = 0;
        } else if (c == 3) {
            what = "no abbreviation bytes";
            s.chars = 0;
            s.desig[1] = 0;
        } else if (c == 4) {
            what = "a type index out of range";
            s.idx[1] = 2;
        } else if (c == 5) {
            what = "times going back";
            s.at[1] = s.at[0] - 1;
        } else if (c == 6) {
            what = "two transitions at one time";
            s.at[1] = s.at[0];
        } else if (c == 7) {
            what = "an offset of 26 h";
            s.utoff[1] = 93600;
        } else if (c == 8) {
            what = "an offset of -25 h";
            s.utoff[1] = -90000;
        } else if (c == 9) {
            what = "an offset of -2^31 s";
            s.utoff[1] = INT32_MIN;
        } else if (c == 10) {
            what = "a DST flag of 2";
            s.isdst[1] = 2;
        } else if (c == 11) {
            what = "an abbreviation index past the bytes";
            s.desig[1] = 8;
        } else if (c == 12) {
            what = "an abbreviation without a NUL";
            memcpy(s.abbrs, "GMTXBSTX", 8);
        } else if (c == 13) {
            what = "one standard/wall indicator for two types";
            s.isstd = 1;
        } else if (c == 14) {
            what = "one UT/local indicator for two types";
            s.isut = 1;
        } else if (c == 15) {
            what = "a standard/wall indicator of 2";
            s.isstd = 2;
            s.std[0] = 2;
        } else if (c == 16) {
            what = "UT without standard";
            s.isstd = 2;
            s.isut = 2;
            s.ut[1] = 1;
        } else if (c == 17) {
            what = "UT without standard indicators";
            s.isut = 2;
            s.ut[0] = 1;
        } else if (c >= 18 && c <= 21) {
            static const int64_t leap_at[4][3] = {
                {100, 100, 0}, {100, 200, 0}, {-1, 0, 0}, {100, 200, 300}};
            static const int64_t leap_corr[4][3] = {{1, 2, 0}, {1, 3, 0}, {1, 0, 0}, {1, 1, 2}};
            static const size_t leaps[4] = {2, 2, 1, 3};
            static const char *const whats[4] = {
                "two leap seconds at one time", "a correction stepping by 2",
                "a leap second before 1970", "a correction standing still before the last"};

            what = whats[c - 18];
            s.leaps = leaps[c - 18];
            memcpy(s.leap_at, leap_at[c - 18], sizeof leap_at[0]);
            memcpy(s.leap_corr, leap_corr[c - 18], sizeof leap_corr[0]);
        } else if (c == 22) {
            what = "a transition that overflows when the leap seconds are taken off";
            s.times = 1;
            s.at[0] = INT64_MAX;
            s.leaps = 1;
            s.leap_at[0] = 100;
            s.leap_corr[0] = -1;
        } else {
            break;
        }
        assert_null(load_spec(&s, &rc, err, sizeof err));
        expect_corrupt(what, rc, err);
    }
    /* the same file with indicators as they should be loads */
    base_spec(&s);
    s.isstd = 2;
    s.isut = 2;
    s.std[1] = 1;
    s.ut[1] = 1;
    cu_tz_free(load_spec_ok(&s));
}

/* A header patched: counts too large for the file or over the limits, magic, version. */
static void test_bad_headers(void **state)
{
    char err[256];
    enum cu_err rc;
    struct spec s;
    size_t head2;
    static unsigned char copy[sizeof file_bytes.buf];

    base_spec(&s);
    head2 = build(&s, &file_bytes);
    for (int which = 0; which < 2; which++) {
        size_t h = which == 0 ? 0 : head2;

        for (int field = 0; field < 6; field++) {
            static const uint32_t values[] = {0xffffffffu, 0x80000000u, 10001, 1001, 257, 300};

            for (size_t v = 0; v < sizeof values / sizeof values[0]; v++) {
                memcpy(copy, file_bytes.buf, file_bytes.len);
                for (int i = 0; i < 4; i++) {
                    copy[h + 20 + 4 * (size_t)field + (size_t)i] =
                        (unsigned char)(values[v] >> (24 - 8 * i));
                }
                write_bytes("Built", copy, file_bytes.len);
                assert_null(load_in(tmp, "Built", &rc, err, sizeof err));
                expect_corrupt("a patched count", rc, err);
            }
        }
        memcpy(copy, file_bytes.buf, file_bytes.len);
        copy[h] = 'X';
        write_bytes("Built", copy, file_bytes.len);
        assert_null(load_in(tmp, "Built", &rc, err, sizeof err));
        expect_corrupt("magic", rc, err);
    }
    memcpy(copy, file_bytes.buf, file_bytes.len);
    copy[head2 + 4] = '3';
    write_bytes("Built", copy, file_bytes.len);
    assert_null(load_in(tmp, "Built", &rc, err, sizeof err));
    expect_corrupt("versions differ", rc, err);
}

/* Files that are not zone files at all, and real ones cut short or with bytes changed. */
static void test_garbage_files(void **state)
{
    static unsigned char buf[300 * 1024];
    char err[256], path[PATH_MAX + 32];
    enum cu_err rc;
    size_t len;
    FILE *f;
    struct cu_tz *tz;
    struct spec s;

    write_bytes("Built", "", 0);
    assert_null(load_in(tmp, "Built", &rc, err, sizeof err));
    expect_corrupt("empty", rc, err);
    write_bytes("Built", "TZif", 4);
    assert_null(load_in(tmp, "Built", &rc, err, sizeof err));
    expect_corrupt("magic only", rc, err);
    write_bytes("Built", "# tzdata text, not a TZif file\n", 31);
    assert_null(load_in(tmp, "Built", &rc, err, sizeof err));
    expect_corrupt("text", rc, err);
    for (size_t i = 0; i < sizeof buf; i++) {
        buf[i] = (unsigned char)next_random();
    }
    write_bytes("Built", buf, 4096);
    assert_null(load_in(tmp, "Built", &rc, err, sizeof err));
    expect_corrupt("random", rc, err);

    /* over 256 KiB: a valid file with padding after it */
    base_spec(&s);
    build(&s, &file_bytes);
    memcpy(buf, file_bytes.buf, file_bytes.len);
    memset(buf + file_bytes.len, '\n', sizeof buf - file_bytes.len);
    write_bytes("Built", buf, (size_t)256 * 1024 + 1);
    assert_null(load_in(tmp, "Built", &rc, err, sizeof err));
    expect_corrupt("large", rc, err);
    write_bytes("Built", buf, (size_t)256 * 1024);
    cu_tz_free(load_ok(tmp, "Built"));

    /* every proper prefix of a real zone file, and of a version 1 file */
    snprintf(path, sizeof path, "%s/Europe/London", system_dir);
    f = fopen(path, "rb");
    assert_non_null(f);
    len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    assert_true(len > 100);
    for (size_t cut = 0; cut < len; cut++) {
        write_bytes("Built", buf, cut);
        assert_null(load_in(tmp, "Built", &rc, err, sizeof err));
        expect_corrupt("a prefix", rc, err);
    }
    base_spec(&s);
    s.version = 0;
    build(&s, &file_bytes);
    for (size_t cut = 0; cut < file_bytes.len; cut++) {
        write_bytes("Built", file_bytes.buf, cut);
        assert_null(load_in(tmp, "Built", &rc, err, sizeof err));
        expect_corrupt("a version 1 prefix", rc, err);
    }

    /* bytes changed at random: refused as corrupt, or loaded and usable at any instant */
    for (int i = 0; i < 3000; i++) {
        static unsigned char mutant[64 * 1024];

        memcpy(mutant, buf, len);
        for (int k = 0; k < 1 + (int)(next_random() % 4); k++) {
            mutant[next_random() % len] = (unsigned char)next_random();
        }
        write_bytes("Built", mutant, len);
        tz = load_in(tmp, "Built", &rc, err, sizeof err);
        if (tz == NULL) {
            expect_corrupt("a mutant", rc, err);
            continue;
        }
        for (int k = 0; k < 50; k++) {
            struct cu_tz_local l;

            cu_tz_local(tz, (int64_t)next_random(), &l);
            assert_true(l.month >= 1 && l.month <= 12 && l.day >= 1 && l.day <= 31 && l.hour >= 0 &&
                        l.hour < 24 && l.minute >= 0 && l.minute < 60 && l.second >= 0 &&
                        l.second < 60 && l.wday >= 0 && l.wday < 7 && l.offset_s > -90000 &&
                        l.offset_s < 93600);
        }
        cu_tz_free(tz);
    }
}

static void test_names(void **state)
{
    static const struct {
        const char *name;
        enum cu_err rc;
    } cases[] = {
        {"", CU_E_INVALID},
        {"../etc/passwd", CU_E_INVALID},
        {"/etc/localtime", CU_E_INVALID},
        {"Europe/../../etc/passwd", CU_E_INVALID},
        {"Europe/..", CU_E_INVALID},
        {"Europe/New York", CU_E_INVALID},
        {"Europe/London\n", CU_E_INVALID},
        {"Europe/London ", CU_E_INVALID},
        {"./UTC", CU_E_INVALID},
        {"zone.tab", CU_E_INVALID},
        {"Europe\\London", CU_E_INVALID},
        {"Europe/Lond\xc3\xb6n", CU_E_INVALID},
        {"Europe/London;rm", CU_E_INVALID},
        {"Europe/Nowhere", CU_E_NOT_FOUND},
        {"Europe", CU_E_NOT_FOUND},          /* a directory */
        {"Europe/", CU_E_NOT_FOUND},         /* the same */
        {"Europe/London/x", CU_E_NOT_FOUND}, /* below a file */
        {"Europe/London", CU_OK},
        {"America/Argentina/ComodRivadavia", CU_OK},
        {"Etc/GMT-14", CU_OK},
        {"Etc/GMT+5", CU_OK},
        {"UTC", CU_OK},
    };
    char err[256], long_name[CU_TZ_NAME_MAX + 2];
    enum cu_err rc;
    struct cu_tz *tz;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        err[0] = '\0';
        tz = load_in(NULL, cases[i].name, &rc, err, sizeof err);
        if (rc != cases[i].rc) {
            fail_msg("\"%s\": %s, want %s (%s)", cases[i].name, cu_err_str(rc),
                     cu_err_str(cases[i].rc), err);
        }
        if (rc != CU_OK) {
            assert_non_null(strstr(err, "time zone \""));
            assert_null(strstr(err, system_dir));
            assert_null(strchr(err, '\n'));
        }
        if (rc == CU_E_NOT_FOUND || strcmp(cases[i].name, "../etc/passwd") == 0) {
            assert_non_null(strstr(err, cases[i].name)); /* the message names the zone */
        }
        cu_tz_free(tz);
    }

    /* 64 bytes is a name (of no zone), 65 is not; the message shows the name cut */
    memset(long_name, 'A', CU_TZ_NAME_MAX);
    long_name[CU_TZ_NAME_MAX] = '\0';
    assert_null(load_in(NULL, long_name, &rc, err, sizeof err));
    assert_int_equal(rc, CU_E_NOT_FOUND);
    long_name[CU_TZ_NAME_MAX] = 'A';
    long_name[CU_TZ_NAME_MAX + 1] = '\0';
    assert_null(load_in(NULL, long_name, &rc, err, sizeof err));
    assert_int_equal(rc, CU_E_INVALID);
    long_name[CU_TZ_NAME_MAX] = '\0';
    assert_non_null(strstr(err, long_name));
    assert_non_null(strstr(err, "...\""));

    /* a short buffer gets a cut message; no buffer at all is allowed */
    assert_null(load_in(NULL, "Europe/Nowhere", &rc, err, 8));
    assert_int_equal(strlen(err), 7);
    assert_null(load_in(NULL, "Europe/Nowhere", &rc, NULL, 0));
    assert_int_equal(rc, CU_E_NOT_FOUND);

    cu_tz_free(NULL);
}

/* Odd files in the zone directory: a FIFO (which must not block), one that may not be read,
 * and TZDIR itself too long for a path. */
static void test_odd_files(void **state)
{
    char path[PATH_MAX + 32], err[256], *dir;
    enum cu_err rc;
    struct cu_tz *tz;

    snprintf(path, sizeof path, "%s/Fifo", tmp);
    assert_int_equal(mkfifo(path, 0600), 0);
    assert_null(load_in(tmp, "Fifo", &rc, err, sizeof err));
    assert_int_equal(rc, CU_E_NOT_FOUND);

    write_bytes("Unreadable", "TZif", 4);
    snprintf(path, sizeof path, "%s/Unreadable", tmp);
    assert_int_equal(chmod(path, 0), 0);
    assert_null(load_in(tmp, "Unreadable", &rc, err, sizeof err));
    /* root reads it anyway, and finds it too short */
    assert_int_equal(rc, geteuid() == 0 ? CU_E_CORRUPT : CU_E_PERM);
    assert_null(strstr(err, tmp));

    dir = malloc(5000);
    assert_non_null(dir);
    memset(dir, 'd', 4999);
    dir[0] = '/';
    dir[4999] = '\0';
    assert_null(load_in(dir, "UTC", &rc, err, sizeof err));
    assert_int_equal(rc, CU_E_CONFIG);
    assert_null(strstr(err, "ddd"));
    free(dir);

    /* TZDIR set but empty means the default directory */
    if (!system_dir_from_env) {
        tz = load_ok("", "UTC");
        cu_tz_free(tz);
    }
}

/* Every allocation of a load failing in turn: CU_E_NOMEM, nothing leaked, nothing returned. */
static void test_allocation_failures(void **state)
{
    char err[256];
    enum cu_err rc = CU_E_NOMEM;
    struct cu_tz *tz = NULL;
    long k;

    for (k = 1; k < 50 && rc == CU_E_NOMEM; k++) {
        cu_mem_fail_at(k);
        tz = load_in(NULL, "Europe/London", &rc, err, sizeof err);
        cu_mem_fail_at(0);
        if (rc != CU_OK) {
            assert_int_equal(rc, CU_E_NOMEM);
            assert_non_null(strstr(err, "Europe/London"));
        }
    }
    assert_int_equal(rc, CU_OK);
    assert_true(k > 2); /* some allocation did fail first */
    cu_tz_free(tz);
}

/* Threads converting with one zone at once get what one thread got alone. */
#define THREADS 4
#define THREAD_INSTANTS 20000

struct thread_arg {
    const struct cu_tz *tz;
    const int64_t *ms;
    const struct cu_tz_local *want;
    int mismatches;
};

static void *convert_all(void *p)
{
    struct thread_arg *a = p;

    for (int round = 0; round < 5; round++) {
        for (int i = 0; i < THREAD_INSTANTS; i++) {
            struct cu_tz_local l;

            cu_tz_local(a->tz, a->ms[i], &l);
            a->mismatches += !same_local(&l, &a->want[i]);
        }
    }
    return NULL;
}

static void test_threads(void **state)
{
    static int64_t ms[THREAD_INSTANTS];
    static struct cu_tz_local want[THREAD_INSTANTS];
    struct cu_tz *tz = load_ok(NULL, "Europe/London");
    pthread_t th[THREADS];
    struct thread_arg args[THREADS];

    for (int i = 0; i < THREAD_INSTANTS; i++) {
        ms[i] = random_ms(-RANGE_MS, RANGE_MS);
        cu_tz_local(tz, ms[i], &want[i]);
    }
    for (int t = 0; t < THREADS; t++) {
        args[t] = (struct thread_arg){tz, ms, want, 0};
        assert_int_equal(pthread_create(&th[t], NULL, convert_all, &args[t]), 0);
    }
    for (int t = 0; t < THREADS; t++) {
        assert_int_equal(pthread_join(th[t], NULL), 0);
        assert_int_equal(args[t].mismatches, 0);
    }
    cu_tz_free(tz);
}

static int group_setup(void **state)
{
    const char *env = getenv("TZDIR");

    system_dir_from_env = env != NULL && env[0] != '\0';
    snprintf(system_dir, sizeof system_dir, "%s", system_dir_from_env ? env : SYSTEM_DIR_DEFAULT);
    cu_test_tmpdir(tmp, sizeof tmp);
    make_slim();
    return 0;
}

static int group_teardown(void **state)
{
    cu_test_rmrf(tmp);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_answers),
        cmocka_unit_test(test_zones_match_glibc),
        cmocka_unit_test(test_slim_zones_match_glibc),
        cmocka_unit_test(test_every_system_zone),
        cmocka_unit_test(test_every_slim_zone),
        cmocka_unit_test(test_far_instants),
        cmocka_unit_test(test_utc_matches_gmtime),
        cmocka_unit_test(test_built_versions),
        cmocka_unit_test(test_built_early_type),
        cmocka_unit_test(test_built_leap_seconds),
        cmocka_unit_test(test_right_zone),
        cmocka_unit_test(test_rules_match_glibc),
        cmocka_unit_test(test_rules_known),
        cmocka_unit_test(test_bad_footers),
        cmocka_unit_test(test_bad_fields),
        cmocka_unit_test(test_bad_headers),
        cmocka_unit_test(test_garbage_files),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_odd_files),
        cmocka_unit_test(test_allocation_failures),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
