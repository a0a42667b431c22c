// Package server is the daemon's HTTP front: forge webhooks at POST /hooks/NAME and a small
// token-protected API for people (trigger, re-run, cancel, look at a run). It decides who
// may ask and what the answer is; what a request does is up to the trigger hub behind it.
package server
