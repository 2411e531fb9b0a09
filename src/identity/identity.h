/*
 * identity.h - sign-in for customers and staff: passwords (Argon2id), TOTP, recovery codes,
 * sessions with assurance levels, step-up, and lockout with back-off.
 *
 * Every change is made in the caller's unit of work (store/work.h): a function that changes
 * state takes the unit w and the committer's db, runs inside the unit's change, and audits
 * with the unit, so a change and its records commit together. Reads take a read view db. A
 * sign-in hashes a password (tens of milliseconds) between reading the account and recording
 * the outcome, and no unit may wait that long: such operations come in two halves, a check
 * (the reads and the hash, before the unit) and a record (the writes, in the unit), with a
 * state struct between them. docs/internals/identity.md describes the tables, tokens and
 * schedules.
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
#include "store/work.h"
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
    int64_t step_up_ms;           /* how recent a strong sign-in must be for fresh-auth routes */
    int64_t challenge_ms;         /* how long an MFA challenge stays open */
    unsigned lockout_threshold;   /* failures before the first wait */
    int64_t lockout_base_ms;      /* the first wait; doubled each failure after */
    int64_t lockout_max_ms;       /* the longest wait */
    int64_t lockout_reset_ms;     /* a quiet period after which failures are forgotten */
    const struct cu_audit *audit; /* keyed hashes of logins in records; NULL leaves them out */
};

/* The request's side of a sign-in: recorded with events and sessions. Strings may be NULL or
 * empty; longer ones than their maximum are cut. */
struct cu_auth_ctx {
    const char *ip;     /* as custodia keeps addresses (a keyed hash by default) */
    const char *raw_ip; /* the address itself, for monitoring alone (which keeps a pseudonym) */
    const char *user_agent;
    const char *device_id;
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

/* Roles stored with a staff member or a key: names separated by one space. */
#define CU_ROLES_MAX 8
#define CU_ROLES_BYTES ((size_t)CU_ROLES_MAX * 65)
/* Bytes of a staff member's department or region, with the NUL. */
#define CU_STAFF_ATTR_BYTES 65

/* What the access policy reads of a staff member (docs/access.md). Empty strings and 0: not
 * set. */
struct cu_staff_access {
    char roles[CU_ROLES_BYTES];
    char department[CU_STAFF_ATTR_BYTES];
    char region[CU_STAFF_ATTR_BYTES];
    int64_t training_valid_until; /* Unix ms */
};

/* cu_identity_roles_check(roles, why): CU_OK when roles is empty or up to CU_ROLES_MAX
 * distinct names of lower-case letters, digits and '_' (1 to 64 each) separated by one space;
 * else CU_E_INVALID with why. Whether the policy knows them is the caller's to check. */
CU_WUR enum cu_err cu_identity_roles_check(const char *roles, char why[CU_IDENTITY_WHY_BYTES]);

struct cu_staff_info {
    char id[CU_SUBJECT_ID_BYTES];
    char email[CU_EMAIL_MAX + 1]; /* decrypted */
    char name[CU_STAFF_NAME_MAX + 1];
    uint64_t scopes;
    char status[16]; /* active, disabled */
    int64_t created_at, updated_at;
    bool totp_enabled;
    bool has_password;
    struct cu_staff_access access;
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

/* ---- the monitoring hook (docs/monitoring.md, "At sign-in") ---- */

/* A sign-in step monitoring is asked about, inside the step's unit of work. */
struct cu_signin_event {
    const char *type;          /* "login_succeeded", "login_failed", "mfa_failed" */
    enum cu_subject_kind kind; /* only customers are asked about, for now */
    const char *id;            /* the account, or NULL for a login that names none */
    const char *subject;       /* the lockout key (a keyed form for a login that names none) */
    const struct cu_auth_ctx *ctx;
    void **memo; /* the hook's own slot, kept across runs of the unit (NULL at first) */
};

enum cu_signin_verdict {
    CU_SIGNIN_LET = 0, /* go on */
    CU_SIGNIN_MFA,     /* demand the second factor: refused when the customer has none */
    CU_SIGNIN_DENY,    /* refuse the sign-in, as a wrong password or code is refused */
};

#define CU_SIGNIN_DECISION_BYTES 24

/* What the hook answers (zeroed before it is called). */
struct cu_signin_out {
    enum cu_signin_verdict verdict;
    int64_t lock_ms;                         /* > 0: lock sign-in to the account for that long */
    char decision[CU_SIGNIN_DECISION_BYTES]; /* the decision's id, or "" */
};

struct cu_identity_hook {
    enum cu_err (*decide)(void *arg, struct cu_work *w, struct cu_db *db,
                          const struct cu_signin_event *ev, struct cu_signin_out *out);
    void *arg;
    void (*memo_free)(void *memo); /* frees what decide kept in *memo */
};

/* cu_identity_set_hook(idn, hook): the monitoring hook (before any sign-in runs). */
void cu_identity_set_hook(struct cu_identity *idn, const struct cu_identity_hook *hook);

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

/* cu_identity_staff_set_access(idn, db, id, a): replaces what the access policy reads of a
 * staff member (roles, department, region, training). CU_E_INVALID with why for a bad value,
 * CU_E_NOT_FOUND for an unknown id. */
CU_WUR enum cu_err cu_identity_staff_set_access(struct cu_identity *idn, struct cu_db *db,
                                                const char *id, const struct cu_staff_access *a,
                                                char why[CU_IDENTITY_WHY_BYTES]);

/* cu_identity_staff_rewrap(kek, db, batch, done): re-wraps up to batch staff DEKs not under
 * kek's current version; *done gets how many (for `custodia keys rotate`). */
CU_WUR enum cu_err cu_identity_staff_rewrap(struct cu_kek_source *kek, struct cu_db *db,
                                            size_t batch, size_t *done);

/* cu_identity_staff_kek_usage(db, version, count): staff DEKs wrapped by a KEK version. */
CU_WUR enum cu_err cu_identity_staff_kek_usage(struct cu_db *db, uint32_t version, int64_t *count);

/* ---- passwords ---- */

/* A password being set, from its check (the policy, then the hash) to its record. The caller
 * sets kind, id and keep_session ("" revokes every session of the subject). */
struct cu_identity_password {
    enum cu_subject_kind kind;
    char id[CU_SUBJECT_ID_BYTES];
    char keep_session[CU_SESSION_ID_BYTES];
    char hash[CU_PWHASH_STR_BYTES]; /* made by the check; cu_identity_password_clear wipes it */
    char email[CU_EMAIL_MAX + 1];   /* the subject's, read by the check; wiped likewise */
};

/* cu_identity_password_check(idn, db, op, pw, len, why): the policy check and the hash of pw,
 * for op's subject. CU_E_INVALID / CU_E_TOO_LARGE with why; CU_E_NOT_FOUND for an unknown,
 * erased or disabled subject; CU_E_UNAVAILABLE when no hashing slot freed in time. */
CU_WUR enum cu_err cu_identity_password_check(struct cu_identity *idn, struct cu_db *db,
                                              struct cu_identity_password *op, const char *pw,
                                              size_t len, char why[CU_IDENTITY_WHY_BYTES]);

/* cu_identity_password_read(idn, db, op): cu_identity_password_check's reads alone (the subject
 * active, its e-mail into op->email), so that the caller holds no database connection while
 * cu_identity_password_prepare(idn, op, pw, len, op->email, why) then hashes. */
CU_WUR enum cu_err cu_identity_password_read(struct cu_identity *idn, struct cu_db *db,
                                             struct cu_identity_password *op);

/* cu_identity_password_prepare(idn, op, pw, len, email, why): cu_identity_password_check for a
 * subject not made yet (whose e-mail, which a password must not contain, is email or NULL):
 * the policy check and the hash, without reading the subject. */
CU_WUR enum cu_err cu_identity_password_prepare(struct cu_identity *idn,
                                                struct cu_identity_password *op, const char *pw,
                                                size_t len, const char *email,
                                                char why[CU_IDENTITY_WHY_BYTES]);

/* cu_identity_password_record(idn, w, db, op): stores the hash op's check made and revokes the
 * subject's sessions but op->keep_session, audited as "credential.password_set". CU_E_NOT_FOUND
 * when the subject is no longer active. */
CU_WUR enum cu_err cu_identity_password_record(struct cu_identity *idn, struct cu_work *w,
                                               struct cu_db *db,
                                               const struct cu_identity_password *op);

/* cu_identity_password_clear(op): wipes op. */
void cu_identity_password_clear(struct cu_identity_password *op);

/* A subject's current password being verified (for a password change). The caller sets kind,
 * id and ctx; the check sets ok. */
struct cu_identity_verify {
    enum cu_subject_kind kind;
    char id[CU_SUBJECT_ID_BYTES];
    struct cu_auth_ctx ctx;
    bool ok;                            /* set by the check */
    char verified[CU_PWHASH_STR_BYTES]; /* the stored hash it was checked against */
    int64_t verified_at;                /* that password's password_changed_at */
    enum cu_err result; /* set by the record: CU_OK, CU_E_BAD_CREDENTIALS or CU_E_RATE_LIMITED */
    int64_t retry_after_ms; /* with CU_E_RATE_LIMITED: the wait */
};

/* cu_identity_verify_check(idn, db, op, pw, len): whether pw is the subject's current password
 * (op->ok); the same cost whether or not it has one. CU_E_RATE_LIMITED while the subject is
 * locked out, CU_E_INVALID for an empty or over-long pw, CU_E_UNAVAILABLE without a hashing
 * slot. */
CU_WUR enum cu_err cu_identity_verify_check(struct cu_identity *idn, struct cu_db *db,
                                            struct cu_identity_verify *op, const char *pw,
                                            size_t len);

/* cu_identity_verify_read(idn, db, op) and cu_identity_verify_hash(idn, op, pw, len):
 * cu_identity_verify_check in its two steps, the reads on db (CU_E_RATE_LIMITED while
 * locked), then the hash without it. */
CU_WUR enum cu_err cu_identity_verify_read(struct cu_identity *idn, struct cu_db *db,
                                           struct cu_identity_verify *op);
CU_WUR enum cu_err cu_identity_verify_hash(struct cu_identity *idn, struct cu_identity_verify *op,
                                           const char *pw, size_t len);

/* cu_identity_verify_record(idn, w, db, op): decides under the lockout row's lock: a wrong
 * password (op->ok false, or a password changed since the check) counts toward the subject's
 * lockout, with its event and "credential.password_check" failure record (op->result
 * CU_E_BAD_CREDENTIALS); a locked subject is refused (CU_E_RATE_LIMITED, a right password
 * too); a right one records nothing (CU_OK). */
CU_WUR enum cu_err cu_identity_verify_record(struct cu_identity *idn, struct cu_work *w,
                                             struct cu_db *db, struct cu_identity_verify *op);

/* cu_identity_password_acceptable(idn, pw, len, email, why): the password policy alone (for
 * callers that must check a password before they make its account). */
CU_WUR enum cu_err cu_identity_password_acceptable(const struct cu_identity *idn, const char *pw,
                                                   size_t len, const char *email,
                                                   char why[CU_IDENTITY_WHY_BYTES]);

/* ---- sign-in ---- */

/* A sign-in by login (customers: e-mail or external reference; staff: e-mail) and password,
 * from its check to its record. The caller sets kind, login and ctx; the record sets result
 * and out. */
struct cu_identity_login {
    enum cu_subject_kind kind;
    char login[CU_EMAIL_MAX + 1];
    struct cu_auth_ctx ctx;
    /* set by the check, read by the record */
    bool found;                   /* the login names an active account */
    char id[CU_SUBJECT_ID_BYTES]; /* that account */
    char subject[96];             /* the lockout row's key */
    bool totp_enabled;
    bool locked;                        /* locked out at the check: no hash was made */
    bool ok;                            /* the password is right */
    char verified[CU_PWHASH_STR_BYTES]; /* the stored hash it was checked against */
    int64_t verified_at;                /* that password's password_changed_at */
    char newhash[CU_PWHASH_STR_BYTES];  /* a re-hash under today's parameters, or "" */
    /* the outcome */
    enum cu_err result; /* CU_OK, CU_E_BAD_CREDENTIALS or CU_E_RATE_LIMITED */
    struct cu_login_result out;
    /* the monitoring hook's decision, kept across runs of the unit; freed by the clear */
    void *hook_memo;
    void (*hook_memo_free)(void *memo);
};

/* cu_identity_login_check(idn, db, op, password, len): reads the account op->login names and
 * verifies password, at the same cost for an unknown login, a wrong password or a disabled
 * account. CU_E_INVALID for a malformed login or password; CU_E_UNAVAILABLE without a hashing
 * slot. The outcome is decided by the record. */
CU_WUR enum cu_err cu_identity_login_check(struct cu_identity *idn, struct cu_db *db,
                                           struct cu_identity_login *op, const char *password,
                                           size_t len);

/* cu_identity_login_read(idn, db, op) and cu_identity_login_verify(idn, op, password, len):
 * cu_identity_login_check in its two steps, the reads on db, then the hash without db, so that
 * a caller holds no database connection while the password is hashed. */
CU_WUR enum cu_err cu_identity_login_read(struct cu_identity *idn, struct cu_db *db,
                                          struct cu_identity_login *op);
CU_WUR enum cu_err cu_identity_login_verify(struct cu_identity *idn, struct cu_identity_login *op,
                                            const char *password, size_t len);

/* cu_identity_login_record(idn, w, db, op): checks the lockout again under its row lock, and
 * that the account is still active with the password the check verified (one reset or
 * disabled meanwhile fails), and records the outcome: a session at aal1 (or a challenge when the
 * account has a second factor) and op->result CU_OK; a failure counted toward the lockout,
 * op->result CU_E_BAD_CREDENTIALS; or, while locked out, op->result CU_E_RATE_LIMITED with
 * op->out.retry_after_ms. Every outcome is a sign-in event and an "auth.login" record. Returns a
 * store error, else CU_OK (keep). */
CU_WUR enum cu_err cu_identity_login_record(struct cu_identity *idn, struct cu_work *w,
                                            struct cu_db *db, struct cu_identity_login *op);

/* cu_identity_login_clear(op): wipes the tokens and the re-hash op holds. */
void cu_identity_login_clear(struct cu_identity_login *op);

/* The second step of a sign-in: a challenge completed with a TOTP or recovery code. */
struct cu_identity_mfa {
    uint8_t challenge_hash[32];
    char code[65];
    struct cu_auth_ctx ctx;
    enum cu_err result; /* CU_OK, CU_E_BAD_CREDENTIALS or CU_E_RATE_LIMITED */
    struct cu_login_result out;
    void *hook_memo; /* as cu_identity_login's */
    void (*hook_memo_free)(void *memo);
};

/* cu_identity_mfa_check(idn, op, challenge, code): takes the challenge token and code into op.
 * CU_E_INVALID for a missing or over-long code, CU_E_BAD_CREDENTIALS for a malformed token. */
CU_WUR enum cu_err cu_identity_mfa_check(struct cu_identity *idn, struct cu_identity_mfa *op,
                                         const char *challenge, const char *code);

/* cu_identity_mfa_record(idn, w, db, op): completes the challenge: a session at aal2 and
 * op->result CU_OK; CU_E_BAD_CREDENTIALS for an unknown or expired challenge, an account no
 * longer active, or a wrong, replayed or used code (a challenge allows 5 tries; failures count
 * toward the account's lockout); CU_E_RATE_LIMITED while locked. */
CU_WUR enum cu_err cu_identity_mfa_record(struct cu_identity *idn, struct cu_work *w,
                                          struct cu_db *db, struct cu_identity_mfa *op);

/* cu_identity_mfa_clear(op): wipes op. */
void cu_identity_mfa_clear(struct cu_identity_mfa *op);

/* ---- sessions ---- */

/* cu_identity_session_check(idn, db, token, len, out, touch): the live session of token.
 * *touch says its last-seen time is due to move on (at most once a minute, so reads stay
 * reads): the caller then runs cu_identity_session_touch (touch true) in its unit of work, as
 * it does (touch false) in any unit the session's request commits. out shows the
 * session as touched. CU_E_UNAUTHENTICATED when the token is malformed, unknown, revoked, idle
 * too long or past its absolute expiry; out->id is then set only for a session that existed. */
CU_WUR enum cu_err cu_identity_session_check(struct cu_identity *idn, struct cu_db *db,
                                             const char *token, size_t len,
                                             struct cu_session_info *out, bool *touch);

/* cu_identity_session_touch(idn, db, id, now, touch): in a unit of work of a request made with
 * session id: CU_E_UNAUTHENTICATED unless the session is still live at now (a revocation, an
 * expiry or the idle timeout since the request was authenticated fails the unit), and, when
 * touch, its last-seen time moved on to now. */
CU_WUR enum cu_err cu_identity_session_touch(struct cu_identity *idn, struct cu_db *db,
                                             const char *id, int64_t now, bool touch);

/* cu_identity_subject_state(idn, db, kind, id, scopes, active, has_totp): what a request made
 * with a session of the subject needs: its scopes (staff; 0 for customers), whether it may
 * still sign in, and whether it has a second factor. CU_E_NOT_FOUND for an unknown subject. */
CU_WUR enum cu_err cu_identity_subject_state(struct cu_identity *idn, struct cu_db *db,
                                             enum cu_subject_kind kind, const char *id,
                                             uint64_t *scopes, bool *active, bool *has_totp);

/* cu_identity_staff_access(db, id, out): what the access policy reads of a staff member, from
 * their own row. CU_E_NOT_FOUND. */
CU_WUR enum cu_err cu_identity_staff_access(struct cu_db *db, const char *id,
                                            struct cu_staff_access *out);

/* cu_identity_account_name(idn, db, kind, id, out, cap, active): the name to show for a
 * subject (its e-mail, else its id), and whether it may sign in. CU_E_NOT_FOUND. */
CU_WUR enum cu_err cu_identity_account_name(struct cu_identity *idn, struct cu_db *db,
                                            enum cu_subject_kind kind, const char *id, char *out,
                                            size_t cap, bool *active);

/* cu_identity_session_fresh(idn, s, now): whether s signed in strongly enough recently for a
 * fresh-auth operation: within the step-up window, and at aal2 when the subject has TOTP. */
bool cu_identity_session_fresh(const struct cu_identity *idn, const struct cu_session_info *s,
                               bool has_totp, int64_t now);

/* A step-up: a session's sign-in time renewed with a fresh TOTP or recovery code (then aal2),
 * or, for a subject without TOTP, its password. The caller sets session and ctx. */
struct cu_identity_step_up {
    struct cu_session_info session; /* the outcome's session too */
    struct cu_auth_ctx ctx;
    bool has_code;
    char code[65];
    bool password_ok;   /* set by the check */
    enum cu_err result; /* CU_OK, CU_E_BAD_CREDENTIALS or CU_E_RATE_LIMITED */
};

/* cu_identity_step_up_check(idn, db, op, password, plen, code): takes the proof: CU_E_INVALID
 * when the wrong kind is given (a code for a subject with TOTP, else its password), or one over
 * its limit; verifies a password (CU_E_UNAVAILABLE without a hashing slot). */
CU_WUR enum cu_err cu_identity_step_up_check(struct cu_identity *idn, struct cu_db *db,
                                             struct cu_identity_step_up *op, const char *password,
                                             size_t plen, const char *code);

/* cu_identity_step_up_record(idn, w, db, op): renews the session (op->result CU_OK, and
 * op->session as renewed), or counts the failure toward the lockout (CU_E_BAD_CREDENTIALS), or
 * refuses while locked (CU_E_RATE_LIMITED). Audited as "auth.step_up". */
CU_WUR enum cu_err cu_identity_step_up_record(struct cu_identity *idn, struct cu_work *w,
                                              struct cu_db *db, struct cu_identity_step_up *op);

/* cu_identity_step_up_clear(op): wipes op. */
void cu_identity_step_up_clear(struct cu_identity_step_up *op);

/* cu_identity_sessions_list(idn, db, kind, id, out, n): a subject's live sessions, newest
 * first, at most 100. Caller frees *out with cu_free(). */
CU_WUR enum cu_err cu_identity_sessions_list(struct cu_identity *idn, struct cu_db *db,
                                             enum cu_subject_kind kind, const char *id,
                                             struct cu_session_info **out, size_t *n);

/* cu_identity_session_revoke(idn, w, db, kind, id, session_id): revokes one session of the
 * subject (session_id) or all of them (session_id NULL), audited as "session.revoked".
 * CU_E_NOT_FOUND when session_id is not a live session of the subject. */
CU_WUR enum cu_err cu_identity_session_revoke(struct cu_identity *idn, struct cu_work *w,
                                              struct cu_db *db, enum cu_subject_kind kind,
                                              const char *id, const char *session_id);
/* cu_identity_session_revoke_all(idn, w, db, kind, id, count): every session of the subject
 * revoked, as above; count gets how many were live. */
CU_WUR enum cu_err cu_identity_session_revoke_all(struct cu_identity *idn, struct cu_work *w,
                                                  struct cu_db *db, enum cu_subject_kind kind,
                                                  const char *id, int64_t *count);

/* cu_identity_password_force_reset(idn, w, db, id, cleared, sessions): the customer's password
 * is cleared (sign-in with a password is refused until a new one is set, by the company's
 * reset flow through PUT /v1/customers/{id}/password) and every session ended: *cleared says
 * whether there was a password, *sessions how many ended; audited (password.reset_forced). */
CU_WUR enum cu_err cu_identity_password_force_reset(struct cu_identity *idn, struct cu_work *w,
                                                    struct cu_db *db, const char *id, bool *cleared,
                                                    int64_t *sessions);

/* cu_identity_lock_customer(db, id, now, until): locks the customer's sign-in until then (a
 * lock that runs longer stays), as the lockout does. */
CU_WUR enum cu_err cu_identity_lock_customer(struct cu_db *db, const char *id, int64_t now,
                                             int64_t until);

/* ---- second factor ---- */

/* cu_identity_totp_begin(idn, w, db, kind, id, account, uri, urilen, svg): starts TOTP
 * enrolment: a new pending secret (sealed under the subject's key), its otpauth URI naming
 * account, and a QR code of it as SVG appended to svg. Replaces a pending one. */
CU_WUR enum cu_err cu_identity_totp_begin(struct cu_identity *idn, struct cu_work *w,
                                          struct cu_db *db, enum cu_subject_kind kind,
                                          const char *id, const char *account, char *uri,
                                          size_t urilen, struct cu_buf *svg);

/* cu_identity_totp_confirm(idn, w, db, kind, id, code, keep_session, codes): activates the
 * pending secret with one valid code, makes 10 new recovery codes (written into codes, shown
 * once: the caller wipes them) and revokes the subject's other sessions. CU_E_NOT_FOUND when no
 * enrolment is pending; CU_E_BAD_CREDENTIALS for a wrong code. */
CU_WUR enum cu_err cu_identity_totp_confirm(struct cu_identity *idn, struct cu_work *w,
                                            struct cu_db *db, enum cu_subject_kind kind,
                                            const char *id, const char *code,
                                            const char *keep_session,
                                            char codes[CU_RECOVERY_CODES][CU_RECOVERY_CODE_BYTES]);

/* cu_identity_recovery_regenerate(idn, w, db, kind, id, codes): replaces the subject's
 * recovery codes with 10 new ones. CU_E_INVALID when TOTP is not enrolled. */
CU_WUR enum cu_err
cu_identity_recovery_regenerate(struct cu_identity *idn, struct cu_work *w, struct cu_db *db,
                                enum cu_subject_kind kind, const char *id,
                                char codes[CU_RECOVERY_CODES][CU_RECOVERY_CODE_BYTES]);

/* cu_identity_credential_info(idn, db, kind, id, out): what credentials a subject has and
 * its lockout state. CU_E_NOT_FOUND when it has no credentials row and no lockout. */
CU_WUR enum cu_err cu_identity_credential_info(struct cu_identity *idn, struct cu_db *db,
                                               enum cu_subject_kind kind, const char *id,
                                               struct cu_credential_info *out);

/* cu_identity_lockout_clear(idn, w, db, kind, id): forgets a subject's failures, audited as
 * "lockout.cleared". */
CU_WUR enum cu_err cu_identity_lockout_clear(struct cu_identity *idn, struct cu_work *w,
                                             struct cu_db *db, enum cu_subject_kind kind,
                                             const char *id);

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
