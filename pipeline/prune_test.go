package pipeline

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgattest/pgattest/catalog"
)

// removeArchive deletes only what looks like what pgattest wrote: a record
// pointing elsewhere (edited, or a path reused) must not delete it.
func TestRemoveArchiveDeletesOnlyArchives(t *testing.T) {
	dir := t.TempDir()
	write := func(p string) string {
		os.MkdirAll(filepath.Dir(p), 0o700)
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	dumpDir := filepath.Join(dir, "good.dir")
	write(filepath.Join(dumpDir, "toc.dat"))
	write(filepath.Join(dumpDir, "3451.dat.gz"))
	manifest := write(filepath.Join(dir, "good.manifest.json"))
	notDump := filepath.Join(dir, "home")
	write(filepath.Join(notDump, "notes.txt"))
	nested := filepath.Join(dir, "nested.dir")
	write(filepath.Join(nested, "toc.dat"))
	write(filepath.Join(nested, "sub", "keep.txt"))
	target := write(filepath.Join(dir, "precious.txt"))
	link := filepath.Join(dir, "link.dump")
	os.Symlink(target, link)

	tests := []struct {
		name, path, format string
		wantErr            string
		gone               []string
		kept               []string
	}{
		{"directory archive", dumpDir, "directory", "", []string{dumpDir, manifest}, nil},
		{"folder without toc.dat", notDump, "directory", "no toc.dat", nil, []string{notDump}},
		{"folder with a subfolder", nested, "directory", "which pg_dump does not write", nil, []string{filepath.Join(nested, "sub", "keep.txt")}},
		{"custom archive that is a symlink", link, "custom", "not a regular file", nil, []string{link, target}},
		{"relative path", "good.dump", "custom", "no absolute archive path", nil, nil},
		{"already gone", filepath.Join(dir, "gone.dump"), "custom", "", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &catalog.Record{ID: "x", Archive: catalog.Archive{Path: tt.path, Format: tt.format}}
			if tt.name == "directory archive" {
				rec.Archive.Manifest = manifest
			}
			note, err := removeArchive(rec)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("err = %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			if tt.name == "already gone" && note == "" {
				t.Error("no note that the archive was already gone")
			}
			for _, p := range tt.gone {
				if _, err := os.Lstat(p); !os.IsNotExist(err) {
					t.Errorf("%s still there", p)
				}
			}
			for _, p := range tt.kept {
				if _, err := os.Lstat(p); err != nil {
					t.Errorf("%s deleted: %v", p, err)
				}
			}
		})
	}
}

// oneBackupEach: the copy recorded last stands for its family, however
// the IDs' random suffixes sort (the old tie-break by ID kept the original
// whenever its suffix sorted after the copy's).
func TestOneBackupEachKeepsTheNewestCopy(t *testing.T) {
	orig := &catalog.Record{ID: "shop-20261101T000000Z-ffff"}
	first := &catalog.Record{ID: "shop-20261101T000000Z-0001", ReencryptedFrom: orig.ID}
	second := &catalog.Record{ID: "shop-20261101T000000Z-0000", ReencryptedFrom: first.ID}
	other := &catalog.Record{ID: "shop-20261102T000000Z-aaaa"}
	seqs := map[string]uint64{orig.ID: 1, first.ID: 5, second.ID: 9, other.ID: 7}
	all := []*catalog.Record{other, orig, first, second}
	stands, members := oneBackupEach(all, all, seqs)
	if len(stands) != 2 || stands[0] != other || stands[1] != second {
		t.Fatalf("stands = %v, want the other backup and the last copy", stands)
	}
	if m := members[second.ID]; len(m) != 2 || m[0] != first || m[1] != orig {
		t.Errorf("members = %v", m)
	}
	// The last copy's archive gone: the one before it stands.
	stands, members = oneBackupEach(all, []*catalog.Record{orig, first}, seqs)
	if len(stands) != 1 || stands[0] != first || len(members[first.ID]) != 1 {
		t.Errorf("without the last copy: stands %v, members %v", stands, members)
	}
}
