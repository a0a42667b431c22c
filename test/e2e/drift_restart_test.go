package e2e

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/slipwayhq/slipway/store"
	"github.com/slipwayhq/slipway/test/testenv"
)

// TestDriftWatchSurvivesAPIServerRestart: two pipelines' ConfigMaps are watched through one
// shared watch of the kind (not one per pipeline); the API server is killed and started
// again; an out-of-band edit made after the restart is still reported, for both pipelines.
func TestDriftWatchSurvivesAPIServerRestart(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	cs := env.Clientset(t)
	repo, repoName, cfg := newProject(t, env)
	names := []string{"drift-a", "drift-b"}
	var pipelines strings.Builder
	files := map[string][]byte{}
	for _, name := range names {
		fmt.Fprintf(&pipelines, `---
name: %[1]s
stages:
  - name: deploy
    tasks:
      - name: config
        type: deploy-yaml
        path: %[1]s.yaml
        cluster: e2e
        namespace: %[2]s
        wait: 30s
        drift: report
`, name, ns)
		files[name+".yaml"] = []byte(fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\ndata:\n  GREETING: hello\n", name))
	}
	files[".pipeline.yaml"] = []byte(pipelines.String())
	repo.commit("two pipelines", files)
	addr := testenv.FreeAddress(t)
	d := startServe(t, cfg, "--metrics-address", addr)
	defer d.stop(t)
	for _, name := range names {
		waitPipelineHistory(t, cfg, name, 60*time.Second, "run 1 of "+name, func(h []historyEntry) bool { return len(h) == 1 && h[0].Status == "succeeded" })
	}
	st := openDaemonStore(t, cfg)
	// The watcher learns each revision as its task ends, then lists and watches the kind.
	time.Sleep(2 * time.Second)
	// One watch per selector of the kind (the owned label, and the legacy one), whatever
	// the number of pipelines: two, not four.
	if n := watchRequests(t, addr); n != 2 {
		t.Fatalf("%v watch requests for two pipelines' ConfigMaps, want 2 (one shared watch per selector)", n)
	}

	restart := env.Kill(t, "kube-apiserver")
	time.Sleep(2 * time.Second) // the watches notice: their connections are cut
	restart()

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	start := time.Now()
	for _, name := range names {
		if _, err := cs.CoreV1().ConfigMaps(ns).Patch(ctx, name, types.MergePatchType, []byte(`{"data":{"GREETING":"edited after the restart"}}`),
			metav1.PatchOptions{FieldManager: "e2e-operator"}); err != nil {
			t.Fatalf("patch %s: %v", name, err)
		}
	}
	for _, name := range names {
		ref := store.PipelineRef{Repository: repoName, Name: name}
		for {
			evs, err := st.ListDriftEvents(ctx, ref, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) == 1 && evs[0].Object.Name == name && evs[0].Action == store.DriftReported && evs[0].Manager == "e2e-operator" {
				t.Logf("%s: drift after the restart reported %s after the edit", name, time.Since(start).Round(time.Millisecond))
				break
			}
			if len(evs) > 1 || time.Since(start) > 60*time.Second {
				t.Fatalf("%s: drift events %+v %s after an edit made after the API server restarted; want the one edit reported",
					name, evs, time.Since(start).Round(time.Second))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

var watchSample = regexp.MustCompile(`(?m)^slipway_kube_requests_total\{cluster="e2e",verb="watch"\} (\S+)$`)

// watchRequests is the daemon's count of watch requests to the cluster.
func watchRequests(t *testing.T, addr string) float64 {
	t.Helper()
	m := watchSample.FindStringSubmatch(scrape(t, addr))
	if m == nil {
		return 0
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
