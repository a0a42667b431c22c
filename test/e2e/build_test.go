package e2e

import (
	"archive/tar"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/slipwayhq/slipway/builder"
	"github.com/slipwayhq/slipway/test/testenv"
)

// uploadCounter counts blob uploads started against a registry (POST …/blobs/uploads/),
// the request a push makes for every layer or config the registry does not have.
type uploadCounter struct {
	uploads atomic.Int64
}

func (c *uploadCounter) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPost && strings.Contains(req.URL.Path, "/blobs/uploads/") {
		c.uploads.Add(1)
	}
	return http.DefaultTransport.RoundTrip(req)
}

// writeFiles creates files (path → content) under dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// checkout2048 is the seed's 2048 repository shape on the local base image.
func checkout2048(t *testing.T, env *testenv.Env) string {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Dockerfile": "FROM " + env.BaseImage + "\n\nCOPY 2048 /var/lib/nginx/html/\n\n" +
			"COPY nginx.conf /etc/nginx/nginx.conf\n\nCOPY nginx.8880.conf /etc/nginx/nginx.8880.conf\n\n" +
			"EXPOSE 80\n\nCMD [\"nginx\", \"-c\", \"/etc/nginx/nginx.8880.conf\"]\n",
		"2048/index.html":      "<html>2048</html>\n",
		"2048/js/game.js":      "// the game\n",
		"2048/style/main.css":  "body{}\n",
		"2048/README.md":       "not shipped\n",
		"nginx.conf":           "events {}\n",
		"nginx.8880.conf":      "events {}\nhttp { server { listen 8880; } }\n",
		".dockerignore":        "**/*.md\n",
		"deploy/manifest.yaml": "kind: ConfigMap\n",
	})
	return dir
}

// imageFiles pulls ref and returns its merged filesystem's regular files and their contents.
func imageFiles(t *testing.T, ref string, opts ...name.Option) (v1.Image, map[string]string) {
	t.Helper()
	r, err := name.ParseReference(ref, opts...)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r)
	if err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	rc := mutate.Extract(img)
	defer rc.Close()
	files := map[string]string{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return img, files
		}
		if err != nil {
			t.Fatalf("read %s: %v", ref, err)
		}
		if h.Typeflag == tar.TypeReg {
			b, _ := io.ReadAll(tr)
			files["/"+strings.TrimPrefix(h.Name, "/")] = string(b)
		}
	}
}

func buildCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestBuildNative2048PushesReproducibleImage(t *testing.T) {
	env := testenv.Get(t)
	root := checkout2048(t, env)
	counter := &uploadCounter{}
	b, err := builder.New(builder.Options{Insecure: []string{env.Registry}, Transport: counter})
	if err != nil {
		t.Fatal(err)
	}
	image := testenv.UniqueName(t)
	var logs []string
	req := builder.Request{Root: root, Registry: env.Registry, Workspace: "devops", Image: image, Tag: "alpha-1",
		ExtraTags: []string{"latest"}, Log: func(l string) { logs = append(logs, l) }}
	start := time.Now()
	res, err := b.Build(buildCtx(t), req)
	if err != nil {
		t.Fatalf("build: %v\nlog:\n%s", err, strings.Join(logs, "\n"))
	}
	t.Logf("cold native build and push: %v, %d blob uploads, %s", time.Since(start), counter.uploads.Load(), res.Pinned())
	if want := env.Registry + "/devops/" + image + ":alpha-1"; res.Image != want {
		t.Errorf("image = %s, want %s", res.Image, want)
	}
	if !strings.HasPrefix(res.Digest, "sha256:") || !slices.Equal(res.Tags, []string{"alpha-1", "latest"}) {
		t.Errorf("result = %+v", res)
	}

	img, files := imageFiles(t, res.Image, name.Insecure)
	if d, _ := img.Digest(); d.String() != res.Digest {
		t.Errorf("pulled digest %s, build reported %s", d, res.Digest)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := cf.Config.ExposedPorts["80/tcp"]; !ok || len(cf.Config.ExposedPorts) != 1 {
		t.Errorf("exposed ports = %v, want 80/tcp", cf.Config.ExposedPorts)
	}
	if !slices.Equal(cf.Config.Cmd, []string{"nginx", "-c", "/etc/nginx/nginx.8880.conf"}) {
		t.Errorf("cmd = %q", cf.Config.Cmd)
	}
	if cf.Architecture != "amd64" || cf.OS != "linux" {
		t.Errorf("platform = %s/%s", cf.OS, cf.Architecture)
	}
	want := map[string]string{
		"/var/lib/nginx/html/index.html":     "<html>2048</html>\n",
		"/var/lib/nginx/html/js/game.js":     "// the game\n",
		"/var/lib/nginx/html/style/main.css": "body{}\n",
		"/etc/nginx/nginx.conf":              "events {}\n",
		"/etc/nginx/nginx.8880.conf":         "events {}\nhttp { server { listen 8880; } }\n",
	}
	for p, content := range want {
		if files[p] != content {
			t.Errorf("%s in the image = %q, want %q", p, files[p], content)
		}
	}
	if _, ok := files["/var/lib/nginx/html/README.md"]; ok {
		t.Error("README.md is in the image although .dockerignore excludes it")
	}
	if _, ok := files["/bin/busybox"]; !ok {
		t.Error("/bin/busybox of the base image is missing")
	}
	latest, _ := imageFiles(t, env.Registry+"/devops/"+image+":latest", name.Insecure)
	if d, _ := latest.Digest(); d.String() != res.Digest {
		t.Errorf("latest = %s, want %s", d, res.Digest)
	}

	// The same commit again, as the next run: alpha-2 is the same image, and nothing is uploaded.
	counter.uploads.Store(0)
	req.Tag, req.ExtraTags = "alpha-2", nil
	start = time.Now()
	res2, err := b.Build(buildCtx(t), req)
	if err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	t.Logf("warm native rebuild and push: %v, %d blob uploads", time.Since(start), counter.uploads.Load())
	if n := counter.uploads.Load(); n != 0 {
		t.Errorf("unchanged rebuild started %d blob uploads, want 0", n)
	}
	if res2.Digest != res.Digest {
		t.Errorf("unchanged rebuild digest %s, first build %s", res2.Digest, res.Digest)
	}

	// One changed file: exactly one new layer and a new config.
	writeFiles(t, root, map[string]string{"nginx.conf": "events { worker_connections 64; }\n"})
	counter.uploads.Store(0)
	req.Tag = "alpha-3"
	res3, err := b.Build(buildCtx(t), req)
	if err != nil {
		t.Fatalf("build after a change: %v", err)
	}
	if n := counter.uploads.Load(); n != 2 {
		t.Errorf("a one-file change uploaded %d blobs, want 2 (its layer and the config)", n)
	}
	if res3.Digest == res.Digest {
		t.Error("a changed file gave the same digest")
	}
}

func TestBuildBuildKitRunsRUN(t *testing.T) {
	env := testenv.Get(t)
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"app/Dockerfile":      "FROM " + env.BaseImage + "\nARG GREETING=hello\nCOPY site /site\nRUN echo hi > /hello && echo \"$GREETING\" > /greeting\nCMD [\"cat\", \"/hello\"]\n",
		"app/site/index.html": "site\n",
	})
	b, err := builder.New(builder.Options{Type: "buildkit", Address: env.BuildkitHost, Insecure: []string{env.Registry}})
	if err != nil {
		t.Fatal(err)
	}
	image := testenv.UniqueName(t)
	var logs []string
	res, err := b.Build(buildCtx(t), builder.Request{Root: root, Dockerfile: "app/Dockerfile", Registry: env.Registry,
		Workspace: "devops", Image: image, Tag: "alpha-1", BuildArgs: map[string]string{"GREETING": "s3cret-value"},
		Secrets: []string{"s3cret-value"}, Log: func(l string) { logs = append(logs, l) }})
	if err != nil {
		t.Fatalf("buildkit build: %v\nlog:\n%s", err, strings.Join(logs, "\n"))
	}
	img, files := imageFiles(t, res.Image, name.Insecure)
	if d, _ := img.Digest(); d.String() != res.Digest {
		t.Errorf("pulled digest %s, build reported %s", d, res.Digest)
	}
	if files["/hello"] != "hi\n" || files["/site/index.html"] != "site\n" || files["/greeting"] != "s3cret-value\n" {
		t.Errorf("/hello = %q, /site/index.html = %q, /greeting = %q", files["/hello"], files["/site/index.html"], files["/greeting"])
	}
	joined := strings.Join(logs, "\n")
	if !strings.Contains(joined, "RUN echo hi") {
		t.Errorf("BuildKit progress did not reach the log:\n%s", joined)
	}
	if strings.Contains(joined, "s3cret-value") {
		t.Errorf("the secret build arg is in the log:\n%s", joined)
	}
}

// dockerConfig writes a config.json holding user:password for host.
func dockerConfig(t *testing.T, host, user, password string) string {
	t.Helper()
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	raw, err := json.Marshal(map[string]any{"auths": map[string]any{host: map[string]string{"auth": auth}}})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(p, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBuildAuthRegistryCredentials(t *testing.T) {
	env := testenv.Get(t)
	root := t.TempDir()
	base := env.RegistryAuth + "/base/busybox:1"
	writeFiles(t, root, map[string]string{"Dockerfile": "FROM " + base + "\nCOPY a.txt /a.txt\n", "a.txt": "a\n"})
	image := testenv.UniqueName(t)
	req := builder.Request{Root: root, Registry: env.RegistryAuth, Workspace: "devops", Image: image, Tag: "alpha-1"}

	wrong := dockerConfig(t, env.RegistryAuth, env.RegistryUser, "not-the-password")
	for _, typ := range []string{"native", "buildkit"} {
		b, err := builder.New(builder.Options{Type: typ, Address: env.BuildkitHost, DockerConfig: wrong, Insecure: []string{env.RegistryAuth}})
		if err != nil {
			t.Fatal(err)
		}
		_, err = b.Build(buildCtx(t), req)
		if err == nil {
			t.Fatalf("%s: build with a wrong password succeeded", typ)
		}
		t.Logf("%s with a wrong password: %v", typ, err)
		if !strings.Contains(err.Error(), "401 Unauthorized") {
			t.Errorf("%s: error does not name the 401: %v", typ, err)
		}
		if !strings.Contains(err.Error(), "registry "+env.RegistryAuth+" refused the credentials for "+env.RegistryAuth+"/base/busybox") {
			t.Errorf("%s: error does not say which registry refused what: %v", typ, err)
		}
	}

	right := dockerConfig(t, env.RegistryAuth, env.RegistryUser, env.RegistryPassword)
	for _, typ := range []string{"native", "buildkit"} {
		b, err := builder.New(builder.Options{Type: typ, Address: env.BuildkitHost, DockerConfig: right, Insecure: []string{env.RegistryAuth}})
		if err != nil {
			t.Fatal(err)
		}
		req.Tag = "alpha-" + typ
		res, err := b.Build(buildCtx(t), req)
		if err != nil {
			t.Fatalf("%s: build with the right password: %v", typ, err)
		}
		r, _ := name.ParseReference(res.Image, name.Insecure)
		desc, err := remote.Head(r, remote.WithAuth(&authn.Basic{Username: env.RegistryUser, Password: env.RegistryPassword}))
		if err != nil || desc.Digest.String() != res.Digest {
			t.Errorf("%s: %s in the registry: %v, %v; want digest %s", typ, res.Image, desc, err, res.Digest)
		}
	}
}

func TestBuildRefusesPathsOutsideTheCheckout(t *testing.T) {
	env := testenv.Get(t)
	outside := t.TempDir()
	writeFiles(t, outside, map[string]string{"secret.txt": "host secret\n"})
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"Dockerfile":       "FROM " + env.BaseImage + "\nCOPY leak /leak\n",
		"Dockerfile.link2": "FROM " + env.BaseImage + "\nCOPY linkdir/secret.txt /leak\n",
		"ok.txt":           "ok\n",
	})
	if err := os.Symlink(filepath.Join(outside, "secret.txt"), filepath.Join(root, "leak")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "linkdir")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(root, "Dockerfile.passwd")); err != nil {
		t.Fatal(err)
	}
	cases := []struct{ dockerfile, context, want string }{
		{"../../etc/passwd", "", `path "../../etc/passwd" leaves the repository`},
		{"Dockerfile.passwd", "", `symlink "Dockerfile.passwd" points to the absolute path "/etc/passwd"`},
		{"Dockerfile", "../", `path "../" leaves the repository`},
		{"Dockerfile", "linkdir", `symlink "linkdir" points to the absolute path`},
		{"Dockerfile", "", `source "leak" must stay inside the build context: symlink "leak" points to the absolute path`},
		{"Dockerfile.link2", "", `source "linkdir/secret.txt" must stay inside the build context: "linkdir/secret.txt": symlink "linkdir" points to the absolute path`},
	}
	for _, typ := range []string{"native", "buildkit"} {
		b, err := builder.New(builder.Options{Type: typ, Address: env.BuildkitHost, Insecure: []string{env.Registry}})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cases {
			_, err := b.Build(buildCtx(t), builder.Request{Root: root, Dockerfile: c.dockerfile, Context: c.context,
				Registry: env.Registry, Workspace: "devops", Image: testenv.UniqueName(t), Tag: "alpha-1"})
			if typ == "buildkit" && strings.HasPrefix(c.dockerfile, "Dockerfile") && c.context == "" && c.dockerfile != "Dockerfile.passwd" {
				// buildkitd receives links as links and never follows them out of the context:
				// the build fails, but with BuildKit's own words.
				if err == nil {
					t.Errorf("%s: %s copied a file from outside the checkout", typ, c.dockerfile)
				}
				continue
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s: dockerfile %q context %q: error %v, want one containing %q", typ, c.dockerfile, c.context, err, c.want)
			}
		}
	}
}

func TestBuildRetentionDeletesOldTagsInTheRegistry(t *testing.T) {
	env := testenv.Get(t)
	ctx := buildCtx(t)
	repo := env.Registry + "/devops/" + testenv.UniqueName(t)
	push := func(img v1.Image, tags ...string) {
		t.Helper()
		for _, tag := range tags {
			ref, err := name.NewTag(repo+":"+tag, name.Insecure)
			if err != nil {
				t.Fatal(err)
			}
			if err := remote.Write(ref, img, remote.WithContext(ctx)); err != nil {
				t.Fatalf("push %s: %v", ref, err)
			}
		}
	}
	img := func() v1.Image {
		i, err := random.Image(64, 1)
		if err != nil {
			t.Fatal(err)
		}
		return i
	}
	shared := img()
	push(img(), "alpha-1")
	push(shared, "alpha-2", "alpha-10") // an unchanged rebuild: same manifest, two tags
	push(img(), "alpha-9")
	push(img(), "alpha-11")
	push(img(), "alpha-3")
	push(img(), "latest")
	push(img(), "beta-1")

	reg, err := builder.NewRegistry(builder.Options{Insecure: []string{env.Registry}})
	if err != nil {
		t.Fatal(err)
	}
	owned := map[string]bool{}
	for _, tag := range []string{"alpha-1", "alpha-2", "alpha-3", "alpha-9", "alpha-10", "alpha-11", "latest", "beta-1"} {
		owned[tag] = true
	}
	res, err := reg.RetainTags(ctx, repo, "alpha-${BUILD_ID}", 2, owned, map[string]string{"alpha-1": "deployed"})
	if err != nil {
		t.Fatalf("prune: %v", err)
	}
	t.Logf("deleted %v, skipped %v", res.Deleted, res.Skipped)
	if !slices.Equal(res.Deleted, []string{"alpha-3", "alpha-9"}) {
		t.Errorf("deleted %v, want [alpha-3 alpha-9] (oldest first; alpha-1 protected, alpha-2 shares alpha-10's image)", res.Deleted)
	}
	if res.Skipped["alpha-1"] == "" || res.Skipped["alpha-2"] == "" {
		t.Errorf("skipped = %v, want alpha-1 and alpha-2 with reasons", res.Skipped)
	}
	rp, _ := name.NewRepository(repo, name.Insecure)
	left, err := remote.List(rp, remote.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(left)
	if want := []string{"alpha-1", "alpha-10", "alpha-11", "alpha-2", "beta-1", "latest"}; !slices.Equal(left, want) {
		t.Errorf("tags left in the registry = %v, want %v", left, want)
	}
}

// BuildKit pushes a registry's names to its mirror endpoint (registry.mirrors), and the
// result keeps the name as written.
func TestBuildBuildKitPushesThroughAMirror(t *testing.T) {
	env := testenv.Get(t)
	root := t.TempDir()
	writeFiles(t, root, map[string]string{"Dockerfile": "FROM " + env.BaseImage + "\nRUN echo mirrored > /m\n"})
	b, err := builder.New(builder.Options{Type: "buildkit", Address: env.BuildkitHost, Insecure: []string{env.Registry},
		Mirrors: map[string]string{"hub.example.com": env.Registry}})
	if err != nil {
		t.Fatal(err)
	}
	image := testenv.UniqueName(t)
	var logs []string
	res, err := b.Build(buildCtx(t), builder.Request{Root: root, Registry: "hub.example.com", Workspace: "devops", Image: image,
		Tag: "alpha-1", ExtraTags: []string{"latest"}, Log: func(l string) { logs = append(logs, l) }})
	if err != nil {
		t.Fatalf("buildkit build: %v\nlog:\n%s", err, strings.Join(logs, "\n"))
	}
	if want := "hub.example.com/devops/" + image + ":alpha-1"; res.Image != want {
		t.Errorf("result image %q, want %q", res.Image, want)
	}
	for _, tag := range []string{"alpha-1", "latest"} {
		img, files := imageFiles(t, env.Registry+"/devops/"+image+":"+tag, name.Insecure)
		if d, _ := img.Digest(); d.String() != res.Digest || files["/m"] != "mirrored\n" {
			t.Errorf("%s at the endpoint: digest %s (built %s), /m = %q", tag, d, res.Digest, files["/m"])
		}
	}
}
