/*
 * ledger_routes.c - the ledger's routes (docs/api.md, "Accounts and transfers"): accounts of
 * a customer, deposits, withdrawals, transfers, two-phase posts and voids, reversals, freezes,
 * closes, entries, look-ups by external reference and the change stream.
 *
 * Every movement takes an Idempotency-Key: the key, the route and a digest of the body are
 * kept with the answer in the movement's own unit of work, so that a retry with the same key
 * and body gets the first answer again (Idempotent-Replayed: true) and one with another body
 * a 409 naming the fields that differ. A refused movement (insufficient funds …) is answered
 * and kept the same way, with its audit record: the refusal is its result.
 */
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "api/gate.h"
#include "api/handlers.h"
#include "api/http.h"
#include "api/server.h"
#include "base/clock.h"
#include "base/json.h"
#include "base/mem.h"
#include "ledger/ledger.h"

#define IDEM_KEY_MAX 64
#define CHANGES_WAIT_MAX_S 30
/* Long polls that may wait at once: each holds a request thread while it waits, so a few
 * must not take the server's threads; the others answer at once. */
#define CHANGES_WAITERS_MAX 4

/* ---- JSON of accounts and transfers ---- */

static json_t *time_or_null(int64_t ms)
{
    char t[CU_RFC3339_BYTES];
    if (ms == 0)
        return json_null();
    cu_clock_format(ms, t);
    return json_string(t);
}

static json_t *balance_json(const struct cu_ledger_account *a)
{
    struct cu_ledger_balance b = {0, 0, 0};
    if (cu_ledger_balance_of(a, &b) != CU_OK) /* stored totals beyond 64 bits: the check says */
        memset(&b, 0, sizeof(b));
    return json_pack("{s:I, s:I, s:o}", "posted", (json_int_t)b.posted, "pending",
                     (json_int_t)b.pending, "available",
                     b.available == INT64_MAX ? json_null() : json_integer(b.available));
}

/* staff: whether the principal may see staff's text (a freeze's reason) */
static json_t *account_json(const struct cu_ledger_account *a, bool staff)
{
    json_t *freeze = a->status == CU_LEDGER_FROZEN
                         ? json_pack("{s:s?, s:o}", "reason", staff ? a->freeze_reason : NULL,
                                     "until", time_or_null(a->frozen_until))
                         : json_null();
    return json_pack(
        "{s:s, s:s?, s:s, s:s, s:s, s:o, s:o, s:{s:o, s:o}, s:o, s:o, s:o}", "id", a->id,
        "customer", a->customer[0] ? a->customer : NULL, "purpose", a->purpose, "currency",
        a->currency, "status", cu_ledger_status_name(a->status), "balance", balance_json(a),
        "overdraft", a->overdraft < 0 ? json_null() : json_integer(a->overdraft), "limits",
        "per_transfer", a->limit_per_transfer ? json_integer(a->limit_per_transfer) : json_null(),
        "daily", a->limit_daily ? json_integer(a->limit_daily) : json_null(), "freeze", freeze,
        "created_at", time_or_null(a->created_at), "closed_at", time_or_null(a->closed_at));
}

/* staff: whether the principal may see monitoring's reasons (not a customer: they would tell
 * a fraudster which rule caught them) */
static json_t *transfer_json(const struct cu_ledger_transfer *t, bool staff)
{
    json_t *meta = t->metadata ? json_loads(t->metadata, 0, NULL) : NULL;
    json_t *v = json_pack(
        "{s:s, s:I, s:s, s:s, s:s, s:s, s:I, s:s, s:s, s:s?, s:o, s:b, s:s?, s:b, s:s?, s:s, "
        "s:o}",
        "id", t->id, "seq", (json_int_t)t->seq, "movement", t->movement, "kind",
        cu_ledger_kind_name(t->kind), "debit_account", t->debit, "credit_account", t->credit,
        "amount", (json_int_t)t->amount, "currency", t->currency, "code", t->code, "external_ref",
        t->external_ref[0] ? t->external_ref : NULL, "metadata", meta ? meta : json_null(),
        "pending", t->pending, "parent", t->parent[0] ? t->parent : NULL, "held", t->hold,
        "reasons", t->reasons[0] ? t->reasons : NULL, "channel", t->channel, "created_at",
        time_or_null(t->at));
    if (v != NULL && t->state[0] != '\0')
        json_object_set_new(v, "pending_state",
                            json_pack("{s:s, s:I, s:o}", "status", t->state, "reserved",
                                      (json_int_t)t->reserved, "expires_at",
                                      time_or_null(t->expires_at)));
    return v;
}

/* The problem types of the ledger's refusals, as static strings (a stored one is matched). */
static const char *const stable_types[] = {
    "invalid_transfer", "currency_mismatch",      "linked_chain_open",      "unknown_account",
    "unknown_transfer", "account_closed",         "account_frozen",         "insufficient_funds",
    "limit_exceeded",   "balance_overflow",       "transfer_not_pending",   "transfer_posted",
    "transfer_voided",  "transfer_expired",       "amount_exceeds_pending", "not_reversible",
    "already_reversed", "linked_transfer_failed", "transfer_held",          "transfer_denied",
    "step_up_required", "idempotency_key_reused",
};

static const char *stable_type(const char *s)
{
    for (size_t i = 0; s != NULL && i < sizeof(stable_types) / sizeof(stable_types[0]); i++)
        if (strcmp(s, stable_types[i]) == 0)
            return stable_types[i];
    return NULL;
}

static enum cu_err fail_typed(struct cu_resp *resp, enum cu_err err, const char *type,
                              const char *detail)
{
    resp->type = stable_type(type);
    return cu_resp_fail(resp, err, "%s", detail);
}

/* ---- who acts ---- */

static bool is_customer(const struct cu_req *req)
{
    return req->principal.kind == CU_PRINCIPAL_CUSTOMER;
}

/* An account the principal may see: a customer's own; for staff and keys, the route's
 * permission decided on the account's customer (system accounts: the permission alone). A
 * customer asking for another's account gets 404, as for one that does not exist. */
static enum cu_err account_visible(struct cu_req *req, struct cu_resp *resp,
                                   const struct cu_ledger_account *a)
{
    if (is_customer(req)) {
        if (strcmp(a->customer, req->principal.id) != 0)
            return fail_typed(resp, CU_E_NOT_FOUND, "unknown_account", "no account has this id");
        return CU_OK;
    }
    if (a->customer[0] != '\0')
        return cu_req_gate_id(req, resp, req->route_permission, a->customer);
    /* a system account: decided on no customer at all, so that a permit whose condition needs
     * one does not hold, and a forbid that could apply does (the door only asked whether the
     * permission could hold for some customer) */
    struct cu_access_resource none = {.id = "system"};
    return cu_req_gate_on(req, resp, req->route_permission, &none, NULL);
}

static enum cu_err read_account(struct cu_req *req, struct cu_resp *resp, const char *id,
                                struct cu_ledger_account *a)
{
    struct cu_db *db = NULL;
    enum cu_err rc = cu_req_db(req, &db);

    if (rc == CU_OK)
        rc = cu_ledger_account_get(db, id, a);
    if (rc == CU_E_NOT_FOUND)
        return fail_typed(resp, rc, "unknown_account", "no account has this id");
    if (rc != CU_OK)
        return cu_resp_fail(resp, rc, "the account could not be read");
    return account_visible(req, resp, a);
}

/* ---- opening and reading accounts ---- */

struct open_job {
    struct cu_req *req;
    struct cu_resp *resp;
    json_t *body;
    struct cu_ledger_account_in in;
    struct cu_ledger_account a;
    char detail[256];
    char location[64];
};

static void open_job_clear(void *p)
{
    json_decref(((struct open_job *)p)->body);
}

static enum cu_err open_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct open_job *j = arg;
    enum cu_err rc = cu_ledger_account_create(j->req->app->ledger, w, db, &j->in, &j->a, j->detail);
    if (rc == CU_E_INVALID)
        return cu_resp_fail(j->resp, rc, "%s", j->detail);
    if (rc != CU_OK && rc != CU_E_BUSY)
        return cu_resp_fail(j->resp, rc, "the account could not be opened");
    return rc;
}

static enum cu_err open_answer(struct cu_req *req, struct cu_resp *resp, void *arg)
{
    struct open_job *j = arg;
    (void)req;
    snprintf(j->location, sizeof(j->location), "/v1/accounts/%s", j->a.id);
    cu_resp_header(resp, "Location", j->location);
    return cu_resp_json(resp, 201, account_json(&j->a, true));
}

/* An optional amount field: a whole number from 0 to INT64_MAX minor units. */
static enum cu_err amount_field(struct cu_resp *resp, const json_t *body, const char *key,
                                bool required, int64_t min, int64_t *out)
{
    char err[CU_JSON_ERR_BYTES];
    const json_t *v = json_object_get(body, key);
    if (v != NULL && json_is_real(v))
        return cu_resp_fail(resp, CU_E_INVALID,
                            "field '%s' must be a whole number of minor units (no fraction)", key);
    if (cu_json_get_int(body, key, required, min, INT64_MAX, out, err) != CU_OK)
        return cu_resp_fail(resp, CU_E_INVALID, "%s", err);
    return CU_OK;
}

enum cu_err cu_handle_accounts_open(struct cu_req *req, struct cu_resp *resp)
{
    static const char *const allowed[] = {"currency", "overdraft", "limits"};
    static const char *const lim_allowed[] = {"per_transfer", "daily"};
    struct open_job *j = cu_req_alloc(req, sizeof(*j), open_job_clear);
    char err[CU_JSON_ERR_BYTES];
    const char *bad = NULL;
    enum cu_err rc = j != NULL ? cu_req_json(req, resp, &j->body) : CU_E_NOMEM;

    if (rc != CU_OK)
        return resp->err ? resp->err : cu_resp_fail(resp, rc, "the account could not be opened");
    if (cu_json_only_keys(j->body, allowed, 3, &bad) != CU_OK)
        return cu_resp_fail(resp, CU_E_INVALID, "unknown field '%.64s'", bad);
    if (cu_json_get_string(j->body, "currency", true, 3, &j->in.currency, err) != CU_OK)
        return cu_resp_fail(resp, CU_E_INVALID, "%s", err);
    if (!cu_currency_valid(j->in.currency, NULL))
        return cu_resp_fail(
            resp, CU_E_INVALID,
            "field 'currency' must be an ISO 4217 code custodia knows (EUR, USD …)");
    if ((rc = amount_field(resp, j->body, "overdraft", false, 0, &j->in.overdraft)) != CU_OK)
        return rc;
    const json_t *lim = json_object_get(j->body, "limits");
    if (lim != NULL) {
        if (!json_is_object(lim) || cu_json_only_keys(lim, lim_allowed, 2, &bad) != CU_OK)
            return cu_resp_fail(resp, CU_E_INVALID,
                                "field 'limits' must be an object of per_transfer and daily");
        if ((rc = amount_field(resp, lim, "per_transfer", false, 1, &j->in.limit_per_transfer)) !=
                CU_OK ||
            (rc = amount_field(resp, lim, "daily", false, 1, &j->in.limit_daily)) != CU_OK)
            return rc;
    }
    rc = cu_req_gate_id(req, resp, req->route_permission, req->params[0]);
    if (rc != CU_OK)
        return rc;
    j->in.customer = req->params[0];
    j->req = req;
    j->resp = resp;
    return cu_req_change(req, open_apply, open_answer, j);
}

enum cu_err cu_handle_account_get(struct cu_req *req, struct cu_resp *resp)
{
    struct cu_ledger_account a;
    enum cu_err rc = read_account(req, resp, req->params[0], &a);
    if (rc != CU_OK)
        return rc;
    return cu_resp_json(resp, 200, account_json(&a, !is_customer(req)));
}

static bool valid_account_id(const char *s)
{
    return cu_ledger_id_valid(s, "acc_");
}

enum cu_err cu_handle_customer_accounts(struct cu_req *req, struct cu_resp *resp)
{
    const char *after = NULL;
    size_t limit = 100, n = 0;
    struct cu_ledger_account *items = NULL;
    struct cu_db *db = NULL;
    enum cu_err rc;

    if (is_customer(req) && strcmp(req->params[0], req->principal.id) != 0)
        return cu_resp_fail(resp, CU_E_NOT_FOUND, "no customer has this id");
    rc = cu_req_page(req, resp, valid_account_id, "an account id (acc_ and 16 hex digits)", &after,
                     &limit);
    if (rc != CU_OK)
        return rc;
    if (!is_customer(req) &&
        (rc = cu_req_gate_id(req, resp, req->route_permission, req->params[0])) != CU_OK)
        return rc;
    rc = cu_req_db(req, &db);
    if (rc == CU_OK)
        rc = cu_ledger_accounts_of(db, req->params[0], after, limit, &items, &n);
    if (rc != CU_OK)
        return cu_resp_fail(resp, rc, "the accounts could not be read");
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, account_json(&items[i], !is_customer(req)));
    json_t *v =
        json_pack("{s:o, s:s?}", "items", arr, "next_after", n == limit ? items[n - 1].id : NULL);
    cu_free(items);
    return cu_resp_json(resp, 200, v);
}

/* PUT /v1/customers/{id}/limits: a customer's daily limit in a currency, over all their
 * accounts ({"currency": "EUR", "daily": N}; daily null or 0: none). */
struct limit_job {
    struct cu_req *req;
    struct cu_resp *resp;
    json_t *body;
    const char *currency;
    int64_t daily;
};

static void limit_job_clear(void *p)
{
    json_decref(((struct limit_job *)p)->body);
}

static enum cu_err limit_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct limit_job *j = arg;
    enum cu_err rc = cu_ledger_customer_limit_set(w, db, j->req->params[0], j->currency, j->daily);
    if (rc != CU_OK && rc != CU_E_BUSY)
        return cu_resp_fail(j->resp, rc, "the limit could not be set");
    return rc;
}

static enum cu_err limit_answer(struct cu_req *req, struct cu_resp *resp, void *arg)
{
    struct limit_job *j = arg;
    return cu_resp_json(resp, 200,
                        json_pack("{s:s, s:s, s:o}", "customer", req->params[0], "currency",
                                  j->currency, "daily",
                                  j->daily > 0 ? json_integer(j->daily) : json_null()));
}

enum cu_err cu_handle_customer_limits(struct cu_req *req, struct cu_resp *resp)
{
    static const char *const allowed[] = {"currency", "daily"};
    struct limit_job *j = cu_req_alloc(req, sizeof(*j), limit_job_clear);
    char err[CU_JSON_ERR_BYTES];
    const char *bad = NULL;
    enum cu_err rc = j != NULL ? cu_req_json(req, resp, &j->body) : CU_E_NOMEM;

    if (rc != CU_OK)
        return resp->err ? resp->err : cu_resp_fail(resp, rc, "the limit could not be set");
    if (cu_json_only_keys(j->body, allowed, 2, &bad) != CU_OK)
        return cu_resp_fail(resp, CU_E_INVALID, "unknown field '%.64s'", bad);
    if (cu_json_get_string(j->body, "currency", true, 3, &j->currency, err) != CU_OK)
        return cu_resp_fail(resp, CU_E_INVALID, "%s", err);
    if (!cu_currency_valid(j->currency, NULL))
        return cu_resp_fail(resp, CU_E_INVALID,
                            "field 'currency' must be an ISO 4217 code custodia knows");
    const json_t *d = json_object_get(j->body, "daily");
    if (d == NULL)
        return cu_resp_fail(resp, CU_E_INVALID, "field 'daily' is required (null: no limit)");
    if (!json_is_null(d) &&
        (rc = amount_field(resp, j->body, "daily", true, 0, &j->daily)) != CU_OK)
        return rc;
    rc = cu_req_gate_id(req, resp, req->route_permission, req->params[0]);
    if (rc != CU_OK)
        return rc;
    j->req = req;
    j->resp = resp;
    return cu_req_change(req, limit_apply, limit_answer, j);
}

/* ---- movements ---- */

enum move_route { MV_TRANSFER, MV_DEPOSIT, MV_WITHDRAWAL, MV_POST, MV_VOID, MV_REVERSE, MV_BATCH };

struct move_job {
    struct cu_req *req;
    struct cu_resp *resp;
    enum move_route route;
    json_t *body;
    char *canon; /* the body, canonical: kept to name what a reused key's body changes */
    uint8_t digest[crypto_generichash_BYTES];
    const char *key;
    const char *path; /* the request's: bound with the key */
    char scope[96];
    char *meta1; /* the single op's metadata text */
    struct cu_ledger_op op;
    void *memo1; /* the monitoring hook's decision about the single op, kept across runs */
    /* a batch: its ops, their metadata texts, the hook's memos and results (cu_calloc'd,
     * freed with the job) */
    size_t n;
    struct cu_ledger_op *ops;
    char **metas;
    void **memos;
    struct cu_ledger *ledger; /* whose hook made the memos */
    struct cu_ledger_result *results;
    struct cu_ledger_actor actor;
    char sys[CU_LEDGER_ID_BYTES]; /* a deposit's or withdrawal's system account */
    struct cu_ledger_result res;
    /* a post or void of a held chain link: the chain's other held links, released with it */
    char (*links)[CU_LEDGER_ID_BYTES];
    size_t nlinks;
    struct cu_ledger_account *acc;
    size_t nacc;
    char movement[CU_LEDGER_ID_BYTES];
    /* the answer, made in the unit (and kept for retries) */
    int status;
    char *answer; /* JSON text: the result, or {"type","detail"} of a refusal */
    bool replay;
    enum cu_err err; /* a refusal's error */
    char type[40];
    char detail[256];
};

static void move_job_clear(void *p)
{
    struct move_job *j = p;
    json_decref(j->body);
    free(j->canon);
    free(j->answer);
    free(j->meta1);
    cu_ledger_transfer_clear(&j->res.t);
    cu_free(j->acc);
    if (j->ledger != NULL)
        cu_ledger_hook_memo_free(j->ledger, j->memo1);
    for (size_t i = 0; i < j->n; i++) {
        if (j->ledger != NULL && j->memos != NULL)
            cu_ledger_hook_memo_free(j->ledger, j->memos[i]);
        free(j->metas ? j->metas[i] : NULL);
        if (j->results != NULL)
            cu_ledger_transfer_clear(&j->results[i].t);
    }
    cu_free(j->metas);
    cu_free(j->memos);
    cu_free(j->ops);
    cu_free(j->results);
    cu_free(j->links);
}

/* The top-level fields whose values differ between two canonical bodies. */
static void fields_differ(const char *a, const char *b, char *out, size_t cap)
{
    json_t *x = json_loads(a, 0, NULL), *y = json_loads(b, 0, NULL);
    const char *k;
    json_t *v;
    size_t used = 0;

    out[0] = '\0';
    json_object_foreach(x, k, v)
    {
        if (!json_equal(v, json_object_get(y, k)) && used + strlen(k) + 3 < cap)
            used += (size_t)snprintf(out + used, cap - used, "%s%s", used ? ", " : "", k);
    }
    json_object_foreach(y, k, v)
    {
        if (json_object_get(x, k) == NULL && used + strlen(k) + 3 < cap)
            used += (size_t)snprintf(out + used, cap - used, "%s%s", used ? ", " : "", k);
    }
    json_decref(x);
    json_decref(y);
}

/* The key's earlier use, if any: 1 replayed, 0 none, or an error. */
static enum cu_err idem_lookup(struct move_job *j, struct cu_db *db, bool *found)
{
    static const char sql[] = "SELECT route, digest, request, status, response FROM "
                              "ledger_idempotency WHERE scope = $1 AND key = $2";
    const struct cu_val p[] = {CU_VT(j->scope), CU_VT(j->key)};
    struct cu_stmt *st = NULL;
    bool row = false;
    enum cu_err rc = cu_db_query(db, sql, p, CU_NVALS(p), &st);

    *found = false;
    if (rc == CU_OK)
        rc = cu_stmt_next(st, &row);
    if (rc == CU_OK && row) {
        size_t dlen = 0, rlen = 0, n = 0;
        const void *d = cu_stmt_blob(st, 1, &dlen);
        const char *route = cu_stmt_text(st, 0, &rlen);
        bool same_route = rlen == strlen(j->path) && memcmp(route, j->path, rlen) == 0;
        *found = true;
        if (same_route && dlen == sizeof(j->digest) && sodium_memcmp(d, j->digest, dlen) == 0) {
            const char *resp = cu_stmt_text(st, 4, &n);
            j->replay = true;
            j->status = (int)cu_stmt_int(st, 3);
            free(j->answer);
            j->answer = strndup(resp, n);
            if (j->answer == NULL)
                rc = CU_E_NOMEM;
        } else {
            char differ[200];
            const char *req = cu_stmt_text(st, 2, &n);
            char *was = strndup(req, n);
            if (was == NULL) {
                rc = CU_E_NOMEM;
            } else {
                fields_differ(was, j->canon, differ, sizeof(differ));
                free(was);
                j->err = CU_E_EXISTS;
                snprintf(j->type, sizeof(j->type), "idempotency_key_reused");
                if (!same_route)
                    snprintf(j->detail, sizeof(j->detail),
                             "the Idempotency-Key was used for another route or transfer; use a "
                             "new key");
                else
                    snprintf(j->detail, sizeof(j->detail),
                             "the Idempotency-Key was used for another request; fields that "
                             "differ: %s",
                             differ[0] ? differ : "(their order or form)");
            }
        }
    }
    cu_stmt_done(st);
    return rc;
}

static enum cu_err idem_store(struct move_job *j, struct cu_db *db, int64_t now)
{
    static const char sql[] = "INSERT INTO ledger_idempotency (scope, key, route, digest, "
                              "request, status, response, created_at) VALUES ($1, $2, $3, $4, "
                              "$5, $6, $7, $8)";
    const struct cu_val p[] = {
        CU_VT(j->scope),  CU_VT(j->key),
        CU_VT(j->path),   {.type = CU_VAL_BLOB, .p = j->digest, .n = sizeof(j->digest)},
        CU_VT(j->canon),  CU_VI(j->status),
        CU_VT(j->answer), CU_VI(now),
    };
    return cu_db_exec(db, sql, p, CU_NVALS(p));
}

/* The accounts a movement touched, as its answer shows them: id, currency, status, balance. */
static json_t *touched_json(const struct move_job *j)
{
    json_t *accs = json_array();
    for (size_t i = 0; i < j->nacc; i++)
        json_array_append_new(accs, json_pack("{s:s, s:s, s:s, s:o}", "id", j->acc[i].id,
                                              "currency", j->acc[i].currency, "status",
                                              cu_ledger_status_name(j->acc[i].status), "balance",
                                              balance_json(&j->acc[i])));
    return accs;
}

/* chain_ops(j, db): when the transfer posted or voided is a held link of a linked chain, the
 * ops for it and the chain's other held links (j->ops, j->n), linked. */
static enum cu_err chain_ops(struct move_job *j, struct cu_db *db)
{
    enum cu_err rc;

    for (size_t i = 1; i < j->n; i++)
        cu_ledger_transfer_clear(&j->results[i].t);
    cu_free(j->ops);
    cu_free(j->results);
    j->ops = NULL;
    j->results = NULL;
    j->n = j->nlinks = 0;
    {
        /* most posts are of no chain: ask with a few slots, and with all only when they fill */
        char few[8][CU_LEDGER_ID_BYTES];
        rc = cu_ledger_chain_links(db, j->op.target, few, 8, &j->nlinks);
        if (rc != CU_OK || j->nlinks == 0)
            return rc;
    }
    if (j->links == NULL &&
        (j->links = cu_calloc(CU_LEDGER_BATCH_MAX - 1, sizeof(*j->links))) == NULL)
        return CU_E_NOMEM;
    rc = cu_ledger_chain_links(db, j->op.target, j->links, CU_LEDGER_BATCH_MAX - 1, &j->nlinks);
    if (rc != CU_OK || j->nlinks == 0)
        return rc;
    j->ops = cu_calloc(j->nlinks + 1, sizeof(*j->ops));
    j->results = cu_calloc(j->nlinks + 1, sizeof(*j->results));
    if (j->ops == NULL || j->results == NULL)
        return CU_E_NOMEM;
    j->n = j->nlinks + 1;
    j->ops[0] = j->op;
    for (size_t i = 0; i < j->nlinks; i++) {
        struct cu_ledger_op *o = &j->ops[i + 1];
        o->kind = j->op.kind;
        o->target = j->links[i];
        o->hold_release = true; /* as the link asked: the same principal, the same right */
        o->currency = j->op.currency;
    }
    for (size_t i = 0; i + 1 < j->n; i++)
        j->ops[i].linked = true;
    return CU_OK;
}

/* Builds the answer of a movement that ran: the transfer and the balances it left, or the
 * refusal. */
static enum cu_err make_answer(struct move_job *j)
{
    json_t *v;

    free(j->answer);
    j->answer = NULL;
    if (j->route == MV_BATCH) {
        json_t *results = json_array(), *accs = touched_json(j);
        for (size_t i = 0; i < j->n; i++) {
            const struct cu_ledger_result *r = &j->results[i];
            json_array_append_new(
                results,
                r->err == CU_OK
                    ? json_pack("{s:I, s:i, s:o}", "index", (json_int_t)i, "status", 201,
                                "transfer", transfer_json(&r->t, j->actor.customer == NULL))
                    : json_pack("{s:I, s:i, s:s, s:s}", "index", (json_int_t)i, "status",
                                cu_err_http_status(r->err), "type",
                                r->type ? r->type : "invalid_transfer", "detail", r->detail));
        }
        v = json_pack("{s:s, s:o, s:o}", "movement", j->movement, "results", results, "accounts",
                      accs);
        j->status = 200;
    } else if (j->res.err == CU_OK) {
        json_t *accs = touched_json(j);
        v = json_pack("{s:o, s:o}", "transfer", transfer_json(&j->res.t, j->actor.customer == NULL),
                      "accounts", accs);
        if (v != NULL && j->nlinks > 0) {
            /* the chain's other links, released with it */
            json_t *with = json_array();
            for (size_t i = 1; with != NULL && i < j->n; i++)
                json_array_append_new(with,
                                      transfer_json(&j->results[i].t, j->actor.customer == NULL));
            json_object_set_new(v, "released_with", with ? with : json_array());
        }
        j->status = 201;
    } else {
        v = json_pack("{s:s, s:s}", "type", j->res.type ? j->res.type : "invalid_transfer",
                      "detail", j->res.detail);
        j->status = cu_err_http_status(j->res.err);
    }
    j->answer = v ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    return j->answer ? CU_OK : CU_E_NOMEM;
}

static enum cu_err move_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct move_job *j = arg;
    struct cu_app *app = j->req->app;
    bool found = false;
    enum cu_err rc;

    j->replay = false;
    j->err = CU_OK;
    rc = idem_lookup(j, db, &found);
    if (rc != CU_OK || found)
        return rc;
    if (j->route == MV_DEPOSIT || j->route == MV_WITHDRAWAL) {
        struct cu_ledger_account s;
        memset(&s, 0, sizeof(s));
        rc = cu_ledger_system_account(db, j->route == MV_DEPOSIT ? "cash_in" : "cash_out",
                                      j->op.currency, true, &s);
        if (rc == CU_E_INVALID)
            rc = CU_OK; /* an unknown currency: the movement refuses it */
        if (rc != CU_OK)
            return rc;
        snprintf(j->sys, sizeof(j->sys), "%s", s.id);
        if (j->route == MV_DEPOSIT)
            j->op.debit = j->sys;
        else
            j->op.credit = j->sys;
    }
    if ((j->route == MV_POST || j->route == MV_VOID) && j->op.hold_release &&
        (rc = chain_ops(j, db)) != CU_OK)
        return rc;
    if (j->route == MV_BATCH)
        rc = cu_ledger_move(app->ledger, w, db, &j->actor, j->ops, j->n, true, j->movement,
                            j->results, &j->acc, &j->nacc);
    else if (j->nlinks > 0) {
        /* the link asked and the chain's others, linked: released together or not at all */
        rc = cu_ledger_move(app->ledger, w, db, &j->actor, j->ops, j->n, false, j->movement,
                            j->results, &j->acc, &j->nacc);
        cu_ledger_transfer_clear(&j->res.t);
        j->res = j->results[0];
        memset(&j->results[0].t, 0, sizeof(j->results[0].t)); /* now j->res's */
        /* a link of the chain failed: the answer names it and why, not "number 2 of the
         * request", which asked for one */
        for (size_t i = 1; i < j->n && j->res.err != CU_OK; i++)
            if (j->results[i].err != CU_OK && j->results[i].type != NULL &&
                strcmp(j->results[i].type, "linked_transfer_failed") != 0) {
                j->res.err = j->results[i].err;
                j->res.type = j->results[i].type;
                snprintf(j->res.detail, sizeof(j->res.detail),
                         "the chain's held link %.20s could not be released with it: %.180s",
                         j->links[i - 1], j->results[i].detail);
                break;
            }
    } else
        rc = cu_ledger_move(app->ledger, w, db, &j->actor, &j->op, 1, false, j->movement, &j->res,
                            &j->acc, &j->nacc);
    if (rc == CU_OK && j->actor.customer != NULL) {
        /* a customer sees the balances of their own accounts only, not the payee's */
        size_t k = 0;
        for (size_t i = 0; i < j->nacc; i++)
            if (strcmp(j->acc[i].customer, j->actor.customer) == 0)
                j->acc[k++] = j->acc[i];
        j->nacc = k;
    }
    if (rc == CU_OK)
        rc = make_answer(j);
    /* kept under the key: the result, or a refusal that stands; not one that depends on the
     * caller's state (a step-up to make, a hold only another may release) nor the server's
     * own failure, which a retry with the same key must be able to get past */
    const char *type = j->route == MV_BATCH ? NULL : j->res.type;
    bool keep = j->status < 500 && (type == NULL || (strcmp(type, "step_up_required") != 0 &&
                                                     strcmp(type, "transfer_held") != 0));
    /* a chain released with the link asked: a server's failure of any link is not kept */
    for (size_t i = 1; j->nlinks > 0 && i < j->n; i++)
        keep = keep && cu_err_http_status(j->results[i].err) < 500;
    if (rc == CU_OK && keep)
        rc = idem_store(j, db, cu_work_context_of(w)->now_ms);
    return rc;
}

static enum cu_err move_answer(struct cu_req *req, struct cu_resp *resp, void *arg)
{
    struct move_job *j = arg;
    (void)req;

    if (j->err != CU_OK)
        return fail_typed(resp, j->err, j->type, j->detail);
    if (j->replay)
        cu_resp_header(resp, "Idempotent-Replayed", "true");
    if (j->status >= 400) {
        json_t *v = json_loads(j->answer, 0, NULL);
        const char *type = json_string_value(json_object_get(v, "type"));
        const char *detail = json_string_value(json_object_get(v, "detail"));
        enum cu_err err =
            j->status == 404   ? CU_E_NOT_FOUND
            : j->status == 409 ? CU_E_EXISTS
            : j->status == 403
                ? (stable_type(type) && strcmp(type, "step_up_required") == 0 ? CU_E_STEP_UP
                                                                              : CU_E_FORBIDDEN)
            : j->status == 401 ? CU_E_STEP_UP
                               : CU_E_INVALID;
        if (type != NULL && strcmp(type, "step_up_required") == 0)
            err = CU_E_STEP_UP;
        enum cu_err rc = fail_typed(resp, err, type, detail ? detail : "the movement was refused");
        json_decref(v);
        return rc;
    }
    struct cu_buf *b = cu_resp_json_begin(resp, j->status);
    return cu_resp_json_end(resp, cu_buf_append_str(b, j->answer));
}

/* The request's Idempotency-Key: 1 to 64 printable ASCII characters. */
static enum cu_err idem_key(struct cu_req *req, struct cu_resp *resp, struct move_job *j)
{
    const char *k = cu_req_header(req, "Idempotency-Key");
    size_t n = k ? strlen(k) : 0;
    bool ok = n >= 1 && n <= IDEM_KEY_MAX;
    for (size_t i = 0; ok && i < n; i++)
        ok = k[i] > 0x20 && k[i] < 0x7f;
    if (!ok)
        return cu_resp_fail(resp, CU_E_INVALID,
                            "a movement needs the header Idempotency-Key: 1 to %d printable "
                            "ASCII characters without spaces (a UUID will do)",
                            IDEM_KEY_MAX);
    j->key = k;
    snprintf(j->scope, sizeof(j->scope), "%s:%s",
             req->principal.kind == CU_PRINCIPAL_CUSTOMER ? "customer"
             : req->principal.kind == CU_PRINCIPAL_STAFF  ? "staff"
                                                          : "apikey",
             req->principal.id);
    return CU_OK;
}

/* The body, canonical, and its digest with the route (what a key binds). */
static enum cu_err canonical(struct cu_resp *resp, struct move_job *j)
{
    crypto_generichash_state h;
    j->canon = json_dumps(j->body, JSON_COMPACT | JSON_SORT_KEYS);
    if (j->canon == NULL)
        return cu_resp_fail(resp, CU_E_NOMEM, "the movement could not be made");
    crypto_generichash_init(&h, NULL, 0, sizeof(j->digest));
    /* the path names the route and, for a post, void or reversal, the transfer acted on */
    crypto_generichash_update(&h, (const uint8_t *)j->path, strlen(j->path) + 1);
    crypto_generichash_update(&h, (const uint8_t *)j->canon, strlen(j->canon));
    crypto_generichash_final(&h, j->digest, sizeof(j->digest));
    return CU_OK;
}

static bool code_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > CU_LEDGER_CODE_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
              s[i] == '.' || s[i] == '-'))
            return false;
    return true;
}

/* The common fields of a new transfer in obj: amount, currency, code, external_ref, metadata
 * (its canonical text into *meta, malloc'd, for the caller to free). at prefixes the errors
 * ("transfers[3]: " in a batch). */
static enum cu_err parse_fields(struct cu_resp *resp, const json_t *obj, struct cu_ledger_op *op,
                                char **meta, enum move_route route, const char *at)
{
    char err[CU_JSON_ERR_BYTES];
    const char *s = NULL;
    const json_t *v = json_object_get(obj, "amount");
    int64_t amount = 0;

    if (v != NULL && json_is_real(v))
        return cu_resp_fail(resp, CU_E_INVALID,
                            "%sfield 'amount' must be a whole number of minor units (no fraction)",
                            at);
    if (cu_json_get_int(obj, "amount", true, 1, CU_LEDGER_AMOUNT_MAX, &amount, err) != CU_OK)
        return cu_resp_fail(resp, CU_E_INVALID, "%s%s", at, err);
    op->amount = amount;
    if (cu_json_get_string(obj, "currency", true, 3, &op->currency, err) != CU_OK)
        return cu_resp_fail(resp, CU_E_INVALID, "%s%s", at, err);
    if (!cu_currency_valid(op->currency, NULL))
        return cu_resp_fail(resp, CU_E_INVALID,
                            "%sfield 'currency' must be an ISO 4217 code custodia knows", at);
    if (cu_json_get_string(obj, "code", false, CU_LEDGER_CODE_MAX, &s, err) != CU_OK)
        return cu_resp_fail(resp, CU_E_INVALID, "%s%s", at, err);
    op->code = s                        ? s
               : route == MV_DEPOSIT    ? "deposit"
               : route == MV_WITHDRAWAL ? "withdrawal"
                                        : "payment";
    if (!code_ok(op->code))
        return cu_resp_fail(resp, CU_E_INVALID,
                            "%sfield 'code' must be 1 to %d of a-z, 0-9, '_', '.' and '-'", at,
                            CU_LEDGER_CODE_MAX);
    s = NULL;
    if (cu_json_get_string(obj, "external_ref", false, CU_LEDGER_REF_MAX, &s, err) != CU_OK)
        return cu_resp_fail(resp, CU_E_INVALID, "%s%s", at, err);
    for (size_t i = 0; s && s[i]; i++)
        if (s[i] < 0x20 || s[i] > 0x7e)
            return cu_resp_fail(resp, CU_E_INVALID,
                                "%sfield 'external_ref' must be printable ASCII, 1 to %d bytes", at,
                                CU_LEDGER_REF_MAX);
    if (s != NULL && s[0] == '\0')
        return cu_resp_fail(resp, CU_E_INVALID, "%sfield 'external_ref' must not be empty", at);
    op->external_ref = s;
    const json_t *m = json_object_get(obj, "metadata");
    if (m != NULL && !json_is_null(m)) {
        char *text = json_is_object(m) ? json_dumps(m, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        if (text == NULL || strlen(text) > CU_LEDGER_METADATA_MAX) {
            free(text);
            return cu_resp_fail(resp, CU_E_INVALID,
                                "%sfield 'metadata' must be an object of at most %d bytes as JSON",
                                at, CU_LEDGER_METADATA_MAX);
        }
        *meta = text;
        op->metadata = text;
    }
    return CU_OK;
}

/* A transfer's own fields in obj: the accounts, pending and its timeout, linked (batches). */
static enum cu_err parse_transfer(struct cu_resp *resp, const json_t *obj, struct cu_ledger_op *op,
                                  char **meta, bool batch, const char *at)
{
    static const char *const allowed[] = {
        "debit_account", "credit_account", "amount",  "currency",        "code",
        "external_ref",  "metadata",       "pending", "timeout_seconds", "linked"};
    char err[CU_JSON_ERR_BYTES];
    const char *bad = NULL;
    bool pending = false, linked = false;
    int64_t timeout = 0;

    if (!json_is_object(obj))
        return cu_resp_fail(resp, CU_E_INVALID, "%sa transfer must be an object", at);
    if (cu_json_only_keys(obj, allowed, batch ? 10 : 9, &bad) != CU_OK)
        return cu_resp_fail(resp, CU_E_INVALID, "%sunknown field '%.64s'", at, bad);
    op->kind = CU_LEDGER_TRANSFER;
    if (cu_json_get_string(obj, "debit_account", true, 32, &op->debit, err) != CU_OK ||
        cu_json_get_string(obj, "credit_account", true, 32, &op->credit, err) != CU_OK ||
        cu_json_get_bool(obj, "pending", false, &pending, err) != CU_OK ||
        cu_json_get_bool(obj, "linked", false, &linked, err) != CU_OK ||
        cu_json_get_int(obj, "timeout_seconds", false, 1, CU_LEDGER_TIMEOUT_MAX, &timeout, err) !=
            CU_OK)
        return cu_resp_fail(resp, CU_E_INVALID, "%s%s", at, err);
    if (!pending && json_object_get(obj, "timeout_seconds") != NULL)
        return cu_resp_fail(resp, CU_E_INVALID,
                            "%sfield 'timeout_seconds' is for a pending transfer only", at);
    op->pending = pending;
    op->timeout_s = timeout;
    op->linked = linked;
    return parse_fields(resp, obj, op, meta, MV_TRANSFER, at);
}

static enum cu_err move_start(struct cu_req *req, struct cu_resp *resp, enum move_route route)
{
    static const char *const t_allowed[] = {"debit_account", "credit_account", "amount",
                                            "currency",      "code",           "external_ref",
                                            "metadata",      "pending",        "timeout_seconds"};
    static const char *const dw_allowed[] = {"account", "amount",       "currency",
                                             "code",    "external_ref", "metadata"};
    static const char *const act_allowed[] = {"amount"};
    static const char *const batch_allowed[] = {"transfers"};
    struct move_job *j = cu_req_alloc(req, sizeof(*j), move_job_clear);
    char err[CU_JSON_ERR_BYTES];
    const char *bad = NULL;
    enum cu_err rc;

    if (j == NULL)
        return cu_resp_fail(resp, CU_E_NOMEM, "the movement could not be made");
    j->route = route;
    j->path = req->path;
    j->ledger = req->app->ledger;
    rc = idem_key(req, resp, j);
    if (rc != CU_OK)
        return rc;
    if (req->body.len == 0 && route >= MV_POST)
        j->body = json_object();
    else if ((rc = cu_req_json(req, resp, &j->body)) != CU_OK)
        return resp->err ? resp->err : rc;
    if (j->body == NULL)
        return cu_resp_fail(resp, CU_E_NOMEM, "the movement could not be made");
    if (route == MV_TRANSFER)
        rc = cu_json_only_keys(j->body, t_allowed, 9, &bad);
    else if (route == MV_BATCH)
        rc = cu_json_only_keys(j->body, batch_allowed, 1, &bad);
    else if (route == MV_DEPOSIT || route == MV_WITHDRAWAL)
        rc = cu_json_only_keys(j->body, dw_allowed, 6, &bad);
    else
        rc = cu_json_only_keys(j->body, act_allowed, route == MV_POST ? 1 : 0, &bad) == CU_OK ||
                     (route != MV_POST && json_object_size(j->body) == 0)
                 ? CU_OK
                 : CU_E_INVALID;
    if (rc != CU_OK)
        return cu_resp_fail(resp, CU_E_INVALID, "unknown field '%.64s'", bad ? bad : "?");
    if ((rc = canonical(resp, j)) != CU_OK)
        return rc;

    j->actor.channel = is_customer(req) ? "session" : "api";
    j->actor.customer = is_customer(req) ? req->principal.id : NULL;
    j->actor.aal = (int)req->principal.session.aal;
    j->actor.step_up_above = (int64_t)req->app->cfg.ledger.step_up_above;
    switch (route) {
    case MV_TRANSFER:
        rc = parse_transfer(resp, j->body, &j->op, &j->meta1, false, "");
        break;
    case MV_BATCH: {
        const json_t *arr = json_object_get(j->body, "transfers");
        size_t n = json_array_size(arr);
        if (!json_is_array(arr) || n == 0 || n > CU_LEDGER_BATCH_MAX)
            return cu_resp_fail(resp, CU_E_INVALID,
                                "field 'transfers' must be an array of 1 to %d transfers",
                                CU_LEDGER_BATCH_MAX);
        j->ops = cu_calloc(n, sizeof(*j->ops));
        j->metas = cu_calloc(n, sizeof(*j->metas));
        j->results = cu_calloc(n, sizeof(*j->results));
        j->memos = cu_calloc(n, sizeof(*j->memos));
        if (j->ops == NULL || j->metas == NULL || j->results == NULL || j->memos == NULL)
            return cu_resp_fail(resp, CU_E_NOMEM, "the movement could not be made");
        j->n = n;
        for (size_t i = 0; rc == CU_OK && i < n; i++) {
            char at[32];
            snprintf(at, sizeof(at), "transfers[%zu]: ", i);
            rc = parse_transfer(resp, json_array_get(arr, i), &j->ops[i], &j->metas[i], true, at);
            j->ops[i].hook_memo = &j->memos[i];
        }
        break;
    }
    case MV_DEPOSIT:
    case MV_WITHDRAWAL:
        j->op.kind = CU_LEDGER_TRANSFER;
        if (cu_json_get_string(j->body, "account", true, 32,
                               route == MV_DEPOSIT ? &j->op.credit : &j->op.debit, err) != CU_OK)
            return cu_resp_fail(resp, CU_E_INVALID, "%s", err);
        rc = parse_fields(resp, j->body, &j->op, &j->meta1, route, "");
        break;
    default:
        j->op.kind = route == MV_POST   ? CU_LEDGER_POST
                     : route == MV_VOID ? CU_LEDGER_VOID
                                        : CU_LEDGER_REVERSE;
        j->op.target = req->params[0];
        if (route == MV_POST &&
            (rc = amount_field(resp, j->body, "amount", false, 1, &j->op.amount)) !=
                CU_OK) /* capped by the pending amount */
            return rc;
        /* releasing a hold for review needs transfers.approve */
        j->op.hold_release =
            !is_customer(req) && cu_req_may(req, CU_SCOPE_TRANSFERS_APPROVE) == CU_ACCESS_ALLOW;
        break;
    }
    if (rc != CU_OK)
        return rc;
    j->op.hook_memo = &j->memo1;
    j->req = req;
    j->resp = resp;
    return cu_req_change(req, move_apply, move_answer, j);
}

enum cu_err cu_handle_transfers_create(struct cu_req *req, struct cu_resp *resp)
{
    return move_start(req, resp, MV_TRANSFER);
}

enum cu_err cu_handle_transfers_batch(struct cu_req *req, struct cu_resp *resp)
{
    return move_start(req, resp, MV_BATCH);
}

enum cu_err cu_handle_deposits_create(struct cu_req *req, struct cu_resp *resp)
{
    return move_start(req, resp, MV_DEPOSIT);
}

enum cu_err cu_handle_withdrawals_create(struct cu_req *req, struct cu_resp *resp)
{
    return move_start(req, resp, MV_WITHDRAWAL);
}

enum cu_err cu_handle_transfer_post(struct cu_req *req, struct cu_resp *resp)
{
    return move_start(req, resp, MV_POST);
}

enum cu_err cu_handle_transfer_void(struct cu_req *req, struct cu_resp *resp)
{
    return move_start(req, resp, MV_VOID);
}

enum cu_err cu_handle_transfer_reverse(struct cu_req *req, struct cu_resp *resp)
{
    return move_start(req, resp, MV_REVERSE);
}

/* ---- reading transfers ---- */

/* Whether the principal may see transfer t: a customer when one side is their account. */
static bool transfer_visible(struct cu_req *req, struct cu_db *db,
                             const struct cu_ledger_transfer *t)
{
    struct cu_ledger_account a;
    if (!is_customer(req))
        return true;
    return (cu_ledger_account_get(db, t->debit, &a) == CU_OK &&
            strcmp(a.customer, req->principal.id) == 0) ||
           (cu_ledger_account_get(db, t->credit, &a) == CU_OK &&
            strcmp(a.customer, req->principal.id) == 0);
}

enum cu_err cu_handle_transfer_get(struct cu_req *req, struct cu_resp *resp)
{
    struct cu_ledger_transfer t;
    struct cu_db *db = NULL;
    enum cu_err rc = cu_req_db(req, &db);

    if (rc == CU_OK)
        rc = cu_ledger_transfer_get(db, req->params[0], &t);
    if (rc == CU_OK && !transfer_visible(req, db, &t)) {
        cu_ledger_transfer_clear(&t);
        rc = CU_E_NOT_FOUND;
    }
    if (rc == CU_E_NOT_FOUND)
        return fail_typed(resp, rc, "unknown_transfer", "no transfer has this id");
    if (rc != CU_OK)
        return cu_resp_fail(resp, rc, "the transfer could not be read");
    json_t *v = transfer_json(&t, !is_customer(req));
    cu_ledger_transfer_clear(&t);
    return cu_resp_json(resp, 200, v);
}

static json_t *transfers_array(const struct cu_ledger_transfer *t, size_t n, bool staff)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, transfer_json(&t[i], staff));
    return arr;
}

enum cu_err cu_handle_transfers_list(struct cu_req *req, struct cu_resp *resp)
{
    const char *ref = cu_req_query(req, "external_ref");
    struct cu_ledger_transfer *t = NULL;
    struct cu_db *db = NULL;
    size_t n = 0;
    enum cu_err rc;

    if (ref == NULL || ref[0] == '\0' || strlen(ref) > CU_LEDGER_REF_MAX)
        return cu_resp_fail(resp, CU_E_INVALID,
                            "query 'external_ref' is needed: 1 to %d bytes (transfers are "
                            "looked up by their external reference)",
                            CU_LEDGER_REF_MAX);
    rc = cu_req_db(req, &db);
    if (rc == CU_OK)
        rc = cu_ledger_transfers_by_ref(db, ref, &t, &n);
    if (rc != CU_OK)
        return cu_resp_fail(resp, rc, "the transfers could not be read");
    json_t *v = json_pack("{s:o}", "items", transfers_array(t, n, !is_customer(req)));
    cu_ledger_transfers_free(t, n);
    return cu_resp_json(resp, 200, v);
}

/* A query argument that is a whole number within [min, max], or its default. */
static enum cu_err query_int(struct cu_req *req, struct cu_resp *resp, const char *name,
                             int64_t min, int64_t max, int64_t *out)
{
    const char *s = cu_req_query(req, name);
    char *end = NULL;
    long long v;
    if (s == NULL)
        return CU_OK;
    v = strtoll(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < min || v > max)
        return cu_resp_fail(resp, CU_E_INVALID,
                            "query '%s' must be a whole number from %lld to %lld", name,
                            (long long)min, (long long)max);
    *out = v;
    return CU_OK;
}

static enum cu_err query_time(struct cu_req *req, struct cu_resp *resp, const char *name,
                              int64_t *out)
{
    const char *s = cu_req_query(req, name);
    if (s == NULL)
        return CU_OK;
    if (cu_clock_parse(s, out) != CU_OK)
        return cu_resp_fail(resp, CU_E_INVALID, "query '%s' must be an RFC 3339 time", name);
    return CU_OK;
}

/* One CSV field (RFC 4180): quoted when it holds a comma, a quote or a line break; a text a
 * client gave (text) that a spreadsheet would take for a formula (=, +, -, @, tab, CR first) is
 * written after a quote mark, so that opening the export runs nothing. */
static enum cu_err csv_field(struct cu_buf *b, const char *v, bool text, bool last)
{
    bool quote = strpbrk(v, ",\"\r\n") != NULL;
    bool formula = text && (v[0] == '=' || v[0] == '+' || v[0] == '-' || v[0] == '@' ||
                            v[0] == '\t' || v[0] == '\r');
    enum cu_err rc = quote ? cu_buf_append_str(b, "\"") : CU_OK;

    if (rc == CU_OK && formula)
        rc = cu_buf_append_str(b, "'");
    for (const char *c = v; rc == CU_OK && *c; c++)
        rc = *c == '"' ? cu_buf_append_str(b, "\"\"") : cu_buf_append(b, c, 1);
    if (rc == CU_OK && quote)
        rc = cu_buf_append_str(b, "\"");
    return rc == CU_OK ? cu_buf_append_str(b, last ? "\r\n" : ",") : rc;
}

/* The entries as CSV: a header line, then one line each; the account's side ("debit" or
 * "credit") and the signed amount for it; the cursor of the next page in Custodia-Next-After. */
static enum cu_err entries_csv(struct cu_req *req, struct cu_resp *resp,
                               const struct cu_ledger_entry_filter *f,
                               const struct cu_ledger_transfer *t, size_t n)
{
    enum cu_err rc = CU_OK;

    cu_buf_reset(&resp->body);
    resp->status = 200;
    resp->content_type = "text/csv; charset=utf-8";
    rc = cu_buf_append_str(&resp->body, "seq,id,created_at,kind,side,amount,currency,code,"
                                        "counterparty,external_ref,transfer_amount\r\n");
    for (size_t i = 0; rc == CU_OK && i < n; i++) {
        char seq[24], at[CU_RFC3339_BYTES], signed_amount[24], amount[24];
        bool debit = strcmp(t[i].debit, f->account) == 0;
        snprintf(seq, sizeof(seq), "%lld", (long long)t[i].seq);
        cu_clock_format(t[i].at, at);
        snprintf(amount, sizeof(amount), "%lld", (long long)t[i].amount);
        /* what it did to this account's posted balance: nothing for a pending one or a void */
        bool moves = !t[i].pending && t[i].kind != CU_LEDGER_VOID && t[i].kind != CU_LEDGER_EXPIRE;
        snprintf(signed_amount, sizeof(signed_amount), "%s%lld", moves && debit ? "-" : "",
                 moves ? (long long)t[i].amount : 0LL);
        const char *fields[] = {seq,
                                t[i].id,
                                at,
                                cu_ledger_kind_name(t[i].kind),
                                debit ? "debit" : "credit",
                                signed_amount,
                                t[i].currency,
                                t[i].code,
                                debit ? t[i].credit : t[i].debit,
                                t[i].external_ref,
                                amount};
        for (size_t k = 0; rc == CU_OK && k < sizeof(fields) / sizeof(fields[0]); k++)
            rc = csv_field(&resp->body, fields[k], k == 7 || k == 9, /* code, external_ref */
                           k + 1 == sizeof(fields) / sizeof(fields[0]));
    }
    if (rc != CU_OK)
        return cu_resp_fail(resp, rc, "the entries could not be written");
    char *cursor = n == f->limit ? cu_req_alloc(req, 24, NULL) : NULL; /* lives with req */
    if (cursor != NULL) {
        snprintf(cursor, 24, "%lld", (long long)t[n - 1].seq);
        cu_resp_header(resp, "Custodia-Next-After", cursor);
    }
    return CU_OK;
}

enum cu_err cu_handle_account_entries(struct cu_req *req, struct cu_resp *resp)
{
    struct cu_ledger_account a;
    struct cu_ledger_entry_filter f = {.account = req->params[0]};
    struct cu_ledger_transfer *t = NULL;
    struct cu_db *db = NULL;
    int64_t limit = 100;
    size_t n = 0;
    enum cu_err rc = read_account(req, resp, req->params[0], &a);

    if (rc == CU_OK)
        rc = query_int(req, resp, "after", 0, INT64_MAX, &f.after_seq);
    if (rc == CU_OK)
        rc = query_int(req, resp, "limit", 1, 1000, &limit);
    if (rc == CU_OK)
        rc = query_time(req, resp, "from", &f.from);
    if (rc == CU_OK)
        rc = query_time(req, resp, "until", &f.until);
    if (rc != CU_OK)
        return resp->err ? resp->err : rc;
    f.counterparty = cu_req_query(req, "counterparty");
    f.code = cu_req_query(req, "code");
    if ((f.counterparty && !valid_account_id(f.counterparty)) || (f.code && !code_ok(f.code)))
        return cu_resp_fail(resp, CU_E_INVALID,
                            "query 'counterparty' must be an account id and 'code' a code");
    f.limit = (size_t)limit;
    rc = cu_req_db(req, &db);
    if (rc == CU_OK)
        rc = cu_ledger_entries(db, &f, &t, &n);
    if (rc != CU_OK)
        return cu_resp_fail(resp, rc, "the entries could not be read");
    const char *accept = cu_req_header(req, "Accept");
    if (accept != NULL && strstr(accept, "text/csv") != NULL) {
        rc = entries_csv(req, resp, &f, t, n);
        cu_ledger_transfers_free(t, n);
        return rc;
    }
    json_t *v = json_pack("{s:o, s:o}", "items", transfers_array(t, n, !is_customer(req)),
                          "next_after", n == f.limit ? json_integer(t[n - 1].seq) : json_null());
    cu_ledger_transfers_free(t, n);
    return cu_resp_json(resp, 200, v);
}

/* GET /v1/ledger/changes?after=SEQ&limit=N&wait=S: every transfer after SEQ in commit order;
 * with wait, the answer waits up to S seconds (at most 30) for one to come. */
enum cu_err cu_handle_ledger_changes(struct cu_req *req, struct cu_resp *resp)
{
    int64_t after = 0, limit = 100, wait = 0, head = 0;
    struct cu_ledger_transfer *t = NULL;
    struct cu_db *db = NULL;
    size_t n = 0;
    enum cu_err rc = query_int(req, resp, "after", 0, INT64_MAX, &after);

    if (rc == CU_OK)
        rc = query_int(req, resp, "limit", 1, 1000, &limit);
    if (rc == CU_OK)
        rc = query_int(req, resp, "wait", 0, CHANGES_WAIT_MAX_S, &wait);
    if (rc != CU_OK)
        return rc;
    static atomic_int waiting;
    bool waits = wait > 0 && atomic_fetch_add(&waiting, 1) < CHANGES_WAITERS_MAX;
    if (wait > 0 && !waits)
        atomic_fetch_sub(&waiting, 1);
    if (!waits)
        wait = 0;
    rc = cu_req_db(req, &db);
    for (int64_t deadline = cu_clock_now_ms() + wait * 1000; rc == CU_OK;) {
        rc = cu_ledger_head(db, &head);
        if (rc != CU_OK || head > after || cu_clock_now_ms() >= deadline ||
            atomic_load(&req->app->draining))
            break;
        /* give the read connection back while waiting */
        cu_store_release(req->view);
        req->view = NULL;
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
        rc = cu_req_db(req, &db);
    }
    if (waits)
        atomic_fetch_sub(&waiting, 1);
    if (rc == CU_OK && head > after)
        rc = cu_ledger_changes(db, after, (size_t)limit, &t, &n);
    if (rc != CU_OK)
        return cu_resp_fail(resp, rc, "the changes could not be read");
    json_t *v = json_pack("{s:o, s:I}", "items", transfers_array(t, n, !is_customer(req)),
                          "next_after", (json_int_t)(n > 0 ? t[n - 1].seq : after));
    cu_ledger_transfers_free(t, n);
    return cu_resp_json(resp, 200, v);
}

/* ---- freezing and closing ---- */

enum acct_action { ACT_FREEZE, ACT_UNFREEZE, ACT_CLOSE };

struct acct_job {
    struct cu_req *req;
    struct cu_resp *resp;
    enum acct_action what;
    json_t *body;
    const char *reason;
    int64_t until;
    struct cu_ledger_account a;
    char detail[256];
};

static void acct_job_clear(void *p)
{
    json_decref(((struct acct_job *)p)->body);
}

static enum cu_err acct_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct acct_job *j = arg;
    struct cu_ledger *l = j->req->app->ledger;
    const char *id = j->req->params[0];
    enum cu_err rc = j->what == ACT_FREEZE
                         ? cu_ledger_freeze(l, w, db, id, j->reason, j->until, &j->a, j->detail)
                     : j->what == ACT_UNFREEZE ? cu_ledger_unfreeze(l, w, db, id, &j->a, j->detail)
                                               : cu_ledger_close(l, w, db, id, &j->a, j->detail);
    if (rc == CU_E_NOT_FOUND)
        return fail_typed(j->resp, rc, "unknown_account", "no account has this id");
    if (rc == CU_E_EXISTS || rc == CU_E_INVALID)
        return cu_resp_fail(j->resp, rc, "%s", j->detail);
    if (rc != CU_OK && rc != CU_E_BUSY)
        return cu_resp_fail(j->resp, rc, "the account could not be changed");
    return rc;
}

static enum cu_err acct_answer(struct cu_req *req, struct cu_resp *resp, void *arg)
{
    struct acct_job *j = arg;
    (void)req;
    return cu_resp_json(resp, 200, account_json(&j->a, true));
}

static enum cu_err acct_start(struct cu_req *req, struct cu_resp *resp, enum acct_action what)
{
    static const char *const allowed[] = {"reason", "until"};
    struct acct_job *j = cu_req_alloc(req, sizeof(*j), acct_job_clear);
    struct cu_ledger_account a;
    char err[CU_JSON_ERR_BYTES];
    const char *bad = NULL, *until = NULL;
    enum cu_err rc;

    if (j == NULL)
        return cu_resp_fail(resp, CU_E_NOMEM, "the account could not be changed");
    rc = read_account(req, resp, req->params[0], &a);
    if (rc != CU_OK)
        return rc;
    if (what == ACT_FREEZE) {
        if ((rc = cu_req_json(req, resp, &j->body)) != CU_OK)
            return resp->err ? resp->err : rc;
        if (cu_json_only_keys(j->body, allowed, 2, &bad) != CU_OK)
            return cu_resp_fail(resp, CU_E_INVALID, "unknown field '%.64s'", bad);
        if (cu_json_get_string(j->body, "reason", true, CU_LEDGER_REASON_MAX, &j->reason, err) !=
                CU_OK ||
            cu_json_get_string(j->body, "until", false, 64, &until, err) != CU_OK)
            return cu_resp_fail(resp, CU_E_INVALID, "%s", err);
        if (j->reason[0] == '\0')
            return cu_resp_fail(resp, CU_E_INVALID, "field 'reason' must not be empty");
        if (until != NULL && cu_clock_parse(until, &j->until) != CU_OK)
            return cu_resp_fail(resp, CU_E_INVALID, "field 'until' must be an RFC 3339 time");
    }
    j->what = what;
    j->req = req;
    j->resp = resp;
    return cu_req_change(req, acct_apply, acct_answer, j);
}

enum cu_err cu_handle_account_freeze(struct cu_req *req, struct cu_resp *resp)
{
    return acct_start(req, resp, ACT_FREEZE);
}

enum cu_err cu_handle_account_unfreeze(struct cu_req *req, struct cu_resp *resp)
{
    return acct_start(req, resp, ACT_UNFREEZE);
}

enum cu_err cu_handle_account_close(struct cu_req *req, struct cu_resp *resp)
{
    return acct_start(req, resp, ACT_CLOSE);
}
