/*
 * monitor_bench.c - the monitoring engine in process, on one core: a generated event file
 * (bench/gen_events.py) replayed through the default rule pack on a fresh state.
 *
 * usage: monitor_bench EVENTS.jsonl
 *
 * Prints, each the best of three runs over the whole file:
 *   - events/s parsed and decided (the text of each event parsed, features read, rules run,
 *     the event recorded);
 *   - events/s decided alone (events parsed beforehand);
 *   - the same with a shadow rule set beside the live one (the default pack again, compiled
 *     apart: both sets read one state), and its cost against the live one alone;
 *   - the state's bytes per customer after the file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/mem.h"
#include "monitor/engine.h"
#include "monitor/event.h"
#include "monitor/rules.h"
#include "monitor/state.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct line {
    const char *p;
    size_t n;
};

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;
    if (!f || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        perror(path);
        exit(1);
    }
    buf = malloc((size_t)n + 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        perror(path);
        exit(1);
    }
    fclose(f);
    buf[n] = '\0';
    *len = (size_t)n;
    return buf;
}

int main(int argc, char **argv)
{
    struct cu_mon_types types;
    struct cu_ruleset *rs = NULL, *shadow = NULL;
    char err[CU_RULES_ERR_BYTES];
    size_t len, nlines = 0, cap = 1 << 20;
    struct line *lines = malloc(cap * sizeof(*lines));
    struct cu_mon_event *evs;
    uint64_t sink = 0;

    if (argc != 2) {
        fprintf(stderr, "usage: monitor_bench EVENTS.jsonl\n");
        return 2;
    }
    char *text = slurp(argv[1], &len);
    for (char *p = text, *end = text + len; p < end;) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (nlines == cap && (lines = realloc(lines, (cap *= 2) * sizeof(*lines))) == NULL)
            return 1;
        lines[nlines++] = (struct line){p, n};
        p += n + 1;
    }
    cu_mon_types_init(&types);
    if (cu_rules_compile(cu_rules_default_pack, cu_rules_default_pack_len, "default.rules", &types,
                         &rs, err) != CU_OK ||
        cu_rules_compile(cu_rules_default_pack, cu_rules_default_pack_len, "shadow.rules", &types,
                         &shadow, err) != CU_OK) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    evs = malloc(nlines * sizeof(*evs));
    if (!evs)
        return 1;
    struct cu_mon_parse_opts o = {&types, true, 0, 0};
    for (size_t i = 0; i < nlines; i++)
        if (cu_mon_event_parse(lines[i].p, lines[i].n, &o, &evs[i], err) != CU_OK) {
            fprintf(stderr, "line %zu: %s\n", i + 1, err);
            return 1;
        }

    double best_full = 1e9, best_decide = 1e9, best_shadow = 1e9;
    size_t bytes = 0, customers = 0;
    for (int run = 0; run < 3; run++) {
        struct cu_mon_engine e;
        int s = 0;
        struct cu_mon_event ev;
        struct cu_verdict v, vs;
        double t;

        /* parsed and decided */
        if (cu_mon_engine_init(&e, rs, NULL) != CU_OK)
            return 1;
        t = now();
        for (size_t i = 0; i < nlines; i++) {
            if (cu_mon_event_parse(lines[i].p, lines[i].n, &o, &ev, err) != CU_OK ||
                cu_mon_engine_decide(&e, &ev, &v, NULL) != CU_OK)
                return 1;
            sink += (uint64_t)v.decision;
        }
        t = now() - t;
        best_full = t < best_full ? t : best_full;
        struct cu_mon_state_stats st;
        cu_mon_state_stats(e.st, &st);
        bytes = st.bytes;
        customers = st.keys[CU_KEY_CUSTOMER];
        cu_mon_engine_fini(&e);

        /* decided alone */
        if (cu_mon_engine_init(&e, rs, NULL) != CU_OK)
            return 1;
        t = now();
        for (size_t i = 0; i < nlines; i++) {
            if (cu_mon_engine_decide(&e, &evs[i], &v, NULL) != CU_OK)
                return 1;
            sink += (uint64_t)v.decision;
        }
        t = now() - t;
        best_decide = t < best_decide ? t : best_decide;
        cu_mon_engine_fini(&e);

        /* live and shadow: one state, both sets evaluated */
        (void)s;
        if (cu_mon_engine_init(&e, rs, shadow) != CU_OK)
            return 1;
        t = now();
        for (size_t i = 0; i < nlines; i++) {
            if (cu_mon_engine_decide(&e, &evs[i], &v, &vs) != CU_OK)
                return 1;
            sink += (uint64_t)(v.decision != vs.decision);
        }
        t = now() - t;
        best_shadow = t < best_shadow ? t : best_shadow;
        cu_mon_engine_fini(&e);
    }
    printf("monitor: %zu events (%zu customers), default pack of %zu rules reading %zu "
           "features, one core\n",
           nlines, customers, cu_rules_count(rs),
           cu_rules_features(rs, &(const struct cu_feature *){NULL}));
    printf("monitor: parsed and decided: %.0f events/s (%.2f us an event)\n",
           (double)nlines / best_full, best_full / (double)nlines * 1e6);
    printf("monitor: decided alone: %.0f events/s (%.2f us an event)\n",
           (double)nlines / best_decide, best_decide / (double)nlines * 1e6);
    printf("monitor: live and shadow together: %.0f events/s, %.2fx the live set alone\n",
           (double)nlines / best_shadow, best_shadow / best_decide);
    printf("monitor: state after the file: %zu bytes, %.0f bytes a customer (every key "
           "counted)\n",
           bytes, customers ? (double)bytes / (double)customers : 0.0);
    if (sink == 0xffffffffffffffffull)
        puts("");
    cu_rules_free(rs);
    cu_rules_free(shadow);
    free(evs);
    free(lines);
    free(text);
    return 0;
}
