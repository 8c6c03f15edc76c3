package cli

import (
	"encoding/csv"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pgattest/pgattest/catalog"
)

// A month with a gap and a failed proof: October 2026 for "shop", nightly
// at 02:00, except nothing on the 14th and 15th and a failed proof on the
// 20th; "billing" every night with an extra failed run on the 3rd.
func TestAuditMonthWithGapAndFailedProof(t *testing.T) {
	w := newWorkdir(t)
	oct := time.Date(2026, 10, 1, 2, 0, 0, 0, time.UTC)
	recs := seed(t, w, append(nightly("shop", oct, 31, func(d int) string {
		switch d + 1 {
		case 14, 15:
			return ""
		case 20:
			return catalog.StatusFailed
		}
		return catalog.StatusVerified
	}), append(nightly("billing", oct, 31, func(int) string { return catalog.StatusVerified }),
		seeded{"billing", oct.AddDate(0, 0, 2).Add(time.Hour), catalog.StatusFailed})...)...)
	// Prune one of shop's backups: its day stays covered.
	code, _, errOut := run(t, "--catalog", w.catalog, "prune", "--name", "shop", "--keep-within", "3d", "--keep-daily", "20")
	if code != 0 {
		t.Fatalf("prune exit %d\n%s", code, errOut)
	}

	audit := func(t *testing.T, args ...string) (int, string, string) {
		t.Helper()
		return run(t, append([]string{"--catalog", w.catalog, "audit", "--from", "2026-10-01", "--to", "2026-10-31"}, args...)...)
	}
	t.Run("json", func(t *testing.T) {
		code, out, errOut := audit(t, "--format", "json")
		if code != 3 || !strings.Contains(errOut, "shop has 3 of 31 days without a proven backup") {
			t.Fatalf("exit %d, want 3 naming the 3 days\n%s", code, errOut)
		}
		var rep catalog.AuditReport
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, out)
		}
		if rep.OK || rep.DaysInRange != 62 || rep.DaysCovered != 59 || !rep.Chain.OK || len(rep.Names) != 2 {
			t.Fatalf("report: ok=%v %d/%d chain=%v names=%d", rep.OK, rep.DaysCovered, rep.DaysInRange, rep.Chain.OK, len(rep.Names))
		}
		billing, shop := rep.Names[0], rep.Names[1]
		if billing.DaysCovered != 31 || billing.ProofsBad != 1 || billing.Backups != 32 || len(billing.Uncovered) != 0 {
			t.Errorf("billing: %d/%d covered, %d failed proofs, %d backups", billing.DaysCovered, billing.DaysInRange, billing.ProofsBad, billing.Backups)
		}
		if got := strings.Join(shop.Uncovered, " "); got != "2026-10-14 2026-10-15 2026-10-20" {
			t.Errorf("shop uncovered = %q", got)
		}
		if shop.DaysCovered != 28 || shop.Failed != 1 || shop.ProofsBad != 1 || len(shop.Failures) != 1 || shop.Failures[0].BackupID != recs[17].ID {
			t.Errorf("shop: %d covered, %d failed, failures %+v", shop.DaysCovered, shop.Failed, shop.Failures)
		}
		// 10-13 02:00 → 10-16 02:00 is the longest stretch without a proven backup.
		g := shop.LongestGap
		if g.Hours != 72 || !g.From.Equal(time.Date(2026, 10, 13, 2, 0, 0, 0, time.UTC)) {
			t.Errorf("longest gap = %+v, want 72h from 10-13 02:00", g)
		}
		if shop.Pruned == 0 {
			t.Fatal("nothing of shop was pruned; the test needs a pruned day")
		}
		for _, d := range shop.Days {
			if d.Status == catalog.StatusPruned && !d.Covered {
				t.Errorf("%s: a pruned backup whose proof passed no longer covers its day", d.Date)
			}
			if d.Covered && (len(d.BLAKE3) != 64 || d.BackupID == "") {
				t.Errorf("%s: covered without id and digest: %+v", d.Date, d)
			}
		}
	})
	t.Run("text", func(t *testing.T) {
		code, out, _ := audit(t)
		for _, want := range []string{"FAILED: 59 of 62 database-days (2 databases) covered", "not covered  2026-10-14, 2026-10-15, 2026-10-20",
			"2026-10  +++++++++++++..++++x+++++++++++", "failed proof of " + recs[17].ID, "chain    intact"} {
			if !strings.Contains(out, want) {
				t.Errorf("text report lacks %q", want)
			}
		}
		if code != 3 {
			t.Errorf("exit %d, want 3", code)
		}
		if t.Failed() {
			t.Log(out)
		}
	})
	t.Run("csv", func(t *testing.T) {
		code, out, _ := audit(t, "--format", "csv")
		rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
		if code != 3 || err != nil || len(rows) != 1+62 {
			t.Fatalf("exit %d, %d rows, %v", code, len(rows), err)
		}
		uncovered := 0
		for _, r := range rows[1:] {
			if r[2] == "false" {
				uncovered++
			}
		}
		if rows[0][0] != "date" || uncovered != 3 {
			t.Errorf("header %q, %d uncovered rows", rows[0], uncovered)
		}
	})
	t.Run("markdown", func(t *testing.T) {
		_, out, _ := audit(t, "--format", "markdown", "--name", "shop")
		for _, want := range []string{"# Backup audit, 2026-10-01 to 2026-10-31", "**FAILED** — 28 of 31 days",
			"| shop | 28 / 31 |", "**no proven backup on 2026-10-14**", "| 2026-10-14 | **none** |", "(pruned since)", recs[0].Archive.BLAKE3} {
			if !strings.Contains(out, want) {
				t.Errorf("markdown lacks %q", want)
			}
		}
		if t.Failed() {
			t.Log(out)
		}
	})
	t.Run("a covered range passes", func(t *testing.T) {
		code, out, errOut := run(t, "--catalog", w.catalog, "audit", "--from", "2026-10-21", "--to", "2026-10-31", "--format", "json")
		if code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
		}
	})
	t.Run("rehash finds a flipped byte", func(t *testing.T) {
		target := recs[len(recs)-2] // billing, 10-31
		data, _ := os.ReadFile(target.Archive.Path)
		data[len(data)/2] ^= 1
		os.WriteFile(target.Archive.Path, data, 0o600)
		code, out, errOut := run(t, "--catalog", w.catalog, "--json", "audit", "--from", "2026-10-21", "--to", "2026-10-31", "--rehash", "--name", "billing")
		var rep catalog.AuditReport
		json.Unmarshal([]byte(out), &rep)
		if code != 3 || rep.OK || len(rep.Names) != 1 || len(rep.Names[0].Mismatched) != 1 || rep.Names[0].Mismatched[0] != target.ID {
			t.Fatalf("exit %d, report %+v\n%s", code, rep.Names, errOut)
		}
		last := rep.Names[0].Days[len(rep.Names[0].Days)-1]
		if last.Covered || !strings.Contains(last.Check, "digest does not match") || !strings.Contains(errOut, "1 archives no longer match") {
			t.Errorf("10-31 = %+v\n%s", last, errOut)
		}
		// Without --rehash the audit trusts the record, and says it did not re-hash.
		code, _, _ = run(t, "--catalog", w.catalog, "audit", "--from", "2026-10-21", "--to", "2026-10-31", "--name", "billing")
		if code != 0 {
			t.Errorf("without --rehash: exit %d", code)
		}
	})
	t.Run("bad flags", func(t *testing.T) {
		for _, args := range [][]string{
			{"audit", "--to", "2026-10-31"},
			{"audit", "--from", "2026-10-31", "--to", "2026-10-01"},
			{"audit", "--from", "last week", "--to", "2026-10-31"},
			{"audit", "--from", "1600-01-01"},
			{"audit", "--from", "2026-10-01", "--to", "2026-10-31", "--format", "pdf"},
		} {
			code, out, errOut := run(t, append([]string{"--catalog", w.catalog}, args...)...)
			if code != 2 || out != "" || !strings.Contains(errOut, "hint:") {
				t.Errorf("%q: exit %d\n%s%s", args, code, out, errOut)
			}
		}
	})
}
