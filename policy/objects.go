package policy

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/slipwayhq/slipway/config"
	"github.com/slipwayhq/slipway/pipeline"
	"github.com/slipwayhq/slipway/pipeline/yamlstrict"
	"github.com/slipwayhq/slipway/render"
)

// Built-in rule names, as denials name them.
const (
	RuleClusters   = config.RuleClusters
	RuleNamespaces = config.RuleNamespaces
	RuleRegistries = config.RuleRegistries
	RuleKinds      = config.RuleKinds
	RuleSecrets    = config.RuleSecrets
	RulePush       = config.RulePush
)

// ErrDenied is what a *DeniedError matches with errors.Is.
var ErrDenied = errors.New("denied by policy")

// Denial is one thing policy refused, with the rule that refused it and why.
type Denial struct {
	Rule   string
	Object string // Kind/namespace/name (file, document n); "" when the task itself is denied
	Field  string // for a pipeline's static check: the field denied, e.g. stages[1].tasks[0].namespace
	At     string // and where it is written, FILE:LINE:COL
	Reason string
}

func (d Denial) String() string {
	s := "rule " + d.Rule + ": "
	if d.Object != "" {
		s += d.Object + ": "
	}
	s += d.Reason
	if d.At != "" {
		s += " (" + d.At + ")"
	}
	return s
}

// DeniedError is a task, or a run, that policy refused before anything was applied. It
// lists every denial, not only the first.
type DeniedError struct {
	Task    string // "" for a run's pre-start check
	Denials []Denial
}

func (e *DeniedError) Error() string {
	var b strings.Builder
	what := "the run"
	if e.Task != "" {
		what = "task " + e.Task
	}
	fmt.Fprintf(&b, "policy denied %s (%d %s), nothing of it was applied:", what, len(e.Denials), plural(len(e.Denials), "denial", "denials"))
	for _, d := range e.Denials {
		b.WriteString("\n  - ")
		b.WriteString(d.String())
	}
	return b.String()
}

// Is makes errors.Is(err, ErrDenied) hold.
func (e *DeniedError) Is(target error) bool { return target == ErrDenied }

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// Policy is what one repository may deploy: its grants in slipway.yaml and the CEL rules
// that apply to it (policy.rules, then its own). It has no side effects.
type Policy struct {
	repository string
	known      bool // the repository is in slipway.yaml
	grants     config.Grants
	rules      []config.Rule
	// anyRepository: the union of every repository's grants, for checking a pipeline
	// whose repository is not known (slipway validate without --repository).
	anyRepository bool
	// Where build-image and publish-chart tasks push when they name no registry.
	defaultRegistry, chartRepository string
}

// ForAnyRepository grants what at least one repository of the configuration is granted:
// a pipeline it denies could not deploy from any of them. Only CheckPipeline and
// CheckTarget are meaningful on it.
func ForAnyRepository(cfg *config.Config) Policy {
	p := Policy{anyRepository: true, known: true, defaultRegistry: cfg.Registry.Default, chartRepository: cfg.Charts.Repository}
	for _, r := range cfg.Repositories {
		p.grants.Clusters = append(p.grants.Clusters, r.Policy.Clusters...)
		p.grants.Namespaces = append(p.grants.Namespaces, r.Policy.Namespaces...)
		p.grants.Push = append(p.grants.Push, r.Policy.Push...)
		p.grants.Secrets.Kubernetes = append(p.grants.Secrets.Kubernetes, r.Policy.Secrets.Kubernetes...)
		p.grants.Secrets.Files = append(p.grants.Secrets.Files, r.Policy.Secrets.Files...)
	}
	return p
}

// For is the policy of the named repository. A repository missing from the configuration
// is granted nothing.
func For(cfg *config.Config, repository string) Policy {
	p := Policy{repository: repository, rules: cfg.Policy.Rules, defaultRegistry: cfg.Registry.Default, chartRepository: cfg.Charts.Repository}
	if r := cfg.Repository(repository); r != nil {
		p.known, p.grants = true, r.Policy
		p.rules = append(slices.Clip(p.rules), r.Policy.Rules...)
	}
	return p
}

// Target is where one deploy task puts its objects, as its pipeline says.
type Target struct {
	Task       string
	Cluster    string
	Namespace  string
	Namespaces []string // further namespaces it names (deploy-yaml allowedNamespaces)
}

// CheckPipeline is the static check of a pipeline, made before a run starts (and by
// slipway validate): its secrets' sources, the registry paths its tasks push to, and each
// deploy task's cluster and namespaces must be granted, so a denied production task cannot
// let an earlier staging stage apply first, and a denied secret is never read.
func (p Policy) CheckPipeline(pl *pipeline.Pipeline) []Denial {
	out := p.checkSources(pl)
	for i, st := range pl.Stages {
		for j, t := range st.Tasks {
			f := yamlstrict.Index(yamlstrict.Index("stages", i)+".tasks", j)
			var tg Target
			switch {
			case t.DeployYAML != nil:
				tg = Target{Task: t.Name, Cluster: t.DeployYAML.Cluster, Namespace: t.DeployYAML.Namespace, Namespaces: t.DeployYAML.AllowedNamespaces}
			case t.DeployChart != nil:
				tg = Target{Task: t.Name, Cluster: t.DeployChart.Cluster, Namespace: t.DeployChart.Namespace}
			default:
				continue
			}
			for _, d := range p.CheckTarget(tg) {
				d.Field = f + "." + d.Field
				pos := pl.Positions.Of(d.Field)
				d.At = fmt.Sprintf("%s:%d:%d", pl.File, pos.Line, pos.Column)
				out = append(out, d)
			}
		}
	}
	return out
}

// CheckRun is the check a run makes before its first stage starts: CheckPipeline for the
// run's repository. A rollback (no pipeline) re-applies what was allowed and passes.
func CheckRun(cfg *config.Config, repository string, pl *pipeline.Pipeline) error {
	if pl == nil {
		return nil
	}
	if ds := For(cfg, repository).CheckPipeline(pl); len(ds) > 0 {
		return &DeniedError{Denials: ds}
	}
	return nil
}

// CheckTarget checks a task's cluster and namespaces against the grants. Field in each
// denial is relative to the task (cluster, namespace, allowedNamespaces[i]).
func (p Policy) CheckTarget(t Target) []Denial {
	var out []Denial
	if !match(p.grants.Clusters, t.Cluster) {
		out = append(out, Denial{Rule: RuleClusters, Field: "cluster", Reason: fmt.Sprintf(
			"task %s deploys to cluster %q, which %s", t.Task, t.Cluster, p.notGranted("clusters", p.grants.Clusters))})
	}
	if t.Namespace != "" && !match(p.grants.Namespaces, t.Namespace) {
		out = append(out, Denial{Rule: RuleNamespaces, Field: "namespace", Reason: fmt.Sprintf(
			"task %s deploys to namespace %q, which %s", t.Task, t.Namespace, p.notGranted("namespaces", p.grants.Namespaces))})
	}
	for i, ns := range t.Namespaces {
		if ns == "*" {
			continue // any namespace: each object's is checked when rendered
		}
		if !match(p.grants.Namespaces, ns) {
			out = append(out, Denial{Rule: RuleNamespaces, Field: yamlstrict.Index("allowedNamespaces", i), Reason: fmt.Sprintf(
				"task %s allows namespace %q, which %s", t.Task, ns, p.notGranted("namespaces", p.grants.Namespaces))})
		}
	}
	return out
}

// notGranted explains a missing grant and where to add it.
func (p Policy) notGranted(field string, granted []string) string {
	if p.anyRepository {
		return fmt.Sprintf("is granted to no repository in slipway.yaml (repositories[].policy.%s); give --repository to check against one repository's grants", field)
	}
	if !p.known {
		return fmt.Sprintf("is not granted: repository %s is not in slipway.yaml", p.repository)
	}
	have := "grants none"
	if len(granted) > 0 {
		have = "grants " + strings.Join(granted, ", ")
	}
	return fmt.Sprintf("is not granted to repository %s (its policy.%s in slipway.yaml %s)", p.repository, field, have)
}

// Evaluate decides on the rendered objects of one deploy task before any of them is
// applied: the task's target, then every object against the kind, namespace and registry
// grants and every CEL rule. It returns all denials; none means the task may deploy.
// Namespaced objects must already carry their namespace (render.SetNamespaces).
func (p Policy) Evaluate(t Target, ms []render.Manifest) []Denial {
	out := p.CheckTarget(t)
	for _, m := range ms {
		out = append(out, p.object(m)...)
	}
	return out
}

// Denied turns Evaluate's answer into the task's error: nil when nothing was denied.
func Denied(task string, ds []Denial) error {
	if len(ds) == 0 {
		return nil
	}
	return &DeniedError{Task: task, Denials: ds}
}

func (p Policy) object(m render.Manifest) []Denial {
	o := m.Object
	var out []Denial
	deny := func(rule, format string, args ...any) {
		out = append(out, Denial{Rule: rule, Object: m.String(), Reason: fmt.Sprintf(format, args...)})
	}
	gk := o.GroupVersionKind().GroupKind()
	if what, ok := trustedKinds[gk]; ok && !p.grants.Trusted {
		deny(RuleKinds, "%s is %s; repository %s is not trusted (set trusted: true in its policy in slipway.yaml to allow it)", gk.Kind, what, p.repository)
	}
	if ns := o.GetNamespace(); ns != "" && !match(p.grants.Namespaces, ns) {
		deny(RuleNamespaces, "namespace %q %s", ns, p.notGranted("namespaces", p.grants.Namespaces))
	}
	if gk == (schema.GroupKind{Kind: "Namespace"}) && !match(p.grants.Namespaces, o.GetName()) {
		deny(RuleNamespaces, "creates namespace %q, which %s", o.GetName(), p.notGranted("namespaces", p.grants.Namespaces))
	}
	images, err := podImages(o)
	if err != nil {
		deny(RuleRegistries, "%v", err)
	}
	for _, img := range images {
		if reason := p.imageDenied(img.image); reason != "" {
			deny(RuleRegistries, "%s %q: %s", img.where, img.image, reason)
		}
	}
	for _, r := range p.rules {
		if r.Program == nil {
			deny(r.Name, "the rule was never compiled (configuration not read with config.Parse), so the object is denied")
			continue
		}
		ok, err := r.Program.Eval(o.Object)
		switch {
		case err != nil:
			deny(r.Name, "the rule could not be evaluated (%v), so the object is denied; guard optional fields with has() (rule at %s)", err, r.At)
		case !ok:
			msg := r.Message
			if msg == "" {
				msg = "the object does not satisfy " + r.Expression
			}
			deny(r.Name, "%s", msg)
		}
	}
	return out
}

// trustedKinds can take over a cluster or every namespace in it: only repositories marked
// trusted may deploy them.
var trustedKinds = map[schema.GroupKind]string{
	{Group: "rbac.authorization.k8s.io", Kind: "ClusterRole"}:                         "cluster-scoped RBAC",
	{Group: "rbac.authorization.k8s.io", Kind: "ClusterRoleBinding"}:                  "cluster-scoped RBAC",
	{Group: "admissionregistration.k8s.io", Kind: "ValidatingWebhookConfiguration"}:   "an admission webhook",
	{Group: "admissionregistration.k8s.io", Kind: "MutatingWebhookConfiguration"}:     "an admission webhook",
	{Group: "admissionregistration.k8s.io", Kind: "ValidatingAdmissionPolicy"}:        "an admission policy",
	{Group: "admissionregistration.k8s.io", Kind: "ValidatingAdmissionPolicyBinding"}: "an admission policy",
	{Group: "admissionregistration.k8s.io", Kind: "MutatingAdmissionPolicy"}:          "an admission policy",
	{Group: "admissionregistration.k8s.io", Kind: "MutatingAdmissionPolicyBinding"}:   "an admission policy",
	{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}:                 "a CustomResourceDefinition",
}

// match reports whether name matches one of the patterns (* matches any run of characters;
// names hold no '/', so path.Match's * is exactly that).
func match(patterns []string, s string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, s); ok {
			return true
		}
	}
	return false
}

// imageDenied says why an image's registry is not granted, or "" when it is.
func (p Policy) imageDenied(image string) string {
	ref, err := name.ParseReference(image, name.WeakValidation)
	if err != nil {
		return fmt.Sprintf("not a valid image reference (%v), so its registry cannot be checked", err)
	}
	full := registryPath(ref.Context())
	if prefixGranted(p.grants.Registries, full) {
		return ""
	}
	return fmt.Sprintf("%s %s", full, p.notGranted("registries", p.grants.Registries))
}

// registryPath is HOST/PATH of a repository as grants write it: Docker Hub as docker.io,
// not go-containerregistry's index.docker.io.
func registryPath(repo name.Repository) string {
	host := repo.RegistryStr()
	if host == name.DefaultRegistry {
		host = "docker.io"
	}
	return host + "/" + repo.RepositoryStr()
}

type podImage struct{ where, image string }

// podSpecPaths is where each workload kind keeps its pod spec.
var podSpecPaths = map[schema.GroupKind][]string{
	{Kind: "Pod"}:                             {"spec"},
	{Kind: "PodTemplate"}:                     {"template", "spec"},
	{Kind: "ReplicationController"}:           {"spec", "template", "spec"},
	{Group: "apps", Kind: "Deployment"}:       {"spec", "template", "spec"},
	{Group: "apps", Kind: "StatefulSet"}:      {"spec", "template", "spec"},
	{Group: "apps", Kind: "DaemonSet"}:        {"spec", "template", "spec"},
	{Group: "apps", Kind: "ReplicaSet"}:       {"spec", "template", "spec"},
	{Group: "batch", Kind: "Job"}:             {"spec", "template", "spec"},
	{Group: "batch", Kind: "CronJob"}:         {"spec", "jobTemplate", "spec", "template", "spec"},
	{Group: "extensions", Kind: "Deployment"}: {"spec", "template", "spec"},
}

// podImages lists the images of every container, init container and ephemeral container of
// a workload's pod spec. A spec of the wrong shape is an error: unchecked is not allowed.
func podImages(o *unstructured.Unstructured) ([]podImage, error) {
	specPath, ok := podSpecPaths[o.GroupVersionKind().GroupKind()]
	if !ok {
		return nil, nil
	}
	var out []podImage
	for _, list := range []string{"initContainers", "containers", "ephemeralContainers"} {
		field := append(slices.Clone(specPath), list)
		cs, found, err := unstructured.NestedSlice(o.Object, field...)
		if err != nil {
			return out, fmt.Errorf("%s cannot be read (%v), so its images cannot be checked", strings.Join(field, "."), err)
		}
		if !found {
			continue
		}
		for i, c := range cs {
			cm, _ := c.(map[string]any)
			img, _ := cm["image"].(string)
			cname, _ := cm["name"].(string)
			where := fmt.Sprintf("%s[%d]", strings.Join(field, "."), i)
			if cname != "" {
				where = fmt.Sprintf("%s %s", strings.TrimSuffix(list, "s"), cname)
			}
			if img == "" {
				return out, fmt.Errorf("%s has no image, so it cannot be checked", where)
			}
			out = append(out, podImage{where: where, image: img})
		}
	}
	return out, nil
}
