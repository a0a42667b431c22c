package render

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/slipwayhq/slipway/internal/repofs"
)

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, body := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// loadManifests loads from a checkout at root with the default limits.
func loadManifests(t *testing.T, root, rel string, vars Vars) ([]Manifest, error) {
	t.Helper()
	repo, err := repofs.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	return LoadManifests(repo, rel, repofs.TextLimits{File: repofs.Limit{Max: 8 << 20}, Line: repofs.Limit{Max: 1 << 20}}, vars)
}

func TestLoadManifestsFolder(t *testing.T) {
	root := writeFiles(t, map[string]string{
		"k8s/b.yaml":       "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n---\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: svc\n",
		"k8s/a.json":       `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"},"data":{"tag":"alpha-${BUILD_ID}"}}`,
		"k8s/sub/list.yml": "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: l1}\n",
		"k8s/.hidden":      "not yaml",
	})
	ms, err := loadManifests(t, root, "k8s", Map{"BUILD_ID": "7"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range ms {
		got = append(got, m.String())
	}
	want := []string{
		"ConfigMap/a (k8s/a.json, document 1)",
		"ConfigMap/b (k8s/b.yaml, document 1)",
		"Service/svc (k8s/b.yaml, document 3)",
		"ConfigMap/l1 (k8s/sub/list.yml, document 1)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if tag, _, _ := unstructuredNested(ms[0].Object.Object, "data", "tag"); tag != "alpha-7" {
		t.Fatalf("substituted tag = %q", tag)
	}
}

func unstructuredNested(obj map[string]any, fields ...string) (string, bool, error) {
	cur := any(obj)
	for _, f := range fields {
		cur = cur.(map[string]any)[f]
	}
	s, ok := cur.(string)
	return s, ok, nil
}

func TestLoadManifestsErrors(t *testing.T) {
	root := writeFiles(t, map[string]string{
		"bad/readme.md":   "# no",
		"noname.yaml":     "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n",
		"nokind.yaml":     "apiVersion: v1\nmetadata: {name: x}\n",
		"undefined.yaml":  "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: ${NOPE}\n",
		"generate.yaml":   "apiVersion: v1\nkind: ConfigMap\nmetadata: {generateName: x-}\n",
		"broken.yaml":     "apiVersion: v1\nkind: [\n",
		"ok/ok.yaml":      "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\n",
		"ok/default.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: d}\ndata: {a: '${MISSING:-fallback}'}\n",
	})
	if err := os.Symlink("/etc", filepath.Join(root, "escape")); err != nil {
		t.Fatal(err)
	}
	cases := []struct{ path, want string }{
		{"bad", "bad/readme.md: not a manifest (want .yaml, .yml or .json)"},
		{"noname.yaml", "noname.yaml: document 1: object is missing metadata.name"},
		{"nokind.yaml", "nokind.yaml: document 1: object is missing kind"},
		{"undefined.yaml", `undefined.yaml:6:6: data.a: undefined variable "NOPE"`},
		{"generate.yaml", "generateName"},
		{"broken.yaml", "broken.yaml:2: document 1:"},
		{"missing.yaml", `manifests missing.yaml: "missing.yaml" does not exist in the repository`},
		{"../x.yaml", "leaves the repository"},
		{"escape", `symlink "escape" points to the absolute path "/etc"`},
		{"/etc/passwd", "leaves the repository"},
	}
	for _, c := range cases {
		_, err := loadManifests(t, root, c.path, Map{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("LoadManifests(%q) error = %v, want it to contain %q", c.path, err, c.want)
		}
	}
	if _, err := loadManifests(t, root, "ok", Map{}); err != nil {
		t.Errorf("ok folder: %v", err)
	}
}

type fakeScopes map[string]bool

func (f fakeScopes) Namespaced(gvk schema.GroupVersionKind) (bool, error) {
	ns, ok := f[gvk.Kind]
	if !ok {
		return false, &unknownKind{gvk.Kind}
	}
	return ns, nil
}

type unknownKind struct{ kind string }

func (u *unknownKind) Error() string { return "no kind " + u.kind }

func TestSetNamespaces(t *testing.T) {
	root := writeFiles(t, map[string]string{"m.yaml": `
apiVersion: v1
kind: ConfigMap
metadata: {name: plain}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: other, namespace: elsewhere}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: cr, namespace: ignored}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {kind: Widget, plural: widgets}
---
apiVersion: example.com/v1
kind: Widget
metadata: {name: w}
`})
	scopes := fakeScopes{"ConfigMap": true, "ClusterRole": false, "CustomResourceDefinition": false}
	load := func() []Manifest {
		ms, err := loadManifests(t, root, "m.yaml", Map{})
		if err != nil {
			t.Fatal(err)
		}
		return ms
	}
	err := SetNamespaces(load(), scopes, NamespaceOptions{Namespace: "team"})
	if err == nil || !strings.Contains(err.Error(), `ConfigMap/elsewhere/other (m.yaml, document 2): names namespace "elsewhere", but the task deploys to "team"`) {
		t.Fatalf("want a refusal of the other namespace, got %v", err)
	}
	ms := load()
	if err := SetNamespaces(ms, scopes, NamespaceOptions{Namespace: "team", AllowNamespaces: []string{"elsewhere"}}); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, m := range ms {
		got[m.Object.GetName()] = m.Object.GetNamespace()
	}
	want := map[string]string{"plain": "team", "other": "elsewhere", "cr": "", "widgets.example.com": "", "w": "team"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s namespace = %q, want %q", k, got[k], v)
		}
	}
}

func TestSplitDocumentsAtKeepsLinesAndEmptyDocuments(t *testing.T) {
	cases := []struct {
		name, text string
		docs       []string
		starts     []int
	}{
		{"one", "a: 1\nb: 2\n", []string{"a: 1\nb: 2\n"}, []int{1}},
		{"no final newline", "a: 1\n---\nb: 2", []string{"a: 1\n", "b: 2"}, []int{1, 3}},
		{"comment preamble", "# header\n---\na: 1\n", []string{"a: 1\n"}, []int{3}},
		{"empty document kept", "a: 1\n---\n---\nb: 2\n", []string{"a: 1\n", "", "b: 2\n"}, []int{1, 3, 4}},
		{"separator with comment and CRLF", "a: 1\r\n--- # next\r\nb: 2\r\n", []string{"a: 1\r\n", "b: 2\r\n"}, []int{1, 3}},
		{"trailing separator", "a: 1\n---\n", []string{"a: 1\n", ""}, []int{1, 3}},
		{"json", "{\"a\": 1}\n---\n", []string{"{\"a\": 1}\n---\n"}, []int{1}},
		{"leading separator", "---\na: 1\n", []string{"a: 1\n"}, []int{2}},
		{"separator without a final newline", "a: 1\n---", []string{"a: 1\n", ""}, []int{1, 3}},
	}
	for _, c := range cases {
		text := []byte(c.text)
		docs, starts := splitDocumentsAt(text)
		var got []string
		for _, d := range docs {
			got = append(got, string(d))
		}
		if !reflect.DeepEqual(got, c.docs) || !reflect.DeepEqual(starts, c.starts) {
			t.Errorf("%s: docs %q starting on lines %v, want %q on %v", c.name, got, starts, c.docs, c.starts)
		}
		// A document never reaches into the next: appending to one leaves the text whole.
		for _, d := range docs {
			_ = append(d, "x: overwritten"...)
		}
		if string(text) != c.text {
			t.Errorf("%s: appending to a document changed the text to %q", c.name, text)
		}
	}
}
