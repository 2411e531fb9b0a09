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
    json_t *scopes = cu_resp_scopes(k->scopes);
    cu_clock_format(k->created_at, created);
    cu_clock_format(k->expires_at, expires);
    cu_clock_format(k->revoked_at, revoked);
    return json_pack("{s:s, s:s, s:o, s:s, s:s?, s:s?}", "id", k->id, "name", k->name, "scopes",
                     scopes, "created_at", created, "expires_at", k->expires_at ? expires : NULL,
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
    rc = cu_store_db(req->app->store, &db);
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

/* Audits a change to a key inside its transaction: the key's name, scopes and expiry, never
 * its text. */
static enum cu_err audit_key(struct cu_req *req, struct cu_db *db, const char *action,
                             const struct cu_apikey_info *k)
{
    json_t *d = apikey_json(k);
    json_object_del(d, "id");
    json_object_del(d, "created_at");
    return cu_app_audit(req, db, action, target_of(k).text, "success", d);
}

/* Least privilege: a key can only make or revoke keys whose scopes it holds itself, so
 * apikeys.write is not a way to every other scope. The refusal is audited. */
static enum cu_err refuse_escalation(struct cu_req *req, struct cu_resp *resp, const char *action,
                                     const char *target, uint64_t scopes)
{
    char names[512];
    if (cu_apikey_scopes_format(scopes & ~req->principal.scopes, names, sizeof(names)) != CU_OK)
        names[0] = '\0';
    enum cu_err rc = cu_req_audit_refusal(
        req, action, target,
        json_pack("{s:s, s:s}", "reason", "scope escalation", "missing", names));
    if (rc != CU_OK)
        return cu_resp_fail(resp, rc, "the refusal could not be audited");
    return cu_resp_fail(resp, CU_E_FORBIDDEN,
                        "a key can only grant or revoke scopes it holds; this one lacks: %s",
                        names);
}

static enum cu_err parse_create(struct cu_req *req, struct cu_resp *resp, json_t *body,
                                const char **name, uint64_t *scopes, int64_t *expires)
{
    static const char *const allowed[] = {"name", "scopes", "expires_at"};
    char err[CU_JSON_ERR_BYTES];
    const char *bad = NULL, *exp = NULL;

    if (cu_json_only_keys(body, allowed, 3, &bad) != CU_OK)
        return cu_resp_fail(resp, CU_E_INVALID, "unknown field '%.64s'", bad);
    if (cu_json_get_string(body, "name", true, CU_APIKEY_NAME_MAX, name, err) != CU_OK)
        return cu_resp_fail(resp, CU_E_INVALID, "%s", err);
    if (cu_apikey_check_name(*name) != CU_OK)
        return cu_resp_fail(resp, CU_E_INVALID,
                            "field 'name' may hold letters, digits, space, '.', '-' and '_'");
    if (cu_req_scopes(body, resp, true, scopes) != CU_OK)
        return resp->err;
    if (cu_json_get_string(body, "expires_at", false, 64, &exp, err) != CU_OK)
        return cu_resp_fail(resp, CU_E_INVALID, "%s", err);
    *expires = 0;
    if (exp != NULL && (cu_clock_parse(exp, expires) != CU_OK || *expires <= cu_clock_now_ms()))
        return cu_resp_fail(resp, CU_E_INVALID,
                            "field 'expires_at' must be an RFC 3339 time in the future");
    (void)req;
    return CU_OK;
}

enum cu_err cu_handle_apikeys_create(struct cu_req *req, struct cu_resp *resp)
{
    char token[CU_APIKEY_TOKEN_BYTES];
    struct cu_apikey_info info;
    struct cu_db *db = NULL;
    const char *name = NULL;
    uint64_t scopes = 0;
    int64_t expires = 0;
    json_t *body = NULL;
    enum cu_err rc = cu_req_json(req, resp, &body);

    if (rc == CU_OK)
        rc = parse_create(req, resp, body, &name, &scopes, &expires);
    if (rc == CU_OK && (scopes & ~req->principal.scopes) != 0)
        rc = refuse_escalation(req, resp, "apikey.create", "", scopes);
    if (rc == CU_OK)
        rc = cu_store_db(req->app->store, &db);
    if (rc == CU_OK)
        rc = cu_db_begin(db, CU_TXN_WRITE);
    if (rc == CU_OK) {
        rc = cu_apikey_create(req->app->apikeys, db, name, scopes, expires, &info, token);
        if (rc == CU_OK)
            rc = audit_key(req, db, "apikey.create", &info);
        rc = rc == CU_OK ? cu_db_commit(db) : (cu_db_rollback(db), rc);
    }
    json_decref(body);
    if (rc != CU_OK) {
        cu_crypto_wipe(token, sizeof(token));
        return resp->err ? resp->err : cu_resp_fail(resp, rc, "the key could not be made");
    }
    json_t *v = apikey_json(&info);
    json_object_set_new(v, "key", json_string(token));
    cu_crypto_wipe(token, sizeof(token));
    cu_log(CU_LOG_INFO, "apikey.created", CU_LS("request_id", req->id), CU_LS("key_id", info.id),
           CU_LS("by", req->principal.id));
    return cu_resp_json(resp, 201, v);
}

enum cu_err cu_handle_apikey_get(struct cu_req *req, struct cu_resp *resp)
{
    struct cu_apikey_info info;
    struct cu_db *db = NULL;
    enum cu_err rc;

    if (!valid_key_id(req->params[0]))
        return cu_resp_fail(resp, CU_E_INVALID, "the key id must be ak_ and 16 hex digits");
    rc = cu_store_db(req->app->store, &db);
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

enum cu_err cu_handle_apikey_revoke(struct cu_req *req, struct cu_resp *resp)
{
    struct cu_apikey_info info;
    struct cu_db *db = NULL;
    enum cu_err rc;

    if (!valid_key_id(req->params[0]))
        return cu_resp_fail(resp, CU_E_INVALID, "the key id must be ak_ and 16 hex digits");
    rc = cu_store_db(req->app->store, &db);
    if (rc == CU_OK)
        rc = cu_db_begin(db, CU_TXN_WRITE);
    if (rc == CU_OK) {
        rc = cu_apikey_get(db, req->params[0], &info);
        bool was_revoked = info.revoked_at != 0;
        if (rc == CU_OK && (info.scopes & ~req->principal.scopes) != 0) {
            cu_db_rollback(db);
            return refuse_escalation(req, resp, "apikey.revoke", target_of(&info).text,
                                     info.scopes);
        }
        if (rc == CU_OK && !was_revoked)
            rc = cu_apikey_revoke(db, req->params[0]);
        if (rc == CU_OK && !was_revoked)
            rc = cu_apikey_get(db, req->params[0], &info);
        if (rc == CU_OK && !was_revoked)
            rc = audit_key(req, db, "apikey.revoke", &info);
        rc = rc == CU_OK ? cu_db_commit(db) : (cu_db_rollback(db), rc);
    }
    if (rc == CU_E_NOT_FOUND)
        return cu_resp_fail(resp, rc, "no API key has this id");
    if (rc != CU_OK)
        return cu_resp_fail(resp, rc, "the key could not be revoked");
    cu_log(CU_LOG_INFO, "apikey.revoked", CU_LS("request_id", req->id), CU_LS("key_id", info.id),
           CU_LS("by", req->principal.id));
    return cu_resp_json(resp, 200, apikey_json(&info));
}
