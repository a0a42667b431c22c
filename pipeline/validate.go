package pipeline

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/bmatcuk/doublestar/v4"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/robfig/cron/v3"

	"github.com/slipwayhq/slipway/internal/repofs"
	"github.com/slipwayhq/slipway/pipeline/diag"
	"github.com/slipwayhq/slipway/pipeline/yamlstrict"
	"github.com/slipwayhq/slipway/render"
)

// Daemon is what validation may know about the daemon's configuration (slipway.yaml).
// Without one, names of clusters are only checked for form.
type Daemon interface {
	HasCluster(name string) bool
	ClusterNames() []string
	DefaultRegistry() string
	ChartRepository() string
	// ScriptExecutor resolves a script task's executor (name "" = the default) to one that
	// is configured, or explains why there is none.
	ScriptExecutor(name string) (string, error)
	// KubernetesExecutor is where executor kubernetes runs its Jobs ("" when it is not
	// configured): the only place its secretEnv Secrets may be.
	KubernetesExecutor() (cluster, namespace string)
}

// Options widen what Validate checks.
type Options struct {
	// Env checks cluster names and registries against the daemon's configuration.
	Env Daemon
	// Repo is the repository checkout the pipeline file belongs to (its root). With it,
	// referenced files must exist (symlinks staying inside it), and the files a run renders
	// must be within Limits and their ${...} must resolve.
	Repo *repofs.Repo
	// Limits are the repository's; zero fields take the defaults.
	Limits Limits
}

// Built-in variables available to every ${...}.
var builtins = []string{"BUILD_ID", "PIPELINE", "GIT_COMMIT", "GIT_SHORT_COMMIT", "GIT_BRANCH", "GIT_TAG", "VERSION", "TRIGGER", "ENVIRONMENT"}

// Builtins returns the names of the built-in variables.
func Builtins() []string { return slices.Clone(builtins) }

// SampleBuildID is what ${BUILD_ID} becomes when checking that versions and image tags are
// well formed before any run exists.
const SampleBuildID = "42"

// sampleBuiltins stand in for run values when checking the form of substituted fields.
func sampleBuiltins(pipeline string) map[string]string {
	return map[string]string{
		"BUILD_ID":         SampleBuildID,
		"PIPELINE":         pipeline,
		"GIT_COMMIT":       "0123456789abcdef0123456789abcdef01234567",
		"GIT_SHORT_COMMIT": "0123456",
		"GIT_BRANCH":       "main",
		"GIT_TAG":          "v1.2.3",
		"VERSION":          "1.2.3",
		"TRIGGER":          "manual",
		"ENVIRONMENT":      "dev",
	}
}

var (
	dnsLabel   = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	platformRE = regexp.MustCompile(`^[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?$`)
	imagePath  = regexp.MustCompile(`^[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*$`)
	kindRE     = regexp.MustCompile(`^[A-Z][A-Za-z0-9]*$`)
)

// cronParser accepts the five standard fields and descriptors (@daily, @every 1h).
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Validate checks the pipelines read from one file and returns every problem found.
func Validate(pipelines []*Pipeline, opts Options) diag.List {
	var errs diag.List
	names := map[string]*Pipeline{}
	for _, p := range pipelines {
		v := &validator{p: p, opts: opts, r: diag.Reporter{File: p.File, List: &errs}}
		v.pipeline()
		if first, dup := names[p.Name]; dup && p.Name != "" {
			v.at("name", "pipeline name %q is already used at line %d", p.Name, first.Positions.Of("name").Line)
		} else {
			names[p.Name] = p
		}
	}
	errs.Sort()
	return errs
}

type validator struct {
	p    *Pipeline
	opts Options
	r    diag.Reporter

	// Filled while walking stages in order: what ${...} may refer to at this point.
	secrets map[string]bool
	tasks   map[string]taskInfo
	current *Stage // the stage of the task being checked
}

type taskInfo struct {
	typ     TaskType
	stage   int
	outputs []string          // what later tasks may use as ${tasks.NAME.OUTPUT}
	samples map[string]string // output name → sample value
}

func (v *validator) at(field, format string, args ...any) {
	v.r.At(v.p.Positions.Of(field), field, format, args...)
}

func (v *validator) atKey(field, format string, args ...any) {
	v.r.At(v.p.Positions.KeyOf(field), field, format, args...)
}

func (v *validator) written(field string) bool {
	return v.p.Positions.Has(field)
}

func (v *validator) pipeline() {
	p := v.p
	v.dnsLabel("name", "pipeline name", p.Name)
	if v.written("timeout") && p.Timeout.Duration == 0 {
		v.at("timeout", "timeout must be greater than 0")
	}
	if p.Triggers != nil {
		v.triggers(p.Triggers)
	}
	v.variables()
	v.secretsDecl()
	v.environments()
	if p.Stages != nil && len(p.Stages) == 0 {
		v.at("stages", "a pipeline needs at least one stage")
	}
	v.tasks = map[string]taskInfo{}
	stageNames := map[string]string{}
	taskNames := map[string]string{}
	for i := range p.Stages {
		v.stage(i, stageNames, taskNames)
	}
	v.stageGates()
}

func (v *validator) dnsLabel(field, what, s string) bool {
	if (s == "" && !v.written(field)) || strings.Contains(s, "${") {
		return false // reported as missing by the parser, or as a reference where none belongs
	}
	if len(s) > 63 || !dnsLabel.MatchString(s) {
		v.at(field, "%s %q is not a DNS-1123 label: use lowercase letters, digits and '-', start and end with a letter or digit, at most 63 characters", what, s)
		return false
	}
	return true
}

func lastSegment(field string) string {
	if i := strings.LastIndexByte(field, '.'); i >= 0 {
		return field[i+1:]
	}
	return field
}

func (v *validator) triggers(t *Triggers) {
	if t.Push != nil {
		v.globs("triggers.push.branches", t.Push.Branches, false)
		v.globs("triggers.push.paths", t.Push.Paths, true)
	}
	if t.PullRequest != nil {
		v.globs("triggers.pullRequest.branches", t.PullRequest.Branches, false)
		v.globs("triggers.pullRequest.paths", t.PullRequest.Paths, true)
	}
	v.globs("triggers.tags", t.Tags, false)
	for i, s := range t.Schedules {
		f := yamlstrict.Index("triggers.schedules", i)
		v.schedule(f, s)
	}
}

func (v *validator) globs(field string, globs []string, paths bool) {
	for i, g := range globs {
		f := yamlstrict.Index(field, i)
		switch {
		case g == "":
			v.at(f, "empty glob")
		case !doublestar.ValidatePattern(g):
			v.at(f, "invalid glob %q: check its brackets and braces", g)
		case paths && strings.HasPrefix(g, "/"):
			v.at(f, "path glob %q must be relative to the repository root (no leading /)", g)
		case paths && escapes(g):
			v.at(f, "path glob %q points outside the repository", g)
		}
	}
}

func (v *validator) schedule(f string, s Schedule) {
	spec := strings.TrimSpace(s.Cron)
	switch {
	case strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ="):
		v.at(f+".cron", "cron %q: set the time zone with timezone, not in the expression", s.Cron)
	case spec != "":
		sched, err := cronParser.Parse(spec)
		if err != nil {
			v.at(f+".cron", "invalid cron expression %q: %v", s.Cron, err)
		} else if msg := v.opts.Limits.tooOften(s.Cron, sched); msg != "" {
			v.at(f+".cron", "%s", msg)
		}
	case v.written(f + ".cron"):
		v.at(f+".cron", "empty cron expression")
	}
	if s.Timezone != "" {
		if _, err := time.LoadLocation(s.Timezone); err != nil || s.Timezone == "Local" {
			v.at(f+".timezone", "unknown time zone %q: use an IANA name such as Asia/Shanghai or UTC", s.Timezone)
		}
	}
	if v.written(f+".startingDeadline") && s.StartingDeadline.Duration == 0 {
		v.at(f+".startingDeadline", "startingDeadline must be greater than 0")
	}
}

func (v *validator) variables() {
	keys := sortedKeys(v.p.Variables)
	for _, k := range keys {
		f := yamlstrict.Join("variables", k)
		switch {
		case !identifier.MatchString(k):
			v.atKey(f, "invalid variable name %q: use letters, digits and _, not starting with a digit", k)
			continue
		case slices.Contains(builtins, k):
			v.atKey(f, "variable %q would hide the built-in variable of that name", k)
			continue
		}
		refs, err := render.References(v.p.Variables[k])
		if err != nil {
			v.at(f, "%v", err)
			continue
		}
		for _, ref := range refs {
			if !slices.Contains(builtins, ref.Name) && !ref.HasDefault {
				v.at(f, "variable %q refers to ${%s}: variables may refer only to built-in variables (%s)", k, ref.Name, strings.Join(builtins, ", "))
			}
		}
	}
}

func (v *validator) secretsDecl() {
	v.secrets = map[string]bool{}
	for i, s := range v.p.Secrets {
		f := yamlstrict.Index("secrets", i)
		switch {
		case s.Name == "":
		case !identifier.MatchString(s.Name):
			v.at(f+".name", "invalid secret name %q: use letters, digits and _, not starting with a digit", s.Name)
		case slices.Contains(builtins, s.Name):
			v.at(f+".name", "secret %q would hide the built-in variable of that name", s.Name)
		case hasKey(v.p.Variables, s.Name):
			v.at(f+".name", "secret %q has the same name as a variable", s.Name)
		case v.secrets[s.Name]:
			v.at(f+".name", "secret %q is declared twice", s.Name)
		default:
			v.secrets[s.Name] = true
		}
		fromSecret := s.Secret != "" || s.Key != "" || s.Namespace != "" || s.Cluster != ""
		switch {
		case fromSecret && s.File != "":
			v.at(f, "secret %q has both a Kubernetes Secret (secret, key) and a file; use one", s.Name)
		case s.File != "":
			if !path.IsAbs(s.File) {
				v.at(f+".file", "secret file %q must be an absolute path on the daemon's host", s.File)
			}
		case s.Secret == "" && s.Key == "":
			v.at(f, "secret %q needs a source: secret and key (a Kubernetes Secret), or file", s.Name)
		case s.Secret == "":
			v.at(f, "secret %q has a key but no secret (the Kubernetes Secret's name)", s.Name)
		case s.Key == "":
			v.at(f, "secret %q needs key: which key of Kubernetes Secret %q", s.Name, s.Secret)
		default:
			if len(s.Secret) > 253 || !dnsSubdomain(s.Secret) {
				v.at(f+".secret", "Kubernetes Secret name %q is not a valid DNS-1123 subdomain", s.Secret)
			}
			if !secretKey.MatchString(s.Key) {
				v.at(f+".key", "Secret key %q may contain only letters, digits, '-', '_' and '.'", s.Key)
			}
		}
		if s.Namespace != "" {
			v.dnsLabel(f+".namespace", "namespace", s.Namespace)
		}
		if s.Cluster != "" {
			v.cluster(f+".cluster", s.Cluster)
		}
	}
}

var secretKey = regexp.MustCompile(`^[-._a-zA-Z0-9]+$`)

func dnsSubdomain(s string) bool {
	for _, part := range strings.Split(s, ".") {
		if !dnsLabel.MatchString(part) {
			return false
		}
	}
	return true
}

func hasKey[V any](m map[string]V, k string) bool {
	_, ok := m[k]
	return ok
}

func (v *validator) cluster(field, c string) {
	if !v.dnsLabel(field, "cluster name", c) {
		return
	}
	if v.opts.Env != nil && !v.opts.Env.HasCluster(c) {
		known := v.opts.Env.ClusterNames()
		msg := fmt.Sprintf("unknown cluster %q: slipway.yaml defines %s", c, quoteList(known))
		if near := yamlstrict.Suggest(c, known); near != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", near)
		}
		v.at(field, "%s", msg)
	}
}

func quoteList(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	q := make([]string, len(s))
	for i, x := range s {
		q[i] = fmt.Sprintf("%q", x)
	}
	return strings.Join(q, ", ")
}

func (v *validator) stage(i int, stageNames, taskNames map[string]string) {
	s := &v.p.Stages[i]
	f := yamlstrict.Index("stages", i)
	if v.dnsLabel(f+".name", "stage name", s.Name) {
		if first, dup := stageNames[s.Name]; dup {
			v.at(f+".name", "stage name %q is already used at line %d", s.Name, v.p.Positions.Of(first).Line)
		} else {
			stageNames[s.Name] = f + ".name"
		}
	}
	if s.Approval != nil {
		v.approval(f+".approval", s.Approval)
	}
	if s.Tasks != nil && len(s.Tasks) == 0 {
		v.at(f+".tasks", "stage %q has no tasks", s.Name)
	}
	// Tasks of a parallel stage cannot see each other's outputs; collect them after the stage.
	added := map[string]taskInfo{}
	for j := range s.Tasks {
		tf := yamlstrict.Index(f+".tasks", j)
		t := &s.Tasks[j]
		if v.dnsLabel(tf+".name", "task name", t.Name) {
			if first, dup := taskNames[t.Name]; dup {
				v.at(tf+".name", "task name %q is already used at line %d", t.Name, v.p.Positions.Of(first).Line)
			} else {
				taskNames[t.Name] = tf + ".name"
			}
		}
		if v.written(tf+".timeout") && t.Timeout.Duration == 0 {
			v.at(tf+".timeout", "timeout must be greater than 0")
		}
		info := v.task(tf, t, i, s)
		if t.Name != "" {
			if s.Parallel {
				added[t.Name] = info
			} else {
				v.tasks[t.Name] = info
			}
		}
	}
	for k, info := range added {
		if _, dup := v.tasks[k]; !dup {
			v.tasks[k] = info
		}
	}
}

func (v *validator) approval(f string, a *Approval) {
	if a.PullRequest == nil && a.Manual == nil {
		v.at(f, "approval needs pullRequest, manual or both")
	}
	if a.PullRequest != nil {
		if v.written(f+".pullRequest.approvals") && a.PullRequest.Approvals < 1 {
			v.at(f+".pullRequest.approvals", "approvals must be at least 1")
		}
		v.people(f+".pullRequest.reviewers", a.PullRequest.Reviewers)
	}
	if a.Manual != nil {
		if a.Manual.Approvers != nil && len(a.Manual.Approvers) == 0 {
			v.at(f+".manual.approvers", "approvers must name at least one user or team")
		}
		v.people(f+".manual.approvers", a.Manual.Approvers)
	}
	if v.written(f+".timeout") && a.Timeout.Duration == 0 {
		v.at(f+".timeout", "timeout must be greater than 0")
	}
}

func (v *validator) people(field string, names []string) {
	for i, n := range names {
		f := yamlstrict.Index(field, i)
		team, isTeam := strings.CutPrefix(n, "team:")
		if strings.TrimSpace(n) == "" || (isTeam && team == "") || strings.ContainsAny(n, " \t") {
			v.at(f, "%q is not a user name or team:NAME", n)
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// escapes reports whether a slash-separated relative path leaves its root.
func escapes(p string) bool {
	c := path.Clean(p)
	return c == ".." || strings.HasPrefix(c, "../")
}

// repoPath checks a path to a file or folder in the repository.
func (v *validator) repoPath(field, p string) bool {
	switch {
	case p == "":
		if v.written(field) {
			v.at(field, "%s must not be empty", lastSegment(field))
		}
		return false
	case strings.Contains(p, "${"):
		return false // reported: paths do not take references
	case strings.HasPrefix(p, "/") || (len(p) > 1 && p[1] == ':') || strings.Contains(p, `\`):
		v.at(field, "%s %q must be a relative path with / separators, from the repository root", lastSegment(field), p)
		return false
	case escapes(p):
		v.at(field, "%s %q points outside the repository", lastSegment(field), p)
		return false
	}
	return true
}

// entryKind is what a repository path must be.
type entryKind int

const (
	anyEntry entryKind = iota
	fileEntry
	dirEntry
)

// exists checks, when the repository is known, that a path is there and is a file or folder.
func (v *validator) exists(field, p string, want entryKind) (fs.FileInfo, bool) {
	if v.opts.Repo == nil {
		return nil, false
	}
	fi, err := v.opts.Repo.Stat(path.Clean(p))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		v.at(field, "%s %q does not exist in the repository", lastSegment(field), p)
		return nil, false
	case err != nil:
		v.at(field, "%s %q: %v", lastSegment(field), p, err)
		return nil, false
	}
	if want != anyEntry && fi.IsDir() != (want == dirEntry) {
		if want == dirEntry {
			v.at(field, "%s %q is a file, not a folder", lastSegment(field), p)
		} else {
			v.at(field, "%s %q is a folder, not a file", lastSegment(field), p)
		}
		return nil, false
	}
	return fi, true
}

func (v *validator) ociRepository(field, repo string) {
	if repo == "" {
		return
	}
	u, err := url.Parse(repo)
	if err != nil || u.Scheme != "oci" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		v.at(field, "repository %q must be an OCI URL: oci://HOST[:PORT]/PATH", repo)
		return
	}
	if _, err := name.NewRepository(u.Host + u.Path); u.Path != "" && err != nil {
		v.at(field, "repository %q: %v", repo, err)
	}
}

// posAt converts a 0-based line index and 1-based column to a position.
func posAt(lineIndex, col int) diag.Pos { return diag.Pos{Line: lineIndex + 1, Column: col} }
