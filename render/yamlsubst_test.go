package render

import (
	"errors"
	"fmt"
	"math/rand"
	"reflect"
	"strings"
	"testing"
	"testing/quick"

	"sigs.k8s.io/yaml"
)

// shapeTemplate puts ${V} in every kind of place a value can be: plain, quoted, in a flow
// sequence and mapping, in a literal and a folded block, inside longer text, as a whole
// list item, in a second document, and in a comment.
const shapeTemplate = `# a comment with ${V}
apiVersion: v1
kind: ConfigMap
metadata:
  name: app
  labels: {a: ${V}, b: x-${V}-y}
data:
  plain: ${V}
  prefixed: pre ${V} post
  single: '${V}'
  double: "${V}"
  escaped: $${V}
  literal: |
    line one
    ${V}
    line three
  folded: >
    folded ${V}
  list: [${V}, "${V}", two]
  items:
    - ${V}
    - k: ${V}   # trailing comment ${V}
---
apiVersion: v1
kind: Secret
metadata:
  name: s
stringData:
  token: ${V}
`

// shape is a parsed stream with every string leaf replaced by "S": what must not change.
func shape(t *testing.T, text []byte) []any {
	t.Helper()
	var out []any
	for i, d := range splitDocuments(text) {
		var v any
		if err := yaml.Unmarshal(d, &v); err != nil {
			t.Fatalf("document %d does not parse: %v\n%s", i+1, err, text)
		}
		out = append(out, mask(v))
	}
	return out
}

func mask(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := map[string]any{}
		for k, e := range x {
			m[k] = mask(e)
		}
		return m
	case []any:
		l := make([]any, len(x))
		for i, e := range x {
			l[i] = mask(e)
		}
		return l
	case string:
		return "S"
	}
	return v
}

func leaf(t *testing.T, text []byte, doc int, path ...any) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(splitDocuments(text)[doc], &v); err != nil {
		t.Fatal(err)
	}
	for _, p := range path {
		switch k := p.(type) {
		case string:
			v = v.(map[string]any)[k]
		case int:
			v = v.([]any)[k]
		}
	}
	return v
}

// checkValue renders shapeTemplate with V = value and checks that the stream has the shape
// a harmless value gives and that each place holds exactly the value.
func checkValue(t *testing.T, value string) bool {
	t.Helper()
	want := shape(t, mustSubstitute(t, "plain"))
	out := mustSubstitute(t, value)
	if got := shape(t, out); !reflect.DeepEqual(got, want) {
		t.Errorf("value %q changed the shape:\n%s", value, out)
		return false
	}
	checks := []struct {
		doc  int
		path []any
		want string
	}{
		{0, []any{"data", "plain"}, value},
		{0, []any{"data", "prefixed"}, "pre " + value + " post"},
		{0, []any{"data", "single"}, value},
		{0, []any{"data", "double"}, value},
		{0, []any{"data", "escaped"}, "${V}"},
		{0, []any{"data", "literal"}, "line one\n" + value + "\nline three\n"},
		{0, []any{"data", "folded"}, "folded " + value + "\n"},
		{0, []any{"data", "list", 0}, value},
		{0, []any{"data", "items", 1, "k"}, value},
		{0, []any{"metadata", "labels", "b"}, "x-" + value + "-y"},
		{1, []any{"stringData", "token"}, value},
	}
	for _, c := range checks {
		if got := leaf(t, out, c.doc, c.path...); got != c.want {
			t.Errorf("value %q: %v = %#v, want %q\n%s", value, c.path, got, c.want, out)
			return false
		}
	}
	return true
}

func mustSubstitute(t *testing.T, value string) []byte {
	t.Helper()
	out, err := SubstituteYAML([]byte(shapeTemplate), Map{"V": value})
	if err != nil {
		t.Fatalf("value %q: %v", value, err)
	}
	return out
}

func TestSubstituteYAMLHostileValues(t *testing.T) {
	for _, v := range []string{
		"s3cr3t #tail",
		"x\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: pwn}",
		"a: b", "- item", "{x: y}", "[1, 2]", "'", `"`, `\`, "&a", "*a", "!!int", "%TAG", "@", "`",
		"true", "null", "~", "42", "0x1F", "1e3", "yes", "on", ".inf", "",
		" leading", "trailing ", "line\n", "\n", "\n\n  indented\n", "tab\there", "\x00\x07\x1b", "é ü 漢字 \u2028 \u0085", "]\\{`2}8|6é%*>\n-\n\u2028", "a\n\u2029", "b\n\u0085",
		"${V}", "$${V}", "}", "key: value\nother: 1", "| block", "> folded", "--- ", "...",
	} {
		checkValue(t, v)
	}
}

// TestSubstituteYAMLShapeProperty: for random values, the parsed stream has the same shape
// and every place holds exactly the value.
func TestSubstituteYAMLShapeProperty(t *testing.T) {
	alphabet := []rune("ab #:-\n\t'\"\\{}[],&*!|>%@`?=~.0123456789\r\x00\u2028é---")
	gen := func(r *rand.Rand) string {
		n := r.Intn(40)
		b := make([]rune, n)
		for i := range b {
			b[i] = alphabet[r.Intn(len(alphabet))]
		}
		return string(b)
	}
	f := func(seed int64) bool {
		r := rand.New(rand.NewSource(seed))
		return checkValue(t, gen(r))
	}
	if err := quick.Check(f, &quick.Config{MaxCount: 300}); err != nil {
		t.Fatal(err)
	}
	// Arbitrary strings too (valid UTF-8: a scalar holds text).
	g := func(s string) bool {
		if strings.ContainsRune(s, '\uFFFD') {
			return true
		}
		return checkValue(t, s)
	}
	if err := quick.Check(g, &quick.Config{MaxCount: 300}); err != nil {
		t.Fatal(err)
	}
}

func TestSubstituteYAMLTyped(t *testing.T) {
	tmpl := "replicas: !!int ${N}\nratio: !!float ${F}\nenabled: !!bool ${B}\ns: !!str ${N}\nplain: ${N}\n"
	out, err := SubstituteYAML([]byte(tmpl), Map{"N": "3", "F": "2", "B": "true"})
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := yaml.Unmarshal(out, &v); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"replicas": float64(3), "ratio": float64(2), "enabled": true, "s": "3", "plain": "3"}
	if !reflect.DeepEqual(v, want) {
		t.Fatalf("got %#v\nwant %#v\n%s", v, want, out)
	}
	for _, c := range []struct{ tmpl, val, want string }{
		{"replicas: !!int ${N}\n", "3\nx: 1", `1:11: replicas: !!int: the substituted value "3\nx: 1" is not a decimal integer`},
		{"replicas: !!int ${N}\n", "010", "not a decimal integer"},
		{"ok: !!bool ${N}\n", "yes", "not true or false"},
		{"ok: !!float ${N}\n", ".inf", "not a decimal number"},
		{"ok: !!binary ${N}\n", "x", "1:14: ok: a ${...} reference may only be in a value: a scalar tagged !!binary cannot hold one"},
	} {
		_, err := SubstituteYAML([]byte(c.tmpl), Map{"N": c.val})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q with %q: error %v, want %q", c.tmpl, c.val, err, c.want)
		}
	}
}

func TestSubstituteYAMLErrors(t *testing.T) {
	for _, c := range []struct{ tmpl, want string }{
		{"a:\n  b: x\n  c: [${NOPE}]\n", `3:7: a.c[0]: undefined variable "NOPE"`},
		{"a:\n  ${K}: x\n", "2:3: a: a ${...} reference may only be in a value, not in a mapping key"},
		{"a: &${K} x\n", "1:5: a: a ${...} reference may only be in a value, not in a tag or anchor"},
		{"a: x\n  b: ${", "2:6: unterminated ${: missing }"},
		{"a: [${V}\n", "1:1: document 1: yaml: did not find"},
	} {
		_, err := SubstituteYAML([]byte(c.tmpl), Map{"V": "v", "K": "k"})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.tmpl, err, c.want)
		}
		var pe *PositionError
		if strings.Contains(c.want, "NOPE") && !errors.As(err, &pe) {
			t.Errorf("%q: %T is not a *PositionError", c.tmpl, err)
		}
	}
	// An escaped reference is fine in a key; comments are left alone, not substituted.
	out, err := SubstituteYAML([]byte("# ${NOPE}\n$${K}: ${V} # ${NOPE}\n"), Map{"V": "v"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), `${K}: "v"`) || !strings.Contains(string(out), "# ${NOPE}") {
		t.Fatalf("got\n%s", out)
	}
}

func TestYAMLRefs(t *testing.T) {
	refs, err := YAMLRefs([]byte("a: 1\n# ${C}\nb:\n  - x ${A} ${B:-d}\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(refs)
	// The reference in the comment is not one: comments are not substituted.
	if len(refs) != 2 || refs[0].Name != "A" || refs[1].Name != "B" {
		t.Fatalf("refs %s", got)
	}
	if refs[0].Line != 4 || refs[0].Column != 7 {
		t.Fatalf("A at %d:%d, want 4:7", refs[0].Line, refs[0].Column)
	}
	if _, err := YAMLRefs([]byte("${K}: 1\n")); err == nil {
		t.Fatal("a reference in a key passed")
	}
}

// TestSubstituteYAMLKeepsTheRest: in a document with a reference, everything else reads as
// it did (anchors and merge keys, numbers, booleans, dates, YAML 1.1 words, long integers).
func TestSubstituteYAMLKeepsTheRest(t *testing.T) {
	rest := "base: &b {x: 1, y: [a, b]}\nmerged:\n  <<: *b\n  y: 2\nn: 12345678901234567890\nf: 1e3\nbool: yes\nplain: on\n" +
		"date: 2001-12-14\nnothing: ~\nfolded: >\n  a\n  b\nmulti: one\n  two\n"
	var want, got map[string]any
	if err := yaml.Unmarshal([]byte(rest), &want); err != nil {
		t.Fatal(err)
	}
	out, err := SubstituteYAML([]byte(rest+"ref: ${V}\n"), Map{"V": "v"})
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	if got["ref"] != "v" {
		t.Fatalf("ref = %#v", got["ref"])
	}
	delete(got, "ref")
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %#v\nwant %#v\n%s", got, want, out)
	}
}
