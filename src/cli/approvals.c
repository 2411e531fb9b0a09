/*
 * approvals.c - `custodia approvals list|show|reject`: the four-eyes requests from the shell
 * (docs/operations.md). Listing and showing read; `reject` is the operator's veto of a pending
 * request, audited as the operator's. Approving is not offered here: an approval must come from
 * a staff member signed in with a second factor (POST /v1/approvals/{id}/approve), which a
 * shell on the server is not.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access/approval.h"
#include "api/handlers.h"
#include "api/server.h"
#include "base/clock.h"
#include "base/json.h"
#include "base/log.h"
#include "base/mem.h"
#include "cli/cli.h"

static int usage(FILE *f)
{
    return cu_cli_usage(f, "usage: custodia approvals list [--status STATUS] [--dir DIR]\n"
                           "       custodia approvals show ID [--dir DIR]\n"
                           "       custodia approvals reject ID [--dir DIR]\n"
                           "list: the requests waiting for (or past) four-eyes approval, one a "
                           "line;\nshow: one request as JSON, with the action it would run;\n"
                           "reject: ends a pending request (the operator's veto; audited).\n"
                           "Approving needs a staff member signed in with a second factor: "
                           "POST /v1/approvals/ID/approve.\n"
                           "STATUS: pending, approved, executed, failed, rejected, cancelled, "
                           "expired.\n");
}

static int list(struct cu_cli_ctx *ctx, const char *status)
{
    enum cu_approval_status want = CU_APPROVAL_PENDING;
    char after[CU_APPROVAL_ID_BYTES] = "";
    struct cu_db *db = NULL;
    enum cu_err rc;
    size_t n = 0;

    if (status != NULL && !cu_approval_status_parse(status, &want)) {
        cu_cli_error("--status: not a status: %s", status);
        return usage(stderr);
    }
    rc = cu_store_acquire(ctx->store, &db);
    printf("%-21s %-9s %-22s %-6s %-28s %s\n", "ID", "STATUS", "PERMISSION", "METHOD", "PATH",
           "REQUESTER");
    do {
        struct cu_approval *items = NULL;
        if (rc == CU_OK)
            rc = cu_approval_list(db, status ? &want : NULL, after, 500, &items, &n);
        for (size_t i = 0; rc == CU_OK && i < n; i++) {
            printf("%-21s %-9s %-22s %-6s %-28s %s\n", items[i].id,
                   cu_approval_status_name(items[i].status), items[i].permission, items[i].method,
                   items[i].path, items[i].requester);
            snprintf(after, sizeof(after), "%s", items[i].id);
        }
        cu_free(items);
    } while (rc == CU_OK && n == 500);
    cu_store_release(db);
    if (rc != CU_OK) {
        cu_cli_error("cannot list the requests: %s", cu_err_str(rc));
        return CU_EXIT_FAIL;
    }
    return CU_EXIT_OK;
}

static int show(struct cu_cli_ctx *ctx, const char *id)
{
    struct cu_app *app = NULL;
    struct cu_approval a;
    struct cu_db *db = NULL;
    struct cu_buf payload;
    int code;
    enum cu_err rc;

    /* the answer is what it prints: not the service's start-up lines (its warnings stay) */
    if (ctx->cfg.log.level < CU_LOG_WARN)
        cu_log_set_level(CU_LOG_WARN);
    code = cu_cli_app_new(ctx, &app);
    if (code != CU_EXIT_OK)
        return code;
    cu_buf_init(&payload, CU_APPROVAL_PAYLOAD_MAX);
    rc = cu_store_acquire(ctx->store, &db);
    if (rc == CU_OK)
        rc = cu_approval_get(db, id, &a);
    json_t *v = rc == CU_OK ? cu_approval_json(&a) : NULL;
    if (rc == CU_OK) {
        enum cu_err prc = cu_approval_payload(app->approvals, db, id, &payload);
        json_t *act = prc == CU_OK ? json_loadb(payload.data, payload.len, 0, NULL) : NULL;
        json_object_del(act, "ip");
        json_object_set_new(v, "action", act ? act : json_null());
        if (prc != CU_OK && prc != CU_E_NOT_FOUND)
            rc = prc;
    }
    cu_store_release(db);
    cu_buf_free(&payload);
    if (rc == CU_OK) {
        char *text = json_dumps(v, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (text != NULL)
            printf("%s\n", text);
        else
            rc = CU_E_NOMEM;
        free(text);
    }
    json_decref(v);
    cu_cli_app_free(app);
    if (rc != CU_OK) {
        cu_cli_error("%s: %s", id,
                     rc == CU_E_NOT_FOUND ? "no request has this id" : cu_err_str(rc));
        return CU_EXIT_FAIL;
    }
    return CU_EXIT_OK;
}

struct veto {
    const char *id;
    struct cu_approval a;
};

static enum cu_err veto_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct veto *v = arg;
    char target[CU_APPROVAL_ID_BYTES + 10];
    enum cu_err rc = cu_approval_get(db, v->id, &v->a);

    if (rc == CU_OK)
        rc = cu_approval_set_status(db, v->id, CU_APPROVAL_PENDING, CU_APPROVAL_REJECTED,
                                    cu_clock_now_ms());
    if (rc == CU_OK)
        rc = cu_approval_close(db, v->id);
    snprintf(target, sizeof(target), "approval:%s", v->id);
    if (rc == CU_OK)
        rc = cu_work_audit(w, "approval.reject", target, "success",
                           json_pack("{s:s, s:s, s:s}", "permission", v->a.permission, "status",
                                     "rejected", "by", "operator"));
    return rc;
}

static int reject(struct cu_cli_ctx *ctx, const char *id)
{
    struct veto v = {.id = id};
    enum cu_err rc = cu_cli_run(ctx, "operator", veto_apply, &v);

    if (rc == CU_E_EXISTS) {
        cu_cli_error("%s is %s; only a pending request can be rejected", id,
                     cu_approval_status_name(v.a.status));
        return CU_EXIT_FAIL;
    }
    if (rc != CU_OK) {
        cu_cli_error("%s: %s", id,
                     rc == CU_E_NOT_FOUND ? "no request has this id" : cu_err_str(rc));
        return CU_EXIT_FAIL;
    }
    fprintf(stderr, "custodia: rejected %s (%s %s); it will never run\n", id, v.a.method, v.a.path);
    return CU_EXIT_OK;
}

int cu_cli_approvals(int argc, char **argv)
{
    static const struct option opts[] = {{"dir", required_argument, NULL, 'd'},
                                         {"status", required_argument, NULL, 's'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *verb = argc > 1 ? argv[1] : "", *dir = NULL, *status = NULL;
    struct cu_cli_ctx ctx;
    int c, code;

    if (strcmp(verb, "list") != 0 && strcmp(verb, "show") != 0 && strcmp(verb, "reject") != 0)
        return usage(cu_cli_is_help(verb) || cu_cli_asks_help(argc, argv) ? stdout : stderr);
    optind = 2;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h')
            return usage(stdout);
        if (c == 'd')
            dir = optarg;
        else if (c == 's' && strcmp(verb, "list") == 0)
            status = optarg;
        else
            return usage(stderr);
    }
    int rest = argc - optind;
    if ((strcmp(verb, "list") == 0 && rest != 0) || (strcmp(verb, "list") != 0 && rest != 1))
        return usage(stderr);
    code = cu_cli_open(cu_cli_data_dir(dir), &ctx, strcmp(verb, "reject") == 0);
    if (code != CU_EXIT_OK)
        return code;
    if (strcmp(verb, "list") == 0)
        code = list(&ctx, status);
    else if (strcmp(verb, "show") == 0)
        code = show(&ctx, argv[optind]);
    else
        code = reject(&ctx, argv[optind]);
    cu_cli_close(&ctx);
    return code;
}
