/*
 * apikeys_routes.c - the API-key routes: list, make, read and revoke keys. Every change is
 * audited in the transaction that makes it, and so is every read of the key list.
 */
#include <stdio.h>
#include <string.h>

#include "api/handlers.h"
#include "api/server.h"
#include "base/clock.h"
#include "base/json.h"
#include "base/log.h"
#include "base/mem.h"
#include "crypto/crypto.h"

/* The JSON form of a key's record; never includes the key's text or hash. */
static json_t *apikey_json(const struct cu_apikey_info *k)
{
    char created[CU_RFC3339_BYTES], expires[CU_RFC3339_BYTES], revoked[CU_RFC3339_BYTES];
    json_t *scopes = cu_resp_scopes(k->scopes), *roles = cu_resp_roles(k->roles);
    json_t *networks = cu_resp_roles(k->networks); /* words one space apart, as roles */
    cu_clock_format(k->created_at, created);
    cu_clock_format(k->expires_at, expires);
    cu_clock_format(k->revoked_at, revoked);
    return json_pack("{s:s, s:s, s:o, s:o, s:s, s:o, s:s, s:s?, s:s?}", "id", k->id, "name",
                     k->name, "scopes", scopes, "roles", roles, "owner", k->owner, "networks",
                     networks, "created_at", created, "expires_at", k->expires_at ? expires : NULL,
                     "revoked_at", k->revoked_at ? revoked : NULL);
}

static bool valid_key_id(const char *id)
{
    if (strlen(id) != CU_APIKEY_ID_BYTES - 1 || strncmp(id, "ak_", 3) != 0)
        return false;
    for (const char *p = id + 3; *p; p++) {
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    }
    return true;
}

enum cu_err cu_handle_apikeys_list(struct cu_req *req, struct cu_resp *resp)
{
    const char *after = NULL;
    struct cu_apikey_info *items = NULL;
    struct cu_db *db = NULL;
    size_t n = 0;
    size_t limit = 100;
    enum cu_err rc;

    rc = cu_req_page(req, resp, valid_key_id, "a key id (ak_ and 16 hex digits)", &after, &limit);
    if (rc != CU_OK)
        return rc;
    rc = cu_req_db(req, &db);
    if (rc == CU_OK)
        rc = cu_apikey_list(db, after, limit, &items, &n);
    if (rc == CU_OK)
        rc = cu_req_audit(req, "apikey.list", "", "success",
                          json_pack("{s:I}", "count", (json_int_t)n));
    if (rc != CU_OK) {
        cu_free(items);
        return cu_resp_fail(resp, rc, "the keys could not be listed");
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, apikey_json(&items[i]));
    json_t *v =
        json_pack("{s:o, s:s?}", "items", arr, "next_after", n == limit ? items[n - 1].id : NULL);
    cu_free(items);
    return cu_resp_json(resp, 200, v);
}

/* The audit target naming a key: "apikey:ak_…". */
struct target {
    char text[CU_APIKEY_ID_BYTES + 8];
};

static struct target target_of(const struct cu_apikey_info *k)
{
    struct target t;
    snprintf(t.text, sizeof(t.text), "apikey:%s", k->id);
    return t;
}

/* Audits a change to a key in its unit of work: the key's name, scopes and expiry, never its
 * text. */
static enum cu_err audit_key(struct cu_work *w, const char *action, const struct cu_apikey_info *k)
{
    json_t *d = apikey_json(k);
    json_object_del(d, "id");
    json_object_del(d, "created_at");
    return cu_work_audit(w, action, target_of(k).text, "success", d);
}

/* A key change, from the handler to its answer. */
struct key_job {
    struct cu_req *req;
    struct cu_resp *resp;
    const char *name; /* create: borrowed from body */
    uint64_t scopes;
    int64_t expires;
    char roles[CU_APIKEY_ROLES_BYTES];       /* create: the roles to store */
    char networks[CU_APIKEY_NETWORKS_BYTES]; /* create: the allow-list to store */
    json_t *body;
    struct cu_apikey_info info;
    char token[CU_APIKEY_TOKEN_BYTES]; /* create: shown once, wiped with the job */
};

static void key_job_clear(void *p)
{
    struct key_job *j = p;
    json_decref(j->body);
    cu_crypto_wipe(j->token, sizeof(j->token));
}

static enum cu_err parse_create(struct cu_req *req, struct cu_resp *resp, json_t *body,
                                const char **name, uint64_t *scopes, int64_t *expires)
{
    static const char *const allowed[] = {"name", "scopes", "roles", "networks", "expires_at"};
    char err[CU_JSON_ERR_BYTES];
    const char *bad = NULL, *exp = NULL;

    if (cu_json_only_keys(body, allowed, 5, &bad) != CU_OK)
        return cu_resp_fail(resp, CU_E_INVALID, "unknown field '%.64s'", bad);
    if (cu_json_get_string(body, "name", true, CU_APIKEY_NAME_MAX, name, err) != CU_OK)
        return cu_resp_fail(resp, CU_E_INVALID, "%s", err);
    if (cu_apikey_check_name(*name) != CU_OK)
        return cu_resp_fail(resp, CU_E_INVALID,
                            "field 'name' may hold letters, digits, space, '.', '-' and '_'");
    if (cu_req_scopes(body, resp, json_object_get(body, "roles") == NULL, scopes) != CU_OK)
        return resp->err;
    if (cu_json_get_string(body, "expires_at", false, 64, &exp, err) != CU_OK)
        return cu_resp_fail(resp, CU_E_INVALID, "%s", err);
    *expires = 0;
    if (exp != NULL && (cu_clock_parse(exp, expires) != CU_OK || *expires <= cu_clock_now_ms()))
        return cu_resp_fail(resp, CU_E_INVALID,
                            "field 'expires_at' must be an RFC 3339 time in the future");
    /* a key made by a key that expires expires no later (by default, with it) */
    const struct cu_principal *by = &req->principal;
    if (by->kind == CU_PRINCIPAL_APIKEY && by->key.expires_at != 0) {
        if (*expires > by->key.expires_at)
            return cu_resp_fail(resp, CU_E_INVALID,
                                "field 'expires_at' must not be later than the calling key's "
                                "expiry");
        if (*expires == 0)
            *expires = by->key.expires_at;
    }
    return CU_OK;
}

/* The body's "networks": 1 to CU_APIKEY_NETWORKS_MAX CIDR blocks, into out (one space between).
 * A key that makes a key gives it at most its own allow-list: each block must lie within one
 * of the maker's, and without "networks" the new key gets the maker's list. */
static enum cu_err parse_networks(struct cu_req *req, struct cu_resp *resp, const json_t *body,
                                  char *out, size_t cap)
{
    const json_t *arr = json_object_get(body, "networks");
    struct cu_cidr mine[CU_APIKEY_NETWORKS_MAX], c;
    size_t nmine = 0, used = 0, i;
    const json_t *v;
    const char *why = NULL;
    const char *own = req->principal.kind == CU_PRINCIPAL_APIKEY ? req->principal.key.networks : "";

    out[0] = '\0';
    if (cu_cidr_list_parse(own, mine, CU_APIKEY_NETWORKS_MAX, &nmine) != CU_OK)
        return cu_resp_fail(resp, CU_E_INTERNAL, "the key's allow-list could not be read");
    if (arr == NULL) {
        snprintf(out, cap, "%s", own);
        return CU_OK;
    }
    if (!json_is_array(arr) || json_array_size(arr) == 0 ||
        json_array_size(arr) > CU_APIKEY_NETWORKS_MAX)
        return cu_resp_fail(resp, CU_E_INVALID,
                            "field 'networks' must be an array of 1 to %d CIDR blocks",
                            CU_APIKEY_NETWORKS_MAX);
    json_array_foreach(arr, i, v)
    {
        const char *s = json_string_value(v);
        size_t len = s ? json_string_length(v) : 0;
        if (s == NULL || len == 0 || len >= CU_CIDR_TEXT_MAX)
            return cu_resp_fail(resp, CU_E_INVALID,
                                "field 'networks' item %zu must be an address or a CIDR block "
                                "(10.0.0.0/8, 2001:db8::/32)",
                                i);
        if (cu_cidr_parse(s, len, &c, &why) != CU_OK)
            return cu_resp_fail(resp, CU_E_INVALID, "field 'networks' item %zu '%s' %s", i, s, why);
        bool inside = nmine == 0;
        for (size_t m = 0; m < nmine && !inside; m++)
            inside = cu_cidr_within(&c, &mine[m]);
        if (!inside &&
            cu_req_audit_refusal(req, "apikey.create", "",
                                 json_pack("{s:s}", "reason", "allow-list escalation")) != CU_OK)
            return cu_resp_fail(resp, CU_E_AUDIT, "the refusal could not be audited");
        if (!inside)
            return cu_resp_fail(resp, CU_E_FORBIDDEN,
                                "field 'networks' item %zu '%s' is not within the calling key's "
                                "own allow-list",
                                i, s);
        used += (size_t)snprintf(out + used, cap - used, "%s%s", used ? " " : "", s);
    }
    return CU_OK;
}

static enum cu_err create_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct key_job *j = arg;
    struct cu_app *app = j->req->app;
    enum cu_err rc =
        cu_apikey_create(app->apikeys, db, j->name, j->scopes, j->expires, &j->info, j->token);

    if (rc == CU_OK && j->roles[0] != '\0') {
        rc = cu_apikey_set_roles(db, j->info.id, j->roles);
        snprintf(j->info.roles, sizeof(j->info.roles), "%s", j->roles);
    }
    if (rc == CU_OK && j->networks[0] != '\0') {
        rc = cu_apikey_set_networks(db, j->info.id, j->networks);
        snprintf(j->info.networks, sizeof(j->info.networks), "%s", j->networks);
    }
    /* The key's owner: the staff member who makes it, or the owner of the key that makes it
     * (so that a key cannot make one that outlives the person behind it). */
    const struct cu_principal *by = &j->req->principal;
    const char *owner = by->kind == CU_PRINCIPAL_STAFF ? by->id : by->key.owner;
    if (rc == CU_OK && owner[0] != '\0' && strcmp(owner, CU_APIKEY_INSTALLATION) != 0) {
        rc = cu_apikey_set_owner(db, j->info.id, owner);
        snprintf(j->info.owner, sizeof(j->info.owner), "%s", owner);
    }
    if (rc == CU_OK)
        rc = audit_key(w, "apikey.create", &j->info);
    if (rc != CU_OK && rc != CU_E_BUSY)
        rc = cu_resp_fail(j->resp, rc, "the key could not be made");
    return rc;
}

static enum cu_err create_answer(struct cu_req *req, struct cu_resp *resp, void *arg)
{
    struct key_job *j = arg;
    json_t *v = apikey_json(&j->info);
    json_object_set_new(v, "key", json_string(j->token));
    cu_crypto_wipe(j->token, sizeof(j->token));
    cu_log(CU_LOG_INFO, "apikey.created", CU_LS("request_id", req->id), CU_LS("key_id", j->info.id),
           CU_LS("by", req->principal.id));
    return cu_resp_json(resp, 201, v);
}

enum cu_err cu_handle_apikeys_create(struct cu_req *req, struct cu_resp *resp)
{
    struct key_job *j = cu_req_alloc(req, sizeof(*j), key_job_clear);
    enum cu_err rc = j != NULL ? cu_req_json(req, resp, &j->body) : CU_E_NOMEM;

    bool given = false;

    if (rc == CU_OK)
        rc = parse_create(req, resp, j->body, &j->name, &j->scopes, &j->expires);
    if (rc == CU_OK)
        rc = cu_req_roles(req, resp, j->body, j->roles, sizeof(j->roles), &given);
    if (rc == CU_OK)
        rc = parse_networks(req, resp, j->body, j->networks, sizeof(j->networks));
    /* Least privilege: a key can only make keys whose scopes (and whose roles' permissions) it
     * holds itself, so apikeys.write is not a way to every other scope. */
    if (rc == CU_OK)
        rc = cu_req_may_grant(req, resp, "apikey.create", "",
                              j->scopes | cu_policy_roles_permissions(req->policy, j->roles));
    if (rc != CU_OK)
        return resp->err ? resp->err : cu_resp_fail(resp, rc, "the key could not be made");
    j->req = req;
    j->resp = resp;
    return cu_req_change(req, create_apply, create_answer, j);
}

enum cu_err cu_handle_apikey_get(struct cu_req *req, struct cu_resp *resp)
{
    struct cu_apikey_info info;
    struct cu_db *db = NULL;
    enum cu_err rc;

    if (!valid_key_id(req->params[0]))
        return cu_resp_fail(resp, CU_E_INVALID, "the key id must be ak_ and 16 hex digits");
    rc = cu_req_db(req, &db);
    if (rc == CU_OK)
        rc = cu_apikey_get(db, req->params[0], &info);
    if (rc == CU_OK)
        rc = cu_req_audit(req, "apikey.read", target_of(&info).text, "success", NULL);
    if (rc == CU_E_NOT_FOUND)
        return cu_resp_fail(resp, rc, "no API key has this id");
    if (rc != CU_OK)
        return cu_resp_fail(resp, rc, "the key could not be read");
    return cu_resp_json(resp, 200, apikey_json(&info));
}

static enum cu_err revoke_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct key_job *j = arg;
    const char *id = j->req->params[0];
    enum cu_err rc = cu_apikey_get(db, id, &j->info);
    bool was_revoked = rc == CU_OK && j->info.revoked_at != 0;

    if (rc == CU_OK && !was_revoked)
        rc = cu_apikey_revoke(db, id);
    if (rc == CU_OK && !was_revoked)
        rc = cu_apikey_get(db, id, &j->info);
    if (rc == CU_OK && !was_revoked)
        rc = audit_key(w, "apikey.revoke", &j->info);
    if (rc == CU_E_NOT_FOUND)
        return cu_resp_fail(j->resp, rc, "no API key has this id");
    if (rc != CU_OK && rc != CU_E_BUSY)
        return cu_resp_fail(j->resp, rc, "the key could not be revoked");
    return rc;
}

static enum cu_err revoke_answer(struct cu_req *req, struct cu_resp *resp, void *arg)
{
    struct key_job *j = arg;
    cu_log(CU_LOG_INFO, "apikey.revoked", CU_LS("request_id", req->id), CU_LS("key_id", j->info.id),
           CU_LS("by", req->principal.id));
    return cu_resp_json(resp, 200, apikey_json(&j->info));
}

/* Revoking: the key is read first (a key whose scopes the caller lacks is refused, audited),
 * then revoked in the unit of work, where it is read again. */
enum cu_err cu_handle_apikey_revoke(struct cu_req *req, struct cu_resp *resp)
{
    struct key_job *j = cu_req_alloc(req, sizeof(*j), key_job_clear);
    struct cu_db *db = NULL;
    enum cu_err rc;

    if (!valid_key_id(req->params[0]))
        return cu_resp_fail(resp, CU_E_INVALID, "the key id must be ak_ and 16 hex digits");
    rc = j != NULL ? cu_req_db(req, &db) : CU_E_NOMEM;
    if (rc == CU_OK)
        rc = cu_apikey_get(db, req->params[0], &j->info);
    if (rc == CU_OK && cu_req_may_grant(req, resp, "apikey.revoke", target_of(&j->info).text,
                                        j->info.scopes | cu_policy_roles_permissions(
                                                             req->policy, j->info.roles)) != CU_OK)
        return resp->err;
    if (rc == CU_E_NOT_FOUND)
        return cu_resp_fail(resp, rc, "no API key has this id");
    if (rc != CU_OK)
        return cu_resp_fail(resp, rc, "the key could not be revoked");
    j->req = req;
    j->resp = resp;
    return cu_req_change(req, revoke_apply, revoke_answer, j);
}
