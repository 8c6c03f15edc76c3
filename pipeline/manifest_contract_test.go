package pipeline_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
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
