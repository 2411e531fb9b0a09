-- Cases: the SQLite backend's 0013_cases.sql (its comments say what each table is).
CREATE TABLE cases (
    id TEXT NOT NULL PRIMARY KEY,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    last_alert_at BIGINT NOT NULL,
    title TEXT NOT NULL,
    severity TEXT NOT NULL,
    stage TEXT NOT NULL,
    assignee TEXT NOT NULL,
    customer TEXT NOT NULL,
    source TEXT NOT NULL,
    drill BIGINT NOT NULL,
    resolution TEXT,
    review TEXT,
    closed_at BIGINT,
    closed_by TEXT,
    seq BIGINT NOT NULL
);
CREATE INDEX cases_stage ON cases (stage, last_alert_at);
CREATE INDEX cases_updated ON cases (updated_at, id);
CREATE INDEX cases_customer ON cases (customer);

CREATE TABLE case_observables (
    case_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    added_at BIGINT NOT NULL,
    PRIMARY KEY (case_id, kind, value)
);
CREATE INDEX case_observables_value ON case_observables (kind, value);

CREATE TABLE case_alerts (
    alert_id TEXT NOT NULL PRIMARY KEY,
    case_id TEXT NOT NULL,
    decision_id TEXT NOT NULL,
    severity TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX case_alerts_case ON case_alerts (case_id, at);

CREATE TABLE case_tasks (
    case_id TEXT NOT NULL,
    n BIGINT NOT NULL,
    title TEXT NOT NULL,
    status TEXT NOT NULL,
    assignee TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    done_at BIGINT,
    done_by TEXT,
    PRIMARY KEY (case_id, n)
);

CREATE TABLE case_timeline (
    case_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (case_id, seq)
);

CREATE TABLE case_steps (
    case_id TEXT NOT NULL,
    n BIGINT NOT NULL,
    playbook TEXT NOT NULL,
    customer TEXT NOT NULL,
    action TEXT NOT NULL,
    arg TEXT NOT NULL,
    mode TEXT NOT NULL,
    status TEXT NOT NULL,
    result TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    done_at BIGINT,
    done_by TEXT,
    PRIMARY KEY (case_id, n)
);
CREATE INDEX case_steps_waiting ON case_steps (status, created_at);

CREATE TABLE case_reports (
    id TEXT NOT NULL PRIMARY KEY,
    customer TEXT NOT NULL,
    case_id TEXT NOT NULL,
    alert_id TEXT NOT NULL,
    concerns TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    answer TEXT,
    answered_at BIGINT,
    answered_by TEXT
);
CREATE INDEX case_reports_customer ON case_reports (customer, created_at);

CREATE TABLE self_freezes (
    customer TEXT NOT NULL PRIMARY KEY,
    frozen_at BIGINT NOT NULL,
    unfreeze_at BIGINT
);

CREATE TABLE drill_customers (
    customer TEXT NOT NULL PRIMARY KEY,
    created_at BIGINT NOT NULL,
    playbook TEXT NOT NULL
);

CREATE TABLE forgotten_devices (
    customer TEXT NOT NULL,
    device TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (customer, device)
);
