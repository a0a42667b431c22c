package sources

import (
	"context"
	"os"
	"testing"
)

// A commit described once is described again without reading its mirror, even after the
// mirror fetched more and long after: a thousand re-runs of the repositories' heads through
// the API would otherwise each open a mirror. Moved away, the mirror cannot be read, so an
// answer can only come from what Commit remembered.
func TestCommitRemembersDescriptionsAcrossFetches(t *testing.T) {
	ctx := context.Background()
	o := newOrigin(t)
	first := o.commit()
	repo := Repo{Name: "described", URL: "file://" + o.dir}
	m, err := New(Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Sync(ctx, repo, "master"); err != nil {
		t.Fatal(err)
	}
	want, err := m.Commit(ctx, repo, first)
	if err != nil {
		t.Fatal(err)
	}
	second := o.commit()
	if res, err := m.Sync(ctx, repo, "master"); err != nil || res.Commit != second || !res.Fetched {
		t.Fatalf("sync: %+v, %v", res, err)
	}
	if err := os.Rename(m.dir(repo), m.dir(repo)+".away"); err != nil {
		t.Fatal(err)
	}
	if got, err := m.Commit(ctx, repo, first); err != nil || got != want {
		t.Fatalf("Commit after a fetch, mirror moved away = %+v, %v; want %+v from memory", got, err, want)
	}
	if _, err := m.Commit(ctx, repo, second); err == nil {
		t.Fatal("a commit never described was answered without its mirror")
	}
}
