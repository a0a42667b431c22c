package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/slipwayhq/slipway/store"
)

func newStoreCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "store",
		Short: "Maintain the store: back it up and restore it, re-encrypt revisions after a key rotation, copy it to another database",
	}
	cmd.AddCommand(newStoreBackupCommand(), newStoreRestoreCommand(), newStoreReencryptCommand(), newStoreMigrateCommand())
	return cmd
}

// reencrypter is the part of a store the verb needs.
type reencrypter interface {
	Reencrypt(ctx context.Context) (store.ReencryptResult, error)
}

func newStoreReencryptCommand() *cobra.Command {
	var cfgPath string
	cmd := &cobra.Command{
		Use:   "reencrypt --config slipway.yaml",
		Short: "Encrypt every stored revision with the first key of storeKeyFiles, so the others can be removed",
		Long: "Rewrites every stored revision payload not yet encrypted with the first key of storeKeyFiles " +
			"(plaintext ones included) with that key. Safe to run while the daemon runs, once the daemon " +
			"was restarted with the new key first; afterwards the other keys can be removed from " +
			"storeKeyFiles. See docs/store.md, \"Key rotation\".",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			_, st, err := openConfigAndStore(ctx, cfgPath)
			if err != nil {
				return err
			}
			defer st.Close()
			r, ok := st.(reencrypter)
			if !ok {
				return errors.New("this store cannot re-encrypt its revisions")
			}
			res, err := r.Reencrypt(ctx)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "re-encrypted %d revisions; every revision is encrypted with key %s (the first of storeKeyFiles): the other keys can be removed\n",
				res.Rewritten, res.KeyID)
			return nil
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "slipway.yaml", "daemon configuration")
	return cmd
}

func newStoreMigrateCommand() *cobra.Command {
	var from, to, fromPassword, toPassword string
	cmd := &cobra.Command{
		Use:   "migrate --from DSN --to DSN",
		Short: "Copy an installation's store into another, empty one (SQLite to PostgreSQL, or back)",
		Long: "Copies every table of the store at --from into the empty store at --to (created and " +
			"migrated if new): runs, logs, revisions (encrypted ones as they are: keep the same " +
			"storeKeyFiles), drift events, the audit log and the BUILD_ID counters, which continue. " +
			"It reads one snapshot of the source and writes the destination in one transaction, so " +
			"the destination holds the whole copy or nothing. Stop the daemon first: what it writes " +
			"after the snapshot is not copied. Passwords come from --from-password-file and " +
			"--to-password-file, PGPASSWORD or ~/.pgpass, never the command line. See docs/store.md.",
		Example: "  slipway store migrate --from sqlite:///var/lib/slipway/slipway.db \\\n" +
			"    --to postgres://slipway@db.internal:5432/slipway --to-password-file /etc/slipway/db.password",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			src, err := openForCopy(ctx, "--from", from, fromPassword)
			if err != nil {
				return err
			}
			defer src.Close()
			dst, err := openForCopy(ctx, "--to", to, toPassword)
			if err != nil {
				return err
			}
			defer dst.Close()
			res, err := store.Copy(ctx, src, dst)
			if err != nil {
				return err
			}
			total := printCopied(cmd, res)
			fmt.Fprintf(cmd.OutOrStdout(), "copied %d rows; set store: in slipway.yaml to the new DSN and start the daemon\n", total)
			return nil
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "DSN of the store to copy (sqlite:///PATH or postgres://USER@HOST/DB)")
	cmd.Flags().StringVar(&to, "to", "", "DSN of the empty store to copy into")
	cmd.Flags().StringVar(&fromPassword, "from-password-file", "", "file holding the --from PostgreSQL password")
	cmd.Flags().StringVar(&toPassword, "to-password-file", "", "file holding the --to PostgreSQL password")
	_ = cmd.MarkFlagRequired("from")
	_ = cmd.MarkFlagRequired("to")
	return cmd
}

// openForCopy opens one side of `store migrate`; the DSN is named by its flag only, as it
// may hold a password.
func openForCopy(ctx context.Context, flag, dsn, passwordFile string) (*store.DB, error) {
	var opts []store.Option
	if passwordFile != "" {
		pw, err := store.ReadPasswordFile(passwordFile)
		if err != nil {
			return nil, fmt.Errorf("%s-password-file: %w", flag, err)
		}
		opts = append(opts, store.WithPassword(pw))
	}
	s, err := store.OpenDB(ctx, dsn, opts...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	return s, nil
}

// printCopied prints the rows per table and returns their sum.
func printCopied(cmd *cobra.Command, res store.CopyResult) int64 {
	var total int64
	for _, t := range res.Tables {
		fmt.Fprintf(cmd.OutOrStdout(), "%-20s %8d rows\n", t.Name, t.Rows)
		total += t.Rows
	}
	return total
}

// openConfigDB opens the store slipway.yaml names, with its keys and password, as the
// daemon does, as the store itself (Backup and Restore need more than store.Store).
func openConfigDB(ctx context.Context, cfgPath string) (*store.DB, error) {
	_, st, err := openConfigAndStore(ctx, cfgPath)
	if err != nil {
		return nil, err
	}
	db, ok := st.(*store.DB)
	if !ok {
		st.Close()
		return nil, errors.New("this store cannot be backed up or restored")
	}
	return db, nil
}

// fileVerb is `store backup` or `store restore`: the store slipway.yaml names, one file.
type fileVerb struct {
	use, short, long string
	flag, flagUsage  string
	run              func(ctx context.Context, db *store.DB, file string) (store.CopyResult, error)
	done             string // printed after the counts, with the rows and the file
}

func newStoreFileCommand(v fileVerb) *cobra.Command {
	var cfgPath, file string
	cmd := &cobra.Command{
		Use:   v.use,
		Short: v.short,
		Long:  v.long,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			db, err := openConfigDB(ctx, cfgPath)
			if err != nil {
				return err
			}
			defer db.Close()
			res, err := v.run(ctx, db, file)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), v.done+"\n", printCopied(cmd, res), file)
			return nil
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "slipway.yaml", "daemon configuration")
	cmd.Flags().StringVar(&file, v.flag, "", v.flagUsage)
	_ = cmd.MarkFlagRequired(v.flag)
	return cmd
}

func newStoreBackupCommand() *cobra.Command {
	return newStoreFileCommand(fileVerb{
		use:   "backup --config slipway.yaml --to FILE",
		short: "Write a consistent snapshot of the store into a new file, while the daemon runs",
		long: "Copies one snapshot of the store slipway.yaml names (SQLite or PostgreSQL) into a new " +
			"SQLite file, readable by its owner only, without stopping the daemon. Revisions stay " +
			"encrypted: keep the store's keys (storeKeyFiles) apart from the backups. Restore it with " +
			"`slipway store restore`. See docs/store.md, \"Backups\".",
		flag: "to", flagUsage: "the new backup file",
		run:  store.Backup,
		done: "backed up %d rows into %s",
	})
}

func newStoreRestoreCommand() *cobra.Command {
	return newStoreFileCommand(fileVerb{
		use:   "restore --config slipway.yaml --from FILE",
		short: "Fill the empty store slipway.yaml names from a backup",
		long: "Copies a file `slipway store backup` wrote into the store slipway.yaml names (SQLite or " +
			"PostgreSQL), which must be empty: a new file or database. Run it before the daemon's " +
			"first start on the new store; afterwards the daemon carries on from the backup: BUILD_IDs " +
			"continue, drift watches resume. The backup file is not changed.",
		flag: "from", flagUsage: "the backup file",
		run: func(ctx context.Context, db *store.DB, file string) (store.CopyResult, error) {
			return store.Restore(ctx, file, db)
		},
		done: "restored %d rows from %s; start the daemon",
	})
}
