package webui

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/slipwayhq/slipway/internal/changefeed"
	"github.com/slipwayhq/slipway/server/records"
	"github.com/slipwayhq/slipway/store"
)

// liveTask is a task's state as the live stream sends it.
type liveTask struct {
	Stage    string `json:"stage"`
	Name     string `json:"name"`
	Status   string `json:"status"`
	Label    string `json:"label"` // the status in the viewer's language
	Reason   string `json:"reason,omitempty"`
	Duration string `json:"duration,omitempty"`
}

type liveLine struct {
	Task   string `json:"task"`
	Stream string `json:"stream"`
	Text   string `json:"text"`
}

type liveRun struct {
	Status   string `json:"status"`
	Label    string `json:"label"`
	Reason   string `json:"reason,omitempty"`
	Duration string `json:"duration,omitempty"`
	Final    bool   `json:"final"`
}

// live streams a run's changes as Server-Sent Events until the run is final: "tasks"
// (every task's state), "logs" (new lines, the event id being the last line's id, so a
// reconnecting EventSource resumes after it) and "run"; then "end". It reads the store
// only when the change feed says the run changed: an open tab costs nothing while
// nothing happens. (records.FollowLogs follows lines and the run's status; the timeline
// also needs each task's state as it moves, so this loop reads the tasks on every wake.)
func (u *UI) live(w http.ResponseWriter, r *http.Request, v viewer) {
	ref, id, ok := u.runTarget(w, r, v)
	if !ok {
		return
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	after, _ := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64)
	if last, err := strconv.ParseInt(r.Header.Get("Last-Event-ID"), 10, 64); err == nil && last > after {
		after = last
	}
	ctx := r.Context()
	// Follow before the first read, so no change between the read and the wait is lost.
	wake, stop := u.changes.Follow(changefeed.Run(ref, id))
	defer stop()
	run, err := u.reads.GetRun(ctx, ref, id)
	if errors.Is(err, store.ErrNotFound) {
		http.NotFound(w, r)
		return
	}
	if err != nil {
		u.internal(w, r, v, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	var lastTasks string
	for {
		tasks, err := u.reads.ListTasks(ctx, ref, id)
		if err != nil {
			u.log.WithError(err).Warn("web UI live: tasks")
			return
		}
		var lt []liveTask
		for _, st := range records.StagesOf(tasks, u.now()) {
			for _, t := range st.Tasks {
				lt = append(lt, liveTask{Stage: st.Name, Name: t.Name, Status: t.Status, Label: u.labels.label(v.lang, t.Status),
					Reason: t.Reason, Duration: seconds(t.DurationSeconds)})
			}
		}
		if b, _ := json.Marshal(lt); string(b) != lastTasks {
			lastTasks = string(b)
			writeEvent(w, "tasks", "", b)
		}
		for {
			lines, err := u.reads.ReadLogs(ctx, ref, id, store.LogQuery{AfterID: after, Limit: 500})
			if err != nil {
				u.log.WithError(err).Warn("web UI live: logs")
				return
			}
			if len(lines) == 0 {
				break
			}
			out := make([]liveLine, len(lines))
			for i, l := range lines {
				out[i] = liveLine{Task: l.Task, Stream: string(l.Stream), Text: l.Text}
			}
			after = lines[len(lines)-1].ID
			b, _ := json.Marshal(out)
			writeEvent(w, "logs", strconv.FormatInt(after, 10), b)
		}
		rr := records.RunOf(run, u.now())
		b, _ := json.Marshal(liveRun{Status: rr.Status, Label: u.labels.label(v.lang, rr.Status), Reason: rr.Reason, Final: run.Status.Final(),
			Duration: seconds(rr.DurationSeconds)})
		writeEvent(w, "run", "", b)
		flusher.Flush()
		if run.Status.Final() {
			writeEvent(w, "end", "", []byte("{}"))
			flusher.Flush()
			return
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return
		case <-u.done:
			return
		}
		if run, err = u.reads.GetRun(ctx, ref, id); err != nil {
			u.log.WithError(err).Warn("web UI live: run")
			return
		}
	}
}

func writeEvent(w http.ResponseWriter, event, id string, data []byte) {
	if id != "" {
		fmt.Fprintf(w, "id: %s\n", id)
	}
	// JSON has no raw newlines, so one data line carries it.
	fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, data)
}

// seconds shows a duration as Go does (1m5s), rounded to the second; "" for 0 (not started).
func seconds(s float64) string {
	if s <= 0 {
		return ""
	}
	return time.Duration(s * float64(time.Second)).Round(time.Second).String()
}
