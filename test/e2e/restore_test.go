package e2e

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/slipwayhq/slipway/test/testenv"
)

// TestRestoreIntoAFreshDaemon follows docs/store.md's recovery procedure: a running
// daemon's store is backed up; the daemon stops and its data folder is lost; the backup is
// restored into a fresh one and a new daemon started there carries on: a ConfigMap edited
// out of band is corrected (its drift watch resumed from the restored revisions), and the
// next push runs as BUILD_ID 3. The recovery time (restore, start, and the first drift
// correction) is printed.
func TestRestoreIntoAFreshDaemon(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	repo, _, cfg := newProject(t, env)
	pipelineFile := []byte(`name: jack-2048
stages:
  - name: deploy
    tasks:
      - name: web
        type: deploy-yaml
        path: cm.yaml
        cluster: e2e
        namespace: ` + ns + `
`)
	cm := func(v string) []byte {
		return []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: restored\ndata:\n  value: " + v + "\n")
	}
	repo.commit("one", map[string][]byte{".pipeline.yaml": pipelineFile, "cm.yaml": cm("one")})
	d := startServe(t, cfg)
	waitHistory(t, cfg, 60*time.Second, "run 1", func(h []historyEntry) bool { return len(h) == 1 && h[0].Status == "succeeded" })
	repo.commit("two", map[string][]byte{"cm.yaml": cm("two")})
	waitHistory(t, cfg, 60*time.Second, "run 2", func(h []historyEntry) bool { return len(h) == 2 && h[0].Status == "succeeded" })

	backup := filepath.Join(t.TempDir(), "slipway-backup.db")
	if out, code := slipway(t, "store", "backup", "--config", cfg, "--to", backup); code != 0 {
		t.Fatalf("slipway store backup of the running daemon's store: exit %d\n%s", code, out)
	}
	d.stop(t)
	// The machine is lost: its data folder (store, Git mirrors) with it. slipway.yaml and
	// the key files are kept apart, as the procedure says.
	data := filepath.Join(filepath.Dir(cfg), "data")
	if err := os.Rename(data, data+"-lost"); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	if out, code := slipway(t, "store", "restore", "--config", cfg, "--from", backup); code != 0 {
		t.Fatalf("slipway store restore: exit %d\n%s", code, out)
	}
	restored := time.Since(start)
	d = startServe(t, cfg)
	d.waitOutput(t, 60*time.Second, "slipway serving")
	serving := time.Since(start)
	kubectl(t, env, "-n", ns, "patch", "configmap/restored", "--type", "merge", "-p", `{"data":{"value":"edited"}}`)
	d.waitOutput(t, 60*time.Second, "drift corrected")
	corrected := time.Since(start)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := env.Clientset(t).CoreV1().ConfigMaps(ns).Get(ctx, "restored", metav1.GetOptions{})
	if err != nil || c.Data["value"] != "two" {
		t.Fatalf("after the correction the ConfigMap holds %v (%v), want run 2's value", c.Data, err)
	}

	third := repo.commit("three", map[string][]byte{"cm.yaml": cm("three")})
	h := waitHistory(t, cfg, 60*time.Second, "run 3 on the restored store", func(h []historyEntry) bool {
		return len(h) == 3 && h[0].Status == "succeeded"
	})
	if h[0].BuildID != 3 || h[0].Commit != third {
		t.Fatalf("the first run after the restore: %+v, want BUILD_ID 3 of %s", h[0], third)
	}
	t.Logf("recovery time: restore %s, daemon serving %s, first drift corrected %s after the restore began",
		restored.Round(10*time.Millisecond), serving.Round(10*time.Millisecond), corrected.Round(10*time.Millisecond))
	d.stop(t)
}
