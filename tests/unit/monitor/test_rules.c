/*
 * test_rules.c - the rule language: errors with their positions, types, the evaluation of
 * conditions (missing values included), features asked once, decisions and actions.
 */
#include "cu_test.h"

#include "monitor/event.h"
#include "monitor/rules.h"

static struct cu_mon_types types;

static struct cu_ruleset *compile(const char *text)
{
    struct cu_ruleset *rs = NULL;
    char err[CU_RULES_ERR_BYTES];
    if (cu_rules_compile(text, strlen(text), "t.rules", &types, &rs, err) != CU_OK)
        fail_msg("%s", err);
    return rs;
}

/* refused(text, want): compiling fails with exactly the message want. */
static void refused(const char *text, const char *want)
{
    struct cu_ruleset *rs = NULL;
    char err[CU_RULES_ERR_BYTES];
    enum cu_err rc = cu_rules_compile(text, strlen(text), "t.rules", &types, &rs, err);
    if (rc != CU_E_INVALID || strcmp(err, want) != 0)
        fail_msg("%s\n  got    %d '%s'\n  wanted '%s'", text, rc, err, want);
    assert_null(rs);
}

static struct cu_mon_event event(const char *json)
{
    struct cu_mon_event ev;
    char err[CU_MON_ERR_BYTES];
    struct cu_mon_parse_opts o = {&types, false, 0, 0};
    if (cu_mon_event_parse(json, strlen(json), &o, &ev, err) != CU_OK)
        fail_msg("%s: %s", json, err);
    return ev;
}

#define TRANSFER(amount, hour)                                                                     \
    "{\"type\": \"transfer\", \"time\": \"2026-01-05T" hour ":14:09Z\", \"customer\": \"c1\", "    \
    "\"amount\": " amount ", \"currency\": \"EUR\", \"ip\": \"203.0.113.9\"}"

static void test_errors_name_line_and_column(void **state)
{
    (void)state;
    refused("rule a\n  when event.amount >= \n  then score 1, reason \"r\"",
            "t.rules:3:3: expected a value, found 'then'");
    refused("rule a when event.amount > 5 then score 1",
            "t.rules:1:42: rule 'a' has no reason: every rule says why it fires");
    refused("rule a when event.colour == \"red\" then reason \"r\"",
            "t.rules:1:19: an event has no field 'colour'");
    refused("rule a when event.type == \"teleport\" then reason \"r\"",
            "t.rules:1:27: unknown event type \"teleport\"");
    refused("rule a when event.amount > \"5\" then reason \"r\"",
            "t.rules:1:26: '>' cannot compare a number with a string");
    refused("rule a when event.amount then reason \"r\"",
            "t.rules:1:13: 'when' needs a condition (true or false), not a number");
    refused("rule a when count(customer, 10s) > 3 then reason \"r\"",
            "t.rules:1:29: windows run from 1m to 30d");
    refused("rule a when count(customer, 31d) > 3 then reason \"r\"",
            "t.rules:1:29: windows run from 1m to 30d");
    refused("rule a when count(wallet, 1h) > 3 then reason \"r\"",
            "t.rules:1:19: expected a key (customer, ip, ip_block, device, payee, country or "
            "all), found 'wallet'");
    refused("rule a when count(customer, 1h, \"nap\") > 3 then reason \"r\"",
            "t.rules:1:33: unknown event type \"nap\"");
    refused("rule a when event.amount > 5 then score 1, launch, reason \"r\"",
            "t.rules:1:44: expected an action (score, review, step_up, hold, deny, "
            "freeze_account, lock_login, revoke_sessions, notify_customer, alert, reason), "
            "found 'launch'");
    refused("rule a when true then reason \"r\"\nrule a when true then reason \"r\"",
            "t.rules:2:6: rule 'a' is declared twice");
    refused("rule a when event.ip in [\"x\"] then reason \"r\"",
            "t.rules:1:25: event.ip is looked up in a list of addresses and blocks; this list "
            "holds something else");
    refused("rule a when event.amount > 5m then reason \"r\"",
            "t.rules:1:26: '>' cannot compare a number with a duration");
    refused("rule a when event.amount > 5x then reason \"r\"",
            "t.rules:1:28: a duration ends in s, m, h or d (e.g. 30s, 5m, 1h, 7d)");
    refused("rule a when event.device == \"x then reason \"r\"",
            "t.rules:1:45: expected 'then' and the rule's actions (or an operator), found "
            "'r'");
    refused("rule a when true then freeze_account, reason \"r\"",
            "t.rules:1:37: expected how long (a duration from 1m to 365d), found ','");
    refused("thresholds review 50, step_up 40", "t.rules:1:33: the thresholds must rise: "
                                                "review < step_up < hold < deny");
    refused("rules a", "t.rules:1:1: expected 'rule', 'list' or 'thresholds', found 'rules'");
    refused("rule a when customer.hour_share(event.amount) < 1 then reason \"r\"",
            "t.rules:1:33: customer.hour_share takes event.time");
    refused("rule a when true then reason \"r\" \x01",
            "t.rules:1:34: a character that has no place in a rule file (byte 0x01)");
    refused("rule a when exists(event.time) then reason \"r\"",
            "t.rules:1:20: exists takes a field or a feature, not a time");
    refused("rule a when event.time == event.time then reason \"r\"",
            "t.rules:1:24: '==' cannot compare a time with a time");
    refused("rule a when event.type == \"\x1b[31mred\" then reason \"r\"",
            "t.rules:1:27: a control character inside a string");
    refused("thresholds \"\x1b[31mRED\"",
            "t.rules:1:12: expected review, step_up, hold or deny, found '\"?[31mRED\"'");
}

/* notify_customer [TEMPLATE]: security_notice unless a notice is named; the notices of every
 * rule that fired; an unknown one refused where it is written; a rule that ends with it is
 * followed by the next rule, not taken for its template. */
static void test_notices(void **state)
{
    (void)state;
    struct cu_ruleset *rs = compile(
        "rule plain when event.amount > 10 then reason \"r\", notify_customer\n"
        "rule named when event.amount > 100 then notify_customer large_transfer, reason \"r\"\n"
        "rule two when event.amount > 1000 then notify_customer new_payee, notify_customer "
        "accounts_frozen, reason \"r\"");
    struct cu_mon_event ev = event(TRANSFER("50", "10"));
    struct cu_verdict v;

    cu_rules_eval(rs, &ev, NULL, &v);
    assert_true(v.actions & CU_ACT_NOTIFY_CUSTOMER);
    assert_int_equal(v.notify_templates, 1u << 0);
    assert_string_equal(cu_rules_notify_template(0), "security_notice");
    ev = event(TRANSFER("500", "10"));
    cu_rules_eval(rs, &ev, NULL, &v);
    assert_int_equal(v.notify_templates, (1u << 0) | (1u << 5));
    assert_string_equal(cu_rules_notify_template(5), "large_transfer");
    ev = event(TRANSFER("5000", "10"));
    cu_rules_eval(rs, &ev, NULL, &v);
    assert_int_equal(v.notify_templates, (1u << 0) | (1u << 4) | (1u << 5) | (1u << 6));
    ev = event(TRANSFER("5", "10"));
    cu_rules_eval(rs, &ev, NULL, &v);
    assert_false(v.actions & CU_ACT_NOTIFY_CUSTOMER);
    assert_int_equal(v.notify_templates, 0);
    assert_null(cu_rules_notify_template(CU_RULES_NOTIFY_TEMPLATES));
    cu_rules_free(rs);
    /* on one line, the next rule's keyword is no notice (a rule file written so compiled
     * before notices had names) */
    rs = compile("rule a when true then reason \"r\", notify_customer rule b when true then "
                 "reason \"s\", notify_customer list l = [\"x\"]");
    cu_rules_free(rs);
    refused("rule a when true then notify_customer staff_case, reason \"r\"",
            "t.rules:1:39: unknown notice 'staff_case' (security_notice, new_sign_in, "
            "password_changed, second_factor_changed, new_payee, large_transfer, "
            "accounts_frozen)");
}

static void test_conditions(void **state)
{
    (void)state;
    struct cu_ruleset *rs = compile(
        "list nets = [\"203.0.113.0/24\", \"2001:db8::/32\"]\n"
        "list big_countries = [\"CN\", \"US\"]\n"
        "rule big when event.type == \"transfer\" and event.amount >= 500000\n"
        "  then score 40, reason \"a large transfer\"\n"
        "rule night when event.hour < 5 or event.hour >= 23 then score 15, reason \"night\"\n"
        "rule net when event.ip in nets then score 1, reason \"a listed network\"\n"
        "rule country when event.country in big_countries then score 2, reason \"country\"\n"
        "rule nocountry when not (event.country in big_countries) then score 4, reason \"nc\"\n"
        "rule maths when (event.amount + 100) * 2 / 4 % 1000 == 50 then score 8, "
        "reason \"maths\"\n");
    struct cu_verdict v;
    struct cu_mon_event ev = event(TRANSFER("500000", "02"));
    cu_rules_eval(rs, &ev, NULL, &v);
    /* big (40) + night (15) + net (1) + maths ((500100*2/4) % 1000 = 50: 8); the country is
     * missing, so neither the `in` nor its negation fires */
    assert_int_equal(v.nfired, 4);
    assert_int_equal(v.score, 64);
    assert_string_equal(cu_rules_name(rs, v.fired[0].rule), "big");
    assert_string_equal(cu_rules_reason(rs, v.fired[0].rule), "a large transfer");
    assert_int_equal(v.decision, CU_DEC_STEP_UP); /* 50 <= 64 < 70 */

    ev = event(TRANSFER("499999", "12"));
    cu_rules_eval(rs, &ev, NULL, &v);
    assert_int_equal(v.score, 1); /* only net */
    assert_int_equal(v.decision, CU_DEC_ALLOW);

    ev = event("{\"type\": \"login_failed\", \"time\": \"2026-01-05T23:00:00Z\", \"customer\":"
               " \"c1\", \"country\": \"DE\", \"ip\": \"2001:db9::1\"}");
    cu_rules_eval(rs, &ev, NULL, &v);
    assert_int_equal(v.score, 15 + 4); /* night, nocountry; not big (type), not net */
    cu_rules_free(rs);
}

/* Managed lists: empty when compiled, filled and emptied again at run time; an address list
 * takes addresses and blocks only (nothing changes on a refused item); a snoozed rule is not
 * run. */
static void test_managed_lists_and_masks(void **state)
{
    (void)state;
    struct cu_ruleset *rs = compile("list nets managed addresses\n"
                                    "list payees managed\n"
                                    "rule net when event.ip in nets then score 1, reason \"n\"\n"
                                    "rule big when event.amount > 10 then score 2, reason \"b\"\n");
    const char *blocks[] = {"203.0.113.0/24"}, *bad[] = {"198.51.100.0/24", "a payee"};
    const char *payees[] = {"p2", "p1"};
    struct cu_mon_event ev = event(TRANSFER("500000", "12"));
    struct cu_rule_mask skip;
    struct cu_verdict v;
    bool managed = false, addresses = false;
    size_t skipped = 0;

    assert_int_equal(cu_rules_lists(rs), 2);
    assert_string_equal(cu_rules_list_name(rs, 0, &managed, &addresses), "nets");
    assert_true(managed && addresses);
    assert_string_equal(cu_rules_list_name(rs, 1, &managed, &addresses), "payees");
    assert_true(managed && !addresses);
    assert_null(cu_rules_list_name(rs, 2, NULL, NULL));
    cu_rules_eval(rs, &ev, NULL, &v);
    assert_int_equal(v.score, 2); /* the list is empty */
    assert_int_equal(cu_rules_list_set(rs, "nets", blocks, 1, &skipped), CU_OK);
    assert_int_equal(skipped, 0);
    cu_rules_eval(rs, &ev, NULL, &v);
    assert_int_equal(v.score, 3);
    /* an item the list's kind refuses is left out, the others kept */
    assert_int_equal(cu_rules_list_set(rs, "nets", bad, 2, &skipped), CU_OK);
    assert_int_equal(skipped, 1);
    cu_rules_eval(rs, &ev, NULL, &v);
    assert_int_equal(v.score, 2); /* 198.51.100.0/24 holds no 203.0.113.9 */
    ev.ip_bin[14] = 100;          /* 203.0.100.9 ... */
    ev.ip_bin[12] = 198;
    ev.ip_bin[13] = 51;
    cu_rules_eval(rs, &ev, NULL, &v);
    assert_int_equal(v.score, 3); /* 198.51.100.9: the block kept */
    assert_int_equal(cu_rules_list_set(rs, "payees", payees, 2, &skipped), CU_OK);
    assert_int_equal(cu_rules_list_set(rs, "nosuch", payees, 2, &skipped), CU_E_NOT_FOUND);
    assert_int_equal(cu_rules_list_set(rs, "nets", NULL, 0, &skipped), CU_OK);
    cu_rules_eval(rs, &ev, NULL, &v);
    assert_int_equal(v.score, 2);
    /* a mask skips the rules it names */
    assert_int_equal(cu_rules_find(rs, "big"), 1);
    assert_int_equal(cu_rules_find(rs, "nope"), -1);
    memset(&skip, 0, sizeof(skip));
    skip.bits[0] = 1u << 1;
    cu_rules_eval_masked(rs, &ev, NULL, &v, NULL, &skip);
    assert_int_equal(v.score, 0);
    assert_int_equal(v.nfired, 0);
    cu_rules_free(rs);
    /* a list of values is no list of addresses for event.ip */
    refused("list payees managed\nrule r when event.ip in payees then score 1, reason \"r\"\n",
            "t.rules:2:25: event.ip is looked up in a list of addresses and blocks; this list "
            "holds something else");
    refused("list kinds managed\nrule r when event.type in kinds then score 1, reason \"r\"\n",
            "t.rules:2:27: event.type is tested against types written in the rule file, not a "
            "managed list");
    refused("list payees managed [\"a\"]\n",
            "t.rules:1:21: expected 'rule', 'list' or 'thresholds', found '['");
}

/* Kleene's logic: a missing value makes a comparison false, `not` of missing stays missing,
 * `or` with a true side is true, `exists` tells. */
static void test_missing_values(void **state)
{
    (void)state;
    struct cu_ruleset *rs = compile(
        "rule a when not (event.device == \"d1\") then score 1, reason \"a\"\n"
        "rule b when event.device != \"d1\" then score 2, reason \"b\"\n"
        "rule c when event.device == \"d1\" or event.amount > 0 then score 4, reason \"c\"\n"
        "rule d when not exists(event.device) then score 8, reason \"d\"\n"
        "rule e when event.attributes.mcc == \"6011\" then score 16, reason \"e\"\n");
    struct cu_verdict v;
    struct cu_mon_event ev = event(TRANSFER("5", "12"));
    cu_rules_eval(rs, &ev, NULL, &v);
    assert_int_equal(v.score, 4 + 8);
    ev = event("{\"type\": \"transfer\", \"time\": \"2026-01-05T02:14:09Z\", \"customer\":"
               " \"c1\", \"device\": \"d2\", \"attributes\": {\"mcc\": \"6011\"}}");
    cu_rules_eval(rs, &ev, NULL, &v);
    assert_int_equal(v.score, 1 + 2 + 16);
    cu_rules_free(rs);
}

struct fake {
    double values[8];
    bool present[8];
    int asked[8];
};

static bool fake_value(void *arg, size_t i, double *v)
{
    struct fake *f = arg;
    f->asked[i]++;
    *v = f->values[i];
    return f->present[i];
}

/* The same feature in two rules is one feature, asked once per event; features missing
 * make their comparisons false. */
static void test_features(void **state)
{
    (void)state;
    struct cu_ruleset *rs = compile(
        "rule burst when event.type == \"login_failed\" and count(ip, 10m, \"login_failed\") "
        ">= 20\n  then score 60, lock_login 30m, alert high, reason \"a burst of failures\"\n"
        "rule burst2 when count(ip, 10m, \"login_failed\") >= 10 then score 10, alert low, "
        "reason \"failures\"\n"
        "rule spray when distinct(ip, customer, 1h, [\"login_failed\", \"mfa_failed\"]) > 5 "
        "then deny, reason \"spraying\"\n"
        "rule fresh when since(\"password_changed\") < 1d and event.type == \"withdrawal\" "
        "then hold, reason \"withdrawal after a password change\"\n");
    const struct cu_feature *f;
    size_t nf = cu_rules_features(rs, &f);
    assert_int_equal(nf, 3);
    assert_int_equal(f[0].kind, CU_FEAT_COUNT);
    assert_int_equal(f[0].key, CU_KEY_IP);
    assert_int_equal(f[0].window_ms, 600000);
    assert_int_equal(f[0].types, 1u << CU_EV_LOGIN_FAILED);
    assert_int_equal(f[1].kind, CU_FEAT_DISTINCT);
    assert_int_equal(f[1].field, CU_KEY_CUSTOMER);
    assert_int_equal(f[1].types, (1u << CU_EV_LOGIN_FAILED) | (1u << CU_EV_MFA_FAILED));
    assert_int_equal(f[2].kind, CU_FEAT_SINCE);

    struct fake fk = {{25, 6, 3600000}, {true, true, true}, {0}};
    struct cu_feature_source src = {fake_value, &fk};
    struct cu_verdict v;
    struct cu_mon_event ev = event("{\"type\": \"login_failed\", \"time\": "
                                   "\"2026-01-05T02:14:09Z\", \"customer\": \"c1\"}");
    cu_rules_eval(rs, &ev, &src, &v);
    assert_int_equal(fk.asked[0], 1); /* two rules, one question */
    assert_int_equal(fk.asked[1], 1);
    assert_int_equal(fk.asked[2], 0); /* the rule of withdrawals did not run */
    assert_int_equal(v.nfired, 3);
    assert_int_equal(v.score, 70);
    assert_int_equal(v.decision, CU_DEC_DENY); /* the rule names deny */
    assert_true(v.actions & CU_ACT_LOCK_LOGIN);
    assert_int_equal(v.lock_ms, 1800000);
    assert_true(v.actions & CU_ACT_ALERT);
    assert_int_equal(v.severity, CU_SEV_HIGH); /* the strongest alert */

    struct fake fk2 = {{0, 0, 3600000}, {false, false, true}, {0}};
    struct cu_feature_source src2 = {fake_value, &fk2};
    ev = event("{\"type\": \"withdrawal\", \"time\": \"2026-01-05T02:14:09Z\", \"customer\":"
               " \"c1\", \"amount\": 5, \"currency\": \"EUR\"}");
    cu_rules_eval(rs, &ev, &src2, &v);
    assert_int_equal(v.nfired, 1);
    assert_int_equal(v.decision, CU_DEC_HOLD);
    fk2.present[2] = false; /* never changed: since() is missing, the rule does not fire */
    fk2.asked[2] = 0;
    cu_rules_eval(rs, &ev, &src2, &v);
    assert_int_equal(v.nfired, 0);
    assert_int_equal(fk2.asked[2], 1);
    cu_rules_free(rs);
}

/* A rule failing at run time is counted and skipped; the others still decide. */
static void test_runtime_failure(void **state)
{
    (void)state;
    struct cu_ruleset *rs = compile(
        "rule ratio when event.amount / (event.hour - 2) > 1 then score 50, reason \"ratio\"\n"
        "rule other when event.amount > 1 then score 30, reason \"other\"\n"
        "thresholds review 20, step_up 40, hold 60, deny 80\n");
    struct cu_verdict v;
    struct cu_mon_event ev = event(TRANSFER("100", "02")); /* hour 2: a division by zero */
    cu_rules_eval(rs, &ev, NULL, &v);
    assert_int_equal(v.nerrors, 1);
    assert_int_equal(v.errors[0], 0);
    assert_int_equal(v.nfired, 1);
    assert_int_equal(v.decision, CU_DEC_REVIEW); /* 30 with these thresholds */
    ev = event(TRANSFER("100", "03"));
    cu_rules_eval(rs, &ev, NULL, &v);
    assert_int_equal(v.nerrors, 0);
    assert_int_equal(v.score, 80);
    assert_int_equal(v.decision, CU_DEC_DENY);
    cu_rules_free(rs);
}

/* Nesting is bounded (the parser recurses): deep parentheses, `not`s and minus signs are an
 * error, not a crash; 31 levels are fine. */
static void test_nesting_bounded(void **state)
{
    (void)state;
    static char text[200000];
    const char *kinds[] = {"(", "not ", "-"};
    for (size_t k = 0; k < 3; k++) {
        size_t n = 0;
        n += (size_t)snprintf(text + n, sizeof(text) - n, "rule r when ");
        for (int i = 0; i < 20000; i++)
            n += (size_t)snprintf(text + n, sizeof(text) - n, "%s", kinds[k]);
        n += (size_t)snprintf(text + n, sizeof(text) - n, "%s then reason \"x\"",
                              k == 0   ? "true"
                              : k == 1 ? "true"
                                       : "1 > 0");
        struct cu_ruleset *rs = NULL;
        char err[CU_RULES_ERR_BYTES];
        assert_int_equal(cu_rules_compile(text, n, "t.rules", &types, &rs, err), CU_E_INVALID);
        assert_non_null(strstr(err, "nests deeper than 32 levels"));
    }
    struct cu_ruleset *rs = compile("rule r when ((((((((((((((((((((((((((((((("
                                    "true))))))))))))))))))))))))))))))) then reason \"x\"");
    cu_rules_free(rs);
}

/* Address lists are charged before they are scanned, and all rules together have a budget
 * per event: a set built to be slow fails its rules (counted) instead of taking seconds. */
static void test_event_budget(void **state)
{
    (void)state;
    static char text[CU_RULES_FILE_MAX];
    size_t n = (size_t)snprintf(text, sizeof(text), "list nets = [");
    for (int i = 0; i < 4096; i++)
        n += (size_t)snprintf(text + n, sizeof(text) - n, "%s\"10.%d.%d.0/24\"", i ? ", " : "",
                              i / 256, i % 256);
    n += (size_t)snprintf(text + n, sizeof(text) - n, "]\n");
    for (int r = 0; r < 200; r++) {
        n += (size_t)snprintf(text + n, sizeof(text) - n, "rule r%d when ", r);
        for (int i = 0; i < 20; i++)
            n +=
                (size_t)snprintf(text + n, sizeof(text) - n, "%sevent.ip in nets", i ? " or " : "");
        n += (size_t)snprintf(text + n, sizeof(text) - n, " then reason \"x\"\n");
    }
    struct cu_ruleset *rs = NULL;
    char err[CU_RULES_ERR_BYTES];
    assert_int_equal(cu_rules_compile(text, n, "t.rules", &types, &rs, err), CU_OK);
    struct cu_mon_event ev = event(TRANSFER("5", "12")); /* 203.0.113.9: in no block */
    struct cu_verdict v;
    cu_rules_eval(rs, &ev, NULL, &v);
    assert_int_equal(v.nerrors, 200); /* each over its own budget or the event's */
    assert_int_equal(v.nfired, 0);
    cu_rules_free(rs);
}

int main(void)
{
    cu_mon_types_init(&types);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errors_name_line_and_column),
        cmocka_unit_test(test_conditions),
        cmocka_unit_test(test_notices),
        cmocka_unit_test(test_missing_values),
        cmocka_unit_test(test_features),
        cmocka_unit_test(test_runtime_failure),
        cmocka_unit_test(test_nesting_bounded),
        cmocka_unit_test(test_event_budget),
        cmocka_unit_test(test_managed_lists_and_masks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
