// Package store is Slipway's persistence: pipelines, runs and their BUILD_ID counters,
// tasks, logs and deploy revisions.
//
// The Store interface is what the rest of Slipway sees; it carries no SQL types, so a
// PostgreSQL implementation can sit behind it later. SQLite (modernc.org/sqlite, no cgo) is
// the embedded default: one file, WAL mode, one writer connection per handle and
// BEGIN IMMEDIATE transactions, so goroutines queue for the write lock instead of failing
// with SQLITE_BUSY, and several processes may share the file.
//
// BUILD_IDs come from a per-pipeline counter incremented in the same transaction that
// inserts the run, so a number is handed out exactly once: never reused after a crash, a
// deleted run or by a second process on the same database.
package store
