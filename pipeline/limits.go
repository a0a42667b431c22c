package pipeline

import (
	"fmt"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/slipwayhq/slipway/internal/repofs"
)

// Limits bound what one repository's files may cost Slipway. Zero fields take the defaults;
// slipway.yaml's repositories[].limits raises or lowers them per repository.
type Limits struct {
	PipelineFileSize int64         // bytes of .pipeline.yaml, checked before it is parsed
	PipelinesPerFile int           // pipelines (YAML documents) in one pipeline file
	ManifestFileSize int64         // bytes of one file rendered: manifests, values files, chart files substituted
	ManifestLineSize int64         // bytes of one line of such a file
	MinCronInterval  time.Duration // shortest time between two ticks of a schedule
}

// The defaults of Limits.
const (
	DefaultPipelineFileSize = 1 << 20
	DefaultPipelinesPerFile = 100
	DefaultManifestFileSize = 8 << 20
	DefaultManifestLineSize = 1 << 20
	DefaultMinCronInterval  = time.Minute
)

// WithDefaults fills the fields left zero.
func (l Limits) WithDefaults() Limits {
	if l.PipelineFileSize <= 0 {
		l.PipelineFileSize = DefaultPipelineFileSize
	}
	if l.PipelinesPerFile <= 0 {
		l.PipelinesPerFile = DefaultPipelinesPerFile
	}
	if l.ManifestFileSize <= 0 {
		l.ManifestFileSize = DefaultManifestFileSize
	}
	if l.ManifestLineSize <= 0 {
		l.ManifestLineSize = DefaultManifestLineSize
	}
	if l.MinCronInterval <= 0 {
		l.MinCronInterval = DefaultMinCronInterval
	}
	return l
}

// Text is the limits of a file Slipway renders, with the settings that raise them.
func (l Limits) Text() repofs.TextLimits {
	l = l.WithDefaults()
	return repofs.TextLimits{
		File: repofs.Limit{Max: l.ManifestFileSize, Setting: "manifestFileSize"},
		Line: repofs.Limit{Max: l.ManifestLineSize, Setting: "manifestLineSize"},
	}
}

// pipelineFile is the limit of a pipeline file.
func (l Limits) pipelineFile() repofs.Limit {
	return repofs.Limit{Max: l.WithDefaults().PipelineFileSize, Setting: "pipelineFileSize"}
}

// minGap is the shortest time between two ticks of s (daylight saving shifts aside): exact
// for @every; for five-field expressions exact below a day, and 24h when every two ticks are
// a day or more apart, which is as far as limits.minCronInterval goes.
func minGap(s cron.Schedule) time.Duration {
	switch s := s.(type) {
	case cron.ConstantDelaySchedule:
		return s.Delay
	case *cron.SpecSchedule:
		return specGap(s)
	}
	return 0
}

// starBit marks a field written as * in a SpecSchedule (robfig/cron's convention).
const starBit = 1 << 63

func specGap(s *cron.SpecSchedule) time.Duration {
	var ticks []int // minutes of the day, ascending
	for h := 0; h < 24; h++ {
		for m := 0; m < 60; m++ {
			if s.Hour&(1<<uint(h)) != 0 && s.Minute&(1<<uint(m)) != 0 {
				ticks = append(ticks, h*60+m)
			}
		}
	}
	if len(ticks) == 0 {
		return 0
	}
	gap := 24 * 60
	for i := 1; i < len(ticks); i++ {
		gap = min(gap, ticks[i]-ticks[i-1])
	}
	// Across midnight: only when two days in a row have ticks. The Gregorian calendar
	// repeats, weekdays included, every 400 years.
	if across := 24*60 - ticks[len(ticks)-1] + ticks[0]; across < gap {
		day := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
		prev := dayMatches(s, day)
		for i := 0; i < 146097; i++ {
			day = day.AddDate(0, 0, 1)
			cur := dayMatches(s, day)
			if prev && cur {
				gap = across
				break
			}
			prev = cur
		}
	}
	return time.Duration(gap) * time.Minute
}

// dayMatches is robfig/cron's rule: a restricted day-of-month and day-of-week match either.
func dayMatches(s *cron.SpecSchedule, t time.Time) bool {
	if s.Month&(1<<uint(t.Month())) == 0 {
		return false
	}
	dom := s.Dom&(1<<uint(t.Day())) != 0
	dow := s.Dow&(1<<uint(t.Weekday())) != 0
	if s.Dom&starBit != 0 || s.Dow&starBit != 0 {
		return dom && dow
	}
	return dom || dow
}

// tooOften explains a schedule that ticks more often than the limit, or returns "".
func (l Limits) tooOften(spec string, s cron.Schedule) string {
	lim := l.WithDefaults().MinCronInterval
	gap := minGap(s)
	if gap >= lim {
		return ""
	}
	return fmt.Sprintf("cron %q ticks every %s, more often than the limit of once per %s (the repository's limits.minCronInterval in slipway.yaml lowers it)", spec, gap, lim)
}
