-- 0011_monitor: the events the monitoring engine decided about, and its decisions
-- (docs/monitoring.md).
--
-- Monitoring events: every event decided, in the order decided (seq), in the monitoring
-- shape (body: canonical JSON text, addresses as pseudonyms), with the event's own time (at)
-- and whom it is about (the company's reference of the customer, or a vault customer's id).
-- What the state is rebuilt from, and backtests replay.
CREATE TABLE monitor_events (
    seq INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    type TEXT NOT NULL,
    customer TEXT NOT NULL,
    request_id TEXT NOT NULL,
    body TEXT NOT NULL
) STRICT;
CREATE INDEX monitor_events_customer ON monitor_events (customer, seq);
CREATE INDEX monitor_events_at ON monitor_events (at);

-- A decision about one event (monitor_events, event_seq): where the event came from
-- (source: api, ledger, signin, profile), whom it is about (the company's reference of the
-- customer, or a vault customer's id), its type, the decision and score, the verdict as the
-- API shows it (JSON members: decision, score, rules with their reasons, actions and their
-- parameters), what the rules that fired read (a JSON object: each feature's text and its
-- value, null when missing), the shadow rule set's verdict (a JSON object, NULL without a
-- shadow set), the engine's time in microseconds and the request it was made in.
CREATE TABLE decisions (
    id TEXT NOT NULL PRIMARY KEY,
    at INTEGER NOT NULL,
    event_seq INTEGER NOT NULL,
    source TEXT NOT NULL,
    customer TEXT NOT NULL,
    type TEXT NOT NULL,
    decision TEXT NOT NULL,
    score INTEGER NOT NULL,
    verdict TEXT NOT NULL,
    reads TEXT NOT NULL,
    shadow TEXT,
    took_us INTEGER NOT NULL,
    request_id TEXT NOT NULL
) STRICT;
CREATE INDEX decisions_customer ON decisions (customer, at);
CREATE INDEX decisions_at ON decisions (at);
CREATE INDEX decisions_event ON decisions (event_seq);
