-- Slipway store, schema version 19: webhook hints handed between replicas.
--
-- With several replicas (ha in slipway.yaml) any replica accepts a repository's webhook, but
-- only the replica owning the repository watches it. The others write the hint here; the
-- owner takes (reads and deletes) its repositories' hints when woken by the store's change
-- relay, on each ownership round, and when it takes a repository over.

CREATE TABLE repository_hints (
    id          INTEGER PRIMARY KEY,
    repository  TEXT    NOT NULL,
    delivery_id TEXT    NOT NULL DEFAULT '',
    branch      TEXT    NOT NULL DEFAULT '',
    commit_sha  TEXT    NOT NULL DEFAULT '',
    tag         TEXT    NOT NULL DEFAULT '',
    resumed     TEXT    NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL
);
CREATE INDEX repository_hints_repository ON repository_hints (repository, id);
