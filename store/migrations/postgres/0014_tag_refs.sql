-- Slipway store on PostgreSQL, schema version 14: as migrations/sqlite/0014.
CREATE TABLE tag_refs (
    repository TEXT   NOT NULL CHECK (repository <> ''),
    tag        TEXT   NOT NULL CHECK (tag <> ''),
    commit_sha TEXT   NOT NULL,                          -- where the tag points now; '' once deleted
    state      TEXT   NOT NULL
        CHECK (state IN ('baseline', 'handled', 'moved', 'deleted')),
    updated_at BIGINT NOT NULL,                          -- unix microseconds, UTC
    PRIMARY KEY (repository, tag)
);

CREATE TABLE tag_scans (
    repository TEXT   PRIMARY KEY CHECK (repository <> ''),
    first_at   BIGINT NOT NULL
);
