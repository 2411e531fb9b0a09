/*
 * totp.c - time-based one-time passwords for multi-factor sign-in: RFC 4226 HOTP and RFC 6238
 * TOTP values from liboath, the otpauth:// enrolment URI that authenticator apps read, and its
 * QR code from libqrencode drawn as a small SVG.
 *
 * A code is checked against the step of now and one step on each side (clock drift), every
 * candidate compared in constant time. The caller keeps the last step a code was accepted for
 * and passes it back: a code that matches only that step or an earlier one is a replay
 * (CU_E_EXISTS), so each code works once. Secrets, codes and URIs are never logged, and the
 * copies made here are wiped.
 */
#include "crypto/totp.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#include <liboath/oath.h>
#include <qrencode.h>

#include "crypto/crypto.h"

#define QR_QUIET_MODULES 4
#define MAX_DIGITS 8

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static enum cu_err init_rc = CU_E_INTERNAL;

static void init_oath(void)
{
    init_rc = oath_init() == OATH_OK ? CU_OK : CU_E_INTERNAL;
}

/* cu_totp_init(): initialises liboath once per process; CU_E_INTERNAL if it fails. Safe to
 * call from several threads. */
enum cu_err cu_totp_init(void)
{
    if (pthread_once(&init_once, init_oath) != 0) {
        return CU_E_INTERNAL;
    }
    return init_rc;
}

/* cu_totp_secret_new(out): a fresh random secret. */
void cu_totp_secret_new(uint8_t out[CU_TOTP_SECRET_BYTES])
{
    cu_crypto_random(out, CU_TOTP_SECRET_BYTES);
}

/* b32_char(v): the RFC 4648 base32 letter of the 5-bit value v, without a table lookup or a
 * branch on v (the value is secret). */
static char b32_char(unsigned v)
{
    unsigned above_25 = 0u - ((25u - v) >> 31); /* all ones when v > 25 */

    return (char)('A' + v - (above_25 & 41u)); /* 26 -> '2' ... 31 -> '7' */
}

/* cu_totp_base32(secret, n, out, outlen): secret as unpadded RFC 4648 base32.
 * CU_E_TOO_LARGE when out is too small. */
enum cu_err cu_totp_base32(const uint8_t *secret, size_t n, char *out, size_t outlen)
{
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t used = 0;

    CU_ASSERT(outlen > 0);
    out[0] = '\0';
    if (n > (SIZE_MAX - 5) / 8 || (n * 8 + 4) / 5 >= outlen) {
        return CU_E_TOO_LARGE;
    }
    for (size_t i = 0; i < n; i++) {
        acc = (acc << 8 | secret[i]) & 0xfff;
        bits += 8;
        while (bits >= 5) {
            bits -= 5;
            out[used++] = b32_char((acc >> bits) & 31u);
        }
    }
    if (bits > 0) {
        out[used++] = b32_char((acc << (5 - bits)) & 31u);
    }
    out[used] = '\0';
    cu_crypto_wipe(&acc, sizeof acc);
    return CU_OK;
}

/* A bounded writer of text into a caller's array. */
struct writer {
    char *out;
    size_t cap;
    size_t used;
    bool full;
};

static void put(struct writer *w, const char *s, size_t n)
{
    if (w->full || n >= w->cap - w->used) {
        w->full = true;
        return;
    }
    memcpy(w->out + w->used, s, n);
    w->used += n;
    w->out[w->used] = '\0';
}

static void put_str(struct writer *w, const char *s)
{
    put(w, s, strlen(s));
}

/* put_encoded(w, s): s percent-encoded: everything but RFC 3986 unreserved characters. */
static void put_encoded(struct writer *w, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";

    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;

        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            put(w, (const char *)&c, 1);
        } else {
            char esc[3] = {'%', hex[c >> 4], hex[c & 15]};

            put(w, esc, sizeof esc);
        }
    }
}

/* cu_totp_uri(secret, issuer, account, out, outlen): the otpauth://totp/ URI that
 * authenticator apps read (issuer and account percent-encoded; algorithm, digits, period
 * stated). CU_E_TOO_LARGE when out is too small. */
enum cu_err cu_totp_uri(const uint8_t secret[CU_TOTP_SECRET_BYTES], const char *issuer,
                        const char *account, char *out, size_t outlen)
{
    struct writer w = {.out = out, .cap = outlen};
    char b32[CU_TOTP_BASE32_BYTES];
    enum cu_err rc;

    CU_ASSERT(issuer != NULL && account != NULL && outlen > 0);
    out[0] = '\0';
    rc = cu_totp_base32(secret, CU_TOTP_SECRET_BYTES, b32, sizeof b32);
    CU_ASSERT(rc == CU_OK);
    put_str(&w, "otpauth://totp/");
    put_encoded(&w, issuer);
    put_str(&w, ":");
    put_encoded(&w, account);
    put_str(&w, "?secret=");
    put_str(&w, b32);
    put_str(&w, "&issuer=");
    put_encoded(&w, issuer);
    put_str(&w, "&algorithm=SHA1&digits=6&period=30");
    cu_crypto_wipe(b32, sizeof b32);
    if (w.full) {
        cu_crypto_wipe(out, outlen);
        out[0] = '\0';
        return CU_E_TOO_LARGE;
    }
    return CU_OK;
}

/* svg_draw(qr, out): the SVG of qr appended to out: a white square with a quiet zone of
 * QR_QUIET_MODULES and one path of the dark modules, a rectangle per horizontal run. */
static enum cu_err svg_draw(const QRcode *qr, struct cu_buf *out)
{
    int w = qr->width, size = qr->width + 2 * QR_QUIET_MODULES;
    enum cu_err rc;

    rc = cu_buf_printf(out,
                       "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %d %d\" "
                       "shape-rendering=\"crispEdges\"><rect width=\"%d\" height=\"%d\" "
                       "fill=\"#fff\"/><path fill=\"#000\" d=\"",
                       size, size, size, size);
    for (int y = 0; y < w && rc == CU_OK; y++) {
        int x = 0;

        while (x < w && rc == CU_OK) {
            int start;

            while (x < w && !(qr->data[y * w + x] & 1)) {
                x++;
            }
            start = x;
            while (x < w && (qr->data[y * w + x] & 1)) {
                x++;
            }
            if (x > start) {
                rc = cu_buf_printf(out, "M%d %dh%dv1h-%dz", start + QR_QUIET_MODULES,
                                   y + QR_QUIET_MODULES, x - start, x - start);
            }
        }
    }
    if (rc == CU_OK) {
        rc = cu_buf_append_str(out, "\"/></svg>\n");
    }
    return rc;
}

/* cu_totp_qr_svg(text, out): a QR code of text (error correction M) as an SVG document
 * appended to out. CU_E_TOO_LARGE when it does not fit out's cap. */
enum cu_err cu_totp_qr_svg(const char *text, struct cu_buf *out)
{
    size_t start = out->len;
    QRcode *qr = NULL;
    enum cu_err rc;

    errno = 0;
    qr = QRcode_encodeString(text, 0, QR_ECLEVEL_M, QR_MODE_8, 1);
    if (qr == NULL) {
        return errno == ERANGE ? CU_E_TOO_LARGE : errno == EINVAL ? CU_E_INVALID : CU_E_NOMEM;
    }
    rc = svg_draw(qr, out);
    cu_crypto_wipe(qr->data, (size_t)qr->width * (size_t)qr->width);
    QRcode_free(qr);
    if (rc != CU_OK && out->data != NULL) {
        /* Take back what was appended: it draws the secret. */
        cu_crypto_wipe(out->data + start, out->len - start);
        out->len = start;
    }
    return rc;
}

/* otp_rc(r): the error for a liboath result. */
static enum cu_err otp_rc(int r)
{
    return r == OATH_OK ? CU_OK : CU_E_INTERNAL;
}

/* cu_hotp_code(secret, n, counter, digits, out): the HOTP value for counter, digits (6..8)
 * decimal digits and a NUL into out (at least digits + 1 bytes). */
enum cu_err cu_hotp_code(const uint8_t *secret, size_t n, uint64_t counter, unsigned digits,
                         char *out)
{
    enum cu_err rc = cu_totp_init();

    if (rc != CU_OK) {
        return rc;
    }
    if (n == 0 || digits < CU_TOTP_DIGITS || digits > MAX_DIGITS) {
        return CU_E_INVALID;
    }
    return otp_rc(oath_hotp_generate((const char *)secret, n, counter, digits, false,
                                     OATH_HOTP_DYNAMIC_TRUNCATION, out));
}

/* totp_code(secret, n, unix_s, digits, flags, out): the TOTP value at unix_s with liboath's
 * flags (0 for HMAC-SHA1, or OATH_TOTP_HMAC_SHA256 / OATH_TOTP_HMAC_SHA512). */
static enum cu_err totp_code(const uint8_t *secret, size_t n, int64_t unix_s, unsigned digits,
                             int flags, char *out)
{
    enum cu_err rc = cu_totp_init();

    if (rc != CU_OK) {
        return rc;
    }
    if (n == 0 || digits < CU_TOTP_DIGITS || digits > MAX_DIGITS || unix_s < 0) {
        return CU_E_INVALID;
    }
    return otp_rc(oath_totp_generate2((const char *)secret, n, (time_t)unix_s, CU_TOTP_STEP_SECONDS,
                                      OATH_TOTP_DEFAULT_START_TIME, digits, flags, out));
}

/* cu_totp_code(secret, n, unix_s, digits, out): the TOTP value at time unix_s. */
enum cu_err cu_totp_code(const uint8_t *secret, size_t n, int64_t unix_s, unsigned digits,
                         char *out)
{
    return totp_code(secret, n, unix_s, digits, 0, out);
}

/* code_shape_ok(code, len): whether code is exactly CU_TOTP_DIGITS ASCII digits. */
static bool code_shape_ok(const char *code, size_t len)
{
    if (code == NULL || len != CU_TOTP_DIGITS) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (code[i] < '0' || code[i] > '9') {
            return false;
        }
    }
    return true;
}

/* cu_totp_verify(secret, n, unix_s, code, len, last_step, step): checks a 6-digit code
 * against the steps around unix_s. CU_OK with *step set to the matching step when it matches
 * a step later than last_step (-1 when none was used yet); CU_E_INVALID when the code is
 * malformed or matches no step in the window; CU_E_EXISTS when it matches only a step at or
 * before last_step (a replay). */
enum cu_err cu_totp_verify(const uint8_t *secret, size_t n, int64_t unix_s, const char *code,
                           size_t len, int64_t last_step, int64_t *step)
{
    char want[MAX_DIGITS + 1];
    int64_t now, best = -1;
    bool replay = false;
    enum cu_err rc = CU_OK;

    if (!code_shape_ok(code, len) || unix_s < 0 || n == 0) {
        return CU_E_INVALID;
    }
    now = unix_s / CU_TOTP_STEP_SECONDS;
    /* Every step of the window is computed and compared, match or not. */
    for (int64_t s = now - CU_TOTP_WINDOW; s <= now + CU_TOTP_WINDOW && rc == CU_OK; s++) {
        bool match;

        if (s < 0) {
            continue;
        }
        rc = cu_hotp_code(secret, n, (uint64_t)s, CU_TOTP_DIGITS, want);
        match = rc == CU_OK && cu_crypto_memeq(want, code, CU_TOTP_DIGITS);
        if (match && s > last_step) {
            best = s;
        }
        replay |= match && s <= last_step;
    }
    cu_crypto_wipe(want, sizeof want);
    if (rc != CU_OK) {
        return rc;
    }
    if (best >= 0) {
        *step = best;
        return CU_OK;
    }
    return replay ? CU_E_EXISTS : CU_E_INVALID;
}
