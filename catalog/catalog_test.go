package catalog

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestMain(m *testing.M) {
	if p := os.Getenv("PGATTEST_CATALOG_HOLD"); p != "" {
		c, err := Open(p, Options{})
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("holding")
		time.Sleep(time.Hour)
		c.Close()
	}
	os.Exit(m.Run())
}

// open returns a new catalog in a temp folder; when the test ends, the
// chain must verify, whatever the test did through the API.
func open(t *testing.T) *Catalog {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sub", "catalog.db")
	c, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		rep, err := c.VerifyChain()
		if err != nil || !rep.OK() {
			t.Errorf("chain after test: %v %v", err, rep.Broken)
		}
		c.Close()
	})
	return c
}

// rec makes a record of name at the given time with the given status.
func rec(name string, at time.Time, status string) *Record {
	return &Record{
		ID: NewID(name, at), Name: name, Status: status, StartedAt: at, FinishedAt: at.Add(time.Minute),
		Source:  Source{Host: "db.example.com", Port: 5432, Database: "app", User: "app"},
		Archive: Archive{Path: "/backups/x.dump", Format: "custom", Size: 100, BLAKE3: strings.Repeat("ab", 32)},
	}
}

func mustAdd(t *testing.T, c *Catalog, r *Record) *Record {
	t.Helper()
	if _, err := c.Add(r); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestAddGetAndPermissions(t *testing.T) {
	c := open(t)
	at := time.Date(2026, 11, 24, 22, 28, 0, 0, time.UTC)
	r := rec("neondb@ep-cool-darkness-a1b2c3d4", at, StatusVerified)
	ev := mustAdd(t, c, r)
	if !strings.HasPrefix(r.ID, "20261124T222800Z-neondb-") || len(r.ID) != len("20261124T222800Z-neondb-7f3a") {
		t.Errorf("id %q, want 20261124T222800Z-neondb-XXXX", r.ID)
	}
	got, err := c.Get(r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != r.Name || !got.StartedAt.Equal(at) || got.Archive.BLAKE3 != r.Archive.BLAKE3 {
		t.Errorf("got %+v, want %+v", got, r)
	}
	seq, head, _ := c.Head()
	if seq != 1 || head == "" {
		t.Errorf("head = %d %q after one record", seq, head)
	}
	_ = ev
	if _, err := c.Get("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(nope) = %v, want ErrNotFound", err)
	}
	if _, err := c.Add(r); err == nil {
		t.Error("adding the same id twice succeeded")
	}
	fi, _ := os.Stat(c.Path())
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("catalog mode %v, want 0600", fi.Mode().Perm())
	}
	di, _ := os.Stat(filepath.Dir(c.Path()))
	if di.Mode().Perm() != 0o700 {
		t.Errorf("catalog folder mode %v, want 0700", di.Mode().Perm())
	}
}

func TestAsOf(t *testing.T) {
	c := open(t)
	day := func(d, h int) time.Time { return time.Date(2026, 10, d, h, 0, 0, 0, time.UTC) }
	a1 := mustAdd(t, c, rec("app", day(1, 2), StatusVerified))
	a2 := mustAdd(t, c, rec("app", day(2, 2), StatusVerified))
	mustAdd(t, c, rec("app", day(3, 2), StatusFailed))     // newer, failed: skipped
	mustAdd(t, c, rec("app", day(3, 3), StatusUnverified)) // newer, unproven: skipped
	b1 := mustAdd(t, c, rec("app-b", day(3, 1), StatusVerified))
	mustAdd(t, c, rec("ap", day(5, 1), StatusVerified)) // a name that is a prefix of another
	tie1 := mustAdd(t, c, rec("tie", day(4, 4), StatusVerified))
	tie2 := mustAdd(t, c, rec("tie", day(4, 4), StatusVerified))
	p := mustAdd(t, c, rec("app", day(6, 2), StatusPruned)) // pruned: archive gone
	_ = p

	tests := []struct {
		name string
		at   time.Time
		want *Record // nil: none
	}{
		{"app", day(1, 1), nil},               // before the first
		{"app", day(1, 2), a1},                // exactly at its start: included
		{"app", day(1, 23), a1},               //
		{"app", day(3, 12), a2},               // failed and unproven newer ones skipped
		{"app", day(30, 0), a2},               // pruned newer one skipped
		{"app-b", day(9, 0), b1},              // other name unaffected
		{"app-b", day(2, 0), nil},             //
		{"ap", day(4, 0), nil},                // "ap" does not see "app" or "app-b"
		{"tie", day(4, 4), maxID(tie1, tie2)}, // equal times: the larger id wins, stably
		{"nobody", day(9, 0), nil},
	}
	for _, tt := range tests {
		got, err := c.AsOf(tt.name, tt.at)
		if tt.want == nil {
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("AsOf(%s, %s) = %v, %v; want none", tt.name, tt.at, got, err)
			}
			continue
		}
		if err != nil || got.ID != tt.want.ID {
			t.Errorf("AsOf(%s, %s) = %v, %v; want %s", tt.name, tt.at, idOf(got), err, tt.want.ID)
		}
	}
	// None before the first names the oldest proven one.
	_, err := c.AsOf("app", day(1, 1))
	var none *NoneAsOfError
	if !errors.As(err, &none) || none.Oldest == nil || none.Oldest.ID != a1.ID || !strings.Contains(err.Error(), a1.ID) {
		t.Errorf("AsOf before the first: %v, want a NoneAsOfError naming %s", err, a1.ID)
	}
}

func maxID(a, b *Record) *Record {
	if a.ID > b.ID {
		return a
	}
	return b
}

func idOf(r *Record) string {
	if r == nil {
		return "<nil>"
	}
	return r.ID
}

func TestList(t *testing.T) {
	c := open(t)
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 10; i++ {
		name := []string{"a", "b"}[i%2]
		status := StatusVerified
		if i == 4 {
			status = StatusFailed
		}
		mustAdd(t, c, rec(name, base.Add(time.Duration(i)*time.Hour), status))
	}
	ids := func(rs []*Record) string {
		var s []string
		for _, r := range rs {
			s = append(s, r.ID[9:15]) // HHMMSS
		}
		return strings.Join(s, " ")
	}
	tests := []struct {
		q    Query
		want string
	}{
		{Query{}, "090000 080000 070000 060000 050000 040000 030000 020000 010000 000000"},
		{Query{Limit: 3}, "090000 080000 070000"},
		{Query{Name: "a"}, "080000 060000 040000 020000 000000"},
		{Query{Name: "b", Limit: 2}, "090000 070000"},
		{Query{Since: base.Add(7 * time.Hour)}, "090000 080000 070000"},
		{Query{Until: base.Add(2 * time.Hour)}, "020000 010000 000000"},
		{Query{Name: "a", Since: base.Add(time.Hour), Until: base.Add(6 * time.Hour)}, "060000 040000 020000"},
		{Query{Status: StatusFailed}, "040000"},
		{Query{Name: "zzz"}, ""},
	}
	for _, tt := range tests {
		got, err := c.List(tt.q)
		if err != nil {
			t.Fatal(err)
		}
		if ids(got) != tt.want {
			t.Errorf("List(%+v) = %q, want %q", tt.q, ids(got), tt.want)
		}
	}
	names, _ := c.Names()
	if strings.Join(names, ",") != "a,b" {
		t.Errorf("Names = %v", names)
	}
}

func TestUpdateAndNoteExtendTheChain(t *testing.T) {
	c := open(t)
	r := mustAdd(t, c, rec("app", time.Now(), StatusVerified))
	r.Proofs = append(r.Proofs, Proof{Mode: "restore", Status: ProofFailed, Error: "boom"})
	r.Status = StatusFailed
	if _, err := c.Update(r, KindProofFailed, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Note(r.ID, KindRestored, "into db.example.com/app"); err != nil {
		t.Fatal(err)
	}
	var kinds []string
	c.Events(0, func(e Event) error { kinds = append(kinds, e.Kind); return nil })
	if strings.Join(kinds, ",") != "recorded,proof-failed,restored" {
		t.Errorf("events %v", kinds)
	}
	r.Name = "other"
	if _, err := c.Update(r, KindProved, ""); err == nil {
		t.Error("Update changed a record's name")
	}
}

// tamper opens the bbolt file behind the catalog's back and edits it.
func tamper(t *testing.T, path string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
	db.Close()
}

func TestVerifyChainFindsTampering(t *testing.T) {
	setup := func(t *testing.T) (string, []*Record) {
		path := filepath.Join(t.TempDir(), "catalog.db")
		c, err := Open(path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		var rs []*Record
		for i := 0; i < 3; i++ {
			rs = append(rs, mustAdd(t, c, rec("app", time.Date(2026, 11, 1+i, 0, 0, 0, 0, time.UTC), StatusVerified)))
		}
		rep, err := c.VerifyChain()
		if err != nil || !rep.OK() || rep.Events != 3 || rep.Records != 3 {
			t.Fatalf("clean chain: %+v %v", rep, err)
		}
		c.Close()
		return path, rs
	}
	verify := func(t *testing.T, path string) ChainReport {
		c, err := Open(path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		rep, err := c.VerifyChain()
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}

	t.Run("record byte changed", func(t *testing.T) {
		path, rs := setup(t)
		tamper(t, path, func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketBackups)
			v := append([]byte(nil), b.Get([]byte(rs[1].ID))...)
			i := bytes.Index(v, []byte(`"size":100`))
			v[i+len(`"size":1`)] = '9' // 100 → 190
			return b.Put([]byte(rs[1].ID), v)
		})
		rep := verify(t, path)
		if rep.OK() || rep.Broken.BackupID != rs[1].ID || rep.Broken.What != "record body" || rep.Broken.Seq != 2 {
			t.Errorf("broken = %+v, want record %s at event 2", rep.Broken, rs[1].ID)
		}
	})
	t.Run("event edited", func(t *testing.T) {
		path, _ := setup(t)
		tamper(t, path, func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketEvents)
			v := bytes.Replace(b.Get(seqKey(2)), []byte(`"kind":"recorded"`), []byte(`"kind":"restored"`), 1)
			return b.Put(seqKey(2), v)
		})
		rep := verify(t, path)
		if rep.OK() || rep.Broken.Seq != 2 || rep.Broken.What != "event hash" {
			t.Errorf("broken = %+v, want event hash at 2", rep.Broken)
		}
		if !strings.Contains(rep.Broken.Error(), "event 2") {
			t.Errorf("message %q does not name event 2", rep.Broken.Error())
		}
	})
	t.Run("event deleted", func(t *testing.T) {
		path, _ := setup(t)
		tamper(t, path, func(tx *bolt.Tx) error { return tx.Bucket(bucketEvents).Delete(seqKey(2)) })
		rep := verify(t, path)
		if rep.OK() || rep.Broken.Seq != 3 || rep.Broken.What != "sequence" {
			t.Errorf("broken = %+v, want sequence at 3", rep.Broken)
		}
	})
	t.Run("record deleted", func(t *testing.T) {
		path, rs := setup(t)
		tamper(t, path, func(tx *bolt.Tx) error { return tx.Bucket(bucketBackups).Delete([]byte(rs[0].ID)) })
		rep := verify(t, path)
		if rep.OK() || rep.Broken.BackupID != rs[0].ID {
			t.Errorf("broken = %+v, want record %s", rep.Broken, rs[0].ID)
		}
	})
	// Hiding a backup from restore --as-of: its time index entry removed.
	t.Run("index entry deleted", func(t *testing.T) {
		path, rs := setup(t)
		tamper(t, path, func(tx *bolt.Tx) error {
			return tx.Bucket(bucketByTime).Delete(timeKey(rs[2].Name, rs[2].StartedAt, rs[2].ID))
		})
		rep := verify(t, path)
		if rep.OK() || rep.Broken.BackupID != rs[2].ID || !strings.Contains(rep.Broken.Error(), "time index") {
			t.Errorf("broken = %+v, want record %s missing from the time index", rep.Broken, rs[2].ID)
		}
	})
	// Making audit read a failed backup as proven: its summary edited.
	t.Run("index summary edited", func(t *testing.T) {
		path, rs := setup(t)
		tamper(t, path, func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketByTime)
			k := timeKey(rs[1].Name, rs[1].StartedAt, rs[1].ID)
			v := bytes.Clone(b.Get(k))
			if len(v) < 2 {
				t.Fatalf("no summary stored: %x", v)
			}
			v[1] = statusCodes[StatusFailed]
			return b.Put(k, v)
		})
		rep := verify(t, path)
		if rep.OK() || rep.Broken.BackupID != rs[1].ID || rep.Broken.What != "time index summary" {
			t.Errorf("broken = %+v, want the summary of %s", rep.Broken, rs[1].ID)
		}
	})
	// Or an index entry pointing at no record.
	t.Run("index entry added", func(t *testing.T) {
		path, rs := setup(t)
		tamper(t, path, func(tx *bolt.Tx) error {
			return tx.Bucket(bucketByStart).Put(startKey(rs[2].StartedAt.Add(time.Hour), "20261104T000000Z-app-0000"), nil)
		})
		rep := verify(t, path)
		if rep.OK() || rep.Broken.What != "start index" || rep.Broken.Found != "4 entries" {
			t.Errorf("broken = %+v, want a start index of 4 entries for 3 records", rep.Broken)
		}
	})
}

func TestOpenRefusesWhatIsNotACatalog(t *testing.T) {
	dir := t.TempDir()
	cases := map[string][]byte{
		"empty":   {},
		"garbage": bytes.Repeat([]byte("not a database "), 1000),
		"short":   []byte("xx"),
	}
	for name, content := range cases {
		path := filepath.Join(dir, name)
		os.WriteFile(path, content, 0o600)
		_, err := Open(path, Options{Timeout: time.Second})
		if !errors.Is(err, ErrNotCatalog) {
			t.Errorf("%s: Open = %v, want ErrNotCatalog", name, err)
		}
		after, _ := os.ReadFile(path)
		if !bytes.Equal(after, content) {
			t.Errorf("%s: file changed by the failed open", name)
		}
	}
	if _, err := Open(filepath.Join(dir, "missing.db"), Options{ReadOnly: true}); !errors.Is(err, ErrNoCatalog) {
		t.Errorf("read-only open of a missing file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "missing.db")); !os.IsNotExist(err) {
		t.Errorf("read-only open created the file")
	}
}

func TestBusyNamesTheHolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "catalog.db")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PGATTEST_CATALOG_HOLD="+path)
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	line, _ := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "holding" {
		t.Fatalf("holder said %q", line)
	}
	start := time.Now()
	_, err := Open(path, Options{Timeout: 300 * time.Millisecond})
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("Open while held = %v, want ErrBusy", err)
	}
	if waited := time.Since(start); waited > 10*time.Second {
		t.Errorf("waited %v for a 300ms timeout", waited)
	}
	want := fmt.Sprintf("catalog is in use by another pgattest (pid %d)", cmd.Process.Pid)
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q, want it to contain %q", err, want)
	}
	// After the holder dies, the lock is gone.
	cmd.Process.Kill()
	cmd.Wait()
	c, err := Open(path, Options{Timeout: time.Second})
	if err != nil {
		t.Fatalf("Open after the holder died: %v", err)
	}
	c.Close()
}

func TestResolveShortID(t *testing.T) {
	c := open(t)
	at := time.Date(2026, 11, 1, 3, 0, 0, 0, time.UTC)
	a := &Record{ID: "20261101T030000Z-shop-aaaa", Name: "shop", StartedAt: at, Status: StatusVerified}
	b := &Record{ID: "20261101T030000Z-shop-aabb", Name: "shop", StartedAt: at, Status: StatusVerified}
	for _, r := range []*Record{a, b} {
		if _, err := c.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	if r, err := c.Resolve("20261101T030000Z-shop-aaaa"); err != nil || r.ID != a.ID {
		t.Fatalf("full ID: %v %v", r, err)
	}
	if r, err := c.Resolve("20261101T030000Z-shop-aab"); err != nil || r.ID != b.ID {
		t.Fatalf("unique prefix: %v %v", r, err)
	}
	if _, err := c.Resolve("20261101T030000Z-shop-aa"); !errors.Is(err, ErrAmbiguous) {
		t.Fatalf("ambiguous prefix: %v", err)
	}
	if _, err := c.Resolve("2025"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("no match: %v", err)
	}
}

func TestTOCEntriesAreCoveredByTheChain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "catalog.db")
	c, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	entries := []TOCEntry{
		{DumpID: 215, CatalogOID: 1259, ObjectOID: 16390, Type: "TABLE", Schema: "shop", Name: "orders", Owner: "shop_owner"},
		{DumpID: 3451, Type: "TABLE DATA", Schema: "shop", Name: "orders", Owner: "shop_owner"},
	}
	with := rec("app", time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), StatusVerified)
	if _, err := c.AddWithTOC(with, entries); err != nil {
		t.Fatal(err)
	}
	without := mustAdd(t, c, rec("app", time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC), StatusVerified))

	got, err := c.Entries(with.ID)
	if err != nil || len(got) != 2 || got[1] != entries[1] {
		t.Fatalf("Entries = %+v, %v; want the two stored", got, err)
	}
	if stored, _ := c.Get(with.ID); stored.TOC.EntriesBLAKE3 == "" {
		t.Error("the record does not carry the entries' digest")
	}
	if _, err := c.Entries(without.ID); !errors.Is(err, ErrNoEntries) {
		t.Errorf("record without entries: err = %v, want ErrNoEntries", err)
	}
	// A second backup with the same entries shares them.
	same := rec("app", time.Date(2026, 11, 3, 0, 0, 0, 0, time.UTC), StatusVerified)
	if _, err := c.AddWithTOC(same, entries); err != nil {
		t.Fatal(err)
	}
	c.view(func(tx *bolt.Tx) error {
		if n := tx.Bucket(bucketTOCs).Stats().KeyN; n != 1 {
			t.Errorf("%d stored entry lists for two backups with the same entries, want 1", n)
		}
		return nil
	})
	c.Close()
	// Catalogs from before entries were shared kept them under the ID.
	legacy := rec("app", time.Date(2026, 11, 4, 0, 0, 0, 0, time.UTC), StatusVerified)
	legacyJSON, _ := json.Marshal(entries[:1])
	legacy.TOC.EntriesBLAKE3 = digest(legacyJSON)
	c, _ = Open(path, Options{})
	mustAdd(t, c, legacy)
	c.Close()
	tamper(t, path, func(tx *bolt.Tx) error { return tx.Bucket(bucketTOCs).Put([]byte(legacy.ID), legacyJSON) })
	c, _ = Open(path, Options{ReadOnly: true})
	if got, err := c.Entries(legacy.ID); err != nil || len(got) != 1 {
		t.Errorf("legacy entries: %+v, %v", got, err)
	}
	c.Close()

	// Rename a table in the stored entries behind pgattest's back.
	tamper(t, path, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTOCs)
		key := tocKey(with.TOC.EntriesBLAKE3)
		v := bytes.Replace(b.Get(key), []byte(`"orders"`), []byte(`"ordres"`), 1)
		return b.Put(key, v)
	})
	c, err = Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rep, err := c.VerifyChain()
	if err != nil || rep.OK() || rep.Broken.What != "toc entries" || rep.Broken.BackupID != with.ID {
		t.Errorf("VerifyChain = %+v, %v; want toc entries of %s", rep.Broken, err, with.ID)
	}
	if _, err := c.Entries(with.ID); !errors.Is(err, ErrChainBroken) || !strings.Contains(err.Error(), with.ID) {
		t.Errorf("Entries of tampered = %v, want a chain error naming %s", err, with.ID)
	}
}

func TestAuditCountsOnlyTrackedPastDays(t *testing.T) {
	c := open(t)
	proven := func(name string, at time.Time) {
		r := rec(name, at, StatusVerified)
		r.Proofs = []Proof{{Mode: "restore", Status: ProofPassed, StartedAt: at}}
		mustAdd(t, c, r)
	}
	// "new" starts on Nov 20; "old" runs every night from Nov 1.
	for d := 1; d <= 24; d++ {
		proven("old", time.Date(2026, 11, d, 2, 0, 0, 0, time.UTC))
		if d >= 20 {
			proven("new", time.Date(2026, 11, d, 3, 0, 0, 0, time.UTC))
		}
	}
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	rep, err := c.Audit(AuditQuery{From: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 11, 30, 23, 0, 0, 0, time.UTC), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK || len(rep.Names) != 2 {
		t.Fatalf("ok=%v names=%d", rep.OK, len(rep.Names))
	}
	nw, old := rep.Names[0], rep.Names[1]
	if old.DaysInRange != 24 || old.DaysCovered != 24 {
		t.Errorf("old: %d/%d days, want 24/24 (days after today are not counted)", old.DaysCovered, old.DaysInRange)
	}
	if nw.TrackedFrom != "2026-11-20" || nw.DaysInRange != 5 || nw.DaysCovered != 5 {
		t.Errorf("new: tracked from %s, %d/%d days; want from 11-20, 5/5", nw.TrackedFrom, nw.DaysCovered, nw.DaysInRange)
	}
	// The gap after the last backup runs to now (10h), not to the range's
	// end (6 days), so the longest is a night's 24h.
	if g := old.LongestGap; g.Hours != 24 {
		t.Errorf("old gap = %+v", g)
	}
	// Asked for by name, "new" counts over the whole range, and a name with
	// no backups at all is all gap.
	rep, err = c.Audit(AuditQuery{From: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), To: now, Now: now, Names: []string{"new", "typo"}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK || rep.Names[0].DaysCovered != 5 || rep.Names[0].DaysInRange != 24 || rep.Names[1].DaysInRange != 24 || rep.Names[1].DaysCovered != 0 {
		t.Errorf("by name: ok=%v new %d/%d typo %d/%d", rep.OK, rep.Names[0].DaysCovered, rep.Names[0].DaysInRange, rep.Names[1].DaysCovered, rep.Names[1].DaysInRange)
	}
}
