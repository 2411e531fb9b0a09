/*
 * test_frame.c - the request stream's framing, checked before libmicrohttpd reads it: whole
 * requests pass one at a time (by Content-Length, chunked with extensions and trailers,
 * without a body, after empty lines), whatever the pieces they arrive in; each malformed head
 * or body the library would answer with a page of its own is refused with its status, at the
 * right byte, and a refusal stays.
 */
#include "cu_test.h"

#include "api/frame.h"

#define HEAD_MAX 1024
#define BUDGET (1u << 20)

/* Scans s whole, one call per request; returns how many requests passed and sets *passed to
 * the bytes passed. */
static unsigned scan_all(struct cu_frame *f, const char *s, size_t n, size_t *passed)
{
    unsigned requests = 0;
    size_t off = 0;
    for (;;) {
        bool end;
        size_t k = cu_frame_scan(f, (const uint8_t *)s + off, n - off, &end);
        off += k;
        if (end)
            requests++;
        if (!end || f->status != 0 || off == n)
            break;
    }
    *passed = off;
    return requests;
}

/* The same, the bytes given one at a time: a byte is given again with the next while the
 * scanner passes none (the caller keeps what is not passed). */
static unsigned scan_bytewise(struct cu_frame *f, const char *s, size_t n, size_t *passed)
{
    unsigned requests = 0;
    size_t off = 0, have = 0;
    while (have < n && f->status == 0) {
        bool end;
        have++;
        size_t k = cu_frame_scan(f, (const uint8_t *)s + off, have - off, &end);
        off += k;
        requests += end;
        while (end && f->status == 0 && off < have) {
            k = cu_frame_scan(f, (const uint8_t *)s + off, have - off, &end);
            off += k;
            requests += end;
        }
    }
    *passed = off;
    return requests;
}

static void test_whole_requests(void **state)
{
    static const struct {
        const char *s;
        unsigned requests;
    } ok[] = {
        {"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n", 1},
        {"GET /v1/health HTTP/1.0\r\n\r\n", 1},
        {"POST /v1/x HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n{}{}", 1},
        {"POST /v1/x HTTP/1.1\r\nHost: x\r\ncontent-length:  2\r\n\r\n{}"
         "GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n",
         2},
        {"POST /v1/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n"
         "2\r\n{}\r\n1a;name=\"v\"\r\n"
         "abcdefghijklmnopqrstuvwxyz\r\n0\r\nX-T: 1\r\n\r\n",
         1},
        {"POST /v1/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
         "\r\nGET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n",
         2},
        {"GET /?a&b&c&d&e&f&g&h&i&j&k&l&m&n&o&p&q&r&s&t&u&v&w&x&y&z&1&2&3&4&5&6 HTTP/1.1\r\n"
         "Host: x\r\n\r\n",
         1},
        {"\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\n\r\n", 1},
        {"GET /v1/customers?limit=5&after=%41 HTTP/1.1\r\nHost: x\r\nX-Empty:\r\n"
         "X-Obs: caf\xc3\xa9\t!\r\n\r\n",
         1},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        struct cu_frame f;
        size_t n = strlen(ok[i].s), passed;
        cu_frame_init(&f, HEAD_MAX, BUDGET);
        unsigned got = scan_all(&f, ok[i].s, n, &passed);
        if (f.status != 0 || got != ok[i].requests || passed != n)
            fail_msg("case %zu: status %d (%s), %u requests, %zu of %zu bytes", i, f.status,
                     f.detail, got, passed, n);
        cu_frame_init(&f, HEAD_MAX, BUDGET);
        got = scan_bytewise(&f, ok[i].s, n, &passed);
        if (f.status != 0 || got != ok[i].requests || passed != n)
            fail_msg("case %zu bytewise: status %d (%s), %u requests, %zu of %zu", i, f.status,
                     f.detail, got, passed, n);
    }
}

/* A request's bytes pass as they come, one request at a time: the scan stops at its end. */
static void test_one_request_at_a_time(void **state)
{
    static const char two[] = "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n"
                              "0123456789GET /b HTTP/1.1\r\nHost: x\r\n\r\n";
    size_t head = strlen("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n");
    struct cu_frame f;
    bool end;
    (void)state;
    cu_frame_init(&f, HEAD_MAX, BUDGET);
    /* Half a head: nothing passes. */
    assert_int_equal(cu_frame_scan(&f, (const uint8_t *)two, head - 3, &end), 0);
    assert_false(end);
    /* The head and 4 bytes of the body. */
    assert_int_equal(cu_frame_scan(&f, (const uint8_t *)two, head + 4, &end), head + 4);
    assert_false(end);
    assert_int_equal(f.heads, 1);
    /* The rest of the body, not the next request. */
    assert_int_equal(
        cu_frame_scan(&f, (const uint8_t *)two + head + 4, strlen(two) - head - 4, &end), 6);
    assert_true(end);
    size_t rest = strlen(two) - head - 10;
    assert_int_equal(cu_frame_scan(&f, (const uint8_t *)two + head + 10, rest, &end), rest);
    assert_true(end);
    assert_int_equal(f.heads, 2);
    assert_int_equal(f.status, 0);
}

static void test_refused(void **state)
{
    static const struct {
        const char *s;
        int status;
        size_t passed; /* the bytes passed before the refusal */
        bool in_body;
        const char *detail;
    } bad[] = {
        {"GET /v1/health HTTP/2.0\r\nHost: x\r\n\r\n", 505, 0, false, "HTTP/1.1"},
        {"GET /v1/health HTTP/0.9\r\n\r\n", 505, 0, false, "HTTP/1.1"},
        {"GET /v1/health HTTP/1.1x\r\n\r\n", 400, 0, false, "HTTP version"},
        {"GET /v1/health\r\n\r\n", 400, 0, false, "method, a target"},
        {"GET  HTTP/1.1\r\n\r\n", 400, 0, false, "method, a target"},
        {" GET / HTTP/1.1\r\n\r\n", 400, 0, false, "method, a target"},
        {"GET /v1/he alth HTTP/1.1\r\nHost: x\r\n\r\n", 400, 0, false, "visible ASCII"},
        {"GET /v1/health%00x HTTP/1.1\r\nHost: x\r\n\r\n", 400, 0, false, "control byte"},
        {"GET / HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n", 400, 0, false, "no colon"},
        {"GET / HTTP/1.1\r\nHost x\r\n\r\n", 400, 0, false, "not a token"},
        {"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400, 0, false, "not a token"},
        {"GET / HTTP/1.1\r\n: x\r\n\r\n", 400, 0, false, "not a token"},
        {"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", 400, 0, false, "obs-fold"},
        {"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", 400, 0, false, "control byte"},
        {"GET / HTTP/1.1\nHost: x\r\n\r\n", 400, 0, false, "without CR"},
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400, 0, false, "number"},
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400, 0, false, "number"},
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1 2\r\n\r\n", 400, 0, false, "number"},
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000000000000\r\n\r\n", 400, 0, false,
         "number"},
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n", 400, 0, false, "number"},
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}", 400, 0,
         false, "once"},
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n",
         400, 0, false, "both"},
        {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 400, 0, false,
         "chunked"},
        {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, 0, false,
         "HTTP/1.1 only"},
        {"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/3.0\r\n\r\n", 505, 27, false, "HTTP/1.1"},
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2 \r\n\r\n{}", 400, 0, false,
         "no whitespace"},
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\t\r\n\r\n{}", 400, 0, false,
         "no whitespace"},
        {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked \r\n\r\n0\r\n\r\n", 400, 0,
         false, "no whitespace"},
        {"GET /?a&b&c&d&e&f&g&h&i&j&k&l&m&n&o&p&q&r&s&t&u&v&w&x&y&z&1&2&3&4&5&6&7 HTTP/1.1\r\n"
         "Host: x\r\n\r\n",
         400, 0, false, "32 query arguments"},
        {"\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\n\r\n", 400, 16, false,
         "empty lines"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct cu_frame f;
        size_t n = strlen(bad[i].s), passed;
        cu_frame_init(&f, HEAD_MAX, BUDGET);
        (void)scan_all(&f, bad[i].s, n, &passed);
        if (f.status != bad[i].status || passed != bad[i].passed || f.in_body != bad[i].in_body ||
            strstr(f.detail, bad[i].detail) == NULL)
            fail_msg("case %zu: status %d (%s), %zu bytes passed", i, f.status, f.detail, passed);
        /* The same bytes one at a time come to the same refusal at the same byte. */
        cu_frame_init(&f, HEAD_MAX, BUDGET);
        (void)scan_bytewise(&f, bad[i].s, n, &passed);
        if (f.status != bad[i].status || passed != bad[i].passed)
            fail_msg("case %zu bytewise: status %d (%s), %zu bytes passed", i, f.status, f.detail,
                     passed);
        /* A refusal stays. */
        bool end;
        assert_int_equal(cu_frame_scan(&f, (const uint8_t *)"GET / HTTP/1.1\r\n\r\n", 18, &end), 0);
        assert_int_equal(f.status, bad[i].status);
    }
}

/* Malformed chunked bodies: refused after the bytes that framed well, inside the request. */
static void test_chunked_refused(void **state)
{
    static const char head[] = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    static const struct {
        const char *body;
        size_t passed; /* of the body */
        const char *detail;
    } bad[] = {
        {"zz\r\n", 0, "hex digits"},
        {"\r\n", 0, "hex digits"},
        {"2 \r\n{}\r\n0\r\n\r\n", 0, "hex digits"},
        {"2\r\n{}XY", 5, "CRLF"},
        {"2\r\n{}\rX", 5, "CRLF"},
        {"1000000000000000\r\n", 0, "too large"},
        {"2;a=\x01\r\n", 0, "control byte"},
        {"2\n{}\r\n", 0, "without CR"},
        {"0\r\nbad trailer\r\n\r\n", 3, "not a token"},
        {"0\r\nX-T\r\n\r\n", 3, "no colon"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char s[256];
        struct cu_frame f;
        size_t passed, n = (size_t)snprintf(s, sizeof(s), "%s%s", head, bad[i].body);
        cu_frame_init(&f, HEAD_MAX, BUDGET);
        (void)scan_all(&f, s, n, &passed);
        if (f.status != 400 || !f.in_body || passed != strlen(head) + bad[i].passed ||
            strstr(f.detail, bad[i].detail) == NULL)
            fail_msg("case %zu: status %d (%s), %zu bytes passed", i, f.status, f.detail, passed);
        cu_frame_init(&f, HEAD_MAX, BUDGET);
        (void)scan_bytewise(&f, s, n, &passed);
        if (f.status != 400 || passed != strlen(head) + bad[i].passed)
            fail_msg("case %zu bytewise: status %d (%s), %zu bytes passed", i, f.status, f.detail,
                     passed);
    }
}

/* Heads past the limit are 431, however they come; so are too many header lines, and a
 * trailer past the limit. A long chunk line is 400. */
static void test_limits(void **state)
{
    char s[4096];
    struct cu_frame f;
    size_t passed, n;
    (void)state;

    n = (size_t)snprintf(s, sizeof(s), "GET / HTTP/1.1\r\nHost: x\r\nX-Big: %0*d\r\n\r\n", HEAD_MAX,
                         0);
    cu_frame_init(&f, HEAD_MAX, BUDGET);
    (void)scan_all(&f, s, n, &passed);
    assert_int_equal(f.status, 431);
    /* An incomplete head past the limit is refused before its end comes. */
    cu_frame_init(&f, HEAD_MAX, BUDGET);
    (void)scan_all(&f, s, HEAD_MAX + 1, &passed);
    assert_int_equal(f.status, 431);
    cu_frame_init(&f, HEAD_MAX, BUDGET);
    (void)scan_all(&f, s, HEAD_MAX, &passed);
    assert_int_equal(f.status, 0);
    /* A head of exactly the limit passes. */
    n = (size_t)snprintf(s, sizeof(s), "GET / HTTP/1.1\r\nX: %0*d\r\n\r\n",
                         HEAD_MAX - (int)strlen("GET / HTTP/1.1\r\nX: \r\n\r\n"), 0);
    assert_int_equal(n, HEAD_MAX);
    cu_frame_init(&f, HEAD_MAX, BUDGET);
    assert_int_equal(scan_all(&f, s, n, &passed), 1);
    assert_int_equal(passed, n);

    n = (size_t)snprintf(s, sizeof(s), "GET / HTTP/1.1\r\n");
    for (int i = 0; i <= CU_FRAME_FIELDS_MAX; i++)
        n += (size_t)snprintf(s + n, sizeof(s) - n, "A:\r\n");
    n += (size_t)snprintf(s + n, sizeof(s) - n, "\r\n");
    cu_frame_init(&f, sizeof(s), BUDGET);
    (void)scan_all(&f, s, n, &passed);
    assert_int_equal(f.status, 431);
    assert_non_null(strstr(f.detail, "header lines"));

    n = (size_t)snprintf(s, sizeof(s),
                         "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1;%0*d\r\n",
                         CU_FRAME_CHUNK_LINE_MAX, 0);
    cu_frame_init(&f, HEAD_MAX, BUDGET);
    (void)scan_all(&f, s, n, &passed);
    assert_int_equal(f.status, 400);
    assert_non_null(strstr(f.detail, "longer than the limit"));

    n = (size_t)snprintf(s, sizeof(s),
                         "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: %0*d\r\n",
                         HEAD_MAX, 0);
    cu_frame_init(&f, HEAD_MAX, BUDGET);
    (void)scan_all(&f, s, n, &passed);
    assert_int_equal(f.status, 431);
    assert_true(f.in_body);
}

/* A head is refused when its bytes and the library's records (a header line, a cookie, a query
 * argument each) would pass the pool's budget. */
static void test_budget(void **state)
{
    char s[2048];
    struct cu_frame f;
    size_t passed, n;
    (void)state;
    /* 2 + 10 fields: 2 header lines, 9 cookies, and the head's bytes. */
    n = (size_t)snprintf(s, sizeof(s),
                         "GET / HTTP/1.1\r\nHost: x\r\nCookie: a;b;c;d;e;f;g;h;i\r\n\r\n");
    cu_frame_init(&f, HEAD_MAX, n + 10 * CU_FRAME_FIELD_COST);
    assert_int_equal(scan_all(&f, s, n, &passed), 1);
    assert_int_equal(f.status, 0);
    cu_frame_init(&f, HEAD_MAX, n + 10 * CU_FRAME_FIELD_COST - 1);
    (void)scan_all(&f, s, n, &passed);
    assert_int_equal(f.status, 431);
    assert_non_null(strstr(f.detail, "cookies"));
    /* Query arguments count too. */
    n = (size_t)snprintf(s, sizeof(s), "GET /?a=1&b=2&c=3 HTTP/1.1\r\n\r\n");
    cu_frame_init(&f, HEAD_MAX, n + 3 * CU_FRAME_FIELD_COST);
    assert_int_equal(scan_all(&f, s, n, &passed), 1);
    cu_frame_init(&f, HEAD_MAX, n + 3 * CU_FRAME_FIELD_COST - 1);
    (void)scan_all(&f, s, n, &passed);
    assert_int_equal(f.status, 431);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_whole_requests), cmocka_unit_test(test_one_request_at_a_time),
        cmocka_unit_test(test_refused),        cmocka_unit_test(test_chunked_refused),
        cmocka_unit_test(test_limits),         cmocka_unit_test(test_budget),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
