package cli

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/pgattest/pgattest/testenv"
	"github.com/pgattest/pgattest/testenv/pgtest"
)

// TestRestoreLandsWhereChecked: libpq reads variables pgx does not
// (PGHOSTADDR, a service file's settings), so a pg_restore left to read the
// caller's environment connected elsewhere than the server pgattest checked:
// with PGHOST naming another server's socket and PGHOSTADDR the source's
// address on the same port, `restore --clean` overwrote the source. The
// source's TCP port and the target's socket share one number here; every
// case must restore into the target and leave the source as it was.
func TestRestoreLandsWhereChecked(t *testing.T) {
	src := shop(t, testenv.Options{TCP: true})
	w := newWorkdir(t)
	w.mustBackup(t, "--db", src.ConnString("shop"), "--name", "shop")
	// Written after the backup: a restore over the source would drop it.
	exec1(t, src, "shop", `CREATE TABLE shop.after_backup (x int)`, `INSERT INTO shop.after_backup VALUES (1)`)

	// Clusters from one initdb template share a system identifier: the
	// target is another database (name and OID) so that pgattest tells it
	// from the source.
	dst := pgtest.New(t, testenv.Options{Port: src.Port})
	exec1(t, dst, "postgres", `CREATE DATABASE pad`, `CREATE DATABASE copy`)
	if query1(t, dst, "postgres", `SELECT oid::text FROM pg_database WHERE datname = 'copy'`) ==
		query1(t, src, "postgres", `SELECT oid::text FROM pg_database WHERE datname = 'shop'`) {
		t.Fatal("the target's database has the source's OID")
	}
	port := strconv.Itoa(src.Port)
	svc := filepath.Join(t.TempDir(), "pg_service.conf")
	os.WriteFile(svc, []byte("[other]\nhost="+dst.SocketDir+"\nport="+port+"\ndbname=copy\n"), 0o600)
	// PGSYSCONFDIR holds a service file only libpq reads (pgx reads
	// PGSERVICEFILE): the source's address.
	sysconf := t.TempDir()
	os.WriteFile(filepath.Join(sysconf, "pg_service.conf"), []byte("[other]\nhostaddr=127.0.0.1\nport="+port+"\n"), 0o600)

	toDst := map[string]string{"PGHOST": dst.SocketDir, "PGPORT": port, "PGHOSTADDR": "127.0.0.1"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range toDst {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	for _, tc := range []struct {
		variable string
		env      map[string]string
	}{
		{"PGHOSTADDR", toDst},
		{"PGSERVICE", map[string]string{"PGSERVICE": "other", "PGSERVICEFILE": svc, "PGHOSTADDR": "127.0.0.1", "PGSYSCONFDIR": sysconf}},
		{"PGSERVICEFILE", with("PGSERVICEFILE", svc, "PGSYSCONFDIR", sysconf)},
		{"PGOPTIONS", with("PGOPTIONS", "-c application_name=checked")},
		{"PGSSLMODE", with("PGSSLMODE", "disable")},
		{"PGTARGETSESSIONATTRS", with("PGTARGETSESSIONATTRS", "read-write")},
	} {
		t.Run(tc.variable, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			code, out, errOut := run(t, "--catalog", w.catalog, "restore", "--name", "shop", "--clean", "--no-owner", "--no-acl",
				"--target", "dbname=copy user="+dst.Superuser)
			if code != 0 {
				t.Fatalf("restore: exit %d\n%s%s", code, out, errOut)
			}
			if n := query1(t, dst, "copy", `SELECT count(*)::text FROM shop.orders`); n == "0" {
				t.Errorf("the target holds no orders: the restore went elsewhere")
			}
			if n := query1(t, src, "shop", `SELECT count(*)::text FROM shop.after_backup`); n != "1" {
				t.Errorf("the source's table written after the backup holds %s rows, want 1", n)
			}
		})
	}
	// A backup dumps the server it checked, too: with PGHOSTADDR naming the
	// other server's address, pg_dump still reads the target's copy.
	t.Run("backup", func(t *testing.T) {
		for k, v := range toDst {
			t.Setenv(k, v)
		}
		rec := w.mustBackup(t, "--db", "dbname=copy user="+dst.Superuser, "--name", "copy", "--verify", "none")
		if rec.Source.Database != "copy" {
			t.Errorf("recorded source database %q, want copy", rec.Source.Database)
		}
		code, out, errOut := run(t, "--catalog", w.catalog, "toc", rec.ID, "--live")
		if code != 0 || strings.Contains(out, "after_backup") || !strings.Contains(out, "orders") {
			t.Errorf("the archive is not the checked server's copy: exit %d\n%s%s", code, out, errOut)
		}
	})
	// The source was reached by nothing: its newest table is still there.
	if n := query1(t, src, "shop", `SELECT count(*)::text FROM pg_class WHERE relname = 'after_backup'`); n != "1" {
		t.Fatalf("the source lost the table written after the backup")
	}
}

// TestSecretsStayWithTheConnectingChild: the password (in DATABASE_URL, or
// PGPASSWORD) reaches pg_dump, which connects with it, and no other child:
// not the proof's pg_restore nor pg_restore -l (both read the archive, which
// the source's writers decide), nor a version probe. Wrappers record every
// child's environment.
func TestSecretsStayWithTheConnectingChild(t *testing.T) {
	const pass = "S3cret-child-env-7"
	src := shop(t, testenv.Options{TCP: true, Password: pass})
	tc := pgtest.Require(t, testenv.Want{Tools: testenv.ClientTools})
	bin, logs := t.TempDir(), t.TempDir()
	for _, tool := range []string{"pg_dump", "pg_restore"} {
		script := "#!/bin/sh\n{ echo \"ARGS $*\"; env; } > " + logs + "/" + tool + ".$$\nexec " + tc.Path(tool) + " \"$@\"\n"
		if err := os.WriteFile(filepath.Join(bin, tool), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("DATABASE_URL", src.URL("shop", "", pass))
	t.Setenv("PGPASSWORD", pass)
	t.Setenv("PGATTEST_TEST_SECRET", pass)
	w := newWorkdir(t)
	w.mustBackup(t, "--name", "shop", "--pg-bin", bin)
	files, _ := filepath.Glob(filepath.Join(logs, "*"))
	connecting, others := 0, 0
	for _, f := range files {
		b, _ := os.ReadFile(f)
		args, env, _ := strings.Cut(string(b), "\n")
		tool := strings.Split(filepath.Base(f), ".")[0]
		dump := tool == "pg_dump" && strings.Contains(args, "--dbname=")
		for _, line := range strings.Split(env, "\n") {
			k, _, _ := strings.Cut(line, "=")
			if strings.HasPrefix(k, "PG") && !(dump && k == "PGPASSWORD") {
				t.Errorf("%s (%s) got the caller's %s", tool, args, k)
			}
			if k == "DATABASE_URL" || strings.HasPrefix(k, "PGATTEST_") {
				t.Errorf("%s (%s) got %s", tool, args, k)
			}
		}
		switch {
		case dump:
			connecting++
		case strings.Contains(env, pass):
			t.Errorf("%s (%s) holds the password in its environment", tool, args)
		default:
			others++
		}
	}
	if connecting != 1 || others < 3 {
		t.Fatalf("saw %d pg_dump runs and %d other children, want 1 and at least 3 (version probes, a proof, pg_restore -l)", connecting, others)
	}
}
