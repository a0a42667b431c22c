package policy

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/slipwayhq/slipway/builder"
	"github.com/slipwayhq/slipway/pipeline"
	"github.com/slipwayhq/slipway/pipeline/yamlstrict"
	"github.com/slipwayhq/slipway/render"
)

// SecretNamespace is the namespace a pipeline secret's Kubernetes Secret is read from.
func SecretNamespace(s pipeline.Secret) string {
	if s.Namespace == "" {
		return "default"
	}
	return s.Namespace
}

// checkSources is the static check of what a pipeline reads and pushes: every secret's
// source and every push target written without ${...} (those are checked again, substituted,
// by the task before it pushes). Denials carry their field and place.
func (p Policy) checkSources(pl *pipeline.Pipeline) []Denial {
	var out []Denial
	add := func(field string, d Denial) {
		d.Field = field
		pos := pl.Positions.Of(field)
		d.At = fmt.Sprintf("%s:%d:%d", pl.File, pos.Line, pos.Column)
		out = append(out, d)
	}
	for i, s := range pl.Secrets {
		f := yamlstrict.Index("secrets", i)
		switch {
		case s.File != "":
			if reason := p.fileSecretDenied(s.Name, filepath.Clean(s.File)); reason != "" {
				add(f+".file", Denial{Rule: RuleSecrets, Reason: reason})
			}
		case s.Secret != "":
			if reason := p.KubernetesSecretDenied(s); reason != "" {
				add(f+".secret", Denial{Rule: RuleSecrets, Reason: reason})
			}
		}
	}
	// Declared variables that use no other variable are known before the run: a registry
	// written as ${REGISTRY} is checked with them.
	known := render.Map{}
	for k, v := range pl.Variables {
		if !strings.Contains(v, "${") {
			known[k] = v
		}
	}
	for i, st := range pl.Stages {
		for j, t := range st.Tasks {
			f := yamlstrict.Index(yamlstrict.Index("stages", i)+".tasks", j)
			switch {
			case t.BuildImage != nil:
				b := t.BuildImage
				reg, field := b.Registry, f+".registry"
				if reg == "" {
					reg, field = p.defaultRegistry, f+".image"
				}
				if s, err := render.Substitute(reg, known); err == nil {
					reg = s
				}
				if reg == "" || strings.Contains(reg, "${") {
					continue // no registry is the task's own error; one known only in the run is checked then
				}
				if reason := p.PushDenied(t.Name, builder.ImageRepository(reg, b.Workspace, b.Image)); reason != "" {
					add(field, Denial{Rule: RulePush, Reason: reason})
				}
			case t.PublishChart != nil:
				c := t.PublishChart
				repo, field := c.Repository, f+".repository"
				if repo == "" {
					repo, field = p.chartRepository, f+".chart"
				}
				if repo == "" {
					continue
				}
				if reason := p.PushDenied(t.Name, builder.ChartRepositoryPath(repo, c.Chart)); reason != "" {
					add(field, Denial{Rule: RulePush, Reason: reason})
				}
			}
		}
	}
	return out
}

// KubernetesSecretDenied says why the pipeline secret's Kubernetes Secret may not be read,
// or "" when a grant matches its cluster, namespace and name.
func (p Policy) KubernetesSecretDenied(s pipeline.Secret) string {
	ns := SecretNamespace(s)
	grants := p.grants.Secrets.Kubernetes
	granted := make([]string, len(grants))
	for i, g := range grants {
		if match([]string{g.Cluster}, s.Cluster) && match([]string{g.Namespace}, ns) && match([]string{g.Name}, s.Secret) {
			return ""
		}
		granted[i] = g.Cluster + "/" + g.Namespace + "/" + g.Name
	}
	return fmt.Sprintf("secret %s reads Kubernetes Secret %s/%s on cluster %q, which %s", s.Name, ns, s.Secret, s.Cluster,
		p.notGranted("secrets.kubernetes", granted))
}

// fileSecretDenied is the check of a file: secret by its path as written.
func (p Policy) fileSecretDenied(secret, file string) string {
	if grantedFolder(p.grants.Secrets.Files, file) != "" {
		return ""
	}
	return fmt.Sprintf("secret %s reads file %s, which %s", secret, file, p.notGranted("secrets.files", p.grants.Secrets.Files))
}

// grantedFolder is the folder of dirs that holds file, or "".
func grantedFolder(dirs []string, file string) string {
	for _, d := range dirs {
		if rel, err := filepath.Rel(d, file); err == nil && filepath.IsLocal(rel) {
			return d
		}
	}
	return ""
}

// SecretFile says where the file: secret of that name may be read: the granted folder
// that holds it and its path in there, both with every symlink resolved, so a link in a
// granted folder cannot reach a file outside it. Open it with os.OpenRoot(root), which
// refuses to leave root even if the file is swapped for a link afterwards. A file outside
// every grant is a *DeniedError, and nothing of it is read.
func (p Policy) SecretFile(secret, file string) (root, rel string, err error) {
	denied := func(reason string) error {
		return &DeniedError{Denials: []Denial{{Rule: RuleSecrets, Reason: reason}}}
	}
	if !filepath.IsAbs(file) {
		return "", "", denied(fmt.Sprintf("secret %s reads file %q, which is not an absolute path", secret, file))
	}
	if reason := p.fileSecretDenied(secret, filepath.Clean(file)); reason != "" {
		return "", "", denied(reason)
	}
	real, err := filepath.EvalSymlinks(file)
	if err != nil {
		return "", "", fmt.Errorf("secret %s: read file: %w", secret, err)
	}
	for _, d := range p.grants.Secrets.Files {
		realDir, err := filepath.EvalSymlinks(d)
		if err != nil {
			continue // a granted folder that does not exist holds nothing
		}
		if r, err := filepath.Rel(realDir, real); err == nil && filepath.IsLocal(r) {
			return realDir, r, nil
		}
	}
	return "", "", denied(fmt.Sprintf("secret %s reads file %s, which resolves to %s, which %s", secret, file, real,
		p.notGranted("secrets.files", p.grants.Secrets.Files)))
}

// PushDenied says why task may not push to (or delete tags of) the repository repo
// (HOST[:PORT]/PATH), or "" when a policy.push prefix grants it.
func (p Policy) PushDenied(task, repo string) string {
	full := repo
	if r, err := name.NewRepository(repo, name.WeakValidation); err == nil {
		full = registryPath(r)
	}
	if prefixGranted(p.grants.Push, full) {
		return ""
	}
	return fmt.Sprintf("task %s pushes to %s, which %s", task, full, p.notGranted("push", p.grants.Push))
}

// prefixGranted reports whether a HOST[:PORT][/PATH] grant (or *) covers the repository
// full, matching at path boundaries.
func prefixGranted(grants []string, full string) bool {
	for _, g := range grants {
		if g == "*" || full == g || strings.HasPrefix(full, strings.TrimSuffix(g, "/")+"/") {
			return true
		}
	}
	return false
}

// DeniedFor turns a reason from PushDenied or KubernetesSecretDenied into the error of a
// task or run.
func DeniedFor(task, rule, reason string) error {
	if reason == "" {
		return nil
	}
	return &DeniedError{Task: task, Denials: []Denial{{Rule: rule, Reason: reason}}}
}
