/*
 * audit.h - the tamper-evident audit log: what happened, who did it, to what, with what
 * outcome, chained record to record by SHA-256.
 *
 * cu_audit_append writes a record inside the caller's write transaction, so a change and its
 * record commit or roll back together; if the append fails the caller must fail the request
 * (fail closed). Each record stores prev_hash and hash = SHA-256(prev_hash || canonical
 * encoding) (docs/internals/audit.md gives the encoding byte by byte). Secrets never enter a
 * record; identifying values that investigators must be able to match (an e-mail, an IP) go
 * in as keyed hashes made with cu_audit_hash_value. Checkpoints, proofs and verification are
 * in checkpoint.h.
 */
#ifndef CU_AUDIT_AUDIT_H
#define CU_AUDIT_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "audit/merkle.h"
#include "base/err.h"
#include "crypto/keyring.h"
#include "crypto/sign.h"
#include "store/store.h"
#include "store/work.h"

/* Limits on the text fields of a record, in bytes. */
#define CU_AUDIT_FIELD_MAX 256
#define CU_AUDIT_DETAILS_MAX 8192
/* Bytes for a keyed hash as text: "hk:" + 43 base64url characters + NUL. */
#define CU_AUDIT_HASHED_BYTES 48

struct cu_audit_opts {
    const char *origin;          /* the log's name in checkpoints, e.g. "example.com/custodia" */
    bool hash_source_ip;         /* store source IPs as keyed hashes */
    unsigned checkpoint_records; /* a checkpoint at least every this many records */
    unsigned checkpoint_seconds; /* and at least this often while records arrive */
};

/* What an append records. Every string may be NULL (stored as ""). */
struct cu_audit_event {
    const char *actor_type; /* "apikey", "staff", "customer", "system" */
    const char *actor_id;   /* the principal's id; "" for the system */
    const char *action;     /* stable dotted name: "apikey.create", "auth.failed" */
    const char *target;     /* what was acted on: "apikey:ak_…"; "" if nothing */
    const char *outcome;    /* "success", "failure" or "denied" */
    const char *request_id;
    const char *source_ip; /* stored hashed when hash_source_ip */
    const json_t *details; /* an object or NULL; never secrets, never plaintext PII */
    /* Or, in place of details, the object already as canonical text (cu_json_canonical's
     * form), for hot paths; it must be a JSON object in braces, UTF-8, at most
     * CU_AUDIT_DETAILS_MAX bytes. */
    const char *details_text;
};

/* A stored record, as read back. Strings are owned by the record. */
struct cu_audit_record {
    int64_t seq;
    int64_t time_ms;
    char actor_type[32];
    char actor_id[CU_AUDIT_FIELD_MAX + 1];
    char action[CU_AUDIT_FIELD_MAX + 1];
    char target[CU_AUDIT_FIELD_MAX + 1];
    char outcome[16];
    char request_id[64];
    char source[CU_AUDIT_FIELD_MAX + 1];
    char *details; /* JSON text; cu_audit_record_clear frees it */
    uint8_t prev_hash[CU_MERKLE_HASH_BYTES];
    uint8_t hash[CU_MERKLE_HASH_BYTES];
};

struct cu_audit;

/* cu_audit_new(kr, opts, out): the audit service, with its signing key and hashing key
 * derived from kr. Caller frees *out with cu_audit_free(). CU_E_INVALID for a bad origin. */
CU_WUR enum cu_err cu_audit_new(const struct cu_keyring *kr, const struct cu_audit_opts *opts,
                                struct cu_audit **out);

/* cu_audit_free(a): wipes and frees a; NULL does nothing. */
void cu_audit_free(struct cu_audit *a);

/* cu_audit_opts_of(a): the options a was made with (owned by a). */
const struct cu_audit_opts *cu_audit_opts_of(const struct cu_audit *a);

/* cu_audit_signer(a): the checkpoint signing key (owned by a). */
const struct cu_signer *cu_audit_signer(const struct cu_audit *a);

/* cu_audit_append(a, db, ev, seq): appends a record for ev inside the caller's write
 * transaction on db and writes its sequence number into *seq (may be NULL). CU_E_INVALID for
 * an event with a field over its limit, an unknown outcome or details that are not an object;
 * store errors otherwise. On error the caller must roll back and fail. */
CU_WUR enum cu_err cu_audit_append(struct cu_audit *a, struct cu_db *db,
                                   const struct cu_audit_event *ev, int64_t *seq);

/* cu_audit_append_many(a, db, evs, n, rcs): appends a record for each of the n events, in
 * order, inside the caller's write transaction, reading the chain's head once and moving it
 * once (for group commit). rcs[i] gets each event's own result: CU_E_INVALID or
 * CU_E_TOO_LARGE for one the log refuses (it is skipped, the others go on). Returns a store
 * error (then the caller must roll back and fail them all), else CU_OK. */
CU_WUR enum cu_err cu_audit_append_many(struct cu_audit *a, struct cu_db *db,
                                        const struct cu_audit_event *const *evs, size_t n,
                                        enum cu_err *rcs);

/* cu_audit_sink(a): the audit sink of the group committer (store/work.h): appends a unit's
 * records with its actor, request id and source address, in the unit's savepoint. The sink
 * holds a, which must outlive the committer. */
struct cu_work_audit_sink cu_audit_sink(struct cu_audit *a);

/* cu_audit_hash_value(a, kind, value, out): CU_OK (CU_E_NOMEM) and the keyed hash that stands for
 * an identifying value of a kind ("email", "ip", …) in records: "hk:" + base64url(BLAKE2b-256 keyed
 * with the audit hashing key over kind || 0x00 || value), into out (CU_AUDIT_HASHED_BYTES). */
CU_WUR enum cu_err cu_audit_hash_value(const struct cu_audit *a, const char *kind,
                                       const char *value, char out[CU_AUDIT_HASHED_BYTES]);

/* The eight text fields of a record in canonical order: actor_type, actor_id, action, target,
 * outcome, request_id, source, details. */
#define CU_AUDIT_TEXT_FIELDS 8
struct cu_audit_text {
    const char *p;
    size_t n;
};

/* cu_audit_hash_parts(prev, seq, time_ms, fields, out): SHA-256(prev || canonical encoding)
 * of a record given as its parts (fields: CU_AUDIT_TEXT_FIELDS, in canonical order), without
 * allocating. CU_E_TOO_LARGE when the fields pass the record limits. */
CU_WUR enum cu_err cu_audit_hash_parts(const uint8_t prev[CU_MERKLE_HASH_BYTES], int64_t seq,
                                       int64_t time_ms, const struct cu_audit_text *fields,
                                       uint8_t out[CU_MERKLE_HASH_BYTES]);

/* cu_audit_record_hash(prev, r, out): SHA-256(prev || canonical(r)), as the chain defines it. */
CU_WUR enum cu_err cu_audit_record_hash(const uint8_t prev[CU_MERKLE_HASH_BYTES],
                                        const struct cu_audit_record *r,
                                        uint8_t out[CU_MERKLE_HASH_BYTES]);

/* Filters for cu_audit_list; NULL or 0 fields do not filter. */
struct cu_audit_filter {
    const char *actor_id;
    const char *action;
    const char *target;
    int64_t since_ms; /* time >= since */
    int64_t until_ms; /* time < until */
    int64_t before;   /* seq < before: the cursor for the next page */
    int64_t after;    /* seq > after (for export and tail, oldest first) */
};

/* cu_audit_list(db, f, newest_first, limit, out, n): up to limit (1..1000) records matching f.
 * Caller frees *out with cu_audit_records_free(*out, *n). */
CU_WUR enum cu_err cu_audit_list(struct cu_db *db, const struct cu_audit_filter *f,
                                 bool newest_first, size_t limit, struct cu_audit_record **out,
                                 size_t *n);

/* cu_audit_get(db, seq, r): one record. CU_E_NOT_FOUND when there is none. Clear r with
 * cu_audit_record_clear. */
CU_WUR enum cu_err cu_audit_get(struct cu_db *db, int64_t seq, struct cu_audit_record *r);

/* cu_audit_head(db, seq, hash): the last sequence number (0 when empty) and its hash. */
CU_WUR enum cu_err cu_audit_head(struct cu_db *db, int64_t *seq,
                                 uint8_t hash[CU_MERKLE_HASH_BYTES]);

/* cu_audit_record_clear(r): frees what r owns. */
void cu_audit_record_clear(struct cu_audit_record *r);

/* cu_audit_records_free(rs, n): clears and frees an array from cu_audit_list. */
void cu_audit_records_free(struct cu_audit_record *rs, size_t n);

/* cu_audit_record_json(r): the JSON form of a record for the API and export. Caller frees
 * with json_decref. */
json_t *cu_audit_record_json(const struct cu_audit_record *r);

#endif
