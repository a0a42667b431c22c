package apply

import (
	"github.com/slipwayhq/slipway/store"

	"encoding/json"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// liveJSON is a ConfigMap as the API server returns it after Slipway applied it, with a
// controller's entry besides Slipway's.
const liveJSON = `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"settings","namespace":"game",
"uid":"0b7c-uid","resourceVersion":"4711","managedFields":[
{"manager":"slipway","operation":"Apply","apiVersion":"v1","time":"2026-01-02T03:04:05Z","fieldsType":"FieldsV1",
 "fieldsV1":{"f:metadata":{"f:labels":{"f:slipway.dev/name":{},"f:slipway.dev/namespace":{}}},"f:data":{"f:mode":{}}}},
{"manager":"kube-controller-manager","operation":"Update","apiVersion":"v1","time":"2026-01-02T03:04:06Z","fieldsType":"FieldsV1",
 "fieldsV1":{"f:metadata":{"f:annotations":{"f:seen":{}}}}}]},
"data":{"mode":"gitops"}}`

func liveObject(t *testing.T, mutate func(*unstructured.Unstructured)) liveMeta {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := json.Unmarshal([]byte(liveJSON), &u.Object); err != nil {
		t.Fatal(err)
	}
	if mutate != nil {
		mutate(u)
	}
	return metaOf(u)
}

func mustFingerprint(t *testing.T, m liveMeta) string {
	t.Helper()
	fp, err := fingerprintOf(m)
	if err != nil {
		t.Fatal(err)
	}
	return fp
}

// The apply response (decoded into a map, re-encoded with sorted keys) and a
// metadata-only LIST (raw bytes as the server wrote them, keys in its own order) must
// agree, or nothing would ever be skipped.
func TestFingerprintSameFromApplyResponseAndList(t *testing.T) {
	fromApply := mustFingerprint(t, liveObject(t, nil))
	if !strings.HasPrefix(fromApply, "0b7c-uid/sha256:") {
		t.Fatalf("fingerprint %q, want the UID and a sha256", fromApply)
	}
	var pom metav1.PartialObjectMetadata
	if err := json.Unmarshal([]byte(liveJSON), &pom); err != nil {
		t.Fatal(err)
	}
	// The server may order keys differently and add whitespace.
	pom.ManagedFields[0].FieldsV1.Raw = []byte(`{"f:data": {"f:mode": {}}, "f:metadata": {"f:labels": {"f:slipway.dev/namespace": {}, "f:slipway.dev/name": {}}}}`)
	if fromList := mustFingerprint(t, metaOf(&pom)); fromList != fromApply {
		t.Fatalf("LIST gives %s, the apply response %s", fromList, fromApply)
	}
}

func TestFingerprintChangesWhenAReapplyCouldChangeSomething(t *testing.T) {
	base := mustFingerprint(t, liveObject(t, nil))
	changes := map[string]func(*unstructured.Unstructured){
		"recreated (new UID)":                             func(u *unstructured.Unstructured) { u.SetUID("1c8d-uid") },
		"written (no generation: resourceVersion counts)": func(u *unstructured.Unstructured) { u.SetResourceVersion("4712") },
		"another manager took a field": func(u *unstructured.Unstructured) {
			mfs := u.GetManagedFields()
			mfs[0].FieldsV1 = &metav1.FieldsV1{Raw: []byte(`{"f:metadata":{"f:labels":{"f:slipway.dev/name":{},"f:slipway.dev/namespace":{}}}}`)}
			u.SetManagedFields(mfs)
		},
		"slipway changed a value later (entry time moved)": func(u *unstructured.Unstructured) {
			mfs := u.GetManagedFields()
			later := metav1.NewTime(mfs[0].Time.Add(90e9))
			mfs[0].Time = &later
			u.SetManagedFields(mfs)
		},
		"applied with another apiVersion": func(u *unstructured.Unstructured) {
			mfs := u.GetManagedFields()
			mfs[0].APIVersion = "v2"
			u.SetManagedFields(mfs)
		},
	}
	for name, mutate := range changes {
		if got := mustFingerprint(t, liveObject(t, mutate)); got == base {
			t.Errorf("%s: fingerprint unchanged", name)
		}
	}
}

// Kinds that count spec changes in metadata.generation get status writes from their
// controllers; those bump resourceVersion and must not make the object look touched.
func TestFingerprintIgnoresStatusWritesWhenGenerationCounts(t *testing.T) {
	withGen := func(gen int64, rv string) func(*unstructured.Unstructured) {
		return func(u *unstructured.Unstructured) { u.SetGeneration(gen); u.SetResourceVersion(rv) }
	}
	base := mustFingerprint(t, liveObject(t, withGen(3, "100")))
	statusWrite := liveObject(t, func(u *unstructured.Unstructured) {
		withGen(3, "105")(u)
		mfs := u.GetManagedFields()
		mfs[1].FieldsV1 = &metav1.FieldsV1{Raw: []byte(`{"f:status":{"f:observedGeneration":{}}}`)}
		mfs[1].Subresource = "status"
		u.SetManagedFields(mfs)
	})
	if got := mustFingerprint(t, statusWrite); got != base {
		t.Errorf("a controller's status write (resourceVersion 100 -> 105, generation 3) changed the fingerprint")
	}
	if got := mustFingerprint(t, liveObject(t, withGen(4, "106"))); got == base {
		t.Errorf("a spec change (generation 3 -> 4) left the fingerprint as it was")
	}
}

func TestFingerprintEmptyWhenSlipwayOwnsNothing(t *testing.T) {
	notOurs := liveObject(t, func(u *unstructured.Unstructured) {
		mfs := u.GetManagedFields()
		mfs[0].Manager = "kubectl"
		u.SetManagedFields(mfs)
	})
	if fp := mustFingerprint(t, notOurs); fp != "" {
		t.Errorf("fingerprint %q of an object Slipway never applied, want empty", fp)
	}
	updatedBySlipway := liveObject(t, func(u *unstructured.Unstructured) {
		mfs := u.GetManagedFields()
		mfs[0].Operation = metav1.ManagedFieldsOperationUpdate
		u.SetManagedFields(mfs)
	})
	if fp := mustFingerprint(t, updatedBySlipway); fp != "" {
		t.Errorf("fingerprint %q without a slipway Apply entry, want empty", fp)
	}
	if fp := mustFingerprint(t, liveObject(t, func(u *unstructured.Unstructured) { u.SetUID("") })); fp != "" {
		t.Errorf("fingerprint %q without a UID, want empty", fp)
	}
}

func TestDigestIsStableAndSeesEveryField(t *testing.T) {
	a := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "x", "labels": map[string]any{"a": "1", "b": "2"}}, "data": map[string]any{"k": "v"}}}
	b := &unstructured.Unstructured{Object: map[string]any{"data": map[string]any{"k": "v"}, "kind": "ConfigMap",
		"metadata": map[string]any{"labels": map[string]any{"b": "2", "a": "1"}, "name": "x"}, "apiVersion": "v1"}}
	da, err := digestOf(a)
	if err != nil {
		t.Fatal(err)
	}
	db, _ := digestOf(b)
	if da != db || !strings.HasPrefix(da, "sha256:") {
		t.Fatalf("equal objects digest to %s and %s", da, db)
	}
	b.Object["data"] = map[string]any{"k": "w"}
	if dc, _ := digestOf(b); dc == da {
		t.Fatal("a changed value kept the digest")
	}
	b.Object["data"] = map[string]any{"k": "v"}
	b.SetAPIVersion("v2")
	if dc, _ := digestOf(b); dc == da {
		t.Fatal("a changed apiVersion kept the digest")
	}
}

func TestUnchangedSince(t *testing.T) {
	prev := store.InventoryEntry{Version: "v1", Kind: "ConfigMap", Name: "x", Digest: "sha256:d", Fingerprint: "uid/sha256:f"}
	cases := []struct {
		name         string
		prev         store.InventoryEntry
		digest, live string
		want         bool
	}{
		{"same rendering, untouched", prev, "sha256:d", "uid/sha256:f", true},
		{"rendering changed", prev, "sha256:e", "uid/sha256:f", false},
		{"touched on the cluster", prev, "sha256:d", "uid/sha256:g", false},
		{"gone from the cluster (or not listed)", prev, "sha256:d", "", false},
		{"recorded before digests existed", store.InventoryEntry{Version: "v1", Kind: "ConfigMap", Name: "x"}, "", "", false},
		{"no fingerprint recorded", store.InventoryEntry{Version: "v1", Kind: "ConfigMap", Name: "x", Digest: "sha256:d"}, "sha256:d", "", false},
	}
	for _, c := range cases {
		if got := unchangedSince(c.prev, c.digest, c.live); got != c.want {
			t.Errorf("%s: unchangedSince = %v, want %v", c.name, got, c.want)
		}
	}
}
