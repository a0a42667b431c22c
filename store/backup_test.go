package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"testing"
)

// A backup taken while another handle keeps creating runs is one consistent snapshot (the
// counter and the runs agree); restored into an empty store of the engine under test it
// holds what the backup holds, reads back with the same keys, and carries on: the next
// BUILD_ID follows, the revisions the drift watches start from are there.
func TestBackupOnlineAndRestore(t *testing.T) {
	ctx := testCtx(t)
	kr := keyring(t, newKey(t))
	src, loc := openTest(t, WithKeyring(kr), WithLogLineCap(3), WithNotifications())
	populate(t, src)
	// A run of a process that still beats (populate's holder h1, for an hour) when the
	// backup is taken.
	held, err := src.CreateRun(ctx, NewRun{Pipeline: testPipeline, Trigger: TriggerPush, Holder: "h1"})
	if err != nil {
		t.Fatal(err)
	}
	if stale, err := src.MarkStaleRuns(ctx); err != nil || slices.ContainsFunc(stale, func(r Run) bool { return r.BuildID == held.BuildID }) {
		t.Fatalf("the live holder's run was marked stale on the source: %v", err)
	}
	busy := openAt(t, loc, WithKeyring(kr))

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the daemon, writing on while the backup runs
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := busy.CreateRun(context.Background(), NewRun{Pipeline: testPipeline, Trigger: TriggerPush}); err != nil {
				t.Errorf("write beside the backup: %v", err)
				return
			}
		}
	}()
	path := filepath.Join(t.TempDir(), "backup.db")
	_, err = Backup(ctx, src, path)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if info, err := os.Stat(path); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v, %v; want mode 0600", info, err)
	}
	if _, err := Backup(ctx, src, path); err == nil {
		t.Fatal("a backup over an existing file succeeded")
	}

	// Restore from a copy of the file: the test opens the backup itself afterwards.
	dst, dstLoc := openTest(t)
	if _, err := Restore(ctx, path, dst); err != nil {
		t.Fatal(err)
	}
	if _, err := Restore(ctx, path, dst); !errors.Is(err, ErrDestinationNotEmpty) {
		t.Fatalf("a restore into a store holding data: %v; want ErrDestinationNotEmpty", err)
	}
	backup := openAt(t, path)
	checkCopied(t, backup, dst, CopyResult{}, "holders", "pipeline_claims")
	var holders int
	if err := dst.reader.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM holders) + (SELECT COUNT(*) FROM pipeline_claims)`).Scan(&holders); err != nil || holders != 0 {
		t.Fatalf("the restored store names %d holders and claims (%v); want none: no process of the backup runs on it", holders, err)
	}
	_ = dst.Close()

	restored := openAt(t, dstLoc, WithKeyring(kr))
	p, err := restored.GetPipeline(ctx, testPipeline)
	if err != nil {
		t.Fatal(err)
	}
	runs, err := restored.ListRuns(ctx, testPipeline, 0)
	if err != nil || int64(len(runs)) != p.LastBuildID {
		t.Fatalf("the backup holds %d runs and counter %d (%v): not one snapshot", len(runs), p.LastBuildID, err)
	}
	if r := mustRun(t, restored, testPipeline); r.BuildID != p.LastBuildID+1 {
		t.Fatalf("first run after the restore: BUILD_ID %d, want %d", r.BuildID, p.LastBuildID+1)
	}
	readSecret(t, restored, 5)
	// The daemon starting on the restored store fails what the backup caught unfinished,
	// the run of the process that was alive then included.
	stale, err := restored.MarkStaleRuns(ctx)
	if err != nil || !slices.ContainsFunc(stale, func(r Run) bool { return r.BuildID == held.BuildID }) {
		t.Fatalf("run %d of a process of the backup not marked interrupted at start (%v)", held.BuildID, err)
	}
	want, err := src.CurrentRevisions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got, err := restored.CurrentRevisions(ctx)
	if err != nil || len(got) == 0 || !reflect.DeepEqual(got, want) {
		t.Fatalf("current revisions after the restore (what drift watches start from):\n got %+v (%v)\nwant %+v", got, err, want)
	}
}
