package kube

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
	// it), and of its field set only the digest: the other managers' entries and the set
	// itself, as nested maps, were most of a cached Deployment (6.7 of 11 KB).
	slimManagedFields(u)
	if a := u.GetAnnotations(); a[lastApplied] != "" {
		sum := sha256.Sum256([]byte(a[lastApplied]))
		a[lastApplied] = "sha256:" + hex.EncodeToString(sum[:])
		u.SetAnnotations(a)
	}
}

// fieldsDigestKey names, in a cached object's managed-fields entry, the digest that stands
// for its field set. A real set's keys start with "f:", "k:", "v:", "i:" or are ".", and
// its values are all objects, so a set holding this key with a string value is always one.
const fieldsDigestKey = "slipway.dev/sha256"

// slimManagedFields keeps, of the object's managedFields, Slipway's own apply entry of the
// main resource with its field set replaced by FieldsDigest's digest of it; it drops every
// other entry. It works on the decoded maps, copying nothing.
func slimManagedFields(u *unstructured.Unstructured) {
	md, ok := u.Object["metadata"].(map[string]any)
	if !ok {
		return
	}
	entries, _ := md["managedFields"].([]any)
	delete(md, "managedFields")
	for _, e := range entries {
		m, ok := e.(map[string]any)
		if !ok || m["manager"] != FieldManager || m["operation"] != string(metav1.ManagedFieldsOperationApply) {
			continue
		}
		if sub, _ := m["subresource"].(string); sub != "" {
			continue
		}
		// The informers may hand the transform an object it slimmed already: a digest stays.
		if set, ok := m["fieldsV1"]; ok && !isFieldsDigest(set) {
			b, err := json.Marshal(set) // map keys sorted: FieldsDigest's canonical form
			if err != nil {
				delete(m, "fieldsV1") // cannot happen for decoded JSON; fingerprints nothing then
			} else {
				sum := sha256.Sum256(b)
				m["fieldsV1"] = map[string]any{fieldsDigestKey: hex.EncodeToString(sum[:])}
			}
		}
		md["managedFields"] = []any{m}
		return
	}
}

// FieldsDigest is the hex SHA-256 of a managed-fields set in canonical form (JSON with
// sorted keys), the same whether the set came from the API server or from the informer
// caches, which keep only this digest in its place. "" for no set.
func FieldsDigest(f *metav1.FieldsV1) (string, error) {
	if f == nil || len(f.Raw) == 0 {
		return "", nil
	}
	var v any
	if err := json.Unmarshal(f.Raw, &v); err != nil {
		return "", fmt.Errorf("read managed fields: %w", err)
	}
	if isFieldsDigest(v) {
		return v.(map[string]any)[fieldsDigestKey].(string), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("read managed fields: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// isFieldsDigest tells a decoded field set that is the caches' digest of one.
func isFieldsDigest(set any) bool {
	m, ok := set.(map[string]any)
	if !ok || len(m) != 1 {
		return false
	}
	_, ok = m[fieldsDigestKey].(string)
	return ok
}
