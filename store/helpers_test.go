package store

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/test/testenv"
)

// backendEnv selects the engine the store's tests run on. TestMain runs them on SQLite,
// then runs the same test binary again with backendEnv=postgres, on the PostgreSQL that
// `make env-up` starts: the whole suite holds for both engines.
const backendEnv = "SLIPWAY_STORE_TEST_BACKEND"

func onPostgres() bool { return os.Getenv(backendEnv) == "postgres" }

// runBothBackends is TestMain's (buildid_test.go) run of the tests.
func runBothBackends(m *testing.M) int {
	code := m.Run()
	if onPostgres() {
		return code
	}
	fmt.Println("--- the same tests on PostgreSQL (" + backendEnv + "=postgres)")
	cmd := exec.Command(os.Args[0], os.Args[1:]...)
	cmd.Env = append(os.Environ(), backendEnv+"=postgres")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil && code == 0 {
		code = 1
	}
	return code
}

var testPipeline = PipelineRef{Repository: "git.example/team/app", Name: "deploy"}

// openTest opens a fresh store and closes it at the end: on SQLite a file in the test's
// temporary directory, on PostgreSQL a schema of its own. The second result is where it
// is (a path or a DSN), for openAt and openLoc to open it again.
func openTest(t testing.TB, opts ...Option) (*DB, string) {
	t.Helper()
	loc := freshLoc(t)
	return openAt(t, loc, opts...), loc
}

// freshLoc is where a new, empty store can be made: a file name or an empty schema.
func freshLoc(t testing.TB) string {
	t.Helper()
	if onPostgres() {
		return testenv.PostgresSchema(t)
	}
	return filepath.Join(t.TempDir(), "slipway.db")
}

func openAt(t testing.TB, loc string, opts ...Option) *DB {
	t.Helper()
	s, err := openLoc(context.Background(), loc, opts...)
	if err != nil {
		t.Fatalf("open %s store: %v", backendName(), err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// openLoc opens the store openTest made at loc.
func openLoc(ctx context.Context, loc string, opts ...Option) (*DB, error) {
	if strings.HasPrefix(loc, "postgres://") {
		return OpenPostgres(ctx, loc, opts...)
	}
	return OpenSQLite(ctx, loc, opts...)
}

func backendName() string {
	if onPostgres() {
		return "PostgreSQL"
	}
	return "SQLite"
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
