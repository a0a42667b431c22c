package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/slipwayhq/slipway/store"
)

// auditRow is the JSON shape of one audit entry; field names are part of the CLI's contract.
type auditRow struct {
	ID         int64           `json:"id"`
	Time       string          `json:"time"`
	Actor      string          `json:"actor"`
	Action     string          `json:"action"`
	Repository string          `json:"repository"`
	Pipeline   string          `json:"pipeline"`
	BuildID    int64           `json:"build_id,omitempty"`
	Reason     string          `json:"reason,omitempty"`
	Evidence   json.RawMessage `json:"evidence,omitempty"`
}

func newAuditCommand() *cobra.Command {
	var cfgPath, output string
	var limit int
	cmd := &cobra.Command{
		Use:   "audit --config slipway.yaml [PIPELINE | REPOSITORY/PIPELINE]",
		Short: "List who triggered, re-ran, cancelled, rolled back, approved or rejected what, newest first",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			var f store.AuditFilter
			if len(args) == 1 {
				if repo, name, ok := strings.Cut(args[0], "/"); ok {
					f.Pipeline = store.PipelineRef{Repository: repo, Name: name}
				} else {
					f.Pipeline.Name = args[0]
				}
			}
			f.Limit = limit
			_, st, err := openConfigAndStore(ctx, cfgPath)
			if err != nil {
				return err
			}
			defer st.Close()
			entries, err := st.ListAudit(ctx, f)
			if err != nil {
				return err
			}
			rows := make([]auditRow, 0, len(entries))
			for _, e := range entries {
				rows = append(rows, auditRow{ID: e.ID, Time: e.Time.UTC().Format(time.RFC3339Nano), Actor: e.Actor,
					Action: string(e.Action), Repository: e.Pipeline.Repository, Pipeline: e.Pipeline.Name, BuildID: e.BuildID,
					Reason: e.Reason, Evidence: e.Evidence})
			}
			return printRows(cmd.OutOrStdout(), output, rows, "no audit entries",
				"TIME\tACTOR\tACTION\tPIPELINE\tBUILD_ID\tREASON",
				func(r auditRow) string {
					id := ""
					if r.BuildID != 0 {
						id = fmt.Sprintf("#%d", r.BuildID)
					}
					return fmt.Sprintf("%s\t%s\t%s\t%s/%s\t%s\t%s", r.Time, r.Actor, r.Action, r.Repository, r.Pipeline, id, firstLine(r.Reason))
				})
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "slipway.yaml", "daemon configuration")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	cmd.Flags().IntVar(&limit, "limit", 50, "most entries to list; 0: all")
	return cmd
}

// cliActor is who the audit log names for this command: cli:USER.
func cliActor() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return "cli:" + u.Username
	}
	if name := os.Getenv("USER"); name != "" {
		return "cli:" + name
	}
	return fmt.Sprintf("cli:uid-%d", os.Getuid())
}
