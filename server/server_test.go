package server

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/slipwayhq/slipway/config"
	"github.com/slipwayhq/slipway/reconciler/trigger"
	"github.com/slipwayhq/slipway/store"
)

// recorder stands in for the hub, the store and the metrics: the handler's job is only to
// decide what reaches them.
type recorder struct {
	calls      []string // "Trigger by alice", ... in order: what reached the hub and the store
	repository string   // the repository Resolve answers; "" = app
	hints      []trigger.Hint
	deliveries map[string]bool
	prs        []store.PullRequestEvent
	counts     map[string]int
	answerErr  error // what Cancel and Approve return
}

func newRecorder() *recorder {
	return &recorder{deliveries: map[string]bool{}, counts: map[string]int{}}
}

func (r *recorder) Hint(_ context.Context, _ string, h trigger.Hint) error {
	r.hints = append(r.hints, h)
	return nil
}
func (r *recorder) Trigger(_ context.Context, _ store.PipelineRef, _, _, actor string) (store.Run, error) {
	r.calls = append(r.calls, "Trigger by "+actor)
	return store.Run{BuildID: 7, Status: store.RunQueued, Trigger: store.TriggerManual}, nil
}
func (r *recorder) Rerun(_ context.Context, _ store.PipelineRef, _ int64, actor string) (store.Run, error) {
	r.calls = append(r.calls, "Rerun by "+actor)
	return store.Run{}, nil
}
func (r *recorder) Cancel(_ context.Context, _ store.PipelineRef, _ int64, actor string) error {
	r.calls = append(r.calls, "Cancel by "+actor)
	return r.answerErr
}
func (r *recorder) Suspend(_ context.Context, _ store.PipelineRef, suspend bool, actor, _ string) (store.Pipeline, error) {
	r.calls = append(r.calls, fmt.Sprintf("Suspend %v by %s", suspend, actor))
	return store.Pipeline{Suspended: suspend}, nil
}
func (r *recorder) Promote(_ context.Context, _ store.PipelineRef, _ int64, to, actor string) (store.Run, error) {
	r.calls = append(r.calls, "Promote to "+to+" by "+actor)
	return store.Run{BuildID: 8, Status: store.RunQueued, Trigger: store.TriggerPromote}, nil
}
func (r *recorder) Approve(_ context.Context, _ store.PipelineRef, _ int64, actor string, approve bool, _ string) error {
	r.calls = append(r.calls, fmt.Sprintf("Approve %v by %s", approve, actor))
	return r.answerErr
}
func (r *recorder) Resolve(_ context.Context, repo, name string) (store.PipelineRef, error) {
	r.calls = append(r.calls, "Resolve")
	if r.repository != "" {
		return store.PipelineRef{Repository: r.repository, Name: name}, nil
	}
	return store.PipelineRef{Repository: "app", Name: name}, nil
}
func (r *recorder) RecordDelivery(_ context.Context, repo, id string) (bool, error) {
	if r.deliveries[repo+"/"+id] {
		return false, nil
	}
	r.deliveries[repo+"/"+id] = true
	return true, nil
}
func (r *recorder) ForgetDelivery(_ context.Context, repo, id string) error {
	delete(r.deliveries, repo+"/"+id)
	return nil
}
func (r *recorder) RecordPullRequestEvent(_ context.Context, e store.PullRequestEvent) (store.PullRequestEvent, error) {
	r.prs = append(r.prs, e)
	return e, nil
}
func (r *recorder) GetRun(context.Context, store.PipelineRef, int64) (store.Run, error) {
	r.calls = append(r.calls, "GetRun")
	return store.Run{}, nil
}
func (r *recorder) Received(repo, source string) { r.counts["received/"+source]++ }
func (r *recorder) Rejected(repo, reason string) { r.counts["rejected/"+reason]++ }
func (r *recorder) Duplicate(repo string)        { r.counts["duplicate"]++ }

var secret = []byte("hook-secret")

func newTestServer(rec *recorder) *httptest.Server {
	s := &Server{
		Hooks:    map[string]Hook{"app": {Provider: "generic", Secret: secret, Branches: []string{"main", "release/*"}}},
		Triggers: rec, Records: rec, Metrics: rec, Users: []config.APIUser{config.LegacyAPIUser([]byte("api-token"))},
		Log: logrus.NewEntry(logrus.New()),
	}
	return httptest.NewServer(s.Handler())
}

func post(t *testing.T, url string, body []byte, headers map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func signedHeaders(body []byte, delivery string) map[string]string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return map[string]string{"X-Slipway-Event": "push", "X-Slipway-Delivery": delivery,
		"X-Slipway-Signature-256": "sha256=" + hex.EncodeToString(m.Sum(nil)), "Content-Type": "application/json"}
}

func TestHookVerifiesDeduplicatesAndHints(t *testing.T) {
	rec := newRecorder()
	srv := newTestServer(rec)
	defer srv.Close()
	after := strings.Repeat("b", 40)
	body, _ := json.Marshal(map[string]any{"ref": "refs/heads/main", "before": strings.Repeat("a", 40), "after": after, "message": "m"})

	// A bad signature is 401 and reaches nothing; so is a missing one.
	bad := signedHeaders(body, "d-1")
	bad["X-Slipway-Signature-256"] = "sha256=" + strings.Repeat("0", 64)
	if code, out := post(t, srv.URL+"/hooks/app", body, bad); code != http.StatusUnauthorized {
		t.Fatalf("bad signature: %d %s", code, out)
	}
	missing := signedHeaders(body, "d-1")
	delete(missing, "X-Slipway-Signature-256")
	if code, _ := post(t, srv.URL+"/hooks/app", body, missing); code != http.StatusUnauthorized {
		t.Fatalf("missing signature: %d", code)
	}
	if len(rec.hints) != 0 || len(rec.deliveries) != 0 {
		t.Fatalf("a rejected delivery reached the hub or the store: %+v %+v", rec.hints, rec.deliveries)
	}
	// A good one is accepted and hinted; its redelivery is 200 duplicate and hints nothing.
	if code, out := post(t, srv.URL+"/hooks/app", body, signedHeaders(body, "d-1")); code != http.StatusAccepted || !strings.Contains(out, `"accepted"`) {
		t.Fatalf("good delivery: %d %s", code, out)
	}
	if code, out := post(t, srv.URL+"/hooks/app", body, signedHeaders(body, "d-1")); code != http.StatusOK || !strings.Contains(out, "duplicate") {
		t.Fatalf("redelivery: %d %s", code, out)
	}
	if len(rec.hints) != 1 || rec.hints[0].Commit != after || rec.hints[0].DeliveryID != "d-1" {
		t.Fatalf("hints = %+v", rec.hints)
	}
	// Unknown repositories are 404; bodies over the limit 413.
	if code, _ := post(t, srv.URL+"/hooks/nope", body, signedHeaders(body, "d-2")); code != http.StatusNotFound {
		t.Fatalf("unknown repository: %d", code)
	}
	huge := bytes.Repeat([]byte("x"), 3<<20+1)
	if code, _ := post(t, srv.URL+"/hooks/app", huge, signedHeaders(huge, "d-3")); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("huge body: %d", code)
	}
	// A push to another branch is accepted but hints nothing.
	other, _ := json.Marshal(map[string]any{"ref": "refs/heads/feature", "before": strings.Repeat("a", 40), "after": after})
	if code, out := post(t, srv.URL+"/hooks/app", other, signedHeaders(other, "d-4")); code != http.StatusAccepted || !strings.Contains(out, "branch feature is not tracked") {
		t.Fatalf("other branch: %d %s", code, out)
	}
	// A branch matching a tracked glob is hinted, with its name.
	release, _ := json.Marshal(map[string]any{"ref": "refs/heads/release/1.4", "before": strings.Repeat("a", 40), "after": after})
	if code, out := post(t, srv.URL+"/hooks/app", release, signedHeaders(release, "d-5")); code != http.StatusAccepted || !strings.Contains(out, `"accepted"`) {
		t.Fatalf("tracked glob branch: %d %s", code, out)
	}
	// A tag push is hinted too: the watcher lists the tags and decides.
	tag, _ := json.Marshal(map[string]any{"ref": "refs/tags/v1.4.0", "before": strings.Repeat("0", 40), "after": after})
	if code, out := post(t, srv.URL+"/hooks/app", tag, signedHeaders(tag, "d-6")); code != http.StatusAccepted || !strings.Contains(out, "triggers.tags") {
		t.Fatalf("tag push: %d %s", code, out)
	}
	want := map[string]int{"rejected/bad_signature": 1, "rejected/missing_signature": 1, "duplicate": 1,
		"rejected/unknown_repository": 1, "rejected/too_large": 1, "received/webhook": 4}
	for k, n := range want {
		if rec.counts[k] != n {
			t.Errorf("metric %s = %d, want %d (all: %v)", k, rec.counts[k], n, rec.counts)
		}
	}
	if len(rec.hints) != 3 || rec.hints[1].Branch != "release/1.4" || rec.hints[2].Tag != "v1.4.0" || rec.hints[2].Branch != "" {
		t.Fatalf("hints = %+v, want main, release/1.4 and the tag", rec.hints)
	}
}

func TestAPIRequiresTheToken(t *testing.T) {
	rec := newRecorder()
	srv := newTestServer(rec)
	defer srv.Close()
	for token, want := range map[string]int{"": http.StatusUnauthorized, "Bearer nope": http.StatusUnauthorized,
		"Bearer api-token": http.StatusCreated, "bearer api-token": http.StatusCreated, "api-token": http.StatusUnauthorized} {
		h := map[string]string{"Authorization": token}
		if code, out := post(t, srv.URL+"/api/v1/pipelines/deploy/runs", nil, h); code != want {
			t.Errorf("Authorization %q: %d %s, want %d", token, code, out, want)
		}
	}
	off := &Server{Triggers: rec, Records: rec, Metrics: rec, Log: logrus.NewEntry(logrus.New())}
	srv2 := httptest.NewServer(off.Handler())
	defer srv2.Close()
	if code, _ := post(t, srv2.URL+"/api/v1/pipelines/deploy/runs", nil, map[string]string{"Authorization": "Bearer "}); code != http.StatusForbidden {
		t.Errorf("an API without a token configured answered %d, want 403", code)
	}
	h := map[string]string{"Authorization": "Bearer api-token"}
	if code, out := post(t, srv.URL+"/api/v1/pipelines/deploy/runs", []byte(`{"commit":"a","rerun":1}`), h); code != http.StatusBadRequest {
		t.Errorf("commit and rerun together: %d %s", code, out)
	}
	if code, out := post(t, srv.URL+"/api/v1/pipelines/deploy/runs", []byte(`{"comit":"a"}`), h); code != http.StatusBadRequest || !strings.Contains(out, "comit") {
		t.Errorf("a misspelt field: %d %s", code, out)
	}
}

// /readyz answers 503 while the store does not answer, without saying more than that to an
// unauthenticated caller, and 200 once it does; /healthz only says the process serves.
func TestReadyzFollowsTheStore(t *testing.T) {
	storeErr := errors.New("database is locked at /var/lib/slipway/slipway.db")
	s := &Server{Ready: func(context.Context) error { return storeErr }, Log: logrus.NewEntry(logrus.New())}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/readyz"); code != http.StatusServiceUnavailable || strings.Contains(body, "/var/lib") {
		t.Errorf("/readyz with the store down = %d %s; want 503 without the store's error", code, body)
	}
	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d, want 200 while the process serves", code)
	}
	storeErr = nil
	if code, body := get("/readyz"); code != http.StatusOK {
		t.Errorf("/readyz with the store up = %d %s", code, body)
	}
}

func (r *recorder) Rollback(_ context.Context, _ store.PipelineRef, to int64, actor string) (store.Run, error) {
	r.calls = append(r.calls, fmt.Sprintf("Rollback to %d by %s", to, actor))
	return store.Run{BuildID: 9, Status: store.RunQueued, Trigger: store.TriggerRollback, ParentBuildID: to}, nil
}
