/*
 * clock.c - the injectable wall clock and RFC 3339 times.
 *
 * Wall time is real unless a test froze it with cu_clock_set_fake; the fake state is two
 * atomics so threads may read the clock while a test moves it. Times are formatted as RFC
 * 3339 UTC with milliseconds, and parsed strictly: full date, 'T', full time, optional
 * fraction, 'Z' or a numeric offset. Leap seconds (second 60) are refused because Unix time
 * has no place for them; fraction digits past milliseconds are truncated.
 */
#include "base/clock.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static atomic_bool fake_on;
static _Atomic int64_t fake_ms;

/* The range cu_clock_format can print: 0000-01-01T00:00:00.000Z .. 9999-12-31T23:59:59.999Z */
#define MIN_MS (-62167219200000LL)
#define MAX_MS (253402300799999LL)

/* cu_clock_now_ms(): the current time in Unix milliseconds (the fake time when set). */
int64_t cu_clock_now_ms(void)
{
    struct timespec ts;

    if (atomic_load(&fake_on)) {
        return atomic_load(&fake_ms);
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* cu_clock_mono_ns(): a monotonic clock in nanoseconds; never faked. */
uint64_t cu_clock_mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* cu_clock_set_fake(ms): freezes the wall clock at ms (tests only). */
void cu_clock_set_fake(int64_t ms)
{
    atomic_store(&fake_ms, ms);
    atomic_store(&fake_on, true);
}

/* cu_clock_advance(ms): moves a frozen clock forward by ms (tests only). */
void cu_clock_advance(int64_t ms)
{
    atomic_fetch_add(&fake_ms, ms);
}

/* cu_clock_use_real(): returns to the real wall clock. */
void cu_clock_use_real(void)
{
    atomic_store(&fake_on, false);
}

/* put_digits(out, v, n): writes v as exactly n decimal digits (v < 10^n). */
static void put_digits(char *out, unsigned v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        out[i] = (char)('0' + v % 10u);
        v /= 10u;
    }
}

/* cu_clock_format(ms, out): writes ms as RFC 3339 UTC with milliseconds into out. Times
 * outside years 0000..9999 are clamped to that range so the output is always valid. The
 * date comes from the day count by the proleptic Gregorian calendar in 400-year eras
 * (civil-from-days), without gmtime and printf, which cost more than the rest of a field's
 * formatting on hot paths (every log line and every record in an answer). */
void cu_clock_format(int64_t ms, char out[CU_RFC3339_BYTES])
{
    ms = ms < MIN_MS ? MIN_MS : ms > MAX_MS ? MAX_MS : ms;
    int64_t frac = ms % 1000;
    if (frac < 0) {
        frac += 1000;
    }
    int64_t secs = (ms - frac) / 1000;
    int64_t days = secs / 86400, sod = secs % 86400;
    if (sod < 0) {
        sod += 86400;
        days--;
    }
    /* Days since 0000-03-01, so that the leap day ends a year. */
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;                                      /* 0..146096 */
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* 0..399 */
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);               /* 0..365 */
    int64_t mp = (5 * doy + 2) / 153;                                    /* 0..11, March first */
    int64_t day = doy - (153 * mp + 2) / 5 + 1;
    int64_t month = mp < 10 ? mp + 3 : mp - 9;
    int64_t year = yoe + era * 400 + (month <= 2);

    put_digits(out, (unsigned)year, 4);
    out[4] = '-';
    put_digits(out + 5, (unsigned)month, 2);
    out[7] = '-';
    put_digits(out + 8, (unsigned)day, 2);
    out[10] = 'T';
    put_digits(out + 11, (unsigned)(sod / 3600), 2);
    out[13] = ':';
    put_digits(out + 14, (unsigned)(sod / 60 % 60), 2);
    out[16] = ':';
    put_digits(out + 17, (unsigned)(sod % 60), 2);
    out[19] = '.';
    put_digits(out + 20, (unsigned)frac, 3);
    out[23] = 'Z';
    out[24] = '\0';
}

/* digits(s, n, out): reads exactly n decimal digits at s into *out. */
static bool digits(const char *s, int n, int *out)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

static bool is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

    return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

/* parse_datetime(s, tm): "YYYY-MM-DDTHH:MM:SS" with every field range-checked. */
static bool parse_datetime(const char *s, struct tm *tm)
{
    int y, mo, d, h, mi, sec;

    if (!digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-' ||
        !digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') || !digits(s + 11, 2, &h) ||
        s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' || !digits(s + 17, 2, &sec)) {
        return false;
    }
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 59) {
        return false;
    }
    memset(tm, 0, sizeof *tm);
    tm->tm_year = y - 1900;
    tm->tm_mon = mo - 1;
    tm->tm_mday = d;
    tm->tm_hour = h;
    tm->tm_min = mi;
    tm->tm_sec = sec;
    return true;
}

/* parse_fraction(s, ms): an optional ".digits" at *s; advances *s past it. */
static bool parse_fraction(const char **s, int *ms)
{
    const char *p = *s;
    int scale = 100;

    *ms = 0;
    if (*p != '.') {
        return true;
    }
    p++;
    if (*p < '0' || *p > '9') {
        return false;
    }
    for (; *p >= '0' && *p <= '9'; p++) {
        *ms += (*p - '0') * scale;
        scale /= 10;
    }
    *s = p;
    return true;
}

/* parse_offset(s, secs): "Z", "z" or "+hh:mm"/"-hh:mm" ending the string; *secs is the
 * offset east of UTC. */
static bool parse_offset(const char *s, int *secs)
{
    int h, m;

    if ((s[0] == 'Z' || s[0] == 'z') && s[1] == '\0') {
        *secs = 0;
        return true;
    }
    if ((s[0] != '+' && s[0] != '-') || !digits(s + 1, 2, &h) || s[3] != ':' ||
        !digits(s + 4, 2, &m) || s[6] != '\0' || h > 23 || m > 59) {
        return false;
    }
    *secs = (h * 60 + m) * 60 * (s[0] == '-' ? -1 : 1);
    return true;
}

/* days_from_civil(y, m, d): days since 1970-01-01 of a proleptic Gregorian date (Howard
 * Hinnant's algorithm): timegm's arithmetic without its locking and normalising, which the
 * monitoring replay, parsing a time an event, felt. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* cu_clock_parse(s, out): parses an RFC 3339 time into Unix milliseconds. CU_E_INVALID when
 * s is not one. */
enum cu_err cu_clock_parse(const char *s, int64_t *out)
{
    enum cu_err rc = CU_E_INVALID;
    struct tm tm;
    const char *p;
    int ms, offset;
    time_t t;

    CU_ASSERT(out != NULL);
    if (s == NULL || strnlen(s, 19) < 19 || !parse_datetime(s, &tm)) {
        goto out;
    }
    p = s + 19;
    if (!parse_fraction(&p, &ms) || !parse_offset(p, &offset)) {
        goto out;
    }
    t = (time_t)(days_from_civil(tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday) * 86400 +
                 (int64_t)tm.tm_hour * 3600 + (int64_t)tm.tm_min * 60 + tm.tm_sec);
    *out = ((int64_t)t - offset) * 1000 + ms;
    rc = CU_OK;
out:
    return rc;
}
