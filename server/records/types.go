package records

import (
	"time"

	"github.com/slipwayhq/slipway/store"
)

// Run is a run as people see it.
type Run struct {
	Repository    string    `json:"repository"`
	Pipeline      string    `json:"pipeline"`
	BuildID       int64     `json:"buildId"`
	Commit        string    `json:"commit"`
	Branch        string    `json:"branch,omitempty"`
	Tag           string    `json:"tag,omitempty"` // the tag the run is for
	Trigger       string    `json:"trigger"`
	ParentBuildID int64     `json:"parentBuildId,omitempty"`
	Status        string    `json:"status"`
	Reason        string    `json:"reason,omitempty"`
	CreatedAt     time.Time `json:"createdAt"`
	StartedAt     time.Time `json:"startedAt,omitzero"`
	FinishedAt    time.Time `json:"finishedAt,omitzero"`
	// DurationSeconds is from start to finish, or to now while the run goes on; 0 before it starts.
	DurationSeconds float64 `json:"durationSeconds"`
}

// RunOf converts a stored run; now ends the duration of a run not yet finished.
func RunOf(r store.Run, now time.Time) Run {
	return Run{Repository: r.Pipeline.Repository, Pipeline: r.Pipeline.Name, BuildID: r.BuildID, Commit: r.Commit,
		Branch: r.Branch, Tag: r.Tag, Trigger: string(r.Trigger), ParentBuildID: r.ParentBuildID, Status: string(r.Status),
		Reason: r.Reason, CreatedAt: r.CreatedAt, StartedAt: r.StartedAt, FinishedAt: r.FinishedAt,
		DurationSeconds: duration(r.StartedAt, r.FinishedAt, now)}
}

func duration(start, end, now time.Time) float64 {
	if start.IsZero() {
		return 0
	}
	if end.IsZero() {
		end = now
	}
	return end.Sub(start).Seconds()
}

// Task is one task of a run.
type Task struct {
	Name            string            `json:"name"`
	Type            string            `json:"type"`
	Status          string            `json:"status"`
	Reason          string            `json:"reason,omitempty"`
	StartedAt       time.Time         `json:"startedAt,omitzero"`
	FinishedAt      time.Time         `json:"finishedAt,omitzero"`
	DurationSeconds float64           `json:"durationSeconds"`
	Outputs         map[string]string `json:"outputs,omitempty"` // as recorded: secrets masked
}

// Stage is a stage of a run, its tasks in the order the run added them.
type Stage struct {
	Name string `json:"name"`
	// Status sums up the tasks: failed, timed_out or cancelled if one did, running while one
	// runs, pending while none started, skipped if all were, else succeeded.
	Status string `json:"status"`
	Tasks  []Task `json:"tasks"`
}

// RunDetail is a run with its stages and tasks and what it deployed.
type RunDetail struct {
	Run
	Stages    []Stage    `json:"stages"`
	Revisions []Revision `json:"revisions"`
}

// Object is one object a revision applied.
type Object struct {
	Group     string `json:"group,omitempty"`
	Version   string `json:"version"`
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	Digest    string `json:"digest,omitempty"` // sha256 of the object as applied
	Adopted   bool   `json:"adopted,omitempty"`
}

// Chart is what a chart deploy installed.
type Chart struct {
	Name            string `json:"name"`
	Version         string `json:"version"`
	ValuesDigest    string `json:"valuesDigest,omitempty"`
	ReleaseRevision int    `json:"releaseRevision,omitempty"`
}

// Revision is what one deploy task of a run deployed. The objects' content is not shown:
// it may hold secrets.
type Revision struct {
	Repository    string    `json:"repository"`
	Pipeline      string    `json:"pipeline"`
	BuildID       int64     `json:"buildId"`
	Task          string    `json:"task"`
	Environment   string    `json:"environment,omitempty"`
	Cluster       string    `json:"cluster"`
	Namespace     string    `json:"namespace,omitempty"`
	Kind          string    `json:"kind"`
	Status        string    `json:"status"`
	Reason        string    `json:"reason,omitempty"`
	ObjectsDigest string    `json:"objectsDigest"`
	Objects       []Object  `json:"objects"`
	Images        []string  `json:"images"` // every image the objects run, as written (pinned by digest after a build)
	Chart         *Chart    `json:"chart,omitempty"`
	CreatedAt     time.Time `json:"createdAt"`
	UpdatedAt     time.Time `json:"updatedAt"`
}

// CurrentRevision says which run's deploys are on the clusters now.
type CurrentRevision struct {
	BuildID    int64     `json:"buildId"` // the newest run with a current revision
	Commit     string    `json:"commit"`
	Tag        string    `json:"tag,omitempty"`
	DeployedAt time.Time `json:"deployedAt"`
}

// The drift states of a pipeline (Pipeline.Drift).
const (
	DriftNone      = "none"      // nothing deployed
	DriftInSync    = "in-sync"   // no drift event since the current revision was deployed
	DriftDrifted   = "drifted"   // the newest event since then was reported or a correction failed
	DriftCorrected = "corrected" // the newest event since then was a correction
	DriftUnhealthy = "unhealthy" // the newest event since then was the health watch's
)

// Pipeline is a pipeline at a glance.
type Pipeline struct {
	Repository    string           `json:"repository"`
	Name          string           `json:"name"`
	LastBuildID   int64            `json:"lastBuildId"`
	Suspended     bool             `json:"suspended"`
	SuspendedAt   time.Time        `json:"suspendedAt,omitzero"`
	SuspendedBy   string           `json:"suspendedBy,omitempty"`
	SuspendReason string           `json:"suspendReason,omitempty"`
	LastRun       *Run             `json:"lastRun,omitempty"`
	Revision      *CurrentRevision `json:"revision,omitempty"`
	Drift         string           `json:"drift"`
	// DriftAt is when the event Drift reports was detected.
	DriftAt time.Time `json:"driftAt,omitzero"`
}

// Deployment is one cell of "what is deployed where": a task of a pipeline on one
// cluster and namespace.
type Deployment struct {
	Repository  string    `json:"repository"`
	Pipeline    string    `json:"pipeline"`
	Task        string    `json:"task"`
	Environment string    `json:"environment,omitempty"`
	Cluster     string    `json:"cluster"`
	Namespace   string    `json:"namespace,omitempty"`
	BuildID     int64     `json:"buildId"`         // the artifact: the run that built it
	DeployedBy  int64     `json:"deployedByBuild"` // the run that deployed it (itself, a promotion or a rollback)
	Commit      string    `json:"commit"`
	Tag         string    `json:"tag,omitempty"`
	Status      string    `json:"status"` // the revision's: applied, healthy or failed
	Images      []string  `json:"images"`
	Chart       *Chart    `json:"chart,omitempty"`
	DeployedAt  time.Time `json:"deployedAt"`
}

// Line is one log line.
type Line struct {
	ID     int64     `json:"id"`
	Task   string    `json:"task"` // "" for the run's own lines
	Time   time.Time `json:"time"`
	Stream string    `json:"stream"`
	Text   string    `json:"text"`
}

// LineOf converts a stored line.
func LineOf(l store.LogLine) Line {
	return Line{ID: l.ID, Task: l.Task, Time: l.Time, Stream: string(l.Stream), Text: l.Text}
}
