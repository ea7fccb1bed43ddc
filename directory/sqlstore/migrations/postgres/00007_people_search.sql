-- +goose Up
-- The admin API's people search (Store.SearchUsers): a prefix of the name, username or email is a
-- range scan in byte order (COLLATE "C", whatever the database collation), a mobile number an equality
-- on users_mobile; a person's audit events (user_id) newest first.
CREATE INDEX users_name_prefix ON users (enterprise_id, name COLLATE "C");
CREATE INDEX users_username_prefix ON users (enterprise_id, username COLLATE "C");
CREATE INDEX users_email_prefix ON users (enterprise_id, email COLLATE "C");
CREATE INDEX audit_events_user ON audit_events (enterprise_id, user_id, id);

-- +goose Down
DROP INDEX audit_events_user;
DROP INDEX users_email_prefix;
DROP INDEX users_username_prefix;
DROP INDEX users_name_prefix;
