/*
 * pwhash.h - password hashing with Argon2id (libsodium's crypto_pwhash_str), behind a
 * counting semaphore so that no more hashes run at once than memory allows: a password spray
 * queues instead of exhausting memory.
 *
 * A hasher also keeps a dummy hash made with its own parameters, so that checking a password
 * for an account that does not exist costs the same as checking a wrong one.
 */
#ifndef CU_CRYPTO_PWHASH_H
#define CU_CRYPTO_PWHASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

/* Bytes of an encoded hash string, with its NUL ("$argon2id$v=19$m=…"). */
#define CU_PWHASH_STR_BYTES 128
/* Longest password accepted, in bytes. */
#define CU_PWHASH_MAX_PASSWORD_BYTES 1024

struct cu_pwhash_params {
    uint64_t opslimit; /* Argon2 passes (t), >= 1 */
    size_t memlimit;   /* bytes of memory per hash (m), >= 8 KiB */
};

struct cu_hasher;

/* cu_hasher_new(params, max_concurrent, wait_ms, out): a hasher for params. max_concurrent
 * bounds the hashes that run at once; 0 picks it: the number of online cores, lowered so that
 * the hashes fit in half of the memory available now (never below 1). A call that finds every
 * slot busy waits up to wait_ms, then fails with CU_E_BUSY. Makes the dummy hash. Caller
 * frees with cu_hasher_free(). CU_E_INVALID for parameters out of libsodium's range. */
CU_WUR enum cu_err cu_hasher_new(const struct cu_pwhash_params *params, unsigned max_concurrent,
                                 unsigned wait_ms, struct cu_hasher **out);

/* cu_hasher_free(h): frees h; NULL does nothing. No call may be running on h. */
void cu_hasher_free(struct cu_hasher *h);

/* cu_hasher_slots(h): how many hashes h runs at once. */
unsigned cu_hasher_slots(const struct cu_hasher *h);

/* cu_hasher_hash(h, pw, len, out): the encoded Argon2id hash of pw (len bytes,
 * 1..CU_PWHASH_MAX_PASSWORD_BYTES) with h's parameters, into out. CU_E_BUSY when no slot
 * freed within the wait; CU_E_NOMEM when the hash could not get its memory. */
CU_WUR enum cu_err cu_hasher_hash(struct cu_hasher *h, const char *pw, size_t len,
                                  char out[CU_PWHASH_STR_BYTES]);

/* cu_hasher_verify(h, stored, pw, len, ok, rehash): checks pw against the encoded hash stored;
 * stored NULL checks against the dummy hash (same cost) and always gives *ok false. *rehash
 * (may be NULL) is set when stored was made with parameters other than h's. A malformed
 * stored hash gives *ok false and CU_OK. CU_E_BUSY as cu_hasher_hash. */
CU_WUR enum cu_err cu_hasher_verify(struct cu_hasher *h, const char *stored, const char *pw,
                                    size_t len, bool *ok, bool *rehash);

/* cu_pwhash_raw(params, pw, len, out): one hash with no semaphore (for benchmarks). */
CU_WUR enum cu_err cu_pwhash_raw(const struct cu_pwhash_params *params, const char *pw, size_t len,
                                 char out[CU_PWHASH_STR_BYTES]);

#endif
