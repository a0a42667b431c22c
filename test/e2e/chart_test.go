package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	helmregistry "helm.sh/helm/v3/pkg/registry"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage"
	"helm.sh/helm/v3/pkg/storage/driver"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/slipwayhq/slipway/test/testenv"
)

// nginxChartRepo is examples/nginx-chart with the Dockerfile made buildable from the local
// base image: busybox has no apk, so the RUN that installed nginx only makes its folders.
func nginxChartRepo(t *testing.T, env *testenv.Env) map[string][]byte {
	t.Helper()
	files := exampleFiles(t, env, "nginx-chart")
	files["Dockerfile"] = []byte("FROM " + env.BaseImage + `
RUN mkdir -p /run/nginx /etc/nginx/http.d /var/lib/nginx/html
ADD default.conf /etc/nginx/http.d/
ADD source/html /var/lib/nginx/html/
EXPOSE 80
ENTRYPOINT [ "nginx", "-g", "daemon off;" ]
`)
	return files
}

// newChartProject is newProject with a chart repository of the test's own (under ns).
func newChartProject(t *testing.T, env *testenv.Env, ns string) (repo *workRepo, repoName, cfg string) {
	t.Helper()
	repo, url := newWorkRepo(t, env)
	repoName = strings.TrimSuffix(url[strings.LastIndex(url, "/")+1:], ".git")
	return repo, repoName, chartConfig(t, env, repoName, url, "oci://"+env.Registry+"/e2e/"+ns)
}

// chartConfig is writeConfig plus a chart repository of the test's own and BuildKit.
func chartConfig(t *testing.T, env *testenv.Env, repoName, url, chartRepo string) string {
	t.Helper()
	cfg := writeConfig(t, env, repoName, url)
	raw, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	extra := "charts:\n  repository: " + chartRepo + "\nbuilder: {type: buildkit, address: \"" + env.BuildkitHost + "\"}\n"
	if err := os.WriteFile(cfg, append(raw, extra...), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// pullChart pulls a chart back with Helm's own registry client, as `helm pull` would.
func pullChart(t *testing.T, chartRepo, name, version string) *chart.Chart {
	t.Helper()
	c, err := helmregistry.NewClient(helmregistry.ClientOptPlainHTTP(), helmregistry.ClientOptCredentialsFile(filepath.Join(t.TempDir(), "creds.json")))
	if err != nil {
		t.Fatal(err)
	}
	ref := strings.TrimPrefix(chartRepo, "oci://") + "/" + name + ":" + version
	res, err := c.Pull(ref)
	if err != nil {
		t.Fatalf("helm pull %s: %v", ref, err)
	}
	ch, err := loader.LoadArchive(strings.NewReader(string(res.Chart.Data)))
	if err != nil {
		t.Fatalf("load pulled chart: %v", err)
	}
	return ch
}

func chartValues(t *testing.T, ch *chart.Chart) map[string]any {
	t.Helper()
	for _, f := range ch.Raw {
		if f.Name == "values.yaml" {
			var v map[string]any
			if err := yaml.Unmarshal(f.Data, &v); err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	t.Fatal("the chart has no values.yaml")
	return nil
}

func publishOnlyPipeline(version string, overwrite bool) []byte {
	ow := ""
	if overwrite {
		ow = "\n        overwrite: true"
	}
	return []byte(`name: nginx
stages:
  - name: publish
    tasks:
      - name: publish-nginx-chart
        type: publish-chart
        chartDir: nginx
        chart: nginx
        version: ` + version + ow + `
`)
}

func TestChartPublishPullsBackAndRefusesOverwrite(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	chartRepo := "oci://" + env.Registry + "/e2e/" + ns
	repo, url := newWorkRepo(t, env)
	repoName := strings.TrimSuffix(url[strings.LastIndex(url, "/")+1:], ".git")
	cfg := chartConfig(t, env, repoName, url, chartRepo)
	files := nginxChartRepo(t, env)
	files[".pipeline.yaml"] = publishOnlyPipeline("6.0.1-alpha.${BUILD_ID}", false)
	repo.commit("publish the chart", files)

	out, code := slipway(t, "run", "--config", cfg, "--repo", repoName)
	if code != 0 {
		t.Fatalf("run 1 failed:\n%s", out)
	}
	ch := pullChart(t, chartRepo, "nginx", "6.0.1-alpha.1")
	if ch.Metadata.Name != "nginx" || ch.Metadata.Version != "6.0.1-alpha.1" {
		t.Errorf("pulled chart is %s %s", ch.Metadata.Name, ch.Metadata.Version)
	}
	img := chartValues(t, ch)["image"].(map[string]any)
	if img["tag"] != "6.0.1-alpha.1" {
		t.Errorf("values.yaml image.tag = %v, want 6.0.1-alpha.1 (BUILD_ID substituted)", img["tag"])
	}
	if len(ch.Templates) != 5 {
		t.Errorf("pulled chart has %d templates, want the example's 5", len(ch.Templates))
	}
	// The checkout the chart came from is untouched: the example still says ${BUILD_ID}.
	if !strings.Contains(string(readExample(t, env, "nginx-chart/nginx/values.yaml")), "6.0.1-alpha.${BUILD_ID}") {
		t.Error("the example's values.yaml was modified")
	}

	// A fixed version: the second publish of it fails clearly, overwrite: true replaces it.
	repo.commit("fixed version", map[string][]byte{".pipeline.yaml": publishOnlyPipeline("6.0.1", false)})
	if out, code := slipway(t, "run", "--config", cfg, "--repo", repoName); code != 0 {
		t.Fatalf("publishing 6.0.1 failed:\n%s", out)
	}
	out, code = slipway(t, "run", "--config", cfg, "--repo", repoName)
	if code == 0 || !strings.Contains(out, "chart version already exists") || !strings.Contains(out, "overwrite: true") {
		t.Fatalf("publishing 6.0.1 again: exit %d, want a failure saying it exists:\n%s", code, out)
	}
	repo.commit("overwrite", map[string][]byte{".pipeline.yaml": publishOnlyPipeline("6.0.1", true)})
	if out, code := slipway(t, "run", "--config", cfg, "--repo", repoName); code != 0 {
		t.Fatalf("publishing 6.0.1 with overwrite failed:\n%s", out)
	}

	// A version that is not SemVer 2 is refused before anything is pushed.
	repo.commit("bad version", map[string][]byte{".pipeline.yaml": publishOnlyPipeline("${BUILD_ID}.1", false)})
	out, code = slipway(t, "run", "--config", cfg, "--repo", repoName)
	if code == 0 || !strings.Contains(out, "not a SemVer 2 version") {
		t.Fatalf("version ${BUILD_ID}.1: exit %d, want a SemVer error:\n%s", code, out)
	}
}

// seed12Pipeline is examples/nginx-chart's pipeline against the test environment: the image
// and chart go to repositories of the test's own, the release to the test's namespace.
// extraValues are added under the deploy task's values.
func seed12Pipeline(env *testenv.Env, ns, wait, extraValues string) []byte {
	return []byte(`name: nginx
variables:
  REGISTRY: ` + env.Registry + `
stages:
  - name: build
    tasks:
      - name: build-nginx-image
        type: build-image
        dockerfile: Dockerfile
        registry: ${REGISTRY}
        workspace: ` + ns + `
        image: nginx
        tag: 6.0.1-alpha.${BUILD_ID}
  - name: publish
    tasks:
      - name: publish-nginx-chart
        type: publish-chart
        chartDir: nginx
        chart: nginx
        version: 6.0.1-alpha.${BUILD_ID}
  - name: deploy
    tasks:
      - name: deploy-nginx
        type: deploy-chart
        release: nginx
        chart: nginx
        version: ${tasks.publish-nginx-chart.version}
        cluster: e2e
        namespace: ` + ns + `
        wait: ` + wait + `
        rollback: auto
        values:
          image:
            repository: ${REGISTRY}/` + ns + `/nginx
` + extraValues)
}

// helmHistory reads the release's history from Helm's Secret storage, as `helm history` does.
func helmHistory(t *testing.T, cs kubernetes.Interface, ns, name string) []*release.Release {
	t.Helper()
	h, err := storage.Init(driver.NewSecrets(cs.CoreV1().Secrets(ns))).History(name)
	if err != nil {
		t.Fatalf("helm history %s: %v", name, err)
	}
	for i := 1; i < len(h); i++ {
		for j := i; j > 0 && h[j].Version < h[j-1].Version; j-- {
			h[j], h[j-1] = h[j-1], h[j]
		}
	}
	return h
}

func historyString(h []*release.Release) string {
	parts := make([]string, len(h))
	for i, r := range h {
		parts[i] = fmt.Sprintf("%d:%s:%s", r.Version, r.Info.Status, r.Chart.Metadata.Version)
	}
	return strings.Join(parts, " ")
}

func TestChartSeed12BuildPublishDeployUpgradeRollBack(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	cs := env.Clientset(t)
	ctx := context.Background()
	chartRepo := "oci://" + env.Registry + "/e2e/" + ns
	repo, url := newWorkRepo(t, env)
	repoName := strings.TrimSuffix(url[strings.LastIndex(url, "/")+1:], ".git")
	cfg := chartConfig(t, env, repoName, url, chartRepo)
	files := nginxChartRepo(t, env)
	files[".pipeline.yaml"] = seed12Pipeline(env, ns, "60s", "")
	repo.commit("seed 1.2", files)

	out, code := slipway(t, "run", "--config", cfg, "--repo", repoName)
	if code != 0 {
		t.Fatalf("run 1 failed:\n%s", out)
	}
	ch := pullChart(t, chartRepo, "nginx", "6.0.1-alpha.1")
	if ch.Metadata.Version != "6.0.1-alpha.1" {
		t.Errorf("published chart version %s", ch.Metadata.Version)
	}
	image := env.Registry + "/" + ns + "/nginx:6.0.1-alpha.1"
	dep, err := cs.AppsV1().Deployments(ns).Get(ctx, "nginx", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !available(dep) {
		t.Errorf("Deployment nginx is not Available: %+v", dep.Status.Conditions)
	}
	if got := dep.Spec.Template.Spec.Containers[0].Image; got != image {
		t.Errorf("deployed image %s, want %s", got, image)
	}
	ing, err := cs.NetworkingV1().Ingresses(ns).Get(ctx, "nginx", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ing.Spec.Rules[0].Host != "nginx.example.cn" {
		t.Errorf("Ingress host %s", ing.Spec.Rules[0].Host)
	}
	if h := helmHistory(t, cs, ns, "nginx"); historyString(h) != "1:deployed:6.0.1-alpha.1" {
		t.Errorf("helm history after run 1: %s", historyString(h))
	}

	// Run 2: chart 6.0.1-alpha.2, release revision 2.
	files["source/html/index.html"] = []byte("<html>nginx, second build</html>\n")
	repo.commit("second build", map[string][]byte{"source/html/index.html": files["source/html/index.html"]})
	if out, code := slipway(t, "run", "--config", cfg, "--repo", repoName); code != 0 {
		t.Fatalf("run 2 failed:\n%s", out)
	}
	if h := helmHistory(t, cs, ns, "nginx"); historyString(h) != "1:superseded:6.0.1-alpha.1 2:deployed:6.0.1-alpha.2" {
		t.Errorf("helm history after run 2: %s", historyString(h))
	}
	dep, _ = cs.AppsV1().Deployments(ns).Get(ctx, "nginx", metav1.GetOptions{})
	if got := dep.Spec.Template.Spec.Containers[0].Image; !strings.HasSuffix(got, ":6.0.1-alpha.2") {
		t.Errorf("run 2 deployed %s", got)
	}

	// Run 3 never becomes healthy: kwok fails the container. minReadySeconds keeps the
	// Deployment from counting the pod available in the moment kwok reports it Ready
	// before the chaos stage fails it.
	chaos := `          podLabels:
            pod-container-running-failed.stage.kwok.x-k8s.io: "true"
          minReadySeconds: 10
`
	repo.commit("unhealthy upgrade", map[string][]byte{".pipeline.yaml": seed12Pipeline(env, ns, "25s", chaos)})
	out, code = slipway(t, "run", "--config", cfg, "--repo", repoName)
	if code == 0 || !strings.Contains(out, "rolled back to release revision 2") {
		t.Fatalf("run 3: exit %d, want a failure saying it rolled back:\n%s", code, out)
	}
	h := helmHistory(t, cs, ns, "nginx")
	if got := historyString(h); got != "1:superseded:6.0.1-alpha.1 2:superseded:6.0.1-alpha.2 3:failed:6.0.1-alpha.3 4:deployed:6.0.1-alpha.2" {
		t.Errorf("helm history after the rollback: %s", got)
	}
	dep, _ = cs.AppsV1().Deployments(ns).Get(ctx, "nginx", metav1.GetOptions{})
	if got := dep.Spec.Template.Spec.Containers[0].Image; !strings.HasSuffix(got, ":6.0.1-alpha.2") {
		t.Errorf("after the rollback the Deployment runs %s, want revision 2's 6.0.1-alpha.2", got)
	}
	if _, ok := dep.Spec.Template.Labels["pod-container-running-failed.stage.kwok.x-k8s.io"]; ok || dep.Spec.MinReadySeconds != 0 {
		t.Errorf("after the rollback the Deployment keeps run 3's changes: labels %v, minReadySeconds %d", dep.Spec.Template.Labels, dep.Spec.MinReadySeconds)
	}
	// Slipway's own history reads like a YAML deploy's: one revision per run of the task.
	runs := history(t, cfg, "nginx")
	var revs []string
	for _, r := range runs {
		revs = append(revs, fmt.Sprintf("%d:%s:%s", r.BuildID, r.Status, r.Revision))
	}
	if got := strings.Join(revs, " "); !strings.Contains(got, "3:failed:deploy-nginx:rolled_back") || !strings.Contains(got, "2:succeeded:deploy-nginx:healthy") {
		t.Errorf("slipway history: %s", got)
	}
}

// chartDirPipeline deploys the example chart straight from the checkout, with a values file
// and inline values on top.
func chartDirPipeline(ns, wait, extraValues string) []byte {
	return []byte(`name: nginx-dir
stages:
  - name: deploy
    tasks:
      - name: deploy-web
        type: deploy-chart
        release: web
        chartDir: nginx
        cluster: e2e
        namespace: ` + ns + `
        wait: ` + wait + `
        valuesFiles: [values-e2e.yaml]
        values:
          image:
            repository: example.com/web
` + extraValues)
}

func chartDirRepo(t *testing.T, env *testenv.Env) map[string][]byte {
	files := nginxChartRepo(t, env)
	files["values-e2e.yaml"] = []byte("image:\n  tag: dir-${BUILD_ID}\n  repository: overridden-by-inline-values\n")
	return files
}

func TestChartPendingUpgradeIsUnlocked(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	cs := env.Clientset(t)
	ctx := context.Background()
	repo, repoName, cfg := newChartProject(t, env, ns)
	files := chartDirRepo(t, env)
	files[".pipeline.yaml"] = chartDirPipeline(ns, "60s", "")
	repo.commit("deploy from the checkout", files)
	if out, code := slipway(t, "run", "--config", cfg, "--repo", repoName); code != 0 {
		t.Fatalf("run 1 failed:\n%s", out)
	}
	dep, err := cs.AppsV1().Deployments(ns).Get(ctx, "web-nginx", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := dep.Spec.Template.Spec.Containers[0].Image; got != "example.com/web:dir-1" {
		t.Errorf("image %s, want values file then inline values applied: example.com/web:dir-1", got)
	}

	// An upgrade whose process dies: a pre-upgrade hook Job that never completes holds the
	// release in pending-upgrade, and the test kills slipway meanwhile. helm itself would
	// refuse every later operation on the release.
	files["nginx/templates/slow-hook.yaml"] = []byte(slowHook)
	files[".pipeline.yaml"] = chartDirPipeline(ns, "60s", "          slowHook: true\n")
	repo.commit("an upgrade with a hook that never finishes", files)
	st := storage.Init(driver.NewSecrets(cs.CoreV1().Secrets(ns)))
	killed := killWhenPending(t, st, "web", "run", "--config", cfg, "--repo", repoName)
	t.Logf("slipway killed while revision %d was %s", killed.Version, killed.Info.Status)

	delete(files, "nginx/templates/slow-hook.yaml")
	files[".pipeline.yaml"] = chartDirPipeline(ns, "60s", "")
	repo.commit("no hook", map[string][]byte{".pipeline.yaml": files[".pipeline.yaml"], "nginx/templates/slow-hook.yaml": nil})
	out, code := slipway(t, "run", "--config", cfg, "--repo", repoName)
	if code != 0 {
		t.Fatalf("the run after the crash did not get past the pending release:\n%s", out)
	}
	if !strings.Contains(out, "revision 2 was left pending") {
		t.Errorf("the run after the crash did not say it unlocked revision 2:\n%s", out)
	}
	h := helmHistory(t, cs, ns, "web")
	var states []string
	for _, r := range h {
		states = append(states, fmt.Sprintf("%d:%s", r.Version, r.Info.Status))
	}
	if got := strings.Join(states, " "); got != "1:superseded 2:failed 3:deployed" {
		t.Errorf("helm history after the unlock: %s", got)
	}
	dep, _ = cs.AppsV1().Deployments(ns).Get(ctx, "web-nginx", metav1.GetOptions{})
	if got := dep.Spec.Template.Spec.Containers[0].Image; got != "example.com/web:dir-3" {
		t.Errorf("the run after the crash deployed %s", got)
	}
}

// slowHook is a pre-upgrade hook whose Job never completes (kwok's chaos stage fails every
// pod it starts), so Helm keeps the release pending-upgrade while it waits for the hook.
const slowHook = `{{- if .Values.slowHook }}
apiVersion: batch/v1
kind: Job
metadata:
  name: {{ .Release.Name }}-slow-hook
  annotations:
    "helm.sh/hook": pre-upgrade
spec:
  backoffLimit: 100
  template:
    metadata:
      labels:
        pod-container-running-failed.stage.kwok.x-k8s.io: "true"
    spec:
      restartPolicy: Never
      containers:
        - name: wait
          image: example.com/busybox:1
{{- end }}
`

// killWhenPending runs slipway with args and SIGKILLs it as soon as the release's newest
// revision is pending, returning that revision.
func killWhenPending(t *testing.T, st *storage.Storage, name string, args ...string) *release.Release {
	t.Helper()
	cmd := exec.Command(slipwayBinary(t), args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if last, err := st.Last(name); err == nil && last.Info.Status.IsPending() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return last
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	t.Fatalf("release %s never became pending:\n%s", name, out.String())
	return nil
}

func TestChartFailedFirstInstallIsUninstalled(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	cs := env.Clientset(t)
	repo, repoName, cfg := newChartProject(t, env, ns)
	files := chartDirRepo(t, env)
	files[".pipeline.yaml"] = chartDirPipeline(ns, "20s", `          podLabels:
            pod-container-running-failed.stage.kwok.x-k8s.io: "true"
          minReadySeconds: 10
`)
	repo.commit("an install that never becomes healthy", files)
	out, code := slipway(t, "run", "--config", cfg, "--repo", repoName)
	if code == 0 || !strings.Contains(out, "first install of release web failed: uninstalled it") {
		t.Fatalf("exit %d, want a failed run that uninstalled the release:\n%s", code, out)
	}
	if h, err := storage.Init(driver.NewSecrets(cs.CoreV1().Secrets(ns))).History("web"); err == nil && len(h) > 0 {
		t.Errorf("the release is still in Helm storage: %s", historyString(h))
	}
	deps, err := cs.AppsV1().Deployments(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil || len(deps.Items) != 0 {
		t.Errorf("objects of the failed install remain: %v, %d Deployments", err, len(deps.Items))
	}
}
