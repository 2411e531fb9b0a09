/*
 * bucket.h - token buckets by key (a client address, a principal, a sign-in identifier): each
 * key may spend `burst` requests at once and regains `rate` a second. A table of fixed size
 * in shards, each under its own lock. A key not seen is a full bucket, so a bucket that has
 * refilled is forgotten without loss; when a shard has no room, the fullest bucket probed is
 * given up (the one whose reset gives its holder the least).
 */
#ifndef CU_API_BUCKET_H
#define CU_API_BUCKET_H

#include <stdbool.h>
#include <stdint.h>

#include "base/err.h"

struct cu_buckets;

/* cu_buckets_new(rate_per_minute, burst, out): buckets that regain rate_per_minute tokens a
 * minute up to burst (both >= 1; rate_per_minute 0 turns them off: every take succeeds).
 * Caller frees with cu_buckets_free. */
CU_WUR enum cu_err cu_buckets_new(unsigned rate_per_minute, unsigned burst,
                                  struct cu_buckets **out);

/* cu_buckets_free(b): NULL does nothing. */
void cu_buckets_free(struct cu_buckets *b);

/* cu_buckets_take(b, key, now_ms, retry_s): takes one token of key's bucket: true when there
 * was one; else false, and *retry_s gets the whole seconds until there is one (>= 1). b NULL:
 * true. */
bool cu_buckets_take(struct cu_buckets *b, const char *key, int64_t now_ms, int64_t *retry_s);

#endif
