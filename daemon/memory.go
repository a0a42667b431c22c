package daemon

import (
	"runtime/debug"

	"github.com/sirupsen/logrus"
)

// memoryLimit is the soft limit the Go runtime keeps the daemon's memory under: slipway.yaml's
// memoryLimit, unless the GOMEMLIMIT environment variable is set (goMemLimit, "" when it is
// not), which the runtime applied at start and which wins. It returns the limit in force.
func memoryLimit(configured int64, goMemLimit string, log *logrus.Entry) int64 {
	if goMemLimit != "" {
		limit := debug.SetMemoryLimit(-1) // -1 reads without changing
		log.WithFields(logrus.Fields{"GOMEMLIMIT": goMemLimit, "bytes": limit}).Info("memory limit from the environment; memoryLimit ignored")
		return limit
	}
	debug.SetMemoryLimit(configured)
	log.WithField("bytes", configured).Debug("memory limit")
	return configured
}
