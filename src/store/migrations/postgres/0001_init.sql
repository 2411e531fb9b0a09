-- The schema of the PostgreSQL backend, as of the SQLite backend's migration 0011: the same
-- tables, columns, keys and indexes, in PostgreSQL's types (BIGINT for every integer, BYTEA
-- for bytes, TEXT for text). Keys the database makes are identity columns (BY DEFAULT, so
-- that `custodia store copy` can carry an embedded installation's numbers over). The
-- append-only tables refuse UPDATE and DELETE with a trigger, as SQLite's do, and TRUNCATE,
-- which PostgreSQL runs past row triggers.
CREATE TABLE api_keys (
    id          TEXT    NOT NULL PRIMARY KEY,
    name        TEXT    NOT NULL,
    token_hash  BYTEA    NOT NULL UNIQUE,
    scopes      TEXT    NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT,
    revoked_at  BIGINT,
    roles TEXT NOT NULL DEFAULT '', owner TEXT NOT NULL DEFAULT 'installation', networks TEXT NOT NULL DEFAULT '');
CREATE TABLE audit_log (
    seq         BIGINT NOT NULL PRIMARY KEY,
    time_ms     BIGINT NOT NULL,
    actor_type  TEXT    NOT NULL,
    actor_id    TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    target      TEXT    NOT NULL,
    outcome     TEXT    NOT NULL,
    request_id  TEXT    NOT NULL,
    source      TEXT    NOT NULL,
    details     TEXT    NOT NULL,
    prev_hash   BYTEA    NOT NULL,
    hash        BYTEA    NOT NULL
);
CREATE INDEX audit_log_actor ON audit_log (actor_id, seq);
CREATE INDEX audit_log_action ON audit_log (action, seq);
CREATE INDEX audit_log_target ON audit_log (target, seq);
CREATE TABLE audit_head (
    id    BIGINT NOT NULL PRIMARY KEY CHECK (id = 1),
    seq   BIGINT NOT NULL,
    hash  BYTEA    NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, decode(repeat('00', 32), 'hex'));
CREATE TABLE audit_checkpoints (
    tree_size   BIGINT NOT NULL PRIMARY KEY,
    root        BYTEA    NOT NULL,
    created_at  BIGINT NOT NULL,
    note        TEXT    NOT NULL,
    frontier    BYTEA    NOT NULL
);
CREATE FUNCTION audit_log_no_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_no_update();
CREATE FUNCTION audit_log_no_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_no_delete();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_no_delete();
CREATE TABLE staff (
    id           TEXT    NOT NULL PRIMARY KEY,
    email_hash   BYTEA    NOT NULL UNIQUE,
    email        TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    scopes       TEXT    NOT NULL,
    status       TEXT    NOT NULL,
    dek_wrapped  BYTEA    NOT NULL,
    kek_version  BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    roles TEXT NOT NULL DEFAULT '', department TEXT, region TEXT, training_valid_until BIGINT);
CREATE INDEX staff_kek ON staff (kek_version);
CREATE TABLE credentials (
    subject_kind        TEXT    NOT NULL,
    subject_id          TEXT    NOT NULL,
    password_hash       TEXT,
    password_changed_at BIGINT,
    totp_enabled_at     BIGINT,
    totp_last_step      BIGINT NOT NULL,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    PRIMARY KEY (subject_kind, subject_id)
);
CREATE TABLE staff_secrets (
    staff_id     TEXT NOT NULL REFERENCES staff (id),
    name         TEXT NOT NULL,
    value        TEXT NOT NULL,
    PRIMARY KEY (staff_id, name)
);
CREATE TABLE recovery_codes (
    subject_kind TEXT    NOT NULL,
    subject_id   TEXT    NOT NULL,
    code_hash    BYTEA    NOT NULL,
    created_at   BIGINT NOT NULL,
    used_at      BIGINT,
    PRIMARY KEY (subject_kind, subject_id, code_hash)
);
CREATE TABLE sessions (
    id           TEXT    NOT NULL PRIMARY KEY,
    token_hash   BYTEA    NOT NULL UNIQUE,
    subject_kind TEXT    NOT NULL,
    subject_id   TEXT    NOT NULL,
    aal          BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    auth_at      BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    revoked_at   BIGINT,
    ip           TEXT    NOT NULL,
    user_agent   TEXT    NOT NULL,
    device_id    TEXT    NOT NULL
);
CREATE INDEX sessions_subject ON sessions (subject_kind, subject_id);
CREATE TABLE auth_challenges (
    token_hash   BYTEA    NOT NULL PRIMARY KEY,
    subject_kind TEXT    NOT NULL,
    subject_id   TEXT    NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    attempts     BIGINT NOT NULL,
    ip           TEXT    NOT NULL,
    user_agent   TEXT    NOT NULL,
    device_id    TEXT    NOT NULL
);
CREATE TABLE lockouts (
    subject       TEXT    NOT NULL PRIMARY KEY,
    failures      BIGINT NOT NULL,
    last_failure  BIGINT NOT NULL,
    locked_until  BIGINT NOT NULL
);
CREATE INDEX lockouts_last ON lockouts (last_failure);
CREATE TABLE auth_events (
    seq          BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    at           BIGINT NOT NULL,
    kind         TEXT    NOT NULL,
    subject_kind TEXT,
    subject_id   TEXT,
    ip           TEXT    NOT NULL,
    user_agent   TEXT    NOT NULL,
    device_id    TEXT    NOT NULL,
    reason       TEXT    NOT NULL
);
CREATE INDEX auth_events_subject ON auth_events (subject_kind, subject_id, seq);
CREATE TABLE customers (
    id           TEXT    NOT NULL PRIMARY KEY,
    status       TEXT    NOT NULL,
    country      TEXT,
    language     TEXT,
    tags         TEXT    NOT NULL,
    dek_wrapped  BYTEA,
    dek_version  BIGINT NOT NULL,
    kek_version  BIGINT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    erased_at    BIGINT,
    erased_by    TEXT
);
CREATE INDEX customers_kek ON customers (kek_version);
CREATE TABLE customer_fields (
    customer_id  TEXT NOT NULL REFERENCES customers (id),
    field        TEXT NOT NULL,
    value        TEXT NOT NULL,
    PRIMARY KEY (customer_id, field)
);
CREATE TABLE customer_index (
    field        TEXT    NOT NULL,
    hash         BYTEA    NOT NULL,
    customer_id  TEXT    NOT NULL REFERENCES customers (id),
    is_unique    BIGINT NOT NULL,
    PRIMARY KEY (field, hash, customer_id)
);
CREATE UNIQUE INDEX customer_index_unique ON customer_index (field, hash) WHERE is_unique = 1;
CREATE INDEX customer_index_customer ON customer_index (customer_id, field);
CREATE TABLE customer_secrets (
    customer_id  TEXT NOT NULL REFERENCES customers (id),
    name         TEXT NOT NULL,
    value        TEXT NOT NULL,
    PRIMARY KEY (customer_id, name)
);
CREATE TABLE unmask_usage (
    staff_id TEXT NOT NULL,
    hour BIGINT NOT NULL,
    count BIGINT NOT NULL,
    alerted BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (staff_id, hour)
);
CREATE TABLE approvals (
    id TEXT NOT NULL PRIMARY KEY,
    permission TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    digest BYTEA NOT NULL,
    requester_kind TEXT NOT NULL,
    requester TEXT NOT NULL,
    requester_owner TEXT NOT NULL,
    aal BIGINT NOT NULL,
    needed BIGINT NOT NULL,
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    decided_at BIGINT,
    result_status BIGINT,
    result_detail TEXT,
    dek_wrapped BYTEA,
    kek_version BIGINT,
    payload TEXT,
    result TEXT
);
CREATE UNIQUE INDEX approvals_one_pending ON approvals (digest) WHERE status = 'pending';
CREATE INDEX approvals_status ON approvals (status, expires_at);
CREATE INDEX approvals_kek ON approvals (kek_version);
CREATE TABLE approval_votes (
    approval_id TEXT NOT NULL REFERENCES approvals (id),
    staff_id TEXT NOT NULL,
    vote TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (approval_id, staff_id)
);
CREATE TABLE approval_secrets (
    approval_id TEXT NOT NULL REFERENCES approvals (id),
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (approval_id, name)
);
CREATE TABLE events (
    seq BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    at BIGINT NOT NULL,
    type TEXT NOT NULL,
    customer TEXT,
    request_id TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX events_customer ON events (customer, seq);
CREATE INDEX events_at ON events (at);
CREATE TABLE ledger_accounts (
    id TEXT NOT NULL PRIMARY KEY,
    customer TEXT,
    purpose TEXT NOT NULL,
    currency TEXT NOT NULL,
    status TEXT NOT NULL,
    freeze_reason TEXT,
    frozen_until BIGINT,
    overdraft BIGINT NOT NULL,
    limit_per_transfer BIGINT,
    limit_daily BIGINT,
    day BIGINT NOT NULL,
    day_debits BIGINT NOT NULL,
    debits_posted BIGINT NOT NULL,
    credits_posted BIGINT NOT NULL,
    debits_pending BIGINT NOT NULL,
    credits_pending BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    closed_at BIGINT,
    CHECK (debits_posted >= 0 AND credits_posted >= 0 AND debits_pending >= 0
           AND credits_pending >= 0 AND day_debits >= 0)
);
CREATE INDEX ledger_accounts_customer ON ledger_accounts (customer, id);
CREATE UNIQUE INDEX ledger_accounts_system ON ledger_accounts (purpose, currency)
    WHERE customer IS NULL;
CREATE TABLE ledger_transfers (
    id TEXT NOT NULL PRIMARY KEY,
    seq BIGINT NOT NULL UNIQUE,
    movement TEXT NOT NULL,
    kind TEXT NOT NULL,
    debit_account TEXT NOT NULL,
    credit_account TEXT NOT NULL,
    amount BIGINT NOT NULL,
    currency TEXT NOT NULL,
    code TEXT NOT NULL,
    external_ref TEXT,
    metadata TEXT,
    pending BIGINT NOT NULL,
    parent TEXT,
    decision TEXT NOT NULL,
    reasons TEXT,
    actor TEXT NOT NULL,
    channel TEXT NOT NULL,
    at BIGINT NOT NULL,
    CHECK (amount > 0)
);
CREATE INDEX ledger_transfers_debit ON ledger_transfers (debit_account, seq);
CREATE INDEX ledger_transfers_credit ON ledger_transfers (credit_account, seq);
CREATE INDEX ledger_transfers_ref ON ledger_transfers (external_ref) WHERE external_ref IS NOT NULL;
CREATE INDEX ledger_transfers_movement ON ledger_transfers (movement);
CREATE INDEX ledger_transfers_parent ON ledger_transfers (parent) WHERE parent IS NOT NULL;
CREATE UNIQUE INDEX ledger_transfers_reversed ON ledger_transfers (parent) WHERE kind = 'reverse';
CREATE FUNCTION ledger_transfers_no_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger transfers are never changed';
END;
$$;
CREATE TRIGGER ledger_transfers_no_update BEFORE UPDATE ON ledger_transfers
    FOR EACH ROW EXECUTE FUNCTION ledger_transfers_no_update();
CREATE FUNCTION ledger_transfers_no_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger transfers are never removed';
END;
$$;
CREATE TRIGGER ledger_transfers_no_delete BEFORE DELETE ON ledger_transfers
    FOR EACH ROW EXECUTE FUNCTION ledger_transfers_no_delete();
CREATE TRIGGER ledger_transfers_no_truncate BEFORE TRUNCATE ON ledger_transfers
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_transfers_no_delete();
CREATE TABLE ledger_pending (
    transfer TEXT NOT NULL PRIMARY KEY,
    status TEXT NOT NULL,
    amount BIGINT NOT NULL,
    expires_at BIGINT,
    hold BIGINT NOT NULL,
    resolved_by TEXT,
    resolved_at BIGINT,
    chain TEXT);
CREATE INDEX ledger_pending_open ON ledger_pending (expires_at) WHERE status = 'pending';
CREATE TABLE ledger_head (
    id BIGINT NOT NULL PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL
);
INSERT INTO ledger_head (id, seq) VALUES (1, 0);
CREATE TABLE ledger_customer_limits (
    customer TEXT NOT NULL,
    currency TEXT NOT NULL,
    daily_limit BIGINT,
    day BIGINT NOT NULL,
    day_debits BIGINT NOT NULL,
    PRIMARY KEY (customer, currency)
);
CREATE TABLE ledger_decisions (
    id TEXT NOT NULL PRIMARY KEY,
    at BIGINT NOT NULL,
    decision TEXT NOT NULL,
    reasons TEXT NOT NULL,
    debit_account TEXT NOT NULL,
    credit_account TEXT NOT NULL,
    amount BIGINT NOT NULL,
    currency TEXT NOT NULL,
    actor TEXT NOT NULL
);
CREATE INDEX ledger_decisions_at ON ledger_decisions (at);
CREATE TABLE ledger_idempotency (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    route TEXT NOT NULL,
    digest BYTEA NOT NULL,
    request TEXT NOT NULL,
    status BIGINT NOT NULL,
    response TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX ledger_idempotency_age ON ledger_idempotency (created_at);
CREATE TABLE monitor_head (
    id BIGINT NOT NULL PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL,
    config BIGINT NOT NULL
);
INSERT INTO monitor_head (id, seq, config) VALUES (1, 0, 0);
CREATE TABLE monitor_events (
    seq BIGINT NOT NULL PRIMARY KEY,
    at BIGINT NOT NULL,
    type TEXT NOT NULL,
    customer TEXT NOT NULL,
    body TEXT NOT NULL,
    decision_id TEXT NOT NULL,
    decided_at BIGINT NOT NULL,
    source TEXT NOT NULL,
    decision TEXT NOT NULL,
    score BIGINT NOT NULL,
    verdict TEXT NOT NULL,
    reads TEXT NOT NULL,
    shadow TEXT,
    took_us BIGINT NOT NULL,
    request_id TEXT NOT NULL,
    node TEXT NOT NULL
);
CREATE UNIQUE INDEX monitor_events_decision ON monitor_events (decision_id);
CREATE INDEX monitor_events_at ON monitor_events (at);
CREATE INDEX monitor_events_customer ON monitor_events (customer, seq);
CREATE TABLE alerts (
    id TEXT NOT NULL PRIMARY KEY,
    created_at BIGINT NOT NULL,
    decision_id TEXT NOT NULL,
    customer TEXT NOT NULL,
    type TEXT NOT NULL,
    severity TEXT NOT NULL,
    rules TEXT NOT NULL,
    status TEXT NOT NULL,
    assignee TEXT,
    resolution TEXT,
    resolved_at BIGINT,
    resolved_by TEXT,
    updated_at BIGINT NOT NULL
);
CREATE INDEX alerts_status ON alerts (status, created_at);
CREATE INDEX alerts_decision ON alerts (decision_id);
CREATE INDEX alerts_customer ON alerts (customer);
CREATE TABLE alert_comments (
    alert_id TEXT NOT NULL,
    at BIGINT NOT NULL,
    author TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX alert_comments_alert ON alert_comments (alert_id, at);
CREATE TABLE monitor_list_items (
    list TEXT NOT NULL,
    value TEXT NOT NULL,
    added_at BIGINT NOT NULL,
    added_by TEXT NOT NULL,
    expires_at BIGINT,
    note TEXT NOT NULL,
    PRIMARY KEY (list, value)
);
CREATE TABLE monitor_snoozes (
    customer TEXT NOT NULL,
    rule TEXT NOT NULL,
    until BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (customer, rule)
);
CREATE TABLE rule_sets (
    version BIGINT NOT NULL PRIMARY KEY,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    body TEXT NOT NULL,
    note TEXT NOT NULL,
    status TEXT NOT NULL,
    activated_at BIGINT,
    activated_by TEXT
);
CREATE INDEX rule_sets_status ON rule_sets (status);
CREATE TABLE notify_outbox (
    id TEXT NOT NULL PRIMARY KEY,
    created_at BIGINT NOT NULL,
    customer TEXT NOT NULL,
    template TEXT NOT NULL,
    data TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_at BIGINT NOT NULL,
    sent_at BIGINT,
    last_error TEXT
);
CREATE INDEX notify_outbox_due ON notify_outbox (status, next_at);
CREATE INDEX notify_outbox_customer ON notify_outbox (customer, status);
CREATE INDEX ledger_pending_chain ON ledger_pending (chain) WHERE chain IS NOT NULL;
CREATE TABLE monitor_idempotency (
    principal TEXT NOT NULL,
    key TEXT NOT NULL,
    digest BYTEA NOT NULL,
    decision_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (principal, key)
);
CREATE INDEX monitor_idempotency_created ON monitor_idempotency (created_at);
