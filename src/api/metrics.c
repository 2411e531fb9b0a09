/*
 * metrics.c - per-route request counts by status and latency histograms.
 *
 * Each route has a fixed row of counters, one per common status and one for the rest, and a
 * histogram with fixed bucket bounds. Updates are relaxed atomic additions; a scrape reads
 * them without stopping the writers, so a scrape may see a request counted in one series and
 * not yet in another, which Prometheus tolerates.
 */
#include "api/metrics.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "base/mem.h"
#include "cu_version.h"

static const int statuses[] = {200, 201, 204, 400, 401, 403, 404, 405,
                               409, 413, 415, 422, 429, 431, 500, 503};
#define NSTATUS (sizeof(statuses) / sizeof(statuses[0]))

/* Bucket upper bounds in microseconds, and as Prometheus prints them in seconds. */
static const uint64_t bucket_us[] = {100,   250,   500,    1000,   2500,   5000,    10000,
                                     25000, 50000, 100000, 250000, 500000, 1000000, 2500000};
static const char *const bucket_le[] = {"0.0001", "0.00025", "0.0005", "0.001", "0.0025",
                                        "0.005",  "0.01",    "0.025",  "0.05",  "0.1",
                                        "0.25",   "0.5",     "1",      "2.5"};
#define NBUCKET (sizeof(bucket_us) / sizeof(bucket_us[0]))

struct route_stats {
    _Atomic uint64_t by_status[NSTATUS + 1]; /* the last slot counts other statuses */
    _Atomic uint64_t buckets[NBUCKET + 1];   /* the last slot is +Inf */
    _Atomic uint64_t sum_ns;
};

struct cu_metrics {
    const struct cu_route *routes;
    size_t n;
    struct route_stats *stats; /* n + 1 */
    atomic_uint_fast64_t conn_events[CU_CONN__COUNT];
    atomic_uint_fast64_t guard_events[CU_GUARD__COUNT];
};

enum cu_err cu_metrics_new(const struct cu_route *routes, size_t n, struct cu_metrics **out)
{
    struct cu_metrics *m = cu_calloc(1, sizeof(*m));
    if (m == NULL)
        return CU_E_NOMEM;
    m->stats = cu_calloc(n + 1, sizeof(*m->stats));
    if (m->stats == NULL) {
        cu_free(m);
        return CU_E_NOMEM;
    }
    m->routes = routes;
    m->n = n;
    *out = m;
    return CU_OK;
}

void cu_metrics_free(struct cu_metrics *m)
{
    if (m == NULL)
        return;
    cu_free(m->stats);
    cu_free(m);
}

void cu_metrics_observe(struct cu_metrics *m, size_t route, int status, uint64_t ns)
{
    struct route_stats *s = &m->stats[route < m->n ? route : m->n];
    size_t i = 0;
    uint64_t us = ns / 1000;

    while (i < NSTATUS && statuses[i] != status)
        i++;
    atomic_fetch_add_explicit(&s->by_status[i], 1, memory_order_relaxed);
    for (i = 0; i < NBUCKET && us > bucket_us[i]; i++)
        ;
    atomic_fetch_add_explicit(&s->buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->sum_ns, ns, memory_order_relaxed);
}

static const char *route_label(const struct cu_metrics *m, size_t r, const char **method)
{
    static const char *const names[] = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"};
    *method = "";
    if (r == m->n)
        return "unmatched";
    for (size_t b = 0; b < sizeof(names) / sizeof(names[0]); b++) {
        if (m->routes[r].method == (enum cu_method)(1u << b))
            *method = names[b];
    }
    return m->routes[r].pattern;
}

static enum cu_err render_counts(struct cu_metrics *m, struct cu_buf *out)
{
    enum cu_err rc = cu_buf_append_str(
        out, "# HELP custodia_http_requests_total HTTP requests by route, method and status.\n"
             "# TYPE custodia_http_requests_total counter\n");
    for (size_t r = 0; r <= m->n && rc == CU_OK; r++) {
        const char *method, *route = route_label(m, r, &method);
        for (size_t i = 0; i <= NSTATUS && rc == CU_OK; i++) {
            uint64_t v = atomic_load_explicit(&m->stats[r].by_status[i], memory_order_relaxed);
            char status[16];
            if (v == 0)
                continue;
            if (i < NSTATUS)
                snprintf(status, sizeof(status), "%d", statuses[i]);
            else
                snprintf(status, sizeof(status), "other");
            rc = cu_buf_printf(out,
                               "custodia_http_requests_total{route=\"%s\",method=\"%s\","
                               "status=\"%s\"} %llu\n",
                               route, method, status, (unsigned long long)v);
        }
    }
    return rc;
}

static enum cu_err render_histograms(struct cu_metrics *m, struct cu_buf *out)
{
    enum cu_err rc = cu_buf_append_str(
        out, "# HELP custodia_http_request_duration_seconds Time from request start to the last "
             "byte queued, by route.\n"
             "# TYPE custodia_http_request_duration_seconds histogram\n");
    for (size_t r = 0; r <= m->n && rc == CU_OK; r++) {
        const char *method, *route = route_label(m, r, &method);
        uint64_t cum = 0;
        for (size_t i = 0; i <= NBUCKET && rc == CU_OK; i++) {
            cum += atomic_load_explicit(&m->stats[r].buckets[i], memory_order_relaxed);
            rc = cu_buf_printf(out,
                               "custodia_http_request_duration_seconds_bucket{route=\"%s\","
                               "method=\"%s\",le=\"%s\"} %llu\n",
                               route, method, i < NBUCKET ? bucket_le[i] : "+Inf",
                               (unsigned long long)cum);
        }
        uint64_t sum = atomic_load_explicit(&m->stats[r].sum_ns, memory_order_relaxed);
        if (rc == CU_OK)
            rc = cu_buf_printf(out,
                               "custodia_http_request_duration_seconds_sum{route=\"%s\","
                               "method=\"%s\"} %llu.%09llu\n"
                               "custodia_http_request_duration_seconds_count{route=\"%s\","
                               "method=\"%s\"} %llu\n",
                               route, method, (unsigned long long)(sum / 1000000000u),
                               (unsigned long long)(sum % 1000000000u), route, method,
                               (unsigned long long)cum);
    }
    return rc;
}

void cu_metrics_conn_event(struct cu_metrics *m, enum cu_conn_event ev)
{
    if (m != NULL && ev < CU_CONN__COUNT)
        atomic_fetch_add_explicit(&m->conn_events[ev], 1, memory_order_relaxed);
}

void cu_metrics_guard_event(struct cu_metrics *m, enum cu_guard_event ev, uint64_t n)
{
    if (m != NULL && ev < CU_GUARD__COUNT)
        atomic_fetch_add_explicit(&m->guard_events[ev], n, memory_order_relaxed);
}

static enum cu_err render_guard_events(struct cu_metrics *m, struct cu_buf *out)
{
    uint64_t v[CU_GUARD__COUNT];
    for (size_t i = 0; i < CU_GUARD__COUNT; i++)
        v[i] = atomic_load_explicit(&m->guard_events[i], memory_order_relaxed);
    enum cu_err rc = cu_buf_printf(
        out,
        "# HELP custodia_rate_limited_total Requests answered 429 by a rate limit of [limits].\n"
        "# TYPE custodia_rate_limited_total counter\n"
        "custodia_rate_limited_total{limit=\"ip\"} %llu\n"
        "custodia_rate_limited_total{limit=\"principal\"} %llu\n"
        "custodia_rate_limited_total{limit=\"writes\"} %llu\n"
        "custodia_rate_limited_total{limit=\"signin\"} %llu\n",
        (unsigned long long)v[CU_GUARD_RATE_IP], (unsigned long long)v[CU_GUARD_RATE_PRINCIPAL],
        (unsigned long long)v[CU_GUARD_RATE_WRITES], (unsigned long long)v[CU_GUARD_RATE_SIGNIN]);
    if (rc != CU_OK)
        return rc;
    rc = cu_buf_printf(
        out,
        "# HELP custodia_unmask_limited_total Customers answered masked because a staff member "
        "reached access.unmask_limit_per_hour.\n"
        "# TYPE custodia_unmask_limited_total counter\n"
        "custodia_unmask_limited_total %llu\n",
        (unsigned long long)v[CU_GUARD_UNMASK_LIMITED]);
    if (rc != CU_OK)
        return rc;
    return cu_buf_printf(
        out,
        "# HELP custodia_access_dry_run_decisions_total Route decisions made by "
        "access.dry_run_policy beside the policy in force.\n"
        "# TYPE custodia_access_dry_run_decisions_total counter\n"
        "custodia_access_dry_run_decisions_total %llu\n"
        "# HELP custodia_access_dry_run_differences_total Dry-run decisions unlike the policy "
        "in force's: looser (it would allow what is denied), stricter (it would deny what is "
        "allowed), other (masking or approval differs).\n"
        "# TYPE custodia_access_dry_run_differences_total counter\n"
        "custodia_access_dry_run_differences_total{kind=\"looser\"} %llu\n"
        "custodia_access_dry_run_differences_total{kind=\"stricter\"} %llu\n"
        "custodia_access_dry_run_differences_total{kind=\"other\"} %llu\n",
        (unsigned long long)v[CU_GUARD_DRY_RUN], (unsigned long long)v[CU_GUARD_DRY_LOOSER],
        (unsigned long long)v[CU_GUARD_DRY_STRICTER], (unsigned long long)v[CU_GUARD_DRY_OTHER]);
}

static enum cu_err render_conn_events(struct cu_metrics *m, struct cu_buf *out)
{
    uint64_t v[CU_CONN__COUNT];
    for (size_t i = 0; i < CU_CONN__COUNT; i++)
        v[i] = atomic_load_explicit(&m->conn_events[i], memory_order_relaxed);
    return cu_buf_printf(
        out,
        "# HELP custodia_http_deadline_closed_total Connections closed because the request's "
        "headers or body took longer than server.header_timeout or server.body_timeout.\n"
        "# TYPE custodia_http_deadline_closed_total counter\n"
        "custodia_http_deadline_closed_total{phase=\"header\"} %llu\n"
        "custodia_http_deadline_closed_total{phase=\"body\"} %llu\n"
        "# HELP custodia_http_malformed_total Requests refused before routing because their "
        "framing, version or header lines are malformed.\n"
        "# TYPE custodia_http_malformed_total counter\n"
        "custodia_http_malformed_total %llu\n"
        "# HELP custodia_tls_handshake_failed_total TLS handshakes that failed.\n"
        "# TYPE custodia_tls_handshake_failed_total counter\n"
        "custodia_tls_handshake_failed_total %llu\n"
        "# HELP custodia_http_connections_refused_total Connections closed at accept because "
        "server.max_connections or server.per_ip_connections was reached.\n"
        "# TYPE custodia_http_connections_refused_total counter\n"
        "custodia_http_connections_refused_total %llu\n",
        (unsigned long long)v[CU_CONN_HEADER_DEADLINE],
        (unsigned long long)v[CU_CONN_BODY_DEADLINE], (unsigned long long)v[CU_CONN_MALFORMED],
        (unsigned long long)v[CU_CONN_TLS_FAILED], (unsigned long long)v[CU_CONN_REFUSED]);
}

/* render_commits(cs, out): the group committer's figures. */
static enum cu_err render_commits(const struct cu_committer_stats *cs, struct cu_buf *out)
{
    enum cu_err rc = cu_buf_printf(
        out, "# HELP custodia_commit_group_units Units of work per durable commit of the group "
             "committer.\n"
             "# TYPE custodia_commit_group_units histogram\n");
    for (size_t i = 0; rc == CU_OK && i < CU_COMMITTER_SIZE_BUCKETS; i++)
        rc = cu_buf_printf(out, "custodia_commit_group_units_bucket{le=\"%u\"} %llu\n",
                           cu_committer_size_le[i], (unsigned long long)cs->size_count[i]);
    if (rc == CU_OK)
        rc =
            cu_buf_printf(out,
                          "custodia_commit_group_units_bucket{le=\"+Inf\"} %llu\n"
                          "custodia_commit_group_units_sum %llu\n"
                          "custodia_commit_group_units_count %llu\n"
                          "# HELP custodia_commit_seconds Time from a group's BEGIN to its durable "
                          "COMMIT.\n"
                          "# TYPE custodia_commit_seconds histogram\n",
                          (unsigned long long)cs->groups, (unsigned long long)cs->size_sum,
                          (unsigned long long)cs->groups);
    for (size_t i = 0; rc == CU_OK && i < CU_COMMITTER_LATENCY_BUCKETS; i++)
        rc = cu_buf_printf(out, "custodia_commit_seconds_bucket{le=\"%u.%06u\"} %llu\n",
                           cu_committer_latency_le_us[i] / 1000000u,
                           cu_committer_latency_le_us[i] % 1000000u,
                           (unsigned long long)cs->latency_count[i]);
    if (rc == CU_OK)
        rc = cu_buf_printf(
            out,
            "custodia_commit_seconds_bucket{le=\"+Inf\"} %llu\n"
            "custodia_commit_seconds_sum %llu.%06llu\n"
            "custodia_commit_seconds_count %llu\n"
            "# HELP custodia_commit_units_total Units of work by outcome: committed, or failed "
            "(their own error or their group's).\n"
            "# TYPE custodia_commit_units_total counter\n"
            "custodia_commit_units_total{outcome=\"committed\"} %llu\n"
            "custodia_commit_units_total{outcome=\"failed\"} %llu\n"
            "# HELP custodia_commit_retries_total Runs of a unit again after a busy store or a "
            "lost "
            "serialisation race.\n"
            "# TYPE custodia_commit_retries_total counter\n"
            "custodia_commit_retries_total %llu\n"
            "# HELP custodia_commit_queued Units of work waiting for the committer.\n"
            "# TYPE custodia_commit_queued gauge\n"
            "custodia_commit_queued %llu\n",
            (unsigned long long)cs->commits, (unsigned long long)(cs->latency_sum_us / 1000000u),
            (unsigned long long)(cs->latency_sum_us % 1000000u), (unsigned long long)cs->commits,
            (unsigned long long)cs->units, (unsigned long long)cs->failed,
            (unsigned long long)cs->retries, (unsigned long long)cs->queued);
    return rc;
}

enum cu_err cu_metrics_render(struct cu_metrics *m, struct cu_buf *out, int64_t start_ms,
                              const struct cu_committer_stats *commits)
{
    enum cu_err rc =
        cu_buf_printf(out,
                      "# HELP custodia_build_info The running version.\n"
                      "# TYPE custodia_build_info gauge\n"
                      "custodia_build_info{version=\"%s\"} 1\n"
                      "# HELP custodia_start_time_seconds When the server started.\n"
                      "# TYPE custodia_start_time_seconds gauge\n"
                      "custodia_start_time_seconds %lld.%03lld\n",
                      CU_VERSION, (long long)(start_ms / 1000), (long long)(start_ms % 1000));
    if (rc == CU_OK)
        rc = render_counts(m, out);
    if (rc == CU_OK)
        rc = render_histograms(m, out);
    if (rc == CU_OK)
        rc = render_conn_events(m, out);
    if (rc == CU_OK)
        rc = render_guard_events(m, out);
    if (rc == CU_OK && commits != NULL)
        rc = render_commits(commits, out);
    return rc;
}
