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

// gcPercent sets the garbage collector's target to slipway.yaml's gcPercent, unless the
// GOGC environment variable is set (goGC, "" when it is not), which the runtime applied at
// start and which wins.
func gcPercent(configured int, goGC string, log *logrus.Entry) {
	if goGC != "" {
		log.WithField("GOGC", goGC).Info("collector's target from the environment; gcPercent ignored")
		return
	}
	debug.SetGCPercent(configured)
	log.WithField("percent", configured).Debug("collector's target")
}
