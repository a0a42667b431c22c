package builder

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// A registry with mirrors: the base image named nginx:1.27-alpine (Docker Hub) and the
// pushed hub.example.com/shop/shop:TAG both live at one endpoint (an in-process registry
// here; the e2e tests use the real one). Names in results stay as written.
func TestMirrorsSendRequestsToTheEndpoint(t *testing.T) {
	srv := httptest.NewServer(registry.New())
	t.Cleanup(srv.Close)
	endpoint := strings.TrimPrefix(srv.URL, "http://")
	ctx := context.Background()

	base, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	baseRef, _ := name.NewTag(endpoint+"/library/nginx:1.27-alpine", name.Insecure)
	if err := remote.Write(baseRef, base, remote.WithContext(ctx)); err != nil {
		t.Fatal(err)
	}
	cfgDir := t.TempDir()
	write(t, cfgDir, map[string]string{"config.json": "{}"})
	reg, err := NewRegistry(Options{DockerConfig: filepath.Join(cfgDir, "config.json"), Insecure: []string{endpoint},
		Mirrors: map[string]string{"docker.io": endpoint, "hub.example.com": endpoint}})
	if err != nil {
		t.Fatal(err)
	}
	build := func(tag, content string) Result {
		t.Helper()
		root := t.TempDir()
		write(t, root, map[string]string{"Dockerfile": "FROM nginx:1.27-alpine\nCOPY a.txt /a.txt\n", "a.txt": content})
		var logs []string
		res, err := NewNative(reg).Build(ctx, Request{Root: root, Registry: "hub.example.com", Workspace: "shop", Image: "shop",
			Tag: tag, ExtraTags: []string{"latest"}, Log: func(l string) { logs = append(logs, l) }})
		if err != nil {
			t.Fatalf("build %s: %v\n%s", tag, err, strings.Join(logs, "\n"))
		}
		if !slices.ContainsFunc(logs, func(l string) bool {
			return strings.Contains(l, "from its mirror "+endpoint+"/library/nginx:1.27-alpine")
		}) ||
			!slices.ContainsFunc(logs, func(l string) bool {
				return strings.Contains(l, "pushing hub.example.com/shop/shop:"+tag+" to its mirror "+endpoint+"/shop/shop:"+tag)
			}) {
			t.Errorf("the log does not say where the requests went:\n%s", strings.Join(logs, "\n"))
		}
		return res
	}
	res := build("1.4.7", "a\n")
	if res.Image != "hub.example.com/shop/shop:1.4.7" || !slices.Equal(res.Tags, []string{"1.4.7", "latest"}) {
		t.Fatalf("result %+v names the endpoint or lacks tags", res)
	}
	for _, tag := range res.Tags {
		ref, _ := name.NewTag(endpoint+"/shop/shop:"+tag, name.Insecure)
		d, err := remote.Head(ref, remote.WithContext(ctx))
		if err != nil || d.Digest.String() != res.Digest {
			t.Fatalf("%s at the endpoint: %v %v; want %s", ref, d, err, res.Digest)
		}
	}

	// Retention lists and deletes at the endpoint too.
	build("1.4.8", "b\n")
	kept, err := reg.RetainTags(ctx, "hub.example.com/shop/shop", "1.4.${BUILD_ID}", 1, map[string]bool{"1.4.7": true, "1.4.8": true}, nil)
	if err != nil || !slices.Equal(kept.Deleted, []string{"1.4.7"}) {
		t.Fatalf("retention through the mirror: %+v %v", kept, err)
	}

	// Charts are pushed and pulled through it as well.
	pkg, err := PackageChart(writeChart(t, map[string]string{"Chart.yaml": webChart}), ChartOptions{Name: "web", Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	c := ChartRef{Repository: "oci://hub.example.com/charts", Name: "web", Version: "1.0.0"}
	digest, err := reg.PushChart(ctx, c, pkg, false)
	if err != nil {
		t.Fatal(err)
	}
	if ref, _ := name.NewTag(endpoint+"/charts/web:1.0.0", name.Insecure); func() bool {
		d, err := remote.Head(ref, remote.WithContext(ctx))
		return err != nil || d.Digest.String() != digest
	}() {
		t.Fatalf("chart %s is not at the endpoint", c)
	}
	if _, got, err := reg.PullChart(ctx, c); err != nil || got != digest {
		t.Fatalf("pull chart through the mirror: %s %v", got, err)
	}
}
