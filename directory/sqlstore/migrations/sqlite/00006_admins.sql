-- +goose Up
-- Who administers what through the admin API: a role per enterprise for a person of its
-- directory (by username), platform operators, and one-time operator setup links (by hash).
CREATE TABLE admin_grants (
    enterprise_id TEXT NOT NULL REFERENCES enterprises(id) ON DELETE CASCADE,
    username TEXT NOT NULL,
    role TEXT NOT NULL,
    managed TEXT NOT NULL DEFAULT '',
    granted_by TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (enterprise_id, username)
);

CREATE TABLE operators (
    enterprise_id TEXT NOT NULL REFERENCES enterprises(id) ON DELETE CASCADE,
    username TEXT NOT NULL,
    granted_by TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    PRIMARY KEY (enterprise_id, username)
);

CREATE TABLE setup_tokens (
    hash TEXT PRIMARY KEY,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);

-- +goose Down
DROP TABLE setup_tokens;
DROP TABLE operators;
DROP TABLE admin_grants;
