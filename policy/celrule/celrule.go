// Package celrule compiles and evaluates the CEL expressions of policy rules: the language
// Kubernetes admission policies use, over one variable, object (a rendered object as a map).
// Configuration loading compiles each rule once; evaluation only runs the compiled program.
package celrule

import (
	"errors"
	"fmt"
	"strings"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/ext"
	"github.com/google/cel-go/interpreter"
)

// ErrCompile says an expression is not a valid rule.
var ErrCompile = errors.New("CEL expression does not compile")

// Compiler compiles rule expressions. One is made per configuration load; it is safe for
// concurrent use.
type Compiler struct{ env *cel.Env }

// NewCompiler declares the rule language: the standard CEL library, the string extensions
// Kubernetes also offers (split, lowerAscii, ...), and the variable object.
func NewCompiler() (*Compiler, error) {
	env, err := cel.NewEnv(
		cel.Variable("object", cel.MapType(cel.StringType, cel.DynType)),
		ext.Strings(),
	)
	if err != nil {
		return nil, fmt.Errorf("CEL environment: %w", err)
	}
	return &Compiler{env: env}, nil
}

// Program is a compiled rule expression.
type Program struct {
	prg  cel.Program
	expr string
}

// Compile checks expr and prepares it for evaluation. It must evaluate to a bool.
func (c *Compiler) Compile(expr string) (*Program, error) {
	ast, iss := c.env.Compile(expr)
	if iss.Err() != nil {
		// One line per problem, placed in the expression; CEL's own text adds caret lines
		// that a FILE:LINE:COL report cannot hold.
		var msgs []string
		for _, e := range iss.Errors() {
			msgs = append(msgs, fmt.Sprintf("column %d: %s", e.Location.Column()+1, e.Message))
		}
		return nil, fmt.Errorf("%w: %s", ErrCompile, strings.Join(msgs, "; "))
	}
	if t := ast.OutputType(); !t.IsExactType(types.BoolType) && !t.IsExactType(types.DynType) {
		return nil, fmt.Errorf("%w: it evaluates to %s, and a rule must evaluate to true (allowed) or false (denied)", ErrCompile, t)
	}
	// No runtime cost limit: CEL always terminates (no loops beyond the input's own lists),
	// rules are the operator's, and cost tracking tripled evaluation time (BenchmarkEvaluate).
	prg, err := c.env.Program(ast, cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCompile, err)
	}
	return &Program{prg: prg, expr: expr}, nil
}

// String is the expression as written.
func (p *Program) String() string { return p.expr }

// Eval runs the rule on object. An error (a missing field read without has(), a result that
// is not a bool) is returned as such; callers treat it as a denial.
func (p *Program) Eval(object map[string]any) (bool, error) {
	out, _, err := p.prg.Eval(activation{object: object})
	if err != nil {
		return false, err
	}
	b, ok := out.Value().(bool)
	if !ok {
		return false, fmt.Errorf("the rule evaluated to %v (%s), not true or false", out.Value(), out.Type().TypeName())
	}
	return b, nil
}

// activation resolves the one variable without building a map per evaluation.
type activation struct{ object map[string]any }

func (a activation) ResolveName(name string) (any, bool) {
	if name == "object" {
		return a.object, true
	}
	return nil, false
}

func (activation) Parent() interpreter.Activation { return nil }
