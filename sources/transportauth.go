package sources

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
)

// tokenUser is sent with a token when no username is configured; forges ignore the user
// for token auth but HTTP basic needs a non-empty one.
const tokenUser = "x-access-token"

// transportAuth builds go-git's auth method for repo; tmpDir receives the known_hosts
// file the ssh library needs to read (it accepts only files).
func transportAuth(repo Repo, tmpDir string) (transport.AuthMethod, error) {
	a := repo.Auth
	if err := a.validate(); err != nil {
		return nil, err
	}
	ep, err := transport.NewEndpoint(repo.URL)
	if err != nil {
		return nil, fmt.Errorf("url %s: %s", RedactURL(repo.URL), scrub(err.Error(), repo.secrets()))
	}
	isHTTP := ep.Protocol == "http" || ep.Protocol == "https"
	isSSH := ep.Protocol == "ssh"
	switch {
	case len(a.SSHKey) > 0:
		if !isSSH {
			return nil, fmt.Errorf("an SSH key is configured but %s is not an ssh URL", RedactURL(repo.URL))
		}
		user := ep.User
		if user == "" {
			user = "git"
		}
		port := ep.Port
		if port == 0 {
			port = 22
		}
		return sshAuth(user, net.JoinHostPort(ep.Host, strconv.Itoa(port)), a.SSHKey, a.KnownHosts, tmpDir)
	case a.Token != "" || a.Password != "":
		if !isHTTP {
			return nil, fmt.Errorf("HTTP credentials are configured but %s is not an http(s) URL", RedactURL(repo.URL))
		}
		if a.Token != "" {
			user := a.Username
			if user == "" {
				user = tokenUser
			}
			return &githttp.BasicAuth{Username: user, Password: a.Token}, nil
		}
		return &githttp.BasicAuth{Username: a.Username, Password: a.Password}, nil
	case isSSH:
		// go-git would fall back to an SSH agent and ~/.ssh/known_hosts; a daemon must not
		// depend on either.
		return nil, errors.New("an ssh URL needs an SSH key and known_hosts")
	}
	return nil, nil // anonymous, or credentials inside the URL (go-git uses those)
}

// sshAuth loads a private key and a known_hosts verifier. There is deliberately no way
// to skip host key verification.
func sshAuth(user, hostPort string, key, knownHosts []byte, tmpDir string) (*gitssh.PublicKeys, error) {
	pk, err := gitssh.NewPublicKeys(user, key, "")
	if err != nil {
		// ssh's parse errors do not echo key material, but keep the message generic anyway.
		return nil, fmt.Errorf("ssh key: cannot parse private key (%s)", firstLine(err.Error()))
	}
	if len(knownHosts) == 0 {
		return nil, errors.New("ssh: known_hosts is required")
	}
	f, err := os.CreateTemp(tmpDir, "known_hosts-*")
	if err != nil {
		return nil, fmt.Errorf("ssh known_hosts: %w", err)
	}
	defer os.Remove(f.Name())
	_, werr := f.Write(knownHosts)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return nil, fmt.Errorf("ssh known_hosts: %w", werr)
	}
	// The database is read eagerly, so the file can go right after.
	db, err := gitssh.NewKnownHostsDb(filepath.Clean(f.Name()))
	if err != nil {
		return nil, fmt.Errorf("ssh known_hosts: %s", firstLine(err.Error()))
	}
	pk.HostKeyCallback = db.HostKeyCallback()
	// Offer only the key types known_hosts has for this host; otherwise the server may
	// pick another type and a correct known_hosts would still be reported as a mismatch.
	pk.HostKeyAlgorithms = db.HostKeyAlgorithms(hostPort)
	return pk, nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
