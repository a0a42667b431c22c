package webui

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"

	"github.com/sirupsen/logrus"

	"github.com/slipwayhq/slipway/config"
	"github.com/slipwayhq/slipway/policy"
	"github.com/slipwayhq/slipway/reconciler"
	"github.com/slipwayhq/slipway/reconciler/trigger"
	"github.com/slipwayhq/slipway/server/records"
	"github.com/slipwayhq/slipway/store"
)

// RunsPageSize is how many runs one page of a pipeline's runs shows.
const RunsPageSize = 50

// pipelines: every pipeline the viewer may see, its last run and drift at a glance.
func (u *UI) pipelines(w http.ResponseWriter, r *http.Request, v viewer) {
	ps, err := records.Pipelines(r.Context(), u.reads, v.keep(), u.now())
	if err != nil {
		u.internal(w, r, v, err)
		return
	}
	u.render(w, r, v, http.StatusOK, "pipelines", "pipelines", "pipelines", ps)
}

// target reads the pipeline a URL names and checks the viewer may see it.
func (u *UI) target(w http.ResponseWriter, r *http.Request, v viewer) (store.PipelineRef, bool) {
	ref := store.PipelineRef{Repository: r.PathValue("repository"), Name: r.PathValue("pipeline")}
	if !v.MayAccess(ref.Repository) {
		u.fail(w, r, v, http.StatusForbidden, "err_repository")
		return ref, false
	}
	return ref, true
}

func (u *UI) runTarget(w http.ResponseWriter, r *http.Request, v viewer) (store.PipelineRef, int64, bool) {
	ref, ok := u.target(w, r, v)
	if !ok {
		return ref, 0, false
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		u.fail(w, r, v, http.StatusNotFound, "err_not_found")
		return ref, 0, false
	}
	return ref, id, true
}

type runsView struct {
	Ref   store.PipelineRef
	Runs  []records.Run
	Next  string
	Paged bool // not the first page
}

// runs: a pipeline's runs (运行记录), newest first, a page at a time.
func (u *UI) runs(w http.ResponseWriter, r *http.Request, v viewer) {
	ref, ok := u.target(w, r, v)
	if !ok {
		return
	}
	after := r.URL.Query().Get("after")
	list, err := records.Runs(r.Context(), u.reads, store.RunFilter{Repository: ref.Repository, Pipeline: ref.Name, After: after, Limit: RunsPageSize}, v.keep(), u.now())
	if err != nil {
		if after != "" {
			u.fail(w, r, v, http.StatusBadRequest, "err_form")
			return
		}
		u.internal(w, r, v, err)
		return
	}
	u.render(w, r, v, http.StatusOK, "runs", "pipelines", ref.Name, runsView{Ref: ref, Runs: list.Runs, Next: list.Next, Paged: after != ""})
}

type runView struct {
	records.RunDetail
	Lines     map[string][]store.LogLine // by task; "" the run's own lines
	LastLine  int64
	Live      bool
	CanAnswer bool // the run waits and the viewer may answer
	MayAnswer bool // the viewer may answer this pipeline's gates
}

// run: the run's stages and tasks as a timeline, with their logs and what it deployed;
// live.js follows the rest while the run is not final.
func (u *UI) run(w http.ResponseWriter, r *http.Request, v viewer) {
	ref, id, ok := u.runTarget(w, r, v)
	if !ok {
		return
	}
	ctx := r.Context()
	detail, err := records.RunDetailOf(ctx, u.reads, ref, id, u.now())
	if errors.Is(err, store.ErrNotFound) {
		u.fail(w, r, v, http.StatusNotFound, "err_not_found")
		return
	}
	if err != nil {
		u.internal(w, r, v, err)
		return
	}
	lines, err := u.reads.ReadLogs(ctx, ref, id, store.LogQuery{})
	if err != nil {
		u.internal(w, r, v, err)
		return
	}
	status := store.RunStatus(detail.Status)
	view := runView{RunDetail: detail, Lines: map[string][]store.LogLine{}, Live: !status.Final(), MayAnswer: mayAnswer(v.APIUser, ref)}
	view.CanAnswer = view.MayAnswer && status == store.RunAwaitingApproval
	for _, l := range lines {
		view.Lines[l.Task] = append(view.Lines[l.Task], l)
		view.LastLine = max(view.LastLine, l.ID)
	}
	u.render(w, r, v, http.StatusOK, "run", "pipelines", ref.Name+" #"+strconv.FormatInt(id, 10), view)
}

// mayAnswer: the buttons show for approvers of the repository; the gate still checks the
// stage's own list of approvers when the answer arrives.
func mayAnswer(u config.APIUser, ref store.PipelineRef) bool {
	return u.HasRole(config.RoleApprover) && u.MayAccess(ref.Repository)
}

func (u *UI) approve(w http.ResponseWriter, r *http.Request, v viewer) { u.answer(w, r, v, true) }
func (u *UI) reject(w http.ResponseWriter, r *http.Request, v viewer)  { u.answer(w, r, v, false) }

// answer hands an approval or rejection to the trigger hub, as the API's approve does.
func (u *UI) answer(w http.ResponseWriter, r *http.Request, v viewer, approve bool) {
	ref, id, ok := u.runTarget(w, r, v)
	if !ok {
		return
	}
	if !mayAnswer(v.APIUser, ref) {
		u.log.WithFields(logrus.Fields{"user": v.Name, "pipeline": ref.Name, "build_id": id}).Warn("web UI: answer refused: not an approver")
		u.fail(w, r, v, http.StatusForbidden, "err_role")
		return
	}
	err := u.answers.Approve(r.Context(), ref, id, v.Name, approve, r.PostForm.Get("comment"))
	var pending *trigger.PendingError
	switch {
	case err == nil:
		u.log.WithFields(logrus.Fields{"user": v.Name, "pipeline": ref.Name, "build_id": id, "approve": approve}).Info("run answered through the web UI")
		http.Redirect(w, r, runPath(ref, id), http.StatusSeeOther)
	case errors.Is(err, policy.ErrNotApprover):
		u.failDetail(w, r, v, http.StatusForbidden, "err_role", err.Error())
	case errors.Is(err, reconciler.ErrNotAwaiting), errors.Is(err, reconciler.ErrNotActive), errors.Is(err, store.ErrRunEnded):
		u.failDetail(w, r, v, http.StatusConflict, "err_not_waiting", err.Error())
	case errors.As(err, &pending):
		// Recorded for the process running the run, which has not taken it yet.
		u.log.WithFields(logrus.Fields{"user": v.Name, "pipeline": ref.Name, "build_id": id, "request": pending.Request.ID}).Warn(err.Error())
		u.failDetail(w, r, v, http.StatusAccepted, "err_pending", err.Error())
	case errors.Is(err, store.ErrNotFound):
		u.fail(w, r, v, http.StatusNotFound, "err_not_found")
	default:
		u.internal(w, r, v, err)
	}
}

func (u *UI) failDetail(w http.ResponseWriter, r *http.Request, v viewer, status int, key, detail string) {
	u.render(w, r, v, status, "error", "", u.labels.label(v.lang, key), errorView{Status: status, Key: key, Detail: detail})
}

func runPath(ref store.PipelineRef, id int64) string {
	return Prefix + "p/" + ref.Repository + "/" + ref.Name + "/runs/" + strconv.FormatInt(id, 10)
}

type deployRow struct {
	Repository, Pipeline string
	Cells                [][]records.Deployment // by column; several tasks may deploy to one namespace
}

type deployView struct {
	Targets []string // cluster/namespace
	Rows    []deployRow
}

// deployments: the matrix of pipelines × cluster/namespace with what runs there now.
func (u *UI) deployments(w http.ResponseWriter, r *http.Request, v viewer) {
	deps, err := records.Deployments(r.Context(), u.reads, v.keep())
	if err != nil {
		u.internal(w, r, v, err)
		return
	}
	var view deployView
	col := map[string]int{}
	for _, d := range deps {
		if _, ok := col[d.Cluster+"/"+d.Namespace]; !ok {
			col[d.Cluster+"/"+d.Namespace] = 0
			view.Targets = append(view.Targets, d.Cluster+"/"+d.Namespace)
		}
	}
	slices.Sort(view.Targets)
	for i, t := range view.Targets {
		col[t] = i
	}
	// Deployments come sorted by repository and pipeline, so a pipeline's are together.
	for _, d := range deps {
		n := len(view.Rows)
		if n == 0 || view.Rows[n-1].Repository != d.Repository || view.Rows[n-1].Pipeline != d.Pipeline {
			view.Rows = append(view.Rows, deployRow{Repository: d.Repository, Pipeline: d.Pipeline, Cells: make([][]records.Deployment, len(view.Targets))})
		}
		row := &view.Rows[len(view.Rows)-1]
		c := col[d.Cluster+"/"+d.Namespace]
		row.Cells[c] = append(row.Cells[c], d)
	}
	u.render(w, r, v, http.StatusOK, "deployments", "deployments", "deployed_where", view)
}

type driftRow struct {
	store.DriftEvent
	Patch string // indented
}

// DriftEventsShown is how many drift events per pipeline the drift page shows.
const DriftEventsShown = 50

// drift: the drift events of every pipeline the viewer may see, newest first, with the
// patch back to the desired state and the field manager that made the change.
func (u *UI) drift(w http.ResponseWriter, r *http.Request, v viewer) {
	ctx := r.Context()
	ps, err := u.reads.ListPipelines(ctx)
	if err != nil {
		u.internal(w, r, v, err)
		return
	}
	var rows []driftRow
	for _, p := range ps {
		if !v.MayAccess(p.Ref.Repository) {
			continue
		}
		events, err := u.reads.ListDriftEvents(ctx, p.Ref, DriftEventsShown)
		if err != nil {
			u.internal(w, r, v, err)
			return
		}
		for _, e := range events {
			rows = append(rows, driftRow{DriftEvent: e, Patch: indentJSON(e.Patch)})
		}
	}
	slices.SortStableFunc(rows, func(a, b driftRow) int { return b.DetectedAt.Compare(a.DetectedAt) })
	u.render(w, r, v, http.StatusOK, "drift", "drift", "drift", rows)
}

func indentJSON(s string) string {
	if s == "" {
		return ""
	}
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return s
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return s
	}
	return string(b)
}

type approvalsView struct {
	Runs []records.Run
	// MayAnswer: the viewer may answer gates of these repositories.
	MayAnswer map[string]bool
}

// approvals: runs waiting at an approval gate.
func (u *UI) approvals(w http.ResponseWriter, r *http.Request, v viewer) {
	runs, err := records.Approvals(r.Context(), u.reads, v.keep(), u.now())
	if err != nil {
		u.internal(w, r, v, err)
		return
	}
	view := approvalsView{Runs: runs, MayAnswer: map[string]bool{}}
	for _, run := range runs {
		view.MayAnswer[run.Repository] = mayAnswer(v.APIUser, store.PipelineRef{Repository: run.Repository, Name: run.Pipeline})
	}
	u.render(w, r, v, http.StatusOK, "approvals", "approvals", "approvals", view)
}

// AuditShown is how many audit entries the audit page shows.
const AuditShown = 200

// audit: the newest entries of the audit log.
func (u *UI) audit(w http.ResponseWriter, r *http.Request, v viewer) {
	entries, err := u.reads.ListAudit(r.Context(), store.AuditFilter{Limit: AuditShown})
	if err != nil {
		u.internal(w, r, v, err)
		return
	}
	entries = slices.DeleteFunc(entries, func(e store.AuditEntry) bool {
		return e.Pipeline.Repository != "" && !v.MayAccess(e.Pipeline.Repository)
	})
	u.render(w, r, v, http.StatusOK, "audit", "audit", "audit", entries)
}
