package kube

import (
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// RequestMetrics counts the API requests Slipway makes, by cluster and verb, on the
// caller's registry.
type RequestMetrics struct {
	requests *prometheus.CounterVec
}

// NewRequestMetrics creates slipway_kube_requests_total and registers it on reg.
func NewRequestMetrics(reg prometheus.Registerer) (*RequestMetrics, error) {
	m := &RequestMetrics{requests: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "slipway_kube_requests_total",
		Help: "Kubernetes API requests made, by cluster and verb (get, list, watch, create, update, patch, delete, ...).",
	}, []string{"cluster", "verb"})}
	if err := reg.Register(m.requests); err != nil {
		return nil, err
	}
	return m, nil
}

// Wrap returns a transport wrapper (for Spec.WrapTransport) that counts the requests to
// the named cluster.
func (m *RequestMetrics) Wrap(cluster string) func(http.RoundTripper) http.RoundTripper {
	return func(rt http.RoundTripper) http.RoundTripper {
		return countingTransport{next: rt, metrics: m, cluster: cluster}
	}
}

type countingTransport struct {
	next    http.RoundTripper
	metrics *RequestMetrics
	cluster string
}

func (t countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.metrics.requests.WithLabelValues(t.cluster, requestVerb(req)).Inc()
	return t.next.RoundTrip(req)
}

// requestVerb names a request as the API server's audit log would: a GET is a get, a list
// (of a collection) or a watch.
func requestVerb(req *http.Request) string {
	switch req.Method {
	case http.MethodGet:
		if req.URL.Query().Get("watch") == "true" || req.URL.Query().Get("watch") == "1" {
			return "watch"
		}
		if isCollection(req.URL.Path) {
			return "list"
		}
		return "get"
	case http.MethodPost:
		return "create"
	case http.MethodPut:
		return "update"
	}
	return strings.ToLower(req.Method)
}

// isCollection tells /api/v1/namespaces/x/configmaps (a list) from .../configmaps/name:
// core paths have an odd number of segments for a collection, group paths an even one.
// Discovery (/api, /apis, /apis/group) counts as a get.
func isCollection(path string) bool {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case len(segs) >= 3 && segs[0] == "api":
		return len(segs)%2 == 1
	case len(segs) >= 4 && segs[0] == "apis":
		return len(segs)%2 == 0
	}
	return false
}

// WrapTransports makes every cluster connected from now on count its requests with wrap
// (called with the cluster's name), after any wrapper its Spec already has.
func (c *Clusters) WrapTransports(wrap func(cluster string) func(http.RoundTripper) http.RoundTripper) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, s := range c.specs {
		inner, outer := s.WrapTransport, wrap(name)
		if inner == nil {
			s.WrapTransport = outer
		} else {
			s.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { return outer(inner(rt)) }
		}
		c.specs[name] = s
	}
}
