/*
 * identity.c - the identity service's life cycle and the helpers its other files share:
 * credentials rows, secrets sealed under a subject's key (a customer's through the vault, a
 * staff member's through the envelope module, the same code), lockout counters, sign-in
 * events, and transactions.
 *
 * Lockout counters live in the store, one row per account, and move only inside write
 * transactions, so concurrent failures on one account are all counted, on one node or many.
 */
#include "identity/identity_int.h"

#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "base/json.h"
#include "base/log.h"
#include "base/mem.h"

const char *cu_subject_kind_name(enum cu_subject_kind k)
{
    return k == CU_SUBJECT_STAFF ? "staff" : "customer";
}

static enum cu_err derive_keys(struct cu_identity *idn, const struct cu_keyring *kr)
{
    enum cu_err rc = cu_keyring_derive(kr, "session_", 1, &idn->token_key);
    if (rc == CU_OK)
        rc = cu_keyring_derive(kr, "recovery", 1, &idn->code_key);
    if (rc == CU_OK)
        rc = cu_keyring_derive(kr, "login___", 1, &idn->login_key);
    if (rc == CU_OK)
        rc = cu_keyring_derive(kr, "staffidx", 1, &idn->staff_index);
    return rc;
}

enum cu_err cu_identity_new(const struct cu_keyring *kr, struct cu_kek_source *kek,
                            enum cu_aead alg, struct cu_vault *vault,
                            const struct cu_identity_opts *opts, struct cu_identity **out)
{
    struct cu_identity *idn = cu_calloc(1, sizeof(*idn));
    enum cu_err rc = idn ? CU_OK : CU_E_NOMEM;

    if (rc != CU_OK)
        return rc;
    idn->opts = *opts;
    snprintf(idn->common_passwords, sizeof(idn->common_passwords), "%s", opts->common_passwords);
    snprintf(idn->totp_issuer, sizeof(idn->totp_issuer), "%s",
             opts->totp_issuer ? opts->totp_issuer : "custodia");
    idn->opts.common_passwords = idn->common_passwords;
    idn->opts.totp_issuer = idn->totp_issuer;
    idn->vault = vault;
    rc = cu_totp_init();
    if (rc == CU_OK)
        rc = cu_envelope_new(&cu_identity_staff_keys, kek, alg, &idn->staff_keys);
    if (rc == CU_OK)
        rc = derive_keys(idn, kr);
    if (rc == CU_OK)
        rc = cu_password_policy_new(idn->common_passwords, &idn->policy);
    if (rc == CU_OK)
        rc = cu_hasher_new(&opts->pwhash, opts->hash_concurrency, opts->hash_wait_ms, &idn->hasher);
    if (rc != CU_OK) {
        cu_identity_free(idn);
        return rc;
    }
    *out = idn;
    return CU_OK;
}

void cu_identity_set_hook(struct cu_identity *idn, const struct cu_identity_hook *hook)
{
    idn->hook = *hook;
}

void cu_identity_free(struct cu_identity *idn)
{
    if (idn == NULL)
        return;
    cu_hasher_free(idn->hasher);
    cu_password_policy_free(idn->policy);
    cu_secret_free(idn->token_key);
    cu_secret_free(idn->code_key);
    cu_secret_free(idn->login_key);
    cu_secret_free(idn->staff_index);
    cu_envelope_free(idn->staff_keys);
    cu_free(idn);
}

struct cu_hasher *cu_identity_hasher(struct cu_identity *idn)
{
    return idn->hasher;
}

void cu_identity_subject_key(enum cu_subject_kind kind, const char *id, char out[SUBJECT_KEY_BYTES])
{
    snprintf(out, SUBJECT_KEY_BYTES, "%s:%s", cu_subject_kind_name(kind), id);
}

/* The hasher's "no slot in time" is the service being busy, not the store. */
enum cu_err cu_identity_hasher_rc(enum cu_err rc)
{
    return rc == CU_E_BUSY ? CU_E_UNAVAILABLE : rc;
}

enum cu_err cu_identity_audit_add(struct cu_work *w, const char *action, const char *target,
                                  const char *outcome, json_t *details)
{
    if (w == NULL) {
        json_decref(details);
        return CU_OK;
    }
    return cu_work_audit(w, action, target, outcome, details);
}

/* ---- credentials ---- */

enum cu_err cu_identity_cred_same(struct cu_db *db, enum cu_subject_kind kind, const char *id,
                                  int64_t changed_at, bool *same, bool *totp)
{
    struct cred c;
    enum cu_err rc = cu_identity_cred_load(db, kind, id, &c);

    *same = rc == CU_OK && c.has_password && c.password_changed_at == changed_at;
    if (totp != NULL)
        *totp = rc == CU_OK && c.totp_enabled;
    cu_identity_cred_wipe(&c);
    return rc;
}

enum cu_err cu_identity_cred_load(struct cu_db *db, enum cu_subject_kind kind, const char *id,
                                  struct cred *out)
{
    static const char sql[] =
        "SELECT password_hash, totp_enabled_at, totp_last_step, password_changed_at FROM "
        "credentials WHERE subject_kind = $1 AND subject_id = $2";
    const struct cu_val p[] = {CU_VT(cu_subject_kind_name(kind)), CU_VT(id)};
    struct cu_stmt *st = NULL;
    bool row = false;
    enum cu_err rc = cu_db_query(db, sql, p, CU_NVALS(p), &st);

    memset(out, 0, sizeof(*out));
    out->totp_last_step = -1;
    if (rc == CU_OK)
        rc = cu_stmt_next(st, &row);
    if (rc == CU_OK && row) {
        size_t n = 0;
        const char *h = cu_stmt_text(st, 0, &n);
        out->exists = true;
        out->has_password = !cu_stmt_null(st, 0) && n > 0 && n < sizeof(out->password_hash);
        if (out->has_password)
            memcpy(out->password_hash, h, n);
        out->totp_enabled = !cu_stmt_null(st, 1);
        out->totp_last_step = cu_stmt_int(st, 2);
        out->password_changed_at = out->has_password ? cu_stmt_int(st, 3) : 0;
    }
    cu_stmt_done(st);
    return rc;
}

void cu_identity_cred_wipe(struct cred *c)
{
    cu_crypto_wipe(c, sizeof(*c));
}

/* Whether the subject exists and may sign in, and its e-mail (for the password policy). */
enum cu_err cu_identity_subject_account(struct cu_identity *idn, struct cu_db *db,
                                        enum cu_subject_kind kind, const char *id, char *email,
                                        size_t cap, bool *active)
{
    enum cu_err rc;

    if (email != NULL && cap > 0)
        email[0] = '\0';
    if (kind == CU_SUBJECT_STAFF) {
        struct cu_staff_info s;
        rc = cu_identity_staff_get(idn, db, id, &s);
        if (rc == CU_OK && email != NULL)
            snprintf(email, cap, "%s", s.email);
        *active = rc == CU_OK && strcmp(s.status, "active") == 0;
        cu_crypto_wipe(&s, sizeof(s));
        return rc;
    }
    struct cu_customer c;
    size_t nf = 0;
    const struct cu_field_def *fs = cu_fields(&nf);
    rc = cu_vault_get(idn->vault, db, id, email != NULL, &c);
    if (rc != CU_OK)
        return rc;
    *active = strcmp(c.status, "active") == 0;
    for (size_t i = 0; email != NULL && i < nf; i++) {
        if (strcmp(fs[i].name, "email") == 0 && c.values[i] != NULL)
            snprintf(email, cap, "%s", c.values[i]);
    }
    cu_customer_clear(&c);
    return rc;
}

/* ---- secrets: a customer's through the vault, a staff member's through the envelope ---- */

enum cu_err cu_identity_secret_put(struct cu_identity *idn, struct cu_db *db,
                                   enum cu_subject_kind kind, const char *id, const char *name,
                                   const void *data, size_t len)
{
    if (kind == CU_SUBJECT_STAFF)
        return cu_envelope_secret_put(idn->staff_keys, db, id, name, data, len);
    return cu_vault_secret_put(idn->vault, db, id, name, data, len);
}

enum cu_err cu_identity_secret_get(struct cu_identity *idn, struct cu_db *db,
                                   enum cu_subject_kind kind, const char *id, const char *name,
                                   void *out, size_t cap, size_t *len)
{
    if (kind == CU_SUBJECT_STAFF)
        return cu_envelope_secret_get(idn->staff_keys, db, id, name, out, cap, len);
    return cu_vault_secret_get(idn->vault, db, id, name, out, cap, len);
}

enum cu_err cu_identity_secret_drop(struct cu_db *db, enum cu_subject_kind kind, const char *id,
                                    const char *name)
{
    if (kind == CU_SUBJECT_STAFF)
        return cu_envelope_secret_drop(&cu_identity_staff_keys, db, id, name);
    return cu_vault_secret_drop(db, id, name);
}

/* ---- lockout ---- */

/* The most failures a counter holds; past it the count stays (the wait is capped anyway). */
#define FAILURES_MAX 1000000

int64_t cu_identity_lockout_wait(const struct cu_identity_opts *opts, uint64_t failures)
{
    int64_t wait = opts->lockout_base_ms;

    if (failures < opts->lockout_threshold || opts->lockout_threshold == 0 || wait <= 0)
        return 0;
    /* base * 2^(failures - threshold), doubling step by step so that it never overflows. */
    for (uint64_t i = opts->lockout_threshold; i < failures && wait < opts->lockout_max_ms; i++)
        wait = wait > INT64_MAX / 2 ? INT64_MAX : wait * 2;
    return wait < opts->lockout_max_ms ? wait : opts->lockout_max_ms;
}

static enum cu_err lockout_read(struct cu_identity *idn, struct cu_db *db, bool lock,
                                const char *subject, int64_t now, uint64_t *failures,
                                int64_t *locked_until)
{
    static const char sql[] =
        "SELECT failures, last_failure, locked_until FROM lockouts WHERE subject = $1";
    static const char sql_lock[] =
        "SELECT failures, last_failure, locked_until FROM lockouts WHERE subject = $1 FOR UPDATE";
    const struct cu_val p[] = {CU_VT(subject)};
    struct cu_stmt *st = NULL;
    bool row = false;
    enum cu_err rc = cu_db_query(db, lock ? sql_lock : sql, p, CU_NVALS(p), &st);

    *failures = 0;
    *locked_until = 0;
    if (rc == CU_OK)
        rc = cu_stmt_next(st, &row);
    /* Failures older than the reset period are forgotten; a lock that runs longer (one of
     * monitoring's) is not. */
    if (rc == CU_OK && row && cu_stmt_int(st, 1) >= now - idn->opts.lockout_reset_ms) {
        *failures = (uint64_t)cu_stmt_int(st, 0);
        *locked_until = cu_stmt_int(st, 2);
    } else if (rc == CU_OK && row && cu_stmt_int(st, 2) > now) {
        *locked_until = cu_stmt_int(st, 2);
    }
    cu_stmt_done(st);
    return rc;
}

enum cu_err cu_identity_lockout_state(struct cu_identity *idn, struct cu_db *db,
                                      const char *subject, int64_t now, uint64_t *failures,
                                      int64_t *locked_until)
{
    return lockout_read(idn, db, false, subject, now, failures, locked_until);
}

enum cu_err cu_identity_lockout_locked(struct cu_identity *idn, struct cu_db *db,
                                       const char *subject, int64_t now, uint64_t *failures,
                                       int64_t *locked_until)
{
    return lockout_read(idn, db, true, subject, now, failures, locked_until);
}

enum cu_err cu_identity_lockout_fail(struct cu_identity *idn, struct cu_db *db, const char *subject,
                                     int64_t now, uint64_t *failures, int64_t *locked_until)
{
    static const char up[] =
        "INSERT INTO lockouts (subject, failures, last_failure, locked_until) VALUES ($1, 1, $2, "
        "0) ON CONFLICT (subject) DO UPDATE SET failures = CASE WHEN lockouts.last_failure < $3 "
        "THEN 1 WHEN lockouts.failures >= $4 THEN $4 ELSE lockouts.failures + 1 END, "
        "last_failure = $2 RETURNING failures";
    static const char lock[] = "UPDATE lockouts SET locked_until = $2 WHERE subject = $1";
    const struct cu_val p[] = {CU_VT(subject), CU_VI(now), CU_VI(now - idn->opts.lockout_reset_ms),
                               CU_VI(FAILURES_MAX)};
    struct cu_stmt *st = NULL;
    bool row = false;
    enum cu_err rc = cu_db_query(db, up, p, CU_NVALS(p), &st);

    if (rc == CU_OK)
        rc = cu_stmt_next(st, &row);
    if (rc == CU_OK && !row)
        rc = CU_E_STORE;
    if (rc == CU_OK)
        *failures = (uint64_t)cu_stmt_int(st, 0);
    cu_stmt_done(st);
    if (rc != CU_OK)
        return rc;
    int64_t wait = cu_identity_lockout_wait(&idn->opts, *failures);
    *locked_until = wait > 0 ? now + wait : 0;
    const struct cu_val l[] = {CU_VT(subject), CU_VI(*locked_until)};
    return cu_db_exec(db, lock, l, CU_NVALS(l));
}

enum cu_err cu_identity_lockout_until(struct cu_db *db, const char *subject, int64_t now,
                                      int64_t until)
{
    static const char sql[] =
        "INSERT INTO lockouts (subject, failures, last_failure, locked_until) VALUES ($1, 0, $2, "
        "$3) ON CONFLICT (subject) DO UPDATE SET locked_until = CASE WHEN lockouts.locked_until "
        "> $3 THEN lockouts.locked_until ELSE $3 END";
    const struct cu_val p[] = {CU_VT(subject), CU_VI(now), CU_VI(until)};
    return cu_db_exec(db, sql, p, CU_NVALS(p));
}

enum cu_err cu_identity_lock_customer(struct cu_db *db, const char *id, int64_t now, int64_t until)
{
    char subject[SUBJECT_KEY_BYTES];
    cu_identity_subject_key(CU_SUBJECT_CUSTOMER, id, subject);
    return cu_identity_lockout_until(db, subject, now, until);
}

enum cu_err cu_identity_lockout_reset(struct cu_db *db, const char *subject)
{
    static const char sql[] = "DELETE FROM lockouts WHERE subject = $1";
    const struct cu_val p[] = {CU_VT(subject)};
    return cu_db_exec(db, sql, p, CU_NVALS(p));
}

/* ---- events ---- */

static const char *or_empty(const char *s)
{
    return s ? s : "";
}

enum cu_err cu_identity_event_add(struct cu_db *db, const char *kind, enum cu_subject_kind sk,
                                  const char *sid, const struct cu_auth_ctx *ctx,
                                  const char *reason)
{
    static const char sql[] =
        "INSERT INTO auth_events (at, kind, subject_kind, subject_id, ip, user_agent, device_id, "
        "reason) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
    const char *ua = or_empty(ctx ? ctx->user_agent : NULL);
    const char *dev = or_empty(ctx ? ctx->device_id : NULL);
    const struct cu_val p[] = {
        CU_VI(cu_clock_now_ms()),
        CU_VT(kind),
        sid ? CU_VT(cu_subject_kind_name(sk)) : CU_VNULL,
        sid ? CU_VT(sid) : CU_VNULL,
        CU_VT(or_empty(ctx ? ctx->ip : NULL)),
        CU_VTN(ua, cu_utf8_cut(ua, CU_USER_AGENT_MAX)),
        CU_VTN(dev, cu_utf8_cut(dev, CU_DEVICE_ID_MAX)),
        CU_VT(reason),
    };
    return cu_db_exec(db, sql, p, CU_NVALS(p));
}

/* ---- credential info, lockout clear, prune ---- */

static enum cu_err recovery_left(struct cu_db *db, enum cu_subject_kind kind, const char *id,
                                 int *left)
{
    static const char sql[] = "SELECT count(*) FROM recovery_codes WHERE subject_kind = $1 AND "
                              "subject_id = $2 AND used_at IS NULL";
    const struct cu_val p[] = {CU_VT(cu_subject_kind_name(kind)), CU_VT(id)};
    struct cu_stmt *st = NULL;
    bool row = false;
    enum cu_err rc = cu_db_query(db, sql, p, CU_NVALS(p), &st);
    if (rc == CU_OK)
        rc = cu_stmt_next(st, &row);
    *left = rc == CU_OK && row ? (int)cu_stmt_int(st, 0) : 0;
    cu_stmt_done(st);
    return rc;
}

enum cu_err cu_identity_credential_info(struct cu_identity *idn, struct cu_db *db,
                                        enum cu_subject_kind kind, const char *id,
                                        struct cu_credential_info *out)
{
    static const char sql[] = "SELECT password_changed_at, totp_enabled_at FROM credentials "
                              "WHERE subject_kind = $1 AND subject_id = $2";
    const struct cu_val p[] = {CU_VT(cu_subject_kind_name(kind)), CU_VT(id)};
    char subject[SUBJECT_KEY_BYTES];
    struct cu_stmt *st = NULL;
    bool row = false;
    uint64_t failures = 0;
    enum cu_err rc = cu_db_query(db, sql, p, CU_NVALS(p), &st);

    memset(out, 0, sizeof(*out));
    if (rc == CU_OK)
        rc = cu_stmt_next(st, &row);
    if (rc == CU_OK && row) {
        out->has_password = !cu_stmt_null(st, 0);
        out->password_changed_at = out->has_password ? cu_stmt_int(st, 0) : 0;
        out->totp_enabled = !cu_stmt_null(st, 1);
        out->totp_enabled_at = out->totp_enabled ? cu_stmt_int(st, 1) : 0;
    }
    cu_stmt_done(st);
    if (rc == CU_OK)
        rc = recovery_left(db, kind, id, &out->recovery_codes_left);
    cu_identity_subject_key(kind, id, subject);
    if (rc == CU_OK)
        rc = cu_identity_lockout_state(idn, db, subject, cu_clock_now_ms(), &failures,
                                       &out->locked_until);
    out->failures = failures > FAILURES_MAX ? FAILURES_MAX : (unsigned)failures;
    if (out->locked_until <= cu_clock_now_ms())
        out->locked_until = 0;
    return rc;
}

enum cu_err cu_identity_lockout_clear(struct cu_identity *idn, struct cu_work *w, struct cu_db *db,
                                      enum cu_subject_kind kind, const char *id)
{
    char subject[SUBJECT_KEY_BYTES];
    enum cu_err rc;

    (void)idn;
    cu_identity_subject_key(kind, id, subject);
    rc = cu_identity_lockout_reset(db, subject);
    if (rc == CU_OK)
        rc = cu_identity_audit_add(w, "lockout.cleared", id, "success",
                                   json_pack("{s:s}", "subject_kind", cu_subject_kind_name(kind)));
    return rc;
}

enum cu_err cu_identity_prune(struct cu_identity *idn, struct cu_db *db)
{
    static const char locks[] = "DELETE FROM lockouts WHERE last_failure < $1";
    static const char chal[] = "DELETE FROM auth_challenges WHERE expires_at < $1";
    static const char sess[] = "DELETE FROM sessions WHERE expires_at < $1";
    int64_t now = cu_clock_now_ms();
    const struct cu_val l[] = {CU_VI(now - idn->opts.lockout_reset_ms)};
    const struct cu_val c[] = {CU_VI(now)};
    const struct cu_val s[] = {CU_VI(now - 86400000)};
    enum cu_err rc = cu_db_exec(db, locks, l, CU_NVALS(l));
    if (rc == CU_OK)
        rc = cu_db_exec(db, chal, c, CU_NVALS(c));
    if (rc == CU_OK)
        rc = cu_db_exec(db, sess, s, CU_NVALS(s));
    return rc;
}

/* A staff member's scopes and whether they are active, from their own row. */
static enum cu_err staff_state(struct cu_db *db, const char *id, uint64_t *scopes, bool *active)
{
    static const char sql[] = "SELECT scopes, status FROM staff WHERE id = $1";
    const struct cu_val p[] = {CU_VT(id)};
    struct cu_stmt *q = NULL;
    bool row = false;
    enum cu_err rc = cu_db_query(db, sql, p, CU_NVALS(p), &q);

    if (rc == CU_OK)
        rc = cu_stmt_next(q, &row);
    if (rc == CU_OK && !row)
        rc = CU_E_NOT_FOUND;
    if (rc == CU_OK) {
        size_t n = 0;
        const char *t = cu_stmt_text(q, 0, &n);
        *scopes = cu_identity_scopes_parse(t, n);
        t = cu_stmt_text(q, 1, &n);
        *active = n == 6 && memcmp(t, "active", 6) == 0;
    }
    cu_stmt_done(q);
    return rc;
}

enum cu_err cu_identity_subject_state(struct cu_identity *idn, struct cu_db *db,
                                      enum cu_subject_kind kind, const char *id, uint64_t *scopes,
                                      bool *active, bool *has_totp)
{
    char status[CU_VAULT_STATUS_BYTES];
    struct cred c;
    enum cu_err rc = CU_OK;

    *scopes = 0;
    *active = *has_totp = false;
    memset(&c, 0, sizeof(c));
    if (rc == CU_OK && kind == CU_SUBJECT_STAFF) {
        rc = staff_state(db, id, scopes, active);
    } else if (rc == CU_OK) {
        /* A customer's state is the vault's: its table is read only through it. */
        rc = cu_vault_customer_state(idn->vault, db, id, status);
        *active = rc == CU_OK && strcmp(status, "active") == 0;
    }
    if (rc == CU_OK)
        rc = cu_identity_cred_load(db, kind, id, &c);
    if (rc == CU_OK)
        *has_totp = c.totp_enabled;
    cu_identity_cred_wipe(&c);
    return rc;
}

enum cu_err cu_identity_account_name(struct cu_identity *idn, struct cu_db *db,
                                     enum cu_subject_kind kind, const char *id, char *out,
                                     size_t cap, bool *active)
{
    enum cu_err rc = cu_identity_subject_account(idn, db, kind, id, out, cap, active);
    if (rc == CU_OK && out[0] == '\0')
        snprintf(out, cap, "%s", id);
    return rc;
}

enum cu_err cu_identity_forget(struct cu_db *db, enum cu_subject_kind kind, const char *id)
{
    static const char *const sql[] = {
        "DELETE FROM credentials WHERE subject_kind = $1 AND subject_id = $2",
        "DELETE FROM recovery_codes WHERE subject_kind = $1 AND subject_id = $2",
        "DELETE FROM sessions WHERE subject_kind = $1 AND subject_id = $2",
        "DELETE FROM auth_challenges WHERE subject_kind = $1 AND subject_id = $2",
        "DELETE FROM auth_events WHERE subject_kind = $1 AND subject_id = $2",
    };
    static const char locks[] = "DELETE FROM lockouts WHERE subject = $1";
    char subject[SUBJECT_KEY_BYTES];
    const struct cu_val p[] = {CU_VT(cu_subject_kind_name(kind)), CU_VT(id)};
    enum cu_err rc = CU_OK;

    for (size_t i = 0; rc == CU_OK && i < sizeof(sql) / sizeof(sql[0]); i++)
        rc = cu_db_exec(db, sql[i], p, CU_NVALS(p));
    cu_identity_subject_key(kind, id, subject);
    const struct cu_val l[] = {CU_VT(subject)};
    if (rc == CU_OK)
        rc = cu_db_exec(db, locks, l, CU_NVALS(l));
    return rc;
}

enum cu_err cu_identity_password_acceptable(const struct cu_identity *idn, const char *pw,
                                            size_t len, const char *email,
                                            char why[CU_IDENTITY_WHY_BYTES])
{
    char pwhy[CU_PASSWORD_WHY_BYTES] = "";
    enum cu_err rc = cu_password_check(idn->policy, pw, len, email, pwhy);
    snprintf(why, CU_IDENTITY_WHY_BYTES, "%s%s", rc == CU_OK ? "" : "field 'password': ", pwhy);
    return rc;
}
