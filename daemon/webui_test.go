package daemon

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipwayhq/slipway/config"
	"github.com/slipwayhq/slipway/server/webui"
)

// TestUISessionKey: without uiSessionKeyFile the key is made once in the data folder; with
// it, every daemon reading that file (replicas) signs with the same key; a bad file is
// refused naming the setting.
func TestUISessionKey(t *testing.T) {
	dir := t.TempDir()
	made, err := uiSessionKey(&config.Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	again, err := uiSessionKey(&config.Config{DataDir: dir})
	if err != nil || !bytes.Equal(made, again) {
		t.Fatalf("the data folder's key changed between starts: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, webui.KeyFileName)); err != nil {
		t.Fatal(err)
	}
	shared := filepath.Join(t.TempDir(), "ui.key")
	if err := os.WriteFile(shared, bytes.Repeat([]byte{7}, webui.KeySize), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, data := range []string{t.TempDir(), t.TempDir()} {
		key, err := uiSessionKey(&config.Config{DataDir: data, UISessionKeyFile: shared})
		if err != nil || !bytes.Equal(key, bytes.Repeat([]byte{7}, webui.KeySize)) {
			t.Fatalf("replica with data folder %s: %v", data, err)
		}
	}
	if err := os.WriteFile(shared, []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := uiSessionKey(&config.Config{DataDir: dir, UISessionKeyFile: shared}); err == nil || !strings.Contains(err.Error(), "uiSessionKeyFile") {
		t.Fatalf("a short key file: %v", err)
	}
}
