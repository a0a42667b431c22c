-- slipway: foreign_keys off
-- Slipway store, schema version 20: interrupted runs and their retries.
--
-- A run whose holder (the process running it) stopped beating ends `interrupted`, no longer
-- failed; a pipeline with retryInterrupted starts it again, at the same commit, as a run
-- with trigger `retry` whose parent is the interrupted run. The runs table is rebuilt to
-- allow both (as in versions 9 and 17).
--
-- Each interrupted run has one row in run_interruptions: the holder that was running it,
-- the tasks it was running, and what became of it. `outcome` starts pending; the
-- transaction that creates the retry run sets it to retried (naming the retry), so however
-- many replicas sweep at once a run is retried once at most; a pipeline without
-- retryInterrupted sets it to not_retried.

CREATE TABLE runs_new (
    id              INTEGER PRIMARY KEY,
    pipeline_id     INTEGER NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    build_id        INTEGER NOT NULL CHECK (build_id > 0),
    commit_sha      TEXT    NOT NULL DEFAULT '',
    branch          TEXT    NOT NULL DEFAULT '',
    tag             TEXT    NOT NULL DEFAULT '',
    trigger_kind    TEXT    NOT NULL
        CHECK (trigger_kind IN ('manual', 'push', 'cron', 'pull_request', 'rollback', 'promote', 'retry')),
    parent_build_id INTEGER,
    status          TEXT    NOT NULL
        CHECK (status IN ('queued', 'running', 'awaiting_approval', 'succeeded', 'failed', 'cancelled',
                          'superseded', 'timed_out', 'approval_timed_out', 'awaiting_window', 'interrupted')),
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

CREATE TABLE run_interruptions (
    run_id         INTEGER PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
    holder         TEXT    NOT NULL,
    tasks          TEXT    NOT NULL DEFAULT '[]', -- JSON list of the tasks that were running
    interrupted_at INTEGER NOT NULL,
    outcome        TEXT    NOT NULL DEFAULT 'pending' CHECK (outcome IN ('pending', 'retried', 'not_retried')),
    retry_build_id INTEGER NOT NULL DEFAULT 0, -- the retry run, once retried
    decided_at     INTEGER NOT NULL DEFAULT 0  -- 0 while pending
);
CREATE INDEX run_interruptions_pending ON run_interruptions (run_id) WHERE outcome = 'pending';
