-- 0011_monitor: the events the monitoring engine decided about, each with its decision
-- (docs/monitoring.md, "Where they are kept").
--
-- One row an event, in the order decided (seq): the event's own time (at), type and whom it
-- is about (the company's reference of the customer, or a vault customer's id), the event in
-- the monitoring shape (body: canonical JSON text, addresses as pseudonyms); and its decision:
-- its id (decision_id, "dec_" and 16 hex digits), when it was made, where the event came from
-- (source: api, ledger, signin, profile), the decision and score, the verdict as the API shows
-- it (JSON members: decision, score, rules with their reasons, actions and their parameters),
-- what the rules that fired read (a JSON object: each feature's text and its value, null when
-- missing), the shadow rule set's verdict (a JSON object; NULL without a shadow set), the
-- engine's time in microseconds, the request it was made in, and the node that decided it
-- (node: the serving process's id, so that each node of several feeds its state with the
-- others' events). What the state is rebuilt from, and backtests replay.
--
-- seq has no gaps and follows the commit order on every backend: it is the next value of
-- monitor_head, taken under its row lock in the deciding unit (every node tails the table by
-- it; docs/monitoring.md, "Several nodes").
-- config counts the changes of managed lists, snoozes and rule sets, which every node's tail
-- follows.
CREATE TABLE monitor_head (
    id INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL,
    config INTEGER NOT NULL
) STRICT;
INSERT INTO monitor_head (id, seq, config) VALUES (1, 0, 0);
CREATE TABLE monitor_events (
    seq INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    type TEXT NOT NULL,
    customer TEXT NOT NULL,
    body TEXT NOT NULL,
    decision_id TEXT NOT NULL,
    decided_at INTEGER NOT NULL,
    source TEXT NOT NULL,
    decision TEXT NOT NULL,
    score INTEGER NOT NULL,
    verdict TEXT NOT NULL,
    reads TEXT NOT NULL,
    shadow TEXT,
    took_us INTEGER NOT NULL,
    request_id TEXT NOT NULL,
    node TEXT NOT NULL
) STRICT;
CREATE UNIQUE INDEX monitor_events_decision ON monitor_events (decision_id);
CREATE INDEX monitor_events_at ON monitor_events (at);
CREATE INDEX monitor_events_customer ON monitor_events (customer, seq);


-- Alerts: one for each decision whose rules named `alert` (id "alr_" and the decision's 16 hex
-- digits), for staff to work: its severity (low, medium, high, critical), the rules that fired
-- (names separated by spaces), status (open, assigned, resolved), the staff member assigned,
-- and a resolution (true_positive, false_positive) kept as the decision's label for backtests.
CREATE TABLE alerts (
    id TEXT NOT NULL PRIMARY KEY,
    created_at INTEGER NOT NULL,
    decision_id TEXT NOT NULL,
    customer TEXT NOT NULL,
    type TEXT NOT NULL,
    severity TEXT NOT NULL,
    rules TEXT NOT NULL,
    status TEXT NOT NULL,
    assignee TEXT,
    resolution TEXT,
    resolved_at INTEGER,
    resolved_by TEXT,
    updated_at INTEGER NOT NULL
) STRICT;
CREATE INDEX alerts_status ON alerts (status, created_at);
CREATE INDEX alerts_decision ON alerts (decision_id);
CREATE INDEX alerts_customer ON alerts (customer);

-- What staff wrote on an alert, in order.
CREATE TABLE alert_comments (
    alert_id TEXT NOT NULL,
    at INTEGER NOT NULL,
    author TEXT NOT NULL,
    body TEXT NOT NULL
) STRICT;
CREATE INDEX alert_comments_alert ON alert_comments (alert_id, at);

-- The lists staff manage by API (docs/monitoring.md, "Lists"): each item of a list a rule file
-- declares `managed` (list, the list's name; value, an address, block, device, payee, country
-- or other reference as the rules compare it), who added it and when, when it lapses (NULL:
-- never), and a note of at most 200 bytes for staff (not audited).
CREATE TABLE monitor_list_items (
    list TEXT NOT NULL,
    value TEXT NOT NULL,
    added_at INTEGER NOT NULL,
    added_by TEXT NOT NULL,
    expires_at INTEGER,
    note TEXT NOT NULL,
    PRIMARY KEY (list, value)
) STRICT;

-- Snoozes: a rule that does not fire for one customer until a time (a known traveller), with
-- the reason staff gave (at most 200 bytes) and who made it.
CREATE TABLE monitor_snoozes (
    customer TEXT NOT NULL,
    rule TEXT NOT NULL,
    until INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (customer, rule)
) STRICT;

-- Rule sets kept in the store (docs/monitoring.md, "Rule sets"): each version's text as proposed
-- (at most 1 MiB), its SHA-256 (hex), who proposed it and when, and its status: proposed, live
-- (the one in force; at most one), shadow (run beside it; at most one), retired. A set becomes
-- live or shadow only through four-eyes approval (activated_by: the approval request).
CREATE TABLE rule_sets (
    version INTEGER NOT NULL PRIMARY KEY,
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    body TEXT NOT NULL,
    note TEXT NOT NULL,
    status TEXT NOT NULL,
    activated_at INTEGER,
    activated_by TEXT
) STRICT;
CREATE INDEX rule_sets_status ON rule_sets (status);

-- The notification outbox (docs/monitoring.md, "Actions"): a notice to a customer, written in
-- the unit of work that causes it and delivered after the commit; template names what to say,
-- data its parameters (a JSON object without personal data: the decision's id, the event's
-- type). status: pending, sent, dead.
CREATE TABLE notify_outbox (
    id TEXT NOT NULL PRIMARY KEY,
    created_at INTEGER NOT NULL,
    customer TEXT NOT NULL,
    template TEXT NOT NULL,
    data TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_at INTEGER NOT NULL,
    sent_at INTEGER,
    last_error TEXT
) STRICT;
CREATE INDEX notify_outbox_due ON notify_outbox (status, next_at);
CREATE INDEX notify_outbox_customer ON notify_outbox (customer, status);

-- A held link of a linked chain names the chain's first link (chain): the held links of one
-- chain are posted or voided together (docs/ledger.md, "A hold inside a linked chain").
ALTER TABLE ledger_pending ADD COLUMN chain TEXT;
CREATE INDEX ledger_pending_chain ON ledger_pending (chain) WHERE chain IS NOT NULL;

-- Idempotency keys of POST /v1/events: a retry with the same key (per principal) and the same
-- event answers the first decision; another event under the key is refused. digest: BLAKE2b of
-- the event's canonical text. Forgotten after a day.
CREATE TABLE monitor_idempotency (
    principal TEXT NOT NULL,
    key TEXT NOT NULL,
    digest BLOB NOT NULL,
    decision_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (principal, key)
) STRICT;
CREATE INDEX monitor_idempotency_created ON monitor_idempotency (created_at);
