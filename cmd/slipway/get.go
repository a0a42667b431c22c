package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/slipwayhq/slipway/server/records"
	"github.com/slipwayhq/slipway/store"
)

// The columns of `slipway get pipelines` and `get runs` read the same records the API and
// the web UI answer with (package records), so the three agree.

func newGetPipelinesCommand() *cobra.Command {
	var cfgPath, output, repository string
	cmd := &cobra.Command{
		Use:   "pipelines --config slipway.yaml",
		Short: "One line per pipeline: its last run and status, the revision on the clusters, drift and suspension",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			_, st, err := openConfigAndStore(ctx, cfgPath)
			if err != nil {
				return err
			}
			defer st.Close()
			var keep records.Keep
			if repository != "" {
				keep = func(ref store.PipelineRef) bool { return ref.Repository == repository }
			}
			now := time.Now()
			ps, err := records.Pipelines(ctx, st, keep, now)
			if err != nil {
				return err
			}
			return printRows(cmd.OutOrStdout(), output, ps, "no pipeline has run yet",
				"PIPELINE\tLAST RUN\tSTATUS\tAGE\tREVISION\tDRIFT\tSUSPENDED\tMESSAGE",
				func(p records.Pipeline) string {
					last, status, age, msg := "-", "-", "-", ""
					if r := p.LastRun; r != nil {
						last, status, age = fmt.Sprintf("#%d", r.BuildID), r.Status, since(now, r.CreatedAt)
						msg = firstLine(r.Reason)
					}
					rev := "-"
					if r := p.Revision; r != nil {
						rev = fmt.Sprintf("#%d@%.12s", r.BuildID, r.Commit)
						if r.Tag != "" {
							rev = fmt.Sprintf("#%d@%s", r.BuildID, r.Tag)
						}
					}
					if p.Suspended {
						msg = strings.TrimSpace("suspended by " + p.SuspendedBy + ": " + p.SuspendReason)
					}
					return fmt.Sprintf("%s/%s\t%s\t%s\t%s\t%s\t%s\t%t\t%s", p.Repository, p.Name, last, status, age, rev, p.Drift, p.Suspended, msg)
				})
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "slipway.yaml", "daemon configuration")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	cmd.Flags().StringVar(&repository, "repository", "", "only this repository's pipelines")
	return cmd
}

// since is how long ago t was, rounded as people read it.
func since(now, t time.Time) string {
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func newGetRunsCommand() *cobra.Command {
	var cfgPath, output, since, until string
	var statuses, triggers []string
	var f store.RunFilter
	cmd := &cobra.Command{
		Use:   "runs --config slipway.yaml [[REPOSITORY/]PIPELINE]",
		Short: "Runs across pipelines, newest first, filtered by pipeline, status, trigger and time, a page at a time",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if f.Limit <= 0 || f.Limit > store.MaxRunPage {
				return fmt.Errorf("--limit %d: want 1 to %d", f.Limit, store.MaxRunPage)
			}
			var err error
			if f.Statuses, f.Triggers, err = records.RunKinds(statuses, triggers); err != nil {
				return fmt.Errorf("--%w", err) // --status "x" is not a run status
			}
			for _, tv := range []struct {
				flag, value string
				to          *time.Time
			}{{"--since", since, &f.Since}, {"--until", until, &f.Until}} {
				if tv.value == "" {
					continue
				}
				t, err := parseWhen(tv.value, time.Now())
				if err != nil {
					return fmt.Errorf("%s: %w", tv.flag, err)
				}
				*tv.to = t
			}
			_, st, err := openConfigAndStore(ctx, cfgPath)
			if err != nil {
				return err
			}
			defer st.Close()
			if len(args) == 1 {
				ref, err := pipelineRef(ctx, st, args[0])
				if err != nil {
					return err
				}
				f.Repository, f.Pipeline = ref.Repository, ref.Name
			}
			now := time.Now()
			list, err := records.Runs(ctx, st, f, nil, now)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if output == "json" {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(list)
			}
			if err := printRows(out, output, list.Runs, "no runs match", "PIPELINE\tBUILD_ID\tSTATUS\tTRIGGER\tREF\tCOMMIT\tCREATED\tDURATION\tREASON",
				func(r records.Run) string {
					return fmt.Sprintf("%s/%s\t%d\t%s\t%s\t%s\t%.12s\t%s\t%s\t%s", r.Repository, r.Pipeline, r.BuildID, r.Status, r.Trigger,
						refOf(r.Branch, r.Tag), r.Commit, r.CreatedAt.UTC().Format(time.RFC3339), (time.Duration(r.DurationSeconds) * time.Second).String(),
						firstLine(r.Reason))
				}); err != nil {
				return err
			}
			if list.Next != "" {
				fmt.Fprintf(out, "more: --after %s\n", list.Next)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "slipway.yaml", "daemon configuration")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	cmd.Flags().StringVar(&f.Repository, "repository", "", "only this repository's runs")
	cmd.Flags().StringSliceVar(&statuses, "status", nil, "only runs in these statuses (repeat or comma-separate)")
	cmd.Flags().StringSliceVar(&triggers, "trigger", nil, "only runs of these triggers: push, manual, cron, pull_request, rollback, promote, retry")
	cmd.Flags().StringVar(&since, "since", "", "only runs created at or after: an RFC 3339 time or a duration ago (24h)")
	cmd.Flags().StringVar(&until, "until", "", "only runs created before: an RFC 3339 time or a duration ago")
	cmd.Flags().IntVar(&f.Limit, "limit", 50, fmt.Sprintf("runs per page (at most %d)", store.MaxRunPage))
	cmd.Flags().StringVar(&f.After, "after", "", "the page after this one (what the previous page printed as more:)")
	return cmd
}

// parseWhen reads an RFC 3339 time, or a duration meaning that long before now.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return time.Time{}, fmt.Errorf("%q: want an RFC 3339 time (2026-12-01T08:00:00Z) or a duration ago (90m, 24h)", s)
	}
	return now.Add(-d), nil
}
