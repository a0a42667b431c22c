package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/slipwayhq/slipway/daemon"
	"github.com/slipwayhq/slipway/reconciler"
	"github.com/slipwayhq/slipway/store"
)

func newRunCommand() *cobra.Command {
	var cfgPath, repo, branch, commit string
	var pipelines []string
	cmd := &cobra.Command{
		Use:   "run --config slipway.yaml --repo NAME|URL [--branch B] [--pipeline NAME]",
		Short: "Run a repository's pipelines once at the branch head (or a commit) and show progress",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			d, err := newDaemon(ctx, cfgPath, loggerFrom(ctx))
			if err != nil {
				return err
			}
			defer d.Close()
			rcfg, src, err := d.Repository(repo)
			if err != nil {
				return err
			}
			if branch == "" {
				branch = rcfg.DefaultBranch()
			}
			out := cmd.OutOrStdout()
			board := newProgressBoard(out)
			runner, disp, stop, err := startEngineWith(ctx, d, "slipway run", board)
			if err != nil {
				return err
			}
			defer stop()
			co, err := runner.Prepare(ctx, reconciler.Request{Repo: src, Branch: branch, Commit: commit, Pipelines: pipelines})
			if err != nil {
				return err
			}
			start := time.Now()
			names := make([]string, len(co.Pipelines))
			for i, p := range co.Pipelines {
				names[i] = p.Name
			}
			board.setPipelines(names)
			// Every pipeline goes through the run engine, as the daemon's runs do: one run per
			// pipeline holds against a daemon running beside this command (the run waits).
			var runs []store.Run
			for _, p := range co.Pipelines {
				job := reconciler.RunJob(co, p, store.TriggerManual, 0)
				// Recorded with the run, in its transaction: nothing runs that the audit log
				// cannot attribute.
				job.Audit = &store.AuditEntry{Actor: cliActor(), Action: store.AuditTrigger, Reason: "slipway run at " + co.Commit.Hash}
				run, err := disp.Submit(ctx, job)
				if err != nil {
					return err
				}
				runs = append(runs, run)
			}
			byStatus := map[store.RunStatus]int{}
			var failures []store.Run
			for _, run := range runs {
				final, err := waitRun(ctx, d.Store, disp, run)
				if err != nil {
					return err
				}
				byStatus[final.Status]++
				if final.Status != store.RunSucceeded {
					failures = append(failures, final)
				}
			}
			board.finish()
			if len(runs) > 1 {
				printSummary(out, byStatus, len(runs), time.Since(start), sharedBounds{
					peakRuns: disp.PeakInFlight(), maxRuns: d.Config.MaxInFlight(),
					peakApplies: d.ApplySlots.Peak(), maxApplies: d.ApplySlots.Cap(),
					peakBuilds: d.BuildSlots.Peak(), maxBuilds: d.BuildSlots.Cap()})
			}
			for _, final := range failures {
				fmt.Fprintf(out, "%s #%d %s: %s\n", final.Pipeline.Name, final.BuildID, final.Status, final.Reason)
			}
			if len(failures) > 0 {
				return exitError{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "slipway.yaml", "daemon configuration")
	cmd.Flags().StringVar(&repo, "repo", "", "repository name or URL from the configuration")
	cmd.Flags().StringVar(&branch, "branch", "", "branch (default: the repository's tracked branch)")
	cmd.Flags().StringVar(&commit, "commit", "", "commit to run instead of the branch head")
	cmd.Flags().StringSliceVar(&pipelines, "pipeline", nil, "pipeline(s) to run (default: all in the file)")
	_ = cmd.MarkFlagRequired("repo")
	return cmd
}

// startEngine starts this command's run engine, reporting progress to out; stop cancels
// what still runs and waits for it.
func startEngine(ctx context.Context, d *daemon.Parts, description string, out io.Writer) (*reconciler.Runner, *reconciler.Dispatcher, func(), error) {
	return startEngineWith(ctx, d, description, progressPrinter{w: out})
}

// startEngineWith is startEngine reporting to observer.
func startEngineWith(ctx context.Context, d *daemon.Parts, description string, observer reconciler.Observer) (*reconciler.Runner, *reconciler.Dispatcher, func(), error) {
	// The pull-request gate reads the forges here too: a reviewed pull request lets a run
	// through that this process could not approve otherwise.
	forges, err := daemon.ForgeClients(d.Config)
	if err != nil {
		return nil, nil, nil, err
	}
	d.UseForges(forges)
	engineCtx, cancel := context.WithCancel(ctx)
	runner, disp, err := d.StartDispatcher(engineCtx, description, false, observer)
	if err != nil {
		cancel()
		return nil, nil, nil, err
	}
	return runner, disp, func() { cancel(); disp.Wait() }, nil
}

// waitRun waits for a submitted run to end and returns its final record.
func waitRun(ctx context.Context, st store.Store, disp *reconciler.Dispatcher, run store.Run) (store.Run, error) {
	select {
	case <-disp.Done(run.Pipeline, run.BuildID):
	case <-ctx.Done():
		return run, ctx.Err()
	}
	return st.GetRun(context.WithoutCancel(ctx), run.Pipeline, run.BuildID)
}

// progressPrinter prints one line per state change: readable on a terminal and in CI logs.
type progressPrinter struct{ w io.Writer }

func (p progressPrinter) RunEvent(e reconciler.Event) {
	ts := e.Time.Format(time.TimeOnly)
	subject := fmt.Sprintf("%s #%d", e.Pipeline, e.BuildID)
	if e.Task != "" {
		subject += fmt.Sprintf(" %s/%s", e.Stage, e.Task)
	}
	if e.Reason != "" {
		fmt.Fprintf(p.w, "%s %-40s %s: %s\n", ts, subject, e.Status, e.Reason)
		return
	}
	fmt.Fprintf(p.w, "%s %-40s %s\n", ts, subject, e.Status)
}
