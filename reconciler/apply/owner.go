package apply

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/slipwayhq/slipway/reconciler/kube"
	"github.com/slipwayhq/slipway/store"
)

// Owner metadata on every object Slipway applies. The label is what prune, the plan's LIST
// and the drift watches select by; a label value cannot hold the full identity (63
// characters, a restricted alphabet), so the annotation of the same key holds it readably.
const (
	OwnerLabel      = kube.OwnedSelector // drift watches and health waits share one informer per kind by it
	OwnerAnnotation = kube.OwnerGroup + "/owner"
)

// Labels of Slipway before the owner carried its repository (fluxcd ssa's owner labels:
// the pipeline and task names only). A deploy no longer stamps them; server-side apply
// removes them from the objects it applies, since Slipway's field manager owned them.
const (
	legacyNameLabel      = kube.OwnerGroup + "/name"
	legacyNamespaceLabel = kube.OwnerGroup + "/namespace"
)

// Selectors of every object Slipway applied, whoever owns it: the drift watches list and
// watch with them, so their caches hold managed objects only. LegacySelector finds objects
// an older Slipway labelled that no deploy has re-stamped yet.
const (
	OwnedSelector  = OwnerLabel
	LegacySelector = legacyNameLabel + ",!" + OwnerLabel
)

// OwnerPaths are the JSON pointers of the owner metadata, new and old. Drift detection
// ignores them: they say who applied an object, not what it should be, and an object
// labelled by an older Slipway is not drifted for lacking the new ones.
func OwnerPaths() []string {
	p := func(field, key string) string {
		return "/metadata/" + field + "/" + strings.ReplaceAll(key, "/", "~1")
	}
	return []string{p("labels", OwnerLabel), p("annotations", OwnerAnnotation),
		p("labels", legacyNameLabel), p("labels", legacyNamespaceLabel)}
}

// Owner is the identity stamped on every applied object (owner label and annotation);
// prune deletes only objects whose label matches it, so tasks of equal names in different
// pipelines or repositories never prune each other's objects.
type Owner struct {
	ref   store.TaskRef
	label string
}

// OwnerOf is the owner metadata of a task's objects.
func OwnerOf(ref store.TaskRef) Owner {
	return Owner{ref: ref, label: LabelValue(ref)}
}

// Ref is the task the owner names.
func (o Owner) Ref() store.TaskRef { return o.ref }

// Labels are the owner labels to stamp and to select by.
func (o Owner) Labels() map[string]string { return map[string]string{OwnerLabel: o.label} }

// Annotations are the owner annotations to stamp.
func (o Owner) Annotations() map[string]string {
	return map[string]string{OwnerAnnotation: o.ref.String()}
}

// Label-value limits (Kubernetes: at most 63 characters of [A-Za-z0-9-_.], beginning and
// ending alphanumeric). The hash takes 32 hex digits (128 bits of SHA-256) and a dash.
const (
	maxLabelValue = 63
	hashLen       = 32
	maxPrefix     = maxLabelValue - hashLen - 1
)

// LabelValue is the label-value-safe form of a task identity: a readable prefix
// (PIPELINE.TASK, shortened and with characters a label value cannot hold replaced) and a
// hash of the full identity, so distinct identities get distinct values whatever the
// prefix lost. The hash input separates the parts with NUL, which no name holds.
func LabelValue(ref store.TaskRef) string {
	sum := sha256.Sum256([]byte(ref.Pipeline.Repository + "\x00" + ref.Pipeline.Name + "\x00" + ref.Task))
	hash := hex.EncodeToString(sum[:])[:hashLen]
	prefix := []byte(ref.Pipeline.Name + "." + ref.Task)
	for i, c := range prefix {
		if !labelChar(c) {
			prefix[i] = '-'
		}
	}
	if len(prefix) > maxPrefix {
		prefix = prefix[:maxPrefix]
	}
	// The value must begin alphanumeric; the prefix is followed by "-" so it must not end
	// in a separator either (only for readability: "--" is valid).
	p := strings.TrimRight(strings.TrimLeft(string(prefix), "-_."), "-_.")
	if p == "" {
		return hash
	}
	return p + "-" + hash
}

func labelChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
}

// Admission is what a deploy may do with an object that already exists on the cluster.
type Admission int

// Admissions.
const (
	// Owned: the object carries the task's identity; apply it.
	Owned Admission = iota
	// Adopt: the object is not the task's, but the task said adopt: true and may take it.
	Adopt
)

// Admit decides whether a deploy of o may apply over an existing object with these labels
// and annotations. inPrevious says the task's previous inventory on the same cluster lists
// the object; adopt is the task's adopt setting. The rules:
//   - carrying o's owner label: o's own;
//   - labelled by an older Slipway (pipeline and task names, no repository) with o's
//     names, and in o's previous inventory: o's own (the upgrade re-stamps it);
//   - no Slipway owner at all: taken over only with adopt;
//   - owned by another task of the same repository (its annotation names it, and agrees
//     with its label): taken over only with adopt; the repository's one reviewed content
//     moves its own objects between its tasks and pipelines;
//   - owned by another repository, or by an owner whose repository cannot be told (old
//     labels, a label without a matching annotation): never, even with adopt. A
//     repository's content is untrusted: it must not take what another repository
//     deploys. Someone with cluster access hands it over by removing the owner label.
//
// A refusal is a *NotOwnedError.
func (o Owner) Admit(labels, annotations map[string]string, inPrevious, adopt bool) (Admission, error) {
	label := labels[OwnerLabel]
	if label == o.label {
		return Owned, nil
	}
	if label != "" {
		holder, ok := parseTaskRef(annotations[OwnerAnnotation])
		if !ok || LabelValue(holder) != label {
			return 0, &NotOwnedError{Holder: label, ForeignRepository: true}
		}
		if holder.Pipeline.Repository != o.ref.Pipeline.Repository {
			return 0, &NotOwnedError{Holder: holder.String(), ForeignRepository: true}
		}
		if !adopt {
			return 0, &NotOwnedError{Holder: holder.String()}
		}
		return Adopt, nil
	}
	if pipeline, ok := labels[legacyNameLabel]; ok {
		task := labels[legacyNamespaceLabel]
		if pipeline == o.ref.Pipeline.Name && task == o.ref.Task && inPrevious {
			return Owned, nil
		}
		return 0, &NotOwnedError{Holder: "pipeline " + pipeline + " task " + task + " (labels of an older Slipway)", ForeignRepository: true}
	}
	if !adopt {
		return 0, &NotOwnedError{}
	}
	return Adopt, nil
}

// parseTaskRef reads REPOSITORY/PIPELINE/TASK, TaskRef.String's form.
func parseTaskRef(s string) (store.TaskRef, bool) {
	parts := strings.Split(s, "/")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return store.TaskRef{}, false
	}
	return store.TaskRef{Pipeline: store.PipelineRef{Repository: parts[0], Name: parts[1]}, Task: parts[2]}, true
}
