-- slipway: foreign_keys off
-- Slipway store, schema version 17: environments, promotion and suspended pipelines.
--
-- A promotion run (trigger promote) deploys what an earlier run deployed to one of the
-- pipeline's environments to the next; the runs table is rebuilt to allow the trigger (as in
-- version 9). A revision records the environment it deployed to, so "what is deployed
-- where" is a query. Versions 13 to 16 are left to other changes of this release.

ALTER TABLE revisions ADD COLUMN environment TEXT NOT NULL DEFAULT '';

-- A suspended pipeline starts no runs from pushes or schedules, and its drift is reported,
-- not corrected, until it is resumed; who suspended it, when and why are kept with it.
ALTER TABLE pipelines ADD COLUMN suspended_at INTEGER;
ALTER TABLE pipelines ADD COLUMN suspended_by TEXT NOT NULL DEFAULT '';
ALTER TABLE pipelines ADD COLUMN suspended_reason TEXT NOT NULL DEFAULT '';
CREATE INDEX revisions_environment ON revisions (pipeline_id, environment, build_id);

CREATE TABLE runs_new (
    id              INTEGER PRIMARY KEY,
    pipeline_id     INTEGER NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    build_id        INTEGER NOT NULL CHECK (build_id > 0),
    commit_sha      TEXT    NOT NULL DEFAULT '',
    branch          TEXT    NOT NULL DEFAULT '',
    tag             TEXT    NOT NULL DEFAULT '',
    trigger_kind    TEXT    NOT NULL
        CHECK (trigger_kind IN ('manual', 'push', 'cron', 'pull_request', 'rollback', 'promote')),
    parent_build_id INTEGER,
    status          TEXT    NOT NULL
        CHECK (status IN ('queued', 'running', 'awaiting_approval', 'succeeded', 'failed', 'cancelled',
                          'superseded', 'timed_out', 'approval_timed_out', 'awaiting_window')),
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
