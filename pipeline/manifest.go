package pipeline

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"

	"github.com/pgattest/pgattest/catalog"
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
	if field := badDigest(m.Record); field != "" {
		return nil, fmt.Errorf("%s is not a pgattest manifest: its %s is not 64 hex digits", path, field)
	}
	return &m, nil
}

// badDigest names a digest of a manifest's record that is not 64 hex
// digits (or absent): whoever wrote the file chose every byte of it, and
// show prints digests as they are.
func badDigest(rec *catalog.Record) string {
	a := rec.Archive
	fields := map[string]string{"archive.blake3": a.BLAKE3, "archive.sha256": a.SHA256, "toc.entries_blake3": rec.TOC.EntriesBLAKE3}
	if a.Encryption != nil {
		fields["archive.encryption.plaintext_blake3"] = a.Encryption.PlaintextBLAKE3
	}
	if a.Segments != nil {
		for i, d := range a.Segments.BLAKE3 {
			fields[fmt.Sprintf("archive.segments.blake3[%d]", i)] = d
		}
	}
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		if d := fields[k]; d != "" && !hex64.MatchString(d) {
			return k
		}
	}
	return ""
}

var hex64 = regexp.MustCompile(`^[0-9a-f]{64}$`)

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

// unrecordedBase is the BASE of an unrecorded manifest's file name.
func unrecordedBase(manifest string) string {
	return strings.TrimSuffix(filepath.Base(manifest), ".manifest.json")
}
