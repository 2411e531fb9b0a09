/*
 * identity.h - sign-in for customers and staff: passwords (Argon2id), TOTP, recovery codes,
 * sessions with assurance levels, step-up, and lockout with back-off.
 *
 * The service owns its transactions, because a sign-in hashes a password (tens of
 * milliseconds) between reading the account and recording the outcome, and no write lock may
 * be held that long. Each write transaction carries the audit record of what it did, through
 * the hook the caller gives (struct cu_identity_audit), so a change and its record commit
 * together. docs/internals/identity.md describes the tables, tokens and schedules.
 */
#ifndef CU_IDENTITY_IDENTITY_H
#define CU_IDENTITY_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "base/buf.h"
#include "base/err.h"
#include "crypto/kek.h"
#include "crypto/keyring.h"
#include "crypto/pwhash.h"
#include "audit/audit.h"
#include "crypto/seal.h"
#include "store/store.h"
#include "vault/vault.h"

#define CU_SUBJECT_ID_BYTES 24  /* "cus_"/"stf_" + 16 hex digits + NUL, with room */
#define CU_SESSION_ID_BYTES 21  /* "ses_" + 16 hex digits + NUL */
#define CU_SESSION_TOKEN_LEN 47 /* "css_" + base64url of 32 bytes */
#define CU_SESSION_TOKEN_BYTES 48
#define CU_CHALLENGE_TOKEN_BYTES 48 /* "csc_" + base64url of 32 bytes + NUL */
#define CU_RECOVERY_CODES 10
#define CU_RECOVERY_CODE_BYTES 15 /* "XXXXX-XXXXX-XX" is not used: "xxxxx-xxxxx" + NUL */
#define CU_STAFF_NAME_MAX 128
#define CU_EMAIL_MAX 254
#define CU_USER_AGENT_MAX 256
#define CU_DEVICE_ID_MAX 128
#define CU_IDENTITY_WHY_BYTES 200

enum cu_subject_kind { CU_SUBJECT_CUSTOMER = 1, CU_SUBJECT_STAFF = 2 };

/* cu_subject_kind_name(k): "customer" or "staff". */
const char *cu_subject_kind_name(enum cu_subject_kind k);

/* Assurance levels: aal1 after a password, aal2 after a second factor too. */
enum cu_aal { CU_AAL1 = 1, CU_AAL2 = 2 };

struct cu_identity_opts {
    struct cu_pwhash_params pwhash;
    unsigned hash_concurrency;    /* 0: chosen from cores and memory */
    unsigned hash_wait_ms;        /* how long a sign-in waits for a hashing slot */
    const char *common_passwords; /* path of the common-password list */
    const char *totp_issuer;      /* shown by authenticator apps */
    bool customer_mfa_required;   /* customers must enrol TOTP, as staff must */
    int64_t session_idle_ms;
    int64_t session_absolute_ms;
    int64_t step_up_ms;         /* how recent a strong sign-in must be for fresh-auth routes */
    int64_t challenge_ms;       /* how long an MFA challenge stays open */
    unsigned lockout_threshold; /* failures before the first wait */
    int64_t lockout_base_ms;    /* the first wait; doubled each failure after */
    int64_t lockout_max_ms;     /* the longest wait */
    int64_t lockout_reset_ms;   /* a quiet period after which failures are forgotten */
};

/* The request's side of a sign-in: recorded with events and sessions. Strings may be NULL or
 * empty; longer ones than their maximum are cut. */
struct cu_auth_ctx {
    const char *ip;
    const char *user_agent;
    const char *device_id;
};

/* Audit hook: appends a record inside the service's write transaction on db; consumes
 * details. An error makes the service roll back and fail with it. */
struct cu_identity_audit {
    enum cu_err (*append)(void *arg, struct cu_db *db, const char *action, const char *target,
                          const char *outcome, json_t *details);
    void *arg;
    const struct cu_audit *log; /* keyed hashes of logins in records; NULL leaves them out */
};

struct cu_session_info {
    char id[CU_SESSION_ID_BYTES];
    enum cu_subject_kind kind;
    char subject_id[CU_SUBJECT_ID_BYTES];
    enum cu_aal aal;
    int64_t created_at, last_seen_at, auth_at, expires_at, idle_expires_at, revoked_at;
    char ip[64];
    char user_agent[CU_USER_AGENT_MAX + 1];
    char device_id[CU_DEVICE_ID_MAX + 1];
};

struct cu_staff_info {
    char id[CU_SUBJECT_ID_BYTES];
    char email[CU_EMAIL_MAX + 1]; /* decrypted */
    char name[CU_STAFF_NAME_MAX + 1];
    uint64_t scopes;
    char status[16]; /* active, disabled */
    int64_t created_at, updated_at;
    bool totp_enabled;
    bool has_password;
};

/* What a subject's credentials look like, for GET /v1/me and admins. */
struct cu_credential_info {
    bool has_password;
    bool totp_enabled;
    int64_t password_changed_at, totp_enabled_at;
    int recovery_codes_left;
    unsigned failures;
    int64_t locked_until; /* 0 when not locked */
};

enum cu_login_status {
    CU_LOGIN_OK,           /* a session was made: token and session are set */
    CU_LOGIN_MFA_REQUIRED, /* the password was right; challenge is set */
};

struct cu_login_result {
    enum cu_login_status status;
    struct cu_session_info session;
    char token[CU_SESSION_TOKEN_BYTES];       /* shown once; the caller wipes it */
    char challenge[CU_CHALLENGE_TOKEN_BYTES]; /* likewise */
    bool mfa_enrolment_required;              /* signed in, but must enrol TOTP first */
    int64_t retry_after_ms;                   /* with CU_E_RATE_LIMITED: the wait */
};

struct cu_identity;

/* cu_identity_new(kr, kek, alg, vault, opts, out): the service. Derives its token and code
 * hashing keys from kr, loads the common-password list and starts the hasher. kek and vault
 * must outlive it. Caller frees with cu_identity_free(). CU_E_IO when the password list cannot
 * be read, CU_E_INVALID for hashing parameters out of range. */
CU_WUR enum cu_err cu_identity_new(const struct cu_keyring *kr, struct cu_kek_source *kek,
                                   enum cu_aead alg, struct cu_vault *vault,
                                   const struct cu_identity_opts *opts, struct cu_identity **out);

/* cu_identity_free(idn): wipes and frees idn; NULL does nothing. */
void cu_identity_free(struct cu_identity *idn);

/* cu_identity_hasher(idn): the password hasher (for benchmarks and diagnostics). */
struct cu_hasher *cu_identity_hasher(struct cu_identity *idn);

/* ---- staff ---- */

/* cu_identity_staff_add(idn, db, email, name, scopes, out, why): adds an active staff member
 * in the caller's write transaction (no password or TOTP yet). CU_E_INVALID with why for a bad
 * e-mail, name or scopes; CU_E_EXISTS when the e-mail is taken. */
CU_WUR enum cu_err cu_identity_staff_add(struct cu_identity *idn, struct cu_db *db,
                                         const char *email, const char *name, uint64_t scopes,
                                         struct cu_staff_info *out,
                                         char why[CU_IDENTITY_WHY_BYTES]);

/* cu_identity_staff_get(idn, db, id, out): one staff member, decrypted. CU_E_NOT_FOUND. */
CU_WUR enum cu_err cu_identity_staff_get(struct cu_identity *idn, struct cu_db *db, const char *id,
                                         struct cu_staff_info *out);

/* cu_identity_staff_find(idn, db, email, out): the staff member with this e-mail. */
CU_WUR enum cu_err cu_identity_staff_find(struct cu_identity *idn, struct cu_db *db,
                                          const char *email, struct cu_staff_info *out);

/* cu_identity_staff_list(idn, db, after, limit, out, n): up to limit (1..1000) staff ordered
 * by id after `after` (NULL: from the start). Caller frees *out with cu_free(). */
CU_WUR enum cu_err cu_identity_staff_list(struct cu_identity *idn, struct cu_db *db,
                                          const char *after, size_t limit,
                                          struct cu_staff_info **out, size_t *n);

/* cu_identity_staff_set(idn, db, id, scopes, status): changes a staff member's scopes (0:
 * keep) and status (NULL: keep; "active" or "disabled"). Disabling revokes their sessions. */
CU_WUR enum cu_err cu_identity_staff_set(struct cu_identity *idn, struct cu_db *db, const char *id,
                                         uint64_t scopes, const char *status);

/* cu_identity_staff_rewrap(kek, db, batch, done): re-wraps up to batch staff DEKs not under
 * kek's current version; *done gets how many (for `custodia keys rotate`). */
CU_WUR enum cu_err cu_identity_staff_rewrap(struct cu_kek_source *kek, struct cu_db *db,
                                            size_t batch, size_t *done);

/* cu_identity_staff_kek_usage(db, version, count): staff DEKs wrapped by a KEK version. */
CU_WUR enum cu_err cu_identity_staff_kek_usage(struct cu_db *db, uint32_t version, int64_t *count);

/* ---- passwords ---- */

/* cu_identity_set_password(idn, st, kind, id, pw, len, audit, why): sets a subject's password
 * after the policy check, revoking every session of the subject except keep_session (NULL:
 * all). CU_E_INVALID / CU_E_TOO_LARGE with why; CU_E_NOT_FOUND for an unknown or erased
 * subject; CU_E_BUSY when no hashing slot freed in time. Audited as "credential.password_set". */
CU_WUR enum cu_err cu_identity_set_password(struct cu_identity *idn, struct cu_store *st,
                                            enum cu_subject_kind kind, const char *id,
                                            const char *pw, size_t len, const char *keep_session,
                                            const struct cu_identity_audit *audit,
                                            char why[CU_IDENTITY_WHY_BYTES]);

/* cu_identity_check_password(idn, st, kind, id, pw, len, ctx, audit, ok): whether pw is the
 * subject's current password (for a password change); same cost whether or not there is one.
 * A wrong one counts toward the lockout and is audited; CU_E_RATE_LIMITED while locked. */
CU_WUR enum cu_err cu_identity_check_password(struct cu_identity *idn, struct cu_store *st,
                                              enum cu_subject_kind kind, const char *id,
                                              const char *pw, size_t len,
                                              const struct cu_auth_ctx *ctx,
                                              const struct cu_identity_audit *audit, bool *ok);

/* cu_identity_password_acceptable(idn, pw, len, email, why): the password policy alone (for
 * callers that must check a password before they make its account). */
CU_WUR enum cu_err cu_identity_password_acceptable(const struct cu_identity *idn, const char *pw,
                                                   size_t len, const char *email,
                                                   char why[CU_IDENTITY_WHY_BYTES]);

/* ---- sign-in ---- */

/* cu_identity_login(idn, st, kind, login, password, len, ctx, audit, out): signs a subject in
 * by login (customers: e-mail or external reference; staff: e-mail) and password.
 * CU_OK with out->status CU_LOGIN_OK (a session at aal1, or aal2 never) or
 * CU_LOGIN_MFA_REQUIRED (a challenge). CU_E_BAD_CREDENTIALS for a wrong password, an unknown
 * login or a disabled account alike, at the same cost; CU_E_RATE_LIMITED with
 * out->retry_after_ms while the login is locked out (unknown logins lock out too). Every
 * outcome is recorded as a sign-in event and audited. */
CU_WUR enum cu_err cu_identity_login(struct cu_identity *idn, struct cu_store *st,
                                     enum cu_subject_kind kind, const char *login,
                                     const char *password, size_t len,
                                     const struct cu_auth_ctx *ctx,
                                     const struct cu_identity_audit *audit,
                                     struct cu_login_result *out);

/* cu_identity_mfa(idn, st, challenge, code, ctx, audit, out): completes a challenge with a
 * TOTP code (6 digits) or a recovery code. CU_OK with a session at aal2. CU_E_BAD_CREDENTIALS
 * for an unknown or expired challenge, an account no longer active, or a wrong, replayed or
 * used code (the challenge
 * allows 5 tries; failures count toward the account's lockout); CU_E_RATE_LIMITED while locked. */
CU_WUR enum cu_err cu_identity_mfa(struct cu_identity *idn, struct cu_store *st,
                                   const char *challenge, const char *code,
                                   const struct cu_auth_ctx *ctx,
                                   const struct cu_identity_audit *audit,
                                   struct cu_login_result *out);

/* ---- sessions ---- */

/* cu_identity_session_check(idn, st, token, len, out): the live session of token, its
 * last-seen time moved on (at most once a minute, so reads stay reads). CU_E_UNAUTHENTICATED
 * when the token is malformed, unknown, revoked, idle too long or past its absolute expiry;
 * out->id is then set only for a session that existed (revoked or expired). */
CU_WUR enum cu_err cu_identity_session_check(struct cu_identity *idn, struct cu_store *st,
                                             const char *token, size_t len,
                                             struct cu_session_info *out);

/* cu_identity_subject_state(idn, st, kind, id, scopes, active, has_totp): what a request made
 * with a session of the subject needs: its scopes (staff; 0 for customers), whether it may
 * still sign in, and whether it has a second factor. CU_E_NOT_FOUND for an unknown subject. */
CU_WUR enum cu_err cu_identity_subject_state(struct cu_identity *idn, struct cu_store *st,
                                             enum cu_subject_kind kind, const char *id,
                                             uint64_t *scopes, bool *active, bool *has_totp);

/* cu_identity_account_name(idn, db, kind, id, out, cap, active): the name to show for a
 * subject (its e-mail, else its id), and whether it may sign in. CU_E_NOT_FOUND. */
CU_WUR enum cu_err cu_identity_account_name(struct cu_identity *idn, struct cu_db *db,
                                            enum cu_subject_kind kind, const char *id, char *out,
                                            size_t cap, bool *active);

/* cu_identity_session_fresh(idn, s, now): whether s signed in strongly enough recently for a
 * fresh-auth operation: within the step-up window, and at aal2 when the subject has TOTP. */
bool cu_identity_session_fresh(const struct cu_identity *idn, const struct cu_session_info *s,
                               bool has_totp, int64_t now);

/* cu_identity_step_up(idn, st, session, password, code, ctx, audit): renews a session's
 * sign-in time with a fresh TOTP or recovery code (then aal2), or, for a subject without TOTP,
 * its password. Failures count toward lockout. CU_E_BAD_CREDENTIALS when wrong,
 * CU_E_RATE_LIMITED while locked, CU_E_INVALID when the wrong kind of proof is given. */
CU_WUR enum cu_err cu_identity_step_up(struct cu_identity *idn, struct cu_store *st,
                                       struct cu_session_info *session, const char *password,
                                       size_t plen, const char *code, const struct cu_auth_ctx *ctx,
                                       const struct cu_identity_audit *audit);

/* cu_identity_sessions_list(idn, db, kind, id, out, n): a subject's live sessions, newest
 * first, at most 100. Caller frees *out with cu_free(). */
CU_WUR enum cu_err cu_identity_sessions_list(struct cu_identity *idn, struct cu_db *db,
                                             enum cu_subject_kind kind, const char *id,
                                             struct cu_session_info **out, size_t *n);

/* cu_identity_session_revoke(idn, st, kind, id, session_id, audit): revokes one session of the
 * subject (session_id) or all of them (session_id NULL). CU_E_NOT_FOUND when session_id is
 * not a live session of the subject. */
CU_WUR enum cu_err cu_identity_session_revoke(struct cu_identity *idn, struct cu_store *st,
                                              enum cu_subject_kind kind, const char *id,
                                              const char *session_id,
                                              const struct cu_identity_audit *audit);

/* ---- second factor ---- */

/* cu_identity_totp_begin(idn, st, kind, id, account, uri, urilen, svg): starts TOTP enrolment:
 * a new pending secret (sealed under the subject's key), its otpauth URI naming account, and
 * a QR code of it as SVG appended to svg. Replaces a pending one. */
CU_WUR enum cu_err cu_identity_totp_begin(struct cu_identity *idn, struct cu_store *st,
                                          enum cu_subject_kind kind, const char *id,
                                          const char *account, char *uri, size_t urilen,
                                          struct cu_buf *svg,
                                          const struct cu_identity_audit *audit);

/* cu_identity_totp_confirm(idn, st, kind, id, code, keep_session, audit, codes): activates the
 * pending secret with one valid code, makes 10 new recovery codes (written into codes, shown
 * once: the caller wipes them) and revokes the subject's other sessions. CU_E_NOT_FOUND when no
 * enrolment is pending; CU_E_BAD_CREDENTIALS for a wrong code. */
CU_WUR enum cu_err cu_identity_totp_confirm(struct cu_identity *idn, struct cu_store *st,
                                            enum cu_subject_kind kind, const char *id,
                                            const char *code, const char *keep_session,
                                            const struct cu_identity_audit *audit,
                                            char codes[CU_RECOVERY_CODES][CU_RECOVERY_CODE_BYTES]);

/* cu_identity_recovery_regenerate(idn, st, kind, id, audit, codes): replaces the subject's
 * recovery codes with 10 new ones. CU_E_INVALID when TOTP is not enrolled. */
CU_WUR enum cu_err cu_identity_recovery_regenerate(
    struct cu_identity *idn, struct cu_store *st, enum cu_subject_kind kind, const char *id,
    const struct cu_identity_audit *audit, char codes[CU_RECOVERY_CODES][CU_RECOVERY_CODE_BYTES]);

/* cu_identity_credential_info(idn, db, kind, id, out): what credentials a subject has and
 * its lockout state. CU_E_NOT_FOUND when it has no credentials row and no lockout. */
CU_WUR enum cu_err cu_identity_credential_info(struct cu_identity *idn, struct cu_db *db,
                                               enum cu_subject_kind kind, const char *id,
                                               struct cu_credential_info *out);

/* cu_identity_lockout_clear(idn, st, kind, id, audit): forgets a subject's failures. */
CU_WUR enum cu_err cu_identity_lockout_clear(struct cu_identity *idn, struct cu_store *st,
                                             enum cu_subject_kind kind, const char *id,
                                             const struct cu_identity_audit *audit);

/* cu_identity_lockout_wait(opts, failures): how long an account with this many consecutive
 * failures must wait before its next try: 0 below the threshold, then base doubled per
 * failure past it, capped at the maximum; never overflows. A base of 0 or less means no
 * wait. */
int64_t cu_identity_lockout_wait(const struct cu_identity_opts *opts, uint64_t failures);

/* cu_identity_forget(db, kind, id): deletes, in the caller's transaction, everything sign-in
 * keeps of a subject: credentials, recovery codes, sessions, challenges, lockout and sign-in
 * events (for erasure). */
CU_WUR enum cu_err cu_identity_forget(struct cu_db *db, enum cu_subject_kind kind, const char *id);

/* cu_identity_prune(idn, db): deletes lockout rows quiet for longer than the reset period,
 * expired challenges, and sessions past their absolute expiry for over a day. */
CU_WUR enum cu_err cu_identity_prune(struct cu_identity *idn, struct cu_db *db);

#endif
