package cli

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pgattest/pgattest/catalog"
)

var updateJSON = flag.Bool("update-json", false, "rewrite testdata/json-v1.golden.json")

// TestJSONOutputContractV1: what --json prints besides records (pinned in
// catalog's TestRecordJSONContractV1) is a contract scripts read: restore's,
// prune's, toc's and audit's documents and the error document, each with
// every field set, are the golden file's, byte for byte. Add fields, never
// rename (DESIGN.md, "Contracts").
func TestJSONOutputContractV1(t *testing.T) {
	t0 := time.Date(2026, 11, 1, 2, 0, 0, 0, time.UTC)
	yes := true
	proved := t0.Add(time.Minute)
	docs := map[string]any{
		"restore": restoreJSON{DryRun: true, Backup: &catalog.Record{ID: "shop-20261101T020000Z-ab12"}, Target: "shop_copy on /run/postgresql:5432",
			Entries: []string{"215; 1259 16390 TABLE shop orders app"}, Skipped: []string{"FK CONSTRAINT shop.orders_customer_fkey: customers not restored"},
			Notes: []string{"no rows restored"}, Created: []string{"app"}, Total: 40, Command: "pg_restore --single-transaction …", TookMS: 1500},
		"prune": pruneJSON{Policy: "keep-daily 7", DryRun: true,
			Kept:       []pruneRow{{ID: "a", Name: "shop", StartedAt: t0, Status: "verified", Size: 10, Reasons: []string{"daily 1"}}},
			Removed:    []pruneRow{{ID: "b", Name: "shop", StartedAt: t0, Status: "verified", Size: 10}},
			FreedBytes: 10, Failed: map[string]string{"c": "permission denied"}, Locked: map[string]time.Time{"d": t0},
			Missing: []pruneRow{{ID: "e", Name: "shop", StartedAt: t0, Status: "missing"}}, Head: "ab"},
		"toc": tocResult{BackupID: "a", Source: "archive", Total: 1, Entries: []catalog.TOCEntry{{DumpID: 1, Type: "TABLE", Schema: "shop", Name: "orders", Owner: "app"}},
			MatchesCatalog: &yes, Differences: []string{"+ TABLE shop.x"}},
		"audit": catalog.AuditReport{From: t0, To: t0, GeneratedAt: t0, OK: true, DaysInRange: 1, DaysCovered: 1, Rehashed: true, Signed: 1, ReceiptsChecked: true,
			Chain: catalog.ChainSummary{OK: true, Events: 2, HeadSeq: 2, Head: "ab"},
			Names: []catalog.NameAudit{{Name: "shop", TrackedFrom: "2026-11-01", DaysInRange: 1, DaysCovered: 1, Backups: 1, Proven: 1, Signed: 1, ProofsRun: 1, ProofsOK: 1,
				LongestGap: catalog.Gap{From: t0, To: t0, Hours: 0}, Uncovered: []string{}, Failures: []catalog.Failure{{BackupID: "b", At: t0, What: "proof", Error: "restore failed"}},
				Days: []catalog.DayAudit{{Date: "2026-11-01", Covered: true, BackupID: "a", BLAKE3: "bb", Status: "verified", Backups: 1, ProofsOK: 1, Check: "match", ProvedAt: &proved, Rows: 42, Receipt: "rr",
					Each: []catalog.DayBackup{{ID: "a", BLAKE3: "bb", Status: "verified", Proof: "passed", ProvedAt: &proved, Rows: 42}}}},
				Mismatched: []string{"c"}}}},
		"error": jsonError{Error: "no catalog at c.db yet", Hint: "run 'pgattest backup' first", ExitCode: 1},
	}
	var got bytes.Buffer
	for _, k := range []string{"audit", "error", "prune", "restore", "toc"} {
		got.WriteString("# " + k + "\n")
		if err := writeJSON(&got, docs[k]); err != nil {
			t.Fatal(err)
		}
	}
	golden := filepath.Join("testdata", "json-v1.golden.json")
	if *updateJSON {
		os.WriteFile(golden, got.Bytes(), 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Errorf("a --json document is no longer the v1 contract:\n%s\nwant (%s):\n%s", got.String(), golden, want)
	}
}
