package pipeline

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
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
// heap after a collection with the result held, less the heap before loading.
func heldAfterLoad(t testing.TB, data []byte) uint64 {
	opts := Options{Limits: Limits{PipelinesPerFile: monorepoPipelines}}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	ps, err := Load(".pipeline.yaml", data, opts)
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(ps)
	if len(ps) != monorepoPipelines {
		t.Fatalf("loaded %d pipelines, want %d", len(ps), monorepoPipelines)
	}
	return after.HeapAlloc - before.HeapAlloc
}

// BenchmarkLoadMonorepo loads the scale benchmark's pipeline file and reports what the
// result holds (held-B/op) besides the usual allocations.
func BenchmarkLoadMonorepo(b *testing.B) {
	data := monorepoFile(monorepoPipelines)
	b.ReportAllocs()
	var held uint64
	for b.Loop() {
		held = heldAfterLoad(b, data)
	}
	b.ReportMetric(float64(held), "held-B/op")
}
