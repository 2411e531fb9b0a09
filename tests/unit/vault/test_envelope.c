/*
 * test_envelope.c - the keys of every subject, through the envelope module and the two
 * services that use it: a customer's DEK and a staff member's are made, wrapped, unwrapped
 * and re-wrapped the same way, in the stored format of before (opened here by hand); a KEK
 * rotation re-wraps both kinds in batches, moves their usage counts and leaves every field
 * and secret readable after the old KEK is retired; a ciphertext or wrapped DEK moved to
 * another subject, name or kind fails to open; destroying a DEK leaves nothing to open; and
 * a database written by the code before the module (tests/data/fixtures/envelope-6eaab65)
 * still opens, re-wraps and reads. Over 800 lines as one file: every case stands on the same
 * fixture of both services and on the same helpers that open stored values by hand.
 */
#include "cu_test.h"

#include <sys/stat.h>

#include <jansson.h>

#include "base/mem.h"
#include "crypto/crypto.h"
#include "identity/identity_int.h"
#include "vault/vault_int.h"

#define WORDLIST "/usr/share/john/password.lst"

struct fixture {
    char dir[256], key[300], db[300];
    struct cu_keyring *kr;
    struct cu_kek_source *kek;
    struct cu_store *st;
    struct cu_db *conn;
    struct cu_vault *v;
    struct cu_identity *idn;
    struct cu_envelope *cust, *staff; /* the two kinds, made here as the services make them */
};

static const struct cu_identity_opts identity_opts = {
    .pwhash = {.opslimit = 1, .memlimit = 8u << 20},
    .hash_concurrency = 1,
    .hash_wait_ms = 600000,
    .common_passwords = WORDLIST,
    .totp_issuer = "test",
    .session_idle_ms = 60000,
    .session_absolute_ms = 60000,
    .step_up_ms = 60000,
    .challenge_ms = 60000,
    .lockout_threshold = 3,
    .lockout_base_ms = 1000,
    .lockout_max_ms = 2000,
    .lockout_reset_ms = 60000,
};

static void open_services(struct fixture *f)
{
    char err[CU_KEYRING_ERR_BYTES];
    assert_int_equal(cu_keyring_load(f->key, &f->kr, err), CU_OK);
    assert_int_equal(cu_kek_source_keyring(f->kr, &f->kek), CU_OK);
    assert_int_equal(cu_vault_new(f->kr, f->kek, CU_AEAD_XCHACHA20POLY1305, &f->v), CU_OK);
    assert_int_equal(
        cu_identity_new(f->kr, f->kek, CU_AEAD_XCHACHA20POLY1305, f->v, &identity_opts, &f->idn),
        CU_OK);
    assert_int_equal(
        cu_envelope_new(&cu_vault_customer_keys, f->kek, CU_AEAD_XCHACHA20POLY1305, &f->cust),
        CU_OK);
    assert_int_equal(
        cu_envelope_new(&cu_identity_staff_keys, f->kek, CU_AEAD_XCHACHA20POLY1305, &f->staff),
        CU_OK);
}

static void close_services(struct fixture *f)
{
    cu_envelope_free(f->cust);
    cu_envelope_free(f->staff);
    cu_identity_free(f->idn);
    cu_vault_free(f->v);
    cu_kek_source_free(f->kek);
    cu_keyring_free(f->kr);
    f->cust = f->staff = NULL;
    f->idn = NULL;
    f->v = NULL;
    f->kek = NULL;
    f->kr = NULL;
}

static void open_store(struct fixture *f, bool create)
{
    char err[CU_STORE_ERR_BYTES];
    struct cu_store_opts o = {.backend = "sqlite",
                              .path = f->db,
                              .busy_timeout_ms = 600000,
                              .synchronous_full = false,
                              .create = create};
    assert_int_equal(cu_store_open(&o, &f->st, err), CU_OK);
    assert_int_equal(cu_store_migrate(f->st, err), CU_OK);
    assert_int_equal(cu_store_db(f->st, &f->conn), CU_OK);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    char err[CU_KEYRING_ERR_BYTES];
    assert_non_null(f);
    assert_int_equal(cu_crypto_init(), CU_OK);
    cu_test_tmpdir(f->dir, sizeof(f->dir));
    snprintf(f->key, sizeof(f->key), "%s/root.key", f->dir);
    snprintf(f->db, sizeof(f->db), "%s/t.db", f->dir);
    assert_int_equal(cu_keyring_create(f->key, err), CU_OK);
    open_store(f, true);
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
    free(f);
    return 0;
}

/* ---- helpers ---- */

static void begin(struct fixture *f)
{
    assert_int_equal(cu_db_begin(f->conn, CU_TXN_WRITE), CU_OK);
}

static void commit(struct fixture *f)
{
    assert_int_equal(cu_db_commit(f->conn), CU_OK);
}

static void add_customer(struct fixture *f, const char *json, char id[CU_CUSTOMER_ID_BYTES])
{
    char why[CU_VAULT_WHY_BYTES] = "";
    json_error_t jerr;
    json_t *in = json_loads(json, 0, &jerr);
    struct cu_customer c;
    assert_non_null(in);
    begin(f);
    if (cu_vault_create(f->v, f->conn, in, &c, why) != CU_OK)
        fail_msg("create: %s", why);
    commit(f);
    snprintf(id, CU_CUSTOMER_ID_BYTES, "%s", c.id);
    cu_customer_clear(&c);
    json_decref(in);
}

static void add_staff(struct fixture *f, const char *email, const char *name,
                      char id[CU_SUBJECT_ID_BYTES])
{
    char why[CU_IDENTITY_WHY_BYTES] = "";
    struct cu_staff_info s;
    begin(f);
    if (cu_identity_staff_add(f->idn, f->conn, email, name, 1, &s, why) != CU_OK)
        fail_msg("staff: %s", why);
    commit(f);
    snprintf(id, CU_SUBJECT_ID_BYTES, "%s", s.id);
}

static void put_secret(struct fixture *f, enum cu_subject_kind kind, const char *id,
                       const char *name, const char *value)
{
    begin(f);
    assert_int_equal(cu_identity_secret_put(f->idn, f->conn, kind, id, name, value, strlen(value)),
                     CU_OK);
    commit(f);
}

/* secret_is(f, kind, id, name, want): the subject's secret opens to want. */
static void secret_is(struct fixture *f, enum cu_subject_kind kind, const char *id,
                      const char *name, const void *want, size_t wl)
{
    uint8_t got[CU_ENVELOPE_SECRET_MAX];
    size_t n = 0;
    assert_int_equal(cu_identity_secret_get(f->idn, f->conn, kind, id, name, got, sizeof(got), &n),
                     CU_OK);
    assert_int_equal(n, wl);
    assert_memory_equal(got, want, wl);
}

static enum cu_err secret_rc(struct fixture *f, enum cu_subject_kind kind, const char *id,
                             const char *name)
{
    uint8_t got[CU_ENVELOPE_SECRET_MAX];
    size_t n = 0;
    return cu_identity_secret_get(f->idn, f->conn, kind, id, name, got, sizeof(got), &n);
}

static const char *value_of(const struct cu_customer *c, const char *field)
{
    return c->values[cu_vault_field_index(cu_field_find(field))];
}

static void customer_field_is(struct fixture *f, const char *id, const char *field,
                              const char *want)
{
    struct cu_customer c;
    assert_int_equal(cu_vault_get(f->v, f->conn, id, true, &c), CU_OK);
    assert_non_null(value_of(&c, field));
    assert_string_equal(value_of(&c, field), want);
    cu_customer_clear(&c);
}

static void staff_is(struct fixture *f, const char *id, const char *email, const char *name)
{
    struct cu_staff_info s;
    assert_int_equal(cu_identity_staff_get(f->idn, f->conn, id, &s), CU_OK);
    assert_string_equal(s.email, email);
    assert_string_equal(s.name, name);
}

static int64_t usage(const struct cu_envelope_kind *kind, struct fixture *f, uint32_t version)
{
    int64_t n = -1;
    assert_int_equal(cu_envelope_kek_usage(kind, f->conn, version, &n), CU_OK);
    return n;
}

/* rewrap_all(f, env, batch): re-wraps in transactions of batch until none is left; the total. */
static size_t rewrap_all(struct fixture *f, struct cu_envelope *env, size_t batch)
{
    size_t done = 0, total = 0;
    do {
        begin(f);
        assert_int_equal(cu_envelope_rewrap(env, f->conn, batch, &done), CU_OK);
        commit(f);
        assert_true(done <= batch);
        total += done;
    } while (done > 0);
    return total;
}

static void add_kek(struct fixture *f, uint32_t want)
{
    char err[CU_KEYRING_ERR_BYTES];
    uint32_t v = 0;
    assert_int_equal(cu_keyring_add_kek(f->key, &v, err), CU_OK);
    assert_int_equal(v, want);
    close_services(f);
    open_services(f);
}

static void retire_kek(struct fixture *f, uint32_t version)
{
    char err[CU_KEYRING_ERR_BYTES];
    close_services(f);
    assert_int_equal(cu_keyring_retire_kek(f->key, version, err), CU_OK);
    open_services(f);
}

/* The stored form of a subject's DEK: its wrapped bytes and KEK version column. */
struct stored {
    uint8_t w[CU_KEK_WRAPPED_MAX];
    size_t wl;
    int64_t kek_version, dek_version;
};

static void stored_dek(struct fixture *f, const char *sql, const char *id, struct stored *out)
{
    const struct cu_val p[] = {CU_VT(id)};
    struct cu_stmt *st = NULL;
    bool row = false;
    memset(out, 0, sizeof(*out));
    assert_int_equal(cu_db_query(f->conn, sql, p, 1, &st), CU_OK);
    assert_int_equal(cu_stmt_next(st, &row), CU_OK);
    assert_true(row);
    const void *w = cu_stmt_blob(st, 0, &out->wl);
    assert_true(out->wl <= sizeof(out->w));
    if (out->wl > 0) /* a destroyed DEK is NULL */
        memcpy(out->w, w, out->wl);
    out->kek_version = cu_stmt_null(st, 1) ? 0 : cu_stmt_int(st, 1);
    out->dek_version = cu_stmt_int(st, 2);
    cu_stmt_done(st);
}

static const char customer_dek_sql[] =
    "SELECT dek_wrapped, kek_version, dek_version FROM customers WHERE id = $1";
static const char staff_dek_sql[] = "SELECT dek_wrapped, kek_version, 1 FROM staff WHERE id = $1";

/* raw_unwrap(f, prefix, id, s, dek): unwraps a stored DEK by hand, with the associated data
 * "<prefix>|<id>|<KEK version>" written out here, not by the module. */
static enum cu_err raw_unwrap(struct fixture *f, const char *prefix, const char *id,
                              const struct stored *s, uint8_t dek[CU_KEY_BYTES])
{
    char ad[128];
    uint32_t kv = 0;
    size_t n = 0;
    enum cu_err rc = cu_kek_wrapped_version(f->kek, s->w, s->wl, &kv);
    snprintf(ad, sizeof(ad), "%s|%s|%u", prefix, id, (unsigned)kv);
    if (rc == CU_OK)
        rc = cu_kek_unwrap(f->kek, s->w, s->wl, (const uint8_t *)ad, strlen(ad), dek, CU_KEY_BYTES,
                           &n);
    if (rc == CU_OK)
        assert_int_equal(n, CU_KEY_BYTES);
    return rc;
}

/* raw_open(dek, key_id, ad, text, out, cap): opens a stored value by hand. */
static size_t raw_open(const uint8_t dek[CU_KEY_BYTES], uint32_t key_id, const char *ad,
                       const char *text, uint8_t *out, size_t cap)
{
    uint8_t sealed[1024];
    size_t sl = 0, n = 0;
    struct cu_secret *k = cu_secret_new(CU_KEY_BYTES);
    assert_non_null(k);
    memcpy(cu_secret_data(k), dek, CU_KEY_BYTES);
    assert_int_equal(cu_b64url_decode_public(text, strlen(text), sealed, sizeof(sealed), &sl),
                     CU_OK);
    assert_int_equal(
        cu_crypto_open(k, key_id, sealed, sl, (const uint8_t *)ad, strlen(ad), out, cap, &n),
        CU_OK);
    cu_secret_free(k);
    return n;
}

/* text_of(f, sql, a, b, out): the first column of a query with the text parameters a and b
 * (b NULL: a alone). */
static void text_of(struct fixture *f, const char *sql, const char *a, const char *b, char *out,
                    size_t cap)
{
    const struct cu_val p[] = {CU_VT(a), b ? CU_VT(b) : CU_VNULL};
    struct cu_stmt *st = NULL;
    bool row = false;
    assert_int_equal(cu_db_query(f->conn, sql, p, b ? 2 : 1, &st), CU_OK);
    assert_int_equal(cu_stmt_next(st, &row), CU_OK);
    assert_true(row);
    snprintf(out, cap, "%s", cu_stmt_text(st, 0, NULL));
    cu_stmt_done(st);
}

static void exec2(struct fixture *f, const char *sql, const char *a, const char *b)
{
    const struct cu_val p[] = {CU_VT(a), CU_VT(b)};
    begin(f);
    assert_int_equal(cu_db_exec(f->conn, sql, p, 2), CU_OK);
    commit(f);
}

/* ---- one algorithm for both kinds ---- */

/* check_kind(f, env, sql, prefix, id): a subject's stored DEK is a KEK-wrapped value of the
 * format of before (78 bytes from the keyring, the KEK version in its header and its column),
 * unwraps by hand with "<prefix>|<id>|<version>" to what the module loads, and keeps its bytes
 * through a re-wrap under a new KEK, which moves the column with it. */
static void check_kind(struct fixture *f, struct cu_envelope *env, const char *sql,
                       const char *prefix, const char *id, uint32_t kek_before)
{
    struct stored s;
    uint8_t raw[CU_KEY_BYTES];
    uint32_t dv = 0, kv = 0;
    struct cu_secret *dek = cu_envelope_dek_borrow();
    assert_non_null(dek);

    stored_dek(f, sql, id, &s);
    assert_int_equal(s.wl, CU_KEK_WRAPPED_KEYRING_BYTES);
    assert_int_equal(s.w[0], 1);
    assert_int_equal(cu_kek_wrapped_version(f->kek, s.w, s.wl, &kv), CU_OK);
    assert_int_equal(kv, kek_before);
    assert_int_equal(s.kek_version, kek_before);
    assert_int_equal(raw_unwrap(f, prefix, id, &s, raw), CU_OK);
    assert_int_equal(cu_envelope_dek_load(env, f->conn, id, dek, &dv), CU_OK);
    assert_int_equal(dv, 1);
    assert_memory_equal(cu_secret_data(dek), raw, CU_KEY_BYTES);
    /* The other kind's associated data does not open it. */
    assert_int_equal(raw_unwrap(f, strcmp(prefix, "dek") == 0 ? "staff_dek" : "dek", id, &s, raw),
                     CU_E_CRYPTO);
    cu_envelope_dek_return(dek);
}

static void test_both_kinds_alike(void **state)
{
    struct fixture *f = *state;
    char cus[CU_CUSTOMER_ID_BYTES], stf[CU_SUBJECT_ID_BYTES];
    uint8_t before_c[CU_KEY_BYTES], before_s[CU_KEY_BYTES], after[CU_KEY_BYTES];
    struct stored s;

    add_customer(f, "{\"email\": \"kim@example.com\"}", cus);
    add_staff(f, "sam@custodia.example", "Sam Staff", stf);
    check_kind(f, f->cust, customer_dek_sql, "dek", cus, 1);
    check_kind(f, f->staff, staff_dek_sql, "staff_dek", stf, 1);
    stored_dek(f, customer_dek_sql, cus, &s);
    assert_int_equal(raw_unwrap(f, "dek", cus, &s, before_c), CU_OK);
    stored_dek(f, staff_dek_sql, stf, &s);
    assert_int_equal(raw_unwrap(f, "staff_dek", stf, &s, before_s), CU_OK);
    assert_int_equal(usage(&cu_vault_customer_keys, f, 1), 1);
    assert_int_equal(usage(&cu_identity_staff_keys, f, 1), 1);

    add_kek(f, 2);
    assert_int_equal(rewrap_all(f, f->cust, 10), 1);
    assert_int_equal(rewrap_all(f, f->staff, 10), 1);
    check_kind(f, f->cust, customer_dek_sql, "dek", cus, 2);
    check_kind(f, f->staff, staff_dek_sql, "staff_dek", stf, 2);
    /* The DEKs did not change: only their wrapping did. */
    stored_dek(f, customer_dek_sql, cus, &s);
    assert_int_equal(raw_unwrap(f, "dek", cus, &s, after), CU_OK);
    assert_memory_equal(after, before_c, CU_KEY_BYTES);
    stored_dek(f, staff_dek_sql, stf, &s);
    assert_int_equal(raw_unwrap(f, "staff_dek", stf, &s, after), CU_OK);
    assert_memory_equal(after, before_s, CU_KEY_BYTES);
    assert_int_equal(usage(&cu_vault_customer_keys, f, 1), 0);
    assert_int_equal(usage(&cu_identity_staff_keys, f, 1), 0);
    assert_int_equal(usage(&cu_vault_customer_keys, f, 2), 1);
    assert_int_equal(usage(&cu_identity_staff_keys, f, 2), 1);
    /* The services' own entry points run the same code. */
    size_t done = 9;
    begin(f);
    assert_int_equal(cu_vault_rewrap(f->v, f->conn, 10, &done), CU_OK);
    assert_int_equal(done, 0);
    assert_int_equal(cu_identity_staff_rewrap(f->kek, f->conn, 10, &done), CU_OK);
    assert_int_equal(done, 0);
    commit(f);
}

/* Values written now have the format of before, opened here by hand: a customer's field
 * ("customers|<field>|<id>", key id = DEK version) and secret ("customer_secrets|<name>|<id>"),
 * a staff member's e-mail ("staff|email|<id>", key id 1) and secret
 * ("staff_secrets|<name>|<id>"). */
static void test_stored_format(void **state)
{
    struct fixture *f = *state;
    char cus[CU_CUSTOMER_ID_BYTES], stf[CU_SUBJECT_ID_BYTES], text[1024], ad[128];
    uint8_t dek[CU_KEY_BYTES], plain[512];
    struct stored s;
    size_t n;

    add_customer(f, "{\"email\": \"kim@example.com\"}", cus);
    add_staff(f, "sam@custodia.example", "Sam Staff", stf);
    put_secret(f, CU_SUBJECT_CUSTOMER, cus, "totp", "customer-secret");
    put_secret(f, CU_SUBJECT_STAFF, stf, "totp", "staff-secret");

    stored_dek(f, customer_dek_sql, cus, &s);
    assert_int_equal(raw_unwrap(f, "dek", cus, &s, dek), CU_OK);
    text_of(f, "SELECT value FROM customer_fields WHERE customer_id = $1 AND field = $2", cus,
            "email", text, sizeof(text));
    snprintf(ad, sizeof(ad), "customers|email|%s", cus);
    n = raw_open(dek, 1, ad, text, plain, sizeof(plain));
    assert_int_equal(n, strlen("kim@example.com"));
    assert_memory_equal(plain, "kim@example.com", n);
    text_of(f, "SELECT value FROM customer_secrets WHERE customer_id = $1 AND name = $2", cus,
            "totp", text, sizeof(text));
    snprintf(ad, sizeof(ad), "customer_secrets|totp|%s", cus);
    n = raw_open(dek, 1, ad, text, plain, sizeof(plain));
    assert_int_equal(n, strlen("customer-secret"));
    assert_memory_equal(plain, "customer-secret", n);

    stored_dek(f, staff_dek_sql, stf, &s);
    assert_int_equal(raw_unwrap(f, "staff_dek", stf, &s, dek), CU_OK);
    text_of(f, "SELECT email FROM staff WHERE id = $1", stf, NULL, text, sizeof(text));
    snprintf(ad, sizeof(ad), "staff|email|%s", stf);
    n = raw_open(dek, 1, ad, text, plain, sizeof(plain));
    assert_int_equal(n, strlen("sam@custodia.example"));
    assert_memory_equal(plain, "sam@custodia.example", n);
    text_of(f, "SELECT value FROM staff_secrets WHERE staff_id = $1 AND name = $2", stf, "totp",
            text, sizeof(text));
    snprintf(ad, sizeof(ad), "staff_secrets|totp|%s", stf);
    n = raw_open(dek, 1, ad, text, plain, sizeof(plain));
    assert_int_equal(n, strlen("staff-secret"));
    assert_memory_equal(plain, "staff-secret", n);

    /* A DEK rotation re-seals the customer's secret under key id 2. */
    begin(f);
    assert_int_equal(cu_vault_rotate_dek(f->v, f->conn, cus), CU_OK);
    commit(f);
    stored_dek(f, customer_dek_sql, cus, &s);
    assert_int_equal(s.dek_version, 2);
    assert_int_equal(raw_unwrap(f, "dek", cus, &s, dek), CU_OK);
    text_of(f, "SELECT value FROM customer_secrets WHERE customer_id = $1 AND name = $2", cus,
            "totp", text, sizeof(text));
    snprintf(ad, sizeof(ad), "customer_secrets|totp|%s", cus);
    n = raw_open(dek, 2, ad, text, plain, sizeof(plain));
    assert_memory_equal(plain, "customer-secret", n);
    secret_is(f, CU_SUBJECT_CUSTOMER, cus, "totp", "customer-secret", n);
    customer_field_is(f, cus, "email", "kim@example.com");
}

/* ---- rotation ---- */

static void test_rotation_keeps_everything(void **state)
{
    struct fixture *f = *state;
    enum { NC = 300, NS = 3 }; /* more customers than one statement of a re-wrap reads */
    char(*cus)[CU_CUSTOMER_ID_BYTES] = calloc(NC, CU_CUSTOMER_ID_BYTES);
    char stf[NS][CU_SUBJECT_ID_BYTES], json[160], email[64], secret[32], name[32];
    size_t done = 0;
    assert_non_null(cus);

    for (int i = 0; i < NC; i++) {
        snprintf(json, sizeof(json),
                 "{\"given_name\": \"Given%d\", \"email\": \"c%d@example.com\", \"city\": "
                 "\"Oslo\"}",
                 i, i);
        add_customer(f, json, cus[i]);
        if (i % 50 == 0) {
            snprintf(secret, sizeof(secret), "c-secret-%d", i);
            put_secret(f, CU_SUBJECT_CUSTOMER, cus[i], "totp", secret);
        }
    }
    for (int i = 0; i < NS; i++) {
        snprintf(email, sizeof(email), "s%d@custodia.example", i);
        snprintf(name, sizeof(name), "Staff %d", i);
        add_staff(f, email, name, stf[i]);
        snprintf(secret, sizeof(secret), "s-secret-%d", i);
        put_secret(f, CU_SUBJECT_STAFF, stf[i], "totp_pending", secret);
    }
    assert_int_equal(usage(&cu_vault_customer_keys, f, 1), NC);
    assert_int_equal(usage(&cu_identity_staff_keys, f, 1), NS);

    add_kek(f, 2);
    /* An interrupted rotation: one batch, a restart, then the rest in other batches. */
    begin(f);
    assert_int_equal(cu_vault_rewrap(f->v, f->conn, 120, &done), CU_OK);
    assert_int_equal(done, 120);
    assert_int_equal(cu_identity_staff_rewrap(f->kek, f->conn, 1, &done), CU_OK);
    assert_int_equal(done, 1);
    commit(f);
    assert_int_equal(usage(&cu_vault_customer_keys, f, 1), NC - 120);
    assert_int_equal(usage(&cu_vault_customer_keys, f, 2), 120);
    assert_int_equal(usage(&cu_identity_staff_keys, f, 1), NS - 1);
    assert_int_equal(usage(&cu_identity_staff_keys, f, 2), 1);
    close_services(f);
    open_services(f);
    /* A batch larger than one statement's chunk, then the rest. */
    begin(f);
    assert_int_equal(cu_vault_rewrap(f->v, f->conn, 170, &done), CU_OK);
    assert_int_equal(done, 170);
    commit(f);
    assert_int_equal(rewrap_all(f, f->cust, 1000), NC - 290);
    assert_int_equal(rewrap_all(f, f->staff, 1000), NS - 1);
    assert_int_equal(usage(&cu_vault_customer_keys, f, 1), 0);
    assert_int_equal(usage(&cu_identity_staff_keys, f, 1), 0);
    assert_int_equal(usage(&cu_vault_customer_keys, f, 2), NC);
    assert_int_equal(usage(&cu_identity_staff_keys, f, 2), NS);

    /* With the old KEK gone, every field and secret still opens. */
    retire_kek(f, 1);
    for (int i = 0; i < NC; i++) {
        char want[32];
        snprintf(want, sizeof(want), "Given%d", i);
        customer_field_is(f, cus[i], "given_name", want);
        snprintf(want, sizeof(want), "c%d@example.com", i);
        customer_field_is(f, cus[i], "email", want);
        if (i % 50 == 0) {
            snprintf(secret, sizeof(secret), "c-secret-%d", i);
            secret_is(f, CU_SUBJECT_CUSTOMER, cus[i], "totp", secret, strlen(secret));
        }
    }
    for (int i = 0; i < NS; i++) {
        snprintf(email, sizeof(email), "s%d@custodia.example", i);
        snprintf(name, sizeof(name), "Staff %d", i);
        staff_is(f, stf[i], email, name);
        snprintf(secret, sizeof(secret), "s-secret-%d", i);
        secret_is(f, CU_SUBJECT_STAFF, stf[i], "totp_pending", secret, strlen(secret));
    }
    free(cus);
}

/* A row changed between the re-wrap's read and its write is left alone: here its wrapped DEK
 * is no longer the one read, as after a concurrent DEK rotation. */
static void test_rewrap_leaves_changed_row(void **state)
{
    struct fixture *f = *state;
    char cus[CU_CUSTOMER_ID_BYTES];
    struct stored s;
    add_customer(f, "{\"email\": \"kim@example.com\"}", cus);
    stored_dek(f, customer_dek_sql, cus, &s);
    add_kek(f, 2);
    /* The guard of the update, run by hand: a wrapped DEK that is not the stored one. */
    struct cu_envelope_wrapped w;
    struct cu_secret *dek = NULL;
    begin(f);
    assert_int_equal(cu_envelope_dek_new(f->cust, cus, &dek, &w), CU_OK);
    s.w[10] ^= 1;
    const struct cu_val p[] = {CU_VT(cus), CU_VB(w.data, w.len), CU_VI(w.kek_version),
                               CU_VB(s.w, s.wl)};
    assert_int_equal(cu_db_exec(f->conn, cu_vault_customer_keys.rewrap_sql, p, 4), CU_OK);
    assert_int_equal(cu_db_changes(f->conn), 0);
    commit(f);
    cu_secret_free(dek);
    assert_int_equal(usage(&cu_vault_customer_keys, f, 1), 1);
    customer_field_is(f, cus, "email", "kim@example.com");
}

/* ---- moved ciphertexts ---- */

static void test_moved_fails(void **state)
{
    struct fixture *f = *state;
    char a[CU_CUSTOMER_ID_BYTES], b[CU_CUSTOMER_ID_BYTES];
    char s1[CU_SUBJECT_ID_BYTES], s2[CU_SUBJECT_ID_BYTES];
    struct cu_staff_info si;
    struct cu_customer c;

    add_customer(f, "{\"email\": \"a@example.com\"}", a);
    add_customer(f, "{\"email\": \"b@example.com\"}", b);
    add_staff(f, "one@custodia.example", "One", s1);
    add_staff(f, "two@custodia.example", "Two", s2);
    put_secret(f, CU_SUBJECT_CUSTOMER, a, "totp", "secret-a");
    put_secret(f, CU_SUBJECT_CUSTOMER, b, "totp", "secret-b");
    put_secret(f, CU_SUBJECT_CUSTOMER, b, "totp_pending", "pending-b");
    put_secret(f, CU_SUBJECT_STAFF, s1, "totp", "secret-1");
    put_secret(f, CU_SUBJECT_STAFF, s2, "totp", "secret-2");

    /* A customer's secret copied to another customer: B's DEK does not open it. */
    exec2(f,
          "UPDATE customer_secrets SET value = (SELECT value FROM customer_secrets WHERE "
          "customer_id = $1 AND name = 'totp') WHERE customer_id = $2 AND name = 'totp'",
          a, b);
    assert_int_equal(secret_rc(f, CU_SUBJECT_CUSTOMER, b, "totp"), CU_E_CRYPTO);
    /* Another of B's secrets under B's name for it: bound to the name. */
    exec2(f,
          "UPDATE customer_secrets SET value = (SELECT value FROM customer_secrets WHERE "
          "customer_id = $1 AND name = 'totp_pending') WHERE customer_id = $2 AND name = 'totp'",
          b, b);
    assert_int_equal(secret_rc(f, CU_SUBJECT_CUSTOMER, b, "totp"), CU_E_CRYPTO);
    /* A staff member's secret copied to another staff member. */
    exec2(f,
          "UPDATE staff_secrets SET value = (SELECT value FROM staff_secrets WHERE staff_id = $1 "
          "AND name = 'totp') WHERE staff_id = $2 AND name = 'totp'",
          s1, s2);
    assert_int_equal(secret_rc(f, CU_SUBJECT_STAFF, s2, "totp"), CU_E_CRYPTO);
    secret_is(f, CU_SUBJECT_STAFF, s1, "totp", "secret-1", 8);
    /* A staff member's sealed e-mail copied to another: bound to the staff member. */
    exec2(f, "UPDATE staff SET email = (SELECT email FROM staff WHERE id = $1) WHERE id = $2", s1,
          s2);
    assert_int_equal(cu_identity_staff_get(f->idn, f->conn, s2, &si), CU_E_CRYPTO);
    /* A wrapped DEK given to another subject of the same kind, and of the other kind. */
    exec2(f,
          "UPDATE staff SET dek_wrapped = (SELECT dek_wrapped FROM staff WHERE id = $1) WHERE id = "
          "$2",
          s2, s1);
    assert_int_equal(cu_identity_staff_get(f->idn, f->conn, s1, &si), CU_E_CRYPTO);
    assert_int_equal(secret_rc(f, CU_SUBJECT_STAFF, s1, "totp"), CU_E_CRYPTO);
    exec2(f,
          "UPDATE customers SET dek_wrapped = (SELECT dek_wrapped FROM staff WHERE id = $1) WHERE "
          "id = $2",
          s2, a);
    assert_int_equal(cu_vault_get(f->v, f->conn, a, true, &c), CU_E_CRYPTO);
    assert_int_equal(secret_rc(f, CU_SUBJECT_CUSTOMER, a, "totp"), CU_E_CRYPTO);
    /* Nothing of it was readable through the module directly either. */
    struct cu_secret *dek = cu_envelope_dek_borrow();
    uint32_t dv = 0;
    assert_non_null(dek);
    assert_int_equal(cu_envelope_dek_load(f->cust, f->conn, a, dek, &dv), CU_E_CRYPTO);
    for (size_t i = 0; i < CU_KEY_BYTES; i++)
        assert_int_equal(cu_secret_data(dek)[i], 0);
    cu_envelope_dek_return(dek);
}

/* ---- destruction ---- */

static void test_destroy_shreds(void **state)
{
    struct fixture *f = *state;
    char a[CU_CUSTOMER_ID_BYTES], b[CU_CUSTOMER_ID_BYTES], stf[CU_SUBJECT_ID_BYTES];
    char text[1024];
    struct stored s;

    add_customer(f, "{\"email\": \"a@example.com\"}", a);
    add_customer(f, "{\"email\": \"b@example.com\"}", b);
    add_staff(f, "one@custodia.example", "One", stf);
    put_secret(f, CU_SUBJECT_CUSTOMER, a, "totp", "secret-a");
    put_secret(f, CU_SUBJECT_CUSTOMER, b, "totp", "secret-b");
    text_of(f, "SELECT value FROM customer_secrets WHERE customer_id = $1 AND name = $2", a, "totp",
            text, sizeof(text));

    begin(f);
    assert_int_equal(cu_envelope_destroy(&cu_vault_customer_keys, f->conn, a), CU_OK);
    commit(f);
    stored_dek(f, customer_dek_sql, a, &s);
    assert_int_equal(s.wl, 0);
    assert_int_equal(s.kek_version, 0);
    assert_int_equal(secret_rc(f, CU_SUBJECT_CUSTOMER, a, "totp"), CU_E_NOT_FOUND);
    /* A copy of the sealed secret put back (from a backup) has no DEK to open it. */
    exec2(f, "INSERT INTO customer_secrets (customer_id, name, value) VALUES ($1, 'totp', $2)", a,
          text);
    assert_int_equal(secret_rc(f, CU_SUBJECT_CUSTOMER, a, "totp"), CU_E_NOT_FOUND);
    begin(f);
    assert_int_equal(
        cu_identity_secret_put(f->idn, f->conn, CU_SUBJECT_CUSTOMER, a, "totp", "x", 1),
        CU_E_NOT_FOUND);
    assert_int_equal(cu_envelope_destroy(&cu_vault_customer_keys, f->conn, a), CU_E_NOT_FOUND);
    assert_int_equal(cu_envelope_destroy(&cu_vault_customer_keys, f->conn, "cus_nobody"),
                     CU_E_NOT_FOUND);
    commit(f);
    assert_int_equal(usage(&cu_vault_customer_keys, f, 1), 1);
    /* The other customer is untouched. */
    secret_is(f, CU_SUBJECT_CUSTOMER, b, "totp", "secret-b", 8);
    /* Staff rows keep their DEK for life (staff.dek_wrapped is NOT NULL): refused, unchanged. */
    begin(f);
    assert_int_not_equal(cu_envelope_destroy(&cu_identity_staff_keys, f->conn, stf), CU_OK);
    cu_db_rollback(f->conn);
    staff_is(f, stf, "one@custodia.example", "One");
}

/* ---- bounds ---- */

static void test_bounds(void **state)
{
    struct fixture *f = *state;
    char ad[CU_ENVELOPE_AD_BYTES], long_id[80], cus[CU_CUSTOMER_ID_BYTES];
    uint8_t big[CU_ENVELOPE_SECRET_MAX + 1];
    struct cu_envelope_wrapped w;
    struct cu_secret *dek = NULL;
    size_t done = 7;

    assert_int_equal(cu_envelope_ad("a", "b", "c", ad), CU_OK);
    assert_string_equal(ad, "a|b|c");
    memset(long_id, 'x', sizeof(long_id) - 1);
    long_id[sizeof(long_id) - 1] = '\0';
    assert_int_equal(cu_envelope_ad("customer_secrets", long_id, long_id, ad), CU_E_INVALID);
    assert_string_equal(ad, "");
    assert_int_equal(cu_envelope_dek_new(f->cust, long_id, &dek, &w), CU_E_INVALID);
    assert_null(dek);
    assert_int_equal(cu_envelope_dek_new(f->cust, "", &dek, &w), CU_E_INVALID);

    add_customer(f, "{\"email\": \"a@example.com\"}", cus);
    memset(big, 7, sizeof(big));
    begin(f);
    assert_int_equal(cu_vault_secret_put(f->v, f->conn, cus, "Totp", "x", 1), CU_E_INVALID);
    assert_int_equal(cu_vault_secret_put(f->v, f->conn, cus, "", "x", 1), CU_E_INVALID);
    assert_int_equal(
        cu_vault_secret_put(f->v, f->conn, cus, "abcdefghijklmnopqrstuvwxyz_abcdef", "x", 1),
        CU_E_INVALID);
    assert_int_equal(cu_vault_secret_put(f->v, f->conn, cus, "totp", big, sizeof(big)),
                     CU_E_TOO_LARGE);
    assert_int_equal(cu_vault_secret_put(f->v, f->conn, cus, "totp", big, sizeof(big) - 1), CU_OK);
    assert_int_equal(cu_vault_secret_put(f->v, f->conn, "cus_nobody", "totp", "x", 1),
                     CU_E_NOT_FOUND);
    assert_int_equal(cu_envelope_rewrap(f->cust, f->conn, CU_ENVELOPE_REWRAP_MAX + 1, &done),
                     CU_E_INVALID);
    assert_int_equal(done, 0);
    assert_int_equal(cu_envelope_rewrap(f->cust, f->conn, 0, &done), CU_OK);
    assert_int_equal(done, 0);
    commit(f);
    secret_is(f, CU_SUBJECT_CUSTOMER, cus, "totp", big, sizeof(big) - 1);
    /* The secret's name is bound: drop removes exactly it, whether or not it exists. */
    begin(f);
    assert_int_equal(cu_vault_secret_drop(f->conn, cus, "totp"), CU_OK);
    assert_int_equal(cu_vault_secret_drop(f->conn, cus, "totp"), CU_OK);
    commit(f);
    assert_int_equal(secret_rc(f, CU_SUBJECT_CUSTOMER, cus, "totp"), CU_E_NOT_FOUND);
}

/* The thread's buffer is lent once at a time and wiped when given back. */
static void test_borrow(void **state)
{
    struct cu_secret *a, *b, *c;
    (void)state;
    assert_int_equal(cu_crypto_init(), CU_OK);
    a = cu_envelope_dek_borrow();
    b = cu_envelope_dek_borrow();
    assert_non_null(a);
    assert_non_null(b);
    assert_ptr_not_equal(a, b);
    assert_int_equal(cu_secret_len(a), CU_KEY_BYTES);
    assert_int_equal(cu_secret_len(b), CU_KEY_BYTES);
    memset(cu_secret_data(a), 0xAA, CU_KEY_BYTES);
    cu_envelope_dek_return(b);
    cu_envelope_dek_return(a);
    c = cu_envelope_dek_borrow();
    assert_ptr_equal(c, a);
    for (size_t i = 0; i < CU_KEY_BYTES; i++)
        assert_int_equal(cu_secret_data(c)[i], 0);
    cu_envelope_dek_return(c);
    cu_envelope_dek_return(NULL);
}

/* ---- data written before the module ---- */

static void copy_file(const char *from, const char *to, mode_t mode)
{
    char buf[4096];
    size_t n;
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    assert_non_null(in);
    assert_non_null(out);
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
        assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    assert_int_equal(fclose(out), 0);
    assert_int_equal(chmod(to, mode), 0);
}

static void find_customer(struct fixture *f, const char *email, char id[CU_CUSTOMER_ID_BYTES])
{
    char ids[2][CU_CUSTOMER_ID_BYTES], why[CU_VAULT_WHY_BYTES];
    size_t n = 0;
    assert_int_equal(cu_vault_find(f->v, f->conn, "email", email, ids, 2, &n, why), CU_OK);
    assert_int_equal(n, 1);
    snprintf(id, CU_CUSTOMER_ID_BYTES, "%s", ids[0]);
}

static void bytes_from(uint8_t *b, size_t n, uint8_t first)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(first + i);
}

/* What the fixture holds (its README): read it all, whichever KEK wraps what. */
static void fixture_reads(struct fixture *f)
{
    char ada[CU_CUSTOMER_ID_BYTES], bob[CU_CUSTOMER_ID_BYTES], dan[CU_CUSTOMER_ID_BYTES];
    char ids[1][CU_CUSTOMER_ID_BYTES], why[CU_VAULT_WHY_BYTES];
    uint8_t want[20];
    struct cu_staff_info s;
    struct cu_customer c;
    size_t n = 9;

    find_customer(f, "ada@example.com", ada);
    assert_string_equal(ada, "cus_5ff48d95aa0b32e8");
    customer_field_is(f, ada, "given_name", "Ada");
    customer_field_is(f, ada, "family_name", "Lovelace");
    customer_field_is(f, ada, "phone", "+441234567890");
    customer_field_is(f, ada, "country", "GB");
    bytes_from(want, sizeof(want), 0x01);
    secret_is(f, CU_SUBJECT_CUSTOMER, ada, "totp", want, sizeof(want));
    find_customer(f, "bob@example.com", bob);
    customer_field_is(f, bob, "national_id", "AB123456");
    bytes_from(want, sizeof(want), 0xa0);
    secret_is(f, CU_SUBJECT_CUSTOMER, bob, "totp", want, sizeof(want));
    find_customer(f, "dan@example.com", dan);
    customer_field_is(f, dan, "given_name", "Dan");
    assert_int_equal(cu_vault_find(f->v, f->conn, "email", "carol@example.com", ids, 1, &n, why),
                     CU_OK);
    assert_int_equal(n, 0);
    assert_int_equal(cu_vault_get(f->v, f->conn, "cus_09d8a34a0ac8728b", true, &c), CU_OK);
    assert_string_equal(c.status, "erased");
    cu_customer_clear(&c);

    assert_int_equal(cu_identity_staff_find(f->idn, f->conn, "root@custodia.example", &s), CU_OK);
    assert_string_equal(s.name, "Root Admin");
    bytes_from(want, sizeof(want), 0x30);
    secret_is(f, CU_SUBJECT_STAFF, s.id, "totp_pending", want, sizeof(want));
    assert_int_equal(cu_identity_staff_find(f->idn, f->conn, "ops@custodia.example", &s), CU_OK);
    assert_string_equal(s.name, "Öps Pérson");
}

static void test_fixture_before_module(void **state)
{
    struct fixture *f = *state;
    const char *data = getenv("CU_TEST_DATA");
    char from[4096], read[4200];
    struct stored s;

    assert_non_null(data);
    close_services(f);
    cu_store_close(f->st);
    assert_int_equal(unlink(f->db), 0);
    snprintf(from, sizeof(from), "%s/fixtures/envelope-6eaab65/root.key", data);
    copy_file(from, f->key, 0600);
    snprintf(read, sizeof(read), ".read %s/fixtures/envelope-6eaab65/custodia.sql", data);
    assert_int_equal(cu_test_run((char *const[]){"sqlite3", f->db, read, NULL}), 0);
    open_store(f, false);
    open_services(f);

    /* As the old code left it: bob (DEK version 2) and ops under KEK 1; ada (re-wrapped by the
     * vault's old algorithm), dan (created under KEK 2) and root (re-wrapped by the staff
     * one's) under KEK 2. */
    assert_int_equal(usage(&cu_vault_customer_keys, f, 1), 1);
    assert_int_equal(usage(&cu_vault_customer_keys, f, 2), 2);
    assert_int_equal(usage(&cu_identity_staff_keys, f, 1), 1);
    assert_int_equal(usage(&cu_identity_staff_keys, f, 2), 1);
    stored_dek(f, customer_dek_sql, "cus_d5b02096eae67e3c", &s);
    assert_int_equal(s.dek_version, 2);
    fixture_reads(f);

    /* The new code re-wraps what is left, and with KEK 1 gone everything still reads. */
    assert_int_equal(rewrap_all(f, f->cust, 100), 1);
    assert_int_equal(rewrap_all(f, f->staff, 100), 1);
    assert_int_equal(usage(&cu_vault_customer_keys, f, 1), 0);
    assert_int_equal(usage(&cu_identity_staff_keys, f, 1), 0);
    assert_int_equal(usage(&cu_vault_customer_keys, f, 2), 3);
    assert_int_equal(usage(&cu_identity_staff_keys, f, 2), 2);
    retire_kek(f, 1);
    fixture_reads(f);
    /* And it writes the same again: a DEK rotation of bob, then a new secret for root. */
    begin(f);
    assert_int_equal(cu_vault_rotate_dek(f->v, f->conn, "cus_d5b02096eae67e3c"), CU_OK);
    commit(f);
    put_secret(f, CU_SUBJECT_STAFF, "stf_cba068c215e4dc08", "totp", "new");
    fixture_reads(f);
    secret_is(f, CU_SUBJECT_STAFF, "stf_cba068c215e4dc08", "totp", "new", 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_borrow),
        cmocka_unit_test_setup_teardown(test_both_kinds_alike, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stored_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotation_keeps_everything, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rewrap_leaves_changed_row, setup, teardown),
        cmocka_unit_test_setup_teardown(test_moved_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_destroy_shreds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bounds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fixture_before_module, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
