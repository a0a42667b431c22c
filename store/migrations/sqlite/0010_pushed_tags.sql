-- Slipway store, schema version 10: the image tags each pipeline pushed.
--
-- build-image's keep deletes only tags its own pipeline pushed: a tag of the same image
-- repository pushed by another pipeline, or by hand, is never its to delete. A tag stays
-- recorded until retention deletes it; two pipelines pushing the same tag both record it,
-- and neither deletes it then.

CREATE TABLE pushed_tags (
    pipeline_id INTEGER NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    repository  TEXT    NOT NULL CHECK (repository <> ''),  -- HOST[:PORT]/PATH, no tag
    tag         TEXT    NOT NULL CHECK (tag <> ''),
    build_id    INTEGER NOT NULL,
    pushed_at   INTEGER NOT NULL,                            -- unix microseconds, UTC
    PRIMARY KEY (pipeline_id, repository, tag)
);

CREATE INDEX pushed_tags_by_repository ON pushed_tags (repository, tag);
