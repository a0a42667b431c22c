// Package webhook verifies and parses webhook deliveries from GitHub, GitLab, Gitea and a
// generic HMAC-SHA256 sender. It is pure: no network, no store. The HTTP server first calls
// Precheck, which needs only the headers (content type, signature header's form, GitLab's
// token), then reads the body (at most MaxBody bytes) and calls Parse, which checks the
// signature before it looks at anything else and returns a normalised Event or an *Error
// whose Reason is a metrics label.
//
// A webhook is a hint: the commit ids and paths in an Event are what the forge claims.
// Slipway fetches and verifies the commit itself; ChangedPaths is nil whenever the payload
// cannot tell the whole story, and callers then compute the paths from Git.
//
// # Generic provider
//
// Anything that can compute an HMAC can trigger Slipway with provider "generic":
//
//	POST /hooks/NAME
//	Content-Type: application/json
//	X-Slipway-Event: push | pull_request | ping
//	X-Slipway-Delivery: <unique id per delivery, reused on retries>   (optional)
//	X-Slipway-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>
//
// push body (a branch, or a tag when ref starts with refs/tags/):
//
//	{"ref": "refs/heads/main", "before": "<sha>", "after": "<sha>",
//	 "message": "head commit message", "changedPaths": ["a/b.yaml"]}
//
// before, message and changedPaths are optional; an absent or null changedPaths means
// "unknown", [] means "no files". after is all zeros for a deletion. For a tag, after is
// the commit the tag points at.
//
// pull_request body:
//
//	{"number": 7, "action": "opened|updated|merged|closed", "title": "...",
//	 "author": "login", "actor": "login", "sourceBranch": "feature",
//	 "targetBranch": "main", "fromFork": false, "headCommit": "<sha>",
//	 "mergeCommit": "<sha, only when merged>"}
//
// Unknown fields are rejected so that a typo is not silently ignored. docs/webhooks.md
// describes the same for users.
package webhook
