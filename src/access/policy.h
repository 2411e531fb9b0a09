/*
 * policy.h - the access policy: roles that bundle permissions, permits with conditions over
 * the staff member, the customer and the request, grants of roles, forbids that win over every
 * permit, and the actions that need a second person's approval; and the decision, with the
 * reason for it.
 *
 * A policy is text in the format of docs/access.md, parsed and checked once (unknown names,
 * type errors and bad literals are refused with line and column) into an immutable object any
 * thread may read. Decisions deny by default: a principal holds a permission only through a
 * role granted to it (or a permission given to it directly, as API keys and staff members had
 * before roles) whose permit holds, and never when a forbid applies. A condition that cannot
 * be evaluated (an attribute the request does not have) fails closed both ways: a permit needs
 * its condition true, and a forbid applies unless its condition is false.
 */
#ifndef CU_ACCESS_POLICY_H
#define CU_ACCESS_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

/* Most bytes of a policy file. */
#define CU_POLICY_MAX_BYTES (4u << 20)
/* Limits on what one policy holds. */
#define CU_POLICY_MAX_ROLES 128
#define CU_POLICY_MAX_STATEMENTS 100000
#define CU_POLICY_NAME_MAX 64
#define CU_POLICY_TAGS_MAX 32
#define CU_POLICY_MAX_NODES 50000      /* tests and connectives in all conditions */
#define CU_POLICY_MAX_NET_WORK 1000000 /* blocks walked by all 'ip in' tests together */
#define CU_POLICY_TEXT_MAX 200         /* bytes of a condition quoted in an explanation */
#define CU_POLICY_DURATION_MAX_MS (36500LL * 86400000LL) /* 100 years */

/* Where a policy failed to parse: file (the name given), line and column (1-based) and why. */
struct cu_policy_error {
    char file[128];
    int line, col;
    char reason[256];
};

/* cu_policy_error_format(e, out, cap): "file:line:col: reason". */
void cu_policy_error_format(const struct cu_policy_error *e, char *out, size_t cap);

struct cu_policy;

/* cu_policy_parse(name, text, len, out, err): parses and checks a policy; name is what errors
 * call the file. CU_E_INVALID (err says where and why) for a bad policy, CU_E_TOO_LARGE over
 * CU_POLICY_MAX_BYTES. Free *out with cu_policy_free. */
CU_WUR enum cu_err cu_policy_parse(const char *name, const char *text, size_t len,
                                   struct cu_policy **out, struct cu_policy_error *err);

/* cu_policy_load(path, out, err): cu_policy_parse of a file's contents. CU_E_IO when it cannot
 * be read. */
CU_WUR enum cu_err cu_policy_load(const char *path, struct cu_policy **out,
                                  struct cu_policy_error *err);

/* cu_policy_default(out): the policy in force without a file: the built-in roles, nothing
 * else. */
CU_WUR enum cu_err cu_policy_default(struct cu_policy **out);

/* cu_policy_free(p): NULL does nothing. */
void cu_policy_free(struct cu_policy *p);

/* cu_policy_source(p): the name the policy was parsed under ("built-in" for the default). */
const char *cu_policy_source(const struct cu_policy *p);

/* cu_policy_digest(p): the SHA-256 of the policy's text, hex (64 digits and NUL), so a log
 * line or audit record can say which policy decided. */
const char *cu_policy_digest(const struct cu_policy *p);

/* What a policy holds, for `custodia access check`. */
struct cu_policy_counts {
    size_t roles, builtin_roles, redefined_roles, permits, grants, forbids, approvals;
};

/* cu_policy_count(p, out): counts p's statements (permits: the file's role lines and permit
 * statements). */
void cu_policy_count(const struct cu_policy *p, struct cu_policy_counts *out);

/* cu_policy_has_role(p, name): whether the policy knows a role of that name. */
bool cu_policy_has_role(const struct cu_policy *p, const char *name);

/* cu_policy_role_permissions(p, name): the permissions a role can give (what its lines list,
 * whatever their conditions); 0 for an unknown role. */
uint64_t cu_policy_role_permissions(const struct cu_policy *p, const char *name);

/* cu_policy_roles_permissions(p, roles): what the roles (names and one space between) can give
 * together; unknown names give nothing. p may be NULL (nothing). */
uint64_t cu_policy_roles_permissions(const struct cu_policy *p, const char *roles);

/* An IPv4 or IPv6 address; IPv4 is held as ::ffff:a.b.c.d. */
struct cu_ip {
    uint8_t b[16];
};

/* cu_ip_parse(text, out): CU_OK for a literal IPv4 or IPv6 address, else CU_E_INVALID. */
CU_WUR enum cu_err cu_ip_parse(const char *text, struct cu_ip *out);

/* A block of addresses: IPv4 ones as IPv4-mapped IPv6, prefix counted over the 128 bits. */
struct cu_cidr {
    struct cu_ip addr;
    int prefix;
};

/* Longest CIDR text: a full IPv6 address and "/128", with the NUL. */
#define CU_CIDR_TEXT_MAX 50

/* cu_cidr_parse(text, len, out, why): an address with an optional /prefix (none: the one
 * address). CU_E_INVALID with *why (a static phrase to follow the quoted text, e.g. "has bits
 * set past its prefix") for anything else, bits set past the prefix included. */
CU_WUR enum cu_err cu_cidr_parse(const char *text, size_t len, struct cu_cidr *out,
                                 const char **why);

/* cu_cidr_list_parse(text, out, cap, n): blocks written one space apart (as an API key's
 * allow-list is stored), at most cap of them. CU_E_INVALID for anything else. */
CU_WUR enum cu_err cu_cidr_list_parse(const char *text, struct cu_cidr *out, size_t cap, size_t *n);

/* The most blocks an allow-list may hold. */
#define CU_CIDR_LIST_MAX 64

/* cu_cidr_list_allows(list, ip): whether an allow-list stored as cu_cidr_list_parse reads it
 * lets ip in: an empty list lets every address in, ip NULL (no address known) none of a
 * non-empty list. CU_E_INVALID (nothing let in) for a list that does not parse. */
CU_WUR enum cu_err cu_cidr_list_allows(const char *list, const struct cu_ip *ip, bool *allows);

/* cu_cidr_within(inner, outer): whether every address of inner is in outer. */
bool cu_cidr_within(const struct cu_cidr *inner, const struct cu_cidr *outer);

/* cu_cidr_has(c, ip): whether ip is in the block. */
static inline bool cu_cidr_has(const struct cu_cidr *c, const struct cu_ip *ip)
{
    int full = c->prefix / 8, rest = c->prefix % 8;
    for (int i = 0; i < full; i++)
        if (c->addr.b[i] != ip->b[i])
            return false;
    return rest == 0 || ((c->addr.b[full] ^ ip->b[full]) & (0xff << (8 - rest)) & 0xff) == 0;
}

enum cu_access_subject_kind { CU_ACCESS_APIKEY = 1, CU_ACCESS_STAFF = 2 };

/* Who asks, with the attributes conditions may name. Strings may be NULL (not set). */
struct cu_access_subject {
    enum cu_access_subject_kind kind;
    const char *id;
    uint64_t permissions;   /* given directly (the key's or staff member's scopes) */
    const char *roles;      /* roles given in the store: names and one space between, or NULL */
    const char *department; /* staff.department */
    const char *region;     /* staff.region */
    int64_t training_valid_until; /* staff.training_valid_until, Unix ms; 0: not set */
    int aal;                      /* session.aal: 1 or 2; 0 for an API key */
    int64_t session_started_at;   /* Unix ms; 0 for an API key */
    bool capped;                  /* an API key with an owner: at most cap */
    uint64_t cap;                 /* what the owner may hold (their scopes and roles') */
    uint64_t approved;            /* permissions approved for this action (four-eyes): an
                                     'approve' statement on them is met */
};

/* The customer a request touches, when it touches one. */
struct cu_access_resource {
    const char *id;
    const char *country; /* ISO 3166 alpha-2, or NULL */
    const char *status;
    const char *const *tags;
    size_t ntags;
};

/* The request's context. */
struct cu_access_env {
    int64_t now_ms;
    bool has_ip;
    struct cu_ip ip;
};

enum cu_access_effect {
    CU_ACCESS_DENY = 0,
    CU_ACCESS_ALLOW,
    CU_ACCESS_ALLOW_MASKED,   /* allowed, personal fields masked */
    CU_ACCESS_NEEDS_APPROVAL, /* allowed once other staff members approve (approvals, within) */
};

/* Why: what decided, and for a denial the first condition that failed. */
struct cu_access_why {
    enum cu_access_effect effect;
    char decided_by[160]; /* e.g. "forbid at policy.conf:12", "role support_agent, permit at
                             policy.conf:8", "the principal's own permissions", "no grant" */
    int line;             /* the statement's line; 0 when none decided */
    char failed[320];     /* "customer.region == staff.region (policy.conf:9:25): customer.region
                             is \"amer\", staff.region is \"emea\""; "" when none failed */
    unsigned approvals;   /* CU_ACCESS_NEEDS_APPROVAL: approvers needed */
    int64_t approval_ms;  /* and within how long */
};

/* cu_policy_decide(p, s, permission, r, e, why): whether s may use one permission (a single
 * bit) on customer r (NULL: none, or not known yet) in context e. why (may be NULL, the fast
 * path) gets the explanation. Conditions on the customer are unknown without r: a permit that
 * needs one does not hold, and the caller decides again once it has the customer. */
enum cu_access_effect cu_policy_decide(const struct cu_policy *p, const struct cu_access_subject *s,
                                       uint64_t permission, const struct cu_access_resource *r,
                                       const struct cu_access_env *e, struct cu_access_why *why);

/* cu_policy_could(p, s, permission, e): whether some permit of s for permission could hold for
 * some customer (its condition is not false on what is known without one), and no forbid
 * applies regardless of the customer: the check before the customer is read. */
bool cu_policy_could(const struct cu_policy *p, const struct cu_access_subject *s,
                     uint64_t permission, const struct cu_access_env *e);

/* cu_policy_may_give(p, s, permission, e): the decision of the grant rule: whether s holds
 * permission on every customer, as it must to give it (directly or through a role) to a key
 * or a staff member: cu_policy_decide without a customer, except that a forbid binding every
 * principal (no 'to') whose condition is unknown (for want of a customer, say) does not count,
 * since it binds the one given the permission as much as s. */
enum cu_access_effect cu_policy_may_give(const struct cu_policy *p,
                                         const struct cu_access_subject *s, uint64_t permission,
                                         const struct cu_access_env *e);

/* cu_policy_approval(p, permission, n, within_ms): whether an action under permission (one bit)
 * needs approval ('approve … by N within D'), and then by how many and within how long. */
bool cu_policy_approval(const struct cu_policy *p, uint64_t permission, unsigned *n,
                        int64_t *within_ms);

/* cu_access_effect_name(e): "deny", "allow", "allow_masked", "needs_approval". */
const char *cu_access_effect_name(enum cu_access_effect e);

#endif
