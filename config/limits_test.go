package config

import (
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestLimitsDefaultsAndBounds(t *testing.T) {
	c, err := Parse("slipway.yaml", []byte("dataDir: /d\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxInFlight() != 64 {
		t.Errorf("runs.maxInFlight default = %d", c.MaxInFlight())
	}
	if c.MaxBuildsInFlight() != max(2, runtime.GOMAXPROCS(0)) || DefaultMaxBuildsInFlight() < 2 {
		t.Errorf("runs.maxBuildsInFlight default = %d, want GOMAXPROCS (%d), at least 2", c.MaxBuildsInFlight(), runtime.GOMAXPROCS(0))
	}
	if c.MemoryLimit.Bytes != 256<<20 {
		t.Errorf("memoryLimit default = %d", c.MemoryLimit.Bytes)
	}
	if c.GCPercent != 35 {
		t.Errorf("gcPercent default = %d", c.GCPercent)
	}
	if c.Runs.MaxAppliesInFlight != 64 || c.Git.MaxPerHost != 4 {
		t.Errorf("runs.maxAppliesInFlight, git.maxPerHost defaults = %d, %d", c.Runs.MaxAppliesInFlight, c.Git.MaxPerHost)
	}
	w, r := c.Webhooks, c.Retention
	if w.MaxConcurrentReads != 16 || w.ReadTimeout.Duration != 10*time.Second {
		t.Errorf("webhooks defaults = %+v", w)
	}
	if r.Interval.Duration != time.Hour || r.Batch != 500 || r.WebhookDeliveries.MaxAge.Duration != 168*time.Hour ||
		r.PullRequestEvents != (RecordLimits{MaxAge: Duration{2160 * time.Hour}, MaxCount: 10000}) ||
		r.DriftEvents != (RecordLimits{MaxAge: Duration{2160 * time.Hour}, MaxCount: 10000}) {
		t.Errorf("retention defaults = %+v", r)
	}
	c, err = Parse("slipway.yaml", []byte("dataDir: /d\nmemoryLimit: 1Gi\ngcPercent: 200\nruns: {maxInFlight: 2, maxAppliesInFlight: 3, maxBuildsInFlight: 5}\ngit: {maxPerHost: 1}\nretention: {driftEvents: {maxAge: 0s, maxCount: 0}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.MemoryLimit.Bytes != 1<<30 || c.GCPercent != 200 {
		t.Errorf("written memoryLimit, gcPercent = %d, %d", c.MemoryLimit.Bytes, c.GCPercent)
	}
	if c.MaxInFlight() != 2 || c.Runs.MaxAppliesInFlight != 3 || c.MaxBuildsInFlight() != 5 || c.Git.MaxPerHost != 1 || c.Retention.DriftEvents != (RecordLimits{}) {
		t.Errorf("written limits: %d %d %d %d %+v", c.MaxInFlight(), c.Runs.MaxAppliesInFlight, c.MaxBuildsInFlight(), c.Git.MaxPerHost, c.Retention.DriftEvents)
	}

	_, err = Parse("slipway.yaml", []byte(`dataDir: /d
runs: {maxInFlight: 0, maxAppliesInFlight: 0, maxBuildsInFlight: 0}
webhooks: {maxConcurrentReads: 0, readTimeout: 2m}
retention:
  interval: 10ms
  batch: 0
  webhookDeliveries: {maxAge: 30m}
  pullRequestEvents: {maxCount: -1}
git: {maxPerHost: 101}
memoryLimit: 16Mi
gcPercent: 5
`))
	want := []string{
		"2:21: runs.maxInFlight must be at least 1",
		"3:32: webhooks.maxConcurrentReads must be at least 1",
		"3:48: webhooks.readTimeout 2m0s must be between 100ms and 1m",
		"5:13: retention.interval 10ms must be at least 1s",
		"6:10: retention.batch 0 must be between 1 and 10000",
		"7:31: retention.webhookDeliveries.maxAge 30m0s must be at least 1h",
		"8:33: retention.pullRequestEvents.maxCount must not be negative",
		"2:44: runs.maxAppliesInFlight 0 must be between 1 and 1000",
		"2:66: runs.maxBuildsInFlight must be at least 1",
		"9:19: git.maxPerHost 101 must be between 1 and 100",
		"10:14: memoryLimit 16Mi must be at least 32Mi",
		"11:12: gcPercent 5 must be between 10 and 1000",
	}
	if err == nil {
		t.Fatal("bad limits were accepted")
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("missing error %q in:\n%v", w, err)
		}
	}
	if _, err := Parse("slipway.yaml", []byte("dataDir: /d\nruns: {maxBuildsInFlight: -1}\n")); err == nil ||
		!strings.Contains(err.Error(), "2:27: runs.maxBuildsInFlight must be at least 1") {
		t.Errorf("a negative runs.maxBuildsInFlight: %v", err)
	}
}
