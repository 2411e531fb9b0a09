/*
 * check.c - the ledger's invariants, checked from what is stored (docs/ledger.md, "Checking
 * the ledger"): the journal recomputed into balances and compared with the accounts, the sum
 * per currency, the limits, the pending states, the sequence, and the audit record of every
 * movement. It reads, in one snapshot; it changes nothing.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/json.h"
#include "base/mem.h"
#include "ledger/ledger_int.h"

__extension__ typedef __int128 wide;

/* An account as the check needs it: stored totals, and those the journal gives. */
struct acc {
    char id[CU_LEDGER_ID_BYTES];
    char currency[4];
    int64_t overdraft;
    struct cu_ledger_totals stored, journal;
};

struct chk {
    struct cu_db *db;
    struct cu_ledger_check_report *r;
    struct acc *acc;
    size_t nacc;
};

static void violation(struct chk *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void violation(struct chk *c, const char *fmt, ...)
{
    va_list ap;
    if (c->r->violations++ > 0)
        return;
    va_start(ap, fmt);
    vsnprintf(c->r->first, sizeof(c->r->first), fmt, ap);
    va_end(ap);
}

static int by_id(const void *a, const void *b)
{
    return strcmp(((const struct acc *)a)->id, ((const struct acc *)b)->id);
}

/* bsearch's comparison of an id of known length (the key) with an account */
struct id_key {
    const char *id;
    size_t len;
};

static int id_vs_acc(const void *key, const void *elem)
{
    const struct id_key *k = key;
    const char *id = ((const struct acc *)elem)->id;
    int c = strncmp(k->id, id, k->len);
    return c != 0 ? c : id[k->len] == '\0' ? 0 : -1;
}

static struct acc *find(struct chk *c, const char *id, size_t len)
{
    const struct id_key k = {id, len};
    return c->nacc ? bsearch(&k, c->acc, c->nacc, sizeof(*c->acc), id_vs_acc) : NULL;
}

static enum cu_err load_accounts(struct chk *c)
{
    static const char count_sql[] = "SELECT COUNT(*) FROM ledger_accounts";
    static const char sql[] = "SELECT id, currency, overdraft, debits_posted, credits_posted, "
                              "debits_pending, credits_pending FROM ledger_accounts ORDER BY id";
    struct cu_stmt *st = NULL;
    bool row = false;
    int64_t n = 0;
    enum cu_err rc = cu_db_query(c->db, count_sql, NULL, 0, &st);

    if (rc == CU_OK && (rc = cu_stmt_next(st, &row)) == CU_OK && row)
        n = cu_stmt_int(st, 0);
    cu_stmt_done(st);
    if (rc != CU_OK)
        return rc;
    c->acc = cu_calloc(n > 0 ? (size_t)n : 1, sizeof(*c->acc));
    if (c->acc == NULL)
        return CU_E_NOMEM;
    rc = cu_db_query(c->db, sql, NULL, 0, &st);
    while (rc == CU_OK && (rc = cu_stmt_next(st, &row)) == CU_OK && row && (int64_t)c->nacc < n) {
        struct acc *a = &c->acc[c->nacc++];
        size_t len = 0;
        const char *s = cu_stmt_text(st, 0, &len);
        snprintf(a->id, sizeof(a->id), "%.*s", (int)len, s);
        s = cu_stmt_text(st, 1, &len);
        snprintf(a->currency, sizeof(a->currency), "%.*s", (int)len, s);
        a->overdraft = cu_stmt_int(st, 2);
        a->stored.debits_posted = cu_stmt_int(st, 3);
        a->stored.credits_posted = cu_stmt_int(st, 4);
        a->stored.debits_pending = cu_stmt_int(st, 5);
        a->stored.credits_pending = cu_stmt_int(st, 6);
    }
    cu_stmt_done(st);
    /* ORDER BY id in the store's collation is byte order for these ASCII ids; sort anyway */
    if (rc == CU_OK)
        qsort(c->acc, c->nacc, sizeof(*c->acc), by_id);
    c->r->accounts = (int64_t)c->nacc;
    return rc;
}

/* One movement's transfers as they stream by, for its audit record. */
struct movement {
    char id[CU_LEDGER_ID_BYTES];
    int64_t first, last, count;
    struct cu_buf text;
};

static enum cu_err audit_matches(struct chk *c, struct movement *m)
{
    static const char sql[] = "SELECT details FROM audit_log WHERE target = $1 AND "
                              "outcome = 'success' ORDER BY seq";
    char target[8 + CU_LEDGER_ID_BYTES], hex[65];
    struct cu_stmt *st = NULL;
    bool row = false, found = false;
    enum cu_err rc;

    snprintf(target, sizeof(target), "ledger:%s", m->id);
    const struct cu_val p[] = {CU_VT(target)};
    cu_ledger_digest_hex(&m->text, hex);
    rc = cu_db_query(c->db, sql, p, CU_NVALS(p), &st);
    while (rc == CU_OK && !found && (rc = cu_stmt_next(st, &row)) == CU_OK && row) {
        size_t len = 0;
        const char *d = cu_stmt_text(st, 0, &len);
        json_t *v = json_loadb(d, len, 0, NULL);
        const char *dg = json_string_value(json_object_get(v, "digest"));
        found = dg != NULL && strcmp(dg, hex) == 0 &&
                json_integer_value(json_object_get(v, "seq_first")) == m->first &&
                json_integer_value(json_object_get(v, "seq_last")) == m->last &&
                json_integer_value(json_object_get(v, "transfers")) == m->count;
        json_decref(v);
    }
    cu_stmt_done(st);
    if (rc == CU_OK && !found)
        violation(c,
                  "movement %s (transfers %lld to %lld) has no audit record whose digest and "
                  "range match its transfers",
                  m->id, (long long)m->first, (long long)m->last);
    return rc;
}

static bool add_to(struct chk *c, int64_t *x, int64_t v, const char *what, const char *id)
{
    if (__builtin_add_overflow(*x, v, x)) {
        violation(c, "account %s: the journal's %s are beyond 64 bits", id, what);
        return false;
    }
    return true;
}

/* The journal, in seq order: the sequence, each transfer's accounts and currency, the totals
 * it gives each account, and each movement against its audit record. */
static enum cu_err walk_journal(struct chk *c)
{
    static const char sql[] =
        "SELECT t.seq, t.id, t.movement, t.kind, t.debit_account, t.credit_account, t.amount, "
        "t.currency, t.pending, t.code, t.external_ref, t.parent, t.metadata, p.status "
        "FROM ledger_transfers t LEFT JOIN ledger_pending p ON p.transfer = t.id ORDER BY t.seq";
    struct movement m = {.id = ""};
    struct cu_stmt *st = NULL;
    bool row = false;
    int64_t expect = 1;
    enum cu_err rc = cu_db_query(c->db, sql, NULL, 0, &st);

    cu_buf_init(&m.text, SIZE_MAX);
    while (rc == CU_OK && (rc = cu_stmt_next(st, &row)) == CU_OK && row) {
        struct cu_ledger_transfer t;
        size_t len = 0;
        const char *s;
        char state[12] = "";

        memset(&t, 0, sizeof(t));
        t.seq = cu_stmt_int(st, 0);
        s = cu_stmt_text(st, 1, &len);
        snprintf(t.id, sizeof(t.id), "%.*s", (int)len, s);
        s = cu_stmt_text(st, 2, &len);
        snprintf(t.movement, sizeof(t.movement), "%.*s", (int)len, s);
        s = cu_stmt_text(st, 3, &len);
        char kind[12];
        snprintf(kind, sizeof(kind), "%.*s", (int)len, s);
        int k = cu_ledger_kind_parse(kind);
        s = cu_stmt_text(st, 4, &len);
        snprintf(t.debit, sizeof(t.debit), "%.*s", (int)len, s);
        struct acc *d = find(c, s, len);
        s = cu_stmt_text(st, 5, &len);
        snprintf(t.credit, sizeof(t.credit), "%.*s", (int)len, s);
        struct acc *cr = find(c, s, len);
        t.amount = cu_stmt_int(st, 6);
        s = cu_stmt_text(st, 7, &len);
        snprintf(t.currency, sizeof(t.currency), "%.*s", (int)len, s);
        t.pending = cu_stmt_int(st, 8) != 0;
        s = cu_stmt_text(st, 9, &len);
        snprintf(t.code, sizeof(t.code), "%.*s", (int)len, s);
        s = cu_stmt_text(st, 10, &len);
        snprintf(t.external_ref, sizeof(t.external_ref), "%.*s", (int)len, s);
        s = cu_stmt_text(st, 11, &len);
        snprintf(t.parent, sizeof(t.parent), "%.*s", (int)len, s);
        if (!cu_stmt_null(st, 13)) {
            s = cu_stmt_text(st, 13, &len);
            snprintf(state, sizeof(state), "%.*s", (int)len, s);
        }
        c->r->transfers++;

        if (t.seq != expect)
            violation(c, "the journal's sequence jumps from %lld to %lld", (long long)(expect - 1),
                      (long long)t.seq);
        expect = t.seq + 1;
        if (k < 0) {
            violation(c, "transfer %s has an unknown kind", t.id);
            continue;
        }
        t.kind = (enum cu_ledger_kind)k;
        if (d == NULL || cr == NULL) {
            violation(c, "transfer %s names an account that does not exist", t.id);
            continue;
        }
        if (strcmp(d->currency, t.currency) != 0 || strcmp(cr->currency, t.currency) != 0)
            violation(c, "transfer %s is in %s between accounts of %s and %s", t.id, t.currency,
                      d->currency, cr->currency);
        if (t.amount <= 0)
            violation(c, "transfer %s has an amount of %lld", t.id, (long long)t.amount);
        if (t.pending != (state[0] != '\0'))
            violation(c, "transfer %s is %s but has %s pending state", t.id,
                      t.pending ? "pending" : "not pending", state[0] ? "a" : "no");

        /* what it does to the balances (docs/ledger.md, "Balances") */
        bool ok = true;
        if (t.kind == CU_LEDGER_TRANSFER && t.pending) {
            if (strcmp(state, "pending") == 0) {
                ok = add_to(c, &d->journal.debits_pending, t.amount, "pending debits", d->id) &&
                     add_to(c, &cr->journal.credits_pending, t.amount, "pending credits", cr->id);
                c->r->pending++;
            }
        } else if (t.kind == CU_LEDGER_TRANSFER || t.kind == CU_LEDGER_POST ||
                   t.kind == CU_LEDGER_REVERSE) {
            ok = add_to(c, &d->journal.debits_posted, t.amount, "posted debits", d->id) &&
                 add_to(c, &cr->journal.credits_posted, t.amount, "posted credits", cr->id);
        }
        (void)ok;

        /* the movement: its transfers follow one another in the sequence */
        if (strcmp(m.id, t.movement) != 0) {
            if (m.id[0] != '\0' && (rc = audit_matches(c, &m)) != CU_OK)
                break;
            snprintf(m.id, sizeof(m.id), "%s", t.movement);
            m.first = t.seq;
            m.count = 0;
            cu_buf_reset(&m.text);
            c->r->movements++;
        }
        m.last = t.seq;
        m.count++;
        if (!cu_stmt_null(st, 12)) {
            s = cu_stmt_text(st, 12, &len);
            t.metadata = cu_malloc(len + 1);
            if (t.metadata == NULL) {
                rc = CU_E_NOMEM;
                break;
            }
            memcpy(t.metadata, s, len);
            t.metadata[len] = '\0';
        }
        rc = cu_ledger_digest_add(&m.text, &t);
        cu_ledger_transfer_clear(&t);
    }
    cu_stmt_done(st);
    if (rc == CU_OK && m.id[0] != '\0')
        rc = audit_matches(c, &m);
    cu_buf_free(&m.text);
    return rc;
}

/* Every pending state: a pending one reserves its whole amount and nothing resolves it; a
 * resolved one reserves nothing and exactly one post, void or expiry resolves it. */
static enum cu_err check_pending(struct chk *c)
{
    static const char sql[] =
        "SELECT p.transfer, p.status, p.amount, t.amount, t.kind, t.pending, "
        "(SELECT COUNT(*) FROM ledger_transfers r WHERE r.parent = p.transfer AND "
        "r.kind IN ('post', 'void', 'expire')), "
        "(SELECT MAX(r.amount) FROM ledger_transfers r WHERE r.parent = p.transfer AND "
        "r.kind IN ('post', 'void', 'expire')), "
        "(SELECT MIN(r.kind) FROM ledger_transfers r WHERE r.parent = p.transfer AND "
        "r.kind IN ('post', 'void', 'expire')) "
        "FROM ledger_pending p LEFT JOIN ledger_transfers t ON t.id = p.transfer";
    static const char orphans_sql[] =
        "SELECT r.id FROM ledger_transfers r LEFT JOIN ledger_pending p ON p.transfer = r.parent "
        "WHERE r.kind IN ('post', 'void', 'expire') AND (p.transfer IS NULL OR p.status = "
        "'pending') LIMIT 1";
    struct cu_stmt *st = NULL;
    bool row = false;
    enum cu_err rc = cu_db_query(c->db, sql, NULL, 0, &st);

    while (rc == CU_OK && (rc = cu_stmt_next(st, &row)) == CU_OK && row) {
        size_t len = 0;
        const char *s = cu_stmt_text(st, 0, &len);
        char id[CU_LEDGER_ID_BYTES], status[12], kind[12] = "";
        snprintf(id, sizeof(id), "%.*s", (int)len, s);
        s = cu_stmt_text(st, 1, &len);
        snprintf(status, sizeof(status), "%.*s", (int)len, s);
        int64_t reserved = cu_stmt_int(st, 2), amount = cu_stmt_int(st, 3);
        bool exists = !cu_stmt_null(st, 3), pending = cu_stmt_int(st, 5) != 0;
        int64_t children = cu_stmt_int(st, 6), child_amount = cu_stmt_int(st, 7);
        if (!cu_stmt_null(st, 8)) {
            s = cu_stmt_text(st, 8, &len);
            snprintf(kind, sizeof(kind), "%.*s", (int)len, s);
        }
        if (!exists || !pending) {
            violation(c, "pending state %s belongs to no pending transfer", id);
        } else if (strcmp(status, "pending") == 0) {
            if (reserved != amount || children != 0)
                violation(c, "pending transfer %s reserves %lld of %lld, with %lld resolutions", id,
                          (long long)reserved, (long long)amount, (long long)children);
        } else {
            bool kind_ok = (strcmp(status, "posted") == 0 && strcmp(kind, "post") == 0 &&
                            child_amount <= amount) ||
                           (strcmp(status, "voided") == 0 && strcmp(kind, "void") == 0 &&
                            child_amount == amount) ||
                           (strcmp(status, "expired") == 0 && strcmp(kind, "expire") == 0 &&
                            child_amount == amount);
            if (reserved != 0 || children != 1 || !kind_ok)
                violation(c, "pending transfer %s is %s but its resolution does not agree", id,
                          status);
        }
    }
    cu_stmt_done(st);
    if (rc == CU_OK)
        rc = cu_db_query(c->db, orphans_sql, NULL, 0, &st);
    if (rc == CU_OK && (rc = cu_stmt_next(st, &row)) == CU_OK && row) {
        size_t len = 0;
        const char *s = cu_stmt_text(st, 0, &len);
        violation(c, "transfer %.*s resolves a transfer that is not resolved", (int)len, s);
    }
    cu_stmt_done(st);
    return rc;
}

/* The head, the stored balances against the journal's, the limits, the sum per currency. */
static enum cu_err check_balances(struct chk *c)
{
    struct {
        char currency[4];
        wide posted, pending;
    } sums[64];
    size_t nsums = 0;
    int64_t head = 0;
    enum cu_err rc = cu_ledger_head(c->db, &head);

    if (rc != CU_OK)
        return rc;
    if (head != c->r->transfers)
        violation(c, "the journal's head says %lld transfers, the journal holds %lld",
                  (long long)head, (long long)c->r->transfers);
    for (size_t i = 0; i < c->nacc; i++) {
        const struct acc *a = &c->acc[i];
        if (memcmp(&a->stored, &a->journal, sizeof(a->stored)) != 0)
            violation(c,
                      "account %s: stored debits/credits posted %lld/%lld, pending %lld/%lld; "
                      "the journal gives %lld/%lld, %lld/%lld",
                      a->id, (long long)a->stored.debits_posted,
                      (long long)a->stored.credits_posted, (long long)a->stored.debits_pending,
                      (long long)a->stored.credits_pending, (long long)a->journal.debits_posted,
                      (long long)a->journal.credits_posted, (long long)a->journal.debits_pending,
                      (long long)a->journal.credits_pending);
        wide avail = (wide)a->stored.credits_posted - a->stored.debits_posted -
                     a->stored.debits_pending + (a->overdraft > 0 ? a->overdraft : 0);
        if (a->overdraft >= 0 && avail < 0)
            violation(c, "account %s: its available balance is below its limit", a->id);
        size_t j = 0;
        while (j < nsums && strcmp(sums[j].currency, a->currency) != 0)
            j++;
        if (j == nsums) {
            if (nsums == sizeof(sums) / sizeof(sums[0])) {
                violation(c, "more than %zu currencies", nsums);
                continue;
            }
            memset(&sums[nsums], 0, sizeof(sums[nsums]));
            snprintf(sums[nsums].currency, sizeof(sums[nsums].currency), "%s", a->currency);
            nsums++;
        }
        sums[j].posted += (wide)a->stored.credits_posted - a->stored.debits_posted;
        sums[j].pending += (wide)a->stored.credits_pending - a->stored.debits_pending;
    }
    for (size_t j = 0; j < nsums; j++)
        if (sums[j].posted != 0 || sums[j].pending != 0)
            violation(c, "the balances in %s do not sum to zero", sums[j].currency);
    return CU_OK;
}

enum cu_err cu_ledger_check(struct cu_db *db, struct cu_ledger_check_report *report)
{
    struct chk c = {.db = db, .r = report};
    enum cu_err rc;
    bool own = !cu_db_in_txn(db);

    memset(report, 0, sizeof(*report));
    rc = own ? cu_db_begin(db, CU_TXN_READ) : CU_OK;
    if (rc == CU_OK)
        rc = load_accounts(&c);
    if (rc == CU_OK)
        rc = walk_journal(&c);
    if (rc == CU_OK)
        rc = check_pending(&c);
    if (rc == CU_OK)
        rc = check_balances(&c);
    if (rc == CU_OK) {
        /* and no movement's record without its transfers */
        static const char sql[] =
            "SELECT COUNT(*) FROM audit_log WHERE target LIKE 'ledger:%' AND outcome = 'success'";
        struct cu_stmt *st = NULL;
        bool row = false;
        rc = cu_db_query(db, sql, NULL, 0, &st);
        if (rc == CU_OK && (rc = cu_stmt_next(st, &row)) == CU_OK && row &&
            cu_stmt_int(st, 0) != report->movements)
            violation(&c, "the audit log records %lld movements, the journal holds %lld",
                      (long long)cu_stmt_int(st, 0), (long long)report->movements);
        cu_stmt_done(st);
    }
    if (own && cu_db_in_txn(db))
        cu_db_rollback(db);
    cu_free(c.acc);
    return rc;
}
