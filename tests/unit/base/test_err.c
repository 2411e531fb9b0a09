/*
 * test_err.c - the error table: every code has a message, a problem code and a title, maps
 * to an error status, and the mapping an API client sees is the documented one.
 */
#include "cu_test.h"

#include <ctype.h>

#include "base/err.h"

static void test_every_code_described(void **state)
{
    for (int e = 0; e < CU_E__COUNT; e++) {
        const char *code = cu_err_problem_code((enum cu_err)e);
        int status = cu_err_http_status((enum cu_err)e);

        assert_non_null(cu_err_str((enum cu_err)e));
        assert_true(strlen(cu_err_str((enum cu_err)e)) > 0);
        assert_non_null(cu_err_title((enum cu_err)e));
        assert_true(strlen(cu_err_title((enum cu_err)e)) > 0);
        assert_non_null(code);
        assert_true(strlen(code) > 0);
        for (const char *p = code; *p; p++) {
            assert_true(islower((unsigned char)*p) || *p == '_');
        }
        if (e == CU_OK) {
            assert_int_equal(status, 200);
        } else {
            assert_in_range(status, 400, 599);
        }
    }
}

static void test_documented_mapping(void **state)
{
    static const struct {
        enum cu_err e;
        int status;
        const char *code;
    } want[] = {
        {CU_OK, 200, "ok"},
        {CU_E_NOMEM, 500, "internal"},
        {CU_E_INVALID, 400, "invalid_request"},
        {CU_E_TOO_LARGE, 413, "too_large"},
        {CU_E_NOT_FOUND, 404, "not_found"},
        {CU_E_EXISTS, 409, "conflict"},
        {CU_E_UNAUTHENTICATED, 401, "unauthenticated"},
        {CU_E_FORBIDDEN, 403, "forbidden"},
        {CU_E_METHOD, 405, "method_not_allowed"},
        {CU_E_MEDIA_TYPE, 415, "unsupported_media_type"},
        {CU_E_RATE_LIMITED, 429, "rate_limited"},
        {CU_E_IO, 500, "internal"},
        {CU_E_CONFIG, 500, "internal"},
        {CU_E_PERM, 500, "internal"},
        {CU_E_CRYPTO, 500, "crypto_failure"},
        {CU_E_KEY_MISSING, 500, "key_missing"},
        {CU_E_STORE, 503, "store_unavailable"},
        {CU_E_BUSY, 503, "store_busy"},
        {CU_E_STORE_FULL, 503, "store_full"},
        {CU_E_SCHEMA_NEWER, 503, "schema_newer"},
        {CU_E_CORRUPT, 500, "data_corrupt"},
        {CU_E_TLS, 500, "internal"},
        {CU_E_UNAVAILABLE, 503, "unavailable"},
        {CU_E_AUDIT, 503, "audit_unavailable"},
        {CU_E_BAD_CREDENTIALS, 401, "invalid_credentials"},
        {CU_E_STEP_UP, 401, "step_up_required"},
        {CU_E_MFA_ENROL, 403, "mfa_enrolment_required"},
        {CU_E_INTERNAL, 500, "internal"},
    };

    assert_int_equal(sizeof want / sizeof want[0], CU_E__COUNT);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        assert_int_equal(cu_err_http_status(want[i].e), want[i].status);
        assert_string_equal(cu_err_problem_code(want[i].e), want[i].code);
    }
}

static void test_same_code_same_title(void **state)
{
    for (int a = 0; a < CU_E__COUNT; a++) {
        for (int b = 0; b < CU_E__COUNT; b++) {
            if (strcmp(cu_err_problem_code((enum cu_err)a), cu_err_problem_code((enum cu_err)b)) ==
                0) {
                assert_string_equal(cu_err_title((enum cu_err)a), cu_err_title((enum cu_err)b));
                assert_int_equal(cu_err_http_status((enum cu_err)a),
                                 cu_err_http_status((enum cu_err)b));
            }
        }
    }
}

static void test_out_of_range_is_internal(void **state)
{
    enum cu_err bad[] = {CU_E__COUNT, (enum cu_err)999, (enum cu_err) - 1};

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_string_equal(cu_err_str(bad[i]), cu_err_str(CU_E_INTERNAL));
        assert_int_equal(cu_err_http_status(bad[i]), 500);
        assert_string_equal(cu_err_problem_code(bad[i]), "internal");
        assert_string_equal(cu_err_title(bad[i]), cu_err_title(CU_E_INTERNAL));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_code_described),
        cmocka_unit_test(test_documented_mapping),
        cmocka_unit_test(test_same_code_same_title),
        cmocka_unit_test(test_out_of_range_is_internal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
