package config

import (
	"fmt"
	"strings"
	"testing"

	"github.com/slipwayhq/slipway/internal/heldheap"
)

// manyRepositories is a slipway.yaml of n repositories written as the scale benchmark
// writes its own.
func manyRepositories(n int) []byte {
	var b strings.Builder
	b.WriteString("dataDir: /var/lib/slipway\nrepositories:\n")
	for i := range n {
		fmt.Fprintf(&b, `  - name: app-%04d
    url: https://git.example.com/team/app-%04d.git
    branch: master
    poll: 0s
    auth: {usernameFile: git-user, passwordFile: git-password}
    webhook: {type: generic, secretFile: hook-secret}
    policy: {clusters: ['*'], namespaces: ['*'], registries: ['*']}
    limits: {pipelinesPerFile: 1}
`, i, i)
	}
	b.WriteString("clusters:\n  - name: bench\n    kubeconfig: /etc/kubeconfig\n")
	return []byte(b.String())
}

// TestParseManyRepositoriesHeldBytes bounds what a parsed configuration of 1000
// repositories keeps for the daemon's lifetime, and checks that a place is still found.
// Measured (go1.26, amd64): 3.2 MB while the positions were kept as the map validation
// reads, 1.0 MB packed. The bound fails well before the map's cost.
func TestParseManyRepositoriesHeldBytes(t *testing.T) {
	const n, bound = 1000, 2_000_000
	data := manyRepositories(n)
	parse := func() *Config {
		c, err := Parse("slipway.yaml", data)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	held := heldheap.Bytes(t, 3, func() any { return parse() })
	t.Logf("a configuration of %d repositories (%d bytes) holds %d bytes once parsed", n, len(data), held)
	if held > bound {
		t.Errorf("a parsed configuration of %d repositories holds %d bytes, more than %d", n, held, bound)
	}
	field := fmt.Sprintf("repositories[%d].webhook.secretFile", n-1)
	if pos := parse().Positions.Of(field); pos.Line != 3+8*(n-1)+5 {
		t.Errorf("%s is on line %d, want %d", field, pos.Line, 3+8*(n-1)+5)
	}
}
