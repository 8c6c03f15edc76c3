package pipeline

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/pipeline/seal"
	"github.com/pgattest/pgattest/verify"
	"golang.org/x/sys/unix"
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

// WriteManifest writes the manifest for rec to path (0600), durably.
func WriteManifest(path string, rec *catalog.Record, entries []catalog.TOCEntry) error {
	b, err := manifestBytes(rec, entries)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
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
	tmp := filepath.Join(dir, ".manifest-"+base+".json.tmp")
	defer os.Remove(tmp)
	for i := 1; ; i++ {
		b := base
		if i > 1 {
			b = fmt.Sprintf("%s-%d", base, i)
		}
		finalArchive := filepath.Join(dir, b+ext)
		finalManifest := filepath.Join(dir, b+".manifest.json")
		if exists(finalManifest) {
			continue
		}
		rec.Archive.Path, rec.Archive.Manifest = finalArchive, finalManifest
		if err := WriteManifest(tmp, rec, entries); err != nil {
			return archive, "", err
		}
		// The manifest first: it claims BASE, and a kill between the two
		// renames leaves no archive under a final name without its
		// manifest.
		err := renameNoReplace(tmp, finalManifest)
		if errors.Is(err, fs.ErrExist) && i <= 1000 {
			continue
		}
		if err != nil {
			return archive, "", fmt.Errorf("move manifest into place: %w", err)
		}
		err = renameNoReplace(archive, finalArchive)
		if err != nil {
			os.Remove(finalManifest)
		}
		if errors.Is(err, fs.ErrExist) && i <= 1000 {
			continue
		}
		if err != nil {
			return archive, "", fmt.Errorf("move archive into place: %w", err)
		}
		syncDir(dir)
		return finalArchive, finalManifest, nil
	}
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
	for i := 1; ; i++ {
		b := base
		if i > 1 {
			b = fmt.Sprintf("%s-%d", base, i)
		}
		kept, manifest := filepath.Join(dir, b+ext), filepath.Join(dir, b+".manifest.json")
		if exists(manifest) {
			continue
		}
		err := renameNoReplace(archive, kept)
		if errors.Is(err, fs.ErrExist) && i <= 1000 {
			continue
		}
		if err != nil {
			return archive, "", err
		}
		rec.Archive.Path, rec.Archive.Manifest = kept, manifest
		if err := WriteManifest(manifest, rec, entries); err != nil {
			return kept, "", err
		}
		syncDir(dir)
		return kept, manifest, nil
	}
}

// renameNoReplace moves src to dst, failing with fs.ErrExist when dst
// exists. Where the file system cannot rename without replacing, it checks
// first (a narrow race, only there).
func renameNoReplace(src, dst string) error {
	err := unix.Renameat2(unix.AT_FDCWD, src, unix.AT_FDCWD, dst, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		if _, serr := os.Lstat(dst); serr == nil {
			return &os.LinkError{Op: "rename", Old: src, New: dst, Err: fs.ErrExist}
		}
		return os.Rename(src, dst)
	}
	if err != nil {
		return &os.LinkError{Op: "rename", Old: src, New: dst, Err: err}
	}
	return nil
}

// unrecordedBase is the BASE of an unrecorded manifest's file name.
func unrecordedBase(manifest string) string {
	return strings.TrimSuffix(filepath.Base(manifest), ".manifest.json")
}
