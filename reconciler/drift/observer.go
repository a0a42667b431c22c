package drift

import (
	"github.com/slipwayhq/slipway/reconciler"
	"github.com/slipwayhq/slipway/store"
)

// RunEvent makes the watcher a reconciler.Observer: a task that starts pauses drift
// handling of its objects, and its end resumes it with the revisions reloaded.
func (w *Watcher) RunEvent(e reconciler.Event) {
	if e.Task == "" {
		return
	}
	if e.Status == string(store.TaskRunning) {
		w.TaskStarted(e.Pipeline, e.Task)
		return
	}
	w.TaskEnded(e.Pipeline, e.Task)
}
