/*
 * engine.c - the monitoring engine (engine.h).
 */
#include "monitor/engine.h"

#include <string.h>

#include "base/json.h"

enum cu_err cu_mon_engine_init(struct cu_mon_engine *e, const struct cu_ruleset *rs)
{
    const struct cu_feature *f = NULL;
    size_t n = cu_rules_features(rs, &f);
    e->rs = rs;
    return cu_mon_state_new(f, n, &e->st);
}

void cu_mon_engine_fini(struct cu_mon_engine *e)
{
    cu_mon_state_free(e->st);
    e->st = NULL;
}

enum cu_err cu_mon_engine_decide(struct cu_mon_engine *e, const struct cu_mon_event *ev,
                                 struct cu_verdict *out)
{
    struct cu_mon_probe probe;
    struct cu_feature_source src;
    cu_mon_state_source(e->st, ev, &probe, &src);
    cu_rules_eval(e->rs, ev, &src, out);
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
