-- +goose Up
-- Outbound provisioning (directory/provision): an enterprise's target (WeCom), the durable outbox,
-- what qiao created there, and the tasks and records of pushes and reconciles.
CREATE TABLE provision_targets (
    enterprise_id TEXT PRIMARY KEY REFERENCES enterprises(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    auto_push INTEGER NOT NULL,
    settings TEXT NOT NULL,
    config TEXT NOT NULL,
    secrets BLOB,
    managed TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- The outbox. Triggers on the directory's tables write a row in the transaction of every change
-- to a person (users), their departments (user_links) or a department, whoever makes it (a sync,
-- the admin API, config apply), but only for an enterprise with an enabled target that pushes
-- automatically: for the others a trigger costs one primary-key probe of provision_targets.
-- A row names the object, not the change: the pusher reads the object as it is now.
CREATE TABLE provision_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    enterprise_id TEXT NOT NULL,
    object_type TEXT NOT NULL,
    object_key TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at INTEGER NOT NULL DEFAULT 0,
    claimed_until INTEGER NOT NULL DEFAULT 0,
    claim TEXT NOT NULL DEFAULT '',
    errcode INTEGER NOT NULL DEFAULT 0,
    error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX provision_outbox_pending ON provision_outbox (status, next_at, id);
CREATE INDEX provision_outbox_object ON provision_outbox (enterprise_id, object_type, object_key);
CREATE INDEX provision_outbox_claim ON provision_outbox (claim);

-- What qiao created (or adopted) at the target: only these are ever changed or deleted there.
-- state 'creating' is written before the create call, so that a create repeated after a crash
-- recognises the object as its own.
CREATE TABLE provision_objects (
    enterprise_id TEXT NOT NULL REFERENCES enterprises(id) ON DELETE CASCADE,
    object_type TEXT NOT NULL,
    local_key TEXT NOT NULL,
    remote_id TEXT NOT NULL,
    state TEXT NOT NULL,
    pushed TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (enterprise_id, object_type, local_key)
);
CREATE INDEX provision_objects_remote ON provision_objects (enterprise_id, object_type, remote_id);

CREATE TABLE provision_tasks (
    id TEXT PRIMARY KEY,
    enterprise_id TEXT NOT NULL,
    trigger_ TEXT NOT NULL,
    status TEXT NOT NULL,
    dry_run INTEGER NOT NULL,
    counts TEXT NOT NULL,
    reason TEXT NOT NULL,
    calls INTEGER NOT NULL DEFAULT 0,
    started_at INTEGER NOT NULL,
    finished_at INTEGER NOT NULL
);
CREATE INDEX provision_tasks_ent ON provision_tasks (enterprise_id, started_at);

CREATE TABLE provision_records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    enterprise_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    object_type TEXT NOT NULL,
    local_key TEXT NOT NULL,
    remote_id TEXT NOT NULL,
    action TEXT NOT NULL,
    local TEXT NOT NULL,
    before_ TEXT NOT NULL,
    after_ TEXT NOT NULL,
    errcode INTEGER NOT NULL,
    error TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX provision_records_ent ON provision_records (enterprise_id, id);
CREATE INDEX provision_records_task ON provision_records (task_id, id);

-- +goose StatementBegin
CREATE TRIGGER provision_users_insert AFTER INSERT ON users
WHEN EXISTS (SELECT 1 FROM provision_targets t WHERE t.enterprise_id = NEW.enterprise_id AND t.enabled = 1 AND t.auto_push = 1)
BEGIN
    INSERT INTO provision_outbox (enterprise_id, object_type, object_key, created_at) VALUES (NEW.enterprise_id, 'user', NEW.id, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER provision_users_update AFTER UPDATE ON users
WHEN (OLD.username IS NOT NEW.username OR OLD.name IS NOT NEW.name OR OLD.email IS NOT NEW.email OR OLD.mobile IS NOT NEW.mobile OR OLD.status IS NOT NEW.status OR OLD.attributes IS NOT NEW.attributes) AND EXISTS (SELECT 1 FROM provision_targets t WHERE t.enterprise_id = NEW.enterprise_id AND t.enabled = 1 AND t.auto_push = 1)
BEGIN
    INSERT INTO provision_outbox (enterprise_id, object_type, object_key, created_at) VALUES (NEW.enterprise_id, 'user', NEW.id, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER provision_users_delete AFTER DELETE ON users
WHEN EXISTS (SELECT 1 FROM provision_targets t WHERE t.enterprise_id = OLD.enterprise_id AND t.enabled = 1 AND t.auto_push = 1)
BEGIN
    INSERT INTO provision_outbox (enterprise_id, object_type, object_key, created_at) VALUES (OLD.enterprise_id, 'user', OLD.id, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER provision_links_insert AFTER INSERT ON user_links
WHEN EXISTS (SELECT 1 FROM provision_targets t WHERE t.enterprise_id = NEW.enterprise_id AND t.enabled = 1 AND t.auto_push = 1)
BEGIN
    INSERT INTO provision_outbox (enterprise_id, object_type, object_key, created_at) VALUES (NEW.enterprise_id, 'user', NEW.user_id, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER provision_links_update AFTER UPDATE ON user_links
WHEN (OLD.departments IS NOT NEW.departments OR OLD.user_id IS NOT NEW.user_id) AND EXISTS (SELECT 1 FROM provision_targets t WHERE t.enterprise_id = NEW.enterprise_id AND t.enabled = 1 AND t.auto_push = 1)
BEGIN
    INSERT INTO provision_outbox (enterprise_id, object_type, object_key, created_at) VALUES (NEW.enterprise_id, 'user', NEW.user_id, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER provision_links_delete AFTER DELETE ON user_links
WHEN EXISTS (SELECT 1 FROM provision_targets t WHERE t.enterprise_id = OLD.enterprise_id AND t.enabled = 1 AND t.auto_push = 1)
BEGIN
    INSERT INTO provision_outbox (enterprise_id, object_type, object_key, created_at) VALUES (OLD.enterprise_id, 'user', OLD.user_id, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER provision_depts_insert AFTER INSERT ON departments
WHEN EXISTS (SELECT 1 FROM provision_targets t WHERE t.enterprise_id = NEW.enterprise_id AND t.enabled = 1 AND t.auto_push = 1)
BEGIN
    INSERT INTO provision_outbox (enterprise_id, object_type, object_key, created_at) VALUES (NEW.enterprise_id, 'department', NEW.source_id || '/' || NEW.upstream_id, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER provision_depts_update AFTER UPDATE ON departments
WHEN (OLD.parent_id IS NOT NEW.parent_id OR OLD.name IS NOT NEW.name OR OLD.sort_order IS NOT NEW.sort_order) AND EXISTS (SELECT 1 FROM provision_targets t WHERE t.enterprise_id = NEW.enterprise_id AND t.enabled = 1 AND t.auto_push = 1)
BEGIN
    INSERT INTO provision_outbox (enterprise_id, object_type, object_key, created_at) VALUES (NEW.enterprise_id, 'department', NEW.source_id || '/' || NEW.upstream_id, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER provision_depts_delete AFTER DELETE ON departments
WHEN EXISTS (SELECT 1 FROM provision_targets t WHERE t.enterprise_id = OLD.enterprise_id AND t.enabled = 1 AND t.auto_push = 1)
BEGIN
    INSERT INTO provision_outbox (enterprise_id, object_type, object_key, created_at) VALUES (OLD.enterprise_id, 'department', OLD.source_id || '/' || OLD.upstream_id, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER provision_depts_delete;
DROP TRIGGER provision_depts_update;
DROP TRIGGER provision_depts_insert;
DROP TRIGGER provision_links_delete;
DROP TRIGGER provision_links_update;
DROP TRIGGER provision_links_insert;
DROP TRIGGER provision_users_delete;
DROP TRIGGER provision_users_update;
DROP TRIGGER provision_users_insert;

DROP TABLE provision_records;
DROP TABLE provision_tasks;
DROP TABLE provision_objects;
DROP TABLE provision_outbox;
DROP TABLE provision_targets;
