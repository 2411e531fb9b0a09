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
-- engine's time in microseconds and the request it was made in. What the state is rebuilt
-- from, and backtests replay.
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
    request_id TEXT NOT NULL
) STRICT;
CREATE UNIQUE INDEX monitor_events_decision ON monitor_events (decision_id);
CREATE INDEX monitor_events_at ON monitor_events (at);


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

-- What staff wrote on an alert, in order.
CREATE TABLE alert_comments (
    alert_id TEXT NOT NULL,
    at INTEGER NOT NULL,
    author TEXT NOT NULL,
    body TEXT NOT NULL
) STRICT;
CREATE INDEX alert_comments_alert ON alert_comments (alert_id, at);
