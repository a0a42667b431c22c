package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/reconciler/apply"
	"github.com/slipwayhq/slipway/test/testenv"
)

// This file holds what the replica benchmarks (failover, soak, throughput) share: several
// `slipway serve` replicas of one binary on the environment's PostgreSQL, coordinated by
// Leases in a namespace of its control plane, as test/e2e's TestReplicasShareRepositoriesAndSchedules
// runs them; each replica's output kept line by line with the instant each line arrived, so
// a log line marks when something happened to within the pipe's latency.

// haTimings are the ha: durations the replicas run with (config defaults unless set).
type haTimings struct{ lease, renew, retry time.Duration }

var haDefaults = haTimings{lease: 13 * time.Second, renew: 10 * time.Second, retry: 2 * time.Second}

func (h haTimings) String() string {
	return fmt.Sprintf("leaseDuration %s, renewDeadline %s, retryPeriod %s", h.lease, h.renew, h.retry)
}

// haRepoSpec is one repository the replicas follow.
type haRepoSpec struct {
	name, url, push string
	work            *benchWork
}

// haBench is a set of replicas.
type haBench struct {
	t      *testing.T
	env    *testenv.Env
	bin    string
	dir    string
	token  string
	hook   string // the generic webhook secret, when the repositories take webhooks
	reps   map[string]*haProc
	ids    []string
	cfgs   map[string]string
	timing haTimings
}

// haProc is one replica process and its output.
type haProc struct {
	name, addr string
	cmd        *exec.Cmd
	done       chan error
	log        *os.File

	mu      sync.Mutex
	partial []byte
	lines   []stampedLine
}

type stampedLine struct {
	at   time.Time
	text string
}

func (p *haProc) Write(b []byte) (int, error) {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	_, _ = p.log.Write(b)
	p.partial = append(p.partial, b...)
	for {
		i := bytes.IndexByte(p.partial, '\n')
		if i < 0 {
			break
		}
		p.lines = append(p.lines, stampedLine{at: now, text: string(p.partial[:i])})
		p.partial = p.partial[i+1:]
	}
	return len(b), nil
}

// linesSince returns the lines that arrived at or after since.
func (p *haProc) linesSince(since time.Time) []stampedLine {
	p.mu.Lock()
	defer p.mu.Unlock()
	i, _ := slices.BinarySearchFunc(p.lines, since, func(l stampedLine, t time.Time) int { return l.at.Compare(t) })
	return slices.Clone(p.lines[i:])
}

func (p *haProc) alive() bool {
	select {
	case err := <-p.done:
		p.done <- err
		return false
	default:
		return true
	}
}

// haOptions shape the replicas' slipway.yaml.
type haOptions struct {
	replicas []string
	poll     string // each repository's poll interval
	webhook  bool   // generic webhooks with the bench's secret
	timing   haTimings
	extra    string // more top-level slipway.yaml
}

// newHABench writes the replicas' slipway.yaml (one per replica: its own data folder,
// identity and address; the store, keys, token and repositories shared), in a fresh
// PostgreSQL schema and Lease namespace.
func newHABench(t *testing.T, env *testenv.Env, bin string, repos []haRepoSpec, o haOptions) *haBench {
	t.Helper()
	dir := t.TempDir()
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	storeURL, token := env.ReplicaFiles(t, dir)
	h := &haBench{t: t, env: env, bin: bin, dir: dir, token: token, hook: "bench-ha-hook",
		reps: map[string]*haProc{}, ids: o.replicas, cfgs: map[string]string{}, timing: o.timing}
	must(os.WriteFile(filepath.Join(dir, "hook-secret"), []byte(h.hook), 0o600))
	ns := env.Namespace(t)
	var rs strings.Builder
	for _, r := range repos {
		hook := ""
		if o.webhook {
			hook = ", webhook: {type: generic, secretFile: hook-secret}"
		}
		fmt.Fprintf(&rs, "  - {name: %s, url: %s, branch: master, poll: %s, auth: {usernameFile: git-user, passwordFile: git-password}%s,\n"+
			"     policy: {clusters: ['*'], namespaces: ['*'], registries: ['*']}}\n", r.name, r.url, o.poll, hook)
	}
	for _, id := range o.replicas {
		addr := testenv.FreeAddress(t)
		cfg := fmt.Sprintf(`dataDir: %s/data-%s
listen: %s
store: %s
storePasswordFile: pg-password
storeKeyFiles: [store.key]
uiSessionKeyFile: ui-session.key
apiTokenFile: api-token
repositories:
%sclusters:
  - name: bench
    kubeconfig: %s
executor: {local: {enabled: true}}
ha: {cluster: bench, namespace: %s, identity: %s, leaseDuration: %s, renewDeadline: %s, retryPeriod: %s}
%s`, dir, id, addr, storeURL, rs.String(), env.Kubeconfig, ns, id, o.timing.lease, o.timing.renew, o.timing.retry, o.extra)
		path := filepath.Join(dir, "slipway-"+id+".yaml")
		must(os.WriteFile(path, []byte(cfg), 0o600))
		h.cfgs[id] = path
		h.reps[id] = &haProc{name: id, addr: addr}
	}
	t.Cleanup(func() {
		h.stopAll()
		if t.Failed() {
			// The replicas' logs outlive the test's folder.
			keep := filepath.Join(env.Root, ".slipway", "bench", "logs", strings.ReplaceAll(t.Name(), "/", "-"))
			_ = os.MkdirAll(keep, 0o755)
			for _, id := range h.ids {
				if raw, err := os.ReadFile(filepath.Join(dir, id+".log")); err == nil {
					_ = os.WriteFile(filepath.Join(keep, id+".log"), raw, 0o600)
				}
			}
			t.Logf("the replicas' logs: %s", keep)
		}
	})
	return h
}

// start starts (or restarts) a replica and waits until its API answers.
func (h *haBench) start(id string) {
	h.t.Helper()
	p := h.reps[id]
	log, err := os.OpenFile(filepath.Join(h.dir, id+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		h.t.Fatal(err)
	}
	p.mu.Lock()
	p.log, p.partial = log, nil
	p.mu.Unlock()
	p.cmd = exec.Command(h.bin, "serve", "--config", h.cfgs[id])
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	p.done = make(chan error, 1)
	go func() { p.done <- p.cmd.Wait() }()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var v haReplicasView
		if err := h.get(p, "/api/v1/replicas", &v); err == nil && v.HA {
			return
		}
		if !p.alive() || time.Now().After(deadline) {
			h.fail("replica %s did not answer GET /api/v1/replicas", id)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// kill SIGKILLs a replica and returns the instant the signal was sent.
func (h *haBench) kill(id string) time.Time {
	h.t.Helper()
	p := h.reps[id]
	at := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		h.t.Fatal(err)
	}
	<-p.done
	p.done <- nil
	p.log.Close()
	return at
}

func (h *haBench) stopAll() {
	for _, p := range h.reps {
		if p.cmd == nil || !p.alive() {
			continue
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			_ = p.cmd.Process.Kill()
			h.t.Errorf("replica %s did not stop within 30s of SIGTERM", p.name)
		}
		p.log.Close()
	}
}

// fail ends the test with the tail of each replica's log.
func (h *haBench) fail(format string, args ...any) {
	h.t.Helper()
	var b strings.Builder
	for _, id := range h.ids {
		raw, _ := os.ReadFile(filepath.Join(h.dir, id+".log"))
		if len(raw) > 4000 {
			raw = raw[len(raw)-4000:]
		}
		fmt.Fprintf(&b, "\n--- %s (tail):\n%s", id, raw)
	}
	h.t.Fatalf(format+"%s", append(args, b.String())...)
}

// haReplicasView is GET /api/v1/replicas.
type haReplicasView struct {
	HA       bool
	Identity string
	Members  []struct {
		Identity     string
		Self         bool
		Repositories []string
	}
}

func (h *haBench) get(p *haProc, path string, into any) error {
	req, err := http.NewRequest(http.MethodGet, "http://"+p.addr+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+h.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(into)
}

// live is the running replicas.
func (h *haBench) live() []*haProc {
	var out []*haProc
	for _, id := range h.ids {
		if p := h.reps[id]; p.cmd != nil && p.alive() {
			out = append(out, p)
		}
	}
	return out
}

// owners asks each live replica what it watches itself: repository → replicas.
func (h *haBench) owners() (map[string][]string, error) {
	out := map[string][]string{}
	for _, p := range h.live() {
		var v haReplicasView
		if err := h.get(p, "/api/v1/replicas", &v); err != nil {
			return nil, fmt.Errorf("replica %s: %w", p.name, err)
		}
		for _, m := range v.Members {
			if m.Self {
				for _, r := range m.Repositories {
					out[r] = append(out[r], p.name)
				}
			}
		}
	}
	return out, nil
}

// settle waits until every repository is watched by exactly one replica and every live
// replica watches some, twice in a row a retryPeriod apart (a replica that just joined
// takes its shards over a round or two).
func (h *haBench) settle(repos []string, timeout time.Duration) map[string][]string {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	stable := 0
	var last map[string][]string
	for {
		o, err := h.owners()
		ok := err == nil
		if ok {
			per := map[string]int{}
			for _, r := range repos {
				if len(o[r]) != 1 {
					ok = false
					break
				}
				per[o[r][0]]++
			}
			ok = ok && len(per) == len(h.live())
		}
		if ok {
			stable++
			last = o
			if stable >= 2 {
				return last
			}
		} else {
			stable = 0
		}
		if time.Now().After(deadline) {
			h.fail("repositories not owned by exactly one live replica each within %s: %v (%v)", timeout, o, err)
		}
		time.Sleep(h.timing.retry)
	}
}

var (
	firstLookRepo = regexp.MustCompile(`msg="replica: first look at the repository" .*\brepo=([^ ]+)`)
	ownedRepo     = regexp.MustCompile(`msg="replica: watching the repository" .*\brepo=([^ ]+)`)
)

// firstLooks returns, for each repository in want, when a live replica other than skip
// first logged its first look at it after since; it waits until all are there or the
// timeout passes (the missing ones are absent from the answer).
func (h *haBench) firstLooks(want []string, since time.Time, skip string, timeout time.Duration) map[string]time.Time {
	deadline := time.Now().Add(timeout)
	for {
		got := h.logged(firstLookRepo, want, since, skip)
		if len(got) == len(want) || time.Now().After(deadline) {
			return got
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// logged returns, for each repository in want, when a live replica other than skip first
// logged a line matching re (its first group the repository) after since.
func (h *haBench) logged(re *regexp.Regexp, want []string, since time.Time, skip string) map[string]time.Time {
	wanted := map[string]bool{}
	for _, r := range want {
		wanted[r] = true
	}
	got := map[string]time.Time{}
	for _, p := range h.live() {
		if p.name == skip {
			continue
		}
		for _, l := range p.linesSince(since) {
			if m := re.FindStringSubmatch(l.text); m != nil && wanted[m[1]] {
				if at, seen := got[m[1]]; !seen || l.at.Before(at) {
					got[m[1]] = l.at
				}
			}
		}
	}
	return got
}

// haRun is a run as GET /api/v1/runs lists it.
type haRun struct {
	Repository    string
	Pipeline      string
	BuildID       int64
	Commit        string
	Trigger       string
	ParentBuildID int64
	Status        string
	Reason        string
	CreatedAt     time.Time
	FinishedAt    time.Time
}

// runs lists every run through a live replica (pages of 500).
func (h *haBench) runs() []haRun {
	h.t.Helper()
	live := h.live()
	if len(live) == 0 {
		h.fail("no replica is running")
	}
	var all []haRun
	after := ""
	for {
		var page struct {
			Runs []haRun
			Next string
		}
		path := "/api/v1/runs?limit=500"
		if after != "" {
			path += "&after=" + url.QueryEscape(after)
		}
		if err := h.get(live[0], path, &page); err != nil {
			h.fail("list runs: %v", err)
		}
		all = append(all, page.Runs...)
		if page.Next == "" || len(page.Runs) == 0 {
			return all
		}
		after = page.Next
	}
}

// deliver sends a signed generic push webhook naming head to the replica.
func (h *haBench) deliver(p *haProc, repo, head string) error {
	return deliverPush(context.Background(), p.addr, h.hook, repo, head)
}

// newHARepos makes n repositories on the Git server, each with a first commit of files(i),
// eight at a time.
func newHARepos(t *testing.T, env *testenv.Env, dir, prefix string, n int, files func(i int) map[string]string) []haRepoSpec {
	t.Helper()
	out := make([]haRepoSpec, n)
	for i := range n {
		_, u := env.Repo(t)
		name := fmt.Sprintf("%s-%03d", prefix, i)
		out[i] = haRepoSpec{name: name, url: u, push: strings.Replace(u, "http://", "http://"+env.GitUser+":"+env.GitPassword+"@", 1),
			work: &benchWork{t: t, dir: filepath.Join(dir, "work", name), redact: []string{env.GitPassword}}}
	}
	if _, err := pushEach(out, 8, func(i int) (map[string]string, []string) { return files(i), nil }, "start", nil); err != nil {
		t.Fatal(err)
	}
	return out
}

// pushEach commits files (and removals) to each repository and pushes, n at a time,
// without the testing.T (it runs off the test's goroutine); after, when set, follows each
// push at once (its webhook). It returns the new heads.
func pushEach(repos []haRepoSpec, n int, change func(i int) (files map[string]string, remove []string), msg string,
	after func(i int, head string) error) ([]string, error) {
	heads := make([]string, len(repos))
	err := apply.ForEach(context.Background(), len(repos), n, func(_ context.Context, i int) error {
		r := repos[i]
		if _, err := os.Stat(filepath.Join(r.work.dir, ".git")); err != nil {
			if err := os.MkdirAll(r.work.dir, 0o755); err != nil {
				return err
			}
			if _, err := gitIn(r.work.dir, "init", "-q", "--initial-branch=master", "."); err != nil {
				return fmt.Errorf("%s: %w", r.name, err)
			}
		}
		files, remove := change(i)
		for _, f := range remove {
			if _, err := gitIn(r.work.dir, "rm", "-q", "--ignore-unmatch", f); err != nil {
				return fmt.Errorf("%s: %w", r.name, err)
			}
		}
		head, err := pushFiles(r.work.dir, r.push, files, msg)
		if err != nil {
			return fmt.Errorf("%s: %w", r.name, err)
		}
		heads[i] = head
		if after != nil {
			return after(i, head)
		}
		return nil
	})
	return heads, err
}

func (r haRepoSpec) names() string { return r.name }

func repoNames(rs []haRepoSpec) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.names()
	}
	return out
}

// scriptPipeline is a pipeline of one local script step, retried when interrupted.
func scriptPipeline(name, script, extra string) string {
	return "name: " + name + "\nretryInterrupted: true\n" + extra + "stages:\n- name: work\n  tasks:\n  - name: step\n    type: script\n    executor: local\n    script: " + script + "\n"
}

// loadAverage is /proc/loadavg's first three fields.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
