-- +goose Up
-- The people search ignores case (ASCII, as SQLite's lower() folds it): a prefix of the name,
-- username or email is a range over lower(column). These replace the case-sensitive name index;
-- users_email stays for matching people by email.
CREATE INDEX users_name_lower ON users (enterprise_id, lower(name));
CREATE INDEX users_username_lower ON users (enterprise_id, lower(username));
CREATE INDEX users_email_lower ON users (enterprise_id, lower(email));
DROP INDEX users_name_prefix;

-- A department's sub-departments, for the search's department-and-below filter.
CREATE INDEX departments_parent ON departments (enterprise_id, source_id, parent_id);

-- +goose Down
DROP INDEX departments_parent;
CREATE INDEX users_name_prefix ON users (enterprise_id, name);
DROP INDEX users_email_lower;
DROP INDEX users_username_lower;
DROP INDEX users_name_lower;
