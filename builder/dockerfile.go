package builder

import (
	"bytes"
	"fmt"
	"os"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// dockerfile is a parsed Dockerfile: its stages up to the target, the ARGs before the
// first FROM, and the escape character for variable expansion.
type dockerfile struct {
	name     string // as the pipeline names it, for messages
	stages   []instructions.Stage
	metaArgs []instructions.ArgCommand
	escape   rune
}

// parseDockerfile reads path with BuildKit's own parser and instruction package, so the
// native builder understands exactly the syntax BuildKit does, and keeps the stages up to
// target ("" means the last).
func parseDockerfile(path, name, target string) (*dockerfile, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	res, err := parser.Parse(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	stages, metaArgs, err := instructions.Parse(res.AST, linter.New(&linter.Config{}))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(stages) == 0 {
		return nil, fmt.Errorf("%s: no FROM", name)
	}
	last := len(stages) - 1
	if target != "" {
		i, ok := instructions.HasStage(stages, target)
		if !ok {
			var names []string
			for _, s := range stages {
				if s.Name != "" {
					names = append(names, s.Name)
				}
			}
			return nil, fmt.Errorf("%s: no stage named %q (stages: %s)", name, target, strings.Join(names, ", "))
		}
		last = i
	}
	return &dockerfile{name: name, stages: stages[:last+1], metaArgs: metaArgs, escape: res.EscapeToken}, nil
}

// line is where a command starts in the Dockerfile.
func line(c instructions.Command) int {
	if loc := c.Location(); len(loc) > 0 {
		return loc[0].Start.Line
	}
	return 0
}

// useBuildKit is the advice every refusal of the native builder ends with.
const useBuildKit = "use the BuildKit builder (builder: {type: buildkit, address: ...} in slipway.yaml)"

// checkNative refuses, before anything is fetched, what the native builder cannot do:
// it has no container runtime, so RUN is impossible, and it fetches nothing from the web.
func (d *dockerfile) checkNative() error {
	for _, s := range d.stages {
		for _, c := range s.Commands {
			var why string
			switch c := c.(type) {
			case *instructions.RunCommand:
				why = "RUN needs a container runtime, which the native builder does not have"
			case *instructions.AddCommand:
				for _, src := range c.SourcePaths {
					if isRemote(src) {
						why = fmt.Sprintf("ADD of a remote source (%s) is not supported by the native builder", src)
					}
				}
				if len(c.ExcludePatterns) > 0 {
					why = "ADD --exclude is not supported by the native builder"
				}
			case *instructions.CopyCommand:
				if c.Parents {
					why = "COPY --parents is not supported by the native builder"
				}
				if len(c.ExcludePatterns) > 0 {
					why = "COPY --exclude is not supported by the native builder"
				}
			}
			if why != "" {
				return fmt.Errorf("%s:%d: %s; %s", d.name, line(c), why, useBuildKit)
			}
		}
	}
	return nil
}

func isRemote(src string) bool {
	return strings.Contains(src, "://") || strings.HasPrefix(src, "git@")
}
