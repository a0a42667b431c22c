package daemon

import (
	"fmt"

	"github.com/slipwayhq/slipway/config"
)

// APIUsers reads the API's identities: apiTokensFile's, and apiTokenFile's token as the
// admin api-token. None: the API is off.
func APIUsers(cfg *config.Config) ([]config.APIUser, error) {
	var users []config.APIUser
	if cfg.APITokensFile != "" {
		file, err := config.LoadAPIUsers(cfg.APITokensFile)
		if err != nil {
			return nil, fmt.Errorf("apiTokensFile: %w", err)
		}
		users = file.Users
	}
	if cfg.APITokenFile != "" {
		token, err := config.ReadSecretFile(cfg.APITokenFile)
		if err != nil {
			return nil, fmt.Errorf("apiTokenFile: %w", err)
		}
		legacy := config.LegacyAPIUser(token)
		for _, u := range users {
			switch {
			case u.Name == legacy.Name:
				return nil, fmt.Errorf("apiTokensFile %s: the name %s is taken by apiTokenFile's token; rename the user or drop apiTokenFile", cfg.APITokensFile, u.Name)
			case u.TokenHash == legacy.TokenHash:
				return nil, fmt.Errorf("apiTokensFile %s: %s has the token of apiTokenFile; every identity needs its own token", cfg.APITokensFile, u.Name)
			}
		}
		users = append(users, legacy)
	}
	return users, nil
}
