// Package kubejob runs script tasks as Kubernetes Jobs (executor: kubernetes): one Job per
// script, in a configured cluster and namespace. The workspace goes in and comes back through
// the API server (pods/exec streaming a tar), the script's output is streamed from the pod's
// log, its exit code read from the pod's status. See docs/pipeline.md (script tasks).
package kubejob

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/remotecommand"
	watchtools "k8s.io/client-go/tools/watch"
	utilexec "k8s.io/client-go/util/exec"

	"github.com/slipwayhq/slipway/internal/dirtar"
	"github.com/slipwayhq/slipway/reconciler/scriptrun"
)

// Options configure an Executor.
type Options struct {
	// Client and Config reach the cluster the Jobs run in; Config also opens the exec and
	// log streams.
	Client kubernetes.Interface
	Config *rest.Config
	// Cluster is the cluster's name in slipway.yaml: secretEnv values must come from Secrets
	// of this cluster (and Namespace).
	Cluster        string
	Namespace      string
	ServiceAccount string // "" is the namespace's default
	NodeSelector   map[string]string
	Tolerations    []corev1.Toleration
	Log            *logrus.Entry
	// UnschedulableFor is how long a pod may stay unschedulable (the scheduler may still
	// find room, e.g. when an earlier script's pod is gone) before the script fails with the
	// scheduler's message. Default: one minute.
	UnschedulableFor time.Duration
}

// Executor runs scripts as Jobs. It implements scriptrun.Executor.
type Executor struct {
	opts Options
}

var _ scriptrun.Executor = (*Executor)(nil)

// New returns an Executor for one cluster and namespace.
func New(opts Options) *Executor {
	if opts.Log == nil {
		opts.Log = logrus.NewEntry(logrus.StandardLogger())
	}
	if opts.UnschedulableFor <= 0 {
		opts.UnschedulableFor = time.Minute
	}
	return &Executor{opts: opts}
}

// maxOutput bounds the $SLIPWAY_OUTPUT file brought back.
const maxOutput = 1 << 20

// Run creates the script's Job, moves the workspace in, streams the log, waits for the
// script's end, brings the workspace and the output file back, and deletes the Job
// (foreground) before returning, also on cancel and timeout.
func (e *Executor) Run(ctx context.Context, s scriptrun.Spec) (res scriptrun.Result, err error) {
	name := jobName(s.Run)
	deadline, _ := ctx.Deadline()
	job, err := e.jobSpec(name, s, deadline)
	if err != nil {
		return scriptrun.Result{}, err
	}
	log := e.opts.Log.WithFields(logrus.Fields{"job": name, "namespace": e.opts.Namespace, "task": s.Run.Task})
	if _, err := e.opts.Client.BatchV1().Jobs(e.opts.Namespace).Create(ctx, job, metav1.CreateOptions{}); err != nil {
		return scriptrun.Result{}, fmt.Errorf("create Job %s/%s: %w", e.opts.Namespace, name, err)
	}
	log.Debug("script job created")
	r := &run{e: e, s: s, name: name, log: log}
	defer func() {
		// Cancelled or not, the Job goes; on a cancelled ctx with a bounded context of its own.
		if rerr := e.remove(context.WithoutCancel(ctx), name, r.pod, r.released); rerr != nil {
			log.WithError(rerr).Warn("script job not removed")
			if err == nil {
				err = rerr
			}
		}
	}()

	feed := newPodFeed()
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go e.watch(wctx, name, feed)

	res, err = r.drive(ctx, feed)
	if err != nil && ctx.Err() != nil {
		return res, fmt.Errorf("script job %s: %w", name, ctx.Err())
	}
	return res, err
}

// run is one Run's progress through its pod's life.
type run struct {
	e    *Executor
	s    scriptrun.Spec
	name string
	log  *logrus.Entry

	pod           string        // the Job's pod, once seen
	sent          bool          // the workspace is in
	released      bool          // the workspace is back and the helper told to end
	logs          chan struct{} // closed when the log stream ended; nil until it started
	unschedulable time.Time     // since when the scheduler has found no node
}

func (r *run) drive(ctx context.Context, feed *podFeed) (scriptrun.Result, error) {
	var pod *corev1.Pod
	tick := time.NewTicker(time.Second) // re-checks the unschedulable timeout without events
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return scriptrun.Result{}, ctx.Err()
		case p, ok := <-feed.ch:
			if !ok {
				return scriptrun.Result{}, feed.err()
			}
			pod = p
		case <-tick.C:
			if pod == nil {
				if err := r.createFailure(ctx); err != nil {
					return scriptrun.Result{}, err
				}
				continue
			}
		}
		if pod == nil {
			return scriptrun.Result{}, fmt.Errorf("pod of script job %s was deleted before the script ended", r.name)
		}
		r.pod = pod.Name
		if err := r.startFailure(pod); err != nil {
			return scriptrun.Result{}, err
		}
		if !r.sent && running(pod.Status.ContainerStatuses, containerHelper) {
			if err := r.sendWorkspace(ctx, pod.Name); err != nil {
				return scriptrun.Result{}, err
			}
			r.sent = true
		}
		st := status(pod.Status.ContainerStatuses, containerScript)
		if st == nil {
			continue
		}
		if r.logs == nil && (st.State.Running != nil || st.State.Terminated != nil) {
			r.logs = make(chan struct{})
			go r.streamLogs(ctx, pod.Name)
		}
		if t := st.State.Terminated; t != nil {
			return r.finish(ctx, pod.Name, t)
		}
	}
}

// startFailure names why the script cannot start, if it cannot: an image that cannot be
// pulled, a container that cannot be created, a pod the scheduler finds no node for.
func (r *run) startFailure(pod *corev1.Pod) error {
	for _, c := range pod.Status.ContainerStatuses {
		w := c.State.Waiting
		if w == nil {
			continue
		}
		switch w.Reason {
		case "ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull",
			"CreateContainerConfigError", "CreateContainerError", "RunContainerError":
			return &scriptrun.StartError{Reason: fmt.Sprintf("%s: %s", w.Reason, w.Message)}
		}
	}
	if t := terminated(pod.Status.ContainerStatuses, containerHelper); t != nil && !r.released {
		return &scriptrun.StartError{Reason: fmt.Sprintf("the pod's helper container %s ended before the workspace was back (exit code %d, %s)",
			containerHelper, t.ExitCode, t.Reason)}
	}
	if pod.Status.Phase == corev1.PodFailed && status(pod.Status.ContainerStatuses, containerScript) == nil {
		return &scriptrun.StartError{Reason: fmt.Sprintf("pod failed before the script started: %s %s", pod.Status.Reason, pod.Status.Message)}
	}
	for _, c := range pod.Status.Conditions {
		if c.Type != corev1.PodScheduled {
			continue
		}
		if c.Status != corev1.ConditionFalse || c.Reason != corev1.PodReasonUnschedulable {
			r.unschedulable = time.Time{}
			break
		}
		if r.unschedulable.IsZero() {
			r.unschedulable = time.Now()
		}
		if time.Since(r.unschedulable) >= r.e.opts.UnschedulableFor {
			return &scriptrun.StartError{Reason: "Unschedulable: " + c.Message}
		}
	}
	return nil
}

// createFailure names why the Job has no pod yet, when the Job controller says it could not
// create one (a missing service account, a quota, an admission webhook). Those retry without
// end on the cluster's side; the script fails at once instead.
func (r *run) createFailure(ctx context.Context) error {
	events, err := r.e.opts.Client.CoreV1().Events(r.e.opts.Namespace).List(ctx, metav1.ListOptions{
		FieldSelector: "involvedObject.kind=Job,involvedObject.name=" + r.name + ",reason=FailedCreate"})
	if err != nil || len(events.Items) == 0 {
		return nil // not readable, or nothing to say: keep waiting
	}
	return &scriptrun.StartError{Reason: "FailedCreate: " + events.Items[len(events.Items)-1].Message}
}

// sendWorkspace streams a tar of the workspace into the helper, while the script waits.
func (r *run) sendWorkspace(ctx context.Context, pod string) error {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(dirtar.Pack(ctx, r.s.Workspace, pw)) }()
	var stderr bytes.Buffer
	err := r.e.exec(ctx, pod, containerHelper, []string{"/bin/sh", "-c", receiveWorkspace}, pr, io.Discard, &limited{w: &stderr, n: 4096})
	pr.CloseWithError(io.ErrClosedPipe)
	if err != nil {
		return &scriptrun.StartError{Reason: "the workspace could not be moved into the pod (the image needs sh and tar)", Err: execError(err, &stderr)}
	}
	r.log.Debug("workspace sent")
	return nil
}

func (r *run) streamLogs(ctx context.Context, pod string) {
	defer close(r.logs)
	rc, err := r.e.opts.Client.CoreV1().Pods(r.e.opts.Namespace).GetLogs(pod, &corev1.PodLogOptions{Container: containerScript, Follow: true}).Stream(ctx)
	if err != nil {
		if ctx.Err() == nil {
			r.log.WithError(err).Warn("script log not readable")
		}
		return
	}
	defer rc.Close()
	if _, err := io.Copy(r.s.Log, rc); err != nil && ctx.Err() == nil {
		r.log.WithError(err).Warn("script log stream broke off")
	}
}

// finish waits for the log to end, brings the workspace and the output back and makes the
// result from the script container's end.
func (r *run) finish(ctx context.Context, pod string, t *corev1.ContainerStateTerminated) (scriptrun.Result, error) {
	res := scriptrun.Result{ExitCode: int(t.ExitCode)}
	if t.Reason == "OOMKilled" {
		res.Reason = "OOMKilled"
	}
	if r.logs != nil {
		select {
		case <-r.logs:
		case <-ctx.Done():
			return res, ctx.Err()
		}
	}
	if !r.sent {
		// The script ran without its workspace: nothing must come back over it.
		return res, fmt.Errorf("script of job %s ended before its workspace was moved in", r.name)
	}
	pr, pw := io.Pipe()
	var stderr bytes.Buffer
	collected := make(chan error, 1)
	go func() {
		err := r.e.exec(ctx, pod, containerHelper, collectCommand, nil, pw, &limited{w: &stderr, n: 4096})
		pw.CloseWithError(err)
		collected <- err
	}()
	var output []byte
	err := dirtar.Sync(ctx, r.s.Workspace, pr, dirtar.Options{
		Prefix: strings.TrimPrefix(workspaceDir, "/") + "/",
		Other: func(h *tar.Header, rd io.Reader) error {
			if h.Name != strings.TrimPrefix(outputFile, "/") {
				return nil
			}
			b, err := io.ReadAll(io.LimitReader(rd, maxOutput+1))
			if err != nil {
				return err
			}
			if len(b) > maxOutput {
				return fmt.Errorf("the $SLIPWAY_OUTPUT file is larger than %d bytes", maxOutput)
			}
			output = b
			return nil
		},
	})
	// Drain whatever the reader left, so the exec goroutine ends.
	_, _ = io.Copy(io.Discard, pr)
	r.released = <-collected == nil // the helper ends by itself once all of it went
	if err != nil {
		return res, fmt.Errorf("bring the workspace back from job %s: %w", r.name, execError(err, &stderr))
	}
	res.Output = output
	r.log.WithFields(logrus.Fields{"exit_code": res.ExitCode, "reason": t.Reason}).Debug("script ended")
	return res, nil
}

// exec runs command in a container of pod through the API server, over WebSocket or, from
// API servers that do not offer it, SPDY.
func (e *Executor) exec(ctx context.Context, pod, container string, command []string, stdin io.Reader, stdout, stderr io.Writer) error {
	req := e.opts.Client.CoreV1().RESTClient().Post().Resource("pods").Namespace(e.opts.Namespace).Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: container, Command: command, Stdin: stdin != nil, Stdout: true, Stderr: true}, scheme.ParameterCodec)
	ws, err := remotecommand.NewWebSocketExecutor(e.opts.Config, "GET", req.URL().String())
	if err != nil {
		return err
	}
	spdy, err := remotecommand.NewSPDYExecutor(e.opts.Config, "POST", req.URL())
	if err != nil {
		return err
	}
	ex, err := remotecommand.NewFallbackExecutor(ws, spdy, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
	if err != nil {
		return err
	}
	return ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: stdin, Stdout: stdout, Stderr: stderr})
}

// execError adds a failed command's exit code and error output to err.
func execError(err error, stderr *bytes.Buffer) error {
	var code utilexec.CodeExitError
	msg := strings.TrimSpace(stderr.String())
	switch {
	case errors.As(err, &code) && msg != "":
		return fmt.Errorf("%w: %s", err, msg)
	case msg != "":
		return fmt.Errorf("%w (stderr: %s)", err, msg)
	}
	return err
}

// remove ends the pod, deletes the Job with foreground propagation and waits until it and
// its pod are gone. The pod's processes are brought to their end first: after a normal end
// the script has exited and the helper ends by itself (released); on cancel, timeout and
// failures they are killed. Either way nothing of the script runs any more, so the pod is
// deleted without a grace period: waiting for the kubelet to see the containers end (its
// runtime relist) and tear the sandbox down would add seconds to every script, and the
// kubelet still cleans up behind the deletion.
func (e *Executor) remove(ctx context.Context, name, pod string, released bool) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	start := time.Now()
	if pod != "" && !released {
		e.killPod(ctx, pod)
	}
	defer func() {
		e.opts.Log.WithFields(logrus.Fields{"job": name, "released": released, "gone_after": time.Since(start)}).Debug("script job removed")
	}()
	fg := metav1.DeletePropagationForeground
	err := e.opts.Client.BatchV1().Jobs(e.opts.Namespace).Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: &fg})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete Job %s/%s: %w", e.opts.Namespace, name, err)
	}
	// The garbage collector would delete the pod too, a few hundred milliseconds later, and
	// with its grace period. A pod never seen (none, or created just now) keeps that period:
	// its processes may not have ended.
	sel := labelScript + "=" + name
	opts := metav1.DeleteOptions{}
	if pod != "" {
		opts.GracePeriodSeconds = new(int64)
	}
	if pods, err := e.opts.Client.CoreV1().Pods(e.opts.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel}); err == nil {
		for _, p := range pods.Items {
			err := e.opts.Client.CoreV1().Pods(e.opts.Namespace).Delete(ctx, p.Name, opts)
			if err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("delete pod %s/%s of Job %s: %w", e.opts.Namespace, p.Name, name, err)
			}
		}
	}
	err = wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		pods, err := e.opts.Client.CoreV1().Pods(e.opts.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil || len(pods.Items) > 0 {
			return false, nil
		}
		_, err = e.opts.Client.BatchV1().Jobs(e.opts.Namespace).Get(ctx, name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		return fmt.Errorf("wait for Job %s/%s and its pod to be gone: %w", e.opts.Namespace, name, err)
	}
	return nil
}

// killPod ends every process of the pod (one process namespace) from its helper container.
// Best effort: a helper that is not running has no processes to kill, and the exec's own
// shell dies with the rest, so its error says nothing.
func (e *Executor) killPod(ctx context.Context, pod string) {
	kctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_ = e.exec(kctx, pod, containerHelper, []string{"/bin/sh", "-c", killAll}, nil, io.Discard, io.Discard)
}

// watch feeds the latest state of the Job's pod until ctx ends; a deleted pod is fed as nil.
func (e *Executor) watch(ctx context.Context, name string, feed *podFeed) {
	pods := e.opts.Client.CoreV1().Pods(e.opts.Namespace)
	sel := labelScript + "=" + name
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.LabelSelector = sel
			return pods.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.LabelSelector = sel
			return pods.Watch(ctx, o)
		},
	}
	_, err := watchtools.UntilWithSync(ctx, lw, &corev1.Pod{}, nil, func(ev watch.Event) (bool, error) {
		pod, ok := ev.Object.(*corev1.Pod)
		if !ok {
			return false, nil
		}
		if ev.Type == watch.Deleted {
			feed.put(nil)
			return false, nil
		}
		feed.put(pod.DeepCopy())
		return false, nil
	})
	if ctx.Err() == nil {
		feed.fail(fmt.Errorf("watch the pod of script job %s: %w", name, err))
	}
}

// podFeed hands the latest pod state to the Run loop; older unread states are dropped.
type podFeed struct {
	ch   chan *corev1.Pod
	mu   sync.Mutex
	last error
}

func newPodFeed() *podFeed { return &podFeed{ch: make(chan *corev1.Pod, 1)} }

func (f *podFeed) put(p *corev1.Pod) {
	for {
		select {
		case f.ch <- p:
			return
		default:
		}
		select {
		case <-f.ch:
		default:
		}
	}
}

func (f *podFeed) fail(err error) {
	f.mu.Lock()
	f.last = err
	f.mu.Unlock()
	close(f.ch)
}

func (f *podFeed) err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}

func status(list []corev1.ContainerStatus, name string) *corev1.ContainerStatus {
	for i := range list {
		if list[i].Name == name {
			return &list[i]
		}
	}
	return nil
}

func running(list []corev1.ContainerStatus, name string) bool {
	st := status(list, name)
	return st != nil && st.State.Running != nil
}

func terminated(list []corev1.ContainerStatus, name string) *corev1.ContainerStateTerminated {
	if st := status(list, name); st != nil {
		return st.State.Terminated
	}
	return nil
}

// limited keeps at most n bytes of what is written to it.
type limited struct {
	w io.Writer
	n int
}

func (l *limited) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		_, _ = l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}
