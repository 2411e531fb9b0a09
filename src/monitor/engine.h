/*
 * engine.h - the monitoring engine: a compiled rule set with its state, deciding event by
 * event (the features read with the event counted in, the rules evaluated, the event then
 * recorded). The replay tool, the benchmarks and the server use this one path.
 */
#ifndef CU_MONITOR_ENGINE_H
#define CU_MONITOR_ENGINE_H

#include "base/err.h"
#include "monitor/event.h"
#include "monitor/rules.h"
#include "monitor/state.h"

struct cu_mon_engine {
    const struct cu_ruleset *rs; /* not owned */
    struct cu_mon_state *st;
};

/* cu_mon_engine_init(e, rs): an engine with an empty state for rs. */
CU_WUR enum cu_err cu_mon_engine_init(struct cu_mon_engine *e, const struct cu_ruleset *rs);
void cu_mon_engine_fini(struct cu_mon_engine *e);

/* cu_mon_engine_decide(e, ev, out): decides about ev and records it. CU_E_NOMEM when the
 * state could not record it (the verdict stands). */
CU_WUR enum cu_err cu_mon_engine_decide(struct cu_mon_engine *e, const struct cu_mon_event *ev,
                                        struct cu_verdict *out);

/* cu_mon_verdict_json(rs, v, out): appends "decision", "score", "rules" (name and reason of each
 * that fired), "actions" and their parameters as members of a JSON object (no braces). */
CU_WUR enum cu_err cu_mon_verdict_json(const struct cu_ruleset *rs, const struct cu_verdict *v,
                                       struct cu_buf *out);

#endif
