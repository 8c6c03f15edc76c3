package catalog

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// The catalog at scale (go tool task bench, or
// go test -run '^$' -bench Catalog ./catalog): PGATTEST_BENCH_RECORDS records
// (default 1,000,000) across 50 names, each name backed up every hour,
// built once and kept in the temp folder between runs.

const benchNames = 50

var benchStart = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

func benchRecords() int {
	if n, err := strconv.Atoi(os.Getenv("PGATTEST_BENCH_RECORDS")); err == nil && n > 0 {
		return n
	}
	return 1_000_000
}

func benchName(i int) string { return fmt.Sprintf("db%02d@ep-bench-%02d", i, i) }

// benchRecord is record i: name i%50, hour i/50, the way a real backup
// record looks (ten tables, their counts, one proof).
func benchRecord(i int, rng *rand.Rand) *Record {
	name := benchName(i % benchNames)
	at := benchStart.Add(time.Duration(i/benchNames) * time.Hour)
	r := &Record{
		ID: fmt.Sprintf("%s-db%02d-%04x", at.Format(StampLayout), i%benchNames, rng.Intn(1<<16)), Name: name,
		Status: StatusVerified, StartedAt: at, FinishedAt: at.Add(4 * time.Minute),
		Source:  Source{Host: fmt.Sprintf("ep-bench-%02d.eu-central-1.aws.neon.tech", i%benchNames), Port: 5432, Database: "neondb", User: "app", ServerVersion: "16.4"},
		Archive: Archive{Path: fmt.Sprintf("/srv/backups/%s/%s-%s.dump", name, name, at.Format(StampLayout)), Format: "custom", Size: 1 << 30, BLAKE3: fmt.Sprintf("%064x", rng.Uint64()), Compression: 1},
		TOC: TOC{Entries: 214, Counts: map[string]int{"TABLE": 10, "TABLE DATA": 10, "INDEX": 14, "CONSTRAINT": 12, "FK CONSTRAINT": 6, "SEQUENCE": 8, "SEQUENCE SET": 8, "ACL": 20, "COMMENT": 6, "SCHEMA": 2},
			DumpVersion: "1.15-0", ServerVersion: "16.4", PgDumpVersion: "16.4", Compression: "gzip"},
		Labels: map[string]string{"env": "prod"},
		Tools:  Tools{PgDump: "16.4", PgRestore: "16.4", ProofServer: "16.4", Pgattest: "0.6.0"},
		Stages: []Stage{{"preflight", 90}, {"dump", 61000}, {"inventory", 40}, {"prove", 83000}, {"record", 9}},
		Roles:  []string{"app", "app_reader"},
	}
	p := Proof{Mode: "restore", Status: ProofPassed, StartedAt: at.Add(time.Minute), DurationMS: 83000, DigestChecked: true, ServerVersion: "16.4", RestoreTool: "16.4"}
	for t := 0; t < 10; t++ {
		tn := TableName{Schema: "public", Name: fmt.Sprintf("table_%d", t)}
		r.TOC.Tables = append(r.TOC.Tables, tn)
		rows := int64(rng.Intn(5_000_000))
		p.Tables = append(p.Tables, TableCount{Schema: tn.Schema, Name: tn.Name, Rows: rows})
		p.Rows += rows
	}
	switch n := rng.Intn(100); {
	case n < 2:
		r.Status, p.Status, p.Error, p.Tables, p.Rows = StatusFailed, ProofFailed, `restore failed at TOC entry 3451; 0 16448 TABLE DATA public table_3 app: ERROR:  could not extend file`, nil, 0
	case n < 3:
		r.Status = StatusUnverified
	}
	if r.Status != StatusUnverified {
		r.Proofs = []Proof{p}
	}
	return r
}

// benchEntries is the table of contents of record i: 214 entries, the same
// for a name until its schema changes (every 1,000 backups here).
func benchEntries(i int) []TOCEntry {
	version := i / benchNames / 1000
	entries := make([]TOCEntry, 0, 214)
	for e := 0; e < 214; e++ {
		entries = append(entries, TOCEntry{DumpID: 3000 + e, CatalogOID: 1259, ObjectOID: uint32(16384 + e + version), Type: "TABLE",
			Schema: "public", Name: fmt.Sprintf("object_%d_v%d", e, version), Owner: "app"})
	}
	return entries
}

var (
	benchOnce sync.Once
	benchPath string
	benchErr  error
)

// benchCatalog returns the path of the big catalog, building it the first
// time (a few minutes for a million records).
func benchCatalog(b *testing.B) string {
	b.Helper()
	benchOnce.Do(func() {
		n := benchRecords()
		benchPath = filepath.Join(os.TempDir(), fmt.Sprintf("pgattest-bench-catalog-v1-%d.db", n))
		if _, err := os.Stat(benchPath); err == nil {
			return
		}
		t0 := time.Now()
		tmp := benchPath + ".building"
		os.Remove(tmp)
		c, err := Open(tmp, Options{})
		if err != nil {
			benchErr = err
			return
		}
		c.db.NoSync = true // one fsync at the end is enough for a benchmark fixture
		rng := rand.New(rand.NewSource(1))
		const batch = 10_000
		for i := 0; i < n && benchErr == nil; i += batch {
			recs := make([]*Record, 0, batch)
			var entries [][]TOCEntry
			for j := i; j < min(i+batch, n); j++ {
				recs = append(recs, benchRecord(j, rng))
				entries = append(entries, benchEntries(j))
			}
			_, benchErr = c.AddMany(recs, entries)
		}
		c.db.NoSync = false
		c.db.Sync()
		c.Close()
		if benchErr == nil {
			benchErr = os.Rename(tmp, benchPath)
		}
		fmt.Fprintf(os.Stderr, "built %s: %d records in %s\n", benchPath, n, time.Since(t0).Round(time.Second))
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchPath
}

func openBench(b *testing.B) *Catalog {
	b.Helper()
	c, err := Open(benchCatalog(b), Options{ReadOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

// benchEnd is when the newest backup of each name started.
func benchEnd() time.Time {
	return benchStart.Add(time.Duration((benchRecords()-1)/benchNames) * time.Hour)
}

func BenchmarkCatalogOpen(b *testing.B) {
	path := benchCatalog(b)
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		c, err := Open(path, Options{ReadOnly: true})
		if err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
	b.ReportMetric(float64(fi.Size())/(1<<20), "file-MiB")
	b.ReportMetric(float64(fi.Size())/float64(benchRecords()), "bytes/record")
}

func BenchmarkCatalogAsOf(b *testing.B) {
	c := openBench(b)
	rng := rand.New(rand.NewSource(2))
	span := benchEnd().Sub(benchStart)
	for b.Loop() {
		name := benchName(rng.Intn(benchNames))
		at := benchStart.Add(time.Duration(rng.Int63n(int64(span))))
		r, err := c.AsOf(name, at)
		if err != nil || r.StartedAt.After(at) || r.Name != name {
			b.Fatalf("AsOf(%s, %s) = %v, %v", name, at, r, err)
		}
	}
}

func BenchmarkCatalogListNewest100(b *testing.B) {
	c := openBench(b)
	for b.Loop() {
		recs, err := c.List(Query{Limit: 100})
		if err != nil || len(recs) != 100 {
			b.Fatalf("%d records, %v", len(recs), err)
		}
	}
}

// BenchmarkCatalogAuditYear is `audit --name N` over the last year: every
// record of that name and year (8,760, one an hour), without the chain
// check, which BenchmarkCatalogVerifyChain measures on its own.
func BenchmarkCatalogAuditYear(b *testing.B) {
	c := openBench(b)
	to := benchEnd()
	from := to.AddDate(-1, 0, 0)
	for b.Loop() {
		d, err := c.readAudit(AuditQuery{From: from, To: to, Names: []string{benchName(7)}, Now: to}, false)
		if err != nil {
			b.Fatal(err)
		}
		if rep := d.Report(); rep.DaysInRange < 365 || len(rep.Names) != 1 {
			b.Fatalf("%d days", rep.DaysInRange)
		}
	}
}

func BenchmarkCatalogVerifyChain(b *testing.B) {
	c := openBench(b)
	for b.Loop() {
		rep, err := c.VerifyChain()
		if err != nil || !rep.OK() || rep.Records != benchRecords() {
			b.Fatalf("%+v %v", rep, err)
		}
	}
}
