// Command gitserver serves a folder of bare repositories over Git's smart HTTP protocol
// (git http-backend) behind basic auth: the real Git server of the local test environment.
//
// It counts the requests each repository receives by kind, so tests can assert what a
// client cost the server (an unchanged polled repository makes no fetch): GET /_stats
// (basic auth like every other path) answers {"repos": {"<name>": {...}}} with monotonic
// counters; <name> is the repository's path under -root without ".git".
package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	root := flag.String("root", "", "folder of bare repositories (<name>.git)")
	user := flag.String("user", "", "basic auth user")
	passwordFile := flag.String("password-file", "", "file holding the basic auth password")
	flag.Parse()
	if err := run(*addr, *root, *user, *passwordFile); err != nil {
		log.Fatalf("gitserver: %v", err)
	}
}

// RepoStats are one repository's request counters. A ref listing is a ref advertisement
// served to a fetching client: the GET info/refs?service=git-upload-pack of protocol v0/v1,
// or the ls-refs command of protocol v2 (whose GET info/refs only advertises capabilities).
// A fetch is an upload-pack negotiation (want/have, or the v2 fetch command); a push is a
// receive-pack POST. Requests counts every authenticated request to the repository.
type RepoStats struct {
	Listings int64 `json:"listings"`
	Fetches  int64 `json:"fetches"`
	Pushes   int64 `json:"pushes"`
	Requests int64 `json:"requests"`
}

// Stats is the body of GET /_stats.
type Stats struct {
	Repos map[string]RepoStats `json:"repos"`
}

type counters struct {
	mu    sync.Mutex
	repos map[string]*RepoStats
}

func (c *counters) add(repo string, f func(*RepoStats)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.repos[repo]
	if s == nil {
		s = &RepoStats{}
		c.repos[repo] = s
	}
	f(s)
}

func (c *counters) snapshot() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := Stats{Repos: make(map[string]RepoStats, len(c.repos))}
	for k, v := range c.repos {
		out.Repos[k] = *v
	}
	return out
}

// kind is what a Git smart-HTTP request does.
type kind int

const (
	kindOther kind = iota
	kindListing
	kindFetch
	kindPush
)

// classify names the repository a request addresses and what it does. body is the request
// body for POSTs (already read, so the v2 command can be seen), nil otherwise.
func classify(r *http.Request, body []byte) (repo string, k kind) {
	p := strings.TrimPrefix(r.URL.Path, "/")
	for _, suffix := range []string{"/info/refs", "/git-upload-pack", "/git-receive-pack"} {
		if name, ok := strings.CutSuffix(p, suffix); ok {
			repo = strings.TrimSuffix(name, ".git")
			switch {
			case suffix == "/info/refs" && r.URL.Query().Get("service") == "git-upload-pack":
				// In protocol v2 this is only the capability advertisement; ls-refs lists.
				if !strings.Contains(r.Header.Get("Git-Protocol"), "version=2") {
					k = kindListing
				}
			case suffix == "/git-upload-pack":
				k = kindFetch
				if v2Command(r, body) == "ls-refs" {
					k = kindListing
				}
			case suffix == "/git-receive-pack":
				k = kindPush
			}
			return repo, k
		}
	}
	return "", kindOther
}

// v2Command returns the command of a protocol v2 upload-pack request ("ls-refs", "fetch"),
// or "" for a v0/v1 request or a body it cannot read.
func v2Command(r *http.Request, body []byte) string {
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return ""
		}
		head := make([]byte, 64)
		n, _ := io.ReadFull(zr, head)
		body = head[:n]
	}
	// The first pkt-line: 4 hex digits of length, then "command=<name>\n".
	if len(body) < 4 {
		return ""
	}
	line := body[4:]
	if cmd, ok := bytes.CutPrefix(line, []byte("command=")); ok {
		if i := bytes.IndexByte(cmd, '\n'); i >= 0 {
			return string(cmd[:i])
		}
	}
	return ""
}

// maxBody bounds the request bodies read into memory to classify them; pushes stream.
const maxBody = 64 << 20

func run(addr, root, user, passwordFile string) error {
	if root == "" || user == "" || passwordFile == "" {
		return errors.New("-root, -user and -password-file are required")
	}
	pw, err := os.ReadFile(passwordFile)
	if err != nil {
		return err
	}
	password := strings.TrimSpace(string(pw))
	gitPath, err := exec.LookPath("git")
	if err != nil {
		return err
	}
	backend := &cgi.Handler{
		Path: gitPath,
		Args: []string{"http-backend"},
		Env: []string{
			"GIT_PROJECT_ROOT=" + root,
			"GIT_HTTP_EXPORT_ALL=1",
			// Pushes over HTTP need an authenticated REMOTE_USER; basic auth below provides it.
			"GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=http.receivepack", "GIT_CONFIG_VALUE_0=true",
		},
	}
	stats := &counters{repos: map[string]*RepoStats{}}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(user)) != 1 ||
			subtle.ConstantTimeCompare([]byte(p), []byte(password)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="slipway-git"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/healthz":
			w.WriteHeader(http.StatusOK)
			return
		case "/_stats":
			if r.Method != http.MethodGet {
				http.Error(w, "GET only", http.StatusMethodNotAllowed)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			if err := json.NewEncoder(w).Encode(stats.snapshot()); err != nil {
				log.Printf("gitserver: write stats: %v", err)
			}
			return
		}
		var body []byte
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/git-upload-pack") {
			b, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
			if err != nil {
				http.Error(w, fmt.Sprintf("read request: %v", err), http.StatusBadRequest)
				return
			}
			if len(b) > maxBody {
				http.Error(w, "request too large", http.StatusRequestEntityTooLarge)
				return
			}
			body = b
			r.Body = io.NopCloser(bytes.NewReader(b))
			r.ContentLength = int64(len(b))
		}
		if repo, k := classify(r, body); repo != "" {
			stats.add(repo, func(s *RepoStats) {
				s.Requests++
				switch k {
				case kindListing:
					s.Listings++
				case kindFetch:
					s.Fetches++
				case kindPush:
					s.Pushes++
				}
			})
		}
		r.Header.Set("REMOTE_USER", u)
		backend.ServeHTTP(w, r)
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	log.Printf("gitserver: serving %s on http://%s", root, ln.Addr())
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
