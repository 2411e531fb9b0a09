/*
 * route_harness.c - the service without the network, for the route fuzzer and the
 * allocation-failure loop (route_harness.h says what a request's text is).
 *
 * The data directory lives in /dev/shm when it can (fsync costs nothing there), with the
 * cheapest password hash the configuration allows and no limit on failed authentications, so
 * that many requests a second reach the handlers. It is removed when the process exits.
 */
#include "route_harness.h"

#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/server.h"
#include "base/clock.h"
#include "audit/checkpoint.h"
#include "base/json.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/text.h"
#include "cli/cli.h"

static struct {
    bool ready;
    char tmp[256]; /* the temporary folder, removed at exit */
    char dir[272]; /* the data directory in it */
    struct cu_cli_ctx ctx;
    struct cu_app *app;
    char key[128], rkey[128], cus[64], session[128], staff[64];
    char now[CU_RFC3339_BYTES]; /* the clock when the harness started, for events' times */
} h;

static const char login_email[] = "fuzz.customer@example.com";
static const char login_password[] = "harbour lantern quietly 42";

static void die(const char *what)
{
    fprintf(stderr, "route harness: %s\n", what);
    abort();
}

/* ---- the request's text ---- */

struct parsed {
    char *text; /* the substituted text, cut into NUL-terminated pieces */
    const char *method, *target, *version;
    char *path;
    const char *hname[CU_HARNESS_MAX_HEADERS], *hvalue[CU_HARNESS_MAX_HEADERS];
    size_t nheaders;
    char *qname[CU_HARNESS_MAX_QUERY], *qvalue[CU_HARNESS_MAX_QUERY];
    size_t nquery;
    char *query; /* a copy of the query, cut into the pieces above */
    const char *body;
    size_t body_len;
};

static const char *p_header(void *arg, const char *name)
{
    const struct parsed *p = arg;
    for (size_t i = 0; i < p->nheaders; i++) {
        if (strcasecmp(p->hname[i], name) == 0)
            return p->hvalue[i];
    }
    return NULL;
}

static const char *p_query(void *arg, const char *name)
{
    const struct parsed *p = arg;
    for (size_t i = 0; i < p->nquery; i++) {
        if (strcasecmp(p->qname[i], name) == 0) /* as libmicrohttpd looks them up */
            return p->qvalue[i];
    }
    return NULL;
}

static void p_each(void *arg, bool query, bool (*fn)(void *, const char *, const char *), void *cls)
{
    const struct parsed *p = arg;
    size_t n = query ? p->nquery : p->nheaders;
    for (size_t i = 0; i < n; i++) {
        if (!fn(cls, query ? p->qname[i] : p->hname[i], query ? p->qvalue[i] : p->hvalue[i]))
            return;
    }
}

static const struct cu_req_source parsed_source = {p_header, p_query, p_each};

/* Decodes %XX in place as libmicrohttpd does (a decoded NUL ends the string). */
static void unescape(char *s)
{
    char *w = s;
    for (char *r = s; *r != '\0'; r++) {
        if (r[0] == '%' && cu_hex_digit(r[1]) >= 0 && cu_hex_digit(r[2]) >= 0) {
            *w++ = (char)(cu_hex_digit(r[1]) * 16 + cu_hex_digit(r[2]));
            r += 2;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
}

/* Replaces each {{NAME}} of the harness in in (n bytes) into a new NUL-terminated text
 * (malloc; NULL when out of memory), whose length goes to *len. */
static char *substitute(const uint8_t *in, size_t n, size_t *len)
{
    const struct {
        const char *name, *value;
    } subs[] = {
        {"{{KEY}}", h.key},
        {"{{RKEY}}", h.rkey},
        {"{{CUS}}", h.cus},
        {"{{LOGIN}}", login_email},
        {"{{PASSWORD}}", login_password},
        {"{{SESSION}}", h.session},
        {"{{NOW}}", h.now},
    };
    struct cu_buf b;
    cu_buf_init(&b, 4 * CU_HARNESS_MAX_TEXT);
    for (size_t i = 0; i < n;) {
        bool done = false;
        for (size_t k = 0; k < sizeof(subs) / sizeof(subs[0]) && !done; k++) {
            size_t m = strlen(subs[k].name);
            if (n - i >= m && memcmp(in + i, subs[k].name, m) == 0) {
                done = cu_buf_append_str(&b, subs[k].value) == CU_OK;
                i += m;
                if (!done) {
                    cu_buf_free(&b);
                    return NULL;
                }
            }
        }
        if (!done && cu_buf_append(&b, in + i++, 1) != CU_OK) {
            cu_buf_free(&b);
            return NULL;
        }
    }
    *len = b.len;
    if (cu_buf_append(&b, "", 1) != CU_OK) {
        cu_buf_free(&b);
        return NULL;
    }
    return cu_buf_steal(&b);
}

/* Cuts the next line off *s (LF or CRLF); NULL at the end of the text. */
static char *next_line(char **s, char *end)
{
    char *line = *s, *nl;
    if (line >= end)
        return NULL;
    nl = memchr(line, '\n', (size_t)(end - line));
    if (nl == NULL) {
        *s = end;
        return line;
    }
    *nl = '\0';
    if (nl > line && nl[-1] == '\r')
        nl[-1] = '\0';
    *s = nl + 1;
    return line;
}

static void parse_query(struct parsed *p)
{
    char *q = strchr(p->query, '?');
    if (q == NULL)
        return;
    *q++ = '\0';
    while (q != NULL && *q != '\0' && p->nquery < CU_HARNESS_MAX_QUERY) {
        char *amp = strchr(q, '&'), *eq;
        if (amp != NULL)
            *amp = '\0';
        eq = strchr(q, '=');
        if (eq != NULL)
            *eq++ = '\0';
        unescape(q);
        if (eq != NULL)
            unescape(eq);
        p->qname[p->nquery] = q;
        p->qvalue[p->nquery++] = eq;
        q = amp != NULL ? amp + 1 : NULL;
    }
}

/* Parses the text into p; false when out of memory. */
static bool parse(const uint8_t *data, size_t n, struct parsed *p)
{
    size_t len = 0;
    memset(p, 0, sizeof(*p));
    p->text = substitute(data, n > CU_HARNESS_MAX_TEXT ? CU_HARNESS_MAX_TEXT : n, &len);
    if (p->text == NULL)
        return false;
    char *s = p->text, *end = p->text + len, *line = next_line(&s, end);
    if (line == NULL)
        line = s;
    char *sp = strchr(line, ' ');
    p->method = line;
    p->target = "/";
    p->version = "HTTP/1.1";
    bool versioned = false;
    if (sp != NULL) {
        *sp = '\0';
        p->target = sp + 1;
        sp = strchr(sp + 1, ' ');
        if (sp != NULL) {
            *sp = '\0';
            p->version = sp + 1;
            versioned = true;
        }
    }
    while ((line = next_line(&s, end)) != NULL && *line != '\0') {
        char *colon = strchr(line, ':');
        if (colon == NULL || p->nheaders == CU_HARNESS_MAX_HEADERS)
            continue;
        *colon++ = '\0';
        while (*colon == ' ' || *colon == '\t')
            colon++;
        p->hname[p->nheaders] = line;
        p->hvalue[p->nheaders++] = colon;
    }
    /* Without a version, the request is one a client would send: with a Host header. */
    if (!versioned && p_header(p, "Host") == NULL && p->nheaders < CU_HARNESS_MAX_HEADERS) {
        p->hname[p->nheaders] = "Host";
        p->hvalue[p->nheaders++] = "localhost";
    }
    p->body = s;
    p->body_len = (size_t)(end - s);
    p->query = cu_strdup(p->target);
    if (p->query == NULL)
        return false;
    parse_query(p);
    p->path = cu_strdup(p->query);
    if (p->path == NULL)
        return false;
    unescape(p->path);
    return true;
}

static void parsed_free(struct parsed *p)
{
    cu_free(p->text);
    cu_free(p->query);
    cu_free(p->path);
}

int cu_harness_serve(const uint8_t *text, size_t n, int *status, struct cu_buf *out)
{
    struct parsed p;
    int rc = -1;
    *status = 0;
    if (!parse(text, n, &p)) {
        parsed_free(&p); /* out of memory before the server saw it */
        return -1;
    }
    struct cu_server_input in = {
        .method = p.method,
        .target = p.target,
        .path = p.path,
        .version = p.version,
        .source = &parsed_source,
        .source_arg = &p,
        .body = p.body,
        .body_len = p.body_len,
    };
    if (cu_server_serve(h.app, &in, status, out) == CU_OK)
        rc = 0;
    parsed_free(&p);
    return rc;
}

/* ---- what every answer promises ---- */

void cu_harness_check(int status, const struct cu_buf *body)
{
    json_t *doc = NULL;
    char err[CU_JSON_ERR_BYTES];
    if (status < 200 || status > 599)
        die("an answer with a status outside 200..599");
    if (status < 400)
        return;
    if (cu_json_parse_object(body->data ? body->data : "", body->len, &doc, err) != CU_OK)
        die("an error answer that is not a JSON object");
    const char *type = json_string_value(json_object_get(doc, "type"));
    json_int_t st = json_integer_value(json_object_get(doc, "status"));
    if (type == NULL || strncmp(type, "urn:custodia:problem:", 21) != 0 || st != status)
        die("an error answer that is not a problem document of its status");
    if (strcmp(type, "urn:custodia:problem:internal") == 0 && status == 500)
        die("an internal error (a bug: the server's log has it)");
    json_decref(doc);
}

int cu_harness_audit_ok(void)
{
    struct cu_audit_verify_report rep;
    struct cu_db *db = NULL;
    if (cu_store_db(h.ctx.store, &db) != CU_OK ||
        cu_audit_verify(h.ctx.audit, db, 1, NULL, NULL, &rep) != CU_OK)
        return 0;
    if (!rep.ok)
        fprintf(stderr, "route harness: audit log broken at %lld: %s\n", (long long)rep.bad_seq,
                rep.problem);
    return rep.ok;
}

void *cu_harness_store(void)
{
    return h.ctx.store;
}

/* ---- setting up ---- */

/* Serves a setup request and returns its answer parsed (caller frees with json_decref). */
static json_t *setup_request(const char *text, int want)
{
    struct cu_buf out;
    json_t *doc = NULL;
    char err[CU_JSON_ERR_BYTES];
    int status = 0;
    cu_buf_init(&out, 1u << 20);
    if (cu_harness_serve((const uint8_t *)text, strlen(text), &status, &out) != 0 ||
        status != want) {
        fprintf(stderr, "route harness: %s\n-> %d %.*s\n", text, status, (int)out.len,
                out.data ? out.data : "");
        die("a setup request failed");
    }
    if (out.len > 0 && cu_json_parse_object(out.data, out.len, &doc, err) != CU_OK)
        die("a setup answer is not JSON");
    cu_buf_free(&out);
    return doc;
}

static void copy_field(json_t *doc, const char *name, char *dst, size_t cap)
{
    const char *v = json_string_value(json_object_get(doc, name));
    if (v == NULL || strlen(v) >= cap)
        die("a setup answer lacks a field");
    snprintf(dst, cap, "%s", v);
    json_decref(doc);
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    return remove(path);
}

/* At exit: the temporary folder goes, depth first, without following links. */
static void remove_dir(void)
{
    if (h.tmp[0] == '/' && nftw(h.tmp, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        fprintf(stderr, "route harness: could not remove %s\n", h.tmp);
}

static void make_dir(void)
{
    struct stat st;
    const char *base =
        stat("/dev/shm", &st) == 0 && access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(h.tmp, sizeof(h.tmp), "%s/cu-routes-XXXXXX", base);
    if (mkdtemp(h.tmp) == NULL)
        die("cannot make a temporary directory");
    atexit(remove_dir);
    /* init makes the data directory itself: one level down. */
    snprintf(h.dir, sizeof(h.dir), "%s/d", h.tmp);
}

/* At exit: closes the service (after the last request), before the folder goes. */
static void teardown(void)
{
    cu_cli_app_free(h.app);
    h.app = NULL;
    cu_cli_close(&h.ctx);
}

void cu_harness_setup(void)
{
    char text[1024];
    if (h.ready)
        return;
    cu_json_setup();
    setenv("CUSTODIA_IDENTITY_PASSWORD_TIME_COST", "1", 1);
    setenv("CUSTODIA_IDENTITY_PASSWORD_MEMORY_KIB", "8192", 1);
    setenv("CUSTODIA_SERVER_AUTH_FAILURES_PER_MINUTE", "0", 1);
    setenv("CUSTODIA_STORE_SYNCHRONOUS", "normal", 1);
    setenv("CUSTODIA_LOG_LEVEL", "off", 1);
    cu_log_set_level(CU_LOG_OFF);
    make_dir();
    char *argv[] = {"init", "--dir", h.dir, NULL};
    /* init prints the first key on a terminal, and where it is: not the fuzzer's business. */
    int saved = dup(STDOUT_FILENO), null = open("/dev/null", O_WRONLY | O_CLOEXEC);
    fflush(stdout);
    if (saved < 0 || null < 0 || dup2(null, STDOUT_FILENO) < 0)
        die("cannot silence standard output");
    int code = cu_cli_init(3, argv);
    fflush(stdout);
    if (dup2(saved, STDOUT_FILENO) < 0)
        die("cannot restore standard output");
    close(saved);
    close(null);
    if (code != CU_EXIT_OK)
        die("custodia init failed");
    if (cu_cli_open(h.dir, &h.ctx, true) != CU_EXIT_OK)
        die("the data directory does not open");
    atexit(teardown);
    cu_clock_format(cu_clock_now_ms(), h.now);
    if (cu_cli_app_new(&h.ctx, &h.app) != 0)
        die("the service does not start");
    size_t nr = 0;
    const struct cu_route *routes = cu_routes(&nr);
    if (cu_metrics_new(routes, nr, &h.app->metrics) != CU_OK ||
        cu_limiter_new(0, &h.app->auth_limiter) != CU_OK)
        die("out of memory");
    snprintf(text, sizeof(text), "%s/initial-api-key", h.dir);
    FILE *f = fopen(text, "r");
    if (f == NULL || fgets(h.key, sizeof(h.key), f) == NULL)
        die("no initial API key");
    fclose(f);
    h.key[strcspn(h.key, "\r\n")] = '\0';
    h.ready = true;

    snprintf(text, sizeof(text),
             "POST /v1/apikeys\nAuthorization: Bearer %s\nContent-Type: application/json\n\n"
             "{\"name\": \"reader\", \"scopes\": [\"customers.read\"]}",
             h.key);
    copy_field(setup_request(text, 201), "key", h.rkey, sizeof(h.rkey));
    for (int i = 0; i < 3; i++) {
        snprintf(text, sizeof(text),
                 "POST /v1/customers\nAuthorization: Bearer %s\nContent-Type: application/json\n\n"
                 "{\"email\": \"c%d@example.com\", \"phone\": \"+4420794600%02d\", "
                 "\"given_name\": \"Ada\", \"city\": \"London\", \"tags\": [\"vip\"]}",
                 h.key, i, i);
        json_decref(setup_request(text, 201));
    }
    snprintf(text, sizeof(text),
             "POST /v1/customers\nAuthorization: Bearer %s\nContent-Type: application/json\n\n"
             "{\"email\": \"%s\", \"external_ref\": \"app-7\", \"national_id\": \"AB123456C\"}",
             h.key, login_email);
    copy_field(setup_request(text, 201), "id", h.cus, sizeof(h.cus));
    snprintf(text, sizeof(text),
             "PUT /v1/customers/%s/password\nAuthorization: Bearer %s\n"
             "Content-Type: application/json\n\n{\"password\": \"%s\"}",
             h.cus, h.key, login_password);
    json_decref(setup_request(text, 204));
    snprintf(text, sizeof(text),
             "POST /v1/auth/login\nContent-Type: application/json\n\n"
             "{\"login\": \"%s\", \"password\": \"%s\"}",
             login_email, login_password);
    copy_field(setup_request(text, 200), "token", h.session, sizeof(h.session));
    snprintf(text, sizeof(text),
             "POST /v1/staff\nAuthorization: Bearer %s\nContent-Type: application/json\n\n"
             "{\"email\": \"fuzz.staff@example.com\", \"name\": \"Sam Support\", "
             "\"scopes\": [\"customers.read\"]}",
             h.key);
    copy_field(setup_request(text, 201), "id", h.staff, sizeof(h.staff));
}
