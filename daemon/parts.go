package daemon

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/slipwayhq/slipway/builder"
	"github.com/slipwayhq/slipway/config"
	"github.com/slipwayhq/slipway/internal/changefeed"
	"github.com/slipwayhq/slipway/pipeline"
	"github.com/slipwayhq/slipway/reconciler"
	"github.com/slipwayhq/slipway/reconciler/apply"
	"github.com/slipwayhq/slipway/reconciler/kube"
	"github.com/slipwayhq/slipway/reconciler/scriptrun/buildkitexec"
	"github.com/slipwayhq/slipway/reconciler/scriptrun/kubejob"
	"github.com/slipwayhq/slipway/reconciler/scriptrun/localexec"
	"github.com/slipwayhq/slipway/sources"
	"github.com/slipwayhq/slipway/sources/forge"
	"github.com/slipwayhq/slipway/store"
)

// Parts is the wired set of parts the daemon and the CLI verbs share.
type Parts struct {
	Config  *config.Config
	Store   store.Store
	Mirrors *sources.Mirrors
	// GitLimiter bounds the Mirrors' ref listings and fetches per Git host (git.maxPerHost).
	GitLimiter *sources.HostLimiter
	Clusters   *kube.Clusters
	// Changes wakes followers of the store (live logs, the UI, notifications) when a
	// write to runs, tasks, logs, drift or the audit log commits in this process.
	Changes *changefeed.Feed
	// ApplySlots bound the objects applied at once across every run of the process
	// (runs.maxAppliesInFlight).
	ApplySlots *apply.Slots
	// BuildSlots bound the image builds and scripts executing at once across every run of
	// the process (runs.maxBuildsInFlight).
	BuildSlots *reconciler.BuildSlots
	// CheckoutLinger keeps a commit's shared checkout after its last run (the daemon sets
	// it: a monorepo's runs start as places free up); 0 for a CLI, which exits.
	CheckoutLinger time.Duration
	builder        reconciler.ImageBuilder
	tags           reconciler.TagPruner
	executors      reconciler.Executors
	forges         map[string]forge.Client // by repository name; see UseForges
	log            *logrus.Entry
}

// NewRunner makes the run engine's Runner over these parts; observer (optional) hears
// every run and task state change.
func (d *Parts) NewRunner(observer reconciler.Observer) *reconciler.Runner {
	return reconciler.NewRunner(reconciler.RunnerOptions{Store: d.Store, Sources: d.Mirrors, Clusters: d.Clusters,
		Config: d.Config, Builder: d.builder, Tags: d.tags, Executors: d.executors, Gate: d.gate(), Audit: d.Store, Observer: observer,
		ApplySlots: d.ApplySlots, BuildSlots: d.BuildSlots, CheckoutLinger: d.CheckoutLinger, Log: d.log})
}

// StartDispatcher starts the one run engine of this process: a Dispatcher over a Runner
// that reports to observer. It stops when ctx ends (Wait for it).
// takesApprovals says whether people can answer its runs' approval gates (the daemon's
// API); a CLI's runs that reach a gate fail at once instead.
func (d *Parts) StartDispatcher(ctx context.Context, description string, takesApprovals bool, observer reconciler.Observer) (*reconciler.Runner, *reconciler.Dispatcher, error) {
	runner := d.NewRunner(observer)
	var ttl time.Duration
	if d.Config.HA != nil {
		// A dead replica's pipeline claims lapse as its repositories move.
		ttl = d.Config.HA.LeaseDuration.Duration
	}
	disp, err := reconciler.StartDispatcher(ctx, reconciler.DispatcherOptions{Executor: runner, Claims: d.Store, HolderTTL: ttl,
		Description: description, NoApprovals: !takesApprovals, MaxInFlight: d.Config.MaxInFlight(),
		Requests: d.Store, Changes: d.Changes, Log: d.log.WithField("component", "dispatcher")})
	return runner, disp, err
}

// OpenConfigAndStore loads slipway.yaml and opens the store it names, with the keys that
// encrypt its revisions (StoreKeyring) and any further options.
func OpenConfigAndStore(ctx context.Context, path string, log *logrus.Entry, opts ...store.Option) (*config.Config, store.Store, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, nil, err
	}
	keys, err := StoreKeyring(cfg, log)
	if err != nil {
		return nil, nil, err
	}
	opts = append([]store.Option{store.WithKeyring(keys), store.WithLogger(log)}, opts...)
	if len(cfg.Notifications.Targets) > 0 {
		// Every process that changes runs (the daemon, `slipway run`, `slipway rollback`)
		// writes the outbox; the daemon's notifier sends it.
		opts = append(opts, store.WithNotifications())
	}
	if cfg.StorePasswordFile != "" {
		pw, err := store.ReadPasswordFile(cfg.StorePasswordFile)
		if err != nil {
			return nil, nil, fmt.Errorf("storePasswordFile: %w", err)
		}
		opts = append(opts, store.WithPassword(pw))
	}
	st, err := store.Open(ctx, cfg.Store, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("open store: %w", err)
	}
	return cfg, st, nil
}

// Open loads slipway.yaml and wires the store, the Git mirrors, the builder and the runner.
func Open(ctx context.Context, path string, log *logrus.Entry) (*Parts, error) {
	changes := changefeed.New()
	cfg, st, err := OpenConfigAndStore(ctx, path, log, store.WithChangeSink(changes))
	if err != nil {
		return nil, err
	}
	gitLimiter := &sources.HostLimiter{PerHost: cfg.Git.MaxPerHost}
	mirrors, err := sources.New(sources.Options{DataDir: cfg.DataDir, Log: log, Limiter: gitLimiter})
	if err != nil {
		st.Close()
		return nil, err
	}
	buildOpts := builder.Options{Type: cfg.Builder.Type, Address: cfg.Builder.Address,
		DockerConfig: cfg.Registry.DockerConfig, Insecure: cfg.Registry.Insecure, Mirrors: cfg.Registry.MirrorEndpoints()}
	imageBuilder, err := builder.New(buildOpts)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("image builder: %w", err)
	}
	registry, err := builder.NewRegistry(buildOpts)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("registry: %w", err)
	}
	executors, err := ScriptExecutors(cfg, registry, log)
	if err != nil {
		st.Close()
		return nil, err
	}
	return &Parts{Config: cfg, Store: st, Mirrors: mirrors, GitLimiter: gitLimiter, Clusters: kube.NewClusters(ClusterSpecs(cfg)), Changes: changes,
		ApplySlots: apply.NewSlots(cfg.Runs.MaxAppliesInFlight), BuildSlots: reconciler.NewBuildSlots(cfg.MaxBuildsInFlight()),
		builder: imageBuilder, tags: registry, executors: executors, log: log}, nil
}

// ScriptExecutors builds the script executors slipway.yaml configures: the one place they
// are made.
func ScriptExecutors(cfg *config.Config, registry *builder.Registry, log *logrus.Entry) (reconciler.Executors, error) {
	out := reconciler.Executors{}
	for _, name := range cfg.ScriptExecutors() {
		switch name {
		case pipeline.ExecutorBuildKit:
			ex, err := buildkitexec.New(cfg.BuildKitExecutorAddress(), registry)
			if err != nil {
				return nil, err
			}
			out[name] = ex
		case pipeline.ExecutorLocal:
			out[name] = localexec.New()
		case pipeline.ExecutorKubernetes:
			ex, err := kubernetesExecutor(cfg, log)
			if err != nil {
				return nil, err
			}
			out[name] = ex
		}
	}
	return out, nil
}

// kubernetesExecutor runs scripts as Jobs in executor.kubernetes's cluster and namespace.
// Nothing is dialled here: the first script connects.
func kubernetesExecutor(cfg *config.Config, log *logrus.Entry) (*kubejob.Executor, error) {
	x := cfg.Executor.Kubernetes
	restCfg, cs, err := clusterClient(cfg, x.Cluster, "executor kubernetes")
	if err != nil {
		return nil, err
	}
	tolerations := make([]corev1.Toleration, 0, len(x.Tolerations))
	for _, t := range x.Tolerations {
		op := corev1.TolerationOperator(t.Operator)
		if op == "" {
			op = corev1.TolerationOpEqual
		}
		tolerations = append(tolerations, corev1.Toleration{Key: t.Key, Operator: op, Value: t.Value, Effect: corev1.TaintEffect(t.Effect)})
	}
	return kubejob.New(kubejob.Options{Client: cs, Config: restCfg, Cluster: x.Cluster, Namespace: x.Namespace,
		ServiceAccount: x.ServiceAccount, NodeSelector: x.NodeSelector, Tolerations: tolerations,
		Log: log.WithField("executor", "kubernetes")}), nil
}

// clusterClient connects to a configured cluster by name for a part of the daemon (what
// names it in errors); nothing is dialled until the first request.
func clusterClient(cfg *config.Config, cluster, what string) (*rest.Config, *kubernetes.Clientset, error) {
	var spec kube.Spec
	for _, s := range ClusterSpecs(cfg) {
		if s.Name == cluster {
			spec = s
		}
	}
	if spec.Name == "" {
		return nil, nil, fmt.Errorf("%s: cluster %q is not in clusters", what, cluster)
	}
	restCfg, err := kube.RESTConfig(spec)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", what, err)
	}
	cs, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: cluster %s: %w", what, cluster, err)
	}
	return restCfg, cs, nil
}

// ClusterSpecs says how to reach the configured clusters.
func ClusterSpecs(cfg *config.Config) []kube.Spec {
	specs := make([]kube.Spec, 0, len(cfg.Clusters))
	for _, c := range cfg.Clusters {
		specs = append(specs, kube.Spec{Name: c.Name, Kubeconfig: c.Kubeconfig, Context: c.Context, InCluster: c.InCluster})
	}
	return specs
}

// Close releases the store.
func (d *Parts) Close() error { return d.Store.Close() }

// Repository finds a configured repository by name or URL and loads its credentials.
func (d *Parts) Repository(nameOrURL string) (config.Repository, sources.Repo, error) {
	for _, r := range d.Config.Repositories {
		if r.Name == nameOrURL || strings.TrimSuffix(r.URL, "/") == strings.TrimSuffix(nameOrURL, "/") {
			src, err := SourceRepo(r)
			return r, src, err
		}
	}
	return config.Repository{}, sources.Repo{}, fmt.Errorf("repository %q is not in %s (repositories need a name, url, branch and credentials there)", nameOrURL, d.Config.File)
}

// SourceRepo is a configured repository with its credentials loaded.
func SourceRepo(r config.Repository) (sources.Repo, error) {
	src := sources.Repo{Name: r.Name, URL: r.URL}
	if r.Auth != nil {
		auth, err := sources.LoadAuth(sources.AuthFiles{
			UsernameFile: r.Auth.UsernameFile, PasswordFile: r.Auth.PasswordFile, TokenFile: r.Auth.TokenFile,
			SSHKeyFile: r.Auth.SSHKeyFile, KnownHostsFile: r.Auth.KnownHostsFile,
		})
		if err != nil {
			return src, fmt.Errorf("repository %s credentials: %w", r.Name, err)
		}
		src.Auth = auth
	}
	return src, nil
}
