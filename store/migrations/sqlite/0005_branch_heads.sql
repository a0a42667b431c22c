-- Slipway store, schema version 5: the head each tracked branch was last handled at.
--
-- A watcher records the branch head it has dealt with (run, skipped on purpose, or found
-- invalid), so a restarted daemon neither runs that head again nor has to guess it from
-- the runs, which late webhooks, manual runs and rollbacks also create.

CREATE TABLE branch_heads (
    repository TEXT    NOT NULL,
    branch     TEXT    NOT NULL,
    head       TEXT    NOT NULL,
    handled_at INTEGER NOT NULL,
    PRIMARY KEY (repository, branch)
);
