-- Slipway store on PostgreSQL, schema version 9: runs that wait for an approval (as
-- migrations/sqlite/0009, which rebuilds the table; here the CHECK is replaced).
ALTER TABLE runs DROP CONSTRAINT runs_status_values;
ALTER TABLE runs ADD CONSTRAINT runs_status_values
    CHECK (status IN ('queued', 'running', 'awaiting_approval', 'succeeded', 'failed', 'cancelled',
                      'superseded', 'timed_out', 'approval_timed_out'));
