package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/slipwayhq/slipway/config"
	"github.com/slipwayhq/slipway/internal/sse"
	"github.com/slipwayhq/slipway/internal/sse/ssetest"
	"github.com/slipwayhq/slipway/store"
)

func follow(t *testing.T, url, lastEventID string) (*http.Response, *sse.Reader) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer token-v")
	resp := ssetest.Open(t, req, lastEventID)
	return resp, sse.NewReader(resp.Body)
}

// A live run's lines arrive in order while it runs, each once, and the stream ends with
// the run's final status; a client reconnecting with Last-Event-ID gets only what follows.
func TestStreamFollowsALiveRun(t *testing.T) {
	rec := newRecorder()
	reads, feed := seededReads(t, rec, "app")
	ctx := context.Background()
	ref := store.PipelineRef{Repository: "app", Name: "deploy"}
	run, err := reads.Store.CreateRun(ctx, store.NewRun{Pipeline: ref, Commit: "c0ffee", Trigger: store.TriggerManual})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reads.Store.TransitionRun(ctx, ref, run.BuildID, store.RunQueued, store.RunRunning, ""); err != nil {
		t.Fatal(err)
	}
	s := &Server{Triggers: rec, Records: rec, Metrics: rec, Reads: reads, Changes: feed,
		Log: logrus.NewEntry(logrus.New()), Users: []config.APIUser{user("v", []config.Role{config.RoleViewer})}}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	url := fmt.Sprintf("%s/api/v1/pipelines/deploy/runs/%d/logs/stream", srv.URL, run.BuildID)
	_, events := follow(t, url, "")

	next := func() sse.Event {
		t.Helper()
		e, err := events.Next()
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	if e := next(); e.Name != "status" {
		t.Fatalf("first event %+v, want the run's status", e)
	}
	var lastID string
	for i := range 20 {
		// Each line is written only after the previous one was seen: they arrive live.
		if err := reads.Store.AppendLogs(ctx, ref, run.BuildID, "build", []store.LogLine{{Text: fmt.Sprint("line ", i)}}); err != nil {
			t.Fatal(err)
		}
		e := next()
		var l struct {
			ID   int64
			Text string
		}
		if err := json.Unmarshal([]byte(e.Data), &l); err != nil || e.Name != "line" || l.Text != fmt.Sprint("line ", i) || e.ID != fmt.Sprint(l.ID) {
			t.Fatalf("event %d: %+v (%v)", i, e, err)
		}
		if i == 9 {
			lastID = e.ID
		}
	}
	if _, err := reads.Store.TransitionRun(ctx, ref, run.BuildID, store.RunRunning, store.RunFailed, "exit 2"); err != nil {
		t.Fatal(err)
	}
	if e := next(); e.Name != "status" {
		t.Fatalf("after the run ended: %+v, want its status", e)
	}
	end := next()
	var final Run
	if err := json.Unmarshal([]byte(end.Data), &final); err != nil || end.Name != "end" || final.Status != "failed" || final.Reason != "exit 2" {
		t.Fatalf("end: %+v", end)
	}
	if _, err := events.Next(); err != io.EOF {
		t.Fatalf("after end: %v, want the stream closed", err)
	}

	// Resuming after line 9 of a finished run: lines 10 to 19, then the end.
	_, again := follow(t, url, lastID)
	var texts []string
	for {
		e, err := again.Next()
		if err != nil {
			t.Fatal(err)
		}
		if e.Name == "end" {
			break
		}
		if e.Name == "line" {
			var l struct{ Text string }
			_ = json.Unmarshal([]byte(e.Data), &l)
			texts = append(texts, l.Text)
		}
	}
	if len(texts) != 10 || texts[0] != "line 10" || texts[9] != "line 19" {
		t.Fatalf("resumed: %v", texts)
	}
}
