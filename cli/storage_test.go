package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestImportTakesOnlyTheArchiveBeside: a manifest planted in a name's
// unrecorded folder whose archive path names another file of the machine
// (with that file's digest and size) made import move that file into the
// backups folder and record it verified, for a later prune to delete.
// Import takes only the archive beside the manifest, named as it is.
func TestImportTakesOnlyTheArchiveBeside(t *testing.T) {
	src := shop(t)
	w := newWorkdir(t)
	rec := w.mustBackup(t, "--db", src.ConnString("shop"), "--name", "shop")
	b, err := os.ReadFile(rec.Archive.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	// The victim: a file elsewhere (here a copy of an archive, so that its
	// digest is one a manifest can carry).
	victim := filepath.Join(t.TempDir(), "precious.dump")
	archive, _ := os.ReadFile(rec.Archive.Path)
	os.WriteFile(victim, archive, 0o600)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	r := m["record"].(map[string]any)
	r["id"] = "20261205T000000Z-victim-0001"
	r["name"] = "victim"
	r["archive"].(map[string]any)["path"] = victim
	planted := filepath.Join(w.dir, "victim", ".pgattest-unrecorded")
	os.MkdirAll(planted, 0o700)
	b, _ = json.Marshal(m)
	os.WriteFile(filepath.Join(planted, "victim-20261205T000000Z.manifest.json"), b, 0o600)

	code, out, errOut := run(t, "--catalog", w.catalog, "catalog", "import", "--dir", w.dir)
	if code == 0 {
		t.Errorf("import of a manifest without its archive beside it: exit 0\n%s%s", out, errOut)
	}
	if got, err := os.ReadFile(victim); err != nil || len(got) != len(archive) {
		t.Fatalf("the file the manifest named was moved or changed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(w.dir, "victim")); err == nil {
		entries, _ := os.ReadDir(filepath.Join(w.dir, "victim"))
		for _, e := range entries {
			if !strings.HasPrefix(e.Name(), ".") {
				t.Errorf("import put %s under the name's final names", e.Name())
			}
		}
	}
	_, list, _ := run(t, "--catalog", w.catalog, "list", "--name", "victim")
	if strings.Contains(list, "victim-0001") {
		t.Errorf("the planted manifest was recorded:\n%s", list)
	}
}
