/*
 * fuzz_routes.c - drives the route table itself: method, target, query, headers and body come
 * from the input (route_harness.h gives its form) and go through the whole request path but
 * the network, on a data directory with customers, a signed-in customer and keys. Every answer
 * must keep its promises (cu_harness_check); a crash, a leak or a sanitizer report is a
 * finding. The seed corpus holds every example of docs/api.md (fuzz/route_seeds.py).
 */
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "route_harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cu_buf out;
    int status = 0;
    cu_harness_setup();
    cu_buf_init(&out, 32u << 20);
    if (cu_harness_serve(data, size, &status, &out) == 0)
        cu_harness_check(status, &out);
    cu_buf_free(&out);
    return 0;
}
