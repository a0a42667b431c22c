package e2e

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/slipwayhq/slipway/store"
	"github.com/slipwayhq/slipway/test/testenv"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// slipwayBinary builds cmd/slipway once per test binary, so e2e tests drive the real CLI.
func slipwayBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		env := testenv.Get(t)
		dir, err := os.MkdirTemp("", "slipway-e2e-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "slipway")
		// Built as `make build` builds what ships (no cgo, a static binary), so what the
		// tests see, limits and memory included, is what users run.
		cmd := exec.Command("go", "build", "-trimpath", "-o", binPath, "./cmd/slipway")
		cmd.Dir = env.Root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/slipway: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// slipway runs the CLI and returns its combined output and exit code.
func slipway(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(slipwayBinary(t), args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run slipway %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), code
}

// workRepo is a gitWork (git_test.go) whose every commit is pushed to master.
type workRepo struct{ *gitWork }

func newWorkRepo(t *testing.T, env *testenv.Env) (*workRepo, string) {
	t.Helper()
	_, url := env.Repo(t)
	return &workRepo{newGitWork(t, env, url)}, url
}

// commit writes files (nil content deletes), commits and pushes; it returns the commit hash.
func (g *workRepo) commit(msg string, files map[string][]byte) string {
	g.t.Helper()
	text := make(map[string]string, len(files))
	for name, body := range files {
		text[name] = string(body) // gitWork.commit deletes a file given ""
	}
	hash := g.gitWork.commit(msg, text)
	g.push("master")
	return hash
}

// newProject is a repository on the Git server with a slipway.yaml that follows it and
// deploys to the environment's cluster (named e2e).
func newProject(t *testing.T, env *testenv.Env) (repo *workRepo, repoName, cfg string) {
	t.Helper()
	repo, url := newWorkRepo(t, env)
	repoName = strings.TrimSuffix(url[strings.LastIndex(url, "/")+1:], ".git")
	return repo, repoName, writeConfig(t, env, repoName, url)
}

// writeConfig writes a slipway.yaml for one repository and the environment's cluster.
func writeConfig(t *testing.T, env *testenv.Env, repoName, url string) string {
	t.Helper()
	return writeConfigFor(t, env, t.TempDir(), repoName, url, env.GitUser, env.GitPassword, "poll: 1s")
}

// grantEverything is the repository policy of tests that are not about policy: every
// cluster, namespace and registry (trusted kinds stay denied; docs/policy.md).
const grantEverything = "policy: {clusters: ['*'], namespaces: ['*'], registries: ['*'], push: ['*'], " +
	"secrets: {kubernetes: [{cluster: '*', namespace: '*', name: '*'}]}}"

// grantEverythingIn is grantEverything with file: secrets allowed from dir, the test's
// folder.
func grantEverythingIn(dir string) string {
	return "policy: {clusters: ['*'], namespaces: ['*'], registries: ['*'], push: ['*'], " +
		"secrets: {kubernetes: [{cluster: '*', namespace: '*', name: '*'}], files: [" + dir + "]}}"
}

// writeConfigFor writes dir/slipway.yaml following one repository with user and password
// (kept in files next to it), repoExtra lines under the repository (poll, webhook), and
// the environment's cluster and registry. The repository gets grantEverything unless
// repoExtra has a policy of its own.
func writeConfigFor(t *testing.T, env *testenv.Env, dir, repoName, url, user, password, repoExtra string) string {
	t.Helper()
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(dir, "git-user"), []byte(user), 0o600))
	must(os.WriteFile(filepath.Join(dir, "git-password"), []byte(password), 0o600))
	if !strings.Contains(repoExtra, "policy:") {
		repoExtra += "\n" + grantEverythingIn(dir)
	}
	// A key of the test's own: the daemon and the CLI verbs the test runs beside it open
	// the store at once, and whichever came first would create DATADIR/store.key and say so
	// in output the test parses.
	key := make([]byte, store.KeySize)
	_, _ = rand.Read(key)
	must(os.WriteFile(filepath.Join(dir, "store.key"), key, 0o600))
	cfg := fmt.Sprintf(`dataDir: %s/data
listen: 127.0.0.1:0
storeKeyFiles: [store.key]
repositories:
  - name: %s
    url: %s
    branch: master
    auth: {usernameFile: git-user, passwordFile: git-password}
    %s
clusters:
  - name: e2e
    kubeconfig: %s
registry:
  default: %s
  insecure: [%s]
`, dir, repoName, url, strings.ReplaceAll(repoExtra, "\n", "\n    "), env.Kubeconfig, env.Registry, env.Registry)
	path := filepath.Join(dir, "slipway.yaml")
	must(os.WriteFile(path, []byte(cfg), 0o600))
	return path
}

// exampleFiles reads every file of an example folder, keyed by its path inside it.
func exampleFiles(t *testing.T, env *testenv.Env, example string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	root := filepath.Join(env.Root, "examples", example)
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		b, err := os.ReadFile(p)
		files[rel] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func readExample(t *testing.T, env *testenv.Env, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(env.Root, "examples", rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
