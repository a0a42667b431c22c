package config

import (
	"runtime"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
)

// Runs bounds the run engine.
type Runs struct {
	MaxInFlight int `yaml:"maxInFlight,omitempty" doc:"Runs executing at once, across all pipelines (runs waiting at an approval gate, for health the shared watches report, or for a build slot give their place up meanwhile); more wait as queued. Default: 64."`
	// MaxAppliesInFlight is shared by every deploy of the process: one deploy keeps up to
	// 16 requests of its own in flight, many deploys together no more than this.
	MaxAppliesInFlight int `yaml:"maxAppliesInFlight,omitempty" default:"64" doc:"Objects applied at once (server-side applies and their dry-runs) across all runs of the process; more wait for a slot."`
	// MaxBuildsInFlight bounds the CPU-heavy work apart from the runs, so that many runs in
	// flight (which mostly wait on the API server) do not mean as many builds at once. Its
	// default depends on the machine, so it has no default tag: see MaxBuildsInFlight.
	MaxBuildsInFlight int `yaml:"maxBuildsInFlight,omitempty" doc:"Image builds (build-image tasks) and script tasks (executors buildkit and local) executing at once across all runs of the process; more wait for a slot. Default: the CPU cores the process may use (GOMAXPROCS), at least 2."`
}

// Git bounds the traffic to Git servers.
type Git struct {
	MaxPerHost int `yaml:"maxPerHost,omitempty" default:"4" doc:"Fetches and ref listings at once against one Git host, across repositories; serve --git-per-host overrides it."`
}

// Webhooks bounds what webhook senders, who are not trusted, may make the daemon do.
type Webhooks struct {
	MaxConcurrentReads int      `yaml:"maxConcurrentReads,omitempty" default:"16" doc:"Webhook bodies read at once; a delivery beyond that is answered 503 with Retry-After at once."`
	ReadTimeout        Duration `yaml:"readTimeout,omitempty" default:"10s" doc:"How long reading one webhook body may take; a slower sender is answered 408."`
}

// Retention says how long the daemon keeps records that only grow. The audit log is not
// among them: nothing deletes it.
type Retention struct {
	Interval          Duration     `yaml:"interval,omitempty" default:"1h" doc:"How often old records are deleted."`
	Batch             int          `yaml:"batch,omitempty" default:"500" doc:"Rows deleted per write transaction, so a large clean-up never holds the store's write lock long."`
	WebhookDeliveries AgeLimit     `yaml:"webhookDeliveries,omitempty" doc:"Delivery ids kept to recognise a forge's redelivery."`
	PullRequestEvents RecordLimits `yaml:"pullRequestEvents,omitempty" doc:"Pull request events from webhooks; maxCount is per repository."`
	DriftEvents       RecordLimits `yaml:"driftEvents,omitempty" doc:"Drift events; maxCount is per pipeline."`
}

// AgeLimit keeps records for a while.
type AgeLimit struct {
	MaxAge Duration `yaml:"maxAge,omitempty" default:"168h" doc:"Delivery ids older than this are forgotten; at least 1h (a forge's retries come within hours)."`
}

// RecordLimits keeps records by age and by count; 0 turns a limit off.
type RecordLimits struct {
	MaxAge   Duration `yaml:"maxAge,omitempty" default:"2160h" doc:"Records older than this are deleted; 0: no age limit."`
	MaxCount int      `yaml:"maxCount,omitempty" default:"10000" doc:"Only the newest this many are kept; 0: no count limit."`
}

// DefaultMaxInFlight is runs.maxInFlight when it is not set. Builds, scripts and applies,
// the heaviest work of a run on this machine and on the API server, wait for bounds of
// their own (runs.maxBuildsInFlight, runs.maxAppliesInFlight), so the places need not be as
// few as the cores; as many as the apply slots keep those busy when most runs deploy
// (docs/operations.md, "Runs in flight"). Renders and policy checks are bound only here.
func DefaultMaxInFlight() int { return 64 }

// MaxInFlight is runs.maxInFlight, or its default.
func (c *Config) MaxInFlight() int {
	if c.Runs.MaxInFlight > 0 {
		return c.Runs.MaxInFlight
	}
	return DefaultMaxInFlight()
}

// DefaultMaxBuildsInFlight is runs.maxBuildsInFlight when it is not set: a build or a
// script keeps about a core busy. GOMAXPROCS, not the machine's cores: it follows a
// container's CPU limit.
func DefaultMaxBuildsInFlight() int { return max(2, runtime.GOMAXPROCS(0)) }

// MaxBuildsInFlight is runs.maxBuildsInFlight, or its default.
func (c *Config) MaxBuildsInFlight() int {
	if c.Runs.MaxBuildsInFlight > 0 {
		return c.Runs.MaxBuildsInFlight
	}
	return DefaultMaxBuildsInFlight()
}

// MinMemoryLimit is the least memoryLimit: below it the garbage collector would run
// almost without pause, whatever the load.
const MinMemoryLimit = 32 << 20

// minRetentionInterval keeps a typo from making the daemon clean up in a busy loop.
const minRetentionInterval = time.Second

func (k checker) limits() {
	c := k.c
	if c.Runs.MaxInFlight < 0 || (c.Runs.MaxInFlight == 0 && k.written("runs.maxInFlight")) {
		k.at("runs.maxInFlight", "runs.maxInFlight must be at least 1 (unset: %d)", DefaultMaxInFlight())
	}
	if c.Runs.MaxBuildsInFlight < 0 || (c.Runs.MaxBuildsInFlight == 0 && k.written("runs.maxBuildsInFlight")) {
		k.at("runs.maxBuildsInFlight", "runs.maxBuildsInFlight must be at least 1 (unset: %d on this machine)", DefaultMaxBuildsInFlight())
	}
	if c.Runs.MaxAppliesInFlight < 1 || c.Runs.MaxAppliesInFlight > 1000 {
		k.at("runs.maxAppliesInFlight", "runs.maxAppliesInFlight %d must be between 1 and 1000", c.Runs.MaxAppliesInFlight)
	}
	if c.MemoryLimit.Bytes < MinMemoryLimit {
		k.at("memoryLimit", "memoryLimit %s must be at least 32Mi", resource.NewQuantity(c.MemoryLimit.Bytes, resource.BinarySI))
	}
	if c.GCPercent < 10 || c.GCPercent > 1000 {
		k.at("gcPercent", "gcPercent %d must be between 10 and 1000", c.GCPercent)
	}
	if c.Git.MaxPerHost < 1 || c.Git.MaxPerHost > 100 {
		k.at("git.maxPerHost", "git.maxPerHost %d must be between 1 and 100", c.Git.MaxPerHost)
	}
	if c.Webhooks.MaxConcurrentReads < 1 {
		k.at("webhooks.maxConcurrentReads", "webhooks.maxConcurrentReads must be at least 1")
	}
	if d := c.Webhooks.ReadTimeout.Duration; d < 100*time.Millisecond || d > time.Minute {
		k.at("webhooks.readTimeout", "webhooks.readTimeout %s must be between 100ms and 1m", d)
	}
	r := c.Retention
	if r.Interval.Duration < minRetentionInterval {
		k.at("retention.interval", "retention.interval %s must be at least %s", r.Interval.Duration, minRetentionInterval)
	}
	if r.Batch < 1 || r.Batch > 10000 {
		k.at("retention.batch", "retention.batch %d must be between 1 and 10000", r.Batch)
	}
	if r.WebhookDeliveries.MaxAge.Duration < time.Hour {
		k.at("retention.webhookDeliveries.maxAge", "retention.webhookDeliveries.maxAge %s must be at least 1h, or redeliveries would start runs again", r.WebhookDeliveries.MaxAge.Duration)
	}
	for _, f := range []struct {
		field string
		l     RecordLimits
	}{{"retention.pullRequestEvents", r.PullRequestEvents}, {"retention.driftEvents", r.DriftEvents}} {
		if f.l.MaxCount < 0 {
			k.at(f.field+".maxCount", "%s.maxCount must not be negative (0: no count limit)", f.field)
		}
	}
}
