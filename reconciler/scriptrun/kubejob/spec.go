package kubejob

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/slipwayhq/slipway/reconciler/scriptrun"
)

// The pod's layout. The workspace and the output file live in emptyDirs that both
// containers mount, and both start at once: the helper takes the workspace in (pods/exec
// with a tar on stdin) while the script's container waits for it, then runs the script;
// the helper keeps the pod alive until Slipway has streamed the workspace and the output
// file back out of it (pods/exec tar -c). No init container: its end and the next
// containers' start would cost a kubelet status round (about a second) per script. No
// shared filesystem and no address of the daemon's that pods must reach: only the API
// server, which Slipway talks to anyway.
const (
	containerScript = "script"
	containerHelper = "workspace"

	workspaceDir = "/workspace"
	slipwayDir   = "/slipway"
	outputFile   = slipwayDir + "/output"
	readyFile    = slipwayDir + "/.workspace-in"
	doneFile     = slipwayDir + "/.workspace-out"

	// Labels on the Job and its pod.
	labelRepository = "slipway.dev/repository"
	labelPipeline   = "slipway.dev/pipeline"
	labelBuildID    = "slipway.dev/build-id"
	labelTask       = "slipway.dev/task"
	labelScript     = "slipway.dev/script-job"

	// Seconds between SIGTERM and SIGKILL should the pod be deleted by someone else; Slipway
	// ends its processes itself and deletes it without a grace period. The pod shares one
	// process namespace, so no script process is PID 1 and SIGTERM ends one that sets no
	// handler at once.
	gracePeriod = 2
)

// Commands of the helper containers; they need sh, tar and sleep in the image.
const (
	// sleep 0.1 is not POSIX; images whose sleep takes whole seconds only poll slower.
	// The script's container runs this with the script as $1 and its working directory as
	// $2: the script starts only once the whole workspace is in, in its directory, exec'd so
	// that its exit code is the container's.
	runScript         = "touch " + outputFile + " && until [ -e " + readyFile + " ]; do sleep 0.1 2>/dev/null || sleep 1; done && cd -- \"$2\" && exec /bin/sh -c \"$1\""
	receiveWorkspace  = "tar -x -f - -C " + workspaceDir + " && touch " + readyFile
	waitForCollection = "until [ -e " + doneFile + " ]; do sleep 0.1 2>/dev/null || sleep 1; done"
	// killAll ends every process of the pod but the sandbox's (one process namespace): on
	// cancel and timeout, so that the pod is over, and can be deleted at once, before the
	// kubelet would have acted on a graceful deletion.
	killAll = "kill -KILL -1"
)

// collectCommand is exec'd in the helper once the script has ended: it streams the workspace
// and the output file out and, only when all of it went, lets the helper end. One exec, not
// two: each costs a round through the API server, the kubelet and the runtime.
var collectCommand = []string{"/bin/sh", "-c", "tar -c -f - -C / " + strings.TrimPrefix(workspaceDir, "/") + " " +
	strings.TrimPrefix(outputFile, "/") + " && touch " + doneFile}

// SecretError reports a secret environment variable the Kubernetes executor cannot pass by
// reference.
type SecretError struct {
	Name   string
	Reason string
}

func (e *SecretError) Error() string {
	return fmt.Sprintf("secretEnv %s: %s", e.Name, e.Reason)
}

// ErrSecret is matched by every *SecretError (errors.Is).
var ErrSecret = errors.New("secret not usable by the kubernetes executor")

// Is makes errors.Is(err, ErrSecret) match.
func (e *SecretError) Is(target error) bool { return target == ErrSecret }

// jobName is a readable, unique Job name: slipway-PIPELINE-BUILDID-TASK-RANDOM, at most 52
// characters so that the pod's generated name stays a DNS label.
func jobName(r scriptrun.RunRef) string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	suffix := "-" + strconv.FormatInt(r.BuildID, 10) + "-" + hex.EncodeToString(b)
	mid := dnsPart(r.Pipeline) + "-" + dnsPart(r.Task)
	if max := 52 - len("slipway-") - len(suffix); len(mid) > max {
		mid = mid[:max]
	}
	mid = strings.Trim(mid, "-")
	if mid == "" {
		return "slipway" + suffix
	}
	return "slipway-" + mid + suffix
}

// dnsPart lowercases s and replaces what a DNS label cannot hold with "-".
func dnsPart(s string) string {
	b := []byte(strings.ToLower(s))
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			b[i] = '-'
		}
	}
	return strings.Trim(string(b), "-")
}

// labelValue is s as a label value: characters a label cannot hold replaced, at most 63,
// beginning and ending alphanumeric. The annotations keep the exact names.
func labelValue(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			b[i] = '_'
		}
	}
	if len(b) > 63 {
		b = b[:63]
	}
	return strings.Trim(string(b), "-_.")
}

// escapeExpansion protects text from the kubelet's $(VAR) expansion in command arguments
// and env values: "$$" is how the API writes a literal "$".
func escapeExpansion(s string) string { return strings.ReplaceAll(s, "$", "$$") }

// envVars turns the script's environment into the container's: plain values sorted by name
// (escaped), secrets as secretKeyRef, then the executor's own two.
func envVars(s scriptrun.Spec, cluster, namespace string) ([]corev1.EnvVar, error) {
	own := map[string]string{"SLIPWAY_OUTPUT": outputFile, "SLIPWAY_WORKSPACE": workspaceDir}
	names := make([]string, 0, len(s.Env))
	for k := range s.Env {
		if _, ok := own[k]; !ok {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	env := make([]corev1.EnvVar, 0, len(names)+len(s.Secrets)+len(own))
	for _, k := range names {
		env = append(env, corev1.EnvVar{Name: k, Value: escapeExpansion(s.Env[k])})
	}
	for _, sec := range s.Secrets {
		ref := sec.Kubernetes
		switch {
		case ref == nil:
			return nil, &SecretError{Name: sec.Name, Reason: "the kubernetes executor passes secrets only by reference to a Kubernetes Secret " +
				"(secretKeyRef), and this value does not come from one; use a Kubernetes secret source, or another executor"}
		case ref.Cluster != cluster || ref.Namespace != namespace:
			return nil, &SecretError{Name: sec.Name, Reason: fmt.Sprintf("its Kubernetes Secret %s/%s is in cluster %q, but the Jobs run in "+
				"namespace %s of cluster %q; a pod can only reference Secrets of its own namespace", ref.Namespace, ref.Name, ref.Cluster, namespace, cluster)}
		}
		env = append(env, corev1.EnvVar{Name: sec.Name, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: ref.Name}, Key: ref.Key}}})
	}
	env = append(env, corev1.EnvVar{Name: "SLIPWAY_OUTPUT", Value: outputFile}, corev1.EnvVar{Name: "SLIPWAY_WORKSPACE", Value: workspaceDir})
	return env, nil
}

// resources turns the script's bounds into the script container's.
func resources(r scriptrun.Resources) (corev1.ResourceRequirements, error) {
	var out corev1.ResourceRequirements
	for _, q := range []struct {
		field, value string
		list         *corev1.ResourceList
		name         corev1.ResourceName
	}{
		{"resources.requests.cpu", r.CPURequest, &out.Requests, corev1.ResourceCPU},
		{"resources.limits.cpu", r.CPULimit, &out.Limits, corev1.ResourceCPU},
		{"resources.requests.memory", r.MemoryRequest, &out.Requests, corev1.ResourceMemory},
		{"resources.limits.memory", r.MemoryLimit, &out.Limits, corev1.ResourceMemory},
	} {
		if q.value == "" {
			continue
		}
		v, err := resource.ParseQuantity(q.value)
		if err != nil {
			return out, fmt.Errorf("%s %q: %w", q.field, q.value, err)
		}
		if *q.list == nil {
			*q.list = corev1.ResourceList{}
		}
		(*q.list)[q.name] = v
	}
	return out, nil
}

// jobSpec is the Job for one script. deadline, when set, bounds the Job on the cluster's side
// too, so a Job outlives a daemon that died mid-script by a minute at most.
func (e *Executor) jobSpec(name string, s scriptrun.Spec, deadline time.Time) (*batchv1.Job, error) {
	env, err := envVars(s, e.opts.Cluster, e.opts.Namespace)
	if err != nil {
		return nil, err
	}
	res, err := resources(s.Resources)
	if err != nil {
		return nil, err
	}
	labels := map[string]string{
		labelRepository: labelValue(s.Run.Repository),
		labelPipeline:   labelValue(s.Run.Pipeline),
		labelBuildID:    strconv.FormatInt(s.Run.BuildID, 10),
		labelTask:       labelValue(s.Run.Task),
		labelScript:     name,
	}
	annotations := map[string]string{
		labelRepository: s.Run.Repository,
		labelPipeline:   s.Run.Pipeline,
		labelTask:       s.Run.Task,
	}
	mounts := []corev1.VolumeMount{{Name: "workspace", MountPath: workspaceDir}, {Name: "slipway", MountPath: slipwayDir}}
	shared, grace, zero, automount := true, int64(gracePeriod), int32(0), e.opts.ServiceAccount != ""
	pod := corev1.PodSpec{
		RestartPolicy:      corev1.RestartPolicyNever,
		ServiceAccountName: e.opts.ServiceAccount,
		// A token only for a service account chosen for the scripts: the namespace's default
		// one is nobody's identity, and its volume slows the pod's teardown.
		AutomountServiceAccountToken:  &automount,
		NodeSelector:                  e.opts.NodeSelector,
		Tolerations:                   e.opts.Tolerations,
		ShareProcessNamespace:         &shared,
		TerminationGracePeriodSeconds: &grace,
		EnableServiceLinks:            new(bool),
		Volumes: []corev1.Volume{
			{Name: "workspace", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			{Name: "slipway", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		},
		Containers: []corev1.Container{
			{
				Name: containerScript, Image: s.Image,
				Command: []string{"/bin/sh", "-c", runScript, "slipway-script", escapeExpansion(s.Script), escapeExpansion(path.Join(workspaceDir, s.WorkingDir))},
				Env:     env, WorkingDir: workspaceDir, Resources: res, VolumeMounts: mounts,
			},
			{Name: containerHelper, Image: s.Image, Command: []string{"/bin/sh", "-c", waitForCollection}, VolumeMounts: mounts},
		},
	}
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.opts.Namespace, Labels: labels, Annotations: annotations},
		Spec: batchv1.JobSpec{
			BackoffLimit: &zero,
			Template:     corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: annotations}, Spec: pod},
		},
	}
	if !deadline.IsZero() {
		secs := int64(time.Until(deadline).Seconds()) + 60
		job.Spec.ActiveDeadlineSeconds = &secs
	}
	return job, nil
}
