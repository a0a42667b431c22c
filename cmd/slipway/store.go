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
		Short: "Maintain the store: re-encrypt revisions after a key rotation",
	}
	cmd.AddCommand(newStoreReencryptCommand())
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
