package pipeline

import (
	"fmt"
	"strings"
	"testing"
	"unsafe"

	"github.com/slipwayhq/slipway/internal/heldheap"
	"github.com/slipwayhq/slipway/pipeline/diag"
)

// monorepoFile is a pipeline file shaped like the scale benchmark's monorepo
// (test/bench/scale_test.go allFiles): n pipelines, one per app folder, each with a path
// filter and one deploy-yaml task.
func monorepoFile(n int) []byte {
	var b strings.Builder
	for i := range n {
		app := fmt.Sprintf("app-%04d", i)
		fmt.Fprintf(&b, `---
name: %s
triggers:
  push:
    paths: ["apps/%s/**"]
stages:
  - name: deploy
    tasks:
      - name: deploy
        type: deploy-yaml
        path: apps/%s
        cluster: bench
        namespace: %s
        stableFor: 0s
`, app, app, app, fmt.Sprintf("ns-%02d", i%10))
	}
	return []byte(b.String())
}

const monorepoPipelines = 1000

// heldAfterLoad is the heap a loaded file of monorepoPipelines pipelines keeps alive: the
// least over runs loads of what the heap holds with the result alive (heldheap.Bytes).
func heldAfterLoad(t testing.TB, data []byte, runs int) uint64 {
	opts := Options{Limits: Limits{PipelinesPerFile: monorepoPipelines}}
	return heldheap.Bytes(t, runs, func() any {
		ps, err := Load(".pipeline.yaml", data, opts)
		if err != nil {
			t.Fatal(err)
		}
		if len(ps) != monorepoPipelines {
			t.Fatalf("loaded %d pipelines, want %d", len(ps), monorepoPipelines)
		}
		return ps
	})
}

// BenchmarkLoadMonorepo loads the scale benchmark's pipeline file and reports what the
// result holds (held-B/op) besides the usual allocations.
func BenchmarkLoadMonorepo(b *testing.B) {
	data := monorepoFile(monorepoPipelines)
	b.ReportAllocs()
	var held uint64
	for b.Loop() {
		held = heldAfterLoad(b, data, 1)
	}
	b.ReportMetric(float64(held), "held-B/op")
}

// TestLoadMonorepoHeldBytes bounds what a loaded file of 1000 pipelines keeps. Measured
// (go1.26, amd64): 3.08 MB when each pipeline kept its positions as a map; 1.13 MB packed,
// of which the pipelines' own values (structs, slices, strings) are about 0.88 MB and their
// positions 0.25 MB. The bound leaves a third for the runtime's noise and small type
// changes, and fails at half the map's cost.
func TestLoadMonorepoHeldBytes(t *testing.T) {
	const bound = 1_500_000
	data := monorepoFile(monorepoPipelines)
	held := heldAfterLoad(t, data, 3)
	t.Logf("a file of %d pipelines (%d bytes) holds %d bytes once loaded", monorepoPipelines, len(data), held)
	if held > bound {
		t.Errorf("a loaded file of %d pipelines holds %d bytes, more than %d", monorepoPipelines, held, bound)
	}
}

// TestPositionsInTheLastOfManyPipelines checks the places of nested fields of the last
// pipeline of a long file against where the file's text has them.
func TestPositionsInTheLastOfManyPipelines(t *testing.T) {
	data := monorepoFile(monorepoPipelines)
	ps, err := Load(".pipeline.yaml", data, Options{Limits: Limits{PipelinesPerFile: monorepoPipelines}})
	if err != nil {
		t.Fatal(err)
	}
	last := ps[len(ps)-1]
	lines := strings.Split(string(data), "\n")
	start := 0 // the line (0-based) of the last document's ---
	for i, l := range lines {
		if l == "---" {
			start = i
		}
	}
	// where finds the first line at or after the last document's start holding text, and
	// the 1-based position of the text's column within it.
	where := func(text string, at int) diag.Pos {
		for i := start; i < len(lines); i++ {
			if c := strings.Index(lines[i], text); c >= 0 {
				return diag.Pos{Line: i + 1, Column: c + 1 + at}
			}
		}
		t.Fatalf("%q not in the last document", text)
		return diag.Pos{}
	}
	for _, c := range []struct {
		field   string
		want    diag.Pos
		keyWant diag.Pos
	}{
		{field: "name", want: where("name: app-0999", len("name: ")), keyWant: where("name: app-0999", 0)},
		{field: "triggers.push.paths[0]", want: where(`"apps/app-0999/**"`, 0), keyWant: where(`"apps/app-0999/**"`, 0)},
		{field: "stages[0].tasks[0].namespace", want: where("namespace: ns-09", len("namespace: ")), keyWant: where("namespace: ns-09", 0)},
		{field: "stages[0].tasks[0].stableFor", want: where("stableFor: 0s", len("stableFor: ")), keyWant: where("stableFor: 0s", 0)},
		// Not written: the task's place (its mapping's), not the stage's.
		{field: "stages[0].tasks[0].wait", want: where("      - name: deploy", len("      - ")), keyWant: where("      - name: deploy", len("      - "))},
	} {
		if got := last.Positions.Of(c.field); got != c.want {
			t.Errorf("Of(%s) = %d:%d, want %d:%d", c.field, got.Line, got.Column, c.want.Line, c.want.Column)
		}
		if got := last.Positions.KeyOf(c.field); got != c.keyWant {
			t.Errorf("KeyOf(%s) = %d:%d, want %d:%d", c.field, got.Line, got.Column, c.keyWant.Line, c.keyWant.Column)
		}
	}
}

// TestEqualStringsOfOneFileShareOneCopy: the thousand pipelines of a monorepo's file
// repeat their cluster and stage names; each is kept once.
func TestEqualStringsOfOneFileShareOneCopy(t *testing.T) {
	ps, err := Load(".pipeline.yaml", monorepoFile(3), Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, b := ps[0].Stages[0].Tasks[0].DeployYAML, ps[2].Stages[0].Tasks[0].DeployYAML
	if a.Cluster != b.Cluster || unsafe.StringData(a.Cluster) != unsafe.StringData(b.Cluster) {
		t.Error("two pipelines' equal clusters are two strings")
	}
	if unsafe.StringData(ps[0].Stages[0].Name) != unsafe.StringData(ps[1].Stages[0].Tasks[0].Name) {
		t.Error("equal stage and task names are two strings")
	}
}
