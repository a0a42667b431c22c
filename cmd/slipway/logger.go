package main

import (
	"context"

	"github.com/sirupsen/logrus"
)

type loggerKey struct{}

func withLogger(ctx context.Context, l *logrus.Logger) context.Context {
	return context.WithValue(ctx, loggerKey{}, logrus.NewEntry(l))
}

// loggerFrom returns the logger set up from the global flags.
func loggerFrom(ctx context.Context) *logrus.Entry {
	if l, ok := ctx.Value(loggerKey{}).(*logrus.Entry); ok {
		return l
	}
	return logrus.NewEntry(logrus.StandardLogger())
}
