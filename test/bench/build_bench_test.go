package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/builder"
	"github.com/slipwayhq/slipway/test/testenv"
)

// blobUploads counts pushes of blobs the registry did not have.
type blobUploads struct{ n atomic.Int64 }

func (c *blobUploads) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPost && strings.Contains(req.URL.Path, "/blobs/uploads/") {
		c.n.Add(1)
	}
	return http.DefaultTransport.RoundTrip(req)
}

// checkout2048 writes the seed's 2048 repository: the game's static files (about 600 KiB
// in 40 files), two nginx configs and the Dockerfile.
func checkout2048(b *testing.B, base string) string {
	dir := b.TempDir()
	files := map[string][]byte{
		"Dockerfile": []byte("FROM " + base + "\n\nCOPY 2048 /var/lib/nginx/html/\n\nCOPY nginx.conf /etc/nginx/nginx.conf\n\n" +
			"COPY nginx.8880.conf /etc/nginx/nginx.8880.conf\n\nEXPOSE 80\n\nCMD [\"nginx\", \"-c\", \"/etc/nginx/nginx.8880.conf\"]\n"),
		"nginx.conf":      []byte("events {}\n"),
		"nginx.8880.conf": []byte("events {}\nhttp { server { listen 8880; } }\n"),
	}
	for i := range 40 {
		content := make([]byte, 15*1024)
		_, _ = rand.Read(content)
		files[fmt.Sprintf("2048/assets/%02d.bin", i)] = []byte(hex.EncodeToString(content[:7*1024]))
	}
	for p, c := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(full, c, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return dir
}

// BenchmarkBuild2048 compares the native builder with BuildKit on the 2048 Dockerfile,
// build and push included. Cold: a changed file and a fresh repository every time, so a
// COPY layer is built and every layer is uploaded or mounted; each builder keeps what a
// long-running daemon keeps (buildkitd its base image cache, the native builder the base's
// file list). Warm: the same commit again into the same repository under a new tag.
func BenchmarkBuild2048(b *testing.B) {
	env := testenv.Get(b)
	root := checkout2048(b, env.BaseImage)
	builders := []struct{ name, typ string }{{"native", "native"}, {"buildkit", "buildkit"}}
	results := map[string]time.Duration{}
	uploads := map[string]float64{}
	for _, bl := range builders {
		for _, mode := range []string{"cold", "warm"} {
			key := bl.name + "/" + mode
			b.Run(key, func(b *testing.B) {
				counter := &blobUploads{}
				opts := builder.Options{Type: bl.typ, Address: env.BuildkitHost, Insecure: []string{env.Registry}, Transport: counter}
				imageBuilder, err := builder.New(opts)
				if err != nil {
					b.Fatal(err)
				}
				repo := testenv.UniqueName(b)
				req := builder.Request{Root: root, Registry: env.Registry, Workspace: "bench", Image: repo}
				ctx := context.Background()
				if mode == "warm" {
					req.Tag = "alpha-0"
					if _, err := imageBuilder.Build(ctx, req); err != nil {
						b.Fatal(err)
					}
				}
				counter.n.Store(0)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					req.Tag = fmt.Sprintf("alpha-%d", i+1)
					if mode == "cold" {
						b.StopTimer()
						if err := os.WriteFile(filepath.Join(root, "nginx.conf"), []byte(fmt.Sprintf("events {}\n# %d %d\n", time.Now().UnixNano(), i)), 0o644); err != nil {
							b.Fatal(err)
						}
						req.Image = fmt.Sprintf("%s-%d", repo, i)
						b.StartTimer()
					}
					if _, err := imageBuilder.Build(ctx, req); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				per := b.Elapsed() / time.Duration(b.N)
				results[key] = per
				if bl.typ == "native" {
					uploads[key] = float64(counter.n.Load()) / float64(b.N)
					b.ReportMetric(uploads[key], "uploads/op")
				}
			})
		}
	}
	if len(results) < 4 {
		return
	}
	var out strings.Builder
	out.WriteString("\n| 2048 build+push | native | buildkit | native / buildkit |\n|---|---|---|---|\n")
	for _, mode := range []string{"cold", "warm"} {
		n, k := results["native/"+mode], results["buildkit/"+mode]
		fmt.Fprintf(&out, "| %s | %v (%.0f blob uploads) | %v | %.2f× |\n", mode, n.Round(time.Millisecond), uploads["native/"+mode],
			k.Round(time.Millisecond), float64(n)/float64(k))
	}
	fmt.Print(out.String())
}
