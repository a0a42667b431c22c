-- Slipway store, schema version 6: one run per pipeline across processes.
--
-- Every process that runs pipelines (a daemon, a replica, the CLI's `slipway run` or
-- `rollback`) is a holder with a heartbeat. A pipeline's claim names the holder running it;
-- a claim whose holder stopped beating is free again. Runs record the holder that queued
-- them, so a starting daemon fails only the unfinished runs of holders that are gone.

CREATE TABLE holders (
    holder      TEXT    PRIMARY KEY,
    description TEXT    NOT NULL DEFAULT '',
    expires_at  INTEGER NOT NULL
);

CREATE TABLE pipeline_claims (
    pipeline_id INTEGER PRIMARY KEY REFERENCES pipelines (id) ON DELETE CASCADE,
    holder      TEXT    NOT NULL,
    build_id    INTEGER NOT NULL,
    claimed_at  INTEGER NOT NULL
);

ALTER TABLE runs ADD COLUMN holder TEXT NOT NULL DEFAULT '';
