// Package testenv connects end-to-end tests to the local real environment started by
// hack/env-up.sh: a control plane with kwok nodes, registries, a Git server, BuildKit and a
// Gitea forge.
//
// A test binary's TestMain calls Main once; it reuses a healthy environment described by
// .slipway/testenv.env or starts one, and stops one that tests started when the last test
// binary using it ends.
package testenv

import (
	"bufio"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver, for PostgresSchema
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Env describes a running environment, as read from .slipway/testenv.env.
type Env struct {
	Root string // the repository root

	Kubeconfig        string
	KubeconfigLimited string

	Registry         string // host:port of the anonymous registry
	RegistryAuth     string // host:port of the htpasswd registry
	RegistryUser     string
	RegistryPassword string
	BaseImage        string // a linux/amd64 busybox image in Registry

	GitURL      string // base URL; a bare repo <name>.git under GitRoot is served at GitURL/<name>.git
	GitRoot     string
	GitUser     string
	GitPassword string

	GiteaURL      string // base URL of the Gitea forge (API under /api/v1)
	GiteaUser     string // its admin user
	GiteaPassword string
	GiteaToken    string // an API token of the admin, scope "all"

	SMTPAddr     string // Mailpit's SMTP server, host:port; STARTTLS and AUTH required
	SMTPUser     string
	SMTPPassword string
	SMTPCA       string // the CA file that signed its certificate
	MailpitURL   string // Mailpit's HTTP API (under /api/v1)

	BuildkitHost string
	Buildctl     string // buildctl of buildkitd's version
	Kubectl      string // kubectl of the control plane's version
	KwokStages   string // folder of kwok's Stage files (chaos stages for failure tests)

	// RealNodeName is the node that runs containers for real (containerd and a kubelet);
	// RealNodeTaint keeps other pods off it, as key=value:Effect. Use RealNode.
	RealNodeName  string
	RealNodeTaint string

	// PostgresURL is a database on the environment's PostgreSQL the tests may use, as
	// its superuser (so tests can make a schema or database each).
	PostgresURL string

	pids     string
	stateDir string // .slipway/env: pids/, logs/
}

// howToGet is appended to every failure to reach the environment, so nobody has to guess.
const howToGet = "start the environment with `make env-up` (it needs root for apt-get the first time, " +
	"and builds pinned binaries into ~/.cache/slipway); its logs are in .slipway/env/logs"

// envFile is where hack/env-up.sh describes the environment, relative to the repo root.
const envFile = ".slipway/testenv.env"

// Main brings the environment up for the test binary, runs the tests and, when the tests
// started the environment, stops it after the last test binary using it is done. Several
// packages' test binaries may run at once: each holds a lease while it runs. An environment
// started by hand (`make env-up`) is left running. SLIPWAY_KEEP_ENV=1 keeps it either way.
func Main(m *testing.M) int {
	root, err := repoRoot()
	if err != nil {
		fmt.Fprintf(os.Stderr, "testenv: %v\n", err)
		return 1
	}
	release, err := acquire(root)
	if err != nil {
		fmt.Fprintf(os.Stderr, "testenv: the real environment is not available: %v\n%s\n", err, howToGet)
		return 1
	}
	code := m.Run()
	if err := release(); err != nil {
		fmt.Fprintf(os.Stderr, "testenv: %v\n", err)
	}
	return code
}

// acquire starts or reuses the environment and takes a lease on it; release drops the lease
// and stops the environment if the tests started it and no other lease remains.
func acquire(root string) (release func() error, err error) {
	leases := filepath.Join(root, ".slipway", "leases")
	if err := os.MkdirAll(leases, 0o755); err != nil {
		return nil, err
	}
	unlock, err := lockFile(filepath.Join(root, ".slipway", "leases.lock"))
	if err != nil {
		return nil, err
	}
	defer unlock()
	before, _ := Load(root)
	if err := run(root, "hack/env-up.sh"); err != nil {
		return nil, err
	}
	env, err := Load(root)
	if err != nil {
		return nil, err
	}
	marker := filepath.Join(root, ".slipway", "env", "started-by-tests")
	if before == nil || before.pids != env.pids {
		if err := os.WriteFile(marker, nil, 0o644); err != nil {
			return nil, err
		}
	}
	lease := filepath.Join(leases, strconv.Itoa(os.Getpid()))
	if err := os.WriteFile(lease, nil, 0o644); err != nil {
		return nil, err
	}
	return func() error {
		unlock, err := lockFile(filepath.Join(root, ".slipway", "leases.lock"))
		if err != nil {
			return err
		}
		defer unlock()
		_ = os.Remove(lease)
		if liveLeases(leases) > 0 || os.Getenv("SLIPWAY_KEEP_ENV") != "" {
			return nil
		}
		if _, err := os.Stat(marker); err != nil {
			return nil // started by hand: not ours to stop
		}
		return run(root, "hack/env-down.sh")
	}, nil
}

// liveLeases counts leases of test binaries still running, dropping those of dead ones.
func liveLeases(dir string) int {
	entries, _ := os.ReadDir(dir)
	live := 0
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err == nil && syscall.Kill(pid, 0) == nil {
			live++
			continue
		}
		_ = os.Remove(filepath.Join(dir, e.Name()))
	}
	return live
}

// lockFile takes an exclusive flock, waiting for other test binaries.
func lockFile(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

// run runs one of the hack/ scripts, its output on stderr so `go test -v` shows progress.
func run(root, script string) error {
	cmd := exec.Command("bash", filepath.Join(root, script))
	cmd.Dir = root
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w", script, err)
	}
	return nil
}

// Get returns the environment for a test, failing the test with directions when it is absent.
func Get(t testing.TB) *Env {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	env, err := Load(root)
	if err != nil {
		t.Fatalf("testenv: %v; %s (and call testenv.Main from TestMain)", err, howToGet)
	}
	return env
}

// Load reads the environment file under root.
func Load(root string) (*Env, error) {
	f, err := os.Open(filepath.Join(root, envFile))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", envFile, err)
	}
	defer f.Close()
	vars := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		line, ok := strings.CutPrefix(line, "export ")
		if !ok {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if ok {
			vars[k] = strings.Trim(v, `"`)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", envFile, err)
	}
	env := &Env{
		Root:              root,
		Kubeconfig:        vars["KUBECONFIG"],
		KubeconfigLimited: vars["SLIPWAY_KUBECONFIG_LIMITED"],
		Registry:          vars["SLIPWAY_REGISTRY"],
		RegistryAuth:      vars["SLIPWAY_REGISTRY_AUTH"],
		RegistryUser:      vars["SLIPWAY_REGISTRY_USER"],
		RegistryPassword:  vars["SLIPWAY_REGISTRY_PASSWORD"],
		BaseImage:         vars["SLIPWAY_BASE_IMAGE"],
		GitURL:            vars["SLIPWAY_GIT_URL"],
		GitRoot:           vars["SLIPWAY_GIT_ROOT"],
		GitUser:           vars["SLIPWAY_GIT_USER"],
		GitPassword:       vars["SLIPWAY_GIT_PASSWORD"],
		GiteaURL:          vars["SLIPWAY_GITEA_URL"],
		GiteaUser:         vars["SLIPWAY_GITEA_USER"],
		GiteaPassword:     vars["SLIPWAY_GITEA_PASSWORD"],
		GiteaToken:        vars["SLIPWAY_GITEA_TOKEN"],
		SMTPAddr:          vars["SLIPWAY_SMTP_ADDR"],
		SMTPUser:          vars["SLIPWAY_SMTP_USER"],
		SMTPPassword:      vars["SLIPWAY_SMTP_PASSWORD"],
		SMTPCA:            vars["SLIPWAY_SMTP_CA"],
		MailpitURL:        vars["SLIPWAY_MAILPIT_URL"],
		BuildkitHost:      vars["BUILDKIT_HOST"],
		Buildctl:          vars["SLIPWAY_BUILDCTL"],
		Kubectl:           vars["SLIPWAY_KUBECTL"],
		KwokStages:        vars["SLIPWAY_KWOK_STAGES"],
		RealNodeName:      vars["SLIPWAY_REAL_NODE"],
		RealNodeTaint:     vars["SLIPWAY_REAL_NODE_TAINT"],
		PostgresURL:       vars["SLIPWAY_POSTGRES_URL"],
		pids:              vars["SLIPWAY_ENV_PIDS"],
		stateDir:          vars["SLIPWAY_ENV_DIR"],
	}
	if env.Kubeconfig == "" || env.Registry == "" || env.GitURL == "" || env.BuildkitHost == "" || env.PostgresURL == "" {
		return nil, fmt.Errorf("%s is incomplete", envFile)
	}
	return env, nil
}

// PostgresURL returns the environment's PostgreSQL test database (SLIPWAY_POSTGRES_URL, from
// the process environment or .slipway/testenv.env), failing the test with directions when
// there is none. Unlike Get it needs no TestMain: unit tests of the store use it.
func PostgresURL(t testing.TB) string {
	t.Helper()
	if url := os.Getenv("SLIPWAY_POSTGRES_URL"); url != "" {
		return url
	}
	root, err := repoRoot()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	env, err := Load(root)
	if err != nil {
		t.Fatalf("testenv: no PostgreSQL: %v; %s", err, howToGet)
	}
	return env.PostgresURL
}

// PostgresSchema makes an empty schema in the environment's PostgreSQL test database,
// dropped when the test ends, and returns a DSN whose connections work in it: each test
// its own store, made in milliseconds. Fails the test with directions when there is no
// PostgreSQL.
func PostgresSchema(t testing.TB) string {
	t.Helper()
	base := PostgresURL(t)
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("SLIPWAY_POSTGRES_URL does not parse: %v", err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "t_" + hex.EncodeToString(b[:])
	if err := postgresExec(base, `CREATE SCHEMA `+schema); err != nil {
		t.Fatalf("testenv: PostgreSQL at SLIPWAY_POSTGRES_URL: %v; %s", err, howToGet)
	}
	t.Cleanup(func() { _ = postgresExec(base, `DROP SCHEMA `+schema+` CASCADE`) })
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func postgresExec(dsn, stmt string) error {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err = db.ExecContext(ctx, stmt)
	return err
}

// repoRoot finds the module root above the working directory (tests run in their package).
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// RestConfig returns the admin client configuration, with client-side rate limits raised
// so tests are not throttled to client-go's default of 5 requests per second.
func (e *Env) RestConfig(t testing.TB) *rest.Config {
	t.Helper()
	return restConfig(t, e.Kubeconfig)
}

// LimitedRestConfig returns the configuration of a user bound only to the `view` ClusterRole.
func (e *Env) LimitedRestConfig(t testing.TB) *rest.Config {
	t.Helper()
	return restConfig(t, e.KubeconfigLimited)
}

func restConfig(t testing.TB, path string) *rest.Config {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatalf("load kubeconfig %s: %v", path, err)
	}
	cfg.QPS, cfg.Burst = 200, 400
	return cfg
}

// Clientset returns an admin typed client.
func (e *Env) Clientset(t testing.TB) kubernetes.Interface {
	t.Helper()
	cs, err := kubernetes.NewForConfig(e.RestConfig(t))
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	return cs
}

// Namespace creates a namespace of the test's own and deletes it when the test ends.
func (e *Env) Namespace(t testing.TB) string {
	t.Helper()
	cs := e.Clientset(t)
	name := UniqueName(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"slipway.dev/test": "true"}}}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err := cs.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("delete namespace %s: %v", name, err)
		}
	})
	return name
}

// Repo creates an empty bare repository of the test's own on the Git server and returns its
// name and clone URL (credentials are in GitUser and GitPassword).
func (e *Env) Repo(t testing.TB) (name, url string) {
	t.Helper()
	name = UniqueName(t)
	dir := filepath.Join(e.GitRoot, name+".git")
	out, err := exec.Command("git", "init", "--bare", "--initial-branch=master", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("create bare repo %s: %v: %s", dir, err, out)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return name, e.GitURL + "/" + name + ".git"
}

var notDNS = regexp.MustCompile(`[^a-z0-9-]+`)

// UniqueName turns the test's name into a DNS-1123 label with a random suffix.
func UniqueName(t testing.TB) string {
	t.Helper()
	base := notDNS.ReplaceAllString(strings.ToLower(t.Name()), "-")
	base = strings.Trim(base, "-")
	if len(base) > 40 {
		base = strings.Trim(base[:40], "-")
	}
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("random name: %v", err)
	}
	return base + "-" + hex.EncodeToString(b)
}

// RealNode is where a pod runs for real: the node's name, the node selector that sends a pod
// there (the kwok nodes only pretend to run containers) and the toleration of its taint. It
// fails the test, saying how to get one, when the environment has no real node.
func (e *Env) RealNode(t testing.TB) (name string, selector map[string]string, toleration corev1.Toleration) {
	t.Helper()
	key, rest, ok := strings.Cut(e.RealNodeTaint, "=")
	value, effect, ok2 := strings.Cut(rest, ":")
	if e.RealNodeName == "" || !ok || !ok2 {
		t.Fatalf("testenv: the environment has no real node (SLIPWAY_REAL_NODE and SLIPWAY_REAL_NODE_TAINT in %s); "+
			"restart it with `make env-down env-up` (containerd, runc and containernetworking-plugins come from apt, "+
			"the kubelet is built into ~/.cache/slipway); its logs are .slipway/env/logs/kubelet.log and containerd.log", envFile)
	}
	return e.RealNodeName, map[string]string{"kubernetes.io/hostname": e.RealNodeName},
		corev1.Toleration{Key: key, Operator: corev1.TolerationOpEqual, Value: value, Effect: corev1.TaintEffect(effect)}
}
