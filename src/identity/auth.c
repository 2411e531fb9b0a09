/*
 * auth.c - sign-in (password, then a second factor when the account has one), step-up, and
 * passwords.
 *
 * A sign-in's check reads the account and verifies the password before any unit of work (the
 * hash takes tens of milliseconds); its record then checks the lockout again under the row's
 * lock and records the outcome, its event and its audit record in the caller's unit of work. A
 * login that matches no account is verified against a dummy hash and counted in a lockout row of
 * its own, so an outsider sees the same answer, the same time and the same lockout for an unknown
 * login as for a wrong password.
 */
#include "identity/identity_int.h"

#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "base/json.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/text.h"
#include "vault/fields.h"

#define MAX_CHALLENGE_ATTEMPTS 5

/* What phase one of a sign-in found. */
struct account {
    bool found; /* the login names an active account */
    char id[CU_SUBJECT_ID_BYTES];
    char subject[SUBJECT_KEY_BYTES];
    struct cred cred;
    uint64_t failures;
    int64_t locked_until;
};

static void unknown_key(const struct cu_identity *idn, enum cu_subject_kind kind, const char *login,
                        char out[SUBJECT_KEY_BYTES])
{
    /* Normalised by the rules that find accounts (an e-mail or an external reference, as the
     * vault normalises them), so every spelling that would reach one account reaches one row,
     * as for a known account. */
    char buf[CU_EMAIL_MAX + 16], norm[2 * CU_EMAIL_MAX + 40], why[CU_FIELD_WHY_BYTES];
    const struct cu_field_def *f =
        cu_field_find(kind == CU_SUBJECT_STAFF || strchr(login, '@') ? "email" : "external_ref");
    uint8_t h[CU_HASH_BYTES];
    size_t nl = 0;
    int n = snprintf(buf, sizeof(buf), "%s|", cu_subject_kind_name(kind));
    if (f != NULL &&
        cu_field_normalize(f, login, strlen(login), norm, sizeof(norm), &nl, why) == CU_OK)
        login = norm;
    for (size_t i = 0; login[i] != '\0' && (size_t)n < sizeof(buf) - 1; i++) {
        char c = login[i];
        buf[n++] = cu_ascii_lower(c);
    }
    cu_crypto_wipe(norm, sizeof(norm));
    cu_crypto_keyed_hash(idn->login_key, buf, (size_t)n, h);
    snprintf(out, SUBJECT_KEY_BYTES, "unknown:");
    cu_hex_encode(h, sizeof(h), out + 8);
    cu_crypto_wipe(buf, sizeof(buf));
}

/* The id of the active account a login names, or CU_E_NOT_FOUND. */
static enum cu_err find_account(struct cu_identity *idn, struct cu_db *db,
                                enum cu_subject_kind kind, const char *login,
                                char id[CU_SUBJECT_ID_BYTES])
{
    enum cu_err rc;
    if (kind == CU_SUBJECT_STAFF) {
        struct cu_staff_info s;
        rc = cu_identity_staff_find(idn, db, login, &s);
        if (rc == CU_OK && strcmp(s.status, "active") != 0)
            rc = CU_E_NOT_FOUND;
        if (rc == CU_OK)
            snprintf(id, CU_SUBJECT_ID_BYTES, "%s", s.id);
        cu_crypto_wipe(&s, sizeof(s));
        return rc;
    }
    char ids[1][CU_CUSTOMER_ID_BYTES], why[CU_VAULT_WHY_BYTES];
    struct cu_customer c;
    size_t n = 0;
    /* Cleared on every way out, so it must hold nothing from the start. */
    memset(&c, 0, sizeof(c));
    rc = cu_vault_find(idn->vault, db, strchr(login, '@') ? "email" : "external_ref", login, ids, 1,
                       &n, why);
    if (rc == CU_E_INVALID || rc == CU_E_TOO_LARGE || (rc == CU_OK && n == 0))
        return CU_E_NOT_FOUND;
    if (rc == CU_OK)
        rc = cu_vault_get(idn->vault, db, ids[0], false, &c);
    if (rc == CU_OK && strcmp(c.status, "active") != 0)
        rc = CU_E_NOT_FOUND;
    if (rc == CU_OK)
        snprintf(id, CU_SUBJECT_ID_BYTES, "%s", c.id);
    cu_customer_clear(&c);
    return rc;
}

static enum cu_err read_account(struct cu_identity *idn, struct cu_db *db,
                                enum cu_subject_kind kind, const char *login, struct account *a)
{
    enum cu_err rc;

    memset(a, 0, sizeof(*a));
    rc = find_account(idn, db, kind, login, a->id);
    a->found = rc == CU_OK;
    if (rc == CU_E_NOT_FOUND)
        rc = CU_OK;
    if (rc == CU_OK && a->found)
        rc = cu_identity_cred_load(db, kind, a->id, &a->cred);
    if (a->found)
        cu_identity_subject_key(kind, a->id, a->subject);
    else
        unknown_key(idn, kind, login, a->subject);
    return rc;
}

static json_t *login_details(const struct cu_identity *idn, enum cu_subject_kind kind,
                             const char *login, const char *reason)
{
    char h[CU_AUDIT_HASHED_BYTES] = "", lower[CU_EMAIL_MAX + 1];
    size_t i = 0;
    /* Lower-cased, so that `custodia audit hash --kind login` finds every spelling. */
    for (; i < CU_EMAIL_MAX && login[i] != '\0'; i++)
        lower[i] = cu_ascii_lower(login[i]);
    lower[i] = '\0';
    if (idn->opts.audit != NULL && cu_audit_hash_value(idn->opts.audit, "login", lower, h) != CU_OK)
        h[0] = '\0';
    cu_crypto_wipe(lower, sizeof(lower));
    return json_pack("{s:s, s:s, s:s}", "subject_kind", cu_subject_kind_name(kind), "login", h,
                     "reason", reason);
}

/* signin_ask(idn, w, db, type, kind, id, subject, ctx, memo, memo_free, out): monitoring's
 * decision about a customer's sign-in step (docs/monitoring.md, "At sign-in"), with its lock
 * applied in the same unit; out zeroed when there is no hook or the subject is not a
 * customer. */
static enum cu_err signin_ask(struct cu_identity *idn, struct cu_work *w, struct cu_db *db,
                              const char *type, enum cu_subject_kind kind, const char *id,
                              const char *subject, const struct cu_auth_ctx *ctx, void **memo,
                              void (**memo_free)(void *), struct cu_signin_out *out)
{
    const struct cu_signin_event ev = {type, kind, id, subject, ctx, memo};
    int64_t now = cu_clock_now_ms();
    enum cu_err rc;

    memset(out, 0, sizeof(*out));
    /* memo NULL: a step that is no sign-in (a step-up, a password check) */
    if (idn->hook.decide == NULL || kind != CU_SUBJECT_CUSTOMER || memo == NULL)
        return CU_OK;
    rc = idn->hook.decide(idn->hook.arg, w, db, &ev, out);
    *memo_free = idn->hook.memo_free;
    out->decision[CU_SIGNIN_DECISION_BYTES - 1] = '\0';
    if (rc == CU_OK && out->lock_ms > 0)
        rc = cu_identity_lockout_until(
            db, subject, now, out->lock_ms > INT64_MAX - now ? INT64_MAX : now + out->lock_ms);
    return rc;
}

/* A sign-in refused while the account waits out a lockout: its event and record. */
static enum cu_err refuse_locked(struct cu_identity *idn, struct cu_work *w, struct cu_db *db,
                                 enum cu_subject_kind kind, bool found, const char *id,
                                 const char *login, const struct cu_auth_ctx *ctx, int64_t retry_ms)
{
    json_t *d = login_details(idn, kind, login, "locked");
    enum cu_err rc;

    json_object_set_new(d, "retry_after_ms", json_integer(retry_ms));
    rc = cu_identity_event_add(db, "login_locked", kind, found ? id : NULL, ctx, "locked");
    if (rc == CU_OK)
        rc = cu_identity_audit_add(w, "auth.login", found ? id : "", "denied", d);
    else
        json_decref(d);
    return rc;
}

/* A failed step counted toward the subject's lockout, with its event and record. */
static enum cu_err record_failure(struct cu_identity *idn, struct cu_work *w, struct cu_db *db,
                                  enum cu_subject_kind kind, bool found, const char *id,
                                  const char *subject, const char *login, const char *event,
                                  const struct cu_auth_ctx *ctx, const char *action, void **memo,
                                  void (**memo_free)(void *), const char *denied_by)
{
    uint64_t failures = 0;
    int64_t until = 0, now = cu_clock_now_ms();
    struct cu_signin_out mon;
    enum cu_err rc = cu_identity_lockout_fail(idn, db, subject, now, &failures, &until);
    if (rc == CU_OK)
        rc = cu_identity_event_add(db, event, kind, found ? id : NULL, ctx, "invalid_credentials");
    memset(&mon, 0, sizeof(mon));
    /* a step monitoring refused is asked no more: it is answered as this failure */
    if (rc == CU_OK && denied_by == NULL)
        rc = signin_ask(idn, w, db, event, kind, found ? id : NULL, subject, ctx, memo, memo_free,
                        &mon);
    if (denied_by != NULL)
        snprintf(mon.decision, sizeof(mon.decision), "%s", denied_by);
    if (rc == CU_OK && mon.lock_ms > 0 && now + mon.lock_ms > until)
        until = now + mon.lock_ms;
    if (rc == CU_OK) {
        json_t *d =
            login ? login_details(idn, kind, login, "invalid_credentials")
                  : json_pack("{s:s, s:s}", "subject_kind", cu_subject_kind_name(kind), "reason",
                              strcmp(event, "password_check_failed") == 0 ? "invalid_password"
                                                                          : "invalid_code");
        json_object_set_new(d, "failures", json_integer((json_int_t)failures));
        json_object_set_new(d, "locked_for_ms", json_integer(until ? until - now : 0));
        if (mon.decision[0])
            json_object_set_new(d, "decision", json_string(mon.decision));
        rc = cu_identity_audit_add(w, action, found ? id : "", "failure", d);
    }
    return rc;
}

static enum cu_err challenge_create(struct cu_identity *idn, struct cu_db *db,
                                    enum cu_subject_kind kind, const char *id,
                                    const struct cu_auth_ctx *ctx,
                                    char token[CU_CHALLENGE_TOKEN_BYTES])
{
    static const char sql[] =
        "INSERT INTO auth_challenges (token_hash, subject_kind, subject_id, created_at, "
        "expires_at, attempts, ip, user_agent, device_id) VALUES ($1, $2, $3, $4, $5, 0, $6, $7, "
        "$8)";
    uint8_t h[CU_HASH_BYTES];
    int64_t now = cu_clock_now_ms();
    const char *ua = ctx && ctx->user_agent ? ctx->user_agent : "";
    const char *dev = ctx && ctx->device_id ? ctx->device_id : "";

    cu_identity_token_new("csc_", token);
    cu_crypto_keyed_hash(idn->token_key, token, CU_SESSION_TOKEN_LEN, h);
    const struct cu_val p[] = {CU_VB(h, sizeof(h)),
                               CU_VT(cu_subject_kind_name(kind)),
                               CU_VT(id),
                               CU_VI(now),
                               CU_VI(now + idn->opts.challenge_ms),
                               CU_VT(ctx && ctx->ip ? ctx->ip : ""),
                               CU_VTN(ua, cu_utf8_cut(ua, CU_USER_AGENT_MAX)),
                               CU_VTN(dev, cu_utf8_cut(dev, CU_DEVICE_ID_MAX))};
    return cu_db_exec(db, sql, p, CU_NVALS(p));
}

/* The password re-hashed under today's parameters, only over the hash the check verified. */
static enum cu_err store_rehash(struct cu_db *db, enum cu_subject_kind kind, const char *id,
                                const char *hash, const char *verified)
{
    static const char sql[] = "UPDATE credentials SET password_hash = $3, updated_at = $4 WHERE "
                              "subject_kind = $1 AND subject_id = $2 AND password_hash = $5";
    const struct cu_val p[] = {CU_VT(cu_subject_kind_name(kind)), CU_VT(id), CU_VT(hash),
                               CU_VI(cu_clock_now_ms()), CU_VT(verified)};
    return cu_db_exec(db, sql, p, CU_NVALS(p));
}

static enum cu_err record_success(struct cu_identity *idn, struct cu_work *w, struct cu_db *db,
                                  struct cu_identity_login *op, const char *decision)
{
    struct cu_login_result *out = &op->out;
    json_t *d = login_details(idn, op->kind, op->login, "password");
    /* With a second factor still to come, the failures stay counted: wrong codes and wrong
     * passwords share one lockout, and a right password must not reset the codes' count. */
    enum cu_err rc = op->totp_enabled ? CU_OK : cu_identity_lockout_reset(db, op->subject);

    if (rc == CU_OK && op->newhash[0] != '\0')
        rc = store_rehash(db, op->kind, op->id, op->newhash, op->verified);
    if (rc == CU_OK && op->totp_enabled) {
        out->status = CU_LOGIN_MFA_REQUIRED;
        rc = challenge_create(idn, db, op->kind, op->id, &op->ctx, out->challenge);
        if (rc == CU_OK)
            rc =
                cu_identity_event_add(db, "mfa_challenged", op->kind, op->id, &op->ctx, "password");
    } else if (rc == CU_OK) {
        out->status = CU_LOGIN_OK;
        out->mfa_enrolment_required =
            op->kind == CU_SUBJECT_STAFF || idn->opts.customer_mfa_required;
        rc = cu_identity_session_create(idn, db, op->kind, op->id, CU_AAL1, &op->ctx, &out->session,
                                        out->token);
        if (rc == CU_OK)
            rc = cu_identity_event_add(db, "login_succeeded", op->kind, op->id, &op->ctx,
                                       "password");
        json_object_set_new(d, "session", json_string(out->session.id));
        json_object_set_new(d, "aal", json_integer(1));
    }
    json_object_set_new(d, "result",
                        json_string(out->status == CU_LOGIN_OK ? "signed_in" : "mfa_required"));
    if (decision != NULL && decision[0])
        json_object_set_new(d, "decision", json_string(decision));
    if (rc == CU_OK)
        rc = cu_identity_audit_add(w, "auth.login", op->id, "success", d);
    else
        json_decref(d);
    return rc;
}

/* refused(mon, second_factor_done): whether monitoring's decision refuses a sign-in about to
 * succeed: a deny, a lock, or a second factor asked of a customer who has none (whoever holds
 * the password alone could enrol one of their own). */
static bool refused(const struct cu_signin_out *mon, bool second_factor_done)
{
    return mon->verdict == CU_SIGNIN_DENY || mon->lock_ms > 0 ||
           (mon->verdict == CU_SIGNIN_MFA && !second_factor_done);
}

static bool login_ok(const char *login, const char *password, size_t len)
{
    size_t n = login ? strnlen(login, CU_EMAIL_MAX + 1) : 0;
    return n > 0 && n <= CU_EMAIL_MAX && password != NULL && len > 0 &&
           len <= CU_PWHASH_MAX_PASSWORD_BYTES;
}

enum cu_err cu_identity_login_read(struct cu_identity *idn, struct cu_db *db,
                                   struct cu_identity_login *op)
{
    struct account a;
    enum cu_err rc;

    op->found = op->ok = op->totp_enabled = op->locked = false;
    op->newhash[0] = op->verified[0] = '\0';
    memset(&a, 0, sizeof(a));
    if (!login_ok(op->login, "x", 1))
        return CU_E_INVALID;
    rc = read_account(idn, db, op->kind, op->login, &a);
    /* A login locked out (a known or an unknown one alike) is refused by the record before
     * any password is hashed, so a locked account costs no hashing; the record reads the
     * lockout again under its row lock. */
    if (rc == CU_OK)
        rc = cu_identity_lockout_state(idn, db, a.subject, cu_clock_now_ms(), &a.failures,
                                       &a.locked_until);
    if (rc == CU_OK) {
        op->locked = a.locked_until > cu_clock_now_ms();
        op->found = a.found;
        op->totp_enabled = a.cred.totp_enabled;
        snprintf(op->id, sizeof(op->id), "%s", a.id);
        snprintf(op->subject, sizeof(op->subject), "%s", a.subject);
        snprintf(op->verified, sizeof(op->verified), "%s",
                 a.cred.has_password ? a.cred.password_hash : "");
        op->verified_at = a.cred.password_changed_at;
    }
    cu_identity_cred_wipe(&a.cred);
    return rc;
}

enum cu_err cu_identity_login_verify(struct cu_identity *idn, struct cu_identity_login *op,
                                     const char *password, size_t len)
{
    bool rehash = false;
    enum cu_err rc;

    op->ok = false;
    op->newhash[0] = '\0';
    if (!login_ok(op->login, password, len))
        return CU_E_INVALID;
    if (op->locked)
        return CU_OK;
    /* Unknown logins and accounts without a password check the dummy hash: same cost. */
    rc = cu_identity_hasher_rc(cu_hasher_verify(idn->hasher, op->verified[0] ? op->verified : NULL,
                                                password, len, &op->ok, &rehash));
    if (rc == CU_OK && op->ok && rehash &&
        cu_identity_hasher_rc(cu_hasher_hash(idn->hasher, password, len, op->newhash)) != CU_OK)
        op->newhash[0] = '\0'; /* re-hashing is best effort: the sign-in stands */
    return rc;
}

enum cu_err cu_identity_login_check(struct cu_identity *idn, struct cu_db *db,
                                    struct cu_identity_login *op, const char *password, size_t len)
{
    enum cu_err rc =
        login_ok(op->login, password, len) ? cu_identity_login_read(idn, db, op) : CU_E_INVALID;
    return rc == CU_OK ? cu_identity_login_verify(idn, op, password, len) : rc;
}

enum cu_err cu_identity_login_record(struct cu_identity *idn, struct cu_work *w, struct cu_db *db,
                                     struct cu_identity_login *op)
{
    uint64_t failures = 0;
    int64_t locked_until = 0, now = cu_clock_now_ms();
    enum cu_err rc;

    cu_crypto_wipe(&op->out, sizeof(op->out));
    op->result = CU_E_BAD_CREDENTIALS;
    /* Sign-ins that started together all passed their checks at once: the lockout is read
     * under its row's lock, so a burst cannot outrun it. */
    rc = cu_identity_lockout_locked(idn, db, op->subject, now, &failures, &locked_until);
    /* Locked now, or at the check (which then made no hash: the lock ran out meanwhile). */
    if (rc == CU_OK && (locked_until > now || op->locked)) {
        op->result = CU_E_RATE_LIMITED;
        op->out.retry_after_ms = locked_until > now ? locked_until - now : 1000;
        return refuse_locked(idn, w, db, op->kind, op->found, op->id, op->login, &op->ctx,
                             op->out.retry_after_ms);
    }
    /* The password may have been reset, or the account disabled or erased, since the check:
     * then the password checked is not the account's any more, and the sign-in fails. */
    if (rc == CU_OK && op->found && op->ok) {
        bool active = false, same = false;
        rc = cu_identity_subject_account(idn, db, op->kind, op->id, NULL, 0, &active);
        /* The second factor as it stands now: one enrolled meanwhile is asked for. */
        if (rc == CU_OK && active)
            rc = cu_identity_cred_same(db, op->kind, op->id, op->verified_at, &same,
                                       &op->totp_enabled);
        if (rc == CU_E_NOT_FOUND)
            rc = CU_OK;
        op->ok = rc == CU_OK && active && same;
    }
    /* Without a second factor to come, monitoring decides about this sign-in now, before
     * anything of a success is done; with one, about the second step. A sign-in it refuses is
     * answered, counted and recorded as a wrong password is: who guessed the password learns
     * nothing, not even from the lockout. */
    struct cu_signin_out mon;
    memset(&mon, 0, sizeof(mon));
    bool deny = false;
    if (rc == CU_OK && op->found && op->ok && !op->totp_enabled) {
        rc = signin_ask(idn, w, db, "login_succeeded", op->kind, op->id, op->subject, &op->ctx,
                        &op->hook_memo, &op->hook_memo_free, &mon);
        deny = rc == CU_OK && refused(&mon, false);
    }
    if (rc == CU_OK && op->found && op->ok && !deny) {
        rc = record_success(idn, w, db, op, mon.decision);
        if (rc == CU_OK)
            op->result = CU_OK;
    } else if (rc == CU_OK) {
        rc = record_failure(idn, w, db, op->kind, op->found, op->id, op->subject, op->login,
                            "login_failed", &op->ctx, "auth.login", &op->hook_memo,
                            &op->hook_memo_free, deny ? mon.decision : NULL);
    }
    if (rc != CU_OK)
        cu_crypto_wipe(&op->out, sizeof(op->out));
    return rc;
}

void cu_identity_login_clear(struct cu_identity_login *op)
{
    if (op->hook_memo != NULL && op->hook_memo_free != NULL)
        op->hook_memo_free(op->hook_memo);
    op->hook_memo = NULL;
    cu_crypto_wipe(op->newhash, sizeof(op->newhash));
    cu_crypto_wipe(op->verified, sizeof(op->verified));
    cu_crypto_wipe(&op->out, sizeof(op->out));
}

/* ---- second step ---- */

struct challenge {
    enum cu_subject_kind kind;
    char id[CU_SUBJECT_ID_BYTES];
    int64_t attempts;
};

static enum cu_err challenge_find(struct cu_db *db, const uint8_t h[CU_HASH_BYTES],
                                  struct challenge *c)
{
    static const char sql[] = "SELECT subject_kind, subject_id, attempts FROM auth_challenges "
                              "WHERE token_hash = $1 AND expires_at > $2 FOR UPDATE";
    const struct cu_val p[] = {CU_VB(h, CU_HASH_BYTES), CU_VI(cu_clock_now_ms())};
    struct cu_stmt *st = NULL;
    bool row = false;
    enum cu_err rc = cu_db_query(db, sql, p, CU_NVALS(p), &st);

    if (rc == CU_OK)
        rc = cu_stmt_next(st, &row);
    if (rc == CU_OK && !row)
        rc = CU_E_BAD_CREDENTIALS;
    if (rc == CU_OK) {
        size_t n = 0;
        const char *k = cu_stmt_text(st, 0, &n);
        c->kind = n == 5 && memcmp(k, "staff", 5) == 0 ? CU_SUBJECT_STAFF : CU_SUBJECT_CUSTOMER;
        k = cu_stmt_text(st, 1, &n);
        cu_text_copy(c->id, sizeof(c->id), k, n);
        c->attempts = cu_stmt_int(st, 2);
    }
    cu_stmt_done(st);
    return rc;
}

static enum cu_err challenge_failed(struct cu_db *db, const uint8_t h[CU_HASH_BYTES],
                                    int64_t attempts)
{
    static const char inc[] = "UPDATE auth_challenges SET attempts = attempts + 1 WHERE "
                              "token_hash = $1";
    static const char del[] = "DELETE FROM auth_challenges WHERE token_hash = $1";
    const struct cu_val p[] = {CU_VB(h, CU_HASH_BYTES)};
    return cu_db_exec(db, attempts + 1 >= MAX_CHALLENGE_ATTEMPTS ? del : inc, p, CU_NVALS(p));
}

enum cu_err cu_identity_mfa_check(struct cu_identity *idn, struct cu_identity_mfa *op,
                                  const char *challenge, const char *code)
{
    op->result = CU_E_BAD_CREDENTIALS;
    if (challenge == NULL || code == NULL || strnlen(code, 65) > 64)
        return CU_E_INVALID;
    if (!cu_identity_token_shape_ok("csc_", challenge, strlen(challenge)))
        return CU_E_BAD_CREDENTIALS;
    cu_crypto_keyed_hash(idn->token_key, challenge, CU_SESSION_TOKEN_LEN, op->challenge_hash);
    snprintf(op->code, sizeof(op->code), "%s", code);
    return CU_OK;
}

/* Checks the code and records the outcome: op->result gets the answer for the caller (CU_OK,
 * CU_E_BAD_CREDENTIALS or CU_E_RATE_LIMITED); the return value is whether the unit may keep
 * what it did. */
enum cu_err cu_identity_mfa_record(struct cu_identity *idn, struct cu_work *w, struct cu_db *db,
                                   struct cu_identity_mfa *op)
{
    const uint8_t *h = op->challenge_hash;
    struct cu_login_result *out = &op->out;
    struct challenge c;
    char subject[SUBJECT_KEY_BYTES];
    const char *method = "totp";
    bool active = false;
    uint64_t failures = 0;
    int64_t locked_until = 0, now = cu_clock_now_ms();
    enum cu_err rc;

    cu_crypto_wipe(out, sizeof(*out));
    op->result = CU_E_BAD_CREDENTIALS;
    rc = challenge_find(db, h, &c);
    if (rc != CU_OK)
        return rc == CU_E_BAD_CREDENTIALS ? CU_OK : rc;
    /* The account may have been disabled or erased since its password step: the challenge
     * dies with it. */
    rc = cu_identity_subject_account(idn, db, c.kind, c.id, NULL, 0, &active);
    if (rc == CU_E_NOT_FOUND || (rc == CU_OK && !active))
        return challenge_failed(db, h, MAX_CHALLENGE_ATTEMPTS);
    if (rc != CU_OK)
        return rc;
    cu_identity_subject_key(c.kind, c.id, subject);
    rc = cu_identity_lockout_locked(idn, db, subject, now, &failures, &locked_until);
    if (rc == CU_OK && locked_until > now) {
        out->retry_after_ms = locked_until - now;
        op->result = CU_E_RATE_LIMITED;
        return CU_OK;
    }
    enum cu_err used =
        rc == CU_OK ? cu_identity_second_factor_use(idn, db, c.kind, c.id, op->code, &method) : rc;
    if (used == CU_E_BAD_CREDENTIALS) {
        rc = challenge_failed(db, h, c.attempts);
        if (rc == CU_OK)
            rc = record_failure(idn, w, db, c.kind, true, c.id, subject, NULL, "mfa_failed",
                                &op->ctx, "auth.mfa", &op->hook_memo, &op->hook_memo_free, NULL);
        return rc;
    }
    if (used != CU_OK)
        return used;
    struct cu_signin_out mon;
    rc = signin_ask(idn, w, db, "login_succeeded", c.kind, c.id, subject, &op->ctx, &op->hook_memo,
                    &op->hook_memo_free, &mon);
    if (rc == CU_OK && mon.verdict == CU_SIGNIN_DENY) {
        /* the challenge is spent; answered as a wrong code */
        rc = challenge_failed(db, h, MAX_CHALLENGE_ATTEMPTS);
        if (rc == CU_OK)
            rc = cu_identity_audit_add(w, "auth.mfa", c.id, "denied",
                                       json_pack("{s:s, s:s, s:s}", "subject_kind",
                                                 cu_subject_kind_name(c.kind), "reason",
                                                 "monitoring", "decision", mon.decision));
        return rc;
    }
    if (rc != CU_OK)
        return rc;
    static const char del[] = "DELETE FROM auth_challenges WHERE token_hash = $1";
    const struct cu_val p[] = {CU_VB(h, CU_HASH_BYTES)};
    rc = cu_db_exec(db, del, p, CU_NVALS(p));
    if (rc == CU_OK)
        rc = cu_identity_lockout_reset(db, subject);
    if (rc == CU_OK)
        rc = cu_identity_session_create(idn, db, c.kind, c.id, CU_AAL2, &op->ctx, &out->session,
                                        out->token);
    if (rc == CU_OK)
        rc = cu_identity_event_add(db, "login_succeeded", c.kind, c.id, &op->ctx, method);
    if (rc == CU_OK)
        rc = cu_identity_audit_add(w, "auth.mfa", c.id, "success",
                                   json_pack("{s:s, s:s, s:s, s:i}", "subject_kind",
                                             cu_subject_kind_name(c.kind), "method", method,
                                             "session", out->session.id, "aal", 2));
    if (rc == CU_OK) {
        out->status = CU_LOGIN_OK;
        op->result = CU_OK;
    } else {
        cu_crypto_wipe(out, sizeof(*out));
    }
    return rc;
}

void cu_identity_mfa_clear(struct cu_identity_mfa *op)
{
    if (op->hook_memo != NULL && op->hook_memo_free != NULL)
        op->hook_memo_free(op->hook_memo);
    op->hook_memo = NULL;
    cu_crypto_wipe(op->code, sizeof(op->code));
    cu_crypto_wipe(&op->out, sizeof(op->out));
}

/* ---- step-up ---- */

static enum cu_err session_renew(struct cu_db *db, const char *id, enum cu_aal aal, int64_t now)
{
    static const char sql[] = "UPDATE sessions SET aal = $2, auth_at = $3 WHERE id = $1 AND "
                              "revoked_at IS NULL";
    const struct cu_val p[] = {CU_VT(id), CU_VI(aal), CU_VI(now)};
    enum cu_err rc = cu_db_exec(db, sql, p, CU_NVALS(p));
    return rc == CU_OK && cu_db_changes(db) != 1 ? CU_E_UNAUTHENTICATED : rc;
}

enum cu_err cu_identity_step_up_check(struct cu_identity *idn, struct cu_db *db,
                                      struct cu_identity_step_up *op, const char *password,
                                      size_t plen, const char *code)
{
    struct cred c;
    enum cu_err rc = cu_identity_cred_load(db, op->session.kind, op->session.subject_id, &c);

    op->password_ok = false;
    op->result = CU_E_BAD_CREDENTIALS;
    if (rc != CU_OK)
        return rc;
    /* An account with a second factor steps up with it; one without, with its password. */
    if ((c.totp_enabled && (code == NULL || password != NULL)) ||
        (!c.totp_enabled && (password == NULL || code != NULL)) ||
        (code != NULL && strnlen(code, 65) > 64) ||
        (password != NULL && (plen == 0 || plen > CU_PWHASH_MAX_PASSWORD_BYTES))) {
        cu_identity_cred_wipe(&c);
        return CU_E_INVALID;
    }
    op->has_code = code != NULL;
    if (code != NULL)
        snprintf(op->code, sizeof(op->code), "%s", code);
    if (password != NULL)
        rc = cu_identity_hasher_rc(cu_hasher_verify(idn->hasher,
                                                    c.has_password ? c.password_hash : NULL,
                                                    password, plen, &op->password_ok, NULL));
    cu_identity_cred_wipe(&c);
    return rc;
}

enum cu_err cu_identity_step_up_record(struct cu_identity *idn, struct cu_work *w, struct cu_db *db,
                                       struct cu_identity_step_up *op)
{
    struct cu_session_info *s = &op->session;
    char subject[SUBJECT_KEY_BYTES];
    const char *method = "password";
    uint64_t failures = 0;
    int64_t locked_until = 0, now = cu_clock_now_ms();
    enum cu_err rc, used = op->password_ok ? CU_OK : CU_E_BAD_CREDENTIALS;

    op->result = CU_E_BAD_CREDENTIALS;
    cu_identity_subject_key(s->kind, s->subject_id, subject);
    rc = cu_identity_lockout_locked(idn, db, subject, now, &failures, &locked_until);
    if (rc == CU_OK && locked_until > now) {
        op->result = CU_E_RATE_LIMITED;
        return CU_OK;
    }
    if (rc == CU_OK && op->has_code)
        used = cu_identity_second_factor_use(idn, db, s->kind, s->subject_id, op->code, &method);
    if (rc == CU_OK && used == CU_E_BAD_CREDENTIALS)
        return record_failure(idn, w, db, s->kind, true, s->subject_id, subject, NULL,
                              "step_up_failed", &op->ctx, "auth.step_up", NULL, NULL, NULL);
    if (rc == CU_OK)
        rc = used;
    enum cu_aal aal = op->has_code ? CU_AAL2 : s->aal;
    if (rc == CU_OK)
        rc = session_renew(db, s->id, aal, now);
    if (rc == CU_OK)
        rc = cu_identity_lockout_reset(db, subject);
    if (rc == CU_OK)
        rc = cu_identity_audit_add(w, "auth.step_up", s->subject_id, "success",
                                   json_pack("{s:s, s:s, s:s, s:i}", "subject_kind",
                                             cu_subject_kind_name(s->kind), "method", method,
                                             "session", s->id, "aal", (int)aal));
    if (rc == CU_OK) {
        s->aal = aal;
        s->auth_at = now;
        op->result = CU_OK;
    }
    return rc;
}

void cu_identity_step_up_clear(struct cu_identity_step_up *op)
{
    cu_crypto_wipe(op->code, sizeof(op->code));
}

/* ---- passwords ---- */

/* A password set: password_changed_at always moves on (by 1 ms if the clock has not), so that a
 * sign-in checked against the password before can tell it was reset (a re-hash keeps it). */
static enum cu_err store_password(struct cu_db *db, enum cu_subject_kind kind, const char *id,
                                  const char *hash)
{
    static const char sql[] =
        "INSERT INTO credentials (subject_kind, subject_id, password_hash, password_changed_at, "
        "totp_enabled_at, totp_last_step, created_at, updated_at) VALUES ($1, $2, $3, $4, NULL, "
        "-1, $4, $4) ON CONFLICT (subject_kind, subject_id) DO UPDATE SET password_hash = $3, "
        "password_changed_at = CASE WHEN credentials.password_changed_at >= $4 THEN "
        "credentials.password_changed_at + 1 ELSE $4 END, updated_at = $4";
    const struct cu_val p[] = {CU_VT(cu_subject_kind_name(kind)), CU_VT(id), CU_VT(hash),
                               CU_VI(cu_clock_now_ms())};
    return cu_db_exec(db, sql, p, CU_NVALS(p));
}

static enum cu_err challenges_drop(struct cu_db *db, enum cu_subject_kind kind, const char *id)
{
    static const char sql[] =
        "DELETE FROM auth_challenges WHERE subject_kind = $1 AND subject_id = $2";
    const struct cu_val p[] = {CU_VT(cu_subject_kind_name(kind)), CU_VT(id)};
    return cu_db_exec(db, sql, p, CU_NVALS(p));
}

enum cu_err cu_identity_password_prepare(struct cu_identity *idn, struct cu_identity_password *op,
                                         const char *pw, size_t len, const char *email,
                                         char why[CU_IDENTITY_WHY_BYTES])
{
    char pwhy[CU_PASSWORD_WHY_BYTES];
    enum cu_err rc = cu_password_check(idn->policy, pw, len, email, pwhy);

    why[0] = '\0';
    op->hash[0] = '\0';
    if (rc != CU_OK)
        snprintf(why, CU_IDENTITY_WHY_BYTES, "field 'password': %s", pwhy);
    if (rc == CU_OK)
        rc = cu_identity_hasher_rc(cu_hasher_hash(idn->hasher, pw, len, op->hash));
    if (rc != CU_OK)
        cu_crypto_wipe(op->hash, sizeof(op->hash));
    return rc;
}

enum cu_err cu_identity_password_read(struct cu_identity *idn, struct cu_db *db,
                                      struct cu_identity_password *op)
{
    bool active = false;
    enum cu_err rc = cu_identity_subject_account(idn, db, op->kind, op->id, op->email,
                                                 sizeof(op->email), &active);

    op->hash[0] = '\0';
    if (rc == CU_OK && !active)
        rc = CU_E_NOT_FOUND;
    if (rc != CU_OK)
        cu_crypto_wipe(op->email, sizeof(op->email));
    return rc;
}

enum cu_err cu_identity_password_check(struct cu_identity *idn, struct cu_db *db,
                                       struct cu_identity_password *op, const char *pw, size_t len,
                                       char why[CU_IDENTITY_WHY_BYTES])
{
    enum cu_err rc = cu_identity_password_read(idn, db, op);

    why[0] = '\0';
    if (rc == CU_OK)
        rc = cu_identity_password_prepare(idn, op, pw, len, op->email[0] ? op->email : NULL, why);
    return rc;
}

enum cu_err cu_identity_password_record(struct cu_identity *idn, struct cu_work *w,
                                        struct cu_db *db, const struct cu_identity_password *op)
{
    bool active = false;
    int64_t revoked = 0;
    /* The subject may have been disabled or erased since the check. */
    enum cu_err rc = cu_identity_subject_account(idn, db, op->kind, op->id, NULL, 0, &active);

    CU_ASSERT_MSG(op->hash[0] != '\0', "a password recorded without its check");
    if (rc == CU_OK && !active)
        rc = CU_E_NOT_FOUND;
    if (rc == CU_OK)
        rc = store_password(db, op->kind, op->id, op->hash);
    if (rc == CU_OK)
        rc = cu_identity_sessions_revoke_all(db, op->kind, op->id,
                                             op->keep_session[0] ? op->keep_session : NULL,
                                             cu_clock_now_ms(), &revoked);
    /* A challenge won with the old password dies with it. */
    if (rc == CU_OK)
        rc = challenges_drop(db, op->kind, op->id);
    if (rc == CU_OK)
        rc = cu_identity_audit_add(w, "credential.password_set", op->id, "success",
                                   json_pack("{s:s, s:I}", "subject_kind",
                                             cu_subject_kind_name(op->kind), "sessions_revoked",
                                             (json_int_t)revoked));
    return rc;
}

void cu_identity_password_clear(struct cu_identity_password *op)
{
    cu_crypto_wipe(op->hash, sizeof(op->hash));
    cu_crypto_wipe(op->email, sizeof(op->email));
}

enum cu_err cu_identity_verify_read(struct cu_identity *idn, struct cu_db *db,
                                    struct cu_identity_verify *op)
{
    char subject[SUBJECT_KEY_BYTES];
    struct cred c;
    uint64_t failures = 0;
    int64_t locked_until = 0, now = cu_clock_now_ms();
    enum cu_err rc;

    op->ok = false;
    cu_identity_subject_key(op->kind, op->id, subject);
    rc = cu_identity_cred_load(db, op->kind, op->id, &c);
    if (rc == CU_OK)
        rc = cu_identity_lockout_state(idn, db, subject, now, &failures, &locked_until);
    if (rc == CU_OK && locked_until > now)
        rc = CU_E_RATE_LIMITED;
    snprintf(op->verified, sizeof(op->verified), "%s", c.has_password ? c.password_hash : "");
    op->verified_at = c.password_changed_at;
    cu_identity_cred_wipe(&c);
    return rc;
}

enum cu_err cu_identity_verify_hash(struct cu_identity *idn, struct cu_identity_verify *op,
                                    const char *pw, size_t len)
{
    op->ok = false;
    if (len == 0 || len > CU_PWHASH_MAX_PASSWORD_BYTES)
        return CU_E_INVALID;
    return cu_identity_hasher_rc(cu_hasher_verify(
        idn->hasher, op->verified[0] ? op->verified : NULL, pw, len, &op->ok, NULL));
}

enum cu_err cu_identity_verify_check(struct cu_identity *idn, struct cu_db *db,
                                     struct cu_identity_verify *op, const char *pw, size_t len)
{
    enum cu_err rc = len == 0 || len > CU_PWHASH_MAX_PASSWORD_BYTES
                         ? CU_E_INVALID
                         : cu_identity_verify_read(idn, db, op);
    return rc == CU_OK ? cu_identity_verify_hash(idn, op, pw, len) : rc;
}

enum cu_err cu_identity_verify_record(struct cu_identity *idn, struct cu_work *w, struct cu_db *db,
                                      struct cu_identity_verify *op)
{
    char subject[SUBJECT_KEY_BYTES];
    uint64_t failures = 0;
    int64_t locked_until = 0, now = cu_clock_now_ms();
    bool same = false;
    enum cu_err rc;

    op->result = CU_E_BAD_CREDENTIALS;
    cu_identity_subject_key(op->kind, op->id, subject);
    /* Guesses checked together are decided one by one under the lockout row's lock: once the
     * lock is written, the rest are refused, a right one too. */
    rc = cu_identity_lockout_locked(idn, db, subject, now, &failures, &locked_until);
    if (rc == CU_OK && locked_until > now) {
        op->result = CU_E_RATE_LIMITED;
        op->retry_after_ms = locked_until - now;
        return cu_identity_audit_add(w, "credential.password_check", op->id, "denied",
                                     json_pack("{s:s, s:s, s:I}", "subject_kind",
                                               cu_subject_kind_name(op->kind), "reason", "locked",
                                               "retry_after_ms", (json_int_t)op->retry_after_ms));
    }
    if (rc == CU_OK && op->ok)
        rc = cu_identity_cred_same(db, op->kind, op->id, op->verified_at, &same, NULL);
    if (rc == CU_OK && op->ok && same) {
        op->result = CU_OK;
        return CU_OK;
    }
    /* A wrong current password counts toward the lockout like a wrong sign-in: else a stolen
     * session could guess the password without limit. */
    if (rc == CU_OK)
        rc = record_failure(idn, w, db, op->kind, true, op->id, subject, NULL,
                            "password_check_failed", &op->ctx, "credential.password_check", NULL,
                            NULL, NULL);
    return rc;
}
