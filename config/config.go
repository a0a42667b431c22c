// Package config is slipway.yaml, the daemon's own configuration: where it listens and keeps
// data, which repositories it follows, which clusters and registries it may use. It is parsed
// and validated as strictly as a pipeline, and secrets in it are only ever paths to files.
package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/slipwayhq/slipway/pipeline"
	"github.com/slipwayhq/slipway/pipeline/diag"
	"github.com/slipwayhq/slipway/pipeline/yamlstrict"
	"github.com/slipwayhq/slipway/policy/celrule"
)

// Config is slipway.yaml.
type Config struct {
	Listen            string        `yaml:"listen,omitempty" default:":8080" doc:"Address the HTTP API, UI and webhooks listen on, host:port."`
	DataDir           string        `yaml:"dataDir" required:"true" doc:"Folder for Git mirrors, workspaces and logs."`
	APITokenFile      string        `yaml:"apiTokenFile,omitempty" doc:"File holding one bearer token for the HTTP API: the identity api-token with role admin. Unset (and no apiTokensFile): the API refuses every call; webhooks still work."`
	APITokensFile     string        `yaml:"apiTokensFile,omitempty" doc:"YAML file of the API's identities: name, tokenSHA256, roles, repositories (see docs/operations.md)."`
	Store             string        `yaml:"store,omitempty" doc:"Database URL: sqlite:///PATH (default: sqlite://DATADIR/slipway.db) or postgres://USER@HOST/DB."`
	StorePasswordFile string        `yaml:"storePasswordFile,omitempty" doc:"File holding the PostgreSQL password."`
	StoreKeyFiles     []string      `yaml:"storeKeyFiles,omitempty" doc:"Files holding the keys (32 random bytes, raw or base64) that encrypt stored revisions: the first encrypts, all decrypt. Default: DATADIR/store.key, created on first start."`
	UISessionKeyFile  string        `yaml:"uiSessionKeyFile,omitempty" doc:"File holding the key (32 random bytes, raw or base64) that signs web console sessions and CSRF tokens. Default: DATADIR/ui-session.key, made on first start. Replicas (ha) must share one: set it to a file from a Secret."`
	Repositories      []Repository  `yaml:"repositories,omitempty" doc:"Git repositories whose .pipeline.yaml Slipway follows."`
	Clusters          []Cluster     `yaml:"clusters,omitempty" doc:"Kubernetes clusters pipelines may deploy to, by name."`
	Registry          Registry      `yaml:"registry,omitempty" doc:"Container registry defaults and credentials."`
	Charts            Charts        `yaml:"charts,omitempty" doc:"Where charts are published."`
	Builder           Builder       `yaml:"builder,omitempty" doc:"How images are built."`
	Executor          Executor      `yaml:"executor,omitempty" doc:"Where script tasks run."`
	Policy            Policy        `yaml:"policy,omitempty" doc:"Rules every repository's deploys must pass (repositories[].policy grants what each may deploy)."`
	Runs              Runs          `yaml:"runs,omitempty" doc:"Bounds on the run engine."`
	MemoryLimit       ByteSize      `yaml:"memoryLimit,omitempty" default:"256Mi" doc:"Soft limit on the daemon's Go memory (heap, stacks, runtime): near it the garbage collector runs more often and returns freed memory to the system at once. At least 32Mi. The GOMEMLIMIT environment variable, when set, wins (GOMEMLIMIT=off: no limit)."`
	GCPercent         int           `yaml:"gcPercent,omitempty" default:"35" doc:"The garbage collector's target: it collects when the heap has grown this many percent over what the last collection left live (GOGC). Lower holds the heap nearer its live data for more collections. Between 10 and 1000. The GOGC environment variable, when set, wins (GOGC=off: no collection but near memoryLimit)."`
	Git               Git           `yaml:"git,omitempty" doc:"Bounds on Git traffic."`
	Webhooks          Webhooks      `yaml:"webhooks,omitempty" doc:"Bounds on webhook deliveries."`
	Retention         Retention     `yaml:"retention,omitempty" doc:"How long deliveries, pull request events and drift events are kept."`
	ExternalURL       string        `yaml:"externalURL,omitempty" doc:"The address people reach this daemon at, such as https://slipway.example.com; notifications link to run pages under it."`
	Notifications     Notifications `yaml:"notifications,omitempty" doc:"Who is told about finished runs, approvals waiting and drift, and how (docs/notifications.md)."`
	HA                *HA           `yaml:"ha,omitempty" doc:"Run several replicas that share the repositories, coordinated by Kubernetes Leases (docs/operations.md#several-replicas). Needs a postgres store."`

	File string `yaml:"-"`
	// Positions are where each field was written, packed once validation, which reads
	// them as a map, is done: at a thousand repositories the map held 3.2 MB for the
	// daemon's lifetime, the packed table 1.0 MB, and later errors (a store key file that
	// cannot be read) only look one up.
	Positions yamlstrict.Table `yaml:"-"`
}

// FieldHint explains that secrets are never written inline.
func (*Config) FieldHint(key string) string { return inlineSecretHint(key) }

// Repository is one Git repository.
type Repository struct {
	Name   string `yaml:"name" required:"true" doc:"DNS-1123 label; webhooks arrive at POST /hooks/NAME."`
	URL    string `yaml:"url" required:"true" doc:"Clone URL: https://, http://, ssh:// or user@host:path."`
	Branch string `yaml:"branch,omitempty" doc:"The tracked branch, when there is one: its .pipeline.yaml is authoritative for schedules and manual runs. Set branch or branches, not both."`
	// Branches is the several-branches form of Branch.
	Branches []string   `yaml:"branches,omitempty" doc:"Tracked branches: names or globs ('*' within a path segment, '**' across), e.g. [main, release/*]. Each tracked branch's pushes run its pipelines with GIT_BRANCH set. The first entry must be a plain name: the default branch, whose .pipeline.yaml is authoritative for schedules and manual runs. Set branch or branches, not both."`
	Poll     Duration   `yaml:"poll,omitempty" default:"1m" doc:"How often to look for new commits; 0 means webhooks only."`
	Auth     *Auth      `yaml:"auth,omitempty" doc:"Credentials for fetching, as files."`
	Webhook  *Webhook   `yaml:"webhook,omitempty" doc:"Signed webhooks from the forge."`
	Forge    *Forge     `yaml:"forge,omitempty" doc:"The forge's API, for pull requests, reviews and statuses."`
	Policy   Grants     `yaml:"policy,omitempty" doc:"What the repository's deploy tasks may deploy, and where. Unset: nothing anywhere (docs/policy.md)."`
	Limits   RepoLimits `yaml:"limits,omitempty" doc:"What the repository's files may cost: sizes of the pipeline file and of rendered files, pipelines per file, the shortest cron interval."`
}

// DefaultBranch is the branch whose pipeline file holds the schedules, and which manual runs
// use when no branch is given: branch, or the first of branches.
func (r *Repository) DefaultBranch() string {
	if r.Branch != "" || len(r.Branches) == 0 {
		return r.Branch
	}
	return r.Branches[0]
}

// BranchPatterns are the tracked branches as globs: [branch], or branches.
func (r *Repository) BranchPatterns() []string {
	if r.Branch != "" {
		return []string{r.Branch}
	}
	return r.Branches
}

// Tracks reports whether pushes to branch concern the repository's pipelines.
func (r *Repository) Tracks(branch string) bool {
	return TracksBranch(r.BranchPatterns(), branch)
}

// TracksBranch reports whether branch matches one of the tracked-branch globs.
func TracksBranch(patterns []string, branch string) bool {
	return pipeline.MatchesAny(patterns, branch)
}

// RepoLimits bound what one repository's files may cost. A field left out takes the
// default (pipeline.Limits); each refusal names the field that raises it.
type RepoLimits struct {
	PipelineFileSize ByteSize `yaml:"pipelineFileSize,omitempty" doc:"Largest .pipeline.yaml, checked before it is parsed. Default: 1Mi."`
	PipelinesPerFile int      `yaml:"pipelinesPerFile,omitempty" doc:"Most pipelines (YAML documents) in the pipeline file. Default: 100."`
	ManifestFileSize ByteSize `yaml:"manifestFileSize,omitempty" doc:"Largest file a run renders: manifests, valuesFiles, chart files substituted. Default: 8Mi."`
	ManifestLineSize ByteSize `yaml:"manifestLineSize,omitempty" doc:"Longest line of such a file. Default: 1Mi."`
	MinCronInterval  Duration `yaml:"minCronInterval,omitempty" doc:"Shortest time between two ticks of a schedule, at most 24h. Default: 1m."`
}

// PipelineLimits are the repository's limits as pipelines are checked and run with them.
func (r *Repository) PipelineLimits() pipeline.Limits {
	l := r.Limits
	return pipeline.Limits{
		PipelineFileSize: l.PipelineFileSize.Bytes,
		PipelinesPerFile: l.PipelinesPerFile,
		ManifestFileSize: l.ManifestFileSize.Bytes,
		ManifestLineSize: l.ManifestLineSize.Bytes,
		MinCronInterval:  l.MinCronInterval.Duration,
	}.WithDefaults()
}

// ByteSize is a number of bytes written as a Kubernetes quantity: 1048576, 512Ki, 1Mi, 2M.
type ByteSize struct{ Bytes int64 }

// UnmarshalText implements encoding.TextUnmarshaler.
func (b *ByteSize) UnmarshalText(text []byte) error {
	q, err := resource.ParseQuantity(string(text))
	if err != nil || q.Sign() <= 0 {
		return fmt.Errorf("invalid size %q: use a number of bytes, or one with a unit such as 512Ki or 1Mi", text)
	}
	b.Bytes = q.Value()
	return nil
}

// Describe names the expected form in type errors.
func (ByteSize) Describe() string { return "a size (such as 512Ki, 1Mi)" }

// FieldHint explains that secrets are never written inline.
func (*Repository) FieldHint(key string) string { return inlineSecretHint(key) }

// Auth holds Git credentials as files.
type Auth struct {
	UsernameFile   string `yaml:"usernameFile,omitempty" doc:"File holding the user name (with passwordFile)."`
	PasswordFile   string `yaml:"passwordFile,omitempty" doc:"File holding the password."`
	TokenFile      string `yaml:"tokenFile,omitempty" doc:"File holding an access token (instead of user name and password)."`
	SSHKeyFile     string `yaml:"sshKeyFile,omitempty" doc:"Private SSH key file (for ssh:// and user@host:path URLs)."`
	KnownHostsFile string `yaml:"knownHostsFile,omitempty" doc:"known_hosts file the server's key must be in (with sshKeyFile)."`
}

// FieldHint explains that secrets are never written inline.
func (*Auth) FieldHint(key string) string { return inlineSecretHint(key) }

// Webhook verifies deliveries from a forge.
type Webhook struct {
	Type       string `yaml:"type" required:"true" enum:"github,gitlab,gitea,generic" doc:"Signature scheme: github, gitlab, gitea or generic (HMAC-SHA256)."`
	SecretFile string `yaml:"secretFile" required:"true" doc:"File holding the shared webhook secret."`
}

// FieldHint explains that secrets are never written inline.
func (*Webhook) FieldHint(key string) string { return inlineSecretHint(key) }

// Forge is the forge's API.
type Forge struct {
	Type      string `yaml:"type" required:"true" enum:"github,gitlab,gitea" doc:"github, gitlab or gitea."`
	URL       string `yaml:"url" required:"true" doc:"Base URL of the forge, e.g. https://git.example.com."`
	TokenFile string `yaml:"tokenFile" required:"true" doc:"File holding an API token."`
}

// FieldHint explains that secrets are never written inline.
func (*Forge) FieldHint(key string) string { return inlineSecretHint(key) }

// Policy holds the rules every repository's deploys must pass.
type Policy struct {
	Rules []Rule `yaml:"rules,omitempty" doc:"CEL rules every rendered object of every repository must pass."`
}

// Grants is what one repository's deploy tasks may deploy: the safe default is nothing, so
// each grant is written down and reviewable in slipway.yaml.
type Grants struct {
	Clusters   []string     `yaml:"clusters,omitempty" doc:"Clusters its deploy tasks may target: names, or patterns where * matches any run of characters (prod-*, *). Default: none."`
	Namespaces []string     `yaml:"namespaces,omitempty" doc:"Namespaces its objects may be in and Namespace objects it may create: names or patterns with *. Default: none."`
	Registries []string     `yaml:"registries,omitempty" doc:"Registries its workloads' images may come from: HOST[:PORT][/PATH] prefixes, or * for any. Default: none."`
	Trusted    bool         `yaml:"trusted,omitempty" doc:"Allow cluster-scoped RBAC, admission webhooks and CustomResourceDefinitions, denied otherwise."`
	Rules      []Rule       `yaml:"rules,omitempty" doc:"CEL rules its rendered objects must pass, besides policy.rules."`
	Secrets    SecretGrants `yaml:"secrets,omitempty" doc:"Where its pipeline secrets may come from. Default: nowhere."`
	Push       []string     `yaml:"push,omitempty" doc:"Registry paths its build-image and publish-chart tasks may push to, and whose tags keep may delete: HOST[:PORT][/PATH] prefixes, or * for any. Default: none."`
}

// SecretGrants are the secret sources a repository's pipelines may read: a pipeline file is
// written by whoever can push, and the daemon can read far more than any one pipeline needs.
type SecretGrants struct {
	Kubernetes []KubernetesSecretGrant `yaml:"kubernetes,omitempty" doc:"Kubernetes Secrets its pipelines may read, by cluster, namespace and name. Default: none."`
	Files      []string                `yaml:"files,omitempty" doc:"Absolute folders on the daemon's host under which its file: secrets may be (symlinks resolved first). Default: none, so no file: secret."`
}

// KubernetesSecretGrant matches Kubernetes Secrets by patterns where * matches any run of
// characters.
type KubernetesSecretGrant struct {
	Cluster   string `yaml:"cluster" required:"true" doc:"Cluster name or pattern, such as staging or *."`
	Namespace string `yaml:"namespace" required:"true" doc:"Namespace name or pattern, such as shop or shop-*."`
	Name      string `yaml:"name" required:"true" doc:"Secret name or pattern, such as shop-db or shop-*."`
}

// Rule is a CEL expression every rendered object must satisfy.
type Rule struct {
	Name       string `yaml:"name" required:"true" doc:"DNS-1123 label; denials name the rule by it."`
	Expression string `yaml:"expression" required:"true" doc:"CEL over the variable object (the rendered object); true allows the object."`
	Message    string `yaml:"message,omitempty" doc:"What a denial says. Default: the expression."`

	// Program is Expression compiled, set when the configuration is parsed.
	Program *celrule.Program `yaml:"-"`
	// At is where the rule is written, FILE:LINE:COL, for denials to point at.
	At string `yaml:"-"`
}

// Cluster is a Kubernetes cluster by name.
type Cluster struct {
	Name       string `yaml:"name" required:"true" doc:"DNS-1123 label used by pipelines' cluster fields."`
	Kubeconfig string `yaml:"kubeconfig,omitempty" doc:"Kubeconfig file."`
	Context    string `yaml:"context,omitempty" doc:"Context in the kubeconfig. Default: its current context."`
	InCluster  bool   `yaml:"inCluster,omitempty" doc:"Use the service account Slipway runs as (instead of kubeconfig)."`
}

// Registry holds registry defaults.
type Registry struct {
	Default      string   `yaml:"default,omitempty" doc:"Registry host[:port] for build-image tasks that name none."`
	DockerConfig string   `yaml:"dockerConfig,omitempty" doc:"Docker config.json with registry credentials."`
	Insecure     []string `yaml:"insecure,omitempty" doc:"Registry hosts spoken to over plain HTTP."`
	Mirrors      []Mirror `yaml:"mirrors,omitempty" doc:"Registries Slipway reaches at another endpoint: image names keep the registry, its pulls and pushes go to the endpoint."`
}

// Mirror sends everything Slipway asks of one registry to another endpoint, as containerd's
// registry mirrors do, but with no fallback: the registry itself is never contacted.
type Mirror struct {
	Registry string `yaml:"registry" required:"true" doc:"The registry as image names write it, host[:port]; docker.io for Docker Hub names such as nginx:1.27."`
	Endpoint string `yaml:"endpoint" required:"true" doc:"host[:port] serving the same repositories; its credentials (dockerConfig) and insecure apply."`
}

// MirrorEndpoints maps each mirrored registry to its endpoint.
func (r Registry) MirrorEndpoints() map[string]string {
	if len(r.Mirrors) == 0 {
		return nil
	}
	m := make(map[string]string, len(r.Mirrors))
	for _, mr := range r.Mirrors {
		m[mr.Registry] = mr.Endpoint
	}
	return m
}

// Charts holds chart publishing defaults.
type Charts struct {
	Repository string `yaml:"repository,omitempty" doc:"OCI repository for charts, oci://HOST/PATH."`
}

// Builder chooses the image builder.
type Builder struct {
	Type    string `yaml:"type,omitempty" enum:"native,buildkit" default:"native" doc:"native (embedded; no RUN) or buildkit."`
	Address string `yaml:"address,omitempty" doc:"buildkitd address (unix://, tcp://), for type buildkit."`
}

// Executor chooses where script tasks run (docs/config.md#executor).
type Executor struct {
	Default    string              `yaml:"default,omitempty" enum:"buildkit,kubernetes,local" doc:"Executor of script tasks that name none. Default: buildkit when builder.type is buildkit, else the only one configured."`
	BuildKit   *BuildKitExecutor   `yaml:"buildkit,omitempty" doc:"Scripts as BuildKit execs. Default address: builder.address."`
	Kubernetes *KubernetesExecutor `yaml:"kubernetes,omitempty" doc:"Scripts as Kubernetes Jobs."`
	Local      *LocalExecutor      `yaml:"local,omitempty" doc:"Scripts as processes on the daemon's host; for trusted single-user setups only."`
}

// BuildKitExecutor runs scripts as BuildKit execs.
type BuildKitExecutor struct {
	Address string `yaml:"address,omitempty" doc:"buildkitd address (unix://, tcp://). Default: builder.address."`
}

// KubernetesExecutor runs scripts as Jobs.
type KubernetesExecutor struct {
	Cluster        string            `yaml:"cluster" required:"true" doc:"Cluster (a name from clusters) the Jobs run in."`
	Namespace      string            `yaml:"namespace" required:"true" doc:"Namespace of the Jobs."`
	ServiceAccount string            `yaml:"serviceAccount,omitempty" doc:"Service account of the Jobs' pods. Default: the namespace's default."`
	NodeSelector   map[string]string `yaml:"nodeSelector,omitempty" doc:"Node labels the pods must match."`
	Tolerations    []Toleration      `yaml:"tolerations,omitempty" doc:"Taints the pods tolerate."`
}

// Toleration is a Kubernetes toleration.
type Toleration struct {
	Key      string `yaml:"key,omitempty" doc:"Taint key; empty with operator Exists matches every taint."`
	Operator string `yaml:"operator,omitempty" enum:"Equal,Exists" default:"Equal" doc:"Equal or Exists."`
	Value    string `yaml:"value,omitempty" doc:"Taint value, for Equal."`
	Effect   string `yaml:"effect,omitempty" enum:"NoSchedule,PreferNoSchedule,NoExecute" doc:"Taint effect; empty matches every effect."`
}

// LocalExecutor runs scripts as processes on the daemon's host.
type LocalExecutor struct {
	Enabled bool `yaml:"enabled" required:"true" doc:"true lets pipelines run scripts on this host with the daemon's rights."`
}

// Duration is a Go duration written as text ("90s", "1m") or 0.
type Duration struct{ time.Duration }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil || v < 0 {
		return fmt.Errorf("invalid duration %q: use a number with a unit, such as 30s or 5m", b)
	}
	d.Duration = v
	return nil
}

// Describe names the expected form in type errors.
func (Duration) Describe() string { return "a duration (such as 30s, 1m)" }

// secretFields are keys people write when they mean the *File field next to them.
var secretFields = map[string]string{
	"password": "passwordFile", "token": "tokenFile", "secret": "secretFile", "username": "usernameFile",
	"sshKey": "sshKeyFile", "knownHosts": "knownHostsFile", "storePassword": "storePasswordFile",
	"apiToken": "apiTokenFile", "apiTokens": "apiTokensFile", "storeKey": "storeKeyFiles", "storeKeys": "storeKeyFiles",
}

func inlineSecretHint(key string) string {
	if file, ok := secretFields[key]; ok {
		return fmt.Sprintf("secrets are never written in slipway.yaml; put the value in a file and set %s to its path", file)
	}
	return ""
}

// Parse reads and validates slipway.yaml from data. Relative file paths in it are left as
// written; Load resolves them against the file's folder.
func Parse(file string, data []byte) (*Config, error) {
	c := &Config{File: file}
	err := parseDocument(file, data, c, "empty configuration: dataDir is required", "slipway.yaml",
		func(r diag.Reporter, pos yamlstrict.Positions) {
			validate(c, pos, r)
			c.Positions = yamlstrict.Pack(pos)
		})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// parseDocument decodes the one YAML document of file into v strictly and hands its
// positions to check; errors come back sorted, each with file, line and field. what names
// the file in the error about a second document.
func parseDocument(file string, data []byte, v any, ifEmpty, what string, check func(diag.Reporter, yamlstrict.Positions)) error {
	var errs diag.List
	r := diag.Reporter{File: file, List: &errs}
	docs := yamlstrict.ReadDocuments(r, data)
	switch {
	case len(docs) == 0 && len(errs) == 0:
		r.At(diag.Pos{Line: 1, Column: 1}, "", "%s", ifEmpty)
	case len(docs) > 1:
		r.At(diag.Pos{Line: docs[1].Line, Column: docs[1].Column}, "", "%s holds one YAML document, not %d", what, len(docs))
	}
	if len(docs) > 0 {
		check(r, yamlstrict.Decode(r, docs[0], v))
	}
	errs.Sort()
	return errs.Err()
}

// Load reads, validates and resolves the configuration file at path: relative paths of files
// in it are taken from the folder holding it, so the daemon's working folder does not matter.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading configuration: %w", err)
	}
	c, err := Parse(path, data)
	if err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("resolving the configuration's folder: %w", err)
	}
	c.resolve(dir)
	return c, nil
}

func (c *Config) resolve(dir string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	abs(&c.DataDir)
	abs(&c.StorePasswordFile)
	abs(&c.APITokenFile)
	abs(&c.APITokensFile)
	abs(&c.UISessionKeyFile)
	for i := range c.StoreKeyFiles {
		abs(&c.StoreKeyFiles[i])
	}
	abs(&c.Registry.DockerConfig)
	for i := range c.Repositories {
		r := &c.Repositories[i]
		if r.Auth != nil {
			abs(&r.Auth.UsernameFile)
			abs(&r.Auth.PasswordFile)
			abs(&r.Auth.TokenFile)
			abs(&r.Auth.SSHKeyFile)
			abs(&r.Auth.KnownHostsFile)
		}
		if r.Webhook != nil {
			abs(&r.Webhook.SecretFile)
		}
		if r.Forge != nil {
			abs(&r.Forge.TokenFile)
		}
	}
	for i := range c.Clusters {
		abs(&c.Clusters[i].Kubeconfig)
	}
	c.resolveNotifications(abs)
	if c.Store == "" {
		c.Store = "sqlite://" + filepath.Join(c.DataDir, "slipway.db")
	}
}

// DefaultStoreKeyFile is the key Slipway creates and uses when storeKeyFiles is not set.
func (c *Config) DefaultStoreKeyFile() string { return filepath.Join(c.DataDir, "store.key") }

// Repository returns the repository of that name, or nil.
func (c *Config) Repository(name string) *Repository {
	for i := range c.Repositories {
		if c.Repositories[i].Name == name {
			return &c.Repositories[i]
		}
	}
	return nil
}

// HasCluster reports whether a cluster of that name is configured.
func (c *Config) HasCluster(name string) bool {
	for _, cl := range c.Clusters {
		if cl.Name == name {
			return true
		}
	}
	return false
}

// ClusterNames lists the configured clusters.
func (c *Config) ClusterNames() []string {
	names := make([]string, len(c.Clusters))
	for i, cl := range c.Clusters {
		names[i] = cl.Name
	}
	return names
}

// DefaultRegistry is registry.default.
func (c *Config) DefaultRegistry() string { return c.Registry.Default }

// ChartRepository is charts.repository.
func (c *Config) ChartRepository() string { return c.Charts.Repository }

// BuildKitExecutorAddress is the buildkitd that runs script tasks: executor.buildkit.address,
// or builder.address when the builder is BuildKit; "" when scripts do not run on BuildKit.
func (c *Config) BuildKitExecutorAddress() string {
	if c.Executor.BuildKit != nil && c.Executor.BuildKit.Address != "" {
		return c.Executor.BuildKit.Address
	}
	if c.Builder.Type == "buildkit" {
		return c.Builder.Address
	}
	return ""
}

// ScriptExecutors lists the executors slipway.yaml configures, in a fixed order.
func (c *Config) ScriptExecutors() []string {
	var out []string
	if c.BuildKitExecutorAddress() != "" {
		out = append(out, "buildkit")
	}
	if c.Executor.Kubernetes != nil {
		out = append(out, "kubernetes")
	}
	if c.Executor.Local != nil && c.Executor.Local.Enabled {
		out = append(out, "local")
	}
	return out
}

// DefaultExecutor is executor.default, or buildkit when it is configured, or the only
// executor configured; "" when none is.
func (c *Config) DefaultExecutor() string {
	if c.Executor.Default != "" {
		return c.Executor.Default
	}
	all := c.ScriptExecutors()
	switch {
	case slices.Contains(all, "buildkit"):
		return "buildkit"
	case len(all) == 1:
		return all[0]
	}
	return ""
}

// KubernetesExecutor is where executor kubernetes runs its Jobs; "" when it is not configured.
func (c *Config) KubernetesExecutor() (cluster, namespace string) {
	if x := c.Executor.Kubernetes; x != nil {
		return x.Cluster, x.Namespace
	}
	return "", ""
}

// ErrNoExecutor says a script task names an executor slipway.yaml does not configure.
var ErrNoExecutor = errors.New("executor not configured")

// ScriptExecutor resolves a script task's executor ("" = the default) to a configured one.
func (c *Config) ScriptExecutor(name string) (string, error) {
	all := c.ScriptExecutors()
	if name == "" {
		name = c.DefaultExecutor()
		if name == "" {
			return "", fmt.Errorf("no executor for script tasks in %s: configure executor (buildkit, or local for trusted single-user setups): %w", c.fileName(), ErrNoExecutor)
		}
	}
	if !slices.Contains(all, name) {
		configured := "none is"
		if len(all) > 0 {
			configured = strings.Join(all, ", ") + " are"
			if len(all) == 1 {
				configured = all[0] + " is"
			}
		}
		return "", fmt.Errorf("executor %s is not configured in %s (%s): %w", name, c.fileName(), configured, ErrNoExecutor)
	}
	return name, nil
}

func (c *Config) fileName() string {
	if c.File == "" {
		return "slipway.yaml"
	}
	return filepath.Base(c.File)
}
