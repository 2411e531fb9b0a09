/*
 * test_event.c - the monitoring event's parser and canonical text.
 */
#include "cu_test.h"

#include "base/buf.h"
#include "monitor/event.h"

static struct cu_mon_types types;

static enum cu_err parse(const char *text, struct cu_mon_event *ev, char err[CU_MON_ERR_BYTES])
{
    struct cu_mon_parse_opts o = {&types, false, 0, 0};
    return cu_mon_event_parse(text, strlen(text), &o, ev, err);
}

/* bad(text, want): the event is refused and the message holds want. */
static void bad(const char *text, const char *want)
{
    struct cu_mon_event ev;
    char err[CU_MON_ERR_BYTES];
    enum cu_err rc = parse(text, &ev, err);
    if (rc == CU_OK || strstr(err, want) == NULL)
        fail_msg("%s: got %d '%s', wanted an error with '%s'", text, rc, err, want);
}

static void test_full_event(void **state)
{
    (void)state;
    struct cu_mon_event ev;
    char err[CU_MON_ERR_BYTES];
    const char *text =
        "{\"type\": \"transfer\", \"time\": \"2026-01-05T02:14:09Z\", \"customer\": \"c000123\",\n"
        " \"ip\": \"81.2.69.160\", \"device\": \"d0001230\", \"country\": \"GB\", \"lat\": 51.51,"
        " \"lon\": -0.13, \"amount\": 125000, \"currency\": \"GBP\", \"payee\": \"p0001231\","
        " \"channel\": \"app\", \"attributes\": {\"merchant_category\": \"6011\"}}";
    assert_int_equal(parse(text, &ev, err), CU_OK);
    assert_int_equal(ev.type, CU_EV_TRANSFER);
    assert_int_equal(ev.time_ms, 1767579249000LL);
    assert_string_equal(ev.customer, "c000123");
    assert_string_equal(ev.ip, "81.2.69.160");
    assert_int_equal(ev.ip_bin[10], 0xff); /* IPv4-mapped */
    assert_int_equal(ev.ip_bin[15], 160);
    assert_string_equal(ev.country, "GB");
    assert_true(ev.lat == 51.51 && ev.lon == -0.13);
    assert_int_equal(ev.amount, 125000);
    assert_string_equal(ev.currency, "GBP");
    assert_string_equal(cu_mon_event_attr(&ev, "merchant_category"), "6011");
    assert_null(cu_mon_event_attr(&ev, "other"));
    assert_int_equal(ev.has, CU_EVF_IP | CU_EVF_DEVICE | CU_EVF_COUNTRY | CU_EVF_LOCATION |
                                 CU_EVF_AMOUNT | CU_EVF_PAYEE | CU_EVF_CHANNEL);
}

/* The canonical text reads back as the same event, and writing that gives the same text. */
static void test_canonical_round_trip(void **state)
{
    (void)state;
    const char *texts[] = {
        "{\"customer\": \"c1\", \"time\": \"2026-01-05T02:14:09.5+01:00\", \"type\": "
        "\"profile_changed\", \"fields\": [\"email\", \"phone\"], \"lat\": 0.1, \"lon\": 1e2}",
        "{\"type\":\"login_failed\",\"time\":\"2026-01-05T02:14:09Z\",\"customer\":\"\\u00e9\\ud83d"
        "\\ude00 \\\"q\\\"\",\"ip\":\"2001:db8::1\",\"attributes\":{\"k\":\"\"}}",
    };
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        struct cu_mon_event a, b;
        struct cu_buf t1, t2;
        char err[CU_MON_ERR_BYTES];
        cu_buf_init(&t1, 1 << 16);
        cu_buf_init(&t2, 1 << 16);
        assert_int_equal(parse(texts[i], &a, err), CU_OK);
        assert_int_equal(cu_mon_event_write(&a, &types, &t1), CU_OK);
        assert_int_equal(parse(cu_buf_cstr(&t1), &b, err), CU_OK);
        assert_int_equal(cu_mon_event_write(&b, &types, &t2), CU_OK);
        assert_string_equal(cu_buf_cstr(&t1), cu_buf_cstr(&t2));
        assert_int_equal(a.time_ms, b.time_ms);
        assert_string_equal(a.customer, b.customer);
        assert_true(a.lat == b.lat && a.lon == b.lon);
        cu_buf_free(&t1);
        cu_buf_free(&t2);
    }
    struct cu_mon_event e;
    char err[CU_MON_ERR_BYTES];
    struct cu_buf t;
    cu_buf_init(&t, 1 << 16);
    assert_int_equal(parse(texts[0], &e, err), CU_OK);
    assert_int_equal(cu_mon_event_write(&e, &types, &t), CU_OK);
    assert_string_equal(cu_buf_cstr(&t),
                        "{\"type\":\"profile_changed\",\"time\":\"2026-01-05T01:14:09.500Z\","
                        "\"customer\":\"c1\",\"lat\":0.1,\"lon\":100,\"fields\":[\"email\","
                        "\"phone\"]}");
    cu_buf_free(&t);
}

static void test_refused(void **state)
{
    (void)state;
    const char *base = "\"time\": \"2026-01-05T02:14:09Z\", \"customer\": \"c1\"";
    char t[512];
#define WITH(extra) (snprintf(t, sizeof(t), "{\"type\": \"transfer\", %s%s}", base, extra), t)
    bad(WITH(", \"colour\": \"red\""), "unknown field 'colour'");
    bad(WITH(", \"ip\": \"1.2.3.4\", \"ip\": \"1.2.3.4\""), "field 'ip' is given twice");
    bad(WITH(", \"amount\": 100"), "field 'amount' needs 'currency'");
    bad(WITH(", \"currency\": \"EUR\""), "'currency' goes with 'amount'");
    bad(WITH(", \"amount\": 1.5, \"currency\": \"EUR\""), "must be an integer of minor units");
    bad(WITH(", \"amount\": -1, \"currency\": \"EUR\""), "from 0 to 10^15");
    bad(WITH(", \"amount\": 1000000000000001, \"currency\": \"EUR\""), "from 0 to 10^15");
    bad(WITH(", \"amount\": 99999999999999999999999999, \"currency\": \"EUR\""), "10^15");
    bad(WITH(", \"amount\": \"5\", \"currency\": \"EUR\""), "must be an integer");
    bad(WITH(", \"amount\": 5, \"currency\": \"eur\""), "ISO 4217");
    bad(WITH(", \"ip\": \"1.2.3\""), "field 'ip' must be an IPv4 or IPv6 address");
    bad(WITH(", \"country\": \"GBR\""), "ISO 3166-1");
    bad(WITH(", \"lat\": 91, \"lon\": 0"), "from -90 to 90");
    bad(WITH(", \"lat\": 1"), "'lat' and 'lon' go together");
    bad(WITH(", \"device\": null"), "leave out a field");
    bad(WITH(", \"device\": \"\""), "non-empty reference");
    bad(WITH(", \"device\": \"a\\u0001b\""), "control characters");
    bad(WITH(", \"device\": \"a\\u0000b\""), "NUL");
    bad(WITH(", \"fields\": [\"email\"]"), "belongs to profile_changed");
    bad(WITH(", \"label\": \"legit\""), "only replay files");
    bad(WITH(", \"channel\": \"App!\""), "field 'channel'");
    bad(WITH(", \"attributes\": {\"A\": \"x\"}"), "keys of 'attributes'");
    bad(WITH(", \"attributes\": {\"a\": 1}"), "attribute 'a' must be a string");
    bad(WITH(", \"attributes\": {\"a\": \"x\", \"a\": \"y\"}"), "given twice");
    bad(WITH("} {"), "data after the event");
    bad("{\"type\": \"transfer\", \"customer\": \"c1\"}", "field 'time' is required");
    bad("{\"type\": \"teleport\", \"time\": \"2026-01-05T02:14:09Z\", \"customer\": \"c\"}",
        "no known event type");
    bad("{\"type\": \"transfer\", \"time\": \"yesterday\", \"customer\": \"c\"}", "RFC 3339");
    bad("{\"type\": \"transfer\", \"time\": \"1969-12-31T23:59:59Z\", \"customer\": \"c\"}",
        "between 1970 and 9999");
    bad("{\"type\": \"transfer\", \"time\": \"9999-12-31T23:59:59-01:00\", \"customer\": \"c\"}",
        "between 1970 and 9999");
    bad("{\"\\u001b[2J\\u000aline 9: ok\": 1}", "unknown field '?[2J?line 9: ok'");
    bad("[1]", "an object was expected");
    bad("{\"type\": \"transfer\"", "not valid JSON");
    bad("{\"type\": \"trans\xff\"}", "");
    bad("{\"type\": \"transfer\", \"time\": \"2026-01-05T02:14:09Z\", \"customer\": \"\xc3\x28\"}",
        "UTF-8");
    bad("{\"type\": \"transfer\", \"time\": \"2026-01-05T02:14:09Z\", \"customer\": \"\\ud800\"}",
        "surrogate");

    /* the limits on sizes */
    char big[CU_MON_EVENT_MAX + 64];
    memset(big, ' ', sizeof(big) - 1);
    big[0] = '{';
    big[sizeof(big) - 2] = '}';
    big[sizeof(big) - 1] = '\0';
    bad(big, "longer than 8192 bytes");
    char ref[200];
    memset(ref, 'x', 129);
    ref[129] = '\0';
    char t2[600];
    snprintf(t2, sizeof(t2), "{\"type\": \"transfer\", %s, \"payee\": \"%s\"}", base, ref);
    bad(t2, "field 'payee' is longer than 128 bytes");
    char attrs[1024] = "";
    for (int i = 0; i < 17; i++)
        snprintf(attrs + strlen(attrs), sizeof(attrs) - strlen(attrs), "%s\"k%d\": \"v\"",
                 i ? ", " : "", i);
    snprintf(t, sizeof(t), "{\"type\": \"transfer\", %s, \"attributes\": {%s}}", base, attrs);
    bad(t, "more than 16 entries");
#undef WITH
}

static void test_options(void **state)
{
    (void)state;
    struct cu_mon_types custom;
    struct cu_mon_event ev;
    char err[CU_MON_ERR_BYTES];
    const char *text = "{\"type\": \"card_swipe\", \"time\": \"2026-01-05T02:14:09Z\","
                       " \"customer\": \"c1\", \"label\": \"skimming\"}";
    cu_mon_types_init(&custom);
    assert_int_equal(cu_mon_types_add(&custom, "card_swipe", err), CU_OK);
    assert_int_equal(cu_mon_types_add(&custom, "transfer", err), CU_E_INVALID);
    assert_int_equal(cu_mon_types_add(&custom, "Bad", err), CU_E_INVALID);
    struct cu_mon_parse_opts o = {&custom, true, 0, 0};
    assert_int_equal(cu_mon_event_parse(text, strlen(text), &o, &ev, err), CU_OK);
    assert_int_equal(ev.type, CU_EV_BUILTIN_COUNT);
    assert_string_equal(ev.label, "skimming");
    /* the time window of the live API */
    struct cu_mon_parse_opts w = {&custom, true, 1767579249001LL, 1767579259000LL};
    assert_int_equal(cu_mon_event_parse(text, strlen(text), &w, &ev, err), CU_E_INVALID);
    assert_non_null(strstr(err, "too far in the past"));
}

int main(void)
{
    cu_mon_types_init(&types);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_event),
        cmocka_unit_test(test_canonical_round_trip),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
