package pipeline

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"github.com/Masterminds/semver/v3"
	"github.com/google/go-containerregistry/pkg/name"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/slipwayhq/slipway/internal/repofs"
	"github.com/slipwayhq/slipway/pipeline/diag"
	"github.com/slipwayhq/slipway/pipeline/yamlstrict"
	"github.com/slipwayhq/slipway/render"
	"github.com/slipwayhq/slipway/render/kustomize"
)

// placeholderRegistry completes image references for checking when no registry is known.
const placeholderRegistry = "registry.invalid"

// task checks one task and returns what later tasks may use from it.
func (v *validator) task(f string, t *Task, stage int, s *Stage) taskInfo {
	info := taskInfo{typ: t.Type, stage: stage, outputs: Outputs(t.Type)}
	part := t.Part()
	if part == nil {
		return info // unknown or missing type: already reported
	}
	v.current = s
	v.references(f, part, s)
	vars := v.sampleVars()
	switch {
	case t.BuildImage != nil:
		info.samples = v.buildImage(f, t.BuildImage, vars)
	case t.PublishChart != nil:
		info.samples = v.publishChart(f, t.PublishChart, vars)
	case t.DeployYAML != nil:
		v.deployYAML(f, t.DeployYAML)
	case t.DeployChart != nil:
		v.deployChart(f, t.DeployChart, vars)
	case t.Script != nil:
		info.outputs, info.samples = v.script(f, t.Script, vars)
	}
	return info
}

// sampleVars resolves every name that is in scope to a stand-in value, so that substituted
// fields can be checked for form (a tag, a SemVer) before any run.
func (v *validator) sampleVars() render.Vars {
	m := render.Map(sampleBuiltins(v.p.Name))
	for k, val := range v.p.Variables {
		if s, err := render.Substitute(val, m); err == nil {
			m[k] = s
		} else {
			m[k] = "x"
		}
	}
	for k := range v.secrets {
		m[k] = "secret"
	}
	for name, info := range v.tasks {
		for out, sample := range info.samples {
			m["tasks."+name+"."+out] = sample
		}
	}
	return m
}

// subst substitutes sample values into a field already checked by references. ok is false
// when the field has a problem that is already reported.
func subst(s string, vars render.Vars) (string, bool) {
	out, err := render.Substitute(s, vars)
	return out, err == nil
}

// references walks the fields of a task part: in fields tagged subst every ${...} must
// resolve; other fields (except raw text such as a script) must not contain ${ at all.
func (v *validator) references(f string, part any, s *Stage) {
	rv := reflect.ValueOf(part).Elem()
	rt := rv.Type()
	for i := range rt.NumField() {
		sf := rt.Field(i)
		key, _ := yamlstrict.YAMLKey(sf)
		field := yamlstrict.Join(f, key)
		substituted := sf.Tag.Get("subst") == "true"
		fixed := sf.Tag.Get("subst") == "fixed"
		if key == "script" {
			continue // shell text: ${X} there is the shell's, fed from the environment
		}
		walkStrings(rv.Field(i), field, func(at, s2 string) {
			if substituted {
				v.refsIn(at, s2, s)
			} else if fixed {
				v.fixedRefs(at, s2)
			} else if strings.Contains(s2, "${") {
				v.at(at, "%s does not take ${...} references", lastSegment(field))
			}
		})
	}
}

// walkStrings calls fn for every string inside v (strings, lists, maps, free-form values)
// with the field path it was written at.
func walkStrings(v reflect.Value, field string, fn func(field, s string)) {
	switch v.Kind() {
	case reflect.String:
		fn(field, v.String())
	case reflect.Slice:
		for i := range v.Len() {
			walkStrings(v.Index(i), yamlstrict.Index(field, i), fn)
		}
	case reflect.Map:
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
		for _, k := range keys {
			walkStrings(v.MapIndex(k), yamlstrict.Join(field, k.String()), fn)
		}
	case reflect.Interface, reflect.Pointer:
		if !v.IsNil() {
			walkStrings(v.Elem(), field, fn)
		}
	}
}

// fixedRefs checks a field that takes only references fixed in the pipeline file: the
// pipeline's own variables whose values hold no reference (so a path chosen by one is as
// fixed, and as reviewed, as a path written out).
func (v *validator) fixedRefs(field, s string) {
	if _, msg := v.fixed(s, ""); msg != "" {
		v.at(field, "%s", msg)
	}
}

// fixed substitutes the pipeline's fixed variables, with the values of the task's
// environment env where it sets them, and ENVIRONMENT (env's name), into s, or explains why
// it cannot.
func (v *validator) fixed(s, env string) (string, string) {
	refs, err := render.References(s)
	if err != nil {
		return "", err.Error()
	}
	values := map[string]string{}
	for k, val := range v.p.Variables {
		values[k] = val
	}
	if e := v.p.Environment(env); e != nil {
		for k, val := range e.Variables {
			if _, declared := values[k]; declared {
				values[k] = val
			}
		}
	}
	for _, ref := range refs {
		val, ok := values[ref.Name]
		switch {
		case ref.Name == "ENVIRONMENT":
		case !ok && ref.HasDefault:
		case !ok:
			return "", fmt.Sprintf("only the pipeline's variables, whose values are fixed in this file, may be referenced here; %q is not one", ref.Name)
		case strings.Contains(val, "${"):
			return "", fmt.Sprintf("variable %q has a reference in its value: only variables whose values are fixed in this file may choose a path", ref.Name)
		}
	}
	vars := render.Map{"ENVIRONMENT": env}
	for k, val := range values {
		vars[k] = val
	}
	out, err := render.Substitute(s, vars)
	if err != nil {
		return "", err.Error()
	}
	return out, ""
}

// refsIn checks that every ${...} in s resolves at this point of the pipeline.
func (v *validator) refsIn(field, s string, stage *Stage) {
	refs, err := render.References(s)
	if err != nil {
		v.at(field, "%v", err)
		return
	}
	for _, ref := range refs {
		if msg := v.resolve(ref, stage); msg != "" {
			v.at(field, "%s", msg)
		}
	}
}

// resolve explains why a reference does not resolve, or returns "".
func (v *validator) resolve(ref render.Ref, stage *Stage) string {
	n := ref.Name
	if slices.Contains(builtins, n) || hasKey(v.p.Variables, n) || v.secrets[n] {
		return ""
	}
	if rest, ok := strings.CutPrefix(n, "tasks."); ok {
		task, out, ok := strings.Cut(rest, ".")
		if !ok || task == "" || out == "" || strings.Contains(out, ".") {
			return fmt.Sprintf("${%s}: task outputs are written ${tasks.<task>.<output>}", n)
		}
		info, earlier := v.tasks[task]
		if !earlier {
			if ref.HasDefault {
				return ""
			}
			return v.laterTask(n, task, stage)
		}
		outs := info.outputs
		if info.typ == "" {
			return "" // that task's type is wrong and already reported
		}
		if !slices.Contains(outs, out) {
			if len(outs) == 0 && info.typ == TypeScript {
				return fmt.Sprintf("${%s}: script task %q declares no outputs; list %q in its outputs", n, task, out)
			}
			if len(outs) == 0 {
				return fmt.Sprintf("${%s}: a %s task has no outputs", n, info.typ)
			}
			if info.typ == TypeScript {
				return fmt.Sprintf("${%s}: script task %q does not declare output %q; it declares %s", n, task, out, strings.Join(outs, ", "))
			}
			return fmt.Sprintf("${%s}: a %s task has no output %q; it has %s", n, info.typ, out, strings.Join(outs, ", "))
		}
		return ""
	}
	if ref.HasDefault {
		return ""
	}
	known := append(Builtins(), sortedKeys(v.p.Variables)...)
	known = append(known, sortedKeys(v.secrets)...)
	msg := fmt.Sprintf("undefined variable ${%s}: not a built-in variable, a declared variable or a secret", n)
	if near := yamlstrict.Suggest(n, known); near != "" {
		msg += fmt.Sprintf(" (did you mean ${%s}?)", near)
	}
	return msg
}

// laterTask explains a reference to a task whose outputs are not available yet.
func (v *validator) laterTask(ref, task string, stage *Stage) string {
	for i := range v.p.Stages {
		s := &v.p.Stages[i]
		for _, t := range s.Tasks {
			if t.Name != task {
				continue
			}
			if s == stage && stage.Parallel {
				return fmt.Sprintf("${%s}: task %q runs in parallel with this one (stage %q is parallel)", ref, task, stage.Name)
			}
			return fmt.Sprintf("${%s}: task %q runs later; only outputs of earlier tasks can be used", ref, task)
		}
	}
	return fmt.Sprintf("${%s}: no task %q in this pipeline", ref, task)
}

func (v *validator) buildImage(f string, b *BuildImageTask, vars render.Vars) map[string]string {
	if v.repoPath(f+".dockerfile", b.Dockerfile) {
		v.exists(f+".dockerfile", b.Dockerfile, fileEntry)
	}
	if b.Context != "" || v.written(f+".context") {
		if v.repoPath(f+".context", b.Context) {
			v.exists(f+".context", b.Context, dirEntry)
		}
	}
	registry, regOK := subst(b.Registry, vars)
	switch {
	case !regOK:
	case registry == "" && v.opts.Env != nil && v.opts.Env.DefaultRegistry() == "":
		v.at(f, "no registry for image %q: set registry here or registry.default in slipway.yaml", b.Image)
		regOK = false
	case registry == "" && v.opts.Env != nil:
		registry = v.opts.Env.DefaultRegistry()
	case registry == "":
		registry = placeholderRegistry
	default:
		if _, err := name.NewRegistry(registry, name.StrictValidation); err != nil || strings.Contains(registry, "/") {
			v.at(f+".registry", "registry %q must be a host name with an optional port, such as hub.example.com:5000", registry)
			regOK = false
		}
	}
	repoOK := true
	if b.Workspace != "" && !imagePath.MatchString(b.Workspace) {
		v.at(f+".workspace", "workspace %q must be lowercase letters, digits and . _ - separators, with / between levels", b.Workspace)
		repoOK = false
	}
	if b.Image != "" && !imagePath.MatchString(b.Image) {
		v.at(f+".image", "image %q must be lowercase letters, digits and . _ - separators, with / between levels; put the registry in registry and the tag in tag", b.Image)
		repoOK = false
	}
	repo := path.Join(b.Workspace, b.Image)
	sample := ""
	if regOK && repoOK && b.Image != "" {
		if _, err := name.NewRepository(registry+"/"+repo, name.StrictValidation); err != nil {
			v.at(f+".image", "image %q: %v", registry+"/"+repo, err)
		}
	}
	tags := append([]string{b.Tag}, b.ExtraTags...)
	for i, tag := range tags {
		tf := f + ".tag"
		if i > 0 {
			tf = yamlstrict.Index(f+".extraTags", i-1)
		}
		t, ok := subst(tag, vars)
		if !ok || (tag == "" && !v.written(tf)) {
			continue
		}
		if _, err := name.NewTag("registry.invalid/x:"+t, name.StrictValidation); err != nil || strings.Contains(t, ":") {
			v.at(tf, "tag %q (with ${BUILD_ID}=%s) is not a valid image tag: up to 128 letters, digits, '_', '.', '-', not starting with '.' or '-'", tag, SampleBuildID)
		} else if i == 0 {
			sample = registry + "/" + repo + ":" + t
		}
	}
	for _, k := range sortedKeys(b.BuildArgs) {
		if !identifier.MatchString(k) {
			v.atKey(yamlstrict.Join(f+".buildArgs", k), "build argument name %q: use letters, digits and _, not starting with a digit", k)
		}
	}
	if b.Platform != "" && !platformRE.MatchString(b.Platform) {
		v.at(f+".platform", "platform %q must be os/arch or os/arch/variant, such as linux/amd64 or linux/arm64/v8", b.Platform)
	}
	if v.written(f+".target") && (b.Target == "" || strings.ContainsAny(b.Target, " \t/:")) {
		v.at(f+".target", "target %q is not a Dockerfile stage name", b.Target)
	}
	if b.Keep < 0 {
		v.at(f+".keep", "keep must be 0 (keep every tag) or more")
	}
	if sample == "" {
		sample = placeholderRegistry + "/sample:1"
	}
	return map[string]string{"image": sample, "digest": "sha256:" + strings.Repeat("0", 64)}
}

func (v *validator) semver(field, raw, what string, vars render.Vars) string {
	s, ok := subst(raw, vars)
	if !ok || raw == "" {
		return ""
	}
	if _, err := semver.StrictNewVersion(s); err != nil {
		shown := fmt.Sprintf("%q", raw)
		if s != raw {
			shown = fmt.Sprintf("%q (%q with ${BUILD_ID}=%s)", raw, s, SampleBuildID)
		}
		v.at(field, "%s %s is not a SemVer 2 version such as 6.0.1-alpha.%s: %v", what, shown, SampleBuildID, err)
		return ""
	}
	return s
}

func (v *validator) chartName(field, c string) {
	if c != "" && (len(c) > 250 || !dnsLabelLoose(c)) {
		v.at(field, "chart name %q: use lowercase letters, digits and '-', starting with a letter or digit", c)
	}
}

func dnsLabelLoose(s string) bool {
	for i, c := range s {
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || (i > 0 && (c == '-' || c == '_'))
		if !ok {
			return false
		}
	}
	return s != ""
}

func (v *validator) publishChart(f string, c *PublishChartTask, vars render.Vars) map[string]string {
	dirOK := v.repoPath(f+".chartDir", c.ChartDir)
	if dirOK {
		if _, ok := v.exists(f+".chartDir", c.ChartDir, dirEntry); ok {
			if _, ok := v.exists(f+".chartDir", path.Join(c.ChartDir, "Chart.yaml"), fileEntry); ok {
				v.chartFiles(f+".chartDir", c.ChartDir)
			}
		}
	}
	v.chartName(f+".chart", c.Chart)
	version := v.semver(f+".version", c.Version, "version", vars)
	// appVersion is free text: its references are checked above and any value is valid.
	if c.Repository != "" {
		v.ociRepository(f+".repository", c.Repository)
	} else if v.opts.Env != nil && v.opts.Env.ChartRepository() == "" {
		v.at(f, "no chart repository for chart %q: set repository here or charts.repository in slipway.yaml", c.Chart)
	}
	files := c.Substitute
	fields := make([]string, len(files))
	for i := range files {
		fields[i] = yamlstrict.Index(f+".substitute", i)
	}
	if !v.written(f + ".substitute") {
		files, fields = []string{"values.yaml"}, []string{f + ".chartDir"}
	}
	for i, file := range files {
		if !v.repoPath(fields[i], file) || !dirOK {
			continue
		}
		full := path.Join(c.ChartDir, file)
		if escapes(full) || !strings.HasPrefix(full+"/", path.Clean(c.ChartDir)+"/") && path.Clean(c.ChartDir) != "." {
			v.at(fields[i], "substitute %q points outside chartDir", file)
			continue
		}
		if v.opts.Repo == nil {
			continue
		}
		if !v.written(f + ".substitute") {
			if _, err := v.opts.Repo.Stat(full); errors.Is(err, fs.ErrNotExist) {
				continue // no values.yaml is fine when it is only the default
			}
		}
		if ext := path.Ext(file); ext != ".yaml" && ext != ".yml" {
			v.at(fields[i], "substitute %q: only YAML files (.yaml, .yml) are substituted, value by value; other files are not supported yet", file)
			continue
		}
		if _, ok := v.exists(fields[i], full, fileEntry); ok {
			for _, ref := range v.fileRefs(full) {
				if v.secrets[ref.Name] && !c.PackageSecrets {
					v.at(fields[i], "%s:%d:%d uses secret ${%s}: a published chart is readable by anyone who can pull it; set packageSecrets: true to publish the value anyway",
						full, ref.Line, ref.Column, ref.Name)
				}
			}
		}
	}
	if version == "" {
		version = "0.0.0-sample"
	}
	return map[string]string{"version": version, "digest": "sha256:" + strings.Repeat("0", 64)}
}

func (v *validator) deployTarget(f string, typ TaskType, environment, cluster, namespace string) {
	if environment != "" || v.written(f+".environment") {
		v.environmentRef(f, environment, cluster, namespace)
		return
	}
	if cluster == "" && !v.written(f+".cluster") {
		v.at(f, "missing required field \"cluster\" for type %s (or environment)", typ)
	}
	if namespace == "" && !v.written(f+".namespace") {
		v.at(f, "missing required field \"namespace\" for type %s (or environment)", typ)
	}
	if cluster != "" || v.written(f+".cluster") {
		v.cluster(f+".cluster", cluster)
	}
	if namespace != "" || v.written(f+".namespace") {
		v.dnsLabel(f+".namespace", "namespace", namespace)
	}
}

func (v *validator) driftIgnore(f string, rules []DriftIgnore) {
	for i, r := range rules {
		rf := yamlstrict.Index(f+".driftIgnore", i)
		if r.Kind != "" && !kindRE.MatchString(r.Kind) {
			v.at(rf+".kind", "kind %q must be a Kubernetes kind such as Deployment", r.Kind)
		}
		if r.Paths != nil && len(r.Paths) == 0 {
			v.at(rf+".paths", "paths must list at least one JSON pointer")
		}
		for j, p := range r.Paths {
			if !strings.HasPrefix(p, "/") {
				v.at(yamlstrict.Index(rf+".paths", j), "%q is not a JSON pointer: it must start with /, such as /spec/replicas", p)
			}
		}
	}
}

func (v *validator) deployYAML(f string, d *DeployYAMLTask) {
	// A path chosen by variables is checked as the run will see it. What the pipeline's own
	// values get wrong is reported with the other references; what an environment's values
	// get wrong, here.
	p, msg := v.fixed(d.Path, d.Environment)
	if _, base := v.fixed(d.Path, ""); msg != "" && base == "" {
		v.at(f+".path", "environment %s: %s", d.Environment, msg)
	}
	if msg == "" && v.repoPath(f+".path", p) {
		if fi, ok := v.exists(f+".path", p, anyEntry); ok {
			v.manifestRefs(f+".path", p, fi)
		}
	}
	v.deployTarget(f, TypeDeployYAML, d.Environment, d.Cluster, d.Namespace)
	for i, ns := range d.AllowedNamespaces {
		if ns != "*" {
			v.dnsLabel(yamlstrict.Index(f+".allowedNamespaces", i), "namespace", ns)
		}
	}
	v.healthWait(f, d.Wait, d.StableFor)
	if d.HealthWatch == HealthWatchRollback && d.Rollback == RollbackManual {
		v.at(f+".healthWatch", "healthWatch: rollback needs rollback: auto (this task has rollback: manual)")
	}
	v.driftIgnore(f, d.DriftIgnore)
}

// healthWait checks that the stability window fits in the health wait it is part of, with
// time left for the objects to become healthy first.
func (v *validator) healthWait(f string, wait, stableFor Duration) {
	if stableFor.Duration == 0 || wait.Duration == 0 && !v.written(f+".stableFor") {
		return // no window, or no wait at all (wait: 0 turns the default window off with it)
	}
	switch {
	case wait.Duration == 0:
		v.at(f+".stableFor", "stableFor %s needs a health wait, but wait is 0: set wait longer than stableFor, or leave stableFor out", stableFor.Duration)
	case stableFor.Duration >= wait.Duration && v.written(f+".stableFor"):
		v.at(f+".stableFor", "stableFor %s must be shorter than wait %s: the window is part of the health wait, which must also leave time for the objects to become healthy", stableFor.Duration, wait.Duration)
	case stableFor.Duration >= wait.Duration:
		v.at(f+".wait", "wait %s leaves no time for the stability window (stableFor, default %s): make wait longer, or set stableFor shorter (0 turns the window off)", wait.Duration, stableFor.Duration)
	}
}

// chartFiles checks a chart folder as the run copies it (repofs.Repo.Files): every symlink
// in it stays inside the repository, and no file is over limits.manifestFileSize.
func (v *validator) chartFiles(field, dir string) {
	files, err := v.opts.Repo.Files(path.Clean(dir), true)
	if err != nil {
		v.at(field, "%s %q: %v", lastSegment(field), dir, err)
		return
	}
	limit := v.opts.Limits.Text().File
	for _, f := range files {
		if fi, err := v.opts.Repo.Stat(f); err == nil && fi.Size() > limit.Max {
			tl := &repofs.TooLargeError{File: f, Size: fi.Size(), Limit: limit}
			v.r.List.Add(filepath.Join(filepath.Dir(v.p.File), filepath.FromSlash(f)), diag.Pos{Line: 1, Column: 1}, "", "%s", tl.Reason())
		}
	}
}

// manifestRefs checks the manifests a deploy-yaml task will render: the same files, read
// under the same limits, as the run (repofs.Repo.Manifests), and the ${...} in them.
//
// A kustomization is built as the run builds it, and the ${...} are checked in every YAML
// file the build read, at their own line and column; should those pass, the built objects
// are checked too (a reference in a file of another kind, such as a generator's .env file,
// is only seen there), reported at the kustomization with the built object's field.
func (v *validator) manifestRefs(field, p string, fi fs.FileInfo) {
	built, err := render.BuildKustomization(v.opts.Repo, p, v.opts.Limits.Text())
	var refused *kustomize.RefusedError
	var tl *repofs.TooLargeError
	switch {
	case errors.As(err, &refused):
		v.r.List.Add(v.repoFile(refused.File), diag.Pos{Line: refused.Line, Column: 1}, refused.Field, "%s", refused.Reason())
		return
	case errors.As(err, &tl):
		v.r.List.Add(v.repoFile(tl.File), diag.Pos{Line: max(tl.Line, 1), Column: 1}, "", "%s", tl.Reason())
		return
	case err != nil:
		v.at(field, "%s %q: %v", lastSegment(field), p, err)
		return
	case built != nil:
		v.builtRefs(field, built)
		return
	}
	files, err := v.opts.Repo.Manifests(path.Clean(p))
	if err != nil {
		v.at(field, "%s %q: %v", lastSegment(field), p, err)
		return
	}
	for _, f := range files {
		v.fileRefs(f)
	}
}

// builtRefs checks the references of a kustomization's build: in its YAML sources first,
// then, when those pass, in the objects built.
func (v *validator) builtRefs(field string, b *render.Built) {
	before := len(*v.r.List)
	for _, f := range b.Files {
		if ext := strings.ToLower(path.Ext(f)); ext == ".yaml" || ext == ".yml" || ext == ".json" || path.Base(f) == "Kustomization" {
			v.fileRefs(f)
		}
	}
	if len(*v.r.List) > before {
		return
	}
	refs, err := render.YAMLRefs(b.YAML)
	if err != nil {
		v.at(field, "%s: %v", b.Name, err)
		return
	}
	for _, ref := range refs {
		if msg := v.resolve(ref.Ref, v.current); msg != "" {
			v.at(field, "%s, line %d: %s", b.Name, ref.Line, msg)
		}
	}
}

// repoFile is a repository file as diagnostics name it: from the pipeline file's folder.
func (v *validator) repoFile(rel string) string {
	return filepath.Join(filepath.Dir(v.p.File), filepath.FromSlash(rel))
}

// fileRefs reads a repository file a run renders, within the limits a run reads it with,
// reports unresolved ${...} at their own line and column, and returns the references
// substitution will use (those in values; comments are not substituted). Files are
// rendered when their task runs, so outputs of every earlier task are in scope.
func (v *validator) fileRefs(name string) []render.SiteRef {
	file := filepath.Join(filepath.Dir(v.p.File), filepath.FromSlash(name))
	data, err := v.opts.Repo.ReadText(name, v.opts.Limits.Text())
	var tl *repofs.TooLargeError
	switch {
	case errors.As(err, &tl):
		v.r.List.Add(file, diag.Pos{Line: max(tl.Line, 1), Column: 1}, "", "%s", tl.Reason())
		return nil
	case err != nil:
		v.r.List.Add(file, diag.Pos{Line: 1, Column: 1}, "", "reading %s: %v", name, err)
		return nil
	}
	text := string(data)
	stage := v.current
	// Syntax first, line by line, so that one bad reference does not hide the others.
	bad := false
	for lineNo, line := range strings.Split(text, "\n") {
		if _, err := render.References(line); err != nil {
			se, _ := err.(*render.SyntaxError)
			col := 1
			if se != nil {
				col = se.Offset + 1
			}
			v.r.List.Add(file, posAt(lineNo, col), "", "%v", err)
			bad = true
		}
	}
	if bad {
		return nil
	}
	// Then as substitution reads the file: references in values only.
	refs, err := render.YAMLRefs(data)
	if err != nil {
		var pe *render.PositionError
		if errors.As(err, &pe) {
			msg := pe.Err.Error()
			if pe.Field != "" {
				msg = pe.Field + ": " + msg
			}
			v.r.List.Add(file, posAt(pe.Line-1, pe.Column), "", "%s", msg)
		} else {
			v.r.List.Add(file, posAt(0, 1), "", "%v", err)
		}
		return nil
	}
	for _, ref := range refs {
		if msg := v.resolve(ref.Ref, stage); msg != "" {
			v.r.List.Add(file, posAt(ref.Line-1, ref.Column), "", "%s", msg)
		}
	}
	return refs
}

func (v *validator) deployChart(f string, d *DeployChartTask, vars render.Vars) {
	if v.written(f+".release") && (len(d.Release) > 53 || !dnsLabel.MatchString(d.Release)) {
		v.at(f+".release", "release %q is not a valid Helm release name: use lowercase letters, digits and '-', start and end with a letter or digit, at most 53 characters", d.Release)
	}
	switch {
	case d.Chart != "" && d.ChartDir != "":
		v.at(f+".chartDir", "use either chart (from the chart repository) or chartDir (from the repository checkout), not both")
	case d.Chart == "" && d.ChartDir == "":
		v.at(f, "deploy-chart needs chart and version (from the chart repository) or chartDir (from the repository checkout)")
	case d.Chart != "":
		v.chartName(f+".chart", d.Chart)
		if d.Version == "" {
			v.at(f+".chart", "chart %q needs a version", d.Chart)
		}
		if d.Repository != "" {
			v.ociRepository(f+".repository", d.Repository)
		} else if v.opts.Env != nil && v.opts.Env.ChartRepository() == "" {
			v.at(f, "no chart repository for chart %q: set repository here or charts.repository in slipway.yaml", d.Chart)
		}
	default:
		if v.repoPath(f+".chartDir", d.ChartDir) {
			if _, ok := v.exists(f+".chartDir", d.ChartDir, dirEntry); ok {
				if _, ok := v.exists(f+".chartDir", path.Join(d.ChartDir, "Chart.yaml"), fileEntry); ok {
					v.chartFiles(f+".chartDir", d.ChartDir)
					// The run substitutes the chart's values.yaml, as publish-chart does.
					values := path.Join(d.ChartDir, "values.yaml")
					if _, err := v.opts.Repo.Stat(values); err == nil {
						v.fileRefs(values)
					}
				}
			}
		}
		if d.Repository != "" {
			v.at(f+".repository", "repository is for charts from the chart repository; chartDir deploys from the checkout")
		}
	}
	v.semver(f+".version", d.Version, "version", vars)
	for i, vf := range d.ValuesFiles {
		field := yamlstrict.Index(f+".valuesFiles", i)
		if v.repoPath(field, vf) {
			if _, ok := v.exists(field, vf, fileEntry); ok {
				v.fileRefs(path.Clean(vf))
			}
		}
	}
	v.deployTarget(f, TypeDeployChart, d.Environment, d.Cluster, d.Namespace)
	if d.MaxHistory < 0 {
		v.at(f+".maxHistory", "maxHistory must be 0 (unlimited) or more")
	}
	v.healthWait(f, d.Wait, d.StableFor)
	v.driftIgnore(f, d.DriftIgnore)
}

// scriptSample stands in for a script's output when later fields are checked for form: a
// valid tag and SemVer version, so that only the reference itself is checked.
const scriptSample = "0.0.0-sample"

// script checks a script task and returns its declared outputs with sample values.
func (v *validator) script(f string, s *ScriptTask, vars render.Vars) ([]string, map[string]string) {
	executor := v.scriptExecutor(f, s)
	switch {
	case executor == ExecutorLocal && v.written(f+".image"):
		v.at(f+".image", "executor local runs the script on the daemon's host, not in an image: remove image, or choose executor buildkit or kubernetes")
	case executor != ExecutorLocal && s.Image == "" && !v.written(f+".image"):
		v.at(f, "script task needs image (the image the script runs in); only executor local runs without one")
	case s.Image == "" && v.written(f+".image"):
		v.at(f+".image", "image must not be empty")
	}
	if img, ok := subst(s.Image, vars); ok && s.Image != "" {
		if _, err := name.ParseReference(img, name.WeakValidation); err != nil {
			v.at(f+".image", "image %q is not a valid image reference: use lowercase REGISTRY/PATH:TAG or PATH@sha256:DIGEST", s.Image)
		}
	}
	if strings.TrimSpace(s.Script) == "" && v.written(f+".script") {
		v.at(f+".script", "script is empty")
	}
	for _, k := range sortedKeys(s.Env) {
		if !identifier.MatchString(k) {
			v.atKey(yamlstrict.Join(f+".env", k), "environment variable name %q: use letters, digits and _, not starting with a digit", k)
		} else if reservedEnv(k) {
			v.atKey(yamlstrict.Join(f+".env", k), "environment variable %q is set by Slipway for every script", k)
		}
		// A secret in env would travel as plain text (into a BuildKit step's definition, a
		// Job's spec); secretEnv hands it over as a secret.
		if refs, err := render.References(s.Env[k]); err == nil {
			for _, ref := range refs {
				if v.secrets[ref.Name] {
					v.at(yamlstrict.Join(f+".env", k), "env %s uses secret ${%s}: pass secrets with secretEnv (%s: %s), which keeps them out of the step's definition", k, ref.Name, k, ref.Name)
				}
			}
		}
	}
	for _, k := range sortedKeys(s.SecretEnv) {
		field := yamlstrict.Join(f+".secretEnv", k)
		switch {
		case !identifier.MatchString(k):
			v.atKey(field, "environment variable name %q: use letters, digits and _, not starting with a digit", k)
		case hasKey(s.Env, k):
			v.atKey(field, "environment variable %q is set in both env and secretEnv", k)
		case reservedEnv(k):
			v.atKey(field, "environment variable %q is set by Slipway for every script", k)
		}
		if executor == ExecutorKubernetes {
			v.kubernetesSecretEnv(field, k, s.SecretEnv[k])
		}
		if secret := s.SecretEnv[k]; !v.secrets[secret] {
			msg := fmt.Sprintf("secretEnv %s: %q is not a declared secret", k, secret)
			if near := yamlstrict.Suggest(secret, sortedKeys(v.secrets)); near != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", near)
			}
			v.at(field, "%s", msg)
		}
	}
	if s.WorkingDir != "" || v.written(f+".workingDir") {
		v.repoPath(f+".workingDir", s.WorkingDir)
	}
	if s.Cache && executor != "" && executor != ExecutorBuildKit {
		v.at(f+".cache", "cache is not supported yet by executor %s: only BuildKit reuses an earlier result of a step", executor)
	}
	if s.Resources != nil {
		if executor != "" && executor != ExecutorKubernetes {
			v.at(f+".resources", "resources are not supported yet by executor %s: only executor kubernetes bounds CPU and memory", executor)
		}
		v.resourceList(f+".resources.requests", s.Resources.Requests)
		v.resourceList(f+".resources.limits", s.Resources.Limits)
	}
	seen := map[string]bool{}
	samples := map[string]string{}
	var outputs []string
	for i, o := range s.Outputs {
		of := yamlstrict.Index(f+".outputs", i)
		switch {
		case !identifier.MatchString(o):
			v.at(of, "output name %q: use letters, digits and _, not starting with a digit", o)
		case seen[o]:
			v.at(of, "output %q is listed twice", o)
		default:
			seen[o] = true
			outputs = append(outputs, o)
			samples[o] = scriptSample
		}
	}
	return outputs, samples
}

// kubernetesSecretEnv checks that a secretEnv of a kubernetes script can be a secretKeyRef:
// a pod reads Secrets of its own namespace only, and Slipway never copies a value into a Job.
func (v *validator) kubernetesSecretEnv(field, name, secret string) {
	if v.opts.Env == nil {
		return
	}
	cluster, namespace := v.opts.Env.KubernetesExecutor()
	if cluster == "" {
		return
	}
	for _, d := range v.p.Secrets {
		if d.Name != secret {
			continue
		}
		ns := d.Namespace
		if ns == "" {
			ns = "default"
		}
		switch {
		case d.File != "":
			v.at(field, "secretEnv %s: executor kubernetes passes secrets only as secretKeyRef to a Kubernetes Secret, "+
				"and %s is a file; keep it in a Secret in namespace %s of cluster %s", name, secret, namespace, cluster)
		case d.Cluster != cluster || ns != namespace:
			v.at(field, "secretEnv %s: secret %s is in namespace %s of cluster %s, but executor kubernetes runs its Jobs in "+
				"namespace %s of cluster %s, and a pod reads Secrets of its own namespace only", name, secret, ns, d.Cluster, namespace, cluster)
		}
	}
}

// reservedEnv names the variables every script gets from Slipway.
func reservedEnv(k string) bool {
	return k == "SLIPWAY_OUTPUT" || k == "SLIPWAY_WORKSPACE"
}

// scriptExecutor is the executor the task runs with, checked against slipway.yaml when
// validation has it; "" when it cannot be known (no slipway.yaml and none written).
func (v *validator) scriptExecutor(f string, s *ScriptTask) string {
	if v.opts.Env == nil {
		return s.Executor
	}
	name, err := v.opts.Env.ScriptExecutor(s.Executor)
	if err != nil {
		field := f + ".executor"
		if !v.written(field) {
			field = f + ".type"
		}
		v.at(field, "%v", err)
		return "" // reported; the fields that depend on it are not checked against it
	}
	return name
}

// resourceList checks Kubernetes quantities.
func (v *validator) resourceList(f string, l *ResourceList) {
	if l == nil {
		return
	}
	for _, q := range []struct{ field, value string }{{f + ".cpu", l.CPU}, {f + ".memory", l.Memory}} {
		if q.value == "" && !v.written(q.field) {
			continue
		}
		if qty, err := resource.ParseQuantity(q.value); err != nil || qty.Sign() <= 0 {
			v.at(q.field, "%s %q is not a positive Kubernetes quantity, such as 500m or 2 for cpu and 256Mi or 1Gi for memory", lastSegment(q.field), q.value)
		}
	}
}
