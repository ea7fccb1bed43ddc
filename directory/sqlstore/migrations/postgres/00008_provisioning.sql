-- +goose Up
-- Outbound provisioning (directory/provision): an enterprise's target (WeCom), the durable outbox,
-- what qiao created there, and the tasks and records of pushes and reconciles.
CREATE TABLE provision_targets (
    enterprise_id TEXT PRIMARY KEY REFERENCES enterprises(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    enabled BIGINT NOT NULL,
    auto_push BIGINT NOT NULL,
    settings TEXT NOT NULL,
    config TEXT NOT NULL,
    secrets BYTEA,
    managed TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- The outbox. Triggers on the directory's tables write a row in the transaction of every change
-- to a person (users), their departments (user_links) or a department, whoever makes it (a sync,
-- the admin API, config apply), but only for an enterprise with an enabled target that pushes
-- automatically: for the others a trigger costs one primary-key probe of provision_targets.
-- A row names the object, not the change: the pusher reads the object as it is now.
CREATE TABLE provision_outbox (
    id BIGSERIAL PRIMARY KEY,
    enterprise_id TEXT NOT NULL,
    object_type TEXT NOT NULL,
    object_key TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts BIGINT NOT NULL DEFAULT 0,
    next_at BIGINT NOT NULL DEFAULT 0,
    claimed_until BIGINT NOT NULL DEFAULT 0,
    claim TEXT NOT NULL DEFAULT '',
    errcode BIGINT NOT NULL DEFAULT 0,
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
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (enterprise_id, object_type, local_key)
);
CREATE INDEX provision_objects_remote ON provision_objects (enterprise_id, object_type, remote_id);

CREATE TABLE provision_tasks (
    id TEXT PRIMARY KEY,
    enterprise_id TEXT NOT NULL,
    trigger_ TEXT NOT NULL,
    status TEXT NOT NULL,
    dry_run BIGINT NOT NULL,
    counts TEXT NOT NULL,
    reason TEXT NOT NULL,
    calls BIGINT NOT NULL DEFAULT 0,
    started_at BIGINT NOT NULL,
    finished_at BIGINT NOT NULL
);
CREATE INDEX provision_tasks_ent ON provision_tasks (enterprise_id, started_at);

CREATE TABLE provision_records (
    id BIGSERIAL PRIMARY KEY,
    enterprise_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    object_type TEXT NOT NULL,
    local_key TEXT NOT NULL,
    remote_id TEXT NOT NULL,
    action TEXT NOT NULL,
    local TEXT NOT NULL,
    before_ TEXT NOT NULL,
    after_ TEXT NOT NULL,
    errcode BIGINT NOT NULL,
    error TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX provision_records_ent ON provision_records (enterprise_id, id);
CREATE INDEX provision_records_task ON provision_records (task_id, id);

-- +goose StatementBegin
CREATE FUNCTION provision_user_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r RECORD;
BEGIN
    IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
    IF EXISTS (SELECT 1 FROM provision_targets t WHERE t.enterprise_id = r.enterprise_id AND t.enabled = 1 AND t.auto_push = 1) THEN
        INSERT INTO provision_outbox (enterprise_id, object_type, object_key, created_at) VALUES (r.enterprise_id, 'user', r.id, (extract(epoch from clock_timestamp()) * 1000)::bigint);
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION provision_link_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r RECORD;
BEGIN
    IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
    IF EXISTS (SELECT 1 FROM provision_targets t WHERE t.enterprise_id = r.enterprise_id AND t.enabled = 1 AND t.auto_push = 1) THEN
        INSERT INTO provision_outbox (enterprise_id, object_type, object_key, created_at) VALUES (r.enterprise_id, 'user', r.user_id, (extract(epoch from clock_timestamp()) * 1000)::bigint);
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION provision_dept_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r RECORD;
BEGIN
    IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
    IF EXISTS (SELECT 1 FROM provision_targets t WHERE t.enterprise_id = r.enterprise_id AND t.enabled = 1 AND t.auto_push = 1) THEN
        INSERT INTO provision_outbox (enterprise_id, object_type, object_key, created_at) VALUES (r.enterprise_id, 'department', r.source_id || '/' || r.upstream_id, (extract(epoch from clock_timestamp()) * 1000)::bigint);
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER provision_users_change AFTER INSERT OR DELETE ON users FOR EACH ROW
EXECUTE FUNCTION provision_user_changed();

CREATE TRIGGER provision_users_update AFTER UPDATE ON users FOR EACH ROW
WHEN (OLD.username IS DISTINCT FROM NEW.username OR OLD.name IS DISTINCT FROM NEW.name OR OLD.email IS DISTINCT FROM NEW.email OR OLD.mobile IS DISTINCT FROM NEW.mobile OR OLD.status IS DISTINCT FROM NEW.status OR OLD.attributes IS DISTINCT FROM NEW.attributes)
EXECUTE FUNCTION provision_user_changed();

CREATE TRIGGER provision_links_change AFTER INSERT OR DELETE ON user_links FOR EACH ROW
EXECUTE FUNCTION provision_link_changed();

CREATE TRIGGER provision_links_update AFTER UPDATE ON user_links FOR EACH ROW
WHEN (OLD.departments IS DISTINCT FROM NEW.departments OR OLD.user_id IS DISTINCT FROM NEW.user_id)
EXECUTE FUNCTION provision_link_changed();

CREATE TRIGGER provision_depts_change AFTER INSERT OR DELETE ON departments FOR EACH ROW
EXECUTE FUNCTION provision_dept_changed();

CREATE TRIGGER provision_depts_update AFTER UPDATE ON departments FOR EACH ROW
WHEN (OLD.parent_id IS DISTINCT FROM NEW.parent_id OR OLD.name IS DISTINCT FROM NEW.name OR OLD.sort_order IS DISTINCT FROM NEW.sort_order)
EXECUTE FUNCTION provision_dept_changed();

-- +goose Down
DROP TRIGGER provision_depts_update ON departments;
DROP TRIGGER provision_depts_change ON departments;
DROP TRIGGER provision_links_update ON user_links;
DROP TRIGGER provision_links_change ON user_links;
DROP TRIGGER provision_users_update ON users;
DROP TRIGGER provision_users_change ON users;
DROP FUNCTION provision_dept_changed();
DROP FUNCTION provision_link_changed();
DROP FUNCTION provision_user_changed();

DROP TABLE provision_records;
DROP TABLE provision_tasks;
DROP TABLE provision_objects;
DROP TABLE provision_outbox;
DROP TABLE provision_targets;
