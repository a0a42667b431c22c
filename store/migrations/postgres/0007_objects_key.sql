-- Slipway store on PostgreSQL, schema version 7: as migrations/sqlite/0007.
ALTER TABLE revisions ADD COLUMN objects_key TEXT NOT NULL DEFAULT '';

CREATE INDEX revisions_by_key ON revisions (objects_key);
