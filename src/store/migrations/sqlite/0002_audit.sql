-- 0002_audit: the tamper-evident audit log (docs/internals/audit.md).
CREATE TABLE audit_log (
    seq         INTEGER NOT NULL PRIMARY KEY,
    time_ms     INTEGER NOT NULL,
    actor_type  TEXT    NOT NULL,
    actor_id    TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    target      TEXT    NOT NULL,
    outcome     TEXT    NOT NULL,
    request_id  TEXT    NOT NULL,
    source      TEXT    NOT NULL,
    details     TEXT    NOT NULL,
    prev_hash   BLOB    NOT NULL,
    hash        BLOB    NOT NULL
) STRICT;
CREATE INDEX audit_log_actor ON audit_log (actor_id, seq);
CREATE INDEX audit_log_action ON audit_log (action, seq);
CREATE INDEX audit_log_target ON audit_log (target, seq);

-- The chain's head, one row: appends update it, which serialises them in any database.
CREATE TABLE audit_head (
    id    INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    seq   INTEGER NOT NULL,
    hash  BLOB    NOT NULL
) STRICT;
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, zeroblob(32));

-- Signed checkpoints: tree size, Merkle root, the C2SP signed note, and the tree's frontier
-- (the roots of its perfect subtrees) so the next checkpoint need not re-read the log.
CREATE TABLE audit_checkpoints (
    tree_size   INTEGER NOT NULL PRIMARY KEY,
    root        BLOB    NOT NULL,
    created_at  INTEGER NOT NULL,
    note        TEXT    NOT NULL,
    frontier    BLOB    NOT NULL
) STRICT;

-- Records are never changed or removed by custodia; these make a slip loud. (Someone with
-- the database file can drop them; that is what the hash chain and checkpoints detect.)
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
