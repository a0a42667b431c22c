package config

import (
	"strings"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/pipeline"
)

func TestRepositoryLimits(t *testing.T) {
	c, err := Parse("slipway.yaml", []byte(`dataDir: /d
repositories:
  - {name: plain, url: https://g/p.git, branch: main}
  - name: mono
    url: https://g/m.git
    branch: main
    limits: {pipelineFileSize: 4Mi, pipelinesPerFile: 500, manifestFileSize: 16Mi, manifestLineSize: 2097152, minCronInterval: 5m}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := pipeline.Limits{PipelineFileSize: 1 << 20, PipelinesPerFile: 100, ManifestFileSize: 8 << 20, ManifestLineSize: 1 << 20, MinCronInterval: time.Minute}
	if got := c.Repository("plain").PipelineLimits(); got != want {
		t.Errorf("defaults: %+v, want %+v", got, want)
	}
	want = pipeline.Limits{PipelineFileSize: 4 << 20, PipelinesPerFile: 500, ManifestFileSize: 16 << 20, ManifestLineSize: 2 << 20, MinCronInterval: 5 * time.Minute}
	if got := c.Repository("mono").PipelineLimits(); got != want {
		t.Errorf("granted: %+v, want %+v", got, want)
	}
}

func TestRepositoryLimitsRefused(t *testing.T) {
	_, err := Parse("slipway.yaml", []byte(`dataDir: /d
repositories:
  - name: r
    url: https://g/r.git
    branch: main
    limits:
      pipelineFileSize: 0
      pipelinesPerFile: 0
      manifestFileSize: lots
      manifestLineSize: 9Mi
      minCronInterval: 48h
`))
	for _, want := range []string{
		`slipway.yaml:7:25: pipelineFileSize: invalid size "0"`,
		"slipway.yaml:8:25: pipelinesPerFile must be at least 1",
		`slipway.yaml:9:25: manifestFileSize: invalid size "lots"`,
		"slipway.yaml:10:25: manifestLineSize (9437184 bytes) is larger than manifestFileSize (8388608 bytes)",
		"slipway.yaml:11:24: minCronInterval must be more than 0 and at most 24h",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q in:\n%v", want, err)
		}
	}
}
