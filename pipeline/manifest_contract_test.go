package pipeline_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/pipeline"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/manifest-v1.golden.json")

// TestManifestContractV1: the manifest beside each archive is a contract of
// its own, version 1 (pgattest_manifest): its wrapper and TOC entries are
// the golden file's, byte for byte (the record inside is pinned by catalog's
// TestRecordJSONContractV1), and the golden file reads back as a manifest:
// what a rebuild or import of a later pgattest must still read. Add
// fields, never rename; anything else is version 2 (DESIGN.md, "Contracts").
func TestManifestContractV1(t *testing.T) {
	rec := &catalog.Record{ID: "shop-20261101T020000Z-ab12", Name: "shop", Status: catalog.StatusVerified,
		StartedAt: time.Date(2026, 11, 1, 2, 0, 0, 0, time.UTC)}
	entries := []catalog.TOCEntry{{DumpID: 215, CatalogOID: 1259, ObjectOID: 16390, Type: "TABLE", Schema: "shop", Name: "orders", Owner: "app"}}
	dir := t.TempDir()
	path := filepath.Join(dir, "shop-20261101T020000Z.manifest.json")
	if err := pipeline.WriteManifest(path, rec, entries); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	golden := filepath.Join("testdata", "manifest-v1.golden.json")
	if *updateGolden {
		os.WriteFile(golden, got, 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("the manifest is no longer the v1 contract:\n%s\nwant (%s):\n%s", got, golden, want)
	}
	m, err := pipeline.ReadManifest(golden)
	if err != nil || m.Manifest != 1 || m.Record.ID != rec.ID || len(m.TOCEntries) != 1 || m.TOCEntries[0] != entries[0] {
		t.Errorf("the v1 golden manifest does not read back: %+v, %v", m, err)
	}
}

// TestManifestDigestsAreHex: a manifest is whoever wrote the file's; one
// whose digests are not 64 hex digits (a line of text planted for show to
// print) is not read, and says which field.
func TestManifestDigestsAreHex(t *testing.T) {
	dir := t.TempDir()
	good := strings.Repeat("ab", 32)
	for field, edit := range map[string]func(*catalog.Record){
		"archive.sha256": func(r *catalog.Record) { r.Archive.SHA256 = good[:60] + "\nOK " },
		"archive.blake3": func(r *catalog.Record) { r.Archive.BLAKE3 = strings.ToUpper(good) },
		"archive.segments.blake3[1]": func(r *catalog.Record) {
			r.Archive.Segments = &catalog.Segments{Size: 4 << 20, BLAKE3: []string{good, "\x1b[2J"}}
		},
		"archive.encryption.plaintext_blake3": func(r *catalog.Record) {
			r.Archive.Encryption = &catalog.Encryption{Scheme: "age", PlaintextBLAKE3: "x"}
		},
		"toc.entries_blake3": func(r *catalog.Record) { r.TOC.EntriesBLAKE3 = good + "0" },
	} {
		rec := &catalog.Record{ID: "shop-20261101T020000Z-ab12", Name: "shop", Archive: catalog.Archive{BLAKE3: good, SHA256: good}}
		edit(rec)
		path := filepath.Join(dir, strings.NewReplacer("[", "", "]", "").Replace(field)+".manifest.json")
		if err := pipeline.WriteManifest(path, rec, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := pipeline.ReadManifest(path); err == nil || !strings.Contains(err.Error(), "its "+field+" is not 64 hex digits") {
			t.Errorf("%s: %v", field, err)
		}
	}
	rec := &catalog.Record{ID: "shop-20261101T020000Z-ab12", Name: "shop", Archive: catalog.Archive{BLAKE3: good, SHA256: good}}
	path := filepath.Join(dir, "good.manifest.json")
	pipeline.WriteManifest(path, rec, nil)
	if _, err := pipeline.ReadManifest(path); err != nil {
		t.Errorf("a manifest with well-formed digests: %v", err)
	}
}
