// Command gitserver serves a folder of bare repositories over Git's smart HTTP protocol
// (git http-backend) behind basic auth: the real Git server of the local test environment.
package main

import (
	"context"
	"crypto/subtle"
	"errors"
	"flag"
	"log"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"os/signal"
	"strings"
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
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(user)) != 1 ||
			subtle.ConstantTimeCompare([]byte(p), []byte(password)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="slipway-git"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		if r.URL.Path == "/healthz" {
			w.WriteHeader(http.StatusOK)
			return
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
