package apply

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/fluxcd/pkg/ssa"
	"github.com/fluxcd/pkg/ssa/utils"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/slipwayhq/slipway/reconciler/kube"
	"github.com/slipwayhq/slipway/render"
)

// Stages of an apply, in order: what other objects need to exist first (CRDs, Namespaces,
// ClusterRoles), then *Class kinds other objects name, then ServiceAccounts, then the rest
// of what pods need (podInputs), then everything else. ServiceAccounts come before Secrets:
// the token controller deletes a service-account-token Secret whose ServiceAccount it
// cannot find.
const (
	stageDefinitions = iota
	stageClasses
	stageServiceAccounts
	stagePodInputs
	stageResources
	stageCount
)

// ServiceAccounts and podInputs are the core kinds a pod's admission or start reads: a
// workload applied beside its ServiceAccount may win the race, and its ReplicaSet's pod is
// then refused ("error looking up service account") and retried after a backoff that
// reached 87 s at 1000 applications; a missing ConfigMap, Secret or claim holds the pod
// back at the kubelet or the scheduler, and a LimitRange or ResourceQuota created after the
// pods never applied to them. Helm and Flux order these before workloads too.
var podInputs = map[string]bool{
	"ConfigMap": true, "Secret": true, "PersistentVolumeClaim": true, "LimitRange": true, "ResourceQuota": true,
}

func stageOf(o *unstructured.Unstructured) int {
	switch {
	case utils.IsClusterDefinition(o):
		return stageDefinitions
	case utils.IsClassDefinition(o):
		return stageClasses
	case o.GetAPIVersion() == "v1" && o.GetKind() == "ServiceAccount":
		return stageServiceAccounts
	case o.GetAPIVersion() == "v1" && podInputs[o.GetKind()]:
		return stagePodInputs
	}
	return stageResources
}

// crdWait bounds the wait for new CRDs to be served, as ssa's default does.
const (
	crdWait         = time.Minute
	crdPollInterval = 500 * time.Millisecond
)

// Apply applies the plan's changed objects with server-side apply (field manager slipway,
// taking ownership of conflicting fields), stage by stage (stageOf), each stage concurrently, and
// waits for new CRDs to be established before the objects that may use them. Objects
// kubectl applied before (which DryRun admitted: adopted) are taken over: its last-applied
// annotation and field managers are removed. Unchanged objects cost nothing. The result has every object's action and
// the inventory, with digests and live fingerprints for the next deploy. An object the API
// server refuses stops the apply with its *ObjectError.
func (a *Applier) Apply(ctx context.Context, p *Plan) (*Result, error) {
	if !p.dryRun {
		return nil, errors.New("apply: the plan has not passed a server-side dry-run")
	}
	var stages [stageCount][]*planItem
	for _, it := range p.items {
		if !it.unchanged {
			s := stageOf(it.obj)
			stages[s] = append(stages[s], it)
		}
	}
	actions := make(map[*planItem]ssa.Action, len(p.items))
	for s, items := range stages {
		if len(items) == 0 {
			continue
		}
		got := make([]ssa.Action, len(items))
		err := ForEach(ctx, len(items), concurrency, func(ctx context.Context, i int) error {
			release, err := a.Slots.Acquire(ctx)
			if err != nil {
				return err
			}
			defer release()
			got[i], err = a.applyOne(ctx, items[i])
			return err
		})
		if err != nil {
			return nil, applyFailed(err)
		}
		for i, it := range items {
			actions[it] = got[i]
		}
		if s == stageDefinitions {
			if err := a.waitEstablished(ctx, items); err != nil {
				return nil, applyFailed(err)
			}
		}
	}
	res := &Result{Seen: make(Seen, len(p.items))}
	for _, it := range p.items {
		res.Seen[it.entry().Key()] = it.generation
		action := ssa.UnchangedAction
		if !it.unchanged {
			action = actions[it]
		} else {
			res.Skipped++
		}
		res.Changes = append(res.Changes, Change{Object: render.ObjectName(it.obj), Action: string(action), Adopted: it.adopted})
		res.Inventory = append(res.Inventory, it.entry())
	}
	sortInventory(res.Inventory)
	return res, nil
}

// applyFailed returns an object's error as it is (it names the operation) and says
// "apply" before any other, such as the context's.
func applyFailed(err error) error {
	var oe *ObjectError
	if errors.As(err, &oe) {
		return err
	}
	return fmt.Errorf("apply: %w", err)
}

// applyOne applies one object and records its live fingerprint. Its action comes from
// comparing resourceVersions with the dry-run's: none then means created, the same one
// after the apply means the apply changed nothing.
func (a *Applier) applyOne(ctx context.Context, it *planItem) (ssa.Action, error) {
	obj, err := a.serverSideApply(ctx, it)
	if err != nil {
		return "", err
	}
	if tookOver, err := a.takeOver(ctx, obj); err != nil {
		return "", it.fail(OpTakeOver, err)
	} else if tookOver {
		// Apply again, as ssa does after its clean-up: fields kubectl set and the set no
		// longer has are now ours alone, and this apply removes them.
		if obj, err = a.serverSideApply(ctx, it); err != nil {
			return "", err
		}
	}
	if it.fingerprint, err = fingerprintOf(metaOf(obj)); err != nil {
		return "", it.fail(OpApply, err)
	}
	it.generation = obj.GetGeneration()
	switch rv := obj.GetResourceVersion(); {
	case it.dryRunVersion == "":
		return ssa.CreatedAction, nil
	case rv == it.dryRunVersion:
		return ssa.UnchangedAction, nil
	}
	return ssa.ConfiguredAction, nil
}

func (a *Applier) serverSideApply(ctx context.Context, it *planItem) (*unstructured.Unstructured, error) {
	obj := it.obj.DeepCopy()
	if err := a.Cluster.Client.Patch(ctx, obj, client.Apply, client.ForceOwnership, client.FieldOwner(kube.FieldManager)); err != nil {
		return nil, it.fail(OpApply, err)
	}
	return obj, nil
}

// takeOver removes kubectl's last-applied annotation and hands its field managers' fields
// to ours, when the applied object still shows them; obj is updated in place.
func (a *Applier) takeOver(ctx context.Context, obj *unstructured.Unstructured) (bool, error) {
	patches := ssa.PatchRemoveAnnotations(obj, []string{corev1.LastAppliedConfigAnnotation})
	managers, err := ssa.PatchReplaceFieldsManagers(obj, kubectlManagers, kube.FieldManager)
	if err != nil {
		return false, err
	}
	patches = append(patches, managers...)
	if len(patches) == 0 {
		return false, nil
	}
	raw, err := json.Marshal(patches)
	if err != nil {
		return false, err
	}
	return true, a.Cluster.Client.Patch(ctx, obj, client.RawPatch(types.JSONPatchType, raw), client.FieldOwner(kube.FieldManager))
}

// waitEstablished waits until the CRDs among items are served, so the stages after can
// create their custom resources; it gives up when ctx ends or after crdWait.
func (a *Applier) waitEstablished(ctx context.Context, items []*planItem) error {
	for _, it := range items {
		if !utils.IsCRD(it.obj) {
			continue
		}
		key := client.ObjectKeyFromObject(it.obj)
		err := wait.PollUntilContextTimeout(ctx, crdPollInterval, crdWait, true, func(ctx context.Context) (bool, error) {
			crd := &unstructured.Unstructured{}
			crd.SetGroupVersionKind(it.obj.GroupVersionKind())
			if err := a.Cluster.Client.Get(ctx, key, crd); err != nil {
				return false, err
			}
			conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
			for _, c := range conds {
				m, _ := c.(map[string]any)
				if m["type"] == "Established" && strings.EqualFold(fmt.Sprint(m["status"]), "True") {
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			return it.fail(OpEstablished, err)
		}
	}
	return nil
}
