package render

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A YAML error in a later document names the line of the file, not of the document.
func TestParseManifestsNamesFileLine(t *testing.T) {
	text := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n  bad: : x\n"
	_, err := ParseManifests("deploy/app.yaml", []byte(text))
	var pe *ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v, want a *ParseError", err)
	}
	if pe.Line != 10 || pe.Doc != 2 || !strings.HasPrefix(err.Error(), "deploy/app.yaml:10: document 2: ") {
		t.Fatalf("err = %q (line %d, doc %d), want deploy/app.yaml:10: document 2: ...", err, pe.Line, pe.Doc)
	}
}

// A manifest with references is parsed by substitution first; its YAML errors name the
// file's line too, not the document's.
func TestSubstitutedManifestErrorsNameFileLine(t *testing.T) {
	dir := t.TempDir()
	text := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${NAME}\n  bad: : x\n"
	if err := os.WriteFile(filepath.Join(dir, "app.yaml"), []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := loadManifests(t, dir, "app.yaml", Map{"NAME": "b"})
	if err == nil || !strings.HasPrefix(err.Error(), "app.yaml:10:1: document 2: ") {
		t.Fatalf("err = %v, want app.yaml:10:1: document 2: ...", err)
	}
}
