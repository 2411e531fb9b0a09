/*
 * test_ledger.c - the ledger through the group committer over SQLite, with the real audit
 * log: deposits, transfers and withdrawals with the balances they leave; every refusal with
 * its stable type and nothing changed; two-phase transfers posted in part, voided and expired;
 * linked chains whole or not at all; reversals once; freezes and closes; limits per transfer,
 * per day and per customer; the monitoring hook's four verdicts; the events and audit records
 * of movements; the check finding what is wrong; opposite transfers from many threads; and a
 * seeded randomised simulation with faults injected into the store, the check holding after
 * every fault (CU_LEDGER_SIM_OPS and CU_LEDGER_SIM_SEED set its length and seed).
 */
#include "cu_test.h"

#include <pthread.h>

#include "audit/audit.h"
#include "base/clock.h"
#include "base/mem.h"
#include "crypto/crypto.h"
#include "crypto/keyring.h"
#include "ledger/ledger.h"
#include "monitor/events.h"
#include "store/store.h"
#include "store/work.h"

#define T0 1800000000000LL /* 2027-01-15, a fixed clock */

struct fixture {
    char dir[256], key[300], path[300];
    struct cu_store *st;
    struct cu_db *conn; /* the test's own reads */
    struct cu_keyring *kr;
    struct cu_audit *log;
    struct cu_committer *c;
    struct cu_ledger *l;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    char err[CU_STORE_ERR_BYTES], kerr[CU_KEYRING_ERR_BYTES];
    const struct cu_audit_opts ao = {
        .origin = "test.example/ledger", .checkpoint_records = 100000, .checkpoint_seconds = 3600};

    assert_non_null(f);
    assert_int_equal(cu_crypto_init(), CU_OK);
    cu_test_tmpdir(f->dir, sizeof(f->dir));
    snprintf(f->key, sizeof(f->key), "%s/root.key", f->dir);
    snprintf(f->path, sizeof(f->path), "%s/t.db", f->dir);
    assert_int_equal(cu_keyring_create(f->key, kerr), CU_OK);
    assert_int_equal(cu_keyring_load(f->key, &f->kr, kerr), CU_OK);
    struct cu_store_opts o = {.backend = "sqlite",
                              .path = f->path,
                              .busy_timeout_ms = 10000,
                              .synchronous_full = false,
                              .create = true,
                              .pool_connections = 4};
    assert_int_equal(cu_store_open(&o, &f->st, err), CU_OK);
    assert_int_equal(cu_store_migrate(f->st, err), CU_OK);
    assert_int_equal(cu_store_acquire(f->st, &f->conn), CU_OK);
    assert_int_equal(cu_audit_new(f->kr, &ao, &f->log), CU_OK);
    struct cu_committer_opts co = {.audit = cu_audit_sink(f->log), .events = cu_events_sink()};
    assert_int_equal(cu_committer_new(f->st, &co, &f->c), CU_OK);
    assert_int_equal(cu_ledger_new(NULL, &f->l), CU_OK);
    cu_clock_set_fake(T0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    cu_committer_free(f->c);
    cu_ledger_free(f->l);
    cu_audit_free(f->log);
    cu_store_release(f->conn);
    cu_store_close(f->st);
    cu_keyring_free(f->kr);
    cu_test_rmrf(f->dir);
    free(f);
    return 0;
}

/* ---- running things in units ---- */

static enum cu_err run(struct fixture *f, cu_work_fn fn, void *arg, const char *actor)
{
    struct cu_work_ctx ctx = {.now_ms = cu_clock_now_ms()};
    struct cu_work *w = NULL;
    enum cu_err rc;

    snprintf(ctx.actor_type, sizeof(ctx.actor_type), "%s", actor ? "staff" : "system");
    snprintf(ctx.actor_id, sizeof(ctx.actor_id), "%s", actor ? actor : "");
    snprintf(ctx.kept_ip, sizeof(ctx.kept_ip), "hk:test");
    rc = cu_work_new(&ctx, &w);
    if (rc == CU_OK)
        rc = cu_work_add(w, fn, arg);
    if (rc == CU_OK)
        rc = cu_committer_run(f->c, w);
    cu_work_free(w);
    return rc;
}

struct mk {
    struct fixture *f;
    struct cu_ledger_account_in in;
    struct cu_ledger_account a;
    char detail[256];
};

static enum cu_err mk_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct mk *m = arg;
    return cu_ledger_account_create(m->f->l, w, db, &m->in, &m->a, m->detail);
}

static void account(struct fixture *f, const char *customer, const char *currency,
                    int64_t per_transfer, int64_t daily, char out[CU_LEDGER_ID_BYTES])
{
    struct mk m = {.f = f,
                   .in = {.customer = customer,
                          .currency = currency,
                          .limit_per_transfer = per_transfer,
                          .limit_daily = daily}};
    assert_int_equal(run(f, mk_apply, &m, "stf_0000000000000001"), CU_OK);
    snprintf(out, CU_LEDGER_ID_BYTES, "%s", m.a.id);
}

struct sys {
    const char *purpose, *currency;
    struct cu_ledger_account a;
};

static enum cu_err sys_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct sys *s = arg;
    (void)w;
    return cu_ledger_system_account(db, s->purpose, s->currency, true, &s->a);
}

static void system_account(struct fixture *f, const char *purpose, const char *currency,
                           char out[CU_LEDGER_ID_BYTES])
{
    struct sys s = {purpose, currency, {.id = ""}};
    assert_int_equal(run(f, sys_apply, &s, NULL), CU_OK);
    snprintf(out, CU_LEDGER_ID_BYTES, "%s", s.a.id);
}

struct mv {
    struct fixture *f;
    const struct cu_ledger_actor *actor;
    const struct cu_ledger_op *ops;
    size_t n;
    bool batch;
    char movement[CU_LEDGER_ID_BYTES];
    struct cu_ledger_result res[16];
    struct cu_ledger_account *acc;
    size_t nacc;
};

static enum cu_err mv_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct mv *m = arg;
    return cu_ledger_move(m->f->l, w, db, m->actor, m->ops, m->n, m->batch, m->movement, m->res,
                          &m->acc, &m->nacc);
}

static void mv_clear(struct mv *m)
{
    for (size_t i = 0; i < m->n; i++)
        cu_ledger_transfer_clear(&m->res[i].t);
    cu_free(m->acc);
    m->acc = NULL;
}

static const struct cu_ledger_actor staff_actor = {.channel = "api"};

/* move(f, ops, n, m): runs the ops as one movement of a staff member; m keeps the results. */
static enum cu_err move(struct fixture *f, const struct cu_ledger_op *ops, size_t n, struct mv *m)
{
    memset(m, 0, sizeof(*m));
    m->f = f;
    m->actor = &staff_actor;
    m->ops = ops;
    m->n = n;
    m->batch = n > 1;
    return run(f, mv_apply, m, "stf_0000000000000001");
}

/* one(f, op, type, t): a single op; its stable type (NULL for success) must be type; t gets
 * the transfer's id. */
static void one(struct fixture *f, struct cu_ledger_op op, const char *type,
                char t[CU_LEDGER_ID_BYTES])
{
    struct mv m;
    enum cu_err rc = move(f, &op, 1, &m);
    if (rc != CU_OK)
        fail_msg("the unit of a %s failed: %s", cu_ledger_kind_name(op.kind), cu_err_str(rc));
    if (type == NULL) {
        if (m.res[0].err != CU_OK)
            fail_msg("expected success, got %s: %s", m.res[0].type, m.res[0].detail);
    } else {
        assert_non_null(m.res[0].type);
        assert_string_equal(m.res[0].type, type);
        assert_int_not_equal(m.res[0].err, CU_OK);
    }
    if (t != NULL)
        snprintf(t, CU_LEDGER_ID_BYTES, "%s", m.res[0].t.id);
    mv_clear(&m);
}

static struct cu_ledger_op xfer(const char *d, const char *c, int64_t amount)
{
    struct cu_ledger_op op = {.kind = CU_LEDGER_TRANSFER,
                              .debit = d,
                              .credit = c,
                              .amount = amount,
                              .currency = "EUR",
                              .code = "payment"};
    return op;
}

static struct cu_ledger_op act(enum cu_ledger_kind kind, const char *target, int64_t amount)
{
    struct cu_ledger_op op = {.kind = kind, .target = target, .amount = amount};
    return op;
}

static struct cu_ledger_balance balance(struct fixture *f, const char *id)
{
    struct cu_ledger_account a;
    struct cu_ledger_balance b;
    assert_int_equal(cu_ledger_account_get(f->conn, id, &a), CU_OK);
    assert_int_equal(cu_ledger_balance_of(&a, &b), CU_OK);
    return b;
}

static void expect_balance(struct fixture *f, const char *id, int64_t posted, int64_t pending,
                           int64_t available)
{
    struct cu_ledger_balance b = balance(f, id);
    if (b.posted != posted || b.pending != pending || b.available != available)
        fail_msg("account %s: posted %lld pending %lld available %lld; expected %lld %lld %lld", id,
                 (long long)b.posted, (long long)b.pending, (long long)b.available,
                 (long long)posted, (long long)pending, (long long)available);
}

static void ledger_holds(struct fixture *f)
{
    struct cu_ledger_check_report r;
    assert_int_equal(cu_ledger_check(f->conn, &r), CU_OK);
    if (r.violations != 0)
        fail_msg("ledger check: %zu violations, first: %s", r.violations, r.first);
}

static int64_t head(struct fixture *f)
{
    int64_t seq = 0;
    assert_int_equal(cu_ledger_head(f->conn, &seq), CU_OK);
    return seq;
}

static int64_t count(struct fixture *f, const char *sql)
{
    struct cu_stmt *st = NULL;
    bool row = false;
    int64_t n;
    assert_int_equal(cu_db_query(f->conn, sql, NULL, 0, &st), CU_OK);
    assert_int_equal(cu_stmt_next(st, &row), CU_OK);
    assert_true(row);
    n = cu_stmt_int(st, 0);
    cu_stmt_done(st);
    return n;
}

/* ---- tests ---- */

static void test_deposit_transfer_withdraw(void **state)
{
    struct fixture *f = *state;
    char a[CU_LEDGER_ID_BYTES], b[CU_LEDGER_ID_BYTES], in[CU_LEDGER_ID_BYTES],
        out[CU_LEDGER_ID_BYTES], t[CU_LEDGER_ID_BYTES];
    struct mv m;

    account(f, "cus_00000000000000a1", "EUR", 0, 0, a);
    account(f, "cus_00000000000000b2", "EUR", 0, 0, b);
    system_account(f, "cash_in", "EUR", in);
    system_account(f, "cash_out", "EUR", out);

    struct cu_ledger_op dep = xfer(in, a, 100000);
    assert_int_equal(move(f, &dep, 1, &m), CU_OK);
    assert_int_equal(m.res[0].err, CU_OK);
    assert_int_equal(m.res[0].t.seq, 1);
    /* the answer carries the balances it left */
    assert_int_equal(m.nacc, 2);
    for (size_t i = 0; i < m.nacc; i++)
        if (strcmp(m.acc[i].id, a) == 0)
            assert_int_equal(m.acc[i].t.credits_posted, 100000);
    mv_clear(&m);

    one(f, xfer(a, b, 30000), NULL, t);
    one(f, xfer(b, out, 10000), NULL, NULL);
    expect_balance(f, a, 70000, 0, 70000);
    expect_balance(f, b, 20000, 0, 20000);
    expect_balance(f, in, -100000, 0, INT64_MAX); /* the system's own have no bound */
    assert_int_equal(head(f), 3);

    struct cu_ledger_transfer got;
    assert_int_equal(cu_ledger_transfer_get(f->conn, t, &got), CU_OK);
    assert_string_equal(got.debit, a);
    assert_int_equal(got.amount, 30000);
    assert_string_equal(got.actor, "staff:stf_0000000000000001");
    cu_ledger_transfer_clear(&got);

    /* one event and one audit record per movement */
    assert_int_equal(count(f, "SELECT COUNT(*) FROM events"), 3);
    assert_int_equal(count(f, "SELECT COUNT(*) FROM events WHERE type = 'deposit'"), 1);
    assert_int_equal(count(f, "SELECT COUNT(*) FROM events WHERE type = 'withdrawal'"), 1);
    assert_int_equal(
        count(f, "SELECT COUNT(*) FROM events WHERE type = 'transfer' AND "
                 "customer = 'cus_00000000000000a1' AND body LIKE '%\"ip\":\"hk:test\"%'"),
        1);
    assert_int_equal(count(f, "SELECT COUNT(*) FROM audit_log WHERE action = 'ledger.deposit'"), 1);
    assert_int_equal(count(f, "SELECT COUNT(*) FROM audit_log WHERE action = 'ledger.transfer'"),
                     1);
    assert_int_equal(count(f, "SELECT COUNT(*) FROM audit_log WHERE action = 'ledger.withdrawal'"),
                     1);
    ledger_holds(f);

    /* the entries of an account, either side, by seq */
    struct cu_ledger_entry_filter fl = {.account = b, .limit = 10};
    struct cu_ledger_transfer *e = NULL;
    size_t n = 0;
    assert_int_equal(cu_ledger_entries(f->conn, &fl, &e, &n), CU_OK);
    assert_int_equal(n, 2);
    assert_true(e[0].seq < e[1].seq);
    cu_ledger_transfers_free(e, n);
    fl.counterparty = a;
    assert_int_equal(cu_ledger_entries(f->conn, &fl, &e, &n), CU_OK);
    assert_int_equal(n, 1);
    cu_ledger_transfers_free(e, n);
}

static void test_refusals_change_nothing(void **state)
{
    struct fixture *f = *state;
    char a[CU_LEDGER_ID_BYTES], b[CU_LEDGER_ID_BYTES], u[CU_LEDGER_ID_BYTES],
        lim[CU_LEDGER_ID_BYTES], in[CU_LEDGER_ID_BYTES];

    account(f, "cus_00000000000000a1", "EUR", 0, 0, a);
    account(f, "cus_00000000000000b2", "EUR", 0, 0, b);
    account(f, "cus_00000000000000c3", "USD", 0, 0, u);
    account(f, "cus_00000000000000d4", "EUR", 500, 800, lim);
    system_account(f, "cash_in", "EUR", in);
    one(f, xfer(in, a, 1000), NULL, NULL);
    one(f, xfer(in, lim, 5000), NULL, NULL);
    int64_t h = head(f);

    one(f, xfer(a, b, 1001), "insufficient_funds", NULL);
    one(f, xfer(a, b, 0), "invalid_transfer", NULL);
    one(f, xfer(a, b, -5), "invalid_transfer", NULL);
    one(f, xfer(a, a, 5), "invalid_transfer", NULL);
    one(f, xfer(a, u, 5), "currency_mismatch", NULL);
    one(f, xfer(a, "acc_ffffffffffffffff", 5), "unknown_account", NULL);
    one(f, xfer(lim, b, 501), "limit_exceeded", NULL);
    one(f, xfer(lim, b, 500), NULL, NULL);
    one(f, xfer(lim, b, 300), NULL, NULL);
    one(f, xfer(lim, b, 1), "limit_exceeded", NULL); /* 800 a day */
    cu_clock_set_fake(T0 + 86400000);                /* the next day */
    one(f, xfer(lim, b, 500), NULL, NULL);
    cu_clock_set_fake(T0);
    char g[CU_LEDGER_ID_BYTES], gin[CU_LEDGER_ID_BYTES];
    account(f, "cus_00000000000000e5", "GBP", 0, 0, g);
    system_account(f, "cash_in", "GBP", gin);
    struct cu_ledger_op big = xfer(gin, g, INT64_MAX);
    big.currency = "GBP";
    one(f, big, "invalid_transfer", NULL); /* past CU_LEDGER_AMOUNT_MAX */
    big.amount = CU_LEDGER_AMOUNT_MAX;
    one(f, big, NULL, NULL);
    /* a total near 64 bits (set by hand: it takes 9,223 such deposits) */
    assert_int_equal(cu_db_exec(f->conn,
                                "UPDATE ledger_accounts SET credits_posted = 9223372036854775800 "
                                "WHERE customer = 'cus_00000000000000e5'",
                                NULL, 0),
                     CU_OK);
    big.amount = 8;
    one(f, big, "balance_overflow", NULL); /* an error, never a wrap */
    assert_int_equal(cu_db_exec(f->conn,
                                "UPDATE ledger_accounts SET credits_posted = 1000000000000000 "
                                "WHERE customer = 'cus_00000000000000e5'",
                                NULL, 0),
                     CU_OK);
    assert_int_equal(head(f), h + 4);
    expect_balance(f, b, 1300, 0, 1300);
    ledger_holds(f);
}

static void test_two_phase(void **state)
{
    struct fixture *f = *state;
    char a[CU_LEDGER_ID_BYTES], b[CU_LEDGER_ID_BYTES], in[CU_LEDGER_ID_BYTES];
    char p1[CU_LEDGER_ID_BYTES], p2[CU_LEDGER_ID_BYTES], p3[CU_LEDGER_ID_BYTES];

    account(f, "cus_00000000000000a1", "EUR", 0, 0, a);
    account(f, "cus_00000000000000b2", "EUR", 0, 0, b);
    system_account(f, "cash_in", "EUR", in);
    one(f, xfer(in, a, 1000), NULL, NULL);

    struct cu_ledger_op op = xfer(a, b, 600);
    op.pending = true;
    one(f, op, NULL, p1);
    expect_balance(f, a, 1000, -600, 400); /* reserved: it may not leave twice */
    expect_balance(f, b, 0, 600, 0);       /* and is not there yet */
    one(f, xfer(a, b, 401), "insufficient_funds", NULL);
    one(f, act(CU_LEDGER_POST, p1, 601), "amount_exceeds_pending", NULL);
    one(f, act(CU_LEDGER_POST, p1, 250), NULL, NULL); /* in part: the rest is released */
    expect_balance(f, a, 750, 0, 750);
    expect_balance(f, b, 250, 0, 250);
    one(f, act(CU_LEDGER_POST, p1, 0), "transfer_posted", NULL);
    one(f, act(CU_LEDGER_VOID, p1, 0), "transfer_posted", NULL);

    op.amount = 100;
    one(f, op, NULL, p2);
    one(f, act(CU_LEDGER_VOID, p2, 0), NULL, NULL);
    one(f, act(CU_LEDGER_POST, p2, 0), "transfer_voided", NULL);
    expect_balance(f, a, 750, 0, 750);

    op.timeout_s = 60;
    one(f, op, NULL, p3);
    expect_balance(f, a, 750, -100, 650);
    cu_clock_set_fake(T0 + 61000);
    one(f, act(CU_LEDGER_POST, p3, 0), "transfer_expired", NULL);
    one(f, act(CU_LEDGER_POST, "trf_ffffffffffffffff", 0), "unknown_transfer", NULL);
    cu_clock_set_fake(T0);
    ledger_holds(f);
}

struct expire_job {
    struct fixture *f;
    size_t done;
};

static enum cu_err expire_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct expire_job *j = arg;
    return cu_ledger_expire(j->f->l, w, db, cu_work_context_of(w)->now_ms, 100, &j->done);
}

static void test_expiry_returns_funds(void **state)
{
    struct fixture *f = *state;
    char a[CU_LEDGER_ID_BYTES], b[CU_LEDGER_ID_BYTES], in[CU_LEDGER_ID_BYTES],
        p[CU_LEDGER_ID_BYTES];
    struct expire_job j = {f, 0};

    account(f, "cus_00000000000000a1", "EUR", 0, 0, a);
    account(f, "cus_00000000000000b2", "EUR", 0, 0, b);
    system_account(f, "cash_in", "EUR", in);
    one(f, xfer(in, a, 1000), NULL, NULL);
    struct cu_ledger_op op = xfer(a, b, 400);
    op.pending = true;
    op.timeout_s = 30;
    one(f, op, NULL, p);
    assert_int_equal(run(f, expire_apply, &j, NULL), CU_OK);
    assert_int_equal(j.done, 0); /* not yet */
    cu_clock_set_fake(T0 + 30000);
    assert_int_equal(run(f, expire_apply, &j, NULL), CU_OK);
    assert_int_equal(j.done, 1);
    expect_balance(f, a, 1000, 0, 1000);
    struct cu_ledger_transfer t;
    assert_int_equal(cu_ledger_transfer_get(f->conn, p, &t), CU_OK);
    assert_string_equal(t.state, "expired");
    cu_ledger_transfer_clear(&t);
    one(f, act(CU_LEDGER_VOID, p, 0), "transfer_expired", NULL);
    assert_int_equal(count(f, "SELECT COUNT(*) FROM events WHERE type = 'transfer_expired'"), 1);
    assert_int_equal(count(f, "SELECT COUNT(*) FROM audit_log WHERE action = 'ledger.expire'"), 1);
    cu_clock_set_fake(T0);
    ledger_holds(f);
}

static void test_linked_chains(void **state)
{
    struct fixture *f = *state;
    char a[CU_LEDGER_ID_BYTES], b[CU_LEDGER_ID_BYTES], fees[CU_LEDGER_ID_BYTES],
        in[CU_LEDGER_ID_BYTES];
    struct mv m;

    account(f, "cus_00000000000000a1", "EUR", 0, 0, a);
    account(f, "cus_00000000000000b2", "EUR", 0, 0, b);
    system_account(f, "fees", "EUR", fees);
    system_account(f, "cash_in", "EUR", in);
    one(f, xfer(in, a, 1000), NULL, NULL);
    int64_t h = head(f);

    /* a payment and its fee: the fee does not fit, so neither is made */
    struct cu_ledger_op ops[3] = {xfer(a, b, 990), xfer(a, fees, 20), xfer(a, b, 5)};
    ops[0].linked = true;
    assert_int_equal(move(f, ops, 3, &m), CU_OK);
    assert_string_equal(m.res[0].type, "linked_transfer_failed");
    assert_string_equal(m.res[1].type, "insufficient_funds");
    assert_int_equal(m.res[2].err, CU_OK); /* independent of the chain */
    mv_clear(&m);
    assert_int_equal(head(f), h + 1);
    expect_balance(f, a, 995, 0, 995);

    ops[0].amount = 900;
    assert_int_equal(move(f, ops, 2, &m), CU_OK);
    assert_int_equal(m.res[0].err, CU_OK);
    assert_int_equal(m.res[1].err, CU_OK);
    assert_string_equal(m.res[0].t.movement, m.res[1].t.movement);
    mv_clear(&m);
    expect_balance(f, a, 75, 0, 75);

    /* a chain left open fails whole */
    ops[0].amount = 1;
    ops[1].linked = true;
    assert_int_equal(move(f, ops, 2, &m), CU_OK);
    assert_string_equal(m.res[0].type, "linked_chain_open");
    assert_string_equal(m.res[1].type, "linked_chain_open");
    mv_clear(&m);
    assert_int_equal(count(f, "SELECT COUNT(*) FROM audit_log WHERE action = 'ledger.batch'"), 3);
    ledger_holds(f);
}

static void test_reversal(void **state)
{
    struct fixture *f = *state;
    char a[CU_LEDGER_ID_BYTES], b[CU_LEDGER_ID_BYTES], in[CU_LEDGER_ID_BYTES],
        t[CU_LEDGER_ID_BYTES], r[CU_LEDGER_ID_BYTES], p[CU_LEDGER_ID_BYTES];

    account(f, "cus_00000000000000a1", "EUR", 0, 0, a);
    account(f, "cus_00000000000000b2", "EUR", 0, 0, b);
    system_account(f, "cash_in", "EUR", in);
    one(f, xfer(in, a, 1000), NULL, NULL);
    one(f, xfer(a, b, 300), NULL, t);
    one(f, act(CU_LEDGER_REVERSE, t, 0), NULL, r);
    expect_balance(f, a, 1000, 0, 1000);
    expect_balance(f, b, 0, 0, 0);
    one(f, act(CU_LEDGER_REVERSE, t, 0), "already_reversed", NULL);
    one(f, act(CU_LEDGER_REVERSE, r, 0), "not_reversible", NULL);
    struct cu_ledger_op op = xfer(a, b, 10);
    op.pending = true;
    one(f, op, NULL, p);
    one(f, act(CU_LEDGER_REVERSE, p, 0), "not_reversible", NULL);
    /* a reversal needs the money to be there */
    one(f, xfer(a, b, 500), NULL, t);
    one(f, xfer(b, in, 400), NULL, NULL);
    one(f, act(CU_LEDGER_REVERSE, t, 0), "insufficient_funds", NULL);
    ledger_holds(f);
}

struct acct_job {
    struct fixture *f;
    int what; /* 0 freeze, 1 unfreeze, 2 close */
    const char *id;
    int64_t until;
    struct cu_ledger_account a;
    char detail[256];
};

static enum cu_err acct_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct acct_job *j = arg;
    switch (j->what) {
    case 0:
        return cu_ledger_freeze(j->f->l, w, db, j->id, "fraud report 17", j->until, &j->a,
                                j->detail);
    case 1:
        return cu_ledger_unfreeze(j->f->l, w, db, j->id, &j->a, j->detail);
    default:
        return cu_ledger_close(j->f->l, w, db, j->id, &j->a, j->detail);
    }
}

static enum cu_err acct_do(struct fixture *f, int what, const char *id, int64_t until)
{
    struct acct_job j = {.f = f, .what = what, .id = id, .until = until};
    return run(f, acct_apply, &j, "stf_0000000000000001");
}

static void test_freeze_and_close(void **state)
{
    struct fixture *f = *state;
    char a[CU_LEDGER_ID_BYTES], b[CU_LEDGER_ID_BYTES], in[CU_LEDGER_ID_BYTES],
        p[CU_LEDGER_ID_BYTES];

    account(f, "cus_00000000000000a1", "EUR", 0, 0, a);
    account(f, "cus_00000000000000b2", "EUR", 0, 0, b);
    system_account(f, "cash_in", "EUR", in);
    one(f, xfer(in, a, 1000), NULL, NULL);
    struct cu_ledger_op op = xfer(a, b, 100);
    op.pending = true;
    one(f, op, NULL, p);

    assert_int_equal(acct_do(f, 0, a, 0), CU_OK);
    one(f, xfer(a, b, 5), "account_frozen", NULL);
    one(f, act(CU_LEDGER_POST, p, 0), "account_frozen", NULL);
    one(f, xfer(in, a, 5), NULL, NULL);           /* money still comes in */
    assert_int_equal(acct_do(f, 0, a, 0), CU_OK); /* again: a new reason and end */
    assert_int_equal(acct_do(f, 1, a, 0), CU_OK);
    one(f, xfer(a, b, 5), NULL, NULL);
    assert_int_equal(acct_do(f, 1, a, 0), CU_E_EXISTS);
    assert_int_equal(count(f,
                           "SELECT COUNT(*) FROM audit_log WHERE action = 'ledger.account_freeze' "
                           "AND details NOT LIKE '%fraud%'"),
                     2); /* the reason is not in the audit log: it may name a person */

    /* a freeze with an end ends by itself */
    struct acct_job j = {.f = f, .what = 0, .id = a, .until = T0 + 5000};
    assert_int_equal(run(f, acct_apply, &j, "stf_0000000000000001"), CU_OK);
    one(f, xfer(a, b, 5), "account_frozen", NULL);
    cu_clock_set_fake(T0 + 5000);
    one(f, xfer(a, b, 5), NULL, NULL);
    cu_clock_set_fake(T0);

    /* closing needs nothing in it and nothing pending */
    assert_int_equal(acct_do(f, 2, b, 0), CU_E_EXISTS);
    char c[CU_LEDGER_ID_BYTES];
    account(f, "cus_00000000000000c3", "EUR", 0, 0, c);
    assert_int_equal(acct_do(f, 2, c, 0), CU_OK);
    one(f, xfer(in, c, 5), "account_closed", NULL);
    assert_int_equal(acct_do(f, 1, c, 0), CU_E_EXISTS);
    assert_int_equal(acct_do(f, 2, in, 0), CU_E_EXISTS); /* the system's never */
    ledger_holds(f);
}

/* ---- the monitoring hook, through a test double ---- */

struct double_hook {
    enum cu_ledger_verdict next;
    int calls;
    int hold_call; /* > 0: that call alone is held, the others let through */
};

static enum cu_err decide(void *arg, struct cu_db *db, const struct cu_ledger_ask *ask,
                          struct cu_ledger_hook_out *out)
{
    struct double_hook *h = arg;
    (void)db;
    assert_non_null(ask->debit);
    assert_non_null(ask->w);
    h->calls++;
    out->verdict =
        h->hold_call > 0 ? (h->calls == h->hold_call ? CU_LEDGER_HOLD : CU_LEDGER_LET) : h->next;
    snprintf(out->reasons, sizeof(out->reasons), "%s",
             out->verdict == CU_LEDGER_LET ? "" : "rule new_payee_large");
    snprintf(out->decision, sizeof(out->decision), "dec_00000000000000%02u",
             (unsigned)h->calls % 100u);
    return CU_OK;
}

static void test_hook(void **state)
{
    struct fixture *f = *state;
    char a[CU_LEDGER_ID_BYTES], b[CU_LEDGER_ID_BYTES], in[CU_LEDGER_ID_BYTES],
        h1[CU_LEDGER_ID_BYTES];
    struct double_hook dh = {CU_LEDGER_LET, 0, 0};
    const struct cu_ledger_hook hook = {decide, &dh, NULL};
    struct mv m;

    account(f, "cus_00000000000000a1", "EUR", 0, 0, a);
    account(f, "cus_00000000000000b2", "EUR", 0, 0, b);
    system_account(f, "cash_in", "EUR", in);
    one(f, xfer(in, a, 1000), NULL, NULL);
    cu_ledger_set_hook(f->l, &hook);

    dh.next = CU_LEDGER_HOLD;
    one(f, xfer(a, b, 200), NULL, h1);
    struct cu_ledger_transfer t;
    assert_int_equal(cu_ledger_transfer_get(f->conn, h1, &t), CU_OK);
    assert_true(t.hold && t.pending);
    assert_string_equal(t.state, "pending");
    assert_string_equal(t.reasons, "rule new_payee_large");
    cu_ledger_transfer_clear(&t);
    expect_balance(f, a, 1000, -200, 800);
    one(f, act(CU_LEDGER_POST, h1, 0), "transfer_held", NULL);
    struct cu_ledger_op rel = act(CU_LEDGER_POST, h1, 0);
    rel.hold_release = true;
    one(f, rel, NULL, NULL);
    expect_balance(f, b, 200, 0, 200);

    dh.next = CU_LEDGER_DENY;
    one(f, xfer(a, b, 5), "transfer_denied", NULL);
    dh.next = CU_LEDGER_STEP_UP;
    one(f, xfer(a, b, 5), "step_up_required", NULL);
    assert_int_equal(count(f, "SELECT COUNT(*) FROM ledger_decisions WHERE reasons = "
                              "'rule new_payee_large'"),
                     2);
    /* posts are not asked again: only new transfers */
    int calls = dh.calls;
    dh.next = CU_LEDGER_LET;
    one(f, xfer(a, b, 5), NULL, NULL);
    assert_int_equal(dh.calls, calls + 1);

    /* a chain one of whose links is held is held whole: no link moves money before review,
     * and each link is asked once */
    struct cu_balance_pair {
        struct cu_ledger_balance a, b;
    } before = {balance(f, a), balance(f, b)};
    struct cu_ledger_op chain[3] = {xfer(a, b, 30), xfer(a, b, 7), xfer(a, b, 1)};
    chain[0].linked = true;
    calls = dh.calls;
    dh.hold_call = calls + 2; /* the second link (the fee) */
    assert_int_equal(move(f, chain, 3, &m), CU_OK);
    assert_int_equal(dh.calls, calls + 3);
    for (int k = 0; k < 2; k++) {
        assert_int_equal(m.res[k].err, CU_OK);
        assert_true(m.res[k].t.hold && m.res[k].t.pending);
    }
    assert_string_equal(m.res[1].t.reasons, "rule new_payee_large");
    assert_string_equal(m.res[0].t.reasons, "held with linked transfer 2: rule new_payee_large");
    assert_false(m.res[2].t.hold); /* not in the chain */
    char c0[CU_LEDGER_ID_BYTES], c1[CU_LEDGER_ID_BYTES];
    snprintf(c0, sizeof(c0), "%s", m.res[0].t.id);
    snprintf(c1, sizeof(c1), "%s", m.res[1].t.id);
    mv_clear(&m);
    expect_balance(f, a, before.a.posted - 1, before.a.pending - 37, before.a.available - 38);
    expect_balance(f, b, before.b.posted + 1, before.b.pending + 37, before.b.available + 1);
    /* held together, released together: one link alone, or one posted and one voided, or
     * both without a link between them, is refused and changes nothing */
    struct cu_ledger_op alone = act(CU_LEDGER_POST, c0, 0);
    alone.hold_release = true;
    one(f, alone, "held_chain", NULL);
    struct cu_ledger_op split[2] = {act(CU_LEDGER_POST, c0, 0), act(CU_LEDGER_VOID, c1, 0)};
    split[0].linked = true;
    split[0].hold_release = split[1].hold_release = true;
    assert_int_equal(move(f, split, 2, &m), CU_OK);
    assert_string_equal(m.res[0].type, "held_chain");
    mv_clear(&m);
    struct cu_ledger_op unlinked[2] = {act(CU_LEDGER_POST, c0, 0), act(CU_LEDGER_POST, c1, 0)};
    unlinked[0].hold_release = unlinked[1].hold_release = true;
    assert_int_equal(move(f, unlinked, 2, &m), CU_OK);
    assert_string_equal(m.res[0].type, "held_chain");
    assert_string_equal(m.res[1].type, "held_chain");
    mv_clear(&m);
    expect_balance(f, b, before.b.posted + 1, before.b.pending + 37, before.b.available + 1);
    /* posted in part, a held link would void the rest of itself while its fee goes through */
    struct cu_ledger_op part[2] = {act(CU_LEDGER_POST, c0, 5), act(CU_LEDGER_POST, c1, 0)};
    part[0].linked = true;
    part[0].hold_release = part[1].hold_release = true;
    assert_int_equal(move(f, part, 2, &m), CU_OK);
    assert_string_equal(m.res[0].type, "held_chain");
    assert_string_equal(m.res[1].type, "linked_transfer_failed");
    mv_clear(&m);
    expect_balance(f, b, before.b.posted + 1, before.b.pending + 37, before.b.available + 1);
    struct cu_ledger_op both[2] = {act(CU_LEDGER_POST, c0, 0), act(CU_LEDGER_POST, c1, 0)};
    both[0].linked = true;
    both[0].hold_release = both[1].hold_release = true;
    assert_int_equal(move(f, both, 2, &m), CU_OK);
    assert_int_equal(m.res[0].err, CU_OK);
    assert_int_equal(m.res[1].err, CU_OK);
    mv_clear(&m);
    expect_balance(f, b, before.b.posted + 38, before.b.pending, before.b.available + 38);
    /* a chain with a post in it cannot be held whole: it fails whole */
    struct cu_ledger_op held_one = xfer(a, b, 3);
    char h2[CU_LEDGER_ID_BYTES];
    dh.hold_call = dh.calls + 1;
    one(f, held_one, NULL, h2);
    struct cu_ledger_op mixed[2] = {xfer(a, b, 2), act(CU_LEDGER_POST, h2, 0)};
    mixed[0].linked = true;
    mixed[1].hold_release = true;
    dh.hold_call = dh.calls + 1;
    assert_int_equal(move(f, mixed, 2, &m), CU_OK);
    assert_string_equal(m.res[0].type, "linked_transfer_failed");
    assert_string_equal(m.res[1].type, "transfer_held");
    mv_clear(&m);
    dh.hold_call = 0;
    cu_ledger_set_hook(f->l, &(struct cu_ledger_hook){NULL, NULL, NULL});
    ledger_holds(f);
}

/* ---- the check finds what is wrong ---- */

static void test_check_finds_corruption(void **state)
{
    struct fixture *f = *state;
    char a[CU_LEDGER_ID_BYTES], b[CU_LEDGER_ID_BYTES], in[CU_LEDGER_ID_BYTES];
    struct cu_ledger_check_report r;

    account(f, "cus_00000000000000a1", "EUR", 0, 0, a);
    account(f, "cus_00000000000000b2", "EUR", 0, 0, b);
    system_account(f, "cash_in", "EUR", in);
    one(f, xfer(in, a, 1000), NULL, NULL);
    one(f, xfer(a, b, 10), NULL, NULL);
    ledger_holds(f);

    /* a balance changed behind the ledger's back */
    assert_int_equal(cu_db_exec(f->conn,
                                "UPDATE ledger_accounts SET credits_posted = credits_posted + 1 "
                                "WHERE customer = 'cus_00000000000000b2'",
                                NULL, 0),
                     CU_OK);
    assert_int_equal(cu_ledger_check(f->conn, &r), CU_OK);
    assert_true(r.violations >= 1);
    assert_non_null(strstr(r.first, "the journal gives"));
    assert_int_equal(cu_db_exec(f->conn,
                                "UPDATE ledger_accounts SET credits_posted = credits_posted - 1 "
                                "WHERE customer = 'cus_00000000000000b2'",
                                NULL, 0),
                     CU_OK);
    ledger_holds(f);

    /* a movement whose audit record is gone */
    assert_int_equal(cu_db_exec(f->conn, "DROP TRIGGER IF EXISTS audit_log_no_update", NULL, 0),
                     CU_OK);
    assert_int_equal(
        cu_db_exec(f->conn, "UPDATE audit_log SET target = 'x' WHERE action = 'ledger.transfer'",
                   NULL, 0),
        CU_OK);
    assert_int_equal(cu_ledger_check(f->conn, &r), CU_OK);
    assert_true(r.violations >= 1);
    assert_non_null(strstr(r.first, "no audit record"));
}

/* ---- opposite transfers from many threads ---- */

struct pingpong {
    struct fixture *f;
    const char *from, *to;
    int done;
};

static void *pingpong_thread(void *arg)
{
    struct pingpong *p = arg;
    for (int i = 0; i < 200; i++) {
        struct cu_ledger_op op = xfer(p->from, p->to, 1 + i % 3);
        struct mv m;
        if (move(p->f, &op, 1, &m) == CU_OK && m.res[0].err == CU_OK)
            p->done++;
        mv_clear(&m);
    }
    return NULL;
}

static void test_opposite_transfers(void **state)
{
    struct fixture *f = *state;
    char a[CU_LEDGER_ID_BYTES], b[CU_LEDGER_ID_BYTES], in[CU_LEDGER_ID_BYTES];
    pthread_t th[8];
    struct pingpong p[8];
    int done = 0;

    account(f, "cus_00000000000000a1", "EUR", 0, 0, a);
    account(f, "cus_00000000000000b2", "EUR", 0, 0, b);
    system_account(f, "cash_in", "EUR", in);
    one(f, xfer(in, a, 100000), NULL, NULL);
    one(f, xfer(in, b, 100000), NULL, NULL);
    for (int i = 0; i < 8; i++) {
        p[i] = (struct pingpong){f, i % 2 ? a : b, i % 2 ? b : a, 0};
        assert_int_equal(pthread_create(&th[i], NULL, pingpong_thread, &p[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        done += p[i].done;
    }
    assert_int_equal(done, 1600); /* every one went through: none waited for ever */
    struct cu_ledger_balance ba = balance(f, a), bb = balance(f, b);
    assert_int_equal(ba.posted + bb.posted, 200000);
    ledger_holds(f);
}

/* ---- the simulation ---- */

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

#define SIM_ACCOUNTS 12
#define SIM_THREADS 4

struct sim {
    struct fixture *f;
    char acc[SIM_ACCOUNTS][CU_LEDGER_ID_BYTES];
    char sys[2][CU_LEDGER_ID_BYTES];
    pthread_mutex_t mu;
    char pending[64][CU_LEDGER_ID_BYTES]; /* recent pending transfers, for posts and voids */
    char posted[64][CU_LEDGER_ID_BYTES];  /* recent transfers, for reversals */
    long ops, faults, failed_units;
    long per_thread;
};

struct sim_thread {
    struct sim *s;
    uint64_t seed;
};

static void remember(struct sim *s, char (*ring)[CU_LEDGER_ID_BYTES], uint64_t r, const char *id)
{
    pthread_mutex_lock(&s->mu);
    snprintf(ring[r % 64], CU_LEDGER_ID_BYTES, "%s", id);
    pthread_mutex_unlock(&s->mu);
}

static void pick(struct sim *s, char (*ring)[CU_LEDGER_ID_BYTES], uint64_t r,
                 char out[CU_LEDGER_ID_BYTES])
{
    pthread_mutex_lock(&s->mu);
    snprintf(out, CU_LEDGER_ID_BYTES, "%s",
             ring[r % 64][0] ? ring[r % 64] : "trf_0000000000000000");
    pthread_mutex_unlock(&s->mu);
}

static void sim_op(struct sim *s, uint64_t *seed, struct cu_ledger_op *op,
                   char tgt[CU_LEDGER_ID_BYTES])
{
    uint64_t r = rnd(seed);
    const char *x = s->acc[r % SIM_ACCOUNTS], *y = s->acc[(r >> 8) % SIM_ACCOUNTS];
    int64_t amount = (int64_t)((r >> 16) % 500) + ((r >> 40) % 50 == 0 ? 0 : 1);
    switch ((r >> 32) % 10) {
    case 0:
        *op = xfer(s->sys[0], x, amount * 10); /* a deposit */
        break;
    case 1:
        *op = xfer(x, s->sys[1], amount); /* a withdrawal */
        break;
    case 2:
        *op = xfer(x, y, amount);
        op->pending = true;
        op->timeout_s = (r >> 48) % 2;
        break;
    case 3:
        pick(s, s->pending, r >> 20, tgt);
        *op = act(CU_LEDGER_POST, tgt, (int64_t)((r >> 24) % 300));
        break;
    case 4:
        pick(s, s->pending, r >> 20, tgt);
        *op = act(CU_LEDGER_VOID, tgt, 0);
        break;
    case 5:
        pick(s, s->posted, r >> 20, tgt);
        *op = act(CU_LEDGER_REVERSE, tgt, 0);
        break;
    default:
        *op = xfer(x, y, amount);
        break;
    }
    op->linked = (r >> 56) % 4 == 0;
}

static void *sim_thread(void *arg)
{
    struct sim_thread *t = arg;
    struct sim *s = t->s;
    uint64_t seed = t->seed;
    char tgt[8][CU_LEDGER_ID_BYTES];

    for (long i = 0; i < s->per_thread;) {
        struct cu_ledger_op ops[8];
        size_t n = 1 + rnd(&seed) % 8;
        for (size_t k = 0; k < n; k++)
            sim_op(s, &seed, &ops[k], tgt[k]);
        ops[n - 1].linked = false;
        struct mv m;
        enum cu_err rc = move(s->f, ops, n, &m);
        __atomic_add_fetch(&s->ops, (long)n, __ATOMIC_RELAXED);
        if (rc != CU_OK)
            __atomic_add_fetch(&s->failed_units, 1, __ATOMIC_RELAXED);
        for (size_t k = 0; rc == CU_OK && k < n; k++) {
            if (m.res[k].err != CU_OK)
                continue;
            if (m.res[k].t.pending)
                remember(s, s->pending, rnd(&seed), m.res[k].t.id);
            else if (m.res[k].t.kind == CU_LEDGER_TRANSFER)
                remember(s, s->posted, rnd(&seed), m.res[k].t.id);
        }
        mv_clear(&m);
        i += (long)n;
    }
    return NULL;
}

static long env_long(const char *name, long dflt)
{
    const char *v = getenv(name);
    return v != NULL && *v ? strtol(v, NULL, 10) : dflt;
}

static void test_simulation(void **state)
{
    struct fixture *f = *state;
    struct sim *s = calloc(1, sizeof(*s));
    long total = env_long("CU_LEDGER_SIM_OPS", 20000);
    uint64_t seed = (uint64_t)env_long("CU_LEDGER_SIM_SEED", 20261206);
    /* a fault each round, a round each 20,000 operations (10 to 100 rounds) */
    long rounds = total / 20000 < 10 ? 10 : total / 20000 > 100 ? 100 : total / 20000;

    assert_non_null(s);
    print_message("ledger simulation: seed %llu, %ld operations (CU_LEDGER_SIM_SEED, "
                  "CU_LEDGER_SIM_OPS replay it)\n",
                  (unsigned long long)seed, total);
    s->f = f;
    pthread_mutex_init(&s->mu, NULL);
    for (int i = 0; i < SIM_ACCOUNTS; i++) {
        char cus[32];
        snprintf(cus, sizeof(cus), "cus_%016x", i + 1);
        account(f, cus, "EUR", i % 3 == 0 ? 2000 : 0, i % 4 == 0 ? 20000 : 0, s->acc[i]);
    }
    system_account(f, "cash_in", "EUR", s->sys[0]);
    system_account(f, "cash_out", "EUR", s->sys[1]);
    s->per_thread = total / rounds / SIM_THREADS + 1;
    for (long round = 0; round < rounds; round++) {
        pthread_t th[SIM_THREADS];
        struct sim_thread st[SIM_THREADS];
        uint64_t rs = seed * 1000003u + (uint64_t)round;
        /* a fault at a random statement of this round: busy, an I/O error or a full disk */
        enum cu_err kinds[] = {CU_E_BUSY, CU_E_STORE, CU_E_STORE_FULL};
        cu_store_fail_next_with(f->st, (long)(1 + rnd(&rs) % 2000), kinds[rnd(&rs) % 3]);
        for (int i = 0; i < SIM_THREADS; i++) {
            st[i].s = s;
            st[i].seed = rnd(&rs) | 1;
            assert_int_equal(pthread_create(&th[i], NULL, sim_thread, &st[i]), 0);
        }
        for (int i = 0; i < SIM_THREADS; i++)
            assert_int_equal(pthread_join(th[i], NULL), 0);
        cu_store_fail_next(f->st, 0);
        /* and time moves on: pending transfers with a timeout expire */
        cu_clock_set_fake(T0 + (round + 1) * 1500);
        struct expire_job j = {f, 0};
        do
            assert_int_equal(run(f, expire_apply, &j, NULL), CU_OK);
        while (j.done == 100);
        struct cu_ledger_check_report r;
        assert_int_equal(cu_ledger_check(f->conn, &r), CU_OK);
        if (r.violations != 0)
            fail_msg("seed %llu, round %ld: %zu violations, first: %s", (unsigned long long)seed,
                     round, r.violations, r.first);
    }
    print_message("ledger simulation: %ld operations, %lld transfers, %ld units failed by "
                  "faults\n",
                  s->ops, (long long)head(f), s->failed_units);
    assert_true(head(f) > total / 4);
    cu_clock_set_fake(T0);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_deposit_transfer_withdraw, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals_change_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_phase, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expiry_returns_funds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_linked_chains, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reversal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_freeze_and_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hook, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_finds_corruption, setup, teardown),
        cmocka_unit_test_setup_teardown(test_opposite_transfers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_simulation, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
