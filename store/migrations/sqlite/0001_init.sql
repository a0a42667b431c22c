-- Slipway store, schema version 1.
--
-- Times are INTEGER microseconds since the Unix epoch, UTC (NULL = not yet). Integers
-- instead of SQLite's text dates keep ordering and comparison exact and map one to one
-- onto BIGINT in the PostgreSQL schema that will mirror this file.
-- "commit" and "trigger" are SQL keywords, hence commit_sha and trigger_kind.

CREATE TABLE pipelines (
    id            INTEGER PRIMARY KEY,
    repository    TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    -- The BUILD_ID counter: the highest BUILD_ID ever handed out. It only grows, so a
    -- deleted run never gives its number back.
    last_build_id INTEGER NOT NULL DEFAULT 0 CHECK (last_build_id >= 0),
    created_at    INTEGER NOT NULL,
    UNIQUE (repository, name)
);

CREATE TABLE runs (
    id              INTEGER PRIMARY KEY,
    pipeline_id     INTEGER NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    build_id        INTEGER NOT NULL CHECK (build_id > 0),
    commit_sha      TEXT    NOT NULL DEFAULT '',
    branch          TEXT    NOT NULL DEFAULT '',
    tag             TEXT    NOT NULL DEFAULT '',
    trigger_kind    TEXT    NOT NULL
        CHECK (trigger_kind IN ('manual', 'push', 'cron', 'pull_request', 'rollback')),
    parent_build_id INTEGER,
    status          TEXT    NOT NULL
        CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'superseded', 'timed_out')),
    reason          TEXT    NOT NULL DEFAULT '',
    created_at      INTEGER NOT NULL,
    started_at      INTEGER,
    finished_at     INTEGER,
    UNIQUE (pipeline_id, build_id),
    FOREIGN KEY (pipeline_id, parent_build_id) REFERENCES runs (pipeline_id, build_id)
);

-- Stale-run recovery looks for unfinished runs across all pipelines.
CREATE INDEX runs_status ON runs (status);

CREATE TABLE tasks (
    id          INTEGER PRIMARY KEY,
    run_id      INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    stage       TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    type        TEXT    NOT NULL,
    status      TEXT    NOT NULL
        CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'cancelled', 'skipped', 'timed_out')),
    reason      TEXT    NOT NULL DEFAULT '',
    started_at  INTEGER,
    finished_at INTEGER,
    outputs     TEXT    NOT NULL DEFAULT '{}', -- JSON object of string values
    UNIQUE (run_id, name)
);

-- One row per (run, task) stream of log lines: how many were kept and dropped, and which
-- line is the "... N lines dropped" marker, so the cap is enforced without counting rows.
CREATE TABLE log_counts (
    run_id    INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    task      TEXT    NOT NULL, -- '' holds the run's own lines
    kept      INTEGER NOT NULL DEFAULT 0,
    dropped   INTEGER NOT NULL DEFAULT 0,
    marker_id INTEGER,
    PRIMARY KEY (run_id, task)
);

CREATE TABLE log_lines (
    id     INTEGER PRIMARY KEY, -- increasing: the reading order and the follow cursor
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    task   TEXT    NOT NULL,
    at     INTEGER NOT NULL,
    stream TEXT    NOT NULL CHECK (stream IN ('stdout', 'stderr', 'system')),
    text   TEXT    NOT NULL
);

CREATE INDEX log_lines_run ON log_lines (run_id, id);

CREATE TABLE revisions (
    id               INTEGER PRIMARY KEY,
    -- pipeline_id and build_id instead of a run id: "latest healthy revision of this
    -- pipeline's task" is then one index range, without a join.
    pipeline_id      INTEGER NOT NULL,
    build_id         INTEGER NOT NULL,
    task             TEXT    NOT NULL,
    cluster          TEXT    NOT NULL,
    namespace        TEXT    NOT NULL DEFAULT '',
    kind             TEXT    NOT NULL CHECK (kind IN ('yaml', 'chart')),
    status           TEXT    NOT NULL CHECK (status IN ('applied', 'healthy', 'failed', 'rolled_back')),
    reason           TEXT    NOT NULL DEFAULT '',
    objects          BLOB    NOT NULL, -- compressed as objects_encoding says
    objects_encoding TEXT    NOT NULL,
    objects_size     INTEGER NOT NULL, -- uncompressed length
    objects_digest   TEXT    NOT NULL, -- sha256 of the uncompressed bytes
    chart            TEXT,
    chart_version    TEXT,
    values_digest    TEXT,
    release_revision INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    UNIQUE (pipeline_id, build_id, task),
    FOREIGN KEY (pipeline_id, build_id) REFERENCES runs (pipeline_id, build_id) ON DELETE CASCADE
);

CREATE INDEX revisions_latest ON revisions (pipeline_id, task, status, build_id);

-- The inventory: what a revision applied, one row per object, in the caller's order.
-- A table rather than a JSON column so drift and prune can ask "which revision owns
-- this object" with an index later.
CREATE TABLE revision_objects (
    revision_id INTEGER NOT NULL REFERENCES revisions (id) ON DELETE CASCADE,
    position    INTEGER NOT NULL,
    api_group   TEXT    NOT NULL,
    api_version TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    namespace   TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    PRIMARY KEY (revision_id, position)
);
