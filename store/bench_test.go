package store

import (
	"fmt"
	"testing"
)

// BenchmarkCreateRun measures BUILD_ID allocation: one durable (fsync) transaction each.
func BenchmarkCreateRun(b *testing.B) {
	s, _ := openTest(b)
	ctx := testCtx(b)
	b.ResetTimer()
	for b.Loop() {
		if _, err := s.CreateRun(ctx, NewRun{Pipeline: testPipeline, Trigger: TriggerPush}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCreateRunParallel allocates from many goroutines on one handle.
func BenchmarkCreateRunParallel(b *testing.B) {
	s, _ := openTest(b)
	ctx := testCtx(b)
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.CreateRun(ctx, NewRun{Pipeline: testPipeline, Trigger: TriggerPush}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkAppendLogs appends batches the way a task's output is flushed; lines/s is the
// figure that matters.
func BenchmarkAppendLogs(b *testing.B) {
	for _, batch := range []int{1, 100} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			s, _ := openTest(b, WithLogLineCap(0))
			ctx := testCtx(b)
			mustRun(b, s, testPipeline)
			ls := make([]LogLine, batch)
			for i := range ls {
				ls[i] = LogLine{Stream: StreamStdout, Text: fmt.Sprintf("#%d [build 3/7] RUN go build -trimpath -o /out/app ./cmd/app", i)}
			}
			b.ResetTimer()
			for b.Loop() {
				if err := s.AppendLogs(ctx, testPipeline, 1, "build", ls); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "lines/s")
		})
	}
}
