package main

import (
	"sync"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/slipwayhq/slipway/reconciler"
)

func newServeCommand() *cobra.Command {
	var cfgPath string
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
			disp := &reconciler.Dispatcher{Runner: d.runner, Log: log}
			var wg sync.WaitGroup
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
	return cmd
}
