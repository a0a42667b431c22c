package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/slipwayhq/slipway/server/records"
	"github.com/slipwayhq/slipway/store"
)

// historyRow is the JSON shape of one run; field names are part of the CLI's contract.
type historyRow struct {
	BuildID         int64   `json:"build_id"`
	Status          string  `json:"status"`
	Commit          string  `json:"commit"`
	Branch          string  `json:"branch,omitempty"`
	Tag             string  `json:"tag,omitempty"`
	Trigger         string  `json:"trigger"`
	Parent          int64   `json:"parent,omitempty"`
	CreatedAt       string  `json:"created_at"`
	StartedAt       string  `json:"started_at,omitempty"`
	DurationSeconds float64 `json:"duration_seconds"`
	Revision        string  `json:"revision,omitempty"`
	// Adopted lists the objects the run's deploys took over (TASK KIND/NAMESPACE/NAME):
	// they existed without Slipway's owner label and the task said adopt: true.
	Adopted []string `json:"adopted,omitempty"`
	// Outputs are the values the run's tasks gave later tasks, as ${...} names them
	// (tasks.TASK.KEY), secrets masked.
	Outputs map[string]string `json:"outputs,omitempty"`
	Reason  string            `json:"reason,omitempty"`
}

func newHistoryCommand() *cobra.Command {
	var cfgPath, output string
	var limit int
	cmd := &cobra.Command{
		Use:   "history --config slipway.yaml PIPELINE",
		Short: "List a pipeline's runs, newest first",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			st, ref, err := openPipeline(ctx, cfgPath, args[0])
			if err != nil {
				return err
			}
			defer st.Close()
			runs, err := st.ListRuns(ctx, ref, limit)
			if err != nil {
				return err
			}
			rows := make([]historyRow, 0, len(runs))
			for _, r := range runs {
				row := historyRow{BuildID: r.BuildID, Status: string(r.Status), Commit: r.Commit, Branch: r.Branch, Tag: r.Tag,
					Trigger: string(r.Trigger), Reason: r.Reason,
					Parent: r.ParentBuildID, CreatedAt: r.CreatedAt.UTC().Format(time.RFC3339Nano)}
				if !r.StartedAt.IsZero() {
					row.StartedAt = r.StartedAt.UTC().Format(time.RFC3339Nano)
					end := r.FinishedAt
					if end.IsZero() {
						end = time.Now()
					}
					row.DurationSeconds = end.Sub(r.StartedAt).Round(time.Millisecond).Seconds()
				}
				tasks, err := st.ListTasks(ctx, ref, r.BuildID)
				if err != nil {
					return err
				}
				for _, t := range tasks {
					for k, v := range t.Outputs {
						if row.Outputs == nil {
							row.Outputs = map[string]string{}
						}
						row.Outputs["tasks."+t.Name+"."+k] = v
					}
				}
				revs, err := st.ListRevisions(ctx, ref, r.BuildID)
				if err != nil {
					return err
				}
				for i, rev := range revs {
					if i > 0 {
						row.Revision += ","
					}
					row.Revision += fmt.Sprintf("%s:%s", rev.Task, rev.Status)
					n := 0
					for _, e := range rev.Inventory {
						if e.Adopted {
							row.Adopted = append(row.Adopted, rev.Task+" "+e.String())
							n++
						}
					}
					if n > 0 {
						row.Revision += fmt.Sprintf("(%d adopted)", n)
					}
				}
				rows = append(rows, row)
			}
			return printRows(cmd.OutOrStdout(), output, rows, "",
				"BUILD_ID\tSTATUS\tCOMMIT\tREF\tTRIGGER\tPARENT\tSTARTED\tDURATION\tREVISION\tOUTPUTS\tREASON",
				func(r historyRow) string {
					commit := r.Commit
					if len(commit) > 12 {
						commit = commit[:12]
					}
					parent := ""
					if r.Parent != 0 {
						parent = fmt.Sprintf("#%d", r.Parent)
					}
					return fmt.Sprintf("%d\t%s\t%s\t%s\t%s\t%s\t%s\t%.1fs\t%s\t%s\t%s", r.BuildID, r.Status, commit, refOf(r.Branch, r.Tag), r.Trigger, parent, r.StartedAt, r.DurationSeconds, r.Revision, outputsText(r.Outputs), firstLine(r.Reason))
				})
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "slipway.yaml", "daemon configuration")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	cmd.Flags().IntVar(&limit, "limit", 50, "most runs to list")
	return cmd
}

// printRows prints rows as -o asks: indented JSON for json; otherwise a table, its
// header line then line(r) for each row, or just none (when not "") if there are no rows.
func printRows[R any](out io.Writer, output string, rows []R, none, header string, line func(R) string) error {
	if output == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	if len(rows) == 0 && none != "" {
		fmt.Fprintln(out, none)
		return nil
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		fmt.Fprintln(tw, line(r))
	}
	return tw.Flush()
}

// outputsText is outputs as NAME=VALUE pairs, sorted.
func outputsText(outputs map[string]string) string {
	keys := slices.Sorted(maps.Keys(outputs))
	for i, k := range keys {
		keys[i] = k + "=" + outputs[k]
	}
	return strings.Join(keys, " ")
}

// refOf is what a run ran, as history's REF column shows it: tag:NAME for a tag's run,
// else the branch ("-" when none was recorded).
func refOf(branch, tag string) string {
	switch {
	case tag != "":
		return "tag:" + tag
	case branch != "":
		return branch
	}
	return "-"
}

func firstLine(s string) string {
	for i, c := range s {
		if c == '\n' {
			return s[:i] + " ..."
		}
	}
	return s
}

func newLogsCommand() *cobra.Command {
	var cfgPath string
	var follow bool
	var tasks []string
	var api apiFlags
	cmd := &cobra.Command{
		Use:   "logs --config slipway.yaml PIPELINE BUILD_ID",
		Short: "Print the log of one run; with -f, follow a live run through the daemon until it ends",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			id, err := parseBuildID(args[1])
			if err != nil {
				return err
			}
			if follow {
				return followLogs(cmd, &api, args[0], id, tasks)
			}
			st, ref, err := openPipeline(ctx, cfgPath, args[0])
			if err != nil {
				return err
			}
			defer st.Close()
			run, err := st.GetRun(ctx, ref, id)
			if err != nil {
				return fmt.Errorf("%s #%d: %w", args[0], id, err)
			}
			out := cmd.OutOrStdout()
			tasksOf, err := st.ListTasks(ctx, ref, id)
			if err != nil {
				return err
			}
			lines, err := st.ReadLogs(ctx, ref, id, store.LogQuery{Tasks: tasks})
			if err != nil {
				return err
			}
			if api.output == "json" {
				d, err := records.RunDetailOf(ctx, st, ref, id, time.Now())
				if err != nil {
					return err
				}
				page := struct {
					records.RunDetail
					Lines []records.Line `json:"lines"`
				}{RunDetail: d, Lines: make([]records.Line, 0, len(lines))}
				for _, l := range lines {
					page.Lines = append(page.Lines, records.LineOf(l))
				}
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(page)
			}
			fmt.Fprintf(out, "%s #%d %s at %s on %s (%s)\n", ref.Name, id, run.Status, run.Commit, refOf(run.Branch, run.Tag), run.Trigger)
			for _, t := range tasksOf {
				fmt.Fprintf(out, "== %s/%s [%s] %s\n", t.Stage, t.Name, t.Type, t.Status)
				for _, l := range lines {
					if l.Task == t.Name {
						fmt.Fprintf(out, "%s %s\n", l.Time.Format(time.TimeOnly), l.Text)
					}
				}
				if len(t.Outputs) > 0 {
					fmt.Fprintf(out, "   outputs: %s\n", outputsText(t.Outputs))
				}
				if t.Reason != "" {
					fmt.Fprintf(out, "   %s\n", t.Reason)
				}
			}
			if run.Reason != "" {
				fmt.Fprintf(out, "run %s: %s\n", run.Status, run.Reason)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "slipway.yaml", "daemon configuration (without -f)")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "follow the run live through the daemon's API (--server, --token-file) until it ends; exit status 0 only if it succeeded")
	cmd.Flags().StringSliceVar(&tasks, "task", nil, "only these tasks' lines")
	api.register(cmd, false)
	return cmd
}
