package kube

import (
	"os"
	"path/filepath"
	"testing"
)

// A kubeconfig's disable-compression reaches the clients Slipway builds (docs/operations.md,
// "Response compression"), and compression stays on without it.
func TestKubeconfigDisableCompressionIsKept(t *testing.T) {
	for _, off := range []bool{true, false} {
		path := filepath.Join(t.TempDir(), "kubeconfig")
		entry := ""
		if off {
			entry = "\n    disable-compression: true"
		}
		cfg := `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster:
    server: https://127.0.0.1:6443` + entry + `
users:
- name: u
  user: {token: t}
contexts:
- name: x
  context: {cluster: c, user: u}
current-context: x
`
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		rc, err := restConfig(Spec{Name: "c", Kubeconfig: path})
		if err != nil {
			t.Fatal(err)
		}
		if rc.DisableCompression != off {
			t.Fatalf("disable-compression %v in the kubeconfig: rest config has %v", off, rc.DisableCompression)
		}
	}
}
