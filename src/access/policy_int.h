/*
 * policy_int.h - the layout of a parsed policy, shared by its parser (policy.c) and its
 * decision (decide.c) and nothing else.
 */
#ifndef CU_ACCESS_POLICY_INT_H
#define CU_ACCESS_POLICY_INT_H

#include <stdint.h>

#include "access/policy.h"
#include "base/tz.h"

/* The attributes a condition may name. */
enum attr {
    A_PRINCIPAL_KIND,
    A_PRINCIPAL_ID,
    A_STAFF_ID,
    A_STAFF_DEPARTMENT,
    A_STAFF_REGION,
    A_STAFF_TRAINING,
    A_CUSTOMER_ID,
    A_CUSTOMER_COUNTRY,
    A_CUSTOMER_REGION,
    A_CUSTOMER_STATUS,
    A_CUSTOMER_TAGS,
    A_IP,
    A_TIME,
    A_SESSION_AAL,
    A_SESSION_AGE,
    A__COUNT
};

/* The types of values in conditions. */
enum vtype { T_STR, T_NUM, T_DUR, T_TIME, T_IP, T_SET, T_LIST, T_NET, T_HOURS, T_REGION };

enum opkind { O_ATTR, O_STR, O_NUM, O_DUR, O_LIST, O_REF };

struct operand {
    enum opkind kind;
    enum vtype type;
    int attr;     /* O_ATTR */
    int ref;      /* O_REF: index of the network, hours or region */
    int64_t num;  /* O_NUM, O_DUR (ms) */
    char *str;    /* O_STR */
    char **items; /* O_LIST */
    size_t nitems;
};

enum nkind { N_AND, N_OR, N_NOT, N_CMP, N_IN };
enum cmpop { C_EQ, C_NE, C_LT, C_LE, C_GT, C_GE };

/* One node of a condition. Children of N_AND and N_OR are kids[0..nkids); N_NOT has one. */
struct node {
    enum nkind kind;
    enum cmpop op;
    bool negate; /* N_IN: "not in" */
    struct operand a, b;
    int *kids;
    size_t nkids;
    int line, col;
    char *text; /* the condition's source, for explanations */
};

struct net {
    char *name;
    struct cu_ip *addr;
    int *prefix; /* bits, over the 128-bit form */
    size_t n;
};

struct hours {
    char *name;
    unsigned days;  /* bit 0 Sunday .. bit 6 Saturday */
    int start, end; /* minutes after midnight; end exclusive; start > end crosses midnight */
    struct cu_tz *tz;
};

struct region {
    char *name;
    char (*countries)[3];
    size_t n;
};

struct role {
    char *name;
    uint64_t perms; /* what its lines can give */
    bool builtin;   /* defined by custodia */
    bool redefined; /* a built-in role the file defines anew */
};

/* A permit (from a role line or a permit statement), a forbid or a grant. */
struct rule {
    int role;       /* permit, grant */
    uint64_t perms; /* permit, forbid */
    bool masked;    /* permit */
    bool builtin;   /* a built-in role's line */
    unsigned kinds; /* forbid, grant: bit per enum cu_access_subject_kind; 0 for all */
    char *subject;  /* grant: a principal's id, or NULL for every principal of its kinds */
    int cond;       /* node index, or -1 */
    int line;
    int next; /* grant: the next grant with the same subject hash bucket */
};

struct approval {
    unsigned n;
    int64_t within_ms;
};

/* Lists of rule indices, one per permission bit. */
struct idxlist {
    int *v;
    size_t n, cap;
};

struct cu_policy {
    char source[128];
    char digest[65];
    struct node *nodes;
    size_t nnodes, capnodes;
    struct net *nets;
    size_t nnets;
    struct hours *hours;
    size_t nhours;
    struct region *regions;
    size_t nregions;
    struct role roles[CU_POLICY_MAX_ROLES];
    size_t nroles;
    struct rule *permits;
    size_t npermits, cappermits;
    struct rule *forbids;
    size_t nforbids, capforbids;
    struct rule *grants;
    size_t ngrants, capgrants;
    int *grant_buckets; /* heads of the subject hash's chains, -1 when empty */
    size_t nbuckets;
    struct idxlist by_perm[64]; /* permits naming each permission */
    struct idxlist forbid_perm[64];
    struct idxlist open_grants; /* grants with no subject id */
    struct approval approvals[64];
};

/* The names of the attributes, for parsing and explaining. */
extern const char *const cu_policy_attr_names[A__COUNT];

/* hash_id(s): the grant table's hash of a principal's id. */
uint64_t cu_policy_hash_id(const char *s);

#endif
