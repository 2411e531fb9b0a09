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
#include "monitor/monitor.h"
#include "notify/notify.h"
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

/* cu_cli_app_new(ctx, out): the service over the data directory ctx opened (cu_app_new), with
 * the command's committer. CU_EXIT_OK, or an exit code after saying why on stderr. Caller
 * frees *out with cu_cli_app_free() before closing ctx. */
int cu_cli_app_new(struct cu_cli_ctx *ctx, struct cu_app **out)
{
    char list[CU_CONFIG_PATH_BYTES], why[CU_APP_WHY_BYTES];
    struct cu_identity_opts io = cu_cli_identity_opts(&ctx->cfg, list);
    struct cu_app_parts parts = {&ctx->cfg,  ctx->keyring,   ctx->store,
                                 ctx->audit, ctx->committer, &io};
    enum cu_err rc = cu_app_new(&parts, out, why);

    if (rc == CU_OK)
        return CU_EXIT_OK;
    cu_cli_error("%s", why);
    return rc == CU_E_CONFIG ? CU_EXIT_USAGE : CU_EXIT_FAIL;
}

void cu_cli_app_free(struct cu_app *app)
{
    cu_app_free(app);
}

/* monitor_rebuild(app): the monitoring state rebuilt from the stored events before the server
 * takes a request. A store that cannot be read stops the start: deciding with empty windows
 * would let through what the rules were written to stop. */
static int monitor_rebuild(struct cu_app *app)
{
    struct cu_monitor_rebuilt r;
    struct cu_db *db = NULL;
    enum cu_err rc = cu_store_acquire(app->store, &db);

    if (rc == CU_OK)
        rc = cu_monitor_rebuild(app->monitor, db, cu_clock_now_ms(), &r);
    cu_store_release(db);
    if (rc != CU_OK) {
        cu_cli_error("the monitoring state could not be rebuilt from the stored events: %s; not "
                     "starting",
                     cu_err_str(rc));
        return CU_EXIT_FAIL;
    }
    cu_log(CU_LOG_INFO, "monitor.rebuilt", CU_LI("events", (long long)r.events),
           CU_LI("skipped", (long long)r.skipped), CU_LI("unrecorded", (long long)r.unrecorded),
           CU_LI("ms", (long long)r.took_ms));
    return CU_EXIT_OK;
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
    if ((code = monitor_rebuild(app)) != CU_EXIT_OK)
        goto out;
    /* On PostgreSQL other nodes may share the database: their events feed this state too. */
    struct cu_monitor_tailer *tailer = NULL;
    if (strcmp(cu_store_backend(ctx.store), "sqlite") != 0 &&
        cu_monitor_tail_start(app->monitor, ctx.store, ctx.committer, &tailer) != CU_OK) {
        cu_cli_error("the monitoring tail could not start; not starting");
        code = CU_EXIT_FAIL;
        goto out;
    }
    if (cu_notify_start(app->notify, ctx.store, ctx.committer) != CU_OK) {
        cu_monitor_tail_stop(tailer);
        cu_cli_error("the notification worker could not start; not starting");
        code = CU_EXIT_FAIL;
        goto out;
    }
    code = cu_server_run(app) == CU_OK ? CU_EXIT_OK : CU_EXIT_FAIL;
    cu_notify_stop(app->notify);
    cu_monitor_tail_stop(tailer);
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
