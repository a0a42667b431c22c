package main

import (
	"encoding/json"
	"fmt"
	"sort"

	"github.com/spf13/cobra"

	"github.com/slipwayhq/slipway/internal/version"
)

func newVersionCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit, Go version and key library versions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			info := version.Get()
			out := cmd.OutOrStdout()
			switch output {
			case "json":
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(info)
			case "text":
				fmt.Fprintf(out, "slipway %s (commit %s, %s, %s)\n", info.Version, info.Commit, info.GoVersion, info.Platform)
				libs := make([]string, 0, len(info.Libraries))
				for lib := range info.Libraries {
					libs = append(libs, lib)
				}
				sort.Strings(libs)
				for _, lib := range libs {
					fmt.Fprintf(out, "  %s %s\n", lib, info.Libraries[lib])
				}
				return nil
			default:
				return fmt.Errorf("-o: %q is not text or json", output)
			}
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}
