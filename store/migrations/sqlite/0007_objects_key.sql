-- Slipway store, schema version 7: revision payloads encrypted at rest.
--
-- objects_key is the id of the key that encrypted revisions.objects (objects_encoding
-- 'zstd+aes-256-gcm'); '' for payloads kept in plaintext (objects_encoding 'zstd', rows
-- written before version 7), which the store encrypts when it is next opened with a key.
-- The index lets opening check cheaply that every key in use is configured, and lets a
-- re-encryption find the rows still sealed with an old key.

ALTER TABLE revisions ADD COLUMN objects_key TEXT NOT NULL DEFAULT '';

CREATE INDEX revisions_by_key ON revisions (objects_key);
