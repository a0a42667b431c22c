package kube

import (
	"encoding/json"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// The shared caches keep Slipway's own apply entry (a deploy's plan fingerprints it), with
// its field set replaced by the set's digest, and nothing else of managedFields.
func TestSlimManagedFieldsKeepsOnlySlipwaysApplyEntry(t *testing.T) {
	set := &metav1.FieldsV1{Raw: []byte(`{"f:spec":{"f:replicas":{},"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"app\"}":{".":{},"f:image":{}}}}}}}`)}
	ours := metav1.ManagedFieldsEntry{Manager: FieldManager, Operation: metav1.ManagedFieldsOperationApply, APIVersion: "v1", FieldsType: "FieldsV1", FieldsV1: set}
	entries := []metav1.ManagedFieldsEntry{
		{Manager: "kube-controller-manager", Operation: metav1.ManagedFieldsOperationUpdate, Subresource: "status"},
		{Manager: FieldManager, Operation: metav1.ManagedFieldsOperationApply, Subresource: "status"},
		{Manager: FieldManager, Operation: metav1.ManagedFieldsOperationUpdate},
		ours,
		{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationApply},
	}
	// Decoded as the informers decode a watch event: from JSON.
	decoded := func(entries []metav1.ManagedFieldsEntry) *unstructured.Unstructured {
		o := &unstructured.Unstructured{}
		o.SetAPIVersion("v1")
		o.SetKind("ConfigMap")
		o.SetName("c")
		o.SetManagedFields(entries)
		b, err := o.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(b); err != nil {
			t.Fatal(err)
		}
		return u
	}
	u := decoded(entries)
	slimManagedFields(u)
	slimManagedFields(u) // the informers may transform an object twice
	got := u.GetManagedFields()
	if len(got) != 1 || got[0].Manager != ours.Manager || got[0].Operation != ours.Operation || got[0].Subresource != "" || got[0].APIVersion != "v1" {
		t.Fatalf("cached managedFields = %+v, want only Slipway's apply of the main resource", got)
	}
	want, err := FieldsDigest(set)
	if err != nil || len(want) != 64 {
		t.Fatalf("FieldsDigest of the set = %q, %v", want, err)
	}
	if d, err := FieldsDigest(got[0].FieldsV1); err != nil || d != want {
		t.Errorf("digest of the cached entry %q (%v), of the API server's set %q", d, err, want)
	}
	if len(got[0].FieldsV1.Raw) >= len(set.Raw) {
		t.Errorf("the cached entry keeps the set: %s", got[0].FieldsV1.Raw)
	}
	// The same set in another key order (a LIST's raw bytes against a decoded apply
	// response) has the same digest; another set has another.
	var v any
	_ = json.Unmarshal(set.Raw, &v)
	reordered, _ := json.MarshalIndent(v, "", "  ")
	if d, _ := FieldsDigest(&metav1.FieldsV1{Raw: reordered}); d != want {
		t.Errorf("digest of the set re-encoded %q, want %q", d, want)
	}
	if d, _ := FieldsDigest(&metav1.FieldsV1{Raw: []byte(`{"f:spec":{"f:replicas":{}}}`)}); d == want || d == "" {
		t.Errorf("digest of a smaller set %q", d)
	}
	if d, err := FieldsDigest(nil); d != "" || err != nil {
		t.Errorf("FieldsDigest(nil) = %q, %v", d, err)
	}

	u = decoded(entries[:3])
	slimManagedFields(u)
	if got := u.GetManagedFields(); got != nil {
		t.Fatalf("cached managedFields without Slipway's apply entry = %+v, want none", got)
	}
}
