package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/slipwayhq/slipway/config"
	"github.com/slipwayhq/slipway/server"
	"github.com/slipwayhq/slipway/store"
)

// apiFlags say how the control verbs reach a running daemon.
type apiFlags struct {
	server, token, tokenFile string
	wait                     bool
	output                   string
}

func (f *apiFlags) register(cmd *cobra.Command, canWait bool) {
	cmd.Flags().StringVar(&f.server, "server", envOr("SLIPWAY_SERVER", "http://127.0.0.1:8080"), "the daemon's HTTP address ($SLIPWAY_SERVER)")
	cmd.Flags().StringVar(&f.token, "token", "", "API token ($SLIPWAY_TOKEN; prefer --token-file, which keeps it out of the process list)")
	cmd.Flags().StringVar(&f.tokenFile, "token-file", os.Getenv("SLIPWAY_TOKEN_FILE"), "file holding the API token ($SLIPWAY_TOKEN_FILE)")
	cmd.Flags().StringVarP(&f.output, "output", "o", "text", "output: text or json")
	if canWait {
		cmd.Flags().BoolVar(&f.wait, "wait", false, "wait for the run to end; the exit status is 0 only if it succeeded")
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// apiClient calls the daemon's API.
type apiClient struct {
	base  *url.URL
	token string
	http  *http.Client
}

func (f *apiFlags) client() (*apiClient, error) {
	token := f.token
	if token == "" {
		token = os.Getenv("SLIPWAY_TOKEN")
	}
	if token == "" && f.tokenFile != "" {
		b, err := config.ReadSecretFile(f.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("--token-file: %w", err)
		}
		token = string(b)
	}
	if token == "" {
		return nil, fmt.Errorf("no API token: give --token-file, --token or $SLIPWAY_TOKEN (a token of the daemon's apiTokensFile, or its apiTokenFile)")
	}
	u, err := url.Parse(f.server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--server %q: want http://HOST:PORT or https://HOST:PORT", f.server)
	}
	return &apiClient{base: u, token: token, http: &http.Client{Timeout: 2 * time.Minute}}, nil
}

// pipelinePath turns PIPELINE or REPOSITORY/PIPELINE into the API path and query.
func pipelinePath(arg string, rest ...string) (string, url.Values) {
	q := url.Values{}
	name := arg
	if repo, n, ok := strings.Cut(arg, "/"); ok {
		q.Set("repository", repo)
		name = n
	}
	p := "/api/v1/pipelines/" + url.PathEscape(name) + "/runs"
	for _, r := range rest {
		p += "/" + url.PathEscape(r)
	}
	return p, q
}

func (c *apiClient) do(ctx context.Context, method, path string, q url.Values, body any) (server.Run, error) {
	var run server.Run
	raw, err := c.call(ctx, method, path, q, body)
	if err != nil {
		return run, err
	}
	if err := json.Unmarshal(raw, &run); err != nil {
		return run, fmt.Errorf("%s %s: unreadable answer: %w", method, path, err)
	}
	return run, nil
}

// call sends one API request and returns the answer's body, or the daemon's error.
func (c *apiClient) call(ctx context.Context, method, path string, q url.Values, body any) ([]byte, error) {
	var run []byte
	u := *c.base
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawQuery = q.Encode()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return run, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return run, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return run, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return run, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(raw, &e) == nil && e.Error != "" {
			return run, fmt.Errorf("the daemon answered %s: %s", resp.Status, e.Error)
		}
		return run, fmt.Errorf("the daemon answered %s", resp.Status)
	}
	return raw, nil
}

// finish prints the run and, with --wait, follows it to its end; the exit status is 0
// only if it ended as want.
func (f *apiFlags) finish(cmd *cobra.Command, c *apiClient, run server.Run, want store.RunStatus) error {
	ctx := cmd.Context()
	if f.wait {
		path, q := pipelinePath(run.Repository+"/"+run.Pipeline, strconv.FormatInt(run.BuildID, 10))
		for !store.RunStatus(run.Status).Final() {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(500 * time.Millisecond):
			}
			var err error
			if run, err = c.do(ctx, http.MethodGet, path, q, nil); err != nil {
				return err
			}
		}
	}
	out := cmd.OutOrStdout()
	if f.output == "json" {
		_ = json.NewEncoder(out).Encode(run)
	} else {
		line := fmt.Sprintf("%s/%s #%d %s (trigger %s, %s, commit %.12s", run.Repository, run.Pipeline, run.BuildID, run.Status, run.Trigger,
			refOf(run.Branch, run.Tag), run.Commit)
		if run.ParentBuildID != 0 {
			line += fmt.Sprintf(", parent #%d", run.ParentBuildID)
		}
		line += ")"
		if run.Reason != "" {
			line += ": " + run.Reason
		}
		fmt.Fprintln(out, line)
	}
	if f.wait && run.Status != string(want) {
		return exitError{code: 1}
	}
	return nil
}

func newTriggerCommand() *cobra.Command {
	var f apiFlags
	var branch, commit string
	cmd := &cobra.Command{
		Use:   "trigger [REPOSITORY/]PIPELINE [--branch B] [--commit SHA]",
		Short: "Start a run through the daemon's API (the default branch's head, or --branch's, or --commit)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			path, q := pipelinePath(args[0])
			run, err := c.do(cmd.Context(), http.MethodPost, path, nil, server.RunRequest{Repository: q.Get("repository"), Branch: branch, Commit: commit})
			if err != nil {
				return err
			}
			return f.finish(cmd, c, run, store.RunSucceeded)
		},
	}
	f.register(cmd, true)
	cmd.Flags().StringVar(&branch, "branch", "", "tracked branch to run (its .pipeline.yaml and GIT_BRANCH); default: the repository's default branch")
	cmd.Flags().StringVar(&commit, "commit", "", "commit to run (full hash); default: the branch's head")
	return cmd
}

func newRerunCommand() *cobra.Command {
	var f apiFlags
	cmd := &cobra.Command{
		Use:   "rerun [REPOSITORY/]PIPELINE BUILD_ID",
		Short: "Run the commit of an earlier run again, as a new run with that run as its parent",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseBuildID(args[1])
			if err != nil {
				return err
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			path, q := pipelinePath(args[0])
			run, err := c.do(cmd.Context(), http.MethodPost, path, nil, server.RunRequest{Repository: q.Get("repository"), Rerun: id})
			if err != nil {
				return err
			}
			return f.finish(cmd, c, run, store.RunSucceeded)
		},
	}
	f.register(cmd, true)
	return cmd
}

func newCancelCommand() *cobra.Command {
	var f apiFlags
	cmd := &cobra.Command{
		Use:   "cancel [REPOSITORY/]PIPELINE BUILD_ID",
		Short: "Cancel a queued or running run: builds, applies and health waits stop, nothing more is applied",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := parseBuildID(args[1]); err != nil {
				return err
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			path, q := pipelinePath(args[0], args[1], "cancel")
			run, err := c.do(cmd.Context(), http.MethodPost, path, q, nil)
			if err != nil {
				return err
			}
			f.wait = true // a cancel is done when the run has ended
			return f.finish(cmd, c, run, store.RunCancelled)
		},
	}
	f.register(cmd, false)
	return cmd
}

// newAnswerCommand is `slipway approve` (approve true) or `slipway reject`.
func newAnswerCommand(approve bool) *cobra.Command {
	var f apiFlags
	var comment string
	verb, short := "approve", "Approve a run waiting at an approval gate: its stage starts"
	if !approve {
		verb, short = "reject", "Reject a run waiting at an approval gate: the run fails"
	}
	cmd := &cobra.Command{
		Use:   verb + " [REPOSITORY/]PIPELINE BUILD_ID [--comment TEXT]",
		Short: short,
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := parseBuildID(args[1]); err != nil {
				return err
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			path, q := pipelinePath(args[0], args[1], verb)
			raw, err := c.call(cmd.Context(), http.MethodPost, path, q, server.AnswerRequest{Comment: comment})
			if err != nil {
				return err
			}
			// Another process holds the run and has not taken the answer yet: say so,
			// since the run printed is still waiting at its gate.
			var answered server.PendingRun
			if err := json.Unmarshal(raw, &answered); err != nil {
				return fmt.Errorf("POST %s: unreadable answer: %w", path, err)
			}
			if answered.Request.Status == "pending" {
				if f.output == "json" && !f.wait {
					return json.NewEncoder(cmd.OutOrStdout()).Encode(answered)
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "the %s is recorded, not yet acted on: %s\n", verb, answered.Request.Message)
			}
			want := store.RunSucceeded
			if !approve {
				want = store.RunFailed
			}
			return f.finish(cmd, c, answered.Run, want)
		},
	}
	f.register(cmd, true)
	cmd.Flags().StringVar(&comment, "comment", "", "why; recorded in the audit log (and the run's reason when rejecting)")
	return cmd
}

func parseBuildID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("BUILD_ID %q: want a positive number", s)
	}
	return id, nil
}

func newPromoteCommand() *cobra.Command {
	var f apiFlags
	var to string
	cmd := &cobra.Command{
		Use:   "promote [REPOSITORY/]PIPELINE BUILD_ID --to ENVIRONMENT",
		Short: "Deploy what a run deployed to the environment before ENVIRONMENT to ENVIRONMENT: the same commit, images and charts, nothing built; behind its gate",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := parseBuildID(args[1]); err != nil {
				return err
			}
			if to == "" {
				return fmt.Errorf("--to: name the environment to promote to")
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			path, q := pipelinePath(args[0], args[1], "promote")
			run, err := c.do(cmd.Context(), http.MethodPost, path, q, server.PromoteRequest{To: to})
			if err != nil {
				return err
			}
			return f.finish(cmd, c, run, store.RunSucceeded)
		},
	}
	f.register(cmd, true)
	cmd.Flags().StringVar(&to, "to", "", "environment to deploy the run's artifact to")
	return cmd
}

// newSuspendCommand is `slipway suspend` (suspend true) or `slipway resume`.
func newSuspendCommand(suspend bool) *cobra.Command {
	var f apiFlags
	var reason string
	verb, short := "suspend", "Suspend a pipeline: pushes and schedules start no runs, drift is reported but not corrected"
	if !suspend {
		verb, short = "resume", "Resume a suspended pipeline: pushes and schedules start runs again, drift is corrected as its tasks say"
	}
	cmd := &cobra.Command{
		Use:   verb + " [REPOSITORY/]PIPELINE",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			path, q := pipelinePath(args[0])
			raw, err := c.call(cmd.Context(), http.MethodPost, strings.TrimSuffix(path, "/runs")+"/"+verb, nil,
				server.SuspendRequest{Repository: q.Get("repository"), Reason: reason})
			if err != nil {
				return err
			}
			var st server.PipelineState
			if err := json.Unmarshal(raw, &st); err != nil {
				return fmt.Errorf("unreadable answer: %w", err)
			}
			out := cmd.OutOrStdout()
			if f.output == "json" {
				_, err := out.Write(append(raw, '\n'))
				return err
			}
			if st.Suspended {
				fmt.Fprintf(out, "%s/%s suspended by %s at %s\n", st.Repository, st.Pipeline, st.SuspendedBy, st.SuspendedAt.Format(time.RFC3339))
			} else {
				fmt.Fprintf(out, "%s/%s resumed\n", st.Repository, st.Pipeline)
			}
			return nil
		},
	}
	f.register(cmd, false)
	if suspend {
		cmd.Flags().StringVar(&reason, "reason", "", "why, for the audit log and the refusals")
	}
	return cmd
}
