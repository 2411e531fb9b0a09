/*
 * clock.h - the injectable clock.
 *
 * All wall-clock time in custodia comes from here so tests can freeze and move it. Times are
 * Unix milliseconds (int64_t) and travel as RFC 3339 UTC strings in JSON.
 */
#ifndef CU_BASE_CLOCK_H
#define CU_BASE_CLOCK_H

#include <stdint.h>

#include "base/err.h"

/* Bytes for "2026-11-24T08:48:42.123Z" plus NUL. */
#define CU_RFC3339_BYTES 32

/* cu_clock_now_ms(): the current time in Unix milliseconds (the fake time when one is set). */
int64_t cu_clock_now_ms(void);

/* cu_clock_mono_ns(): a monotonic clock in nanoseconds for measuring durations; never
 * faked. */
uint64_t cu_clock_mono_ns(void);

/* cu_clock_set_fake(ms): freezes the wall clock at ms (tests only). */
void cu_clock_set_fake(int64_t ms);

/* cu_clock_advance(ms): moves a frozen clock forward by ms (tests only). */
void cu_clock_advance(int64_t ms);

/* cu_clock_use_real(): returns to the real wall clock. */
void cu_clock_use_real(void);

/* cu_clock_format(ms, out): writes ms as RFC 3339 UTC with milliseconds
 * ("2026-11-24T08:48:42.123Z") into out, which holds CU_RFC3339_BYTES. */
void cu_clock_format(int64_t ms, char out[CU_RFC3339_BYTES]);

/* cu_clock_parse(s, out): parses an RFC 3339 time (Z or +hh:mm offset, optional fraction)
 * into Unix milliseconds. CU_E_INVALID when s is not one. */
CU_WUR enum cu_err cu_clock_parse(const char *s, int64_t *out);

#endif
