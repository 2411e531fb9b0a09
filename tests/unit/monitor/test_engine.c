/*
 * test_engine.c - the monitoring engine with the default rule pack (config/rules/default.rules):
 * every rule of the pack firing on the event that completes its pattern and not firing on a
 * near miss; a shadow set changing nothing of the live decisions; a state rebuilt from the
 * events (as after a restart) giving the same decisions as one that never stopped.
 */
#include "cu_test.h"

#include "monitor/engine.h"
#include "monitor/event.h"
#include "monitor/rules.h"

static struct cu_mon_types types;
static struct cu_ruleset *pack;

#define DAY 86400000LL
#define HOUR 3600000LL
#define MIN 60000LL
#define T0 1767571200000LL /* 2026-01-05T00:00:00Z */

struct spec {
    int type;
    int64_t t;
    const char *customer, *ip, *device, *country, *payee, *field;
    int64_t amount;
    double lat, lon;
    bool located;
};

static struct cu_mon_event make(const struct spec *s)
{
    struct cu_mon_event e;
    memset(&e, 0, sizeof(e));
    e.type = s->type;
    e.time_ms = s->t;
    snprintf(e.customer, sizeof(e.customer), "%s", s->customer ? s->customer : "c1");
    if (s->ip) {
        unsigned a, b, c, d;
        assert_int_equal(sscanf(s->ip, "%u.%u.%u.%u", &a, &b, &c, &d), 4);
        snprintf(e.ip, sizeof(e.ip), "%s", s->ip);
        e.ip_bin[10] = e.ip_bin[11] = 0xff;
        e.ip_bin[12] = (uint8_t)a;
        e.ip_bin[13] = (uint8_t)b;
        e.ip_bin[14] = (uint8_t)c;
        e.ip_bin[15] = (uint8_t)d;
        memcpy(e.key_ip, e.ip_bin, sizeof(e.key_ip));
        e.has |= CU_EVF_IP;
    }
    if (s->device) {
        snprintf(e.device, sizeof(e.device), "%s", s->device);
        e.has |= CU_EVF_DEVICE;
    }
    if (s->country) {
        snprintf(e.country, sizeof(e.country), "%s", s->country);
        e.has |= CU_EVF_COUNTRY;
    }
    if (s->payee) {
        snprintf(e.payee, sizeof(e.payee), "%s", s->payee);
        e.has |= CU_EVF_PAYEE;
    }
    if (s->amount > 0) {
        e.amount = s->amount;
        memcpy(e.currency, "EUR", 4);
        e.has |= CU_EVF_AMOUNT;
    }
    if (s->located) {
        e.lat = s->lat;
        e.lon = s->lon;
        e.has |= CU_EVF_LOCATION;
    }
    if (s->field) {
        e.nfields = 1;
        snprintf(e.fields[0], sizeof(e.fields[0]), "%s", s->field);
    }
    return e;
}

static struct cu_mon_engine eng;

static void fresh(void)
{
    cu_mon_engine_fini(&eng);
    assert_int_equal(cu_mon_engine_init(&eng, pack, NULL), CU_OK);
}

/* feed(s): decides and records one event; returns its verdict. */
static struct cu_verdict feed(struct spec s)
{
    struct cu_mon_event e = make(&s);
    struct cu_verdict v;
    assert_int_equal(cu_mon_engine_decide(&eng, &e, &v, NULL), CU_OK);
    return v;
}

static bool fired(const struct cu_verdict *v, const char *rule)
{
    for (size_t i = 0; i < v->nfired; i++)
        if (strcmp(cu_rules_name(pack, v->fired[i].rule), rule) == 0)
            return true;
    return false;
}

/* history(n, customer, device, country): n quiet events of a customer, one a day at 10:00,
 * ending the day before T0 + 30d: a grown habit. */
static void history(int n, const char *customer, const char *device, const char *country)
{
    for (int i = 0; i < n; i++)
        (void)feed((struct spec){.type = i % 2 ? CU_EV_TRANSFER : CU_EV_LOGIN_SUCCEEDED,
                                 .t = T0 + (30 - n + i) * DAY + 10 * HOUR,
                                 .customer = customer,
                                 .device = device,
                                 .country = country,
                                 .payee = i % 2 ? "p_home" : NULL,
                                 .amount = i % 2 ? 1000 + 37 * i : 0});
}

#define LATER (T0 + 30 * DAY)

static void test_unusual_hour_and_amount(void **state)
{
    (void)state;
    struct cu_verdict v;
    fresh();
    history(12, "c1", "d1", "GB");
    v = feed((struct spec){.type = CU_EV_TRANSFER,
                           .t = LATER + 3 * HOUR,
                           .customer = "c1",
                           .device = "d1",
                           .country = "GB",
                           .payee = "p_home",
                           .amount = 150000});
    assert_true(fired(&v, "large_amount_at_unusual_hour"));
    assert_true(fired(&v, "amount_far_above_usual"));
    assert_true(v.decision >= CU_DEC_STEP_UP);
    fresh();
    history(12, "c1", "d1", "GB");
    v = feed((struct spec){.type = CU_EV_TRANSFER,
                           .t = LATER + 10 * HOUR,
                           .customer = "c1",
                           .device = "d1",
                           .country = "GB",
                           .payee = "p_home",
                           .amount = 150000});
    assert_false(fired(&v, "large_amount_at_unusual_hour")); /* the customer's usual hour */
    assert_true(fired(&v, "amount_far_above_usual"));
    v = feed((struct spec){.type = CU_EV_TRANSFER,
                           .t = LATER + 10 * HOUR + MIN,
                           .customer = "c1",
                           .device = "d1",
                           .country = "GB",
                           .payee = "p_home",
                           .amount = 1300});
    assert_false(fired(&v, "amount_far_above_usual"));
    assert_int_equal(v.decision, CU_DEC_ALLOW);
}

static void test_sign_in_bursts(void **state)
{
    (void)state;
    struct cu_verdict v = {0};
    /* per account: the fifth failure in fifteen minutes, not the fourth */
    fresh();
    for (int i = 0; i < 5; i++) {
        v = feed((struct spec){.type = CU_EV_LOGIN_FAILED,
                               .t = T0 + i * 2 * MIN,
                               .customer = "c1",
                               .ip = "198.51.100.7"});
        assert_true(fired(&v, "failed_sign_ins_per_account") == (i == 4));
    }
    assert_true(v.actions & CU_ACT_LOCK_LOGIN);
    /* the same five over sixteen minutes: never five in fifteen (give or take a bucket) */
    fresh();
    for (int i = 0; i < 5; i++) {
        v = feed((struct spec){.type = CU_EV_LOGIN_FAILED,
                               .t = T0 + i * 5 * MIN,
                               .customer = "c1",
                               .ip = "198.51.100.7"});
        assert_false(fired(&v, "failed_sign_ins_per_account"));
    }
    /* per address: the twentieth failure in ten minutes, over many accounts */
    fresh();
    for (int i = 0; i < 20; i++) {
        char who[8];
        snprintf(who, sizeof(who), "c%d", i % 3);
        v = feed((struct spec){
            .type = CU_EV_LOGIN_FAILED, .t = T0 + i * 20000, .customer = who, .ip = "203.0.113.5"});
        assert_true(fired(&v, "failed_sign_ins_per_ip") == (i == 19));
    }
}

static void test_stuffing_and_spraying(void **state)
{
    (void)state;
    struct cu_verdict v = {0};
    char who[16], ip[32];
    /* one address failing on ten accounts; nine do not */
    fresh();
    for (int i = 0; i < 10; i++) {
        snprintf(who, sizeof(who), "victim%d", i);
        v = feed((struct spec){
            .type = CU_EV_LOGIN_FAILED, .t = T0 + i * MIN, .customer = who, .ip = "192.0.2.66"});
        assert_true(fired(&v, "credential_stuffing_one_source") == (i == 9));
    }
    assert_int_equal(v.decision, CU_DEC_DENY);
    /* one device, each time from another address */
    fresh();
    for (int i = 0; i < 10; i++) {
        snprintf(who, sizeof(who), "victim%d", i);
        snprintf(ip, sizeof(ip), "192.0.%d.66", 10 + i);
        v = feed((struct spec){.type = CU_EV_LOGIN_FAILED,
                               .t = T0 + i * MIN,
                               .customer = who,
                               .ip = ip,
                               .device = "bot"});
        assert_true(fired(&v, "credential_stuffing_one_source") == (i == 9));
    }
    /* twenty addresses of one /24 on twenty accounts; nineteen do not */
    fresh();
    for (int i = 0; i < 20; i++) {
        snprintf(who, sizeof(who), "victim%d", i);
        snprintf(ip, sizeof(ip), "198.18.7.%d", 1 + i);
        v = feed((struct spec){
            .type = CU_EV_LOGIN_FAILED, .t = T0 + i * MIN, .customer = who, .ip = ip});
        assert_true(fired(&v, "password_spraying_one_block") == (i == 19));
    }
}

static void test_global_rise(void **state)
{
    (void)state;
    struct cu_verdict v;
    char who[16], ip[32];
    for (int n = 199; n <= 200; n++) {
        fresh();
        for (int i = 0; i < n; i++) {
            snprintf(who, sizeof(who), "v%d", i);
            snprintf(ip, sizeof(ip), "10.%d.%d.1", i / 200, i % 200);
            (void)feed((struct spec){
                .type = CU_EV_LOGIN_FAILED, .t = T0 + i * 500, .customer = who, .ip = ip});
        }
        v = feed((struct spec){.type = CU_EV_LOGIN_SUCCEEDED,
                               .t = T0 + 2 * MIN,
                               .customer = "someone",
                               .ip = "10.99.0.1"});
        assert_true(fired(&v, "failures_rising_everywhere") == (n == 200));
    }
}

static void test_new_device_or_country_then_money(void **state)
{
    (void)state;
    struct cu_verdict v;
    fresh();
    history(12, "c1", "d1", "GB");
    v = feed((struct spec){.type = CU_EV_TRANSFER,
                           .t = LATER + 10 * HOUR,
                           .customer = "c1",
                           .device = "d2",
                           .country = "GB",
                           .payee = "p_home",
                           .amount = 100000});
    assert_true(fired(&v, "new_device_then_large_transfer"));
    assert_false(fired(&v, "new_country_then_large_transfer"));
    v = feed((struct spec){.type = CU_EV_PAYEE_ADDED,
                           .t = LATER + 11 * HOUR,
                           .customer = "c1",
                           .device = "d2",
                           .country = "GB",
                           .payee = "p_new"});
    assert_true(fired(&v, "new_device_then_new_payee"));
    fresh();
    history(12, "c1", "d1", "GB");
    v = feed((struct spec){.type = CU_EV_WITHDRAWAL,
                           .t = LATER + 10 * HOUR,
                           .customer = "c1",
                           .device = "d1",
                           .country = "FR",
                           .amount = 100000});
    assert_true(fired(&v, "new_country_then_large_transfer"));
    assert_false(fired(&v, "new_device_then_large_transfer"));
    /* the known device and country, or an amount under the line: nothing */
    v = feed((struct spec){.type = CU_EV_TRANSFER,
                           .t = LATER + 11 * HOUR,
                           .customer = "c1",
                           .device = "d1",
                           .country = "GB",
                           .payee = "p_home",
                           .amount = 100000});
    assert_false(fired(&v, "new_device_then_large_transfer") ||
                 fired(&v, "new_country_then_large_transfer"));
    v = feed((struct spec){.type = CU_EV_TRANSFER,
                           .t = LATER + 12 * HOUR,
                           .customer = "c1",
                           .device = "d9",
                           .country = "GB",
                           .payee = "p_home",
                           .amount = 99999});
    assert_false(fired(&v, "new_device_then_large_transfer"));
    v = feed((struct spec){.type = CU_EV_PAYEE_ADDED,
                           .t = LATER + 13 * HOUR,
                           .customer = "c1",
                           .device = "d1",
                           .payee = "p_other"});
    assert_false(fired(&v, "new_device_then_new_payee"));
}

static void test_impossible_travel(void **state)
{
    (void)state;
    struct cu_verdict v;
    fresh();
    (void)feed((struct spec){.type = CU_EV_LOGIN_SUCCEEDED,
                             .t = T0,
                             .located = true,
                             .lat = 51.5074,
                             .lon = -0.1278}); /* London */
    v = feed((struct spec){.type = CU_EV_LOGIN_SUCCEEDED,
                           .t = T0 + HOUR,
                           .located = true,
                           .lat = -33.8688,
                           .lon = 151.2093}); /* Sydney an hour later */
    assert_true(fired(&v, "impossible_travel"));
    fresh();
    (void)feed((struct spec){
        .type = CU_EV_LOGIN_SUCCEEDED, .t = T0, .located = true, .lat = 51.5074, .lon = -0.1278});
    v = feed((struct spec){.type = CU_EV_LOGIN_SUCCEEDED,
                           .t = T0 + 20 * MIN,
                           .located = true,
                           .lat = 48.8566,
                           .lon = 2.3522}); /* Paris: fast, but under 500 km */
    assert_false(fired(&v, "impossible_travel"));
    v = feed((struct spec){.type = CU_EV_LOGIN_SUCCEEDED,
                           .t = T0 + 20 * HOUR,
                           .located = true,
                           .lat = 40.7128,
                           .lon = -74.0060}); /* New York the next day */
    assert_false(fired(&v, "impossible_travel"));
}

static void test_changes_then_money(void **state)
{
    (void)state;
    struct cu_verdict v;
    fresh();
    history(12, "c1", "d1", "GB");
    (void)feed((struct spec){.type = CU_EV_PROFILE_CHANGED,
                             .t = LATER,
                             .customer = "c1",
                             .device = "d1",
                             .field = "email"});
    v = feed((struct spec){.type = CU_EV_WITHDRAWAL,
                           .t = LATER + DAY,
                           .customer = "c1",
                           .device = "d1",
                           .amount = 20000});
    assert_true(fired(&v, "contact_change_then_withdrawal"));
    assert_false(fired(&v, "takeover_new_device_contact")); /* a device known for weeks */
    v = feed((struct spec){.type = CU_EV_WITHDRAWAL,
                           .t = LATER + DAY + HOUR,
                           .customer = "c1",
                           .device = "d_new",
                           .amount = 20000});
    assert_true(fired(&v, "takeover_new_device_contact"));
    assert_true(v.decision >= CU_DEC_HOLD); /* held at least; with the change's 50, denied */
    v = feed((struct spec){.type = CU_EV_WITHDRAWAL,
                           .t = LATER + 3 * DAY,
                           .customer = "c1",
                           .device = "d1",
                           .amount = 20000});
    assert_false(fired(&v, "contact_change_then_withdrawal")); /* three days on */
    /* an address change is not a contact change */
    fresh();
    (void)feed((struct spec){.type = CU_EV_PROFILE_CHANGED, .t = T0, .field = "address"});
    v = feed((struct spec){.type = CU_EV_WITHDRAWAL, .t = T0 + HOUR, .amount = 20000});
    assert_false(fired(&v, "contact_change_then_withdrawal"));
    /* a password change, then money within a day; not two days on */
    fresh();
    (void)feed((struct spec){.type = CU_EV_PASSWORD_CHANGED, .t = T0});
    v = feed(
        (struct spec){.type = CU_EV_TRANSFER, .t = T0 + 20 * HOUR, .amount = 20000, .payee = "p"});
    assert_true(fired(&v, "credentials_changed_then_money"));
    v = feed(
        (struct spec){.type = CU_EV_TRANSFER, .t = T0 + 2 * DAY, .amount = 20000, .payee = "p"});
    assert_false(fired(&v, "credentials_changed_then_money"));
}

/* the customer's notices: a sign-in from a new device or country (not the first sign-in of
 * all, nor one from a device and country seen), a password change, a second factor changed */
static void test_telling_the_customer(void **state)
{
    (void)state;
    struct cu_verdict v = {0};
    fresh();
    v = feed(
        (struct spec){.type = CU_EV_LOGIN_SUCCEEDED, .t = T0, .device = "d1", .country = "GB"});
    assert_false(fired(&v, "tell_new_sign_in")); /* the first sign-in of the customer */
    v = feed((struct spec){
        .type = CU_EV_LOGIN_SUCCEEDED, .t = T0 + HOUR, .device = "d1", .country = "GB"});
    assert_false(fired(&v, "tell_new_sign_in"));
    v = feed((struct spec){
        .type = CU_EV_LOGIN_SUCCEEDED, .t = T0 + 2 * HOUR, .device = "d2", .country = "GB"});
    assert_true(fired(&v, "tell_new_sign_in"));
    assert_true(v.actions & CU_ACT_NOTIFY_CUSTOMER);
    assert_int_equal(v.decision, CU_DEC_ALLOW); /* it tells, it decides nothing */
    v = feed((struct spec){
        .type = CU_EV_LOGIN_SUCCEEDED, .t = T0 + 3 * HOUR, .device = "d1", .country = "FR"});
    assert_true(fired(&v, "tell_new_sign_in"));
    v = feed((struct spec){.type = CU_EV_PASSWORD_CHANGED, .t = T0 + 4 * HOUR});
    assert_true(fired(&v, "tell_password_changed"));
    assert_false(fired(&v, "tell_second_factor_changed"));
    v = feed((struct spec){.type = CU_EV_MFA_CHANGED, .t = T0 + 5 * HOUR});
    assert_true(fired(&v, "tell_second_factor_changed"));
    assert_false(fired(&v, "tell_password_changed"));
}

static void test_mules(void **state)
{
    (void)state;
    struct cu_verdict v = {0};
    char p[16], who[16];
    fresh();
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof(p), "p%d", i);
        v = feed((struct spec){.type = CU_EV_PAYEE_ADDED, .t = T0 + i * HOUR, .payee = p});
        assert_true(fired(&v, "many_new_payees") == (i == 3));
    }
    assert_int_equal(v.decision, CU_DEC_HOLD);
    fresh();
    for (int i = 0; i < 10; i++) {
        snprintf(who, sizeof(who), "c%d", i);
        v = feed((struct spec){.type = CU_EV_TRANSFER,
                               .t = T0 + i * HOUR,
                               .customer = who,
                               .payee = "mule",
                               .amount = 5000});
        assert_true(fired(&v, "fan_in_to_one_payee") == (i == 9));
    }
}

static void test_anomalous(void **state)
{
    (void)state;
    struct cu_verdict v;
    fresh();
    history(24, "c1", "d1", "GB");
    v = feed((struct spec){.type = CU_EV_TRANSFER,
                           .t = LATER + 10 * HOUR,
                           .customer = "c1",
                           .device = "d1",
                           .country = "GB",
                           .payee = "p_home",
                           .amount = 1200});
    assert_false(fired(&v, "anomalous_for_this_customer"));
    v = feed((struct spec){.type = CU_EV_TRANSFER,
                           .t = LATER + DAY + 3 * HOUR,
                           .customer = "c1",
                           .device = "d7",
                           .country = "RU",
                           .payee = "p_far",
                           .amount = 90000});
    assert_true(fired(&v, "anomalous_for_this_customer"));
}

/* A shadow set beside the live one changes none of the live decisions. */
static void test_shadow_has_no_effect(void **state)
{
    (void)state;
    struct cu_ruleset *shadow = NULL;
    struct cu_mon_engine a, b;
    char err[CU_RULES_ERR_BYTES];
    const char *text = "rule everything when true then deny, freeze_account 1d, "
                       "reason \"a shadow set that would stop everything\"\n"
                       "rule windows when count(customer, 1h) > 0 and count(ip, 5m) > 0 "
                       "then score 99, reason \"its own windows\"\n";
    assert_int_equal(cu_rules_compile(text, strlen(text), "shadow", &types, &shadow, err), CU_OK);
    assert_int_equal(cu_mon_engine_init(&a, pack, NULL), CU_OK);
    assert_int_equal(cu_mon_engine_init(&b, pack, shadow), CU_OK);
    for (int i = 0; i < 400; i++) {
        char who[16], ip[32];
        snprintf(who, sizeof(who), "c%d", i % 7);
        snprintf(ip, sizeof(ip), "192.0.2.%d", i % 3);
        struct spec s = {.type = i % 3 ? CU_EV_LOGIN_FAILED : CU_EV_TRANSFER,
                         .t = T0 + i * 20000,
                         .customer = who,
                         .ip = ip,
                         .amount = i % 3 ? 0 : 100000 + i,
                         .payee = i % 3 ? NULL : "p"};
        struct cu_mon_event e = make(&s);
        struct cu_verdict va, vb, vs;
        assert_int_equal(cu_mon_engine_decide(&a, &e, &va, NULL), CU_OK);
        assert_int_equal(cu_mon_engine_decide(&b, &e, &vb, &vs), CU_OK);
        assert_int_equal(va.decision, vb.decision);
        assert_int_equal(va.score, vb.score);
        assert_int_equal(va.actions, vb.actions);
        assert_int_equal(va.nfired, vb.nfired);
        assert_int_equal(vs.decision, CU_DEC_DENY); /* the shadow's own verdict */
    }
    cu_mon_engine_fini(&a);
    cu_mon_engine_fini(&b);
    cu_rules_free(shadow);
}

/* A state rebuilt from the stored events (recorded without deciding, as on a restart) gives
 * the same decisions afterwards as a state that never stopped. */
static void test_rebuilt_state_same_decisions(void **state)
{
    (void)state;
    enum { N = 3000, CUT = 2000 };
    struct cu_mon_event *evs = calloc(N, sizeof(*evs));
    struct cu_mon_engine whole, rebuilt;
    assert_non_null(evs);
    for (int i = 0; i < N; i++) {
        char who[16], ip[32], dev[16], pay[16];
        snprintf(who, sizeof(who), "c%d", (i * 7) % 37);
        snprintf(ip, sizeof(ip), "192.0.%d.%d", i % 5, (i * 3) % 11);
        snprintf(dev, sizeof(dev), "d%d", (i * 5) % 41);
        snprintf(pay, sizeof(pay), "p%d", (i * 11) % 23);
        static const int kinds[] = {CU_EV_LOGIN_SUCCEEDED, CU_EV_LOGIN_FAILED, CU_EV_TRANSFER,
                                    CU_EV_PAYEE_ADDED,     CU_EV_WITHDRAWAL,   CU_EV_LOGIN_FAILED,
                                    CU_EV_PROFILE_CHANGED, CU_EV_TRANSFER};
        struct spec s = {.type = kinds[i % 8],
                         .t = T0 + (int64_t)i * 97000,
                         .customer = who,
                         .ip = ip,
                         .device = dev,
                         .country = i % 13 ? "GB" : "FR",
                         .payee = pay,
                         .amount = 1000 + (i * 7919) % 200000,
                         .field = "email",
                         .located = i % 4 == 0,
                         .lat = 50.0 + (i % 9),
                         .lon = (double)(i % 17)};
        evs[i] = make(&s);
        if (evs[i].type != CU_EV_PROFILE_CHANGED)
            evs[i].nfields = 0;
    }
    assert_int_equal(cu_mon_engine_init(&whole, pack, NULL), CU_OK);
    assert_int_equal(cu_mon_engine_init(&rebuilt, pack, NULL), CU_OK);
    for (int i = 0; i < CUT; i++) {
        struct cu_verdict v;
        assert_int_equal(cu_mon_engine_decide(&whole, &evs[i], &v, NULL), CU_OK);
        assert_int_equal(cu_mon_state_add(rebuilt.st, &evs[i]), CU_OK);
    }
    int differ = 0, flagged = 0;
    for (int i = CUT; i < N; i++) {
        struct cu_verdict a, b;
        assert_int_equal(cu_mon_engine_decide(&whole, &evs[i], &a, NULL), CU_OK);
        assert_int_equal(cu_mon_engine_decide(&rebuilt, &evs[i], &b, NULL), CU_OK);
        differ += a.decision != b.decision || a.score != b.score || a.nfired != b.nfired;
        flagged += a.nfired > 0;
    }
    assert_int_equal(differ, 0);
    assert_true(flagged > 0); /* the comparison saw rules fire, not only silence */
    cu_mon_engine_fini(&whole);
    cu_mon_engine_fini(&rebuilt);
    free(evs);
}

static int setup(void **state)
{
    char err[CU_RULES_ERR_BYTES];
    (void)state;
    cu_mon_types_init(&types);
    if (cu_rules_compile(cu_rules_default_pack, cu_rules_default_pack_len, "default.rules", &types,
                         &pack, err) != CU_OK) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    return cu_mon_engine_init(&eng, pack, NULL) == CU_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    cu_mon_engine_fini(&eng);
    cu_rules_free(pack);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unusual_hour_and_amount),
        cmocka_unit_test(test_sign_in_bursts),
        cmocka_unit_test(test_stuffing_and_spraying),
        cmocka_unit_test(test_global_rise),
        cmocka_unit_test(test_new_device_or_country_then_money),
        cmocka_unit_test(test_impossible_travel),
        cmocka_unit_test(test_changes_then_money),
        cmocka_unit_test(test_mules),
        cmocka_unit_test(test_telling_the_customer),
        cmocka_unit_test(test_anomalous),
        cmocka_unit_test(test_shadow_has_no_effect),
        cmocka_unit_test(test_rebuilt_state_same_decisions),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
