package store

import (
	"fmt"
	"time"
)

// PipelineRef names a pipeline: the repository it lives in and its name in that
// repository's .pipeline.yaml. The pair is unique.
type PipelineRef struct {
	Repository string
	Name       string
}

func (p PipelineRef) String() string { return p.Repository + ":" + p.Name }

// TaskRef names one task of one pipeline: the identity of what a deploy task applies. The
// store keys revisions by it, the apply layer stamps it on every object as owner metadata,
// and prune and drift select objects by it. It lives here, beside PipelineRef, because the
// store is where the pair is defined and every layer that needs it already imports the store.
type TaskRef struct {
	Pipeline PipelineRef
	Task     string
}

// String is REPOSITORY/PIPELINE/TASK, the form `slipway` commands and the owner annotation
// use (repository, pipeline and task names are DNS labels, so "/" cannot be ambiguous).
func (t TaskRef) String() string {
	return t.Pipeline.Repository + "/" + t.Pipeline.Name + "/" + t.Task
}

func (p PipelineRef) validate() error {
	if p.Repository == "" || p.Name == "" {
		return fmt.Errorf("pipeline %q: repository and name must both be set", p.String())
	}
	return nil
}

// Pipeline is a pipeline the store knows, with its BUILD_ID counter.
type Pipeline struct {
	Ref PipelineRef
	// LastBuildID is the highest BUILD_ID handed out so far (0 before the first run).
	LastBuildID int64
	CreatedAt   time.Time
	// Suspended pipelines start no runs from pushes or schedules, and their drift is
	// reported, not corrected (SetSuspended).
	Suspended     bool
	SuspendedAt   time.Time
	SuspendedBy   string
	SuspendReason string
}

// NewRun is what the caller knows when it starts a run; the store adds the BUILD_ID.
type NewRun struct {
	Pipeline PipelineRef
	Commit   string
	Branch   string
	Tag      string
	Trigger  Trigger
	// ParentBuildID is the run this one re-runs or rolls back to (0: none). It must
	// exist in the same pipeline.
	ParentBuildID int64
	// Holder is the process that queues and will run it (see BeatHolder); a daemon
	// starting later fails the run as interrupted only once that holder is gone.
	Holder string
	// Tasks are recorded pending with the run, in its transaction, so a run is never on
	// record with only some of its tasks.
	Tasks []NewTask
	// Audit, when set, records who asked for the run (a trigger, a re-run): it is appended
	// to the audit log in the run's transaction, with the run's pipeline and BUILD_ID, so
	// the run and its entry are on record together or not at all. Its Time zero: now.
	Audit *AuditEntry
}

// Run is one execution of a pipeline.
type Run struct {
	Pipeline      PipelineRef
	BuildID       int64
	Commit        string
	Branch        string
	Tag           string
	Trigger       Trigger
	ParentBuildID int64 // 0: none
	Status        RunStatus
	Reason        string // why it ended the way it did, or why it is waiting
	CreatedAt     time.Time
	StartedAt     time.Time // zero until running
	FinishedAt    time.Time // zero until final
}

func runName(p PipelineRef, buildID int64) string {
	return fmt.Sprintf("run %s #%d", p, buildID)
}

// NewTask declares a task of a run, before it starts.
type NewTask struct {
	Stage string
	Name  string // unique within the run
	Type  string // the pipeline's task type, e.g. deploy-yaml
}

// TaskEnd is a task's move (to its end, usually) with what it leaves behind: its last log
// lines, appended first, and its outputs (nil: left as they are).
type TaskEnd struct {
	From, To TaskStatus
	Reason   string
	Logs     []LogLine
	Outputs  map[string]string
}

// Task is one task of a run.
type Task struct {
	Pipeline   PipelineRef
	BuildID    int64
	Stage      string
	Name       string
	Type       string
	Status     TaskStatus
	Reason     string
	StartedAt  time.Time
	FinishedAt time.Time
	// Outputs are the values later tasks read as ${tasks.<name>.<key>}.
	Outputs map[string]string
}

// LogLine is one line of a run's or task's log.
type LogLine struct {
	// ID orders lines: increasing in append order across the whole store. Set by the
	// store; pass the last ID seen as LogQuery.AfterID to follow a log.
	ID     int64
	Task   string // "" for lines of the run itself
	Time   time.Time
	Stream LogStream
	Text   string
}

// LogQuery selects log lines of one run.
type LogQuery struct {
	// Tasks limits the lines to these tasks ("" is the run's own lines). Empty: all.
	Tasks []string
	// AfterID returns only lines with a greater ID (0: from the start).
	AfterID int64
	// Limit caps the number of lines returned (0: no limit).
	Limit int
}

// InventoryEntry identifies one object a revision applied. Group is "" for the core
// API group; Namespace is "" for cluster-scoped objects.
type InventoryEntry struct {
	Group     string
	Version   string
	Kind      string
	Namespace string
	Name      string
	// Digest is "sha256:<hex>" of the object as applied, and Fingerprint identifies the
	// live object right after that apply; both "" when unknown. A deploy skips an object
	// whose rendering and live fingerprint both still match.
	Digest      string
	Fingerprint string
	// Adopted: the object existed without Slipway's owner metadata and this revision took
	// it over (the task said adopt: true).
	Adopted bool
}

// String is KIND/NAMESPACE/NAME, or KIND/NAME for a cluster-scoped object.
func (e InventoryEntry) String() string {
	if e.Namespace != "" {
		return e.Kind + "/" + e.Namespace + "/" + e.Name
	}
	return e.Kind + "/" + e.Name
}

// Key identifies the object within its cluster whatever version it was applied at.
func (e InventoryEntry) Key() string {
	return e.Group + "|" + e.Kind + "|" + e.Namespace + "|" + e.Name
}

// ChartRelease is what a chart deploy adds to its revision.
type ChartRelease struct {
	Chart        string
	Version      string
	ValuesDigest string // digest of the final values, to tell whether values changed
	// ReleaseRevision is Helm's release revision (what `helm history` shows).
	ReleaseRevision int
}

// NewRevision is a deploy about to be, or just, attempted.
type NewRevision struct {
	Pipeline  PipelineRef
	BuildID   int64
	Task      string
	Cluster   string
	Namespace string
	// Environment is the pipeline environment deployed to ("" when the task names none).
	Environment string
	Kind        DeployKind
	// Objects are the rendered objects as the caller serialised them (YAML or JSON);
	// opaque to the store, stored compressed and given back byte for byte.
	Objects   []byte
	Inventory []InventoryEntry
	Chart     *ChartRelease // required for DeployChart, must be nil for DeployYAML
	// Status is RevisionApplied (the default) or RevisionFailed for a deploy that failed
	// before anything was applied.
	Status RevisionStatus
	Reason string
	// Drift is the task's drift policy, kept with the revision for the drift watcher.
	Drift DriftPolicy
	// Masks are the secret values of the run, stored as securely as Objects (which may
	// hold them), so whoever shows the objects' content later can mask them.
	Masks []string
	// Prune is the task's prune setting: a rollback to or from this revision prunes only
	// when it is set.
	Prune bool
	// Logs are lines of the task's log not stored yet, appended (as AppendLogs) in the
	// revision's write: a deploy's lines cost no write of their own.
	Logs []LogLine
}

// Revision is one deploy of one task: what was rendered, what was applied, and what
// became of it. Rollback re-applies a healthy revision's Objects and prunes by Inventory.
type Revision struct {
	Pipeline    PipelineRef
	BuildID     int64
	Task        string
	Cluster     string
	Namespace   string
	Environment string
	Kind        DeployKind
	Objects     []byte
	// ObjectsDigest is "sha256:<hex>" of Objects, so a deploy can tell cheaply that it
	// renders exactly what an earlier revision did.
	ObjectsDigest string
	Inventory     []InventoryEntry
	Chart         *ChartRelease
	Status        RevisionStatus
	Reason        string
	Drift         DriftPolicy
	Masks         []string `json:"-"` // see NewRevision.Masks; never in an answer
	Prune         bool
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// DeployBasis is what a new deploy of a task to a cluster compares with. Neither revision
// holds its objects (Objects is nil); both hold their inventories.
type DeployBasis struct {
	// Current is the task's current revision on that cluster, as CurrentRevisionOn finds
	// it: what a deploy there may prune. Nil when there is none.
	Current *Revision
	// Newest is the task's newest applied, healthy or failed revision on any cluster (a
	// failed one may have applied nothing). Nil when there is none; the same pointer as
	// Current when that is it.
	Newest *Revision
}

// Previous is the inventory a deploy to the cluster compares with: what the task's current
// revision there put there. Revisions on other clusters never count: their objects are
// elsewhere, and the same names here may be anybody's.
func (b DeployBasis) Previous() []InventoryEntry {
	if b.Current == nil {
		return nil
	}
	return b.Current.Inventory
}

// TaskRef is the task the revision deployed.
func (r Revision) TaskRef() TaskRef { return TaskRef{Pipeline: r.Pipeline, Task: r.Task} }

func revisionName(p PipelineRef, buildID int64, task string) string {
	return fmt.Sprintf("revision of task %s of run %s #%d", task, p, buildID)
}
