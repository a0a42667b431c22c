package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/slipwayhq/slipway/test/testenv"
)

// policyConfig is a repository policy granting cluster e2e, the namespaces given and the
// environment's registry, with a CEL rule against LoadBalancer Services.
func policyConfig(env *testenv.Env, trusted bool, namespaces ...string) string {
	return fmt.Sprintf(`poll: 1s
policy:
  clusters: [e2e]
  namespaces: [%s]
  registries: [%s]
  trusted: %t
  rules:
    - name: no-loadbalancer
      expression: "object.kind != 'Service' || !has(object.spec.type) || object.spec.type != 'LoadBalancer'"
      message: LoadBalancer Services are not allowed; publish through the shared ingress`,
		strings.Join(namespaces, ", "), env.Registry, trusted)
}

// Each denied deploy fails its run naming the rule, the object and its file and document,
// and changes nothing in the cluster: not the denied object, not the ConfigMap next to it
// in the same task, and for a pipeline whose second stage targets a namespace not granted,
// not the first stage's objects either.
func TestPolicyDeniesBeforeAnythingIsApplied(t *testing.T) {
	env := testenv.Get(t)
	ns, elsewhere := env.Namespace(t), env.Namespace(t)
	// A namespace granted but not there yet: a denied chart task must not create it.
	chartNS := ns + "-chart"
	t.Cleanup(func() {
		_ = env.Clientset(t).CoreV1().Namespaces().Delete(context.Background(), chartNS, metav1.DeleteOptions{})
	})
	cs := env.Clientset(t)
	repo, url := newWorkRepo(t, env)
	repoName := strings.TrimSuffix(url[strings.LastIndex(url, "/")+1:], ".git")
	cfg := writeConfigFor(t, env, t.TempDir(), repoName, url, env.GitUser, env.GitPassword, policyConfig(env, false, ns, chartNS))

	oneTask := func(manifests string) map[string][]byte {
		return map[string][]byte{
			".pipeline.yaml": []byte("name: guarded\nstages:\n- name: deploy\n  tasks:\n  - name: app\n    type: deploy-yaml\n    path: app.yaml\n    cluster: e2e\n    namespace: " + ns + "\n    wait: 30s\n"),
			"app.yaml":       []byte(manifests),
		}
	}
	settings := func(name string) string {
		return "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: " + name + "}\ndata: {mode: gitops}\n---\n"
	}
	crb := "slipway-e2e-" + ns
	tests := []struct {
		name   string
		files  map[string][]byte
		want   []string
		absent func(context.Context) []error
	}{
		{
			name: "LoadBalancer Service denied by a CEL rule",
			files: oneTask(settings("lb-settings") + `apiVersion: v1
kind: Service
metadata: {name: front}
spec: {type: LoadBalancer, selector: {app: web}, ports: [{port: 80}]}
`),
			want: []string{"rule no-loadbalancer: Service/" + ns + "/front (app.yaml, document 2): LoadBalancer Services are not allowed; publish through the shared ingress"},
			absent: func(ctx context.Context) []error {
				_, e1 := cs.CoreV1().ConfigMaps(ns).Get(ctx, "lb-settings", metav1.GetOptions{})
				_, e2 := cs.CoreV1().Services(ns).Get(ctx, "front", metav1.GetOptions{})
				return []error{e1, e2}
			},
		},
		{
			name: "ClusterRoleBinding from an untrusted repository",
			files: oneTask(settings("crb-settings") + `apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: ` + crb + `}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}
subjects: [{kind: ServiceAccount, name: default, namespace: ` + ns + `}]
`),
			want: []string{"rule trusted-kinds: ClusterRoleBinding/" + crb + " (app.yaml, document 2): ClusterRoleBinding is cluster-scoped RBAC; repository " + repoName + " is not trusted"},
			absent: func(ctx context.Context) []error {
				_, e1 := cs.CoreV1().ConfigMaps(ns).Get(ctx, "crb-settings", metav1.GetOptions{})
				_, e2 := cs.RbacV1().ClusterRoleBindings().Get(ctx, crb, metav1.GetOptions{})
				return []error{e1, e2}
			},
		},
		{
			name: "image from a registry not granted",
			files: oneTask(settings("image-settings") + `apiVersion: apps/v1
kind: Deployment
metadata: {name: miner}
spec:
  selector: {matchLabels: {app: miner}}
  template:
    metadata: {labels: {app: miner}}
    spec:
      initContainers: [{name: setup, image: ` + env.BaseImage + `}]
      containers: [{name: miner, image: "quay.io/evil/miner:1"}]
`),
			want: []string{`rule allowed-registries: Deployment/` + ns + `/miner (app.yaml, document 2): container miner "quay.io/evil/miner:1": quay.io/evil/miner is not granted to repository ` + repoName},
			absent: func(ctx context.Context) []error {
				_, e1 := cs.CoreV1().ConfigMaps(ns).Get(ctx, "image-settings", metav1.GetOptions{})
				_, e2 := cs.AppsV1().Deployments(ns).Get(ctx, "miner", metav1.GetOptions{})
				return []error{e1, e2}
			},
		},
		{
			name: "second stage targets a namespace not granted",
			files: map[string][]byte{
				".pipeline.yaml": []byte(`name: guarded
stages:
- name: staging
  tasks:
  - {name: stage, type: deploy-yaml, path: stage.yaml, cluster: e2e, namespace: ` + ns + `, wait: 30s}
- name: production
  tasks:
  - {name: prod, type: deploy-yaml, path: prod.yaml, cluster: e2e, namespace: ` + elsewhere + `, wait: 30s}
`),
				"stage.yaml": []byte(settings("stage-settings")),
				"prod.yaml":  []byte(settings("prod-settings")),
			},
			want: []string{
				"policy denied the run (1 denial), nothing of it was applied:",
				`rule allowed-namespaces: task prod deploys to namespace "` + elsewhere + `", which is not granted to repository ` + repoName,
				repoName + "@", ".pipeline.yaml:8:",
			},
			absent: func(ctx context.Context) []error {
				_, e1 := cs.CoreV1().ConfigMaps(ns).Get(ctx, "stage-settings", metav1.GetOptions{})
				_, e2 := cs.CoreV1().ConfigMaps(elsewhere).Get(ctx, "prod-settings", metav1.GetOptions{})
				return []error{e1, e2}
			},
		},
		{
			name: "chart rendering a LoadBalancer Service",
			files: map[string][]byte{
				".pipeline.yaml":            []byte("name: guarded\nstages:\n- name: deploy\n  tasks:\n  - {name: release, type: deploy-chart, chartDir: chart, release: guarded, cluster: e2e, namespace: " + chartNS + ", createNamespace: true, wait: 30s}\n"),
				"chart/Chart.yaml":          []byte("apiVersion: v2\nname: guarded\nversion: 1.0.0\n"),
				"chart/templates/conf.yaml": []byte(strings.TrimSuffix(settings("chart-settings"), "---\n")),
				"chart/templates/svc.yaml":  []byte("apiVersion: v1\nkind: Service\nmetadata: {name: {{ .Release.Name }}-front}\nspec: {type: LoadBalancer, ports: [{port: 80}]}\n"),
			},
			want: []string{"rule no-loadbalancer: Service/" + chartNS + "/guarded-front (guarded/templates/svc.yaml, document 1): LoadBalancer Services are not allowed"},
			absent: func(ctx context.Context) []error {
				_, e1 := cs.CoreV1().Namespaces().Get(ctx, chartNS, metav1.GetOptions{})
				return []error{e1}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			repo.commit(tt.name, tt.files)
			out, code := slipway(t, "run", "--config", cfg, "--repo", repoName)
			if code == 0 {
				t.Fatalf("the run succeeded:\n%s", out)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if strings.Contains(out, "dry-run") || strings.Contains(out, " created") {
				t.Errorf("something reached the cluster:\n%s", out)
			}
			for _, err := range tt.absent(ctx) {
				if !apierrors.IsNotFound(err) {
					t.Errorf("an object of the denied run is on the cluster (get: %v)", err)
				}
			}
		})
	}

	// The same ClusterRoleBinding deploys once the repository is trusted.
	t.Run("ClusterRoleBinding from a trusted repository", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		t.Cleanup(func() { deleteClusterRoleBinding(t, cs, crb) })
		trusted := writeConfigFor(t, env, t.TempDir(), repoName, url, env.GitUser, env.GitPassword, policyConfig(env, true, ns))
		repo.commit("trusted", tests[1].files)
		out, code := slipway(t, "run", "--config", trusted, "--repo", repoName)
		if code != 0 {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		if !strings.Contains(out, "policy allowed all 2 objects") {
			t.Errorf("output:\n%s", out)
		}
		if _, err := cs.RbacV1().ClusterRoleBindings().Get(ctx, crb, metav1.GetOptions{}); err != nil {
			t.Errorf("ClusterRoleBinding of the trusted repository: %v", err)
		}
	})
}

func deleteClusterRoleBinding(t *testing.T, cs kubernetes.Interface, name string) {
	err := cs.RbacV1().ClusterRoleBindings().Delete(context.Background(), name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Errorf("clean up ClusterRoleBinding %s: %v", name, err)
	}
}
