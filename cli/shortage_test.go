package cli

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/testenv"
	"github.com/pgattest/pgattest/testenv/pgtest"
)

// smallTemp mounts a tmpfs of size bytes as the temp folder (TMPDIR) for
// the rest of the test: where the proof's throwaway clusters live.
func smallTemp(t *testing.T, size int64) string {
	t.Helper()
	dir := mountTmpfs(t, size)
	t.Setenv("TMPDIR", dir)
	return dir
}

// mountTmpfs mounts a tmpfs of size bytes for the rest of the test, in a
// folder the server's system user can enter (as root the server runs as
// pgattest's own user).
func mountTmpfs(t *testing.T, size int64) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: mounting a small tmpfs needs root")
	}
	dir, err := os.MkdirTemp("", "pgattest-smalltmp-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=1777", size), "tmpfs", dir).CombinedOutput(); err != nil {
		os.Remove(dir)
		t.Fatalf("mount a tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		exec.Command("umount", dir).Run()
		os.Remove(dir)
	})
	return dir
}

// clusterFootprint is what a throwaway cluster with a proof database takes
// on disk before any of an archive is restored, measured on a tmpfs.
func clusterFootprint(t *testing.T) int64 {
	t.Helper()
	dir := mountTmpfs(t, 512<<20)
	c := pgtest.New(t, testenv.Options{Parent: dir, Superuser: "measure"})
	exec1(t, c, "postgres", "CREATE DATABASE pgattest_proof TEMPLATE template0")
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	used := int64(st.Blocks-st.Bfree) * st.Bsize
	c.Stop(t.Context())
	return used
}

// TestFaultProofShortOfDisk: the temp folder, where the proof's throwaway
// cluster lives, fills when the cluster starts, during the COPY of a
// table, and during an index build. Each time the backup exits 1, is
// recorded unverified (never failed: the archive is not at fault) with the
// proof's error, and the hint names the folder, about how much a proof
// needs, and TMPDIR. verify on that machine records nothing: a verified
// backup stays verified.
func TestFaultProofShortOfDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: mounting a small tmpfs needs root")
	}
	base := clusterFootprint(t)
	src := pgtest.New(t)
	exec1(t, src, "postgres", "CREATE DATABASE big")
	exec1(t, src, "big", `CREATE TABLE t (id int, s text)`,
		`INSERT INTO t SELECT g, md5(g::text) || md5((g + 1)::text) FROM generate_series(1, 400000) g`,
		`CREATE INDEX t_s ON t (s)`)
	heap, _ := strconv.ParseInt(query1(t, src, "big", `SELECT pg_relation_size('t')::text`), 10, 64)
	index, _ := strconv.ParseInt(query1(t, src, "big", `SELECT pg_relation_size('t_s')::text`), 10, 64)
	size, _ := strconv.ParseInt(query1(t, src, "big", `SELECT pg_database_size('big')::text`), 10, 64)
	const slack = 12 << 20
	if heap < 2*slack || index < 2*slack {
		t.Fatalf("the table (%d bytes) and its index (%d) must each be well over %d bytes", heap, index, slack)
	}
	w := newWorkdir(t)
	var verified *catalog.Record
	for _, point := range []struct {
		name  string
		size  int64  // of the temp folder
		entry string // the TOC entry being restored when it filled ("" before any)
	}{
		{"cluster start", base / 2, ""},
		{"COPY", base + slack, "TABLE DATA t"},
		{"index build", base + heap + slack, "INDEX t_s"},
	} {
		t.Run(point.name, func(t *testing.T) {
			dir := smallTemp(t, point.size)
			code, out, errOut := w.backup(t, "--json", "--db", src.ConnString("big"), "--name", "big")
			if code != exitFailure {
				t.Fatalf("exit %d, want 1 (the proof could not run)\n%s", code, errOut)
			}
			rec := decodeRecord(t, out)
			p := rec.LastProof()
			if rec.Status != catalog.StatusUnverified || p == nil || p.Status != catalog.ProofError {
				t.Fatalf("recorded %s with proof %+v, want unverified with the proof's error", rec.Status, p)
			}
			if !strings.Contains(p.Error, "the disk of "+dir+" is full") || !strings.Contains(p.Error, point.entry) {
				t.Errorf("the proof's error %q does not say that %s filled at %q", p.Error, dir, point.entry)
			}
			for _, want := range []string{"hint: the proof's throwaway Postgres keeps its data in " + dir + " (PGATTEST_PROOF_DIR, else the temp folder)",
				"needs more than " + sizeWords(size), "set PGATTEST_PROOF_DIR (or TMPDIR) to a folder on a disk with room", "This is no verdict on the archive"} {
				if !strings.Contains(errOut, want) {
					t.Errorf("stderr lacks %q:\n%s", want, errOut)
				}
			}
			if left, _ := filepath.Glob(filepath.Join(dir, testenv.ClusterPrefix+"*")); len(left) > 0 {
				t.Errorf("left in the temp folder: %v", left)
			}
		})
	}
	t.Run("PGATTEST_PROOF_DIR", func(t *testing.T) { // the temp folder has room; the proof's folder not
		dir := mountTmpfs(t, base+slack)
		t.Setenv("PGATTEST_PROOF_DIR", dir)
		code, out, errOut := w.backup(t, "--json", "--db", src.ConnString("big"), "--name", "big")
		if code != exitFailure {
			t.Fatalf("exit %d, want 1 (the proof could not run)\n%s", code, errOut)
		}
		if rec := decodeRecord(t, out); rec.Status != catalog.StatusUnverified || !strings.Contains(rec.LastProof().Error, "the disk of "+dir+" is full") {
			t.Errorf("recorded %s, %q; want unverified, the disk of %s full", rec.Status, rec.LastProof().Error, dir)
		}
		if !strings.Contains(errOut, "keeps its data in "+dir+" (PGATTEST_PROOF_DIR") {
			t.Errorf("the hint does not name the proof's folder:\n%s", errOut)
		}
	})
	t.Run("verify", func(t *testing.T) {
		verified = w.mustBackup(t, "--db", src.ConnString("big"), "--name", "big")
		if verified.Status != catalog.StatusVerified {
			t.Fatalf("with room: %s", verified.Status)
		}
		smallTemp(t, base+slack)
		code, _, errOut := run(t, "--catalog", w.catalog, "verify", verified.ID)
		if code != exitFailure || !strings.Contains(errOut, "could not run") {
			t.Fatalf("verify on a full disk: exit %d, want 1\n%s", code, errOut)
		}
		code, out, _ := run(t, "--catalog", w.catalog, "--json", "show", verified.ID)
		if rec := decodeRecord(t, out); code != 0 || rec.Status != catalog.StatusVerified || len(rec.Proofs) != 1 {
			t.Errorf("after verify on a full disk: %s with %d proofs, want verified with its one proof", rec.Status, len(rec.Proofs))
		}
	})
}

// sizeWords is a size as pgattest's hints print it.
func sizeWords(n int64) string {
	v, u := float64(n)/1024, 0
	for v >= 1024 && u < 4 {
		v /= 1024
		u++
	}
	if v < 10 {
		return fmt.Sprintf("%.1f %ciB", v, "KMGTP"[u])
	}
	return fmt.Sprintf("%.0f %ciB", v, "KMGTP"[u])
}

// TestFaultProofKilled: something outside kills a process of the proof
// while it restores (the kernel's out-of-memory killer, an operator): the
// server's backend, or pg_restore. The archive is not at fault: the backup
// exits 1 and is recorded unverified, saying a process of the proof was
// stopped from outside.
func TestFaultProofKilled(t *testing.T) {
	src := pgtest.New(t)
	exec1(t, src, "postgres", "CREATE DATABASE slow")
	// Each row's check sleeps: the restore's COPY takes seconds.
	exec1(t, src, "slow", `CREATE FUNCTION public.slowly(int) RETURNS boolean LANGUAGE sql AS 'SELECT pg_sleep(0.002) IS NOT NULL'`,
		`CREATE TABLE public.t (id int CHECK (public.slowly(id)))`,
		`INSERT INTO public.t SELECT generate_series(1, 3000)`)
	for _, victim := range []struct {
		name  string
		words []string
	}{
		{"the server's backend", []string{"postgres: pgattest_restore_", "pgattest_proof"}},
		{"pg_restore", []string{"pg_restore", "--single-transaction", "pgattest_proof"}},
	} {
		t.Run(victim.name, func(t *testing.T) {
			w := newWorkdir(t)
			stop := make(chan struct{})
			killed := make(chan int, 1)
			go func() {
				defer close(killed)
				for {
					select {
					case <-stop:
						return
					case <-time.After(20 * time.Millisecond):
					}
					// Once the table's data is on its way (its COPY runs).
					if pid := pgtest.DescendantWith(victim.words...); pid != 0 && pgtest.DescendantWith("pgattest_proof", "COPY") != 0 {
						syscall.Kill(pid, syscall.SIGKILL)
						killed <- pid
						return
					}
				}
			}()
			code, out, errOut := w.backup(t, "--json", "--db", src.ConnString("slow"), "--name", "slow")
			close(stop)
			if pid := <-killed; pid == 0 {
				t.Fatalf("the test never saw %s restore (exit %d)\n%s", victim.name, code, errOut)
			}
			if code != exitFailure {
				t.Fatalf("exit %d, want 1\n%s", code, errOut)
			}
			rec := decodeRecord(t, out)
			if p := rec.LastProof(); rec.Status != catalog.StatusUnverified || p.Status != catalog.ProofError ||
				!strings.Contains(p.Error, "a process of the proof was stopped from outside") {
				t.Errorf("recorded %s, proof %s: %q", rec.Status, p.Status, p.Error)
			}
			if !strings.Contains(errOut, "hint: something stopped the proof") {
				t.Errorf("stderr lacks the hint:\n%s", errOut)
			}
		})
	}
}

// TestArchiveRaisingShortageIsEvidence: the archive's own code may raise
// any SQLSTATE; a CHECK whose function raises disk_full in the proof is the
// archive's doing, not the disk's: recorded failed, exit 3.
func TestArchiveRaisingShortageIsEvidence(t *testing.T) {
	src := pgtest.New(t)
	exec1(t, src, "postgres", "CREATE DATABASE liar")
	exec1(t, src, "liar", `CREATE FUNCTION public.fine(x int) RETURNS boolean LANGUAGE plpgsql AS $$
		BEGIN
		  IF current_user LIKE 'pgattest\_restore\_%' THEN
		    RAISE EXCEPTION 'could not extend file "base/1/2": No space left on device' USING ERRCODE = 'disk_full';
		  END IF;
		  RETURN true;
		END $$`,
		`CREATE TABLE public.t (id int CHECK (public.fine(id)))`, `INSERT INTO public.t VALUES (1), (2)`)
	w := newWorkdir(t)
	code, out, errOut := w.backup(t, "--json", "--db", src.ConnString("liar"), "--name", "liar")
	if code != exitProofFailed {
		t.Fatalf("exit %d, want 3: a RAISE of the archive's is no shortage\n%s", code, errOut)
	}
	if rec := decodeRecord(t, out); rec.Status != catalog.StatusFailed || strings.Contains(errOut, "This is no verdict on the archive") {
		t.Errorf("recorded %s; stderr:\n%s", rec.Status, errOut)
	}
}

// TestManyTablesProven: the proof restores in one transaction, which locks
// every table it makes; a schema of 7,000 tables (past the 6,400 locks a
// stock server has room for) is verified, not failed "out of shared
// memory".
func TestManyTablesProven(t *testing.T) {
	src := pgtest.New(t)
	exec1(t, src, "postgres", "CREATE DATABASE many")
	for k := 0; k < 7; k++ { // the source too has room for 6,400 in one transaction
		exec1(t, src, "many", fmt.Sprintf(`DO $$ BEGIN FOR i IN %d..%d LOOP EXECUTE format('CREATE TABLE t%%s (id int)', i); END LOOP; END $$`, k*1000+1, k*1000+1000))
	}
	exec1(t, src, "many", `INSERT INTO t7000 VALUES (1)`)
	rec := newWorkdir(t).mustBackup(t, "--db", src.ConnString("many"), "--name", "many")
	if p := rec.LastProof(); rec.Status != catalog.StatusVerified || len(p.Tables) != 7000 || p.Rows != 1 {
		t.Errorf("status %s, %d tables, %d rows: want verified with 7000 tables and 1 row", rec.Status, len(p.Tables), p.Rows)
	}
}
