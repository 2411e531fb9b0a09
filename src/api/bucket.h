/*
 * bucket.h - token buckets by key (a client address, a principal, a sign-in identifier): each
 * key may spend `burst` requests at once and regains `rate` a second. A table of fixed size
 * in shards, each under its own lock. A key not seen is a full bucket, so a bucket that has
 * refilled is forgotten without loss; when a shard has no room, the fullest bucket probed is
 * given up (the one whose reset gives its holder the least). Slots are found by a keyed hash
 * (a key drawn at start), so that a client cannot choose keys that crowd one out.
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

/* The longest key cu_rate_client writes, with its NUL. */
#define CU_RATE_CLIENT_BYTES 64

/* cu_rate_client(ip, out): the key a client address is limited by: an IPv4 address whole, an
 * IPv6 one by its /64 (the block one subscriber is usually given, so that hopping addresses
 * within it gains nothing); text that is not an address is taken as it is. */
void cu_rate_client(const char *ip, char out[CU_RATE_CLIENT_BYTES]);

#endif
