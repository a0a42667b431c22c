package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/slipwayhq/slipway/test/testenv"
)

// `slipway rollback --to 1` after three runs: the cluster equals revision 1, and polling
// does not re-deploy the head until a new commit arrives, not even after a restart.
func TestManualRollbackIsNotUndoneByPolling(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	cs := env.Clientset(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	repo, _, cfg := newProject(t, env)
	manifests := string(readExample(t, env, "2048-yaml/2048_env.yaml"))
	replicas := func(n string) []byte {
		return []byte(strings.Replace(manifests, "spec:\n  selector:", "spec:\n  replicas: "+n+"\n  selector:", 1))
	}
	repo.commit("one", map[string][]byte{".pipeline.yaml": deployOnlyPipeline(env.Registry, ns), "2048_env.yaml": replicas("1")})
	d := startServe(t, cfg)
	waitHistory(t, cfg, 60*time.Second, "run 1", func(h []historyEntry) bool { return len(h) == 1 && h[0].Status == "succeeded" })
	repo.commit("two", map[string][]byte{"2048_env.yaml": replicas("2")})
	waitHistory(t, cfg, 60*time.Second, "run 2", func(h []historyEntry) bool { return len(h) == 2 && h[0].Status == "succeeded" })
	head := repo.commit("three", map[string][]byte{"2048_env.yaml": append(replicas("3"),
		[]byte("---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: added-in-three\n")...)})
	waitHistory(t, cfg, 60*time.Second, "run 3", func(h []historyEntry) bool { return len(h) == 3 && h[0].Status == "succeeded" })

	out, code := slipway(t, "rollback", "--config", cfg, "jack-2048", "--to", "1")
	if code != 0 {
		t.Fatalf("rollback failed:\n%s", out)
	}
	dep, err := cs.AppsV1().Deployments(ns).Get(ctx, "jack-2048", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *dep.Spec.Replicas != 1 || !strings.HasSuffix(dep.Spec.Template.Spec.Containers[0].Image, ":alpha-1") {
		t.Errorf("after rollback: replicas %d image %s, want revision 1's", *dep.Spec.Replicas, dep.Spec.Template.Spec.Containers[0].Image)
	}
	if _, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "added-in-three", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the object revision 3 added survived the rollback: %v", err)
	}
	h := history(t, cfg, "jack-2048")
	if len(h) != 4 || h[0].Trigger != "rollback" || h[0].Status != "succeeded" || h[0].Reason != "rolled back to BUILD_ID 1" || h[0].Parent != 1 {
		t.Fatalf("history after rollback = %+v", h)
	}
	// A rollback is a run like any other: its stage and task are recorded with their log.
	if logs, code := slipway(t, "logs", "--config", cfg, "jack-2048", "4"); code != 0 ||
		!strings.Contains(logs, "== rollback/deploy-2048 [deploy-yaml] succeeded") || !strings.Contains(logs, "re-applying the") {
		t.Errorf("the rollback run's stages and tasks:\n%s", logs)
	}

	// Several poll intervals, and a restart: the head is not deployed again.
	time.Sleep(3 * time.Second)
	d.stop(t)
	d = startServe(t, cfg)
	time.Sleep(3 * time.Second)
	if h := history(t, cfg, "jack-2048"); len(h) != 4 {
		t.Fatalf("polling re-deployed %s after the rollback: %+v", head[:7], h)
	}
	dep, _ = cs.AppsV1().Deployments(ns).Get(ctx, "jack-2048", metav1.GetOptions{})
	if *dep.Spec.Replicas != 1 {
		t.Fatalf("replicas changed back to %d without a new commit", *dep.Spec.Replicas)
	}

	// The next new commit deploys normally.
	newest := repo.commit("four", map[string][]byte{"2048_env.yaml": replicas("4")})
	waitHistory(t, cfg, 60*time.Second, "run 5 of the new commit", func(h []historyEntry) bool {
		return len(h) == 5 && h[0].Commit == newest && h[0].Status == "succeeded"
	})
	d.stop(t)
}
