/*
 * state.c - the monitoring state (state.h): windows as sparse rings of time buckets, and
 * customers' baselines, in a hash table of keyed 64-bit hashes of the keys.
 */
#include "monitor/state.h"

#include <math.h>
#include <string.h>

#include <sodium.h>

#include "base/mem.h"
#include "monitor/countries.h"

/* Bucket numbers count from 1900-01-01 so that they fit 32 bits for 510 years at the
 * narrowest width (1 minute / 16 = 3.75 s); earlier times count as 1900. */
#define EPOCH_MS (-2208988800000LL)

struct bucket {
    uint32_t idx, count;
    int64_t sum;
};

/* The non-empty buckets of one key's window, oldest first, at most RING_MAX, in room that
 * grows as the window fills (most keys use one or two buckets). */
#define RING_MAX (2 * CU_MON_BUCKETS)
struct ring {
    uint16_t n, cap;
    struct bucket b[];
};

/* The values of a distinct window: a value's hash and the last bucket it was seen in. */
struct dval {
    uint32_t h, idx;
};
struct dset {
    uint16_t n, cap;
    struct dval v[];
};

/* The last values a customer was first seen with, newest replacing the oldest, and when. */
struct seen_val {
    uint32_t h;
    int64_t first_ms;
};
struct seen {
    uint8_t n, cap, next;
    struct seen_val v[];
};

struct base {
    uint32_t events; /* past events */
    uint16_t hours[24];
    bool has_loc;
    bool loc_centroid;   /* the last place is its country's centroid (the event had no lat/lon) */
    char loc_country[3]; /* its country, "" when the event had none */
    int64_t first_ms, loc_ms;
    double lat, lon;
    uint32_t amounts; /* Welford's running mean and M2 of ln(1 + amount) */
    double mean, m2;
    int64_t *since; /* per since feature: the last time, or INT64_MIN */
    struct seen *seen[CU_KEY_COUNT];
};

/* A key: its slot in the table (open addressing, linear probing, never removed). */
struct ent {
    uint64_t h;
    void **slots; /* per window of this kind: struct ring * or struct dset * */
    struct base *b;
    uint8_t kind, used;
};

/* A window the features count over; count and sum of one key, length and types share it. */
struct wspec {
    enum cu_key key, field;
    bool distinct;
    int64_t width_ms;
    uint64_t types;
    int slot; /* its index among the windows of its key */
};

struct cu_mon_state {
    struct cu_feature *features;
    size_t nfeatures;
    int *fspec;  /* per feature: its window, or -1 */
    int *fsince; /* per feature: its since slot, or -1 */
    struct wspec *specs;
    size_t nspecs;
    int nslots[CU_KEY_COUNT];
    int nsince;
    bool track[CU_KEY_COUNT]; /* the seen sets kept */
    struct ent *table;        /* cap slots, at most three quarters used */
    size_t cap, n;
    size_t keys[CU_KEY_COUNT];
    size_t bytes;
    size_t keys_max;  /* keys kept at most; past it new keys are not recorded */
    uint64_t dropped; /* events a new key could not be made for, at the cap */
    uint64_t swept;   /* keys forgotten once their windows had all passed */
    int64_t now_ms;   /* the latest event recorded */
    unsigned char hkey[crypto_shorthash_KEYBYTES];
    /* the probe's per-event look-ups */
    const struct cu_mon_event *probe_ev;
    struct ent *pent[CU_KEY_COUNT];
    bool plooked[CU_KEY_COUNT];
    /* the event's keys, hashed once for the probe and the recording that follows it */
    const struct cu_mon_event *kc_ev;
    uint8_t kc_state[CU_KEY_COUNT]; /* 0 not yet, 1 present, 2 absent */
    uint64_t kc_hash[CU_KEY_COUNT];
    /* the feature values of the event, asked once whatever the rule sets asking */
    double *fval;
    uint8_t *fdone; /* 0 not asked, 1 present, 2 missing */
};

static void *grab(struct cu_mon_state *st, size_t n)
{
    void *p = cu_calloc(1, n);
    if (p)
        st->bytes += n;
    return p;
}

/* regrow(st, old, used, old_size, new_size): a new block of new_size bytes holding the first
 * used bytes of old (which may be NULL), old freed and the accounting moved; NULL (old kept)
 * when out of memory. */
static void *regrow(struct cu_mon_state *st, void *old, size_t used, size_t old_size,
                    size_t new_size)
{
    void *p = grab(st, new_size);
    if (!p)
        return NULL;
    if (old) {
        memcpy(p, old, used);
        st->bytes -= old_size;
        cu_free(old);
    }
    return p;
}

/* --- keys ------------------------------------------------------------------------------ */

static uint64_t hash_bytes(const struct cu_mon_state *st, uint8_t kind, const void *p, size_t n)
{
    unsigned char in[CU_MON_REF_MAX + 17], out[crypto_shorthash_BYTES];
    uint64_t h = 0;
    if (n > sizeof(in) - 1)
        n = sizeof(in) - 1;
    in[0] = kind;
    memcpy(in + 1, p, n);
    crypto_shorthash(out, in, n + 1, st->hkey);
    memcpy(&h, out, sizeof(h));
    return h;
}

/* key_of(st, ev, kind, h): the hash of ev's value for kind; false when ev has none. */
static bool key_of(const struct cu_mon_state *st, const struct cu_mon_event *ev, enum cu_key k,
                   uint64_t *h)
{
    uint8_t blk[16];
    switch (k) {
    case CU_KEY_CUSTOMER:
        *h = hash_bytes(st, (uint8_t)k, ev->customer, strlen(ev->customer));
        return true;
    case CU_KEY_IP:
        if (!(ev->has & CU_EVF_IP))
            return false;
        *h = hash_bytes(st, (uint8_t)k, ev->key_ip, 16);
        return true;
    case CU_KEY_IP_BLOCK: {
        bool v4 = memcmp(ev->key_ip, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0;
        if (!(ev->has & CU_EVF_IP))
            return false;
        memset(blk, 0, sizeof(blk));
        memcpy(blk, ev->key_ip, v4 ? 15 : 8); /* the /24 of IPv4, the /64 of IPv6 */
        *h = hash_bytes(st, (uint8_t)k, blk, sizeof(blk));
        return true;
    }
    case CU_KEY_DEVICE:
        if (!(ev->has & CU_EVF_DEVICE))
            return false;
        *h = hash_bytes(st, (uint8_t)k, ev->device, strlen(ev->device));
        return true;
    case CU_KEY_PAYEE:
        if (!(ev->has & CU_EVF_PAYEE))
            return false;
        *h = hash_bytes(st, (uint8_t)k, ev->payee, strlen(ev->payee));
        return true;
    case CU_KEY_COUNTRY:
        if (!(ev->has & CU_EVF_COUNTRY))
            return false;
        *h = hash_bytes(st, (uint8_t)k, ev->country, 2);
        return true;
    case CU_KEY_ALL:
        *h = 0;
        return true;
    case CU_KEY_COUNT:
        break;
    }
    return false;
}

static struct ent *find(const struct cu_mon_state *st, enum cu_key k, uint64_t h)
{
    size_t mask = st->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        struct ent *e = &st->table[i];
        if (!e->used)
            return NULL;
        if (e->h == h && e->kind == k)
            return e;
    }
}

/* put(t, cap, e): e into the first free slot of its probe sequence in t. */
static struct ent *put(struct ent *t, size_t cap, const struct ent *e)
{
    size_t i = e->h & (cap - 1);
    while (t[i].used)
        i = (i + 1) & (cap - 1);
    t[i] = *e;
    return &t[i];
}

static uint32_t bucket_of(int64_t ms, int64_t width)
{
    int64_t rel = ms - EPOCH_MS;
    if (rel < 0)
        rel = 0;
    rel /= width;
    return rel > (int64_t)UINT32_MAX ? UINT32_MAX : (uint32_t)rel;
}

/* dead(st, e): a key with nothing left to count: no baseline, and every window of it passed
 * (relative to the latest event recorded). */
static bool dead(const struct cu_mon_state *st, const struct ent *e)
{
    if (e->b)
        return false;
    for (size_t s = 0; s < st->nspecs; s++) {
        const struct wspec *w = &st->specs[s];
        uint32_t now;
        if (w->key != e->kind || !e->slots || !e->slots[w->slot])
            continue;
        now = bucket_of(st->now_ms, w->width_ms);
        if (w->distinct) {
            const struct dset *d = e->slots[w->slot];
            for (int i = 0; i < d->n; i++)
                if (d->v[i].idx > now || now - d->v[i].idx < CU_MON_BUCKETS)
                    return false;
        } else {
            const struct ring *r = e->slots[w->slot];
            if (r->n > 0 && (r->b[r->n - 1].idx > now || now - r->b[r->n - 1].idx < CU_MON_BUCKETS))
                return false;
        }
    }
    return true;
}

static void ent_free(struct cu_mon_state *st, struct ent *e)
{
    for (size_t s = 0; e->slots && s < st->nspecs; s++) {
        const struct wspec *w = &st->specs[s];
        if (w->key == e->kind && e->slots[w->slot]) {
            if (w->distinct) {
                const struct dset *d = e->slots[w->slot];
                st->bytes -= sizeof(*d) + d->cap * sizeof(d->v[0]);
            } else {
                const struct ring *r = e->slots[w->slot];
                st->bytes -= sizeof(*r) + r->cap * sizeof(r->b[0]);
            }
            cu_free(e->slots[w->slot]);
        }
    }
    if (e->slots)
        st->bytes -= (size_t)st->nslots[e->kind] * sizeof(*e->slots);
    cu_free(e->slots);
}

/* grow(st): when the table is three quarters full: forgets the dead keys, then doubles the
 * table unless that freed a good part of it (at most half full after), so each rebuild is
 * paid for by a quarter of the table's worth of new keys. */
static enum cu_err grow(struct cu_mon_state *st)
{
    size_t live = 0, cap;
    struct ent *t;
    for (size_t i = 0; i < st->cap; i++)
        live += st->table[i].used && !dead(st, &st->table[i]);
    cap = live + 1 > st->cap / 2 ? st->cap * 2 : st->cap;
    if ((t = cu_calloc(cap, sizeof(*t))) == NULL)
        return CU_E_NOMEM;
    for (size_t i = 0; i < st->cap; i++) {
        struct ent *e = &st->table[i];
        if (!e->used)
            continue;
        if (dead(st, e)) {
            ent_free(st, e);
            st->keys[e->kind]--;
            st->n--;
            st->swept++;
            continue;
        }
        (void)put(t, cap, e);
    }
    st->bytes += (cap - st->cap) * sizeof(*t);
    cu_free(st->table);
    st->table = t;
    st->cap = cap;
    return CU_OK;
}

/* find_or_add(st, k, h): the key's slot, made when new. A slot moves when the table grows:
 * hold it only until the next call. */
static struct ent *find_or_add(struct cu_mon_state *st, enum cu_key k, uint64_t h)
{
    struct ent *e = find(st, k, h), fresh;
    if (e)
        return e;
    if (st->n >= st->keys_max) {
        st->dropped++;
        return NULL;
    }
    if (st->n + 1 > st->cap / 4 * 3 && grow(st) != CU_OK)
        return NULL;
    memset(&fresh, 0, sizeof(fresh));
    if (st->nslots[k] > 0 &&
        (fresh.slots = grab(st, (size_t)st->nslots[k] * sizeof(*fresh.slots))) == NULL)
        return NULL;
    fresh.h = h;
    fresh.kind = (uint8_t)k;
    fresh.used = 1;
    st->n++;
    st->keys[k]++;
    return put(st->table, st->cap, &fresh);
}

/* ekey(st, ev, k, h): key_of, hashed once per event: a probe and the recording after it share
 * the hashes; cu_mon_state_source and the end of cu_mon_state_add start afresh. */
static bool ekey(struct cu_mon_state *st, const struct cu_mon_event *ev, enum cu_key k, uint64_t *h)
{
    if ((unsigned)k >= CU_KEY_COUNT)
        return false;
    if (st->kc_ev != ev) {
        st->kc_ev = ev;
        memset(st->kc_state, 0, sizeof(st->kc_state));
    }
    if (st->kc_state[k] == 0)
        st->kc_state[k] = key_of(st, ev, k, &st->kc_hash[k]) ? 1 : 2;
    *h = st->kc_hash[k];
    return st->kc_state[k] == 1;
}

/* --- the state ------------------------------------------------------------------------- */

static bool windowed(enum cu_feature_kind k)
{
    return k == CU_FEAT_COUNT || k == CU_FEAT_SUM || k == CU_FEAT_DISTINCT;
}

enum cu_err cu_mon_state_new(const struct cu_feature *features, size_t n, struct cu_mon_state **out)
{
    struct cu_mon_state *st = cu_calloc(1, sizeof(*st));
    *out = NULL;
    if (!st)
        return CU_E_NOMEM;
    st->bytes = sizeof(*st);
    st->cap = 4096;
    st->keys_max = CU_MON_KEYS_MAX;
    st->now_ms = INT64_MIN;
    st->table = grab(st, st->cap * sizeof(*st->table));
    st->features = grab(st, (n ? n : 1) * sizeof(*st->features));
    st->fspec = grab(st, (n ? n : 1) * sizeof(int));
    st->fsince = grab(st, (n ? n : 1) * sizeof(int));
    st->specs = grab(st, (n ? n : 1) * sizeof(*st->specs));
    st->fval = grab(st, (n ? n : 1) * sizeof(*st->fval));
    st->fdone = grab(st, n ? n : 1);
    if (!st->table || !st->features || !st->fspec || !st->fsince || !st->specs || !st->fval ||
        !st->fdone) {
        cu_mon_state_free(st);
        return CU_E_NOMEM;
    }
    memcpy(st->features, features, n * sizeof(*features));
    st->nfeatures = n;
    crypto_shorthash_keygen(st->hkey);
    for (size_t i = 0; i < n; i++) {
        const struct cu_feature *f = &features[i];
        st->fspec[i] = st->fsince[i] = -1;
        if (f->kind == CU_FEAT_SINCE || f->kind == CU_FEAT_SINCE_FIELD)
            st->fsince[i] = st->nsince++;
        if (f->kind == CU_FEAT_FIRST_SEEN || f->kind == CU_FEAT_KNOWN_FOR)
            st->track[f->field] = true;
        if (f->kind == CU_FEAT_ANOMALY)
            st->track[CU_KEY_DEVICE] = st->track[CU_KEY_COUNTRY] = st->track[CU_KEY_PAYEE] = true;
        if (!windowed(f->kind))
            continue;
        struct wspec w = {f->key,
                          f->kind == CU_FEAT_DISTINCT ? f->field : CU_KEY_COUNT,
                          f->kind == CU_FEAT_DISTINCT,
                          f->window_ms / CU_MON_BUCKETS,
                          f->types,
                          0};
        size_t s;
        for (s = 0; s < st->nspecs; s++) {
            const struct wspec *o = &st->specs[s];
            if (o->key == w.key && o->field == w.field && o->distinct == w.distinct &&
                o->width_ms == w.width_ms && o->types == w.types)
                break;
        }
        if (s == st->nspecs) {
            w.slot = st->nslots[w.key]++;
            st->specs[st->nspecs++] = w;
        }
        st->fspec[i] = (int)s;
    }
    *out = st;
    return CU_OK;
}

static void base_free(struct base *b)
{
    if (!b)
        return;
    cu_free(b->since);
    for (int k = 0; k < CU_KEY_COUNT; k++)
        cu_free(b->seen[k]);
    cu_free(b);
}

void cu_mon_state_free(struct cu_mon_state *st)
{
    if (!st)
        return;
    for (size_t i = 0; st->table && i < st->cap; i++) {
        struct ent *e = &st->table[i];
        if (!e->used)
            continue;
        for (int s = 0; e->slots && s < st->nslots[e->kind]; s++)
            cu_free(e->slots[s]);
        cu_free(e->slots);
        base_free(e->b);
    }
    cu_free(st->table);
    cu_free(st->features);
    cu_free(st->fspec);
    cu_free(st->fsince);
    cu_free(st->specs);
    cu_free(st->fval);
    cu_free(st->fdone);
    cu_free(st);
}

void cu_mon_state_set_keys_max(struct cu_mon_state *st, size_t max)
{
    st->keys_max = max;
}

void cu_mon_state_stats(const struct cu_mon_state *st, struct cu_mon_state_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->bytes = st->bytes;
    out->dropped = st->dropped;
    out->swept = st->swept;
    memcpy(out->keys, st->keys, sizeof(out->keys));
}

/* in_window(idx, now): whether bucket idx is one of the CU_MON_BUCKETS ending with now. */
static bool in_window(uint32_t idx, uint32_t now)
{
    return idx <= now && now - idx < CU_MON_BUCKETS;
}

static bool type_in(uint64_t types, int type)
{
    return types == 0 || ((types >> type) & 1u);
}

/* field_hash(st, ev, field, h): a distinct or seen set's 32-bit hash of ev's field. */
static bool field_hash(struct cu_mon_state *st, const struct cu_mon_event *ev, enum cu_key field,
                       uint32_t *h)
{
    uint64_t full;
    if (!ekey(st, ev, field, &full))
        return false;
    *h = (uint32_t)(full ^ (full >> 32));
    return true;
}

static const struct seen_val *seen_find(const struct seen *s, uint32_t h)
{
    for (int i = 0; s && i < s->n; i++)
        if (s->v[i].h == h)
            return &s->v[i];
    return NULL;
}

/* --- the feature values ---------------------------------------------------------------- */

static struct ent *probe_ent(struct cu_mon_state *st, enum cu_key k)
{
    if (!st->plooked[k]) {
        uint64_t h;
        st->pent[k] = ekey(st, st->probe_ev, k, &h) ? find(st, k, h) : NULL;
        st->plooked[k] = true;
    }
    return st->pent[k];
}

static bool has_key(struct cu_mon_state *st, const struct cu_mon_event *ev, enum cu_key k)
{
    uint64_t h;
    return ekey(st, ev, k, &h);
}

static bool window_value(struct cu_mon_state *st, const struct cu_feature *f, const struct wspec *w,
                         double *v)
{
    const struct cu_mon_event *ev = st->probe_ev;
    uint32_t now = bucket_of(ev->time_ms, w->width_ms);
    bool counts = type_in(w->types, ev->type);
    struct ent *e;

    if (!has_key(st, ev, w->key))
        return false;
    e = probe_ent(st, w->key);
    if (!w->distinct) {
        uint64_t count = counts ? 1 : 0;
        int64_t sum = counts && (ev->has & CU_EVF_AMOUNT) ? ev->amount : 0;
        const struct ring *r = e && e->slots ? e->slots[w->slot] : NULL;
        for (int i = 0; r && i < r->n; i++)
            if (in_window(r->b[i].idx, now)) {
                count += r->b[i].count;
                if (__builtin_add_overflow(sum, r->b[i].sum, &sum))
                    sum = INT64_MAX;
            }
        *v = f->kind == CU_FEAT_COUNT ? (double)count : (double)sum;
        return true;
    }
    const struct dset *d = e && e->slots ? e->slots[w->slot] : NULL;
    uint32_t mine = 0;
    bool have = counts && field_hash(st, ev, w->field, &mine);
    uint32_t n = 0;
    for (int i = 0; d && i < d->n; i++)
        if (in_window(d->v[i].idx, now)) {
            n++;
            if (have && d->v[i].h == mine)
                have = false; /* already counted */
        }
    *v = (double)(n + (have ? 1 : 0));
    return true;
}

double cu_mon_distance_km(double lat1, double lon1, double lat2, double lon2)
{
    const double r = 6371.0, rad = M_PI / 180.0;
    double dlat = (lat2 - lat1) * rad, dlon = (lon2 - lon1) * rad;
    double a = sin(dlat / 2) * sin(dlat / 2) +
               cos(lat1 * rad) * cos(lat2 * rad) * sin(dlon / 2) * sin(dlon / 2);
    if (a > 1.0)
        a = 1.0;
    return 2.0 * r * asin(sqrt(a));
}

/* Where an event happened: its lat/lon, or its country's centroid when it has only a country. */
struct place {
    double lat, lon;
    bool centroid;
    char country[3];
};

static bool place_of(const struct cu_mon_event *ev, struct place *p)
{
    memset(p, 0, sizeof(*p));
    if (ev->has & CU_EVF_COUNTRY)
        memcpy(p->country, ev->country, sizeof(p->country));
    if (ev->has & CU_EVF_LOCATION) {
        p->lat = ev->lat;
        p->lon = ev->lon;
        return true;
    }
    p->centroid = true;
    return (ev->has & CU_EVF_COUNTRY) && cu_country_centroid(ev->country, &p->lat, &p->lon);
}

/* travelled_km(b, p): from the customer's last place to p. When either is a country's centroid,
 * two places in one country are 0 km apart (a centroid says nothing of where in the country: a
 * move from London to the centroid of GB is no journey), and two countries are as far apart as
 * their centroids. */
static double travelled_km(const struct base *b, const struct place *p)
{
    if ((b->loc_centroid || p->centroid) && p->country[0] &&
        memcmp(b->loc_country, p->country, sizeof(p->country)) == 0)
        return 0.0;
    return cu_mon_distance_km(b->lat, b->lon, p->lat, p->lon);
}

static double clamp01(double x)
{
    return x < 0 ? 0 : x > 1 ? 1 : x;
}

double cu_mon_anomaly(double hour_rarity, double amount_rarity, double new_device,
                      double new_country, double new_payee, uint32_t past)
{
    /* a noisy-or of weighted rarities, scaled by how much history there is */
    double keep = (1.0 - 0.5 * clamp01(hour_rarity)) * (1.0 - 0.6 * clamp01(amount_rarity)) *
                  (1.0 - 0.4 * clamp01(new_device)) * (1.0 - 0.5 * clamp01(new_country)) *
                  (1.0 - 0.3 * clamp01(new_payee));
    double maturity = past >= 20 ? 1.0 : (double)past / 20.0;
    return (1.0 - keep) * maturity;
}

static double hour_of(int64_t ms)
{
    int64_t h = ms >= 0 ? ms / 3600000 : -((-ms + 3599999) / 3600000); /* floor */
    return (double)((h % 24 + 24) % 24);
}

static bool amount_z(const struct base *b, const struct cu_mon_event *ev, double *z)
{
    double sd;
    if (!b || !(ev->has & CU_EVF_AMOUNT) || b->amounts < 2)
        return false;
    sd = sqrt(b->m2 / (double)(b->amounts - 1));
    if (!(sd > 1e-9))
        return false;
    *z = (log1p((double)ev->amount) - b->mean) / sd;
    return true;
}

static bool is_new(struct cu_mon_state *st, const struct base *b, const struct cu_mon_event *ev,
                   enum cu_key field, double *v)
{
    uint32_t h;
    if (!field_hash(st, ev, field, &h))
        return false;
    *v = b && seen_find(b->seen[field], h) ? 0.0 : 1.0;
    return true;
}

static bool known_for(struct cu_mon_state *st, const struct base *b, const struct cu_mon_event *ev,
                      enum cu_key field, double *v)
{
    uint32_t h;
    const struct seen_val *s;
    if (!field_hash(st, ev, field, &h))
        return false;
    s = b ? seen_find(b->seen[field], h) : NULL;
    *v = s && ev->time_ms > s->first_ms ? (double)(ev->time_ms - s->first_ms) : 0.0;
    return true;
}

static bool compute_value(void *arg, size_t i, double *v)
{
    struct cu_mon_probe *p = arg;
    struct cu_mon_state *st = p->st;
    const struct cu_mon_event *ev = p->ev;
    const struct cu_feature *f = &st->features[i];
    struct place pl;
    struct ent *c;
    const struct base *b;

    if (i >= st->nfeatures)
        return false;
    if (st->fspec[i] >= 0)
        return window_value(st, f, &st->specs[st->fspec[i]], v);
    c = probe_ent(st, CU_KEY_CUSTOMER);
    b = c ? c->b : NULL;
    switch (f->kind) {
    case CU_FEAT_EVENTS:
        *v = b ? (double)b->events : 0.0;
        return true;
    case CU_FEAT_AGE:
        *v = b && ev->time_ms > b->first_ms ? (double)(ev->time_ms - b->first_ms) : 0.0;
        return true;
    case CU_FEAT_HOUR_SHARE:
        if (!b || b->events == 0)
            return false;
        *v = (double)b->hours[(int)hour_of(ev->time_ms)] / (double)b->events;
        return true;
    case CU_FEAT_AMOUNT_Z:
        return amount_z(b, ev, v);
    case CU_FEAT_FIRST_SEEN:
        return is_new(st, b, ev, f->field, v);
    case CU_FEAT_KNOWN_FOR:
        return known_for(st, b, ev, f->field, v);
    case CU_FEAT_SINCE:
    case CU_FEAT_SINCE_FIELD: {
        int64_t last = b && b->since ? b->since[st->fsince[i]] : INT64_MIN;
        if (last == INT64_MIN)
            return false;
        *v = (double)(ev->time_ms > last ? ev->time_ms - last : 0);
        return true;
    }
    case CU_FEAT_TRAVEL_KM:
        if (!b || !b->has_loc || !place_of(ev, &pl) || ev->time_ms < b->loc_ms)
            return false; /* a late event has no "last" place before it that is known */
        *v = travelled_km(b, &pl);
        return true;
    case CU_FEAT_TRAVEL_KMH: {
        double km, hours;
        if (!b || !b->has_loc || !place_of(ev, &pl) || ev->time_ms < b->loc_ms)
            return false;
        km = travelled_km(b, &pl);
        hours = (double)(ev->time_ms - b->loc_ms) / 3600000.0;
        if (hours < 1.0 / 3600.0)
            hours = 1.0 / 3600.0; /* a second at least: two places at once are fast, not infinite */
        *v = km / hours;
        return true;
    }
    case CU_FEAT_ANOMALY: {
        double hr = 0, ar = 0, nd = 0, nc = 0, np = 0, z = 0;
        if (!b || b->events == 0) {
            *v = 0;
            return true;
        }
        /* how rare this hour is: 1 for an hour never used, 0 from a fair share (1/24) up;
         * smoothed by one event spread over the day */
        double share =
            ((double)b->hours[(int)hour_of(ev->time_ms)] + 1.0 / 24.0) / ((double)b->events + 1.0);
        hr = clamp01(1.0 - 24.0 * share);
        if (amount_z(b, ev, &z))
            ar = clamp01((z - 1.0) / 3.0); /* 0 up to one deviation, 1 from four */
        if (!is_new(st, b, ev, CU_KEY_DEVICE, &nd))
            nd = 0;
        if (!is_new(st, b, ev, CU_KEY_COUNTRY, &nc))
            nc = 0;
        if (!is_new(st, b, ev, CU_KEY_PAYEE, &np))
            np = 0;
        *v = cu_mon_anomaly(hr, ar, nd, nc, np, b->events);
        return true;
    }
    case CU_FEAT_COUNT:
    case CU_FEAT_SUM:
    case CU_FEAT_DISTINCT:
        break;
    }
    return false;
}

static bool probe_value(void *arg, size_t i, double *v)
{
    struct cu_mon_probe *p = arg;
    struct cu_mon_state *st = p->st;
    if (i >= st->nfeatures)
        return false;
    if (st->fdone[i] == 0)
        st->fdone[i] = compute_value(arg, i, &st->fval[i]) ? 1 : 2;
    *v = st->fval[i];
    return st->fdone[i] == 1;
}

void cu_mon_state_source(struct cu_mon_state *st, const struct cu_mon_event *ev,
                         struct cu_mon_probe *probe, struct cu_feature_source *out)
{
    st->probe_ev = ev;
    st->kc_ev = NULL;
    memset(st->plooked, 0, sizeof(st->plooked));
    memset(st->fdone, 0, st->nfeatures);
    /* start the memory loads of every key this event will look up, so that they overlap */
    for (int k = 0; k < CU_KEY_COUNT; k++) {
        uint64_t h;
        if ((k == CU_KEY_CUSTOMER || st->nslots[k] > 0) && ekey(st, ev, (enum cu_key)k, &h))
            __builtin_prefetch(&st->table[h & (st->cap - 1)]);
    }
    probe->st = st;
    probe->ev = ev;
    out->value = probe_value;
    out->arg = probe;
}

/* --- recording ------------------------------------------------------------------------- */

static enum cu_err ring_add(struct cu_mon_state *st, struct ent *e, const struct wspec *w,
                            const struct cu_mon_event *ev)
{
    if (!e->slots) /* a key of a kind with windows always has its slots */
        return CU_E_INVALID;
    struct ring *r = e->slots[w->slot];
    uint32_t idx = bucket_of(ev->time_ms, w->width_ms);
    int at;
    if (!r && (r = e->slots[w->slot] = grab(st, sizeof(*r) + sizeof(r->b[0]))) == NULL)
        return CU_E_NOMEM;
    if (r->cap == 0)
        r->cap = 1;
    /* oldest first; an event goes to its own bucket, late or not */
    for (at = r->n - 1; at >= 0 && r->b[at].idx > idx; at--)
        ;
    if (at < 0 || r->b[at].idx != idx) {
        /* drop the buckets behind this event's window (no event from it on can count them);
         * buckets ahead of it stay, so that a late event takes nothing from the present */
        int drop = 0;
        while (drop < r->n && r->b[drop].idx < idx && idx - r->b[drop].idx >= CU_MON_BUCKETS)
            drop++;
        if (drop > 0) {
            memmove(r->b, r->b + drop, (size_t)(r->n - drop) * sizeof(r->b[0]));
            r->n = (uint16_t)(r->n - drop);
            at -= drop;
        }
        if (r->n >= RING_MAX) {
            /* full (two windows' worth, so a late event and the present both fit): give up
             * the bucket farthest from this event, so that buckets dated far ahead go first
             * and cannot crowd out the present */
            uint32_t ahead = r->b[r->n - 1].idx - idx, behind = idx - r->b[0].idx;
            if (r->b[r->n - 1].idx > idx && (r->b[0].idx > idx || ahead >= behind)) {
                r->n--;
                if (at >= r->n)
                    at = r->n - 1;
            } else {
                memmove(r->b, r->b + 1, (size_t)(r->n - 1) * sizeof(r->b[0]));
                r->n--;
                at--;
            }
        }
        if (r->n == r->cap) {
            uint16_t cap = (uint16_t)(r->cap * 2 > RING_MAX ? RING_MAX : r->cap * 2);
            struct ring *nr =
                regrow(st, r, sizeof(*r) + r->n * sizeof(r->b[0]),
                       sizeof(*r) + r->cap * sizeof(r->b[0]), sizeof(*nr) + cap * sizeof(nr->b[0]));
            if (!nr)
                return CU_E_NOMEM;
            nr->cap = cap;
            r = e->slots[w->slot] = nr;
        }
        at++;
        memmove(r->b + at + 1, r->b + at, (size_t)(r->n - at) * sizeof(r->b[0]));
        r->b[at] = (struct bucket){idx, 0, 0};
        r->n++;
    }
    if (r->b[at].count < UINT32_MAX)
        r->b[at].count++;
    if ((ev->has & CU_EVF_AMOUNT) &&
        __builtin_add_overflow(r->b[at].sum, ev->amount, &r->b[at].sum))
        r->b[at].sum = INT64_MAX; /* saturates: a sum past 9.2 * 10^18 stays the largest */
    return CU_OK;
}

static enum cu_err dset_add(struct cu_mon_state *st, struct ent *e, const struct wspec *w,
                            const struct cu_mon_event *ev)
{
    if (!e->slots)
        return CU_E_INVALID;
    struct dset *d = e->slots[w->slot];
    uint32_t idx = bucket_of(ev->time_ms, w->width_ms), h;
    int oldest = -1;
    if (!field_hash(st, ev, w->field, &h))
        return CU_OK;
    for (int i = 0; d && i < d->n; i++) {
        if (d->v[i].h == h) {
            if (d->v[i].idx < idx)
                d->v[i].idx = idx;
            return CU_OK;
        }
        if (oldest < 0 || d->v[i].idx < d->v[oldest].idx)
            oldest = i;
    }
    /* reuse an entry the window left behind, or the oldest once full */
    for (int i = 0; d && i < d->n; i++)
        if (d->v[i].idx < idx && idx - d->v[i].idx >= CU_MON_BUCKETS) { /* behind, not ahead */
            d->v[i] = (struct dval){h, idx};
            return CU_OK;
        }
    if (d && d->n >= CU_MON_DISTINCT_MAX) {
        d->v[oldest] = (struct dval){h, idx};
        return CU_OK;
    }
    if (!d || d->n == d->cap) {
        uint16_t cap = d ? (uint16_t)(d->cap * 2) : 4;
        struct dset *nd;
        if (cap > CU_MON_DISTINCT_MAX)
            cap = CU_MON_DISTINCT_MAX;
        nd = regrow(st, d, d ? sizeof(*d) + d->n * sizeof(d->v[0]) : 0,
                    d ? sizeof(*d) + d->cap * sizeof(d->v[0]) : 0,
                    sizeof(*nd) + cap * sizeof(nd->v[0]));
        if (!nd)
            return CU_E_NOMEM;
        nd->cap = cap;
        d = e->slots[w->slot] = nd;
    }
    d->v[d->n++] = (struct dval){h, idx};
    return CU_OK;
}

static enum cu_err seen_add(struct cu_mon_state *st, struct base *b, enum cu_key field,
                            const struct cu_mon_event *ev)
{
    uint32_t h;
    struct seen *s = b->seen[field];
    if (!field_hash(st, ev, field, &h))
        return CU_OK;
    struct seen_val *known = (struct seen_val *)seen_find(s, h);
    if (known) {
        if (ev->time_ms < known->first_ms) /* a late event: the value is older than thought */
            known->first_ms = ev->time_ms;
        return CU_OK;
    }
    if (!s || (s->n == s->cap && s->cap < CU_MON_SEEN_MAX)) {
        uint8_t cap = (uint8_t)(s ? s->cap * 2 : 2);
        struct seen *ns = regrow(st, s, s ? sizeof(*s) + s->n * sizeof(s->v[0]) : 0,
                                 s ? sizeof(*s) + s->cap * sizeof(s->v[0]) : 0,
                                 sizeof(*ns) + cap * sizeof(ns->v[0]));
        if (!ns)
            return CU_E_NOMEM;
        ns->cap = cap;
        s = b->seen[field] = ns;
    }
    if (s->n < s->cap) {
        s->v[s->n++] = (struct seen_val){h, ev->time_ms};
    } else {
        s->v[s->next] = (struct seen_val){h, ev->time_ms};
        s->next = (uint8_t)((s->next + 1) % CU_MON_SEEN_MAX);
    }
    return CU_OK;
}

static enum cu_err base_add(struct cu_mon_state *st, struct ent *c, const struct cu_mon_event *ev)
{
    struct base *b = c->b;
    struct place pl;
    enum cu_err rc = CU_OK;
    if (!b) {
        if ((b = c->b = grab(st, sizeof(*b))) == NULL)
            return CU_E_NOMEM;
        b->first_ms = ev->time_ms;
        if (st->nsince > 0) {
            if ((b->since = grab(st, (size_t)st->nsince * sizeof(*b->since))) == NULL) {
                cu_free(b);
                c->b = NULL; /* no half-made baseline: the next event makes it again */
                return CU_E_NOMEM;
            }
            for (int i = 0; i < st->nsince; i++)
                b->since[i] = INT64_MIN;
        }
    }
    if (ev->time_ms < b->first_ms)
        b->first_ms = ev->time_ms;
    if (b->hours[(int)hour_of(ev->time_ms)] == UINT16_MAX) {
        /* halve the profile: its shape stays, its weight ages */
        b->events = 0;
        for (int h = 0; h < 24; h++) {
            b->hours[h] = (uint16_t)(b->hours[h] / 2);
            b->events += b->hours[h];
        }
    }
    b->hours[(int)hour_of(ev->time_ms)]++;
    b->events++;
    if (place_of(ev, &pl) && (!b->has_loc || ev->time_ms >= b->loc_ms)) {
        b->has_loc = true;
        b->loc_ms = ev->time_ms;
        b->lat = pl.lat;
        b->lon = pl.lon;
        b->loc_centroid = pl.centroid;
        memcpy(b->loc_country, pl.country, sizeof(b->loc_country));
    }
    if ((ev->has & CU_EVF_AMOUNT) && (ev->type == CU_EV_TRANSFER || ev->type == CU_EV_WITHDRAWAL)) {
        double x = log1p((double)ev->amount), d;
        b->amounts++;
        d = x - b->mean;
        b->mean += d / (double)b->amounts;
        b->m2 += d * (x - b->mean);
    }
    for (size_t i = 0; i < st->nfeatures; i++) {
        const struct cu_feature *f = &st->features[i];
        bool hit = false;
        if (f->kind == CU_FEAT_SINCE)
            hit = type_in(f->types, ev->type);
        else if (f->kind == CU_FEAT_SINCE_FIELD && ev->type == CU_EV_PROFILE_CHANGED)
            for (size_t k = 0; k < ev->nfields && !hit; k++)
                hit = strcmp(ev->fields[k], f->field_name) == 0;
        if (hit && ev->time_ms > b->since[st->fsince[i]])
            b->since[st->fsince[i]] = ev->time_ms;
    }
    for (int k = 0; rc == CU_OK && k < CU_KEY_COUNT; k++)
        if (st->track[k])
            rc = seen_add(st, b, (enum cu_key)k, ev);
    return rc;
}

enum cu_err cu_mon_state_add(struct cu_mon_state *st, const struct cu_mon_event *ev)
{
    enum cu_err rc = CU_OK;
    struct ent *c;
    uint64_t h;

    st->probe_ev = NULL;
    memset(st->plooked, 0, sizeof(st->plooked));
    for (size_t s = 0; rc == CU_OK && s < st->nspecs; s++) {
        const struct wspec *w = &st->specs[s];
        struct ent *e;
        if (!type_in(w->types, ev->type) || !ekey(st, ev, w->key, &h))
            continue;
        if ((e = find_or_add(st, w->key, h)) == NULL) {
            if (st->n >= st->keys_max)
                continue; /* at the cap: counted in dropped */
            return CU_E_NOMEM;
        }
        rc = w->distinct ? dset_add(st, e, w, ev) : ring_add(st, e, w, ev);
    }
    if (rc != CU_OK)
        return rc;
    if (ev->time_ms > st->now_ms)
        st->now_ms = ev->time_ms;
    (void)ekey(st, ev, CU_KEY_CUSTOMER, &h);
    if ((c = find_or_add(st, CU_KEY_CUSTOMER, h)) == NULL) {
        st->kc_ev = NULL;
        return st->n >= st->keys_max ? CU_OK : CU_E_NOMEM;
    }
    rc = base_add(st, c, ev);
    st->kc_ev = NULL; /* the next event starts afresh, even in the same memory */
    return rc;
}
