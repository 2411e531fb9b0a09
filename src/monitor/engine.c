/*
 * engine.c - the monitoring engine (engine.h).
 */
#include "monitor/engine.h"

#include <string.h>

#include "base/json.h"
#include "base/mem.h"

enum cu_err cu_mon_engine_init(struct cu_mon_engine *e, const struct cu_ruleset *rs,
                               const struct cu_ruleset *shadow)
{
    const struct cu_feature *lf = NULL, *sf = NULL;
    size_t nl = cu_rules_features(rs, &lf), ns = shadow ? cu_rules_features(shadow, &sf) : 0;
    struct cu_feature *all = cu_calloc(nl + ns + 1, sizeof(*all));
    size_t n = nl;
    enum cu_err rc = CU_E_NOMEM;

    memset(e, 0, sizeof(*e));
    e->rs = rs;
    e->shadow = shadow;
    e->map[0] = cu_calloc(nl + 1, sizeof(size_t));
    e->map[1] = cu_calloc(ns + 1, sizeof(size_t));
    if (!all || !e->map[0] || !e->map[1])
        goto out;
    memcpy(all, lf, nl * sizeof(*lf));
    for (size_t i = 0; i < nl; i++)
        e->map[0][i] = i;
    for (size_t j = 0; j < ns; j++) {
        size_t k;
        for (k = 0; k < n; k++)
            if (cu_feature_same(&all[k], &sf[j]))
                break;
        if (k == n)
            all[n++] = sf[j];
        e->map[1][j] = k;
    }
    rc = cu_mon_state_new(all, n, &e->st);
out:
    cu_free(all);
    if (rc != CU_OK)
        cu_mon_engine_fini(e);
    return rc;
}

void cu_mon_engine_fini(struct cu_mon_engine *e)
{
    cu_mon_state_free(e->st);
    cu_free(e->map[0]);
    cu_free(e->map[1]);
    e->st = NULL;
    e->map[0] = e->map[1] = NULL;
}

/* A rule set's view of the state: its feature numbers mapped to the state's. */
struct mapped {
    struct cu_feature_source inner;
    const size_t *map;
};

static bool mapped_value(void *arg, size_t i, double *v)
{
    const struct mapped *m = arg;
    return m->inner.value(m->inner.arg, m->map[i], v);
}

enum cu_err cu_mon_engine_decide(struct cu_mon_engine *e, const struct cu_mon_event *ev,
                                 struct cu_verdict *out, struct cu_verdict *shadow_out)
{
    return cu_mon_engine_decide_reads(e, ev, out, shadow_out, NULL);
}

enum cu_err cu_mon_engine_decide_reads(struct cu_mon_engine *e, const struct cu_mon_event *ev,
                                       struct cu_verdict *out, struct cu_verdict *shadow_out,
                                       struct cu_reads *reads)
{
    return cu_mon_engine_decide_masked(e, ev, out, shadow_out, reads, NULL, NULL);
}

enum cu_err cu_mon_engine_decide_masked(struct cu_mon_engine *e, const struct cu_mon_event *ev,
                                        struct cu_verdict *out, struct cu_verdict *shadow_out,
                                        struct cu_reads *reads, const struct cu_rule_mask *skip,
                                        const struct cu_rule_mask *shadow_skip)
{
    struct cu_mon_probe probe;
    struct cu_feature_source src;
    cu_mon_state_source(e->st, ev, &probe, &src);
    /* the live set's numbers are the state's */
    cu_rules_eval_masked(e->rs, ev, &src, out, reads, skip);
    if (e->shadow && shadow_out) {
        struct mapped m = {src, e->map[1]};
        struct cu_feature_source ms = {mapped_value, &m};
        cu_rules_eval_masked(e->shadow, ev, &ms, shadow_out, NULL, shadow_skip);
    }
    return cu_mon_state_add(e->st, ev);
}

static enum cu_err action(struct cu_buf *b, bool *first, const char *name)
{
    enum cu_err rc = cu_buf_printf(b, "%s\"%s\"", *first ? "" : ",", name);
    *first = false;
    return rc;
}

enum cu_err cu_mon_verdict_json(const struct cu_ruleset *rs, const struct cu_verdict *v,
                                struct cu_buf *out)
{
    bool first = true;
    enum cu_err rc = cu_buf_printf(out, "\"decision\":\"%s\",\"score\":%d,\"rules\":[",
                                   cu_decision_name(v->decision), v->score);
    for (size_t i = 0; rc == CU_OK && i < v->nfired; i++) {
        const char *reason = cu_rules_reason(rs, v->fired[i].rule);
        rc = cu_buf_printf(out, "%s{\"name\":\"%s\",\"score\":%d,\"reason\":", i ? "," : "",
                           cu_rules_name(rs, v->fired[i].rule), v->fired[i].score);
        if (rc == CU_OK)
            rc = cu_json_escape(out, reason, strlen(reason));
        if (rc == CU_OK)
            rc = cu_buf_append_str(out, "}");
    }
    if (rc == CU_OK)
        rc = cu_buf_append_str(out, "],\"actions\":[");
    if (rc == CU_OK && (v->actions & CU_ACT_FREEZE_ACCOUNT))
        rc = action(out, &first, "freeze_account");
    if (rc == CU_OK && (v->actions & CU_ACT_LOCK_LOGIN))
        rc = action(out, &first, "lock_login");
    if (rc == CU_OK && (v->actions & CU_ACT_REVOKE_SESSIONS))
        rc = action(out, &first, "revoke_sessions");
    if (rc == CU_OK && (v->actions & CU_ACT_NOTIFY_CUSTOMER))
        rc = action(out, &first, "notify_customer");
    if (rc == CU_OK && (v->actions & CU_ACT_ALERT))
        rc = action(out, &first, "alert");
    if (rc == CU_OK)
        rc = cu_buf_append_str(out, "]");
    if (rc == CU_OK && (v->actions & CU_ACT_FREEZE_ACCOUNT))
        rc = cu_buf_printf(out, ",\"freeze_seconds\":%lld", (long long)(v->freeze_ms / 1000));
    if (rc == CU_OK && (v->actions & CU_ACT_LOCK_LOGIN))
        rc = cu_buf_printf(out, ",\"lock_seconds\":%lld", (long long)(v->lock_ms / 1000));
    if (rc == CU_OK && (v->actions & CU_ACT_ALERT))
        rc = cu_buf_printf(out, ",\"alert\":\"%s\"", cu_severity_name(v->severity));
    if (rc == CU_OK && v->nerrors > 0)
        rc = cu_buf_printf(out, ",\"rule_errors\":%zu", v->nerrors);
    return rc;
}
