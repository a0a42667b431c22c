package pipeline

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/slipwayhq/slipway/pipeline/yamlstrict"
	"github.com/slipwayhq/slipway/render"
)

// environments checks the environments block: names, targets, variables, gates, windows.
func (v *validator) environments() {
	names := map[string]string{}
	for i, e := range v.p.Environments {
		f := yamlstrict.Index("environments", i)
		if v.dnsLabel(f+".name", "environment name", e.Name) {
			if first, dup := names[e.Name]; dup {
				v.at(f+".name", "environment name %q is already used at line %d", e.Name, v.p.Positions.Of(first).Line)
			} else {
				names[e.Name] = f + ".name"
			}
		}
		if e.Cluster != "" {
			v.cluster(f+".cluster", e.Cluster)
		}
		v.dnsLabel(f+".namespace", "namespace", e.Namespace)
		for _, k := range sortedKeys(e.Variables) {
			vf := yamlstrict.Join(f+".variables", k)
			if !hasKey(v.p.Variables, k) {
				v.atKey(vf, "environment variable %q is not declared in the pipeline's variables: declare it there with its default value", k)
				continue
			}
			refs, err := render.References(e.Variables[k])
			if err != nil {
				v.at(vf, "%v", err)
				continue
			}
			for _, ref := range refs {
				if !slices.Contains(builtins, ref.Name) && !ref.HasDefault {
					v.at(vf, "variable %q refers to ${%s}: variables may refer only to built-in variables (%s)", k, ref.Name, strings.Join(builtins, ", "))
				}
			}
		}
		if e.Approval != nil {
			v.approval(f+".approval", e.Approval)
		}
		for j, w := range e.Windows {
			v.window(yamlstrict.Index(f+".windows", j), w)
		}
	}
}

func (v *validator) window(f string, w Window) {
	spec := strings.TrimSpace(w.Cron)
	if spec != "" {
		if strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=") {
			v.at(f+".cron", "cron %q: set the time zone with timezone, not in the expression", w.Cron)
		} else if _, err := cronParser.Parse(spec); err != nil {
			v.at(f+".cron", "invalid cron expression %q: %v", w.Cron, err)
		}
	} else if v.written(f + ".cron") {
		v.at(f+".cron", "empty cron expression")
	}
	if v.written(f+".duration") && w.Duration.Duration == 0 {
		v.at(f+".duration", "duration must be greater than 0")
	}
	if w.Timezone != "" {
		if _, err := time.LoadLocation(w.Timezone); err != nil || w.Timezone == "Local" {
			v.at(f+".timezone", "unknown time zone %q: use an IANA name such as Asia/Shanghai or UTC", w.Timezone)
		}
	}
}

// environmentRef checks a deploy task's environment: it exists, it is not combined with a
// target of the task's own, and its gate does not clash with the stage's.
func (v *validator) environmentRef(f, name, cluster, namespace string) {
	if cluster != "" || v.written(f+".cluster") {
		v.at(f+".cluster", "give environment or cluster, not both: the environment %q sets the cluster", name)
	}
	if namespace != "" || v.written(f+".namespace") {
		v.at(f+".namespace", "give environment or namespace, not both: the environment %q sets the namespace", name)
	}
	e := v.p.Environment(name)
	if e == nil {
		known := make([]string, 0, len(v.p.Environments))
		for _, e := range v.p.Environments {
			known = append(known, e.Name)
		}
		msg := fmt.Sprintf("unknown environment %q: the pipeline's environments are %s", name, quoteList(known))
		if near := yamlstrict.Suggest(name, known); near != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", near)
		}
		v.at(f+".environment", "%s", msg)
		return
	}
	if e.Approval != nil && v.current != nil && v.current.Approval != nil {
		v.at(f+".environment", "environment %q has its own approval and so does stage %q: keep one (the environment's gate guards every deploy to it)", name, v.current.Name)
	}
}

// Environment is the pipeline's environment of that name, or nil.
func (p *Pipeline) Environment(name string) *Environment {
	for i := range p.Environments {
		if p.Environments[i].Name == name {
			return &p.Environments[i]
		}
	}
	return nil
}

// stageGates checks that a stage without an approval of its own deploys to at most one gated
// environment, whose gate then guards the stage.
func (v *validator) stageGates() {
	for i := range v.p.Stages {
		st := &v.p.Stages[i]
		if st.Approval != nil {
			continue
		}
		gated := map[string]bool{}
		var names []string
		for _, t := range st.Tasks {
			if e := v.p.Environment(t.EnvironmentName()); e != nil && e.Approval != nil && !gated[e.Name] {
				gated[e.Name] = true
				names = append(names, e.Name)
			}
		}
		if len(names) > 1 {
			v.at(yamlstrict.Index("stages", i)+".name", "stage %q deploys to environments %s, each with its own approval: put their deploys in separate stages", st.Name, quoteList(names))
		}
	}
}

// EnvironmentName is the environment a deploy task names, or "".
func (t *Task) EnvironmentName() string {
	switch {
	case t.DeployYAML != nil:
		return t.DeployYAML.Environment
	case t.DeployChart != nil:
		return t.DeployChart.Environment
	}
	return ""
}

// resolveEnvironments sets the cluster and namespace of every deploy task that names an
// environment, with the environment's positions, and puts a gated environment's approval in
// front of the stage deploying there, so that everything reading a task's target or a
// stage's gate (policy, runs, previews, approvals) reads one place. Call on a validated
// pipeline.
func (p *Pipeline) resolveEnvironments() {
	envField := map[string]string{}
	for i, e := range p.Environments {
		envField[e.Name] = yamlstrict.Index("environments", i)
	}
	var pos yamlstrict.Positions // unpacked once a task takes an environment's positions
	for i := range p.Stages {
		for j := range p.Stages[i].Tasks {
			t := &p.Stages[i].Tasks[j]
			e := p.Environment(t.EnvironmentName())
			if e == nil {
				continue
			}
			if p.Stages[i].Approval == nil && e.Approval != nil {
				p.Stages[i].Approval = e.Approval
			}
			switch {
			case t.DeployYAML != nil:
				t.DeployYAML.Cluster, t.DeployYAML.Namespace = e.Cluster, e.Namespace
			case t.DeployChart != nil:
				t.DeployChart.Cluster, t.DeployChart.Namespace = e.Cluster, e.Namespace
			}
			if pos == nil {
				pos = p.Positions.Unpack()
			}
			f := yamlstrict.Index(yamlstrict.Index("stages", i)+".tasks", j)
			for _, k := range []string{"cluster", "namespace"} {
				if loc, ok := pos[envField[e.Name]+"."+k]; ok {
					pos[f+"."+k] = loc
				}
			}
		}
	}
	if pos != nil {
		p.Positions = yamlstrict.Pack(pos)
	}
}

// ErrPromotion marks a promotion the pipeline cannot make: an unknown environment, the first
// one, or one whose predecessor no task deploys to.
var ErrPromotion = errors.New("cannot promote")

// Promotion is the pipeline a promotion to environment `to` runs: one stage, behind to's
// gate, holding a copy of every deploy task that deploys to the nearest environment before
// `to` that tasks name (runs deploy there; promotions carry those deploys along the list),
// retargeted to `to`. It returns the environment just before `to` too: the one the artifact
// must be healthy in. Call on a loaded (validated, resolved) pipeline.
func (p *Pipeline) Promotion(to string) (promoted *Pipeline, from string, err error) {
	idx := -1
	for i, e := range p.Environments {
		if e.Name == to {
			idx = i
		}
	}
	switch {
	case idx < 0:
		names := make([]string, 0, len(p.Environments))
		for _, e := range p.Environments {
			names = append(names, e.Name)
		}
		return nil, "", fmt.Errorf("%w to %q: pipeline %s has no such environment (its environments: %s)", ErrPromotion, to, p.Name, quoteList(names))
	case idx == 0:
		return nil, "", fmt.Errorf("%w to %q: it is pipeline %s's first environment; runs deploy there, promotions go from it to the next", ErrPromotion, to, p.Name)
	}
	target, from := &p.Environments[idx], p.Environments[idx-1].Name
	source := ""
	for i := idx - 1; i >= 0 && source == ""; i-- {
		for _, st := range p.Stages {
			for _, t := range st.Tasks {
				if t.EnvironmentName() == p.Environments[i].Name {
					source = p.Environments[i].Name
				}
			}
		}
	}
	out := *p
	in, pos := p.Positions.Unpack(), yamlstrict.Positions{}
	for k, loc := range in {
		if !strings.HasPrefix(k, "stages") {
			pos[k] = loc
		}
	}
	stage := Stage{Name: "promote-to-" + to, Approval: target.Approval}
	sf := yamlstrict.Index("stages", 0)
	pos[sf+".name"] = in[yamlstrict.Index("environments", idx)+".name"]
	for i := range p.Stages {
		for j, t := range p.Stages[i].Tasks {
			if source == "" || t.EnvironmentName() != source {
				continue
			}
			orig := yamlstrict.Index(yamlstrict.Index("stages", i)+".tasks", j)
			nf := yamlstrict.Index(sf+".tasks", len(stage.Tasks))
			for k, loc := range in {
				if rest, ok := strings.CutPrefix(k, orig); ok && (rest == "" || rest[0] == '.' || rest[0] == '[') {
					pos[nf+rest] = loc
				}
			}
			for _, k := range []string{"cluster", "namespace"} {
				pos[nf+"."+k] = in[yamlstrict.Index("environments", idx)+"."+k]
			}
			stage.Tasks = append(stage.Tasks, t.retarget(target))
		}
	}
	if len(stage.Tasks) == 0 {
		return nil, "", fmt.Errorf("%w to %q: no task of pipeline %s deploys to an environment before it", ErrPromotion, to, p.Name)
	}
	out.Stages = []Stage{stage}
	out.Positions = yamlstrict.Pack(pos)
	return &out, from, nil
}

// retarget is a copy of deploy task t deploying to environment e.
func (t Task) retarget(e *Environment) Task {
	switch {
	case t.DeployYAML != nil:
		d := *t.DeployYAML
		d.Environment, d.Cluster, d.Namespace = e.Name, e.Cluster, e.Namespace
		t.DeployYAML = &d
	case t.DeployChart != nil:
		d := *t.DeployChart
		d.Environment, d.Cluster, d.Namespace = e.Name, e.Cluster, e.Namespace
		t.DeployChart = &d
	}
	return t
}
