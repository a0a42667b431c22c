package kustomize

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// What a build refuses, for errors.Is.
var (
	// ErrRemote: a base, resource or file named by URL or Git address. Nothing is fetched at
	// render time: what deploys is what the commit holds.
	ErrRemote = errors.New("remote bases and files are not fetched: vendor them into the repository")
	// ErrHelm: kustomize's Helm chart generator, which runs the helm binary and may fetch
	// charts. Use a deploy-chart task.
	ErrHelm = errors.New("the helmCharts generator is not supported: deploy charts with a deploy-chart task")
	// ErrFunction: a KRM function (exec or container) as a generator, transformer or
	// validator. Slipway runs no program a repository names while rendering.
	ErrFunction = errors.New("KRM functions (exec or container) are not run: commit their output instead")
)

// RefusedError is a field of a kustomization (or of a generator or transformer
// configuration) that Slipway does not build, located in its file.
type RefusedError struct {
	File  string // from the repository root
	Line  int
	Field string // e.g. resources[1], patches[0].path
	Value string // the value refused, if one
	Err   error  // ErrRemote, ErrHelm or ErrFunction
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Reason())
}

// Reason is the error without the file and line, for reports that place it themselves.
func (e *RefusedError) Reason() string {
	if e.Value != "" {
		return fmt.Sprintf("%s: %q: %v", e.Field, e.Value, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.Field, e.Err)
}

func (e *RefusedError) Unwrap() error { return e.Err }

// Fields of a kustomization that name files or bases (kustomize's types.Kustomization).
var (
	// A list of paths.
	pathLists = []string{"resources", "bases", "components", "crds", "configurations"}
	// A list of paths or inline YAML (several lines).
	pathOrInlineLists = []string{"generators", "transformers", "validators", "patchesStrategicMerge"}
	// A list of objects whose path field names a file.
	objectLists = []string{"patches", "patchesJson6902", "replacements"}
	// A list of generator arguments with files, envs and env.
	generatorLists = []string{"configMapGenerator", "secretGenerator"}
	// Fields of the Helm chart generator.
	helmFields = []string{"helmCharts", "helmGlobals", "helmChartInflationGenerator"}
)

// checkKustomization refuses what a kustomization file names that would reach past the
// checkout (remote bases, resources and files) or run a program (the Helm generator).
// Exec and container KRM functions are left to kustomize, whose plugins are off.
func checkKustomization(file string, data []byte) error {
	doc, err := topMapping(data)
	if err != nil || doc == nil {
		return nil // kustomize reports its own syntax errors
	}
	c := checker{file: file}
	for i := 0; i+1 < len(doc.Content); i += 2 {
		k, v := doc.Content[i], doc.Content[i+1]
		switch name := k.Value; {
		case slices.Contains(helmFields, name):
			return &RefusedError{File: file, Line: k.Line, Field: name, Err: ErrHelm}
		case slices.Contains(pathLists, name):
			c.list(name, v, false)
		case slices.Contains(pathOrInlineLists, name):
			c.list(name, v, true)
		case slices.Contains(objectLists, name):
			c.objects(name, v, "path")
		case slices.Contains(generatorLists, name):
			for j, g := range items(v) {
				c.generator(fmt.Sprintf("%s[%d]", name, j), g)
			}
		case name == "openapi":
			c.objects(name, &yaml.Node{Kind: yaml.SequenceNode, Content: []*yaml.Node{v}}, "path")
		}
	}
	return c.err
}

// Built-in generator and transformer configurations (files listed under generators or
// transformers) that name files.
const (
	kindHelm = "HelmChartInflationGenerator"
)

// functionAnnotations mark a KRM function's configuration.
var functionAnnotations = []string{"config.kubernetes.io/function", "config.k8s.io/function"}

var configKinds = []string{"PatchTransformer", "PatchJson6902Transformer", "PatchStrategicMergeTransformer",
	"ReplacementTransformer", "ConfigMapGenerator", "SecretGenerator", kindHelm}

// checkConfig checks a file that may be a built-in generator or transformer configuration
// the same way: its file fields must be local, and the Helm generator is refused.
func checkConfig(file string, data []byte) error {
	mentioned := false
	for _, k := range append(configKinds, functionAnnotations...) {
		if bytes.Contains(data, []byte(k)) {
			mentioned = true
			break
		}
	}
	if !mentioned {
		return nil // the common case, a resource: no second parse
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		if err := dec.Decode(&n); err != nil {
			return nil // end of stream, or kustomize reports the syntax error
		}
		if len(n.Content) == 0 || n.Content[0].Kind != yaml.MappingNode {
			continue
		}
		doc := n.Content[0]
		kind := value(doc, "kind")
		for _, a := range functionAnnotations {
			if n := value(value(value(doc, "metadata"), "annotations"), a); n != nil {
				return &RefusedError{File: file, Line: n.Line, Field: "metadata.annotations." + a, Err: ErrFunction}
			}
		}
		c := checker{file: file}
		switch {
		case kind == nil:
		case kind.Value == kindHelm:
			return &RefusedError{File: file, Line: kind.Line, Field: "kind", Value: kindHelm, Err: ErrHelm}
		case kind.Value == "PatchTransformer" || kind.Value == "PatchJson6902Transformer":
			c.scalar("path", value(doc, "path"), false)
		case kind.Value == "PatchStrategicMergeTransformer":
			c.list("paths", value(doc, "paths"), true)
		case kind.Value == "ReplacementTransformer":
			c.objects("replacements", value(doc, "replacements"), "path")
		case kind.Value == "ConfigMapGenerator" || kind.Value == "SecretGenerator":
			c.generator(kind.Value, doc)
		}
		if c.err != nil {
			return c.err
		}
	}
}

// checker keeps the first refusal found in one file.
type checker struct {
	file string
	err  error
}

func (c *checker) scalar(field string, n *yaml.Node, inline bool) {
	if c.err != nil || n == nil || n.Kind != yaml.ScalarNode {
		return
	}
	if inline && strings.Contains(n.Value, "\n") {
		// An inline patch or configuration: checked as if it were a file of its own.
		if err := checkConfig(c.file, []byte(n.Value)); err != nil {
			var re *RefusedError
			if errors.As(err, &re) {
				re.Line += n.Line
				if n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) == 0 {
					re.Line-- // the text starts on the key's line
				}
				re.Field = field + "." + re.Field
			}
			c.err = err
		}
		return
	}
	if remote(n.Value) {
		c.err = &RefusedError{File: c.file, Line: n.Line, Field: field, Value: n.Value, Err: ErrRemote}
	}
}

func (c *checker) list(field string, n *yaml.Node, inline bool) {
	for i, it := range items(n) {
		c.scalar(fmt.Sprintf("%s[%d]", field, i), it, inline)
	}
}

func (c *checker) objects(field string, n *yaml.Node, key string) {
	for i, it := range items(n) {
		c.scalar(fmt.Sprintf("%s[%d].%s", field, i, key), value(it, key), false)
	}
}

// generator checks a configMapGenerator or secretGenerator: files (KEY=PATH or PATH), envs
// and env.
func (c *checker) generator(field string, g *yaml.Node) {
	for i, f := range items(value(g, "files")) {
		if f.Kind != yaml.ScalarNode {
			continue
		}
		c.scalar(fmt.Sprintf("%s.files[%d]", field, i), f, false)
		if _, after, ok := strings.Cut(f.Value, "="); ok {
			c.scalar(fmt.Sprintf("%s.files[%d]", field, i), &yaml.Node{Kind: yaml.ScalarNode, Value: after, Line: f.Line}, false)
		}
	}
	c.list(field+".envs", value(g, "envs"), false)
	c.scalar(field+".env", value(g, "env"), false)
}

// remote reports whether kustomize would fetch p rather than read it from the checkout:
// a URL (https://, ssh://, file://, ...), a go-getter "git::" address, a GitHub shorthand
// (github.com/org/repo) or an SCP-style address (git@host:org/repo). A local path whose
// first element holds ':' or '@' is refused with them, since kustomize reads it as one.
func remote(p string) bool {
	lower := strings.ToLower(strings.TrimSpace(p))
	first, _, _ := strings.Cut(lower, "/")
	return strings.Contains(lower, "://") || strings.HasPrefix(lower, "git::") ||
		first == "github.com" || strings.HasPrefix(lower, "github.com:") ||
		strings.ContainsAny(first, ":@")
}

// topMapping is the first document's top mapping, or nil.
func topMapping(data []byte) (*yaml.Node, error) {
	var n yaml.Node
	if err := yaml.Unmarshal(data, &n); err != nil {
		return nil, err
	}
	if len(n.Content) == 0 || n.Content[0].Kind != yaml.MappingNode {
		return nil, nil
	}
	return n.Content[0], nil
}

// value is the value of key in mapping m, or nil.
func value(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// items are the elements of a sequence, or none.
func items(n *yaml.Node) []*yaml.Node {
	if n == nil || n.Kind != yaml.SequenceNode {
		return nil
	}
	return n.Content
}
