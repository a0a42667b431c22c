package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Shape of the generated set: 10 namespaces × (33 apps × ConfigMap + Deployment + Service,
// plus one shared ConfigMap) = 1000 objects.
const (
	namespaceCount = 10
	appsPerNS      = 33
	objectCount    = namespaceCount * (appsPerNS*3 + 1)
)

// writeObjects writes one multi-document file per namespace into dir. Deployments are
// scaled to 0 so the kwok nodes' pod churn does not disturb the contenders that follow.
func writeObjects(dir string, namespaces []string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	for _, ns := range namespaces {
		var b strings.Builder
		fmt.Fprintf(&b, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shared\n  namespace: %s\ndata:\n  region: local\n", ns)
		for i := 0; i < appsPerNS; i++ {
			app := fmt.Sprintf("app-%02d", i)
			fmt.Fprintf(&b, `---
apiVersion: v1
kind: ConfigMap
metadata:
  name: %[1]s
  namespace: %[2]s
  labels: {app: %[1]s}
data:
  LISTEN: ":8080"
  GREETING: "hello from %[1]s"
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: %[1]s
  namespace: %[2]s
  labels: {app: %[1]s}
spec:
  replicas: 0
  selector:
    matchLabels: {app: %[1]s}
  template:
    metadata:
      labels: {app: %[1]s}
    spec:
      containers:
      - name: app
        image: registry.local/bench/%[1]s:1
        ports: [{containerPort: 8080}]
        envFrom: [{configMapRef: {name: %[1]s}}]
        resources:
          requests: {cpu: 10m, memory: 16Mi}
---
apiVersion: v1
kind: Service
metadata:
  name: %[1]s
  namespace: %[2]s
  labels: {app: %[1]s}
spec:
  selector: {app: %[1]s}
  ports: [{name: http, port: 80, targetPort: 8080}]
`, app, ns)
		}
		path := filepath.Join(dir, ns+".yaml")
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	return nil
}
