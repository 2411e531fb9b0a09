/*
 * faults_routes.c - the allocation-failure loop over the routes: each request of the route
 * fuzzer's seeds (doc-* and x-*: every example of docs/api.md and a request for each route it
 * has no example of, so at least one request of each route; not the inputs fuzzing added)
 * is served again and again with the Nth allocation failing, and every one after it, for
 * N = 1, 2, ... until a run reaches its end before the Nth; then the same with the Nth store
 * statement failing. Each faulted answer must still be an answer (a success, or a problem
 * document of its status), nothing may be freed twice, used after it is freed or leaked (ASan
 * and valgrind watch the unwinding), and the audit log must verify after each request's loop.
 * Every route of the table must have been reached by some request.
 *
 * usage: faults_routes CORPUS_DIR
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/http.h"
#include "base/json.h"
#include "base/buf.h"
#include "base/mem.h"
#include "route_harness.h"
#include "store/store.h"

/* The most runs of one request under one kind of fault. */
#define FAULT_RUNS_MAX 2000
#define STORE_RUNS_MAX 200
#define SEEDS_MAX 256

struct seed {
    char name[256];
    uint8_t *data;
    size_t len;
    bool destructive; /* erases or revokes what later requests use: run last */
};

static int by_order(const void *a, const void *b)
{
    const struct seed *x = a, *y = b;
    if (x->destructive != y->destructive)
        return x->destructive ? 1 : -1;
    return strcmp(x->name, y->name);
}

static size_t load(const char *dir, struct seed *seeds)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t n = 0;
    if (d == NULL)
        return 0;
    while ((e = readdir(d)) != NULL && n < SEEDS_MAX) {
        char path[4096];
        /* The seeds only (route_seeds.py's doc-* and x-*), not what fuzzing added. */
        if (strncmp(e->d_name, "doc-", 4) != 0 && strncmp(e->d_name, "x-", 2) != 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "rb");
        if (f == NULL)
            continue;
        struct seed *s = &seeds[n];
        s->data = malloc(CU_HARNESS_MAX_TEXT);
        s->len = s->data ? fread(s->data, 1, CU_HARNESS_MAX_TEXT, f) : 0;
        fclose(f);
        if (s->data == NULL)
            continue;
        snprintf(s->name, sizeof(s->name), "%s", e->d_name);
        s->destructive = s->len >= 7 && memcmp(s->data, "DELETE ", 7) == 0;
        n++;
    }
    closedir(d);
    qsort(seeds, n, sizeof(seeds[0]), by_order);
    return n;
}

static void fail(const struct seed *s, long k, const char *what, int status, int want)
{
    fprintf(stderr, "faults_routes: %s, fault at %ld: %s (status %d, unfaulted %d)\n", s->name, k,
            what, status, want);
    abort();
}

/* Serves s once, unfaulted: returns its status, the answer checked (cu_harness_check). */
static int serve_clean(const struct seed *s)
{
    struct cu_buf out;
    int status = 0;
    cu_buf_init(&out, 32u << 20);
    if (cu_harness_serve(s->data, s->len, &status, &out) != 0)
        fail(s, 0, "the answer could not be kept", status, 0);
    cu_harness_check(status, &out);
    cu_buf_free(&out);
    return status;
}

/* Serves s with a fault (the kth allocation or statement) set up by the caller: the answer
 * must be the unfaulted one (want), or the server's own failure (5xx) as a problem document;
 * a fault never turns a refusal into a success, nor one refusal into another. */
static int serve_faulted(const struct seed *s, long k, int want, bool *reached)
{
    struct cu_buf out;
    int status = 0;
    cu_buf_init(&out, 32u << 20);
    int rc = cu_harness_serve(s->data, s->len, &status, &out);
    /* The faults end with the request: checking its answer allocates too. */
    *reached = cu_mem_fail_reached();
    cu_mem_fail_at(0);
    cu_store_fail_next(cu_harness_store(), 0);
    if (rc != 0) {
        cu_buf_free(&out); /* the answer could not be copied out: the connection closes */
        return 500;
    }
    if (status != want && status < 500)
        fail(s, k, "a fault changed the answer", status, want);
    if (status >= 400) {
        json_t *doc = NULL;
        char err[CU_JSON_ERR_BYTES];
        if (cu_json_parse_object(out.data ? out.data : "", out.len, &doc, err) != CU_OK ||
            json_integer_value(json_object_get(doc, "status")) != status) {
            fprintf(stderr, "%.*s\n", (int)out.len, out.data ? out.data : "");
            fail(s, k, "an error answer that is not a problem document", status, want);
        }
        json_decref(doc);
    }
    cu_buf_free(&out);
    return status;
}

/* Which routes a request of s reaches, marked in reached[]. */
static void mark_route(const struct seed *s, const struct cu_route *routes, size_t n, bool *reached)
{
    char line[512], method[16] = "", path[480] = "";
    struct cu_req req;
    unsigned allowed = 0;
    size_t k = 0;
    while (k < s->len && k < sizeof(line) - 1 && s->data[k] != '\n') {
        line[k] = (char)s->data[k];
        k++;
    }
    line[k] = '\0';
    if (sscanf(line, "%15s %479[^? ]", method, path) != 2)
        return;
    memset(&req, 0, sizeof(req));
    const struct cu_route *r =
        cu_route_match(routes, n, cu_method_parse(method), path, &req, &allowed);
    if (r != NULL)
        reached[r - routes] = true;
}

int main(int argc, char **argv)
{
    static struct seed seeds[SEEDS_MAX];
    size_t nroutes = 0, missing = 0;
    const struct cu_route *routes = cu_routes(&nroutes);
    bool *reached = calloc(nroutes, sizeof(bool));
    long mem_runs = 0, store_runs = 0;
    if (argc != 2 || reached == NULL) {
        fprintf(stderr, "usage: faults_routes CORPUS_DIR\n");
        return 2;
    }
    size_t n = load(argv[1], seeds);
    if (n == 0) {
        fprintf(stderr, "faults_routes: no requests in %s\n", argv[1]);
        return 1;
    }
    cu_harness_setup();
    for (size_t i = 0; i < n; i++) {
        mark_route(&seeds[i], routes, nroutes, reached);
        long k = 1;
        for (; k <= FAULT_RUNS_MAX; k++) {
            /* Unfaulted first each time: the request may change what it finds (a create
             * makes another customer, a revoke leaves nothing to revoke). */
            int want = serve_clean(&seeds[i]);
            bool reached_fault = false;
            cu_mem_fail_at(k);
            serve_faulted(&seeds[i], k, want, &reached_fault);
            if (!reached_fault)
                break;
        }
        mem_runs += k;
        if (k > FAULT_RUNS_MAX) {
            fprintf(stderr, "faults_routes: %s: still failing after %d allocations\n",
                    seeds[i].name, FAULT_RUNS_MAX);
            return 1;
        }
        /* Store faults: the Nth statement fails; the loop ends at the first N past the
         * request's last statement, when the answer is the unfaulted one. */
        for (k = 1; k <= STORE_RUNS_MAX; k++) {
            int want = serve_clean(&seeds[i]);
            bool unused = false;
            cu_store_fail_next(cu_harness_store(), k);
            int got = serve_faulted(&seeds[i], k, want, &unused);
            if (got == want)
                break;
        }
        store_runs += k;
        if (k > STORE_RUNS_MAX) {
            fprintf(stderr, "faults_routes: %s: still failing after %d statements\n", seeds[i].name,
                    STORE_RUNS_MAX);
            return 1;
        }
        if (!cu_harness_audit_ok()) {
            fprintf(stderr, "faults_routes: %s: the audit log no longer verifies\n", seeds[i].name);
            return 1;
        }
    }
    for (size_t r = 0; r < nroutes; r++) {
        if (!reached[r]) {
            fprintf(stderr, "faults_routes: no request for %s\n", routes[r].pattern);
            missing++;
        }
    }
    printf("%zu requests: %ld runs with an allocation failing, %ld with a statement failing; "
           "%zu of %zu routes reached\n",
           n, mem_runs, store_runs, nroutes - missing, nroutes);
    for (size_t i = 0; i < n; i++)
        free(seeds[i].data);
    free(reached);
    return missing == 0 ? 0 : 1;
}
