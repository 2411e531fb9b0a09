/*
 * lane.h - a worker lane: a few threads of their own for slow jobs, so that the threads that
 * hand them over stay free. The server's lane runs requests that hash a password: an Argon2id
 * hash takes tens of milliseconds and a caller may wait seconds for a free hash slot; on a
 * request thread that would stall every other connection the thread serves, so a burst of
 * sign-ins (a password spray from many addresses) could starve reads. The server hands such
 * requests, suspended, to the lane instead.
 *
 * Jobs run in the order they came. A job that waited longer than the lane's max_wait is
 * still called, told it expired, so it can refuse at once ("try again later") instead of
 * starting work whose caller has likely given up.
 */
#ifndef CU_BASE_LANE_H
#define CU_BASE_LANE_H

#include <stdbool.h>
#include <stdint.h>

#include "base/err.h"

struct cu_lane;

/* cu_lane_fn(arg, expired): runs one job on a lane thread; expired says it waited longer than
 * the lane's max_wait. */
typedef void (*cu_lane_fn)(void *arg, bool expired);

/* A job's place in the queue; the caller embeds it and keeps it until its function runs. */
struct cu_lane_job {
    cu_lane_fn fn;
    void *arg;
    uint64_t queued_ns;
    struct cu_lane_job *next;
};

/* cu_lane_new(name, threads, max_wait_ms, out): starts threads (>= 1) threads, named name (at
 * most 15 bytes, as ps -L and top -H show it). Caller frees with cu_lane_free. */
CU_WUR enum cu_err cu_lane_new(const char *name, unsigned threads, unsigned max_wait_ms,
                               struct cu_lane **out);

/* cu_lane_submit(l, job, fn, arg): queues fn(arg, …) to run on a lane thread; CU_OK, or
 * CU_E_UNAVAILABLE (nothing queued) once the lane is stopping. job must stay valid until fn
 * has been called. */
CU_WUR enum cu_err cu_lane_submit(struct cu_lane *l, struct cu_lane_job *job, cu_lane_fn fn,
                                  void *arg);

/* cu_lane_queued(l): jobs waiting, not yet running (for tests and metrics). */
unsigned cu_lane_queued(struct cu_lane *l);

/* cu_lane_stop(l): refuses new jobs, runs every queued one, and joins the threads. Again, or on
 * NULL, does nothing. */
void cu_lane_stop(struct cu_lane *l);

/* cu_lane_free(l): stops l as cu_lane_stop does and frees it; NULL does nothing. */
void cu_lane_free(struct cu_lane *l);

#endif
