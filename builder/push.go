package builder

import (
	"context"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// push uploads img under its first tag (blobs the registry already has are skipped, so an
// unchanged rebuild uploads no layer) and points the other tags at the same manifest.
func (r *Registry) push(ctx context.Context, img v1.Image, tags []name.Tag, log *logger) (Result, error) {
	digest, err := img.Digest()
	if err != nil {
		return Result{}, err
	}
	dst := make([]name.Tag, len(tags))
	for i, t := range tags {
		if dst[i], err = r.viaTag(t); err != nil {
			return Result{}, err
		}
	}
	if dst[0] != tags[0] {
		log.printf("pushing %s to its mirror %s", tags[0], dst[0])
	} else {
		log.printf("pushing %s", tags[0])
	}
	if err := remote.Write(dst[0], img, r.remoteOptions(ctx)...); err != nil {
		return Result{}, r.explain(err, "push", dst[0])
	}
	res := Result{Image: tags[0].String(), Digest: digest.String(), Tags: []string{tags[0].TagStr()}}
	for i, t := range tags[1:] {
		if err := remote.Tag(dst[i+1], img, r.remoteOptions(ctx)...); err != nil {
			return Result{}, r.explain(err, "tag", dst[i+1])
		}
		res.Tags = append(res.Tags, t.TagStr())
	}
	log.printf("pushed %s@%s (tags: %v)", res.Image, res.Digest, res.Tags)
	return res, nil
}
