/*
 * customers_routes.c - the customer routes: create, read (masked unless the key may unmask),
 * change, search by a blind-indexed field, list, and erase. Every change runs in the request's
 * unit of work and is audited there with the names of the fields it touched, never their
 * values; every read is audited, and an unmasked read names the fields it revealed. The answer
 * is sent only once the unit, with its records, is committed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/handlers.h"
#include "api/server.h"
#include "base/json.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/text.h"

static bool valid_customer_id(const char *id)
{
    if (strlen(id) != CU_CUSTOMER_ID_BYTES - 1 || strncmp(id, "cus_", 4) != 0)
        return false;
    for (const char *p = id + 4; *p; p++) {
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    }
    return true;
}

/* How the policy lets the request's principal read customers: allow, allow masked or deny
 * (the route's own decision when the route is a read). */
static enum cu_access_effect read_effect(struct cu_req *req)
{
    return req->route_permission == CU_SCOPE_CUSTOMERS_READ
               ? req->access
               : cu_req_may(req, CU_SCOPE_CUSTOMERS_READ);
}

static bool may_read(struct cu_req *req)
{
    enum cu_access_effect e = read_effect(req);
    return e == CU_ACCESS_ALLOW || e == CU_ACCESS_ALLOW_MASKED;
}

/* Unmasked only when reading is allowed without masking and unmasking is allowed: a read the
 * policy allows only masked stays masked whatever else the principal holds. */
static bool may_unmask(struct cu_req *req)
{
    return read_effect(req) == CU_ACCESS_ALLOW &&
           cu_req_may(req, CU_SCOPE_CUSTOMERS_UNMASK) == CU_ACCESS_ALLOW;
}

/* The target of a customer's audit records. */
struct target {
    char text[CU_CUSTOMER_ID_BYTES + 10];
};

static struct target target_of(const char *id)
{
    struct target t;
    memcpy(t.text, "customer:", 9);
    cu_text_copy(t.text + 9, sizeof(t.text) - 9, id, strnlen(id, CU_CUSTOMER_ID_BYTES - 1));
    return t;
}

/* field_names(cs, n, personal_only): the fields any of n customers holds (only the personal
 * ones when asked), in field order: "fields" of a creation, "revealed" of a search. */
static json_t *field_names(const struct cu_customer *cs, size_t n, bool personal_only)
{
    size_t nf = 0;
    const struct cu_field_def *fs = cu_fields(&nf);
    json_t *a = json_array();
    for (size_t i = 0; a != NULL && i < nf; i++) {
        bool held = false;
        for (size_t k = 0; k < n && !held; k++)
            held = (!personal_only || fs[i].personal) && cs[k].values[i] != NULL;
        if (held)
            json_array_append_new(a, json_string(fs[i].name));
    }
    return a;
}

/* The details of a read's audit record, as canonical JSON text (one key, names in field
 * order): {"revealed":[...]} for an unmasked read, {"masked":true} otherwise; NULL when
 * memory runs out (cu_req_audit_text then refuses). Written directly: every read makes one. */
static char *read_details(const struct cu_customer *c, bool unmask)
{
    size_t nf = 0;
    const struct cu_field_def *fs = cu_fields(&nf);
    struct cu_buf b;
    bool first = true;
    enum cu_err rc;

    cu_buf_init(&b, CU_AUDIT_DETAILS_MAX);
    if (!unmask)
        return cu_buf_append_str(&b, "{\"masked\":true}") == CU_OK ? cu_buf_steal(&b) : NULL;
    rc = cu_buf_append_str(&b, "{\"revealed\":[");
    for (size_t i = 0; rc == CU_OK && i < nf; i++) {
        if (c->values[i] == NULL || !fs[i].personal)
            continue;
        if (!first)
            rc = cu_buf_append(&b, ",", 1);
        if (rc == CU_OK)
            rc = cu_json_escape(&b, fs[i].name, strlen(fs[i].name));
        first = false;
    }
    if (rc == CU_OK)
        rc = cu_buf_append_str(&b, "]}");
    if (rc != CU_OK) {
        cu_buf_free(&b);
        return NULL;
    }
    return cu_buf_steal(&b);
}

/* Maps a vault error to the response: input problems name the field, stored-data problems
 * keep their stable type and say nothing more. */
static enum cu_err vault_fail(struct cu_resp *resp, enum cu_err rc, const char *why)
{
    if (rc == CU_E_INVALID || rc == CU_E_TOO_LARGE)
        return cu_resp_fail(resp, CU_E_INVALID, "%s", why);
    if (rc == CU_E_EXISTS)
        return cu_resp_fail(resp, rc, "%s", why);
    if (rc == CU_E_NOT_FOUND)
        return cu_resp_fail(resp, rc, "no customer has this id");
    if (rc == CU_E_CRYPTO || rc == CU_E_KEY_MISSING || rc == CU_E_CORRUPT)
        return cu_resp_fail(resp, rc, "the customer's stored data could not be opened");
    return cu_resp_fail(resp, rc, "the customer could not be processed");
}

/* A customer change, from the handler through its unit of work to its answer. */
struct change {
    struct cu_req *req;
    struct cu_resp *resp;
    json_t *body;
    struct cu_customer c;
    json_t *changed;
    char why[CU_VAULT_WHY_BYTES];
};

static void change_clear(void *p)
{
    struct change *j = p;
    json_decref(j->body);
    json_decref(j->changed);
    cu_customer_clear(&j->c);
}

/* change_new(req, resp, body): the change of req, reading its JSON body when body is true;
 * NULL with the problem set in resp. */
static struct change *change_new(struct cu_req *req, struct cu_resp *resp, bool body)
{
    struct change *j = cu_req_alloc(req, sizeof(*j), change_clear);

    if (j == NULL) {
        cu_resp_fail(resp, CU_E_NOMEM, "out of memory");
        return NULL;
    }
    memset(&j->c, 0, sizeof(j->c));
    j->req = req;
    j->resp = resp;
    if (body && cu_req_json(req, resp, &j->body) != CU_OK)
        return NULL;
    return j;
}

/* A change run again (the committer re-runs a unit that lost a race) starts afresh. */
static void change_reset(struct change *j)
{
    json_decref(j->changed);
    j->changed = NULL;
    cu_customer_clear(&j->c);
    j->why[0] = '\0';
}

/* The failure of a change's apply: busy is left to the committer's retry, the rest reported. */
static enum cu_err change_fail(struct change *j, enum cu_err rc)
{
    return rc == CU_E_BUSY ? rc : vault_fail(j->resp, rc, j->why);
}

/* Answers with one customer. */
static enum cu_err answer_customer(struct cu_resp *resp, int status, const struct cu_customer *c,
                                   bool unmask)
{
    struct cu_buf *b = cu_resp_json_begin(resp, status);
    return cu_resp_json_end(resp, cu_customer_write(c, unmask, b));
}

/* Answers with a page of customers: {"items": [...], "next_after": id or null}. */
static enum cu_err answer_list(struct cu_resp *resp, const struct cu_customer *cs, size_t n,
                               bool unmask, const char *next_after)
{
    struct cu_buf *b = cu_resp_json_begin(resp, 200);
    enum cu_err rc = cu_buf_append_str(b, "{\"items\":[");

    for (size_t i = 0; rc == CU_OK && i < n; i++) {
        if (i > 0)
            rc = cu_buf_append(b, ",", 1);
        if (rc == CU_OK)
            rc = cu_customer_write(&cs[i], unmask, b);
    }
    if (rc == CU_OK)
        rc = cu_buf_append_str(b, "],\"next_after\":");
    if (rc == CU_OK)
        rc = next_after ? cu_json_escape(b, next_after, strlen(next_after))
                        : cu_buf_append_str(b, "null");
    if (rc == CU_OK)
        rc = cu_buf_append(b, "}", 1);
    return cu_resp_json_end(resp, rc);
}

static enum cu_err create_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct change *j = arg;
    enum cu_err rc;

    change_reset(j);
    rc = cu_vault_create(j->req->app->vault, db, j->body, &j->c, j->why);
    if (rc == CU_OK)
        rc = cu_work_audit(w, "customer.create", target_of(j->c.id).text, "success",
                           json_pack("{s:o}", "fields", field_names(&j->c, 1, false)));
    return rc == CU_OK ? CU_OK : change_fail(j, rc);
}

static enum cu_err create_answer(struct cu_req *req, struct cu_resp *resp, void *arg)
{
    struct change *j = arg;
    return answer_customer(resp, 201, &j->c, may_unmask(req));
}

enum cu_err cu_handle_customers_create(struct cu_req *req, struct cu_resp *resp)
{
    struct change *j = change_new(req, resp, true);

    if (j == NULL)
        return resp->err;
    return cu_req_change(req, create_apply, create_answer, j);
}

enum cu_err cu_handle_customer_get(struct cu_req *req, struct cu_resp *resp)
{
    struct cu_customer c;
    struct cu_db *db = NULL;
    bool unmask = may_unmask(req);
    enum cu_err rc;

    if (!valid_customer_id(req->params[0]))
        return cu_resp_fail(resp, CU_E_INVALID, "the id must be cus_ and 16 hex digits");
    rc = cu_req_db(req, &db);
    if (rc == CU_OK)
        rc = cu_vault_get(req->app->vault, db, req->params[0], true, &c);
    if (rc != CU_OK)
        return vault_fail(resp, rc, "");
    /* The server sends this only once the read's audit record is committed. */
    rc = answer_customer(resp, 200, &c, unmask);
    if (rc == CU_OK)
        rc = cu_req_audit_text(req, "customer.read", target_of(c.id).text, "success",
                               read_details(&c, unmask));
    cu_customer_clear(&c);
    return rc;
}

/* A PATCH changes the customer and answers with what is stored now, which is a read: personal
 * fields only for a caller that may read them, masked unless it may unmask, and audited as GET
 * audits them, in the same unit of work as the change. */
static enum cu_err patch_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct change *j = arg;
    struct cu_req *req = j->req;
    bool unmask = may_read(req) && may_unmask(req);
    enum cu_err rc;

    change_reset(j);
    rc = cu_vault_patch(req->app->vault, db, req->params[0], j->body, &j->c, &j->changed, j->why);
    if (rc == CU_OK && json_array_size(j->changed) > 0)
        rc = cu_work_audit(w, "customer.update", target_of(j->c.id).text, "success",
                           json_pack("{s:O}", "changed", j->changed));
    if (rc == CU_OK && may_read(req)) {
        char *details = read_details(&j->c, unmask);
        rc = details != NULL ? cu_work_audit_text(w, "customer.read", target_of(j->c.id).text,
                                                  "success", details)
                             : CU_E_NOMEM;
    }
    return rc == CU_OK ? CU_OK : change_fail(j, rc);
}

static enum cu_err patch_answer(struct cu_req *req, struct cu_resp *resp, void *arg)
{
    struct change *j = arg;
    if (!may_read(req))
        cu_customer_drop_personal(&j->c);
    return answer_customer(resp, 200, &j->c, may_read(req) && may_unmask(req));
}

enum cu_err cu_handle_customer_patch(struct cu_req *req, struct cu_resp *resp)
{
    struct change *j;

    if (!valid_customer_id(req->params[0]))
        return cu_resp_fail(resp, CU_E_INVALID, "the id must be cus_ and 16 hex digits");
    j = change_new(req, resp, true);
    if (j == NULL)
        return resp->err;
    return cu_req_change(req, patch_apply, patch_answer, j);
}

/* A lookup finds at most this many customers (a blind index may repeat only for phone and
 * national id). */
#define SEARCH_MAX 10

/* GET /v1/customers?email=… (or phone, national_id, external_ref): exact lookup. */
static enum cu_err search(struct cu_req *req, struct cu_resp *resp, const char *field,
                          const char *value)
{
    char why[CU_VAULT_WHY_BYTES] = "", ids[SEARCH_MAX][CU_CUSTOMER_ID_BYTES];
    struct cu_customer cs[SEARCH_MAX];
    struct cu_db *db = NULL;
    size_t n = 0, got = 0;
    enum cu_err rc = cu_req_db(req, &db);

    if (rc == CU_OK)
        rc = cu_vault_find(req->app->vault, db, field, value, ids, SEARCH_MAX, &n, why);
    while (rc == CU_OK && got < n &&
           (rc = cu_vault_get(req->app->vault, db, ids[got], true, &cs[got])) == CU_OK)
        got++;
    if (rc != CU_OK) {
        for (size_t i = 0; i < got; i++)
            cu_customer_clear(&cs[i]);
        return vault_fail(resp, rc, why);
    }
    rc = answer_list(resp, cs, n, may_unmask(req), NULL);
    /* The record names every customer found and, when unmasked, the fields revealed; with one
     * customer found, it is that customer's record (target), as a GET's would be. */
    json_t *found = json_array(), *revealed = may_unmask(req) ? field_names(cs, n, true) : NULL;
    for (size_t i = 0; found != NULL && i < n; i++)
        json_array_append_new(found, json_string(cs[i].id));
    for (size_t i = 0; i < got; i++)
        cu_customer_clear(&cs[i]);
    if (rc == CU_OK)
        rc = cu_req_audit(req, "customer.search", n == 1 ? target_of(ids[0]).text : "", "success",
                          json_pack("{s:s, s:I, s:b, s:o, s:o*}", "by", field, "found",
                                    (json_int_t)n, "unmasked", may_unmask(req), "customers", found,
                                    "revealed", revealed));
    else {
        json_decref(found);
        json_decref(revealed);
    }
    return rc;
}

/* The fields a search may go by, in the order a refusal names them. */
static const char *const search_by[] = {"email", "phone", "national_id", "external_ref"};
#define SEARCH_BY (sizeof(search_by) / sizeof(search_by[0]))

/* lookup_field(req, resp, field, value): the one search field the query names (*field NULL
 * when it names none) and its value. CU_E_INVALID with the detail set when it names two or
 * more (they are named; a search goes by exactly one) or the one it names is empty. */
static enum cu_err lookup_field(struct cu_req *req, struct cu_resp *resp, const char **field,
                                const char **value)
{
    char names[sizeof("email, phone, national_id, external_ref")] = ""; /* all of them */
    size_t count = 0;

    *field = *value = NULL;
    for (size_t i = 0; i < SEARCH_BY; i++) {
        const char *v = cu_req_query(req, search_by[i]);
        size_t used = strlen(names);
        if (v == NULL)
            continue;
        snprintf(names + used, sizeof(names) - used, "%s%s", used ? ", " : "", search_by[i]);
        count++;
        *field = search_by[i];
        *value = v;
    }
    if (count > 1)
        return cu_resp_fail(resp, CU_E_INVALID,
                            "a search goes by exactly one of email, phone, national_id and "
                            "external_ref; this one names %zu: %s",
                            count, names);
    if (count == 1 && **value == '\0')
        return cu_resp_fail(resp, CU_E_INVALID, "query argument '%s' is empty", *field);
    return CU_OK;
}

enum cu_err cu_handle_customers_list(struct cu_req *req, struct cu_resp *resp)
{
    const char *after = NULL, *field = NULL, *value = NULL;
    struct cu_customer *cs = NULL;
    struct cu_db *db = NULL;
    size_t limit = 100;
    size_t n = 0;
    enum cu_err rc = lookup_field(req, resp, &field, &value);

    if (rc != CU_OK)
        return rc;
    if (field != NULL)
        return search(req, resp, field, value);
    rc = cu_req_page(req, resp, valid_customer_id, "a customer id", &after, &limit);
    if (rc != CU_OK)
        return rc;
    rc = cu_req_db(req, &db);
    if (rc == CU_OK)
        rc = cu_vault_list(req->app->vault, db, after, limit, &cs, &n);
    if (rc != CU_OK) {
        cu_customers_free(cs, n);
        return cu_resp_fail(resp, rc, "the customers could not be listed");
    }
    rc = answer_list(resp, cs, n, false, n == limit ? cs[n - 1].id : NULL);
    cu_customers_free(cs, n);
    if (rc == CU_OK)
        rc = cu_req_audit(req, "customer.list", "", "success",
                          json_pack("{s:I}", "count", (json_int_t)n));
    return rc;
}

/* After the erasure is durable, on the writer's connection: the store's purge, so that the
 * erased customer's old pages leave the write-ahead log; if a reader holds the log, the server
 * retries until a purge succeeds (/v1/health says "erasure_purge":"pending" meanwhile). */
static void erase_purge(void *arg, struct cu_db *db)
{
    struct change *j = arg;
    if (cu_db_purge(db) == CU_OK)
        return;
    cu_app_purge_deferred(j->req->app);
    cu_log(CU_LOG_WARN, "vault.purge_deferred", CU_LS("customer", j->req->params[0]));
}

/* An erasure destroys the customer's key and data and what sign-in keeps of them, and reads
 * back what is left (the erased record), in one unit of work. */
static enum cu_err erase_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct change *j = arg;
    struct cu_req *req = j->req;
    const char *id = req->params[0];
    enum cu_err rc;

    change_reset(j);
    rc = cu_vault_erase(req->app->vault, db, id, req->principal.id);
    if (rc == CU_OK)
        rc = cu_identity_forget(db, CU_SUBJECT_CUSTOMER, id);
    if (rc == CU_OK)
        rc = cu_work_audit(w, "customer.erase", target_of(id).text, "success", NULL);
    if (rc == CU_OK)
        rc = cu_vault_get(req->app->vault, db, id, false, &j->c);
    if (rc == CU_OK)
        rc = cu_work_after(w, erase_purge, j);
    return rc == CU_OK ? CU_OK : change_fail(j, rc);
}

static enum cu_err erase_answer(struct cu_req *req, struct cu_resp *resp, void *arg)
{
    struct change *j = arg;
    (void)req;
    return answer_customer(resp, 200, &j->c, false);
}

enum cu_err cu_handle_customer_erase(struct cu_req *req, struct cu_resp *resp)
{
    struct change *j;

    if (!valid_customer_id(req->params[0]))
        return cu_resp_fail(resp, CU_E_INVALID, "the id must be cus_ and 16 hex digits");
    j = change_new(req, resp, false);
    if (j == NULL)
        return resp->err;
    return cu_req_change(req, erase_apply, erase_answer, j);
}
