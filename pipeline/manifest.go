package pipeline

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/pipeline/repo"
	"github.com/pgattest/pgattest/pipeline/seal"
	"github.com/pgattest/pgattest/verify"
)

// Manifest is the JSON file beside each archive: the record as it was
// written, and the archive's TOC entries, so that a catalog can be rebuilt
// from the archives' folder and a run the catalog did not take can be
// imported (catalog import).
type Manifest struct {
	Manifest   int                `json:"pgattest_manifest"`
	Record     *catalog.Record    `json:"record"`
	TOCEntries []catalog.TOCEntry `json:"toc_entries,omitempty"`
}

// UnrecordedDir, inside a name's folder (DIR/NAME/), holds the archives
// and manifests of runs whose record the catalog could not take. No run
// sweeps it; catalog import moves them to their final names and records
// them.
const UnrecordedDir = ".pgattest-unrecorded"

// WriteManifest writes the manifest for rec to a new file at path (0600),
// durably: never over a file there, never through a link planted in its
// place (a writer of the folder may plant one).
func WriteManifest(path string, rec *catalog.Record, entries []catalog.TOCEntry) error {
	b, err := manifestBytes(rec, entries)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("write manifest: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write manifest: %w", err)
	}
	return f.Close()
}

func manifestBytes(rec *catalog.Record, entries []catalog.TOCEntry) ([]byte, error) {
	b, err := json.MarshalIndent(Manifest{Manifest: 1, Record: rec, TOCEntries: entries}, "", "  ")
	return append(b, '\n'), err
}

// ReadManifest reads a manifest file.
func ReadManifest(path string) (*Manifest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseManifest(path, b)
}

// parseManifest reads a manifest's bytes; name says where they are from.
func parseManifest(path string, b []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil || m.Manifest != 1 || m.Record == nil || m.Record.ID == "" {
		return nil, fmt.Errorf("%s is not a pgattest manifest", path)
	}
	return &m, nil
}

// archiveExt is the archive's suffix for a format.
func archiveExt(format string) string {
	if format == verify.FormatDirectory {
		return ".dir"
	}
	return ".dump"
}

// extOf is the suffix of a recorded archive's name: .dump.age when it is
// encrypted.
func extOf(a catalog.Archive) string {
	if a.Encryption != nil {
		return archiveExt(a.Format) + seal.Ext
	}
	return archiveExt(a.Format)
}

// claimFinal gives an archive (anywhere on the same file system) and its
// manifest their final names in dir: BASE.dump (or .dir) and
// BASE.manifest.json, or BASE-2… when those are taken. The name is
// claimed by the rename itself, which never replaces: another backup of the
// same name in the same second (a second cron job, a retry) takes the next.
// rec's archive paths are set to the final ones before the manifest is
// written. It returns the final archive and manifest.
func claimFinal(dir, base, archive string, rec *catalog.Record, entries []catalog.TOCEntry) (string, string, error) {
	ext := extOf(rec.Archive)
	var tmp string // a new name each try: never one planted in advance
	defer func() {
		if tmp != "" {
			os.Remove(tmp)
		}
	}()
	var finalArchive, finalManifest string
	err := eachName(base, 1, func(b string, _ int) (bool, error) {
		fa, fm := filepath.Join(dir, b+ext), filepath.Join(dir, b+".manifest.json")
		if exists(fm) {
			return false, nil
		}
		rec.Archive.Path, rec.Archive.Manifest = fa, fm
		if tmp != "" {
			os.Remove(tmp)
		}
		var r [6]byte
		rand.Read(r[:])
		tmp = filepath.Join(dir, ".manifest-"+hex.EncodeToString(r[:])+".json.tmp")
		if err := WriteManifest(tmp, rec, entries); err != nil {
			return false, err
		}
		// The manifest first: it claims BASE, and a kill between the two
		// renames leaves no archive under a final name without its
		// manifest.
		err := repo.RenameNoReplace(tmp, fm)
		if errors.Is(err, fs.ErrExist) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("move manifest into place: %w", err)
		}
		tmp = "" // it is the final manifest now
		err = repo.RenameNoReplace(archive, fa)
		if err != nil {
			os.Remove(fm)
		}
		if errors.Is(err, fs.ErrExist) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("move archive into place: %w", err)
		}
		finalArchive, finalManifest = fa, fm
		return true, nil
	})
	if err != nil {
		return archive, "", err
	}
	repo.SyncDir(dir)
	return finalArchive, finalManifest, nil
}

// eachName offers try the names BASE, BASE-2, BASE-3… (from the from-th)
// until it takes one (true) or fails: the one "first free name" loop, for
// a folder's final and unrecorded names and a bucket's keys.
func eachName(base string, from int, try func(name string, i int) (bool, error)) error {
	for i := from; i < from+1000; i++ {
		b := base
		if i > 1 {
			b = fmt.Sprintf("%s-%d", base, i)
		}
		if ok, err := try(b, i); ok || err != nil {
			return err
		}
	}
	return fmt.Errorf("no free name for %s: 1,000 taken", base)
}

// keepUnrecorded moves an archive the catalog did not take into dir (the
// name's unrecorded folder), with a manifest beside it, and removes a
// final manifest it may have had. It returns where both are now.
func keepUnrecorded(dir, base, archive string, rec *catalog.Record, entries []catalog.TOCEntry) (string, string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return archive, "", err
	}
	if m := rec.Archive.Manifest; m != "" && filepath.Dir(m) != dir {
		os.Remove(m)
	}
	ext := extOf(rec.Archive)
	var kept, manifest string
	err := eachName(base, 1, func(b string, _ int) (bool, error) {
		k, m := filepath.Join(dir, b+ext), filepath.Join(dir, b+".manifest.json")
		if exists(m) {
			return false, nil
		}
		err := repo.RenameNoReplace(archive, k)
		if errors.Is(err, fs.ErrExist) {
			return false, nil
		}
		kept, manifest = k, m
		return err == nil, err
	})
	if err != nil {
		return archive, "", err
	}
	rec.Archive.Path, rec.Archive.Manifest = kept, manifest
	if err := WriteManifest(manifest, rec, entries); err != nil {
		return kept, "", err
	}
	repo.SyncDir(dir)
	return kept, manifest, nil
}

// unrecordedBase is the BASE of an unrecorded manifest's file name.
func unrecordedBase(manifest string) string {
	return strings.TrimSuffix(filepath.Base(manifest), ".manifest.json")
}
