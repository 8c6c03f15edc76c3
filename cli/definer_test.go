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
// (pg_authid) is not run as one: the entry that called it is left out,
// named with the function, its owner and why, the rest is proven, show
// lists it, and verify proves the same.
func TestSecurityDefinerOwnedBySourceSuperuser(t *testing.T) {
	src := pgtest.New(t)
	exec1(t, src, "postgres", "CREATE ROLE app LOGIN", "CREATE DATABASE sd OWNER app")
	exec1(t, src, "sd",
		`CREATE SCHEMA m AUTHORIZATION app`,
		`CREATE TABLE m.allowed (v int PRIMARY KEY)`, `ALTER TABLE m.allowed OWNER TO app`,
		`INSERT INTO m.allowed SELECT generate_series(1, 100)`,
		`CREATE FUNCTION public.allowed(x int) RETURNS boolean LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog
		 AS $$ SELECT EXISTS (SELECT 1 FROM m.allowed WHERE v = x) $$`,
		`CREATE TABLE public.orders (id int CHECK (public.allowed(id)))`, `ALTER TABLE public.orders OWNER TO app`,
		`INSERT INTO public.orders SELECT generate_series(1, 50)`,
		`CREATE FUNCTION public.audited(x int) RETURNS boolean LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog
		 AS $$ BEGIN RETURN (SELECT count(*) > 0 FROM pg_catalog.pg_authid) AND x > 0; END $$`,
		`CREATE TABLE public.audit (id int CHECK (public.audited(id)))`, `ALTER TABLE public.audit OWNER TO app`,
		`INSERT INTO public.audit SELECT generate_series(1, 5)`,
		`CREATE TABLE public.plain (id int PRIMARY KEY)`, `ALTER TABLE public.plain OWNER TO app`,
		`INSERT INTO public.plain VALUES (1), (2)`)
	w := newWorkdir(t)
	rec := w.mustBackup(t, "--db", src.ConnString("sd"), "--name", "sd")
	check := func(what string, p *catalog.Proof) {
		t.Helper()
		if p.Status != catalog.ProofPassed {
			t.Fatalf("%s: proof %s: %s", what, p.Status, p.Error)
		}
		rows := map[string]int64{}
		for _, tb := range p.Tables {
			rows[tb.Schema+"."+tb.Name] = tb.Rows
		}
		if rows["public.orders"] != 50 || rows["m.allowed"] != 100 || rows["public.plain"] != 2 || rows["public.audit"] != 0 {
			t.Errorf("%s: rows %v: want orders 50, m.allowed 100, plain 2, and audit's rows left out", what, rows)
		}
		if !someLine(p.Skipped, "TABLE DATA public.audit: it calls public.audited(integer), a SECURITY DEFINER function owned by postgres, a superuser on the source",
			"postgres is an ordinary role (pgattest never runs the archive's code as a superuser)", "permission denied for table pg_authid") {
			t.Errorf("%s: skipped %q: want the audit table's rows left out, with the function, its owner and why", what, p.Skipped)
		}
		if !someLine(p.Created, "postgres, superuser on the source, made member of the archive's other roles (and no superuser here)") {
			t.Errorf("%s: created %q: want postgres' memberships said", what, p.Created)
		}
	}
	if rec.Status != catalog.StatusVerified {
		t.Fatalf("status %s", rec.Status)
	}
	check("backup", rec.LastProof())
	if got := rec.Source.Superusers; len(got) != 1 || got[0] != "postgres" {
		t.Errorf("recorded superusers %q, want postgres", got)
	}
	code, out, _ := run(t, "--catalog", w.catalog, "show", rec.ID)
	if code != 0 || !strings.Contains(out, "skipped TABLE DATA public.audit: it calls public.audited(integer)") {
		t.Errorf("show does not list what was left out:\n%s", out)
	}
	code, out, errOut := run(t, "--catalog", w.catalog, "--json", "verify", rec.ID)
	if code != 0 {
		t.Fatalf("verify: exit %d\n%s", code, errOut)
	}
	again := decodeRecords(t, out)
	if len(again) != 1 {
		t.Fatalf("verify printed %d records", len(again))
	}
	check("verify", again[0].LastProof())
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
