package config

import (
	"fmt"
	"os"
	"strings"
)

// ReadSecretFile reads a secret kept in a file; a trailing newline, which editors add, is
// not part of it. Errors name the file, never the content.
func ReadSecretFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return nil, fmt.Errorf("%s is empty", path)
	}
	return []byte(s), nil
}
