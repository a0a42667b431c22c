package reconciler

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/slipwayhq/slipway/store"
)

func TestParseOutputs(t *testing.T) {
	got, err := parseOutputs([]byte("VERSION=1.2.3\n\nURL=http://x/?a=b\r\n"), []string{"VERSION", "URL"})
	if err != nil || got["VERSION"] != "1.2.3" || got["URL"] != "http://x/?a=b" || len(got) != 2 {
		t.Fatalf("outputs %v, %v", got, err)
	}
	var oe *OutputError
	if _, err := parseOutputs([]byte("VERSION=1\nSECRET=x\n"), []string{"VERSION"}); !errors.As(err, &oe) ||
		!strings.Contains(err.Error(), `line 2 sets "SECRET", which the task does not declare in outputs (it declares VERSION)`) {
		t.Errorf("undeclared key: %v", err)
	}
	if _, err := parseOutputs([]byte("just text\n"), []string{"VERSION"}); err == nil || !strings.Contains(err.Error(), "line 1 is not KEY=VALUE") {
		t.Errorf("a line without =: %v", err)
	}
	if _, err := parseOutputs([]byte(strings.Repeat("x", maxScriptOutput+1)), nil); err == nil {
		t.Error("an output file over the limit was accepted")
	}
}

// A secret split across writes, and its base64 form, are masked in the task log.
func TestScriptOutputMasksAcrossWrites(t *testing.T) {
	const secret = "hunter2-very-secret"
	rc := &runContext{preview: true, log: logrus.NewEntry(logrus.New())}
	rc.addMasks([]string{secret})
	tl := rc.taskLog("t")
	o := newScriptOutput(rc, tl)
	out, errw := o.writer(store.StreamStdout), o.writer(store.StreamStderr)
	for _, chunk := range []string{"token: hunter2-", "very-sec", "ret done\nb64: ", base64.StdEncoding.EncodeToString([]byte(secret))[:7]} {
		_, _ = out.Write([]byte(chunk))
	}
	_, _ = errw.Write([]byte("err " + secret[:5]))
	_, _ = errw.Write([]byte(secret[5:] + "\n"))
	_, _ = out.Write([]byte(base64.StdEncoding.EncodeToString([]byte(secret))[7:] + "\n"))
	tl.mu.Lock()
	lines := tl.pending
	tl.mu.Unlock()
	want := []store.LogLine{
		{Stream: store.StreamStdout, Text: "token: *** done"},
		{Stream: store.StreamStderr, Text: "err ***"},
		{Stream: store.StreamStdout, Text: "b64: ***"},
	}
	if len(lines) != len(want) {
		t.Fatalf("lines %+v", lines)
	}
	for i, w := range want {
		if lines[i].Stream != w.Stream || lines[i].Text != w.Text {
			t.Errorf("line %d = %s %q, want %s %q", i, lines[i].Stream, lines[i].Text, w.Stream, w.Text)
		}
	}
	_, _ = out.Write([]byte("no end " + secret))
	o.close()
	if tail := o.tail(); strings.Contains(tail, secret) || !strings.HasSuffix(tail, "no end ***") {
		t.Errorf("tail %q", tail)
	}
}
