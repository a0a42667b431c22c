package main

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/spf13/cobra"

	"github.com/slipwayhq/slipway/config"
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

// driftEventRow is the JSON shape of one recorded drift event; field names are part of the
// CLI's contract.
type driftEventRow struct {
	ID         int64           `json:"id"`
	Pipeline   string          `json:"pipeline"`
	Task       string          `json:"task"`
	BuildID    int64           `json:"build_id"`
	Cluster    string          `json:"cluster"`
	Object     string          `json:"object"`
	Action     string          `json:"action"`
	Gone       bool            `json:"gone"`
	Patch      json.RawMessage `json:"patch,omitempty"`
	Manager    string          `json:"manager,omitempty"`
	ChangedAt  string          `json:"changed_at,omitempty"`
	DetectedAt string          `json:"detected_at"`
	Error      string          `json:"error,omitempty"`
}

func newDriftCommand() *cobra.Command {
	var cfgPath, output string
	var events bool
	var limit int
	cmd := &cobra.Command{
		Use:   "drift --config slipway.yaml [PIPELINE]",
		Short: "Show where the cluster differs from the current deploys (patches, who changed what), or past drift events",
		Long: "Computes a fresh server-side dry-run diff of every object of each task's current revision " +
			"(YAML deploys and chart releases; drift: off tasks too) against the cluster. Works without the daemon.\n\n" +
			"With --events, lists the drift events the daemon recorded instead, newest first: what it saw " +
			"(patch, who, when) and what it did (reported, corrected, correction-failed), and the health watch's " +
			"findings (unhealthy: a workload's pod failed after the deploy, with the pod's reason and any rollback started).",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if output != "table" && output != "json" {
				return fmt.Errorf("-o: %q is not table or json", output)
			}
			if limit < 0 {
				return fmt.Errorf("--limit: %d is negative", limit)
			}
			if cmd.Flags().Changed("limit") && !events {
				return fmt.Errorf("--limit applies to --events only")
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
			if events {
				return printDriftEvents(cmd, st, only, limit, output)
			}
			return printCurrentDrift(cmd, cfg, st, only, output)
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "slipway.yaml", "daemon configuration")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	cmd.Flags().BoolVar(&events, "events", false, "list recorded drift events instead of computing current drift")
	cmd.Flags().IntVar(&limit, "limit", 50, "with --events: at most this many events, newest first (0: all)")
	return cmd
}

// printCurrentDrift diffs every object of the current revisions against the cluster.
func printCurrentDrift(cmd *cobra.Command, cfg *config.Config, st store.Store, only *store.PipelineRef, output string) error {
	ctx := cmd.Context()
	revs, err := st.CurrentRevisions(ctx)
	if err != nil {
		return err
	}
	clusters := kube.NewClusters(clusterSpecs(cfg))
	rows := []driftRow{}
	for i := range revs {
		rev := &revs[i]
		if only != nil && rev.Pipeline != *only {
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
			row.Patch, row.ChangedAt = driftDetail(f.Patch, f.ChangedAt, time.RFC3339)
			rows = append(rows, row)
		}
	}
	return printRows(cmd.OutOrStdout(), output, rows, "no drift",
		"PIPELINE\tTASK\tBUILD\tMODE\tOBJECT\tCHANGED BY\tAT\tPATCH",
		func(r driftRow) string {
			who, patch := changedBy(r.Manager, r.Patch, r.Gone, "object is gone")
			return fmt.Sprintf("%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s", r.Pipeline, r.Task, r.BuildID, r.Mode, r.Object, who, r.ChangedAt, patch)
		})
}

// printDriftEvents lists recorded drift events, newest first, of one pipeline or all.
func printDriftEvents(cmd *cobra.Command, st store.Store, only *store.PipelineRef, limit int, output string) error {
	ctx := cmd.Context()
	var refs []store.PipelineRef
	if only != nil {
		refs = []store.PipelineRef{*only}
	} else {
		ps, err := st.ListPipelines(ctx)
		if err != nil {
			return err
		}
		for _, p := range ps {
			refs = append(refs, p.Ref)
		}
	}
	var evs []store.DriftEvent
	for _, ref := range refs {
		// Each pipeline's newest limit events hold the newest limit events overall.
		e, err := st.ListDriftEvents(ctx, ref, limit)
		if err != nil {
			return err
		}
		evs = append(evs, e...)
	}
	// IDs grow with every event recorded, across pipelines: newest first.
	sort.Slice(evs, func(i, j int) bool { return evs[i].ID > evs[j].ID })
	if limit > 0 && len(evs) > limit {
		evs = evs[:limit]
	}
	rows := make([]driftEventRow, 0, len(evs))
	for _, e := range evs {
		row := driftEventRow{ID: e.ID, Pipeline: e.Pipeline.String(), Task: e.Task, BuildID: e.BuildID, Cluster: e.Cluster,
			Object: e.Object.String(), Action: string(e.Action), Gone: e.Gone, Manager: e.Manager,
			DetectedAt: e.DetectedAt.UTC().Format(time.RFC3339Nano), Error: e.Error}
		row.Patch, row.ChangedAt = driftDetail(e.Patch, e.ChangedAt, time.RFC3339Nano)
		rows = append(rows, row)
	}
	return printRows(cmd.OutOrStdout(), output, rows, "no drift events",
		"DETECTED\tPIPELINE\tTASK\tBUILD\tACTION\tOBJECT\tCHANGED BY\tAT\tPATCH",
		func(r driftEventRow) string {
			who, patch := changedBy(r.Manager, r.Patch, r.Gone, "object was gone")
			switch {
			case r.Action == string(store.HealthUnhealthy):
				// Not drift: the health watch's finding; its reason takes the patch's place.
				patch = firstLine(r.Error)
			case r.Error != "":
				patch += " (error: " + firstLine(r.Error) + ")"
			}
			return fmt.Sprintf("%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s", shortTime(r.DetectedAt), r.Pipeline, r.Task, r.BuildID,
				r.Action, r.Object, who, shortTime(r.ChangedAt), patch)
		})
}

// driftDetail is a drift finding's or event's patch and change time as its JSON row
// holds them: omitted when there is no patch or the time is unknown (zero).
func driftDetail(patch string, changedAt time.Time, layout string) (json.RawMessage, string) {
	var raw json.RawMessage
	if patch != "" {
		raw = json.RawMessage(patch)
	}
	var at string
	if !changedAt.IsZero() {
		at = changedAt.UTC().Format(layout)
	}
	return raw, at
}

// changedBy is the CHANGED BY and PATCH columns of a drifted object: who changed it and
// the patch, or "(deleted)" and gonePatch when the object is gone.
func changedBy(manager string, patch json.RawMessage, gone bool, gonePatch string) (who, patchText string) {
	if gone {
		return "(deleted)", gonePatch
	}
	return manager, string(patch)
}

// shortTime is an RFC 3339 time to the second, for the table.
func shortTime(s string) string {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return s
	}
	return t.Format(time.RFC3339)
}
