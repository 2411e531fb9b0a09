/*
 * test_http.c - route matching (404 vs 405, path parameters and their limits), problem
 * documents, and the metrics exposition.
 */
#include "cu_test.h"

#include <jansson.h>

#include "api/bucket.h"
#include "api/http.h"
#include "api/limit.h"
#include "api/metrics.h"

static enum cu_err h(struct cu_req *req, struct cu_resp *resp)
{
    (void)req;
    (void)resp;
    return CU_OK;
}

static const struct cu_route table[] = {
    {CU_GET, 0, "/v1/health", h, 0},
    {CU_GET, 0, "/v1/things/{id}", h, 0},
    {CU_DELETE, 0, "/v1/things/{id}", h, 0},
    {CU_GET, 0, "/v1/things/{id}/parts/{part}", h, 0},
};
#define NT (sizeof(table) / sizeof(table[0]))

static void test_match(void **state)
{
    struct cu_req req;
    unsigned allowed = 0;
    (void)state;
    memset(&req, 0, sizeof(req));

    assert_ptr_equal(cu_route_match(table, NT, CU_GET, "/v1/health", &req, &allowed), &table[0]);
    assert_ptr_equal(cu_route_match(table, NT, CU_DELETE, "/v1/things/abc", &req, &allowed),
                     &table[2]);
    assert_string_equal(req.params[0], "abc");
    assert_int_equal(req.nparams, 1);
    assert_ptr_equal(cu_route_match(table, NT, CU_GET, "/v1/things/a/parts/b", &req, &allowed),
                     &table[3]);
    assert_string_equal(req.params[0], "a");
    assert_string_equal(req.params[1], "b");
    assert_int_equal(req.nparams, 2);
}

static void test_not_found_vs_method(void **state)
{
    struct cu_req req;
    unsigned allowed = 99;
    (void)state;
    memset(&req, 0, sizeof(req));

    assert_null(cu_route_match(table, NT, CU_GET, "/v1/nope", &req, &allowed));
    assert_int_equal(allowed, 0);
    assert_null(cu_route_match(table, NT, CU_GET, "/v1/health/", &req, &allowed));
    assert_int_equal(allowed, 0);
    assert_null(cu_route_match(table, NT, CU_GET, "/v1/things/", &req, &allowed));
    assert_int_equal(allowed, 0);
    assert_null(cu_route_match(table, NT, CU_POST, "/v1/things/x", &req, &allowed));
    assert_int_equal(allowed, CU_GET | CU_DELETE);
    char text[64];
    cu_methods_format(allowed, text, sizeof(text));
    assert_string_equal(text, "GET, DELETE");
}

static void test_param_length_limit(void **state)
{
    struct cu_req req;
    unsigned allowed = 0;
    char path[CU_PATH_PARAM_MAX + 32];
    (void)state;
    memset(&req, 0, sizeof(req));

    snprintf(path, sizeof(path), "/v1/things/");
    memset(path + 11, 'x', CU_PATH_PARAM_MAX - 1);
    path[11 + CU_PATH_PARAM_MAX - 1] = '\0';
    assert_non_null(cu_route_match(table, NT, CU_GET, path, &req, &allowed));
    path[11 + CU_PATH_PARAM_MAX - 1] = 'x';
    path[11 + CU_PATH_PARAM_MAX] = '\0';
    assert_null(cu_route_match(table, NT, CU_GET, path, &req, &allowed));
}

static void test_methods(void **state)
{
    (void)state;
    assert_int_equal(cu_method_parse("GET"), CU_GET);
    assert_int_equal(cu_method_parse("DELETE"), CU_DELETE);
    assert_int_equal(cu_method_parse("get"), CU_METHOD_OTHER);
    assert_int_equal(cu_method_parse("BREW"), CU_METHOD_OTHER);
}

static void test_problem(void **state)
{
    struct cu_req req;
    struct cu_resp resp;
    json_error_t jerr;
    (void)state;
    memset(&req, 0, sizeof(req));
    memset(&resp, 0, sizeof(resp));
    req.path = "/v1/\"quoted\"";
    snprintf(req.id, sizeof(req.id), "0123456789abcdef0123456789abcdef");
    cu_buf_init(&resp.body, 1 << 16);

    assert_int_equal(cu_resp_fail(&resp, CU_E_NOT_FOUND, "no route for %s", req.path),
                     CU_E_NOT_FOUND);
    cu_problem_render(&resp, &req);
    assert_int_equal(resp.status, 404);
    assert_string_equal(resp.content_type, "application/problem+json");
    json_t *v = json_loads(cu_buf_cstr(&resp.body), 0, &jerr);
    assert_non_null(v);
    assert_string_equal(json_string_value(json_object_get(v, "type")),
                        "urn:custodia:problem:not_found");
    assert_int_equal(json_integer_value(json_object_get(v, "status")), 404);
    assert_string_equal(json_string_value(json_object_get(v, "detail")),
                        "no route for /v1/\"quoted\"");
    assert_string_equal(json_string_value(json_object_get(v, "instance")), "/v1/\"quoted\"");
    assert_string_equal(json_string_value(json_object_get(v, "request_id")), req.id);
    assert_non_null(json_string_value(json_object_get(v, "title")));
    json_decref(v);
    cu_buf_free(&resp.body);
}

static void test_metrics(void **state)
{
    struct cu_metrics *m = NULL;
    struct cu_buf out;
    (void)state;
    assert_int_equal(cu_metrics_new(table, NT, &m), CU_OK);
    cu_metrics_observe(m, 0, 200, 300000);     /* 0.3 ms */
    cu_metrics_observe(m, 0, 200, 3000000000); /* 3 s */
    cu_metrics_observe(m, NT, 404, 1000);
    cu_metrics_observe(m, 1, 418, 1000);
    cu_buf_init(&out, 1 << 20);
    struct cu_committer_stats cs = {.groups = 3,
                                    .commits = 2,
                                    .units = 7,
                                    .failed = 1,
                                    .retries = 4,
                                    .size_sum = 8,
                                    .latency_sum_us = 3500};
    for (size_t i = 0; i < CU_COMMITTER_SIZE_BUCKETS; i++)
        cs.size_count[i] = cu_committer_size_le[i] >= 4 ? 3 : 1; /* sizes 1, 3, 4 */
    for (size_t i = 0; i < CU_COMMITTER_LATENCY_BUCKETS; i++)
        cs.latency_count[i] = cu_committer_latency_le_us[i] >= 2000 ? 2 : 1;
    assert_int_equal(cu_metrics_render(m, &out, 1700000000000LL, &cs), CU_OK);
    const char *t = cu_buf_cstr(&out);
    assert_non_null(strstr(t, "custodia_commit_group_units_bucket{le=\"1\"} 1\n"));
    assert_non_null(strstr(t, "custodia_commit_group_units_bucket{le=\"4\"} 3\n"));
    assert_non_null(strstr(t, "custodia_commit_group_units_bucket{le=\"+Inf\"} 3\n"));
    assert_non_null(strstr(t, "custodia_commit_group_units_sum 8\n"));
    assert_non_null(strstr(t, "custodia_commit_seconds_bucket{le=\"0.002000\"} 2\n"));
    assert_non_null(strstr(t, "custodia_commit_seconds_sum 0.003500\n"));
    assert_non_null(strstr(t, "custodia_commit_units_total{outcome=\"failed\"} 1\n"));
    assert_non_null(strstr(t, "custodia_commit_retries_total 4\n"));
    assert_non_null(strstr(
        t, "custodia_http_requests_total{route=\"/v1/health\",method=\"GET\",status=\"200\"} 2\n"));
    assert_non_null(strstr(
        t, "custodia_http_requests_total{route=\"unmatched\",method=\"\",status=\"404\"} 1"));
    assert_non_null(strstr(t, "status=\"other\"} 1"));
    assert_non_null(strstr(t, "custodia_http_request_duration_seconds_bucket{route=\"/v1/health\","
                              "method=\"GET\",le=\"0.0005\"} 1\n"));
    assert_non_null(strstr(t, "custodia_http_request_duration_seconds_bucket{route=\"/v1/health\","
                              "method=\"GET\",le=\"2.5\"} 1\n"));
    assert_non_null(strstr(t, "custodia_http_request_duration_seconds_bucket{route=\"/v1/health\","
                              "method=\"GET\",le=\"+Inf\"} 2\n"));
    assert_non_null(strstr(t, "custodia_http_request_duration_seconds_sum{route=\"/v1/health\","
                              "method=\"GET\"} 3.000300000\n"));
    assert_non_null(strstr(t, "custodia_start_time_seconds 1700000000.000\n"));
    cu_buf_free(&out);
    cu_metrics_free(m);
}

static void test_limiter(void **state)
{
    struct cu_limiter *l = NULL;
    uint64_t held = 99;
    int64_t t = 1700000000000LL;
    (void)state;
    assert_int_equal(cu_limiter_new(3, &l), CU_OK);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(cu_limiter_fail(l, "192.0.2.1", t + i, &held), CU_LIMIT_ALLOW);
        assert_int_equal(held, 0);
    }
    assert_int_equal(cu_limiter_fail(l, "192.0.2.1", t + 10, &held), CU_LIMIT_SUPPRESS);
    assert_int_equal(cu_limiter_fail(l, "192.0.2.1", t + 20, &held), CU_LIMIT_SUPPRESS);
    /* Another client is counted apart. */
    assert_int_equal(cu_limiter_fail(l, "192.0.2.2", t + 20, &held), CU_LIMIT_ALLOW);
    /* A minute later the first client is audited again, with what was held back. */
    assert_int_equal(cu_limiter_fail(l, "192.0.2.1", t + 60000, &held), CU_LIMIT_ALLOW);
    assert_int_equal(held, 2);
    assert_int_equal(cu_limiter_fail(l, "192.0.2.1", t + 60001, &held), CU_LIMIT_ALLOW);
    assert_int_equal(held, 0);
    cu_limiter_free(l);
    /* 0 turns the limit off. */
    assert_int_equal(cu_limiter_new(0, &l), CU_OK);
    for (int i = 0; i < 100; i++)
        assert_int_equal(cu_limiter_fail(l, "192.0.2.1", t, &held), CU_LIMIT_ALLOW);
    cu_limiter_free(l);
}

/* Retry-After lives in the response: two responses made one after the other on one thread
 * keep their own values (a lane thread makes many; another thread sends each). */
static void test_retry_after_in_response(void **state)
{
    struct cu_resp a = {0}, b = {0};

    (void)state;
    cu_resp_retry_after(&a, 30);
    cu_resp_retry_after(&b, 900);
    assert_int_equal(a.nheaders, 1);
    assert_string_equal(a.headers[0][0], "Retry-After");
    assert_string_equal(a.headers[0][1], "30");
    assert_string_equal(b.headers[0][1], "900");
    assert_ptr_equal(a.headers[0][1], a.retry_after);
}

/* json_body(ct, detail): cu_req_json on the body {"a": 1} sent with Content-Type ct (NULL for
 * none); its result, with the problem detail copied into detail (CU_DETAIL_BYTES). */
static enum cu_err json_body(const char *ct, char *detail)
{
    struct cu_req req;
    struct cu_resp resp;
    json_t *v = NULL;
    enum cu_err rc;

    memset(&req, 0, sizeof(req));
    memset(&resp, 0, sizeof(resp));
    req.content_type = ct;
    cu_buf_init(&req.body, 1 << 10);
    assert_int_equal(cu_buf_append_str(&req.body, "{\"a\": 1}"), CU_OK);
    rc = cu_req_json(&req, &resp, &v);
    if (rc == CU_OK)
        assert_int_equal(json_integer_value(json_object_get(v, "a")), 1);
    else
        assert_null(v);
    assert_int_equal(resp.err, rc);
    snprintf(detail, CU_DETAIL_BYTES, "%s", resp.detail);
    json_decref(v);
    cu_buf_free(&req.body);
    return rc;
}

/* A JSON body is read as UTF-8, so it must not declare another charset: any other charset,
 * in any case, quoted or not, is a 415 that says so; no charset, or utf-8 however written, is
 * accepted; parameters that do not parse, and other media types, are 415s too. */
static void test_json_charset(void **state)
{
    static const char *const accepted[] = {
        "application/json",
        "Application/JSON",
        "application/json; charset=utf-8",
        "application/json;charset=\"UTF-8\"",
        "application/json ; Charset=Utf-8 ",
        "application/json;\tcharset=\"utf\\-8\"",
        "application/json;",
        "application/json; profile=x; charset=utf-8",
    };
    static const char *const other_charset[] = {
        "application/json; charset=utf-16",
        "application/json; charset=UTF-16LE",
        "application/json;charset=\"utf-16\"",
        "application/json; CHARSET=iso-8859-1",
        "application/json; charset=utf8",
        "application/json; charset=\"\"",
        "application/json; charset=utf-8; charset=utf-16",
        "application/json;; charset=latin1",
    };
    static const char *const malformed[] = {
        "application/json; charset",
        "application/json; charset=",
        "application/json; charset=\"utf-8",
        "application/json; charset=utf-8 x",
        "application/json x",
        "application/json; =utf-8",
    };
    static const char *const other_type[] = {
        NULL, "", "text/plain", "application/jsonx", "application/problem+json", "text/json",
    };
    char detail[CU_DETAIL_BYTES];
    (void)state;

    for (size_t i = 0; i < sizeof(accepted) / sizeof(accepted[0]); i++) {
        if (json_body(accepted[i], detail) != CU_OK)
            fail_msg("refused: %s (%s)", accepted[i], detail);
    }
    for (size_t i = 0; i < sizeof(other_charset) / sizeof(other_charset[0]); i++) {
        if (json_body(other_charset[i], detail) != CU_E_MEDIA_TYPE)
            fail_msg("accepted: %s", other_charset[i]);
        assert_non_null(strstr(detail, "UTF-8"));
        assert_non_null(strstr(detail, "charset"));
    }
    for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++) {
        if (json_body(malformed[i], detail) != CU_E_MEDIA_TYPE)
            fail_msg("accepted: %s", malformed[i]);
        assert_non_null(strstr(detail, "do not parse"));
    }
    for (size_t i = 0; i < sizeof(other_type) / sizeof(other_type[0]); i++) {
        if (json_body(other_type[i], detail) != CU_E_MEDIA_TYPE)
            fail_msg("accepted: %s", other_type[i] ? other_type[i] : "(none)");
        assert_string_equal(detail, "the body must be application/json");
    }
    assert_int_equal(cu_err_http_status(CU_E_MEDIA_TYPE), 415);
}

/* Scopes are answered as an array of names, in bit order; none is an empty array. */
static void test_scopes_json(void **state)
{
    json_t *a = cu_resp_scopes(0);
    char *t;
    (void)state;

    assert_true(json_is_array(a) && json_array_size(a) == 0);
    json_decref(a);
    a = cu_resp_scopes(CU_SCOPE_STAFF_WRITE | CU_SCOPE_CUSTOMERS_READ | (1ULL << 63));
    t = json_dumps(a, JSON_COMPACT);
    assert_string_equal(t, "[\"customers.read\",\"staff.write\"]");
    free(t);
    json_decref(a);
}

/* Every route declares what it needs: a permission (one known permission, one bit), or a
 * session of its own caller (the /v1/me and /v1/auth routes a signed-in subject uses on
 * itself), or, for the approval routes alone, any signed-in staff member or key (the handler
 * decides on the request); only the routes listed here are open to anyone. Every route on a
 * customer is decided again on the customer (CU_ROUTE_CUSTOMER), and only those are. */
static void test_every_route_declares_a_permission(void **state)
{
    /* open to anyone: what they answer is public, or the sign-in itself */
    static const char *const open_routes[] = {"/v1/health", "/v1/auth/login", "/v1/auth/mfa",
                                              "/v1/security-tips"};
    size_t n = 0;
    const struct cu_route *r = cu_routes(&n);
    (void)state;

    assert_true(n > 30);
    for (size_t i = 0; i < n; i++) {
        bool open = false, on_customer = strncmp(r[i].pattern, "/v1/customers", 13) == 0 ||
                                         strncmp(r[i].pattern, "/v1/accounts", 12) == 0;
        for (size_t k = 0; k < sizeof(open_routes) / sizeof(open_routes[0]); k++)
            open = open || strcmp(r[i].pattern, open_routes[k]) == 0;
        if (r[i].permission != 0) {
            assert_true((r[i].permission & (r[i].permission - 1)) == 0);
            if (cu_apikey_scope_name(r[i].permission) == NULL)
                fail_msg("%s names an unknown permission", r[i].pattern);
            if (r[i].flags & CU_ROUTE_SESSION)
                fail_msg("%s: a permission route is for keys and staff alike", r[i].pattern);
        } else if ((r[i].flags & CU_ROUTE_SIGNED) &&
                   strncmp(r[i].pattern, "/v1/approvals", 13) != 0) {
            fail_msg("%s: only the approval routes decide who may use them in the handler",
                     r[i].pattern);
        } else if (!(r[i].flags & (CU_ROUTE_SESSION | CU_ROUTE_SIGNED)) && !open) {
            char m[64];
            cu_methods_format(r[i].method, m, sizeof(m));
            fail_msg("%s %s declares no permission and is not a session route", m, r[i].pattern);
        }
        if (on_customer != ((r[i].flags & CU_ROUTE_CUSTOMER) != 0))
            fail_msg("%s: a customer route must be decided on the customer, and only one",
                     r[i].pattern);
    }
}

/* Token buckets: a burst at once, then the rate; Retry-After is the whole seconds until the
 * next token; keys apart; refilled buckets lose nothing when forgotten; a rate of 0 is off. */
static void test_buckets(void **state)
{
    struct cu_buckets *b = NULL;
    int64_t t = 1000000, retry = 0;
    char key[32];
    (void)state;

    assert_int_equal(cu_buckets_new(0, 5, &b), CU_OK);
    assert_null(b);
    assert_true(cu_buckets_take(b, "any", t, &retry));
    assert_int_equal(cu_buckets_new(6, 0, &b), CU_E_INVALID);
    assert_int_equal(cu_buckets_new(6, 3, &b), CU_OK); /* one every 10 s, 3 at once */
    for (int i = 0; i < 3; i++)
        assert_true(cu_buckets_take(b, "a", t, &retry));
    assert_false(cu_buckets_take(b, "a", t, &retry));
    assert_int_equal(retry, 10);
    assert_false(cu_buckets_take(b, "a", t + 4000, &retry));
    assert_int_equal(retry, 6);
    assert_true(cu_buckets_take(b, "b", t, &retry)); /* another key */
    assert_false(cu_buckets_take(b, "a", t + 9999, &retry));
    assert_int_equal(retry, 1);
    assert_true(cu_buckets_take(b, "a", t + 10000, &retry));
    assert_false(cu_buckets_take(b, "a", t + 10000, &retry));
    /* a long pause refills to the burst, no more */
    t += 10LL * 365 * 86400 * 1000;
    for (int i = 0; i < 3; i++)
        assert_true(cu_buckets_take(b, "a", t, &retry));
    assert_false(cu_buckets_take(b, "a", t, &retry));
    /* many other keys do not reset a drained one more than the table must */
    for (int i = 0; i < 200000; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        (void)cu_buckets_take(b, key, t, &retry);
    }
    assert_false(cu_buckets_take(b, "a", t + 1, &retry) && cu_buckets_take(b, "a", t + 1, &retry) &&
                 cu_buckets_take(b, "a", t + 1, &retry) && cu_buckets_take(b, "a", t + 1, &retry));
    cu_buckets_free(b);
}

/* Limits count an IPv6 client by its /64 and an IPv4 one (mapped or not) whole. */
static void test_rate_client(void **state)
{
    char a[CU_RATE_CLIENT_BYTES], b[CU_RATE_CLIENT_BYTES];
    (void)state;
    cu_rate_client("2001:db8:1:2:aaaa::1", a);
    cu_rate_client("2001:db8:1:2:ffff:1:2:3", b);
    assert_string_equal(a, "2001:db8:1:2::/64");
    assert_string_equal(a, b);
    cu_rate_client("2001:db8:1:3::1", b);
    assert_string_not_equal(a, b);
    cu_rate_client("::ffff:192.0.2.7", a);
    assert_string_equal(a, "192.0.2.7");
    cu_rate_client("192.0.2.7", b);
    assert_string_equal(a, b);
    cu_rate_client("192.0.2.8", b);
    assert_string_not_equal(a, b);
    cu_rate_client("not an address", a);
    assert_string_equal(a, "not an address");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_match),
        cmocka_unit_test(test_every_route_declares_a_permission),
        cmocka_unit_test(test_not_found_vs_method),
        cmocka_unit_test(test_param_length_limit),
        cmocka_unit_test(test_methods),
        cmocka_unit_test(test_problem),
        cmocka_unit_test(test_json_charset),
        cmocka_unit_test(test_scopes_json),
        cmocka_unit_test(test_retry_after_in_response),
        cmocka_unit_test(test_limiter),
        cmocka_unit_test(test_buckets),
        cmocka_unit_test(test_rate_client),
        cmocka_unit_test(test_metrics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
