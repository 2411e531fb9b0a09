/*
 * work.h - the unit of work and the group committer (docs/internals/work.md).
 *
 * A unit of work is everything one request (or one CLI command, or one background job) changes:
 * an apply function that runs the change inside a transaction, the audit records of it, the
 * events it emits and the effects to run once it is durable. It carries who acts and from where
 * (struct cu_work_ctx), so that services audit with it directly.
 *
 * The group committer is one writer thread. It takes every unit waiting, opens one write
 * transaction, runs each unit under a savepoint of its own (apply, then the unit's audit
 * records, then its events, through the sinks the owner of the committer installs), and makes
 * them durable with one COMMIT. A unit that fails rolls back to its savepoint alone and the
 * others commit; one that loses a race (CU_E_BUSY) is run again, up to a bound. Each unit's
 * outcome goes to its done callback after the commit, so an answer is sent only once what it
 * reports is on disk; a unit whose group could not commit gets the commit's error.
 *
 * The engine knows no service: audit and events reach the services through sinks (function
 * tables), and who acts is text (actor type and id) plus an opaque principal pointer that the
 * access layer reads.
 */
#ifndef CU_STORE_WORK_H
#define CU_STORE_WORK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "base/err.h"
#include "store/store.h"

struct cu_work;      /* one unit of work */
struct cu_committer; /* the group committer */

/* Limits of one unit: every list has a named maximum and going past it is an error. */
#define CU_WORK_RECORDS_MAX 16
#define CU_WORK_EVENTS_MAX 2048 /* a batch of 1,000 transfers emits one each */
#define CU_WORK_EFFECTS_MAX 8
#define CU_WORK_CHANGES_MAX 4
/* Bytes of the text fields of the context, with the NUL. */
#define CU_WORK_ID_BYTES 64
#define CU_WORK_ACTOR_TYPE_BYTES 16
#define CU_WORK_IP_BYTES 64
#define CU_WORK_AGENT_BYTES 256
#define CU_WORK_DEVICE_BYTES 128
/* The most bytes of a record's target and of a record's or event's details text. */
#define CU_WORK_TARGET_MAX 256
#define CU_WORK_DETAILS_MAX 8192

/* Who acts and from where. Strings are copied into the unit. */
struct cu_work_ctx {
    char request_id[CU_WORK_ID_BYTES];         /* "" for none */
    int64_t now_ms;                            /* the clock when the unit began */
    char actor_type[CU_WORK_ACTOR_TYPE_BYTES]; /* "apikey", "staff", "customer", "system",
                                                  "anonymous" */
    char actor_id[CU_WORK_ID_BYTES];           /* "" for the system and the anonymous */
    char source_ip[CU_WORK_IP_BYTES];          /* the client's address, as received */
    char kept_ip[CU_WORK_IP_BYTES]; /* the address as custodia keeps it beyond the audit log (a
                                       keyed hash by default: [audit] hash_source_ip) */
    char user_agent[CU_WORK_AGENT_BYTES];
    char device_id[CU_WORK_DEVICE_BYTES];
    int aal;               /* the session's assurance level; 0: none */
    const void *principal; /* the access layer's principal; NULL: none */
};

/* An audit record a unit asks for. action and outcome are static strings. */
struct cu_work_record {
    const char *action;
    const char *outcome;
    char *target;  /* owned by the unit */
    char *details; /* canonical JSON text of an object, owned by the unit; NULL: none */
};

/* An event a unit emits (for the monitoring engine). type is a static string. */
struct cu_work_event {
    const char *type;
    char *body;       /* canonical JSON text of an object, owned by the unit */
    char subject[32]; /* whom it is about (a customer's id), for looking it up; "" when none */
};

/* The change: runs inside the committer's transaction on db, under the unit's savepoint, on
 * the writer thread. Returns CU_OK to keep what it did, an error to undo it (the unit then
 * fails with that error). It may run more than once (after CU_E_BUSY): it must overwrite, not
 * accumulate, what it hands back through arg, and do nothing outside db and the unit that a
 * second run would repeat: effects on the world go through cu_work_after. */
typedef enum cu_err (*cu_work_fn)(struct cu_work *w, struct cu_db *db, void *arg);

/* An effect, run on the writer thread once the unit is durable (and never when it is not), with
 * the writer's connection outside any transaction (for what must follow a commit and cannot be
 * inside one: the store's purge after an erasure). It must be quick and must not wait for the
 * committer. */
typedef void (*cu_work_effect_fn)(void *arg, struct cu_db *db);

/* A unit's outcome: CU_OK when durable, else why nothing of it was kept. Called exactly once,
 * on the writer thread, after the group's commit (or on the submitting thread when the
 * submission itself fails, see cu_committer_submit). */
typedef void (*cu_work_done_fn)(void *arg, enum cu_err rc);

/* How audit records reach the audit log: append the n records of w, in order, on db inside the
 * unit's savepoint. An error fails the unit (fail closed). */
struct cu_work_audit_sink {
    enum cu_err (*append)(void *arg, struct cu_db *db, const struct cu_work *w,
                          const struct cu_work_record *recs, size_t n);
    void *arg;
    /* NULL, or run first in each group's transaction: takes the chain's lock (the head every
     * group writes), so that groups of several processes on one database run one after the
     * other and take their other locks (balances, heads) in one order: they cannot deadlock */
    enum cu_err (*lock)(void *arg, struct cu_db *db);
};

/* How events are stored: the same, for the n events of w. */
struct cu_work_event_sink {
    enum cu_err (*append)(void *arg, struct cu_db *db, const struct cu_work *w,
                          const struct cu_work_event *evs, size_t n);
    void *arg;
};

/* cu_work_new(ctx, out): a unit for ctx (copied; NULL: the system acting now). Caller frees
 * with cu_work_free. */
CU_WUR enum cu_err cu_work_new(const struct cu_work_ctx *ctx, struct cu_work **out);

/* cu_work_free(w): frees w and what it owns; NULL does nothing. Not while the committer has
 * it. */
void cu_work_free(struct cu_work *w);

/* cu_work_context(w): who acts and from where (owned by w; may be changed until w is
 * submitted). cu_work_context_of: the same, read-only. */
struct cu_work_ctx *cu_work_context(struct cu_work *w);
const struct cu_work_ctx *cu_work_context_of(const struct cu_work *w);

/* cu_work_add(w, apply, arg): a change the unit makes; the changes run in the order added, in
 * the unit's one savepoint (authentication may add one, the handler another). arg must stay
 * valid until the done callback. CU_E_INVALID past CU_WORK_CHANGES_MAX. */
CU_WUR enum cu_err cu_work_add(struct cu_work *w, cu_work_fn apply, void *arg);

/* cu_work_add_first(w, apply, arg): cu_work_add, the change running before those added so far
 * (a check that must see the state before the unit's own changes: a session still live). */
CU_WUR enum cu_err cu_work_add_first(struct cu_work *w, cu_work_fn apply, void *arg);

/* cu_work_pending(w): whether w has something to commit: a change, a record or an event. */
bool cu_work_pending(const struct cu_work *w);

/* cu_work_audit(w, action, target, outcome, details): asks for an audit record of w, committed
 * with it. action and outcome are static strings; target is copied; details (an object, or
 * NULL) is consumed. CU_E_TOO_LARGE for a target or details over their limits, CU_E_INVALID for
 * details that are not an object or a unit already holding CU_WORK_RECORDS_MAX records,
 * CU_E_NOMEM: nothing is added. */
CU_WUR enum cu_err cu_work_audit(struct cu_work *w, const char *action, const char *target,
                                 const char *outcome, json_t *details);

/* cu_work_audit_text(w, action, target, outcome, details): cu_work_audit with the details as
 * canonical JSON text of an object, taken over (malloc'd; NULL: none, or the allocation that
 * failed, which gives CU_E_NOMEM). */
CU_WUR enum cu_err cu_work_audit_text(struct cu_work *w, const char *action, const char *target,
                                      const char *outcome, char *details);

/* cu_work_records(w, n): the records asked for so far (owned by w). */
const struct cu_work_record *cu_work_records(const struct cu_work *w, size_t *n);

/* cu_work_emit(w, type, body): an event of w (type static, body an object, consumed). Errors as
 * cu_work_audit's. */
CU_WUR enum cu_err cu_work_emit(struct cu_work *w, const char *type, json_t *body);

/* cu_work_emit_text(w, type, subject, body): cu_work_emit with the body as canonical JSON text
 * of an object, taken over (malloc'd; NULL: the allocation failed, CU_E_NOMEM), and whom it
 * is about (subject, copied; NULL or "": none). For services that emit many events (a batch
 * of transfers) and write their text themselves. */
CU_WUR enum cu_err cu_work_emit_text(struct cu_work *w, const char *type, const char *subject,
                                     char *body);

/* cu_work_events(w, n): the events emitted so far (owned by w). */
const struct cu_work_event *cu_work_events(const struct cu_work *w, size_t *n);

/* cu_work_after(w, fn, arg): runs fn(arg) once w is durable. CU_E_INVALID past
 * CU_WORK_EFFECTS_MAX. */
CU_WUR enum cu_err cu_work_after(struct cu_work *w, cu_work_effect_fn fn, void *arg);

/* cu_work_actor_text(ctx, out, cap): who acts, as stored beside what they did: "staff:stf_…",
 * "apikey:ak_…", or the type alone for the system and the anonymous. */
void cu_work_actor_text(const struct cu_work_ctx *ctx, char *out, size_t cap);

/* cu_work_audit_room(w): how many more audit records w may ask for (of CU_WORK_RECORDS_MAX). */
size_t cu_work_audit_room(const struct cu_work *w);

/* cu_work_set_readonly(w): w only reads the store and changes this process's memory (another
 * node's events fed into the monitoring state): a group of such units alone takes no lock of
 * the audit chain, which would make every other node's groups wait for it. Such a unit may
 * not ask for an audit record or emit an event (it then fails, CU_E_INVALID), nor write rows
 * that other units lock. */
void cu_work_set_readonly(struct cu_work *w);

/* cu_work_retries(w): how many times the committer ran w again after CU_E_BUSY. */
unsigned cu_work_retries(const struct cu_work *w);

/* What a committer is set up with. */
struct cu_committer_opts {
    unsigned group_units_max; /* units in one transaction; 0: CU_COMMITTER_GROUP_DEFAULT */
    unsigned retries_max;     /* runs of a unit after CU_E_BUSY; 0: CU_COMMITTER_RETRIES_DEFAULT */
    struct cu_work_audit_sink audit;  /* NULL append: a unit with records fails (CU_E_AUDIT) */
    struct cu_work_event_sink events; /* NULL append: events are dropped */
};

#define CU_COMMITTER_GROUP_DEFAULT 256
#define CU_COMMITTER_RETRIES_DEFAULT 3
/* Upper bounds of the latency histogram's buckets, in microseconds, and of the group sizes'. */
#define CU_COMMITTER_LATENCY_BUCKETS 8
#define CU_COMMITTER_SIZE_BUCKETS 8

/* What the committer has done since it started. */
struct cu_committer_stats {
    uint64_t groups;  /* transactions committed or failed */
    uint64_t commits; /* durable commits */
    uint64_t units;   /* units committed */
    uint64_t failed;  /* units failed (their own error or their group's) */
    uint64_t retries; /* runs again after CU_E_BUSY */
    uint64_t queued;  /* units waiting now */
    /* group sizes: counts of groups of at most size_le[i] units, and in all */
    uint64_t size_count[CU_COMMITTER_SIZE_BUCKETS];
    uint64_t size_sum;
    /* commit latency (from a group's BEGIN to its COMMIT's return), in the same form */
    uint64_t latency_count[CU_COMMITTER_LATENCY_BUCKETS];
    uint64_t latency_sum_us;
};

/* The buckets' upper bounds (inclusive), for rendering the histograms. */
extern const unsigned cu_committer_size_le[CU_COMMITTER_SIZE_BUCKETS];
extern const unsigned cu_committer_latency_le_us[CU_COMMITTER_LATENCY_BUCKETS];

/* cu_committer_new(st, opts, out): starts the writer thread on a connection of its own. Caller
 * frees with cu_committer_free. */
CU_WUR enum cu_err cu_committer_new(struct cu_store *st, const struct cu_committer_opts *opts,
                                    struct cu_committer **out);

/* cu_committer_stop(c): commits what is waiting (every done callback of an accepted unit has
 * returned when this does) and stops the thread; later submissions fail with
 * CU_E_UNAVAILABLE. Again, or NULL: nothing. Not concurrently with itself or _free. */
void cu_committer_stop(struct cu_committer *c);

/* cu_committer_free(c): stops c as cu_committer_stop does and frees it; NULL does nothing. */
void cu_committer_free(struct cu_committer *c);

/* cu_committer_submit(c, w, done, arg): hands w to the next group and returns at once. CU_OK:
 * done(arg, rc) is called exactly once, on the writer thread; w must stay valid (and unchanged)
 * until then. CU_E_UNAVAILABLE (stopped): done is not called. */
CU_WUR enum cu_err cu_committer_submit(struct cu_committer *c, struct cu_work *w,
                                       cu_work_done_fn done, void *arg);

/* cu_committer_run(c, w): submits w and waits for its outcome (for the CLI, background jobs and
 * tests; a request thread suspends instead). CU_E_UNAVAILABLE when c is stopped. */
CU_WUR enum cu_err cu_committer_run(struct cu_committer *c, struct cu_work *w);

/* cu_committer_stats(c, out): a snapshot of what c has done. */
void cu_committer_stats(struct cu_committer *c, struct cu_committer_stats *out);

/* cu_committer_store(c): the store c writes to, for the read half of a change that reads much
 * before its unit (an audit checkpoint). */
struct cu_store *cu_committer_store(struct cu_committer *c);

#endif
