package e2e

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/slipwayhq/slipway/test/testenv"
)

// A repository reads only the secrets and pushes only to the registry paths slipway.yaml
// grants it: anything else is refused by validate and by the run before anything is read,
// applied or pushed, and a refused value appears nowhere.
func TestGrantsRefuseSecretsAndPushesNotGranted(t *testing.T) {
	env := testenv.Get(t)
	ns, otherNS := env.Namespace(t), env.Namespace(t)
	cs := env.Clientset(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	const (
		granted      = "s3cr3t-granted-file"
		grantedKube  = "s3cr3t-granted-kube"
		outside      = "s3cr3t-outside-the-grant"
		otherNSValue = "s3cr3t-of-another-namespace"
	)
	for n, v := range map[string]string{ns: grantedKube, otherNS: otherNSValue} {
		sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: n}, StringData: map[string]string{"token": v}}
		if _, err := cs.CoreV1().Secrets(n).Create(ctx, sec, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	secrets := filepath.Join(dir, "secrets")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Mkdir(secrets, 0o700))
	must(os.WriteFile(filepath.Join(secrets, "token"), []byte(granted+"\n"), 0o600))
	must(os.WriteFile(filepath.Join(dir, "outside-token"), []byte(outside+"\n"), 0o600))
	must(os.Symlink(filepath.Join(dir, "outside-token"), filepath.Join(secrets, "link")))

	repo, url := newWorkRepo(t, env)
	repoName := strings.TrimSuffix(url[strings.LastIndex(url, "/")+1:], ".git")
	image := testenv.UniqueName(t)
	cfg := writeConfigFor(t, env, dir, repoName, url, env.GitUser, env.GitPassword, `poll: 1s
policy:
  clusters: [e2e]
  namespaces: [`+ns+`]
  registries: ['*']
  push: [`+env.Registry+`/granted]
  secrets:
    kubernetes: [{cluster: e2e, namespace: `+ns+`, name: api}]
    files: [`+secrets+`]`)

	files := func(secret, workspace string) map[string][]byte {
		return map[string][]byte{
			"Dockerfile": []byte("FROM " + env.BaseImage + "\n"),
			".pipeline.yaml": []byte(`name: grants
secrets:
  - ` + secret + `
stages:
  - name: build
    tasks:
      - {name: image, type: build-image, workspace: ` + workspace + `, image: ` + image + `, tag: "b${BUILD_ID}"}
  - name: deploy
    tasks:
      - {name: app, type: deploy-yaml, path: app.yaml, cluster: e2e, namespace: ` + ns + `, wait: 30s}
`),
			"app.yaml": []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: leak\ndata:\n  value: ${S}\n"),
		}
	}
	refused := []struct {
		name, secret, workspace, want string
		static                        bool // validate sees it; a link is resolved on the daemon's host, at run time
	}{
		{"a file outside the grant", "{name: S, file: " + filepath.Join(dir, "outside-token") + "}", "granted",
			"rule allowed-secrets: secret S reads file " + filepath.Join(dir, "outside-token") + ", which is not granted to repository " + repoName, true},
		{"a link in the granted folder to a file outside it", "{name: S, file: " + filepath.Join(secrets, "link") + "}", "granted",
			"which resolves to " + filepath.Join(dir, "outside-token"), false},
		{"a Secret of a namespace not granted", "{name: S, secret: api, key: token, cluster: e2e, namespace: " + otherNS + "}", "granted",
			"secret S reads Kubernetes Secret " + otherNS + "/api on cluster \"e2e\", which is not granted", true},
		{"a push to a registry path not granted", "{name: S, file: " + filepath.Join(secrets, "token") + "}", "elsewhere",
			"rule allowed-push: task image pushes to " + env.Registry + "/elsewhere/" + image + ", which is not granted to repository " + repoName, true},
	}
	for i, c := range refused {
		repo.commit(c.name, files(c.secret, c.workspace))
		// validate --config --repository refuses it, naming the field.
		out, code := slipway(t, "validate", "--config", cfg, "--repository", repoName, repo.dir)
		if c.static && (code == 0 || !strings.Contains(out, "policy (rule allowed-")) {
			t.Errorf("%s: validate passed or said something else (exit %d):\n%s", c.name, code, out)
		}
		out, code = slipway(t, "run", "--config", cfg, "--repo", repoName)
		if code != 1 || !strings.Contains(out, c.want) || !strings.Contains(out, "nothing of it was applied") {
			t.Errorf("%s: run %d exited %d, want a refusal containing %q:\n%s", c.name, i+1, code, c.want, out)
		}
		if _, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "leak", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Fatalf("%s: the ConfigMap was applied (err %v)", c.name, err)
		}
	}
	for _, ws := range []string{"granted", "elsewhere"} {
		if tags, err := crane.ListTags(env.Registry+"/"+ws+"/"+image, crane.Insecure); err == nil && len(tags) > 0 {
			t.Errorf("a refused run pushed %s/%s: %v", ws, image, tags)
		}
	}
	// validate (the static check) points at the field.
	out, _ := slipway(t, "validate", "--config", cfg, "--repository", repoName, repo.dir)
	if !strings.Contains(out, ".pipeline.yaml:") || !strings.Contains(out, "allowed-push") {
		t.Errorf("validate names no place:\n%s", out)
	}

	// What is granted works: the file in the granted folder, the granted Secret, the push.
	repo.commit("granted", map[string][]byte{".pipeline.yaml": []byte(strings.Replace(string(files("{name: S, file: "+filepath.Join(secrets, "token")+"}", "granted")[".pipeline.yaml"]),
		"secrets:\n", "secrets:\n  - {name: K, secret: api, key: token, cluster: e2e, namespace: "+ns+"}\n", 1)),
		"app.yaml": []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: leak\ndata:\n  value: ${S}\n  kube: ${K}\n")})
	if out, code := slipway(t, "run", "--config", cfg, "--repo", repoName); code != 0 {
		t.Fatalf("the granted run failed:\n%s", out)
	}
	cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "leak", metav1.GetOptions{})
	if err != nil || cm.Data["value"] != granted || cm.Data["kube"] != grantedKube {
		t.Fatalf("granted secrets did not arrive: %v %v", cm.Data, err)
	}
	if tags, err := crane.ListTags(env.Registry+"/granted/"+image, crane.Insecure); err != nil || !slices.Equal(tags, []string{"b5"}) {
		t.Errorf("the granted push: tags %v, %v; want [b5]", tags, err)
	}

	// The refused values were never read: they appear in no output, log, record or store file.
	var texts []string
	for id := 1; id <= 5; id++ {
		logs, _ := slipway(t, "logs", "--config", cfg, "grants", strconv.Itoa(id))
		texts = append(texts, logs)
	}
	hist, _ := slipway(t, "history", "--config", cfg, "grants", "-o", "json")
	texts = append(texts, hist)
	must(filepath.WalkDir(filepath.Join(dir, "data"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		texts = append(texts, string(b))
		return err
	}))
	for _, text := range texts {
		for _, v := range []string{outside, otherNSValue} {
			if strings.Contains(text, v) {
				t.Errorf("the refused value %q appears in a log, record or store file", v)
			}
		}
	}
}

// keep deletes only tags its own pipeline pushed and no stored revision deploys: another
// pipeline's tag of the same image stays, and so does a tag a revision deploys, which a
// rollback may put back.
func TestKeepDeletesOnlyItsOwnUndeployedTags(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	repo, repoName, cfg := newProject(t, env)
	image := env.Registry + "/keep/" + testenv.UniqueName(t)
	build := func(name, tag string, keep int) string {
		return `name: ` + name + `
stages:
  - name: build
    tasks:
      - {name: image, type: build-image, workspace: keep, image: ` + image[strings.LastIndex(image, "/")+1:] + `, tag: "` + tag + `", keep: ` + strconv.Itoa(keep) + `}
`
	}
	pipelines := build("mine", "alpha-${BUILD_ID}", 1) + "---\n" + build("other", "alpha-0${BUILD_ID}", 0) + `---
name: deployer
stages:
  - name: deploy
    tasks:
      - {name: cron, type: deploy-yaml, path: cron.yaml, cluster: e2e, namespace: ` + ns + `, wait: 30s}
`
	repo.commit("pipelines", map[string][]byte{
		"Dockerfile":     []byte("FROM " + env.BaseImage + "\nCOPY stamp /stamp\n"),
		"stamp":          []byte("other"),
		".pipeline.yaml": []byte(pipelines),
		// The deployer runs mine's alpha-1 (suspended: nothing is scheduled).
		"cron.yaml": []byte(`apiVersion: batch/v1
kind: CronJob
metadata: {name: uses-alpha-1}
spec:
  schedule: "@daily"
  suspend: true
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{name: c, image: "` + image + `:alpha-1"}]
`),
	})
	run := func(p string) string {
		t.Helper()
		out, code := slipway(t, "run", "--config", cfg, "--repo", repoName, "--pipeline", p)
		if code != 0 {
			t.Fatalf("run of %s failed:\n%s", p, out)
		}
		return out
	}
	// Each build gets content of its own: registries delete manifests, and a tag sharing
	// its manifest with a survivor is kept for that reason instead.
	stamp := func(s string) { repo.commit("stamp "+s, map[string][]byte{"stamp": []byte(s)}) }
	run("other") // alpha-01: another pipeline's tag, older than all of mine
	stamp("1")
	run("mine") // alpha-1
	run("deployer")
	stamp("2")
	run("mine") // alpha-2: keep 1 would delete alpha-1, which the deployer's revision deploys
	stamp("3")
	out := run("mine") // alpha-3: deletes alpha-2, keeps alpha-1
	tags, err := crane.ListTags(image, crane.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(tags)
	if want := []string{"alpha-01", "alpha-1", "alpha-3"}; !slices.Equal(tags, want) {
		t.Errorf("tags after keep: 1 = %v, want %v (alpha-2 deleted; alpha-01 is other's, alpha-1 deployed)", tags, want)
	}
	if !strings.Contains(out, "retention: deleted "+image+":alpha-2") ||
		!strings.Contains(out, "retention: kept "+image+":alpha-1: deployed by "+repoName+":deployer BUILD_ID 1 (task cron)") {
		t.Errorf("the run does not say what retention did:\n%s", out)
	}
	if strings.Contains(out, "alpha-01") {
		t.Errorf("retention considered another pipeline's tag:\n%s", out)
	}
}
