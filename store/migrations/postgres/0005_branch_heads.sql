-- Slipway store on PostgreSQL, schema version 5: as migrations/sqlite/0005.
CREATE TABLE branch_heads (
    repository TEXT   NOT NULL,
    branch     TEXT   NOT NULL,
    head       TEXT   NOT NULL,
    handled_at BIGINT NOT NULL,
    PRIMARY KEY (repository, branch)
);
