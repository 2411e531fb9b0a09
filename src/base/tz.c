/*
 * tz.c - zones from TZif files and POSIX TZ rules, without the C library's local time.
 *
 * A zone file (RFC 8536) lists the instants at which the zone's offset changed, each with a
 * local time type (offset from UTC, DST flag), and from version 2 on a footer with a POSIX TZ
 * string ("GMT0BST,M3.5.0/1,M10.5.0") for the instants after the last listed transition. Debian
 * may build tzdata "slim", listing transitions only up to the last change of rules, so the footer
 * alone decides the present and the future there; it is evaluated here in full, with the version
 * 3 extension (rule hours from -167 to 167). Every count, index and offset of the file is checked
 * before it is used and the file is capped at TZ_FILE_BYTES_MAX, so a damaged or hostile file
 * gives CU_E_CORRUPT, never a crash or a read past the data.
 *
 * Dates come from day counts by Howard Hinnant's days_from_civil and civil_from_days in 64-bit
 * arithmetic, exact for every int64_t millisecond; gmtime_r would bring back time_t's limits.
 */
#include "base/tz.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/mem.h"

#define TZ_DIR_DEFAULT "/usr/share/zoneinfo"
#define TZ_PATH_BYTES 4096

/* What a zone file may hold. tzdata's largest files are under 5 KiB, with a few hundred
 * transitions, a dozen types, under 50 bytes of abbreviations and 27 leap seconds; the limits
 * leave room for decades of new data and bound what a hostile file can cost. */
#define TZ_FILE_BYTES_MAX (256L * 1024L)
#define TZ_TIMES_MAX 10000
#define TZ_TYPES_MAX 256 /* a transition names its type in one byte */
#define TZ_CHARS_MAX 1024
#define TZ_LEAPS_MAX 1000
#define TZ_FOOTER_BYTES_MAX 255
#define TZ_HEAD_BYTES 44

/* RFC 8536 section 3.2 asks utoff to lie in [-89999, 93599]: over -25 h, under 26 h. */
#define UTOFF_MIN_S (-89999)
#define UTOFF_MAX_S 93599
/* POSIX TZ strings: offsets up to 24:59:59; rule times within +-167:59:59 (version 3). */
#define OFFSET_HOURS_MAX 24
#define RULE_HOURS_MAX 167
#define RULE_TIME_DEFAULT_S 7200 /* 02:00:00, POSIX's default */
/* The rule a TZ string with a DST name and no rule follows: tzcode's (US rules since 2007). */
#define RULE_DEFAULT ",M3.2.0,M11.1.0"

#define SECS_PER_DAY 86400
#define SHOWN_NAME_BYTES (CU_TZ_NAME_MAX + 4)

/* One local time type: the offset and whether it is daylight-saving time. */
struct tz_type {
    int32_t utoff_s; /* local - UTC */
    bool dst;
};

/* The forms of a date in a POSIX TZ rule. */
enum rule_form {
    RULE_JULIAN, /* Jn: day n of 1..365, February 29 never counted */
    RULE_ZERO,   /* n: day n of 0..365, February 29 counted in leap years */
    RULE_MWD,    /* Mm.w.d: weekday d (0 = Sunday) of week w (5 = the last) of month m */
};

/* A date of a POSIX TZ rule and the local time of day the change happens at. */
struct rule_date {
    enum rule_form form;
    int day; /* Jn and n: n; Mm.w.d: d */
    int week;
    int month;
    int32_t time_s; /* -167:59:59 .. 167:59:59, in the time in effect before the change */
};

/* A POSIX TZ string: standard time, and when has_dst, DST from start to end each year. */
struct posix_tz {
    struct tz_type std, dst;
    bool has_dst;
    struct rule_date start, end;
};

struct cu_tz {
    char name[CU_TZ_NAME_MAX + 1];
    size_t time_count;
    int64_t *times_s;    /* transition instants, Unix seconds, strictly ascending */
    uint8_t *time_types; /* the type in effect from each transition on */
    size_t type_count;   /* >= 1 */
    struct tz_type *types;
    size_t early_type; /* the type before the first transition */
    bool has_rule;     /* the footer decides from the last transition on */
    struct posix_tz rule;
};

/* The header of a TZif file (RFC 8536 section 3.1). */
struct tzif_head {
    unsigned char version; /* 0 for version 1, else '2', '3' or '4' */
    uint32_t isut_count, isstd_count, leap_count, time_count, type_count, char_count;
};

/* Bytes of a file not yet read. */
struct cursor {
    const unsigned char *p;
    size_t left;
};

/* floor_div(a, b), floor_mod(a, b): division rounding towards minus infinity (b > 0). */
static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;

    return q - (a % b < 0);
}

static int64_t floor_mod(int64_t a, int64_t b)
{
    return a - floor_div(a, b) * b;
}

static bool is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int64_t y, int m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

    return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

/* days_from_civil(y, m, d): days since 1970-01-01 of the proleptic Gregorian date y-m-d,
 * counted in 400-year eras from 0000-03-01 so that the leap day ends a year (Hinnant). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = floor_div(y, 400);
    int64_t yoe = y - era * 400;                                   /* 0..399 */
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1; /* 0..365 */
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;           /* 0..146096 */

    return era * 146097 + doe - 719468;
}

/* civil_from_days(days, y, m, d): the inverse of days_from_civil. */
static void civil_from_days(int64_t days, int64_t *y, int *m, int *d)
{
    int64_t z = days + 719468;
    int64_t era = floor_div(z, 146097);
    int64_t doe = z - era * 146097;                                      /* 0..146096 */
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* 0..399 */
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);               /* 0..365 */
    int64_t mp = (5 * doy + 2) / 153;                                    /* 0..11, March first */

    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

/* rule_day(r, year): the day (since 1970-01-01) on which the rule date r falls in year. */
static int64_t rule_day(const struct rule_date *r, int64_t year)
{
    int64_t day;

    if (r->form == RULE_JULIAN) {
        day = days_from_civil(year, 1, 1) + r->day - 1 + (is_leap(year) && r->day >= 60);
    } else if (r->form == RULE_ZERO) {
        day = days_from_civil(year, 1, 1) + r->day;
    } else {
        int64_t first = days_from_civil(year, r->month, 1);
        int mday = 1 + (int)floor_mod(r->day - (first + 4), 7) + 7 * (r->week - 1);

        /* Week 5 means the last: at most day 35, one week past the shortest month. */
        if (mday > days_in_month(year, r->month)) {
            mday -= 7;
        }
        day = first + mday - 1;
    }
    return day;
}

/* latest(at, type, secs, best, now): makes type the one in effect when a change to it at `at`
 * is the latest so far at or before secs. */
static void latest(int64_t at, struct tz_type type, int64_t secs, int64_t *best,
                   struct tz_type *now)
{
    if (at <= secs && at >= *best) {
        *best = at;
        *now = type;
    }
}

/* posix_at(r, secs): the type the rule r gives at Unix second secs. Each year's two changes are
 * instants in UTC; the latest change at or before secs decides. Rule times from -167 h to 167 h
 * can move a change into a neighbouring year, so the years around secs are all looked at; on a
 * tie the later year wins, which makes a rule such as "0/0,J365/25" DST all year. */
static struct tz_type posix_at(const struct posix_tz *r, int64_t secs)
{
    struct tz_type now = r->std;
    int64_t year, best = INT64_MIN;
    int month, day;

    if (!r->has_dst) {
        goto out;
    }
    civil_from_days(floor_div(secs + r->std.utoff_s, SECS_PER_DAY), &year, &month, &day);
    for (int64_t y = year - 2; y <= year + 1; y++) {
        int64_t start = rule_day(&r->start, y) * SECS_PER_DAY + r->start.time_s - r->std.utoff_s;
        int64_t end = rule_day(&r->end, y) * SECS_PER_DAY + r->end.time_s - r->dst.utoff_s;

        /* in the order they happen, so that the later of two at one instant wins */
        if (start <= end) {
            latest(start, r->dst, secs, &best, &now);
            latest(end, r->std, secs, &best, &now);
        } else {
            latest(end, r->std, secs, &best, &now);
            latest(start, r->dst, secs, &best, &now);
        }
    }
out:
    return now;
}

/* type_at(tz, secs): the type in effect at Unix second secs. */
static struct tz_type type_at(const struct cu_tz *tz, int64_t secs)
{
    size_t n = tz->time_count, lo = 0, hi = n;
    struct tz_type t;

    if (tz->has_rule && (n == 0 || secs >= tz->times_s[n - 1])) {
        t = posix_at(&tz->rule, secs);
    } else if (n == 0 || secs < tz->times_s[0]) {
        t = tz->types[tz->early_type];
    } else {
        /* times_s[lo] <= secs < times_s[hi], with times_s[n] taken as +infinity */
        while (hi - lo > 1) {
            size_t mid = lo + (hi - lo) / 2;

            if (tz->times_s[mid] <= secs) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        t = tz->types[tz->time_types[lo]];
    }
    return t;
}

/* cu_tz_local(tz, unix_ms, out): writes into *out the civil time in tz at the instant unix_ms
 * (Unix milliseconds, any int64_t; the milliseconds are dropped, rounding towards the past). */
void cu_tz_local(const struct cu_tz *tz, int64_t unix_ms, struct cu_tz_local *out)
{
    CU_ASSERT(tz != NULL && out != NULL);
    /* |secs| < 10^16, so adding an offset of under 26 h cannot overflow */
    int64_t secs = floor_div(unix_ms, 1000);
    struct tz_type t = type_at(tz, secs);
    int64_t local = secs + t.utoff_s;
    int64_t days = floor_div(local, SECS_PER_DAY), sod = local - days * SECS_PER_DAY, year;

    civil_from_days(days, &year, &out->month, &out->day);
    out->year = (int)year; /* |year| < 3 * 10^8 */
    out->hour = (int)(sod / 3600);
    out->minute = (int)(sod / 60 % 60);
    out->second = (int)(sod % 60);
    out->wday = (int)floor_mod(days + 4, 7); /* 1970-01-01 was a Thursday */
    out->offset_s = t.utoff_s;
    out->dst = t.dst;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* parse_num(s, min, max, out): one to three decimal digits at s, within [min, max], into *out;
 * the byte after them, or NULL. */
static const char *parse_num(const char *s, int min, int max, int *out)
{
    int v = 0, n = 0;

    while (n < 3 && is_digit(s[n])) {
        v = v * 10 + (s[n] - '0');
        n++;
    }
    if (n == 0 || is_digit(s[n]) || v < min || v > max) {
        s = NULL;
    } else {
        *out = v;
        s += n;
    }
    return s;
}

/* parse_hms(s, hours_max, out): "[+-]h[:mm[:ss]]" with h <= hours_max as signed seconds into
 * *out; the byte after it, or NULL. */
static const char *parse_hms(const char *s, int hours_max, int32_t *out)
{
    int sign = *s == '-' ? -1 : 1, h, m = 0, sec = 0;

    s += *s == '-' || *s == '+';
    s = parse_num(s, 0, hours_max, &h);
    if (s != NULL && *s == ':') {
        s = parse_num(s + 1, 0, 59, &m);
        if (s != NULL && *s == ':') {
            s = parse_num(s + 1, 0, 59, &sec);
        }
    }
    if (s != NULL) {
        *out = sign * (h * 3600 + m * 60 + sec);
    }
    return s;
}

/* parse_name(s): skips an abbreviation, three or more letters ("GMT") or a quoted one of
 * letters, digits, '+' and '-' ("<+0545>"); the byte after it, or NULL. */
static const char *parse_name(const char *s)
{
    const char *p = s;

    if (*p == '<') {
        p++;
        while (is_alpha(*p) || is_digit(*p) || *p == '+' || *p == '-') {
            p++;
        }
        p = *p == '>' && p > s + 1 ? p + 1 : NULL;
    } else {
        while (is_alpha(*p)) {
            p++;
        }
        p = p - s >= 3 ? p : NULL;
    }
    return p;
}

/* parse_date(s, r): "Jn", "n" or "Mm.w.d", then an optional "/time"; the byte after, or NULL. */
static const char *parse_date(const char *s, struct rule_date *r)
{
    if (*s == 'J') {
        r->form = RULE_JULIAN;
        s = parse_num(s + 1, 1, 365, &r->day);
    } else if (*s == 'M') {
        r->form = RULE_MWD;
        s = parse_num(s + 1, 1, 12, &r->month);
        s = s != NULL && *s == '.' ? parse_num(s + 1, 1, 5, &r->week) : NULL;
        s = s != NULL && *s == '.' ? parse_num(s + 1, 0, 6, &r->day) : NULL;
    } else {
        r->form = RULE_ZERO;
        s = parse_num(s, 0, 365, &r->day);
    }
    r->time_s = RULE_TIME_DEFAULT_S;
    if (s != NULL && *s == '/') {
        s = parse_hms(s + 1, RULE_HOURS_MAX, &r->time_s);
    }
    return s;
}

/* posix_parse(s, r): the POSIX TZ string s ("std offset [dst [offset] [,start,end]]", POSIX
 * offsets counting west) into *r; false when s is not one. */
static bool posix_parse(const char *s, struct posix_tz *r)
{
    bool ok = false;
    int32_t west_s;

    memset(r, 0, sizeof *r);
    s = parse_name(s);
    s = s != NULL ? parse_hms(s, OFFSET_HOURS_MAX, &west_s) : NULL;
    if (s == NULL) {
        goto out;
    }
    r->std.utoff_s = -west_s;
    if (*s == '\0') {
        ok = true;
        goto out;
    }
    s = parse_name(s);
    if (s == NULL) {
        goto out;
    }
    r->has_dst = true;
    r->dst.dst = true;
    r->dst.utoff_s = r->std.utoff_s + 3600; /* POSIX: one hour ahead unless given */
    if (*s != ',' && *s != '\0') {
        s = parse_hms(s, OFFSET_HOURS_MAX, &west_s);
        if (s == NULL) {
            goto out;
        }
        r->dst.utoff_s = -west_s;
    }
    if (*s == '\0') {
        s = RULE_DEFAULT;
    }
    s = *s == ',' ? parse_date(s + 1, &r->start) : NULL;
    s = s != NULL && *s == ',' ? parse_date(s + 1, &r->end) : NULL;
    ok = s != NULL && *s == '\0';
out:
    return ok;
}

/* take(c, n): the next n bytes of c, or NULL when fewer are left. */
static const unsigned char *take(struct cursor *c, size_t n)
{
    const unsigned char *p = NULL;

    if (n <= c->left) {
        p = c->p;
        c->p += n;
        c->left -= n;
    }
    return p;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* be_signed(p, width): the big-endian two's complement integer of width 4 or 8 bytes at p. */
static int64_t be_signed(const unsigned char *p, size_t width)
{
    uint64_t u = be32(p);
    uint64_t sign = (uint64_t)1 << 31;

    if (width == 8) {
        u = u << 32 | be32(p + 4);
        sign = (uint64_t)1 << 63;
    }
    /* spelt out: converting an unsigned value past INT64_MAX to int64_t is not portable */
    return u & sign ? -(int64_t)(~u & (sign - 1)) - 1 : (int64_t)u;
}

/* block_bytes(h, width): the size of the data block h describes, with times of width bytes.
 * The counts are capped, so the sum fits easily. */
static size_t block_bytes(const struct tzif_head *h, size_t width)
{
    return (size_t)h->time_count * (width + 1) + (size_t)h->type_count * 6 + h->char_count +
           (size_t)h->leap_count * (width + 4) + h->isstd_count + h->isut_count;
}

/* parse_head(c, h, why): the 44-byte header at c into *h. */
static enum cu_err parse_head(struct cursor *c, struct tzif_head *h, const char **why)
{
    enum cu_err rc = CU_E_CORRUPT;
    const unsigned char *p = take(c, TZ_HEAD_BYTES);

    if (p == NULL || memcmp(p, "TZif", 4) != 0) {
        *why = p == NULL ? "truncated header" : "no TZif magic";
        goto out;
    }
    h->version = p[4];
    h->isut_count = be32(p + 20);
    h->isstd_count = be32(p + 24);
    h->leap_count = be32(p + 28);
    h->time_count = be32(p + 32);
    h->type_count = be32(p + 36);
    h->char_count = be32(p + 40);
    if (h->version != 0 && (h->version < '2' || h->version > '4')) {
        *why = "unknown version";
    } else if (h->time_count > TZ_TIMES_MAX || h->type_count > TZ_TYPES_MAX ||
               h->char_count > TZ_CHARS_MAX || h->leap_count > TZ_LEAPS_MAX ||
               h->isstd_count > TZ_TYPES_MAX || h->isut_count > TZ_TYPES_MAX) {
        *why = "a count over its limit";
    } else {
        rc = CU_OK;
    }
out:
    return rc;
}

/* read_types(p, chars, h, tz, why): the local time type records at p into tz->types. */
static enum cu_err read_types(const unsigned char *p, const unsigned char *chars,
                              const struct tzif_head *h, struct cu_tz *tz, const char **why)
{
    enum cu_err rc = CU_OK;

    for (size_t i = 0; i < h->type_count && rc == CU_OK; i++, p += 6) {
        int64_t utoff = be_signed(p, 4);
        size_t idx = p[5];

        if (utoff < UTOFF_MIN_S || utoff > UTOFF_MAX_S || p[4] > 1) {
            *why = utoff < UTOFF_MIN_S || utoff > UTOFF_MAX_S ? "an offset out of range"
                                                              : "a DST flag not 0 or 1";
            rc = CU_E_CORRUPT;
        } else if (idx >= h->char_count || memchr(chars + idx, '\0', h->char_count - idx) == NULL) {
            *why = "an abbreviation index out of range or unterminated";
            rc = CU_E_CORRUPT;
        }
        tz->types[i].utoff_s = (int32_t)utoff;
        tz->types[i].dst = p[4] == 1;
    }
    return rc;
}

/* read_times(p, width, h, tz, why): the transition times at p and their type indices after them
 * into tz. */
static enum cu_err read_times(const unsigned char *p, size_t width, const struct tzif_head *h,
                              struct cu_tz *tz, const char **why)
{
    enum cu_err rc = CU_OK;
    const unsigned char *idx = p + (size_t)h->time_count * width;

    for (size_t i = 0; i < h->time_count && rc == CU_OK; i++) {
        tz->times_s[i] = be_signed(p + i * width, width);
        tz->time_types[i] = idx[i];
        if (i > 0 && tz->times_s[i] <= tz->times_s[i - 1]) {
            *why = "transition times not ascending";
            rc = CU_E_CORRUPT;
        } else if (idx[i] >= h->type_count) {
            *why = "a type index out of range";
            rc = CU_E_CORRUPT;
        }
    }
    return rc;
}

/* apply_leaps(p, width, h, tz, why): checks the leap-second records at p and, when there are
 * any (the "right/" zones), turns the transition times, which then count leap seconds, into
 * Unix time, which does not and is what cu_tz_local is given. */
static enum cu_err apply_leaps(const unsigned char *p, size_t width, const struct tzif_head *h,
                               struct cu_tz *tz, const char **why)
{
    enum cu_err rc = CU_OK;
    size_t rec = width + 4, n = h->leap_count, j = 0;
    int64_t corr = 0;

    for (size_t i = 0; i < n && rc == CU_OK; i++) {
        int64_t at = be_signed(p + i * rec, width), c = be_signed(p + i * rec + width, 4);
        int64_t prev_at = i > 0 ? be_signed(p + (i - 1) * rec, width) : 0;
        int64_t step = i > 0 ? c - be_signed(p + (i - 1) * rec + width, 4) : 1;

        /* each record adds or removes one second, except that a last one repeating the
         * correction marks when the table expires (tzfile(5)) */
        if (at < 0 || (i > 0 && at <= prev_at) ||
            (step != 1 && step != -1 && !(step == 0 && i == n - 1))) {
            *why = "leap-second records out of order";
            rc = CU_E_CORRUPT;
        }
    }
    for (size_t i = 0; i < tz->time_count && rc == CU_OK; i++) {
        while (j < n && be_signed(p + j * rec, width) <= tz->times_s[i]) {
            corr = be_signed(p + j * rec + width, 4);
            j++;
        }
        if (__builtin_sub_overflow(tz->times_s[i], corr, &tz->times_s[i])) {
            *why = "a transition time out of range";
            rc = CU_E_CORRUPT;
        } else if (i > 0 && tz->times_s[i] <= tz->times_s[i - 1]) {
            *why = "transition times not ascending without leap seconds";
            rc = CU_E_CORRUPT;
        }
    }
    return rc;
}

/* check_indicators(isstd, isut, h, why): the standard/wall and UT/local indicators, which only
 * matter to zic but must be 0 or 1, UT only with standard. */
static enum cu_err check_indicators(const unsigned char *isstd, const unsigned char *isut,
                                    const struct tzif_head *h, const char **why)
{
    enum cu_err rc = CU_OK;

    for (size_t i = 0; i < h->type_count && rc == CU_OK; i++) {
        unsigned std = h->isstd_count > 0 ? isstd[i] : 0, ut = h->isut_count > 0 ? isut[i] : 0;

        if (std > 1 || ut > 1 || (ut == 1 && std == 0)) {
            *why = "bad standard/wall or UT/local indicators";
            rc = CU_E_CORRUPT;
        }
    }
    return rc;
}

/* parse_block(c, h, width, tz, why): the data block at c that h describes, with times of width
 * bytes, into tz's transitions and types. */
static enum cu_err parse_block(struct cursor *c, const struct tzif_head *h, size_t width,
                               struct cu_tz *tz, const char **why)
{
    enum cu_err rc = CU_E_CORRUPT;
    const unsigned char *p;
    size_t times = (size_t)h->time_count * (width + 1), types = (size_t)h->type_count * 6;
    size_t leaps = (size_t)h->leap_count * (width + 4), chars = h->char_count;

    if (h->type_count == 0 || h->char_count == 0 ||
        (h->isstd_count != 0 && h->isstd_count != h->type_count) ||
        (h->isut_count != 0 && h->isut_count != h->type_count)) {
        *why = "bad counts in the header";
        goto out;
    }
    p = take(c, block_bytes(h, width));
    if (p == NULL) {
        *why = "truncated data block";
        goto out;
    }
    rc = CU_E_NOMEM;
    tz->times_s = cu_calloc(h->time_count, sizeof *tz->times_s);
    tz->time_types = cu_calloc(h->time_count, sizeof *tz->time_types);
    tz->types = cu_calloc(h->type_count, sizeof *tz->types);
    if (tz->times_s == NULL || tz->time_types == NULL || tz->types == NULL) {
        goto out;
    }
    tz->time_count = h->time_count;
    tz->type_count = h->type_count;
    rc = read_times(p, width, h, tz, why);
    if (rc == CU_OK) {
        rc = read_types(p + times, p + times + types, h, tz, why);
    }
    if (rc == CU_OK) {
        rc = apply_leaps(p + times + types + chars, width, h, tz, why);
    }
    if (rc == CU_OK) {
        rc = check_indicators(p + times + types + chars + leaps,
                              p + times + types + chars + leaps + h->isstd_count, h, why);
    }
out:
    return rc;
}

/* parse_footer(c, tz, why): the "\nTZ string\n" after a version 2+ data block; an empty string
 * leaves the last transition's type in force. */
static enum cu_err parse_footer(struct cursor *c, struct cu_tz *tz, const char **why)
{
    enum cu_err rc = CU_E_CORRUPT;
    char s[TZ_FOOTER_BYTES_MAX + 1];
    const unsigned char *p = take(c, 1);
    size_t n = 0;

    if (p == NULL || *p != '\n') {
        *why = "no footer";
        goto out;
    }
    while (n < c->left && n <= TZ_FOOTER_BYTES_MAX && c->p[n] >= 0x20 && c->p[n] < 0x7f) {
        n++;
    }
    if (n >= c->left || n > TZ_FOOTER_BYTES_MAX || c->p[n] != '\n') {
        *why = "footer not a line of printable ASCII within the limit";
        goto out;
    }
    memcpy(s, c->p, n);
    s[n] = '\0';
    if (n > 0 && !posix_parse(s, &tz->rule)) {
        *why = "footer not a POSIX TZ string";
        goto out;
    }
    tz->has_rule = n > 0;
    (void)take(c, n + 1);
    rc = CU_OK;
out:
    return rc;
}

/* early_type(tz): the type before the first transition: the first standard-time type, or type 0
 * when all are DST. RFC 8536 names type 0, which zic makes a standard-time type, so the two
 * agree on every file zic writes; glibc's rule is this one. */
static size_t early_type(const struct cu_tz *tz)
{
    size_t i = 0;

    while (i < tz->type_count && tz->types[i].dst) {
        i++;
    }
    return i < tz->type_count ? i : 0;
}

/* parse_tzif(data, len, tz, why): a whole TZif file into tz. Version 2 and later repeat the
 * data with 64-bit times after a 32-bit block, which is then only skipped. Bytes after the
 * footer are ignored: nothing is defined there that could change a local time. */
static enum cu_err parse_tzif(const unsigned char *data, size_t len, struct cu_tz *tz,
                              const char **why)
{
    struct cursor c = {data, len};
    struct tzif_head h;
    unsigned char version;
    size_t width = 4;
    enum cu_err rc = parse_head(&c, &h, why);

    if (rc != CU_OK) {
        goto out;
    }
    version = h.version;
    if (version != 0) {
        rc = CU_E_CORRUPT;
        if (take(&c, block_bytes(&h, 4)) == NULL) {
            *why = "truncated version 1 data block";
            goto out;
        }
        rc = parse_head(&c, &h, why);
        if (rc == CU_OK && h.version != version) {
            *why = "the two headers disagree on the version";
            rc = CU_E_CORRUPT;
        }
        if (rc != CU_OK) {
            goto out;
        }
        width = 8;
    }
    rc = parse_block(&c, &h, width, tz, why);
    if (rc == CU_OK && version != 0) {
        rc = parse_footer(&c, tz, why);
    }
    if (rc == CU_OK) {
        tz->early_type = early_type(tz);
    }
out:
    return rc;
}

/* read_zone_file(path, data, len, why): the whole regular file at path into *data (caller frees
 * with cu_free) and *len. */
static enum cu_err read_zone_file(const char *path, unsigned char **data, size_t *len,
                                  const char **why)
{
    enum cu_err rc = CU_OK;
    struct stat st;
    size_t size = 0, got = 0;
    /* O_NONBLOCK: a FIFO put in the zone directory must not hang the caller */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

    *data = NULL;
    if (fd < 0) {
        rc = errno == ENOENT || errno == ENOTDIR || errno == ELOOP || errno == ENAMETOOLONG
                 ? CU_E_NOT_FOUND
             : errno == EACCES || errno == EPERM ? CU_E_PERM
                                                 : CU_E_IO;
        goto out;
    }
    if (fstat(fd, &st) != 0) {
        rc = CU_E_IO;
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = CU_E_NOT_FOUND; /* a directory such as "Europe" is not a zone */
        goto out;
    }
    if (st.st_size > TZ_FILE_BYTES_MAX) {
        *why = "larger than 256 KiB";
        rc = CU_E_CORRUPT;
        goto out;
    }
    size = (size_t)st.st_size;
    *data = cu_malloc(size);
    if (*data == NULL) {
        rc = CU_E_NOMEM;
        goto out;
    }
    /* at most size bytes: a file growing meanwhile is cut there and parsed as it is */
    while (got < size && rc == CU_OK) {
        ssize_t n = read(fd, *data + got, size - got);

        if (n < 0 && errno != EINTR) {
            rc = CU_E_IO;
        } else if (n == 0) {
            size = got;
        } else if (n > 0) {
            got += (size_t)n;
        }
    }
out:
    *len = got;
    if (fd >= 0) {
        close(fd);
    }
    return rc;
}

/* name_problem(name): why name is not a zone name, or NULL when it is one. */
static const char *name_problem(const char *name)
{
    size_t len = strnlen(name, CU_TZ_NAME_MAX + 1);
    const char *why = NULL;

    if (len == 0) {
        why = "empty";
    } else if (len > CU_TZ_NAME_MAX) {
        why = "longer than 64 bytes";
    } else if (name[0] == '/') {
        why = "starts with '/'";
    } else if (strstr(name, "..") != NULL) {
        why = "contains \"..\"";
    }
    for (size_t i = 0; i < len && why == NULL; i++) {
        char ch = name[i];

        if (!is_alpha(ch) && !is_digit(ch) && ch != '/' && ch != '_' && ch != '-' && ch != '+') {
            why = "has a character other than a letter, a digit, '/', '_', '-' or '+'";
        }
    }
    return why;
}

/* show_name(name, out): name fit for a message: printable ASCII, cut after CU_TZ_NAME_MAX
 * bytes, since an invalid name may be anything. */
static void show_name(const char *name, char out[SHOWN_NAME_BYTES])
{
    size_t i = 0;

    for (; i < CU_TZ_NAME_MAX && name[i] != '\0'; i++) {
        char ch = name[i];

        if (ch < 0x20 || ch >= 0x7f || ch == '"') {
            ch = '?';
        }
        out[i] = ch;
    }
    if (name[i] != '\0') {
        memcpy(out + i, "...", 3);
        i += 3;
    }
    out[i] = '\0';
}

/* load(name, tz, why): zone `name` from the zone directory into the empty tz. */
static enum cu_err load(const char *name, struct cu_tz *tz, const char **why)
{
    enum cu_err rc = CU_OK;
    const char *dir = getenv("TZDIR");
    char path[TZ_PATH_BYTES];
    unsigned char *data = NULL;
    size_t len = 0;
    int n;

    if (dir == NULL || dir[0] == '\0') {
        dir = TZ_DIR_DEFAULT;
    }
    n = snprintf(path, sizeof path, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= sizeof path) {
        *why = "the zone directory's path ($TZDIR) is too long";
        rc = CU_E_CONFIG;
        goto out;
    }
    rc = read_zone_file(path, &data, &len, why);
    if (rc == CU_OK) {
        rc = parse_tzif(data, len, tz, why);
    }
out:
    cu_free(data);
    return rc;
}

/* cu_tz_load(name, out, err, errlen): loads zone `name` from the system zone database ($TZDIR,
 * else /usr/share/zoneinfo) into *out (caller frees with cu_tz_free()); on failure *out is NULL
 * and err holds a message naming the zone, never a path. */
enum cu_err cu_tz_load(const char *name, struct cu_tz **out, char *err, size_t errlen)
{
    enum cu_err rc = CU_E_INVALID;
    struct cu_tz *tz = NULL;
    const char *why, *what = "not a valid zone name";
    char shown[SHOWN_NAME_BYTES];

    CU_ASSERT(name != NULL && out != NULL && (err != NULL || errlen == 0));
    *out = NULL;
    why = name_problem(name);
    if (why != NULL) {
        goto out;
    }
    rc = CU_E_NOMEM;
    tz = cu_calloc(1, sizeof *tz);
    if (tz == NULL) {
        goto out;
    }
    memcpy(tz->name, name, strlen(name) + 1);
    rc = load(name, tz, &why);
out:
    if (rc != CU_OK) {
        show_name(name, shown);
        what = rc == CU_E_INVALID     ? what
               : rc == CU_E_NOT_FOUND ? "no such zone in the zone database"
               : rc == CU_E_CORRUPT   ? "its zone file is not a valid TZif file"
               : rc == CU_E_PERM      ? "its zone file may not be read"
               : rc == CU_E_IO        ? "its zone file could not be read"
               : rc == CU_E_NOMEM     ? "out of memory"
                                      : "cannot be loaded";
        if (errlen > 0) {
            snprintf(err, errlen, "time zone \"%s\": %s%s%s%s", shown, what,
                     why != NULL ? " (" : "", why != NULL ? why : "", why != NULL ? ")" : "");
        }
        cu_tz_free(tz);
        tz = NULL;
    }
    *out = tz;
    return rc;
}

/* cu_tz_free(tz): frees a zone from cu_tz_load; cu_tz_free(NULL) does nothing. */
void cu_tz_free(struct cu_tz *tz)
{
    if (tz != NULL) {
        cu_free(tz->times_s);
        cu_free(tz->time_types);
        cu_free(tz->types);
        cu_free(tz);
    }
}

/* cu_tz_name(tz): the name tz was loaded by; owned by tz. */
const char *cu_tz_name(const struct cu_tz *tz)
{
    CU_ASSERT(tz != NULL);
    return tz->name;
}
