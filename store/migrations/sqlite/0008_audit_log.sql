-- Slipway store, schema version 8: the audit log.
--
-- One row per action a person or a gate took: trigger, rerun, cancel, rollback, approve,
-- reject and gate decisions, with who (actor), when, on which pipeline and run, and why
-- (reason; evidence as JSON, e.g. a gate's rule, pull request, approvers and heads).
--
-- The log outlives everything it names: pipelines are kept as text, not as a reference,
-- so no cascade removes a row, and the triggers below make the table append-only: no
-- retention, clean-up or hand-written DELETE can shorten it.

CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,             -- unix microseconds, UTC
    actor      TEXT    NOT NULL CHECK (actor <> ''),
    action     TEXT    NOT NULL CHECK (action <> ''),
    repository TEXT    NOT NULL,
    pipeline   TEXT    NOT NULL,
    build_id   INTEGER NOT NULL DEFAULT 0,   -- 0: the action concerns no one run
    reason     TEXT    NOT NULL DEFAULT '',
    evidence   TEXT    NOT NULL DEFAULT ''   -- a JSON object, or ''
);

CREATE INDEX audit_log_by_pipeline ON audit_log (repository, pipeline, id);

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
