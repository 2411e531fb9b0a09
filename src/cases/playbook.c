/*
 * playbook.c - playbooks (playbook.h): the file format, and running their steps on cases.
 */
#include "cases/playbook.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "base/mem.h"
#include "base/text.h"

#define RULE_MAX 64
#define ARG_MAX 24

struct step {
    enum cu_pb_action action;
    char arg[ARG_MAX];
    int64_t ms;
    bool confirm;
};

struct playbook {
    char name[CU_PLAYBOOK_NAME_MAX + 1];
    int line;
    size_t nrules;
    char rules[CU_PLAYBOOK_RULES_MAX][RULE_MAX + 1];
    int severity; /* -1: none */
    size_t nsteps;
    struct step steps[CU_PLAYBOOK_STEPS_MAX];
};

struct cu_playbooks {
    size_t n;
    struct playbook v[CU_PLAYBOOKS_MAX];
};

static const char *const action_names[CU_PB__COUNT] = {
    "freeze_accounts",      "hold_transfers",  "revoke_sessions", "lock_sign_in",
    "force_password_reset", "notify_customer", "page_oncall"};

const char *cu_pb_action_name(enum cu_pb_action a)
{
    return (unsigned)a < CU_PB__COUNT ? action_names[a] : "?";
}

bool cu_pb_action_parse(const char *name, enum cu_pb_action *out)
{
    for (int i = 0; i < CU_PB__COUNT; i++)
        if (strcmp(name, action_names[i]) == 0) {
            *out = (enum cu_pb_action)i;
            return true;
        }
    return false;
}

bool cu_playbook_duration(const char *text, int64_t *ms)
{
    char *end = NULL;
    long long v;

    if (text[0] < '0' || text[0] > '9')
        return false;
    errno = 0;
    v = strtoll(text, &end, 10);
    if (errno || end == text || end[0] == '\0' || end[1] != '\0' || v <= 0 || v > 2592000)
        return false;
    switch (end[0]) {
    case 's':
        *ms = v * 1000;
        break;
    case 'm':
        *ms = v * 60000;
        break;
    case 'h':
        *ms = v * 3600000;
        break;
    case 'd':
        *ms = v * 86400000;
        break;
    default:
        return false;
    }
    return *ms >= 1000 && *ms <= 30LL * 86400000;
}

/* ---- the file ---- */

struct tok {
    const char *p;
    size_t n;
    int col;
};

#define TOKS_MAX 8

static bool word_ok(const struct tok *t, size_t max)
{
    if (t->n == 0 || t->n > max)
        return false;
    for (size_t i = 0; i < t->n; i++) {
        char c = t->p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    return true;
}

static bool is(const struct tok *t, const char *w)
{
    return t->n == strlen(w) && memcmp(t->p, w, t->n) == 0;
}

static enum cu_err fail(char err[CU_PLAYBOOK_ERR_BYTES], const char *file, int line, int col,
                        const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static enum cu_err fail(char err[CU_PLAYBOOK_ERR_BYTES], const char *file, int line, int col,
                        const char *fmt, ...)
{
    va_list ap;
    int k = snprintf(err, CU_PLAYBOOK_ERR_BYTES, "%.128s:%d:%d: ", file, line, col);
    va_start(ap, fmt);
    if (k > 0 && k < CU_PLAYBOOK_ERR_BYTES)
        vsnprintf(err + k, CU_PLAYBOOK_ERR_BYTES - (size_t)k, fmt, ap);
    va_end(ap);
    return CU_E_INVALID;
}

/* finished(pb, file, err): the playbook before the next one (or the end) is whole. */
static enum cu_err finished(const struct playbook *p, const char *file,
                            char err[CU_PLAYBOOK_ERR_BYTES])
{
    if (p->nrules == 0 && p->severity < 0)
        return fail(err, file, p->line, 1,
                    "playbook %s has no 'when': it needs a rule or a severity that starts it",
                    p->name);
    if (p->nsteps == 0)
        return fail(err, file, p->line, 1, "playbook %s has no 'step'", p->name);
    return CU_OK;
}

static enum cu_err parse_step(struct playbook *p, const struct tok *t, size_t nt, const char *file,
                              int line, char err[CU_PLAYBOOK_ERR_BYTES])
{
    struct step s;
    char word[ARG_MAX];
    size_t last = nt;

    memset(&s, 0, sizeof(s));
    if (nt < 2)
        return fail(err, file, line, t[0].col + (int)t[0].n + 1,
                    "'step' needs an action: freeze_accounts, hold_transfers, revoke_sessions, "
                    "lock_sign_in, force_password_reset, notify_customer or page_oncall");
    cu_text_copy(word, sizeof(word), t[1].p, t[1].n);
    if (t[1].n >= sizeof(word) || !cu_pb_action_parse(word, &s.action))
        return fail(err, file, line, t[1].col,
                    "unknown action '%.*s' (one of freeze_accounts, hold_transfers, "
                    "revoke_sessions, lock_sign_in, force_password_reset, notify_customer, "
                    "page_oncall)",
                    (int)(t[1].n > 48 ? 48 : t[1].n), t[1].p);
    if (p->nsteps == CU_PLAYBOOK_STEPS_MAX)
        return fail(err, file, line, t[0].col, "a playbook has at most %d steps",
                    CU_PLAYBOOK_STEPS_MAX);
    if (nt > 2 && (is(&t[nt - 1], "confirm") || is(&t[nt - 1], "auto"))) {
        s.confirm = is(&t[nt - 1], "confirm");
        last = nt - 1;
    }
    /* the defaults */
    if (s.action == CU_PB_FREEZE_ACCOUNTS) {
        snprintf(s.arg, sizeof(s.arg), "24h");
        s.ms = 86400000;
    } else if (s.action == CU_PB_LOCK_SIGN_IN) {
        snprintf(s.arg, sizeof(s.arg), "1h");
        s.ms = 3600000;
    } else if (s.action == CU_PB_NOTIFY_CUSTOMER)
        snprintf(s.arg, sizeof(s.arg), "security_notice");
    if (last > 3)
        return fail(err, file, line, t[3].col,
                    "unexpected '%.*s' (a step is: step ACTION "
                    "[ARGUMENT] [confirm|auto])",
                    (int)(t[3].n > 48 ? 48 : t[3].n), t[3].p);
    if (last == 3) {
        const struct tok *a = &t[2];
        cu_text_copy(word, sizeof(word), a->p, a->n);
        if (a->n >= sizeof(word))
            return fail(err, file, line, a->col, "the argument is too long");
        if (s.action == CU_PB_FREEZE_ACCOUNTS || s.action == CU_PB_LOCK_SIGN_IN) {
            if (!cu_playbook_duration(word, &s.ms))
                return fail(err, file, line, a->col,
                            "'%s' is not a duration (a number and s, m, h or d; 1s to 30d)", word);
        } else if (s.action == CU_PB_NOTIFY_CUSTOMER) {
            if (strcmp(word, "security_notice") != 0 && strcmp(word, "accounts_frozen") != 0)
                return fail(err, file, line, a->col,
                            "notify_customer sends security_notice or accounts_frozen, not '%s'",
                            word);
        } else
            return fail(err, file, line, a->col, "%s takes no argument",
                        cu_pb_action_name(s.action));
        snprintf(s.arg, sizeof(s.arg), "%s", word);
    }
    p->steps[p->nsteps++] = s;
    return CU_OK;
}

static enum cu_err parse_when(struct playbook *p, const struct tok *t, size_t nt, const char *file,
                              int line, bool (*rule_known)(void *, const char *), void *arg,
                              char err[CU_PLAYBOOK_ERR_BYTES])
{
    char word[RULE_MAX + 1];

    if (nt < 3 || !(is(&t[1], "rule") || is(&t[1], "severity")))
        return fail(err, file, line, nt > 1 ? t[1].col : t[0].col + (int)t[0].n + 1,
                    "'when' is 'when rule NAME' or 'when severity low|medium|high|critical'");
    if (nt > 3)
        return fail(err, file, line, t[3].col, "unexpected '%.*s' after the %s",
                    (int)(t[3].n > 48 ? 48 : t[3].n), t[3].p,
                    is(&t[1], "rule") ? "rule" : "severity");
    if (is(&t[1], "severity")) {
        cu_text_copy(word, sizeof(word), t[2].p, t[2].n);
        int s = t[2].n < sizeof(word) ? cu_case_severity_parse(word) : -1;
        if (s < 0)
            return fail(err, file, line, t[2].col,
                        "unknown severity '%.*s' (low, medium, high or critical)",
                        (int)(t[2].n > 48 ? 48 : t[2].n), t[2].p);
        if (p->severity >= 0)
            return fail(err, file, line, t[0].col, "playbook %s has a severity already", p->name);
        p->severity = s;
        return CU_OK;
    }
    if (!word_ok(&t[2], RULE_MAX))
        return fail(err, file, line, t[2].col, "a rule's name is 1 to %d of a-z, 0-9 and _",
                    RULE_MAX);
    cu_text_copy(word, sizeof(word), t[2].p, t[2].n);
    if (rule_known && !rule_known(arg, word))
        return fail(err, file, line, t[2].col,
                    "unknown rule '%s' (no rule of that name in the rules in force raises an "
                    "alert)",
                    word);
    if (p->nrules == CU_PLAYBOOK_RULES_MAX)
        return fail(err, file, line, t[0].col, "a playbook names at most %d rules",
                    CU_PLAYBOOK_RULES_MAX);
    snprintf(p->rules[p->nrules++], RULE_MAX + 1, "%s", word);
    return CU_OK;
}

enum cu_err cu_playbooks_parse(const char *text, size_t len, const char *name,
                               bool (*rule_known)(void *arg, const char *rule), void *arg,
                               struct cu_playbooks **out, char err[CU_PLAYBOOK_ERR_BYTES])
{
    struct cu_playbooks *pb;
    struct playbook *cur = NULL;
    enum cu_err rc = CU_OK;
    int line = 0;

    *out = NULL;
    err[0] = '\0';
    if (len > CU_PLAYBOOK_FILE_MAX) {
        snprintf(err, CU_PLAYBOOK_ERR_BYTES, "%.128s: longer than %d bytes", name,
                 CU_PLAYBOOK_FILE_MAX);
        return CU_E_TOO_LARGE;
    }
    if (!cu_utf8_valid(text, len) || memchr(text, '\0', len) != NULL)
        return fail(err, name, 1, 1, "the file is not UTF-8 text");
    if ((pb = cu_calloc(1, sizeof(*pb))) == NULL)
        return CU_E_NOMEM;
    for (size_t at = 0; rc == CU_OK && at < len;) {
        const char *ls = text + at, *nl = memchr(ls, '\n', len - at);
        size_t ll = nl ? (size_t)(nl - ls) : len - at;
        struct tok t[TOKS_MAX];
        size_t nt = 0;

        at += ll + (nl != NULL);
        line++;
        for (size_t i = 0; i < ll;) {
            if (ls[i] == ' ' || ls[i] == '\t' || ls[i] == '\r') {
                i++;
                continue;
            }
            if (ls[i] == '#')
                break;
            if (nt == TOKS_MAX) {
                rc = fail(err, name, line, (int)i + 1, "too many words on one line");
                break;
            }
            t[nt].p = ls + i;
            t[nt].col = (int)i + 1;
            while (i < ll && ls[i] != ' ' && ls[i] != '\t' && ls[i] != '\r' && ls[i] != '#')
                i++;
            t[nt].n = (size_t)(ls + i - t[nt].p);
            nt++;
        }
        if (rc != CU_OK || nt == 0)
            continue;
        if (is(&t[0], "playbook")) {
            if (nt != 2 || !word_ok(&t[1], CU_PLAYBOOK_NAME_MAX)) {
                rc = fail(err, name, line,
                          nt > 2   ? t[2].col
                          : nt > 1 ? t[1].col
                                   : t[0].col + 9,
                          "'playbook' needs one name of 1 to %d of a-z, 0-9 and _",
                          CU_PLAYBOOK_NAME_MAX);
                break;
            }
            if (cur && (rc = finished(cur, name, err)) != CU_OK)
                break;
            if (pb->n == CU_PLAYBOOKS_MAX) {
                rc = fail(err, name, line, 1, "at most %d playbooks", CU_PLAYBOOKS_MAX);
                break;
            }
            char nm[CU_PLAYBOOK_NAME_MAX + 1];
            cu_text_copy(nm, sizeof(nm), t[1].p, t[1].n);
            if (cu_playbooks_find(pb, nm) >= 0) {
                rc = fail(err, name, line, t[1].col, "a second playbook named %s", nm);
                break;
            }
            cur = &pb->v[pb->n++];
            snprintf(cur->name, sizeof(cur->name), "%s", nm);
            cur->line = line;
            cur->severity = -1;
        } else if (is(&t[0], "when") || is(&t[0], "step")) {
            if (cur == NULL)
                rc = fail(err, name, line, t[0].col, "'%.4s' before any 'playbook NAME'", t[0].p);
            else if (is(&t[0], "when"))
                rc = parse_when(cur, t, nt, name, line, rule_known, arg, err);
            else
                rc = parse_step(cur, t, nt, name, line, err);
        } else
            rc = fail(err, name, line, t[0].col,
                      "unknown word '%.*s' (a line is 'playbook NAME', 'when …' or 'step …')",
                      (int)(t[0].n > 48 ? 48 : t[0].n), t[0].p);
    }
    if (rc == CU_OK && cur)
        rc = finished(cur, name, err);
    if (rc != CU_OK) {
        cu_free(pb);
        return rc;
    }
    *out = pb;
    return CU_OK;
}

enum cu_err cu_playbooks_load(const char *path, bool (*rule_known)(void *arg, const char *rule),
                              void *arg, struct cu_playbooks **out, char err[CU_PLAYBOOK_ERR_BYTES])
{
    FILE *f = fopen(path, "rb");
    char *buf;
    size_t n;
    enum cu_err rc;

    *out = NULL;
    if (f == NULL) {
        snprintf(err, CU_PLAYBOOK_ERR_BYTES, "%.300s: %s", path, strerror(errno));
        return CU_E_IO;
    }
    if ((buf = cu_malloc(CU_PLAYBOOK_FILE_MAX + 1)) == NULL) {
        fclose(f);
        return CU_E_NOMEM;
    }
    n = fread(buf, 1, CU_PLAYBOOK_FILE_MAX + 1, f);
    rc = ferror(f) ? CU_E_IO : CU_OK;
    fclose(f);
    if (rc != CU_OK)
        snprintf(err, CU_PLAYBOOK_ERR_BYTES, "%.300s: cannot be read", path);
    else
        rc = cu_playbooks_parse(buf, n, path, rule_known, arg, out, err);
    cu_free(buf);
    return rc;
}

void cu_playbooks_free(struct cu_playbooks *pb)
{
    cu_free(pb);
}

size_t cu_playbooks_count(const struct cu_playbooks *pb)
{
    return pb ? pb->n : 0;
}

const char *cu_playbooks_name(const struct cu_playbooks *pb, size_t i)
{
    return pb && i < pb->n ? pb->v[i].name : NULL;
}

int cu_playbooks_find(const struct cu_playbooks *pb, const char *name)
{
    for (size_t i = 0; pb && i < pb->n; i++)
        if (strcmp(pb->v[i].name, name) == 0)
            return (int)i;
    return -1;
}

const char *cu_playbooks_rule(const struct cu_playbooks *pb, size_t i)
{
    return pb && i < pb->n && pb->v[i].nrules ? pb->v[i].rules[0] : "";
}

/* ---- running ---- */

/* fatal(rc): an error of the unit itself (it fails, or runs again), not of the step. */
static bool fatal(enum cu_err rc)
{
    return rc == CU_E_BUSY || rc == CU_E_NOMEM || rc == CU_E_STORE || rc == CU_E_AUDIT ||
           rc == CU_E_STORE_FULL || rc == CU_E_INTERNAL;
}

static bool has_rule(const char *rules, const char *rule)
{
    size_t n = strlen(rule);
    for (const char *p = rules; p && *p;) {
        const char *e = strchr(p, ' ');
        size_t k = e ? (size_t)(e - p) : strlen(p);
        if (k == n && memcmp(p, rule, n) == 0)
            return true;
        p = e ? e + 1 : p + k;
    }
    return false;
}

static enum cu_err ran_already(struct cu_db *db, const char *case_id, const char *playbook,
                               const char *customer, bool *ran)
{
    static const char sql[] =
        "SELECT 1 FROM case_steps WHERE case_id = $1 AND playbook = $2 AND customer = $3";
    const struct cu_val p[] = {CU_VT(case_id), CU_VT(playbook), CU_VT(customer)};
    struct cu_stmt *st = NULL;
    enum cu_err rc = cu_db_query(db, sql, p, CU_NVALS(p), &st);
    *ran = false;
    if (rc == CU_OK)
        rc = cu_stmt_next(st, ran);
    cu_stmt_done(st);
    return rc;
}

static enum cu_err next_step(struct cu_db *db, const char *case_id, int64_t *n)
{
    enum cu_err rc =
        cu_case_count(db, "SELECT COUNT(*) FROM case_steps WHERE case_id = $1", case_id, n);
    ++*n;
    return rc;
}

/* perform(w, db, c, action, arg, ms, fx, status, result): runs one step: *status "done",
 * "failed" or "waiting" (the unit cannot take it now), *result an object (owned). */
static enum cu_err perform(struct cu_work *w, struct cu_db *db, const struct cu_case *c,
                           const char *customer, enum cu_pb_action action, const char *arg,
                           int64_t ms, const struct cu_playbook_effects *fx, const char **status,
                           json_t **result)
{
    json_t *r = NULL;
    enum cu_err rc;

    if (customer[0] == '\0' && action != CU_PB_PAGE_ONCALL) {
        *status = "failed";
        *result = json_pack("{s:s}", "error", "the case names no customer to act on");
        return *result ? CU_OK : CU_E_NOMEM;
    }
    rc = fx && fx->run ? fx->run(fx->arg, w, db, c, customer, action, arg, ms, &r)
                       : CU_E_UNAVAILABLE;
    if (fatal(rc)) {
        json_decref(r);
        return rc;
    }
    if (rc == CU_E_UNAVAILABLE) {
        *status = "waiting";
        json_decref(r);
        r = json_pack("{s:s}", "deferred", "it could not run in this unit of work: confirm it");
    } else if (rc != CU_OK) {
        *status = "failed";
        if (r == NULL || !json_is_string(json_object_get(r, "error"))) {
            json_decref(r);
            r = json_pack("{s:s}", "error", cu_err_str(rc));
        }
    } else {
        *status = "done";
        if (r == NULL)
            r = json_object();
    }
    *result = r;
    return r ? CU_OK : CU_E_NOMEM;
}

static enum cu_err run_playbook(const struct playbook *p, struct cu_work *w, struct cu_db *db,
                                const struct cu_case *c, const char *customer, bool staff,
                                const struct cu_playbook_effects *fx)
{
    static const char ins[] =
        "INSERT INTO case_steps (case_id, n, playbook, customer, action, arg, mode, status, "
        "result, created_at, done_at, done_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, "
        "$11, $12)";
    int64_t n = 0, now = cu_work_context_of(w)->now_ms;
    int64_t counts[3] = {0, 0, 0}; /* done, failed, waiting */
    char actor[CU_CASE_ACTOR_BYTES];
    enum cu_err rc = next_step(db, c->id, &n);

    cu_case_actor(w, actor);
    if (rc == CU_OK)
        rc = cu_case_timeline_add(w, db, c->id, "playbook",
                                  json_pack("{s:s, s:s, s:I, s:b}", "playbook", p->name, "customer",
                                            customer, "steps", (json_int_t)p->nsteps,
                                            "started_by_staff", staff));
    for (size_t i = 0; rc == CU_OK && i < p->nsteps; i++, n++) {
        const struct step *s = &p->steps[i];
        const char *status = "waiting";
        json_t *result = NULL;
        char *rtext = NULL;

        /* what staff start waits for a confirmation, so cases.contain decides it */
        bool confirm = s->confirm || staff;
        if (!confirm)
            rc = perform(w, db, c, customer, s->action, s->arg, s->ms, fx, &status, &result);
        else
            result = json_object();
        if (rc == CU_OK &&
            (result == NULL || (rtext = json_dumps(result, JSON_COMPACT | JSON_SORT_KEYS)) == NULL))
            rc = CU_E_NOMEM;
        bool ran = strcmp(status, "waiting") != 0;
        if (rc == CU_OK) {
            const struct cu_val v[] = {CU_VT(c->id),
                                       CU_VI(n),
                                       CU_VT(p->name),
                                       CU_VT(customer),
                                       CU_VT(cu_pb_action_name(s->action)),
                                       CU_VT(s->arg),
                                       CU_VT(confirm ? "confirm" : "auto"),
                                       CU_VT(status),
                                       CU_VT(rtext),
                                       CU_VI(now),
                                       ran ? CU_VI(now) : CU_VNULL,
                                       ran ? CU_VT(actor) : CU_VNULL};
            rc = cu_db_exec(db, ins, v, CU_NVALS(v));
        }
        free(rtext);
        if (rc == CU_OK)
            rc = cu_case_timeline_add(w, db, c->id, "step",
                                      json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:O}", "step",
                                                (json_int_t)n, "playbook", p->name, "action",
                                                cu_pb_action_name(s->action), "argument", s->arg,
                                                "mode", confirm ? "confirm" : "auto", "status",
                                                status, "result", result));
        json_decref(result);
        counts[strcmp(status, "done") == 0 ? 0 : strcmp(status, "failed") == 0 ? 1 : 2]++;
    }
    /* its record, while the unit keeps one for its own */
    if (rc == CU_OK && cu_work_audit_room(w) >= 2) {
        char target[CU_CASE_ID_BYTES + 8];
        snprintf(target, sizeof(target), "case:%s", c->id);
        rc = cu_work_audit(w, "case.playbook", target, counts[1] ? "failure" : "success",
                           json_pack("{s:s, s:I, s:I, s:I}", "playbook", p->name, "done",
                                     (json_int_t)counts[0], "failed", (json_int_t)counts[1],
                                     "waiting", (json_int_t)counts[2]));
    }
    return rc;
}

enum cu_err cu_playbooks_run(const struct cu_playbooks *pb, struct cu_work *w, struct cu_db *db,
                             const char *case_id, const char *customer, const char *rules,
                             bool staff, const struct cu_playbook_effects *fx, size_t *ran)
{
    struct cu_case c;
    enum cu_err rc;

    *ran = 0;
    if (pb == NULL || pb->n == 0)
        return CU_OK;
    if ((rc = cu_case_get(db, case_id, true, &c)) != CU_OK)
        return rc;
    enum cu_case_stage stage;
    if (cu_case_stage_parse(c.stage, &stage) && !cu_case_stage_open(stage))
        return CU_OK; /* a final case is contained already */
    if (customer == NULL || customer[0] == '\0')
        customer = c.customer;
    int sev = cu_case_severity_parse(c.severity);
    for (size_t i = 0; rc == CU_OK && i < pb->n; i++) {
        const struct playbook *p = &pb->v[i];
        bool hit = p->severity >= 0 && sev >= p->severity, done = false;
        for (size_t r = 0; !hit && r < p->nrules; r++)
            hit = has_rule(rules, p->rules[r]);
        if (!hit)
            continue;
        if ((rc = ran_already(db, case_id, p->name, customer, &done)) != CU_OK || done)
            continue;
        rc = run_playbook(p, w, db, &c, customer, staff, fx);
        if (rc == CU_OK)
            (*ran)++;
    }
    return rc;
}

enum cu_err cu_playbooks_run_one(const struct cu_playbooks *pb, struct cu_work *w, struct cu_db *db,
                                 const char *case_id, size_t index,
                                 const struct cu_playbook_effects *fx)
{
    struct cu_case c;
    bool done = false;
    enum cu_err rc;

    if (pb == NULL || index >= pb->n)
        return CU_E_NOT_FOUND;
    if ((rc = cu_case_get(db, case_id, true, &c)) != CU_OK)
        return rc;
    if ((rc = ran_already(db, case_id, pb->v[index].name, c.customer, &done)) != CU_OK)
        return rc;
    if (done)
        return CU_E_EXISTS;
    return run_playbook(&pb->v[index], w, db, &c, c.customer, false, fx);
}

enum cu_err cu_playbook_step_decide(struct cu_work *w, struct cu_db *db, const char *case_id,
                                    int64_t n, bool confirm, const struct cu_playbook_effects *fx,
                                    char why[CU_CASE_WHY_BYTES])
{
    static const char get[] = "SELECT playbook, action, arg, status, customer FROM case_steps "
                              "WHERE case_id = $1 AND n = $2";
    static const char set[] = "UPDATE case_steps SET status = $3, result = $4, done_at = $5, "
                              "done_by = $6 WHERE case_id = $1 AND n = $2 AND status = 'waiting'";
    char playbook[CU_PLAYBOOK_NAME_MAX + 1], action[32], arg[ARG_MAX], status[16];
    char customer[CU_CASE_VALUE_MAX + 1];
    char actor[CU_CASE_ACTOR_BYTES];
    struct cu_stmt *st = NULL;
    struct cu_case c;
    enum cu_pb_action a;
    json_t *result = NULL;
    const char *to = "skipped";
    bool row = false;
    int64_t ms = 0;
    enum cu_err rc = cu_case_get(db, case_id, true, &c);

    if (rc != CU_OK)
        return rc;
    const struct cu_val p[] = {CU_VT(case_id), CU_VI(n)};
    rc = cu_db_query(db, get, p, CU_NVALS(p), &st);
    if (rc == CU_OK)
        rc = cu_stmt_next(st, &row);
    if (rc == CU_OK && !row)
        rc = CU_E_NOT_FOUND;
    if (rc == CU_OK) {
        size_t k = 0;
        const char *s = cu_stmt_text(st, 0, &k);
        cu_text_copy(playbook, sizeof(playbook), s, k);
        s = cu_stmt_text(st, 1, &k);
        cu_text_copy(action, sizeof(action), s, k);
        s = cu_stmt_text(st, 2, &k);
        cu_text_copy(arg, sizeof(arg), s, k);
        s = cu_stmt_text(st, 3, &k);
        cu_text_copy(status, sizeof(status), s, k);
        s = cu_stmt_text(st, 4, &k);
        cu_text_copy(customer, sizeof(customer), s, k);
    }
    cu_stmt_done(st);
    if (rc != CU_OK)
        return rc;
    enum cu_case_stage stage;
    if (confirm && cu_case_stage_parse(c.stage, &stage) && !cu_case_stage_open(stage)) {
        snprintf(why, CU_CASE_WHY_BYTES, "the case is %s: its steps run no more", c.stage);
        return CU_E_EXISTS;
    }
    if (strcmp(status, "waiting") != 0) {
        snprintf(why, CU_CASE_WHY_BYTES, "step %lld is %s: it waits for no confirmation",
                 (long long)n, status);
        return CU_E_EXISTS;
    }
    if (!cu_pb_action_parse(action, &a))
        return CU_E_CORRUPT;
    if (a == CU_PB_FREEZE_ACCOUNTS || a == CU_PB_LOCK_SIGN_IN)
        if (!cu_playbook_duration(arg, &ms))
            return CU_E_CORRUPT;
    if (confirm) {
        rc = perform(w, db, &c, customer, a, arg, ms, fx, &to, &result);
        if (rc == CU_OK && strcmp(to, "waiting") == 0) { /* never deferred twice */
            to = "failed";
            json_decref(result);
            result = json_pack("{s:s}", "error", "unavailable");
        }
    } else
        result = json_object();
    char *rtext = rc == CU_OK && result ? json_dumps(result, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    if (rc == CU_OK && rtext == NULL)
        rc = CU_E_NOMEM;
    cu_case_actor(w, actor);
    if (rc == CU_OK) {
        const struct cu_val v[] = {
            CU_VT(case_id), CU_VI(n), CU_VT(to), CU_VT(rtext), CU_VI(cu_work_context_of(w)->now_ms),
            CU_VT(actor)};
        rc = cu_db_exec(db, set, v, CU_NVALS(v));
    }
    free(rtext);
    if (rc == CU_OK)
        rc = cu_case_timeline_add(w, db, case_id, "step",
                                  json_pack("{s:I, s:s, s:s, s:s, s:s, s:O}", "step", (json_int_t)n,
                                            "playbook", playbook, "action", action, "argument", arg,
                                            "status", to, "result", result));
    json_decref(result);
    if (rc == CU_OK) {
        char target[CU_CASE_ID_BYTES + 8];
        snprintf(target, sizeof(target), "case:%s", case_id);
        rc =
            cu_work_audit(w, "case.step", target, strcmp(to, "failed") == 0 ? "failure" : "success",
                          json_pack("{s:I, s:s, s:s, s:s}", "step", (json_int_t)n, "playbook",
                                    playbook, "action", action, "status", to));
    }
    return rc;
}
