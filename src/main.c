/*
 * main.c - the custodia binary: dispatches to a subcommand, and does nothing else.
 */
#include <stdio.h>
#include <string.h>

#include "base/json.h"
#include "cli/cli.h"
#include "cu_version.h"

static int usage(FILE *f)
{
    fputs("usage: custodia COMMAND [OPTIONS]\n"
          "\n"
          "Commands:\n"
          "  init     make a new data directory (keys, certificate, database, first API key and "
          "admin)\n"
          "  serve    serve the HTTPS API\n"
          "  apikey   create, list or revoke API keys\n"
          "  audit    verify, export, tail or checkpoint the audit log; hash a value\n"
          "  keys     key status, KEK rotation and retirement, one customer's DEK rotation\n"
          "  staff    add, list, disable or unlock staff accounts\n"
          "  access   check an access policy file, explain a decision\n"
          "  approvals list, show or reject four-eyes requests\n"
          "  ledger   check the ledger's invariants\n"
          "  rules    check monitoring rule files\n"
          "  notify   list, show or replay notifications\n"
          "  case     list, show, export and work incident cases\n"
          "  playbooks check a playbook file\n"
          "  drill    run an incident drill on a drill customer\n"
          "  store    copy an embedded installation into PostgreSQL\n"
          "  version  print the version\n"
          "\n"
          "Every command takes --dir DIR (default $CUSTODIA_DIR, else ./var) and --help;\n"
          "custodia help COMMAND is custodia COMMAND --help.\n",
          f);
    return f == stdout ? CU_EXIT_OK : CU_EXIT_USAGE;
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*run)(int argc, char **argv);
    } commands[] = {
        {"init", cu_cli_init},     {"serve", cu_cli_serve},         {"apikey", cu_cli_apikey},
        {"audit", cu_cli_audit},   {"keys", cu_cli_keys},           {"staff", cu_cli_staff},
        {"access", cu_cli_access}, {"approvals", cu_cli_approvals}, {"ledger", cu_cli_ledger},
        {"rules", cu_cli_rules},   {"store", cu_cli_store},         {"notify", cu_cli_notify},
        {"case", cu_cli_case},     {"playbooks", cu_cli_playbooks}, {"drill", cu_cli_drill},
    };
    /* `custodia help COMMAND` is `custodia COMMAND --help`. */
    char help_flag[] = "--help";
    char *help_argv[] = {argv[0], NULL, help_flag, NULL};
    int code = -1;

    cu_json_setup();
    if (argc < 2) {
        code = usage(stderr);
    } else if (cu_cli_is_help(argv[1]) && argc > 2) {
        help_argv[1] = argv[2];
        argc = 3;
        argv = help_argv;
    } else if (cu_cli_is_help(argv[1])) {
        code = usage(stdout);
    } else if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
        printf("custodia %s\n", CU_VERSION);
        code = CU_EXIT_OK;
    }
    for (size_t i = 0; code < 0 && i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(argv[1], commands[i].name) == 0)
            code = commands[i].run(argc - 1, argv + 1);
    }
    if (code < 0) {
        fprintf(stderr, "custodia: unknown command '%.64s'\n", argv[1]);
        code = usage(stderr);
    }
    return code;
}
