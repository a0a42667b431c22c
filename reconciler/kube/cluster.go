// Package kube connects Slipway to the clusters named in slipway.yaml: one cached client,
// REST mapper and server-side-apply resource manager per cluster.
package kube

import (
	"context"
	"errors"
	"fmt"
	"github.com/go-logr/logr"
	"net/http"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sync"

	"github.com/fluxcd/cli-utils/pkg/kstatus/polling"
	"github.com/fluxcd/cli-utils/pkg/kstatus/polling/engine"
	"github.com/fluxcd/pkg/ssa"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
)

// FieldManager is the server-side-apply field manager and owner-label group of everything
// Slipway applies; prune and drift never touch objects or fields of other managers.
const (
	FieldManager = "slipway"
	OwnerGroup   = "slipway.dev"
)

// Spec says how to reach one cluster.
type Spec struct {
	Name       string
	Kubeconfig string // path; empty with InCluster
	Context    string // kubeconfig context; empty = current
	InCluster  bool
	// QPS and Burst bound the client-side rate limit. client-go's defaults (5/10) would cap
	// applies at about 5 objects per second, so they are raised deliberately: by default
	// to 1000/2000, a backstop only, since a deploy keeps at most 16 requests in flight
	// and the API server's priority and fairness queues the rest.
	QPS   float32
	Burst int
	// WrapTransport, when set, wraps the HTTP transport: the benchmark counts requests with it.
	WrapTransport func(http.RoundTripper) http.RoundTripper
}

// Cluster is a connected cluster.
type Cluster struct {
	Name      string
	Config    *rest.Config
	Client    client.Client
	Clientset kubernetes.Interface
	// Dynamic shares the connection with the other clients (stability waits watch through it).
	Dynamic dynamic.Interface
	Mapper  meta.RESTMapper
	Manager *ssa.ResourceManager
	// Informers are the cluster's shared informers (drift watches, health waits).
	Informers *Informers
}

// Clusters hands out connected clusters by name, connecting each once.
type Clusters struct {
	specs map[string]Spec
	mu    sync.Mutex
	conns map[string]*Cluster
}

// NewClusters prepares connections to the given clusters; nothing is dialled yet.
func NewClusters(specs []Spec) *Clusters {
	m := make(map[string]Spec, len(specs))
	for _, s := range specs {
		m[s.Name] = s
	}
	return &Clusters{specs: m, conns: map[string]*Cluster{}}
}

// Get returns the named cluster, connecting on first use.
func (c *Clusters) Get(ctx context.Context, name string) (*Cluster, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl, ok := c.conns[name]; ok {
		return cl, nil
	}
	spec, ok := c.specs[name]
	if !ok {
		return nil, fmt.Errorf("cluster %q is not configured in slipway.yaml", name)
	}
	cl, err := Connect(ctx, spec)
	if err != nil {
		return nil, err
	}
	c.conns[name] = cl
	return cl, nil
}

// Connect builds the clients of one cluster.
func Connect(_ context.Context, spec Spec) (*Cluster, error) {
	cfg, err := restConfig(spec)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", spec.Name, err)
	}
	if spec.WrapTransport != nil {
		cfg.Wrap(spec.WrapTransport)
	}
	cfg.QPS, cfg.Burst = spec.QPS, spec.Burst
	if cfg.QPS == 0 {
		cfg.QPS, cfg.Burst = 1000, 2000
	}
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: http client: %w", spec.Name, err)
	}
	dynMapper, err := apiutil.NewDynamicRESTMapper(cfg, httpClient)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: REST mapper: %w", spec.Name, err)
	}
	mapper := newMappingCache(dynMapper)
	c, err := client.New(cfg, client.Options{HTTPClient: httpClient, Mapper: mapper})
	if err != nil {
		return nil, fmt.Errorf("cluster %s: client: %w", spec.Name, err)
	}
	cs, err := kubernetes.NewForConfigAndClient(cfg, httpClient)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: clientset: %w", spec.Name, err)
	}
	dyn, err := dynamic.NewForConfigAndClient(cfg, httpClient)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: dynamic client: %w", spec.Name, err)
	}
	informers := newInformers(dyn)
	// Health waits read the shared informers, not a list of every kind of the set in its
	// namespace at every poll: with many runs waiting at once those lists were most of the
	// API server's work.
	poller := polling.NewStatusPoller(c, mapper, polling.Options{
		CustomStatusReaders:  []engine.StatusReader{objectStatus{mapper: mapper}},
		ClusterReaderFactory: cachedReaderFactory(informers),
	})
	rm := ssa.NewResourceManager(c, poller, ssa.Owner{Field: FieldManager, Group: OwnerGroup})
	rm.SetConcurrency(16)
	return &Cluster{Name: spec.Name, Config: cfg, Client: c, Clientset: cs, Dynamic: dyn, Mapper: mapper, Manager: rm, Informers: informers}, nil
}

// RESTConfig is how to reach the cluster spec names, with no client-side rate limit changes
// and nothing dialled.
func RESTConfig(spec Spec) (*rest.Config, error) {
	cfg, err := restConfig(spec)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", spec.Name, err)
	}
	return cfg, nil
}

func restConfig(spec Spec) (*rest.Config, error) {
	if spec.InCluster {
		return rest.InClusterConfig()
	}
	if spec.Kubeconfig == "" {
		return nil, errors.New("neither kubeconfig nor inCluster is set")
	}
	rules := &clientcmd.ClientConfigLoadingRules{ExplicitPath: spec.Kubeconfig}
	overrides := &clientcmd.ConfigOverrides{CurrentContext: spec.Context}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", spec.Kubeconfig, err)
	}
	return cfg, nil
}

// Namespaced tells whether a kind is namespaced, as the cluster's API discovery says.
func (c *Cluster) Namespaced(gvk schema.GroupVersionKind) (bool, error) {
	m, err := c.Mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		if meta.IsNoMatchError(err) {
			return false, fmt.Errorf("the cluster %s does not serve %s (is its CRD installed, or is the apiVersion retired?)", c.Name, gvk.GroupVersion().WithKind(gvk.Kind))
		}
		return false, fmt.Errorf("look up %s on %s: %w", gvk, c.Name, err)
	}
	return m.Scope.Name() == meta.RESTScopeNameNamespace, nil
}

// SilenceControllerRuntimeLog gives controller-runtime's process-wide logger a sink. Slipway
// logs through logrus; without a sink controller-runtime prints a stack trace 30 seconds
// after its client is first used. Call it once, from main (or a test binary's TestMain).
func SilenceControllerRuntimeLog() { ctrllog.SetLogger(logr.Discard()) }
