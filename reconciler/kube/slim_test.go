package kube

import (
	"reflect"
	"strings"
	"testing"

	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

func mustObject(t *testing.T, y string) *unstructured.Unstructured {
	t.Helper()
	j, err := yaml.YAMLToJSON([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(j); err != nil {
		t.Fatal(err)
	}
	return u
}

const slimDeployment = `
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: apps
  generation: 3
  labels: {slipway.dev/owner: x}
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: '{"big":"copy"}'
    note: kept
  managedFields:
  - manager: slipway
    operation: Apply
    fieldsType: FieldsV1
    fieldsV1: {f:spec: {f:replicas: {}}}
  - manager: kube-controller-manager
    operation: Update
    subresource: status
    fieldsType: FieldsV1
    fieldsV1: {f:status: {f:replicas: {}}}
spec:
  replicas: 2
  progressDeadlineSeconds: 60
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx}]
status:
  observedGeneration: 3
  replicas: 2
  updatedReplicas: 2
  readyReplicas: 1
  availableReplicas: 1
  conditions:
  - {type: Available, status: "True"}
  - {type: Progressing, status: "True", reason: NewReplicaSetAvailable}
`

func TestSlimObjectKeepsWhatReadersUse(t *testing.T) {
	full := mustObject(t, slimDeployment)
	slim := full.DeepCopy()
	slimObject(slim)

	if _, found, _ := unstructured.NestedFieldNoCopy(slim.Object, "spec", "template"); found {
		t.Error("the pod template is still cached")
	}
	// A deploy's plan fingerprints Slipway's own apply entry from the cache; no other.
	if mf := slim.GetManagedFields(); len(mf) != 1 || mf[0].Manager != FieldManager || mf[0].Operation != "Apply" {
		t.Errorf("cached managedFields = %+v, want only Slipway's apply entry", mf)
	}
	if got := slim.GetAnnotations()["note"]; got != "kept" {
		t.Errorf("annotation note = %q, want kept", got)
	}
	if got := slim.GetAnnotations()[lastApplied]; !strings.HasPrefix(got, "sha256:") {
		t.Errorf("last-applied = %q, want its digest", got)
	}
	if slim.GetGeneration() != 3 || !reflect.DeepEqual(slim.GetLabels(), full.GetLabels()) || slim.GetName() != "web" {
		t.Error("metadata changed")
	}
	if !reflect.DeepEqual(slim.Object["status"], full.Object["status"]) {
		t.Error("status changed")
	}
	// kstatus computes the same status from the cached copy as from the object.
	want, err := status.Compute(full)
	if err != nil {
		t.Fatal(err)
	}
	got, err := status.Compute(slim)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != want.Status || got.Message != want.Message || got.Status != status.InProgressStatus {
		t.Errorf("status of the cached copy %s %q, of the object %s %q", got.Status, got.Message, want.Status, want.Message)
	}
}

func TestSlimObjectDropsBodies(t *testing.T) {
	cm := mustObject(t, `
apiVersion: v1
kind: Secret
metadata: {name: s, namespace: apps}
type: Opaque
data: {password: c2VjcmV0}
stringData: {token: plain}
`)
	slimObject(cm)
	for _, k := range []string{"data", "stringData", "type"} {
		if _, ok := cm.Object[k]; ok {
			t.Errorf("%s is still cached", k)
		}
	}
	if cm.GetName() != "s" || cm.GetKind() != "Secret" {
		t.Error("identity lost")
	}
	svc := mustObject(t, `
apiVersion: v1
kind: Service
metadata: {name: lb, namespace: apps}
spec: {type: LoadBalancer, ports: [{port: 80}]}
status: {loadBalancer: {}}
`)
	want, _ := status.Compute(svc.DeepCopy())
	slimObject(svc)
	got, _ := status.Compute(svc)
	if got.Status != want.Status || got.Status != status.InProgressStatus {
		t.Errorf("Service status of the cached copy %s, of the object %s", got.Status, want.Status)
	}
	if _, found, _ := unstructured.NestedFieldNoCopy(svc.Object, "spec", "ports"); found {
		t.Error("ports are still cached")
	}
}
