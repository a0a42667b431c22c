package sources

// Repo is one configured Git repository.
type Repo struct {
	// Name is the repository's name in slipway.yaml; it names the mirror and appears in
	// logs and errors, so it must not hold secrets.
	Name string
	// URL is an http(s), ssh:// or scp-like (git@host:path) address.
	URL  string
	Auth Auth
}

// Auth holds credential values. HTTP uses Username+Password or Token (both sent as HTTP
// basic auth, which is what Git forges accept for tokens); SSH uses SSHKey, and KnownHosts
// is required with it because host keys are always verified.
type Auth struct {
	Username   string
	Password   string
	Token      string
	SSHKey     []byte // PEM or OpenSSH private key, unencrypted
	KnownHosts []byte // known_hosts file content
}

// String never shows secret values, so an Auth printed by accident leaks nothing.
func (a Auth) String() string {
	kind := "none"
	switch {
	case len(a.SSHKey) > 0:
		kind = "ssh-key"
	case a.Token != "":
		kind = "token"
	case a.Password != "":
		kind = "password"
	}
	return "auth(" + kind + ")"
}

// GoString keeps %#v as quiet as %v.
func (a Auth) GoString() string { return a.String() }

// secrets lists the values that must be scrubbed from any message about this repo.
func (r Repo) secrets() []string {
	var s []string
	for _, v := range []string{r.Auth.Password, r.Auth.Token, urlPassword(r.URL)} {
		if v != "" {
			s = append(s, v)
		}
	}
	return s
}
