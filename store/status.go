package store

import "slices"

// RunStatus is where a run is in its life. queued and running are the only states a run
// leaves; the others are final.
type RunStatus string

const (
	RunQueued     RunStatus = "queued"
	RunRunning    RunStatus = "running"
	RunSucceeded  RunStatus = "succeeded"
	RunFailed     RunStatus = "failed"
	RunCancelled  RunStatus = "cancelled"
	RunSuperseded RunStatus = "superseded" // a newer commit took its place
	RunTimedOut   RunStatus = "timed_out"
	// RunAwaitingApproval is a run whose next stage waits for its approval gate.
	RunAwaitingApproval RunStatus = "awaiting_approval"
	// RunApprovalTimedOut is a run whose gate's timeout ran out before an approval.
	RunApprovalTimedOut RunStatus = "approval_timed_out"
	// RunAwaitingWindow is a run whose next stage deploys to an environment whose deploy
	// window is closed; it goes on when the window opens.
	RunAwaitingWindow RunStatus = "awaiting_window"
	// RunInterrupted is a run whose process died (its holder stopped beating) before it
	// ended; what it was doing is recorded with it (Interruption).
	RunInterrupted RunStatus = "interrupted"
)

// runMoves lists the legal moves out of s. A run may fail or be cancelled or superseded
// before it starts (bad pipeline file, user, newer commit) but only time out or succeed
// once running. A run waiting for an approval goes on running (approved), fails
// (rejected), times out waiting, or is cancelled or superseded. A function, not a map, so no package state can be changed.
func runMoves(s RunStatus) []RunStatus {
	switch s {
	case RunQueued:
		return []RunStatus{RunRunning, RunFailed, RunCancelled, RunSuperseded}
	case RunRunning:
		return []RunStatus{RunSucceeded, RunFailed, RunCancelled, RunSuperseded, RunTimedOut, RunAwaitingApproval, RunAwaitingWindow}
	case RunAwaitingWindow:
		return []RunStatus{RunRunning, RunFailed, RunCancelled, RunSuperseded, RunTimedOut}
	case RunAwaitingApproval:
		return []RunStatus{RunRunning, RunFailed, RunCancelled, RunSuperseded, RunTimedOut, RunApprovalTimedOut}
	}
	return nil
}

// Valid reports whether s is one of the known statuses.
func (s RunStatus) Valid() bool {
	switch s {
	case RunQueued, RunRunning, RunSucceeded, RunFailed, RunCancelled, RunSuperseded, RunTimedOut,
		RunAwaitingApproval, RunApprovalTimedOut, RunAwaitingWindow, RunInterrupted:
		return true
	}
	return false
}

// Final reports whether no move leaves s.
func (s RunStatus) Final() bool { return s.Valid() && len(runMoves(s)) == 0 }

// CanMove reports whether a run may go from s to to.
func (s RunStatus) CanMove(to RunStatus) bool { return slices.Contains(runMoves(s), to) }

// TaskStatus is where one task of a run is.
type TaskStatus string

const (
	TaskPending   TaskStatus = "pending"
	TaskRunning   TaskStatus = "running"
	TaskSucceeded TaskStatus = "succeeded"
	TaskFailed    TaskStatus = "failed"
	TaskCancelled TaskStatus = "cancelled"
	TaskSkipped   TaskStatus = "skipped" // an earlier stage failed, or a condition was false
	TaskTimedOut  TaskStatus = "timed_out"
)

func taskMoves(s TaskStatus) []TaskStatus {
	switch s {
	case TaskPending:
		return []TaskStatus{TaskRunning, TaskSkipped, TaskCancelled, TaskFailed}
	case TaskRunning:
		return []TaskStatus{TaskSucceeded, TaskFailed, TaskCancelled, TaskTimedOut}
	}
	return nil
}

// Valid reports whether s is one of the known statuses.
func (s TaskStatus) Valid() bool {
	switch s {
	case TaskPending, TaskRunning, TaskSucceeded, TaskFailed, TaskCancelled, TaskSkipped, TaskTimedOut:
		return true
	}
	return false
}

// Final reports whether no move leaves s.
func (s TaskStatus) Final() bool { return s.Valid() && len(taskMoves(s)) == 0 }

// CanMove reports whether a task may go from s to to.
func (s TaskStatus) CanMove(to TaskStatus) bool { return slices.Contains(taskMoves(s), to) }

// RevisionStatus is what became of a deploy.
type RevisionStatus string

const (
	RevisionApplied    RevisionStatus = "applied"     // on the cluster, health not yet known
	RevisionHealthy    RevisionStatus = "healthy"     // passed its health wait: a rollback target
	RevisionFailed     RevisionStatus = "failed"      // dry-run, apply or health wait failed
	RevisionRolledBack RevisionStatus = "rolled_back" // undone by a rollback to an older revision
)

// A healthy revision can still be rolled back later (manual rollback), or turn failed when
// its workloads start failing after its deploy (the health watch), so it is no rollback
// target any more; a failed one is marked rolled_back once an automatic rollback has undone it.
func revisionMoves(s RevisionStatus) []RevisionStatus {
	switch s {
	case RevisionApplied:
		return []RevisionStatus{RevisionHealthy, RevisionFailed, RevisionRolledBack}
	case RevisionHealthy:
		return []RevisionStatus{RevisionFailed, RevisionRolledBack}
	case RevisionFailed:
		return []RevisionStatus{RevisionRolledBack}
	}
	return nil
}

// Valid reports whether s is one of the known statuses.
func (s RevisionStatus) Valid() bool {
	switch s {
	case RevisionApplied, RevisionHealthy, RevisionFailed, RevisionRolledBack:
		return true
	}
	return false
}

// CanMove reports whether a revision may go from s to to.
func (s RevisionStatus) CanMove(to RevisionStatus) bool {
	return slices.Contains(revisionMoves(s), to)
}

// Trigger is what started a run.
type Trigger string

const (
	TriggerManual      Trigger = "manual"
	TriggerPush        Trigger = "push"
	TriggerCron        Trigger = "cron"
	TriggerPullRequest Trigger = "pull_request"
	TriggerRollback    Trigger = "rollback"
	// TriggerPromote deploys what an earlier run deployed to one environment to the next.
	TriggerPromote Trigger = "promote"
	// TriggerRetry starts an interrupted run again at its commit (retryInterrupted); its
	// parent is the interrupted run.
	TriggerRetry Trigger = "retry"
)

// Valid reports whether t is one of the known triggers.
func (t Trigger) Valid() bool {
	switch t {
	case TriggerManual, TriggerPush, TriggerCron, TriggerPullRequest, TriggerRollback, TriggerPromote, TriggerRetry:
		return true
	}
	return false
}

// DeployKind tells a revision made by deploy-yaml from one made by deploy-chart.
type DeployKind string

const (
	DeployYAML  DeployKind = "yaml"
	DeployChart DeployKind = "chart"
)

// Valid reports whether k is one of the known kinds.
func (k DeployKind) Valid() bool { return k == DeployYAML || k == DeployChart }

// LogStream says where a log line came from.
type LogStream string

const (
	StreamStdout LogStream = "stdout"
	StreamStderr LogStream = "stderr"
	StreamSystem LogStream = "system" // Slipway's own lines about the task
)

// Valid reports whether s is one of the known streams.
func (s LogStream) Valid() bool {
	return s == StreamStdout || s == StreamStderr || s == StreamSystem
}
