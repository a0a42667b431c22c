-- Slipway store, schema version 12: what a deploy may take over and prune.
--
-- revisions.prune is the deploy task's prune setting when the revision was recorded, so a
-- rollback (automatic or `slipway rollback`) honours `prune: false` without the pipeline
-- file; rows written before version 12 pruned on rollback, and keep doing so (1).
--
-- revision_objects.adopted marks an object that existed without Slipway's owner metadata
-- and was taken over by that revision because its task said `adopt: true` (1), so history
-- shows where an object Slipway did not create came from.

ALTER TABLE revisions ADD COLUMN prune INTEGER NOT NULL DEFAULT 1;

ALTER TABLE revision_objects ADD COLUMN adopted INTEGER NOT NULL DEFAULT 0;

CREATE INDEX revisions_by_cluster ON revisions (pipeline_id, task, cluster, status, build_id);
