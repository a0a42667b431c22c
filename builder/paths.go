package builder

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/slipwayhq/slipway/render"
)

// sources are a request's Dockerfile and context, resolved to real paths inside the checkout.
type sources struct {
	dockerfile string // real path of the Dockerfile
	context    string // real path of the context folder
	dfRel      string // the Dockerfile as the pipeline names it, for messages
}

// resolveSources checks that the Dockerfile and context stay inside the checkout, symlinks
// included, before anything reads them.
func resolveSources(req Request) (sources, error) {
	dfRel := req.Dockerfile
	if dfRel == "" {
		dfRel = "Dockerfile"
	}
	df, err := render.InsideRoot(req.Root, dfRel)
	if err != nil {
		return sources{}, fmt.Errorf("dockerfile: %w", err)
	}
	if info, err := os.Stat(df); err != nil || !info.Mode().IsRegular() {
		return sources{}, fmt.Errorf("dockerfile %q: not a regular file", dfRel)
	}
	ctxRel := req.Context
	if ctxRel == "" {
		ctxRel = filepath.Dir(filepath.Clean(dfRel))
	}
	dir, err := render.InsideRoot(req.Root, ctxRel)
	if err != nil {
		return sources{}, fmt.Errorf("context: %w", err)
	}
	if info, err := os.Stat(dir); err != nil || !info.IsDir() {
		return sources{}, fmt.Errorf("context %q: not a folder", ctxRel)
	}
	return sources{dockerfile: df, context: dir, dfRel: dfRel}, nil
}
