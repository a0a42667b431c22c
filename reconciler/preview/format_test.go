package preview

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/slipwayhq/slipway/pipeline"
	"github.com/slipwayhq/slipway/policy"
	"github.com/slipwayhq/slipway/reconciler"
	"github.com/slipwayhq/slipway/reconciler/apply"
	"github.com/slipwayhq/slipway/sources"
	"github.com/slipwayhq/slipway/store"
)

func deployment(replicas int64) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": "web", "namespace": "game"},
		"spec":     map[string]any{"replicas": replicas, "template": map[string]any{"spec": map[string]any{"containers": []any{map[string]any{"name": "web", "image": "reg/web:7"}}}}},
	}}
}

func secret(data map[string]any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Secret",
		"metadata": map[string]any{"name": "db", "namespace": "game",
			"annotations": map[string]any{lastApplied: `{"data":{"password":"c2VjcmV0"}}`}},
		"data": data,
	}}
}

func samplePreview() *reconciler.Preview {
	return &reconciler.Preview{
		Commit:           sources.Commit{Hash: "0123456789abcdef", ShortHash: "0123456"},
		PipelineFileBase: "name: web\nstages: []\n",
		PipelineFileHead: "name: web\nstages: []\n",
		Pipelines: []reconciler.PipelinePreview{{Name: "web", BuildID: 8, Tasks: []reconciler.TaskPreview{
			{Stage: "build", Name: "image", Type: pipeline.TypeBuildImage, Image: "reg/web:8", Note: "not built: a preview pushes nothing"},
			{Stage: "deploy", Name: "deploy", Type: pipeline.TypeDeployYAML, Cluster: "local", Namespace: "game",
				Objects: []apply.ObjectPreview{
					{Object: "Deployment/game/web", File: "deploy/web.yaml", Doc: 1, Entry: store.InventoryEntry{Kind: "Deployment", Namespace: "game", Name: "web"},
						Outcome: apply.OutcomeChanged, Live: deployment(2), Merged: deployment(3)},
					{Object: "Secret/game/db", File: "deploy/web.yaml", Doc: 2, Entry: store.InventoryEntry{Kind: "Secret", Namespace: "game", Name: "db"},
						Outcome: apply.OutcomeChanged, Live: secret(map[string]any{"password": "c2VjcmV0", "user": "YWRtaW4="}),
						Merged: secret(map[string]any{"password": "bmV3cGFzcw==", "user": "YWRtaW4="})},
					{Object: "Service/game/web", File: "deploy/web.yaml", Doc: 3, Entry: store.InventoryEntry{Kind: "Service", Namespace: "game", Name: "web"},
						Outcome: apply.OutcomeUnchanged},
					{Object: "Namespace/game", File: "deploy/ns.yaml", Doc: 1, Entry: store.InventoryEntry{Kind: "Namespace", Name: "game"},
						Outcome: apply.OutcomeCreated, Merged: &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": "game"}}}},
				},
				Pruned: []store.InventoryEntry{{Kind: "ConfigMap", Namespace: "game", Name: "old"}},
			},
		}}},
	}
}

// The comment shows a readable diff per changed object, grouped per cluster and
// namespace, what would be created and pruned, and never a Secret's data.
func TestFormatShowsDiffsGroupedAndMasksSecrets(t *testing.T) {
	pv := samplePreview()
	got := Format(pv)
	for _, want := range []string{
		"### ✅ Slipway preview of 0123456",
		"#### `.pipeline.yaml`\n\nNot changed by this pull request.",
		"`image` (build-image, stage build): would push `reg/web:8`",
		"`deploy` (deploy-yaml, stage deploy): 1 created, 2 changed, 1 deleted, 1 unchanged",
		"#### Cluster `local`, cluster-scoped",
		"➕ **created** `Namespace/game` (deploy/ns.yaml, document 1, task `web/deploy`)",
		"#### Cluster `local`, namespace `game`",
		"✏️ **changed** `Deployment/game/web` (deploy/web.yaml, document 1, task `web/deploy`)",
		"-  replicas: 2\n+  replicas: 3\n",
		"-  password: '***'\n+  password: '*** (changed)'\n",
		"🗑️ **deleted** `ConfigMap/game/old` (would be pruned",
		"- 1 object unchanged",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("comment lacks %q:\n%s", want, got)
		}
	}
	for _, leak := range []string{"c2VjcmV0", "bmV3cGFzcw", "YWRtaW4", lastApplied} {
		if strings.Contains(got, leak) {
			t.Errorf("comment shows %q:\n%s", leak, got)
		}
	}
	if strings.Index(got, "cluster-scoped") > strings.Index(got, "namespace `game`") {
		t.Errorf("groups not sorted by namespace:\n%s", got)
	}
	if s := Summary(pv); s != "would create 1, change 2, delete 1 objects" {
		t.Errorf("Summary = %q", s)
	}
}

// A secret value that a manifest put anywhere is masked by the preview's mask.
func TestFormatMasksSecretValues(t *testing.T) {
	pv := samplePreview()
	pv.Pipelines[0].Tasks[1].Err = errors.New("ConfigMap/game/x (deploy/x.yaml, document 1) server-side dry-run failed: value hunter2 is invalid")
	pv.Secrets = []string{"hunter2"}
	got := Format(pv)
	if strings.Contains(got, "hunter2") || !strings.Contains(got, "value *** is invalid") {
		t.Fatalf("secret value not masked:\n%s", got)
	}
	if !strings.HasPrefix(got, "### ❌") || !strings.Contains(Summary(pv), "value *** is invalid") {
		t.Fatalf("a failing task does not fail the preview: %q", Summary(pv))
	}
}

// The pipeline file's change is a unified diff; an invalid file names file:line.
func TestFormatPipelineFile(t *testing.T) {
	pv := samplePreview()
	pv.PipelineFileHead = "name: web\nstages:\n  - name: x\n"
	pv.Invalid = errors.New(".pipeline.yaml:3:5: stage x has no tasks")
	got := Format(pv)
	for _, want := range []string{"-stages: []\n+stages:\n+  - name: x\n", "The pipeline file is invalid", ".pipeline.yaml:3:5: stage x has no tasks"} {
		if !strings.Contains(got, want) {
			t.Errorf("comment lacks %q:\n%s", want, got)
		}
	}
	if s := Summary(pv); s != ".pipeline.yaml:3:5: stage x has no tasks" {
		t.Errorf("Summary = %q", s)
	}
}

// A policy denial's summary names the rule and the object.
func TestSummaryNamesPolicyRule(t *testing.T) {
	pv := samplePreview()
	pv.Pipelines[0].Tasks[1].Err = policy.Denied("deploy", []policy.Denial{{Rule: "no-lb", Object: "Service/game/web (deploy/web.yaml, document 3)", Reason: "LoadBalancer Services are not allowed"}})
	s := Summary(pv)
	if !strings.Contains(s, "no-lb") || !strings.Contains(s, "Service/game/web (deploy/web.yaml, document 3)") {
		t.Fatalf("Summary = %q, want the rule and the object", s)
	}
}

func TestSplit(t *testing.T) {
	if got := Split("short", 100); len(got) != 1 || got[0] != "short" {
		t.Fatalf("Split of a short body = %q", got)
	}
	var b strings.Builder
	b.WriteString("intro\n\n```diff\n")
	for i := range 200 {
		fmt.Fprintf(&b, "+line %03d of the diff\n", i)
	}
	b.WriteString("```\n\nafter ✅ the block\n")
	body := b.String()
	const limit = 1000
	parts := Split(body, limit)
	if len(parts) < 4 {
		t.Fatalf("%d parts, want several", len(parts))
	}
	var joined strings.Builder
	for i, p := range parts {
		if len(p) > limit {
			t.Errorf("part %d is %d bytes, over %d", i+1, len(p), limit)
		}
		head := fmt.Sprintf("_(part %d of %d)_\n\n", i+1, len(parts))
		if !strings.HasPrefix(p, head) {
			t.Errorf("part %d does not start with %q", i+1, head)
		}
		if strings.Count(p, "```")%2 != 0 {
			t.Errorf("part %d leaves a code block open:\n%s", i+1, p)
		}
		if i > 0 && i < len(parts)-1 && !strings.HasPrefix(strings.TrimPrefix(p, head), "```diff\n") {
			t.Errorf("part %d does not reopen the diff block:\n%s", i+1, p)
		}
		joined.WriteString(strings.TrimPrefix(p, head))
	}
	// Every line of the body is in the parts, in order.
	text := joined.String()
	pos := 0
	for _, l := range strings.Split(strings.TrimSpace(body), "\n") {
		i := strings.Index(text[pos:], l)
		if i < 0 {
			t.Fatalf("line %q missing or out of order", l)
		}
		pos += i + len(l)
	}
}

// A line longer than a part is cut at a rune boundary, never over the limit.
func TestSplitLongLine(t *testing.T) {
	body := strings.Repeat("é", 3000) + "\n"
	parts := Split(body, 500)
	total := 0
	for i, p := range parts {
		if len(p) > 500 {
			t.Errorf("part %d is %d bytes", i+1, len(p))
		}
		if !strings.Contains(p, "é") || strings.ContainsRune(p, '\uFFFD') {
			t.Errorf("part %d cut inside a rune", i+1)
		}
		total += strings.Count(p, "é")
	}
	if total != 3000 {
		t.Fatalf("%d runes kept of 3000", total)
	}
}

// The run's check before its first stage fails the preview naming the field's file:line.
func TestSummaryOfTheRunCheck(t *testing.T) {
	pv := samplePreview()
	pp := &pv.Pipelines[0]
	pp.Tasks = append([]reconciler.TaskPreview{{Name: "policy", Note: "the check before the first stage",
		Err: &policy.DeniedError{Denials: []policy.Denial{{Rule: "clusters", At: ".pipeline.yaml:12:18", Field: "stages[1].tasks[0].cluster", Reason: "cluster \"prod\" is not granted"}}}}}, pp.Tasks...)
	s := Summary(pv)
	if !strings.HasPrefix(s, "rule clusters: ") || !strings.Contains(s, ".pipeline.yaml:12:18") {
		t.Fatalf("Summary = %q, want the rule and where the field is written", s)
	}
	if got := Format(pv); !strings.Contains(got, "- `policy`: ❌ would fail, see below (the check before the first stage)") {
		t.Fatalf("comment:\n%s", got)
	}
}
