/*
 * head.c - the request head: what libmicrohttpd lets through and a careful server refuses
 * (framing headers that repeat or conflict, names and values that are not what RFC 9110
 * allows, a raw target with control bytes or encoded separators, too many or repeated query
 * arguments).
 */
#include "api/head.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "api/server.h"
#include "base/text.h"

/* ---- the request head: what libmicrohttpd lets through and a careful server refuses ---- */

/* The most query arguments a request may carry. */
#define QUERY_ARGS_MAX 32

/* What one pass over a request's headers found. */
struct head_survey {
    size_t total;            /* bytes of names and values, plus 4 a header */
    unsigned content_length; /* how many of each header that must not repeat */
    unsigned transfer_encoding;
    unsigned host;
    unsigned authorization;
    unsigned content_type;
    unsigned connection;
    bool bad_name;  /* a name that is not an RFC 9110 token (a space before ':') */
    bool folded;    /* a framing header's name with more after it: a folded line */
    bool bad_value; /* a value holding a control byte other than a tab */
};

static bool survey_header(void *cls, const char *key, const char *value)
{
    static const struct {
        const char *name;
        size_t off;
    } unique[] = {
        {"Content-Length", offsetof(struct head_survey, content_length)},
        {"Transfer-Encoding", offsetof(struct head_survey, transfer_encoding)},
        {"Host", offsetof(struct head_survey, host)},
        {"Authorization", offsetof(struct head_survey, authorization)},
        {"Content-Type", offsetof(struct head_survey, content_type)},
        {"Connection", offsetof(struct head_survey, connection)},
    };
    struct head_survey *h = cls;
    h->total += strlen(key) + (value ? strlen(value) : 0) + 4;
    if (key[0] == '\0')
        h->bad_name = true;
    for (const unsigned char *p = (const unsigned char *)key; *p != '\0'; p++)
        h->bad_name |= !cu_tchar(*p);
    for (const unsigned char *p = (const unsigned char *)value; p != NULL && *p != '\0'; p++)
        h->bad_value |= (*p < 0x20 && *p != '\t') || *p == 0x7f;
    /* libmicrohttpd 0.9.75 appends a folded line (obs-fold) to the header's name, not its
     * value: "Transfer-Encoding:\r\n chunked" arrives as a header "Transfer-Encodingchunked",
     * and the framing it carried is silently lost. */
    for (size_t i = 0; i < sizeof(unique) / sizeof(unique[0]); i++) {
        size_t n = strlen(unique[i].name);
        if (strcasecmp(key, unique[i].name) == 0)
            (*(unsigned *)(void *)((char *)h + unique[i].off))++;
        else if (strncasecmp(key, unique[i].name, n) == 0)
            h->folded = true;
    }
    return true;
}

/* The query arguments' names, to find one that repeats. */
struct query_survey {
    const char *names[QUERY_ARGS_MAX];
    size_t n;
    bool too_many;
    const char *repeated; /* the first name seen twice */
};

static bool survey_query(void *cls, const char *key, const char *value)
{
    struct query_survey *q = cls;
    (void)value;
    /* libmicrohttpd looks names up ignoring case: LIMIT and limit are one argument. */
    for (size_t i = 0; i < q->n && q->repeated == NULL; i++) {
        if (strcasecmp(q->names[i], key) == 0)
            q->repeated = q->names[i];
    }
    if (q->n == QUERY_ARGS_MAX) {
        q->too_many = true;
        return false;
    }
    q->names[q->n++] = key;
    return true;
}

/* Why a raw request target (as sent, before percent-decoding) is refused, or NULL: a byte
 * that is not visible ASCII, a '%' not followed by two hex digits, one that encodes a control
 * byte (libmicrohttpd decodes %00 into a NUL that cuts the path short), or an encoded slash or
 * backslash in the path. */
const char *cu_head_target_error_n(const char *t, size_t n)
{
    bool in_path = true;
    const unsigned char *p = (const unsigned char *)t, *end = p + n;
    for (; p < end; p++) {
        in_path &= *p != '?';
        if (*p <= 0x20 || *p >= 0x7f)
            return "the request target holds a byte that is not visible ASCII";
        if (*p != '%')
            continue;
        int hi = end - p > 1 ? cu_hex_digit((char)p[1]) : -1;
        int lo = hi < 0 || end - p < 3 ? -1 : cu_hex_digit((char)p[2]);
        if (hi < 0 || lo < 0)
            return "the request target holds a '%' that is not followed by two hex digits";
        if (hi * 16 + lo < 0x20 || hi * 16 + lo == 0x7f)
            return "the request target encodes a control byte";
        /* Decoded before routing, %2F would add a path segment a front end never saw. */
        if (in_path && (hi * 16 + lo == '/' || hi * 16 + lo == '\\'))
            return "the request path encodes a slash or a backslash";
        p += 2;
    }
    return NULL;
}

const char *cu_head_target_error(const char *t)
{
    return cu_head_target_error_n(t, strlen(t));
}

/* Whether the request head is one a careful server answers: CU_OK, or CU_E_HEADERS_TOO_LARGE,
 * or CU_E_INVALID with the detail set in r->resp. Refused: a target with a control byte, a
 * header name that is not a token, a framing header folded over two lines, a control byte in
 * a header value, a repeated Content-Length, Transfer-Encoding, Host, Authorization,
 * Content-Type or Connection, Content-Length together with Transfer-Encoding (RFC 9112
 * section 6.1: the framing is ambiguous, a smuggling risk behind a proxy), a transfer coding
 * other than chunked, Transfer-Encoding outside HTTP/1.1, an HTTP/1.1 request without Host,
 * and a query argument repeated (names compared ignoring case, as libmicrohttpd looks them
 * up). */
enum cu_err cu_head_error(struct cu_req *req, struct cu_resp *resp, const char *target_err,
                          const char *version)
{
    const struct cu_req_source *src = req->source;
    struct head_survey h = {0};
    struct query_survey q = {.n = 0};
    const char *te;

    src->each(req->source_arg, false, survey_header, &h);
    if (h.total > req->app->cfg.server.max_header_bytes)
        return CU_E_HEADERS_TOO_LARGE;
    if (target_err != NULL)
        return cu_resp_fail(resp, CU_E_INVALID, "%s", target_err);
    if (h.bad_name)
        return cu_resp_fail(resp, CU_E_INVALID,
                            "a header name is not a token (no spaces before the colon)");
    if (h.folded)
        return cu_resp_fail(resp, CU_E_INVALID,
                            "a framing header is folded over two lines (obs-fold)");
    if (h.bad_value)
        return cu_resp_fail(resp, CU_E_INVALID, "a header value holds a control byte");
    if (h.content_length > 1 || h.transfer_encoding > 1 || h.host > 1 || h.authorization > 1 ||
        h.content_type > 1 || h.connection > 1)
        return cu_resp_fail(resp, CU_E_INVALID,
                            "Content-Length, Transfer-Encoding, Host, Authorization, "
                            "Content-Type and Connection may each appear once");
    if (h.content_length > 0 && h.transfer_encoding > 0)
        return cu_resp_fail(resp, CU_E_INVALID,
                            "a request must not carry both Content-Length and Transfer-Encoding");
    te = cu_req_header(req, "Transfer-Encoding");
    if (te != NULL && strcasecmp(te, "chunked") != 0)
        return cu_resp_fail(resp, CU_E_INVALID, "the only transfer coding taken is chunked");
    if (te != NULL && strcmp(version, "HTTP/1.1") != 0)
        return cu_resp_fail(resp, CU_E_INVALID,
                            "Transfer-Encoding is for HTTP/1.1 only (RFC 9112 section 6.1)");
    if (h.host == 0 && strcmp(version, "HTTP/1.0") != 0)
        return cu_resp_fail(resp, CU_E_INVALID, "an HTTP/1.1 request needs a Host header");
    src->each(req->source_arg, true, survey_query, &q);
    if (q.too_many)
        return cu_resp_fail(resp, CU_E_INVALID, "more than %d query arguments", QUERY_ARGS_MAX);
    if (q.repeated != NULL)
        return cu_resp_fail(resp, CU_E_INVALID, "the query argument '%.64s' is repeated",
                            q.repeated);
    return CU_OK;
}
