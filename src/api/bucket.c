/*
 * bucket.c - token buckets by key (bucket.h). Tokens are kept in thousandths, so that a rate
 * of a few a minute refills smoothly.
 */
#include "api/bucket.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "base/mem.h"

#define SHARDS 16
#define SLOTS 4096 /* per shard */
#define PROBES 8
#define KEY_MAX 80
#define MILLI 1000

struct slot {
    char key[KEY_MAX];
    int64_t at_ms;  /* when tokens was last brought up to date */
    int64_t tokens; /* thousandths */
};

struct shard {
    pthread_mutex_t mu;
    struct slot slots[SLOTS];
};

struct cu_buckets {
    int64_t rate;  /* thousandths of a token a minute */
    int64_t burst; /* thousandths */
    unsigned char hkey[crypto_shorthash_KEYBYTES];
    struct shard shards[SHARDS];
};

enum cu_err cu_buckets_new(unsigned rate_per_minute, unsigned burst, struct cu_buckets **out)
{
    struct cu_buckets *b;

    *out = NULL;
    if (rate_per_minute == 0)
        return CU_OK;
    if (burst == 0)
        return CU_E_INVALID;
    b = cu_calloc(1, sizeof(*b));
    if (b == NULL)
        return CU_E_NOMEM;
    b->rate = (int64_t)rate_per_minute * MILLI;
    b->burst = (int64_t)burst * MILLI;
    randombytes_buf(b->hkey, sizeof(b->hkey));
    for (size_t i = 0; i < SHARDS; i++)
        pthread_mutex_init(&b->shards[i].mu, NULL);
    *out = b;
    return CU_OK;
}

void cu_buckets_free(struct cu_buckets *b)
{
    if (b == NULL)
        return;
    for (size_t i = 0; i < SHARDS; i++)
        pthread_mutex_destroy(&b->shards[i].mu);
    cu_free(b);
}

/* SipHash under the table's own key: a client cannot aim its keys at one slot. */
static uint32_t hash(const struct cu_buckets *b, const char *s)
{
    unsigned char h[crypto_shorthash_BYTES];
    uint32_t v;
    crypto_shorthash(h, (const unsigned char *)s, strlen(s), b->hkey);
    memcpy(&v, h, sizeof(v));
    return v;
}

void cu_rate_client(const char *ip, char out[CU_RATE_CLIENT_BYTES])
{
    struct in6_addr a6;
    if (strchr(ip, ':') == NULL || inet_pton(AF_INET6, ip, &a6) != 1) {
        snprintf(out, CU_RATE_CLIENT_BYTES, "%s", ip);
        return;
    }
    /* an IPv4-mapped address is the IPv4 client it maps */
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(a6.s6_addr, mapped, sizeof(mapped)) == 0) {
        snprintf(out, CU_RATE_CLIENT_BYTES, "%u.%u.%u.%u", a6.s6_addr[12], a6.s6_addr[13],
                 a6.s6_addr[14], a6.s6_addr[15]);
        return;
    }
    const unsigned char *b = a6.s6_addr;
    snprintf(out, CU_RATE_CLIENT_BYTES, "%x:%x:%x:%x::/64", (unsigned)(b[0] << 8 | b[1]),
             (unsigned)(b[2] << 8 | b[3]), (unsigned)(b[4] << 8 | b[5]),
             (unsigned)(b[6] << 8 | b[7]));
}

/* refill(b, s, now): s's tokens brought up to now. Time is taken from the bucket only for the
 * whole thousandths it gave, so that frequent refills lose nothing to rounding. */
static void refill(const struct cu_buckets *b, struct slot *s, int64_t now)
{
    int64_t elapsed = now - s->at_ms, gain;

    if (elapsed <= 0)
        return; /* the same millisecond, or a clock that went back: nothing gained */
    /* past a full refill, the exact amount does not matter (and cannot overflow) */
    if (elapsed >= 60000LL * (b->burst / b->rate + 1)) {
        s->tokens = b->burst;
        s->at_ms = now;
        return;
    }
    gain = elapsed * b->rate / 60000;
    s->tokens += gain;
    if (s->tokens >= b->burst) {
        s->tokens = b->burst;
        s->at_ms = now;
    } else {
        s->at_ms += gain * 60000 / b->rate;
    }
}

/* The slot of key: its own, else one free or refilled, else the fullest probed. */
static struct slot *find(const struct cu_buckets *b, struct shard *sh, const char *key, uint32_t h,
                         int64_t now)
{
    struct slot *spare = NULL;
    for (unsigned i = 0; i < PROBES; i++) {
        struct slot *s = &sh->slots[(h + i) % SLOTS];
        if (s->key[0] != '\0' && strcmp(s->key, key) == 0) {
            refill(b, s, now);
            return s;
        }
        if (s->key[0] == '\0') {
            if (spare == NULL || spare->key[0] != '\0')
                spare = s;
            continue;
        }
        refill(b, s, now);
        if (spare == NULL || (spare->key[0] != '\0' && s->tokens > spare->tokens))
            spare = s;
    }
    snprintf(spare->key, KEY_MAX, "%s", key);
    spare->tokens = b->burst;
    spare->at_ms = now;
    return spare;
}

bool cu_buckets_take(struct cu_buckets *b, const char *key, int64_t now_ms, int64_t *retry_s)
{
    uint32_t h;
    struct shard *sh;
    struct slot *s;
    bool ok;

    *retry_s = 0;
    if (b == NULL)
        return true;
    h = hash(b, key);
    sh = &b->shards[(h >> 24) % SHARDS];
    pthread_mutex_lock(&sh->mu);
    s = find(b, sh, key, h, now_ms);
    ok = s->tokens >= MILLI;
    if (ok) {
        s->tokens -= MILLI;
    } else {
        int64_t wait_ms = ((MILLI - s->tokens) * 60000 + b->rate - 1) / b->rate;
        *retry_s = (wait_ms + 999) / 1000;
        if (*retry_s < 1)
            *retry_s = 1;
    }
    pthread_mutex_unlock(&sh->mu);
    return ok;
}
