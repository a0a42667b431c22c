-- Slipway store on PostgreSQL, schema version 20: interrupted runs and their retries (as
-- migrations/sqlite/0020, which rebuilds runs; here the CHECKs are replaced).
ALTER TABLE runs DROP CONSTRAINT runs_trigger_kind;
ALTER TABLE runs ADD CONSTRAINT runs_trigger_kind
    CHECK (trigger_kind IN ('manual', 'push', 'cron', 'pull_request', 'rollback', 'promote', 'retry'));
ALTER TABLE runs DROP CONSTRAINT runs_status_values;
ALTER TABLE runs ADD CONSTRAINT runs_status_values
    CHECK (status IN ('queued', 'running', 'awaiting_approval', 'succeeded', 'failed', 'cancelled',
                      'superseded', 'timed_out', 'approval_timed_out', 'awaiting_window', 'interrupted'));

CREATE TABLE run_interruptions (
    run_id         BIGINT PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
    holder         TEXT   NOT NULL,
    tasks          TEXT   NOT NULL DEFAULT '[]', -- JSON list of the tasks that were running
    interrupted_at BIGINT NOT NULL,
    outcome        TEXT   NOT NULL DEFAULT 'pending' CHECK (outcome IN ('pending', 'retried', 'not_retried')),
    retry_build_id BIGINT NOT NULL DEFAULT 0, -- the retry run, once retried
    decided_at     BIGINT NOT NULL DEFAULT 0  -- 0 while pending
);
CREATE INDEX run_interruptions_pending ON run_interruptions (run_id) WHERE outcome = 'pending';
