-- Slipway store on PostgreSQL, schema version 6: as migrations/sqlite/0006.
CREATE TABLE holders (
    holder      TEXT   PRIMARY KEY,
    description TEXT   NOT NULL DEFAULT '',
    expires_at  BIGINT NOT NULL
);

CREATE TABLE pipeline_claims (
    pipeline_id BIGINT PRIMARY KEY REFERENCES pipelines (id) ON DELETE CASCADE,
    holder      TEXT   NOT NULL,
    build_id    BIGINT NOT NULL,
    claimed_at  BIGINT NOT NULL
);

ALTER TABLE runs ADD COLUMN holder TEXT NOT NULL DEFAULT '';
