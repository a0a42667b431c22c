// Package pipeline is the `.pipeline.yaml` language: its types, strict parsing with
// positions, validation that reports every problem at once, and trigger matching. It reads
// files it is given and never touches the network.
package pipeline

import (
	"fmt"
	"time"

	"github.com/slipwayhq/slipway/pipeline/yamlstrict"
)

// Pipeline is one YAML document of a `.pipeline.yaml`.
type Pipeline struct {
	Name        string   `yaml:"name" required:"true" doc:"Pipeline name: a DNS-1123 label (lowercase letters, digits, '-'; at most 63), unique within the repository."`
	Description string   `yaml:"description,omitempty" doc:"Free text shown in the UI and history."`
	Timeout     Duration `yaml:"timeout,omitempty" default:"60m" doc:"Limit for the whole run (Go duration: 90s, 30m, 1h30m)."`
	// RetryInterrupted: a run whose Slipway process died mid-run is started again.
	RetryInterrupted bool              `yaml:"retryInterrupted,omitempty" default:"false" doc:"Start a run again, once, at the same commit under a new BUILD_ID (trigger retry, the interrupted run as parent) when the Slipway process running it died before it ended, unless a later run of the branch is at another commit. Without it the run stays interrupted. Only for pipelines whose tasks are safe to repeat."`
	Triggers         *Triggers         `yaml:"triggers,omitempty" doc:"When the pipeline runs by itself. Omitted: on every push to a tracked branch of the repository. Manual runs are always allowed."`
	Variables        map[string]string `yaml:"variables,omitempty" doc:"Names and values for ${...}. Names: letters, digits, '_', not starting with a digit; values may use built-in variables."`
	Secrets          []Secret          `yaml:"secrets,omitempty" doc:"Secret values for ${...}, masked everywhere Slipway prints or stores."`
	// Environments are listed in promotion order: slipway promote moves a run's artifact from
	// one to the next.
	Environments []Environment `yaml:"environments,omitempty" doc:"Deploy targets named once, in promotion order (e.g. dev, staging, prod): deploy tasks name one with environment, and slipway promote deploys what a run deployed to one environment to the next."`
	Stages       []Stage       `yaml:"stages" required:"true" doc:"Stages run in order; a failed stage stops the run."`

	// File and Positions say where the pipeline was read from, so that later checks (policy,
	// runs) can point at the line that caused them.
	File      string           `yaml:"-"`
	Positions yamlstrict.Table `yaml:"-"`
}

// Triggers are the events that start a run besides manual ones.
type Triggers struct {
	Push        *PushTrigger        `yaml:"push,omitempty" doc:"Run on pushes. Present with nothing under it: every push to a tracked branch."`
	PullRequest *PullRequestTrigger `yaml:"pullRequest,omitempty" doc:"Preview on pull requests: render and diff against the cluster, report on the pull request, never apply."`
	Schedules   []Schedule          `yaml:"schedules,omitempty" doc:"Run on a clock, at the default branch's head."`
	Tags        []string            `yaml:"tags,omitempty" doc:"Run when a tag matching one of these globs is pushed (e.g. v*), with the pipeline file at the tagged commit; GIT_TAG is the tag and VERSION the tag without a leading v."`
}

// PushTrigger filters pushes.
type PushTrigger struct {
	Branches []string `yaml:"branches,omitempty" doc:"Branch globs ('*' within a path segment, '**' across). Default: the repository's tracked branches."`
	Paths    []string `yaml:"paths,omitempty" doc:"Run only when a changed file matches one of these globs (relative to the repository root)."`
}

// PullRequestTrigger filters pull requests.
type PullRequestTrigger struct {
	Branches []string `yaml:"branches,omitempty" doc:"Globs for the pull request's target branch. Default: the repository's tracked branch."`
	Paths    []string `yaml:"paths,omitempty" doc:"Preview only when a changed file matches one of these globs."`
}

// Concurrency says what a schedule does when its previous run is still going.
type Concurrency string

// The schedule concurrency policies.
const (
	ConcurrencyAllow   Concurrency = "allow"
	ConcurrencyForbid  Concurrency = "forbid"
	ConcurrencyReplace Concurrency = "replace"
)

// Schedule is one cron trigger.
type Schedule struct {
	Cron             string      `yaml:"cron" required:"true" doc:"Five-field cron expression (minute hour day-of-month month day-of-week) or a descriptor such as @daily or @every 2h."`
	Timezone         string      `yaml:"timezone,omitempty" default:"UTC" doc:"IANA time zone the expression is read in, e.g. Asia/Shanghai."`
	Concurrency      Concurrency `yaml:"concurrency,omitempty" enum:"allow,forbid,replace" default:"forbid" doc:"When the previous run is still going: allow another, forbid (skip this tick) or replace (cancel it)."`
	StartingDeadline Duration    `yaml:"startingDeadline,omitempty" default:"10m" doc:"A tick missed while the daemon was down still runs (once) if the daemon is back within this long."`
}

// Secret is a named secret value and where it comes from: a key of a Kubernetes Secret, or a
// file the daemon can read.
type Secret struct {
	Name      string `yaml:"name" required:"true" doc:"Name used in ${...} and secretEnv. Same rules as variable names."`
	Secret    string `yaml:"secret,omitempty" doc:"Name of a Kubernetes Secret (with key)."`
	Key       string `yaml:"key,omitempty" doc:"Key in the Kubernetes Secret."`
	Namespace string `yaml:"namespace,omitempty" doc:"Namespace of the Kubernetes Secret. Default: default."`
	Cluster   string `yaml:"cluster,omitempty" doc:"Cluster (a name from slipway.yaml) holding the Secret. Default: the cluster Slipway runs in."`
	File      string `yaml:"file,omitempty" doc:"Absolute path of a file on the daemon's host holding the value (instead of secret/key); its folder must be granted in policy.secrets.files."`
}

// Environment is a named deploy target: where its deploys go, the values they render with,
// the gate in front of them and when they may happen.
type Environment struct {
	Name           string            `yaml:"name" required:"true" doc:"Environment name: a DNS-1123 label, unique within the pipeline; ${ENVIRONMENT} in the tasks deploying to it."`
	Cluster        string            `yaml:"cluster" required:"true" doc:"Target cluster, a name from slipway.yaml."`
	Namespace      string            `yaml:"namespace" required:"true" doc:"Namespace of the deploys to this environment."`
	Variables      map[string]string `yaml:"variables,omitempty" doc:"Values, for the tasks deploying here, of variables the pipeline declares in variables (which hold the defaults); may use built-in variables."`
	Approval       *Approval         `yaml:"approval,omitempty" doc:"A gate in front of every deploy to this environment: the stage holding a task that deploys here, and every promotion here."`
	Windows        []Window          `yaml:"windows,omitempty" doc:"When deploys to this environment may happen. With allow windows, only while one is open; never while a deny window is open."`
	OnClosedWindow ClosedWindow      `yaml:"onClosedWindow,omitempty" enum:"wait,fail" default:"wait" doc:"A deploy reaching a closed window: wait until it opens (the task says so while it waits, within its timeout), or fail at once."`
}

// Window is a recurring time span during which deploys are allowed or denied.
type Window struct {
	Kind     WindowKind `yaml:"kind" required:"true" enum:"allow,deny" doc:"allow: deploys may happen while it is open; deny: they may not."`
	Cron     string     `yaml:"cron" required:"true" doc:"When the window opens: a five-field cron expression, e.g. '0 9 * * 1-5'."`
	Duration Duration   `yaml:"duration" required:"true" doc:"How long it stays open each time, e.g. 8h."`
	Timezone string     `yaml:"timezone,omitempty" default:"UTC" doc:"IANA time zone the cron expression is read in."`
}

// WindowKind says whether a window allows or denies deploys.
type WindowKind string

// The window kinds.
const (
	WindowAllow WindowKind = "allow"
	WindowDeny  WindowKind = "deny"
)

// ClosedWindow is what a deploy does when its environment's window is closed.
type ClosedWindow string

// The closed-window policies.
const (
	ClosedWindowWait ClosedWindow = "wait"
	ClosedWindowFail ClosedWindow = "fail"
)

// Stage is a group of tasks.
type Stage struct {
	Name     string    `yaml:"name" required:"true" doc:"Stage name: a DNS-1123 label, unique within the pipeline."`
	Parallel bool      `yaml:"parallel,omitempty" default:"false" doc:"Run the tasks of this stage at the same time instead of in order."`
	Approval *Approval `yaml:"approval,omitempty" doc:"A gate the run must pass before this stage starts."`
	Tasks    []Task    `yaml:"tasks" required:"true" doc:"The tasks of this stage (at least one)."`
}

// Approval is the gate in front of a stage. With both kinds, a reviewed pull request lets the
// run through at once; otherwise it waits for a manual approval.
type Approval struct {
	PullRequest *PullRequestApproval `yaml:"pullRequest,omitempty" doc:"The commit must come from a merged pull request with enough approving reviews."`
	Manual      *ManualApproval      `yaml:"manual,omitempty" doc:"Someone listed must approve the run explicitly."`
	Timeout     Duration             `yaml:"timeout,omitempty" default:"24h" doc:"How long the run waits; then it fails as \"approval timed out\"."`
}

// PullRequestApproval asks for reviews on the pull request the commit came from.
type PullRequestApproval struct {
	Approvals int      `yaml:"approvals,omitempty" default:"1" doc:"Approving reviews needed (at least 1)."`
	Reviewers []string `yaml:"reviewers,omitempty" doc:"Whose approvals count: user names, or team:NAME (the forge's team membership). Default: anyone but the pull request's author."`
}

// ManualApproval asks named people.
type ManualApproval struct {
	Approvers []string `yaml:"approvers" required:"true" doc:"User names, or team:NAME, allowed to approve."`
}

// TaskType names what a task does.
type TaskType string

// The task types.
const (
	TypeBuildImage   TaskType = "build-image"
	TypePublishChart TaskType = "publish-chart"
	TypeDeployYAML   TaskType = "deploy-yaml"
	TypeDeployChart  TaskType = "deploy-chart"
	TypeScript       TaskType = "script"
)

// Task is one step. Exactly one of the type-specific parts is set, chosen by Type.
type Task struct {
	Name    string   `yaml:"name" required:"true" doc:"Task name: a DNS-1123 label, unique within the pipeline; used in ${tasks.NAME.OUTPUT}."`
	Type    TaskType `yaml:"type" required:"true" discriminator:"true" enum:"build-image,publish-chart,deploy-yaml,deploy-chart,script" doc:"What the task does."`
	Timeout Duration `yaml:"timeout,omitempty" doc:"Limit for this task. Default: the rest of the pipeline's timeout."`

	BuildImage   *BuildImageTask   `yaml:",inline" variant:"build-image"`
	PublishChart *PublishChartTask `yaml:",inline" variant:"publish-chart"`
	DeployYAML   *DeployYAMLTask   `yaml:",inline" variant:"deploy-yaml"`
	DeployChart  *DeployChartTask  `yaml:",inline" variant:"deploy-chart"`
	Script       *ScriptTask       `yaml:",inline" variant:"script"`
}

// BuildImageTask builds an image from a Dockerfile and pushes it ("构建并发布镜像").
type BuildImageTask struct {
	Dockerfile string            `yaml:"dockerfile,omitempty" default:"Dockerfile" doc:"Path of the Dockerfile in the repository."`
	Context    string            `yaml:"context,omitempty" doc:"Build context folder in the repository. Default: the Dockerfile's folder."`
	Registry   string            `yaml:"registry,omitempty" subst:"true" doc:"Registry host[:port]. Default: registry.default in slipway.yaml."`
	Workspace  string            `yaml:"workspace,omitempty" doc:"Registry namespace (a Harbor project, \"工作空间\"), e.g. devops."`
	Image      string            `yaml:"image" required:"true" doc:"Image (repository) name, e.g. jack-2048."`
	Tag        string            `yaml:"tag" required:"true" subst:"true" doc:"Tag, usually with ${BUILD_ID}, e.g. alpha-${BUILD_ID}."`
	ExtraTags  []string          `yaml:"extraTags,omitempty" subst:"true" doc:"More tags pushed for the same image, e.g. latest."`
	BuildArgs  map[string]string `yaml:"buildArgs,omitempty" subst:"true" doc:"Dockerfile ARG values. Values that use secrets are masked in logs."`
	Target     string            `yaml:"target,omitempty" doc:"Build stage to stop at in a multi-stage Dockerfile."`
	Platform   string            `yaml:"platform,omitempty" default:"linux/amd64" doc:"Target platform os/arch[/variant]."`
	Keep       int               `yaml:"keep,omitempty" default:"0" doc:"Keep only this many of the tags this pipeline pushed that match the tag template; older ones are deleted unless another pipeline pushed them too or a stored revision deploys them. 0 keeps all."`
}

// PublishChartTask packages a chart from the repository and pushes it ("构建并发布Chart模板").
type PublishChartTask struct {
	ChartDir   string   `yaml:"chartDir" required:"true" doc:"Folder in the repository holding Chart.yaml (\"Chart目录\")."`
	Chart      string   `yaml:"chart" required:"true" doc:"Chart name (\"应用模板名称\"); must equal Chart.yaml's name unless rename is true."`
	Version    string   `yaml:"version" required:"true" subst:"true" doc:"Chart version (\"模板版本\"), SemVer 2, e.g. 6.0.1-alpha.${BUILD_ID}."`
	AppVersion string   `yaml:"appVersion,omitempty" subst:"true" doc:"Overrides Chart.yaml's appVersion."`
	Repository string   `yaml:"repository,omitempty" doc:"OCI repository, oci://HOST/PATH. Default: charts.repository in slipway.yaml."`
	Rename     bool     `yaml:"rename,omitempty" doc:"Publish under chart even if Chart.yaml names it otherwise."`
	Overwrite  bool     `yaml:"overwrite,omitempty" doc:"Allow pushing a version that already exists."`
	Substitute []string `yaml:"substitute,omitempty" doc:"YAML files inside chartDir whose ${...} are substituted. Default: values.yaml."`
	// PackageSecrets opts in to publishing secret values: the chart is readable by anyone who
	// can pull it.
	PackageSecrets bool `yaml:"packageSecrets,omitempty" doc:"Allow the substituted files to use secrets; the pushed chart then holds their values. Default: refused."`
}

// Rollback says what happens when a deploy does not become healthy.
type Rollback string

// The rollback modes.
const (
	RollbackAuto   Rollback = "auto"
	RollbackManual Rollback = "manual"
)

// Drift says what happens when a deployed object is changed behind Slipway's back.
type Drift string

// The drift modes.
const (
	DriftCorrect Drift = "correct"
	DriftReport  Drift = "report"
	DriftOff     Drift = "off"
)

// HealthWatch says what happens when a deployed revision's workloads fail after its deploy.
type HealthWatch string

// The health watch modes.
const (
	HealthWatchReport   HealthWatch = "report"
	HealthWatchRollback HealthWatch = "rollback"
	HealthWatchOff      HealthWatch = "off"
)

// DriftIgnore excludes fields of matching objects from drift detection.
type DriftIgnore struct {
	Kind  string   `yaml:"kind,omitempty" doc:"Object kind, e.g. Deployment. Default: any."`
	Name  string   `yaml:"name,omitempty" doc:"Object name. Default: any."`
	Paths []string `yaml:"paths" required:"true" doc:"JSON pointers (RFC 6901) of the ignored fields, e.g. /spec/replicas."`
}

// DeployYAMLTask applies manifests from the repository ("通过YAML部署").
type DeployYAMLTask struct {
	Path              string        `yaml:"path" required:"true" subst:"fixed" doc:"Manifest file, folder of .yaml/.yml/.json files, or folder holding a kustomization.yaml (built with kustomize), in the repository (\"YAML文件路径\"). ${...} in them is substituted. The path itself may use the pipeline's variables whose values hold no reference (deploy/overlays/${OVERLAY})."`
	Environment       string        `yaml:"environment,omitempty" doc:"An environment of the pipeline to deploy to (its cluster, namespace, variables, gate and windows), instead of cluster and namespace."`
	Cluster           string        `yaml:"cluster,omitempty" doc:"Target cluster, a name from slipway.yaml (\"集群\"). Required unless environment is set."`
	Namespace         string        `yaml:"namespace,omitempty" doc:"Namespace set on namespaced objects that name none (\"命名空间\"). Required unless environment is set."`
	AllowedNamespaces []string      `yaml:"allowedNamespaces,omitempty" doc:"Other namespaces objects may name explicitly (\"*\" for any). Default: none."`
	Wait              Duration      `yaml:"wait,omitempty" default:"5m" doc:"How long to wait for the objects to become healthy; 0 does not wait."`
	StableFor         Duration      `yaml:"stableFor,omitempty" default:"10s" doc:"Stability window: once every object is healthy it must stay so this long (no pod restarts, fails or turns unready) for the deploy to count as healthy; part of wait, so shorter than it. 0 accepts the first healthy moment."`
	Rollback          Rollback      `yaml:"rollback,omitempty" enum:"auto,manual" default:"auto" doc:"auto: re-apply the last good revision when the health wait fails."`
	Prune             *bool         `yaml:"prune,omitempty" default:"true" doc:"Delete objects this task applied before on the same cluster that are no longer in the manifests (only while they still carry its owner label). false holds for its rollbacks too."`
	Drift             Drift         `yaml:"drift,omitempty" enum:"correct,report,off" default:"correct" doc:"What to do when the cluster stops matching: correct it, report it, or nothing."`
	DriftIgnore       []DriftIgnore `yaml:"driftIgnore,omitempty" doc:"Fields that are not drift, e.g. replicas managed by an autoscaler."`
	HealthWatch       HealthWatch   `yaml:"healthWatch,omitempty" enum:"report,rollback,off" default:"report" doc:"After the deploy, pods of the workloads that fail, restart or turn unready: report records a health event and marks the revision failed (no rollback target); rollback also starts one rollback run to the previous healthy revision (needs rollback: auto); off ignores them."`
	PinImages         bool          `yaml:"pinImages,omitempty" doc:"Rewrite images built in this run to repo:tag@digest."`
	Adopt             bool          `yaml:"adopt,omitempty" doc:"Take over objects the manifests define that already exist without Slipway's owner label (or belong to another task of this repository); recorded as adopted in the revision. Default: such objects fail the deploy before anything is applied. Another repository's objects are never taken."`
}

// DeployChartTask installs or upgrades a Helm release ("通过Chart模板部署").
type DeployChartTask struct {
	Release         string         `yaml:"release" required:"true" doc:"Helm release name (\"部署实例名称\"), a DNS-1123 label of at most 53 characters."`
	Chart           string         `yaml:"chart,omitempty" doc:"Chart name in the OCI repository (\"应用模板名称\"); needs version. Or use chartDir."`
	Version         string         `yaml:"version,omitempty" subst:"true" doc:"Chart version (\"模板版本\"), SemVer 2, e.g. ${tasks.publish.version}."`
	Repository      string         `yaml:"repository,omitempty" doc:"OCI repository, oci://HOST/PATH. Default: charts.repository in slipway.yaml."`
	ChartDir        string         `yaml:"chartDir,omitempty" doc:"Deploy the chart in this repository folder instead of one from the repository."`
	Values          map[string]any `yaml:"values,omitempty" subst:"true" doc:"Values overriding the chart's; ${...} in strings is substituted."`
	ValuesFiles     []string       `yaml:"valuesFiles,omitempty" doc:"Values files in the repository, applied in order before values; ${...} in them is substituted."`
	Environment     string         `yaml:"environment,omitempty" doc:"An environment of the pipeline to deploy to (its cluster, namespace, variables, gate and windows), instead of cluster and namespace."`
	Cluster         string         `yaml:"cluster,omitempty" doc:"Target cluster, a name from slipway.yaml (\"集群\"). Required unless environment is set."`
	Namespace       string         `yaml:"namespace,omitempty" doc:"Release namespace (\"命名空间\"). Required unless environment is set."`
	CreateNamespace bool           `yaml:"createNamespace,omitempty" doc:"Create the namespace if it does not exist."`
	Wait            Duration       `yaml:"wait,omitempty" default:"5m" doc:"How long to wait for the release's objects to become healthy; 0 does not wait."`
	StableFor       Duration       `yaml:"stableFor,omitempty" default:"10s" doc:"Stability window: once every object is healthy it must stay so this long (no pod restarts, fails or turns unready) for the release to count as healthy; part of wait, so shorter than it. 0 accepts the first healthy moment."`
	Rollback        Rollback       `yaml:"rollback,omitempty" enum:"auto,manual" default:"auto" doc:"auto: roll an upgrade back to the previous release revision (a failed first install is uninstalled)."`
	MaxHistory      int            `yaml:"maxHistory,omitempty" default:"10" doc:"Release revisions kept by Helm."`
	Drift           Drift          `yaml:"drift,omitempty" enum:"correct,report,off" default:"correct" doc:"What to do when the cluster stops matching: correct it, report it, or nothing."`
	DriftIgnore     []DriftIgnore  `yaml:"driftIgnore,omitempty" doc:"Fields that are not drift."`
	HealthWatch     HealthWatch    `yaml:"healthWatch,omitempty" enum:"report,off" default:"report" doc:"After the deploy, pods of the release's workloads that fail, restart or turn unready: report records a health event and marks the revision failed; off ignores them. (rollback is not supported for charts yet.)"`
}

// ScriptTask runs a script in a tool image ("运行脚本").
type ScriptTask struct {
	Image      string            `yaml:"image,omitempty" subst:"true" doc:"Image to run in (\"镜像地址\" + \"镜像版本\"), e.g. hub.ecns.io/devops/docker:dind-centos-final-v4; pulled with the registry credentials of slipway.yaml. Required, except with executor local, which refuses it (it runs on the host, not in an image)."`
	Script     string            `yaml:"script" required:"true" doc:"Shell script (\"脚本\"), run by /bin/sh -c in the run's workspace (the checkout, with what earlier tasks wrote). Not substituted: built-in variables, variables and env are in its environment, so the shell expands ${NAME}."`
	Env        map[string]string `yaml:"env,omitempty" subst:"true" doc:"Environment variables (\"环境变量\"); values are substituted."`
	SecretEnv  map[string]string `yaml:"secretEnv,omitempty" doc:"Environment variables set from secrets: NAME: SECRET_NAME (a name from secrets). Masked in the log."`
	WorkingDir string            `yaml:"workingDir,omitempty" doc:"Folder of the workspace the script starts in, relative to the repository root. Default: the root."`
	Outputs    []string          `yaml:"outputs,omitempty" doc:"Names of the KEY=VALUE lines the script writes to the file $SLIPWAY_OUTPUT, used later as ${tasks.NAME.KEY}; a key not listed fails the task."`
	Executor   string            `yaml:"executor,omitempty" enum:"buildkit,kubernetes,local" doc:"Where the script runs. Default: executor.default in slipway.yaml."`
	Cache      bool              `yaml:"cache,omitempty" default:"false" doc:"Let BuildKit reuse the result of an earlier run of the very same step (same image, script, env and workspace content); such a step gets only its own env, not the built-in variables. Default: always run. Executor buildkit only."`
	Resources  *ScriptResources  `yaml:"resources,omitempty" doc:"CPU and memory for the script, as Kubernetes quantities. Executor kubernetes only; the others refuse it (not supported yet)."`
}

// ScriptResources are a script's requests and limits.
type ScriptResources struct {
	Requests *ResourceList `yaml:"requests,omitempty" doc:"What the script is guaranteed."`
	Limits   *ResourceList `yaml:"limits,omitempty" doc:"What the script may not exceed."`
}

// ResourceList is CPU and memory as Kubernetes quantities.
type ResourceList struct {
	CPU    string `yaml:"cpu,omitempty" doc:"CPU as a Kubernetes quantity, e.g. 500m or 2."`
	Memory string `yaml:"memory,omitempty" doc:"Memory as a Kubernetes quantity, e.g. 256Mi or 1Gi."`
}

// The script executors.
const (
	ExecutorBuildKit   = "buildkit"
	ExecutorKubernetes = "kubernetes"
	ExecutorLocal      = "local"
)

// Duration is a Go duration written as text ("90s", "30m", "1h30m") or 0.
type Duration struct{ time.Duration }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("invalid duration %q: use a number with a unit, such as 90s, 30m or 1h30m", b)
	}
	if v < 0 {
		return fmt.Errorf("invalid duration %q: must not be negative", b)
	}
	d.Duration = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Describe names the expected form in type errors.
func (Duration) Describe() string { return "a duration (such as 90s, 30m, 1h30m)" }

// Stage/task helpers.

// Part returns the type-specific part of the task, or nil if the type is unknown.
func (t *Task) Part() any {
	switch {
	case t.BuildImage != nil:
		return t.BuildImage
	case t.PublishChart != nil:
		return t.PublishChart
	case t.DeployYAML != nil:
		return t.DeployYAML
	case t.DeployChart != nil:
		return t.DeployChart
	case t.Script != nil:
		return t.Script
	}
	return nil
}

// Outputs lists what a task of type t provides to later tasks as ${tasks.NAME.OUTPUT}.
func Outputs(t TaskType) []string {
	switch t {
	case TypeBuildImage:
		return []string{"digest", "image"}
	case TypePublishChart:
		return []string{"digest", "version"}
	}
	return nil
}
