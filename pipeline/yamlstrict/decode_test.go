package yamlstrict

import (
	"strings"
	"testing"

	"github.com/slipwayhq/slipway/pipeline/diag"
)

type shape struct {
	Name   string         `yaml:"name" required:"true"`
	Kind   string         `yaml:"kind" required:"true" discriminator:"true" enum:"circle,square"`
	Color  string         `yaml:"color,omitempty" enum:"red,blue" default:"red"`
	Tags   []string       `yaml:"tags,omitempty"`
	Nested inner          `yaml:"nested,omitempty"`
	Circle *circle        `yaml:",inline" variant:"circle"`
	Square *square        `yaml:",inline" variant:"square"`
	Opt    *inner         `yaml:"opt,omitempty"`
	Free   map[string]any `yaml:"free,omitempty"`
}

type inner struct {
	Size int  `yaml:"size,omitempty" default:"3"`
	On   bool `yaml:"on,omitempty"`
}

type circle struct {
	Radius int `yaml:"radius" required:"true"`
}

type square struct {
	Side int `yaml:"side" required:"true"`
}

func (*shape) FieldHint(key string) string {
	if key == "password" {
		return "use passwordFile"
	}
	return ""
}

func decode(t *testing.T, src string) (*shape, Positions, []string) {
	t.Helper()
	var errs diag.List
	r := diag.Reporter{File: "f", List: &errs}
	docs := ReadDocuments(r, []byte(src))
	s := &shape{}
	var pos Positions
	if len(docs) > 0 {
		pos = Decode(r, docs[0], s)
	}
	errs.Sort()
	var msgs []string
	for _, e := range errs {
		msgs = append(msgs, strings.TrimPrefix(e.Error(), "f:"))
	}
	return s, pos, msgs
}

func TestDecodeVariantsDefaultsAndPositions(t *testing.T) {
	s, pos, errs := decode(t, "name: a\nkind: circle\nradius: 2\nopt:\nfree: {x: [1, {y: z}]}\n")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if s.Circle == nil || s.Circle.Radius != 2 || s.Square != nil {
		t.Errorf("variant: %+v %+v", s.Circle, s.Square)
	}
	if s.Color != "red" || s.Nested.Size != 3 {
		t.Errorf("defaults: color %q nested %+v", s.Color, s.Nested)
	}
	if s.Opt == nil || s.Opt.Size != 3 {
		t.Errorf("an empty optional section is present with defaults: %+v", s.Opt)
	}
	if got := pos.Of("free.x[1].y"); got != (diag.Pos{Line: 5, Column: 19}) {
		t.Errorf("position in free-form values: %+v", got)
	}
	if got := pos.Of("nested.size"); got != (diag.Pos{Line: 1, Column: 1}) {
		t.Errorf("an unwritten field falls back to the document: %+v", got)
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		src  string
		want []string
	}{
		{"name: a\nkind: square\nradius: 1\n", []string{
			`1:1: missing required field "side" for type square`,
			`3:1: unknown field "radius" for type square`,
		}},
		{"name: a\nkind: squar\nside: 1\n", []string{
			`2:7: kind: "squar" is not one of circle, square (did you mean "square"?)`,
		}},
		{"name: [a]\nkind: circle\nradius: x\ntags: a\npassword: p\n", []string{
			`1:7: name: expected a string, got a list`,
			`3:9: radius: expected an integer, got "x"`,
			`4:7: tags: expected a list, got "a"`,
			`5:1: unknown field "password": use passwordFile`,
		}},
		{"name: a\nkind: circle\nradius: 1\nnested: {on: yes}\n", []string{
			`4:14: on: expected a boolean (true or false), got "yes"`,
		}},
		{"name: a\nname: b\nkind: circle\nradius: 1\n", []string{
			`2:1: duplicate key "name" (first defined at line 1)`,
		}},
		{"name: a\nkind: circle\nradius: 99999999999999999999\n", []string{
			`3:9: radius: expected an integer, got a number (99999999999999999999)`,
		}},
	}
	for _, tc := range tests {
		_, _, got := decode(t, tc.src)
		if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
			t.Errorf("%q:\n%s\nwant:\n%s", tc.src, strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
		}
	}
}

func TestSuggest(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"nmae", "name"}, {"imagee", "image"}, {"pullrequest", "pullRequest"}, {"xyz", ""}, {"tga", "tag"},
	} {
		if got := Suggest(tc.in, []string{"name", "image", "pullRequest", "tag", "stages"}); got != tc.want {
			t.Errorf("Suggest(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
