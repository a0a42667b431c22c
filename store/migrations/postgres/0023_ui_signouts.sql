-- Slipway store on PostgreSQL, schema version 23: as migrations/sqlite/0023.
CREATE TABLE ui_signouts (
    nonce      TEXT   PRIMARY KEY CHECK (nonce <> ''),
    expires_at BIGINT NOT NULL                           -- unix microseconds, UTC
);
