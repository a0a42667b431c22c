package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/slipwayhq/slipway/config"
	"github.com/slipwayhq/slipway/server/records"
)

// keepAlive is how often an idle stream sends a comment, so proxies keep it open.
const keepAlive = 15 * time.Second

// sseWriter writes Server-Sent Events; the keep-alive writes from another goroutine, hence the lock.
type sseWriter struct {
	mu sync.Mutex
	w  http.ResponseWriter
	rc *http.ResponseController
}

// event writes one event (id "" for none) and flushes it.
func (s *sseWriter) event(id, name string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if id != "" {
		if _, err := fmt.Fprintf(s.w, "id: %s\n", id); err != nil {
			return err
		}
	}
	if _, err := fmt.Fprintf(s.w, "event: %s\ndata: %s\n\n", name, data); err != nil {
		return err
	}
	return s.rc.Flush()
}

func (s *sseWriter) comment(text string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := fmt.Fprintf(s.w, ": %s\n\n", text); err != nil {
		return err
	}
	return s.rc.Flush()
}

// streamLogs follows a run's log as Server-Sent Events: a "line" event per line (its id
// the line's ID, so a reconnecting client's Last-Event-ID resumes after it), a "status"
// event when the run's status changes, and an "end" event with the final run, after
// which the stream closes. It reads the store when the change feed says the run changed.
func (s *Server) streamLogs(w http.ResponseWriter, r *http.Request, caller config.APIUser) {
	lq, err := logQuery(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("Last-Event-ID %q: want a line ID", v))
			return
		}
		lq.AfterID = n
	}
	ref, id, ok := s.runTarget(w, r, caller)
	if !ok {
		return
	}
	if s.Changes == nil {
		writeError(w, http.StatusServiceUnavailable, "live logs need the daemon's change feed")
		return
	}
	if _, err := s.Reads.GetRun(r.Context(), ref, id); err != nil {
		s.fail(w, err, fmt.Sprintf("run %s #%d", ref.Name, id))
		return
	}
	rc := http.NewResponseController(w)
	// A stream lasts as long as the run: no write deadline cuts it.
	_ = rc.SetWriteDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	out := &sseWriter{w: w, rc: rc}
	if err := out.comment("following " + ref.String() + " #" + strconv.FormatInt(id, 10)); err != nil {
		return
	}

	ctx := r.Context()
	done := make(chan struct{})
	defer close(done)
	go func() {
		t := time.NewTicker(keepAlive)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				if out.comment("keep-alive") != nil {
					return
				}
			}
		}
	}()

	final, err := records.FollowLogs(ctx, s.Reads, s.Changes, records.Follow{Ref: ref, BuildID: id, AfterID: lq.AfterID, Tasks: lq.Tasks},
		records.Emitter{
			Line: func(l records.Line) error { return out.event(strconv.FormatInt(l.ID, 10), "line", l) },
			Run:  func(run records.Run) error { return out.event("", "status", run) },
		}, time.Now)
	switch {
	case err == nil:
		_ = out.event("", "end", records.RunOf(final, time.Now()))
	case ctx.Err() != nil:
		// The client went away.
	default:
		body := errorBody{Error: "following the log failed; the daemon's log has the details"}
		s.Log.WithError(err).WithFields(logrus.Fields{"pipeline": ref.Name, "build_id": id}).Error("log stream")
		_ = out.event("", "error", body)
	}
}
