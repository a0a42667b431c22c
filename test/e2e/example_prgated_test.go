package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/slipwayhq/slipway/test/testenv"
)

// examples/pr-gated-prod runs as written. Its slipway.yaml maps the example's names onto
// the environment: the clusters staging and local onto the environment's cluster, prod-east
// and prod-west onto two clusters of their own (the example deploys release shop into
// namespace shop of each); hub.ecns.io, and Docker Hub for the Dockerfile's FROM
// nginx:1.27-alpine, onto the local registry through registry.mirrors; the repository onto a
// Gitea organization with team sre. A push to main builds, deploys staging, and stops at the
// production gate (no pull request: it waits for ops-lead); ops-lead's approval deploys both
// regions (into namespace shop, which production clusters have; staging creates its own),
// with the Stripe key read from the Kubernetes Secret the example names.
func TestPRGatedProdExampleRunsAsWritten(t *testing.T) {
	env := testenv.Get(t)
	ctx := t.Context()
	main := env.Clientset(t)
	east, west := env.Cluster(t, "prod-east"), env.Cluster(t, "prod-west")

	// The Secret the example reads (cluster local, namespace slipway-secrets), and a clean
	// namespace shop for staging on the environment's cluster.
	const stripe = "sk_test_e2e_0123456789abcdef"
	for _, ns := range []string{"slipway-secrets", "shop"} {
		if err := main.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
	}
	waitGone := func(ns string) {
		t.Helper()
		for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(250 * time.Millisecond) {
			if _, err := main.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); apierrors.IsNotFound(err) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("namespace %s of an earlier run is still terminating", ns)
			}
		}
	}
	waitGone("slipway-secrets")
	waitGone("shop")
	t.Cleanup(func() {
		for _, ns := range []string{"slipway-secrets", "shop"} {
			_ = main.CoreV1().Namespaces().Delete(t.Context(), ns, metav1.DeleteOptions{})
		}
	})
	if _, err := main.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "slipway-secrets"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := main.CoreV1().Secrets("slipway-secrets").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "shop-stripe"},
		StringData: map[string]string{"key": stripe}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// Docker Hub's nginx:1.27-alpine, as the mirror serves it: the environment's base image.
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

	// The repository: the example's files as they are, on main of a Gitea organization's
	// repository with team sre.
	admin := env.Gitea(t)
	owner := admin.CreateUser(t, "owner")
	gitea := admin.As(owner)
	org := gitea.CreateOrg(t, "shop")
	gitea.CreateTeam(t, org, "sre", admin.CreateUser(t, "sre").Name)
	repo := gitea.CreateOrgRepo(t, org, testenv.UniqueName(t))
	w := &gitWork{t: t, dir: t.TempDir(), pushURL: gitea.PushURL(org, repo.Name)}
	w.git("init", "--initial-branch=main", ".")
	files := map[string]string{}
	for p, b := range exampleFiles(t, env, "pr-gated-prod") {
		files[p] = string(b)
	}
	head := w.commit("the example as written", files)
	w.push("main")

	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "forge-token")
	if err := os.WriteFile(tokenFile, []byte(owner.Token), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfigFor(t, env, dir, repo.Name, gitea.CloneURL(org, repo.Name), owner.Name, owner.Token,
		fmt.Sprintf("poll: 1s\nforge: {type: gitea, url: %q, tokenFile: %s}\n"+
			"policy: {clusters: [staging, prod-*], namespaces: [shop], registries: [hub.ecns.io], push: [hub.ecns.io/shop],\n"+
			"  secrets: {kubernetes: [{cluster: local, namespace: slipway-secrets, name: shop-stripe}]}}", gitea.URL, tokenFile))
	text, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	clusters := fmt.Sprintf("  - {name: staging, kubeconfig: %s}\n  - {name: local, kubeconfig: %s}\n"+
		"  - {name: prod-east, kubeconfig: %s}\n  - {name: prod-west, kubeconfig: %s}\nregistry:", env.Kubeconfig, env.Kubeconfig, east, west)
	conf := strings.Replace(strings.Replace(string(text), "\n    branch: master\n", "\n    branch: main\n", 1), "\nregistry:", "\n"+clusters, 1)
	conf += fmt.Sprintf("  mirrors:\n    - {registry: hub.ecns.io, endpoint: %q}\n    - {registry: docker.io, endpoint: %q}\n", env.Registry, env.Registry)
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	server, _ := withAPI(t, cfg)
	opsLead, opsEntry := newIdentity(t, dir, "ops-lead", "approver")
	if err := os.WriteFile(filepath.Join(dir, "api-users.yaml"), []byte("users:\n"+opsEntry), 0o600); err != nil {
		t.Fatal(err)
	}
	appendConfig(t, cfg, "apiTokensFile: api-users.yaml\n")
	if out, code := slipway(t, "validate", "--config", cfg, filepath.Join(env.Root, "examples", "pr-gated-prod")); code != 0 {
		t.Fatalf("the example does not validate against the test's slipway.yaml:\n%s", out)
	}
	d := startAPIServe(t, cfg, server, opsLead)

	// Built, pushed (through the mirror), staging deployed; production waits for ops-lead.
	h := waitPipelineHistory(t, cfg, "shop", 5*time.Minute, "run 1 awaiting approval", func(h []historyEntry) bool {
		return len(h) == 1 && (h[0].Status == "awaiting_approval" || h[0].Status == "failed")
	})
	want := fmt.Sprintf("stage production: commit %s was pushed directly to main, not through a pull request; "+
		"stage production waits for a manual approval from ops-lead (slipway approve %s/shop 1)", head[:7], repo.Name)
	if h[0].Status != "awaiting_approval" || h[0].Reason != want {
		t.Fatalf("run 1: %s %q; want awaiting_approval %q", h[0].Status, h[0].Reason, want)
	}
	const image = "hub.ecns.io/shop/shop:1.4.1"
	pushed, _ := name.NewTag(env.Registry+"/shop/shop:1.4.1", name.Insecure)
	if _, err := remote.Head(pushed, remote.WithContext(ctx)); err != nil {
		t.Fatalf("%s is not at the mirror endpoint: %v", image, err)
	}
	deployment := func(cs kubernetes.Interface) (image string, labels map[string]string, err error) {
		dep, err := cs.AppsV1().Deployments("shop").Get(ctx, "shop", metav1.GetOptions{})
		if err != nil {
			return "", nil, err
		}
		return dep.Spec.Template.Spec.Containers[0].Image, dep.Labels, nil
	}
	if img, labels, err := deployment(main); err != nil || img != image || labels["region"] != "staging" {
		t.Fatalf("staging's Deployment: image %q labels %v, %v", img, labels, err)
	}
	clientOf := func(kubeconfig string) kubernetes.Interface {
		rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			t.Fatal(err)
		}
		return kubernetes.NewForConfigOrDie(rc)
	}
	eastCS, westCS := clientOf(east), clientOf(west)
	for region, cs := range map[string]kubernetes.Interface{"east": eastCS, "west": westCS} {
		if _, _, err := deployment(cs); !apierrors.IsNotFound(err) {
			t.Fatalf("prod-%s has the Deployment before the approval: %v", region, err)
		}
		// The production tasks do not create their namespace: the platform team has.
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	// ops-lead approves: both regions deploy, with the key from the Secret.
	out, code := slipway(t, "approve", "shop", "1", "--comment", "ship it", "--wait", "--server", server, "--token-file", opsLead)
	if code != 0 || !strings.Contains(out, "#1 succeeded") {
		t.Fatalf("ops-lead's approval: exit %d\n%s", code, out)
	}
	for region, cs := range map[string]kubernetes.Interface{"east": eastCS, "west": westCS} {
		if img, labels, err := deployment(cs); err != nil || img != image || labels["region"] != region {
			t.Errorf("prod-%s's Deployment: image %q labels %v, %v", region, img, labels, err)
		}
		sec, err := cs.CoreV1().Secrets("shop").Get(ctx, "shop-stripe", metav1.GetOptions{})
		if err != nil || string(sec.Data["key"]) != stripe {
			t.Errorf("prod-%s's Secret shop-stripe: %v", region, err)
		}
		if _, err := cs.AutoscalingV2().HorizontalPodAutoscalers("shop").Get(ctx, "shop", metav1.GetOptions{}); err != nil {
			t.Errorf("prod-%s's HorizontalPodAutoscaler: %v", region, err)
		}
	}
	d.stop(t)
	if strings.Contains(d.output(), stripe) {
		t.Errorf("the daemon's log shows the Stripe key")
	}
	var gate *gateAuditEntry
	for _, e := range gateAudit(t, cfg, "shop") {
		if e.Action == "gate-decision" && e.BuildID == 1 {
			gate = &e
		}
	}
	if gate == nil || !gate.Evidence.Allow || gate.Evidence.Rule != "manual" || gate.Reason != "stage production approved by ops-lead" {
		t.Errorf("the gate's decision in the audit log: %+v", gate)
	}
}
