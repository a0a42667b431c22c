// Package trigger turns the four sources of runs into dispatched runs: a forge's webhook
// (a hint that a branch moved), polling, the clock and a person. Per repository, one
// Watcher owns the tracked branch: hints and poll ticks coalesce into a single fetch, the
// newest head runs, and a pushed commit that a newer one overtook is recorded superseded.
// The Hub is what the HTTP server and the scheduler talk to.
package trigger
