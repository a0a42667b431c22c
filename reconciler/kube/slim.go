package kube

import (
	"crypto/sha256"
	"encoding/hex"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// statusSpecFields are the spec fields kstatus reads to compute a status (replica counts,
// rollout strategy, a Job's completions, a Service's type and cluster IP). The rest of a
// spec (a workload's pod template, a CRD's schemas) is never read from the caches.
var statusSpecFields = [...]string{
	"replicas", "updateStrategy", "progressDeadlineSeconds", "paused",
	"parallelism", "completions", "type", "clusterIP",
}

// lastApplied is kubectl's copy of the whole object in an annotation.
const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"

// slimObject cuts a watched object down to what the caches' readers use, in place: the
// metadata (of managedFields only Slipway's own apply entry), the status, and the spec fields kstatus reads.
// Everything else (a ConfigMap's or Secret's data, a pod template, RBAC rules) goes: the
// drift watch only needs to know that an object changed (it compares by a dry-run against
// the API server), and health waits only need its status. kubectl's last-applied copy of
// the object is replaced by its digest, so a change of it still shows as a change of the
// annotations. It is the shared informers' transform: a thousand applications' objects
// cost their metadata and status, not their full bodies (and no secret value is cached).
func slimObject(u *unstructured.Unstructured) {
	for k := range u.Object {
		switch k {
		case "apiVersion", "kind", "metadata", "status":
		case "spec":
			spec, ok := u.Object["spec"].(map[string]any)
			if !ok {
				delete(u.Object, k)
				continue
			}
			kept := make(map[string]any, len(statusSpecFields))
			for _, f := range statusSpecFields {
				if v, ok := spec[f]; ok {
					kept[f] = v
				}
			}
			u.Object["spec"] = kept
		default:
			delete(u.Object, k)
		}
	}
	// Only Slipway's own apply entry is read from the caches (a deploy's plan fingerprints
	// it); the other managers' entries are often most of an object.
	u.SetManagedFields(ownApply(u.GetManagedFields()))
	if a := u.GetAnnotations(); a[lastApplied] != "" {
		sum := sha256.Sum256([]byte(a[lastApplied]))
		a[lastApplied] = "sha256:" + hex.EncodeToString(sum[:])
		u.SetAnnotations(a)
	}
}
