-- Slipway store, schema version 14: the tags each repository's watcher has dealt with.
--
-- A tag runs the pipelines whose triggers.tags match it once, at the commit it pointed at
-- then. The watcher records each tag it has seen (run, matched nothing, or present when it
-- first looked at the repository: a baseline, never run), so a webhook and a poll of the
-- same tag run it once, a restart runs nothing again, and a tag moved to another commit or
-- deleted afterwards is noticed and recorded instead of being run again.

CREATE TABLE tag_refs (
    repository TEXT    NOT NULL CHECK (repository <> ''),
    tag        TEXT    NOT NULL CHECK (tag <> ''),
    commit_sha TEXT    NOT NULL,                          -- where the tag points now; '' once deleted
    state      TEXT    NOT NULL
        CHECK (state IN ('baseline', 'handled', 'moved', 'deleted')),
    updated_at INTEGER NOT NULL,                          -- unix microseconds, UTC
    PRIMARY KEY (repository, tag)
);

-- A repository's row here means its tags have been looked at once: tags seen after that are
-- new, and run.
CREATE TABLE tag_scans (
    repository TEXT    PRIMARY KEY CHECK (repository <> ''),
    first_at   INTEGER NOT NULL
);
