/*
 * test_identity.c - the identity service through its interface, on a temporary SQLite store
 * with a fake clock: customer sign-in and the password policy; the lockout schedule, for known
 * and unknown logins, and exact counting under concurrent failures; session idle and
 * absolute expiry, last-seen updates and revocation; TOTP enrolment, challenges, replays,
 * recovery codes and burnt or expired challenges; step-up; staff members sealed under their
 * own DEK, disabled, and re-wrapped after a KEK rotation; the audit hook (what it sees and
 * that no secret or login reaches it); erasure destroying the TOTP secret; sign-in events.
 */
#include "cu_test.h"

#include <pthread.h>

#include <jansson.h>

#include "audit/audit.h"
#include "base/buf.h"
#include "base/clock.h"
#include "base/mem.h"
#include "crypto/crypto.h"
#include "crypto/totp.h"
#include "identity/apikey.h"
#include "identity/identity.h"

#define SEC 1000LL
#define MINUTE (60 * SEC)
#define HOUR (60 * MINUTE)
#define T0 1767225600000LL /* 2026-01-01T00:00:00Z: the start of a TOTP step */
#define WORDLIST "/usr/share/john/password.lst"
#define PW "Tr0ub4dor&3-blue-kettle"
#define PW2 "Quasar-lantern-Fig-0917"
#define MAX_RECORDS 512

struct record {
    char action[64];
    char target[64];
    char outcome[32];
    char *details; /* json_dumps text, freed with free() */
};

struct fixture {
    char dir[256], key[300], db[300];
    struct cu_identity_opts opts;
    struct cu_keyring *kr;
    struct cu_kek_source *kek;
    struct cu_store *st;
    struct cu_db *conn;
    struct cu_vault *v;
    struct cu_identity *idn;
    struct cu_audit *log;
    struct cu_identity_audit audit;
    struct cu_auth_ctx ctx;
    struct record rec[MAX_RECORDS];
    size_t nrec;
    const char *fail_action; /* the hook fails this action with CU_E_AUDIT */
};

static const struct cu_identity_opts default_opts = {
    .pwhash = {.opslimit = 1, .memlimit = 8u << 20},
    .hash_concurrency = 2,
    .hash_wait_ms = 600000, /* valgrind makes each hash slow */
    .common_passwords = WORDLIST,
    .totp_issuer = "Custodia Test",
    .customer_mfa_required = false,
    .session_idle_ms = 30 * MINUTE,
    .session_absolute_ms = 12 * HOUR,
    .step_up_ms = 10 * MINUTE,
    .challenge_ms = 5 * MINUTE,
    .lockout_threshold = 3,
    .lockout_base_ms = 30 * SEC,
    .lockout_max_ms = 120 * SEC,
    .lockout_reset_ms = 60 * MINUTE,
};

/* ---- the audit hook: records what it is given ---- */

static enum cu_err record_append(void *arg, struct cu_db *db, const char *action,
                                 const char *target, const char *outcome, json_t *details)
{
    struct fixture *f = arg;
    enum cu_err rc = CU_OK;

    (void)db;
    if (f->fail_action != NULL && strcmp(action, f->fail_action) == 0) {
        rc = CU_E_AUDIT;
    } else if (f->nrec < MAX_RECORDS) {
        struct record *r = &f->rec[f->nrec++];
        snprintf(r->action, sizeof(r->action), "%s", action);
        snprintf(r->target, sizeof(r->target), "%s", target);
        snprintf(r->outcome, sizeof(r->outcome), "%s", outcome);
        r->details = details ? json_dumps(details, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    }
    json_decref(details);
    return rc;
}

static void records_clear(struct fixture *f)
{
    for (size_t i = 0; i < f->nrec; i++)
        free(f->rec[i].details);
    f->nrec = 0;
}

/* recorded(f, action, outcome): how many records of action with outcome the hook saw. */
static size_t recorded(const struct fixture *f, const char *action, const char *outcome)
{
    size_t n = 0;
    for (size_t i = 0; i < f->nrec; i++)
        n += strcmp(f->rec[i].action, action) == 0 && strcmp(f->rec[i].outcome, outcome) == 0;
    return n;
}

/* ---- fixture ---- */

static void open_services(struct fixture *f)
{
    char err[CU_KEYRING_ERR_BYTES];
    const struct cu_audit_opts ao = {.origin = "test.example/identity",
                                     .checkpoint_records = 1000,
                                     .checkpoint_seconds = 60};
    assert_int_equal(cu_keyring_load(f->key, &f->kr, err), CU_OK);
    assert_int_equal(cu_kek_source_keyring(f->kr, &f->kek), CU_OK);
    assert_int_equal(cu_vault_new(f->kr, f->kek, CU_AEAD_XCHACHA20POLY1305, &f->v), CU_OK);
    assert_int_equal(
        cu_identity_new(f->kr, f->kek, CU_AEAD_XCHACHA20POLY1305, f->v, &f->opts, &f->idn),
        CU_OK);
    assert_int_equal(cu_audit_new(f->kr, &ao, &f->log), CU_OK);
    f->audit.log = f->log;
}

static void close_services(struct fixture *f)
{
    cu_audit_free(f->log);
    cu_identity_free(f->idn);
    cu_vault_free(f->v);
    cu_kek_source_free(f->kek);
    cu_keyring_free(f->kr);
    f->log = NULL;
    f->audit.log = NULL;
    f->idn = NULL;
    f->v = NULL;
    f->kek = NULL;
    f->kr = NULL;
}

/* restart(f): the services again, with f->opts as the test changed them. */
static void restart(struct fixture *f)
{
    close_services(f);
    open_services(f);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    char err[CU_STORE_ERR_BYTES];
    assert_non_null(f);
    assert_int_equal(cu_crypto_init(), CU_OK);
    cu_test_tmpdir(f->dir, sizeof(f->dir));
    snprintf(f->key, sizeof(f->key), "%s/root.key", f->dir);
    snprintf(f->db, sizeof(f->db), "%s/t.db", f->dir);
    assert_int_equal(cu_keyring_create(f->key, err), CU_OK);
    struct cu_store_opts o = {.backend = "sqlite",
                              .path = f->db,
                              .busy_timeout_ms = 600000,
                              .synchronous_full = false,
                              .create = true};
    assert_int_equal(cu_store_open(&o, &f->st, err), CU_OK);
    assert_int_equal(cu_store_migrate(f->st, err), CU_OK);
    assert_int_equal(cu_store_db(f->st, &f->conn), CU_OK);
    cu_clock_set_fake(T0);
    f->opts = default_opts;
    f->audit.append = record_append;
    f->audit.arg = f;
    f->ctx.ip = "203.0.113.9";
    f->ctx.user_agent = "cmocka/1.0";
    f->ctx.device_id = "device-1";
    open_services(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    close_services(f);
    cu_store_close(f->st);
    cu_test_rmrf(f->dir);
    records_clear(f);
    cu_clock_use_real();
    free(f);
    return 0;
}

/* ---- helpers ---- */

/* add_customer(f, email, ref, id): a customer with this e-mail and external reference (ref
 * may be NULL). */
static void add_customer(struct fixture *f, const char *email, const char *ref,
                         char id[CU_CUSTOMER_ID_BYTES])
{
    char why[CU_VAULT_WHY_BYTES] = "";
    struct cu_customer c;
    json_t *in = json_pack("{s:s}", "email", email);
    assert_non_null(in);
    if (ref != NULL)
        json_object_set_new(in, "external_ref", json_string(ref));
    assert_int_equal(cu_db_begin(f->conn, CU_TXN_WRITE), CU_OK);
    enum cu_err rc = cu_vault_create(f->v, f->conn, in, &c, why);
    if (rc != CU_OK)
        fail_msg("vault create: %s (%s)", cu_err_str(rc), why);
    assert_int_equal(cu_db_commit(f->conn), CU_OK);
    snprintf(id, CU_CUSTOMER_ID_BYTES, "%s", c.id);
    cu_customer_clear(&c);
    json_decref(in);
}

static void set_pw(struct fixture *f, enum cu_subject_kind kind, const char *id, const char *pw)
{
    char why[CU_IDENTITY_WHY_BYTES] = "";
    enum cu_err rc =
        cu_identity_set_password(f->idn, f->st, kind, id, pw, strlen(pw), NULL, &f->audit, why);
    if (rc != CU_OK)
        fail_msg("set_password: %s (%s)", cu_err_str(rc), why);
}

/* customer(f, email, ref, id): a customer with the password PW. */
static void customer(struct fixture *f, const char *email, const char *ref,
                     char id[CU_CUSTOMER_ID_BYTES])
{
    add_customer(f, email, ref, id);
    set_pw(f, CU_SUBJECT_CUSTOMER, id, PW);
}

static enum cu_err login(struct fixture *f, enum cu_subject_kind kind, const char *who,
                         const char *pw, struct cu_login_result *out)
{
    return cu_identity_login(f->idn, f->st, kind, who, pw, strlen(pw), &f->ctx, &f->audit, out);
}

/* login_ok(f, kind, who, out): a password sign-in that must make a session. */
static void login_ok(struct fixture *f, enum cu_subject_kind kind, const char *who,
                     struct cu_login_result *out)
{
    assert_int_equal(login(f, kind, who, PW, out), CU_OK);
    assert_int_equal(out->status, CU_LOGIN_OK);
    assert_int_equal(strlen(out->token), CU_SESSION_TOKEN_LEN);
}

/* challenge(f, who, out): a password sign-in of a customer with TOTP: a challenge. */
static void challenge(struct fixture *f, const char *who, struct cu_login_result *out)
{
    assert_int_equal(login(f, CU_SUBJECT_CUSTOMER, who, PW, out), CU_OK);
    assert_int_equal(out->status, CU_LOGIN_MFA_REQUIRED);
    assert_int_equal(strlen(out->challenge), CU_SESSION_TOKEN_LEN);
    assert_memory_equal(out->challenge, "csc_", 4);
    assert_string_equal(out->token, "");
}

static enum cu_err mfa(struct fixture *f, const char *chal, const char *code,
                       struct cu_login_result *out)
{
    return cu_identity_mfa(f->idn, f->st, chal, code, &f->ctx, &f->audit, out);
}

static enum cu_err check(struct fixture *f, const char *token, struct cu_session_info *out)
{
    return cu_identity_session_check(f->idn, f->st, token, strlen(token), out);
}

/* q_int(f, sql, a): the first column of the first row of sql, with one text parameter a (or
 * none when a is NULL); -1 when there is no row. */
static int64_t q_int(struct fixture *f, const char *sql, const char *a)
{
    const struct cu_val p[] = {CU_VT(a ? a : "")};
    struct cu_stmt *st = NULL;
    bool row = false;
    int64_t v = -1;
    assert_int_equal(cu_db_query(f->conn, sql, p, a ? 1 : 0, &st), CU_OK);
    assert_int_equal(cu_stmt_next(st, &row), CU_OK);
    if (row)
        v = cu_stmt_int(st, 0);
    cu_stmt_done(st);
    return v;
}

/* lockout(f, subject, failures, until): the lockouts row of subject; false when none. */
static bool lockout(struct fixture *f, const char *subject, int64_t *failures, int64_t *until)
{
    static const char sql[] = "SELECT failures, locked_until FROM lockouts WHERE subject = $1";
    const struct cu_val p[] = {CU_VT(subject)};
    struct cu_stmt *st = NULL;
    bool row = false;
    assert_int_equal(cu_db_query(f->conn, sql, p, 1, &st), CU_OK);
    assert_int_equal(cu_stmt_next(st, &row), CU_OK);
    if (row) {
        *failures = cu_stmt_int(st, 0);
        *until = cu_stmt_int(st, 1);
    }
    cu_stmt_done(st);
    return row;
}

/* failures_of(f, subject): the failures its lockouts row counts (0 without a row). */
static int64_t failures_of(struct fixture *f, const char *subject)
{
    int64_t n = 0, until = 0;
    return lockout(f, subject, &n, &until) ? n : 0;
}

static void subject_of(const char *prefix, const char *id, char out[96])
{
    snprintf(out, 96, "%s:%s", prefix, id);
}

/* base32_decode(s, n, out, cap): RFC 4648 base32 without padding; the bytes decoded. */
static size_t base32_decode(const char *s, size_t n, uint8_t *out, size_t cap)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t len = 0;

    for (size_t i = 0; i < n; i++) {
        const char *p = s[i] != '\0' ? strchr(alphabet, s[i]) : NULL;
        assert_non_null(p);
        acc = (acc << 5) | (uint32_t)(p - alphabet);
        bits += 5;
        if (bits >= 8) {
            bits -= 8;
            assert_true(len < cap);
            out[len++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    return len;
}

/* secret_from_uri(uri, secret): the TOTP secret an otpauth URI carries. */
static void secret_from_uri(const char *uri, uint8_t secret[CU_TOTP_SECRET_BYTES])
{
    const char *s = strstr(uri, "secret=");
    assert_non_null(s);
    s += strlen("secret=");
    size_t n = strcspn(s, "&");
    assert_int_equal(base32_decode(s, n, secret, CU_TOTP_SECRET_BYTES), CU_TOTP_SECRET_BYTES);
}

/* totp_at(secret, offset_s, code): the code of the step offset_s seconds from now. */
static void totp_at(const uint8_t secret[CU_TOTP_SECRET_BYTES], int64_t offset_s, char code[8])
{
    assert_int_equal(cu_totp_code(secret, CU_TOTP_SECRET_BYTES,
                                  cu_clock_now_ms() / 1000 + offset_s, CU_TOTP_DIGITS, code),
                     CU_OK);
}

static void totp_now(const uint8_t secret[CU_TOTP_SECRET_BYTES], char code[8])
{
    totp_at(secret, 0, code);
}

/* wrong_code(secret, code): six digits that match no step of the verification window. */
static void wrong_code(const uint8_t secret[CU_TOTP_SECRET_BYTES], char code[8])
{
    char w[3][8];
    for (int i = 0; i < 3; i++)
        totp_at(secret, (i - 1) * CU_TOTP_STEP_SECONDS, w[i]);
    for (int d = 0; d < 10; d++) {
        snprintf(code, 8, "%06d", d * 111111);
        if (strcmp(code, w[0]) != 0 && strcmp(code, w[1]) != 0 && strcmp(code, w[2]) != 0)
            return;
    }
    fail_msg("no wrong code found");
}

/* enrol(f, kind, id, account, keep, secret, codes): enrols TOTP for the subject, keeping the
 * session keep, reads the secret back from the URI, and moves the clock to the next step so
 * that the current code has not been used. */
static void enrol(struct fixture *f, enum cu_subject_kind kind, const char *id,
                  const char *account, const char *keep, uint8_t secret[CU_TOTP_SECRET_BYTES],
                  char codes[CU_RECOVERY_CODES][CU_RECOVERY_CODE_BYTES])
{
    char uri[CU_TOTP_URI_BYTES], code[8];
    struct cu_buf svg;

    cu_buf_init(&svg, 1u << 20);
    assert_int_equal(cu_identity_totp_begin(f->idn, f->st, kind, id, account, uri, sizeof(uri),
                                            &svg, &f->audit),
                     CU_OK);
    assert_non_null(strstr(cu_buf_cstr(&svg), "<svg"));
    cu_buf_free(&svg);
    assert_memory_equal(uri, "otpauth://totp/", strlen("otpauth://totp/"));
    secret_from_uri(uri, secret);
    totp_now(secret, code);
    assert_int_equal(
        cu_identity_totp_confirm(f->idn, f->st, kind, id, code, keep, &f->audit, codes), CU_OK);
    cu_clock_advance(CU_TOTP_STEP_SECONDS * SEC);
}

/* ---- 1. customer sign-in ---- */

static void test_customer_sign_in(void **state)
{
    struct fixture *f = *state;
    char id[CU_CUSTOMER_ID_BYTES], why[CU_IDENTITY_WHY_BYTES], subject[96];
    struct cu_login_result r, r2;
    struct cu_session_info s;
    struct cu_credential_info ci;
    bool ok = true;
    static const char common_pw[] = "Password1234!";
    static const char mail_pw[] = "xx-Alice-was-here-2026";

    add_customer(f, "alice@example.com", "ref-alice", id);
    subject_of("customer", id, subject);
    /* Before a password is set, the right password is wrong too. */
    assert_int_equal(login(f, CU_SUBJECT_CUSTOMER, "alice@example.com", PW, &r),
                     CU_E_BAD_CREDENTIALS);
    assert_int_equal(
        cu_identity_lockout_clear(f->idn, f->st, CU_SUBJECT_CUSTOMER, id, &f->audit), CU_OK);

    /* The policy: a common password, one built on the e-mail, a short one. */
    assert_int_equal(cu_identity_set_password(f->idn, f->st, CU_SUBJECT_CUSTOMER, id, common_pw,
                                              strlen(common_pw), NULL, &f->audit, why),
                     CU_E_INVALID);
    assert_non_null(strstr(why, "common"));
    assert_null(strstr(why, "Password1234"));
    assert_int_equal(cu_identity_set_password(f->idn, f->st, CU_SUBJECT_CUSTOMER, id, mail_pw,
                                              strlen(mail_pw), NULL, &f->audit, why),
                     CU_E_INVALID);
    assert_non_null(strstr(why, "e-mail"));
    assert_null(strstr(why, "Alice"));
    assert_int_equal(cu_identity_set_password(f->idn, f->st, CU_SUBJECT_CUSTOMER, id, "Sh0rt!",
                                              6, NULL, &f->audit, why),
                     CU_E_INVALID);
    assert_non_null(strstr(why, "12"));
    assert_int_equal(cu_identity_set_password(f->idn, f->st, CU_SUBJECT_CUSTOMER,
                                              "cus_0000000000000000", PW, strlen(PW), NULL,
                                              &f->audit, why),
                     CU_E_NOT_FOUND);
    assert_int_equal(q_int(f, "SELECT count(*) FROM credentials", NULL), 0);
    set_pw(f, CU_SUBJECT_CUSTOMER, id, PW);

    /* Stored as an Argon2id string with the cheap parameters, never the password. */
    {
        static const char sql[] = "SELECT password_hash FROM credentials WHERE subject_id = $1";
        const struct cu_val p[] = {CU_VT(id)};
        struct cu_stmt *st = NULL;
        bool row = false;
        size_t n = 0;
        assert_int_equal(cu_db_query(f->conn, sql, p, 1, &st), CU_OK);
        assert_int_equal(cu_stmt_next(st, &row), CU_OK);
        assert_true(row);
        const char *h = cu_stmt_text(st, 0, &n);
        assert_memory_equal(h, "$argon2id$", 10);
        assert_non_null(strstr(h, "m=8192,t=1"));
        assert_null(strstr(h, PW));
        cu_stmt_done(st);
    }

    /* By e-mail (in any case): a session at aal1. */
    login_ok(f, CU_SUBJECT_CUSTOMER, "Alice@Example.COM", &r);
    assert_memory_equal(r.token, "css_", 4);
    assert_int_equal(r.session.aal, CU_AAL1);
    assert_int_equal(r.session.kind, CU_SUBJECT_CUSTOMER);
    assert_string_equal(r.session.subject_id, id);
    assert_false(r.mfa_enrolment_required);
    assert_int_equal(r.session.created_at, T0);
    assert_int_equal(r.session.expires_at, T0 + 12 * HOUR);
    assert_int_equal(r.session.idle_expires_at, T0 + 30 * MINUTE);
    assert_string_equal(r.session.ip, "203.0.113.9");
    assert_string_equal(r.session.device_id, "device-1");

    assert_int_equal(check(f, r.token, &s), CU_OK);
    assert_string_equal(s.id, r.session.id);
    assert_string_equal(s.subject_id, id);
    assert_int_equal(s.aal, CU_AAL1);
    assert_int_equal(s.auth_at, T0);
    assert_string_equal(s.user_agent, "cmocka/1.0");

    /* A wrong password and an unknown login get the same answer. */
    assert_int_equal(login(f, CU_SUBJECT_CUSTOMER, "alice@example.com", "Tr0ub4dor&3-blue-kettlE",
                           &r2),
                     CU_E_BAD_CREDENTIALS);
    assert_string_equal(r2.token, "");
    assert_string_equal(r2.challenge, "");
    assert_int_equal(failures_of(f, subject), 1);
    assert_int_equal(login(f, CU_SUBJECT_CUSTOMER, "nobody@example.com", PW, &r2),
                     CU_E_BAD_CREDENTIALS);
    assert_int_equal(login(f, CU_SUBJECT_CUSTOMER, "no-such-ref", PW, &r2), CU_E_BAD_CREDENTIALS);
    /* A customer's login does not sign in as staff. */
    assert_int_equal(login(f, CU_SUBJECT_STAFF, "alice@example.com", PW, &r2),
                     CU_E_BAD_CREDENTIALS);
    assert_int_equal(login(f, CU_SUBJECT_CUSTOMER, "", PW, &r2), CU_E_INVALID);

    /* By external reference; a success forgets the failure. */
    login_ok(f, CU_SUBJECT_CUSTOMER, "ref-alice", &r2);
    assert_string_equal(r2.session.subject_id, id);
    assert_string_not_equal(r2.token, r.token);
    assert_string_not_equal(r2.session.id, r.session.id);
    assert_int_equal(failures_of(f, subject), 0);

    assert_int_equal(cu_identity_check_password(f->idn, f->st, CU_SUBJECT_CUSTOMER, id, PW,
                                                strlen(PW), &ok),
                     CU_OK);
    assert_true(ok);
    assert_int_equal(cu_identity_check_password(f->idn, f->st, CU_SUBJECT_CUSTOMER, id, PW2,
                                                strlen(PW2), &ok),
                     CU_OK);
    assert_false(ok);
    assert_int_equal(cu_identity_credential_info(f->idn, f->conn, CU_SUBJECT_CUSTOMER, id, &ci),
                     CU_OK);
    assert_true(ci.has_password);
    assert_false(ci.totp_enabled);
    assert_int_equal(ci.password_changed_at, T0);
    assert_int_equal(ci.failures, 0);

    /* A new password revokes every session but the one kept. */
    char why2[CU_IDENTITY_WHY_BYTES];
    assert_int_equal(cu_identity_set_password(f->idn, f->st, CU_SUBJECT_CUSTOMER, id, PW2,
                                              strlen(PW2), r.session.id, &f->audit, why2),
                     CU_OK);
    assert_int_equal(check(f, r.token, &s), CU_OK);
    assert_int_equal(check(f, r2.token, &s), CU_E_UNAUTHENTICATED);
    assert_int_equal(login(f, CU_SUBJECT_CUSTOMER, "alice@example.com", PW, &r2),
                     CU_E_BAD_CREDENTIALS);
    assert_int_equal(login(f, CU_SUBJECT_CUSTOMER, "alice@example.com", PW2, &r2), CU_OK);
}

/* ---- 2. lockout ---- */

/* expect_locked(f, who, pw, wait): a sign-in refused for wait ms more, even with pw right. */
static void expect_locked(struct fixture *f, const char *who, const char *pw, int64_t wait)
{
    struct cu_login_result r;
    assert_int_equal(login(f, CU_SUBJECT_CUSTOMER, who, pw, &r), CU_E_RATE_LIMITED);
    assert_int_equal(r.retry_after_ms, wait);
    assert_string_equal(r.token, "");
}

static void test_lockout_wait(void **state)
{
    struct fixture *f = *state;
    struct cu_identity_opts o = f->opts;

    assert_int_equal(cu_identity_lockout_wait(&o, 0), 0);
    assert_int_equal(cu_identity_lockout_wait(&o, 1), 0);
    assert_int_equal(cu_identity_lockout_wait(&o, 2), 0);
    assert_int_equal(cu_identity_lockout_wait(&o, 3), 30 * SEC);
    assert_int_equal(cu_identity_lockout_wait(&o, 4), 60 * SEC);
    assert_int_equal(cu_identity_lockout_wait(&o, 5), 120 * SEC);
    assert_int_equal(cu_identity_lockout_wait(&o, 6), 120 * SEC);
    assert_int_equal(cu_identity_lockout_wait(&o, 1000000), 120 * SEC);
    assert_int_equal(cu_identity_lockout_wait(&o, UINT64_MAX), 120 * SEC);
    /* A cap no doubling reaches: the wait saturates instead of wrapping. */
    o.lockout_base_ms = 1;
    o.lockout_max_ms = INT64_MAX;
    assert_int_equal(cu_identity_lockout_wait(&o, 3 + 40), 1LL << 40);
    assert_int_equal(cu_identity_lockout_wait(&o, 3 + 62), 1LL << 62);
    assert_int_equal(cu_identity_lockout_wait(&o, UINT64_MAX), INT64_MAX);
    o.lockout_base_ms = INT64_MAX / 3;
    assert_int_equal(cu_identity_lockout_wait(&o, 5), INT64_MAX);
    /* Threshold 0 turns lockout off. */
    o = f->opts;
    o.lockout_threshold = 0;
    assert_int_equal(cu_identity_lockout_wait(&o, UINT64_MAX), 0);
}

