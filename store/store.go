package store

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
)

// Store is the persistence Slipway's other packages use. Every method takes a context
// (cancelling it abandons the operation and rolls back its transaction) and returns
// errors that wrap ErrNotFound, ErrAlreadyExists or a *TransitionError where those
// apply.
type Store interface {
	// EnsurePipeline records the pipeline if it is new and returns it.
	EnsurePipeline(ctx context.Context, ref PipelineRef) (Pipeline, error)
	GetPipeline(ctx context.Context, ref PipelineRef) (Pipeline, error)
	// ListPipelines returns every pipeline, by repository and name.
	ListPipelines(ctx context.Context) ([]Pipeline, error)

	// CreateRun allocates the pipeline's next BUILD_ID and records the run as queued,
	// in one transaction; the pipeline is recorded first if it is new.
	CreateRun(ctx context.Context, run NewRun) (Run, error)
	// CreateRuns records runs together with what they mark as handled (a cron tick, a
	// branch head, a tag) in one transaction; errors.Is ErrHandledElsewhere when another
	// process marked it first, and then nothing is recorded.
	CreateRuns(ctx context.Context, runs []NewRun, h Handled) ([]Run, error)
	GetRun(ctx context.Context, ref PipelineRef, buildID int64) (Run, error)
	// ListRuns returns the newest runs first; limit <= 0 means all.
	ListRuns(ctx context.Context, ref PipelineRef, limit int) ([]Run, error)
	// FindRuns lists the runs f selects across pipelines, newest first, a page at a time.
	FindRuns(ctx context.Context, f RunFilter) (RunPage, error)
	// TransitionRun moves the run from `from` to `to` if it is still in `from` and the
	// move is legal, recording reason and the start or finish time. A move to a final
	// status also ends the pipeline's claim made for this run (ClaimPipeline), if any.
	TransitionRun(ctx context.Context, ref PipelineRef, buildID int64, from, to RunStatus, reason string) (Run, error)
	// NoteQueuedRuns sets the reason of the runs that are still queued: why they wait. A
	// run that left the queue meanwhile is left as it is.
	NoteQueuedRuns(ctx context.Context, runs []Run, reason string) error
	// MarkStaleRuns ends every unfinished run whose holder no longer beats as
	// interrupted (reason starting InterruptedReason), recording which tasks were running
	// (Interruption); their running tasks fail and their pending ones are cancelled. The
	// daemon calls it at start and every few seconds, so a dead process's runs are recorded
	// within the holder's ttl. Returns the runs it changed.
	MarkStaleRuns(ctx context.Context) ([]Run, error)
	// PendingInterruptions lists interrupted runs whose retry is undecided, oldest first.
	// A retry is made by CreateRun with
	// TriggerRetry and the interrupted run as parent, which decides it in the same
	// transaction (ErrRetryDecided the second time); RefuseRetry decides against it.
	PendingInterruptions(ctx context.Context, limit int) ([]Interruption, error)
	RefuseRetry(ctx context.Context, ref PipelineRef, buildID int64, why string) error

	// BeatHolder registers a process that runs pipelines, or renews it, until ttl from
	// now; RemoveHolder forgets it and its claims when it stops cleanly.
	BeatHolder(ctx context.Context, holder, description string, ttl time.Duration) error
	RemoveHolder(ctx context.Context, holder string) error
	// ClaimPipeline makes holder the one process running the pipeline (run buildID), or
	// returns a *ClaimedError (errors.Is ErrClaimed) naming the live holder that runs it.
	ClaimPipeline(ctx context.Context, ref PipelineRef, holder string, buildID int64) error
	// StartRun is ClaimPipeline for the run and its move from queued to running, in one
	// transaction: a *ClaimedError (errors.Is ErrClaimed) when another live holder runs the
	// pipeline, a *TransitionError when the run is no longer queued, and then nothing is
	// changed. The move to a final status ends the claim (TransitionRun).
	StartRun(ctx context.Context, ref PipelineRef, buildID int64, holder string) (Run, error)
	// ReleasePipeline gives up holder's claim.
	ReleasePipeline(ctx context.Context, ref PipelineRef, holder string) error

	// AddTask records a pending task of the run.
	AddTask(ctx context.Context, ref PipelineRef, buildID int64, task NewTask) (Task, error)
	GetTask(ctx context.Context, ref PipelineRef, buildID int64, name string) (Task, error)
	// ListTasks returns the run's tasks in the order they were added.
	ListTasks(ctx context.Context, ref PipelineRef, buildID int64) ([]Task, error)
	TransitionTask(ctx context.Context, ref PipelineRef, buildID int64, name string, from, to TaskStatus, reason string) (Task, error)
	// EndTask is TransitionTask recording, in the same transaction, the task's last log
	// lines (as AppendLogs) and its outputs (as SetTaskOutputs): all of it or nothing.
	EndTask(ctx context.Context, ref PipelineRef, buildID int64, name string, end TaskEnd) (Task, error)
	// SetTaskOutputs replaces the task's outputs.
	SetTaskOutputs(ctx context.Context, ref PipelineRef, buildID int64, name string, outputs map[string]string) error

	// AppendLogs adds lines to the log of one task of a run (task "" for the run's own
	// lines). Past the per-task cap, lines are dropped and counted in one final
	// "... N lines dropped" line.
	AppendLogs(ctx context.Context, ref PipelineRef, buildID int64, task string, lines []LogLine) error
	// ReadLogs returns lines of the run in the order they were appended.
	ReadLogs(ctx context.Context, ref PipelineRef, buildID int64, q LogQuery) ([]LogLine, error)

	// SaveRevision records a deploy of one task of a run.
	SaveRevision(ctx context.Context, rev NewRevision) (Revision, error)
	GetRevision(ctx context.Context, ref PipelineRef, buildID int64, task string) (Revision, error)
	// LatestRevision returns the revision of the pipeline's task with the highest
	// BUILD_ID among those in the given status.
	LatestRevision(ctx context.Context, ref PipelineRef, task string, status RevisionStatus) (Revision, error)
	// CurrentRevisionOn returns the task's newest healthy, applied or failed revision on
	// one cluster: what the task left there, which is all a deploy there may prune.
	CurrentRevisionOn(ctx context.Context, ref PipelineRef, task, cluster string) (Revision, error)
	// DeployBasis returns, in one read, the task's revisions a new deploy to the cluster
	// compares with, each with its inventory and without its objects.
	DeployBasis(ctx context.Context, ref PipelineRef, task, cluster string) (DeployBasis, error)
	// SetSuspended suspends (actor, reason recorded) or resumes a pipeline.
	// It also says whether the pipeline was suspended before, read in the same transaction.
	SetSuspended(ctx context.Context, ref PipelineRef, suspend bool, actor, reason string) (p Pipeline, wasSuspended bool, err error)
	// EnvironmentRevisions returns, per environment and task, the newest healthy revision.
	EnvironmentRevisions(ctx context.Context, ref PipelineRef) ([]Revision, error)
	// ListRevisions returns the revisions of one run, in task order of recording.
	ListRevisions(ctx context.Context, ref PipelineRef, buildID int64) ([]Revision, error)
	TransitionRevision(ctx context.Context, ref PipelineRef, buildID int64, task string, from, to RevisionStatus, reason string) (Revision, error)

	// AllRevisions returns every stored revision of every pipeline: each is what a
	// rollback may put back, so retention keeps what any of them deploys.
	AllRevisions(ctx context.Context) ([]Revision, error)

	// RecordPushedTags remembers that run buildID of the pipeline pushed tags of the image
	// repository (HOST[:PORT]/PATH), so retention deletes only its own pipeline's tags.
	RecordPushedTags(ctx context.Context, ref PipelineRef, buildID int64, repository string, tags []string) error
	// PushedTags returns, for each recorded tag of the repository, the pipelines that pushed it.
	PushedTags(ctx context.Context, repository string) (map[string][]PipelineRef, error)
	// ForgetPushedTag drops the pipeline's record of a tag retention deleted.
	ForgetPushedTag(ctx context.Context, ref PipelineRef, repository, tag string) error

	// SaveRevision's Drift policy is kept with the revision. CurrentRevisions returns each
	// task's newest healthy, applied or failed revision: what is on the cluster now.
	CurrentRevisions(ctx context.Context) ([]Revision, error)
	// EachCurrentRevision hands the current revisions to fn one at a time, without the
	// objects and inventory of the revisions known reports true for (Objects and Inventory
	// nil): for readers that keep what they took from a revision they read before. fn must
	// not call the store.
	EachCurrentRevision(ctx context.Context, known func(*Revision) bool, fn func(*Revision) error) error
	// EachCurrentRevisionOf is EachCurrentRevision for the given pipelines only.
	EachCurrentRevisionOf(ctx context.Context, pipelines []PipelineRef, known func(*Revision) bool, fn func(*Revision) error) error
	// RecordDriftEvent records what the drift watcher saw and did about one object.
	RecordDriftEvent(ctx context.Context, e NewDriftEvent) (DriftEvent, error)
	// ListDriftEvents returns the pipeline's drift events, newest first; limit <= 0: all.
	ListDriftEvents(ctx context.Context, ref PipelineRef, limit int) ([]DriftEvent, error)

	// RecordDelivery remembers a repository's webhook delivery id and reports whether it
	// is new; false means a redelivery. Prune forgets old ids.
	RecordDelivery(ctx context.Context, repository, deliveryID string) (bool, error)
	// ForgetDelivery drops a recorded delivery id whose delivery could not be acted on.
	ForgetDelivery(ctx context.Context, repository, deliveryID string) error
	// HandledHead returns the branch head a watcher last dealt with ("" when none).
	HandledHead(ctx context.Context, repository, branch string) (string, error)
	// SetHandledHead records the branch head a watcher has dealt with.
	SetHandledHead(ctx context.Context, repository, branch, head string) error
	// TagsScanned reports whether a repository's tags have been looked at before.
	TagsScanned(ctx context.Context, repository string) (bool, error)
	// RecordTagBaseline records the tags a repository has when first watched (never run)
	// and marks its tags as looked at.
	RecordTagBaseline(ctx context.Context, repository string, tags map[string]string) error
	// ListTagRefs returns the tags recorded for a repository, by name.
	ListTagRefs(ctx context.Context, repository string) (map[string]TagRef, error)
	// SetTagRef records what a watcher did about a tag.
	SetTagRef(ctx context.Context, t TagRef) error
	// RunsOfTag returns the runs of a repository's pipelines made for a tag, newest first.
	RunsOfTag(ctx context.Context, repository, tag string) ([]Run, error)
	// RecordPullRequestEvent stores a pull request action a forge reported.
	RecordPullRequestEvent(ctx context.Context, e PullRequestEvent) (PullRequestEvent, error)
	// ListPullRequestEvents returns a repository's pull request events, newest first
	// (number 0: every pull request; limit <= 0: all).
	ListPullRequestEvents(ctx context.Context, repository string, number, limit int) ([]PullRequestEvent, error)

	// LastScheduleTick returns the last tick of a pipeline's schedule that was handled
	// (fired or skipped on purpose); false when none is recorded.
	LastScheduleTick(ctx context.Context, ref PipelineRef, schedule string) (time.Time, bool, error)
	// AdvanceScheduleTick records tick only if the tick recorded is still from: a
	// compare-and-set, so two processes never both handle one tick.
	AdvanceScheduleTick(ctx context.Context, ref PipelineRef, schedule string, from, tick time.Time) (bool, error)
	// HandHint leaves a webhook hint for the replica owning the repository; TakeHints
	// takes (reads and deletes) the hints of the repositories a replica owns.
	HandHint(ctx context.Context, h RepositoryHint) error
	TakeHints(ctx context.Context, repositories []string) ([]RepositoryHint, error)
	// RequestRun leaves a cancel or an approval answer for the process holding the run;
	// that process takes it (TakeRunRequests) and records its outcome (FinishRunRequest),
	// which GetRunRequest reads.
	RequestRun(ctx context.Context, nr NewRunRequest) (RunRequest, error)
	GetRunRequest(ctx context.Context, id int64) (RunRequest, error)
	TakeRunRequests(ctx context.Context, holder string) ([]RunRequest, error)
	FinishRunRequest(ctx context.Context, q RunRequest, outcome RequestOutcome, detail string) error
	// DeleteScheduleTick forgets a schedule that left the pipeline file.
	DeleteScheduleTick(ctx context.Context, ref PipelineRef, schedule string) error

	// Prune deletes old webhook deliveries, pull request events and drift events as r says,
	// in short transactions. The audit log is never pruned.
	Prune(ctx context.Context, r Retention) (Pruned, error)

	// RecordAudit appends an entry to the audit log, which nothing ever changes or deletes.
	RecordAudit(ctx context.Context, e AuditEntry) (AuditEntry, error)
	// ListAudit returns the audit entries the filter selects, newest first.
	ListAudit(ctx context.Context, f AuditFilter) ([]AuditEntry, error)

	// Close releases the store. Using it afterwards is an error.
	Close() error
	// Ping checks that the database answers a read: what /readyz reports.
	Ping(ctx context.Context) error

	// SignOut refuses the web console session with this nonce until it expires, on every
	// process sharing the store; SignedOut says whether it was.
	SignOut(ctx context.Context, nonce string, expires time.Time) error
	SignedOut(ctx context.Context, nonce string) (bool, error)
}

// InterruptedReason starts the reason MarkStaleRuns records on a run, and is the reason
// of the tasks it ends.
const InterruptedReason = "interrupted: its Slipway process stopped"

// DefaultLogLineCap is how many lines one task's log keeps unless WithLogLineCap says
// otherwise: enough for a verbose build, small enough that a runaway script cannot fill
// the disk.
const DefaultLogLineCap = 10000

// MaxLogLineBytes is the longest log line kept whole; longer lines are cut there and
// marked, so one binary dump cannot blow up a run's log.
const MaxLogLineBytes = 64 << 10

// DefaultBusyTimeout is how long a write waits for another process holding the
// database's write lock before giving up.
const DefaultBusyTimeout = 10 * time.Second

type options struct {
	logLineCap  int
	busyTimeout time.Duration
	// outageTimeout: how long a write waits for an unreachable PostgreSQL.
	outageTimeout time.Duration
	now           func() time.Time
	keyring       *Keyring // nil: revision payloads are kept in plaintext
	password      string   // PostgreSQL: the password, when the DSN has none
	changes       ChangeSink
	log           logrus.FieldLogger // the PostgreSQL change relay's connection losses
	// notifications: keep the outbox (WithNotifications).
	notifications bool
}

func defaultOptions() options {
	return options{
		logLineCap:    DefaultLogLineCap,
		busyTimeout:   DefaultBusyTimeout,
		outageTimeout: DefaultOutageTimeout,
		now:           time.Now,
		log:           discardLogger(),
	}
}

// Option changes how Open sets up a store.
type Option func(*options)

// WithLogLineCap sets how many lines each task's log keeps; n <= 0 keeps all.
func WithLogLineCap(n int) Option { return func(o *options) { o.logLineCap = n } }

// WithLogger gives the store a logger for what it does in the background: on
// PostgreSQL, the change relay losing and regaining its connection.
func WithLogger(log logrus.FieldLogger) Option { return func(o *options) { o.log = log } }

func discardLogger() logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

// DefaultOutageTimeout rides out a PostgreSQL restart or failover.
const DefaultOutageTimeout = 2 * time.Minute

// WithBusyTimeout sets how long a write waits for another process's write lock.
func WithBusyTimeout(d time.Duration) Option { return func(o *options) { o.busyTimeout = d } }

// WithPassword gives a PostgreSQL store the password to log in with (storePasswordFile's
// content), so the DSN in slipway.yaml need not hold it. SQLite ignores it.
func WithPassword(password string) Option { return func(o *options) { o.password = password } }

// ReadPasswordFile reads a PostgreSQL password file (storePasswordFile): its content
// without the trailing newline.
func ReadPasswordFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	pw := strings.TrimRight(string(b), "\r\n")
	if pw == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return pw, nil
}

// WithClock replaces time.Now for the times the store records.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }
