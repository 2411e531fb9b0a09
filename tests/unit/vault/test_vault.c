/*
 * test_vault.c - the vault's cryptography, below the API: every field round-trips; a
 * ciphertext moved to another customer or field, or a wrapped DEK moved to another customer,
 * fails to open (an error, never garbage); KEK rotation re-wraps thousands of DEKs, resumes
 * after an interruption, and lets the old KEK be retired; erasure leaves nothing to open; a
 * customer's state as other services ask for it. The keys themselves: test_envelope.c.
 */
#include "cu_test.h"

#include <jansson.h>

#include "base/clock.h"
#include "base/mem.h"
#include "crypto/crypto.h"
#include "vault/vault.h"

struct fixture {
    char dir[256], key[300], db[300];
    struct cu_keyring *kr;
    struct cu_kek_source *kek;
    struct cu_store *st;
    struct cu_db *conn;
    struct cu_vault *v;
};

static void open_all(struct fixture *f)
{
    char err[CU_STORE_ERR_BYTES];
    assert_int_equal(cu_keyring_load(f->key, &f->kr, err), CU_OK);
    assert_int_equal(cu_kek_source_keyring(f->kr, &f->kek), CU_OK);
    assert_int_equal(cu_vault_new(f->kr, f->kek, CU_AEAD_XCHACHA20POLY1305, &f->v), CU_OK);
}

static void close_all(struct fixture *f)
{
    cu_vault_free(f->v);
    cu_kek_source_free(f->kek);
    cu_keyring_free(f->kr);
    f->v = NULL;
    f->kek = NULL;
    f->kr = NULL;
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
                              .busy_timeout_ms = 5000,
                              .synchronous_full = false,
                              .create = true};
    assert_int_equal(cu_store_open(&o, &f->st, err), CU_OK);
    assert_int_equal(cu_store_migrate(f->st, err), CU_OK);
    assert_int_equal(cu_store_db(f->st, &f->conn), CU_OK);
    open_all(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    close_all(f);
    cu_store_close(f->st);
    cu_test_rmrf(f->dir);
    free(f);
    return 0;
}

static void create(struct fixture *f, const char *json, struct cu_customer *c)
{
    char why[CU_VAULT_WHY_BYTES] = "";
    json_error_t jerr;
    json_t *in = json_loads(json, 0, &jerr);
    assert_non_null(in);
    assert_int_equal(cu_db_begin(f->conn, CU_TXN_WRITE), CU_OK);
    enum cu_err rc = cu_vault_create(f->v, f->conn, in, c, why);
    if (rc != CU_OK)
        fail_msg("create: %s", why);
    assert_int_equal(cu_db_commit(f->conn), CU_OK);
    json_decref(in);
}

static const char *value_of(const struct cu_customer *c, const char *field)
{
    size_t n = 0;
    const struct cu_field_def *fs = cu_fields(&n);
    return c->values[cu_field_find(field) - fs];
}

static void test_round_trip(void **state)
{
    struct fixture *f = *state;
    struct cu_customer c, g;
    create(f,
           "{\"given_name\": \"Ümit\", \"family_name\": \"Çelik\", \"email\": \"U@X.example\", "
           "\"phone\": \"+90 212 555 0101\", \"birth_date\": \"1990-02-28\", \"national_id\": "
           "\"12345678901\", \"address_line1\": \"1 Rue\", \"address_line2\": \"Apt 2\", "
           "\"city\": \"İstanbul\", \"postal_code\": \"34000\", \"region\": \"Marmara\", "
           "\"country\": \"tr\", \"language\": \"tr-TR\", \"external_ref\": \"r-1\"}",
           &c);
    assert_int_equal(cu_vault_get(f->v, f->conn, c.id, true, &g), CU_OK);
    size_t n = 0;
    const struct cu_field_def *fs = cu_fields(&n);
    for (size_t i = 0; i < n; i++) {
        assert_non_null(g.values[i]);
        assert_string_equal(g.values[i], c.values[i]);
        (void)fs;
    }
    assert_string_equal(value_of(&g, "email"), "u@x.example");
    assert_string_equal(value_of(&g, "phone"), "+902125550101");
    cu_customer_clear(&c);
    cu_customer_clear(&g);
}

/* The API form, byte for byte: key order, masking, escaping, tags, null erased_at; and as
 * jansson reads it back. */
static void test_customer_write(void **state)
{
    struct fixture *f = *state;
    struct cu_customer c, g;
    struct cu_buf b;
    create(f,
           "{\"given_name\": \"Zo\u00eb \\\"Z\\\"\", \"email\": \"zoe@example.com\", "
           "\"country\": \"FR\", \"tags\": [\"vip\", \"eu\"]}",
           &c);
    assert_int_equal(cu_vault_get(f->v, f->conn, c.id, true, &g), CU_OK);
    cu_buf_init(&b, 1 << 16);
    assert_int_equal(cu_customer_write(&g, false, &b), CU_OK);
    char created[CU_RFC3339_BYTES], want[1024];
    cu_clock_format(g.created_at, created);
    snprintf(want, sizeof(want),
             "{\"id\":\"%s\",\"status\":\"active\",\"tags\":[\"vip\",\"eu\"],\"created_at\":\"%s\","
             "\"updated_at\":\"%s\",\"erased_at\":null,\"masked\":true,\"given_name\":\"Z***\","
             "\"email\":\"z***@example.com\",\"country\":\"FR\"}",
             g.id, created, created);
    assert_string_equal(cu_buf_cstr(&b), want);

    /* Unmasked, after another object: the text appends and says masked false. */
    cu_buf_reset(&b);
    assert_int_equal(cu_buf_append_str(&b, "["), CU_OK);
    assert_int_equal(cu_customer_write(&g, true, &b), CU_OK);
    assert_int_equal(cu_buf_append_str(&b, "]"), CU_OK);
    assert_non_null(strstr(cu_buf_cstr(&b), "\"given_name\":\"Zo\u00eb \\\"Z\\\"\""));
    json_error_t jerr;
    json_t *back = json_loads(cu_buf_cstr(&b), 0, &jerr);
    assert_non_null(back);
    json_t *o = json_array_get(back, 0);
    assert_string_equal(json_string_value(json_object_get(o, "email")), "zoe@example.com");
    assert_string_equal(json_string_value(json_object_get(o, "given_name")), "Zo\u00eb \"Z\"");
    assert_true(json_is_false(json_object_get(o, "masked")));
    assert_true(json_is_null(json_object_get(o, "erased_at")));
    json_decref(back);

    /* Past the buffer's cap: an error, and the buffer as it was. */
    struct cu_buf small;
    cu_buf_init(&small, 40);
    assert_int_equal(cu_buf_append_str(&small, "x"), CU_OK);
    assert_int_equal(cu_customer_write(&g, true, &small), CU_E_TOO_LARGE);
    assert_string_equal(cu_buf_cstr(&small), "x");
    cu_buf_free(&small);
    cu_buf_free(&b);
    cu_customer_clear(&c);
    cu_customer_clear(&g);
}

/* The stored format, opened here without the vault: the DEK unwraps with associated data
 * "dek|<id>|<KEK version>" and a field opens with "customers|<field>|<id>" (DESIGN.md), so
 * data written by any earlier build stays readable. */
static void test_stored_format_known_answer(void **state)
{
    struct fixture *f = *state;
    struct cu_customer c;
    struct cu_stmt *st = NULL;
    bool row = false;
    create(f, "{\"email\": \"ka@example.com\"}", &c);

    const struct cu_val p[] = {CU_VT(c.id)};
    assert_int_equal(cu_db_query(f->conn,
                                 "SELECT c.dek_wrapped, c.dek_version, f.value FROM customers c "
                                 "JOIN customer_fields f ON f.customer_id = c.id "
                                 "WHERE c.id = $1 AND f.field = 'email'",
                                 p, 1, &st),
                     CU_OK);
    assert_int_equal(cu_stmt_next(st, &row), CU_OK);
    assert_true(row);
    size_t wl = 0, tl = 0, dl = 0, sl = 0, pl = 0;
    const uint8_t *w = cu_stmt_blob(st, 0, &wl);
    uint32_t kv = 0, dek_version = (uint32_t)cu_stmt_int(st, 1);
    const char *text = cu_stmt_text(st, 2, &tl);
    char ad[128];
    uint8_t sealed[512], plain[512];
    struct cu_secret *dek = cu_secret_new(32);
    assert_non_null(dek);

    assert_int_equal(cu_kek_wrapped_version(f->kek, w, wl, &kv), CU_OK);
    snprintf(ad, sizeof(ad), "dek|%s|%u", c.id, kv);
    assert_int_equal(
        cu_kek_unwrap(f->kek, w, wl, (const uint8_t *)ad, strlen(ad), cu_secret_data(dek), 32, &dl),
        CU_OK);
    assert_int_equal(dl, 32);
    assert_int_equal(cu_b64url_decode_public(text, tl, sealed, sizeof(sealed), &sl), CU_OK);
    snprintf(ad, sizeof(ad), "customers|email|%s", c.id);
    assert_int_equal(cu_crypto_open(dek, dek_version, sealed, sl, (const uint8_t *)ad, strlen(ad),
                                    plain, sizeof(plain), &pl),
                     CU_OK);
    assert_int_equal(pl, strlen("ka@example.com"));
    assert_memory_equal(plain, "ka@example.com", pl);
    cu_stmt_done(st);
    cu_secret_free(dek);
    cu_customer_clear(&c);
}

static void sql(struct fixture *f, const char *stmt)
{
    assert_int_equal(cu_test_run((char *const[]){"sqlite3", f->db, (char *)stmt, NULL}), 0);
}

static void test_moved_ciphertext_fails(void **state)
{
    struct fixture *f = *state;
    struct cu_customer a, b, g;
    char stmt[512];
    create(f, "{\"given_name\": \"Alice\", \"family_name\": \"A\"}", &a);
    create(f, "{\"given_name\": \"Bob\", \"family_name\": \"B\"}", &b);
    /* Alice's given name copied into Bob's row: Bob's DEK cannot open it. */
    snprintf(stmt, sizeof(stmt),
             "UPDATE customer_fields SET value = (SELECT value FROM customer_fields WHERE "
             "customer_id = '%s' AND field = 'given_name') WHERE customer_id = '%s' AND field = "
             "'given_name'",
             a.id, b.id);
    sql(f, stmt);
    assert_int_equal(cu_vault_get(f->v, f->conn, b.id, true, &g), CU_E_CRYPTO);
    /* Alice's family name moved into her own given_name column: bound to the column. */
    snprintf(stmt, sizeof(stmt),
             "UPDATE customer_fields SET value = (SELECT value FROM customer_fields WHERE "
             "customer_id = '%s' AND field = 'family_name') WHERE customer_id = '%s' AND field "
             "= 'given_name'",
             a.id, a.id);
    sql(f, stmt);
    assert_int_equal(cu_vault_get(f->v, f->conn, a.id, true, &g), CU_E_CRYPTO);
    /* Bob's wrapped DEK given to Alice: bound to the customer. */
    snprintf(stmt, sizeof(stmt),
             "UPDATE customers SET dek_wrapped = (SELECT dek_wrapped FROM customers WHERE id = "
             "'%s') WHERE id = '%s'",
             b.id, a.id);
    sql(f, stmt);
    assert_int_not_equal(cu_vault_get(f->v, f->conn, a.id, true, &g), CU_OK);
    /* A flipped character in a stored value. */
    struct cu_customer c;
    create(f, "{\"city\": \"Oslo\"}", &c);
    snprintf(stmt, sizeof(stmt),
             "UPDATE customer_fields SET value = substr(value, 1, 20) || CASE substr(value, 21, "
             "1) WHEN 'A' THEN 'B' ELSE 'A' END || substr(value, 22) WHERE customer_id = '%s'",
             c.id);
    sql(f, stmt);
    assert_int_equal(cu_vault_get(f->v, f->conn, c.id, true, &g), CU_E_CRYPTO);
    /* Reading without decrypting still works: the record is not lost, only its fields. */
    assert_int_equal(cu_vault_get(f->v, f->conn, c.id, false, &g), CU_OK);
    cu_customer_clear(&g);
    cu_customer_clear(&a);
    cu_customer_clear(&b);
    cu_customer_clear(&c);
}

static void test_rotation(void **state)
{
    struct fixture *f = *state;
    char err[CU_KEYRING_ERR_BYTES], ids[3][CU_CUSTOMER_ID_BYTES];
    enum { N = 2000 };
    uint32_t v2 = 0;
    int64_t count = 0;
    size_t done = 0, total = 0;

    for (int i = 0; i < N; i++) {
        struct cu_customer c;
        char j[128];
        snprintf(j, sizeof(j), "{\"email\": \"c%d@example.com\"}", i);
        create(f, j, &c);
        if (i < 3)
            snprintf(ids[i], sizeof(ids[i]), "%s", c.id);
        cu_customer_clear(&c);
    }
    assert_int_equal(cu_vault_kek_usage(f->conn, 1, &count), CU_OK);
    assert_int_equal(count, N);
    assert_int_equal(cu_keyring_add_kek(f->key, &v2, err), CU_OK);
    assert_int_equal(v2, 2);
    close_all(f);
    open_all(f);
    /* An interrupted rotation: one batch, then a restart, then the rest. */
    assert_int_equal(cu_db_begin(f->conn, CU_TXN_WRITE), CU_OK);
    assert_int_equal(cu_vault_rewrap(f->v, f->conn, 500, &done), CU_OK);
    assert_int_equal(cu_db_commit(f->conn), CU_OK);
    assert_int_equal(done, 500);
    close_all(f);
    open_all(f);
    do {
        assert_int_equal(cu_db_begin(f->conn, CU_TXN_WRITE), CU_OK);
        assert_int_equal(cu_vault_rewrap(f->v, f->conn, 300, &done), CU_OK);
        assert_int_equal(cu_db_commit(f->conn), CU_OK);
        total += done;
    } while (done > 0);
    assert_int_equal(total, N - 500);
    assert_int_equal(cu_vault_kek_usage(f->conn, 1, &count), CU_OK);
    assert_int_equal(count, 0);
    assert_int_equal(cu_vault_kek_usage(f->conn, 2, &count), CU_OK);
    assert_int_equal(count, N);
    /* The old KEK can go, and every customer still reads. */
    assert_int_equal(cu_keyring_retire_kek(f->key, 1, err), CU_OK);
    close_all(f);
    open_all(f);
    for (int i = 0; i < 3; i++) {
        struct cu_customer g;
        char want[64];
        assert_int_equal(cu_vault_get(f->v, f->conn, ids[i], true, &g), CU_OK);
        snprintf(want, sizeof(want), "c%d@example.com", i);
        assert_string_equal(value_of(&g, "email"), want);
        cu_customer_clear(&g);
    }
}

/* The customer tables as migrations 0003 and 0004 made them (rowid tables), for the upgrade
 * test; the rows are kept in temporary tables across the rebuild. */
static const char v4_schema[] =
    "PRAGMA foreign_keys = OFF; BEGIN;"
    "CREATE TEMP TABLE t_c AS SELECT * FROM customers;"
    "CREATE TEMP TABLE t_f AS SELECT * FROM customer_fields;"
    "CREATE TEMP TABLE t_i AS SELECT * FROM customer_index;"
    "CREATE TEMP TABLE t_s AS SELECT * FROM customer_secrets;"
    "DROP TABLE customer_fields; DROP TABLE customer_index; DROP TABLE customer_secrets;"
    "DROP TABLE customers;"
    "CREATE TABLE customers (id TEXT NOT NULL PRIMARY KEY, status TEXT NOT NULL, country TEXT,"
    " language TEXT, tags TEXT NOT NULL, dek_wrapped BLOB, dek_version INTEGER NOT NULL,"
    " kek_version INTEGER, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,"
    " erased_at INTEGER, erased_by TEXT) STRICT;"
    "CREATE INDEX customers_kek ON customers (kek_version);"
    "CREATE TABLE customer_fields (customer_id TEXT NOT NULL REFERENCES customers (id),"
    " field TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (customer_id, field)) STRICT;"
    "CREATE TABLE customer_index (field TEXT NOT NULL, hash BLOB NOT NULL,"
    " customer_id TEXT NOT NULL REFERENCES customers (id), is_unique INTEGER NOT NULL,"
    " PRIMARY KEY (field, hash, customer_id)) STRICT;"
    "CREATE UNIQUE INDEX customer_index_unique ON customer_index (field, hash)"
    " WHERE is_unique = 1;"
    "CREATE INDEX customer_index_customer ON customer_index (customer_id, field);"
    "CREATE TABLE customer_secrets (customer_id TEXT NOT NULL REFERENCES customers (id),"
    " name TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (customer_id, name)) STRICT;"
    "INSERT INTO customers SELECT * FROM t_c; INSERT INTO customer_fields SELECT * FROM t_f;"
    "INSERT INTO customer_index SELECT * FROM t_i;"
    "INSERT INTO customer_secrets SELECT * FROM t_s;"
    /* and what 0006 added, so that it runs again */
    "ALTER TABLE staff DROP COLUMN roles; ALTER TABLE staff DROP COLUMN department;"
    "ALTER TABLE staff DROP COLUMN region; ALTER TABLE staff DROP COLUMN training_valid_until;"
    "ALTER TABLE api_keys DROP COLUMN roles;"
    /* and what 0007 added */
    "DROP TABLE unmask_usage;"
    /* and what 0008 added */
    "ALTER TABLE api_keys DROP COLUMN owner; ALTER TABLE api_keys DROP COLUMN networks;"
    /* and what 0009 added */
    "DROP TABLE approval_secrets; DROP TABLE approval_votes; DROP TABLE approvals;"
    /* and what 0010 added */
    "DROP TABLE events; DROP TABLE ledger_accounts; DROP TABLE ledger_transfers;"
    "DROP TABLE ledger_pending; DROP TABLE ledger_head; DROP TABLE ledger_customer_limits;"
    "DROP TABLE ledger_decisions; DROP TABLE ledger_idempotency;"
    /* and what 0011 added */
    "DROP TABLE monitor_head; DROP TABLE monitor_events;"
    "DROP TABLE alerts; DROP TABLE alert_comments;"
    "DROP TABLE monitor_list_items; DROP TABLE monitor_snoozes; DROP TABLE rule_sets;"
    "DROP TABLE notify_outbox; DROP TABLE monitor_idempotency;"
    /* and what 0013 added */
    "DROP TABLE cases; DROP TABLE case_observables; DROP TABLE case_alerts;"
    "DROP TABLE case_tasks; DROP TABLE case_timeline; DROP TABLE case_steps;"
    "DROP TABLE case_reports; DROP TABLE self_freezes; DROP TABLE drill_customers;"
    "DROP TABLE forgotten_devices;"
    "DELETE FROM schema_migrations WHERE version >= 5; COMMIT;";

/* One row of a query's first column as text, copied into out. */
static void query_text(struct fixture *f, const char *q, char *out, size_t cap)
{
    struct cu_stmt *st = NULL;
    bool row = false;
    assert_int_equal(cu_db_query(f->conn, q, NULL, 0, &st), CU_OK);
    assert_int_equal(cu_stmt_next(st, &row), CU_OK);
    snprintf(out, cap, "%s", row ? cu_stmt_text(st, 0, NULL) : "(no row)");
    cu_stmt_done(st);
}

/* A database of schema version 4 (rowid tables) upgrades through 0005 with every
 * customer still readable and findable by its blind index, its secrets kept, the foreign
 * keys whole, and the four customer tables clustered (WITHOUT ROWID). */
static void test_upgrade_clusters_customers(void **state)
{
    struct fixture *f = *state;
    struct cu_customer c[3], g;
    char err[CU_STORE_ERR_BYTES], why[CU_VAULT_WHY_BYTES], text[256];
    char ids[4][CU_CUSTOMER_ID_BYTES];
    size_t n = 0;
    create(f, "{\"given_name\": \"A\", \"email\": \"a@example.com\"}", &c[0]);
    create(f, "{\"given_name\": \"B\", \"phone\": \"+441234567890\"}", &c[1]);
    create(f, "{\"family_name\": \"C\", \"national_id\": \"XY1234\"}", &c[2]);
    assert_int_equal(cu_db_begin(f->conn, CU_TXN_WRITE), CU_OK);
    assert_int_equal(cu_vault_secret_put(f->v, f->conn, c[1].id, "totp", "s3cret", 6), CU_OK);
    assert_int_equal(cu_db_commit(f->conn), CU_OK);
    cu_store_close(f->st);
    f->st = NULL;
    sql(f, v4_schema);
    struct cu_store_opts o = {.backend = "sqlite", .path = f->db, .busy_timeout_ms = 5000};
    assert_int_equal(cu_store_open(&o, &f->st, err), CU_OK);
    if (cu_store_migrate(f->st, err) != CU_OK)
        fail_msg("%s", err);
    assert_int_equal(cu_store_db(f->st, &f->conn), CU_OK);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(cu_vault_get(f->v, f->conn, c[i].id, true, &g), CU_OK);
        for (size_t k = 0; k < CU_VAULT_MAX_FIELDS; k++) {
            if (c[i].values[k] != NULL)
                assert_string_equal(g.values[k], c[i].values[k]);
        }
        cu_customer_clear(&g);
    }
    assert_int_equal(cu_vault_find(f->v, f->conn, "email", "a@example.com", ids, 4, &n, why),
                     CU_OK);
    assert_int_equal(n, 1);
    assert_string_equal(ids[0], c[0].id);
    uint8_t secret[16];
    size_t sl = 0;
    assert_int_equal(
        cu_vault_secret_get(f->v, f->conn, c[1].id, "totp", secret, sizeof(secret), &sl), CU_OK);
    assert_int_equal(sl, 6);
    assert_memory_equal(secret, "s3cret", 6);
    for (int i = 0; i < 3; i++)
        cu_customer_clear(&c[i]);

    query_text(f, "SELECT count(*) FROM pragma_foreign_key_check", text, sizeof(text));
    assert_string_equal(text, "0");
    query_text(f, "PRAGMA integrity_check", text, sizeof(text));
    assert_string_equal(text, "ok");
    query_text(f,
               "SELECT count(*) FROM sqlite_schema WHERE name IN ('customers', "
               "'customer_fields', 'customer_index', 'customer_secrets') AND sql LIKE "
               "'%WITHOUT ROWID%'",
               text, sizeof(text));
    assert_string_equal(text, "4");
    query_text(f, "SELECT count(*) FROM sqlite_schema WHERE name LIKE '%old%' OR name LIKE '%new%'",
               text, sizeof(text));
    assert_string_equal(text, "0");
}

static void test_erasure(void **state)
{
    struct fixture *f = *state;
    struct cu_customer c, g;
    char why[CU_VAULT_WHY_BYTES], found[2][CU_CUSTOMER_ID_BYTES];
    size_t n = 9;

    create(f, "{\"email\": \"gone@example.com\", \"given_name\": \"Gone\"}", &c);
    assert_int_equal(cu_db_begin(f->conn, CU_TXN_WRITE), CU_OK);
    assert_int_equal(cu_vault_erase(f->v, f->conn, c.id, "ak_test"), CU_OK);
    assert_int_equal(cu_db_commit(f->conn), CU_OK);
    assert_int_equal(cu_db_purge(f->conn), CU_OK);
    assert_int_equal(cu_vault_get(f->v, f->conn, c.id, true, &g), CU_OK);
    assert_string_equal(g.status, "erased");
    assert_true(g.erased_at > 0);
    assert_null(value_of(&g, "email"));
    cu_customer_clear(&g);
    assert_int_equal(cu_vault_find(f->v, f->conn, "email", "gone@example.com", found, 2, &n, why),
                     CU_OK);
    assert_int_equal(n, 0);
    assert_int_equal(cu_db_begin(f->conn, CU_TXN_WRITE), CU_OK);
    assert_int_equal(cu_vault_erase(f->v, f->conn, c.id, "ak_test"), CU_E_NOT_FOUND);
    cu_db_rollback(f->conn);
    /* Nothing of it in the files: the WAL was checkpointed and truncated. */
    char wal[1100];
    snprintf(wal, sizeof(wal), "%s-wal", f->db);
    assert_false(cu_test_file_contains(f->db, "Gone") || cu_test_file_contains(f->db, "gone@"));
    assert_false(cu_test_file_contains(wal, "Gone") || cu_test_file_contains(wal, "gone@"));
    cu_customer_clear(&c);
}

/* A customer's state, for other services: its status, from the vault alone. */
static void test_customer_state(void **state)
{
    struct fixture *f = *state;
    struct cu_customer c, out;
    char status[CU_VAULT_STATUS_BYTES], why[CU_VAULT_WHY_BYTES];
    json_t *changed = NULL, *in = json_loads("{\"status\": \"suspended\"}", 0, NULL);

    assert_non_null(in);
    assert_int_equal(cu_vault_customer_state(f->v, f->conn, "cus_0000000000000000", status),
                     CU_E_NOT_FOUND);
    assert_string_equal(status, "");
    create(f, "{\"email\": \"state@example.com\"}", &c);
    assert_int_equal(cu_vault_customer_state(f->v, f->conn, c.id, status), CU_OK);
    assert_string_equal(status, "active");
    assert_int_equal(cu_db_begin(f->conn, CU_TXN_WRITE), CU_OK);
    assert_int_equal(cu_vault_patch(f->v, f->conn, c.id, in, &out, &changed, why), CU_OK);
    assert_int_equal(cu_vault_customer_state(f->v, f->conn, c.id, status), CU_OK);
    assert_string_equal(status, "suspended");
    assert_int_equal(cu_vault_erase(f->v, f->conn, c.id, "ak_test"), CU_OK);
    assert_int_equal(cu_db_commit(f->conn), CU_OK);
    assert_int_equal(cu_vault_customer_state(f->v, f->conn, c.id, status), CU_OK);
    assert_string_equal(status, "erased");
    json_decref(changed);
    json_decref(in);
    cu_customer_clear(&out);
    cu_customer_clear(&c);
}

/* An answer to a caller that may not read personal fields keeps only the plain ones. */
static void test_drop_personal(void **state)
{
    struct cu_customer c;
    size_t nf = 0;
    const struct cu_field_def *fs = cu_fields(&nf);

    (void)state;
    memset(&c, 0, sizeof(c));
    for (size_t i = 0; i < nf; i++)
        c.values[i] = cu_strdup(fs[i].name);
    cu_customer_drop_personal(&c);
    for (size_t i = 0; i < nf; i++) {
        if (fs[i].personal)
            assert_null(c.values[i]);
        else
            assert_string_equal(c.values[i], fs[i].name);
    }
    cu_customer_clear(&c);
}

/* A body with a valid field and then an invalid one is refused naming the invalid field, and
 * everything parsed before it is freed once (ASan and valgrind watch): on create, and on a
 * patch of an unknown and of an existing customer, which stays as it was. */
static void test_valid_then_invalid_field(void **state)
{
    struct fixture *f = *state;
    struct cu_customer c, out, g;
    char why[CU_VAULT_WHY_BYTES] = "";
    json_t *changed = NULL;
    json_t *in = json_loads("{\"city\": \"London\", \"email\": \"not-an-email\"}", 0, NULL);

    assert_non_null(in);
    assert_int_equal(cu_db_begin(f->conn, CU_TXN_WRITE), CU_OK);
    assert_int_equal(cu_vault_create(f->v, f->conn, in, &out, why), CU_E_INVALID);
    assert_non_null(strstr(why, "'email'"));
    assert_null(value_of(&out, "city"));
    cu_customer_clear(&out);

    why[0] = '\0';
    assert_int_equal(cu_vault_patch(f->v, f->conn, "cus_0000000000000000", in, &out, &changed, why),
                     CU_E_INVALID);
    assert_non_null(strstr(why, "'email'"));
    assert_null(changed);
    cu_customer_clear(&out);
    cu_db_rollback(f->conn);

    create(f, "{\"city\": \"Oslo\", \"email\": \"kept@example.com\"}", &c);
    why[0] = '\0';
    assert_int_equal(cu_db_begin(f->conn, CU_TXN_WRITE), CU_OK);
    assert_int_equal(cu_vault_patch(f->v, f->conn, c.id, in, &out, &changed, why), CU_E_INVALID);
    assert_non_null(strstr(why, "'email'"));
    assert_null(changed);
    cu_customer_clear(&out);
    cu_db_rollback(f->conn);
    assert_int_equal(cu_vault_get(f->v, f->conn, c.id, true, &g), CU_OK);
    assert_string_equal(value_of(&g, "city"), "Oslo");
    assert_string_equal(value_of(&g, "email"), "kept@example.com");
    cu_customer_clear(&g);
    cu_customer_clear(&c);
    json_decref(in);
}

/* Whether rc is what an operation may answer when an allocation or a statement fails; *all
 * stays true only while every answer is CU_OK. */
static bool clean_rc(enum cu_err rc, bool *all)
{
    *all = *all && rc == CU_OK;
    return rc == CU_OK || rc == CU_E_NOMEM || rc == CU_E_STORE;
}

/* One pass of every vault operation on customer id, the changes in a transaction rolled back
 * after, for test_faults_unwind: whatever fails, fails cleanly. True when nothing failed. */
static bool every_operation(struct fixture *f, const char *id, const json_t *full,
                            const json_t *change, const json_t *half_bad)
{
    char why[CU_VAULT_WHY_BYTES], found[2][CU_CUSTOMER_ID_BYTES];
    struct cu_customer out, *list = NULL;
    json_t *changed = NULL;
    uint8_t secret[16];
    size_t n = 0;
    bool all = true;
    enum cu_err rc;

    assert_int_equal(cu_db_begin(f->conn, CU_TXN_WRITE), CU_OK);
    assert_true(clean_rc(cu_vault_create(f->v, f->conn, full, &out, why), &all));
    cu_customer_clear(&out);
    rc = cu_vault_patch(f->v, f->conn, id, change, &out, &changed, why);
    assert_true(clean_rc(rc, &all) && (rc != CU_OK || changed != NULL));
    cu_customer_clear(&out);
    json_decref(changed);
    changed = NULL;
    rc = cu_vault_patch(f->v, f->conn, id, half_bad, &out, &changed, why);
    assert_true(rc == CU_E_INVALID || clean_rc(rc, &all));
    assert_int_not_equal(rc, CU_OK);
    assert_null(changed);
    cu_customer_clear(&out);
    assert_true(clean_rc(cu_vault_rotate_dek(f->v, f->conn, id), &all));
    rc = cu_vault_secret_put(f->v, f->conn, id, "totp", "0123456789abcdef", 16);
    if (rc == CU_OK)
        rc = cu_vault_secret_get(f->v, f->conn, id, "totp", secret, sizeof(secret), &n);
    assert_true(clean_rc(rc, &all));
    cu_db_rollback(f->conn);
    assert_true(clean_rc(cu_vault_get(f->v, f->conn, id, true, &out), &all));
    cu_customer_clear(&out);
    rc = cu_vault_list(f->v, f->conn, NULL, 10, &list, &n);
    assert_true(clean_rc(rc, &all));
    if (rc == CU_OK)
        cu_customers_free(list, n);
    rc = cu_vault_find(f->v, f->conn, "email", "faults@example.com", found, 2, &n, why);
    assert_true(clean_rc(rc, &all));
    return all;
}

/* Each allocation, and each statement, of every vault operation failing in turn, until a pass
 * has more of them than the operations make: every operation answers an error or succeeds,
 * and nothing is freed twice, used after it is freed or leaked (ASan and valgrind watch the
 * unwinding). */
static void test_faults_unwind(void **state)
{
    struct fixture *f = *state;
    struct cu_customer c, g;
    json_t *full = json_loads("{\"given_name\": \"Fay\", \"email\": \"other@example.com\", "
                              "\"phone\": \"+441234567890\", \"country\": \"GB\", "
                              "\"tags\": [\"vip\"]}",
                              0, NULL);
    json_t *change = json_loads("{\"city\": \"Leeds\", \"phone\": null, \"language\": "
                                "\"en\", \"status\": \"suspended\", \"tags\": []}",
                                0, NULL);
    json_t *half_bad = json_loads("{\"city\": \"London\", \"email\": \"not-an-email\"}", 0, NULL);
    bool mem_done = false, store_done = false;
    long k = 1;

    assert_true(full != NULL && change != NULL && half_bad != NULL);
    create(f,
           "{\"email\": \"faults@example.com\", \"given_name\": \"Fiona\", \"phone\": "
           "\"+441234567891\"}",
           &c);
    assert_int_equal(cu_vault_secret_put(f->v, f->conn, c.id, "recovery", "x", 1), CU_OK);
    for (; k <= 1000 && !(mem_done && store_done); k++) {
        cu_mem_fail_at(mem_done ? 0 : k);
        mem_done = every_operation(f, c.id, full, change, half_bad) || mem_done;
        cu_mem_fail_at(0);
        cu_store_fail_next(f->st, store_done ? 0 : k);
        store_done = every_operation(f, c.id, full, change, half_bad) || store_done;
        cu_store_fail_next(f->st, 0);
    }
    assert_true(mem_done && store_done && k > 10);
    /* The customer is as it was: every change was rolled back. */
    assert_int_equal(cu_vault_get(f->v, f->conn, c.id, true, &g), CU_OK);
    assert_string_equal(value_of(&g, "given_name"), "Fiona");
    assert_string_equal(value_of(&g, "phone"), "+441234567891");
    assert_null(value_of(&g, "city"));
    cu_customer_clear(&g);
    cu_customer_clear(&c);
    json_decref(full);
    json_decref(change);
    json_decref(half_bad);
}

/* A creation must name at least one field: an empty body, or tags and status alone, make no
 * customer. */
static void test_create_needs_a_field(void **state)
{
    static const char *const bodies[] = {"{}", "{\"tags\": [\"vip\"], \"status\": \"active\"}"};
    struct fixture *f = *state;
    char why[CU_VAULT_WHY_BYTES];
    struct cu_customer out;

    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        json_t *in = json_loads(bodies[i], 0, NULL);
        assert_non_null(in);
        why[0] = '\0';
        assert_int_equal(cu_db_begin(f->conn, CU_TXN_WRITE), CU_OK);
        assert_int_equal(cu_vault_create(f->v, f->conn, in, &out, why), CU_E_INVALID);
        assert_non_null(strstr(why, "names no field"));
        cu_customer_clear(&out);
        cu_db_rollback(f->conn);
        json_decref(in);
    }
    char count[16];
    query_text(f, "SELECT count(*) FROM customers", count, sizeof(count));
    assert_string_equal(count, "0");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_drop_personal),
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_customer_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stored_format_known_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_moved_ciphertext_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_erasure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_customer_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upgrade_clusters_customers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_valid_then_invalid_field, setup, teardown),
        cmocka_unit_test_setup_teardown(test_faults_unwind, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_needs_a_field, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
