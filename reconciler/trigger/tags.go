package trigger

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/sirupsen/logrus"

	"github.com/slipwayhq/slipway/pipeline"
	"github.com/slipwayhq/slipway/reconciler"
	"github.com/slipwayhq/slipway/store"
)

// tagActor is the audit log's actor for what the watcher itself records.
const tagActor = "slipway"

// lookTags deals with the repository's tags as one listing shows them (tag → commit). The
// first look records the tags there are, running none (a repository with years of release
// tags must not redeploy them all); after that a new tag runs the pipelines whose
// triggers.tags match it, with the pipeline file at the tagged commit, once. A tag moved to
// another commit or deleted after it was handled is recorded in the audit log against the
// runs it started, and never run again.
func (w *BranchWatcher) lookTags(ctx context.Context, remote map[string]string) error {
	scanned, err := w.records.TagsScanned(ctx, w.repo.Name)
	if err != nil {
		return err
	}
	if !scanned {
		if err := w.records.RecordTagBaseline(ctx, w.repo.Name, remote); err != nil {
			return err
		}
		w.log.WithField("tags", len(remote)).Info("tags present when first watched are recorded, not run")
		return nil
	}
	recorded, err := w.records.ListTagRefs(ctx, w.repo.Name)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(remote))
	for t := range remote {
		names = append(names, t)
	}
	sort.Strings(names)
	var errs []error
	for _, tag := range names {
		rec, known := recorded[tag]
		switch {
		case !known:
			if err := w.newTag(ctx, tag); err != nil {
				if ctx.Err() != nil {
					return err
				}
				errs = append(errs, fmt.Errorf("tag %s: %w", tag, err))
			}
		case rec.Commit != remote[tag]:
			w.tagChanged(ctx, rec, remote[tag])
		}
	}
	for tag, rec := range recorded {
		if _, ok := remote[tag]; !ok && rec.State != store.TagDeleted {
			w.tagChanged(ctx, rec, "")
		}
	}
	return errors.Join(errs...)
}

// newTag fetches a tag seen for the first time, reads the pipeline file at its commit and
// starts the pipelines whose triggers.tags match it. The tag is recorded as handled
// whatever matched, in the transaction that records its runs, so a webhook and a poll of
// it, or a restart, start nothing again, and a crash loses none of them.
func (w *BranchWatcher) newTag(ctx context.Context, tag string) error {
	log := w.log.WithField("tag", tag)
	commit, err := w.git.FetchTag(ctx, w.repo, tag)
	if err != nil {
		return err
	}
	log = log.WithField("commit", commit)
	handled := store.TagRef{Repository: w.repo.Name, Tag: tag, Commit: commit, State: store.TagHandled}
	co, err := w.pipelines.Prepare(ctx, reconciler.Request{Repo: w.repo, Commit: commit})
	if err != nil {
		var notPrepared *reconciler.PrepareError
		if !errors.As(err, &notPrepared) {
			return err
		}
		logNotPrepared(log, err, "the tagged commit", "the tag")
		return w.records.SetTagRef(ctx, handled)
	}
	co.Tag = tag
	w.metrics.Received(w.repo.Name, "tag")
	err = w.submitMatching(ctx, co, log, newLookTrace(nil), "triggered by tag", store.Handled{Tag: &handled}, func(*pipeline.Pipeline) pipeline.Event {
		return pipeline.Event{Kind: pipeline.EventTag, Tag: tag}
	})
	if errors.Is(err, store.ErrHandledElsewhere) {
		log.Info("the tag was handled by another process; nothing runs here")
		return nil
	}
	return err
}

// tagChanged records a known tag that now points at commit ("" when deleted): in the audit
// log against each pipeline's newest run of the tag, and in the tag's record, which stops it
// being noticed again. Nothing runs: a release that changes under its name is a person's
// decision to look at, not a build to repeat silently.
func (w *BranchWatcher) tagChanged(ctx context.Context, rec store.TagRef, commit string) {
	log := w.log.WithFields(logrus.Fields{"tag": rec.Tag, "was": short(rec.Commit), "now": short(commit)})
	next := store.TagRef{Repository: rec.Repository, Tag: rec.Tag, Commit: commit, State: store.TagMoved}
	action := store.AuditTagMoved
	reason := fmt.Sprintf("tag %s moved from %s to %s after its run; not run again", rec.Tag, short(rec.Commit), short(commit))
	switch {
	case commit == "":
		next.State, action = store.TagDeleted, store.AuditTagDeleted
		reason = fmt.Sprintf("tag %s (at %s) deleted after its run", rec.Tag, short(rec.Commit))
	case rec.State == store.TagDeleted:
		reason = fmt.Sprintf("tag %s pushed again, at %s, after it was deleted; not run again", rec.Tag, short(commit))
	}
	if rec.State == store.TagBaseline {
		// It never ran: there is no run to record it against.
		next.State = store.TagBaseline
		if commit == "" {
			next.State = store.TagDeleted
		}
		log.Info("a tag present before Slipway watched the repository changed; nothing runs")
	} else {
		w.auditTag(ctx, rec.Tag, action, reason, log)
	}
	if err := w.records.SetTagRef(ctx, next); err != nil {
		log.WithError(err).Error("record the changed tag; it will be recorded again")
	}
}

// auditTag records reason against each pipeline's newest run of tag.
func (w *BranchWatcher) auditTag(ctx context.Context, tag string, action store.AuditAction, reason string, log *logrus.Entry) {
	runs, err := w.records.RunsOfTag(ctx, w.repo.Name, tag)
	if err != nil {
		log.WithError(err).Error("find the runs of the changed tag")
	}
	seen := map[store.PipelineRef]bool{}
	for _, run := range runs {
		if seen[run.Pipeline] {
			continue
		}
		seen[run.Pipeline] = true
		if w.audit == nil {
			break
		}
		e := store.AuditEntry{Actor: tagActor, Action: action, Pipeline: run.Pipeline, BuildID: run.BuildID, Reason: reason}
		if _, err := w.audit.RecordAudit(ctx, e); err != nil {
			log.WithError(err).WithField("pipeline", run.Pipeline.Name).Error("record the changed tag in the audit log")
		}
	}
	log.WithField("runs", len(seen)).Warn(reason)
}
