/*
 * test_notify.c - what a notification says and how it is signed (notify.h): the webhook
 * signature against HMAC-SHA256 computed independently (Python's hmac, as a receiver would);
 * the templates in English and Simplified Chinese, chosen by the language tag; a variable the
 * data lacks, a value that would add a line, an unknown template: each a clear error; every
 * built-in template in both languages names only its declared variables.
 */
#include "cu_test.h"

#include <sodium.h>

#include "monitor/rules.h"
#include "notify/notify.h"

static void test_signature(void **state)
{
    uint8_t key[32];
    char sig[CU_NOTIFY_SIG_BYTES];
    const char *body = "{\"id\":\"ntf_1\"}";

    (void)state;
    for (int i = 0; i < 32; i++)
        key[i] = (uint8_t)i;
    cu_notify_sign(key, sizeof key, 1700000000, body, strlen(body), sig);
    /* python3 -c 'import hmac, hashlib; print(hmac.new(bytes(range(32)),
     *     b"1700000000." + b"{\"id\":\"ntf_1\"}", hashlib.sha256).hexdigest())' */
    assert_string_equal(sig, "t=1700000000,v1=1c055a87de6605a814883c1c6cf7feea0e98ef57c5b1982033c3"
                             "3b0c0d2f8028");
    /* another timestamp or body, another signature */
    cu_notify_sign(key, sizeof key, 1700000001, body, strlen(body), sig);
    assert_null(strstr(sig, "1c055a87"));
    cu_notify_sign(key, sizeof key, 1700000000, "{\"id\":\"ntf_2\"}", strlen(body), sig);
    assert_null(strstr(sig, "1c055a87"));
}

static void test_languages(void **state)
{
    char subject[256], body[CU_NOTIFY_RENDER_MAX], why[CU_NOTIFY_WHY_BYTES];
    const char *data = "{\"decision\":\"dec_0123456789abcdef\",\"event_type\":\"transfer\","
                       "\"time\":\"2026-12-07T10:00:00Z\"}";

    (void)state;
    assert_int_equal(cu_notify_render("security_notice", "en-GB", data, subject, sizeof subject,
                                      body, sizeof body, why),
                     CU_OK);
    assert_string_equal(subject, "A security check on your account");
    assert_non_null(strstr(body, "(transfer, 2026-12-07T10:00:00Z)"));
    assert_non_null(strstr(body, "Reference: dec_0123456789abcdef"));
    assert_non_null(strstr(body, "We will never ask you for your password"));
    assert_null(strstr(body, "{{"));
    assert_int_equal(cu_notify_render("security_notice", "zh-Hans", data, subject, sizeof subject,
                                      body, sizeof body, why),
                     CU_OK);
    assert_string_equal(subject, "您的账户安全提醒");
    assert_non_null(strstr(body, "参考编号：dec_0123456789abcdef"));
    /* zh-CN, zh-TW: Simplified Chinese is the one Chinese there is; anything else: English */
    assert_int_equal(cu_notify_render("password_changed", "zh", data, subject, sizeof subject, body,
                                      sizeof body, why),
                     CU_OK);
    assert_string_equal(subject, "您的密码已更改");
    assert_int_equal(cu_notify_render("password_changed", "fr", data, subject, sizeof subject, body,
                                      sizeof body, why),
                     CU_OK);
    assert_string_equal(subject, "Your password was changed");
    assert_int_equal(cu_notify_render("password_changed", NULL, data, subject, sizeof subject, body,
                                      sizeof body, why),
                     CU_OK);
    /* integers render as numbers */
    assert_int_equal(cu_notify_render("accounts_frozen", "en", "{\"accounts\":3,\"time\":\"t\"}",
                                      subject, sizeof subject, body, sizeof body, why),
                     CU_OK);
    assert_non_null(strstr(body, "3 of your accounts were frozen"));
}

static void test_errors(void **state)
{
    char subject[256], body[CU_NOTIFY_RENDER_MAX], why[CU_NOTIFY_WHY_BYTES];

    (void)state;
    assert_int_equal(cu_notify_render("security_notice", "en",
                                      "{\"decision\":\"d\",\"time\":\"t\"}", subject,
                                      sizeof subject, body, sizeof body, why),
                     CU_E_INVALID);
    assert_string_equal(why, "template security_notice (en): no value for {{event_type}}");
    assert_int_equal(cu_notify_render("new_payee", "zh-Hans", "{\"time\":\"t\"}", subject,
                                      sizeof subject, body, sizeof body, why),
                     CU_E_INVALID);
    assert_string_equal(why, "template new_payee (zh-Hans): no value for {{payee}}");
    /* a value that would start a new line (of a header, or of the text) */
    assert_int_equal(cu_notify_render("new_payee", "en",
                                      "{\"payee\":\"x\\r\\nBcc: all@example.com\",\"time\":\"t\"}",
                                      subject, sizeof subject, body, sizeof body, why),
                     CU_E_INVALID);
    assert_non_null(strstr(why, "{{payee}} is not an id, code, number or time"));
    /* nor a link, an address or a number to call, in any script */
    const char *const bad[] = {"{\"payee\":\"https://evil.example\",\"time\":\"t\"}",
                               "{\"payee\":\"call <+44 20>\",\"time\":\"t\"}",
                               "{\"payee\":\"x@evil.example\",\"time\":\"t\"}",
                               "{\"payee\":\"\u202eevil\",\"time\":\"t\"}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(cu_notify_render("new_payee", "en", bad[i], subject, sizeof subject, body,
                                          sizeof body, why),
                         CU_E_INVALID);
    assert_int_equal(
        cu_notify_render("no_such", "en", "{}", subject, sizeof subject, body, sizeof body, why),
        CU_E_NOT_FOUND);
    assert_string_equal(why, "no template called no_such");
    assert_int_equal(cu_notify_render("password_changed", "en", "[1]", subject, sizeof subject,
                                      body, sizeof body, why),
                     CU_E_INVALID);
    /* a text that does not fit */
    assert_int_equal(cu_notify_render("password_changed", "en", "{\"time\":\"t\"}", subject, 8,
                                      body, sizeof body, why),
                     CU_E_TOO_LARGE);
    assert_false(cu_notify_template_known("no_such"));
    assert_true(cu_notify_template_known("staff_case"));
}

static void test_templates_check(void **state)
{
    char why[CU_NOTIFY_WHY_BYTES] = "";

    (void)state;
    assert_int_equal(cu_notify_templates_check(why), CU_OK);
    /* every notice a rule may name (notify_customer TEMPLATE) is a template */
    for (unsigned i = 0; i < CU_RULES_NOTIFY_TEMPLATES; i++)
        assert_true(cu_notify_template_known(cu_rules_notify_template(i)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signature),
        cmocka_unit_test(test_languages),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_templates_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
