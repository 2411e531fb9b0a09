/*
 * fuzz_rules.c - the rule language's compiler (monitor/rules.c), which reads rule files from
 * staff and from `custodia rules check`. A file that compiles is evaluated on one event with
 * every feature present and then every feature missing: no crash, no error message unset,
 * at most one entry per rule fired.
 */
#include <stdint.h>
#include <string.h>

#include "monitor/event.h"
#include "monitor/rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool some(void *arg, size_t i, double *v)
{
    *v = (double)(i % 7) - 2.0;
    return arg != NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct cu_mon_types types;
    static int ready;
    static const char ev_text[] =
        "{\"type\": \"transfer\", \"time\": \"2026-01-05T02:14:09Z\", \"customer\": \"c1\", "
        "\"ip\": \"203.0.113.9\", \"amount\": 500000, \"currency\": \"EUR\", \"country\": \"GB\","
        " \"attributes\": {\"mcc\": \"6011\"}}";
    struct cu_ruleset *rs = NULL;
    struct cu_mon_event ev;
    struct cu_verdict v;
    char err[CU_RULES_ERR_BYTES];
    char eerr[CU_MON_ERR_BYTES];

    if (!ready) {
        cu_mon_types_init(&types);
        ready = 1;
    }
    struct cu_mon_parse_opts o = {&types, false, 0, 0};
    if (cu_mon_event_parse(ev_text, strlen(ev_text), &o, &ev, eerr) != CU_OK)
        __builtin_trap();
    if (cu_rules_compile((const char *)data, size, "f", &types, &rs, err) != CU_OK) {
        if (rs != NULL || strncmp(err, "f:", 2) != 0)
            __builtin_trap();
        return 0;
    }
    struct cu_feature_source all = {some, &types}, none = {some, NULL};
    cu_rules_eval(rs, &ev, &all, &v);
    if (v.nfired > cu_rules_count(rs) || (unsigned)v.decision > CU_DEC_DENY)
        __builtin_trap();
    cu_rules_eval(rs, &ev, &none, &v);
    if (v.nfired > cu_rules_count(rs))
        __builtin_trap();
    cu_rules_free(rs);
    return 0;
}
