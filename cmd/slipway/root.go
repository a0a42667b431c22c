package main

import (
	"fmt"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
)

// globalOptions are the flags every verb shares.
type globalOptions struct {
	logLevel  string
	logFormat string
}

func newRootCommand() *cobra.Command {
	opts := &globalOptions{}
	root := &cobra.Command{
		Use:           "slipway",
		Short:         "GitOps reconciler: commit a pipeline file, get a built, deployed, healthy, drift-free service",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			logger, err := newLogger(opts)
			if err != nil {
				return err
			}
			cmd.SetContext(withLogger(cmd.Context(), logger))
			return nil
		},
	}
	root.PersistentFlags().StringVar(&opts.logLevel, "log-level", "info", "log level: trace, debug, info, warn, error")
	root.PersistentFlags().StringVar(&opts.logFormat, "log-format", "text", "log format: json or text")
	root.AddCommand(newVersionCommand())
	root.AddCommand(newRunCommand(), newServeCommand(), newRollbackCommand(), newHistoryCommand(), newLogsCommand())
	root.AddCommand(newValidateCommand())
	root.AddCommand(newDriftCommand())
	root.AddCommand(newStoreCommand())
	root.AddCommand(newGetCommand(), newTriggerCommand(), newRerunCommand(), newPromoteCommand(), newSuspendCommand(true), newSuspendCommand(false), newCancelCommand(), newAnswerCommand(true), newAnswerCommand(false))
	root.AddCommand(newAuditCommand(), newTokenCommand())
	return root
}

func newLogger(opts *globalOptions) (*logrus.Logger, error) {
	level, err := logrus.ParseLevel(opts.logLevel)
	if err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	logger := logrus.New()
	logger.SetLevel(level)
	switch opts.logFormat {
	case "json":
		logger.SetFormatter(&logrus.JSONFormatter{})
	case "text":
		logger.SetFormatter(&logrus.TextFormatter{FullTimestamp: true})
	default:
		return nil, fmt.Errorf("--log-format: %q is not json or text", opts.logFormat)
	}
	return logger, nil
}
