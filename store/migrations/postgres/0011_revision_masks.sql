-- Slipway store on PostgreSQL, schema version 11: as migrations/sqlite/0011.
ALTER TABLE revisions ADD COLUMN masks BYTEA;
ALTER TABLE revisions ADD COLUMN masks_size BIGINT NOT NULL DEFAULT 0;
