/*
 * access.c - the one door: route decisions and the grant rule, for the principals the face
 * authenticates.
 */
#include "access/access.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/mem.h"

static enum cu_err decide(struct cu_access_decision *out, enum cu_err err, bool audit,
                          const char *missing, const char *reason)
{
    out->err = err;
    out->audit = audit;
    out->missing = missing;
    snprintf(out->reason, sizeof(out->reason), "%s", reason);
    return err;
}

static enum cu_err by_policy(const struct cu_principal *p, uint64_t permission,
                             const struct cu_access_resource *r, bool could,
                             const struct cu_access_ctx *ctx, struct cu_access_decision *out);

/* Without a policy: the principal's own permissions (scopes) alone. */
static enum cu_err own_scopes(const struct cu_principal *p, uint64_t permission,
                              struct cu_access_decision *out)
{
    const char *name = cu_apikey_scope_name(permission);

    if ((p->scopes & permission) == permission && (!p->capped || (p->cap & permission)))
        return CU_OK;
    decide(out, CU_E_FORBIDDEN, true, name, "");
    snprintf(out->reason, sizeof(out->reason), "the %s lacks the scope %s",
             p->kind == CU_PRINCIPAL_APIKEY ? "API key" : "staff member", name ? name : "?");
    return out->err;
}

enum cu_err cu_access_decide(const struct cu_principal *p, uint64_t permission, unsigned flags,
                             const struct cu_access_ctx *ctx, struct cu_access_decision *out)
{
    bool session = p->kind == CU_PRINCIPAL_STAFF || p->kind == CU_PRINCIPAL_CUSTOMER;

    memset(out, 0, sizeof(*out));
    if (p->kind == CU_PRINCIPAL_NONE &&
        (permission != 0 || (flags & (CU_ACCESS_SESSION | CU_ACCESS_SIGNED))))
        return decide(out, CU_E_UNAUTHENTICATED, false, NULL, "this route needs a credential");
    if ((flags & CU_ACCESS_SIGNED) && p->kind == CU_PRINCIPAL_CUSTOMER)
        return decide(out, CU_E_FORBIDDEN, true, NULL, "this route is not open to customers");
    if ((flags & CU_ACCESS_SESSION) && !session)
        return decide(out, CU_E_FORBIDDEN, true, NULL,
                      "this route is for a signed-in customer or staff member");
    bool own = (flags & CU_ACCESS_OWN) && p->kind == CU_PRINCIPAL_CUSTOMER;
    if (permission != 0 && p->kind == CU_PRINCIPAL_CUSTOMER && !own)
        return decide(out, CU_E_FORBIDDEN, true, NULL, "this route is not open to customers");
    if (session && !p->has_totp && !(flags & CU_ACCESS_ENROL) &&
        (p->kind == CU_PRINCIPAL_STAFF || ctx->customer_mfa_required))
        return decide(out, CU_E_MFA_ENROL, false, NULL,
                      "enrol a second factor first: POST /v1/me/mfa/totp");
    if (own) {
        out->effect = CU_ACCESS_ALLOW; /* on its own only: the handler sees to it */
        return CU_OK;
    }
    if (session && permission != 0 && p->session.aal != CU_AAL2)
        return decide(out, CU_E_STEP_UP, false, NULL,
                      "this route needs a session signed in with a second factor: "
                      "POST /v1/auth/step-up");
    if (session && (flags & CU_ACCESS_FRESH) &&
        (ctx->identity == NULL ||
         !cu_identity_session_fresh(ctx->identity, &p->session, p->has_totp, ctx->now_ms)))
        return decide(out, CU_E_STEP_UP, false, NULL,
                      "this operation needs a recent sign-in: POST /v1/auth/step-up");
    out->effect = CU_ACCESS_ALLOW;
    if (permission != 0 && ctx->policy != NULL)
        return by_policy(p, permission, NULL, (flags & CU_ACCESS_CUSTOMER) != 0, ctx, out);
    return permission != 0 ? own_scopes(p, permission, out) : CU_OK;
}

enum cu_err cu_access_decide_on(const struct cu_principal *p, uint64_t permission,
                                const struct cu_access_resource *r, const struct cu_access_ctx *ctx,
                                struct cu_access_decision *out)
{
    memset(out, 0, sizeof(*out));
    out->effect = CU_ACCESS_ALLOW;
    if (ctx->policy != NULL)
        return by_policy(p, permission, r, false, ctx, out);
    return own_scopes(p, permission, out);
}

bool cu_access_subject_of(const struct cu_principal *p, struct cu_access_subject *out)
{
    memset(out, 0, sizeof(*out));
    if (p->kind != CU_PRINCIPAL_APIKEY && p->kind != CU_PRINCIPAL_STAFF)
        return false;
    out->kind = p->kind == CU_PRINCIPAL_APIKEY ? CU_ACCESS_APIKEY : CU_ACCESS_STAFF;
    out->id = p->id;
    out->permissions = p->scopes;
    out->roles = p->access.roles[0] ? p->access.roles : NULL;
    out->capped = p->capped;
    out->cap = p->cap;
    out->approved = p->approved;
    if (p->kind == CU_PRINCIPAL_STAFF) {
        out->roles = p->access.roles;
        out->department = p->access.department[0] ? p->access.department : NULL;
        out->region = p->access.region[0] ? p->access.region : NULL;
        out->training_valid_until = p->access.training_valid_until;
        out->aal = (int)p->session.aal;
        out->session_started_at =
            p->session.auth_at > 0 ? p->session.auth_at : p->session.created_at;
    }
    return true;
}

/* join_cut(out, cap, ...): the strings joined, cut to fit (an explanation may be long). */
static void join_cut(char *out, size_t cap, const char *a, const char *b, const char *c,
                     const char *d, const char *e)
{
    const char *parts[] = {a, b, c, d, e};
    size_t n = 0;
    for (size_t i = 0; i < 5; i++)
        for (const char *q = parts[i]; *q && n + 1 < cap; q++)
            out[n++] = *q;
    out[n] = '\0';
}

/* The permission, as the policy decides it for p in this request, on customer r (NULL: none
 * known). could: the door of a route decided on a customer, which lets the request in when a
 * permit could hold for some customer (the handler decides on the customer itself). */
static enum cu_err by_policy(const struct cu_principal *p, uint64_t permission,
                             const struct cu_access_resource *r, bool could,
                             const struct cu_access_ctx *ctx, struct cu_access_decision *out)
{
    struct cu_access_subject s;
    struct cu_access_env e = {.now_ms = ctx->now_ms, .has_ip = ctx->has_ip, .ip = ctx->ip};
    struct cu_access_why why;
    const char *name = cu_apikey_scope_name(permission);
    enum cu_access_effect eff = CU_ACCESS_DENY;

    memset(&why, 0, sizeof(why));
    if (name == NULL)
        name = "an unknown permission";

    if (cu_access_subject_of(p, &s)) {
        if (could && cu_policy_could(ctx->policy, &s, permission, &e)) {
            out->effect = CU_ACCESS_ALLOW;
            return CU_OK;
        }
        /* the explanation (for a door that could not open: why no permit can hold) */
        eff = cu_policy_decide(ctx->policy, &s, permission, r, &e, &why);
    } else
        snprintf(why.decided_by, sizeof(why.decided_by), "no grant");
    if (eff == CU_ACCESS_ALLOW || eff == CU_ACCESS_ALLOW_MASKED) {
        out->effect = eff;
        return CU_OK;
    }
    decide(out, CU_E_FORBIDDEN, true, name, "");
    if (eff == CU_ACCESS_NEEDS_APPROVAL)
        /* Four-eyes approval is not served yet: the action stays refused (fail closed). */
        snprintf(out->reason, sizeof(out->reason),
                 "%s needs the approval of %u other staff member%s (%s), which this version "
                 "cannot take yet",
                 name, why.approvals, why.approvals == 1 ? "" : "s", why.decided_by);
    else if (why.failed[0])
        join_cut(out->reason, sizeof(out->reason), name, " denied by ", why.decided_by, ": ",
                 why.failed);
    else
        snprintf(out->reason, sizeof(out->reason), "%s denied by %s", name, why.decided_by);
    return out->err;
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

enum cu_err cu_access_may_grant_by(const struct cu_principal *p, const struct cu_access_ctx *ctx,
                                   uint64_t scopes, char *missing, size_t cap)
{
    struct cu_access_subject s;
    struct cu_access_env e = {.now_ms = ctx->now_ms, .has_ip = ctx->has_ip, .ip = ctx->ip};
    uint64_t lacked = 0;

    if (ctx->policy == NULL)
        return cu_access_may_grant(p, scopes, missing, cap);
    if (cap > 0)
        missing[0] = '\0';
    if (!cu_access_subject_of(p, &s)) {
        lacked = scopes;
    } else {
        for (uint64_t b = 1; b != 0 && b <= scopes; b <<= 1) {
            enum cu_access_effect eff;
            if (!(scopes & b))
                continue;
            eff = cu_policy_may_give(ctx->policy, &s, b, &e);
            /* a permission held subject to approval counts as held: whoever gets it uses it
             * subject to approval too */
            if (eff != CU_ACCESS_ALLOW && eff != CU_ACCESS_ALLOW_MASKED &&
                eff != CU_ACCESS_NEEDS_APPROVAL)
                lacked |= b;
        }
    }
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

/* One loaded policy and its readers. */
struct held {
    struct cu_policy *p;
    long refs;         /* readers, and 1 while in force */
    struct held *next; /* retired ones with readers left */
};

struct cu_access_policies {
    pthread_mutex_t mu;
    char *path; /* NULL: the built-in policy */
    struct held *cur;
    struct held *retired;
    struct stat seen; /* the file as last read, good or bad */
    bool seen_valid;
};

/* same_file(a, b): whether two stats are of the same version of a file. */
static bool same_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
           a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

static enum cu_err load(const char *path, struct held **out, struct stat *sb,
                        struct cu_policy_error *err)
{
    struct held *h = cu_calloc(1, sizeof(*h));
    enum cu_err rc;

    *out = NULL;
    if (!h)
        return CU_E_NOMEM;
    if (path == NULL) {
        rc = cu_policy_default(&h->p);
        memset(err, 0, sizeof(*err));
    } else {
        /* the version read is the one stat saw before: a file changed meanwhile is read
         * again on the next reload */
        if (stat(path, sb) != 0)
            memset(sb, 0, sizeof(*sb));
        rc = cu_policy_load(path, &h->p, err);
    }
    if (rc != CU_OK) {
        cu_free(h);
        return rc;
    }
    h->refs = 1;
    *out = h;
    return CU_OK;
}

enum cu_err cu_access_policies_new(const char *path, struct cu_access_policies **out,
                                   struct cu_policy_error *err)
{
    struct cu_access_policies *h = cu_calloc(1, sizeof(*h));
    enum cu_err rc = CU_E_NOMEM;

    *out = NULL;
    memset(err, 0, sizeof(*err));
    if (!h)
        return rc;
    if (path && path[0] && !(h->path = cu_strdup(path)))
        goto bad;
    rc = load(h->path, &h->cur, &h->seen, err);
    if (rc != CU_OK)
        goto bad;
    h->seen_valid = h->path != NULL;
    if (pthread_mutex_init(&h->mu, NULL) != 0) {
        rc = CU_E_INTERNAL;
        goto bad;
    }
    *out = h;
    return CU_OK;
bad:
    if (h->cur)
        cu_policy_free(h->cur->p);
    cu_free(h->cur);
    cu_free(h->path);
    cu_free(h);
    return rc;
}

void cu_access_policies_free(struct cu_access_policies *h)
{
    if (!h)
        return;
    while (h->retired) {
        struct held *n = h->retired->next;
        cu_policy_free(h->retired->p);
        cu_free(h->retired);
        h->retired = n;
    }
    cu_policy_free(h->cur->p);
    cu_free(h->cur);
    pthread_mutex_destroy(&h->mu);
    cu_free(h->path);
    cu_free(h);
}

const struct cu_policy *cu_access_policy_get(struct cu_access_policies *h)
{
    const struct cu_policy *p;
    pthread_mutex_lock(&h->mu);
    h->cur->refs++;
    p = h->cur->p;
    pthread_mutex_unlock(&h->mu);
    return p;
}

/* drop(h, held): one reference less; frees a retired policy whose last reader left. */
static void drop(struct cu_access_policies *h, struct held *x)
{
    if (--x->refs > 0)
        return;
    for (struct held **pp = &h->retired; *pp; pp = &(*pp)->next)
        if (*pp == x) {
            *pp = x->next;
            break;
        }
    cu_policy_free(x->p);
    cu_free(x);
}

void cu_access_policy_put(struct cu_access_policies *h, const struct cu_policy *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&h->mu);
    if (h->cur->p == p) {
        h->cur->refs--;
    } else {
        for (struct held *x = h->retired; x; x = x->next)
            if (x->p == p) {
                drop(h, x);
                break;
            }
    }
    pthread_mutex_unlock(&h->mu);
}

enum cu_err cu_access_policies_reload(struct cu_access_policies *h, bool *changed,
                                      struct cu_policy_error *err)
{
    struct stat sb;
    struct held *fresh = NULL, *old;
    enum cu_err rc;

    *changed = false;
    memset(err, 0, sizeof(*err));
    if (h->path == NULL)
        return CU_OK;
    if (stat(h->path, &sb) != 0)
        memset(&sb, 0, sizeof(sb));
    if (h->seen_valid && same_file(&sb, &h->seen))
        return CU_OK;
    /* a file changed less than CU_POLICY_SETTLE_S ago may still be being written: next time */
    if (sb.st_mtim.tv_sec > 0 && time(NULL) - sb.st_mtim.tv_sec < CU_POLICY_SETTLE_S)
        return CU_OK;
    rc = load(h->path, &fresh, &sb, err);
    h->seen = sb;
    h->seen_valid = true;
    if (rc != CU_OK)
        return rc;
    pthread_mutex_lock(&h->mu);
    old = h->cur;
    h->cur = fresh;
    old->next = h->retired;
    h->retired = old;
    drop(h, old);
    pthread_mutex_unlock(&h->mu);
    *changed = true;
    return CU_OK;
}

/* The policy a data directory starts with: the built-in roles, and four-eyes on unfreezing
 * an account and on changing the monitoring rules in force. */
static const char default_policy[] =
    "# custodia's access policy (docs/access.md): roles, grants, conditions, forbids and\n"
    "# approvals. With nothing below but the version, the built-in roles alone decide, and each\n"
    "# API key and staff member holds exactly the permissions (scopes) given to it. The server\n"
    "# follows this file while it runs; check a change first with `custodia access check FILE`.\n"
    "version 1\n"
    "\n"
    "# A frozen account is unfrozen only once another staff member approves (docs/ledger.md).\n"
    "approve accounts.unfreeze by 1 within 24h\n"
    "\n"
    "# A monitoring rule set goes in force (or in shadow) only once another staff member\n"
    "# approves (docs/monitoring.md, \"Rule sets\"); custodia refuses it otherwise.\n"
    "approve rules.activate by 1 within 24h\n";

enum cu_err cu_access_policy_write_default(const char *path)
{
    char tmp[4096], dir[4096];
    enum cu_err rc = CU_OK;
    int fd, n = snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path);

    if (n < 0 || (size_t)n >= sizeof(tmp))
        return CU_E_INVALID;
    /* written whole beside it, then linked into place: the file appears complete or not at
     * all, and never over one that exists */
    fd = mkstemp(tmp);
    if (fd < 0)
        return errno == EACCES ? CU_E_PERM : CU_E_IO;
    if (fchmod(fd, 0600) != 0 ||
        write(fd, default_policy, sizeof(default_policy) - 1) !=
            (ssize_t)(sizeof(default_policy) - 1) ||
        fsync(fd) != 0)
        rc = CU_E_IO;
    if (close(fd) != 0)
        rc = CU_E_IO;
    if (rc == CU_OK && link(tmp, path) != 0)
        rc = errno == EEXIST ? CU_E_EXISTS : errno == EACCES ? CU_E_PERM : CU_E_IO;
    unlink(tmp);
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (rc == CU_OK && slash != NULL) {
        *slash = '\0';
        int dfd = open(dir[0] ? dir : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            (void)fsync(dfd);
            close(dfd);
        }
    }
    return rc;
}
