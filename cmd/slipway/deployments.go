package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/slipwayhq/slipway/render"
	"github.com/slipwayhq/slipway/store"
)

func newGetCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "get",
		Short: "Show what Slipway keeps about pipelines",
	}
	cmd.AddCommand(newGetDeploymentsCommand(), newGetPipelinesCommand(), newGetRunsCommand())
	return cmd
}

// deploymentRow is what one task of a pipeline runs in one environment.
type deploymentRow struct {
	Environment string   `json:"environment"`
	Task        string   `json:"task"`
	BuildID     int64    `json:"buildId"`         // the artifact: the run that built it
	DeployedBy  int64    `json:"deployedByBuild"` // the run that deployed it here (itself or a promotion)
	Commit      string   `json:"commit"`
	Tag         string   `json:"tag,omitempty"`
	Cluster     string   `json:"cluster"`
	Namespace   string   `json:"namespace"`
	Images      []string `json:"images,omitempty"`
	Chart       string   `json:"chart,omitempty"`
	DeployedAt  string   `json:"deployedAt"`
	By          string   `json:"by"` // who started the deploying run: an actor, or the trigger
}

func newGetDeploymentsCommand() *cobra.Command {
	var cfgPath, output string
	cmd := &cobra.Command{
		Use:   "deployments --config slipway.yaml PIPELINE",
		Short: "What is deployed where: per environment, the BUILD_ID, commit, tag, images and chart that are healthy there, since when and by whom",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			st, ref, err := openPipeline(ctx, cfgPath, args[0])
			if err != nil {
				return err
			}
			defer st.Close()
			revs, err := st.EnvironmentRevisions(ctx, ref)
			if err != nil {
				return err
			}
			audit, err := st.ListAudit(ctx, store.AuditFilter{Pipeline: ref})
			if err != nil {
				return err
			}
			actors := map[int64]string{}
			for _, e := range audit {
				if e.Action == store.AuditTrigger || e.Action == store.AuditRerun || e.Action == store.AuditPromote || e.Action == store.AuditRollback {
					actors[e.BuildID] = e.Actor
				}
			}
			rows := make([]deploymentRow, 0, len(revs))
			for _, rev := range revs {
				run, err := st.GetRun(ctx, ref, rev.BuildID)
				if err != nil {
					return err
				}
				artifact := run.BuildID
				if run.Trigger == store.TriggerPromote || run.Trigger == store.TriggerRollback {
					artifact = run.ParentBuildID
				}
				images, err := render.Images(rev.Objects)
				if err != nil {
					return fmt.Errorf("revision %s of #%d: %w", rev.Task, rev.BuildID, err)
				}
				row := deploymentRow{Environment: rev.Environment, Task: strings.TrimSuffix(rev.Task, "."+rev.Environment), BuildID: artifact, DeployedBy: run.BuildID,
					Commit: run.Commit, Tag: run.Tag, Cluster: rev.Cluster, Namespace: rev.Namespace, Images: images,
					DeployedAt: rev.CreatedAt.UTC().Format(time.RFC3339), By: string(run.Trigger)}
				if a := actors[run.BuildID]; a != "" {
					row.By = a
				}
				if rev.Chart != nil {
					row.Chart = rev.Chart.Chart + "@" + rev.Chart.Version
				}
				rows = append(rows, row)
			}
			return printRows(cmd.OutOrStdout(), output, rows, "nothing of "+ref.Name+" is deployed healthy in an environment",
				"ENVIRONMENT\tTASK\tBUILD_ID\tDEPLOYED_BY\tCOMMIT\tTAG\tTARGET\tIMAGES\tCHART\tSINCE\tBY",
				func(r deploymentRow) string {
					commit := r.Commit
					if len(commit) > 12 {
						commit = commit[:12]
					}
					return fmt.Sprintf("%s\t%s\t%d\t#%d\t%s\t%s\t%s/%s\t%s\t%s\t%s\t%s", r.Environment, r.Task, r.BuildID, r.DeployedBy,
						commit, r.Tag, r.Cluster, r.Namespace, strings.Join(r.Images, ","), r.Chart, r.DeployedAt, r.By)
				})
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "slipway.yaml", "daemon configuration")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	return cmd
}
