-- Notifications: the SQLite backend's 0012_notify.sql.
ALTER TABLE notify_outbox ADD COLUMN channel TEXT NOT NULL DEFAULT 'webhook';
CREATE INDEX notify_outbox_status ON notify_outbox (status, created_at);
