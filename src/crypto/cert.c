/*
 * cert.c - a self-signed TLS certificate for a fresh installation, made with GnuTLS.
 *
 * `custodia init` calls this so that `custodia serve` speaks HTTPS from the first start.
 * The key is ECDSA P-256 in unencrypted PKCS#8 PEM (mode 0600); the certificate is X.509 v3
 * for localhost, 127.0.0.1 and ::1, fit for a TLS server and nothing else. Neither file is
 * ever overwritten, and when the second cannot be written the first is removed again.
 * GnuTLS 3.3 and later initialise themselves when loaded, so no global init is needed here.
 */
#include "crypto/cert.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <sodium.h>

#include "base/clock.h"
#include "base/log.h"

#define CERT_SERIAL_BYTES 16
#define CERT_MAX_DAYS 36500

/* The pair under construction. */
struct pair {
    gnutls_x509_privkey_t key;
    gnutls_x509_crt_t crt;
};

/* set_names(crt): subject CN=localhost and the subjectAltNames. */
static int set_names(gnutls_x509_crt_t crt)
{
    static const unsigned char ip4[4] = {127, 0, 0, 1};
    static const unsigned char ip6[16] = {[15] = 1};
    const char *bad = NULL;
    int r;

    r = gnutls_x509_crt_set_dn(crt, "CN=localhost", &bad);
    if (r == 0) {
        r = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, "localhost", 9,
                                                 GNUTLS_FSAN_APPEND);
    }
    if (r == 0) {
        r = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, ip4, sizeof ip4,
                                                 GNUTLS_FSAN_APPEND);
    }
    if (r == 0) {
        r = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, ip6, sizeof ip6,
                                                 GNUTLS_FSAN_APPEND);
    }
    return r;
}

/* set_usage(crt): an end-entity certificate for TLS servers only. */
static int set_usage(gnutls_x509_crt_t crt)
{
    int r = gnutls_x509_crt_set_basic_constraints(crt, 0, -1);

    if (r == 0) {
        r = gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE);
    }
    if (r == 0) {
        r = gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0);
    }
    return r;
}

/* set_basics(crt, days): version, random positive serial and validity. */
static int set_basics(gnutls_x509_crt_t crt, unsigned days)
{
    unsigned char serial[CERT_SERIAL_BYTES];
    time_t now = (time_t)(cu_clock_now_ms() / 1000);
    int r;

    randombytes_buf(serial, sizeof serial);
    serial[0] &= 0x7f; /* DER INTEGER: a clear top bit keeps the serial positive */
    serial[0] |= 0x01; /* and non-zero, with no leading zero byte */
    r = gnutls_x509_crt_set_version(crt, 3);
    if (r == 0) {
        r = gnutls_x509_crt_set_serial(crt, serial, sizeof serial);
    }
    if (r == 0) {
        r = gnutls_x509_crt_set_activation_time(crt, now - 3600);
    }
    if (r == 0) {
        r = gnutls_x509_crt_set_expiration_time(crt, now + (time_t)days * 86400);
    }
    return r;
}

/* set_key_id(crt): the subject key identifier, from the public key already set. */
static int set_key_id(gnutls_x509_crt_t crt)
{
    unsigned char id[64];
    size_t n = sizeof id;
    int r = gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA1, id, &n);

    if (r == 0) {
        r = gnutls_x509_crt_set_subject_key_id(crt, id, n);
    }
    return r;
}

/* make_pair(p, days): generates the key and the signed certificate into p. */
static int make_pair(struct pair *p, unsigned days)
{
    int r = gnutls_x509_privkey_init(&p->key);

    if (r == 0) {
        r = gnutls_x509_privkey_generate2(
            p->key, GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0, NULL, 0);
    }
    if (r == 0) {
        r = gnutls_x509_crt_init(&p->crt);
    }
    if (r == 0) {
        r = set_basics(p->crt, days);
    }
    if (r == 0) {
        r = set_names(p->crt);
    }
    if (r == 0) {
        r = set_usage(p->crt);
    }
    if (r == 0) {
        r = gnutls_x509_crt_set_key(p->crt, p->key);
    }
    if (r == 0) {
        r = set_key_id(p->crt);
    }
    if (r == 0) {
        r = gnutls_x509_crt_sign2(p->crt, p->crt, p->key, GNUTLS_DIG_SHA256, 0);
    }
    return r;
}

/* write_all(fd, buf, n): writes exactly n bytes; false on error. */
static bool write_all(int fd, const unsigned char *buf, size_t n)
{
    size_t done = 0;

    while (done < n) {
        ssize_t w = write(fd, buf + done, n - done);

        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return false;
        }
        done += (size_t)w;
    }
    return true;
}

/* write_new(path, data, mode): creates path (never over an existing file or through a
 * symbolic link) with mode, writes data durably; on failure removes what it created. */
static enum cu_err write_new(const char *path, const gnutls_datum_t *data, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, mode);
    int e = errno;
    bool ok;

    if (fd < 0) {
        cu_log(CU_LOG_ERROR, "cert.write_failed", CU_LS("path", path), CU_LS("error", strerror(e)));
        return e == EEXIST ? CU_E_EXISTS : CU_E_IO;
    }
    /* fchmod: a umask must not leave the certificate unreadable to its readers */
    ok = fchmod(fd, mode) == 0 && write_all(fd, data->data, data->size) && fsync(fd) == 0;
    e = errno;
    if (close(fd) != 0 && ok) {
        ok = false;
        e = errno;
    }
    if (!ok) {
        cu_log(CU_LOG_ERROR, "cert.write_failed", CU_LS("path", path), CU_LS("error", strerror(e)));
        unlink(path);
        return CU_E_IO;
    }
    return CU_OK;
}

/* fsync_parent(path): makes the directory entry of path durable; best effort. */
static void fsync_parent(const char *path)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    size_t n = slash == NULL ? 1 : (slash == path ? 1 : (size_t)(slash - path));
    int fd;

    if (n >= sizeof dir) {
        return;
    }
    memcpy(dir, slash == NULL ? "." : path, n);
    dir[n] = '\0';
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

/* write_pair(p, cert_path, key_path): exports and writes both files, the key first. */
static enum cu_err write_pair(const struct pair *p, const char *cert_path, const char *key_path)
{
    gnutls_datum_t key_pem = {NULL, 0};
    gnutls_datum_t crt_pem = {NULL, 0};
    enum cu_err rc = CU_E_TLS;

    if (gnutls_x509_privkey_export2_pkcs8(p->key, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN,
                                          &key_pem) != 0 ||
        gnutls_x509_crt_export2(p->crt, GNUTLS_X509_FMT_PEM, &crt_pem) != 0) {
        goto out;
    }
    rc = write_new(key_path, &key_pem, 0600);
    if (rc != CU_OK) {
        goto out;
    }
    rc = write_new(cert_path, &crt_pem, 0644);
    if (rc != CU_OK) {
        unlink(key_path);
        goto out;
    }
    fsync_parent(key_path);
    fsync_parent(cert_path);
out:
    if (key_pem.data != NULL) {
        sodium_memzero(key_pem.data, key_pem.size);
    }
    gnutls_free(key_pem.data);
    gnutls_free(crt_pem.data);
    return rc;
}

/* cu_cert_selfsigned(cert_path, key_path, days): makes an ECDSA P-256 key and a self-signed
 * certificate for CN=localhost with subjectAltNames DNS:localhost, IP:127.0.0.1 and IP:::1,
 * valid for days days, and writes them as PEM: the key with mode 0600, the certificate 0644.
 * Refuses to overwrite either file (CU_E_EXISTS); CU_E_TLS when GnuTLS fails, CU_E_IO when a
 * file cannot be written, CU_E_INVALID when days is 0 or over 36500. */
enum cu_err cu_cert_selfsigned(const char *cert_path, const char *key_path, unsigned days)
{
    struct pair p = {NULL, NULL};
    struct stat st;
    enum cu_err rc = CU_OK;
    int r;

    if (days == 0 || days > CERT_MAX_DAYS) {
        return CU_E_INVALID;
    }
    /* Fail early, before generating anything; O_EXCL below still closes the race. */
    if (lstat(cert_path, &st) == 0 || lstat(key_path, &st) == 0) {
        return CU_E_EXISTS;
    }
    r = make_pair(&p, days);
    if (r != 0) {
        cu_log(CU_LOG_ERROR, "cert.generate_failed", CU_LS("error", gnutls_strerror(r)));
        rc = CU_E_TLS;
        goto out;
    }
    rc = write_pair(&p, cert_path, key_path);
out:
    if (p.crt != NULL) {
        gnutls_x509_crt_deinit(p.crt);
    }
    if (p.key != NULL) {
        gnutls_x509_privkey_deinit(p.key);
    }
    return rc;
}
