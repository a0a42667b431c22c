package render

import (
	"errors"
	"testing"
)

func TestSubstitute(t *testing.T) {
	vars := Map{"BUILD_ID": "7", "EMPTY": "", "tasks.build-img.image": "hub/x:1"}
	tests := []struct {
		in, want string
	}{
		{"alpha-${BUILD_ID}", "alpha-7"},
		{"${BUILD_ID}${BUILD_ID}", "77"},
		{"$${BUILD_ID}", "${BUILD_ID}"},
		{"$$${BUILD_ID}", "$${BUILD_ID}"},
		{"${MISSING:-fallback}", "fallback"},
		{"${MISSING:-}", ""},
		{"${BUILD_ID:-fallback}", "7"},
		{"${EMPTY:-fallback}", ""},
		{"${tasks.build-img.image}", "hub/x:1"},
		{"$HOME and $1 and $ alone and $$", "$HOME and $1 and $ alone and $$"},
		{"no references", "no references"},
		{"trailing $", "trailing $"},
		{"${MISSING:-a:-b}", "a:-b"},
	}
	for _, tc := range tests {
		got, err := Substitute(tc.in, vars)
		if err != nil || got != tc.want {
			t.Errorf("Substitute(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestSubstituteErrors(t *testing.T) {
	tests := []struct {
		in     string
		msg    string
		offset int
	}{
		{"a-${NOPE}", `undefined variable "NOPE"`, 2},
		{"x ${BUILD_ID", "unterminated ${: missing }", 2},
		{"${}", "${}: empty variable name", 0},
		{"${1X}", `${1X}: variable name "1X" must start with a letter or _`, 0},
		{"${A B}", `${A B}: invalid character ' ' in variable name`, 0},
		{"${A:=b}", `${A:=b}: unsupported operator in "A:=b": only :- (default) is supported`, 0},
		{"${A:-${B}}", "${A:-${B}: a default cannot contain ${", 0},
		{"${:-x}", "${:-x}: empty variable name", 0},
	}
	for _, tc := range tests {
		got, err := Substitute(tc.in, Map{"BUILD_ID": "1"})
		if err == nil || err.Error() != tc.msg || got != "" {
			t.Errorf("Substitute(%q) = %q, %v; want error %q", tc.in, got, err, tc.msg)
			continue
		}
		var se *SyntaxError
		var ue *UndefinedError
		switch {
		case errors.As(err, &se):
			if se.Offset != tc.offset {
				t.Errorf("%q: offset %d, want %d", tc.in, se.Offset, tc.offset)
			}
		case errors.As(err, &ue):
			if ue.Offset != tc.offset || ue.Name != "NOPE" {
				t.Errorf("%q: %+v", tc.in, ue)
			}
		default:
			t.Errorf("%q: error of type %T", tc.in, err)
		}
	}
}

func TestReferences(t *testing.T) {
	refs, err := References("img:${A}-$${B}-${C:-d} ${tasks.x.digest}")
	if err != nil {
		t.Fatal(err)
	}
	want := []Ref{
		{Name: "A", Offset: 4, Len: 4},
		{Name: "C", Default: "d", HasDefault: true, Offset: 15, Len: 7},
		{Name: "tasks.x.digest", Offset: 23, Len: 17},
	}
	if len(refs) != len(want) {
		t.Fatalf("got %+v", refs)
	}
	for i := range want {
		if refs[i] != want[i] {
			t.Errorf("ref %d: %+v, want %+v", i, refs[i], want[i])
		}
	}
	if refs, err := References("plain $text"); refs != nil || err != nil {
		t.Errorf("plain text: %v %v", refs, err)
	}
}

func TestEscapeRoundTrip(t *testing.T) {
	for _, s := range []string{"", "${A}", "$${A}", "$$${A}", "$", "a$", "${", "${}${", "$$"} {
		got, err := Substitute(Escape(s), Map{})
		if err != nil || got != s {
			t.Errorf("Substitute(Escape(%q)) = %q, %v", s, got, err)
		}
	}
}
