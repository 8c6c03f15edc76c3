package pipeline

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/verify"
)

// ImportRow is what catalog import did with one manifest.
type ImportRow struct {
	Manifest string
	Record   *catalog.Record // as recorded (nil when the manifest could not be read)
	Result   string          // "imported", "already recorded", "failed"
	Err      error           // why it failed: a digest mismatch is evidence (ProofFailed)
	// Note says what a rebuild did beyond recording: a name that holds
	// another source in the repository, kept apart under another name.
	Note string
	// Attestation is what a rebuild with trusted keys found of the
	// backup's receipt (Attest*; "" when not asked).
	Attestation string
}

// ImportResult is every row of an Import, and the last event written.
type ImportResult struct {
	Rows  []ImportRow
	Notes []string // what the run could not do and said (rebuild)
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
	// A manifest is written before any receipt: receipts and attestations
	// in one are somebody's writing, never taken.
	rec.Receipts, rec.Attestation, rec.UnattestedProofs = nil, "", nil
	if _, err := cat.Get(rec.ID); err == nil {
		return rec, errAlreadyRecorded
	}
	// The archive beside the manifest, named as the manifest is (the folder
	// may have been moved or copied): never a path the manifest writes,
	// which whoever can write to the folder decides.
	archive := filepath.Join(filepath.Dir(path), unrecordedBase(path)+extOf(rec.Archive))
	format := rec.Archive.Format
	if format == "" {
		format = verify.FormatCustom
	}
	checked, err := checkBeside(archive, format, rec.Archive.BLAKE3)
	if err != nil {
		return rec, err
	}
	dir := filepath.Dir(path)
	if filepath.Base(dir) != UnrecordedDir { // already under its final names
		if err := sameFile(archive, checked); err != nil {
			return rec, err
		}
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
	if err := sameFile(final, checked); err != nil {
		os.Remove(rec.Archive.Manifest) // nothing under a final name is recorded unchecked
		keepUnrecorded(dir, base, final, rec, m.TOCEntries)
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

// checkBeside checks the archive at path against the digest: a regular
// file (or a folder for the directory format) opened without following a
// symbolic link, hashed from what was opened. It returns what it checked,
// to be compared with what is moved or recorded (sameFile).
func checkBeside(path, format, digest string) (os.FileInfo, error) {
	if format == verify.FormatDirectory {
		fi, err := os.Lstat(path)
		if err != nil {
			return nil, &verify.MissingError{Path: path, Err: err}
		}
		if _, err := verify.CheckDigest(path, format, digest); err != nil {
			return nil, err
		}
		return fi, nil
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, &verify.MissingError{Path: path, Err: err}
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return nil, &verify.MissingError{Path: path, Err: errors.New("not a regular file")}
	}
	h := verify.NewHasher()
	if _, err := io.CopyBuffer(h, f, make([]byte, 1<<20)); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if got := h.Sum(); got != digest {
		return nil, &verify.DigestMismatchError{Path: path, Want: digest, Got: got}
	}
	return fi, nil
}

// sameFile fails when path is no longer the file that was checked: it was
// swapped between the check and the move.
func sameFile(path string, checked os.FileInfo) error {
	fi, err := os.Lstat(path)
	if err != nil || !os.SameFile(fi, checked) {
		return &verify.DigestMismatchError{Path: path, Want: "the archive checked", Got: "another file, swapped in while it was imported"}
	}
	return nil
}
