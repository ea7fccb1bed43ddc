-- +goose Up
-- Upstream events are stored here before they are acknowledged, then applied by a worker.
-- dedupe_key makes a repeated delivery of one event a no-op.
CREATE TABLE source_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    enterprise_id TEXT NOT NULL,
    source_id TEXT NOT NULL,
    dedupe_key TEXT NOT NULL,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    claimed_until INTEGER NOT NULL DEFAULT 0,
    applied_at INTEGER NOT NULL DEFAULT 0,
    task_id TEXT NOT NULL DEFAULT '',
    error TEXT NOT NULL DEFAULT '',
    UNIQUE (enterprise_id, source_id, dedupe_key)
);
CREATE INDEX source_events_pending ON source_events (status, id);
CREATE INDEX source_events_source ON source_events (enterprise_id, source_id, id);

-- +goose Down
DROP TABLE source_events;
