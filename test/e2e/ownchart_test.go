package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"

	"github.com/slipwayhq/slipway/test/testenv"
	"sigs.k8s.io/yaml"
)

// TestOwnChartInstallsARunningSlipway installs deploy/chart with Helm into the control plane,
// with an image of this very build (the static binary on the environment's busybox), on the
// real node: the Deployment becomes Available (its probes on /healthz and /readyz pass, as
// the non-root user, on a read-only root filesystem), /readyz answers through the API
// server's proxy, the API knows the identity whose hash the chart mounted from a Secret
// (through a port-forward), and the service account may do exactly what the values granted
// (kubectl auth can-i). Uninstalling removes what the chart made.
func TestOwnChartInstallsARunningSlipway(t *testing.T) {
	env := testenv.Get(t)
	_, selector, toleration := env.RealNode(t)
	cs := env.Clientset(t)
	ns, shop, ci, other := env.Namespace(t), env.Namespace(t), env.Namespace(t), env.Namespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	image := pushSlipwayImage(t, ctx, env)

	const token = "own-chart-e2e-token"
	sum := sha256.Sum256([]byte(token))
	users := "users:\n  - name: e2e\n    tokenSHA256: " + hex.EncodeToString(sum[:]) + "\n    roles: [viewer]\n"
	if _, err := cs.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "slipway-api"},
		StringData: map[string]string{"users.yaml": users}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// The values are docs/install.md's example as written, mapped to this environment: the
	// image under test, no volume provisioner, the real node, the test's namespaces.
	values := installDocValues(t, env)
	repo, tag, _ := strings.Cut(image, ":")
	values["image"] = map[string]any{"repository": repo, "tag": tag}
	values["persistence"] = map[string]any{"enabled": false}
	values["rbac"] = map[string]any{"deployNamespaces": []any{shop}, "scriptJobsNamespace": ci}
	values["nodeSelector"] = toAny(selector)
	values["tolerations"] = []any{map[string]any{"key": toleration.Key, "operator": string(toleration.Operator), "value": toleration.Value, "effect": string(toleration.Effect)}}
	values["config"].(map[string]any)["repositories"].([]any)[0].(map[string]any)["policy"].(map[string]any)["namespaces"] = []any{shop}
	cfg := installOwnChart(ctx, t, env, ns, values)

	var dep *appsv1.Deployment
	var err error
	err = wait.PollUntilContextTimeout(ctx, time.Second, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		dep, err = cs.AppsV1().Deployments(ns).Get(ctx, "slipway", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		if pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=slipway"}); err == nil {
			for _, p := range pods.Items {
				for _, c := range p.Status.ContainerStatuses {
					if c.LastTerminationState.Terminated != nil {
						return false, fmt.Errorf("the daemon exited (%s)", c.LastTerminationState.Terminated.Reason)
					}
				}
			}
		}
		for _, c := range dep.Status.Conditions {
			if c.Type == appsv1.DeploymentAvailable && c.Status == corev1.ConditionTrue && dep.Status.ReadyReplicas == 1 {
				return true, nil
			}
		}
		return false, nil
	})
	pods, _ := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=slipway"})
	if err != nil {
		var states []string
		for _, p := range pods.Items {
			states = append(states, fmt.Sprintf("%s %s %+v", p.Name, p.Status.Phase, p.Status.ContainerStatuses))
			if logs, lerr := cs.CoreV1().Pods(ns).GetLogs(p.Name, &corev1.PodLogOptions{}).DoRaw(ctx); lerr == nil {
				states = append(states, string(logs))
			}
		}
		t.Fatalf("the Deployment never became Available: %v\n%s", err, strings.Join(states, "\n"))
	}
	if len(pods.Items) != 1 {
		t.Fatalf("%d pods, want 1", len(pods.Items))
	}
	pod := pods.Items[0].Name

	// Through the API server's proxy to the pod: readiness as a load balancer would see it.
	res := cs.CoreV1().RESTClient().Get().Namespace(ns).Resource("pods").Name(pod + ":8080").SubResource("proxy").Suffix("readyz").Do(ctx)
	if body, err := res.Raw(); err != nil || !strings.Contains(string(body), "ready") {
		t.Errorf("/readyz through the proxy = %s %v", body, err)
	}
	// Through a port-forward (the proxy would take the Authorization header for itself): the
	// API knows the identity whose hash the chart mounted from the Secret.
	local := portForward(t, ctx, env, ns, pod, 8080)
	call := func(token string) int {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+local+"/api/v1/pipelines/none/runs/1", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("the API through the port-forward: %v", err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := call(token); code == http.StatusUnauthorized || code == http.StatusForbidden {
		t.Errorf("the API with the mounted identity's token answered %d", code)
	}
	if code := call("wrong"); code != http.StatusUnauthorized {
		t.Errorf("the API with a wrong token answered %d, want 401", code)
	}

	sa := "system:serviceaccount:" + ns + ":slipway"
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"create", "deployments.apps", "-n", shop}, "yes"},
		{[]string{"delete", "configmaps", "-n", shop}, "yes"},
		{[]string{"create", "deployments.apps", "-n", other}, "no"},
		{[]string{"get", "secrets", "-n", ns}, "no"},
		{[]string{"create", "namespaces"}, "no"},
		{[]string{"create", "jobs.batch", "-n", ci}, "yes"},
		{[]string{"create", "pods", "--subresource=exec", "-n", ci}, "yes"},
		{[]string{"get", "secrets", "-n", ci}, "no"},
	} {
		args := append([]string{"--kubeconfig", env.Kubeconfig, "auth", "can-i", "--as", sa}, c.args...)
		out, _ := exec.CommandContext(ctx, env.Kubectl, args...).CombinedOutput()
		lines := strings.Split(strings.TrimSpace(string(out)), "\n") // kubectl may warn first
		if got := lines[len(lines)-1]; got != c.want {
			t.Errorf("kubectl auth can-i %s as the chart's service account = %q, want %q", strings.Join(c.args, " "), got, c.want)
		}
	}

	un := action.NewUninstall(cfg)
	if _, err := un.Run("slipway"); err != nil {
		t.Fatalf("helm uninstall: %v", err)
	}
	if _, err := cs.RbacV1().RoleBindings(shop).Get(ctx, "slipway-deploy", metav1.GetOptions{}); err == nil {
		t.Error("the deploy RoleBinding outlived the uninstall")
	}
}

// pushSlipwayImage pushes an image of this build of slipway (the static binary on the
// environment's busybox, entrypoint slipway) to the local registry and returns its name.
func pushSlipwayImage(t *testing.T, ctx context.Context, env *testenv.Env) string {
	t.Helper()
	bin, err := os.ReadFile(slipwayBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	for _, dir := range []string{"usr/", "usr/local/", "usr/local/bin/"} {
		if err := tw.WriteHeader(&tar.Header{Name: dir, Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.WriteHeader(&tar.Header{Name: "usr/local/bin/slipway", Mode: 0o755, Size: int64(len(bin))}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(bin); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(layer.Bytes())), nil })
	if err != nil {
		t.Fatal(err)
	}
	baseRef, err := name.ParseReference(env.BaseImage, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	base, err := remote.Image(baseRef, remote.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(base, l)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	c.Entrypoint, c.Cmd = []string{"/usr/local/bin/slipway"}, []string{"serve", "--config", "/etc/slipway/slipway.yaml"}
	if img, err = mutate.Config(img, c); err != nil {
		t.Fatal(err)
	}
	ref := fmt.Sprintf("%s/own-chart/slipway:e2e-%d", env.Registry, time.Now().UnixNano())
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img, remote.WithContext(ctx)); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	return ref
}

// installOwnChart installs deploy/chart with values as release "slipway" in ns and returns
// the Helm configuration that uninstalls it.
func installOwnChart(ctx context.Context, t *testing.T, env *testenv.Env, ns string, values map[string]any) *action.Configuration {
	t.Helper()
	ch, err := loader.Load(filepath.Join(env.Root, "deploy", "chart"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := helmConfig(t, env, ns)
	in := action.NewInstall(cfg)
	in.ReleaseName, in.Namespace = "slipway", ns
	if _, err := in.RunWithContext(ctx, ch, values); err != nil {
		t.Fatalf("helm install: %v", err)
	}
	return cfg
}

// helmConfig is Helm's action configuration for the environment's control plane.
func helmConfig(t *testing.T, env *testenv.Env, namespace string) *action.Configuration {
	t.Helper()
	flags := genericclioptions.NewConfigFlags(false)
	flags.KubeConfig, flags.Namespace = &env.Kubeconfig, &namespace
	cfg := new(action.Configuration)
	if err := cfg.Init(flags, namespace, "secret", func(format string, v ...any) { t.Logf(format, v...) }); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// portForward forwards a local port to the pod's port through the API server and the kubelet
// until the test ends, and returns the local address.
func portForward(t *testing.T, ctx context.Context, env *testenv.Env, ns, pod string, port int) string {
	t.Helper()
	rc := env.RestConfig(t)
	transport, upgrader, err := spdy.RoundTripperFor(rc)
	if err != nil {
		t.Fatal(err)
	}
	u := env.Clientset(t).CoreV1().RESTClient().Post().Namespace(ns).Resource("pods").Name(pod).SubResource("portforward").URL()
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, http.MethodPost, u)
	stop, ready := make(chan struct{}), make(chan struct{})
	fw, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{fmt.Sprintf("0:%d", port)}, stop, ready, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- fw.ForwardPorts() }()
	t.Cleanup(func() { close(stop) })
	select {
	case <-ready:
	case err := <-errc:
		t.Fatalf("port-forward to %s/%s: %v", ns, pod, err)
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	ports, err := fw.GetPorts()
	if err != nil || len(ports) != 1 {
		t.Fatalf("port-forward ports %v: %v", ports, err)
	}
	return fmt.Sprintf("127.0.0.1:%d", ports[0].Local)
}

// installDocValues reads the my-values.yaml example of docs/install.md.
func installDocValues(t *testing.T, env *testenv.Env) map[string]any {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join(env.Root, "docs", "install.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "`my-values.yaml`")
	_, rest, ok2 := strings.Cut(rest, "```yaml\n")
	block, _, ok3 := strings.Cut(rest, "```")
	if !ok || !ok2 || !ok3 {
		t.Fatal("docs/install.md has no my-values.yaml example")
	}
	values := map[string]any{}
	if err := yaml.Unmarshal([]byte(block), &values); err != nil {
		t.Fatalf("docs/install.md's example: %v", err)
	}
	return values
}

func toAny(m map[string]string) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	return out
}
