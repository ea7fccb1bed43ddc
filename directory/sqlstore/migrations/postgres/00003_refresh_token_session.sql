-- +goose Up
-- A refresh token remembers the identity source and the SSO session (sid) of the login that
-- began its grant: the userinfo `idp` claim and back-channel logout need them after a refresh.
ALTER TABLE refresh_tokens ADD COLUMN source_id TEXT NOT NULL DEFAULT '';
ALTER TABLE refresh_tokens ADD COLUMN session_id TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE refresh_tokens DROP COLUMN session_id;
ALTER TABLE refresh_tokens DROP COLUMN source_id;
