/*
 * limit.h - a per-client limit on failed authentications.
 *
 * Each failed authentication is audited in a write transaction of its own, so without a
 * limit anyone could turn bad credentials into database writes. A client address may fail
 * `per_minute` times in a one-minute window; past that it is answered 429 and its failures are
 * counted, not written one by one; the first failure of its next window writes one record
 * that says how many were held back.
 */
#ifndef CU_API_LIMIT_H
#define CU_API_LIMIT_H

#include <stdint.h>

#include "base/err.h"

struct cu_limiter;

enum cu_limit_verdict {
    CU_LIMIT_ALLOW,    /* audit this failure */
    CU_LIMIT_SUPPRESS, /* answer 429 and do not write */
};

/* cu_limiter_new(per_minute, out): a limiter (per_minute 0 turns it off). Caller frees with
 * cu_limiter_free. */
CU_WUR enum cu_err cu_limiter_new(unsigned per_minute, struct cu_limiter **out);

/* cu_limiter_free(l): frees l; NULL does nothing. */
void cu_limiter_free(struct cu_limiter *l);

/* cu_limiter_fail(l, client, now_ms, held_back): counts a failure by client (an address).
 * *held_back gets how many failures of the client's previous window were suppressed and not
 * yet reported (to put in the record of this one), when the verdict is CU_LIMIT_ALLOW. */
enum cu_limit_verdict cu_limiter_fail(struct cu_limiter *l, const char *client, int64_t now_ms,
                                      uint64_t *held_back);

#endif
