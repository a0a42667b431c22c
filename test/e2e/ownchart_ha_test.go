package e2e

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/action"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/slipwayhq/slipway/test/testenv"
)

// TestOwnChartInstallsTwoReplicas installs deploy/chart with replicas: 2 and config.ha (the
// docs/install.md#several-replicas values, with the Leases in a namespace of their own) into
// the control plane, and checks what it made: a Deployment of 2 replicas rolling one at a
// time (maxUnavailable 0), preferring different nodes (its two pods land on the two kwok
// nodes), each pod's identity from POD_NAME; the Lease Role and RoleBinding in
// ha.namespace; a PodDisruptionBudget over the pods. Then RBAC, as the service account:
// Leases in ha.namespace and nothing else there, no Secrets outside what the values grant.
// The pods run on the kwok nodes (simulated): the environment's PostgreSQL listens on the
// machine's loopback, which pods on the real node cannot reach, so the replicas' membership
// is TestReplicasShareRepositoriesAndSchedules's (processes on the machine).
func TestOwnChartInstallsTwoReplicas(t *testing.T) {
	env := testenv.Get(t)
	cs := env.Clientset(t)
	ns, leases, shop, other := env.Namespace(t), env.Namespace(t), env.Namespace(t), env.Namespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, err := cs.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "slipway-store"},
		StringData: map[string]string{"password": "unused", "key": strings.Repeat("k", 32), "ui-session-key": strings.Repeat("s", 32)}},
		metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	values := map[string]any{
		"replicas":    2,
		"image":       map[string]any{"repository": env.Registry + "/own-chart/slipway", "tag": "unused"},
		"persistence": map[string]any{"enabled": false},
		"config": map[string]any{
			"store":             "postgres://slipway@postgres.db:5432/slipway?sslmode=require",
			"storePasswordFile": "/etc/slipway/secrets/store/password",
			"storeKeyFiles":     []any{"/etc/slipway/secrets/store/key"},
			"uiSessionKeyFile":  "/etc/slipway/secrets/store/ui-session-key",
			"ha":                map[string]any{"cluster": "here", "namespace": leases},
			"clusters":          []any{map[string]any{"name": "here", "inCluster": true}},
		},
		"secretMounts":        []any{map[string]any{"secretName": "slipway-store", "mountPath": "/etc/slipway/secrets/store"}},
		"podDisruptionBudget": map[string]any{"enabled": true, "maxUnavailable": 1},
		"rbac":                map[string]any{"deployNamespaces": []any{shop}},
	}
	cfg := installOwnChart(ctx, t, env, ns, values)
	defer func() {
		if _, err := action.NewUninstall(cfg).Run("slipway"); err != nil {
			t.Errorf("helm uninstall: %v", err)
		}
	}()

	dep, err := cs.AppsV1().Deployments(ns).Get(ctx, "slipway", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 2 {
		t.Errorf("Deployment replicas %v, want 2", dep.Spec.Replicas)
	}
	if s := dep.Spec.Strategy; s.Type != appsv1.RollingUpdateDeploymentStrategyType || s.RollingUpdate == nil ||
		s.RollingUpdate.MaxUnavailable == nil || s.RollingUpdate.MaxUnavailable.IntValue() != 0 {
		t.Errorf("Deployment strategy %+v, want RollingUpdate with maxUnavailable 0", s)
	}
	pod := dep.Spec.Template.Spec
	if a := pod.Affinity; a == nil || a.PodAntiAffinity == nil || len(a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) != 1 ||
		a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm.TopologyKey != "kubernetes.io/hostname" {
		t.Errorf("pod affinity %+v, want anti-affinity by kubernetes.io/hostname", pod.Affinity)
	}
	podName := false
	for _, e := range pod.Containers[0].Env {
		if e.Name == "POD_NAME" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name" {
			podName = true
		}
	}
	if !podName {
		t.Errorf("the container has no POD_NAME from metadata.name: %+v", pod.Containers[0].Env)
	}
	role, err := cs.RbacV1().Roles(leases).Get(ctx, "slipway-leases", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the Lease Role in ha.namespace %s: %v", leases, err)
	}
	if len(role.Rules) != 1 || strings.Join(role.Rules[0].Resources, ",") != "leases" || strings.Join(role.Rules[0].APIGroups, ",") != "coordination.k8s.io" {
		t.Errorf("the Lease Role's rules %+v, want leases only", role.Rules)
	}
	rb, err := cs.RbacV1().RoleBindings(leases).Get(ctx, "slipway-leases", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rb.Subjects) != 1 || rb.Subjects[0].Name != "slipway" || rb.Subjects[0].Namespace != ns || rb.RoleRef.Name != "slipway-leases" {
		t.Errorf("the Lease RoleBinding %+v %+v", rb.Subjects, rb.RoleRef)
	}
	pdb, err := cs.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, "slipway", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 {
		t.Errorf("PDB maxUnavailable %v, want 1", pdb.Spec.MaxUnavailable)
	}
	for k, v := range pdb.Spec.Selector.MatchLabels {
		if dep.Spec.Template.Labels[k] != v {
			t.Errorf("the PDB selects %s=%s, which the pods do not carry", k, v)
		}
	}

	// The two pods land on different nodes (the kwok nodes; the real node is tainted).
	var nodes map[string]bool
	err = wait.PollUntilContextTimeout(ctx, time.Second, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=slipway"})
		if err != nil {
			return false, nil
		}
		nodes = map[string]bool{}
		for _, p := range pods.Items {
			if p.Spec.NodeName != "" {
				nodes[p.Spec.NodeName] = true
			}
		}
		return len(pods.Items) == 2 && len(nodes) == 2, nil
	})
	if err != nil {
		t.Errorf("the two pods are not on two nodes: %v (%v)", nodes, err)
	}

	sa := "system:serviceaccount:" + ns + ":slipway"
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"get", "leases.coordination.k8s.io", "-n", leases}, "yes"},
		{[]string{"update", "leases.coordination.k8s.io", "-n", leases}, "yes"},
		{[]string{"create", "leases.coordination.k8s.io", "-n", leases}, "yes"},
		{[]string{"list", "leases.coordination.k8s.io", "-n", leases}, "yes"},
		{[]string{"get", "leases.coordination.k8s.io", "-n", other}, "no"},
		{[]string{"update", "leases.coordination.k8s.io", "-n", ns}, "no"},
		{[]string{"get", "secrets", "-n", leases}, "no"},
		{[]string{"get", "secrets", "-n", ns}, "no"},
		{[]string{"get", "secrets", "-n", other}, "no"},
		{[]string{"list", "secrets", "--all-namespaces"}, "no"},
		{[]string{"get", "configmaps", "-n", leases}, "no"},
		{[]string{"get", "secrets", "-n", shop}, "yes"}, // rbac.deployNamespaces grants deployRules (all) there
		{[]string{"create", "deployments.apps", "-n", other}, "no"},
	} {
		args := append([]string{"--kubeconfig", env.Kubeconfig, "auth", "can-i", "--as", sa}, c.args...)
		out, _ := exec.CommandContext(ctx, env.Kubectl, args...).CombinedOutput()
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if got := lines[len(lines)-1]; got != c.want {
			t.Errorf("kubectl auth can-i %s as the chart's service account = %q, want %q", strings.Join(c.args, " "), got, c.want)
		}
	}
}
