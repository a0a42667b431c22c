package config

import (
	"fmt"
	"maps"
	"net"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/bmatcuk/doublestar/v4"
	"github.com/google/go-containerregistry/pkg/name"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/slipwayhq/slipway/pipeline"
	"github.com/slipwayhq/slipway/pipeline/diag"
	"github.com/slipwayhq/slipway/pipeline/yamlstrict"
	"github.com/slipwayhq/slipway/policy/celrule"
)

var (
	dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	// user@host:path, the scp-like form Git accepts for SSH.
	scpLike = regexp.MustCompile(`^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:.+$`)
)

type checker struct {
	c   *Config
	pos yamlstrict.Positions // where each field of c was written
	r   diag.Reporter
}

func (k checker) at(field, format string, args ...any) {
	k.r.At(k.pos.Of(field), field, format, args...)
}

func (k checker) written(field string) bool {
	_, ok := k.pos[field]
	return ok
}

func validate(c *Config, pos yamlstrict.Positions, r diag.Reporter) {
	k := checker{c: c, pos: pos, r: r}
	if c.Listen != "" {
		if _, port, err := net.SplitHostPort(c.Listen); err != nil || port == "" {
			k.at("listen", "listen %q must be host:port or :port, such as :8080", c.Listen)
		}
	}
	if c.DataDir == "" && k.written("dataDir") {
		k.at("dataDir", "dataDir must not be empty")
	}
	k.store()
	k.storeKeys()
	repos := map[string]bool{}
	for i := range c.Repositories {
		f := yamlstrict.Index("repositories", i)
		repo := &c.Repositories[i]
		if k.label(f+".name", "repository name", repo.Name) {
			if repos[repo.Name] {
				k.at(f+".name", "repository name %q is used twice", repo.Name)
			}
			repos[repo.Name] = true
		}
		k.repository(f, repo)
		k.repoLimits(f+".limits", repo.Limits)
	}
	clusters := map[string]bool{}
	for i, cl := range c.Clusters {
		f := yamlstrict.Index("clusters", i)
		if k.label(f+".name", "cluster name", cl.Name) {
			if clusters[cl.Name] {
				k.at(f+".name", "cluster name %q is used twice", cl.Name)
			}
			clusters[cl.Name] = true
		}
		switch {
		case cl.InCluster && (cl.Kubeconfig != "" || cl.Context != ""):
			k.at(f, "cluster %q: inCluster uses the pod's service account; remove kubeconfig and context", cl.Name)
		case !cl.InCluster && cl.Kubeconfig == "":
			k.at(f, "cluster %q needs kubeconfig (with an optional context) or inCluster: true", cl.Name)
		}
	}
	k.registry()
	k.policy(clusters)
	k.limits()
	if repo := c.Charts.Repository; repo != "" {
		u, err := url.Parse(repo)
		if err != nil || u.Scheme != "oci" || u.Host == "" {
			k.at("charts.repository", "charts.repository %q must be an OCI URL: oci://HOST[:PORT]/PATH", repo)
		}
	}
	switch c.Builder.Type {
	case "buildkit":
		if c.Builder.Address == "" {
			k.at("builder", "builder type buildkit needs address, such as unix:///run/buildkit/buildkitd.sock or tcp://buildkitd:1234")
		} else if u, err := url.Parse(c.Builder.Address); err != nil || (u.Scheme != "unix" && u.Scheme != "tcp" && u.Scheme != "docker-container" && u.Scheme != "kube-pod") {
			k.at("builder.address", "builder address %q must be a unix://, tcp://, docker-container:// or kube-pod:// URL", c.Builder.Address)
		}
	case "native":
		if c.Builder.Address != "" {
			k.at("builder.address", "the native builder runs inside Slipway and takes no address; set type: buildkit to use a buildkitd")
		}
	}
	k.executor(clusters)
	k.notifications()
	k.ha(clusters)
}

func splitHostPort(addr string) (host, port string, err error) { return net.SplitHostPort(addr) }

// executor checks where script tasks run: every executor written can run, and the default
// names one of them.
func (k checker) executor(clusters map[string]bool) {
	e := k.c.Executor
	if e.BuildKit != nil {
		switch addr := k.c.BuildKitExecutorAddress(); {
		case addr == "":
			k.at("executor.buildkit", "executor buildkit needs address (or builder type buildkit, whose address it then uses), such as unix:///run/buildkit/buildkitd.sock or tcp://buildkitd:1234")
		case e.BuildKit.Address != "":
			if u, err := url.Parse(addr); err != nil || (u.Scheme != "unix" && u.Scheme != "tcp" && u.Scheme != "docker-container" && u.Scheme != "kube-pod") {
				k.at("executor.buildkit.address", "executor buildkit address %q must be a unix://, tcp://, docker-container:// or kube-pod:// URL", addr)
			}
		}
	}
	if e.Kubernetes != nil {
		k.kubernetesExecutor(e.Kubernetes, clusters)
	}
	if e.Local != nil && !e.Local.Enabled {
		k.at("executor.local.enabled", "executor local runs scripts on this host only with enabled: true; remove local to leave it off")
	}
	if e.Default != "" {
		if _, err := k.c.ScriptExecutor(e.Default); err != nil {
			k.at("executor.default", "default executor %s is not configured here: configure executor.%s (configured: %s)", e.Default, e.Default, orNone(k.c.ScriptExecutors()))
		}
	}
}

// kubernetesExecutor checks where the Jobs run (a configured cluster, a namespace) and what
// their pods ask of nodes, with the API server's own rules, so that a Job is never refused
// at run time for its shape.
func (k checker) kubernetesExecutor(x *KubernetesExecutor, clusters map[string]bool) {
	const f = "executor.kubernetes"
	if x.Cluster != "" && !clusters[x.Cluster] {
		k.at(f+".cluster", "executor kubernetes cluster %q is not in clusters (configured: %s)", x.Cluster, orNone(slices.Sorted(maps.Keys(clusters))))
	}
	k.label(f+".namespace", "executor kubernetes namespace", x.Namespace)
	if sa := x.ServiceAccount; sa != "" {
		for _, msg := range validation.IsDNS1123Subdomain(sa) {
			k.at(f+".serviceAccount", "executor kubernetes serviceAccount %q: %s", sa, msg)
		}
	}
	for _, key := range slices.Sorted(maps.Keys(x.NodeSelector)) {
		for _, msg := range validation.IsQualifiedName(key) {
			k.at(f+".nodeSelector", "nodeSelector key %q: %s", key, msg)
		}
		for _, msg := range validation.IsValidLabelValue(x.NodeSelector[key]) {
			k.at(f+".nodeSelector", "nodeSelector %s value %q: %s", key, x.NodeSelector[key], msg)
		}
	}
	for i, t := range x.Tolerations {
		tf := yamlstrict.Index(f+".tolerations", i)
		if t.Key != "" {
			for _, msg := range validation.IsQualifiedName(t.Key) {
				k.at(tf+".key", "toleration key %q: %s", t.Key, msg)
			}
		}
		switch t.Operator {
		case "Exists":
			if t.Value != "" {
				k.at(tf+".value", "a toleration with operator Exists matches any value; remove value %q", t.Value)
			}
		case "", "Equal":
			if t.Key == "" {
				k.at(tf, "a toleration without key matches every taint only with operator: Exists")
			}
			for _, msg := range validation.IsValidLabelValue(t.Value) {
				k.at(tf+".value", "toleration value %q: %s", t.Value, msg)
			}
		}
	}
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

func (k checker) label(field, what, s string) bool {
	if s == "" {
		return false
	}
	if len(s) > 63 || !dnsLabel.MatchString(s) {
		k.at(field, "%s %q is not a DNS-1123 label: use lowercase letters, digits and '-', start and end with a letter or digit, at most 63 characters", what, s)
		return false
	}
	return true
}

func (k checker) store() {
	s := k.c.Store
	if s == "" {
		return
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		k.at("store", "store %q is not a URL: use sqlite:///PATH or postgres://USER@HOST/DB", s)
	case u.Scheme == "sqlite":
		if u.Path == "" {
			k.at("store", "store %q names no file: use sqlite:///PATH", s)
		}
	case u.Scheme == "postgres" || u.Scheme == "postgresql":
		if _, hasPassword := u.User.Password(); hasPassword {
			k.at("store", "store URL contains a password: secrets are never written in slipway.yaml; put it in a file and set storePasswordFile")
		} else if u.Query().Has("password") {
			k.at("store", "store URL contains a password parameter: put it in a file and set storePasswordFile")
		}
	default:
		k.at("store", "store %q: scheme must be sqlite or postgres", s)
	}
	if k.c.StorePasswordFile != "" && u != nil && u.Scheme == "sqlite" {
		k.at("storePasswordFile", "storePasswordFile is for postgres stores")
	}
}

// storeKeys checks storeKeyFiles' form; the files themselves are read when the store
// opens, like every other *File field.
func (k checker) storeKeys() {
	if len(k.c.StoreKeyFiles) == 0 && k.written("storeKeyFiles") {
		k.at("storeKeyFiles", "storeKeyFiles is empty: list at least one key file, or remove it to use DATADIR/store.key")
	}
	seen := map[string]int{}
	for i, f := range k.c.StoreKeyFiles {
		field := yamlstrict.Index("storeKeyFiles", i)
		if f == "" {
			k.at(field, "storeKeyFiles entry %d is empty: give the path of a key file", i+1)
			continue
		}
		if j, dup := seen[f]; dup {
			k.at(field, "key file %q is listed twice (also entry %d)", f, j+1)
		}
		seen[f] = i
	}
}

func (k checker) repository(f string, r *Repository) {
	ssh := false
	switch u, err := url.Parse(r.URL); {
	case r.URL == "":
	case scpLike.MatchString(r.URL):
		ssh = true
	case err != nil || u.Host == "" && u.Scheme != "file":
		k.at(f+".url", "url %q must be https://, http://, ssh://, file:// or user@host:path", r.URL)
	case u.Scheme == "ssh":
		ssh = true
	case u.Scheme == "https" || u.Scheme == "http" || u.Scheme == "file":
		if _, has := u.User.Password(); has {
			k.at(f+".url", "url contains a password: secrets are never written in slipway.yaml; use auth.passwordFile or auth.tokenFile")
		}
	default:
		k.at(f+".url", "url %q: scheme must be https, http, ssh or file", r.URL)
	}
	if r.Branch != "" && (strings.HasPrefix(r.Branch, "refs/") || strings.ContainsAny(r.Branch, " ~^:?*[\\")) {
		k.at(f+".branch", "branch %q must be a plain branch name, such as main", r.Branch)
	}
	k.branches(f, r)
	if a := r.Auth; a != nil {
		userPass := a.UsernameFile != "" || a.PasswordFile != ""
		key := a.SSHKeyFile != "" || a.KnownHostsFile != ""
		kinds := 0
		for _, b := range []bool{userPass, a.TokenFile != "", key} {
			if b {
				kinds++
			}
		}
		switch {
		case kinds == 0:
			k.at(f+".auth", "auth needs usernameFile and passwordFile, tokenFile, or sshKeyFile and knownHostsFile")
		case kinds > 1:
			k.at(f+".auth", "auth mixes kinds of credentials: use usernameFile and passwordFile, or tokenFile, or sshKeyFile and knownHostsFile")
		case userPass && (a.UsernameFile == "" || a.PasswordFile == ""):
			k.at(f+".auth", "auth needs both usernameFile and passwordFile")
		case key && a.SSHKeyFile == "":
			k.at(f+".auth", "auth needs sshKeyFile with knownHostsFile")
		case key && a.KnownHostsFile == "":
			k.at(f+".auth", "auth needs knownHostsFile with sshKeyFile: Slipway never trusts an unknown host key")
		case key && !ssh && r.URL != "":
			k.at(f+".auth", "SSH key auth needs an ssh:// or user@host:path url")
		case !key && ssh:
			k.at(f+".auth", "an SSH url needs sshKeyFile and knownHostsFile")
		}
	}
	if fg := r.Forge; fg != nil && fg.URL != "" {
		if u, err := url.Parse(fg.URL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			k.at(f+".forge.url", "forge url %q must be an http(s) URL, such as https://git.example.com", fg.URL)
		}
	}
}

// branches checks that a repository tracks its branches one way: branch, or branches whose
// first entry is a plain name (the default branch) and whose others are names or globs.
func (k checker) branches(f string, r *Repository) {
	_, many := k.pos[f+".branches"]
	switch {
	case r.Branch != "" && many:
		k.at(f+".branches", "set branch or branches, not both: branch: %s is the same as branches: [%s]", r.Branch, r.Branch)
		return
	case r.Branch == "" && !many:
		k.at(f, "repository %q needs branch (the tracked branch) or branches (several, e.g. [main, release/*])", r.Name)
		return
	case many && len(r.Branches) == 0:
		k.at(f+".branches", "branches is empty: list at least the default branch, such as [main]")
		return
	}
	seen := map[string]bool{}
	for i, b := range r.Branches {
		field := yamlstrict.Index(f+".branches", i)
		switch {
		case b == "":
			k.at(field, "empty branch")
		case strings.HasPrefix(b, "refs/") || strings.ContainsAny(b, " ~^:\\"):
			k.at(field, "branch %q must be a branch name or glob, such as main or release/*", b)
		case !doublestar.ValidatePattern(b):
			k.at(field, "invalid branch glob %q: check its brackets and braces", b)
		case i == 0 && strings.ContainsAny(b, "*?[{"):
			k.at(field, "the first branch %q is the default branch (schedules and manual runs use it) and must be a plain name, such as main", b)
		case seen[b]:
			k.at(field, "branch %q is listed twice", b)
		}
		seen[b] = true
	}
}

func (k checker) registry() {
	reg := k.c.Registry
	if reg.Default != "" {
		if _, err := name.NewRegistry(reg.Default, name.StrictValidation); err != nil || strings.Contains(reg.Default, "/") {
			k.at("registry.default", "registry %q must be a host name with an optional port, such as hub.example.com:5000", reg.Default)
		}
	}
	for i, h := range reg.Insecure {
		if _, err := name.NewRegistry(h, name.StrictValidation); err != nil || strings.Contains(h, "/") || h == "" {
			k.at(yamlstrict.Index("registry.insecure", i), "insecure registry %q must be a host name with an optional port", h)
		}
	}
	seen := map[string]string{}
	for i, m := range reg.Mirrors {
		f := yamlstrict.Index("registry.mirrors", i)
		for _, hf := range []struct{ field, host string }{{f + ".registry", m.Registry}, {f + ".endpoint", m.Endpoint}} {
			if _, err := name.NewRegistry(hf.host, name.StrictValidation); err != nil || strings.Contains(hf.host, "/") || hf.host == "" {
				k.at(hf.field, "%q must be a host name with an optional port, such as hub.example.com:5000", hf.host)
			}
		}
		// docker.io and index.docker.io are one registry.
		r, err := name.NewRegistry(m.Registry)
		if err != nil || m.Registry == "" {
			continue
		}
		if prev, dup := seen[r.RegistryStr()]; dup {
			k.at(f+".registry", "registry %s has a mirror already (%s)", m.Registry, prev)
		}
		seen[r.RegistryStr()] = f
		if m.Endpoint == m.Registry {
			k.at(f+".endpoint", "endpoint %s is the registry itself", m.Endpoint)
		}
	}
}

// Names of the built-in policy rules; CEL rules may not take them, so a denial's rule name
// is never ambiguous.
const (
	RuleClusters   = "allowed-clusters"
	RuleNamespaces = "allowed-namespaces"
	RuleRegistries = "allowed-registries"
	RuleKinds      = "trusted-kinds"
	RuleSecrets    = "allowed-secrets"
	RulePush       = "allowed-push"
)

// namePattern is a name or a pattern of one: DNS-1123 label characters and *.
// repoPath is an image repository path, as registries accept it.
var repoPath = regexp.MustCompile(`^[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*$`)

var namePattern = regexp.MustCompile(`^[a-z0-9*]([-a-z0-9*]*[a-z0-9*])?$`)

// policy checks the grants' form and compiles every CEL rule once, so a rule that does not
// compile is a configuration error and evaluation never compiles.
func (k checker) policy(clusters map[string]bool) {
	compiler, err := celrule.NewCompiler()
	if err != nil {
		k.at("policy", "%v", err)
		return
	}
	global := map[string]bool{}
	k.rules(compiler, "policy.rules", k.c.Policy.Rules, global)
	for i := range k.c.Repositories {
		f := yamlstrict.Index("repositories", i) + ".policy"
		g := &k.c.Repositories[i].Policy
		for j, c := range g.Clusters {
			field := yamlstrict.Index(f+".clusters", j)
			switch {
			case !k.pattern(field, "cluster", c):
			case !strings.Contains(c, "*") && !clusters[c]:
				k.at(field, "cluster %q is not defined under clusters", c)
			}
		}
		for j, ns := range g.Namespaces {
			k.pattern(yamlstrict.Index(f+".namespaces", j), "namespace", ns)
		}
		for j, reg := range g.Registries {
			k.registryPrefix(yamlstrict.Index(f+".registries", j), reg)
		}
		for j, reg := range g.Push {
			k.registryPrefix(yamlstrict.Index(f+".push", j), reg)
		}
		k.secretGrants(f+".secrets", g.Secrets, clusters)
		names := maps.Clone(global)
		k.rules(compiler, f+".rules", g.Rules, names)
	}
}

// secretPattern is a Secret name (a DNS-1123 subdomain) or a pattern of one.
var secretPattern = regexp.MustCompile(`^[a-z0-9*]([-.a-z0-9*]*[a-z0-9*])?$`)

// secretGrants checks the secret sources' form: patterns, and folders that are absolute and
// clean, so a grant reads the same wherever the daemon starts.
func (k checker) secretGrants(f string, g SecretGrants, clusters map[string]bool) {
	for i, s := range g.Kubernetes {
		field := yamlstrict.Index(f+".kubernetes", i)
		if k.pattern(field+".cluster", "cluster", s.Cluster) && !strings.Contains(s.Cluster, "*") && !clusters[s.Cluster] {
			k.at(field+".cluster", "cluster %q is not defined under clusters", s.Cluster)
		}
		k.pattern(field+".namespace", "namespace", s.Namespace)
		if s.Name != "" && (len(s.Name) > 253 || !secretPattern.MatchString(s.Name)) {
			k.at(field+".name", "Secret name %q must be a name (lowercase letters, digits, '-' and '.') where * matches any run of characters, such as shop-db or shop-*", s.Name)
		}
	}
	for i, d := range g.Files {
		field := yamlstrict.Index(f+".files", i)
		switch {
		case !filepath.IsAbs(d):
			k.at(field, "folder %q must be an absolute path, such as /etc/slipway/secrets/shop", d)
		case filepath.Clean(d) != d:
			k.at(field, "folder %q is not clean: write %s", d, filepath.Clean(d))
		case d == "/":
			k.at(field, "folder / would grant every file on the daemon's host (its API token, kubeconfigs, Git credentials); grant a folder that holds only this repository's secrets")
		}
	}
}

func (k checker) pattern(field, what, s string) bool {
	if len(s) > 63 || !namePattern.MatchString(s) {
		k.at(field, "%s %q must be a name (lowercase letters, digits and '-') where * matches any run of characters, such as prod-* or *", what, s)
		return false
	}
	return true
}

// registryPrefix checks HOST[:PORT][/PATH] or *.
func (k checker) registryPrefix(field, s string) {
	if s == "*" {
		return
	}
	host, repo, _ := strings.Cut(s, "/")
	_, err := name.NewRegistry(host, name.StrictValidation)
	if err != nil || (repo != "" && !repoPath.MatchString(repo)) || (!strings.Contains(host, ".") && !strings.Contains(host, ":") && host != "localhost") {
		k.at(field, "registry %q must be HOST[:PORT][/PATH] (such as hub.example.com or hub.example.com:5000/team), or * for any; Docker Hub is docker.io", s)
	}
}

func (k checker) rules(compiler *celrule.Compiler, f string, rules []Rule, names map[string]bool) {
	for i := range rules {
		field := yamlstrict.Index(f, i)
		r := &rules[i]
		pos := k.pos.Of(field)
		r.At = fmt.Sprintf("%s:%d:%d", k.c.File, pos.Line, pos.Column)
		if k.label(field+".name", "rule name", r.Name) {
			switch r.Name {
			case RuleClusters, RuleNamespaces, RuleRegistries, RuleKinds, RuleSecrets, RulePush:
				k.at(field+".name", "rule name %q is a built-in rule's; choose another", r.Name)
			default:
				if names[r.Name] {
					k.at(field+".name", "rule name %q is used twice (repositories' rules add to policy.rules, so their names must differ too)", r.Name)
				}
			}
			names[r.Name] = true
		}
		if r.Expression == "" {
			continue
		}
		prg, err := compiler.Compile(r.Expression)
		if err != nil {
			k.at(field+".expression", "rule %q: %v", r.Name, err)
			continue
		}
		r.Program = prg
	}
}

// repoLimits checks the values written; a written 0 would be a surprising way to say "default".
func (k checker) repoLimits(f string, l RepoLimits) {
	if k.written(f+".pipelinesPerFile") && l.PipelinesPerFile < 1 {
		k.at(f+".pipelinesPerFile", "pipelinesPerFile must be at least 1")
	}
	if k.written(f+".minCronInterval") && (l.MinCronInterval.Duration <= 0 || l.MinCronInterval.Duration > 24*time.Hour) {
		k.at(f+".minCronInterval", "minCronInterval must be more than 0 and at most 24h")
	}
	file, line := l.ManifestFileSize.Bytes, l.ManifestLineSize.Bytes
	if file == 0 {
		file = pipeline.DefaultManifestFileSize
	}
	if line > file {
		k.at(f+".manifestLineSize", "manifestLineSize (%d bytes) is larger than manifestFileSize (%d bytes)", line, file)
	}
}
