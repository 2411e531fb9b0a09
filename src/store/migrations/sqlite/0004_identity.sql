-- 0004_identity: staff users, credentials, sessions, sign-in challenges, recovery codes,
-- lockout counters and sign-in events (docs/internals/identity.md).

-- Staff members. Their e-mail and name are sealed under their own DEK (wrapped by the KEK,
-- like a customer's); email_hash is the blind index that sign-in looks them up by.
CREATE TABLE staff (
    id           TEXT    NOT NULL PRIMARY KEY,
    email_hash   BLOB    NOT NULL UNIQUE,
    email        TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    scopes       TEXT    NOT NULL,
    status       TEXT    NOT NULL,
    dek_wrapped  BLOB    NOT NULL,
    kek_version  INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
) STRICT;
CREATE INDEX staff_kek ON staff (kek_version);

-- One row per subject that can sign in ('customer' or 'staff'). The TOTP secret is sealed
-- under the subject's DEK (a customer's lives in customer_secrets, kept by the vault).
CREATE TABLE credentials (
    subject_kind        TEXT    NOT NULL,
    subject_id          TEXT    NOT NULL,
    password_hash       TEXT,
    password_changed_at INTEGER,
    totp_enabled_at     INTEGER,
    totp_last_step      INTEGER NOT NULL,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    PRIMARY KEY (subject_kind, subject_id)
) STRICT;

-- Secrets of a customer that are not personal fields (a TOTP secret), sealed under the
-- customer's DEK: erasure destroys them with the DEK, DEK rotation re-seals them.
CREATE TABLE customer_secrets (
    customer_id  TEXT NOT NULL REFERENCES customers (id),
    name         TEXT NOT NULL,
    value        TEXT NOT NULL,
    PRIMARY KEY (customer_id, name)
) STRICT;

-- Staff secrets, sealed under the staff member's DEK.
CREATE TABLE staff_secrets (
    staff_id     TEXT NOT NULL REFERENCES staff (id),
    name         TEXT NOT NULL,
    value        TEXT NOT NULL,
    PRIMARY KEY (staff_id, name)
) STRICT;

-- Single-use recovery codes, stored as keyed hashes.
CREATE TABLE recovery_codes (
    subject_kind TEXT    NOT NULL,
    subject_id   TEXT    NOT NULL,
    code_hash    BLOB    NOT NULL,
    created_at   INTEGER NOT NULL,
    used_at      INTEGER,
    PRIMARY KEY (subject_kind, subject_id, code_hash)
) STRICT;

-- Sessions: the token is stored only as a keyed hash.
CREATE TABLE sessions (
    id           TEXT    NOT NULL PRIMARY KEY,
    token_hash   BLOB    NOT NULL UNIQUE,
    subject_kind TEXT    NOT NULL,
    subject_id   TEXT    NOT NULL,
    aal          INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    auth_at      INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    revoked_at   INTEGER,
    ip           TEXT    NOT NULL,
    user_agent   TEXT    NOT NULL,
    device_id    TEXT    NOT NULL
) STRICT;
CREATE INDEX sessions_subject ON sessions (subject_kind, subject_id);

-- A password accepted, a second factor awaited: the challenge token (a keyed hash) that
-- POST /v1/auth/mfa completes.
CREATE TABLE auth_challenges (
    token_hash   BLOB    NOT NULL PRIMARY KEY,
    subject_kind TEXT    NOT NULL,
    subject_id   TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    attempts     INTEGER NOT NULL,
    ip           TEXT    NOT NULL,
    user_agent   TEXT    NOT NULL,
    device_id    TEXT    NOT NULL
) STRICT;

-- Failed sign-ins per account ('customer:<id>', 'staff:<id>', or 'unknown:<keyed hash>' for
-- identifiers that match no account, so that lockout does not reveal which accounts exist).
CREATE TABLE lockouts (
    subject       TEXT    NOT NULL PRIMARY KEY,
    failures      INTEGER NOT NULL,
    last_failure  INTEGER NOT NULL,
    locked_until  INTEGER NOT NULL
) STRICT;
CREATE INDEX lockouts_last ON lockouts (last_failure);

-- Sign-in events for the monitoring engine.
CREATE TABLE auth_events (
    seq          INTEGER NOT NULL PRIMARY KEY,
    at           INTEGER NOT NULL,
    kind         TEXT    NOT NULL,
    subject_kind TEXT,
    subject_id   TEXT,
    ip           TEXT    NOT NULL,
    user_agent   TEXT    NOT NULL,
    device_id    TEXT    NOT NULL,
    reason       TEXT    NOT NULL
) STRICT;
CREATE INDEX auth_events_subject ON auth_events (subject_kind, subject_id, seq);
