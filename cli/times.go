package cli

import (
	"fmt"
	"strings"
	"time"
)

const timeHint = "use RFC 3339 (2026-11-01T06:00:00Z, 2026-11-01T08:00:00+02:00) or a bare date (2026-11-01, UTC)"

// parseTime reads a time flag: RFC 3339, or a bare date meaning the end of
// that day in UTC (startOfDay: its start, as --from and --since take it).
func parseTime(flag, s string, startOfDay bool) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	if d, err := time.Parse(time.DateOnly, s); err == nil {
		if startOfDay {
			return d, nil
		}
		return d.Add(24*time.Hour - time.Nanosecond), nil
	}
	return time.Time{}, usageErrorf(timeHint, "--%s %q is not a time", flag, s)
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
