// Command pushbase builds a tiny linux/amd64 base image from Debian's busybox-static binary
// and pushes it to a registry, so tests have a base image without any internet access.
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// applets get a symlink to busybox so Dockerfiles can RUN ordinary shell commands.
// tar is what the Kubernetes script executor moves workspaces with; dd, base64 and the rest
// are for test scripts (a memory-limit breach, an encoded secret echoed).
var applets = []string{"sh", "ls", "cat", "echo", "cp", "mv", "rm", "mkdir", "sed", "grep",
	"wc", "test", "true", "false", "sleep", "env", "chmod", "touch", "find", "head", "tail", "tr", "httpd",
	"tar", "dd", "base64", "awk", "cut", "sort", "printf", "seq", "yes", "od", "kill", "ps", "stat",
	"ln", "tee", "expr", "basename", "dirname", "id", "date", "mktemp", "pwd", "uname", "sha256sum", "timeout"}

func main() {
	busybox := flag.String("busybox", "/bin/busybox", "path of a static busybox binary")
	ref := flag.String("ref", "", "image reference to push, e.g. 127.0.0.1:5000/base/busybox:1")
	user := flag.String("user", "", "registry user (optional)")
	passwordFile := flag.String("password-file", "", "file with the registry password (optional)")
	entrypoint := flag.String("entrypoint", "", "comma-separated entrypoint (optional), e.g. /bin/sleep,2147483647 for a pod sandbox image")
	flag.Parse()
	var ep []string
	if *entrypoint != "" {
		ep = strings.Split(*entrypoint, ",")
	}
	if err := run(*busybox, *ref, *user, *passwordFile, ep); err != nil {
		log.Fatalf("pushbase: %v", err)
	}
}

func run(busybox, refStr, user, passwordFile string, entrypoint []string) error {
	ref, err := name.ParseReference(refStr, name.Insecure)
	if err != nil {
		return fmt.Errorf("parse -ref: %w", err)
	}
	bin, err := os.ReadFile(busybox)
	if err != nil {
		return fmt.Errorf("read busybox: %w", err)
	}
	layerTar, err := rootfs(bin)
	if err != nil {
		return err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(layerTar)), nil })
	if err != nil {
		return fmt.Errorf("make layer: %w", err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return fmt.Errorf("append layer: %w", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	cfg = cfg.DeepCopy()
	// BuildKit's exporter fails with "missing architecture" on a base without a platform.
	cfg.Architecture, cfg.OS = "amd64", "linux"
	cfg.Created = v1.Time{Time: time.Unix(0, 0).UTC()}
	cfg.Config = v1.Config{Cmd: []string{"sh"}, Env: []string{"PATH=/bin"}}
	if len(entrypoint) > 0 {
		cfg.Config = v1.Config{Entrypoint: entrypoint, Env: []string{"PATH=/bin"}}
	}
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return fmt.Errorf("set config: %w", err)
	}
	auth := authn.Anonymous
	if user != "" {
		pw, err := os.ReadFile(passwordFile)
		if err != nil {
			return fmt.Errorf("read password: %w", err)
		}
		auth = &authn.Basic{Username: user, Password: string(bytes.TrimSpace(pw))}
	}
	if err := remote.Write(ref, img, remote.WithAuth(auth)); err != nil {
		return fmt.Errorf("push %s: %w", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("%s@%s\n", ref, d)
	return nil
}

func rootfs(bin []byte) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0)
	hdrs := []*tar.Header{
		{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: epoch},
		{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777, ModTime: epoch},
		{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: epoch},
	}
	for _, h := range hdrs {
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(bin)), ModTime: epoch}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(bin); err != nil {
		return nil, err
	}
	for _, a := range applets {
		if err := tw.WriteHeader(&tar.Header{Name: "bin/" + a, Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777, ModTime: epoch}); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
