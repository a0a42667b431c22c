package webui

import (
	"cmp"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/slipwayhq/slipway/config"
	"github.com/slipwayhq/slipway/policy"
	"github.com/slipwayhq/slipway/reconciler"
	"github.com/slipwayhq/slipway/render"
	"github.com/slipwayhq/slipway/store"
)

// RunsPageSize is how many runs one page of a pipeline's runs shows.
const RunsPageSize = 50

type pipelineRow struct {
	Ref       store.PipelineRef
	Suspended bool
	Last      *store.Run
	Drift     bool // the newest drift event is uncorrected drift
}

// pipelines: every pipeline the viewer may see, its last run and drift at a glance.
func (u *UI) pipelines(w http.ResponseWriter, r *http.Request, v viewer) {
	ctx := r.Context()
	ps, err := u.reads.ListPipelines(ctx)
	if err != nil {
		u.internal(w, r, v, err)
		return
	}
	var rows []pipelineRow
	for _, p := range ps {
		if !v.MayAccess(p.Ref.Repository) {
			continue
		}
		row := pipelineRow{Ref: p.Ref, Suspended: p.Suspended}
		runs, err := u.reads.ListRuns(ctx, p.Ref, 1)
		if err != nil {
			u.internal(w, r, v, err)
			return
		}
		if len(runs) == 1 {
			row.Last = &runs[0]
		}
		events, err := u.reads.ListDriftEvents(ctx, p.Ref, 1)
		if err != nil {
			u.internal(w, r, v, err)
			return
		}
		row.Drift = len(events) == 1 && (events[0].Action == store.DriftReported || events[0].Action == store.DriftCorrectionFailed)
		rows = append(rows, row)
	}
	u.render(w, r, v, http.StatusOK, "pipelines", "pipelines", "pipelines", rows)
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
	Runs  []store.Run
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
	page, err := u.reads.FindRuns(r.Context(), store.RunFilter{Repository: ref.Repository, Pipeline: ref.Name, After: after, Limit: RunsPageSize})
	if err != nil {
		if after != "" {
			u.fail(w, r, v, http.StatusBadRequest, "err_form")
			return
		}
		u.internal(w, r, v, err)
		return
	}
	u.render(w, r, v, http.StatusOK, "runs", "pipelines", ref.Name, runsView{Ref: ref, Runs: page.Runs, Next: page.Next, Paged: after != ""})
}

type stageView struct {
	Name  string
	Tasks []taskView
}

type taskView struct {
	store.Task
	Lines []store.LogLine
}

type runView struct {
	Run       store.Run
	Stages    []stageView
	RunLines  []store.LogLine // the run's own lines (task "")
	LastLine  int64
	Live      bool
	CanAnswer bool // the run waits and the viewer may answer
	MayAnswer bool // the viewer may answer this pipeline's gates
}

// run: the run's stages and tasks as a timeline, with their logs; live.js follows the
// rest while the run is not final.
func (u *UI) run(w http.ResponseWriter, r *http.Request, v viewer) {
	ref, id, ok := u.runTarget(w, r, v)
	if !ok {
		return
	}
	ctx := r.Context()
	run, err := u.reads.GetRun(ctx, ref, id)
	if errors.Is(err, store.ErrNotFound) {
		u.fail(w, r, v, http.StatusNotFound, "err_not_found")
		return
	}
	if err != nil {
		u.internal(w, r, v, err)
		return
	}
	tasks, err := u.reads.ListTasks(ctx, ref, id)
	if err != nil {
		u.internal(w, r, v, err)
		return
	}
	lines, err := u.reads.ReadLogs(ctx, ref, id, store.LogQuery{})
	if err != nil {
		u.internal(w, r, v, err)
		return
	}
	view := runView{Run: run, Live: !run.Status.Final(), MayAnswer: mayAnswer(v.APIUser, ref)}
	view.CanAnswer = view.MayAnswer && run.Status == store.RunAwaitingApproval
	byTask := map[string][]store.LogLine{}
	for _, l := range lines {
		byTask[l.Task] = append(byTask[l.Task], l)
		view.LastLine = max(view.LastLine, l.ID)
	}
	view.RunLines = byTask[""]
	for _, t := range tasks {
		if n := len(view.Stages); n == 0 || view.Stages[n-1].Name != t.Stage {
			view.Stages = append(view.Stages, stageView{Name: t.Stage})
		}
		st := &view.Stages[len(view.Stages)-1]
		st.Tasks = append(st.Tasks, taskView{Task: t, Lines: byTask[t.Name]})
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
	switch {
	case err == nil:
		u.log.WithFields(logrus.Fields{"user": v.Name, "pipeline": ref.Name, "build_id": id, "approve": approve}).Info("run answered through the web UI")
		http.Redirect(w, r, runPath(ref, id), http.StatusSeeOther)
	case errors.Is(err, policy.ErrNotApprover):
		u.failDetail(w, r, v, http.StatusForbidden, "err_role", err.Error())
	case errors.Is(err, reconciler.ErrNotAwaiting), errors.Is(err, reconciler.ErrNotActive):
		u.failDetail(w, r, v, http.StatusConflict, "err_not_waiting", err.Error())
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

// deployCell is what one pipeline runs on one cluster and namespace.
type deployCell struct {
	Task    string
	BuildID int64
	Status  store.RevisionStatus
	Images  []string
	Chart   string
	Since   time.Time
}

type deployRow struct {
	Ref   store.PipelineRef
	Cells [][]deployCell // by column; several tasks may deploy to one namespace
}

type deployView struct {
	Targets []string // cluster/namespace
	Rows    []deployRow
}

// deployments: the matrix of pipelines × cluster/namespace with what runs there now.
func (u *UI) deployments(w http.ResponseWriter, r *http.Request, v viewer) {
	revs, err := u.reads.CurrentRevisions(r.Context())
	if err != nil {
		u.internal(w, r, v, err)
		return
	}
	col := map[string]int{}
	var view deployView
	rows := map[store.PipelineRef]int{}
	revs = slices.DeleteFunc(revs, func(rev store.Revision) bool { return !v.MayAccess(rev.Pipeline.Repository) })
	for _, rev := range revs {
		t := rev.Cluster + "/" + rev.Namespace
		if _, ok := col[t]; !ok {
			col[t] = 0
			view.Targets = append(view.Targets, t)
		}
		if _, ok := rows[rev.Pipeline]; !ok {
			rows[rev.Pipeline] = 0
			view.Rows = append(view.Rows, deployRow{Ref: rev.Pipeline})
		}
	}
	slices.Sort(view.Targets)
	slices.SortFunc(view.Rows, func(a, b deployRow) int {
		return cmp.Or(cmp.Compare(a.Ref.Repository, b.Ref.Repository), cmp.Compare(a.Ref.Name, b.Ref.Name))
	})
	for i, t := range view.Targets {
		col[t] = i
	}
	for i := range view.Rows {
		rows[view.Rows[i].Ref] = i
		view.Rows[i].Cells = make([][]deployCell, len(view.Targets))
	}
	for _, rev := range revs {
		images, err := render.Images(rev.Objects)
		if err != nil {
			u.internal(w, r, v, err)
			return
		}
		cell := deployCell{Task: rev.Task, BuildID: rev.BuildID, Status: rev.Status, Images: images, Since: rev.CreatedAt}
		if rev.Chart != nil {
			cell.Chart = rev.Chart.Chart + "@" + rev.Chart.Version
		}
		row := &view.Rows[rows[rev.Pipeline]]
		c := col[rev.Cluster+"/"+rev.Namespace]
		row.Cells[c] = append(row.Cells[c], cell)
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

type approvalRow struct {
	Run       store.Run
	CanAnswer bool
}

// approvals: runs waiting at an approval gate.
func (u *UI) approvals(w http.ResponseWriter, r *http.Request, v viewer) {
	page, err := u.reads.FindRuns(r.Context(), store.RunFilter{Statuses: []store.RunStatus{store.RunAwaitingApproval}, Limit: store.MaxRunPage})
	if err != nil {
		u.internal(w, r, v, err)
		return
	}
	var rows []approvalRow
	for _, run := range page.Runs {
		if v.MayAccess(run.Pipeline.Repository) {
			rows = append(rows, approvalRow{Run: run, CanAnswer: mayAnswer(v.APIUser, run.Pipeline)})
		}
	}
	u.render(w, r, v, http.StatusOK, "approvals", "approvals", "approvals", rows)
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
