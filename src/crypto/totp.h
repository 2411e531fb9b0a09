/*
 * totp.h - time-based one-time passwords (RFC 6238 over RFC 4226 HOTP, HMAC-SHA1, 6 digits,
 * 30-second steps) through liboath, enrolment URIs and QR codes (libqrencode, drawn as SVG).
 *
 * Verification accepts the current step and one on each side, compares in constant time, and
 * refuses a step at or before the last one used, so a code works once.
 */
#ifndef CU_CRYPTO_TOTP_H
#define CU_CRYPTO_TOTP_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/err.h"

#define CU_TOTP_SECRET_BYTES 20 /* 160-bit secret, as RFC 4226 recommends */
#define CU_TOTP_DIGITS 6
#define CU_TOTP_STEP_SECONDS 30
#define CU_TOTP_WINDOW 1        /* steps accepted on each side of now */
#define CU_TOTP_BASE32_BYTES 40 /* base32 of a secret, unpadded, + NUL */
#define CU_TOTP_URI_BYTES 512

/* cu_totp_init(): initialises liboath once per process; CU_E_INTERNAL if it fails. Safe to
 * call from several threads. */
CU_WUR enum cu_err cu_totp_init(void);

/* cu_totp_secret_new(out): a fresh random secret. */
void cu_totp_secret_new(uint8_t out[CU_TOTP_SECRET_BYTES]);

/* cu_totp_base32(secret, n, out, outlen): secret as unpadded RFC 4648 base32.
 * CU_E_TOO_LARGE when out is too small. */
CU_WUR enum cu_err cu_totp_base32(const uint8_t *secret, size_t n, char *out, size_t outlen);

/* cu_totp_uri(secret, issuer, account, out, outlen): the otpauth://totp/ URI that
 * authenticator apps read (issuer and account percent-encoded; algorithm, digits, period
 * stated). CU_E_TOO_LARGE when out is too small. */
CU_WUR enum cu_err cu_totp_uri(const uint8_t secret[CU_TOTP_SECRET_BYTES], const char *issuer,
                               const char *account, char *out, size_t outlen);

/* cu_totp_qr_svg(text, out): a QR code of text (error correction M) as an SVG document
 * appended to out. CU_E_TOO_LARGE when it does not fit out's cap. */
CU_WUR enum cu_err cu_totp_qr_svg(const char *text, struct cu_buf *out);

/* cu_hotp_code(secret, n, counter, digits, out): the HOTP value for counter, digits (6..8)
 * decimal digits and a NUL into out (at least digits + 1 bytes). */
CU_WUR enum cu_err cu_hotp_code(const uint8_t *secret, size_t n, uint64_t counter, unsigned digits,
                                char *out);

/* cu_totp_code(secret, n, unix_s, digits, out): the TOTP value at time unix_s. */
CU_WUR enum cu_err cu_totp_code(const uint8_t *secret, size_t n, int64_t unix_s, unsigned digits,
                                char *out);

/* cu_totp_verify(secret, n, unix_s, code, len, last_step, step): checks a 6-digit code
 * against the steps around unix_s. CU_OK with *step set to the matching step when it matches
 * a step later than last_step (-1 when none was used yet); CU_E_INVALID when the code is
 * malformed or matches no step in the window; CU_E_EXISTS when it matches only a step at or
 * before last_step (a replay). */
CU_WUR enum cu_err cu_totp_verify(const uint8_t *secret, size_t n, int64_t unix_s, const char *code,
                                  size_t len, int64_t last_step, int64_t *step);

#endif
