-- Slipway store, schema version 23: web console sessions signed out before they expired.
--
-- A session cookie is valid until it expires unless its nonce is here. In the store, not in
-- a daemon's memory, so a sign-out holds on every replica and after a restart. Rows are
-- deleted once the session would have expired anyway.

CREATE TABLE ui_signouts (
    nonce      TEXT    PRIMARY KEY CHECK (nonce <> ''),
    expires_at INTEGER NOT NULL                           -- unix microseconds, UTC
);
