package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/slipwayhq/slipway/reconciler"
	"github.com/slipwayhq/slipway/reconciler/drift"
	"github.com/slipwayhq/slipway/reconciler/kube"
)

func newServeCommand() *cobra.Command {
	var cfgPath, metricsAddr string
	var sweep time.Duration
	cmd := &cobra.Command{
		Use:   "serve --config slipway.yaml",
		Short: "Run the daemon: poll the configured repositories and run the pipelines new commits trigger",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			log := loggerFrom(ctx)
			d, err := newDaemon(ctx, cfgPath, log)
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
			metrics, err := drift.NewMetrics(reg)
			if err != nil {
				return err
			}
			requests, err := kube.NewRequestMetrics(reg)
			if err != nil {
				return err
			}
			d.runner.Clusters.WrapTransports(requests.Wrap)
			// The watcher hears of every task start and end: deploys pause it for their task
			// and make it learn the revision they store.
			dw := &drift.Watcher{Store: d.store, Clusters: d.runner.Clusters, Metrics: metrics, Sweep: sweep,
				Log: log.WithField("component", "drift")}
			d.runner.Observer = dw
			if metricsAddr != "" {
				ln, err := net.Listen("tcp", metricsAddr)
				if err != nil {
					return fmt.Errorf("--metrics-address: %w", err)
				}
				mux := http.NewServeMux()
				mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
				srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
				log.WithField("address", ln.Addr().String()).Info("serving metrics")
				go func() {
					if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
						log.WithError(err).Error("metrics server")
					}
				}()
				defer srv.Close()
			}
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				dw.Run(ctx)
			}()
			disp := &reconciler.Dispatcher{Runner: d.runner, Log: log}
			for _, r := range d.cfg.Repositories {
				if r.Poll.Duration <= 0 {
					continue
				}
				src, err := sourceRepo(r)
				if err != nil {
					return err
				}
				p := &reconciler.Poller{Runner: d.runner, Dispatcher: disp, Changes: d.mirrors, Repo: src, Branch: r.Branch,
					Interval: r.Poll.Duration, Log: log.WithFields(logrus.Fields{"repo": r.Name, "branch": r.Branch})}
				wg.Add(1)
				go func() {
					defer wg.Done()
					p.Run(ctx)
				}()
			}
			log.WithField("repositories", len(d.cfg.Repositories)).Info("slipway serving")
			<-ctx.Done()
			log.Info("shutting down: cancelling running tasks")
			wg.Wait()
			disp.Wait()
			log.Info("stopped")
			return nil
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "slipway.yaml", "daemon configuration")
	cmd.Flags().StringVar(&metricsAddr, "metrics-address", "", "serve Prometheus metrics on this host:port (empty: off)")
	cmd.Flags().DurationVar(&sweep, "drift-sweep", drift.DefaultSweep, "how often every deployed object is checked for drift besides the watches")
	return cmd
}
