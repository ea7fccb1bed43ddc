-- +goose Up
-- The people search ignores case: a prefix of the name, username or email is a range over
-- lower(column) in byte order (COLLATE "C"). These replace the case-sensitive prefix indexes.
CREATE INDEX users_name_lower ON users (enterprise_id, (lower(name) COLLATE "C"));
CREATE INDEX users_username_lower ON users (enterprise_id, (lower(username) COLLATE "C"));
CREATE INDEX users_email_lower ON users (enterprise_id, (lower(email) COLLATE "C"));
DROP INDEX users_name_prefix;
DROP INDEX users_email_prefix;

-- A department's sub-departments, for the search's department-and-below filter.
CREATE INDEX departments_parent ON departments (enterprise_id, source_id, parent_id);

-- +goose Down
DROP INDEX departments_parent;
CREATE INDEX users_email_prefix ON users (enterprise_id, email COLLATE "C");
CREATE INDEX users_name_prefix ON users (enterprise_id, name COLLATE "C");
DROP INDEX users_email_lower;
DROP INDEX users_username_lower;
DROP INDEX users_name_lower;
