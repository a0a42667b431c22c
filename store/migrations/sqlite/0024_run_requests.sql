-- Slipway store, schema version 24: requests for runs held by another process.
--
-- With several replicas (or `slipway run` beside the daemon) the process that receives a
-- cancel or an approval answer may not be the one running the run. It records the request
-- here, addressed to the run's holder, which takes it (taken_at, once), acts on it with the
-- same checks as a local call and records the outcome. A request nobody took ends with the
-- run: when the run ends, or when the sweeper marks it interrupted.

CREATE TABLE run_requests (
    id          INTEGER PRIMARY KEY,
    run_id      INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    holder      TEXT    NOT NULL,                 -- the run's holder when asked
    kind        TEXT    NOT NULL CHECK (kind IN ('cancel', 'approve', 'reject')),
    actor       TEXT    NOT NULL CHECK (actor <> ''),
    comment     TEXT    NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL,                 -- unix microseconds, UTC
    taken_at    INTEGER NOT NULL DEFAULT 0,       -- 0 until the holder takes it
    finished_at INTEGER NOT NULL DEFAULT 0,       -- 0 until it has an outcome
    outcome     TEXT    NOT NULL DEFAULT '',      -- '' while pending
    detail      TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX run_requests_untaken ON run_requests (holder) WHERE taken_at = 0;
CREATE INDEX run_requests_run ON run_requests (run_id) WHERE finished_at = 0;
