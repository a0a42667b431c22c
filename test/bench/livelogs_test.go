package bench

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/internal/sse"
	"github.com/slipwayhq/slipway/store"
	"github.com/slipwayhq/slipway/test/testenv"
)

// Shape of the live log benchmark.
const (
	liveLines     = 100                    // lines per run, one every liveGap
	liveGap       = 50 * time.Millisecond  // between two lines
	liveRounds    = 3                      // runs; the figure is the median of their p95
	liveTargetP95 = 200 * time.Millisecond // line written by the task → seen by an SSE client
	livePipeline  = "bench-live"
)

// liveRound is one run's latencies, sorted.
type liveRound struct {
	BuildID int64   `json:"buildId"`
	P50Ms   float64 `json:"p50Ms"`
	P95Ms   float64 `json:"p95Ms"`
	MaxMs   float64 `json:"maxMs"`
	Lines   int     `json:"lines"`
}

// TestBenchLiveLogs measures the live log path end to end on a real daemon: a script task
// (executor local) prints its clock in nanoseconds every 50 ms; an SSE client of
// GET .../logs/stream notes when each line arrives. Latency = arrival − the time printed,
// so it holds the script's pipe, the task log's periodic store (100 ms), the store's
// commit, the change feed's wake-up and the stream. Three manual runs, one after another;
// the figure is the median of their p95 with the spread (min–max).
func TestBenchLiveLogs(t *testing.T) {
	env := testenv.Get(t)
	bin := buildSlipwayBinary(t, env)
	admin := env.Gitea(t)
	owner := admin.CreateUser(t, "benchlive")
	as := admin.As(owner)
	repo := as.CreateRepo(t, "", "bench-live")
	pushURL := as.PushURL(repo.Owner.Login, repo.Name) // carries a token: never printed
	tmp := t.TempDir()
	tokenBytes := make([]byte, 16)
	_, _ = rand.Read(tokenBytes)
	token := hex.EncodeToString(tokenBytes)
	for name, v := range map[string]string{"gitea-user": owner.Name, "gitea-password": owner.Password, "api-token": token} {
		if err := os.WriteFile(filepath.Join(tmp, name), []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	work := &benchWork{t: t, dir: filepath.Join(tmp, "work"), redact: []string{pushURL, owner.Token, owner.Password}}
	work.git("init", "-q", "--initial-branch=master", ".")
	work.commit("live", map[string]string{".pipeline.yaml": fmt.Sprintf(`name: %s
stages:
  - name: build
    tasks:
      - name: clock
        type: script
        executor: local
        script: |
          for i in $(seq 1 %d); do date +%%s%%N; sleep %.3f; done
`, livePipeline, liveLines, liveGap.Seconds())})
	work.git("push", "-q", pushURL, "master")

	dir := filepath.Join(tmp, "daemon")
	cfg := writeTrigConfig(t, env, dir, tmp, "bench-live", as.CloneURL(repo.Owner.Login, repo.Name), "0s", false)
	f, err := os.OpenFile(cfg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "apiTokenFile: %s/api-token\nexecutor:\n  local: {enabled: true}\n", tmp)
	f.Close()
	d := startTrigServe(t, bin, cfg, dir)
	st := d.openStore(t)
	defer st.Close()
	// The daemon's first look runs the head once: a warm-up, not measured.
	waitRun(t, d, st, store.PipelineRef{Repository: "bench-live", Name: livePipeline}, work.head(), 60*time.Second,
		func(r store.Run) bool { return r.Status.Final() })

	api := "http://" + d.listen + "/api/v1/pipelines/" + livePipeline + "/runs"
	call := func(method, url string) *http.Response {
		req, _ := http.NewRequest(method, url, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			d.fail(t, "%s %s: %v", method, url, err)
		}
		return resp
	}
	var rounds []liveRound
	for round := 1; round <= liveRounds; round++ {
		resp := call(http.MethodPost, api)
		var run struct{ BuildID int64 }
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated || json.Unmarshal(body, &run) != nil {
			d.fail(t, "trigger: %d %s", resp.StatusCode, body)
		}
		stream := call(http.MethodGet, fmt.Sprintf("%s/%d/logs/stream?task=clock", api, run.BuildID))
		if stream.StatusCode != http.StatusOK {
			d.fail(t, "stream of #%d: %d", run.BuildID, stream.StatusCode)
		}
		events := sse.NewReader(stream.Body)
		var lat []time.Duration
		status := ""
		for {
			e, err := events.Next()
			if err != nil {
				d.fail(t, "stream of #%d broke: %v", run.BuildID, err)
			}
			at := time.Now()
			if e.Name == "end" {
				var r struct{ Status string }
				_ = json.Unmarshal([]byte(e.Data), &r)
				status = r.Status
				break
			}
			if e.Name != "line" {
				continue
			}
			var l struct{ Text string }
			if err := json.Unmarshal([]byte(e.Data), &l); err != nil {
				d.fail(t, "line of #%d: %v", run.BuildID, err)
			}
			ns, err := strconv.ParseInt(strings.TrimSpace(l.Text), 10, 64)
			if err != nil {
				continue // the executor's own lines
			}
			lat = append(lat, at.Sub(time.Unix(0, ns)))
		}
		stream.Body.Close()
		if status != string(store.RunSucceeded) || len(lat) != liveLines {
			d.fail(t, "run #%d ended %q with %d of %d clock lines", run.BuildID, status, len(lat), liveLines)
		}
		slices.Sort(lat)
		ms := func(x time.Duration) float64 { return float64(x.Microseconds()) / 1000 }
		rounds = append(rounds, liveRound{BuildID: run.BuildID, P50Ms: ms(percentile(lat, 50)), P95Ms: ms(percentile(lat, 95)),
			MaxMs: ms(lat[len(lat)-1]), Lines: len(lat)})
	}

	pick := func(f func(liveRound) float64) []float64 {
		out := make([]float64, len(rounds))
		for i, r := range rounds {
			out[i] = f(r)
		}
		return out
	}
	p95s, p50s := pick(func(r liveRound) float64 { return r.P95Ms }), pick(func(r liveRound) float64 { return r.P50Ms })
	medP95 := median(p95s)
	met := medP95 <= float64(liveTargetP95.Milliseconds())
	var b bytes.Buffer
	fmt.Fprintf(&b, "\nLive logs over SSE: a script (executor local) prints its clock every %s, %d lines per run; "+
		"latency = arrival at the client − time printed; %d runs\n\n", liveGap, liveLines, liveRounds)
	b.WriteString("| run | p50 | p95 | max |\n|---|---:|---:|---:|\n")
	for _, r := range rounds {
		fmt.Fprintf(&b, "| #%d | %.1f ms | %.1f ms | %.1f ms |\n", r.BuildID, r.P50Ms, r.P95Ms, r.MaxMs)
	}
	fmt.Fprintf(&b, "\n| measure | median of %d | spread (min–max) | target |\n|---|---:|---:|---|\n", liveRounds)
	fmt.Fprintf(&b, "| p50 | %.1f ms | %.1f–%.1f ms | |\n", median(p50s), slices.Min(p50s), slices.Max(p50s))
	fmt.Fprintf(&b, "| p95 | %.1f ms | %.1f–%.1f ms | ≤ %d ms: %s |\n", medP95, slices.Min(p95s), slices.Max(p95s),
		liveTargetP95.Milliseconds(), map[bool]string{true: "met", false: "MISSED"}[met])
	t.Log(b.String())
	fmt.Println(b.String())
	writeReport(t, env, "livelogs.json", map[string]any{"rounds": rounds, "medianP95Ms": medP95, "p95SpreadMs": []float64{slices.Min(p95s), slices.Max(p95s)},
		"medianP50Ms": median(p50s), "targetP95Ms": liveTargetP95.Milliseconds(), "met": met})
	if !met {
		t.Errorf("live log p95 %.1f ms, target ≤ %d ms", medP95, liveTargetP95.Milliseconds())
	}
	d.stop(t)
}
