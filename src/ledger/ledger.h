/*
 * ledger.h - the customer assets ledger (docs/ledger.md): accounts, double-entry transfers,
 * two-phase (pending) transfers, linked chains, limits, freezes, reversals, and the check of
 * its invariants.
 *
 * Money is minor units of an ISO 4217 currency in signed 64-bit integers; every sum is
 * checked and an overflow is an error, never a wrap. A transfer moves an amount from a debit
 * account to a credit account of the same currency: no money is made or lost, and the
 * journal (ledger_transfers) is never changed: a correction is a reversing transfer.
 *
 * Every change runs inside the caller's unit of work (store/work.h) on the committer's
 * connection: a movement (one transfer, a batch, a post, a void ...) locks the journal's head
 * and then each account it touches, in the order of their ids (FOR UPDATE through the store
 * contract, so two movements in opposite directions never wait for each other in a cycle),
 * decides every transfer in memory against the balances and limits it read, and writes what
 * passed; the unit's audit record (one per movement, with a digest of its transfers) and its
 * events (one per transfer) commit with it. The monitoring hook (struct cu_ledger_hook) is
 * asked about each new transfer before it is posted and may let it through, hold it (it
 * becomes a pending hold), ask for a step-up, or deny it.
 */
#ifndef CU_LEDGER_LEDGER_H
#define CU_LEDGER_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "store/store.h"
#include "store/work.h"

#define CU_LEDGER_ID_BYTES 21         /* "acc_", "trf_" or "bat_", 16 hex digits, NUL */
#define CU_LEDGER_CUSTOMER_BYTES 24   /* a customer's id, "cus_" and 16 hex digits, NUL */
#define CU_LEDGER_CODE_MAX 32         /* a transfer's code: [a-z0-9_.-], 1 to 32 */
#define CU_LEDGER_REF_MAX 128         /* an external reference: printable ASCII, 1 to 128 */
#define CU_LEDGER_METADATA_MAX 2048   /* a transfer's metadata, as canonical JSON text */
#define CU_LEDGER_REASON_MAX 256      /* a freeze's reason, printable text */
#define CU_LEDGER_REASONS_MAX 512     /* the monitoring hook's reasons */
#define CU_LEDGER_BATCH_MAX 1000      /* transfers in one batch */
#define CU_LEDGER_TIMEOUT_MAX 2592000 /* a pending transfer's timeout, seconds (30 days) */
/* The largest amount of one transfer, minor units (10^15: 10 trillion in a currency of two
 * decimals), so that no single movement can bring a total near 64 bits and block a currency's
 * system accounts with balance_overflow. */
#define CU_LEDGER_AMOUNT_MAX 1000000000000000LL

enum cu_ledger_status { CU_LEDGER_ACTIVE, CU_LEDGER_FROZEN, CU_LEDGER_CLOSED };

/* Posted and pending debits and credits; each at least 0. */
struct cu_ledger_totals {
    int64_t debits_posted, credits_posted, debits_pending, credits_pending;
};

struct cu_ledger_account {
    char id[CU_LEDGER_ID_BYTES];
    char customer[CU_LEDGER_CUSTOMER_BYTES]; /* "" for a system account */
    char purpose[16]; /* "customer", "cash_in", "cash_out", "fees", "suspense" */
    char currency[4];
    enum cu_ledger_status status;
    char freeze_reason[CU_LEDGER_REASON_MAX + 1];
    int64_t frozen_until;       /* ms; 0: until unfrozen */
    int64_t overdraft;          /* how far debits may exceed credits; -1: without bound */
    int64_t limit_per_transfer; /* 0: none */
    int64_t limit_daily;        /* what may leave in a UTC day; 0: none */
    int64_t day, day_debits;    /* the UTC day (days since 1970) and what left on it */
    struct cu_ledger_totals t;
    int64_t created_at, closed_at;
};

/* Balances as the API shows them: posted = credits − debits posted; pending = pending
 * credits − pending debits; available = what may still leave (posted − pending debits +
 * overdraft; INT64_MAX without bound). */
struct cu_ledger_balance {
    int64_t posted, pending, available;
};

/* cu_ledger_balance_of(a, out): a's balances. CU_E_INVALID when a sum is beyond 64 bits. */
CU_WUR enum cu_err cu_ledger_balance_of(const struct cu_ledger_account *a,
                                        struct cu_ledger_balance *out);

enum cu_ledger_kind {
    CU_LEDGER_TRANSFER, /* a new transfer (a deposit and a withdrawal are transfers) */
    CU_LEDGER_POST,     /* posts a pending transfer, fully or in part */
    CU_LEDGER_VOID,     /* voids a pending transfer */
    CU_LEDGER_REVERSE,  /* reverses a posted transfer */
    CU_LEDGER_EXPIRE,   /* an expired pending transfer's funds coming back (the system) */
};

/* A transfer in the journal. */
struct cu_ledger_transfer {
    char id[CU_LEDGER_ID_BYTES];
    int64_t seq;
    char movement[CU_LEDGER_ID_BYTES];
    enum cu_ledger_kind kind;
    char debit[CU_LEDGER_ID_BYTES], credit[CU_LEDGER_ID_BYTES];
    int64_t amount;
    char currency[4];
    char code[CU_LEDGER_CODE_MAX + 1];
    char external_ref[CU_LEDGER_REF_MAX + 1]; /* "" when none */
    char *metadata;                           /* canonical JSON text, or NULL (owned) */
    bool pending;
    char parent[CU_LEDGER_ID_BYTES]; /* "" when none */
    bool hold;                       /* held by the monitoring hook (decision "hold") */
    char reasons[CU_LEDGER_REASONS_MAX + 1];
    char actor[CU_WORK_ACTOR_TYPE_BYTES + CU_WORK_ID_BYTES]; /* "staff:stf_…", "system" */
    char channel[16];
    int64_t at;
    /* pending transfers: their state */
    char state[12];     /* "pending", "posted", "voided", "expired"; "" when not pending */
    int64_t reserved;   /* what it still reserves */
    int64_t expires_at; /* ms; 0: never */
    char chain[CU_LEDGER_ID_BYTES]; /* a held link of a chain: the chain's first link, else "" */
};

/* cu_ledger_transfer_clear(t): frees what t owns. */
void cu_ledger_transfer_clear(struct cu_ledger_transfer *t);

/* What a movement asks, one operation: a new transfer, or a post, void or reversal of the
 * transfer `target`. Strings are borrowed for the call. */
struct cu_ledger_op {
    enum cu_ledger_kind kind;
    const char *debit, *credit; /* TRANSFER: account ids */
    int64_t amount;             /* TRANSFER; POST: 0 posts the whole pending amount */
    const char *currency;       /* TRANSFER: must be both accounts'; others: checked if set */
    const char *code;           /* TRANSFER: required; others: NULL takes the target's */
    const char *external_ref;   /* or NULL */
    const char *metadata;       /* canonical JSON text of an object, or NULL */
    bool pending;               /* TRANSFER: two-phase */
    int64_t timeout_s;          /* TRANSFER pending: 0 never expires */
    bool linked;                /* linked to the next op: the chain succeeds or fails whole */
    const char *target;         /* POST, VOID, REVERSE: the transfer acted on */
    bool hold_release;          /* POST/VOID of a hold: the caller may release holds */
    /* TRANSFER: the caller's slot where the monitoring hook keeps what it decided about this
     * op, so that a unit run again (after CU_E_BUSY) is not decided twice; NULL at first, or
     * no slot (the hook then decides at each run). Freed with cu_ledger_hook_memo_free. */
    void **hook_memo;
};

/* What the monitoring hook decides about a new transfer. */
enum cu_ledger_verdict {
    CU_LEDGER_LET = 0, /* let it through */
    CU_LEDGER_HOLD,    /* make it a pending hold, for review */
    CU_LEDGER_STEP_UP, /* refuse it until the customer steps up */
    CU_LEDGER_DENY,    /* refuse it */
};

/* What the hook sees: the transfer as asked, its accounts as locked now (before it), the
 * customer it takes money from ("" for a system account), the unit (its context: time,
 * address, device, principal), and who acts. */
struct cu_ledger_ask {
    const struct cu_ledger_op *op;
    const struct cu_ledger_account *debit, *credit;
    struct cu_work *w;
    const struct cu_ledger_actor *actor; /* NULL: the system */
};

/* What the hook answers: the verdict, its reasons (text, "" when none) and the id of the
 * decision it stored ("" when none), which a refusal names. frozen_until > 0: the hook froze
 * the accounts of the customer it decided about (the debit's, or the credit's when the debit is
 * a system account) in the unit, until then (ms): the movement treats them as frozen from here
 * on, and refuses this transfer when its debit account is one of them. */
struct cu_ledger_hook_out {
    enum cu_ledger_verdict verdict;
    char reasons[CU_LEDGER_REASONS_MAX + 1];
    char decision[CU_LEDGER_ID_BYTES];
    int64_t frozen_until;
};

/* The reason a freeze by monitoring's hook carries: the decision's id. */
#define CU_LEDGER_MONITOR_FREEZE "monitoring decision %s"
/* The reason of a customer's own freeze (POST /v1/me/freeze), which no one else may give: a
 * freeze with an end by monitoring, a playbook or staff takes such an account over, and once
 * it ends the account stays frozen while the customer's own freeze holds (self_freezes). */
#define CU_LEDGER_SELF_FREEZE "frozen by the customer"

/* The monitoring engine's hook: called inside the unit's transaction on db, for each new
 * transfer before it is posted, with out zeroed; an error fails the movement (nothing is
 * kept). NULL decide: every transfer is let through. memo_free frees what decide kept in an
 * op's hook_memo (NULL: it keeps nothing). */
struct cu_ledger_hook {
    enum cu_err (*decide)(void *arg, struct cu_db *db, const struct cu_ledger_ask *ask,
                          struct cu_ledger_hook_out *out);
    void *arg;
    void (*memo_free)(void *memo);
};

/* Who may act on what, for the checks the ledger makes itself: a customer's session acts only
 * on its own accounts (customer set); staff and services act on any. */
struct cu_ledger_actor {
    const char *customer;  /* non-NULL: a customer's own session */
    const char *channel;   /* "api", "session", "batch", "system" */
    int64_t step_up_above; /* a customer's transfer above this needs aal2 (-1: never) */
    int aal;               /* the session's assurance level */
};

/* The outcome of one op. */
struct cu_ledger_result {
    enum cu_err err;  /* CU_OK, or why the op was refused (nothing of it kept) */
    const char *type; /* the problem's stable type: "insufficient_funds" …; NULL for OK */
    char detail[256]; /* for the client; never personal data */
    struct cu_ledger_transfer t; /* the transfer made (err CU_OK) */
    enum cu_ledger_verdict verdict;
    char decision[CU_LEDGER_ID_BYTES]; /* the monitoring decision about it, or "" */
};

struct cu_ledger;

struct cu_ledger_opts {
    struct cu_ledger_hook hook;
};

/* cu_ledger_new(opts, out): the service (opts may be NULL). Free with cu_ledger_free. */
CU_WUR enum cu_err cu_ledger_new(const struct cu_ledger_opts *opts, struct cu_ledger **out);
void cu_ledger_free(struct cu_ledger *l);

/* cu_ledger_set_hook(l, hook): replaces the monitoring hook (before any movement runs). */
void cu_ledger_set_hook(struct cu_ledger *l, const struct cu_ledger_hook *hook);

/* cu_ledger_hook_memo_free(l, memo): frees what the hook kept in an op's hook_memo (NULL does
 * nothing). */
void cu_ledger_hook_memo_free(const struct cu_ledger *l, void *memo);

/* ---- accounts ---- */

/* What a new customer account is made with. */
struct cu_ledger_account_in {
    const char *customer; /* the customer's id (the caller checked it exists) */
    const char *currency; /* ISO 4217 */
    int64_t overdraft;    /* 0: none */
    int64_t limit_per_transfer, limit_daily;
};

/* cu_currency_valid(code, exponent): whether code is an ISO 4217 code custodia knows, and its
 * number of minor-unit digits. */
bool cu_currency_valid(const char *code, int *exponent);

/* cu_ledger_account_create(l, w, db, in, out, detail): a new active account of a customer.
 * CU_E_INVALID with detail for a bad field. Audited in w (ledger.account_create). */
CU_WUR enum cu_err cu_ledger_account_create(struct cu_ledger *l, struct cu_work *w,
                                            struct cu_db *db, const struct cu_ledger_account_in *in,
                                            struct cu_ledger_account *out, char detail[256]);

/* cu_ledger_system_account(db, purpose, currency, create, out): the system account of that
 * purpose and currency, made when create and it does not exist (inside a write
 * transaction). CU_E_NOT_FOUND otherwise; CU_E_INVALID for an unknown purpose or currency. */
CU_WUR enum cu_err cu_ledger_system_account(struct cu_db *db, const char *purpose,
                                            const char *currency, bool create,
                                            struct cu_ledger_account *out);

/* cu_ledger_account_get(db, id, out): one account. CU_E_NOT_FOUND. */
CU_WUR enum cu_err cu_ledger_account_get(struct cu_db *db, const char *id,
                                         struct cu_ledger_account *out);

/* cu_ledger_accounts_of(db, customer, after, limit, out, n): a customer's accounts by id;
 * *out cu_free'd by the caller. */
CU_WUR enum cu_err cu_ledger_accounts_of(struct cu_db *db, const char *customer, const char *after,
                                         size_t limit, struct cu_ledger_account **out, size_t *n);

/* cu_ledger_open_accounts(db, customer, n): how many of a customer's accounts are not closed
 * (an erasure waits for them: their money must go somewhere first). */
CU_WUR enum cu_err cu_ledger_open_accounts(struct cu_db *db, const char *customer, int64_t *n);

/* cu_ledger_freeze(l, w, db, id, reason, until, out, detail): freezes an account: nothing
 * leaves it (credits still arrive) until unfrozen or until `until` (ms; 0: until unfrozen).
 * cu_ledger_unfreeze: makes it active again. cu_ledger_close: closes it for good (nothing
 * moves in or out); only with every balance 0 and nothing pending. CU_E_NOT_FOUND;
 * CU_E_EXISTS (409) when its status forbids it, with detail. Audited in w. */
CU_WUR enum cu_err cu_ledger_freeze(struct cu_ledger *l, struct cu_work *w, struct cu_db *db,
                                    const char *id, const char *reason, int64_t until,
                                    struct cu_ledger_account *out, char detail[256]);
CU_WUR enum cu_err cu_ledger_unfreeze(struct cu_ledger *l, struct cu_work *w, struct cu_db *db,
                                      const char *id, struct cu_ledger_account *out,
                                      char detail[256]);

/* cu_ledger_freeze_customer(l, w, db, customer, reason, until, n): freezes every account of
 * the customer that is not closed until `until` (ms, in the future: CU_E_INVALID otherwise;
 * 0: until unfrozen, a customer's own freeze):
 * active ones, and frozen ones whose freeze would end sooner (one frozen until unfrozen stays
 * so); n gets how many changed, audited in one record (ledger.customer_freeze) when any did.
 * For monitoring's freeze_account, playbooks, and the customer's own freeze. */
CU_WUR enum cu_err cu_ledger_freeze_customer(struct cu_ledger *l, struct cu_work *w,
                                             struct cu_db *db, const char *customer,
                                             const char *reason, int64_t until, int64_t *n);

/* cu_ledger_unfreeze_customer(l, w, db, customer, reason, n): unfreezes the customer's accounts
 * frozen with exactly that reason (a customer's own freeze), *n of them, with one audit record
 * (ledger.customer_unfreeze) when any. Freezes by staff or monitoring stay. */
CU_WUR enum cu_err cu_ledger_unfreeze_customer(struct cu_ledger *l, struct cu_work *w,
                                               struct cu_db *db, const char *customer,
                                               const char *reason, int64_t *n);

/* cu_ledger_customer_frozen(db, customer, n): how many of the customer's accounts are frozen. */
CU_WUR enum cu_err cu_ledger_customer_frozen(struct cu_db *db, const char *customer, int64_t *n);

/* cu_ledger_hold_customer(l, w, db, customer, n): the customer's pending transfers out of their
 * accounts become holds (only a holder of transfers.approve may post them), *n of them, with
 * one audit record (ledger.customer_hold) when any. */
CU_WUR enum cu_err cu_ledger_hold_customer(struct cu_ledger *l, struct cu_work *w, struct cu_db *db,
                                           const char *customer, int64_t *n);
CU_WUR enum cu_err cu_ledger_close(struct cu_ledger *l, struct cu_work *w, struct cu_db *db,
                                   const char *id, struct cu_ledger_account *out, char detail[256]);

/* cu_ledger_customer_limit_set(w, db, customer, currency, daily): a customer's daily limit
 * in a currency over all their accounts (0: none). Audited in w. */
CU_WUR enum cu_err cu_ledger_customer_limit_set(struct cu_work *w, struct cu_db *db,
                                                const char *customer, const char *currency,
                                                int64_t daily);

/* ---- movements ---- */

/* cu_ledger_chain_links(db, id, ids, cap, n): the other held links of the linked chain the held
 * transfer id belongs to that are still pending (at most cap; n 0 when it is no such link),
 * which a post or void of it must include (docs/ledger.md, "Released together"). */
CU_WUR enum cu_err cu_ledger_chain_links(struct cu_db *db, const char *id,
                                         char (*ids)[CU_LEDGER_ID_BYTES], size_t cap, size_t *n);

/* cu_ledger_move(l, w, db, actor, ops, n, batch, results, accounts, naccounts): runs the n
 * ops (at most CU_LEDGER_BATCH_MAX) as one movement in w: each op, or each chain of linked
 * ops, succeeds or fails on its own; a failed one leaves nothing. batch: the movement is a
 * batch (its id "bat_…" is the audit record's target; a single op's is its transfer's id).
 * results[i] is op i's outcome; accounts (cu_free'd by the caller) the accounts touched, as
 * they are after the movement. Returns CU_OK when the movement ran (whatever its ops'
 * outcomes), or the store's error (the unit must fail). */
CU_WUR enum cu_err cu_ledger_move(struct cu_ledger *l, struct cu_work *w, struct cu_db *db,
                                  const struct cu_ledger_actor *actor,
                                  const struct cu_ledger_op *ops, size_t n, bool batch,
                                  char movement[CU_LEDGER_ID_BYTES],
                                  struct cu_ledger_result *results,
                                  struct cu_ledger_account **accounts, size_t *naccounts);

/* cu_ledger_expire(l, w, db, now, max, done): returns the funds of up to max pending transfers
 * whose time has passed (each an "expire" transfer), in w. */
CU_WUR enum cu_err cu_ledger_expire(struct cu_ledger *l, struct cu_work *w, struct cu_db *db,
                                    int64_t now, size_t max, size_t *done);

/* cu_ledger_unfreeze_due(l, w, db, now, max, done): makes active again up to max frozen
 * accounts whose freeze has run out, in w. */
CU_WUR enum cu_err cu_ledger_unfreeze_due(struct cu_ledger *l, struct cu_work *w, struct cu_db *db,
                                          int64_t now, size_t max, size_t *done);

/* cu_ledger_transfer_get(db, id, out): one transfer (with its pending state). */
CU_WUR enum cu_err cu_ledger_transfer_get(struct cu_db *db, const char *id,
                                          struct cu_ledger_transfer *out);

/* cu_ledger_transfers_by_ref(db, ref, out, n): transfers of that external reference, by seq
 * (at most 100); cu_ledger_transfers_free. */
CU_WUR enum cu_err cu_ledger_transfers_by_ref(struct cu_db *db, const char *ref,
                                              struct cu_ledger_transfer **out, size_t *n);

/* A filter of an account's entries (its transfers, either side). */
struct cu_ledger_entry_filter {
    const char *account;
    int64_t after_seq;   /* cursor: entries after this seq */
    int64_t from, until; /* time bounds, ms (0: none); until excluded */
    const char *counterparty;
    const char *code;
    size_t limit;
};

/* cu_ledger_entries(db, f, out, n): the account's transfers by seq; cu_ledger_transfers_free. */
CU_WUR enum cu_err cu_ledger_entries(struct cu_db *db, const struct cu_ledger_entry_filter *f,
                                     struct cu_ledger_transfer **out, size_t *n);

/* cu_ledger_changes(db, after, limit, out, n): every transfer after seq `after`, in commit
 * order (the change stream). */
CU_WUR enum cu_err cu_ledger_changes(struct cu_db *db, int64_t after, size_t limit,
                                     struct cu_ledger_transfer **out, size_t *n);

/* cu_ledger_head(db, seq): the last transfer's seq. */
CU_WUR enum cu_err cu_ledger_head(struct cu_db *db, int64_t *seq);

void cu_ledger_transfers_free(struct cu_ledger_transfer *t, size_t n);

/* cu_ledger_id_valid(id, prefix): whether id is prefix ("acc_", "trf_" …) and 16 lower-case
 * hex digits. */
bool cu_ledger_id_valid(const char *id, const char *prefix);

/* ---- names ---- */
const char *cu_ledger_status_name(enum cu_ledger_status s);
const char *cu_ledger_kind_name(enum cu_ledger_kind k);
const char *cu_ledger_verdict_name(enum cu_ledger_verdict v);

/* ---- invariants ---- */

/* What a check found: violations counted, the first described. */
struct cu_ledger_check_report {
    int64_t accounts, transfers, movements, pending;
    size_t violations;
    char first[512];
};

/* cu_ledger_check(db, audit_digests, report): in a read snapshot on db: postings sum to zero
 * per currency; every stored balance is the sum of its postings; no available balance is
 * below its limit; pending transfers agree with what they reserve; the journal's sequence has
 * no gap; every movement has its audit record, whose digest matches its transfers. CU_OK when
 * it ran (report->violations says what it found). */
CU_WUR enum cu_err cu_ledger_check(struct cu_db *db, struct cu_ledger_check_report *report);

#endif
