package reconciler

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/slipwayhq/slipway/pipeline"
	"github.com/slipwayhq/slipway/render"
)

func TestPublishChartValuesSubstitution(t *testing.T) {
	dir := t.TempDir()
	values := "image:\n  tag: ${TAG}   # the tag\ndb:\n  password: ${DB_PASSWORD}\n"
	if err := os.WriteFile(filepath.Join(dir, "values.yaml"), []byte(values), 0o644); err != nil {
		t.Fatal(err)
	}
	secrets := []pipeline.Secret{{Name: "DB_PASSWORD", File: "/x"}}
	err := refuseSecretValues(dir, "chart", []string{"values.yaml"}, secrets)
	if !errors.Is(err, ErrSecretInChart) || !strings.Contains(err.Error(), "chart/values.yaml:4:13: ${DB_PASSWORD} is a secret") {
		t.Fatalf("secret in values: %v", err)
	}
	if err := refuseSecretValues(dir, "chart", []string{"values.yaml"}, nil); err != nil {
		t.Fatalf("no secrets: %v", err)
	}

	// A value with a newline and "---" stays one string; "#" does not end it.
	vars := render.Map{"TAG": "1.0 #x\n---\nkind: ClusterRoleBinding", "DB_PASSWORD": "p"}
	if err := substituteFile(dir, "values.yaml", vars); err != nil {
		t.Fatal(err)
	}
	out, err := os.ReadFile(filepath.Join(dir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]map[string]any
	if err := yaml.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["image"]["tag"] != vars["TAG"] || got["db"]["password"] != "p" {
		t.Fatalf("values:\n%s", out)
	}
}
