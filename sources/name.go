package sources

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// mirrorDirName turns a repository name into one safe path element. Names that had to be
// changed get a short hash of the original, so "a/b" and "a_b" never share a mirror.
func mirrorDirName(name string) string {
	var b strings.Builder
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	// A leading dot would hide the folder or make "." and ".." path tricks possible.
	safe := strings.TrimLeft(b.String(), ".")
	if len(safe) > 64 {
		safe = safe[:64]
	}
	if safe == name && safe != "" {
		return safe
	}
	sum := sha256.Sum256([]byte(name))
	if safe == "" {
		return "repo-" + hex.EncodeToString(sum[:6])
	}
	return safe + "-" + hex.EncodeToString(sum[:6])
}
