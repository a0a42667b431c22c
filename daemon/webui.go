package daemon

import (
	"path/filepath"

	"github.com/sirupsen/logrus"

	"github.com/slipwayhq/slipway/config"
	"github.com/slipwayhq/slipway/server/webui"
)

// webUI makes the web console over the daemon's store and change feed. Its answers to
// approval gates go through the trigger hub, as the API's do. The session key is kept in
// the data folder (webui.KeyFileName), made on first start.
func webUI(d *Parts, users []config.APIUser, answers webui.Answers, done <-chan struct{}, log *logrus.Entry) (*webui.UI, error) {
	key, err := webui.LoadOrCreateKey(filepath.Join(d.Config.DataDir, webui.KeyFileName))
	if err != nil {
		return nil, err
	}
	return webui.New(webui.Options{Users: users, Reads: d.Store, Answers: answers, Changes: d.Changes, SignOuts: d.Store, Key: key, Done: done, Log: log})
}
