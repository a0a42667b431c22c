// Package reconciler turns a commit into a run: it allocates the BUILD_ID, checks out the
// commit, runs the pipeline's stages and tasks in order, deploys with server-side apply,
// and records every state change, log line and revision in the store.
package reconciler
