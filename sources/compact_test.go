package sources

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// A mirror fetched into again and again keeps at most compactAt packs: past that they are
// merged under the mirror's lock, while checkouts of the same mirror go on from this
// process and from another sharing the data dir. Every commit fetched stays readable, a
// shallow mirror included, and git itself finds the mirror sound.
func TestMirrorPacksAreMergedPastTheLimit(t *testing.T) {
	ctx := context.Background()
	o := newOrigin(t)
	for range 5 { // more history than the mirror's depth: it stays shallow
		o.commit()
	}
	first := o.commit()
	g := serveGitHTTP(t, o)
	repo := g.repo("compact")
	data := t.TempDir()
	const limit = 4
	var ms [2]*Mirrors // this process, and another sharing the data dir
	for i := range ms {
		m, err := New(Options{DataDir: data, Depth: 3})
		if err != nil {
			t.Fatal(err)
		}
		m.compactAt = limit
		ms[i] = m
	}
	m := ms[0]
	if _, err := m.Sync(ctx, repo, "master"); err != nil {
		t.Fatal(err)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	checkouts := make([]int, len(ms))
	errs := make([]error, len(ms))
	for i, mm := range ms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				dir, err := os.MkdirTemp(data, "co-")
				if err == nil {
					err = mm.Checkout(ctx, repo, first, dir)
				}
				_ = os.RemoveAll(dir)
				if err != nil {
					errs[i] = err
					return
				}
				checkouts[i]++
			}
		}()
	}
	commits := []string{first}
	most, merges := 0, 0
	prev := packCount(t, m, repo)
	for range 3 * limit {
		c := o.commit()
		if res, err := m.Sync(ctx, repo, "master"); err != nil || res.Commit != c || !res.Fetched {
			t.Fatalf("sync: %+v, %v", res, err)
		}
		commits = append(commits, c)
		n := packCount(t, m, repo)
		most = max(most, n)
		if n < prev {
			merges++
		}
		prev = n
	}
	close(stop)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("checkout alongside the syncs (mirrors %d): %v", i, err)
		}
	}
	if most > limit || merges < 2 {
		t.Fatalf("at most %d packs, merged %d times; want at most %d, merged at least twice", most, merges, limit)
	}
	if checkouts[0] == 0 || checkouts[1] == 0 {
		t.Fatalf("checkouts alongside the syncs: %v, want some from each", checkouts)
	}
	if shallow, err := os.ReadFile(filepath.Join(m.dir(repo), "shallow")); err != nil || len(shallow) == 0 {
		t.Fatalf("the mirror is not shallow (%v): the merge must not need its whole history", err)
	}
	for _, mm := range ms {
		for _, c := range commits {
			if got, err := mm.Commit(ctx, repo, c); err != nil || got.Hash != c {
				t.Fatalf("commit %s after the merges: %+v, %v", c, got, err)
			}
			dir := filepath.Join(t.TempDir(), "co")
			if err := mm.Checkout(ctx, repo, c, dir); err != nil {
				t.Fatalf("checkout %s after the merges: %v", c, err)
			}
			if _, err := os.Stat(filepath.Join(dir, "file.txt")); err != nil {
				t.Fatalf("checkout %s: %v", c, err)
			}
		}
	}
	if out, err := exec.Command("git", "-C", m.dir(repo), "fsck", "--no-progress").CombinedOutput(); err != nil {
		t.Fatalf("git fsck of the merged mirror: %v\n%s", err, out)
	}
	if left, _ := filepath.Glob(filepath.Join(m.dir(repo), "objects", "pack", "tmp_*")); len(left) > 0 {
		t.Fatalf("temporary files left in the mirror's packs: %v", left)
	}
}

func packCount(t *testing.T, m *Mirrors, repo Repo) int {
	t.Helper()
	packs, err := packFiles(m.dir(repo))
	if err != nil {
		t.Fatal(err)
	}
	return len(packs)
}
