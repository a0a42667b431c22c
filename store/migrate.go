package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

// migrationFiles holds one folder of numbered files per engine. The same version number
// is the same schema step on both, so a copy between them (Copy) is well defined.
//
//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrationFiles embed.FS

// migration is one numbered schema change. Files are named NNNN_what.sql; a file, once
// released, never changes: the checksum recorded when it was applied is compared on
// every open, so an edited migration is caught instead of silently diverging.
type migration struct {
	version  int
	name     string
	sql      string
	checksum string
}

func loadMigrations(fsys fs.FS, dir string) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		num, _, ok := strings.Cut(e.Name(), "_")
		version, err := strconv.Atoi(num)
		if !ok || err != nil || version <= 0 {
			return nil, fmt.Errorf("migration %s: name must start with a positive number and '_'", e.Name())
		}
		body, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(body)
		ms = append(ms, migration{version: version, name: e.Name(), sql: string(body), checksum: hex.EncodeToString(sum[:])})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i := 1; i < len(ms); i++ {
		if ms[i].version == ms[i-1].version {
			return nil, fmt.Errorf("migrations %s and %s share version %d", ms[i-1].name, ms[i].name, ms[i].version)
		}
	}
	return ms, nil
}

// migrate brings the schema up to date. Each migration runs in its own write
// transaction together with its schema_migrations row, so a crash leaves it either
// applied and recorded or not at all; two processes opening a new file at once
// serialise on the write lock and the second finds the work done.
func (s *DB) migrate(ctx context.Context) error {
	ms, err := loadMigrations(migrationFiles, s.dialect.migrationDir())
	if err != nil {
		return fmt.Errorf("load migrations: %w", err)
	}
	err = s.writeWith(ctx, s.dialect.migrationTx(), func(tx *sql.Tx) error {
		if err := s.dialect.lockMigrations(ctx, tx); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    BIGINT  PRIMARY KEY,
			name       TEXT    NOT NULL,
			checksum   TEXT    NOT NULL,
			applied_at BIGINT  NOT NULL
		)`)
		return err
	})
	if err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	if s.dialect.transactionalDDL() {
		// All pending migrations in one transaction: on an engine whose DDL is
		// transactional each is still applied and recorded or not at all, and a new
		// database is made in one commit instead of one per migration.
		err := s.writeWith(ctx, s.dialect.migrationTx(), func(tx *sql.Tx) error {
			if err := s.dialect.lockMigrations(ctx, tx); err != nil {
				return err
			}
			for _, m := range ms {
				if err := s.applyMigration(ctx, tx, m); err != nil {
					return fmt.Errorf("migration %s: %w", m.name, err)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		return s.checkNoNewerSchema(ctx, ms[len(ms)-1].version)
	}
	for _, m := range ms {
		if err := s.applyMigrationFile(ctx, m); err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
	}
	return s.checkNoNewerSchema(ctx, ms[len(ms)-1].version)
}

// foreignKeysOff is the first line of a migration that rebuilds a table other tables
// refer to: SQLite's foreign keys must be off while the old table is dropped (or its rows
// would cascade away), and can only be switched outside a transaction.
const foreignKeysOff = "-- slipway: foreign_keys off"

func (s *DB) applyMigrationFile(ctx context.Context, m migration) error {
	if !strings.HasPrefix(m.sql, foreignKeysOff+"\n") {
		return s.writeWith(ctx, s.dialect.migrationTx(), func(tx *sql.Tx) error {
			if err := s.dialect.lockMigrations(ctx, tx); err != nil {
				return err
			}
			return s.applyMigration(ctx, tx, m)
		})
	}
	// The writer is one connection, so the pragma holds for the transaction below.
	if _, err := s.writer.ExecContext(ctx, `PRAGMA foreign_keys = OFF`); err != nil {
		return err
	}
	defer func() { _, _ = s.writer.ExecContext(context.WithoutCancel(ctx), `PRAGMA foreign_keys = ON`) }()
	return s.write(ctx, func(tx *sql.Tx) error {
		if err := s.applyMigration(ctx, tx, m); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `PRAGMA foreign_key_check`)
		if err != nil {
			return err
		}
		defer rows.Close()
		if rows.Next() {
			return errors.New("the rebuilt tables break a foreign key; nothing was changed")
		}
		return rows.Err()
	})
}

func (s *DB) applyMigration(ctx context.Context, tx *sql.Tx, m migration) error {
	var checksum string
	err := tx.QueryRowContext(ctx, `SELECT checksum FROM schema_migrations WHERE version = $1`, m.version).Scan(&checksum)
	switch {
	case err == nil:
		if checksum != m.checksum {
			return fmt.Errorf("applied with checksum %s, the embedded file has %s: a released migration was edited", checksum, m.checksum)
		}
		return nil
	case !errors.Is(err, sql.ErrNoRows):
		return err
	}
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx,
		`INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES ($1, $2, $3, $4)`,
		m.version, m.name, m.checksum, s.now())
	return err
}

// checkNoNewerSchema refuses a database a newer Slipway has migrated: this binary would
// not know the meaning of the newer columns and could corrupt them.
func (s *DB) checkNoNewerSchema(ctx context.Context, known int) error {
	var newest sql.NullInt64
	if err := s.writer.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&newest); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if newest.Int64 > int64(known) {
		return fmt.Errorf("database schema version %d is newer than this slipway knows (%d): upgrade slipway", newest.Int64, known)
	}
	return nil
}
