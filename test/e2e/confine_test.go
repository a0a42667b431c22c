package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/slipwayhq/slipway/test/testenv"
)

// hostileRepo is a repository on the Git server with its own slipway.yaml (everything
// granted, plus repoExtra such as limits), holding files and symlinks (name -> target).
func hostileRepo(t *testing.T, env *testenv.Env, repoExtra string, files map[string][]byte, links map[string]string) (repo *workRepo, name, cfg string) {
	t.Helper()
	repo, name, _, cfg = hostileRepoURL(t, env, repoExtra, files, links)
	return repo, name, cfg
}

func hostileRepoURL(t *testing.T, env *testenv.Env, repoExtra string, files map[string][]byte, links map[string]string) (repo *workRepo, name, url, cfg string) {
	t.Helper()
	repo, url = newWorkRepo(t, env)
	name = strings.TrimSuffix(url[strings.LastIndex(url, "/")+1:], ".git")
	cfg = writeConfigFor(t, env, t.TempDir(), name, url, env.GitUser, env.GitPassword, "poll: 1s\n"+repoExtra)
	for link, target := range links {
		p := filepath.Join(repo.dir, link)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	repo.commit("hostile", files)
	return repo, name, url, cfg
}

// measured runs the CLI like slipway() and also returns its wall time and, when
// /usr/bin/time is there, its peak RSS (0 otherwise). The rusage of a child of this test
// binary would not do: a child started with vfork carries the parent's peak over exec.
func measured(t *testing.T, args ...string) (out string, code int, took time.Duration, rssKiB int64) {
	t.Helper()
	const mark = "slipway-maxrss-kib="
	cmd := exec.Command(slipwayBinary(t), args...)
	if _, err := os.Stat("/usr/bin/time"); err == nil {
		cmd = exec.Command("/usr/bin/time", append([]string{"-f", mark + "%M", slipwayBinary(t)}, args...)...)
	}
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	start := time.Now()
	err := cmd.Run()
	took = time.Since(start)
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run slipway %s: %v", strings.Join(args, " "), err)
	}
	var lines []string
	for _, l := range strings.Split(buf.String(), "\n") {
		switch {
		case strings.HasPrefix(l, mark):
			rssKiB, _ = strconv.ParseInt(strings.TrimPrefix(l, mark), 10, 64)
		case strings.HasPrefix(l, "Command exited with non-zero status"):
		default:
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n"), code, took, rssKiB
}

// refusedBoth checks that `slipway validate` on the working copy and `slipway run` of the
// pushed commit both refuse, each saying every one of want.
func refusedBoth(t *testing.T, repo *workRepo, name, cfg string, want ...string) {
	t.Helper()
	for _, args := range [][]string{
		{"validate", "--config", cfg, "--repository", name, repo.dir},
		{"run", "--config", cfg, "--repo", name},
	} {
		out, code, took, rss := measured(t, args...)
		t.Logf("slipway %s: exit %d in %v, peak RSS %d KiB", args[0], code, took.Round(time.Millisecond), rss)
		if code == 0 {
			t.Errorf("slipway %s succeeded:\n%s", args[0], out)
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("slipway %s output lacks %q:\n%s", args[0], w, out)
			}
		}
		if strings.Contains(out, "dry-run") || strings.Contains(out, " created") {
			t.Errorf("slipway %s: something reached the cluster:\n%s", args[0], out)
		}
	}
}

func deployFolder(ns string) []byte {
	return []byte("name: confined\nstages:\n- name: deploy\n  tasks:\n  - {name: app, type: deploy-yaml, path: k8s, cluster: e2e, namespace: " + ns + ", wait: 30s}\n")
}

func configMap(name string) []byte {
	return []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: " + name + "}\ndata: {mode: gitops}\n")
}

// A repository whose manifest folder holds a dangling symlink or a chain of symlinks that
// leaves the checkout (towards a path that does not exist yet) is refused the same way by
// `slipway validate` and by a run, naming the link, and nothing of it is applied: not even
// the ConfigMap beside the link.
func TestHostileRepositorySymlinksAreRefused(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	cs := env.Clientset(t)
	for _, tc := range []struct {
		name  string
		links map[string]string
		want  string
	}{
		{"dangling", map[string]string{"k8s/b.yaml": "../later/b.yaml"},
			`symlink "k8s/b.yaml" is dangling: "../later/b.yaml" does not exist in the repository`},
		{"chained", map[string]string{"k8s/b.yaml": "../hop/b.yaml", "hop": "self/../neighbour-run", "self": "."},
			`"k8s/b.yaml": symlink "hop" points outside the repository ("self/../neighbour-run")`},
		{"absolute", map[string]string{"k8s/b.yaml": "/etc/passwd"},
			`symlink "k8s/b.yaml" points to the absolute path "/etc/passwd"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cm := "confine-" + tc.name
			repo, name, cfg := hostileRepo(t, env, "", map[string][]byte{
				".pipeline.yaml": deployFolder(ns),
				"k8s/a.yaml":     configMap(cm),
			}, tc.links)
			refusedBoth(t, repo, name, cfg, tc.want)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, cm, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Errorf("ConfigMap %s of the refused commit: get %v, want not found", cm, err)
			}
		})
	}
}

// A 2 MiB pipeline file is refused before it is parsed, by validate and by a run, naming
// the file, the limit and the setting. Time and peak RSS are logged; that the file is never
// read in full is asserted by pipeline.TestPipelineFileSizeIsCheckedBeforeReading.
func TestHostileRepositoryPipelineFileTooLarge(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	big := append(deployFolder(ns), bytes.Repeat([]byte("# padding to make the file large\n"), (2<<20)/33+1)...)
	repo, name, cfg := hostileRepo(t, env, "", map[string][]byte{".pipeline.yaml": big, "k8s/a.yaml": configMap("big")}, nil)
	refusedBoth(t, repo, name, cfg,
		".pipeline.yaml:1:1: file is larger than the limit of 1 MiB (the repository's limits.pipelineFileSize in slipway.yaml raises it)")
}

// 200 pipelines in one file are refused by default and accepted when slipway.yaml grants
// the repository more.
func TestHostileRepositoryPipelinesPerFile(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	var b bytes.Buffer
	for i := range 200 {
		fmt.Fprintf(&b, "---\nname: p%d\nstages:\n- name: deploy\n  tasks:\n  - {name: app, type: deploy-yaml, path: k8s, cluster: e2e, namespace: %s, wait: 30s}\n", i, ns)
	}
	files := map[string][]byte{".pipeline.yaml": b.Bytes(), "k8s/a.yaml": configMap("many")}
	repo, name, url, cfg := hostileRepoURL(t, env, "", files, nil)
	refusedBoth(t, repo, name, cfg,
		"more than 100 pipelines in one file, the limit (the repository's limits.pipelinesPerFile in slipway.yaml raises it)")

	granted := writeConfigFor(t, env, t.TempDir(), name, url, env.GitUser, env.GitPassword, "poll: 1s\nlimits: {pipelinesPerFile: 250}")
	if out, code := slipway(t, "validate", "--config", granted, "--repository", name, repo.dir); code != 0 {
		t.Fatalf("validate with 250 granted: exit %d\n%s", code, out)
	}
	if out, code := slipway(t, "run", "--config", granted, "--repo", name, "--pipeline", "p199"); code != 0 {
		t.Fatalf("run of p199 with 250 granted: exit %d\n%s", code, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := env.Clientset(t).CoreV1().ConfigMaps(ns).Get(ctx, "many", metav1.GetOptions{}); err != nil {
		t.Errorf("ConfigMap of the granted run: %v", err)
	}
}

// A schedule ticking every second is refused (the default minimum is a minute).
func TestHostileRepositoryCronEverySecond(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	pl := "name: hammer\ntriggers: {schedules: [{cron: '@every 1s'}]}\nstages:\n- name: deploy\n  tasks:\n  - {name: app, type: deploy-yaml, path: k8s, cluster: e2e, namespace: " + ns + ", wait: 30s}\n"
	repo, name, cfg := hostileRepo(t, env, "", map[string][]byte{".pipeline.yaml": []byte(pl), "k8s/a.yaml": configMap("hammer")}, nil)
	refusedBoth(t, repo, name, cfg,
		`.pipeline.yaml:2:31: cron "@every 1s" ticks every 1s, more often than the limit of once per 1m0s (the repository's limits.minCronInterval in slipway.yaml lowers it)`)
}
