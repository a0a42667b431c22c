-- Slipway store, schema version 18: the notification outbox.
--
-- A notification event is written in the same transaction as the change that causes it (a
-- run finished or waits for approval, a drift event was recorded), so none is lost between
-- the change and the queue. The notifier turns each event into one delivery per matching
-- target (dispatched_at set in the same transaction) and sends those with retries; a
-- delivery's row says whether it was sent, so a sent one is never sent again.

CREATE TABLE notification_events (
    id             INTEGER PRIMARY KEY,
    kind           TEXT    NOT NULL CHECK (kind IN ('run', 'drift')),
    pipeline_id    INTEGER NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    build_id       INTEGER NOT NULL DEFAULT 0,
    status         TEXT    NOT NULL DEFAULT '',   -- the run's status, or the drift action
    drift_event_id INTEGER,                       -- drift events may be pruned: no foreign key
    created_at     INTEGER NOT NULL,
    dispatched_at  INTEGER
);
CREATE INDEX notification_events_undispatched ON notification_events (id) WHERE dispatched_at IS NULL;

CREATE TABLE notification_deliveries (
    id           INTEGER PRIMARY KEY,
    event_id     INTEGER NOT NULL REFERENCES notification_events (id) ON DELETE CASCADE,
    target       TEXT    NOT NULL,
    event        TEXT    NOT NULL,                -- run.succeeded, drift.detected, ...
    message      TEXT    NOT NULL,                -- JSON, built once so every attempt sends the same
    state        TEXT    NOT NULL CHECK (state IN ('pending', 'sent', 'failed')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_at      INTEGER NOT NULL,                -- due time; while an attempt runs, its lease's end
    last_error   TEXT    NOT NULL DEFAULT '',
    created_at   INTEGER NOT NULL,
    finished_at  INTEGER,
    UNIQUE (event_id, target)
);
CREATE INDEX notification_deliveries_due ON notification_deliveries (target, next_at) WHERE state = 'pending';
