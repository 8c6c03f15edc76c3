package catalog

import (
	"bytes"
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// damagedCatalog writes a catalog with n records and returns its bytes and
// the IDs of its pages that hold data (branch and leaf pages).
func damagedCatalog(t *testing.T, n int) (data []byte, used []int, pageSize, size int) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "catalog.db")
	c, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 1, 2, 0, 0, 0, time.UTC)
	for i := range n {
		r := rec([]string{"shop", "crm", "wiki"}[i%3], at.Add(time.Duration(i)*time.Hour), StatusVerified)
		if _, err := c.AddWithTOC(r, []TOCEntry{{DumpID: i, Type: "TABLE", Schema: "public", Name: "t"}}); err != nil {
			t.Fatal(err)
		}
	}
	c.view(func(tx *bolt.Tx) error {
		size = int(tx.Size())
		for id := 2; id < int(tx.Size())/c.db.Info().PageSize; id++ {
			if p, err := tx.Page(id); err == nil && p != nil && (p.Type == "branch" || p.Type == "leaf") {
				used = append(used, id)
			}
		}
		return nil
	})
	pageSize = c.db.Info().PageSize
	c.Close()
	data, err = os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data, used, pageSize, size
}

// TestFaultCatalogTruncated: a catalog cut short (a copy that did not
// finish) is refused on open, read-only or not, with a clear error, and is
// never written to. Reading its missing pages would crash the process.
func TestFaultCatalogTruncated(t *testing.T) {
	data, _, pageSize, used := damagedCatalog(t, 300)
	// The file is longer than the pages in use (bbolt grows it ahead);
	// cutting into the pages in use is damage.
	for _, size := range []int{2 * pageSize, 3 * pageSize, used / 2, used - pageSize, used - 1} {
		path := filepath.Join(t.TempDir(), "catalog.db")
		os.WriteFile(path, data[:size], 0o600)
		for _, ro := range []bool{true, false} {
			c, err := Open(path, Options{ReadOnly: ro, Timeout: time.Second})
			if err == nil {
				c.Close()
			}
			if !errors.Is(err, ErrNotCatalog) || !bytes.Contains([]byte(err.Error()), []byte("truncated")) {
				t.Errorf("%d of %d bytes in use, read-only %v: Open = %v, want a truncated catalog refused", size, used, ro, err)
			}
		}
		if after, _ := os.ReadFile(path); !bytes.Equal(after, data[:size]) {
			t.Errorf("%d bytes: the refused file was changed", size)
		}
	}
}

// TestFaultCatalogDamagedPage: random bytes over any one data page (bit
// rot, a bad sector) make reading or verifying the catalog fail with an
// error, never crash it.
func TestFaultCatalogDamagedPage(t *testing.T) {
	data, used, pageSize, _ := damagedCatalog(t, 300)
	if len(used) < 5 {
		t.Fatalf("only %d data pages; the test needs more records", len(used))
	}
	rnd := rand.New(rand.NewSource(1))
	for _, id := range used {
		damaged := bytes.Clone(data)
		rnd.Read(damaged[id*pageSize : (id+1)*pageSize])
		path := filepath.Join(t.TempDir(), "catalog.db")
		os.WriteFile(path, damaged, 0o600)
		c, err := Open(path, Options{ReadOnly: true, Timeout: time.Second})
		if err == nil {
			var rep ChainReport
			if _, err = c.List(Query{}); err == nil {
				rep, err = c.VerifyChain()
			}
			if err == nil && !rep.OK() {
				err = ErrChainBroken
			}
			c.Close()
		}
		if err == nil {
			t.Errorf("page %d damaged: opening, listing and verifying found nothing wrong", id)
		}
	}
}

// TestAuditSummariesMatchRecords: what an audit reads from the time index's
// summaries is what the records say, for every kind of record.
func TestAuditSummariesMatchRecords(t *testing.T) {
	c := open(t)
	rng := rand.New(rand.NewSource(3))
	at := time.Date(2026, 3, 1, 1, 0, 0, 0, time.UTC)
	for i := range 200 {
		r := rec("app", at.Add(time.Duration(i)*7*time.Hour), []string{StatusVerified, StatusFailed, StatusUnverified, StatusPruned}[rng.Intn(4)])
		for p := range rng.Intn(4) {
			st := ProofPassed
			if rng.Intn(3) == 0 {
				st = ProofFailed
			}
			r.Proofs = append(r.Proofs, Proof{Mode: "restore", Status: st, StartedAt: r.StartedAt.Add(time.Duration(p+1) * time.Minute), Error: "boom " + st})
		}
		if i%17 == 0 {
			r.Archive.BLAKE3 = "not hex" // no summary: decoded
		}
		mustAdd(t, c, r)
	}
	from, to := at.Add(24*time.Hour), at.Add(40*24*time.Hour)
	got, err := c.auditRecords("app", from, to, false, false)
	if err != nil {
		t.Fatal(err)
	}
	want, err := c.List(Query{Name: "app", Since: from, Until: to})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) || len(want) < 100 {
		t.Fatalf("%d from summaries, %d records", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.ID != w.ID || !g.StartedAt.Equal(w.StartedAt) || g.Status != w.Status || g.Archive.BLAKE3 != w.Archive.BLAKE3 || len(g.Proofs) != len(w.Proofs) {
			t.Fatalf("%d: summary %+v, record %+v", i, g, w)
		}
		for j := range w.Proofs {
			gp, wp := g.Proofs[j], w.Proofs[j]
			if gp.Status != wp.Status || !gp.StartedAt.Equal(wp.StartedAt) || (wp.Status != ProofPassed && gp.Error != wp.Error) {
				t.Fatalf("%d proof %d: summary %+v, record %+v", i, j, gp, wp)
			}
		}
	}
}
