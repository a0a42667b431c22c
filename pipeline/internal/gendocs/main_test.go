package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/slipwayhq/slipway/pipeline"
)

// The committed schema and field reference must be what the types generate today.
func TestCommittedDocsAreCurrent(t *testing.T) {
	docs := filepath.Join("..", "..", "..", "docs")
	schema, err := pipeline.JSONSchema()
	if err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile(filepath.Join(docs, "pipeline.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	if string(committed) != string(schema) {
		t.Error("docs/pipeline.schema.json is out of date: run go generate ./pipeline")
	}
	doc, err := os.ReadFile(filepath.Join(docs, "pipeline.md"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := splice(string(doc), pipeline.FieldReference())
	if err != nil {
		t.Fatal(err)
	}
	if want != string(doc) {
		t.Error("the field reference in docs/pipeline.md is out of date: run go generate ./pipeline")
	}
}

func TestSpliceNeedsMarkers(t *testing.T) {
	if _, err := splice("no markers", "x"); err == nil {
		t.Error("want an error without markers")
	}
	got, err := splice("a\n"+beginMarker+"\nold\n"+endMarker+"\nb", "new\n")
	if err != nil || got != "a\n"+beginMarker+"\n\nnew\n"+endMarker+"\nb" {
		t.Errorf("splice: %q %v", got, err)
	}
}
