// Package heldheap measures what a value keeps on the heap, for tests that bound it.
package heldheap

import (
	"runtime"
	"testing"
)

// Bytes is what the value build returns keeps on the heap once collected garbage is gone:
// the live heap after build, less the live heap before it, each read after a collection.
// It is the least of runs runs (at least one), since another goroutine's garbage only
// adds. Each run's value is garbage before the next is measured.
func Bytes(t testing.TB, runs int, build func() any) uint64 {
	t.Helper()
	least := ^uint64(0)
	for range max(runs, 1) {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		v := build()
		runtime.GC()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(v)
		if after.HeapAlloc < before.HeapAlloc {
			t.Fatalf("the live heap shrank by %d bytes while a value was built and held", before.HeapAlloc-after.HeapAlloc)
		}
		least = min(least, after.HeapAlloc-before.HeapAlloc)
	}
	return least
}
