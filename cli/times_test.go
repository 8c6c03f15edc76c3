package cli

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgattest/pgattest/catalog"
)

// As-of strings as users type them, against records at chosen times.
func TestAsOfStrings(t *testing.T) {
	c, err := catalog.Open(filepath.Join(t.TempDir(), "c.db"), catalog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	add := func(id string, at time.Time, status string) {
		if _, err := c.Add(&catalog.Record{ID: id, Name: "db", StartedAt: at, Status: status}); err != nil {
			t.Fatal(err)
		}
	}
	add("nov1-0300", time.Date(2026, 11, 1, 3, 0, 0, 0, time.UTC), catalog.StatusVerified)
	add("nov1-2330", time.Date(2026, 11, 1, 23, 30, 0, 0, time.UTC), catalog.StatusVerified)
	add("nov2-0300", time.Date(2026, 11, 2, 3, 0, 0, 0, time.UTC), catalog.StatusFailed)
	add("nov3-0300", time.Date(2026, 11, 3, 3, 0, 0, 0, time.UTC), catalog.StatusVerified)
	tests := []struct{ asOf, want string }{
		{"2026-11-01", "nov1-2330"},                // a bare date is the end of that day, UTC
		{"2026-11-02", "nov1-2330"},                // the failed one of Nov 2 is skipped
		{"2026-11-01T03:00:00Z", "nov1-0300"},      // exactly at the start: included
		{"2026-11-01T02:59:59Z", ""},               // before the first
		{"2026-11-01T05:00:00+02:00", "nov1-0300"}, // 03:00Z
		{"2026-11-02T00:30:00+01:00", "nov1-2330"}, // 23:30Z the day before
		{"2026-11-01T22:00:00-02:00", "nov1-2330"}, // 00:00Z on Nov 2
		{"2026-11-03T03:00:00.5Z", "nov3-0300"},
		{"2026-12-31", "nov3-0300"},
	}
	for _, tt := range tests {
		at, err := parseTime("as-of", tt.asOf, false)
		if err != nil {
			t.Fatalf("parseTime(%q): %v", tt.asOf, err)
		}
		r, err := c.AsOf("db", at)
		switch {
		case tt.want == "" && !errors.Is(err, catalog.ErrNotFound):
			t.Errorf("as of %s: got %v, %v; want none", tt.asOf, r, err)
		case tt.want != "" && (err != nil || r.ID != tt.want):
			t.Errorf("as of %s: got %v, %v; want %s", tt.asOf, r, err, tt.want)
		}
	}
}

func TestParseTimeRejects(t *testing.T) {
	for _, s := range []string{"", "last week", "2026-13-01", "2026-11-31", "01/11/2026", "2026-11-01 03:00", "2026-11-01T03:00:00",
		"9999-12-31", "2262-04-12", "1600-01-01", "1969-12-31T23:59:59Z", "0001-01-01T00:00:00Z"} {
		if _, err := parseTime("as-of", s, false); err == nil || exitCode(err) != exitUsage {
			t.Errorf("parseTime(%q) = %v, want a usage error", s, err)
		}
	}
	from, _ := parseTime("from", "2026-11-01", true)
	if !from.Equal(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("--from of a bare date is %s, want its start", from)
	}
}

// Words and case as people type them.
func TestParseTimeWords(t *testing.T) {
	now := time.Date(2026, 11, 24, 22, 28, 0, 0, time.UTC)
	for _, tt := range []struct {
		s     string
		start bool
		want  time.Time
	}{
		{"now", false, now},
		{"NOW", true, now},
		{"today", false, time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC).Add(-time.Nanosecond)},
		{"Today", true, time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)},
		{"yesterday", false, time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC).Add(-time.Nanosecond)},
		{"yesterday", true, time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)},
		{"2026-11-01t06:00:00z", false, time.Date(2026, 11, 1, 6, 0, 0, 0, time.UTC)},
		{"2261-12-31", false, time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC).Add(-time.Nanosecond)},
		{"1970-01-01", true, time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		got, err := parseTimeAt("as-of", tt.s, tt.start, now)
		if err != nil || !got.Equal(tt.want) {
			t.Errorf("parseTime(%q, start %v) = %s, %v; want %s", tt.s, tt.start, got, err, tt.want)
		}
	}
}

func FuzzParseTime(f *testing.F) {
	for _, s := range []string{"2026-11-01", "2026-11-01T05:00:00+02:00", "2026-11-01T03:00:00.123456789Z", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		now := time.Date(2026, 11, 24, 22, 28, 0, 0, time.UTC)
		a, errA := parseTimeAt("as-of", s, false, now)
		b, errB := parseTimeAt("from", s, true, now)
		if (errA == nil) != (errB == nil) && !strings.Contains(s, "70-01-01") && !strings.Contains(s, "61-12-31") {
			t.Fatalf("%q parses as an end but not as a start, or the other way", s)
		}
		if errA == nil && (a.Before(firstTime) || a.After(lastTime)) {
			t.Fatalf("%q: %s is out of the catalog's range", s, a)
		}
		if errA == nil && (a.Before(b) || a.Sub(b) >= 24*time.Hour || a.Location() != time.UTC) {
			t.Fatalf("%q: end %s, start %s", s, a, b)
		}
	})
}
