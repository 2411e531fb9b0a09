-- Cases (docs/cases.md): the incidents staff work, opened from alerts (an alert joins the open
-- case that shares one of its observables within [cases] group_minutes, or opens one), from
-- customers' reports, by staff, and by drills. stage: detected, assessing, contained,
-- eradicated, recovered, closed, false_positive. severity: low, medium, high, critical.
-- review: a JSON object {cause, actions, changes}, required to close a high or critical case.
-- drill: 1 for a drill's case (its customer is a drill customer), never grouped with others.
CREATE TABLE cases (
    id TEXT NOT NULL PRIMARY KEY,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    last_alert_at INTEGER NOT NULL,
    title TEXT NOT NULL,
    severity TEXT NOT NULL,
    stage TEXT NOT NULL,
    assignee TEXT NOT NULL,
    customer TEXT NOT NULL,
    source TEXT NOT NULL,
    drill INTEGER NOT NULL,
    resolution TEXT,
    review TEXT,
    closed_at INTEGER,
    closed_by TEXT,
    seq INTEGER NOT NULL
) STRICT;
CREATE INDEX cases_stage ON cases (stage, last_alert_at);
CREATE INDEX cases_updated ON cases (updated_at, id);
CREATE INDEX cases_customer ON cases (customer);

-- What a case is about (customer, ip, device, payee, account): cases sharing one are linked.
CREATE TABLE case_observables (
    case_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    added_at INTEGER NOT NULL,
    PRIMARY KEY (case_id, kind, value)
) STRICT;
CREATE INDEX case_observables_value ON case_observables (kind, value);

-- The alerts (and through them the decisions) behind a case.
CREATE TABLE case_alerts (
    alert_id TEXT NOT NULL PRIMARY KEY,
    case_id TEXT NOT NULL,
    decision_id TEXT NOT NULL,
    severity TEXT NOT NULL,
    at INTEGER NOT NULL
) STRICT;
CREATE INDEX case_alerts_case ON case_alerts (case_id, at);

-- Tasks: status open, done or cancelled.
CREATE TABLE case_tasks (
    case_id TEXT NOT NULL,
    n INTEGER NOT NULL,
    title TEXT NOT NULL,
    status TEXT NOT NULL,
    assignee TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    done_at INTEGER,
    done_by TEXT,
    PRIMARY KEY (case_id, n)
) STRICT;

-- Everything done on a case, in order (seq from cases.seq): kind and a JSON object.
CREATE TABLE case_timeline (
    case_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (case_id, seq)
) STRICT;

-- The steps of the playbooks run on a case: mode auto or confirm; status done, failed,
-- waiting (for a staff member's confirmation), skipped.
CREATE TABLE case_steps (
    case_id TEXT NOT NULL,
    n INTEGER NOT NULL,
    playbook TEXT NOT NULL,
    customer TEXT NOT NULL,
    action TEXT NOT NULL,
    arg TEXT NOT NULL,
    mode TEXT NOT NULL,
    status TEXT NOT NULL,
    result TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    done_at INTEGER,
    done_by TEXT,
    PRIMARY KEY (case_id, n)
) STRICT;
CREATE INDEX case_steps_waiting ON case_steps (status, created_at);

-- Customers' reports of suspicious activity: the text is a secret of the customer's (sealed
-- under its key, gone with an erasure); the staff's answer is written here for the customer.
CREATE TABLE case_reports (
    id TEXT NOT NULL PRIMARY KEY,
    customer TEXT NOT NULL,
    case_id TEXT NOT NULL,
    alert_id TEXT NOT NULL,
    concerns TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    answer TEXT,
    answered_at INTEGER,
    answered_by TEXT
) STRICT;
CREATE INDEX case_reports_customer ON case_reports (customer, created_at);

-- Customers' own freezes: an unfreeze asked for waits until unfreeze_at ([customers]
-- self_unfreeze_minutes), then the leading node's job lifts it.
CREATE TABLE self_freezes (
    customer TEXT NOT NULL PRIMARY KEY,
    frozen_at INTEGER NOT NULL,
    unfreeze_at INTEGER
) STRICT;

-- Drill customers: made by custodia drill run, never real, kept apart from every real case.
CREATE TABLE drill_customers (
    customer TEXT NOT NULL PRIMARY KEY,
    created_at INTEGER NOT NULL,
    playbook TEXT NOT NULL
) STRICT;

-- Devices a customer forgot (DELETE /v1/me/devices/{device}): their sessions ended, their
-- earlier sign-ins no longer listed on the customer's security page.
CREATE TABLE forgotten_devices (
    customer TEXT NOT NULL,
    device TEXT NOT NULL,
    at INTEGER NOT NULL,
    PRIMARY KEY (customer, device)
) STRICT;
