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
};

/* What a route demands beyond its permission (struct cu_route flags). */
enum cu_access_flags {
    CU_ACCESS_SESSION = 1 << 0, /* a customer's or staff member's session (not an API key) */
    CU_ACCESS_FRESH = 1 << 1,   /* a recent sign-in or step-up (identity.step_up_minutes) */
    CU_ACCESS_ENROL = 1 << 2,   /* open to sessions that must still enrol a second factor */
};

/* What a decision weighs besides the principal. */
struct cu_access_ctx {
    const struct cu_identity *identity; /* for the freshness of a session; NULL: never fresh */
    bool customer_mfa_required;         /* [identity] customer_mfa_required */
    int64_t now_ms;
};

/* A decision: CU_OK (allow), or the error the request answers (CU_E_FORBIDDEN,
 * CU_E_STEP_UP, CU_E_MFA_ENROL) with a reason fit for the client, and whether the denial
 * must be audited (as access.denied) and with what details. */
struct cu_access_decision {
    enum cu_err err;
    char reason[160];
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

/* cu_access_may_grant(p, scopes, missing, cap): CU_OK when p holds every permission in scopes
 * (what it would give a key or a staff member, or what the key or staff member it acts on
 * holds); else CU_E_FORBIDDEN with the names of those it lacks in missing (space-separated,
 * cap bytes). */
enum cu_err cu_access_may_grant(const struct cu_principal *p, uint64_t scopes, char *missing,
                                size_t cap);

/* cu_access_actor(p, ctx): puts p in a unit's context: the actor type and id of its audit
 * records, its assurance level, and the principal itself for services (p must outlive the
 * unit). */
void cu_access_actor(const struct cu_principal *p, struct cu_work_ctx *ctx);

/* cu_access_principal(w): the principal of w's request, or NULL (the system, a CLI command). */
const struct cu_principal *cu_access_principal(const struct cu_work *w);

/* cu_access_kind_name(kind): "anonymous", "apikey", "staff" or "customer". */
const char *cu_access_kind_name(enum cu_principal_kind kind);

#endif
