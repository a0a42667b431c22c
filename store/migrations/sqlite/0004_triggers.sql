-- Slipway store, schema version 4: triggers.
--
-- webhook_deliveries remembers each forge delivery id per repository, so a redelivery
-- (the forge's retry, or a person pressing "redeliver") starts nothing a second time.
--
-- pull_request_events records pull request activity from webhooks; the approval gates
-- read it.
--
-- schedule_fires records, per pipeline and cron expression, the last tick that fired (or
-- was deliberately skipped), so a restarted daemon knows which ticks it missed.

CREATE TABLE webhook_deliveries (
    repository  TEXT    NOT NULL,
    delivery_id TEXT    NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (repository, delivery_id)
);

CREATE INDEX webhook_deliveries_by_time ON webhook_deliveries (received_at);

CREATE TABLE pull_request_events (
    id           INTEGER PRIMARY KEY,
    repository   TEXT    NOT NULL,
    number       INTEGER NOT NULL,
    action       TEXT    NOT NULL, -- opened, updated, merged or closed
    title        TEXT    NOT NULL,
    author       TEXT    NOT NULL,
    source_branch TEXT   NOT NULL,
    target_branch TEXT   NOT NULL,
    head_commit  TEXT    NOT NULL,
    merge_commit TEXT    NOT NULL, -- '' unless merged
    delivery_id  TEXT    NOT NULL,
    received_at  INTEGER NOT NULL
);

CREATE INDEX pull_request_events_by_number ON pull_request_events (repository, number, id);
CREATE INDEX pull_request_events_by_merge ON pull_request_events (repository, merge_commit);

CREATE TABLE schedule_fires (
    pipeline_id INTEGER NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    schedule    TEXT    NOT NULL, -- the cron expression with its time zone, as written
    last_tick   INTEGER NOT NULL, -- the tick time (not when it ran), unix microseconds
    PRIMARY KEY (pipeline_id, schedule)
);
