/*
 * serve.c - `custodia serve [--dir DIR]`: opens the data directory and runs the HTTPS
 * server until SIGTERM or SIGINT.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "api/server.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"
#include "cli/cli.h"

static int usage(void)
{
    fputs("usage: custodia serve [--dir DIR]\n"
          "Serves the HTTPS API of the data directory DIR (default $CUSTODIA_DIR or ./var).\n",
          stderr);
    return CU_EXIT_USAGE;
}

static unsigned pool_size(const struct cu_config *cfg)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (cfg->server.threads > 0)
        return cfg->server.threads;
    return n > 0 && n <= 256 ? (unsigned)n : 1;
}

int cu_cli_serve(int argc, char **argv)
{
    static const struct option opts[] = {{"dir", required_argument, NULL, 'd'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *dirflag = NULL;
    struct cu_cli_ctx ctx;
    struct cu_app *app = NULL;
    int c, code;

    while ((c = getopt_long(argc, argv, "d:h", opts, NULL)) != -1) {
        if (c == 'd')
            dirflag = optarg;
        else
            return usage();
    }
    if (optind != argc)
        return usage();
    code = cu_cli_open(cu_cli_data_dir(dirflag), &ctx);
    if (code != CU_EXIT_OK)
        return code;
    cu_log(CU_LOG_INFO, "config.loaded", CU_LS("dir", ctx.cfg.data_dir),
           CU_LS("store", ctx.cfg.store.backend));
    app = cu_calloc(1, sizeof(*app));
    if (app == NULL || cu_apikey_service_new(ctx.keyring, &app->apikeys) != CU_OK) {
        cu_cli_error("out of memory");
        code = CU_EXIT_FAIL;
        goto out;
    }
    memcpy(&app->cfg, &ctx.cfg, sizeof(ctx.cfg));
    app->keyring = ctx.keyring;
    app->store = ctx.store;
    app->started_at_ms = cu_clock_now_ms();
    app->threads = pool_size(&ctx.cfg);
    code = cu_server_run(app) == CU_OK ? CU_EXIT_OK : CU_EXIT_FAIL;
out:
    if (app != NULL) {
        cu_apikey_service_free(app->apikeys);
        cu_metrics_free(app->metrics);
        cu_free(app);
    }
    cu_cli_close(&ctx);
    return code;
}
