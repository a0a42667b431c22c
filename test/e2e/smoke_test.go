package e2e

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	gitconfig "github.com/go-git/go-git/v5/config"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	bkclient "github.com/moby/buildkit/client"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/slipwayhq/slipway/test/testenv"
)

func TestSmokeDeploymentBecomesAvailableOnKwokNodes(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	cs := env.Clientset(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: "type=kwok"})
	if err != nil {
		t.Fatalf("list nodes: %v", err)
	}
	if len(nodes.Items) != 2 {
		t.Fatalf("want 2 kwok nodes, got %d", len(nodes.Items))
	}

	replicas := int32(2)
	labels := map[string]string{"app": "smoke"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "smoke", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: env.BaseImage}}},
			},
		},
	}
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create deployment: %v", err)
	}
	err = wait.PollUntilContextCancel(ctx, 250*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, "smoke", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, c := range d.Status.Conditions {
			if c.Type == appsv1.DeploymentAvailable && c.Status == corev1.ConditionTrue && d.Status.ReadyReplicas == replicas {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("deployment never became Available: %v", err)
	}
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=smoke"})
	if err != nil {
		t.Fatalf("list pods: %v", err)
	}
	for _, p := range pods.Items {
		if !strings.HasPrefix(p.Spec.NodeName, "kwok-node-") {
			t.Errorf("pod %s scheduled on %q, want a kwok node", p.Name, p.Spec.NodeName)
		}
	}
}

func TestSmokeLimitedKubeconfigIsDeniedWrites(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	limited, err := kubernetes.NewForConfig(env.LimitedRestConfig(t))
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	if _, err := limited.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{}); err != nil {
		t.Fatalf("the view role should allow listing ConfigMaps: %v", err)
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "denied", Namespace: ns}}
	_, err = limited.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) {
		t.Fatalf("create ConfigMap as the limited user: want Forbidden, got %v", err)
	}
	_, err = limited.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
	if !apierrors.IsForbidden(err) {
		t.Fatalf("list Secrets as the limited user: want Forbidden, got %v", err)
	}
}

func TestSmokeRegistryPushReadsBackByDigest(t *testing.T) {
	env := testenv.Get(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatalf("random image: %v", err)
	}
	want, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}

	push := func(registry string, auth authn.Authenticator) error {
		ref, err := name.ParseReference(registry+"/smoke/"+testenv.UniqueName(t)+":1", name.Insecure)
		if err != nil {
			t.Fatalf("parse reference: %v", err)
		}
		if err := remote.Write(ref, img, remote.WithContext(ctx), remote.WithAuth(auth)); err != nil {
			return err
		}
		got, err := remote.Image(ref.Context().Digest(want.String()), remote.WithContext(ctx), remote.WithAuth(auth))
		if err != nil {
			t.Fatalf("pull %s by digest: %v", ref, err)
		}
		if d, _ := got.Digest(); d != want {
			t.Fatalf("pulled digest %s, pushed %s", d, want)
		}
		return nil
	}

	if err := push(env.Registry, authn.Anonymous); err != nil {
		t.Fatalf("push to %s: %v", env.Registry, err)
	}
	good := &authn.Basic{Username: env.RegistryUser, Password: env.RegistryPassword}
	if err := push(env.RegistryAuth, good); err != nil {
		t.Fatalf("push to %s with the right credentials: %v", env.RegistryAuth, err)
	}
	err = push(env.RegistryAuth, &authn.Basic{Username: env.RegistryUser, Password: "wrong"})
	var terr *transport.Error
	if !errors.As(err, &terr) || terr.StatusCode != http.StatusUnauthorized {
		t.Fatalf("push with a wrong password: want 401 Unauthorized, got %v", err)
	}
	if err := push(env.RegistryAuth, authn.Anonymous); err == nil {
		t.Fatal("anonymous push to the auth registry succeeded")
	}
}

func TestSmokeGitServerServesPushedRepo(t *testing.T) {
	env := testenv.Get(t)
	_, url := env.Repo(t)
	work := t.TempDir()
	gitCmd := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
			"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com", "GIT_TERMINAL_PROMPT=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	gitCmd("init", "--initial-branch=master", ".")
	if err := os.WriteFile(filepath.Join(work, "hello.txt"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	gitCmd("add", ".")
	gitCmd("commit", "-m", "first")
	authURL := strings.Replace(url, "http://", "http://"+env.GitUser+":"+env.GitPassword+"@", 1)
	gitCmd("push", authURL, "master")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dst := t.TempDir()
	_, err := git.PlainCloneContext(ctx, dst, false, &git.CloneOptions{
		URL:  url,
		Auth: &githttp.BasicAuth{Username: env.GitUser, Password: env.GitPassword},
	})
	if err != nil {
		t.Fatalf("clone %s with go-git: %v", url, err)
	}
	got, err := os.ReadFile(filepath.Join(dst, "hello.txt"))
	if err != nil || string(got) != "hello\n" {
		t.Fatalf("cloned hello.txt = %q, %v", got, err)
	}

	_, err = git.PlainCloneContext(ctx, t.TempDir(), false, &git.CloneOptions{
		URL:  url,
		Auth: &githttp.BasicAuth{Username: env.GitUser, Password: "wrong"},
	})
	if err == nil {
		t.Fatal("clone with a wrong password succeeded")
	}
}

func TestSmokeBuildkitListsAWorker(t *testing.T) {
	env := testenv.Get(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := bkclient.New(ctx, env.BuildkitHost)
	if err != nil {
		t.Fatalf("connect to buildkitd at %s: %v", env.BuildkitHost, err)
	}
	defer c.Close()
	workers, err := c.ListWorkers(ctx)
	if err != nil {
		t.Fatalf("list BuildKit workers: %v", err)
	}
	if len(workers) == 0 {
		t.Fatal("buildkitd has no workers")
	}
	var platforms []string
	for _, p := range workers[0].Platforms {
		platforms = append(platforms, p.OS+"/"+p.Architecture)
	}
	if !strings.Contains(strings.Join(platforms, ","), "linux/amd64") {
		t.Fatalf("worker platforms %v lack linux/amd64", platforms)
	}
}

func TestSmokeGitServerCountsListingsFetchesAndPushes(t *testing.T) {
	env := testenv.Get(t)
	name, url := env.Repo(t)
	if got := env.GitStats(t, name); got != (testenv.GitRepoStats{}) {
		t.Fatalf("a new repository has stats %+v", got)
	}
	w := newGitWork(t, env, url)
	w.commit("first", map[string]string{"a.txt": "a\n"})
	w.push("master")
	after := env.GitStats(t, name)
	if after.Pushes != 1 || after.Fetches != 0 {
		t.Fatalf("after one push: %+v, want 1 push and no fetch", after)
	}

	// git ls-remote (protocol v2: capabilities, then ls-refs) is one listing, no fetch.
	w.git("ls-remote", w.pushURL)
	got := env.GitStats(t, name)
	if got.Listings != after.Listings+1 || got.Fetches != after.Fetches || got.Pushes != after.Pushes {
		t.Fatalf("git ls-remote: stats went from %+v to %+v, want one more listing only", after, got)
	}

	// go-git's remote listing (protocol v0) is one listing too.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	remote := git.NewRemote(nil, &gitconfig.RemoteConfig{Name: "origin", URLs: []string{url}})
	if _, err := remote.ListContext(ctx, &git.ListOptions{Auth: &githttp.BasicAuth{Username: env.GitUser, Password: env.GitPassword}}); err != nil {
		t.Fatalf("go-git list %s: %v", url, err)
	}
	listed := env.GitStats(t, name)
	if listed.Listings != got.Listings+1 || listed.Fetches != got.Fetches {
		t.Fatalf("go-git list: stats went from %+v to %+v, want one more listing only", got, listed)
	}

	// A clone wants objects: one fetch.
	if _, err := git.PlainCloneContext(ctx, t.TempDir(), true, &git.CloneOptions{
		URL: url, Auth: &githttp.BasicAuth{Username: env.GitUser, Password: env.GitPassword},
	}); err != nil {
		t.Fatalf("clone %s: %v", url, err)
	}
	cloned := env.GitStats(t, name)
	if cloned.Fetches != listed.Fetches+1 {
		t.Fatalf("clone: stats went from %+v to %+v, want one more fetch", listed, cloned)
	}
}
