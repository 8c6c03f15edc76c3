package cli

import (
	"strings"
	"testing"

	"github.com/pgattest/pgattest/testenv"
	"github.com/pgattest/pgattest/testenv/pgtest"
)

// TestRestoreManagedCloudDump: a Neon-shaped database (objects owned by
// neondb_owner, default privileges of cloud_admin for neon_superuser, row
// level security for authenticated and anonymous) is proven, then restored
// into a fresh server that has none of those roles, as an ordinary user
// with CREATEROLE: plainly it fails naming the roles the target lacks and
// both ways out, nothing restored; with --no-owner --no-acl it restores
// every row, leaving out (and naming) the policies for missing roles; with
// --create-roles it restores whole, owners, grants and policies included.
func TestRestoreManagedCloudDump(t *testing.T) {
	src := pgtest.New(t)
	exec1(t, src, "postgres",
		`CREATE ROLE neondb_owner LOGIN; CREATE ROLE cloud_admin; CREATE ROLE neon_superuser; CREATE ROLE authenticated; CREATE ROLE anonymous`,
		`CREATE DATABASE neondb OWNER neondb_owner`)
	exec1(t, src, "neondb", `ALTER DEFAULT PRIVILEGES FOR ROLE cloud_admin GRANT ALL ON TABLES TO neon_superuser`)
	execAsRole(t, src, "neondb", "neondb_owner", `CREATE TABLE public.notes (id int PRIMARY KEY, body text, visibility text)`,
		`INSERT INTO public.notes SELECT g, 'note ' || g, CASE WHEN g % 2 = 0 THEN 'public' ELSE 'private' END FROM generate_series(1, 500) g`,
		`ALTER TABLE public.notes ENABLE ROW LEVEL SECURITY`,
		`CREATE POLICY members_read ON public.notes FOR SELECT TO authenticated USING (true)`,
		`CREATE POLICY anon_read ON public.notes FOR SELECT TO anonymous USING (visibility = 'public')`,
		`GRANT SELECT ON public.notes TO authenticated, anonymous`)
	w := newWorkdir(t)
	rec := w.mustBackup(t, "--db", src.ConnString("neondb"), "--name", "neondb")

	dst := pgtest.New(t)
	exec1(t, dst, "postgres", `CREATE ROLE me LOGIN CREATEROLE`, `CREATE DATABASE fresh1 OWNER me`, `CREATE DATABASE fresh2 OWNER me`)
	as := func(db string) string { return dst.URL(db, "me", "") }
	restore := func(args ...string) (int, string, string) {
		return run(t, append([]string{"--catalog", w.catalog, "restore", "--id", rec.ID}, args...)...)
	}
	count := func(db string) string { return query1(t, dst, db, `SELECT count(*)::text FROM public.notes`) }

	code, out, errOut := restore("--target", as("fresh1"))
	if code == 0 {
		t.Fatalf("restore into a server without the roles: exit 0\n%s", out)
	}
	for _, want := range []string{"the target lacks", "anonymous", "cloud_admin", "neondb_owner", "hint: pass --create-roles", "--no-owner --no-acl"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	if n := query1(t, dst, "fresh1", `SELECT count(*)::text FROM pg_tables WHERE schemaname = 'public'`); n != "0" {
		t.Errorf("the failed restore left %s tables", n)
	}

	code, out, errOut = restore("--target", as("fresh1"), "--no-owner", "--no-acl")
	if code != 0 {
		t.Fatalf("--no-owner --no-acl: exit %d\n%s%s", code, out, errOut)
	}
	if n := count("fresh1"); n != "500" {
		t.Errorf("--no-owner --no-acl restored %s rows, want 500", n)
	}
	for _, p := range []string{"members_read", "anon_read"} {
		if !strings.Contains(out, "skipped  POLICY public.notes "+p) {
			t.Errorf("the policy %s for a missing role is not listed as skipped:\n%s", p, out)
		}
	}

	code, out, errOut = restore("--target", as("fresh2"), "--create-roles")
	if code != 0 {
		t.Fatalf("--create-roles: exit %d\n%s%s", code, out, errOut)
	}
	if !strings.Contains(out, "created 5 NOLOGIN") {
		t.Errorf("the created roles are not listed:\n%s", out)
	}
	if n := count("fresh2"); n != "500" {
		t.Errorf("--create-roles restored %s rows, want 500", n)
	}
	checks := map[string]string{
		`SELECT tableowner::text FROM pg_tables WHERE tablename = 'notes'`:                    "neondb_owner",
		`SELECT has_table_privilege('anonymous', 'public.notes', 'SELECT')::text`:             "true",
		`SELECT count(*)::text FROM pg_policies WHERE tablename = 'notes'`:                    "2",
		`SELECT count(*)::text FROM pg_default_acl WHERE defaclrole = 'cloud_admin'::regrole`: "1",
		`SELECT rolcanlogin::text FROM pg_roles WHERE rolname = 'neondb_owner'`:               "false",
	}
	for q, want := range checks {
		if got := query1(t, dst, "fresh2", q); got != want {
			t.Errorf("%s = %s, want %s", q, got, want)
		}
	}
}

func execAsRole(t *testing.T, c *testenv.Cluster, db, role string, sqls ...string) {
	t.Helper()
	for _, q := range sqls {
		exec1(t, c, db, "SET ROLE "+role+"; "+q)
	}
}
