/*
 * checkpoint.h - signed checkpoints of the audit log, proofs against them, and verification
 * of the whole log.
 *
 * The leaves of the log's Merkle tree (RFC 6962) are the records' chain hashes, in order:
 * leaf i (from 0) is record seq i + 1. A checkpoint states a tree size and its root in a C2SP
 * signed note; inclusion and consistency proofs let an outsider check a record against a
 * checkpoint, and a later checkpoint against an earlier one.
 */
#ifndef CU_AUDIT_CHECKPOINT_H
#define CU_AUDIT_CHECKPOINT_H

#include <stdbool.h>
#include <stdint.h>

#include "audit/audit.h"
#include "audit/merkle.h"
#include "audit/note.h"

struct cu_audit_checkpoint {
    int64_t tree_size;
    cu_merkle_hash root;
    int64_t created_at;
    char note[CU_NOTE_BYTES];
};

/* A checkpoint to make in a unit of work (cu_audit_checkpoint_apply). */
struct cu_audit_checkpoint_job {
    struct cu_audit *audit;
    bool force;
    bool made;                     /* out: whether one was made */
    struct cu_audit_checkpoint cp; /* out: the one made */
    /* Filled before the unit by cu_audit_checkpoint_make's read half; ready says so. */
    bool ready, due;
    int64_t from, upto;                      /* the tree built: records (from, upto] added */
    uint8_t upto_hash[CU_MERKLE_HASH_BYTES]; /* record upto's hash as read */
    struct cu_merkle_builder tree;
};

/* cu_audit_checkpoint_apply(w, db, job): the change (a cu_work_fn) that makes a checkpoint of
 * the whole log when records exist that the latest checkpoint does not cover and job->force
 * is set, or checkpoint_records of them have gathered, or checkpoint_seconds have passed since
 * the latest; job->made says whether one was made, job->cp is it. CU_E_CORRUPT (nothing made)
 * if the records since the latest checkpoint do not chain. */
CU_WUR enum cu_err cu_audit_checkpoint_apply(struct cu_work *w, struct cu_db *db, void *job);

/* cu_audit_checkpoint_make(a, c, force, made, out): cu_audit_checkpoint_apply in a unit of
 * work of the system's, through committer c, waiting until it is durable. *made says whether
 * one was made; out (may be NULL) gets it. */
CU_WUR enum cu_err cu_audit_checkpoint_make(struct cu_audit *a, struct cu_committer *c, bool force,
                                            bool *made, struct cu_audit_checkpoint *out);

/* cu_audit_checkpoint_get(db, size, out): the checkpoint of that tree size, or the latest
 * when size is 0. CU_E_NOT_FOUND when there is none. */
CU_WUR enum cu_err cu_audit_checkpoint_get(struct cu_db *db, int64_t size,
                                           struct cu_audit_checkpoint *out);

/* cu_audit_inclusion(db, seq, size, leaf, proof, len): the proof that record seq is leaf
 * seq - 1 of the tree of the first size records (proof holds CU_MERKLE_MAX_PROOF); leaf gets
 * the leaf hash. CU_E_INVALID unless 1 <= seq <= size <= the log's length. */
CU_WUR enum cu_err cu_audit_inclusion(struct cu_db *db, int64_t seq, int64_t size,
                                      cu_merkle_hash leaf, cu_merkle_hash *proof, size_t *len);

/* cu_audit_consistency(db, from, to, proof, len): the proof that the tree of the first from
 * records is a prefix of the tree of the first to. CU_E_INVALID unless
 * 1 <= from <= to <= the log's length. */
CU_WUR enum cu_err cu_audit_consistency(struct cu_db *db, int64_t from, int64_t to,
                                        cu_merkle_hash *proof, size_t *len);

/* What cu_audit_verify found. */
struct cu_audit_verify_report {
    bool ok;
    int64_t records;     /* records checked */
    int64_t checkpoints; /* checkpoints checked */
    int64_t bad_seq;     /* the first sequence number found broken (0 when ok) */
    char problem[256];   /* what is wrong there */
};

/* Progress: called now and then with records checked so far and the total. */
typedef void (*cu_audit_progress_fn)(void *ctx, int64_t done, int64_t total);

/* cu_audit_verify(a, db, from, progress, ctx, rep): walks the records from seq `from` (1 for
 * all) in order, recomputing every hash and link, rebuilding the Merkle tree, and checking
 * every checkpoint's root and signature, and the head. Stops at the first break and describes
 * it in rep (hash mismatch, gap, chain break, bad signature, root mismatch, …). Returns CU_OK
 * whether or not the log is intact (see rep->ok); an error only when it could not read. */
CU_WUR enum cu_err cu_audit_verify(const struct cu_audit *a, struct cu_db *db, int64_t from,
                                   cu_audit_progress_fn progress, void *ctx,
                                   struct cu_audit_verify_report *rep);

/* cu_audit_verify_against(a, db, from, kept, progress, ctx, rep): cu_audit_verify, also
 * checking the log against a checkpoint kept outside the database (kept: its signed note,
 * already opened with cu_audit_open_note): the log must be at least that long and its tree of
 * that size must have that root. This finds what no check inside the database can: a log cut
 * short together with its own checkpoints. */
CU_WUR enum cu_err cu_audit_verify_against(const struct cu_audit *a, struct cu_db *db, int64_t from,
                                           const struct cu_audit_checkpoint *kept,
                                           cu_audit_progress_fn progress, void *ctx,
                                           struct cu_audit_verify_report *rep);

/* cu_audit_open_note(a, note, len, out): checks that note is a checkpoint signed by this log's
 * key (under the origin it names) and fills out (created_at 0). CU_E_CRYPTO when the
 * signature does not check, CU_E_INVALID when it is not a checkpoint note. */
CU_WUR enum cu_err cu_audit_open_note(const struct cu_audit *a, const char *note, size_t len,
                                      struct cu_audit_checkpoint *out);

#endif
