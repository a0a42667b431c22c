// Package kustomize builds a kustomization of a repository checkout with kustomize's own
// library (sigs.k8s.io/kustomize/api, as kubectl and Flux do), confined to the checkout:
// files are read through repofs within the repository's limits, the loader is restricted
// to each kustomization's root, remote bases and the Helm generator are refused before
// kustomize could fetch or run anything, and plugins (exec and container functions) are
// off.
package kustomize

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"

	"sigs.k8s.io/kustomize/api/konfig"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"

	"github.com/slipwayhq/slipway/internal/repofs"
)

// File is the kustomization file in dir ("" when there is none), as kustomize looks for it.
func File(repo *repofs.Repo, dir string) (string, error) {
	fi, err := repo.Stat(dir)
	if err != nil {
		return "", err
	}
	if !fi.IsDir() {
		if slices.Contains(konfig.RecognizedKustomizationFileNames(), path.Base(dir)) {
			return "", fmt.Errorf("%q is a kustomization: name its folder %q to build it", dir, path.Dir(dir))
		}
		return "", nil
	}
	var found []string
	for _, name := range konfig.RecognizedKustomizationFileNames() {
		p := path.Join(dir, name)
		if _, err := repo.Stat(p); err == nil {
			found = append(found, p)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
	}
	switch len(found) {
	case 0:
		return "", nil
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("folder %q holds %s: keep one", dir, strings.Join(found, " and "))
}

// Output is a build's result.
type Output struct {
	YAML  []byte   // the objects, one YAML document each, in kustomize's order
	Files []string // the repository files the build read, from the root
}

// Error is a build that failed, naming the kustomization folder.
type Error struct {
	Dir string
	Err error
}

func (e *Error) Error() string { return fmt.Sprintf("kustomize build %s: %v", e.Dir, e.Err) }
func (e *Error) Unwrap() error { return e.Err }

// Build builds the kustomization in dir (a folder from the repository root). Each file is
// read within limits.
func Build(repo *repofs.Repo, dir string, limits repofs.TextLimits) (*Output, error) {
	fsys := newRepoFS(repo, limits)
	opts := krusty.MakeDefaultOptions()
	// Each kustomization reads files only below its own folder (bases are kustomizations of
	// their own); plugins are off: no exec or container functions, no Helm.
	opts.LoadRestrictions = types.LoadRestrictionsRootOnly
	opts.PluginConfig = types.DisabledPluginConfig()
	// As `kustomize build` and `kubectl kustomize` order objects: the kustomization's
	// sortOptions if it has them, else kustomize's legacy order (namespaces and CRDs first).
	opts.Reorder = krusty.ReorderOptionUnspecified
	real, err := repo.Resolve(dir)
	if err != nil {
		return nil, &Error{Dir: dir, Err: err}
	}
	m, err := krusty.MakeKustomizer(opts).Run(fsys, abs(real))
	// A refused read fails the build even when kustomize carried on without the file (it
	// reads a folder's kustomization under each recognised name, and treats some unreadable
	// paths as inline text): nothing refused is ever silently left out.
	if fsys.refused != nil {
		return nil, &Error{Dir: dir, Err: fsys.refused}
	}
	if err != nil {
		return nil, &Error{Dir: dir, Err: errors.New(relative(err.Error()))}
	}
	out, err := m.AsYaml()
	if err != nil {
		return nil, &Error{Dir: dir, Err: err}
	}
	files := slices.Clone(fsys.read)
	slices.Sort(files)
	return &Output{YAML: out, Files: files}, nil
}

// relative writes kustomize's paths, which are below the checkout's mount point, from the
// repository root as every other error does.
func relative(msg string) string {
	return strings.ReplaceAll(strings.ReplaceAll(msg, root+"/", ""), root, ".")
}
