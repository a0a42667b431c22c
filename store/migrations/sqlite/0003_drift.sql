-- Slipway store, schema version 3: drift detection.
--
-- drift_policy is the deploy task's drift settings as JSON ({"mode":..., "ignore":[...]}),
-- recorded with the revision so the daemon knows how to treat an object without reading
-- the pipeline file again; '' (rows written before version 3) means the default, correct.
--
-- drift_events records every out-of-band change the daemon saw on an object a current
-- revision applied, and what it did about it: report only, or re-apply (correct).

ALTER TABLE revisions ADD COLUMN drift_policy TEXT NOT NULL DEFAULT '';

CREATE TABLE drift_events (
    id          INTEGER PRIMARY KEY,
    pipeline_id INTEGER NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    build_id    INTEGER NOT NULL,
    task        TEXT    NOT NULL,
    cluster     TEXT    NOT NULL,
    api_group   TEXT    NOT NULL,
    api_version TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    namespace   TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    action      TEXT    NOT NULL, -- reported, corrected or correction-failed
    gone        INTEGER NOT NULL, -- 1: the object was deleted
    patch       TEXT    NOT NULL, -- RFC 6902 patch from live to desired, Secrets masked
    manager     TEXT    NOT NULL, -- field manager of the change, '' when unknown
    changed_at  INTEGER,          -- when that manager changed the object, if known
    detected_at INTEGER NOT NULL,
    error       TEXT    NOT NULL DEFAULT ''
);

CREATE INDEX drift_events_by_pipeline ON drift_events (pipeline_id, id);
