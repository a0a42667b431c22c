// Package bench measures Slipway's deploy path against its peers on the local control
// plane: `kubectl apply --server-side`, a minimal concurrent server-side-apply client (the
// floor) and, for a re-deploy with nothing changed, a GET plus a dry-run per object (what
// Flux does). Each contender runs as a child process of its own, so its peak RSS is its own.
package bench

import (
	"os"
	"testing"

	"github.com/slipwayhq/slipway/test/testenv"
)

func TestMain(m *testing.M) {
	// A child re-executed by TestBench runs one contender and exits; it never touches the
	// environment's leases (the parent holds one) and starts no grandchildren, so the
	// rusage the parent reads is the contender's alone.
	if name := os.Getenv(childEnv); name != "" {
		os.Exit(runChild(name))
	}
	os.Exit(testenv.Main(m))
}
