package store

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// checkSequence fails unless ids are exactly 1..want, and the pipeline's runs and
// counter agree.
func checkSequence(t *testing.T, s Store, ref PipelineRef, ids []int64, want int) {
	t.Helper()
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	if len(ids) != want {
		t.Fatalf("got %d BUILD_IDs, want %d", len(ids), want)
	}
	for i, id := range ids {
		if id != int64(i+1) {
			t.Fatalf("BUILD_IDs are not 1..%d without gaps or repeats: position %d holds %d (%v...)", want, i, id, ids[:min(len(ids), i+3)])
		}
	}
	runs, err := s.ListRuns(testCtx(t), ref, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != want || runs[0].BuildID != int64(want) {
		t.Fatalf("store holds %d runs, newest %d; want %d", len(runs), runs[0].BuildID, want)
	}
	p, err := s.GetPipeline(testCtx(t), ref)
	if err != nil || p.LastBuildID != int64(want) {
		t.Fatalf("pipeline counter %d, %v; want %d", p.LastBuildID, err, want)
	}
}

// Two handles opened separately on one file, eight goroutines each, allocate at once.
func TestBuildIDConcurrentHandles(t *testing.T) {
	a, path := openTest(t)
	b := openAt(t, path)
	other := PipelineRef{Repository: testPipeline.Repository, Name: "other"}
	const goroutines, each = 8, 20

	var mu sync.Mutex
	var ids []int64
	var wg sync.WaitGroup
	errs := make(chan error, 2*goroutines)
	for _, s := range []*DB{a, b} {
		for g := 0; g < goroutines; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < each; i++ {
					r, err := s.CreateRun(context.Background(), NewRun{Pipeline: testPipeline, Trigger: TriggerPush})
					if err != nil {
						errs <- err
						return
					}
					// A second pipeline interleaved: its counter must not disturb ours.
					if i%5 == 0 {
						if _, err := s.CreateRun(context.Background(), NewRun{Pipeline: other, Trigger: TriggerCron}); err != nil {
							errs <- err
							return
						}
					}
					mu.Lock()
					ids = append(ids, r.BuildID)
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent allocation failed: %v", err)
	}
	checkSequence(t, a, testPipeline, ids, 2*goroutines*each)
	otherPipeline, err := b.GetPipeline(testCtx(t), other)
	if err != nil || otherPipeline.LastBuildID != 2*goroutines*each/5 {
		t.Fatalf("other pipeline counter %d, %v; want %d", otherPipeline.LastBuildID, err, 2*goroutines*each/5)
	}
}

const (
	helperDBEnv    = "SLIPWAY_STORE_TEST_DB"
	helperCountEnv = "SLIPWAY_STORE_TEST_COUNT"
)

// TestMain lets the cross-process BUILD_ID tests start this test binary again as a plain
// allocating process (no tests run in it): it allocates BUILD_IDs on the database they
// name and prints each one once it is committed.
func TestMain(m *testing.M) {
	if path := os.Getenv(helperDBEnv); path != "" {
		os.Exit(allocateAsChild(path))
	}
	os.Exit(runBothBackends(m))
}

func allocateAsChild(path string) int {
	count, err := strconv.Atoi(os.Getenv(helperCountEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, "count:", err)
		return 2
	}
	s, err := openLoc(context.Background(), path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		return 2
	}
	defer s.Close()
	out := bufio.NewWriter(os.Stdout)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; count <= 0 || i < count; i++ {
				r, err := s.CreateRun(context.Background(), NewRun{Pipeline: testPipeline, Trigger: TriggerManual})
				if err != nil {
					fmt.Fprintln(os.Stderr, "allocate:", err)
					os.Exit(3)
				}
				mu.Lock()
				fmt.Fprintf(out, "id %d\n", r.BuildID)
				_ = out.Flush()
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return 0
}

func helperCmd(t *testing.T, path string, count int) *exec.Cmd {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), helperDBEnv+"="+path, helperCountEnv+"="+strconv.Itoa(count))
	cmd.Stderr = os.Stderr
	return cmd
}

func parseIDs(t *testing.T, out string) []int64 {
	t.Helper()
	var ids []int64
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(line, "id "); ok {
			id, err := strconv.ParseInt(rest, 10, 64)
			if err != nil {
				t.Fatalf("helper printed %q", line)
			}
			ids = append(ids, id)
		}
	}
	return ids
}

// Two other processes and this one allocate on the same file at the same time.
func TestBuildIDAcrossProcesses(t *testing.T) {
	s, path := openTest(t)
	const perChild, children = 25, 2 // each child runs 4 goroutines

	var wg sync.WaitGroup
	outs := make([]string, children)
	errs := make([]error, children)
	for c := 0; c < children; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := helperCmd(t, path, perChild).Output()
			outs[c], errs[c] = string(out), err
		}()
	}
	var ids []int64
	for i := 0; i < 50; i++ {
		r, err := s.CreateRun(testCtx(t), NewRun{Pipeline: testPipeline, Trigger: TriggerPush})
		if err != nil {
			t.Fatalf("allocate beside other processes: %v", err)
		}
		ids = append(ids, r.BuildID)
	}
	wg.Wait()
	for c := range outs {
		if errs[c] != nil {
			t.Fatalf("child %d: %v", c, errs[c])
		}
		got := parseIDs(t, outs[c])
		if len(got) != 4*perChild {
			t.Fatalf("child %d printed %d BUILD_IDs, want %d", c, len(got), 4*perChild)
		}
		ids = append(ids, got...)
	}
	checkSequence(t, s, testPipeline, ids, 50+children*4*perChild)
}

// A process killed while it allocates loses nothing it was told was committed, and the
// next BUILD_ID is higher than every one it handed out.
func TestBuildIDSurvivesKill(t *testing.T) {
	_, path := openTest(t)
	cmd := helperCmd(t, path, 0) // allocates until killed
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var printed []int64
	sc := bufio.NewScanner(stdout)
	for sc.Scan() && len(printed) < 60 {
		printed = append(printed, parseIDs(t, sc.Text())...)
	}
	_ = cmd.Process.Kill() // SIGKILL: no deferred Close, possibly mid-transaction
	for sc.Scan() {
		printed = append(printed, parseIDs(t, sc.Text())...)
	}
	_ = cmd.Wait()

	s := openAt(t, path)
	for _, id := range printed {
		if _, err := s.GetRun(testCtx(t), testPipeline, id); err != nil {
			t.Fatalf("BUILD_ID %d was reported committed but is gone after the kill: %v", id, err)
		}
	}
	runs, err := s.ListRuns(testCtx(t), testPipeline, 0)
	if err != nil {
		t.Fatal(err)
	}
	next := mustRun(t, s, testPipeline)
	for _, r := range runs {
		if r.BuildID >= next.BuildID {
			t.Fatalf("after the kill BUILD_ID %d was handed out again (existing run %d)", next.BuildID, r.BuildID)
		}
	}
	if next.BuildID != int64(len(runs))+1 {
		t.Fatalf("next BUILD_ID %d after %d committed runs: a gap or a reuse", next.BuildID, len(runs))
	}
}

func TestBuildIDContinuesAfterReopen(t *testing.T) {
	s, path := openTest(t)
	for i := 1; i <= 3; i++ {
		if r := mustRun(t, s, testPipeline); r.BuildID != int64(i) {
			t.Fatalf("run %d got BUILD_ID %d", i, r.BuildID)
		}
	}
	// Deleting the newest run must not give its number back.
	if _, err := s.writer.ExecContext(testCtx(t), `DELETE FROM runs WHERE build_id = 3`); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openAt(t, path)
	if r := mustRun(t, s2, testPipeline); r.BuildID != 4 {
		t.Fatalf("after reopen BUILD_ID %d, want 4", r.BuildID)
	}
}

// A write that finds another handle holding the write lock waits for it, both through
// busy_timeout and, when that is shorter than the hold, through the retry loop.
func TestWriteWaitsForHeldLock(t *testing.T) {
	for _, busy := range []time.Duration{DefaultBusyTimeout, 20 * time.Millisecond} {
		t.Run(busy.String(), func(t *testing.T) {
			a, path := openTest(t)
			b := openAt(t, path, WithBusyTimeout(busy))
			mustRun(t, a, testPipeline)

			tx, err := a.writer.BeginTx(testCtx(t), nil) // BEGIN IMMEDIATE: takes the lock
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Exec(`UPDATE pipelines SET created_at = created_at`); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			start := time.Now()
			go func() {
				_, err := b.CreateRun(testCtx(t), NewRun{Pipeline: testPipeline, Trigger: TriggerManual})
				done <- err
			}()
			time.Sleep(300 * time.Millisecond)
			select {
			case err := <-done:
				t.Fatalf("write finished (%v) while another handle held the lock", err)
			default:
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Fatalf("write behind a held lock failed after %v: %v", time.Since(start), err)
			}
			if r, err := a.GetRun(testCtx(t), testPipeline, 2); err != nil || r.Trigger != TriggerManual {
				t.Fatalf("run 2: %+v, %v", r, err)
			}
		})
	}
}
