/*
 * test_state.c - the monitoring state: windows at their bucket edges as time moves, distinct
 * counts, baselines (hour profile, amount z-score, first seen, since, travel) against values
 * computed by hand, and the anomaly score's maths.
 */
#include <math.h>

#include "cu_test.h"

#include "monitor/event.h"
#include "monitor/rules.h"
#include "monitor/state.h"
#include "monitor/countries.h"
#include "base/mem.h"

static struct cu_mon_types types;

/* The time of 2026-01-05T00:00:00Z, and the offset in ms of each test event from it. */
#define T0 1767571200000LL

struct fx {
    struct cu_ruleset *rs;
    struct cu_mon_state *st;
};

static void setup_rules(struct fx *f, const char *text)
{
    char err[CU_RULES_ERR_BYTES];
    const struct cu_feature *feat;
    size_t n;
    assert_int_equal(cu_rules_compile(text, strlen(text), "t", &types, &f->rs, err), CU_OK);
    n = cu_rules_features(f->rs, &feat);
    assert_int_equal(cu_mon_state_new(feat, n, &f->st), CU_OK);
}

static void teardown_rules(struct fx *f)
{
    cu_mon_state_free(f->st);
    cu_rules_free(f->rs);
}

static struct cu_mon_event ev_at(int type, int64_t ms, const char *customer)
{
    struct cu_mon_event e;
    memset(&e, 0, sizeof(e));
    e.type = type;
    e.time_ms = ms;
    snprintf(e.customer, sizeof(e.customer), "%s", customer);
    return e;
}

static void with_ip(struct cu_mon_event *e, const char *ip, unsigned a, unsigned b, unsigned c,
                    unsigned d)
{
    snprintf(e->ip, sizeof(e->ip), "%s", ip);
    memset(e->ip_bin, 0, sizeof(e->ip_bin));
    e->ip_bin[10] = e->ip_bin[11] = 0xff;
    e->ip_bin[12] = (uint8_t)a;
    e->ip_bin[13] = (uint8_t)b;
    e->ip_bin[14] = (uint8_t)c;
    e->ip_bin[15] = (uint8_t)d;
    memcpy(e->key_ip, e->ip_bin, sizeof(e->key_ip));
    e->has |= CU_EVF_IP;
}

static void with_amount(struct cu_mon_event *e, int64_t amount)
{
    e->amount = amount;
    memcpy(e->currency, "EUR", 4);
    e->has |= CU_EVF_AMOUNT;
}

/* value(f, ev, i, &v): feature i for ev as the rules would see it (before ev is added). */
static bool value(struct fx *f, const struct cu_mon_event *ev, size_t i, double *v)
{
    struct cu_mon_probe p;
    struct cu_feature_source src;
    cu_mon_state_source(f->st, ev, &p, &src);
    return src.value(src.arg, i, v);
}

static void add(struct fx *f, const struct cu_mon_event *ev)
{
    assert_int_equal(cu_mon_state_add(f->st, ev), CU_OK);
}

/* A 16-minute window has 1-minute buckets: an event counts while it lies in the 16 buckets
 * ending with the asking event's own, so exactly until the bucket 16 minutes on begins. */
static void test_window_edges(void **state)
{
    (void)state;
    struct fx f;
    double v = 0;
    setup_rules(&f, "rule r when count(ip, 16m, \"login_failed\") > 1 then reason \"x\"\n"
                    "rule s when sum(customer, 16m) > 1 then reason \"y\"\n");
    struct cu_mon_event a = ev_at(CU_EV_LOGIN_FAILED, T0 + 30000, "c1"); /* 00:00:30 */
    with_ip(&a, "203.0.113.9", 203, 0, 113, 9);
    with_amount(&a, 7);
    assert_true(value(&f, &a, 0, &v));
    assert_true(v == 1.0); /* the event itself */
    add(&f, &a);

    struct cu_mon_event b = a;
    b.time_ms = T0 + 15 * 60000 + 59999; /* 00:15:59.999: the 16th bucket */
    assert_true(value(&f, &b, 0, &v));
    assert_true(v == 2.0);
    assert_true(value(&f, &b, 1, &v));
    assert_true(v == 14.0);      /* the sum: 7 + this event's 7 */
    b.time_ms = T0 + 16 * 60000; /* 00:16:00: the first bucket has left the window */
    assert_true(value(&f, &b, 0, &v));
    assert_true(v == 1.0);

    /* another address: its own count; another type: not counted, the sum still is */
    struct cu_mon_event c = a;
    with_ip(&c, "203.0.113.10", 203, 0, 113, 10);
    c.time_ms = T0 + 60000;
    assert_true(value(&f, &c, 0, &v));
    assert_true(v == 1.0);
    c.type = CU_EV_LOGIN_SUCCEEDED;
    with_ip(&c, "203.0.113.9", 203, 0, 113, 9);
    assert_true(value(&f, &c, 0, &v));
    assert_true(v == 1.0); /* a's failure only: this success does not count itself */
    /* no address: the window has no key, the value is missing */
    struct cu_mon_event d = ev_at(CU_EV_LOGIN_FAILED, T0 + 60000, "c1");
    assert_false(value(&f, &d, 0, &v));

    /* a late event is counted in its own bucket; one older than the window is dropped */
    for (int i = 0; i < 5; i++) {
        struct cu_mon_event e = a;
        e.time_ms = T0 + (int64_t)i * 4 * 60000 + 1000; /* 00:00:01, 00:04:01 ... 00:16:01 */
        add(&f, &e);
    }
    struct cu_mon_event late = a;
    late.time_ms = T0 + 2 * 60000;
    add(&f, &late);
    struct cu_mon_event ask = a;
    ask.time_ms = T0 + 17 * 60000; /* 00:17: buckets 2 .. 17 */
    assert_true(value(&f, &ask, 0, &v));
    /* in buckets 2..17: late (2), 00:04:01, 00:08:01, 00:12:01, 00:16:01, itself */
    assert_true(v == 6.0);
    teardown_rules(&f);
}

static void test_distinct(void **state)
{
    (void)state;
    struct fx f;
    double v = 0;
    setup_rules(&f, "rule r when distinct(ip, customer, 1h) > 5 then reason \"x\"\n");
    char name[16];
    for (int i = 0; i < 10; i++) {
        snprintf(name, sizeof(name), "c%d", i % 7); /* 7 customers, three of them twice */
        struct cu_mon_event e = ev_at(CU_EV_LOGIN_FAILED, T0 + i * 1000, name);
        with_ip(&e, "198.51.100.1", 198, 51, 100, 1);
        add(&f, &e);
    }
    struct cu_mon_event q = ev_at(CU_EV_LOGIN_FAILED, T0 + 20000, "c3");
    with_ip(&q, "198.51.100.1", 198, 51, 100, 1);
    assert_true(value(&f, &q, 0, &v));
    assert_true(v == 7.0); /* c3 is among them already */
    snprintf(q.customer, sizeof(q.customer), "c99");
    assert_true(value(&f, &q, 0, &v));
    assert_true(v == 8.0);
    q.time_ms = T0 + 3600000 + 20000; /* an hour on: all gone but this one */
    assert_true(value(&f, &q, 0, &v));
    assert_true(v == 1.0);
    /* past the cap, the count stops at the cap (plus this event) */
    for (int i = 0; i < 100; i++) {
        snprintf(name, sizeof(name), "x%d", i);
        struct cu_mon_event e = ev_at(CU_EV_LOGIN_FAILED, T0 + 30000 + i, name);
        with_ip(&e, "198.51.100.1", 198, 51, 100, 1);
        add(&f, &e);
    }
    q.time_ms = T0 + 40000;
    snprintf(q.customer, sizeof(q.customer), "fresh");
    assert_true(value(&f, &q, 0, &v));
    assert_true(v == (double)CU_MON_DISTINCT_MAX + 1);
    teardown_rules(&f);
}

/* Baselines against hand-computed values. */
static void test_baselines(void **state)
{
    (void)state;
    struct fx f;
    double v = 0;
    setup_rules(&f, "rule a when customer.hour_share(event.time) < 1 and "
                    "customer.amount_z(event.amount) > 0 and customer.events > 0 and "
                    "customer.age > 0s and first_seen(device) and since(\"password_changed\") "
                    "> 0s and since_changed(\"email\") > 0s and travel_kmh() > 0 "
                    "and known_for(device) > 1h and travel_km() > 0 then reason \"x\"\n");
    /* features in order: hour_share 0, amount_z 1, events 2, age 3, first_seen 4, since 5,
     * since_changed 6, travel 7, known_for 8, travel_km 9 */
    struct cu_mon_event q = ev_at(CU_EV_TRANSFER, T0 + 9 * 3600000, "c1");
    with_amount(&q, 100);
    assert_false(value(&f, &q, 0, &v)); /* no history: no hour share */
    assert_false(value(&f, &q, 1, &v));
    assert_true(value(&f, &q, 2, &v) && v == 0.0);
    assert_true(value(&f, &q, 3, &v) && v == 0.0);

    /* three transfers at 09:xx of 100, 1000 and 10000, one login at 22:00 */
    int64_t amounts[3] = {100, 1000, 10000};
    for (int i = 0; i < 3; i++) {
        struct cu_mon_event e = ev_at(CU_EV_TRANSFER, T0 + 9 * 3600000 + i * 60000, "c1");
        with_amount(&e, amounts[i]);
        snprintf(e.device, sizeof(e.device), "phone");
        e.has |= CU_EVF_DEVICE;
        add(&f, &e);
    }
    struct cu_mon_event login = ev_at(CU_EV_LOGIN_SUCCEEDED, T0 + 22 * 3600000, "c1");
    login.lat = 51.5074;
    login.lon = -0.1278; /* London */
    login.has |= CU_EVF_LOCATION;
    add(&f, &login);

    q.time_ms = T0 + 86400000 + 9 * 3600000 + 30 * 60000; /* the next day, 09:30 */
    assert_true(value(&f, &q, 0, &v));
    assert_true(fabs(v - 0.75) < 1e-12); /* 3 of 4 past events at nine */
    q.time_ms = T0 + 86400000 + 3 * 3600000;
    assert_true(value(&f, &q, 0, &v) && v == 0.0);
    assert_true(value(&f, &q, 2, &v) && v == 4.0);
    assert_true(value(&f, &q, 3, &v) && v == (double)(86400000 + 3 * 3600000 - 9 * 3600000));

    /* z of ln(1+x) among ln 101, ln 1001, ln 10001: mean m, sample deviation s */
    double x[3] = {log(101.0), log(1001.0), log(10001.0)};
    double m = (x[0] + x[1] + x[2]) / 3, s = 0;
    for (int i = 0; i < 3; i++)
        s += (x[i] - m) * (x[i] - m);
    s = sqrt(s / 2);
    with_amount(&q, 1000000);
    assert_true(value(&f, &q, 1, &v));
    assert_true(fabs(v - (log(1000001.0) - m) / s) < 1e-9);

    /* first seen: the phone is known, a tablet is not, no device is missing */
    snprintf(q.device, sizeof(q.device), "phone");
    q.has |= CU_EVF_DEVICE;
    assert_true(value(&f, &q, 4, &v) && v == 0.0);
    assert_true(value(&f, &q, 8, &v));
    assert_true(v == (double)(q.time_ms - (T0 + 9 * 3600000))); /* since its first use */
    snprintf(q.device, sizeof(q.device), "tablet");
    assert_true(value(&f, &q, 4, &v) && v == 1.0);
    assert_true(value(&f, &q, 8, &v) && v == 0.0);
    q.has &= ~(unsigned)CU_EVF_DEVICE;
    assert_false(value(&f, &q, 4, &v));

    /* since: missing until such an event, then the time since the latest */
    assert_false(value(&f, &q, 5, &v));
    struct cu_mon_event pw = ev_at(CU_EV_PASSWORD_CHANGED, T0 + 86400000, "c1");
    add(&f, &pw);
    struct cu_mon_event pc = ev_at(CU_EV_PROFILE_CHANGED, T0 + 86400000 + 1000, "c1");
    pc.nfields = 2;
    snprintf(pc.fields[0], sizeof(pc.fields[0]), "phone");
    snprintf(pc.fields[1], sizeof(pc.fields[1]), "email");
    add(&f, &pc);
    assert_true(value(&f, &q, 5, &v) && v == (double)(3 * 3600000));
    assert_true(value(&f, &q, 6, &v) && v == (double)(3 * 3600000 - 1000));

    /* travel: London at 22:00, Paris (343.5 km by the haversine) at 23:00 of the same day */
    struct cu_mon_event paris = ev_at(CU_EV_LOGIN_SUCCEEDED, T0 + 23 * 3600000, "c1");
    paris.lat = 48.8566;
    paris.lon = 2.3522;
    paris.has |= CU_EVF_LOCATION;
    double km = cu_mon_distance_km(51.5074, -0.1278, 48.8566, 2.3522);
    assert_true(fabs(km - 343.5) < 0.5);
    assert_true(value(&f, &paris, 7, &v));
    assert_true(fabs(v - km) < 1e-9); /* one hour */
    assert_true(value(&f, &paris, 9, &v));
    assert_true(fabs(v - km) < 1e-9);
    teardown_rules(&f);
}

/* Travel when an event has only a country: its centroid stands for it; within one country a
 * centroid is no journey; an unknown country is no place. */
static void test_travel_by_country(void **state)
{
    (void)state;
    struct fx f;
    double v = 0, gb_lat, gb_lon, fr_lat, fr_lon;
    setup_rules(&f, "rule a when travel_km() > 0 and travel_kmh() > 0 then reason \"x\"\n");
    assert_true(cu_country_centroid("GB", &gb_lat, &gb_lon));
    assert_true(cu_country_centroid("FR", &fr_lat, &fr_lon));

    struct cu_mon_event london = ev_at(CU_EV_LOGIN_SUCCEEDED, T0, "c1");
    london.lat = 51.5074;
    london.lon = -0.1278;
    london.has |= CU_EVF_LOCATION | CU_EVF_COUNTRY;
    snprintf(london.country, sizeof(london.country), "GB");
    add(&f, &london);
    /* ten minutes on, in GB by country only: no journey (not London to the middle of GB) */
    struct cu_mon_event gb = ev_at(CU_EV_LOGIN_SUCCEEDED, T0 + 600000, "c1");
    gb.has |= CU_EVF_COUNTRY;
    snprintf(gb.country, sizeof(gb.country), "GB");
    assert_true(value(&f, &gb, 0, &v) && v == 0.0);
    add(&f, &gb);
    /* an hour later, in FR by country only: the centroids' distance, in an hour */
    struct cu_mon_event fr = ev_at(CU_EV_LOGIN_SUCCEEDED, T0 + 600000 + 3600000, "c1");
    fr.has |= CU_EVF_COUNTRY;
    snprintf(fr.country, sizeof(fr.country), "FR");
    double km = cu_mon_distance_km(gb_lat, gb_lon, fr_lat, fr_lon);
    assert_true(km > 500 && km < 1200);
    assert_true(value(&f, &fr, 0, &v) && fabs(v - km) < 1e-9);
    assert_true(value(&f, &fr, 1, &v) && fabs(v - km) < 1e-6);
    /* a country the table does not know is no place: missing */
    snprintf(fr.country, sizeof(fr.country), "ZZ");
    assert_false(value(&f, &fr, 0, &v));
    teardown_rules(&f);
}

/* An event dated far ahead does not blind a key's windows to the present; a late event is
 * counted for events near it and takes nothing from the present; sums saturate. */
static void test_times_out_of_order(void **state)
{
    (void)state;
    struct fx f;
    double v = 0;
    setup_rules(&f, "rule r when count(customer, 16m) > 1 and sum(customer, 16m) > 1 "
                    "and distinct(customer, device, 16m) > 0 and travel_kmh() > 0 "
                    "then reason \"x\"\n");
    struct cu_mon_event far = ev_at(CU_EV_LOGIN_FAILED, 253402214400000LL, "c1"); /* 9999 */
    add(&f, &far);
    for (int i = 0; i < 40; i++) {
        struct cu_mon_event e = ev_at(CU_EV_LOGIN_FAILED, T0 + i * 1000, "c1");
        add(&f, &e);
    }
    struct cu_mon_event q = ev_at(CU_EV_LOGIN_FAILED, T0 + 41000, "c1");
    assert_true(value(&f, &q, 0, &v));
    assert_true(v == 41.0); /* the forty before it and itself */
    /* a late device does not push a newer one out of the distinct set */
    struct cu_mon_event a = ev_at(CU_EV_TRANSFER, T0 + 2 * 60000, "c2"), b = a, c = a;
    snprintf(a.device, sizeof(a.device), "A");
    a.has |= CU_EVF_DEVICE;
    add(&f, &a);
    b.time_ms = T0 + 60000;
    snprintf(b.device, sizeof(b.device), "B");
    b.has |= CU_EVF_DEVICE;
    add(&f, &b);
    c.time_ms = T0 + 2 * 60000 + 1000;
    snprintf(c.device, sizeof(c.device), "C");
    c.has |= CU_EVF_DEVICE;
    assert_true(value(&f, &c, 2, &v));
    assert_true(v == 3.0);
    /* sums saturate instead of wrapping */
    for (int i = 0; i < 9300; i++) {
        struct cu_mon_event e = ev_at(CU_EV_TRANSFER, T0, "rich");
        with_amount(&e, CU_MON_AMOUNT_MAX);
        add(&f, &e);
    }
    struct cu_mon_event r = ev_at(CU_EV_TRANSFER, T0 + 1000, "rich");
    with_amount(&r, CU_MON_AMOUNT_MAX);
    assert_true(value(&f, &r, 1, &v));
    assert_true(v == (double)INT64_MAX);
    /* travel from a place recorded later than the event: missing, not a huge speed */
    struct cu_mon_event london = ev_at(CU_EV_LOGIN_SUCCEEDED, T0 + 3600000, "c3");
    london.lat = 51.5;
    london.lon = -0.13;
    london.has |= CU_EVF_LOCATION;
    add(&f, &london);
    struct cu_mon_event paris = ev_at(CU_EV_LOGIN_SUCCEEDED, T0, "c3");
    paris.lat = 48.86;
    paris.lon = 2.35;
    paris.has |= CU_EVF_LOCATION;
    assert_false(value(&f, &paris, 3, &v));
    teardown_rules(&f);
}

/* A failed allocation while a customer's baseline is made leaves no half-made baseline: the
 * next event makes it whole. */
static void test_allocation_failure(void **state)
{
    (void)state;
    struct fx f;
    double v = 0;
    setup_rules(&f, "rule r when since(\"password_changed\") < 1d then reason \"x\"\n");
    struct cu_mon_event e = ev_at(CU_EV_PASSWORD_CHANGED, T0, "c1");
    bool failed_once = false;
    for (long k = 1; k < 20; k++) {
        cu_mem_fail_at(k);
        enum cu_err rc = cu_mon_state_add(f.st, &e);
        cu_mem_fail_at(0);
        if (rc == CU_OK) /* made with fewer than k allocations: every failure point was seen */
            break;
        assert_int_equal(rc, CU_E_NOMEM);
        failed_once = true;
        e.time_ms += 1000;
        add(&f, &e); /* whole now */
        struct cu_mon_event q = ev_at(CU_EV_WITHDRAWAL, e.time_ms + 1000, "c1");
        assert_true(value(&f, &q, 0, &v));
        assert_true(v == 1000.0);
        teardown_rules(&f);
        setup_rules(&f, "rule r when since(\"password_changed\") < 1d then reason \"x\"\n");
        e.time_ms = T0;
    }
    assert_true(failed_once);
    teardown_rules(&f);
}

/* Keys whose windows have all passed are forgotten (an attacker's random devices do not pile
 * up), and past the key cap new keys are not recorded while known ones still are. */
static void test_memory_bounded(void **state)
{
    (void)state;
    struct fx f;
    struct cu_mon_state_stats st;
    char dev[32];
    double v = 0;
    setup_rules(&f, "rule r when count(device, 1m) > 3 and count(customer, 1h) > 1 "
                    "then reason \"x\"\n");
    for (int i = 0; i < 300000; i++) {
        struct cu_mon_event e = ev_at(CU_EV_LOGIN_FAILED, T0 + (int64_t)i * 10, "c1");
        snprintf(e.device, sizeof(e.device), "random-%d", i);
        e.has |= CU_EVF_DEVICE;
        add(&f, &e);
    }
    cu_mon_state_stats(f.st, &st);
    /* a minute holds 6,000 of them; the table is swept when it fills */
    assert_true(st.keys[CU_KEY_DEVICE] < 30000);
    assert_true(st.swept > 250000);
    assert_true(st.bytes < 8u << 20);
    teardown_rules(&f);

    setup_rules(&f, "rule r when count(device, 1h) > 3 and count(customer, 1h) > 1 "
                    "then reason \"x\"\n");
    cu_mon_state_set_keys_max(f.st, 1000);
    for (int i = 0; i < 5000; i++) {
        struct cu_mon_event e = ev_at(CU_EV_LOGIN_FAILED, T0 + i, "c1");
        snprintf(dev, sizeof(dev), "d%d", i);
        snprintf(e.device, sizeof(e.device), "%s", dev);
        e.has |= CU_EVF_DEVICE;
        add(&f, &e);
    }
    cu_mon_state_stats(f.st, &st);
    assert_true(st.keys[CU_KEY_DEVICE] + st.keys[CU_KEY_CUSTOMER] <= 1000);
    assert_true(st.dropped >= 4000);
    struct cu_mon_event q = ev_at(CU_EV_LOGIN_FAILED, T0 + 6000, "c1");
    assert_true(value(&f, &q, 1, &v)); /* the customer, known before the cap, still counts */
    assert_true(v == 5001.0);
    teardown_rules(&f);
}

static void test_anomaly_maths(void **state)
{
    (void)state;
    /* nothing rare: 0; with no history: 0 whatever is rare */
    assert_true(cu_mon_anomaly(0, 0, 0, 0, 0, 100) == 0.0);
    assert_true(cu_mon_anomaly(1, 1, 1, 1, 1, 0) == 0.0);
    /* one rarity alone is its weight: hour 0.5, amount 0.6, device 0.4, country 0.5, payee 0.3 */
    assert_true(fabs(cu_mon_anomaly(1, 0, 0, 0, 0, 20) - 0.5) < 1e-12);
    assert_true(fabs(cu_mon_anomaly(0, 1, 0, 0, 0, 20) - 0.6) < 1e-12);
    /* together, a noisy-or: 1 - (1 - 0.5)(1 - 0.6)(1 - 0.4)(1 - 0.5)(1 - 0.3) = 0.958 */
    assert_true(fabs(cu_mon_anomaly(1, 1, 1, 1, 1, 20) - 0.958) < 1e-12);
    /* history under 20 events scales it down: 10 events, half */
    assert_true(fabs(cu_mon_anomaly(1, 1, 1, 1, 1, 10) - 0.479) < 1e-12);
    /* rarities are clamped to [0, 1] */
    assert_true(fabs(cu_mon_anomaly(7, -3, 0, 0, 0, 50) - 0.5) < 1e-12);
}

/* The memory a customer costs, with the windows and baselines of a realistic rule set. */
static void test_memory_per_customer(void **state)
{
    (void)state;
    struct fx f;
    struct cu_mon_state_stats s0, s1;
    setup_rules(&f, "rule a when count(customer, 1h) > 5 and sum(customer, 1d, \"transfer\") > 9"
                    " and distinct(customer, payee, 1d) > 3 and anomaly() > 0.5"
                    " and since(\"password_changed\") < 1d then reason \"x\"\n");
    cu_mon_state_stats(f.st, &s0);
    char name[16];
    for (int c = 0; c < 1000; c++) {
        snprintf(name, sizeof(name), "c%d", c);
        for (int i = 0; i < 20; i++) {
            struct cu_mon_event e = ev_at(i % 2 ? CU_EV_TRANSFER : CU_EV_LOGIN_SUCCEEDED,
                                          T0 + (int64_t)i * 3600000 * 7, name);
            with_amount(&e, 1000 + i);
            snprintf(e.payee, sizeof(e.payee), "p%d", i % 3);
            snprintf(e.device, sizeof(e.device), "d%d", c);
            memcpy(e.country, "GB", 3);
            e.has |= CU_EVF_PAYEE | CU_EVF_DEVICE | CU_EVF_COUNTRY;
            add(&f, &e);
        }
    }
    cu_mon_state_stats(f.st, &s1);
    assert_int_equal(s1.keys[CU_KEY_CUSTOMER], 1000);
    double per = (double)(s1.bytes - s0.bytes) / 1000.0;
    print_message("state: %.0f bytes a customer\n", per);
    assert_true(per <= 1024.0);
    teardown_rules(&f);
}

int main(void)
{
    cu_mon_types_init(&types);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_window_edges),        cmocka_unit_test(test_distinct),
        cmocka_unit_test(test_baselines),           cmocka_unit_test(test_travel_by_country),
        cmocka_unit_test(test_times_out_of_order),  cmocka_unit_test(test_allocation_failure),
        cmocka_unit_test(test_memory_bounded),      cmocka_unit_test(test_anomaly_maths),
        cmocka_unit_test(test_memory_per_customer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
