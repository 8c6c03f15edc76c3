package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/testenv"
	"github.com/pgattest/pgattest/testenv/pgtest"
	"github.com/pgattest/pgattest/verify"
)

// run calls Main in-process and returns its exit code and output.
func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	code = Main(ctx, append([]string{"pgattest"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

// workdir is a test's private folder with a catalog path and a --dir.
type workdir struct{ catalog, dir string }

func newWorkdir(t *testing.T) workdir {
	d := t.TempDir()
	return workdir{catalog: filepath.Join(d, "catalog.db"), dir: filepath.Join(d, "backups")}
}

func (w workdir) backup(t *testing.T, extra ...string) (int, string, string) {
	t.Helper()
	return run(t, append([]string{"--catalog", w.catalog, "backup", "--dir", w.dir}, extra...)...)
}

// mustBackup runs backup --json with args and returns the record; any exit
// but 0 fails the test.
func (w workdir) mustBackup(t *testing.T, args ...string) *catalog.Record {
	t.Helper()
	code, out, errOut := w.backup(t, append([]string{"--json"}, args...)...)
	if code != 0 {
		t.Fatalf("backup %q: exit %d\n%s", args, code, errOut)
	}
	return decodeRecord(t, out)
}

func shop(t *testing.T, o ...testenv.Options) *testenv.Cluster {
	t.Helper()
	c := pgtest.New(t, o...)
	if err := testenv.LoadSample(context.Background(), c, "shop"); err != nil {
		t.Fatal(err)
	}
	return c
}

func decodeRecord(t *testing.T, stdout string) *catalog.Record {
	t.Helper()
	var rec catalog.Record
	if err := json.Unmarshal([]byte(stdout), &rec); err != nil {
		t.Fatalf("stdout is not one JSON record: %v\n%s", err, stdout)
	}
	return &rec
}

func TestBackupThenTamper(t *testing.T) {
	src := shop(t)
	w := newWorkdir(t)
	rec := w.mustBackup(t, "--db", src.ConnString("shop"), "--name", "shop")
	if rec.Status != catalog.StatusVerified || len(rec.Archive.BLAKE3) != 64 {
		t.Fatalf("record %s %q", rec.Status, rec.Archive.BLAKE3)
	}
	tc := pgtest.Require(t, testenv.Want{Tools: testenv.ClientTools})
	data, err := os.ReadFile(rec.Archive.Path)
	if err != nil {
		t.Fatal(err)
	}
	prove := func(path, digest string) *verify.Report {
		t.Helper()
		rep, err := verify.Prove(context.Background(), verify.Options{
			Archive: path, Format: verify.FormatCustom, Mode: verify.ModeRestore, Digest: digest, Client: tc,
		})
		if err != nil {
			t.Fatalf("proof could not run: %v", err)
		}
		return rep
	}

	t.Run("untouched passes again", func(t *testing.T) {
		rep := prove(rec.Archive.Path, rec.Archive.BLAKE3)
		if !rep.Passed || !rep.DigestChecked || rep.Rows != rec.Proofs[0].Rows {
			t.Fatalf("passed=%v digest=%v rows=%d want %d: %v", rep.Passed, rep.DigestChecked, rep.Rows, rec.Proofs[0].Rows, rep.Failure)
		}
	})
	t.Run("flipped byte", func(t *testing.T) {
		flipped := bytes.Clone(data)
		flipped[len(flipped)/2] ^= 0x01
		path := filepath.Join(t.TempDir(), "flipped.dump")
		os.WriteFile(path, flipped, 0o600)
		rep := prove(path, rec.Archive.BLAKE3)
		if rep.Passed || rep.Failure == nil {
			t.Fatal("a flipped byte passed the proof")
		}
		if code := exitCode(rep.Failure); code != exitProofFailed {
			t.Errorf("exit code %d, want 3", code)
		}
		if !strings.Contains(rep.Failure.Error(), "digest does not match") {
			t.Errorf("message %q does not say the digest does not match", rep.Failure)
		}
	})
	t.Run("truncated to 60%", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "truncated.dump")
		os.WriteFile(path, data[:len(data)*6/10], 0o600)
		if _, err := verify.ReadTOC(context.Background(), tc.Path("pg_restore"), path); err != nil {
			t.Fatalf("pg_restore -l should still read a truncated archive's TOC: %v", err)
		}
		rep := prove(path, "") // ignore the digest: the restore itself must notice
		if rep.Passed {
			t.Fatal("a truncated archive passed the proof")
		}
		if code := exitCode(rep.Failure); code != exitProofFailed {
			t.Errorf("exit code %d, want 3", code)
		}
		if !strings.Contains(rep.Failure.Error(), "archive is incomplete") {
			t.Errorf("message %q does not say the archive is incomplete", rep.Failure)
		}
	})
	t.Run("show and list", func(t *testing.T) {
		code, out, _ := run(t, "--catalog", w.catalog, "show", rec.ID[:20])
		if code != 0 || !strings.Contains(out, rec.Archive.BLAKE3) || !strings.Contains(out, "shop.order_items") {
			t.Fatalf("show exit %d:\n%s", code, out)
		}
		code, out, _ = run(t, "--catalog", w.catalog, "--json", "list")
		var recs []catalog.Record
		if code != 0 || json.Unmarshal([]byte(out), &recs) != nil || len(recs) != 1 || recs[0].ID != rec.ID {
			t.Fatalf("list exit %d:\n%s", code, out)
		}
	})
}

func quoteSQL(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func TestBadInputs(t *testing.T) {
	src := pgtest.New(t, testenv.Options{Password: "right-password"})
	notDir := filepath.Join(t.TempDir(), "a-file")
	os.WriteFile(notDir, nil, 0o600)
	tests := []struct {
		name     string
		args     []string
		code     int
		contains string
	}{
		{"unparsable URL", []string{"--db", "postgresql://u@host:notaport/db"}, exitUsage, "connection string"},
		{"URL without its scheme", []string{"--db", "app:Secret-password@db.example.com/shop"}, exitUsage, "without postgresql://"},
		{"unreachable host", []string{"--db", "postgresql://u@127.0.0.1:1/db?connect_timeout=5"}, exitFailure, "cannot connect"},
		{"wrong password", []string{"--db", src.URL("postgres", "", "wrong-password")}, exitFailure, "password authentication failed"},
		{"missing database", []string{"--db", src.URL("nosuchdb", "", "right-password")}, exitFailure, `database "nosuchdb" does not exist`},
		{"unwritable dir", []string{"--db", src.URL("postgres", "", "right-password"), "--dir", filepath.Join(notDir, "sub")}, exitFailure, "cannot write to"},
		{"bad name", []string{"--db", src.URL("postgres", "", "right-password"), "--name", "../escape"}, exitUsage, "name"},
		{"bad verify mode", []string{"--verify", "maybe"}, exitUsage, "--verify"},
		{"bad label", []string{"--label", "nokey"}, exitUsage, "--label"},
		{"pooled Neon host", []string{"--db", "postgresql://u@ep-cool-darkness-a1b2c3d4-pooler.eu-central-1.aws.neon.tech/neondb"}, exitFailure, "ep-cool-darkness-a1b2c3d4.eu-central-1.aws.neon.tech"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorkdir(t)
			code, out, errOut := w.backup(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d\n%s", code, tt.code, errOut)
			}
			lines := strings.Split(strings.TrimSpace(errOut), "\n")
			// A password typed on the command line gets one warning first.
			warned := strings.HasPrefix(lines[0], "pgattest: warning: --db holds a password")
			argv := strings.Join(tt.args, " ")
			if onArgv := strings.Contains(argv, "://") && strings.Contains(argv, "-password@"); warned != onArgv {
				t.Errorf("password on the command line %v, warned %v:\n%s", onArgv, warned, errOut)
			}
			if warned {
				lines = lines[1:]
			}
			if len(lines) != 2 || !strings.HasPrefix(lines[0], "pgattest: error: ") || !strings.HasPrefix(lines[1], "pgattest: hint: ") {
				t.Errorf("want one error line and one hint line, got:\n%s", errOut)
			}
			if !strings.Contains(errOut, tt.contains) {
				t.Errorf("error does not mention %q:\n%s", tt.contains, errOut)
			}
			if strings.Contains(errOut, "right-password") || strings.Contains(errOut, "wrong-password") || strings.Contains(errOut, "Secret-password") {
				t.Errorf("password in output:\n%s", errOut)
			}
			if out != "" {
				t.Errorf("stdout not empty: %q", out)
			}
			if _, err := os.Stat(w.catalog); !os.IsNotExist(err) {
				t.Errorf("catalog was written (%v)", err)
			}
		})
	}
}

func TestDumpFailureIsNotRecorded(t *testing.T) {
	src := shop(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, src.ConnString("shop"))
	if err != nil {
		t.Fatal(err)
	}
	// bob may log in and see the schema, but not read shop.customers:
	// pg_dump fails with "permission denied" half way.
	for _, q := range []string{
		`CREATE ROLE bob LOGIN`,
		`GRANT USAGE ON SCHEMA shop, analytics TO bob`,
		`GRANT SELECT ON ALL TABLES IN SCHEMA analytics TO bob`,
		`GRANT SELECT ON shop.products TO bob`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	conn.Close(ctx)
	w := newWorkdir(t)
	code, out, errOut := w.backup(t, "--db", src.URL("shop", "bob", ""), "--name", "shop")
	if code != exitFailure {
		t.Fatalf("exit %d, want 1\n%s%s", code, out, errOut)
	}
	if !strings.Contains(errOut, "pg_dump failed") || !strings.Contains(errOut, "permission denied") {
		t.Errorf("error does not quote pg_dump:\n%s", errOut)
	}
	assertNothingKept(t, w, "shop")

	// A "pg_dump" that exits 0 and writes nothing is no success either.
	tc := pgtest.Require(t, testenv.Want{Tools: testenv.ClientTools})
	fake := t.TempDir()
	os.WriteFile(filepath.Join(fake, "pg_dump"), []byte("#!/bin/sh\ncase \"$1\" in --version) exec "+tc.Path("pg_dump")+" --version;; esac\nexit 0\n"), 0o755)
	os.Symlink(tc.Path("pg_restore"), filepath.Join(fake, "pg_restore"))
	code, _, errOut = w.backup(t, "--db", src.ConnString("shop"), "--name", "shop", "--pg-bin", fake)
	if code != exitFailure || !strings.Contains(errOut, "pg_dump wrote nothing") {
		t.Errorf("exit %d, want 1 and 'wrote nothing':\n%s", code, errOut)
	}
	assertNothingKept(t, w, "shop")
}

// assertNothingKept checks that a failed backup left no archive, no
// staging folder and no record.
func assertNothingKept(t *testing.T, w workdir, name string) {
	t.Helper()
	entries, _ := os.ReadDir(filepath.Join(w.dir, name))
	for _, e := range entries {
		t.Errorf("left behind: %s", e.Name())
	}
	if c, err := catalog.Open(w.catalog, catalog.Options{ReadOnly: true}); err == nil {
		recs, _ := c.List(catalog.Query{})
		c.Close()
		if len(recs) > 0 {
			t.Errorf("%d records written", len(recs))
		}
	}
}

func TestDemoTwice(t *testing.T) {
	pgtest.Require(t, testenv.Want{Tools: testenv.ServerTools})
	dir := filepath.Join(t.TempDir(), "demo")
	userCatalog := filepath.Join(t.TempDir(), "mine.db")
	for i := 1; i <= 2; i++ {
		code, out, errOut := run(t, "--catalog", userCatalog, "demo", "--dir", dir)
		if code != 0 {
			t.Fatalf("demo run %d: exit %d\n%s%s", i, code, out, errOut)
		}
		for _, want := range []string{"VERIFIED", "shop.order_items", "Next", "backup --db"} {
			if !strings.Contains(out, want) {
				t.Errorf("demo run %d output lacks %q:\n%s", i, want, out)
			}
		}
	}
	c, err := catalog.Open(filepath.Join(dir, "catalog.db"), catalog.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	recs, _ := c.List(catalog.Query{})
	if len(recs) != 2 || recs[0].Status != catalog.StatusVerified || recs[1].Status != catalog.StatusVerified {
		t.Fatalf("demo catalog holds %d records", len(recs))
	}
	if _, err := os.Stat(userCatalog); !os.IsNotExist(err) {
		t.Errorf("demo touched the user's catalog")
	}
}
