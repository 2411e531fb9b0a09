/*
 * keys.c - `custodia keys status|rotate|retire|rotate-dek`: key management for the operator.
 *
 *   status                  KEK versions, their age, how many customer DEKs each wraps
 *   rotate [--batch N]      add a KEK (unless a rotation is unfinished) and re-wrap every DEK
 *                           under it, N per transaction; resumable; progress on a terminal
 *   retire VERSION          remove a KEK that wraps no DEK any more
 *   rotate-dek CUSTOMER     give one customer a new DEK and re-encrypt their fields
 *
 * Every change is audited. A running server keeps the keyring it loaded: restart it after
 * `rotate` adds a KEK (docs/operations.md).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "access/approval.h"
#include "cli/cli.h"
#include "identity/identity.h"
#include "crypto/kek.h"
#include "vault/vault.h"

#define OLD_KEK_DAYS 365

static int usage(FILE *f)
{
    return cu_cli_usage(f, "usage: custodia keys status [--dir DIR]\n"
                           "       custodia keys rotate [--batch N] [--dir DIR]\n"
                           "       custodia keys retire VERSION [--dir DIR]\n"
                           "       custodia keys rotate-dek CUSTOMER_ID [--dir DIR]\n");
}

/* The vault of an opened data directory, through the root-key-file KEK source. */
struct keys_ctx {
    struct cu_cli_ctx cli;
    struct cu_kek_source *kek;
    struct cu_vault *vault;
    char key_path[CU_CONFIG_PATH_BYTES];
};

static int open_vault(struct keys_ctx *k)
{
    if (cu_config_path(&k->cli.cfg, k->cli.cfg.keys.root_key_file, k->key_path,
                       sizeof(k->key_path)) != CU_OK ||
        cu_kek_source_keyring(k->cli.keyring, &k->kek) != CU_OK ||
        cu_vault_new(k->cli.keyring, k->kek, CU_AEAD_XCHACHA20POLY1305, &k->vault) != CU_OK) {
        cu_cli_error("cannot open the vault");
        return CU_EXIT_FAIL;
    }
    return CU_EXIT_OK;
}

static void close_vault(struct keys_ctx *k)
{
    cu_vault_free(k->vault);
    cu_kek_source_free(k->kek);
    k->vault = NULL;
    k->kek = NULL;
}

/* DEKs a KEK version wraps: customers', staff members' and approval requests'. */
static enum cu_err kek_usage(struct cu_db *db, uint32_t version, int64_t *count)
{
    int64_t staff = 0, approvals = 0;
    enum cu_err rc = cu_vault_kek_usage(db, version, count);
    if (rc == CU_OK)
        rc = cu_identity_staff_kek_usage(db, version, &staff);
    if (rc == CU_OK)
        rc = cu_approval_kek_usage(db, version, &approvals);
    *count += staff + approvals;
    return rc;
}

static int status(struct keys_ctx *k)
{
    struct cu_kek_info info[1024];
    struct cu_db *db = NULL;
    size_t n = 0;
    int64_t now = cu_clock_now_ms();
    enum cu_err rc = cu_keyring_kek_info(k->cli.keyring, info, 1024, &n);

    if (rc == CU_OK)
        rc = cu_store_db(k->cli.store, &db);
    printf("%-8s %-8s %-24s %-10s %s\n", "VERSION", "CURRENT", "CREATED", "DEKS", "NOTE");
    for (size_t i = 0; rc == CU_OK && i < n; i++) {
        char created[CU_RFC3339_BYTES];
        int64_t count = 0;
        int64_t days = (now - info[i].created_ms) / (86400LL * 1000);
        rc = kek_usage(db, info[i].version, &count);
        cu_clock_format(info[i].created_ms, created);
        printf("%-8u %-8s %-24s %-10lld %s\n", (unsigned)info[i].version,
               info[i].current ? "yes" : "", created, (long long)count,
               info[i].current && days > OLD_KEK_DAYS ? "older than a year: rotate"
               : !info[i].current && count > 0        ? "still wraps DEKs: finish the rotation"
               : !info[i].current                     ? "unused: can be retired"
                                                      : "");
    }
    if (rc != CU_OK) {
        cu_cli_error("cannot read the keys: %s", cu_err_str(rc));
        return CU_EXIT_FAIL;
    }
    return CU_EXIT_OK;
}

/* How many DEKs are not wrapped by the current KEK. */
static enum cu_err pending(struct keys_ctx *k, struct cu_db *db, int64_t *n)
{
    struct cu_kek_info info[1024];
    size_t count = 0;
    enum cu_err rc = cu_keyring_kek_info(k->cli.keyring, info, 1024, &count);
    *n = 0;
    for (size_t i = 0; rc == CU_OK && i < count; i++) {
        int64_t c = 0;
        if (!info[i].current)
            rc = kek_usage(db, info[i].version, &c);
        *n += c;
    }
    return rc;
}

/* An operator's record about the keyring, as a unit of work of its own. */
struct keys_record {
    const char *action;
    json_t *details;
};

static enum cu_err record_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct keys_record *r = arg;
    (void)db;
    return cu_work_audit(w, r->action, "keyring", "success", json_incref(r->details));
}

static enum cu_err audit_keys(struct keys_ctx *k, struct cu_db *db, const char *action,
                              json_t *details)
{
    struct keys_record r = {action, details};
    enum cu_err rc =
        details != NULL ? cu_cli_run(&k->cli, "operator", record_apply, &r) : CU_E_NOMEM;
    (void)db;
    json_decref(details);
    return rc;
}

/* One batch of a rotation: customers' DEKs, then staff members', then approval requests', in
 * one unit of work. */
struct rewrap_batch {
    struct keys_ctx *k;
    size_t batch;
    size_t done;
};

static enum cu_err rewrap_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct rewrap_batch *b = arg;
    size_t staff = 0;
    enum cu_err rc = cu_vault_rewrap(b->k->vault, db, b->batch, &b->done);
    (void)w;
    size_t approvals = 0;
    if (rc == CU_OK && b->done < b->batch)
        rc = cu_identity_staff_rewrap(b->k->kek, db, b->batch - b->done, &staff);
    if (rc == CU_OK && b->done + staff < b->batch)
        rc = cu_approval_rewrap(b->k->kek, db, b->batch - b->done - staff, &approvals);
    b->done = rc == CU_OK ? b->done + staff + approvals : 0;
    return rc;
}

/* A customer's DEK replaced, with its record. */
struct dek_rotation {
    struct keys_ctx *k;
    const char *id;
    char target[64];
};

static enum cu_err rotate_dek_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct dek_rotation *r = arg;
    enum cu_err rc = cu_vault_rotate_dek(r->k->vault, db, r->id);
    if (rc == CU_OK)
        rc = cu_work_audit(w, "keys.dek_rotated", r->target, "success", NULL);
    return rc;
}

/* Adds a KEK and reloads the keyring and vault so that new wraps use it. */
static int add_kek(struct keys_ctx *k, struct cu_db *db)
{
    char err[CU_KEYRING_ERR_BYTES];
    uint32_t version = 0;
    if (cu_keyring_add_kek(k->key_path, &version, err) != CU_OK) {
        cu_cli_error("%s", err);
        return CU_EXIT_FAIL;
    }
    close_vault(k);
    cu_keyring_free(k->cli.keyring);
    k->cli.keyring = NULL;
    if (cu_keyring_load(k->key_path, &k->cli.keyring, err) != CU_OK) {
        cu_cli_error("%s", err);
        return CU_EXIT_FAIL;
    }
    fprintf(stderr, "custodia: added KEK version %u; a running server takes it within a second\n",
            (unsigned)version);
    if (audit_keys(k, db, "keys.kek_added", json_pack("{s:i}", "version", (int)version)) != CU_OK)
        return CU_EXIT_FAIL;
    return open_vault(k);
}

static int rotate(struct keys_ctx *k, long batch)
{
    struct cu_db *db = NULL;
    int64_t left = 0, done_total = 0;
    enum cu_err rc = cu_store_db(k->cli.store, &db);
    int code = CU_EXIT_OK;

    if (rc == CU_OK)
        rc = pending(k, db, &left);
    if (rc == CU_OK && left == 0)
        code = add_kek(k, db);
    else if (rc == CU_OK)
        fprintf(stderr, "custodia: resuming an unfinished rotation: %lld DEKs to re-wrap\n",
                (long long)left);
    if (rc == CU_OK && code == CU_EXIT_OK)
        rc = pending(k, db, &left);
    for (size_t done = 1; rc == CU_OK && code == CU_EXIT_OK && done > 0;) {
        struct rewrap_batch b = {k, (size_t)batch, 0};
        rc = cu_cli_run(&k->cli, "operator", rewrap_apply, &b);
        done = rc == CU_OK ? b.done : 0;
        done_total += (int64_t)done;
        if (isatty(2))
            fprintf(stderr, "\rre-wrapping: %lld of %lld DEKs", (long long)done_total,
                    (long long)left);
    }
    if (isatty(2))
        fputc('\n', stderr);
    if (rc == CU_OK && code == CU_EXIT_OK)
        rc = audit_keys(k, db, "keys.rotated",
                        json_pack("{s:I, s:i}", "rewrapped", (json_int_t)done_total, "kek",
                                  (int)cu_kek_current_version(k->kek)));
    if (rc != CU_OK) {
        cu_cli_error("rotation stopped: %s; run it again to resume", cu_err_str(rc));
        return CU_EXIT_FAIL;
    }
    if (code == CU_EXIT_OK)
        printf("re-wrapped %lld DEKs under KEK version %u\n", (long long)done_total,
               (unsigned)cu_kek_current_version(k->kek));
    return code;
}

/* Waits until running servers can no longer commit a DEK wrapped under an older KEK: a server
 * takes the current KEK within CU_KEK_FILE_CHECK_MS of its making, and a DEK it wrapped just
 * before may still commit up to the store's busy timeout later. Only then is the count of
 * what an old KEK wraps final. */
static void settle(struct keys_ctx *k)
{
    struct cu_kek_info info[1024];
    size_t n = 0;
    int64_t made = 0;

    if (cu_keyring_kek_info(k->cli.keyring, info, 1024, &n) != CU_OK)
        return;
    for (size_t i = 0; i < n; i++) {
        if (info[i].current)
            made = info[i].created_ms;
    }
    int64_t wait = made + CU_KEK_FILE_CHECK_MS + (int64_t)k->cli.cfg.store.busy_timeout_ms + 1000 -
                   cu_clock_now_ms();
    if (wait <= 0)
        return;
    fprintf(stderr,
            "custodia: the current KEK is new; waiting %.1f s until running servers cannot "
            "wrap under an older one\n",
            (double)wait / 1000);
    struct timespec ts = {(time_t)(wait / 1000), (long)(wait % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int retire(struct keys_ctx *k, const char *arg)
{
    char err[CU_KEYRING_ERR_BYTES], *end = NULL;
    struct cu_db *db = NULL;
    long version = strtol(arg, &end, 10);
    int64_t count = 0;
    enum cu_err rc = cu_store_db(k->cli.store, &db);

    if (end == arg || *end != '\0' || version < 1 || version > INT32_MAX) {
        cu_cli_error("VERSION must be a KEK version number");
        return CU_EXIT_USAGE;
    }
    if ((uint32_t)version != cu_keyring_current_kek(k->cli.keyring))
        settle(k);
    if (rc == CU_OK)
        rc = kek_usage(db, (uint32_t)version, &count);
    if (rc == CU_OK && count > 0) {
        cu_cli_error("KEK version %ld still wraps %lld DEKs; run custodia keys rotate first",
                     version, (long long)count);
        return CU_EXIT_FAIL;
    }
    if (rc == CU_OK && cu_keyring_retire_kek(k->key_path, (uint32_t)version, err) != CU_OK) {
        cu_cli_error("%s", err);
        return CU_EXIT_FAIL;
    }
    if (rc == CU_OK)
        rc = audit_keys(k, db, "keys.kek_retired", json_pack("{s:i}", "version", (int)version));
    if (rc != CU_OK) {
        cu_cli_error("cannot retire the KEK: %s", cu_err_str(rc));
        return CU_EXIT_FAIL;
    }
    printf("retired KEK version %ld\n", version);
    return CU_EXIT_OK;
}

static int rotate_dek(struct keys_ctx *k, const char *id)
{
    struct dek_rotation r = {.k = k, .id = id};
    enum cu_err rc;

    snprintf(r.target, sizeof(r.target), "customer:%.32s", id);
    rc = cu_cli_run(&k->cli, "operator", rotate_dek_apply, &r);
    if (rc == CU_E_NOT_FOUND) {
        cu_cli_error("no customer has the id '%.32s'", id);
        return CU_EXIT_FAIL;
    }
    if (rc != CU_OK) {
        cu_cli_error("cannot rotate the DEK: %s", cu_err_str(rc));
        return CU_EXIT_FAIL;
    }
    printf("customer %s has a new DEK\n", id);
    return CU_EXIT_OK;
}

int cu_cli_keys(int argc, char **argv)
{
    static const struct option opts[] = {{"dir", required_argument, NULL, 'd'},
                                         {"batch", required_argument, NULL, 'b'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *verb = argc > 1 ? argv[1] : "", *dir = NULL;
    struct keys_ctx k;
    long batch = 1000;
    char *end = NULL;
    int c, code;

    memset(&k, 0, sizeof(k));
    if (cu_cli_is_help(verb))
        return usage(stdout);
    while ((c = getopt_long(argc - 1, argv + 1, "d:b:h", opts, NULL)) != -1) {
        if (c == 'h') {
            return usage(stdout);
        } else if (c == 'd') {
            dir = optarg;
        } else if (c == 'b') {
            batch = strtol(optarg, &end, 10);
            if (end == optarg || *end != '\0' || batch < 1 || batch > 100000) {
                cu_cli_error("--batch: a number from 1 to 100000");
                return CU_EXIT_USAGE;
            }
        } else {
            return usage(stderr);
        }
    }
    int rest = argc - 1 - optind;
    bool one = strcmp(verb, "retire") == 0 || strcmp(verb, "rotate-dek") == 0;
    bool none = strcmp(verb, "status") == 0 || strcmp(verb, "rotate") == 0;
    if (!(one && rest == 1) && !(none && rest == 0))
        return usage(stderr);
    code = cu_cli_open(cu_cli_data_dir(dir), &k.cli, true);
    if (code == CU_EXIT_OK)
        code = open_vault(&k);
    if (code == CU_EXIT_OK) {
        if (strcmp(verb, "status") == 0)
            code = status(&k);
        else if (strcmp(verb, "rotate") == 0)
            code = rotate(&k, batch);
        else if (strcmp(verb, "retire") == 0)
            code = retire(&k, argv[1 + optind]);
        else
            code = rotate_dek(&k, argv[1 + optind]);
    }
    close_vault(&k);
    cu_cli_close(&k.cli);
    return code;
}
