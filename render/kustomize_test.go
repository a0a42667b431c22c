package render

import (
	"strings"
	"testing"
)

// A kustomization is built first and substituted after: values land in the built objects
// (a namePrefix, an image tag set by the images transformer), never in the structure.
func TestLoadManifestsBuildsKustomizations(t *testing.T) {
	root := writeFiles(t, map[string]string{
		"base/kustomization.yaml": "resources: [app.yaml]\n",
		"base/app.yaml":           "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app}\ndata: {build: \"${BUILD_ID}\", owner: \"${N}\"}\n",
		"prod/kustomization.yml":  "resources: [../base]\nnamePrefix: prod-\nimages: [{name: x, newTag: \"${TAG}\"}]\ncommonAnnotations: {note: \"${NOTE}\"}\n",
	})
	ms, err := loadManifests(t, root, "prod", Map{"BUILD_ID": "7", "N": "3", "TAG": "v1", "NOTE": "a: b\n---\nkind: Secret"})
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 || ms[0].String() != "ConfigMap/prod-app (kustomize build prod, document 1)" {
		t.Fatalf("manifests %v", ms)
	}
	o := ms[0].Object.Object
	data := o["data"].(map[string]any)
	if data["build"] != "7" || data["owner"] != "3" {
		t.Errorf("data %v", data)
	}
	if note := ms[0].Object.GetAnnotations()["note"]; note != "a: b\n---\nkind: Secret" {
		t.Errorf("annotation %q", note)
	}
	_, err = loadManifests(t, root, "prod", Map{"BUILD_ID": "7", "TAG": "v1", "NOTE": ""})
	if err == nil || !strings.Contains(err.Error(), "kustomize build prod:") || !strings.Contains(err.Error(), `"N"`) {
		t.Errorf("undefined variable: %v", err)
	}
}
