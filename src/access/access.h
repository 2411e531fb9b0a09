/*
 * access.h - who acts, and the one door: whether a principal may use a route, and whether it
 * may grant permissions to another (an API key, a staff member).
 *
 * The face authenticates a request into a struct cu_principal and puts it in the request's
 * unit of work (cu_access_actor); services read it back from the unit (cu_access_principal).
 * Every route names the permission it needs, and cu_access_decide alone says yes or no, with
 * the reason; the scope-escalation rule (a principal can only grant what it holds) lives in
 * cu_access_may_grant alone. Permissions are today's scopes (identity/apikey.h), with the same
 * names; roles and conditions come with access control proper.
 */
#ifndef CU_ACCESS_ACCESS_H
#define CU_ACCESS_ACCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "access/policy.h"
#include "base/err.h"
#include "identity/apikey.h"
#include "identity/identity.h"
#include "store/work.h"

enum cu_principal_kind {
    CU_PRINCIPAL_NONE = 0,
    CU_PRINCIPAL_APIKEY,   /* an API key */
    CU_PRINCIPAL_STAFF,    /* a staff member's session */
    CU_PRINCIPAL_CUSTOMER, /* a customer's session */
};

/* Who a request acts as. id and scopes hold for every kind: the key's id and scopes, or the
 * staff member's id and scopes, or the customer's id (no scopes). */
struct cu_principal {
    enum cu_principal_kind kind;
    char id[CU_SUBJECT_ID_BYTES];
    uint64_t scopes;
    struct cu_apikey_info key;      /* CU_PRINCIPAL_APIKEY */
    struct cu_session_info session; /* CU_PRINCIPAL_STAFF and CU_PRINCIPAL_CUSTOMER */
    bool has_totp;                  /* sessions: the subject has a second factor */
    struct cu_staff_access access;  /* staff: roles and attributes for the access policy */
    bool capped;                    /* a key owned by a staff member: at most cap */
    uint64_t cap;                   /* the owner's scopes and what their roles can give */
    uint64_t approved;              /* an approved action's permission, as it is run */
};

/* What a route demands beyond its permission (struct cu_route flags). */
enum cu_access_flags {
    CU_ACCESS_SESSION = 1 << 0, /* a customer's or staff member's session (not an API key) */
    CU_ACCESS_FRESH = 1 << 1,   /* a recent sign-in or step-up (identity.step_up_minutes) */
    CU_ACCESS_ENROL = 1 << 2,   /* open to sessions that must still enrol a second factor */
    /* the permission is decided on the customer the request touches: the door lets the request
     * in when the permission could hold for some customer, and the handler decides again on
     * the customer (cu_access_decide_on) before it reads or changes anything of one */
    CU_ACCESS_CUSTOMER = 1 << 3,
    /* any signed-in staff member or API key, without a permission: the handler decides what
     * the principal may see or do (the approval routes) */
    CU_ACCESS_SIGNED = 1 << 4,
    /* a customer's session too, without the permission (and without aal2 at the door): the
     * handler confines it to what is the customer's own (their accounts) */
    CU_ACCESS_OWN = 1 << 5,
};

/* What a decision weighs besides the principal. */
struct cu_access_ctx {
    const struct cu_identity *identity; /* for the freshness of a session; NULL: never fresh */
    bool customer_mfa_required;         /* [identity] customer_mfa_required */
    int64_t now_ms;
    const struct cu_policy *policy; /* decides permissions; NULL: the principal's own only */
    bool has_ip;                    /* the request's source address, for conditions */
    struct cu_ip ip;
};

/* A decision: CU_OK (allow), or the error the request answers (CU_E_FORBIDDEN,
 * CU_E_STEP_UP, CU_E_MFA_ENROL) with a reason fit for the client, and whether the denial
 * must be audited (as access.denied) and with what details. */
struct cu_access_decision {
    enum cu_err err;
    enum cu_access_effect effect; /* CU_ACCESS_ALLOW or CU_ACCESS_ALLOW_MASKED when err is CU_OK */
    char reason[400];
    bool audit;          /* a denial worth a record (not a missing second factor) */
    const char *missing; /* the permission lacked, or NULL (static) */
};

/* cu_access_decide(p, permission, flags, ctx, out): whether p may use a route that needs
 * permission (0: none) and flags (enum cu_access_flags), in this order: the kind of principal
 * (session-only routes, customers kept off permission routes), a second factor where one is
 * due, a session signed in with a second factor for a permission, a recent sign-in where the
 * route demands one, and the permission. Fills out; returns out->err. Deny by default: an
 * unauthenticated principal is denied any permission or session route. */
enum cu_err cu_access_decide(const struct cu_principal *p, uint64_t permission, unsigned flags,
                             const struct cu_access_ctx *ctx, struct cu_access_decision *out);

/* cu_access_decide_on(p, permission, r, ctx, out): the permission alone (no route flags), on
 * customer r, as the policy of ctx decides it (without a policy, p's own permissions). Fills
 * out as cu_access_decide does; a denial's reason never tells the customer's attributes. */
enum cu_err cu_access_decide_on(const struct cu_principal *p, uint64_t permission,
                                const struct cu_access_resource *r, const struct cu_access_ctx *ctx,
                                struct cu_access_decision *out);

/* cu_access_subject_of(p, out): the policy's view of p: kind, id, own permissions, session.
 * Only API keys and staff members have one (false for others). */
bool cu_access_subject_of(const struct cu_principal *p, struct cu_access_subject *out);

/* cu_access_may_grant(p, scopes, missing, cap): CU_OK when p holds every permission in scopes
 * (what it would give a key or a staff member, or what the key or staff member it acts on
 * holds); else CU_E_FORBIDDEN with the names of those it lacks in missing (space-separated,
 * cap bytes). */
enum cu_err cu_access_may_grant(const struct cu_principal *p, uint64_t scopes, char *missing,
                                size_t cap);

/* cu_access_may_grant_by(p, ctx, scopes, missing, cap): cu_access_may_grant as the policy of
 * ctx decides it: p holds a permission it may give when the policy allows it now (masked or
 * not), so a forbid or a failing condition on p also stops p giving it to a key or a staff
 * member; without a policy, p's own permissions alone. */
enum cu_err cu_access_may_grant_by(const struct cu_principal *p, const struct cu_access_ctx *ctx,
                                   uint64_t scopes, char *missing, size_t cap);

/* cu_access_actor(p, ctx): puts p in a unit's context: the actor type and id of its audit
 * records, its assurance level, and the principal itself for services (p must outlive the
 * unit). */
void cu_access_actor(const struct cu_principal *p, struct cu_work_ctx *ctx);

/* cu_access_principal(w): the principal of w's request, or NULL (the system, a CLI command). */
const struct cu_principal *cu_access_principal(const struct cu_work *w);

/* The policy in force (access/policy.h), followed while running: a reload that reads a good
 * file swaps it whole; a bad file leaves the one in force. Readers take a reference for as
 * long as they decide with it. */
struct cu_access_policies;

/* Seconds a changed policy file must be left alone before a reload takes it. */
#define CU_POLICY_SETTLE_S 2

/* cu_access_policies_new(path, out, err): holds the policy in path, or the built-in policy when
 * path is NULL or empty. CU_E_INVALID, CU_E_IO or CU_E_TOO_LARGE (err says where and why)
 * when the file cannot be used. Free with cu_access_policies_free. */
CU_WUR enum cu_err cu_access_policies_new(const char *path, struct cu_access_policies **out,
                                          struct cu_policy_error *err);

/* cu_access_policies_free(h): NULL does nothing. Every reference must have been given back. */
void cu_access_policies_free(struct cu_access_policies *h);

/* cu_access_policy_get(h): the policy in force, referenced; give it back with
 * cu_access_policy_put. */
const struct cu_policy *cu_access_policy_get(struct cu_access_policies *h);

/* cu_access_policy_put(h, p): gives back a reference from cu_access_policy_get; NULL does
 * nothing. */
void cu_access_policy_put(struct cu_access_policies *h, const struct cu_policy *p);

/* cu_access_policies_reload(h, changed, err): reads the file again when it is not the one in
 * force (another inode, size or modification time). *changed says whether a new policy is in
 * force. A file that cannot be used leaves the one in force and returns its error, once per
 * version of the file (the same bad file is not reported again). */
CU_WUR enum cu_err cu_access_policies_reload(struct cu_access_policies *h, bool *changed,
                                             struct cu_policy_error *err);

/* cu_access_policy_write_default(path): writes the policy a data directory starts with (the
 * built-in roles alone, commented), mode 0600, never over a file: CU_E_EXISTS when path
 * exists. */
CU_WUR enum cu_err cu_access_policy_write_default(const char *path);

/* cu_access_kind_name(kind): "anonymous", "apikey", "staff" or "customer". */
const char *cu_access_kind_name(enum cu_principal_kind kind);

#endif
