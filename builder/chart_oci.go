package builder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"helm.sh/helm/v3/pkg/chart"
	helmregistry "helm.sh/helm/v3/pkg/registry"
)

// Charts travel as OCI artifacts in Helm's own layout (config = Chart.yaml as JSON, one
// layer = the .tgz), pushed with the same registry client, credentials and insecure-host
// handling as images. Helm's registry client would need its own credential setup and takes
// no context, so it is not used here; `helm pull` reads what this writes.

// ChartRef is where one chart version lives: oci://HOST/PATH/NAME:VERSION.
type ChartRef struct {
	Repository string // oci://HOST/PATH
	Name       string
	Version    string
}

// reference is the OCI reference requests go to (through a mirror of the registry, if
// any); Helm writes a version's "+" as "_" because tags cannot hold it.
func (c ChartRef) reference(r *Registry) (name.Tag, error) {
	repo, ok := strings.CutPrefix(c.Repository, "oci://")
	if !ok {
		return name.Tag{}, fmt.Errorf("chart repository %q must start with oci://", c.Repository)
	}
	repo = strings.TrimSuffix(repo, "/")
	host, _, _ := strings.Cut(repo, "/")
	s := repo + "/" + c.Name + ":" + strings.ReplaceAll(c.Version, "+", "_")
	tag, err := name.NewTag(s, append(r.nameOptions(host), name.StrictValidation)...)
	if err != nil {
		return name.Tag{}, fmt.Errorf("chart reference %s: %w", s, err)
	}
	return r.viaTag(tag)
}

func (c ChartRef) String() string { return c.Repository + "/" + c.Name + ":" + c.Version }

// ErrChartExists is returned when pushing a version that the repository already has.
var ErrChartExists = errors.New("chart version already exists")

// PushChart pushes pkg as c. An existing version is refused unless overwrite: a published
// version is what deploys name, and silently replacing it would change deployed history.
// It returns the manifest digest.
func (r *Registry) PushChart(ctx context.Context, c ChartRef, pkg *ChartPackage, overwrite bool) (string, error) {
	ref, err := c.reference(r)
	if err != nil {
		return "", err
	}
	opts := r.remoteOptions(ctx)
	if !overwrite {
		_, err := remote.Head(ref, opts...)
		switch {
		case err == nil:
			return "", fmt.Errorf("push chart %s: %w (set overwrite: true to replace it)", c, ErrChartExists)
		case !isNotFound(err):
			return "", r.explain(err, "look up chart", ref)
		}
	}
	config, err := json.Marshal(pkg.Metadata)
	if err != nil {
		return "", fmt.Errorf("push chart %s: encode metadata: %w", c, err)
	}
	configLayer := static.NewLayer(config, helmregistry.ConfigMediaType)
	chartLayer := static.NewLayer(pkg.Data, helmregistry.ChartLayerMediaType)
	for _, l := range []v1.Layer{configLayer, chartLayer} {
		if err := remote.WriteLayer(ref.Context(), l, opts...); err != nil {
			return "", r.explain(err, "push chart", ref)
		}
	}
	m, err := chartManifest(pkg.Metadata, config, pkg.Data)
	if err != nil {
		return "", fmt.Errorf("push chart %s: %w", c, err)
	}
	if err := remote.Put(ref, m, opts...); err != nil {
		return "", r.explain(err, "push chart", ref)
	}
	return m.digest(), nil
}

// PullChart fetches c's package and returns it with the manifest digest.
func (r *Registry) PullChart(ctx context.Context, c ChartRef) ([]byte, string, error) {
	ref, err := c.reference(r)
	if err != nil {
		return nil, "", err
	}
	opts := r.remoteOptions(ctx)
	desc, err := remote.Get(ref, opts...)
	if err != nil {
		if isNotFound(err) {
			return nil, "", fmt.Errorf("chart %s is not in the repository (was it published?)", c)
		}
		return nil, "", r.explain(err, "pull chart", ref)
	}
	var m v1.Manifest
	if err := json.Unmarshal(desc.Manifest, &m); err != nil {
		return nil, "", fmt.Errorf("pull chart %s: manifest: %w", c, err)
	}
	for _, l := range m.Layers {
		if l.MediaType != helmregistry.ChartLayerMediaType && l.MediaType != helmregistry.LegacyChartLayerMediaType {
			continue
		}
		layer, err := remote.Layer(ref.Context().Digest(l.Digest.String()), opts...)
		if err != nil {
			return nil, "", r.explain(err, "pull chart", ref)
		}
		rc, err := layer.Compressed()
		if err != nil {
			return nil, "", r.explain(err, "pull chart", ref)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return nil, "", fmt.Errorf("pull chart %s: %w", c, err)
		}
		return data, desc.Digest.String(), nil
	}
	return nil, "", fmt.Errorf("pull chart %s: the artifact has no Helm chart layer (is it an image?)", c)
}

func isNotFound(err error) bool {
	var te *transport.Error
	return errors.As(err, &te) && te.StatusCode == http.StatusNotFound
}

// rawManifest is an OCI manifest put as is.
type rawManifest struct{ body []byte }

func (m rawManifest) RawManifest() ([]byte, error) { return m.body, nil }

func (m rawManifest) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }

func (m rawManifest) digest() string {
	sum := sha256.Sum256(m.body)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func chartManifest(meta *chart.Metadata, config, data []byte) (rawManifest, error) {
	desc := func(b []byte, mt string) v1.Descriptor {
		sum := sha256.Sum256(b)
		return v1.Descriptor{MediaType: types.MediaType(mt), Size: int64(len(b)),
			Digest: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}}
	}
	annotations := map[string]string{
		"org.opencontainers.image.title":   meta.Name,
		"org.opencontainers.image.version": meta.Version,
	}
	if meta.Description != "" {
		annotations["org.opencontainers.image.description"] = meta.Description
	}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Config:        desc(config, helmregistry.ConfigMediaType),
		Layers:        []v1.Descriptor{desc(data, helmregistry.ChartLayerMediaType)},
		Annotations:   annotations,
	}
	body, err := json.Marshal(m)
	if err != nil {
		return rawManifest{}, fmt.Errorf("encode manifest: %w", err)
	}
	return rawManifest{body: body}, nil
}
