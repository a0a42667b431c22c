// Package notify tells people about runs, approvals and drift: it turns the store's
// notification outbox into one delivery per matching target (webhook, Slack-compatible
// incoming webhook, mail) and sends them with retries, so a restart loses none and a sent
// one is never sent again.
package notify

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/slipwayhq/slipway/config"
	"github.com/slipwayhq/slipway/internal/mask"
	"github.com/slipwayhq/slipway/store"
)

// Message is what every target is told about one event; webhooks get it as JSON.
type Message struct {
	// ID names the event, the same for every target and attempt: receivers drop repeats by it.
	ID         string    `json:"id"`
	Event      string    `json:"event"`
	Repository string    `json:"repository"`
	Pipeline   string    `json:"pipeline"`
	BuildID    int64     `json:"buildID,omitempty"`
	Time       time.Time `json:"time"`
	Run        *Run      `json:"run,omitempty"`
	Drift      *Drift    `json:"drift,omitempty"`
}

// Run is the run an event is about.
type Run struct {
	Status          string     `json:"status"`
	Reason          string     `json:"reason,omitempty"`
	Commit          string     `json:"commit,omitempty"`
	Branch          string     `json:"branch,omitempty"`
	Tag             string     `json:"tag,omitempty"`
	Trigger         string     `json:"trigger"`
	StartedAt       *time.Time `json:"startedAt,omitempty"`
	FinishedAt      *time.Time `json:"finishedAt,omitempty"`
	DurationSeconds float64    `json:"durationSeconds,omitempty"`
	URL             string     `json:"url,omitempty"`
	Tasks           []Task     `json:"tasks,omitempty"`
}

// Task is one task of the run with its outputs.
type Task struct {
	Stage   string            `json:"stage"`
	Name    string            `json:"name"`
	Status  string            `json:"status"`
	Reason  string            `json:"reason,omitempty"`
	Outputs map[string]string `json:"outputs,omitempty"`
}

// Drift is the drift event an event is about.
type Drift struct {
	Task    string `json:"task"`
	Cluster string `json:"cluster"`
	Object  string `json:"object"` // KIND NAMESPACE/NAME
	Action  string `json:"action"` // reported, corrected, correction_failed
	Gone    bool   `json:"gone,omitempty"`
	Manager string `json:"manager,omitempty"`
	Patch   string `json:"patch,omitempty"`
	Error   string `json:"error,omitempty"`
}

// RunPath is where the web UI shows a run, under externalURL.
const RunPath = "/ui/p/%s/%s/runs/%d"

// RunURL is the link to a run's page; "" without externalURL.
func RunURL(externalURL string, ref store.PipelineRef, buildID int64) string {
	if externalURL == "" {
		return ""
	}
	return strings.TrimSuffix(externalURL, "/") + fmt.Sprintf(RunPath, url.PathEscape(ref.Repository), url.PathEscape(ref.Name), buildID)
}

// Records is what messages are made from.
type Records interface {
	GetRun(ctx context.Context, ref store.PipelineRef, buildID int64) (store.Run, error)
	ListTasks(ctx context.Context, ref store.PipelineRef, buildID int64) ([]store.Task, error)
	ListRevisions(ctx context.Context, ref store.PipelineRef, buildID int64) ([]store.Revision, error)
	GetDriftEvent(ctx context.Context, ref store.PipelineRef, id int64) (store.DriftEvent, error)
}

// errGone says the record an event is about no longer exists (pruned); it is dropped.
var errGone = errors.New("the record the event is about is gone")

// build makes the message of an outbox event from the records it names. Run records hold
// reasons and outputs masked already; the values of the run's revisions are masked once
// more here, so a message never carries what the run masked.
func build(ctx context.Context, rec Records, externalURL string, e store.NotificationEvent) (Message, error) {
	m := Message{ID: fmt.Sprintf("slipway-event-%d", e.ID), Repository: e.Pipeline.Repository, Pipeline: e.Pipeline.Name,
		BuildID: e.BuildID, Time: e.CreatedAt.UTC()}
	switch e.Kind {
	case store.NotifyDrift:
		d, err := rec.GetDriftEvent(ctx, e.Pipeline, e.DriftEventID)
		if errors.Is(err, store.ErrNotFound) {
			return m, errGone
		} else if err != nil {
			return m, err
		}
		masker, err := revisionMasker(ctx, rec, e.Pipeline, d.BuildID)
		if err != nil {
			return m, err
		}
		m.Event = config.EventDriftDetected
		if d.Action == store.DriftCorrected {
			m.Event = config.EventDriftCorrected
		}
		o := d.Object
		obj := o.Kind + " " + o.Name
		if o.Namespace != "" {
			obj = o.Kind + " " + o.Namespace + "/" + o.Name
		}
		m.Drift = &Drift{Task: d.Task, Cluster: d.Cluster, Object: obj, Action: string(d.Action), Gone: d.Gone,
			Manager: d.Manager, Patch: masker.String(d.Patch), Error: masker.String(d.Error)}
		return m, nil
	case store.NotifyRun:
		r, err := rec.GetRun(ctx, e.Pipeline, e.BuildID)
		if errors.Is(err, store.ErrNotFound) {
			return m, errGone
		} else if err != nil {
			return m, err
		}
		tasks, err := rec.ListTasks(ctx, e.Pipeline, e.BuildID)
		if err != nil {
			return m, err
		}
		revs, err := rec.ListRevisions(ctx, e.Pipeline, e.BuildID)
		if err != nil {
			return m, err
		}
		var masks []string
		rolledBack := false
		for _, rv := range revs {
			masks = append(masks, rv.Masks...)
			rolledBack = rolledBack || rv.Status == store.RevisionRolledBack
		}
		masker := mask.New(masks...)
		status := store.RunStatus(e.Status)
		m.Event = runEvent(status, r.Trigger, rolledBack)
		run := &Run{Status: e.Status, Commit: r.Commit, Branch: r.Branch, Tag: r.Tag, Trigger: string(r.Trigger),
			URL: RunURL(externalURL, e.Pipeline, e.BuildID)}
		if status == r.Status {
			run.Reason = masker.String(r.Reason)
		}
		if !r.StartedAt.IsZero() {
			t := r.StartedAt.UTC()
			run.StartedAt = &t
		}
		if status.Final() && !r.FinishedAt.IsZero() {
			t := r.FinishedAt.UTC()
			run.FinishedAt = &t
			if !r.StartedAt.IsZero() {
				run.DurationSeconds = r.FinishedAt.Sub(r.StartedAt).Round(time.Millisecond).Seconds()
			}
		}
		for _, t := range tasks {
			mt := Task{Stage: t.Stage, Name: t.Name, Status: string(t.Status), Reason: masker.String(t.Reason)}
			if len(t.Outputs) > 0 {
				mt.Outputs = make(map[string]string, len(t.Outputs))
				for k, v := range t.Outputs {
					mt.Outputs[k] = masker.String(v)
				}
			}
			run.Tasks = append(run.Tasks, mt)
		}
		m.Run = run
		return m, nil
	}
	return m, fmt.Errorf("unknown notification kind %q", e.Kind)
}

func revisionMasker(ctx context.Context, rec Records, ref store.PipelineRef, buildID int64) (*mask.Masker, error) {
	revs, err := rec.ListRevisions(ctx, ref, buildID)
	if err != nil {
		return nil, err
	}
	var masks []string
	for _, rv := range revs {
		masks = append(masks, rv.Masks...)
	}
	return mask.New(masks...), nil
}

// runEvent names the event of a run reaching status: a deploy that was rolled back, or a
// rollback run that succeeded, is run.rolled_back.
func runEvent(status store.RunStatus, trigger store.Trigger, rolledBack bool) string {
	switch {
	case status == store.RunAwaitingApproval:
		return config.EventApprovalNeeded
	case rolledBack && status == store.RunFailed, trigger == store.TriggerRollback && status == store.RunSucceeded:
		return config.EventRunRolledBack
	}
	return "run." + string(status)
}

// Subject is the one-line summary: a mail's subject, a chat message's first line.
func (m Message) Subject() string {
	p := m.Repository + "/" + m.Pipeline
	switch {
	case m.Drift != nil:
		what := "drift detected"
		if m.Event == config.EventDriftCorrected {
			what = "drift corrected"
		}
		return fmt.Sprintf("[slipway] %s: %s on %s in %s", p, what, m.Drift.Object, m.Drift.Cluster)
	case m.Event == config.EventApprovalNeeded:
		return fmt.Sprintf("[slipway] %s #%d waits for approval", p, m.BuildID)
	case m.Event == config.EventRunRolledBack:
		return fmt.Sprintf("[slipway] %s #%d rolled back (%s)", p, m.BuildID, m.Run.Status)
	}
	return fmt.Sprintf("[slipway] %s #%d %s", p, m.BuildID, strings.ReplaceAll(strings.TrimPrefix(m.Event, "run."), "_", " "))
}

// Text is the plain-text body: what happened, the run's BUILD_ID, commit, duration and
// reason, each task with its outputs, and the link to the run.
func (m Message) Text() string {
	var b strings.Builder
	line := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, "%-10s %s\n", k+":", v)
		}
	}
	line("Event", m.Event)
	line("Pipeline", m.Repository+"/"+m.Pipeline)
	if m.BuildID > 0 {
		line("BUILD_ID", fmt.Sprint(m.BuildID))
	}
	if r := m.Run; r != nil {
		line("Status", r.Status)
		ref := r.Branch
		if r.Tag != "" {
			ref = "tag " + r.Tag
		}
		if r.Commit != "" {
			line("Commit", strings.TrimSpace(r.Commit+" "+parens(ref)))
		}
		line("Trigger", r.Trigger)
		if r.FinishedAt != nil && r.StartedAt != nil {
			line("Duration", (time.Duration(r.DurationSeconds * float64(time.Second))).Round(100*time.Millisecond).String())
		}
		line("Reason", r.Reason)
		line("Run", r.URL)
		if len(r.Tasks) > 0 {
			b.WriteString("\nTasks:\n")
		}
		for _, t := range r.Tasks {
			fmt.Fprintf(&b, "  %s/%s: %s", t.Stage, t.Name, t.Status)
			if t.Reason != "" {
				fmt.Fprintf(&b, " (%s)", oneLine(t.Reason))
			}
			b.WriteString("\n")
			for _, k := range slices.Sorted(maps.Keys(t.Outputs)) {
				fmt.Fprintf(&b, "    tasks.%s.%s=%s\n", t.Name, k, t.Outputs[k])
			}
		}
	}
	if d := m.Drift; d != nil {
		line("Task", d.Task)
		line("Cluster", d.Cluster)
		line("Object", d.Object)
		line("Action", d.Action)
		line("Changed by", d.Manager)
		if d.Gone {
			line("Deleted", "yes")
		}
		line("Error", d.Error)
		if d.Patch != "" {
			b.WriteString("\nPatch (live to desired):\n" + d.Patch + "\n")
		}
	}
	return b.String()
}

func parens(s string) string {
	if s == "" {
		return ""
	}
	return "(" + s + ")"
}

func oneLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}
