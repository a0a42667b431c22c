package preview

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/pmezard/go-difflib/difflib"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/slipwayhq/slipway/pipeline"
	"github.com/slipwayhq/slipway/policy"
	"github.com/slipwayhq/slipway/reconciler"
	"github.com/slipwayhq/slipway/reconciler/apply"
	"github.com/slipwayhq/slipway/store"
)

// Format is the comment of one preview: what the pull request changes in .pipeline.yaml,
// then per cluster and namespace every object a deploy would create, change (a diff of
// the live object and what the dry-run says it would become) or delete, then what would
// fail. Secret data and the pipelines' secret values are masked everywhere.
func Format(pv *reconciler.Preview) string {
	var b strings.Builder
	short := pv.Commit.ShortHash
	if pv.Failed() {
		fmt.Fprintf(&b, "### ❌ Slipway preview of %s: this head would fail\n\n", short)
	} else {
		fmt.Fprintf(&b, "### ✅ Slipway preview of %s\n\n", short)
	}
	b.WriteString("_Rendered as the next run after merging would render it and checked against the live clusters with a server-side dry-run. Nothing was applied, built or pushed._\n\n")

	b.WriteString("#### `.pipeline.yaml`\n\n")
	if d := fileDiff(pv.PipelineFileBase, pv.PipelineFileHead); d == "" {
		b.WriteString("Not changed by this pull request.\n\n")
	} else {
		b.WriteString("Changed by this pull request:\n\n```diff\n" + d + "```\n\n")
	}
	if pv.Invalid != nil {
		b.WriteString("#### ❌ The pipeline file is invalid\n\n```\n" + pv.Invalid.Error() + "\n```\n\nNothing else was previewed.\n")
		return pv.Mask(b.String())
	}

	var failures []string
	groups := map[groupKey][]line{}
	for _, pp := range pv.Pipelines {
		for _, t := range pp.Tasks {
			task := pp.Name + "/" + t.Name
			if t.Err != nil {
				failures = append(failures, fmt.Sprintf("**`%s`**:\n\n```\n%s\n```\n", task, t.Err))
			}
			for _, o := range t.Objects {
				k := groupKey{cluster: t.Cluster, namespace: o.Entry.Namespace}
				groups[k] = append(groups[k], line{task: task, object: o})
			}
			for _, e := range t.Pruned {
				k := groupKey{cluster: t.Cluster, namespace: e.Namespace}
				groups[k] = append(groups[k], line{task: task, pruned: e})
			}
		}
	}

	for _, pp := range pv.Pipelines {
		fmt.Fprintf(&b, "#### Pipeline `%s` (as BUILD_ID %d)\n\n", pp.Name, pp.BuildID)
		for _, t := range pp.Tasks {
			fmt.Fprintf(&b, "- `%s`", t.Name)
			if t.Type != "" {
				fmt.Fprintf(&b, " (%s, stage %s)", t.Type, t.Stage)
			}
			switch {
			case t.Err != nil:
				b.WriteString(": ❌ would fail, see below")
			case t.Image != "":
				fmt.Fprintf(&b, ": would push `%s`", t.Image)
			case t.Type == pipeline.TypeDeployYAML || t.Type == pipeline.TypeDeployChart:
				fmt.Fprintf(&b, ": %s", counts(t))
			}
			if t.Note != "" {
				fmt.Fprintf(&b, " (%s)", t.Note)
			}
			b.WriteString("\n")
		}
		b.WriteString("\n")
	}

	keys := make([]groupKey, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].cluster != keys[j].cluster {
			return keys[i].cluster < keys[j].cluster
		}
		return keys[i].namespace < keys[j].namespace
	})
	for _, k := range keys {
		writeGroup(&b, k, groups[k])
	}

	if len(failures) > 0 {
		b.WriteString("#### ❌ Would fail\n\n")
		for _, f := range failures {
			b.WriteString(f + "\n")
		}
	}
	return pv.Mask(b.String())
}

type groupKey struct{ cluster, namespace string }

// line is one object of a group: previewed, or (pruned set) would be deleted.
type line struct {
	task   string
	object apply.ObjectPreview
	pruned store.InventoryEntry
}

func (l line) isPruned() bool { return l.object.Outcome == "" }

// counts summarises a deploy task's objects.
func counts(t reconciler.TaskPreview) string {
	n := map[apply.Outcome]int{}
	for _, o := range t.Objects {
		n[o.Outcome]++
	}
	return fmt.Sprintf("%d created, %d changed, %d deleted, %d unchanged", n[apply.OutcomeCreated], n[apply.OutcomeChanged], len(t.Pruned), n[apply.OutcomeUnchanged])
}

func writeGroup(b *strings.Builder, k groupKey, lines []line) {
	ns := "namespace `" + k.namespace + "`"
	if k.namespace == "" {
		ns = "cluster-scoped"
	}
	fmt.Fprintf(b, "#### Cluster `%s`, %s\n\n", k.cluster, ns)
	sort.SliceStable(lines, func(i, j int) bool { return lineName(lines[i]) < lineName(lines[j]) })
	unchanged := 0
	for _, l := range lines {
		switch {
		case l.isPruned():
			fmt.Fprintf(b, "- 🗑️ **deleted** `%s` (would be pruned: task `%s` no longer renders it)\n", entryName(l.pruned), l.task)
		case l.object.Outcome == apply.OutcomeUnchanged:
			unchanged++
		case l.object.Outcome == apply.OutcomeCreated:
			fmt.Fprintf(b, "- ➕ **created** `%s` (%s, task `%s`)\n\n```yaml\n%s```\n\n", l.object.Object, where(l.object), l.task, objectYAML(masked(l.object.Merged, nil)))
		case l.object.Outcome == apply.OutcomeChanged:
			live, merged := masked(l.object.Live, nil), masked(l.object.Merged, l.object.Live)
			fmt.Fprintf(b, "- ✏️ **changed** `%s` (%s, task `%s`)\n\n```diff\n%s```\n\n", l.object.Object, where(l.object), l.task,
				fileDiff(objectYAML(live), objectYAML(merged)))
		}
	}
	if unchanged > 0 {
		fmt.Fprintf(b, "- %d %s unchanged\n", unchanged, plural(unchanged, "object", "objects"))
	}
	b.WriteString("\n")
}

func lineName(l line) string {
	if l.isPruned() {
		return entryName(l.pruned)
	}
	return l.object.Object
}

func entryName(e store.InventoryEntry) string {
	if e.Namespace != "" {
		return e.Kind + "/" + e.Namespace + "/" + e.Name
	}
	return e.Kind + "/" + e.Name
}

func where(o apply.ObjectPreview) string {
	if o.File == "" {
		return "rendered"
	}
	return fmt.Sprintf("%s, document %d", o.File, o.Doc)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// lastApplied is kubectl's copy of what it applied: noise in a diff, and for a Secret it
// holds the data in the clear.
const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"

// masked is o with, for a Secret, every data and stringData value replaced: "***", or
// "*** (changed)" where it differs from before (the live object, when o is what it would
// become), so a diff shows which keys change and never a value.
func masked(o, before *unstructured.Unstructured) *unstructured.Unstructured {
	if o == nil {
		return nil
	}
	c := o.DeepCopy()
	if a := c.GetAnnotations(); a[lastApplied] != "" {
		delete(a, lastApplied)
		c.SetAnnotations(a)
	}
	if c.GetKind() != "Secret" || c.GroupVersionKind().Group != "" {
		return c
	}
	for _, field := range []string{"data", "stringData"} {
		m, ok := c.Object[field].(map[string]any)
		if !ok {
			continue
		}
		var theirs map[string]any
		if before != nil {
			theirs, _ = before.Object[field].(map[string]any)
		}
		for k, v := range m {
			mask := "***"
			if theirs != nil {
				if tv, ok := theirs[k]; ok && fmt.Sprint(tv) != fmt.Sprint(v) {
					mask = "*** (changed)"
				}
			}
			m[k] = mask
		}
	}
	return c
}

func objectYAML(o *unstructured.Unstructured) string {
	if o == nil {
		return ""
	}
	y, err := yaml.Marshal(o.Object)
	if err != nil {
		return fmt.Sprintf("# cannot show the object: %v\n", err)
	}
	return string(y)
}

// fileDiff is a unified diff of two texts with 3 lines of context; "" when equal.
func fileDiff(from, to string) string {
	if from == to {
		return ""
	}
	d, err := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: difflib.SplitLines(from), B: difflib.SplitLines(to), Context: 3,
	})
	if err != nil {
		return fmt.Sprintf("cannot diff: %v\n", err)
	}
	// The @@ header lines stay; the ---/+++ file header lines say nothing here.
	var out []string
	for _, l := range strings.SplitAfter(d, "\n") {
		if strings.HasPrefix(l, "--- ") || strings.HasPrefix(l, "+++ ") {
			continue
		}
		out = append(out, l)
	}
	s := strings.Join(out, "")
	if s != "" && !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	return s
}

// Summary is the commit status description: what would fail first, naming the file:line
// of an invalid pipeline file or manifest, or the rule and object a policy denied; or the
// counts of changes.
func Summary(pv *reconciler.Preview) string {
	if pv.Invalid != nil {
		return pv.Mask(firstLine(pv.Invalid.Error()))
	}
	var created, changed, deleted int
	for _, pp := range pv.Pipelines {
		for _, t := range pp.Tasks {
			if t.Err != nil {
				return pv.Mask(taskFailure(t))
			}
			for _, o := range t.Objects {
				switch o.Outcome {
				case apply.OutcomeCreated:
					created++
				case apply.OutcomeChanged:
					changed++
				}
			}
			deleted += len(t.Pruned)
		}
	}
	return fmt.Sprintf("would create %d, change %d, delete %d objects", created, changed, deleted)
}

// taskFailure says in one line why a task would fail: a policy denial names its rule and
// object; anything else is the error's first line that names something.
func taskFailure(t reconciler.TaskPreview) string {
	prefix := "task " + t.Name + ": "
	if t.Type == "" {
		prefix = "" // the run's check before its first stage, not a task
	}
	var denied *policy.DeniedError
	if errors.As(t.Err, &denied) && len(denied.Denials) > 0 {
		return prefix + denied.Denials[0].String()
	}
	var dry *apply.DryRunError
	if errors.As(t.Err, &dry) && len(dry.Errs) > 0 {
		return prefix + dry.Errs[0].Error()
	}
	return prefix + firstLine(t.Err.Error())
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}
