// Package sources is where change comes from. This part keeps a Git mirror per repository
// on disk (go-git, no git binary): it looks up branch heads with a remote ref listing,
// fetches only when something moved, checks commits out into per-run workspaces and
// answers questions about commits (changed paths, message, author).
//
// The package knows nothing about Kubernetes or pipelines; callers define the small
// interfaces they need over *Mirrors.
package sources
