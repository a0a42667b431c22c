// Package store is Slipway's persistence: pipelines, runs and their BUILD_ID counters,
// tasks, logs and deploy revisions.
//
// The Store interface is what the rest of Slipway sees; it carries no SQL types. DB
// implements it once over database/sql for two engines, with a dialect for what differs.
// SQLite (modernc.org/sqlite, no cgo) is the embedded default: one file, WAL mode, one
// writer connection per handle and BEGIN IMMEDIATE transactions, so goroutines queue for
// the write lock instead of failing with SQLITE_BUSY, and several processes may share the
// file. PostgreSQL (pgx) serves several replicas: writes are SERIALIZABLE transactions,
// run again when the server aborts one for a conflict.
//
// BUILD_IDs come from a per-pipeline counter incremented in the same transaction that
// inserts the run, so a number is handed out exactly once: never reused after a crash, a
// deleted run or by a second process on the same database.
package store
