package main

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/slipwayhq/slipway/config"
)

func newTokenCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Make API tokens and the apiTokensFile lines that name them",
	}
	cmd.AddCommand(newTokenNewCommand(), newTokenHashCommand())
	return cmd
}

func newTokenNewCommand() *cobra.Command {
	var roles, repositories []string
	var tokenFile string
	cmd := &cobra.Command{
		Use:   "new NAME --role ROLE [--role ROLE] [--repository PATTERN] [--token-file FILE]",
		Short: "Print a new random API token and the apiTokensFile entry for NAME (which holds only its sha256)",
		Long: "Makes a random token (256 bits) and prints the entry to add under users: in the file apiTokensFile names. " +
			"The entry holds the token's sha256, never the token: give the token to NAME (or with --token-file, " +
			"write it to a new file readable only by you) and keep it nowhere else. Roles: viewer, operator, approver, admin.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			raw := make([]byte, 32)
			if _, err := rand.Read(raw); err != nil {
				return err
			}
			token := base64.RawURLEncoding.EncodeToString(raw)
			entry := tokenEntry(args[0], token, roles, repositories)
			// The entry is checked as the daemon will read it, so a typo fails here, not at start.
			if _, err := config.ParseAPIUsers("(the new entry)", []byte("users:\n"+entry)); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if tokenFile != "" {
				f, err := os.OpenFile(tokenFile, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
				if err != nil {
					return fmt.Errorf("--token-file: %w", err)
				}
				if _, err := fmt.Fprintln(f, token); err != nil {
					f.Close()
					return fmt.Errorf("--token-file: %w", err)
				}
				if err := f.Close(); err != nil {
					return fmt.Errorf("--token-file: %w", err)
				}
				fmt.Fprintf(out, "# token written to %s\n", tokenFile)
			} else {
				fmt.Fprintf(out, "# token for %s (shown once; give it to them, store it nowhere else):\n# %s\n", args[0], token)
			}
			fmt.Fprintf(out, "# add under users: in apiTokensFile, then restart slipway serve:\n%s", entry)
			return nil
		},
	}
	cmd.Flags().StringSliceVar(&roles, "role", nil, "role(s): viewer, operator, approver, admin")
	cmd.Flags().StringSliceVar(&repositories, "repository", nil, "restrict to these repositories (shell patterns, such as team-*)")
	cmd.Flags().StringVar(&tokenFile, "token-file", "", "write the token to this new file (mode 0600) instead of printing it")
	_ = cmd.MarkFlagRequired("role")
	return cmd
}

// tokenEntry is one users: item of apiTokensFile.
func tokenEntry(name, token string, roles, repositories []string) string {
	sum := sha256.Sum256([]byte(token))
	var b strings.Builder
	fmt.Fprintf(&b, "  - name: %s\n    tokenSHA256: %s\n    roles: [%s]\n", yamlString(name), hex.EncodeToString(sum[:]), yamlList(roles))
	if len(repositories) > 0 {
		fmt.Fprintf(&b, "    repositories: [%s]\n", yamlList(repositories))
	}
	return b.String()
}

func yamlList(items []string) string {
	quoted := make([]string, len(items))
	for i, s := range items {
		quoted[i] = yamlString(s)
	}
	return strings.Join(quoted, ", ")
}

// yamlString quotes s when YAML could read it as something else (team-*, a leading *).
func yamlString(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.')
	}) < 0 {
		return s
	}
	return fmt.Sprintf("%q", s)
}

func newTokenHashCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "hash < TOKEN_FILE",
		Short: "Print the sha256 of the token on standard input, for tokenSHA256 in apiTokensFile",
		Long: "Reads one token from standard input (a trailing newline is not part of it, as in every token file) " +
			"and prints its sha256 in hex: the tokenSHA256 of an identity in apiTokensFile.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			line, err := bufio.NewReader(io.LimitReader(cmd.InOrStdin(), 64<<10)).ReadString('\n')
			if err != nil && !errors.Is(err, io.EOF) {
				return err
			}
			token := strings.TrimSpace(line)
			if token == "" {
				return errors.New("no token on standard input")
			}
			sum := sha256.Sum256([]byte(token))
			fmt.Fprintln(cmd.OutOrStdout(), hex.EncodeToString(sum[:]))
			return nil
		},
	}
}
