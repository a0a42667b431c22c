package config

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/slipwayhq/slipway/pipeline/diag"
	"github.com/slipwayhq/slipway/pipeline/yamlstrict"
)

// Role is what an API identity may do.
type Role string

// The API roles. Every role may read; admin may do everything.
const (
	RoleViewer   Role = "viewer"   // read runs
	RoleOperator Role = "operator" // and trigger, re-run, cancel
	RoleApprover Role = "approver" // and approve or reject runs waiting at a gate
	RoleAdmin    Role = "admin"    // everything
)

// Roles lists the roles, least first.
var Roles = []Role{RoleViewer, RoleOperator, RoleApprover, RoleAdmin}

// LegacyTokenUser is the identity apiTokenFile's token stands for: an admin.
const LegacyTokenUser = "api-token"

// userName is what an identity may be called: forge user names fit, and ':' stays free for
// the actors Slipway itself names (cli:USER).
var userName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$`)

// APIUsers is the file apiTokensFile names: who may call the HTTP API.
type APIUsers struct {
	Users []APIUser `yaml:"users" required:"true" doc:"The API's identities."`

	File      string               `yaml:"-"`
	Positions yamlstrict.Positions `yaml:"-"`
}

// FieldHint explains that tokens are never written in the file.
func (*APIUsers) FieldHint(key string) string { return tokenHint(key) }

// APIUser is one identity of the HTTP API.
type APIUser struct {
	Name         string   `yaml:"name" required:"true" doc:"Who this is: audit entries and approvals carry the name."`
	TokenSHA256  string   `yaml:"tokenSHA256" required:"true" doc:"Hex sha256 of the bearer token (slipway token new prints it); never the token."`
	Roles        []Role   `yaml:"roles" required:"true" doc:"viewer, operator, approver and/or admin."`
	Repositories []string `yaml:"repositories,omitempty" doc:"Repository names (shell patterns such as team-*) the identity may act on; unset: all."`

	// TokenHash is TokenSHA256 decoded.
	TokenHash [sha256.Size]byte `yaml:"-"`
}

// FieldHint explains that tokens are never written in the file.
func (*APIUser) FieldHint(key string) string { return tokenHint(key) }

func tokenHint(key string) string {
	if key == "token" || key == "tokenFile" {
		return "the file holds no tokens: set tokenSHA256 to the hex sha256 of the token (slipway token new NAME prints a token and its line)"
	}
	return ""
}

// HasRole reports whether the user holds role r: itself or admin, and for viewer any role
// (everyone who may act may read).
func (u APIUser) HasRole(r Role) bool {
	if r == RoleViewer && len(u.Roles) > 0 {
		return true
	}
	return slices.Contains(u.Roles, r) || slices.Contains(u.Roles, RoleAdmin)
}

// MayAccess reports whether the user may act on the repository.
func (u APIUser) MayAccess(repository string) bool {
	if len(u.Repositories) == 0 {
		return true
	}
	for _, p := range u.Repositories {
		if ok, _ := path.Match(p, repository); ok {
			return true
		}
	}
	return false
}

// LegacyAPIUser is the identity of apiTokenFile's token: an admin on every repository.
func LegacyAPIUser(token []byte) APIUser {
	sum := sha256.Sum256(token)
	return APIUser{Name: LegacyTokenUser, TokenSHA256: hex.EncodeToString(sum[:]), Roles: []Role{RoleAdmin}, TokenHash: sum}
}

// LoadAPIUsers reads and validates the file apiTokensFile names.
func LoadAPIUsers(file string) (*APIUsers, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading the API tokens file: %w", err)
	}
	return ParseAPIUsers(file, data)
}

// ParseAPIUsers parses and validates an API tokens file. Errors name the file, line and
// field, never a token (the file holds none).
func ParseAPIUsers(file string, data []byte) (*APIUsers, error) {
	u := &APIUsers{File: file}
	err := parseDocument(file, data, u, "empty API tokens file: list the identities under users", "the API tokens file",
		func(r diag.Reporter, pos yamlstrict.Positions) {
			u.Positions = pos
			u.validate(r)
		})
	if err != nil {
		return nil, err
	}
	return u, nil
}

func (u *APIUsers) validate(r diag.Reporter) {
	at := func(field, format string, args ...any) { r.At(u.Positions.Of(field), field, format, args...) }
	if u.Users != nil && len(u.Users) == 0 {
		at("users", "users is empty: list at least one identity, or unset apiTokensFile to turn the API off")
	}
	names := map[string]bool{}
	hashes := map[[sha256.Size]byte]string{}
	for i := range u.Users {
		f := yamlstrict.Index("users", i)
		user := &u.Users[i]
		switch {
		case user.Name == "":
		case !userName.MatchString(user.Name):
			at(f+".name", "name %q: use letters, digits, '.', '_', '@' and '-', starting with a letter or digit, at most 100 characters", user.Name)
		case names[user.Name]:
			at(f+".name", "name %q is used twice", user.Name)
		default:
			names[user.Name] = true
		}
		if user.TokenSHA256 != "" {
			b, err := hex.DecodeString(strings.ToLower(user.TokenSHA256))
			if err != nil || len(b) != sha256.Size {
				at(f+".tokenSHA256", "tokenSHA256 must be 64 hex digits, the sha256 of the token (slipway token hash prints it); never the token itself")
			} else {
				copy(user.TokenHash[:], b)
				if other, dup := hashes[user.TokenHash]; dup {
					at(f+".tokenSHA256", "%s has the same token as %s: every identity needs its own token", user.Name, other)
				}
				hashes[user.TokenHash] = user.Name
			}
		}
		if user.Roles != nil && len(user.Roles) == 0 {
			at(f+".roles", "roles is empty: give at least one of viewer, operator, approver, admin")
		}
		for j, role := range user.Roles {
			if !slices.Contains(Roles, role) {
				at(yamlstrict.Index(f+".roles", j), "role %q is not one of viewer, operator, approver, admin", role)
			}
		}
		for j, p := range user.Repositories {
			if _, err := path.Match(p, ""); err != nil || p == "" {
				at(yamlstrict.Index(f+".repositories", j), "repository pattern %q is not a valid shell pattern (such as app or team-*)", p)
			}
		}
	}
}
