/*
 * notify.c - `custodia notify list|show|replay`: the notification outbox from the shell
 * (docs/notifications.md). list and show read; replay makes sent or dead notices due again
 * (the running server's worker sends them within a second), each audited as the operator's
 * notify.replay.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/mem.h"
#include "cli/cli.h"
#include "notify/outbox.h"

static int usage(FILE *f)
{
    return cu_cli_usage(
        f, "usage: custodia notify list [--status STATUS] [--customer ID] [--dir DIR]\n"
           "       custodia notify show ID [--dir DIR]\n"
           "       custodia notify replay ID... | --dead [--dir DIR]\n"
           "list: the notices of the outbox, newest first, one a line;\n"
           "show: one notice as JSON, with its last error;\n"
           "replay: sends sent or dead notices again (--dead: every dead one), "
           "with the same id;\n"
           "the server's worker delivers them. Audited.\n"
           "STATUS: pending, sending, sent, dead.\n");
}

static void when(int64_t ms, char out[CU_RFC3339_BYTES])
{
    if (ms > 0)
        cu_clock_format(ms, out);
    else
        snprintf(out, CU_RFC3339_BYTES, "-");
}

static int list(struct cu_cli_ctx *ctx, const char *status, const char *customer)
{
    char after[CU_OUTBOX_ID_BYTES] = "", t[CU_RFC3339_BYTES];
    struct cu_db *db = NULL;
    size_t n = 0;
    enum cu_err rc;

    if (status != NULL && !cu_outbox_status_known(status)) {
        cu_cli_error("--status: not a status: %s", status);
        return usage(stderr);
    }
    rc = cu_store_acquire(ctx->store, &db);
    printf("%-20s %-24s %-7s %-8s %-22s %-20s %3s %s\n", "ID", "CREATED", "CHANNEL", "STATUS",
           "TEMPLATE", "CUSTOMER", "TRY", "LAST ERROR");
    do {
        struct cu_outbox_item *items = NULL;
        if (rc == CU_OK)
            rc = cu_outbox_list(db, status, customer, after, CU_OUTBOX_LIST_MAX, &items, &n);
        for (size_t i = 0; rc == CU_OK && i < n; i++) {
            when(items[i].created_at, t);
            printf("%-20s %-24s %-7s %-8s %-22s %-20s %3lld %s\n", items[i].id, t, items[i].channel,
                   items[i].status, items[i].template_name,
                   items[i].customer[0] ? items[i].customer : "(staff)",
                   (long long)items[i].attempts, items[i].last_error);
            snprintf(after, sizeof(after), "%s", items[i].id);
        }
        cu_free(items);
    } while (rc == CU_OK && n == CU_OUTBOX_LIST_MAX);
    cu_store_release(db);
    if (rc != CU_OK) {
        cu_cli_error("cannot list the notices: %s", cu_err_str(rc));
        return CU_EXIT_FAIL;
    }
    return CU_EXIT_OK;
}

static int show(struct cu_cli_ctx *ctx, const char *id)
{
    struct cu_outbox_item it;
    struct cu_db *db = NULL;
    char c[CU_RFC3339_BYTES], nx[CU_RFC3339_BYTES], s[CU_RFC3339_BYTES];
    enum cu_err rc = cu_store_acquire(ctx->store, &db);

    if (rc == CU_OK)
        rc = cu_outbox_get(db, id, &it);
    cu_store_release(db);
    if (rc != CU_OK) {
        cu_cli_error("%s: %s", id, rc == CU_E_NOT_FOUND ? "no notice has this id" : cu_err_str(rc));
        return CU_EXIT_FAIL;
    }
    when(it.created_at, c);
    when(it.next_at, nx);
    when(it.sent_at, s);
    json_t *data = json_loads(it.data, 0, NULL);
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:s, s:s, s:s?, s:o?}", "id", it.id,
                          "created_at", c, "channel", it.channel, "status", it.status, "template",
                          it.template_name, "audience", it.customer[0] ? "customer" : "staff",
                          "attempts", (json_int_t)it.attempts, "next_at", nx, "sent_at", s,
                          "last_error", it.last_error[0] ? it.last_error : NULL, "data", data);
    if (j && it.customer[0])
        json_object_set_new(j, "customer", json_string(it.customer));
    char *text = j ? json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
    json_decref(j);
    if (!text) {
        cu_cli_error("out of memory");
        return CU_EXIT_FAIL;
    }
    printf("%s\n", text);
    free(text);
    return CU_EXIT_OK;
}

/* A replay: of the ids given, or of up to a batch of dead notices. */
#define REPLAY_BATCH 200

struct replay {
    const char *id; /* NULL: the dead ones */
    int64_t before; /* those dead at the command's start */
    size_t done;
    struct cu_outbox_item it;
    char ids[REPLAY_BATCH][CU_OUTBOX_ID_BYTES];
};

static enum cu_err replay_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct replay *r = arg;
    int64_t now = cu_work_context_of(w)->now_ms;
    char target[CU_OUTBOX_ID_BYTES + 16];
    enum cu_err rc;

    r->done = 0;
    if (r->id) {
        rc = cu_outbox_replay(db, r->id, now, &r->it);
        snprintf(target, sizeof(target), "notification:%s", r->id);
        if (rc == CU_OK)
            rc = cu_work_audit(w, "notify.replay", target, "success",
                               json_pack("{s:s, s:s, s:s, s:s}", "was", r->it.status, "channel",
                                         r->it.channel, "template", r->it.template_name, "by",
                                         "operator"));
        r->done = rc == CU_OK;
        return rc;
    }
    size_t n = 0;
    json_t *ids = json_array();
    rc = ids ? cu_outbox_replay_dead(db, now, r->before, REPLAY_BATCH, r->ids, &n) : CU_E_NOMEM;
    for (size_t i = 0; rc == CU_OK && i < n; i++)
        json_array_append_new(ids, json_string(r->ids[i]));
    r->done = rc == CU_OK ? n : 0;
    if (rc == CU_OK && n > 0)
        rc = cu_work_audit(
            w, "notify.replay", "", "success",
            json_pack("{s:s, s:O, s:s}", "was", "dead", "ids", ids, "by", "operator"));
    json_decref(ids);
    return rc;
}

static int replay(struct cu_cli_ctx *ctx, int n, char **ids, bool dead)
{
    int code = CU_EXIT_OK;

    if (dead) {
        size_t total = 0;
        struct replay *rp = cu_calloc(1, sizeof *rp);
        enum cu_err rc = rp ? CU_OK : CU_E_NOMEM;
        if (rp)
            rp->before = cu_clock_now_ms();
        while (rc == CU_OK) {
            rc = cu_cli_run(ctx, "operator", replay_apply, rp);
            total += rc == CU_OK ? rp->done : 0;
            if (rc != CU_OK || rp->done < REPLAY_BATCH)
                break;
        }
        cu_free(rp);
        if (rc != CU_OK) {
            cu_cli_error("cannot replay the dead notices: %s", cu_err_str(rc));
            code = CU_EXIT_FAIL;
        }
        fprintf(stderr, "custodia: %zu dead notice%s due again\n", total, total == 1 ? "" : "s");
        return code;
    }
    for (int i = 0; i < n; i++) {
        struct replay r;
        memset(&r, 0, sizeof r);
        r.id = ids[i];
        enum cu_err rc = cu_cli_run(ctx, "operator", replay_apply, &r);
        if (rc == CU_OK) {
            fprintf(stderr, "custodia: %s (%s, was %s) is due again\n", ids[i], r.it.channel,
                    r.it.status);
            continue;
        }
        code = CU_EXIT_FAIL;
        if (rc == CU_E_EXISTS)
            cu_cli_error("%s is %s: it is already on its way", ids[i], r.it.status);
        else
            cu_cli_error("%s: %s", ids[i],
                         rc == CU_E_NOT_FOUND ? "no notice has this id" : cu_err_str(rc));
    }
    return code;
}

int cu_cli_notify(int argc, char **argv)
{
    static const struct option opts[] = {
        {"dir", required_argument, NULL, 'd'},      {"status", required_argument, NULL, 's'},
        {"customer", required_argument, NULL, 'c'}, {"dead", no_argument, NULL, 'D'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0}};
    const char *verb = argc > 1 ? argv[1] : "", *dir = NULL, *status = NULL, *customer = NULL;
    bool dead = false, is_list = strcmp(verb, "list") == 0, is_replay = strcmp(verb, "replay") == 0;
    struct cu_cli_ctx ctx;
    int c, code;

    if (!is_list && !is_replay && strcmp(verb, "show") != 0)
        return usage(cu_cli_is_help(verb) || cu_cli_asks_help(argc, argv) ? stdout : stderr);
    optind = 2;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h')
            return usage(stdout);
        if (c == 'd')
            dir = optarg;
        else if (c == 's' && is_list)
            status = optarg;
        else if (c == 'c' && is_list)
            customer = optarg;
        else if (c == 'D' && is_replay)
            dead = true;
        else
            return usage(stderr);
    }
    int rest = argc - optind;
    if ((is_list && rest != 0) || (strcmp(verb, "show") == 0 && rest != 1) ||
        (is_replay && (dead ? rest != 0 : rest < 1)))
        return usage(stderr);
    for (int i = optind; i < argc; i++)
        if (strlen(argv[i]) >= CU_OUTBOX_ID_BYTES) {
            cu_cli_error("%.40s...: not a notice's id", argv[i]);
            return CU_EXIT_USAGE;
        }
    code = cu_cli_open(cu_cli_data_dir(dir), &ctx, is_replay);
    if (code != CU_EXIT_OK)
        return code;
    if (is_list)
        code = list(&ctx, status, customer);
    else if (is_replay)
        code = replay(&ctx, rest, argv + optind, dead);
    else
        code = show(&ctx, argv[optind]);
    cu_cli_close(&ctx);
    return code;
}
