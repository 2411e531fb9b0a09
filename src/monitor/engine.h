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
    const struct cu_ruleset *rs;     /* the live set; not owned */
    const struct cu_ruleset *shadow; /* a set run beside it without effect, or NULL */
    struct cu_mon_state *st;         /* one state for the features of both */
    size_t *map[2];                  /* each set's feature numbers in the state's */
};

/* cu_mon_engine_init(e, rs, shadow): an engine with an empty state for rs and, when shadow
 * is not NULL, a shadow set beside it. The two share one state (a feature both read is kept
 * and computed once). */
CU_WUR enum cu_err cu_mon_engine_init(struct cu_mon_engine *e, const struct cu_ruleset *rs,
                                      const struct cu_ruleset *shadow);
void cu_mon_engine_fini(struct cu_mon_engine *e);

/* cu_mon_engine_decide(e, ev, out, shadow_out): decides about ev with the live set (and the
 * shadow set into shadow_out when there is one and shadow_out is not NULL), then records ev.
 * CU_E_NOMEM when the state could not record it (the verdicts stand). */
CU_WUR enum cu_err cu_mon_engine_decide(struct cu_mon_engine *e, const struct cu_mon_event *ev,
                                        struct cu_verdict *out, struct cu_verdict *shadow_out);

/* cu_mon_engine_decide_reads(e, ev, out, shadow_out, reads): cu_mon_engine_decide, noting in
 * reads (when not NULL) what the live set's rules that fired read (rules.h, struct cu_reads). */
CU_WUR enum cu_err cu_mon_engine_decide_reads(struct cu_mon_engine *e,
                                              const struct cu_mon_event *ev, struct cu_verdict *out,
                                              struct cu_verdict *shadow_out,
                                              struct cu_reads *reads);

/* cu_mon_engine_decide_masked(e, ev, out, shadow_out, reads, skip, shadow_skip):
 * cu_mon_engine_decide_reads without the live set's rules in skip and the shadow set's in
 * shadow_skip (each NULL: none), as for a customer's snoozes. */
CU_WUR enum cu_err
cu_mon_engine_decide_masked(struct cu_mon_engine *e, const struct cu_mon_event *ev,
                            struct cu_verdict *out, struct cu_verdict *shadow_out,
                            struct cu_reads *reads, const struct cu_rule_mask *skip,
                            const struct cu_rule_mask *shadow_skip);

/* cu_mon_verdict_json(rs, v, out): appends "decision", "score", "rules" (name and reason of each
 * that fired), "actions" and their parameters as members of a JSON object (no braces). */
CU_WUR enum cu_err cu_mon_verdict_json(const struct cu_ruleset *rs, const struct cu_verdict *v,
                                       struct cu_buf *out);

#endif
