/*
 * pwhash.c - Argon2id password hashes (libsodium's crypto_pwhash_str with
 * crypto_pwhash_ALG_ARGON2ID13) behind a counting semaphore.
 *
 * Each hash takes memlimit bytes for its whole run, so a hasher lets at most `slots` hashes
 * run at once (a mutex, a count and a condition variable on the monotonic clock); a caller
 * that finds every slot taken waits up to wait_ms and then gets CU_E_BUSY, which the API turns
 * into "try again later" rather than letting a password spray exhaust memory. Verifying for an
 * account that does not exist runs against a dummy hash made with the hasher's own parameters,
 * so it costs what a wrong password costs.
 *
 * Slots are numbered, and a thread that hashes in slot i runs on core i (mod the cores) for
 * the length of the hash. Without that, a thread woken for a freed slot is often queued behind
 * the busy thread on the core that woke it while another core idles, and on a two-core machine
 * that cost sign-ins about 7 % of the hash rate.
 */
#include "crypto/pwhash.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "base/log.h"
#include "base/mem.h"

_Static_assert(CU_PWHASH_STR_BYTES >= crypto_pwhash_STRBYTES, "a hash string fits");
_Static_assert(CU_PWHASH_MAX_PASSWORD_BYTES <= crypto_pwhash_PASSWD_MAX, "libsodium takes it");

#define DUMMY_PASSWORD_BYTES 32

struct cu_hasher {
    struct cu_pwhash_params params;
    unsigned slots;   /* hashes allowed at once, >= 1 */
    unsigned busy;    /* hashes running now, guarded by mu */
    uint64_t used;    /* which of the first 64 slots are taken, guarded by mu */
    long cores;       /* online cores when the hasher was made */
    unsigned wait_ms; /* how long a caller waits for a slot */
    pthread_mutex_t mu;
    pthread_cond_t freed; /* signalled when a slot is given back */
    char dummy[CU_PWHASH_STR_BYTES];
};

/* params_ok(p): whether p is within libsodium's range for Argon2id. */
static bool params_ok(const struct cu_pwhash_params *p)
{
    return p != NULL && p->opslimit >= crypto_pwhash_OPSLIMIT_MIN &&
           p->opslimit <= crypto_pwhash_OPSLIMIT_MAX && p->memlimit >= crypto_pwhash_MEMLIMIT_MIN &&
           p->memlimit <= crypto_pwhash_MEMLIMIT_MAX;
}

/* password_len_ok(len): whether a password of len bytes may be hashed. */
static bool password_len_ok(size_t len)
{
    return len >= 1 && len <= CU_PWHASH_MAX_PASSWORD_BYTES;
}

/* mem_available(): MemAvailable from /proc/meminfo in bytes, 0 when it cannot be read. */
static uint64_t mem_available(void)
{
    static const char key[] = "MemAvailable:";
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    unsigned long long kib = 0;

    if (f == NULL) {
        return 0;
    }
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, key, sizeof key - 1) == 0) {
            char *end = NULL;

            errno = 0;
            kib = strtoull(line + sizeof key - 1, &end, 10);
            if (errno != 0 || end == line + sizeof key - 1) {
                kib = 0;
            }
            break;
        }
    }
    fclose(f);
    return kib > UINT64_MAX / 1024 ? UINT64_MAX : (uint64_t)kib * 1024;
}

/* auto_slots(memlimit): the online cores, lowered so that the hashes fit in half of the
 * memory available now; at least 1. */
static unsigned auto_slots(size_t memlimit)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    uint64_t avail = mem_available();
    uint64_t slots = cores < 1 ? 1 : (uint64_t)cores;

    if (avail > 0 && slots > avail / 2 / memlimit) {
        slots = avail / 2 / memlimit;
    }
    if (slots > 4096) {
        slots = 4096;
    }
    return slots < 1 ? 1 : (unsigned)slots;
}

/* The slot this thread holds, -1 for none (or one past the first 64). */
static _Thread_local int my_slot = -1;

/* slot_number(h): the lowest free numbered slot, marked taken; -1 past the first 64. */
static int slot_number(struct cu_hasher *h)
{
    for (int i = 0; i < 64 && (unsigned)i < h->slots; i++) {
        if (!(h->used & ((uint64_t)1 << i))) {
            h->used |= (uint64_t)1 << i;
            return i;
        }
    }
    return -1;
}

/* slot_take(h): takes one of h's slots, waiting up to h->wait_ms for one to be given back.
 * CU_E_BUSY when none was. */
static enum cu_err slot_take(struct cu_hasher *h)
{
    struct timespec deadline;
    enum cu_err rc = CU_OK;
    int r = 0;

    CU_ASSERT(clock_gettime(CLOCK_MONOTONIC, &deadline) == 0);
    deadline.tv_sec += (time_t)(h->wait_ms / 1000);
    deadline.tv_nsec += (long)(h->wait_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    CU_ASSERT(pthread_mutex_lock(&h->mu) == 0);
    while (h->busy >= h->slots && r != ETIMEDOUT) {
        r = pthread_cond_timedwait(&h->freed, &h->mu, &deadline);
        CU_ASSERT(r == 0 || r == ETIMEDOUT);
    }
    if (h->busy >= h->slots) {
        rc = CU_E_BUSY;
    } else {
        h->busy++;
        my_slot = slot_number(h);
    }
    CU_ASSERT(pthread_mutex_unlock(&h->mu) == 0);
    return rc;
}

/* slot_give(h): gives back a slot taken with slot_take and wakes one waiter. */
static void slot_give(struct cu_hasher *h)
{
    CU_ASSERT(pthread_mutex_lock(&h->mu) == 0);
    CU_ASSERT(h->busy > 0);
    h->busy--;
    if (my_slot >= 0) {
        h->used &= ~((uint64_t)1 << my_slot);
    }
    my_slot = -1;
    CU_ASSERT(pthread_cond_signal(&h->freed) == 0);
    CU_ASSERT(pthread_mutex_unlock(&h->mu) == 0);
}

/* pin(h, saved): runs this thread on the core of its slot, keeping its affinity in saved;
 * false when it did not move (one core, no slot number, or the call failed). */
static bool pin(const struct cu_hasher *h, cpu_set_t *saved)
{
    long cores = h->cores;
    cpu_set_t one;

    if (my_slot < 0 || cores < 2 ||
        pthread_getaffinity_np(pthread_self(), sizeof(*saved), saved) != 0) {
        return false;
    }
    CPU_ZERO(&one);
    CPU_SET((int)(my_slot % cores), &one);
    return pthread_setaffinity_np(pthread_self(), sizeof(one), &one) == 0;
}

static void unpin(bool pinned, const cpu_set_t *saved)
{
    if (pinned) {
        (void)pthread_setaffinity_np(pthread_self(), sizeof(*saved), saved);
    }
}

/* hash_now(params, pw, len, out): one Argon2id hash; CU_E_NOMEM when libsodium fails (it
 * fails only when it cannot get the memory). */
static enum cu_err hash_now(const struct cu_pwhash_params *params, const char *pw, size_t len,
                            char out[CU_PWHASH_STR_BYTES])
{
    memset(out, 0, CU_PWHASH_STR_BYTES);
    if (crypto_pwhash_str_alg(out, pw, len, params->opslimit, params->memlimit,
                              crypto_pwhash_ALG_ARGON2ID13) != 0) {
        cu_log(CU_LOG_ERROR, "pwhash.failed", CU_LI("memlimit", params->memlimit));
        return CU_E_NOMEM;
    }
    return CU_OK;
}

/* sync_init(h): the mutex and the condition variable (on the monotonic clock) of h. */
static enum cu_err sync_init(struct cu_hasher *h)
{
    pthread_condattr_t attr;
    enum cu_err rc = CU_E_INTERNAL;

    if (pthread_condattr_init(&attr) != 0) {
        return CU_E_INTERNAL;
    }
    if (pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) != 0 ||
        pthread_cond_init(&h->freed, &attr) != 0) {
        goto out;
    }
    if (pthread_mutex_init(&h->mu, NULL) != 0) {
        pthread_cond_destroy(&h->freed);
        goto out;
    }
    rc = CU_OK;
out:
    pthread_condattr_destroy(&attr);
    return rc;
}

/* cu_hasher_new(params, max_concurrent, wait_ms, out): a hasher for params. max_concurrent
 * bounds the hashes that run at once; 0 picks it: the number of online cores, lowered so that
 * the hashes fit in half of the memory available now (never below 1). A call that finds every
 * slot busy waits up to wait_ms, then fails with CU_E_BUSY. Makes the dummy hash. Caller
 * frees with cu_hasher_free(). CU_E_INVALID for parameters out of libsodium's range. */
enum cu_err cu_hasher_new(const struct cu_pwhash_params *params, unsigned max_concurrent,
                          unsigned wait_ms, struct cu_hasher **out)
{
    char pw[DUMMY_PASSWORD_BYTES];
    struct cu_hasher *h = NULL;
    enum cu_err rc;

    *out = NULL;
    if (!params_ok(params)) {
        return CU_E_INVALID;
    }
    h = cu_calloc(1, sizeof *h);
    if (h == NULL) {
        return CU_E_NOMEM;
    }
    h->params = *params;
    h->slots = max_concurrent > 0 ? max_concurrent : auto_slots(params->memlimit);
    h->wait_ms = wait_ms;
    h->cores = sysconf(_SC_NPROCESSORS_ONLN);
    rc = sync_init(h);
    if (rc != CU_OK) {
        goto err0;
    }
    randombytes_buf(pw, sizeof pw);
    rc = hash_now(params, pw, sizeof pw, h->dummy);
    sodium_memzero(pw, sizeof pw);
    if (rc != CU_OK) {
        goto err1;
    }
    *out = h;
    return CU_OK;
err1:
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->freed);
err0:
    cu_free(h);
    return rc;
}

/* cu_hasher_free(h): frees h; NULL does nothing. No call may be running on h. */
void cu_hasher_free(struct cu_hasher *h)
{
    if (h == NULL) {
        return;
    }
    CU_ASSERT_MSG(h->busy == 0, "a hash is still running");
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->freed);
    cu_free(h);
}

/* cu_hasher_slots(h): how many hashes h runs at once. */
unsigned cu_hasher_slots(const struct cu_hasher *h)
{
    return h->slots;
}

/* cu_hasher_hash(h, pw, len, out): the encoded Argon2id hash of pw (len bytes,
 * 1..CU_PWHASH_MAX_PASSWORD_BYTES) with h's parameters, into out. CU_E_BUSY when no slot
 * freed within the wait; CU_E_NOMEM when the hash could not get its memory. */
enum cu_err cu_hasher_hash(struct cu_hasher *h, const char *pw, size_t len,
                           char out[CU_PWHASH_STR_BYTES])
{
    enum cu_err rc;

    memset(out, 0, CU_PWHASH_STR_BYTES);
    if (!password_len_ok(len)) {
        return CU_E_INVALID;
    }
    rc = slot_take(h);
    if (rc != CU_OK) {
        return rc;
    }
    cpu_set_t saved;
    bool pinned = pin(h, &saved);
    rc = hash_now(&h->params, pw, len, out);
    unpin(pinned, &saved);
    slot_give(h);
    return rc;
}

/* stored_copy(stored, copy): copies the NUL-terminated stored hash into copy (zero-padded to
 * CU_PWHASH_STR_BYTES, so libsodium never reads past it); false when it does not fit. */
static bool stored_copy(const char *stored, char copy[CU_PWHASH_STR_BYTES])
{
    size_t n = strnlen(stored, CU_PWHASH_STR_BYTES);

    memset(copy, 0, CU_PWHASH_STR_BYTES);
    if (n == 0 || n >= CU_PWHASH_STR_BYTES) {
        return false;
    }
    memcpy(copy, stored, n);
    return true;
}

/* cu_hasher_verify(h, stored, pw, len, ok, rehash): checks pw against the encoded hash stored;
 * stored NULL checks against the dummy hash (same cost) and always gives *ok false. *rehash
 * (may be NULL) is set when stored was made with parameters other than h's. A malformed
 * stored hash gives *ok false and CU_OK. CU_E_BUSY as cu_hasher_hash. */
enum cu_err cu_hasher_verify(struct cu_hasher *h, const char *stored, const char *pw, size_t len,
                             bool *ok, bool *rehash)
{
    char copy[CU_PWHASH_STR_BYTES];
    bool match;
    enum cu_err rc;

    *ok = false;
    if (rehash != NULL) {
        *rehash = false;
    }
    /* A password no hash could have been made of matches nothing; the input alone decides
     * this, so returning early tells nothing about the account. */
    if (!password_len_ok(len) || (stored != NULL && !stored_copy(stored, copy))) {
        return CU_OK;
    }
    if (stored == NULL) {
        memcpy(copy, h->dummy, sizeof copy);
    }
    rc = slot_take(h);
    if (rc != CU_OK) {
        return rc;
    }
    cpu_set_t saved;
    bool pinned = pin(h, &saved);
    match = crypto_pwhash_str_verify(copy, pw, len) == 0;
    unpin(pinned, &saved);
    slot_give(h);
    *ok = match && stored != NULL;
    if (rehash != NULL && stored != NULL) {
        *rehash = crypto_pwhash_str_needs_rehash(copy, h->params.opslimit, h->params.memlimit) == 1;
    }
    return CU_OK;
}

/* cu_pwhash_raw(params, pw, len, out): one hash with no semaphore (for benchmarks). */
enum cu_err cu_pwhash_raw(const struct cu_pwhash_params *params, const char *pw, size_t len,
                          char out[CU_PWHASH_STR_BYTES])
{
    memset(out, 0, CU_PWHASH_STR_BYTES);
    if (!params_ok(params) || !password_len_ok(len)) {
        return CU_E_INVALID;
    }
    return hash_now(params, pw, len, out);
}
