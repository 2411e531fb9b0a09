/*
 * access_routes.c - POST /v1/access/explain: how the access policy in force would decide a
 * permission for a principal (an API key or a staff member), optionally on a customer, from an
 * address, at a time (docs/access.md, docs/api.md). It reads; it changes nothing.
 */
#include <stdio.h>
#include <string.h>

#include "access/access.h"
#include "api/gate.h"
#include "api/handlers.h"
#include "api/http.h"
#include "api/server.h"
#include "base/clock.h"
#include "base/json.h"
#include "vault/vault.h"

/* The principal of an explanation, as stored now. */
struct explained {
    struct cu_principal p;
    bool usable;        /* active staff member, or a key neither revoked nor expired */
    const char *reason; /* why not, when not */
};

static enum cu_err load_principal(struct cu_app *app, struct cu_db *db,
                                  const struct cu_policy *policy, const char *id, int64_t at,
                                  struct explained *x, const char **why)
{
    bool active = false, totp = false;
    enum cu_err rc;

    memset(x, 0, sizeof(*x));
    snprintf(x->p.id, sizeof(x->p.id), "%s", id);
    if (strncmp(id, "stf_", 4) == 0 && strlen(id) == 20) {
        x->p.kind = CU_PRINCIPAL_STAFF;
        rc = cu_identity_subject_state(app->identity, db, CU_SUBJECT_STAFF, id, &x->p.scopes,
                                       &active, &totp);
        if (rc == CU_OK)
            rc = cu_identity_staff_access(db, id, &x->p.access);
        x->usable = active;
        x->p.has_totp = totp;
        x->reason = "the staff member is disabled";
    } else if (strncmp(id, "ak_", 3) == 0 && strlen(id) == 19) {
        struct cu_apikey_info k;
        x->p.kind = CU_PRINCIPAL_APIKEY;
        rc = cu_apikey_get(db, id, &k);
        if (rc == CU_OK) {
            x->p.key = k; /* owner, allow-list and expiry, as authentication gives them */
            x->p.scopes = k.scopes;
            snprintf(x->p.access.roles, sizeof(x->p.access.roles), "%s", k.roles);
            x->usable = k.revoked_at == 0 && (k.expires_at == 0 || k.expires_at > at);
            x->reason = "the API key is revoked or expired";
        }
        /* a key owned by a staff member: at most what the owner may, and only while active */
        if (rc == CU_OK && strcmp(k.owner, CU_APIKEY_INSTALLATION) != 0) {
            struct cu_staff_access a;
            uint64_t scopes = 0;
            rc = cu_identity_subject_state(app->identity, db, CU_SUBJECT_STAFF, k.owner, &scopes,
                                           &active, &totp);
            if (rc == CU_OK)
                rc = cu_identity_staff_access(db, k.owner, &a);
            if (rc == CU_E_NOT_FOUND || (rc == CU_OK && !active)) {
                rc = CU_OK;
                x->usable = false;
                x->reason = "the API key's owner is disabled or no longer exists";
            } else if (rc == CU_OK) {
                x->p.capped = true;
                x->p.cap = scopes | cu_policy_roles_permissions(policy, a.roles);
            }
        }
    } else {
        *why = "the principal must be a staff member's id (stf_…) or an API key's id (ak_…)";
        return CU_E_INVALID;
    }
    *why = rc == CU_E_NOT_FOUND ? "no principal has this id" : "the principal could not be read";
    return rc;
}

enum cu_err cu_principal_load(struct cu_app *app, struct cu_db *db, const struct cu_policy *policy,
                              const char *id, int64_t at, struct cu_principal *p,
                              const char **unusable, const char **why)
{
    struct explained x;
    enum cu_err rc = load_principal(app, db, policy, id, at, &x, why);

    *p = x.p;
    *unusable = rc == CU_OK && !x.usable ? x.reason : NULL;
    return rc;
}

/* The customer's attributes the policy reads: status, country, tags; no personal field. */
struct explained_customer {
    struct cu_customer c;
    struct cu_customer_attrs a;
};

enum cu_err cu_explain(struct cu_app *app, struct cu_db *db, const struct cu_policy *policy,
                       const struct cu_explain_in *in, struct cu_access_why *why, const char **err)
{
    struct explained who;
    struct explained_customer cust;
    struct cu_access_subject s;
    struct cu_access_env e = {.now_ms = in->at_ms, .has_ip = in->has_ip, .ip = in->ip};
    enum cu_err rc;

    memset(&cust, 0, sizeof(cust));
    memset(why, 0, sizeof(*why));
    rc = load_principal(app, db, policy, in->principal, in->at_ms, &who, err);
    if (rc == CU_OK && in->customer != NULL) {
        rc = cu_vault_get(app->vault, db, in->customer, false, &cust.c);
        *err = rc == CU_E_NOT_FOUND ? "no customer has this id" : "the customer could not be read";
        if (rc == CU_OK)
            cu_customer_attrs_of(&cust.c, &cust.a);
    }
    if (rc == CU_OK) {
        if (who.p.kind == CU_PRINCIPAL_STAFF) {
            who.p.session.aal = in->aal == 1 ? CU_AAL1 : CU_AAL2;
            who.p.session.auth_at = in->at_ms - in->session_age_s * 1000;
        }
        if (!who.usable) {
            why->effect = CU_ACCESS_DENY;
            snprintf(why->decided_by, sizeof(why->decided_by), "%s", who.reason);
        } else if (cu_access_subject_of(&who.p, &s)) {
            (void)cu_policy_decide(policy, &s, in->permission, in->customer ? &cust.a.r : NULL, &e,
                                   why);
        }
    }
    cu_customer_clear(&cust.c);
    return rc;
}

json_t *cu_explain_json(const char *principal, const char *permission,
                        const struct cu_access_why *why, const struct cu_policy *policy)
{
    return json_pack(
        "{s:s, s:s, s:s, s:s, s:s?, s:o, s:{s:s, s:s}}", "principal", principal, "permission",
        permission, "effect", cu_access_effect_name(why->effect), "decided_by", why->decided_by,
        "failed", why->failed[0] ? why->failed : NULL, "approvals",
        why->effect == CU_ACCESS_NEEDS_APPROVAL
            ? json_pack("{s:i, s:I}", "needed", (int)why->approvals, "within_seconds",
                        (json_int_t)(why->approval_ms / 1000))
            : json_null(),
        "policy", "file", cu_policy_source(policy), "sha256", cu_policy_digest(policy));
}

enum cu_err cu_handle_access_explain(struct cu_req *req, struct cu_resp *resp)
{
    static const char *const allowed[] = {"principal", "permission", "customer",           "ip",
                                          "at",        "aal",        "session_age_seconds"};
    struct cu_explain_in in = {.at_ms = cu_clock_now_ms(), .aal = 2};
    struct cu_access_why why;
    const char *perm = NULL, *ip = NULL, *at = NULL, *bad = NULL, *why_not = NULL;
    char err[CU_JSON_ERR_BYTES];
    json_t *body = NULL, *v;
    struct cu_db *db = NULL;
    enum cu_err rc = cu_req_json(req, resp, &body);

    if (rc != CU_OK)
        return rc;
    if (cu_json_only_keys(body, allowed, 7, &bad) != CU_OK) {
        rc = cu_resp_fail(resp, CU_E_INVALID, "unknown field '%.64s'", bad);
        goto out;
    }
    if (cu_json_get_string(body, "principal", true, 32, &in.principal, err) != CU_OK ||
        cu_json_get_string(body, "permission", true, 64, &perm, err) != CU_OK ||
        cu_json_get_string(body, "customer", false, 32, &in.customer, err) != CU_OK ||
        cu_json_get_string(body, "ip", false, 45, &ip, err) != CU_OK ||
        cu_json_get_string(body, "at", false, 64, &at, err) != CU_OK) {
        rc = cu_resp_fail(resp, CU_E_INVALID, "%s", err);
        goto out;
    }
    in.permission = cu_apikey_scope_parse(perm, strlen(perm));
    if (in.permission == 0) {
        rc = cu_resp_fail(resp, CU_E_INVALID, "field 'permission': unknown permission '%.64s'",
                          perm);
        goto out;
    }
    if (ip != NULL && cu_ip_parse(ip, &in.ip) != CU_OK) {
        rc = cu_resp_fail(resp, CU_E_INVALID, "field 'ip' must be an IPv4 or IPv6 address");
        goto out;
    }
    in.has_ip = ip != NULL;
    if (at != NULL && cu_clock_parse(at, &in.at_ms) != CU_OK) {
        rc = cu_resp_fail(resp, CU_E_INVALID, "field 'at' must be an RFC 3339 time");
        goto out;
    }
    v = json_object_get(body, "aal");
    if (v != NULL &&
        (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 2)) {
        rc = cu_resp_fail(resp, CU_E_INVALID, "field 'aal' must be 1 or 2");
        goto out;
    }
    in.aal = v ? (int)json_integer_value(v) : 2;
    v = json_object_get(body, "session_age_seconds");
    if (v != NULL && (!json_is_integer(v) || json_integer_value(v) < 0 ||
                      json_integer_value(v) > 366LL * 86400)) {
        rc = cu_resp_fail(resp, CU_E_INVALID, "field 'session_age_seconds' must be 0 to 31622400");
        goto out;
    }
    in.session_age_s = v ? json_integer_value(v) : 0;
    rc = cu_req_db(req, &db);
    if (rc == CU_OK)
        rc = cu_explain(req->app, db, req->policy, &in, &why, &why_not);
    if (rc != CU_OK) {
        rc = cu_resp_fail(resp, rc, "%s", why_not ? why_not : "the explanation failed");
        goto out;
    }
    rc = cu_req_audit(
        req, "access.explain", in.principal, "success",
        json_pack("{s:s, s:s}", "permission", perm, "effect", cu_access_effect_name(why.effect)));
    if (rc != CU_OK) {
        rc = cu_resp_fail(resp, rc, "the explanation could not be audited");
        goto out;
    }
    rc = cu_resp_json(resp, 200, cu_explain_json(in.principal, perm, &why, req->policy));
out:
    json_decref(body);
    return rc;
}
