-- +goose Up
-- Leases: one runner per singleton job across replicas (the scheduler, the event inbox, sweeps,
-- metadata refreshes). epoch grows on every acquisition, so a holder that lost its lease is told
-- apart from the one that took it over even if both think they hold it: the job checks
-- (holder, epoch) in its own transaction before it commits (directory/lease). expires_at is unix
-- milliseconds; 0 means released.
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    acquired_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);

-- Signing keys, shared by every replica: the private key (PKCS#8 DER) sealed with the master key,
-- the SAML certificate (DER, public) beside it. A retired key stays published until expires_at.
CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    alg TEXT NOT NULL,
    private_key BLOB NOT NULL,
    cert BLOB,
    created_at INTEGER NOT NULL,
    retired_at INTEGER NOT NULL DEFAULT 0,
    expires_at INTEGER NOT NULL DEFAULT 0
);

-- +goose Down
DROP TABLE signing_keys;
DROP TABLE leases;
