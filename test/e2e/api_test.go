package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/slipwayhq/slipway/internal/sse"
	"github.com/slipwayhq/slipway/test/testenv"
)

// liveScript prints 20 numbered lines over about 4 s.
const liveScript = `name: live
stages:
  - name: build
    tasks:
      - name: count
        type: script
        executor: local
        script: |
          for i in $(seq 1 20); do echo "line $i"; sleep 0.2; done
`

// apiAs calls the daemon's API with the token in tokenFile ("" for none).
func apiAs(t *testing.T, method, url, tokenFile string) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tokenFile != "" {
		token, err := os.ReadFile(tokenFile)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	}
	return http.DefaultClient.Do(req)
}

// TestAPIFollowsALiveRunsLog: a script run writes lines while a viewer follows its log over
// Server-Sent Events from the real daemon: the lines arrive in order, each once, while
// the run is still running, and the stream ends with the run's status. `slipway logs -f`
// follows a re-run the same way; `get pipelines` and `get runs` show both runs. Every route
// of docs/openapi.yaml answers the real daemon 401 without a token, the operator routes 403
// to the viewer, and an identity restricted to another repository sees nothing of this one.
func TestAPIFollowsALiveRunsLog(t *testing.T) {
	env := testenv.Get(t)
	repo, repoName, cfg := scriptConfig(t, env)
	server, _ := withAPI(t, cfg)
	dir := filepath.Dir(cfg)
	ops, opsEntry := newIdentity(t, dir, "ops", "operator")
	watcher, watcherEntry := newIdentity(t, dir, "watcher", "viewer")
	otherFile := filepath.Join(dir, "other.token")
	otherEntry, code := slipway(t, "token", "new", "other-team", "--role", "viewer", "--repository", "not-"+repoName, "--token-file", otherFile)
	if code != 0 {
		t.Fatalf("slipway token new other-team: exit %d\n%s", code, otherEntry)
	}
	if err := os.WriteFile(filepath.Join(dir, "api-users.yaml"), []byte("users:\n"+opsEntry+watcherEntry+otherEntry), 0o600); err != nil {
		t.Fatal(err)
	}
	appendConfig(t, cfg, "apiTokensFile: api-users.yaml\n")
	repo.commit("live", map[string][]byte{".pipeline.yaml": []byte(liveScript)})
	d := startAPIServe(t, cfg, server, ops)
	stream := server + "/api/v1/pipelines/live/runs/1/logs/stream"

	// The run is recorded when the daemon's first poll starts it; follow it from then on.
	resp := openLogStream(t, stream, watcher, "following run 1")
	defer resp.Body.Close()
	events := sse.NewReader(resp.Body)
	texts, firstAt, final := readCountedLines(t, events)
	if _, err := events.Next(); err != io.EOF {
		t.Fatalf("after the end event: %v, want the stream closed", err)
	}
	var want []string
	for i := 1; i <= 20; i++ {
		want = append(want, fmt.Sprint("line ", i))
	}
	if strings.Join(texts, "|") != strings.Join(want, "|") {
		t.Fatalf("lines over the stream: %q, want line 1 to line 20 once each, in order", texts)
	}
	if final.Status != "succeeded" {
		t.Fatalf("the stream ended with %+v, want succeeded", final)
	}
	// The script takes about 4 s after its first line: that line came while it ran.
	if lead := final.FinishedAt.Sub(firstAt); lead < 2*time.Second {
		t.Fatalf("line 1 arrived %s before the run finished: not live", lead)
	}
	t.Logf("line 1 arrived %s before the run finished", final.FinishedAt.Sub(firstAt).Round(time.Millisecond))

	// Every documented route: 401 without a token; operator routes 403 to a viewer.
	raw, err := os.ReadFile(filepath.Join(env.Root, "docs", "openapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]struct {
			Summary string `yaml:"summary"`
		} `yaml:"paths"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	routes := 0
	for path, ops := range doc.Paths {
		url := server + "/api/v1" + strings.NewReplacer("{pipeline}", "live", "{id}", "1").Replace(path)
		for method, op := range ops {
			method = strings.ToUpper(method)
			routes++
			resp, err := apiAs(t, method, url, "")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s %s without a token: %d, want 401", method, path, resp.StatusCode)
			}
			if strings.Contains(op.Summary, "(role operator)") {
				resp, err := apiAs(t, method, url, watcher)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "needs role operator") {
					t.Errorf("%s %s by a viewer: %d %s, want 403", method, path, resp.StatusCode, body)
				}
			}
		}
	}
	if routes < 20 {
		t.Fatalf("docs/openapi.yaml lists %d routes", routes)
	}
	if code, body := getAs(t, otherFile, server+"/api/v1/pipelines/live?repository="+repoName); code != http.StatusForbidden {
		t.Errorf("an identity of another repository reading pipeline live: %d %s, want 403", code, body)
	}
	if code, body := getAs(t, otherFile, server+"/api/v1/runs"); code != http.StatusOK || !strings.Contains(body, `"runs":[]`) {
		t.Errorf("an identity of another repository listing runs: %d %s, want none", code, body)
	}

	// The CLI: a re-run followed with logs -f, then get pipelines and get runs.
	out, code := slipway(t, "rerun", "live", "1", "--server", server, "--token-file", ops)
	if code != 0 || !strings.Contains(out, "#2 queued") && !strings.Contains(out, "#2 running") {
		t.Fatalf("slipway rerun live 1: exit %d\n%s", code, out)
	}
	out, code = slipway(t, "logs", "-f", "live", "2", "--server", server, "--token-file", watcher)
	if code != 0 || strings.Index(out, "count line 1\n") < 0 || strings.Index(out, "count line 20\n") < strings.Index(out, "count line 19\n") ||
		!strings.Contains(out, "#2 succeeded") {
		t.Fatalf("slipway logs -f live 2: exit %d\n%s", code, out)
	}
	out, code = slipway(t, "get", "pipelines", "--config", cfg)
	if fields := strings.Fields(lastLine(out)); code != 0 || len(fields) < 7 || fields[0] != repoName+"/live" || fields[1] != "#2" || fields[2] != "succeeded" || fields[6] != "false" {
		t.Fatalf("slipway get pipelines: exit %d\n%s", code, out)
	}
	out, code = slipway(t, "get", "runs", "--config", cfg, "live", "-o", "json")
	var page struct {
		Runs []struct {
			BuildID       int64
			ParentBuildID int64
			Status        string
		}
	}
	if code != 0 || json.Unmarshal([]byte(out), &page) != nil || len(page.Runs) != 2 || page.Runs[0].ParentBuildID != 1 || page.Runs[1].Status != "succeeded" {
		t.Fatalf("slipway get runs live -o json: exit %d\n%s", code, out)
	}
	d.stop(t)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// openLogStream opens a run's live log stream as token, waiting up to a minute for the run
// to be recorded (404 or 422 until then); what names the attempt in a failure.
func openLogStream(t *testing.T, stream, token, what string) *http.Response {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := apiAs(t, http.MethodGet, stream, token)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode == http.StatusOK {
			return resp
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusUnprocessableEntity || time.Now().After(deadline) {
			t.Fatalf("%s: %d %s", what, resp.StatusCode, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// streamEnd is the end event of a run's live log stream.
type streamEnd struct {
	Status     string
	FinishedAt time.Time
}

// readCountedLines reads a live log stream up to its end event: the "line N" texts the task
// count printed, when the first of them arrived, and the end.
func readCountedLines(t *testing.T, events *sse.Reader) (texts []string, firstAt time.Time, final streamEnd) {
	t.Helper()
	for final.Status == "" {
		e, err := events.Next()
		if err != nil {
			t.Fatalf("the stream broke or stalled after %q: %v", texts, err)
		}
		switch e.Name {
		case "line":
			var l struct{ Task, Text string }
			if err := json.Unmarshal([]byte(e.Data), &l); err != nil {
				t.Fatal(err)
			}
			if l.Task == "count" && strings.HasPrefix(l.Text, "line ") {
				if len(texts) == 0 {
					firstAt = time.Now()
				}
				texts = append(texts, l.Text)
			}
		case "end":
			if err := json.Unmarshal([]byte(e.Data), &final); err != nil {
				t.Fatal(err)
			}
		}
	}
	return texts, firstAt, final
}
