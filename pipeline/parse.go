package pipeline

import (
	"fmt"
	"io/fs"

	"github.com/slipwayhq/slipway/pipeline/diag"
	"github.com/slipwayhq/slipway/pipeline/yamlstrict"
)

// DefaultFile is the name of the pipeline file at the root of a repository.
const DefaultFile = ".pipeline.yaml"

// Parse reads every pipeline (one per YAML document) in data, which was read from file. It
// reports syntax and structure problems (unknown fields, wrong types, duplicate keys, missing
// required fields) but not semantic ones; see Validate. Defaults are filled in.
func Parse(file string, data []byte) ([]*Pipeline, diag.List) {
	var errs diag.List
	r := diag.Reporter{File: file, List: &errs}
	docs := yamlstrict.ReadDocuments(r, data)
	pipelines := make([]*Pipeline, 0, len(docs))
	for _, doc := range docs {
		p := &Pipeline{File: file}
		p.Positions = yamlstrict.Decode(r, doc, p)
		pipelines = append(pipelines, p)
	}
	if len(docs) == 0 && len(errs) == 0 {
		r.At(diag.Pos{Line: 1, Column: 1}, "", "no pipeline in file: expected a YAML mapping with name and stages")
	}
	errs.Sort()
	return pipelines, errs
}

// Load parses and validates the pipelines in data. The error, if any, is a diag.List with
// every problem found.
func Load(file string, data []byte, opts Options) ([]*Pipeline, error) {
	pipelines, errs := Parse(file, data)
	errs = append(errs, Validate(pipelines, opts)...)
	errs.Sort()
	if len(errs) > 0 {
		return nil, errs
	}
	return pipelines, nil
}

// LoadFile reads name from fsys and loads it like Load; the file name in errors is display.
func LoadFile(fsys fs.FS, name, display string, opts Options) ([]*Pipeline, error) {
	data, err := fs.ReadFile(fsys, name)
	if err != nil {
		return nil, fmt.Errorf("reading pipeline file %s: %w", display, err)
	}
	return Load(display, data, opts)
}
