package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/slipwayhq/slipway/test/testenv"
)

// examples/cron-nightly runs as written (a manual run of its scheduled pipeline). Its
// slipway.yaml maps cluster staging onto the environment's cluster, and hub.ecns.io and
// Docker Hub (the Dockerfile's FROM nginx:1.27-alpine) onto the local registry through
// registry.mirrors. The build pushes hub.ecns.io/nightly/site:nightly-1, the smoke test
// runs inside that very image on BuildKit, and the deploy pins the Deployment to its digest.
func TestCronNightlyExampleRunsAsWritten(t *testing.T) {
	env := testenv.Get(t)
	slipwayBinary(t) // built first: the deadline below is for the test's own steps
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cs := env.Clientset(t)
	const ns = "site-nightly"
	if err := cs.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(250 * time.Millisecond) {
		if _, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); apierrors.IsNotFound(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("namespace %s of an earlier run is still terminating", ns)
		}
	}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })

	// Docker Hub's nginx:1.27-alpine, as the mirror serves it: the environment's busybox.
	src, err := name.ParseReference(env.BaseImage, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	base, err := remote.Image(src, remote.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	dst, _ := name.NewTag(env.Registry+"/library/nginx:1.27-alpine", name.Insecure)
	if err := remote.Write(dst, base, remote.WithContext(ctx)); err != nil {
		t.Fatal(err)
	}

	repo, repoName, cfg := newProject(t, env)
	files := exampleFiles(t, env, "cron-nightly")
	repo.commit("the example as written", files)
	text, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	conf := strings.Replace(string(text), "\nregistry:", fmt.Sprintf("\n  - {name: staging, kubeconfig: %s}\nregistry:", env.Kubeconfig), 1)
	conf += fmt.Sprintf("  mirrors:\n    - {registry: hub.ecns.io, endpoint: %q}\n    - {registry: docker.io, endpoint: %q}\n", env.Registry, env.Registry)
	conf += fmt.Sprintf("executor:\n  buildkit: {address: %q}\n", env.BuildkitHost)
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, code := slipway(t, "validate", "--config", cfg, filepath.Join(env.Root, "examples", "cron-nightly")); code != 0 {
		t.Fatalf("the example does not validate against the test's slipway.yaml:\n%s", out)
	}
	out, code := slipway(t, "run", "--config", cfg, "--repo", repoName)
	if code != 0 {
		t.Fatalf("run failed:\n%s", out)
	}
	logs, _ := slipway(t, "logs", "--config", cfg, "nightly", "1")
	if !strings.Contains(logs, "== test/smoke-test [script] succeeded") ||
		!strings.Contains(logs, "running the script on buildkit in hub.ecns.io/nightly/site:nightly-1") {
		t.Errorf("the smoke test did not run in the image just built:\n%s", logs)
	}
	digest, err := crane.Digest(env.Registry+"/nightly/site:nightly-1", crane.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	dep, err := cs.AppsV1().Deployments(ns).Get(ctx, "site", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := dep.Spec.Template.Spec.Containers[0].Image, "hub.ecns.io/nightly/site:nightly-1@"+digest; got != want {
		t.Errorf("deployed %s, want %s", got, want)
	}

	// The smoke test fails when the image lacks the page: the next night's build of a site
	// without index.html stops before the deploy.
	repo.commit("no page", map[string][]byte{"site/index.html": nil, "site/other.html": []byte("<p>other</p>\n")})
	if out, code := slipway(t, "run", "--config", cfg, "--repo", repoName); code == 0 {
		t.Fatalf("run 2 succeeded without index.html:\n%s", out)
	}
	logs, _ = slipway(t, "logs", "--config", cfg, "nightly", "2")
	if !strings.Contains(logs, "== test/smoke-test [script] failed") || !strings.Contains(logs, "script exited with code 1") ||
		!strings.Contains(logs, "== deploy/deploy-staging [deploy-yaml] skipped") {
		t.Errorf("run 2:\n%s", logs)
	}
	if dep, _ := cs.AppsV1().Deployments(ns).Get(ctx, "site", metav1.GetOptions{}); dep == nil || !strings.Contains(dep.Spec.Template.Spec.Containers[0].Image, "nightly-1@") {
		t.Errorf("run 2 changed the deployment")
	}
}
