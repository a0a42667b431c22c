package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/slipwayhq/slipway/test/testenv"
)

// interruptPipeline pauses in a script (so the daemon can be killed mid-run), then deploys
// a ConfigMap holding value.
func interruptPipeline(ns, top string) []byte {
	return []byte(`name: jack-2048
` + top + `stages:
  - name: pause
    tasks:
      - name: pause
        type: script
        executor: local
        script: "echo pausing; sleep 6"
  - name: deploy
    tasks:
      - name: web
        type: deploy-yaml
        path: cm.yaml
        cluster: e2e
        namespace: ` + ns + `
`)
}

// TestInterruptedRunRetried: two daemons, each SIGKILLed while its run pauses, then started
// again. Once the dead process's heartbeat lapses, each run is recorded interrupted, naming
// the task it was running. The pipeline with retryInterrupted is run again, once, at the
// same commit as BUILD_ID 2 (trigger retry, parent 1), which deploys the commit; the other
// stays interrupted, "not retried", and deploys nothing.
func TestInterruptedRunRetried(t *testing.T) {
	env := testenv.Get(t)
	type project struct {
		retry  bool
		ns     string
		cfg    string
		commit string
		d      *daemonProc
	}
	var ps []*project
	for _, retry := range []bool{true, false} {
		p := &project{retry: retry, ns: env.Namespace(t)}
		repo, _, cfg := newProject(t, env)
		appendConfig(t, cfg, "executor:\n  local: {enabled: true}\n")
		top := ""
		if retry {
			top = "retryInterrupted: true\n"
		}
		cm := fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: interrupted\ndata:\n  retry: %q\n", fmt.Sprint(retry))
		p.cfg = cfg
		p.commit = repo.commit("first", map[string][]byte{".pipeline.yaml": interruptPipeline(p.ns, top), "cm.yaml": []byte(cm)})
		p.d = startServe(t, cfg)
		ps = append(ps, p)
	}
	for _, p := range ps {
		p.d.waitOutput(t, 60*time.Second, "running the script on local")
	}
	killed := time.Now()
	for _, p := range ps {
		_ = p.d.cmd.Process.Kill()
		<-p.d.done
		p.d = startServe(t, p.cfg)
	}
	for _, p := range ps {
		h := waitHistory(t, p.cfg, 90*time.Second, "run 1 interrupted", func(h []historyEntry) bool {
			return len(h) >= 1 && h[len(h)-1].Status == "interrupted"
		})
		run1 := h[len(h)-1]
		if !strings.Contains(run1.Reason, "while running pause") {
			t.Errorf("retry=%v: the interrupted run's reason does not name the running task: %q", p.retry, run1.Reason)
		}
		t.Logf("retry=%v: run 1 interrupted %s after the kill: %s", p.retry, time.Since(killed).Round(time.Second), run1.Reason)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, p := range ps {
		if !p.retry {
			continue
		}
		h := waitHistory(t, p.cfg, 90*time.Second, "the retry succeeded", func(h []historyEntry) bool {
			return len(h) == 2 && h[0].Status == "succeeded"
		})
		if h[0].BuildID != 2 || h[0].Trigger != "retry" || h[0].Parent != 1 || h[0].Commit != p.commit {
			t.Errorf("the retry: %+v, want BUILD_ID 2, trigger retry, parent 1, commit %s", h[0], p.commit)
		}
		cm, err := env.Clientset(t).CoreV1().ConfigMaps(p.ns).Get(ctx, "interrupted", metav1.GetOptions{})
		if err != nil || cm.Data["retry"] != "true" {
			t.Errorf("the retried commit's ConfigMap: %v %v", cm, err)
		}
		t.Logf("retried: deployed %s after the kill", time.Since(killed).Round(time.Second))
	}
	for _, p := range ps {
		if p.retry {
			continue
		}
		h := waitHistory(t, p.cfg, 30*time.Second, "run 1 not retried", func(h []historyEntry) bool {
			return len(h) == 1 && strings.Contains(h[0].Reason, "not retried: the pipeline does not set retryInterrupted")
		})
		// The retried project has had its retry by now: the same time has passed here.
		if len(h) != 1 {
			t.Errorf("a run started without retryInterrupted: %+v", h)
		}
		if _, err := env.Clientset(t).CoreV1().ConfigMaps(p.ns).Get(ctx, "interrupted", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("the interrupted run's deploy stage ran: %v", err)
		}
	}
	for _, p := range ps {
		p.d.stop(t)
	}
}
