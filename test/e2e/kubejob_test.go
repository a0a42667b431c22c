package e2e

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/slipwayhq/slipway/reconciler/scriptrun"
	"github.com/slipwayhq/slipway/reconciler/scriptrun/kubejob"
	"github.com/slipwayhq/slipway/test/testenv"
)

// kubeJobRig is the Kubernetes executor aimed at a namespace of the test's own, its pods sent
// to the environment's real node.
type kubeJobRig struct {
	env  *testenv.Env
	cs   kubernetes.Interface
	ns   string
	opts kubejob.Options
}

func newKubeJobRig(t *testing.T) *kubeJobRig {
	t.Helper()
	env := testenv.Get(t)
	_, selector, toleration := env.RealNode(t)
	cs := env.Clientset(t)
	ns := env.Namespace(t)
	log := logrus.New()
	log.SetOutput(testWriter{t})
	log.SetLevel(logrus.DebugLevel)
	return &kubeJobRig{env: env, cs: cs, ns: ns, opts: kubejob.Options{
		Client: cs, Config: env.RestConfig(t), Cluster: "local", Namespace: ns,
		NodeSelector: selector, Tolerations: []corev1.Toleration{toleration}, Log: logrus.NewEntry(log),
	}}
}

// spec is a script in the base image over a fresh workspace.
func (r *kubeJobRig) spec(t *testing.T, script string) scriptrun.Spec {
	return scriptrun.Spec{
		Run:       scriptrun.RunRef{Repository: "e2e/kubejob", Pipeline: "p", BuildID: 7, Task: strings.ToLower(t.Name()[len("TestKubeJob"):])},
		Image:     r.env.BaseImage,
		Script:    script,
		Env:       map[string]string{},
		Workspace: t.TempDir(),
		Log:       &syncBuffer{},
	}
}

// startFails runs s, wants a StartError whose reason ok accepts (want says which), and
// checks that nothing is left behind.
func (r *kubeJobRig) startFails(t *testing.T, ctx context.Context, s scriptrun.Spec, want string, ok func(reason string) bool) {
	t.Helper()
	_, err := kubejob.New(r.opts).Run(ctx, s)
	var se *scriptrun.StartError
	if !errors.As(err, &se) || !ok(se.Reason) {
		t.Fatalf("err = %v, want %s", err, want)
	}
	t.Logf("reason: %s", se.Reason)
	r.assertNothingLeft(t)
}

// assertNothingLeft checks that the namespace holds no Job and no pod.
func (r *kubeJobRig) assertNothingLeft(t *testing.T) {
	t.Helper()
	assertNoJobs(t, r.cs, r.ns)
}

// syncBuffer is a log sink that tests read while the executor writes, and that can signal
// when a text first appears.
type syncBuffer struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	watch string
	seen  chan struct{}
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if b.seen != nil && b.watch != "" && strings.Contains(b.buf.String(), b.watch) {
		close(b.seen)
		b.seen = nil
	}
	return len(p), nil
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// when returns a channel closed once text has been written.
func (b *syncBuffer) when(text string) <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	ch := make(chan struct{})
	b.watch, b.seen = text, ch
	return ch
}

// TestKubeJobWorkspaceEnvAndSecret: the workspace reaches the pod and the script's edits
// (changed, new and removed files) come back; env and a secretEnv (by secretKeyRef to a real
// Secret) reach the script; its $SLIPWAY_OUTPUT comes back; the kubelet's $(VAR) expansion
// does not touch the script; nothing is left behind.
func TestKubeJobWorkspaceEnvAndSecret(t *testing.T) {
	r := newKubeJobRig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const secretValue = "kubejob-s3cr3t-value"
	_, err := r.cs.CoreV1().Secrets(r.ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "creds"}, StringData: map[string]string{"token": secretValue},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s := r.spec(t, `set -e
echo "in $(pwd): $(cat a.txt)"
echo edited >> a.txt
echo new > sub/new.txt
rm remove-me
[ "$TOKEN" = "`+secretValue+`" ] && echo token-ok
lit='$(GREETING)'
echo "greeting=$GREETING literal=$lit"
echo "VERSION=1.2.$BUILD_ID" >> "$SLIPWAY_OUTPUT"
`)
	s.WorkingDir = ""
	s.Env = map[string]string{"GREETING": "hello", "BUILD_ID": "7"}
	s.Secrets = []scriptrun.SecretEnv{{Name: "TOKEN", Value: secretValue,
		Kubernetes: &scriptrun.SecretRef{Cluster: "local", Namespace: r.ns, Name: "creds", Key: "token"}}}
	for name, content := range map[string]string{"a.txt": "original", "remove-me": "x", "sub/keep.txt": "kept"} {
		p := filepath.Join(s.Workspace, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The Job exists while the script runs, and its pod spec holds no secret value.
	res, err := kubejob.New(r.opts).Run(ctx, s)
	if err != nil {
		t.Fatalf("Run: %v\nlog:\n%s", err, s.Log)
	}
	log := s.Log.(*syncBuffer).String()
	if res.ExitCode != 0 {
		t.Fatalf("exit code %d, log:\n%s", res.ExitCode, log)
	}
	for _, want := range []string{"in /workspace: original", "token-ok", "greeting=hello literal=$(GREETING)"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if string(res.Output) != "VERSION=1.2.7\n" {
		t.Errorf("output = %q, want VERSION=1.2.7", res.Output)
	}
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(s.Workspace, name))
		if err != nil {
			return "<" + err.Error() + ">"
		}
		return string(b)
	}
	if got := read("a.txt"); got != "original\nedited\n" {
		t.Errorf("a.txt = %q", got)
	}
	if got := read("sub/new.txt"); got != "new\n" {
		t.Errorf("sub/new.txt = %q", got)
	}
	if got := read("sub/keep.txt"); got != "kept\n" {
		t.Errorf("sub/keep.txt = %q", got)
	}
	if _, err := os.Stat(filepath.Join(s.Workspace, "remove-me")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("remove-me is still in the workspace: %v", err)
	}
	r.assertNothingLeft(t)
}

// TestKubeJobExitCode: a script's own exit code comes back from the pod's status.
// The script runs in its working directory of the workspace, which is in before it starts.
func TestKubeJobExitCode(t *testing.T) {
	r := newKubeJobRig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := r.spec(t, `echo "failing now in $(pwd) with $(cat here.txt)"; exit 3`)
	s.WorkingDir = "deep/dir"
	if err := os.MkdirAll(filepath.Join(s.Workspace, "deep/dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.Workspace, "deep/dir/here.txt"), []byte("the checkout's file"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := kubejob.New(r.opts).Run(ctx, s)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if want := "failing now in /workspace/deep/dir with the checkout's file"; res.ExitCode != 3 || res.Reason != "" || !strings.Contains(s.Log.(*syncBuffer).String(), want) {
		t.Errorf("result %+v, log %q; want exit code 3, no reason, %q", res, s.Log, want)
	}
	r.assertNothingLeft(t)
}

// TestKubeJobLogsLiveAndCancel: the first line reaches the log while the script still runs
// (its Job and pod exist, the script container is running); a cancel then ends Run within
// 2 s with the context's error, and no Job or pod is left.
func TestKubeJobLogsLiveAndCancel(t *testing.T) {
	r := newKubeJobRig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := r.spec(t, "echo started; sleep 60; echo never")
	started := s.Log.(*syncBuffer).when("started")
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	type outcome struct {
		res scriptrun.Result
		err error
		at  time.Time
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := kubejob.New(r.opts).Run(runCtx, s)
		done <- outcome{res, err, time.Now()}
	}()
	select {
	case <-started:
	case o := <-done:
		t.Fatalf("Run ended before the first line arrived: %+v", o)
	case <-ctx.Done():
		t.Fatalf("the first line never arrived; log %q", s.Log)
	}
	pods, err := r.cs.CoreV1().Pods(r.ns).List(ctx, metav1.ListOptions{})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("pods while the script runs: %v %v", pods, err)
	}
	var scriptRunning bool
	for _, c := range pods.Items[0].Status.ContainerStatuses {
		scriptRunning = scriptRunning || c.Name == "script" && c.State.Running != nil
	}
	if !scriptRunning {
		t.Errorf("the log line arrived, but the script container is not running: %+v", pods.Items[0].Status.ContainerStatuses)
	}
	if jobs, err := r.cs.BatchV1().Jobs(r.ns).List(ctx, metav1.ListOptions{}); err != nil || len(jobs.Items) != 1 {
		t.Fatalf("Jobs while the script runs: %v %v", jobs, err)
	}
	cancelled := time.Now()
	stop()
	o := <-done
	if !errors.Is(o.err, context.Canceled) {
		t.Errorf("Run after cancel: %+v, want context.Canceled", o)
	}
	if took := o.at.Sub(cancelled); took > 2*time.Second {
		t.Errorf("Run returned %v after the cancel, want within 2s", took)
	}
	if strings.Contains(s.Log.(*syncBuffer).String(), "never") {
		t.Error("the script went on after the cancel")
	}
	r.assertNothingLeft(t)
}

// TestKubeJobMissingImage: an image that does not exist fails the start with the pull error.
func TestKubeJobMissingImage(t *testing.T) {
	r := newKubeJobRig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := r.spec(t, "true")
	s.Image = r.env.Registry + "/does-not/exist:1"
	r.startFails(t, ctx, s, "a StartError naming ErrImagePull and the image", func(reason string) bool {
		return strings.Contains(reason, "ErrImagePull") && strings.Contains(reason, "does-not/exist:1")
	})
}

// TestKubeJobOOMKilled: a script that outgrows its memory limit ends "OOMKilled".
func TestKubeJobOOMKilled(t *testing.T) {
	r := newKubeJobRig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// dd's 128 MiB block is one buffer it fills from /dev/zero.
	s := r.spec(t, "echo allocating; exec dd if=/dev/zero of=/dev/null bs=128M count=1")
	s.Resources = scriptrun.Resources{MemoryLimit: "32Mi"}
	res, err := kubejob.New(r.opts).Run(ctx, s)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.Reason != "OOMKilled" || res.ExitCode != 137 {
		t.Errorf("result %+v, log %q; want reason OOMKilled and exit code 137 (SIGKILL)", res, s.Log)
	}
	r.assertNothingLeft(t)
}

// TestKubeJobUnschedulable: a pod no node can take fails with the scheduler's message.
func TestKubeJobUnschedulable(t *testing.T) {
	r := newKubeJobRig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r.opts.NodeSelector = map[string]string{"slipway.dev/no-such-node": "true"}
	r.opts.UnschedulableFor = time.Second
	r.startFails(t, ctx, r.spec(t, "true"), "a StartError with the scheduler's message", func(reason string) bool {
		return strings.HasPrefix(reason, "Unschedulable: ") && strings.Contains(reason, "node")
	})
}

// TestKubeJobMissingServiceAccount: a Job whose pod cannot be created (its service account
// does not exist) fails with the Job controller's message instead of waiting forever.
func TestKubeJobMissingServiceAccount(t *testing.T) {
	r := newKubeJobRig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r.opts.ServiceAccount = "no-such-account"
	r.startFails(t, ctx, r.spec(t, "true"), "a StartError with the Job controller's FailedCreate message", func(reason string) bool {
		return strings.HasPrefix(reason, "FailedCreate: ") && strings.Contains(reason, "no-such-account")
	})
}
