/*
 * rules.c - `custodia rules check FILE...`: compiles rule files offline (docs/rules.md) and
 * prints what each holds, or the first error of each as FILE:LINE:COLUMN: what was expected.
 * It reads no data directory.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "cli/cli.h"
#include "monitor/event.h"
#include "monitor/rules.h"

static int usage(FILE *f)
{
    return cu_cli_usage(f, "usage: custodia rules check [--types A,B...] FILE...\n"
                           "Compiles each rule file (docs/rules.md) and prints its rules, lists\n"
                           "and features, or its first error as FILE:LINE:COLUMN: message.\n"
                           "--types declares custom event types besides the built-in ones.\n"
                           "Exits 0 when every file compiles, else 1.\n");
}

/* read_file(path, out, len): the whole file, at most CU_RULES_FILE_MAX bytes. */
static int read_file(const char *path, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t n;

    if (!f) {
        cu_cli_error("%s: cannot open: %s", path, strerror(errno));
        return CU_EXIT_FAIL;
    }
    buf = cu_malloc((size_t)CU_RULES_FILE_MAX + 1);
    n = buf ? fread(buf, 1, (size_t)CU_RULES_FILE_MAX + 1, f) : 0;
    if (!buf || ferror(f)) {
        cu_cli_error("%s: cannot read", path);
        fclose(f);
        cu_free(buf);
        return CU_EXIT_FAIL;
    }
    fclose(f);
    if (n > (size_t)CU_RULES_FILE_MAX) {
        cu_cli_error("%s: longer than %d bytes", path, CU_RULES_FILE_MAX);
        cu_free(buf);
        return CU_EXIT_FAIL;
    }
    *out = buf;
    *len = n;
    return CU_EXIT_OK;
}

static int add_types(struct cu_mon_types *t, const char *list)
{
    char *copy = cu_strdup(list), *save = NULL;
    char err[CU_MON_ERR_BYTES];
    int code = CU_EXIT_OK;
    if (!copy)
        return CU_EXIT_FAIL;
    for (char *s = strtok_r(copy, ",", &save); s && code == CU_EXIT_OK;
         s = strtok_r(NULL, ",", &save))
        if (cu_mon_types_add(t, s, err) != CU_OK) {
            cu_cli_error("--types: %s", err);
            code = CU_EXIT_USAGE;
        }
    cu_free(copy);
    return code;
}

int cu_cli_rules(int argc, char **argv)
{
    struct cu_mon_types types;
    int code = CU_EXIT_OK, first = 2;

    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0 ||
            (i == 1 && strcmp(argv[i], "help") == 0))
            return usage(stdout);
    if (argc < 2 || strcmp(argv[1], "check") != 0)
        return usage(stderr);
    cu_mon_types_init(&types);
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--dir") == 0) { /* accepted as by every command; not read */
            if (i + 1 >= argc)
                return usage(stderr);
            argv[i] = argv[i + 1] = NULL;
            i++;
        }
    }
    for (; first < argc && (argv[first] == NULL || strncmp(argv[first], "--", 2) == 0);
         first++) {
        if (argv[first] == NULL)
            continue;
        if (strcmp(argv[first], "--types") != 0 || first + 1 >= argc)
            return usage(stderr);
        if ((code = add_types(&types, argv[first + 1])) != CU_EXIT_OK)
            return code;
        first++;
    }
    if (first >= argc)
        return usage(stderr);
    for (int i = first; i < argc; i++) {
        struct cu_ruleset *rs = NULL;
        const struct cu_feature *f = NULL;
        char err[CU_RULES_ERR_BYTES];
        char *text = NULL;
        size_t len = 0;
        if (argv[i] == NULL)
            continue;
        if (read_file(argv[i], &text, &len) != CU_EXIT_OK) {
            code = CU_EXIT_FAIL;
            continue;
        }
        if (cu_rules_compile(text, len, argv[i], &types, &rs, err) != CU_OK) {
            fprintf(stderr, "%s\n", err);
            code = CU_EXIT_FAIL;
        } else {
            size_t nf = cu_rules_features(rs, &f);
            printf("%s: ok: %zu rule%s reading %zu feature%s\n", argv[i], cu_rules_count(rs),
                   cu_rules_count(rs) == 1 ? "" : "s", nf, nf == 1 ? "" : "s");
            for (size_t r = 0; r < cu_rules_count(rs); r++)
                printf("  %s: %s\n", cu_rules_name(rs, r), cu_rules_reason(rs, r));
        }
        cu_rules_free(rs);
        cu_free(text);
    }
    return code;
}
