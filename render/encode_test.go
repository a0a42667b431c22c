package render

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	sigsyaml "sigs.k8s.io/yaml"
)

// trickyStrings are string values a YAML emitter must quote or escape for a reader to get
// them back as strings, unchanged: YAML 1.1 and 1.2 booleans, nulls, numbers in every
// base, sexagesimals, timestamps, merge keys, indicators, separators, blank and
// multi-line text, non-printable and non-ASCII characters.
var trickyStrings = []string{
	"", " ", "  ", "true", "false", "True", "FALSE", "yes", "no", "Yes", "NO", "on", "off", "On", "OFF", "y", "n", "Y", "N",
	"null", "Null", "NULL", "~", "0", "1", "-1", "+1", "007", "012", "0x1F", "0X1f", "0o17", "0b101", "1_000", "1,000",
	"1.5", "-1.5", ".5", "5.", "1e3", "1E-3", "+1e+3", "6.8523015e+5", "685.230_15e+03", ".inf", "-.Inf", "+.INF", ".nan", ".NaN",
	"1:20", "190:20:30", "-1:20", "2001-12-14", "2001-12-14t21:59:43.10-05:00", "2001-12-14 21:59:43.10 -5",
	"<<", "=", "---", "...", "--- x", "- a", "-", "a: b", "a:b", ":", "? x", "?", "#c", "a #b", "a# b", "&a", "*a", "!t", "!!str",
	"%x", "@x", "`x", "|", ">", "|-", "'q'", "\"q\"", "it's", "{a}", "[a]", "a,b", "{}", "[]", "a: [b]",
	" lead", "trail ", "\ttab", "tab\t", "a\tb", "a\\b", "a\\nb",
	"two\nlines", "two\nlines\n", "gaps\n\n\nin it\n\n", "\n", "\n\n", "\nlead newline", "trail spaces  \nline", " lead\nline",
	"line\r\nwindows", "\r", "---\nseparator inside\n---\n", "...\nend marker inside",
	"unicode ü é 中文 🙂", "\u00a0nbsp", "\u2028", "a\u2029b", "\u0085", "\ufeffbom", "\x00", "\x07", "\x1b[0m", "\x7f",
	"0.0.0.0:8080", ":8080", "registry.local:5000/app:1@sha256:" + strings.Repeat("ab", 32), "${NOT_A_VAR}", "$$",
	strings.Repeat("long line without a break ", 40), strings.Repeat("long\nblock\n", 30),
}

// trickySource is a manifest stream as a repository might hold it: numbers of every size
// and form, booleans and nulls, empty maps and lists, nested lists, block and flow styles.
const trickySource = `apiVersion: v1
kind: ConfigMap
metadata:
  name: numbers
  labels: {app: "007", empty: ""}
  annotations:
    note: |
      a literal block
        indented more

    folded: >
      folded
      text
data: {}
---
apiVersion: example.com/v1
kind: Widget
metadata:
  name: values
spec:
  ints: [0, 1, -1, 42, 65535, 2147483648, 9007199254740991, 9007199254740993, 123456789012345678, 0x1F, 0o17]
  floats: [0.1, -0.0, 1.5, 1e3, 1e21, 1.5e-7, 6.02214076e+23, 1e300, 3.0]
  bools: [true, false]
  nulls: [null, ~]
  nothing:
  emptyMap: {}
  emptyList: []
  nested: [[], [{}], [[1, [2]]], {a: {b: {c: [x, {d: null}]}}}]
  replicas: 3
  "on": key quoted in the source
  "123": numeric key
  "true": bool key
  "null": null key
  "~": tilde key
  "": empty key
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
  namespace: ns
spec:
  replicas: 1
  template:
    spec:
      containers:
      - name: app
        image: registry.local/bench/app:1@sha256:` + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" + `
        args: ["--port=8080", "--verbose", "1", "yes"]
        resources:
          requests: {cpu: 1m, memory: 1Mi}
      initContainers:
      - name: init
        image: busybox:1.36
`

// trickyManifests are the rendered set the encoding must give back: trickySource as the
// renderer parses it, and a ConfigMap holding every tricky string as a key and as a value.
func trickyManifests(t testing.TB) []Manifest {
	t.Helper()
	ms, err := ParseManifests("tricky.yaml", []byte(trickySource))
	if err != nil {
		t.Fatal(err)
	}
	data := map[string]any{}
	var list []any
	for i, s := range trickyStrings {
		data[fmt.Sprintf("value-%03d", i)] = s
		data[s] = fmt.Sprintf("key %d", i)
		list = append(list, s)
	}
	cm := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "strings", "namespace": "ns", "labels": map[string]any{"on": "off"}},
		"data":     data, "list": list}}
	return append(ms, Manifest{Object: cm, File: "strings.yaml", Doc: 1})
}

// TestEncodeManifestsReadsBackAsRendered: a revision's stored objects, read back by every
// reader of revisions (rollback and restore, drift and health through ParseManifests; the
// records, the UI and `slipway get deployments` through Images), are the rendered objects
// exactly.
func TestEncodeManifestsReadsBackAsRendered(t *testing.T) {
	ms := trickyManifests(t)
	enc, err := EncodeManifests(ms)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseManifests("revision", enc)
	if err != nil {
		t.Fatalf("parse the encoding: %v\n%s", err, enc)
	}
	if len(got) != len(ms) {
		t.Fatalf("read back %d objects; want %d\n%s", len(got), len(ms), enc)
	}
	for i := range ms {
		if !reflect.DeepEqual(got[i].Object.Object, ms[i].Object.Object) {
			t.Errorf("object %d read back differs from the rendered one:\n%s", i, diffValues("", got[i].Object.Object, ms[i].Object.Object))
		}
	}
	images, err := Images(enc)
	if err != nil {
		t.Fatalf("images of the encoding: %v", err)
	}
	want := []string{"busybox:1.36", "registry.local/bench/app:1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}
	if !reflect.DeepEqual(images, want) {
		t.Errorf("images = %q; want %q", images, want)
	}
	again, err := EncodeManifests(ms)
	if err != nil || string(again) != string(enc) {
		t.Errorf("a second encoding of the same set differs (the digest would): %v", err)
	}
	if !strings.HasPrefix(string(enc), "---\n") || strings.Count(string(enc), "\n---\n")+1 != len(ms) {
		t.Errorf("not one document per object, each after a --- line:\n%s", enc)
	}
}

// TestEncodeManifestsReadsBackAsFormer: what the readers get from the encoding is what they
// got from the former one (sigs.k8s.io/yaml), wherever that one worked: for the tricky
// source, and for each tricky string alone as a key and as a value.
func TestEncodeManifestsReadsBackAsFormer(t *testing.T) {
	ms, err := ParseManifests("tricky.yaml", []byte(trickySource))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range trickyStrings {
		ms = append(ms, Manifest{Object: &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
			"metadata": map[string]any{"name": "s"}, "data": map[string]any{"value": s, s: "key"}}}})
	}
	var formerFailed []string
	for _, m := range ms {
		one := []Manifest{m}
		former, err := formerEncoding(one)
		var old []Manifest
		if err == nil {
			old, err = ParseManifests("former revision", former)
		}
		if err != nil {
			formerFailed = append(formerFailed, fmt.Sprintf("%.40q: %v", m.Object.Object["data"], err))
			continue
		}
		enc, err := EncodeManifests(one)
		if err != nil {
			t.Fatalf("%v: %v", m, err)
		}
		got, err := ParseManifests("revision", enc)
		if err != nil || len(got) != 1 || len(old) != 1 {
			t.Fatalf("%v: read back %d objects, %v; the former encoding %d\n%s", m, len(got), err, len(old), enc)
		}
		if !reflect.DeepEqual(got[0].Object.Object, old[0].Object.Object) {
			t.Errorf("%v: read back differs from the former encoding's:\n%s", m, diffValues("", got[0].Object.Object, old[0].Object.Object))
		}
		newImages, err := Images(enc)
		if err != nil {
			t.Fatal(err)
		}
		oldImages, err := Images(former)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(newImages, oldImages) {
			t.Errorf("%v: images %q; the former encoding's %q", m, newImages, oldImages)
		}
	}
	// The former encoding failed on some strings (U+0085, DEL, a long line with a trailing
	// space) or wrote "<<" so that readers failed: those deploys failed; they work now.
	t.Logf("the former encoding failed on %d of %d objects:\n%s", len(formerFailed), len(ms), strings.Join(formerFailed, "\n"))
}

// TestEncodeManifestsOtherTypes: an object holding Go types JSON decoding never makes (a
// caller's []string or map[string]string) is encoded the former way, and reads back as
// JSON would have it.
func TestEncodeManifestsOtherTypes(t *testing.T) {
	obj := map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "s",
		"labels": map[string]string{"on": "yes"}}, "list": []string{"a", "1"}}
	got, enc := roundTrip(t, obj)
	want := map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "s",
		"labels": map[string]any{"on": "yes"}}, "list": []any{"a", "1"}}
	if !reflect.DeepEqual(got[0].Object.Object, want) {
		t.Errorf("read back differs:\n%s\n%s", diffValues("", got[0].Object.Object, want), enc)
	}
}

// TestEncodeManifestsEmpty: an empty set is stored empty, as before.
func TestEncodeManifestsEmpty(t *testing.T) {
	enc, err := EncodeManifests(nil)
	if err != nil || enc == nil || len(enc) != 0 {
		t.Errorf("EncodeManifests(nil) = %q, %v; want empty", enc, err)
	}
}

// TestEncodeManifestsAllocations: every run of a push or a no-op encodes its set, 64 runs
// in flight. The former JSON-then-YAML encoding made about 1400 allocations (300 KB) for
// one app's four objects (ServiceAccount, ConfigMap, Service, Deployment); the direct one
// about a dozen.
func TestEncodeManifestsAllocations(t *testing.T) {
	ms := benchAppManifests(t)
	allocs := testing.AllocsPerRun(50, func() {
		if _, err := EncodeManifests(ms); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 50 {
		t.Errorf("EncodeManifests of one app's 4 objects: %.0f allocations; want at most 50", allocs)
	}
}

// BenchmarkEncodeManifests: one app of the scale benchmark (4 objects); "former" is the
// encoding through sigs.k8s.io/yaml that encodeObjects replaced, for comparison.
func BenchmarkEncodeManifests(b *testing.B) {
	ms := benchAppManifests(b)
	b.Run("direct", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := EncodeManifests(ms); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("former", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := formerEncoding(ms); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// benchAppManifests are one app of the scale benchmark (test/bench/scale_test.go), rendered.
func benchAppManifests(t testing.TB) []Manifest {
	t.Helper()
	src := strings.ReplaceAll(`apiVersion: v1
kind: ServiceAccount
metadata:
  name: app-0001
  namespace: bench-3
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: app-0001
  namespace: bench-3
  labels: {app: app-0001}
data:
  LISTEN: ":8080"
  VERSION: "1"
---
apiVersion: v1
kind: Service
metadata:
  name: app-0001
  namespace: bench-3
  labels: {app: app-0001}
spec:
  selector: {app: app-0001}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-0001
  namespace: bench-3
  labels: {app: app-0001}
spec:
  replicas: 1
  selector:
    matchLabels: {app: app-0001}
  template:
    metadata:
      labels: {app: app-0001}
    spec:
      serviceAccountName: app-0001
      containers:
      - name: app
        image: registry.local/bench/app-0001:1
        ports: [{containerPort: 8080}]
        envFrom: [{configMapRef: {name: app-0001}}]
        resources:
          requests: {cpu: 1m, memory: 1Mi}
`, "\t", "  ")
	ms, err := ParseManifests("app.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// formerEncoding is how revisions were encoded until session 15 (sigs.k8s.io/yaml), which
// stored revisions still hold.
func formerEncoding(ms []Manifest) ([]byte, error) {
	var b strings.Builder
	for _, m := range ms {
		y, err := sigsyaml.Marshal(m.Object.Object)
		if err != nil {
			return nil, err
		}
		b.WriteString("---\n")
		b.Write(y)
	}
	return []byte(b.String()), nil
}

// diffValues names the paths where two decoded objects differ.
func diffValues(path string, got, want any) string {
	gm, gok := got.(map[string]any)
	wm, wok := want.(map[string]any)
	if gok && wok {
		var out strings.Builder
		for k, w := range wm {
			g, ok := gm[k]
			if !ok {
				fmt.Fprintf(&out, "%s[%q]: missing, want %#v\n", path, k, w)
				continue
			}
			out.WriteString(diffValues(fmt.Sprintf("%s[%q]", path, k), g, w))
		}
		for k, g := range gm {
			if _, ok := wm[k]; !ok {
				fmt.Fprintf(&out, "%s[%q]: extra %#v\n", path, k, g)
			}
		}
		return out.String()
	}
	gl, gok := got.([]any)
	wl, wok := want.([]any)
	if gok && wok && len(gl) == len(wl) {
		var out strings.Builder
		for i := range wl {
			out.WriteString(diffValues(fmt.Sprintf("%s[%d]", path, i), gl[i], wl[i]))
		}
		return out.String()
	}
	if !reflect.DeepEqual(got, want) {
		return fmt.Sprintf("%s: got %#v, want %#v\n", path, got, want)
	}
	return ""
}

// FuzzEncodeManifests: any string (valid UTF-8, as JSON decoding leaves every rendered
// string), as a key, a value and a list item, reads back unchanged.
func FuzzEncodeManifests(f *testing.F) {
	for _, s := range trickyStrings {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return // not an input: JSON decoding leaves every rendered string valid UTF-8
		}
		obj := map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "s"},
			"data": map[string]any{"value": s, s: "key"}, "list": []any{s, map[string]any{s: []any{s}}}}
		got, enc := roundTrip(t, obj)
		if !reflect.DeepEqual(got[0].Object.Object, obj) {
			t.Fatalf("read back differs:\n%s\n%s", diffValues("", got[0].Object.Object, obj), enc)
		}
		images, err := Images(enc)
		if err != nil || len(images) != 0 {
			t.Fatalf("images %q, %v\n%s", images, err, enc)
		}
	})
}

// A nil map or list held by an object (JSON decoding never makes one; a caller might)
// reads back as the former encoding's null, not as an empty collection.
func TestEncodeManifestsNilCollectionsAreNull(t *testing.T) {
	obj := map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "s",
		"labels": map[string]any(nil)}, "list": []any(nil)}
	got, enc := roundTrip(t, obj)
	if v, ok := got[0].Object.Object["list"]; !ok || v != nil {
		t.Errorf("a nil list read back as %#v\n%s", v, enc)
	}
	if v, ok := got[0].Object.Object["metadata"].(map[string]any)["labels"]; !ok || v != nil {
		t.Errorf("a nil map read back as %#v\n%s", v, enc)
	}
}

// roundTrip encodes the one object obj and reads it back, failing unless it reads back as
// one object; it returns that object and the encoding.
func roundTrip(t *testing.T, obj map[string]any) (got []Manifest, enc []byte) {
	t.Helper()
	enc, err := EncodeManifests([]Manifest{{Object: &unstructured.Unstructured{Object: obj}}})
	if err != nil {
		t.Fatal(err)
	}
	got, err = ParseManifests("revision", enc)
	if err != nil || len(got) != 1 {
		t.Fatalf("read back %d objects: %v\n%s", len(got), err, enc)
	}
	return got, enc
}
