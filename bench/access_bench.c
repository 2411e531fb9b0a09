/*
 * access_bench.c - access decisions in process, on one thread:
 *  - the default policy (built-in roles only): decisions a second;
 *  - a company-sized policy: 1,000 grants by id with conditions, 100 roles with conditional
 *    permits (region, office network, working hours in a named zone), forbids, over 10,000
 *    principals: decisions a second and the latency of single decisions (p50, p99, p99.9),
 *    each timed on its own;
 *  - the same with the explanation built (what /v1/access/explain returns).
 *
 * usage: access_bench [DECISIONS]   (default 5000000)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access/policy.h"
#include "base/buf.h"
#include "base/clock.h"
#include "base/mem.h"
#include "identity/apikey.h"

#define PRINCIPALS 10000
#define GRANTS 1000
#define ROLES 100

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int fail(const char *what)
{
    fprintf(stderr, "access_bench: %s\n", what);
    return 1;
}

/* The company-sized policy's text. */
static char *big_policy(void)
{
    static const char *const perms[] = {"customers.read", "customers.credentials", "audit.read",
                                        "staff.read", "metrics.read"};
    struct cu_buf b;
    cu_buf_init(&b, 8u << 20);
    if (cu_buf_printf(&b, "version 1\n"
                          "network office 10.20.0.0/16 10.30.0.0/16 192.0.2.0/24 2001:db8:1::/48\n"
                          "hours working mon-fri 08:00-18:00 Europe/London\n"
                          "region emea GB IE FR DE NL BE ES IT PT\n"
                          "region amer US CA BR MX\n"
                          "forbid customers.unmask when session.aal < 2\n"
                          "forbid customers.read when \"blocked\" in customer.tags\n") != CU_OK)
        return NULL;
    for (int r = 0; r < ROLES; r++) {
        if (cu_buf_printf(&b, "role r%d metrics.read\n", r) != CU_OK ||
            cu_buf_printf(&b,
                          "permit r%d %s masked when customer.region == staff.region and ip in "
                          "office and time in working\n",
                          r, perms[0]) != CU_OK ||
            cu_buf_printf(&b, "permit r%d %s when staff.region == \"emea\" and ip in office\n", r,
                          perms[1]) != CU_OK ||
            cu_buf_printf(&b, "permit r%d %s when session.aal >= 2 and session.age < 8h\n", r,
                          perms[2 + r % 3]) != CU_OK)
            return NULL;
    }
    for (int g = 0; g < GRANTS; g++)
        if (cu_buf_printf(&b,
                          "grant r%d to staff:stf_%016d when staff.department == \"d%d\" and "
                          "staff.training_valid_until > now\n",
                          g % ROLES, g * (PRINCIPALS / GRANTS), g % 7) != CU_OK)
            return NULL;
    return cu_buf_steal(&b);
}

/* The 10,000 staff members: ids, departments, roles (one in ten has none stored). */
static char ids[PRINCIPALS][24], depts[7][4];
static const char *roles[PRINCIPALS];

/* staff_at(i, now): the staff member the i-th decision is for, trained, at aal2, signed in 10
 * minutes before now. */
static struct cu_access_subject staff_at(long i, int64_t now)
{
    int who = (int)((i * 7919) % PRINCIPALS);
    struct cu_access_subject st = {.kind = CU_ACCESS_STAFF,
                                   .id = ids[who],
                                   .roles = roles[who],
                                   .department = depts[(who / 10) % 7],
                                   .region = who % 2 ? "emea" : "amer",
                                   .training_valid_until = now + 86400000,
                                   .aal = 2,
                                   .session_started_at = now - 600000};
    return st;
}

int main(int argc, char **argv)
{
    char *end = NULL;
    long n = argc > 1 ? strtol(argv[1], &end, 10) : 5000000;
    struct cu_policy *def = NULL, *big = NULL;
    struct cu_policy_error err;
    char *text = big_policy();
    static const char *const countries[] = {"GB", "US", "FR", "JP", "DE", "CA"};
    struct cu_access_env env = {.now_ms = 1774602000000LL, .has_ip = true}; /* Fri 09:00 UTC */
    struct cu_access_resource res = {.id = "cus_1", .status = "active"};
    uint64_t *lat, t, allowed = 0;
    long samples = n < 1000000 ? n : 1000000;

    if (n < 1000 || n > 1000000000L || (end != NULL && *end != '\0') || !text)
        return fail("usage: access_bench [DECISIONS, 1000 to 1000000000]");
    if (cu_policy_default(&def) != CU_OK)
        return fail("default policy");
    if (cu_policy_parse("bench.policy", text, strlen(text), &big, &err) != CU_OK) {
        char msg[512];
        cu_policy_error_format(&err, msg, sizeof msg);
        return fail(msg);
    }
    if (cu_ip_parse("10.20.7.9", &env.ip) != CU_OK)
        return fail("ip");
    for (int i = 0; i < 7; i++)
        snprintf(depts[i], sizeof depts[i], "d%d", i);
    for (int i = 0; i < PRINCIPALS; i++) {
        snprintf(ids[i], sizeof ids[i], "stf_%016d", i);
        roles[i] = i % 10 == 0 ? NULL : "support_agent";
    }

    /* 1. the default policy: an API key of role service reading a customer */
    struct cu_access_subject key = {
        .kind = CU_ACCESS_APIKEY, .id = "ak_0123456789abcdef", .roles = "service"};
    t = cu_clock_mono_ns();
    for (long i = 0; i < n; i++)
        allowed +=
            cu_policy_decide(def, &key, i & 1 ? CU_SCOPE_CUSTOMERS_READ : CU_SCOPE_CUSTOMERS_WRITE,
                             &res, &env, NULL) != CU_ACCESS_DENY;
    double s = (double)(cu_clock_mono_ns() - t) / 1e9;
    printf("access decisions, default policy (an API key of role service): %.0f decisions/s on "
           "one core (%ld in %.2f s, %llu allowed)\n",
           (double)n / s, n, s, (unsigned long long)allowed);

    /* 2. the company-sized policy, staff spread over 10,000 principals */
    lat = malloc((size_t)samples * sizeof(*lat));
    if (!lat)
        return fail("out of memory");
    allowed = 0;
    uint64_t start = cu_clock_mono_ns();
    for (long i = 0; i < n; i++) {
        struct cu_access_subject st = staff_at(i, env.now_ms);
        uint64_t perm = 1ull << (i % 9);
        res.country = countries[i % 6];
        if (i < samples) {
            t = cu_clock_mono_ns();
            allowed += cu_policy_decide(big, &st, perm, &res, &env, NULL) != CU_ACCESS_DENY;
            lat[i] = cu_clock_mono_ns() - t;
        } else {
            allowed += cu_policy_decide(big, &st, perm, &res, &env, NULL) != CU_ACCESS_DENY;
        }
    }
    s = (double)(cu_clock_mono_ns() - start) / 1e9;
    qsort(lat, (size_t)samples, sizeof(*lat), cmp_u64);
    printf("access decisions, %d grants and %d roles with conditions over %d principals: "
           "%.0f decisions/s; one decision p50 %.2f us, p99 %.2f us, p99.9 %.2f us (%llu of %ld "
           "allowed; latency over the first %ld, timer included)\n",
           GRANTS, ROLES, PRINCIPALS, (double)n / s, (double)lat[samples / 2] / 1e3,
           (double)lat[samples * 99 / 100] / 1e3, (double)lat[samples * 999 / 1000] / 1e3,
           (unsigned long long)allowed, n, samples);

    /* 3. the same decisions with the explanation */
    long m = n / 10;
    struct cu_access_why why;
    t = cu_clock_mono_ns();
    for (long i = 0; i < m; i++) {
        struct cu_access_subject st = staff_at(i, env.now_ms);
        res.country = countries[i % 6];
        (void)cu_policy_decide(big, &st, 1ull << (i % 9), &res, &env, &why);
    }
    s = (double)(cu_clock_mono_ns() - t) / 1e9;
    printf("access decisions with the explanation built: %.0f decisions/s\n", (double)m / s);
    free(lat);
    cu_free(text);
    cu_policy_free(def);
    cu_policy_free(big);
    return 0;
}
