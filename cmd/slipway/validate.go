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
	"github.com/slipwayhq/slipway/pipeline"
	"github.com/slipwayhq/slipway/pipeline/diag"
)

func newValidateCommand() *cobra.Command {
	var configFile, output string
	cmd := &cobra.Command{
		Use:   "validate [FILE|DIR ...]",
		Short: "Check .pipeline.yaml files (and slipway.yaml) and print every problem with its line and column",
		Long: `Check pipeline files without running anything.

With no argument, ./.pipeline.yaml is checked; a directory means its .pipeline.yaml. The
folder holding a pipeline file is taken as the repository root: files it names must exist
there and ${...} references inside manifests and values files must resolve.

With --config, slipway.yaml is checked too and cluster names, the default registry and the
chart repository are checked against it.

Exit status: 0 when everything is valid, 1 when not. Errors go to stderr as
FILE:LINE:COL: message, or to stdout as a JSON array with -o json.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "json" {
				return fmt.Errorf("-o: %q is not text or json", output)
			}
			if len(args) == 0 {
				args = []string{pipeline.DefaultFile}
			}
			errs, err := validateFiles(args, configFile)
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
	return cmd
}

// validateFiles checks the configuration (if any) and every pipeline file. Problems in the
// files are returned as a list; err is for failures to read them at all.
func validateFiles(args []string, configFile string) (diag.List, error) {
	var all diag.List
	var opts pipeline.Options
	if configFile != "" {
		cfg, err := config.Load(configFile)
		var list diag.List
		switch {
		case errors.As(err, &list):
			all = append(all, list...)
		case err != nil:
			return nil, err
		default:
			opts.Env = cfg
		}
	}
	for _, arg := range args {
		file, err := pipelineFile(arg)
		if err != nil {
			return nil, err
		}
		fileOpts := opts
		fileOpts.Repo = os.DirFS(filepath.Dir(file))
		_, err = pipeline.LoadFile(fileOpts.Repo, filepath.Base(file), file, fileOpts)
		var list diag.List
		switch {
		case errors.As(err, &list):
			all = append(all, list...)
		case err != nil:
			return nil, err
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
