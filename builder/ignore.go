package builder

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"

	"github.com/slipwayhq/slipway/internal/repofs"
)

// loadIgnore reads the patterns that keep files out of the build context: the
// Dockerfile-specific `<Dockerfile>.dockerignore` when present (as BuildKit does), else the
// context's `.dockerignore`. No file means nothing is ignored. Both are read inside the
// checkout root: a symlink out of it is an error, not followed.
func loadIgnore(root, dockerfile, contextDir string) (*patternmatcher.PatternMatcher, error) {
	repo, err := repofs.Open(root)
	if err != nil {
		return nil, err
	}
	defer repo.Close()
	for _, p := range []string{dockerfile + ".dockerignore", filepath.Join(contextDir, ".dockerignore")} {
		rel, err := filepath.Rel(repo.Dir(), p)
		if err != nil {
			return nil, err
		}
		f, err := repo.Open(rel)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", filepath.Base(p), err)
		}
		patterns, err := ignorefile.ReadAll(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", filepath.Base(p), err)
		}
		pm, err := patternmatcher.New(patterns)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Base(p), err)
		}
		return pm, nil
	}
	return patternmatcher.New(nil)
}
