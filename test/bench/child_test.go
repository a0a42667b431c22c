package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// The parent passes a child its contender and inputs through the environment.
const (
	childEnv      = "SLIPWAY_BENCH_CONTENDER"
	kubeconfigEnv = "SLIPWAY_BENCH_KUBECONFIG"
	dirEnv        = "SLIPWAY_BENCH_DIR"
	namespacesEnv = "SLIPWAY_BENCH_NAMESPACES"
	storeEnv      = "SLIPWAY_BENCH_STORE"
	workersEnv    = "SLIPWAY_BENCH_WORKERS"
)

// childInput is what every contender gets.
type childInput struct {
	kubeconfig string
	dir        string
	namespaces []string
	store      string
	workers    int // the floor's requests in flight (0: 16); the other contenders ignore it
}

// childResult is what a child prints as the last line of its stdout.
type childResult struct {
	WallSeconds float64        `json:"wall_seconds"`
	Requests    map[string]int `json:"requests"`
	Actions     map[string]int `json:"actions,omitempty"`
	// Phases: seconds spent in each step of Slipway's deploy path.
	Phases map[string]float64 `json:"phases,omitempty"`
}

// contenders run in a child process; each measures only its own work, after connecting.
var contenders = map[string]func(ctx context.Context, in childInput) (childResult, error){
	"floor":       runFloor,
	"get-dry-run": runGetDryRun,
	"slipway":     runSlipway,
}

func runChild(name string) int {
	run, ok := contenders[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "bench child: unknown contender %q\n", name)
		return 2
	}
	in := childInput{
		kubeconfig: os.Getenv(kubeconfigEnv),
		dir:        os.Getenv(dirEnv),
		namespaces: strings.Split(os.Getenv(namespacesEnv), ","),
		store:      os.Getenv(storeEnv),
	}
	in.workers, _ = strconv.Atoi(os.Getenv(workersEnv))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	res, err := run(ctx, in)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench child %s: %v\n", name, err)
		return 1
	}
	out, err := json.Marshal(res)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench child %s: encode result: %v\n", name, err)
		return 1
	}
	fmt.Println(string(out))
	return 0
}
