/*
 * audit.c - `custodia audit verify|export|tail|hash|checkpoint`: the operator's and the
 * investigator's view of the audit log.
 *
 *   verify [--from SEQ]        walk the chain and checkpoints; exit 1 at the first break
 *   export [--since TIME] [--until TIME] [--format jsonl]  records as JSON lines, oldest
 *                              first: every record, or those from --since and before --until
 *   tail [-n N] [--follow]     the last N records, then new ones as they come
 *   hash --kind KIND VALUE     the keyed hash that stands for VALUE in records
 *   checkpoint                 sign a checkpoint of the log now
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "audit/checkpoint.h"
#include "base/clock.h"
#include "base/json.h"
#include "cli/cli.h"

struct args {
    const char *dir, *kind, *format, *kept;
    int64_t from, since, until;
    long count;
    bool follow, help;
};

static int usage(FILE *f)
{
    return cu_cli_usage(
        f,
        "usage: custodia audit verify [--from SEQ] [--checkpoint FILE] [--dir DIR]\n"
        "       custodia audit export [--since TIME] [--until TIME] [--format jsonl] [--dir DIR]\n"
        "       custodia audit tail [-n N] [--follow] [--dir DIR]\n"
        "       custodia audit hash --kind KIND VALUE [--dir DIR]\n"
        "       custodia audit checkpoint [--dir DIR]\n"
        "export writes every record unless --since (from TIME on) or --until (before TIME).\n"
        "TIME is RFC 3339, e.g. 2026-11-24T00:00:00Z. KIND names what VALUE is: email, ip, …\n"
        "--checkpoint FILE also checks the log against a signed checkpoint kept elsewhere.\n");
}

/* Prints verification progress on a terminal, overwriting one line. */
static void progress(void *ctx, int64_t done, int64_t total)
{
    (void)ctx;
    if (!isatty(2))
        return;
    fprintf(stderr, "\rverifying: %lld of %lld records (%lld%%)", (long long)done, (long long)total,
            total > 0 ? (long long)(done * 100 / total) : 100LL);
}

/* Reads and opens a checkpoint note kept outside the database. */
static int read_kept(struct cu_cli_ctx *ctx, const char *path, struct cu_audit_checkpoint *out)
{
    char text[CU_NOTE_BYTES];
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(text, 1, sizeof(text) - 1, f) : 0;
    bool more = f && fgetc(f) != EOF;
    if (f)
        fclose(f);
    if (f == NULL) {
        cu_cli_error("%s: cannot read the checkpoint", path);
        return CU_EXIT_USAGE;
    }
    text[n] = '\0';
    if (more || cu_audit_open_note(ctx->audit, text, n, out) != CU_OK) {
        cu_cli_error("%s: not a checkpoint signed by this audit log's key", path);
        return CU_EXIT_FAIL;
    }
    return CU_EXIT_OK;
}

static int verify(struct cu_cli_ctx *ctx, int64_t from, const char *kept_path)
{
    struct cu_audit_checkpoint kept;
    struct cu_audit_verify_report rep;
    struct cu_db *db = NULL;
    int code = kept_path ? read_kept(ctx, kept_path, &kept) : CU_EXIT_OK;
    enum cu_err rc = cu_store_db(ctx->store, &db);

    if (code != CU_EXIT_OK)
        return code;
    if (rc == CU_OK)
        rc = cu_audit_verify_against(ctx->audit, db, from, kept_path ? &kept : NULL, progress, NULL,
                                     &rep);
    if (isatty(2))
        fputc('\n', stderr);
    if (rc == CU_E_INVALID) {
        cu_cli_error("--from: the log has no record %lld", (long long)from);
        return CU_EXIT_USAGE;
    }
    if (rc != CU_OK) {
        cu_cli_error("cannot read the audit log: %s", cu_err_str(rc));
        return CU_EXIT_FAIL;
    }
    if (!rep.ok) {
        printf("audit log BROKEN at record %lld: %s\n", (long long)rep.bad_seq, rep.problem);
        printf("checked %lld records and %lld checkpoints before the break\n",
               (long long)rep.records, (long long)rep.checkpoints);
        return CU_EXIT_FAIL;
    }
    printf("audit log intact: %lld records and %lld checkpoints verified\n", (long long)rep.records,
           (long long)rep.checkpoints);
    return CU_EXIT_OK;
}

/* Prints records matching f (oldest first) as JSON lines; returns the last seq printed. */
static enum cu_err print_records(struct cu_db *db, struct cu_audit_filter *f, int64_t *last)
{
    enum cu_err rc = CU_OK;
    for (;;) {
        struct cu_audit_record *rs = NULL;
        size_t n = 0;
        rc = cu_audit_list(db, f, false, 1000, &rs, &n);
        for (size_t i = 0; rc == CU_OK && i < n; i++) {
            json_t *v = cu_audit_record_json(&rs[i]);
            char *text = v ? cu_json_dump(v) : NULL;
            json_decref(v);
            if (text == NULL) {
                rc = CU_E_NOMEM;
                break;
            }
            printf("%s\n", text);
            free(text);
            f->after = rs[i].seq;
            *last = rs[i].seq;
        }
        cu_audit_records_free(rs, n);
        if (rc != CU_OK || n < 1000)
            break;
    }
    fflush(stdout);
    return rc;
}

static int export_records(struct cu_cli_ctx *ctx, const struct args *a)
{
    struct cu_audit_filter f = {.since_ms = a->since, .until_ms = a->until};
    struct cu_db *db = NULL;
    int64_t last = 0;
    enum cu_err rc = cu_store_db(ctx->store, &db);

    if (rc == CU_OK)
        rc = print_records(db, &f, &last);
    if (rc != CU_OK) {
        cu_cli_error("cannot read the audit log: %s", cu_err_str(rc));
        return CU_EXIT_FAIL;
    }
    return CU_EXIT_OK;
}

static volatile sig_atomic_t stop_tail;

static void on_signal(int sig)
{
    (void)sig;
    stop_tail = 1;
}

static int tail(struct cu_cli_ctx *ctx, const struct args *a)
{
    uint8_t h[CU_MERKLE_HASH_BYTES];
    struct cu_audit_filter f = {0};
    struct cu_db *db = NULL;
    int64_t head = 0, last = 0;
    enum cu_err rc = cu_store_db(ctx->store, &db);

    if (rc == CU_OK)
        rc = cu_audit_head(db, &head, h);
    f.after = head > a->count ? head - a->count : 0;
    if (rc == CU_OK)
        rc = print_records(db, &f, &last);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    while (rc == CU_OK && a->follow && !stop_tail) {
        struct timespec ts = {0, 250L * 1000 * 1000};
        nanosleep(&ts, NULL);
        rc = print_records(db, &f, &last);
    }
    if (rc != CU_OK) {
        cu_cli_error("cannot read the audit log: %s", cu_err_str(rc));
        return CU_EXIT_FAIL;
    }
    return CU_EXIT_OK;
}

static int checkpoint(struct cu_cli_ctx *ctx)
{
    struct cu_audit_checkpoint cp;
    bool made = false;
    enum cu_err rc = cu_audit_checkpoint_make(ctx->audit, ctx->committer, true, &made, &cp);

    if (rc != CU_OK) {
        cu_cli_error("cannot make a checkpoint: %s", cu_err_str(rc));
        return CU_EXIT_FAIL;
    }
    if (!made) {
        printf("the latest checkpoint already covers every record\n");
        return CU_EXIT_OK;
    }
    fputs(cp.note, stdout);
    return CU_EXIT_OK;
}

static int parse_time(const char *opt, const char *v, int64_t *out)
{
    if (cu_clock_parse(v, out) != CU_OK) {
        cu_cli_error("%s: not an RFC 3339 time (e.g. 2026-11-24T00:00:00Z)", opt);
        return CU_EXIT_USAGE;
    }
    return CU_EXIT_OK;
}

static int parse(int argc, char **argv, struct args *a)
{
    static const struct option opts[] = {
        {"dir", required_argument, NULL, 'd'},        {"from", required_argument, NULL, 'f'},
        {"since", required_argument, NULL, 's'},      {"until", required_argument, NULL, 'u'},
        {"format", required_argument, NULL, 'F'},     {"kind", required_argument, NULL, 'k'},
        {"follow", no_argument, NULL, 'w'},           {"help", no_argument, NULL, 'h'},
        {"checkpoint", required_argument, NULL, 'c'}, {NULL, 0, NULL, 0}};
    int c, code = CU_EXIT_OK;
    char *end = NULL;

    while (code == CU_EXIT_OK && !a->help &&
           (c = getopt_long(argc, argv, "d:n:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            a->dir = optarg;
            break;
        case 'f':
            a->from = strtoll(optarg, &end, 10);
            if (end == optarg || *end != '\0' || a->from < 1) {
                cu_cli_error("--from: must be a sequence number, 1 or more");
                code = CU_EXIT_USAGE;
            }
            break;
        case 'n':
            a->count = strtol(optarg, &end, 10);
            if (end == optarg || *end != '\0' || a->count < 0 || a->count > 100000) {
                cu_cli_error("-n: must be a number from 0 to 100000");
                code = CU_EXIT_USAGE;
            }
            break;
        case 's':
            code = parse_time("--since", optarg, &a->since);
            break;
        case 'u':
            code = parse_time("--until", optarg, &a->until);
            break;
        case 'F':
            a->format = optarg;
            break;
        case 'k':
            a->kind = optarg;
            break;
        case 'w':
            a->follow = true;
            break;
        case 'c':
            a->kept = optarg;
            break;
        case 'h':
            a->help = true;
            break;
        default:
            code = usage(stderr);
        }
    }
    return code;
}

/* Checks what each verb needs before the data directory is opened. */
static int check_args(const char *verb, int rest, const struct args *a)
{
    if (a->format != NULL && strcmp(a->format, "jsonl") != 0) {
        cu_cli_error("--format: only jsonl is supported");
        return CU_EXIT_USAGE;
    }
    if (strcmp(verb, "hash") == 0 && (a->kind == NULL || rest != 1)) {
        cu_cli_error("audit hash needs --kind and one value");
        return usage(stderr);
    }
    if (strcmp(verb, "hash") != 0 && rest != 0)
        return usage(stderr);
    return CU_EXIT_OK;
}

int cu_cli_audit(int argc, char **argv)
{
    static const char *const verbs[] = {"verify", "export", "tail", "hash", "checkpoint"};
    struct args a = {.from = 1, .count = 20, .since = INT64_MIN}; /* export: every record */
    struct cu_cli_ctx ctx;
    const char *verb = argc > 1 ? argv[1] : "";
    bool known = false;
    int code;

    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
        known |= strcmp(verb, verbs[i]) == 0;
    if (!known)
        return usage(cu_cli_is_help(verb) || cu_cli_asks_help(argc, argv) ? stdout : stderr);
    code = parse(argc - 1, argv + 1, &a);
    if (code == CU_EXIT_OK && a.help)
        return usage(stdout);
    if (code == CU_EXIT_OK)
        code = check_args(verb, argc - 1 - optind, &a);
    if (code != CU_EXIT_OK)
        return code;
    code = cu_cli_open(cu_cli_data_dir(a.dir), &ctx, strcmp(verb, "checkpoint") == 0);
    if (code != CU_EXIT_OK)
        return code;
    if (strcmp(verb, "verify") == 0) {
        code = verify(&ctx, a.from, a.kept);
    } else if (strcmp(verb, "export") == 0) {
        code = export_records(&ctx, &a);
    } else if (strcmp(verb, "tail") == 0) {
        code = tail(&ctx, &a);
    } else if (strcmp(verb, "checkpoint") == 0) {
        code = checkpoint(&ctx);
    } else {
        char out[CU_AUDIT_HASHED_BYTES];
        if (cu_audit_hash_value(ctx.audit, a.kind, argv[1 + optind], out) == CU_OK) {
            printf("%s\n", out);
        } else {
            cu_cli_error("out of memory");
            code = CU_EXIT_FAIL;
        }
    }
    cu_cli_close(&ctx);
    return code;
}
