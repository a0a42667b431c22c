package helm

import "testing"

// A release manifest lists each rendered document under "# Source: PATH"; policy names
// objects by that path and the document's place among its template's.
func TestReleaseManifestDocumentsKeepTheirTemplate(t *testing.T) {
	manifest := `---
# Source: web/templates/conf.yaml
apiVersion: v1
kind: ConfigMap
metadata: {name: a}
---
# Source: web/templates/svc.yaml
apiVersion: v1
kind: Service
metadata: {name: s}
---
# Source: web/templates/conf.yaml
apiVersion: v1
kind: ConfigMap
metadata: {name: b}
`
	c := newDocCounter()
	ms, err := c.parse(manifest)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"ConfigMap/a (web/templates/conf.yaml, document 1)",
		"Service/s (web/templates/svc.yaml, document 1)",
		"ConfigMap/b (web/templates/conf.yaml, document 2)",
	}
	if len(ms) != len(want) {
		t.Fatalf("%d objects: %v", len(ms), ms)
	}
	for i, m := range ms {
		if m.String() != want[i] {
			t.Errorf("object %d: %s, want %s", i, m, want[i])
		}
	}
	// A hook of the same template continues its numbering; a CRD file keeps its own.
	hook, err := c.parseSource("web/templates/conf.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: h}\n", true)
	if err != nil || hook[0].Doc != 3 {
		t.Errorf("hook: %v %v", hook, err)
	}
	crds, err := c.parseSource("crds/w.yaml", "---\n---\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: w.example.com}\n", false)
	if err != nil || crds[0].Doc != 2 {
		t.Errorf("crd: %v %v", crds, err)
	}
}
