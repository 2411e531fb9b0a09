/*
 * password.h - the password policy: length 12..256 characters, not a common password (a
 * list packaged by Debian, by default John the Ripper's password.lst), not built around the
 * account's e-mail address, and not one character repeated.
 */
#ifndef CU_IDENTITY_PASSWORD_H
#define CU_IDENTITY_PASSWORD_H

#include <stddef.h>

#include "base/err.h"

#define CU_PASSWORD_MIN_CHARS 12
#define CU_PASSWORD_MAX_CHARS 256
#define CU_PASSWORD_WHY_BYTES 160

struct cu_password_policy;

/* cu_password_policy_new(list_path, out): loads the common-password list (one password per
 * line, '#' lines ignored, at most 1,000,000 lines of at most 256 bytes) from list_path.
 * CU_E_IO naming nothing secret when the file cannot be read (the log names the file).
 * Caller frees with cu_password_policy_free(). */
CU_WUR enum cu_err cu_password_policy_new(const char *list_path, struct cu_password_policy **out);

/* cu_password_policy_free(p): frees p; NULL does nothing. */
void cu_password_policy_free(struct cu_password_policy *p);

/* cu_password_policy_size(p): how many distinct entries the list holds. */
size_t cu_password_policy_size(const struct cu_password_policy *p);

/* cu_password_check(p, pw, len, email, why): CU_OK when pw (len bytes) may be used by the
 * account whose e-mail is email (NULL when it has none). Otherwise CU_E_INVALID (malformed
 * UTF-8, a control character, too short, common, contains the e-mail or its local part,
 * fewer than 5 distinct characters) or CU_E_TOO_LARGE (over 256 characters), with why
 * (CU_PASSWORD_WHY_BYTES) saying which rule failed (for the e-mail, whether the whole address
 * or the part before the @), never echoing the password or the address. */
CU_WUR enum cu_err cu_password_check(const struct cu_password_policy *p, const char *pw, size_t len,
                                     const char *email, char why[CU_PASSWORD_WHY_BYTES]);

#endif
