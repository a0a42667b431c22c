package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/name"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/slipwayhq/slipway/test/testenv"
)

// seed11Pipeline is examples/2048-yaml's pipeline with the cluster, namespace and
// registry of the test environment: build the image, then deploy it by digest.
func seed11Pipeline(registry, ns string) []byte {
	return []byte(`name: jack-2048
variables:
  REGISTRY: ` + registry + `
  DOMAIN: 2048.example.cn
stages:
  - name: build
    tasks:
      - name: build-2048-image
        type: build-image
        dockerfile: Dockerfile
        registry: ${REGISTRY}
        workspace: devops
        image: jack-2048
        tag: alpha-${BUILD_ID}
        keep: 1
  - name: deploy
    tasks:
      - name: deploy-2048
        type: deploy-yaml
        path: 2048_env.yaml
        cluster: e2e
        namespace: ` + ns + `
        wait: 60s
        pinImages: true
`)
}

// seed11Repo is the example's files with the Dockerfile's FROM pointed at the local base.
func seed11Repo(t *testing.T, env *testenv.Env) map[string][]byte {
	t.Helper()
	files := exampleFiles(t, env, "2048-yaml")
	df := string(files["Dockerfile"])
	files["Dockerfile"] = []byte("FROM " + env.BaseImage + df[strings.Index(df, "\n"):])
	return files
}

func TestSeed11BuildAndDeployByDigest(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	cs := env.Clientset(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	repo, repoName, cfg := newProject(t, env)
	files := seed11Repo(t, env)
	files[".pipeline.yaml"] = seed11Pipeline(env.Registry, ns)
	repo.commit("seed 1.1", files)

	out, code := slipway(t, "run", "--config", cfg, "--repo", repoName)
	if code != 0 {
		t.Fatalf("run 1 failed:\n%s", out)
	}
	image := env.Registry + "/devops/jack-2048"
	digest, err := crane.Digest(image+":alpha-1", crane.Insecure)
	if err != nil {
		t.Fatalf("alpha-1 is not in the registry: %v", err)
	}
	cfgJSON, err := crane.Config(image+":alpha-1", crane.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	var imgCfg struct {
		Config struct {
			Cmd          []string            `json:"Cmd"`
			ExposedPorts map[string]struct{} `json:"ExposedPorts"`
		} `json:"config"`
	}
	if err := json.Unmarshal(cfgJSON, &imgCfg); err != nil {
		t.Fatal(err)
	}
	if strings.Join(imgCfg.Config.Cmd, " ") != "nginx -c /etc/nginx/nginx.8880.conf" {
		t.Errorf("CMD = %v", imgCfg.Config.Cmd)
	}
	if _, ok := imgCfg.Config.ExposedPorts["80/tcp"]; !ok {
		t.Errorf("EXPOSE 80 missing: %v", imgCfg.Config.ExposedPorts)
	}
	_, files1 := imageFiles(t, image+":alpha-1", name.Insecure)
	for _, want := range []string{"/var/lib/nginx/html/index.html", "/etc/nginx/nginx.conf", "/etc/nginx/nginx.8880.conf", "/bin/busybox"} {
		if _, ok := files1[want]; !ok {
			t.Errorf("the image lacks %s", want)
		}
	}

	dep, err := cs.AppsV1().Deployments(ns).Get(ctx, "jack-2048", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := dep.Spec.Template.Spec.Containers[0].Image, image+":alpha-1@"+digest; got != want {
		t.Errorf("deployed image = %s, want %s (pinned by digest)", got, want)
	}

	// Run 2 builds alpha-2; keep: 1 would delete alpha-1, but run 1's revision deploys it
	// and `slipway rollback --to 1` may put it back, so it stays.
	files["2048/index.html"] = []byte("<html>2048, second build</html>\n")
	repo.commit("second build", map[string][]byte{"2048/index.html": files["2048/index.html"]})
	if out, code := slipway(t, "run", "--config", cfg, "--repo", repoName); code != 0 {
		t.Fatalf("run 2 failed:\n%s", out)
	} else if !strings.Contains(out, "retention: kept "+image+":alpha-1: deployed by "+repoName+":jack-2048 BUILD_ID 1 (task deploy-2048)") {
		t.Errorf("run 2 did not report keeping alpha-1 for run 1's revision:\n%s", out)
	}
	tags, err := crane.ListTags(image, crane.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(tags, ",") != "alpha-1,alpha-2" {
		t.Errorf("tags after keep: 1 = %v, want [alpha-1 alpha-2]", tags)
	}
	dep, _ = cs.AppsV1().Deployments(ns).Get(ctx, "jack-2048", metav1.GetOptions{})
	if !strings.HasPrefix(dep.Spec.Template.Spec.Containers[0].Image, image+":alpha-2@sha256:") {
		t.Errorf("run 2 deployed %s", dep.Spec.Template.Spec.Containers[0].Image)
	}
	if h := history(t, cfg, "jack-2048"); len(h) != 2 || h[0].Status != "succeeded" {
		t.Errorf("history = %+v", h)
	}
}

func TestBuildWithWrongRegistryCredentialsDeploysNothing(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	cs := env.Clientset(t)
	repo, repoName, cfg := newProject(t, env)

	// The auth registry, with a Docker config holding a wrong password.
	dockerCfg := filepath.Join(filepath.Dir(cfg), "docker-config.json")
	auth := map[string]any{"auths": map[string]any{env.RegistryAuth: map[string]string{"username": env.RegistryUser, "password": "not-the-password-7f3a"}}}
	b, _ := json.Marshal(auth)
	if err := os.WriteFile(dockerCfg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(cfg)
	patched := strings.Replace(string(raw), "registry:\n  default: "+env.Registry+"\n  insecure: ["+env.Registry+"]",
		"registry:\n  default: "+env.RegistryAuth+"\n  dockerConfig: docker-config.json\n  insecure: ["+env.Registry+", "+env.RegistryAuth+"]", 1)
	if patched == string(raw) {
		t.Fatal("could not point the config at the auth registry")
	}
	if err := os.WriteFile(cfg, []byte(patched), 0o600); err != nil {
		t.Fatal(err)
	}
	files := seed11Repo(t, env)
	files["Dockerfile"] = []byte(strings.Replace(string(files["Dockerfile"]), env.Registry, env.RegistryAuth, 1))
	files[".pipeline.yaml"] = seed11Pipeline(env.RegistryAuth, ns)
	repo.commit("seed 1.1 against the auth registry", files)

	out, code := slipway(t, "run", "--config", cfg, "--repo", repoName)
	if code != 1 || !strings.Contains(out, "refused the credentials") || !strings.Contains(out, "401 Unauthorized") {
		t.Fatalf("wrong credentials: exit %d, want 1 with a clear auth error:\n%s", code, out)
	}
	if strings.Contains(out, "not-the-password-7f3a") {
		t.Errorf("the password appears in the output:\n%s", out)
	}
	deps, err := cs.AppsV1().Deployments(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil || len(deps.Items) != 0 {
		t.Fatalf("something was deployed after the failed build: %v %d", err, len(deps.Items))
	}

	// The right password succeeds.
	auth["auths"] = map[string]any{env.RegistryAuth: map[string]string{"username": env.RegistryUser, "password": env.RegistryPassword}}
	b, _ = json.Marshal(auth)
	if err := os.WriteFile(dockerCfg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, code := slipway(t, "run", "--config", cfg, "--repo", repoName); code != 0 {
		t.Fatalf("right credentials: run failed:\n%s", out)
	}
	if _, err := name.ParseReference(env.RegistryAuth+"/devops/jack-2048:alpha-2", name.Insecure); err != nil {
		t.Fatal(err)
	}
}

// The same pipeline with `builder: buildkit` runs Dockerfiles the native builder refuses.
func TestSeed11WithBuildKitRunsRUN(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	repo, repoName, cfg := newProject(t, env)
	raw, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, append(raw, []byte("builder: {type: buildkit, address: \""+env.BuildkitHost+"\"}\n")...), 0o600); err != nil {
		t.Fatal(err)
	}
	files := seed11Repo(t, env)
	files["Dockerfile"] = append(files["Dockerfile"], []byte("RUN echo built-by-buildkit > /var/lib/nginx/html/run.txt\n")...)
	files[".pipeline.yaml"] = seed11Pipeline(env.Registry, ns)
	repo.commit("seed 1.1 with RUN", files)
	if out, code := slipway(t, "run", "--config", cfg, "--repo", repoName); code != 0 {
		t.Fatalf("run with buildkit failed:\n%s", out)
	}
	_, got := imageFiles(t, env.Registry+"/devops/jack-2048:alpha-1", name.Insecure)
	if strings.TrimSpace(got["/var/lib/nginx/html/run.txt"]) != "built-by-buildkit" {
		t.Errorf("the file RUN made is not in the image (run.txt = %q)", got["/var/lib/nginx/html/run.txt"])
	}
}
