package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/slipwayhq/slipway/internal/repofs"
	"github.com/slipwayhq/slipway/pipeline"
	"github.com/slipwayhq/slipway/reconciler/apply"
	"github.com/slipwayhq/slipway/render"
)

// rawClient is the minimal client the floor and the Flux-like no-op use: plain HTTP
// requests, no client-side rate limit, no discovery (the three kinds' paths are known).
type rawClient struct {
	host    string
	http    *http.Client
	counter *requestCounter
}

func newRawClient(kubeconfig string) (*rawClient, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig %s: %w", kubeconfig, err)
	}
	cfg.QPS = -1 // no client-side rate limit: the floor is what the server allows
	counter := newRequestCounter()
	cfg.Wrap(counter.wrap)
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("http client: %w", err)
	}
	return &rawClient{host: cfg.Host, http: hc, counter: counter}, nil
}

// objectPath is the object's URL path, for the kinds the generated set holds.
func objectPath(u *unstructured.Unstructured) (string, error) {
	ns, name := u.GetNamespace(), u.GetName()
	switch u.GetKind() {
	case "ConfigMap":
		return "/api/v1/namespaces/" + ns + "/configmaps/" + name, nil
	case "ServiceAccount":
		return "/api/v1/namespaces/" + ns + "/serviceaccounts/" + name, nil
	case "Service":
		return "/api/v1/namespaces/" + ns + "/services/" + name, nil
	case "Deployment":
		return "/apis/apps/v1/namespaces/" + ns + "/deployments/" + name, nil
	}
	return "", fmt.Errorf("the raw client does not know kind %s", u.GetKind())
}

func (c *rawClient) do(ctx context.Context, method, path, query string, body []byte) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.host+path+query, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/apply-patch+yaml")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, msg)
	}
	return nil
}

// loadManifests renders every manifest below dir, as a deploy-yaml task with path "." would.
func loadManifests(dir string) ([]render.Manifest, error) {
	repo, err := repofs.Open(dir)
	if err != nil {
		return nil, err
	}
	defer repo.Close()
	return render.LoadManifests(repo, ".", pipeline.Limits{}.Text(), render.Map{})
}

// rawObjects loads the set and encodes each object as JSON (valid YAML for apply patches).
func rawObjects(dir string) (paths []string, bodies [][]byte, err error) {
	ms, err := loadManifests(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("load %s: %w", dir, err)
	}
	for _, m := range ms {
		p, err := objectPath(m.Object)
		if err != nil {
			return nil, nil, err
		}
		b, err := json.Marshal(m.Object.Object)
		if err != nil {
			return nil, nil, fmt.Errorf("encode %s: %w", m, err)
		}
		paths, bodies = append(paths, p), append(bodies, b)
	}
	return paths, bodies, nil
}

const defaultWorkers = 16

// floorWorkers is how many requests the floor keeps in flight for a parent's request of n:
// 16 unless the parent asked for more than zero.
func floorWorkers(n int) int {
	if n > 0 {
		return n
	}
	return defaultWorkers
}

// runFloor sends one server-side-apply PATCH per object, 16 at a time unless told: nothing
// can deploy the set with fewer requests.
func runFloor(ctx context.Context, in childInput) (childResult, error) {
	c, err := newRawClient(in.kubeconfig)
	if err != nil {
		return childResult{}, err
	}
	start := time.Now()
	paths, bodies, err := rawObjects(in.dir)
	if err != nil {
		return childResult{}, err
	}
	err = apply.ForEach(ctx, len(paths), floorWorkers(in.workers), func(ctx context.Context, i int) error {
		return c.do(ctx, http.MethodPatch, paths[i], "?fieldManager=bench-floor&force=true", bodies[i])
	})
	if err != nil {
		return childResult{}, fmt.Errorf("apply: %w", err)
	}
	return childResult{WallSeconds: time.Since(start).Seconds(), Requests: c.counter.snapshot()}, nil
}

// runGetDryRun is what Flux does on every reconcile, changed or not: a GET and a
// server-side dry-run apply per object, 16 at a time.
func runGetDryRun(ctx context.Context, in childInput) (childResult, error) {
	c, err := newRawClient(in.kubeconfig)
	if err != nil {
		return childResult{}, err
	}
	start := time.Now()
	paths, bodies, err := rawObjects(in.dir)
	if err != nil {
		return childResult{}, err
	}
	err = apply.ForEach(ctx, len(paths), defaultWorkers, func(ctx context.Context, i int) error {
		if err := c.do(ctx, http.MethodGet, paths[i], "", nil); err != nil {
			return err
		}
		return c.do(ctx, http.MethodPatch, paths[i], "?fieldManager=slipway&force=true&dryRun=All", bodies[i])
	})
	if err != nil {
		return childResult{}, fmt.Errorf("get and dry-run: %w", err)
	}
	return childResult{WallSeconds: time.Since(start).Seconds(), Requests: c.counter.snapshot()}, nil
}
