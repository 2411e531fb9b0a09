/*
 * http.c - request and response helpers shared by every handler: route matching, problem
 * documents (RFC 9457), JSON bodies and query arguments.
 */
#include "api/http.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/server.h"
#include "base/clock.h"
#include "base/json.h"
#include "base/mem.h"
#include "base/text.h"

static const struct {
    const char *name;
    enum cu_method m;
} method_names[] = {
    {"GET", CU_GET},       {"POST", CU_POST}, {"PUT", CU_PUT},         {"PATCH", CU_PATCH},
    {"DELETE", CU_DELETE}, {"HEAD", CU_HEAD}, {"OPTIONS", CU_OPTIONS},
};

enum cu_method cu_method_parse(const char *name)
{
    for (size_t i = 0; i < sizeof(method_names) / sizeof(method_names[0]); i++) {
        if (strcmp(method_names[i].name, name) == 0)
            return method_names[i].m;
    }
    return CU_METHOD_OTHER;
}

void cu_methods_format(unsigned mask, char *out, size_t outlen)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < sizeof(method_names) / sizeof(method_names[0]); i++) {
        if (!(mask & method_names[i].m))
            continue;
        int n = snprintf(out + used, outlen - used, "%s%s", used ? ", " : "", method_names[i].name);
        if (n < 0 || (size_t)n >= outlen - used)
            return;
        used += (size_t)n;
    }
}

/* Matches one pattern against path, copying {param} segments into req when it matches. */
static bool pattern_match(const char *pattern, const char *path, struct cu_req *req)
{
    size_t nparams = 0;
    const char *p = pattern, *s = path;

    while (*p && *s) {
        if (*p == '{') {
            const char *pend = strchr(p, '}');
            size_t len = strcspn(s, "/");
            if (pend == NULL || len == 0 || len >= CU_PATH_PARAM_MAX ||
                nparams >= CU_MAX_PATH_PARAMS)
                return false;
            if (req != NULL) {
                memcpy(req->params[nparams], s, len);
                req->params[nparams][len] = '\0';
            }
            nparams++;
            p = pend + 1;
            s += len;
            continue;
        }
        if (*p != *s)
            return false;
        p++;
        s++;
    }
    if (*p || *s)
        return false;
    if (req != NULL)
        req->nparams = nparams;
    return true;
}

const struct cu_route *cu_route_match(const struct cu_route *routes, size_t n,
                                      enum cu_method method, const char *path, struct cu_req *req,
                                      unsigned *allowed)
{
    *allowed = 0;
    for (size_t i = 0; i < n; i++) {
        if (!pattern_match(routes[i].pattern, path, NULL))
            continue;
        if (routes[i].method == method) {
            pattern_match(routes[i].pattern, path, req);
            return &routes[i];
        }
        *allowed |= routes[i].method;
    }
    return NULL;
}

enum cu_err cu_resp_fail(struct cu_resp *resp, enum cu_err err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(resp->detail, sizeof(resp->detail), fmt, ap);
    va_end(ap);
    resp->err = err;
    return err;
}

enum cu_err cu_resp_json(struct cu_resp *resp, int status, json_t *v)
{
    enum cu_err rc = CU_E_NOMEM;
    char *text = v ? cu_json_dump(v) : NULL;
    json_decref(v);
    if (text == NULL)
        return rc;
    cu_buf_reset(&resp->body);
    rc = cu_buf_append_str(&resp->body, text);
    /* The text may hold what is shown once (a new key, a session token, recovery codes). */
    cu_mem_wipe_block(text);
    free(text);
    if (rc != CU_OK)
        return rc;
    rc = cu_buf_append(&resp->body, "\n", 1);
    resp->status = status;
    resp->content_type = "application/json";
    return rc;
}

struct cu_buf *cu_resp_json_begin(struct cu_resp *resp, int status)
{
    cu_buf_reset(&resp->body);
    cu_buf_reserve(&resp->body, 4096); /* a customer's answer, without growing on the way */
    resp->status = status;
    resp->content_type = "application/json";
    return &resp->body;
}

enum cu_err cu_resp_json_end(struct cu_resp *resp, enum cu_err rc)
{
    if (rc == CU_OK)
        rc = cu_buf_append(&resp->body, "\n", 1);
    if (rc != CU_OK)
        cu_buf_reset(&resp->body);
    return rc;
}

void cu_resp_header(struct cu_resp *resp, const char *name, const char *value)
{
    CU_ASSERT(resp->nheaders < CU_MAX_EXTRA_HEADERS);
    resp->headers[resp->nheaders][0] = name;
    resp->headers[resp->nheaders][1] = value;
    resp->nheaders++;
}

void cu_resp_retry_after(struct cu_resp *resp, int64_t seconds)
{
    _Static_assert(sizeof(((struct cu_resp *)0)->retry_after) > CU_I64_TEXT_BYTES,
                   "any int64 fits");
    resp->retry_after[cu_text_i64(resp->retry_after, seconds)] = '\0';
    cu_resp_header(resp, "Retry-After", resp->retry_after);
}

enum cu_err cu_req_audit(struct cu_req *req, const char *action, const char *target,
                         const char *outcome, json_t *details)
{
    return cu_work_audit(req->work, action, target, outcome, details);
}

enum cu_err cu_req_audit_refusal(struct cu_req *req, const char *action, const char *target,
                                 json_t *details)
{
    enum cu_err rc = cu_work_audit(req->work, action, target, "denied", details);
    if (rc == CU_OK)
        req->refusal = true;
    return rc;
}

enum cu_err cu_req_roles(struct cu_req *req, struct cu_resp *resp, json_t *body, char *out,
                         size_t cap, bool *given)
{
    char why[CU_IDENTITY_WHY_BYTES];
    json_t *v = json_object_get(body, "roles"), *r;
    size_t i, used = 0;

    *given = v != NULL;
    if (v == NULL)
        return CU_OK;
    if (req->policy == NULL)
        return cu_resp_fail(resp, CU_E_UNAVAILABLE, "no access policy is in force");
    if (!json_is_array(v) || json_array_size(v) > CU_ROLES_MAX)
        return cu_resp_fail(resp, CU_E_INVALID,
                            "field 'roles' must be an array of at most %d role names",
                            CU_ROLES_MAX);
    out[0] = '\0';
    json_array_foreach(v, i, r)
    {
        const char *name = json_string_value(r);
        size_t n = name ? strlen(name) : 0;
        if (name == NULL || n == 0 || n > 64 || used + n + 2 > cap)
            return cu_resp_fail(resp, CU_E_INVALID,
                                "field 'roles' holds a value that is not a role name");
        if (!cu_policy_has_role(req->policy, name))
            return cu_resp_fail(resp, CU_E_INVALID,
                                "field 'roles': the access policy has no role '%.64s'", name);
        used += (size_t)snprintf(out + used, cap - used, "%s%s", used ? " " : "", name);
    }
    if (cu_identity_roles_check(out, why) != CU_OK)
        return cu_resp_fail(resp, CU_E_INVALID, "%s", why);
    return CU_OK;
}

void cu_req_access_ctx(struct cu_req *req, struct cu_access_ctx *ctx)
{
    memset(ctx, 0, sizeof(*ctx));
    if (req->policy == NULL && req->app != NULL && req->app->policies != NULL)
        req->policy = cu_access_policy_get(req->app->policies);
    ctx->policy = req->policy;
    ctx->now_ms = cu_clock_now_ms();
    ctx->has_ip = cu_ip_parse(req->remote_ip, &ctx->ip) == CU_OK;
}

json_t *cu_resp_roles(const char *roles)
{
    json_t *a = json_array();
    while (a != NULL && *roles) {
        size_t n = strcspn(roles, " ");
        json_array_append_new(a, json_stringn(roles, n));
        roles += n;
        roles += *roles == ' ';
    }
    return a;
}

enum cu_access_effect cu_req_may(struct cu_req *req, uint64_t permission)
{
    struct cu_access_subject s;
    struct cu_access_ctx ctx;

    cu_req_access_ctx(req, &ctx);
    if (ctx.policy == NULL || !cu_access_subject_of(&req->principal, &s))
        return CU_ACCESS_DENY;
    struct cu_access_env e = {.now_ms = ctx.now_ms, .has_ip = ctx.has_ip, .ip = ctx.ip};
    return cu_policy_decide(ctx.policy, &s, permission, NULL, &e, NULL);
}

enum cu_err cu_req_may_grant(struct cu_req *req, struct cu_resp *resp, const char *action,
                             const char *target, uint64_t scopes)
{
    char names[512];
    struct cu_access_ctx ctx;

    cu_req_access_ctx(req, &ctx);
    if (cu_access_may_grant_by(&req->principal, &ctx, scopes, names, sizeof(names)) == CU_OK)
        return CU_OK;
    if (cu_req_audit_refusal(
            req, action, target,
            json_pack("{s:s, s:s}", "reason", "scope escalation", "missing", names)) != CU_OK)
        return cu_resp_fail(resp, CU_E_AUDIT, "the refusal could not be audited");
    return cu_resp_fail(resp, CU_E_FORBIDDEN,
                        "a principal can only grant, or act on, scopes it holds; this one lacks: "
                        "%s",
                        names);
}

enum cu_err cu_req_audit_text(struct cu_req *req, const char *action, const char *target,
                              const char *outcome, char *details)
{
    if (details == NULL)
        return CU_E_NOMEM;
    return cu_work_audit_text(req->work, action, target, outcome, details);
}

enum cu_err cu_req_change(struct cu_req *req, cu_work_fn apply, cu_answer_fn answer, void *arg)
{
    enum cu_err rc = cu_work_add(req->work, apply, arg);

    CU_ASSERT_MSG(req->answer == NULL, "one change with an answer per request");
    if (rc == CU_OK) {
        req->answer = answer;
        req->answer_arg = arg;
    }
    return rc;
}

void *cu_req_alloc(struct cu_req *req, size_t size, void (*clear)(void *p))
{
    void *p;

    if (req->nowned >= CU_REQ_OWNED_MAX)
        return NULL;
    p = cu_calloc(1, size);
    if (p != NULL) {
        req->owned[req->nowned].p = p;
        req->owned[req->nowned].clear = clear;
        req->nowned++;
    }
    return p;
}

enum cu_err cu_req_db(struct cu_req *req, struct cu_db **out)
{
    enum cu_err rc = CU_OK;

    if (req->view == NULL)
        rc = cu_store_acquire(req->app->store, &req->view);
    *out = req->view;
    return rc;
}

enum cu_err cu_resp_change_failed(struct cu_resp *resp, enum cu_err rc, const char *what)
{
    if (rc == CU_OK || rc == CU_E_BUSY || resp->err != CU_OK)
        return rc;
    return cu_resp_fail(resp, rc, "%s", what);
}

enum cu_err cu_answer_no_content(struct cu_req *req, struct cu_resp *resp, void *arg)
{
    (void)req;
    (void)arg;
    resp->status = 204;
    return CU_OK;
}

enum cu_err cu_resp_unit_failed(struct cu_resp *resp, enum cu_err rc)
{
    switch (rc) {
    case CU_E_AUDIT:
        return cu_resp_fail(resp, rc, "the request could not be audited; nothing was changed");
    case CU_E_STORE_FULL:
        return cu_resp_fail(resp, rc, "the store's disk is full; nothing was changed");
    case CU_E_BUSY:
        return cu_resp_fail(resp, rc, "the store stayed busy; nothing was changed; retry");
    case CU_E_UNAVAILABLE:
        return cu_resp_fail(resp, rc, "the server is stopping; nothing was changed; retry");
    case CU_E_UNAUTHENTICATED:
        return cu_resp_fail(resp, rc,
                            "the session ended while the request ran; nothing was changed; sign "
                            "in again");
    default:
        return cu_resp_fail(resp, rc, "the store failed; nothing was changed");
    }
}

void cu_problem_render(struct cu_resp *resp, const struct cu_req *req)
{
    enum cu_err err = resp->err == CU_OK ? CU_E_INTERNAL : resp->err;
    char type[128];
    int status = cu_err_http_status(err);

    snprintf(type, sizeof(type), "%s%s", CU_PROBLEM_PREFIX,
             resp->type != NULL ? resp->type : cu_err_problem_code(err));
    cu_buf_reset(&resp->body);
    resp->status = status;
    resp->content_type = "application/problem+json";
    /* Built by hand, not with jansson, so that an out-of-memory failure still answers. */
    if (cu_buf_printf(&resp->body, "{\"type\":\"%s\",\"title\":\"%s\",\"status\":%d,\"detail\":",
                      type, cu_err_title(err), status) != CU_OK ||
        cu_json_escape(&resp->body, resp->detail[0] ? resp->detail : cu_err_str(err),
                       strlen(resp->detail[0] ? resp->detail : cu_err_str(err))) != CU_OK ||
        cu_buf_append_str(&resp->body, ",\"instance\":") != CU_OK ||
        cu_json_escape(&resp->body, req->path ? req->path : "",
                       strlen(req->path ? req->path : "")) != CU_OK ||
        cu_buf_printf(&resp->body, ",\"request_id\":\"%s\"}\n", req->id) != CU_OK) {
        /* Out of memory: a problem document made in advance, so the answer still is one. */
        cu_buf_reset(&resp->body);
        resp->status = 500;
        resp->fallback = "{\"type\":\"" CU_PROBLEM_PREFIX "internal\",\"title\":\"Internal error\","
                         "\"status\":500,\"detail\":\"the server is short of memory\"}\n";
    }
}

/* What a request's Content-Type says of its body (media_type). */
enum media {
    MEDIA_JSON,      /* application/json, in UTF-8 (no charset, or charset utf-8) */
    MEDIA_CHARSET,   /* application/json in a charset other than UTF-8 */
    MEDIA_MALFORMED, /* application/json with parameters that do not parse */
    MEDIA_OTHER,     /* absent, or another media type */
};

#define CHARSET_MAX 32 /* longer than any charset name worth comparing with "utf-8" */

static bool ows(char c)
{
    return c == ' ' || c == '\t';
}

/* param_value(s, out, len): reads the value of a parameter at *s, a token or a quoted string
 * (RFC 9110, 5.6.4; escapes undone), into out (CHARSET_MAX bytes: the first CHARSET_MAX are
 * kept, *len counts them all) and moves *s past it. False when it does not parse. */
static bool param_value(const char **s, char out[CHARSET_MAX], size_t *len)
{
    const char *p = *s;
    bool quoted = *p == '"';

    *len = 0;
    p += quoted;
    while (quoted ? *p != '"' : cu_tchar((unsigned char)*p)) {
        if (*p == '\0' || (quoted && *p == '\\' && *++p == '\0'))
            return false;
        if (*len < CHARSET_MAX)
            out[*len] = cu_ascii_lower(*p);
        (*len)++;
        p++;
    }
    if ((!quoted && *len == 0) || (quoted && *p++ != '"'))
        return false;
    *s = p;
    return true;
}

/* media_params(s): the parameters after "application/json" at s: "; name=value", repeated,
 * with optional white space around the semicolons. MEDIA_CHARSET when a charset is not utf-8
 * (any case, quoted or not). */
static enum media media_params(const char *s)
{
    enum media m = MEDIA_JSON;

    for (;;) {
        char value[CHARSET_MAX];
        size_t n = 0, len = 0;

        while (ows(*s))
            s++;
        if (*s == '\0')
            return m;
        if (*s++ != ';')
            return MEDIA_MALFORMED;
        while (ows(*s))
            s++;
        if (*s == ';' || *s == '\0')
            continue; /* an empty parameter, which RFC 9110 allows */
        while (cu_tchar((unsigned char)s[n]))
            n++;
        if (n == 0 || s[n] != '=')
            return MEDIA_MALFORMED;
        bool charset = n == 7 && strncasecmp(s, "charset", 7) == 0;
        s += n + 1;
        if (!param_value(&s, value, &len))
            return MEDIA_MALFORMED;
        if (charset && !(len == 5 && memcmp(value, "utf-8", 5) == 0))
            m = MEDIA_CHARSET;
    }
}

/* media_type(ct): what the Content-Type header ct (NULL when absent) says of the body. */
static enum media media_type(const char *ct)
{
    static const char json[] = "application/json";

    if (ct == NULL)
        return MEDIA_OTHER;
    while (ows(*ct))
        ct++;
    if (strncasecmp(ct, json, sizeof(json) - 1) != 0)
        return MEDIA_OTHER;
    ct += sizeof(json) - 1;
    if (*ct != '\0' && *ct != ';' && !ows(*ct))
        return MEDIA_OTHER; /* application/jsonx */
    return media_params(ct);
}

enum cu_err cu_req_json_body(struct cu_req *req, struct cu_resp *resp)
{
    enum media m = media_type(req->content_type);

    if (m == MEDIA_OTHER)
        return cu_resp_fail(resp, CU_E_MEDIA_TYPE, "the body must be application/json");
    if (m == MEDIA_CHARSET)
        return cu_resp_fail(resp, CU_E_MEDIA_TYPE,
                            "the body must be JSON in UTF-8: the Content-Type's charset must be "
                            "utf-8, or be left out");
    if (m == MEDIA_MALFORMED)
        return cu_resp_fail(resp, CU_E_MEDIA_TYPE,
                            "the Content-Type's parameters do not parse: send application/json, "
                            "or application/json; charset=utf-8");
    if (req->body.len == 0)
        return cu_resp_fail(resp, CU_E_INVALID, "the body is empty; a JSON object is required");
    return CU_OK;
}

enum cu_err cu_req_json(struct cu_req *req, struct cu_resp *resp, json_t **out)
{
    char err[CU_JSON_ERR_BYTES];
    enum cu_err rc;

    *out = NULL;
    if ((rc = cu_req_json_body(req, resp)) != CU_OK)
        return rc;
    rc = cu_json_parse_object(req->body.data, req->body.len, out, err);
    if (rc != CU_OK)
        return cu_resp_fail(resp, CU_E_INVALID, "%s", err);
    return CU_OK;
}

const char *cu_req_query(struct cu_req *req, const char *name)
{
    return req->source != NULL ? req->source->query(req->source_arg, name) : NULL;
}

const char *cu_req_header(struct cu_req *req, const char *name)
{
    return req->source != NULL ? req->source->header(req->source_arg, name) : NULL;
}

enum cu_err cu_req_scopes(const json_t *body, struct cu_resp *resp, bool required, uint64_t *out)
{
    const json_t *arr = json_object_get(body, "scopes"), *item;
    size_t i;
    *out = 0;
    if (arr == NULL && !required)
        return CU_OK;
    if (!json_is_array(arr) || json_array_size(arr) == 0 || json_array_size(arr) > 64)
        return cu_resp_fail(resp, CU_E_INVALID,
                            "field 'scopes' must be a non-empty array of scope names");
    json_array_foreach(arr, i, item)
    {
        const char *s = json_string_value(item);
        uint64_t bit = s ? cu_apikey_scope_parse(s, strlen(s)) : 0;
        if (bit == 0)
            return cu_resp_fail(resp, CU_E_INVALID, "field 'scopes' item %zu is not a known scope",
                                i);
        *out |= bit;
    }
    return CU_OK;
}

json_t *cu_resp_scopes(uint64_t scopes)
{
    json_t *a = json_array();

    for (uint64_t bit = 1; a != NULL && bit != 0 && bit <= scopes; bit <<= 1) {
        const char *name = (scopes & bit) ? cu_apikey_scope_name(bit) : NULL;
        if (name != NULL && json_array_append_new(a, json_string(name)) != 0) {
            json_decref(a);
            a = NULL;
        }
    }
    return a;
}

enum cu_err cu_req_page(struct cu_req *req, struct cu_resp *resp, bool (*valid_after)(const char *),
                        const char *after_what, const char **after, size_t *limit)
{
    const char *lim = cu_req_query(req, "limit");
    *after = cu_req_query(req, "after");
    *limit = 100;
    if (lim != NULL) {
        char *end = NULL;
        long n = strtol(lim, &end, 10);
        if (end == lim || *end != '\0' || n < 1 || n > 1000)
            return cu_resp_fail(resp, CU_E_INVALID, "limit must be an integer from 1 to 1000");
        *limit = (size_t)n;
    }
    if (*after != NULL && !valid_after(*after))
        return cu_resp_fail(resp, CU_E_INVALID, "after must be %s", after_what);
    return CU_OK;
}
