package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/test/testenv"
)

type auditEntry struct {
	Actor    string `json:"actor"`
	Action   string `json:"action"`
	Pipeline string `json:"pipeline"`
	BuildID  int64  `json:"build_id"`
	Reason   string `json:"reason"`
}

func auditLog(t *testing.T, cfg string) []auditEntry {
	t.Helper()
	return auditLogOf(t, cfg, "jack-2048")
}

// auditLogOf is a pipeline's audit log, newest first.
func auditLogOf(t *testing.T, cfg, pipeline string) []auditEntry {
	t.Helper()
	out, code := slipway(t, "audit", "--config", cfg, pipeline, "-o", "json")
	if code != 0 {
		t.Fatalf("slipway audit: exit %d\n%s", code, out)
	}
	var entries []auditEntry
	if err := json.Unmarshal([]byte(out), &entries); err != nil {
		t.Fatalf("slipway audit -o json: %v\n%s", err, out)
	}
	return entries
}

// newIdentity makes a token for name with `slipway token new` and returns the token file
// and the apiTokensFile entry it printed.
func newIdentity(t *testing.T, dir, name, role string) (tokenFile, entry string) {
	t.Helper()
	tokenFile = filepath.Join(dir, name+".token")
	out, code := slipway(t, "token", "new", name, "--role", role, "--token-file", tokenFile)
	if code != 0 {
		t.Fatalf("slipway token new %s: exit %d\n%s", name, code, out)
	}
	return tokenFile, out
}

// getAs GETs url with the token in tokenFile.
func getAs(t *testing.T, tokenFile, url string) (int, string) {
	t.Helper()
	token, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestAPIIdentitiesAndAudit: two identities from apiTokensFile, alice (operator) and bob
// (viewer). Bob's trigger and cancel are refused 403 and start nothing; alice's trigger
// runs and her cancel stops a run; `slipway audit` names her for both, and a CLI rollback
// by the local user.
func TestAPIIdentitiesAndAudit(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	repo, _, cfg := newProject(t, env)
	server, _ := withAPI(t, cfg)
	dir := filepath.Dir(cfg)
	alice, aliceEntry := newIdentity(t, dir, "alice", "operator")
	bob, bobEntry := newIdentity(t, dir, "bob", "viewer")
	if err := os.WriteFile(filepath.Join(dir, "api-users.yaml"), []byte("users:\n"+aliceEntry+bobEntry), 0o600); err != nil {
		t.Fatal(err)
	}
	appendConfig(t, cfg, "apiTokensFile: api-users.yaml\n")
	manifests := readExample(t, env, "2048-yaml/2048_env.yaml")
	repo.commit("first", map[string][]byte{".pipeline.yaml": deployOnlyPipeline(env.Registry, ns), "2048_env.yaml": manifests})
	d := startAPIServe(t, cfg, server, alice)
	waitHistory(t, cfg, 60*time.Second, "run 1 of the first commit", func(h []historyEntry) bool {
		return len(h) == 1 && h[0].Status == "succeeded"
	})
	as := func(tokenFile string, args ...string) (string, int) {
		return slipway(t, append(args, "--server", server, "--token-file", tokenFile)...)
	}

	// bob may read but not trigger: 403, and nothing runs.
	out, code := as(bob, "trigger", "jack-2048")
	if code == 0 || !strings.Contains(out, "403") || !strings.Contains(out, "bob may not do this: it needs role operator") {
		t.Fatalf("bob's trigger: exit %d\n%s", code, out)
	}
	if code, body := getAs(t, bob, server+"/api/v1/pipelines/jack-2048/runs/1"); code != http.StatusOK || !strings.Contains(body, `"status":"succeeded"`) {
		t.Fatalf("bob reading run 1: %d %s", code, body)
	}
	if h := history(t, cfg, "jack-2048"); len(h) != 1 {
		t.Fatalf("bob's refused trigger started a run: %+v", h)
	}
	if a := auditLog(t, cfg); len(a) != 0 {
		t.Fatalf("audit log after a refused trigger: %+v", a)
	}

	// alice may: her run succeeds and the audit log names her.
	out, code = as(alice, "trigger", "jack-2048", "--wait")
	if code != 0 || !strings.Contains(out, "#2 succeeded (trigger manual") {
		t.Fatalf("alice's trigger: exit %d\n%s", code, out)
	}
	if a := auditLog(t, cfg); len(a) != 1 || a[0].Actor != "alice" || a[0].Action != "trigger" || a[0].BuildID != 2 {
		t.Fatalf("audit log after alice's trigger: %+v", a)
	}

	// A run that never gets healthy: bob cannot cancel it, alice can.
	repo.commit("never ready", map[string][]byte{"2048_env.yaml": []byte(neverReady(manifests))})
	waitHistory(t, cfg, 30*time.Second, "run 3 running", func(h []historyEntry) bool { return len(h) == 3 && h[0].Status == "running" })
	if out, code := as(bob, "cancel", "jack-2048", "3"); code == 0 || !strings.Contains(out, "403") {
		t.Fatalf("bob's cancel: exit %d\n%s", code, out)
	}
	out, code = as(alice, "cancel", "jack-2048", "3")
	if code != 0 || !strings.Contains(out, "#3 cancelled") {
		t.Fatalf("alice's cancel: exit %d\n%s", code, out)
	}
	if h := history(t, cfg, "jack-2048"); h[0].Status != "cancelled" || h[0].Reason != "cancelled by request of alice" {
		t.Fatalf("run 3 after alice's cancel: %+v", h[0])
	}
	d.stop(t)

	// A rollback from the command line is audited as cli:USER.
	out, code = slipway(t, "rollback", "--config", cfg, "jack-2048", "--to", "2")
	if code != 0 {
		t.Fatalf("slipway rollback --to 2: exit %d\n%s", code, out)
	}
	a := auditLog(t, cfg)
	if len(a) != 3 || a[1].Actor != "alice" || a[1].Action != "cancel" || a[1].BuildID != 3 ||
		!strings.HasPrefix(a[0].Actor, "cli:") || a[0].Action != "rollback" || a[0].BuildID != 4 {
		t.Fatalf("audit log, newest first: %+v", a)
	}
	t.Logf("audit log: %+v", a)
}
