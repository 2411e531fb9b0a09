/*
 * query.c - reading the journal: one transfer, the transfers of an external reference, an
 * account's entries, the change stream and the head (ledger.h).
 */
#include <string.h>

#include "base/mem.h"
#include "ledger/ledger_int.h"

#define FROM_TRANSFERS " FROM ledger_transfers t LEFT JOIN ledger_pending p ON p.transfer = t.id "

/* Reads every row of a query (at most cap) into a new array. */
static enum cu_err read_all(struct cu_db *db, const char *sql, const struct cu_val *p, size_t np,
                            size_t cap, struct cu_ledger_transfer **out, size_t *n)
{
    struct cu_ledger_transfer *v = NULL;
    struct cu_stmt *st = NULL;
    bool row = false;
    enum cu_err rc;

    *out = NULL;
    *n = 0;
    if (cap == 0)
        return CU_OK;
    if ((v = cu_calloc(cap, sizeof(*v))) == NULL)
        return CU_E_NOMEM;
    rc = cu_db_query(db, sql, p, np, &st);
    while (rc == CU_OK && *n < cap && (rc = cu_stmt_next(st, &row)) == CU_OK && row) {
        rc = cu_ledger_transfer_read(st, &v[*n]);
        (*n)++;
    }
    cu_stmt_done(st);
    if (rc != CU_OK) {
        cu_ledger_transfers_free(v, *n);
        *n = 0;
        return rc;
    }
    *out = v;
    return CU_OK;
}

enum cu_err cu_ledger_transfer_get(struct cu_db *db, const char *id, struct cu_ledger_transfer *out)
{
    static const char sql[] = "SELECT " LEDGER_TRANSFER_COLS FROM_TRANSFERS "WHERE t.id = $1";
    const struct cu_val p[] = {CU_VT(id)};
    struct cu_ledger_transfer *v = NULL;
    size_t n = 0;
    enum cu_err rc;

    memset(out, 0, sizeof(*out));
    if (!cu_ledger_id_valid(id, "trf_"))
        return CU_E_NOT_FOUND;
    rc = read_all(db, sql, p, CU_NVALS(p), 1, &v, &n);
    if (rc == CU_OK && n == 0)
        rc = CU_E_NOT_FOUND;
    if (rc == CU_OK) {
        *out = v[0]; /* takes its metadata */
        v[0].metadata = NULL;
    }
    cu_ledger_transfers_free(v, n);
    return rc;
}

enum cu_err cu_ledger_transfers_by_ref(struct cu_db *db, const char *ref,
                                       struct cu_ledger_transfer **out, size_t *n)
{
    static const char sql[] =
        "SELECT " LEDGER_TRANSFER_COLS FROM_TRANSFERS "WHERE t.external_ref = $1 ORDER BY t.seq "
        "LIMIT 100";
    const struct cu_val p[] = {CU_VT(ref)};
    return read_all(db, sql, p, CU_NVALS(p), 100, out, n);
}

enum cu_err cu_ledger_entries(struct cu_db *db, const struct cu_ledger_entry_filter *f,
                              struct cu_ledger_transfer **out, size_t *n)
{
    /* either side of the account, after the cursor, within the bounds */
    static const char sql[] =
        "SELECT " LEDGER_TRANSFER_COLS FROM_TRANSFERS
        "WHERE (t.debit_account = $1 OR t.credit_account = $1) AND t.seq > $2 "
        "AND ($3 = 0 OR t.at >= $3) AND ($4 = 0 OR t.at < $4) "
        "AND ($5 = '' OR t.debit_account = $5 OR t.credit_account = $5) "
        "AND ($6 = '' OR t.code = $6) ORDER BY t.seq LIMIT $7";
    const struct cu_val p[] = {CU_VT(f->account),
                               CU_VI(f->after_seq),
                               CU_VI(f->from),
                               CU_VI(f->until),
                               CU_VT(f->counterparty ? f->counterparty : ""),
                               CU_VT(f->code ? f->code : ""),
                               CU_VI(f->limit)};
    if (f->limit == 0 || f->limit > 1000)
        return CU_E_INVALID;
    return read_all(db, sql, p, CU_NVALS(p), f->limit, out, n);
}

enum cu_err cu_ledger_changes(struct cu_db *db, int64_t after, size_t limit,
                              struct cu_ledger_transfer **out, size_t *n)
{
    static const char sql[] =
        "SELECT " LEDGER_TRANSFER_COLS FROM_TRANSFERS "WHERE t.seq > $1 ORDER BY t.seq LIMIT $2";
    const struct cu_val p[] = {CU_VI(after), CU_VI(limit)};
    if (limit == 0 || limit > 1000)
        return CU_E_INVALID;
    return read_all(db, sql, p, CU_NVALS(p), limit, out, n);
}

enum cu_err cu_ledger_head(struct cu_db *db, int64_t *seq)
{
    static const char sql[] = "SELECT seq FROM ledger_head WHERE id = 1";
    struct cu_stmt *st = NULL;
    bool row = false;
    enum cu_err rc = cu_db_query(db, sql, NULL, 0, &st);

    *seq = 0;
    if (rc == CU_OK)
        rc = cu_stmt_next(st, &row);
    if (rc == CU_OK && !row)
        rc = CU_E_CORRUPT;
    if (rc == CU_OK)
        *seq = cu_stmt_int(st, 0);
    cu_stmt_done(st);
    return rc;
}

enum cu_err cu_ledger_chain_links(struct cu_db *db, const char *id, char (*ids)[CU_LEDGER_ID_BYTES],
                                  size_t cap, size_t *n)
{
    static const char sql[] =
        "SELECT o.transfer FROM ledger_pending p JOIN ledger_pending o ON o.chain = p.chain "
        "WHERE p.transfer = $1 AND p.chain IS NOT NULL AND o.transfer <> $1 AND o.status = "
        "'pending' ORDER BY o.transfer";
    const struct cu_val v[] = {CU_VT(id)};
    struct cu_stmt *st = NULL;
    bool row = false;
    enum cu_err rc = cu_db_query(db, sql, v, CU_NVALS(v), &st);

    *n = 0;
    while (rc == CU_OK && *n < cap && (rc = cu_stmt_next(st, &row)) == CU_OK && row) {
        size_t len = 0;
        const char *t = cu_stmt_text(st, 0, &len);
        snprintf(ids[*n], CU_LEDGER_ID_BYTES, "%.*s", (int)(len < CU_LEDGER_ID_BYTES ? len : 0), t);
        ++*n;
    }
    cu_stmt_done(st);
    return rc;
}
