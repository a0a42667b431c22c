package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sirupsen/logrus"
	"k8s.io/utils/clock"

	"github.com/slipwayhq/slipway/config"
	"github.com/slipwayhq/slipway/reconciler"
	"github.com/slipwayhq/slipway/reconciler/drift"
	"github.com/slipwayhq/slipway/reconciler/kube"
	"github.com/slipwayhq/slipway/reconciler/preview"
	"github.com/slipwayhq/slipway/reconciler/replicas"
	"github.com/slipwayhq/slipway/reconciler/schedule"
	"github.com/slipwayhq/slipway/reconciler/sweep"
	"github.com/slipwayhq/slipway/reconciler/trigger"
	"github.com/slipwayhq/slipway/server"
	"github.com/slipwayhq/slipway/sources/forge"
	"github.com/slipwayhq/slipway/store"
)

// checkoutLinger is how long the daemon keeps a commit's shared checkout after its last
// run: the runs of a monorepo's push start as places among the runs in flight free up.
const checkoutLinger = 30 * time.Second

// defaultListen is where the HTTP API and webhooks listen when slipway.yaml says nothing.
const defaultListen = ":8080"

// Options tune Serve.
type Options struct {
	Listen         string        // overrides slipway.yaml's listen
	MetricsAddress string        // "" = no metrics endpoint
	DriftSweep     time.Duration // <= 0: drift.DefaultSweep
	GitPerHost     int           // overrides slipway.yaml's git.maxPerHost when > 0
	// Clock drives the schedules; nil is the real clock. Tests step a fake one.
	Clock clock.Clock
	// PreviewDone, if set, hears every pull request preview that ended (tests, benchmarks).
	PreviewDone func(preview.Result)
	// Ready, if set, hears the HTTP API's bound address once it listens (useful with :0).
	Ready func(addr string)
	Log   *logrus.Entry
}

// lookQueuePerPlace is how many looks run at once per Git host, per place of git.maxPerHost.
const lookQueuePerPlace = 4

// Serve runs the daemon until ctx ends: watchers (webhooks and polling), schedules, the
// HTTP API and the drift watcher, all feeding one dispatcher. On the way out running
// tasks are cancelled and recorded.
func Serve(ctx context.Context, d *Parts, o Options) error {
	log := o.Log
	limiter := d.GitLimiter
	if o.GitPerHost > 0 {
		// First: the limiter reads its bound when it first meets a host.
		limiter.PerHost = o.GitPerHost
	}
	// Runs a crash left unfinished can never finish: record them as interrupted before
	// anything runs (the sweeper goes on doing so for processes that stop later, and
	// decides their retries).
	if err := sweep.MarkStale(ctx, d.Store, log); err != nil {
		return err
	}
	memoryLimit(d.Config.MemoryLimit.Bytes, os.Getenv("GOMEMLIMIT"), log)
	gcPercent(d.Config.GCPercent, os.Getenv("GOGC"), log)
	reg := prometheus.NewRegistry()
	// The Go runtime's own metrics, go_gc_gomemlimit_bytes (the limit in force) and
	// go_gc_gogc_percent (the collector's target) among them.
	if err := reg.Register(collectors.NewGoCollector()); err != nil {
		return err
	}
	driftMetrics, err := drift.NewMetrics(reg)
	if err != nil {
		return err
	}
	requests, err := kube.NewRequestMetrics(reg)
	if err != nil {
		return err
	}
	triggerMetrics, err := trigger.NewMetrics(reg)
	if err != nil {
		return err
	}
	scheduleMetrics, err := schedule.NewMetrics(reg)
	if err != nil {
		return err
	}
	d.Clusters.WrapTransports(requests.Wrap)
	if ws, ok := d.Store.(writeStats); ok {
		if err := reg.Register(newStoreMetrics(ws)); err != nil {
			return err
		}
	}
	ret, err := newRetention(d.Store, d.Config.Retention, reg, log.WithField("component", "retention"))
	if err != nil {
		return err
	}
	// The drift watcher hears of every task start and end: deploys pause it for their task
	// and make it learn the revision they store.
	// With several replicas, each watches the drift and health of its own repositories'
	// tasks only; owned is filled below, before any of them runs.
	var owned *ownedRepos
	watchStore := store.Store(d.Store)
	if d.Config.HA != nil {
		watchStore = ownedStore{Store: d.Store, owns: func(repo string) bool { return owned.Owns(repo) }}
	}
	// The drift and health watches share the parsed objects of the current revisions, so
	// each current object is held once.
	parsed := &drift.Parsed{}
	dw := &drift.Watcher{Store: watchStore, Clusters: d.Clusters, Metrics: driftMetrics, Sweep: o.DriftSweep,
		Parsed: parsed, Log: log.WithField("component", "drift")}
	// One client per repository's forge, for the commit statuses and the pull-request gate.
	forges, err := ForgeClients(d.Config)
	if err != nil {
		return err
	}
	d.UseForges(forges)
	statuses := forgeStatuses(forges, d.Store, log.WithField("component", "forge-status"))
	// Deferred before the dispatcher's wait, so it runs after: the statuses of runs that
	// end on the way out are still sent.
	defer statuses.Start(ctx)()
	// The health watch keeps an eye on the deployed workloads after their stability window,
	// paused like the drift watcher while a task deploys; its rollbacks go to the dispatcher.
	hw := &drift.HealthWatch{Store: watchStore, Clusters: d.Clusters, Sweep: o.DriftSweep, Parsed: parsed,
		Log: log.WithField("component", "health")}
	if err := reg.Register(hw); err != nil {
		return err
	}
	dispCtx, stopDispatcher := context.WithCancel(ctx)
	d.CheckoutLinger = checkoutLinger
	runner, disp, err := d.StartDispatcher(dispCtx, "slipway serve", true, reconciler.Observers{dw, hw, triggerMetrics, statuses})
	if err != nil {
		stopDispatcher()
		return err
	}
	hw.Rollbacks = disp
	if err := reg.Register(newRunMetrics(disp, d.Config.MaxInFlight())); err != nil {
		stopDispatcher()
		disp.Wait()
		return err
	}
	// However Serve returns, the runs it started end first.
	defer func() {
		stopDispatcher()
		disp.Wait()
		runner.Close()
	}()
	if err := reg.Register(newGitMetrics(limiter, limiter.Cap())); err != nil {
		return err
	}
	if err := reg.Register(newApplyMetrics(d.ApplySlots)); err != nil {
		return err
	}
	if err := reg.Register(newBuildMetrics(d.BuildSlots)); err != nil {
		return err
	}
	hubOpts := trigger.HubOptions{Pipelines: runner, Dispatcher: disp, Records: d.Store,
		Metrics: triggerMetrics, Audit: d.Store, States: d.Store, Interruptions: d.Store, Requests: d.Store}
	// nil: this process owns every repository. With ha, interrupted runs are retried by the
	// replica owning their repository.
	var owns func(repo string) bool
	if d.Config.HA != nil {
		hubOpts.Handoff = func(ctx context.Context, repo string, h trigger.Hint) (bool, error) {
			return owned.Handoff(ctx, repo, h)
		}
		owns = func(repo string) bool { return owned.Owns(repo) }
	}
	hub := trigger.NewHub(hubOpts)
	sweeper := sweep.New(sweep.Options{Store: d.Store, Retrier: hub, Owns: owns, Log: log.WithField("component", "sweep")})
	sched := schedule.New(schedule.Options{Store: d.Store, Runs: hub, Metrics: scheduleMetrics, Clock: o.Clock,
		Log: log.WithField("component", "schedule")})
	hooks := map[string]server.Hook{}
	previewRepos := map[string]preview.Repository{}
	// A look makes up to two Git requests side by side (its ref listing and the prefetch),
	// then reads the mirror, checks out and starts runs without any: four looks per
	// request place keep the host's places busy while others do their local part.
	looks := trigger.NewLookQueue(lookQueuePerPlace * limiter.Cap())
	if err := reg.Register(newLookMetrics(looks)); err != nil {
		return err
	}
	var watchers []*trigger.BranchWatcher
	for _, r := range d.Config.Repositories {
		src, err := SourceRepo(r)
		if err != nil {
			return err
		}
		w := trigger.NewBranchWatcher(trigger.BranchWatcherOptions{Git: d.Mirrors, Pipelines: runner, Runs: disp,
			Records: d.Store, Repo: src, Branch: r.DefaultBranch(), Branches: r.BranchPatterns(), Interval: r.Poll.Duration,
			Schedules: trigger.Schedules{Scheduler: sched}, Metrics: triggerMetrics, Audit: d.Store, Looks: looks,
			Log: log.WithField("repo", r.Name)})
		hub.Add(w)
		watchers = append(watchers, w)
		if c, ok := forges[r.Name]; ok {
			previewRepos[r.Name] = preview.Repository{Repo: src, TrackedBranch: r.DefaultBranch(), Forge: c,
				CommentLimit: forge.CommentLimit(r.Forge.Type)}
		}
		if r.Webhook != nil {
			secret, err := config.ReadSecretFile(r.Webhook.SecretFile)
			if err != nil {
				return fmt.Errorf("repository %s webhook: %w", r.Name, err)
			}
			hooks[r.Name] = server.Hook{Provider: r.Webhook.Type, Secret: secret, Branches: r.BranchPatterns()}
		}
	}
	var coord *replicas.Coordinator
	var reloadLoop func(context.Context)
	if d.Config.HA != nil {
		owned = newOwnedRepos(watchers, sched, d.Store, log.WithField("component", "replicas"))
		// Reloads are merged and run off the coordinator's goroutine, which must keep
		// renewing its Leases.
		reloads := make(chan struct{}, 1)
		owned.changed = func(context.Context) {
			select {
			case reloads <- struct{}{}:
			default:
			}
		}
		reloadLoop = func(ctx context.Context) {
			for {
				select {
				case <-ctx.Done():
					return
				case <-reloads:
					dw.Reload()
					if err := hw.Refresh(ctx); err != nil && ctx.Err() == nil {
						log.WithError(err).Debug("health watch: reload after an ownership change")
					}
				}
			}
		}
		if coord, err = newCoordinator(d.Config, owned, log.WithField("component", "replicas")); err != nil {
			return err
		}
		if err := reg.Register(coord); err != nil {
			return err
		}
	}
	notifier, stopNotifier, err := d.newNotifier(log.WithField("component", "notify"))
	if err != nil {
		return err
	}
	defer stopNotifier()
	users, err := APIUsers(d.Config)
	if err != nil {
		return err
	}
	// Pull requests are previewed through the same runner (render, policy, dry-run), never
	// through the dispatcher: a preview is not a run and holds no pipeline's claim.
	previews := preview.New(preview.Options{Renderer: runner, Repositories: previewRepos, Done: o.PreviewDone,
		Log: log.WithField("component", "preview")})
	ui, err := webUI(d, users, hub, ctx.Done(), log.WithField("component", "webui"))
	if err != nil {
		return err
	}
	api := &server.Server{Hooks: hooks, Triggers: hub, Records: d.Store, Metrics: triggerMetrics, Users: users,
		Limits:   server.HookLimits{MaxConcurrentReads: d.Config.Webhooks.MaxConcurrentReads, ReadTimeout: d.Config.Webhooks.ReadTimeout.Duration},
		Previews: previews, Ready: d.Store.Ping, UI: ui.Handler(), Log: log.WithField("component", "http"),
		Reads: d.Store, Changes: d.Changes, Repositories: repositoryNames(d.Config)}
	if coord != nil {
		api.Replicas = coord
	}

	stopHTTP, err := serveHTTP(ctx, log, listenAddress(o.Listen, d.Config), "HTTP API and webhooks", api.Handler(), o.Ready)
	if err != nil {
		return err
	}
	defer stopHTTP()
	if o.MetricsAddress != "" {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		// Profiles on the same internal listener: where a busy daemon spends CPU and memory
		// is what tuning needs, and the listener is already kept off the public one.
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		stopMetrics, err := serveHTTP(ctx, log, o.MetricsAddress, "metrics", mux, nil)
		if err != nil {
			return fmt.Errorf("--metrics-address: %w", err)
		}
		defer stopMetrics()
	}

	var wg sync.WaitGroup
	goRun := func(fn func(context.Context)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(ctx)
		}()
	}
	goRun(dw.Run)
	goRun(hw.Run)
	goRun(ret.Run)
	goRun(previews.Run)
	// After the watchers are added to the hub: a retry reads its commit through them.
	goRun(sweeper.Run)
	if notifier != nil {
		goRun(notifier.Run)
	}
	goRun(func(ctx context.Context) {
		if err := sched.Run(ctx); err != nil && ctx.Err() == nil {
			log.WithError(err).Error("scheduler")
		}
	})
	if coord != nil {
		// The coordinator starts and stops the owned repositories' watchers.
		goRun(coord.Run)
		goRun(reloadLoop)
		goRun(func(ctx context.Context) { owned.followHints(ctx, d.Changes, d.Config.HA.RetryPeriod.Duration) })
	} else {
		// One goroutine waits for them all: a watcher at rest holds a timer, not a goroutine.
		stopped := make([]<-chan struct{}, 0, len(watchers))
		for _, w := range watchers {
			stopped = append(stopped, w.Start(ctx, nil))
		}
		goRun(func(context.Context) {
			for _, c := range stopped {
				<-c
			}
		})
	}
	log.WithFields(logrus.Fields{"repositories": len(d.Config.Repositories), "webhooks": len(hooks)}).Info("slipway serving")
	<-ctx.Done()
	log.Info("shutting down: cancelling running tasks")
	wg.Wait()
	disp.Wait()
	log.Info("stopped")
	return nil
}

func listenAddress(flag string, cfg *config.Config) string {
	switch {
	case flag != "":
		return flag
	case cfg.Listen != "":
		return cfg.Listen
	}
	return defaultListen
}

// serveHTTP listens on addr and serves h until the returned stop is called.
func serveHTTP(ctx context.Context, log *logrus.Entry, addr, what string, h http.Handler, ready func(string)) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for the %s on %s: %w", what, addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute,
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) }}
	log.WithFields(logrus.Fields{"address": ln.Addr().String(), "serves": what}).Info("listening")
	if ready != nil {
		ready(ln.Addr().String())
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.WithError(err).WithField("serves", what).Error("HTTP server")
		}
	}()
	return func() {
		shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}, nil
}

// repositoryNames are the configured repositories' names, as the API lists them.
func repositoryNames(cfg *config.Config) []string {
	names := make([]string, 0, len(cfg.Repositories))
	for _, r := range cfg.Repositories {
		names = append(names, r.Name)
	}
	return names
}
