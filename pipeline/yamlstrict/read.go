// Package yamlstrict decodes YAML into Go structs the way a compiler reads source: unknown
// fields, wrong types, duplicate keys and missing required fields are all reported, each at
// its line and column, and decoding carries on so that one pass finds every problem.
//
// Struct fields are described by tags:
//
//	yaml:"name"            the key (",inline" with variant:"..." for tagged unions)
//	required:"true"        the key must be present
//	enum:"a,b,c"           the scalar must be one of these
//	discriminator:"true"   this field selects which variant:"..." inline struct applies
//	doc:"..." default:"..." used only by schema generators
package yamlstrict

import (
	"bytes"
	"errors"
	"io"
	"regexp"
	"strconv"

	"go.yaml.in/yaml/v3"

	"github.com/slipwayhq/slipway/pipeline/diag"
)

// yaml.v3 reports syntax errors as text only; the line is in the message.
var syntaxLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// ReadDocuments splits data into its YAML documents and returns the root node of each
// non-empty one, in order. Syntax errors and duplicate mapping keys are reported; after a
// syntax error the rest of the file cannot be read, so the documents before it are returned.
func ReadDocuments(r diag.Reporter, data []byte) []*yaml.Node {
	docs, _ := ReadDocumentsMax(r, data, 0)
	return docs
}

// ReadDocumentsMax is ReadDocuments reading at most max documents (0: no limit). When data
// holds more, next is the root of the first one past max, for its position; the rest of
// data is not read.
func ReadDocumentsMax(r diag.Reporter, data []byte, max int) (docs []*yaml.Node, next *yaml.Node) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			reportSyntax(r, err)
			return docs, nil
		}
		if len(doc.Content) == 0 {
			continue
		}
		root := doc.Content[0]
		if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
			continue // a document holding only comments or "---"
		}
		if max > 0 && len(docs) == max {
			return docs, root
		}
		checkDuplicateKeys(r, root)
		docs = append(docs, root)
	}
}

func reportSyntax(r diag.Reporter, err error) {
	msg := err.Error()
	pos := diag.Pos{Line: 1, Column: 1}
	if m := syntaxLine.FindStringSubmatch(msg); m != nil {
		line, convErr := strconv.Atoi(m[1])
		if convErr == nil && line > 0 {
			pos.Line = line
		}
		msg = m[2]
	} else if len(msg) > 6 && msg[:6] == "yaml: " {
		msg = msg[6:]
	}
	r.At(pos, "", "YAML syntax error: %s", msg)
}

// checkDuplicateKeys walks the tree as written (aliases are not followed: the anchored node
// is checked where it is defined) and reports every key defined twice in one mapping.
func checkDuplicateKeys(r diag.Reporter, n *yaml.Node) {
	switch n.Kind {
	case yaml.MappingNode:
		seen := make(map[string]*yaml.Node, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind == yaml.ScalarNode {
				if first, dup := seen[k.Value]; dup {
					r.At(pos(k), "", "duplicate key %q (first defined at line %d)", k.Value, first.Line)
				} else {
					seen[k.Value] = k
				}
			}
			checkDuplicateKeys(r, n.Content[i+1])
		}
	case yaml.SequenceNode, yaml.DocumentNode:
		for _, c := range n.Content {
			checkDuplicateKeys(r, c)
		}
	}
}

func pos(n *yaml.Node) diag.Pos { return diag.Pos{Line: n.Line, Column: n.Column} }
