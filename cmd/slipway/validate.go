package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/slipwayhq/slipway/config"
	"github.com/slipwayhq/slipway/internal/repofs"
	"github.com/slipwayhq/slipway/pipeline"
	"github.com/slipwayhq/slipway/pipeline/diag"
	"github.com/slipwayhq/slipway/policy"
)

func newValidateCommand() *cobra.Command {
	var configFile, output, repository string
	cmd := &cobra.Command{
		Use:   "validate [FILE|DIR ...]",
		Short: "Check .pipeline.yaml files (and slipway.yaml) and print every problem with its line and column",
		Long: `Check pipeline files without running anything.

With no argument, ./.pipeline.yaml is checked; a directory means its .pipeline.yaml. The
folder holding a pipeline file is taken as the repository root: files it names must exist
there and ${...} references inside manifests and values files must resolve.

With --config, slipway.yaml is checked too and cluster names, the default registry and the
chart repository are checked against it, and so is policy: every deploy task's cluster and
namespace must be granted to the pipeline's repository (--repository NAME) or, without
--repository, to at least one repository in slipway.yaml. Limits (file sizes, pipelines per
file, the shortest cron interval) are the repository's with --repository, else the defaults.

Files are read as a run reads them: every path resolved inside the repository, so a symlink
that leaves it, dangles or is absolute is an error naming the link.

Exit status: 0 when everything is valid, 1 when not. Errors go to stderr as
FILE:LINE:COL: message, or to stdout as a JSON array with -o json.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "json" {
				return fmt.Errorf("-o: %q is not text or json", output)
			}
			if len(args) == 0 {
				args = []string{pipeline.DefaultFile}
			}
			if repository != "" && configFile == "" {
				return fmt.Errorf("--repository needs --config: grants are in slipway.yaml")
			}
			errs, err := validateFiles(args, configFile, repository)
			if err != nil {
				return err
			}
			log := loggerFrom(cmd.Context())
			if output == "json" {
				if errs == nil {
					errs = diag.List{} // [] rather than null, for tools that iterate
				}
				if err := writeJSON(cmd.OutOrStdout(), errs); err != nil {
					return err
				}
			} else {
				for _, e := range errs {
					fmt.Fprintln(cmd.ErrOrStderr(), e.Error())
				}
			}
			if len(errs) > 0 {
				log.WithField("errors", len(errs)).Debug("validation failed")
				return exitError{code: 1}
			}
			if output == "text" {
				fmt.Fprintf(cmd.OutOrStdout(), "%d file(s) valid\n", len(args))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&configFile, "config", "", "slipway.yaml to check and to check pipelines against")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	cmd.Flags().StringVar(&repository, "repository", "", "the repository (a name in slipway.yaml) the pipelines belong to, whose policy grants are checked")
	return cmd
}

// validateFiles checks the configuration (if any) and every pipeline file. Problems in the
// files are returned as a list; err is for failures to read them at all.
func validateFiles(args []string, configFile, repository string) (diag.List, error) {
	var all diag.List
	var opts pipeline.Options
	var grants *policy.Policy
	if configFile != "" {
		cfg, err := config.Load(configFile)
		var list diag.List
		switch {
		case errors.As(err, &list):
			all = append(all, list...)
		case err != nil:
			return nil, err
		case repository != "" && cfg.Repository(repository) == nil:
			return nil, fmt.Errorf("--repository: %q is not a repository in %s", repository, configFile)
		default:
			opts.Env = cfg
			p := policy.ForAnyRepository(cfg)
			if repository != "" {
				p = policy.For(cfg, repository)
				opts.Limits = cfg.Repository(repository).PipelineLimits()
			}
			grants = &p
		}
	}
	for _, arg := range args {
		file, err := pipelineFile(arg)
		if err != nil {
			return nil, err
		}
		repo, err := repofs.Open(filepath.Dir(file))
		if err != nil {
			return nil, err
		}
		fileOpts := opts
		fileOpts.Repo = repo
		ps, err := pipeline.LoadFile(repo, filepath.Base(file), file, fileOpts)
		repo.Close()
		var list diag.List
		switch {
		case errors.As(err, &list):
			all = append(all, list...)
		case err != nil:
			return nil, err
		case grants != nil:
			all = append(all, policyErrors(*grants, ps)...)
		}
	}
	return all, nil
}

// pipelineFile turns an argument into a pipeline file path: a directory means its
// .pipeline.yaml.
func pipelineFile(arg string) (string, error) {
	fi, err := os.Stat(arg)
	if err != nil {
		return "", fmt.Errorf("reading pipeline file: %w", err)
	}
	if fi.IsDir() {
		return filepath.Join(arg, pipeline.DefaultFile), nil
	}
	return arg, nil
}

func writeJSON(w io.Writer, errs diag.List) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(errs); err != nil {
		return fmt.Errorf("writing JSON: %w", err)
	}
	return nil
}

// policyErrors is the static policy check of valid pipelines, each denial placed at the
// field denied.
func policyErrors(p policy.Policy, ps []*pipeline.Pipeline) diag.List {
	var out diag.List
	for _, pl := range ps {
		for _, d := range p.CheckPipeline(pl) {
			pos := pl.Positions.Of(d.Field)
			out = append(out, diag.Error{File: pl.File, Line: pos.Line, Column: pos.Column, Field: d.Field,
				Message: fmt.Sprintf("policy (rule %s): %s", d.Rule, d.Reason)})
		}
	}
	return out
}
