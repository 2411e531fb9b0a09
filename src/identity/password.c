/*
 * password.c - the password policy: 12 to 256 characters (UTF-8 code points, no control
 * characters), at least 5 distinct bytes, not containing the account's e-mail address or its
 * local part, and not a common password.
 *
 * The common list (by default John the Ripper's password.lst from Debian's john-data) is read
 * once, lower-cased (ASCII), sorted and deduplicated into one array searched by bisection. A
 * password counts as common when, lower-cased, it is on the list; when what is left after
 * stripping leading and trailing digits, punctuation, symbols and spaces (at least 4
 * characters) is; or when either is one list entry repeated ("passwordpassword"). So
 * "Password1234!" and "sunshine1234" are refused although neither is on the list itself.
 * Nothing here logs or echoes a password.
 */
#include "identity/password.h"

#include "base/text.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/json.h"
#include "base/log.h"
#include "base/mem.h"
#include "crypto/crypto.h"

#define LIST_MAX_LINES 1000000
#define LIST_MAX_LINE_BYTES 256
#define MAX_PASSWORD_BYTES ((size_t)CU_PASSWORD_MAX_CHARS * 4) /* 256 code points, 4 bytes */
#define MIN_DISTINCT_BYTES 5
#define MIN_CORE_CHARS 4  /* shortest stripped core looked up on its own */
#define MIN_LOCAL_CHARS 4 /* shortest local part of an e-mail that is refused on its own */

struct cu_password_policy {
    char *text;     /* the entries, each NUL-terminated, back to back */
    char **entries; /* sorted, distinct, pointing into text */
    size_t n;
};

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* add_line(text, line, lines): appends the entry of one line (newline stripped, lower-cased)
 * to text, skipping empty and '#' lines; counts it in *lines. CU_E_TOO_LARGE for an entry
 * over LIST_MAX_LINE_BYTES. */
static enum cu_err add_line(struct cu_buf *text, char *line, size_t *lines)
{
    size_t len = strcspn(line, "\r\n");

    if (len == 0 || line[0] == '#') {
        return CU_OK;
    }
    if (len > LIST_MAX_LINE_BYTES) {
        return CU_E_TOO_LARGE;
    }
    for (size_t i = 0; i < len; i++) {
        line[i] = cu_ascii_lower(line[i]);
    }
    line[len] = '\0';
    (*lines)++;
    return cu_buf_append(text, line, len + 1);
}

/* read_list(path, f, text, lines): every entry of the open list f into text. CU_E_TOO_LARGE
 * for a line over LIST_MAX_LINE_BYTES or more than LIST_MAX_LINES entries. */
static enum cu_err read_list(const char *path, FILE *f, struct cu_buf *text, size_t *lines)
{
    char line[LIST_MAX_LINE_BYTES + 3]; /* the line, "\r\n" and the NUL */
    enum cu_err rc = CU_OK;

    while (rc == CU_OK && fgets(line, sizeof line, f) != NULL) {
        size_t len = strlen(line);

        if ((len == sizeof line - 1 && line[len - 1] != '\n') || *lines >= LIST_MAX_LINES) {
            rc = CU_E_TOO_LARGE;
        } else {
            rc = add_line(text, line, lines);
        }
    }
    if (rc == CU_OK && ferror(f)) {
        cu_log(CU_LOG_ERROR, "password.list_unreadable", CU_LS("path", path),
               CU_LS("error", strerror(errno)));
        rc = CU_E_IO;
    } else if (rc == CU_E_TOO_LARGE) {
        cu_log(CU_LOG_ERROR, "password.list_too_large", CU_LS("path", path),
               CU_LI("max_lines", LIST_MAX_LINES), CU_LI("max_line_bytes", LIST_MAX_LINE_BYTES));
    }
    return rc;
}

/* index_list(p, lines): points p->entries at the lines entries in p->text, sorted and with
 * duplicates dropped. */
static enum cu_err index_list(struct cu_password_policy *p, size_t lines)
{
    char *s = p->text;
    size_t kept = 0;

    p->entries = cu_calloc(lines > 0 ? lines : 1, sizeof *p->entries);
    if (p->entries == NULL) {
        return CU_E_NOMEM;
    }
    for (size_t i = 0; i < lines; i++) {
        p->entries[i] = s;
        s += strlen(s) + 1;
    }
    qsort(p->entries, lines, sizeof *p->entries, cmp_entry);
    for (size_t i = 0; i < lines; i++) {
        if (kept == 0 || strcmp(p->entries[kept - 1], p->entries[i]) != 0) {
            p->entries[kept++] = p->entries[i];
        }
    }
    p->n = kept;
    return CU_OK;
}

/* cu_password_policy_new(list_path, out): loads the common-password list (one password per
 * line, '#' lines ignored, at most 1,000,000 lines of at most 256 bytes) from list_path.
 * CU_E_IO naming nothing secret when the file cannot be read (the log names the file).
 * Caller frees with cu_password_policy_free(). */
enum cu_err cu_password_policy_new(const char *list_path, struct cu_password_policy **out)
{
    struct cu_password_policy *p = NULL;
    struct cu_buf text;
    size_t lines = 0;
    FILE *f = NULL;
    enum cu_err rc;

    *out = NULL;
    cu_buf_init(&text, (size_t)LIST_MAX_LINES * (LIST_MAX_LINE_BYTES + 1));
    f = fopen(list_path, "r");
    if (f == NULL) {
        cu_log(CU_LOG_ERROR, "password.list_unreadable", CU_LS("path", list_path),
               CU_LS("error", strerror(errno)));
        rc = CU_E_IO;
        goto out;
    }
    rc = read_list(list_path, f, &text, &lines);
    if (rc != CU_OK) {
        goto out;
    }
    p = cu_calloc(1, sizeof *p);
    if (p == NULL) {
        rc = CU_E_NOMEM;
        goto out;
    }
    p->text = cu_buf_steal(&text);
    rc = index_list(p, lines);
out:
    if (f != NULL) {
        fclose(f);
    }
    cu_buf_free(&text);
    if (rc == CU_OK) {
        *out = p;
    } else {
        cu_password_policy_free(p);
    }
    return rc;
}

/* cu_password_policy_free(p): frees p; NULL does nothing. */
void cu_password_policy_free(struct cu_password_policy *p)
{
    if (p == NULL) {
        return;
    }
    cu_free(p->entries);
    cu_free(p->text);
    cu_free(p);
}

/* cu_password_policy_size(p): how many distinct entries the list holds. */
size_t cu_password_policy_size(const struct cu_password_policy *p)
{
    return p->n;
}

/* entry_cmp(e, s, n): strcmp of the entry e against the n bytes at s (which hold no NUL). */
static int entry_cmp(const char *e, const char *s, size_t n)
{
    int c = strncmp(e, s, n);

    if (c != 0) {
        return c;
    }
    return e[n] != '\0' ? 1 : 0;
}

/* listed(p, s, n): whether the n bytes at s are an entry of the list. */
static bool listed(const struct cu_password_policy *p, const char *s, size_t n)
{
    size_t lo = 0, hi = p->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = entry_cmp(p->entries[mid], s, n);

        if (c == 0) {
            return true;
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return false;
}

/* listed_or_repeated(p, s, n): whether s is an entry, or one entry written twice or more. */
static bool listed_or_repeated(const struct cu_password_policy *p, const char *s, size_t n)
{
    if (listed(p, s, n)) {
        return true;
    }
    for (size_t d = 1; d <= n / 2; d++) {
        size_t i = d;

        if (n % d != 0) {
            continue;
        }
        while (i < n && memcmp(s + i, s, d) == 0) {
            i += d;
        }
        if (i == n && listed(p, s, d)) {
            return true;
        }
    }
    return false;
}

/* chars(s, n): the number of UTF-8 code points in the n well-formed bytes at s. */
static size_t chars(const char *s, size_t n)
{
    size_t count = 0;

    for (size_t i = 0; i < n; i++) {
        count += ((unsigned char)s[i] & 0xc0) != 0x80;
    }
    return count;
}

/* padding(c): whether c is stripped from the ends before the list is searched again: an
 * ASCII digit, punctuation, symbol or space. */
static bool padding(char c)
{
    return (c >= ' ' && c <= '/') || (c >= '0' && c <= '@') || (c >= '[' && c <= '`') ||
           (c >= '{' && c <= '~');
}

/* common(p, low, n): whether the lower-cased password low (n bytes) counts as common. */
static bool common(const struct cu_password_policy *p, const char *low, size_t n)
{
    size_t start = 0, end = n;

    if (listed_or_repeated(p, low, n)) {
        return true;
    }
    while (start < end && padding(low[start])) {
        start++;
    }
    while (end > start && padding(low[end - 1])) {
        end--;
    }
    return (start > 0 || end < n) && chars(low + start, end - start) >= MIN_CORE_CHARS &&
           listed_or_repeated(p, low + start, end - start);
}

/* contains(low, n, s, m): whether the m bytes at s, lower-cased, occur in the n lower-case
 * bytes at low. */
static bool contains(const char *low, size_t n, const char *s, size_t m)
{
    if (m == 0 || m > n) {
        return false;
    }
    for (size_t i = 0; i + m <= n; i++) {
        size_t j = 0;

        while (j < m && low[i + j] == cu_ascii_lower(s[j])) {
            j++;
        }
        if (j == m) {
            return true;
        }
    }
    return false;
}

/* email_reason(low, n, email): why the lower-cased password low (n bytes) may not be used for
 * the account of email, ignoring ASCII case: it holds the whole address, or its local part
 * (when that has at least MIN_LOCAL_CHARS characters); NULL when it holds neither. The reason
 * names the part, never its text, so it tells no one the address. */
static const char *email_reason(const char *low, size_t n, const char *email)
{
    size_t m = strlen(email);
    const char *at = memrchr(email, '@', m);
    size_t local = at != NULL ? (size_t)(at - email) : m;

    if (contains(low, n, email, m))
        return "the password must not contain the e-mail address";
    if (chars(email, local) >= MIN_LOCAL_CHARS && contains(low, n, email, local))
        return "the password must not contain the part of the e-mail address before the @";
    return NULL;
}

/* distinct_bytes(s, n): how many different byte values the n bytes at s hold. */
static unsigned distinct_bytes(const char *s, size_t n)
{
    bool seen[256] = {false};
    unsigned count = 0;

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        count += !seen[c];
        seen[c] = true;
    }
    return count;
}

/* shape_check(pw, len, why): the rules on the form of pw (encoding, control characters,
 * length, variety); CU_OK or the error of the first that fails, with why filled. */
static enum cu_err shape_check(const char *pw, size_t len, const char **why)
{
    size_t n;

    if (len > MAX_PASSWORD_BYTES) {
        *why = "the password must be at most 256 characters";
        return CU_E_TOO_LARGE;
    }
    if (!cu_utf8_valid(pw, len)) {
        *why = "the password must be valid UTF-8";
        return CU_E_INVALID;
    }
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)pw[i] < 0x20 || pw[i] == 0x7f) {
            *why = "the password must not contain control characters";
            return CU_E_INVALID;
        }
    }
    n = chars(pw, len);
    if (n > CU_PASSWORD_MAX_CHARS) {
        *why = "the password must be at most 256 characters";
        return CU_E_TOO_LARGE;
    }
    if (n < CU_PASSWORD_MIN_CHARS) {
        *why = "the password must be at least 12 characters";
        return CU_E_INVALID;
    }
    if (distinct_bytes(pw, len) < MIN_DISTINCT_BYTES) {
        *why = "the password must use at least 5 different characters";
        return CU_E_INVALID;
    }
    return CU_OK;
}

/* cu_password_check(p, pw, len, email, why): CU_OK when pw (len bytes) may be used by the
 * account whose e-mail is email (NULL when it has none). Otherwise CU_E_INVALID (malformed
 * UTF-8, a control character, too short, common, contains the e-mail or its local part,
 * fewer than 5 distinct characters) or CU_E_TOO_LARGE (over 256 characters), with why
 * (CU_PASSWORD_WHY_BYTES) saying which rule failed (for the e-mail, whether the whole address
 * or the part before the @), never echoing the password or the address. */
enum cu_err cu_password_check(const struct cu_password_policy *p, const char *pw, size_t len,
                              const char *email, char why[CU_PASSWORD_WHY_BYTES])
{
    char low[MAX_PASSWORD_BYTES];
    const char *reason = "", *mail = NULL;
    enum cu_err rc;

    rc = shape_check(pw, len, &reason);
    if (rc != CU_OK) {
        goto out;
    }
    for (size_t i = 0; i < len; i++) {
        low[i] = cu_ascii_lower(pw[i]);
    }
    if (email != NULL && (mail = email_reason(low, len, email)) != NULL) {
        reason = mail;
        rc = CU_E_INVALID;
    } else if (common(p, low, len)) {
        reason = "the password is too common";
        rc = CU_E_INVALID;
    }
    cu_crypto_wipe(low, len);
out:
    if (why != NULL) {
        snprintf(why, CU_PASSWORD_WHY_BYTES, "%s", reason);
    }
    return rc;
}
