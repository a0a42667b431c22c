package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/buildkit/client/llb"

	"github.com/slipwayhq/slipway/builder"
	"github.com/slipwayhq/slipway/reconciler/scriptrun"
	"github.com/slipwayhq/slipway/reconciler/scriptrun/buildkitexec"
	"github.com/slipwayhq/slipway/test/testenv"
)

// TestBenchScripts measures the BuildKit script executor beside buildctl running the very
// same step (the executor's own LLB definition, piped to `buildctl build`, with the same
// local workspace in and local export out): a trivial script (`true`) over a small
// workspace, and over a 50 MB one that goes in and comes back. The executor's figure is its
// Run from start to end, which is all a script task does besides writing its log.
func TestBenchScripts(t *testing.T) {
	env := testenv.Get(t)
	if env.Buildctl == "" {
		t.Fatal("the environment names no buildctl (SLIPWAY_BUILDCTL): restart it with `make env-down && make env-up`")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	rounds := 3 // the median of 3; SLIPWAY_BENCH_ROUNDS overrides
	if os.Getenv("SLIPWAY_BENCH_ROUNDS") != "" {
		rounds = benchRounds(t)
	}
	reg, err := builder.NewRegistry(builder.Options{Insecure: []string{env.Registry}})
	if err != nil {
		t.Fatal(err)
	}
	ex, err := buildkitexec.New(env.BuildkitHost, reg)
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	small := filepath.Join(tmp, "small")
	large := filepath.Join(tmp, "large")
	writeWorkspace(t, small, 3, 1024)
	writeWorkspace(t, large, 50, 1<<20)

	spec := func(ws string, i int) scriptrun.Spec {
		return scriptrun.Spec{Run: scriptrun.RunRef{Repository: "bench", Pipeline: "scripts", BuildID: int64(i), Task: "noop"},
			Image: env.BaseImage, Script: "true", Env: map[string]string{"BUILD_ID": fmt.Sprint(i)}, Workspace: ws, Log: &bytes.Buffer{}}
	}
	runExecutor := func(ws string, i int) (time.Duration, error) {
		start := time.Now()
		res, err := ex.Run(ctx, spec(ws, i))
		if err == nil && res.ExitCode != 0 {
			err = fmt.Errorf("exit %d", res.ExitCode)
		}
		return time.Since(start), err
	}
	runBuildctl := func(ws string, i int) (time.Duration, error) {
		def, err := buildkitexec.Definition(ctx, spec(ws, i), env.BaseImage, nil)
		if err != nil {
			return 0, err
		}
		var pb bytes.Buffer
		if err := llb.WriteTo(def, &pb); err != nil {
			return 0, err
		}
		out := filepath.Join(tmp, fmt.Sprintf("buildctl-out-%d", i))
		defer os.RemoveAll(out)
		cmd := exec.CommandContext(ctx, env.Buildctl, "--addr", env.BuildkitHost, "build", "--local", "workspace="+ws,
			"--output", "type=local,dest="+out, "--progress", "quiet")
		cmd.Stdin = &pb
		start := time.Now()
		if b, err := cmd.CombinedOutput(); err != nil {
			return 0, fmt.Errorf("%v: %s", err, b)
		}
		return time.Since(start), nil
	}
	type contender struct {
		name string
		run  func(string, int) (time.Duration, error)
		ws   string
	}
	contenders := []contender{
		{"executor: true, small workspace", runExecutor, small},
		{"buildctl: true, small workspace", runBuildctl, small},
		{"executor: true, 50 MB workspace in and out", runExecutor, large},
		{"buildctl: true, 50 MB workspace in and out", runBuildctl, large},
	}
	// One unmeasured run each pulls the image and warms buildkitd's local source cache.
	for i, c := range contenders {
		if _, err := c.run(c.ws, 1000+i); err != nil {
			t.Fatalf("%s (warm-up): %v", c.name, err)
		}
	}
	walls := map[string][]float64{}
	n := 0
	for round := 1; round <= rounds; round++ {
		for _, c := range contenders {
			n++
			took, err := c.run(c.ws, n)
			if err != nil {
				t.Fatalf("round %d, %s: %v", round, c.name, err)
			}
			t.Logf("round %d, %s: %s", round, c.name, took.Round(time.Millisecond))
			walls[c.name] = append(walls[c.name], took.Seconds())
		}
	}

	report := scriptsReport{Rounds: rounds}
	var b strings.Builder
	fmt.Fprintf(&b, "\nBuildKit script executor beside buildctl running the same step, local buildkitd (native snapshotter), median of %d rounds\n\n", rounds)
	b.WriteString("| contender | median wall time | spread (min–max) |\n|---|---:|---:|\n")
	for _, c := range contenders {
		w := walls[c.name]
		fmt.Fprintf(&b, "| %s | %.2f s | %.2f–%.2f s |\n", c.name, median(w), slices.Min(w), slices.Max(w))
		report.Contenders = append(report.Contenders, scriptsContender{Name: c.name, WallSeconds: w, MedianSeconds: median(w)})
	}
	b.WriteString("\n| target | figure | verdict |\n|---|---:|---|\n")
	for _, pair := range [][2]string{{contenders[0].name, contenders[1].name}, {contenders[2].name, contenders[3].name}} {
		figure := median(walls[pair[0]]) / median(walls[pair[1]])
		what := pair[0] + " / buildctl (medians)"
		verdict := "met"
		if figure > 1.5 {
			verdict = "MISSED"
		}
		fmt.Fprintf(&b, "| %s ≤ 1.5× | %.2f× | %s |\n", what, figure, verdict)
		report.Targets = append(report.Targets, benchTarget{What: what, Limit: 1.5, Figure: figure, Met: verdict == "met"})
	}
	fmt.Println(b.String())
	writeReport(t, env, "scripts.json", report)
}

// scriptsReport is what TestBenchScripts writes as JSON: every round's figures.
type scriptsReport struct {
	Rounds     int                `json:"rounds"`
	Contenders []scriptsContender `json:"contenders"`
	Targets    []benchTarget      `json:"targets"`
}

type scriptsContender struct {
	Name          string    `json:"name"`
	WallSeconds   []float64 `json:"wall_seconds"`
	MedianSeconds float64   `json:"median_seconds"`
}

// writeWorkspace fills dir with n files of size bytes of random data (incompressible).
func writeWorkspace(t *testing.T, dir string, n, size int) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, size)
	for i := range n {
		_, _ = rand.Read(buf)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d.bin", i)), buf, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
