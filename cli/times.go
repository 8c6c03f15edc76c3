package cli

import (
	"fmt"
	"strings"
	"time"
)

const timeHint = "use RFC 3339 (2026-11-01T06:00:00Z, 2026-11-01T08:00:00+02:00), a bare date (2026-11-01, UTC), or now, today, yesterday"

// The times the catalog can hold: it keeps nanoseconds since 1970 in 64
// bits, which end in April 2262.
var (
	firstTime = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	lastTime  = time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC).Add(-time.Nanosecond)
)

// parseTime reads a time flag: RFC 3339 (in any case), a bare date meaning
// the end of that day in UTC (startOfDay: its start, as --from and --since
// take it), or now, today, yesterday. A time the catalog cannot hold
// (before 1970, after 2261) is a usage error.
func parseTime(flag, s string, startOfDay bool) (time.Time, error) {
	return parseTimeAt(flag, s, startOfDay, time.Now())
}

func parseTimeAt(flag, s string, startOfDay bool, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	day := func(d time.Time) time.Time {
		d = time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, time.UTC)
		if startOfDay {
			return d
		}
		return d.Add(24*time.Hour - time.Nanosecond)
	}
	var t time.Time
	switch u := strings.ToUpper(s); {
	case u == "NOW":
		t = now.UTC()
	case u == "TODAY":
		t = day(now.UTC())
	case u == "YESTERDAY":
		t = day(now.UTC().AddDate(0, 0, -1))
	default:
		var err error
		if t, err = time.Parse(time.RFC3339Nano, u); err != nil {
			d, derr := time.Parse(time.DateOnly, u)
			if derr != nil {
				return time.Time{}, usageErrorf(timeHint, "--%s %q is not a time", flag, s)
			}
			t = day(d)
		}
		t = t.UTC()
	}
	switch {
	case t.Before(firstTime):
		return time.Time{}, usageErrorf("the catalog holds times from 1970 on; no backup is older", "--%s %s is before 1970", flag, s)
	case t.After(lastTime):
		return time.Time{}, usageErrorf("the catalog holds times up to 2261; for the newest backup use now", "--%s %s is after 2261", flag, s)
	}
	return t, nil
}

// formatTime prints a time for people: UTC, to the second.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

// formatDuration rounds a duration for people.
func formatDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	return d.Round(time.Second).String()
}

// formatBytes prints a size in binary units.
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
