/*
 * cli.c - what the subcommands share: locating and opening a data directory.
 */
#include "cli/cli.h"
#include "identity/apikey.h"
#include "access/policy.h"
#include "identity/identity.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "monitor/events.h"
#include "base/log.h"
#include "crypto/crypto.h"

const char *cu_cli_data_dir(const char *flag)
{
    const char *env = getenv("CUSTODIA_DIR");
    if (flag != NULL && *flag)
        return flag;
    if (env != NULL && *env)
        return env;
    return CU_DEFAULT_DATA_DIR;
}

bool cu_cli_dir_only(int argc, char **argv, const char **dir, bool *help)
{
    static const struct option opts[] = {{"dir", required_argument, NULL, 'd'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    bool ok = true;
    int c;

    *dir = NULL;
    *help = false;
    while (ok && !*help && (c = getopt_long(argc, argv, "d:h", opts, NULL)) != -1) {
        if (c == 'd')
            *dir = optarg;
        else if (c == 'h')
            *help = true;
        else
            ok = false;
    }
    return ok && (*help || optind == argc);
}

bool cu_cli_is_help(const char *arg)
{
    return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0 || strcmp(arg, "help") == 0;
}

bool cu_cli_asks_help(int argc, char **argv)
{
    bool help = false;
    for (int i = 1; i < argc && !help && strcmp(argv[i], "--") != 0; i++)
        help = strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0;
    return help;
}

int cu_cli_usage(FILE *f, const char *text)
{
    fputs(text, f);
    return f == stdout ? CU_EXIT_OK : CU_EXIT_USAGE;
}

void cu_cli_error(const char *fmt, ...)
{
    va_list ap;
    fputs("custodia: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static int open_store(struct cu_cli_ctx *ctx, bool migrate)
{
    char path[CU_CONFIG_PATH_BYTES], err[CU_STORE_ERR_BYTES];
    struct cu_store_opts opts;

    if (cu_store_opts_of(&ctx->cfg, path, sizeof(path), &opts) != CU_OK) {
        cu_cli_error("[store] path: the path is too long");
        return CU_EXIT_USAGE;
    }
    if (cu_store_open(&opts, &ctx->store, err) != CU_OK) {
        cu_cli_error("%s", err);
        return CU_EXIT_FAIL;
    }
    /* Forensic commands read the database as it is: they check, but never migrate. */
    if ((migrate ? cu_store_migrate(ctx->store, err) : cu_store_check(ctx->store, err)) != CU_OK) {
        cu_cli_error("%s", err);
        return CU_EXIT_FAIL;
    }
    return CU_EXIT_OK;
}

/* Whether dir holds a configuration. A missing one most often means a data directory that was
 * never made, or the wrong one: say how to make it, or how to name another. */
static int check_data_dir(const char *dir)
{
    char conf[CU_CONFIG_PATH_BYTES + 16];
    struct stat st;
    int code = CU_EXIT_OK;
    int n = snprintf(conf, sizeof(conf), "%s/custodia.conf", dir);

    if (n < 0 || (size_t)n >= sizeof(conf))
        goto out; /* cu_config_load says the path is too long */
    if (stat(conf, &st) != 0 && (errno == ENOENT || errno == ENOTDIR)) {
        cu_cli_error("no data directory at %s (custodia.conf not found): run 'custodia init --dir "
                     "%s' first, or pass --dir / set CUSTODIA_DIR",
                     dir, dir);
        code = CU_EXIT_USAGE;
    }
out:
    return code;
}

int cu_cli_open(const char *dir, struct cu_cli_ctx *ctx, bool migrate)
{
    char cfg_err[CU_CONFIG_ERR_BYTES], key_err[CU_KEYRING_ERR_BYTES];
    char path[CU_CONFIG_PATH_BYTES];
    int code;

    memset(ctx, 0, sizeof(*ctx));
    code = check_data_dir(dir);
    if (code != CU_EXIT_OK)
        return code;
    if (cu_crypto_init() != CU_OK) {
        cu_cli_error("the crypto library could not start");
        return CU_EXIT_FAIL;
    }
    if (cu_config_load(&ctx->cfg, dir, cfg_err) != CU_OK) {
        cu_cli_error("%s", cfg_err);
        return CU_EXIT_USAGE;
    }
    cu_log_set_level(ctx->cfg.log.level);
    if (cu_config_path(&ctx->cfg, ctx->cfg.keys.root_key_file, path, sizeof(path)) != CU_OK) {
        cu_cli_error("[keys] root_key_file: the path is too long");
        return CU_EXIT_USAGE;
    }
    if (cu_keyring_load(path, &ctx->keyring, key_err) != CU_OK) {
        cu_cli_error("%s", key_err);
        return CU_EXIT_FAIL;
    }
    code = open_store(ctx, migrate);
    struct cu_audit_opts ao = cu_cli_audit_opts(&ctx->cfg);
    if (code == CU_EXIT_OK && cu_audit_new(ctx->keyring, &ao, &ctx->audit) != CU_OK) {
        cu_cli_error("[audit] origin: cannot start the audit log");
        code = CU_EXIT_FAIL;
    }
    /* A command that may write gets the group committer (the only writer); one that must not
     * write (the audit log's forensic commands) gets none. */
    struct cu_committer_opts co = {.audit = cu_audit_sink(ctx->audit), .events = cu_events_sink()};
    if (code == CU_EXIT_OK && migrate &&
        cu_committer_new(ctx->store, &co, &ctx->committer) != CU_OK) {
        cu_cli_error("the store's writer could not start");
        code = CU_EXIT_FAIL;
    }
    if (code != CU_EXIT_OK)
        cu_cli_close(ctx);
    return code;
}

struct cu_audit_opts cu_cli_audit_opts(const struct cu_config *cfg)
{
    struct cu_audit_opts o = {
        .origin = cfg->audit.origin,
        .hash_source_ip = cfg->audit.hash_source_ip,
        .checkpoint_records = cfg->audit.checkpoint_records,
        .checkpoint_seconds = cfg->audit.checkpoint_seconds,
    };
    return o;
}

/* The login name of whoever runs the command, for the audit record. */
static const char *operator_name(char *buf, size_t len)
{
    struct passwd pw, *res = NULL;
    char tmp[1024];
    if (getpwuid_r(geteuid(), &pw, tmp, sizeof(tmp), &res) == 0 && res != NULL)
        snprintf(buf, len, "%s", res->pw_name);
    else
        snprintf(buf, len, "uid:%u", (unsigned)geteuid());
    return buf;
}

enum cu_err cu_cli_run(struct cu_cli_ctx *ctx, const char *actor_type, cu_work_fn apply, void *arg)
{
    struct cu_work *w = NULL;
    enum cu_err rc = ctx->committer != NULL ? cu_work_new(NULL, &w) : CU_E_UNAVAILABLE;

    if (rc == CU_OK) {
        struct cu_work_ctx *wc = cu_work_context(w);
        snprintf(wc->actor_type, sizeof(wc->actor_type), "%s", actor_type);
        if (strcmp(actor_type, "operator") == 0)
            operator_name(wc->actor_id, sizeof(wc->actor_id));
        rc = cu_work_add(w, apply, arg);
    }
    if (rc == CU_OK)
        rc = cu_committer_run(ctx->committer, w);
    cu_work_free(w);
    return rc;
}

void cu_cli_close(struct cu_cli_ctx *ctx)
{
    cu_committer_free(ctx->committer); /* first: it writes with the store and the audit log */
    ctx->committer = NULL;
    cu_audit_free(ctx->audit);
    ctx->audit = NULL;
    cu_store_close(ctx->store);
    cu_keyring_free(ctx->keyring);
    ctx->store = NULL;
    ctx->keyring = NULL;
}

struct cu_identity_opts cu_cli_identity_opts(const struct cu_config *cfg,
                                             char path[CU_CONFIG_PATH_BYTES])
{
    const int64_t s = 1000, min = 60 * s;
    struct cu_identity_opts o = {
        .pwhash = {cfg->identity.password_time_cost,
                   (size_t)cfg->identity.password_memory_kib * 1024},
        .hash_concurrency = cfg->identity.password_hash_concurrency,
        .hash_wait_ms = cfg->identity.password_hash_wait_ms,
        .common_passwords = path,
        .totp_issuer = cfg->identity.totp_issuer,
        .customer_mfa_required = cfg->identity.customer_mfa_required,
        .session_idle_ms = (int64_t)cfg->identity.session_idle_minutes * min,
        .session_absolute_ms = (int64_t)cfg->identity.session_absolute_hours * 60 * min,
        .step_up_ms = (int64_t)cfg->identity.step_up_minutes * min,
        .challenge_ms = (int64_t)cfg->identity.mfa_challenge_seconds * s,
        .lockout_threshold = cfg->identity.lockout_threshold,
        .lockout_base_ms = (int64_t)cfg->identity.lockout_base_seconds * s,
        .lockout_max_ms = (int64_t)cfg->identity.lockout_max_seconds * s,
        .lockout_reset_ms = (int64_t)cfg->identity.lockout_reset_minutes * min,
    };
    /* cu_config_load has checked that the path fits. */
    if (cu_config_path(cfg, cfg->identity.common_passwords, path, CU_CONFIG_PATH_BYTES) != CU_OK)
        path[0] = '\0';
    return o;
}

bool cu_cli_add_role(const char *name, char *roles, size_t cap)
{
    size_t used = strlen(roles), n = strlen(name);
    char why[CU_IDENTITY_WHY_BYTES];

    if (n == 0 || n > 64 || used + n + 2 > cap) {
        cu_cli_error("--role: '%.64s' is not a role name, or there are too many", name);
        return false;
    }
    snprintf(roles + used, cap - used, "%s%s", used ? " " : "", name);
    if (cu_identity_roles_check(roles, why) != CU_OK) {
        cu_cli_error("--role: %s", why);
        return false;
    }
    return true;
}

bool cu_cli_roles_known(const struct cu_cli_ctx *ctx, const char *roles)
{
    struct cu_policy *p = NULL;
    struct cu_policy_error err;
    char msg[512], name[65], path[CU_CONFIG_PATH_BYTES];
    bool ok = true;

    if (roles[0] == '\0')
        return true;
    if (cu_config_path(&ctx->cfg, ctx->cfg.access.policy, path, sizeof(path)) != CU_OK) {
        cu_cli_error("[access] policy: the path is too long");
        return false;
    }
    if (cu_policy_load(path, &p, &err) != CU_OK) {
        cu_policy_error_format(&err, msg, sizeof(msg));
        cu_cli_error("the access policy cannot be read: %s", msg);
        return false;
    }
    for (const char *r = roles; ok && *r;) {
        size_t n = strcspn(r, " ");
        snprintf(name, sizeof(name), "%.*s", (int)(n < 64 ? n : 64), r);
        if (!cu_policy_has_role(p, name)) {
            cu_cli_error("--role: the access policy (%s) has no role '%s'", path, name);
            ok = false;
        }
        r += n;
        r += *r == ' ';
    }
    cu_policy_free(p);
    return ok;
}

bool cu_cli_add_scopes(const char *arg, uint64_t *scopes)
{
    if (strcmp(arg, "all") == 0) {
        *scopes = cu_apikey_all_scopes();
        return true;
    }
    while (*arg) {
        size_t len = strcspn(arg, ",");
        uint64_t bit = cu_apikey_scope_parse(arg, len);
        if (bit == 0) {
            cu_cli_error("unknown scope '%.*s'", (int)(len > 64 ? 64 : len), arg);
            return false;
        }
        *scopes |= bit;
        arg += len;
        arg += *arg == ',';
    }
    return true;
}
