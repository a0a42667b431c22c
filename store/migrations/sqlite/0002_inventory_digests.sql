-- Slipway store, schema version 2: what a deploy needs to skip objects nobody changed.
--
-- desired_digest is "sha256:<hex>" of the object as Slipway applied it (owner labels
-- included); applied_fingerprint identifies the live object right after that apply (its
-- UID and the fields Slipway's field manager owned). A later deploy that renders the same
-- digest and finds the same fingerprint on the cluster has nothing to apply. '' (rows
-- written before version 2) never matches, so those objects are applied again once.

ALTER TABLE revision_objects ADD COLUMN desired_digest TEXT NOT NULL DEFAULT '';
ALTER TABLE revision_objects ADD COLUMN applied_fingerprint TEXT NOT NULL DEFAULT '';
