package repofs

import (
	"errors"
	"fmt"
)

// Limit is a size limit and the slipway.yaml setting that raises it, so a refusal can say
// how to get past it.
type Limit struct {
	Max     int64  // bytes; 0 means no limit
	Setting string // the field under repositories[].limits, e.g. manifestFileSize
}

// ErrTooLarge is what a TooLargeError matches with errors.Is.
var ErrTooLarge = errors.New("over the size limit")

// TooLargeError says a file, or one of its lines, is over a limit.
type TooLargeError struct {
	File  string
	Line  int   // 1-based; 0 when the whole file is too large
	Size  int64 // at least this many bytes
	Limit Limit
}

func (e *TooLargeError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Reason())
	}
	return fmt.Sprintf("%s: %s", e.File, e.Reason())
}

// Reason is the error without the file and line, for reports that place it themselves.
func (e *TooLargeError) Reason() string {
	raise := ""
	if e.Limit.Setting != "" {
		raise = fmt.Sprintf(" (the repository's limits.%s in slipway.yaml raises it)", e.Limit.Setting)
	}
	if e.Line > 0 {
		return fmt.Sprintf("line is longer than the limit of %s%s", FormatSize(e.Limit.Max), raise)
	}
	return fmt.Sprintf("file is larger than the limit of %s%s", FormatSize(e.Limit.Max), raise)
}

func (e *TooLargeError) Is(target error) bool { return target == ErrTooLarge }

// FormatSize writes a byte count the way limits are written: 1 MiB, 512 KiB, 100 bytes.
func FormatSize(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
