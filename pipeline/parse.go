package pipeline

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/slipwayhq/slipway/internal/repofs"
	"github.com/slipwayhq/slipway/pipeline/diag"
	"github.com/slipwayhq/slipway/pipeline/yamlstrict"
)

// DefaultFile is the name of the pipeline file at the root of a repository.
const DefaultFile = ".pipeline.yaml"

// ErrNoFile says there is no pipeline file where LoadFile looked: a repository without
// pipelines, which is not the same as one whose file is invalid. A symlink in its place that
// points to nothing is an invalid file, not a missing one.
var ErrNoFile = errors.New("no pipeline file")

// Parse reads every pipeline (one per YAML document) in data, which was read from file. It
// reports syntax and structure problems (unknown fields, wrong types, duplicate keys, missing
// required fields) but not semantic ones; see Validate. Defaults are filled in.
func Parse(file string, data []byte) ([]*Pipeline, diag.List) {
	return parse(file, data, 0)
}

// parse is Parse reading at most max pipelines (0: any number); a file holding more is an
// error at the first one past the limit, and the rest of the file is not read.
func parse(file string, data []byte, max int) ([]*Pipeline, diag.List) {
	var errs diag.List
	r := diag.Reporter{File: file, List: &errs}
	docs, next := yamlstrict.ReadDocumentsMax(r, data, max)
	if next != nil {
		r.At(diag.Pos{Line: next.Line, Column: next.Column}, "",
			"more than %d pipelines in one file, the limit (the repository's limits.pipelinesPerFile in slipway.yaml raises it)", max)
		errs.Sort()
		return nil, errs
	}
	pipelines := make([]*Pipeline, 0, len(docs))
	strs := yamlstrict.Strings{}
	for _, doc := range docs {
		p := &Pipeline{File: file}
		p.Positions = yamlstrict.Pack(yamlstrict.DecodeShared(r, doc, p, strs))
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
	pipelines, errs := parse(file, data, opts.Limits.WithDefaults().PipelinesPerFile)
	errs = append(errs, Validate(pipelines, opts)...)
	errs.Sort()
	if len(errs) > 0 {
		return nil, errs
	}
	for _, p := range pipelines {
		p.resolveEnvironments()
	}
	return pipelines, nil
}

// LoadFile reads name from repo and loads it like Load; the file name in errors is display.
// A file over limits.pipelineFileSize is refused before any of it is read.
func LoadFile(repo *repofs.Repo, name, display string, opts Options) ([]*Pipeline, error) {
	data, err := repo.ReadFile(name, opts.Limits.pipelineFile())
	var tl *repofs.TooLargeError
	if errors.As(err, &tl) {
		return nil, diag.List{{File: display, Line: 1, Column: 1, Message: tl.Reason()}}
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s does not exist", ErrNoFile, display)
	}
	if err != nil {
		return nil, fmt.Errorf("reading pipeline file %s: %w", display, err)
	}
	return Load(display, data, opts)
}
