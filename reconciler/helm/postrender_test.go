package helm

import (
	"bytes"
	"strings"
	"testing"

	"github.com/slipwayhq/slipway/reconciler/apply"
	"github.com/slipwayhq/slipway/render"
	"github.com/slipwayhq/slipway/store"
)

// What Helm hands a post-renderer: one "# Source" document per object.
const rendered = `---
# Source: web/templates/service.yaml
apiVersion: v1
kind: Service
metadata:
  name: web
  labels:
    app.kubernetes.io/name: web
spec:
  ports:
    - port: 80
      targetPort: 8080
---
# Source: web/templates/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  annotations:
    team: ops
spec:
  replicas: 1
  progressDeadlineSeconds: 9007199254740993
  template:
    spec:
      containers:
        - name: web
          image: example.com/web:1
          env:
            - name: MODE
              value: "0755"
---
# Source: web/templates/empty.yaml
# nothing rendered here
---
# Source: web/templates/list.yaml
apiVersion: v1
kind: ConfigMapList
items:
  - apiVersion: v1
    kind: ConfigMap
    metadata:
      name: a
`

func TestOwnerRendererStampsEveryObject(t *testing.T) {
	owner := apply.OwnerOf(store.TaskRef{Pipeline: store.PipelineRef{Repository: "shop", Name: "app"}, Task: "deploy-web"})
	p := newOwnerRenderer(owner, "web", "prod")
	out, err := p.Run(bytes.NewBufferString(rendered))
	if err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{"# Source: web/templates/service.yaml\n", "# Source: web/templates/deployment.yaml\n",
		"# nothing rendered here", "progressDeadlineSeconds: 9007199254740993", `value: "0755"`} {
		if !strings.Contains(text, want) {
			t.Errorf("post-rendered manifest lacks %q:\n%s", want, text)
		}
	}
	ms, err := render.ParseManifests("post-rendered", out.Bytes())
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	if len(ms) != 3 {
		t.Fatalf("%d objects, want 3 (Service, Deployment, the List's ConfigMap):\n%s", len(ms), text)
	}
	for _, m := range ms {
		o := m.Object
		l, a := o.GetLabels(), o.GetAnnotations()
		if l["slipway.dev/owner"] != apply.LabelValue(owner.Ref()) || l["app.kubernetes.io/managed-by"] != "Helm" {
			t.Errorf("%s labels %v", o.GetKind(), l)
		}
		if a["slipway.dev/owner"] != "shop/app/deploy-web" ||
			a["meta.helm.sh/release-name"] != "web" || a["meta.helm.sh/release-namespace"] != "prod" {
			t.Errorf("%s annotations %v", o.GetKind(), a)
		}
		switch o.GetKind() {
		case "Service":
			if l["app.kubernetes.io/name"] != "web" {
				t.Errorf("the chart's own label is gone: %v", l)
			}
		case "Deployment":
			if a["team"] != "ops" {
				t.Errorf("the chart's own annotation is gone: %v", a)
			}
		}
	}
}

func TestOwnerRendererNamesTheBadDocument(t *testing.T) {
	p := newOwnerRenderer(apply.Owner{}, "web", "prod")
	_, err := p.Run(bytes.NewBufferString("---\n# Source: web/templates/bad.yaml\n- just\n- a list\n"))
	if err == nil || !strings.Contains(err.Error(), "web/templates/bad.yaml") {
		t.Fatalf("error %v, want one naming the template", err)
	}
}
