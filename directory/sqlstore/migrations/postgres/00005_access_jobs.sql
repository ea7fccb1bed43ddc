-- +goose Up
-- The access lifecycle's outbox: a change that ends access (a source closed or deleted, an app
-- disabled or deleted) writes its job in the same transaction; whichever replica claims it ends
-- the sessions and tokens and tells the relying parties, so a crash between the two loses nothing.
CREATE TABLE access_jobs (
    id BIGSERIAL PRIMARY KEY,
    enterprise_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    object TEXT NOT NULL,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    claimed_until BIGINT NOT NULL DEFAULT 0,
    finished_at BIGINT NOT NULL DEFAULT 0,
    result TEXT NOT NULL DEFAULT '',
    error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX access_jobs_pending ON access_jobs (status, id);

-- +goose Down
DROP TABLE access_jobs;
