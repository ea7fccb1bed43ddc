-- +goose Up
-- The access lifecycle: who owns an object (managed = 'config' when config.yaml declares it, so
-- removing it from the file deletes it), whether leaving a source means leaving the enterprise
-- (authoritative; NULL = the kind's default), and an enabled switch for apps.
ALTER TABLE enterprises ADD COLUMN managed TEXT NOT NULL DEFAULT '';
ALTER TABLE identity_sources ADD COLUMN managed TEXT NOT NULL DEFAULT '';
ALTER TABLE identity_sources ADD COLUMN authoritative BIGINT;
ALTER TABLE users ADD COLUMN managed TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN departed_by TEXT NOT NULL DEFAULT '';
ALTER TABLE oidc_clients ADD COLUMN managed TEXT NOT NULL DEFAULT '';
ALTER TABLE oidc_clients ADD COLUMN disabled BIGINT NOT NULL DEFAULT 0;
ALTER TABLE saml_service_providers ADD COLUMN managed TEXT NOT NULL DEFAULT '';
ALTER TABLE saml_service_providers ADD COLUMN disabled BIGINT NOT NULL DEFAULT 0;
-- Closing a source, deleting a client: revoke their refresh tokens in one statement.
CREATE INDEX refresh_tokens_source ON refresh_tokens (enterprise_id, source_id);
CREATE INDEX refresh_tokens_client ON refresh_tokens (enterprise_id, client_id);

-- +goose Down
DROP INDEX refresh_tokens_client;
DROP INDEX refresh_tokens_source;
ALTER TABLE saml_service_providers DROP COLUMN disabled;
ALTER TABLE saml_service_providers DROP COLUMN managed;
ALTER TABLE oidc_clients DROP COLUMN disabled;
ALTER TABLE oidc_clients DROP COLUMN managed;
ALTER TABLE users DROP COLUMN departed_by;
ALTER TABLE users DROP COLUMN managed;
ALTER TABLE identity_sources DROP COLUMN authoritative;
ALTER TABLE identity_sources DROP COLUMN managed;
ALTER TABLE enterprises DROP COLUMN managed;
