package apply

import (
	"errors"
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

// Admit: what a deploy may take over, with and without adopt.
func TestAdmit(t *testing.T) {
	me := OwnerOf(taskRef("shop", "web", "deploy"))
	sibling := OwnerOf(taskRef("shop", "api", "deploy"))
	stranger := OwnerOf(taskRef("bank", "web", "deploy"))
	meta := func(o Owner) (map[string]string, map[string]string) { return o.Labels(), o.Annotations() }
	legacy := func(pipeline, task string) map[string]string {
		return map[string]string{legacyNameLabel: pipeline, legacyNamespaceLabel: task}
	}
	ours, oursAnn := meta(me)
	sib, sibAnn := meta(sibling)
	str, strAnn := meta(stranger)
	// A stranger's label with an annotation claiming this repository: the label decides.
	forged := map[string]string{OwnerAnnotation: "shop/other/deploy"}

	const (
		refused = iota
		refusedEvenWithAdopt
		owned
		adoptedOnlyWithAdopt
	)
	for _, c := range []struct {
		name        string
		labels      map[string]string
		annotations map[string]string
		inPrevious  bool
		want        int
	}{
		{"ours", ours, oursAnn, false, owned},
		{"ours, in the previous inventory", ours, oursAnn, true, owned},
		{"ours with the annotation lost", ours, nil, false, owned},
		{"unlabelled", map[string]string{"app": "web"}, nil, false, adoptedOnlyWithAdopt},
		{"unlabelled though our inventory listed it (label removed by hand)", nil, nil, true, adoptedOnlyWithAdopt},
		{"another task of this repository", sib, sibAnn, false, adoptedOnlyWithAdopt},
		{"another repository", str, strAnn, true, refusedEvenWithAdopt},
		{"another repository's label, this repository's annotation", str, forged, false, refusedEvenWithAdopt},
		{"a label without the annotation", sib, nil, false, refusedEvenWithAdopt},
		{"old labels of this task, in its inventory", legacy("web", "deploy"), nil, true, owned},
		{"old labels of this task, not in its inventory", legacy("web", "deploy"), nil, false, refusedEvenWithAdopt},
		{"old labels of another task", legacy("web", "other"), nil, true, refusedEvenWithAdopt},
	} {
		for _, adopt := range []bool{false, true} {
			got, err := me.Admit(c.labels, c.annotations, c.inPrevious, adopt)
			var want Admission
			wantErr := false
			switch {
			case c.want == owned:
				want = Owned
			case c.want == adoptedOnlyWithAdopt && adopt:
				want = Adopt
			default:
				wantErr = true
			}
			if wantErr {
				var ne *NotOwnedError
				if !errors.As(err, &ne) || !errors.Is(err, ErrNotOwned) {
					t.Errorf("%s, adopt %v: %v, %v; want a NotOwnedError", c.name, adopt, got, err)
					continue
				}
				if ne.ForeignRepository != (c.want == refusedEvenWithAdopt) {
					t.Errorf("%s, adopt %v: ForeignRepository %v", c.name, adopt, ne.ForeignRepository)
				}
				continue
			}
			if err != nil || got != want {
				t.Errorf("%s, adopt %v: %v, %v; want %v", c.name, adopt, got, err, want)
			}
		}
	}
}

// The refusals say who owns the object and what would let the task take it.
func TestNotOwnedErrorSaysWhatToDo(t *testing.T) {
	me := OwnerOf(taskRef("shop", "web", "deploy"))
	_, err := me.Admit(nil, nil, false, false)
	if err == nil || !strings.Contains(err.Error(), "adopt: true") || !strings.Contains(err.Error(), "Slipway did not create it") {
		t.Errorf("unlabelled: %v", err)
	}
	sib := OwnerOf(taskRef("shop", "api", "deploy"))
	_, err = me.Admit(sib.Labels(), sib.Annotations(), false, false)
	if err == nil || !strings.Contains(err.Error(), "shop/api/deploy, another task of this repository") || !strings.Contains(err.Error(), "adopt: true") {
		t.Errorf("sibling: %v", err)
	}
	str := OwnerOf(taskRef("bank", "web", "deploy"))
	_, err = me.Admit(str.Labels(), str.Annotations(), false, true)
	if err == nil || !strings.Contains(err.Error(), "bank/web/deploy") || !strings.Contains(err.Error(), "adopt: true included") {
		t.Errorf("stranger: %v", err)
	}
}
