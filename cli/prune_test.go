package cli

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/pgattest/pgattest/catalog"
)

func TestPrune(t *testing.T) {
	w := newWorkdir(t)
	nov := time.Date(2026, 11, 1, 2, 0, 0, 0, time.UTC)
	// 20 nights of app (night 17 failed), then one unproven run newer than
	// the newest proven; 3 nights of billing.
	recs := seed(t, w, append(nightly("app", nov, 20, func(d int) string {
		if d == 17 {
			return catalog.StatusFailed
		}
		return catalog.StatusVerified
	}), seeded{"app", nov.AddDate(0, 0, 19).Add(time.Hour), catalog.StatusUnverified},
		seeded{"billing", nov, catalog.StatusVerified}, seeded{"billing", nov.AddDate(0, 0, 1), catalog.StatusVerified},
		seeded{"billing", nov.AddDate(0, 0, 2), catalog.StatusVerified})...)
	byID := map[string]*catalog.Record{}
	for _, r := range recs {
		byID[r.ID] = r
	}
	prune := func(t *testing.T, args ...string) (int, pruneJSON, string) {
		t.Helper()
		code, out, errOut := run(t, append([]string{"--catalog", w.catalog, "--json", "prune"}, args...)...)
		var res pruneJSON
		if code == 0 {
			if err := json.Unmarshal([]byte(out), &res); err != nil {
				t.Fatalf("prune --json: %v\n%s", err, out)
			}
		}
		return code, res, errOut
	}

	t.Run("dry run changes nothing", func(t *testing.T) {
		code, res, errOut := prune(t, "--keep-daily", "3", "--dry-run")
		if code != 0 {
			t.Fatalf("exit %d\n%s", code, errOut)
		}
		// app: nights 19, 18, 16 (17 failed and older than the newest proven)
		// + the unproven run of night 19; billing: all 3.
		if len(res.Kept) != 7 || len(res.Removed) != len(recs)-7 {
			t.Fatalf("kept %d removed %d, want 7 and %d", len(res.Kept), len(res.Removed), len(recs)-7)
		}
		for _, r := range recs {
			if _, err := os.Stat(r.Archive.Path); err != nil {
				t.Fatalf("dry run touched %s: %v", r.Archive.Path, err)
			}
		}
		code, out, _ := run(t, "--catalog", w.catalog, "prune", "--keep-daily", "3", "-n")
		if code != 0 || !strings.Contains(out, "dry run: would keep 7 and remove 17") || !strings.Contains(out, "newer than the newest proven") {
			t.Errorf("text dry run exit %d:\n%s", code, out)
		}
	})
	t.Run("prune deletes archives and keeps records", func(t *testing.T) {
		code, res, errOut := prune(t, "--keep-daily", "3", "--name", "app")
		if code != 0 {
			t.Fatalf("exit %d\n%s", code, errOut)
		}
		if len(res.Removed) != 17 || res.Head == "" {
			t.Fatalf("removed %d (want 17: 16 proven nights and the failed one), head %q", len(res.Removed), res.Head)
		}
		c, err := catalog.Open(w.catalog, catalog.Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for _, row := range res.Removed {
			r := byID[row.ID]
			if _, err := os.Stat(r.Archive.Path); !os.IsNotExist(err) {
				t.Errorf("%s: archive still there (%v)", r.ID, err)
			}
			if _, err := os.Stat(r.Archive.Manifest); !os.IsNotExist(err) {
				t.Errorf("%s: manifest still there (%v)", r.ID, err)
			}
			got, err := c.Get(r.ID)
			if err != nil || got.Status != catalog.StatusPruned || got.PrunedAt == nil || len(got.Proofs) != len(r.Proofs) {
				t.Errorf("%s after prune: %+v, %v", r.ID, got, err)
			}
		}
		for _, row := range res.Kept {
			if _, err := os.Stat(byID[row.ID].Archive.Path); err != nil {
				t.Errorf("kept %s lost its archive: %v", row.ID, err)
			}
		}
		var pruned int
		c.Events(0, func(ev catalog.Event) error {
			if ev.Kind == catalog.KindPruned && strings.Contains(ev.Detail, "keep 3 daily") {
				pruned++
			}
			return nil
		})
		if pruned != 17 {
			t.Errorf("%d pruned events naming the policy, want 17", pruned)
		}
		if rep, err := c.VerifyChain(); err != nil || !rep.OK() {
			t.Errorf("chain after prune: %v %v", err, rep.Broken)
		}
	})
	t.Run("again: nothing more to do, pruned stay listed", func(t *testing.T) {
		code, res, _ := prune(t, "--keep-daily", "3", "--name", "app")
		if code != 0 || len(res.Removed) != 0 || len(res.Kept) != 4 {
			t.Fatalf("exit %d, kept %d removed %d; want 4 kept, none removed", code, len(res.Kept), len(res.Removed))
		}
		code, out, _ := run(t, "--catalog", w.catalog, "list", "--status", "pruned", "--limit", "0")
		if code != 0 || strings.Count(out, "pruned") != 17 {
			t.Errorf("list --status pruned exit %d:\n%s", code, out)
		}
	})
	t.Run("the newest proven survives any policy", func(t *testing.T) {
		code, res, _ := prune(t, "--keep-within", "1h", "--name", "billing")
		if code != 0 || len(res.Kept) != 1 || res.Kept[0].ID != recs[len(recs)-1].ID {
			t.Fatalf("exit %d, kept %+v; want only the newest billing backup", code, res.Kept)
		}
	})
	t.Run("bad policies", func(t *testing.T) {
		for _, args := range [][]string{{}, {"--keep-daily", "-2"}, {"--keep-within", "2w"}, {"--keep-daily", "x"}, {"extra"}} {
			code, _, errOut := run(t, append([]string{"--catalog", w.catalog, "prune"}, args...)...)
			if code != 2 || !strings.Contains(errOut, "hint:") {
				t.Errorf("prune %q: exit %d\n%s", args, code, errOut)
			}
		}
	})
	t.Run("refuses a tampered catalog", func(t *testing.T) {
		var present []string
		for _, r := range recs {
			if _, err := os.Stat(r.Archive.Path); err == nil {
				present = append(present, r.Archive.Path)
			}
		}
		db, err := bolt.Open(w.catalog, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket([]byte("backups"))
			id := []byte(recs[len(recs)-1].ID)
			v := strings.Replace(string(b.Get(id)), `"status":"verified"`, `"status":"failed"`, 1)
			return b.Put(id, []byte(v))
		})
		db.Close()
		code, _, errOut := run(t, "--catalog", w.catalog, "prune", "--keep-last", "1")
		if code != 3 || !strings.Contains(errOut, "refusing to prune") || !strings.Contains(errOut, "nothing was deleted") {
			t.Errorf("exit %d\n%s", code, errOut)
		}
		for _, p := range present {
			if _, err := os.Stat(p); err != nil {
				t.Errorf("deleted under a tampered catalog: %v", err)
			}
		}
		if len(present) != 5 {
			t.Errorf("%d archives before the tampering, want 5 (4 app, 1 billing)", len(present))
		}
	})
}
