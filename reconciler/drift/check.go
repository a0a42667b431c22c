package drift

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/fluxcd/pkg/ssa"
	"github.com/fluxcd/pkg/ssa/jsondiff"
	"github.com/fluxcd/pkg/ssa/normalize"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/slipwayhq/slipway/internal/mask"
	"github.com/slipwayhq/slipway/reconciler/apply"
	"github.com/slipwayhq/slipway/reconciler/kube"
)

// Finding is the drift of one object: what differs and who changed it.
type Finding struct {
	Object *Object
	// Gone: the object no longer exists.
	Gone bool
	// Patch is the RFC 6902 patch that turns the live object into what Slipway would apply
	// (Secrets masked, and the revision's masks in any object); "" when gone.
	Patch string
	// Manager is the field manager that changed the object last (other than Slipway), and
	// ChangedAt when, from managedFields; "" and zero when unknown: Kubernetes records no
	// manager for a deletion, and no time for a write through the scale subresource.
	Manager   string
	ChangedAt time.Time
}

// Check compares one object with the cluster by a server-side dry-run apply as Slipway's
// field manager: fields Slipway never set are kept by the dry-run, so only what Slipway
// applied can show as drift. Owner metadata is not compared: it says who applied the
// object, and an object an older Slipway labelled is not drifted for lacking the new
// labels (its next deploy re-stamps them). It returns nil when the object matches.
func Check(ctx context.Context, cl *kube.Cluster, o *Object) (*Finding, error) {
	desired, err := o.Desired()
	if err != nil {
		return nil, err
	}
	// Scheme defaults (a Service port's protocol, ...) so native kinds show no phantom drift.
	if err := normalize.Unstructured(desired); err != nil {
		return nil, fmt.Errorf("normalize %s: %w", o, err)
	}
	ignore := append(apply.OwnerPaths(), o.Ignore...)
	d, err := jsondiff.Unstructured(ctx, cl.Client, desired, jsondiff.FieldOwner(kube.FieldManager),
		jsondiff.IgnorePaths(ignore), jsondiff.MaskSecrets(true))
	// The run's secret values can be in any object (a ConfigMap, an env var), not only in
	// Secrets, which is all MaskSecrets covers.
	m := o.masker()
	if err != nil {
		return nil, fmt.Errorf("dry-run diff of %s on %s: %w", o, cl.Name, maskErr(m, err))
	}
	switch d.Type {
	case jsondiff.DiffTypeCreate:
		return &Finding{Object: o, Gone: true}, nil
	case jsondiff.DiffTypeUpdate:
		kept := d.Patch[:0]
		for _, op := range d.Patch {
			if !emptyMetadataAdd(op.Type, op.Path, op.Value) {
				kept = append(kept, op)
			}
		}
		if d.Patch = kept; len(d.Patch) == 0 {
			return nil, nil
		}
		patch, err := json.Marshal(d.Patch)
		if err != nil {
			return nil, fmt.Errorf("encode the patch of %s: %w", o, err)
		}
		f := &Finding{Object: o, Patch: m.String(string(patch))}
		if d.ClusterObject != nil {
			paths := make([]string, 0, len(d.Patch))
			for _, op := range d.Patch {
				paths = append(paths, op.Path)
			}
			f.Manager, f.ChangedAt = lastChange(d.ClusterObject.GetManagedFields(), paths)
		}
		return f, nil
	default:
		return nil, nil
	}
}

// masker masks the secret values of the run that stored the object's revision.
func (o *Object) masker() *mask.Masker {
	if o.Revision == nil {
		return nil
	}
	return mask.New(o.Revision.Masks...)
}

// emptyMetadataAdd tells a patch operation that adds an empty labels or annotations map.
// Such an operation is what ignoring the owner metadata leaves of it on an object that has
// no such map (an object an older Slipway labelled has no annotations): the ignored keys
// are removed from both sides, their emptied map is not. An empty map is no drift.
func emptyMetadataAdd(op, path string, value any) bool {
	if op != "add" || (path != "/metadata/labels" && path != "/metadata/annotations") {
		return false
	}
	m, ok := value.(map[string]any)
	return ok && len(m) == 0
}

// lastChange names who made the drift: the most recent managedFields entry, other than
// Slipway's, that owns one of the drifted paths (JSON pointers); failing that, the most
// recent entry of another manager at all. Kubernetes records no manager for a deletion.
func lastChange(entries []metav1.ManagedFieldsEntry, paths []string) (string, time.Time) {
	var who, other string
	var when, otherWhen time.Time
	for _, e := range entries {
		// Status writes by controllers are not changes of what anyone applied.
		if e.Manager == kube.FieldManager || e.Subresource == "status" {
			continue
		}
		// The API server records no time for some writes (the scale subresource): zero.
		var at time.Time
		if e.Time != nil {
			at = e.Time.Time
		}
		if other == "" || at.After(otherWhen) {
			other, otherWhen = e.Manager, at
		}
		if ownsAny(e.FieldsV1, paths) && (who == "" || at.After(when)) {
			who, when = e.Manager, at
		}
	}
	if who == "" {
		return other, otherWhen
	}
	return who, when
}

// ownsAny tells whether a managedFields field set contains one of the JSON pointers, or a
// field above a list index on the way to it (list items are keyed in a way a pointer
// cannot name).
func ownsAny(fields *metav1.FieldsV1, paths []string) bool {
	if fields == nil {
		return false
	}
	var set map[string]any
	if err := json.Unmarshal(fields.Raw, &set); err != nil {
		return false
	}
	for _, p := range paths {
		cur, steps := set, 0
		for _, seg := range strings.Split(strings.TrimPrefix(p, "/"), "/") {
			seg = strings.NewReplacer("~1", "/", "~0", "~").Replace(seg)
			if _, err := strconv.Atoi(seg); err == nil && steps > 0 {
				return true
			}
			next, ok := cur["f:"+seg].(map[string]any)
			if !ok {
				cur = nil
				break
			}
			cur, steps = next, steps+1
		}
		if cur != nil {
			return true
		}
	}
	return false
}

// Correct re-applies the object as the revision has it (server-side apply, Slipway's field
// manager, forcing ownership of Slipway's fields only), recreating it if it was deleted.
// Ignored paths are left to whoever manages them.
func Correct(ctx context.Context, cl *kube.Cluster, o *Object) error {
	opts := ssa.DefaultApplyOptions()
	opts.DriftIgnoreRules = o.ignoreRules()
	desired, err := o.Desired()
	if err != nil {
		return err
	}
	if _, err := cl.Manager.Apply(ctx, desired, opts); err != nil {
		return fmt.Errorf("re-apply %s on %s: %w", o, cl.Name, err)
	}
	return nil
}
