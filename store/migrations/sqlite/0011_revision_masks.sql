-- Slipway store, schema version 10: the secret values of the run that stored a revision.
--
-- masks is a JSON list of strings, packed like revisions.objects (same encoding and key,
-- objects_encoding and objects_key), so the drift watcher and rollbacks can mask those
-- values wherever they show an object's content. NULL for rows written before version 10
-- and for runs without secrets; masks_size is the unpacked size.

ALTER TABLE revisions ADD COLUMN masks BLOB;
ALTER TABLE revisions ADD COLUMN masks_size INTEGER NOT NULL DEFAULT 0;
