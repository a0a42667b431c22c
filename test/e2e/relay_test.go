package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/internal/sse"
	"github.com/slipwayhq/slipway/test/testenv"
)

// TestLiveLogsAcrossDaemons: two daemons share one PostgreSQL store. One runs a script
// that prints a line every 0.2 s; a viewer follows the run's log over Server-Sent Events
// from the other, which runs nothing (it polls the repository once an hour and started
// before the first commit). The lines reach the viewer in order, each once, while the run
// is still running: the other daemon is woken by the first's writes through the store's
// change relay (it has no other way to hear of them).
func TestLiveLogsAcrossDaemons(t *testing.T) {
	env := testenv.Get(t)
	repo, url := newWorkRepo(t, env)
	repoName := strings.TrimSuffix(url[strings.LastIndex(url, "/")+1:], ".git")
	runner := writeConfig(t, env, repoName, url)
	appendConfig(t, runner, "executor:\n  local: {enabled: true}\n")
	schema := usePostgres(t, runner)

	viewerDir := t.TempDir()
	viewer := writeConfigFor(t, env, viewerDir, repoName, url, env.GitUser, env.GitPassword, "poll: 1h")
	// One store, one key: the viewer reads what the runner encrypted.
	key, err := os.ReadFile(filepath.Join(filepath.Dir(runner), "store.key"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(viewerDir, "store.key"), key, 0o600); err != nil {
		t.Fatal(err)
	}
	usePostgresAt(t, viewer, schema)
	server, token := withAPI(t, viewer)
	startAPIServe(t, viewer, server, token)

	repo.commit("live", map[string][]byte{".pipeline.yaml": []byte(liveScript)})
	startServe(t, runner)

	stream := server + "/api/v1/pipelines/" + "live/runs/1/logs/stream?repository=" + repoName
	resp := openLogStream(t, stream, token, "following run 1 on the other daemon")
	defer resp.Body.Close()
	// Without the relay the stream would wait for ever: a minute bounds it.
	stall := time.AfterFunc(time.Minute, func() { resp.Body.Close() })
	defer stall.Stop()
	texts, firstAt, final := readCountedLines(t, sse.NewReader(resp.Body))
	var want []string
	for i := 1; i <= 20; i++ {
		want = append(want, fmt.Sprint("line ", i))
	}
	if strings.Join(texts, "|") != strings.Join(want, "|") || final.Status != "succeeded" {
		t.Fatalf("over the other daemon's stream: lines %q, end %+v; want line 1 to 20 once each, then succeeded", texts, final)
	}
	// The script runs about 4 s after its first line: that line came while it ran.
	if lead := final.FinishedAt.Sub(firstAt); lead < 2*time.Second {
		t.Fatalf("the first line reached the other daemon's viewer %s before the run ended: not live", lead)
	}
}
