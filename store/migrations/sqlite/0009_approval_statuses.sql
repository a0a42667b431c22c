-- slipway: foreign_keys off
-- Slipway store, schema version 9: runs that wait for an approval.
--
-- A run whose next stage is behind an approval gate waits in awaiting_approval; one whose
-- gate's timeout runs out ends approval_timed_out. SQLite cannot change a CHECK constraint
-- in place, so the runs table is rebuilt (SQLite's documented twelve-step procedure: the
-- migration runs with foreign keys off, and the foreign key check must come back clean
-- before it commits). Version 8 is left to the audit log.

CREATE TABLE runs_new (
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
        CHECK (status IN ('queued', 'running', 'awaiting_approval', 'succeeded', 'failed', 'cancelled',
                          'superseded', 'timed_out', 'approval_timed_out')),
    reason          TEXT    NOT NULL DEFAULT '',
    created_at      INTEGER NOT NULL,
    started_at      INTEGER,
    finished_at     INTEGER,
    holder          TEXT    NOT NULL DEFAULT '',
    UNIQUE (pipeline_id, build_id),
    FOREIGN KEY (pipeline_id, parent_build_id) REFERENCES runs (pipeline_id, build_id)
);

INSERT INTO runs_new (id, pipeline_id, build_id, commit_sha, branch, tag, trigger_kind, parent_build_id,
                      status, reason, created_at, started_at, finished_at, holder)
SELECT id, pipeline_id, build_id, commit_sha, branch, tag, trigger_kind, parent_build_id,
       status, reason, created_at, started_at, finished_at, holder
FROM runs;

DROP TABLE runs;
ALTER TABLE runs_new RENAME TO runs;
CREATE INDEX runs_status ON runs (status);
