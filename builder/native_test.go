package builder

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

func write(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, c := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// buildLocal runs the native builder up to the image, without a registry: the Dockerfiles
// here start FROM scratch.
func buildLocal(t *testing.T, req Request) (v1.Image, []string, error) {
	t.Helper()
	cfgDir := t.TempDir()
	write(t, cfgDir, map[string]string{"config.json": "{}"})
	reg, err := NewRegistry(Options{DockerConfig: filepath.Join(cfgDir, "config.json")})
	if err != nil {
		t.Fatal(err)
	}
	var logs []string
	req.Log = func(l string) { logs = append(logs, l) }
	log := newLogger(req)
	img, cleanup, err := NewNative(reg).image(context.Background(), req, log)
	if err != nil {
		return nil, logs, log.maskErr(err)
	}
	t.Cleanup(cleanup)
	return img, logs, nil
}

func TestMissingDockerConfigIsAnError(t *testing.T) {
	_, err := NewRegistry(Options{DockerConfig: filepath.Join(t.TempDir(), "none.json")})
	if err == nil || !strings.Contains(err.Error(), "read registry credentials") {
		t.Errorf("error = %v", err)
	}
}

type fileInfo struct {
	typ      byte
	mode     int64
	uid, gid int
	data     string
	link     string
}

func files(t *testing.T, img v1.Image) map[string]fileInfo {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	out := map[string]fileInfo{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		out["/"+strings.TrimSuffix(h.Name, "/")] = fileInfo{h.Typeflag, h.Mode, h.Uid, h.Gid, string(b), h.Linkname}
	}
}

func TestDockerfileConfig(t *testing.T) {
	root := t.TempDir()
	write(t, root, map[string]string{"Dockerfile": `ARG BASE=scratch
FROM ${BASE}
ARG VERSION=0.1
ARG TOKEN
ENV APP_HOME=/srv/app PATH=/bin
LABEL org.opencontainers.image.version=$VERSION team=devops
EXPOSE 80 443/tcp 53/udp 8000-8002
WORKDIR $APP_HOME
USER 1000:1000
VOLUME ["/data", "/cache"]
STOPSIGNAL SIGQUIT
HEALTHCHECK --interval=5s --timeout=2s --retries=3 CMD ["/bin/check"]
SHELL ["/bin/ash", "-eo", "pipefail", "-c"]
ENTRYPOINT ["/bin/app"]
CMD serve --port 80
ONBUILD COPY . /src
`})
	img, logs, err := buildLocal(t, Request{Root: root, BuildArgs: map[string]string{"VERSION": "1.2.3", "UNUSED": "x"}})
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if !slices.Contains(c.Env, "APP_HOME=/srv/app") || !slices.Contains(c.Env, "PATH=/bin") {
		t.Errorf("env = %v", c.Env)
	}
	if c.Labels["org.opencontainers.image.version"] != "1.2.3" || c.Labels["team"] != "devops" {
		t.Errorf("labels = %v (build arg must override the ARG default)", c.Labels)
	}
	for _, p := range []string{"80/tcp", "443/tcp", "53/udp", "8000/tcp", "8001/tcp", "8002/tcp"} {
		if _, ok := c.ExposedPorts[p]; !ok {
			t.Errorf("port %s missing from %v", p, c.ExposedPorts)
		}
	}
	if c.WorkingDir != "/srv/app" || c.User != "1000:1000" || c.StopSignal != "SIGQUIT" {
		t.Errorf("workdir %q user %q stopsignal %q", c.WorkingDir, c.User, c.StopSignal)
	}
	if _, ok := c.Volumes["/data"]; !ok || len(c.Volumes) != 2 {
		t.Errorf("volumes = %v", c.Volumes)
	}
	if h := c.Healthcheck; h == nil || !slices.Equal(h.Test, []string{"CMD", "/bin/check"}) || h.Interval != 5*time.Second || h.Timeout != 2*time.Second || h.Retries != 3 {
		t.Errorf("healthcheck = %+v", c.Healthcheck)
	}
	if !slices.Equal(c.Shell, []string{"/bin/ash", "-eo", "pipefail", "-c"}) || !slices.Equal(c.Entrypoint, []string{"/bin/app"}) {
		t.Errorf("shell %q entrypoint %q", c.Shell, c.Entrypoint)
	}
	if !slices.Equal(c.Cmd, []string{"/bin/ash", "-eo", "pipefail", "-c", "serve --port 80"}) {
		t.Errorf("cmd = %q (shell form runs under SHELL)", c.Cmd)
	}
	if !slices.Equal(c.OnBuild, []string{"COPY . /src"}) {
		t.Errorf("onbuild = %q", c.OnBuild)
	}
	if cf.OS != "linux" || cf.Architecture != "amd64" || !cf.Created.Time.Equal(epoch()) {
		t.Errorf("os %s arch %s created %v", cf.OS, cf.Architecture, cf.Created)
	}
	if fs := files(t, img); fs["/srv/app"].typ != tar.TypeDir {
		t.Errorf("WORKDIR did not create /srv/app: %v", fs)
	}
	if !slices.ContainsFunc(logs, func(l string) bool { return strings.Contains(l, "not consumed by any ARG: UNUSED") }) {
		t.Errorf("no warning about the unused build arg in %q", logs)
	}
}

func TestEntrypointDropsInheritedCmd(t *testing.T) {
	root := t.TempDir()
	write(t, root, map[string]string{"Dockerfile": "FROM scratch AS base\nCMD [\"a\"]\nFROM base\nENTRYPOINT [\"/e\"]\n"})
	img, _, err := buildLocal(t, Request{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	if cf.Config.Cmd != nil || !slices.Equal(cf.Config.Entrypoint, []string{"/e"}) {
		t.Errorf("cmd %q entrypoint %q", cf.Config.Cmd, cf.Config.Entrypoint)
	}
}

func TestCopySemanticsAndDockerignore(t *testing.T) {
	root := t.TempDir()
	write(t, root, map[string]string{
		"Dockerfile": `FROM scratch AS assets
COPY --chown=33:44 --chmod=0600 web/ /out/
COPY *.conf /etc/
FROM scratch
WORKDIR /app
COPY --from=assets /out ./static
COPY --from=assets /etc/b.conf conf/
COPY single.txt renamed.txt
ADD bundle.tar.gz /opt/bundle/
ADD plain.tar.gz.txt /opt/
COPY <<EOF /etc/motd
hello
EOF
`,
		"web/index.html":     "<h1>hi</h1>",
		"web/debug.log":      "secret log",
		"web/keep/debug.log": "kept by !",
		"web/sub/app.js":     "js",
		"web/.git/config":    "x",
		"a.conf":             "a",
		"b.conf":             "b",
		"single.txt":         "one",
		"plain.tar.gz.txt":   "just text",
		".dockerignore":      "**/*.log\n!web/keep/debug.log\nweb/.git\n",
	})
	if err := os.Symlink("index.html", filepath.Join(root, "web", "link.html")); err != nil {
		t.Fatal(err)
	}
	var tgz bytes.Buffer
	gz := gzip.NewWriter(&tgz)
	tw := tar.NewWriter(gz)
	_ = tw.WriteHeader(&tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755})
	_ = tw.WriteHeader(&tar.Header{Name: "bin/tool", Typeflag: tar.TypeReg, Mode: 0o755, Size: 4, Uid: 7})
	_, _ = tw.Write([]byte("tool"))
	_ = tw.Close()
	_ = gz.Close()
	if err := os.WriteFile(filepath.Join(root, "bundle.tar.gz"), tgz.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	img, _, err := buildLocal(t, Request{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	fs := files(t, img)
	want := map[string]fileInfo{
		"/app/static/index.html":     {typ: tar.TypeReg, mode: 0o600, uid: 33, gid: 44, data: "<h1>hi</h1>"},
		"/app/static/sub/app.js":     {typ: tar.TypeReg, mode: 0o600, uid: 33, gid: 44, data: "js"},
		"/app/static/keep/debug.log": {typ: tar.TypeReg, mode: 0o600, uid: 33, gid: 44, data: "kept by !"},
		"/app/static/link.html":      {typ: tar.TypeSymlink, uid: 33, gid: 44, link: "index.html"},
		"/app/conf/b.conf":           {typ: tar.TypeReg, mode: 0o644, data: "b"},
		"/app/renamed.txt":           {typ: tar.TypeReg, mode: 0o644, data: "one"},
		"/opt/bundle/bin/tool":       {typ: tar.TypeReg, mode: 0o755, uid: 7, data: "tool"},
		"/opt/plain.tar.gz.txt":      {typ: tar.TypeReg, mode: 0o644, data: "just text"},
		"/etc/motd":                  {typ: tar.TypeReg, mode: 0o644, data: "hello\n"},
		"/app":                       {typ: tar.TypeDir, mode: 0o755},
	}
	for p, w := range want {
		got, ok := fs[p]
		if !ok {
			t.Errorf("%s missing; image has %v", p, keys(fs))
			continue
		}
		if w.typ == tar.TypeSymlink {
			got.mode = 0
		}
		if got != w {
			t.Errorf("%s = %+v, want %+v", p, got, w)
		}
	}
	for _, p := range []string{"/app/static/debug.log", "/app/static/.git/config", "/app/static/.git"} {
		if _, ok := fs[p]; ok {
			t.Errorf("%s is in the image although .dockerignore excludes it", p)
		}
	}
}

func keys(m map[string]fileInfo) []string {
	var k []string
	for p := range m {
		k = append(k, p)
	}
	slices.Sort(k)
	return k
}

func TestLayersAreReproducible(t *testing.T) {
	digest := func(mtime time.Time, mode os.FileMode) v1.Hash {
		root := t.TempDir()
		write(t, root, map[string]string{"Dockerfile": "FROM scratch\nCOPY . /app/\n", "b/x.txt": "x", "a.txt": "a", "c/d/e.txt": "e"})
		_ = filepath.Walk(root, func(p string, _ os.FileInfo, _ error) error { return os.Chtimes(p, mtime, mtime) })
		_ = os.Chmod(filepath.Join(root, "c"), mode)
		img, _, err := buildLocal(t, Request{Root: root})
		if err != nil {
			t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	a := digest(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), 0o755)
	b := digest(time.Now(), 0o755)
	if a != b {
		t.Errorf("same files at other times and in other folders gave %s and %s", a, b)
	}
	if c := digest(time.Now(), 0o700); c == a {
		t.Error("a changed folder mode gave the same digest")
	}
}

func TestLayerEntriesAreSortedWithFixedMetadata(t *testing.T) {
	files := layerFiles{}
	for _, n := range []string{"b", "a/z", "a", "a-b"} {
		typ := byte(tar.TypeReg)
		if n == "a" {
			typ = tar.TypeDir
		}
		files.put(entry{hdr: tar.Header{Name: n, Typeflag: typ, Mode: 0o644, Uname: "me", ModTime: time.Now()},
			open: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader("")), nil }})
	}
	l, err := files.write(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !h.ModTime.Equal(epoch()) || h.Uname != "" || h.Uid != 0 {
			t.Errorf("%s: mtime %v uname %q uid %d", h.Name, h.ModTime, h.Uname, h.Uid)
		}
		names = append(names, h.Name)
	}
	if !slices.Equal(names, []string{"a/", "a-b", "a/z", "b"}) {
		t.Errorf("order = %q", names)
	}
}

func TestNativeRefusals(t *testing.T) {
	cases := map[string]string{
		"FROM scratch\nCOPY a /a\nRUN echo hi > /hello\n":     "Dockerfile:3: RUN needs a container runtime",
		"FROM scratch\nADD https://example.com/x.tgz /x\n":    "Dockerfile:2: ADD of a remote source",
		"FROM scratch\nCOPY --parents a /a\n":                 "Dockerfile:2: COPY --parents",
		"FROM scratch\nCOPY ../outside /a\n":                  `source "../outside": leaves the build context`,
		"FROM scratch\nCOPY missing /a\n":                     "does not exist",
		"FROM scratch\nCOPY a b /dest\n":                      "must be a folder ending in /",
		"FROM scratch\nCOPY --chmod=rwx a /a\n":               "--chmod=rwx: want an octal mode",
		"FROM scratch\nCOPY --chown=www a /a\n":               `no user "www"`,
		"FROM scratch\nCOPY a.log /a\n":                       "excluded by .dockerignore",
		"FROM scratch AS one\nFROM one\nCOPY --from=9 a /a\n": "no earlier stage",
		"FROM scratch\nEXPOSE 70000\n":                        "Dockerfile:2: EXPOSE: port",
	}
	for df, want := range cases {
		root := t.TempDir()
		write(t, root, map[string]string{"Dockerfile": df, "a": "a", "b": "b", "a.log": "", ".dockerignore": "*.log\n"})
		_, _, err := buildLocal(t, Request{Root: root})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want one containing %q", df, err, want)
		}
		if strings.Contains(want, "RUN needs") && (err == nil || !strings.Contains(err.Error(), "BuildKit builder")) {
			t.Errorf("%q: the refusal does not point to the BuildKit builder: %v", df, err)
		}
	}
	root := t.TempDir()
	write(t, root, map[string]string{"Dockerfile": "FROM scratch AS a\nFROM scratch AS b\n"})
	if _, _, err := buildLocal(t, Request{Root: root, Target: "c"}); err == nil || !strings.Contains(err.Error(), `no stage named "c" (stages: a, b)`) {
		t.Errorf("unknown target: %v", err)
	}
}

func TestPathsStayInsideTheCheckout(t *testing.T) {
	outside := t.TempDir()
	write(t, outside, map[string]string{"Dockerfile": "FROM scratch\n", "secret": "s"})
	root := t.TempDir()
	write(t, root, map[string]string{"Dockerfile": "FROM scratch\nCOPY link/secret /s\n", "sub/Dockerfile": "FROM scratch\nCOPY up /u\n"})
	for link, target := range map[string]string{"link": outside, "Dockerfile.out": filepath.Join(outside, "Dockerfile"), "sub/up": ".."} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct{ dockerfile, context, want string }{
		{"../../etc/passwd", "", `dockerfile: path "../../etc/passwd" leaves the repository`},
		{"/etc/passwd", "", `dockerfile: path "/etc/passwd" leaves the repository`},
		{"Dockerfile.out", "", `dockerfile: symlink "Dockerfile.out" points to the absolute path`},
		{"Dockerfile", "link", `context: symlink "link" points to the absolute path`},
		{"Dockerfile", "", `source "link/secret" must stay inside the build context: "link/secret": symlink "link" points to the absolute path`},
		{"sub/Dockerfile", "", `source "up" must stay inside the build context: symlink "up" points outside the repository ("..")`},
	}
	for _, c := range cases {
		_, _, err := buildLocal(t, Request{Root: root, Dockerfile: c.dockerfile, Context: c.context})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("dockerfile %q context %q: error %v, want %q", c.dockerfile, c.context, err, c.want)
		}
	}
}

func TestSecretsAreMasked(t *testing.T) {
	root := t.TempDir()
	write(t, root, map[string]string{"Dockerfile": "FROM scratch\nARG TOKEN\nCOPY $TOKEN /x\n"})
	_, logs, err := buildLocal(t, Request{Root: root, BuildArgs: map[string]string{"TOKEN": "hunter2-token"}, Secrets: []string{"hunter2-token", ""}})
	if err == nil {
		t.Fatal("copying a missing file succeeded")
	}
	if strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "***") {
		t.Errorf("error shows the secret or no mask: %v", err)
	}
	for _, l := range logs {
		if strings.Contains(l, "hunter2") {
			t.Errorf("log shows the secret: %q", l)
		}
	}
	var got []string
	l := newLogger(Request{Secrets: []string{"ab", "abcd"}, Log: func(s string) { got = append(got, s) }})
	_, _ = l.Write([]byte("x abcd y\npartial ab"))
	l.flush()
	if !slices.Equal(got, []string{"x *** y", "partial ***"}) {
		t.Errorf("masked lines = %q", got)
	}
}

// .dockerignore is read inside the checkout like every other file: a symlink out of it is
// an error naming the link, never read.
func TestDockerignoreSymlinkOutIsRefused(t *testing.T) {
	root := t.TempDir()
	write(t, root, map[string]string{"Dockerfile": "FROM scratch\nCOPY Dockerfile /d\n"})
	if err := os.Symlink("/etc/passwd", filepath.Join(root, ".dockerignore")); err != nil {
		t.Fatal(err)
	}
	_, _, err := buildLocal(t, Request{Root: root})
	if err == nil || !strings.Contains(err.Error(), `symlink ".dockerignore" points to the absolute path "/etc/passwd"`) {
		t.Fatalf("error %v, want the .dockerignore symlink refused", err)
	}
}
