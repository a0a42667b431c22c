package records

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/slipwayhq/slipway/render"
	"github.com/slipwayhq/slipway/store"
)

// Keep says whether a pipeline may be shown (an identity restricted to repositories sees
// only theirs); nil keeps every pipeline.
type Keep func(store.PipelineRef) bool

func (k Keep) keeps(ref store.PipelineRef) bool { return k == nil || k(ref) }

// PipelineStore is what Pipelines and PipelineOf read.
type PipelineStore interface {
	ListPipelines(ctx context.Context) ([]store.Pipeline, error)
	GetPipeline(ctx context.Context, ref store.PipelineRef) (store.Pipeline, error)
	ListRuns(ctx context.Context, ref store.PipelineRef, limit int) ([]store.Run, error)
	GetRun(ctx context.Context, ref store.PipelineRef, buildID int64) (store.Run, error)
	CurrentRevisions(ctx context.Context) ([]store.Revision, error)
	ListDriftEvents(ctx context.Context, ref store.PipelineRef, limit int) ([]store.DriftEvent, error)
}

// Pipelines lists the pipelines keep keeps, by repository and name, each with its last run,
// current revision and drift state.
func Pipelines(ctx context.Context, st PipelineStore, keep Keep, now time.Time) ([]Pipeline, error) {
	all, err := st.ListPipelines(ctx)
	if err != nil {
		return nil, err
	}
	current, err := st.CurrentRevisions(ctx)
	if err != nil {
		return nil, err
	}
	out := []Pipeline{}
	for _, p := range all {
		if !keep.keeps(p.Ref) {
			continue
		}
		sum, err := summarise(ctx, st, p, current, now)
		if err != nil {
			return nil, err
		}
		out = append(out, sum)
	}
	return out, nil
}

// PipelineOf is one pipeline at a glance; errors wrap store.ErrNotFound for an unknown one.
func PipelineOf(ctx context.Context, st PipelineStore, ref store.PipelineRef, now time.Time) (Pipeline, error) {
	p, err := st.GetPipeline(ctx, ref)
	if err != nil {
		return Pipeline{}, err
	}
	current, err := st.CurrentRevisions(ctx)
	if err != nil {
		return Pipeline{}, err
	}
	return summarise(ctx, st, p, current, now)
}

func summarise(ctx context.Context, st PipelineStore, p store.Pipeline, current []store.Revision, now time.Time) (Pipeline, error) {
	sum := Pipeline{Repository: p.Ref.Repository, Name: p.Ref.Name, LastBuildID: p.LastBuildID, Suspended: p.Suspended,
		SuspendedAt: p.SuspendedAt, SuspendedBy: p.SuspendedBy, SuspendReason: p.SuspendReason, Drift: DriftNone}
	runs, err := st.ListRuns(ctx, p.Ref, 1)
	if err != nil {
		return sum, err
	}
	if len(runs) > 0 {
		r := RunOf(runs[0], now)
		sum.LastRun = &r
	}
	var mine []store.Revision
	for _, rev := range current {
		if rev.Pipeline == p.Ref {
			mine = append(mine, rev)
		}
	}
	if len(mine) == 0 {
		return sum, nil
	}
	newest := slices.MaxFunc(mine, func(a, b store.Revision) int {
		return cmp.Or(cmp.Compare(a.BuildID, b.BuildID), a.CreatedAt.Compare(b.CreatedAt))
	})
	run, err := st.GetRun(ctx, p.Ref, newest.BuildID)
	if err != nil {
		return sum, err
	}
	sum.Revision = &CurrentRevision{BuildID: run.BuildID, Commit: run.Commit, Tag: run.Tag, DeployedAt: newest.CreatedAt}
	sum.Drift = DriftInSync
	events, err := st.ListDriftEvents(ctx, p.Ref, 1)
	if err != nil {
		return sum, err
	}
	if len(events) == 0 {
		return sum, nil
	}
	e := events[0]
	// The newest event counts only while the revision it is about is still the current one.
	if !slices.ContainsFunc(mine, func(r store.Revision) bool {
		return r.BuildID == e.BuildID && r.Task == e.Task && r.Cluster == e.Cluster && !e.DetectedAt.Before(r.CreatedAt)
	}) {
		return sum, nil
	}
	switch e.Action {
	case store.DriftCorrected:
		sum.Drift = DriftCorrected
	case store.HealthUnhealthy:
		sum.Drift = DriftUnhealthy
	default:
		sum.Drift = DriftDrifted
	}
	sum.DriftAt = e.DetectedAt
	return sum, nil
}

// RunFinder is what Runs and Approvals read.
type RunFinder interface {
	FindRuns(ctx context.Context, f store.RunFilter) (store.RunPage, error)
}

// RunList is one page of runs; Next continues it (store.RunFilter.After), "" on the last.
type RunList struct {
	Runs []Run  `json:"runs"`
	Next string `json:"next,omitempty"`
}

// Runs is one page of the runs f selects that keep keeps. A page may hold fewer runs than
// the limit when keep drops some; Next still continues after it.
func Runs(ctx context.Context, st RunFinder, f store.RunFilter, keep Keep, now time.Time) (RunList, error) {
	page, err := st.FindRuns(ctx, f)
	if err != nil {
		return RunList{}, err
	}
	list := RunList{Runs: []Run{}, Next: page.Next}
	for _, r := range page.Runs {
		if keep.keeps(r.Pipeline) {
			list.Runs = append(list.Runs, RunOf(r, now))
		}
	}
	return list, nil
}

// Approvals lists every run waiting at an approval gate that keep keeps, newest first;
// each run's Reason says what it waits for.
func Approvals(ctx context.Context, st RunFinder, keep Keep, now time.Time) ([]Run, error) {
	f := store.RunFilter{Statuses: []store.RunStatus{store.RunAwaitingApproval}}
	out := []Run{}
	for {
		list, err := Runs(ctx, st, f, keep, now)
		if err != nil {
			return nil, err
		}
		out = append(out, list.Runs...)
		if list.Next == "" {
			return out, nil
		}
		f.After = list.Next
	}
}

// RunStore is what RunDetailOf reads.
type RunStore interface {
	GetRun(ctx context.Context, ref store.PipelineRef, buildID int64) (store.Run, error)
	ListTasks(ctx context.Context, ref store.PipelineRef, buildID int64) ([]store.Task, error)
	ListRevisions(ctx context.Context, ref store.PipelineRef, buildID int64) ([]store.Revision, error)
}

// RunDetailOf is a run with its stages, tasks and revisions; errors wrap
// store.ErrNotFound for an unknown run.
func RunDetailOf(ctx context.Context, st RunStore, ref store.PipelineRef, buildID int64, now time.Time) (RunDetail, error) {
	run, err := st.GetRun(ctx, ref, buildID)
	if err != nil {
		return RunDetail{}, err
	}
	tasks, err := st.ListTasks(ctx, ref, buildID)
	if err != nil {
		return RunDetail{}, err
	}
	revs, err := st.ListRevisions(ctx, ref, buildID)
	if err != nil {
		return RunDetail{}, err
	}
	d := RunDetail{Run: RunOf(run, now), Stages: StagesOf(tasks, now), Revisions: []Revision{}}
	for _, rev := range revs {
		r, err := RevisionOf(rev)
		if err != nil {
			return RunDetail{}, err
		}
		d.Revisions = append(d.Revisions, r)
	}
	return d, nil
}

// StagesOf groups tasks by stage, stages in the order their first task was added.
func StagesOf(tasks []store.Task, now time.Time) []Stage {
	stages := []Stage{}
	at := map[string]int{}
	for _, t := range tasks {
		i, ok := at[t.Stage]
		if !ok {
			i = len(stages)
			at[t.Stage] = i
			stages = append(stages, Stage{Name: t.Stage, Tasks: []Task{}})
		}
		stages[i].Tasks = append(stages[i].Tasks, Task{Name: t.Name, Type: t.Type, Status: string(t.Status), Reason: t.Reason,
			StartedAt: t.StartedAt, FinishedAt: t.FinishedAt, DurationSeconds: duration(t.StartedAt, t.FinishedAt, now), Outputs: t.Outputs})
	}
	for i := range stages {
		stages[i].Status = stageStatus(stages[i].Tasks)
	}
	return stages
}

func stageStatus(tasks []Task) string {
	has := map[string]bool{}
	for _, t := range tasks {
		has[t.Status] = true
	}
	for _, s := range []store.TaskStatus{store.TaskFailed, store.TaskTimedOut, store.TaskCancelled, store.TaskRunning} {
		if has[string(s)] {
			return string(s)
		}
	}
	switch {
	case has[string(store.TaskPending)] && has[string(store.TaskSucceeded)]:
		return string(store.TaskRunning) // between two tasks of the stage
	case has[string(store.TaskPending)]:
		return string(store.TaskPending)
	case len(has) == 1 && has[string(store.TaskSkipped)]:
		return string(store.TaskSkipped)
	}
	return string(store.TaskSucceeded)
}

// RevisionOf is what a revision deployed: its objects (not their content), the images
// they run and its chart.
func RevisionOf(rev store.Revision) (Revision, error) {
	images, err := render.Images(rev.Objects)
	if err != nil {
		return Revision{}, fmt.Errorf("images of %s #%d task %s: %w", rev.Pipeline, rev.BuildID, rev.Task, err)
	}
	r := Revision{Repository: rev.Pipeline.Repository, Pipeline: rev.Pipeline.Name, BuildID: rev.BuildID, Task: rev.Task,
		Environment: rev.Environment, Cluster: rev.Cluster, Namespace: rev.Namespace, Kind: string(rev.Kind),
		Status: string(rev.Status), Reason: rev.Reason, ObjectsDigest: rev.ObjectsDigest, Objects: []Object{},
		Images: images, Chart: chartOf(rev.Chart), CreatedAt: rev.CreatedAt, UpdatedAt: rev.UpdatedAt}
	for _, e := range rev.Inventory {
		r.Objects = append(r.Objects, Object{Group: e.Group, Version: e.Version, Kind: e.Kind, Namespace: e.Namespace,
			Name: e.Name, Digest: e.Digest, Adopted: e.Adopted})
	}
	return r, nil
}

func chartOf(c *store.ChartRelease) *Chart {
	if c == nil {
		return nil
	}
	return &Chart{Name: c.Chart, Version: c.Version, ValuesDigest: c.ValuesDigest, ReleaseRevision: c.ReleaseRevision}
}

// DeployStore is what Deployments reads.
type DeployStore interface {
	CurrentRevisions(ctx context.Context) ([]store.Revision, error)
	GetRun(ctx context.Context, ref store.PipelineRef, buildID int64) (store.Run, error)
}

// Deployments is what is deployed where: each deploy task's current revision on its
// cluster, for the pipelines keep keeps, by repository, pipeline, environment, task and
// cluster. The BuildID of a promotion or rollback is the run whose artifact it deployed.
func Deployments(ctx context.Context, st DeployStore, keep Keep) ([]Deployment, error) {
	revs, err := st.CurrentRevisions(ctx)
	if err != nil {
		return nil, err
	}
	runs := map[store.PipelineRef]map[int64]store.Run{}
	out := []Deployment{}
	for _, rev := range revs {
		if !keep.keeps(rev.Pipeline) {
			continue
		}
		if runs[rev.Pipeline] == nil {
			runs[rev.Pipeline] = map[int64]store.Run{}
		}
		run, ok := runs[rev.Pipeline][rev.BuildID]
		if !ok {
			if run, err = st.GetRun(ctx, rev.Pipeline, rev.BuildID); err != nil {
				return nil, err
			}
			runs[rev.Pipeline][rev.BuildID] = run
		}
		r, err := RevisionOf(rev)
		if err != nil {
			return nil, err
		}
		artifact := run.BuildID
		if run.Trigger == store.TriggerPromote || run.Trigger == store.TriggerRollback {
			artifact = run.ParentBuildID
		}
		out = append(out, Deployment{Repository: rev.Pipeline.Repository, Pipeline: rev.Pipeline.Name,
			Task: strings.TrimSuffix(rev.Task, "."+rev.Environment), Environment: rev.Environment, Cluster: rev.Cluster,
			Namespace: rev.Namespace, BuildID: artifact, DeployedBy: run.BuildID, Commit: run.Commit, Tag: run.Tag,
			Status: r.Status, Images: r.Images, Chart: r.Chart, DeployedAt: rev.CreatedAt})
	}
	slices.SortFunc(out, func(a, b Deployment) int {
		return cmp.Or(cmp.Compare(a.Repository, b.Repository), cmp.Compare(a.Pipeline, b.Pipeline),
			cmp.Compare(a.Environment, b.Environment), cmp.Compare(a.Task, b.Task), cmp.Compare(a.Cluster, b.Cluster),
			cmp.Compare(a.Namespace, b.Namespace))
	})
	return out, nil
}

// RunKinds reads a run list's statuses and triggers, each repeated or comma-separated, as
// the API's ?status= and the CLI's --status take them. An error starts with "status" or
// "trigger" and names the value.
func RunKinds(statuses, triggers []string) ([]store.RunStatus, []store.Trigger, error) {
	var ss []store.RunStatus
	for _, s := range splitList(statuses) {
		if !store.RunStatus(s).Valid() {
			return nil, nil, fmt.Errorf("status %q is not a run status", s)
		}
		ss = append(ss, store.RunStatus(s))
	}
	var ts []store.Trigger
	for _, t := range splitList(triggers) {
		if !store.Trigger(t).Valid() {
			return nil, nil, fmt.Errorf("trigger %q is not a trigger", t)
		}
		ts = append(ts, store.Trigger(t))
	}
	return ss, ts, nil
}

func splitList(vs []string) []string {
	var out []string
	for _, v := range vs {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}
