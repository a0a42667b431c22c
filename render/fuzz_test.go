package render

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzSubstitute checks the ${...} language on arbitrary text: no panics, references that
// point at what they claim, escaping that round-trips, and no silent empty values.
func FuzzSubstitute(f *testing.F) {
	for _, s := range []string{"alpha-${BUILD_ID}", "$${X}", "${A:-b}", "${tasks.x.image}", "$HOME $$ $", "${", "${A:-${B}}", "${}", "x${A}y${B:-}z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		refs, refErr := References(s)
		defined := Map{}
		for _, r := range refs {
			if got := s[r.Offset : r.Offset+r.Len]; !strings.HasPrefix(got, "${") || !strings.HasSuffix(got, "}") || !strings.Contains(got, r.Name) {
				t.Fatalf("ref %+v does not point at a reference: %q", r, got)
			}
			defined[r.Name] = "<" + r.Name + ">"
		}

		out, err := Substitute(s, defined)
		if (err == nil) != (refErr == nil) {
			t.Fatalf("Substitute error %v but References error %v", err, refErr)
		}
		if err == nil && !strings.Contains(s, "${") && out != s {
			t.Fatalf("text without ${ changed: %q → %q", s, out)
		}
		if err != nil && out != "" {
			t.Fatalf("error %v with partial output %q", err, out)
		}

		// With nothing defined, every reference without a default must be an error.
		_, err = Substitute(s, Map{})
		needsValue := false
		for _, r := range refs {
			needsValue = needsValue || !r.HasDefault
		}
		if refErr == nil && needsValue && err == nil {
			t.Fatalf("undefined reference in %q substituted silently", s)
		}

		back, err := Substitute(Escape(s), Map{})
		if err != nil || back != s {
			t.Fatalf("Substitute(Escape(%q)) = %q, %v", s, back, err)
		}
	})
}

// FuzzSubstituteYAMLShape: whatever a value holds, substituting it into YAML leaves the
// parsed stream's shape (documents, keys, list items) as it was, and each place holds
// exactly the value. Values that are not UTF-8 text are refused, never rendered.
func FuzzSubstituteYAMLShape(f *testing.F) {
	for _, s := range []string{"s3cr3t #tail", "x\n---\nkind: ClusterRoleBinding", "a: b", "'\"", "\n", "${V}", "42", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if !utf8.ValidString(v) {
			if _, err := SubstituteYAML([]byte(shapeTemplate), Map{"V": v}); err == nil {
				t.Fatalf("invalid UTF-8 %q was rendered", v)
			}
			return
		}
		checkValue(t, v)
	})
}
