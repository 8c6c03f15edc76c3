package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/pipeline"
	"github.com/pgattest/pgattest/testenv/pgtest"
)

// TestVerifiedMeansRestored: a backup proven only by reading it through
// (--verify read) or not at all (--verify none) is unverified, keeps its
// read proof, is no day's coverage in an audit and never picked by
// restore --as-of; a later verify that restores it makes it verified.
func TestVerifiedMeansRestored(t *testing.T) {
	src := shop(t)
	w := newWorkdir(t)
	for _, mode := range []string{"read", "none"} {
		rec := w.mustBackup(t, "--db", src.ConnString("shop"), "--name", "shop", "--verify", mode)
		if rec.Status != catalog.StatusUnverified {
			t.Errorf("--verify %s: status %s, want unverified", mode, rec.Status)
		}
		if mode == "read" && (len(rec.Proofs) != 1 || rec.Proofs[0].Mode != "read" || rec.Proofs[0].Status != catalog.ProofPassed) {
			t.Errorf("--verify read: proofs %+v, want the passed read proof kept", rec.Proofs)
		}
	}
	today := time.Now().UTC().Format(time.DateOnly)
	code, out, _ := run(t, "--catalog", w.catalog, "--json", "audit", "--from", today, "--to", today)
	if code != exitProofFailed || !strings.Contains(out, `"days_covered": 0`) {
		t.Errorf("audit of a day with only unverified backups: exit %d, want 3 and no day covered\n%s", code, out)
	}
	code, _, errOut := run(t, "--catalog", w.catalog, "restore", "--name", "shop", "--target", src.ConnString("postgres"), "--dry-run")
	if code == 0 || !strings.Contains(errOut, "no proven backup") {
		t.Errorf("restore --as-of picked an unverified backup: exit %d\n%s", code, errOut)
	}
	// A restore proof later: now it is verified, and the day is covered.
	code, out, errOut = run(t, "--catalog", w.catalog, "--json", "verify", "--all")
	if code != 0 {
		t.Fatalf("verify: exit %d\n%s", code, errOut)
	}
	var verified int
	for _, r := range decodeRecords(t, out) {
		if r.Status == catalog.StatusVerified {
			verified++
		}
	}
	if verified != 2 {
		t.Errorf("%d backups verified by a restore proof, want 2", verified)
	}
	if code, _, errOut := run(t, "--catalog", w.catalog, "audit", "--from", today, "--to", today); code != 0 {
		t.Errorf("audit after the restore proof: exit %d\n%s", code, errOut)
	}
}

// TestFaultCatalogLockedNotRecorded: while another process holds the
// catalog, a backup says it waits and for whom; when it gives up, nothing
// is left under a final name (the archive and manifest are set aside in
// the unrecorded folder, with a hint), and catalog import records the run
// once the catalog is free: the archive takes its final name, the chain
// and the archive verify.
func TestFaultCatalogLockedNotRecorded(t *testing.T) {
	src := shop(t)
	w := newWorkdir(t)
	first := w.mustBackup(t, "--db", src.ConnString("shop"), "--name", "shop")
	holder := exec.Command("flock", "--exclusive", "--close", w.catalog, "sleep", "60") // --close: only flock holds it
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // flock has the lock
	t.Setenv("PGATTEST_CATALOG_WAIT", "2s")
	code, out, errOut := w.backup(t, "--db", src.ConnString("shop"), "--name", "shop")
	holder.Process.Kill()
	holder.Wait()
	if code != exitFailure {
		t.Fatalf("exit %d, want 1\n%s%s", code, out, errOut)
	}
	for _, want := range []string{
		fmt.Sprintf("waiting for the catalog, held by pid %d", holder.Process.Pid),
		"was written but not recorded", "catalog is in use", "hint: ", "pgattest catalog import ",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	finals, _ := filepath.Glob(filepath.Join(w.dir, "shop", "shop-*"))
	if len(finals) != 2 { // the first backup's archive and manifest only
		t.Errorf("under final names: %v, want only the first backup's", finals)
	}
	kept, _ := filepath.Glob(filepath.Join(w.dir, "shop", pipeline.UnrecordedDir, "*"))
	if len(kept) != 2 {
		t.Fatalf("set aside: %v, want an archive and its manifest", kept)
	}
	// Free again: import records it.
	code, out, errOut = run(t, "--catalog", w.catalog, "catalog", "import", "--dir", w.dir)
	if code != 0 || !strings.Contains(out, "1 imported") {
		t.Fatalf("catalog import: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = run(t, "--catalog", w.catalog, "--json", "list")
	recs := decodeRecords(t, out)
	if code != 0 || len(recs) != 2 || recs[1].ID != first.ID || recs[0].Status != catalog.StatusVerified {
		t.Fatalf("list after import: %d records", len(recs))
	}
	if dir := filepath.Dir(recs[0].Archive.Path); dir != filepath.Join(w.dir, "shop") && !strings.HasSuffix(dir, filepath.Join("backups", "shop")) {
		t.Errorf("imported archive at %s, want its final name", recs[0].Archive.Path)
	}
	if left, _ := filepath.Glob(filepath.Join(w.dir, "shop", pipeline.UnrecordedDir, "*")); len(left) != 0 {
		t.Errorf("still set aside after import: %v", left)
	}
	if code, out, errOut := run(t, "--catalog", w.catalog, "catalog", "verify", "--archives"); code != 0 {
		t.Errorf("catalog verify --archives after import: exit %d\n%s%s", code, out, errOut)
	}
	// A second import finds nothing to do; importing the same manifest
	// again leaves the record alone.
	if code, _, errOut := run(t, "--catalog", w.catalog, "catalog", "import", "--dir", w.dir); code != 0 || !strings.Contains(errOut, "no manifests") {
		t.Errorf("second import: exit %d\n%s", code, errOut)
	}
	if code, out, _ := run(t, "--catalog", w.catalog, "catalog", "import", recs[0].Archive.Manifest); code != 0 || !strings.Contains(out, "already recorded") {
		t.Errorf("import of a recorded manifest: exit %d\n%s", code, out)
	}
	// A manifest whose archive changed is refused as evidence.
	os.WriteFile(recs[1].Archive.Path, []byte("PGDMP not the same bytes"), 0o600)
	other := newWorkdir(t)
	code, _, errOut = run(t, "--catalog", other.catalog, "catalog", "import", recs[1].Archive.Manifest)
	if code != exitProofFailed || !strings.Contains(errOut, "do not match") {
		t.Errorf("import of a changed archive: exit %d, want 3\n%s", code, errOut)
	}
}

// TestFaultCatalogLockedNotStored: the same held catalog with a bucket,
// which keeps no unrecorded runs (its objects may be locked where they
// are): the backup says so, exit 1, and nothing of the run is in the
// bucket: no object beyond the first backup's, no unfinished upload.
func TestFaultCatalogLockedNotStored(t *testing.T) {
	src := shop(t)
	s := pgtest.NewS3(t)
	s.MakeBucket(t, "locked", false)
	s.SetEnv(t)
	w := newWorkdir(t)
	w.mustBackup(t, "--db", src.ConnString("shop"), "--name", "shop", "--repo", "s3://locked/pg")
	before := s3Keys(t, s, "locked")
	holder := exec.Command("flock", "--exclusive", "--close", w.catalog, "sleep", "60")
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	t.Setenv("PGATTEST_CATALOG_WAIT", "2s")
	code, out, errOut := w.backup(t, "--db", src.ConnString("shop"), "--name", "shop", "--repo", "s3://locked/pg")
	holder.Process.Kill()
	holder.Wait()
	if code != exitFailure {
		t.Fatalf("exit %d, want 1\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"not recorded", "catalog is in use", "the upload was aborted: nothing was stored"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	if after := s3Keys(t, s, "locked"); !slices.Equal(after, before) {
		t.Errorf("the bucket holds %q, want only the first backup's %q", after, before)
	}
	if n := incompleteUploads(t, s, "locked"); n != 0 {
		t.Errorf("%d unfinished uploads left", n)
	}
}

func decodeRecords(t *testing.T, stdout string) []*catalog.Record {
	t.Helper()
	var recs []*catalog.Record
	if err := json.Unmarshal([]byte(stdout), &recs); err != nil {
		t.Fatalf("stdout is not a JSON array of records: %v\n%s", err, stdout)
	}
	return recs
}

// TestFaultCatalogDiskFull: the catalog's file system is full when the
// record is written: nothing stays under a final name, the run is set
// aside for catalog import, and the hint says the disk is full.
func TestFaultCatalogDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: mounting a small tmpfs needs root")
	}
	src := shop(t)
	w := newWorkdir(t)
	small := filepath.Join(t.TempDir(), "small")
	os.Mkdir(small, 0o700)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", small).CombinedOutput(); err != nil {
		t.Skipf("skipping: cannot mount a tmpfs here: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", small).Run() })
	w.catalog = filepath.Join(small, "catalog.db")
	w.mustBackup(t, "--db", src.ConnString("shop"), "--name", "shop")
	// Fill what is left of the file system.
	filler, _ := os.Create(filepath.Join(small, "filler"))
	buf := make([]byte, 4096)
	for {
		if _, err := filler.Write(buf); err != nil {
			break
		}
	}
	filler.Close()
	code, _, errOut := w.backup(t, "--db", src.ConnString("shop"), "--name", "shop")
	if code != exitFailure {
		t.Fatalf("exit %d, want 1\n%s", code, errOut)
	}
	for _, want := range []string{"was written but not recorded", "no space left on device", "hint: the file system that holds the catalog is full", "pgattest catalog import "} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	if finals, _ := filepath.Glob(filepath.Join(w.dir, "shop", "shop-*")); len(finals) != 2 {
		t.Errorf("under final names: %v, want only the first backup's", finals)
	}
	if kept, _ := filepath.Glob(filepath.Join(w.dir, "shop", pipeline.UnrecordedDir, "*")); len(kept) != 2 {
		t.Errorf("set aside: %v, want an archive and its manifest", kept)
	}
	os.Remove(filepath.Join(small, "filler"))
	if code, out, errOut := run(t, "--catalog", w.catalog, "catalog", "import", "--dir", w.dir); code != 0 || !strings.Contains(out, "1 imported") {
		t.Errorf("catalog import once there is room: exit %d\n%s%s", code, out, errOut)
	}
}
