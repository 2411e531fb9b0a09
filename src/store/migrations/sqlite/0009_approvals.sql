-- 0009_approvals: four-eyes approval. An action the access policy marks 'approve' waits here
-- as a pending request until enough other staff members approve it, then custodia runs it
-- itself, once. digest is SHA-256 over the exact action (method, target, canonical body,
-- requester); one identical request may be pending at a time. The action's query and body
-- (payload) and the answer it gave (result, for the requester, until read) are sealed under
-- the request's own DEK, wrapped by the KEK (dek_wrapped, kek_version), as a customer's
-- fields are; the DEK is destroyed once neither is needed.
CREATE TABLE approvals (
    id TEXT NOT NULL PRIMARY KEY,
    permission TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    digest BLOB NOT NULL,
    requester_kind TEXT NOT NULL,
    requester TEXT NOT NULL,
    requester_owner TEXT NOT NULL,
    aal INTEGER NOT NULL,
    needed INTEGER NOT NULL,
    status TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    decided_at INTEGER,
    result_status INTEGER,
    result_detail TEXT,
    dek_wrapped BLOB,
    kek_version INTEGER,
    payload TEXT,
    result TEXT
) STRICT;
CREATE UNIQUE INDEX approvals_one_pending ON approvals (digest) WHERE status = 'pending';
CREATE INDEX approvals_status ON approvals (status, expires_at);
CREATE INDEX approvals_kek ON approvals (kek_version);
-- each staff member's vote on a request, once
CREATE TABLE approval_votes (
    approval_id TEXT NOT NULL REFERENCES approvals (id),
    staff_id TEXT NOT NULL,
    vote TEXT NOT NULL,
    at INTEGER NOT NULL,
    PRIMARY KEY (approval_id, staff_id)
) STRICT;
-- the envelope's named secrets of a request (none are kept today; the table gives the
-- request's keys the shape every kind of subject has)
CREATE TABLE approval_secrets (
    approval_id TEXT NOT NULL REFERENCES approvals (id),
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (approval_id, name)
) STRICT;
