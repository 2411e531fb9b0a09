-- Notifications (docs/notifications.md): each row of the outbox is one notice on one channel,
-- delivered after its unit's commit by the worker (src/notify/worker.c). status: pending (due
-- at next_at), sending (claimed by a worker until next_at, its lease; a worker that died lets
-- it fall due again), sent, dead (max_attempts reached, or a notice that cannot be rendered).
ALTER TABLE notify_outbox ADD COLUMN channel TEXT NOT NULL DEFAULT 'webhook';
CREATE INDEX notify_outbox_status ON notify_outbox (status, created_at);
