/*
 * route_harness.h - a running service without the network, for the route fuzzer and the
 * allocation-failure loop: a data directory made by `custodia init` in a temporary folder,
 * seeded with customers, a customer who has signed in and keys of two scopes, and requests
 * written as text served through cu_server_serve.
 *
 * A request's text is its request line, its header lines, an empty line and its body:
 *
 *     PATCH /v1/customers/{{CUS}} HTTP/1.1
 *     Authorization: Bearer {{KEY}}
 *     Content-Type: application/json
 *
 *     {"city": "London"}
 *
 * Lines end with LF or CRLF. The version may be left out: the request is then HTTP/1.1 with a
 * Host header added when it has none (with a version, it is sent as written). Before parsing,
 * {{KEY}} becomes an API key with every scope, {{RKEY}} one with customers.read only, {{CUS}}
 * a customer's id, {{LOGIN}} that customer's e-mail, {{PASSWORD}} their password,
 * {{SESSION}} their session token and {{STAFF}} a staff member's id.
 */
#ifndef CU_FUZZ_ROUTE_HARNESS_H
#define CU_FUZZ_ROUTE_HARNESS_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

/* The most header lines and query arguments a request's text may carry (more are dropped). */
#define CU_HARNESS_MAX_HEADERS 64
#define CU_HARNESS_MAX_QUERY 64
/* The largest text taken (the rest is cut off). */
#define CU_HARNESS_MAX_TEXT (256u * 1024)

/* cu_harness_setup(): makes the service once per process (later calls do nothing); aborts
 * with a message when it cannot, since nothing can be tested then. */
void cu_harness_setup(void);

/* cu_harness_serve(text, n, status, out): serves the request written in text (n bytes), and
 * sets *status and appends its answer's body to out. Returns 0, or -1 when the text could not
 * be parsed or the answer kept for lack of memory (a client would see its connection close). */
int cu_harness_serve(const uint8_t *text, size_t n, int *status, struct cu_buf *out);

/* cu_harness_check(status, body): aborts (a finding) when the answer breaks what every
 * answer promises: a status from 200 to 599, a problem document for every error with the
 * same status and a urn:custodia:problem: type, and no internal error. */
void cu_harness_check(int status, const struct cu_buf *body);

/* cu_harness_audit_ok(): whether the audit log verifies from its first record to its head. */
int cu_harness_audit_ok(void);

/* cu_harness_store(): the service's store, for fault injection (struct cu_store *). */
void *cu_harness_store(void);

#endif
