package server

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/slipwayhq/slipway/config"
	"github.com/slipwayhq/slipway/server/records"
	"github.com/slipwayhq/slipway/store"
)

// Reads is what the API's read routes read in the store; store.Store is one.
type Reads interface {
	records.PipelineStore
	records.RunFinder
	records.RunStore
	records.LogStore
	records.DeployStore
	records.AuditStore
	records.DriftStore
}

// keepFor keeps the pipelines of the repositories the caller may see.
func keepFor(caller config.APIUser) records.Keep {
	if len(caller.Repositories) == 0 {
		return nil
	}
	return func(ref store.PipelineRef) bool { return caller.MayAccess(ref.Repository) }
}

// keepOnly keeps what the caller may see of the repository and pipeline a list's query
// names ("": any).
func keepOnly(caller config.APIUser, repository, pipeline string) records.Keep {
	return func(ref store.PipelineRef) bool {
		return caller.MayAccess(ref.Repository) && (repository == "" || ref.Repository == repository) &&
			(pipeline == "" || ref.Name == pipeline)
	}
}

// mayList checks the repository a list names (?repository=): 403 for one the caller may
// not see. An empty name lists every repository the caller may see.
func (s *Server) mayList(w http.ResponseWriter, caller config.APIUser, repository string) bool {
	if repository != "" && !caller.MayAccess(repository) {
		writeError(w, http.StatusForbidden, fmt.Sprintf("%s may not act on repository %s", caller.Name, repository))
		return false
	}
	return true
}

// Repository is a configured repository with its recorded pipelines.
type Repository struct {
	Name      string             `json:"name"`
	Pipelines []records.Pipeline `json:"pipelines"`
}

func (s *Server) listRepositories(w http.ResponseWriter, r *http.Request, caller config.APIUser) {
	ps, err := records.Pipelines(r.Context(), s.Reads, keepFor(caller), time.Now())
	if err != nil {
		s.fail(w, err, "list pipelines")
		return
	}
	names := slices.Clone(s.Repositories)
	for _, p := range ps {
		names = append(names, p.Repository)
	}
	slices.Sort(names)
	out := []Repository{}
	for _, name := range slices.Compact(names) {
		if !caller.MayAccess(name) {
			continue
		}
		repo := Repository{Name: name, Pipelines: []records.Pipeline{}}
		for _, p := range ps {
			if p.Repository == name {
				repo.Pipelines = append(repo.Pipelines, p)
			}
		}
		out = append(out, repo)
	}
	writeJSON(w, http.StatusOK, map[string]any{"repositories": out})
}

func (s *Server) listPipelines(w http.ResponseWriter, r *http.Request, caller config.APIUser) {
	repo := r.URL.Query().Get("repository")
	if !s.mayList(w, caller, repo) {
		return
	}
	ps, err := records.Pipelines(r.Context(), s.Reads, keepOnly(caller, repo, ""), time.Now())
	if err != nil {
		s.fail(w, err, "list pipelines")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"pipelines": ps})
}

func (s *Server) getPipeline(w http.ResponseWriter, r *http.Request, caller config.APIUser) {
	ref, ok := s.resolve(w, r, caller, r.URL.Query().Get("repository"))
	if !ok {
		return
	}
	p, err := records.PipelineOf(r.Context(), s.Reads, ref, time.Now())
	if err != nil {
		s.fail(w, err, "pipeline "+ref.Name)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

// runFilter reads the run list's query: status and trigger (repeated or comma-separated),
// since and until (RFC 3339), after (the previous page's next) and limit.
func runFilter(q url.Values) (store.RunFilter, error) {
	f := store.RunFilter{After: q.Get("after")}
	var err error
	if f.Statuses, f.Triggers, err = records.RunKinds(q["status"], q["trigger"]); err != nil {
		return f, err
	}
	for _, tv := range []struct {
		name string
		to   *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if v := q.Get(tv.name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return f, fmt.Errorf("%s %q: want an RFC 3339 time such as 2026-12-01T08:00:00Z", tv.name, v)
			}
			*tv.to = t
		}
	}
	if f.After != "" {
		if n, err := strconv.ParseInt(f.After, 10, 64); err != nil || n <= 0 {
			return f, fmt.Errorf("after %q is not a page's next", f.After)
		}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 || n > store.MaxRunPage {
			return f, fmt.Errorf("limit %q: want 1 to %d", v, store.MaxRunPage)
		}
		f.Limit = n
	}
	if f.Limit == 0 {
		f.Limit = defaultRunPage
	}
	return f, nil
}

// defaultRunPage is the page size of a run list that gives no limit.
const defaultRunPage = 50

// listRuns lists runs across pipelines: ?repository= and ?pipeline= narrow it.
func (s *Server) listRuns(w http.ResponseWriter, r *http.Request, caller config.APIUser) {
	q := r.URL.Query()
	f, err := runFilter(q)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	f.Repository, f.Pipeline = q.Get("repository"), q.Get("pipeline")
	if f.Pipeline != "" {
		ref, err := s.Triggers.Resolve(r.Context(), f.Repository, f.Pipeline)
		if err != nil {
			s.fail(w, err, "pipeline "+f.Pipeline)
			return
		}
		f.Repository = ref.Repository
	}
	if !s.mayList(w, caller, f.Repository) {
		return
	}
	s.writeRuns(w, r, caller, f)
}

// listPipelineRuns lists one pipeline's runs.
func (s *Server) listPipelineRuns(w http.ResponseWriter, r *http.Request, caller config.APIUser) {
	f, err := runFilter(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ref, ok := s.resolve(w, r, caller, r.URL.Query().Get("repository"))
	if !ok {
		return
	}
	f.Repository, f.Pipeline = ref.Repository, ref.Name
	s.writeRuns(w, r, caller, f)
}

func (s *Server) writeRuns(w http.ResponseWriter, r *http.Request, caller config.APIUser, f store.RunFilter) {
	list, err := records.Runs(r.Context(), s.Reads, f, keepFor(caller), time.Now())
	if err != nil {
		s.fail(w, err, "list runs")
		return
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *Server) getRun(w http.ResponseWriter, r *http.Request, caller config.APIUser) {
	if d, ok := s.runDetail(w, r, caller); ok {
		writeJSON(w, http.StatusOK, d)
	}
}

func (s *Server) listRunRevisions(w http.ResponseWriter, r *http.Request, caller config.APIUser) {
	if d, ok := s.runDetail(w, r, caller); ok {
		writeJSON(w, http.StatusOK, map[string]any{"revisions": d.Revisions})
	}
}

// runDetail reads the run a run's URL names; on false it has written the error.
func (s *Server) runDetail(w http.ResponseWriter, r *http.Request, caller config.APIUser) (records.RunDetail, bool) {
	ref, id, ok := s.runTarget(w, r, caller)
	if !ok {
		return records.RunDetail{}, false
	}
	d, err := records.RunDetailOf(r.Context(), s.Reads, ref, id, time.Now())
	if err != nil {
		s.fail(w, err, fmt.Sprintf("run %s #%d", ref.Name, id))
		return records.RunDetail{}, false
	}
	return d, true
}

// LogPage is the answer of GET .../logs.
type LogPage struct {
	Lines []records.Line `json:"lines"`
	// LastID is the afterId of the next call: the last line's ID (afterId when none came).
	LastID int64 `json:"lastId"`
	// Status is the run's when the lines were read; when it is final and Lines is shorter
	// than the limit, the log is complete.
	Status string `json:"status"`
	Final  bool   `json:"final"`
}

// maxLogPage is the most lines one GET .../logs returns.
const maxLogPage = 10000

// logQuery reads afterId, task (repeated) and limit.
func logQuery(q url.Values) (store.LogQuery, error) {
	lq := store.LogQuery{Tasks: q["task"], Limit: 1000}
	if v := q.Get("afterId"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return lq, fmt.Errorf("afterId %q: want a line ID (0 or more)", v)
		}
		lq.AfterID = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 || n > maxLogPage {
			return lq, fmt.Errorf("limit %q: want 1 to %d", v, maxLogPage)
		}
		lq.Limit = n
	}
	return lq, nil
}

func (s *Server) getLogs(w http.ResponseWriter, r *http.Request, caller config.APIUser) {
	lq, err := logQuery(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ref, id, ok := s.runTarget(w, r, caller)
	if !ok {
		return
	}
	// The status first: read after it, the lines of a final run are all there.
	run, err := s.Reads.GetRun(r.Context(), ref, id)
	if err != nil {
		s.fail(w, err, fmt.Sprintf("run %s #%d", ref.Name, id))
		return
	}
	lines, err := s.Reads.ReadLogs(r.Context(), ref, id, lq)
	if err != nil {
		s.fail(w, err, fmt.Sprintf("logs of %s #%d", ref.Name, id))
		return
	}
	page := LogPage{Lines: make([]records.Line, 0, len(lines)), LastID: lq.AfterID, Status: string(run.Status), Final: run.Status.Final()}
	for _, l := range lines {
		page.Lines = append(page.Lines, records.LineOf(l))
		page.LastID = l.ID
	}
	writeJSON(w, http.StatusOK, page)
}

func (s *Server) listDeployments(w http.ResponseWriter, r *http.Request, caller config.APIUser) {
	q := r.URL.Query()
	repo, name := q.Get("repository"), q.Get("pipeline")
	if !s.mayList(w, caller, repo) {
		return
	}
	ds, err := records.Deployments(r.Context(), s.Reads, keepOnly(caller, repo, name))
	if err != nil {
		s.fail(w, err, "list deployments")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"deployments": ds})
}

// DriftState is a pipeline's drift: its state at a glance and its recent events.
type DriftState struct {
	Repository string                   `json:"repository"`
	Pipeline   string                   `json:"pipeline"`
	Drift      string                   `json:"drift"`
	DriftAt    time.Time                `json:"driftAt,omitzero"`
	Events     []records.DriftEvent     `json:"events"`
	Revision   *records.CurrentRevision `json:"revision,omitempty"`
}

func (s *Server) getDrift(w http.ResponseWriter, r *http.Request, caller config.APIUser) {
	limit, err := limitParam(r.URL.Query(), 50, 1000)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ref, ok := s.resolve(w, r, caller, r.URL.Query().Get("repository"))
	if !ok {
		return
	}
	p, err := records.PipelineOf(r.Context(), s.Reads, ref, time.Now())
	if err != nil {
		s.fail(w, err, "pipeline "+ref.Name)
		return
	}
	events, err := records.DriftEvents(r.Context(), s.Reads, ref, limit)
	if err != nil {
		s.fail(w, err, "drift of "+ref.Name)
		return
	}
	writeJSON(w, http.StatusOK, DriftState{Repository: ref.Repository, Pipeline: ref.Name, Drift: p.Drift, DriftAt: p.DriftAt,
		Events: events, Revision: p.Revision})
}

func (s *Server) listApprovals(w http.ResponseWriter, r *http.Request, caller config.APIUser) {
	q := r.URL.Query()
	repo, name := q.Get("repository"), q.Get("pipeline")
	if !s.mayList(w, caller, repo) {
		return
	}
	runs, err := records.Approvals(r.Context(), s.Reads, keepOnly(caller, repo, name), time.Now())
	if err != nil {
		s.fail(w, err, "list approvals")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"runs": runs})
}

func (s *Server) listAudit(w http.ResponseWriter, r *http.Request, caller config.APIUser) {
	q := r.URL.Query()
	limit, err := limitParam(q, 100, 10000)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	f := store.AuditFilter{Pipeline: store.PipelineRef{Repository: q.Get("repository"), Name: q.Get("pipeline")}}
	if !s.mayList(w, caller, f.Pipeline.Repository) {
		return
	}
	entries, err := records.Audit(r.Context(), s.Reads, f, keepFor(caller), limit)
	if err != nil {
		s.fail(w, err, "list the audit log")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"entries": entries})
}

func limitParam(q url.Values, def, most int) (int, error) {
	v := q.Get("limit")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 || n > most {
		return 0, fmt.Errorf("limit %q: want 1 to %d", v, most)
	}
	return n, nil
}

// runActionTarget reads a run action's empty body and the run its URL names; on false it
// has written the error.
func (s *Server) runActionTarget(w http.ResponseWriter, r *http.Request, caller config.APIUser) (store.PipelineRef, int64, bool) {
	if !decodeBody(w, r, &struct{}{}) {
		return store.PipelineRef{}, 0, false
	}
	return s.runTarget(w, r, caller)
}

// rerunRun starts a new run of the commit run {id} ran.
func (s *Server) rerunRun(w http.ResponseWriter, r *http.Request, caller config.APIUser) {
	ref, id, ok := s.runActionTarget(w, r, caller)
	if !ok {
		return
	}
	run, err := s.Triggers.Rerun(r.Context(), ref, id, caller.Name)
	if err != nil {
		s.fail(w, err, fmt.Sprintf("re-run %s #%d", ref.Name, id))
		return
	}
	s.Metrics.Received(ref.Repository, "rerun")
	s.Log.WithField("pipeline", ref.Name).WithField("build_id", run.BuildID).WithField("parent", id).WithField("user", caller.Name).Info("re-run requested through the API")
	writeJSON(w, http.StatusCreated, RunOf(run))
}

// rollbackRun starts a run that re-applies what run {id} deployed.
func (s *Server) rollbackRun(w http.ResponseWriter, r *http.Request, caller config.APIUser) {
	ref, id, ok := s.runActionTarget(w, r, caller)
	if !ok {
		return
	}
	run, err := s.Triggers.Rollback(r.Context(), ref, id, caller.Name)
	if err != nil {
		s.fail(w, err, fmt.Sprintf("roll back %s to #%d", ref.Name, id))
		return
	}
	s.Log.WithField("pipeline", ref.Name).WithField("build_id", run.BuildID).WithField("to", id).WithField("user", caller.Name).Info("rollback requested through the API")
	writeJSON(w, http.StatusCreated, RunOf(run))
}
