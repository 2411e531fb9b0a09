/*
 * rules.c - the rule language's lexer, parser, type checker and evaluator (rules.h).
 *
 * A rule's condition compiles to an array of nodes, each naming its operands by index, the
 * root last. Values carry a type and whether they are missing: an optional field the event
 * lacks, a feature without history. A comparison with a missing operand is unknown, as in
 * SQL; `and`, `or` and `not` follow Kleene's three-valued logic (false and unknown is false,
 * true or unknown is true, not unknown is unknown), so `not (a == b)` means `a != b`; a rule
 * fires only when its condition is true (docs/rules.md, "Missing values").
 */
#include "monitor/rules.h"

#include <errno.h>

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access/policy.h"
#include "base/mem.h"

/* --- the compiled form ----------------------------------------------------------------- */

enum type { T_BOOL, T_NUM, T_DUR, T_STR, T_TIME, T_LIST, T_FIELDS };

static const char *const type_names[] = {
    "a boolean", "a number", "a duration", "a string", "a time", "a list", "a list of field names"};

enum op {
    OP_CONST,   /* n, s, type */
    OP_FIELD,   /* i: an event field */
    OP_ATTR,    /* s: an attribute's key */
    OP_FEAT,    /* i: a feature of the set */
    OP_TYPE_IS, /* mask: the event's type is one of these */
    OP_NOT,
    OP_AND,
    OP_OR,
    OP_EXISTS,
    OP_EQ,
    OP_NE,
    OP_LT,
    OP_LE,
    OP_GT,
    OP_GE,
    OP_ADD,
    OP_SUB,
    OP_MUL,
    OP_DIV,
    OP_MOD,
    OP_NEG,
    OP_IN_LIST,   /* a in list i (strings or numbers) */
    OP_IN_CIDRS,  /* event.ip in list i (blocks) */
    OP_IN_FIELDS, /* a string in event.fields */
};

enum field {
    F_TYPE,
    F_TIME,
    F_HOUR,
    F_WEEKDAY,
    F_CUSTOMER,
    F_IP,
    F_DEVICE,
    F_COUNTRY,
    F_LAT,
    F_LON,
    F_AMOUNT,
    F_CURRENCY,
    F_PAYEE,
    F_CHANNEL,
    F_FIELDS,
    F_COUNT
};

static const struct {
    const char *name;
    enum type type;
} fields[F_COUNT] = {{"type", T_STR},    {"time", T_TIME},    {"hour", T_NUM},
                     {"weekday", T_NUM}, {"customer", T_STR}, {"ip", T_STR},
                     {"device", T_STR},  {"country", T_STR},  {"lat", T_NUM},
                     {"lon", T_NUM},     {"amount", T_NUM},   {"currency", T_STR},
                     {"payee", T_STR},   {"channel", T_STR},  {"fields", T_FIELDS}};

struct node {
    uint8_t op, type;
    int16_t a, b;
    int32_t i;
    uint64_t mask;
    double n;
    const char *s;
};

struct list {
    char name[CU_MON_NAME_MAX + 1];
    bool numeric;
    size_t n;
    char **str;           /* sorted */
    double *num;          /* sorted */
    struct cu_cidr *cidr; /* when every item is an address or a block */
    bool all_cidr;
    bool managed; /* `list NAME managed`: its items come from the store (cu_rules_list_set) */
};

struct rule {
    char name[CU_MON_NAME_MAX + 1];
    char reason[CU_RULES_REASON_MAX + 1];
    uint64_t types; /* the rule runs only on these types (0: all) */
    struct node *nodes;
    size_t nnodes;
    int score;
    enum cu_decision decision;
    unsigned actions;
    unsigned notify_templates;
    int64_t freeze_ms, lock_ms;
    enum cu_severity severity;
};

static const char *const notify_templates[CU_RULES_NOTIFY_TEMPLATES] = {
    "security_notice", "new_sign_in",    "password_changed", "second_factor_changed",
    "new_payee",       "large_transfer", "accounts_frozen"};

const char *cu_rules_notify_template(unsigned i)
{
    return i < CU_RULES_NOTIFY_TEMPLATES ? notify_templates[i] : NULL;
}

struct cu_ruleset {
    const struct cu_mon_types *types;
    int thresholds[5]; /* score at which each decision begins; [0] unused */
    struct rule *rules;
    size_t nrules;
    struct cu_feature features[CU_RULES_FEATURES_MAX];
    const char *feature_text[CU_RULES_FEATURES_MAX]; /* as first written, spaces collapsed */
    size_t nfeatures;
    struct list lists[CU_RULES_LISTS_MAX];
    size_t nlists;
    char **strings; /* the strings the nodes point at */
    size_t nstrings, capstrings;
};

static const char *const decision_names[] = {"allow", "review", "step_up", "hold", "deny"};
static const char *const severity_names[] = {"low", "medium", "high", "critical"};
static const char *const key_names[CU_KEY_COUNT] = {"customer", "ip",      "ip_block", "device",
                                                    "payee",    "country", "all"};

const char *cu_decision_name(enum cu_decision d)
{
    return (unsigned)d < 5 ? decision_names[d] : "?";
}

const char *cu_severity_name(enum cu_severity s)
{
    return (unsigned)s < 4 ? severity_names[s] : "?";
}

const char *cu_key_name(enum cu_key k)
{
    return (unsigned)k < CU_KEY_COUNT ? key_names[k] : "?";
}

/* --- the lexer ------------------------------------------------------------------------- */

enum tok { TK_EOF, TK_IDENT, TK_NUM, TK_DUR, TK_STR, TK_PUNCT };

struct token {
    enum tok kind;
    const char *p; /* its text in the file */
    size_t len;
    int line, col;
    double num; /* TK_NUM; TK_DUR in ms */
};

struct parser {
    const char *src, *end, *name;
    const char *p;
    int line, col;
    struct token t;       /* the current token */
    const char *prev_end; /* where the token before it ended */
    char *err;
    bool failed;
    struct cu_ruleset *rs;
    struct rule *rule; /* the rule being compiled */
    size_t capnodes;
    int depth; /* of nested parentheses, calls, `not`s and `-`s: the parser's recursion */
};

/* How deep an expression may nest: the parser recurses before it adds a term, so the limit
 * on terms alone would not bound its stack. */
#define RULES_DEPTH_MAX 32

static void perr(struct parser *ps, const struct token *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void perr(struct parser *ps, const struct token *at, const char *fmt, ...)
{
    va_list ap;
    int n;
    if (ps->failed)
        return;
    ps->failed = true;
    n = snprintf(ps->err, CU_RULES_ERR_BYTES, "%s:%d:%d: ", ps->name, at->line, at->col);
    if (n < 0 || n >= CU_RULES_ERR_BYTES)
        return;
    va_start(ap, fmt);
    vsnprintf(ps->err + n, CU_RULES_ERR_BYTES - (size_t)n, fmt, ap);
    va_end(ap);
}

/* printable(s): s with control characters shown as '?', in place (for error messages). */
static const char *printable(char *s)
{
    for (char *c = s; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = '?';
    return s;
}

/* describe(t, out): how an error names the token it found. */
static const char *describe(const struct token *t, char out[48])
{
    if (t->kind == TK_EOF)
        return "the end of the file";
    snprintf(out, 48, "'%.*s'", (int)(t->len > 30 ? 30 : t->len), t->p);
    for (char *c = out; *c; c++) /* a string token may hold control characters */
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = '?';
    return out;
}

static void advance(struct parser *ps, size_t n)
{
    for (size_t i = 0; i < n && ps->p < ps->end; i++, ps->p++) {
        if (*ps->p == '\n') {
            ps->line++;
            ps->col = 1;
        } else {
            ps->col++;
        }
    }
}

static bool is_ident_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

static void next(struct parser *ps)
{
    struct token *t = &ps->t;
    ps->prev_end = t->p != NULL ? t->p + t->len : ps->src;
    for (;;) {
        while (ps->p < ps->end &&
               (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
            advance(ps, 1);
        if (ps->p < ps->end && *ps->p == '#') {
            while (ps->p < ps->end && *ps->p != '\n')
                advance(ps, 1);
            continue;
        }
        break;
    }
    memset(t, 0, sizeof(*t));
    t->p = ps->p;
    t->line = ps->line;
    t->col = ps->col;
    if (ps->p >= ps->end) {
        t->kind = TK_EOF;
        return;
    }
    char c = *ps->p;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_') {
        size_t n = 0;
        while (ps->p + n < ps->end && is_ident_char(ps->p[n]))
            n++;
        t->kind = TK_IDENT;
        t->len = n;
        advance(ps, n);
        return;
    }
    if (c >= '0' && c <= '9') {
        size_t n = 0;
        char buf[40];
        while (ps->p + n < ps->end && ((ps->p[n] >= '0' && ps->p[n] <= '9') || ps->p[n] == '.'))
            n++;
        if (n >= sizeof(buf)) {
            t->kind = TK_PUNCT;
            t->len = n;
            perr(ps, t, "a number of more than 39 characters");
            return;
        }
        memcpy(buf, ps->p, n);
        buf[n] = '\0';
        char *end = NULL;
        t->num = strtod(buf, &end);
        if (end != buf + n) {
            t->kind = TK_PUNCT;
            t->len = n;
            perr(ps, t, "'%s' is not a number", buf);
            return;
        }
        t->kind = TK_NUM;
        /* memchr, not strchr: a NUL byte in the file must not read as a unit */
        static const char units[4] = {'s', 'm', 'h', 'd'};
        static const double unit_ms[4] = {1000.0, 60000.0, 3600000.0, 86400000.0};
        const char *u = ps->p + n < ps->end ? memchr(units, ps->p[n], sizeof(units)) : NULL;
        if (u != NULL && !(ps->p + n + 1 < ps->end && is_ident_char(ps->p[n + 1]))) {
            t->num *= unit_ms[u - units];
            t->kind = TK_DUR;
            n++;
        } else if (ps->p + n < ps->end && is_ident_char(ps->p[n])) {
            t->kind = TK_PUNCT;
            t->len = n + 1;
            perr(ps, t, "a duration ends in s, m, h or d (e.g. 30s, 5m, 1h, 7d)");
            return;
        }
        t->len = n;
        advance(ps, n);
        return;
    }
    if (c == '"') {
        size_t n = 1;
        while (ps->p + n < ps->end && ps->p[n] != '"' && ps->p[n] != '\n') {
            if (ps->p[n] == '\\' && ps->p + n + 1 < ps->end)
                n++;
            n++;
        }
        if (ps->p + n >= ps->end || ps->p[n] != '"') {
            t->kind = TK_PUNCT;
            t->len = 1;
            perr(ps, t, "a string is not closed on its line");
            return;
        }
        t->kind = TK_STR;
        t->len = n + 1;
        advance(ps, n + 1);
        return;
    }
    static const char *const two[] = {"==", "!=", "<=", ">="};
    for (size_t i = 0; i < 4; i++)
        if (ps->end - ps->p >= 2 && memcmp(ps->p, two[i], 2) == 0) {
            t->kind = TK_PUNCT;
            t->len = 2;
            advance(ps, 2);
            return;
        }
    if (c != '\0' && strchr("()[],.<>+-*/%=", c) != NULL) {
        t->kind = TK_PUNCT;
        t->len = 1;
        advance(ps, 1);
        return;
    }
    t->kind = TK_PUNCT;
    t->len = 1;
    if ((unsigned char)c < 0x20 || (unsigned char)c >= 0x7f)
        perr(ps, t, "a character that has no place in a rule file (byte 0x%02x)", (unsigned char)c);
    else
        perr(ps, t, "'%c' has no place in a rule file", c);
}

static bool is(const struct parser *ps, const char *text)
{
    return (ps->t.kind == TK_IDENT || ps->t.kind == TK_PUNCT) && ps->t.len == strlen(text) &&
           memcmp(ps->t.p, text, ps->t.len) == 0;
}

static bool accept(struct parser *ps, const char *text)
{
    if (ps->failed || !is(ps, text))
        return false;
    next(ps);
    return true;
}

static void expect(struct parser *ps, const char *text, const char *what)
{
    char d[48];
    if (ps->failed)
        return;
    if (!accept(ps, text))
        perr(ps, &ps->t, "expected %s, found %s", what, describe(&ps->t, d));
}

/* str_value(ps, tok, out, cap): a string token's text with \" and \\ undone. */
static bool str_value(struct parser *ps, const struct token *t, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 1; i + 1 < t->len; i++) {
        char c = t->p[i];
        if (c == '\\') {
            c = t->p[++i];
            if (c != '"' && c != '\\') {
                perr(ps, t, "a string knows only the escapes \\\" and \\\\");
                return false;
            }
        } else if ((unsigned char)c < 0x20) {
            perr(ps, t, "a control character inside a string");
            return false;
        }
        if (n + 1 >= cap) {
            perr(ps, t, "a string longer than %zu bytes", cap - 1);
            return false;
        }
        out[n++] = c;
    }
    out[n] = '\0';
    return true;
}

static const char *keep(struct parser *ps, const char *s)
{
    struct cu_ruleset *rs = ps->rs;
    char *copy;
    if (rs->nstrings == rs->capstrings) {
        size_t cap = rs->capstrings ? rs->capstrings * 2 : 64;
        char **v = cu_reallocarray(rs->strings, cap, sizeof(*v));
        if (!v) {
            perr(ps, &ps->t, "out of memory");
            return NULL;
        }
        rs->strings = v;
        rs->capstrings = cap;
    }
    if ((copy = cu_strdup(s)) == NULL) {
        perr(ps, &ps->t, "out of memory");
        return NULL;
    }
    rs->strings[rs->nstrings++] = copy;
    return copy;
}

/* --- the parser of expressions --------------------------------------------------------- */

/* deeper(ps): enters one more level of nesting; false (and the error) past the limit. */
static bool deeper(struct parser *ps)
{
    if (++ps->depth > RULES_DEPTH_MAX) {
        perr(ps, &ps->t, "the condition nests deeper than %d levels", RULES_DEPTH_MAX);
        return false;
    }
    return true;
}

static int add_node(struct parser *ps, const struct token *at, struct node n)
{
    struct rule *r = ps->rule;
    if (ps->failed)
        return -1;
    if (r->nnodes >= CU_RULES_NODES_MAX) {
        perr(ps, at, "rule '%s' is too large (more than %d terms)", r->name, CU_RULES_NODES_MAX);
        return -1;
    }
    if (r->nnodes == ps->capnodes) {
        size_t cap = ps->capnodes ? ps->capnodes * 2 : 16;
        struct node *v = cu_reallocarray(r->nodes, cap, sizeof(*v));
        if (!v) {
            perr(ps, at, "out of memory");
            return -1;
        }
        r->nodes = v;
        ps->capnodes = cap;
    }
    r->nodes[r->nnodes] = n;
    return (int)r->nnodes++;
}

static struct node *N(struct parser *ps, int i)
{
    return &ps->rule->nodes[i];
}

static int expr(struct parser *ps);

bool cu_feature_same(const struct cu_feature *a, const struct cu_feature *b)
{
    return a->kind == b->kind && a->key == b->key && a->field == b->field &&
           a->window_ms == b->window_ms && a->types == b->types &&
           strcmp(a->field_name, b->field_name) == 0;
}

/* feature_text(ps, at): the text of the feature that began at `at` and ended with the token
 * just read, runs of white space made one space, at most FEATURE_TEXT_MAX bytes (then "..."),
 * for the decisions that record what their rules read. */
#define FEATURE_TEXT_MAX 120
static const char *feature_text(struct parser *ps, const struct token *at)
{
    const struct cu_ruleset *rs = ps->rs;
    char out[FEATURE_TEXT_MAX + 32];
    size_t n = 0;
    bool space = false, in_string = false, escaped = false;
    const char *p;
    for (p = at->p; p < ps->prev_end; p++) {
        char c = *p;
        if (!in_string && c == '#') { /* a comment: to the end of its line, as white space */
            while (p + 1 < ps->prev_end && p[1] != '\n')
                p++;
            space = true;
            continue;
        }
        if (!in_string && (c == ' ' || c == '\t' || c == '\n' || c == '\r')) {
            space = true;
            continue;
        }
        if (n + (space ? 2 : 1) > FEATURE_TEXT_MAX)
            break;
        if (space && n > 0)
            out[n++] = ' ';
        space = false;
        if (in_string) {
            bool was = escaped;
            in_string = was || c != '"';
            escaped = !was && c == '\\';
        } else {
            in_string = c == '"';
        }
        /* printable ASCII alone: a name that a reader's terminal shows as it is */
        if ((unsigned char)c < 0x20 || (unsigned char)c >= 0x7f)
            c = '?';
        out[n++] = c;
    }
    if (p < ps->prev_end) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = '\0';
    /* each feature's text its own, so that a decision's reads name each once */
    for (size_t i = 0; i < rs->nfeatures; i++)
        if (rs->feature_text[i] != NULL && strcmp(rs->feature_text[i], out) == 0) {
            snprintf(out + n, sizeof(out) - n, " #%zu", rs->nfeatures + 1);
            break;
        }
    return keep(ps, out);
}

static int feature(struct parser *ps, const struct token *at, struct cu_feature f)
{
    struct cu_ruleset *rs = ps->rs;
    size_t i;
    for (i = 0; i < rs->nfeatures; i++)
        if (cu_feature_same(&rs->features[i], &f))
            break;
    if (i == rs->nfeatures) {
        if (rs->nfeatures >= CU_RULES_FEATURES_MAX) {
            perr(ps, at, "the rule set reads more than %d different features",
                 CU_RULES_FEATURES_MAX);
            return -1;
        }
        rs->features[rs->nfeatures] = f;
        rs->feature_text[rs->nfeatures++] = feature_text(ps, at);
    }
    enum type t = T_NUM;
    if (f.kind == CU_FEAT_FIRST_SEEN)
        t = T_BOOL;
    else if (f.kind == CU_FEAT_SINCE || f.kind == CU_FEAT_SINCE_FIELD || f.kind == CU_FEAT_AGE ||
             f.kind == CU_FEAT_KNOWN_FOR)
        t = T_DUR;
    return add_node(ps, at, (struct node){.op = OP_FEAT, .type = (uint8_t)t, .i = (int32_t)i});
}

/* key_arg(ps, allow_all): a key name (customer, ip, ip_block, device, payee, country[, all]). */
static int key_arg(struct parser *ps, bool allow_all, const char *what)
{
    char d[48];
    for (int k = 0; k < CU_KEY_COUNT; k++)
        if ((allow_all || k != CU_KEY_ALL) && accept(ps, key_names[k]))
            return k;
    perr(ps, &ps->t, "expected %s (customer, ip, ip_block, device, payee, country%s), found %s",
         what, allow_all ? " or all" : "", describe(&ps->t, d));
    return -1;
}

/* types_arg(ps): a string naming an event type, or a list of them, as a mask. */
static uint64_t types_arg(struct parser *ps)
{
    uint64_t mask = 0;
    bool list = accept(ps, "[");
    char d[48];
    do {
        char name[CU_MON_NAME_MAX + 2];
        int t;
        if (ps->t.kind != TK_STR) {
            perr(ps, &ps->t, "expected an event type in quotes, found %s", describe(&ps->t, d));
            return 0;
        }
        if (!str_value(ps, &ps->t, name, sizeof(name)))
            return 0;
        if ((t = cu_mon_types_find(ps->rs->types, name)) < 0) {
            perr(ps, &ps->t, "unknown event type \"%s\"", printable(name));
            return 0;
        }
        mask |= 1ull << t;
        next(ps);
    } while (list && accept(ps, ","));
    if (list)
        expect(ps, "]", "']'");
    return mask;
}

static int64_t window_arg(struct parser *ps)
{
    char d[48];
    if (ps->t.kind != TK_DUR) {
        perr(ps, &ps->t, "expected a window (a duration from 1m to 30d), found %s",
             describe(&ps->t, d));
        return 0;
    }
    if (ps->t.num < (double)CU_WINDOW_MIN_MS || ps->t.num > (double)CU_WINDOW_MAX_MS) {
        perr(ps, &ps->t, "windows run from 1m to 30d");
        return 0;
    }
    int64_t ms = (int64_t)ps->t.num;
    next(ps);
    return ms;
}

/* call(ps, name): a feature function, its '(' already read. */
// NOLINTNEXTLINE(misc-no-recursion): nesting bounded by RULES_DEPTH_MAX (deeper)
static int call(struct parser *ps, const struct token *at, const char *name)
{
    struct cu_feature f;
    char d[48];
    memset(&f, 0, sizeof(f));
    if (strcmp(name, "count") == 0 || strcmp(name, "sum") == 0 || strcmp(name, "distinct") == 0) {
        f.kind = name[0] == 'c' ? CU_FEAT_COUNT : name[0] == 's' ? CU_FEAT_SUM : CU_FEAT_DISTINCT;
        f.key = (enum cu_key)key_arg(ps, true, "a key");
        expect(ps, ",", "','");
        if (f.kind == CU_FEAT_DISTINCT) {
            f.field = (enum cu_key)key_arg(ps, false, "the field counted");
            if (!ps->failed && f.field == f.key)
                perr(ps, at, "distinct counts a field other than its key");
            expect(ps, ",", "','");
        }
        f.window_ms = window_arg(ps);
        if (accept(ps, ","))
            f.types = types_arg(ps);
    } else if (strcmp(name, "first_seen") == 0 || strcmp(name, "known_for") == 0) {
        f.kind = name[0] == 'f' ? CU_FEAT_FIRST_SEEN : CU_FEAT_KNOWN_FOR;
        f.field = (enum cu_key)key_arg(ps, false, "the field");
        if (!ps->failed && f.field == CU_KEY_CUSTOMER)
            perr(ps, at, "%s looks at a field of the customer's events, not 'customer'", name);
    } else if (strcmp(name, "since") == 0) {
        f.kind = CU_FEAT_SINCE;
        f.types = types_arg(ps);
    } else if (strcmp(name, "since_changed") == 0) {
        char field[CU_MON_NAME_MAX + 2];
        f.kind = CU_FEAT_SINCE_FIELD;
        if (ps->t.kind != TK_STR) {
            perr(ps, &ps->t, "expected a field name in quotes, found %s", describe(&ps->t, d));
            return -1;
        }
        if (!str_value(ps, &ps->t, field, sizeof(field)))
            return -1;
        if (strlen(field) >= sizeof(f.field_name)) {
            perr(ps, &ps->t, "a field name is at most %d bytes", CU_MON_NAME_MAX);
            return -1;
        }
        memcpy(f.field_name, field, strlen(field) + 1);
        next(ps);
    } else if (strcmp(name, "travel_kmh") == 0) {
        f.kind = CU_FEAT_TRAVEL_KMH;
    } else if (strcmp(name, "travel_km") == 0) {
        f.kind = CU_FEAT_TRAVEL_KM;
    } else if (strcmp(name, "anomaly") == 0) {
        f.kind = CU_FEAT_ANOMALY;
    } else if (strcmp(name, "exists") == 0) {
        struct token arg = ps->t;
        int a = expr(ps);
        if (a >= 0 &&
            (N(ps, a)->type == T_TIME || N(ps, a)->type == T_FIELDS || N(ps, a)->type == T_LIST)) {
            perr(ps, &arg, "exists takes a field or a feature, not %s", type_names[N(ps, a)->type]);
            return -1;
        }
        expect(ps, ")", "')'");
        return add_node(ps, at, (struct node){.op = OP_EXISTS, .type = T_BOOL, .a = (int16_t)a});
    } else {
        perr(ps, at,
             "unknown function '%s' (count, sum, distinct, first_seen, known_for, since, "
             "since_changed, travel_km, travel_kmh, anomaly, exists)",
             name);
        return -1;
    }
    expect(ps, ")", "')'");
    return ps->failed ? -1 : feature(ps, at, f);
}

/* member(ps, at, object): event.X, event.attributes.X, customer.X (the object read). */
// NOLINTNEXTLINE(misc-no-recursion): nesting bounded by RULES_DEPTH_MAX (deeper)
static int member(struct parser *ps, const struct token *at, const char *object)
{
    char d[48], name[CU_MON_NAME_MAX + 2];
    struct token t;
    expect(ps, ".", "'.'");
    t = ps->t;
    if (ps->failed)
        return -1;
    if (t.kind != TK_IDENT || t.len > CU_MON_NAME_MAX) {
        perr(ps, &t, "expected a name after '.', found %s", describe(&t, d));
        return -1;
    }
    snprintf(name, sizeof(name), "%.*s", (int)t.len, t.p);
    next(ps);
    if (strcmp(object, "event") == 0) {
        if (strcmp(name, "attributes") == 0) {
            expect(ps, ".", "'.' and an attribute's name");
            t = ps->t;
            if (ps->failed || t.kind != TK_IDENT || t.len > CU_MON_NAME_MAX) {
                perr(ps, &t, "expected an attribute's name, found %s", describe(&t, d));
                return -1;
            }
            snprintf(name, sizeof(name), "%.*s", (int)t.len, t.p);
            next(ps);
            return add_node(ps, at,
                            (struct node){.op = OP_ATTR, .type = T_STR, .s = keep(ps, name)});
        }
        for (int f = 0; f < F_COUNT; f++)
            if (strcmp(name, fields[f].name) == 0)
                return add_node(
                    ps, at, (struct node){.op = OP_FIELD, .type = (uint8_t)fields[f].type, .i = f});
        perr(ps, &t, "an event has no field '%s'", name);
        return -1;
    }
    /* customer.X */
    struct cu_feature f;
    memset(&f, 0, sizeof(f));
    if (strcmp(name, "events") == 0) {
        f.kind = CU_FEAT_EVENTS;
    } else if (strcmp(name, "age") == 0) {
        f.kind = CU_FEAT_AGE;
    } else if (strcmp(name, "hour_share") == 0 || strcmp(name, "amount_z") == 0) {
        bool hour = name[0] == 'h';
        int a;
        expect(ps, "(", "'('");
        t = ps->t;
        a = expr(ps);
        if (a >= 0 && !(N(ps, a)->op == OP_FIELD && N(ps, a)->i == (hour ? F_TIME : F_AMOUNT)))
            perr(ps, &t, "customer.%s takes %s", name, hour ? "event.time" : "event.amount");
        expect(ps, ")", "')'");
        f.kind = hour ? CU_FEAT_HOUR_SHARE : CU_FEAT_AMOUNT_Z;
    } else {
        perr(ps, &t, "a customer has no feature '%s' (events, age, hour_share, amount_z)", name);
        return -1;
    }
    return ps->failed ? -1 : feature(ps, at, f);
}

static int list_items(struct parser *ps, struct list *l);
static bool reserved(const char *name);

// NOLINTNEXTLINE(misc-no-recursion): nesting bounded by RULES_DEPTH_MAX (deeper)
static int primary(struct parser *ps)
{
    struct token t = ps->t;
    char d[48];
    if (ps->failed)
        return -1;
    if (t.kind == TK_NUM || t.kind == TK_DUR) {
        next(ps);
        return add_node(
            ps, &t,
            (struct node){.op = OP_CONST, .type = t.kind == TK_NUM ? T_NUM : T_DUR, .n = t.num});
    }
    if (t.kind == TK_STR) {
        char s[CU_MON_ATTR_VALUE_MAX + 2];
        if (!str_value(ps, &t, s, sizeof(s)))
            return -1;
        next(ps);
        return add_node(ps, &t, (struct node){.op = OP_CONST, .type = T_STR, .s = keep(ps, s)});
    }
    if (accept(ps, "(")) {
        int a = expr(ps);
        expect(ps, ")", "')'");
        return a;
    }
    if (accept(ps, "[")) {
        struct cu_ruleset *rs = ps->rs;
        if (rs->nlists >= CU_RULES_LISTS_MAX) {
            perr(ps, &t, "more than %d lists in the rule set", CU_RULES_LISTS_MAX);
            return -1;
        }
        struct list *l = &rs->lists[rs->nlists++];
        if (list_items(ps, l) < 0)
            return -1;
        return add_node(
            ps, &t, (struct node){.op = OP_CONST, .type = T_LIST, .i = (int32_t)(rs->nlists - 1)});
    }
    if (t.kind == TK_IDENT) {
        char name[CU_MON_NAME_MAX + 2];
        if (t.len > CU_MON_NAME_MAX) {
            perr(ps, &t, "a name longer than %d characters", CU_MON_NAME_MAX);
            return -1;
        }
        snprintf(name, sizeof(name), "%.*s", (int)t.len, t.p);
        next(ps);
        if (strcmp(name, "true") == 0 || strcmp(name, "false") == 0)
            return add_node(ps, &t,
                            (struct node){.op = OP_CONST, .type = T_BOOL, .n = name[0] == 't'});
        if (strcmp(name, "event") == 0 || strcmp(name, "customer") == 0)
            return member(ps, &t, name);
        if (reserved(name)) {
            perr(ps, &t, "expected a value, found %s", describe(&t, d));
            return -1;
        }
        if (accept(ps, "("))
            return call(ps, &t, name);
        for (size_t i = 0; i < ps->rs->nlists; i++)
            if (strcmp(ps->rs->lists[i].name, name) == 0)
                return add_node(ps, &t,
                                (struct node){.op = OP_CONST, .type = T_LIST, .i = (int32_t)i});
        perr(ps, &t,
             "unknown name '%s' (event.…, customer.…, a function or a list declared "
             "above)",
             name);
        return -1;
    }
    perr(ps, &t, "expected a value, found %s", describe(&t, d));
    return -1;
}

// NOLINTNEXTLINE(misc-no-recursion): nesting bounded by RULES_DEPTH_MAX (deeper)
static int unary(struct parser *ps)
{
    struct token t = ps->t;
    if (accept(ps, "-")) {
        int a = deeper(ps) ? unary(ps) : -1;
        ps->depth--;
        if (a < 0)
            return -1;
        if (N(ps, a)->type != T_NUM && N(ps, a)->type != T_DUR) {
            perr(ps, &t, "'-' needs a number or a duration, not %s", type_names[N(ps, a)->type]);
            return -1;
        }
        return add_node(ps, &t,
                        (struct node){.op = OP_NEG, .type = N(ps, a)->type, .a = (int16_t)a});
    }
    return primary(ps);
}

static int binary(struct parser *ps, int a, int b, enum op op, const struct token *at)
{
    enum type ta, tb, tr;
    if (a < 0 || b < 0 || ps->failed)
        return -1;
    ta = N(ps, a)->type;
    tb = N(ps, b)->type;
    if (op == OP_ADD || op == OP_SUB) {
        if (!((ta == T_NUM && tb == T_NUM) || (ta == T_DUR && tb == T_DUR))) {
            perr(ps, at, "'%s' needs two numbers or two durations, not %s and %s",
                 op == OP_ADD ? "+" : "-", type_names[ta], type_names[tb]);
            return -1;
        }
        tr = ta;
    } else {
        /* * / %: numbers; a duration times or divided by a number stays a duration */
        bool ok = ta == T_NUM && tb == T_NUM;
        tr = T_NUM;
        if (!ok && op != OP_MOD && ta == T_DUR && tb == T_NUM) {
            ok = true;
            tr = T_DUR;
        }
        if (!ok && op == OP_DIV && ta == T_DUR && tb == T_DUR)
            ok = true; /* a ratio */
        if (!ok) {
            perr(ps, at, "'%.*s' cannot combine %s and %s", (int)at->len, at->p, type_names[ta],
                 type_names[tb]);
            return -1;
        }
    }
    return add_node(
        ps, at,
        (struct node){.op = (uint8_t)op, .type = (uint8_t)tr, .a = (int16_t)a, .b = (int16_t)b});
}

// NOLINTNEXTLINE(misc-no-recursion): nesting bounded by RULES_DEPTH_MAX (deeper)
static int product(struct parser *ps)
{
    int a = unary(ps);
    for (;;) {
        struct token t = ps->t;
        enum op op;
        if (accept(ps, "*"))
            op = OP_MUL;
        else if (accept(ps, "/"))
            op = OP_DIV;
        else if (accept(ps, "%"))
            op = OP_MOD;
        else
            return a;
        a = binary(ps, a, unary(ps), op, &t);
    }
}

// NOLINTNEXTLINE(misc-no-recursion): nesting bounded by RULES_DEPTH_MAX (deeper)
static int sum(struct parser *ps)
{
    int a = product(ps);
    for (;;) {
        struct token t = ps->t;
        enum op op;
        if (accept(ps, "+"))
            op = OP_ADD;
        else if (accept(ps, "-"))
            op = OP_SUB;
        else
            return a;
        a = binary(ps, a, product(ps), op, &t);
    }
}

/* type_is(ps, a, b, negate, at): event.type == "x" or event.type in [...] as a mask test. */
static int type_test(struct parser *ps, int a, int b, bool in, const struct token *at,
                     const struct token *rhs)
{
    uint64_t mask = 0;
    const struct node *nb = N(ps, b);
    if (!in) {
        int t = cu_mon_types_find(ps->rs->types, nb->s);
        if (t < 0) {
            char shown[CU_MON_ATTR_VALUE_MAX + 2];
            snprintf(shown, sizeof(shown), "%s", nb->s);
            perr(ps, rhs, "unknown event type \"%s\"", printable(shown));
            return -1;
        }
        mask = 1ull << t;
    } else {
        const struct list *l = &ps->rs->lists[nb->i];
        if (l->managed) {
            /* the types are checked and made a mask when compiled: a list filled later is not */
            perr(ps, rhs,
                 "event.type is tested against types written in the rule file, not a "
                 "managed list");
            return -1;
        }
        if (l->numeric) {
            perr(ps, rhs, "event.type is a string; the list holds numbers");
            return -1;
        }
        for (size_t i = 0; i < l->n; i++) {
            int t = cu_mon_types_find(ps->rs->types, l->str[i]);
            if (t < 0) {
                char shown[CU_MON_ATTR_VALUE_MAX + 2];
                snprintf(shown, sizeof(shown), "%s", l->str[i]);
                perr(ps, rhs, "unknown event type \"%s\"", printable(shown));
                return -1;
            }
            mask |= 1ull << t;
        }
    }
    (void)a;
    return add_node(ps, at, (struct node){.op = OP_TYPE_IS, .type = T_BOOL, .mask = mask});
}

// NOLINTNEXTLINE(misc-no-recursion): nesting bounded by RULES_DEPTH_MAX (deeper)
static int comparison(struct parser *ps)
{
    int a = sum(ps), b;
    struct token t = ps->t, rhs;
    enum op op;
    bool negate = false;
    if (a < 0)
        return -1;
    if (accept(ps, "=="))
        op = OP_EQ;
    else if (accept(ps, "!="))
        op = OP_NE;
    else if (accept(ps, "<="))
        op = OP_LE;
    else if (accept(ps, ">="))
        op = OP_GE;
    else if (accept(ps, "<"))
        op = OP_LT;
    else if (accept(ps, ">"))
        op = OP_GT;
    else if (accept(ps, "in"))
        op = OP_IN_LIST;
    else if (is(ps, "not")) {
        /* a not in b */
        next(ps);
        expect(ps, "in", "'in' after 'not'");
        op = OP_IN_LIST;
        negate = true;
    } else
        return a;
    rhs = ps->t;
    b = sum(ps);
    if (b < 0 || ps->failed)
        return -1;
    enum type ta = N(ps, a)->type, tb = N(ps, b)->type;
    int r;
    if (op == OP_IN_LIST) {
        if (tb == T_FIELDS) {
            if (ta != T_STR) {
                perr(ps, &t, "'in event.fields' needs a string on its left");
                return -1;
            }
            r = add_node(ps, &t,
                         (struct node){.op = OP_IN_FIELDS, .type = T_BOOL, .a = (int16_t)a});
        } else if (tb != T_LIST) {
            perr(ps, &rhs, "'in' needs a list on its right, not %s", type_names[tb]);
            return -1;
        } else if (N(ps, a)->op == OP_FIELD && N(ps, a)->i == F_TYPE) {
            r = type_test(ps, a, b, true, &t, &rhs);
        } else {
            const struct list *l = &ps->rs->lists[N(ps, b)->i];
            bool ip = N(ps, a)->op == OP_FIELD && N(ps, a)->i == F_IP;
            if (ip && !l->all_cidr) {
                perr(ps, &rhs,
                     "event.ip is looked up in a list of addresses and blocks; "
                     "this list holds something else");
                return -1;
            }
            if (!ip && (l->numeric ? ta != T_NUM : ta != T_STR)) {
                perr(ps, &t, "the list holds %s, the left of 'in' is %s",
                     l->numeric ? "numbers" : "strings", type_names[ta]);
                return -1;
            }
            r = add_node(ps, &t,
                         (struct node){.op = ip ? OP_IN_CIDRS : OP_IN_LIST,
                                       .type = T_BOOL,
                                       .a = (int16_t)a,
                                       .i = N(ps, b)->i});
        }
        if (negate && r >= 0)
            r = add_node(ps, &t, (struct node){.op = OP_NOT, .type = T_BOOL, .a = (int16_t)r});
        return r;
    }
    if (ta != tb || ta == T_LIST || ta == T_FIELDS || ta == T_TIME ||
        (ta == T_BOOL && op != OP_EQ && op != OP_NE) ||
        (ta == T_STR && op != OP_EQ && op != OP_NE)) {
        perr(ps, &t, "'%.*s' cannot compare %s with %s", (int)t.len, t.p, type_names[ta],
             type_names[tb]);
        return -1;
    }
    if (N(ps, a)->op == OP_FIELD && N(ps, a)->i == F_TYPE && N(ps, b)->op == OP_CONST) {
        r = type_test(ps, a, b, false, &t, &rhs);
        if (op == OP_NE && r >= 0)
            r = add_node(ps, &t, (struct node){.op = OP_NOT, .type = T_BOOL, .a = (int16_t)r});
        return r;
    }
    return add_node(
        ps, &t, (struct node){.op = (uint8_t)op, .type = T_BOOL, .a = (int16_t)a, .b = (int16_t)b});
}

static int boolean(struct parser *ps, int a, const struct token *at, const char *what)
{
    if (a >= 0 && N(ps, a)->type != T_BOOL) {
        perr(ps, at, "%s needs a condition (true or false), not %s", what,
             type_names[N(ps, a)->type]);
        return -1;
    }
    return a;
}

// NOLINTNEXTLINE(misc-no-recursion): nesting bounded by RULES_DEPTH_MAX (deeper)
static int negation(struct parser *ps)
{
    struct token t = ps->t;
    if (accept(ps, "not")) {
        int a = deeper(ps) ? boolean(ps, negation(ps), &t, "'not'") : -1;
        ps->depth--;
        return a < 0
                   ? -1
                   : add_node(ps, &t, (struct node){.op = OP_NOT, .type = T_BOOL, .a = (int16_t)a});
    }
    return comparison(ps);
}

// NOLINTNEXTLINE(misc-no-recursion): nesting bounded by RULES_DEPTH_MAX (deeper)
static int conjunction(struct parser *ps)
{
    struct token t0 = ps->t;
    int a = negation(ps);
    for (;;) {
        struct token t = ps->t;
        if (!accept(ps, "and"))
            return a;
        struct token r = ps->t;
        int b = boolean(ps, negation(ps), &r, "'and'");
        if (boolean(ps, a, &t0, "'and'") < 0 || b < 0)
            return -1;
        a = add_node(ps, &t,
                     (struct node){.op = OP_AND, .type = T_BOOL, .a = (int16_t)a, .b = (int16_t)b});
    }
}

static int disjunction(struct parser *ps);

// NOLINTNEXTLINE(misc-no-recursion): nesting bounded by RULES_DEPTH_MAX (deeper)
static int expr(struct parser *ps)
{
    int a = deeper(ps) ? disjunction(ps) : -1;
    ps->depth--;
    return a;
}

// NOLINTNEXTLINE(misc-no-recursion): nesting bounded by RULES_DEPTH_MAX (deeper)
static int disjunction(struct parser *ps)
{
    struct token t0 = ps->t;
    int a = conjunction(ps);
    for (;;) {
        struct token t = ps->t;
        if (!accept(ps, "or"))
            return a;
        struct token r = ps->t;
        int b = boolean(ps, conjunction(ps), &r, "'or'");
        if (boolean(ps, a, &t0, "'or'") < 0 || b < 0)
            return -1;
        a = add_node(ps, &t,
                     (struct node){.op = OP_OR, .type = T_BOOL, .a = (int16_t)a, .b = (int16_t)b});
    }
}

/* --- lists ----------------------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_num(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* list_items(ps, l): the items after '[' up to and with ']'. */
static int list_items(struct parser *ps, struct list *l)
{
    size_t cap = 0;
    char d[48];
    l->all_cidr = true;
    if (accept(ps, "]")) {
        l->all_cidr = false;
        return 0;
    }
    do {
        struct token t = ps->t;
        bool num = t.kind == TK_NUM;
        if (t.kind != TK_STR && !num) {
            perr(ps, &t, "expected a string or a number in the list, found %s", describe(&t, d));
            return -1;
        }
        if (l->n > 0 && num != l->numeric) {
            perr(ps, &t, "a list holds strings or numbers, not both");
            return -1;
        }
        l->numeric = num;
        if (l->n >= CU_RULES_LIST_ITEMS_MAX) {
            perr(ps, &t, "a list of more than %d items", CU_RULES_LIST_ITEMS_MAX);
            return -1;
        }
        if (l->n == cap) {
            cap = cap ? cap * 2 : 8;
            if (num) {
                double *v = cu_reallocarray(l->num, cap, sizeof(*v));
                if (!v)
                    return perr(ps, &t, "out of memory"), -1;
                l->num = v;
            } else {
                char **v = cu_reallocarray(l->str, cap, sizeof(*v));
                struct cu_cidr *c = cu_reallocarray(l->cidr, cap, sizeof(*c));
                if (v)
                    l->str = v;
                if (c)
                    l->cidr = c;
                if (!v || !c)
                    return perr(ps, &t, "out of memory"), -1;
            }
        }
        if (num) {
            l->num[l->n++] = t.num;
        } else {
            char s[CU_MON_ATTR_VALUE_MAX + 2];
            const char *why = NULL;
            if (!str_value(ps, &t, s, sizeof(s)))
                return -1;
            if (l->all_cidr && cu_cidr_parse(s, strlen(s), &l->cidr[l->n], &why) != CU_OK)
                l->all_cidr = false;
            if ((l->str[l->n] = cu_strdup(s)) == NULL)
                return perr(ps, &t, "out of memory"), -1;
            l->n++;
        }
        next(ps);
    } while (accept(ps, ","));
    expect(ps, "]", "',' or ']'");
    if (ps->failed)
        return -1;
    if (l->numeric)
        qsort(l->num, l->n, sizeof(*l->num), cmp_num);
    else
        qsort(l->str, l->n, sizeof(*l->str), cmp_str);
    if (l->numeric)
        l->all_cidr = false;
    return 0;
}

static void list_free(struct list *l)
{
    for (size_t i = 0; l->str && i < l->n; i++)
        cu_free(l->str[i]);
    cu_free(l->str);
    cu_free(l->num);
    cu_free(l->cidr);
}

size_t cu_rules_lists(const struct cu_ruleset *rs)
{
    return rs->nlists;
}

const char *cu_rules_list_name(const struct cu_ruleset *rs, size_t i, bool *managed,
                               bool *addresses)
{
    if (i >= rs->nlists)
        return NULL;
    if (managed)
        *managed = rs->lists[i].managed;
    if (addresses)
        *addresses = rs->lists[i].all_cidr;
    return rs->lists[i].name;
}

enum cu_err cu_rules_list_set(struct cu_ruleset *rs, const char *name, const char *const *items,
                              size_t n, size_t *skipped)
{
    struct list *l = NULL, nl;
    const char *why = NULL;

    for (size_t i = 0; i < rs->nlists && l == NULL; i++)
        if (rs->lists[i].managed && strcmp(rs->lists[i].name, name) == 0)
            l = &rs->lists[i];
    if (l == NULL)
        return CU_E_NOT_FOUND;
    if (n > CU_RULES_LIST_ITEMS_MAX)
        return CU_E_TOO_LARGE;
    memset(&nl, 0, sizeof(nl));
    memcpy(nl.name, l->name, sizeof(nl.name));
    nl.managed = true;
    nl.all_cidr = l->all_cidr;
    if (n > 0 && ((nl.str = cu_calloc(n, sizeof(*nl.str))) == NULL ||
                  (nl.cidr = cu_calloc(n, sizeof(*nl.cidr))) == NULL)) {
        list_free(&nl);
        return CU_E_NOMEM;
    }
    *skipped = 0;
    for (size_t i = 0; i < n; i++) {
        /* an item this list's kind refuses is left out, the others kept */
        if (strlen(items[i]) > CU_MON_ATTR_VALUE_MAX ||
            (nl.all_cidr &&
             cu_cidr_parse(items[i], strlen(items[i]), &nl.cidr[nl.n], &why) != CU_OK)) {
            ++*skipped;
            continue;
        }
        if ((nl.str[nl.n] = cu_strdup(items[i])) == NULL) {
            list_free(&nl);
            return CU_E_NOMEM;
        }
        nl.n++;
    }
    if (nl.n > 1) /* the blocks keep their own order */
        qsort(nl.str, nl.n, sizeof(*nl.str), cmp_str);
    list_free(l);
    *l = nl;
    return CU_OK;
}

/* --- the file -------------------------------------------------------------------------- */

static bool name_token(struct parser *ps, const char *what, char out[CU_MON_NAME_MAX + 1])
{
    char d[48];
    const struct token *t = &ps->t;
    bool ok = t->kind == TK_IDENT && t->len <= CU_MON_NAME_MAX && t->p[0] >= 'a' && t->p[0] <= 'z';
    for (size_t i = 0; ok && i < t->len; i++)
        ok = (t->p[i] >= 'a' && t->p[i] <= 'z') || (t->p[i] >= '0' && t->p[i] <= '9') ||
             t->p[i] == '_';
    if (!ok) {
        perr(ps, t, "expected %s ([a-z][a-z0-9_]*, up to 32), found %s", what, describe(t, d));
        return false;
    }
    snprintf(out, CU_MON_NAME_MAX + 1, "%.*s", (int)t->len, t->p);
    next(ps);
    return true;
}

static bool reserved(const char *name)
{
    static const char *const words[] = {"rule",  "when",     "then",      "and",   "or",
                                        "not",   "in",       "true",      "false", "list",
                                        "event", "customer", "thresholds"};
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (strcmp(name, words[i]) == 0)
            return true;
    return false;
}

static void parse_list(struct parser *ps)
{
    struct cu_ruleset *rs = ps->rs;
    struct token at = ps->t;
    char name[CU_MON_NAME_MAX + 1];
    if (!name_token(ps, "the list's name", name))
        return;
    if (reserved(name)) {
        perr(ps, &at, "'%s' is a word of the language, not a list's name", name);
        return;
    }
    for (size_t i = 0; i < rs->nlists; i++)
        if (strcmp(rs->lists[i].name, name) == 0) {
            perr(ps, &at, "list '%s' is declared twice", name);
            return;
        }
    if (rs->nlists >= CU_RULES_LISTS_MAX) {
        perr(ps, &at, "more than %d lists in the rule set", CU_RULES_LISTS_MAX);
        return;
    }
    if (accept(ps, "managed")) {
        /* empty until the store fills it; `addresses`: of addresses and blocks only */
        struct list *l = &rs->lists[rs->nlists++];
        snprintf(l->name, sizeof(l->name), "%s", name);
        l->managed = true;
        l->all_cidr = accept(ps, "addresses");
        return;
    }
    expect(ps, "=", "'=' or 'managed'");
    expect(ps, "[", "'['");
    if (ps->failed)
        return;
    struct list *l = &rs->lists[rs->nlists++];
    snprintf(l->name, sizeof(l->name), "%s", name);
    (void)list_items(ps, l);
}

static void parse_thresholds(struct parser *ps)
{
    int seen = 0;
    char d[48];
    do {
        int which = -1;
        struct token t = ps->t;
        for (int i = 1; i < 5; i++)
            if (accept(ps, decision_names[i]))
                which = i;
        if (which < 0) {
            perr(ps, &t, "expected review, step_up, hold or deny, found %s", describe(&t, d));
            return;
        }
        if (seen & (1 << which)) {
            perr(ps, &t, "the threshold of %s is given twice", decision_names[which]);
            return;
        }
        seen |= 1 << which;
        t = ps->t;
        if (t.kind != TK_NUM || t.num != floor(t.num) || t.num < 1 || t.num > 10000) {
            perr(ps, &t, "expected a whole score from 1 to 10000, found %s", describe(&t, d));
            return;
        }
        ps->rs->thresholds[which] = (int)t.num;
        next(ps);
    } while (accept(ps, ","));
    for (int i = 2; i < 5; i++)
        if (ps->rs->thresholds[i] <= ps->rs->thresholds[i - 1]) {
            perr(ps, &ps->t, "the thresholds must rise: review < step_up < hold < deny");
            return;
        }
}

static void parse_actions(struct parser *ps, struct rule *r)
{
    bool has_reason = false, has_score = false;
    char d[48];
    do {
        struct token t = ps->t;
        int dec = -1;
        for (int i = 1; i < 5; i++)
            if (is(ps, decision_names[i]))
                dec = i;
        if (dec > 0) {
            next(ps);
            if ((int)r->decision < dec)
                r->decision = (enum cu_decision)dec;
        } else if (accept(ps, "score")) {
            struct token n = ps->t;
            bool neg = accept(ps, "-");
            n = neg ? ps->t : n;
            if (has_score || n.kind != TK_NUM || n.num != floor(n.num) || n.num > 1000) {
                perr(ps, &n,
                     has_score ? "a rule has one score"
                               : "expected a whole score from -1000 to 1000");
                return;
            }
            r->score = neg ? -(int)n.num : (int)n.num;
            has_score = true;
            next(ps);
        } else if (accept(ps, "freeze_account") || accept(ps, "lock_login")) {
            bool freeze = t.p[0] == 'f';
            struct token n = ps->t;
            if (n.kind != TK_DUR || n.num < 60000.0 || n.num > 365.0 * 86400000.0) {
                perr(ps, &n, "expected how long (a duration from 1m to 365d), found %s",
                     describe(&n, d));
                return;
            }
            r->actions |= freeze ? CU_ACT_FREEZE_ACCOUNT : CU_ACT_LOCK_LOGIN;
            if (freeze)
                r->freeze_ms = (int64_t)n.num;
            else
                r->lock_ms = (int64_t)n.num;
            next(ps);
        } else if (accept(ps, "revoke_sessions")) {
            r->actions |= CU_ACT_REVOKE_SESSIONS;
        } else if (accept(ps, "notify_customer")) {
            /* notify_customer [TEMPLATE]: the notice to queue, security_notice unless named */
            unsigned bit = 0;
            struct token n = ps->t;
            /* on the same line, and not a keyword: a rule ending with notify_customer is
             * followed by the next rule's (or list's) keyword, on its line or the next */
            char word[CU_MON_NAME_MAX + 1];
            snprintf(word, sizeof(word), "%.*s", (int)(n.len < CU_MON_NAME_MAX ? n.len : 0), n.p);
            if (n.kind == TK_IDENT && n.line == t.line && !reserved(word)) {
                bool known = false;
                for (unsigned i = 0; i < CU_RULES_NOTIFY_TEMPLATES && !known; i++)
                    if (strlen(notify_templates[i]) == n.len &&
                        memcmp(notify_templates[i], n.p, n.len) == 0) {
                        known = true;
                        bit = i;
                    }
                if (!known) {
                    perr(ps, &n,
                         "unknown notice %s (security_notice, new_sign_in, password_changed, "
                         "second_factor_changed, new_payee, large_transfer, accounts_frozen)",
                         describe(&n, d));
                    return;
                }
                next(ps);
            }
            r->actions |= CU_ACT_NOTIFY_CUSTOMER;
            r->notify_templates |= 1u << bit;
        } else if (accept(ps, "alert")) {
            int sev = -1;
            struct token n = ps->t;
            for (int i = 0; i < 4; i++)
                if (accept(ps, severity_names[i]))
                    sev = i;
            if (sev < 0) {
                perr(ps, &n, "expected low, medium, high or critical, found %s", describe(&n, d));
                return;
            }
            r->actions |= CU_ACT_ALERT;
            r->severity = (enum cu_severity)sev;
        } else if (accept(ps, "reason")) {
            struct token n = ps->t;
            if (has_reason || n.kind != TK_STR) {
                perr(ps, &n,
                     has_reason ? "a rule has one reason" : "expected the reason in quotes");
                return;
            }
            if (!str_value(ps, &n, r->reason, sizeof(r->reason)))
                return;
            if (r->reason[0] == '\0') {
                perr(ps, &n, "a rule's reason is not empty");
                return;
            }
            has_reason = true;
            next(ps);
        } else {
            perr(ps, &t,
                 "expected an action (score, review, step_up, hold, deny, freeze_account, "
                 "lock_login, revoke_sessions, notify_customer, alert, reason), found %s",
                 describe(&t, d));
            return;
        }
    } while (!ps->failed && accept(ps, ","));
    if (!ps->failed && !has_reason)
        perr(ps, &ps->t, "rule '%s' has no reason: every rule says why it fires", r->name);
}

/* root_types(rs, r, i): the types the rule can fire on, from the `and`s at the top. */
// NOLINTNEXTLINE(misc-no-recursion): at most CU_RULES_NODES_MAX nodes, each visited once
static uint64_t root_types(const struct rule *r, int i)
{
    const struct node *n = &r->nodes[i];
    if (n->op == OP_TYPE_IS)
        return n->mask;
    if (n->op == OP_AND) {
        uint64_t a = root_types(r, n->a), b = root_types(r, n->b);
        return a && b ? a & b : a ? a : b;
    }
    return 0;
}

static void parse_rule(struct parser *ps)
{
    struct cu_ruleset *rs = ps->rs;
    struct token at = ps->t;
    struct rule *r;
    char name[CU_MON_NAME_MAX + 1];
    if (!name_token(ps, "the rule's name", name))
        return;
    for (size_t i = 0; i < rs->nrules; i++)
        if (strcmp(rs->rules[i].name, name) == 0) {
            perr(ps, &at, "rule '%s' is declared twice", name);
            return;
        }
    if (rs->nrules >= CU_RULES_MAX) {
        perr(ps, &at, "more than %d rules in the rule set", CU_RULES_MAX);
        return;
    }
    r = &rs->rules[rs->nrules++];
    memset(r, 0, sizeof(*r));
    snprintf(r->name, sizeof(r->name), "%s", name);
    ps->rule = r;
    ps->capnodes = 0;
    expect(ps, "when", "'when' and the rule's condition");
    struct token c = ps->t;
    int root = boolean(ps, expr(ps), &c, "'when'");
    expect(ps, "then", "'then' and the rule's actions (or an operator)");
    if (ps->failed || root < 0)
        return;
    /* the root is evaluated last: it is the last node added */
    if ((size_t)root != r->nnodes - 1) {
        perr(ps, &c, "internal: the condition's root is not its last term");
        return;
    }
    r->types = root_types(r, root);
    parse_actions(ps, r);
}

struct cu_ruleset_alloc {
    struct cu_ruleset rs;
};

enum cu_err cu_rules_compile(const char *text, size_t len, const char *name,
                             const struct cu_mon_types *types, struct cu_ruleset **out,
                             char err[CU_RULES_ERR_BYTES])
{
    struct cu_ruleset *rs;
    struct parser ps;
    char d[48];

    *out = NULL;
    err[0] = '\0';
    if (len > CU_RULES_FILE_MAX) {
        snprintf(err, CU_RULES_ERR_BYTES, "%s: longer than %d bytes", name, CU_RULES_FILE_MAX);
        return CU_E_TOO_LARGE;
    }
    if ((rs = cu_calloc(1, sizeof(*rs))) == NULL ||
        (rs->rules = cu_calloc(CU_RULES_MAX, sizeof(*rs->rules))) == NULL) {
        cu_free(rs);
        snprintf(err, CU_RULES_ERR_BYTES, "%s: out of memory", name);
        return CU_E_NOMEM;
    }
    rs->types = types;
    rs->thresholds[CU_DEC_REVIEW] = 30;
    rs->thresholds[CU_DEC_STEP_UP] = 50;
    rs->thresholds[CU_DEC_HOLD] = 70;
    rs->thresholds[CU_DEC_DENY] = 90;
    memset(&ps, 0, sizeof(ps));
    ps.src = ps.p = text;
    ps.end = text + len;
    ps.name = name;
    ps.line = ps.col = 1;
    ps.err = err;
    ps.rs = rs;
    next(&ps);
    while (!ps.failed && ps.t.kind != TK_EOF) {
        if (accept(&ps, "rule"))
            parse_rule(&ps);
        else if (accept(&ps, "list"))
            parse_list(&ps);
        else if (accept(&ps, "thresholds"))
            parse_thresholds(&ps);
        else
            perr(&ps, &ps.t, "expected 'rule', 'list' or 'thresholds', found %s",
                 describe(&ps.t, d));
    }
    if (ps.failed) {
        cu_rules_free(rs);
        return CU_E_INVALID;
    }
    *out = rs;
    return CU_OK;
}

enum cu_err cu_rules_read(const char *path, char **text, size_t *len, char err[CU_RULES_ERR_BYTES])
{
    FILE *f;
    size_t n;

    *text = NULL;
    *len = 0;
    if ((f = fopen(path, "rb")) == NULL) {
        snprintf(err, CU_RULES_ERR_BYTES, "%.200s: cannot open: %s", path, strerror(errno));
        return CU_E_IO;
    }
    char *t = cu_malloc((size_t)CU_RULES_FILE_MAX + 2);
    n = t ? fread(t, 1, (size_t)CU_RULES_FILE_MAX + 1, f) : 0;
    if (t == NULL || ferror(f)) {
        snprintf(err, CU_RULES_ERR_BYTES, "%.200s: cannot read", path);
        fclose(f);
        cu_free(t);
        return t == NULL ? CU_E_NOMEM : CU_E_IO;
    }
    fclose(f);
    if (n > (size_t)CU_RULES_FILE_MAX) {
        snprintf(err, CU_RULES_ERR_BYTES, "%.200s: longer than %d bytes", path, CU_RULES_FILE_MAX);
        cu_free(t);
        return CU_E_TOO_LARGE;
    }
    t[n] = '\0';
    *text = t;
    *len = n;
    return CU_OK;
}

enum cu_err cu_rules_load(const char *path, const struct cu_mon_types *types,
                          struct cu_ruleset **out, char err[CU_RULES_ERR_BYTES])
{
    char *text = NULL;
    size_t n = 0;
    enum cu_err rc;

    *out = NULL;
    if (path == NULL)
        return cu_rules_compile(cu_rules_default_pack, cu_rules_default_pack_len, "default.rules",
                                types, out, err);
    if ((rc = cu_rules_read(path, &text, &n, err)) != CU_OK)
        return rc;
    rc = cu_rules_compile(text, n, path, types, out, err);
    cu_free(text);
    return rc;
}

void cu_rules_free(struct cu_ruleset *rs)
{
    if (!rs)
        return;
    for (size_t i = 0; i < rs->nrules; i++)
        cu_free(rs->rules[i].nodes);
    cu_free(rs->rules);
    for (size_t i = 0; i < rs->nlists; i++)
        list_free(&rs->lists[i]);
    for (size_t i = 0; i < rs->nstrings; i++)
        cu_free(rs->strings[i]);
    cu_free(rs->strings);
    cu_free(rs);
}

size_t cu_rules_count(const struct cu_ruleset *rs)
{
    return rs->nrules;
}

const char *cu_rules_name(const struct cu_ruleset *rs, size_t i)
{
    return i < rs->nrules ? rs->rules[i].name : NULL;
}

int cu_rules_alert_of(const struct cu_ruleset *rs, size_t i)
{
    return i < rs->nrules && (rs->rules[i].actions & CU_ACT_ALERT) ? (int)rs->rules[i].severity
                                                                   : -1;
}

int cu_rules_find(const struct cu_ruleset *rs, const char *name)
{
    for (size_t i = 0; i < rs->nrules; i++)
        if (strcmp(rs->rules[i].name, name) == 0)
            return (int)i;
    return -1;
}

const char *cu_rules_reason(const struct cu_ruleset *rs, size_t i)
{
    return i < rs->nrules ? rs->rules[i].reason : NULL;
}

size_t cu_rules_features(const struct cu_ruleset *rs, const struct cu_feature **out)
{
    *out = rs->features;
    return rs->nfeatures;
}

const char *cu_rules_feature_text(const struct cu_ruleset *rs, size_t i)
{
    return i < rs->nfeatures && rs->feature_text[i] ? rs->feature_text[i] : "?";
}

/* --- evaluation ------------------------------------------------------------------------ */

enum { B_FALSE, B_TRUE, B_MISSING };

struct val {
    bool missing;
    double n; /* numbers, durations, times (ms), booleans (0 or 1) */
    const char *s;
};

struct ev_ctx {
    const struct cu_ruleset *rs;
    const struct cu_mon_event *ev;
    const struct cu_feature_source *src;
    double *fv;
    uint8_t *fstate; /* 0 not asked, 1 present, 2 missing */
    uint16_t *asked; /* the rule that last read each feature, plus 1 */
    uint16_t rule;   /* the rule being evaluated, plus 1 */
    unsigned steps, event_steps;
    bool failed;
};

static int64_t floor_div(int64_t a, int64_t b)
{
    return a >= 0 ? a / b : -((-a + b - 1) / b);
}

static int64_t floor_mod(int64_t a, int64_t b)
{
    return ((a % b) + b) % b;
}

static struct val field_value(const struct cu_mon_event *ev, const struct cu_mon_types *types,
                              int f)
{
    struct val v = {false, 0, NULL};
    switch (f) {
    case F_TYPE:
        v.s = types->name[ev->type];
        break;
    case F_TIME:
        v.n = (double)ev->time_ms;
        break;
    case F_HOUR:
        v.n = (double)floor_mod(floor_div(ev->time_ms, 3600000), 24);
        break;
    case F_WEEKDAY: /* 1970-01-01 was a Thursday; Monday is 0 */
        v.n = (double)floor_mod(floor_div(ev->time_ms, 86400000) + 3, 7);
        break;
    case F_CUSTOMER:
        v.s = ev->customer;
        break;
    case F_IP:
        v.s = ev->ip;
        v.missing = !(ev->has & CU_EVF_IP);
        break;
    case F_DEVICE:
        v.s = ev->device;
        v.missing = !(ev->has & CU_EVF_DEVICE);
        break;
    case F_COUNTRY:
        v.s = ev->country;
        v.missing = !(ev->has & CU_EVF_COUNTRY);
        break;
    case F_LAT:
        v.n = ev->lat;
        v.missing = !(ev->has & CU_EVF_LOCATION);
        break;
    case F_LON:
        v.n = ev->lon;
        v.missing = !(ev->has & CU_EVF_LOCATION);
        break;
    case F_AMOUNT:
        v.n = (double)ev->amount;
        v.missing = !(ev->has & CU_EVF_AMOUNT);
        break;
    case F_CURRENCY:
        v.s = ev->currency;
        v.missing = !(ev->has & CU_EVF_AMOUNT);
        break;
    case F_PAYEE:
        v.s = ev->payee;
        v.missing = !(ev->has & CU_EVF_PAYEE);
        break;
    case F_CHANNEL:
        v.s = ev->channel;
        v.missing = !(ev->has & CU_EVF_CHANNEL);
        break;
    default:
        v.missing = true;
        break;
    }
    return v;
}

static bool list_has(const struct list *l, const struct val *v)
{
    if (l->n == 0) /* a managed list emptied: no array to search */
        return false;
    if (l->numeric)
        return bsearch(&v->n, l->num, l->n, sizeof(*l->num), cmp_num) != NULL;
    return bsearch(&v->s, l->str, l->n, sizeof(*l->str), cmp_str) != NULL;
}

// NOLINTNEXTLINE(misc-no-recursion): a tree of at most CU_RULES_NODES_MAX nodes
static struct val eval(struct ev_ctx *c, const struct rule *r, int i)
{
    const struct node *n = &r->nodes[i];
    struct val v = {false, 0, NULL}, a, b;

    if (++c->steps > CU_RULES_STEPS_MAX || ++c->event_steps > CU_RULES_EVENT_STEPS_MAX) {
        c->failed = true;
        v.missing = true;
        return v;
    }
    switch ((enum op)n->op) {
    case OP_CONST:
        v.n = n->n;
        v.s = n->s;
        return v;
    case OP_FIELD:
        return field_value(c->ev, c->rs->types, n->i);
    case OP_ATTR:
        v.s = cu_mon_event_attr(c->ev, n->s);
        v.missing = v.s == NULL;
        return v;
    case OP_FEAT:
        if (c->asked)
            c->asked[n->i] = c->rule;
        if (c->fstate[n->i] == 0) {
            double x = 0;
            bool ok = c->src && c->src->value(c->src->arg, (size_t)n->i, &x);
            c->fv[n->i] = x;
            c->fstate[n->i] = ok ? 1 : 2;
        }
        v.n = c->fv[n->i];
        v.missing = c->fstate[n->i] == 2;
        return v;
    case OP_TYPE_IS:
        v.n = (double)((n->mask >> c->ev->type) & 1u);
        return v;
    case OP_EXISTS:
        a = eval(c, r, n->a);
        v.n = !a.missing;
        return v;
    case OP_NOT:
        a = eval(c, r, n->a);
        v.missing = a.missing;
        v.n = !a.n;
        return v;
    case OP_AND:
        a = eval(c, r, n->a);
        if (!a.missing && a.n == 0)
            return a; /* false, whatever the right side */
        b = eval(c, r, n->b);
        if (!b.missing && b.n == 0)
            return b;
        v.missing = a.missing || b.missing;
        v.n = 1;
        return v;
    case OP_OR:
        a = eval(c, r, n->a);
        if (!a.missing && a.n != 0)
            return a;
        b = eval(c, r, n->b);
        if (!b.missing && b.n != 0)
            return b;
        v.missing = a.missing || b.missing;
        v.n = 0;
        return v;
    case OP_EQ:
    case OP_NE:
    case OP_LT:
    case OP_LE:
    case OP_GT:
    case OP_GE: {
        int cmp;
        a = eval(c, r, n->a);
        b = eval(c, r, n->b);
        if (a.missing || b.missing) {
            v.missing = true; /* a comparison with a missing value is unknown */
            return v;
        }
        if (a.s || b.s)
            cmp = strcmp(a.s ? a.s : "", b.s ? b.s : "");
        else
            cmp = a.n < b.n ? -1 : a.n > b.n;
        v.n = n->op == OP_EQ   ? cmp == 0
              : n->op == OP_NE ? cmp != 0
              : n->op == OP_LT ? cmp < 0
              : n->op == OP_LE ? cmp <= 0
              : n->op == OP_GT ? cmp > 0
                               : cmp >= 0;
        return v;
    }
    case OP_ADD:
    case OP_SUB:
    case OP_MUL:
    case OP_DIV:
    case OP_MOD:
        a = eval(c, r, n->a);
        b = eval(c, r, n->b);
        if (a.missing || b.missing) {
            v.missing = true;
            return v;
        }
        if ((n->op == OP_DIV || n->op == OP_MOD) && b.n == 0) {
            c->failed = true; /* division by zero: the rule fails, the others decide */
            v.missing = true;
            return v;
        }
        v.n = n->op == OP_ADD   ? a.n + b.n
              : n->op == OP_SUB ? a.n - b.n
              : n->op == OP_MUL ? a.n * b.n
              : n->op == OP_DIV ? a.n / b.n
                                : fmod(a.n, b.n);
        if (!isfinite(v.n)) {
            c->failed = true;
            v.missing = true;
        }
        return v;
    case OP_NEG:
        a = eval(c, r, n->a);
        a.n = -a.n;
        return a;
    case OP_IN_LIST:
        a = eval(c, r, n->a);
        if (a.missing)
            return (struct val){true, 0, NULL};
        c->steps += (unsigned)(c->rs->lists[n->i].n / 64); /* a binary search's share */
        c->event_steps += (unsigned)(c->rs->lists[n->i].n / 64);
        v.n = list_has(&c->rs->lists[n->i], &a);
        return v;
    case OP_IN_CIDRS: {
        const struct list *l = &c->rs->lists[n->i];
        struct cu_ip ip;
        if (!(c->ev->has & CU_EVF_IP)) {
            v.missing = true;
            return v;
        }
        memcpy(ip.b, c->ev->ip_bin, sizeof(ip.b));
        /* charged before the scan, a step for every 4 blocks: a rule that would pass its
         * budget fails without the work */
        c->steps += (unsigned)(l->n / 4);
        c->event_steps += (unsigned)(l->n / 4);
        if (c->steps > CU_RULES_STEPS_MAX || c->event_steps > CU_RULES_EVENT_STEPS_MAX) {
            c->failed = true;
            v.missing = true;
            return v;
        }
        for (size_t k = 0; k < l->n && v.n == 0; k++)
            v.n = cu_cidr_has(&l->cidr[k], &ip);
        return v;
    }
    case OP_IN_FIELDS:
        a = eval(c, r, n->a);
        if (a.missing)
            return (struct val){true, 0, NULL};
        for (size_t k = 0; k < c->ev->nfields && v.n == 0; k++)
            v.n = strcmp(c->ev->fields[k], a.s) == 0;
        return v;
    }
    v.missing = true;
    return v;
}

void cu_rules_eval(const struct cu_ruleset *rs, const struct cu_mon_event *ev,
                   const struct cu_feature_source *src, struct cu_verdict *out)
{
    cu_rules_eval_reads(rs, ev, src, out, NULL);
}

/* note_reads(c, reads): adds the features the rule just evaluated read to reads. */
static void note_reads(const struct ev_ctx *c, struct cu_reads *reads)
{
    for (size_t f = 0; f < c->rs->nfeatures; f++) {
        size_t k;
        if (c->asked[f] != c->rule)
            continue;
        for (k = 0; k < reads->n && reads->feature[k] != f; k++)
            ;
        if (k < reads->n)
            continue;
        if (reads->n == CU_READS_MAX) {
            reads->more = true;
            return;
        }
        reads->feature[reads->n] = (uint16_t)f;
        reads->value[reads->n] = c->fv[f];
        reads->missing[reads->n] = c->fstate[f] == 2;
        reads->n++;
    }
}

void cu_rules_eval_reads(const struct cu_ruleset *rs, const struct cu_mon_event *ev,
                         const struct cu_feature_source *src, struct cu_verdict *out,
                         struct cu_reads *reads)
{
    cu_rules_eval_masked(rs, ev, src, out, reads, NULL);
}

void cu_rules_eval_masked(const struct cu_ruleset *rs, const struct cu_mon_event *ev,
                          const struct cu_feature_source *src, struct cu_verdict *out,
                          struct cu_reads *reads, const struct cu_rule_mask *skip)
{
    double fv[CU_RULES_FEATURES_MAX];
    uint8_t fstate[CU_RULES_FEATURES_MAX];
    uint16_t asked[CU_RULES_FEATURES_MAX];
    struct ev_ctx c = {rs, ev, src, fv, fstate, reads ? asked : NULL, 0, 0, 0, false};
    enum cu_decision floor_dec = CU_DEC_ALLOW;

    /* the header only: the arrays behind nfired and nerrors are written as they fill */
    out->decision = CU_DEC_ALLOW;
    out->score = 0;
    out->actions = 0;
    out->notify_templates = 0;
    out->freeze_ms = out->lock_ms = 0;
    out->severity = CU_SEV_LOW;
    out->nfired = out->nerrors = 0;
    memset(fstate, 0, rs->nfeatures);
    if (reads) {
        memset(asked, 0, rs->nfeatures * sizeof(asked[0]));
        reads->n = 0;
        reads->more = false;
    }
    for (size_t i = 0; i < rs->nrules; i++) {
        const struct rule *r = &rs->rules[i];
        struct val v;
        if (r->types && !((r->types >> ev->type) & 1u))
            continue;
        if (skip && ((skip->bits[i / 64] >> (i % 64)) & 1u))
            continue; /* snoozed for this event's customer */
        c.steps = 0;
        c.failed = false;
        c.rule = (uint16_t)(i + 1);
        v = eval(&c, r, (int)r->nnodes - 1);
        if (c.failed) {
            if (out->nerrors < sizeof(out->errors) / sizeof(out->errors[0]))
                out->errors[out->nerrors] = (uint16_t)i;
            out->nerrors++;
            continue;
        }
        if (v.missing || v.n == 0)
            continue;
        if (reads)
            note_reads(&c, reads);
        out->fired[out->nfired].rule = (uint16_t)i;
        out->fired[out->nfired].score = (int16_t)r->score;
        out->nfired++;
        out->score += r->score;
        if (r->decision > floor_dec)
            floor_dec = r->decision;
        if ((r->actions & CU_ACT_FREEZE_ACCOUNT) && r->freeze_ms > out->freeze_ms)
            out->freeze_ms = r->freeze_ms;
        if ((r->actions & CU_ACT_LOCK_LOGIN) && r->lock_ms > out->lock_ms)
            out->lock_ms = r->lock_ms;
        if ((r->actions & CU_ACT_ALERT) &&
            (!(out->actions & CU_ACT_ALERT) || r->severity > out->severity))
            out->severity = r->severity;
        out->actions |= r->actions;
        out->notify_templates |= r->notify_templates;
    }
    out->decision = CU_DEC_ALLOW;
    for (int d = CU_DEC_DENY; d > CU_DEC_ALLOW; d--)
        if (out->score >= rs->thresholds[d]) {
            out->decision = (enum cu_decision)d;
            break;
        }
    if (floor_dec > out->decision)
        out->decision = floor_dec;
}

bool cu_rules_alerting(void *rs, const char *name)
{
    int i = rs ? cu_rules_find(rs, name) : -1;
    return i >= 0 && cu_rules_alert_of(rs, (size_t)i) >= 0;
}
