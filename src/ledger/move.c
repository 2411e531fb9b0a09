/*
 * move.c - movements: the transfers, posts, voids, reversals and expiries of one request, run
 * in its unit of work (docs/ledger.md, "A movement").
 *
 * A movement locks the journal's head (which orders movements and numbers their transfers
 * without gaps), then the pending transfers it resolves, then its accounts in the order of
 * their ids, then the customers' daily limits, each FOR UPDATE. It decides every op in memory
 * against what it locked, in order; a chain of linked ops that fails is undone in memory
 * through an undo log. Only then does it write: the new transfers, the accounts and limits it
 * changed, the pending states, the head, one audit record with the digest of its transfers,
 * and one event per transfer.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "base/log.h"
#include "base/mem.h"
#include "ledger/ledger_int.h"

struct acct {
    struct cu_ledger_account a;
    bool found, dirty;
    /* frozen by the monitoring hook in this movement (its SQL is done): kept over an undo */
    int64_t hook_until;
    char hook_decision[CU_LEDGER_ID_BYTES];
};

struct clim {
    char customer[CU_LEDGER_CUSTOMER_BYTES];
    char currency[4];
    int64_t daily, day, day_debits;
    bool found, dirty;
};

struct tgt {
    struct cu_ledger_transfer t;
    bool found, dirty, reversed;
    char resolved_by[CU_LEDGER_ID_BYTES];
};

enum undo_kind { U_ACCT, U_CLIM, U_TGT };

struct undo {
    enum undo_kind kind;
    size_t idx;
    union {
        struct cu_ledger_account a;
        struct clim c;
        struct {
            char state[12];
            int64_t reserved;
            bool reversed, dirty;
        } t;
    } v;
    bool dirty;
};

struct mv {
    struct cu_ledger *l;
    struct cu_work *w;
    struct cu_db *db;
    const struct cu_ledger_actor *actor;
    const struct cu_ledger_op *ops;
    struct cu_ledger_result *res;
    size_t n;
    int64_t now, today;
    struct acct *acc;
    size_t nacc;
    struct clim *lim;
    size_t nlim;
    struct tgt *tg;
    size_t ntg;
    int *op_tgt; /* per op: its target in tg, or -1 */
    struct undo *undo;
    size_t nundo, capundo;
    /* a chain run again with every link held, because monitoring held one of them */
    bool chain_hold;
    char chain_reasons[CU_LEDGER_REASONS_MAX + 1];
};

/* ---- failing an op ---- */

static void fail(struct cu_ledger_result *r, enum cu_err err, const char *type, const char *fmt,
                 ...) __attribute__((format(printf, 4, 5)));

static void fail(struct cu_ledger_result *r, enum cu_err err, const char *type, const char *fmt,
                 ...)
{
    va_list ap;

    r->err = err;
    r->type = type;
    va_start(ap, fmt);
    vsnprintf(r->detail, sizeof(r->detail), fmt, ap);
    va_end(ap);
    cu_ledger_transfer_clear(&r->t);
}

/* ---- the locked rows ---- */

/* bsearch's comparison of an id (the key) with an account, sorted by id */
static int id_vs_acct(const void *key, const void *elem)
{
    return strcmp(key, ((const struct acct *)elem)->a.id);
}

static struct acct *find_acct(const struct mv *m, const char *id)
{
    if (id == NULL || m->nacc == 0)
        return NULL;
    struct acct *a = bsearch(id, m->acc, m->nacc, sizeof(*m->acc), id_vs_acct);
    return a != NULL && a->found ? a : NULL;
}

static struct clim *find_lim(struct mv *m, const char *customer, const char *currency)
{
    for (size_t i = 0; i < m->nlim; i++)
        if (strcmp(m->lim[i].customer, customer) == 0 && strcmp(m->lim[i].currency, currency) == 0)
            return m->lim[i].found ? &m->lim[i] : NULL;
    return NULL;
}

static enum cu_err lock_head(struct cu_db *db, int64_t *seq)
{
    static const char sql[] = "SELECT seq FROM ledger_head WHERE id = 1 FOR UPDATE";
    struct cu_stmt *st = NULL;
    bool row = false;
    enum cu_err rc = cu_db_query(db, sql, NULL, 0, &st);

    if (rc == CU_OK)
        rc = cu_stmt_next(st, &row);
    if (rc == CU_OK && !row)
        rc = CU_E_CORRUPT;
    if (rc == CU_OK)
        *seq = cu_stmt_int(st, 0);
    cu_stmt_done(st);
    return rc;
}

/* load_target(m, id, out): the transfer id with its pending state locked, and whether a
 * reversal of it exists. */
static enum cu_err load_target(struct mv *m, const char *id, struct tgt *out)
{
    static const char sql[] = "SELECT " LEDGER_TRANSFER_COLS " FROM ledger_transfers t "
                              "LEFT JOIN ledger_pending p ON p.transfer = t.id WHERE t.id = $1";
    static const char lock_sql[] =
        "SELECT status, amount, expires_at, hold, chain FROM ledger_pending WHERE transfer = $1 "
        "FOR UPDATE";
    static const char rev_sql[] =
        "SELECT id FROM ledger_transfers WHERE parent = $1 AND kind = 'reverse'";
    struct cu_val p[] = {CU_VT(id)};
    struct cu_stmt *st = NULL;
    bool row = false;
    enum cu_err rc = cu_db_query(m->db, sql, p, 1, &st);

    memset(out, 0, sizeof(*out));
    if (rc == CU_OK)
        rc = cu_stmt_next(st, &row);
    if (rc == CU_OK && row)
        rc = cu_ledger_transfer_read(st, &out->t);
    cu_stmt_done(st);
    if (rc != CU_OK || !row)
        return rc;
    out->found = true;
    if (out->t.state[0] != '\0') {
        rc = cu_db_query(m->db, lock_sql, p, 1, &st);
        if (rc == CU_OK)
            rc = cu_stmt_next(st, &row);
        if (rc == CU_OK && row) {
            size_t len = 0;
            const char *s = cu_stmt_text(st, 0, &len);
            snprintf(out->t.state, sizeof(out->t.state), "%.*s", (int)len, s);
            out->t.reserved = cu_stmt_int(st, 1);
            out->t.expires_at = cu_stmt_int(st, 2);
            out->t.hold = cu_stmt_int(st, 3) != 0;
            if (!cu_stmt_null(st, 4)) {
                s = cu_stmt_text(st, 4, &len);
                snprintf(out->t.chain, sizeof(out->t.chain), "%.*s", (int)len, s);
            }
        }
        cu_stmt_done(st);
        if (rc != CU_OK) {
            cu_ledger_transfer_clear(&out->t);
            return rc;
        }
    }
    rc = cu_db_query(m->db, rev_sql, p, 1, &st);
    if (rc == CU_OK)
        rc = cu_stmt_next(st, &row);
    if (rc == CU_OK)
        out->reversed = row;
    cu_stmt_done(st);
    if (rc != CU_OK)
        cu_ledger_transfer_clear(&out->t);
    return rc;
}

static enum cu_err lock_targets(struct mv *m)
{
    enum cu_err rc = CU_OK;

    for (size_t i = 0; i < m->n; i++) {
        const struct cu_ledger_op *op = &m->ops[i];
        m->op_tgt[i] = -1;
        if (op->kind == CU_LEDGER_TRANSFER)
            continue;
        if (!cu_ledger_id_valid(op->target, "trf_"))
            continue;
        for (size_t j = 0; j < m->ntg; j++)
            if (strcmp(m->tg[j].t.id, op->target) == 0)
                m->op_tgt[i] = (int)j;
        if (m->op_tgt[i] >= 0)
            continue;
        rc = load_target(m, op->target, &m->tg[m->ntg]);
        if (rc != CU_OK)
            return rc;
        if (m->tg[m->ntg].found)
            m->op_tgt[i] = (int)m->ntg++;
        else
            cu_ledger_transfer_clear(&m->tg[m->ntg].t);
    }
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* lock_accounts(m): every account the ops name, locked in the order of their ids. */
static enum cu_err lock_accounts(struct mv *m)
{
    static const char sql[] =
        "SELECT " LEDGER_ACCOUNT_COLS " FROM ledger_accounts WHERE id = $1 FOR UPDATE";
    const char **ids = cu_calloc(2 * m->n + 1, sizeof(*ids));
    size_t nids = 0, u = 0;
    enum cu_err rc = CU_OK;

    if (ids == NULL)
        return CU_E_NOMEM;
    for (size_t i = 0; i < m->n; i++) {
        const struct cu_ledger_op *op = &m->ops[i];
        const char *d = op->debit, *c = op->credit;
        if (op->kind != CU_LEDGER_TRANSFER) {
            d = m->op_tgt[i] >= 0 ? m->tg[m->op_tgt[i]].t.debit : NULL;
            c = m->op_tgt[i] >= 0 ? m->tg[m->op_tgt[i]].t.credit : NULL;
        }
        if (cu_ledger_id_valid(d, "acc_"))
            ids[nids++] = d;
        if (cu_ledger_id_valid(c, "acc_"))
            ids[nids++] = c;
    }
    qsort(ids, nids, sizeof(*ids), cmp_str);
    for (size_t i = 0; i < nids; i++)
        if (u == 0 || strcmp(ids[u - 1], ids[i]) != 0)
            ids[u++] = ids[i];
    m->acc = cu_calloc(u ? u : 1, sizeof(*m->acc));
    if (m->acc == NULL)
        rc = CU_E_NOMEM;
    for (size_t i = 0; rc == CU_OK && i < u; i++) {
        struct cu_val p[] = {CU_VT(ids[i])};
        struct cu_stmt *st = NULL;
        bool row = false;
        rc = cu_db_query(m->db, sql, p, 1, &st);
        if (rc == CU_OK)
            rc = cu_stmt_next(st, &row);
        if (rc == CU_OK && row) {
            cu_ledger_account_read(st, &m->acc[i].a);
            m->acc[i].found = true;
        } else {
            snprintf(m->acc[i].a.id, sizeof(m->acc[i].a.id), "%s", ids[i]);
        }
        cu_stmt_done(st);
    }
    m->nacc = u;
    cu_free(ids);
    return rc;
}

static int cmp_lim(const void *a, const void *b)
{
    const struct clim *x = a, *y = b;
    int c = strcmp(x->customer, y->customer);
    return c ? c : strcmp(x->currency, y->currency);
}

/* lock_limits(m): the daily limits of the customers whose accounts the ops debit. */
static enum cu_err lock_limits(struct mv *m)
{
    static const char sql[] = "SELECT daily_limit, day, day_debits FROM ledger_customer_limits "
                              "WHERE customer = $1 AND currency = $2 FOR UPDATE";
    size_t u = 0;
    enum cu_err rc = CU_OK;

    m->lim = cu_calloc(m->nacc ? m->nacc : 1, sizeof(*m->lim));
    if (m->lim == NULL)
        return CU_E_NOMEM;
    for (size_t i = 0; i < m->nacc; i++) {
        const struct cu_ledger_account *a = &m->acc[i].a;
        if (!m->acc[i].found || a->customer[0] == '\0')
            continue;
        snprintf(m->lim[u].customer, sizeof(m->lim[u].customer), "%s", a->customer);
        memcpy(m->lim[u].currency, a->currency, 4);
        u++;
    }
    qsort(m->lim, u, sizeof(*m->lim), cmp_lim);
    m->nlim = 0;
    for (size_t i = 0; i < u; i++)
        if (m->nlim == 0 || cmp_lim(&m->lim[m->nlim - 1], &m->lim[i]) != 0)
            m->lim[m->nlim++] = m->lim[i];
    for (size_t i = 0; rc == CU_OK && i < m->nlim; i++) {
        struct clim *c = &m->lim[i];
        struct cu_val p[] = {CU_VT(c->customer), CU_VT(c->currency)};
        struct cu_stmt *st = NULL;
        bool row = false;
        rc = cu_db_query(m->db, sql, p, CU_NVALS(p), &st);
        if (rc == CU_OK)
            rc = cu_stmt_next(st, &row);
        if (rc == CU_OK && row) {
            c->found = true;
            c->daily = cu_stmt_int(st, 0);
            c->day = cu_stmt_int(st, 1);
            c->day_debits = cu_stmt_int(st, 2);
        }
        cu_stmt_done(st);
    }
    return rc;
}

/* ---- the undo log ---- */

static enum cu_err push_undo(struct mv *m, enum undo_kind kind, size_t idx)
{
    struct undo *u;

    if (m->nundo == m->capundo) {
        size_t cap = m->capundo ? m->capundo * 2 : 16;
        struct undo *v = cu_reallocarray(m->undo, cap, sizeof(*v));
        if (v == NULL)
            return CU_E_NOMEM;
        m->undo = v;
        m->capundo = cap;
    }
    u = &m->undo[m->nundo++];
    u->kind = kind;
    u->idx = idx;
    if (kind == U_ACCT) {
        u->v.a = m->acc[idx].a;
        u->dirty = m->acc[idx].dirty;
    } else if (kind == U_CLIM) {
        u->v.c = m->lim[idx];
        u->dirty = m->lim[idx].dirty;
    } else {
        memcpy(u->v.t.state, m->tg[idx].t.state, sizeof(u->v.t.state));
        u->v.t.reserved = m->tg[idx].t.reserved;
        u->v.t.reversed = m->tg[idx].reversed;
        u->dirty = m->tg[idx].dirty;
    }
    return CU_OK;
}

/* hook_frozen(a): a as the monitoring hook's freeze left it. */
static void hook_frozen(struct acct *a)
{
    a->a.status = CU_LEDGER_FROZEN;
    a->a.frozen_until = a->hook_until;
    snprintf(a->a.freeze_reason, sizeof(a->a.freeze_reason), CU_LEDGER_MONITOR_FREEZE,
             a->hook_decision);
}

/* hook_freeze(m, customer, until, decision): the movement's accounts of customer as the hook
 * froze them in the store. */
static void hook_freeze(struct mv *m, const char *customer, int64_t until, const char *decision)
{
    for (size_t i = 0; i < m->nacc; i++)
        if (m->acc[i].found && m->acc[i].a.status != CU_LEDGER_CLOSED &&
            strcmp(m->acc[i].a.customer, customer) == 0 &&
            (m->acc[i].a.status == CU_LEDGER_ACTIVE ||
             (m->acc[i].a.frozen_until != 0 && m->acc[i].a.frozen_until < until))) {
            m->acc[i].hook_until = until;
            snprintf(m->acc[i].hook_decision, sizeof(m->acc[i].hook_decision), "%s", decision);
            hook_frozen(&m->acc[i]);
        }
}

static void undo_to(struct mv *m, size_t mark)
{
    while (m->nundo > mark) {
        struct undo *u = &m->undo[--m->nundo];
        if (u->kind == U_ACCT) {
            m->acc[u->idx].a = u->v.a;
            m->acc[u->idx].dirty = u->dirty;
            if (m->acc[u->idx].hook_until != 0)
                hook_frozen(&m->acc[u->idx]);
        } else if (u->kind == U_CLIM) {
            m->lim[u->idx] = u->v.c;
        } else {
            memcpy(m->tg[u->idx].t.state, u->v.t.state, sizeof(u->v.t.state));
            m->tg[u->idx].t.reserved = u->v.t.reserved;
            m->tg[u->idx].reversed = u->v.t.reversed;
            m->tg[u->idx].dirty = u->dirty;
        }
    }
}

static enum cu_err touch_acct(struct mv *m, struct acct *a)
{
    enum cu_err rc = push_undo(m, U_ACCT, (size_t)(a - m->acc));
    if (rc == CU_OK)
        a->dirty = true;
    return rc;
}

/* ---- deciding an op ---- */

static bool frozen_now(const struct mv *m, const struct cu_ledger_account *a)
{
    return a->status == CU_LEDGER_FROZEN && (a->frozen_until == 0 || a->frozen_until > m->now);
}

/* may_leave(m, a, amount, r): whether amount may be debited from a now (status, funds);
 * fails r otherwise. */
static bool may_leave(struct mv *m, const struct cu_ledger_account *a, int64_t amount,
                      const char *which, struct cu_ledger_result *r)
{
    int64_t left;

    if (a->status == CU_LEDGER_CLOSED) {
        fail(r, CU_E_EXISTS, "account_closed", "the %s account is closed", which);
        return false;
    }
    if (frozen_now(m, a)) {
        fail(r, CU_E_EXISTS, "account_frozen", "the %s account is frozen: nothing leaves it",
             which);
        return false;
    }
    if (a->overdraft < 0)
        return true;
    /* credits_posted - debits_posted - debits_pending - amount >= -overdraft */
    if (__builtin_sub_overflow(a->t.credits_posted, a->t.debits_posted, &left) ||
        __builtin_sub_overflow(left, a->t.debits_pending, &left) ||
        __builtin_sub_overflow(left, amount, &left) ||
        __builtin_add_overflow(left, a->overdraft, &left) || left < 0) {
        fail(r, CU_E_EXISTS, "insufficient_funds",
             "the %s account's available balance is less than the amount", which);
        return false;
    }
    return true;
}

static bool may_enter(const struct cu_ledger_account *a, struct cu_ledger_result *r)
{
    if (a->status == CU_LEDGER_CLOSED) {
        fail(r, CU_E_EXISTS, "account_closed", "the credit account is closed");
        return false;
    }
    return true;
}

/* add(x, v, r): *x += v, checked. */
static bool add(int64_t *x, int64_t v, struct cu_ledger_result *r)
{
    if (__builtin_add_overflow(*x, v, x) || *x < 0) {
        fail(r, CU_E_EXISTS, "balance_overflow", "a balance would pass what 64 bits hold");
        return false;
    }
    return true;
}

/* within_daily(m, a, amount, r): the account's and its customer's daily limits. */
static bool within_daily(struct mv *m, struct acct *a, int64_t amount, struct cu_ledger_result *r)
{
    struct cu_ledger_account *x = &a->a;
    int64_t used = x->day == m->today ? x->day_debits : 0, sum;
    struct clim *c;

    if (x->limit_per_transfer > 0 && amount > x->limit_per_transfer) {
        fail(r, CU_E_EXISTS, "limit_exceeded",
             "the amount is over the account's limit per "
             "transfer");
        return false;
    }
    if (x->limit_daily > 0 &&
        (__builtin_add_overflow(used, amount, &sum) || sum > x->limit_daily)) {
        fail(r, CU_E_EXISTS, "limit_exceeded", "the account's daily limit would be passed");
        return false;
    }
    if (x->customer[0] == '\0' || (c = find_lim(m, x->customer, x->currency)) == NULL ||
        c->daily <= 0)
        return true;
    used = c->day == m->today ? c->day_debits : 0;
    if (__builtin_add_overflow(used, amount, &sum) || sum > c->daily) {
        fail(r, CU_E_EXISTS, "limit_exceeded",
             "the customer's daily limit in %s would be "
             "passed",
             x->currency);
        return false;
    }
    return true;
}

/* x + delta, within [0, INT64_MAX] (a count of what left today: never below 0, never a wrap) */
static int64_t saturated(int64_t x, int64_t delta)
{
    int64_t v;
    if (__builtin_add_overflow(x, delta, &v))
        return delta > 0 ? INT64_MAX : 0;
    return v < 0 ? 0 : v;
}

/* count_daily(m, a, delta): moves the day's debits of a and of its customer by delta (a
 * release gives back; never below 0). */
static enum cu_err count_daily(struct mv *m, struct acct *a, int64_t delta, int64_t day)
{
    struct clim *c;
    enum cu_err rc;

    if (day != m->today)
        return CU_OK; /* what was counted on another day is not today's */
    rc = touch_acct(m, a);
    if (rc != CU_OK)
        return rc;
    if (a->a.day != m->today) {
        a->a.day = m->today;
        a->a.day_debits = 0;
    }
    a->a.day_debits = saturated(a->a.day_debits, delta);
    if (a->a.customer[0] == '\0' || (c = find_lim(m, a->a.customer, a->a.currency)) == NULL)
        return CU_OK;
    rc = push_undo(m, U_CLIM, (size_t)(c - m->lim));
    if (rc != CU_OK)
        return rc;
    c->dirty = true;
    if (c->day != m->today) {
        c->day = m->today;
        c->day_debits = 0;
    }
    c->day_debits = saturated(c->day_debits, delta);
    return CU_OK;
}

static void fill(struct mv *m, struct cu_ledger_result *r, enum cu_ledger_kind kind,
                 const char *debit, const char *credit, int64_t amount, const char *currency,
                 const char *code)
{
    struct cu_ledger_transfer *t = &r->t;
    const struct cu_work_ctx *ctx = cu_work_context_of(m->w);

    cu_ledger_new_id("trf_", t->id);
    t->kind = kind;
    snprintf(t->debit, sizeof(t->debit), "%s", debit);
    snprintf(t->credit, sizeof(t->credit), "%s", credit);
    t->amount = amount;
    snprintf(t->currency, sizeof(t->currency), "%s", currency);
    snprintf(t->code, sizeof(t->code), "%s", code);
    cu_work_actor_text(ctx, t->actor, sizeof(t->actor));
    snprintf(t->channel, sizeof(t->channel), "%s",
             m->actor && m->actor->channel ? m->actor->channel : "api");
    t->at = m->now;
}

static bool customer_may_debit(struct mv *m, const struct cu_ledger_account *d,
                               struct cu_ledger_result *r)
{
    if (m->actor == NULL || m->actor->customer == NULL)
        return true;
    if (strcmp(d->customer, m->actor->customer) != 0) {
        /* the same answer as for an account that does not exist */
        fail(r, CU_E_NOT_FOUND, "unknown_account", "no account has the id of debit_account");
        return false;
    }
    return true;
}

static enum cu_err op_transfer(struct mv *m, size_t i)
{
    const struct cu_ledger_op *op = &m->ops[i];
    struct cu_ledger_result *r = &m->res[i];
    struct acct *d = find_acct(m, op->debit), *c = find_acct(m, op->credit);
    enum cu_ledger_verdict verdict = CU_LEDGER_LET;
    char reasons[CU_LEDGER_REASONS_MAX + 1] = "";
    enum cu_err rc;
    bool pending = op->pending;

    if (op->amount <= 0 || op->amount > CU_LEDGER_AMOUNT_MAX) {
        fail(r, CU_E_INVALID, "invalid_transfer",
             "amount must be a whole number from 1 to 1000000000000000 minor units");
        return CU_OK;
    }
    if (op->debit && op->credit && strcmp(op->debit, op->credit) == 0) {
        fail(r, CU_E_INVALID, "invalid_transfer",
             "debit_account and credit_account must "
             "differ");
        return CU_OK;
    }
    if (d == NULL || c == NULL) {
        fail(r, CU_E_NOT_FOUND, "unknown_account", "no account has the id of %s",
             d == NULL ? "debit_account" : "credit_account");
        return CU_OK;
    }
    if (!customer_may_debit(m, &d->a, r))
        return CU_OK;
    if (m->actor && m->actor->customer && c->a.customer[0] == '\0') {
        fail(r, CU_E_INVALID, "invalid_transfer",
             "a customer pays only into customer "
             "accounts");
        return CU_OK;
    }
    if (op->currency == NULL || strcmp(d->a.currency, op->currency) != 0 ||
        strcmp(c->a.currency, op->currency) != 0) {
        fail(r, CU_E_INVALID, "currency_mismatch",
             "both accounts must be in the transfer's currency");
        return CU_OK;
    }
    if (m->actor && m->actor->customer && m->actor->step_up_above >= 0 &&
        op->amount > m->actor->step_up_above && m->actor->aal < 2) {
        fail(r, CU_E_STEP_UP, "step_up_required",
             "a transfer of this amount needs a session signed in with a second factor: POST "
             "/v1/auth/step-up");
        return CU_OK;
    }
    if (!may_leave(m, &d->a, op->amount, "debit", r) || !may_enter(&c->a, r) ||
        !within_daily(m, d, op->amount, r))
        return CU_OK;
    if (m->chain_hold) {
        /* the chain again, held whole: its links are not asked again (each was, once) */
        verdict = CU_LEDGER_HOLD;
        snprintf(reasons, sizeof(reasons), "%s",
                 r->verdict == CU_LEDGER_HOLD ? r->t.reasons : m->chain_reasons);
        cu_ledger_transfer_clear(&r->t);
        pending = true;
    } else if (m->l->hook.decide != NULL) {
        struct cu_ledger_ask ask = {
            .op = op, .debit = &d->a, .credit = &c->a, .w = m->w, .actor = m->actor};
        struct cu_ledger_hook_out ho;
        memset(&ho, 0, sizeof(ho));
        rc = m->l->hook.decide(m->l->hook.arg, m->db, &ask, &ho);
        if (rc != CU_OK)
            return rc;
        verdict = ho.verdict;
        ho.reasons[CU_LEDGER_REASONS_MAX] = '\0';
        ho.decision[CU_LEDGER_ID_BYTES - 1] = '\0';
        snprintf(reasons, sizeof(reasons), "%s", ho.reasons);
        snprintf(r->decision, sizeof(r->decision), "%s", ho.decision);
        r->verdict = verdict;
        if (ho.frozen_until > m->now) {
            hook_freeze(m, d->a.customer[0] ? d->a.customer : c->a.customer, ho.frozen_until,
                        ho.decision);
            if (frozen_now(m, &d->a) && verdict != CU_LEDGER_DENY) {
                fail(r, CU_E_EXISTS, "account_frozen",
                     "monitoring froze the debit account (decision %s): nothing leaves it",
                     ho.decision[0] ? ho.decision : "?");
                snprintf(r->t.reasons, sizeof(r->t.reasons), "%s", reasons);
                return CU_OK;
            }
        }
        if (verdict == CU_LEDGER_STEP_UP) {
            if (r->decision[0])
                fail(r, CU_E_STEP_UP, "step_up_required",
                     "this transfer needs a session signed in with a second factor (decision "
                     "%s): POST /v1/auth/step-up",
                     r->decision);
            else
                fail(r, CU_E_STEP_UP, "step_up_required",
                     "this transfer needs a session signed in with a second factor: POST "
                     "/v1/auth/step-up");
            snprintf(r->t.reasons, sizeof(r->t.reasons), "%s", reasons);
            return CU_OK;
        }
        if (verdict != CU_LEDGER_LET && verdict != CU_LEDGER_HOLD) {
            if (r->decision[0])
                fail(r, CU_E_FORBIDDEN, "transfer_denied",
                     "the transfer was refused by monitoring (decision %s)", r->decision);
            else
                fail(r, CU_E_FORBIDDEN, "transfer_denied",
                     "the transfer was refused by monitoring");
            snprintf(r->t.reasons, sizeof(r->t.reasons), "%s", reasons);
            return CU_OK;
        }
        if (verdict == CU_LEDGER_HOLD)
            pending = true;
    }
    /* the postings, checked for overflow before anything changes */
    {
        struct cu_ledger_totals dt = d->a.t, ct = c->a.t;
        bool ok =
            pending
                ? add(&dt.debits_pending, op->amount, r) && add(&ct.credits_pending, op->amount, r)
                : add(&dt.debits_posted, op->amount, r) && add(&ct.credits_posted, op->amount, r);
        if (!ok)
            return CU_OK;
        if ((rc = touch_acct(m, d)) != CU_OK || (rc = touch_acct(m, c)) != CU_OK)
            return rc;
        d->a.t = dt;
        c->a.t = ct;
    }
    if (d->a.overdraft >= 0 && (rc = count_daily(m, d, op->amount, m->today)) != CU_OK)
        return rc;
    fill(m, r, CU_LEDGER_TRANSFER, d->a.id, c->a.id, op->amount, op->currency, op->code);
    snprintf(r->t.external_ref, sizeof(r->t.external_ref), "%s",
             op->external_ref ? op->external_ref : "");
    if (op->metadata != NULL && (r->t.metadata = cu_strdup(op->metadata)) == NULL)
        return CU_E_NOMEM;
    r->t.pending = pending;
    r->t.hold = verdict == CU_LEDGER_HOLD;
    snprintf(r->t.reasons, sizeof(r->t.reasons), "%s", reasons);
    if (pending) {
        snprintf(r->t.state, sizeof(r->t.state), "pending");
        r->t.reserved = op->amount;
        r->t.expires_at = !r->t.hold && op->timeout_s > 0 ? m->now + op->timeout_s * 1000 : 0;
    }
    r->err = CU_OK;
    return CU_OK;
}

/* chain_of(m, i, lo, hi): the chain of linked ops op i is in, ops lo..hi. */
static void chain_of(const struct mv *m, size_t i, size_t *lo, size_t *hi)
{
    *lo = *hi = i;
    while (*lo > 0 && m->ops[*lo - 1].linked)
        --*lo;
    while (*hi + 1 < m->n && m->ops[*hi].linked)
        ++*hi;
}

/* held_together(m, i, p, r): a held transfer of a linked chain (its held links carry the
 * chain's first link, p->chain) is released only with the chain's other held links,
 * in one linked chain, all posted or all voided: a reviewer cannot let the payment through and
 * void its fee. Fails r otherwise. */
static enum cu_err held_together(struct mv *m, size_t i, const struct cu_ledger_transfer *p,
                                 struct cu_ledger_result *r, bool *ok)
{
    static const char sql[] =
        "SELECT t.id FROM ledger_transfers t JOIN ledger_pending p ON p.transfer = t.id WHERE "
        "p.chain = $1 AND t.id <> $2 AND p.status = 'pending' ORDER BY t.seq";
    const struct cu_val v[] = {CU_VT(p->chain), CU_VT(p->id)};
    struct cu_stmt *st = NULL;
    bool row = false;
    size_t lo, hi, missing = 0;
    char first[CU_LEDGER_ID_BYTES] = "";
    enum cu_err rc;

    *ok = true;
    /* a held chain is posted in full or voided: a part posted would void the rest of one link
     * while the others go through */
    if (m->ops[i].kind == CU_LEDGER_POST && m->ops[i].amount != 0 &&
        m->ops[i].amount != p->reserved) {
        *ok = false;
        fail(r, CU_E_EXISTS, "held_chain",
             "the transfer was held with the other links of its chain: it is posted in full (no "
             "amount) or voided, with them");
        return CU_OK;
    }
    rc = cu_db_query(m->db, sql, v, CU_NVALS(v), &st);
    chain_of(m, i, &lo, &hi);
    while (rc == CU_OK && (rc = cu_stmt_next(st, &row)) == CU_OK && row) {
        size_t n = 0;
        const char *id = cu_stmt_text(st, 0, &n);
        bool found = false;
        for (size_t k = lo; k <= hi && !found; k++)
            found = m->ops[k].kind == m->ops[i].kind && m->ops[k].target != NULL &&
                    strlen(m->ops[k].target) == n && memcmp(m->ops[k].target, id, n) == 0;
        if (!found && missing++ == 0)
            snprintf(first, sizeof(first), "%.*s", (int)(n < sizeof(first) ? n : 0), id);
    }
    cu_stmt_done(st);
    if (rc == CU_OK && missing > 0) {
        *ok = false;
        fail(r, CU_E_EXISTS, "held_chain",
             "the transfer was held with %zu other linked transfer%s (%s%s): %s them all "
             "together, in one linked chain",
             missing, missing == 1 ? "" : "s", first, missing > 1 ? ", …" : "",
             m->ops[i].kind == CU_LEDGER_POST ? "post" : "void");
    }
    return rc;
}

/* op_resolve(m, i): a post, void or expiry of a pending transfer. */
static enum cu_err op_resolve(struct mv *m, size_t i)
{
    const struct cu_ledger_op *op = &m->ops[i];
    struct cu_ledger_result *r = &m->res[i];
    struct tgt *tg = m->op_tgt[i] >= 0 ? &m->tg[m->op_tgt[i]] : NULL;
    struct cu_ledger_transfer *p;
    struct acct *d, *c;
    int64_t post = 0, reserved;
    enum cu_err rc;

    if (tg == NULL) {
        fail(r, CU_E_NOT_FOUND, "unknown_transfer", "no transfer has this id");
        return CU_OK;
    }
    p = &tg->t;
    d = find_acct(m, p->debit);
    c = find_acct(m, p->credit);
    if (m->actor && m->actor->customer && (d == NULL || !customer_may_debit(m, &d->a, r))) {
        if (r->err == CU_OK)
            fail(r, CU_E_NOT_FOUND, "unknown_transfer", "no transfer has this id");
        return CU_OK;
    }
    if (p->state[0] == '\0' || p->kind != CU_LEDGER_TRANSFER) {
        fail(r, CU_E_EXISTS, "transfer_not_pending", "the transfer is not a pending one");
        return CU_OK;
    }
    if (strcmp(p->state, "posted") == 0 || strcmp(p->state, "voided") == 0) {
        fail(r, CU_E_EXISTS,
             strcmp(p->state, "posted") == 0 ? "transfer_posted" : "transfer_voided",
             "the pending transfer was %s already", p->state);
        return CU_OK;
    }
    if (strcmp(p->state, "pending") != 0 ||
        (op->kind != CU_LEDGER_EXPIRE && p->expires_at != 0 && p->expires_at <= m->now)) {
        fail(r, CU_E_EXISTS, "transfer_expired",
             "the pending transfer has expired: its funds went back");
        return CU_OK;
    }
    if (op->kind == CU_LEDGER_EXPIRE && (p->expires_at == 0 || p->expires_at > m->now)) {
        fail(r, CU_E_EXISTS, "transfer_not_pending", "the pending transfer has not expired");
        return CU_OK;
    }
    if (p->hold && op->kind != CU_LEDGER_EXPIRE && !op->hold_release) {
        fail(r, CU_E_FORBIDDEN, "transfer_held",
             "the transfer is held for review: posting or voiding it needs transfers.approve");
        return CU_OK;
    }
    if (p->hold && p->chain[0] && op->kind != CU_LEDGER_EXPIRE) {
        bool together = true;
        if ((rc = held_together(m, i, p, r, &together)) != CU_OK || !together)
            return rc;
    }
    if (op->currency != NULL && strcmp(op->currency, p->currency) != 0) {
        fail(r, CU_E_INVALID, "currency_mismatch", "currency is not the pending transfer's");
        return CU_OK;
    }
    if (d == NULL || c == NULL) {
        fail(r, CU_E_INTERNAL, "internal", "the pending transfer's accounts are missing");
        return CU_OK;
    }
    reserved = p->reserved;
    if (op->kind == CU_LEDGER_POST) {
        post = op->amount == 0 ? reserved : op->amount;
        if (post < 0) {
            fail(r, CU_E_INVALID, "invalid_transfer", "amount must be a whole number above 0");
            return CU_OK;
        }
        if (post > reserved) {
            fail(r, CU_E_EXISTS, "amount_exceeds_pending",
                 "amount is more than the pending transfer reserves");
            return CU_OK;
        }
        if (frozen_now(m, &d->a)) {
            fail(r, CU_E_EXISTS, "account_frozen",
                 "the debit account is frozen: nothing "
                 "leaves it");
            return CU_OK;
        }
        if (!may_enter(&c->a, r))
            return CU_OK;
    }
    {
        struct cu_ledger_totals dt = d->a.t, ct = c->a.t;
        dt.debits_pending -= reserved;
        ct.credits_pending -= reserved;
        if (dt.debits_pending < 0 || ct.credits_pending < 0) {
            fail(r, CU_E_CORRUPT, "internal", "the pending totals do not cover the transfer");
            return CU_OK;
        }
        if (post > 0 && (!add(&dt.debits_posted, post, r) || !add(&ct.credits_posted, post, r)))
            return CU_OK;
        if ((rc = touch_acct(m, d)) != CU_OK || (rc = touch_acct(m, c)) != CU_OK ||
            (rc = push_undo(m, U_TGT, (size_t)(tg - m->tg))) != CU_OK)
            return rc;
        d->a.t = dt;
        c->a.t = ct;
    }
    if (d->a.overdraft >= 0 && reserved > post &&
        (rc = count_daily(m, d, -(reserved - post), cu_ledger_day(p->at))) != CU_OK)
        return rc;
    tg->dirty = true;
    snprintf(p->state, sizeof(p->state), "%s",
             op->kind == CU_LEDGER_POST   ? "posted"
             : op->kind == CU_LEDGER_VOID ? "voided"
                                          : "expired");
    p->reserved = 0;
    fill(m, r, op->kind, p->debit, p->credit, op->kind == CU_LEDGER_POST ? post : reserved,
         p->currency, op->code ? op->code : p->code);
    snprintf(r->t.parent, sizeof(r->t.parent), "%s", p->id);
    snprintf(tg->resolved_by, sizeof(tg->resolved_by), "%s", r->t.id);
    if (op->metadata != NULL && (r->t.metadata = cu_strdup(op->metadata)) == NULL)
        return CU_E_NOMEM;
    snprintf(r->t.external_ref, sizeof(r->t.external_ref), "%s",
             op->external_ref ? op->external_ref : "");
    r->err = CU_OK;
    return CU_OK;
}

static enum cu_err op_reverse(struct mv *m, size_t i)
{
    const struct cu_ledger_op *op = &m->ops[i];
    struct cu_ledger_result *r = &m->res[i];
    struct tgt *tg = m->op_tgt[i] >= 0 ? &m->tg[m->op_tgt[i]] : NULL;
    struct cu_ledger_transfer *p;
    struct acct *d, *c;
    enum cu_err rc;

    if (tg == NULL || (m->actor && m->actor->customer)) {
        fail(r, CU_E_NOT_FOUND, "unknown_transfer", "no transfer has this id");
        return CU_OK;
    }
    p = &tg->t;
    if (p->kind == CU_LEDGER_REVERSE) {
        fail(r, CU_E_EXISTS, "not_reversible", "a reversal cannot be reversed");
        return CU_OK;
    }
    if (p->pending || p->kind == CU_LEDGER_VOID || p->kind == CU_LEDGER_EXPIRE) {
        fail(r, CU_E_EXISTS, "not_reversible",
             "only posted money can be reversed: void a pending transfer, or reverse its post");
        return CU_OK;
    }
    if (tg->reversed) {
        fail(r, CU_E_EXISTS, "already_reversed", "the transfer was reversed already");
        return CU_OK;
    }
    /* the reversal moves the money back: from the credit account to the debit account */
    d = find_acct(m, p->credit);
    c = find_acct(m, p->debit);
    if (d == NULL || c == NULL) {
        fail(r, CU_E_INTERNAL, "internal", "the transfer's accounts are missing");
        return CU_OK;
    }
    if (!may_leave(m, &d->a, p->amount, "reversed transfer's credit", r) || !may_enter(&c->a, r))
        return CU_OK;
    {
        struct cu_ledger_totals dt = d->a.t, ct = c->a.t;
        if (!add(&dt.debits_posted, p->amount, r) || !add(&ct.credits_posted, p->amount, r))
            return CU_OK;
        if ((rc = touch_acct(m, d)) != CU_OK || (rc = touch_acct(m, c)) != CU_OK ||
            (rc = push_undo(m, U_TGT, (size_t)(tg - m->tg))) != CU_OK)
            return rc;
        d->a.t = dt;
        c->a.t = ct;
    }
    tg->reversed = true;
    fill(m, r, CU_LEDGER_REVERSE, d->a.id, c->a.id, p->amount, p->currency,
         op->code ? op->code : "reversal");
    snprintf(r->t.parent, sizeof(r->t.parent), "%s", p->id);
    if (op->metadata != NULL && (r->t.metadata = cu_strdup(op->metadata)) == NULL)
        return CU_E_NOMEM;
    snprintf(r->t.external_ref, sizeof(r->t.external_ref), "%s",
             op->external_ref ? op->external_ref : "");
    r->err = CU_OK;
    return CU_OK;
}

static enum cu_err run_op(struct mv *m, size_t i)
{
    switch (m->ops[i].kind) {
    case CU_LEDGER_TRANSFER:
        return op_transfer(m, i);
    case CU_LEDGER_POST:
    case CU_LEDGER_VOID:
    case CU_LEDGER_EXPIRE:
        return op_resolve(m, i);
    case CU_LEDGER_REVERSE:
        return op_reverse(m, i);
    }
    return CU_E_INVALID;
}

/* hold_chain(m, i, j, bad): when monitoring held a link of the chain i..j that passed, and
 * not every link is a held transfer, the chain is run again with every link a held pending
 * transfer, so that none moves money before review (a chain is whole or nothing, held ones
 * included). A link that cannot be held (a post, a void, a reversal) fails the chain: *bad
 * is set to it. */
static enum cu_err hold_chain(struct mv *m, size_t i, size_t j, size_t *bad)
{
    size_t held = SIZE_MAX;
    bool all = true;
    enum cu_err rc;

    for (size_t k = i; k <= j; k++) {
        if (m->res[k].t.hold && held == SIZE_MAX)
            held = k;
        all = all && m->res[k].t.hold;
    }
    if (held == SIZE_MAX || all)
        return CU_OK;
    for (size_t k = i; k <= j; k++)
        if (m->ops[k].kind != CU_LEDGER_TRANSFER) {
            undo_to(m, 0);
            fail(&m->res[k], CU_E_FORBIDDEN, "transfer_held",
                 "monitoring held a transfer linked to this one (number %zu of the request), "
                 "and this one cannot be held with it",
                 held + 1);
            *bad = k;
            return CU_OK;
        }
    snprintf(m->chain_reasons, sizeof(m->chain_reasons), "held with linked transfer %zu: %.400s",
             held + 1, m->res[held].t.reasons);
    undo_to(m, 0);
    m->chain_hold = true;
    for (size_t k = i; k <= j; k++) {
        m->res[k].err = CU_E_INTERNAL;
        if ((rc = run_op(m, k)) != CU_OK) {
            m->chain_hold = false;
            return rc;
        }
        if (m->res[k].err != CU_OK) {
            /* held whole, a link does not pass: one that spends what an earlier link brings,
             * which pending brings nothing yet. The chain fails, saying why. */
            char why[sizeof(m->res[k].detail)];
            snprintf(why, sizeof(why), "%s", m->res[k].detail);
            fail(&m->res[k], CU_E_FORBIDDEN, "transfer_held",
                 "monitoring held transfer %zu of this chain, and the chain cannot be held whole: "
                 "with the links before it pending, this one would not pass (%.120s)",
                 held + 1, why);
            *bad = k;
            break;
        }
    }
    m->chain_hold = false;
    return CU_OK;
}

/* run_ops(m): each chain of linked ops, whole or not at all. */
static enum cu_err run_ops(struct mv *m)
{
    size_t i = 0;
    enum cu_err rc;

    while (i < m->n) {
        size_t j = i, bad = SIZE_MAX;
        while (j < m->n && m->ops[j].linked)
            j++;
        if (j == m->n) { /* the last op is linked to nothing: the open chain fails */
            for (size_t k = i; k < m->n; k++)
                fail(&m->res[k], CU_E_INVALID, "linked_chain_open",
                     "the last transfer of a chain must not be linked");
            return CU_OK;
        }
        m->nundo = 0;
        for (size_t k = i; k <= j; k++) {
            m->res[k].err = CU_E_INTERNAL;
            rc = run_op(m, k);
            if (rc != CU_OK)
                return rc;
            if (m->res[k].err != CU_OK) {
                bad = k;
                break;
            }
        }
        if (bad == SIZE_MAX && j > i && (rc = hold_chain(m, i, j, &bad)) != CU_OK)
            return rc;
        if (bad != SIZE_MAX && j > i) {
            undo_to(m, 0);
            for (size_t k = i; k <= j; k++)
                if (k != bad)
                    fail(&m->res[k], CU_E_EXISTS, "linked_transfer_failed",
                         "a transfer linked to this one (number %zu of the request) failed",
                         bad + 1);
        } else if (j > i) {
            /* the held links of a chain are released together: they carry its first link */
            for (size_t k = i; k <= j; k++)
                if (m->res[k].t.hold)
                    snprintf(m->res[k].t.chain, sizeof(m->res[k].t.chain), "%s", m->res[i].t.id);
        }
        i = j + 1;
    }
    m->nundo = 0;
    return CU_OK;
}

/* ---- writing ---- */

static enum cu_err insert_transfer(struct mv *m, const struct cu_ledger_transfer *t)
{
    static const char sql[] =
        "INSERT INTO ledger_transfers (id, seq, movement, kind, debit_account, credit_account, "
        "amount, currency, code, external_ref, metadata, pending, parent, decision, reasons, "
        "actor, channel, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, "
        "$14, $15, $16, $17, $18)";
    static const char pending_sql[] =
        "INSERT INTO ledger_pending (transfer, status, amount, expires_at, hold, resolved_by, "
        "resolved_at, chain) VALUES ($1, 'pending', $2, $3, $4, NULL, NULL, $5)";
    struct cu_val p[] = {
        CU_VT(t->id),
        CU_VI(t->seq),
        CU_VT(t->movement),
        CU_VT(cu_ledger_kind_name(t->kind)),
        CU_VT(t->debit),
        CU_VT(t->credit),
        CU_VI(t->amount),
        CU_VT(t->currency),
        CU_VT(t->code),
        t->external_ref[0] ? CU_VT(t->external_ref) : CU_VNULL,
        t->metadata ? CU_VT(t->metadata) : CU_VNULL,
        CU_VI(t->pending ? 1 : 0),
        t->parent[0] ? CU_VT(t->parent) : CU_VNULL,
        CU_VT(t->hold ? "hold" : "allow"),
        t->reasons[0] ? CU_VT(t->reasons) : CU_VNULL,
        CU_VT(t->actor),
        CU_VT(t->channel),
        CU_VI(t->at),
    };
    enum cu_err rc = cu_db_exec(m->db, sql, p, CU_NVALS(p));

    if (rc == CU_E_EXISTS)
        return CU_E_BUSY; /* an id drawn twice, or a reversal that raced: run again */
    if (rc == CU_OK && t->pending) {
        struct cu_val q[] = {CU_VT(t->id), CU_VI(t->reserved),
                             t->expires_at ? CU_VI(t->expires_at) : CU_VNULL,
                             CU_VI(t->hold ? 1 : 0), t->chain[0] ? CU_VT(t->chain) : CU_VNULL};
        rc = cu_db_exec(m->db, pending_sql, q, CU_NVALS(q));
    }
    return rc;
}

static enum cu_err insert_decision(struct mv *m, const struct cu_ledger_op *op,
                                   const struct cu_ledger_result *r)
{
    static const char sql[] =
        "INSERT INTO ledger_decisions (id, at, decision, reasons, debit_account, "
        "credit_account, amount, currency, actor) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
    const struct cu_work_ctx *ctx = cu_work_context_of(m->w);
    char id[CU_LEDGER_ID_BYTES], actor[CU_WORK_ACTOR_TYPE_BYTES + CU_WORK_ID_BYTES];

    /* before the values: CU_VT takes the length of its text where it stands */
    cu_ledger_new_id("dec_", id);
    snprintf(actor, sizeof(actor), "%s:%s", ctx->actor_type, ctx->actor_id);
    const struct cu_val p[] = {
        CU_VT(id),
        CU_VI(m->now),
        CU_VT(cu_ledger_verdict_name(r->verdict)),
        CU_VT(r->t.reasons),
        CU_VT(op->debit ? op->debit : ""),
        CU_VT(op->credit ? op->credit : ""),
        CU_VI(op->amount),
        CU_VT(op->currency ? op->currency : ""),
        CU_VT(actor),
    };
    return cu_db_exec(m->db, sql, p, CU_NVALS(p));
}

static enum cu_err write_accounts(struct mv *m)
{
    static const char sql[] =
        "UPDATE ledger_accounts SET day = $2, day_debits = $3, debits_posted = $4, "
        "credits_posted = $5, debits_pending = $6, credits_pending = $7 WHERE id = $1";
    static const char lim_sql[] = "UPDATE ledger_customer_limits SET day = $3, day_debits = $4 "
                                  "WHERE customer = $1 AND currency = $2";
    static const char tgt_sql[] = "UPDATE ledger_pending SET status = $2, amount = $3, "
                                  "resolved_by = $4, resolved_at = $5 WHERE transfer = $1";
    enum cu_err rc = CU_OK;

    for (size_t i = 0; rc == CU_OK && i < m->nacc; i++) {
        const struct cu_ledger_account *a = &m->acc[i].a;
        struct cu_val p[] = {CU_VT(a->id),
                             CU_VI(a->day),
                             CU_VI(a->day_debits),
                             CU_VI(a->t.debits_posted),
                             CU_VI(a->t.credits_posted),
                             CU_VI(a->t.debits_pending),
                             CU_VI(a->t.credits_pending)};
        if (m->acc[i].dirty)
            rc = cu_db_exec(m->db, sql, p, CU_NVALS(p));
    }
    for (size_t i = 0; rc == CU_OK && i < m->nlim; i++) {
        const struct clim *c = &m->lim[i];
        struct cu_val p[] = {CU_VT(c->customer), CU_VT(c->currency), CU_VI(c->day),
                             CU_VI(c->day_debits)};
        if (c->dirty)
            rc = cu_db_exec(m->db, lim_sql, p, CU_NVALS(p));
    }
    for (size_t i = 0; rc == CU_OK && i < m->ntg; i++) {
        const struct tgt *t = &m->tg[i];
        struct cu_val p[] = {CU_VT(t->t.id), CU_VT(t->t.state), CU_VI(t->t.reserved),
                             CU_VT(t->resolved_by), CU_VI(m->now)};
        if (t->dirty)
            rc = cu_db_exec(m->db, tgt_sql, p, CU_NVALS(p));
    }
    return rc;
}

static const char *event_type(const struct mv *m, const struct cu_ledger_transfer *t,
                              const struct acct *d, const struct acct *c)
{
    (void)m;
    switch (t->kind) {
    case CU_LEDGER_POST:
        return "transfer_posted";
    case CU_LEDGER_VOID:
        return "transfer_voided";
    case CU_LEDGER_EXPIRE:
        return "transfer_expired";
    case CU_LEDGER_REVERSE:
        return "transfer_reversed";
    case CU_LEDGER_TRANSFER:
        break;
    }
    if (d != NULL && strcmp(d->a.purpose, "cash_in") == 0)
        return "deposit";
    if (c != NULL && strcmp(c->a.purpose, "cash_out") == 0)
        return "withdrawal";
    return "transfer";
}

/* emit(m, t): the event of transfer t, written as canonical JSON (keys in byte order). */
static enum cu_err emit(struct mv *m, const struct cu_ledger_transfer *t)
{
    const struct cu_work_ctx *ctx = cu_work_context_of(m->w);
    struct acct *d = find_acct(m, t->debit), *c = find_acct(m, t->credit);
    const char *customer = d && d->a.customer[0] ? d->a.customer : c ? c->a.customer : "";
    const char *counterparty =
        d && d->a.customer[0] ? (c ? c->a.customer : "") : (d ? d->a.customer : "");
    struct cu_buf b;
    enum cu_err rc;

    cu_buf_init(&b, CU_WORK_DETAILS_MAX);
    rc = cu_buf_printf(&b, "{\"amount\":%lld", (long long)t->amount);
    if (rc == CU_OK)
        rc = cu_json_put_string(&b, "channel", t->channel);
    if (rc == CU_OK)
        rc = cu_json_put_string(&b, "code", t->code);
    if (rc == CU_OK)
        rc = cu_json_put_string(&b, "counterparty", counterparty);
    if (rc == CU_OK)
        rc = cu_json_put_string(&b, "credit_account", t->credit);
    if (rc == CU_OK)
        rc = cu_json_put_string(&b, "currency", t->currency);
    if (rc == CU_OK)
        rc = cu_json_put_string(&b, "customer", customer);
    if (rc == CU_OK)
        rc = cu_json_put_string(&b, "debit_account", t->debit);
    if (rc == CU_OK)
        rc = cu_json_put_string(&b, "device", ctx->device_id);
    if (rc == CU_OK)
        rc = cu_json_put_string(&b, "ip", ctx->kept_ip);
    if (rc == CU_OK)
        rc = cu_buf_printf(&b, ",\"pending\":%s", t->pending ? "true" : "false");
    if (rc == CU_OK)
        rc = cu_buf_printf(&b, ",\"seq\":%lld", (long long)t->seq);
    if (rc == CU_OK)
        rc = cu_json_put_time(&b, "time", t->at);
    if (rc == CU_OK)
        rc = cu_json_put_string(&b, "transfer", t->id);
    if (rc == CU_OK)
        rc = cu_buf_append_str(&b, "}");
    if (rc == CU_OK)
        rc = cu_work_emit_text(m->w, event_type(m, t, d, c), customer, cu_buf_steal(&b));
    cu_buf_free(&b);
    return rc;
}

static const char *movement_action(const struct mv *m, bool batch)
{
    const struct cu_ledger_transfer *t = &m->res[0].t;

    if (batch)
        return m->ops[0].kind == CU_LEDGER_EXPIRE ? "ledger.expire" : "ledger.batch";
    switch (m->ops[0].kind) {
    case CU_LEDGER_POST:
        return "ledger.post";
    case CU_LEDGER_VOID:
        return "ledger.void";
    case CU_LEDGER_REVERSE:
        return "ledger.reverse";
    case CU_LEDGER_EXPIRE:
        return "ledger.expire";
    case CU_LEDGER_TRANSFER:
        break;
    }
    if (m->res[0].err == CU_OK) {
        const char *e = event_type(m, t, find_acct(m, t->debit), find_acct(m, t->credit));
        if (strcmp(e, "deposit") == 0)
            return "ledger.deposit";
        if (strcmp(e, "withdrawal") == 0)
            return "ledger.withdrawal";
    }
    return "ledger.transfer";
}

static enum cu_err write_all(struct mv *m, int64_t head, bool batch,
                             const char movement[CU_LEDGER_ID_BYTES])
{
    static const char head_sql[] = "UPDATE ledger_head SET seq = $1 WHERE id = 1";
    char target[CU_LEDGER_ID_BYTES + 8], hex[65];
    const char *first_type = NULL;
    int64_t seq = head, first = 0;
    size_t made = 0, refused = 0;
    struct cu_buf digest;
    enum cu_err rc = CU_OK;

    cu_buf_init(&digest, (size_t)CU_LEDGER_BATCH_MAX * 4096);
    for (size_t i = 0; rc == CU_OK && i < m->n; i++) {
        struct cu_ledger_result *r = &m->res[i];
        if (r->verdict == CU_LEDGER_DENY || r->verdict == CU_LEDGER_STEP_UP)
            rc = insert_decision(m, &m->ops[i], r);
        if (rc != CU_OK)
            break;
        if (r->err != CU_OK) {
            if (first_type == NULL)
                first_type = r->type;
            refused++;
            continue;
        }
        r->t.seq = ++seq;
        if (first == 0)
            first = seq;
        snprintf(r->t.movement, sizeof(r->t.movement), "%s", movement);
        rc = insert_transfer(m, &r->t);
        if (rc == CU_OK)
            rc = cu_ledger_digest_add(&digest, &r->t);
        if (rc == CU_OK)
            rc = emit(m, &r->t);
        made++;
    }
    if (rc == CU_OK)
        rc = write_accounts(m);
    if (rc == CU_OK && made > 0) {
        struct cu_val p[] = {CU_VI(seq)};
        rc = cu_db_exec(m->db, head_sql, p, 1);
    }
    cu_ledger_digest_hex(&digest, hex);
    cu_buf_free(&digest);
    snprintf(target, sizeof(target), "ledger:%s", movement);
    if (rc == CU_OK)
        rc = cu_work_audit(
            m->w, movement_action(m, batch), target, made > 0 ? "success" : "failure",
            json_pack("{s:I, s:I, s:s, s:I, s:I, s:s?}", "transfers", (json_int_t)made, "refused",
                      (json_int_t)refused, "digest", hex, "seq_first", (json_int_t)first,
                      "seq_last", (json_int_t)(made ? seq : 0), "refusal", first_type));
    return rc;
}

/* ---- the movement ---- */

static void mv_free(struct mv *m)
{
    for (size_t i = 0; i < m->ntg; i++)
        cu_ledger_transfer_clear(&m->tg[i].t);
    cu_free(m->tg);
    cu_free(m->op_tgt);
    cu_free(m->lim);
    cu_free(m->undo);
}

enum cu_err cu_ledger_move(struct cu_ledger *l, struct cu_work *w, struct cu_db *db,
                           const struct cu_ledger_actor *actor, const struct cu_ledger_op *ops,
                           size_t n, bool batch, char movement[CU_LEDGER_ID_BYTES],
                           struct cu_ledger_result *results, struct cu_ledger_account **accounts,
                           size_t *naccounts)
{
    struct mv m = {.l = l, .w = w, .db = db, .actor = actor, .ops = ops, .res = results, .n = n};
    int64_t head = 0;
    enum cu_err rc;

    /* a unit may run again: start afresh */
    for (size_t i = 0; i < n; i++) {
        cu_ledger_transfer_clear(&results[i].t);
        memset(&results[i], 0, sizeof(results[i]));
    }
    cu_free(*accounts);
    *accounts = NULL;
    *naccounts = 0;
    if (n == 0 || n > CU_LEDGER_BATCH_MAX)
        return CU_E_INVALID;
    m.now = cu_work_context(w)->now_ms;
    m.today = cu_ledger_day(m.now);
    m.op_tgt = cu_calloc(n, sizeof(*m.op_tgt));
    m.tg = cu_calloc(n, sizeof(*m.tg));
    if (m.op_tgt == NULL || m.tg == NULL) {
        mv_free(&m);
        return CU_E_NOMEM;
    }
    rc = lock_head(db, &head);
    if (rc == CU_OK)
        rc = lock_targets(&m);
    if (rc == CU_OK)
        rc = lock_accounts(&m);
    if (rc == CU_OK)
        rc = lock_limits(&m);
    if (rc == CU_OK)
        rc = run_ops(&m);
    if (rc == CU_OK) {
        if (batch)
            cu_ledger_new_id("bat_", movement);
        else
            snprintf(movement, CU_LEDGER_ID_BYTES, "%s",
                     results[0].err == CU_OK ? results[0].t.id : "");
        if (movement[0] == '\0')
            cu_ledger_new_id("trf_", movement); /* a refused transfer: the attempt's id */
        rc = write_all(&m, head, batch, movement);
    }
    if (rc == CU_OK) {
        size_t k = 0;
        for (size_t i = 0; i < m.nacc; i++)
            k += m.acc[i].found;
        *accounts = cu_calloc(k ? k : 1, sizeof(**accounts));
        if (*accounts == NULL)
            rc = CU_E_NOMEM;
        for (size_t i = 0; rc == CU_OK && i < m.nacc; i++)
            if (m.acc[i].found)
                (*accounts)[(*naccounts)++] = m.acc[i].a;
    }
    cu_free(m.acc);
    mv_free(&m);
    return rc;
}

enum cu_err cu_ledger_expire(struct cu_ledger *l, struct cu_work *w, struct cu_db *db, int64_t now,
                             size_t max, size_t *done)
{
    static const char sql[] = "SELECT transfer FROM ledger_pending WHERE status = 'pending' AND "
                              "expires_at IS NOT NULL AND expires_at <= $1 "
                              "ORDER BY expires_at, transfer LIMIT $2";
    struct cu_val p[] = {CU_VI(now), CU_VI(max)};
    char(*ids)[CU_LEDGER_ID_BYTES] = NULL;
    struct cu_ledger_op *ops = NULL;
    struct cu_ledger_result *res = NULL;
    struct cu_ledger_account *acc = NULL;
    struct cu_ledger_actor actor = {.channel = "system"};
    char movement[CU_LEDGER_ID_BYTES];
    struct cu_stmt *st = NULL;
    size_t n = 0, nacc = 0;
    bool row = false;
    enum cu_err rc;

    *done = 0;
    if (max == 0)
        return CU_OK;
    if (max > CU_LEDGER_BATCH_MAX)
        max = CU_LEDGER_BATCH_MAX;
    ids = cu_calloc(max, sizeof(*ids));
    ops = cu_calloc(max, sizeof(*ops));
    res = cu_calloc(max, sizeof(*res));
    rc = ids && ops && res ? cu_db_query(db, sql, p, CU_NVALS(p), &st) : CU_E_NOMEM;
    while (rc == CU_OK && (rc = cu_stmt_next(st, &row)) == CU_OK && row && n < max) {
        size_t len = 0;
        const char *s = cu_stmt_text(st, 0, &len);
        snprintf(ids[n], CU_LEDGER_ID_BYTES, "%.*s", (int)len, s);
        ops[n].kind = CU_LEDGER_EXPIRE;
        ops[n].target = ids[n];
        n++;
    }
    cu_stmt_done(st);
    if (rc == CU_OK && n > 0)
        rc = cu_ledger_move(l, w, db, &actor, ops, n, true, movement, res, &acc, &nacc);
    for (size_t i = 0; i < n; i++) {
        if (rc == CU_OK && res[i].err == CU_OK)
            (*done)++;
        cu_ledger_transfer_clear(&res[i].t);
    }
    cu_free(acc);
    cu_free(res);
    cu_free(ops);
    cu_free(ids);
    return rc;
}
