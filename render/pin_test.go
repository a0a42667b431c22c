package render

import "testing"

func TestPinImages(t *testing.T) {
	root := writeFiles(t, map[string]string{"m.yaml": `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      initContainers: [{name: init, image: reg/devops/app:alpha-7}]
      containers:
      - {name: app, image: reg/devops/app:alpha-7}
      - {name: sidecar, image: reg/other:1}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: job}
spec:
  jobTemplate:
    spec:
      template:
        spec:
          containers: [{name: c, image: reg/devops/app:alpha-7}]
`})
	ms, err := loadManifests(t, root, "m.yaml", Map{})
	if err != nil {
		t.Fatal(err)
	}
	n := PinImages(ms, map[string]string{"reg/devops/app:alpha-7": "reg/devops/app:alpha-7@sha256:abc"})
	if n != 3 {
		t.Fatalf("pinned %d fields, want 3", n)
	}
	containers := ms[0].Object.Object["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)
	if got := containers[1].(map[string]any)["image"]; got != "reg/other:1" {
		t.Errorf("an image not built in the run was rewritten to %v", got)
	}
	if got := containers[0].(map[string]any)["image"]; got != "reg/devops/app:alpha-7@sha256:abc" {
		t.Errorf("image = %v", got)
	}
}
