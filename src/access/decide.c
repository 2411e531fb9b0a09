/*
 * decide.c - the decision over a parsed policy: forbids first, then the permits of the roles
 * the principal holds; conditions in three values (true, false, unknown) so that what cannot
 * be evaluated never opens a door; and the explanation, built only when asked for.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "access/policy.h"
#include "access/policy_int.h"
#include "identity/apikey.h"

enum tri { F = 0, T = 1, U = 2 };

/* put(out, cap, fmt, ...): snprintf for explanations, where cutting a long name short is
 * fine. */
static void put(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void put(char *out, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(out, cap, fmt, ap);
    va_end(ap);
}

struct eval {
    const struct cu_policy *p;
    const struct cu_access_subject *s;
    const struct cu_access_resource *r; /* NULL: no customer known */
    const struct cu_access_env *e;
    int failed; /* the first atom that was not true, or -1 */
};

/* A value an attribute has in this request. */
struct value {
    bool present;
    enum vtype type;
    const char *str;
    int64_t num;
    const struct cu_ip *ip;
    const char *const *set;
    size_t nset;
};

static const char *region_of(const struct cu_policy *p, const char *country)
{
    if (!country)
        return NULL;
    for (size_t i = 0; i < p->nregions; i++)
        for (size_t j = 0; j < p->regions[i].n; j++)
            if (strcmp(p->regions[i].countries[j], country) == 0)
                return p->regions[i].name;
    return NULL;
}

static void attr_value(const struct eval *ev, int attr, struct value *v)
{
    const struct cu_access_subject *s = ev->s;
    const struct cu_access_resource *r = ev->r;
    bool staff = s->kind == CU_ACCESS_STAFF;

    memset(v, 0, sizeof(*v));
    v->type = T_STR;
    switch (attr) {
    case A_PRINCIPAL_KIND:
        v->str = staff ? "staff" : "apikey";
        break;
    case A_PRINCIPAL_ID:
        v->str = s->id;
        break;
    case A_STAFF_ID:
        v->str = staff ? s->id : NULL;
        break;
    case A_STAFF_DEPARTMENT:
        v->str = staff ? s->department : NULL;
        break;
    case A_STAFF_REGION:
        v->str = staff ? s->region : NULL;
        break;
    case A_STAFF_TRAINING:
        v->type = T_TIME;
        v->present = staff && s->training_valid_until != 0;
        v->num = s->training_valid_until;
        return;
    case A_CUSTOMER_ID:
        v->str = r ? r->id : NULL;
        break;
    case A_CUSTOMER_COUNTRY:
        v->str = r ? r->country : NULL;
        break;
    case A_CUSTOMER_REGION:
        v->str = r ? region_of(ev->p, r->country) : NULL;
        break;
    case A_CUSTOMER_STATUS:
        v->str = r ? r->status : NULL;
        break;
    case A_CUSTOMER_TAGS:
        v->type = T_SET;
        v->present = r != NULL;
        v->set = r ? r->tags : NULL;
        v->nset = r ? r->ntags : 0;
        return;
    case A_IP:
        v->type = T_IP;
        v->present = ev->e->has_ip;
        v->ip = &ev->e->ip;
        return;
    case A_TIME:
        v->type = T_TIME;
        v->present = true;
        v->num = ev->e->now_ms;
        return;
    case A_SESSION_AAL:
        v->type = T_NUM;
        v->present = s->aal > 0;
        v->num = s->aal;
        return;
    case A_SESSION_AGE:
        v->type = T_DUR;
        v->present = s->session_started_at > 0;
        v->num = ev->e->now_ms - s->session_started_at;
        return;
    default:
        return;
    }
    v->present = v->str != NULL;
}

static void operand_value(const struct eval *ev, const struct operand *o, struct value *v)
{
    if (o->kind == O_ATTR) {
        attr_value(ev, o->attr, v);
        return;
    }
    memset(v, 0, sizeof(*v));
    v->present = true;
    v->type = o->type;
    v->str = o->str;
    v->num = o->num;
    v->set = (const char *const *)o->items;
    v->nset = o->nitems;
}

static bool in_net(const struct net *n, const struct cu_ip *ip)
{
    if (ip == NULL)
        return false;
    for (size_t i = 0; i < n->n; i++) {
        const struct cu_cidr c = {n->addr[i], n->prefix[i]};
        if (cu_cidr_has(&c, ip))
            return true;
    }
    return false;
}

static bool in_hours(const struct hours *h, int64_t ms)
{
    struct cu_tz_local l;
    int m, yesterday;

    cu_tz_local(h->tz, ms, &l);
    m = l.hour * 60 + l.minute;
    yesterday = (l.wday + 6) % 7;
    if (h->start == h->end)
        return (h->days >> l.wday) & 1;
    if (h->start < h->end)
        return ((h->days >> l.wday) & 1) && m >= h->start && m < h->end;
    /* across midnight: the evening of a listed day, or the morning after one */
    return (((h->days >> l.wday) & 1) && m >= h->start) ||
           (((h->days >> yesterday) & 1) && m < h->end);
}

static bool in_strings(const char *s, const char *const *set, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (set[i] && strcmp(set[i], s) == 0)
            return true;
    return false;
}

static enum tri atom(const struct eval *ev, const struct node *n)
{
    struct value a, b;
    bool r = false;

    operand_value(ev, &n->a, &a);
    if (n->b.kind == O_REF) {
        memset(&b, 0, sizeof(b));
        b.present = true;
        b.type = n->b.type;
    } else {
        operand_value(ev, &n->b, &b);
    }
    if (!a.present || !b.present)
        return U;
    if (a.type == T_STR && (a.str == NULL || (n->kind == N_CMP && b.str == NULL)))
        return U;
    if (n->kind == N_IN) {
        if (n->b.type == T_NET)
            r = in_net(&ev->p->nets[n->b.ref], a.ip);
        else if (n->b.type == T_HOURS)
            r = in_hours(&ev->p->hours[n->b.ref], a.num);
        else if (n->b.type == T_REGION) {
            const struct region *rg = &ev->p->regions[n->b.ref];
            for (size_t i = 0; i < rg->n && !r; i++)
                r = strcmp(rg->countries[i], a.str) == 0;
        } else
            r = in_strings(a.str, b.set, b.nset);
        return (r != n->negate) ? T : F;
    }
    if (a.type == T_STR) {
        if (b.str == NULL)
            return U;
        r = strcmp(a.str, b.str) == 0;
        return (n->op == C_EQ ? r : !r) ? T : F;
    }
    switch (n->op) {
    case C_EQ:
        r = a.num == b.num;
        break;
    case C_NE:
        r = a.num != b.num;
        break;
    case C_LT:
        r = a.num < b.num;
        break;
    case C_LE:
        r = a.num <= b.num;
        break;
    case C_GT:
        r = a.num > b.num;
        break;
    case C_GE:
        r = a.num >= b.num;
        break;
    }
    return r ? T : F;
}

/* Evaluates node i; the first atom found not true (the one that explains a failure) goes in
 * ev->failed. */
// NOLINTNEXTLINE(misc-no-recursion): conditions nest at most 32 deep (policy.c)
static enum tri eval_node(struct eval *ev, int i)
{
    const struct node *n = &ev->p->nodes[i];
    enum tri r, k;

    switch (n->kind) {
    case N_AND:
        r = T;
        for (size_t j = 0; j < n->nkids && r != F; j++) {
            k = eval_node(ev, n->kids[j]);
            if (k == F || (k == U && r == T))
                r = k;
        }
        return r;
    case N_OR: {
        int saved = ev->failed;
        r = F;
        for (size_t j = 0; j < n->nkids && r != T; j++) {
            k = eval_node(ev, n->kids[j]);
            if (k == T || (k == U && r == F))
                r = k;
        }
        if (r == T)
            ev->failed = saved; /* the alternatives that failed explain nothing */
        return r;
    }
    case N_NOT: {
        int saved = ev->failed;
        k = eval_node(ev, n->kids[0]);
        ev->failed = saved;
        r = k == U ? U : k == T ? F : T;
        if (r != T && ev->failed < 0)
            ev->failed = i;
        return r;
    }
    default:
        r = atom(ev, n);
        if (r != T && ev->failed < 0)
            ev->failed = i;
        return r;
    }
}

static enum tri cond(struct eval *ev, int c)
{
    return c < 0 ? T : eval_node(ev, c);
}

/* Describes a value for an explanation. */
static void describe(const struct eval *ev, const struct operand *o, char *out, size_t cap)
{
    struct value v;

    out[0] = '\0';
    if (o->kind != O_ATTR)
        return;
    attr_value(ev, o->attr, &v);
    /* a customer's attributes are not told to a caller who may not read the customer */
    if (o->attr >= A_CUSTOMER_ID && o->attr <= A_CUSTOMER_TAGS) {
        put(out, cap, "%s %s", cu_policy_attr_names[o->attr],
            v.present ? "did not match" : "is not known");
        return;
    }
    if (!v.present) {
        put(out, cap, "%s is not known", cu_policy_attr_names[o->attr]);
        return;
    }
    switch (v.type) {
    case T_STR:
        put(out, cap, "%s is \"%s\"", cu_policy_attr_names[o->attr], v.str);
        break;
    case T_NUM:
        put(out, cap, "%s is %lld", cu_policy_attr_names[o->attr], (long long)v.num);
        break;
    case T_DUR:
        put(out, cap, "%s is %llds", cu_policy_attr_names[o->attr], (long long)(v.num / 1000));
        break;
    case T_TIME: {
        struct cu_tz_local l;
        const struct cu_tz *tz = NULL;
        if (o->attr == A_TIME) {
            /* the local time in the zone of the hours tested, when there are some */
            for (size_t i = 0; i < ev->p->nhours && !tz; i++)
                tz = ev->p->hours[i].tz;
        }
        if (tz) {
            cu_tz_local(tz, v.num, &l);
            put(out, cap, "%s is %04d-%02d-%02d %02d:%02d %s", cu_policy_attr_names[o->attr],
                l.year, l.month, l.day, l.hour, l.minute, cu_tz_name(tz));
        } else {
            put(out, cap, "%s is %lld ms after the epoch", cu_policy_attr_names[o->attr],
                (long long)v.num);
        }
        break;
    }
    case T_IP:
        /* never the address itself: explanations reach logs and the audit log, which keep
         * client addresses only as the [audit] ip setting says */
        put(out, cap, "%s did not match", cu_policy_attr_names[o->attr]);
        break;
    case T_SET:
        put(out, cap, "%s has %zu tags", cu_policy_attr_names[o->attr], v.nset);
        break;
    default:
        break;
    }
}

static void explain_failed(const struct eval *ev, struct cu_access_why *why)
{
    const struct node *n;
    char a[128], b[128];

    if (ev->failed < 0)
        return;
    n = &ev->p->nodes[ev->failed];
    if (n->kind == N_NOT) {
        put(why->failed, sizeof(why->failed), "%s (%s:%d:%d)", n->text, ev->p->source, n->line,
            n->col);
        return;
    }
    describe(ev, &n->a, a, sizeof a);
    describe(ev, &n->b, b, sizeof b);
    put(why->failed, sizeof(why->failed), "%s (%s:%d:%d)%s%s%s%s", n->text, ev->p->source, n->line,
        n->col, a[0] || b[0] ? ": " : "", a, a[0] && b[0] ? ", " : "", b);
}

/* The roles s holds in this request: from the store, and from the policy's grants whose
 * conditions hold. */
static bool grant_holds(enum tri c, bool could)
{
    return could ? c != F : c == T;
}

/* held_roles(ev, held, could): the roles s holds: stored with it, and granted by a grant whose
 * condition is true (could: not false, for the check before the customer is known). */
static void held_roles(struct eval *ev, uint64_t held[2], bool could)
{
    const struct cu_policy *p = ev->p;
    const struct cu_access_subject *s = ev->s;
    int saved = ev->failed;

    held[0] = held[1] = 0;
    for (const char *r = s->roles; r && *r;) {
        size_t n = strcspn(r, " ");
        for (size_t j = 0; j < p->nroles; j++)
            if (strncmp(r, p->roles[j].name, n) == 0 && p->roles[j].name[n] == '\0') {
                held[j / 64] |= 1ull << (j % 64);
                break;
            }
        r += n;
        r += *r == ' ';
    }
    if (s->id && p->ngrants > 0) {
        for (int g = p->grant_buckets[cu_policy_hash_id(s->id) & (p->nbuckets - 1)]; g >= 0;
             g = p->grants[g].next) {
            const struct rule *r = &p->grants[g];
            if (strcmp(r->subject, s->id) == 0 && (r->kinds & (1u << s->kind)) &&
                grant_holds(cond(ev, r->cond), could))
                held[r->role / 64] |= 1ull << (r->role % 64);
        }
    }
    for (size_t i = 0; i < p->open_grants.n; i++) {
        const struct rule *r = &p->grants[p->open_grants.v[i]];
        if ((r->kinds == 0 || (r->kinds & (1u << s->kind))) &&
            grant_holds(cond(ev, r->cond), could))
            held[r->role / 64] |= 1ull << (r->role % 64);
    }
    ev->failed = saved;
}

static int perm_bit(uint64_t permission)
{
    if (permission == 0 || (permission & (permission - 1)) != 0)
        return -1;
    return __builtin_ctzll(permission);
}

static bool forbid_applies(const struct rule *f, const struct cu_access_subject *s)
{
    if (f->kinds != 0 && !(f->kinds & (1u << s->kind)))
        return false;
    return f->subject == NULL || (s->id && strcmp(f->subject, s->id) == 0);
}

/* decide(p, s, permission, r, e, why, giving): cu_policy_decide; giving: the check of the grant
 * rule, where a forbid that binds every principal and is unknown does not apply (it binds the
 * one given the permission as much as the giver). */
static enum cu_access_effect decide(const struct cu_policy *p, const struct cu_access_subject *s,
                                    uint64_t permission, const struct cu_access_resource *r,
                                    const struct cu_access_env *e, struct cu_access_why *why,
                                    bool giving)
{
    struct eval ev = {.p = p, .s = s, .r = r, .e = e, .failed = -1};
    int bit = perm_bit(permission), masked_line = -1, masked_role = -1, first_fail = -1;
    int fail_line = 0, fail_role = -1;
    uint64_t held[2];
    enum cu_access_effect eff = CU_ACCESS_DENY;
    const char *name = bit >= 0 ? cu_apikey_scope_name(permission) : NULL;

    if (why) {
        memset(why, 0, sizeof(*why));
        put(why->decided_by, sizeof(why->decided_by), "no grant");
    }
    if (bit < 0 || !name) {
        if (why)
            put(why->decided_by, sizeof(why->decided_by), "unknown permission");
        return CU_ACCESS_DENY;
    }
    if (s->capped && !(s->cap & permission)) {
        if (why)
            put(why->decided_by, sizeof(why->decided_by), "the key's owner, who lacks %s", name);
        return CU_ACCESS_DENY;
    }
    /* forbids win: one applies unless its condition is false */
    for (size_t i = 0; i < p->forbid_perm[bit].n; i++) {
        const struct rule *f = &p->forbids[p->forbid_perm[bit].v[i]];
        enum tri c = forbid_applies(f, s) ? cond(&ev, f->cond) : F;
        if (c == T || (c == U && !(giving && f->kinds == 0 && f->subject == NULL))) {
            if (why) {
                put(why->decided_by, sizeof(why->decided_by), "forbid at %s:%d", p->source,
                    f->line);
                why->line = f->line;
            }
            return CU_ACCESS_DENY;
        }
        ev.failed = -1;
    }
    if (s->permissions & permission) {
        eff = CU_ACCESS_ALLOW;
        if (why)
            put(why->decided_by, sizeof(why->decided_by), "the principal's own permissions");
        goto approval;
    }
    held_roles(&ev, held, false);
    for (size_t i = 0; i < p->by_perm[bit].n; i++) {
        const struct rule *pm = &p->permits[p->by_perm[bit].v[i]];
        enum tri c;
        if (!((held[pm->role / 64] >> (pm->role % 64)) & 1))
            continue;
        ev.failed = -1;
        c = cond(&ev, pm->cond);
        if (c == T && !pm->masked) {
            eff = CU_ACCESS_ALLOW;
            masked_role = pm->role;
            masked_line = pm->line;
            break;
        }
        if (c == T && masked_line < 0) {
            eff = CU_ACCESS_ALLOW_MASKED;
            masked_role = pm->role;
            masked_line = pm->line;
        } else if (c != T && first_fail < 0) {
            first_fail = ev.failed;
            fail_line = pm->line;
            fail_role = pm->role;
        }
    }
    if (why && eff != CU_ACCESS_DENY) {
        if (masked_line > 0)
            put(why->decided_by, sizeof(why->decided_by), "role %s, permit at %s:%d",
                p->roles[masked_role].name, p->source, masked_line);
        else
            put(why->decided_by, sizeof(why->decided_by), "role %s (built in)",
                p->roles[masked_role].name);
        why->line = masked_line > 0 ? masked_line : 0;
    } else if (why && fail_role >= 0) {
        put(why->decided_by, sizeof(why->decided_by), "role %s, permit at %s:%d",
            p->roles[fail_role].name, p->source, fail_line);
        why->line = fail_line;
        ev.failed = first_fail;
        explain_failed(&ev, why);
    } else if (why) {
        put(why->failed, sizeof(why->failed), "neither the principal nor a role it holds has %s",
            name);
    }
approval:
    if (eff != CU_ACCESS_DENY && p->approvals[bit].n > 0 && !(s->approved & permission)) {
        if (why) {
            why->approvals = p->approvals[bit].n;
            why->approval_ms = p->approvals[bit].within_ms;
        }
        eff = CU_ACCESS_NEEDS_APPROVAL;
    }
    if (why)
        why->effect = eff;
    return eff;
}

bool cu_policy_approval(const struct cu_policy *p, uint64_t permission, unsigned *n,
                        int64_t *within_ms)
{
    int bit = perm_bit(permission);

    if (p == NULL || bit < 0 || p->approvals[bit].n == 0)
        return false;
    *n = p->approvals[bit].n;
    *within_ms = p->approvals[bit].within_ms;
    return true;
}

enum cu_access_effect cu_policy_decide(const struct cu_policy *p, const struct cu_access_subject *s,
                                       uint64_t permission, const struct cu_access_resource *r,
                                       const struct cu_access_env *e, struct cu_access_why *why)
{
    return decide(p, s, permission, r, e, why, false);
}

enum cu_access_effect cu_policy_may_give(const struct cu_policy *p,
                                         const struct cu_access_subject *s, uint64_t permission,
                                         const struct cu_access_env *e)
{
    return decide(p, s, permission, NULL, e, NULL, true);
}

bool cu_policy_could(const struct cu_policy *p, const struct cu_access_subject *s,
                     uint64_t permission, const struct cu_access_env *e)
{
    struct eval ev = {.p = p, .s = s, .r = NULL, .e = e, .failed = -1};
    int bit = perm_bit(permission);
    uint64_t held[2];

    if (bit < 0 || (s->capped && !(s->cap & permission)))
        return false;
    for (size_t i = 0; i < p->forbid_perm[bit].n; i++) {
        const struct rule *f = &p->forbids[p->forbid_perm[bit].v[i]];
        if (forbid_applies(f, s) && cond(&ev, f->cond) == T)
            return false;
    }
    if (s->permissions & permission)
        return true;
    held_roles(&ev, held, true);
    for (size_t i = 0; i < p->by_perm[bit].n; i++) {
        const struct rule *pm = &p->permits[p->by_perm[bit].v[i]];
        if (((held[pm->role / 64] >> (pm->role % 64)) & 1) && cond(&ev, pm->cond) != F)
            return true;
    }
    return false;
}

const char *cu_access_effect_name(enum cu_access_effect e)
{
    switch (e) {
    case CU_ACCESS_ALLOW:
        return "allow";
    case CU_ACCESS_ALLOW_MASKED:
        return "allow_masked";
    case CU_ACCESS_NEEDS_APPROVAL:
        return "needs_approval";
    default:
        return "deny";
    }
}
