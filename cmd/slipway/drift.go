package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/slipwayhq/slipway/reconciler/drift"
	"github.com/slipwayhq/slipway/reconciler/kube"
	"github.com/slipwayhq/slipway/store"
)

// driftRow is the JSON shape of one drifted object; field names are part of the CLI's contract.
type driftRow struct {
	Pipeline  string          `json:"pipeline"`
	Task      string          `json:"task"`
	BuildID   int64           `json:"build_id"`
	Mode      string          `json:"mode"`
	Cluster   string          `json:"cluster"`
	Object    string          `json:"object"`
	Gone      bool            `json:"gone"`
	Patch     json.RawMessage `json:"patch,omitempty"`
	Manager   string          `json:"manager,omitempty"`
	ChangedAt string          `json:"changed_at,omitempty"`
}

func newDriftCommand() *cobra.Command {
	var cfgPath, output string
	cmd := &cobra.Command{
		Use:   "drift --config slipway.yaml [PIPELINE]",
		Short: "Show where the cluster differs from the current deploys: patches, and who changed what",
		Long: "Computes a fresh server-side dry-run diff of every object of each task's current revision " +
			"(YAML deploys; drift: off tasks too) against the cluster. Works without the daemon.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if output != "table" && output != "json" {
				return fmt.Errorf("-o: %q is not table or json", output)
			}
			cfg, st, err := openConfigAndStore(ctx, cfgPath)
			if err != nil {
				return err
			}
			defer st.Close()
			var only *store.PipelineRef
			if len(args) == 1 {
				ref, err := pipelineRef(ctx, st, args[0])
				if err != nil {
					return err
				}
				only = &ref
			}
			revs, err := st.CurrentRevisions(ctx)
			if err != nil {
				return err
			}
			clusters := kube.NewClusters(clusterSpecs(cfg))
			rows := []driftRow{}
			for i := range revs {
				rev := &revs[i]
				if rev.Kind != store.DeployYAML || (only != nil && rev.Pipeline != *only) {
					continue
				}
				cl, err := clusters.Get(ctx, rev.Cluster)
				if err != nil {
					return err
				}
				objs, err := drift.Objects(cl, rev)
				if err != nil {
					return err
				}
				for _, o := range objs {
					f, err := drift.Check(ctx, cl, o)
					if err != nil {
						return err
					}
					if f == nil {
						continue
					}
					row := driftRow{Pipeline: rev.Pipeline.String(), Task: rev.Task, BuildID: rev.BuildID, Mode: rev.Drift.EffectiveMode(),
						Cluster: rev.Cluster, Object: o.String(), Gone: f.Gone, Manager: f.Manager}
					if f.Patch != "" {
						row.Patch = json.RawMessage(f.Patch)
					}
					if !f.ChangedAt.IsZero() {
						row.ChangedAt = f.ChangedAt.UTC().Format(time.RFC3339)
					}
					rows = append(rows, row)
				}
			}
			out := cmd.OutOrStdout()
			if output == "json" {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(rows)
			}
			if len(rows) == 0 {
				fmt.Fprintln(out, "no drift")
				return nil
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "PIPELINE\tTASK\tBUILD\tMODE\tOBJECT\tCHANGED BY\tAT\tPATCH")
			for _, r := range rows {
				who, patch := r.Manager, string(r.Patch)
				if r.Gone {
					who, patch = "(deleted)", "object is gone"
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", r.Pipeline, r.Task, r.BuildID, r.Mode, r.Object, who, r.ChangedAt, patch)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "slipway.yaml", "daemon configuration")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	return cmd
}
