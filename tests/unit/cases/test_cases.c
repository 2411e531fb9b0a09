/*
 * test_cases.c - the stage machine of cases (cases.h) and the playbook file format
 * (playbook.h): every move between two stages against the rule written out here (one stage
 * forward, or to false_positive, from an open stage; a resolution to close; a review to close
 * at high and above); playbook files read into their playbooks, and every mistake named with
 * its line and column; durations.
 */
#include "cu_test.h"

#include "cases/cases.h"
#include "cases/playbook.h"

static void test_stage_machine(void **state)
{
    char why[CU_CASE_WHY_BYTES];

    (void)state;
    for (int from = 0; from < CU_STAGE__COUNT; from++)
        for (int to = 0; to < CU_STAGE__COUNT; to++)
            for (int sev = 0; sev < 4; sev++) {
                bool open = from < CU_STAGE_CLOSED;
                bool step = open && to != from && (to == from + 1 || to == CU_STAGE_FALSE_POSITIVE);
                bool final = to >= CU_STAGE_CLOSED;
                /* with everything given, only the machine decides */
                enum cu_err rc = cu_case_move_check(from, to, sev, true, true, why);
                assert_int_equal(rc, step ? CU_OK : CU_E_EXISTS);
                if (!step)
                    continue;
                /* without a resolution, a final stage is refused */
                rc = cu_case_move_check(from, to, sev, false, true, why);
                assert_int_equal(rc, final ? CU_E_INVALID : CU_OK);
                /* without a review, closing at high and above is refused */
                rc = cu_case_move_check(from, to, sev, true, false, why);
                assert_int_equal(rc, to == CU_STAGE_CLOSED && sev >= 2 ? CU_E_INVALID : CU_OK);
            }
    assert_int_equal(
        cu_case_move_check(CU_STAGE_DETECTED, CU_STAGE_CONTAINED, 0, false, false, why),
        CU_E_EXISTS);
    assert_string_equal(why, "a case at detected moves to assessing (or false_positive), not to "
                             "contained: no stage is skipped");
    assert_int_equal(
        cu_case_move_check(CU_STAGE_CONTAINED, CU_STAGE_ASSESSING, 0, false, false, why),
        CU_E_EXISTS);
    assert_non_null(strstr(why, "no stage is gone back to"));
    assert_int_equal(
        cu_case_move_check(CU_STAGE_CLOSED, CU_STAGE_FALSE_POSITIVE, 0, true, true, why),
        CU_E_EXISTS);
    assert_string_equal(why, "the case is closed: it moves no more");
    enum cu_case_stage s;
    assert_true(cu_case_stage_parse("eradicated", &s) && s == CU_STAGE_ERADICATED);
    assert_false(cu_case_stage_parse("done", &s));
}

static void test_observables(void **state)
{
    (void)state;
    assert_true(cu_case_observable_valid("ip", "203.0.113.7"));
    assert_true(cu_case_observable_valid("account", "acc_0123456789abcdef"));
    assert_false(cu_case_observable_valid("account", "acc_12"));
    assert_false(cu_case_observable_valid("device", "two words"));
    assert_false(cu_case_observable_valid("device", ""));
    assert_false(cu_case_observable_valid("planet", "mars"));
    char big[CU_CASE_VALUE_MAX + 2];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_false(cu_case_observable_valid("payee", big));
    big[CU_CASE_VALUE_MAX] = '\0';
    assert_true(cu_case_observable_valid("payee", big));
}

static bool only_takeover(void *arg, const char *rule)
{
    (void)arg;
    return strcmp(rule, "takeover") == 0;
}

/* parse_err(text): the error of a file's text, or "" when it parses. */
static const char *parse_err(const char *text)
{
    static char err[CU_PLAYBOOK_ERR_BYTES];
    struct cu_playbooks *pb = NULL;
    enum cu_err rc = cu_playbooks_parse(text, strlen(text), "f", only_takeover, NULL, &pb, err);
    cu_playbooks_free(pb);
    if (rc == CU_OK)
        err[0] = '\0';
    return err;
}

static void test_playbook_file(void **state)
{
    static const char good[] = "# a comment\n"
                               "playbook account_takeover   # trailing comment\n"
                               "  when rule takeover\n"
                               "  when severity high\n"
                               "  step freeze_accounts 2h\n"
                               "  step revoke_sessions\n"
                               "  step notify_customer accounts_frozen auto\n"
                               "  step force_password_reset confirm\n"
                               "\n"
                               "playbook page\n"
                               "\twhen severity critical\n"
                               "\tstep page_oncall\n";
    char err[CU_PLAYBOOK_ERR_BYTES];
    struct cu_playbooks *pb = NULL;

    (void)state;
    assert_int_equal(cu_playbooks_parse(good, strlen(good), "f", only_takeover, NULL, &pb, err),
                     CU_OK);
    assert_int_equal(cu_playbooks_count(pb), 2);
    assert_string_equal(cu_playbooks_name(pb, 0), "account_takeover");
    assert_string_equal(cu_playbooks_rule(pb, 0), "takeover");
    assert_string_equal(cu_playbooks_rule(pb, 1), "");
    assert_int_equal(cu_playbooks_find(pb, "page"), 1);
    assert_int_equal(cu_playbooks_find(pb, "nope"), -1);
    cu_playbooks_free(pb);

    assert_string_equal(parse_err("playbook p\n  when rule takeover\n  step explode\n"),
                        "f:3:8: unknown action 'explode' (one of freeze_accounts, hold_transfers, "
                        "revoke_sessions, lock_sign_in, force_password_reset, notify_customer, "
                        "page_oncall)");
    assert_string_equal(parse_err("playbook p\n  when rule other\n  step page_oncall\n"),
                        "f:2:13: unknown rule 'other' (no rule of that name in the rules in force "
                        "raises an alert)");
    assert_string_equal(parse_err("  when rule takeover\n"),
                        "f:1:3: 'when' before any 'playbook NAME'");
    assert_string_equal(parse_err("playbook p\n  when severity huge\n  step page_oncall\n"),
                        "f:2:17: unknown severity 'huge' (low, medium, high or critical)");
    assert_string_equal(parse_err("playbook p\n  when severity low\n  step lock_sign_in 31d\n"),
                        "f:3:21: '31d' is not a duration (a number and s, m, h or d; 1s to 30d)");
    assert_string_equal(parse_err("playbook p\n  when severity low\n  step page_oncall now\n"),
                        "f:3:20: page_oncall takes no argument");
    assert_string_equal(
        parse_err("playbook p\n  when severity low\n  step notify_customer new_payee\n"),
        "f:3:24: notify_customer sends security_notice or accounts_frozen, not 'new_payee'");
    assert_string_equal(
        parse_err("playbook p\n  when severity low\n  step revoke_sessions x y\n"),
        "f:3:26: unexpected 'y' (a step is: step ACTION [ARGUMENT] [confirm|auto])");
    assert_string_equal(parse_err("playbook p\n  step page_oncall\n"),
                        "f:1:1: playbook p has no 'when': it needs a rule or a severity that "
                        "starts it");
    assert_string_equal(parse_err("playbook p\n  when severity low\nplaybook q\n"),
                        "f:1:1: playbook p has no 'step'");
    assert_string_equal(
        parse_err("playbook p\n when severity low\n step page_oncall\nplaybook p\n"),
        "f:4:10: a second playbook named p");
    assert_string_equal(parse_err("playbook Bad-Name\n"),
                        "f:1:10: 'playbook' needs one name of 1 to 48 of a-z, 0-9 and _");
    assert_string_equal(parse_err("freeze everything\n"),
                        "f:1:1: unknown word 'freeze' (a line is 'playbook NAME', 'when …' or "
                        "'step …')");
    assert_string_equal(parse_err("playbook p\n when severity low\n when severity high\n"),
                        "f:3:2: playbook p has a severity already");
    assert_string_equal(parse_err("playbook p\n\xff\n"), "f:1:1: the file is not UTF-8 text");
    assert_string_equal(parse_err(""), "");
}

static void test_durations(void **state)
{
    int64_t ms = 0;
    (void)state;
    assert_true(cu_playbook_duration("30s", &ms) && ms == 30000);
    assert_true(cu_playbook_duration("15m", &ms) && ms == 900000);
    assert_true(cu_playbook_duration("2h", &ms) && ms == 7200000);
    assert_true(cu_playbook_duration("30d", &ms) && ms == 30LL * 86400000);
    assert_false(cu_playbook_duration("31d", &ms));
    assert_false(cu_playbook_duration("0s", &ms));
    assert_false(cu_playbook_duration("h", &ms));
    assert_false(cu_playbook_duration("5", &ms));
    assert_false(cu_playbook_duration("5hh", &ms));
    assert_false(cu_playbook_duration("-5m", &ms));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stage_machine),
        cmocka_unit_test(test_observables),
        cmocka_unit_test(test_playbook_file),
        cmocka_unit_test(test_durations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
