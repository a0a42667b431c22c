-- Slipway store on PostgreSQL, schema version 17: environments, promotion and suspended
-- pipelines (as migrations/sqlite/0017, which rebuilds runs; here the CHECKs are replaced).
ALTER TABLE revisions ADD COLUMN environment TEXT NOT NULL DEFAULT '';

ALTER TABLE pipelines ADD COLUMN suspended_at BIGINT;
ALTER TABLE pipelines ADD COLUMN suspended_by TEXT NOT NULL DEFAULT '';
ALTER TABLE pipelines ADD COLUMN suspended_reason TEXT NOT NULL DEFAULT '';
CREATE INDEX revisions_environment ON revisions (pipeline_id, environment, build_id);

ALTER TABLE runs DROP CONSTRAINT runs_trigger_kind;
ALTER TABLE runs ADD CONSTRAINT runs_trigger_kind
    CHECK (trigger_kind IN ('manual', 'push', 'cron', 'pull_request', 'rollback', 'promote'));
ALTER TABLE runs DROP CONSTRAINT runs_status_values;
ALTER TABLE runs ADD CONSTRAINT runs_status_values
    CHECK (status IN ('queued', 'running', 'awaiting_approval', 'succeeded', 'failed', 'cancelled',
                      'superseded', 'timed_out', 'approval_timed_out', 'awaiting_window'));
