/*
 * frame.c - the framing of the request stream, checked before libmicrohttpd reads it.
 *
 * What it refuses is what the library would otherwise answer with an HTML page of its own
 * (a header line without a colon, a Content-Length that is not a number, a malformed chunked
 * body, an HTTP version other than 1.0 and 1.1, a head past the connection's memory), and what
 * it could not frame as the library frames it (Content-Length given twice or with
 * Transfer-Encoding, a transfer coding other than chunked, obs-fold, a line end without CR).
 * The subtler checks of a head that frames well (Host, repeated headers, the target's escapes
 * in detail, query arguments) stay in head.c, on the request itself.
 */
#include "api/frame.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "api/head.h"
#include "base/text.h"

enum {
    F_HEAD,       /* a request line and headers, up to their empty line */
    F_BODY,       /* f->left bytes of a body by Content-Length */
    F_CHUNK_LINE, /* a chunk-size line */
    F_CHUNK_DATA, /* f->left bytes of a chunk */
    F_CHUNK_END,  /* the CRLF after a chunk's data */
    F_TRAILER,    /* trailer lines after the last chunk, up to an empty line */
};

void cu_frame_init(struct cu_frame *f, size_t head_max, size_t budget)
{
    memset(f, 0, sizeof(*f));
    f->state = F_HEAD;
    f->head_max = head_max;
    f->budget = budget;
}

bool cu_frame_at_head(const struct cu_frame *f)
{
    return f->state == F_HEAD;
}

static size_t refuse(struct cu_frame *f, int status, const char *detail)
{
    f->status = status;
    f->in_body = f->state != F_HEAD;
    snprintf(f->detail, sizeof(f->detail), "%s", detail);
    return 0;
}

static bool ctl(uint8_t c)
{
    return (c < 0x20 && c != '\t') || c == 0x7f;
}

/* The end of the line that starts at p (the offset of its CR), searching from `from`; n when
 * the line is not complete; *bare is set when an LF comes without its CR. */
static size_t line_end(const uint8_t *p, size_t n, size_t from, bool *bare)
{
    const uint8_t *lf = from < n ? memchr(p + from, '\n', n - from) : NULL;
    *bare = false;
    if (lf == NULL)
        return n;
    if (lf == p || lf[-1] != '\r') {
        *bare = true;
        return n;
    }
    return (size_t)(lf - p) - 1;
}

/* OWS-trimmed value of a header line [v, e). */
static void trim(const uint8_t **v, const uint8_t **e)
{
    while (*v < *e && (**v == ' ' || **v == '\t'))
        (*v)++;
    while (*e > *v && ((*e)[-1] == ' ' || (*e)[-1] == '\t'))
        (*e)--;
}

static bool equals_ci(const uint8_t *p, size_t n, const char *s)
{
    return n == strlen(s) && strncasecmp((const char *)p, s, n) == 0;
}

/* One header or trailer line [p, p + n) (without its CRLF): a token, a colon, a value without
 * control bytes. NULL when it is one, or why it is not. *name_len is the name's length. */
static const char *field_error(const uint8_t *p, size_t n, size_t *name_len)
{
    size_t i = 0;
    if (n > 0 && (p[0] == ' ' || p[0] == '\t'))
        return "a header line is folded over two lines (obs-fold)";
    while (i < n && cu_tchar(p[i]))
        i++;
    if (i == n)
        return "a header line has no colon";
    if (p[i] != ':' || i == 0)
        return "a header name is not a token (no spaces before the colon)";
    *name_len = i;
    for (i++; i < n; i++) {
        if (ctl(p[i]))
            return "a header value holds a control byte";
    }
    return NULL;
}

/* The query arguments of the target [t, t + n) as the library splits them. */
static size_t query_args(const uint8_t *t, size_t n)
{
    const uint8_t *q = memchr(t, '?', n);
    size_t args = 0;
    if (q == NULL || q + 1 == t + n)
        return 0;
    for (const uint8_t *p = q + 1; p < t + n; p++)
        args += *p == '&';
    return args + 1;
}

/* The request line [p, p + n): METHOD SP target SP HTTP/1.0 or HTTP/1.1. Returns 0, or the
 * refusal's status with *why set; *http10 says which version it is, *args how many query
 * arguments the target holds. */
static int request_line_error(const uint8_t *p, size_t n, const char **why, bool *http10,
                              size_t *args)
{
    const uint8_t *sp1 = memchr(p, ' ', n), *sp2 = NULL, *v;
    size_t i = 0;

    while (i < n && cu_tchar(p[i]))
        i++;
    if (i == 0 || sp1 == NULL || (size_t)(sp1 - p) != i) {
        *why = "the request line is not a method, a target and an HTTP version";
        return 400;
    }
    for (const uint8_t *q = p + n; q > sp1 + 1; q--) {
        if (q[-1] == ' ') {
            sp2 = q - 1;
            break;
        }
    }
    if (sp2 == NULL || sp2 == sp1 + 1) {
        *why = "the request line is not a method, a target and an HTTP version";
        return 400;
    }
    v = sp2 + 1;
    size_t vn = (size_t)(p + n - v);
    if (!(vn == 8 && memcmp(v, "HTTP/", 5) == 0 && v[5] >= '0' && v[5] <= '9' && v[6] == '.' &&
          v[7] >= '0' && v[7] <= '9')) {
        *why = "the request line does not end with an HTTP version";
        return 400;
    }
    if (memcmp(v, "HTTP/1.1", 8) != 0 && memcmp(v, "HTTP/1.0", 8) != 0) {
        *why = "only HTTP/1.1 and HTTP/1.0 are served";
        return 505;
    }
    *why = cu_head_target_error_n((const char *)sp1 + 1, (size_t)(sp2 - sp1 - 1));
    if (*why != NULL)
        return 400;
    *args = query_args(sp1 + 1, (size_t)(sp2 - sp1 - 1));
    if (*args > CU_FRAME_QUERY_ARGS_MAX) {
        *why = "more than 32 query arguments";
        return 400;
    }
    *http10 = v[7] == '0';
    return 0;
}

/* The head [p, p + n) (with its final CRLF CRLF): sets the body's state, or refuses. */
static bool check_head(struct cu_frame *f, const uint8_t *p, size_t n)
{
    const uint8_t *end = p + n - 2; /* the empty line's CR */
    const uint8_t *line = p, *e;
    const char *why = NULL;
    bool http10 = false, bare;
    unsigned lines = 0, cl_count = 0, te_count = 0;
    uint64_t cl = 0;
    size_t fields = 0; /* the library's records: header lines, cookies, query arguments */
    int st;

    e = line + line_end(line, (size_t)(end - line) + 2, 0, &bare);
    st = request_line_error(line, (size_t)(e - line), &why, &http10, &fields);
    if (st != 0)
        return refuse(f, st, why), false;
    for (line = e + 2; line < end; line = e + 2) {
        size_t name_len = 0;
        e = line + line_end(line, (size_t)(end - line) + 2, 0, &bare);
        if (++lines > CU_FRAME_FIELDS_MAX)
            return refuse(f, 431, "the request has more header lines than the limit"), false;
        why = field_error(line, (size_t)(e - line), &name_len);
        if (why != NULL)
            return refuse(f, 400, why), false;
        const uint8_t *v = line + name_len + 1, *ve = e;
        trim(&v, &ve);
        fields++;
        bool framing = equals_ci(line, name_len, "Content-Length") ||
                       equals_ci(line, name_len, "Transfer-Encoding");
        /* The library keeps what follows a framing value: it would not read it as we do. */
        if (framing && ve != e)
            return refuse(f, 400,
                          "Content-Length and Transfer-Encoding take no whitespace "
                          "after their value"),
                   false;
        if (equals_ci(line, name_len, "Cookie")) {
            for (const uint8_t *q = v; q < ve; q++)
                fields += *q == ';' || *q == ',';
        }
        if (equals_ci(line, name_len, "Content-Length")) {
            size_t d = (size_t)(ve - v);
            if (d == 0 || d > CU_FRAME_LENGTH_DIGITS)
                return refuse(f, 400, "Content-Length is not a number of bytes"), false;
            cl = 0;
            for (const uint8_t *q = v; q < ve; q++) {
                if (*q < '0' || *q > '9')
                    return refuse(f, 400, "Content-Length is not a number of bytes"), false;
                cl = cl * 10 + (uint64_t)(*q - '0');
            }
            cl_count++;
        } else if (equals_ci(line, name_len, "Transfer-Encoding")) {
            if (!equals_ci(v, (size_t)(ve - v), "chunked"))
                return refuse(f, 400, "the only transfer coding taken is chunked"), false;
            te_count++;
        }
    }
    if (n + fields * CU_FRAME_FIELD_COST > f->budget)
        return refuse(f, 431,
                      "the request head holds more headers, cookies and query arguments "
                      "than the limit"),
               false;
    if (cl_count > 1 || te_count > 1)
        return refuse(f, 400, "Content-Length and Transfer-Encoding may each appear once"), false;
    if (cl_count > 0 && te_count > 0)
        return refuse(f, 400,
                      "a request must not carry both Content-Length and "
                      "Transfer-Encoding"),
               false;
    if (te_count > 0 && http10)
        return refuse(f, 400, "Transfer-Encoding is for HTTP/1.1 only (RFC 9112 section 6.1)"),
               false;
    f->state = te_count > 0 ? F_CHUNK_LINE : cl > 0 ? F_BODY : F_HEAD;
    f->left = cl;
    return true;
}

/* The chunk-size line [p, p + n): hex digits, then nothing or extensions after ';'. */
static bool check_chunk_line(struct cu_frame *f, const uint8_t *p, size_t n)
{
    size_t i = 0;
    uint64_t size = 0;
    while (i < n && cu_hex_digit((char)p[i]) >= 0) {
        size = size * 16 + (uint64_t)cu_hex_digit((char)p[i]);
        i++;
        if (i > CU_FRAME_CHUNK_DIGITS)
            return refuse(f, 400, "a chunk size is too large"), false;
    }
    if (i == 0 || (i < n && p[i] != ';'))
        return refuse(f, 400, "a chunk size line is not hex digits and extensions"), false;
    for (; i < n; i++) {
        if (ctl(p[i]))
            return refuse(f, 400, "a chunk extension holds a control byte"), false;
    }
    f->left = size;
    f->state = size > 0 ? F_CHUNK_DATA : F_TRAILER;
    f->trailer = 0;
    f->fields = 0;
    return true;
}

/* Where the stream's pending head ends (after its CRLF CRLF), or 0 when it is incomplete; a
 * bare LF refuses it. Searches from f->scanned, which it moves on. */
static size_t head_end(struct cu_frame *f, const uint8_t *p, size_t n, bool *refused)
{
    size_t from = f->scanned;
    *refused = false;
    for (;;) {
        const uint8_t *lf = from < n ? memchr(p + from, '\n', n - from) : NULL;
        if (lf == NULL) {
            f->scanned = n;
            return 0;
        }
        size_t i = (size_t)(lf - p);
        if (i == 0 || p[i - 1] != '\r') {
            *refused = true;
            refuse(f, 400, "a line of the request head ends without CR");
            return 0;
        }
        if (i >= 3 && p[i - 2] == '\n' && p[i - 3] == '\r')
            return i + 1;
        from = i + 1;
    }
}

/* Passes the bytes of the body or chunk in hand, up to f->left. */
static size_t take(struct cu_frame *f, size_t avail)
{
    size_t k = f->left < avail ? (size_t)f->left : avail;
    f->left -= k;
    return k;
}

size_t cu_frame_scan(struct cu_frame *f, const uint8_t *p, size_t n, bool *end)
{
    size_t off = 0;
    bool bare, refused;
    *end = false;
    while (off < n && f->status == 0 && !*end) {
        const uint8_t *q = p + off;
        size_t m = n - off, e, win, lim;
        switch (f->state) {
        case F_HEAD:
            /* Empty lines before a request line (RFC 9112 section 2.2) are passed on: the
             * library skips them. */
            if (q[0] == '\r' && m < 2)
                return off;
            if (q[0] == '\r' && q[1] == '\n') {
                if (++f->blanks > CU_FRAME_BLANK_LINES_MAX)
                    return off + refuse(f, 400, "more than 8 empty lines before a request line");
                off += 2;
                f->scanned = 0;
                break;
            }
            /* Only the first head_max bytes are searched, so that the verdict on a long head
             * does not depend on how its bytes arrived. */
            e = head_end(f, q, m < f->head_max ? m : f->head_max, &refused);
            if (refused)
                return off;
            if (e == 0) {
                if (m > f->head_max)
                    refuse(f, 431, "the request head is larger than the limit");
                return off;
            }
            f->scanned = 0;
            if (!check_head(f, q, e))
                return off;
            f->heads++;
            f->blanks = 0;
            off += e;
            *end = f->state == F_HEAD;
            break;
        case F_BODY:
            off += take(f, m);
            if (f->left == 0) {
                f->state = F_HEAD;
                *end = true;
            }
            break;
        case F_CHUNK_LINE:
            win = m < CU_FRAME_CHUNK_LINE_MAX + 2 ? m : CU_FRAME_CHUNK_LINE_MAX + 2;
            e = line_end(q, win, f->scanned, &bare);
            if (bare)
                return off + refuse(f, 400, "a chunk size line ends without CR");
            if (e == win) {
                f->scanned = win;
                if (m > CU_FRAME_CHUNK_LINE_MAX + 1)
                    refuse(f, 400, "a chunk size line is longer than the limit");
                return off;
            }
            f->scanned = 0;
            if (e > CU_FRAME_CHUNK_LINE_MAX)
                return off + refuse(f, 400, "a chunk size line is longer than the limit");
            if (!check_chunk_line(f, q, e))
                return off;
            off += e + 2;
            break;
        case F_CHUNK_DATA:
            off += take(f, m);
            if (f->left == 0)
                f->state = F_CHUNK_END;
            break;
        case F_CHUNK_END:
            if (q[0] != '\r' || (m >= 2 && q[1] != '\n'))
                return off + refuse(f, 400, "a chunk's data is not followed by CRLF");
            if (m < 2)
                return off;
            off += 2;
            f->state = F_CHUNK_LINE;
            break;
        case F_TRAILER:
            lim = f->head_max - f->trailer + 2; /* a line that still fits, with its CRLF */
            win = m < lim ? m : lim;
            e = line_end(q, win, f->scanned, &bare);
            if (bare)
                return off + refuse(f, 400, "a trailer line ends without CR");
            if (e == win) {
                f->scanned = win;
                if (m >= lim)
                    refuse(f, 431, "the chunked body's trailer is larger than the limit");
                return off;
            }
            f->scanned = 0;
            if (e > 0) {
                size_t name_len;
                const char *why = field_error(q, e, &name_len);
                if (why != NULL)
                    return off + refuse(f, 400, why);
                f->trailer += e + 2;
                if (++f->fields > CU_FRAME_FIELDS_MAX || f->trailer > f->head_max)
                    return off + refuse(f, 431,
                                        "the chunked body's trailer is larger than the "
                                        "limit");
            } else {
                f->state = F_HEAD;
                *end = true;
            }
            off += e + 2;
            break;
        default:
            return off + refuse(f, 400, "the request stream is out of step");
        }
    }
    return off;
}
