-- 0010_ledger: the customer assets ledger (docs/ledger.md) and the events every movement
-- emits for monitoring and reports.
--
-- Events: what the units of work emit (a transfer, a deposit ...), kept in the order they
-- committed on one node; seq is an identity column.
CREATE TABLE events (
    seq INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    type TEXT NOT NULL,
    customer TEXT,
    request_id TEXT NOT NULL,
    body TEXT NOT NULL
) STRICT;
CREATE INDEX events_customer ON events (customer, seq);
CREATE INDEX events_at ON events (at);

-- Accounts: a customer's (customer set) or the company's system accounts, one per purpose
-- and currency (customer NULL). Balances are minor units: debits and credits, posted and
-- pending, each at least 0. overdraft: how far debits may exceed credits (-1: without bound,
-- the system accounts). day and day_debits: what left the account on that UTC day (days
-- since 1970-01-01), for its daily limit.
CREATE TABLE ledger_accounts (
    id TEXT NOT NULL PRIMARY KEY,
    customer TEXT,
    purpose TEXT NOT NULL,
    currency TEXT NOT NULL,
    status TEXT NOT NULL,
    freeze_reason TEXT,
    frozen_until INTEGER,
    overdraft INTEGER NOT NULL,
    limit_per_transfer INTEGER,
    limit_daily INTEGER,
    day INTEGER NOT NULL,
    day_debits INTEGER NOT NULL,
    debits_posted INTEGER NOT NULL,
    credits_posted INTEGER NOT NULL,
    debits_pending INTEGER NOT NULL,
    credits_pending INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    closed_at INTEGER,
    CHECK (debits_posted >= 0 AND credits_posted >= 0 AND debits_pending >= 0
           AND credits_pending >= 0 AND day_debits >= 0)
) STRICT;
CREATE INDEX ledger_accounts_customer ON ledger_accounts (customer, id);
CREATE UNIQUE INDEX ledger_accounts_system ON ledger_accounts (purpose, currency)
    WHERE customer IS NULL;

-- Transfers: the journal, one line per movement of money between two accounts, never changed
-- or removed. seq follows the commit order without gaps (the change stream), computed under
-- the ledger head's row lock. movement: the audited movement the transfer came in (its own id,
-- or a batch's). kind: transfer, post, void, expire or reverse; parent: the pending transfer a
-- post, void or expiry resolves, or the transfer a reversal reverses. A pending transfer's
-- state is in ledger_pending.
CREATE TABLE ledger_transfers (
    id TEXT NOT NULL PRIMARY KEY,
    seq INTEGER NOT NULL UNIQUE,
    movement TEXT NOT NULL,
    kind TEXT NOT NULL,
    debit_account TEXT NOT NULL,
    credit_account TEXT NOT NULL,
    amount INTEGER NOT NULL,
    currency TEXT NOT NULL,
    code TEXT NOT NULL,
    external_ref TEXT,
    metadata TEXT,
    pending INTEGER NOT NULL,
    parent TEXT,
    decision TEXT NOT NULL,
    reasons TEXT,
    actor TEXT NOT NULL,
    channel TEXT NOT NULL,
    at INTEGER NOT NULL,
    CHECK (amount > 0)
) STRICT;
CREATE INDEX ledger_transfers_debit ON ledger_transfers (debit_account, seq);
CREATE INDEX ledger_transfers_credit ON ledger_transfers (credit_account, seq);
CREATE INDEX ledger_transfers_ref ON ledger_transfers (external_ref) WHERE external_ref IS NOT NULL;
CREATE INDEX ledger_transfers_movement ON ledger_transfers (movement);
CREATE INDEX ledger_transfers_parent ON ledger_transfers (parent) WHERE parent IS NOT NULL;
-- a transfer is reversed at most once
CREATE UNIQUE INDEX ledger_transfers_reversed ON ledger_transfers (parent) WHERE kind = 'reverse';
CREATE TRIGGER ledger_transfers_no_update BEFORE UPDATE ON ledger_transfers
BEGIN
    SELECT RAISE(ABORT, 'ledger transfers are never changed');
END;
CREATE TRIGGER ledger_transfers_no_delete BEFORE DELETE ON ledger_transfers
BEGIN
    SELECT RAISE(ABORT, 'ledger transfers are never removed');
END;

-- The state of each pending transfer: pending until posted, voided or expired. amount: what
-- it still reserves (0 once resolved).
CREATE TABLE ledger_pending (
    transfer TEXT NOT NULL PRIMARY KEY,
    status TEXT NOT NULL,
    amount INTEGER NOT NULL,
    expires_at INTEGER,
    hold INTEGER NOT NULL,
    resolved_by TEXT,
    resolved_at INTEGER
) STRICT;
CREATE INDEX ledger_pending_open ON ledger_pending (expires_at) WHERE status = 'pending';

-- The head of the journal, one row: every movement takes its lock, which orders them.
CREATE TABLE ledger_head (
    id INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL
) STRICT;
INSERT INTO ledger_head (id, seq) VALUES (1, 0);

-- A customer's daily limit per currency, and what left their accounts on that UTC day.
CREATE TABLE ledger_customer_limits (
    customer TEXT NOT NULL,
    currency TEXT NOT NULL,
    daily_limit INTEGER,
    day INTEGER NOT NULL,
    day_debits INTEGER NOT NULL,
    PRIMARY KEY (customer, currency)
) STRICT;

-- Movements refused by the monitoring hook (denied, or held back for a step-up), with why.
CREATE TABLE ledger_decisions (
    id TEXT NOT NULL PRIMARY KEY,
    at INTEGER NOT NULL,
    decision TEXT NOT NULL,
    reasons TEXT NOT NULL,
    debit_account TEXT NOT NULL,
    credit_account TEXT NOT NULL,
    amount INTEGER NOT NULL,
    currency TEXT NOT NULL,
    actor TEXT NOT NULL
) STRICT;
CREATE INDEX ledger_decisions_at ON ledger_decisions (at);

-- Idempotency keys of movements, per principal: the request's digest and canonical body (to
-- name what differs in a reuse), and the answer given, returned again to a retry.
CREATE TABLE ledger_idempotency (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    route TEXT NOT NULL,
    digest BLOB NOT NULL,
    request TEXT NOT NULL,
    status INTEGER NOT NULL,
    response TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
) STRICT;
CREATE INDEX ledger_idempotency_age ON ledger_idempotency (created_at);
