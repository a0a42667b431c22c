package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/test/testenv"
)

// TestReplicasRelayCancelAndApproval: two replicas on one PostgreSQL store, each
// repository's runs executing on the replica owning it. Cancels and approval answers are
// sent to the other replica, which holds none of those runs: it leaves them in the store
// for the owner, which acts on them with its own checks and audits them under the caller.
// A queued and a running run are cancelled, an approval lets the gated stage run, a
// rejection fails the run, a cancel of an ended run is refused, and the audit log names
// the caller, recorded by the owner.
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
	// other is the replica that does not own repo, so holds none of its runs.
	other := func(repo string) *haReplica {
		for name, r := range c.replicas {
			if name != owners[repo][0] {
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
		code, body := post(other("slow"), "slow", "slow", id, "cancel")
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
	if code, body := post(other("slow"), "slow", "slow", 1, "cancel"); code != http.StatusConflict || !strings.Contains(body, "has ended") {
		t.Fatalf("cancel of an ended run: %d %s", code, body)
	}

	// gated #1 waits at its gate on its owner; the other replica's approval lets it through.
	c.waitRuns(a, 90*time.Second, "gated #1 awaiting approval", func(rs []apiRun) bool {
		return find(rs, "gated", 1).Status == "awaiting_approval"
	})
	out, code := slipway(t, "approve", "gated/gated", "1", "--comment", "ship it", "--wait",
		"--server", "http://"+other("gated").addr, "--token-file", c.token)
	if code != 0 || !strings.Contains(out, "#1 succeeded") {
		t.Fatalf("approval through the replica not running the run: exit %d\n%s", code, out)
	}
	gw.commit("again", map[string][]byte{"README": []byte("2")})
	c.waitRuns(a, 90*time.Second, "gated #2 awaiting approval", func(rs []apiRun) bool {
		return find(rs, "gated", 2).Status == "awaiting_approval"
	})
	if code, body := post(other("gated"), "gated", "gated", 2, "reject"); code != http.StatusAccepted {
		t.Fatalf("rejection through the replica not running the run: %d %s", code, body)
	}
	rs := c.waitRuns(a, 30*time.Second, "gated #2 failed", func(rs []apiRun) bool { return find(rs, "gated", 2).Status == "failed" })
	if r := find(rs, "gated", 2); r.Reason != "stage production rejected by api-token" {
		t.Errorf("gated #2: reason %q", r.Reason)
	}
	// The rejection left nothing waiting to approve: refused as a local call would be.
	if code, body := post(other("gated"), "gated", "gated", 2, "approve"); code != http.StatusConflict {
		t.Fatalf("approval of a failed run: %d %s", code, body)
	}

	// The audit names the caller; the owners recorded it, having acted on the request.
	cfg := c.dir + "/slipway-replica-a.yaml"
	var got []string
	for _, p := range []string{"slow", "gated"} {
		for _, e := range auditLogOf(t, cfg, p) {
			got = append(got, fmt.Sprintf("%s:%s:%s#%d", e.Actor, e.Action, p, e.BuildID))
		}
	}
	for _, want := range []string{"api-token:cancel:slow#1", "api-token:cancel:slow#2", "api-token:approve:gated#1", "api-token:reject:gated#2"} {
		if !strings.Contains(strings.Join(got, " "), want) {
			t.Errorf("audit log %v lacks %s", got, want)
		}
	}
	for _, repo := range []string{"slow", "gated"} {
		if log := c.replicas[owners[repo][0]].proc.output(); !strings.Contains(log, "request from another process handled") {
			t.Errorf("the owner of %s handled no request from the other replica", repo)
		}
	}
	raw, _ := json.Marshal(got)
	t.Logf("audit: %s", raw)
}
