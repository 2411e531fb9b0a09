/*
 * tz.h - named time zones read from the system zone database.
 *
 * The access policy evaluates conditions in a zone's civil time ("on working days 08:00-18:00
 * Europe/London"), so an instant must map to the right local time on both sides of every
 * daylight-saving change. A zone is loaded once from its TZif file (RFC 8536) and is immutable
 * afterwards: any number of threads may convert instants with one zone at the same time. Nothing
 * here reads the TZ environment variable or calls localtime_r, whose process-wide state would
 * allow one zone per process and races with every other thread that formats a local time.
 */
#ifndef CU_BASE_TZ_H
#define CU_BASE_TZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

/* The longest zone name accepted, in bytes (tzdata's longest is 32). */
#define CU_TZ_NAME_MAX 64

/* A loaded zone, immutable, shareable by threads. */
struct cu_tz;

/* The civil time at one instant in one zone. */
struct cu_tz_local {
    int year, month /*1-12*/, day /*1-31*/, hour, minute, second;
    int wday;         /* 0 = Sunday ... 6 = Saturday */
    int32_t offset_s; /* local - UTC, seconds */
    bool dst;
};

/* cu_tz_load(name, out, err, errlen): loads zone `name` ("Europe/London", "America/New_York",
 * "UTC", "Etc/GMT+5") from the system zone database: the directory in $TZDIR if set, else
 * /usr/share/zoneinfo. On CU_OK *out is the zone; caller frees with cu_tz_free(). Otherwise *out
 * is NULL and err (errlen bytes, may be NULL when errlen is 0) gets a message naming the zone,
 * never a path:
 *   CU_E_INVALID    name is not a zone name: empty, longer than CU_TZ_NAME_MAX, starting with
 *                   '/', containing "..", or holding a byte other than an ASCII letter, a digit,
 *                   '/', '_', '-' or '+';
 *   CU_E_NOT_FOUND  no such zone (no file, or a directory such as "Europe");
 *   CU_E_CORRUPT    the file is not a valid TZif file of version 1 to 4, or is over 256 KiB;
 *   CU_E_PERM       the file may not be read; CU_E_IO on another read error;
 *   CU_E_CONFIG     $TZDIR is too long to form a path; CU_E_NOMEM. */
CU_WUR enum cu_err cu_tz_load(const char *name, struct cu_tz **out, char *err, size_t errlen);

/* cu_tz_free(tz): frees a zone from cu_tz_load; cu_tz_free(NULL) does nothing. */
void cu_tz_free(struct cu_tz *tz);

/* cu_tz_name(tz): the name tz was loaded by; owned by tz, valid until cu_tz_free(tz). */
const char *cu_tz_name(const struct cu_tz *tz);

/* cu_tz_local(tz, unix_ms, out): writes into *out the civil time in tz at the instant unix_ms
 * (Unix milliseconds, any int64_t: before 1970 and after 2037 too; the milliseconds are
 * dropped, rounding towards the past). Never fails. */
void cu_tz_local(const struct cu_tz *tz, int64_t unix_ms, struct cu_tz_local *out);

#endif
