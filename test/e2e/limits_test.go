package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/store"
	"github.com/slipwayhq/slipway/test/testenv"
)

// TestServeWebhookFloodStaysBounded: 200 senders at once, each trickling a 3 MiB body
// with a well-formed but wrong signature. The daemon reads at most
// webhooks.maxConcurrentReads bodies at once and answers the rest 503 at once; the ones it
// reads it cuts off at webhooks.readTimeout; /healthz answers throughout, the refusals are
// counted, and 200 unsigned senders are refused without a byte of their bodies read.
func TestServeWebhookFloodStaysBounded(t *testing.T) {
	env := testenv.Get(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "hook-secret"), []byte("flood-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, url := newWorkRepo(t, env)
	cfg := writeConfigFor(t, env, dir, "flood", url, env.GitUser, env.GitPassword,
		"poll: 0s\nwebhook: {type: generic, secretFile: hook-secret}")
	appendConfig(t, cfg, "webhooks:\n  maxConcurrentReads: 8\n  readTimeout: 3s\n")
	server, tokenFile := withAPI(t, cfg)
	metrics := testenv.FreeAddress(t)
	d := startAPIServe(t, cfg, server, tokenFile, "--metrics-address", metrics)

	const n = 200
	signed := "Content-Type: application/json\r\nX-Slipway-Event: push\r\nX-Slipway-Signature-256: sha256=" + strings.Repeat("0", 64) + "\r\n"
	results, health := testenv.WebhookFlood(t, server, "/hooks/flood", signed, n)
	var refused, timedOut int
	var slowestRefusal, slowestTimeout time.Duration
	for i, r := range results {
		switch {
		case r.Err != nil:
			t.Errorf("sender %d: %v after %s", i, r.Err, r.After)
		case r.Status == http.StatusServiceUnavailable:
			refused++
			slowestRefusal = max(slowestRefusal, r.After)
		case r.Status == http.StatusRequestTimeout:
			timedOut++
			slowestTimeout = max(slowestTimeout, r.After)
		default:
			t.Errorf("sender %d: %d after %s, want 503 or 408", i, r.Status, r.After)
		}
	}
	t.Logf("%d senders: %d refused at once (slowest %s), %d read and cut off (slowest %s); /healthz p50 %s p99 %s max %s over %d checks",
		n, refused, slowestRefusal, timedOut, slowestTimeout, testenv.Percentile(health, 0.5), testenv.Percentile(health, 0.99), testenv.Percentile(health, 1), len(health))
	// Every body read ends at the read timeout, so at most 8 reads per 3s go on: the flood
	// arrives within a few seconds, and nearly all of it is refused.
	if refused < n-4*8 {
		t.Errorf("only %d of %d slow senders were refused; the read cap does not hold", refused, n)
	}
	if slowestRefusal > 2*time.Second {
		t.Errorf("a refusal took %s; it should come at once", slowestRefusal)
	}
	if slowestTimeout > 3*time.Second+3*time.Second {
		t.Errorf("a slow body held its read slot for %s, past the 3s read timeout", slowestTimeout)
	}
	if p := testenv.Percentile(health, 1); p > 2*time.Second {
		t.Errorf("/healthz took %s during the flood", p)
	}

	// Unsigned senders are refused before their bodies are read.
	unsigned := "Content-Type: application/json\r\nX-Slipway-Event: push\r\n"
	results, _ = testenv.WebhookFlood(t, server, "/hooks/flood", unsigned, n)
	for i, r := range results {
		if r.Err != nil || r.Status != http.StatusUnauthorized || r.After > 2*time.Second {
			t.Errorf("unsigned sender %d: %d %v after %s, want 401 at once", i, r.Status, r.Err, r.After)
			break
		}
	}
	rss := testenv.PeakRSS(t, d.cmd.Process.Pid)
	t.Logf("daemon peak RSS %d MiB", rss>>20)
	if rss > 300<<20 {
		t.Errorf("daemon peak RSS %d MiB, over 300 MiB", rss>>20)
	}
	body := scrape(t, metrics)
	for _, want := range []string{
		fmt.Sprintf(`slipway_triggers_rejected_total{reason="busy",repository="flood"} %d`, refused),
		fmt.Sprintf(`slipway_triggers_rejected_total{reason="read_timeout",repository="flood"} %d`, timedOut),
		fmt.Sprintf(`slipway_triggers_rejected_total{reason="missing_signature",repository="flood"} %d`, n),
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s:\n%s", want, grepLines(body, "slipway_triggers_rejected_total"))
		}
	}
}

// TestServeRunsBeyondTheCapWaitQueued: with runs.maxInFlight 1, one commit starts two
// pipelines; one runs while the other waits as queued, saying why, and runs after it.
func TestServeRunsBeyondTheCapWaitQueued(t *testing.T) {
	env := testenv.Get(t)
	nsA, nsB := env.Namespace(t), env.Namespace(t)
	repo, _, cfg := newProject(t, env)
	appendConfig(t, cfg, "runs:\n  maxInFlight: 1\n")
	// minReadySeconds makes each run wait ~8s for health: long enough to be seen waiting.
	manifests := strings.Replace(string(readExample(t, env, "2048-yaml/2048_env.yaml")), "spec:\n  selector:", "spec:\n  minReadySeconds: 8\n  selector:", 1)
	pipe := func(name, ns string) string {
		return strings.Replace(string(deployPipeline(env.Registry, ns, "", "60s", "")), "name: jack-2048", "name: "+name, 1)
	}
	repo.commit("two pipelines", map[string][]byte{".pipeline.yaml": []byte(pipe("cap-a", nsA) + "---\n" + pipe("cap-b", nsB)),
		"2048_env.yaml": []byte(manifests)})
	startServe(t, cfg)

	// One of the two waits, queued, with the reason.
	var waiting string
	deadline := time.Now().Add(60 * time.Second)
	for waiting == "" {
		for _, name := range []string{"cap-a", "cap-b"} {
			out, code := slipway(t, "history", "--config", cfg, name, "-o", "json")
			if code != 0 {
				continue
			}
			if h := parseHistory(t, out); len(h) == 1 && h[0].Status == "queued" && strings.Contains(h[0].Reason, "runs.maxInFlight") {
				waiting = name
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no run was seen waiting for a place")
		}
		time.Sleep(200 * time.Millisecond)
	}
	running := map[string]string{"cap-a": "cap-b", "cap-b": "cap-a"}[waiting]
	h := waitPipelineHistory(t, cfg, running, 5*time.Second, "the other run in flight", func(h []historyEntry) bool { return len(h) == 1 })
	if h[0].Status != "running" {
		t.Fatalf("%s is %s while %s waits; want running", running, h[0].Status, waiting)
	}
	// Then both succeed, the waiting one after the other.
	first := waitPipelineHistory(t, cfg, running, 120*time.Second, running+" succeeded", func(h []historyEntry) bool { return len(h) == 1 && h[0].Status == "succeeded" })
	second := waitPipelineHistory(t, cfg, waiting, 120*time.Second, waiting+" succeeded", func(h []historyEntry) bool { return len(h) == 1 && h[0].Status == "succeeded" })
	firstStart, _ := time.Parse(time.RFC3339Nano, first[0].Started)
	secondStart, _ := time.Parse(time.RFC3339Nano, second[0].Started)
	if end := firstStart.Add(time.Duration(first[0].Duration * float64(time.Second))); secondStart.Before(end.Add(-time.Second)) {
		t.Errorf("%s started at %s, before %s ended at %s", waiting, secondStart, running, end)
	}
}

// TestServeRunWaitingForHealthGivesItsPlaceUp: with runs.maxInFlight 1, a run waiting for
// health that the shared watches report gives its place up: once a first deploy made the
// drift watch follow the kinds, two pipelines' runs, each slow to turn healthy, wait for
// health at the same time, and both succeed.
func TestServeRunWaitingForHealthGivesItsPlaceUp(t *testing.T) {
	env := testenv.Get(t)
	nsA, nsB := env.Namespace(t), env.Namespace(t)
	repo, _, cfg := newProject(t, env)
	appendConfig(t, cfg, "runs:\n  maxInFlight: 1\n")
	plain := string(readExample(t, env, "2048-yaml/2048_env.yaml"))
	// minReadySeconds holds each run in its health wait for ~15 s.
	slow := strings.Replace(plain, "spec:\n  selector:", "spec:\n  minReadySeconds: 15\n  selector:", 1)
	pipe := func(name, ns string) string {
		return strings.Replace(string(deployPipeline(env.Registry, ns, "", "90s", "")), "name: jack-2048", "name: "+name, 1)
	}
	repo.commit("one pipeline", map[string][]byte{".pipeline.yaml": []byte(pipe("place-a", nsA)), "2048_env.yaml": []byte(plain)})
	d := startServe(t, cfg, "--log-level", "debug")
	waitPipelineHistory(t, cfg, "place-a", 120*time.Second, "the first deploy", func(h []historyEntry) bool {
		return len(h) == 1 && h[0].Status == "succeeded"
	})
	// The drift watch follows the deployed kinds with the shared informers; they sync
	// moments after.
	d.waitOutput(t, 30*time.Second, "drift: watching current revisions")
	time.Sleep(2 * time.Second)

	repo.commit("two pipelines, slow to turn healthy", map[string][]byte{
		".pipeline.yaml": []byte(pipe("place-a", nsA) + "---\n" + pipe("place-b", nsB)), "2048_env.yaml": []byte(slow)})
	a := waitPipelineHistory(t, cfg, "place-a", 150*time.Second, "place-a's second run succeeded", func(h []historyEntry) bool {
		return len(h) == 2 && h[0].BuildID == 2 && h[0].Status == "succeeded"
	})[0]
	b := waitPipelineHistory(t, cfg, "place-b", 150*time.Second, "place-b's run succeeded", func(h []historyEntry) bool {
		return len(h) == 1 && h[0].Status == "succeeded"
	})[0]
	span := func(e historyEntry) (time.Time, time.Time) {
		start, err := time.Parse(time.RFC3339Nano, e.Started)
		if err != nil {
			t.Fatal(err)
		}
		return start, start.Add(time.Duration(e.Duration * float64(time.Second)))
	}
	aStart, aEnd := span(a)
	bStart, bEnd := span(b)
	end, start := aEnd, aStart
	if bEnd.Before(end) {
		end = bEnd
	}
	if bStart.After(start) {
		start = bStart
	}
	overlap := end.Sub(start)
	t.Logf("place-a ran %s, place-b %s, together %s", aEnd.Sub(aStart).Round(time.Millisecond), bEnd.Sub(bStart).Round(time.Millisecond), overlap.Round(time.Millisecond))
	if overlap < 5*time.Second {
		t.Fatalf("the two runs overlapped %s: one held the only place through its health wait", overlap)
	}
}

// TestServeRetentionPrunesOldRecords: records older than the retention are deleted by the
// daemon, newer ones and the whole audit log stay.
func TestServeRetentionPrunesOldRecords(t *testing.T) {
	env := testenv.Get(t)
	_, repoName, cfg := newProject(t, env)
	appendConfig(t, cfg, `retention:
  interval: 1s
  batch: 3
  webhookDeliveries: {maxAge: 24h}
  pullRequestEvents: {maxAge: 240h, maxCount: 4}
  driftEvents: {maxAge: 240h, maxCount: 0}
`)
	ctx := context.Background()
	dbPath := filepath.Join(filepath.Dir(cfg), "data", "slipway.db")
	if err := os.MkdirAll(filepath.Dir(dbPath), 0o700); err != nil {
		t.Fatal(err)
	}
	ref := store.PipelineRef{Repository: repoName, Name: "old"}
	// Thirty days ago: 10 of each and 10 audit entries; then 2 recent ones of each.
	at := time.Now().Add(-30 * 24 * time.Hour)
	st, err := store.Open(ctx, "sqlite://"+dbPath, store.WithClock(func() time.Time { return at }))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateRun(ctx, store.NewRun{Pipeline: ref, Commit: "c", Branch: "master", Trigger: store.TriggerPush}); err != nil {
		t.Fatal(err)
	}
	record := func(prefix string, n int) {
		for i := range n {
			if _, err := st.RecordDelivery(ctx, repoName, fmt.Sprintf("%s-%d", prefix, i)); err != nil {
				t.Fatal(err)
			}
			if _, err := st.RecordPullRequestEvent(ctx, store.PullRequestEvent{Repository: repoName, Number: i + 1, Action: "opened"}); err != nil {
				t.Fatal(err)
			}
			if _, err := st.RecordDriftEvent(ctx, store.NewDriftEvent{Pipeline: ref, BuildID: 1, Task: "web", Cluster: "e2e",
				Object: store.InventoryEntry{Version: "v1", Kind: "ConfigMap", Namespace: "x", Name: "y"}, Action: store.DriftReported}); err != nil {
				t.Fatal(err)
			}
			if _, err := st.RecordAudit(ctx, store.AuditEntry{Actor: "alice", Action: store.AuditTrigger, Pipeline: ref, BuildID: 1}); err != nil {
				t.Fatal(err)
			}
		}
	}
	record("old", 10)
	at = time.Now()
	record("new", 2)
	st.Close()

	d := startServe(t, cfg)
	d.waitOutput(t, 30*time.Second, "retention: old records deleted")

	st, err = store.Open(ctx, "sqlite://"+dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if evs, _ := st.ListDriftEvents(ctx, ref, 0); len(evs) != 2 {
		t.Errorf("drift events left: %d, want the 2 recent ones", len(evs))
	}
	if evs, _ := st.ListPullRequestEvents(ctx, repoName, 0, 0); len(evs) != 2 {
		t.Errorf("pull request events left: %d, want the 2 recent ones", len(evs))
	}
	if fresh, _ := st.RecordDelivery(ctx, repoName, "old-3"); !fresh {
		t.Error("an old delivery id is still remembered")
	}
	if fresh, _ := st.RecordDelivery(ctx, repoName, "new-1"); fresh {
		t.Error("a recent delivery id was forgotten")
	}
	if audit, _ := st.ListAudit(ctx, store.AuditFilter{}); len(audit) != 12 {
		t.Errorf("audit entries: %d, want all 12", len(audit))
	}
	if !strings.Contains(d.output(), "webhook_deliveries=10") || !strings.Contains(d.output(), "drift_events=10") {
		t.Errorf("the daemon did not say what it deleted:\n%s", grepLines(d.output(), "retention"))
	}
}
