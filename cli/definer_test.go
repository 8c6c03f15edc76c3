package cli

import (
	"strings"
	"testing"

	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/testenv/pgtest"
)

// TestSecurityDefinerOwnedBySourceSuperuser: functions owned by the
// source's superuser (postgres, as on a self-hosted server) run as their
// owner. One that reads the archive's own objects (a schema of another
// role's) is proven: its owner is made a member of the archive's roles in
// the proof, not a superuser. One that needs a superuser's powers
// (pg_authid) is not run as one: no verdict (unverified, exit 1), and the
// record says which function, which owner, and why; show lists it, and
// verify records nothing.
func TestSecurityDefinerOwnedBySourceSuperuser(t *testing.T) {
	src := pgtest.New(t)
	exec1(t, src, "postgres", "CREATE ROLE app LOGIN", "CREATE DATABASE reads OWNER app", "CREATE DATABASE needs OWNER app")
	exec1(t, src, "reads",
		`CREATE SCHEMA m AUTHORIZATION app`,
		`CREATE TABLE m.allowed (v int PRIMARY KEY)`, `ALTER TABLE m.allowed OWNER TO app`,
		`INSERT INTO m.allowed SELECT generate_series(1, 100)`,
		`CREATE FUNCTION public.allowed(x int) RETURNS boolean LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog
		 AS $$ SELECT EXISTS (SELECT 1 FROM m.allowed WHERE v = x) $$`,
		`CREATE TABLE public.orders (id int CHECK (public.allowed(id)))`, `ALTER TABLE public.orders OWNER TO app`,
		`INSERT INTO public.orders SELECT generate_series(1, 50)`)
	exec1(t, src, "needs",
		`CREATE FUNCTION public.audited(x int) RETURNS boolean LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog
		 AS $$ BEGIN RETURN (SELECT count(*) > 0 FROM pg_catalog.pg_authid) AND x > 0; END $$`,
		`CREATE TABLE public.audit (id int CHECK (public.audited(id)))`, `ALTER TABLE public.audit OWNER TO app`,
		`INSERT INTO public.audit SELECT generate_series(1, 5)`)
	w := newWorkdir(t)

	rec := w.mustBackup(t, "--db", src.ConnString("reads"), "--name", "reads")
	p := rec.LastProof()
	rows := map[string]int64{}
	for _, tb := range p.Tables {
		rows[tb.Schema+"."+tb.Name] = tb.Rows
	}
	if rec.Status != catalog.StatusVerified || rows["public.orders"] != 50 || rows["m.allowed"] != 100 {
		t.Errorf("status %s, rows %v: want verified with orders 50 and m.allowed 100", rec.Status, rows)
	}
	if !someLine(p.Created, "postgres, superuser on the source, made member of the archive's other roles (and no superuser here)") {
		t.Errorf("created %q: want postgres' memberships said", p.Created)
	}
	if got := rec.Source.Superusers; len(got) != 1 || got[0] != "postgres" {
		t.Errorf("recorded superusers %q, want postgres", got)
	}

	const why = "calls public.audited(integer), a SECURITY DEFINER function owned by postgres, a superuser on the source; " +
		"in the proof postgres is an ordinary role (pgattest never runs the archive's code as a superuser), and there the function was refused: permission denied for table pg_authid"
	code, out, errOut := w.backup(t, "--json", "--db", src.ConnString("needs"), "--name", "needs")
	if code != exitFailure {
		t.Fatalf("exit %d, want 1 (no verdict)\n%s", code, errOut)
	}
	needs := decodeRecord(t, out)
	if p := needs.LastProof(); needs.Status != catalog.StatusUnverified || p.Status != catalog.ProofError || !strings.Contains(p.Error, why) {
		t.Errorf("recorded %s, proof %s: %q\nwant unverified, the proof's error saying %q", needs.Status, p.Status, p.Error, why)
	}
	if !strings.Contains(errOut, "hint: the proof cannot tell whether this archive restores without running its code as a superuser") {
		t.Errorf("stderr lacks the hint:\n%s", errOut)
	}
	if code, out, _ := run(t, "--catalog", w.catalog, "show", needs.ID); code != 0 || !strings.Contains(out, why) {
		t.Errorf("show does not say why:\n%s", out)
	}
	code, out, errOut = run(t, "--catalog", w.catalog, "verify", needs.ID)
	if code != exitFailure || !strings.Contains(out, "could not run") {
		t.Errorf("verify: exit %d, want 1 with the proof that could not run\n%s%s", code, out, errOut)
	}
	if code, out, _ := run(t, "--catalog", w.catalog, "--json", "show", needs.ID); code != 0 || decodeRecord(t, out).Status != catalog.StatusUnverified {
		t.Errorf("after verify: %s", out)
	}
}

// someLine reports whether one of lines holds every one of words.
func someLine(lines []string, words ...string) bool {
	for _, l := range lines {
		all := true
		for _, w := range words {
			all = all && strings.Contains(l, w)
		}
		if all {
			return true
		}
	}
	return false
}
