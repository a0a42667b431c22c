package reconciler

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/slipwayhq/slipway/reconciler/scriptrun"
	"github.com/slipwayhq/slipway/store"
)

// countingStore counts the writes a run makes to the store, by method: each is one
// transaction, and on SQLite one turn of the single writer (a group commit's fsync).
type countingStore struct {
	store.Store
	mu     sync.Mutex
	writes map[string]int
}

func (c *countingStore) count(method string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes[method]++
}

// total is the writes counted, and what they were.
func (c *countingStore) total() (int, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, names := 0, make([]string, 0, len(c.writes))
	for m, k := range c.writes {
		n += k
		names = append(names, fmt.Sprintf("%s×%d", m, k))
	}
	sort.Strings(names)
	return n, strings.Join(names, " ")
}

func (c *countingStore) CreateRuns(ctx context.Context, runs []store.NewRun, h store.Handled) ([]store.Run, error) {
	c.count("CreateRuns")
	return c.Store.CreateRuns(ctx, runs, h)
}

func (c *countingStore) StartRun(ctx context.Context, ref store.PipelineRef, buildID int64, holder string) (store.Run, error) {
	c.count("StartRun")
	return c.Store.StartRun(ctx, ref, buildID, holder)
}

func (c *countingStore) ClaimPipeline(ctx context.Context, ref store.PipelineRef, holder string, buildID int64) error {
	c.count("ClaimPipeline")
	return c.Store.ClaimPipeline(ctx, ref, holder, buildID)
}

func (c *countingStore) ReleasePipeline(ctx context.Context, ref store.PipelineRef, holder string) error {
	c.count("ReleasePipeline")
	return c.Store.ReleasePipeline(ctx, ref, holder)
}

func (c *countingStore) TransitionRun(ctx context.Context, ref store.PipelineRef, buildID int64, from, to store.RunStatus, reason string) (store.Run, error) {
	c.count("TransitionRun")
	return c.Store.TransitionRun(ctx, ref, buildID, from, to, reason)
}

func (c *countingStore) NoteQueuedRuns(ctx context.Context, runs []store.Run, reason string) error {
	c.count("NoteQueuedRuns")
	return c.Store.NoteQueuedRuns(ctx, runs, reason)
}

func (c *countingStore) TransitionTask(ctx context.Context, ref store.PipelineRef, buildID int64, name string, from, to store.TaskStatus, reason string) (store.Task, error) {
	c.count("TransitionTask")
	return c.Store.TransitionTask(ctx, ref, buildID, name, from, to, reason)
}

func (c *countingStore) EndTask(ctx context.Context, ref store.PipelineRef, buildID int64, name string, end store.TaskEnd) (store.Task, error) {
	c.count("EndTask")
	return c.Store.EndTask(ctx, ref, buildID, name, end)
}

func (c *countingStore) AppendLogs(ctx context.Context, ref store.PipelineRef, buildID int64, task string, lines []store.LogLine) error {
	c.count("AppendLogs")
	return c.Store.AppendLogs(ctx, ref, buildID, task, lines)
}

func (c *countingStore) SetTaskOutputs(ctx context.Context, ref store.PipelineRef, buildID int64, name string, outputs map[string]string) error {
	c.count("SetTaskOutputs")
	return c.Store.SetTaskOutputs(ctx, ref, buildID, name, outputs)
}

func (c *countingStore) RecordAudit(ctx context.Context, e store.AuditEntry) (store.AuditEntry, error) {
	c.count("RecordAudit")
	return c.Store.RecordAudit(ctx, e)
}

// quietScript is a script executor whose script prints a line, takes its time and succeeds;
// before it ends it calls during, if set.
type quietScript struct {
	takes  time.Duration
	during func(ctx context.Context, s scriptrun.Spec)
}

func (q quietScript) Run(ctx context.Context, s scriptrun.Spec) (scriptrun.Result, error) {
	_, _ = s.Log.Write([]byte("nothing to do\n"))
	select {
	case <-time.After(q.takes):
	case <-ctx.Done():
		return scriptrun.Result{}, ctx.Err()
	}
	if q.during != nil {
		q.during(ctx, s)
	}
	return scriptrun.Result{}, nil
}

// runCountingWrites runs one pipeline of one quick script task through a dispatcher and a
// real Runner on a counting store, and returns the writes the run made.
func runCountingWrites(t *testing.T, st store.Store, script quietScript) (int, string) {
	t.Helper()
	cs := &countingStore{Store: st, writes: map[string]int{}}
	ctx, run := runOneScript(t, cs, script)
	got, err := st.GetRun(ctx, run.Pipeline, run.BuildID)
	if err != nil || got.Status != store.RunSucceeded {
		t.Fatalf("run %+v, %v; want it succeeded", got, err)
	}
	lines, err := st.ReadLogs(ctx, run.Pipeline, run.BuildID, store.LogQuery{Tasks: []string{"smoke"}})
	if err != nil || len(lines) == 0 || lines[len(lines)-1].Text != "nothing to do" {
		t.Fatalf("task log %+v, %v; want the script's line kept", lines, err)
	}
	return cs.total()
}

// runOneScript submits one pipeline of one quick script task to a dispatcher over a real
// Runner, both on st, and waits until the dispatcher is done with the run.
func runOneScript(t *testing.T, st store.Store, script quietScript) (context.Context, store.Run) {
	t.Helper()
	ctx, d := scriptDispatcher(t, st, script, nil, DispatcherOptions{Claims: st, MaxInFlight: 4})
	run := submitScript(ctx, t, d, "app")
	awaitRunDone(t, d, run)
	return ctx, run
}

// lostStartAnswer is a store whose StartRun commits, then answers with an error: a
// PostgreSQL COMMIT whose answer was lost on the way back.
type lostStartAnswer struct{ store.Store }

func (l lostStartAnswer) StartRun(ctx context.Context, ref store.PipelineRef, buildID int64, holder string) (store.Run, error) {
	if _, err := l.Store.StartRun(ctx, ref, buildID, holder); err != nil {
		return store.Run{}, err
	}
	return store.Run{}, errors.New("commit: connection reset before its answer")
}

// TestAStartWhoseAnswerWasLostLeavesNoClaim: a start that failed may still have claimed the
// pipeline and moved the run to running. Trying the start again finds it applied, so the run
// goes on and its end ends the claim; the claim must not outlive the run for as long as the
// process beats (another replica would wait on it).
func TestAStartWhoseAnswerWasLostLeavesNoClaim(t *testing.T) {
	st := testStore(t)
	ctx, run := runOneScript(t, lostStartAnswer{st}, quietScript{})
	if got, err := st.GetRun(ctx, run.Pipeline, run.BuildID); err != nil || got.Status != store.RunSucceeded {
		t.Fatalf("run %s (%q), %v; want it succeeded", got.Status, got.Reason, err)
	}
	if err := st.ClaimPipeline(ctx, run.Pipeline, "another-process", run.BuildID+1); err != nil {
		t.Fatalf("the pipeline is still claimed after the failed start: %v", err)
	}
}

// TestARunOfOneQuickTaskWritesFiveTimes: a run of one task that ends within the log's flush
// interval costs five writes: its record, its start (the pipeline's claim with it), its
// task's start, the task's end (its lines with it) and the run's end (the claim's with it).
// Each is a turn of the store's single writer that the run waits for, one after another.
func TestARunOfOneQuickTaskWritesFiveTimes(t *testing.T) {
	n, what := runCountingWrites(t, testStore(t), quietScript{})
	t.Logf("%d writes: %s", n, what)
	if n != 5 {
		t.Fatalf("%d writes (%s), want 5", n, what)
	}
}

// TestALongTaskShowsItsLinesWhileItRuns: lines ride with the task's end only when it ends
// within the flush interval; a task that runs longer has them stored while it runs.
func TestALongTaskShowsItsLinesWhileItRuns(t *testing.T) {
	st := testStore(t)
	var live []store.LogLine
	script := quietScript{takes: 3 * liveLogFlush, during: func(ctx context.Context, s scriptrun.Spec) {
		live, _ = st.ReadLogs(ctx, store.PipelineRef{Repository: s.Run.Repository, Name: s.Run.Pipeline}, s.Run.BuildID,
			store.LogQuery{Tasks: []string{s.Run.Task}})
	}}
	n, what := runCountingWrites(t, st, script)
	if len(live) == 0 || live[len(live)-1].Text != "nothing to do" {
		t.Fatalf("while the task ran its log held %+v, want the script's line", live)
	}
	if n != 6 {
		t.Fatalf("%d writes (%s), want 6: the five of a quick task and one flush", n, what)
	}
}

// A deploy's lines ride with its revision's write (taskLog.riding); when that write fails
// they stay queued, ahead of later lines, for the task's end.
func TestADeploysLinesRideWithItsRevision(t *testing.T) {
	st := testStore(t)
	cs := &countingStore{Store: st, writes: map[string]int{}}
	ctx := context.Background()
	run, err := st.CreateRun(ctx, store.NewRun{Pipeline: testRef, Trigger: store.TriggerManual,
		Tasks: []store.NewTask{{Stage: "deploy", Name: "web", Type: "deploy-yaml"}}})
	if err != nil {
		t.Fatal(err)
	}
	rc := &runContext{run: run, store: cs, log: logrus.NewEntry(logrus.New())}
	tl := rc.taskLog("web")
	save := func(lines []store.LogLine) error {
		_, err := st.SaveRevision(ctx, store.NewRevision{Pipeline: testRef, BuildID: run.BuildID, Task: "web", Cluster: "local",
			Kind: store.DeployYAML, Objects: []byte("{}"), Logs: lines})
		return err
	}
	tl.Printf("rendered 4 objects")
	if err := tl.riding(save); err != nil {
		t.Fatal(err)
	}
	tl.Printf("a second revision")
	if err := tl.riding(save); !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("second revision: %v, want ErrAlreadyExists", err)
	}
	tl.Printf("the end")
	tl.ending(func(lines []store.LogLine) {
		if err := st.AppendLogs(ctx, run.Pipeline, run.BuildID, "web", lines); err != nil {
			t.Fatal(err)
		}
	})
	lines, err := st.ReadLogs(ctx, run.Pipeline, run.BuildID, store.LogQuery{Tasks: []string{"web"}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range lines {
		got = append(got, l.Text)
	}
	if strings.Join(got, "|") != "rendered 4 objects|a second revision|the end" {
		t.Fatalf("log %q, want every line once, in order", got)
	}
	if n, what := cs.total(); n != 0 {
		t.Fatalf("%d writes of the log's own (%s), want none", n, what)
	}
}
