// Package records assembles what people look at from the store: pipelines with their last
// run and current revision, a run with its stages and tasks, what is deployed where, and a
// run's log followed live. The API (package server) and the web UI both build their answers
// here, so the two never disagree about what a pipeline's state is.
//
// Each function asks only for the small part of the store it reads (the interfaces below);
// store.Store and changefeed's Feed satisfy them. The JSON field names of the types are the
// API's contract (docs/api.md).
package records
