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

func TestCheckTagVersion(t *testing.T) {
	for _, tc := range []struct {
		template, version, tag string
		wantErr                bool
	}{
		{"${VERSION}", "1.4.0", "v1.4.0", false},
		{"${VERSION}", "1.4", "v1.4", true},
		{"${GIT_TAG}", "release-7", "release-7", true},
		{"6.0.1-alpha.${BUILD_ID}", "6.0.1-alpha.3", "v1.4", false}, // not from the tag
		{"${VERSION}", "0.0.0-3+abc1234", "", false},                // a branch run
	} {
		err := checkTagVersion(tc.template, tc.version, tc.tag)
		if (err != nil) != tc.wantErr {
			t.Errorf("%s = %q (tag %q): error %v, want error %v", tc.template, tc.version, tc.tag, err, tc.wantErr)
		}
		if err != nil && (!errors.Is(err, ErrTagNotSemVer) || !strings.Contains(err.Error(), `tag "`+tc.tag+`"`)) {
			t.Errorf("error %q does not name the tag", err)
		}
	}
}
