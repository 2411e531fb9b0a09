/*
 * test_identity.c - the identity service through its interface, on a temporary SQLite store
 * with a fake clock: customer sign-in and the password policy; the lockout schedule, for known
 * and unknown logins, and exact counting under concurrent failures; session idle and
 * absolute expiry, last-seen updates and revocation; TOTP enrolment, challenges, replays,
 * recovery codes and burnt or expired challenges; step-up; staff members sealed under their
 * own DEK, disabled, and re-wrapped after a KEK rotation; the audit hook (what it sees and
 * that no secret or login reaches it); erasure destroying the TOTP secret; sign-in events.
 *
 * It is over 800 lines because each case signs in through the whole service (store, vault,
 * committer) and the fixture that builds it is shared by all of them.
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
    struct cu_committer *c; /* runs the changes, with the recording sink below */
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

/* The committer's audit sink: keeps the records of a unit; fails a unit holding fail_action
 * (the unit is then rolled back, and its records are forgotten too). */
static enum cu_err record_append(void *arg, struct cu_db *db, const struct cu_work *w,
                                 const struct cu_work_record *recs, size_t n)
{
    struct fixture *f = arg;
    (void)db;
    (void)w;
    for (size_t i = 0; i < n; i++) {
        if (f->fail_action != NULL && strcmp(recs[i].action, f->fail_action) == 0)
            return CU_E_AUDIT;
    }
    for (size_t i = 0; i < n && f->nrec < MAX_RECORDS; i++) {
        struct record *r = &f->rec[f->nrec++];
        snprintf(r->action, sizeof(r->action), "%s", recs[i].action);
        snprintf(r->target, sizeof(r->target), "%s", recs[i].target);
        snprintf(r->outcome, sizeof(r->outcome), "%s", recs[i].outcome);
        r->details = recs[i].details ? strdup(recs[i].details) : NULL;
    }
    return CU_OK;
}

static void records_clear(struct fixture *f)
{
    for (size_t i = 0; i < f->nrec; i++)
        free(f->rec[i].details);
    f->nrec = 0;
}

/* recorded(f, action, outcome, needle): how many records of action with outcome the hook saw
 * whose details hold needle (NULL: any). */
static size_t recorded(const struct fixture *f, const char *action, const char *outcome,
                       const char *needle)
{
    size_t n = 0;
    for (size_t i = 0; i < f->nrec; i++) {
        const struct record *r = &f->rec[i];
        n += strcmp(r->action, action) == 0 && strcmp(r->outcome, outcome) == 0 &&
             (needle == NULL || (r->details != NULL && strstr(r->details, needle) != NULL));
    }
    return n;
}

/* ---- fixture ---- */

static void open_services(struct fixture *f)
{
    char err[CU_KEYRING_ERR_BYTES];
    const struct cu_audit_opts ao = {
        .origin = "test.example/identity", .checkpoint_records = 1000, .checkpoint_seconds = 60};
    assert_int_equal(cu_keyring_load(f->key, &f->kr, err), CU_OK);
    assert_int_equal(cu_kek_source_keyring(f->kr, &f->kek), CU_OK);
    assert_int_equal(cu_vault_new(f->kr, f->kek, CU_AEAD_XCHACHA20POLY1305, &f->v), CU_OK);
    assert_int_equal(
        cu_identity_new(f->kr, f->kek, CU_AEAD_XCHACHA20POLY1305, f->v, &f->opts, &f->idn), CU_OK);
    assert_int_equal(cu_audit_new(f->kr, &ao, &f->log), CU_OK);
    /* The service hashes logins in its records with the audit log's key. */
    cu_identity_free(f->idn);
    f->opts.audit = f->log;
    assert_int_equal(
        cu_identity_new(f->kr, f->kek, CU_AEAD_XCHACHA20POLY1305, f->v, &f->opts, &f->idn), CU_OK);
}

static void close_services(struct fixture *f)
{
    cu_audit_free(f->log);
    cu_identity_free(f->idn);
    cu_vault_free(f->v);
    cu_kek_source_free(f->kek);
    cu_keyring_free(f->kr);
    f->log = NULL;
    f->opts.audit = NULL;
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
    struct cu_committer_opts co = {.audit = {record_append, f}};
    assert_int_equal(cu_committer_new(f->st, &co, &f->c), CU_OK);
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
    cu_committer_free(f->c);
    close_services(f);
    cu_store_close(f->st);
    cu_test_rmrf(f->dir);
    records_clear(f);
    cu_clock_use_real();
    free(f);
    return 0;
}

/* ---- the service's operations, each run as the server runs it: its check on a read
 * view (f->conn), then its record in a unit of work through the committer ---- */

enum t_op {
    T_PASSWORD,
    T_VERIFY,
    T_LOGIN,
    T_MFA,
    T_STEP,
    T_TOUCH,
    T_REVOKE,
    T_BEGIN,
    T_CONFIRM,
    T_CODES,
    T_UNLOCK
};

struct t_call {
    struct fixture *f;
    enum t_op op;
    enum cu_subject_kind kind;
    const char *id, *sid, *account, *code, *keep;
    char *uri;
    size_t urilen;
    struct cu_buf *svg;
    char (*codes)[CU_RECOVERY_CODE_BYTES];
    void *state;
};

static enum cu_err t_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct t_call *c = arg;
    struct cu_identity *idn = c->f->idn;
    switch (c->op) {
    case T_PASSWORD:
        return cu_identity_password_record(idn, w, db, c->state);
    case T_VERIFY:
        return cu_identity_verify_record(idn, w, db, c->state);
    case T_LOGIN:
        return cu_identity_login_record(idn, w, db, c->state);
    case T_MFA:
        return cu_identity_mfa_record(idn, w, db, c->state);
    case T_STEP:
        return cu_identity_step_up_record(idn, w, db, c->state);
    case T_TOUCH:
        return cu_identity_session_touch(idn, db, c->sid, cu_clock_now_ms(), true);
    case T_REVOKE:
        return cu_identity_session_revoke(idn, w, db, c->kind, c->id, c->sid);
    case T_BEGIN:
        return cu_identity_totp_begin(idn, w, db, c->kind, c->id, c->account, c->uri, c->urilen,
                                      c->svg);
    case T_CONFIRM:
        return cu_identity_totp_confirm(idn, w, db, c->kind, c->id, c->code, c->keep, c->codes);
    case T_CODES:
        return cu_identity_recovery_regenerate(idn, w, db, c->kind, c->id, c->codes);
    case T_UNLOCK:
        return cu_identity_lockout_clear(idn, w, db, c->kind, c->id);
    }
    return CU_E_INTERNAL;
}

/* t_run(c): c's change in a unit of work of an API key's, through the committer. */
static enum cu_err t_run(struct t_call *c)
{
    struct cu_work_ctx ctx = {.now_ms = cu_clock_now_ms()};
    struct cu_work *w = NULL;
    enum cu_err rc;

    snprintf(ctx.actor_type, sizeof(ctx.actor_type), "apikey");
    snprintf(ctx.actor_id, sizeof(ctx.actor_id), "ak_test");
    rc = cu_work_new(&ctx, &w); /* may fail: the fault loop fails allocations */
    if (rc == CU_OK)
        rc = cu_work_add(w, t_apply, c);
    if (rc == CU_OK)
        rc = cu_committer_run(c->f->c, w);
    cu_work_free(w);
    return rc;
}

/* t_view(f): this thread's read view for a check, from the pool (several threads sign in at
 * once in one test); t_view_done() gives it back. */
static _Thread_local struct cu_db *t_db;

static struct cu_db *t_view(struct fixture *f)
{
    assert_int_equal(cu_store_acquire(f->st, &t_db), CU_OK);
    return t_db;
}

static void t_view_done(void)
{
    cu_store_release(t_db);
    t_db = NULL;
}

static enum cu_err t_set_password(struct fixture *f, enum cu_subject_kind kind, const char *id,
                                  const char *pw, size_t len, const char *keep,
                                  char why[CU_IDENTITY_WHY_BYTES])
{
    struct cu_identity_password op = {.kind = kind};
    struct t_call c = {.f = f, .op = T_PASSWORD, .state = &op};
    snprintf(op.id, sizeof(op.id), "%s", id);
    snprintf(op.keep_session, sizeof(op.keep_session), "%s", keep ? keep : "");
    enum cu_err rc = cu_identity_password_check(f->idn, t_view(f), &op, pw, len, why);
    t_view_done();
    if (rc == CU_OK)
        rc = t_run(&c);
    cu_identity_password_clear(&op);
    return rc;
}

static enum cu_err t_check_password(struct fixture *f, enum cu_subject_kind kind, const char *id,
                                    const char *pw, size_t len, const struct cu_auth_ctx *ctx,
                                    bool *ok)
{
    struct cu_identity_verify op = {.kind = kind};
    struct t_call c = {.f = f, .op = T_VERIFY, .state = &op};
    snprintf(op.id, sizeof(op.id), "%s", id);
    if (ctx != NULL)
        op.ctx = *ctx;
    enum cu_err rc = cu_identity_verify_check(f->idn, t_view(f), &op, pw, len);
    t_view_done();
    if (rc == CU_OK)
        rc = t_run(&c);
    *ok = op.ok;
    return rc;
}

static enum cu_err t_login(struct fixture *f, enum cu_subject_kind kind, const char *who,
                           const char *pw, size_t len, const struct cu_auth_ctx *ctx,
                           struct cu_login_result *out)
{
    struct cu_identity_login op = {.kind = kind};
    struct t_call c = {.f = f, .op = T_LOGIN, .state = &op};
    memset(out, 0, sizeof(*out));
    if (who != NULL && strlen(who) < sizeof(op.login))
        snprintf(op.login, sizeof(op.login), "%s", who);
    else if (who != NULL)
        memset(op.login, 'x', sizeof(op.login) - 1); /* too long: the check refuses it */
    if (ctx != NULL)
        op.ctx = *ctx;
    enum cu_err rc = cu_identity_login_check(f->idn, t_view(f), &op, pw, len);
    t_view_done();
    if (rc == CU_OK)
        rc = t_run(&c);
    if (rc == CU_OK)
        rc = op.result;
    if (rc == CU_OK || rc == CU_E_RATE_LIMITED)
        *out = op.out; /* a unit that failed answers nothing of what its record made */
    cu_identity_login_clear(&op);
    return rc;
}

static enum cu_err t_mfa(struct fixture *f, const char *chal, const char *code,
                         const struct cu_auth_ctx *ctx, struct cu_login_result *out)
{
    struct cu_identity_mfa op;
    struct t_call c = {.f = f, .op = T_MFA, .state = &op};
    memset(&op, 0, sizeof(op));
    memset(out, 0, sizeof(*out));
    if (ctx != NULL)
        op.ctx = *ctx;
    enum cu_err rc = cu_identity_mfa_check(f->idn, &op, chal, code);
    if (rc == CU_OK)
        rc = t_run(&c);
    if (rc == CU_OK)
        rc = op.result;
    if (rc == CU_OK || rc == CU_E_RATE_LIMITED)
        *out = op.out; /* a unit that failed answers nothing of what its record made */
    cu_identity_mfa_clear(&op);
    return rc;
}

static enum cu_err t_step_up(struct fixture *f, struct cu_session_info *s, const char *pw,
                             size_t plen, const char *code, const struct cu_auth_ctx *ctx)
{
    struct cu_identity_step_up op;
    struct t_call c = {.f = f, .op = T_STEP, .state = &op};
    memset(&op, 0, sizeof(op));
    op.session = *s;
    if (ctx != NULL)
        op.ctx = *ctx;
    enum cu_err rc = cu_identity_step_up_check(f->idn, t_view(f), &op, pw, plen, code);
    t_view_done();
    if (rc == CU_OK)
        rc = t_run(&c);
    if (rc == CU_OK)
        rc = op.result;
    if (rc == CU_OK)
        *s = op.session;
    cu_identity_step_up_clear(&op);
    return rc;
}

static enum cu_err t_session_check(struct fixture *f, const char *token, size_t len,
                                   struct cu_session_info *out)
{
    bool touch = false;
    enum cu_err rc = cu_identity_session_check(f->idn, f->conn, token, len, out, &touch);
    if (rc == CU_OK && touch) {
        struct t_call c = {.f = f, .op = T_TOUCH, .sid = out->id};
        rc = t_run(&c);
    }
    return rc;
}

static enum cu_err t_session_revoke(struct fixture *f, enum cu_subject_kind kind, const char *id,
                                    const char *sid)
{
    struct t_call c = {.f = f, .op = T_REVOKE, .kind = kind, .id = id, .sid = sid};
    return t_run(&c);
}

static enum cu_err t_totp_begin(struct fixture *f, enum cu_subject_kind kind, const char *id,
                                const char *account, char *uri, size_t urilen, struct cu_buf *svg)
{
    struct t_call c = {.f = f,
                       .op = T_BEGIN,
                       .kind = kind,
                       .id = id,
                       .account = account,
                       .uri = uri,
                       .urilen = urilen,
                       .svg = svg};
    return t_run(&c);
}

static enum cu_err t_totp_confirm(struct fixture *f, enum cu_subject_kind kind, const char *id,
                                  const char *code, const char *keep,
                                  char codes[CU_RECOVERY_CODES][CU_RECOVERY_CODE_BYTES])
{
    struct t_call c = {.f = f,
                       .op = T_CONFIRM,
                       .kind = kind,
                       .id = id,
                       .code = code,
                       .keep = keep,
                       .codes = codes};
    return t_run(&c);
}

static enum cu_err t_recovery_regenerate(struct fixture *f, enum cu_subject_kind kind,
                                         const char *id,
                                         char codes[CU_RECOVERY_CODES][CU_RECOVERY_CODE_BYTES])
{
    struct t_call c = {.f = f, .op = T_CODES, .kind = kind, .id = id, .codes = codes};
    return t_run(&c);
}

static enum cu_err t_lockout_clear(struct fixture *f, enum cu_subject_kind kind, const char *id)
{
    struct t_call c = {.f = f, .op = T_UNLOCK, .kind = kind, .id = id};
    return t_run(&c);
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
    enum cu_err rc = t_set_password(f, kind, id, pw, strlen(pw), NULL, why);
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
    return t_login(f, kind, who, pw, strlen(pw), &f->ctx, out);
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
    return t_mfa(f, chal, code, &f->ctx, out);
}

static enum cu_err check(struct fixture *f, const char *token, struct cu_session_info *out)
{
    return t_session_check(f, token, strlen(token), out);
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
    assert_int_equal(cu_totp_code(secret, CU_TOTP_SECRET_BYTES, cu_clock_now_ms() / 1000 + offset_s,
                                  CU_TOTP_DIGITS, code),
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
        totp_at(secret, (int64_t)(i - 1) * CU_TOTP_STEP_SECONDS, w[i]);
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
static void enrol(struct fixture *f, enum cu_subject_kind kind, const char *id, const char *account,
                  const char *keep, uint8_t secret[CU_TOTP_SECRET_BYTES],
                  char codes[CU_RECOVERY_CODES][CU_RECOVERY_CODE_BYTES])
{
    char uri[CU_TOTP_URI_BYTES], code[8];
    struct cu_buf svg;

    cu_buf_init(&svg, 1u << 20);
    assert_int_equal(t_totp_begin(f, kind, id, account, uri, sizeof(uri), &svg), CU_OK);
    assert_non_null(strstr(cu_buf_cstr(&svg), "<svg"));
    cu_buf_free(&svg);
    assert_memory_equal(uri, "otpauth://totp/", strlen("otpauth://totp/"));
    secret_from_uri(uri, secret);
    totp_now(secret, code);
    assert_int_equal(t_totp_confirm(f, kind, id, code, keep, codes), CU_OK);
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
    assert_int_equal(t_lockout_clear(f, CU_SUBJECT_CUSTOMER, id), CU_OK);

    /* The policy: a common password, one built on the e-mail, a short one. */
    assert_int_equal(
        t_set_password(f, CU_SUBJECT_CUSTOMER, id, common_pw, strlen(common_pw), NULL, why),
        CU_E_INVALID);
    assert_non_null(strstr(why, "common"));
    assert_null(strstr(why, "Password1234"));
    assert_int_equal(
        t_set_password(f, CU_SUBJECT_CUSTOMER, id, mail_pw, strlen(mail_pw), NULL, why),
        CU_E_INVALID);
    assert_non_null(strstr(why, "e-mail"));
    assert_null(strstr(why, "Alice"));
    assert_int_equal(t_set_password(f, CU_SUBJECT_CUSTOMER, id, "Sh0rt!", 6, NULL, why),
                     CU_E_INVALID);
    assert_non_null(strstr(why, "12"));
    assert_int_equal(
        t_set_password(f, CU_SUBJECT_CUSTOMER, "cus_0000000000000000", PW, strlen(PW), NULL, why),
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
    assert_int_equal(
        login(f, CU_SUBJECT_CUSTOMER, "alice@example.com", "Tr0ub4dor&3-blue-kettlE", &r2),
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

    assert_int_equal(t_check_password(f, CU_SUBJECT_CUSTOMER, id, PW, strlen(PW), NULL, &ok),
                     CU_OK);
    assert_true(ok);
    assert_int_equal(t_check_password(f, CU_SUBJECT_CUSTOMER, id, PW2, strlen(PW2), NULL, &ok),
                     CU_OK);
    assert_false(ok);
    /* A wrong current password counts toward the lockout. */
    assert_int_equal(failures_of(f, subject), 1);
    assert_int_equal(cu_identity_credential_info(f->idn, f->conn, CU_SUBJECT_CUSTOMER, id, &ci),
                     CU_OK);
    assert_true(ci.has_password);
    assert_false(ci.totp_enabled);
    assert_int_equal(ci.password_changed_at, T0);
    assert_int_equal(ci.failures, 1);

    /* A new password revokes every session but the one kept. */
    char why2[CU_IDENTITY_WHY_BYTES];
    assert_int_equal(
        t_set_password(f, CU_SUBJECT_CUSTOMER, id, PW2, strlen(PW2), r.session.id, why2), CU_OK);
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

static void test_lockout_schedule(void **state)
{
    struct fixture *f = *state;
    static const char bad[] = "not-the-password-1";
    static const int64_t waits[] = {30 * SEC, 60 * SEC, 120 * SEC, 120 * SEC};
    char id[CU_CUSTOMER_ID_BYTES], subject[96];
    struct cu_login_result r;
    struct cu_credential_info ci;
    int64_t failures = 0, until = 0;

    customer(f, "bob@example.com", NULL, id);
    subject_of("customer", id, subject);
    for (int i = 1; i <= 2; i++) {
        assert_int_equal(login(f, CU_SUBJECT_CUSTOMER, "bob@example.com", bad, &r),
                         CU_E_BAD_CREDENTIALS);
        assert_true(lockout(f, subject, &failures, &until));
        assert_int_equal(failures, i);
        assert_int_equal(until, 0);
    }
    /* Failures 3..6 wait 30, 60, 120 and 120 s; each wait is served before the next try. */
    for (int i = 0; i < 4; i++) {
        int64_t now = cu_clock_now_ms();
        assert_int_equal(login(f, CU_SUBJECT_CUSTOMER, "bob@example.com", bad, &r),
                         CU_E_BAD_CREDENTIALS);
        assert_true(lockout(f, subject, &failures, &until));
        assert_int_equal(failures, 3 + i);
        assert_int_equal(until, now + waits[i]);
        assert_int_equal(cu_identity_credential_info(f->idn, f->conn, CU_SUBJECT_CUSTOMER, id, &ci),
                         CU_OK);
        assert_int_equal(ci.failures, 3 + i);
        assert_int_equal(ci.locked_until, now + waits[i]);
        /* Refused even with the right password, and the refusal does not count. */
        expect_locked(f, "bob@example.com", PW, waits[i]);
        cu_clock_advance(waits[i] - 1);
        expect_locked(f, "bob@example.com", PW, 1);
        assert_int_equal(failures_of(f, subject), 3 + i);
        cu_clock_advance(1);
    }
    /* A success forgets every failure. */
    login_ok(f, CU_SUBJECT_CUSTOMER, "bob@example.com", &r);
    assert_false(lockout(f, subject, &failures, &until));

    /* Failures older than the reset period are forgotten. */
    for (int i = 0; i < 2; i++)
        assert_int_equal(login(f, CU_SUBJECT_CUSTOMER, "bob@example.com", bad, &r),
                         CU_E_BAD_CREDENTIALS);
    assert_int_equal(failures_of(f, subject), 2);
    cu_clock_advance(61 * MINUTE);
    assert_int_equal(cu_identity_credential_info(f->idn, f->conn, CU_SUBJECT_CUSTOMER, id, &ci),
                     CU_OK);
    assert_int_equal(ci.failures, 0);
    assert_int_equal(login(f, CU_SUBJECT_CUSTOMER, "bob@example.com", bad, &r),
                     CU_E_BAD_CREDENTIALS);
    assert_int_equal(failures_of(f, subject), 1);
    /* The reset period runs from the last failure, not the first. */
    cu_clock_advance(59 * MINUTE);
    assert_int_equal(login(f, CU_SUBJECT_CUSTOMER, "bob@example.com", bad, &r),
                     CU_E_BAD_CREDENTIALS);
    cu_clock_advance(59 * MINUTE);
    assert_int_equal(login(f, CU_SUBJECT_CUSTOMER, "bob@example.com", bad, &r),
                     CU_E_BAD_CREDENTIALS);
    assert_int_equal(failures_of(f, subject), 3);
    expect_locked(f, "bob@example.com", PW, 30 * SEC);

    /* Unknown logins lock out on the same schedule, in a row that does not name them. */
    for (int i = 0; i < 3; i++)
        assert_int_equal(login(f, CU_SUBJECT_CUSTOMER, "nobody@example.com", PW, &r),
                         CU_E_BAD_CREDENTIALS);
    expect_locked(f, "NoBody@example.com", PW, 30 * SEC);
    {
        static const char sql[] =
            "SELECT subject, failures FROM lockouts WHERE subject LIKE 'unknown:%'";
        struct cu_stmt *st = NULL;
        bool row = false;
        size_t n = 0;
        assert_int_equal(cu_db_query(f->conn, sql, NULL, 0, &st), CU_OK);
        assert_int_equal(cu_stmt_next(st, &row), CU_OK);
        assert_true(row);
        const char *s = cu_stmt_text(st, 0, &n);
        assert_int_equal(n, strlen("unknown:") + (size_t)2 * CU_HASH_BYTES);
        for (size_t i = strlen("unknown:"); i < n; i++)
            assert_non_null(strchr("0123456789abcdef", s[i]));
        assert_null(memmem(s, n, "nobody", 6));
        assert_int_equal(cu_stmt_int(st, 1), 3);
        assert_int_equal(cu_stmt_next(st, &row), CU_OK);
        assert_false(row);
        cu_stmt_done(st);
    }
    /* Another unknown login has a row of its own. */
    assert_int_equal(login(f, CU_SUBJECT_CUSTOMER, "somebody@example.com", PW, &r),
                     CU_E_BAD_CREDENTIALS);
    assert_int_equal(q_int(f, "SELECT count(*) FROM lockouts WHERE subject LIKE 'unknown:%'", NULL),
                     2);

    /* Pruning drops the rows quiet for longer than the reset period. */
    cu_clock_advance(61 * MINUTE);
    assert_int_equal(cu_db_begin(f->conn, CU_TXN_WRITE), CU_OK);
    assert_int_equal(cu_identity_prune(f->idn, f->conn), CU_OK);
    assert_int_equal(cu_db_commit(f->conn), CU_OK);
    assert_int_equal(q_int(f, "SELECT count(*) FROM lockouts", NULL), 0);
}

/* ---- 3. concurrent failures ---- */

#define THREADS 8
#define TRIES 5

struct worker {
    struct fixture *f;
    pthread_t thread;
    enum cu_err rc[TRIES];
};

static void *worker_main(void *arg)
{
    static const char bad[] = "wrong-password-99";
    struct worker *w = arg;
    for (int i = 0; i < TRIES; i++) {
        struct cu_login_result r;
        w->rc[i] = t_login(w->f, CU_SUBJECT_CUSTOMER, "carol@example.com", bad, strlen(bad),
                           &w->f->ctx, &r);
    }
    return NULL;
}

static void test_concurrent_failures(void **state)
{
    struct fixture *f = *state;
    struct worker w[THREADS];
    char id[CU_CUSTOMER_ID_BYTES], subject[96];
    int64_t failures = 0, until = 0;

    f->opts.lockout_threshold = 1000;
    restart(f);
    customer(f, "carol@example.com", NULL, id);
    subject_of("customer", id, subject);
    for (int i = 0; i < THREADS; i++) {
        w[i].f = f;
        assert_int_equal(pthread_create(&w[i].thread, NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_join(w[i].thread, NULL), 0);
    for (int i = 0; i < THREADS; i++) {
        for (int j = 0; j < TRIES; j++)
            assert_int_equal(w[i].rc[j], CU_E_BAD_CREDENTIALS);
    }
    assert_true(lockout(f, subject, &failures, &until));
    assert_int_equal(failures, THREADS * TRIES);
    assert_int_equal(until, 0);
    assert_int_equal(
        q_int(f, "SELECT count(*) FROM auth_events WHERE kind = 'login_failed' AND subject_id = $1",
              id),
        THREADS * TRIES);
}

/* ---- 4. sessions ---- */

static int64_t last_seen(struct fixture *f, const char *session_id)
{
    return q_int(f, "SELECT last_seen_at FROM sessions WHERE id = $1", session_id);
}

static void test_session_expiry(void **state)
{
    struct fixture *f = *state;
    char id[CU_CUSTOMER_ID_BYTES];
    struct cu_login_result a, b, c;
    struct cu_session_info s, *list = NULL;
    size_t n = 9;

    customer(f, "dana@example.com", NULL, id);

    /* Last-seen moves at most once a minute. */
    login_ok(f, CU_SUBJECT_CUSTOMER, "dana@example.com", &a);
    cu_clock_advance(30 * SEC);
    assert_int_equal(check(f, a.token, &s), CU_OK);
    assert_int_equal(s.last_seen_at, T0);
    assert_int_equal(last_seen(f, a.session.id), T0);
    cu_clock_advance(31 * SEC);
    assert_int_equal(check(f, a.token, &s), CU_OK);
    assert_int_equal(s.last_seen_at, T0 + 61 * SEC);
    assert_int_equal(s.idle_expires_at, T0 + 61 * SEC + 30 * MINUTE);
    assert_int_equal(last_seen(f, a.session.id), T0 + 61 * SEC);

    /* Idle for 31 minutes: gone, and no longer listed. */
    cu_clock_advance(31 * MINUTE);
    assert_int_equal(check(f, a.token, &s), CU_E_UNAUTHENTICATED);
    assert_int_equal(cu_identity_sessions_list(f->idn, f->conn, CU_SUBJECT_CUSTOMER, id, &list, &n),
                     CU_OK);
    assert_int_equal(n, 0);
    cu_free(list);

    /* A request every 20 minutes keeps a session alive for two hours, then idling ends it. */
    login_ok(f, CU_SUBJECT_CUSTOMER, "dana@example.com", &b);
    for (int i = 0; i < 6; i++) {
        cu_clock_advance(20 * MINUTE);
        assert_int_equal(check(f, b.token, &s), CU_OK);
        assert_int_equal(s.last_seen_at, cu_clock_now_ms());
        assert_int_equal(last_seen(f, b.session.id), cu_clock_now_ms());
    }
    cu_clock_advance(31 * MINUTE);
    assert_int_equal(check(f, b.token, &s), CU_E_UNAUTHENTICATED);

    /* The absolute expiry holds however busy the session is. */
    login_ok(f, CU_SUBJECT_CUSTOMER, "dana@example.com", &c);
    int64_t start = cu_clock_now_ms();
    for (int i = 0; i < 35; i++) {
        cu_clock_advance(20 * MINUTE);
        assert_int_equal(check(f, c.token, &s), CU_OK);
    }
    assert_int_equal(s.expires_at, start + 12 * HOUR);
    assert_int_equal(s.idle_expires_at, s.expires_at); /* idle expiry never passes it */
    cu_clock_advance(20 * MINUTE);
    assert_int_equal(check(f, c.token, &s), CU_E_UNAUTHENTICATED);
    cu_clock_advance(-1);
    assert_int_equal(check(f, c.token, &s), CU_OK);
}

static void test_session_tokens(void **state)
{
    struct fixture *f = *state;
    char id[CU_CUSTOMER_ID_BYTES], t[CU_SESSION_TOKEN_BYTES + 8];
    struct cu_login_result a;
    struct cu_session_info s;

    customer(f, "dora@example.com", NULL, id);
    login_ok(f, CU_SUBJECT_CUSTOMER, "dora@example.com", &a);
    /* Truncated, with a wrong prefix, a character outside base64url, one character changed,
     * with a header prefix, empty: all refused alike. */
    assert_int_equal(t_session_check(f, a.token, CU_SESSION_TOKEN_LEN - 1, &s),
                     CU_E_UNAUTHENTICATED);
    snprintf(t, sizeof(t), "%s", a.token);
    t[1] = 's' + 1;
    assert_int_equal(check(f, t, &s), CU_E_UNAUTHENTICATED);
    snprintf(t, sizeof(t), "%s", a.token);
    t[20] = '!';
    assert_int_equal(check(f, t, &s), CU_E_UNAUTHENTICATED);
    snprintf(t, sizeof(t), "%s", a.token);
    t[20] = t[20] == 'A' ? 'B' : 'A';
    assert_int_equal(check(f, t, &s), CU_E_UNAUTHENTICATED);
    snprintf(t, sizeof(t), "%s", a.token);
    t[1] = 's'; /* "css_" becomes "csc_" */
    t[2] = 'c';
    assert_int_equal(check(f, t, &s), CU_E_UNAUTHENTICATED);
    snprintf(t, sizeof(t), "Bearer %s", a.token);
    assert_int_equal(check(f, t, &s), CU_E_UNAUTHENTICATED);
    assert_int_equal(check(f, "", &s), CU_E_UNAUTHENTICATED);
    assert_int_equal(check(f, "css_", &s), CU_E_UNAUTHENTICATED);
    /* The real one still works; the store holds only its keyed hash. */
    assert_int_equal(check(f, a.token, &s), CU_OK);
    {
        static const char sql[] = "SELECT token_hash FROM sessions WHERE id = $1";
        const struct cu_val p[] = {CU_VT(a.session.id)};
        struct cu_stmt *st = NULL;
        bool row = false;
        size_t n = 0;
        assert_int_equal(cu_db_query(f->conn, sql, p, 1, &st), CU_OK);
        assert_int_equal(cu_stmt_next(st, &row), CU_OK);
        assert_true(row);
        const void *h = cu_stmt_blob(st, 0, &n);
        assert_int_equal(n, CU_HASH_BYTES);
        assert_null(memmem(h, n, a.token + 4, 8));
        cu_stmt_done(st);
    }
}

static void test_session_revoke(void **state)
{
    struct fixture *f = *state;
    char id[CU_CUSTOMER_ID_BYTES], other[CU_CUSTOMER_ID_BYTES];
    struct cu_login_result a, b, c, o;
    struct cu_session_info s, *list = NULL;
    size_t n = 0;

    customer(f, "erin@example.com", NULL, id);
    customer(f, "finn@example.com", NULL, other);
    login_ok(f, CU_SUBJECT_CUSTOMER, "erin@example.com", &a);
    cu_clock_advance(SEC);
    login_ok(f, CU_SUBJECT_CUSTOMER, "erin@example.com", &b);
    cu_clock_advance(SEC);
    login_ok(f, CU_SUBJECT_CUSTOMER, "erin@example.com", &c);
    login_ok(f, CU_SUBJECT_CUSTOMER, "finn@example.com", &o);
    assert_int_equal(cu_identity_sessions_list(f->idn, f->conn, CU_SUBJECT_CUSTOMER, id, &list, &n),
                     CU_OK);
    assert_int_equal(n, 3);
    assert_string_equal(list[0].id, c.session.id); /* newest first */
    assert_string_equal(list[2].id, a.session.id);
    cu_free(list);
    records_clear(f);

    /* One session. */
    assert_int_equal(t_session_revoke(f, CU_SUBJECT_CUSTOMER, id, a.session.id), CU_OK);
    assert_int_equal(check(f, a.token, &s), CU_E_UNAUTHENTICATED);
    assert_int_equal(check(f, b.token, &s), CU_OK);
    assert_int_equal(q_int(f, "SELECT revoked_at FROM sessions WHERE id = $1", a.session.id),
                     cu_clock_now_ms());
    /* Not twice, not another subject's, not an unknown one. */
    assert_int_equal(t_session_revoke(f, CU_SUBJECT_CUSTOMER, id, a.session.id), CU_E_NOT_FOUND);
    assert_int_equal(t_session_revoke(f, CU_SUBJECT_CUSTOMER, id, o.session.id), CU_E_NOT_FOUND);
    assert_int_equal(t_session_revoke(f, CU_SUBJECT_STAFF, id, b.session.id), CU_E_NOT_FOUND);
    assert_int_equal(t_session_revoke(f, CU_SUBJECT_CUSTOMER, id, "ses_0000000000000000"),
                     CU_E_NOT_FOUND);
    assert_int_equal(check(f, o.token, &s), CU_OK);
    assert_int_equal(check(f, b.token, &s), CU_OK);

    /* All of them; the other customer's stays. */
    assert_int_equal(t_session_revoke(f, CU_SUBJECT_CUSTOMER, id, NULL), CU_OK);
    assert_int_equal(check(f, b.token, &s), CU_E_UNAUTHENTICATED);
    assert_int_equal(check(f, c.token, &s), CU_E_UNAUTHENTICATED);
    assert_int_equal(check(f, o.token, &s), CU_OK);
    assert_int_equal(cu_identity_sessions_list(f->idn, f->conn, CU_SUBJECT_CUSTOMER, id, &list, &n),
                     CU_OK);
    assert_int_equal(n, 0);
    cu_free(list);
    assert_int_equal(recorded(f, "session.revoked", "success", NULL), 2);
    assert_string_equal(f->rec[0].target, a.session.id);
    assert_non_null(strstr(f->rec[1].details, "\"sessions\":2"));
}

/* ---- 5. TOTP ---- */

static void test_totp(void **state)
{
    struct fixture *f = *state;
    char id[CU_CUSTOMER_ID_BYTES], subject[96], uri[CU_TOTP_URI_BYTES], code[8], bad[8];
    char codes[CU_RECOVERY_CODES][CU_RECOVERY_CODE_BYTES], loose[CU_RECOVERY_CODE_BYTES];
    uint8_t secret[CU_TOTP_SECRET_BYTES], first[CU_TOTP_SECRET_BYTES];
    struct cu_login_result keep, other, r, r2, c;
    struct cu_session_info s;
    struct cu_credential_info ci;
    struct cu_buf svg;

    f->opts.lockout_threshold = 100; /* the burnt challenge takes five failures */
    restart(f);
    customer(f, "gina@example.com", NULL, id);
    subject_of("customer", id, subject);
    login_ok(f, CU_SUBJECT_CUSTOMER, "gina@example.com", &keep);
    login_ok(f, CU_SUBJECT_CUSTOMER, "gina@example.com", &other);

    /* Enrolment: a pending secret, sealed; beginning again replaces it. */
    cu_buf_init(&svg, 1u << 20);
    assert_int_equal(
        t_totp_begin(f, CU_SUBJECT_CUSTOMER, id, "gina@example.com", uri, sizeof(uri), &svg),
        CU_OK);
    secret_from_uri(uri, first);
    cu_buf_reset(&svg);
    assert_int_equal(
        t_totp_begin(f, CU_SUBJECT_CUSTOMER, id, "gina@example.com", uri, sizeof(uri), &svg),
        CU_OK);
    assert_non_null(strstr(cu_buf_cstr(&svg), "<svg"));
    cu_buf_free(&svg);
    assert_non_null(strstr(uri, "issuer=Custodia%20Test"));
    secret_from_uri(uri, secret);
    assert_memory_not_equal(first, secret, sizeof(secret));
    {
        static const char sql[] = "SELECT name, value FROM customer_secrets WHERE customer_id = $1";
        const struct cu_val p[] = {CU_VT(id)};
        const char *b32 = strstr(uri, "secret=") + 7;
        struct cu_stmt *st = NULL;
        bool row = false;
        size_t n = 0;
        assert_int_equal(cu_db_query(f->conn, sql, p, 1, &st), CU_OK);
        assert_int_equal(cu_stmt_next(st, &row), CU_OK);
        assert_true(row);
        assert_string_equal(cu_stmt_text(st, 0, &n), "totp_pending");
        const char *v = cu_stmt_text(st, 1, &n);
        assert_null(memmem(v, n, b32, 16));
        assert_int_equal(cu_stmt_next(st, &row), CU_OK);
        assert_false(row);
        cu_stmt_done(st);
    }

    /* A wrong code, and the replaced secret's code, do not confirm. */
    char codes_bad[CU_RECOVERY_CODES][CU_RECOVERY_CODE_BYTES];
    wrong_code(secret, bad);
    assert_int_equal(t_totp_confirm(f, CU_SUBJECT_CUSTOMER, id, bad, keep.session.id, codes_bad),
                     CU_E_BAD_CREDENTIALS);
    char old[8], now3[3][8];
    totp_now(first, old);
    for (int i = 0; i < 3; i++)
        totp_at(secret, (int64_t)(i - 1) * CU_TOTP_STEP_SECONDS, now3[i]);
    if (strcmp(old, now3[0]) != 0 && strcmp(old, now3[1]) != 0 && strcmp(old, now3[2]) != 0)
        assert_int_equal(
            t_totp_confirm(f, CU_SUBJECT_CUSTOMER, id, old, keep.session.id, codes_bad),
            CU_E_BAD_CREDENTIALS);
    assert_int_equal(cu_identity_credential_info(f->idn, f->conn, CU_SUBJECT_CUSTOMER, id, &ci),
                     CU_OK);
    assert_false(ci.totp_enabled);
    login_ok(f, CU_SUBJECT_CUSTOMER, "gina@example.com", &r); /* still one factor */

    /* The right code: ten distinct recovery codes, other sessions revoked. */
    totp_now(secret, code);
    assert_int_equal(t_totp_confirm(f, CU_SUBJECT_CUSTOMER, id, code, keep.session.id, codes),
                     CU_OK);
    for (int i = 0; i < CU_RECOVERY_CODES; i++) {
        assert_int_equal(strlen(codes[i]), 11);
        assert_int_equal(codes[i][5], '-');
        for (int j = 0; j < i; j++)
            assert_string_not_equal(codes[i], codes[j]);
    }
    assert_int_equal(check(f, keep.token, &s), CU_OK);
    assert_int_equal(check(f, other.token, &s), CU_E_UNAUTHENTICATED);
    assert_int_equal(check(f, r.token, &s), CU_E_UNAUTHENTICATED);
    assert_int_equal(t_totp_confirm(f, CU_SUBJECT_CUSTOMER, id, code, NULL, codes_bad),
                     CU_E_NOT_FOUND);
    assert_int_equal(cu_identity_credential_info(f->idn, f->conn, CU_SUBJECT_CUSTOMER, id, &ci),
                     CU_OK);
    assert_true(ci.totp_enabled);
    assert_int_equal(ci.totp_enabled_at, cu_clock_now_ms());
    assert_int_equal(ci.recovery_codes_left, CU_RECOVERY_CODES);
    assert_int_equal(q_int(f,
                           "SELECT count(*) FROM customer_secrets WHERE customer_id = $1 AND "
                           "name = 'totp'",
                           id),
                     1);
    assert_int_equal(q_int(f, "SELECT count(*) FROM customer_secrets WHERE customer_id = $1", id),
                     1);

    /* A password now leads to a challenge; the code that confirmed enrolment is spent. */
    assert_int_equal(login(f, CU_SUBJECT_CUSTOMER, "gina@example.com", PW2, &r),
                     CU_E_BAD_CREDENTIALS);
    assert_string_equal(r.challenge, "");
    challenge(f, "gina@example.com", &r);
    assert_int_equal(mfa(f, r.challenge, code, &c), CU_E_BAD_CREDENTIALS);
    assert_string_equal(c.token, "");
    /* The right password did not forget the wrong one: with a code still due, failures of
     * passwords and codes add up until the whole sign-in succeeds. */
    assert_int_equal(failures_of(f, subject), 2);
    cu_clock_advance(CU_TOTP_STEP_SECONDS * SEC);
    totp_now(secret, code);
    assert_int_equal(mfa(f, r.challenge, code, &c), CU_OK);
    assert_int_equal(c.status, CU_LOGIN_OK);
    assert_int_equal(c.session.aal, CU_AAL2);
    assert_string_equal(c.session.subject_id, id);
    assert_int_equal(check(f, c.token, &s), CU_OK);
    assert_int_equal(s.aal, CU_AAL2);
    assert_int_equal(failures_of(f, subject), 0);
    /* A challenge completes once. */
    assert_int_equal(mfa(f, r.challenge, code, &c), CU_E_BAD_CREDENTIALS);

    /* The same code with a new challenge is a replay; the next step's code works. */
    challenge(f, "gina@example.com", &r2);
    assert_int_equal(mfa(f, r2.challenge, code, &c), CU_E_BAD_CREDENTIALS);
    assert_int_equal(q_int(f, "SELECT max(attempts) FROM auth_challenges", NULL), 1);
    cu_clock_advance(CU_TOTP_STEP_SECONDS * SEC);
    totp_now(secret, code);
    assert_int_equal(mfa(f, r2.challenge, code, &c), CU_OK);
    assert_int_equal(c.session.aal, CU_AAL2);

    /* A recovery code works once; it may be typed in capitals without the dash. */
    challenge(f, "gina@example.com", &r);
    assert_int_equal(mfa(f, r.challenge, codes[0], &c), CU_OK);
    assert_int_equal(c.session.aal, CU_AAL2);
    challenge(f, "gina@example.com", &r);
    assert_int_equal(mfa(f, r.challenge, codes[0], &c), CU_E_BAD_CREDENTIALS);
    size_t j = 0;
    for (size_t i = 0; codes[1][i] != '\0'; i++) {
        if (codes[1][i] != '-')
            loose[j++] =
                (char)(codes[1][i] >= 'a' && codes[1][i] <= 'z' ? codes[1][i] - 32 : codes[1][i]);
    }
    loose[j] = '\0';
    assert_int_equal(mfa(f, r.challenge, loose, &c), CU_OK);
    assert_int_equal(cu_identity_credential_info(f->idn, f->conn, CU_SUBJECT_CUSTOMER, id, &ci),
                     CU_OK);
    assert_int_equal(ci.recovery_codes_left, CU_RECOVERY_CODES - 2);

    /* Five wrong codes burn a challenge: a right code on it then fails, and stays unspent. */
    cu_clock_advance(CU_TOTP_STEP_SECONDS * SEC);
    totp_now(secret, code);
    wrong_code(secret, bad);
    challenge(f, "gina@example.com", &r);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(mfa(f, r.challenge, bad, &c), CU_E_BAD_CREDENTIALS);
        assert_int_equal(q_int(f, "SELECT count(*) FROM auth_challenges", NULL), i < 4 ? 1 : 0);
    }
    assert_int_equal(failures_of(f, subject), 5);
    assert_int_equal(mfa(f, r.challenge, code, &c), CU_E_BAD_CREDENTIALS);
    assert_int_equal(failures_of(f, subject), 5); /* a burnt challenge names nobody */
    challenge(f, "gina@example.com", &r);
    assert_int_equal(mfa(f, r.challenge, code, &c), CU_OK);

    /* An expired challenge fails with a good code. */
    cu_clock_advance(CU_TOTP_STEP_SECONDS * SEC);
    challenge(f, "gina@example.com", &r);
    cu_clock_advance(f->opts.challenge_ms + SEC);
    totp_now(secret, code);
    assert_int_equal(mfa(f, r.challenge, code, &c), CU_E_BAD_CREDENTIALS);
    challenge(f, "gina@example.com", &r2);
    assert_int_equal(mfa(f, r2.challenge, code, &c), CU_OK);
    assert_int_equal(q_int(f, "SELECT count(*) FROM auth_challenges", NULL), 1);
    assert_int_equal(cu_identity_prune(f->idn, f->conn), CU_OK);
    assert_int_equal(q_int(f, "SELECT count(*) FROM auth_challenges", NULL), 0);

    /* Malformed challenges and codes. */
    assert_int_equal(mfa(f, "csc_short", code, &c), CU_E_BAD_CREDENTIALS);
    assert_int_equal(mfa(f, keep.token, code, &c), CU_E_BAD_CREDENTIALS);
    assert_int_equal(mfa(f, r2.challenge, NULL, &c), CU_E_INVALID);

    /* New recovery codes replace the old ones. */
    char fresh[CU_RECOVERY_CODES][CU_RECOVERY_CODE_BYTES];
    assert_int_equal(t_recovery_regenerate(f, CU_SUBJECT_CUSTOMER, id, fresh), CU_OK);
    challenge(f, "gina@example.com", &r);
    assert_int_equal(mfa(f, r.challenge, codes[2], &c), CU_E_BAD_CREDENTIALS);
    assert_int_equal(mfa(f, r.challenge, fresh[2], &c), CU_OK);
}

/* ---- 6. step-up ---- */

static void test_step_up(void **state)
{
    struct fixture *f = *state;
    char hana[CU_CUSTOMER_ID_BYTES], ivan[CU_CUSTOMER_ID_BYTES], subject[96], code[8], bad[8];
    char codes[CU_RECOVERY_CODES][CU_RECOVERY_CODE_BYTES];
    static const char wrong[] = "wrong-password-x1";
    uint8_t secret[CU_TOTP_SECRET_BYTES];
    struct cu_login_result a, b;
    struct cu_session_info s, s2;

    customer(f, "hana@example.com", NULL, hana);
    customer(f, "ivan@example.com", NULL, ivan);

    /* With TOTP: an aal1 session is never fresh; a code makes it fresh and aal2. */
    login_ok(f, CU_SUBJECT_CUSTOMER, "hana@example.com", &a);
    enrol(f, CU_SUBJECT_CUSTOMER, hana, "hana@example.com", a.session.id, secret, codes);
    subject_of("customer", hana, subject);
    assert_int_equal(check(f, a.token, &s), CU_OK);
    assert_int_equal(s.aal, CU_AAL1);
    assert_false(cu_identity_session_fresh(f->idn, &s, true, cu_clock_now_ms()));
    assert_true(cu_identity_session_fresh(f->idn, &s, false, cu_clock_now_ms()));
    totp_now(secret, code);
    assert_int_equal(t_step_up(f, &s, PW, strlen(PW), NULL, &f->ctx), CU_E_INVALID);
    assert_int_equal(t_step_up(f, &s, PW, strlen(PW), code, &f->ctx), CU_E_INVALID);
    assert_int_equal(t_step_up(f, &s, NULL, 0, NULL, &f->ctx), CU_E_INVALID);
    wrong_code(secret, bad);
    assert_int_equal(t_step_up(f, &s, NULL, 0, bad, &f->ctx), CU_E_BAD_CREDENTIALS);
    assert_int_equal(failures_of(f, subject), 1);
    assert_int_equal(t_step_up(f, &s, NULL, 0, code, &f->ctx), CU_OK);
    assert_int_equal(s.aal, CU_AAL2);
    assert_int_equal(s.auth_at, cu_clock_now_ms());
    assert_true(cu_identity_session_fresh(f->idn, &s, true, cu_clock_now_ms()));
    assert_int_equal(failures_of(f, subject), 0);
    assert_int_equal(check(f, a.token, &s), CU_OK);
    assert_int_equal(s.aal, CU_AAL2);
    assert_int_equal(s.auth_at, cu_clock_now_ms());
    /* The code is spent. */
    assert_int_equal(t_step_up(f, &s, NULL, 0, code, &f->ctx), CU_E_BAD_CREDENTIALS);

    /* Older than the step-up window: not fresh, until the next code (or a recovery code). */
    cu_clock_advance(f->opts.step_up_ms + SEC);
    assert_int_equal(check(f, a.token, &s), CU_OK);
    assert_false(cu_identity_session_fresh(f->idn, &s, true, cu_clock_now_ms()));
    totp_now(secret, code);
    assert_int_equal(t_step_up(f, &s, NULL, 0, code, &f->ctx), CU_OK);
    assert_true(cu_identity_session_fresh(f->idn, &s, true, cu_clock_now_ms()));
    cu_clock_advance(f->opts.step_up_ms + SEC);
    assert_int_equal(check(f, a.token, &s), CU_OK);
    assert_false(cu_identity_session_fresh(f->idn, &s, true, cu_clock_now_ms()));
    assert_int_equal(t_step_up(f, &s, NULL, 0, codes[3], &f->ctx), CU_OK);
    assert_true(cu_identity_session_fresh(f->idn, &s, true, cu_clock_now_ms()));

    /* Without TOTP: the password; a wrong one counts as a failure. */
    subject_of("customer", ivan, subject);
    login_ok(f, CU_SUBJECT_CUSTOMER, "ivan@example.com", &b);
    assert_int_equal(check(f, b.token, &s2), CU_OK);
    assert_true(cu_identity_session_fresh(f->idn, &s2, false, cu_clock_now_ms()));
    cu_clock_advance(11 * MINUTE);
    assert_int_equal(check(f, b.token, &s2), CU_OK);
    assert_false(cu_identity_session_fresh(f->idn, &s2, false, cu_clock_now_ms()));
    totp_now(secret, code);
    assert_int_equal(t_step_up(f, &s2, NULL, 0, code, &f->ctx), CU_E_INVALID);
    assert_int_equal(t_step_up(f, &s2, wrong, strlen(wrong), NULL, &f->ctx), CU_E_BAD_CREDENTIALS);
    assert_int_equal(failures_of(f, subject), 1);
    assert_false(cu_identity_session_fresh(f->idn, &s2, false, cu_clock_now_ms()));
    assert_int_equal(t_step_up(f, &s2, PW, strlen(PW), NULL, &f->ctx), CU_OK);
    assert_int_equal(s2.aal, CU_AAL1);
    assert_true(cu_identity_session_fresh(f->idn, &s2, false, cu_clock_now_ms()));
    assert_int_equal(failures_of(f, subject), 0);
    assert_int_equal(check(f, b.token, &s2), CU_OK);
    assert_int_equal(s2.auth_at, cu_clock_now_ms());

    /* Step-up failures lock out like sign-in failures. */
    for (int i = 0; i < 3; i++)
        assert_int_equal(t_step_up(f, &s2, wrong, strlen(wrong), NULL, &f->ctx),
                         CU_E_BAD_CREDENTIALS);
    assert_int_equal(t_step_up(f, &s2, PW, strlen(PW), NULL, &f->ctx), CU_E_RATE_LIMITED);
    cu_clock_advance(30 * SEC);

    /* A revoked session cannot step up. */
    assert_int_equal(t_session_revoke(f, CU_SUBJECT_CUSTOMER, ivan, NULL), CU_OK);
    assert_int_equal(t_step_up(f, &s2, PW, strlen(PW), NULL, &f->ctx), CU_E_UNAUTHENTICATED);
}

/* ---- 7. staff ---- */

/* in_row(st, cols, needle): whether needle occurs in any of the first cols columns of the
 * current row. */
static bool in_row(struct cu_stmt *st, int cols, const char *needle)
{
    for (int i = 0; i < cols; i++) {
        size_t n = 0;
        const void *p = cu_stmt_blob(st, i, &n);
        if (p != NULL && memmem(p, n, needle, strlen(needle)) != NULL)
            return true;
    }
    return false;
}

static void rotate_kek(struct fixture *f)
{
    char err[CU_KEYRING_ERR_BYTES];
    uint32_t v = 0;
    close_services(f);
    assert_int_equal(cu_keyring_add_kek(f->key, &v, err), CU_OK);
    assert_int_equal(v, 2);
    open_services(f);
}

static void test_staff(void **state)
{
    struct fixture *f = *state;
    char why[CU_IDENTITY_WHY_BYTES], code[8], subject[96];
    char codes[CU_RECOVERY_CODES][CU_RECOVERY_CODE_BYTES];
    uint8_t secret[CU_TOTP_SECRET_BYTES];
    const uint64_t scopes = CU_SCOPE_STAFF_READ | CU_SCOPE_AUDIT_READ;
    struct cu_staff_info s, t, g, *list = NULL;
    struct cu_login_result r, c, m;
    struct cu_session_info si;
    size_t n = 0, done = 0;
    int64_t count = 0;

    /* Validation. */
    assert_int_equal(cu_db_begin(f->conn, CU_TXN_WRITE), CU_OK);
    assert_int_equal(
        cu_identity_staff_add(f->idn, f->conn, "not-an-email", "Olga Ops", scopes, &s, why),
        CU_E_INVALID);
    assert_non_null(strstr(why, "email"));
    assert_int_equal(cu_identity_staff_add(f->idn, f->conn, "ops@example.com", "", scopes, &s, why),
                     CU_E_INVALID);
    assert_non_null(strstr(why, "name"));
    assert_int_equal(
        cu_identity_staff_add(f->idn, f->conn, "ops@example.com", "Olga\x01Ops", scopes, &s, why),
        CU_E_INVALID);
    assert_non_null(strstr(why, "name"));
    assert_int_equal(
        cu_identity_staff_add(f->idn, f->conn, "ops@example.com", "Olga Ops", 1ULL << 63, &s, why),
        CU_E_INVALID);
    assert_non_null(strstr(why, "scopes"));
    assert_int_equal(
        cu_identity_staff_add(f->idn, f->conn, "Ops@Example.com", "Olga Ops", scopes, &s, why),
        CU_OK);
    assert_memory_equal(s.id, "stf_", 4);
    assert_string_equal(s.email, "ops@example.com");
    assert_int_equal(
        cu_identity_staff_add(f->idn, f->conn, "OPS@example.com", "Other", scopes, &t, why),
        CU_E_EXISTS);
    assert_non_null(strstr(why, "email"));
    assert_int_equal(cu_identity_staff_add(f->idn, f->conn, "sam@example.com", "Sam Second",
                                           CU_SCOPE_METRICS_READ, &t, why),
                     CU_OK);
    assert_int_equal(cu_db_commit(f->conn), CU_OK);

    /* Read back, decrypted. */
    assert_int_equal(cu_identity_staff_get(f->idn, f->conn, s.id, &g), CU_OK);
    assert_string_equal(g.email, "ops@example.com");
    assert_string_equal(g.name, "Olga Ops");
    assert_int_equal(g.scopes, scopes);
    assert_string_equal(g.status, "active");
    assert_false(g.has_password);
    assert_false(g.totp_enabled);
    assert_int_equal(cu_identity_staff_find(f->idn, f->conn, "OPS@EXAMPLE.COM", &g), CU_OK);
    assert_string_equal(g.id, s.id);
    assert_int_equal(cu_identity_staff_find(f->idn, f->conn, "nobody@example.com", &g),
                     CU_E_NOT_FOUND);
    assert_int_equal(cu_identity_staff_find(f->idn, f->conn, "garbage", &g), CU_E_NOT_FOUND);
    assert_int_equal(cu_identity_staff_get(f->idn, f->conn, "stf_0000000000000000", &g),
                     CU_E_NOT_FOUND);
    assert_int_equal(cu_identity_staff_list(f->idn, f->conn, NULL, 10, &list, &n), CU_OK);
    assert_int_equal(n, 2);
    assert_true(strcmp(list[0].id, list[1].id) < 0);
    for (size_t i = 0; i < n; i++) {
        const struct cu_staff_info *e = &list[i];
        bool ops = strcmp(e->id, s.id) == 0;
        assert_string_equal(e->email, ops ? "ops@example.com" : "sam@example.com");
        assert_string_equal(e->name, ops ? "Olga Ops" : "Sam Second");
    }
    char after[CU_SUBJECT_ID_BYTES];
    snprintf(after, sizeof(after), "%s", list[0].id);
    cu_free(list);
    assert_int_equal(cu_identity_staff_list(f->idn, f->conn, after, 10, &list, &n), CU_OK);
    assert_int_equal(n, 1);
    assert_string_not_equal(list[0].id, after);
    cu_free(list);
    assert_int_equal(cu_identity_staff_list(f->idn, f->conn, NULL, 0, &list, &n), CU_E_INVALID);

    /* Neither the e-mail nor the name is stored in clear. */
    {
        static const char sql[] = "SELECT id, email_hash, email, name, scopes, status, "
                                  "dek_wrapped, kek_version, created_at, updated_at FROM staff";
        struct cu_stmt *st = NULL;
        bool row = false;
        int rows = 0;
        assert_int_equal(cu_db_query(f->conn, sql, NULL, 0, &st), CU_OK);
        while (cu_stmt_next(st, &row) == CU_OK && row) {
            rows++;
            assert_false(in_row(st, 10, "ops@example.com"));
            assert_false(in_row(st, 10, "Ops@Example.com"));
            assert_false(in_row(st, 10, "Olga"));
            assert_false(in_row(st, 10, "sam@example.com"));
            assert_false(in_row(st, 10, "Sam Second"));
        }
        cu_stmt_done(st);
        assert_int_equal(rows, 2);
    }

    /* Sign-in: by e-mail, as staff, and told to enrol a second factor. */
    set_pw(f, CU_SUBJECT_STAFF, s.id, PW);
    assert_int_equal(cu_identity_staff_get(f->idn, f->conn, s.id, &g), CU_OK);
    assert_true(g.has_password);
    login_ok(f, CU_SUBJECT_STAFF, "Ops@example.com", &r);
    assert_int_equal(r.session.kind, CU_SUBJECT_STAFF);
    assert_string_equal(r.session.subject_id, s.id);
    assert_true(r.mfa_enrolment_required);
    assert_int_equal(check(f, r.token, &si), CU_OK);
    assert_int_equal(si.kind, CU_SUBJECT_STAFF);
    assert_int_equal(login(f, CU_SUBJECT_CUSTOMER, "ops@example.com", PW, &c),
                     CU_E_BAD_CREDENTIALS);
    /* The password policy knows the staff member's e-mail. */
    static const char mail_pw[] = "my-ops@example.com-pw";
    assert_int_equal(t_set_password(f, CU_SUBJECT_STAFF, s.id, mail_pw, strlen(mail_pw), NULL, why),
                     CU_E_INVALID);
    assert_non_null(strstr(why, "e-mail"));

    /* TOTP for staff, sealed under their own DEK. */
    enrol(f, CU_SUBJECT_STAFF, s.id, "ops@example.com", r.session.id, secret, codes);
    assert_int_equal(
        q_int(f, "SELECT count(*) FROM staff_secrets WHERE staff_id = $1 AND name = 'totp'", s.id),
        1);
    assert_int_equal(q_int(f, "SELECT count(*) FROM customer_secrets", NULL), 0);
    assert_int_equal(cu_identity_staff_get(f->idn, f->conn, s.id, &g), CU_OK);
    assert_true(g.totp_enabled);
    assert_int_equal(login(f, CU_SUBJECT_STAFF, "ops@example.com", PW, &c), CU_OK);
    assert_int_equal(c.status, CU_LOGIN_MFA_REQUIRED);
    totp_now(secret, code);
    assert_int_equal(mfa(f, c.challenge, code, &m), CU_OK);
    assert_int_equal(m.session.kind, CU_SUBJECT_STAFF);
    assert_int_equal(m.session.aal, CU_AAL2);

    /* Scopes change; a bad status or an unknown member is refused. */
    assert_int_equal(cu_db_begin(f->conn, CU_TXN_WRITE), CU_OK);
    assert_int_equal(cu_identity_staff_set(f->idn, f->conn, s.id, 0, "frozen"), CU_E_INVALID);
    assert_int_equal(cu_identity_staff_set(f->idn, f->conn, s.id, 1ULL << 63, NULL), CU_E_INVALID);
    assert_int_equal(cu_identity_staff_set(f->idn, f->conn, "stf_0000000000000000", 0, NULL),
                     CU_E_NOT_FOUND);
    assert_int_equal(cu_identity_staff_set(f->idn, f->conn, s.id, CU_SCOPE_METRICS_READ, NULL),
                     CU_OK);
    assert_int_equal(cu_db_commit(f->conn), CU_OK);
    assert_int_equal(cu_identity_staff_get(f->idn, f->conn, s.id, &g), CU_OK);
    assert_int_equal(g.scopes, CU_SCOPE_METRICS_READ);
    assert_string_equal(g.status, "active");

    /* What the access policy reads: roles and attributes, checked, stored, read back. */
    struct cu_staff_access acc = {.roles = "support_agent auditor",
                                  .department = "support",
                                  .region = "emea",
                                  .training_valid_until = 1800000000000LL};
    struct cu_staff_access got;
    assert_string_equal(g.access.roles, "");
    assert_string_equal(g.access.department, "");
    assert_int_equal(g.access.training_valid_until, 0);
    static const char *const bad_roles[] = {"Admin",          " admin",      "admin ",
                                            "admin  auditor", "admin admin", "a b c d e f g h i",
                                            "9lives",         "a-b"};
    for (size_t i = 0; i < sizeof(bad_roles) / sizeof(bad_roles[0]); i++) {
        why[0] = '\0';
        if (cu_identity_roles_check(bad_roles[i], why) != CU_E_INVALID || why[0] == '\0')
            fail_msg("roles \"%s\" were not refused", bad_roles[i]);
    }
    assert_int_equal(cu_identity_roles_check("", why), CU_OK);
    assert_int_equal(cu_identity_roles_check("a b c d e f g h", why), CU_OK);
    assert_int_equal(cu_db_begin(f->conn, CU_TXN_WRITE), CU_OK);
    assert_int_equal(cu_identity_staff_set_access(f->idn, f->conn, s.id, &acc, why), CU_OK);
    struct cu_staff_access bad = acc;
    snprintf(bad.department, sizeof(bad.department), "a\x01b");
    assert_int_equal(cu_identity_staff_set_access(f->idn, f->conn, s.id, &bad, why), CU_E_INVALID);
    bad = acc;
    bad.training_valid_until = -1;
    assert_int_equal(cu_identity_staff_set_access(f->idn, f->conn, s.id, &bad, why), CU_E_INVALID);
    assert_int_equal(
        cu_identity_staff_set_access(f->idn, f->conn, "stf_0000000000000000", &acc, why),
        CU_E_NOT_FOUND);
    assert_int_equal(cu_db_commit(f->conn), CU_OK);
    assert_int_equal(cu_identity_staff_access(f->conn, s.id, &got), CU_OK);
    assert_string_equal(got.roles, "support_agent auditor");
    assert_string_equal(got.department, "support");
    assert_string_equal(got.region, "emea");
    assert_int_equal(got.training_valid_until, 1800000000000LL);
    assert_int_equal(cu_identity_staff_get(f->idn, f->conn, s.id, &g), CU_OK);
    assert_string_equal(g.access.roles, "support_agent auditor");
    assert_int_equal(cu_identity_staff_access(f->conn, "stf_0000000000000000", &got),
                     CU_E_NOT_FOUND);

    /* Disabled: sessions revoked, sign-in fails as for an unknown login. */
    subject_of("staff", s.id, subject);
    int64_t unknown =
        q_int(f, "SELECT count(*) FROM lockouts WHERE subject LIKE 'unknown:%'", NULL);
    assert_int_equal(cu_db_begin(f->conn, CU_TXN_WRITE), CU_OK);
    assert_int_equal(cu_identity_staff_set(f->idn, f->conn, s.id, 0, "disabled"), CU_OK);
    assert_int_equal(cu_db_commit(f->conn), CU_OK);
    assert_int_equal(check(f, r.token, &si), CU_E_UNAUTHENTICATED);
    assert_int_equal(check(f, m.token, &si), CU_E_UNAUTHENTICATED);
    assert_int_equal(cu_identity_staff_get(f->idn, f->conn, s.id, &g), CU_OK);
    assert_string_equal(g.status, "disabled");
    assert_int_equal(g.scopes, CU_SCOPE_METRICS_READ);
    assert_int_equal(login(f, CU_SUBJECT_STAFF, "ops@example.com", PW, &c), CU_E_BAD_CREDENTIALS);
    assert_int_equal(failures_of(f, subject), 0);
    assert_int_equal(q_int(f, "SELECT count(*) FROM lockouts WHERE subject LIKE 'unknown:%'", NULL),
                     unknown + 1);
    char why2[CU_IDENTITY_WHY_BYTES];
    assert_int_equal(t_set_password(f, CU_SUBJECT_STAFF, s.id, PW2, strlen(PW2), NULL, why2),
                     CU_E_NOT_FOUND);
    assert_int_equal(cu_db_begin(f->conn, CU_TXN_WRITE), CU_OK);
    assert_int_equal(cu_identity_staff_set(f->idn, f->conn, s.id, 0, "active"), CU_OK);
    assert_int_equal(cu_db_commit(f->conn), CU_OK);

    /* A new KEK: the staff DEKs move to it, in batches, and the old KEK can go. */
    assert_int_equal(cu_identity_staff_kek_usage(f->conn, 1, &count), CU_OK);
    assert_int_equal(count, 2);
    rotate_kek(f);
    assert_int_equal(cu_db_begin(f->conn, CU_TXN_WRITE), CU_OK);
    assert_int_equal(cu_identity_staff_rewrap(f->kek, f->conn, 1, &done), CU_OK);
    assert_int_equal(done, 1);
    assert_int_equal(cu_identity_staff_rewrap(f->kek, f->conn, 10, &done), CU_OK);
    assert_int_equal(done, 1);
    assert_int_equal(cu_identity_staff_rewrap(f->kek, f->conn, 10, &done), CU_OK);
    assert_int_equal(done, 0);
    assert_int_equal(cu_db_commit(f->conn), CU_OK);
    assert_int_equal(cu_identity_staff_kek_usage(f->conn, 1, &count), CU_OK);
    assert_int_equal(count, 0);
    assert_int_equal(cu_identity_staff_kek_usage(f->conn, 2, &count), CU_OK);
    assert_int_equal(count, 2);
    {
        char err[CU_KEYRING_ERR_BYTES];
        close_services(f);
        assert_int_equal(cu_keyring_retire_kek(f->key, 1, err), CU_OK);
        open_services(f);
    }
    assert_int_equal(cu_identity_staff_get(f->idn, f->conn, s.id, &g), CU_OK);
    assert_string_equal(g.email, "ops@example.com");
    assert_string_equal(g.name, "Olga Ops");
    assert_int_equal(cu_identity_staff_find(f->idn, f->conn, "sam@example.com", &g), CU_OK);
    assert_string_equal(g.name, "Sam Second");
    /* The TOTP secret, sealed under the re-wrapped DEK, still opens. */
    cu_clock_advance(CU_TOTP_STEP_SECONDS * SEC);
    assert_int_equal(login(f, CU_SUBJECT_STAFF, "ops@example.com", PW, &c), CU_OK);
    assert_int_equal(c.status, CU_LOGIN_MFA_REQUIRED);
    totp_now(secret, code);
    assert_int_equal(mfa(f, c.challenge, code, &m), CU_OK);
    assert_int_equal(m.session.aal, CU_AAL2);
}

/* A challenge must not outlive the account: disabled between password and code. */
static void test_staff_disabled_mid_sign_in(void **state)
{
    struct fixture *f = *state;
    char why[CU_IDENTITY_WHY_BYTES], code[8];
    char codes[CU_RECOVERY_CODES][CU_RECOVERY_CODE_BYTES];
    uint8_t secret[CU_TOTP_SECRET_BYTES];
    struct cu_staff_info s;
    struct cu_login_result r, c;

    assert_int_equal(cu_db_begin(f->conn, CU_TXN_WRITE), CU_OK);
    assert_int_equal(cu_identity_staff_add(f->idn, f->conn, "tess@example.com", "Tess",
                                           CU_SCOPE_STAFF_READ, &s, why),
                     CU_OK);
    assert_int_equal(cu_db_commit(f->conn), CU_OK);
    set_pw(f, CU_SUBJECT_STAFF, s.id, PW);
    enrol(f, CU_SUBJECT_STAFF, s.id, "tess@example.com", NULL, secret, codes);
    assert_int_equal(login(f, CU_SUBJECT_STAFF, "tess@example.com", PW, &r), CU_OK);
    assert_int_equal(r.status, CU_LOGIN_MFA_REQUIRED);
    assert_int_equal(cu_db_begin(f->conn, CU_TXN_WRITE), CU_OK);
    assert_int_equal(cu_identity_staff_set(f->idn, f->conn, s.id, 0, "disabled"), CU_OK);
    assert_int_equal(cu_db_commit(f->conn), CU_OK);
    totp_now(secret, code);
    assert_int_equal(mfa(f, r.challenge, code, &c), CU_E_BAD_CREDENTIALS);
    assert_string_equal(c.token, "");
    assert_int_equal(mfa(f, r.challenge, codes[0], &c), CU_E_BAD_CREDENTIALS);
    assert_int_equal(q_int(f, "SELECT count(*) FROM sessions WHERE subject_id = $1", s.id), 0);
}

/* ---- 8. the audit hook ---- */

static void test_audit_hook(void **state)
{
    struct fixture *f = *state;
    static const char bad_pw[] = "Wrong-horse-battery-3";
    char id[CU_CUSTOMER_ID_BYTES], code[8], bad[8], why[CU_IDENTITY_WHY_BYTES];
    char codes[CU_RECOVERY_CODES][CU_RECOVERY_CODE_BYTES];
    uint8_t secret[CU_TOTP_SECRET_BYTES];
    struct cu_login_result a, r, c;
    bool ok = false;

    customer(f, "jo.doe@example.com", NULL, id);
    assert_int_equal(login(f, CU_SUBJECT_CUSTOMER, "jo.doe@example.com", bad_pw, &r),
                     CU_E_BAD_CREDENTIALS);
    login_ok(f, CU_SUBJECT_CUSTOMER, "jo.doe@example.com", &a);
    enrol(f, CU_SUBJECT_CUSTOMER, id, "jo.doe@example.com", a.session.id, secret, codes);
    challenge(f, "jo.doe@example.com", &r);
    wrong_code(secret, bad);
    assert_int_equal(mfa(f, r.challenge, bad, &c), CU_E_BAD_CREDENTIALS);
    totp_now(secret, code);
    assert_int_equal(mfa(f, r.challenge, code, &c), CU_OK);
    assert_int_equal(t_session_revoke(f, CU_SUBJECT_CUSTOMER, id, a.session.id), CU_OK);

    /* Fail closed: when the record cannot be written, nothing changes. */
    f->fail_action = "credential.password_set";
    assert_int_equal(t_set_password(f, CU_SUBJECT_CUSTOMER, id, PW2, strlen(PW2), NULL, why),
                     CU_E_AUDIT);
    assert_int_equal(t_check_password(f, CU_SUBJECT_CUSTOMER, id, PW, strlen(PW), NULL, &ok),
                     CU_OK);
    assert_true(ok);
    assert_int_equal(check(f, c.token, &(struct cu_session_info){0}), CU_OK);
    f->fail_action = "auth.mfa";
    int64_t sessions = q_int(f, "SELECT count(*) FROM sessions", NULL);
    challenge(f, "jo.doe@example.com", &r);
    cu_clock_advance(CU_TOTP_STEP_SECONDS * SEC);
    totp_now(secret, code);
    assert_int_equal(mfa(f, r.challenge, code, &c), CU_E_AUDIT);
    assert_string_equal(c.token, "");
    assert_int_equal(q_int(f, "SELECT count(*) FROM sessions", NULL), sessions);
    f->fail_action = NULL;
    assert_int_equal(mfa(f, r.challenge, code, &c), CU_OK); /* rolled back, so not spent */

    /* Lockouts, for a known and an unknown login. */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(login(f, CU_SUBJECT_CUSTOMER, "jo.doe@example.com", bad_pw, &r),
                         CU_E_BAD_CREDENTIALS);
        assert_int_equal(login(f, CU_SUBJECT_CUSTOMER, "ghost@example.com", bad_pw, &r),
                         CU_E_BAD_CREDENTIALS);
    }
    assert_int_equal(login(f, CU_SUBJECT_CUSTOMER, "jo.doe@example.com", PW, &r),
                     CU_E_RATE_LIMITED);
    assert_int_equal(login(f, CU_SUBJECT_CUSTOMER, "ghost@example.com", PW, &r), CU_E_RATE_LIMITED);

    /* Outcomes are success, failure or denied; details tell a session from a challenge. */
    assert_true(recorded(f, "auth.login", "failure", NULL) >= 7);
    assert_int_equal(recorded(f, "auth.login", "success", NULL), 3);
    assert_int_equal(recorded(f, "auth.login", "success", "\"result\":\"signed_in\""), 1);
    assert_int_equal(recorded(f, "auth.login", "success", "\"result\":\"mfa_required\""), 2);
    assert_int_equal(recorded(f, "auth.login", "denied", "\"reason\":\"locked\""), 2);
    assert_int_equal(recorded(f, "auth.mfa", "failure", NULL), 1);
    assert_int_equal(recorded(f, "auth.mfa", "success", NULL), 2);
    assert_int_equal(recorded(f, "credential.password_set", "success", NULL), 1);
    assert_int_equal(recorded(f, "mfa.totp_enrolment_started", "success", NULL), 1);
    assert_int_equal(recorded(f, "mfa.totp_enabled", "success", NULL), 1);
    assert_int_equal(recorded(f, "session.revoked", "success", NULL), 1);

    /* No secret and no login in clear; logins stand as keyed hashes. */
    const char *never[] = {
        PW,       PW2,     bad_pw,  code,    bad,        "jo.doe@example.com", "ghost@example.com",
        "jo.doe", "ghost", a.token, c.token, r.challenge};
    for (size_t i = 0; i < f->nrec; i++) {
        const struct record *e = &f->rec[i];
        assert_non_null(e->details);
        for (size_t k = 0; k < sizeof(never) / sizeof(never[0]); k++) {
            if (never[k][0] == '\0')
                continue;
            if (strstr(e->details, never[k]) != NULL || strstr(e->target, never[k]) != NULL)
                fail_msg("%s record holds a secret or login: %s", e->action, e->details);
        }
        for (int k = 0; k < CU_RECOVERY_CODES; k++)
            assert_null(strstr(e->details, codes[k]));
        if (strcmp(e->action, "auth.login") == 0) {
            assert_non_null(strstr(e->details, "\"login\":\"hk:"));
            if (strcmp(e->outcome, "success") == 0)
                assert_string_equal(e->target, id);
            if (strcmp(e->outcome, "denied") == 0)
                assert_non_null(strstr(e->details, "\"retry_after_ms\":30000"));
        }
    }
}

/* ---- 9. erasure ---- */

static void test_erasure(void **state)
{
    struct fixture *f = *state;
    char id[CU_CUSTOMER_ID_BYTES], code[8], why[CU_IDENTITY_WHY_BYTES], uri[CU_TOTP_URI_BYTES];
    char codes[CU_RECOVERY_CODES][CU_RECOVERY_CODE_BYTES];
    uint8_t secret[CU_TOTP_SECRET_BYTES];
    struct cu_login_result a, r, c;
    struct cu_buf svg;

    customer(f, "kim@example.com", "ref-kim", id);
    login_ok(f, CU_SUBJECT_CUSTOMER, "kim@example.com", &a);
    enrol(f, CU_SUBJECT_CUSTOMER, id, "kim@example.com", a.session.id, secret, codes);
    assert_int_equal(q_int(f, "SELECT count(*) FROM customer_secrets WHERE customer_id = $1", id),
                     1);
    challenge(f, "kim@example.com", &r); /* a password step taken before the erasure */

    assert_int_equal(cu_db_begin(f->conn, CU_TXN_WRITE), CU_OK);
    assert_int_equal(cu_vault_erase(f->v, f->conn, id, "staff:test"), CU_OK);
    assert_int_equal(cu_db_commit(f->conn), CU_OK);
    assert_int_equal(cu_db_purge(f->conn), CU_OK);
    assert_int_equal(q_int(f, "SELECT count(*) FROM customer_secrets WHERE customer_id = $1", id),
                     0);

    /* Sign-in fails by e-mail and by reference, as for an unknown login. */
    assert_int_equal(login(f, CU_SUBJECT_CUSTOMER, "kim@example.com", PW, &c),
                     CU_E_BAD_CREDENTIALS);
    assert_int_equal(login(f, CU_SUBJECT_CUSTOMER, "ref-kim", PW, &c), CU_E_BAD_CREDENTIALS);
    char subject[96];
    subject_of("customer", id, subject);
    assert_int_equal(failures_of(f, subject), 0);
    /* Nor can the challenge be completed, with a code or a recovery code. */
    totp_now(secret, code);
    assert_int_equal(mfa(f, r.challenge, code, &c), CU_E_BAD_CREDENTIALS);
    assert_int_equal(mfa(f, r.challenge, codes[0], &c), CU_E_BAD_CREDENTIALS);
    /* Credentials cannot be set again. */
    assert_int_equal(t_set_password(f, CU_SUBJECT_CUSTOMER, id, PW2, strlen(PW2), NULL, why),
                     CU_E_NOT_FOUND);
    cu_buf_init(&svg, 1u << 20);
    assert_int_not_equal(
        t_totp_begin(f, CU_SUBJECT_CUSTOMER, id, "kim@example.com", uri, sizeof(uri), &svg), CU_OK);
    cu_buf_free(&svg);
    assert_int_equal(q_int(f, "SELECT count(*) FROM customer_secrets WHERE customer_id = $1", id),
                     0);
}

/* ---- 10. sign-in events ---- */

struct event {
    char kind[32], subject_kind[16], subject_id[32], ip[64], ua[400], device[200], reason[32];
    bool anonymous;
};

/* last_event(f, e): the newest auth_events row. */
static void last_event(struct fixture *f, struct event *e)
{
    static const char sql[] = "SELECT kind, subject_kind, subject_id, ip, user_agent, device_id, "
                              "reason FROM auth_events ORDER BY seq DESC LIMIT 1";
    struct cu_stmt *st = NULL;
    bool row = false;
    size_t n = 0;
    assert_int_equal(cu_db_query(f->conn, sql, NULL, 0, &st), CU_OK);
    assert_int_equal(cu_stmt_next(st, &row), CU_OK);
    assert_true(row);
    e->anonymous = cu_stmt_null(st, 2);
#define COL(i, dst) snprintf(dst, sizeof(dst), "%s", cu_stmt_text(st, i, &n))
    COL(0, e->kind);
    COL(1, e->subject_kind);
    COL(2, e->subject_id);
    COL(3, e->ip);
    COL(4, e->ua);
    COL(5, e->device);
    COL(6, e->reason);
#undef COL
    cu_stmt_done(st);
}

static void expect_event(struct fixture *f, const char *kind, const char *id, const char *reason)
{
    struct event e;
    last_event(f, &e);
    assert_string_equal(e.kind, kind);
    if (id != NULL) {
        assert_false(e.anonymous);
        assert_string_equal(e.subject_kind, "customer");
        assert_string_equal(e.subject_id, id);
    } else {
        assert_true(e.anonymous);
    }
    assert_string_equal(e.ip, f->ctx.ip);
    assert_string_equal(e.ua, f->ctx.user_agent);
    assert_string_equal(e.device, f->ctx.device_id);
    assert_string_equal(e.reason, reason);
}

static void test_events(void **state)
{
    struct fixture *f = *state;
    char id[CU_CUSTOMER_ID_BYTES], code[8], bad[8], long_ua[300];
    char codes[CU_RECOVERY_CODES][CU_RECOVERY_CODE_BYTES];
    uint8_t secret[CU_TOTP_SECRET_BYTES];
    struct cu_login_result a, r, c;
    struct event e;

    customer(f, "lee@example.com", NULL, id);
    f->ctx.ip = "198.51.100.23";
    f->ctx.user_agent = "Mozilla/5.0 (X11; test)";
    f->ctx.device_id = "dev-42";
    assert_int_equal(login(f, CU_SUBJECT_CUSTOMER, "lee@example.com", PW2, &r),
                     CU_E_BAD_CREDENTIALS);
    expect_event(f, "login_failed", id, "invalid_credentials");
    login_ok(f, CU_SUBJECT_CUSTOMER, "lee@example.com", &a);
    expect_event(f, "login_succeeded", id, "password");
    assert_int_equal(login(f, CU_SUBJECT_CUSTOMER, "stranger@example.com", PW, &r),
                     CU_E_BAD_CREDENTIALS);
    expect_event(f, "login_failed", NULL, "invalid_credentials");

    f->ctx.ip = "192.0.2.77";
    f->ctx.device_id = "dev-43";
    enrol(f, CU_SUBJECT_CUSTOMER, id, "lee@example.com", a.session.id, secret, codes);
    challenge(f, "lee@example.com", &r);
    expect_event(f, "mfa_challenged", id, "password");
    wrong_code(secret, bad);
    assert_int_equal(mfa(f, r.challenge, bad, &c), CU_E_BAD_CREDENTIALS);
    expect_event(f, "mfa_failed", id, "invalid_credentials");
    totp_now(secret, code);
    assert_int_equal(mfa(f, r.challenge, code, &c), CU_OK);
    expect_event(f, "login_succeeded", id, "totp");
    assert_string_equal(c.session.ip, "192.0.2.77");
    assert_string_equal(c.session.device_id, "dev-43");
    challenge(f, "lee@example.com", &r);
    assert_int_equal(mfa(f, r.challenge, codes[0], &c), CU_OK);
    expect_event(f, "login_succeeded", id, "recovery_code");

    /* Over-long strings are cut; a missing context records empty strings. */
    memset(long_ua, 'u', sizeof(long_ua) - 1);
    long_ua[sizeof(long_ua) - 1] = '\0';
    f->ctx.user_agent = long_ua;
    assert_int_equal(login(f, CU_SUBJECT_CUSTOMER, "lee@example.com", PW2, &r),
                     CU_E_BAD_CREDENTIALS);
    last_event(f, &e);
    assert_int_equal(strlen(e.ua), CU_USER_AGENT_MAX);
    assert_int_equal(t_login(f, CU_SUBJECT_CUSTOMER, "lee@example.com", PW2, strlen(PW2), NULL, &r),
                     CU_E_BAD_CREDENTIALS);
    last_event(f, &e);
    assert_string_equal(e.kind, "login_failed");
    assert_string_equal(e.ip, "");
    assert_string_equal(e.ua, "");
    assert_string_equal(e.device, "");
    /* Locked out after the third failure: its own kind. */
    f->ctx.user_agent = "Mozilla/5.0 (X11; test)";
    assert_int_equal(login(f, CU_SUBJECT_CUSTOMER, "lee@example.com", PW2, &r),
                     CU_E_BAD_CREDENTIALS);
    assert_int_equal(login(f, CU_SUBJECT_CUSTOMER, "lee@example.com", PW, &r), CU_E_RATE_LIMITED);
    expect_event(f, "login_locked", id, "locked");

    assert_int_equal(
        q_int(f, "SELECT count(*) FROM auth_events WHERE kind = 'login_failed' AND subject_id = $1",
              id),
        4);
    assert_int_equal(q_int(f, "SELECT count(*) FROM auth_events WHERE subject_id IS NULL", NULL),
                     1);
    assert_int_equal(q_int(f, "SELECT count(*) FROM auth_events WHERE kind = 'mfa_failed'", NULL),
                     1);
}

/* Whether rc is what an operation may answer when an allocation or a statement fails; *all
 * stays true only while every answer is CU_OK. */
static bool clean_rc(enum cu_err rc, bool *all)
{
    *all = *all && rc == CU_OK;
    return rc == CU_OK || rc == CU_E_NOMEM || rc == CU_E_STORE;
}

/* One pass of the identity operations that hash no password (hashing under valgrind, a
 * thousand times, would take minutes), on a staff member and a customer with a session, for
 * test_faults_unwind. True when nothing failed. */
static bool identity_operations(struct fixture *f, const char *staff, const char *cust,
                                const char *token)
{
    char why[CU_IDENTITY_WHY_BYTES], uri[CU_TOTP_URI_BYTES], name[CU_EMAIL_MAX + 1];
    struct cu_staff_info s, *list = NULL;
    struct cu_credential_info ci;
    struct cu_session_info si;
    struct cu_login_result r;
    struct cu_buf svg;
    uint64_t scopes = 0;
    size_t n = 0;
    bool all = true, active = false, totp = false;
    enum cu_err rc;

    assert_int_equal(cu_db_begin(f->conn, CU_TXN_WRITE), CU_OK);
    rc = cu_identity_staff_add(f->idn, f->conn, "new@example.com", "New Person",
                               CU_SCOPE_STAFF_READ, &s, why);
    assert_true(clean_rc(rc, &all));
    assert_true(clean_rc(
        cu_identity_staff_set(f->idn, f->conn, staff, CU_SCOPE_AUDIT_READ, "disabled"), &all));
    cu_db_rollback(f->conn);
    assert_true(clean_rc(cu_identity_staff_get(f->idn, f->conn, staff, &s), &all));
    rc = cu_identity_staff_find(f->idn, f->conn, "faults@example.com", &s);
    assert_true(clean_rc(rc, &all));
    rc = cu_identity_staff_list(f->idn, f->conn, NULL, 10, &list, &n);
    assert_true(clean_rc(rc, &all));
    if (rc == CU_OK)
        cu_free(list);
    for (int k = 0; k < 2; k++) {
        enum cu_subject_kind kind = k == 0 ? CU_SUBJECT_STAFF : CU_SUBJECT_CUSTOMER;
        const char *id = k == 0 ? staff : cust;
        cu_buf_init(&svg, 1u << 20);
        rc = t_totp_begin(f, kind, id, "who", uri, sizeof(uri), &svg);
        cu_buf_free(&svg);
        assert_true(clean_rc(rc, &all));
        rc = cu_identity_credential_info(f->idn, f->conn, kind, id, &ci);
        assert_true(clean_rc(rc, &all));
        rc = cu_identity_account_name(f->idn, f->conn, kind, id, name, sizeof(name), &active);
        assert_true(clean_rc(rc, &all));
        rc = cu_identity_subject_state(f->idn, f->conn, kind, id, &scopes, &active, &totp);
        assert_true(clean_rc(rc, &all));
        rc = t_lockout_clear(f, kind, id);
        assert_true(clean_rc(rc, &all));
    }
    rc = t_session_check(f, token, strlen(token), &si);
    assert_true(clean_rc(rc, &all));
    rc = t_mfa(f, "csc_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "123456", &f->ctx, &r);
    assert_true(rc == CU_E_BAD_CREDENTIALS || clean_rc(rc, &all));
    records_clear(f);
    return all;
}

/* Each allocation, and each statement, of the identity operations failing in turn, until a
 * pass has more of them than the operations make: every operation answers an error or
 * succeeds, and nothing is freed twice, used after it is freed or leaked (ASan and valgrind
 * watch the unwinding). */
static void test_faults_unwind(void **state)
{
    struct fixture *f = *state;
    char why[CU_IDENTITY_WHY_BYTES], cust[CU_CUSTOMER_ID_BYTES];
    struct cu_staff_info s;
    struct cu_login_result r;
    bool mem_done = false, store_done = false;
    long k = 1;

    assert_int_equal(cu_db_begin(f->conn, CU_TXN_WRITE), CU_OK);
    assert_int_equal(cu_identity_staff_add(f->idn, f->conn, "faults@example.com", "Fay Faults",
                                           CU_SCOPE_STAFF_READ, &s, why),
                     CU_OK);
    assert_int_equal(cu_db_commit(f->conn), CU_OK);
    customer(f, "fcust@example.com", NULL, cust);
    login_ok(f, CU_SUBJECT_CUSTOMER, "fcust@example.com", &r);
    for (; k <= 1000 && !(mem_done && store_done); k++) {
        cu_mem_fail_at(mem_done ? 0 : k);
        mem_done = identity_operations(f, s.id, cust, r.token) || mem_done;
        cu_mem_fail_at(0);
        cu_store_fail_next(f->st, store_done ? 0 : k);
        store_done = identity_operations(f, s.id, cust, r.token) || store_done;
        cu_store_fail_next(f->st, 0);
    }
    assert_true(mem_done && store_done && k > 10);
    struct cu_staff_info g;
    assert_int_equal(cu_identity_staff_get(f->idn, f->conn, s.id, &g), CU_OK);
    assert_string_equal(g.status, "active");
    assert_int_equal(g.scopes, CU_SCOPE_STAFF_READ);
}

/* ---- checks made before a lock or a reset, recorded after it ---- */

/* Three wrong passwords and the right one pass their checks at once (as a burst does), then
 * are recorded in order: the lockout the third failure writes refuses the right one. */
static void test_burst_outruns_no_lockout(void **state)
{
    struct fixture *f = *state;
    char id[CU_CUSTOMER_ID_BYTES];
    struct cu_identity_login ops[4];
    customer(f, "burst@example.com", NULL, id);
    for (int i = 0; i < 4; i++) {
        memset(&ops[i], 0, sizeof(ops[i]));
        ops[i].kind = CU_SUBJECT_CUSTOMER;
        snprintf(ops[i].login, sizeof(ops[i].login), "burst@example.com");
        const char *pw = i < 3 ? "wrong-password-000" : PW;
        assert_int_equal(cu_identity_login_check(f->idn, t_view(f), &ops[i], pw, strlen(pw)),
                         CU_OK);
        t_view_done();
    }
    for (int i = 0; i < 4; i++) {
        struct t_call c = {.f = f, .op = T_LOGIN, .state = &ops[i]};
        assert_int_equal(t_run(&c), CU_OK);
    }
    assert_int_equal(ops[3].result, CU_E_RATE_LIMITED);
    assert_string_equal(ops[3].out.token, "");
    for (int i = 0; i < 4; i++)
        cu_identity_login_clear(&ops[i]);
}

/* The same burst on a password change's check of the current password: once locked, the
 * right one is refused too, and the password is not changed. */
static void test_burst_on_password_change(void **state)
{
    struct fixture *f = *state;
    char id[CU_CUSTOMER_ID_BYTES], subject[96];
    struct cu_identity_verify ops[4];
    int64_t n = 0, until = 0;
    customer(f, "vburst@example.com", NULL, id);
    subject_of("customer", id, subject);
    for (int i = 0; i < 4; i++) {
        memset(&ops[i], 0, sizeof(ops[i]));
        ops[i].kind = CU_SUBJECT_CUSTOMER;
        snprintf(ops[i].id, sizeof(ops[i].id), "%s", id);
        const char *pw = i < 3 ? "wrong-password-000" : PW;
        assert_int_equal(cu_identity_verify_check(f->idn, t_view(f), &ops[i], pw, strlen(pw)),
                         CU_OK);
        t_view_done();
    }
    for (int i = 0; i < 3; i++) {
        struct t_call c = {.f = f, .op = T_VERIFY, .state = &ops[i]};
        assert_int_equal(t_run(&c), CU_OK);
        assert_int_equal(ops[i].result, CU_E_BAD_CREDENTIALS);
    }
    assert_true(lockout(f, subject, &n, &until));
    assert_true(until > cu_clock_now_ms());
    struct t_call c = {.f = f, .op = T_VERIFY, .state = &ops[3]};
    assert_int_equal(t_run(&c), CU_OK);
    assert_true(ops[3].ok);                             /* the check found it right */
    assert_int_equal(ops[3].result, CU_E_RATE_LIMITED); /* the record refuses it */
    assert_true(ops[3].retry_after_ms > 0 && ops[3].retry_after_ms <= until - T0);
    assert_int_equal(recorded(f, "credential.password_check", "denied", "\"reason\":\"locked\""),
                     1);
}

/* A sign-in checked with the old password and recorded after a reset committed fails, and its
 * due re-hash does not bring the old password back. */
static void test_sign_in_across_a_reset(void **state)
{
    struct fixture *f = *state;
    char id[CU_CUSTOMER_ID_BYTES], why[CU_IDENTITY_WHY_BYTES] = "";
    struct cu_identity_login op;
    struct cu_login_result r;
    customer(f, "reset@example.com", NULL, id); /* PW, hashed with opslimit 1 */
    f->opts.pwhash.opslimit = 2;                /* today's parameters: PW's hash is to redo */
    restart(f);
    memset(&op, 0, sizeof(op));
    op.kind = CU_SUBJECT_CUSTOMER;
    snprintf(op.login, sizeof(op.login), "reset@example.com");
    assert_int_equal(cu_identity_login_check(f->idn, t_view(f), &op, PW, strlen(PW)), CU_OK);
    t_view_done();
    assert_true(op.ok);
    assert_true(op.newhash[0] != '\0');
    /* Meanwhile the password is reset (PW was leaked). */
    assert_int_equal(t_set_password(f, CU_SUBJECT_CUSTOMER, id, PW2, strlen(PW2), NULL, why),
                     CU_OK);
    struct t_call c = {.f = f, .op = T_LOGIN, .state = &op};
    assert_int_equal(t_run(&c), CU_OK);
    assert_int_equal(op.result, CU_E_BAD_CREDENTIALS);
    assert_string_equal(op.out.token, "");
    cu_identity_login_clear(&op);
    assert_int_equal(login(f, CU_SUBJECT_CUSTOMER, "reset@example.com", PW2, &r), CU_OK);
    assert_int_equal(login(f, CU_SUBJECT_CUSTOMER, "reset@example.com", PW, &r),
                     CU_E_BAD_CREDENTIALS);
}

/* Two sign-ins with the right password checked at once when a re-hash is due: the first one's
 * re-hash does not fail the second (a re-hash is not a reset). */
static void test_concurrent_rehash(void **state)
{
    struct fixture *f = *state;
    char id[CU_CUSTOMER_ID_BYTES];
    struct cu_identity_login ops[2];
    customer(f, "twice@example.com", NULL, id); /* PW, hashed with opslimit 1 */
    f->opts.pwhash.opslimit = 2;
    restart(f);
    for (int i = 0; i < 2; i++) {
        memset(&ops[i], 0, sizeof(ops[i]));
        ops[i].kind = CU_SUBJECT_CUSTOMER;
        snprintf(ops[i].login, sizeof(ops[i].login), "twice@example.com");
        assert_int_equal(cu_identity_login_check(f->idn, t_view(f), &ops[i], PW, strlen(PW)),
                         CU_OK);
        t_view_done();
        assert_true(ops[i].newhash[0] != '\0');
    }
    for (int i = 0; i < 2; i++) {
        struct t_call c = {.f = f, .op = T_LOGIN, .state = &ops[i]};
        assert_int_equal(t_run(&c), CU_OK);
        assert_int_equal(ops[i].result, CU_OK);
        cu_identity_login_clear(&ops[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_customer_sign_in, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lockout_wait, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lockout_schedule, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_tokens, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_revoke, setup, teardown),
        cmocka_unit_test_setup_teardown(test_totp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_step_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_staff, setup, teardown),
        cmocka_unit_test_setup_teardown(test_staff_disabled_mid_sign_in, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_hook, setup, teardown),
        cmocka_unit_test_setup_teardown(test_erasure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_faults_unwind, setup, teardown),
        cmocka_unit_test_setup_teardown(test_burst_outruns_no_lockout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_burst_on_password_change, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sign_in_across_a_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_rehash, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
