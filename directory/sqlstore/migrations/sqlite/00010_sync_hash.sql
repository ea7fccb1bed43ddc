-- +goose Up
-- The fingerprint a sync wrote with a link (dirsync): what the upstream said, mapped, and the
-- user's updated_at after that write. A later sync whose upstream fingerprint matches, of a user
-- nobody has written since, has nothing to compare: the no-change path reads only this column
-- (SourceLinkStates) instead of every user and link. Empty when something else wrote the link.
ALTER TABLE user_links ADD COLUMN sync_hash TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE user_links DROP COLUMN sync_hash;
