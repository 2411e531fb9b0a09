/*
 * staff.c - `custodia staff add|list|disable|unlock`: staff accounts from the shell, for the
 * operator who holds the data directory (the first administrator is made this way, or by
 * `custodia init`).
 *
 * `staff add` sets a first password: read from standard input with --password-stdin, or made
 * at random and printed once. The staff member signs in with it and must enrol TOTP before
 * anything else.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/mem.h"
#include "cli/cli.h"
#include "crypto/crypto.h"
#include "crypto/kek.h"
#include "identity/apikey.h"
#include "identity/identity.h"
#include "vault/vault.h"

static int usage(FILE *f)
{
    return cu_cli_usage(
        f, "usage: custodia staff add --email EMAIL --name NAME (--scope SCOPE | --role ROLE)…\n"
           "                          [--password-stdin] [--dir DIR]\n"
           "       custodia staff list [--dir DIR]\n"
           "       custodia staff disable ID [--dir DIR]\n"
           "       custodia staff unlock ID [--dir DIR]\n"
           "SCOPE may also be a comma-separated list, or 'all'; ROLE a role of the data\n"
           "directory's access policy (docs/access.md).\n");
}

/* The services a staff command needs, on top of the CLI context. */
struct services {
    struct cu_kek_source *kek;
    struct cu_vault *vault;
    struct cu_identity *idn;
};

static void services_close(struct services *s)
{
    cu_identity_free(s->idn);
    cu_vault_free(s->vault);
    cu_kek_source_free(s->kek);
}

static enum cu_err services_open(struct cu_cli_ctx *ctx, struct services *s)
{
    char list[CU_CONFIG_PATH_BYTES];
    struct cu_identity_opts io = cu_cli_identity_opts(&ctx->cfg, list);
    enum cu_aead alg = CU_AEAD_XCHACHA20POLY1305;
    enum cu_err rc = cu_crypto_aead_parse(ctx->cfg.keys.algorithm, &alg);

    memset(s, 0, sizeof(*s));
    if (rc == CU_OK)
        rc = cu_kek_source_keyring(ctx->keyring, &s->kek);
    if (rc == CU_OK)
        rc = cu_vault_new(ctx->keyring, s->kek, alg, &s->vault);
    if (rc == CU_OK)
        rc = cu_identity_new(ctx->keyring, s->kek, alg, s->vault, &io, &s->idn);
    if (rc != CU_OK) {
        cu_cli_error("the identity service could not start: %s (is %s readable?)", cu_err_str(rc),
                     list);
        services_close(s);
    }
    return rc;
}

/* A staff member added or changed from the shell, in one unit of work. */
struct staff_change {
    struct cu_identity *idn;
    const char *email, *name, *what, *id;
    uint64_t scopes;
    const char *roles; /* staff add: names and one space between, or "" */
    struct cu_staff_info info;
    struct cu_identity_password pw;
    char why[CU_IDENTITY_WHY_BYTES];
};

/* The account and its first password, together: a refused one leaves nothing. */
static enum cu_err add_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct staff_change *c = arg;
    enum cu_err rc =
        cu_identity_staff_add(c->idn, db, c->email, c->name, c->scopes, &c->info, c->why);
    if (rc == CU_OK && c->roles[0] != '\0') {
        struct cu_staff_access a;
        memset(&a, 0, sizeof(a));
        snprintf(a.roles, sizeof(a.roles), "%s", c->roles);
        rc = cu_identity_staff_set_access(c->idn, db, c->info.id, &a, c->why);
    }
    if (rc == CU_OK)
        rc = cu_work_audit(w, "staff.create", c->info.id, "success",
                           json_pack("{s:I, s:s?}", "scopes", (json_int_t)c->scopes, "roles",
                                     c->roles[0] ? c->roles : NULL));
    if (rc == CU_OK) {
        snprintf(c->pw.id, sizeof(c->pw.id), "%s", c->info.id);
        rc = cu_identity_password_record(c->idn, w, db, &c->pw);
    }
    return rc;
}

static enum cu_err change_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct staff_change *c = arg;
    enum cu_err rc;
    if (strcmp(c->what, "unlock") == 0)
        return cu_identity_lockout_clear(c->idn, w, db, CU_SUBJECT_STAFF, c->id);
    rc = cu_identity_staff_set(c->idn, db, c->id, 0, "disabled");
    if (rc == CU_OK)
        rc = cu_work_audit(w, "staff.update", c->id, "success",
                           json_pack("{s:s}", "status", "disabled"));
    return rc;
}

/* Reads one line (the password) from standard input, without its newline. */
static bool read_password(char *out, size_t cap)
{
    if (fgets(out, (int)cap, stdin) == NULL)
        return false;
    out[strcspn(out, "\r\n")] = '\0';
    return out[0] != '\0';
}

/* A random first password: 24 characters of base64url (144 bits). */
static void random_password(char out[40])
{
    uint8_t raw[18];
    cu_crypto_random(raw, sizeof(raw));
    if (cu_b64url_encode(raw, sizeof(raw), out, 40) != CU_OK)
        out[0] = '\0';
    cu_crypto_wipe(raw, sizeof(raw));
}

static int add(struct cu_cli_ctx *ctx, const char *email, const char *name, uint64_t scopes,
               const char *roles, bool from_stdin)
{
    char pw[1100];
    struct staff_change c = {.email = email, .name = name, .scopes = scopes, .roles = roles};
    struct services s;
    enum cu_err rc;

    if (!cu_cli_roles_known(ctx, roles))
        return CU_EXIT_USAGE;
    c.pw.kind = CU_SUBJECT_STAFF;
    if (from_stdin ? !read_password(pw, sizeof(pw)) : (random_password(pw), pw[0] == '\0')) {
        cu_cli_error("no password on standard input");
        return CU_EXIT_USAGE;
    }
    if (services_open(ctx, &s) != CU_OK)
        return CU_EXIT_FAIL;
    c.idn = s.idn;
    /* The password is checked and hashed before the account is made, which then gets it in
     * the same unit of work. */
    rc = cu_identity_password_prepare(s.idn, &c.pw, pw, strlen(pw), email, c.why);
    if (rc == CU_OK)
        rc = cu_cli_run(ctx, "operator", add_apply, &c);
    cu_identity_password_clear(&c.pw);
    services_close(&s);
    if (rc != CU_OK) {
        cu_crypto_wipe(pw, sizeof(pw));
        cu_cli_error("cannot add the staff member: %s", c.why[0] ? c.why : cu_err_str(rc));
        return rc == CU_E_INVALID || rc == CU_E_EXISTS ? CU_EXIT_USAGE : CU_EXIT_FAIL;
    }
    fprintf(stderr, "custodia: added staff member %s (%s); they must enrol TOTP at first sign-in\n",
            c.info.id, c.info.email);
    if (!from_stdin) {
        fprintf(stderr, "custodia: their first password is printed once, below\n");
        printf("%s\n", pw);
    } else {
        printf("%s\n", c.info.id);
    }
    cu_crypto_wipe(pw, sizeof(pw));
    cu_crypto_wipe(&c.info, sizeof(c.info));
    return CU_EXIT_OK;
}

static int list(struct cu_cli_ctx *ctx)
{
    struct cu_staff_info *items = NULL;
    struct services s;
    struct cu_db *db = NULL;
    char after[CU_SUBJECT_ID_BYTES] = "";
    size_t n = 0;
    enum cu_err rc = services_open(ctx, &s);

    if (rc != CU_OK)
        return CU_EXIT_FAIL;
    rc = cu_store_acquire(ctx->store, &db);
    printf("%-20s %-9s %-5s %-32s %s\n", "ID", "STATUS", "TOTP", "EMAIL", "NAME");
    do {
        rc = rc == CU_OK ? cu_identity_staff_list(s.idn, db, after, 500, &items, &n) : rc;
        for (size_t i = 0; rc == CU_OK && i < n; i++) {
            printf("%-20s %-9s %-5s %-32s %s\n", items[i].id, items[i].status,
                   items[i].totp_enabled ? "yes" : "no", items[i].email, items[i].name);
            snprintf(after, sizeof(after), "%s", items[i].id);
        }
        if (items != NULL)
            cu_crypto_wipe(items, n * sizeof(*items));
        cu_free(items);
        items = NULL;
    } while (rc == CU_OK && n == 500);
    cu_store_release(db);
    services_close(&s);
    if (rc != CU_OK) {
        cu_cli_error("cannot list staff: %s", cu_err_str(rc));
        return CU_EXIT_FAIL;
    }
    return CU_EXIT_OK;
}

static int change(struct cu_cli_ctx *ctx, const char *what, const char *id)
{
    struct staff_change c = {.what = what, .id = id};
    struct services s;
    enum cu_err rc = services_open(ctx, &s);

    if (rc != CU_OK)
        return CU_EXIT_FAIL;
    c.idn = s.idn;
    rc = cu_cli_run(ctx, "operator", change_apply, &c);
    services_close(&s);
    if (rc != CU_OK) {
        cu_cli_error("cannot %s %s: %s", what, id,
                     rc == CU_E_NOT_FOUND ? "no staff member has this id" : cu_err_str(rc));
        return rc == CU_E_NOT_FOUND ? CU_EXIT_USAGE : CU_EXIT_FAIL;
    }
    fprintf(stderr, "custodia: %s: done for %s\n", what, id);
    return CU_EXIT_OK;
}

int cu_cli_staff(int argc, char **argv)
{
    static const struct option opts[] = {
        {"email", required_argument, NULL, 'e'},    {"name", required_argument, NULL, 'n'},
        {"scope", required_argument, NULL, 's'},    {"role", required_argument, NULL, 'r'},
        {"password-stdin", no_argument, NULL, 'p'}, {"dir", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
    };
    const char *dir = NULL, *email = NULL, *name = NULL, *cmd = NULL, *id = NULL;
    uint64_t scopes = 0;
    char roles[CU_ROLES_BYTES] = "";
    bool from_stdin = false;
    struct cu_cli_ctx ctx;
    int c, code;

    if (argc < 2)
        return usage(stderr);
    cmd = argv[1];
    if (cu_cli_is_help(cmd))
        return usage(stdout);
    optind = 2;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h')
            return usage(stdout);
        else if (c == 'e')
            email = optarg;
        else if (c == 'n')
            name = optarg;
        else if ((c == 's' && !cu_cli_add_scopes(optarg, &scopes)) ||
                 (c == 'r' && !cu_cli_add_role(optarg, roles, sizeof(roles))))
            return CU_EXIT_USAGE;
        else if (c == 'p')
            from_stdin = true;
        else if (c == 'd')
            dir = optarg;
        else if (c != 's' && c != 'r')
            return usage(stderr);
    }
    if (optind < argc)
        id = argv[optind++];
    if (optind < argc)
        return usage(stderr);
    bool is_add = strcmp(cmd, "add") == 0, is_list = strcmp(cmd, "list") == 0;
    bool is_change = strcmp(cmd, "disable") == 0 || strcmp(cmd, "unlock") == 0;
    if ((is_add && (!email || !name || (!scopes && !roles[0]) || id)) || (is_list && id) ||
        (is_change && !id) || (!is_add && !is_list && !is_change))
        return usage(stderr);
    code = cu_cli_open(cu_cli_data_dir(dir), &ctx, true);
    if (code != CU_EXIT_OK)
        return code;
    code = is_add    ? add(&ctx, email, name, scopes, roles, from_stdin)
           : is_list ? list(&ctx)
                     : change(&ctx, cmd, id);
    cu_cli_close(&ctx);
    return code;
}
