package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/slipwayhq/slipway/config"
	"github.com/slipwayhq/slipway/reconciler"
	"github.com/slipwayhq/slipway/reconciler/drift"
	"github.com/slipwayhq/slipway/reconciler/kube"
	"github.com/slipwayhq/slipway/reconciler/schedule"
	"github.com/slipwayhq/slipway/reconciler/trigger"
	"github.com/slipwayhq/slipway/server"
)

// defaultListen is where the HTTP API and webhooks listen when slipway.yaml says nothing.
const defaultListen = ":8080"

type serveFlags struct {
	cfgPath, metricsAddr, listen string
	sweep                        time.Duration
	perHost                      int
}

func newServeCommand() *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve --config slipway.yaml",
		Short: "Run the daemon: webhooks, polling, schedules and the HTTP API start the pipelines; drift is watched",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return serve(cmd.Context(), f)
		},
	}
	cmd.Flags().StringVar(&f.cfgPath, "config", "slipway.yaml", "daemon configuration")
	cmd.Flags().StringVar(&f.metricsAddr, "metrics-address", "", "serve Prometheus metrics on this host:port (empty: off)")
	cmd.Flags().StringVar(&f.listen, "listen", "", "address of the HTTP API and webhooks, host:port (default: listen in slipway.yaml, else "+defaultListen+")")
	cmd.Flags().DurationVar(&f.sweep, "drift-sweep", drift.DefaultSweep, "how often every deployed object is checked for drift besides the watches")
	cmd.Flags().IntVar(&f.perHost, "git-per-host", trigger.DefaultPerHost, "Git fetches and ref listings at once against one Git host")
	return cmd
}

func serve(ctx context.Context, f serveFlags) error {
	log := loggerFrom(ctx)
	d, err := newDaemon(ctx, f.cfgPath, log)
	if err != nil {
		return err
	}
	defer d.Close()
	// Runs a crash left queued or running can never finish: record them as failed.
	stale, err := d.store.MarkStaleRuns(ctx)
	if err != nil {
		return err
	}
	for _, r := range stale {
		log.WithFields(logrus.Fields{"pipeline": r.Pipeline.Name, "build_id": r.BuildID}).Warn("run interrupted by a restart")
	}
	reg := prometheus.NewRegistry()
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
	d.runner.Clusters.WrapTransports(requests.Wrap)
	// The drift watcher hears of every task start and end: deploys pause it for their task
	// and make it learn the revision they store.
	dw := &drift.Watcher{Store: d.store, Clusters: d.runner.Clusters, Metrics: driftMetrics, Sweep: f.sweep,
		Log: log.WithField("component", "drift")}
	d.runner.Observer = reconciler.Observers{dw, triggerMetrics}

	disp := &reconciler.Dispatcher{Runner: d.runner, Log: log, Base: ctx}
	limiter := &trigger.HostLimiter{PerHost: f.perHost}
	hub := &trigger.Hub{Runner: d.runner, Dispatcher: disp, Limiter: limiter, Metrics: triggerMetrics}
	sched := schedule.New(schedule.Options{Store: d.store, Runs: hub, Metrics: scheduleMetrics,
		Log: log.WithField("component", "schedule")})
	hooks := map[string]server.Hook{}
	var watchers []*trigger.Watcher
	for _, r := range d.cfg.Repositories {
		src, err := sourceRepo(r)
		if err != nil {
			return err
		}
		w := &trigger.Watcher{Runner: d.runner, Dispatcher: disp, Changes: d.mirrors, Repo: src, Branch: r.Branch,
			Interval: r.Poll.Duration, Limiter: limiter, Schedules: trigger.Schedules{Scheduler: sched}, Metrics: triggerMetrics,
			Log: log.WithFields(logrus.Fields{"repo": r.Name, "branch": r.Branch})}
		hub.Add(w)
		watchers = append(watchers, w)
		if r.Webhook != nil {
			secret, err := readSecretFile(r.Webhook.SecretFile)
			if err != nil {
				return fmt.Errorf("repository %s webhook: %w", r.Name, err)
			}
			hooks[r.Name] = server.Hook{Provider: r.Webhook.Type, Secret: secret, Branch: r.Branch}
		}
	}
	var token []byte
	if d.cfg.APITokenFile != "" {
		if token, err = readSecretFile(d.cfg.APITokenFile); err != nil {
			return fmt.Errorf("apiTokenFile: %w", err)
		}
	}
	api := &server.Server{Hooks: hooks, Triggers: hub, Records: d.store, Metrics: triggerMetrics, Token: token,
		Log: log.WithField("component", "http")}

	stopHTTP, err := serveHTTP(ctx, log, listenAddress(f.listen, d.cfg), "HTTP API and webhooks", api.Handler())
	if err != nil {
		return err
	}
	defer stopHTTP()
	if f.metricsAddr != "" {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		stopMetrics, err := serveHTTP(ctx, log, f.metricsAddr, "metrics", mux)
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
	goRun(func(ctx context.Context) {
		if err := sched.Run(ctx); err != nil && ctx.Err() == nil {
			log.WithError(err).Error("scheduler")
		}
	})
	for _, w := range watchers {
		goRun(w.Run)
	}
	log.WithFields(logrus.Fields{"repositories": len(d.cfg.Repositories), "webhooks": len(hooks)}).Info("slipway serving")
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
func serveHTTP(ctx context.Context, log *logrus.Entry, addr, what string, h http.Handler) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for the %s on %s: %w", what, addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute,
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) }}
	log.WithFields(logrus.Fields{"address": ln.Addr().String(), "serves": what}).Info("listening")
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

// readSecretFile reads a secret kept in a file; a trailing newline, which editors add, is
// not part of it. Errors name the file, never the content.
func readSecretFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return nil, fmt.Errorf("%s is empty", path)
	}
	return []byte(s), nil
}
