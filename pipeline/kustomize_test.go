package pipeline

import (
	"strings"
	"testing"
)

// A kustomization is built by validation as a run builds it: what it refuses, and every
// reference in what it builds, is reported before anything runs.
func TestValidationBuildsKustomizations(t *testing.T) {
	cm := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"
	for name, tc := range map[string]struct {
		files map[string]string
		want  string // "" for no error
	}{
		"a valid overlay": {map[string]string{"base/kustomization.yaml": "resources: [cm.yaml]\n", "base/cm.yaml": cm,
			"k8s/kustomization.yaml": "resources: [../base]\nnamePrefix: prod-\nconfigMapGenerator: [{name: s, envs: [s.env]}]\n", "k8s/s.env": "A=${BUILD_ID}\n"}, ""},
		"other files beside the kustomization": {map[string]string{"k8s/kustomization.yaml": "resources: [cm.yaml]\n", "k8s/cm.yaml": cm, "k8s/README.md": "# notes"}, ""},
		"a remote base": {map[string]string{"k8s/kustomization.yaml": "resources:\n  - cm.yaml\n  - https://github.com/org/repo//base?ref=v1\n", "k8s/cm.yaml": cm},
			`k8s/kustomization.yaml:3:1: resources[1]: "https://github.com/org/repo//base?ref=v1": remote bases and files are not fetched`},
		"helm": {map[string]string{"k8s/kustomization.yaml": "helmCharts: [{name: x}]\n"},
			`k8s/kustomization.yaml:1:1: helmCharts: the helmCharts generator is not supported`},
		"an undefined variable in a source": {map[string]string{"k8s/kustomization.yaml": "resources: [cm.yaml]\n", "k8s/cm.yaml": cm + "data: {x: '${NOPE}'}\n"},
			`k8s/cm.yaml:4:12: undefined variable ${NOPE}`},
		"an undefined variable in an env file": {map[string]string{"k8s/kustomization.yaml": "configMapGenerator: [{name: s, envs: [s.env]}]\n", "k8s/s.env": "A=${NOPE}\n"},
			`.pipeline.yaml:5:46: kustomize build k8s, line 3: undefined variable ${NOPE}`},
		"a path out of the checkout": {map[string]string{"k8s/kustomization.yaml": "resources: [../../elsewhere]\n"},
			`.pipeline.yaml:5:46: path "k8s": kustomize build k8s: path "../elsewhere" leaves the repository`},
		"a build error": {map[string]string{"k8s/kustomization.yaml": "resources: [missing.yaml]\n"},
			`.pipeline.yaml:5:46: path "k8s": kustomize build k8s: `},
	} {
		t.Run(name, func(t *testing.T) {
			tc.files[DefaultFile] = deployK8s
			got := loadErrors(t, repoWith(t, tc.files), Options{})
			if tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
				t.Errorf("errors:\n%s\nwant %q", got, tc.want)
			}
		})
	}
}

// A deploy-yaml path may be chosen by the pipeline's variables whose values are fixed in
// the file, and is then checked as written out; anything that could change per run is refused.
func TestDeployYAMLPathTakesFixedVariables(t *testing.T) {
	overlay := map[string]string{
		"deploy/base/kustomization.yaml": "resources: [cm.yaml]\n", "deploy/base/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n",
		"deploy/overlays/staging/kustomization.yaml": "resources: [../../base]\nnamePrefix: staging-\n",
	}
	pipe := func(vars, path string) string {
		v := "variables: {}\n"
		if vars != "" {
			v = "variables:\n  " + vars + "\n"
		}
		return "name: app\n" + v + "stages:\n  - name: deploy\n    tasks:\n      - name: app\n        type: deploy-yaml\n        path: " + path + "\n        cluster: c\n        namespace: n\n"
	}
	for name, tc := range map[string]struct{ vars, path, want string }{
		"a fixed variable":             {"OVERLAY: staging", "deploy/overlays/${OVERLAY}", ""},
		"a default":                    {"", "deploy/overlays/${OVERLAY:-staging}", ""},
		"an overlay that is not there": {"OVERLAY: prod", "deploy/overlays/${OVERLAY}", `path "deploy/overlays/prod" does not exist in the repository`},
		"a built-in":                   {"", "deploy/overlays/${GIT_BRANCH}", `only the pipeline's variables, whose values are fixed in this file, may be referenced here; "GIT_BRANCH" is not one`},
		"a variable using a built-in":  {"OVERLAY: \"${GIT_BRANCH}\"", "deploy/overlays/${OVERLAY}", `variable "OVERLAY" has a reference in its value`},
		"a variable leading out":       {"OVERLAY: ../../..", "deploy/overlays/${OVERLAY}", `path "deploy/overlays/../../.." points outside the repository`},
		"a field without references":   {"NS: n", "deploy/overlays/staging\n        allowedNamespaces: [\"${NS}\"]", `allowedNamespaces does not take ${...} references`},
	} {
		t.Run(name, func(t *testing.T) {
			files := map[string]string{DefaultFile: pipe(tc.vars, tc.path)}
			for k, v := range overlay {
				files[k] = v
			}
			got := loadErrors(t, repoWith(t, files), Options{})
			if tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
				t.Errorf("errors:\n%s\nwant %q", got, tc.want)
			}
		})
	}
}

// An environment's values choose the path of its tasks, as at run time (varsFor), and
// ${ENVIRONMENT} is the environment's name.
func TestDeployYAMLPathTakesEnvironmentValues(t *testing.T) {
	overlays := map[string]string{
		"deploy/base/kustomization.yaml": "resources: [cm.yaml]\n", "deploy/base/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n",
		"deploy/overlays/staging/kustomization.yaml": "resources: [../../base]\nnamePrefix: staging-\n",
		"deploy/overlays/prod/kustomization.yaml":    "resources: [../../base]\nnamePrefix: prod-\n",
	}
	pipe := func(envVars, path string) string {
		return "name: app\nvariables: {OVERLAY: staging}\nenvironments:\n  - name: prod\n    cluster: c\n    namespace: n\n" + envVars +
			"stages:\n  - name: deploy\n    tasks:\n      - {name: app, type: deploy-yaml, path: \"" + path + "\", environment: prod}\n"
	}
	for name, tc := range map[string]struct{ envVars, path, want string }{
		"the environment's name":          {"", "deploy/overlays/${ENVIRONMENT}", ""},
		"the environment's value":         {"    variables: {OVERLAY: prod}\n", "deploy/overlays/${OVERLAY}", ""},
		"the environment's missing value": {"    variables: {OVERLAY: qa}\n", "deploy/overlays/${OVERLAY}", `path "deploy/overlays/qa" does not exist in the repository`},
		"a reference in its value":        {"    variables: {OVERLAY: \"${GIT_BRANCH}\"}\n", "deploy/overlays/${OVERLAY}", `variable "OVERLAY" has a reference in its value`},
	} {
		t.Run(name, func(t *testing.T) {
			files := map[string]string{DefaultFile: pipe(tc.envVars, tc.path)}
			for k, v := range overlays {
				files[k] = v
			}
			got := loadErrors(t, repoWith(t, files), Options{})
			if tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
				t.Errorf("errors:\n%s\nwant %q", got, tc.want)
			}
		})
	}
}
