package config

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

const haBase = "dataDir: /d\nstore: postgres://slipway@db/slipway\nclusters: [{name: home, kubeconfig: /k}]\n"

// haKeys are the shared key files ha needs.
const haKeys = "storeKeyFiles: [/secrets/store.key]\nuiSessionKeyFile: /secrets/ui.key\n"

func TestHADefaultsAndFields(t *testing.T) {
	c, err := Parse("slipway.yaml", []byte(haBase+"ha: {cluster: home, namespace: slipway}\n"+haKeys))
	if err != nil {
		t.Fatal(err)
	}
	want := HA{Cluster: "home", Namespace: "slipway", LeaseDuration: Duration{13 * time.Second},
		RenewDeadline: Duration{10 * time.Second}, RetryPeriod: Duration{2 * time.Second}}
	if c.HA == nil || *c.HA != want {
		t.Fatalf("ha defaults = %+v, want %+v", c.HA, want)
	}
	c, err = Parse("slipway.yaml", []byte(haBase+"ha: {cluster: home, namespace: slipway, leaseDuration: 6s, renewDeadline: 4s, retryPeriod: 500ms, identity: replica-a}\n"+haKeys))
	if err != nil {
		t.Fatal(err)
	}
	want = HA{Cluster: "home", Namespace: "slipway", LeaseDuration: Duration{6 * time.Second},
		RenewDeadline: Duration{4 * time.Second}, RetryPeriod: Duration{500 * time.Millisecond}, Identity: "replica-a"}
	if *c.HA != want {
		t.Fatalf("ha = %+v, want %+v", *c.HA, want)
	}
	if got := c.HA.ReplicaIdentity(); got != "replica-a" {
		t.Errorf("identity = %q", got)
	}
	c, err = Parse("slipway.yaml", []byte(haBase))
	if err != nil || c.HA != nil {
		t.Fatalf("no ha block: %+v %v", c.HA, err)
	}
}

func TestHAIdentityDefault(t *testing.T) {
	h := &HA{}
	t.Setenv("POD_NAME", "slipway-7d9f-abcde")
	if got := h.ReplicaIdentity(); got != "slipway-7d9f-abcde" {
		t.Errorf("identity from POD_NAME = %q", got)
	}
	t.Setenv("POD_NAME", "")
	host, _ := os.Hostname()
	if got, want := h.ReplicaIdentity(), fmt.Sprintf("%s-%d", host, os.Getpid()); got != want {
		t.Errorf("identity without POD_NAME = %q, want %q", got, want)
	}
}

func TestHARefused(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"sqlite store", "dataDir: /d\nclusters: [{name: home, kubeconfig: /k}]\nha: {cluster: home, namespace: slipway}\n",
			`3:5: ha needs a postgres:// store shared by the replicas (store is "sqlite://DATADIR/slipway.db")`},
		{"explicit sqlite", "dataDir: /d\nstore: sqlite:///d/s.db\nclusters: [{name: home, kubeconfig: /k}]\nha: {cluster: home, namespace: slipway}\n",
			`4:5: ha needs a postgres:// store`},
		{"unknown cluster", haBase + "ha: {cluster: away, namespace: slipway}\n", `4:15: ha.cluster "away" is not in clusters`},
		{"no namespace", haBase + "ha: {cluster: home}\n", `4:5: missing required field "namespace"`},
		{"bad namespace", haBase + "ha: {cluster: home, namespace: Bad_NS}\n", `4:32: ha.namespace "Bad_NS" is not a namespace name`},
		{"bad identity", haBase + "ha: {cluster: home, namespace: s, identity: A B}\n", `4:45: ha.identity "A B" must be a DNS-1123 label`},
		{"retry too short", haBase + "ha: {cluster: home, namespace: s, retryPeriod: 10ms}\n", `4:48: ha.retryPeriod 10ms must be at least 100ms`},
		{"renew under retry", haBase + "ha: {cluster: home, namespace: s, renewDeadline: 2s}\n", `4:50: ha.renewDeadline 2s must be more than ha.retryPeriod 2s`},
		{"lease under renew", haBase + "ha: {cluster: home, namespace: s, leaseDuration: 10s}\n", `4:50: ha.leaseDuration 10s must be more than ha.renewDeadline 10s`},
		{"lease within a round", haBase + "ha: {cluster: home, namespace: s, leaseDuration: 12s}\n", `4:50: ha.leaseDuration 12s must be more than ha.renewDeadline + ha.retryPeriod (12s)`},
		{"lease fraction", haBase + "ha: {cluster: home, namespace: s, leaseDuration: 15500ms}\n", `4:50: ha.leaseDuration 15.5s must be whole seconds`},
		{"own store keys", haBase + "ha: {cluster: home, namespace: s}\nuiSessionKeyFile: /k\n", `4:5: ha needs storeKeyFiles`},
		{"own session key", haBase + "ha: {cluster: home, namespace: s}\nstoreKeyFiles: [/k]\n", `4:5: ha needs uiSessionKeyFile`},
		{"unknown field", haBase + "ha: {cluster: home, namespace: s, leader: true}\n", `4:35: unknown field "leader"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("slipway.yaml", []byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), "slipway.yaml:"+tc.want) {
				t.Errorf("error = %v\nwant it to contain slipway.yaml:%s", err, tc.want)
			}
		})
	}
}
