/*
 * approval.h - four-eyes approval: the requests that wait for other staff members' approval
 * before custodia runs them, as the store keeps them.
 *
 * An action whose permission the access policy marks `approve … by N within D` is not run when
 * asked: it becomes a pending request, bound to a digest of the exact action (method, target,
 * canonical body, requester), which N distinct staff members other than the requester (and
 * other than the owner of a requesting key) must approve within D. A single rejection ends it;
 * the requester may cancel it; past D it expires and is never run. Once approved, custodia runs
 * it as the requester, exactly once: the change from "approved" to "executed" is made in the
 * action's own unit of work (cu_approval_set_status), so the action and that change commit or
 * fail together. The action's query and body (the payload) and the answer it gave (the result,
 * kept for the requester until read) are sealed under a data key of the request's own, which
 * is destroyed once neither is needed. Every function runs in the caller's transaction (a unit
 * of work) and audits nothing: the routes do (api/approvals_routes.c).
 */
#ifndef CU_ACCESS_APPROVAL_H
#define CU_ACCESS_APPROVAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/err.h"
#include "crypto/kek.h"
#include "crypto/seal.h"
#include "store/store.h"
#include "vault/envelope.h"

#define CU_APPROVAL_ID_BYTES 21            /* "apr_", 16 hex digits, NUL */
#define CU_APPROVAL_PATH_MAX 1024          /* the action's path, without the query */
#define CU_APPROVAL_PAYLOAD_MAX 65536      /* its query and canonical body, as sealed */
#define CU_APPROVAL_RESULT_MAX (256 << 10) /* the answer kept for the requester */
#define CU_APPROVAL_DETAIL_BYTES 512
#define CU_APPROVAL_VOTERS_MAX 8

enum cu_approval_status {
    CU_APPROVAL_PENDING = 0,
    CU_APPROVAL_APPROVED,  /* enough approvals; being run */
    CU_APPROVAL_EXECUTED,  /* run, and its change committed */
    CU_APPROVAL_FAILED,    /* approved, but the action failed when run (nothing changed) */
    CU_APPROVAL_REJECTED,  /* an approver said no */
    CU_APPROVAL_CANCELLED, /* the requester withdrew it */
    CU_APPROVAL_EXPIRED,   /* not approved in time */
};

/* "pending", "approved", …; NULL for an unknown value. */
const char *cu_approval_status_name(enum cu_approval_status s);
/* The status named; false for an unknown name. */
bool cu_approval_status_parse(const char *name, enum cu_approval_status *out);

struct cu_approval_vote {
    char staff_id[32];
    bool approve;
    int64_t at;
};

struct cu_approval {
    char id[CU_APPROVAL_ID_BYTES];
    char permission[32];
    char method[8];
    char path[CU_APPROVAL_PATH_MAX + 1];
    char requester_kind[8];   /* "staff" or "apikey" */
    char requester[32];       /* stf_… or ak_… */
    char requester_owner[32]; /* the staff member behind a requesting key; "" when none */
    int aal;                  /* the requester's session's assurance level (staff), else 0 */
    unsigned needed;
    enum cu_approval_status status;
    int64_t created_at, expires_at, decided_at;   /* decided_at 0: not yet */
    int result_status;                            /* the action's HTTP status once run, else 0 */
    char result_detail[CU_APPROVAL_DETAIL_BYTES]; /* its problem's detail when it failed */
    bool has_result;                              /* a sealed answer waits for the requester */
    struct cu_approval_vote votes[CU_APPROVAL_VOTERS_MAX];
    size_t nvotes;
};

/* The keys of the requests (one DEK each), for the KEK's rotation and retirement. */
extern const struct cu_envelope_kind cu_approval_keys;

struct cu_approvals;

/* cu_approvals_new(kek, alg, out): the service; kek must outlive it. */
CU_WUR enum cu_err cu_approvals_new(struct cu_kek_source *kek, enum cu_aead alg,
                                    struct cu_approvals **out);
void cu_approvals_free(struct cu_approvals *s);
/* The envelope, for re-wrapping DEKs under a new KEK (cu_envelope_rewrap). */
struct cu_envelope *cu_approvals_envelope(struct cu_approvals *s);

/* cu_approval_rewrap(kek, db, batch, done) and cu_approval_kek_usage(db, version, count): the
 * requests' DEKs in a KEK rotation, as customers' and staff members' are (`custodia keys`). */
CU_WUR enum cu_err cu_approval_rewrap(struct cu_kek_source *kek, struct cu_db *db, size_t batch,
                                      size_t *done);
CU_WUR enum cu_err cu_approval_kek_usage(struct cu_db *db, uint32_t version, int64_t *count);

/* cu_approval_create(s, db, a, digest, payload, len): stores a new pending request from a's
 * permission, method, path, requester fields, aal, needed and expires_at, with payload (len at
 * most CU_APPROVAL_PAYLOAD_MAX) sealed; fills a's id, status and created_at. CU_E_EXISTS when
 * an identical request (same digest) is pending already; CU_E_TOO_LARGE for a long payload. */
CU_WUR enum cu_err cu_approval_create(struct cu_approvals *s, struct cu_db *db,
                                      struct cu_approval *a, const uint8_t digest[32],
                                      const char *payload, size_t len);

/* cu_approval_get(db, id, out): one request, with its votes. CU_E_NOT_FOUND when none. */
CU_WUR enum cu_err cu_approval_get(struct cu_db *db, const char *id, struct cu_approval *out);

/* cu_approval_list(db, status, after, limit, items, n): requests by id after `after` (NULL:
 * from the first), only those of *status when status is not NULL, at most limit; *items
 * (cu_free) without their votes. */
CU_WUR enum cu_err cu_approval_list(struct cu_db *db, const enum cu_approval_status *status,
                                    const char *after, size_t limit, struct cu_approval **items,
                                    size_t *n);

/* Whether an earlier approver's vote still counts when a later one comes (the approver is
 * active and still holds the permission); arg is the caller's. */
typedef bool (*cu_approval_voter_fn)(void *arg, struct cu_db *db, const char *staff_id);

/* cu_approval_vote(db, id, staff_id, approve, now, still, arg, out): records staff_id's vote
 * on a pending request and moves it on: a rejection ends it (rejected), the needed-th approval
 * approves it (approved), counting staff_id's and those earlier approvals for which still()
 * says yes (still NULL: every one). *out is the request afterwards. CU_E_NOT_FOUND;
 * CU_E_EXISTS when it is not pending (out tells its status), or has expired (out says
 * expired), or when staff_id voted already (out still pending). Who may vote is the caller's
 * to decide. */
CU_WUR enum cu_err cu_approval_vote(struct cu_db *db, const char *id, const char *staff_id,
                                    bool approve, int64_t now, cu_approval_voter_fn still,
                                    void *arg, struct cu_approval *out);

/* cu_approval_set_status(db, id, from, to, now): moves a request from one status to another,
 * only if it is in `from` (CU_E_EXISTS otherwise, CU_E_NOT_FOUND for none): the exactly-once
 * step of running an approved request. */
CU_WUR enum cu_err cu_approval_set_status(struct cu_db *db, const char *id,
                                          enum cu_approval_status from, enum cu_approval_status to,
                                          int64_t now);

/* cu_approval_payload(s, db, id, out): the sealed query and body of a request, opened into out
 * (the caller wipes it). CU_E_NOT_FOUND when it is no longer kept. */
CU_WUR enum cu_err cu_approval_payload(struct cu_approvals *s, struct cu_db *db, const char *id,
                                       struct cu_buf *out);

/* cu_approval_finish(s, db, id, status, detail, body, len): records how a run went (the HTTP
 * status, the problem's detail or ""), keeps body (len bytes, NULL: none; dropped when longer
 * than CU_APPROVAL_RESULT_MAX) sealed for the requester, and drops the payload. */
CU_WUR enum cu_err cu_approval_finish(struct cu_approvals *s, struct cu_db *db, const char *id,
                                      int status, const char *detail, const char *body, size_t len);

/* cu_approval_result_take(s, db, id, out): the answer kept for the requester, opened into out
 * and dropped from the store with the request's key (it is given once). CU_E_NOT_FOUND when
 * none is kept. */
CU_WUR enum cu_err cu_approval_result_take(struct cu_approvals *s, struct cu_db *db, const char *id,
                                           struct cu_buf *out);

/* cu_approval_close(db, id): drops what a request that will never run keeps (its payload and
 * key): for rejected, cancelled and expired ones. */
CU_WUR enum cu_err cu_approval_close(struct cu_db *db, const char *id);

/* How long the answer of a run is kept for its requester (then dropped with the request's key). */
#define CU_APPROVAL_RESULT_KEEP_MS (7LL * 24 * 3600 * 1000)

/* cu_approval_drop_results(db, before, n): drops the answers (and keys) of the requests that
 * ran at or before `before` and whose requester never read them; *n how many. */
CU_WUR enum cu_err cu_approval_drop_results(struct cu_db *db, int64_t before, int64_t *n);

/* cu_approval_due(db, now, expired, cap, n, approved, acap, an, before): the ids of up to cap
 * pending requests past their time, and of up to acap approved at or before `before` and not
 * run yet (left by a run that stopped before it ended), for the server's housekeeping. */
CU_WUR enum cu_err cu_approval_due(struct cu_db *db, int64_t now,
                                   char (*expired)[CU_APPROVAL_ID_BYTES], size_t cap, size_t *n,
                                   char (*approved)[CU_APPROVAL_ID_BYTES], size_t acap, size_t *an,
                                   int64_t before);

#endif
