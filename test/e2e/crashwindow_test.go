package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/store"
	"github.com/slipwayhq/slipway/test/testenv"
)

// TestKilledDaemonRunsEachPushOnce: a daemon polling every second is SIGKILLed at spread
// moments after each push (before it looks, while it records the push's runs, after) and
// started again. Whatever moment the kill hit, each pushed commit ends with exactly one
// push run of each pipeline its push triggers (never none, never two), none of the
// pipeline whose path filter it misses, and BUILD_IDs stay gap-free. A kill cannot be aimed
// at the instant between recording the runs and recording the head without a test hook in
// the daemon; that the two are one transaction is shown by the store's tests
// (TestCreateRuns*) and the watcher's and scheduler's crash tests.
func TestKilledDaemonRunsEachPushOnce(t *testing.T) {
	env := testenv.Get(t)
	repo, repoName, cfg := newProject(t, env)
	f, err := os.OpenFile(cfg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteString("executor: {local: {enabled: true}}\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	step := "stages:\n- name: work\n  tasks:\n  - name: step\n    type: script\n    executor: local\n    script: 'true'\n"
	pipelines := "name: alpha\n" + step + "---\nname: beta\n" + step +
		"---\nname: docs\ntriggers:\n  push:\n    paths: ['docs/**']\n" + step
	var commits []string
	commits = append(commits, repo.commit("first", map[string][]byte{".pipeline.yaml": []byte(pipelines)}))

	d := startServe(t, cfg)
	d.waitOutput(t, 30*time.Second, "msg=listening")
	st, err := store.OpenSQLite(context.Background(), filepath.Join(filepath.Dir(cfg), "data", "slipway.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	ctx := context.Background()
	ref := func(name string) store.PipelineRef { return store.PipelineRef{Repository: repoName, Name: name} }
	// pushRuns counts the push runs of each commit of a pipeline.
	pushRuns := func(name string) map[string]int {
		runs, err := st.ListRuns(ctx, ref(name), 0)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int{}
		for _, r := range runs {
			if r.Trigger == store.TriggerPush {
				out[r.Commit]++
			}
		}
		return out
	}
	waitRan := func(commit string) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for pushRuns("alpha")[commit] == 0 || pushRuns("beta")[commit] == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("commit %s has no push run of alpha and beta within 60s: %v %v", commit[:8], pushRuns("alpha"), pushRuns("beta"))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	// The kills land at spread moments around the 1 s poll: after the push the daemon looks
	// within a second, records the runs and the head, then starts them.
	var delays []time.Duration
	for i := range 10 {
		delays = append(delays, time.Duration(i)*270*time.Millisecond)
	}
	waitRan(commits[0])
	for i, delay := range delays {
		c := repo.commit(fmt.Sprintf("change %d", i), map[string][]byte{"src/file": []byte(fmt.Sprint(i))})
		commits = append(commits, c)
		time.Sleep(delay)
		if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-d.done
		ran := pushRuns("alpha")[c]+pushRuns("beta")[c] > 0
		t.Logf("kill %d, %s after the push: the commit's runs were %s when it died", i+1, delay, map[bool]string{true: "on record", false: "not on record"}[ran])
		d = startServe(t, cfg)
		d.waitOutput(t, 30*time.Second, "msg=listening")
		waitRan(c)
	}
	// One more look after a clean restart must start nothing again.
	d.stop(t)
	d = startServe(t, cfg)
	d.waitOutput(t, 30*time.Second, "msg=listening")
	time.Sleep(3 * time.Second)

	alpha, beta, docs := pushRuns("alpha"), pushRuns("beta"), pushRuns("docs")
	for _, c := range commits {
		if alpha[c] != 1 || beta[c] != 1 {
			t.Errorf("commit %s: %d push runs of alpha and %d of beta, want 1 each", c[:8], alpha[c], beta[c])
		}
	}
	// The first commit runs docs too (with nothing handled before it, what changed is
	// unknown, which path filters let through); every later push misses docs/**.
	for c, n := range docs {
		if c != commits[0] {
			t.Errorf("docs ran %d times for commit %s, which touches no docs/ file", n, c[:8])
		}
	}
	for _, name := range []string{"alpha", "beta", "docs"} {
		runs, err := st.ListRuns(ctx, ref(name), 0)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range runs {
			if want := int64(len(runs) - i); r.BuildID != want {
				t.Errorf("%s: BUILD_IDs not gap-free: %d at position %d, want %d", name, r.BuildID, i, want)
			}
		}
	}
	d.stop(t)
}
