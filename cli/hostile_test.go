package cli

// Hostile and odd input: names that need quoting everywhere, connection
// strings with several hosts and TLS, archive paths that are not what was
// written, backup names that try to leave --dir, dates that do not parse.
// Each ends in a clear error or the right result, and nothing is lost.

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/pipeline"
	"github.com/pgattest/pgattest/testenv"
	"github.com/pgattest/pgattest/testenv/pgtest"
)

func TestHostileNames(t *testing.T) {
	const (
		role   = `Ann O'Neil "Ü"`
		db     = `Shop "Ünïcode" DB`
		schema = `Sales Q4 'x'`
		table  = `Order Items ü`
		target = `Ziel DB ✓`
	)
	src := pgtest.New(t)
	id := func(s ...string) string { return pgx.Identifier(s).Sanitize() }
	exec1(t, src, "postgres",
		"CREATE ROLE "+id(role)+" LOGIN",
		"CREATE DATABASE "+id(db)+" OWNER "+id(role),
		"CREATE DATABASE "+id(target))
	exec1(t, src, db,
		"SET ROLE "+id(role),
		"CREATE SCHEMA "+id(schema),
		"CREATE TABLE "+id(schema, table)+` (id int PRIMARY KEY, "Prix €" numeric, "select" text)`,
		"CREATE INDEX "+id("Idx ü")+" ON "+id(schema, table)+` ("Prix €")`,
		"COMMENT ON TABLE "+id(schema, table)+` IS 'odd; names "everywhere"'`,
		"INSERT INTO "+id(schema, table)+` SELECT g, g * 1.5, 'row ' || g FROM generate_series(1, 321) g`)

	w := newWorkdir(t)
	// No --name: one is made from the database name, safe for a folder.
	rec := w.mustBackup(t, "--db", src.URL(db, role, ""))
	if rec.Status != catalog.StatusVerified || rec.Source.Database != db || rec.Source.User != role {
		t.Errorf("status %s, source %q as %q", rec.Status, rec.Source.Database, rec.Source.User)
	}
	if !regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@+-]*$`).MatchString(rec.Name) {
		t.Errorf("derived name %q is not safe for a folder", rec.Name)
	}
	if rel, err := filepath.Rel(w.dir, rec.Archive.Path); err != nil || strings.HasPrefix(rel, "..") || strings.Count(rel, "/") != 1 {
		t.Errorf("archive %s is not in a folder of its own under %s", rec.Archive.Path, w.dir)
	}
	var rows int64 = -1
	for _, tc := range rec.Proofs[0].Tables {
		if tc.Schema == schema && tc.Name == table {
			rows = tc.Rows
		}
	}
	if rows != 321 {
		t.Errorf("the proof counted %d rows in %q.%q, want 321: %+v", rows, schema, table, rec.Proofs[0].Tables)
	}
	if len(rec.TOC.Tables) != 1 || rec.TOC.Tables[0] != (catalog.TableName{Schema: schema, Name: table}) {
		t.Errorf("TOC tables %+v", rec.TOC.Tables)
	}
	if !strings.Contains(strings.Join(rec.Roles, "\n"), role) {
		t.Errorf("roles %q lack %q", rec.Roles, role)
	}

	// The table of contents, filtered by the odd schema.
	code, out, _ := run(t, "--catalog", w.catalog, "toc", rec.ID, "--schema", schema, "--type", "table")
	if code != 0 || !strings.Contains(out, table) {
		t.Errorf("toc --schema: exit %d\n%s", code, out)
	}
	// Restored elsewhere, by the odd name; the owner comes along.
	code, _, errOut := run(t, "--catalog", w.catalog, "restore", "--id", rec.ID, "--target", src.URL(target, "", ""))
	if code != 0 {
		t.Fatalf("restore: exit %d\n%s", code, errOut)
	}
	got := query1(t, src, target, "SELECT count(*)::text || ' ' || sum(\"Prix €\")::text || ' ' || (SELECT tableowner FROM pg_tables WHERE schemaname = "+
		quoteSQL(schema)+") FROM "+id(schema, table))
	if want := "321 77521.5 " + role; got != want {
		t.Errorf("restored %q, want %q", got, want)
	}
	// Only that table, named as schema.table with the odd parts.
	exec1(t, src, "postgres", "CREATE DATABASE one_table")
	code, _, errOut = run(t, "--catalog", w.catalog, "restore", "--id", rec.ID, "--target", src.URL("one_table", "", ""), "--table", schema+"."+table)
	if code != 0 {
		t.Fatalf("restore --table: exit %d\n%s", code, errOut)
	}
	if n := query1(t, src, "one_table", "SELECT count(*)::text FROM "+id(schema, table)); n != "321" {
		t.Errorf("restore --table: %s rows", n)
	}
}

func TestMultipleHostsAndTLS(t *testing.T) {
	src := pgtest.New(t, testenv.Options{TLS: true, Password: "tls-pw-7e1"})
	exec1c := func(q string) {
		t.Helper()
		conn, err := pgx.Connect(t.Context(), src.URL("postgres", "", "tls-pw-7e1"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(t.Context())
		if _, err := conn.Exec(t.Context(), q); err != nil {
			t.Fatal(err)
		}
	}
	exec1c("CREATE DATABASE app")
	// Nothing listens on port 1; the second host answers, over TLS only
	// (the cluster's pg_hba.conf has hostssl lines only).
	port := strings.TrimPrefix(src.URL("x", "", "")[strings.LastIndex(src.URL("x", "", ""), ":"):], ":")
	port = strings.TrimSuffix(port, "/x")
	url := "postgresql://postgres:tls-pw-7e1@127.0.0.1:1,127.0.0.1:" + port + "/app?sslmode=require&connect_timeout=5"

	w := newWorkdir(t)
	rec := w.mustBackup(t, "--db", url, "--name", "app")
	if rec.Status != catalog.StatusVerified || rec.Source.Host != "127.0.0.1" || rec.Source.Port == 1 {
		t.Errorf("status %s, source %s:%d", rec.Status, rec.Source.Host, rec.Source.Port)
	}

	// sslmode=require against a server without TLS: refused, saying why.
	plain := pgtest.New(t, testenv.Options{TCP: true})
	code, _, errOut := w.backup(t, "--db", plain.URL("postgres", "", "")+"?sslmode=require&connect_timeout=5", "--name", "plain")
	if code != exitFailure || !strings.Contains(errOut, "server refused TLS") || !strings.Contains(errOut, "hint: the server does not offer SSL") {
		t.Errorf("sslmode=require without TLS: exit %d\n%s", code, errOut)
	}
}

func TestArchivePathReplaced(t *testing.T) {
	src := shop(t)
	w := newWorkdir(t)
	rec := w.mustBackup(t, "--db", src.ConnString("shop"), "--name", "shop")
	moved := filepath.Join(t.TempDir(), "elsewhere.dump")
	if err := os.Rename(rec.Archive.Path, moved); err != nil {
		t.Fatal(err)
	}
	exec1(t, src, "postgres", "CREATE DATABASE target")
	check := func(t *testing.T, found string) {
		t.Helper()
		for _, args := range [][]string{
			{"verify", rec.ID},
			{"restore", "--id", rec.ID, "--target", src.ConnString("target")},
		} {
			code, out, errOut := run(t, append([]string{"--catalog", w.catalog}, args...)...)
			if code != exitProofFailed || !strings.Contains(out+errOut, "want a custom-format file, found "+found) {
				t.Errorf("%s: exit %d, want 3 saying it found %s\n%s%s", args[0], code, found, out, errOut)
			}
		}
		if n := query1(t, src, "target", "SELECT count(*)::text FROM pg_tables WHERE schemaname = 'shop'"); n != "0" {
			t.Errorf("restore wrote %s tables from a replaced archive", n)
		}
		code, out, _ := run(t, "--catalog", w.catalog, "catalog", "verify", "--archives")
		if code != exitProofFailed || !strings.Contains(out, found) {
			t.Errorf("catalog verify --archives: exit %d\n%s", code, out)
		}
	}
	t.Run("symbolic link", func(t *testing.T) {
		os.Symlink(moved, rec.Archive.Path)
		defer os.Remove(rec.Archive.Path)
		check(t, "a symbolic link")
	})
	t.Run("folder", func(t *testing.T) {
		os.Mkdir(rec.Archive.Path, 0o700)
		defer os.Remove(rec.Archive.Path)
		check(t, "a folder")
	})
	t.Run("put back", func(t *testing.T) {
		if err := os.Rename(moved, rec.Archive.Path); err != nil {
			t.Fatal(err)
		}
		if code, _, errOut := run(t, "--catalog", w.catalog, "verify", rec.ID); code != 0 {
			t.Errorf("verify after putting the archive back: exit %d\n%s", code, errOut)
		}
	})
	// A --dir that is a symbolic link to a real folder is fine (a mount
	// point elsewhere); a NAME folder that is a file is an error.
	t.Run("dir through a link", func(t *testing.T) {
		real := filepath.Join(t.TempDir(), "real")
		os.Mkdir(real, 0o700)
		link := filepath.Join(t.TempDir(), "link")
		os.Symlink(real, link)
		code, out, errOut := run(t, "--catalog", w.catalog, "--json", "backup", "--db", src.ConnString("shop"), "--name", "shop", "--dir", link)
		if code != 0 {
			t.Fatalf("exit %d\n%s", code, errOut)
		}
		r := decodeRecord(t, out)
		if _, err := os.Stat(filepath.Join(real, "shop", filepath.Base(r.Archive.Path))); err != nil {
			t.Errorf("archive not in the linked folder: %v", err)
		}
		os.WriteFile(filepath.Join(real, "blocked"), nil, 0o600)
		code, _, errOut = run(t, "--catalog", w.catalog, "backup", "--db", src.ConnString("shop"), "--name", "blocked", "--dir", link)
		if code != exitFailure || !strings.Contains(errOut, "cannot write to") {
			t.Errorf("NAME folder is a file: exit %d\n%s", code, errOut)
		}
	})
}

func TestNamesCannotLeaveDir(t *testing.T) {
	src := pgtest.New(t)
	root := t.TempDir()
	w := workdir{catalog: filepath.Join(root, "catalog.db"), dir: filepath.Join(root, "backups")}
	for _, name := range []string{"../escape", "..", ".", "a/b", "/etc", "a\x00b", "-rf", " shop", "shop\n", strings.Repeat("x", 200), "ü"} {
		code, out, errOut := w.backup(t, "--db", src.ConnString("postgres"), "--name", name)
		hint := "hint: a name may hold letters, digits"
		if len(name) > 128 {
			hint = "hint: a name is at most 128 characters; this one has 200"
		}
		if code != exitUsage || out != "" || !strings.Contains(errOut, hint) {
			t.Errorf("--name %q: exit %d, want 2 with a hint\n%s", name, code, errOut)
		}
	}
	entries, _ := os.ReadDir(root)
	if len(entries) != 0 {
		t.Errorf("refused names left %d entries in the work folder", len(entries))
	}
	// A name with dots that is not a path step is fine, and stays inside.
	code, out, errOut := w.backup(t, "--json", "--db", src.ConnString("postgres"), "--name", "a..b", "--verify", "none")
	if code != 0 {
		t.Fatalf("--name a..b: exit %d\n%s", code, errOut)
	}
	if rec := decodeRecord(t, out); filepath.Dir(rec.Archive.Path) != filepath.Join(w.dir, "a..b") {
		t.Errorf("archive at %s", rec.Archive.Path)
	}
}

func TestUnparseableTimes(t *testing.T) {
	w := newWorkdir(t)
	seed(t, w, seeded{name: "shop", at: mustTime(t, "2026-11-01T02:00:00Z"), status: catalog.StatusVerified})
	for _, args := range [][]string{
		{"restore", "--name", "shop", "--as-of", "last tuesday", "--target", "postgresql://x@127.0.0.1/x"},
		{"restore", "--name", "shop", "--as-of", "9999-12-31", "--target", "postgresql://x@127.0.0.1/x"},
		{"list", "--since", "9999-01-01"},
		{"restore", "--name", "shop", "--as-of", "2026-13-45", "--target", "postgresql://x@127.0.0.1/x"},
		{"restore", "--name", "shop", "--as-of", "2026-11-01 25:00", "--target", "postgresql://x@127.0.0.1/x"},
		{"list", "--since", "last week"},
		{"audit", "--from", "2026-11-01", "--to", "11/30/2026"},
		{"verify", "--since", "\x00"},
	} {
		code, out, errOut := run(t, append([]string{"--catalog", w.catalog}, args...)...)
		if code != exitUsage || out != "" || !strings.Contains(errOut, "hint: ") {
			t.Errorf("%q: exit %d, want 2 with a hint\n%s%s", args, code, out, errOut)
		}
	}
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	at, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return at
}

// TestImportWritesThroughNoLink: a writer of the backups folder plants a
// link where catalog import used to write its manifest's temporary file
// (DIR/NAME/.manifest-BASE.json.tmp), pointing at a file of the operator's;
// the import records the run and the file is untouched (the old code
// overwrote it with the manifest).
func TestImportWritesThroughNoLink(t *testing.T) {
	src := shop(t)
	w := newWorkdir(t)
	rec := w.mustBackup(t, "--db", src.ConnString("shop"), "--name", "shop")
	nameDir := filepath.Dir(rec.Archive.Path)
	aside := filepath.Join(nameDir, pipeline.UnrecordedDir)
	os.MkdirAll(aside, 0o700)
	for _, p := range []string{rec.Archive.Path, rec.Archive.Manifest} {
		if err := os.Rename(p, filepath.Join(aside, filepath.Base(p))); err != nil {
			t.Fatal(err)
		}
	}
	victim := filepath.Join(t.TempDir(), "precious.conf")
	os.WriteFile(victim, []byte("precious\n"), 0o600)
	base := strings.TrimSuffix(filepath.Base(rec.Archive.Manifest), ".manifest.json")
	if err := os.Symlink(victim, filepath.Join(nameDir, ".manifest-"+base+".json.tmp")); err != nil {
		t.Fatal(err)
	}
	other := newWorkdir(t)
	code, out, errOut := run(t, "--catalog", other.catalog, "catalog", "import", "--dir", w.dir)
	if code != 0 || !strings.Contains(out, "1 imported") {
		t.Fatalf("import: exit %d\n%s%s", code, out, errOut)
	}
	if b, _ := os.ReadFile(victim); string(b) != "precious\n" {
		t.Errorf("the file the planted link names was overwritten (%d bytes now)", len(b))
	}
	if fi, err := os.Lstat(rec.Archive.Manifest); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("the imported manifest %s is not a regular file: %v", rec.Archive.Manifest, err)
	}
}
