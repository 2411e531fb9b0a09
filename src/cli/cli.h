/*
 * cli.h - the subcommands of the custodia binary and what they share: finding the data
 * directory, opening its configuration, keyring and store, and reporting errors.
 *
 * Exit codes: 0 success (and --help), 1 the operation failed, 2 bad usage or configuration.
 */
#ifndef CU_CLI_CLI_H
#define CU_CLI_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "audit/audit.h"
#include "base/config.h"
#include "base/err.h"
#include "crypto/keyring.h"
#include "identity/identity.h"
#include "store/store.h"
#include "store/work.h"

#define CU_EXIT_OK 0
#define CU_EXIT_FAIL 1
#define CU_EXIT_USAGE 2

/* The data directory when neither --dir nor CUSTODIA_DIR names one. */
#define CU_DEFAULT_DATA_DIR "var"

/* Subcommands: each takes the arguments after its name (argv[0] is the subcommand). */
int cu_cli_init(int argc, char **argv);
int cu_cli_serve(int argc, char **argv);
int cu_cli_apikey(int argc, char **argv);
int cu_cli_audit(int argc, char **argv);
int cu_cli_keys(int argc, char **argv);
int cu_cli_staff(int argc, char **argv);
int cu_cli_access(int argc, char **argv);
int cu_cli_approvals(int argc, char **argv);
int cu_cli_notify(int argc, char **argv);
int cu_cli_case(int argc, char **argv);
int cu_cli_playbooks(int argc, char **argv);
int cu_cli_drill(int argc, char **argv);
int cu_cli_store(int argc, char **argv);
int cu_cli_ledger(int argc, char **argv);
int cu_cli_rules(int argc, char **argv);

/* cu_cli_data_dir(flag): flag if given, else $CUSTODIA_DIR if set, else CU_DEFAULT_DATA_DIR. */
const char *cu_cli_data_dir(const char *flag);

/* cu_cli_dir_only(argc, argv, dir, help): parses the options of a subcommand that takes only
 * --dir DIR and --help (-h); *dir gets DIR or NULL, *help whether help was asked for (which
 * ends the parsing). false on anything else (print the usage on stderr). */
bool cu_cli_dir_only(int argc, char **argv, const char **dir, bool *help);

/* cu_cli_is_help(arg): whether arg, where a command or verb is expected, asks for help:
 * "--help", "-h" or "help". */
bool cu_cli_is_help(const char *arg);

/* cu_cli_asks_help(argc, argv): whether any of argv[1..argc-1] before a "--" is "--help" or
 * "-h", for a command whose verb is missing or unknown (`custodia keys --dir DIR --help`). */
bool cu_cli_asks_help(int argc, char **argv);

/* cu_cli_usage(f, text): prints a command's usage text on f: stdout when it was asked for
 * (--help), stderr on misuse. Returns the exit code: CU_EXIT_OK for stdout, else
 * CU_EXIT_USAGE. */
int cu_cli_usage(FILE *f, const char *text);

/* cu_cli_error(fmt, ...): prints "custodia: <message>" on stderr. */
void cu_cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* What a subcommand that works on an existing data directory opens. */
struct cu_cli_ctx {
    struct cu_config cfg;
    struct cu_keyring *keyring;
    struct cu_store *store;
    struct cu_audit *audit;
    struct cu_committer *committer; /* every write of the command (and of the server it runs) */
};

/* cu_cli_open(dir, ctx, migrate): loads dir's configuration, keyring, audit log and store:
 * migrated to the current schema when migrate, else only checked to be current (for commands
 * that must not write, such as the audit log's forensic ones). Prints a precise error and
 * returns CU_EXIT_USAGE or CU_EXIT_FAIL on failure, CU_EXIT_OK on success. Close with
 * cu_cli_close(). */
int cu_cli_open(const char *dir, struct cu_cli_ctx *ctx, bool migrate);

/* cu_cli_close(ctx): closes what cu_cli_open opened. */
void cu_cli_close(struct cu_cli_ctx *ctx);

struct cu_app;

/* cu_cli_app_new(ctx, out): the service over the data directory ctx opened: API keys, the KEK
 * source that follows the root key file, the vault and the sign-in service (what
 * cu_server_run serves). CU_EXIT_OK, or an exit code after saying why on stderr. Caller frees
 * *out with cu_cli_app_free() before closing ctx. */
int cu_cli_app_new(struct cu_cli_ctx *ctx, struct cu_app **out);

/* cu_cli_app_free(app): frees what cu_cli_app_new made and what cu_server_run added (metrics,
 * the failure limiter); NULL does nothing. */
void cu_cli_app_free(struct cu_app *app);

/* cu_cli_audit_opts(cfg): the audit options of a configuration (strings owned by cfg). */
struct cu_audit_opts cu_cli_audit_opts(const struct cu_config *cfg);

/* cu_cli_add_role(name, roles, cap): appends the role name given to --role to roles (names
 * and one space between, cap bytes); false (with an error printed) for a name that is not
 * one, a repeated one, or one too many. */
bool cu_cli_add_role(const char *name, char *roles, size_t cap);

struct cu_cli_ctx;

/* cu_cli_roles_known(ctx, roles): whether the data directory's access policy knows every role
 * of roles; false (with an error printed) otherwise, or when the policy cannot be read. */
bool cu_cli_roles_known(const struct cu_cli_ctx *ctx, const char *roles);

/* cu_cli_add_scopes(arg, scopes): adds the scopes named in arg ("a,b", or "all") to
 * *scopes; false (with an error printed) on an unknown one. */
bool cu_cli_add_scopes(const char *arg, uint64_t *scopes);

/* cu_cli_identity_opts(cfg, path): the identity service's options from a configuration
 * (strings owned by cfg, but the common-password list's path, resolved into path). */
struct cu_identity_opts cu_cli_identity_opts(const struct cu_config *cfg,
                                             char path[CU_CONFIG_PATH_BYTES]);

/* cu_cli_run(ctx, actor_type, apply, arg): runs apply as one unit of work through the
 * command's committer and waits until it is durable: actor_type "operator" (actor id the
 * login name of the user who runs the command) or "system"; apply audits with cu_work_audit.
 * The unit's outcome: CU_OK, apply's own error, or the store's or the audit log's. */
CU_WUR enum cu_err cu_cli_run(struct cu_cli_ctx *ctx, const char *actor_type, cu_work_fn apply,
                              void *arg);

#endif
