package pipeline_test

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/pipeline"
	"github.com/pgattest/pgattest/testenv"
	"github.com/pgattest/pgattest/testenv/pgtest"
	"github.com/pgattest/pgattest/verify"
	"github.com/zeebo/blake3"
)

// shopCluster starts a cluster with the sample database "shop" loaded.
func shopCluster(t *testing.T) *testenv.Cluster {
	t.Helper()
	c := pgtest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := testenv.LoadSample(ctx, c, "shop"); err != nil {
		t.Fatal(err)
	}
	return c
}

// sourceCounts returns the exact row count of every table of db.
func sourceCounts(t *testing.T, c *testenv.Cluster, db string) map[string]int64 {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, c.ConnString(db))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r','m') AND n.nspname NOT IN ('pg_catalog','information_schema') AND n.nspname NOT LIKE 'pg_toast%'`)
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([2]string, error) {
		var s [2]string
		err := r.Scan(&s[0], &s[1])
		return s, err
	})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, n := range names {
		var cnt int64
		q := "SELECT count(*) FROM " + pgx.Identifier{n[0], n[1]}.Sanitize()
		if err := conn.QueryRow(ctx, q).Scan(&cnt); err != nil {
			t.Fatal(err)
		}
		out[n[0]+"."+n[1]] = cnt
	}
	return out
}

func backupOptions(t *testing.T, db string) pipeline.Options {
	dir := t.TempDir()
	return pipeline.Options{
		DB:          db,
		Dir:         filepath.Join(dir, "backups"),
		CatalogPath: filepath.Join(dir, "catalog.db"),
		Compress:    1,
		Version:     "test",
	}
}

func TestBackupSampleVerified(t *testing.T) {
	src := shopCluster(t)
	o := backupOptions(t, src.ConnString("shop"))
	o.Name = "shop"
	ctx := context.Background()
	res, err := pipeline.Backup(ctx, o)
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	rec := res.Record
	if rec.Status != catalog.StatusVerified {
		t.Fatalf("status = %s, want verified; proofs %+v", rec.Status, rec.Proofs)
	}
	if !rec.Proofs[0].Streamed {
		t.Error("the proof did not restore from the dump's stream")
	}
	// The digest recomputed from the file equals the record.
	d, err := verify.HashArchive(rec.Archive.Path, rec.Archive.Format)
	if err != nil {
		t.Fatal(err)
	}
	if d.BLAKE3 != rec.Archive.BLAKE3 || d.Size != rec.Archive.Size {
		t.Fatalf("file digest %s/%d, record %s/%d", d.BLAKE3, d.Size, rec.Archive.BLAKE3, rec.Archive.Size)
	}
	// pgattest compressed it, and the archive's own header says gzip.
	if rec.Archive.Compressor != "pgattest" || (rec.TOC.Compression != "1" && rec.TOC.Compression != "gzip") {
		t.Errorf("compressor %q, header compression %q: want pgattest's gzip", rec.Archive.Compressor, rec.TOC.Compression)
	}
	// Every table's restored row count equals the source's.
	want := sourceCounts(t, src, "shop")
	got := map[string]int64{}
	for _, tc := range rec.Proofs[0].Tables {
		got[tc.Schema+"."+tc.Name] = tc.Rows
	}
	if len(got) == 0 {
		t.Fatal("proof counted no tables")
	}
	for name, n := range want {
		if got[name] != n {
			t.Errorf("table %s: restored %d rows, source has %d", name, got[name], n)
		}
	}
	var total int64
	for _, n := range want {
		total += n
	}
	if rec.Proofs[0].Rows != total || total < 100000 {
		t.Errorf("proof rows %d, source rows %d", rec.Proofs[0].Rows, total)
	}
	// The record is in the catalog, and the manifest beside the archive.
	cat, err := catalog.Open(o.CatalogPath, catalog.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	stored, err := cat.Get(rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stored.Archive.BLAKE3 != rec.Archive.BLAKE3 || stored.Status != catalog.StatusVerified {
		t.Errorf("stored record differs: %+v", stored.Archive)
	}
	for _, p := range []string{rec.Archive.Path, rec.Archive.Manifest, o.CatalogPath} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", p, fi.Mode().Perm())
		}
	}
	if fi, _ := os.Stat(filepath.Dir(rec.Archive.Path)); fi.Mode().Perm() != 0o700 {
		t.Errorf("archive folder mode %v, want 0700", fi.Mode().Perm())
	}
	if rec.Tools.PgDump == "" || rec.Tools.ProofServer == "" || rec.Source.ServerVersion == "" {
		t.Errorf("versions missing: %+v %+v", rec.Tools, rec.Source)
	}
	stages := map[string]bool{}
	for _, s := range rec.Stages {
		stages[s.Name] = true
	}
	for _, s := range []string{"preflight", "dump", "inventory", "prove", "record"} {
		if !stages[s] {
			t.Errorf("no duration for stage %s in %+v", s, rec.Stages)
		}
	}
	if rec.TOC.Counts["TABLE"] < 5 || len(rec.TOC.Tables) < 5 {
		t.Errorf("toc summary too small: %+v", rec.TOC)
	}
	// Nothing left in staging.
	entries, _ := os.ReadDir(filepath.Dir(rec.Archive.Path))
	for _, e := range entries {
		if e.Name()[0] == '.' {
			t.Errorf("leftover %s", e.Name())
		}
	}
}

func TestBackupDirectoryFormatJobs(t *testing.T) {
	src := shopCluster(t)
	o := backupOptions(t, src.ConnString("shop"))
	o.Name, o.Jobs = "shop", 2
	res, err := pipeline.Backup(context.Background(), o)
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	rec := res.Record
	if rec.Status != catalog.StatusVerified || rec.Archive.Format != verify.FormatDirectory || rec.Archive.Jobs != 2 {
		t.Fatalf("status %s format %s jobs %d", rec.Status, rec.Archive.Format, rec.Archive.Jobs)
	}
	fi, err := os.Stat(rec.Archive.Path)
	if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Fatalf("archive %s: %v %v", rec.Archive.Path, fi, err)
	}
	// The digest is DESIGN §3's: BLAKE3 over sorted "path size blake3" lines.
	var lines []string
	filepath.WalkDir(rec.Archive.Path, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if info, _ := d.Info(); info.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v", p, info.Mode().Perm())
		}
		rel, _ := filepath.Rel(rec.Archive.Path, p)
		sum := blake3.Sum256(b)
		lines = append(lines, fmt.Sprintf("%s %d %x\n", filepath.ToSlash(rel), len(b), sum))
		return nil
	})
	sort.Strings(lines)
	want := blake3.Sum256([]byte(strings.Join(lines, "")))
	if rec.Archive.BLAKE3 != hex.EncodeToString(want[:]) {
		t.Errorf("digest %s, computed by hand %x", rec.Archive.BLAKE3, want)
	}
	if rec.Archive.Files != len(lines) || rec.Archive.Files < 3 {
		t.Errorf("files %d, found %d", rec.Archive.Files, len(lines))
	}
	got := map[string]int64{}
	for _, tc := range rec.Proofs[0].Tables {
		got[tc.Schema+"."+tc.Name] = tc.Rows
	}
	for name, n := range sourceCounts(t, src, "shop") {
		if got[name] != n {
			t.Errorf("table %s: restored %d rows, source has %d", name, got[name], n)
		}
	}
}

// A database that dumps fine and does not restore: a CHECK constraint calls
// a SQL function that reads a table without a schema. pg_dump runs with an
// empty search_path, so the restore's COPY fails. This is why the proof
// exists; the record says failed, and names the entry.
func TestBackupThatDoesNotRestore(t *testing.T) {
	src := pgtest.New(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, src.ConnString("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`CREATE TABLE allowed (code text PRIMARY KEY)`,
		`INSERT INTO allowed VALUES ('a'), ('b')`,
		`CREATE FUNCTION is_allowed(c text) RETURNS boolean LANGUAGE sql AS 'SELECT EXISTS (SELECT 1 FROM allowed WHERE code = c)'`,
		`CREATE TABLE items (id int PRIMARY KEY, code text CHECK (is_allowed(code)))`,
		`INSERT INTO items SELECT g, CASE WHEN g % 2 = 0 THEN 'a' ELSE 'b' END FROM generate_series(1, 100) g`,
		// Dumped after items: megabytes that pg_dump still writes after
		// pg_restore, streaming, has stopped at items.
		`CREATE TABLE zz_bulk (id int, note text)`,
		`INSERT INTO zz_bulk SELECT g, md5(g::text) || md5((g * 7)::text) FROM generate_series(1, 150000) g`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	conn.Close(ctx)
	o := backupOptions(t, src.ConnString("postgres"))
	o.Name = "broken"
	res, err := pipeline.Backup(ctx, o)
	if err == nil {
		t.Fatal("a backup that cannot be restored was reported as proven")
	}
	if !verify.ProofFailed(err) {
		t.Errorf("error %v does not report a failed proof", err)
	}
	if res == nil || res.Record.Status != catalog.StatusFailed {
		t.Fatalf("want a record with status failed, got %+v", res)
	}
	p := res.Record.Proofs[0]
	if !strings.Contains(p.FailedEntry, "items") || !strings.Contains(p.Error, "allowed") {
		t.Errorf("proof does not name the entry and Postgres' message: entry %q, error %q", p.FailedEntry, p.Error)
	}
	// The archive is kept whole (it is evidence), and the catalog says failed.
	d, err := verify.HashArchive(res.Record.Archive.Path, verify.FormatCustom)
	if err != nil || d.BLAKE3 != res.Record.Archive.BLAKE3 || d.Size < 5<<20 {
		t.Errorf("archive %s: %v, %d bytes, digest matches %v", res.Record.Archive.Path, err, d.Size, d.BLAKE3 == res.Record.Archive.BLAKE3)
	}
	if n := res.Record.TOC.Counts["TABLE DATA"]; n != 3 {
		t.Errorf("the archive lists %d TABLE DATA entries, want 3 (allowed, items, zz_bulk)", n)
	}
	cat, err := catalog.Open(o.CatalogPath, catalog.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	if _, err := cat.AsOf("broken", time.Now()); !errors.Is(err, catalog.ErrNotFound) {
		t.Errorf("AsOf found a backup whose proof failed: %v", err)
	}
}

// TestStreamedProofFallsBackToTheFile: when the restore fed from the dump's
// stream stops saying the archive is incomplete (pg_restore cannot seek a
// stream for a block out of order), the file — hashed to its end — is
// proven instead, and the backup is not called incomplete.
func TestStreamedProofFallsBackToTheFile(t *testing.T) {
	src := shopCluster(t)
	server := pgtest.Require(t, testenv.Want{Tools: append(testenv.ClientTools, testenv.ServerTools...)})
	// A pg_restore that fails as a seek-less stream would, and only then.
	bin, err := os.MkdirTemp("", "pgattest-fakebin-") // the server user (as root) runs initdb from here
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(bin) })
	os.Chmod(bin, 0o755)
	for _, tool := range []string{"pg_dump", "initdb", "postgres"} {
		os.Symlink(server.Path(tool), filepath.Join(bin, tool))
	}
	marker := filepath.Join(bin, "STREAMED")
	script := fmt.Sprintf(`#!/bin/sh
for a in "$@"; do last="$a"; done
case "$last" in *.list) ;; *) exec %q "$@" ;; esac # the stream's last argument is its -L list
cat >/dev/null
touch %q
echo 'pg_restore: error: could not find block ID 3367 in archive -- possibly due to out-of-order restore request, which cannot be handled due to lack of data offsets in archive' >&2
exit 1
`, server.Path("pg_restore"), marker)
	if err := os.WriteFile(filepath.Join(bin, "pg_restore"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	o := backupOptions(t, src.ConnString("shop"))
	o.Name, o.PGBin = "shop", []string{bin}
	t.Setenv("PGATTEST_CACHE_DIR", t.TempDir()) // a template for this folder, gone after the test
	res, err := pipeline.Backup(context.Background(), o)
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatal("the streamed restore never ran; the test proved nothing")
	}
	p := res.Record.Proofs[0]
	if res.Record.Status != catalog.StatusVerified || p.Streamed || p.Rows < 100000 {
		t.Errorf("status %s, streamed %v, rows %d: want verified from the file", res.Record.Status, p.Streamed, p.Rows)
	}
}
