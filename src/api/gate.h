/*
 * gate.h - decisions on a customer: the access policy's second look, once a handler knows the
 * customer a request touches (routes flagged CU_ROUTE_CUSTOMER are let in when the permission
 * could hold for some customer, docs/access.md). Every customer route asks here before it
 * reads or changes anything of a customer, and a list asks for each row.
 */
#ifndef CU_API_GATE_H
#define CU_API_GATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "access/access.h"
#include "api/http.h"
#include "vault/vault.h"

/* The customer's attributes the policy reads (id, status, country, tags; no personal field),
 * pointing into the customer record, which must outlive them. */
struct cu_customer_attrs {
    const char *tags[CU_VAULT_MAX_TAGS];
    struct cu_access_resource r;
};

/* cu_customer_attrs_of(c, out): c's attributes. */
void cu_customer_attrs_of(const struct cu_customer *c, struct cu_customer_attrs *out);

/* cu_req_decide_on(req, permission, r, out): the permission on customer r for the request's
 * principal, now, from its address (cu_access_decide_on). Returns out->err: CU_OK (out->effect
 * says whether masked) or CU_E_FORBIDDEN with the reason. */
enum cu_err cu_req_decide_on(struct cu_req *req, uint64_t permission,
                             const struct cu_access_resource *r, struct cu_access_decision *out);

/* cu_req_effect_on(req, permission, c): the effect alone (for each row of a list):
 * CU_ACCESS_ALLOW, CU_ACCESS_ALLOW_MASKED or CU_ACCESS_DENY. */
enum cu_access_effect cu_req_effect_on(struct cu_req *req, uint64_t permission,
                                       const struct cu_customer *c);

/* cu_req_unmask_on(req, c): whether c's personal fields are shown in full: reading c is
 * allowed without masking and so is customers.unmask, both on c. */
bool cu_req_unmask_on(struct cu_req *req, const struct cu_customer *c);

/* cu_req_gate_on(req, resp, permission, r, effect): CU_OK when the principal may use
 * permission on the customer of attributes r (r->id NULL: one not made yet); else the denial
 * is audited (access.denied, committed although the request fails) and resp answers 403 with
 * the reason. *effect (may be NULL) gets allow or allow masked. */
enum cu_err cu_req_gate_on(struct cu_req *req, struct cu_resp *resp, uint64_t permission,
                           const struct cu_access_resource *r, enum cu_access_effect *effect);

/* cu_req_gate(req, resp, permission, c, effect): cu_req_gate_on on customer c. */
enum cu_err cu_req_gate(struct cu_req *req, struct cu_resp *resp, uint64_t permission,
                        const struct cu_customer *c, enum cu_access_effect *effect);

/* cu_req_gate_id(req, resp, permission, id): cu_req_gate on the customer of that id, read
 * on the request's read view (no personal field decrypted); CU_E_NOT_FOUND (answered 404)
 * for no such customer. */
enum cu_err cu_req_gate_id(struct cu_req *req, struct cu_resp *resp, uint64_t permission,
                           const char *id);

/* A decision inside a unit of work: what a change's apply found. */
struct cu_gate_result {
    bool refused;     /* the denial is recorded in the unit; nothing else was done */
    char reason[400]; /* why, for the 403 the answer sends */
};

/* cu_work_gate(req, w, db, id, permission, out): inside a unit, on db: decides permission on
 * customer id as stored now. A denial records access.denied in w and sets out->refused; the
 * apply then changes nothing and returns CU_OK, so that the record commits. Returns the read's
 * error (CU_E_NOT_FOUND: no such customer). */
enum cu_err cu_work_gate(struct cu_req *req, struct cu_work *w, struct cu_db *db, const char *id,
                         uint64_t permission, struct cu_gate_result *out);

/* cu_work_gate_refuse(req, w, d, target, out): records the denial d (of d->missing) of target
 * in w and copies its reason into out (refused). */
enum cu_err cu_work_gate_refuse(struct cu_req *req, struct cu_work *w,
                                const struct cu_access_decision *d, const char *target,
                                struct cu_gate_result *out);

/* cu_gate_refused_answer(resp, g): the 403 of a change its unit refused. */
enum cu_err cu_gate_refused_answer(struct cu_resp *resp, const struct cu_gate_result *g);

/* What an explanation asks (POST /v1/access/explain, `custodia access explain`). */
struct cu_explain_in {
    const char *principal; /* stf_… or ak_… */
    uint64_t permission;   /* one permission */
    const char *customer;  /* cus_…, or NULL */
    bool has_ip;
    struct cu_ip ip;
    int64_t at_ms;
    int aal;               /* a staff member's session: 1 or 2 */
    int64_t session_age_s; /* and its age */
};

struct cu_app;

/* cu_explain(app, db, policy, in, why, err): how policy decides in for the principal and
 * customer as stored now (a disabled staff member or a revoked or expired key is denied, and
 * why says so). CU_E_INVALID or CU_E_NOT_FOUND (or the store's error) with *err saying why. */
enum cu_err cu_explain(struct cu_app *app, struct cu_db *db, const struct cu_policy *policy,
                       const struct cu_explain_in *in, struct cu_access_why *why, const char **err);

/* cu_principal_load(app, db, policy, id, at, p, unusable, why): staff member or API key id as
 * stored now (scopes, roles, attributes; a key's owner's cap), into p; *unusable is NULL, or
 * why it could not act now (disabled, revoked, expired, its owner gone). On error *why says
 * what went wrong (CU_E_INVALID: not an id, CU_E_NOT_FOUND: no such principal). */
enum cu_err cu_principal_load(struct cu_app *app, struct cu_db *db, const struct cu_policy *policy,
                              const char *id, int64_t at, struct cu_principal *p,
                              const char **unusable, const char **why);

/* cu_explain_json(principal, permission, why, policy): the explanation as the API answers it. */
json_t *cu_explain_json(const char *principal, const char *permission,
                        const struct cu_access_why *why, const struct cu_policy *policy);

#endif
