/*
 * metrics.h - request counters and latency histograms, rendered as Prometheus text.
 *
 * Counting is lock-free (relaxed atomics) so it costs almost nothing on the request path.
 */
#ifndef CU_API_METRICS_H
#define CU_API_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "api/http.h"
#include "base/buf.h"
#include "base/err.h"
#include "store/work.h"

struct cu_metrics;

/* cu_metrics_new(routes, n, out): counters for n routes plus one slot for requests that
 * matched no route. Caller frees *out with cu_metrics_free(). */
CU_WUR enum cu_err cu_metrics_new(const struct cu_route *routes, size_t n, struct cu_metrics **out);

/* cu_metrics_free(m): frees m; NULL does nothing. */
void cu_metrics_free(struct cu_metrics *m);

/* cu_metrics_observe(m, route, status, ns): counts one request to route index route (n for
 * "no route") that answered status after ns nanoseconds. */
void cu_metrics_observe(struct cu_metrics *m, size_t route, int status, uint64_t ns);

/* Why the server closed a connection itself, or refused what it could not parse. */
enum cu_conn_event {
    CU_CONN_HEADER_DEADLINE, /* the request line and headers took longer than header_timeout */
    CU_CONN_BODY_DEADLINE,   /* the body took longer than body_timeout */
    CU_CONN_MALFORMED,       /* the front refused a request it could not frame */
    CU_CONN_TLS_FAILED,      /* a TLS handshake failed */
    CU_CONN_REFUSED,         /* a connection past max_connections or per_ip_connections */
    CU_CONN__COUNT
};

/* cu_metrics_conn_event(m, ev): counts one ev. */
void cu_metrics_conn_event(struct cu_metrics *m, enum cu_conn_event ev);

/* What access control held back (counted in metrics). */
enum cu_guard_event {
    CU_GUARD_UNMASK_LIMITED, /* an unmasked read answered masked: [access] unmask_limit_per_hour */
    CU_GUARD_RATE_IP,        /* 429: [limits] ip_* */
    CU_GUARD_RATE_PRINCIPAL, /* 429: [limits] principal_* */
    CU_GUARD_RATE_WRITES,    /* 429: [limits] writes_* */
    CU_GUARD_RATE_SIGNIN,    /* 429: [limits] signin_* */
    CU_GUARD_DRY_RUN,        /* a route decided by the dry-run policy too */
    CU_GUARD_DRY_LOOSER,     /* which allowed what the policy in force did not */
    CU_GUARD_DRY_STRICTER,   /* which did not allow what the policy in force did */
    CU_GUARD_DRY_OTHER,      /* both allowed, one masked or held for approval, the other not */
    CU_GUARD__COUNT
};

/* cu_metrics_guard_event(m, ev, n): counts n of ev. */
void cu_metrics_guard_event(struct cu_metrics *m, enum cu_guard_event ev, uint64_t n);

/* cu_metrics_render(m, out, start_ms, commits): appends the Prometheus text exposition to out,
 * with the group committer's figures when commits is not NULL. */
CU_WUR enum cu_err cu_metrics_render(struct cu_metrics *m, struct cu_buf *out, int64_t start_ms,
                                     const struct cu_committer_stats *commits);

#endif
