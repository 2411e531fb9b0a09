/*
 * policy.c - parsing and checking an access policy (docs/access.md) into the form decide.c
 * evaluates. Longer than most files: the lexer, the statements and the condition grammar are
 * one recursive-descent parser whose pieces only make sense together.
 *
 * A statement is one line; a line that begins with white space continues the one before. The
 * parser checks every name (permissions, roles, networks, hours, regions, attributes) and the
 * type of every comparison as it goes, and stops at the first error with its line and column.
 */
#include "access/policy.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "access/policy_int.h"
#include "base/json.h"
#include "base/mem.h"
#include "crypto/crypto.h"
#include "identity/apikey.h"

const char *const cu_policy_attr_names[A__COUNT] = {
    [A_PRINCIPAL_KIND] = "principal.kind",
    [A_PRINCIPAL_ID] = "principal.id",
    [A_STAFF_ID] = "staff.id",
    [A_STAFF_DEPARTMENT] = "staff.department",
    [A_STAFF_REGION] = "staff.region",
    [A_STAFF_TRAINING] = "staff.training_valid_until",
    [A_CUSTOMER_ID] = "customer.id",
    [A_CUSTOMER_COUNTRY] = "customer.country",
    [A_CUSTOMER_REGION] = "customer.region",
    [A_CUSTOMER_STATUS] = "customer.status",
    [A_CUSTOMER_TAGS] = "customer.tags",
    [A_IP] = "ip",
    [A_TIME] = "time",
    [A_SESSION_AAL] = "session.aal",
    [A_SESSION_AGE] = "session.age",
};

static const enum vtype attr_types[A__COUNT] = {
    [A_PRINCIPAL_KIND] = T_STR,  [A_PRINCIPAL_ID] = T_STR,
    [A_STAFF_ID] = T_STR,        [A_STAFF_DEPARTMENT] = T_STR,
    [A_STAFF_REGION] = T_STR,    [A_STAFF_TRAINING] = T_TIME,
    [A_CUSTOMER_ID] = T_STR,     [A_CUSTOMER_COUNTRY] = T_STR,
    [A_CUSTOMER_REGION] = T_STR, [A_CUSTOMER_STATUS] = T_STR,
    [A_CUSTOMER_TAGS] = T_SET,   [A_IP] = T_IP,
    [A_TIME] = T_TIME,           [A_SESSION_AAL] = T_NUM,
    [A_SESSION_AGE] = T_DUR,
};

static const char *const type_names[] = {
    [T_STR] = "a string",    [T_NUM] = "a number",  [T_DUR] = "a duration",
    [T_TIME] = "a time",     [T_IP] = "an address", [T_SET] = "a set of strings",
    [T_LIST] = "a list",     [T_NET] = "a network", [T_HOURS] = "hours",
    [T_REGION] = "a region",
};

/* The built-in roles (docs/access.md has the table). "*" is every permission. */
static const struct {
    const char *name;
    const char *perms;
} builtin_roles[] = {
    {"admin", "*"},
    {"security_analyst", "audit.read customers.read customers.credentials metrics.read "
                         "staff.read apikeys.read access.read decisions.read alerts.read "
                         "alerts.write monitor.read lists.write rules.write rules.activate "
                         "notify.read notify.write cases.read cases.write cases.contain"},
    {"support_agent", "customers.read customers.credentials"},
    {"auditor", "audit.read access.read metrics.read notify.read"},
    {"compliance_officer", "audit.read customers.read customers.unmask customers.erase "
                           "access.read"},
    {"service", "customers.read customers.write customers.credentials"},
    {"teller", "customers.read accounts.read accounts.write transfers.read transfers.write"},
    {"fraud_analyst", "customers.read accounts.read accounts.freeze transfers.read "
                      "transfers.approve audit.read decisions.read alerts.read alerts.write "
                      "monitor.read lists.write cases.read cases.write cases.contain"},
    {"payments_service", "accounts.read accounts.write transfers.read transfers.write "
                         "ledger.read"},
    {"events_service", "events.write"},
};

uint64_t cu_policy_hash_id(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

/* ---- lexer ---- */

enum tok {
    K_EOL,
    K_EOF,
    K_WORD,
    K_STRING,
    K_NUMBER,
    K_DURATION,
    K_OP,
    K_LPAREN,
    K_RPAREN,
    K_LBRACK,
    K_RBRACK,
    K_COMMA
};

struct parser {
    const char *src;
    size_t len, pos;
    int line, col;
    /* the current token */
    enum tok t;
    size_t start, end; /* its bytes */
    size_t last_end;   /* where the token before it ended */
    int tline, tcol;
    int64_t num; /* K_NUMBER; K_DURATION in ms */
    enum cmpop op;
    char text[512]; /* K_WORD, K_STRING (unquoted) */
    struct cu_policy *p;
    struct cu_policy_error *err;
    bool failed;
    long net_work; /* network blocks all 'ip in' tests walk */
};

static bool fail_at(struct parser *ps, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static bool fail_at(struct parser *ps, int line, int col, const char *fmt, ...)
{
    va_list ap;
    if (ps->failed)
        return false;
    ps->failed = true;
    ps->err->line = line;
    ps->err->col = col;
    va_start(ap, fmt);
    vsnprintf(ps->err->reason, sizeof(ps->err->reason), fmt, ap);
    va_end(ap);
    return false;
}

#define FAIL(ps, ...) fail_at((ps), (ps)->tline, (ps)->tcol, __VA_ARGS__)

static bool word_char(int c)
{
    return isalnum(c) || c == '_' || c == '.' || c == ':' || c == '/' || c == '-' || c == '*' ||
           c == '+';
}

static int peekc(const struct parser *ps, size_t off)
{
    return ps->pos + off < ps->len ? (unsigned char)ps->src[ps->pos + off] : -1;
}

static void advance(struct parser *ps)
{
    if (ps->src[ps->pos] == '\n') {
        ps->line++;
        ps->col = 1;
    } else {
        ps->col++;
    }
    ps->pos++;
}

/* Skips spaces, comments, and newlines followed by an indented line (a continuation). Stops
 * before a newline that ends a statement. */
static void skip_space(struct parser *ps)
{
    for (;;) {
        int c = peekc(ps, 0);
        if (c == ' ' || c == '\t' || c == '\r' ||
            (c == '\n' && (peekc(ps, 1) == ' ' || peekc(ps, 1) == '\t'))) {
            advance(ps); /* a newline before an indented line continues the statement */
        } else if (c == '#') {
            while (peekc(ps, 0) != -1 && peekc(ps, 0) != '\n')
                advance(ps);
        } else {
            return;
        }
    }
}

static bool lex_string(struct parser *ps)
{
    size_t n = 0;
    advance(ps); /* the quote */
    for (;;) {
        int c = peekc(ps, 0);
        if (c == -1 || c == '\n')
            return FAIL(ps, "a string that does not end on its line");
        if (c == '"')
            break;
        if (c == '\\' || c < 0x20 || c == 0x7f)
            return FAIL(ps, "strings hold no escapes or control characters");
        if (n + 1 >= sizeof(ps->text))
            return FAIL(ps, "a string over %zu bytes", sizeof(ps->text) - 1);
        ps->text[n++] = (char)c;
        advance(ps);
    }
    advance(ps);
    ps->text[n] = '\0';
    ps->t = K_STRING;
    return true;
}

/* Classifies a word: digits alone are a number, digits and one of s m h d a duration. */
static void classify(struct parser *ps, size_t n)
{
    size_t i = 0;
    int64_t v = 0;
    while (i < n && isdigit((unsigned char)ps->text[i]) && v < 1000000000000LL)
        v = v * 10 + (ps->text[i++] - '0');
    ps->t = K_WORD;
    if (i == 0 || v >= 1000000000000LL)
        return;
    if (i == n) {
        ps->t = K_NUMBER;
        ps->num = v;
    } else if (i + 1 == n && strchr("smhd", ps->text[i]) != NULL) {
        char c = ps->text[i];
        int64_t u = c == 's' ? 1000 : c == 'm' ? 60000 : c == 'h' ? 3600000 : 86400000;
        /* at most 100 years: a longer duration is a mistake, and would overflow */
        if (v <= CU_POLICY_DURATION_MAX_MS / u) {
            ps->t = K_DURATION;
            ps->num = v * u;
        }
    }
}

static bool next(struct parser *ps)
{
    int c;
    size_t n = 0;

    if (ps->failed)
        return false;
    ps->last_end = ps->end;
    skip_space(ps);
    ps->start = ps->pos;
    ps->tline = ps->line;
    ps->tcol = ps->col;
    ps->text[0] = '\0';
    c = peekc(ps, 0);
    if (c == -1) {
        ps->t = K_EOF;
    } else if (c == '\n') {
        ps->t = K_EOL;
        advance(ps);
    } else if (c == '"') {
        if (!lex_string(ps))
            return false;
    } else if (c == '(' || c == ')' || c == '[' || c == ']' || c == ',') {
        ps->t = c == '('   ? K_LPAREN
                : c == ')' ? K_RPAREN
                : c == '[' ? K_LBRACK
                : c == ']' ? K_RBRACK
                           : K_COMMA;
        advance(ps);
    } else if (c == '=' || c == '!' || c == '<' || c == '>') {
        int d = peekc(ps, 1);
        ps->t = K_OP;
        if ((c == '=' || c == '!') && d != '=')
            return FAIL(ps, "'%c' alone is no operator: write == or !=", c);
        ps->op = c == '='   ? C_EQ
                 : c == '!' ? C_NE
                 : c == '<' ? (d == '=' ? C_LE : C_LT)
                            : (d == '=' ? C_GE : C_GT);
        advance(ps);
        if (d == '=')
            advance(ps);
    } else if (word_char(c)) {
        while (word_char(peekc(ps, 0))) {
            if (n + 1 >= sizeof(ps->text))
                return FAIL(ps, "a word over %zu bytes", sizeof(ps->text) - 1);
            ps->text[n++] = (char)peekc(ps, 0);
            advance(ps);
        }
        ps->text[n] = '\0';
        classify(ps, n);
    } else {
        return c >= 0x20 && c < 0x7f ? FAIL(ps, "unexpected character '%c'", c)
                                     : FAIL(ps, "unexpected byte 0x%02x", (unsigned)c);
    }
    ps->end = ps->pos;
    return true;
}

static bool is_word(const struct parser *ps, const char *w)
{
    return ps->t == K_WORD && strcmp(ps->text, w) == 0;
}

static bool at_end(const struct parser *ps)
{
    return ps->t == K_EOL || ps->t == K_EOF;
}

/* ---- growing arrays ---- */

static bool grow(void **v, size_t *cap, size_t need, size_t size)
{
    void *nv;
    size_t nc;
    if (need <= *cap)
        return true;
    nc = *cap ? *cap * 2 : 8;
    while (nc < need)
        nc *= 2;
    nv = cu_reallocarray(*v, nc, size);
    if (!nv)
        return false;
    memset((char *)nv + *cap * size, 0, (nc - *cap) * size);
    *v = nv;
    *cap = nc;
    return true;
}

static bool idx_push(struct idxlist *l, int i)
{
    if (!grow((void **)&l->v, &l->cap, l->n + 1, sizeof(int)))
        return false;
    l->v[l->n++] = i;
    return true;
}

/* ---- names ---- */

static int find_role(const struct cu_policy *p, const char *name)
{
    for (size_t i = 0; i < p->nroles; i++)
        if (strcmp(p->roles[i].name, name) == 0)
            return (int)i;
    return -1;
}

static int find_net(const struct cu_policy *p, const char *name)
{
    for (size_t i = 0; i < p->nnets; i++)
        if (strcmp(p->nets[i].name, name) == 0)
            return (int)i;
    return -1;
}

static int find_hours(const struct cu_policy *p, const char *name)
{
    for (size_t i = 0; i < p->nhours; i++)
        if (strcmp(p->hours[i].name, name) == 0)
            return (int)i;
    return -1;
}

static int find_region(const struct cu_policy *p, const char *name)
{
    for (size_t i = 0; i < p->nregions; i++)
        if (strcmp(p->regions[i].name, name) == 0)
            return (int)i;
    return -1;
}

static bool name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > CU_POLICY_NAME_MAX || !islower((unsigned char)s[0]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i]) && s[i] != '_')
            return false;
    return true;
}

/* A new name for a network, hours or region: well formed and not taken by any of them. */
static bool new_name(struct parser *ps, const char *what)
{
    if (ps->t != K_WORD || !name_ok(ps->text))
        return FAIL(ps, "expected the %s's name (lower-case letters, digits, '_', at most %d)",
                    what, CU_POLICY_NAME_MAX);
    if (find_net(ps->p, ps->text) >= 0 || find_hours(ps->p, ps->text) >= 0 ||
        find_region(ps->p, ps->text) >= 0)
        return FAIL(ps, "'%s' is defined already", ps->text);
    return true;
}

/* One permission name, or "*" when star is allowed, into *bits. */
static bool permission(struct parser *ps, bool star, uint64_t *bits)
{
    uint64_t b;
    if (ps->t != K_WORD)
        return FAIL(ps, "expected a permission");
    if (star && strcmp(ps->text, "*") == 0) {
        *bits |= cu_apikey_all_scopes();
        return next(ps);
    }
    b = cu_apikey_scope_parse(ps->text, strlen(ps->text));
    if (b == 0)
        return FAIL(ps, "unknown permission '%s'", ps->text);
    *bits |= b;
    return next(ps);
}

/* PERM[,PERM...] */
static bool permission_list(struct parser *ps, bool star, uint64_t *bits)
{
    *bits = 0;
    if (!permission(ps, star, bits))
        return false;
    while (ps->t == K_COMMA)
        if (!next(ps) || !permission(ps, star, bits))
            return false;
    return true;
}

/* ---- conditions ---- */

static int new_node(struct parser *ps, enum nkind kind, int line, int col)
{
    struct cu_policy *p = ps->p;
    if (p->nnodes >= CU_POLICY_MAX_NODES) {
        FAIL(ps, "more than %d tests and connectives in conditions", CU_POLICY_MAX_NODES);
        return -1;
    }
    if (!grow((void **)&p->nodes, &p->capnodes, p->nnodes + 1, sizeof(struct node)))
        return FAIL(ps, "out of memory"), -1;
    memset(&p->nodes[p->nnodes], 0, sizeof(struct node));
    p->nodes[p->nnodes].kind = kind;
    p->nodes[p->nnodes].line = line;
    p->nodes[p->nnodes].col = col;
    return (int)p->nnodes++;
}

/* set_text(ps, n, from, to): node n's source for explanations: one line, comments left out,
 * cut at CU_POLICY_TEXT_MAX bytes. */
static bool set_text(struct parser *ps, int n, size_t from, size_t to)
{
    char *t = cu_malloc(CU_POLICY_TEXT_MAX + 4);
    size_t k = 0;
    bool space = false;
    if (!t)
        return FAIL(ps, "out of memory");
    for (size_t i = from; i < to && k < CU_POLICY_TEXT_MAX; i++) {
        char c = ps->src[i];
        if (c == '#') {
            while (i + 1 < to && ps->src[i + 1] != '\n')
                i++;
            space = k > 0;
            continue;
        }
        if (c == '\n' || c == '\t' || c == '\r' || c == ' ') {
            space = k > 0;
            continue;
        }
        if (space && k < CU_POLICY_TEXT_MAX)
            t[k++] = ' ';
        space = false;
        if (k < CU_POLICY_TEXT_MAX)
            t[k++] = c;
    }
    if (k >= CU_POLICY_TEXT_MAX) {
        memcpy(t + k, "...", 3);
        k += 3;
    }
    t[k] = '\0';
    ps->p->nodes[n].text = t;
    return true;
}

static bool operand(struct parser *ps, struct operand *o)
{
    memset(o, 0, sizeof(*o));
    o->attr = -1;
    o->ref = -1;
    if (ps->t == K_STRING) {
        o->kind = O_STR;
        o->type = T_STR;
        o->str = cu_strdup(ps->text);
        if (!o->str)
            return FAIL(ps, "out of memory");
        return next(ps);
    }
    if (ps->t == K_NUMBER || ps->t == K_DURATION) {
        o->kind = ps->t == K_NUMBER ? O_NUM : O_DUR;
        o->type = ps->t == K_NUMBER ? T_NUM : T_DUR;
        o->num = ps->num;
        return next(ps);
    }
    if (ps->t == K_LBRACK) {
        o->kind = O_LIST;
        o->type = T_LIST;
        if (!next(ps))
            return false;
        while (ps->t == K_STRING) {
            char **nv;
            if (o->nitems >= 1000)
                return FAIL(ps, "a list of more than 1000 strings");
            nv = cu_reallocarray(o->items, o->nitems + 1, sizeof(char *));
            if (!nv)
                return FAIL(ps, "out of memory");
            o->items = nv;
            if (!(o->items[o->nitems] = cu_strdup(ps->text)))
                return FAIL(ps, "out of memory");
            o->nitems++;
            if (!next(ps))
                return false;
            if (ps->t != K_COMMA)
                break;
            if (!next(ps))
                return false;
        }
        if (ps->t != K_RBRACK)
            return FAIL(ps, "expected a string or ']' in a list");
        if (o->nitems == 0)
            return FAIL(ps, "an empty list");
        return next(ps);
    }
    if (ps->t == K_WORD) {
        int i;
        if (strcmp(ps->text, "now") == 0) {
            o->kind = O_ATTR;
            o->attr = A_TIME;
            o->type = T_TIME;
            return next(ps);
        }
        for (i = 0; i < A__COUNT; i++)
            if (strcmp(ps->text, cu_policy_attr_names[i]) == 0) {
                o->kind = O_ATTR;
                o->attr = i;
                o->type = attr_types[i];
                return next(ps);
            }
        o->kind = O_REF;
        if ((o->ref = find_net(ps->p, ps->text)) >= 0)
            o->type = T_NET;
        else if ((o->ref = find_hours(ps->p, ps->text)) >= 0)
            o->type = T_HOURS;
        else if ((o->ref = find_region(ps->p, ps->text)) >= 0)
            o->type = T_REGION;
        else
            return FAIL(ps, "unknown attribute or name '%s'", ps->text);
        return next(ps);
    }
    return FAIL(ps, "expected an attribute, a string, a number, a duration or a list");
}

/* Checks the types of a comparison or membership test. */
static bool check_types(struct parser *ps, const struct node *n)
{
    enum vtype a = n->a.type, b = n->b.type;
    if (n->kind == N_IN) {
        bool ok = (a == T_STR && (b == T_LIST || b == T_SET || b == T_REGION)) ||
                  (a == T_IP && b == T_NET) || (a == T_TIME && b == T_HOURS);
        if (!ok)
            return fail_at(ps, n->line, n->col, "'in' cannot test %s against %s", type_names[a],
                           type_names[b]);
        if (n->a.kind != O_ATTR && n->b.kind != O_ATTR)
            return fail_at(ps, n->line, n->col, "the test names no attribute");
        return true;
    }
    if (a != b)
        return fail_at(ps, n->line, n->col, "compares %s with %s", type_names[a], type_names[b]);
    if (a != T_STR && a != T_NUM && a != T_DUR && a != T_TIME)
        return fail_at(ps, n->line, n->col, "%s cannot be compared", type_names[a]);
    if (a == T_STR && n->op != C_EQ && n->op != C_NE)
        return fail_at(ps, n->line, n->col, "strings compare only with == and !=");
    if (n->a.kind != O_ATTR && n->b.kind != O_ATTR)
        return fail_at(ps, n->line, n->col, "the comparison names no attribute");
    return true;
}

static int cond_or(struct parser *ps, int depth);

// NOLINTNEXTLINE(misc-no-recursion): at most 32 deep, checked on entry
static int cond_atom(struct parser *ps, int depth)
{
    int line = ps->tline, col = ps->tcol, n;
    size_t from = ps->start;
    struct node nd;

    if (depth > 32)
        return FAIL(ps, "a condition nested more than 32 deep"), -1;
    if (is_word(ps, "not")) {
        int kid;
        if (!next(ps))
            return -1;
        kid = cond_atom(ps, depth + 1);
        if (kid < 0 || (n = new_node(ps, N_NOT, line, col)) < 0)
            return -1;
        ps->p->nodes[n].kids = cu_malloc(sizeof(int));
        if (!ps->p->nodes[n].kids)
            return FAIL(ps, "out of memory"), -1;
        ps->p->nodes[n].kids[0] = kid;
        ps->p->nodes[n].nkids = 1;
        return set_text(ps, n, from, ps->last_end) ? n : -1;
    }
    if (ps->t == K_LPAREN) {
        if (!next(ps))
            return -1;
        n = cond_or(ps, depth + 1);
        if (n < 0)
            return -1;
        if (ps->t != K_RPAREN)
            return FAIL(ps, "expected ')'"), -1;
        return next(ps) ? n : -1;
    }
    memset(&nd, 0, sizeof(nd));
    nd.line = line;
    nd.col = col;
    if (!operand(ps, &nd.a))
        goto bad;
    if (ps->t == K_OP) {
        nd.kind = N_CMP;
        nd.op = ps->op;
        if (!next(ps))
            goto bad;
    } else if (is_word(ps, "in") || is_word(ps, "not")) {
        nd.kind = N_IN;
        if (is_word(ps, "not")) {
            nd.negate = true;
            if (!next(ps))
                goto bad;
            if (!is_word(ps, "in")) {
                FAIL(ps, "expected 'in' after 'not'");
                goto bad;
            }
        }
        if (!next(ps))
            goto bad;
    } else {
        FAIL(ps, "expected ==, !=, <, <=, >, >=, 'in' or 'not in'");
        goto bad;
    }
    if (!operand(ps, &nd.b) || !check_types(ps, &nd))
        goto bad;
    /* an address is tested against every block of a network: bound the whole policy's work */
    if (nd.kind == N_IN && nd.b.type == T_NET) {
        ps->net_work += (long)ps->p->nets[nd.b.ref].n;
        if (ps->net_work > CU_POLICY_MAX_NET_WORK) {
            fail_at(ps, line, col,
                    "the policy tests addresses against more than %d blocks in all; use fewer "
                    "or larger networks",
                    CU_POLICY_MAX_NET_WORK);
            goto bad;
        }
    }
    if ((n = new_node(ps, nd.kind, line, col)) < 0)
        goto bad;
    ps->p->nodes[n] = nd;
    return set_text(ps, n, from, ps->last_end) ? n : -1;
bad:
    /* the operands' allocations are the policy's once stored; free them here otherwise */
    cu_free(nd.a.str);
    cu_free(nd.b.str);
    for (size_t i = 0; i < nd.a.nitems; i++)
        cu_free(nd.a.items[i]);
    for (size_t i = 0; i < nd.b.nitems; i++)
        cu_free(nd.b.items[i]);
    cu_free(nd.a.items);
    cu_free(nd.b.items);
    return -1;
}

/* A chain of kids joined by one connective ("and" or "or"). */
static int cond_chain(struct parser *ps, int depth, enum nkind kind, const char *word,
                      int (*sub)(struct parser *, int))
{
    int line = ps->tline, col = ps->tcol, n;
    size_t from = ps->start;
    int first = sub(ps, depth);
    int *kids;
    size_t nk = 1;

    if (first < 0 || !is_word(ps, word))
        return first;
    if ((n = new_node(ps, kind, line, col)) < 0)
        return -1;
    kids = cu_malloc(sizeof(int));
    if (!kids)
        return FAIL(ps, "out of memory"), -1;
    kids[0] = first;
    ps->p->nodes[n].kids = kids;
    ps->p->nodes[n].nkids = 1;
    while (is_word(ps, word)) {
        int k;
        int *nv;
        if (!next(ps) || (k = sub(ps, depth)) < 0)
            return -1;
        if (nk >= 64)
            return FAIL(ps, "more than 64 conditions joined by '%s'", word), -1;
        nv = cu_reallocarray(ps->p->nodes[n].kids, nk + 1, sizeof(int));
        if (!nv)
            return FAIL(ps, "out of memory"), -1;
        nv[nk++] = k;
        ps->p->nodes[n].kids = nv;
        ps->p->nodes[n].nkids = nk;
    }
    return set_text(ps, n, from, ps->last_end) ? n : -1;
}

static int cond_and(struct parser *ps, int depth)
{
    return cond_chain(ps, depth, N_AND, "and", cond_atom);
}

static int cond_or(struct parser *ps, int depth)
{
    return cond_chain(ps, depth, N_OR, "or", cond_and);
}

/* [when COND] to the end of the statement. */
static bool opt_when(struct parser *ps, int *cond)
{
    *cond = -1;
    if (at_end(ps))
        return true;
    if (!is_word(ps, "when"))
        return FAIL(ps, "expected 'when' or the end of the statement");
    if (!next(ps))
        return false;
    *cond = cond_or(ps, 0);
    if (*cond < 0)
        return false;
    if (!at_end(ps))
        return FAIL(ps, "expected 'and', 'or' or the end of the statement");
    return true;
}

/* ---- statements ---- */

static bool end_of_statement(struct parser *ps)
{
    if (!at_end(ps))
        return FAIL(ps, "unexpected '%s' at the end of the statement",
                    ps->t == K_WORD || ps->t == K_STRING ? ps->text : "token");
    return true;
}

/* CIDR: an address with an optional /prefix, into the 128-bit form. */
static bool cidr(struct parser *ps, struct cu_ip *ip, int *prefix)
{
    struct cu_cidr c;
    const char *why = NULL;

    if (ps->t != K_WORD)
        return FAIL(ps, "expected an address or a CIDR block");
    if (cu_cidr_parse(ps->text, strlen(ps->text), &c, &why) != CU_OK)
        return FAIL(ps, "'%s' %s", ps->text, why);
    *ip = c.addr;
    *prefix = c.prefix;
    return next(ps);
}

static bool st_network(struct parser *ps)
{
    struct cu_policy *p = ps->p;
    struct net *nt;

    if (!next(ps) || !new_name(ps, "network"))
        return false;
    {
        struct net *nv = cu_reallocarray(p->nets, p->nnets + 1, sizeof(*nv));
        if (!nv)
            return FAIL(ps, "out of memory");
        p->nets = nv;
    }
    nt = &p->nets[p->nnets];
    memset(nt, 0, sizeof(*nt));
    if (!(nt->name = cu_strdup(ps->text)))
        return FAIL(ps, "out of memory");
    p->nnets++;
    if (!next(ps))
        return false;
    while (!at_end(ps)) {
        struct cu_ip *na;
        int *np;
        if (nt->n >= 10000)
            return FAIL(ps, "a network of more than 10000 blocks");
        na = cu_reallocarray(nt->addr, nt->n + 1, sizeof(*na));
        if (na)
            nt->addr = na;
        np = na ? cu_reallocarray(nt->prefix, nt->n + 1, sizeof(*np)) : NULL;
        if (!np)
            return FAIL(ps, "out of memory");
        nt->prefix = np;
        if (!cidr(ps, &nt->addr[nt->n], &nt->prefix[nt->n]))
            return false;
        nt->n++;
        if (ps->t == K_COMMA && !next(ps))
            return false;
    }
    if (nt->n == 0)
        return FAIL(ps, "a network needs at least one address or CIDR block");
    return true;
}

static int day_index(const char *s, size_t n)
{
    static const char *const days[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};
    for (int i = 0; i < 7; i++)
        if (n == 3 && memcmp(s, days[i], 3) == 0)
            return i;
    return -1;
}

/* DAYS: daily, a day, a range mon-fri (may wrap: fri-mon), or a comma list of those. */
static bool days_spec(struct parser *ps, unsigned *days)
{
    const char *s = ps->text;
    *days = 0;
    if (ps->t != K_WORD)
        return FAIL(ps, "expected days: daily, mon-fri, sat,sun …");
    if (strcmp(s, "daily") == 0) {
        *days = 0x7f;
        return next(ps);
    }
    for (;;) {
        const char *dash = strchr(s, '-');
        int a = day_index(s, dash ? (size_t)(dash - s) : strlen(s)), b = a;
        if (dash)
            b = day_index(dash + 1, strlen(dash + 1));
        if (a < 0 || b < 0)
            return FAIL(ps, "'%s' is not a day or a range of days (sun mon tue wed thu fri sat)",
                        s);
        for (int d = a;; d = (d + 1) % 7) {
            *days |= 1u << d;
            if (d == b)
                break;
        }
        if (!next(ps))
            return false;
        if (ps->t != K_COMMA)
            return true;
        if (!next(ps))
            return false;
        if (ps->t != K_WORD)
            return FAIL(ps, "expected a day after ','");
        s = ps->text;
    }
}

static bool clock_time(const char *s, int *minutes)
{
    if (strlen(s) != 5 || !isdigit((unsigned char)s[0]) || !isdigit((unsigned char)s[1]) ||
        s[2] != ':' || !isdigit((unsigned char)s[3]) || !isdigit((unsigned char)s[4]))
        return false;
    int h = (s[0] - '0') * 10 + (s[1] - '0'), m = (s[3] - '0') * 10 + (s[4] - '0');
    if (h > 24 || m > 59 || (h == 24 && m != 0))
        return false;
    *minutes = h * 60 + m;
    return true;
}

static bool st_hours(struct parser *ps)
{
    struct cu_policy *p = ps->p;
    struct hours *h, *nv;
    char start[8], tzerr[160];
    const char *dash;
    enum cu_err rc;

    if (!next(ps) || !new_name(ps, "hours"))
        return false;
    nv = cu_reallocarray(p->hours, p->nhours + 1, sizeof(*nv));
    if (!nv)
        return FAIL(ps, "out of memory");
    p->hours = nv;
    h = &p->hours[p->nhours];
    memset(h, 0, sizeof(*h));
    if (!(h->name = cu_strdup(ps->text)))
        return FAIL(ps, "out of memory");
    p->nhours++;
    if (!next(ps) || !days_spec(ps, &h->days))
        return false;
    dash = ps->t == K_WORD ? strchr(ps->text, '-') : NULL;
    if (!dash || dash - ps->text != 5)
        return FAIL(ps, "expected a window of local time, as 08:00-18:00");
    memcpy(start, ps->text, 5);
    start[5] = '\0';
    if (!clock_time(start, &h->start) || !clock_time(dash + 1, &h->end) || h->start == 1440 ||
        h->start == h->end)
        return FAIL(ps, "'%s' is not a window of local time (HH:MM-HH:MM, 00:00 to 24:00)",
                    ps->text);
    if (!next(ps))
        return false;
    if (ps->t != K_WORD)
        return FAIL(ps, "expected a time zone, as Europe/London or UTC");
    rc = cu_tz_load(ps->text, &h->tz, tzerr, sizeof tzerr);
    if (rc != CU_OK)
        return FAIL(ps, "%s",
                    rc == CU_E_NOT_FOUND || rc == CU_E_INVALID ? "no such time zone" : tzerr);
    return next(ps) && end_of_statement(ps);
}

static bool st_region(struct parser *ps)
{
    struct cu_policy *p = ps->p;
    struct region *r, *nv;

    if (!next(ps) || !new_name(ps, "region"))
        return false;
    nv = cu_reallocarray(p->regions, p->nregions + 1, sizeof(*nv));
    if (!nv)
        return FAIL(ps, "out of memory");
    p->regions = nv;
    r = &p->regions[p->nregions];
    memset(r, 0, sizeof(*r));
    if (!(r->name = cu_strdup(ps->text)))
        return FAIL(ps, "out of memory");
    p->nregions++;
    if (!next(ps))
        return false;
    while (!at_end(ps)) {
        char(*nc)[3];
        if (ps->t != K_WORD || strlen(ps->text) != 2 || !isupper((unsigned char)ps->text[0]) ||
            !isupper((unsigned char)ps->text[1]))
            return FAIL(ps, "expected a country code (two capital letters, ISO 3166)");
        if (r->n >= 300)
            return FAIL(ps, "a region of more than 300 countries");
        nc = cu_reallocarray(r->countries, r->n + 1, sizeof(*nc));
        if (!nc)
            return FAIL(ps, "out of memory");
        r->countries = nc;
        memcpy(r->countries[r->n++], ps->text, 3);
        if (!next(ps))
            return false;
        if (ps->t == K_COMMA && !next(ps))
            return false;
    }
    if (r->n == 0)
        return FAIL(ps, "a region needs at least one country");
    return true;
}

static struct rule *new_rule(struct parser *ps, struct rule **v, size_t *n, size_t *cap)
{
    if (*n >= CU_POLICY_MAX_STATEMENTS)
        return FAIL(ps, "more than %d statements", CU_POLICY_MAX_STATEMENTS), NULL;
    if (!grow((void **)v, cap, *n + 1, sizeof(struct rule)))
        return FAIL(ps, "out of memory"), NULL;
    memset(&(*v)[*n], 0, sizeof(struct rule));
    (*v)[*n].cond = -1;
    (*v)[*n].role = -1;
    (*v)[*n].next = -1;
    return &(*v)[(*n)++];
}

static int add_role(struct parser *ps, const char *name, bool builtin)
{
    struct role *r;
    if (ps->p->nroles >= CU_POLICY_MAX_ROLES)
        return FAIL(ps, "more than %d roles", CU_POLICY_MAX_ROLES), -1;
    r = &ps->p->roles[ps->p->nroles];
    memset(r, 0, sizeof(*r));
    if (!(r->name = cu_strdup(name)))
        return FAIL(ps, "out of memory"), -1;
    r->builtin = builtin;
    return (int)ps->p->nroles++;
}

/* role NAME [PERM ...]: defines a role, or defines a built-in one anew. */
static bool st_role(struct parser *ps, int line)
{
    struct cu_policy *p = ps->p;
    struct rule *ru;
    int idx;
    uint64_t perms = 0;

    if (!next(ps))
        return false;
    if (ps->t != K_WORD || !name_ok(ps->text))
        return FAIL(ps, "expected the role's name (lower-case letters, digits, '_')");
    idx = find_role(p, ps->text);
    if (idx >= 0 && (!p->roles[idx].builtin || p->roles[idx].redefined))
        return FAIL(ps, "role '%s' is defined already", ps->text);
    if (idx >= 0) {
        p->roles[idx].redefined = true;
        p->roles[idx].perms = 0; /* what the file gives it, not what the built-in one did */
    } else if ((idx = add_role(ps, ps->text, false)) < 0)
        return false;
    if (!next(ps))
        return false;
    while (!at_end(ps)) {
        if (!permission(ps, true, &perms))
            return false;
        if (ps->t == K_COMMA && !next(ps))
            return false;
    }
    p->roles[idx].perms |= perms;
    if (perms == 0)
        return true; /* a role given only through its permit statements */
    if (!(ru = new_rule(ps, &p->permits, &p->npermits, &p->cappermits)))
        return false;
    ru->role = idx;
    ru->perms = perms;
    ru->line = line;
    return true;
}

/* permit ROLE PERM[,PERM...] [masked] [when COND] */
static bool st_permit(struct parser *ps, int line)
{
    struct cu_policy *p = ps->p;
    struct rule r;
    int idx;

    if (!next(ps))
        return false;
    if (ps->t != K_WORD || (idx = find_role(p, ps->text)) < 0)
        return FAIL(ps, "expected a role defined above or built in");
    if (p->roles[idx].builtin && !p->roles[idx].redefined)
        return FAIL(ps, "built-in role '%s' is fixed: define it anew with 'role %s' first",
                    ps->text, ps->text);
    memset(&r, 0, sizeof(r));
    r.role = idx;
    r.line = line;
    if (!next(ps) || !permission_list(ps, true, &r.perms))
        return false;
    if (is_word(ps, "masked")) {
        if (r.perms != CU_SCOPE_CUSTOMERS_READ)
            return FAIL(ps, "'masked' goes with customers.read alone");
        r.masked = true;
        if (!next(ps))
            return false;
    }
    if (!opt_when(ps, &r.cond))
        return false;
    {
        struct rule *ru = new_rule(ps, &p->permits, &p->npermits, &p->cappermits);
        if (!ru)
            return false;
        r.next = -1;
        *ru = r;
    }
    p->roles[idx].perms |= r.perms;
    return true;
}

/* SUBJECT: staff, apikey, any, staff:ID, apikey:ID */
static bool subject(struct parser *ps, unsigned *kinds, char **id)
{
    const char *colon = ps->t == K_WORD ? strchr(ps->text, ':') : NULL;
    size_t klen = colon ? (size_t)(colon - ps->text) : strlen(ps->text);

    *kinds = 0;
    *id = NULL;
    if (ps->t == K_WORD && klen == 5 && strncmp(ps->text, "staff", 5) == 0)
        *kinds = 1u << CU_ACCESS_STAFF;
    else if (ps->t == K_WORD && klen == 6 && strncmp(ps->text, "apikey", 6) == 0)
        *kinds = 1u << CU_ACCESS_APIKEY;
    else if (ps->t == K_WORD && !colon && strcmp(ps->text, "any") == 0)
        *kinds = 0;
    else
        return FAIL(ps, "expected staff, apikey, any, staff:ID or apikey:ID");
    if (colon) {
        size_t n = strlen(colon + 1);
        if (n == 0 || n > 40)
            return FAIL(ps, "expected a principal's id after ':'");
        const char *want = *kinds == 1u << CU_ACCESS_STAFF ? "stf_" : "ak_";
        bool ok = strncmp(colon + 1, want, strlen(want)) == 0 && n == strlen(want) + 16;
        for (size_t i = strlen(want); ok && i < n; i++)
            ok = isdigit((unsigned char)colon[1 + i]) ||
                 (colon[1 + i] >= 'a' && colon[1 + i] <= 'f');
        if (!ok)
            return FAIL(ps, "'%s' is not a %s id (%s and 16 lower-case hex digits)", colon + 1,
                        *kinds == 1u << CU_ACCESS_STAFF ? "staff member's" : "key's", want);
        if (!(*id = cu_strdup(colon + 1)))
            return FAIL(ps, "out of memory");
    }
    return next(ps);
}

/* grant ROLE to SUBJECT [when COND] */
static bool st_grant(struct parser *ps, int line)
{
    struct cu_policy *p = ps->p;
    struct rule *ru;
    int idx;

    if (!next(ps))
        return false;
    if (ps->t != K_WORD || (idx = find_role(p, ps->text)) < 0)
        return FAIL(ps, "expected a role defined above or built in");
    if (!(ru = new_rule(ps, &p->grants, &p->ngrants, &p->capgrants)))
        return false;
    ru->role = idx;
    ru->line = line;
    if (!next(ps))
        return false;
    if (!is_word(ps, "to"))
        return FAIL(ps, "expected 'to'");
    if (!next(ps) || !subject(ps, &ru->kinds, &ru->subject))
        return false;
    return opt_when(ps, &p->grants[p->ngrants - 1].cond);
}

/* forbid PERM[,PERM...]|* [to staff|apikey] [when COND] */
static bool st_forbid(struct parser *ps, int line)
{
    struct cu_policy *p = ps->p;
    struct rule *ru;
    char *id = NULL;

    if (!(ru = new_rule(ps, &p->forbids, &p->nforbids, &p->capforbids)))
        return false;
    ru->line = line;
    if (!next(ps) || !permission_list(ps, true, &p->forbids[p->nforbids - 1].perms))
        return false;
    ru = &p->forbids[p->nforbids - 1];
    if (is_word(ps, "to")) {
        bool ok = next(ps) && subject(ps, &ru->kinds, &id);
        ru->subject = id; /* the policy's to free, whether or not the rest parses */
        if (!ok)
            return false;
    }
    return opt_when(ps, &ru->cond);
}

/* approve PERM[,PERM...] by N within DURATION */
static bool st_approve(struct parser *ps)
{
    uint64_t perms = 0;
    unsigned n;
    int64_t within;

    if (!next(ps) || !permission_list(ps, false, &perms))
        return false;
    if (!is_word(ps, "by"))
        return FAIL(ps, "expected 'by' and the number of approvers");
    if (!next(ps))
        return false;
    if (ps->t != K_NUMBER || ps->num < 1 || ps->num > 5)
        return FAIL(ps, "expected the number of approvers, 1 to 5");
    n = (unsigned)ps->num;
    if (!next(ps))
        return false;
    if (!is_word(ps, "within"))
        return FAIL(ps, "expected 'within' and a duration");
    if (!next(ps))
        return false;
    if (ps->t != K_DURATION || ps->num < 60000 || ps->num > 30 * 86400000LL)
        return FAIL(ps, "expected a duration from 1m to 30d");
    within = ps->num;
    if (!next(ps) || !end_of_statement(ps))
        return false;
    for (int b = 0; b < 64; b++)
        if (perms & (1ull << b)) {
            ps->p->approvals[b].n = n;
            ps->p->approvals[b].within_ms = within;
        }
    return true;
}

static bool statement(struct parser *ps, bool *versioned)
{
    int line = ps->tline;

    if (!*versioned) {
        if (!is_word(ps, "version"))
            return FAIL(ps, "a policy starts with 'version 1'");
        if (!next(ps))
            return false;
        if (ps->t != K_NUMBER || ps->num != 1)
            return FAIL(ps, "this custodia reads policy version 1");
        *versioned = true;
        return next(ps) && end_of_statement(ps);
    }
    if (is_word(ps, "network"))
        return st_network(ps);
    if (is_word(ps, "hours"))
        return st_hours(ps);
    if (is_word(ps, "region"))
        return st_region(ps);
    if (is_word(ps, "role"))
        return st_role(ps, line);
    if (is_word(ps, "permit"))
        return st_permit(ps, line);
    if (is_word(ps, "grant"))
        return st_grant(ps, line);
    if (is_word(ps, "forbid"))
        return st_forbid(ps, line);
    if (is_word(ps, "approve"))
        return st_approve(ps);
    if (is_word(ps, "version"))
        return FAIL(ps, "'version' comes once, first");
    return FAIL(ps,
                "unknown statement '%s' (network, hours, region, role, permit, grant, "
                "forbid, approve)",
                ps->t == K_WORD ? ps->text : "?");
}

/* ---- building ---- */

static bool add_builtins(struct parser *ps)
{
    for (size_t i = 0; i < sizeof(builtin_roles) / sizeof(builtin_roles[0]); i++) {
        int idx = add_role(ps, builtin_roles[i].name, true);
        uint64_t perms = 0;
        const char *s = builtin_roles[i].perms;
        struct rule *ru;

        if (idx < 0)
            return false;
        while (*s) {
            size_t n = strcspn(s, " ");
            perms |= n == 1 && s[0] == '*' ? cu_apikey_all_scopes() : cu_apikey_scope_parse(s, n);
            s += n;
            s += *s == ' ';
        }
        ps->p->roles[idx].perms = perms;
        if (!(ru = new_rule(ps, &ps->p->permits, &ps->p->npermits, &ps->p->cappermits)))
            return false;
        ru->role = idx;
        ru->perms = perms;
        ru->builtin = true;
    }
    return true;
}

/* The indexes decide.c walks: permits and forbids by permission, grants by subject. */
static bool index_rules(struct parser *ps)
{
    struct cu_policy *p = ps->p;

    for (size_t i = 0; i < p->npermits; i++) {
        struct rule *r = &p->permits[i];
        if (r->builtin && p->roles[r->role].redefined)
            continue;
        for (int b = 0; b < 64; b++)
            if ((r->perms & (1ull << b)) && !idx_push(&p->by_perm[b], (int)i))
                return FAIL(ps, "out of memory");
    }
    for (size_t i = 0; i < p->nforbids; i++)
        for (int b = 0; b < 64; b++)
            if ((p->forbids[i].perms & (1ull << b)) && !idx_push(&p->forbid_perm[b], (int)i))
                return FAIL(ps, "out of memory");
    p->nbuckets = 16;
    while (p->nbuckets < p->ngrants * 2)
        p->nbuckets *= 2;
    p->grant_buckets = cu_malloc(p->nbuckets * sizeof(int));
    if (!p->grant_buckets)
        return FAIL(ps, "out of memory");
    for (size_t i = 0; i < p->nbuckets; i++)
        p->grant_buckets[i] = -1;
    /* chained in reverse, so walk order is file order */
    for (size_t i = p->ngrants; i-- > 0;) {
        struct rule *g = &p->grants[i];
        if (g->subject == NULL)
            continue;
        size_t b = cu_policy_hash_id(g->subject) & (p->nbuckets - 1);
        g->next = p->grant_buckets[b];
        p->grant_buckets[b] = (int)i;
    }
    for (size_t i = 0; i < p->ngrants; i++)
        if (p->grants[i].subject == NULL && !idx_push(&p->open_grants, (int)i))
            return FAIL(ps, "out of memory");
    return true;
}

static void free_operand(struct operand *o)
{
    cu_free(o->str);
    for (size_t i = 0; i < o->nitems; i++)
        cu_free(o->items[i]);
    cu_free(o->items);
}

void cu_policy_free(struct cu_policy *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->nnodes; i++) {
        free_operand(&p->nodes[i].a);
        free_operand(&p->nodes[i].b);
        cu_free(p->nodes[i].kids);
        cu_free(p->nodes[i].text);
    }
    cu_free(p->nodes);
    for (size_t i = 0; i < p->nnets; i++) {
        cu_free(p->nets[i].name);
        cu_free(p->nets[i].addr);
        cu_free(p->nets[i].prefix);
    }
    cu_free(p->nets);
    for (size_t i = 0; i < p->nhours; i++) {
        cu_free(p->hours[i].name);
        cu_tz_free(p->hours[i].tz);
    }
    cu_free(p->hours);
    for (size_t i = 0; i < p->nregions; i++) {
        cu_free(p->regions[i].name);
        cu_free(p->regions[i].countries);
    }
    cu_free(p->regions);
    for (size_t i = 0; i < p->nroles; i++)
        cu_free(p->roles[i].name);
    cu_free(p->permits);
    for (size_t i = 0; i < p->nforbids; i++)
        cu_free(p->forbids[i].subject);
    cu_free(p->forbids);
    for (size_t i = 0; i < p->ngrants; i++)
        cu_free(p->grants[i].subject);
    cu_free(p->grants);
    cu_free(p->grant_buckets);
    for (int b = 0; b < 64; b++) {
        cu_free(p->by_perm[b].v);
        cu_free(p->forbid_perm[b].v);
    }
    cu_free(p->open_grants.v);
    cu_free(p);
}

enum cu_err cu_policy_parse(const char *name, const char *text, size_t len, struct cu_policy **out,
                            struct cu_policy_error *err)
{
    struct parser ps;
    bool versioned = false;
    uint8_t digest[CU_HASH_BYTES];

    *out = NULL;
    memset(err, 0, sizeof(*err));
    snprintf(err->file, sizeof(err->file), "%s", name);
    if (len > CU_POLICY_MAX_BYTES) {
        snprintf(err->reason, sizeof(err->reason), "over %u bytes", CU_POLICY_MAX_BYTES);
        return CU_E_TOO_LARGE;
    }
    memset(&ps, 0, sizeof(ps));
    ps.src = text;
    ps.len = len;
    ps.line = 1;
    ps.col = 1;
    ps.err = err;
    ps.p = cu_calloc(1, sizeof(*ps.p));
    if (!ps.p)
        return CU_E_NOMEM;
    /* explanations name the file without its directory, which is not the caller's business */
    snprintf(ps.p->source, sizeof(ps.p->source), "%s",
             strrchr(name, '/') ? strrchr(name, '/') + 1 : name);
    if (memchr(text, '\0', len) != NULL) {
        fail_at(&ps, 1, 1, "the file holds a NUL byte");
        goto bad;
    }
    if (!cu_utf8_valid(text, len)) {
        fail_at(&ps, 1, 1, "the file is not UTF-8 text");
        goto bad;
    }
    /* a file cut short (written in place, read half-way) must not pass for a shorter policy */
    if (len > 0 && text[len - 1] != '\n') {
        int line = 1;
        for (size_t i = 0; i < len; i++)
            line += text[i] == '\n';
        fail_at(&ps, line, 1, "the file does not end with a newline (cut short?)");
        goto bad;
    }
    if (!add_builtins(&ps) || !next(&ps))
        goto bad;
    while (ps.t != K_EOF) {
        if (ps.t == K_EOL) {
            if (!next(&ps))
                goto bad;
            continue;
        }
        if (!statement(&ps, &versioned))
            goto bad;
        if (!at_end(&ps)) {
            FAIL(&ps, "unexpected '%s' at the end of the statement",
                 ps.t == K_WORD || ps.t == K_STRING ? ps.text : "token");
            goto bad;
        }
    }
    if (!versioned) {
        fail_at(&ps, ps.line, ps.col, "a policy starts with 'version 1'");
        goto bad;
    }
    if (!index_rules(&ps))
        goto bad;
    cu_crypto_sha256(text, len, digest);
    cu_hex_encode(digest, sizeof(digest), ps.p->digest);
    *out = ps.p;
    return CU_OK;
bad:
    cu_policy_free(ps.p);
    return strcmp(err->reason, "out of memory") == 0 ? CU_E_NOMEM : CU_E_INVALID;
}

enum cu_err cu_policy_load(const char *path, struct cu_policy **out, struct cu_policy_error *err)
{
    struct stat sb, after;
    char *buf = NULL;
    size_t got = 0;
    enum cu_err rc = CU_E_IO;
    /* O_NONBLOCK: a FIFO in its place must not hang the reader; fstat then says it is none */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);

    *out = NULL;
    memset(err, 0, sizeof(*err));
    snprintf(err->file, sizeof(err->file), "%s", path);
    if (fd < 0 || fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        snprintf(err->reason, sizeof(err->reason), "cannot read the file: %s",
                 fd < 0 || errno != 0 ? strerror(errno) : "not a regular file");
        goto out;
    }
    if ((uint64_t)sb.st_size > CU_POLICY_MAX_BYTES) {
        snprintf(err->reason, sizeof(err->reason), "over %u bytes", CU_POLICY_MAX_BYTES);
        rc = CU_E_TOO_LARGE;
        goto out;
    }
    buf = cu_malloc((size_t)sb.st_size + 1);
    if (!buf) {
        rc = CU_E_NOMEM;
        goto out;
    }
    (void)fcntl(fd, F_SETFL, 0);
    while (got < (size_t)sb.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)sb.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(err->reason, sizeof(err->reason), "cannot read the file: %s",
                     n < 0 ? strerror(errno) : "it changed while read");
            goto out;
        }
        got += (size_t)n;
    }
    if (fstat(fd, &after) != 0 || after.st_size != sb.st_size ||
        after.st_mtim.tv_sec != sb.st_mtim.tv_sec || after.st_mtim.tv_nsec != sb.st_mtim.tv_nsec) {
        snprintf(err->reason, sizeof(err->reason), "the file changed while it was read");
        goto out;
    }
    rc = cu_policy_parse(path, buf, got, out, err);
out:
    if (fd >= 0)
        close(fd);
    cu_free(buf);
    return rc;
}

enum cu_err cu_policy_default(struct cu_policy **out)
{
    static const char text[] = "version 1\n";
    struct cu_policy_error err;
    enum cu_err rc = cu_policy_parse("built-in", text, sizeof(text) - 1, out, &err);
    if (rc == CU_OK)
        snprintf((*out)->source, sizeof((*out)->source), "built-in");
    return rc;
}

void cu_policy_error_format(const struct cu_policy_error *e, char *out, size_t cap)
{
    if (e->line > 0)
        snprintf(out, cap, "%s:%d:%d: %s", e->file, e->line, e->col, e->reason);
    else
        snprintf(out, cap, "%s: %s", e->file, e->reason);
}

const char *cu_policy_source(const struct cu_policy *p)
{
    return p->source;
}

const char *cu_policy_digest(const struct cu_policy *p)
{
    return p->digest;
}

void cu_policy_count(const struct cu_policy *p, struct cu_policy_counts *out)
{
    memset(out, 0, sizeof(*out));
    out->roles = p->nroles;
    for (size_t i = 0; i < p->nroles; i++) {
        out->builtin_roles += p->roles[i].builtin;
        out->redefined_roles += p->roles[i].redefined;
    }
    for (size_t i = 0; i < p->npermits; i++)
        out->permits += !p->permits[i].builtin;
    out->grants = p->ngrants;
    out->forbids = p->nforbids;
    for (int b = 0; b < 64; b++)
        out->approvals += p->approvals[b].n > 0;
}

bool cu_policy_has_role(const struct cu_policy *p, const char *name)
{
    return find_role(p, name) >= 0;
}

uint64_t cu_policy_role_permissions(const struct cu_policy *p, const char *name)
{
    int i = find_role(p, name);
    return i < 0 ? 0 : p->roles[i].perms;
}

uint64_t cu_policy_roles_permissions(const struct cu_policy *p, const char *roles)
{
    uint64_t perms = 0;
    while (p != NULL && roles != NULL && *roles) {
        size_t n = strcspn(roles, " ");
        for (size_t j = 0; j < p->nroles; j++)
            if (strncmp(roles, p->roles[j].name, n) == 0 && p->roles[j].name[n] == '\0') {
                perms |= p->roles[j].perms;
                break;
            }
        roles += n;
        roles += *roles == ' ';
    }
    return perms;
}

enum cu_err cu_cidr_parse(const char *text, size_t len, struct cu_cidr *out, const char **why)
{
    char buf[CU_CIDR_TEXT_MAX];
    const char *slash = memchr(text, '/', len);
    size_t alen = slash ? (size_t)(slash - text) : len;
    long pl;

    memset(out, 0, sizeof(*out));
    *why = "is not an IPv4 or IPv6 address";
    if (alen == 0 || alen >= sizeof(buf) || memchr(text, '\0', len) != NULL)
        return CU_E_INVALID;
    memcpy(buf, text, alen);
    buf[alen] = '\0';
    if (cu_ip_parse(buf, &out->addr) != CU_OK)
        return CU_E_INVALID;
    bool v4 = strchr(buf, ':') == NULL;
    pl = v4 ? 32 : 128;
    if (slash) {
        size_t plen = len - alen - 1;
        *why =
            v4 ? "has no valid prefix length (0 to 32)" : "has no valid prefix length (0 to 128)";
        if (plen == 0 || plen > 3)
            return CU_E_INVALID;
        pl = 0;
        for (size_t i = 0; i < plen; i++) {
            if (!isdigit((unsigned char)slash[1 + i]))
                return CU_E_INVALID;
            pl = pl * 10 + (slash[1 + i] - '0');
        }
        if (pl > (v4 ? 32 : 128))
            return CU_E_INVALID;
    }
    out->prefix = (int)pl + (v4 ? 96 : 0);
    /* host bits set below the prefix are a mistake worth naming */
    for (int bit = out->prefix; bit < 128; bit++)
        if (out->addr.b[bit / 8] & (0x80 >> (bit % 8))) {
            *why = "has bits set past its prefix";
            return CU_E_INVALID;
        }
    return CU_OK;
}

enum cu_err cu_cidr_list_parse(const char *text, struct cu_cidr *out, size_t cap, size_t *n)
{
    const char *why = NULL;

    *n = 0;
    while (*text != '\0') {
        size_t len = strcspn(text, " ");
        if (len == 0 || *n == cap || cu_cidr_parse(text, len, &out[*n], &why) != CU_OK)
            return CU_E_INVALID;
        (*n)++;
        text += len;
        if (*text == ' ' && *++text == '\0')
            return CU_E_INVALID;
    }
    return CU_OK;
}

enum cu_err cu_cidr_list_allows(const char *list, const struct cu_ip *ip, bool *allows)
{
    struct cu_cidr blocks[CU_CIDR_LIST_MAX];
    size_t n = 0;

    *allows = false;
    if (list[0] == '\0') {
        *allows = true;
        return CU_OK;
    }
    if (cu_cidr_list_parse(list, blocks, CU_CIDR_LIST_MAX, &n) != CU_OK)
        return CU_E_INVALID;
    for (size_t i = 0; i < n && ip != NULL && !*allows; i++)
        *allows = cu_cidr_has(&blocks[i], ip);
    return CU_OK;
}

bool cu_cidr_within(const struct cu_cidr *inner, const struct cu_cidr *outer)
{
    return inner->prefix >= outer->prefix && cu_cidr_has(outer, &inner->addr);
}

enum cu_err cu_ip_parse(const char *text, struct cu_ip *out)
{
    struct in_addr a4;
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, text, &a4) == 1) {
        out->b[10] = 0xff;
        out->b[11] = 0xff;
        memcpy(&out->b[12], &a4, 4);
        return CU_OK;
    }
    return inet_pton(AF_INET6, text, out->b) == 1 ? CU_OK : CU_E_INVALID;
}
