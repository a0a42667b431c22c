package sources

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// AuthFiles names files holding credentials, as slipway.yaml refers to them; secrets are
// kept in files (mounted Secrets) rather than in the configuration itself.
type AuthFiles struct {
	UsernameFile   string
	PasswordFile   string
	TokenFile      string
	SSHKeyFile     string
	KnownHostsFile string
}

// LoadAuth reads the named files into an Auth. Errors name the file, never its content.
func LoadAuth(f AuthFiles) (Auth, error) {
	var a Auth
	var err error
	if a.Username, err = readTrimmed(f.UsernameFile); err != nil {
		return Auth{}, err
	}
	if a.Password, err = readTrimmed(f.PasswordFile); err != nil {
		return Auth{}, err
	}
	if a.Token, err = readTrimmed(f.TokenFile); err != nil {
		return Auth{}, err
	}
	if a.SSHKey, err = readRaw(f.SSHKeyFile); err != nil {
		return Auth{}, err
	}
	if a.KnownHosts, err = readRaw(f.KnownHostsFile); err != nil {
		return Auth{}, err
	}
	if err := a.validate(); err != nil {
		return Auth{}, err
	}
	return a, nil
}

// validate refuses combinations that would make it ambiguous which credential is used.
func (a Auth) validate() error {
	switch {
	case a.Password != "" && a.Token != "":
		return errors.New("auth: give a password or a token, not both")
	case len(a.SSHKey) > 0 && (a.Password != "" || a.Token != ""):
		return errors.New("auth: give an SSH key or HTTP credentials, not both")
	case len(a.SSHKey) > 0 && len(a.KnownHosts) == 0:
		return errors.New("auth: an SSH key needs known_hosts (host keys are always verified)")
	case a.Password != "" && a.Username == "":
		return errors.New("auth: a password needs a username")
	}
	return nil
}

// readTrimmed drops surrounding whitespace: secret files usually end with a newline.
func readTrimmed(path string) (string, error) {
	b, err := readRaw(path)
	return strings.TrimSpace(string(b)), err
}

func readRaw(path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		// The *PathError names the file and the reason only.
		return nil, fmt.Errorf("auth: %w", err)
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("auth: %s is empty", path)
	}
	return b, nil
}
