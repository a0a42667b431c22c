package server

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/slipwayhq/slipway/pipeline"
	"github.com/slipwayhq/slipway/reconciler/preview"
	"github.com/slipwayhq/slipway/reconciler/trigger"
	"github.com/slipwayhq/slipway/sources/webhook"
	"github.com/slipwayhq/slipway/store"
)

// hookReply is the body of every webhook answer; forges show it in their delivery logs.
type hookReply struct {
	Result     string `json:"result"` // accepted, ignored, duplicate or rejected
	DeliveryID string `json:"deliveryId,omitempty"`
	Detail     string `json:"detail,omitempty"`
}

// hook answers one webhook delivery. Nothing starts unless the signature is good, and a
// delivery id seen before starts nothing again.
func (s *Server) hook(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("repository")
	log := s.Log.WithFields(logrus.Fields{"repository": name, "remote": r.RemoteAddr})
	cfg, ok := s.Hooks[name]
	if !ok {
		// The name comes from the caller: count it under one label, not its own.
		s.Metrics.Rejected("", "unknown_repository")
		writeJSON(w, http.StatusNotFound, hookReply{Result: "rejected", Detail: "no repository with webhooks of that name"})
		return
	}
	// Everything that needs no body comes first: a sender that cannot sign, or announces
	// too much, costs no read and no read slot.
	if err := webhook.Precheck(cfg.Provider, cfg.Secret, r.Header); err != nil {
		s.rejectHook(w, log, name, err)
		return
	}
	if r.ContentLength > webhook.MaxBody {
		s.Metrics.Rejected(name, "too_large")
		log.Warn("webhook body over the size limit")
		writeJSON(w, http.StatusRequestEntityTooLarge, hookReply{Result: "rejected", Detail: "body larger than 3 MiB"})
		return
	}
	body, ok := s.readHookBody(w, r, log, name)
	if !ok {
		return
	}
	ev, err := webhook.Parse(cfg.Provider, cfg.Secret, r.Header, body)
	if err != nil {
		s.rejectHook(w, log, name, err)
		return
	}
	log = log.WithFields(logrus.Fields{"delivery": ev.DeliveryID, "event": ev.Kind})
	fresh, err := s.Records.RecordDelivery(r.Context(), name, ev.DeliveryID)
	if err != nil {
		log.WithError(err).Error("record the webhook delivery")
		writeJSON(w, http.StatusServiceUnavailable, hookReply{Result: "rejected", DeliveryID: ev.DeliveryID, Detail: "could not record the delivery; retry"})
		return
	}
	if !fresh {
		s.Metrics.Duplicate(name)
		log.Info("webhook redelivery ignored")
		writeJSON(w, http.StatusOK, hookReply{Result: "duplicate", DeliveryID: ev.DeliveryID, Detail: "this delivery was received before"})
		return
	}
	s.Metrics.Received(name, "webhook")
	reply := hookReply{Result: "accepted", DeliveryID: ev.DeliveryID}
	switch ev.Kind {
	case webhook.KindPush:
		p := ev.Push
		log = log.WithFields(logrus.Fields{"branch": p.Branch, "commit": p.After})
		switch {
		case p.Deleted:
			reply.Result, reply.Detail = "ignored", "a deleted branch starts nothing"
		case !pipeline.MatchesAny(cfg.Branches, p.Branch):
			reply.Result, reply.Detail = "ignored", "branch "+p.Branch+" is not tracked ("+strings.Join(cfg.Branches, ", ")+")"
		default:
			if err := s.Triggers.Hint(r.Context(), name, trigger.Hint{DeliveryID: ev.DeliveryID, Branch: p.Branch, Commit: p.After}); err != nil {
				log.WithError(err).Error("hand the push to the watcher")
				s.unavailable(w, r, log, name, ev.DeliveryID, "the repository is not being watched")
				return
			}
			reply.Detail = "the branch will be fetched and the new head run"
		}
	case webhook.KindTag:
		tg := ev.Tag
		log = log.WithFields(logrus.Fields{"tag": tg.Name, "commit": tg.Commit, "deleted": tg.Deleted})
		// The watcher lists the tags itself: a new one runs the pipelines whose
		// triggers.tags match it, a moved or deleted one is recorded.
		if err := s.Triggers.Hint(r.Context(), name, trigger.Hint{DeliveryID: ev.DeliveryID, Tag: tg.Name, Commit: tg.Commit}); err != nil {
			log.WithError(err).Error("hand the tag push to the watcher")
			s.unavailable(w, r, log, name, ev.DeliveryID, "the repository is not being watched")
			return
		}
		reply.Detail = "the tags will be listed; a new tag runs the pipelines whose triggers.tags match it"
		if tg.Deleted {
			reply.Detail = "the tags will be listed; a deleted tag that ran is recorded"
		}
	case webhook.KindPullRequest:
		pr := ev.PullRequest
		_, err := s.Records.RecordPullRequestEvent(r.Context(), store.PullRequestEvent{
			Repository: name, Number: int(pr.Number), Action: string(pr.Action), Title: pr.Title, Author: pr.Author,
			SourceBranch: pr.SourceBranch, TargetBranch: pr.TargetBranch, HeadCommit: pr.HeadCommit,
			MergeCommit: pr.MergeCommit, DeliveryID: ev.DeliveryID,
		})
		if err != nil {
			log.WithError(err).Error("record the pull request event")
			s.unavailable(w, r, log, name, ev.DeliveryID, "could not record the event; retry")
			return
		}
		log = log.WithFields(logrus.Fields{"pull_request": pr.Number, "action": pr.Action})
		reply.Detail = "pull request event recorded"
		if s.Previews != nil && (pr.Action == webhook.ActionOpened || pr.Action == webhook.ActionUpdated) {
			err := s.Previews.Request(preview.Request{Repository: name, Number: pr.Number, SourceBranch: pr.SourceBranch,
				TargetBranch: pr.TargetBranch, Head: pr.HeadCommit, FromFork: pr.FromFork})
			switch {
			case errors.Is(err, preview.ErrUnknownRepository):
				reply.Detail += "; no preview: the repository has no forge in slipway.yaml to post it to"
			case err != nil:
				log.WithError(err).Error("hand the pull request to the previewer")
				s.unavailable(w, r, log, name, ev.DeliveryID, "could not queue the preview; retry")
				return
			default:
				reply.Detail += "; its head will be previewed"
			}
		}
	}
	log.WithField("result", reply.Result).Info("webhook")
	writeJSON(w, http.StatusAccepted, reply)
}

// unavailable answers 503 for a delivery that was recorded but could not be acted on, and
// forgets its id so the forge's retry is acted on rather than taken for a duplicate.
func (s *Server) unavailable(w http.ResponseWriter, r *http.Request, log *logrus.Entry, repo, delivery, detail string) {
	if err := s.Records.ForgetDelivery(context.WithoutCancel(r.Context()), repo, delivery); err != nil {
		log.WithError(err).Error("forget the delivery; its retry will be taken for a duplicate")
	}
	writeJSON(w, http.StatusServiceUnavailable, hookReply{Result: "rejected", DeliveryID: delivery, Detail: detail})
}

// rejectHook answers a delivery Precheck or Parse refused.
func (s *Server) rejectHook(w http.ResponseWriter, log *logrus.Entry, name string, err error) {
	var werr *webhook.Error
	if !errors.As(err, &werr) {
		writeJSON(w, http.StatusInternalServerError, hookReply{Result: "rejected", Detail: "internal error"})
		return
	}
	status := werr.HTTPStatus()
	s.Metrics.Rejected(name, string(werr.Reason))
	if werr.Reason == webhook.ReasonUnsupportedEvent {
		log.WithField("event", werr.Event).Debug("webhook event not used")
		writeJSON(w, status, hookReply{Result: "ignored", DeliveryID: werr.DeliveryID, Detail: "event " + werr.Event + " starts nothing"})
		return
	}
	log.WithFields(logrus.Fields{"reason": werr.Reason, "delivery": werr.DeliveryID}).Warn("webhook rejected")
	// The verifier's messages never contain the secret.
	writeJSON(w, status, hookReply{Result: "rejected", DeliveryID: werr.DeliveryID, Detail: werr.Error()})
}

// readHookBody reads a delivery's body, at most webhook.MaxBody bytes, in one of the
// limited read slots and within the read timeout. With every slot taken it answers 503 at
// once (a forge retries later; an attacker holds nothing), and a sender too slow to finish
// in time gets 408, so a slow sender cannot keep a slot.
func (s *Server) readHookBody(w http.ResponseWriter, r *http.Request, log *logrus.Entry, name string) ([]byte, bool) {
	select {
	case s.reads <- struct{}{}:
	default:
		s.Metrics.Rejected(name, "busy")
		log.Warn("webhook refused: every body read slot is taken")
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds))
		w.Header().Set("Connection", "close")
		writeJSON(w, http.StatusServiceUnavailable, hookReply{Result: "rejected", Detail: "too many webhook deliveries at once; retry later"})
		return nil, false
	}
	defer func() { <-s.reads }()
	rc := http.NewResponseController(w)
	if err := rc.SetReadDeadline(time.Now().Add(s.Limits.readTimeout())); err != nil {
		log.WithError(err).Warn("webhook body read deadline not set; the server's read timeout applies")
	}
	var buf bytes.Buffer
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength)) // at most MaxBody: checked by the caller
	}
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, webhook.MaxBody))
	if err == nil {
		_ = rc.SetReadDeadline(time.Time{})
		return buf.Bytes(), true
	}
	w.Header().Set("Connection", "close")
	var tooLarge *http.MaxBytesError
	var netErr net.Error
	switch {
	case errors.As(err, &tooLarge):
		s.Metrics.Rejected(name, "too_large")
		log.Warn("webhook body over the size limit")
		writeJSON(w, http.StatusRequestEntityTooLarge, hookReply{Result: "rejected", Detail: "body larger than 3 MiB"})
	case errors.As(err, &netErr) && netErr.Timeout():
		s.Metrics.Rejected(name, "read_timeout")
		log.Warn("webhook body not read within the read timeout")
		writeJSON(w, http.StatusRequestTimeout, hookReply{Result: "rejected", Detail: "the body did not arrive within " + s.Limits.readTimeout().String()})
	default:
		s.Metrics.Rejected(name, "read_error")
		writeJSON(w, http.StatusBadRequest, hookReply{Result: "rejected", Detail: "could not read the body"})
	}
	return nil, false
}

// retryAfterSeconds is what a delivery refused for want of a read slot is told to wait.
const retryAfterSeconds = 5
