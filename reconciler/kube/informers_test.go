package kube

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The shared caches keep Slipway's own apply entry (a deploy's plan fingerprints it) and
// nothing else of managedFields.
func TestOwnApplyKeepsOnlySlipwaysApplyEntry(t *testing.T) {
	ours := metav1.ManagedFieldsEntry{Manager: FieldManager, Operation: metav1.ManagedFieldsOperationApply, APIVersion: "v1"}
	entries := []metav1.ManagedFieldsEntry{
		{Manager: "kube-controller-manager", Operation: metav1.ManagedFieldsOperationUpdate, Subresource: "status"},
		{Manager: FieldManager, Operation: metav1.ManagedFieldsOperationApply, Subresource: "status"},
		{Manager: FieldManager, Operation: metav1.ManagedFieldsOperationUpdate},
		ours,
		{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationApply},
	}
	got := ownApply(entries)
	if len(got) != 1 || got[0].Manager != ours.Manager || got[0].Operation != ours.Operation || got[0].Subresource != "" {
		t.Fatalf("ownApply = %+v, want only Slipway's apply of the main resource", got)
	}
	if got := ownApply(entries[:3]); got != nil {
		t.Fatalf("ownApply without Slipway's apply entry = %+v, want none", got)
	}
}
