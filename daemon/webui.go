package daemon

import (
	"fmt"
	"path/filepath"

	"github.com/sirupsen/logrus"

	"github.com/slipwayhq/slipway/config"
	"github.com/slipwayhq/slipway/server/webui"
	"github.com/slipwayhq/slipway/store"
)

// webUI makes the web console over the daemon's store and change feed. Its answers to
// approval gates go through the trigger hub, as the API's do. The session key is
// uiSessionKeyFile's, or kept in the data folder (webui.KeyFileName), made on first start.
func webUI(d *Parts, users []config.APIUser, answers webui.Answers, done <-chan struct{}, log *logrus.Entry) (*webui.UI, error) {
	key, err := uiSessionKey(d.Config)
	if err != nil {
		return nil, err
	}
	return webui.New(webui.Options{Users: users, Reads: d.Store, Answers: answers, Changes: d.Changes, SignOuts: d.Store, Key: key, Done: done, Log: log})
}

// uiSessionKey reads uiSessionKeyFile (32 bytes, raw or base64, like a store key), or
// loads or makes the data folder's key when it is not set.
func uiSessionKey(cfg *config.Config) ([]byte, error) {
	if cfg.UISessionKeyFile == "" {
		return webui.LoadOrCreateKey(filepath.Join(cfg.DataDir, webui.KeyFileName))
	}
	key, err := store.ReadKeyFile(cfg.UISessionKeyFile)
	if err != nil {
		return nil, fmt.Errorf("uiSessionKeyFile: %w", err)
	}
	return key, nil
}
