package reconciler

import (
	"errors"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/release"

	"github.com/slipwayhq/slipway/reconciler/apply"
	"github.com/slipwayhq/slipway/store"
)

// releaseOwned: a release is upgraded only when it is the task's.
func TestReleaseOwned(t *testing.T) {
	ref := func(pipeline string) store.TaskRef {
		return store.TaskRef{Pipeline: store.PipelineRef{Repository: "shop", Name: pipeline}, Task: "deploy"}
	}
	me := apply.OwnerOf(ref("web"))
	other := apply.OwnerOf(ref("api"))
	cm := func(o *apply.Owner) string {
		meta := ""
		if o != nil {
			meta = "\n  labels: {" + apply.OwnerLabel + ": " + o.Labels()[apply.OwnerLabel] + "}" +
				"\n  annotations: {" + apply.OwnerAnnotation + ": " + o.Annotations()[apply.OwnerAnnotation] + "}"
		}
		return "---\n# Source: c/templates/cm.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings" + meta + "\ndata: {v: x}\n"
	}
	rel := func(manifest string) *release.Release {
		return &release.Release{Name: "rel", Version: 3, Manifest: manifest}
	}
	chartRev := func(manifest string) store.Revision {
		return store.Revision{Kind: store.DeployChart, Namespace: "ns", Objects: []byte(manifest)}
	}
	for _, c := range []struct {
		name     string
		cur      store.Revision
		manifest string
		refused  string // "" when owned
	}{
		{"stamped with the task's owner", store.Revision{}, cm(&me), ""},
		{"what the task's current revision recorded, unstamped (older Slipway)", chartRev(cm(nil)), cm(nil), ""},
		{"empty, as the task's current revision recorded", chartRev(""), "", ""},
		{"installed by hand", store.Revision{}, cm(nil), "ConfigMap/settings in its manifest carries no Slipway owner"},
		{"unstamped, and not what the task recorded", chartRev(cm(nil) + "# changed\n"), cm(nil), "carries no Slipway owner"},
		{"recorded in another namespace", store.Revision{Kind: store.DeployChart, Namespace: "other", Objects: []byte(cm(nil))}, cm(nil), "carries no Slipway owner"},
		{"another task's", store.Revision{}, cm(&other), "belongs to shop/api/deploy"},
		{"empty, never deployed by the task", store.Revision{}, "", "no objects to tell its owner by"},
	} {
		err := releaseOwned(me, c.cur, "ns", rel(c.manifest))
		switch {
		case c.refused == "" && err != nil:
			t.Errorf("%s: %v; want it owned", c.name, err)
		case c.refused != "" && (!errors.Is(err, apply.ErrNotOwned) || !strings.Contains(err.Error(), c.refused) ||
			!strings.Contains(err.Error(), "release ns/rel (revision 3) is not this task's")):
			t.Errorf("%s: %v; want a refusal saying %q", c.name, err, c.refused)
		}
	}
}
