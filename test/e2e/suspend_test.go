package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/slipwayhq/slipway/store"
	"github.com/slipwayhq/slipway/test/testenv"
)

// A suspended pipeline starts no run for a push, and its drift is reported instead of
// corrected; a manual trigger still runs; resuming runs the head refused meanwhile once,
// then pushes run again and drift is corrected. Both answers are in the audit log.
func TestSuspendStopsPushesAndDriftCorrection(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	cs := env.Clientset(t)
	repo, url := newWorkRepo(t, env)
	repoName := strings.TrimSuffix(url[strings.LastIndex(url, "/")+1:], ".git")
	cfg := writeConfig(t, env, repoName, url)
	server, tokenFile := withAPI(t, cfg)
	manifests := strings.Replace(string(readExample(t, env, "2048-yaml/2048_env.yaml")), "spec:\n  selector:", "spec:\n  replicas: 1\n  selector:", 1)
	repo.commit("one", map[string][]byte{".pipeline.yaml": driftPipeline(env.Registry, ns, ""), "2048_env.yaml": []byte(manifests)})
	d := startAPIServe(t, cfg, server, tokenFile)
	waitHistory(t, cfg, 60*time.Second, "run 1", func(h []historyEntry) bool { return len(h) == 1 && h[0].Status == "succeeded" })
	st := openDaemonStore(t, cfg)
	time.Sleep(time.Second) // the drift watcher learns the revision when the task ends

	out, code := d.ctl(t, "suspend", "jack-2048", "--reason", "change freeze")
	if code != 0 || !strings.Contains(out, "jack-2048 suspended by api-token") {
		t.Fatalf("suspend: exit %d\n%s", code, out)
	}
	repo.commit("two", map[string][]byte{"notes.txt": []byte("pushed while suspended\n")})
	d.waitOutput(t, 30*time.Second, "pipeline jack-2048 is suspended (by api-token at")
	if h := history(t, cfg, "jack-2048"); len(h) != 1 {
		t.Fatalf("a push started a run of a suspended pipeline: %+v", h)
	}
	e := scaleReported(t, env, st, ns, "jack-2048", "suspended")
	if e.Action != store.DriftReported {
		t.Fatalf("drift of a suspended pipeline was %s", e.Action)
	}
	assertReportLeftAlone(t, cs, st, ns, "jack-2048")

	// People may still run it.
	if out, code := d.ctl(t, "trigger", "jack-2048", "--wait"); code != 0 || !strings.Contains(out, "#2 succeeded") {
		t.Fatalf("a manual run of a suspended pipeline: exit %d\n%s", code, out)
	}
	// A push refused while suspended runs once when the pipeline is resumed.
	refusals := strings.Count(d.output(), "pipeline jack-2048 is suspended")
	three := repo.commit("three", map[string][]byte{"notes.txt": []byte("pushed while suspended, again\n")})
	for deadline := time.Now().Add(30 * time.Second); strings.Count(d.output(), "pipeline jack-2048 is suspended") == refusals; {
		if time.Now().After(deadline) {
			t.Fatalf("the push of %s was not refused while suspended:\n%s", three, d.output())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if out, code := d.ctl(t, "resume", "jack-2048"); code != 0 || !strings.Contains(out, "jack-2048 resumed") {
		t.Fatalf("resume: exit %d\n%s", code, out)
	}
	waitHistory(t, cfg, 60*time.Second, "run 3 of the head refused while suspended", func(h []historyEntry) bool {
		return len(h) == 3 && h[0].Status == "succeeded" && h[0].Trigger == "push" && h[0].Commit == three
	})
	time.Sleep(time.Second) // the drift watcher learns run 3's revision when its task ends
	scaleReverted(t, env, cs, ns, "jack-2048", "resumed")
	// Once: resuming again, or the next look, does not run it a second time.
	if out, code := d.ctl(t, "resume", "jack-2048"); code != 0 {
		t.Fatalf("a second resume: exit %d\n%s", code, out)
	}
	time.Sleep(3 * time.Second)
	if h := history(t, cfg, "jack-2048"); len(h) != 3 {
		t.Fatalf("the refused head ran more than once: %+v", h)
	}
	four := repo.commit("four", map[string][]byte{"notes.txt": []byte("pushed after resume\n")})
	waitHistory(t, cfg, 60*time.Second, "run 4 of the push after resume", func(h []historyEntry) bool {
		return len(h) == 4 && h[0].Status == "succeeded" && h[0].Trigger == "push" && h[0].Commit == four
	})
	var actions []string
	for _, e := range auditLogOf(t, cfg, "jack-2048") {
		actions = append(actions, e.Actor+":"+e.Action+":"+e.Reason)
	}
	got := strings.Join(actions, " | ")
	for _, want := range []string{"api-token:suspend:change freeze", "api-token:resume:"} {
		if !strings.Contains(got, want) {
			t.Errorf("audit log %q lacks %q", got, want)
		}
	}
	dep, err := cs.AppsV1().Deployments(ns).Get(context.Background(), "jack-2048", metav1.GetOptions{})
	if err != nil || *dep.Spec.Replicas != 1 {
		t.Fatalf("after resume: %v %+v", err, dep)
	}
	d.stop(t)
}
