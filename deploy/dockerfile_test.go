// Package deploy holds how Slipway itself is run; its test keeps the root Dockerfile honest.
package deploy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// TestDockerfile parses the root Dockerfile with BuildKit's own parser, so a syntax error or
// a drift from the promises in the README (multi-stage, static, non-root) fails here.
func TestDockerfile(t *testing.T) {
	f, err := os.Open(filepath.Join("..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		t.Fatalf("parse Dockerfile: %v", err)
	}
	stages, _, err := instructions.Parse(res.AST, nil)
	if err != nil {
		t.Fatalf("Dockerfile instructions: %v", err)
	}
	if len(stages) < 2 {
		t.Fatalf("want a multi-stage build, got %d stage(s)", len(stages))
	}
	build, final := stages[0], stages[len(stages)-1]

	var buildCmds []string
	for _, c := range build.Commands {
		if run, ok := c.(*instructions.RunCommand); ok {
			buildCmds = append(buildCmds, strings.Join(run.CmdLine, " "))
		}
	}
	if !strings.Contains(strings.Join(buildCmds, "\n"), "CGO_ENABLED=0 go build") {
		t.Errorf("the build stage must compile a static binary with CGO_ENABLED=0; RUN lines: %q", buildCmds)
	}

	var user string
	var copiedFromBuild, entrypoint bool
	for _, c := range final.Commands {
		switch c := c.(type) {
		case *instructions.UserCommand:
			user = c.User
		case *instructions.CopyCommand:
			copiedFromBuild = copiedFromBuild || c.From == build.Name
		case *instructions.EntrypointCommand:
			entrypoint = len(c.CmdLine) > 0 && strings.HasSuffix(c.CmdLine[0], "/slipway")
		}
	}
	if user == "" || user == "root" || user == "0" || strings.HasPrefix(user, "0:") {
		t.Errorf("the final stage must run as a non-root user, got USER %q", user)
	}
	if !copiedFromBuild {
		t.Errorf("the final stage must copy the binary from the %q stage", build.Name)
	}
	if !entrypoint {
		t.Error("the final stage's ENTRYPOINT must be the slipway binary")
	}
}
