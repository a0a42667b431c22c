package bench

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/slipwayhq/slipway/config"
	"github.com/slipwayhq/slipway/internal/changefeed"
	"github.com/slipwayhq/slipway/server/webui"
	"github.com/slipwayhq/slipway/store"
	"github.com/slipwayhq/slipway/test/testenv"
)

// Shape of the web UI benchmark.
const (
	uiRuns      = 10000                  // recorded runs of the pipeline
	uiRequests  = 30                     // requests per page and round
	uiRounds    = 3                      // rounds; the figure is the median of their medians
	uiTargetRun = 100 * time.Millisecond // runs page, server time
)

// noAnswers is the UI's approval hub here: the benchmark answers no gate.
type noAnswers struct{}

func (noAnswers) Approve(context.Context, store.PipelineRef, int64, string, bool, string) error {
	return errors.New("the benchmark answers no approval")
}

type uiFigure struct {
	Page      string    `json:"page"`
	MedianMs  float64   `json:"medianMs"`
	MinMs     float64   `json:"minMs"`
	MaxMs     float64   `json:"maxMs"`
	RoundsMs  []float64 `json:"roundsMs"` // each round's median of uiRequests requests
	TargetMs  float64   `json:"targetMs,omitempty"`
	Rows      int       `json:"rows"`
	BodyBytes int       `json:"bodyBytes"`
}

// TestBenchUI measures the server time of the web UI's pages over a SQLite store holding
// 10 000 runs of one pipeline (each finished, with a build and a deploy task): the runs
// page (运行记录) first, in the middle and at the end of its keyset pages, the run page
// and the pipelines page. Server time is the handler's, from the request to the last
// byte written, in process, with a signed-in session; three rounds of 30 requests per
// page, the median of the rounds' medians with their spread. Target: the runs page ≤ 100 ms.
func TestBenchUI(t *testing.T) {
	env := testenv.Get(t)
	ctx := context.Background()
	feed := changefeed.New()
	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "ui.db"), store.WithChangeSink(feed))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ref := store.PipelineRef{Repository: "shop", Name: "jack-2048"}
	start := time.Now()
	for i := range uiRuns {
		run, err := st.CreateRun(ctx, store.NewRun{Pipeline: ref, Commit: fmt.Sprintf("%040x", i), Branch: "master", Trigger: store.TriggerPush, Holder: "bench"})
		if err != nil {
			t.Fatal(err)
		}
		if i%100 == 0 {
			// Some runs with tasks and logs, so the run page has something to show.
			for _, task := range []store.NewTask{{Stage: "build", Name: "build-2048-image", Type: "build-image"}, {Stage: "deploy", Name: "deploy-2048", Type: "deploy-yaml"}} {
				if _, err := st.AddTask(ctx, ref, run.BuildID, task); err != nil {
					t.Fatal(err)
				}
				lines := make([]store.LogLine, 50)
				for j := range lines {
					lines[j] = store.LogLine{Text: fmt.Sprintf("%s line %d", task.Name, j), Stream: store.StreamStdout}
				}
				if err := st.AppendLogs(ctx, ref, run.BuildID, task.Name, lines); err != nil {
					t.Fatal(err)
				}
			}
		}
		if _, err := st.TransitionRun(ctx, ref, run.BuildID, store.RunQueued, store.RunRunning, ""); err != nil {
			t.Fatal(err)
		}
		if _, err := st.TransitionRun(ctx, ref, run.BuildID, store.RunRunning, store.RunSucceeded, ""); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("recorded %d runs in %s", uiRuns, time.Since(start).Round(time.Millisecond))

	log := logrus.New()
	log.SetLevel(logrus.WarnLevel)
	token := "bench-viewer-token"
	ui, err := webui.New(webui.Options{Users: []config.APIUser{{Name: "bench", Roles: []config.Role{config.RoleViewer}, TokenHash: sha256.Sum256([]byte(token))}},
		Reads: st, Answers: noAnswers{}, Changes: feed, Key: make([]byte, webui.KeySize), Log: logrus.NewEntry(log)})
	if err != nil {
		t.Fatal(err)
	}
	h := ui.Handler()
	session := benchSignIn(t, h, token)

	// The keys of a page in the middle and of the last page, found by walking the pages once.
	older := regexp.MustCompile(`id="older" href="[^"]*\?after=([^"]+)"`)
	base := "/ui/p/shop/jack-2048"
	var keys []string
	for after := ""; ; {
		target := base
		if after != "" {
			target += "?after=" + url.QueryEscape(after)
		}
		_, body := serve(t, h, target, session)
		m := older.FindStringSubmatch(body)
		if m == nil {
			break
		}
		after, _ = url.QueryUnescape(strings.ReplaceAll(m[1], "&amp;", "&"))
		keys = append(keys, after)
	}
	if len(keys) != uiRuns/webui.RunsPageSize-1 {
		t.Fatalf("%d pages of runs, want %d", len(keys)+1, uiRuns/webui.RunsPageSize)
	}
	pages := []struct {
		name, target string
		rows         *regexp.Regexp
		target100    bool
	}{
		{"runs page 1 (newest 50 of 10 000)", base, regexp.MustCompile(`/runs/\d+">#`), true},
		{"runs page 100 (middle)", base + "?after=" + url.QueryEscape(keys[len(keys)/2]), regexp.MustCompile(`/runs/\d+">#`), true},
		{"runs page 200 (oldest)", base + "?after=" + url.QueryEscape(keys[len(keys)-1]), regexp.MustCompile(`/runs/\d+">#`), true},
		{"run page (2 tasks, 100 log lines)", base + "/runs/9901", regexp.MustCompile(`class="task"`), false},
		{"pipelines page", "/ui/", regexp.MustCompile(`data-pipeline=`), false},
	}
	var figures []uiFigure
	for _, p := range pages {
		f := uiFigure{Page: p.name}
		if p.target100 {
			f.TargetMs = float64(uiTargetRun.Milliseconds())
		}
		serve(t, h, p.target, session) // warm-up
		for range uiRounds {
			var ms []float64
			for range uiRequests {
				d, body := serve(t, h, p.target, session)
				ms = append(ms, float64(d.Microseconds())/1000)
				f.Rows, f.BodyBytes = len(p.rows.FindAllString(body, -1)), len(body)
			}
			f.RoundsMs = append(f.RoundsMs, median(ms))
		}
		f.MedianMs, f.MinMs, f.MaxMs = median(f.RoundsMs), slices.Min(f.RoundsMs), slices.Max(f.RoundsMs)
		figures = append(figures, f)
	}
	var table strings.Builder
	fmt.Fprintf(&table, "\n%-36s %10s %18s %6s %9s %8s\n", "page (10 000 runs recorded)", "median ms", "spread (3 rounds)", "rows", "bytes", "target")
	for _, f := range figures {
		target := ""
		if f.TargetMs > 0 {
			target = fmt.Sprintf("≤ %.0f", f.TargetMs)
		}
		fmt.Fprintf(&table, "%-36s %10.2f %8.2f – %-7.2f %6d %9d %8s\n", f.Page, f.MedianMs, f.MinMs, f.MaxMs, f.Rows, f.BodyBytes, target)
	}
	t.Log(table.String())
	writeReport(t, env, "ui.json", map[string]any{"runs": uiRuns, "requestsPerRound": uiRequests, "rounds": uiRounds, "pages": figures})
	for _, f := range figures {
		if f.TargetMs > 0 && f.MedianMs > f.TargetMs {
			t.Errorf("%s: median %.2f ms over the %.0f ms target", f.Page, f.MedianMs, f.TargetMs)
		}
		if strings.HasPrefix(f.Page, "runs page") && f.Rows != webui.RunsPageSize {
			t.Errorf("%s showed %d runs, want %d", f.Page, f.Rows, webui.RunsPageSize)
		}
	}
}

// serve runs one GET through the handler and returns its server time and body.
func serve(t *testing.T, h http.Handler, target string, session *http.Cookie) (time.Duration, string) {
	t.Helper()
	req := httptest.NewRequest("GET", target, nil)
	req.AddCookie(session)
	rec := httptest.NewRecorder()
	start := time.Now()
	h.ServeHTTP(rec, req)
	d := time.Since(start)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET %s: %d\n%s", target, rec.Code, rec.Body)
	}
	return d, rec.Body.String()
}

// benchSignIn signs in through the form, as a browser does, and returns the session cookie.
func benchSignIn(t *testing.T, h http.Handler, token string) *http.Cookie {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/ui/login", nil))
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(rec.Body.String())
	if m == nil {
		t.Fatal("no CSRF field in the sign-in form")
	}
	req := httptest.NewRequest("POST", "/ui/login", strings.NewReader(url.Values{"csrf": {m[1]}, "token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, c := range rec.Result().Cookies() {
		req.AddCookie(c)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	for _, c := range rec.Result().Cookies() {
		if c.Name == "slipway_session" {
			return c
		}
	}
	t.Fatalf("sign-in: %d, no session cookie", rec.Code)
	return nil
}
