package cli

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/pipeline"
	"github.com/pgattest/pgattest/verify"
)

// seeded is one backup a test writes straight into a catalog, with a real
// archive file (random bytes, hashed) and manifest: for commands that judge
// records by their times and statuses (prune, audit, as-of) without running
// a dump for each. The real pipeline is exercised by the backup tests.
type seeded struct {
	name   string
	at     time.Time
	status string // verified, failed, unverified
}

// seed writes the backups into the catalog at w.catalog, their archives
// under w.dir/<name>/, and returns the records as stored.
func seed(t *testing.T, w workdir, backups ...seeded) []*catalog.Record {
	t.Helper()
	c, err := catalog.Open(w.catalog, catalog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rng := rand.New(rand.NewSource(int64(len(backups))))
	var out []*catalog.Record
	for i, b := range backups {
		dir := filepath.Join(w.dir, b.name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		base := filepath.Join(dir, fmt.Sprintf("%s-%s-%d", b.name, b.at.UTC().Format(catalog.StampLayout), i))
		data := make([]byte, 4096+rng.Intn(4096))
		rng.Read(data)
		copy(data, "PGDMP")
		if err := os.WriteFile(base+".dump", data, 0o600); err != nil {
			t.Fatal(err)
		}
		d, err := verify.HashArchive(base+".dump", verify.FormatCustom)
		if err != nil {
			t.Fatal(err)
		}
		r := &catalog.Record{
			ID: fmt.Sprintf("%s-%s-%04d", b.at.UTC().Format(catalog.StampLayout), b.name, i), Name: b.name,
			Status: b.status, StartedAt: b.at, FinishedAt: b.at.Add(3 * time.Minute),
			Source:  catalog.Source{Host: "db.example.com", Port: 5432, Database: b.name, User: "app", ServerVersion: "15.18"},
			Archive: catalog.Archive{Path: base + ".dump", Format: "custom", Size: d.Size, BLAKE3: d.BLAKE3, Compression: 1, Manifest: base + ".manifest.json"},
			Labels:  map[string]string{}, Proofs: []catalog.Proof{},
		}
		switch b.status {
		case catalog.StatusVerified:
			r.Proofs = append(r.Proofs, catalog.Proof{Mode: "restore", Status: catalog.ProofPassed, StartedAt: b.at.Add(2 * time.Minute), DurationMS: 900, Rows: 1000, DigestChecked: true})
		case catalog.StatusFailed:
			r.Proofs = append(r.Proofs, catalog.Proof{Mode: "restore", Status: catalog.ProofFailed, StartedAt: b.at.Add(2 * time.Minute), DurationMS: 300,
				Error: `pg_restore: error: could not execute query: ERROR:  relation "items" does not exist`, FailedEntry: "215; 1259 16390 TABLE public items app"})
		}
		if err := pipeline.WriteManifest(r.Archive.Manifest, r, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Add(r); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func nightly(name string, from time.Time, days int, status func(day int) string) []seeded {
	var out []seeded
	for d := 0; d < days; d++ {
		if s := status(d); s != "" {
			out = append(out, seeded{name: name, at: from.AddDate(0, 0, d), status: s})
		}
	}
	return out
}
