-- +goose Up
-- Times are Unix milliseconds; JSON is TEXT. Both dialects share the shape so one set of queries
-- serves both.
CREATE TABLE meta (
    k TEXT PRIMARY KEY,
    v BYTEA NOT NULL
);

CREATE TABLE enterprises (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE identity_sources (
    enterprise_id TEXT NOT NULL REFERENCES enterprises(id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    enabled BIGINT NOT NULL,
    sync TEXT NOT NULL,
    config TEXT NOT NULL,
    secrets BYTEA,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (enterprise_id, id)
);

CREATE TABLE departments (
    enterprise_id TEXT NOT NULL,
    source_id TEXT NOT NULL,
    upstream_id TEXT NOT NULL,
    parent_id TEXT NOT NULL,
    name TEXT NOT NULL,
    sort_order BIGINT NOT NULL,
    extra TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (enterprise_id, source_id, upstream_id),
    FOREIGN KEY (enterprise_id, source_id) REFERENCES identity_sources(enterprise_id, id) ON DELETE CASCADE
);

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    enterprise_id TEXT NOT NULL REFERENCES enterprises(id) ON DELETE CASCADE,
    username TEXT NOT NULL,
    name TEXT NOT NULL,
    email TEXT NOT NULL,
    mobile TEXT NOT NULL,
    status TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    attributes TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (enterprise_id, username)
);
CREATE INDEX users_email ON users (enterprise_id, email);
CREATE INDEX users_mobile ON users (enterprise_id, mobile);

CREATE TABLE user_links (
    enterprise_id TEXT NOT NULL,
    source_id TEXT NOT NULL,
    upstream_id TEXT NOT NULL,
    union_id TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    departments TEXT NOT NULL,
    upstream TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (enterprise_id, source_id, upstream_id),
    UNIQUE (enterprise_id, source_id, user_id),
    FOREIGN KEY (enterprise_id, source_id) REFERENCES identity_sources(enterprise_id, id) ON DELETE CASCADE
);
CREATE INDEX user_links_user ON user_links (user_id);

CREATE TABLE groups_ (
    enterprise_id TEXT NOT NULL REFERENCES enterprises(id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    PRIMARY KEY (enterprise_id, id)
);

CREATE TABLE group_members (
    enterprise_id TEXT NOT NULL,
    group_id TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (enterprise_id, group_id, user_id),
    FOREIGN KEY (enterprise_id, group_id) REFERENCES groups_(enterprise_id, id) ON DELETE CASCADE
);
CREATE INDEX group_members_user ON group_members (user_id);

CREATE TABLE oidc_clients (
    enterprise_id TEXT NOT NULL REFERENCES enterprises(id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    type TEXT NOT NULL,
    secret BYTEA,
    settings TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (enterprise_id, id)
);

CREATE TABLE saml_service_providers (
    enterprise_id TEXT NOT NULL REFERENCES enterprises(id) ON DELETE CASCADE,
    entity_id TEXT NOT NULL,
    name TEXT NOT NULL,
    metadata_xml TEXT NOT NULL,
    metadata_url TEXT NOT NULL,
    settings TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (enterprise_id, entity_id)
);

CREATE TABLE refresh_tokens (
    id TEXT PRIMARY KEY,
    family_id TEXT NOT NULL,
    enterprise_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    scopes TEXT NOT NULL,
    amr TEXT NOT NULL,
    auth_time BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    rotated_at BIGINT NOT NULL DEFAULT 0,
    revoked_at BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (enterprise_id, user_id);
CREATE INDEX refresh_tokens_expiry ON refresh_tokens (expires_at);

CREATE TABLE sync_tasks (
    id TEXT PRIMARY KEY,
    enterprise_id TEXT NOT NULL,
    source_id TEXT NOT NULL,
    trigger_ TEXT NOT NULL,
    status TEXT NOT NULL,
    dry_run BIGINT NOT NULL,
    read_mode TEXT NOT NULL,
    counts TEXT NOT NULL,
    reason TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    finished_at BIGINT NOT NULL
);
CREATE INDEX sync_tasks_source ON sync_tasks (enterprise_id, source_id, started_at);

CREATE TABLE sync_records (
    id BIGSERIAL PRIMARY KEY,
    task_id TEXT NOT NULL REFERENCES sync_tasks(id) ON DELETE CASCADE,
    object_type TEXT NOT NULL,
    upstream_id TEXT NOT NULL,
    action TEXT NOT NULL,
    upstream TEXT NOT NULL,
    local_before TEXT NOT NULL,
    local_after TEXT NOT NULL,
    error TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX sync_records_task ON sync_records (task_id, action, id);
CREATE INDEX sync_records_object ON sync_records (task_id, upstream_id);

CREATE TABLE audit_events (
    id BIGSERIAL PRIMARY KEY,
    at BIGINT NOT NULL,
    enterprise_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    user_id TEXT NOT NULL,
    source_id TEXT NOT NULL,
    ip TEXT NOT NULL,
    user_agent TEXT NOT NULL,
    outcome TEXT NOT NULL,
    reason TEXT NOT NULL,
    request_id TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX audit_events_enterprise ON audit_events (enterprise_id, id);

-- +goose Down
DROP TABLE audit_events;
DROP TABLE sync_records;
DROP TABLE sync_tasks;
DROP TABLE refresh_tokens;
DROP TABLE saml_service_providers;
DROP TABLE oidc_clients;
DROP TABLE group_members;
DROP TABLE groups_;
DROP TABLE user_links;
DROP TABLE users;
DROP TABLE departments;
DROP TABLE identity_sources;
DROP TABLE enterprises;
DROP TABLE meta;
