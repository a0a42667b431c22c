// Package e2e holds the end-to-end tests: every test here talks to the real parts of the
// local environment (hack/env-up.sh), never to fakes.
package e2e

import (
	"os"
	"testing"

	"github.com/slipwayhq/slipway/reconciler/kube"
	"github.com/slipwayhq/slipway/test/testenv"
)

func TestMain(m *testing.M) {
	kube.SilenceControllerRuntimeLog() // the schedule tests run the daemon in-process
	os.Exit(testenv.Main(m))
}
