package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/slipwayhq/slipway/reconciler/trigger"
	"github.com/slipwayhq/slipway/store"
)

func newRollbackCommand() *cobra.Command {
	var cfgPath string
	var to int64
	cmd := &cobra.Command{
		Use:   "rollback --config slipway.yaml PIPELINE --to BUILD_ID",
		Short: "Re-apply what an earlier run deployed, as a new run; polling does not re-deploy the head until a new commit",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if to <= 0 {
				return fmt.Errorf("--to: want the BUILD_ID to roll back to")
			}
			d, err := newDaemon(ctx, cfgPath, loggerFrom(ctx))
			if err != nil {
				return err
			}
			defer d.Close()
			ref, err := pipelineRef(ctx, d.Store, args[0])
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			_, disp, stop, err := startEngine(ctx, d, "slipway rollback", out)
			if err != nil {
				return err
			}
			defer stop()
			// The same path as the API's rollback: queued and audited as cli:USER together.
			queued, err := trigger.StartRollback(ctx, disp, ref, to, cliActor())
			if err != nil {
				return err
			}
			run, err := waitRun(ctx, d.Store, disp, queued)
			if err != nil {
				return err
			}
			if run.Status != store.RunSucceeded {
				fmt.Fprintf(out, "%s #%d %s: %s\n", ref.Name, run.BuildID, run.Status, run.Reason)
				return exitError{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "slipway.yaml", "daemon configuration")
	cmd.Flags().Int64Var(&to, "to", 0, "BUILD_ID whose deploys to restore")
	return cmd
}
