package builder

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// RetentionResult says what retention did to a repository.
type RetentionResult struct {
	Deleted []string          // tags removed, oldest first
	Skipped map[string]string // tags due for removal that stay, with the reason
}

// varRef finds ${NAME} in a tag template.
var varRef = regexp.MustCompile(`\$\{([^}]*)\}`)

// tagPattern turns a tag template into the glob people read (alpha-${BUILD_ID} → alpha-*)
// and a regexp whose first group is the BUILD_ID, which orders tags by age: alpha-10 is
// newer than alpha-9 though it sorts before it.
func tagPattern(template string) (glob string, re *regexp.Regexp, err error) {
	locs := varRef.FindAllStringSubmatchIndex(template, -1)
	var g, r strings.Builder
	r.WriteString("^")
	last, hasID := 0, false
	for _, l := range locs {
		lit := template[last:l[0]]
		g.WriteString(lit)
		r.WriteString(regexp.QuoteMeta(lit))
		g.WriteString("*")
		if template[l[2]:l[3]] == "BUILD_ID" && !hasID {
			r.WriteString(`([0-9]+)`)
			hasID = true
		} else {
			r.WriteString(`[A-Za-z0-9_.-]*`)
		}
		last = l[1]
	}
	g.WriteString(template[last:])
	r.WriteString(regexp.QuoteMeta(template[last:]) + "$")
	if !hasID {
		return "", nil, fmt.Errorf("tag template %q has no ${BUILD_ID}: keep needs it to tell older tags from newer", template)
	}
	return g.String(), regexp.MustCompile(r.String()), nil
}

// TagGlob is the glob of tags that retention for template considers, e.g. alpha-*.
func TagGlob(template string) (string, error) {
	g, _, err := tagPattern(template)
	return g, err
}

// RetainTags keeps the newest keep tags of repo (host/workspace/image) that match tagTemplate
// and are owned (pushed by the pipeline retaining them), and deletes older ones unless
// protected names them or their manifest's digest (sha256:...), with the reason, such as
// a revision that deploys the image. Tags not
// owned or not matching the template are never touched nor counted. Registries delete
// manifests, not tags: a tag whose manifest any surviving tag (owned or not) also names is
// skipped rather than taking the survivor with it.
func (r *Registry) RetainTags(ctx context.Context, repo, tagTemplate string, keep int, owned map[string]bool, protected map[string]string) (RetentionResult, error) {
	res := RetentionResult{Skipped: map[string]string{}}
	if keep < 1 {
		return res, fmt.Errorf("keep must be at least 1, got %d", keep)
	}
	glob, re, err := tagPattern(tagTemplate)
	if err != nil {
		return res, err
	}
	host, _, _ := strings.Cut(repo, "/")
	named, err := name.NewRepository(repo, r.nameOptions(host)...)
	if err != nil {
		return res, fmt.Errorf("repository %s: %w", repo, err)
	}
	rp, err := r.via(named)
	if err != nil {
		return res, err
	}
	tags, err := remote.List(rp, r.remoteOptions(ctx)...)
	if err != nil {
		return res, r.explain(err, "list tags", rp.Tag("latest"))
	}
	type numbered struct {
		tag string
		id  uint64
	}
	var matching []numbered
	for _, t := range tags {
		if m := re.FindStringSubmatch(t); m != nil && owned[t] {
			id, err := strconv.ParseUint(m[1], 10, 64)
			if err == nil {
				matching = append(matching, numbered{t, id})
			}
		}
	}
	sort.Slice(matching, func(i, j int) bool { return matching[i].id > matching[j].id })
	if len(matching) <= keep {
		return res, nil
	}
	doomed := map[string]bool{}
	var order []string // oldest first
	for i := len(matching) - 1; i >= keep; i-- {
		t := matching[i].tag
		if why, ok := protected[t]; ok {
			res.Skipped[t] = why
			continue
		}
		doomed[t] = true
		order = append(order, t)
	}
	// Digests of every tag, to see which manifests survivors still need.
	digestOf := map[string]string{}
	for _, t := range tags {
		d, err := remote.Head(rp.Tag(t), r.remoteOptions(ctx)...)
		if err != nil {
			return res, r.explain(err, "look up", rp.Tag(t))
		}
		digestOf[t] = d.Digest.String()
	}
	needed := map[string]string{} // digest → a surviving tag naming it
	for _, t := range tags {
		if !doomed[t] {
			needed[digestOf[t]] = t
		}
	}
	deletedDigest := map[string]bool{}
	for _, t := range order {
		d := digestOf[t]
		if why, ok := protected[d]; ok {
			res.Skipped[t] = why // a revision deploys the manifest by digest
			continue
		}
		if keeper, ok := needed[d]; ok {
			res.Skipped[t] = fmt.Sprintf("same image as %s, which stays", keeper)
			continue
		}
		if !deletedDigest[d] {
			if err := remote.Delete(rp.Digest(d), r.remoteOptions(ctx)...); err != nil {
				return res, r.explain(err, fmt.Sprintf("delete %s (%s matches %s)", t, t, glob), rp.Digest(d))
			}
			deletedDigest[d] = true
		}
		res.Deleted = append(res.Deleted, t)
	}
	return res, nil
}
