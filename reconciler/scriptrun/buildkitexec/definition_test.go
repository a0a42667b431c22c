package buildkitexec

import (
	"bytes"
	"context"
	"encoding/base64"
	"testing"

	"github.com/moby/buildkit/solver/pb"
	digest "github.com/opencontainers/go-digest"

	"github.com/slipwayhq/slipway/reconciler/scriptrun"
)

// The step's definition, from which BuildKit derives its cache keys and which its build
// history keeps, names secrets by ID and never holds their values.
func TestDefinitionHoldsNoSecretValue(t *testing.T) {
	const secret = "pa55-w0rd-value"
	s := scriptrun.Spec{Run: scriptrun.RunRef{Repository: "r", Pipeline: "p", BuildID: 1, Task: "t"},
		Image: "busybox", Script: `echo "$TOKEN"`, Env: map[string]string{"A": "b"},
		Secrets: []scriptrun.SecretEnv{{Name: "TOKEN", Value: secret}}}
	def, err := Definition(context.Background(), s, "registry.invalid/busybox:1", nil)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, d := range def.Def {
		for _, form := range []string{secret, base64.StdEncoding.EncodeToString([]byte(secret))} {
			if bytes.Contains(d, []byte(form)) {
				t.Fatalf("the definition holds the secret (%q)", form)
			}
		}
		var op pb.Op
		if err := op.UnmarshalVT(d); err != nil {
			t.Fatal(err)
		}
		if ex := op.GetExec(); ex != nil {
			for _, m := range ex.Secretenv {
				if m.Name == "TOKEN" && m.ID == "env.TOKEN" {
					found = true
				}
			}
		}
	}
	if !found {
		t.Error("the exec has no secret env TOKEN")
	}
	if got := SecretValues(s); string(got["env.TOKEN"]) != secret {
		t.Errorf("session secrets %v", got)
	}
}

// Steps are never taken from the cache unless the task asks for it.
func TestIgnoreCacheUnlessAsked(t *testing.T) {
	for _, cache := range []bool{false, true} {
		s := scriptrun.Spec{Run: scriptrun.RunRef{Task: "t"}, Image: "busybox", Script: "true", Cache: cache}
		def, err := Definition(context.Background(), s, "registry.invalid/busybox:1", nil)
		if err != nil {
			t.Fatal(err)
		}
		ignored := false
		for dg, md := range def.Metadata {
			for _, d := range def.Def {
				var op pb.Op
				_ = op.UnmarshalVT(d)
				if op.GetExec() != nil && digestOf(d) == dg && md.IgnoreCache {
					ignored = true
				}
			}
		}
		if ignored == cache {
			t.Errorf("cache: %v, exec ignores the cache: %v", cache, ignored)
		}
	}
}

func digestOf(b []byte) digest.Digest { return digest.FromBytes(b) }
