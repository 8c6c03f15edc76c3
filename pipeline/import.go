package pipeline

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/verify"
)

// ImportRow is what catalog import did with one manifest.
type ImportRow struct {
	Manifest string
	Record   *catalog.Record // as recorded (nil when the manifest could not be read)
	Result   string          // "imported", "already recorded", "failed"
	Err      error           // why it failed: a digest mismatch is evidence (ProofFailed)
}

// ImportResult is every row of an Import, and the last event written.
type ImportResult struct {
	Rows  []ImportRow
	Event catalog.Event
}

// UnrecordedManifests lists the manifests kept in the unrecorded folders
// under dir (DIR/NAME/.pgattest-unrecorded/*.manifest.json).
func UnrecordedManifests(dir string) ([]string, error) {
	return filepath.Glob(filepath.Join(dir, "*", UnrecordedDir, "*.manifest.json"))
}

// Import adds backups to the catalog from their manifests: a run the
// catalog did not take (kept in an unrecorded folder, which then gets its
// final names), or any manifest beside its archive. The archive's digest
// must match the manifest's first; a record the catalog has already is
// left alone. The status is what the record's proofs give by the catalog's
// rule, whatever the manifest says.
func Import(catalogPath string, manifests []string) (*ImportResult, error) {
	if err := checkCatalog(catalogPath, true); err != nil {
		return nil, err
	}
	cat, err := openCatalog(catalogPath, nil)
	if err != nil {
		return nil, err
	}
	defer cat.Close()
	res := &ImportResult{}
	for _, path := range manifests {
		row := ImportRow{Manifest: path}
		row.Record, row.Err = importOne(cat, path, &res.Event)
		switch {
		case errors.Is(row.Err, errAlreadyRecorded):
			row.Result, row.Err = "already recorded", nil
		case row.Err != nil:
			row.Result = "failed"
		default:
			row.Result = "imported"
		}
		res.Rows = append(res.Rows, row)
	}
	return res, nil
}

var errAlreadyRecorded = errors.New("already recorded")

func importOne(cat *catalog.Catalog, path string, last *catalog.Event) (*catalog.Record, error) {
	path, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	m, err := ReadManifest(path)
	if err != nil {
		return nil, err
	}
	rec := m.Record
	if _, err := cat.Get(rec.ID); err == nil {
		return rec, errAlreadyRecorded
	}
	// The archive beside the manifest (the folder may have been moved or
	// copied), else where the manifest says.
	archive := filepath.Join(filepath.Dir(path), filepath.Base(rec.Archive.Path))
	if !exists(archive) {
		archive = rec.Archive.Path
	}
	format := rec.Archive.Format
	if format == "" {
		format = verify.FormatCustom
	}
	if _, err := verify.CheckDigest(archive, format, rec.Archive.BLAKE3); err != nil {
		return rec, err
	}
	dir := filepath.Dir(path)
	if filepath.Base(dir) != UnrecordedDir { // already under its final names
		rec.Archive.Path, rec.Archive.Manifest = archive, path
		ev, err := cat.Import(rec, m.TOCEntries, path)
		if err == nil {
			*last = ev
		}
		return rec, err
	}
	base := unrecordedBase(path)
	final, _, err := claimFinal(filepath.Dir(dir), base, archive, rec, m.TOCEntries)
	if err != nil {
		return rec, err
	}
	ev, err := cat.Import(rec, m.TOCEntries, path)
	if err != nil { // set it aside again: nothing under a final name without a record
		os.Remove(path) // written again beside it
		keepUnrecorded(dir, base, final, rec, m.TOCEntries)
		return rec, err
	}
	*last = ev
	if err := os.Remove(path); err != nil {
		return rec, fmt.Errorf("recorded, but the unrecorded manifest could not be removed: %w", err)
	}
	return rec, nil
}
