package catalog

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Policy is a retention policy with restic's semantics (restic forget): each
// count keeps the newest backup of that many distinct hours, days, ISO
// weeks, months or years (Last: that many backups), -1 meaning all; Within
// keeps every backup that started within that span of the newest one. A
// backup kept by any rule is kept. Buckets are in UTC.
//
// Unlike restic, only proven backups (status verified) fill a bucket: a
// failed or unproven backup never uses up a "daily" slot that a proven one
// should have had.
type Policy struct {
	Last, Hourly, Daily, Weekly, Monthly, Yearly int
	Within                                       Span
}

// Empty reports whether the policy keeps nothing by any rule.
func (p Policy) Empty() bool { return p == Policy{} }

func (p Policy) String() string {
	var parts []string
	for _, r := range []struct {
		n    int
		what string
	}{{p.Last, "last"}, {p.Hourly, "hourly"}, {p.Daily, "daily"}, {p.Weekly, "weekly"}, {p.Monthly, "monthly"}, {p.Yearly, "yearly"}} {
		switch {
		case r.n == -1:
			parts = append(parts, "all "+r.what)
		case r.n > 0:
			parts = append(parts, fmt.Sprintf("%d %s", r.n, r.what))
		}
	}
	if !p.Within.Zero() {
		parts = append(parts, "all within "+p.Within.String()+" of the newest")
	}
	if len(parts) == 0 {
		return "keep nothing"
	}
	return "keep " + strings.Join(parts, ", ")
}

// Span is a calendar duration: years, months, days and hours, as restic's
// --keep-within takes it ("1y6m", "30d", "36h").
type Span struct{ Years, Months, Days, Hours int }

// Zero reports whether s is no time at all.
func (s Span) Zero() bool { return s == Span{} }

func (s Span) String() string {
	var b strings.Builder
	for _, u := range []struct {
		n    int
		unit string
	}{{s.Years, "y"}, {s.Months, "m"}, {s.Days, "d"}, {s.Hours, "h"}} {
		if u.n != 0 {
			fmt.Fprintf(&b, "%d%s", u.n, u.unit)
		}
	}
	if b.Len() == 0 {
		return "0h"
	}
	return b.String()
}

// before returns t minus the span.
func (s Span) before(t time.Time) time.Time {
	return t.AddDate(-s.Years, -s.Months, -s.Days).Add(-time.Duration(s.Hours) * time.Hour)
}

var spanRE = regexp.MustCompile(`^(?:(\d+)y)?(?:(\d+)m)?(?:(\d+)d)?(?:(\d+)h)?$`)

// ParseSpan reads a span such as "1y6m", "30d" or "36h": numbers with the
// units y (years), m (months), d (days) and h (hours), in that order.
func ParseSpan(s string) (Span, error) {
	m := spanRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil || strings.TrimSpace(s) == "" {
		return Span{}, fmt.Errorf("%q is not a span: use numbers with y, m, d or h, in that order, such as 30d, 6m or 1y6m", s)
	}
	var n [4]int
	for i := range n {
		if m[i+1] != "" {
			v, err := strconv.Atoi(m[i+1])
			if err != nil || v > 100000 {
				return Span{}, fmt.Errorf("%q is too long a span", s)
			}
			n[i] = v
		}
	}
	return Span{Years: n[0], Months: n[1], Days: n[2], Hours: n[3]}, nil
}

// Kept is a backup the policy keeps, with every reason it does.
type Kept struct {
	Record  *Record
	Reasons []string
}

// ApplyPolicy decides, for each name separately, which of recs the policy
// keeps and which it removes. It is a pure function: it reads nothing but its
// arguments and changes nothing. Every record lands in exactly one of keep
// and remove, both ordered by name and then newest first.
//
// Proven backups (status verified) are judged by the policy's rules, newest
// first, as restic does. The newest proven backup of each name is always
// kept. A backup that is not proven is kept only while it is newer than every
// proven backup of its name (it may be the only copy of recent data, waiting
// for a proof), or when its name has no proven backup at all; otherwise it is
// removed. Records already pruned land in remove: there is nothing to keep.
func ApplyPolicy(recs []*Record, p Policy) (keep []Kept, remove []*Record) {
	byName := map[string][]*Record{}
	var names []string
	for _, r := range recs {
		if byName[r.Name] == nil {
			names = append(names, r.Name)
		}
		byName[r.Name] = append(byName[r.Name], r)
	}
	sort.Strings(names)
	for _, name := range names {
		k, rm := applyOne(byName[name], p)
		keep = append(keep, k...)
		remove = append(remove, rm...)
	}
	return keep, remove
}

// bucketRule is one counted rule: how to name a backup's bucket, how many
// buckets are left (-1: all), and the bucket last kept.
type bucketRule struct {
	left   int
	bucket func(t time.Time, nr int) int
	last   int
	reason string
}

func applyOne(list []*Record, p Policy) (keep []Kept, remove []*Record) {
	list = append([]*Record(nil), list...)
	sort.SliceStable(list, func(i, j int) bool {
		a, b := list[i], list[j]
		if !a.StartedAt.Equal(b.StartedAt) {
			return a.StartedAt.After(b.StartedAt)
		}
		return a.ID > b.ID
	})
	var proven []*Record
	for _, r := range list {
		if r.Status == StatusVerified {
			proven = append(proven, r)
		}
	}
	reasons := map[*Record][]string{}
	if len(proven) > 0 {
		newest := proven[0]
		rules := []bucketRule{
			{p.Last, func(_ time.Time, nr int) int { return nr }, -1, "last"},
			{p.Hourly, func(t time.Time, _ int) int { return t.Year()*1000000 + int(t.Month())*10000 + t.Day()*100 + t.Hour() }, -1, "hourly"},
			{p.Daily, func(t time.Time, _ int) int { return t.Year()*10000 + int(t.Month())*100 + t.Day() }, -1, "daily"},
			{p.Weekly, func(t time.Time, _ int) int { y, w := t.ISOWeek(); return y*100 + w }, -1, "weekly"},
			{p.Monthly, func(t time.Time, _ int) int { return t.Year()*100 + int(t.Month()) }, -1, "monthly"},
			{p.Yearly, func(t time.Time, _ int) int { return t.Year() }, -1, "yearly"},
		}
		var cutoff time.Time
		if !p.Within.Zero() {
			cutoff = p.Within.before(newest.StartedAt)
		}
		for nr, r := range proven {
			t := r.StartedAt.UTC()
			var why []string
			if !cutoff.IsZero() && t.After(cutoff) {
				why = append(why, "within "+p.Within.String())
			}
			for i := range rules {
				b := &rules[i]
				if b.left == 0 {
					continue
				}
				v := b.bucket(t, nr)
				oldest := nr == len(proven)-1
				if v == b.last && !oldest {
					continue
				}
				reason := b.reason
				if v == b.last { // the oldest backup, kept while counts are left (restic does the same)
					reason = "oldest " + reason
				}
				b.last = v
				if b.left > 0 {
					b.left--
				}
				why = append(why, reason)
			}
			if r == newest && len(why) == 0 {
				why = append(why, "newest proven")
			}
			if len(why) > 0 {
				reasons[r] = why
			}
		}
	}
	for _, r := range list {
		switch {
		case r.Status == StatusVerified:
			// judged above
		case r.Status == StatusPruned:
		case len(proven) == 0:
			reasons[r] = []string{"no proven backup of this name yet"}
		case r.StartedAt.After(proven[0].StartedAt):
			reasons[r] = []string{"newer than the newest proven"}
		}
		if why, ok := reasons[r]; ok {
			keep = append(keep, Kept{Record: r, Reasons: why})
		} else {
			remove = append(remove, r)
		}
	}
	return keep, remove
}
