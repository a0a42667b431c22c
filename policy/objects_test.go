package policy

import (
	"errors"
	"strings"
	"testing"

	"github.com/slipwayhq/slipway/config"
	"github.com/slipwayhq/slipway/pipeline"
	"github.com/slipwayhq/slipway/render"
)

const testConfig = `dataDir: /data
policy:
  rules:
    - name: no-loadbalancer
      expression: object.kind != 'Service' || !has(object.spec.type) || object.spec.type != 'LoadBalancer'
      message: LoadBalancer Services cost money; use the shared ingress
repositories:
  - name: shop
    url: https://git.example.com/shop.git
    branch: main
    policy:
      clusters: [staging, prod-*]
      namespaces: [shop, shop-*]
      registries: [hub.example.com/shop, registry.local:5000, docker.io/library]
      push: [hub.example.com]
      rules:
        - name: replicas
          expression: "object.kind != 'Deployment' || object.spec.replicas <= 3"
  - name: platform
    url: https://git.example.com/platform.git
    branch: main
    policy: {clusters: ['*'], namespaces: ['*'], registries: ['*'], push: ['*'], trusted: true}
  - name: bare
    url: https://git.example.com/bare.git
    branch: main
clusters:
  - {name: staging, inCluster: true}
  - {name: prod-east, inCluster: true}
  - {name: dev, inCluster: true}
`

func testPolicy(t testing.TB, repo string) Policy {
	t.Helper()
	cfg, err := config.Parse("slipway.yaml", []byte(testConfig))
	if err != nil {
		t.Fatal(err)
	}
	return For(cfg, repo)
}

func manifests(t testing.TB, text string) []render.Manifest {
	t.Helper()
	ms, err := render.ParseManifests("deploy/app.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

func TestEvaluate(t *testing.T) {
	shopTarget := Target{Task: "deploy", Cluster: "staging", Namespace: "shop"}
	tests := []struct {
		name   string
		repo   string
		target Target
		yaml   string
		want   []string // each denial as "rule: object: reason" must contain these, in order
	}{
		{name: "granted objects pass", repo: "shop", target: shopTarget, yaml: `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 2
  template:
    spec:
      initContainers: [{name: init, image: registry.local:5000/tools/init:1}]
      containers: [{name: web, image: hub.example.com/shop/web:7}, {name: proxy, image: nginx:1.27}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop-preview}
spec: {type: ClusterIP}
---
apiVersion: v1
kind: Namespace
metadata: {name: shop-preview}
`},
		{name: "cluster not granted", repo: "shop", target: Target{Task: "deploy", Cluster: "dev", Namespace: "shop"},
			want: []string{`rule allowed-clusters: task deploy deploys to cluster "dev", which is not granted to repository shop (its policy.clusters in slipway.yaml grants staging, prod-*)`}},
		{name: "cluster pattern", repo: "shop", target: Target{Task: "deploy", Cluster: "prod-east", Namespace: "shop"}},
		{name: "task namespace not granted", repo: "shop", target: Target{Task: "deploy", Cluster: "staging", Namespace: "kube-system"},
			want: []string{`rule allowed-namespaces: task deploy deploys to namespace "kube-system"`}},
		{name: "object namespace not granted", repo: "shop", target: shopTarget, yaml: `
apiVersion: v1
kind: ConfigMap
metadata: {name: c, namespace: kube-system}
---
apiVersion: v1
kind: Namespace
metadata: {name: other}
`, want: []string{
			`rule allowed-namespaces: ConfigMap/kube-system/c (deploy/app.yaml, document 1): namespace "kube-system" is not granted to repository shop (its policy.namespaces in slipway.yaml grants shop, shop-*)`,
			`rule allowed-namespaces: Namespace/other (deploy/app.yaml, document 2): creates namespace "other"`,
		}},
		{name: "image in an initContainer of a CronJob", repo: "shop", target: shopTarget, yaml: `
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly, namespace: shop}
spec:
  schedule: "@daily"
  jobTemplate:
    spec:
      template:
        spec:
          initContainers: [{name: fetch, image: "evil.example.com/miner:1"}]
          containers: [{name: job, image: hub.example.com/shop/job:1}]
`, want: []string{`rule allowed-registries: CronJob/shop/nightly (deploy/app.yaml, document 1): initContainer fetch "evil.example.com/miner:1": evil.example.com/miner is not granted to repository shop (its policy.registries in slipway.yaml grants hub.example.com/shop, registry.local:5000, docker.io/library)`}},
		{name: "registry prefix stops at a path segment", repo: "shop", target: shopTarget, yaml: `
apiVersion: v1
kind: Pod
metadata: {name: p, namespace: shop}
spec:
  containers: [{name: a, image: hub.example.com/shopping/x:1}, {name: b, image: "hub.example.com/shop/x@sha256:` + strings.Repeat("a", 64) + `"}]
  ephemeralContainers: [{name: debug, image: busybox}, {name: hub, image: "quay.io/x/y"}]
`, want: []string{
			`Pod/shop/p (deploy/app.yaml, document 1): container a "hub.example.com/shopping/x:1": hub.example.com/shopping/x is not granted`,
			`Pod/shop/p (deploy/app.yaml, document 1): ephemeralContainer hub "quay.io/x/y": quay.io/x/y is not granted`,
		}},
		{name: "images of every workload kind", repo: "shop", target: shopTarget, yaml: `
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: s, namespace: shop}
spec: {template: {spec: {containers: [{name: c, image: "ghcr.io/a/b:1"}]}}}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: d, namespace: shop}
spec: {template: {spec: {containers: [{name: c, image: "ghcr.io/a/b:1"}]}}}
---
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: r, namespace: shop}
spec: {template: {spec: {containers: [{name: c, image: "ghcr.io/a/b:1"}]}}}
---
apiVersion: batch/v1
kind: Job
metadata: {name: j, namespace: shop}
spec: {template: {spec: {containers: [{name: c, image: "ghcr.io/a/b:1"}]}}}
`, want: []string{"StatefulSet/shop/s", "DaemonSet/shop/d", "ReplicaSet/shop/r", "Job/shop/j"}},
		{name: "a pod spec of the wrong shape is denied, not skipped", repo: "shop", target: shopTarget, yaml: `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec: {replicas: 1, template: {spec: {containers: {name: c, image: "ghcr.io/a/b:1"}}}}
`, want: []string{"rule allowed-registries: Deployment/shop/web (deploy/app.yaml, document 1): spec.template.spec.containers cannot be read"}},
		{name: "ClusterRoleBinding from an untrusted repository", repo: "shop", target: shopTarget, yaml: `
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: shop-admin}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
subjects: [{kind: ServiceAccount, name: default, namespace: shop}]
`, want: []string{`rule trusted-kinds: ClusterRoleBinding/shop-admin (deploy/app.yaml, document 1): ClusterRoleBinding is cluster-scoped RBAC; repository shop is not trusted (set trusted: true in its policy in slipway.yaml to allow it)`}},
		{name: "ClusterRoleBinding from a trusted repository", repo: "platform", target: Target{Task: "deploy", Cluster: "dev", Namespace: "kube-system"}, yaml: `
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: shop-admin}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
`},
		{name: "webhooks, admission policies and CRDs", repo: "shop", target: shopTarget, yaml: `
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {name: m}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: v}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: p}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: b}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: r}
---
apiVersion: example.com/v1
kind: ClusterRole
metadata: {name: not-rbac, namespace: shop}
`, want: []string{
			"MutatingWebhookConfiguration/m (deploy/app.yaml, document 1): MutatingWebhookConfiguration is an admission webhook",
			"ValidatingWebhookConfiguration/v (deploy/app.yaml, document 2): ValidatingWebhookConfiguration is an admission webhook",
			"ValidatingAdmissionPolicy/p (deploy/app.yaml, document 3): ValidatingAdmissionPolicy is an admission policy",
			"ValidatingAdmissionPolicyBinding/b (deploy/app.yaml, document 4)",
			"CustomResourceDefinition/widgets.example.com (deploy/app.yaml, document 5): CustomResourceDefinition is a CustomResourceDefinition",
			"ClusterRole/r (deploy/app.yaml, document 6): ClusterRole is cluster-scoped RBAC",
		}},
		{name: "CEL rule over a Service type", repo: "shop", target: shopTarget, yaml: `
apiVersion: v1
kind: Service
metadata: {name: front, namespace: shop}
spec: {type: LoadBalancer}
---
apiVersion: v1
kind: Service
metadata: {name: back, namespace: shop}
spec: {type: NodePort}
`, want: []string{"rule no-loadbalancer: Service/shop/front (deploy/app.yaml, document 1): LoadBalancer Services cost money; use the shared ingress"}},
		{name: "the global CEL rule applies to trusted repositories too", repo: "platform", target: shopTarget, yaml: `
apiVersion: v1
kind: Service
metadata: {name: front, namespace: shop}
spec: {type: LoadBalancer}
`, want: []string{"rule no-loadbalancer: Service/shop/front"}},
		{name: "repository CEL rule, message defaulting to the expression", repo: "shop", target: shopTarget, yaml: `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec: {replicas: 5, template: {spec: {containers: [{name: c, image: "hub.example.com/shop/web:1"}]}}}
`, want: []string{"rule replicas: Deployment/shop/web (deploy/app.yaml, document 1): the object does not satisfy object.kind != 'Deployment' || object.spec.replicas <= 3"}},
		{name: "a rule that cannot be evaluated denies", repo: "shop", target: shopTarget, yaml: `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec: {template: {spec: {containers: [{name: c, image: "hub.example.com/shop/web:1"}]}}}
`, want: []string{"rule replicas: Deployment/shop/web (deploy/app.yaml, document 1): the rule could not be evaluated (no such key: replicas), so the object is denied; guard optional fields with has() (rule at slipway.yaml:17:11)"}},
		{name: "a repository without grants may deploy nothing", repo: "bare", target: shopTarget, yaml: `
apiVersion: v1
kind: Pod
metadata: {name: p, namespace: shop}
spec: {containers: [{name: a, image: nginx}]}
`, want: []string{
			`rule allowed-clusters: task deploy deploys to cluster "staging", which is not granted to repository bare (its policy.clusters in slipway.yaml grants none)`,
			`rule allowed-namespaces: task deploy deploys to namespace "shop"`,
			`rule allowed-namespaces: Pod/shop/p (deploy/app.yaml, document 1): namespace "shop"`,
			`rule allowed-registries: Pod/shop/p (deploy/app.yaml, document 1): container a "nginx": docker.io/library/nginx is not granted to repository bare (its policy.registries in slipway.yaml grants none)`,
		}},
		{name: "a repository not in slipway.yaml may deploy nothing", repo: "stranger", target: shopTarget,
			want: []string{`cluster "staging", which is not granted: repository stranger is not in slipway.yaml`, `namespace "shop"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ms []render.Manifest
			if tt.yaml != "" {
				ms = manifests(t, tt.yaml)
			}
			got := testPolicy(t, tt.repo).Evaluate(tt.target, ms)
			if len(got) != len(tt.want) {
				t.Fatalf("%d denials, want %d:\n%v", len(got), len(tt.want), got)
			}
			for i, d := range got {
				if !strings.Contains(d.String(), tt.want[i]) {
					t.Errorf("denial %d:\n got %s\nwant it to contain %s", i, d, tt.want[i])
				}
			}
		})
	}
}

func TestDeniedErrorListsEveryDenial(t *testing.T) {
	p := testPolicy(t, "shop")
	err := Denied("deploy", p.Evaluate(Target{Task: "deploy", Cluster: "dev", Namespace: "shop"}, manifests(t, `
apiVersion: v1
kind: Service
metadata: {name: front, namespace: shop}
spec: {type: LoadBalancer}
`)))
	var de *DeniedError
	if !errors.Is(err, ErrDenied) || !errors.As(err, &de) || len(de.Denials) != 2 {
		t.Fatalf("%v", err)
	}
	want := "policy denied task deploy (2 denials), nothing of it was applied:\n  - rule allowed-clusters: task deploy deploys to cluster \"dev\""
	if !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), "\n  - rule no-loadbalancer: Service/shop/front") {
		t.Errorf("%s", err)
	}
	if Denied("deploy", nil) != nil {
		t.Error("no denials must be no error")
	}
}

func TestCheckPipeline(t *testing.T) {
	ps, err := pipeline.Parse("p.yaml", []byte(`name: app
stages:
  - name: build
    tasks:
      - {name: image, type: build-image, image: app, tag: "1", registry: hub.example.com}
  - name: staging
    tasks:
      - {name: deploy, type: deploy-yaml, path: k8s, cluster: staging, namespace: shop, allowedNamespaces: [shop-cache, kube-public, "*"]}
  - name: production
    tasks:
      - {name: chart, type: deploy-chart, chartDir: chart, release: app, cluster: dev, namespace: shop-prod}
      - {name: db, type: deploy-yaml, path: db, cluster: prod-east, namespace: databases}
`))
	if err != nil {
		t.Fatal(err)
	}
	got := testPolicy(t, "shop").CheckPipeline(ps[0])
	want := []struct{ field, rule, reason string }{
		{"stages[1].tasks[0].allowedNamespaces[1]", RuleNamespaces, `task deploy allows namespace "kube-public", which is not granted`},
		{"stages[2].tasks[0].cluster", RuleClusters, `task chart deploys to cluster "dev"`},
		{"stages[2].tasks[1].namespace", RuleNamespaces, `task db deploys to namespace "databases"`},
	}
	if len(got) != len(want) {
		t.Fatalf("%d denials, want %d: %v", len(got), len(want), got)
	}
	for i, w := range want {
		if got[i].Field != w.field || got[i].Rule != w.rule || !strings.Contains(got[i].Reason, w.reason) {
			t.Errorf("denial %d: %+v, want %+v", i, got[i], w)
		}
	}
	if got[1].At != "p.yaml:11:83" {
		t.Errorf("denial placed at %q", got[1].At)
	}
	if got := testPolicy(t, "platform").CheckPipeline(ps[0]); len(got) != 0 {
		t.Errorf("platform is granted everything: %v", got)
	}
	cfg, cerr := config.Parse("slipway.yaml", []byte(testConfig))
	if cerr != nil {
		t.Fatal(cerr)
	}
	if err := CheckRun(cfg, "shop", ps[0]); !errors.Is(err, ErrDenied) || !strings.HasPrefix(err.Error(), "policy denied the run (3 denials), nothing of it was applied:\n  - rule allowed-namespaces: task deploy allows namespace \"kube-public\"") ||
		!strings.Contains(err.Error(), "(p.yaml:11:83)") {
		t.Errorf("CheckRun: %v", err)
	}
	if CheckRun(cfg, "shop", nil) != nil || CheckRun(cfg, "platform", ps[0]) != nil {
		t.Error("a rollback, and a granted pipeline, pass")
	}
}
