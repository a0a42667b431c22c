package render

import (
	"bytes"
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	"github.com/slipwayhq/slipway/internal/repofs"
	"github.com/slipwayhq/slipway/render/kustomize"
)

// Manifest is one Kubernetes object rendered from a file of the checkout, remembering where
// it came from so every error can name the file and document.
type Manifest struct {
	Object *unstructured.Unstructured
	File   string // relative to the checkout root
	Doc    int    // 1-based document index within File
}

// String names the object and its origin, e.g. `Deployment/web/app (deploy/app.yaml, document 2)`.
func (m Manifest) String() string {
	return fmt.Sprintf("%s (%s, document %d)", ObjectName(m.Object), m.File, m.Doc)
}

// ObjectName formats an object as Kind/namespace/name (Kind/name when cluster-scoped).
func ObjectName(o *unstructured.Unstructured) string {
	if ns := o.GetNamespace(); ns != "" {
		return o.GetKind() + "/" + ns + "/" + o.GetName()
	}
	return o.GetKind() + "/" + o.GetName()
}

// LoadManifests reads the manifests at rel (a file, or a folder walked recursively in
// lexical order) of repo, substituting vars into their scalars (SubstituteYAML). Files are listed and read
// as `slipway validate` lists and reads them (repofs.Repo.Manifests and ReadText, within
// limits); empty documents are ignored; an object without apiVersion, kind or name is an
// error naming the file.
//
// A folder holding a kustomization (kustomization.yaml, kustomization.yml or Kustomization)
// is built with kustomize instead (BuildKustomization), and vars are substituted into the
// objects it builds.
func LoadManifests(repo *repofs.Repo, rel string, limits repofs.TextLimits, vars Vars) ([]Manifest, error) {
	built, err := BuildKustomization(repo, rel, limits)
	if err != nil {
		return nil, err
	}
	if built != nil {
		return loadFile(built.YAML, built.Name, vars)
	}
	files, err := repo.Manifests(rel)
	if err != nil {
		return nil, fmt.Errorf("manifests %s: %w", rel, err)
	}
	var out []Manifest
	for _, f := range files {
		raw, err := repo.ReadText(f, limits)
		if err != nil {
			return nil, err
		}
		ms, err := loadFile(raw, f, vars)
		if err != nil {
			return nil, err
		}
		out = append(out, ms...)
	}
	return out, nil
}

// Built is a kustomization built, before substitution.
type Built struct {
	Dir   string   // the kustomization's folder, as the task names it
	Name  string   // what errors and Manifest.File call the build's output
	YAML  []byte   // the objects built
	Files []string // the repository files the build read
}

// BuildKustomization builds the kustomization in the folder rel names, or returns nil when
// rel is a file or a folder without one. Runs and `slipway validate` both build with it.
func BuildKustomization(repo *repofs.Repo, rel string, limits repofs.TextLimits) (*Built, error) {
	dir := path.Clean(rel)
	file, err := kustomize.File(repo, dir)
	if err != nil {
		return nil, fmt.Errorf("manifests %s: %w", rel, err)
	}
	if file == "" {
		return nil, nil
	}
	out, err := kustomize.Build(repo, dir, limits)
	if err != nil {
		return nil, err
	}
	return &Built{Dir: dir, Name: "kustomize build " + dir, YAML: out.YAML, Files: out.Files}, nil
}

// InsideRoot resolves rel against root and refuses anything that lands outside root, a
// symlink that leaves, dangles or is absolute included (repofs.Repo.Resolve), so a pipeline
// can never read files beyond its checkout. It returns the real path.
func InsideRoot(root, rel string) (string, error) {
	repo, err := repofs.Open(root)
	if err != nil {
		return "", fmt.Errorf("checkout: %w", err)
	}
	defer repo.Close()
	return repo.RealPath(rel)
}

func loadFile(raw []byte, rel string, vars Vars) ([]Manifest, error) {
	docs, err := substituteDocuments(raw, vars)
	if err != nil {
		return nil, InFile(rel, err)
	}
	// Substitution keeps the documents apart as written: their first lines are the file's.
	_, starts := splitDocumentsAt(raw)
	if len(starts) != len(docs) {
		starts = nil
	}
	return parseDocuments(rel, docs, starts)
}

// ParseManifests decodes an already rendered YAML or JSON stream, such as a stored
// revision; name is what errors and Manifest.File call it.
func ParseManifests(rel string, text []byte) ([]Manifest, error) {
	docs, starts := splitDocumentsAt(text)
	return parseDocuments(rel, docs, starts)
}

// parseDocuments decodes the documents of a stream, numbered from 1 as splitDocuments
// counts them; starts, when known, are the file lines they start on (for errors).
func parseDocuments(rel string, docs [][]byte, starts []int) ([]Manifest, error) {
	var out []Manifest
	for i, data := range docs {
		doc := i + 1
		var obj map[string]any
		if err := yaml.Unmarshal(data, &obj); err != nil {
			start := 0
			if i < len(starts) {
				start = starts[i]
			}
			return nil, docError(rel, doc, start, err)
		}
		if len(obj) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: obj}
		if err := checkObject(u); err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", rel, doc, err)
		}
		if !u.IsList() {
			out = append(out, Manifest{Object: u, File: rel, Doc: doc})
			continue
		}
		items, err := listItems(u)
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", rel, doc, err)
		}
		for _, it := range items {
			out = append(out, Manifest{Object: it, File: rel, Doc: doc})
		}
	}
	return out, nil
}

// splitDocuments splits a YAML stream at its "---" lines, keeping empty documents so
// document numbers match what a reader counts in the file; a preamble holding only
// comments before the first "---" is not a document. JSON is one document.
func splitDocuments(text []byte) [][]byte {
	docs, _ := splitDocumentsAt(text)
	return docs
}

// splitDocumentsAt is splitDocuments that also returns the file line each document
// starts on, so errors inside a document can name the line of the file. The documents
// are the text's own bytes: callers must not change them in place (an append copies).
func splitDocumentsAt(text []byte) ([][]byte, []int) {
	if trimmed := bytes.TrimSpace(text); len(trimmed) > 0 && trimmed[0] == '{' {
		return [][]byte{text[:len(text):len(text)]}, []int{1}
	}
	// Each document is the file's own bytes between two separators, capacity capped so
	// an append never writes into the next document: no copy per document.
	var docs [][]byte
	var starts []int
	first, start, n, docStart, off := true, 1, 0, 0, 0
	flush := func(end int) {
		cur := text[docStart:end:end]
		if first && !hasContent(cur) {
			first = false
			return
		}
		first = false
		docs = append(docs, cur)
		starts = append(starts, start)
	}
	for len(text[off:]) > 0 {
		end := len(text)
		if i := bytes.IndexByte(text[off:], '\n'); i >= 0 {
			end = off + i + 1
		}
		n++
		if isSeparator(text[off:end]) {
			flush(off)
			start, docStart = n+1, end
		}
		off = end
	}
	if hasContent(text[docStart:]) || !first {
		flush(len(text))
	}
	return docs, starts
}

// yamlLine finds the "line N" a YAML parser names in its message.
var yamlLine = regexp.MustCompile(`\bline (\d+)(: )?`)

// docError names the file line of a parse error inside a document that starts on line
// start: FILE:LINE: document N: message.
func docError(rel string, doc, start int, err error) error {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatchIndex(msg); m != nil && start > 0 {
		if n, convErr := strconv.Atoi(msg[m[2]:m[3]]); convErr == nil {
			return &ParseError{File: rel, Line: start + n - 1, Doc: doc, Msg: msg[:m[0]] + msg[m[1]:], Err: err}
		}
	}
	return &ParseError{File: rel, Doc: doc, Msg: msg, Err: err}
}

// ParseError is a manifest that is not valid YAML (or JSON), located in its file.
type ParseError struct {
	File string
	Line int // 0 when the parser named none
	Doc  int
	Msg  string
	Err  error
}

func (e *ParseError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: document %d: %s", e.File, e.Line, e.Doc, e.Msg)
	}
	return fmt.Sprintf("%s: document %d: %s", e.File, e.Doc, e.Msg)
}

func (e *ParseError) Unwrap() error { return e.Err }

func isSeparator(line []byte) bool {
	line = bytes.TrimRight(line, " \t\r\n")
	return bytes.Equal(line, []byte("---")) || bytes.HasPrefix(line, []byte("--- #"))
}

// hasContent reports whether YAML text holds more than blank lines and comments.
func hasContent(b []byte) bool {
	for _, line := range bytes.Split(b, []byte("\n")) {
		l := bytes.TrimSpace(line)
		if len(l) > 0 && l[0] != '#' {
			return true
		}
	}
	return false
}

func checkObject(u *unstructured.Unstructured) error {
	var missing []string
	if u.GetAPIVersion() == "" {
		missing = append(missing, "apiVersion")
	}
	if u.GetKind() == "" {
		missing = append(missing, "kind")
	}
	if !u.IsList() && u.GetName() == "" {
		if u.GetGenerateName() != "" {
			return fmt.Errorf("%s uses metadata.generateName, which cannot be reconciled: give it a metadata.name", u.GetKind())
		}
		missing = append(missing, "metadata.name")
	}
	if len(missing) > 0 {
		return fmt.Errorf("object is missing %s", strings.Join(missing, ", "))
	}
	if _, err := schema.ParseGroupVersion(u.GetAPIVersion()); err != nil {
		return fmt.Errorf("apiVersion %q: %w", u.GetAPIVersion(), err)
	}
	return nil
}

func listItems(list *unstructured.Unstructured) ([]*unstructured.Unstructured, error) {
	l, err := list.ToList()
	if err != nil {
		return nil, err
	}
	out := make([]*unstructured.Unstructured, 0, len(l.Items))
	for i := range l.Items {
		it := &l.Items[i]
		if err := checkObject(it); err != nil {
			return nil, fmt.Errorf("item %d: %w", i+1, err)
		}
		out = append(out, it)
	}
	return out, nil
}
