// Command gendocs writes the pipeline JSON Schema and the generated field reference inside
// docs/pipeline.md, both from the Go types (run by go generate in package pipeline).
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/slipwayhq/slipway/pipeline"
)

// The generated part of the reference sits between these lines; the rest is written by hand.
const (
	beginMarker = "<!-- BEGIN GENERATED FIELD REFERENCE: go generate ./pipeline -->"
	endMarker   = "<!-- END GENERATED FIELD REFERENCE -->"
)

func main() {
	schemaPath := flag.String("schema", "", "where to write the JSON Schema")
	docPath := flag.String("doc", "", "Markdown file whose generated section to replace")
	flag.Parse()
	if err := run(*schemaPath, *docPath); err != nil {
		fmt.Fprintln(os.Stderr, "gendocs:", err)
		os.Exit(1)
	}
}

func run(schemaPath, docPath string) error {
	schema, err := pipeline.JSONSchema()
	if err != nil {
		return err
	}
	if err := os.WriteFile(schemaPath, schema, 0o644); err != nil {
		return fmt.Errorf("writing schema: %w", err)
	}
	doc, err := os.ReadFile(docPath)
	if err != nil {
		return fmt.Errorf("reading reference: %w", err)
	}
	out, err := splice(string(doc), pipeline.FieldReference())
	if err != nil {
		return fmt.Errorf("%s: %w", docPath, err)
	}
	if err := os.WriteFile(docPath, []byte(out), 0o644); err != nil {
		return fmt.Errorf("writing reference: %w", err)
	}
	return nil
}

// splice replaces what lies between the markers in doc with generated.
func splice(doc, generated string) (string, error) {
	begin := strings.Index(doc, beginMarker)
	end := strings.Index(doc, endMarker)
	if begin < 0 || end < begin {
		return "", fmt.Errorf("markers %q and %q not found in order", beginMarker, endMarker)
	}
	return doc[:begin+len(beginMarker)] + "\n\n" + generated + doc[end:], nil
}
