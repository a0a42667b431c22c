package pipeline

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// scriptEnv is slipway.yaml as validation sees it: which executors are configured.
type scriptEnv struct {
	def       string
	available []string
}

func (e scriptEnv) HasCluster(name string) bool { return name == "prod" }
func (e scriptEnv) ClusterNames() []string      { return []string{"prod"} }
func (e scriptEnv) DefaultRegistry() string     { return "hub.example.com" }
func (e scriptEnv) ChartRepository() string     { return "" }
func (e scriptEnv) KubernetesExecutor() (string, string) {
	if slices.Contains(e.available, "kubernetes") {
		return "prod", "ci"
	}
	return "", ""
}
func (e scriptEnv) ScriptExecutor(name string) (string, error) {
	if name == "" {
		name = e.def
	}
	if !slices.Contains(e.available, name) {
		return "", fmt.Errorf("executor %s is not configured in slipway.yaml", name)
	}
	return name, nil
}

func TestScriptTaskFields(t *testing.T) {
	buildkit := scriptEnv{def: "buildkit", available: []string{"buildkit"}}
	local := scriptEnv{def: "local", available: []string{"local", "buildkit"}}
	for _, c := range []struct {
		name string
		env  Daemon
		task string
		want []string
	}{
		{"every field accepted", buildkit, `        image: busybox:1
        script: echo hi
        env: {A: "${BUILD_ID}"}
        secretEnv: {TOKEN: TOKEN}
        workingDir: sub/dir
        outputs: [VERSION, URL]
        executor: buildkit
        cache: true
`, nil},
		{"workingDir outside", buildkit, "        image: busybox:1\n        script: 'true'\n        workingDir: ../up\n",
			[]string{`11:21: workingDir "../up" points outside the repository`}},
		{"workingDir absolute", buildkit, "        image: busybox:1\n        script: 'true'\n        workingDir: /etc\n",
			[]string{`11:21: workingDir "/etc" must be a relative path with / separators, from the repository root`}},
		{"resources on buildkit", buildkit, "        image: busybox:1\n        script: 'true'\n        resources: {limits: {memory: 64Mi}}\n",
			[]string{"11:20: resources are not supported yet by executor buildkit: only executor kubernetes bounds CPU and memory"}},
		{"bad quantities", nil, "        image: busybox:1\n        script: 'true'\n        executor: kubernetes\n        resources: {requests: {cpu: lots}, limits: {memory: -1Gi}}\n",
			[]string{
				`12:37: cpu "lots" is not a positive Kubernetes quantity, such as 500m or 2 for cpu and 256Mi or 1Gi for memory`,
				`12:61: memory "-1Gi" is not a positive Kubernetes quantity, such as 500m or 2 for cpu and 256Mi or 1Gi for memory`,
			}},
		{"executor not configured", buildkit, "        image: busybox:1\n        script: 'true'\n        executor: local\n",
			[]string{"11:19: executor local is not configured in slipway.yaml"}},
		{"default executor local refuses image", local, "        image: busybox:1\n        script: 'true'\n",
			[]string{"9:16: executor local runs the script on the daemon's host, not in an image: remove image, or choose executor buildkit or kubernetes"}},
		{"image needed", buildkit, "        script: 'true'\n",
			[]string{"7:9: script task needs image (the image the script runs in); only executor local runs without one"}},
		{"local runs without image", local, "        script: 'true'\n", nil},
		{"cache on local", local, "        script: 'true'\n        cache: true\n",
			[]string{"10:16: cache is not supported yet by executor local: only BuildKit reuses an earlier result of a step"}},
		{"secret in env", buildkit, "        image: busybox:1\n        script: 'true'\n        env: {T: 'x${TOKEN}'}\n",
			[]string{"11:18: env T uses secret ${TOKEN}: pass secrets with secretEnv (T: TOKEN), which keeps them out of the step's definition"}},
		{"reserved env", buildkit, "        image: busybox:1\n        script: 'true'\n        env: {SLIPWAY_OUTPUT: x}\n",
			[]string{`11:15: environment variable "SLIPWAY_OUTPUT" is set by Slipway for every script`}},
		{"bad and repeated outputs", buildkit, "        image: busybox:1\n        script: 'true'\n        outputs: [1X, A, A]\n",
			[]string{`11:19: output name "1X": use letters, digits and _, not starting with a digit`, `11:26: output "A" is listed twice`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			doc := "name: demo\nsecrets:\n  - {name: TOKEN, file: /run/token}\nstages:\n  - name: s\n    tasks:\n      - name: run\n        type: script\n" + c.task
			_, err := Load("p.yaml", []byte(doc), Options{Env: c.env})
			if got := errorLines(err); strings.Join(got, "\n") != strings.Join(c.want, "\n") {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(c.want, "\n"))
			}
		})
	}
}

func TestScriptOutputReferences(t *testing.T) {
	doc := `name: demo
stages:
  - name: a
    tasks:
      - name: version
        type: script
        image: busybox:1
        script: echo VERSION=1 >> $SLIPWAY_OUTPUT
        outputs: [VERSION]
      - name: silent
        type: script
        image: busybox:1
        script: 'true'
  - name: b
    tasks:
      - name: use
        type: script
        image: busybox:1
        script: 'true'
        env:
          OK: ${tasks.version.VERSION}
          TYPO: ${tasks.version.VERSON}
          NONE: ${tasks.silent.X}
`
	_, err := Load("p.yaml", []byte(doc), Options{})
	want := []string{
		`22:17: ${tasks.version.VERSON}: script task "version" does not declare output "VERSON"; it declares VERSION`,
		`23:17: ${tasks.silent.X}: script task "silent" declares no outputs; list "X" in its outputs`,
	}
	if got := errorLines(err); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestKubernetesSecretEnv: a kubernetes script's secretEnv must be a Kubernetes Secret in the
// executor's cluster and namespace (prod/ci here), since it becomes a secretKeyRef.
func TestKubernetesSecretEnv(t *testing.T) {
	kube := scriptEnv{def: "kubernetes", available: []string{"kubernetes", "buildkit"}}
	doc := `name: demo
secrets:
  - {name: FILE, file: /run/token}
  - {name: HERE, cluster: prod, namespace: ci, secret: s, key: k}
  - {name: ELSEWHERE, cluster: prod, secret: s, key: k}
stages:
  - name: s
    tasks:
      - name: kube
        type: script
        image: busybox:1
        script: 'true'
        secretEnv: {A: HERE, B: FILE, C: ELSEWHERE}
      - name: buildkit
        type: script
        executor: buildkit
        image: busybox:1
        script: 'true'
        secretEnv: {B: FILE, C: ELSEWHERE}
`
	_, err := Load("p.yaml", []byte(doc), Options{Env: kube})
	want := []string{
		"13:33: secretEnv B: executor kubernetes passes secrets only as secretKeyRef to a Kubernetes Secret, and FILE is a file; keep it in a Secret in namespace ci of cluster prod",
		"13:42: secretEnv C: secret ELSEWHERE is in namespace default of cluster prod, but executor kubernetes runs its Jobs in namespace ci of cluster prod, and a pod reads Secrets of its own namespace only",
	}
	if got := errorLines(err); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
