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

static enum cu_err load_principal(struct cu_req *req, struct cu_resp *resp, struct cu_db *db,
                                  const char *id, int64_t at, struct explained *x)
{
    bool active = false, totp = false;
    enum cu_err rc;

    memset(x, 0, sizeof(*x));
    snprintf(x->p.id, sizeof(x->p.id), "%s", id);
    if (strncmp(id, "stf_", 4) == 0 && strlen(id) == 20) {
        x->p.kind = CU_PRINCIPAL_STAFF;
        rc = cu_identity_subject_state(req->app->identity, db, CU_SUBJECT_STAFF, id, &x->p.scopes,
                                       &active, &totp);
        if (rc == CU_OK)
            rc = cu_identity_staff_access(db, id, &x->p.access);
        x->usable = active;
        x->reason = "the staff member is disabled";
    } else if (strncmp(id, "ak_", 3) == 0 && strlen(id) == 19) {
        struct cu_apikey_info k;
        x->p.kind = CU_PRINCIPAL_APIKEY;
        rc = cu_apikey_get(db, id, &k);
        if (rc == CU_OK) {
            x->p.scopes = k.scopes;
            x->usable = k.revoked_at == 0 && (k.expires_at == 0 || k.expires_at > at);
            x->reason = "the API key is revoked or expired";
        }
    } else {
        return cu_resp_fail(resp, CU_E_INVALID,
                            "field 'principal' must be a staff member's id (stf_…) or an API "
                            "key's id (ak_…)");
    }
    if (rc == CU_E_NOT_FOUND)
        return cu_resp_fail(resp, rc, "no principal has this id");
    if (rc != CU_OK)
        return cu_resp_fail(resp, rc, "the principal could not be read");
    return CU_OK;
}

/* The customer's attributes the policy reads: status, country, tags; no personal field. */
struct explained_customer {
    struct cu_customer c;
    struct cu_customer_attrs a;
};

static enum cu_err load_customer(struct cu_req *req, struct cu_resp *resp, struct cu_db *db,
                                 const char *id, struct explained_customer *x)
{
    enum cu_err rc = cu_vault_get(req->app->vault, db, id, false, &x->c);

    if (rc == CU_E_NOT_FOUND)
        return cu_resp_fail(resp, rc, "no customer has this id");
    if (rc != CU_OK)
        return cu_resp_fail(resp, rc, "the customer could not be read");
    cu_customer_attrs_of(&x->c, &x->a);
    return CU_OK;
}

enum cu_err cu_handle_access_explain(struct cu_req *req, struct cu_resp *resp)
{
    static const char *const allowed[] = {"principal", "permission", "customer",           "ip",
                                          "at",        "aal",        "session_age_seconds"};
    struct explained who;
    struct explained_customer cust;
    struct cu_access_subject s;
    struct cu_access_env e = {.now_ms = cu_clock_now_ms()};
    struct cu_access_why why;
    const char *principal = NULL, *perm = NULL, *customer = NULL, *ip = NULL, *at = NULL,
               *bad = NULL;
    char err[CU_JSON_ERR_BYTES];
    json_t *body = NULL, *v;
    struct cu_db *db = NULL;
    uint64_t bit;
    enum cu_err rc = cu_req_json(req, resp, &body);

    memset(&cust, 0, sizeof(cust));
    if (rc != CU_OK)
        return rc;
    if (cu_json_only_keys(body, allowed, 7, &bad) != CU_OK) {
        rc = cu_resp_fail(resp, CU_E_INVALID, "unknown field '%.64s'", bad);
        goto out;
    }
    if (cu_json_get_string(body, "principal", true, 32, &principal, err) != CU_OK ||
        cu_json_get_string(body, "permission", true, 64, &perm, err) != CU_OK ||
        cu_json_get_string(body, "customer", false, 32, &customer, err) != CU_OK ||
        cu_json_get_string(body, "ip", false, 45, &ip, err) != CU_OK ||
        cu_json_get_string(body, "at", false, 64, &at, err) != CU_OK) {
        rc = cu_resp_fail(resp, CU_E_INVALID, "%s", err);
        goto out;
    }
    bit = cu_apikey_scope_parse(perm, strlen(perm));
    if (bit == 0) {
        rc = cu_resp_fail(resp, CU_E_INVALID, "field 'permission': unknown permission '%.64s'",
                          perm);
        goto out;
    }
    if (ip != NULL && cu_ip_parse(ip, &e.ip) != CU_OK) {
        rc = cu_resp_fail(resp, CU_E_INVALID, "field 'ip' must be an IPv4 or IPv6 address");
        goto out;
    }
    e.has_ip = ip != NULL;
    if (at != NULL && cu_clock_parse(at, &e.now_ms) != CU_OK) {
        rc = cu_resp_fail(resp, CU_E_INVALID, "field 'at' must be an RFC 3339 time");
        goto out;
    }
    rc = cu_req_db(req, &db);
    if (rc == CU_OK)
        rc = load_principal(req, resp, db, principal, e.now_ms, &who);
    if (rc == CU_OK && customer != NULL)
        rc = load_customer(req, resp, db, customer, &cust);
    if (rc != CU_OK)
        goto out;
    if (who.p.kind == CU_PRINCIPAL_STAFF) {
        json_int_t aal = 2, age = 0;
        v = json_object_get(body, "aal");
        if (v != NULL &&
            (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 2)) {
            rc = cu_resp_fail(resp, CU_E_INVALID, "field 'aal' must be 1 or 2");
            goto out;
        }
        aal = v ? json_integer_value(v) : 2;
        v = json_object_get(body, "session_age_seconds");
        if (v != NULL && (!json_is_integer(v) || json_integer_value(v) < 0 ||
                          json_integer_value(v) > 366LL * 86400)) {
            rc = cu_resp_fail(resp, CU_E_INVALID,
                              "field 'session_age_seconds' must be 0 to 31622400");
            goto out;
        }
        age = v ? json_integer_value(v) : 0;
        who.p.session.aal = aal == 2 ? CU_AAL2 : CU_AAL1;
        who.p.session.auth_at = e.now_ms - (int64_t)age * 1000;
    }
    memset(&why, 0, sizeof(why));
    if (!who.usable) {
        why.effect = CU_ACCESS_DENY;
        snprintf(why.decided_by, sizeof(why.decided_by), "%s", who.reason);
    } else if (cu_access_subject_of(&who.p, &s)) {
        (void)cu_policy_decide(req->policy, &s, bit, customer ? &cust.a.r : NULL, &e, &why);
    }
    rc = cu_req_audit(
        req, "access.explain", principal, "success",
        json_pack("{s:s, s:s}", "permission", perm, "effect", cu_access_effect_name(why.effect)));
    if (rc != CU_OK) {
        rc = cu_resp_fail(resp, rc, "the explanation could not be audited");
        goto out;
    }
    v = json_pack("{s:s, s:s, s:s, s:s, s:s?, s:o, s:{s:s, s:s}}", "principal", principal,
                  "permission", perm, "effect", cu_access_effect_name(why.effect), "decided_by",
                  why.decided_by, "failed", why.failed[0] ? why.failed : NULL, "approvals",
                  why.effect == CU_ACCESS_NEEDS_APPROVAL
                      ? json_pack("{s:i, s:I}", "needed", (int)why.approvals, "within_seconds",
                                  (json_int_t)(why.approval_ms / 1000))
                      : json_null(),
                  "policy", "file", cu_policy_source(req->policy), "sha256",
                  cu_policy_digest(req->policy));
    rc = cu_resp_json(resp, 200, v);
out:
    cu_customer_clear(&cust.c);
    json_decref(body);
    return rc;
}
