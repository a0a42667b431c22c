package apply

import (
	"regexp"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/slipwayhq/slipway/store"
)

func taskRef(repo, pipeline, task string) store.TaskRef {
	return store.TaskRef{Pipeline: store.PipelineRef{Repository: repo, Name: pipeline}, Task: task}
}

func TestLabelValueIsAValidLabelValue(t *testing.T) {
	long := strings.Repeat("a", 63)
	for _, ref := range []store.TaskRef{
		taskRef("shop", "web", "deploy"),
		taskRef(long, long, long),
		taskRef("r", "-x-", "_y_"),
		taskRef("r", "p/q", "t u"), // not names slipway.yaml allows, but the form must hold anyway
		taskRef("", "", ""),
	} {
		v := LabelValue(ref)
		if errs := validation.IsValidLabelValue(v); len(errs) > 0 || v == "" {
			t.Errorf("%q -> %q: %v", ref, v, errs)
		}
		if len(v) > 63 {
			t.Errorf("%q -> %q: %d characters", ref, v, len(v))
		}
	}
	if v := LabelValue(taskRef("shop", "web", "deploy")); !regexp.MustCompile(`^web\.deploy-[0-9a-f]{32}$`).MatchString(v) {
		t.Errorf("LabelValue = %q, want web.deploy-<32 hex digits>", v)
	}
}

func TestLabelValueTellsIdentitiesApart(t *testing.T) {
	long := strings.Repeat("p", 60)
	refs := []store.TaskRef{
		taskRef("a", "web", "deploy"),
		taskRef("b", "web", "deploy"), // the same pipeline and task in another repository
		taskRef("a", "web", "deploy2"),
		taskRef("a", "web.deploy", ""),
		taskRef("a", "web", ".deploy"),
		taskRef("a", long+"x", "t"), // prefixes cut to the same text
		taskRef("a", long+"y", "t"),
		taskRef("ab", "c", "t"), // the parts' boundaries count
		taskRef("a", "bc", "t"),
	}
	seen := map[string]store.TaskRef{}
	for _, ref := range refs {
		v := LabelValue(ref)
		if other, ok := seen[v]; ok {
			t.Errorf("%q and %q share the label value %q", ref, other, v)
		}
		seen[v] = ref
		if again := LabelValue(ref); again != v {
			t.Errorf("%q: %q then %q", ref, v, again)
		}
	}
}

func TestPrepareObjectStampsOwnerLabelAndAnnotation(t *testing.T) {
	ref := taskRef("shop", "web", "deploy")
	obj := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "x", "labels": map[string]any{"app": "web"}, "annotations": map[string]any{"team": "ops"}}}}
	PrepareObject(obj, OwnerOf(ref))
	l, a := obj.GetLabels(), obj.GetAnnotations()
	if l["slipway.dev/owner"] != LabelValue(ref) || l["app"] != "web" || len(l) != 2 {
		t.Errorf("labels %v", l)
	}
	if a["slipway.dev/owner"] != "shop/web/deploy" || a["team"] != "ops" || len(a) != 2 {
		t.Errorf("annotations %v", a)
	}
	bare := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "y"}}}
	PrepareObject(bare, OwnerOf(ref))
	if bare.GetLabels()["slipway.dev/owner"] == "" || bare.GetAnnotations()["slipway.dev/owner"] != "shop/web/deploy" {
		t.Errorf("an object without labels or annotations: %v %v", bare.GetLabels(), bare.GetAnnotations())
	}
}

func TestOwnerPathsNameTheStampedMetadata(t *testing.T) {
	want := map[string]bool{"/metadata/labels/slipway.dev~1owner": true, "/metadata/annotations/slipway.dev~1owner": true,
		"/metadata/labels/slipway.dev~1name": true, "/metadata/labels/slipway.dev~1namespace": true}
	got := OwnerPaths()
	for _, p := range got {
		delete(want, p)
	}
	if len(want) > 0 || len(got) != 4 {
		t.Errorf("OwnerPaths = %v; missing %v", got, want)
	}
}
