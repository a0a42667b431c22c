package pipeline

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/pipeline/diag"
)

const seedPipeline = `name: jack-2048
description: Build the 2048 game image and deploy it by YAML
timeout: 30m
triggers:
  push:
    branches: [master]
    paths: ["2048/**", "Dockerfile", "2048_env.yaml"]
  schedules:
    - cron: "0 * * * *"
      timezone: Asia/Shanghai
variables:
  DOMAIN: 2048.example.cn
secrets:
  - name: HUB_PASSWORD
    secret: devops-hub
    key: password
stages:
  - name: build
    tasks:
      - name: build-2048-image
        type: build-image
        workspace: devops
        image: jack-2048
        tag: alpha-${BUILD_ID}
  - name: deploy
    tasks:
      - name: deploy-2048
        type: deploy-yaml
        path: 2048_env.yaml
        cluster: seconddevops
        namespace: seconddevops
        wait: 0
        prune: false
---
# a second pipeline in the same file
name: nightly
triggers: {}
stages:
  - name: run
    tasks:
      - name: report
        type: deploy-yaml
        path: report.yaml
        cluster: seconddevops
        namespace: seconddevops
`

func TestParseSeedPipeline(t *testing.T) {
	ps, err := Load(".pipeline.yaml", []byte(seedPipeline), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 {
		t.Fatalf("got %d pipelines, want 2", len(ps))
	}
	p := ps[0]
	if p.Name != "jack-2048" || p.Timeout.Duration != 30*time.Minute {
		t.Errorf("name %q timeout %v", p.Name, p.Timeout)
	}
	s := p.Triggers.Schedules[0]
	if s.Timezone != "Asia/Shanghai" || s.Concurrency != ConcurrencyForbid || s.StartingDeadline.Duration != 10*time.Minute {
		t.Errorf("schedule defaults not applied: %+v", s)
	}
	b := p.Stages[0].Tasks[0]
	if b.Type != TypeBuildImage || b.BuildImage == nil || b.DeployYAML != nil {
		t.Fatalf("task parts: %+v", b)
	}
	if b.BuildImage.Dockerfile != "Dockerfile" || b.BuildImage.Platform != "linux/amd64" || b.BuildImage.Tag != "alpha-${BUILD_ID}" {
		t.Errorf("build-image defaults: %+v", b.BuildImage)
	}
	d := p.Stages[1].Tasks[0].DeployYAML
	if d.Wait.Duration != 0 {
		t.Errorf("wait: 0 must stay 0 (do not wait), got %v", d.Wait)
	}
	if d.Prune == nil || *d.Prune {
		t.Errorf("prune: false must stay false")
	}
	if d.Rollback != RollbackAuto || d.Drift != DriftCorrect {
		t.Errorf("deploy defaults: %+v", d)
	}
	if got := p.Positions.Of("stages[1].tasks[0].path"); got != (diag.Pos{Line: 29, Column: 15}) {
		t.Errorf("position of path: %+v", got)
	}
	if ps[1].Timeout.Duration != 60*time.Minute || ps[1].Stages[0].Tasks[0].DeployYAML == nil {
		t.Errorf("second document: %+v", ps[1])
	}
}

func TestDefaultsWhenOmitted(t *testing.T) {
	ps, err := Load("p.yaml", []byte(`name: d
stages:
  - name: s
    approval: {manual: {approvers: [ops-lead]}, pullRequest: {}}
    tasks:
      - {name: c, type: deploy-chart, release: r, chart: c, version: 1.0.0, cluster: k, namespace: n}
`), Options{})
	if err != nil {
		t.Fatal(err)
	}
	st := ps[0].Stages[0]
	if st.Approval.Timeout.Duration != 24*time.Hour || st.Approval.PullRequest.Approvals != 1 {
		t.Errorf("approval defaults: %+v %+v", st.Approval, st.Approval.PullRequest)
	}
	c := st.Tasks[0].DeployChart
	if c.MaxHistory != 10 || c.Wait.Duration != 5*time.Minute || c.Rollback != RollbackAuto {
		t.Errorf("deploy-chart defaults: %+v", c)
	}
}

func TestErrorsAreAPositionedList(t *testing.T) {
	_, err := Load("dir/.pipeline.yaml", []byte("name: x\nstages:\n  - name: s\n    tasks:\n      - {name: t, type: build-image, image: app, tag: '${NOPE}'}\n"), Options{})
	var list diag.List
	if !errors.As(err, &list) || len(list) != 1 {
		t.Fatalf("want one diag.List entry, got %v", err)
	}
	b, jerr := json.Marshal(list)
	if jerr != nil {
		t.Fatal(jerr)
	}
	want := `[{"file":"dir/.pipeline.yaml","line":5,"column":55,"field":"stages[0].tasks[0].tag","message":"undefined variable ${NOPE}: not a built-in variable, a declared variable or a secret"}]`
	if string(b) != want {
		t.Errorf("JSON:\n%s\nwant:\n%s", b, want)
	}
	if !strings.HasPrefix(err.Error(), "dir/.pipeline.yaml:5:55: ") {
		t.Errorf("text form: %s", err)
	}
}

func TestAliasesAreFollowedAndBounded(t *testing.T) {
	ok := "name: a\nstages:\n  - name: s\n    tasks:\n      - &t {name: t, type: build-image, image: app, tag: x}\n  - name: s2\n    tasks: [{name: t2, type: build-image, image: app, tag: x}]\n"
	if _, err := Load("p.yaml", []byte(ok), Options{}); err != nil {
		t.Errorf("aliases: %v", err)
	}
	// Each level doubles: 2^20 values if expanded naively ("billion laughs").
	var b strings.Builder
	b.WriteString("name: a\nstages:\n  - name: s\n    tasks:\n      - name: c\n        type: deploy-chart\n        release: r\n        chartDir: c\n        cluster: k\n        namespace: n\n        values:\n")
	b.WriteString("          x0: &x0 [a, b]\n")
	for i := 1; i < 20; i++ {
		fmt.Fprintf(&b, "          x%d: &x%d [*x%d, *x%d]\n", i, i, i-1, i-1)
	}
	_, err := Load("p.yaml", []byte(b.String()), Options{})
	if err == nil || !strings.Contains(err.Error(), "document too large: more than 100000 values after expanding aliases") {
		t.Errorf("want the alias budget to stop decoding, got %v", err)
	}
}

// retryInterrupted is a strict boolean, off unless set.
func TestRetryInterrupted(t *testing.T) {
	const body = "name: r\n%sstages:\n  - name: s\n    tasks:\n      - {name: t, type: deploy-yaml, path: k8s, cluster: k, namespace: n}\n"
	for set, want := range map[string]bool{"": false, "retryInterrupted: true\n": true, "retryInterrupted: false\n": false} {
		ps, err := Load("p.yaml", []byte(fmt.Sprintf(body, set)), Options{})
		if err != nil {
			t.Fatalf("%q: %v", set, err)
		}
		if ps[0].RetryInterrupted != want {
			t.Errorf("%q: RetryInterrupted %v, want %v", set, ps[0].RetryInterrupted, want)
		}
	}
	_, err := Load("p.yaml", []byte(fmt.Sprintf(body, "retryInterrupted: twice\n")), Options{})
	var list diag.List
	if !errors.As(err, &list) || len(list) != 1 || list[0].Field != "retryInterrupted" || list[0].Line != 2 {
		t.Fatalf("a non-boolean retryInterrupted: %v, want one error at line 2 naming the field", err)
	}
}
