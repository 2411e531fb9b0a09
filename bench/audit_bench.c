/*
 * audit_bench.c - audit log figures: append rate (records/s, in transactions of 1,000) and
 * verify rate (records/s), on a fresh SQLite store with the default settings
 * (synchronous=FULL), next to the raw SHA-256 rate on 64-byte inputs for scale.
 *
 * usage: audit_bench [RECORDS]   (default 200000)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "audit/checkpoint.h"
#include "base/clock.h"
#include "crypto/crypto.h"

static double seconds(uint64_t start)
{
    return (double)(cu_clock_mono_ns() - start) / 1e9;
}

static int fail(const char *what, enum cu_err rc)
{
    fprintf(stderr, "audit_bench: %s: %s\n", what, cu_err_str(rc));
    return 1;
}

static int append_all(struct cu_audit *a, struct cu_store *st, long n)
{
    struct cu_db *db = NULL;
    enum cu_err rc = cu_store_db(st, &db);
    json_t *d = json_pack("{s:s, s:i}", "name", "billing service", "n", 1);
    struct cu_audit_event ev = {.actor_type = "apikey",
                                .actor_id = "ak_0123456789abcdef",
                                .action = "apikey.create",
                                .target = "apikey:ak_fedcba9876543210",
                                .outcome = "success",
                                .request_id = "0123456789abcdef01234567",
                                .source_ip = "192.0.2.10",
                                .details = d};
    uint64_t t = cu_clock_mono_ns();
    for (long i = 0; rc == CU_OK && i < n; i += 1000) {
        rc = cu_db_begin(db, CU_TXN_WRITE);
        for (long j = 0; rc == CU_OK && j < 1000 && i + j < n; j++)
            rc = cu_audit_append(a, db, &ev, NULL);
        rc = rc == CU_OK ? cu_db_commit(db) : (cu_db_rollback(db), rc);
    }
    json_decref(d);
    if (rc != CU_OK)
        return fail("append", rc);
    double s = seconds(t);
    printf("audit append (batches of 1000, synchronous=FULL): %.0f records/s (%ld in %.2f s)\n",
           (double)n / s, n, s);
    bool made = false;
    struct cu_committer *c = NULL;
    struct cu_committer_opts co = {.audit = cu_audit_sink(a)};
    t = cu_clock_mono_ns();
    rc = cu_committer_new(st, &co, &c);
    if (rc == CU_OK)
        rc = cu_audit_checkpoint_make(a, c, true, &made, NULL);
    cu_committer_free(c);
    if (rc != CU_OK)
        return fail("checkpoint", rc);
    printf("audit checkpoint over %ld new records: %.3f s\n", n, seconds(t));
    return 0;
}

static int verify_all(struct cu_audit *a, struct cu_store *st)
{
    struct cu_audit_verify_report rep;
    struct cu_db *db = NULL;
    enum cu_err rc = cu_store_db(st, &db);
    uint64_t t = cu_clock_mono_ns();
    if (rc == CU_OK)
        rc = cu_audit_verify(a, db, 1, NULL, NULL, &rep);
    if (rc != CU_OK || !rep.ok)
        return fail("verify", rc != CU_OK ? rc : CU_E_CORRUPT);
    double s = seconds(t);
    printf("audit verify (chain, Merkle tree, checkpoints; one core): %.0f records/s "
           "(%lld in %.2f s)\n",
           (double)rep.records / s, (long long)rep.records, s);
    return 0;
}

static void sha_rate(void)
{
    uint8_t in[64] = {1}, out[CU_HASH_BYTES];
    long n = 2000000;
    uint64_t t = cu_clock_mono_ns();
    for (long i = 0; i < n; i++) {
        cu_crypto_sha256(in, sizeof(in), out);
        in[0] = out[0];
    }
    printf("reference: SHA-256 of 64 bytes via cu_crypto_sha256: %.0f hashes/s\n",
           (double)n / seconds(t));
}

/* Removes the benchmark's directory and the files the store made in it. */
static int remove_dir(const char *dir)
{
    static const char *const names[] = {"root.key", "root.key.lock", "custodia.db",
                                        "custodia.db-wal", "custodia.db-shm"};
    char path[128];
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        (void)unlink(path);
    }
    return rmdir(dir);
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 200000;
    char dir[] = "/tmp/cu-bench-XXXXXX", key[64], dbp[64], err[CU_STORE_ERR_BYTES];
    struct cu_keyring *kr = NULL;
    struct cu_store *st = NULL;
    struct cu_audit *a = NULL;
    struct cu_audit_opts o = {.origin = "bench.example/audit",
                              .hash_source_ip = true,
                              .checkpoint_records = 1000,
                              .checkpoint_seconds = 60};
    int code = 1;

    if (n < 1000 || cu_crypto_init() != CU_OK || mkdtemp(dir) == NULL)
        return 2;
    snprintf(key, sizeof(key), "%s/root.key", dir);
    snprintf(dbp, sizeof(dbp), "%s/custodia.db", dir);
    struct cu_store_opts so = {.backend = "sqlite",
                               .path = dbp,
                               .busy_timeout_ms = 5000,
                               .synchronous_full = true,
                               .create = true};
    if (cu_keyring_create(key, err) != CU_OK || cu_keyring_load(key, &kr, err) != CU_OK ||
        cu_store_open(&so, &st, err) != CU_OK || cu_store_migrate(st, err) != CU_OK ||
        cu_audit_new(kr, &o, &a) != CU_OK) {
        fprintf(stderr, "audit_bench: setup failed: %s\n", err);
        goto out;
    }
    sha_rate();
    code = append_all(a, st, n);
    if (code == 0)
        code = verify_all(a, st);
out:
    cu_audit_free(a);
    cu_store_close(st);
    cu_keyring_free(kr);
    if (remove_dir(dir) != 0)
        code = 1;
    return code;
}
