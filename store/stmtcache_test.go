package store

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
)

// The statements a connection keeps prepared give the same answers as fresh ones, also
// when a statement runs again while its own rows are still open, and when it falls out of
// the cache then.
func TestCachedStatementsReusedSafely(t *testing.T) {
	ctx := context.Background()
	db := openSQLiteDB(filepath.Join(t.TempDir(), "cache.db"))
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, `CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)`); err != nil {
		t.Fatal(err)
	}
	const insert = `INSERT INTO t (id, v) VALUES ($1, $2)`
	for i := 1; i <= 3; i++ {
		if _, err := db.ExecContext(ctx, insert, i, fmt.Sprint("v", i)); err != nil {
			t.Fatal(err)
		}
	}
	const byID = `SELECT v FROM t WHERE id >= $1 ORDER BY id`
	// In one transaction, as the store's writes run: every statement below on its
	// connection, sharing its cache.
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	rows, err := tx.QueryContext(ctx, byID, 1)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		// The same statement while its rows are open; then enough others to push it out.
		var inner string
		if err := tx.QueryRowContext(ctx, byID, 3).Scan(&inner); err != nil || inner != "v3" {
			t.Fatalf("the statement again while its rows are open: %q, %v", inner, err)
		}
		for k := 0; k < stmtCacheSize+1; k++ {
			var n int
			if err := tx.QueryRowContext(ctx, fmt.Sprintf(`SELECT %d`, k)).Scan(&n); err != nil || n != k {
				t.Fatalf("statement %d: %d, %v", k, n, err)
			}
		}
		got = append(got, v+"/"+inner)
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[v1/v3 v2/v3 v3/v3]" {
		t.Fatalf("rows read beside the reuse: %v", got)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	// Evicted and used again: prepared anew, same answers; bad SQL still reports its error.
	var v string
	if err := db.QueryRowContext(ctx, byID, 2).Scan(&v); err != nil || v != "v2" {
		t.Fatalf("after eviction: %q, %v", v, err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO nope VALUES (1)`); err == nil {
		t.Fatal("a statement on a missing table ran")
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM t`).Scan(&n); err != nil || n != 3 {
		t.Fatalf("count: %d, %v", n, err)
	}
}
