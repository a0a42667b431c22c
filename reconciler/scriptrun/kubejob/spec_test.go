package kubejob

import (
	"errors"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/slipwayhq/slipway/reconciler/scriptrun"
)

func TestEscapeExpansionKeepsScriptsLiteral(t *testing.T) {
	for in, want := range map[string]string{
		"echo $(date) $$ $HOME": "echo $$(date) $$$$ $$HOME",
		"no dollars":            "no dollars",
	} {
		if got := escapeExpansion(in); got != want {
			t.Errorf("escapeExpansion(%q) = %q, want %q", in, got, want)
		}
	}
}

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

func TestJobNameIsAShortDNSLabel(t *testing.T) {
	for _, r := range []scriptrun.RunRef{
		{Pipeline: "Build & Test", BuildID: 42, Task: "unit_tests"},
		{Pipeline: strings.Repeat("p", 80), BuildID: 1234567, Task: strings.Repeat("t", 80)},
		{Pipeline: "---", BuildID: 1, Task: "!!!"},
	} {
		n := jobName(r)
		if len(n) > 52 || !dnsLabel.MatchString(n) || !strings.Contains(n, "-"+strconv.FormatInt(r.BuildID, 10)+"-") {
			t.Errorf("jobName(%+v) = %q: not a DNS label of at most 52", r, n)
		}
		if jobName(r) == n {
			t.Errorf("jobName(%+v) twice gave %q: names must not collide between attempts", r, n)
		}
	}
}

func TestLabelValue(t *testing.T) {
	for in, want := range map[string]string{
		"github.com/acme/web":   "github.com_acme_web",
		"-x-":                   "x",
		strings.Repeat("a", 70): strings.Repeat("a", 63),
	} {
		if got := labelValue(in); got != want {
			t.Errorf("labelValue(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestEnvVarsSecretsOnlyByReference(t *testing.T) {
	base := scriptrun.Spec{Env: map[string]string{"B": "$(A)", "A": "1", "SLIPWAY_OUTPUT": "/elsewhere"}}
	ok := base
	ok.Secrets = []scriptrun.SecretEnv{{Name: "TOKEN", Value: "s3cr3t", Kubernetes: &scriptrun.SecretRef{Cluster: "prod", Namespace: "ci", Name: "creds", Key: "token"}}}
	env, err := envVars(ok, "prod", "ci")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range env {
		names = append(names, e.Name)
		if strings.Contains(e.Value, "s3cr3t") {
			t.Fatalf("the secret's value was copied into the Job: %+v", e)
		}
	}
	if strings.Join(names, ",") != "A,B,TOKEN,SLIPWAY_OUTPUT,SLIPWAY_WORKSPACE" {
		t.Errorf("env names = %v", names)
	}
	if env[1].Value != "$$(A)" || env[2].ValueFrom.SecretKeyRef.Name != "creds" || env[2].ValueFrom.SecretKeyRef.Key != "token" ||
		env[3].Value != outputFile {
		t.Errorf("env = %+v", env)
	}

	for name, sec := range map[string]scriptrun.SecretEnv{
		"no ref":          {Name: "PASSWORD", Value: "x"},
		"other cluster":   {Name: "PASSWORD", Kubernetes: &scriptrun.SecretRef{Cluster: "staging", Namespace: "ci", Name: "n", Key: "k"}},
		"other namespace": {Name: "PASSWORD", Kubernetes: &scriptrun.SecretRef{Cluster: "prod", Namespace: "default", Name: "n", Key: "k"}},
	} {
		bad := base
		bad.Secrets = []scriptrun.SecretEnv{sec}
		_, err := envVars(bad, "prod", "ci")
		if !errors.Is(err, ErrSecret) || !strings.Contains(err.Error(), "secretEnv PASSWORD") {
			t.Errorf("%s: err = %v, want a SecretError naming PASSWORD", name, err)
		}
	}
}

func TestResources(t *testing.T) {
	r, err := resources(scriptrun.Resources{CPURequest: "100m", MemoryLimit: "32Mi"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests.Cpu().String() != "100m" || r.Limits.Memory().String() != "32Mi" || len(r.Limits) != 1 || len(r.Requests) != 1 {
		t.Errorf("resources = %+v", r)
	}
	if _, err := resources(scriptrun.Resources{MemoryLimit: "lots"}); err == nil || !strings.Contains(err.Error(), "resources.limits.memory") {
		t.Errorf("bad quantity: err = %v", err)
	}
}
