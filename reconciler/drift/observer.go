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
	ref := store.TaskRef{Pipeline: store.PipelineRef{Repository: e.Repository, Name: e.Pipeline}, Task: e.Task}
	if e.Status == string(store.TaskRunning) {
		w.TaskStarted(ref)
		return
	}
	w.TaskEnded(ref)
}
