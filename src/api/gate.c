/*
 * gate.c - decisions on a customer (gate.h): the customer's attributes for the policy, the
 * decision with the request's context, and the refusal, audited, before or inside a unit.
 */
#include "api/gate.h"

#include <stdio.h>
#include <string.h>

#include "api/server.h"
#include "vault/fields.h"

void cu_customer_attrs_of(const struct cu_customer *c, struct cu_customer_attrs *out)
{
    size_t nf = 0, i;
    const struct cu_field_def *defs = cu_fields(&nf), *country = cu_field_find("country");
    json_t *t;

    memset(out, 0, sizeof(*out));
    out->r.id = c->id;
    out->r.status = c->status[0] ? c->status : NULL;
    if (country != NULL)
        out->r.country = c->values[country - defs];
    json_array_foreach(c->tags, i, t)
    {
        if (out->r.ntags < CU_VAULT_MAX_TAGS && json_is_string(t))
            out->tags[out->r.ntags++] = json_string_value(t);
    }
    out->r.tags = out->tags;
}

enum cu_err cu_req_decide_on(struct cu_req *req, uint64_t permission,
                             const struct cu_access_resource *r, struct cu_access_decision *out)
{
    struct cu_access_ctx ctx;

    cu_req_access_ctx(req, &ctx);
    return cu_access_decide_on(&req->principal, permission, r, &ctx, out);
}

enum cu_access_effect cu_req_effect_on(struct cu_req *req, uint64_t permission,
                                       const struct cu_customer *c)
{
    struct cu_customer_attrs a;
    struct cu_access_decision d;

    cu_customer_attrs_of(c, &a);
    return cu_req_decide_on(req, permission, &a.r, &d) == CU_OK ? d.effect : CU_ACCESS_DENY;
}

bool cu_req_unmask_on(struct cu_req *req, const struct cu_customer *c)
{
    return cu_req_effect_on(req, CU_SCOPE_CUSTOMERS_READ, c) == CU_ACCESS_ALLOW &&
           cu_req_effect_on(req, CU_SCOPE_CUSTOMERS_UNMASK, c) == CU_ACCESS_ALLOW;
}

/* The details of an access.denied record of a customer: the method and the permission
 * lacked (never the customer's attributes). */
static json_t *denied_details(const struct cu_req *req, const struct cu_access_decision *d,
                              uint64_t permission)
{
    const char *name = d->missing ? d->missing : cu_apikey_scope_name(permission);
    return json_pack("{s:s, s:s, s:s}", "method", req->method_name, "scope", name ? name : "?",
                     "reason", "policy, on the customer");
}

static void target_of(char *out, size_t cap, const char *id)
{
    snprintf(out, cap, "customer:%.*s", CU_CUSTOMER_ID_BYTES - 1, id);
}

enum cu_err cu_req_gate_on(struct cu_req *req, struct cu_resp *resp, uint64_t permission,
                           const struct cu_access_resource *r, enum cu_access_effect *effect)
{
    char target[CU_CUSTOMER_ID_BYTES + 10] = "";
    struct cu_access_decision d;

    if (cu_req_decide_on(req, permission, r, &d) == CU_OK) {
        if (effect != NULL)
            *effect = d.effect;
        return CU_OK;
    }
    if (r->id != NULL)
        target_of(target, sizeof(target), r->id);
    if (cu_req_audit_refusal(req, "access.denied", target, denied_details(req, &d, permission)) !=
        CU_OK)
        return cu_resp_fail(resp, CU_E_AUDIT, "the refusal could not be audited");
    return cu_resp_fail(resp, d.err, "%s", d.reason);
}

enum cu_err cu_req_gate(struct cu_req *req, struct cu_resp *resp, uint64_t permission,
                        const struct cu_customer *c, enum cu_access_effect *effect)
{
    struct cu_customer_attrs a;

    cu_customer_attrs_of(c, &a);
    return cu_req_gate_on(req, resp, permission, &a.r, effect);
}

enum cu_err cu_req_gate_id(struct cu_req *req, struct cu_resp *resp, uint64_t permission,
                           const char *id)
{
    struct cu_customer c;
    struct cu_db *db = NULL;
    enum cu_err rc = cu_req_db(req, &db);

    memset(&c, 0, sizeof(c));
    if (rc == CU_OK)
        rc = cu_vault_get(req->app->vault, db, id, false, &c);
    if (rc == CU_OK)
        rc = cu_req_gate(req, resp, permission, &c, NULL);
    else if (rc == CU_E_NOT_FOUND)
        rc = cu_resp_fail(resp, rc, "no customer has this id");
    else
        rc = cu_resp_fail(resp, rc, "the customer could not be read");
    cu_customer_clear(&c);
    return rc;
}

enum cu_err cu_work_gate_refuse(struct cu_req *req, struct cu_work *w,
                                const struct cu_access_decision *d, const char *target,
                                struct cu_gate_result *out)
{
    out->refused = true;
    snprintf(out->reason, sizeof(out->reason), "%s", d->reason);
    return cu_work_audit(w, "access.denied", target, "denied", denied_details(req, d, 0));
}

enum cu_err cu_work_gate(struct cu_req *req, struct cu_work *w, struct cu_db *db, const char *id,
                         uint64_t permission, struct cu_gate_result *out)
{
    char target[CU_CUSTOMER_ID_BYTES + 10];
    struct cu_customer c;
    struct cu_customer_attrs a;
    struct cu_access_decision d;
    enum cu_err rc;

    memset(out, 0, sizeof(*out));
    memset(&c, 0, sizeof(c));
    rc = cu_vault_get(req->app->vault, db, id, false, &c);
    if (rc == CU_OK) {
        cu_customer_attrs_of(&c, &a);
        target_of(target, sizeof(target), c.id);
        if (cu_req_decide_on(req, permission, &a.r, &d) != CU_OK) {
            if (d.missing == NULL)
                d.missing = cu_apikey_scope_name(permission);
            rc = cu_work_gate_refuse(req, w, &d, target, out);
        }
    }
    cu_customer_clear(&c);
    return rc;
}

enum cu_err cu_gate_refused_answer(struct cu_resp *resp, const struct cu_gate_result *g)
{
    return cu_resp_fail(resp, CU_E_FORBIDDEN, "%s", g->reason);
}
