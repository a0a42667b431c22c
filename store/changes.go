package store

// ChangeKind says which part of a run a write changed.
type ChangeKind string

// The kinds of Change.
const (
	ChangeRun   ChangeKind = "run"   // created, moved to another status, or its reason noted
	ChangeTask  ChangeKind = "task"  // added, moved to another status, or given outputs
	ChangeLogs  ChangeKind = "logs"  // lines appended
	ChangeDrift ChangeKind = "drift" // a drift event recorded (BuildID is 0)
	ChangeAudit ChangeKind = "audit" // an audit entry recorded (Pipeline may be zero)
	// ChangeResync names no write: changes may have been missed (the relay's connection
	// to PostgreSQL was lost and is back), so every follower, whatever it follows, should
	// re-read. Pipeline is zero.
	ChangeResync ChangeKind = "resync"
)

// Change tells followers (live logs, the web UI, notifications) that a committed write
// touched a run. It carries no data: followers read what they need from the store, so a
// missed or merged change never shows them a state the store does not hold.
type Change struct {
	Kind     ChangeKind
	Pipeline PipelineRef
	BuildID  int64
	Task     string // for ChangeTask and ChangeLogs
}

// ChangeSink receives every Change after its write committed. It is called on the
// writer's goroutine, so it must not block; internal/changefeed's Feed is one.
type ChangeSink interface {
	Changed(Change)
}

// WithChangeSink has the store tell sink about each committed change to runs, tasks,
// logs, drift events and the audit log.
func WithChangeSink(sink ChangeSink) Option { return func(o *options) { o.changes = sink } }

// changed tells the sink, if there is one.
func (o options) changed(c Change) {
	if o.changes != nil {
		o.changes.Changed(c)
	}
}
