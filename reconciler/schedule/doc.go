// Package schedule runs pipelines on the clock: the `triggers.schedules` of the tracked
// branch's `.pipeline.yaml`.
//
// A Scheduler holds the schedules of every repository (Set replaces one repository's set
// whenever its file changes) and keeps one goroutine per schedule that waits for the next
// tick on an injectable clock (k8s.io/utils/clock), so tests drive time with a FakeClock.
// Ticks are computed with robfig/cron's parser and Next in the schedule's time zone, which
// handles daylight saving; cron.Cron's own runner is not used, since it reads the wall clock
// and knows nothing about ticks missed while the daemon was down.
//
// A schedule is identified by its pipeline, cron expression and time zone (Key). Changing
// its concurrency or startingDeadline keeps its timing; changing the expression or the zone
// makes it a new schedule.
//
// Each handled tick, fired or deliberately skipped, is recorded in the store, so a restarted
// daemon knows what it missed. A schedule seen for the first time records a baseline (the
// moment it was first seen) rather than firing anything: ticks before it existed were never
// missed. After a restart only the newest missed tick is considered, and it runs once if it
// is no older than startingDeadline; older ones are skipped and logged. Nothing is ever run
// in a burst.
package schedule
