package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/pipeline/repo"
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
	if rec.Archive.Format == verify.FormatDirectory { // a folder has no digests of one file
		rec.Archive.SHA256, rec.Archive.Segments = "", nil
	}
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
	// Out of the unrecorded folder, through the folder's repository: the
	// first free final name is claimed by the manifest (never over one),
	// then the archive is moved beside it (never over one), and must still
	// be the file checked.
	nameDir := filepath.Dir(dir)
	r := &repo.Local{Root: filepath.Dir(nameDir)}
	name, base := filepath.Base(nameDir), unrecordedBase(path)
	aside := name + "/" + UnrecordedDir + "/" + base + extOf(rec.Archive)
	final, finalManifest, err := claimFinalIn(r, name, base, aside, rec, m.TOCEntries)
	if err != nil {
		return rec, err
	}
	setAside := func() { // nothing under a final name without a record
		ctx := context.Background()
		r.Delete(ctx, finalManifest, "")
		r.Move(ctx, final, aside)
	}
	if err := sameFile(filepath.Join(r.Root, filepath.FromSlash(final)), checked); err != nil {
		setAside()
		return rec, err
	}
	ev, err := cat.Import(rec, m.TOCEntries, path)
	if err != nil {
		setAside()
		return rec, err
	}
	*last = ev
	if err := r.Delete(context.Background(), name+"/"+UnrecordedDir+"/"+base+".manifest.json", ""); err != nil {
		return rec, fmt.Errorf("recorded, but the unrecorded manifest could not be removed: %w", err)
	}
	return rec, nil
}

// claimFinalIn gives the archive at the key aside and a manifest their
// final names in NAME/: BASE.dump (or .dir) and BASE.manifest.json, or
// BASE-2… when those are taken. The manifest claims the name first (an
// exclusive Create), so a kill in between leaves no archive under a final
// name without its manifest; rec's archive paths are set to the final ones
// before it is written. It returns the archive's and the manifest's keys.
func claimFinalIn(r *repo.Local, name, base, aside string, rec *catalog.Record, entries []catalog.TOCEntry) (string, string, error) {
	ctx := context.Background()
	ext := extOf(rec.Archive)
	var final, manifest string
	err := eachName(base, 1, func(b string, _ int) (bool, error) {
		fa, fm := name+"/"+b+ext, name+"/"+b+".manifest.json"
		l := location{repo: r, key: fa, manifest: fm}
		l.display = l.show(fa)
		l.place(rec, repo.Object{})
		body, err := manifestBytes(rec, entries)
		if err != nil {
			return false, err
		}
		err = putObject(ctx, r, fm, repo.CreateOptions{Exclusive: true}, body)
		if errors.Is(err, repo.ErrExists) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		err = r.Move(ctx, aside, fa)
		if err != nil {
			r.Delete(ctx, fm, "")
		}
		if errors.Is(err, repo.ErrExists) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("move archive into place: %w", err)
		}
		final, manifest = fa, fm
		return true, nil
	})
	return final, manifest, err
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
