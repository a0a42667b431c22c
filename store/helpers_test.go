package store

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

var testPipeline = PipelineRef{Repository: "git.example/team/app", Name: "deploy"}

// openTest opens a fresh store in the test's temporary directory and closes it at the end.
func openTest(t testing.TB, opts ...Option) (*SQLite, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "slipway.db")
	return openAt(t, path, opts...), path
}

func openAt(t testing.TB, path string, opts ...Option) *SQLite {
	t.Helper()
	s, err := OpenSQLite(context.Background(), path, opts...)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func mustRun(t testing.TB, s Store, ref PipelineRef) Run {
	t.Helper()
	r, err := s.CreateRun(testCtx(t), NewRun{Pipeline: ref, Commit: "0123abcd", Branch: "main", Trigger: TriggerPush})
	if err != nil {
		t.Fatalf("create run: %v", err)
	}
	return r
}

// fakeClock is a settable clock for tests that check recorded times.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }
