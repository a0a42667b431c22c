package helm

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/release"

	"github.com/slipwayhq/slipway/render"
)

// Render returns the objects an install (or, with upgrade, an upgrade) of ch with values
// would apply, applying nothing: Helm's own dry-run, with the cluster's capabilities. It
// covers the templates, the hooks and, for an install (which creates them first), the
// CRDs in the chart's crds/ folders. Each object is named by its template's path.
func (r *Release) Render(ctx context.Context, ch *chart.Chart, values map[string]any, upgrade bool) ([]render.Manifest, error) {
	var rel *release.Release
	var err error
	if upgrade {
		up := action.NewUpgrade(r.cfg)
		up.Namespace, up.DryRun = r.Namespace, true
		up.PostRenderer = newOwnerRenderer(r.Owner, r.Name, r.Namespace)
		rel, err = up.RunWithContext(ctx, r.Name, ch, values)
	} else {
		in := action.NewInstall(r.cfg)
		in.ReleaseName, in.Namespace, in.DryRun = r.Name, r.Namespace, true
		in.PostRenderer = newOwnerRenderer(r.Owner, r.Name, r.Namespace)
		rel, err = in.RunWithContext(ctx, ch, values)
	}
	if err != nil {
		return nil, fmt.Errorf("helm dry-run of %s/%s: %w", r.Namespace, r.Name, err)
	}
	docs := newDocCounter()
	ms, err := docs.parse(rel.Manifest)
	if err != nil {
		return nil, err
	}
	for _, h := range rel.Hooks {
		more, err := docs.parseSource(h.Path, h.Manifest, true)
		if err != nil {
			return nil, err
		}
		ms = append(ms, more...)
	}
	if !upgrade {
		for _, crd := range ch.CRDObjects() {
			more, err := docs.parseSource(crd.Filename, string(crd.File.Data), false)
			if err != nil {
				return nil, err
			}
			ms = append(ms, more...)
		}
	}
	return ms, nil
}

var (
	docSeparator = regexp.MustCompile(`(?m)^---\s*$`)
	sourceLine   = regexp.MustCompile(`(?m)^# Source: (.+)$`)
)

// docCounter numbers the documents each template rendered, in the order Helm lists them.
type docCounter map[string]int

func newDocCounter() docCounter { return docCounter{} }

// parse splits a release manifest, whose documents each start with "# Source: PATH".
func (c docCounter) parse(manifest string) ([]render.Manifest, error) {
	var out []render.Manifest
	for _, doc := range docSeparator.Split(manifest, -1) {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		source := "release manifest"
		if m := sourceLine.FindStringSubmatch(doc); m != nil {
			source = strings.TrimSpace(m[1])
		}
		more, err := c.parseSource(source, doc, true)
		if err != nil {
			return nil, err
		}
		out = append(out, more...)
	}
	return out, nil
}

// parseSource reads one source's text. Rendered templates reach here a document at a time
// (renumber: counted across calls); a CRD file whole, keeping its own numbering.
func (c docCounter) parseSource(source, text string, renumber bool) ([]render.Manifest, error) {
	ms, err := render.ParseManifests(source, []byte(text))
	if err != nil {
		return nil, fmt.Errorf("read rendered %s: %w", source, err)
	}
	if !renumber {
		return ms, nil
	}
	for i := range ms {
		c[source]++
		ms[i].Doc = c[source]
	}
	return ms, nil
}
