package apply

import (
	"github.com/slipwayhq/slipway/store"

	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/slipwayhq/slipway/reconciler/kube"
)

// digestOf is "sha256:<hex>" of the object as it will be applied (owner labels included).
// encoding/json writes map keys sorted, so equal objects give equal digests.
func digestOf(u *unstructured.Unstructured) (string, error) {
	b, err := json.Marshal(u.Object)
	if err != nil {
		return "", fmt.Errorf("digest %s: %w", u.GetName(), err)
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// liveMeta is what the fingerprint reads of a live object: the apply response and a
// metadata-only LIST both carry it.
type liveMeta struct {
	UID             types.UID
	Generation      int64
	ResourceVersion string
	ManagedFields   []metav1.ManagedFieldsEntry
}

func metaOf(o metav1.Object) liveMeta {
	return liveMeta{UID: o.GetUID(), Generation: o.GetGeneration(), ResourceVersion: o.GetResourceVersion(), ManagedFields: o.GetManagedFields()}
}

// fingerprintOf identifies the state of a live object that matters to a re-apply; it
// changes whenever an apply of the same desired object could change something:
//   - the UID: the object was deleted and made again;
//   - the generation, for kinds that count spec changes in it (Deployments, CRDs...); the
//     resourceVersion for kinds that do not (ConfigMaps, Services). The resourceVersion
//     alone would do for all kinds, but controllers bump it with every status write, so a
//     Deployment would never look untouched;
//   - Slipway's own managed-fields entry (apply of the main resource): its field set
//     shrinks when another manager takes over or removes a field Slipway set, and its time
//     moves when Slipway changed a value (an apply that was not recorded, say a run that
//     failed half-way).
//
// "" means Slipway owns nothing there, and the object is never skipped.
func fingerprintOf(m liveMeta) (string, error) {
	if m.UID == "" {
		return "", nil
	}
	for _, mf := range m.ManagedFields {
		if mf.Manager != kube.FieldManager || mf.Operation != metav1.ManagedFieldsOperationApply || mf.Subresource != "" {
			continue
		}
		// The digest, not the set: the shared caches keep only it (kube.FieldsDigest).
		fields, err := kube.FieldsDigest(mf.FieldsV1)
		if err != nil {
			return "", err
		}
		version := "rv:" + m.ResourceVersion
		if m.Generation > 0 {
			version = "gen:" + strconv.FormatInt(m.Generation, 10)
		}
		var at string
		if mf.Time != nil {
			at = mf.Time.UTC().Format(time.RFC3339)
		}
		h := sha256.New()
		for _, part := range []string{version, mf.APIVersion, at} {
			h.Write([]byte(part))
			h.Write([]byte{0})
		}
		h.Write([]byte(fields))
		return string(m.UID) + "/sha256:" + hex.EncodeToString(h.Sum(nil)), nil
	}
	return "", nil
}

// unchangedSince decides whether an object can be skipped: the previous revision applied
// exactly this rendering (same digest), and the live object still has the fingerprint
// that apply left. Unknown digests or fingerprints ("") never match.
func unchangedSince(prev store.InventoryEntry, digest, live string) bool {
	return prev.Digest != "" && prev.Digest == digest && prev.Fingerprint != "" && prev.Fingerprint == live
}
