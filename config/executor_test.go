package config

import (
	"errors"
	"strings"
	"testing"
)

func TestExecutorValidation(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"default names an unconfigured executor", "dataDir: /d\nexecutor: {default: local}\n",
			"2:21: default executor local is not configured here: configure executor.local (configured: none)"},
		{"local needs enabled: true", "dataDir: /d\nexecutor: {local: {enabled: false}}\n",
			"2:29: executor local runs scripts on this host only with enabled: true; remove local to leave it off"},
		{"buildkit without an address", "dataDir: /d\nexecutor: {buildkit: {}}\n",
			"2:22: executor buildkit needs address (or builder type buildkit, whose address it then uses), such as unix:///run/buildkit/buildkitd.sock or tcp://buildkitd:1234"},
		{"buildkit address not a URL", "dataDir: /d\nexecutor: {buildkit: {address: 'buildkitd:1234'}}\n",
			`2:32: executor buildkit address "buildkitd:1234" must be a unix://, tcp://, docker-container:// or kube-pod:// URL`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("slipway.yaml", []byte(tc.yaml))
			if err == nil || strings.TrimPrefix(err.Error(), "slipway.yaml:") != tc.want {
				t.Errorf("error %v\nwant %s", err, tc.want)
			}
		})
	}
}

func TestScriptExecutorResolution(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, task, want, err string
	}{
		{"buildkit from the builder", "dataDir: /d\nbuilder: {type: buildkit, address: 'tcp://b:1'}\n", "", "buildkit", ""},
		{"none configured", "dataDir: /d\n", "", "", "no executor for script tasks"},
		{"the only one", "dataDir: /d\nexecutor: {local: {enabled: true}}\n", "", "local", ""},
		{"buildkit wins over local", "dataDir: /d\nbuilder: {type: buildkit, address: 'tcp://b:1'}\nexecutor: {local: {enabled: true}}\n", "", "buildkit", ""},
		{"default written", "dataDir: /d\nbuilder: {type: buildkit, address: 'tcp://b:1'}\nexecutor: {default: local, local: {enabled: true}}\n", "", "local", ""},
		{"task's own", "dataDir: /d\nbuilder: {type: buildkit, address: 'tcp://b:1'}\nexecutor: {local: {enabled: true}}\n", "local", "local", ""},
		{"task's own not configured", "dataDir: /d\nbuilder: {type: buildkit, address: 'tcp://b:1'}\n", "local", "", "executor local is not configured in slipway.yaml (buildkit is)"},
		{"executor address over the builder's", "dataDir: /d\nexecutor: {buildkit: {address: 'unix:///b.sock'}}\n", "", "buildkit", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("slipway.yaml", []byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.ScriptExecutor(tc.task)
			if got != tc.want || (err == nil) != (tc.err == "") || err != nil && (!strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrNoExecutor)) {
				t.Errorf("ScriptExecutor(%q) = %q, %v; want %q, %q", tc.task, got, err, tc.want, tc.err)
			}
		})
	}
	c, _ := Parse("slipway.yaml", []byte("dataDir: /d\nbuilder: {type: buildkit, address: 'tcp://b:1'}\nexecutor: {buildkit: {address: 'tcp://x:2'}}\n"))
	if a := c.BuildKitExecutorAddress(); a != "tcp://x:2" {
		t.Errorf("executor.buildkit.address is not used: %s", a)
	}
}
