package notify

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/slipwayhq/slipway/config"
	"github.com/slipwayhq/slipway/store"
)

func TestSignAndVerify(t *testing.T) {
	key, body := []byte("k3y"), []byte(`{"id":"slipway-event-1"}`)
	now := time.Unix(1_800_000_000, 0)
	sig := Sign(key, now, body)
	if !strings.HasPrefix(sig, "sha256=") || len(sig) != len("sha256=")+64 {
		t.Fatalf("signature %q", sig)
	}
	ts := "1800000000"
	if err := Verify(key, ts, sig, body, now.Add(time.Minute), 5*time.Minute); err != nil {
		t.Fatalf("a good delivery: %v", err)
	}
	for name, c := range map[string]struct {
		key       []byte
		ts, sig   string
		body      []byte
		now       time.Time
		wantError error
	}{
		"tampered body":       {key, ts, sig, []byte(`{"id":"slipway-event-2"}`), now, ErrBadSignature},
		"other key":           {[]byte("other"), ts, sig, body, now, ErrBadSignature},
		"timestamp moved":     {key, "1800000001", sig, body, now, ErrBadSignature},
		"replayed an hour on": {key, ts, sig, body, now.Add(time.Hour), ErrStale},
		"no timestamp":        {key, "", sig, body, now, ErrStale},
		"no prefix":           {key, ts, strings.TrimPrefix(sig, "sha256="), body, now, ErrBadSignature},
	} {
		if err := Verify(c.key, c.ts, c.sig, c.body, c.now, 5*time.Minute); !errors.Is(err, c.wantError) {
			t.Errorf("%s: %v, want %v", name, err, c.wantError)
		}
	}
}

// fakeRecords is a run with one task whose output holds a value its revision masks.
type fakeRecords struct {
	run   store.Run
	tasks []store.Task
	revs  []store.Revision
}

func (f fakeRecords) GetRun(context.Context, store.PipelineRef, int64) (store.Run, error) {
	return f.run, nil
}
func (f fakeRecords) ListTasks(context.Context, store.PipelineRef, int64) ([]store.Task, error) {
	return f.tasks, nil
}
func (f fakeRecords) ListRevisions(context.Context, store.PipelineRef, int64) ([]store.Revision, error) {
	return f.revs, nil
}
func (f fakeRecords) GetDriftEvent(context.Context, store.PipelineRef, int64) (store.DriftEvent, error) {
	return store.DriftEvent{}, store.ErrNotFound
}

func TestBuildRunMessage(t *testing.T) {
	ref := store.PipelineRef{Repository: "jack-2048", Name: "web"}
	start := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	rec := fakeRecords{
		run: store.Run{Pipeline: ref, BuildID: 7, Commit: "8edaa352c8fc", Branch: "master", Trigger: store.TriggerPush,
			Status: store.RunFailed, Reason: "task deploy: rolled back to BUILD_ID 6: hunter2-secret leaked", StartedAt: start, FinishedAt: start.Add(90 * time.Second)},
		tasks: []store.Task{{Stage: "build", Name: "image", Status: store.TaskSucceeded, Outputs: map[string]string{"digest": "sha256:abc", "token": "x hunter2-secret y"}},
			{Stage: "deploy", Name: "deploy", Status: store.TaskFailed, Reason: "health\nsecond line"}},
		revs: []store.Revision{{Status: store.RevisionRolledBack, Masks: []string{"hunter2-secret"}}},
	}
	m, err := build(context.Background(), rec, "https://slipway.example.com/", store.NotificationEvent{ID: 3, Kind: store.NotifyRun,
		Pipeline: ref, BuildID: 7, Status: string(store.RunFailed), CreatedAt: start})
	if err != nil {
		t.Fatal(err)
	}
	if m.Event != config.EventRunRolledBack || m.Run.URL != "https://slipway.example.com/ui/p/jack-2048/web/runs/7" || m.Run.DurationSeconds != 90 || m.ID != "slipway-event-3" {
		t.Fatalf("message %+v %+v", m, m.Run)
	}
	body, _ := json.Marshal(m)
	text := m.Subject() + "\n" + m.Text()
	for _, s := range []string{string(body), text} {
		if strings.Contains(s, "hunter2-secret") {
			t.Errorf("a masked value shows:\n%s", s)
		}
	}
	for _, want := range []string{"[slipway] jack-2048/web #7 rolled back (failed)", "BUILD_ID:  7", "Commit:    8edaa352c8fc (master)",
		"Duration:  1m30s", "tasks.image.digest=sha256:abc", "tasks.image.token=x *** y", "deploy/deploy: failed (health)",
		"Run:       https://slipway.example.com/ui/p/jack-2048/web/runs/7"} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q:\n%s", want, text)
		}
	}
	// A run waiting at a gate; one that is gone (pruned) is dropped.
	rec.run.Status, rec.revs = store.RunAwaitingApproval, nil
	m, _ = build(context.Background(), rec, "", store.NotificationEvent{Kind: store.NotifyRun, Pipeline: ref, BuildID: 7, Status: string(store.RunAwaitingApproval)})
	if m.Event != config.EventApprovalNeeded || m.Subject() != "[slipway] jack-2048/web #7 waits for approval" || m.Run.URL != "" {
		t.Errorf("approval: %+v %q", m, m.Subject())
	}
	if _, err := build(context.Background(), rec, "", store.NotificationEvent{Kind: store.NotifyDrift, Pipeline: ref}); !errors.Is(err, errGone) {
		t.Errorf("pruned drift event: %v", err)
	}
}

func TestMailHeadersCannotBeInjected(t *testing.T) {
	ml := &Mail{From: "slipway@example.com", To: []string{"ops@example.com"}}
	m := Message{ID: "slipway-event-1", Event: "run.succeeded", Repository: "r\r\nBcc: evil@example.com", Pipeline: "p", BuildID: 1,
		Run: &Run{Status: "succeeded", Tasks: []Task{{Name: "t", Outputs: map[string]string{"k": "naïve\r\n.\r\nRCPT TO:<x>"}}}}}
	raw := string(ml.compose(m, "smtp.example.com"))
	head, body, _ := strings.Cut(raw, "\r\n\r\n")
	if strings.Contains(head, "\r\nBcc:") {
		t.Errorf("a value added a header:\n%s", head)
	}
	_ = body // a line holding only "." is dot-stuffed by net/smtp's DATA writer
	if !strings.Contains(head, "Subject: [slipway] r  Bcc: evil@example.com/p #1 succeeded\r\n") || !strings.Contains(head, "Content-Transfer-Encoding: quoted-printable") {
		t.Errorf("headers:\n%s", head)
	}
	m.Pipeline = "проверка"
	if head, _, _ := strings.Cut(string(ml.compose(m, "h")), "\r\n\r\n"); !strings.Contains(head, "Subject: =?utf-8?q?") {
		t.Errorf("a non-ASCII subject is not Q-encoded:\n%s", head)
	}
}

// receiver is a webhook endpoint that fails its first failures requests.
type receiver struct {
	mu       sync.Mutex
	failures int
	got      [][]byte
	headers  []http.Header
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failures > 0 {
		r.failures--
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	r.got = append(r.got, body)
	r.headers = append(r.headers, req.Header.Clone())
}

func (r *receiver) received() ([][]byte, []http.Header) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.got...), append([]http.Header(nil), r.headers...)
}

// With a real store: a finished run reaches the webhook target signed, after two failed
// attempts, exactly once; a target that always fails neither blocks it nor is given up
// before maxAttempts; a target not selecting the event gets nothing.
func TestNotifierDeliversOnceWithRetries(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "s.db"), store.WithNotifications())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	good := &receiver{failures: 2}
	goodSrv := httptest.NewServer(good)
	defer goodSrv.Close()
	bad := &receiver{failures: 1 << 30}
	badSrv := httptest.NewServer(bad)
	defer badSrv.Close()
	key := []byte("signing-key")
	targets := []Target{
		{Config: config.NotificationTarget{Name: "good", Type: "webhook"}, Sender: &Webhook{URL: goodSrv.URL, Key: key, Client: http.DefaultClient, Now: time.Now}},
		{Config: config.NotificationTarget{Name: "bad", Type: "slack"}, Sender: &Slack{URL: badSrv.URL, Client: http.DefaultClient}},
		{Config: config.NotificationTarget{Name: "drift-only", Type: "webhook", Events: []string{config.EventDriftDetected}},
			Sender: &Webhook{URL: goodSrv.URL, Key: key, Client: http.DefaultClient, Now: time.Now}},
	}
	retry := config.NotificationRetry{InitialDelay: config.Duration{Duration: 50 * time.Millisecond}, MaxDelay: config.Duration{Duration: 200 * time.Millisecond}, MaxAttempts: 4}
	n := New(Options{Queue: st, Records: st, Targets: targets, Retry: retry, Sweep: 100 * time.Millisecond, Log: quietLog()})
	ref := store.PipelineRef{Repository: "jack-2048", Name: "web"}
	if _, err := st.CreateRun(ctx, store.NewRun{Pipeline: ref, Commit: "abc", Branch: "master", Trigger: store.TriggerPush}); err != nil {
		t.Fatal(err)
	}
	for _, to := range []store.RunStatus{store.RunRunning, store.RunSucceeded} {
		from := store.RunQueued
		if to == store.RunSucceeded {
			from = store.RunRunning
		}
		if _, err := st.TransitionRun(ctx, ref, 1, from, to, ""); err != nil {
			t.Fatal(err)
		}
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { n.Run(runCtx); close(done) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ds, _ := st.ListDeliveries(ctx)
		if len(ds) == 2 && ds[0].State == store.DeliverySent && ds[1].State == store.DeliveryFailed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deliveries %+v", ds)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // nothing more may arrive
	stop()
	<-done
	got, headers := good.received()
	if len(got) != 1 {
		t.Fatalf("webhook got %d deliveries, want 1", len(got))
	}
	h := headers[0]
	if err := Verify(key, h.Get(HeaderTimestamp), h.Get(HeaderSignature), got[0], time.Now(), 5*time.Minute); err != nil {
		t.Errorf("signature: %v", err)
	}
	var m Message
	if err := json.Unmarshal(got[0], &m); err != nil || m.Event != config.EventRunSucceeded || m.BuildID != 1 || m.Run.Commit != "abc" ||
		h.Get(HeaderEvent) != m.Event || h.Get(HeaderDelivery) != m.ID {
		t.Errorf("message %+v %v, headers %v", m, err, h)
	}
	ds, _ := st.ListDeliveries(ctx)
	if ds[0].Target != "good" || ds[0].Attempts != 3 || ds[1].Target != "bad" || ds[1].Attempts != 4 || !strings.Contains(ds[1].LastError, "503") {
		t.Errorf("deliveries %+v", ds)
	}
	if strings.Contains(ds[1].LastError, badSrv.URL) {
		t.Errorf("the Slack URL (a credential) is in the error: %s", ds[1].LastError)
	}
}

func quietLog() *logrus.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return logrus.NewEntry(l)
}

// Drift and approvals go through the same outbox: a drift event of a revision that masks a
// value reaches the target selecting drift.detected with the value masked in its patch; a
// run waiting at a gate is approval.needed.
func TestNotifierDriftAndApproval(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "s.db"), store.WithNotifications())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	recv := &receiver{}
	srv := httptest.NewServer(recv)
	defer srv.Close()
	key := []byte("k")
	hook := func(name string, events ...string) Target {
		return Target{Config: config.NotificationTarget{Name: name, Type: "webhook", Events: events},
			Sender: &Webhook{URL: srv.URL, Key: key, Client: http.DefaultClient, Now: time.Now}}
	}
	n := New(Options{Queue: st, Records: st, Targets: []Target{hook("drift", config.EventDriftDetected), hook("gate", config.EventApprovalNeeded)},
		Retry: config.NotificationRetry{InitialDelay: config.Duration{Duration: time.Second}, MaxDelay: config.Duration{Duration: time.Second}, MaxAttempts: 3},
		Log:   quietLog()})
	ref := store.PipelineRef{Repository: "shop", Name: "deploy"}
	if _, err := st.CreateRun(ctx, store.NewRun{Pipeline: ref, Commit: "abc", Trigger: store.TriggerPush}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.SaveRevision(ctx, store.NewRevision{Pipeline: ref, BuildID: 1, Task: "web", Cluster: "prod", Kind: store.DeployYAML,
		Objects: []byte("a: 1"), Masks: []string{"db-pa55word"}}); err != nil {
		t.Fatal(err)
	}
	for _, mv := range [][2]store.RunStatus{{store.RunQueued, store.RunRunning}, {store.RunRunning, store.RunAwaitingApproval}} {
		if _, err := st.TransitionRun(ctx, ref, 1, mv[0], mv[1], "waiting for approval of stage prod"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.RecordDriftEvent(ctx, store.NewDriftEvent{Pipeline: ref, BuildID: 1, Task: "web", Cluster: "prod",
		Object: store.InventoryEntry{Version: "v1", Kind: "ConfigMap", Namespace: "shop", Name: "settings"}, Action: store.DriftReported,
		Manager: "kubectl-edit", Patch: `[{"op":"replace","path":"/data/password","value":"db-pa55word"}]`}); err != nil {
		t.Fatal(err)
	}
	if err := n.Dispatch(ctx); err != nil {
		t.Fatal(err)
	}
	for _, tg := range n.o.Targets {
		if err := n.SendDue(ctx, tg); err != nil {
			t.Fatal(err)
		}
	}
	got, headers := recv.received()
	if len(got) != 2 {
		t.Fatalf("%d deliveries, want 2", len(got))
	}
	events := map[string]Message{}
	for i, b := range got {
		var m Message
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		events[headers[i].Get(HeaderEvent)] = m
		if strings.Contains(string(b), "db-pa55word") {
			t.Errorf("the masked value shows: %s", b)
		}
	}
	d, ok := events[config.EventDriftDetected]
	if !ok || d.Drift == nil || d.Drift.Object != "ConfigMap shop/settings" || d.Drift.Manager != "kubectl-edit" || !strings.Contains(d.Drift.Patch, `"value":"***"`) {
		t.Errorf("drift message %+v", d.Drift)
	}
	a, ok := events[config.EventApprovalNeeded]
	if !ok || a.Run == nil || a.Run.Status != "awaiting_approval" || a.Run.Reason != "waiting for approval of stage prod" || a.Subject() != "[slipway] shop/deploy #1 waits for approval" {
		t.Errorf("approval message %+v", a.Run)
	}
}

// Targets' secret files are read at start: a missing or empty one, or a Slack file that
// holds no URL, is an error naming the target and the file, never the content.
func TestNewSenderReadsSecretFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	key, empty, notURL, slackURL := write("key", "k3y\n"), write("empty", "\n"), write("nourl", "hunter2-not-a-url"), write("slack", "https://hooks.example.com/services/T/B/x\n")
	for _, c := range []struct {
		target config.NotificationTarget
		want   string
	}{
		{config.NotificationTarget{Name: "h", Type: "webhook", URL: "https://x", SecretFile: filepath.Join(dir, "missing")}, "notification target h: secretFile: open " + filepath.Join(dir, "missing")},
		{config.NotificationTarget{Name: "h", Type: "webhook", URL: "https://x", SecretFile: empty}, "notification target h: secretFile: " + empty + " is empty"},
		{config.NotificationTarget{Name: "s", Type: "slack", URLFile: notURL}, "notification target s: urlFile " + notURL + " does not hold an http(s) URL"},
		{config.NotificationTarget{Name: "m", Type: "email", SMTP: &config.SMTP{Address: "h:587", UsernameFile: key, PasswordFile: filepath.Join(dir, "nopw")}}, "notification target m: smtp.passwordFile: open"},
		{config.NotificationTarget{Name: "m", Type: "email", SMTP: &config.SMTP{Address: "h:587", CAFile: key}}, "notification target m: smtp.caFile " + key + " holds no PEM certificate"},
	} {
		_, err := NewSender(c.target, http.DefaultClient, time.Now)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: %v, want %q", c.target.Name, err, c.want)
		}
	}
	s, err := NewSender(config.NotificationTarget{Name: "h", Type: "webhook", URL: "https://x", SecretFile: key}, http.DefaultClient, time.Now)
	if err != nil || string(s.(*Webhook).Key) != "k3y" {
		t.Fatalf("webhook key: %v", err)
	}
	s, err = NewSender(config.NotificationTarget{Name: "s", Type: "slack", URLFile: slackURL}, http.DefaultClient, time.Now)
	if err != nil || s.(*Slack).URL != "https://hooks.example.com/services/T/B/x" {
		t.Fatalf("slack URL: %v", err)
	}
}
