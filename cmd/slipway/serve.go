package main

import (
	"github.com/spf13/cobra"

	"github.com/slipwayhq/slipway/daemon"
	"github.com/slipwayhq/slipway/reconciler/drift"
)

func newServeCommand() *cobra.Command {
	var cfgPath string
	var o daemon.Options
	cmd := &cobra.Command{
		Use:   "serve --config slipway.yaml",
		Short: "Run the daemon: webhooks, polling, schedules and the HTTP API start the pipelines; drift is watched",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			o.Log = loggerFrom(ctx)
			d, err := daemon.Open(ctx, cfgPath, o.Log)
			if err != nil {
				return err
			}
			defer d.Close()
			return daemon.Serve(ctx, d, o)
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "slipway.yaml", "daemon configuration")
	cmd.Flags().StringVar(&o.MetricsAddress, "metrics-address", "", "serve Prometheus metrics on this host:port (empty: off)")
	cmd.Flags().StringVar(&o.Listen, "listen", "", "address of the HTTP API and webhooks, host:port (default: listen in slipway.yaml, else :8080)")
	cmd.Flags().DurationVar(&o.DriftSweep, "drift-sweep", drift.DefaultSweep, "how often the drift sweep runs besides the watches (objects the watch shows unwritten since their last check are spared, except every sixth sweep)")
	cmd.Flags().IntVar(&o.GitPerHost, "git-per-host", 0, "Git fetches and ref listings at once against one Git host (default: git.maxPerHost in slipway.yaml, else 4)")
	return cmd
}
