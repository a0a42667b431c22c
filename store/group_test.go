package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"testing"
)

// Concurrent writes commit together, yet each caller gets its own outcome: a write that
// fails leaves nothing behind and costs the others nothing.
func TestConcurrentWritesKeepTheirOwnOutcome(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	const n = 200
	errBad := errors.New("this write fails after inserting")
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ref := PipelineRef{Repository: "group", Name: fmt.Sprintf("p-%03d", i)}
			errs[i] = s.write(ctx, func(tx *sql.Tx) error {
				if _, err := tx.ExecContext(ctx, `INSERT INTO pipelines (repository, name, created_at) VALUES ($1, $2, $3)`, ref.Repository, ref.Name, s.now()); err != nil {
					return err
				}
				if i%7 == 0 {
					return errBad
				}
				return nil
			})
		}()
	}
	wg.Wait()
	all, err := s.ListPipelines(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, p := range all {
		got[p.Ref.Name] = true
	}
	for i := range n {
		name := fmt.Sprintf("p-%03d", i)
		switch {
		case i%7 == 0 && !errors.Is(errs[i], errBad):
			t.Errorf("write %d: %v, want its own error", i, errs[i])
		case i%7 == 0 && got[name]:
			t.Errorf("write %d failed, yet its row was committed", i)
		case i%7 != 0 && errs[i] != nil:
			t.Errorf("write %d: %v", i, errs[i])
		case i%7 != 0 && !got[name]:
			t.Errorf("write %d succeeded, yet its row is missing", i)
		}
	}
}

// A caller whose context ended before its write started gets that error and writes nothing.
func TestWriteOfAnEndedContextDoesNothing(t *testing.T) {
	s, _ := openTest(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ran := false
	err := s.write(ctx, func(tx *sql.Tx) error { ran = true; return nil })
	if !errors.Is(err, context.Canceled) || ran {
		t.Fatalf("write with an ended context: %v, ran %v", err, ran)
	}
}

// WriteStats counts each caller's write that committed once, and the commits they took: as
// many on PostgreSQL, at most as many on SQLite, where concurrent writes share one.
func TestWriteStatsCountCommittedWrites(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	w0, c0 := s.WriteStats()
	const n = 50
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.write(ctx, func(tx *sql.Tx) error {
				_, err := tx.ExecContext(ctx, `INSERT INTO pipelines (repository, name, created_at) VALUES ($1, $2, $3)`, "stats", fmt.Sprintf("p-%d", i), s.now())
				if err == nil && i%5 == 0 {
					return errors.New("refused")
				}
				return err
			})
			if (err != nil) != (i%5 == 0) {
				t.Errorf("write %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	w1, c1 := s.WriteStats()
	if got := w1 - w0; got != n-n/5 {
		t.Fatalf("%d writes counted, want %d (the refused ones not)", got, n-n/5)
	}
	if commits := c1 - c0; commits == 0 || commits > w1-w0 || onPostgres() && commits != w1-w0 {
		t.Fatalf("%d commits for %d writes", commits, w1-w0)
	}
}
