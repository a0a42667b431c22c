package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/test/testenv"
)

// TestReplicasRelayCancelAndApproval: two replicas on one PostgreSQL store, each
// repository's runs executing on the replica owning it. Cancels and approval answers are
// sent to the other replica, which holds none of those runs: it leaves them in the store
// for the owner, which acts on them with its own checks and audits them under the caller.
// A queued and a running run are cancelled, an approval lets the gated stage run, a
// rejection fails the run, a cancel of an ended run is refused, a cancel the stopped owner
// cannot answer in time is 202 with the request pending and carried out once the owner
// runs again, and the audit log names the caller, recorded by the owner.
func TestReplicasRelayCancelAndApproval(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	sw, su := newWorkRepo(t, env)
	slow := haRepo{name: "slow", url: su, work: sw}
	sw.commit("slow", map[string][]byte{".pipeline.yaml": quickPipeline("slow", "variables: {SCRIPT: 'sleep 600'}\n")})
	gw, gu := newWorkRepo(t, env)
	gated := haRepo{name: "gated", url: gu, work: gw}
	gw.commit("gated", map[string][]byte{".pipeline.yaml": []byte(`name: gated
stages:
- name: staging
  tasks:
  - {name: one, type: script, executor: local, script: "true"}
- name: production
  approval:
    manual: {approvers: [api-token]}
  tasks:
  - {name: two, type: script, executor: local, script: "true"}
`)})
	c := startHACluster(t, env, ns, []haRepo{slow, gated}, "replica-a", "replica-b")

	var owners map[string][]string
	deadline := time.Now().Add(60 * time.Second)
	for {
		owners = c.owners()
		if len(owners["slow"]) == 1 && len(owners["gated"]) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("repositories not owned by exactly one replica each: %v", owners)
		}
		time.Sleep(time.Second)
	}
	// holder is the replica that queued the run (its watcher submitted it, so it runs it
	// there), read from the replicas' logs: ownership may move while the replicas settle,
	// a run stays where it was queued. other is the replica that does not hold it.
	holder := func(pipeline string, id int) *haReplica {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			for _, r := range c.replicas {
				for _, line := range strings.Split(r.proc.output(), "\n") {
					if strings.Contains(line, "msg=triggered") && strings.Contains(line, fmt.Sprintf(" build_id=%d ", id)) &&
						strings.Contains(line, " pipeline="+pipeline+" ") {
						return r
					}
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("no replica logged triggering %s #%d", pipeline, id)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	other := func(pipeline string, id int) *haReplica {
		h := holder(pipeline, id)
		for _, r := range c.replicas {
			if r != h {
				return r
			}
		}
		t.Fatal("no other replica")
		return nil
	}
	post := func(via *haReplica, repo, pipeline string, id int, verb string) (int, string) {
		t.Helper()
		resp, err := apiAs(t, http.MethodPost, fmt.Sprintf("http://%s/api/v1/pipelines/%s/runs/%d/%s?repository=%s", via.addr, pipeline, id, verb, repo), c.token)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	find := func(rs []apiRun, repo string, id int64) apiRun {
		for _, r := range rs {
			if r.Repository == repo && r.BuildID == id {
				return r
			}
		}
		return apiRun{}
	}
	a := c.replicas["replica-a"]
	t.Logf("owners: %v", owners)

	// slow #1 runs on its owner; a second commit's run #2 waits behind it, queued there.
	c.waitRuns(a, 90*time.Second, "slow #1 running", func(rs []apiRun) bool { return find(rs, "slow", 1).Status == "running" })
	sw.commit("second", map[string][]byte{"README": []byte("2")})
	c.waitRuns(a, 60*time.Second, "slow #2 queued", func(rs []apiRun) bool { return find(rs, "slow", 2).Status == "queued" })
	for _, id := range []int{2, 1} {
		code, body := post(other("slow", id), "slow", "slow", id, "cancel")
		if code != http.StatusAccepted || strings.Contains(body, `"request"`) {
			t.Fatalf("cancel slow #%d on the replica not running it: %d %s", id, code, body)
		}
		rs := c.waitRuns(a, 30*time.Second, fmt.Sprintf("slow #%d cancelled", id), func(rs []apiRun) bool {
			return find(rs, "slow", int64(id)).Status == "cancelled"
		})
		if r := find(rs, "slow", int64(id)); r.Reason != "cancelled by request of api-token" {
			t.Errorf("slow #%d: reason %q", id, r.Reason)
		}
	}
	// A run that has ended is refused, clearly.
	if code, body := post(other("slow", 1), "slow", "slow", 1, "cancel"); code != http.StatusConflict || !strings.Contains(body, "has ended") {
		t.Fatalf("cancel of an ended run: %d %s", code, body)
	}

	// gated #1 waits at its gate on its owner; the other replica's approval lets it through.
	c.waitRuns(a, 90*time.Second, "gated #1 awaiting approval", func(rs []apiRun) bool {
		return find(rs, "gated", 1).Status == "awaiting_approval"
	})
	out, code := slipway(t, "approve", "gated/gated", "1", "--comment", "ship it", "--wait",
		"--server", "http://"+other("gated", 1).addr, "--token-file", c.token)
	if code != 0 || !strings.Contains(out, "#1 succeeded") {
		t.Fatalf("approval through the replica not running the run: exit %d\n%s", code, out)
	}
	gw.commit("again", map[string][]byte{"README": []byte("2")})
	c.waitRuns(a, 90*time.Second, "gated #2 awaiting approval", func(rs []apiRun) bool {
		return find(rs, "gated", 2).Status == "awaiting_approval"
	})
	if code, body := post(other("gated", 2), "gated", "gated", 2, "reject"); code != http.StatusAccepted {
		t.Fatalf("rejection through the replica not running the run: %d %s", code, body)
	}
	rs := c.waitRuns(a, 30*time.Second, "gated #2 failed", func(rs []apiRun) bool { return find(rs, "gated", 2).Status == "failed" })
	if r := find(rs, "gated", 2); r.Reason != "stage production rejected by api-token" {
		t.Errorf("gated #2: reason %q", r.Reason)
	}
	// The rejection left nothing waiting to approve: refused as a local call would be.
	if code, body := post(other("gated", 2), "gated", "gated", 2, "approve"); code != http.StatusConflict {
		t.Fatalf("approval of a failed run: %d %s", code, body)
	}

	// The owner is stopped (SIGSTOP): the other replica waits 5 s for it, then answers 202
	// with the request pending; once the owner runs again it takes the request and cancels.
	sw.commit("third", map[string][]byte{"README": []byte("3")})
	c.waitRuns(a, 60*time.Second, "slow #3 running", func(rs []apiRun) bool { return find(rs, "slow", 3).Status == "running" })
	owner := holder("slow", 3).proc.cmd.Process
	if err := owner.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = owner.Signal(syscall.SIGCONT) })
	code, body := post(other("slow", 3), "slow", "slow", 3, "cancel")
	if err := owner.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	var pending struct {
		Status  string
		Request struct {
			ID                      int64
			Status, Holder, Message string
		}
	}
	if err := json.Unmarshal([]byte(body), &pending); err != nil || code != http.StatusAccepted || pending.Status != "running" ||
		pending.Request.Status != "pending" || !strings.Contains(pending.Request.Message, "did not answer") {
		t.Fatalf("cancel while the owner is stopped: %d %s", code, body)
	}
	rs = c.waitRuns(a, 30*time.Second, "slow #3 cancelled once its owner runs again", func(rs []apiRun) bool {
		return find(rs, "slow", 3).Status == "cancelled"
	})
	if r := find(rs, "slow", 3); r.Reason != "cancelled by request of api-token" {
		t.Errorf("slow #3: reason %q", r.Reason)
	}

	// The CLI says an approval is pending when the owner is stopped, and the owner acts
	// on it once it runs again.
	gw.commit("third", map[string][]byte{"README": []byte("3")})
	c.waitRuns(a, 90*time.Second, "gated #3 awaiting approval", func(rs []apiRun) bool {
		return find(rs, "gated", 3).Status == "awaiting_approval"
	})
	gatedOwner := holder("gated", 3).proc.cmd.Process
	if err := gatedOwner.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gatedOwner.Signal(syscall.SIGCONT) })
	out, code = slipway(t, "approve", "gated/gated", "3", "--server", "http://"+other("gated", 3).addr, "--token-file", c.token)
	if err := gatedOwner.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if code != 0 || !strings.Contains(out, "the approve is recorded, not yet acted on") || !strings.Contains(out, "#3 awaiting_approval") {
		t.Fatalf("approval while the owner is stopped: exit %d\n%s", code, out)
	}
	c.waitRuns(a, 60*time.Second, "gated #3 succeeded once its owner runs again", func(rs []apiRun) bool {
		return find(rs, "gated", 3).Status == "succeeded"
	})

	// The audit names the caller; the owners recorded it, having acted on the request.
	cfg := c.dir + "/slipway-replica-a.yaml"
	var got []string
	for _, p := range []string{"slow", "gated"} {
		for _, e := range auditLogOf(t, cfg, p) {
			got = append(got, fmt.Sprintf("%s:%s:%s#%d", e.Actor, e.Action, p, e.BuildID))
		}
	}
	for _, want := range []string{"api-token:cancel:slow#1", "api-token:cancel:slow#2", "api-token:cancel:slow#3", "api-token:approve:gated#1", "api-token:reject:gated#2", "api-token:approve:gated#3"} {
		if !strings.Contains(strings.Join(got, " "), want) {
			t.Errorf("audit log %v lacks %s", got, want)
		}
	}
	for _, run := range []struct {
		pipeline string
		id       int
	}{{"slow", 1}, {"slow", 2}, {"slow", 3}, {"gated", 1}, {"gated", 2}} {
		handled := false
		for _, line := range strings.Split(holder(run.pipeline, run.id).proc.output(), "\n") {
			handled = handled || strings.Contains(line, "request from another process handled") && strings.Contains(line, "actor=api-token") &&
				strings.Contains(line, fmt.Sprintf(" build_id=%d ", run.id)) && strings.Contains(line, " pipeline="+run.pipeline+" ")
		}
		if !handled {
			t.Errorf("the replica holding %s #%d did not handle a request for it from the other replica", run.pipeline, run.id)
		}
	}
	raw, _ := json.Marshal(got)
	t.Logf("audit: %s", raw)
}

// TestDaemonCancelsARunOfSlipwayRunBesideIt: `slipway run` and a daemon share one SQLite
// store; the daemon (started before the commit, polling hourly, so it runs nothing itself)
// is asked through its API to cancel the CLI's run. It leaves the request in the store, the
// CLI's engine finds it (polling: SQLite wakes no other process), cancels the run and
// audits it under the caller.
func TestDaemonCancelsARunOfSlipwayRunBesideIt(t *testing.T) {
	env := testenv.Get(t)
	repo, url := newWorkRepo(t, env)
	repoName := strings.TrimSuffix(url[strings.LastIndex(url, "/")+1:], ".git")
	cfg := writeConfigFor(t, env, t.TempDir(), repoName, url, env.GitUser, env.GitPassword, "poll: 1h")
	appendConfig(t, cfg, "executor:\n  local: {enabled: true}\n")
	server, token := withAPI(t, cfg)
	d := startAPIServe(t, cfg, server, token)
	repo.commit("slow", map[string][]byte{".pipeline.yaml": quickPipeline("slow", "variables: {SCRIPT: 'sleep 600'}\n")})

	cli := exec.Command(slipwayBinary(t), "run", "--config", cfg, "--repo", repoName)
	var out strings.Builder
	cli.Stdout, cli.Stderr = &out, &out
	if err := cli.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cli.Wait() }()
	t.Cleanup(func() {
		if cli.ProcessState == nil {
			_ = cli.Process.Kill()
			<-done
		}
	})
	waitPipelineHistory(t, cfg, "slow", 60*time.Second, "the CLI's run 1 running", func(h []historyEntry) bool {
		return len(h) == 1 && h[0].Status == "running"
	})
	if got, code := d.ctl(t, "cancel", "slow", "1"); code != 0 || !strings.Contains(got, "#1 cancelled") {
		t.Fatalf("slipway cancel through the daemon: exit %d\n%s", code, got)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Fatalf("slipway run succeeded with its run cancelled:\n%s", out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("slipway run still running after its run was cancelled:\n%s", out.String())
	}
	if h := history(t, cfg, "slow"); h[0].Status != "cancelled" || h[0].Reason != "cancelled by request of api-token" {
		t.Fatalf("run 1: %+v", h[0])
	}
	var actions []string
	for _, e := range auditLogOf(t, cfg, "slow") {
		actions = append(actions, e.Actor+":"+e.Action)
	}
	if !slices.Contains(actions, "api-token:cancel") {
		t.Fatalf("audit log %v lacks the cancel by api-token", actions)
	}
	d.stop(t)
}
