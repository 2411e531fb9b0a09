/*
 * vault_bench.c - customer vault figures:
 *   - field decrypts per second in-process (base64url decode + custodia's ciphertext format +
 *     XChaCha20-Poly1305) next to raw libsodium XChaCha20-Poly1305 on the same field sizes;
 *   - creating N customers, and rotating the KEK over all of them (re-wrapping N DEKs);
 *   - customer reads in-process (cu_vault_get, every personal field decrypted) on one thread,
 *     with a warm page cache and with a write committed by another connection before every
 *     read, which is what the audited server sees: each read then starts a fresh snapshot.
 *
 * The raw comparison needs libsodium itself, so this benchmark includes <sodium.h>; product
 * code outside src/crypto never does.
 *
 * usage: vault_bench [CUSTOMERS]   (default 100000)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "base/clock.h"
#include "crypto/crypto.h"
#include "crypto/seal.h"
#include "vault/vault.h"

static double since(uint64_t t)
{
    return (double)(cu_clock_mono_ns() - t) / 1e9;
}

/* Decrypts a 32-byte field n times through custodia's path and through raw libsodium. */
static void decrypt_rates(long n)
{
    uint8_t key[32], pt[32] = "jane.doe@example.com-----------", sealed[128], out[64];
    uint8_t nonce[24], raw[64];
    const char *ad = "customers|email|cus_0123456789abcdef";
    char text[256];
    size_t sl = 0, ol = 0, dl = 0;
    unsigned long long rl = 0, ml = 0;
    struct cu_secret *k = cu_secret_new(32);

    randombytes_buf(key, sizeof(key));
    memcpy(cu_secret_data(k), key, 32);
    if (cu_crypto_seal(k, 1, CU_AEAD_XCHACHA20POLY1305, pt, sizeof(pt), (const uint8_t *)ad,
                       strlen(ad), sealed, sizeof(sealed), &sl) != CU_OK ||
        cu_b64url_encode(sealed, sl, text, sizeof(text)) != CU_OK)
        exit(1);
    randombytes_buf(nonce, sizeof(nonce));
    crypto_aead_xchacha20poly1305_ietf_encrypt(raw, &rl, pt, sizeof(pt), (const uint8_t *)ad,
                                               strlen(ad), NULL, nonce, key);
    /* The two loops alternate in 20 rounds, so that the machine's speed, which drifts from
     * second to second on a shared VM, weighs on both alike. */
    uint64_t ours_ns = 0, raw_ns = 0;
    long per = n / 20;
    for (int round = 0; round < 20; round++) {
        uint64_t t = cu_clock_mono_ns();
        for (long i = 0; i < per; i++) {
            uint8_t buf[128];
            if (cu_b64url_decode_public(text, strlen(text), buf, sizeof(buf), &dl) != CU_OK ||
                cu_crypto_open(k, 1, buf, dl, (const uint8_t *)ad, strlen(ad), out, sizeof(out),
                               &ol) != CU_OK)
                exit(1);
        }
        ours_ns += cu_clock_mono_ns() - t;
        t = cu_clock_mono_ns();
        for (long i = 0; i < per; i++) {
            if (crypto_aead_xchacha20poly1305_ietf_decrypt(
                    out, &ml, NULL, raw, rl, (const uint8_t *)ad, strlen(ad), nonce, key) != 0)
                exit(1);
        }
        raw_ns += cu_clock_mono_ns() - t;
    }
    double ours = (double)(per * 20) * 1e9 / (double)ours_ns;
    double rawr = (double)(per * 20) * 1e9 / (double)raw_ns;
    printf("field decrypt, 32-byte field, one core: custodia %.0f/s, raw libsodium XChaCha20-"
           "Poly1305 %.0f/s: %.0f%%\n",
           ours, rawr, 100.0 * ours / rawr);
    cu_secret_free(k);
}

static int fill_and_rotate(long n, const char *key_path, struct cu_store *st)
{
    char err[CU_KEYRING_ERR_BYTES], why[CU_VAULT_WHY_BYTES];
    struct cu_keyring *kr = NULL;
    struct cu_kek_source *kek = NULL;
    struct cu_vault *v = NULL;
    struct cu_db *db = NULL;
    uint32_t version = 0;
    size_t done = 0, total = 0;

    if (cu_keyring_load(key_path, &kr, err) != CU_OK || cu_kek_source_keyring(kr, &kek) != CU_OK ||
        cu_vault_new(kr, kek, CU_AEAD_XCHACHA20POLY1305, &v) != CU_OK ||
        cu_store_db(st, &db) != CU_OK)
        return 1;
    uint64_t t = cu_clock_mono_ns();
    for (long i = 0; i < n; i += 1000) {
        if (cu_db_begin(db, CU_TXN_WRITE) != CU_OK)
            return 1;
        for (long j = i; j < i + 1000 && j < n; j++) {
            char js[160];
            struct cu_customer c;
            snprintf(js, sizeof(js),
                     "{\"given_name\": \"Customer\", \"family_name\": \"N%ld\", \"email\": "
                     "\"c%ld@example.com\"}",
                     j, j);
            json_t *in = json_loads(js, 0, NULL);
            if (cu_vault_create(v, db, in, &c, why) != CU_OK)
                return 1;
            cu_customer_clear(&c);
            json_decref(in);
        }
        if (cu_db_commit(db) != CU_OK)
            return 1;
    }
    printf("created %ld customers (3 personal fields each): %.1f s\n", n, since(t));
    cu_vault_free(v);
    cu_kek_source_free(kek);
    cu_keyring_free(kr);
    if (cu_keyring_add_kek(key_path, &version, err) != CU_OK ||
        cu_keyring_load(key_path, &kr, err) != CU_OK || cu_kek_source_keyring(kr, &kek) != CU_OK ||
        cu_vault_new(kr, kek, CU_AEAD_XCHACHA20POLY1305, &v) != CU_OK)
        return 1;
    t = cu_clock_mono_ns();
    do {
        if (cu_db_begin(db, CU_TXN_WRITE) != CU_OK ||
            cu_vault_rewrap(v, db, 1000, &done) != CU_OK || cu_db_commit(db) != CU_OK)
            return 1;
        total += done;
    } while (done > 0);
    double s = since(t);
    printf("KEK rotation over %zu customers (re-wrap every DEK, batches of 1000): %.1f s "
           "(%.0f DEKs/s)\n",
           total, s, (double)total / s);
    cu_vault_free(v);
    cu_kek_source_free(kek);
    cu_keyring_free(kr);
    return 0;
}

/* Reads one customer with every personal field n times; with writer, another connection
 * commits a write before each read (not counted in the rate). */
static double read_rate(struct cu_vault *v, struct cu_db *db, struct cu_db *writer, const char *id,
                        long n)
{
    uint64_t spent = 0;
    for (long i = 0; i < n; i++) {
        struct cu_customer c;
        const struct cu_val p[] = {CU_VI(i)};
        if (writer != NULL && cu_db_exec(writer, "UPDATE bench_tick SET n = $1", p, 1) != CU_OK)
            return 0;
        uint64_t t = cu_clock_mono_ns();
        if (cu_vault_get(v, db, id, true, &c) != CU_OK || c.values[0] == NULL)
            return 0;
        cu_customer_clear(&c);
        spent += cu_clock_mono_ns() - t;
    }
    return (double)n * 1e9 / (double)spent;
}

static int read_rates(const char *key_path, struct cu_store *st, struct cu_store *st2)
{
    char err[CU_KEYRING_ERR_BYTES], why[CU_VAULT_WHY_BYTES];
    struct cu_keyring *kr = NULL;
    struct cu_kek_source *kek = NULL;
    struct cu_vault *v = NULL;
    struct cu_db *db = NULL, *writer = NULL;
    struct cu_customer c;
    int code = 1;
    json_t *in = json_loads(
        "{\"given_name\": \"Jane\", \"family_name\": \"Doe\", \"email\": \"jane@example.com\", "
        "\"phone\": \"+447911123456\", \"birth_date\": \"1984-05-06\", \"national_id\": "
        "\"AB123456C\", \"address_line1\": \"1 High Street\", \"city\": \"London\", "
        "\"postal_code\": \"SW1A 1AA\", \"country\": \"GB\", \"external_ref\": \"crm-1\"}",
        0, NULL);

    if (in == NULL || cu_keyring_load(key_path, &kr, err) != CU_OK ||
        cu_kek_source_keyring(kr, &kek) != CU_OK ||
        cu_vault_new(kr, kek, CU_AEAD_XCHACHA20POLY1305, &v) != CU_OK ||
        cu_store_db(st, &db) != CU_OK || cu_store_db(st2, &writer) != CU_OK ||
        cu_db_exec(writer, "CREATE TABLE bench_tick (n INTEGER)", NULL, 0) != CU_OK ||
        cu_db_exec(writer, "INSERT INTO bench_tick VALUES (0)", NULL, 0) != CU_OK ||
        cu_vault_create(v, db, in, &c, why) != CU_OK)
        goto out;
    double warm = read_rate(v, db, NULL, c.id, 200000);
    double fresh = read_rate(v, db, writer, c.id, 50000);
    cu_customer_clear(&c);
    if (warm > 0 && fresh > 0) {
        printf("customer reads in-process, 8 personal fields decrypted, one thread: %.0f/s; "
               "%.0f/s with a write committed before every read (fresh snapshot each time)\n",
               warm, fresh);
        code = 0;
    }
out:
    json_decref(in);
    cu_vault_free(v);
    cu_kek_source_free(kek);
    cu_keyring_free(kr);
    return code;
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
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 100000;
    char dir[] = "/tmp/cu-vbench-XXXXXX", key[64], dbp[64], err[CU_STORE_ERR_BYTES];
    struct cu_store *st = NULL, *st2 = NULL;
    int code = 1;

    if (n < 1 || cu_crypto_init() != CU_OK || mkdtemp(dir) == NULL)
        return 2;
    decrypt_rates(1000000);
    snprintf(key, sizeof(key), "%s/root.key", dir);
    snprintf(dbp, sizeof(dbp), "%s/custodia.db", dir);
    struct cu_store_opts so = {.backend = "sqlite",
                               .path = dbp,
                               .busy_timeout_ms = 5000,
                               .synchronous_full = true,
                               .create = true};
    if (cu_keyring_create(key, err) == CU_OK && cu_store_open(&so, &st, err) == CU_OK &&
        cu_store_migrate(st, err) == CU_OK)
        code = fill_and_rotate(n, key, st);
    so.create = false;
    if (code == 0 && cu_store_open(&so, &st2, err) == CU_OK)
        code = read_rates(key, st, st2);
    cu_store_close(st2);
    cu_store_close(st);
    if (remove_dir(dir) != 0)
        code = 1;
    return code;
}
