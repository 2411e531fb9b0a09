/*
 * test_access.c - the one door: every kind of principal against routes that need a permission,
 * a session, a second factor or nothing; deny by default; the grant rule naming what is lacked;
 * and the actor a principal gives a unit of work.
 */
#include "cu_test.h"

#include <dirent.h>
#include <sys/stat.h>

#include "access/access.h"

static const struct cu_access_ctx ctx = {.now_ms = 1700000000000LL};

static struct cu_principal key_with(uint64_t scopes)
{
    struct cu_principal p;
    memset(&p, 0, sizeof(p));
    p.kind = CU_PRINCIPAL_APIKEY;
    snprintf(p.id, sizeof(p.id), "ak_0123456789abcdef");
    p.scopes = scopes;
    return p;
}

static struct cu_principal session_of(enum cu_principal_kind kind, enum cu_aal aal, bool totp,
                                      uint64_t scopes)
{
    struct cu_principal p;
    memset(&p, 0, sizeof(p));
    p.kind = kind;
    snprintf(p.id, sizeof(p.id), kind == CU_PRINCIPAL_STAFF ? "stf_1" : "cus_1");
    p.scopes = scopes;
    p.session.aal = aal;
    p.has_totp = totp;
    return p;
}

static void test_permission(void **state)
{
    struct cu_access_decision d;
    struct cu_principal k = key_with(CU_SCOPE_CUSTOMERS_READ);
    (void)state;

    assert_int_equal(cu_access_decide(&k, CU_SCOPE_CUSTOMERS_READ, 0, &ctx, &d), CU_OK);
    assert_int_equal(cu_access_decide(&k, CU_SCOPE_CUSTOMERS_WRITE, 0, &ctx, &d), CU_E_FORBIDDEN);
    assert_true(d.audit);
    assert_string_equal(d.missing, "customers.write");
    assert_string_equal(d.reason, "the API key lacks the scope customers.write");
    /* a route without a permission or flags is open */
    assert_int_equal(cu_access_decide(&k, 0, 0, &ctx, &d), CU_OK);
}

static void test_deny_by_default(void **state)
{
    struct cu_access_decision d;
    struct cu_principal none;
    (void)state;

    memset(&none, 0, sizeof(none));
    assert_int_equal(cu_access_decide(&none, CU_SCOPE_METRICS_READ, 0, &ctx, &d),
                     CU_E_UNAUTHENTICATED);
    assert_int_equal(cu_access_decide(&none, 0, CU_ACCESS_SESSION, &ctx, &d), CU_E_UNAUTHENTICATED);
    /* a principal with every scope but no session is kept off session routes */
    struct cu_principal k = key_with(~(uint64_t)0);
    assert_int_equal(cu_access_decide(&k, 0, CU_ACCESS_SESSION, &ctx, &d), CU_E_FORBIDDEN);
    assert_true(d.audit);
    assert_null(d.missing);
}

static void test_sessions(void **state)
{
    struct cu_access_decision d;
    struct cu_principal staff = session_of(CU_PRINCIPAL_STAFF, CU_AAL2, true, CU_SCOPE_STAFF_READ);
    struct cu_principal cust = session_of(CU_PRINCIPAL_CUSTOMER, CU_AAL1, false, 0);
    (void)state;

    assert_int_equal(cu_access_decide(&staff, CU_SCOPE_STAFF_READ, 0, &ctx, &d), CU_OK);
    assert_int_equal(cu_access_decide(&staff, CU_SCOPE_STAFF_WRITE, 0, &ctx, &d), CU_E_FORBIDDEN);
    assert_string_equal(d.reason, "the staff member lacks the scope staff.write");
    /* a customer never reaches a permission route, whatever it holds */
    cust.scopes = ~(uint64_t)0;
    assert_int_equal(cu_access_decide(&cust, CU_SCOPE_CUSTOMERS_READ, 0, &ctx, &d), CU_E_FORBIDDEN);
    assert_int_equal(cu_access_decide(&cust, 0, CU_ACCESS_SESSION, &ctx, &d), CU_OK);
    /* staff without a second factor must enrol first, except on enrolment routes; not audited */
    staff.has_totp = false;
    assert_int_equal(cu_access_decide(&staff, CU_SCOPE_STAFF_READ, 0, &ctx, &d), CU_E_MFA_ENROL);
    assert_false(d.audit);
    assert_int_equal(cu_access_decide(&staff, 0, CU_ACCESS_SESSION | CU_ACCESS_ENROL, &ctx, &d),
                     CU_OK);
    /* customers must enrol only where the company says so */
    struct cu_access_ctx strict = ctx;
    strict.customer_mfa_required = true;
    assert_int_equal(cu_access_decide(&cust, 0, CU_ACCESS_SESSION, &strict, &d), CU_E_MFA_ENROL);
    /* a permission needs a session signed in with the second factor */
    staff.has_totp = true;
    staff.session.aal = CU_AAL1;
    assert_int_equal(cu_access_decide(&staff, CU_SCOPE_STAFF_READ, 0, &ctx, &d), CU_E_STEP_UP);
    /* without the identity service to say a session is fresh, it is not */
    staff.session.aal = CU_AAL2;
    assert_int_equal(cu_access_decide(&staff, 0, CU_ACCESS_SESSION | CU_ACCESS_FRESH, &ctx, &d),
                     CU_E_STEP_UP);
}

static void test_may_grant(void **state)
{
    char missing[128];
    struct cu_principal k = key_with(CU_SCOPE_APIKEYS_WRITE | CU_SCOPE_CUSTOMERS_READ);
    (void)state;

    assert_int_equal(cu_access_may_grant(&k, CU_SCOPE_CUSTOMERS_READ, missing, sizeof(missing)),
                     CU_OK);
    assert_string_equal(missing, "");
    assert_int_equal(cu_access_may_grant(&k,
                                         CU_SCOPE_CUSTOMERS_READ | CU_SCOPE_CUSTOMERS_UNMASK |
                                             CU_SCOPE_AUDIT_READ,
                                         missing, sizeof(missing)),
                     CU_E_FORBIDDEN);
    assert_string_equal(missing, "audit.read customers.unmask");
}

static void test_actor(void **state)
{
    struct cu_work_ctx wc;
    struct cu_work *w = NULL;
    struct cu_principal staff = session_of(CU_PRINCIPAL_STAFF, CU_AAL2, true, 0);
    (void)state;

    memset(&wc, 0, sizeof(wc));
    cu_access_actor(&staff, &wc);
    assert_string_equal(wc.actor_type, "staff");
    assert_string_equal(wc.actor_id, "stf_1");
    assert_int_equal(wc.aal, 2);
    assert_int_equal(cu_work_new(&wc, &w), CU_OK);
    assert_ptr_equal(cu_access_principal(w), &staff);
    cu_work_free(w);
    assert_string_equal(cu_access_kind_name(CU_PRINCIPAL_NONE), "anonymous");
    assert_string_equal(cu_access_kind_name((enum cu_principal_kind)99), "anonymous");
}

/* The policy a data directory starts with: written whole, 0600, never over a file, nothing
 * left beside it; it parses to the built-in roles. */
static void test_write_default(void **state)
{
    char dir[256], path[300], text[4096];
    struct stat sb;
    struct cu_policy *p = NULL;
    struct cu_policy_error err;
    FILE *f;
    size_t n;
    (void)state;

    cu_test_tmpdir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/access.policy", dir);
    assert_int_equal(cu_access_policy_write_default(path), CU_OK);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(cu_policy_load(path, &p, &err), CU_OK);
    cu_policy_free(p);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("version 1\nrole mine\n", f);
    fclose(f);
    assert_int_equal(cu_access_policy_write_default(path), CU_E_EXISTS);
    f = fopen(path, "r");
    assert_non_null(f);
    n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    assert_string_equal(text, "version 1\nrole mine\n");
    /* no temporary file is left in the directory */
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t files = 0;
    assert_non_null(d);
    while ((e = readdir(d)) != NULL)
        files += e->d_name[0] != '.';
    closedir(d);
    assert_int_equal(files, 1);
    cu_test_rmrf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_permission), cmocka_unit_test(test_deny_by_default),
        cmocka_unit_test(test_sessions),   cmocka_unit_test(test_may_grant),
        cmocka_unit_test(test_actor),      cmocka_unit_test(test_write_default),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
