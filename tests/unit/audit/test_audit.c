/*
 * test_audit.c - the audit log: appends chain and commit with the caller's transaction;
 * events are validated; identifying values hash; checkpoints are signed and proofs check;
 * and tampering with the database file is found by `custodia audit verify`, which names the
 * right sequence number and exits 1: a changed byte, a deleted record, two swapped records,
 * a replaced checkpoint signature, a changed root, a hidden tail.
 */
#include "cu_test.h"

#include <jansson.h>

#include "audit/checkpoint.h"
#include "base/clock.h"
#include "crypto/crypto.h"

#define RECORDS 3000

struct fixture {
    char dir[300]; /* a data directory made by `custodia init` */
    char db[340];
    struct cu_keyring *kr;
    struct cu_store *st;
    struct cu_db *conn;
    struct cu_audit *audit;
    struct cu_committer *c;
};

static const struct cu_audit_opts opts = {
    .origin = "test.example/audit",
    .hash_source_ip = true,
    .checkpoint_records = 500,
    .checkpoint_seconds = 3600,
};

static void open_dir(struct fixture *f)
{
    char key[340], err[CU_STORE_ERR_BYTES];
    snprintf(key, sizeof(key), "%s/root.key", f->dir);
    snprintf(f->db, sizeof(f->db), "%s/custodia.db", f->dir);
    assert_int_equal(cu_keyring_load(key, &f->kr, err), CU_OK);
    struct cu_store_opts o = {
        .backend = "sqlite", .path = f->db, .busy_timeout_ms = 5000, .synchronous_full = false};
    assert_int_equal(cu_store_open(&o, &f->st, err), CU_OK);
    assert_int_equal(cu_store_db(f->st, &f->conn), CU_OK);
    assert_int_equal(cu_audit_new(f->kr, &opts, &f->audit), CU_OK);
    struct cu_committer_opts co = {.audit = cu_audit_sink(f->audit)};
    assert_int_equal(cu_committer_new(f->st, &co, &f->c), CU_OK);
}

static void close_dir(struct fixture *f)
{
    cu_committer_free(f->c);
    f->c = NULL;
    cu_audit_free(f->audit);
    cu_store_close(f->st);
    cu_keyring_free(f->kr);
    f->audit = NULL;
    f->st = NULL;
    f->kr = NULL;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    char base[256];
    assert_non_null(f);
    assert_int_equal(cu_crypto_init(), CU_OK);
    cu_test_tmpdir(base, sizeof(base));
    snprintf(f->dir, sizeof(f->dir), "%s/d", base);
    assert_non_null(getenv("CU_BINARY"));
    assert_int_equal(setenv("CUSTODIA_AUDIT_ORIGIN", "test.example/audit", 1), 0);
    assert_int_equal(
        cu_test_run((char *const[]){getenv("CU_BINARY"), "init", "--dir", f->dir, NULL}), 0);
    assert_int_equal(unsetenv("CUSTODIA_AUDIT_ORIGIN"), 0);
    open_dir(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char base[300];
    close_dir(f);
    snprintf(base, sizeof(base), "%s", f->dir);
    *strrchr(base, '/') = '\0';
    cu_test_rmrf(base);
    free(f);
    return 0;
}

static void append_n(struct fixture *f, int n)
{
    for (int i = 0; i < n;) {
        assert_int_equal(cu_db_begin(f->conn, CU_TXN_WRITE), CU_OK);
        for (int j = 0; j < 250 && i < n; j++, i++) {
            json_t *d = json_pack("{s:i}", "i", i);
            struct cu_audit_event ev = {.actor_type = "apikey",
                                        .actor_id = "ak_test",
                                        .action = "test.event",
                                        .target = "thing:1",
                                        .outcome = "success",
                                        .request_id = "r",
                                        .source_ip = "192.0.2.7",
                                        .details = d};
            assert_int_equal(cu_audit_append(f->audit, f->conn, &ev, NULL), CU_OK);
            json_decref(d);
        }
        assert_int_equal(cu_db_commit(f->conn), CU_OK);
        bool made = false;
        assert_int_equal(cu_audit_checkpoint_make(f->audit, f->c, false, &made, NULL), CU_OK);
    }
}

static void append_n_raw(struct fixture *f, int n)
{
    struct cu_audit_event ev = {.actor_type = "system", .action = "x.y", .outcome = "success"};
    assert_int_equal(cu_db_begin(f->conn, CU_TXN_WRITE), CU_OK);
    for (int i = 0; i < n; i++)
        assert_int_equal(cu_audit_append(f->audit, f->conn, &ev, NULL), CU_OK);
    assert_int_equal(cu_db_commit(f->conn), CU_OK);
}

static void verify_ok(struct fixture *f)
{
    struct cu_audit_verify_report rep;
    assert_int_equal(cu_audit_verify(f->audit, f->conn, 1, NULL, NULL, &rep), CU_OK);
    if (!rep.ok)
        fail_msg("verify: %lld: %s", (long long)rep.bad_seq, rep.problem);
}

static void test_append_chains(void **state)
{
    struct fixture *f = *state;
    struct cu_audit_record a, b;
    int64_t seq = 0, head = 0;
    uint8_t hh[CU_MERKLE_HASH_BYTES];

    assert_int_equal(cu_db_begin(f->conn, CU_TXN_WRITE), CU_OK);
    struct cu_audit_event ev = {.actor_type = "system", .action = "x.y", .outcome = "success"};
    assert_int_equal(cu_audit_append(f->audit, f->conn, &ev, &seq), CU_OK);
    assert_int_equal(cu_audit_append(f->audit, f->conn, &ev, &seq), CU_OK);
    assert_int_equal(cu_db_commit(f->conn), CU_OK);
    assert_int_equal(cu_audit_head(f->conn, &head, hh), CU_OK);
    assert_int_equal(head, seq);
    assert_int_equal(cu_audit_get(f->conn, seq - 1, &a), CU_OK);
    assert_int_equal(cu_audit_get(f->conn, seq, &b), CU_OK);
    assert_memory_equal(b.prev_hash, a.hash, CU_MERKLE_HASH_BYTES);
    assert_memory_equal(hh, b.hash, CU_MERKLE_HASH_BYTES);
    uint8_t again[CU_MERKLE_HASH_BYTES];
    assert_int_equal(cu_audit_record_hash(b.prev_hash, &b, again), CU_OK);
    assert_memory_equal(again, b.hash, CU_MERKLE_HASH_BYTES);
    assert_string_equal(b.details, "{}");
    cu_audit_record_clear(&a);
    cu_audit_record_clear(&b);
    verify_ok(f);
}

/* A batch reads and moves the head once, skips a refused event, and chains like single
 * appends: the log verifies and the head is the last record. */
static void test_append_many(void **state)
{
    struct fixture *f = *state;
    struct cu_audit_event good = {.actor_type = "system", .action = "x.y", .outcome = "success"};
    struct cu_audit_event bad = {.actor_type = "system", .action = "x.y", .outcome = "maybe"};
    const struct cu_audit_event *evs[] = {&good, &bad, &good, &good};
    enum cu_err rcs[4];
    int64_t before = 0, after = 0;
    uint8_t h[CU_MERKLE_HASH_BYTES];

    assert_int_equal(cu_audit_head(f->conn, &before, h), CU_OK);
    assert_int_equal(cu_db_begin(f->conn, CU_TXN_WRITE), CU_OK);
    assert_int_equal(cu_audit_append_many(f->audit, f->conn, evs, 4, rcs), CU_OK);
    assert_int_equal(cu_db_commit(f->conn), CU_OK);
    assert_int_equal(rcs[0], CU_OK);
    assert_int_equal(rcs[1], CU_E_INVALID);
    assert_int_equal(rcs[2], CU_OK);
    assert_int_equal(rcs[3], CU_OK);
    assert_int_equal(cu_audit_head(f->conn, &after, h), CU_OK);
    assert_int_equal(after, before + 3);
    append_n_raw(f, 2); /* single appends go on from the batch's head */
    verify_ok(f);
    /* A batch of refused events only leaves the head where it was. */
    const struct cu_audit_event *none[] = {&bad};
    assert_int_equal(cu_db_begin(f->conn, CU_TXN_WRITE), CU_OK);
    assert_int_equal(cu_audit_append_many(f->audit, f->conn, none, 1, rcs), CU_OK);
    assert_int_equal(cu_db_commit(f->conn), CU_OK);
    assert_int_equal(cu_audit_head(f->conn, &before, h), CU_OK);
    assert_int_equal(before, after + 2);
    verify_ok(f);
}

static void test_rollback_discards(void **state)
{
    struct fixture *f = *state;
    int64_t before = 0, after = 0;
    uint8_t h[CU_MERKLE_HASH_BYTES];
    struct cu_audit_event ev = {.actor_type = "system", .action = "x.y", .outcome = "success"};

    assert_int_equal(cu_audit_head(f->conn, &before, h), CU_OK);
    assert_int_equal(cu_db_begin(f->conn, CU_TXN_WRITE), CU_OK);
    assert_int_equal(cu_audit_append(f->audit, f->conn, &ev, NULL), CU_OK);
    cu_db_rollback(f->conn);
    assert_int_equal(cu_audit_head(f->conn, &after, h), CU_OK);
    assert_int_equal(after, before);
    verify_ok(f);
}

static void test_bad_events(void **state)
{
    struct fixture *f = *state;
    char big[CU_AUDIT_FIELD_MAX + 2];
    json_t *arr = json_array();
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    struct cu_audit_event bad[] = {
        {.actor_type = "system", .action = "x", .outcome = "maybe"},
        {.actor_type = "system", .action = "", .outcome = "success"},
        {.actor_type = "system", .action = big, .outcome = "success"},
        {.actor_type = "system", .action = "x", .target = "a\nb", .outcome = "success"},
        {.actor_type = "system", .action = "x", .outcome = "success", .details = arr},
        {.actor_type = "system", .action = "x", .target = "bad\xff", .outcome = "success"},
        {.actor_type = "system", .action = "x", .target = "\xc0\xaf", .outcome = "success"},
        /* details as text: an object in braces, UTF-8, not with details as well */
        {.actor_type = "system", .action = "x", .outcome = "success", .details_text = "[1]"},
        {.actor_type = "system", .action = "x", .outcome = "success", .details_text = "{"},
        {.actor_type = "system", .action = "x", .outcome = "success", .details_text = ""},
        {.actor_type = "system",
         .action = "x",
         .outcome = "success",
         .details_text = "{\"a\":\"\xff\"}"},
        {.actor_type = "system",
         .action = "x",
         .outcome = "success",
         .details = arr,
         .details_text = "{}"},
    };
    assert_int_equal(cu_db_begin(f->conn, CU_TXN_WRITE), CU_OK);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(cu_audit_append(f->audit, f->conn, &bad[i], NULL), CU_E_INVALID);
    cu_db_rollback(f->conn);
    json_decref(arr);
}

/* Details given as canonical text are stored byte for byte and chained like any other. */
static void test_details_text(void **state)
{
    struct fixture *f = *state;
    struct cu_audit_record r;
    int64_t seq = 0;
    struct cu_audit_event ev = {.actor_type = "system",
                                .action = "x.y",
                                .outcome = "success",
                                .details_text = "{\"revealed\":[\"email\",\"phone\"]}"};
    assert_int_equal(cu_db_begin(f->conn, CU_TXN_WRITE), CU_OK);
    assert_int_equal(cu_audit_append(f->audit, f->conn, &ev, &seq), CU_OK);
    assert_int_equal(cu_db_commit(f->conn), CU_OK);
    assert_int_equal(cu_audit_get(f->conn, seq, &r), CU_OK);
    assert_string_equal(r.details, "{\"revealed\":[\"email\",\"phone\"]}");
    cu_audit_record_clear(&r);
    verify_ok(f);
}

static void test_source_ip_hashed(void **state)
{
    struct fixture *f = *state;
    struct cu_audit_record r;
    char want[CU_AUDIT_HASHED_BYTES], other[CU_AUDIT_HASHED_BYTES];
    int64_t seq = 0;
    struct cu_audit_event ev = {
        .actor_type = "system", .action = "x.y", .outcome = "success", .source_ip = "203.0.113.9"};

    assert_int_equal(cu_db_begin(f->conn, CU_TXN_WRITE), CU_OK);
    assert_int_equal(cu_audit_append(f->audit, f->conn, &ev, &seq), CU_OK);
    assert_int_equal(cu_db_commit(f->conn), CU_OK);
    assert_int_equal(cu_audit_get(f->conn, seq, &r), CU_OK);
    assert_int_equal(cu_audit_hash_value(f->audit, "ip", "203.0.113.9", want), CU_OK);
    assert_int_equal(cu_audit_hash_value(f->audit, "email", "203.0.113.9", other), CU_OK);
    assert_string_equal(r.source, want);
    assert_string_not_equal(want, other);
    assert_null(strstr(r.source, "203.0.113.9"));
    cu_audit_record_clear(&r);
    /* The CLI computes the same hash for investigators. */
    char cmd[1024], line[128] = "";
    snprintf(cmd, sizeof(cmd), "'%s' audit hash --dir '%s' --kind ip 203.0.113.9",
             getenv("CU_BINARY"), f->dir);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    assert_non_null(fgets(line, sizeof(line), p));
    pclose(p);
    line[strcspn(line, "\n")] = '\0';
    assert_string_equal(line, want);
}

/* run_job(f, j): a checkpoint job as its own unit through the committer. */
static enum cu_err run_job(struct fixture *f, struct cu_audit_checkpoint_job *j)
{
    struct cu_work *w = NULL;
    enum cu_err rc = cu_work_new(NULL, &w);
    if (rc == CU_OK)
        rc = cu_work_add(w, cu_audit_checkpoint_apply, j);
    if (rc == CU_OK)
        rc = cu_committer_run(f->c, w);
    cu_work_free(w);
    return rc;
}

/* The checkpoint's tree is built outside the writer; its unit must not trust a tree built on
 * a checkpoint that is no longer the latest, nor one whose last record changed since. */
static void test_checkpoint_prepared_outside_writer(void **state)
{
    struct fixture *f = *state;
    struct cu_audit_checkpoint cp;
    struct cu_audit_checkpoint_job j;
    bool made = false;
    int64_t base;

    /* The log starts with the records `init` wrote: base of them. */
    assert_int_equal(cu_audit_checkpoint_make(f->audit, f->c, true, &made, &cp), CU_OK);
    base = cp.tree_size;
    append_n_raw(f, 700);
    assert_int_equal(cu_audit_checkpoint_make(f->audit, f->c, true, &made, &cp), CU_OK);
    assert_true(made);
    assert_int_equal(cp.tree_size, base + 700);
    append_n_raw(f, 300);
    /* A tree said ready but built on no checkpoint (from 0) while the latest covers 700 more: the
     * unit builds the tree itself, and the checkpoint it stores verifies. */
    memset(&j, 0, sizeof(j));
    j.audit = f->audit;
    j.force = true;
    j.ready = true;
    j.from = 0;
    j.upto = base + 1000;
    cu_merkle_builder_init(&j.tree);
    assert_int_equal(run_job(f, &j), CU_OK);
    assert_true(j.made);
    assert_int_equal(j.cp.tree_size, base + 1000);
    verify_ok(f);
    /* A tree on the latest checkpoint whose last record's hash is not the stored one: refused,
     * nothing stored. */
    append_n_raw(f, 10);
    memset(&j, 0, sizeof(j));
    j.audit = f->audit;
    j.force = true;
    j.ready = true;
    j.from = base + 1000;
    j.upto = base + 1010;
    memset(j.upto_hash, 0xab, sizeof(j.upto_hash));
    assert_int_equal(run_job(f, &j), CU_E_CORRUPT);
    assert_false(j.made);
    assert_int_equal(cu_audit_checkpoint_get(f->conn, 0, &cp), CU_OK);
    assert_int_equal(cp.tree_size, base + 1000);
    /* The ordinary path then covers the 10 and verifies. */
    assert_int_equal(cu_audit_checkpoint_make(f->audit, f->c, true, &made, &cp), CU_OK);
    assert_true(made);
    assert_int_equal(cp.tree_size, base + 1010);
    verify_ok(f);
}

static void test_checkpoints_and_proofs(void **state)
{
    struct fixture *f = *state;
    struct cu_audit_checkpoint cp, first;
    cu_merkle_hash proof[CU_MERKLE_MAX_PROOF], leaf;
    size_t len = 0;

    append_n(f, 1234);
    bool made = false;
    assert_int_equal(cu_audit_checkpoint_make(f->audit, f->c, true, &made, &cp), CU_OK);
    assert_true(made);
    assert_int_equal(cu_audit_checkpoint_make(f->audit, f->c, true, &made, NULL), CU_OK);
    assert_false(made); /* nothing new to cover */
    assert_int_equal(cu_audit_checkpoint_get(f->conn, 0, &cp), CU_OK);
    int64_t n = cp.tree_size;
    assert_true(n >= 1234);
    /* The note verifies with the public key and states the stored size and root. */
    uint8_t pub[CU_SIGN_PUBLIC_BYTES];
    char origin[CU_NOTE_NAME_MAX + 1];
    uint64_t size = 0;
    cu_merkle_hash root;
    cu_signer_public_key(cu_audit_signer(f->audit), pub);
    assert_int_equal(
        cu_note_open_checkpoint(cp.note, strlen(cp.note), opts.origin, pub, origin, &size, root),
        CU_OK);
    assert_int_equal(size, (uint64_t)n);
    assert_memory_equal(root, cp.root, sizeof(root));
    /* Inclusion proofs of a spread of records verify against the checkpoint's root. */
    for (int64_t seq = 1; seq <= n; seq += 97) {
        assert_int_equal(cu_audit_inclusion(f->conn, seq, n, leaf, proof, &len), CU_OK);
        assert_int_equal(cu_merkle_verify_inclusion((uint64_t)seq - 1, (uint64_t)n, leaf,
                                                    (const cu_merkle_hash *)proof, len, cp.root),
                         CU_OK);
        leaf[0] ^= 1;
        assert_int_equal(cu_merkle_verify_inclusion((uint64_t)seq - 1, (uint64_t)n, leaf,
                                                    (const cu_merkle_hash *)proof, len, cp.root),
                         CU_E_CRYPTO);
    }
    /* Every pair of checkpoints is consistent. */
    assert_int_equal(cu_audit_checkpoint_get(f->conn, 500, &first), CU_E_NOT_FOUND);
    struct cu_stmt *st = NULL;
    bool row = false;
    static const char sql[] = "SELECT tree_size FROM audit_checkpoints ORDER BY tree_size";
    assert_int_equal(cu_db_query(f->conn, sql, NULL, 0, &st), CU_OK);
    int64_t sizes[64];
    size_t ns = 0;
    while (cu_stmt_next(st, &row) == CU_OK && row && ns < 64)
        sizes[ns++] = cu_stmt_int(st, 0);
    cu_stmt_done(st);
    assert_true(ns >= 3);
    for (size_t i = 0; i < ns; i++) {
        for (size_t j = i; j < ns; j++) {
            struct cu_audit_checkpoint a, b;
            assert_int_equal(cu_audit_checkpoint_get(f->conn, sizes[i], &a), CU_OK);
            assert_int_equal(cu_audit_checkpoint_get(f->conn, sizes[j], &b), CU_OK);
            assert_int_equal(cu_audit_consistency(f->conn, sizes[i], sizes[j], proof, &len), CU_OK);
            assert_int_equal(cu_merkle_verify_consistency((uint64_t)sizes[i], (uint64_t)sizes[j],
                                                          a.root, b.root,
                                                          (const cu_merkle_hash *)proof, len),
                             CU_OK);
        }
    }
    assert_int_equal(cu_audit_inclusion(f->conn, 0, n, leaf, proof, &len), CU_E_INVALID);
    assert_int_equal(cu_audit_inclusion(f->conn, n + 1, n, leaf, proof, &len), CU_E_INVALID);
    assert_int_equal(cu_audit_consistency(f->conn, 5, 4, proof, &len), CU_E_INVALID);
    verify_ok(f);
}

/* Runs `custodia audit verify` on the data directory; checks the exit code and that the
 * output names the sequence number and the problem. */
static void cli_verify(struct fixture *f, int want_exit, const char *want_text)
{
    char cmd[1024], out[2048] = "";
    snprintf(cmd, sizeof(cmd), "'%s' audit verify --dir '%s' 2>&1", getenv("CU_BINARY"), f->dir);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = '\0';
    int rc = pclose(p);
    if (WEXITSTATUS(rc) != want_exit || strstr(out, want_text) == NULL)
        fail_msg("verify exited %d (wanted %d), said: %s (wanted '%s')", WEXITSTATUS(rc), want_exit,
                 out, want_text);
}

/* Applies SQL to the database file directly, as an insider with the file would. */
static void tamper(struct fixture *f, const char *sql)
{
    close_dir(f);
    assert_int_equal(cu_test_run((char *const[]){"sqlite3", f->db, (char *)sql, NULL}), 0);
    open_dir(f);
}

static void prepare_big_log(struct fixture *f)
{
    append_n(f, RECORDS);
    bool made = false;
    assert_int_equal(cu_audit_checkpoint_make(f->audit, f->c, true, &made, NULL), CU_OK);
    verify_ok(f);
    close_dir(f);
    cli_verify(f, 0, "audit log intact");
    open_dir(f);
}

static void test_tamper_changed_byte(void **state)
{
    struct fixture *f = *state;
    prepare_big_log(f);
    tamper(f, "DROP TRIGGER audit_log_no_update; "
              "UPDATE audit_log SET action = 'test.evenT' WHERE seq = 1234;");
    cli_verify(f, 1, "BROKEN at record 1234: hash mismatch");
}

static void test_tamper_deleted_record(void **state)
{
    struct fixture *f = *state;
    prepare_big_log(f);
    tamper(f, "DROP TRIGGER audit_log_no_delete; DELETE FROM audit_log WHERE seq = 1500;");
    cli_verify(f, 1, "BROKEN at record 1500: gap");
}

static void test_tamper_swapped_records(void **state)
{
    struct fixture *f = *state;
    prepare_big_log(f);
    /* Swap everything but the sequence numbers of records 2000 and 2001. */
    tamper(f, "DROP TRIGGER audit_log_no_update; "
              "CREATE TEMP TABLE t AS SELECT * FROM audit_log WHERE seq IN (2000, 2001); "
              "UPDATE audit_log SET (time_ms, actor_type, actor_id, action, target, outcome, "
              "request_id, source, details, prev_hash, hash) = (SELECT time_ms, actor_type, "
              "actor_id, action, target, outcome, request_id, source, details, prev_hash, hash "
              "FROM t WHERE t.seq = 4001 - audit_log.seq) WHERE seq IN (2000, 2001);");
    cli_verify(f, 1, "BROKEN at record 2000");
}

static void test_tamper_reordered_with_valid_hashes(void **state)
{
    struct fixture *f = *state;
    prepare_big_log(f);
    /* Renumber two records whole (hashes included): each still matches its own hash only if
     * the sequence number is not covered... it is, so this is a hash mismatch at 2500. */
    tamper(f, "DROP TRIGGER audit_log_no_update; "
              "UPDATE audit_log SET seq = -1 WHERE seq = 2500; "
              "UPDATE audit_log SET seq = 2500 WHERE seq = 2501; "
              "UPDATE audit_log SET seq = 2501 WHERE seq = -1;");
    cli_verify(f, 1, "BROKEN at record 2500");
}

static void test_tamper_checkpoint_signature(void **state)
{
    struct fixture *f = *state;
    prepare_big_log(f);
    /* Replace the signature of the checkpoint of size 1004 with that of another one (init
     * made 4 records: system.init, the first API key, the first administrator and their
     * password; then one checkpoint every 500). */
    tamper(f, "UPDATE audit_checkpoints SET note = substr(note, 1, instr(note, '— ') - 1) || "
              "(SELECT substr(note, instr(note, '— ')) FROM audit_checkpoints WHERE "
              "tree_size = 504) WHERE tree_size = 1004;");
    cli_verify(f, 1, "BROKEN at record 1004: bad signature");
}

static void test_tamper_checkpoint_root(void **state)
{
    struct fixture *f = *state;
    prepare_big_log(f);
    tamper(f, "UPDATE audit_checkpoints SET root = randomblob(32) WHERE tree_size = 1504;");
    cli_verify(f, 1, "BROKEN at record 1504: root mismatch");
}

static void test_tamper_hidden_tail(void **state)
{
    struct fixture *f = *state;
    prepare_big_log(f);
    /* Drop the last 10 records and point the head at the new last one. */
    tamper(f, "DROP TRIGGER audit_log_no_delete; DELETE FROM audit_log WHERE seq > 2992; "
              "UPDATE audit_head SET seq = 2992, hash = (SELECT hash FROM audit_log WHERE "
              "seq = 2992);");
    cli_verify(f, 1, "BROKEN at record 2993: gap");
}

static void test_verify_from(void **state)
{
    struct fixture *f = *state;
    struct cu_audit_verify_report rep;
    prepare_big_log(f);
    assert_int_equal(cu_audit_verify(f->audit, f->conn, 2222, NULL, NULL, &rep), CU_OK);
    assert_true(rep.ok);
    assert_int_equal(rep.records, RECORDS + 4 - 2222 + 1);
    tamper(f, "DROP TRIGGER audit_log_no_update; "
              "UPDATE audit_log SET target = 'x' WHERE seq = 100;");
    /* A break before --from is not seen; one after it is. */
    assert_int_equal(cu_audit_verify(f->audit, f->conn, 2222, NULL, NULL, &rep), CU_OK);
    assert_true(rep.ok);
    assert_int_equal(cu_audit_verify(f->audit, f->conn, 1, NULL, NULL, &rep), CU_OK);
    assert_false(rep.ok);
    assert_int_equal(rep.bad_seq, 100);
}

/* A checkpoint copied out of the database finds a log cut short together with its own
 * checkpoints, which nothing inside the database can. */
static void test_kept_checkpoint_finds_truncation(void **state)
{
    struct fixture *f = *state;
    struct cu_audit_checkpoint cp, kept;
    char path[400], cmd[1024], out[1024] = "";

    prepare_big_log(f);
    assert_int_equal(cu_audit_checkpoint_get(f->conn, 0, &cp), CU_OK);
    snprintf(path, sizeof(path), "%s/kept.note", f->dir);
    cu_test_write_file(path, cp.note);
    assert_int_equal(cu_audit_open_note(f->audit, cp.note, strlen(cp.note), &kept), CU_OK);
    assert_int_equal(kept.tree_size, cp.tree_size);
    tamper(f, "DROP TRIGGER audit_log_no_delete; DELETE FROM audit_log WHERE seq > 2000; "
              "DELETE FROM audit_checkpoints WHERE tree_size > 2000; "
              "UPDATE audit_head SET seq = 2000, hash = (SELECT hash FROM audit_log WHERE "
              "seq = 2000);");
    close_dir(f);
    cli_verify(f, 0, "audit log intact"); /* the database alone cannot tell */
    snprintf(cmd, sizeof(cmd), "'%s' audit verify --dir '%s' --checkpoint '%s' 2>&1",
             getenv("CU_BINARY"), f->dir, path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = '\0';
    int rc = pclose(p);
    assert_int_equal(WEXITSTATUS(rc), 1);
    assert_non_null(strstr(out, "BROKEN at record 2001: gap"));
    open_dir(f);
    /* A note not signed by this log's key is refused. */
    char forged[CU_NOTE_BYTES];
    snprintf(forged, sizeof(forged), "%s", cp.note);
    forged[strlen(forged) - 3] ^= 1;
    assert_int_not_equal(cu_audit_open_note(f->audit, forged, strlen(forged), &kept), CU_OK);
}

/* A damaged frontier is never used to sign a checkpoint. */
static void test_damaged_frontier_refused(void **state)
{
    struct fixture *f = *state;
    bool made = false;
    append_n(f, 600);
    tamper(f, "UPDATE audit_checkpoints SET frontier = randomblob(length(frontier)) WHERE "
              "tree_size = (SELECT max(tree_size) FROM audit_checkpoints);");
    append_n_raw(f, 10);
    assert_int_equal(cu_audit_checkpoint_make(f->audit, f->c, true, &made, NULL), CU_E_CORRUPT);
    assert_false(made);
}

struct two_records {
    const char *second_target; /* over the limit: the unit fails, neither record stays */
};

static enum cu_err two_records(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct two_records *t = arg;
    (void)db;
    enum cu_err rc = cu_work_audit(w, "test.first", "thing:1", "success", NULL);
    if (rc == CU_OK)
        rc = cu_work_audit(w, "test.second", t->second_target, "success",
                           json_pack("{s:s}", "k", "v"));
    return rc;
}

/* The committer's sink appends a unit's records with the unit's actor, request id and (hashed)
 * source address, and all of them or none. */
static void test_unit_records(void **state)
{
    struct fixture *f = *state;
    struct cu_work_ctx ctx = {.now_ms = 1};
    struct two_records t = {"thing:2"};
    struct cu_audit_record r;
    struct cu_work *w = NULL;
    int64_t before = 0, after = 0;
    uint8_t h[CU_MERKLE_HASH_BYTES];

    snprintf(ctx.request_id, sizeof(ctx.request_id), "req-1");
    snprintf(ctx.actor_type, sizeof(ctx.actor_type), "staff");
    snprintf(ctx.actor_id, sizeof(ctx.actor_id), "stf_0123456789abcdef");
    snprintf(ctx.source_ip, sizeof(ctx.source_ip), "192.0.2.7");
    assert_int_equal(cu_audit_head(f->conn, &before, h), CU_OK);
    assert_int_equal(cu_work_new(&ctx, &w), CU_OK);
    assert_int_equal(cu_work_add(w, two_records, &t), CU_OK);
    assert_int_equal(cu_committer_run(f->c, w), CU_OK);
    cu_work_free(w);
    assert_int_equal(cu_audit_head(f->conn, &after, h), CU_OK);
    assert_int_equal(after, before + 2);
    assert_int_equal(cu_audit_get(f->conn, after, &r), CU_OK);
    assert_string_equal(r.action, "test.second");
    assert_string_equal(r.actor_type, "staff");
    assert_string_equal(r.actor_id, "stf_0123456789abcdef");
    assert_string_equal(r.request_id, "req-1");
    assert_string_equal(r.details, "{\"k\":\"v\"}");
    assert_int_equal(strncmp(r.source, "hk:", 3), 0); /* hash_source_ip */
    cu_audit_record_clear(&r);

    /* a record the log refuses (a control byte in its target) fails the unit: neither stays */
    t.second_target = "bad\ttarget";
    assert_int_equal(cu_work_new(&ctx, &w), CU_OK);
    assert_int_equal(cu_work_add(w, two_records, &t), CU_OK);
    assert_int_equal(cu_committer_run(f->c, w), CU_E_INVALID);
    cu_work_free(w);
    assert_int_equal(cu_audit_head(f->conn, &before, h), CU_OK);
    assert_int_equal(before, after);
    verify_ok(f);
}

static void test_fault_injection_fails_closed(void **state)
{
    struct fixture *f = *state;
    int64_t before = 0, after = 0;
    uint8_t h[CU_MERKLE_HASH_BYTES];
    struct cu_audit_event ev = {.actor_type = "system", .action = "x.y", .outcome = "success"};

    assert_int_equal(cu_audit_head(f->conn, &before, h), CU_OK);
    for (long n = 1; n <= 6; n++) {
        assert_int_equal(cu_db_begin(f->conn, CU_TXN_WRITE), CU_OK);
        cu_store_fail_next(f->st, n);
        enum cu_err rc = cu_audit_append(f->audit, f->conn, &ev, NULL);
        cu_store_fail_next(f->st, 0);
        if (rc == CU_OK) {
            cu_db_rollback(f->conn);
            continue;
        }
        assert_int_equal(rc, CU_E_STORE);
        cu_db_rollback(f->conn);
    }
    assert_int_equal(cu_audit_head(f->conn, &after, h), CU_OK);
    assert_int_equal(after, before);
    verify_ok(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_append_chains, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollback_discards, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_details_text, setup, teardown),
        cmocka_unit_test_setup_teardown(test_source_ip_hashed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoints_and_proofs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tamper_changed_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tamper_deleted_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tamper_swapped_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tamper_reordered_with_valid_hashes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tamper_checkpoint_signature, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tamper_checkpoint_root, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tamper_hidden_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verify_from, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_many, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kept_checkpoint_finds_truncation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_frontier_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fault_injection_fails_closed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unit_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_prepared_outside_writer, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
