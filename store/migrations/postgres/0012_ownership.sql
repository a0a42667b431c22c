-- Slipway store on PostgreSQL, schema version 12: as migrations/sqlite/0012.
ALTER TABLE revisions ADD COLUMN prune BOOLEAN NOT NULL DEFAULT TRUE;

ALTER TABLE revision_objects ADD COLUMN adopted BOOLEAN NOT NULL DEFAULT FALSE;

CREATE INDEX revisions_by_cluster ON revisions (pipeline_id, task, cluster, status, build_id);
