package policy

import (
	"fmt"
	"strings"
	"testing"

	"github.com/slipwayhq/slipway/config"
	"github.com/slipwayhq/slipway/render"
)

// benchRules are ten rules of the kinds people write: kinds, fields guarded by has(),
// labels, names, list macros over containers.
var benchRules = []string{
	`object.kind != 'Service' || !has(object.spec.type) || object.spec.type != 'LoadBalancer'`,
	`object.kind != 'Service' || !has(object.spec.type) || object.spec.type != 'NodePort'`,
	`object.kind != 'Deployment' || !has(object.spec.replicas) || object.spec.replicas <= 10`,
	`has(object.metadata.labels) && 'app' in object.metadata.labels`,
	`object.metadata.name.size() <= 63`,
	`!object.metadata.name.startsWith('kube-')`,
	`object.kind != 'Deployment' || object.spec.template.spec.containers.all(c, has(c.resources))`,
	`object.kind != 'Deployment' || object.spec.template.spec.containers.all(c, !c.image.endsWith(':latest'))`,
	`object.kind != 'Pod' || !has(object.spec.hostNetwork) || !object.spec.hostNetwork`,
	`object.kind != 'ConfigMap' || !has(object.data) || object.data.size() < 100`,
}

// benchObjects renders n objects: a third each Deployments (two containers), Services and
// ConfigMaps, all allowed, so every rule runs on every object.
func benchObjects(b *testing.B, n int) []render.Manifest {
	var sb strings.Builder
	for i := range n {
		switch i % 3 {
		case 0:
			fmt.Fprintf(&sb, `---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web-%d, namespace: shop, labels: {app: web}}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - {name: web, image: "hub.example.com/shop/web:%d", resources: {limits: {cpu: 500m}}, ports: [{containerPort: 8080}]}
        - {name: proxy, image: "registry.local:5000/proxy:1", resources: {}}
`, i, i)
		case 1:
			fmt.Fprintf(&sb, "---\napiVersion: v1\nkind: Service\nmetadata: {name: web-%d, namespace: shop, labels: {app: web}}\nspec: {type: ClusterIP, ports: [{port: 80}], selector: {app: web}}\n", i)
		default:
			fmt.Fprintf(&sb, "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: conf-%d, namespace: shop, labels: {app: web}}\ndata: {a: b, c: d}\n", i)
		}
	}
	ms, err := render.ParseManifests("deploy/all.yaml", []byte(sb.String()))
	if err != nil {
		b.Fatal(err)
	}
	return ms
}

func benchPolicy(b *testing.B) Policy {
	var sb strings.Builder
	sb.WriteString("dataDir: /d\nclusters: [{name: staging, inCluster: true}]\npolicy:\n  rules:\n")
	for i, r := range benchRules {
		fmt.Fprintf(&sb, "    - {name: rule-%d, expression: %q}\n", i, r)
	}
	sb.WriteString(`repositories:
  - name: shop
    url: https://g/shop.git
    branch: main
    policy: {clusters: [staging], namespaces: [shop], registries: [hub.example.com/shop, registry.local:5000]}
`)
	cfg, err := config.Parse("slipway.yaml", []byte(sb.String()))
	if err != nil {
		b.Fatal(err)
	}
	return For(cfg, "shop")
}

// BenchmarkEvaluate is one task's evaluation: 1000 rendered objects against the grants and
// 10 CEL rules (target: at most 50 ms per evaluation).
func BenchmarkEvaluate(b *testing.B) {
	p := benchPolicy(b)
	ms := benchObjects(b, 1000)
	target := Target{Task: "deploy", Cluster: "staging", Namespace: "shop"}
	if ds := p.Evaluate(target, ms); len(ds) != 0 {
		b.Fatalf("the benchmark's objects must all be allowed: %v", ds[0])
	}
	b.ResetTimer()
	for b.Loop() {
		p.Evaluate(target, ms)
	}
}
