-- +goose Up
-- The admin API's people search (Store.SearchUsers): a prefix of the name, username or email is a
-- range scan in byte order (BINARY, SQLite's default) — on this index, the username's unique
-- index and users_email; a mobile number an equality on users_mobile. A person's audit events
-- (user_id), newest first.
CREATE INDEX users_name_prefix ON users (enterprise_id, name);
CREATE INDEX audit_events_user ON audit_events (enterprise_id, user_id, id);

-- +goose Down
DROP INDEX audit_events_user;
DROP INDEX users_name_prefix;
