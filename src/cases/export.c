/*
 * export.c - a case as one document (cases.h, cu_case_document) and as a self-contained HTML
 * report (cu_case_html).
 */
#include "cases/cases.h"

#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "base/mem.h"
#include "base/text.h"

static json_t *time_or_null(struct cu_stmt *st, int c)
{
    char t[CU_RFC3339_BYTES];
    if (cu_stmt_null(st, c))
        return json_null();
    cu_clock_format(cu_stmt_int(st, c), t);
    return json_string(t);
}

static json_t *text_or_null(struct cu_stmt *st, int c)
{
    size_t n = 0;
    const char *s;
    if (cu_stmt_null(st, c))
        return json_null();
    s = cu_stmt_text(st, c, &n);
    return json_stringn(s, n);
}

/* rows(db, sql, id, cols, names, kinds, out): each row of sql (one parameter, the case's id) as
 * an object of the named columns: kind 't' text, 'i' integer, 'T' time, 'j' JSON text. */
static enum cu_err rows(struct cu_db *db, const char *sql, const char *id, int cols,
                        const char *const *names, const char *kinds, json_t *out)
{
    const struct cu_val p[] = {CU_VT(id)};
    struct cu_stmt *st = NULL;
    bool row = false;
    enum cu_err rc = cu_db_query(db, sql, p, 1, &st);

    while (rc == CU_OK && (rc = cu_stmt_next(st, &row)) == CU_OK && row) {
        json_t *o = json_object();
        for (int c = 0; o != NULL && c < cols; c++) {
            json_t *v;
            size_t n = 0;
            if (kinds[c] == 'i')
                v = json_integer(cu_stmt_int(st, c));
            else if (kinds[c] == 'T')
                v = time_or_null(st, c);
            else if (kinds[c] == 'j') {
                const char *s = cu_stmt_text(st, c, &n);
                v = json_loadb(s, n, 0, NULL);
            } else
                v = text_or_null(st, c);
            if (v == NULL || json_object_set_new(o, names[c], v) != 0) {
                json_decref(o);
                o = NULL;
            }
        }
        if (o == NULL || json_array_append_new(out, o) != 0) {
            rc = CU_E_NOMEM;
            break;
        }
    }
    cu_stmt_done(st);
    return rc;
}

/* linked(db, id, obs): each observable's other cases, as "linked_cases". */
static enum cu_err linked(struct cu_db *db, const char *id, json_t *obs)
{
    static const char sql[] =
        "SELECT o.kind, o.value, x.case_id FROM case_observables o JOIN case_observables x ON "
        "x.kind = o.kind AND x.value = o.value AND x.case_id <> o.case_id WHERE o.case_id = $1 "
        "ORDER BY o.kind, o.value, x.case_id LIMIT 2000";
    const struct cu_val p[] = {CU_VT(id)};
    struct cu_stmt *st = NULL;
    bool row = false;
    enum cu_err rc = cu_db_query(db, sql, p, 1, &st);
    size_t i;
    json_t *o;

    json_array_foreach(obs, i, o)
    {
        json_object_set_new(o, "linked_cases", json_array());
    }
    while (rc == CU_OK && (rc = cu_stmt_next(st, &row)) == CU_OK && row) {
        size_t kn = 0, vn = 0, cn = 0;
        const char *k = cu_stmt_text(st, 0, &kn), *v = cu_stmt_text(st, 1, &vn),
                   *c = cu_stmt_text(st, 2, &cn);
        json_array_foreach(obs, i, o)
        {
            const char *ok = json_string_value(json_object_get(o, "kind"));
            const char *ov = json_string_value(json_object_get(o, "value"));
            if (ok && ov && strlen(ok) == kn && memcmp(ok, k, kn) == 0 && strlen(ov) == vn &&
                memcmp(ov, v, vn) == 0)
                json_array_append_new(json_object_get(o, "linked_cases"), json_stringn(c, cn));
        }
    }
    cu_stmt_done(st);
    return rc;
}

enum cu_err cu_case_document(struct cu_db *db, const char *id, json_t **out)
{
    static const char head[] = "SELECT resolution, review FROM cases WHERE id = $1";
    static const char alerts[] = "SELECT alert_id, decision_id, severity, at FROM case_alerts "
                                 "WHERE case_id = $1 ORDER BY at, alert_id LIMIT 1000";
    static const char *const alert_names[] = {"alert", "decision", "severity", "at"};
    static const char observables[] =
        "SELECT kind, value, added_at FROM case_observables WHERE case_id = $1 ORDER BY "
        "added_at, kind, value";
    static const char *const obs_names[] = {"kind", "value", "added_at"};
    static const char tasks[] =
        "SELECT n, title, status, assignee, created_at, created_by, done_at, done_by FROM "
        "case_tasks WHERE case_id = $1 ORDER BY n";
    static const char *const task_names[] = {"task",       "title",      "status",  "assignee",
                                             "created_at", "created_by", "done_at", "done_by"};
    static const char steps[] =
        "SELECT n, playbook, customer, action, arg, mode, status, result, created_at, done_at, "
        "done_by FROM case_steps WHERE case_id = $1 ORDER BY n";
    static const char *const step_names[] = {"step",       "playbook", "customer", "action",
                                             "argument",   "mode",     "status",   "result",
                                             "created_at", "done_at",  "done_by"};
    static const char reports[] =
        "SELECT id, customer, concerns, created_at, answered_at, answered_by, answer FROM "
        "case_reports WHERE case_id = $1 ORDER BY created_at";
    static const char *const report_names[] = {
        "report", "customer", "concerns", "created_at", "answered_at", "answered_by", "answer"};
    static const char timeline[] =
        "SELECT seq, at, actor, kind, body FROM case_timeline WHERE case_id = $1 ORDER BY seq "
        "DESC LIMIT 2001";
    static const char *const tl_names[] = {"seq", "at", "actor", "kind", "details"};
    struct cu_case c;
    char t[CU_RFC3339_BYTES], u[CU_RFC3339_BYTES], l[CU_RFC3339_BYTES], x[CU_RFC3339_BYTES];
    struct cu_stmt *st = NULL;
    bool row = false;
    json_t *doc, *resolution = NULL, *review = NULL;
    enum cu_err rc = cu_case_get(db, id, false, &c);

    *out = NULL;
    if (rc != CU_OK)
        return rc;
    const struct cu_val p[] = {CU_VT(id)};
    rc = cu_db_query(db, head, p, 1, &st);
    if (rc == CU_OK)
        rc = cu_stmt_next(st, &row);
    if (rc == CU_OK && row) {
        resolution = text_or_null(st, 0);
        size_t n = 0;
        const char *s = cu_stmt_null(st, 1) ? NULL : cu_stmt_text(st, 1, &n);
        review = s ? json_loadb(s, n, 0, NULL) : json_null();
    }
    cu_stmt_done(st);
    if (rc != CU_OK) {
        json_decref(resolution);
        json_decref(review);
        return rc;
    }
    cu_clock_format(c.created_at, t);
    cu_clock_format(c.updated_at, u);
    cu_clock_format(c.last_alert_at, l);
    cu_clock_format(c.closed_at, x);
    json_t *a = json_array(), *o = json_array(), *k = json_array(), *s = json_array(),
           *r = json_array(), *tl = json_array();
    doc = json_pack(
        "{s:s, s:s, s:s, s:s, s:s?, s:s?, s:s, s:b, s:s, s:s, s:s, s:s?, s:s?, s:o?, "
        "s:o?, s:I, s:o?, s:o?, s:o?, s:o?, s:o?, s:o?}",
        "id", c.id, "title", c.title, "severity", c.severity, "stage", c.stage, "assignee",
        c.assignee[0] ? c.assignee : NULL, "customer", c.customer[0] ? c.customer : NULL, "source",
        c.source, "drill", c.drill, "created_at", t, "updated_at", u, "last_alert_at", l,
        "closed_at", c.closed_at ? x : NULL, "closed_by", c.closed_by[0] ? c.closed_by : NULL,
        "resolution", resolution, "review", review, "alerts_count", (json_int_t)c.alerts, "alerts",
        a, "observables", o, "tasks", k, "steps", s, "reports", r, "timeline", tl);
    if (doc == NULL)
        return CU_E_NOMEM;
    rc = rows(db, alerts, id, 4, alert_names, "tttT", a);
    if (rc == CU_OK && json_object_set_new(doc, "alerts_truncated",
                                           json_boolean(c.alerts > (int64_t)json_array_size(a))))
        rc = CU_E_NOMEM;
    if (rc == CU_OK)
        rc = rows(db, observables, id, 3, obs_names, "ttT", o);
    if (rc == CU_OK)
        rc = linked(db, id, o);
    if (rc == CU_OK)
        rc = rows(db, tasks, id, 8, task_names, "itttTtTt", k);
    if (rc == CU_OK)
        rc = rows(db, steps, id, 11, step_names, "ittttttjTTt", s);
    if (rc == CU_OK)
        rc = rows(db, reports, id, 7, report_names, "ttjTTtt", r);
    if (rc == CU_OK)
        rc = rows(db, timeline, id, 5, tl_names, "iTttj", tl);
    if (rc == CU_OK) {
        /* newest first from the query: the oldest kept first in the document */
        size_t n = json_array_size(tl);
        bool cut = n > CU_CASE_TIMELINE_SHOWN;
        if (cut)
            json_array_remove(tl, n - 1);
        json_t *ordered = json_array();
        for (size_t i = json_array_size(tl); ordered && i > 0; i--)
            json_array_append(ordered, json_array_get(tl, i - 1));
        if (ordered == NULL || json_object_set_new(doc, "timeline", ordered) != 0 ||
            json_object_set_new(doc, "timeline_truncated", json_boolean(cut)) != 0)
            rc = CU_E_NOMEM;
    }
    if (rc != CU_OK) {
        json_decref(doc);
        return rc;
    }
    *out = doc;
    return CU_OK;
}

/* ---- HTML ---- */

static enum cu_err esc(struct cu_buf *b, const char *s)
{
    enum cu_err rc = CU_OK;
    for (; rc == CU_OK && s && *s; s++) {
        switch (*s) {
        case '<':
            rc = cu_buf_append_str(b, "&lt;");
            break;
        case '>':
            rc = cu_buf_append_str(b, "&gt;");
            break;
        case '&':
            rc = cu_buf_append_str(b, "&amp;");
            break;
        case '"':
            rc = cu_buf_append_str(b, "&quot;");
            break;
        case '\'':
            rc = cu_buf_append_str(b, "&#39;");
            break;
        default:
            rc = cu_buf_append(b, s, 1);
        }
    }
    return rc;
}

/* value_text(v): a JSON value as text for a cell (a string as it is; else its JSON); owned. */
static char *value_text(const json_t *v)
{
    if (v == NULL || json_is_null(v))
        return strdup("");
    if (json_is_string(v))
        return strdup(json_string_value(v));
    return json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
}

static enum cu_err cell(struct cu_buf *b, const char *tag, const json_t *v)
{
    char *t = value_text(v);
    enum cu_err rc = t ? cu_buf_printf(b, "<%s>", tag) : CU_E_NOMEM;
    if (rc == CU_OK)
        rc = esc(b, t);
    if (rc == CU_OK)
        rc = cu_buf_printf(b, "</%s>", tag);
    free(t);
    return rc;
}

/* table(b, title, items, cols): a section with a table of items' members cols. */
static enum cu_err table(struct cu_buf *b, const char *title, const json_t *items,
                         const char *const *cols, size_t ncols)
{
    enum cu_err rc = cu_buf_append_str(b, "<h2>");
    size_t i;
    const json_t *it;

    if (rc == CU_OK)
        rc = esc(b, title);
    if (rc == CU_OK)
        rc = cu_buf_printf(b, " (%zu)</h2>\n", json_array_size(items));
    if (rc != CU_OK || json_array_size(items) == 0)
        return rc == CU_OK ? cu_buf_append_str(b, "<p class=\"none\">None.</p>\n") : rc;
    rc = cu_buf_append_str(b, "<table><tr>");
    for (size_t c = 0; rc == CU_OK && c < ncols; c++) {
        json_t *h = json_string(cols[c]);
        rc = h ? cell(b, "th", h) : CU_E_NOMEM;
        json_decref(h);
    }
    if (rc == CU_OK)
        rc = cu_buf_append_str(b, "</tr>\n");
    json_array_foreach(items, i, it)
    {
        if (rc == CU_OK)
            rc = cu_buf_append_str(b, "<tr>");
        for (size_t c = 0; rc == CU_OK && c < ncols; c++)
            rc = cell(b, "td", json_object_get(it, cols[c]));
        if (rc == CU_OK)
            rc = cu_buf_append_str(b, "</tr>\n");
    }
    return rc == CU_OK ? cu_buf_append_str(b, "</table>\n") : rc;
}

enum cu_err cu_case_html(const json_t *doc, struct cu_buf *out)
{
    static const char *const fields[] = {
        "id",    "title",      "severity",   "stage",     "assignee",  "customer",  "source",
        "drill", "created_at", "updated_at", "closed_at", "closed_by", "resolution"};
    static const char *const alerts[] = {"alert", "decision", "severity", "at"};
    static const char *const obs[] = {"kind", "value", "added_at", "linked_cases"};
    static const char *const tasks[] = {"task",       "title",   "status", "assignee",
                                        "created_at", "done_at", "done_by"};
    static const char *const steps[] = {"step",   "playbook", "action",  "argument", "mode",
                                        "status", "result",   "done_at", "done_by"};
    static const char *const reports[] = {"report", "concerns", "created_at", "answered_at"};
    static const char *const tl[] = {"seq", "at", "actor", "kind", "details"};
    const json_t *review = json_object_get(doc, "review");
    enum cu_err rc = cu_buf_append_str(
        out, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
             "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
             "style-src 'unsafe-inline'\">\n<title>Case ");

    if (rc == CU_OK)
        rc = esc(out, json_string_value(json_object_get(doc, "id")));
    if (rc == CU_OK)
        rc = cu_buf_append_str(
            out, "</title>\n<style>body{font:14px/1.4 sans-serif;margin:2em;color:#111}"
                 "table{border-collapse:collapse;margin:0 0 1em}td,th{border:1px solid #bbb;"
                 "padding:3px 6px;text-align:left;vertical-align:top}th{background:#eee}"
                 ".none{color:#777}pre{white-space:pre-wrap}</style></head><body>\n<h1>Case ");
    if (rc == CU_OK)
        rc = esc(out, json_string_value(json_object_get(doc, "id")));
    if (rc == CU_OK)
        rc = cu_buf_append_str(out, ": ");
    if (rc == CU_OK)
        rc = esc(out, json_string_value(json_object_get(doc, "title")));
    if (rc == CU_OK)
        rc = cu_buf_append_str(out, "</h1>\n<table>\n");
    for (size_t i = 0; rc == CU_OK && i < sizeof fields / sizeof fields[0]; i++) {
        json_t *h = json_string(fields[i]);
        rc = h ? cu_buf_append_str(out, "<tr>") : CU_E_NOMEM;
        if (rc == CU_OK)
            rc = cell(out, "th", h);
        if (rc == CU_OK)
            rc = cell(out, "td", json_object_get(doc, fields[i]));
        if (rc == CU_OK)
            rc = cu_buf_append_str(out, "</tr>\n");
        json_decref(h);
    }
    if (rc == CU_OK)
        rc = cu_buf_append_str(out, "</table>\n<h2>Review</h2>\n");
    if (rc == CU_OK && json_is_object(review)) {
        static const char *const parts[][2] = {
            {"cause", "What caused it"}, {"actions", "What was done"}, {"changes", "What changes"}};
        for (size_t i = 0; rc == CU_OK && i < 3; i++) {
            rc = cu_buf_printf(out, "<h3>%s</h3><pre>", parts[i][1]);
            if (rc == CU_OK)
                rc = esc(out, json_string_value(json_object_get(review, parts[i][0])));
            if (rc == CU_OK)
                rc = cu_buf_append_str(out, "</pre>\n");
        }
    } else if (rc == CU_OK)
        rc = cu_buf_append_str(out, "<p class=\"none\">None.</p>\n");
    if (rc == CU_OK)
        rc = table(out, "Alerts", json_object_get(doc, "alerts"), alerts, 4);
    if (rc == CU_OK)
        rc = table(out, "Observables", json_object_get(doc, "observables"), obs, 4);
    if (rc == CU_OK)
        rc = table(out, "Tasks", json_object_get(doc, "tasks"), tasks, 7);
    if (rc == CU_OK)
        rc = table(out, "Playbook steps", json_object_get(doc, "steps"), steps, 9);
    if (rc == CU_OK)
        rc = table(out, "Customer reports", json_object_get(doc, "reports"), reports, 4);
    if (rc == CU_OK)
        rc = table(out, "Timeline", json_object_get(doc, "timeline"), tl, 5);
    if (rc == CU_OK)
        rc = cu_buf_append_str(out, "</body></html>\n");
    return rc;
}
