/*
 * apikey.c - `custodia apikey create|list|revoke`: API-key management from the shell, for
 * the operator who holds the data directory.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access/policy.h"
#include "base/clock.h"
#include "base/mem.h"
#include "cli/cli.h"
#include "crypto/crypto.h"
#include "identity/apikey.h"

#define MS_PER_DAY (86400LL * 1000)

static int usage(FILE *f)
{
    fputs("usage: custodia apikey create --name NAME (--scope SCOPE | --role ROLE)…\n"
          "                              [--network CIDR]… [--expires-in DAYS] [--dir DIR]\n"
          "       custodia apikey list [--dir DIR]\n"
          "       custodia apikey revoke ID [--dir DIR]\n"
          "ROLE: a role of the data directory's access policy (docs/access.md).\n"
          "CIDR: an address or block the key may be used from (at most 16; none: anywhere).\n"
          "SCOPE may also be a comma-separated list, or 'all'. Known scopes:",
          f);
    for (uint64_t bit = 1; bit <= cu_apikey_all_scopes(); bit <<= 1)
        fprintf(f, " %s", cu_apikey_scope_name(bit));
    fputc('\n', f);
    return cu_cli_usage(f, "");
}

/* Audits a change to a key in its unit of work: name and scopes, never the key. */
static enum cu_err audit_key(struct cu_work *w, const char *action, const struct cu_apikey_info *k)
{
    char target[CU_APIKEY_ID_BYTES + 8], scopes[512];
    snprintf(target, sizeof(target), "apikey:%s", k->id);
    if (cu_apikey_scopes_format(k->scopes, scopes, sizeof(scopes)) != CU_OK)
        scopes[0] = '\0';
    return cu_work_audit(w, action, target, "success",
                         json_pack("{s:s, s:s, s:s?, s:s?}", "name", k->name, "scopes", scopes,
                                   "roles", k->roles[0] ? k->roles : NULL, "networks",
                                   k->networks[0] ? k->networks : NULL));
}

/* A key made or revoked from the shell, in one unit of work. */
struct key_change {
    struct cu_apikey_service *svc;
    const char *name;
    const char *id;
    uint64_t scopes;
    const char *roles;
    const char *networks;
    int64_t expires;
    struct cu_apikey_info info;
    char token[CU_APIKEY_TOKEN_BYTES];
};

static enum cu_err create_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct key_change *k = arg;
    enum cu_err rc =
        cu_apikey_create(k->svc, db, k->name, k->scopes, k->expires, &k->info, k->token);
    if (rc == CU_OK && k->roles[0] != '\0')
        rc = cu_apikey_set_roles(db, k->info.id, k->roles);
    if (rc == CU_OK)
        snprintf(k->info.roles, sizeof(k->info.roles), "%s", k->roles);
    if (rc == CU_OK && k->networks[0] != '\0')
        rc = cu_apikey_set_networks(db, k->info.id, k->networks);
    if (rc == CU_OK)
        snprintf(k->info.networks, sizeof(k->info.networks), "%s", k->networks);
    return rc == CU_OK ? audit_key(w, "apikey.create", &k->info) : rc;
}

static int create(struct cu_cli_ctx *ctx, const char *name, uint64_t scopes, const char *roles,
                  const char *networks, long days)
{
    char scope_text[512];
    struct key_change k = {.name = name,
                           .scopes = scopes,
                           .roles = roles,
                           .networks = networks,
                           .expires = days > 0 ? cu_clock_now_ms() + days * MS_PER_DAY : 0};
    enum cu_err rc;

    if (!cu_cli_roles_known(ctx, roles))
        return CU_EXIT_USAGE;
    rc = cu_apikey_service_new(ctx->keyring, &k.svc);
    if (rc == CU_OK)
        rc = cu_cli_run(ctx, "operator", create_apply, &k);
    cu_apikey_service_free(k.svc);
    if (rc != CU_OK) {
        cu_crypto_wipe(k.token, sizeof(k.token));
        cu_cli_error("cannot make the key: %s", cu_err_str(rc));
        return CU_EXIT_FAIL;
    }
    if (cu_apikey_scopes_format(scopes, scope_text, sizeof(scope_text)) != CU_OK)
        scope_text[0] = '\0';
    fprintf(stderr, "custodia: made API key %s (%s) with scopes: %s%s%s\n", k.info.id, k.info.name,
            scope_text[0] ? scope_text : "(none)", roles[0] ? "; roles: " : "", roles);
    if (networks[0] != '\0')
        fprintf(stderr, "custodia: it may be used only from: %s\n", networks);
    fprintf(stderr, "custodia: the key is printed once, below; it cannot be shown again\n");
    printf("%s\n", k.token);
    cu_crypto_wipe(k.token, sizeof(k.token));
    return CU_EXIT_OK;
}

static int list(struct cu_cli_ctx *ctx)
{
    struct cu_apikey_info *items = NULL;
    struct cu_db *db = NULL;
    char after[CU_APIKEY_ID_BYTES] = "";
    size_t n = 0;
    enum cu_err rc = cu_store_acquire(ctx->store, &db);

    printf("%-20s %-24s %-8s %-25s %s\n", "ID", "CREATED", "STATE", "NAME", "SCOPES");
    do {
        rc = rc == CU_OK ? cu_apikey_list(db, after, 500, &items, &n) : rc;
        for (size_t i = 0; rc == CU_OK && i < n; i++) {
            char created[CU_RFC3339_BYTES], scopes[512];
            const struct cu_apikey_info *k = &items[i];
            bool expired = k->expires_at && k->expires_at <= cu_clock_now_ms();
            cu_clock_format(k->created_at, created);
            if (cu_apikey_scopes_format(k->scopes, scopes, sizeof(scopes)) != CU_OK)
                scopes[0] = '\0';
            printf("%-20s %-24s %-8s %-25s %s\n", k->id, created,
                   k->revoked_at ? "revoked"
                   : expired     ? "expired"
                                 : "active",
                   k->name, scopes);
            snprintf(after, sizeof(after), "%s", k->id);
        }
        cu_free(items);
        items = NULL;
    } while (rc == CU_OK && n == 500);
    cu_store_release(db);
    if (rc != CU_OK) {
        cu_cli_error("cannot list the keys: %s", cu_err_str(rc));
        return CU_EXIT_FAIL;
    }
    return CU_EXIT_OK;
}

static enum cu_err revoke_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct key_change *k = arg;
    enum cu_err rc = cu_apikey_revoke(db, k->id);
    if (rc == CU_OK)
        rc = cu_apikey_get(db, k->id, &k->info);
    return rc == CU_OK ? audit_key(w, "apikey.revoke", &k->info) : rc;
}

static int revoke(struct cu_cli_ctx *ctx, const char *id)
{
    struct key_change k = {.id = id};
    enum cu_err rc = cu_cli_run(ctx, "operator", revoke_apply, &k);

    if (rc == CU_E_NOT_FOUND) {
        cu_cli_error("no API key has the id '%.32s'", id);
        return CU_EXIT_FAIL;
    }
    if (rc != CU_OK) {
        cu_cli_error("cannot revoke the key: %s", cu_err_str(rc));
        return CU_EXIT_FAIL;
    }
    fprintf(stderr, "custodia: revoked API key %s\n", id);
    return CU_EXIT_OK;
}

struct args {
    const char *dir, *name;
    uint64_t scopes;
    char roles[CU_APIKEY_ROLES_BYTES];
    char networks[CU_APIKEY_NETWORKS_BYTES];
    size_t nnetworks;
    long days;
    bool help;
};

/* One --network: a valid block, appended to the list (one space between). */
static bool add_network(const char *text, struct args *a)
{
    struct cu_cidr c;
    const char *why = NULL;
    size_t used = strlen(a->networks);

    if (strlen(text) >= CU_CIDR_TEXT_MAX || cu_cidr_parse(text, strlen(text), &c, &why) != CU_OK) {
        cu_cli_error("--network: '%.60s' %s", text, why ? why : "is not an IPv4 or IPv6 address");
        return false;
    }
    if (a->nnetworks == CU_APIKEY_NETWORKS_MAX) {
        cu_cli_error("--network: at most %d", CU_APIKEY_NETWORKS_MAX);
        return false;
    }
    snprintf(a->networks + used, sizeof(a->networks) - used, "%s%s", used ? " " : "", text);
    a->nnetworks++;
    return true;
}

static int parse(int argc, char **argv, struct args *a)
{
    static const struct option opts[] = {
        {"dir", required_argument, NULL, 'd'},   {"name", required_argument, NULL, 'n'},
        {"scope", required_argument, NULL, 's'}, {"expires-in", required_argument, NULL, 'e'},
        {"role", required_argument, NULL, 'r'},  {"network", required_argument, NULL, 'w'},
        {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0}};
    int c;
    char *end;
    while (!a->help && (c = getopt_long(argc, argv, "d:n:s:e:r:w:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            a->dir = optarg;
            break;
        case 'n':
            a->name = optarg;
            break;
        case 's':
            if (!cu_cli_add_scopes(optarg, &a->scopes))
                return CU_EXIT_USAGE;
            break;
        case 'r':
            if (!cu_cli_add_role(optarg, a->roles, sizeof(a->roles)))
                return CU_EXIT_USAGE;
            break;
        case 'w':
            if (!add_network(optarg, a))
                return CU_EXIT_USAGE;
            break;
        case 'e':
            a->days = strtol(optarg, &end, 10);
            if (end == optarg || *end != '\0' || a->days < 1 || a->days > 3650) {
                cu_cli_error("--expires-in: must be a number of days from 1 to 3650");
                return CU_EXIT_USAGE;
            }
            break;
        case 'h':
            a->help = true;
            break;
        default:
            return usage(stderr);
        }
    }
    return CU_EXIT_OK;
}

int cu_cli_apikey(int argc, char **argv)
{
    struct args a = {0};
    struct cu_cli_ctx ctx;
    const char *verb = argc > 1 ? argv[1] : "";
    int code;

    if (strcmp(verb, "create") != 0 && strcmp(verb, "list") != 0 && strcmp(verb, "revoke") != 0)
        return usage(cu_cli_is_help(verb) || cu_cli_asks_help(argc, argv) ? stdout : stderr);
    code = parse(argc - 1, argv + 1, &a);
    if (code != CU_EXIT_OK || a.help)
        return a.help ? usage(stdout) : code;
    int rest = argc - 1 - optind;
    if (strcmp(verb, "create") == 0 &&
        (a.name == NULL || (a.scopes == 0 && a.roles[0] == '\0') || rest != 0)) {
        cu_cli_error("apikey create needs --name and at least one --scope or --role");
        return usage(stderr);
    }
    if (strcmp(verb, "create") == 0 && cu_apikey_check_name(a.name) != CU_OK) {
        cu_cli_error("--name: 1 to 64 letters, digits, spaces, '.', '-' or '_'");
        return CU_EXIT_USAGE;
    }
    if ((strcmp(verb, "list") == 0 && rest != 0) || (strcmp(verb, "revoke") == 0 && rest != 1))
        return usage(stderr);
    code = cu_cli_open(cu_cli_data_dir(a.dir), &ctx, true);
    if (code != CU_EXIT_OK)
        return code;
    if (strcmp(verb, "create") == 0)
        code = create(&ctx, a.name, a.scopes, a.roles, a.networks, a.days);
    else if (strcmp(verb, "list") == 0)
        code = list(&ctx);
    else
        code = revoke(&ctx, argv[1 + optind]);
    cu_cli_close(&ctx);
    return code;
}
