package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/slipwayhq/slipway/config"
	"github.com/slipwayhq/slipway/internal/changefeed"
	"github.com/slipwayhq/slipway/server"
	"github.com/slipwayhq/slipway/server/records"
	"github.com/slipwayhq/slipway/store"
	"github.com/slipwayhq/slipway/store/storetest"
)

// seededConfig seeds a new store with runs (see seedRuns) and returns its config file.
func seededConfig(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	st, err := openWith(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	seedRuns(t, st)
	st.Close()
	return filepath.Join(dir, "slipway.yaml")
}

func seedRuns(t *testing.T, st store.Store) {
	t.Helper()
	ctx := context.Background()
	web := store.PipelineRef{Repository: "shop", Name: "web"}
	api := store.PipelineRef{Repository: "shop", Name: "api"}
	for i, ref := range []store.PipelineRef{web, api, web, web} {
		end := store.RunSucceeded
		if i == 3 {
			end = store.RunFailed
		}
		storetest.EndedRun(t, st, store.NewRun{Pipeline: ref, Commit: fmt.Sprintf("c%039d", i), Branch: "main", Trigger: store.TriggerPush}, end, "because")
	}
	if _, err := st.SaveRevision(ctx, store.NewRevision{Pipeline: web, BuildID: 2, Task: "deploy", Cluster: "kind", Kind: store.DeployYAML,
		Objects: []byte("kind: ConfigMap\nmetadata: {name: a}\n"), Inventory: []store.InventoryEntry{{Version: "v1", Kind: "ConfigMap", Name: "a"}}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.SetSuspended(ctx, api, true, "alice", "freeze"); err != nil {
		t.Fatal(err)
	}
}

func TestGetPipelinesShowsEachPipelineAtAGlance(t *testing.T) {
	cfg := seededConfig(t)
	out, _, err := run(t, "get", "pipelines", "--config", cfg)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "PIPELINE") {
		t.Fatalf("get pipelines:\n%s", out)
	}
	api, web := strings.Fields(lines[1]), strings.Fields(lines[2])
	if api[0] != "shop/api" || api[1] != "#1" || api[2] != "succeeded" || api[4] != "-" || api[5] != "none" || api[6] != "true" {
		t.Errorf("api line: %q", lines[1])
	}
	if web[0] != "shop/web" || web[1] != "#3" || web[2] != "failed" || web[4] != "#2@c00000000000" || web[5] != "in-sync" || web[6] != "false" {
		t.Errorf("web line: %q", lines[2])
	}
	out, _, err = run(t, "get", "pipelines", "--config", cfg, "-o", "json")
	var ps []records.Pipeline
	if err != nil || json.Unmarshal([]byte(out), &ps) != nil || len(ps) != 2 || ps[1].Revision.BuildID != 2 || !ps[0].Suspended || ps[0].SuspendedBy != "alice" {
		t.Fatalf("get pipelines -o json: %v\n%s", err, out)
	}
}

func TestGetRunsFiltersAndPages(t *testing.T) {
	cfg := seededConfig(t)
	out, _, err := run(t, "get", "runs", "--config", cfg, "web", "--limit", "2")
	if err != nil || strings.Count(out, "shop/web") != 2 || !strings.Contains(out, "more: --after ") || strings.Contains(out, "shop/api") {
		t.Fatalf("get runs web --limit 2: %v\n%s", err, out)
	}
	after := strings.TrimSpace(out[strings.Index(out, "more: --after ")+len("more: --after "):])
	var page records.RunList
	out, _, err = run(t, "get", "runs", "--config", cfg, "web", "--limit", "2", "--after", after, "-o", "json")
	if err != nil || json.Unmarshal([]byte(out), &page) != nil || len(page.Runs) != 1 || page.Runs[0].BuildID != 1 || page.Next != "" {
		t.Fatalf("second page: %v\n%s", err, out)
	}
	out, _, err = run(t, "get", "runs", "--config", cfg, "--status", "failed", "-o", "json")
	if err != nil || json.Unmarshal([]byte(out), &page) != nil || len(page.Runs) != 1 || page.Runs[0].BuildID != 3 || page.Runs[0].Pipeline != "web" {
		t.Fatalf("--status failed: %v\n%s", err, out)
	}
	out, _, err = run(t, "get", "runs", "--config", cfg, "--since", "1h", "--trigger", "cron", "-o", "json")
	if err != nil || json.Unmarshal([]byte(out), &page) != nil || len(page.Runs) != 0 {
		t.Fatalf("--trigger cron: %v\n%s", err, out)
	}
	for _, bad := range [][]string{{"--status", "done"}, {"--trigger", "robot"}, {"--since", "yesterday"}, {"--limit", "501"}} {
		if _, _, err := run(t, append([]string{"get", "runs", "--config", cfg}, bad...)...); err == nil {
			t.Errorf("get runs %v: no error", bad)
		}
	}
}

// logs -f prints a live run's lines as they are written and exits with the run's outcome.
func TestLogsFollowPrintsALiveRun(t *testing.T) {
	ctx := context.Background()
	feed := changefeed.New()
	st, err := store.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "s.db"), store.WithChangeSink(feed))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ref := store.PipelineRef{Repository: "shop", Name: "web"}
	r, err := st.CreateRun(ctx, store.NewRun{Pipeline: ref, Commit: "abc", Trigger: store.TriggerManual})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.TransitionRun(ctx, ref, r.BuildID, store.RunQueued, store.RunRunning, ""); err != nil {
		t.Fatal(err)
	}
	users := []config.APIUser{config.LegacyAPIUser([]byte("tok"))}
	srv := httptest.NewServer((&server.Server{Users: users, Triggers: resolveOnly{}, Reads: st, Changes: feed, Log: logrus.NewEntry(logrus.New())}).Handler())
	defer srv.Close()
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("tok"), 0o600); err != nil {
		t.Fatal(err)
	}
	go func() {
		for i := range 3 {
			time.Sleep(20 * time.Millisecond)
			_ = st.AppendLogs(ctx, ref, r.BuildID, "build", []store.LogLine{{Text: fmt.Sprint("step ", i)}})
		}
		_, _ = st.TransitionRun(ctx, ref, r.BuildID, store.RunRunning, store.RunFailed, "exit 1")
	}()
	out, _, err := run(t, "logs", "-f", "--server", srv.URL, "--token-file", tokenFile, "shop/web", "1", "-o", "json")
	var code exitError
	if !asExit(err, &code) || code.code != 1 {
		t.Fatalf("logs -f of a failed run: %v, want exit status 1\n%s", err, out)
	}
	var events []followEvent
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var e followEvent
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		events = append(events, e)
	}
	var texts []string
	for _, e := range events {
		if e.Event == "line" {
			var l records.Line
			_ = json.Unmarshal(e.Data, &l)
			texts = append(texts, l.Text)
		}
	}
	last := events[len(events)-1]
	if strings.Join(texts, "|") != "step 0|step 1|step 2" || last.Event != "end" || !strings.Contains(string(last.Data), `"status":"failed"`) {
		t.Fatalf("logs -f -o json:\n%s", out)
	}
}

func asExit(err error, into *exitError) bool {
	e, ok := err.(exitError)
	if ok {
		*into = e
	}
	return ok
}

// resolveOnly names pipelines as the hub does for REPOSITORY/PIPELINE; logs -f needs nothing else of it.
type resolveOnly struct{ server.Triggers }

func (resolveOnly) Resolve(_ context.Context, repository, name string) (store.PipelineRef, error) {
	return store.PipelineRef{Repository: repository, Name: name}, nil
}
