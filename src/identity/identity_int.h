/*
 * identity_int.h - what the files of the identity service share: the service's layout and
 * the helpers each of them uses (subjects, sealed secrets, lockout counters, events, audit,
 * sessions, recovery codes). Not for use outside src/identity/.
 */
#ifndef CU_IDENTITY_INT_H
#define CU_IDENTITY_INT_H

#include "identity/identity.h"
#include "identity/password.h"
#include "crypto/totp.h"

#include "crypto/crypto.h"
#include "vault/envelope.h"

#define SUBJECT_KEY_BYTES 96 /* "customer:<id>", "staff:<id>" or "unknown:<64 hex>" */

struct cu_identity {
    struct cu_identity_opts opts;
    char common_passwords[1024];
    char totp_issuer[64];
    struct cu_hasher *hasher;
    struct cu_password_policy *policy;
    struct cu_secret *token_key;   /* session and challenge tokens */
    struct cu_secret *code_key;    /* recovery codes */
    struct cu_secret *login_key;   /* unknown logins, for their lockout rows and audit */
    struct cu_secret *staff_index; /* staff e-mail blind index */
    struct cu_vault *vault;
    struct cu_envelope *staff_keys; /* staff members' DEKs and secrets */
    struct cu_identity_hook hook;   /* monitoring (cu_identity_set_hook) */
};

/* A subject's credentials row, as sign-in reads it. */
struct cred {
    bool exists;
    bool has_password;
    char password_hash[CU_PWHASH_STR_BYTES];
    bool totp_enabled;
    int64_t totp_last_step;
    int64_t password_changed_at; /* 0 without a password: moves on a reset, not a re-hash */
};

/* identity.c */
void cu_identity_subject_key(enum cu_subject_kind kind, const char *id,
                             char out[SUBJECT_KEY_BYTES]);
enum cu_err cu_identity_cred_load(struct cu_db *db, enum cu_subject_kind kind, const char *id,
                                  struct cred *out);
void cu_identity_cred_wipe(struct cred *c);
enum cu_err cu_identity_secret_put(struct cu_identity *idn, struct cu_db *db,
                                   enum cu_subject_kind kind, const char *id, const char *name,
                                   const void *data, size_t len);
enum cu_err cu_identity_secret_get(struct cu_identity *idn, struct cu_db *db,
                                   enum cu_subject_kind kind, const char *id, const char *name,
                                   void *out, size_t cap, size_t *len);
enum cu_err cu_identity_secret_drop(struct cu_db *db, enum cu_subject_kind kind, const char *id,
                                    const char *name);
enum cu_err cu_identity_lockout_state(struct cu_identity *idn, struct cu_db *db,
                                      const char *subject, int64_t now, uint64_t *failures,
                                      int64_t *locked_until);
/* cu_identity_lockout_locked: cu_identity_lockout_state reading the row under its lock (FOR
 * UPDATE), for a decision the same transaction then writes by. */
enum cu_err cu_identity_lockout_locked(struct cu_identity *idn, struct cu_db *db,
                                       const char *subject, int64_t now, uint64_t *failures,
                                       int64_t *locked_until);
enum cu_err cu_identity_lockout_fail(struct cu_identity *idn, struct cu_db *db, const char *subject,
                                     int64_t now, uint64_t *failures, int64_t *locked_until);
enum cu_err cu_identity_lockout_reset(struct cu_db *db, const char *subject);

/* cu_identity_lockout_until(db, subject, now, until): locks the subject's sign-in until
 * `until` at least (monitoring's lock_login), whatever its failures. */
enum cu_err cu_identity_lockout_until(struct cu_db *db, const char *subject, int64_t now,
                                      int64_t until);
enum cu_err cu_identity_event_add(struct cu_db *db, const char *kind, enum cu_subject_kind sk,
                                  const char *sid, const struct cu_auth_ctx *ctx,
                                  const char *reason);
/* cu_identity_audit_add(w, action, target, outcome, details): a record in w (NULL: none). */
enum cu_err cu_identity_audit_add(struct cu_work *w, const char *action, const char *target,
                                  const char *outcome, json_t *details);
enum cu_err cu_identity_hasher_rc(enum cu_err rc);
enum cu_err cu_identity_subject_account(struct cu_identity *idn, struct cu_db *db,
                                        enum cu_subject_kind kind, const char *id, char *email,
                                        size_t cap, bool *active);

/* cu_identity_cred_same(db, kind, id, changed_at, same, totp): whether the subject's password
 * is still the one a check verified (set at changed_at; a re-hash keeps it, a reset moves it),
 * and whether it has TOTP now, read in the caller's unit of work. */
enum cu_err cu_identity_cred_same(struct cu_db *db, enum cu_subject_kind kind, const char *id,
                                  int64_t changed_at, bool *same, bool *totp);

/* staff.c */
/* Where staff members keep their keys: staff.dek_wrapped and kek_version (the DEK's version is
 * always 1), and the table staff_secrets. */
extern const struct cu_envelope_kind cu_identity_staff_keys;
uint64_t cu_identity_scopes_parse(const char *s, size_t len);

/* session.c */
enum cu_err cu_identity_session_create(struct cu_identity *idn, struct cu_db *db,
                                       enum cu_subject_kind kind, const char *id, enum cu_aal aal,
                                       const struct cu_auth_ctx *ctx, struct cu_session_info *info,
                                       char token[CU_SESSION_TOKEN_BYTES]);
enum cu_err cu_identity_sessions_revoke_all(struct cu_db *db, enum cu_subject_kind kind,
                                            const char *id, const char *keep, int64_t now,
                                            int64_t *count);
void cu_identity_token_new(const char *prefix, char out[CU_SESSION_TOKEN_BYTES]);
bool cu_identity_token_shape_ok(const char *prefix, const char *token, size_t len);

/* factor.c */
enum cu_err
cu_identity_recovery_codes_replace(struct cu_identity *idn, struct cu_db *db,
                                   enum cu_subject_kind kind, const char *id,
                                   char codes[CU_RECOVERY_CODES][CU_RECOVERY_CODE_BYTES]);
/* second_factor_check: verifies a TOTP or recovery code for the subject and, in the caller's
 * write transaction, consumes it (moves the TOTP step on, or marks the code used). *method
 * gets "totp" or "recovery_code". CU_E_BAD_CREDENTIALS when wrong, replayed or used. */
enum cu_err cu_identity_second_factor_use(struct cu_identity *idn, struct cu_db *db,
                                          enum cu_subject_kind kind, const char *id,
                                          const char *code, const char **method);

#endif
