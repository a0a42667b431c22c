-- Slipway store on PostgreSQL, schema version 2: as migrations/sqlite/0002.
ALTER TABLE revision_objects ADD COLUMN desired_digest TEXT NOT NULL DEFAULT '';
ALTER TABLE revision_objects ADD COLUMN applied_fingerprint TEXT NOT NULL DEFAULT '';
