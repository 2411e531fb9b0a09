/*
 * http.h - what a request handler sees: the request, the response it fills, and the route
 * table that maps a method and a path pattern to a handler.
 *
 * Handlers never talk to libmicrohttpd. They read struct cu_req, write struct cu_resp, and
 * return CU_OK or an error; on error the server renders an RFC 9457 problem from the code and
 * the detail the handler set with cu_resp_fail().
 */
#ifndef CU_API_HTTP_H
#define CU_API_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "access/access.h"
#include "audit/audit.h"
#include "base/buf.h"
#include "base/err.h"
#include "identity/apikey.h"
#include "identity/identity.h"
#include "store/work.h"

#define CU_REQUEST_ID_BYTES 33 /* 32 hex digits + NUL */
#define CU_MAX_PATH_PARAMS 4
#define CU_PATH_PARAM_MAX 128
#define CU_DETAIL_BYTES 256
#define CU_MAX_EXTRA_HEADERS 4

enum cu_method {
    CU_GET = 1 << 0,
    CU_POST = 1 << 1,
    CU_PUT = 1 << 2,
    CU_PATCH = 1 << 3,
    CU_DELETE = 1 << 4,
    CU_HEAD = 1 << 5,
    CU_OPTIONS = 1 << 6,
    CU_METHOD_OTHER = 1 << 7,
};

struct cu_app; /* the running service: config, keyring, store, services (server.c) */

/* Where a request's headers and query arguments come from: libmicrohttpd's connection in the
 * server, a table in tests and the route fuzzer. Each returns the value of name (the first,
 * since the server refuses a request that repeats a query argument), or NULL. */
struct cu_req_source {
    const char *(*header)(void *arg, const char *name);
    const char *(*query)(void *arg, const char *name);
    /* Calls fn for every header (query false) or query argument (query true), in order, with
     * the name and the value (NULL for a query argument without '='), until fn returns false. */
    void (*each)(void *arg, bool query, bool (*fn)(void *cls, const char *name, const char *value),
                 void *cls);
};

struct cu_req;
struct cu_resp;

/* What a handler's change answers once its unit of work is durable (cu_req_change): builds resp
 * from what apply left in arg, on the request's thread. An error renders the problem. */
typedef enum cu_err (*cu_answer_fn)(struct cu_req *req, struct cu_resp *resp, void *arg);

/* The most blocks a request owns through cu_req_alloc. */
#define CU_REQ_OWNED_MAX 4

struct cu_req {
    struct cu_app *app;
    char id[CU_REQUEST_ID_BYTES];
    enum cu_method method;
    const char *method_name;
    const char *path;                                   /* without the query string */
    const char *content_type;                           /* NULL when absent */
    struct cu_buf body;                                 /* capped at server.max_body_bytes */
    char params[CU_MAX_PATH_PARAMS][CU_PATH_PARAM_MAX]; /* {name} segments, in order */
    size_t nparams;
    struct cu_principal principal;
    const struct cu_policy *policy;     /* the access policy it is decided by (referenced) */
    enum cu_access_effect access;       /* the route's decision: allow, or allow masked */
    uint64_t route_permission;          /* the permission it was decided for (0: none) */
    unsigned approvals_needed;          /* >0: the action waits for approval (four-eyes) */
    int64_t approval_ms;                /* within how long */
    char remote_ip[64];                 /* the client's address, for limits held in memory only */
    char rate_client[64];               /* the client as limits count it (cu_rate_client) */
    char kept_ip[64];                   /* the address as custodia keeps it (cu_app_kept_ip) */
    char kept_reported[64];             /* a reported end user's address, kept the same way */
    void *conn;                         /* the MHD connection (server.c only), or NULL */
    const struct cu_req_source *source; /* headers and query arguments; NULL: none */
    void *source_arg;
    struct cu_work *work; /* the request's unit of work (made by the server) */
    struct cu_db *view;   /* the read connection of cu_req_db, or NULL */
    bool refusal;         /* refused, with the refusal's record in work: the refusal stands */
    bool session_held;    /* work checks that the request's session is still live */
    cu_answer_fn answer;  /* set by cu_req_change */
    void *answer_arg;
    struct {
        void *p;
        void (*clear)(void *p);
    } owned[CU_REQ_OWNED_MAX]; /* cu_req_alloc's blocks, freed with the request */
    size_t nowned;
};

struct cu_resp {
    int status;
    const char *content_type; /* static string */
    struct cu_buf body;
    enum cu_err err;              /* set by cu_resp_fail */
    char detail[CU_DETAIL_BYTES]; /* problem detail; never a secret or personal data */
    const char *headers[CU_MAX_EXTRA_HEADERS][2];
    size_t nheaders;
    char retry_after[24]; /* the Retry-After value cu_resp_retry_after wrote */
    const char *fallback; /* static: the problem sent when even the body could not be made */
    const char *type;     /* static: a problem type more precise than err's ("insufficient_funds");
                             NULL: err's own */
};

typedef enum cu_err (*cu_handler_fn)(struct cu_req *req, struct cu_resp *resp);

/* What a route demands of its caller (struct cu_route flags): the access flags, decided by
 * cu_access_decide, and how the server runs it. */
enum cu_route_flags {
    CU_ROUTE_PUBLIC = 0,
    CU_ROUTE_SESSION = CU_ACCESS_SESSION,   /* a customer's or staff member's session */
    CU_ROUTE_FRESH = CU_ACCESS_FRESH,       /* a recent sign-in or step-up */
    CU_ROUTE_ENROL = CU_ACCESS_ENROL,       /* open to sessions that must still enrol a factor */
    CU_ROUTE_CUSTOMER = CU_ACCESS_CUSTOMER, /* decided again on the customer (api/gate.h) */
    CU_ROUTE_SIGNED = CU_ACCESS_SIGNED,     /* any staff member or key; the handler decides */
    CU_ROUTE_OWN = CU_ACCESS_OWN, /* also a customer's session, on what is its own (the handler) */
    CU_ROUTE_HASH = 1 << 8, /* the handler hashes a password: it runs on the lane (base/lane.h) */
};

struct cu_route {
    enum cu_method method;
    unsigned flags;      /* enum cu_route_flags */
    const char *pattern; /* "/v1/apikeys/{id}" */
    cu_handler_fn handler;
    uint64_t permission; /* needs an API key or a staff session holding it; 0: see flags */
};

/* cu_routes(n): the route table and its length (routes.c). */
const struct cu_route *cu_routes(size_t *n);

/* cu_route_match(routes, n, method, path, req, allowed): the route for method and path, with
 * its {params} copied into req. NULL when none matches; then *allowed holds the methods of
 * routes whose pattern matches the path (0 when the path is unknown). Path params longer than
 * CU_PATH_PARAM_MAX - 1 bytes do not match. */
const struct cu_route *cu_route_match(const struct cu_route *routes, size_t n,
                                      enum cu_method method, const char *path, struct cu_req *req,
                                      unsigned *allowed);

/* cu_method_parse(name): the enum value of an HTTP method name. */
enum cu_method cu_method_parse(const char *name);

/* cu_methods_format(mask, out, outlen): "GET, POST" for a mask of methods. */
void cu_methods_format(unsigned mask, char *out, size_t outlen);

/* cu_resp_fail(resp, err, fmt, ...): records err and a detail for the problem response;
 * returns err so a handler can `return cu_resp_fail(...)`. */
enum cu_err cu_resp_fail(struct cu_resp *resp, enum cu_err err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* cu_resp_json(resp, status, v): sets a JSON body from v (which the call consumes with
 * json_decref). CU_E_NOMEM or CU_E_TOO_LARGE on failure. */
CU_WUR enum cu_err cu_resp_json(struct cu_resp *resp, int status, json_t *v);

/* cu_resp_json_begin(resp, status): empties the body for JSON text that the handler appends
 * itself, and returns the body; cu_resp_json_end(resp, rc) then finishes it when rc is CU_OK
 * and empties it otherwise, and returns rc (or the error of finishing). For answers too hot
 * to build as a jansson tree first. */
struct cu_buf *cu_resp_json_begin(struct cu_resp *resp, int status);
CU_WUR enum cu_err cu_resp_json_end(struct cu_resp *resp, enum cu_err rc);

/* cu_resp_header(resp, name, value): adds a response header; both strings must outlive the
 * response (static or owned by the request). */
void cu_resp_header(struct cu_resp *resp, const char *name, const char *value);

/* cu_resp_retry_after(resp, seconds): adds Retry-After with seconds, kept in resp itself (the
 * response may be sent by another thread than the one that made it). */
void cu_resp_retry_after(struct cu_resp *resp, int64_t seconds);

/* cu_req_audit(req, action, target, outcome, details): an audit record of the request (with
 * its principal, id and address) in the request's unit of work: the answer is sent only once
 * the record is committed, with the request's change if it makes one; if the record cannot be
 * committed, the client gets 503 audit_unavailable instead (fail closed). The record of a
 * request that fails is dropped. action and outcome are static strings, target is copied,
 * details (may be NULL) is consumed. Errors of cu_work_audit. */
CU_WUR enum cu_err cu_req_audit(struct cu_req *req, const char *action, const char *target,
                                const char *outcome, json_t *details);

/* cu_req_audit_refusal(req, action, target, details): the "denied" record of a request the
 * handler refuses: unlike cu_req_audit's, it is committed although the request fails, and the
 * refusal is answered whatever becomes of its record (health then reports the audit log). */
CU_WUR enum cu_err cu_req_audit_refusal(struct cu_req *req, const char *action, const char *target,
                                        json_t *details);

/* cu_req_access_ctx(req, ctx): what a decision of the request weighs besides its principal:
 * the clock now, its policy (taken when it has none yet) and its source address. identity
 * and customer_mfa_required are left for the caller. */
void cu_req_access_ctx(struct cu_req *req, struct cu_access_ctx *ctx);

/* cu_resp_roles(roles): roles as stored (names and one space between) as a JSON array. */
json_t *cu_resp_roles(const char *roles);

/* cu_req_may(req, permission): whether the request's principal holds one more permission than
 * its route's, as the access policy decides it now (CU_ACCESS_DENY without a policy or for a
 * customer's session). */
enum cu_access_effect cu_req_may(struct cu_req *req, uint64_t permission);

/* cu_req_roles(req, resp, body, out, cap, given): the body's "roles" (an array of at most 8
 * names the request's policy knows) into out, names and one space between; *given says
 * whether the body had the field. Fails resp otherwise. */
CU_WUR enum cu_err cu_req_roles(struct cu_req *req, struct cu_resp *resp, json_t *body, char *out,
                                size_t cap, bool *given);

/* cu_req_may_grant(req, resp, action, target, scopes): least privilege for what a request gives
 * or acts on (a key's scopes, a staff member's): CU_OK when its principal holds every scope in
 * scopes (cu_access_may_grant); else CU_E_FORBIDDEN with the detail naming the scopes it lacks,
 * and the refusal audited as action on target, "denied". */
CU_WUR enum cu_err cu_req_may_grant(struct cu_req *req, struct cu_resp *resp, const char *action,
                                    const char *target, uint64_t scopes);

/* cu_req_audit_text(req, action, target, outcome, details): cu_req_audit with the details as
 * canonical JSON text (an object; cu_json_canonical's form), taken over (malloc'd; NULL: the
 * allocation failed, CU_E_NOMEM). For answers too hot to build details as a jansson tree. */
CU_WUR enum cu_err cu_req_audit_text(struct cu_req *req, const char *action, const char *target,
                                     const char *outcome, char *details);

/* cu_req_change(req, apply, answer, arg): the change the request makes, run by the group
 * committer in the request's unit of work (store/work.h) once the handler returns CU_OK: apply
 * runs on the writer thread inside the unit's savepoint (with the unit's records and events,
 * which it may add to with cu_work_audit), reporting its own failures with cu_resp_fail as a
 * handler does; once the unit is durable, answer (NULL: resp as apply left it) builds the
 * response on the request's thread. If the unit fails, nothing of it is kept and the client
 * gets the problem apply set, or the unit's (audit_unavailable, store_full, store_busy,
 * store_unavailable). The request waits without holding a thread. arg must live as long as the
 * request (cu_req_alloc). CU_E_INVALID when the unit holds too many changes. */
CU_WUR enum cu_err cu_req_change(struct cu_req *req, cu_work_fn apply, cu_answer_fn answer,
                                 void *arg);

/* cu_req_alloc(req, size, clear): size zeroed bytes owned by the request, freed when it ends,
 * after clear(p) when clear is not NULL. NULL when memory runs out or the request already owns
 * CU_REQ_OWNED_MAX blocks. */
void *cu_req_alloc(struct cu_req *req, size_t size, void (*clear)(void *p));

/* cu_req_db(req, out): the request's read connection (a read view: autocommit statements, or
 * a transaction the handler begins and ends), taken from the store's pool on first use and
 * given back when the request waits for its unit or ends. CU_E_BUSY when the pool stayed
 * empty. */
CU_WUR enum cu_err cu_req_db(struct cu_req *req, struct cu_db **out);

/* cu_resp_change_failed(resp, rc, what): the report of a change's own failure from its apply:
 * rc with what as the detail, unless rc is CU_OK, CU_E_BUSY (left to the committer's re-run)
 * or resp already holds a failure; returns rc. */
enum cu_err cu_resp_change_failed(struct cu_resp *resp, enum cu_err rc, const char *what);

/* cu_answer_no_content(req, resp, arg): the answer (cu_answer_fn) of a change that answers
 * 204 with no body. */
enum cu_err cu_answer_no_content(struct cu_req *req, struct cu_resp *resp, void *arg);

/* cu_resp_unit_failed(resp, rc): fails resp with rc and the detail the API gives a unit of work
 * that could not be committed; returns rc. */
enum cu_err cu_resp_unit_failed(struct cu_resp *resp, enum cu_err rc);

/* cu_problem_render(resp, req): replaces resp's body with the problem document for resp->err
 * and resp->detail, and sets its status and content type. */
void cu_problem_render(struct cu_resp *resp, const struct cu_req *req);

/* cu_req_json_body(req, resp): CU_OK when the request has a body declared as JSON (its
 * content type application/json, in UTF-8), for a handler that parses the text itself;
 * otherwise fails resp as cu_req_json does. */
CU_WUR enum cu_err cu_req_json_body(struct cu_req *req, struct cu_resp *resp);

/* cu_req_json(req, resp, out): parses the request body as a JSON object; a wrong content type
 * gives 415 and malformed JSON 400, with the detail set. Caller frees *out with json_decref. */
CU_WUR enum cu_err cu_req_json(struct cu_req *req, struct cu_resp *resp, json_t **out);

/* cu_req_scopes(body, resp, required, out): the scope bits named by the array "scopes" of
 * body (absent: 0 unless required). CU_E_INVALID with the detail set for an empty or over-long
 * array or an unknown name. */
CU_WUR enum cu_err cu_req_scopes(const json_t *body, struct cu_resp *resp, bool required,
                                 uint64_t *out);

/* cu_resp_scopes(scopes): the JSON array of the names of the scope bits in scopes, in bit
 * order: the one form every answer gives scopes in (an API key's, a staff member's, /v1/me's).
 * NULL when memory runs out. Caller owns the reference (json_pack's "o" takes it over). */
json_t *cu_resp_scopes(uint64_t scopes);

/* cu_req_page(req, resp, valid_after, after_what, after, limit): the cursor of a list: query
 * argument "limit" (1..1000, default 100) and "after" (NULL, or an id valid_after accepts).
 * CU_E_INVALID with the detail set ("after must be <after_what>") otherwise. */
CU_WUR enum cu_err cu_req_page(struct cu_req *req, struct cu_resp *resp,
                               bool (*valid_after)(const char *), const char *after_what,
                               const char **after, size_t *limit);

/* cu_req_header(req, name): the value of request header name, or NULL. */
const char *cu_req_header(struct cu_req *req, const char *name);

/* cu_req_query(req, name): the value of query argument name, or NULL. */
const char *cu_req_query(struct cu_req *req, const char *name);

#endif
