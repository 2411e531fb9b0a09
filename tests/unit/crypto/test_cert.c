/*
 * test_cert.c - the self-signed certificate of a fresh installation: GnuTLS loads the pair,
 * the names and extensions a TLS client checks are there, the key is private, and existing
 * files are never overwritten.
 */
#include "cu_test.h"

#include <sys/stat.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "crypto/cert.h"
#include "crypto/crypto.h"

static char dir[1024];
static char cert_path[1200];
static char key_path[1200];

static int setup(void **state)
{
    (void)state;
    cu_test_tmpdir(dir, sizeof dir);
    snprintf(cert_path, sizeof cert_path, "%s/tls.crt", dir);
    snprintf(key_path, sizeof key_path, "%s/tls.key", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    cu_test_rmrf(dir);
    return 0;
}

/* load_crt(out): imports the written certificate. */
static void load_crt(gnutls_x509_crt_t *out)
{
    gnutls_datum_t pem = {NULL, 0};

    assert_int_equal(gnutls_load_file(cert_path, &pem), 0);
    assert_int_equal(gnutls_x509_crt_init(out), 0);
    assert_int_equal(gnutls_x509_crt_import(*out, &pem, GNUTLS_X509_FMT_PEM), 0);
    gnutls_free(pem.data);
}

static void test_pair_loads_in_gnutls(void **state)
{
    gnutls_certificate_credentials_t cred;

    (void)state;
    assert_int_equal(cu_cert_selfsigned(cert_path, key_path, 30), CU_OK);
    assert_int_equal(gnutls_certificate_allocate_credentials(&cred), 0);
    /* fails when the key does not match the certificate or either cannot be parsed */
    assert_true(
        gnutls_certificate_set_x509_key_file(cred, cert_path, key_path, GNUTLS_X509_FMT_PEM) >= 0);
    gnutls_certificate_free_credentials(cred);
}

static void test_modes(void **state)
{
    struct stat st;

    (void)state;
    assert_int_equal(cu_cert_selfsigned(cert_path, key_path, 30), CU_OK);
    assert_int_equal(stat(key_path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(stat(cert_path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
}

static void test_names(void **state)
{
    gnutls_x509_crt_t crt;
    bool dns = false;
    bool ip4 = false;
    bool ip6 = false;
    char cn[64];
    size_t cnlen = sizeof cn;

    (void)state;
    assert_int_equal(cu_cert_selfsigned(cert_path, key_path, 30), CU_OK);
    load_crt(&crt);
    assert_int_equal(
        gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, cn, &cnlen), 0);
    assert_string_equal(cn, "localhost");
    for (unsigned i = 0;; i++) {
        unsigned char san[64];
        size_t n = sizeof san;
        int type = gnutls_x509_crt_get_subject_alt_name(crt, i, san, &n, NULL);

        if (type == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE) {
            break;
        }
        assert_true(type >= 0);
        dns |= type == GNUTLS_SAN_DNSNAME && n == 9 && memcmp(san, "localhost", 9) == 0;
        ip4 |= type == GNUTLS_SAN_IPADDRESS && n == 4 && memcmp(san, "\x7f\0\0\x01", 4) == 0;
        ip6 |= type == GNUTLS_SAN_IPADDRESS && n == 16 &&
               memcmp(san, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x01", 16) == 0;
    }
    assert_true(dns);
    assert_true(ip4);
    assert_true(ip6);
    /* what a TLS client checks for https://127.0.0.1/ and https://localhost/ */
    assert_int_not_equal(gnutls_x509_crt_check_ip(crt, (const unsigned char *)"\x7f\0\0\x01", 4, 0),
                         0);
    assert_int_not_equal(gnutls_x509_crt_check_hostname(crt, "localhost"), 0);
    assert_int_equal(gnutls_x509_crt_check_hostname(crt, "example.com"), 0);
    gnutls_x509_crt_deinit(crt);
}

static void test_extensions_and_validity(void **state)
{
    gnutls_x509_crt_t crt;
    unsigned usage = 0;
    unsigned critical = 0;
    unsigned ca = 1;
    int pathlen = 0;
    char oid[64];
    size_t oidlen = sizeof oid;
    unsigned char serial[32];
    size_t serlen = sizeof serial;
    unsigned verify = 1;
    time_t begin;
    time_t end;

    (void)state;
    assert_int_equal(cu_cert_selfsigned(cert_path, key_path, 30), CU_OK);
    load_crt(&crt);
    assert_int_equal(gnutls_x509_crt_get_version(crt), 3);
    assert_true(gnutls_x509_crt_get_basic_constraints(crt, &critical, &ca, &pathlen) >= 0);
    assert_int_equal(ca, 0);
    assert_true(gnutls_x509_crt_get_key_usage(crt, &usage, &critical) >= 0);
    assert_int_equal(usage, GNUTLS_KEY_DIGITAL_SIGNATURE);
    assert_int_equal(gnutls_x509_crt_get_key_purpose_oid(crt, 0, oid, &oidlen, NULL), 0);
    assert_string_equal(oid, GNUTLS_KP_TLS_WWW_SERVER);
    assert_int_equal(gnutls_x509_crt_get_serial(crt, serial, &serlen), 0);
    assert_true(serlen >= 15 && serlen <= 16);
    assert_int_equal(serial[0] & 0x80, 0); /* positive */
    assert_int_equal(gnutls_x509_crt_get_pk_algorithm(crt, NULL), GNUTLS_PK_ECDSA);
    assert_int_equal(gnutls_x509_crt_get_signature_algorithm(crt), GNUTLS_SIGN_ECDSA_SHA256);
    begin = gnutls_x509_crt_get_activation_time(crt);
    end = gnutls_x509_crt_get_expiration_time(crt);
    assert_true(begin <= time(NULL) - 3000);
    assert_int_equal(end - begin, 30 * 86400 + 3600);
    /* the self-signature holds when the certificate is its own trust anchor */
    assert_int_equal(gnutls_x509_crt_verify(crt, &crt, 1, 0, &verify), 0);
    assert_int_equal(verify, 0);
    gnutls_x509_crt_deinit(crt);
}

static void test_key_file_is_pkcs8_pem(void **state)
{
    gnutls_datum_t pem = {NULL, 0};

    (void)state;
    assert_int_equal(cu_cert_selfsigned(cert_path, key_path, 1), CU_OK);
    assert_int_equal(gnutls_load_file(key_path, &pem), 0);
    assert_true(pem.size > 27);
    assert_memory_equal(pem.data, "-----BEGIN PRIVATE KEY-----", 27);
    gnutls_free(pem.data);
}

static void test_serials_differ(void **state)
{
    gnutls_x509_crt_t a;
    gnutls_x509_crt_t b;
    unsigned char sa[32];
    unsigned char sb[32];
    size_t na = sizeof sa;
    size_t nb = sizeof sb;

    (void)state;
    assert_int_equal(cu_cert_selfsigned(cert_path, key_path, 30), CU_OK);
    load_crt(&a);
    assert_int_equal(unlink(cert_path), 0);
    assert_int_equal(unlink(key_path), 0);
    assert_int_equal(cu_cert_selfsigned(cert_path, key_path, 30), CU_OK);
    load_crt(&b);
    assert_int_equal(gnutls_x509_crt_get_serial(a, sa, &na), 0);
    assert_int_equal(gnutls_x509_crt_get_serial(b, sb, &nb), 0);
    assert_false(na == nb && memcmp(sa, sb, na) == 0);
    gnutls_x509_crt_deinit(a);
    gnutls_x509_crt_deinit(b);
}

static void test_refuses_overwrite(void **state)
{
    gnutls_datum_t before = {NULL, 0};
    gnutls_datum_t after = {NULL, 0};
    char other_key[1300];
    struct stat st;

    (void)state;
    assert_int_equal(cu_cert_selfsigned(cert_path, key_path, 30), CU_OK);
    assert_int_equal(gnutls_load_file(key_path, &before), 0);
    assert_int_equal(cu_cert_selfsigned(cert_path, key_path, 30), CU_E_EXISTS);
    assert_int_equal(gnutls_load_file(key_path, &after), 0);
    assert_int_equal(before.size, after.size);
    assert_memory_equal(before.data, after.data, before.size);
    gnutls_free(before.data);
    gnutls_free(after.data);

    /* only the certificate exists: still refused, and no new key file appears */
    snprintf(other_key, sizeof other_key, "%s/other.key", dir);
    assert_int_equal(cu_cert_selfsigned(cert_path, other_key, 30), CU_E_EXISTS);
    assert_int_not_equal(stat(other_key, &st), 0);
}

static void test_second_file_failure_removes_first(void **state)
{
    char bad_cert[1300];
    struct stat st;

    (void)state;
    snprintf(bad_cert, sizeof bad_cert, "%s/no-such-dir/tls.crt", dir);
    assert_int_equal(cu_cert_selfsigned(bad_cert, key_path, 30), CU_E_IO);
    assert_int_not_equal(stat(key_path, &st), 0);
}

static void test_days_checked(void **state)
{
    struct stat st;

    (void)state;
    assert_int_equal(cu_cert_selfsigned(cert_path, key_path, 0), CU_E_INVALID);
    assert_int_equal(cu_cert_selfsigned(cert_path, key_path, 36501), CU_E_INVALID);
    assert_int_not_equal(stat(key_path, &st), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pair_loads_in_gnutls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_modes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_extensions_and_validity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_file_is_pkcs8_pem, setup, teardown),
        cmocka_unit_test_setup_teardown(test_serials_differ, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_overwrite, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_file_failure_removes_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_days_checked, setup, teardown),
    };

    if (cu_crypto_init() != CU_OK) {
        return 1;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
