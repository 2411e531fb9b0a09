/*
 * serve.c - `custodia serve [--dir DIR]`: opens the data directory and runs the HTTPS
 * server until SIGTERM or SIGINT.
 */
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "api/server.h"
#include "audit/checkpoint.h"
#include "base/buf.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"
#include "cli/cli.h"
#include "crypto/crypto.h"
#include "cu_version.h"

static int usage(FILE *f)
{
    return cu_cli_usage(
        f, "usage: custodia serve [--dir DIR]\n"
           "Serves the HTTPS API of the data directory DIR (default $CUSTODIA_DIR or ./var)\n"
           "until SIGTERM or SIGINT.\n");
}

/* A system event's record (start, stop, configuration). */
struct system_record {
    const char *action;
    json_t *details;
};

static enum cu_err record_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct system_record *r = arg;
    (void)db;
    return cu_work_audit(w, r->action, "", "success", json_incref(r->details));
}

/* Records a system event in a unit of work of its own. Consumes details. */
static enum cu_err record(struct cu_cli_ctx *ctx, const char *action, json_t *details)
{
    struct system_record r = {action, details};
    enum cu_err rc = details != NULL ? cu_cli_run(ctx, "system", record_apply, &r) : CU_E_NOMEM;
    json_decref(details);
    return rc;
}

/* What the audit log keeps of the configuration loaded: where from, and a SHA-256 of the
 * file, so a change between two starts shows. */
static json_t *config_details(const struct cu_config *cfg)
{
    char path[CU_CONFIG_PATH_BYTES + 16], hex[2 * CU_HASH_BYTES + 1] = "";
    uint8_t digest[CU_HASH_BYTES];
    struct cu_buf b;
    char chunk[4096];
    FILE *f;

    snprintf(path, sizeof(path), "%s/custodia.conf", cfg->data_dir);
    cu_buf_init(&b, 1u << 20);
    f = fopen(path, "r");
    if (f != NULL) {
        size_t n;
        while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0 && cu_buf_append(&b, chunk, n) == CU_OK)
            ;
        fclose(f);
        cu_crypto_sha256(b.data ? b.data : "", b.len, digest);
        cu_hex_encode(digest, sizeof(digest), hex);
    }
    cu_buf_free(&b);
    /* The CUSTODIA_* variables that overrode the file: their names, never their values. */
    extern char **environ;
    json_t *overrides = json_array();
    for (char **e = environ; e != NULL && *e != NULL; e++) {
        size_t n = strcspn(*e, "=");
        if (strncmp(*e, "CUSTODIA_", 9) == 0 && strncmp(*e, "CUSTODIA_DIR=", 13) != 0 && n < 128)
            json_array_append_new(overrides, json_stringn(*e, n));
    }
    return json_pack("{s:s, s:s, s:o}", "file", path, "sha256", hex, "overridden_by", overrides);
}

static unsigned pool_size(const struct cu_config *cfg)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (cfg->server.threads > 0)
        return cfg->server.threads;
    return n > 0 && n <= 32 ? (unsigned)n * 8 : n > 32 ? 256 : 8;
}

/* cu_cli_app_new(ctx, out): the service over the data directory ctx opened: API keys, the KEK
 * source that follows the root key file, the vault and the sign-in service (what
 * cu_server_run serves). CU_EXIT_OK, or an exit code after saying why on stderr. Caller frees
 * *out with cu_cli_app_free() before closing ctx. */
int cu_cli_app_new(struct cu_cli_ctx *ctx, struct cu_app **out)
{
    struct cu_app *app;
    int code = CU_EXIT_OK;

    app = cu_calloc(1, sizeof(*app));
    *out = app;
    if (app == NULL || cu_apikey_service_new(ctx->keyring, &app->apikeys) != CU_OK) {
        cu_cli_error("out of memory");
        code = CU_EXIT_FAIL;
        goto out;
    }
    memcpy(&app->cfg, &ctx->cfg, sizeof(ctx->cfg));
    app->keyring = ctx->keyring;
    app->store = ctx->store;
    app->started_at_ms = cu_clock_now_ms();
    app->threads = pool_size(&ctx->cfg);
    app->audit = ctx->audit;
    enum cu_aead alg = CU_AEAD_XCHACHA20POLY1305;
    /* The KEKs follow the root key file, so that `keys rotate` and `keys retire` take effect
     * without a restart (docs/operations.md, "Keys"). */
    char key_path[CU_CONFIG_PATH_BYTES];
    if (cu_config_path(&ctx->cfg, ctx->cfg.keys.root_key_file, key_path, sizeof(key_path)) !=
        CU_OK) {
        cu_cli_error("[keys] root_key_file: the path is too long");
        code = CU_EXIT_USAGE;
        goto out;
    }
    if (cu_kek_source_keyring_file(ctx->keyring, key_path, CU_KEK_FILE_CHECK_MS, &app->kek) !=
        CU_OK) {
        cu_cli_error("out of memory");
        code = CU_EXIT_FAIL;
        goto out;
    }
    if (cu_crypto_aead_parse(ctx->cfg.keys.algorithm, &alg) != CU_OK ||
        !cu_crypto_aead_available(alg) ||
        cu_vault_new(ctx->keyring, app->kek, alg, &app->vault) != CU_OK) {
        cu_cli_error("[keys] algorithm: %s is not available on this CPU, or the vault could not "
                     "start",
                     ctx->cfg.keys.algorithm);
        code = CU_EXIT_FAIL;
        goto out;
    }
    char list[CU_CONFIG_PATH_BYTES];
    struct cu_identity_opts io = cu_cli_identity_opts(&ctx->cfg, list);
    io.audit = app->audit; /* keyed hashes of logins in its records */
    enum cu_err irc = cu_identity_new(ctx->keyring, app->kek, alg, app->vault, &io, &app->identity);
    if (irc != CU_OK) {
        cu_cli_error("[identity] the sign-in service could not start: %s (is the common-password "
                     "list %s readable? see [identity] common_passwords)",
                     cu_err_str(irc), list);
        code = CU_EXIT_FAIL;
        goto out;
    }
    app->committer = ctx->committer; /* the command's: one writer for the process */
    cu_log(CU_LOG_INFO, "identity.ready",
           CU_LI("password_hash_slots", cu_hasher_slots(cu_identity_hasher(app->identity))),
           CU_LI("password_memory_kib", ctx->cfg.identity.password_memory_kib));
out:
    if (code != CU_EXIT_OK) {
        cu_cli_app_free(app);
        *out = NULL;
    }
    return code;
}

void cu_cli_app_free(struct cu_app *app)
{
    if (app == NULL)
        return;
    /* The committer is the command's (cu_cli_close frees it); every unit of the server has
     * been answered once cu_server_run returns, so none still uses the services below. */
    cu_apikey_service_free(app->apikeys);
    cu_metrics_free(app->metrics);
    cu_limiter_free(app->auth_limiter);
    cu_identity_free(app->identity);
    cu_vault_free(app->vault);
    cu_kek_source_free(app->kek);
    cu_free(app);
}

int cu_cli_serve(int argc, char **argv)
{
    const char *dirflag = NULL;
    struct cu_cli_ctx ctx;
    struct cu_app *app = NULL;
    bool help = false;
    int code;

    if (!cu_cli_dir_only(argc, argv, &dirflag, &help) || help)
        return usage(help ? stdout : stderr);
    /* The stop signals (SIGTERM, SIGINT, SIGHUP, SIGQUIT) are blocked before any thread starts
     * (every thread inherits the mask) and stay blocked until the process ends: the server
     * takes the first with sigwait, and a second one, or ten, only stays pending while the
     * stop finishes, its audit record and final checkpoint included. SIGUSR1 and SIGUSR2,
     * which would end the process, are blocked and never acted on. */
    sigset_t stop;
    cu_server_stop_signals(&stop);
    sigaddset(&stop, SIGUSR1);
    sigaddset(&stop, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    /* A shell starts a background job with SIGINT and SIGQUIT ignored, and an ignored signal
     * is dropped rather than left for sigwait: each must stop the server, whoever started it. */
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    signal(SIGQUIT, SIG_DFL);
    /* No core dumps (request memory holds bearer tokens and personal data) and no tracing by
     * other processes of the same user. */
    (void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    code = cu_cli_open(cu_cli_data_dir(dirflag), &ctx, true);
    if (code != CU_EXIT_OK)
        return code;
    cu_log(CU_LOG_INFO, "config.loaded", CU_LS("dir", ctx.cfg.data_dir),
           CU_LS("store", ctx.cfg.store.backend));
    if (record(&ctx, "config.loaded", config_details(&ctx.cfg)) != CU_OK ||
        record(&ctx, "system.start", json_pack("{s:s}", "version", CU_VERSION)) != CU_OK) {
        cu_cli_error("the audit log cannot be written; not starting (fail closed)");
        code = CU_EXIT_FAIL;
        goto out;
    }
    code = cu_cli_app_new(&ctx, &app);
    if (code != CU_EXIT_OK)
        goto out;
    code = cu_server_run(app) == CU_OK ? CU_EXIT_OK : CU_EXIT_FAIL;
    if (record(&ctx, "system.stop", json_pack("{s:b}", "clean", code == CU_EXIT_OK)) != CU_OK)
        cu_log(CU_LOG_ERROR, "audit.unavailable", CU_LS("action", "system.stop"));
    bool made = false;
    if (cu_audit_checkpoint_make(ctx.audit, ctx.committer, true, &made, NULL) != CU_OK)
        cu_log(CU_LOG_ERROR, "audit.checkpoint_failed", CU_LS("when", "stop"));
out:
    cu_cli_app_free(app);
    cu_cli_close(&ctx);
    return code;
}
