package e2e

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/store"
	"github.com/slipwayhq/slipway/test/testenv"
)

// relayed is one webhook request as Gitea sent it.
type relayed struct {
	header http.Header
	body   []byte
	at     time.Time
	status int
}

// hookRelay sits between Gitea and the daemon: it forwards each delivery unchanged and
// keeps a copy, so a test can replay one byte for byte (Gitea's API has no redelivery).
type hookRelay struct {
	target string
	mu     sync.Mutex
	got    []relayed
	srv    *httptest.Server
}

func newHookRelay(t *testing.T, target string) *hookRelay {
	t.Helper()
	r := &hookRelay{target: target}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		d := relayed{header: req.Header.Clone(), body: body, at: time.Now()}
		status, answer := r.send(d.header, body)
		d.status = status
		r.mu.Lock()
		r.got = append(r.got, d)
		r.mu.Unlock()
		w.WriteHeader(status)
		_, _ = w.Write(answer)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// send posts a delivery to the daemon and returns its answer.
func (r *hookRelay) send(h http.Header, body []byte) (int, []byte) {
	req, _ := http.NewRequest(http.MethodPost, r.target, bytes.NewReader(body))
	for k, vs := range h {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return http.StatusBadGateway, []byte(err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (r *hookRelay) deliveries() []relayed {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]relayed(nil), r.got...)
}

// giteaProject is a Gitea repository followed by webhooks only (poll: 0), with a pushing
// working copy and the daemon's slipway.yaml.
type giteaProject struct {
	work      *gitWork
	cfg       string
	repoName  string
	hookURL   string
	server    string
	tokenFile string
	secret    string
}

func newGiteaProject(t *testing.T, env *testenv.Env) *giteaProject {
	t.Helper()
	g := env.Gitea(t)
	owner := g.CreateUser(t, "hooks")
	as := g.As(owner)
	repo := as.CreateRepo(t, "", "app")
	name := strings.ToLower(strings.ReplaceAll(t.Name(), "_", "-"))
	if len(name) > 40 {
		name = name[:40]
	}
	name = strings.Trim(name, "-")
	dir := t.TempDir()
	secret := "gitea-hook-secret-" + owner.Name
	if err := os.WriteFile(filepath.Join(dir, "hook-secret"), []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfigFor(t, env, dir, name, as.CloneURL(repo.Owner.Login, repo.Name), owner.Name, owner.Password,
		"poll: 0s\nwebhook: {type: gitea, secretFile: hook-secret}")
	server, tokenFile := withAPI(t, cfg)
	w := &gitWork{t: t, dir: t.TempDir(), pushURL: as.PushURL(repo.Owner.Login, repo.Name)}
	w.git("init", "--initial-branch=master", ".")
	p := &giteaProject{work: w, cfg: cfg, repoName: name, server: server, tokenFile: tokenFile, secret: secret}
	p.hookURL = server + "/hooks/" + name
	return p
}

func (p *giteaProject) push(msg string, files map[string]string) (string, time.Time) {
	hash := p.work.commit(msg, files)
	p.work.push("master")
	return hash, time.Now()
}

// TestWebhookGiteaPushStartsRunsOnce: with polling off, a push to Gitea starts a run through
// the signed webhook (how fast is TestBenchTriggers' figure, not this test's); a wrong signature is refused and a replayed delivery
// starts nothing; 20 rapid pushes end with the last commit deployed and every pushed commit
// either run or recorded superseded.
func TestWebhookGiteaPushStartsRunsOnce(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	p := newGiteaProject(t, env)
	relay := newHookRelay(t, p.hookURL)
	manifests := readExample(t, env, "2048-yaml/2048_env.yaml")

	// The first commit is run at start (the daemon looks once); later ones only by webhook.
	p.push("first", map[string]string{".pipeline.yaml": string(deployOnlyPipeline(env.Registry, ns)), "2048_env.yaml": string(manifests)})
	metricsAddr := testenv.FreeAddress(t)
	d := startAPIServe(t, p.cfg, p.server, p.tokenFile, "--metrics-address", metricsAddr)
	waitHistory(t, p.cfg, 60*time.Second, "run 1 at start", func(h []historyEntry) bool { return len(h) == 1 && h[0].Status == "succeeded" })
	owner, repo := giteaOwnerRepo(t, p.work.pushURL)
	createHook(t, env, p, owner, repo, relay.srv.URL)

	// 1. A push: the delivery starts the run. Polling is off, so nothing else could; the bound
	// only catches a delivery that was queued behind something instead of acted on.
	for i := 0; i < 3; i++ {
		hash, pushed := p.push(fmt.Sprintf("push %d", i), map[string]string{"note.txt": fmt.Sprintf("push %d\n", i)})
		h := waitHistory(t, p.cfg, 30*time.Second, "a run of "+hash[:8], func(h []historyEntry) bool {
			return len(h) > 0 && h[0].Commit == hash && h[0].Started != ""
		})
		ds := relay.deliveries()
		last := ds[len(ds)-1]
		created, _ := time.Parse(time.RFC3339Nano, h[0].Created)
		if last.status != http.StatusAccepted {
			t.Fatalf("the daemon answered the delivery %d", last.status)
		}
		t.Logf("push %d: delivered %s after git push returned; run #%d created %s after the delivery arrived",
			i, last.at.Sub(pushed).Round(time.Millisecond), h[0].BuildID, created.Sub(last.at).Round(time.Millisecond))
		if created.Sub(last.at) > 10*time.Second {
			t.Errorf("run #%d was created %s after the delivery; want it acted on at once", h[0].BuildID, created.Sub(last.at))
		}
		waitHistory(t, p.cfg, 60*time.Second, "the run to end", func(h []historyEntry) bool { return h[0].Status == "succeeded" })
	}

	// 2. A replayed delivery (same delivery id) is answered duplicate and starts nothing; the
	// same body signed with a wrong secret is 401.
	before := len(history(t, p.cfg, "jack-2048"))
	ds := relay.deliveries()
	replay := ds[len(ds)-1]
	status, answer := relay.send(replay.header, replay.body)
	if status != http.StatusOK || !strings.Contains(string(answer), "duplicate") {
		t.Fatalf("a replayed delivery: %d %s", status, answer)
	}
	forged := replay.header.Clone()
	forged.Set("X-Gitea-Delivery", "forged-"+forged.Get("X-Gitea-Delivery"))
	forged.Set("X-Gitea-Signature", hmacHex([]byte("not-the-secret"), replay.body))
	status, answer = relay.send(forged, replay.body)
	if status != http.StatusUnauthorized {
		t.Fatalf("a wrongly signed delivery: %d %s", status, answer)
	}
	time.Sleep(2 * time.Second)
	if after := len(history(t, p.cfg, "jack-2048")); after != before {
		t.Fatalf("the replay or the forgery started a run: %d runs before, %d after", before, after)
	}

	// 3. 20 rapid pushes: the last commit is deployed; every commit ran or is superseded.
	var pushedCommits []string
	start := time.Now()
	for i := 0; i < 20; i++ {
		hash, _ := p.push(fmt.Sprintf("rapid %d", i), map[string]string{"note.txt": fmt.Sprintf("rapid %d\n", i)})
		pushedCommits = append(pushedCommits, hash)
	}
	t.Logf("20 pushes took %s", time.Since(start).Round(time.Millisecond))
	lastCommit := pushedCommits[len(pushedCommits)-1]
	h := waitHistory(t, p.cfg, 90*time.Second, "the last rapid commit deployed", func(h []historyEntry) bool {
		return len(h) > 0 && h[0].Commit == lastCommit && h[0].Status == "succeeded"
	})
	byCommit := map[string][]string{}
	for _, e := range h {
		byCommit[e.Commit] = append(byCommit[e.Commit], e.Status)
	}
	ran, superseded := 0, 0
	for i, c := range pushedCommits {
		statuses := byCommit[c]
		switch {
		case len(statuses) == 0:
			t.Errorf("rapid push %d (%s) was neither run nor recorded superseded", i, c[:8])
		case len(statuses) > 1:
			t.Errorf("rapid push %d (%s) has %d runs: %v", i, c[:8], len(statuses), statuses)
		case statuses[0] == "superseded":
			superseded++
		case statuses[0] == "succeeded":
			ran++
		default:
			t.Errorf("rapid push %d (%s) ended %s", i, c[:8], statuses[0])
		}
	}
	t.Logf("20 rapid pushes: %d ran, %d recorded superseded, %d deliveries relayed", ran, superseded, len(relay.deliveries()))

	// The metrics count what arrived, was refused, repeated and overtaken.
	metrics := scrape(t, metricsAddr)
	for _, want := range []string{
		fmt.Sprintf(`slipway_triggers_rejected_total{reason="bad_signature",repository=%q} 1`, p.repoName),
		fmt.Sprintf(`slipway_triggers_deduplicated_total{repository=%q} 1`, p.repoName),
		fmt.Sprintf(`slipway_triggers_received_total{repository=%q,source="webhook"} 23`, p.repoName),
		fmt.Sprintf(`slipway_runs_superseded_total{pipeline="jack-2048",repository=%q} %d`, p.repoName, superseded),
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q:\n%s", want, grepLines(metrics, "slipway_triggers_", "slipway_runs_"))
		}
	}

	// A late delivery naming an older, already-run commit records nothing, and a restart
	// after it does not run the head again.
	runsBefore := len(history(t, p.cfg, "jack-2048"))
	old := relay.deliveries()[0]
	late := old.header.Clone()
	late.Set("X-Gitea-Delivery", "late-"+late.Get("X-Gitea-Delivery"))
	late.Set("X-Gitea-Signature", hmacHex([]byte(p.secret), old.body))
	if status, answer := relay.send(late, old.body); status != http.StatusAccepted {
		t.Fatalf("a late delivery: %d %s", status, answer)
	}
	time.Sleep(2 * time.Second)
	d.stop(t)
	d = startAPIServe(t, p.cfg, p.server, p.tokenFile)
	time.Sleep(3 * time.Second)
	if h := history(t, p.cfg, "jack-2048"); len(h) != runsBefore {
		t.Fatalf("a late delivery or the restart after it started or recorded runs: %d before, now %+v", runsBefore, h[:len(h)-runsBefore])
	}

	// 4. Pull requests are recorded (opened, merged with the merge commit) for the gates.
	p.work.git("checkout", "-q", "-b", "feature")
	p.work.commit("feature work", map[string]string{"feature.txt": "f\n"})
	p.work.push("feature")

	// A signed delivery whose payload says master's head is the feature branch's commit (a
	// payload that lies): the daemon fetches the commit it names beside its ref listing
	// (Gitea gives any commit it has), but runs, and records as pushed to master, only what
	// the listing says master's head is.
	featureCommit := p.work.git("rev-parse", "HEAD")
	var oldPush struct {
		After string `json:"after"`
	}
	if err := json.Unmarshal(old.body, &oldPush); err != nil || len(oldPush.After) != 40 {
		t.Fatalf("the first delivery's after: %q, %v", oldPush.After, err)
	}
	lying := bytes.ReplaceAll(old.body, []byte(oldPush.After), []byte(featureCommit))
	lie := old.header.Clone()
	lie.Set("X-Gitea-Delivery", "lying-"+lie.Get("X-Gitea-Delivery"))
	lie.Set("X-Gitea-Signature", hmacHex([]byte(p.secret), lying))
	if status, answer := relay.send(lie, lying); status != http.StatusAccepted {
		t.Fatalf("a delivery naming the feature branch's commit as master's: %d %s", status, answer)
	}
	time.Sleep(3 * time.Second)
	if h := history(t, p.cfg, "jack-2048"); len(h) != runsBefore {
		t.Fatalf("a delivery naming another branch's commit started or recorded runs: %d before, now %+v", runsBefore, h[:len(h)-runsBefore])
	}
	g := env.Gitea(t)
	pr := g.CreatePull(t, owner, repo, "feature", "master", "Add the feature")
	merged := g.MergePull(t, owner, repo, pr.Number, "merge")
	d.stop(t) // the store is read here, after the daemon let go of it
	st, err := store.OpenSQLite(context.Background(), filepath.Join(filepath.Dir(p.cfg), "data", "slipway.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	events, err := st.ListPullRequestEvents(context.Background(), p.repoName, int(pr.Number), 0)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range events {
		actions = append(actions, e.Action)
	}
	if len(events) < 2 || events[0].Action != "merged" || events[0].MergeCommit != merged.MergeCommitSHA ||
		events[len(events)-1].Action != "opened" || events[0].SourceBranch != "feature" || events[0].TargetBranch != "master" {
		t.Fatalf("pull request #%d events (newest first) %v: %+v", pr.Number, actions, events)
	}
	t.Logf("pull request #%d recorded: %v", pr.Number, actions)
}

func hmacHex(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// giteaOwnerRepo splits a Gitea push URL into owner and repository.
func giteaOwnerRepo(t *testing.T, pushURL string) (string, string) {
	t.Helper()
	u, err := url.Parse(pushURL)
	if err != nil {
		t.Fatal("bad push URL")
	}
	parts := strings.Split(strings.Trim(strings.TrimSuffix(u.Path, ".git"), "/"), "/")
	return parts[0], parts[1]
}

func createHook(t *testing.T, env *testenv.Env, p *giteaProject, owner, repo, target string) {
	t.Helper()
	env.Gitea(t).CreateHook(t, owner, repo, testenv.GiteaHookOptions{URL: target, Secret: p.secret, Events: []string{"push", "pull_request"}})
}

// TestPollingPicksUpCommitsAndListsWithoutFetching: a polled repository (1s interval, no
// webhook) picks up a new commit within its interval, and while nothing changes the daemon
// only lists refs: the Git server counts no fetch.
func TestPollingPicksUpCommitsAndListsWithoutFetching(t *testing.T) {
	env := testenv.Get(t)
	p := servedDeployOnly(t, env)
	repo, repoName, cfg, d := p.repo, p.repoName, p.cfg, p.d

	before := env.GitStats(t, repoName)
	time.Sleep(6 * time.Second)
	after := env.GitStats(t, repoName)
	listings, fetches := after.Listings-before.Listings, after.Fetches-before.Fetches
	t.Logf("6s unchanged at a 1s interval: %d ref listings, %d fetches, %d requests", listings, fetches, after.Requests-before.Requests)
	if fetches != 0 {
		t.Errorf("an unchanged repository was fetched %d times", fetches)
	}
	if listings < 3 || listings > 8 {
		t.Errorf("%d ref listings in 6s at a 1s interval (with up to 10%% jitter); want 3 to 8", listings)
	}

	for i := 0; i < 3; i++ {
		hash := repo.commit(fmt.Sprintf("change %d", i), map[string][]byte{"note.txt": []byte(fmt.Sprintf("%d\n", i))})
		pushed := time.Now()
		h := waitHistory(t, cfg, 30*time.Second, "a run of the new commit", func(h []historyEntry) bool { return h[0].Commit == hash })
		created, _ := time.Parse(time.RFC3339Nano, h[0].Created)
		t.Logf("commit %d picked up %s after git push returned (interval 1s)", i, created.Sub(pushed).Round(time.Millisecond))
		if created.Sub(pushed) > 2500*time.Millisecond {
			t.Errorf("commit %d was picked up %s after the push; want within the 1s interval plus jitter and a fetch", i, created.Sub(pushed))
		}
		waitHistory(t, cfg, 60*time.Second, "the run to end", func(h []historyEntry) bool { return h[0].Status == "succeeded" })
	}
	d.stop(t)
}

// grepLines keeps the lines that start with one of the prefixes.
func grepLines(text string, prefixes ...string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		for _, p := range prefixes {
			if strings.HasPrefix(l, p) {
				out = append(out, l)
			}
		}
	}
	return strings.Join(out, "\n")
}
