package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/slipwayhq/slipway/reconciler/replicas"
	"github.com/slipwayhq/slipway/test/testenv"
)

// haCluster is a set of `slipway serve` replicas on one PostgreSQL store, coordinated by
// Leases in a namespace of the environment's control plane.
type haCluster struct {
	t        *testing.T
	dir      string
	token    string // the API token's file
	replicas map[string]*haReplica
}

type haReplica struct {
	name string
	proc *daemonProc
	addr string
}

// haRepo is one followed repository: its name in slipway.yaml and its working copy.
type haRepo struct {
	name, url string
	work      *workRepo
}

// writeHAConfig writes one slipway.yaml per replica (its own data folder and identity;
// the store, the key, the token and the repositories shared) and returns the paths.
func writeHAConfig(t *testing.T, env *testenv.Env, dir, namespace string, repos []haRepo, ids []string) map[string]string {
	t.Helper()
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	storeURL, _ := env.ReplicaFiles(t, dir)
	var rs strings.Builder
	for _, r := range repos {
		fmt.Fprintf(&rs, "  - {name: %s, url: %s, branch: master, poll: 3s, auth: {usernameFile: git-user, passwordFile: git-password},\n     %s}\n",
			r.name, r.url, grantEverythingIn(dir))
	}
	out := map[string]string{}
	for _, id := range ids {
		cfg := fmt.Sprintf(`dataDir: %s/data-%s
listen: 127.0.0.1:0
store: %s
storePasswordFile: pg-password
storeKeyFiles: [store.key]
uiSessionKeyFile: ui-session.key
apiTokenFile: api-token
repositories:
%sclusters:
  - name: e2e
    kubeconfig: %s
executor: {local: {enabled: true}}
ha: {cluster: e2e, namespace: %s, identity: %s}
`, dir, id, storeURL, rs.String(), env.Kubeconfig, namespace, id)
		path := filepath.Join(dir, "slipway-"+id+".yaml")
		must(os.WriteFile(path, []byte(cfg), 0o600))
		out[id] = path
	}
	return out
}

func startHACluster(t *testing.T, env *testenv.Env, namespace string, repos []haRepo, ids ...string) *haCluster {
	t.Helper()
	dir := t.TempDir()
	cfgs := writeHAConfig(t, env, dir, namespace, repos, ids)
	c := &haCluster{t: t, dir: dir, token: filepath.Join(dir, "api-token"), replicas: map[string]*haReplica{}}
	for _, id := range ids {
		c.replicas[id] = &haReplica{name: id, proc: startServe(t, cfgs[id])}
	}
	for _, r := range c.replicas {
		deadline := time.Now().Add(60 * time.Second)
		for r.addr == "" {
			for _, line := range strings.Split(r.proc.output(), "\n") {
				if strings.Contains(line, "HTTP API and webhooks") && strings.Contains(line, "msg=listening") {
					if m := regexp.MustCompile(`address="?([0-9.]+:[0-9]+)`).FindStringSubmatch(line); m != nil {
						r.addr = m[1]
					}
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("replica %s never listened:\n%s", r.name, r.proc.output())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return c
}

// replicasView is GET /api/v1/replicas.
type replicasView struct {
	HA       bool
	Identity string
	Members  []struct {
		Identity     string
		Self         bool
		Expires      time.Time
		Repositories []string
	}
	Unowned []string
}

func (c *haCluster) get(r *haReplica, path string, into any) error {
	resp, err := apiAs(c.t, "GET", "http://"+r.addr+path, c.token)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(into)
}

// owners asks every live replica what it watches itself (the Self member): repository →
// replicas running its watcher.
func (c *haCluster) owners() map[string][]string {
	out := map[string][]string{}
	for _, r := range c.replicas {
		if r.proc.cmd.ProcessState != nil {
			continue
		}
		var v replicasView
		if err := c.get(r, "/api/v1/replicas", &v); err != nil {
			c.t.Fatalf("replica %s: %v", r.name, err)
		}
		if !v.HA || v.Identity != r.name {
			c.t.Fatalf("replica %s answers %+v", r.name, v)
		}
		for _, m := range v.Members {
			if m.Self {
				for _, repo := range m.Repositories {
					out[repo] = append(out[repo], r.name)
				}
			}
		}
	}
	return out
}

// apiRun is a run as GET /api/v1/runs lists it.
type apiRun struct {
	Repository    string
	Pipeline      string
	BuildID       int64
	Commit        string
	Trigger       string
	ParentBuildID int64
	Status        string
	Reason        string
	CreatedAt     time.Time
}

func (c *haCluster) runs(via *haReplica) []apiRun {
	var page struct{ Runs []apiRun }
	if err := c.get(via, "/api/v1/runs?limit=500", &page); err != nil {
		c.t.Fatal(err)
	}
	return page.Runs
}

func (c *haCluster) waitRuns(via *haReplica, timeout time.Duration, what string, cond func([]apiRun) bool) []apiRun {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		rs := c.runs(via)
		if cond(rs) {
			return rs
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: not within %s; runs: %+v", what, timeout, rs)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func quickPipeline(name, extra string) []byte {
	return []byte("name: " + name + "\nretryInterrupted: true\n" + extra + "stages:\n- name: work\n  tasks:\n  - name: step\n    type: script\n    executor: local\n    script: ${SCRIPT}\n")
}

// TestReplicasShareRepositoriesAndSchedules: three replicas of the slipway binary on one
// PostgreSQL store share 31 repositories through Leases. Every repository is watched by
// exactly one replica; a push to each of 30 starts one run each, none doubled. Then the
// replica owning both a repository with a run in flight and a repository with an every-minute
// schedule is SIGKILLed just before a tick: within 15 s another replica watches both, the
// run in flight is recorded interrupted and retried (retryInterrupted) at the pushed commit,
// BUILD_IDs stay gap-free, and the tick that came due while nobody owned the schedule runs
// once, late, on the new owner: one run per tick.
func TestReplicasShareRepositoriesAndSchedules(t *testing.T) {
	began := time.Now()
	env := testenv.Get(t)
	ns := env.Namespace(t)
	var repos []haRepo
	for i := range 30 {
		w, u := newWorkRepo(t, env)
		repos = append(repos, haRepo{name: fmt.Sprintf("app-%02d", i), url: u, work: w})
		w.commit("first", map[string][]byte{".pipeline.yaml": quickPipeline("app", "variables: {SCRIPT: 'true'}\n")})
	}
	cw, cu := newWorkRepo(t, env)
	cronRepo := haRepo{name: "cron", url: cu, work: cw}
	cw.commit("schedule", map[string][]byte{".pipeline.yaml": quickPipeline("tick",
		"variables: {SCRIPT: 'true'}\ntriggers:\n  schedules:\n    - cron: \"*/1 * * * *\"\n")})
	c := startHACluster(t, env, ns, append(slices.Clone(repos), cronRepo), "replica-a", "replica-b", "replica-c")
	a := c.replicas["replica-a"]

	// Every repository is watched by exactly one replica, once the three have settled.
	all := append(slices.Clone(repos), cronRepo)
	deadline := time.Now().Add(60 * time.Second)
	var owners map[string][]string
	for {
		owners = c.owners()
		settled := true
		for _, r := range all {
			if len(owners[r.name]) != 1 {
				settled = false
			}
		}
		if settled {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("repositories not owned by exactly one replica each: %v", owners)
		}
		time.Sleep(time.Second)
	}
	perReplica := map[string]int{}
	for _, o := range owners {
		perReplica[o[0]]++
	}
	t.Logf("repositories per replica: %v (%s into the test)", perReplica, time.Since(began).Round(time.Second))
	if len(perReplica) != 3 {
		t.Errorf("31 repositories spread over %d replicas: %v", len(perReplica), perReplica)
	}

	// The first commits ran once each (the first look; the cron pipeline has no push
	// trigger), then 30 pushes: 30 more runs.
	c.waitRuns(a, 90*time.Second, "one run of each first commit", func(rs []apiRun) bool {
		return countRuns(rs, "push", "succeeded") == 30
	})
	heads := map[string]string{}
	for _, r := range repos {
		heads[r.name] = r.work.commit("second", map[string][]byte{"README": []byte(r.name)})
	}
	rs := c.waitRuns(a, 90*time.Second, "one run of each pushed commit", func(rs []apiRun) bool {
		return countRuns(rs, "push", "succeeded") == 60
	})
	seen := map[string]int{}
	for _, r := range rs {
		if r.Trigger == "push" {
			seen[r.Repository+"@"+r.Commit]++
		}
	}
	for _, r := range repos {
		if n := seen[r.name+"@"+heads[r.name]]; n != 1 {
			t.Errorf("%s: the pushed commit ran %d times", r.name, n)
		}
	}
	checkGapFree(t, rs)
	t.Logf("30 pushes ran once each (%s into the test)", time.Since(began).Round(time.Second))

	// Wait for a tick of the schedule, then kill its owner 8 s before the next one, with a
	// run in flight on another repository it owns.
	// Owners now, long after the replicas joined (the first settled view may have been
	// taken while shards were still moving to the last replica to join).
	owners = c.owners()
	cronOwner := c.replicas[owners["cron"][0]]
	var slow haRepo
	for _, r := range repos {
		if owners[r.name][0] == cronOwner.name {
			slow = r
			break
		}
	}
	if slow.name == "" {
		t.Fatalf("replica %s owns no app repository: %v", cronOwner.name, owners)
	}
	c.waitRuns(a, 75*time.Second, "a first cron tick", func(rs []apiRun) bool { return countRuns(rs, "cron", "") >= 1 })
	nextTick := time.Now().Truncate(time.Minute).Add(time.Minute)
	if time.Until(nextTick) < 20*time.Second {
		nextTick = nextTick.Add(time.Minute)
	}
	time.Sleep(time.Until(nextTick.Add(-18 * time.Second)))
	slowCommit := slow.work.commit("slow", map[string][]byte{".pipeline.yaml": []byte(strings.Replace(string(quickPipeline("app", "")), "${SCRIPT}", "sleep 25", 1))})
	c.waitRuns(a, 15*time.Second, "the slow run running", func(rs []apiRun) bool {
		for _, r := range rs {
			if r.Repository == slow.name && r.Commit == slowCommit && r.Status == "running" {
				return true
			}
		}
		return false
	})
	time.Sleep(time.Until(nextTick.Add(-8 * time.Second)))
	if err := cronOwner.proc.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	<-cronOwner.proc.done
	t.Logf("SIGKILLed %s, owner of cron and %s, %s before the tick of %s", cronOwner.name, slow.name,
		nextTick.Sub(killed).Round(100*time.Millisecond), nextTick.Format(time.TimeOnly))

	// Within 15 s another replica watches both repositories.
	var moved time.Duration
	for {
		o := c.owners()
		if len(o["cron"]) == 1 && len(o[slow.name]) == 1 {
			moved = time.Since(killed)
			t.Logf("cron moved to %s and %s to %s, %s after the kill", o["cron"][0], slow.name, o[slow.name][0], moved.Round(100*time.Millisecond))
			break
		}
		if time.Since(killed) > 20*time.Second {
			t.Fatalf("20 s after the kill: owners %v", o)
		}
		time.Sleep(250 * time.Millisecond)
	}
	// When the new owners took the Leases (their acquireTime), as the API server keeps them.
	for _, repo := range []string{"cron", slow.name} {
		l, err := env.Clientset(t).CoordinationV1().Leases(ns).Get(context.Background(), replicas.LeaseName(repo), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		took := l.Spec.AcquireTime.Sub(killed)
		t.Logf("%s's Lease %s taken by %s %s after the kill", repo, l.Name, *l.Spec.HolderIdentity, took.Round(10*time.Millisecond))
		// The dead replica may have renewed its Leases the instant before the kill; they
		// are taken when they expire, leaseDuration (13 s) after that renewal, plus one
		// LIST and the updates: the issue asks for another owner within 15 s of the kill.
		if took > 15*time.Second {
			t.Errorf("%s moved %s after the kill, want within 15 s", repo, took)
		}
	}
	survivor := a
	if a == cronOwner {
		survivor = c.replicas["replica-b"]
	}

	// The run in flight is recorded interrupted, and retried at the pushed commit.
	rs = c.waitRuns(survivor, 120*time.Second, "the interrupted run retried and succeeded", func(rs []apiRun) bool {
		for _, r := range rs {
			if r.Repository == slow.name && r.Trigger == "retry" && r.Status == "succeeded" {
				return true
			}
		}
		return false
	})
	var interrupted, retry *apiRun
	for i := range rs {
		r := &rs[i]
		if r.Repository != slow.name || r.Commit != slowCommit {
			continue
		}
		switch {
		case r.Status == "interrupted":
			interrupted = r
		case r.Trigger == "retry":
			retry = r
		}
	}
	if interrupted == nil || retry == nil || retry.ParentBuildID != interrupted.BuildID || retry.Commit != slowCommit {
		t.Errorf("%s: interrupted %+v, retry %+v", slow.name, interrupted, retry)
	}
	checkGapFree(t, rs)

	// One run per tick: the tick before the kill, and the one that came due while nobody
	// owned the schedule, run late by the new owner. Nothing else until the next tick.
	time.Sleep(time.Until(nextTick.Add(25 * time.Second)))
	rs = c.runs(survivor)
	var ticks []time.Time
	for _, r := range rs {
		if r.Repository == "cron" && r.Trigger == "cron" {
			ticks = append(ticks, r.CreatedAt)
		}
	}
	slices.SortFunc(ticks, func(x, y time.Time) int { return x.Compare(y) })
	// Keyed by Unix seconds: the times come in different locations.
	byMinute := map[int64]int{}
	for _, created := range ticks {
		// A run is created after its tick, within the minute (the late one ~15 s after).
		byMinute[created.Truncate(time.Minute).Unix()]++
	}
	for m, n := range byMinute {
		if n != 1 {
			t.Errorf("the tick of %s started %d runs", time.Unix(m, 0).UTC().Format(time.TimeOnly), n)
		}
	}
	if byMinute[nextTick.Unix()] != 1 || byMinute[nextTick.Add(-time.Minute).Unix()] != 1 {
		t.Errorf("the ticks of %s and %s did not run once each: runs created %v", nextTick.Add(-time.Minute).Format(time.TimeOnly),
			nextTick.Format(time.TimeOnly), ticks)
	}
	for _, r := range c.replicas {
		for _, line := range strings.Split(r.proc.output(), "\n") {
			if strings.Contains(line, "repo=cron") || strings.Contains(line, "repository=cron") {
				t.Logf("%s: %s", r.name, line)
			}
		}
	}
}

// countRuns counts runs with the trigger and status ("" = any).
func countRuns(rs []apiRun, trigger, status string) int {
	n := 0
	for _, r := range rs {
		if r.Trigger == trigger && (status == "" || r.Status == status) {
			n++
		}
	}
	return n
}

// checkGapFree checks that each pipeline's BUILD_IDs are 1..n.
func checkGapFree(t *testing.T, rs []apiRun) {
	t.Helper()
	ids := map[string][]int64{}
	for _, r := range rs {
		k := r.Repository + "/" + r.Pipeline
		ids[k] = append(ids[k], r.BuildID)
	}
	for k, list := range ids {
		slices.Sort(list)
		for i, id := range list {
			if id != int64(i+1) {
				t.Errorf("%s: BUILD_IDs %v are not 1..%d", k, list, len(list))
				break
			}
		}
	}
}
