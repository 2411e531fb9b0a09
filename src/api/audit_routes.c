/*
 * audit_routes.c - the audit routes: search the log (newest first), the latest signed
 * checkpoint, inclusion and consistency proofs against checkpoints, and the public key that
 * checks them. Reading the audit log is itself audited.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/handlers.h"
#include "api/server.h"
#include "audit/checkpoint.h"
#include "base/clock.h"
#include "base/mem.h"

/* Parses a decimal integer query argument in [min, max]; absent leaves *out. */
static enum cu_err query_int(struct cu_req *req, struct cu_resp *resp, const char *name,
                             bool required, int64_t min, int64_t max, int64_t *out)
{
    const char *v = cu_req_query(req, name);
    char *end = NULL;
    long long x;

    if (v == NULL)
        return required ? cu_resp_fail(resp, CU_E_INVALID, "query argument '%s' is required", name)
                        : CU_OK;
    errno = 0;
    x = strtoll(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || x < min || x > max)
        return cu_resp_fail(resp, CU_E_INVALID,
                            "query argument '%s' must be an integer from "
                            "%lld to %lld",
                            name, (long long)min, (long long)max);
    *out = x;
    return CU_OK;
}

static enum cu_err query_time(struct cu_req *req, struct cu_resp *resp, const char *name,
                              int64_t *out)
{
    const char *v = cu_req_query(req, name);
    if (v != NULL && (strlen(v) > 64 || cu_clock_parse(v, out) != CU_OK))
        return cu_resp_fail(resp, CU_E_INVALID, "query argument '%s' must be an RFC 3339 time",
                            name);
    return CU_OK;
}

static enum cu_err query_text(struct cu_req *req, struct cu_resp *resp, const char *name,
                              const char **out)
{
    const char *v = cu_req_query(req, name);
    if (v != NULL && (v[0] == '\0' || strlen(v) > CU_AUDIT_FIELD_MAX))
        return cu_resp_fail(resp, CU_E_INVALID, "query argument '%s' must be 1 to %d bytes", name,
                            CU_AUDIT_FIELD_MAX);
    *out = v;
    return CU_OK;
}

static enum cu_err parse_filter(struct cu_req *req, struct cu_resp *resp, struct cu_audit_filter *f,
                                int64_t *limit)
{
    enum cu_err rc = query_text(req, resp, "actor", &f->actor_id);
    if (rc == CU_OK)
        rc = query_text(req, resp, "action", &f->action);
    if (rc == CU_OK)
        rc = query_text(req, resp, "target", &f->target);
    if (rc == CU_OK)
        rc = query_time(req, resp, "since", &f->since_ms);
    if (rc == CU_OK)
        rc = query_time(req, resp, "until", &f->until_ms);
    if (rc == CU_OK)
        rc = query_int(req, resp, "before", false, 1, INT64_MAX, &f->before);
    if (rc == CU_OK)
        rc = query_int(req, resp, "limit", false, 1, 1000, limit);
    return rc;
}

enum cu_err cu_handle_audit_list(struct cu_req *req, struct cu_resp *resp)
{
    struct cu_audit_filter f = {0};
    struct cu_audit_record *rs = NULL;
    struct cu_db *db = NULL;
    int64_t limit = 100;
    size_t n = 0;
    enum cu_err rc = parse_filter(req, resp, &f, &limit);

    if (rc != CU_OK)
        return rc;
    rc = cu_req_db(req, &db);
    if (rc == CU_OK)
        rc = cu_audit_list(db, &f, true, (size_t)limit, &rs, &n);
    if (rc == CU_OK)
        rc = cu_req_audit(req, "audit.read", "", "success",
                          json_pack("{s:I}", "count", (json_int_t)n));
    if (rc != CU_OK) {
        cu_audit_records_free(rs, n);
        return cu_resp_fail(resp, rc, "the audit log could not be read");
    }
    json_t *items = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(items, cu_audit_record_json(&rs[i]));
    json_t *v = json_pack("{s:o, s:o?}", "items", items, "next_before",
                          n == (size_t)limit ? json_integer(rs[n - 1].seq) : NULL);
    cu_audit_records_free(rs, n);
    return cu_resp_json(resp, 200, v);
}

/* Standard base64 of a hash, as transparency-log tools print them. */
static json_t *b64_json(const uint8_t *h)
{
    char text[CU_B64_LEN(CU_MERKLE_HASH_BYTES) + 1];
    if (cu_b64_encode(h, CU_MERKLE_HASH_BYTES, text, sizeof(text)) != CU_OK)
        return NULL;
    return json_string(text);
}

static json_t *checkpoint_json(const struct cu_audit_checkpoint *cp)
{
    char at[CU_RFC3339_BYTES];
    cu_clock_format(cp->created_at, at);
    return json_pack("{s:I, s:o, s:s, s:s}", "tree_size", (json_int_t)cp->tree_size, "root",
                     b64_json(cp->root), "created_at", at, "note", cp->note);
}

enum cu_err cu_handle_audit_checkpoint(struct cu_req *req, struct cu_resp *resp)
{
    struct cu_audit_checkpoint cp;
    struct cu_db *db = NULL;
    enum cu_err rc = cu_req_db(req, &db);

    if (rc == CU_OK)
        rc = cu_audit_checkpoint_get(db, 0, &cp);
    if (rc == CU_OK)
        rc = cu_req_audit(req, "audit.checkpoint.read", "", "success", NULL);
    if (rc == CU_E_NOT_FOUND)
        return cu_resp_fail(resp, rc, "no checkpoint has been made yet");
    if (rc != CU_OK)
        return cu_resp_fail(resp, rc, "the checkpoint could not be read");
    return cu_resp_json(resp, 200, checkpoint_json(&cp));
}

static json_t *proof_json(cu_merkle_hash *proof, size_t len)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < len; i++)
        json_array_append_new(arr, b64_json(proof[i]));
    return arr;
}

/* The checkpoint of tree size `size`, which must exist; fails the response otherwise. */
static enum cu_err need_checkpoint(struct cu_db *db, struct cu_resp *resp, int64_t size,
                                   struct cu_audit_checkpoint *cp)
{
    enum cu_err rc = cu_audit_checkpoint_get(db, size, cp);
    if (rc == CU_E_NOT_FOUND)
        return cu_resp_fail(resp, rc, "no checkpoint has tree size %lld", (long long)size);
    if (rc != CU_OK)
        return cu_resp_fail(resp, rc, "the checkpoint could not be read");
    return CU_OK;
}

enum cu_err cu_handle_audit_proof(struct cu_req *req, struct cu_resp *resp)
{
    cu_merkle_hash proof[CU_MERKLE_MAX_PROOF], leaf;
    struct cu_audit_checkpoint cp;
    struct cu_db *db = NULL;
    int64_t seq = 0, size = 0;
    size_t len = 0;
    char *end = NULL;
    enum cu_err rc;

    errno = 0;
    seq = strtoll(req->params[0], &end, 10);
    if (errno != 0 || end == req->params[0] || *end != '\0' || seq < 1)
        return cu_resp_fail(resp, CU_E_INVALID, "the sequence number must be a positive integer");
    rc = query_int(req, resp, "checkpoint", true, 1, INT64_MAX, &size);
    if (rc == CU_OK)
        rc = cu_req_db(req, &db);
    if (rc == CU_OK)
        rc = need_checkpoint(db, resp, size, &cp);
    if (rc != CU_OK)
        return resp->err ? resp->err : cu_resp_fail(resp, rc, "the proof could not be made");
    if (seq > size)
        return cu_resp_fail(resp, CU_E_INVALID, "record %lld is not in the tree of size %lld",
                            (long long)seq, (long long)size);
    rc = cu_audit_inclusion(db, seq, size, leaf, proof, &len);
    if (rc == CU_OK)
        rc = cu_req_audit(
            req, "audit.proof", "", "success",
            json_pack("{s:I, s:I}", "seq", (json_int_t)seq, "checkpoint", (json_int_t)size));
    if (rc != CU_OK)
        return cu_resp_fail(resp, rc, "the proof could not be made");
    return cu_resp_json(resp, 200,
                        json_pack("{s:I, s:I, s:I, s:o, s:o, s:o, s:s}", "seq", (json_int_t)seq,
                                  "leaf_index", (json_int_t)(seq - 1), "tree_size",
                                  (json_int_t)size, "leaf_hash", b64_json(leaf), "proof",
                                  proof_json(proof, len), "root", b64_json(cp.root), "checkpoint",
                                  cp.note));
}

enum cu_err cu_handle_audit_consistency(struct cu_req *req, struct cu_resp *resp)
{
    cu_merkle_hash proof[CU_MERKLE_MAX_PROOF];
    struct cu_audit_checkpoint a, b;
    struct cu_db *db = NULL;
    int64_t from = 0, to = 0;
    size_t len = 0;
    enum cu_err rc = query_int(req, resp, "from", true, 1, INT64_MAX, &from);

    if (rc == CU_OK)
        rc = query_int(req, resp, "to", true, 1, INT64_MAX, &to);
    if (rc == CU_OK && from > to)
        rc = cu_resp_fail(resp, CU_E_INVALID, "from must not be larger than to");
    if (rc == CU_OK)
        rc = cu_req_db(req, &db);
    if (rc == CU_OK)
        rc = need_checkpoint(db, resp, from, &a);
    if (rc == CU_OK)
        rc = need_checkpoint(db, resp, to, &b);
    if (rc == CU_OK)
        rc = cu_audit_consistency(db, from, to, proof, &len);
    if (rc == CU_OK)
        rc = cu_req_audit(req, "audit.consistency", "", "success",
                          json_pack("{s:I, s:I}", "from", (json_int_t)from, "to", (json_int_t)to));
    if (rc != CU_OK)
        return resp->err ? resp->err : cu_resp_fail(resp, rc, "the proof could not be made");
    return cu_resp_json(resp, 200,
                        json_pack("{s:I, s:I, s:o, s:o, s:o}", "from", (json_int_t)from, "to",
                                  (json_int_t)to, "from_root", b64_json(a.root), "to_root",
                                  b64_json(b.root), "proof", proof_json(proof, len)));
}

enum cu_err cu_handle_audit_public_key(struct cu_req *req, struct cu_resp *resp)
{
    const struct cu_audit *au = req->app->audit;
    uint8_t pub[CU_SIGN_PUBLIC_BYTES];
    char vkey[CU_NOTE_VKEY_BYTES], b64[CU_B64_LEN(CU_SIGN_PUBLIC_BYTES) + 1];
    const char *name = cu_audit_opts_of(au)->origin;

    cu_signer_public_key(cu_audit_signer(au), pub);
    if (cu_note_verifier_key(name, pub, vkey) != CU_OK ||
        cu_b64_encode(pub, sizeof(pub), b64, sizeof(b64)) != CU_OK)
        return cu_resp_fail(resp, CU_E_INTERNAL, "the key could not be encoded");
    return cu_resp_json(resp, 200,
                        json_pack("{s:s, s:s, s:s, s:s}", "algorithm", "ed25519", "key_name", name,
                                  "public_key", b64, "verifier_key", vkey));
}
