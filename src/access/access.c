/*
 * access.c - the one door: route decisions and the grant rule, for the principals the face
 * authenticates.
 */
#include "access/access.h"

#include <stdio.h>
#include <string.h>

static enum cu_err decide(struct cu_access_decision *out, enum cu_err err, bool audit,
                          const char *missing, const char *reason)
{
    out->err = err;
    out->audit = audit;
    out->missing = missing;
    snprintf(out->reason, sizeof(out->reason), "%s", reason);
    return err;
}

enum cu_err cu_access_decide(const struct cu_principal *p, uint64_t permission, unsigned flags,
                             const struct cu_access_ctx *ctx, struct cu_access_decision *out)
{
    bool session = p->kind == CU_PRINCIPAL_STAFF || p->kind == CU_PRINCIPAL_CUSTOMER;

    memset(out, 0, sizeof(*out));
    if (p->kind == CU_PRINCIPAL_NONE && (permission != 0 || (flags & CU_ACCESS_SESSION)))
        return decide(out, CU_E_UNAUTHENTICATED, false, NULL, "this route needs a credential");
    if ((flags & CU_ACCESS_SESSION) && !session)
        return decide(out, CU_E_FORBIDDEN, true, NULL,
                      "this route is for a signed-in customer or staff member");
    if (permission != 0 && p->kind == CU_PRINCIPAL_CUSTOMER)
        return decide(out, CU_E_FORBIDDEN, true, NULL, "this route is not open to customers");
    if (session && !p->has_totp && !(flags & CU_ACCESS_ENROL) &&
        (p->kind == CU_PRINCIPAL_STAFF || ctx->customer_mfa_required))
        return decide(out, CU_E_MFA_ENROL, false, NULL,
                      "enrol a second factor first: POST /v1/me/mfa/totp");
    if (session && permission != 0 && p->session.aal != CU_AAL2)
        return decide(out, CU_E_STEP_UP, false, NULL,
                      "this route needs a session signed in with a second factor: "
                      "POST /v1/auth/step-up");
    if (session && (flags & CU_ACCESS_FRESH) &&
        (ctx->identity == NULL ||
         !cu_identity_session_fresh(ctx->identity, &p->session, p->has_totp, ctx->now_ms)))
        return decide(out, CU_E_STEP_UP, false, NULL,
                      "this operation needs a recent sign-in: POST /v1/auth/step-up");
    if (permission != 0 && (p->scopes & permission) != permission) {
        const char *name = cu_apikey_scope_name(permission);
        decide(out, CU_E_FORBIDDEN, true, name, "");
        snprintf(out->reason, sizeof(out->reason), "the %s lacks the scope %s",
                 p->kind == CU_PRINCIPAL_APIKEY ? "API key" : "staff member", name);
        return out->err;
    }
    return CU_OK;
}

enum cu_err cu_access_may_grant(const struct cu_principal *p, uint64_t scopes, char *missing,
                                size_t cap)
{
    uint64_t lacked = scopes & ~p->scopes;

    if (cap > 0)
        missing[0] = '\0';
    if (lacked == 0)
        return CU_OK;
    if (cu_apikey_scopes_format(lacked, missing, cap) != CU_OK && cap > 0)
        missing[0] = '\0';
    return CU_E_FORBIDDEN;
}

const char *cu_access_kind_name(enum cu_principal_kind kind)
{
    static const char *const kinds[] = {
        [CU_PRINCIPAL_NONE] = "anonymous",
        [CU_PRINCIPAL_APIKEY] = "apikey",
        [CU_PRINCIPAL_STAFF] = "staff",
        [CU_PRINCIPAL_CUSTOMER] = "customer",
    };
    return (unsigned)kind < sizeof(kinds) / sizeof(kinds[0]) ? kinds[kind] : "anonymous";
}

void cu_access_actor(const struct cu_principal *p, struct cu_work_ctx *ctx)
{
    bool session = p->kind == CU_PRINCIPAL_STAFF || p->kind == CU_PRINCIPAL_CUSTOMER;

    snprintf(ctx->actor_type, sizeof(ctx->actor_type), "%s", cu_access_kind_name(p->kind));
    snprintf(ctx->actor_id, sizeof(ctx->actor_id), "%s", p->kind == CU_PRINCIPAL_NONE ? "" : p->id);
    ctx->aal = session ? (int)p->session.aal : 0;
    ctx->principal = p;
}

const struct cu_principal *cu_access_principal(const struct cu_work *w)
{
    return cu_work_context_of(w)->principal;
}
