package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/slipwayhq/slipway/config"
	"github.com/slipwayhq/slipway/internal/changefeed"
	"github.com/slipwayhq/slipway/store"
	"github.com/slipwayhq/slipway/store/storetest"
)

// readsRecorder is a real store whose reads are noted in the recorder's calls, so the
// route tests can tell that a refused call read nothing.
type readsRecorder struct {
	store.Store
	rec *recorder
}

func (r readsRecorder) note(what string) { r.rec.calls = append(r.rec.calls, "read "+what) }

func (r readsRecorder) ListPipelines(ctx context.Context) ([]store.Pipeline, error) {
	r.note("ListPipelines")
	return r.Store.ListPipelines(ctx)
}
func (r readsRecorder) GetPipeline(ctx context.Context, ref store.PipelineRef) (store.Pipeline, error) {
	r.note("GetPipeline")
	return r.Store.GetPipeline(ctx, ref)
}
func (r readsRecorder) GetRun(ctx context.Context, ref store.PipelineRef, id int64) (store.Run, error) {
	r.note("GetRun")
	return r.Store.GetRun(ctx, ref, id)
}
func (r readsRecorder) FindRuns(ctx context.Context, f store.RunFilter) (store.RunPage, error) {
	r.note("FindRuns")
	return r.Store.FindRuns(ctx, f)
}
func (r readsRecorder) CurrentRevisions(ctx context.Context) ([]store.Revision, error) {
	r.note("CurrentRevisions")
	return r.Store.CurrentRevisions(ctx)
}
func (r readsRecorder) ReadLogs(ctx context.Context, ref store.PipelineRef, id int64, q store.LogQuery) ([]store.LogLine, error) {
	r.note("ReadLogs")
	return r.Store.ReadLogs(ctx, ref, id, q)
}
func (r readsRecorder) ListAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditEntry, error) {
	r.note("ListAudit")
	return r.Store.ListAudit(ctx, f)
}

// seededReads is a store holding pipeline deploy of each repository, with seven finished
// runs (the route tests call run 7), a waiting run, an audit entry and a revision each.
func seededReads(t *testing.T, rec *recorder, repositories ...string) (readsRecorder, *changefeed.Feed) {
	t.Helper()
	ctx := context.Background()
	feed := changefeed.New()
	st, err := store.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "s.db"), store.WithChangeSink(feed))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	for _, repo := range repositories {
		ref := store.PipelineRef{Repository: repo, Name: "deploy"}
		for i := 1; i <= 8; i++ {
			end := store.RunSucceeded
			if i == 8 {
				end = store.RunAwaitingApproval
			}
			run := storetest.EndedRun(t, st, store.NewRun{Pipeline: ref, Commit: "c0ffee", Branch: "main", Trigger: store.TriggerPush}, end, "")
			if err := st.AppendLogs(ctx, ref, run.BuildID, "", []store.LogLine{{Text: fmt.Sprintf("%s line of #%d", repo, i)}}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := st.SaveRevision(ctx, store.NewRevision{Pipeline: ref, BuildID: 7, Task: "web", Cluster: "kind", Kind: store.DeployYAML,
			Objects: []byte("kind: ConfigMap\nmetadata: {name: web}\n"), Inventory: []store.InventoryEntry{{Version: "v1", Kind: "ConfigMap", Name: "web"}}}); err != nil {
			t.Fatal(err)
		}
		if _, err := st.RecordAudit(ctx, store.AuditEntry{Actor: "alice", Action: store.AuditTrigger, Pipeline: ref, BuildID: 7}); err != nil {
			t.Fatal(err)
		}
	}
	return readsRecorder{Store: st, rec: rec}, feed
}

func getJSON(t *testing.T, srv *httptest.Server, path, token string, into any) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK && into != nil {
		if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
	}
	return resp.StatusCode
}

// An identity restricted to repositories sees only theirs in every list, and naming
// another repository in a list's query answers 403.
func TestListsShowOnlyTheCallersRepositories(t *testing.T) {
	rec := newRecorder()
	reads, feed := seededReads(t, rec, "app", "web", "team-shop")
	s := &Server{Triggers: rec, Records: rec, Metrics: rec, Reads: reads, Changes: feed, Repositories: []string{"app", "web", "team-shop"},
		Log: logrus.NewEntry(logrus.New()), Users: []config.APIUser{user("web-ops", []config.Role{config.RoleViewer}, "web", "team-*")}}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	const tok = "token-web-ops"
	repos := func(items []string) string { return strings.Join(items, ",") }

	var rs struct{ Repositories []struct{ Name string } }
	getJSON(t, srv, "/api/v1/repositories", tok, &rs)
	var names []string
	for _, r := range rs.Repositories {
		names = append(names, r.Name)
	}
	if repos(names) != "team-shop,web" {
		t.Errorf("repositories: %v", names)
	}
	lists := map[string]string{
		"/api/v1/pipelines":   "pipelines",
		"/api/v1/runs":        "runs",
		"/api/v1/deployments": "deployments",
		"/api/v1/approvals":   "runs",
		"/api/v1/audit":       "entries",
	}
	for path, key := range lists {
		var body map[string][]map[string]any
		if code := getJSON(t, srv, path, tok, &body); code != http.StatusOK {
			t.Fatalf("GET %s: %d", path, code)
		}
		seen := map[string]bool{}
		for _, item := range body[key] {
			seen[fmt.Sprint(item["repository"])] = true
		}
		if len(seen) != 2 || !seen["web"] || !seen["team-shop"] {
			t.Errorf("GET %s shows repositories %v, want web and team-shop", path, seen)
		}
		rec.calls = nil
		if code := getJSON(t, srv, path+"?repository=app", tok, nil); code != http.StatusForbidden {
			t.Errorf("GET %s?repository=app: %d, want 403", path, code)
		}
		if len(rec.calls) != 0 {
			t.Errorf("GET %s?repository=app was refused but reached %v", path, rec.calls)
		}
	}
}

func TestRunListFiltersAndPages(t *testing.T) {
	rec := newRecorder()
	reads, feed := seededReads(t, rec, "app")
	s := &Server{Triggers: rec, Records: rec, Metrics: rec, Reads: reads, Changes: feed,
		Log: logrus.NewEntry(logrus.New()), Users: []config.APIUser{user("v", []config.Role{config.RoleViewer})}}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	var page struct {
		Runs []Run
		Next string
	}
	if code := getJSON(t, srv, "/api/v1/pipelines/deploy/runs?limit=3&status=succeeded", "token-v", &page); code != 200 {
		t.Fatalf("page 1: %d", code)
	}
	if len(page.Runs) != 3 || page.Runs[0].BuildID != 7 || page.Next == "" {
		t.Fatalf("page 1: %+v", page)
	}
	next := page.Next
	page.Runs, page.Next = nil, ""
	getJSON(t, srv, "/api/v1/runs?pipeline=deploy&limit=3&status=succeeded&after="+next, "token-v", &page)
	if len(page.Runs) != 3 || page.Runs[0].BuildID != 4 {
		t.Fatalf("page 2: %+v", page)
	}
	page.Runs, page.Next = nil, ""
	getJSON(t, srv, "/api/v1/runs?status=awaiting_approval,failed&trigger=push", "token-v", &page)
	if len(page.Runs) != 1 || page.Runs[0].BuildID != 8 || page.Next != "" {
		t.Fatalf("waiting: %+v", page)
	}
	since := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	page.Runs, page.Next = nil, ""
	getJSON(t, srv, "/api/v1/runs?since="+since, "token-v", &page)
	if len(page.Runs) != 0 {
		t.Fatalf("runs created in the future: %+v", page.Runs)
	}
	for _, bad := range []string{"status=done", "trigger=robot", "since=yesterday", "limit=0", "limit=501", "after=x"} {
		if code := getJSON(t, srv, "/api/v1/runs?"+bad, "token-v", nil); code != http.StatusBadRequest {
			t.Errorf("?%s: %d, want 400", bad, code)
		}
	}
}

func TestRunDetailAndLogPages(t *testing.T) {
	rec := newRecorder()
	reads, feed := seededReads(t, rec, "app")
	ctx := context.Background()
	ref := store.PipelineRef{Repository: "app", Name: "deploy"}
	if _, err := reads.Store.AddTask(ctx, ref, 7, store.NewTask{Stage: "deploy", Name: "web", Type: "deploy-yaml"}); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := reads.Store.AppendLogs(ctx, ref, 7, "web", []store.LogLine{{Text: fmt.Sprint("web ", i)}}); err != nil {
			t.Fatal(err)
		}
	}
	s := &Server{Triggers: rec, Records: rec, Metrics: rec, Reads: reads, Changes: feed,
		Log: logrus.NewEntry(logrus.New()), Users: []config.APIUser{user("v", []config.Role{config.RoleViewer})}}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	var d struct {
		BuildID int64
		Status  string
		Stages  []struct {
			Name  string
			Tasks []struct{ Name, Status string }
		}
		Revisions []struct {
			Task    string
			Objects []struct{ Kind, Name string }
		}
	}
	getJSON(t, srv, "/api/v1/pipelines/deploy/runs/7", "token-v", &d)
	if d.BuildID != 7 || d.Status != "succeeded" || len(d.Stages) != 1 || d.Stages[0].Tasks[0].Name != "web" ||
		len(d.Revisions) != 1 || d.Revisions[0].Objects[0].Name != "web" {
		t.Fatalf("run detail %+v", d)
	}
	var logs LogPage
	getJSON(t, srv, "/api/v1/pipelines/deploy/runs/7/logs?task=web&limit=2", "token-v", &logs)
	if len(logs.Lines) != 2 || logs.Lines[0].Text != "web 0" || !logs.Final {
		t.Fatalf("first log page %+v", logs)
	}
	var rest LogPage
	getJSON(t, srv, fmt.Sprintf("/api/v1/pipelines/deploy/runs/7/logs?task=web&afterId=%d", logs.LastID), "token-v", &rest)
	if len(rest.Lines) != 3 || rest.Lines[0].Text != "web 2" || rest.LastID != rest.Lines[2].ID {
		t.Fatalf("rest of the log %+v", rest)
	}
	if code := getJSON(t, srv, "/api/v1/pipelines/deploy/runs/99", "token-v", nil); code != http.StatusNotFound {
		t.Fatalf("unknown run: %d, want 404", code)
	}
}
