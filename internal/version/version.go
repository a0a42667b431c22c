// Package version reports what this binary is, as stamped by the build's ldflags.
package version

import (
	"runtime"
	"runtime/debug"
)

// Set with -ldflags "-X github.com/slipwayhq/slipway/internal/version.version=..." by `make build`.
var (
	version = "dev"
	commit  = "unknown"
)

// Info describes the running binary.
type Info struct {
	Version   string            `json:"version"`
	Commit    string            `json:"commit"`
	GoVersion string            `json:"go"`
	Platform  string            `json:"platform"`
	Libraries map[string]string `json:"libraries"`
}

// librariesOfNote are the modules whose versions decide how Slipway talks to clusters,
// registries and Helm; users filing bugs need them.
var librariesOfNote = []string{
	"k8s.io/client-go",
	"k8s.io/apimachinery",
	"github.com/fluxcd/pkg/ssa",
	"helm.sh/helm/v3",
	"github.com/google/go-containerregistry",
	"github.com/moby/buildkit",
	"github.com/go-git/go-git/v5",
}

// Get returns the version information of this binary. Library versions come from the
// module information the Go linker embeds, so they cannot drift from what was built.
func Get() Info {
	info := Info{
		Version:   version,
		Commit:    commit,
		GoVersion: runtime.Version(),
		Platform:  runtime.GOOS + "/" + runtime.GOARCH,
		Libraries: map[string]string{},
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return info
	}
	deps := map[string]string{}
	for _, d := range bi.Deps {
		v := d.Version
		if d.Replace != nil {
			v = d.Replace.Version
		}
		deps[d.Path] = v
	}
	for _, lib := range librariesOfNote {
		if v, ok := deps[lib]; ok {
			info.Libraries[lib] = v
		}
	}
	return info
}
