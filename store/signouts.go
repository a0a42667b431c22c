package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// SignOut records that the web console session with this nonce was signed out; it stays
// refused until expires, when it would have ended anyway. Sign-outs that have expired are
// forgotten in the same transaction, so the table holds only live ones.
func (s *DB) SignOut(ctx context.Context, nonce string, expires time.Time) error {
	if nonce == "" {
		return errors.New("sign out: the session has no nonce")
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM ui_signouts WHERE expires_at <= $1`, s.now()); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `
			INSERT INTO ui_signouts (nonce, expires_at) VALUES ($1, $2)
			ON CONFLICT (nonce) DO NOTHING`, nonce, toMicros(expires))
		return err
	})
	if err != nil {
		return fmt.Errorf("sign out: %w", err)
	}
	return nil
}

// SignedOut says whether the session with this nonce was signed out.
func (s *DB) SignedOut(ctx context.Context, nonce string) (bool, error) {
	var n int
	// One statement, asked on every signed-in request: no transaction around it.
	if err := s.reader.QueryRowContext(ctx, `SELECT COUNT(*) FROM ui_signouts WHERE nonce = $1`, nonce).Scan(&n); err != nil {
		return false, fmt.Errorf("session signed out: %w", err)
	}
	return n > 0, nil
}
