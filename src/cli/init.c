/*
 * init.c - `custodia init [--dir DIR] [--store URL]`: makes a new data directory with a working
 * configuration, a root key file, a self-signed TLS certificate, a migrated database (the
 * embedded one in the directory, or the empty PostgreSQL database URL names), a
 * first API key with every scope and a first staff administrator. It refuses a directory that
 * exists and is not empty, and on failure removes what it made, so nothing half-made is left
 * behind. It prints where the first API key and password are, never the password, and the key
 * only when standard output is a terminal.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "monitor/events.h"
#include "cli/cli.h"
#include "crypto/cert.h"
#include "crypto/crypto.h"
#include "access/access.h"
#include "audit/checkpoint.h"
#include "cu_version.h"
#include "identity/apikey.h"
#include "identity/identity.h"
#include "vault/vault.h"

#define MAX_MADE 12
#define CERT_DAYS 825
#define INITIAL_KEY_FILE "initial-api-key"
#define INITIAL_ADMIN_FILE "initial-admin-password"
#define INITIAL_ADMIN_EMAIL "admin@custodia.localhost"

/* What init has made so far, removed again if a later step fails. */
struct made {
    char paths[MAX_MADE][CU_CONFIG_PATH_BYTES + 16];
    size_t n;
    bool made_dir;
    const char *dir;
    bool server_db; /* a PostgreSQL database was migrated: init cannot remove what it holds */
};

static void made_add(struct made *m, const char *path)
{
    CU_ASSERT(m->n < MAX_MADE);
    snprintf(m->paths[m->n++], sizeof(m->paths[0]), "%s", path);
}

static void made_undo(struct made *m)
{
    char extra[CU_CONFIG_PATH_BYTES + 32];
    while (m->n > 0) {
        const char *p = m->paths[--m->n];
        unlink(p);
        snprintf(extra, sizeof(extra), "%s-wal", p);
        unlink(extra);
        snprintf(extra, sizeof(extra), "%s-shm", p);
        unlink(extra);
    }
    if (m->made_dir)
        rmdir(m->dir);
}

/* Creates dir (0700) or accepts an existing empty one. */
static int prepare_dir(const char *dir, struct made *m)
{
    DIR *d;
    struct dirent *e;

    if (mkdir(dir, 0700) == 0) {
        m->made_dir = true;
        return CU_EXIT_OK;
    }
    if (errno != EEXIST) {
        cu_cli_error("%s: cannot create the data directory: %s", dir, strerror(errno));
        return CU_EXIT_FAIL;
    }
    d = opendir(dir);
    if (d == NULL) {
        cu_cli_error("%s: exists and cannot be read: %s", dir, strerror(errno));
        return CU_EXIT_FAIL;
    }
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            closedir(d);
            cu_cli_error("%s: already exists and is not empty; init will not overwrite it", dir);
            return CU_EXIT_FAIL;
        }
    }
    closedir(d);
    if (chmod(dir, 0700) != 0) {
        cu_cli_error("%s: cannot make it private (chmod 700): %s", dir, strerror(errno));
        return CU_EXIT_FAIL;
    }
    return CU_EXIT_OK;
}

static int make_keys_and_cert(const struct cu_config *cfg, struct made *m)
{
    char key[CU_CONFIG_PATH_BYTES], crt[CU_CONFIG_PATH_BYTES], tkey[CU_CONFIG_PATH_BYTES];
    char err[CU_KEYRING_ERR_BYTES];

    if (cu_config_path(cfg, cfg->keys.root_key_file, key, sizeof(key)) != CU_OK ||
        cu_config_path(cfg, cfg->server.tls_cert, crt, sizeof(crt)) != CU_OK ||
        cu_config_path(cfg, cfg->server.tls_key, tkey, sizeof(tkey)) != CU_OK) {
        cu_cli_error("a path in the configuration is too long");
        return CU_EXIT_USAGE;
    }
    if (cu_keyring_create(key, err) != CU_OK) {
        cu_cli_error("%s", err);
        return CU_EXIT_FAIL;
    }
    made_add(m, key);
    if (cu_cert_selfsigned(crt, tkey, CERT_DAYS) != CU_OK) {
        cu_cli_error("%s, %s: cannot make the TLS certificate and key", crt, tkey);
        return CU_EXIT_FAIL;
    }
    made_add(m, crt);
    made_add(m, tkey);
    return CU_EXIT_OK;
}

static int make_store(const struct cu_config *cfg, struct made *m, struct cu_store **out)
{
    char path[CU_CONFIG_PATH_BYTES], err[CU_STORE_ERR_BYTES];
    struct cu_store_opts opts;
    bool embedded = strcmp(cfg->store.backend, "sqlite") == 0;
    int version = 0;

    if (cu_store_opts_of(cfg, path, sizeof(path), &opts) != CU_OK) {
        cu_cli_error("[store] path: the path is too long");
        return CU_EXIT_USAGE;
    }
    opts.create = true;
    if (embedded) {
        if (access(path, F_OK) == 0) {
            cu_cli_error("%s: a database already exists there; init will not overwrite it", path);
            return CU_EXIT_FAIL;
        }
        made_add(m, path);
    }
    if (cu_store_open(&opts, out, err) != CU_OK) {
        cu_cli_error("%s", err);
        return CU_EXIT_FAIL;
    }
    /* A server database is made by its administrator: init fills an empty one, never one that
     * already holds an installation or anything else (read only: nothing is made before). */
    if (!embedded) {
        static const char sql[] = "SELECT COUNT(*), COALESCE(SUM(CASE WHEN table_name = "
                                  "'schema_migrations' THEN 1 ELSE 0 END), 0) FROM "
                                  "information_schema.tables WHERE table_schema = current_schema()";
        struct cu_db *db = NULL;
        struct cu_stmt *st = NULL;
        bool row = false;
        int64_t tables = -1, ours = 0;
        enum cu_err rc = cu_store_acquire(*out, &db);
        if (rc == CU_OK)
            rc = cu_db_query(db, sql, NULL, 0, &st);
        if (rc == CU_OK && (rc = cu_stmt_next(st, &row)) == CU_OK && row) {
            tables = cu_stmt_int(st, 0);
            ours = cu_stmt_int(st, 1);
        }
        cu_stmt_done(st);
        cu_store_release(db);
        if (rc != CU_OK || tables < 0) {
            cu_cli_error("the database could not be read: %s", cu_err_str(rc));
            return CU_EXIT_FAIL;
        }
        version = (int)tables;
        if (ours > 0) {
            cu_cli_error("the database already holds a custodia installation; init will not "
                         "overwrite it");
            return CU_EXIT_FAIL;
        }
        if (tables > 0) {
            cu_cli_error("the database is not empty (%d tables); init fills an empty one", version);
            return CU_EXIT_FAIL;
        }
    }
    if (cu_store_migrate(*out, err) != CU_OK) {
        cu_cli_error("%s", err);
        return CU_EXIT_FAIL;
    }
    m->server_db = !embedded;
    return CU_EXIT_OK;
}

/* Writes a first credential into DIR/name, mode 0600. */
static int write_secret_file(const struct cu_config *cfg, const char *name, const char *token,
                             struct made *m, char *path, size_t pathlen)
{
    int fd;
    if (cu_config_path(cfg, name, path, pathlen) != CU_OK)
        return CU_EXIT_USAGE;
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        cu_cli_error("%s: cannot create: %s", path, strerror(errno));
        return CU_EXIT_FAIL;
    }
    made_add(m, path);
    size_t len = strlen(token);
    bool ok = write(fd, token, len) == (ssize_t)len && write(fd, "\n", 1) == 1 && fsync(fd) == 0;
    if (close(fd) != 0 || !ok) {
        cu_cli_error("%s: cannot write it", path);
        return CU_EXIT_FAIL;
    }
    return CU_EXIT_OK;
}

/* The key that signs webhooks ([notify] webhook_secret_file): 32 random bytes in hex. */
static int make_webhook_key(const struct cu_config *cfg, struct made *m)
{
    uint8_t raw[32];
    char hex[2 * sizeof raw + 1], path[CU_CONFIG_PATH_BYTES];
    int code;

    cu_crypto_random(raw, sizeof raw);
    cu_hex_encode(raw, sizeof raw, hex);
    code = write_secret_file(cfg, cfg->notify.webhook_secret_file, hex, m, path, sizeof path);
    cu_crypto_wipe(raw, sizeof raw);
    cu_crypto_wipe(hex, sizeof hex);
    return code;
}

/* Says where the first API key is. The key itself is shown only on a terminal: standard
 * output that goes to a file, a pipe or a service manager's journal would keep it. */
static void print_first_key(const char *id, const char *path, const char *token)
{
    printf("\nThe first API key (id %s, every scope) is in %s (mode 0600).\n", id, path);
    if (isatty(STDOUT_FILENO))
        printf("  %s\n"
               "It is shown only on a terminal, and kept only in that file; store it safely and\n"
               "delete the file.\n",
               token);
    else
        printf("It is not printed here, as standard output is not a terminal: read it from the\n"
               "file, store it safely, then delete the file.\n");
}

/* The first API key, with the records of the data directory's making, in one unit of work. */
struct first_key {
    struct cu_apikey_service *svc;
    struct cu_apikey_info *info;
    char *token;
};

static enum cu_err first_key_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct first_key *k = arg;
    char target[CU_APIKEY_ID_BYTES + 8] = "";
    enum cu_err rc =
        cu_work_audit(w, "system.init", "", "success", json_pack("{s:s}", "version", CU_VERSION));
    if (rc == CU_OK)
        rc = cu_apikey_create(k->svc, db, "initial-admin", cu_apikey_all_scopes(), 0, k->info,
                              k->token);
    if (rc == CU_OK)
        snprintf(target, sizeof(target), "apikey:%s", k->info->id);
    if (rc == CU_OK)
        rc = cu_work_audit(w, "apikey.create", target, "success",
                           json_pack("{s:s, s:s}", "name", "initial-admin", "scopes", "all"));
    return rc;
}

static int make_first_key(const struct cu_config *cfg, struct cu_store *st, struct made *m)
{
    char token[CU_APIKEY_TOKEN_BYTES], path[CU_CONFIG_PATH_BYTES], kpath[CU_CONFIG_PATH_BYTES];
    char err[CU_KEYRING_ERR_BYTES];
    struct cu_keyring *kr = NULL;
    struct cu_apikey_service *svc = NULL;
    struct cu_apikey_info info;
    int code = CU_EXIT_FAIL;
    enum cu_err rc;

    if (cu_config_path(cfg, cfg->keys.root_key_file, kpath, sizeof(kpath)) != CU_OK ||
        cu_keyring_load(kpath, &kr, err) != CU_OK) {
        cu_cli_error("%s", err);
        return CU_EXIT_FAIL;
    }
    struct cu_cli_ctx ctx = {.store = st};
    struct cu_audit_opts ao = cu_cli_audit_opts(cfg);
    struct first_key k = {.info = &info, .token = token};
    bool made = false;
    rc = cu_apikey_service_new(kr, &svc);
    k.svc = svc;
    if (rc == CU_OK)
        rc = cu_audit_new(kr, &ao, &ctx.audit);
    struct cu_committer_opts co = {.audit = cu_audit_sink(ctx.audit), .events = cu_events_sink()};
    if (rc == CU_OK)
        rc = cu_committer_new(st, &co, &ctx.committer);
    if (rc == CU_OK)
        rc = cu_cli_run(&ctx, "operator", first_key_apply, &k);
    if (rc == CU_OK)
        rc = cu_audit_checkpoint_make(ctx.audit, ctx.committer, true, &made, NULL);
    cu_committer_free(ctx.committer);
    cu_audit_free(ctx.audit);
    if (rc != CU_OK) {
        cu_cli_error("cannot make the first API key: %s", cu_err_str(rc));
        goto out;
    }
    code = write_secret_file(cfg, INITIAL_KEY_FILE, token, m, path, sizeof(path));
    if (code == CU_EXIT_OK)
        print_first_key(info.id, path, token);
out:
    cu_crypto_wipe(token, sizeof(token));
    cu_apikey_service_free(svc);
    cu_keyring_free(kr);
    return code;
}

/* The first staff member and their password, in one unit of work. */
struct first_staff {
    struct cu_identity *idn;
    struct cu_staff_info *info;
    struct cu_identity_password pw;
    char why[CU_IDENTITY_WHY_BYTES];
};

static enum cu_err first_staff_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct first_staff *f = arg;
    enum cu_err rc = cu_identity_staff_add(f->idn, db, INITIAL_ADMIN_EMAIL, "Initial administrator",
                                           cu_apikey_all_scopes(), f->info, f->why);
    if (rc == CU_OK)
        rc = cu_work_audit(w, "staff.create", f->info->id, "success",
                           json_pack("{s:s}", "scopes", "all"));
    if (rc == CU_OK) {
        snprintf(f->pw.id, sizeof(f->pw.id), "%s", f->info->id);
        rc = cu_identity_password_record(f->idn, w, db, &f->pw);
    }
    return rc;
}

/* Adds the first staff member, an administrator with every scope, in the caller's
 * services; *pw gets their random first password. */
static enum cu_err add_first_staff(struct cu_cli_ctx *ctx, struct cu_identity *idn,
                                   struct cu_staff_info *info, char pw[40])
{
    struct first_staff f = {.idn = idn, .info = info};
    uint8_t raw[18];
    enum cu_err rc;

    f.pw.kind = CU_SUBJECT_STAFF;
    cu_crypto_random(raw, sizeof(raw));
    rc = cu_b64url_encode(raw, sizeof(raw), pw, 40);
    cu_crypto_wipe(raw, sizeof(raw));
    if (rc == CU_OK)
        rc = cu_identity_password_prepare(idn, &f.pw, pw, strlen(pw), INITIAL_ADMIN_EMAIL, f.why);
    if (rc == CU_OK)
        rc = cu_cli_run(ctx, "operator", first_staff_apply, &f);
    cu_identity_password_clear(&f.pw);
    if (rc != CU_OK)
        cu_cli_error("cannot add the first administrator: %s", f.why[0] ? f.why : cu_err_str(rc));
    return rc;
}

/* The first staff member: an administrator with every scope, who signs in with the password
 * left in DIR/initial-admin-password and must enrol TOTP first. */
static int make_first_staff(const struct cu_config *cfg, struct cu_store *st, struct made *m)
{
    char kpath[CU_CONFIG_PATH_BYTES], path[CU_CONFIG_PATH_BYTES], list[CU_CONFIG_PATH_BYTES];
    char err[CU_KEYRING_ERR_BYTES], pw[40] = "";
    struct cu_identity_opts io = cu_cli_identity_opts(cfg, list);
    struct cu_audit_opts ao = cu_cli_audit_opts(cfg);
    struct cu_cli_ctx ctx = {.store = st};
    struct cu_kek_source *kek = NULL;
    struct cu_vault *vault = NULL;
    struct cu_identity *idn = NULL;
    struct cu_staff_info info;
    enum cu_aead alg = CU_AEAD_XCHACHA20POLY1305;
    int code = CU_EXIT_FAIL;
    enum cu_err rc = CU_OK;

    if (cu_config_path(cfg, cfg->keys.root_key_file, kpath, sizeof(kpath)) != CU_OK ||
        cu_keyring_load(kpath, &ctx.keyring, err) != CU_OK) {
        cu_cli_error("%s", err);
        return CU_EXIT_FAIL;
    }
    rc = cu_crypto_aead_parse(cfg->keys.algorithm, &alg);
    if (rc == CU_OK)
        rc = cu_audit_new(ctx.keyring, &ao, &ctx.audit);
    if (rc == CU_OK)
        rc = cu_kek_source_keyring(ctx.keyring, &kek);
    if (rc == CU_OK)
        rc = cu_vault_new(ctx.keyring, kek, alg, &vault);
    if (rc == CU_OK)
        rc = cu_identity_new(ctx.keyring, kek, alg, vault, &io, &idn);
    struct cu_committer_opts co = {.audit = cu_audit_sink(ctx.audit), .events = cu_events_sink()};
    if (rc == CU_OK)
        rc = cu_committer_new(st, &co, &ctx.committer);
    if (rc != CU_OK)
        cu_cli_error("the identity service could not start: %s (is %s readable?)", cu_err_str(rc),
                     list);
    else if (add_first_staff(&ctx, idn, &info, pw) == CU_OK)
        code = write_secret_file(cfg, INITIAL_ADMIN_FILE, pw, m, path, sizeof(path));
    if (code == CU_EXIT_OK)
        printf("\nThe first administrator (staff %s, every scope) signs in as\n  %s\n"
               "with the password in %s (mode 0600), then must enrol TOTP.\n",
               info.id, INITIAL_ADMIN_EMAIL, path);
    cu_crypto_wipe(pw, sizeof(pw));
    cu_committer_free(ctx.committer);
    cu_identity_free(idn);
    cu_vault_free(vault);
    cu_kek_source_free(kek);
    cu_audit_free(ctx.audit);
    cu_keyring_free(ctx.keyring);
    return code;
}

static void print_made(const struct cu_config *cfg, const char *dir)
{
    printf("custodia: made the data directory %s (mode 0700):\n"
           "  custodia.conf    configuration: every key, commented, with its default\n"
           "  %-16s root key file (0600): the key-encryption keys; back it up apart from the "
           "data\n"
           "  %-16s self-signed TLS certificate for localhost, 127.0.0.1 and ::1\n"
           "  %-16s its private key (0600)\n"
           "  %-16s the key that signs webhooks (0600), for the receiver too\n",
           dir, cfg->keys.root_key_file, cfg->server.tls_cert, cfg->server.tls_key,
           cfg->notify.webhook_secret_file);
    if (strcmp(cfg->store.backend, "sqlite") == 0)
        printf("  %-16s the database, migrated to the current schema\n", cfg->store.path);
    else
        printf("and migrated the PostgreSQL database [store] url names to the current schema\n");
}

static int usage(FILE *f)
{
    return cu_cli_usage(
        f, "usage: custodia init [--dir DIR] [--store postgres://...]\n"
           "Makes a new data directory (default $CUSTODIA_DIR or ./var). With --store, the data\n"
           "is kept in that PostgreSQL database, which must exist and be empty; the directory\n"
           "keeps the configuration, the keys and the certificate.\n");
}

/* parse(argc, argv, dir, store, help): init's options. */
static bool parse(int argc, char **argv, const char **dir, const char **store, bool *help)
{
    static const struct option opts[] = {{"dir", required_argument, NULL, 'd'},
                                         {"store", required_argument, NULL, 's'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    bool ok = true;
    int c;

    *dir = *store = NULL;
    *help = false;
    while (ok && !*help && (c = getopt_long(argc, argv, "d:s:h", opts, NULL)) != -1) {
        if (c == 'd')
            *dir = optarg;
        else if (c == 's')
            *store = optarg;
        else if (c == 'h')
            *help = true;
        else
            ok = false;
    }
    return ok && (*help || optind == argc);
}

/* make_policy(cfg, m): the access policy with the built-in roles alone. */
static int make_policy(const struct cu_config *cfg, struct made *m)
{
    char path[CU_CONFIG_PATH_BYTES];
    enum cu_err rc = cu_config_path(cfg, cfg->access.policy, path, sizeof(path));

    if (rc == CU_OK)
        rc = cu_access_policy_write_default(path);
    if (rc != CU_OK) {
        cu_cli_error("%s: cannot write the access policy: %s", path, cu_err_str(rc));
        return CU_EXIT_FAIL;
    }
    made_add(m, path);
    return CU_EXIT_OK;
}

int cu_cli_init(int argc, char **argv)
{
    char err[CU_CONFIG_ERR_BYTES], conf[CU_CONFIG_PATH_BYTES + 16];
    const char *dirflag = NULL, *storeflag = NULL;
    struct made m = {0};
    struct cu_config cfg;
    struct cu_store *st = NULL;
    bool help = false;
    int code;

    if (!parse(argc, argv, &dirflag, &storeflag, &help) || help)
        return usage(help ? stdout : stderr);
    if (storeflag && strncmp(storeflag, "postgres://", 11) != 0 &&
        strncmp(storeflag, "postgresql://", 13) != 0) {
        cu_cli_error("--store: a postgres:// or postgresql:// URL");
        return CU_EXIT_USAGE;
    }
    if (storeflag && !cu_store_has_backend("postgres")) {
        cu_cli_error("--store: this custodia is built without the PostgreSQL backend");
        return CU_EXIT_USAGE;
    }
    if (storeflag && strlen(storeflag) >= CU_CONFIG_PATH_BYTES) {
        cu_cli_error("--store: the URL is longer than %d bytes", CU_CONFIG_PATH_BYTES - 1);
        return CU_EXIT_USAGE;
    }
    m.dir = cu_cli_data_dir(dirflag);
    if (cu_crypto_init() != CU_OK) {
        cu_cli_error("the crypto library could not start");
        return CU_EXIT_FAIL;
    }
    code = prepare_dir(m.dir, &m);
    if (code != CU_EXIT_OK)
        return code;
    snprintf(conf, sizeof(conf), "%s/custodia.conf", m.dir);
    const struct cu_config_set sets[] = {{"store", "backend", "postgres"},
                                         {"store", "url", storeflag ? storeflag : ""}};
    if (cu_config_write_template_with(conf, sets, storeflag ? 2 : 0) != CU_OK) {
        cu_cli_error("%s: cannot write the configuration", conf);
        code = CU_EXIT_FAIL;
        goto out;
    }
    made_add(&m, conf);
    if (cu_config_load(&cfg, m.dir, err) != CU_OK) {
        cu_cli_error("%s", err);
        code = CU_EXIT_USAGE;
        goto out;
    }
    /* --store wins over CUSTODIA_STORE_* in the environment: the database made is the one
     * the configuration written names */
    if (storeflag) {
        snprintf(cfg.store.backend, sizeof(cfg.store.backend), "postgres");
        snprintf(cfg.store.url, sizeof(cfg.store.url), "%s", storeflag);
    }
    code = make_keys_and_cert(&cfg, &m);
    if (code == CU_EXIT_OK)
        code = make_webhook_key(&cfg, &m);
    if (code == CU_EXIT_OK)
        code = make_policy(&cfg, &m);
    if (code == CU_EXIT_OK)
        code = make_store(&cfg, &m, &st);
    if (code == CU_EXIT_OK) {
        print_made(&cfg, m.dir);
        code = make_first_key(&cfg, st, &m);
    }
    if (code == CU_EXIT_OK)
        code = make_first_staff(&cfg, st, &m);
    if (code == CU_EXIT_OK)
        printf("\nNext: custodia serve --dir %s\n", m.dir);
out:
    cu_store_close(st);
    if (code != CU_EXIT_OK)
        made_undo(&m);
    if (code != CU_EXIT_OK && m.server_db)
        cu_cli_error("the PostgreSQL database was migrated before the failure and keeps what init "
                     "wrote; empty it (drop its tables, or drop and make it again) before the "
                     "next init");
    return code;
}
