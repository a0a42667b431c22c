package sources

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
)

// newKey returns a PEM (PKCS#8) ed25519 private key.
func newKey(t *testing.T) []byte {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// knownHostsKey returns a signer and its's public key as a known_hosts key field ("type base64").
func knownHostsKey(t *testing.T, pemKey []byte) (*gitssh.PublicKeys, string) {
	t.Helper()
	pk, err := gitssh.NewPublicKeys("x", pemKey, "")
	if err != nil {
		t.Fatal(err)
	}
	pub := pk.Signer.PublicKey()
	return pk, pub.Type() + " " + base64.StdEncoding.EncodeToString(pub.Marshal())
}

func TestSSHAuthVerifiesHostKeysFromKnownHosts(t *testing.T) {
	host, hostLine := knownHostsKey(t, newKey(t))
	other, _ := knownHostsKey(t, newKey(t))
	known := []byte("git.example.com " + hostLine + "\n[git.example.com]:2222 " + hostLine + "\n")
	addr := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 22}

	for url, hostPort := range map[string]string{
		"git@git.example.com:org/app.git":            "git.example.com:22",
		"ssh://git@git.example.com:2222/org/app.git": "git.example.com:2222",
		"ssh://deploy@git.example.com/org/app.git":   "git.example.com:22",
	} {
		repo := Repo{Name: "app", URL: url, Auth: Auth{SSHKey: newKey(t), KnownHosts: known}}
		scratch := t.TempDir()
		am, err := transportAuth(repo, scratch)
		if err != nil {
			t.Fatalf("%s: %v", url, err)
		}
		pk, ok := am.(*gitssh.PublicKeys)
		if !ok {
			t.Fatalf("%s: auth is %T, want ssh public keys", url, am)
		}
		wantUser := "git"
		if strings.Contains(url, "deploy@") {
			wantUser = "deploy"
		}
		if pk.User != wantUser {
			t.Errorf("%s: user %q, want %q", url, pk.User, wantUser)
		}
		if left, _ := os.ReadDir(scratch); len(left) > 0 {
			t.Errorf("%s: the known_hosts scratch file was left behind: %v", url, left)
		}
		cfg, err := pk.ClientConfig()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(cfg.HostKeyAlgorithms, "ssh-ed25519") {
			t.Errorf("%s: host key algorithms %v should offer the known ed25519 key", url, cfg.HostKeyAlgorithms)
		}
		if err := cfg.HostKeyCallback(hostPort, addr, host.Signer.PublicKey()); err != nil {
			t.Errorf("%s: the known host key was refused: %v", url, err)
		}
		if err := cfg.HostKeyCallback(hostPort, addr, other.Signer.PublicKey()); err == nil {
			t.Errorf("%s: a different host key was accepted", url)
		}
		if err := cfg.HostKeyCallback("evil.example.com:22", addr, host.Signer.PublicKey()); err == nil {
			t.Errorf("%s: an unknown host was accepted", url)
		}
	}
}

func TestTransportAuthRefusesUnsafeOrAmbiguousSetups(t *testing.T) {
	key := newKey(t)
	for name, repo := range map[string]Repo{
		"ssh without key":       {Name: "a", URL: "git@h:o/a.git"},
		"ssh key without hosts": {Name: "a", URL: "git@h:o/a.git", Auth: Auth{SSHKey: key}},
		"ssh key on https":      {Name: "a", URL: "https://h/o/a.git", Auth: Auth{SSHKey: key, KnownHosts: []byte("h ssh-ed25519 AAAA\n")}},
		"password on ssh":       {Name: "a", URL: "ssh://h/o/a.git", Auth: Auth{Username: "u", Password: "p"}},
		"password and token":    {Name: "a", URL: "https://h/o/a.git", Auth: Auth{Username: "u", Password: "p", Token: "t"}},
		"password without user": {Name: "a", URL: "https://h/o/a.git", Auth: Auth{Password: "p"}},
		"garbage key":           {Name: "a", URL: "git@h:o/a.git", Auth: Auth{SSHKey: []byte("not a key"), KnownHosts: []byte("h ssh-ed25519 AAAA\n")}},
	} {
		if _, err := transportAuth(repo, t.TempDir()); err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), "not a key") {
			t.Errorf("%s: the error echoes key material: %v", name, err)
		}
	}

	am, err := transportAuth(Repo{Name: "a", URL: "https://h/o/a.git", Auth: Auth{Token: "t0ken"}}, t.TempDir())
	if b, ok := am.(*githttp.BasicAuth); err != nil || !ok || b.Username != tokenUser || b.Password != "t0ken" {
		t.Errorf("token auth = %#v, %v; want basic auth with the token as password", am, err)
	}
	if am, err := transportAuth(Repo{Name: "a", URL: "https://h/o/a.git"}, t.TempDir()); am != nil || err != nil {
		t.Errorf("anonymous https = %v, %v; want no auth", am, err)
	}
}

func TestLoadAuthReadsTrimmedFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	key := newKey(t)
	_, line := knownHostsKey(t, newKey(t))
	a, err := LoadAuth(AuthFiles{SSHKeyFile: write("key", string(key)), KnownHostsFile: write("kh", "h "+line+"\n")})
	if err != nil || string(a.SSHKey) != string(key) {
		t.Fatalf("LoadAuth ssh = %v, %v", a, err)
	}
	a, err = LoadAuth(AuthFiles{UsernameFile: write("user", "bob\n"), PasswordFile: write("pass", " s3cret-pw \n")})
	if err != nil || a.Username != "bob" || a.Password != "s3cret-pw" {
		t.Fatalf("LoadAuth basic = %+v, %v", a, err)
	}
	a, err = LoadAuth(AuthFiles{TokenFile: write("token", "tok\n")})
	if err != nil || a.Token != "tok" {
		t.Fatalf("LoadAuth token = %v, %v", a, err)
	}
	if _, err := LoadAuth(AuthFiles{TokenFile: write("empty", "")}); err == nil {
		t.Error("an empty token file was accepted")
	}
	if _, err := LoadAuth(AuthFiles{TokenFile: filepath.Join(dir, "missing")}); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("a missing file: want an error naming it, got %v", err)
	}
	_, err = LoadAuth(AuthFiles{UsernameFile: write("u2", "bob"), PasswordFile: write("p2", "pw-secret"), TokenFile: write("t2", "tok-secret")})
	if err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("password and token together: want an error without the values, got %v", err)
	}
	if _, err := LoadAuth(AuthFiles{SSHKeyFile: write("k2", string(key))}); err == nil {
		t.Error("an SSH key without known_hosts was accepted")
	}
}
