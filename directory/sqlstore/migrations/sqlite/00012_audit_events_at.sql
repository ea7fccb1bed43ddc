-- +goose Up
-- The console's overview counts an enterprise's logons of the last hours: a range over the time.
CREATE INDEX audit_events_at ON audit_events (enterprise_id, at);

-- +goose Down
DROP INDEX audit_events_at;
