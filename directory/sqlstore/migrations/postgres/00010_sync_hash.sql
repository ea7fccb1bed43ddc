-- +goose Up
-- The fingerprint a sync wrote with a link (dirsync): what the upstream said, mapped, and the
-- user's updated_at after that write. A later sync whose upstream fingerprint matches, of a user
-- nobody has written since, has nothing to compare: the no-change path reads only this column
-- (SourceLinkStates) instead of every user and link. Empty when something else wrote the link.
ALTER TABLE user_links ADD COLUMN sync_hash TEXT NOT NULL DEFAULT '';

-- A full sync's upstream user records between its read and its apply (Store.StageUpstream), so
-- that a 100k-user read does not hold them all in memory; the apply's link and record writes take
-- them from here, by the number the read gave each (seq: written and read back in that order, so
-- both are sequential in the table's key). Deleted when the task ends (with it, if a crash left
-- them).
CREATE UNLOGGED TABLE sync_staging (
    task_id TEXT NOT NULL REFERENCES sync_tasks(id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    upstream TEXT NOT NULL,
    PRIMARY KEY (task_id, seq)
);

-- +goose Down
DROP TABLE sync_staging;
ALTER TABLE user_links DROP COLUMN sync_hash;
