package cli

import (
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/testenv"
	"github.com/pgattest/pgattest/testenv/pgtest"
)

// TestProofDataWhereSet: with --encrypt-to, the proof's throwaway Postgres
// holds the rows in plaintext while it runs; PGATTEST_PROOF_DIR puts it in
// a folder the user chose (a memory disk, an encrypted volume). During an
// encrypted backup and a verify, the proof's cluster is there and never in
// the temp folder, and nothing is left in either after. A setting that is
// not an absolute path to a folder is refused before anything is dumped
// (exit 2, with a hint).
func TestProofDataWhereSet(t *testing.T) {
	src := shop(t)
	w := newWorkdir(t)
	keyFile, public := ageKey(t, t.TempDir(), "key.txt")
	tmp, err := os.MkdirTemp("", "pgattest-tmpdir-")
	if err != nil {
		t.Fatal(err)
	}
	proofDir, err := os.MkdirTemp("", "pgattest-proofdir-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp); os.RemoveAll(proofDir) })
	for _, d := range []string{tmp, proofDir} {
		os.Chmod(d, 0o755) // as root, the server's own user enters it
	}
	t.Setenv("TMPDIR", tmp)
	t.Setenv("PGATTEST_PROOF_DIR", proofDir)

	// Watch both folders while a command runs.
	watch := func(run func()) (inProofDir, inTemp bool) {
		startedAt := time.Now()
		var stop atomic.Bool
		var sawProof, sawTemp atomic.Bool
		done := make(chan struct{})
		go func() {
			defer close(done)
			for !stop.Load() {
				if m, _ := filepath.Glob(filepath.Join(proofDir, testenv.ClusterPrefix+"*")); len(m) > 0 {
					sawProof.Store(true)
				}
				for _, d := range []string{tmp, "/tmp"} {
					m, _ := filepath.Glob(filepath.Join(d, testenv.ClusterPrefix+"*"))
					for _, p := range m {
						if fi, err := os.Stat(p); err != nil || time.Since(fi.ModTime()) > time.Minute || !fi.ModTime().After(startedAt) || p == src.Dir {
							continue
						}
						// In /tmp, tests of other packages start clusters too:
						// only one whose server runs below this test is ours.
						if d == tmp || pgtest.DescendantWith(p) != 0 {
							sawTemp.Store(true)
						}
					}
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
		run()
		stop.Store(true)
		<-done
		return sawProof.Load(), sawTemp.Load()
	}
	var rec *catalog.Record
	inProof, inTemp := watch(func() {
		rec = w.mustBackup(t, "--db", src.ConnString("shop"), "--name", "shop", "--encrypt-to", public)
	})
	if rec.Status != catalog.StatusVerified || !inProof || inTemp {
		t.Errorf("backup: %s; cluster seen in PGATTEST_PROOF_DIR %v, in the temp folder %v; want verified, true, false", rec.Status, inProof, inTemp)
	}
	inProof, inTemp = watch(func() {
		if code, out, errOut := run(t, "--catalog", w.catalog, "verify", "--identity", keyFile, rec.ID); code != 0 {
			t.Errorf("verify: exit %d\n%s%s", code, out, errOut)
		}
	})
	if !inProof || inTemp {
		t.Errorf("verify: cluster seen in PGATTEST_PROOF_DIR %v, in the temp folder %v; want true, false", inProof, inTemp)
	}
	for _, d := range []string{proofDir, tmp} {
		if m, _ := filepath.Glob(filepath.Join(d, testenv.ClusterPrefix+"*")); len(m) > 0 {
			t.Errorf("left behind in %s: %v", d, m)
		}
	}

	for _, bad := range []string{"relative/dir", filepath.Join(proofDir, "missing"), keyFile} {
		t.Setenv("PGATTEST_PROOF_DIR", bad)
		code, _, errOut := w.backup(t, "--db", src.ConnString("shop"), "--name", "refused")
		if code != exitUsage || !strings.Contains(errOut, "PGATTEST_PROOF_DIR") || !strings.Contains(errOut, "hint:") {
			t.Errorf("PGATTEST_PROOF_DIR=%s: exit %d, want 2 with a hint\n%s", bad, code, errOut)
		}
	}
	if _, err := os.Stat(filepath.Join(w.dir, "refused")); err == nil {
		t.Errorf("a refused backup wrote into --dir")
	}
}
