/*
 * limit.c - the failed-authentication limiter: a fixed table of client slots, found by a keyed
 * hash of the client (its address, an IPv6 one by its /64: cu_rate_client), one lock. Slots are
 * reused when their window has passed, or taken over when the table is full of other clients (then
 * a busy attacker's count restarts, which errs on the side of auditing more, never less).
 */
#include "api/limit.h"

#include <pthread.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "base/mem.h"

#define SLOTS 4096
#define PROBES 8
#define WINDOW_MS 60000
#define CLIENT_MAX 64

struct slot {
    char client[CLIENT_MAX];
    int64_t window_start;
    uint64_t count;      /* failures in this window */
    uint64_t suppressed; /* failures held back and not yet reported */
};

struct cu_limiter {
    pthread_mutex_t mu;
    unsigned per_minute;
    unsigned char hkey[crypto_shorthash_KEYBYTES];
    struct slot slots[SLOTS];
};

enum cu_err cu_limiter_new(unsigned per_minute, struct cu_limiter **out)
{
    struct cu_limiter *l = cu_calloc(1, sizeof(*l));
    if (l == NULL)
        return CU_E_NOMEM;
    pthread_mutex_init(&l->mu, NULL);
    l->per_minute = per_minute;
    randombytes_buf(l->hkey, sizeof(l->hkey));
    *out = l;
    return CU_OK;
}

void cu_limiter_free(struct cu_limiter *l)
{
    if (l == NULL)
        return;
    pthread_mutex_destroy(&l->mu);
    cu_free(l);
}

/* SipHash under the table's own key: a client cannot aim its addresses at one slot. */
static uint32_t hash(const struct cu_limiter *l, const char *s)
{
    unsigned char h[crypto_shorthash_BYTES];
    uint32_t v;
    crypto_shorthash(h, (const unsigned char *)s, strlen(s), l->hkey);
    memcpy(&v, h, sizeof(v));
    return v;
}

/* The slot of client: its own, else a free or stale one, else the first probed. */
static struct slot *find(struct cu_limiter *l, const char *client, int64_t now)
{
    uint32_t h = hash(l, client);
    struct slot *spare = NULL;
    for (unsigned i = 0; i < PROBES; i++) {
        struct slot *s = &l->slots[(h + i) % SLOTS];
        if (strcmp(s->client, client) == 0)
            return s;
        if (spare == NULL &&
            (s->client[0] == '\0' || (now - s->window_start >= WINDOW_MS && s->suppressed == 0)))
            spare = s;
    }
    if (spare == NULL)
        spare = &l->slots[h % SLOTS];
    memset(spare, 0, sizeof(*spare));
    snprintf(spare->client, CLIENT_MAX, "%s", client);
    spare->window_start = now;
    return spare;
}

enum cu_limit_verdict cu_limiter_fail(struct cu_limiter *l, const char *client, int64_t now_ms,
                                      uint64_t *held_back)
{
    enum cu_limit_verdict v = CU_LIMIT_ALLOW;
    *held_back = 0;
    if (l == NULL || l->per_minute == 0)
        return CU_LIMIT_ALLOW;
    pthread_mutex_lock(&l->mu);
    struct slot *s = find(l, client, now_ms);
    if (now_ms - s->window_start >= WINDOW_MS || now_ms < s->window_start) {
        s->window_start = now_ms;
        s->count = 0;
    }
    if (++s->count > l->per_minute) {
        s->suppressed++;
        v = CU_LIMIT_SUPPRESS;
    } else {
        *held_back = s->suppressed;
        s->suppressed = 0;
    }
    pthread_mutex_unlock(&l->mu);
    return v;
}
