package leakscan

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

const value = "correct-horse-battery-staple"

func scanner(t *testing.T) *Scanner {
	t.Helper()
	s, err := New(map[string]string{"horse": value})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestFindsEveryForm(t *testing.T) {
	s := scanner(t)
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Repeat("filler text for the compressor ", 40) + value + strings.Repeat(" more filler", 40)
	compressed := append([]byte("junk before"), enc.EncodeAll([]byte(text), nil)...)
	compressed = append(compressed, "junk after"...)
	cases := map[string][]byte{
		"raw":       []byte("x " + value + " y"),
		"hex":       []byte(hex.EncodeToString([]byte(value))),
		"zstd":      compressed,
		"base64url": []byte(base64.URLEncoding.EncodeToString([]byte("??>" + value))),
	}
	for prefix := 0; prefix < 3; prefix++ { // every alignment inside a longer base64 text
		cases["base64+"+strings.Repeat("p", prefix)] = []byte(base64.StdEncoding.EncodeToString([]byte(strings.Repeat("p", prefix) + value + "tail")))
	}
	for name, data := range cases {
		if got := s.Bytes(name, data); len(got) == 0 {
			t.Errorf("%s: %q not found in %q", name, value, data)
		}
	}
	if got := s.Text("clean", "correct horse battery "+base64.StdEncoding.EncodeToString([]byte("another value entirely"))); len(got) != 0 {
		t.Errorf("false finding: %v", got)
	}
	if _, err := New(map[string]string{"short": "abc"}); err == nil {
		t.Error("a 3-byte secret was accepted")
	}
}

func TestDirNamesTheFile(t *testing.T) {
	s := scanner(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "clean"), []byte("nothing here"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	leak := filepath.Join(dir, "sub", "leak")
	if err := os.WriteFile(leak, []byte("token: "+value), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := s.Dir(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Where != leak || got[0].Secret != "horse" || got[0].Form != "raw" {
		t.Errorf("findings %v, want one raw finding in %s", got, leak)
	}
	if strings.Contains(got[0].String(), value) {
		t.Errorf("a finding repeats the value: %s", got[0])
	}
}
