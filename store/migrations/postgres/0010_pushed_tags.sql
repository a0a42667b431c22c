-- Slipway store on PostgreSQL, schema version 10: as migrations/sqlite/0010.
CREATE TABLE pushed_tags (
    pipeline_id BIGINT NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    repository  TEXT   NOT NULL CHECK (repository <> ''),  -- HOST[:PORT]/PATH, no tag
    tag         TEXT   NOT NULL CHECK (tag <> ''),
    build_id    BIGINT NOT NULL,
    pushed_at   BIGINT NOT NULL,                           -- unix microseconds, UTC
    PRIMARY KEY (pipeline_id, repository, tag)
);

CREATE INDEX pushed_tags_by_repository ON pushed_tags (repository, tag);
