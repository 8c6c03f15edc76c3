package catalog

import (
	"flag"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/quick"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/retention")

// history is a fixed, varied history of two names: backups most nights at
// 02:00 for two years, extra runs some days (several an hour apart, two at
// the very same instant), failed and unproven runs here and there, a pruned
// one, and a week without any.
func history() []*Record {
	var out []*Record
	add := func(name string, t time.Time, status string, n int) {
		r := &Record{ID: fmt.Sprintf("%s-%s-%02d", t.Format(StampLayout), name, n), Name: name, Status: status, StartedAt: t}
		out = append(out, r)
	}
	start := time.Date(2024, 11, 1, 2, 0, 0, 0, time.UTC)
	for d := 0; d < 750; d++ {
		day := start.AddDate(0, 0, d)
		if d >= 400 && d < 407 {
			continue // a week with no backups at all
		}
		status := StatusVerified
		switch {
		case d%37 == 5:
			status = StatusFailed
		case d%53 == 7:
			status = StatusUnverified
		case d == 100:
			status = StatusPruned
		}
		add("app", day, status, 0)
		if d%10 == 0 {
			add("app", day.Add(6*time.Hour), StatusVerified, 1)
			add("app", day.Add(6*time.Hour+30*time.Minute), StatusVerified, 2)
		}
		if d == 300 {
			add("app", day.Add(time.Hour), StatusVerified, 3)
			add("app", day.Add(time.Hour), StatusVerified, 4) // the same instant as the one before
		}
		if d%7 == 0 {
			add("billing", day.Add(90*time.Minute), StatusVerified, 0)
		}
	}
	last := start.AddDate(0, 0, 750)
	add("app", last.Add(time.Hour), StatusFailed, 0)       // newer than the newest proven: kept
	add("app", last.Add(2*time.Hour), StatusUnverified, 0) // likewise
	add("fresh", last, StatusUnverified, 0)                // a name with no proven backup
	return out
}

func TestApplyPolicyGolden(t *testing.T) {
	cases := []struct {
		name string
		p    Policy
	}{
		{"last-3", Policy{Last: 3}},
		{"hourly-10", Policy{Hourly: 10}},
		{"daily-7", Policy{Daily: 7}},
		{"weekly-4", Policy{Weekly: 4}},
		{"monthly-12", Policy{Monthly: 12}},
		{"yearly-10", Policy{Yearly: 10}},
		{"daily-7-weekly-4-monthly-6", Policy{Daily: 7, Weekly: 4, Monthly: 6}},
		{"within-10d", Policy{Within: Span{Days: 10}}},
		{"within-1y-yearly-all", Policy{Within: Span{Years: 1}, Yearly: -1}},
		{"last-2-daily-3-within-36h", Policy{Last: 2, Daily: 3, Within: Span{Hours: 36}}},
		{"monthly-all", Policy{Monthly: -1}},
		{"daily-800", Policy{Daily: 800}}, // more days than backups: the oldest is kept too
	}
	in := history()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			keep, remove := ApplyPolicy(in, tc.p)
			var b strings.Builder
			fmt.Fprintf(&b, "# %s: %d kept, %d removed of %d\n", tc.p, len(keep), len(remove), len(in))
			for _, k := range keep {
				fmt.Fprintf(&b, "keep   %s %-10s %s\n", k.Record.ID, k.Record.Status, strings.Join(k.Reasons, ", "))
			}
			// The removed are the rest (the property test checks that keep
			// and remove partition the input); only their statuses are listed.
			removed := map[string]int{}
			for _, r := range remove {
				removed[r.Status]++
			}
			fmt.Fprintf(&b, "removed by status: %v\n", removed)
			golden := filepath.Join("testdata", "retention", tc.name+".golden")
			if *update {
				os.MkdirAll(filepath.Dir(golden), 0o755)
				if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if b.String() != string(want) {
				t.Errorf("decision differs from %s (run with -update after checking the diff):\n%s", golden, firstDiff(string(want), b.String()))
			}
		})
	}
}

func firstDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < max(len(w), len(g)); i++ {
		var a, b string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			b = g[i]
		}
		if a != b {
			return fmt.Sprintf("line %d:\n  want %q\n  got  %q", i+1, a, b)
		}
	}
	return ""
}

// Hand-checked cases in restic's style: a few backups, the policy, and
// exactly which are kept and why.
func TestApplyPolicyCases(t *testing.T) {
	at := func(s string) time.Time {
		t, err := time.Parse("2006-01-02 15:04", s)
		if err != nil {
			panic(err)
		}
		return t
	}
	mk := func(spec ...string) []*Record {
		var out []*Record
		for i, s := range spec {
			f := strings.Fields(s) // "day hh:mm [status]"
			r := &Record{ID: fmt.Sprintf("b%02d", i), Name: "app", Status: StatusVerified, StartedAt: at("2026-11-" + f[0] + " " + f[1])}
			if len(f) > 2 {
				r.Status = f[2]
			}
			out = append(out, r)
		}
		return out
	}
	cases := []struct {
		name string
		recs []*Record
		p    Policy
		want map[string]string // id → reasons of the kept; the rest removed
	}{{
		name: "daily keeps the newest of each day",
		recs: mk("20 02:00", "20 14:00", "21 02:00", "22 02:00"),
		p:    Policy{Daily: 2},
		want: map[string]string{"b03": "daily", "b02": "daily"},
	}, {
		name: "a failed backup does not fill a day",
		recs: mk("20 02:00", "21 02:00", "21 14:00 failed", "22 02:00"),
		p:    Policy{Daily: 2},
		want: map[string]string{"b03": "daily", "b01": "daily"},
	}, {
		name: "unproven newer than the newest proven is kept",
		recs: mk("20 02:00", "21 02:00", "22 02:00 unverified", "22 03:00 failed"),
		p:    Policy{Last: 1},
		want: map[string]string{"b01": "last", "b02": "newer than the newest proven", "b03": "newer than the newest proven"},
	}, {
		name: "within counts from the newest proven backup, not from now",
		recs: mk("01 02:00", "10 02:00", "11 01:00", "11 02:00"),
		p:    Policy{Within: Span{Hours: 24}},
		want: map[string]string{"b03": "within 24h", "b02": "within 24h"},
	}, {
		name: "counts left over keep the oldest",
		recs: mk("20 02:00", "20 03:00"),
		p:    Policy{Daily: 5},
		want: map[string]string{"b01": "daily", "b00": "oldest daily"},
	}, {
		name: "only failed backups: nothing proven, all kept",
		recs: mk("20 02:00 failed", "21 02:00 failed"),
		p:    Policy{Last: 1},
		want: map[string]string{"b00": "no proven backup of this name yet", "b01": "no proven backup of this name yet"},
	}, {
		name: "the newest proven is kept even when no rule would",
		recs: mk("01 02:00", "02 02:00"),
		p:    Policy{Within: Span{}, Last: 0, Hourly: 0, Daily: 0, Weekly: 0, Monthly: 0, Yearly: 0},
		want: map[string]string{"b01": "newest proven"},
	}, {
		name: "pruned records are not kept",
		recs: mk("01 02:00 pruned", "02 02:00"),
		p:    Policy{Last: 5},
		want: map[string]string{"b01": "last"},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			keep, remove := ApplyPolicy(tc.recs, tc.p)
			got := map[string]string{}
			for _, k := range keep {
				got[k.Record.ID] = strings.Join(k.Reasons, ", ")
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("kept %v, want %v", got, tc.want)
			}
			if len(keep)+len(remove) != len(tc.recs) {
				t.Errorf("%d kept + %d removed != %d", len(keep), len(remove), len(tc.recs))
			}
		})
	}
}

// The properties hold for any history and any policy: every record is either
// kept or removed, never both, never lost; the newest proven backup of every
// name is kept; a removed record never had a reason to stay.
func TestApplyPolicyProperties(t *testing.T) {
	statuses := []string{StatusVerified, StatusVerified, StatusVerified, StatusFailed, StatusUnverified, StatusPruned}
	prop := func(seed int64) bool {
		rng := rand.New(rand.NewSource(seed))
		var recs []*Record
		base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		for i, n := 0, rng.Intn(80); i < n; i++ {
			at := base.Add(time.Duration(rng.Int63n(int64(3 * 365 * 24 * time.Hour))))
			if i > 0 && rng.Intn(10) == 0 {
				at = recs[rng.Intn(len(recs))].StartedAt // equal timestamps happen
			}
			recs = append(recs, &Record{ID: fmt.Sprintf("r%03d", i), Name: []string{"a", "b", "c"}[rng.Intn(3)],
				Status: statuses[rng.Intn(len(statuses))], StartedAt: at})
		}
		count := func() int { return []int{-1, 0, 0, 1, 2, 5, 30}[rng.Intn(7)] }
		p := Policy{Last: count(), Hourly: count(), Daily: count(), Weekly: count(), Monthly: count(), Yearly: count()}
		if rng.Intn(2) == 0 {
			p.Within = Span{Days: rng.Intn(100), Hours: rng.Intn(48)}
		}
		keep, remove := ApplyPolicy(recs, p)
		seen := map[*Record]int{}
		for _, k := range keep {
			seen[k.Record]++
			if len(k.Reasons) == 0 || k.Record.Status == StatusPruned {
				t.Logf("seed %d: %s kept without a reason or pruned", seed, k.Record.ID)
				return false
			}
		}
		for _, r := range remove {
			seen[r]++
		}
		if len(seen) != len(recs) || len(keep)+len(remove) != len(recs) {
			t.Logf("seed %d: %d kept + %d removed, %d distinct, of %d", seed, len(keep), len(remove), len(seen), len(recs))
			return false
		}
		newest := map[string]*Record{}
		for _, r := range recs {
			if seen[r] != 1 {
				t.Logf("seed %d: %s placed %d times", seed, r.ID, seen[r])
				return false
			}
			if n := newest[r.Name]; r.Status == StatusVerified && (n == nil || r.StartedAt.After(n.StartedAt) || r.StartedAt.Equal(n.StartedAt) && r.ID > n.ID) {
				newest[r.Name] = r
			}
		}
		kept := map[*Record]bool{}
		for _, k := range keep {
			kept[k.Record] = true
		}
		for name, r := range newest {
			if !kept[r] {
				t.Logf("seed %d: newest proven backup of %s (%s) removed under %s", seed, name, r.ID, p)
				return false
			}
		}
		return true
	}
	if err := quick.Check(prop, &quick.Config{MaxCount: 2000}); err != nil {
		t.Error(err)
	}
}

func TestParseSpan(t *testing.T) {
	for in, want := range map[string]Span{
		"30d": {Days: 30}, "1y6m": {Years: 1, Months: 6}, "36h": {Hours: 36}, "2y3m4d5h": {2, 3, 4, 5},
	} {
		got, err := ParseSpan(in)
		if err != nil || got != want {
			t.Errorf("ParseSpan(%q) = %+v, %v; want %+v", in, got, err, want)
		}
		if got.String() != in {
			t.Errorf("%+v prints as %q, want %q", got, got.String(), in)
		}
	}
	for _, bad := range []string{"", "30", "d", "1d1y", "7w", "-3d", "1.5d", "99999999999d"} {
		if _, err := ParseSpan(bad); err == nil {
			t.Errorf("ParseSpan(%q) accepted", bad)
		}
	}
}
