package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// copyTables is every table Copy moves, parents before the tables whose foreign keys
// point at them. schema_migrations is not among them: the destination records its own
// engine's migrations. A migration that adds a table must add it here; TestCopyKnowsEveryTable
// fails until it does, and Copy refuses a source holding a table it does not know.
var copyTables = []string{
	"pipelines", "runs", "run_interruptions", "tasks", "log_lines", "log_counts", "revisions", "revision_objects",
	"drift_events", "webhook_deliveries", "pull_request_events", "schedule_fires", "branch_heads",
	"holders", "pipeline_claims", "audit_log", "pushed_tags", "tag_refs", "tag_scans",
	"notification_events", "notification_deliveries", "ui_signouts", "repository_hints", "run_requests",
}

// copyParams bounds the parameters of one INSERT (SQLite allows 32766, PostgreSQL 65535).
const copyParams = 8000

// CopyResult says how many rows Copy moved, per table.
type CopyResult struct {
	Tables []CopiedTable
}

// CopiedTable is one table's count.
type CopiedTable struct {
	Name string
	Rows int64
}

// ErrDestinationNotEmpty is returned by Copy when the destination already holds data.
var ErrDestinationNotEmpty = errors.New("the destination store is not empty")

// Copy copies everything from one store into another, empty one (of either engine):
// every table of the schema, row ids included, so BUILD_ID counters, log cursors and
// audit entries continue where they were. It reads one snapshot of the source and writes
// the destination in one transaction: the destination ends with the whole copy or with
// nothing. Revision payloads are copied as they are stored, encrypted ones still
// encrypted: the destination needs the same storeKeyFiles. Writers to the source after
// the snapshot are not copied; stop the daemon first.
func Copy(ctx context.Context, from, to *DB) (CopyResult, error) {
	return copyStore(ctx, from, to, nil)
}

// copyStore is Copy, running after (when not nil) in the destination's transaction last.
func copyStore(ctx context.Context, from, to *DB, after func(tx *sql.Tx) error) (CopyResult, error) {
	var res CopyResult
	if err := sameSchema(ctx, from, to); err != nil {
		return res, fmt.Errorf("copy store: %w", err)
	}
	err := from.read(ctx, func(src *sql.Tx) error {
		if err := knowsEveryTable(ctx, from, src); err != nil {
			return err
		}
		return to.write(ctx, func(dst *sql.Tx) error {
			res = CopyResult{}
			for _, table := range copyTables {
				var n int64
				if err := dst.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+table).Scan(&n); err != nil {
					return err
				}
				if n > 0 {
					return fmt.Errorf("%w: table %s holds %d rows", ErrDestinationNotEmpty, table, n)
				}
			}
			for _, table := range copyTables {
				n, err := copyTable(ctx, src, dst, table)
				if err != nil {
					return fmt.Errorf("table %s: %w", table, err)
				}
				res.Tables = append(res.Tables, CopiedTable{Name: table, Rows: n})
			}
			if err := to.dialect.afterCopy(ctx, dst, copyTables); err != nil {
				return err
			}
			if after != nil {
				return after(dst)
			}
			return nil
		})
	})
	if err != nil {
		return CopyResult{}, fmt.Errorf("copy store: %w", err)
	}
	return res, nil
}

// sameSchema refuses stores at different schema versions (an older binary migrated one).
func sameSchema(ctx context.Context, a, b *DB) error {
	var va, vb sql.NullInt64
	if err := a.reader.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&va); err != nil {
		return fmt.Errorf("read the source's schema version: %w", err)
	}
	if err := b.reader.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&vb); err != nil {
		return fmt.Errorf("read the destination's schema version: %w", err)
	}
	if va != vb {
		return fmt.Errorf("the source's schema is version %d, the destination's %d", va.Int64, vb.Int64)
	}
	return nil
}

// knowsEveryTable refuses a source with a table copyTables lacks, which Copy would
// silently leave behind.
func knowsEveryTable(ctx context.Context, s *DB, tx *sql.Tx) error {
	tables, err := s.dialect.tables(ctx, tx)
	if err != nil {
		return fmt.Errorf("list the source's tables: %w", err)
	}
	for _, t := range tables {
		if t != "schema_migrations" && !slices.Contains(copyTables, t) {
			return fmt.Errorf("the source has a table %s this slipway does not know how to copy", t)
		}
	}
	return nil
}

func copyTable(ctx context.Context, src, dst *sql.Tx, table string) (int64, error) {
	// The destination's column order and types; the source is read in that order.
	probe, err := dst.QueryContext(ctx, `SELECT * FROM `+table+` WHERE 1 = 0`)
	if err != nil {
		return 0, err
	}
	types, err := probe.ColumnTypes()
	probe.Close()
	if err != nil {
		return 0, err
	}
	cols := make([]string, len(types))
	boolean := make([]bool, len(types))
	for i, ct := range types {
		cols[i] = ct.Name()
		boolean[i] = strings.EqualFold(ct.DatabaseTypeName(), "BOOL") || strings.EqualFold(ct.DatabaseTypeName(), "BOOLEAN")
	}
	list := strings.Join(cols, ", ")
	rows, err := src.QueryContext(ctx, `SELECT `+list+` FROM `+table)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	perInsert := max(1, copyParams/len(cols))
	var args []any
	var n, pending int64
	flush := func() error {
		if pending == 0 {
			return nil
		}
		var q strings.Builder
		q.WriteString(`INSERT INTO ` + table + ` (` + list + `) VALUES `)
		for r := range int(pending) {
			if r > 0 {
				q.WriteString(", ")
			}
			q.WriteString("(")
			for c := range cols {
				if c > 0 {
					q.WriteString(", ")
				}
				fmt.Fprintf(&q, "$%d", r*len(cols)+c+1)
			}
			q.WriteString(")")
		}
		_, err := dst.ExecContext(ctx, q.String(), args...)
		args, pending = args[:0], 0
		return err
	}
	for rows.Next() {
		vals, err := scanValues(rows, len(cols))
		if err != nil {
			return n, err
		}
		for i, v := range vals {
			// SQLite keeps booleans as 0 and 1; PostgreSQL's BOOLEAN takes no integer.
			if iv, ok := v.(int64); ok && boolean[i] {
				vals[i] = iv != 0
			}
		}
		args = append(args, vals...)
		pending++
		n++
		if pending == int64(perInsert) {
			if err := flush(); err != nil {
				return n, err
			}
		}
	}
	if err := rows.Err(); err != nil {
		return n, err
	}
	return n, flush()
}

// scanValues reads the current row's n columns as the driver gives them.
func scanValues(rows *sql.Rows, n int) ([]any, error) {
	vals := make([]any, n)
	ptrs := make([]any, n)
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	return vals, rows.Scan(ptrs...)
}
