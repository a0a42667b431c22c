// Package daemon wires Slipway's parts from slipway.yaml: the store, Git mirrors, image
// builder and runner every verb uses, and Serve, the long-running daemon (watchers,
// schedules, HTTP API, drift watcher). It lives outside package main so tests can run the
// daemon in-process with an injected clock.
package daemon
