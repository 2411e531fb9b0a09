/*
 * test_apikey.c - API keys: made keys authenticate, nothing else does; revoked and expired
 * keys fail; the store holds no key text; scopes parse and format; names are validated.
 */
#include "cu_test.h"

#include <sys/stat.h>

#include "base/clock.h"
#include "base/mem.h"
#include "crypto/crypto.h"
#include "identity/apikey.h"

struct fixture {
    char dir[256];
    char dbpath[300];
    struct cu_keyring *kr;
    struct cu_store *st;
    struct cu_db *db;
    struct cu_apikey_service *svc;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    char keypath[300], err[CU_STORE_ERR_BYTES];
    assert_non_null(f);
    assert_int_equal(cu_crypto_init(), CU_OK);
    cu_test_tmpdir(f->dir, sizeof(f->dir));
    snprintf(keypath, sizeof(keypath), "%s/root.key", f->dir);
    snprintf(f->dbpath, sizeof(f->dbpath), "%s/t.db", f->dir);
    assert_int_equal(cu_keyring_create(keypath, err), CU_OK);
    assert_int_equal(cu_keyring_load(keypath, &f->kr, err), CU_OK);
    struct cu_store_opts o = {.backend = "sqlite",
                              .path = f->dbpath,
                              .busy_timeout_ms = 1000,
                              .synchronous_full = true,
                              .create = true};
    assert_int_equal(cu_store_open(&o, &f->st, err), CU_OK);
    assert_int_equal(cu_store_migrate(f->st, err), CU_OK);
    assert_int_equal(cu_store_db(f->st, &f->db), CU_OK);
    assert_int_equal(cu_apikey_service_new(f->kr, &f->svc), CU_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    cu_clock_use_real();
    cu_apikey_service_free(f->svc);
    cu_store_close(f->st);
    cu_keyring_free(f->kr);
    cu_test_rmrf(f->dir);
    free(f);
    return 0;
}

static void make_key(struct fixture *f, const char *name, uint64_t scopes, int64_t expires,
                     struct cu_apikey_info *info, char token[CU_APIKEY_TOKEN_BYTES])
{
    assert_int_equal(cu_db_begin(f->db, CU_TXN_WRITE), CU_OK);
    assert_int_equal(cu_apikey_create(f->svc, f->db, name, scopes, expires, info, token), CU_OK);
    assert_int_equal(cu_db_commit(f->db), CU_OK);
}

static void test_create_and_authenticate(void **state)
{
    struct fixture *f = *state;
    struct cu_apikey_info info, got;
    char token[CU_APIKEY_TOKEN_BYTES];

    make_key(f, "svc one", CU_SCOPE_METRICS_READ, 0, &info, token);
    assert_int_equal(strlen(token), CU_APIKEY_TOKEN_LEN);
    assert_memory_equal(token, "cuk_", 4);
    assert_int_equal(strlen(info.id), CU_APIKEY_ID_BYTES - 1);
    assert_int_equal(cu_apikey_authenticate(f->svc, f->db, token, strlen(token), &got), CU_OK);
    assert_string_equal(got.id, info.id);
    assert_string_equal(got.name, "svc one");
    assert_int_equal(got.scopes, CU_SCOPE_METRICS_READ);

    /* One changed character, a truncated key, and junk all fail the same way. */
    token[10] = token[10] == 'A' ? 'B' : 'A';
    assert_int_equal(cu_apikey_authenticate(f->svc, f->db, token, strlen(token), &got),
                     CU_E_UNAUTHENTICATED);
    assert_int_equal(cu_apikey_authenticate(f->svc, f->db, token, 20, &got), CU_E_UNAUTHENTICATED);
    assert_int_equal(cu_apikey_authenticate(f->svc, f->db, "Bearer x", 8, &got),
                     CU_E_UNAUTHENTICATED);
}

static void test_two_keys_differ(void **state)
{
    struct fixture *f = *state;
    struct cu_apikey_info a, b;
    char ta[CU_APIKEY_TOKEN_BYTES], tb[CU_APIKEY_TOKEN_BYTES];
    make_key(f, "a", CU_SCOPE_METRICS_READ, 0, &a, ta);
    make_key(f, "b", CU_SCOPE_METRICS_READ, 0, &b, tb);
    assert_string_not_equal(ta, tb);
    assert_string_not_equal(a.id, b.id);
}

static void test_revoked_key_fails(void **state)
{
    struct fixture *f = *state;
    struct cu_apikey_info info, got;
    char token[CU_APIKEY_TOKEN_BYTES];

    make_key(f, "to revoke", CU_SCOPE_APIKEYS_READ, 0, &info, token);
    assert_int_equal(cu_apikey_revoke(f->db, info.id), CU_OK);
    assert_int_equal(cu_apikey_authenticate(f->svc, f->db, token, strlen(token), &got),
                     CU_E_UNAUTHENTICATED);
    assert_int_equal(cu_apikey_get(f->db, info.id, &got), CU_OK);
    assert_true(got.revoked_at > 0);
    int64_t first = got.revoked_at;
    assert_int_equal(cu_apikey_revoke(f->db, info.id), CU_OK);
    assert_int_equal(cu_apikey_get(f->db, info.id, &got), CU_OK);
    assert_int_equal(got.revoked_at, first);
    assert_int_equal(cu_apikey_revoke(f->db, "ak_0000000000000000"), CU_E_NOT_FOUND);
}

static void test_expired_key_fails(void **state)
{
    struct fixture *f = *state;
    struct cu_apikey_info info, got;
    char token[CU_APIKEY_TOKEN_BYTES];
    int64_t now = 1800000000000LL;

    cu_clock_set_fake(now);
    make_key(f, "short lived", CU_SCOPE_METRICS_READ, now + 60000, &info, token);
    assert_int_equal(cu_apikey_authenticate(f->svc, f->db, token, strlen(token), &got), CU_OK);
    cu_clock_advance(59999);
    assert_int_equal(cu_apikey_authenticate(f->svc, f->db, token, strlen(token), &got), CU_OK);
    cu_clock_advance(1);
    assert_int_equal(cu_apikey_authenticate(f->svc, f->db, token, strlen(token), &got),
                     CU_E_UNAUTHENTICATED);
}

static void test_bad_create_input(void **state)
{
    struct fixture *f = *state;
    struct cu_apikey_info info;
    char token[CU_APIKEY_TOKEN_BYTES];
    char longname[CU_APIKEY_NAME_MAX + 2];

    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_int_equal(cu_apikey_create(f->svc, f->db, "", 1, 0, &info, token), CU_E_INVALID);
    assert_int_equal(cu_apikey_create(f->svc, f->db, longname, 1, 0, &info, token), CU_E_INVALID);
    assert_int_equal(cu_apikey_create(f->svc, f->db, "bad\nname", 1, 0, &info, token),
                     CU_E_INVALID);
    /* a key with no scope of its own is made (its roles are stored next, cu_apikey_set_roles) */
    assert_int_equal(cu_apikey_create(f->svc, f->db, "roles only", 0, 0, &info, token), CU_OK);
    assert_int_equal(cu_apikey_set_roles(f->db, info.id, "service auditor"), CU_OK);
    struct cu_apikey_info back;
    assert_int_equal(cu_apikey_get(f->db, info.id, &back), CU_OK);
    assert_string_equal(back.roles, "service auditor");
    assert_int_equal(back.scopes, 0);
    assert_int_equal(cu_apikey_set_roles(f->db, "ak_0000000000000000", "service"), CU_E_NOT_FOUND);
    assert_int_equal(cu_apikey_create(f->svc, f->db, "ok", (uint64_t)1 << 40, 0, &info, token),
                     CU_E_INVALID);
    assert_int_equal(cu_apikey_create(f->svc, f->db, "ok", 1, cu_clock_now_ms() - 1, &info, token),
                     CU_E_INVALID);
}

static void test_store_holds_no_key_text(void **state)
{
    struct fixture *f = *state;
    struct cu_apikey_info info;
    char token[CU_APIKEY_TOKEN_BYTES], wal[1100];

    make_key(f, "secret check", CU_SCOPE_METRICS_READ, 0, &info, token);
    cu_store_close(f->st);
    f->st = NULL;
    /* Neither the database nor its WAL contain the key's text or its random part. */
    snprintf(wal, sizeof(wal), "%s-wal", f->dbpath);
    assert_false(cu_test_file_contains(f->dbpath, token + 4)); /* token + 4 is in token too */
    assert_false(cu_test_file_contains(wal, token + 4));
    char err[CU_STORE_ERR_BYTES];
    struct cu_store_opts o = {
        .backend = "sqlite", .path = f->dbpath, .busy_timeout_ms = 1000, .synchronous_full = true};
    assert_int_equal(cu_store_open(&o, &f->st, err), CU_OK);
    assert_int_equal(cu_store_db(f->st, &f->db), CU_OK);
    struct cu_apikey_info got;
    assert_int_equal(cu_apikey_authenticate(f->svc, f->db, token, strlen(token), &got), CU_OK);
}

static void test_list_pages(void **state)
{
    struct fixture *f = *state;
    struct cu_apikey_info info, *items = NULL;
    char token[CU_APIKEY_TOKEN_BYTES], after[CU_APIKEY_ID_BYTES] = "";
    size_t n = 0, total = 0;

    for (int i = 0; i < 7; i++)
        make_key(f, "k", CU_SCOPE_METRICS_READ, 0, &info, token);
    do {
        assert_int_equal(cu_apikey_list(f->db, after, 3, &items, &n), CU_OK);
        for (size_t i = 0; i < n; i++) {
            assert_true(strcmp(items[i].id, after) > 0);
            snprintf(after, sizeof(after), "%s", items[i].id);
        }
        total += n;
        cu_free(items);
    } while (n == 3);
    assert_int_equal(total, 7);
    assert_int_equal(cu_apikey_list(f->db, NULL, 0, &items, &n), CU_E_INVALID);
    assert_int_equal(cu_apikey_list(f->db, NULL, 1001, &items, &n), CU_E_INVALID);
}

static void test_scopes(void **state)
{
    char text[512];
    (void)state;
    assert_int_equal(cu_apikey_scope_parse("metrics.read", 12), CU_SCOPE_METRICS_READ);
    assert_int_equal(cu_apikey_scope_parse("metrics.rea", 11), 0);
    assert_int_equal(cu_apikey_scope_parse("metrics.readx", 13), 0);
    assert_string_equal(cu_apikey_scope_name(CU_SCOPE_APIKEYS_WRITE), "apikeys.write");
    assert_null(cu_apikey_scope_name(3));
    assert_int_equal(cu_apikey_scopes_format(cu_apikey_all_scopes(), text, sizeof(text)), CU_OK);
    assert_string_equal(
        text, "apikeys.read apikeys.write metrics.read audit.read customers.read customers.write "
              "customers.unmask customers.erase customers.credentials staff.read staff.write "
              "access.read access.write accounts.read accounts.write accounts.freeze "
              "accounts.unfreeze transfers.read transfers.write transfers.approve ledger.read "
              "events.write decisions.read alerts.read alerts.write monitor.read lists.write "
              "rules.write rules.activate notify.read notify.write cases.read cases.write "
              "cases.contain");
    assert_int_equal(cu_apikey_scopes_format(cu_apikey_all_scopes(), text, 5), CU_E_TOO_LARGE);
}

static void test_names(void **state)
{
    (void)state;
    assert_int_equal(cu_apikey_check_name("ci-runner_2.prod"), CU_OK);
    assert_int_equal(cu_apikey_check_name("two words"), CU_OK);
    assert_int_equal(cu_apikey_check_name(" lead"), CU_E_INVALID);
    assert_int_equal(cu_apikey_check_name("trail "), CU_E_INVALID);
    assert_int_equal(cu_apikey_check_name("semi;colon"), CU_E_INVALID);
    assert_int_equal(cu_apikey_check_name("caf\xc3\xa9"), CU_E_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_and_authenticate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_keys_differ, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revoked_key_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expired_key_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_create_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_holds_no_key_text, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_pages, setup, teardown),
        cmocka_unit_test(test_scopes),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
