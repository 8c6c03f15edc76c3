package cli

// The command-level part of the fault suite (go tool task test:faults): a
// catalog that cannot be written or is damaged, backups racing for one
// catalog, a restore interrupted by Ctrl-C.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/testenv/pgtest"
	"github.com/pgattest/pgattest/verify"
	"github.com/rogpeppe/go-internal/testscript"
	bolt "go.etcd.io/bbolt"
)

// mainEnv makes the test binary run pgattest itself, with the arguments
// given as a JSON list: for tests that signal a real process.
const mainEnv = "PGATTEST_TEST_MAIN_ARGS"

func TestMain(m *testing.M) {
	if spec := os.Getenv(mainEnv); spec != "" {
		var args []string
		if err := json.Unmarshal([]byte(spec), &args); err != nil {
			fmt.Fprintln(os.Stderr, "bad args:", err)
			os.Exit(2)
		}
		os.Exit(Main(context.Background(), append([]string{"pgattest"}, args...), os.Stdout, os.Stderr))
	}
	// The scripts of testdata/script run the real main as "pgattest".
	testscript.Main(m, map[string]func(){
		"pgattest": func() { os.Exit(Main(context.Background(), os.Args, os.Stdout, os.Stderr)) },
	})
}

// pgattestProcess starts pgattest args as a child process.
func pgattestProcess(t *testing.T, args ...string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	spec, _ := json.Marshal(args)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), mainEnv+"="+string(spec))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, &stdout, &stderr
}

func TestFaultInterruptedRestore(t *testing.T) {
	src := shop(t)
	w := newWorkdir(t)
	rec := w.mustBackup(t, "--db", src.ConnString("shop"), "--name", "shop")
	exec1(t, src, "postgres", "CREATE DATABASE shop_copy")

	cmd, stdout, stderr := pgattestProcess(t, "--catalog", w.catalog, "restore", "--id", rec.ID, "--target", src.ConnString("shop_copy"))
	// Ctrl-C as soon as pg_restore runs (the restore takes most of a
	// second; this lands within milliseconds of its start).
	var restorePID int
	deadline := time.Now().Add(time.Minute)
	for restorePID == 0 && time.Now().Before(deadline) {
		// The restore itself, not the pg_restore -l that reads the TOC first.
		if pid := pgtest.ChildProcess(cmd.Process.Pid, "pg_restore"); pid > 0 {
			if argv, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); bytes.Contains(argv, []byte("--single-transaction")) {
				restorePID = pid
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	if restorePID == 0 {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("pg_restore never started:\n%s", stderr)
	}
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	code := cmd.ProcessState.ExitCode()
	if err == nil || code != exitFailure {
		t.Errorf("exit %d, want 1", code)
	}
	for _, want := range []string{
		"error: restore interrupted: the target", "was left as pg_restore left it",
		"the changes of the interrupted transaction were rolled back", "hint: run the restore again",
	} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if stdout.Len() > 0 {
		t.Errorf("stdout after an interrupted restore: %q", stdout)
	}
	if !pgtest.WaitGone(restorePID, 10*time.Second) {
		t.Errorf("pg_restore (pid %d) still runs", restorePID)
	}
	// One transaction: nothing of the shop is in the target.
	if n := query1(t, src, "shop_copy", `SELECT count(*)::text FROM pg_tables WHERE schemaname IN ('shop', 'analytics')`); n != "0" {
		t.Errorf("the interrupted restore left %s tables in the target", n)
	}
	// Not noted as restored; the chain is intact; a second try succeeds.
	code, out, _ := run(t, "--catalog", w.catalog, "--json", "show", rec.ID)
	if code != 0 || strings.Contains(out, `"restored"`) {
		t.Errorf("show exit %d", code)
	}
	if code, _, errOut := run(t, "--catalog", w.catalog, "restore", "--id", rec.ID, "--target", src.ConnString("shop_copy")); code != 0 {
		t.Errorf("second restore: exit %d\n%s", code, errOut)
	}
	if got, want := query1(t, src, "shop_copy", stateSQL), query1(t, src, "shop", stateSQL); got != want {
		t.Errorf("restored state %s, source %s", got, want)
	}
}

// readOnlyFolder makes dir read-only for this process: a read-only
// remount of a tmpfs as root (root ignores permissions), permissions
// otherwise. It returns how.
func readOnlyFolder(t *testing.T, dir string, fill func()) string {
	t.Helper()
	if os.Geteuid() != 0 {
		fill()
		filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
			if err == nil {
				os.Chmod(p, fi.Mode().Perm()&^0o222)
			}
			return nil
		})
		t.Cleanup(func() { os.Chmod(dir, 0o700) })
		return "permissions"
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("skipping: cannot mount a tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	fill()
	if out, err := exec.Command("mount", "-o", "remount,ro", dir).CombinedOutput(); err != nil {
		t.Fatalf("remount read-only: %v: %s", err, out)
	}
	return "read-only mount"
}

func TestFaultCatalogReadOnly(t *testing.T) {
	src := shop(t)
	w := newWorkdir(t)
	seeded := seed(t, w, seeded{name: "shop", at: time.Now().UTC().Add(-time.Hour).Truncate(time.Second), status: catalog.StatusVerified})
	roDir := filepath.Join(t.TempDir(), "ro")
	os.Mkdir(roDir, 0o700)
	how := readOnlyFolder(t, roDir, func() {
		b, err := os.ReadFile(w.catalog)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(roDir, "catalog.db"), b, 0o600); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("read-only by %s", how)
	cat := filepath.Join(roDir, "catalog.db")
	before, _ := os.ReadFile(cat)

	// Reading works.
	if code, out, errOut := run(t, "--catalog", cat, "list"); code != 0 || !strings.Contains(out, seeded[0].ID) {
		t.Errorf("list: exit %d\n%s%s", code, out, errOut)
	}
	if code, _, errOut := run(t, "--catalog", cat, "catalog", "verify"); code != 0 {
		t.Errorf("catalog verify: exit %d\n%s", code, errOut)
	}
	// Recording is refused before any work, with the reason and a hint.
	for _, args := range [][]string{
		{"backup", "--db", src.ConnString("shop"), "--name", "shop", "--dir", w.dir},
		{"verify", seeded[0].ID},
		{"prune", "--keep-last", "1"},
	} {
		code, out, errOut := run(t, append([]string{"--catalog", cat}, args...)...)
		if code != exitFailure {
			t.Errorf("%s: exit %d, want 1\n%s", args[0], code, errOut)
		}
		if !strings.Contains(errOut, "catalog cannot be written") || !strings.Contains(errOut, "hint: ") {
			t.Errorf("%s: error does not say the catalog cannot be written:\n%s", args[0], errOut)
		}
		if args[0] == "backup" && strings.Contains(errOut, "dump") {
			t.Errorf("backup dumped before finding the catalog read-only:\n%s", errOut)
		}
		if out != "" {
			t.Errorf("%s: stdout %q", args[0], out)
		}
	}
	if entries, _ := os.ReadDir(filepath.Join(w.dir, "shop")); len(entries) != 2 {
		t.Errorf("the backup folder holds %d entries, want the seeded archive and manifest only", len(entries))
	}
	if after, _ := os.ReadFile(cat); !bytes.Equal(before, after) {
		t.Error("the read-only catalog changed")
	}
}

func TestFaultCatalogDamaged(t *testing.T) {
	src := shop(t)
	good := newWorkdir(t)
	seed(t, good, nightly("shop", time.Date(2026, 10, 1, 2, 0, 0, 0, time.UTC), 40, func(int) string { return catalog.StatusVerified })...)
	full, err := os.ReadFile(good.catalog)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{
		"truncated":   full[:len(full)/3],
		"not bbolt":   bytes.Repeat([]byte("# not a database\n"), 600),
		"empty":       {},
		"a manifest?": []byte(`{"pgattest_manifest": 1}`),
	}
	for name, content := range cases {
		t.Run(name, func(t *testing.T) {
			w := newWorkdir(t)
			os.MkdirAll(filepath.Dir(w.catalog), 0o700)
			os.WriteFile(w.catalog, content, 0o600)
			for _, args := range [][]string{
				{"list"},
				{"catalog", "verify"},
				{"backup", "--db", src.ConnString("shop"), "--name", "shop", "--dir", w.dir},
			} {
				code, out, errOut := run(t, append([]string{"--catalog", w.catalog}, args...)...)
				// A catalog cut short is damage, which is evidence (exit 3);
				// a file that never was one is a failure (exit 1).
				want, words := exitFailure, "not a pgattest catalog"
				if name == "truncated" {
					want, words = exitProofFailed, "damaged catalog"
				}
				if code != want || out != "" {
					t.Errorf("%s: exit %d, stdout %q; want %d and nothing", args[0], code, out, want)
				}
				if !strings.Contains(errOut, words) || !strings.Contains(errOut, "hint: the file was left untouched") {
					t.Errorf("%s: error is not clear:\n%s", args[0], errOut)
				}
			}
			if after, _ := os.ReadFile(w.catalog); !bytes.Equal(after, content) {
				t.Error("the damaged catalog was changed")
			}
			if entries, _ := os.ReadDir(w.dir); len(entries) > 0 {
				t.Errorf("backup wrote into --dir before finding the catalog unusable")
			}
		})
	}
}

// TestFaultConcurrentBackups: three backups of one database under one name
// at once, into one catalog (cron jobs that overlap), into a folder and
// into a bucket. All three are recorded with their own archive, even
// within the same second (a folder adds -2 at the end; a bucket's key is
// claimed as its upload starts, and the old code failed the second run with
// "an object is there already"), and the catalog verifies.
func TestFaultConcurrentBackups(t *testing.T) {
	src := shop(t)
	s := pgtest.NewS3(t)
	s.MakeBucket(t, "overlap", false)
	s.SetEnv(t)
	for _, backend := range []string{"folder", "s3"} {
		t.Run(backend, func(t *testing.T) {
			w := newWorkdir(t)
			const n = 3
			where := []string{"--dir", w.dir}
			if backend == "s3" {
				where = []string{"--repo", "s3://overlap"}
			}
			// Separate processes, as cron would start them.
			codes, outs, errs := make([]int, n), make([]string, n), make([]string, n)
			var cmds []*exec.Cmd
			var stdouts, stderrs []*bytes.Buffer
			for range n {
				cmd, stdout, stderr := pgattestProcess(t, append([]string{"--catalog", w.catalog, "backup", "--json", "--db", src.ConnString("shop"), "--name", "shop"}, where...)...)
				cmds, stdouts, stderrs = append(cmds, cmd), append(stdouts, stdout), append(stderrs, stderr)
			}
			for i, cmd := range cmds {
				cmd.Wait()
				codes[i], outs[i], errs[i] = cmd.ProcessState.ExitCode(), stdouts[i].String(), stderrs[i].String()
			}
			paths := map[string]bool{}
			stamps := map[string]int{}
			for i := range n {
				if codes[i] != 0 {
					t.Fatalf("backup %d: exit %d\n%s", i, codes[i], errs[i])
				}
				rec := decodeRecord(t, outs[i])
				if rec.Status != catalog.StatusVerified {
					t.Errorf("backup %d: %s", i, rec.Status)
				}
				paths[rec.Archive.Path] = true
				stamps[rec.StartedAt.UTC().Format(catalog.StampLayout)]++
				if backend == "folder" {
					d, err := verify.HashArchive(rec.Archive.Path, verify.FormatCustom)
					if err != nil || d.BLAKE3 != rec.Archive.BLAKE3 {
						t.Errorf("backup %d: archive %s does not hash to its record (%v)", i, rec.Archive.Path, err)
					}
				}
			}
			t.Logf("archives: %v (start seconds: %v)", paths, stamps)
			if len(paths) != n {
				t.Errorf("%d distinct archives for %d backups: %v", len(paths), n, paths)
			}
			code, out, _ := run(t, "--catalog", w.catalog, "--json", "list")
			var recs []catalog.Record
			if code != 0 || json.Unmarshal([]byte(out), &recs) != nil || len(recs) != n {
				t.Errorf("list: exit %d, %d records\n%s", code, len(recs), out)
			}
			if code, _, errOut := run(t, "--catalog", w.catalog, "catalog", "verify", "--archives"); code != 0 {
				t.Errorf("catalog verify --archives: exit %d\n%s", code, errOut)
			}
			var names []string
			if backend == "folder" {
				entries, _ := os.ReadDir(filepath.Join(w.dir, "shop"))
				for _, e := range entries {
					names = append(names, e.Name())
				}
			} else {
				names = s3Keys(t, s, "overlap")
			}
			if len(names) != 2*n {
				t.Errorf("the repository holds %q, want %d archives with manifests", names, n)
			}
		})
	}
}

// TestFaultCatalogRefusedByWriters: a catalog that catalog verify rejects
// (a damaged page, a record edited behind pgattest's back) is refused by
// every command that records, before any work, and left as it is;
// catalog verify itself exits 3 (it is evidence).
func TestFaultCatalogRefusedByWriters(t *testing.T) {
	src := shop(t)
	good := newWorkdir(t)
	recs := seed(t, good, nightly("shop", time.Date(2026, 10, 1, 2, 0, 0, 0, time.UTC), 40, func(int) string { return catalog.StatusVerified })...)
	full, err := os.ReadFile(good.catalog)
	if err != nil {
		t.Fatal(err)
	}
	// 64 bytes XOR-ed at the start of a page in use: the one that holds a
	// record (a free page would be damage nobody reads).
	damaged := append([]byte(nil), full...)
	at := bytes.Index(full, []byte(`{"id":"`+recs[5].ID))
	if at < 0 {
		t.Fatal("the record is not in the file as JSON")
	}
	for i := at - at%16384; i < at-at%16384+64; i++ {
		damaged[i] ^= 0x5a
	}
	tampered := filepath.Join(t.TempDir(), "tampered.db")
	os.WriteFile(tampered, full, 0o600)
	db, err := bolt.Open(tampered, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("backups"))
		id := []byte(recs[3].ID)
		return b.Put(id, []byte(strings.Replace(string(b.Get(id)), `"status":"verified"`, `"status":"failed"`, 1)))
	})
	db.Close()
	editedRecord, _ := os.ReadFile(tampered)
	for name, content := range map[string][]byte{"damaged page": damaged, "edited record": editedRecord} {
		t.Run(name, func(t *testing.T) {
			w := newWorkdir(t)
			os.MkdirAll(filepath.Dir(w.catalog), 0o700)
			os.WriteFile(w.catalog, content, 0o600)
			code, _, errOut := run(t, "--catalog", w.catalog, "catalog", "verify")
			if code != exitProofFailed {
				t.Errorf("catalog verify: exit %d, want 3\n%s", code, errOut)
			}
			for _, args := range [][]string{
				{"backup", "--db", src.ConnString("shop"), "--name", "shop", "--dir", w.dir},
				{"verify", "--hash-only", recs[0].ID},
				{"restore", "--id", recs[0].ID, "--target", src.ConnString("postgres")},
				{"prune", "--keep-last", "1"},
			} {
				code, out, errOut := run(t, append([]string{"--catalog", w.catalog}, args...)...)
				if code != exitProofFailed {
					t.Errorf("%s: exit %d, want 3 (refused)\n%s%s", args[0], code, out, errOut)
				}
				if !strings.Contains(errOut, "refus") && !strings.Contains(errOut, "damaged catalog") {
					t.Errorf("%s: the error does not say it refused the catalog:\n%s", args[0], errOut)
				}
				if strings.Contains(errOut, "dump ") || strings.Contains(errOut, "restoring") {
					t.Errorf("%s: work started before the catalog was checked:\n%s", args[0], errOut)
				}
			}
			if after, _ := os.ReadFile(w.catalog); !bytes.Equal(after, content) {
				t.Error("a writer changed the refused catalog")
			}
			if entries, _ := os.ReadDir(w.dir); len(entries) > 0 {
				t.Errorf("backup wrote into --dir: %v", entries)
			}
			for _, r := range recs {
				if _, err := os.Stat(r.Archive.Path); err != nil {
					t.Errorf("prune deleted %s under a refused catalog", r.ID)
					break
				}
			}
		})
	}
}
